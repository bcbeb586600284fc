package main

import (
	"fmt"
	"slices"

	"github.com/gwmcp/gw/gateway/router"
	"github.com/gwmcp/gw/internal/config"
)

// viewFor returns the configured view called name for a face to serve, or
// nil for "" (the whole namespace).
func viewFor(cfg *config.Config, name string) (*router.View, error) {
	if name == "" {
		return nil, nil
	}
	v, ok := cfg.Views[name]
	if !ok {
		var known []string
		for n := range cfg.Views {
			known = append(known, n)
		}
		slices.Sort(known)
		return nil, fmt.Errorf("no view %q in the configuration (views: %v)", name, known)
	}
	return &router.View{Name: name, Servers: v.Servers, Include: v.Include, Exclude: v.Exclude}, nil
}
