package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/transport/natsconn"
	"github.com/gwmcp/gw/transport/natsface"
)

// natsServerBin finds a nats-server binary (.ci/run installs it with go
// install; Debian's is too old). CI must have it; elsewhere the test skips.
func natsServerBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(string(out[:len(out)-1]), "bin", "nats-server")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("nats-server not installed (go install github.com/nats-io/nats-server/v2@v2.15.2)")
	}
	t.Skip("nats-server not installed; go install github.com/nats-io/nats-server/v2@v2.15.2")
	return ""
}

// startNATSServer runs a real nats-server process with JetStream.
func startNATSServer(t *testing.T, bin string, port int, store string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", store)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server did not listen: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNATSServerRestartDuringLoad kills the NATS server (a separate process)
// while agents call tools through gw, and starts it again: every request
// gets at most one reply, each reply is its own request's, nothing runs
// twice, and calls succeed again once the server is back.
func TestNATSServerRestartDuringLoad(t *testing.T) {
	bin := natsServerBin(t)
	port, store := freePort(t), t.TempDir()
	ns := startNATSServer(t, bin, port, store)
	defer func() { _ = ns.Process.Kill(); _, _ = ns.Process.Wait() }()
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	ctx := context.Background()

	gwConn, err := natsconn.Connect(ctx, natsconn.ConnOptions{URL: url, Name: "gw", ReconnectWait: 100 * time.Millisecond, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer gwConn.Close()
	exe, _ := os.Executable()
	h := &faceHandler{}
	face, err := natsface.New(gwConn, h, natsface.Options{Gateway: "restart", Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	events := newEventBridge(face, discardLogger())
	g, err := gateway.New(gateway.Options{Logger: discardLogger(), Events: events,
		Servers: []gateway.ServerSpec{{Name: "s", Command: exe, Env: map[string]string{"MCPTEST_SERVER": "1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	h.g = g
	if err := face.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = face.Stop(context.Background())
		_ = g.Close()
		events.close()
	}()

	agent, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	// One inbox for every reply, so a duplicate reply would be seen.
	var mu sync.Mutex
	replies := map[string]int{}
	wrong := 0
	waiting := map[string]chan struct{}{}
	sub, err := agent.Subscribe("_INBOX.restart.>", func(m *nats.Msg) {
		id := m.Subject[len("_INBOX.restart."):]
		var r struct {
			Content []struct{ Text string } `json:"content"`
		}
		mu.Lock()
		defer mu.Unlock()
		replies[id]++
		if json.Unmarshal(m.Data, &r) == nil && len(r.Content) > 0 && r.Content[0].Text != id {
			wrong++
		}
		if ch, ok := waiting[id]; ok && replies[id] == 1 {
			close(ch)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	var published atomic.Int64
	callOnce := func(id string, wait time.Duration) bool {
		ch := make(chan struct{})
		mu.Lock()
		waiting[id] = ch
		mu.Unlock()
		body := fmt.Sprintf(`{"name":"s__echo","arguments":{"text":%q}}`, id)
		if err := agent.PublishRequest("mcp.v1.req.alice.tools.call.s__echo", "_INBOX.restart."+id, []byte(body)); err != nil {
			return false
		}
		published.Add(1)
		select {
		case <-ch:
			return true
		case <-time.After(wait):
			return false
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for !callOnce("warmup-"+strconv.FormatInt(time.Now().UnixNano(), 10), time.Second) {
		if time.Now().After(deadline) {
			t.Fatal("the tool never became reachable over NATS")
		}
	}

	var sent, answered atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				if callOnce(fmt.Sprintf("w%d-%d", w, i), 5*time.Second) {
					answered.Add(1)
				}
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	_ = ns.Process.Kill() // the NATS server dies under load…
	_, _ = ns.Process.Wait()
	time.Sleep(500 * time.Millisecond)
	ns = startNATSServer(t, bin, port, store) // …and comes back on the same port and store
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()

	// After the restart, calls work again.
	deadline = time.Now().Add(30 * time.Second)
	for i := 0; i < 20; {
		if callOnce(fmt.Sprintf("after-%d", i), 5*time.Second) {
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatal("calls do not succeed after the NATS server came back")
		}
	}
	time.Sleep(200 * time.Millisecond) // let any late duplicate arrive

	mu.Lock()
	defer mu.Unlock()
	for id, n := range replies {
		if n > 1 {
			t.Errorf("request %s answered %d times", id, n)
		}
	}
	if wrong > 0 {
		t.Errorf("%d replies carried another request's result", wrong)
	}
	// Nothing ran twice: the server executed at most one call per request.
	res, err := g.CallTool(ctx, json.RawMessage(`{"name":"s__stats","arguments":{}}`), gateway.CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		StructuredContent struct {
			Methods map[string]int `json:"methods"`
		} `json:"structuredContent"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		t.Fatal(err)
	}
	executed := r.StructuredContent.Methods["tools/call"] - 1 // the stats call itself
	if int64(executed) > published.Load() {
		t.Errorf("%d tool executions for %d requests: something ran twice", executed, published.Load())
	}
	t.Logf("load: %d sent, %d answered during the restart window; %d executions in all", sent.Load(), answered.Load(), executed)
	if answered.Load() == 0 {
		t.Error("no call was answered during the load")
	}
}
