package natsconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// DefaultHost is where the embedded server listens when EmbeddedOptions.Host is empty.
const DefaultHost = "127.0.0.1"

// lockFileName is the file in StoreDir that an embedded server holds locked while it runs.
const lockFileName = "gw-embedded.lock"

// readyTimeout bounds the wait for the embedded server to accept connections once Start returned;
// a context deadline that comes sooner shortens it.
const readyTimeout = 10 * time.Second

// EmbeddedOptions configures the nats-server that StartEmbedded runs inside the gw process.
type EmbeddedOptions struct {
	// StoreDir holds the JetStream state. Required. It is created (mode 0700) if missing and must
	// be writable. Reusing a directory keeps the streams and their messages across restarts. One
	// server at a time: the server holds a lock on StoreDir/gw-embedded.lock while it runs.
	StoreDir string
	// Host is the loopback address the server listens on: an IP address for which IsLoopback is
	// true, or "localhost". Default DefaultHost. The server has no authentication, so other
	// addresses are refused: to serve other hosts, run a separate nats-server.
	Host string
	// Port is the TCP port: 0 does not listen at all (in-process connections only), -1 picks a free
	// port (see ClientURL), 1..65535 is that port. The zero value is 0, not NATS's usual 4222:
	// gw's configuration supplies 4222 as its default.
	Port int
	// ServerName names the server in its logs and in JetStream; "" lets nats-server pick one.
	ServerName string
	// MaxPayload is the largest message in bytes; 0 is nats-server's default (1 MiB).
	MaxPayload int32
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// validate reports every problem with o, each wrapping ErrInvalidOptions.
func (o EmbeddedOptions) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, args...)...))
	}
	if o.StoreDir == "" {
		bad("embedded server: store_dir is required (JetStream keeps its state there)")
	}
	if o.Host != "" && !isLoopback(o.Host) {
		bad("embedded server: host %q is not a loopback address; the embedded server has no authentication, so it listens on loopback only (run a separate nats-server to serve other hosts)", o.Host)
	}
	if o.Port < -1 || o.Port > 65535 {
		bad("embedded server: port must be -1 (any free port), 0 (do not listen) or 1..65535, got %d", o.Port)
	}
	if o.MaxPayload < 0 {
		bad("embedded server: max_payload must not be negative, got %d", o.MaxPayload)
	}
	return errors.Join(errs...)
}

// isLoopback reports whether host is "localhost" or a loopback IP address.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serverOptions translates o, which must be valid, into nats-server's options.
func (o EmbeddedOptions) serverOptions() *server.Options {
	host := o.Host
	if host == "" {
		host = DefaultHost
	}
	opts := &server.Options{
		ServerName: o.ServerName,
		Host:       host,
		Port:       o.Port,
		MaxPayload: o.MaxPayload,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoSigs:     true,
		// The ASCII-art banner is noise in gw's log.
		DisableJetStreamBanner: true,
	}
	if o.Port == 0 {
		opts.DontListen = true
	}
	return opts
}

// prepareStoreDir creates dir if needed and checks that it is a writable directory, so that a bad
// directory is reported as a *fs.PathError rather than as a line in the server's log.
func prepareStoreDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("natsconn: embedded server: store_dir: %w", err)
	}
	f, err := os.CreateTemp(dir, ".gw-write-check-*")
	if err != nil {
		return fmt.Errorf("natsconn: embedded server: store_dir is not writable: %w", err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("natsconn: embedded server: store_dir: %w", err)
	}
	return nil
}

// Embedded is a nats-server running inside the gw process, with JetStream enabled. Its methods
// are safe for concurrent use.
type Embedded struct {
	srv  *server.Server
	log  *slog.Logger
	lock *os.File // StoreDir's lock, held until the server is down; nil in tests' startServer

	mu     sync.Mutex
	closed bool         // Shutdown has begun; guarded by mu
	conns  []*nats.Conn // in-process connections handed out and maybe still open; guarded by mu

	shutdown sync.Once
}

// StartEmbedded starts an embedded nats-server with JetStream enabled and returns once it accepts
// connections. It fails with an error wrapping ErrInvalidOptions for bad options, a *fs.PathError
// for a store directory that cannot be created or written, ErrStoreInUse when another embedded
// server uses the same store directory, ErrAddrInUse (and syscall.EADDRINUSE)
// when the port is taken, ErrStart when the server reports a fatal error or is not ready within
// 10 seconds, or the context's error when ctx ends first. On failure nothing is left running.
func StartEmbedded(ctx context.Context, o EmbeddedOptions) (*Embedded, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if err := context.Cause(ctx); err != nil {
		return nil, fmt.Errorf("natsconn: embedded server: %w", err)
	}
	if err := prepareStoreDir(o.StoreDir); err != nil {
		return nil, err
	}
	lock, err := lockStoreDir(o.StoreDir)
	if err != nil {
		return nil, err
	}
	e, err := startServer(ctx, o.serverOptions(), orDiscard(o.Logger))
	if err != nil {
		lock.Close()
		return nil, err
	}
	e.lock = lock
	return e, nil
}

// startServer starts a server with opts, which may be any nats-server options (tests use it to add
// authentication and TLS), and waits until it is ready. opts must have NoSigs set.
func startServer(ctx context.Context, opts *server.Options, log *slog.Logger) (*Embedded, error) {
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStart, err)
	}
	sl := newServerLogger(log)
	srv.SetLoggerV2(sl, sl.enabled(slog.LevelDebug), sl.enabled(LevelTrace), false)

	// Start returns once the listener is set up (or failed) and JetStream has recovered its state,
	// which can take a while for a large store: run it aside so that ctx can cut the wait short.
	started := make(chan struct{})
	go func() {
		defer close(started)
		srv.Start()
	}()
	stop := func() {
		srv.Shutdown()
		<-started
		srv.WaitForShutdown()
	}
	select {
	case <-started:
	case <-ctx.Done():
		stop()
		return nil, fmt.Errorf("natsconn: embedded server: %w", context.Cause(ctx))
	}
	if msg := sl.firstFatal(); msg != "" {
		stop()
		return nil, startError(opts, msg)
	}
	wait := readyTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		wait = max(time.Until(dl), time.Millisecond)
	}
	if !srv.ReadyForConnections(wait) {
		stop()
		if err := context.Cause(ctx); err != nil {
			return nil, fmt.Errorf("natsconn: embedded server: %w", err)
		}
		return nil, fmt.Errorf("%w: not ready for connections after %s", ErrStart, wait)
	}
	if opts.JetStream && !srv.JetStreamEnabled() {
		stop()
		return nil, fmt.Errorf("%w: JetStream is not enabled", ErrStart)
	}
	return &Embedded{srv: srv, log: log}, nil
}

// startError turns the server's first fatal message into an error. The server reports a failed
// listen only as text, so when it was listening the address is probed once more to tell a port in
// use (ErrAddrInUse, wrapping the listener's error) from other failures (ErrStart).
func startError(opts *server.Options, msg string) error {
	if !opts.DontListen && opts.Port > 0 {
		addr := net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port))
		l, err := net.Listen("tcp", addr)
		if err == nil {
			l.Close()
		} else if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%w: %s (is another NATS server running there? connect to it instead, or use another port): %w", ErrAddrInUse, addr, err)
		}
	}
	return fmt.Errorf("%w: %s", ErrStart, msg)
}

// ClientURL returns the URL clients on this host connect to, such as "nats://127.0.0.1:4222",
// with the actual port when Port was -1. It returns "" when the server does not listen (Port 0)
// or has been shut down.
func (e *Embedded) ClientURL() string {
	if e.srv.Addr() == nil {
		return ""
	}
	return e.srv.ClientURL()
}

// inProcessURL is the nominal URL of in-process connections, which nats.go reports (and logs
// show) as the connection's URL. It is never dialled.
const inProcessURL = "nats://in-process"

// Connect returns an in-process connection to the server: no socket is involved, so it works with
// Port 0. name is the connection's name. The connection has the same reconnect policy and logging
// handlers as those of the package-level Connect; opts come after them and so may override any of
// them. Connections still open when Shutdown begins are closed by it. After Shutdown has begun,
// Connect returns ErrShutdown.
func (e *Embedded) Connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return nil, ErrShutdown
	}
	all := append([]nats.Option{
		nats.Name(name),
		nats.InProcessServer(e.srv),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(DefaultReconnectWait),
		nats.ReconnectJitter(reconnectJitter, reconnectJitterTLS),
	}, handlerOptions(e.log)...)
	nc, err := nats.Connect(inProcessURL, append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("natsconn: in-process connection %q: %w", name, err)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		nc.Close()
		return nil, ErrShutdown
	}
	// Forget connections closed meanwhile, so that the list does not grow with every Connect.
	live := e.conns[:0]
	for _, c := range e.conns {
		if !c.IsClosed() {
			live = append(live, c)
		}
	}
	clear(e.conns[len(live):])
	e.conns = append(live, nc)
	return nc, nil
}

// Shutdown closes the in-process connections still open, shuts the server down and waits until
// its shutdown is complete. It is idempotent: later calls return once the first has finished.
func (e *Embedded) Shutdown() {
	e.shutdown.Do(func() {
		e.mu.Lock()
		e.closed = true
		conns := e.conns
		e.conns = nil
		e.mu.Unlock()
		for _, nc := range conns {
			nc.Close()
		}
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
		if e.lock != nil {
			e.lock.Close()
		}
	})
}
