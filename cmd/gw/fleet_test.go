//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sys/unix"

	"github.com/gwmcp/gw/transport/face"
	"github.com/gwmcp/gw/transport/natsclient"
)

// The fleet test's network: hosts h1–h3 each run a nats-server node and a
// gw run, h4 the agents, all on one bridge (10.77.0.0/24, the bridge in a
// namespace of its own). Every namespace is named fleetNSPrefix + the test's
// pid + "-" + its role, so a run that crashed is cleaned up by the next.
const (
	fleetNSPrefix = "gwfleet-"
	fleetHosts    = 3
)

func fleetAddr(host int) string { return fmt.Sprintf("10.77.0.%d", host+1) }

// fleetNet is the namespaces and links of one test run.
type fleetNet struct {
	t  *testing.T
	id string // fleetNSPrefix + pid
}

func (n *fleetNet) bridge() string    { return n.id + "-br" }
func (n *fleetNet) host(i int) string { return fmt.Sprintf("%s-h%d", n.id, i+1) }
func (n *fleetNet) agents() string    { return n.host(fleetHosts) }
func (n *fleetNet) port(i int) string { return fmt.Sprintf("h%d", i+1) } // host i's port on the bridge
func ipCmd(args ...string) error      { return runCmd("ip", args...) }

func (n *fleetNet) mustIP(args ...string) {
	n.t.Helper()
	must(n.t, ipCmd(args...))
}

func runCmd(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newFleetNet makes the namespaces, or skips the test where it may not.
func newFleetNet(t *testing.T) *fleetNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the fleet test makes network namespaces (ip netns) and needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the fleet test needs iproute2's ip to make network namespaces")
	}
	removeStaleFleets(t)
	n := &fleetNet{t: t, id: fleetNSPrefix + strconv.Itoa(os.Getpid())}
	removeFleet(n.id) // a namespace of this very pid would be a leftover too
	if err := ipCmd("netns", "add", n.bridge()); err != nil {
		t.Skipf("network namespaces are not allowed here: %v", err)
	}
	t.Cleanup(func() { removeFleet(n.id) })
	// Where a namespace can be made but not a bridge, a veth pair or a
	// process inside, network namespaces are not really allowed either.
	setup := func(args ...string) {
		t.Helper()
		if err := ipCmd(args...); err != nil {
			t.Skipf("cannot build the fleet's network here: %v", err)
		}
	}
	setup("-n", n.bridge(), "link", "add", "br0", "type", "bridge")
	setup("-n", n.bridge(), "link", "set", "br0", "up")
	for i := 0; i <= fleetHosts; i++ {
		h := n.host(i)
		setup("netns", "add", h)
		setup("link", "add", "eth0", "netns", h, "type", "veth", "peer", "name", n.port(i), "netns", n.bridge())
		setup("-n", n.bridge(), "link", "set", n.port(i), "master", "br0", "up")
		setup("-n", h, "addr", "add", fleetAddr(i)+"/24", "dev", "eth0")
		setup("-n", h, "link", "set", "eth0", "up")
		setup("-n", h, "link", "set", "lo", "up")
	}
	setup("netns", "exec", n.agents(), "true")
	return n
}

// cut takes host i's own link down (the host sees it) or brings it up.
func (n *fleetNet) cut(i int, down bool) {
	state := map[bool]string{true: "down", false: "up"}[down]
	n.mustIP("-n", n.host(i), "link", "set", "eth0", state)
}

// partition detaches host i's port from the bridge, or attaches it again:
// its link stays up and every packet is silently lost, as in a real
// partition.
func (n *fleetNet) partition(i int, on bool) {
	if on {
		n.mustIP("-n", n.bridge(), "link", "set", n.port(i), "nomaster")
	} else {
		n.mustIP("-n", n.bridge(), "link", "set", n.port(i), "master", "br0")
	}
}

// removeFleet kills every process in the namespaces of one run and deletes
// them (the veth pairs go with them).
func removeFleet(id string) {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if !strings.HasPrefix(name, id+"-") {
			continue
		}
		pids, _ := exec.Command("ip", "netns", "pids", name).Output()
		for _, p := range strings.Fields(string(pids)) {
			if pid, err := strconv.Atoi(p); err == nil && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		_ = ipCmd("netns", "del", name)
	}
}

// removeStaleFleets removes the namespaces of earlier runs whose test
// process is gone.
func removeStaleFleets(t *testing.T) {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, fleetNSPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == syscall.ESRCH {
			t.Logf("removing a leftover namespace of an earlier run: %s", name)
			removeFleet(fleetNSPrefix + pidText)
		}
	}
}

// dialIn dials from network namespace ns: the socket is made on a thread
// moved into ns for the dial, and keeps that namespace for its life.
func dialIn(ns, network, addr string, timeout time.Duration) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		back, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer back.Close()
		f, err := os.Open(filepath.Join("/var/run/netns", ns))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		c, err := net.DialTimeout(network, addr, timeout)
		ch <- result{c, err}
		// Back home, or the thread stays locked and ends with this goroutine.
		if unix.Setns(int(back.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	r := <-ch
	return r.c, r.err
}

// nsDialer is a nats.CustomDialer that dials from a namespace.
type nsDialer struct{ ns string }

func (d nsDialer) Dial(network, addr string) (net.Conn, error) {
	return dialIn(d.ns, network, addr, 2*time.Second)
}

// fleetProc is a process started in a namespace with ip netns exec (which
// execs it: the pid is the process's own).
type fleetProc struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

func startIn(t *testing.T, ns, name string, env []string, bin string, args ...string) *fleetProc {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	// Should the test process die, so does this one (gw's own children
	// then see their input end and exit too).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &fleetProc{name: name, cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { _ = p.stop(10 * time.Second) })
	return p
}

// stop sends SIGTERM, and SIGKILL after grace; it reports whether the
// process exited 0 before that.
func (p *fleetProc) stop(grace time.Duration) bool {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode() == 0
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return false
	}
}

func (p *fleetProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// tail is the end of the process's output, for a failure's log.
func (p *fleetProc) tail() string {
	s := p.out.String()
	if len(s) > 6000 {
		s = "…" + s[len(s)-6000:]
	}
	return s
}

// fleet is the whole cluster: nodes, gateways, agents.
type fleet struct {
	t       *testing.T
	net     *fleetNet
	dir     string
	natsBin string
	nodes   [fleetHosts]*fleetProc
	gws     [fleetHosts]*fleetProc
	http    *http.Client

	mu    sync.Mutex
	calls []*fleetCall
}

func (f *fleet) nodeConf(i int) string {
	routes := make([]string, fleetHosts)
	for j := range routes {
		routes[j] = fmt.Sprintf("%q", "nats-route://"+fleetAddr(j)+":6222")
	}
	path := filepath.Join(f.dir, fmt.Sprintf("n%d.conf", i+1))
	conf := fmt.Sprintf(`server_name: n%[1]d
listen: "%[2]s:4222"
http: "%[2]s:8222"
ping_interval: "1s"
ping_max: 2
write_deadline: "2s"
jetstream {
  store_dir: %[3]q
  max_memory_store: 67108864
  max_file_store: 1073741824
}
cluster {
  name: gwfleet
  listen: "%[2]s:6222"
  routes: [%[4]s]
}
`, i+1, fleetAddr(i), filepath.Join(f.dir, fmt.Sprintf("n%d", i+1)), strings.Join(routes, ", "))
	must(f.t, os.WriteFile(path, []byte(conf), 0o644))
	return path
}

func (f *fleet) startNode(i int) {
	f.nodes[i] = startIn(f.t, f.net.host(i), fmt.Sprintf("nats n%d", i+1), nil, f.natsBin, "-c", f.nodeConf(i))
}

// healthy reports whether node i answers /healthz with JetStream current.
func (f *fleet) healthy(i int) bool {
	resp, err := f.http.Get("http://" + fleetAddr(i) + ":8222/healthz")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// connectedTo says which node holds gateway g's NATS connection, -1 if none
// the agents can see.
func (f *fleet) connectedTo(g int) int {
	for i := range fleetHosts {
		resp, err := f.http.Get("http://" + fleetAddr(i) + ":8222/connz?limit=1024")
		if err != nil {
			continue
		}
		var cz struct {
			Connections []struct {
				Name string `json:"name"`
			} `json:"connections"`
		}
		err = json.NewDecoder(resp.Body).Decode(&cz)
		resp.Body.Close()
		if err != nil {
			continue
		}
		for _, c := range cz.Connections {
			if c.Name == fmt.Sprintf("gw g%d", g+1) {
				return i
			}
		}
	}
	return -1
}

func (f *fleet) startGW(i int) {
	exe, err := os.Executable()
	must(f.t, err)
	var servers strings.Builder
	for _, s := range []string{fmt.Sprintf("s%d", i+1), "any"} {
		fmt.Fprintf(&servers, "  %s: {command: %s, env: {MCPTEST_SERVER: \"1\", %s: %q}}\n",
			s, exe, envCallLog, filepath.Join(f.dir, fmt.Sprintf("calls-g%d-%s.log", i+1, s)))
	}
	cfg := filepath.Join(f.dir, fmt.Sprintf("g%d.yaml", i+1))
	must(f.t, os.WriteFile(cfg, []byte(fmt.Sprintf(`nats:
  url: nats://%s:4222
  gateway: g%d
  ping_interval: 1s
  replicas: 3
http: {addr: ""}
gateway: {start_timeout: 60s}
servers:
%s`, fleetAddr(i), i+1, servers.String())), 0o644))
	f.gws[i] = startIn(f.t, f.net.host(i), fmt.Sprintf("gw g%d", i+1), []string{envRunAsGW + "=1"}, exe, "run", "-c", cfg)
}

// fleetCall is one tools/call an agent sent, with a unique id as its text.
type fleetCall struct {
	tool, id   string
	echo       bool // its arguments are {"text": id}, which the servers record
	start, end time.Time
	outcome    string // ok, error, noresp (no responders), timeout, wrong, sendfail
}

// agent is one NATS connection from the agents' host; every reply to it
// comes to one wildcard inbox, so a second reply to a request is seen.
type agent struct {
	f       *fleet
	name    string
	nc      *nats.Conn
	mu      sync.Mutex
	replies map[string]int
	waiting map[string]chan *nats.Msg
}

// newAgent connects an agent on the agents' host to every node, node first
// first.
func (f *fleet) newAgent(name string, first int) *agent {
	var urls []string
	for j := range fleetHosts {
		urls = append(urls, "nats://"+fleetAddr((first+j)%fleetHosts)+":4222")
	}
	return f.newAgentIn(f.net.agents(), name, urls)
}

// newAgentIn connects an agent in namespace ns to the nodes at urls, in
// their order.
func (f *fleet) newAgentIn(ns, name string, urls []string) *agent {
	a := &agent{f: f, name: name, replies: map[string]int{}, waiting: map[string]chan *nats.Msg{}}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Name("agent "+name),
		nats.SetCustomDialer(nsDialer{ns}), nats.DontRandomize(),
		nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond), nats.Timeout(2*time.Second),
		nats.PingInterval(time.Second), nats.MaxPingsOutstanding(2))
	must(f.t, err)
	f.t.Cleanup(nc.Close)
	a.nc = nc
	prefix := "_INBOX.fleet." + name + "."
	_, err = nc.Subscribe(prefix+">", func(m *nats.Msg) {
		id := strings.TrimPrefix(m.Subject, prefix)
		a.mu.Lock()
		defer a.mu.Unlock()
		a.replies[id]++
		if ch, ok := a.waiting[id]; ok {
			delete(a.waiting, id)
			ch <- m
		}
	})
	must(f.t, err)
	return a
}

// call sends one call of tool with text id and waits for its answer.
func (a *agent) call(tool, id string) *fleetCall {
	return a.callArgs(tool, id, fmt.Sprintf(`{"text":%q}`, id))
}

// callArgs sends one call of tool with arguments args, under id.
func (a *agent) callArgs(tool, id, args string) *fleetCall {
	c := &fleetCall{tool: tool, id: id, echo: strings.HasPrefix(args, `{"text":`), start: time.Now()}
	ch := make(chan *nats.Msg, 1)
	a.mu.Lock()
	a.waiting[id] = ch
	a.mu.Unlock()
	msg := nats.NewMsg("mcp.v1.req." + a.name + ".tools.call." + tool)
	msg.Reply = "_INBOX.fleet." + a.name + "." + id
	msg.Header.Set("Mcp-Timeout-Ms", "2000")
	msg.Data = fmt.Appendf(nil, `{"name":%q,"arguments":%s}`, tool, args)
	if err := a.nc.PublishMsg(msg); err != nil {
		c.outcome = "sendfail"
	} else {
		select {
		case m := <-ch:
			c.outcome = classify(m, id, c.echo)
		case <-time.After(3 * time.Second):
			c.outcome = "timeout"
		}
	}
	a.mu.Lock()
	delete(a.waiting, id)
	a.mu.Unlock()
	c.end = time.Now()
	a.f.mu.Lock()
	a.f.calls = append(a.f.calls, c)
	a.f.mu.Unlock()
	return c
}

// classify names a reply's outcome; a reply to an echo (text id) must
// carry id.
func classify(m *nats.Msg, id string, echo bool) string {
	if m.Header.Get("Status") == "503" && len(m.Data) == 0 {
		return "noresp"
	}
	var r struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
		Code    *int   `json:"code"`
		Message string `json:"message"`
	}
	switch {
	case json.Unmarshal(m.Data, &r) != nil:
		return "wrong"
	case len(r.Content) == 1 && (r.Content[0].Text == id || !echo):
		return "ok"
	case r.Code != nil && r.Message != "":
		return "error"
	}
	return "wrong"
}

// waitCallable calls tool until a call succeeds, and says how long it took.
func (a *agent) waitCallable(tool string, within time.Duration) time.Duration {
	a.f.t.Helper()
	start := time.Now()
	for i := 0; ; i++ {
		c := a.call(tool, fmt.Sprintf("probe-%s-%d-%d", a.name, time.Now().UnixNano(), i))
		if c.outcome == "ok" {
			return time.Since(start)
		}
		if time.Since(start) > within {
			a.f.t.Fatalf("%s not callable within %s (last: %s)", tool, within, c.outcome)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// load calls every tool from every agent until stop is closed.
func (f *fleet) load(agents []*agent, tools []string, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, a := range agents {
		for _, tool := range tools {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					a.call(tool, fmt.Sprintf("%s-%s-%d", a.name, tool, i))
				}
			}()
		}
	}
	return &wg
}

// window counts the outcomes of tool's calls that started in [from, to).
func (f *fleet) window(tool string, from, to time.Time) map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := map[string]int{}
	for _, c := range f.calls {
		if c.tool == tool && !c.start.Before(from) && c.start.Before(to) {
			n[c.outcome]++
		}
	}
	return n
}

// executions counts, per call id, how many times a server read the call.
func (f *fleet) executions() map[string]int {
	f.t.Helper()
	logs, _ := filepath.Glob(filepath.Join(f.dir, "calls-*.log"))
	n := map[string]int{}
	for _, path := range logs {
		file, err := os.Open(path)
		must(f.t, err)
		sc := bufio.NewScanner(file)
		sc.Buffer(make([]byte, 64<<10), 8<<20)
		for sc.Scan() {
			var m struct {
				Params struct {
					Arguments struct {
						Text string `json:"text"`
					} `json:"arguments"`
				} `json:"params"`
			}
			if json.Unmarshal(sc.Bytes(), &m) == nil && m.Params.Arguments.Text != "" {
				n[m.Params.Arguments.Text]++
			}
		}
		file.Close()
	}
	return n
}

// catalogHealed waits until the catalog bucket, read by agent a, holds
// every gateway's entry with its tools, and the extra tools of gateway
// index extraGW.
func (f *fleet) catalogHealed(a *agent, within time.Duration, extraGW int, extra ...string) {
	f.t.Helper()
	js, err := jetstream.New(a.nc)
	must(f.t, err)
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		last = func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			kv, err := js.KeyValue(ctx, "mcp-catalog")
			if err != nil {
				return err
			}
			for g := range fleetHosts {
				e, err := kv.Get(ctx, fmt.Sprintf("gw.g%d", g+1))
				if err != nil {
					return fmt.Errorf("gw.g%d: %w", g+1, err)
				}
				tools := []string{fmt.Sprintf("s%d__echo", g+1), "any__echo"}
				if g == extraGW {
					tools = append(tools, extra...)
				}
				for _, tool := range tools {
					if !bytes.Contains(e.Value(), []byte(`"`+tool+`"`)) {
						return fmt.Errorf("gw.g%d lacks %s", g+1, tool)
					}
				}
			}
			return nil
		}()
		if last == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	f.t.Errorf("the catalog did not heal within %s: %v", within, last)
}

// replayed is one event read back from the event stream.
type replayed struct {
	subject, gateway string
	data             []byte
}

// replay reads back, with an ordered consumer made now, every event stored
// under subject (a filter).
func (f *fleet) replay(a *agent, subject string) []replayed {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js, err := jetstream.New(a.nc)
	must(f.t, err)
	var cons jetstream.Consumer
	for {
		cons, err = js.OrderedConsumer(ctx, "MCP_EVENTS", jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverAllPolicy})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			f.t.Fatalf("event stream consumer: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	info, err := cons.Info(ctx)
	must(f.t, err)
	var out []replayed
	for uint64(len(out)) < info.NumPending {
		batch, err := cons.Fetch(int(min(info.NumPending-uint64(len(out)), 100)), jetstream.FetchMaxWait(2*time.Second))
		must(f.t, err)
		for m := range batch.Messages() {
			out = append(out, replayed{subject: m.Subject(), gateway: m.Headers().Get("Mcp-Gateway"), data: m.Data()})
		}
		if ctx.Err() != nil {
			f.t.Fatalf("replayed %d of the %d events on %s", len(out), info.NumPending, subject)
		}
	}
	return out
}

// metaLeader is node i's view of JetStream's meta group: the leader's
// name, and whether every other node is current (which only the leader
// knows).
func (f *fleet) metaLeader(i int) (leader string, current bool) {
	resp, err := f.http.Get("http://" + fleetAddr(i) + ":8222/jsz")
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	var jsz struct {
		Meta *struct {
			Leader   string `json:"leader"`
			Replicas []struct {
				Current bool `json:"current"`
				Offline bool `json:"offline"`
			} `json:"replicas"`
		} `json:"meta_cluster"`
	}
	if json.NewDecoder(resp.Body).Decode(&jsz) != nil || jsz.Meta == nil {
		return "", false
	}
	current = len(jsz.Meta.Replicas) == fleetHosts-1
	for _, r := range jsz.Meta.Replicas {
		current = current && r.Current && !r.Offline
	}
	return jsz.Meta.Leader, current
}

// clusterReady reports whether every node is healthy and sees the others.
func (f *fleet) clusterReady() bool {
	for i := range fleetHosts {
		if !f.healthy(i) {
			return false
		}
	}
	// A stream of three replicas can be placed once the meta leader sees
	// every other node current.
	leader, _ := f.metaLeader(0)
	for i := range fleetHosts {
		if leader == fmt.Sprintf("n%d", i+1) {
			l, current := f.metaLeader(i)
			return l == leader && current
		}
	}
	return false
}

// waitHealthy waits until every node answers /healthz (JetStream current,
// its streams led) and sees a meta leader and every other node current.
func (f *fleet) waitHealthy(within time.Duration) {
	f.t.Helper()
	for deadline := time.Now().Add(within); !f.clusterReady(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			var jsz []byte
			if resp, err := f.http.Get("http://" + fleetAddr(0) + ":8222/jsz"); err == nil {
				jsz, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			f.t.Fatalf("the NATS cluster not healthy within %s; n1's /jsz: %s", within, jsz)
		}
	}
}

// fleetNATSServer finds nats-server (on PATH or in GOPATH/bin), or builds
// it from the module cache (it is in go.mod, for the embedded server); it
// skips the test when neither works.
func fleetNATSServer(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "nats-server")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p := filepath.Join(t.TempDir(), "nats-server")
	if out, err := exec.Command("go", "build", "-o", p, "github.com/nats-io/nats-server/v2").CombinedOutput(); err != nil {
		t.Skipf("the fleet test needs nats-server, which is not installed and cannot be built: %v: %s", err, out)
	}
	return p
}

// waitPlacement waits until JetStream places a stream of three replicas
// (the meta leader may see a node current before it counts it online):
// before that, gw run's start fails making its stream.
func (f *fleet) waitPlacement(a *agent, within time.Duration) {
	f.t.Helper()
	js, err := jetstream.New(a.nc)
	must(f.t, err)
	for deadline := time.Now().Add(within); ; time.Sleep(200 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "FLEET_PROBE", Subjects: []string{"fleet.probe"},
			Replicas: fleetHosts, Storage: jetstream.MemoryStorage})
		if err == nil {
			err = js.DeleteStream(ctx, "FLEET_PROBE")
		}
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("JetStream cannot place three replicas within %s: %v", within, err)
		}
	}
}

// TestFleetPartitions runs a fleet on a real network: three hosts (network
// namespaces joined by veth pairs to a bridge), each with a node of a
// three-node nats-server cluster (JetStream, nats.replicas 3) and a gw run
// with a server of its own (sN) and one that every gateway hosts (any);
// agents on a fourth host call every tool without pause while the test
//
//  1. takes g1's host's link down for 8 s: the other gateways' tools keep
//     working, g1's get no responders, and serve again once it is back;
//  2. kills NATS node n2 and starts it again 5 s later: g2 moves to another
//     node, the other gateways' tools keep working;
//  3. partitions for 10 s the host of the node g2 moved to (the hard case:
//     g2's host is fine, its NATS node is not; h3 if g2 is home again): the
//     gateways away from it keep working (g2 leaves its silent node within
//     a few nats.ping_intervals), a server crashes on the majority side, and
//     an agent on the partitioned host, served by its own node, adds a tool
//     to its gateway there.
//
// Through it all no call runs twice (each call's text is unique and the
// servers record every call they read) and no request gets two replies or
// another's result; a request that went out on an agent connection as it
// died gets none, and the agent's own timeout ends it. After it: the tool
// added in the partition is callable from the agents' host, the catalog
// bucket holds it (the gateway tried its catalog again), and consumers made
// now replay the crash's status events, every gateway's ready and the
// catalog.changed of the tool added.
func TestFleetPartitions(t *testing.T) {
	if testing.Short() {
		t.Skip("the fleet test takes a minute; skipped under -short")
	}
	n := newFleetNet(t)
	f := &fleet{t: t, net: n, dir: t.TempDir(), natsBin: fleetNATSServer(t),
		http: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
				return dialIn(n.agents(), network, addr, 2*time.Second)
			}}}}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range append(f.nodes[:], f.gws[:]...) {
				if p != nil {
					t.Logf("%s output:\n%s", p.name, p.tail())
				}
			}
		}
	})
	began := time.Now()

	for i := range fleetHosts {
		f.startNode(i)
	}
	f.waitHealthy(30 * time.Second)
	a1, a2 := f.newAgent("a1", 0), f.newAgent("a2", 2) // on n1 and n3
	f.waitPlacement(a1, 30*time.Second)
	// g1 makes the stream and buckets; then the others join.
	f.startGW(0)
	a1.waitCallable("s1__echo", 60*time.Second)
	f.startGW(1)
	f.startGW(2)
	a1.waitCallable("s2__echo", 60*time.Second)
	a1.waitCallable("s3__echo", 60*time.Second)
	f.catalogHealed(a2, 10*time.Second, -1)
	t.Logf("fleet up in %s", time.Since(began).Round(time.Millisecond))
	// gw connect's view of the fleet, from the agents' host, through it all.
	watcher, err := natsclient.New(f.newAgent("w", 1).nc, natsclient.Options{Principal: "w", Logger: discardLogger()})
	must(t, err)
	must(t, watcher.Start())
	t.Cleanup(watcher.Close)

	agents := []*agent{a1, a2}
	tools := []string{"s1__echo", "s2__echo", "s3__echo", "any__echo"}
	stop := make(chan struct{})
	wg := f.load(agents, tools, stop)
	stopLoad := func() {
		if stop != nil {
			close(stop)
			wg.Wait()
			stop = nil
		}
	}
	defer stopLoad()
	time.Sleep(time.Second)

	// The detection a stale TCP connection needs: NATS pings every second
	// (nodes and agents), two unanswered mean the peer is gone.
	const grace = 4 * time.Second

	// 1. g1's host loses its link under load.
	cut := time.Now()
	n.cut(0, true)
	time.Sleep(8 * time.Second)
	n.cut(0, false)
	up := time.Now()
	for _, tool := range []string{"s2__echo", "s3__echo", "any__echo"} {
		w := f.window(tool, cut.Add(grace), up)
		t.Logf("link cut: %s after %s: %v", tool, grace, w)
		if w["ok"] == 0 || w["ok"] < (w["timeout"]+w["error"]+w["noresp"])*9 {
			t.Errorf("while g1 was cut off, %s did not keep working: %v", tool, w)
		}
	}
	t.Logf("link cut: s1__echo while cut: %v", f.window("s1__echo", cut.Add(grace), up))
	t.Logf("link cut: g1 callable again %s after the link came back", a2.waitCallable("s1__echo", 30*time.Second).Round(time.Millisecond))
	f.catalogHealed(a2, 20*time.Second, -1)

	// 2. NATS node n2 is killed and started again under load.
	killed := time.Now()
	f.nodes[1].kill()
	time.Sleep(5 * time.Second)
	restarted := time.Now()
	f.startNode(1)
	f.waitHealthy(30 * time.Second)
	for _, tool := range []string{"s1__echo", "s2__echo", "s3__echo"} {
		from := killed.Add(time.Second)
		if tool == "s2__echo" {
			from = killed.Add(grace) // g2 first moves to another node
		}
		w := f.window(tool, from, restarted)
		t.Logf("n2 restart: %s: %v", tool, w)
		if w["ok"] == 0 || w["ok"] < (w["timeout"]+w["error"]+w["noresp"])*9 {
			t.Errorf("while n2 was down, %s did not keep working: %v", tool, w)
		}
	}
	t.Logf("n2 restart: g2 callable %s after n2 was healthy", a1.waitCallable("s2__echo", 30*time.Second).Round(time.Millisecond))

	// 3. A host is partitioned for 10 s under load: the host of the node
	// g2 now uses if that is not g2's own (the hard case: g2 is fine, its
	// NATS node is not), else h3.
	part := f.connectedTo(1)
	if part == 1 || part < 0 {
		part = 2
	}
	crash := 0 // a gateway away from the partition has a server crash during it
	if part == 0 {
		crash = 1
	}
	t.Logf("partition: h%d (g2 is on n%d)", part+1, f.connectedTo(1)+1)
	// An agent on the partitioned host, on its own node.
	local := f.newAgentIn(n.host(part), "local", []string{"nats://" + fleetAddr(part) + ":4222"})
	localTool, lateTool := fmt.Sprintf("s%d__echo", part+1), fmt.Sprintf("s%d__late", part+1)
	parted := time.Now()
	n.partition(part, true)
	time.Sleep(5 * time.Second) // the streams' leaders on the far side are being replaced
	crashed := time.Now()
	// Its in-flight call fails when the server dies; retried only while no
	// gateway took it.
	for i := 0; i < 20; i++ {
		if c := a1.callArgs(fmt.Sprintf("s%d__crash", crash+1), fmt.Sprintf("crash-%d", i), `{}`); c.outcome != "noresp" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The partitioned host serves its own agents, and its gateway's
	// catalog changes while the bucket is out of its reach.
	if c := local.call(localTool, "local-1"); c.outcome != "ok" {
		t.Errorf("in the partition, the local agent's call of %s: %s", localTool, c.outcome)
	}
	if c := local.callArgs(fmt.Sprintf("s%d__add_tool", part+1), "add-late", `{"name":"late"}`); c.outcome != "ok" {
		t.Errorf("in the partition, the local agent's add_tool: %s", c.outcome)
	}
	time.Sleep(10*time.Second - time.Since(parted))
	n.partition(part, false)
	healed := time.Now()
	for g := range fleetHosts {
		if g == part {
			continue
		}
		tool := fmt.Sprintf("s%d__echo", g+1)
		w := f.window(tool, parted.Add(grace), healed)
		t.Logf("partition: %s: %v", tool, w)
		if w["ok"] == 0 || w["ok"] < (w["timeout"]+w["error"]+w["noresp"])*4 {
			t.Errorf("while h%d was partitioned, %s did not keep working: %v", part+1, tool, w)
		}
	}
	w := f.window("any__echo", parted.Add(grace), healed)
	t.Logf("partition: any__echo: %v", w)
	t.Logf("partition: g%d callable %s after the partition healed", part+1,
		a2.waitCallable(fmt.Sprintf("s%d__echo", part+1), 30*time.Second).Round(time.Millisecond))
	t.Logf("partition: %s (added during it) callable %s after it healed", lateTool, a2.waitCallable(lateTool, 30*time.Second).Round(time.Millisecond))
	f.catalogHealed(a2, 20*time.Second, part, lateTool)
	// gw connect's union heals too: the watcher started before the trouble
	// lists every gateway's tools and the one added in the partition.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		list, err := watcher.Serve(context.Background(), &face.Request{Method: "tools/list", Params: json.RawMessage(`{}`)})
		missing := ""
		for _, tool := range []string{"s1__echo", "s2__echo", "s3__echo", "any__echo", lateTool} {
			if err != nil || !bytes.Contains(list, []byte(`"`+tool+`"`)) {
				missing = tool
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("gw connect's union lacks %s after the partition (%v)", missing, err)
			break
		}
	}
	stopLoad()
	f.waitHealthy(30 * time.Second) // the streams' leaders settled after the partition

	// Events replay: consumers made now see what happened before and
	// during the trouble. Right after a partition heals, the node that was
	// cut off may still claim to lead a stream for a few seconds, with what
	// it had before: a consumer made on it sees only that, so each check
	// tries a new consumer until the stream's leader is settled.
	var after []string
	start := time.Now()
	for deadline := start.Add(20 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		after = nil
		for _, e := range f.replay(a2, fmt.Sprintf("mcp.v1.evt.srv.s%d.status", crash+1)) {
			var st struct {
				State string    `json:"state"`
				Since time.Time `json:"since"`
			}
			if json.Unmarshal(e.data, &st) == nil && !st.Since.Before(crashed.Add(-time.Second)) {
				after = append(after, st.State)
			}
		}
		if slices.Contains(after, "restarting") && after[len(after)-1] == "ready" {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("status events of the crash during the partition not replayed: %v", after)
			break
		}
	}
	t.Logf("events: s%d's states since its crash in the partition, replayed after %s: %v", crash+1, time.Since(start).Round(time.Millisecond), after)
	ready := map[string]bool{}
	for _, e := range f.replay(a2, "mcp.v1.evt.gw.*.status") {
		if bytes.Contains(e.data, []byte(`"state":"ready"`)) {
			ready[e.gateway] = true
		}
	}
	if len(ready) != fleetHosts {
		t.Errorf("gateway ready events replayed: %v", ready)
	}
	// The catalog event of the change made in the partition is stored once
	// the gateway's retry gets through (the bucket may heal first).
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		var last []byte
		for _, e := range f.replay(a2, "mcp.v1.evt.catalog.changed") {
			if e.gateway == fmt.Sprintf("g%d", part+1) {
				last = e.data
			}
		}
		if bytes.Contains(last, []byte(`"`+lateTool+`"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("g%d's last catalog.changed replayed lacks %s: %.200s", part+1, lateTool, last)
			break
		}
	}

	// Every gateway stops cleanly, its NATS node still there.
	for _, g := range f.gws {
		if !g.stop(15 * time.Second) {
			t.Errorf("%s did not exit 0 on SIGTERM: %v", g.name, g.cmd.ProcessState)
		}
	}

	// No duplicates, anywhere.
	execs := f.executions()
	f.mu.Lock()
	defer f.mu.Unlock()
	outcomes := map[string]int{}
	for _, c := range f.calls {
		outcomes[c.outcome]++
		if execs[c.id] > 1 {
			t.Errorf("call %s (%s, %s) ran %d times", c.id, c.tool, c.outcome, execs[c.id])
		}
		if c.outcome == "ok" && c.echo && execs[c.id] != 1 {
			t.Errorf("call %s answered but ran %d times", c.id, execs[c.id])
		}
	}
	for _, a := range agents {
		a.mu.Lock()
		for id, r := range a.replies {
			if r > 1 {
				t.Errorf("call %s got %d replies", id, r)
			}
		}
		a.mu.Unlock()
	}
	if outcomes["wrong"] > 0 {
		t.Errorf("%d replies were not the call's own result or an error", outcomes["wrong"])
	}
	t.Logf("%d calls: %v; %d executions recorded; %s in all", len(f.calls), outcomes, len(execs), time.Since(began).Round(time.Millisecond))
}
