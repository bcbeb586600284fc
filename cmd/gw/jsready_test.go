package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/gwmcp/gw/internal/mcptest"
)

// TestRunWaitsForJetStream: `gw run` with nats.replicas: 3 starts while its
// cluster has one node of three up, so JetStream has no quorum and cannot
// place the stream; gw tries again until the other nodes join (as every
// gateway of a fleet starting at once does) instead of exiting.
func TestRunWaitsForJetStream(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node NATS cluster")
	}
	clientPorts := []int{freePort(t), freePort(t), freePort(t)}
	routePorts := []int{freePort(t), freePort(t), freePort(t)}
	var routes []string
	for _, p := range routePorts {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	node := func(i int) *server.Server {
		t.Helper()
		s, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: clientPorts[i],
			JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "c", Host: "127.0.0.1", Port: routePorts[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		})
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		t.Cleanup(s.Shutdown)
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatalf("node %d not ready", i)
		}
		return s
	}
	node(0)
	url := fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[0])
	cfg := writeConfig(t, "gw.yaml", fmt.Sprintf(`
nats: {url: "%s", gateway: patient, replicas: 3}
http: {addr: ""}
policies: {cache_dir: %s}
gateway: {start_timeout: 60s}
servers:
  alpha:
    command: EXE
    env: {MCPTEST_SERVER: "1"}
`, url, t.TempDir()))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr mcptest.SyncBuffer
	done := make(chan int, 1)
	var stdout bytes.Buffer
	go func() {
		code := run(ctx, []string{"run", "-c", cfg}, &stdout, &stderr)
		done <- code
		close(done)
	}()
	defer func() { cancel(); <-done }() // a closed channel once the code was taken

	// gw is waiting, not gone.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), "JetStream is not ready yet") {
		select {
		case code := <-done:
			t.Fatalf("gw run exited %d while the cluster formed\n%s%s", code, stdout.String(), stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("gw run never said it waits for JetStream\n%s", stderr.String())
		}
	}
	node(1)
	node(2)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for deadline := time.Now().Add(60 * time.Second); ; {
		_, err := nc.Request("mcp.v1.req.alice.tools.call.alpha__echo", []byte(`{"name":"alpha__echo","arguments":{"text":"hi"}}`), 2*time.Second)
		if err == nil {
			break
		}
		select {
		case code := <-done:
			t.Fatalf("gw run exited %d\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("gw never served once the cluster was whole: %v\n%s", err, stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
