//go:build unix && !linux

package stdio

import (
	"errors"
	"syscall"
)

// Containment beyond the process group is only implemented on Linux.

func setParentDeath(*syscall.SysProcAttr) {}

// cgroup stands for a Linux cgroup; elsewhere there is none, and a nil *cgroup does nothing.
type cgroup struct{}

var errNoCgroups = errors.New("cgroups are a Linux feature")

func newCgroup(string) (*cgroup, error) { return nil, errNoCgroups }

func (c *cgroup) path() string                 { return "" }
func (c *cgroup) setAttr(*syscall.SysProcAttr) {}
func (c *cgroup) started()                     {}
func (c *cgroup) adopt(int) error              { return errNoCgroups }
func (c *cgroup) kill()                        {}
func (c *cgroup) remove() error                { return nil }

func registerGroup(int) {}
func forgetGroup(int)   {}
