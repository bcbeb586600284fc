package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gwmcp/gw/internal/config"
	"github.com/gwmcp/gw/transport/natsconn"
	"github.com/gwmcp/gw/transport/natsface"
)

// auditFlags are gw audit's own flags.
type auditFlags struct {
	principal            string
	follow               bool
	since                time.Duration
	last                 int
	decision, tool, serv string
}

func (a *auditFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.principal, "principal", "", "this principal's calls only")
	fs.BoolVar(&a.follow, "f", false, "gw audit: keep printing new records")
	fs.BoolVar(&a.follow, "follow", false, "gw audit: keep printing new records")
	fs.DurationVar(&a.since, "since", time.Hour, "gw audit: records from this long ago on")
	fs.IntVar(&a.last, "n", 100, "gw audit: at most this many of the past records, the latest")
	fs.StringVar(&a.decision, "decision", "", "gw audit: allow or deny only")
	fs.StringVar(&a.tool, "tool", "", "gw audit: this tool only (its exposed name)")
	fs.StringVar(&a.serv, "server", "", "gw audit: this server's tools only")
}

// auditRecord is a record as gw audit reads it: what gw run publishes
// (auditBody), decoded loosely so that records of other gw versions print.
type auditRecord struct {
	Time       time.Time       `json:"time"`
	Gateway    string          `json:"gateway"`
	Principal  string          `json:"principal"`
	Groups     []string        `json:"groups,omitempty"`
	Server     string          `json:"server"`
	Tool       string          `json:"tool"`
	ServerTool string          `json:"serverTool"`
	Decision   string          `json:"decision"`
	Reason     string          `json:"reason,omitempty"`
	Policy     string          `json:"policy,omitempty"`
	Arguments  json.RawMessage `json:"arguments,omitempty"`
}

func (a *auditFlags) matches(r auditRecord) bool {
	return (a.decision == "" || r.Decision == a.decision) && (a.tool == "" || r.Tool == a.tool) &&
		(a.serv == "" || r.Server == a.serv)
}

// runAudit is gw audit: the authorization decisions kept in the audit
// stream, from --since on (the latest -n of them), then, with --follow, the
// new ones as they come.
func runAudit(ctx context.Context, cfg *config.Config, logger *slog.Logger, a auditFlags, asJSON bool, stdout, stderr io.Writer) int {
	if a.decision != "" && a.decision != "allow" && a.decision != "deny" {
		fmt.Fprintf(stderr, "gw audit: --decision %q: want allow or deny\n", a.decision)
		return 2
	}
	if a.since <= 0 || a.last < 1 {
		fmt.Fprintln(stderr, "gw audit: --since and -n must be positive")
		return 2
	}
	fail := func(err error) int {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			fmt.Fprintf(stderr, "gw audit: no audit stream %s on this NATS: no gw run has started here (audit.record must not be off)\n", natsface.DefaultAuditStream)
		} else {
			fmt.Fprintln(stderr, "gw audit:", err)
		}
		return 1
	}
	filter := cfg.NATS.Prefix + ".evt.audit.>"
	if a.principal != "" {
		filter = cfg.NATS.Prefix + ".evt.audit." + natsface.EncodeToken(a.principal)
	}
	r := &auditReader{flags: a, filter: filter, start: time.Now().Add(-a.since),
		p: &auditPrinter{w: stdout, json: asJSON}, logger: logger}

	nc, release, own, err := connectCLI(ctx, cfg, logger)
	if a.follow && errors.Is(err, natsconn.ErrStoreInUse) {
		// Held by a process that serves no NATS: another gw command, or a
		// gw run on its way up.
		nc, release, own, err = nil, func() {}, true, nil
	}
	if err != nil {
		return fail(err)
	}
	if !own || !a.follow {
		defer release()
		if _, err := r.read(ctx, nc, 0, a.follow); err != nil {
			return fail(err)
		}
		return 0
	}
	// No gw run is up and this process opened the store itself: a gw run
	// started now could not open it. So print what the store holds, let go
	// of it, and follow through the gw run once one is up.
	var seq uint64
	if nc != nil {
		seq, err = r.read(ctx, nc, 0, false)
		release()
		if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fail(err)
		}
	}
	nc, err = awaitGWRun(ctx, cfg, "gw audit", stderr)
	if ctx.Err() != nil {
		return 0
	}
	if err != nil {
		return fail(err)
	}
	defer nc.Close()
	for {
		_, err := r.read(ctx, nc, seq, true)
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			if err != nil {
				return fail(err)
			}
			return 0
		}
		// gw run makes the stream just after its NATS server is up.
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return 0
		}
	}
}

// auditReader reads and prints one gw audit's records.
type auditReader struct {
	flags  auditFlags
	filter string
	start  time.Time // --since
	p      *auditPrinter
	logger *slog.Logger
}

// read prints the matching records of the audit stream on nc. With after 0
// it starts at --since and prints the latest -n of the records already
// kept, at once; with after > 0 it starts after that stream sequence and
// prints every record. With follow it goes on printing new records until
// ctx ends. It returns the sequence of the last record read (after when
// none).
func (r *auditReader) read(ctx context.Context, nc *nats.Conn, after uint64, follow bool) (last uint64, err error) {
	last = after
	js, err := jetstream.New(nc)
	if err != nil {
		return last, err
	}
	cc := jetstream.OrderedConsumerConfig{FilterSubjects: []string{r.filter}}
	if after > 0 {
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	} else {
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &r.start
	}
	cons, err := js.OrderedConsumer(ctx, natsface.DefaultAuditStream, cc)
	if err != nil {
		return last, err
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return last, err
	}
	var past []auditRecord // the latest -n matching records, oldest first
	it, err := cons.Messages()
	if err != nil {
		return last, err
	}
	defer it.Stop()
	done := make(chan struct{})
	defer close(done)
	go func() { // ends the iterator when ctx does (Ctrl-C); ends with read
		select {
		case <-ctx.Done():
			it.Stop()
		case <-done:
		}
	}()
	history := after == 0 && info.NumPending > 0
	if after == 0 && !history {
		r.p.print(nil)
	}
	for history || follow {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				break
			}
			return last, err
		}
		md, mdErr := msg.Metadata()
		if mdErr == nil {
			last = md.Sequence.Stream
		}
		var rec auditRecord
		if json.Unmarshal(msg.Data(), &rec) != nil {
			r.logger.Warn("skipping a malformed audit record", "subject", msg.Subject())
		} else if r.flags.matches(rec) {
			if history {
				past = append(past, rec)
				if len(past) > r.flags.last {
					past = past[1:]
				}
			} else {
				r.p.print([]auditRecord{rec})
			}
		}
		if history && (mdErr != nil || md.NumPending == 0) {
			history = false
			r.p.print(past)
		}
	}
	return last, nil
}

// auditPrinter prints records as a table (a header once) or one JSON object
// per line.
type auditPrinter struct {
	w      io.Writer
	json   bool
	header bool
}

func (p *auditPrinter) print(rs []auditRecord) {
	if p.json {
		enc := json.NewEncoder(p.w)
		for _, r := range rs {
			_ = enc.Encode(r)
		}
		return
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	if !p.header {
		p.header = true
		fmt.Fprintln(tw, "TIME\tGATEWAY\tPRINCIPAL\tDECISION\tTOOL\tREASON\tPOLICY")
	}
	for _, r := range rs {
		policy := r.Policy
		if strings.HasPrefix(policy, "sha256:") {
			policy = "sha256:" + short(policy)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.Local().Format(time.DateTime), r.Gateway, r.Principal,
			r.Decision, r.Tool, oneLine(r.Reason, 80), policy)
	}
	_ = tw.Flush()
}
