package fleet_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gwmcp/gw/internal/fleet"
)

// TestPage: the page's files, the JSON snapshot, the event stream (a
// snapshot at once, another when a gateway appears) that Close ends; writes
// are refused.
func TestPage(t *testing.T) {
	s := startServer(t)
	v := startView(t, connect(t, s), fleet.Options{Interval: 100 * time.Millisecond})
	p := &fleet.Page{View: func() (*fleet.View, error) { return v, nil }}
	srv := httptest.NewServer(p)
	defer srv.Close()
	defer p.Close()
	client := srv.Client() // its connections end with srv

	for path, ctype := range map[string]string{"/": "text/html", "/status/app.js": "text/javascript", "/status/style.css": "text/css", "/status.json": "application/json"} {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) || len(body) == 0 {
			t.Errorf("GET %s: %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{{http.MethodPost, "/status.json", http.StatusMethodNotAllowed}, {http.MethodGet, "/nope", http.StatusNotFound}} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: %d; want %d", c.method, c.path, resp.StatusCode, c.want)
		}
	}

	resp, err := client.Get(srv.URL + fleet.PathEvents)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := make(chan fleet.Snapshot, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var snap fleet.Snapshot
				if json.Unmarshal([]byte(data), &snap) == nil {
					events <- snap
				}
			}
		}
	}()
	next := func() (fleet.Snapshot, bool) {
		select {
		case snap, ok := <-events:
			return snap, ok
		case <-time.After(20 * time.Second):
			t.Fatal("no event")
			return fleet.Snapshot{}, false
		}
	}
	if snap, _ := next(); len(snap.Gateways) != 0 {
		t.Fatalf("first snapshot: %+v", snap)
	}
	startGateway(t, connect(t, s), "g1", "notes")
	for {
		snap, ok := next()
		if !ok {
			t.Fatal("the stream ended")
		}
		if len(snap.Gateways) == 1 && snap.Gateways[0].Name == "g1" {
			break
		}
	}
	p.Close() // ends the stream
	for {
		if _, ok := next(); !ok {
			break
		}
	}
}
