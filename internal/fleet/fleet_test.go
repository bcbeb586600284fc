package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/gwmcp/gw/internal/fleet"
	"github.com/gwmcp/gw/transport/jsonrpc"
	"github.com/gwmcp/gw/transport/natsconn"
	"github.com/gwmcp/gw/transport/natsface"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startServer starts gw's embedded nats-server, in process only.
func startServer(t *testing.T) *natsconn.Embedded {
	t.Helper()
	e, err := natsconn.StartEmbedded(context.Background(), natsconn.EmbeddedOptions{StoreDir: t.TempDir(), Port: 0,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	return e
}

func connect(t *testing.T, e *natsconn.Embedded) *nats.Conn {
	t.Helper()
	nc, err := e.Connect("fleet-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// tools is a gateway's handler: {gw}_ok answers, {gw}_fail fails after
// 2 ms.
type tools struct{ name string }

func (g tools) Serve(_ context.Context, req *natsface.Request) (json.RawMessage, error) {
	var p struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(req.Params, &p)
	if p.Name == g.name+"_fail" {
		time.Sleep(2 * time.Millisecond)
		return nil, jsonrpc.NewError(-32001, "failed")
	}
	return json.RawMessage(`{"content":[]}`), nil
}

// startGateway starts a NATS face named name hosting {name}_ok and
// {name}_fail of server srv, and publishes what gw run publishes: the
// catalog (with toolsByServer) and a ready status naming its servers and
// policies.
func startGateway(t *testing.T, nc *nats.Conn, name string, servers ...string) *natsface.Face {
	t.Helper()
	f, err := natsface.New(nc, tools{name}, natsface.Options{Gateway: name, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Methods: []string{"tools/list", "tools/call"}})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{name + "_fail", name + "_ok"}
	if err := f.SetTools(names); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Stop(context.Background()) })
	cat := fmt.Sprintf(`{"tools":[{"name":%q},{"name":%q}],"prompts":[],"toolsByServer":{%q:[%q,%q]}}`,
		names[0], names[1], servers[0], names[0], names[1])
	if err := f.PublishCatalog(ctx, json.RawMessage(cat)); err != nil {
		t.Fatal(err)
	}
	var sts []string
	for _, s := range servers {
		sts = append(sts, fmt.Sprintf(`{"name":%q,"state":"ready","pid":42,"failures":0,"restarts":0,"serverInfo":{"name":"x","version":"1"},"since":"2026-01-02T03:04:05Z"}`, s))
	}
	st := fmt.Sprintf(`{"gateway":%q,"state":"ready","servers":[%s],"policies":{"authorize":"sha256:aa","collision":"sha256:bb"},"time":"2026-01-02T03:04:05Z"}`,
		name, strings.Join(sts, ","))
	if err := f.PublishGatewayStatus(ctx, json.RawMessage(st)); err != nil {
		t.Fatal(err)
	}
	return f
}

func call(t *testing.T, nc *nats.Conn, tool string) {
	t.Helper()
	if _, err := nc.Request("mcp.v1.req.alice.tools.call."+tool, []byte(`{"name":"`+tool+`","arguments":{}}`), 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func startView(t *testing.T, nc *nats.Conn, opts fleet.Options) *fleet.View {
	t.Helper()
	v, err := fleet.New(nc, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	select {
	case <-v.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("the view never became ready")
	}
	return v
}

// eventually waits for the snapshot to satisfy ok, reading it at every
// change.
func eventually(t *testing.T, v *fleet.View, what string, ok func(fleet.Snapshot) bool) fleet.Snapshot {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		changed := v.Changed()
		s := v.Snapshot()
		if ok(s) {
			return s
		}
		select {
		case <-changed:
		case <-deadline:
			b, _ := json.MarshalIndent(s, "", "  ")
			t.Fatalf("never %s; last snapshot:\n%s", what, b)
		}
	}
}

func gatewayNamed(s fleet.Snapshot, name string) (fleet.Gateway, bool) {
	i := slices.IndexFunc(s.Gateways, func(g fleet.Gateway) bool { return g.Name == name })
	if i < 0 {
		return fleet.Gateway{}, false
	}
	return s.Gateways[i], true
}

// TestViewFollowsTheFleet: two gateways; the view lists both, sorted, with
// their servers in their order, the tools per server, the policies; server
// status events change a server's state (and add a server the gateway
// status did not name); calls show as totals, a rate over the poll window
// and a latency; a gateway that stops answering stats is unreachable, one
// that says stopped is stopped.
func TestViewFollowsTheFleet(t *testing.T) {
	s := startServer(t)
	nc := connect(t, s)
	b := startGateway(t, nc, "b", "notes", "web")
	a := startGateway(t, nc, "a", "fs")
	v := startView(t, connect(t, s), fleet.Options{Interval: 200 * time.Millisecond})

	snap := eventually(t, v, "both gateways ready with tools", func(s fleet.Snapshot) bool {
		return len(s.Gateways) == 2 && s.Gateways[0].Tools == 2 && s.Gateways[1].Tools == 2
	})
	if snap.Gateways[0].Name != "a" || snap.Gateways[1].Name != "b" {
		t.Fatalf("gateways %q, %q; want a, b", snap.Gateways[0].Name, snap.Gateways[1].Name)
	}
	gb := snap.Gateways[1]
	if gb.State != "ready" || gb.Policies["authorize"] != "sha256:aa" || gb.Policies["collision"] != "sha256:bb" {
		t.Errorf("b: state %q, policies %v", gb.State, gb.Policies)
	}
	if len(gb.Servers) != 2 || gb.Servers[0].Name != "notes" || gb.Servers[1].Name != "web" ||
		!slices.Equal(gb.Servers[0].Tools, []string{"b_fail", "b_ok"}) || len(gb.Servers[1].Tools) != 0 || gb.Servers[0].PID != 42 {
		t.Errorf("b's servers: %+v", gb.Servers)
	}

	// Server status events: web restarts on b; a server gw never named
	// in its status (added by a reload) joins the end.
	ctx := context.Background()
	if err := b.PublishServerStatus(ctx, "web", json.RawMessage(`{"name":"web","state":"restarting","failures":1,"restarts":0,"lastError":"exit status 1"}`)); err != nil {
		t.Fatal(err)
	}
	if err := b.PublishServerStatus(ctx, "late", json.RawMessage(`{"name":"late","state":"starting","failures":0,"restarts":0}`)); err != nil {
		t.Fatal(err)
	}
	// Keys are exact: "State" is not "state".
	if err := a.PublishServerStatus(ctx, "fs", json.RawMessage(`{"name":"fs","State":"failed","state":"ready","pid":7}`)); err != nil {
		t.Fatal(err)
	}
	snap = eventually(t, v, "web restarting and late listed", func(s fleet.Snapshot) bool {
		g, _ := gatewayNamed(s, "b")
		return len(g.Servers) == 3 && g.Servers[1].State == "restarting" && g.Servers[2].Name == "late"
	})
	if g, _ := gatewayNamed(snap, "b"); g.Servers[1].LastError != "exit status 1" || g.Servers[1].Failures != 1 {
		t.Errorf("web: %+v", g.Servers[1])
	}
	eventually(t, v, "fs ready with pid 7", func(s fleet.Snapshot) bool {
		g, _ := gatewayNamed(s, "a")
		return len(g.Servers) == 1 && g.Servers[0].State == "ready" && g.Servers[0].PID == 7
	})

	// Calls: totals, errors, a rate and a latency over the window.
	for range 20 {
		call(t, nc, "a_ok")
	}
	for range 5 {
		call(t, nc, "a_fail")
	}
	snap = eventually(t, v, "a's calls counted with a rate", func(s fleet.Snapshot) bool {
		g, _ := gatewayNamed(s, "a")
		return g.Calls.Requests == 25 && g.Calls.Errors == 5 && g.Calls.Window > 0 && g.Calls.Rate > 0
	})
	ga, _ := gatewayNamed(snap, "a")
	if ga.Calls.LatencyMs <= 0 || ga.Calls.AvgLatencyMs <= 0 || ga.Calls.ErrorRate <= 0 {
		t.Errorf("a's calls: %+v", ga.Calls)
	}
	if i := slices.IndexFunc(ga.Endpoints, func(e fleet.Endpoint) bool { return e.Name == "at-tools-call" }); i < 0 || ga.Endpoints[i].Requests != 25 {
		t.Errorf("a's endpoints: %+v", ga.Endpoints)
	}
	if gb, _ := gatewayNamed(snap, "b"); gb.Calls.Requests != 0 {
		t.Errorf("b served calls: %+v", gb.Calls)
	}
	// No calls for a while: the rate falls to zero, the totals stay.
	eventually(t, v, "a's rate back to zero", func(s fleet.Snapshot) bool {
		g, _ := gatewayNamed(s, "a")
		return g.Calls.Requests == 25 && g.Calls.Window > 0 && g.Calls.Rate == 0
	})

	// a dies without a word (its micro service goes): unreachable. b says
	// stopped: stopped, not unreachable.
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, v, "a unreachable", func(s fleet.Snapshot) bool {
		g, _ := gatewayNamed(s, "a")
		return g.State == "unreachable" && g.Reported == "ready"
	})
	if err := b.PublishGatewayStatus(ctx, json.RawMessage(`{"gateway":"b","state":"stopped","servers":[]}`)); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, v, "b stopped", func(s fleet.Snapshot) bool {
		g, _ := gatewayNamed(s, "b")
		return g.State == "stopped" && len(g.Servers) == 0
	})
}

// TestViewReplaysHistory: a view started after the events learns the fleet
// from the event stream, and the latest denials from the audit stream;
// live audit events follow, each counted once.
func TestViewReplaysHistory(t *testing.T) {
	s := startServer(t)
	nc := connect(t, s)
	g := startGateway(t, nc, "solo", "notes")
	ctx := context.Background()
	if err := g.PublishServerStatus(ctx, "notes", json.RawMessage(`{"name":"notes","state":"degraded","failures":3,"restarts":3}`)); err != nil {
		t.Fatal(err)
	}
	// Audit history in the audit stream the face made: 3 allows, 2 denials.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	audit := func(i int, principal, decision string) {
		t.Helper()
		policy := "sha256:cc"
		if i > 5 {
			policy = "sha256:dd"
		}
		body := fmt.Sprintf(`{"time":"2026-01-02T03:04:%02dZ","gateway":"solo","principal":%q,"server":"notes","tool":"notes__t%d","serverTool":"t","decision":%q,"reason":"r%d","policy":%q}`,
			i, principal, i, decision, i, policy)
		if _, err := js.Publish(ctx, "mcp.v1.evt.audit."+natsface.EncodeToken(principal), []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	audit(1, "alice", "allow")
	audit(2, "bob", "deny")
	audit(3, "alice", "allow")
	audit(4, "a.b", "deny")
	audit(5, "alice", "allow")

	v := startView(t, connect(t, s), fleet.Options{Interval: 200 * time.Millisecond})
	// Ready means the history is in.
	snap := v.Snapshot()
	if snap.Audit.Events != 5 || len(snap.Gateways) != 1 {
		t.Fatalf("at Ready: %d audit events, %d gateways; want 5, 1", snap.Audit.Events, len(snap.Gateways))
	}
	if gw := snap.Gateways[0]; len(gw.Servers) != 1 || gw.Servers[0].State != "degraded" || gw.Servers[0].Restarts != 3 {
		t.Errorf("solo's servers: %+v", gw.Servers)
	}
	if p := snap.Gateways[0].Policies["authorize"]; p != "sha256:aa" {
		t.Errorf("authorize policy %q: decisions before the gateway's status changed it", p)
	}
	if a := snap.Audit; a.Denials != 2 || len(a.Recent) != 2 || a.Recent[0].Principal != "a.b" || a.Recent[1].Principal != "bob" ||
		a.Recent[0].Tool != "notes__t4" || a.Recent[0].Policy != "sha256:cc" || a.Recent[0].Reason != "r4" {
		t.Errorf("audit: %+v", a)
	}

	audit(6, "carol", "deny")
	snap = eventually(t, v, "carol's live denial", func(s fleet.Snapshot) bool { return s.Audit.Denials == 3 })
	if snap.Audit.Recent[0].Principal != "carol" || snap.Audit.Events != 6 {
		t.Errorf("audit: %+v", snap.Audit)
	}
	// carol's decision came after the status, from another module: a
	// hot swap, which the view now shows.
	if p := snap.Gateways[0].Policies["authorize"]; p != "sha256:dd" {
		t.Errorf("authorize policy after a newer decision: %q", p)
	}
	// The same event twice (seen live and replayed) counts once.
	time.Sleep(300 * time.Millisecond)
	if a := v.Snapshot().Audit; a.Events != 6 || a.Denials != 3 {
		t.Errorf("audit after settling: %+v", a)
	}
}

// TestViewDeadGateway: a gateway gone before the view started (no stopped
// status: killed) is unreachable in the first view, not ready.
func TestViewDeadGateway(t *testing.T) {
	s := startServer(t)
	startGateway(t, connect(t, s), "live", "notes")
	dead := startGateway(t, connect(t, s), "dead", "notes")
	if err := dead.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	v := startView(t, connect(t, s), fleet.Options{Interval: 200 * time.Millisecond})
	snap := v.Snapshot()
	if len(snap.Gateways) != 2 || snap.Gateways[0].State != "unreachable" || snap.Gateways[0].Reported != "ready" ||
		snap.Gateways[1].State != "ready" {
		t.Errorf("at Ready: %+v", snap.Gateways)
	}
}

// TestViewEmptyBus: no gateway has made anything yet; the view is ready
// and empty, and says no audit events.
func TestViewEmptyBus(t *testing.T) {
	s := startServer(t)
	v := startView(t, connect(t, s), fleet.Options{Interval: 100 * time.Millisecond})
	snap := v.Snapshot()
	if len(snap.Gateways) != 0 || snap.Audit.Events != 0 || snap.Audit.Recent == nil || snap.Prefix != "mcp.v1" {
		t.Errorf("snapshot: %+v", snap)
	}
	// A gateway that comes later is found.
	startGateway(t, connect(t, s), "late", "notes")
	eventually(t, v, "the late gateway", func(s fleet.Snapshot) bool { return len(s.Gateways) == 1 && s.Gateways[0].Tools == 2 })
}

func TestNewRefusesBadOptions(t *testing.T) {
	s := startServer(t)
	nc := connect(t, s)
	for _, o := range []fleet.Options{{Prefix: "a.*"}, {Prefix: "a..b"}, {Interval: -1}, {Denials: -1}} {
		if _, err := fleet.New(nc, o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
	if _, err := fleet.New(nil, fleet.Options{}); err == nil {
		t.Error("New(nil) accepted")
	}
}
