package natsface

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gwmcp/gw/transport/jsonrpc"
	"github.com/nats-io/nats.go"
)

// FuzzRequest drives the whole decoding of a request, as the face's
// handler goroutine does it (call.request): the Mcp-Stream, Mcp-Timeout-Ms
// and Mcp-Deadline headers, the body and, on the named endpoints, the name
// token of the subject against params.name. FuzzDecodeObject and FuzzToken
// cover the body decoder and the token encoding alone. It must not panic;
// a refusal is a JSON-RPC error with the code the package doc names (-32700
// for a body that is not JSON, -32600 for bad headers, -32602 for bad
// params or names); an accepted request has its body as params, a name
// equal to its subject's token, a deadline no later than MaxTimeout from
// now, and Progress exactly when it asked to stream.
func FuzzRequest(f *testing.F) {
	for _, s := range []struct {
		ep                              uint8
		token                           string
		stream, timeout, deadline, body string
	}{
		{0, "echo", "", "", "", `{"name":"echo","arguments":{"text":"hi"}}`},
		{0, "github~2Ecreate~20issue", "1", "250", "", `{"name":"github.create issue","arguments":{}}`},
		{1, "echo", "", "", "2030-01-02T03:04:05.123456789Z", `{"name":"echo"}`},
		{0, "echo", "yes", "", "", `{"name":"echo"}`},
		{0, "echo", "", "-5", "", `{"name":"echo"}`},
		{0, "echo", "", "", "tomorrow", `{"name":"echo"}`},
		{0, "~41", "", "", "", `{"name":"A"}`},
		{0, "echo", "", "", "", `{"name":"echo","name":"other"}`},
		{0, "echo", "", "", "", `{"Name":"echo"}`},
		{2, "", "", "99999999999999999999", "", `{}`},
		{2, "", "", "", "", `{"cursor":`},
		{3, "greet", "", "", "", `[1,2]`},
		{2, "", "", "", "", " \n "},
	} {
		f.Add(s.ep, s.token, s.stream, s.timeout, s.deadline, []byte(s.body))
	}
	opts, err := Options{Gateway: "gw", DefaultTimeout: time.Minute, MaxTimeout: 5 * time.Minute}.withDefaults()
	if err != nil {
		f.Fatal(err)
	}
	face := &Face{opts: opts}
	endpoints := []*endpoint{
		{method: "tools/call", named: true},
		{method: "tools/call", named: true, at: true},
		{method: "tools/list"},
		{method: "prompts/get", named: true},
	}
	f.Fuzz(func(t *testing.T, ep uint8, token, stream, timeout, deadline string, body []byte) {
		e := endpoints[int(ep)%len(endpoints)]
		subject := "mcp.v1.req.alice." + strings.ReplaceAll(e.method, "/", ".")
		if e.at {
			subject = "mcp.v1.req.alice.at.gw." + strings.ReplaceAll(e.method, "/", ".")
		}
		if e.named {
			subject += "." + token
		}
		h := nats.Header{}
		for k, v := range map[string]string{HeaderStream: stream, HeaderTimeout: timeout, HeaderDeadline: deadline} {
			if v != "" {
				h.Set(k, v)
			}
		}
		c := &call{f: face, ep: e, subject: subject, reply: "_INBOX.x", data: body, header: h, principal: "alice", stream: stream == "1"}
		before := time.Now()
		req, dl, rerr := c.request()
		if rerr != nil {
			want := []int64{jsonrpc.CodeInvalidRequest, jsonrpc.CodeInvalidParams}
			if !json.Valid(bytes.TrimSpace(body)) && len(bytes.TrimSpace(body)) > 0 {
				want = append(want, jsonrpc.CodeParseError)
			}
			if !slices.Contains(want, rerr.Code) || rerr.Message == "" {
				t.Fatalf("refused with %d %q; want one of %v", rerr.Code, rerr.Message, want)
			}
			if rerr.Code == jsonrpc.CodeParseError && json.Valid(body) {
				t.Fatalf("valid JSON refused as a parse error: %q", body)
			}
			return
		}
		if stream != "" && stream != "1" {
			t.Fatalf("Mcp-Stream %q accepted", stream)
		}
		if (req.Progress != nil) != (stream == "1") {
			t.Fatalf("Mcp-Stream %q: Progress set %v", stream, req.Progress != nil)
		}
		if req.Method != e.method || req.Principal != "alice" || (req.Gateway == "gw") != e.at {
			t.Fatalf("request %+v for endpoint %+v", req, e)
		}
		if trimmed := bytes.TrimSpace(body); len(trimmed) == 0 {
			if req.Params != nil {
				t.Fatalf("empty body gave params %q", req.Params)
			}
		} else {
			if !bytes.Equal(req.Params, trimmed) {
				t.Fatalf("params %q; the body was %q", req.Params, body)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(trimmed, &m); err != nil {
				t.Fatalf("accepted a body that is no JSON object: %q (%v)", body, err)
			}
		}
		if e.named {
			tok := subject[strings.LastIndexByte(subject, '.')+1:]
			name, err := DecodeToken(tok)
			if err != nil {
				t.Fatalf("accepted the name token %q: %v", tok, err)
			}
			var got struct {
				Name *string `json:"name"`
			}
			if json.Unmarshal(req.Params, &got) != nil || got.Name == nil || *got.Name != name {
				t.Fatalf("params %q accepted for the name %q", req.Params, name)
			}
		}
		if limit := time.Now().Add(opts.MaxTimeout); dl.After(limit) {
			t.Fatalf("deadline %v past the cap %v", dl, limit)
		}
		if timeout == "" && deadline == "" {
			if d := dl.Sub(before); d < opts.DefaultTimeout || d > opts.DefaultTimeout+time.Second {
				t.Fatalf("no deadline header: deadline in %v; want the default %v", d, opts.DefaultTimeout)
			}
		}
	})
}
