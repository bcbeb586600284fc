package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/internal/mcptest"
	"github.com/gwmcp/gw/transport/mcpface"
)

// httpRun is a `gw run` whose HTTP face listens on a free port.
func httpRun(t *testing.T, name, extra string) (r *reloadRun, head, url string) {
	t.Helper()
	head, port := reloadHead(t, name)
	httpPort := freePort(t)
	head = withHTTPAddr(head, httpPort, extra) + `
  beta:
    command: EXE
    env: {MCPTEST_SERVER: "1", MCPTEST_ERA: modern}
`
	r = startHTTPRun(t, head, port, httpPort)
	return r, head, fmt.Sprintf("http://127.0.0.1:%d/mcp", httpPort)
}

// withHTTPAddr gives a runHead's HTTP listener the port httpPort, and the
// extra keys of the http section (", tokens: {…}").
func withHTTPAddr(head string, httpPort int, extra string) string {
	return strings.Replace(head, `http: {addr: "127.0.0.1:0"}`, fmt.Sprintf(`http: {addr: "127.0.0.1:%d"%s}`, httpPort, extra), 1)
}

// startHTTPRun starts gw run on config, stopped at the test's end, and waits
// until its HTTP listener on httpPort takes connections.
func startHTTPRun(t *testing.T, config string, port, httpPort int) *reloadRun {
	t.Helper()
	r := startReloadRun(t, config, port)
	t.Cleanup(r.stop)
	r.eventually("the HTTP listener", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", httpPort))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return r
}

// TestHTTPSDKClient connects the official Go SDK's Streamable HTTP client to
// `gw run` in both eras: it lists the merged tools of a legacy and a modern
// mcptest server, calls one of each, and hears tools/list_changed (GET
// stream, or subscriptions/listen) when a server is added by editing the
// configuration. In the legacy era a server's sampling request reaches the
// client on the call's own SSE stream and the answer it POSTs comes back.
func TestHTTPSDKClient(t *testing.T) {
	for _, tt := range []struct{ name, ask, want string }{
		{"legacy", mcpface.LegacyVersion, mcpface.LegacyVersion},
		{"modern", "", mcpface.ModernVersion},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, head, url := httpRun(t, "http-sdk-"+tt.name, "")
			// A third upstream server, written by others: the npm memory
			// server, added by a config edit.
			head += fmt.Sprintf("  memory:\n    command: %s\n    env: {MEMORY_FILE_PATH: %s}\n",
				mcptest.NPMServer(t, "mcp-server-memory"), filepath.Join(t.TempDir(), "memory.jsonl"))
			r.rewrite(head)
			changed := make(chan struct{}, 16)
			client := mcp.NewClient(&mcp.Implementation{Name: "sdk-http-test", Version: "1"}, &mcp.ClientOptions{
				ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
					select {
					case changed <- struct{}{}:
					default:
					}
				},
				CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
					return &mcp.CreateMessageResult{Role: "assistant", Model: "sdk", Content: &mcp.TextContent{Text: "Paris, said the HTTP client"}}, nil
				},
			})
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url}, &mcp.ClientSessionOptions{ProtocolVersion: tt.ask})
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			if init := cs.InitializeResult(); init.ProtocolVersion != tt.want || init.ServerInfo == nil || init.ServerInfo.Name != "gw" {
				t.Fatalf("session: %+v", init)
			}
			var names []string
			r.eventually("alpha's, beta's and memory's tools", func() bool {
				names = listToolNames(ctx, t, cs)
				return slices.Contains(names, "alpha__echo") && slices.Contains(names, "beta__echo") && slices.Contains(names, "memory__read_graph")
			})
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "memory__read_graph", Arguments: map[string]any{}})
			if err != nil || res.IsError {
				t.Fatalf("memory__read_graph: %v %+v", err, res)
			}
			for _, name := range []string{"alpha__echo", "beta__echo"} {
				if got := callText(ctx, t, cs, name, map[string]any{"text": "over http " + name}); got != "over http "+name {
					t.Errorf("%s: %q", name, got)
				}
			}
			// A server's sampling request, answered by the client: a modern
			// server's input_required round trip, and a legacy server's own
			// request, which rides on the call in flight.
			for _, tool := range []string{"beta__sample", "alpha__sample"} {
				if got := callText(ctx, t, cs, tool, map[string]any{"prompt": "capital of France?"}); !strings.Contains(got, "Paris, said the HTTP client") {
					t.Errorf("%s through gw over HTTP: %q", tool, got)
				}
			}

			r.rewrite(head + gammaServer)
			relistOnChange(ctx, t, cs, changed, names, 60*time.Second, "with gamma__fresh", hasTool("gamma__fresh"))
			if got := callText(ctx, t, cs, "gamma__fresh", map[string]any{"text": "new"}); got != "new" {
				t.Errorf("gamma__fresh: %q", got)
			}
		})
	}
}

// bearer adds a token to every request.
type bearer struct{ token string }

func (b bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(req)
}

// TestHTTPBearerPrincipal: an HTTP token's principal is the caller the
// authorize policy sees; a client without a token is refused.
func TestHTTPBearerPrincipal(t *testing.T) {
	t.Setenv("GWTEST_ADA_TOKEN", "ada-secret-token")
	head, port := reloadHead(t, "http-auth")
	httpPort := freePort(t)
	head = withHTTPAddr(head, httpPort, ", tokens: {ada: {token_env: GWTEST_ADA_TOKEN}}")
	head = strings.Replace(head, "policies:\n", "policies:\n  authorize: {module: allowlist, config: {rules: [{callers: [\"ada\"], tools: [\"alpha__echo\"]}]}}\n", 1)
	r := startReloadRun(t, head, port)
	defer r.stop()
	url := fmt.Sprintf("http://127.0.0.1:%d/mcp", httpPort)
	r.eventually("the HTTP face", func() bool {
		resp, err := http.Post(url, "application/json", strings.NewReader(`{}`))
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusUnauthorized
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "sdk-http-auth", Version: "1"}, nil)
	if cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, MaxRetries: -1}, nil); err == nil {
		cs.Close()
		t.Fatal("connected without a token")
	}
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: bearer{"ada-secret-token"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	r.eventually("alpha__echo", func() bool { return slices.Contains(listToolNames(ctx, t, cs), "alpha__echo") })
	if got := callText(ctx, t, cs, "alpha__echo", map[string]any{"text": "as ada"}); got != "as ada" {
		t.Errorf("alpha__echo as ada: %q", got)
	}
	// ada may call echo only: the policy saw ada.
	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "alpha__is_error", Arguments: map[string]any{}})
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != gateway.CodeDenied || !strings.Contains(rpcErr.Message, `caller "ada"`) {
		t.Errorf("want alpha__is_error denied for ada, got %v", err)
	}
	if strings.Contains(r.stderr.String(), "ada-secret-token") {
		t.Error("the token is in gw's log")
	}
}
