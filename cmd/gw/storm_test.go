package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/internal/config"
	"github.com/gwmcp/gw/internal/mcptest"
)

// The crash storms (issue 11): stormCalls tools/call requests in flight at
// once through a face while a killer sends SIGKILL to random servers.
// Every call must be answered exactly once, with its result or an error that
// names its server or its deadline, and by its deadline plus stormSlack
// (plus stormTransit for the answer to reach the client);
// the servers must all be ready again afterwards, and the process must hold
// as many goroutines (within stormGoroutineSlack), descriptors and child
// processes as before, with no zombie.
//
// Each call has a deadline of its own, 0.5 s to a few seconds: on NATS
// the caller's Mcp-Deadline, counted from sending; MCP requests carry none,
// so on the MCP and HTTP faces the handler below the face gives each call
// its deadline when it takes it, as the NATS face does with the header
// (gw's own call_timeout is a minute here).
//
// A storm is more work than two loaded cores do at once under the race
// detector, so a request may wait in the face's intake (NATS delivery, the
// goroutine that reads the stream) for seconds before gw takes it. A call
// taken after its deadline can only be failed at once; so a call's deadline
// counts from when the face took it if that is later. The handler below the
// face records when it took each call (calls carry their number in
// params._meta), and the storms report the longest wait.
const (
	stormCalls   = 10_000
	stormServers = 4
	// stormSlack is how late an answer may arrive after its call's
	// deadline (or after gw took it, if later): the reply crossing a loaded
	// machine.
	stormSlack = 2 * time.Second
	// stormTransit is how much longer an answer may take to reach the
	// client once the handler returned it: NATS flow control slows gw's
	// replies to the pace of a client starved of CPU, and the client's own
	// reader waits its turn among the storm's goroutines.
	stormTransit = 3 * time.Second
	// stormKillEvery is the killer's pace; it stops once every call is
	// answered or after stormMaxKills.
	stormKillEvery = 300 * time.Millisecond
	stormMaxKills  = 16
	// stormGoroutineSlack is how many more goroutines may run after the
	// storm than before (runtime and library helpers coming and going).
	stormGoroutineSlack = 5
	// stormSpared ends the mark of the server the killer spares.
	stormSpared = "-spared"
	// stormMetaID is the params._meta key that carries a call's number.
	stormMetaID = "gwtest/id"
)

// stormCall is one call of a storm: to server's slow tool, which sleeps ms,
// or, progress, to its notify tool, which sends stormProgress progress
// notifications before its result; with a deadline timeout after it was
// sent (or taken, see stormLedger).
type stormCall struct {
	id       int
	server   string
	ms       int
	progress bool
	timeout  time.Duration
	cancel   time.Duration // > 0: the client cancels the call this long after sending it
}

// stormProgress is how many progress notifications a progress call gets.
const stormProgress = 3

func (c stormCall) tool() string {
	if c.progress {
		return c.server + "__notify"
	}
	return c.server + "__slow"
}

// params is the tools/call params, its number in _meta after the members
// meta (each followed by a comma).
func (c stormCall) params(meta string) string {
	if c.progress {
		return fmt.Sprintf(`{"name":%q,"arguments":{"n":%d},"_meta":{%s"progressToken":"p%d",%q:%d}}`, c.tool(), stormProgress, meta, c.id, stormMetaID, c.id)
	}
	return fmt.Sprintf(`{"name":%q,"arguments":{"ms":%d},"_meta":{%s%q:%d}}`, c.tool(), c.ms, meta, stormMetaID, c.id)
}

// result is the text of the call's result.
func (c stormCall) result() string {
	if c.progress {
		return fmt.Sprintf("sent %d notifications", stormProgress)
	}
	return fmt.Sprintf("slept %dms", c.ms)
}

// stormPlan makes n calls: round robin over the servers, sleeps of up to
// 3 s and deadlines 0.5 s to maxTimeout away, so that some calls end by
// their deadline, most would succeed, and the killer fails some of each;
// with progress, one call in ten takes progress notifications instead; with
// cancels, the client cancels one in twenty within 1.5 s (such a call is
// answered at most once: an answer already on its way is not taken back).
func stormPlan(n int, maxTimeout time.Duration, progress, cancels bool) []stormCall {
	calls := make([]stormCall, n)
	for i := range calls {
		calls[i] = stormCall{
			id: i, server: fmt.Sprintf("s%d", i%stormServers), ms: rand.IntN(3000), progress: progress && i%10 == 5,
			timeout: 500*time.Millisecond + rand.N(maxTimeout-500*time.Millisecond),
		}
		if cancels && i%20 == 7 {
			calls[i].cancel = time.Millisecond + time.Duration(rand.IntN(1500))*time.Millisecond
		}
	}
	return calls
}

// stormLedger records a storm's calls: when each was sent, when the face
// took it, and its answers. A call's deadline counts from its sending, or,
// fromTake, from its taking.
type stormLedger struct {
	calls    []stormCall
	fromTake bool
	sent     []atomic.Int64
	taken    []atomic.Int64
	answers  []atomic.Int32
	progress []atomic.Int32
	left     atomic.Int64
	done     chan struct{} // closed when every call has an answer

	mu        sync.Mutex
	outcomes  map[string]int
	problems  []string
	finished  []atomic.Int64
	maxLate   time.Duration // the latest answer past its deadline, at the client
	maxGWLate time.Duration // the same, when the handler returned it
	maxWait   time.Duration // the longest a call waited to be taken
}

func newStormLedger(calls []stormCall, fromTake bool) *stormLedger {
	l := &stormLedger{
		calls: calls, fromTake: fromTake,
		sent: make([]atomic.Int64, len(calls)), taken: make([]atomic.Int64, len(calls)),
		answers: make([]atomic.Int32, len(calls)), progress: make([]atomic.Int32, len(calls)), finished: make([]atomic.Int64, len(calls)),
		done: make(chan struct{}), outcomes: map[string]int{},
	}
	for _, c := range calls {
		if c.cancel == 0 {
			l.left.Add(1)
		}
	}
	return l
}

// send records that call id is being sent now.
func (l *stormLedger) send(id int) { l.sent[id].Store(time.Now().UnixNano()) }

// take records that the face took the call whose params are these, and
// returns its number; -1 for calls that are not the storm's.
func (l *stormLedger) take(params json.RawMessage) int {
	now := time.Now()
	var p struct {
		Meta map[string]json.RawMessage `json:"_meta"`
	}
	if json.Unmarshal(params, &p) != nil {
		return -1
	}
	raw, ok := p.Meta[stormMetaID]
	if !ok {
		return -1
	}
	id, err := strconv.Atoi(string(raw))
	if err != nil || id < 0 || id >= len(l.calls) {
		l.problem("the face took a call numbered %s, which was never made", raw)
		return -1
	}
	if !l.taken[id].CompareAndSwap(0, now.UnixNano()) {
		l.problem("the face took call %d twice", id)
	}
	return id
}

// answer records call id's answer, received at: a result whose text is
// text, or an error (errMsg != "").
func (l *stormLedger) answer(id int, at time.Time, text, errMsg string) {
	if id < 0 || id >= len(l.calls) {
		l.problem("an answer for call %d, which was never made", id)
		return
	}
	c := l.calls[id]
	if n := l.answers[id].Add(1); n > 1 {
		l.problem("call %d (%s) answered %d times; the latest: text %q, error %q", id, c.tool(), n, text, errMsg)
		return
	}
	if c.cancel == 0 {
		defer func() {
			if l.left.Add(-1) == 0 {
				close(l.done)
			}
		}()
	}
	outcome := "result"
	switch {
	case errMsg == "":
		if want := c.result(); text != want {
			l.problem("call %d (%s) answered %q; want %q", id, c.tool(), text, want)
		}
		if n := l.progress[id].Load(); c.progress && n != stormProgress {
			l.problem("call %d (%s): its result came after %d progress notifications; want %d", id, c.tool(), n, stormProgress)
		}
	case strings.Contains(errMsg, "deadline exceeded"):
		outcome = "deadline"
	case strings.Contains(errMsg, strconv.Quote(c.server)):
		outcome = "server gone"
	default:
		l.problem("call %d (%s) failed with an error naming neither its server nor its deadline: %s", id, c.tool(), errMsg)
		outcome = "unclear error"
	}
	sent, taken := time.Unix(0, l.sent[id].Load()), time.Unix(0, l.taken[id].Load())
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outcomes[outcome]++
	if l.taken[id].Load() == 0 {
		if outcome != "unclear error" {
			l.problem("call %d (%s) answered (%s) but never taken by the face", id, c.tool(), outcome)
		}
		return
	}
	l.maxWait = max(l.maxWait, taken.Sub(sent))
	deadline := sent.Add(c.timeout)
	if l.fromTake {
		deadline = taken.Add(c.timeout)
	}
	due := deadline // a call taken late is due at once
	if taken.After(due) {
		due = taken
	}
	late := at.Sub(due)
	l.maxLate = max(l.maxLate, late)
	if f := l.finished[id].Load(); f != 0 {
		gwLate := time.Unix(0, f).Sub(due)
		l.maxGWLate = max(l.maxGWLate, gwLate)
		if gwLate > stormSlack {
			l.problems = append(l.problems, fmt.Sprintf("call %d (%s, %s): gw answered %v after its deadline (taken %v after it was sent)",
				id, c.tool(), outcome, gwLate.Round(time.Millisecond), taken.Sub(sent).Round(time.Millisecond)))
		}
	}
	if late > stormSlack+stormTransit {
		l.problems = append(l.problems, fmt.Sprintf("call %d (%s, %s): the answer arrived %v after its deadline (taken %v after it was sent)",
			id, c.tool(), outcome, late.Round(time.Millisecond), taken.Sub(sent).Round(time.Millisecond)))
	}
}

// finish records that the handler returned call id's answer.
func (l *stormLedger) finish(id int) {
	if id >= 0 {
		l.finished[id].Store(time.Now().UnixNano())
	}
}

// progressFor records a progress notification for the call whose token is
// token ("p" and its number).
func (l *stormLedger) progressFor(token string) {
	id, err := strconv.Atoi(strings.TrimPrefix(token, "p"))
	if err != nil || id < 0 || id >= len(l.calls) || !l.calls[id].progress {
		l.problem("progress for token %q, which no call took", token)
		return
	}
	if l.answers[id].Load() > 0 {
		l.problem("call %d (%s): progress after its answer", id, l.calls[id].tool())
	}
	l.progress[id].Add(1)
}

func (l *stormLedger) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.problems = append(l.problems, fmt.Sprintf(format, args...))
}

// wait waits for every call's answer, then a moment more for duplicates,
// and fails t with what went wrong.
func (l *stormLedger) wait(t *testing.T, limit time.Duration) {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(limit):
		var missing []int
		for i := range l.answers {
			if l.answers[i].Load() == 0 && l.calls[i].cancel == 0 {
				missing = append(missing, i)
			}
		}
		l.problem("%d calls not answered within %v; the first: %v", len(missing), limit, missing[:min(len(missing), 10)])
	}
	time.Sleep(500 * time.Millisecond) // duplicates arrive here
	l.mu.Lock()
	defer l.mu.Unlock()
	progress := 0
	for i := range l.progress {
		progress += int(l.progress[i].Load())
		if l.calls[i].cancel > 0 && l.answers[i].Load() == 0 {
			l.outcomes["cancelled, no answer"]++
		}
	}
	t.Logf("outcomes %v, %d progress notifications; the latest answer %v after its deadline (%v at the client); the longest wait to be taken %v",
		l.outcomes, progress, l.maxGWLate.Round(time.Millisecond), l.maxLate.Round(time.Millisecond), l.maxWait.Round(time.Millisecond))
	for i, p := range l.problems {
		if i == 20 {
			t.Errorf("… and %d more problems", len(l.problems)-i)
			break
		}
		t.Error(p)
	}
	for _, o := range []string{"result", "deadline", "server gone"} {
		if l.outcomes[o] == 0 {
			t.Errorf("no call ended with %q: the storm missed a case", o)
		}
	}
}

// stormKiller sends SIGKILL to a random server marked mark, s0 spared,
// every stormKillEvery, until done is closed (every call answered), a minute
// has passed or it has killed stormMaxKills. It sends how many it killed on
// the channel it returns.
func stormKiller(mark string, done <-chan struct{}) <-chan int {
	out := make(chan int, 1)
	go func() {
		n := 0
		defer func() { out <- n }()
		tick := time.NewTicker(stormKillEvery)
		defer tick.Stop()
		limit := time.After(time.Minute)
		for n < stormMaxKills {
			select {
			case <-done:
				return
			case <-limit:
				return
			case <-tick.C:
			}
			if pids := markedChildren(mark, false); len(pids) > 0 && syscall.Kill(pids[rand.IntN(len(pids))], syscall.SIGKILL) == nil {
				n++
			}
		}
	}()
	return out
}

// childProc is a child process of this test process.
type childProc struct {
	pid    int
	state  byte // 'Z' for a zombie
	marked string
}

// children lists the child processes of this process (Linux: /proc).
func children() []childProc {
	self := os.Getpid()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []childProc
	for _, d := range dirs {
		stat, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid != self {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		c := childProc{pid: pid, state: f[0][0]}
		if env, err := os.ReadFile(d + "/environ"); err == nil {
			for _, kv := range bytes.Split(env, []byte{0}) {
				if v, ok := bytes.CutPrefix(kv, []byte("GWTEST_STORM=")); ok {
					c.marked = string(v)
				}
			}
		}
		out = append(out, c)
	}
	return out
}

// markedChildren are the pids of the live children marked mark: the
// servers of a storm, with s0, which the killer spares, if spared.
func markedChildren(mark string, spared bool) []int {
	var pids []int
	for _, c := range children() {
		if (c.marked == mark || spared && c.marked == mark+stormSpared) && c.state != 'Z' {
			pids = append(pids, c.pid)
		}
	}
	return pids
}

// leakCounts is what a storm must leave as it found it.
type leakCounts struct {
	goroutines, fds, children, zombies int
}

func countLeaks(t *testing.T) leakCounts {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	c := leakCounts{goroutines: runtime.NumGoroutine(), fds: len(fds)}
	for _, ch := range children() {
		c.children++
		if ch.state == 'Z' {
			c.zombies++
		}
	}
	return c
}

// settledLeaks waits, up to 20 s, for the counts to come down to want
// (goroutines within stormGoroutineSlack), or, with want zero, to stop
// changing; it returns the last counts.
func settledLeaks(t *testing.T, want *leakCounts) leakCounts {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	prev := countLeaks(t)
	for {
		time.Sleep(200 * time.Millisecond)
		now := countLeaks(t)
		switch {
		case want == nil && now == prev && now.zombies == 0,
			want != nil && now.goroutines <= want.goroutines+stormGoroutineSlack && now.fds <= want.fds && now.children == want.children && now.zombies == 0,
			time.Now().After(deadline):
			return now
		}
		prev = now
	}
}

// checkLeaks fails t unless after is before, within the stated slack.
func checkLeaks(t *testing.T, before, after leakCounts) {
	t.Helper()
	t.Logf("before the storm %+v, after %+v", before, after)
	if after.goroutines > before.goroutines+stormGoroutineSlack {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines before the storm, %d after (slack %d)\n%s", before.goroutines, after.goroutines, stormGoroutineSlack, buf[:runtime.Stack(buf, true)])
	}
	if after.fds > before.fds {
		t.Errorf("%d descriptors open before the storm, %d after", before.fds, after.fds)
	}
	if after.children != before.children || after.zombies != 0 {
		t.Errorf("%d child processes before the storm, %d after (%d zombies)", before.children, after.children, after.zombies)
	}
}

// skipStorm skips where /proc cannot count processes and descriptors, and
// under -short.
func skipStorm(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts processes and descriptors in /proc")
	}
	if testing.Short() {
		t.Skip("a crash storm takes a while")
	}
}

// stormGateway starts a gateway built as gw builds it (config file,
// policies, options) with stormServers mcptest servers s0…s3, legacy and
// modern in turn, each with mark in its environment so that the killer finds
// only them (s0's mark says spared: a server that lives through the storm
// has calls that succeed and calls that end by their deadline, whatever the
// killer's luck); restarts are quick, so servers come back within the
// storm. The test closes it.
func stormGateway(t *testing.T, mark string, customize func(*gateway.Options)) *gateway.Gateway {
	t.Helper()
	var b strings.Builder
	b.WriteString("gateway:\n  start_timeout: 60s\n  call_timeout: 60s\n  restart: {initial_backoff: 50ms, max_backoff: 400ms}\nservers:\n")
	for i := range stormServers {
		era := mcptest.EraLegacy
		if i%2 == 1 {
			era = mcptest.EraModern
		}
		m := mark
		if i == 0 {
			m += stormSpared
		}
		fmt.Fprintf(&b, "  s%d:\n    command: EXE\n    env: {MCPTEST_SERVER: \"1\", MCPTEST_ERA: %s, GWTEST_STORM: %q}\n", i, era, m)
	}
	cfg, err := config.Load(config.Options{File: writeConfig(t, "gw.yaml", b.String()), Environ: os.Environ()})
	if err != nil {
		t.Fatal(err)
	}
	logs := &mcptest.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	g, _, release, err := newGateway(context.Background(), cfg, logger, customize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = g.Close()
		release()
		if t.Failed() {
			t.Logf("gateway log:\n%s", logs.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return g
}

// stormReady waits until the storm's servers are ready and each one's echo
// answers through echoes, which calls it by its exposed name.
func stormReady(t *testing.T, g *gateway.Gateway, mark, what string, echoes func(tool string) bool) {
	t.Helper()
	eventually(t, what, func() bool { return serversReady(g, mark) })
	for i := range stormServers {
		tool := fmt.Sprintf("s%d__echo", i)
		eventually(t, tool+" "+what, func() bool { return echoes(tool) })
	}
}

// serversReady reports whether every server of g is ready, with a live
// process marked mark.
func serversReady(g *gateway.Gateway, mark string) bool {
	live := markedChildren(mark, true)
	for _, s := range g.Servers() {
		if s.State != gateway.StateReady || !slices.Contains(live, s.Pid) {
			return false
		}
	}
	return len(live) == stormServers
}

// eventually waits up to 60 s for ok.
func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// toolText is the first text content of a CallToolResult.
func toolText(result []byte) string {
	var res struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if json.Unmarshal(result, &res) != nil || len(res.Content) == 0 {
		return ""
	}
	return res.Content[0].Text
}
