package natsconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// mustConnect connects with o and checks that the connection carries messages.
func mustConnect(t *testing.T, o ConnOptions) *nats.Conn {
	t.Helper()
	nc, err := Connect(testContext(t), o)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	roundTrip(t, nc, nc)
	return nc
}

func TestConnectUserPassword(t *testing.T) {
	e := startTestServer(t, &server.Options{Username: "gw", Password: "s3cret-pw"})
	mustConnect(t, ConnOptions{URL: e.ClientURL(), User: "gw", Password: "s3cret-pw"})

	for _, o := range []ConnOptions{
		{URL: e.ClientURL(), User: "gw", Password: "wrong-pw"},
		{URL: e.ClientURL()}, // none at all
	} {
		_, err := Connect(testContext(t), o)
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("password %q: err = %v, want nats.ErrAuthorization", o.Password, err)
		}
		msg := err.Error()
		if !strings.Contains(strings.ToLower(msg), "authorization violation") || !strings.Contains(msg, e.ClientURL()) {
			t.Errorf("unclear error: %v", err)
		}
		if strings.Contains(msg, "wrong-pw") {
			t.Errorf("error leaks the password: %v", err)
		}
	}

	// Credentials in the URL itself work too, and are redacted from errors.
	u := strings.Replace(e.ClientURL(), "nats://", "nats://gw:s3cret-pw@", 1)
	mustConnect(t, ConnOptions{URL: u})
	bad := strings.Replace(e.ClientURL(), "nats://", "nats://gw:wrong-pw@", 1)
	_, err := Connect(testContext(t), ConnOptions{URL: bad})
	if err == nil || strings.Contains(err.Error(), "wrong-pw") || !strings.Contains(err.Error(), "gw:xxxxx@") {
		t.Errorf("URL credentials: err = %v, want an error with the password redacted", err)
	}
}

func TestConnectToken(t *testing.T) {
	e := startTestServer(t, &server.Options{Authorization: "tok-123"})
	mustConnect(t, ConnOptions{URL: e.ClientURL(), Token: "tok-123"})
	_, err := Connect(testContext(t), ConnOptions{URL: e.ClientURL(), Token: "tok-456"})
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("wrong token: err = %v", err)
	}
	if strings.Contains(err.Error(), "tok-456") {
		t.Errorf("error leaks the token: %v", err)
	}
}

func TestConnectNKeyFile(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	e := startTestServer(t, &server.Options{Nkeys: []*server.NkeyUser{{Nkey: pub}}})
	mustConnect(t, ConnOptions{URL: e.ClientURL(), NKeyFile: seedFile})

	// Another user's key is refused by the server.
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	otherFile := filepath.Join(t.TempDir(), "other.nk")
	if err := os.WriteFile(otherFile, otherSeed, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Connect(testContext(t), ConnOptions{URL: e.ClientURL(), NKeyFile: otherFile}); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("unknown nkey: err = %v", err)
	}

	// An account seed is not a user seed: refused before dialling.
	acc, _ := nkeys.CreateAccount()
	accSeed, _ := acc.Seed()
	accFile := filepath.Join(t.TempDir(), "acc.nk")
	if err := os.WriteFile(accFile, accSeed, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Connect(testContext(t), ConnOptions{URL: e.ClientURL(), NKeyFile: accFile}); !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), "nkey_file") {
		t.Errorf("account seed: err = %v", err)
	}
	if _, err := Connect(testContext(t), ConnOptions{URL: e.ClientURL(), NKeyFile: filepath.Join(t.TempDir(), "missing.nk")}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing nkey file: err = %v", err)
	}
}

// TestConnectCredsFile runs the server in operator mode (decentralized JWT auth) and connects
// with a .creds file holding a user JWT signed by the account and the user's seed.
func TestConnectCredsFile(t *testing.T) {
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	oc := jwt.NewOperatorClaims(opub)
	oc.Name = "test-operator"
	ojwt, err := oc.Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	opClaims, err := jwt.DecodeOperatorClaims(ojwt)
	if err != nil {
		t.Fatal(err)
	}

	akp, _ := nkeys.CreateAccount()
	apub, _ := akp.PublicKey()
	ac := jwt.NewAccountClaims(apub)
	ac.Name = "gw"
	ajwt, err := ac.Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	resolver := &server.MemAccResolver{}
	if err := resolver.Store(apub, ajwt); err != nil {
		t.Fatal(err)
	}

	creds := func(signer nkeys.KeyPair) string {
		ukp, _ := nkeys.CreateUser()
		upub, _ := ukp.PublicKey()
		useed, _ := ukp.Seed()
		uc := jwt.NewUserClaims(upub)
		uc.Name = "gw-user"
		ujwt, err := uc.Encode(signer)
		if err != nil {
			t.Fatal(err)
		}
		b, err := jwt.FormatUserConfig(ujwt, useed)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "user.creds")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	e := startTestServer(t, &server.Options{
		TrustedOperators: []*jwt.OperatorClaims{opClaims},
		AccountResolver:  resolver,
	})
	mustConnect(t, ConnOptions{URL: e.ClientURL(), CredsFile: creds(akp)})

	// A user signed by an account the server does not know is refused.
	stranger, _ := nkeys.CreateAccount()
	if _, err := Connect(testContext(t), ConnOptions{URL: e.ClientURL(), CredsFile: creds(stranger)}); err == nil {
		t.Error("user of an unknown account connected")
	}

	// A file without a seed is refused before dialling; a missing one is an fs error.
	junk := filepath.Join(t.TempDir(), "junk.creds")
	if err := os.WriteFile(junk, []byte("not a creds file"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Connect(testContext(t), ConnOptions{URL: e.ClientURL(), CredsFile: junk}); !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), "creds_file") {
		t.Errorf("junk creds: err = %v", err)
	}
	if _, err := Connect(testContext(t), ConnOptions{URL: e.ClientURL(), CredsFile: junk + ".missing"}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing creds: err = %v", err)
	}
}

func TestConnectTLS(t *testing.T) {
	c := newCerts(t)
	serverPair, err := tls.LoadX509KeyPair(c.serverCert, c.serverKey)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("server certificate", func(t *testing.T) {
		e := startTestServer(t, &server.Options{
			TLSConfig:  &tls.Config{Certificates: []tls.Certificate{serverPair}, MinVersion: tls.VersionTLS12},
			TLSTimeout: 2,
		})
		u := e.ClientURL()
		if !strings.HasPrefix(u, "tls://") {
			t.Fatalf("ClientURL = %q, want tls://", u)
		}
		nc := mustConnect(t, ConnOptions{URL: u, TLS: TLSOptions{CAFile: c.ca}})
		if _, err := nc.TLSConnectionState(); err != nil {
			t.Errorf("not a TLS connection: %v", err)
		}
		// The same server over nats:// with a TLS option: TLS is used all the same.
		mustConnect(t, ConnOptions{URL: strings.Replace(u, "tls://", "nats://", 1), TLS: TLSOptions{CAFile: c.ca}})

		// Without the CA the system's roots do not trust the test CA.
		_, err := Connect(testContext(t), ConnOptions{URL: u})
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Errorf("without CA: err = %v, want x509.UnknownAuthorityError", err)
		}

		rec, log := newRecorder(t)
		mustConnect(t, ConnOptions{URL: u, TLS: TLSOptions{InsecureSkipVerify: true}, Logger: log})
		if !rec.has("WARN", "verification is off") {
			t.Error("InsecureSkipVerify not warned about")
		}
	})

	t.Run("client certificate", func(t *testing.T) {
		e := startTestServer(t, &server.Options{
			TLSConfig: &tls.Config{
				Certificates: []tls.Certificate{serverPair},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    c.caPool,
				MinVersion:   tls.VersionTLS12,
			},
			TLSVerify:  true,
			TLSTimeout: 2,
		})
		mustConnect(t, ConnOptions{URL: e.ClientURL(), TLS: TLSOptions{CAFile: c.ca, CertFile: c.clientCert, KeyFile: c.clientKey}})
		if _, err := Connect(testContext(t), ConnOptions{URL: e.ClientURL(), TLS: TLSOptions{CAFile: c.ca}}); err == nil {
			t.Error("connected without the client certificate the server requires")
		}
	})

	t.Run("bad files", func(t *testing.T) {
		u := "tls://127.0.0.1:1"
		for _, tc := range []struct {
			tls   TLSOptions
			check func(error) bool
		}{
			{TLSOptions{CAFile: c.ca + ".missing"}, func(err error) bool { return errors.Is(err, fs.ErrNotExist) }},
			{TLSOptions{CAFile: c.serverKey}, func(err error) bool { return errors.Is(err, ErrInvalidOptions) }},
			{TLSOptions{CertFile: c.clientCert, KeyFile: c.serverKey}, func(err error) bool {
				return err != nil && strings.Contains(err.Error(), "tls.cert_file and tls.key_file")
			}},
		} {
			if _, err := Connect(testContext(t), ConnOptions{URL: u, TLS: tc.tls}); !tc.check(err) {
				t.Errorf("%+v: err = %v", tc.tls, err)
			}
		}
	})
}

func TestConnectOptionCombinations(t *testing.T) {
	u := "nats://127.0.0.1:1"
	for _, tc := range []struct {
		o    ConnOptions
		want string
	}{
		{ConnOptions{}, "url is required"},
		{ConnOptions{URL: " , "}, "url: entry 1"},
		{ConnOptions{URL: "http://127.0.0.1:4222"}, "scheme must be nats, tls, ws or wss"},
		{ConnOptions{URL: "nats://"}, "has no host"},
		{ConnOptions{URL: u, CredsFile: "a.creds", Token: "t"}, "got creds_file and token"},
		{ConnOptions{URL: u, NKeyFile: "a.nk", User: "u", Password: "p"}, "got nkey_file and user"},
		{ConnOptions{URL: u, Password: "p"}, "password needs user"},
		{ConnOptions{URL: "nats://u:hunter2@127.0.0.1:1", Token: "t"}, "nats://u:xxxxx@127.0.0.1:1 carries credentials and token is set too"},
		{ConnOptions{URL: u, TLS: TLSOptions{CertFile: "c.pem"}}, "tls.cert_file and tls.key_file go together"},
		{ConnOptions{URL: u, ConnectTimeout: -time.Second}, "connect timeout must not be negative"},
		{ConnOptions{URL: u, ReconnectWait: -time.Second}, "reconnect wait must not be negative"},
	} {
		_, err := Connect(testContext(t), tc.o)
		if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want ErrInvalidOptions with %q", tc.o, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
	// Every problem is reported, one line each.
	_, err := Connect(testContext(t), ConnOptions{Token: "t", User: "u", TLS: TLSOptions{KeyFile: "k"}})
	if n := strings.Count(err.Error(), "\n") + 1; n != 3 {
		t.Errorf("want 3 problems, got %d: %v", n, err)
	}
}

func TestConnectURLList(t *testing.T) {
	e := startTestServer(t, &server.Options{})
	hostPort := strings.TrimPrefix(e.ClientURL(), "nats://")
	// A dead server first, spaces, and an entry without a scheme: the live one is found.
	nc := mustConnect(t, ConnOptions{URL: "nats://127.0.0.1:1 , " + hostPort, ConnectTimeout: time.Second})
	if nc.ConnectedUrl() != e.ClientURL() {
		t.Errorf("connected to %q", nc.ConnectedUrl())
	}
}

func TestConnectNoServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "nats://" + l.Addr().String()
	l.Close() // nothing listens there now

	start := time.Now()
	_, err = Connect(testContext(t), ConnOptions{URL: u})
	if !errors.Is(err, nats.ErrNoServers) || !strings.Contains(err.Error(), u) {
		t.Errorf("err = %v, want nats.ErrNoServers naming %s", err, u)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
}

// TestConnectContext: a cancelled context stops the first connection, even while the dial would
// otherwise wait for its timeout.
func TestConnectContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Connect(ctx, ConnOptions{URL: "nats://127.0.0.1:1"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled before: err = %v", err)
	}

	// A server that accepts TCP but never speaks: the dial succeeds and nats.go waits for the
	// server's INFO up to its 5s timeout, but the context's end cuts the wait short.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel = context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Connect(ctx, ConnOptions{URL: "nats://" + l.Addr().String(), ConnectTimeout: 5 * time.Second})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s", d)
	}
	t.Logf("error: %v", err)
}

// TestConnectNoticesSilentServer: a server that goes silent without closing the connection (a
// partition: no FIN, no RST) is noticed by the pings, and the client reconnects instead of waiting
// on it for minutes.
func TestConnectNoticesSilentServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	accepted := make(chan struct{}, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
			accepted <- struct{}{}
			go func() {
				// Answers the handshake's PING, then reads everything and answers nothing.
				_, _ = c.Write([]byte(`INFO {"server_id":"silent","version":"2.10.0","proto":1,"headers":true,"max_payload":1048576}` + "\r\n"))
				buf := make([]byte, 4096)
				ponged := false
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if !ponged && strings.Contains(string(buf[:n]), "PING") {
						ponged = true
						_, _ = c.Write([]byte("PONG\r\n"))
					}
				}
			}()
		}
	}()
	nc, err := Connect(testContext(t), ConnOptions{URL: "nats://" + l.Addr().String(), PingInterval: 50 * time.Millisecond, ReconnectWait: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	<-accepted
	select {
	case <-accepted: // the client gave up on the silent connection and dialled again
	case <-time.After(5 * time.Second):
		t.Fatal("the client never noticed that its server went silent")
	}
}

func TestConnectNegativePingInterval(t *testing.T) {
	_, err := Connect(testContext(t), ConnOptions{URL: "nats://127.0.0.1:4222", PingInterval: -time.Second})
	if !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("err = %v, want ErrInvalidOptions", err)
	}
}
