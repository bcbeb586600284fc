//go:build linux

package stdio

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// childEnv selects a child behaviour when the test binary is re-executed as the server.
const childEnv = "GW_STDIO_CHILD"

// Numbers shared by the children and the tests.
const (
	hugeLineSize = 20 << 20
	noiseLines   = 80000 // of 100 bytes: 8 MB of stderr
	stderrCount  = 30
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	goleak.VerifyTestMain(m)
}

// runChild is the server side of the tests. It returns the exit code.
func runChild(mode string) int {
	out := bufio.NewWriter(os.Stdout)
	println := func(s string) {
		out.WriteString(s)
		out.WriteByte('\n')
		out.Flush()
	}
	waitStdinEOF := func() { _, _ = io.Copy(io.Discard, os.Stdin) }

	switch mode {
	case "echo": // echo every stdin line; exit 0 at stdin EOF
		echo()

	case "huge": // one line over DefaultMaxMessageSize, then a normal one
		out.Write(bytes.Repeat([]byte("x"), hugeLineSize))
		out.WriteByte('\n')
		println(`{"ok":true}`)
		waitStdinEOF()

	case "long": // lines around a limit of 10, then an unterminated last line and EOF
		fmt.Fprint(out, "0123456789\n", "01234567890\n", "short\n", "0123456789\r\n",
			strings.Repeat("y", 100)+"\r\n", "\n", "  \t\r\n", "end")
		out.Flush()
		os.Stdout.Close()
		waitStdinEOF()

	case "noisy": // lots of stderr, then echo
		bw := bufio.NewWriterSize(os.Stderr, 64<<10)
		line := strings.Repeat("n", 99) + "\n"
		for range noiseLines - 1 {
			bw.WriteString(line)
		}
		bw.WriteString("noise end\n")
		bw.Flush()
		println("stderr-done")
		echo()

	case "longstderr": // stderr lines longer than the reader's buffer, one over stderrLineMax
		for _, n := range []int{10 << 10, stderrLineMax, stderrLineMax + 1, 100 << 10} {
			fmt.Fprintf(os.Stderr, "%s\r\n", strings.Repeat("e", n))
		}
		fmt.Fprintln(os.Stderr, "short")
		println("done")
		waitStdinEOF()

	case "stderr": // numbered stderr lines
		for i := 1; i <= stderrCount; i++ {
			fmt.Fprintf(os.Stderr, "err %d\n", i)
		}
		println("done")
		waitStdinEOF()

	case "stubborn": // report, but survive, stdin EOF and SIGTERM
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		go func() {
			for range sigs {
				fmt.Fprintln(os.Stderr, "got SIGTERM")
			}
		}()
		println("ready")
		waitStdinEOF()
		fmt.Fprintln(os.Stderr, "stdin EOF")
		for {
			time.Sleep(time.Hour)
		}

	case "stall": // say so, read nothing for a second, then echo
		println("stalling")
		time.Sleep(time.Second)
		echo()

	case "sleep": // never reads stdin; dies of SIGTERM
		time.Sleep(time.Minute)

	case "crash": // a few lines, then exit 3
		println("one")
		println("two")
		println("three")
		return 3

	case "grandchild", "escapee": // leave a sleeping grandchild holding stdout and stderr, and exit
		exe, err := os.Executable()
		if err != nil {
			panic(err)
		}
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), childEnv+"=sleep")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if mode == "escapee" { // leaves our process group
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		}
		if err := cmd.Start(); err != nil {
			panic(err)
		}
		println(strconv.Itoa(cmd.Process.Pid))

	case "ignoreterm": // ignore SIGTERM, say so, and sleep
		signal.Ignore(syscall.SIGTERM)
		println("ready")
		sleepForever()

	case "tree exit", "tree term", "tree stubborn":
		// Start two grandchildren that ignore SIGTERM, one in our process group and one in a
		// session of its own, print "<in-group pid> <setsid pid>" and then: exit; or wait for
		// SIGTERM to kill us; or ignore SIGTERM too.
		leader := strings.TrimPrefix(mode, "tree ")
		if leader == "stubborn" {
			signal.Ignore(syscall.SIGTERM)
		}
		a, b := startIgnoreTerm(false), startIgnoreTerm(true)
		println(strconv.Itoa(a) + " " + strconv.Itoa(b))
		if leader == "exit" {
			return 0
		}
		waitStdinEOF()
		sleepForever()

	case "gw cgroup", "gw group", "gw exit":
		// A gw of its own: start a "tree stubborn" server, print "<leader> <in-group> <setsid>
		// <cgroup or ->", and wait to be killed; or, for "exit", exit without closing it.
		return runMiniGW(strings.TrimPrefix(mode, "gw "), println)

	case "env": // report the environment and working directory
		const key = "GW_STDIO_VAL"
		count := 0
		for _, kv := range os.Environ() {
			if strings.HasPrefix(kv, key+"=") {
				count++
			}
		}
		wd, _ := os.Getwd()
		b, _ := json.Marshal(envReport{Val: os.Getenv(key), Count: count, Wd: wd})
		println(string(b))
		waitStdinEOF()

	default:
		fmt.Fprintf(os.Stderr, "unknown mode %q\n", mode)
		return 2
	}
	return 0
}

// startIgnoreTerm starts the test binary in mode "ignoreterm", in a new session if setsid, waits
// until it ignores SIGTERM and returns its pid.
func startIgnoreTerm(setsid bool) int {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"=ignoreterm")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: setsid}
	out, err := cmd.StdoutPipe()
	if err != nil {
		panic(err)
	}
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		panic(fmt.Sprintf("grandchild said %q, %v", line, err))
	}
	return cmd.Process.Pid
}

// runMiniGW is the "gw" child: it starts a server with Contain set by containment ("group", else
// ContainCgroup) and waits for SIGKILL, or for "exit" returns at once.
func runMiniGW(containment string, println func(string)) int {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	cfg := Config{
		Name:    "tree",
		Command: exe,
		Env:     map[string]string{childEnv: "tree stubborn"},
		Contain: ContainCgroup,
	}
	if containment == "group" {
		cfg.Contain = ContainGroup
	}
	p, err := Start(cfg)
	if err != nil {
		panic(err)
	}
	line, err := p.ReadMessage()
	if err != nil {
		panic(err)
	}
	cg := p.cg.path()
	if cg == "" {
		cg = "-"
	}
	println(fmt.Sprintf("%d %s %s", p.Pid(), line, cg))
	if containment != "exit" {
		sleepForever()
	}
	return 0
}

func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}

type envReport struct {
	Val   string `json:"val"`
	Count int    `json:"count"`
	Wd    string `json:"wd"`
}

func echo() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	w := bufio.NewWriter(os.Stdout)
	for sc.Scan() {
		w.Write(sc.Bytes())
		w.WriteByte('\n')
		if w.Flush() != nil {
			return
		}
	}
}
