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

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gwmcp/gw/internal/config"
	"github.com/gwmcp/gw/transport/natsface"
)

// auditFlags are gw audit's own flags.
type auditFlags struct {
	follow               bool
	since                time.Duration
	last                 int
	decision, tool, serv string
}

func (a *auditFlags) register(fs *flag.FlagSet) {
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
func runAudit(ctx context.Context, cfg *config.Config, logger *slog.Logger, principal string, a auditFlags, asJSON bool, stdout, stderr io.Writer) int {
	if a.decision != "" && a.decision != "allow" && a.decision != "deny" {
		fmt.Fprintf(stderr, "gw audit: --decision %q: want allow or deny\n", a.decision)
		return 2
	}
	if a.since <= 0 || a.last < 1 {
		fmt.Fprintln(stderr, "gw audit: --since and -n must be positive")
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "gw audit:", err)
		return 1
	}
	nc, release, err := connectCLI(ctx, cfg, logger)
	if err != nil {
		return fail(err)
	}
	defer release()
	js, err := jetstream.New(nc)
	if err != nil {
		return fail(err)
	}
	filter := cfg.NATS.Prefix + ".evt.audit.>"
	if principal != "" {
		filter = cfg.NATS.Prefix + ".evt.audit." + natsface.EncodeToken(principal)
	}
	start := time.Now().Add(-a.since)
	cons, err := js.OrderedConsumer(ctx, natsface.DefaultAuditStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &start,
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		fmt.Fprintf(stderr, "gw audit: no audit stream %s on this NATS: no gw run has started here (audit.record must not be off)\n", natsface.DefaultAuditStream)
		return 1
	}
	if err != nil {
		return fail(err)
	}
	p := &auditPrinter{w: stdout, json: asJSON}
	info, err := cons.Info(ctx)
	if err != nil {
		return fail(err)
	}
	var past []auditRecord // the latest a.last matching records, oldest first
	pending := info.NumPending
	it, err := cons.Messages()
	if err != nil {
		return fail(err)
	}
	defer it.Stop()
	done := make(chan struct{})
	defer close(done)
	go func() { // ends the iterator when ctx does (Ctrl-C); ends with runAudit
		select {
		case <-ctx.Done():
			it.Stop()
		case <-done:
		}
	}()
	history := pending > 0
	if !history {
		p.print(nil)
	}
	for history || a.follow {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				break
			}
			return fail(err)
		}
		var r auditRecord
		if json.Unmarshal(msg.Data(), &r) != nil {
			logger.Warn("skipping a malformed audit record", "subject", msg.Subject())
		} else if a.matches(r) {
			if history {
				past = append(past, r)
				if len(past) > a.last {
					past = past[1:]
				}
			} else {
				p.print([]auditRecord{r})
			}
		}
		if md, err := msg.Metadata(); history && (err != nil || md.NumPending == 0) {
			history = false
			p.print(past)
		}
	}
	return 0
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
