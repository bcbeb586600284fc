package natsconn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder is a slog.Handler that keeps every record's level and message, for tests that check
// what was logged. It holds no *testing.T, because nats.go callbacks may log after a test ended.
type recorder struct {
	mu   sync.Mutex
	recs []string // "LEVEL message key=value…"
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(ctx context.Context, rec slog.Record) error {
	return recHandler{r: r}.Handle(ctx, rec)
}
func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler { return recHandler{r: r}.WithAttrs(as) }
func (r *recorder) WithGroup(string) slog.Handler         { return r }

// recHandler is a recorder's handler with attributes added by Logger.With.
type recHandler struct {
	r     *recorder
	attrs []slog.Attr
}

func (h recHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recHandler) WithGroup(string) slog.Handler            { return h }
func (h recHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return recHandler{r: h.r, attrs: append(slices.Clip(h.attrs), as...)}
}
func (h recHandler) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Level.String() + " " + rec.Message)
	for _, a := range h.attrs {
		b.WriteString(" " + a.String())
	}
	rec.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	h.r.mu.Lock()
	h.r.recs = append(h.r.recs, b.String())
	h.r.mu.Unlock()
	return nil
}

// has reports whether a record's text contains every one of parts.
func (r *recorder) has(parts ...string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.recs, func(s string) bool {
		for _, p := range parts {
			if !strings.Contains(s, p) {
				return false
			}
		}
		return true
	})
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.recs, "\n")
}

// newRecorder returns a recorder and a logger writing to it; the records are printed when the test
// fails.
func newRecorder(t *testing.T) (*recorder, *slog.Logger) {
	t.Helper()
	r := &recorder{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log records:\n%s", r)
		}
	})
	return r, slog.New(r)
}

// testContext returns a context that ends with the test, bounded to 30s.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startTestServer starts a server on a random loopback port from opts, which a test fills with
// authentication or TLS, and shuts it down when the test ends.
func startTestServer(t *testing.T, opts *server.Options) *Embedded {
	t.Helper()
	opts.Host = "127.0.0.1"
	opts.Port = server.RANDOM_PORT
	opts.NoSigs = true
	_, log := newRecorder(t)
	e, err := startServer(testContext(t), opts, log)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(e.Shutdown)
	return e
}

// certs are PEM files of a test CA and of a server and a client certificate it signed.
type certs struct {
	ca                    string // the CA's certificate
	serverCert, serverKey string // for 127.0.0.1
	clientCert, clientKey string
	caPool                *x509.CertPool
}

// newCerts writes a fresh CA, server certificate (IP SAN 127.0.0.1) and client certificate.
func newCerts(t *testing.T) *certs {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	caKey := genKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gw test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	c := &certs{caPool: x509.NewCertPool()}
	c.caPool.AddCert(caCert)
	c.ca = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)

	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (certFile, keyFile string) {
		key := genKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writePEM(t, dir, name+"-key.pem", "EC PRIVATE KEY", keyDER)
	}
	c.serverCert, c.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	c.clientCert, c.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return c
}

func genKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
