package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gwmcp/gw/internal/mcptest"
)

// TestSecretsNeverEmitted plants secrets everywhere gw handles one (a
// server's env value that the server prints on stderr, the NATS token, an
// HTTP bearer token, a wrong token a client tries, and a tool argument),
// runs gw at debug level through calls, a crash and restart, and a stop, then
// greps everything gw emitted for them: its log, every message of every
// JetStream stream and bucket (events, catalog, status, claim checks), the
// servers list and the errors callers got. Only the caller who sent the
// argument may see it again, in its own result.
func TestSecretsNeverEmitted(t *testing.T) {
	const (
		envSecret   = "envsecret-PLANTED-7f3a9c"
		natsToken   = "natstoken-PLANTED-51b2e8"
		httpToken   = "httptoken-PLANTED-c4d1aa"
		wrongToken  = "wrongtoken-PLANTED-99f0"
		argSecret   = "argsecret-PLANTED-e5b7d2"
		secretsDesc = "env value, NATS token, HTTP token, a wrong token, a tool argument"
	)
	planted := []string{envSecret, natsToken, httpToken, wrongToken, argSecret}

	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, Authorization: natsToken,
		JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Setenv("GWTEST_SECRET_HTTP", httpToken)
	httpPort := freePort(t)
	exe, _ := os.Executable()
	cfg := writeConfig(t, "gw.yaml", fmt.Sprintf(`
nats: {url: "%s", token: "%s", gateway: secrets}
http: {addr: "127.0.0.1:%d", tokens: {ada: {token_env: GWTEST_SECRET_HTTP}}}
log: {level: debug}
policies: {cache_dir: %s}
servers:
  alpha:
    command: sh
    args: ["-c", "echo \"starting with key $API_KEY\" >&2; exec \"$0\"", "%s"]
    env: {MCPTEST_SERVER: "1", API_KEY: "%s"}
`, ns.ClientURL(), natsToken, httpPort, t.TempDir(), exe, envSecret))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs mcptest.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"run", "-v", "-c", cfg}, &bytes.Buffer{}, &logs) }()

	nc, err := nats.Connect(ns.ClientURL(), nats.Token(natsToken))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	waitForTool(t, nc, "alpha__echo", &logs)
	var public strings.Builder // what callers other than the argument's sender may see
	var own strings.Builder    // what the sender got back

	// Over NATS.
	m, err := nc.Request("mcp.v1.req.alice.tools.call.alpha__echo", []byte(`{"name":"alpha__echo","arguments":{"text":"`+argSecret+`"}}`), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	own.Write(m.Data)
	// Over HTTP, with the right token and a wrong one.
	url := fmt.Sprintf("http://127.0.0.1:%d/mcp", httpPort)
	client := mcp.NewClient(&mcp.Implementation{Name: "secrets", Version: "1"}, nil)
	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	defer ccancel()
	cs, err := client.Connect(cctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: bearer{httpToken}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	own.WriteString(callText(cctx, t, cs, "alpha__echo", map[string]any{"text": argSecret}))
	cs.Close()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Header.Set("Authorization", "Bearer "+wrongToken)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		resp.Body.Close()
		public.WriteString(b.String())
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("a wrong token got %d", resp.StatusCode)
		}
	}
	// A crash and a restart (the server prints its key again), and the
	// errors a caller sees meanwhile.
	if m, err := nc.Request("mcp.v1.req.alice.tools.call.alpha__crash", []byte(`{"name":"alpha__crash","arguments":{}}`), 10*time.Second); err == nil {
		public.Write(m.Data)
	}
	if m, err := nc.Request("mcp.v1.req.alice.tools.call.alpha__echo", []byte(`{"name":"alpha__echo","arguments":{"text":"x"}}`), 10*time.Second); err == nil {
		public.Write(m.Data)
	}
	waitForTool(t, nc, "alpha__echo", &logs)
	if m, err := nc.Request("mcp.v1.req.alice.servers.list", []byte(`{}`), 10*time.Second); err == nil {
		public.Write(m.Data)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("gw run did not stop")
	}

	// Every message of every stream: events, the catalog, status, buckets.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	streams := 0
	for name := range js.StreamNames(sctx).Name() {
		streams++
		st, err := js.Stream(sctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(sctx)
		if err != nil {
			t.Fatal(err)
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
			msg, err := st.GetMsg(sctx, seq)
			if err != nil {
				continue // deleted or purged
			}
			fmt.Fprintf(&public, "%s %v %s\n", msg.Subject, msg.Header, msg.Data)
		}
	}
	if streams == 0 {
		t.Fatal("gw made no streams; the test proves nothing")
	}
	for _, s := range planted {
		if strings.Contains(logs.String(), s) {
			t.Errorf("%s is in gw's log", s)
		}
		if strings.Contains(public.String(), s) {
			t.Errorf("%s is in what gw published or answered", s)
		}
	}
	// The test sees what it greps: the stderr line was logged (redacted),
	// and the sender got its argument back.
	if !strings.Contains(logs.String(), "starting with key [redacted]") {
		t.Errorf("the server's stderr line is not in the log; the grep proves nothing about it")
	}
	if strings.Count(own.String(), argSecret) < 2 {
		t.Errorf("the argument did not come back to its sender: %s", own.String())
	}
	t.Logf("grepped %d bytes of log and %d bytes published or answered, from %d streams", len(logs.String()), public.Len(), streams)
	if t.Failed() {
		t.Logf("planted (%s); log:\n%s", secretsDesc, logs.String())
	}
}
