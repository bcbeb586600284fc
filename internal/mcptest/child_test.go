package mcptest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// child starts this test binary as a server with opts (see TestMain).
func child(t *testing.T, opts Options, extraEnv ...string) (cmd *exec.Cmd, stdin io.WriteCloser, stdout *bufio.Reader, stderr *bytes.Buffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cmd = exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), opts.Environ()...), extraEnv...)
	stderr = &bytes.Buffer{}
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, in, bufio.NewReader(out), stderr
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestChildProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	t.Run("serves and exits on EOF", func(t *testing.T) {
		cmd, in, out, stderr := child(t, Options{Era: EraModern, Name: "child"})
		io.WriteString(in, `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{`+modernMeta(`{}`)+`}}`+"\n")
		io.WriteString(in, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"},`+modernMeta(`{}`)+`}}`+"\n")
		// The two requests run concurrently: the replies may come in either order.
		replies := map[string]string{}
		for range 2 {
			line, err := out.ReadString('\n')
			if err != nil {
				t.Fatalf("reading a reply: %v", err)
			}
			var m struct{ ID json.RawMessage }
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("reply %q: %v", line, err)
			}
			replies[string(m.ID)] = line
		}
		if !strings.Contains(replies["1"], `"supportedVersions"`) || !strings.Contains(replies["1"], `"name":"child"`) ||
			!strings.Contains(replies["2"], `"text":"hello"`) {
			t.Fatalf("replies: %q", replies)
		}
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("child exited with %v; stderr %q", err, stderr)
		}
	})
	t.Run("crash tool exits 3", func(t *testing.T) {
		cmd, in, out, _ := child(t, Options{})
		io.WriteString(in, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`+"\n")
		if _, err := out.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		io.WriteString(in, `{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n")
		io.WriteString(in, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"crash"}}`+"\n")
		if rest, _ := io.ReadAll(out); len(rest) != 0 {
			t.Errorf("crash wrote %q", rest)
		}
		if code := exitCode(cmd.Wait()); code != 3 {
			t.Errorf("exit status %d, want 3", code)
		}
	})
	t.Run("crash on start exits 2", func(t *testing.T) {
		cmd, _, out, stderr := child(t, Options{CrashOnStart: true})
		io.ReadAll(out)
		if code := exitCode(cmd.Wait()); code != 2 || !strings.Contains(stderr.String(), "crashing on start") {
			t.Errorf("exit status %d, stderr %q", code, stderr)
		}
	})
	t.Run("bad environment exits 64", func(t *testing.T) {
		cmd, _, out, stderr := child(t, Options{}, EnvEra+"=future")
		io.ReadAll(out)
		if code := exitCode(cmd.Wait()); code != 64 || !strings.Contains(stderr.String(), "future") {
			t.Errorf("exit status %d, stderr %q", code, stderr)
		}
	})
}

// FuzzServe feeds arbitrary input to a server and checks that it neither
// panics nor writes anything but single-line JSON objects (the garbage tool
// and the discover garbage mode aside, which the fuzzer cannot reach without
// the handshake or a valid call).
func FuzzServe(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":"x","method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"cursor":"page-1","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"\u2028"}}}`,
		`{"jsonrpc":"2.0","id":"s-1","result":{}}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`,
		`[1,2]`, `{"id":{}}`, `not json`, "\xff\xfe",
	} {
		f.Add(seed, uint8(0))
		f.Add(seed, uint8(1))
	}
	f.Fuzz(func(t *testing.T, input string, era uint8) {
		if strings.Contains(input, "huge") || strings.Contains(input, "garbage") {
			t.Skip("tools that misbehave on purpose")
		}
		opts := Options{Era: []Era{EraLegacy, EraModern, EraDual}[era%3], PageSize: 2, EOFGrace: -1}
		var out bytes.Buffer
		err := Serve(strings.NewReader(input), &out, opts)
		var exit *ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("Serve: %v", err)
		}
		for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
			if line == "" && out.Len() == 0 {
				continue
			}
			if !utf8.ValidString(line) || !strings.HasPrefix(line, "{") || !strings.HasSuffix(line, "}") {
				t.Fatalf("bad output line %q", line)
			}
		}
	})
}
