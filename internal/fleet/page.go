package fleet

import (
	"context"
	"embed"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

//go:embed page
var pageFiles embed.FS

// Paths the Page serves.
const (
	PathPage   = "/"
	PathJSON   = "/status.json"
	PathEvents = "/status/events"
	pathAssets = "/status/"
	// pathFavicon answers 204: browsers ask for it, and a 404 is noise.
	pathFavicon = "/favicon.ico"
)

// readyWait bounds how long a request waits for a view still starting.
const readyWait = 5 * time.Second

// minPush is the least time between two snapshots on an event stream: the
// view changes at every stats reply of every gateway.
const minPush = time.Second

// keepAlive is how often an idle event stream gets a comment, so proxies
// keep it open and the page knows it is alive.
const keepAlive = 15 * time.Second

// Page is the live status page: the page itself (HTML, CSS, JS embedded,
// no build step) at /, the snapshot as JSON at /status.json and as
// server-sent events at /status/events (a snapshot at once, then at each
// change, at most one a second). It is read only: GET and HEAD.
//
// View returns the view to show, started on first use; Close ends the
// event streams (an http.Server's Shutdown waits for them otherwise).
type Page struct {
	View func() (*View, error)

	once sync.Once
	stop chan struct{}
}

func (p *Page) stopped() chan struct{} {
	p.once.Do(func() { p.stop = make(chan struct{}) })
	return p.stop
}

// Close ends the event streams and makes new ones end at once. Idempotent.
func (p *Page) Close() {
	ch := p.stopped()
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// Handles reports whether p serves path.
func Handles(path string) bool {
	return path == PathPage || path == PathJSON || path == PathEvents ||
		path == pathAssets+"app.js" || path == pathAssets+"style.css" || path == pathFavicon
}

// ServeHTTP serves the paths Handles names; others get 404.
func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	switch r.URL.Path {
	case PathPage:
		p.file(w, "index.html", "text/html; charset=utf-8")
	case pathAssets + "app.js":
		p.file(w, "app.js", "text/javascript; charset=utf-8")
	case pathAssets + "style.css":
		p.file(w, "style.css", "text/css; charset=utf-8")
	case pathFavicon:
		w.WriteHeader(http.StatusNoContent)
	case PathJSON:
		v, ok := p.view(w, r)
		if !ok {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(v.Snapshot())
	case PathEvents:
		p.events(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (p *Page) file(w http.ResponseWriter, name, ctype string) {
	b, err := pageFiles.ReadFile("page/" + name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-cache")
	// The page runs only its own script and style, and is never framed.
	w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
	_, _ = w.Write(b)
}

// view returns the started view, once ready (or readyWait passed: the
// view is shown as far as it got).
func (p *Page) view(w http.ResponseWriter, r *http.Request) (*View, bool) {
	v, err := p.View()
	if err != nil {
		http.Error(w, "gw: the fleet view: "+err.Error(), http.StatusServiceUnavailable)
		return nil, false
	}
	t := time.NewTimer(readyWait)
	defer t.Stop()
	select {
	case <-v.Ready():
	case <-t.C:
	case <-r.Context().Done():
		return nil, false
	}
	return v, true
}

// events streams snapshots as server-sent events ("event: status").
func (p *Page) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	v, ok := p.view(w, r)
	if !ok {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	ctx, stop := r.Context(), p.stopped()
	alive := time.NewTicker(keepAlive)
	defer alive.Stop()
	for {
		changed := v.Changed()
		b, err := json.Marshal(v.Snapshot())
		if err != nil {
			return
		}
		if _, err := w.Write(append(append([]byte("event: status\ndata: "), b...), '\n', '\n')); err != nil {
			return
		}
		flusher.Flush()
		if !waitChange(ctx, stop, changed, alive.C, w, flusher) || !pause(ctx, stop, minPush) {
			return
		}
	}
}

// waitChange waits for changed, writing keep-alive comments meanwhile;
// false when the stream is to end.
func waitChange(ctx context.Context, stop, changed <-chan struct{}, alive <-chan time.Time, w http.ResponseWriter, f http.Flusher) bool {
	for {
		select {
		case <-changed:
			return true
		case <-alive:
			if _, err := w.Write([]byte(": alive\n\n")); err != nil {
				return false
			}
			f.Flush()
		case <-ctx.Done():
			return false
		case <-stop:
			return false
		}
	}
}

// pause waits d; false when ctx ends or stop (nil: never) closes first.
func pause(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	}
}
