package mcptest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestMain(m *testing.M) {
	MainIfChild()
	os.Exit(m.Run())
}

// harness drives an in-process Serve over io.Pipe with hand-written lines.
// It is meant to run inside synctest.Test, where time is fake and
// synctest.Wait tells when the server has nothing more to say.
type harness struct {
	t     *testing.T
	in    *io.PipeWriter
	lines chan string
	done  chan error
}

func startServer(t *testing.T, opts Options) *harness {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	h := &harness{t: t, in: inW, lines: make(chan string, 1024), done: make(chan error, 1)}
	go func() { h.done <- Serve(inR, outW, opts) }()
	go func() {
		defer close(h.lines)
		sc := bufio.NewScanner(outR)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
	}()
	return h
}

// stop closes the server's input, drains its output and returns Serve's error.
func (h *harness) stop() error {
	h.in.Close()
	for range h.lines {
	}
	return <-h.done
}

// stopOK stops the server and fails the test unless Serve returned nil.
func (h *harness) stopOK() {
	h.t.Helper()
	if err := h.stop(); err != nil {
		h.t.Errorf("Serve returned %v, want nil", err)
	}
}

func (h *harness) send(line string) {
	h.t.Helper()
	if strings.Contains(line, "\n") {
		h.t.Fatalf("test bug: line contains a newline: %q", line)
	}
	if _, err := io.WriteString(h.in, line+"\n"); err != nil {
		h.t.Fatalf("writing to server: %v", err)
	}
}

func (h *harness) sendf(format string, args ...any) {
	h.t.Helper()
	h.send(fmt.Sprintf(format, args...))
}

// recvLine returns the next line the server wrote.
func (h *harness) recvLine() string {
	h.t.Helper()
	select {
	case l, ok := <-h.lines:
		if !ok {
			h.t.Fatal("server closed its output")
		}
		return l
	case <-time.After(time.Minute):
		h.t.Fatal("timed out waiting for the server")
	}
	return ""
}

// recv returns the next message, which must be a JSON object.
func (h *harness) recv() msg {
	h.t.Helper()
	l := h.recvLine()
	var probe map[string]json.RawMessage
	if err := json.Unmarshal([]byte(l), &probe); err != nil {
		h.t.Fatalf("server wrote a line that is not a JSON object: %q", l)
	}
	if string(probe["jsonrpc"]) != `"2.0"` {
		h.t.Fatalf("server wrote a message without jsonrpc 2.0: %s", l)
	}
	return msg{t: h.t, raw: json.RawMessage(l)}
}

// call sends a line and returns the next message, which must be the reply
// with the given id (JSON text).
func (h *harness) call(id, line string) msg {
	h.t.Helper()
	h.send(line)
	m := h.recv()
	m.wantID(id)
	return m
}

// quiet fails if the server wrote anything that has not been read, once all
// its goroutines are blocked.
func (h *harness) quiet() {
	h.t.Helper()
	synctest.Wait()
	select {
	case l, ok := <-h.lines:
		if ok {
			h.t.Fatalf("unexpected message from the server: %s", l)
		}
	default:
	}
}

// msg is one message from the server.
type msg struct {
	t   *testing.T
	raw json.RawMessage
}

func (m msg) String() string { return string(m.raw) }

// get walks the path (object keys and array indexes) and returns the value,
// or nil if it is absent.
func (m msg) get(path ...any) json.RawMessage {
	m.t.Helper()
	cur := m.raw
	for _, p := range path {
		switch p := p.(type) {
		case string:
			var o map[string]json.RawMessage
			if json.Unmarshal(cur, &o) != nil {
				return nil
			}
			v, ok := o[p]
			if !ok {
				return nil
			}
			cur = v
		case int:
			var a []json.RawMessage
			if json.Unmarshal(cur, &a) != nil || p >= len(a) {
				return nil
			}
			cur = a[p]
		default:
			m.t.Fatalf("test bug: path element %v", p)
		}
	}
	return cur
}

func (m msg) has(path ...any) bool { m.t.Helper(); return m.get(path...) != nil }

// str returns the string at path, failing if there is none.
func (m msg) str(path ...any) string {
	m.t.Helper()
	var s string
	raw := m.get(path...)
	if raw == nil || json.Unmarshal(raw, &s) != nil {
		m.t.Fatalf("no string at %v in %s", path, m)
	}
	return s
}

// num returns the integer at path, failing if there is none.
func (m msg) num(path ...any) int64 {
	m.t.Helper()
	var n int64
	raw := m.get(path...)
	if raw == nil || json.Unmarshal(raw, &n) != nil {
		m.t.Fatalf("no integer at %v in %s", path, m)
	}
	return n
}

// json returns the compact JSON text at path ("" if absent).
func (m msg) json(path ...any) string {
	m.t.Helper()
	return string(m.get(path...))
}

func (m msg) wantID(id string) {
	m.t.Helper()
	if got := m.json("id"); got != id {
		m.t.Fatalf("reply id = %s, want %s: %s", got, id, m)
	}
}

// wantError checks the message is an error reply with the code.
func (m msg) wantError(code int) msg {
	m.t.Helper()
	if !m.has("error") {
		m.t.Fatalf("want error %d, got %s", code, m)
	}
	if got := m.num("error", "code"); got != int64(code) {
		m.t.Fatalf("error code = %d, want %d: %s", got, code, m)
	}
	return m
}

// wantResult checks the message is a result and returns a msg for it.
func (m msg) wantResult() msg {
	m.t.Helper()
	if m.has("error") || !m.has("result") {
		m.t.Fatalf("want a result, got %s", m)
	}
	return msg{t: m.t, raw: m.get("result")}
}

// text returns the first text content of a tool result.
func (m msg) text() string {
	m.t.Helper()
	return m.str("content", 0, "text")
}

// legacyHandshake performs initialize and notifications/initialized.
func (h *harness) legacyHandshake(capabilities string) {
	h.t.Helper()
	h.call(`"init"`, `{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":`+
		capabilities+`,"clientInfo":{"name":"harness","version":"0"}}}`).wantResult()
	h.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
}

// stats calls the stats tool and decodes its text.
func (h *harness) stats(meta string) Stats {
	h.t.Helper()
	params := `{"name":"stats"}`
	if meta != "" {
		params = `{"name":"stats",` + meta + `}`
	}
	res := h.call(`"stats"`, `{"jsonrpc":"2.0","id":"stats","method":"tools/call","params":`+params+`}`).wantResult()
	var st Stats
	if err := json.Unmarshal([]byte(res.text()), &st); err != nil {
		h.t.Fatalf("stats text: %v", err)
	}
	return st
}

// modernMeta is a complete _meta member for 2026-07-28 requests, declaring
// the given client capabilities.
func modernMeta(caps string) string {
	return `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",` +
		`"io.modelcontextprotocol/clientInfo":{"name":"harness","version":"0"},` +
		`"io.modelcontextprotocol/clientCapabilities":` + caps + `}`
}

// bubble runs f in a synctest bubble with a server started with opts, and
// stops the server afterwards expecting a clean exit.
func bubble(t *testing.T, opts Options, f func(h *harness)) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		h := startServer(t, opts)
		defer func() {
			// Deferred so that a t.Fatal in f still shuts the server down.
			if err := h.stop(); err != nil && !t.Failed() {
				t.Errorf("Serve returned %v, want nil", err)
			}
		}()
		f(h)
	})
}
