package natsconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Reconnect timing shared by Connect and Embedded.Connect.
const (
	// DefaultReconnectWait is the pause between reconnect attempts to one server when
	// ConnOptions.ReconnectWait is 0.
	DefaultReconnectWait = 2 * time.Second
	// reconnectJitter and reconnectJitterTLS are the most added at random to each pause, without
	// and with TLS, so that clients of a restarted server do not all return at once.
	reconnectJitter    = 100 * time.Millisecond
	reconnectJitterTLS = time.Second
	// DefaultConnectTimeout bounds one dial and handshake when ConnOptions.ConnectTimeout is 0.
	DefaultConnectTimeout = 2 * time.Second
	// DefaultPingInterval is how often a connection pings its server when
	// ConnOptions.PingInterval is 0. nats.go's own default, 2 minutes, leaves a client whose
	// server is cut off by a partition (no FIN, no RST: the TCP connection just goes silent) on
	// that server for 4 to 6 minutes, its subscriptions gone from the rest of the cluster.
	DefaultPingInterval = 10 * time.Second
	// maxPingsOut unanswered pings make a connection stale: it reconnects, to another server of
	// the cluster if one answers. A dead server is noticed within (maxPingsOut+1) intervals.
	maxPingsOut = 2
)

// TLSOptions configures TLS towards the server. The zero value leaves TLS to the URL's scheme
// (tls:// uses the system's roots) and to what the server asks for.
type TLSOptions struct {
	// CAFile is a PEM file of the certificate authorities that sign the server's certificate;
	// "" uses the system's roots.
	CAFile string
	// CertFile and KeyFile are the client's PEM certificate and key, for servers that verify
	// clients. Both or neither.
	CertFile, KeyFile string
	// InsecureSkipVerify accepts any server certificate. For tests only: it is logged as a warning.
	InsecureSkipVerify bool
}

// isZero reports whether t sets nothing.
func (t TLSOptions) isZero() bool { return t == TLSOptions{} }

// config builds the tls.Config, reading the files now so that a missing or bad file is reported
// before dialling.
func (t TLSOptions) config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("natsconn: tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: tls.ca_file %s holds no PEM certificate", ErrInvalidOptions, t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("natsconn: tls.cert_file and tls.key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// ConnOptions configures a connection to an external NATS server or cluster. At most one kind of
// credentials may be set: CredsFile, NKeyFile, User (with Password) or Token. The names in error
// messages are those of gw's configuration keys (nats.creds_file, …) without the "nats." prefix.
type ConnOptions struct {
	// URL is the server's URL, or several separated by commas, such as
	// "nats://a:4222,nats://b:4222". Required. Schemes: nats, tls, ws, wss; without one, nats://
	// is assumed. Credentials in the URL (nats://user:pass@host, nats://token@host) work, but not
	// together with the credential fields below.
	URL string
	// Name names the connection in the server's monitoring and in logs.
	Name string
	// CredsFile is a .creds file holding a user JWT and its nkey seed (decentralized auth).
	CredsFile string
	// NKeyFile is a file holding a user nkey seed ("SU…").
	NKeyFile string
	// User and Password authenticate with a user name; Password needs User.
	User, Password string
	// Token authenticates with a token.
	Token string
	// TLS configures TLS; see TLSOptions.
	TLS TLSOptions
	// ConnectTimeout bounds one dial and handshake. 0 means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// ReconnectWait is the pause between reconnect attempts to one server, to which a random jitter
	// is added (up to 100ms, or 1s with TLS). 0 means DefaultReconnectWait.
	ReconnectWait time.Duration
	// PingInterval is how often the client pings the server; two pings in a row unanswered
	// make the connection stale, and it reconnects. 0 means DefaultPingInterval.
	PingInterval time.Duration
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
}

// validate reports every problem with o's combination of fields, each wrapping
// ErrInvalidOptions, or returns the server URLs, each with a scheme. It reads no file.
func (o ConnOptions) validate() ([]string, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, args...)...))
	}
	urls, urlErrs := splitURLs(o.URL)
	for _, e := range urlErrs {
		bad("%s", e)
	}

	var kinds []string
	for _, k := range []struct {
		name string
		set  bool
	}{
		{"creds_file", o.CredsFile != ""},
		{"nkey_file", o.NKeyFile != ""},
		{"user", o.User != ""},
		{"token", o.Token != ""},
	} {
		if k.set {
			kinds = append(kinds, k.name)
		}
	}
	if len(kinds) > 1 {
		bad("set only one of creds_file, nkey_file, user (with password) and token; got %s", strings.Join(kinds, " and "))
	}
	if o.Password != "" && o.User == "" {
		bad("password needs user")
	}
	if len(kinds) > 0 {
		for _, u := range urls {
			if u.User != nil {
				bad("url %s carries credentials and %s is set too; use one or the other", redact(u), kinds[0])
				break
			}
		}
	}
	if (o.TLS.CertFile == "") != (o.TLS.KeyFile == "") {
		bad("tls.cert_file and tls.key_file go together; only one is set")
	}
	if o.ConnectTimeout < 0 {
		bad("connect timeout must not be negative, got %s", o.ConnectTimeout)
	}
	if o.ReconnectWait < 0 {
		bad("reconnect wait must not be negative, got %s", o.ReconnectWait)
	}
	if o.PingInterval < 0 {
		bad("ping interval must not be negative, got %s", o.PingInterval)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	list := make([]string, len(urls))
	for i, u := range urls {
		list[i] = u.String()
	}
	return list, nil
}

// splitURLs parses a comma-separated list of server URLs. It returns one message per problem.
func splitURLs(s string) ([]*url.URL, []string) {
	if strings.TrimSpace(s) == "" {
		return nil, []string{"url is required (an external NATS server, or several separated by commas)"}
	}
	var urls []*url.URL
	var errs []string
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			errs = append(errs, fmt.Sprintf("url: entry %d of %q is empty", i+1, redactList(s)))
			continue
		}
		if !strings.Contains(part, "://") {
			part = "nats://" + part
		}
		u, err := url.Parse(part)
		if err != nil {
			// url.Error repeats the URL, which may hold a password: keep only the reason.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			errs = append(errs, fmt.Sprintf("url: entry %d cannot be parsed: %v", i+1, err))
			continue
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			errs = append(errs, fmt.Sprintf("url %s: scheme must be nats, tls, ws or wss", redact(u)))
			continue
		}
		if u.Hostname() == "" {
			errs = append(errs, fmt.Sprintf("url %s has no host", redact(u)))
			continue
		}
		urls = append(urls, u)
	}
	return urls, errs
}

// redact returns u as a string with its password, or its token (a user without password),
// replaced by "xxxxx".
func redact(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	c := *u
	if _, ok := u.User.Password(); ok {
		c.User = url.UserPassword(u.User.Username(), "xxxxx")
	} else {
		c.User = url.User("xxxxx")
	}
	return c.String()
}

// redactList redacts each URL of a comma-separated list; entries that do not parse are replaced
// entirely, since they may hold a secret.
func redactList(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !strings.Contains(p, "://") {
			p = "nats://" + p
		}
		if u, err := url.Parse(p); err == nil {
			parts[i] = redact(u)
		} else {
			parts[i] = "<unparsable>"
		}
	}
	return strings.Join(parts, ",")
}

// authOption reads the credential files now, so that a missing or malformed file is reported
// before dialling, and returns the matching nats option (nil for none).
func authOption(o ConnOptions) (nats.Option, error) {
	switch {
	case o.CredsFile != "":
		data, err := os.ReadFile(o.CredsFile)
		if err != nil {
			return nil, fmt.Errorf("natsconn: creds_file: %w", err)
		}
		kp, err := nkeys.ParseDecoratedUserNKey(data)
		clear(data)
		if err != nil {
			return nil, fmt.Errorf("%w: creds_file %s: no user nkey seed found: %w", ErrInvalidOptions, o.CredsFile, err)
		}
		kp.Wipe()
		// nats.go reads the file again at every (re)connect, so a rotated file is picked up.
		return nats.UserCredentials(o.CredsFile), nil
	case o.NKeyFile != "":
		opt, err := nats.NkeyOptionFromSeed(o.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: nkey_file %s: %w", ErrInvalidOptions, o.NKeyFile, err)
		}
		return opt, nil
	case o.User != "":
		return nats.UserInfo(o.User, o.Password), nil
	case o.Token != "":
		return nats.Token(o.Token), nil
	}
	return nil, nil
}

// Connect connects to an external NATS server or cluster and returns once connected. The
// connection then reconnects on its own, forever, and logs its disconnects and reconnects through
// o.Logger (see the package doc). Bad options are refused before dialling, each with an error
// wrapping ErrInvalidOptions, or the *fs.PathError of a file that cannot be read. A failed first
// connection is not retried: its error wraps nats.go's (nats.ErrAuthorization for refused
// credentials, nats.ErrNoServers when no server answered, a TLS error, …). ctx bounds the first
// connection only; cancelling it later does not touch the connection.
func Connect(ctx context.Context, o ConnOptions) (*nats.Conn, error) {
	urls, err := o.validate()
	if err != nil {
		return nil, err
	}
	log := orDiscard(o.Logger)
	timeout := o.ConnectTimeout
	if timeout == 0 {
		timeout = DefaultConnectTimeout
	}
	wait := o.ReconnectWait
	if wait == 0 {
		wait = DefaultReconnectWait
	}
	ping := o.PingInterval
	if ping == 0 {
		ping = DefaultPingInterval
	}
	dialer := &firstDialer{d: net.Dialer{Timeout: timeout}, ctx: ctx}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(wait),
		nats.ReconnectJitter(reconnectJitter, reconnectJitterTLS),
		nats.PingInterval(ping),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.SetCustomDialer(dialer),
	}
	auth, err := authOption(o)
	if err != nil {
		return nil, err
	}
	if auth != nil {
		opts = append(opts, auth)
	}
	if !o.TLS.isZero() {
		cfg, err := o.TLS.config()
		if err != nil {
			return nil, err
		}
		if cfg.InsecureSkipVerify {
			log.Warn("nats: TLS certificate verification is off (insecure_skip_verify)", slog.String("conn", o.Name))
		}
		opts = append(opts, nats.Secure(cfg))
	}
	opts = append(opts, handlerOptions(log)...)

	if err := context.Cause(ctx); err != nil {
		return nil, fmt.Errorf("natsconn: connect: %w", err)
	}
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if !dialer.done() && err == nil {
		// The context ended just as the connection was made, and closed its socket.
		nc.Close()
		nc, err = nil, context.Cause(ctx)
	}
	if err != nil {
		if cerr := context.Cause(ctx); cerr != nil && cerr != err {
			return nil, fmt.Errorf("natsconn: connect to %s: %w (%w)", redactList(o.URL), cerr, err)
		}
		return nil, fmt.Errorf("natsconn: connect to %s: %w", redactList(o.URL), err)
	}
	return nc, nil
}

// firstDialer dials with the caller's context during the first connection, and with none after
// that: reconnects outlive the call to Connect. A connection dialled during the first connection
// is closed if the context ends before Connect is over, which ends nats.go's handshake at once
// instead of at its timeout.
type firstDialer struct {
	d net.Dialer

	mu       sync.Mutex
	ctx      context.Context // nil once the first connection is over
	stopLast func() bool     // stops the hook that closes the last connection dialled, if any
}

// Dial implements nats.CustomDialer.
func (f *firstDialer) Dial(network, address string) (net.Conn, error) {
	f.mu.Lock()
	ctx := f.ctx
	f.mu.Unlock()
	if ctx == nil {
		return f.d.Dial(network, address)
	}
	c, err := f.d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopLast != nil {
		f.stopLast() // an earlier attempt's connection, which nats.go has given up
	}
	f.stopLast = stop
	return c, nil
}

// done ends the first connection's use of the caller's context. It reports false if the context
// ended in time to close the connection that nats.go is now using.
func (f *firstDialer) done() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ctx = nil
	if f.stopLast == nil {
		return true
	}
	return f.stopLast()
}
