package fleet

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/micro"
)

// atToolsCall is natsface's endpoint whose stats data also sums the hosted
// tools' shared subjects (natsface.ToolCallStats).
const atToolsCall = "at-tools-call"

// counters are one endpoint's totals: requests answered, how many with an
// error, shed, in flight, and the time spent answering them.
type counters struct {
	served, errors, shed, inFlight int64
	nanos                          int64 // total handler time
}

func (c counters) requests() int64 { return c.served + c.errors }

func (c counters) add(o counters) counters {
	return counters{c.served + o.served, c.errors + o.errors, c.shed + o.shed, c.inFlight + o.inFlight, c.nanos + o.nanos}
}

// decodeCounters reads natsface's EndpointStats ("data" of an endpoint):
// served, errors, shed, in_flight, average_handler_time (ns).
func decodeCounters(m map[string]json.RawMessage) counters {
	var c counters
	var avg int64
	field(m, "served", &c.served)
	field(m, "errors", &c.errors)
	field(m, "shed", &c.shed)
	field(m, "in_flight", &c.inFlight)
	field(m, "average_handler_time", &avg)
	c.nanos = avg * c.requests()
	return c
}

// endpointCounters reads one endpoint of a micro stats reply: natsface's
// own counters when its data carries them (micro's count only the hand-off
// to a worker), at-tools-call with its hosted tools added.
func endpointCounters(e *micro.EndpointStats) counters {
	m, err := members(e.Data)
	if err != nil {
		return counters{served: int64(e.NumRequests - e.NumErrors), errors: int64(e.NumErrors), nanos: int64(e.ProcessingTime)}
	}
	c := decodeCounters(m)
	if e.Name == atToolsCall {
		var hosted json.RawMessage
		field(m, "hosted", &hosted)
		if h, err := members(hosted); err == nil {
			c = c.add(decodeCounters(h))
		}
	}
	return c
}

// sample is one gateway's stats reply.
type sample struct {
	id        string // the micro service instance: a new one starts from zero
	at        time.Time
	endpoints map[string]counters
	subjects  map[string]string
	calls     counters // tools/call: at-tools-call and the hosted tools' subjects
}

func newSample(st *micro.Stats, at time.Time) *sample {
	s := &sample{id: st.ID, at: at, endpoints: map[string]counters{}, subjects: map[string]string{}}
	for _, e := range st.Endpoints {
		if e == nil {
			continue
		}
		c := endpointCounters(e)
		s.endpoints[e.Name] = c
		s.subjects[e.Name] = e.Subject
		if e.Name == atToolsCall {
			s.calls = c
		}
	}
	return s
}

// rates are cur's totals, and its rates since prev (nil: unknown).
func rates(cur counters, prev *counters, window time.Duration) Rates {
	r := Rates{Requests: cur.requests(), Errors: cur.errors, Shed: cur.shed, InFlight: cur.inFlight}
	if n := cur.requests(); n > 0 {
		r.AvgLatencyMs = ms(cur.nanos / n)
	}
	if prev == nil || window <= 0 {
		return r
	}
	dn := cur.requests() - prev.requests()
	if dn < 0 { // counters never go back within one service instance
		return r
	}
	r.Window = window.Seconds()
	r.Rate = float64(dn) / r.Window
	r.ErrorRate = float64(cur.errors-prev.errors) / r.Window
	if dn > 0 {
		r.LatencyMs = ms((cur.nanos - prev.nanos) / dn)
	}
	return r
}

func ms(nanos int64) float64 { return float64(nanos) / 1e6 }

// gatewayRates computes a gateway's call rates and endpoint list from its
// last two samples (prev may be nil).
func gatewayRates(cur, prev *sample) (Rates, []Endpoint) {
	var window time.Duration
	if prev != nil && prev.id == cur.id {
		window = cur.at.Sub(prev.at)
	} else {
		prev = nil
	}
	var prevCalls *counters
	if prev != nil {
		prevCalls = &prev.calls
	}
	calls := rates(cur.calls, prevCalls, window)
	var eps []Endpoint
	for name, c := range cur.endpoints {
		if c.requests() == 0 && c.shed == 0 && c.inFlight == 0 {
			continue
		}
		var p *counters
		if prev != nil {
			if pc, ok := prev.endpoints[name]; ok {
				p = &pc
			}
		}
		eps = append(eps, Endpoint{Name: name, Subject: cur.subjects[name], Rates: rates(c, p, window)})
	}
	slices.SortFunc(eps, func(a, b Endpoint) int { return strings.Compare(a.Name, b.Name) })
	return calls, eps
}
