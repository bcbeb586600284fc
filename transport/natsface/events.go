package natsface

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Catalog keys in the catalog KV bucket.
const (
	// CatalogKey holds the catalog most recently published by any gateway: in a one-gateway
	// deployment, the catalog. With several gateways, watch "gw.*".
	CatalogKey = "catalog"
	// GatewayCatalogKeyPrefix + gateway name holds each gateway's own catalog.
	GatewayCatalogKeyPrefix = "gw."
	// CatalogPartKeyPrefix + gateway + "." + n holds part n of a gateway's catalog when it is too
	// large for one value (see CatalogManifest).
	CatalogPartKeyPrefix = "part."
)

// CatalogManifest stands in for a catalog too large for one message (the server's max payload):
// the bucket's value and the catalog.changed event are {"chunked":{…}}, and the catalog is the
// concatenation of the parts, whose SHA-256 is Digest. ReadCatalog reassembles it.
type CatalogManifest struct {
	Gateway string `json:"gateway"`
	Digest  string `json:"digest"` // "sha256:" and 64 hex digits
	Size    int    `json:"size"`
	Parts   int    `json:"parts"`
}

// catalogHead is how a chunked value starts; a catalog itself never does.
const catalogHead = `{"chunked":`

// ReadCatalog returns the catalog a bucket value or a catalog.changed event stands for: the value
// itself, or, when it is a manifest, the parts it names read from kv and checked against its
// digest. A part overwritten meanwhile by a newer catalog fails the check: ReadCatalog then reads
// the gateway's manifest again, a few times.
func ReadCatalog(ctx context.Context, kv jetstream.KeyValue, value []byte) (json.RawMessage, error) {
	for attempt := 0; ; attempt++ {
		if !bytes.HasPrefix(value, []byte(catalogHead)) {
			return value, nil
		}
		var m struct {
			Chunked CatalogManifest `json:"chunked"`
		}
		if err := json.Unmarshal(value, &m); err != nil || m.Chunked.Parts <= 0 || m.Chunked.Gateway == "" {
			return nil, fmt.Errorf("natsface: read catalog: a bad manifest: %.200s", value)
		}
		cat, err := readParts(ctx, kv, m.Chunked)
		if err == nil || attempt == 3 {
			return cat, err
		}
		e, gerr := kv.Get(ctx, GatewayCatalogKeyPrefix+m.Chunked.Gateway)
		if gerr != nil {
			return nil, fmt.Errorf("natsface: read catalog: %w (and the manifest again: %w)", err, gerr)
		}
		value = e.Value()
	}
}

// catalogPartKey is the key of part i of gateway gw's catalog.
func catalogPartKey(gw string, i int) string {
	return CatalogPartKeyPrefix + gw + "." + strconv.Itoa(i)
}

func readParts(ctx context.Context, kv jetstream.KeyValue, m CatalogManifest) (json.RawMessage, error) {
	cat := make([]byte, 0, m.Size)
	for i := range m.Parts {
		e, err := kv.Get(ctx, catalogPartKey(m.Gateway, i))
		if err != nil {
			return nil, fmt.Errorf("natsface: read catalog of %s: part %d: %w", m.Gateway, i, err)
		}
		cat = append(cat, e.Value()...)
	}
	if sum := sha256.Sum256(cat); "sha256:"+hex.EncodeToString(sum[:]) != m.Digest {
		return nil, fmt.Errorf("natsface: read catalog of %s: the parts do not match the manifest (a newer catalog is being written)", m.Gateway)
	}
	return cat, nil
}

// NotificationKind maps an MCP notification method to the {kind} token of
// Prefix.evt.srv.{srv}.notify.{kind}: the "notifications/" prefix is dropped, '/' becomes '_',
// and anything else that is not a plain token character is encoded with EncodeToken:
//
//	notifications/resources/updated     → resources_updated
//	notifications/message               → message
//	notifications/tools/list_changed    → tools_list_changed
//	notifications/prompts/list_changed  → prompts_list_changed
//	notifications/resources/list_changed → resources_list_changed
//	notifications/progress              → progress
func NotificationKind(method string) string {
	k := strings.TrimPrefix(method, "notifications/")
	return EncodeToken(strings.ReplaceAll(k, "/", "_"))
}

// PublishCatalog stores catalog (any JSON) in the catalog bucket under GatewayCatalogKeyPrefix +
// Gateway and under CatalogKey, then publishes it on Prefix.evt.catalog.changed. The bucket is
// written first, so that a subscriber reacting to the event reads the new value. A catalog larger
// than one message may be (the server's max payload, less room for headers) is stored in parts
// under CatalogPartKeyPrefix, and the bucket values and the event carry its CatalogManifest
// instead: ReadCatalog gives the catalog either way. 15,000 tools are about 1 MiB.
//
// A catalog byte for byte equal to the last one this Face published is not written or published
// again: PublishCatalog returns nil at once. The event means the catalog changed, and the gateway
// side may report a catalog many times over (every re-list of a server whose lists carry ttlMs);
// comparing the bytes here makes every caller's event and KV write follow real changes only.
// After a failed PublishCatalog the next one is published whatever it holds. Calls are
// serialised, so the bucket and the events see catalogs in the same order.
func (f *Face) PublishCatalog(ctx context.Context, catalog json.RawMessage) error {
	if !json.Valid(catalog) {
		return fmt.Errorf("natsface: publish catalog: not JSON")
	}
	js, kv, err := f.jetStream()
	if err != nil {
		return err
	}
	digest := sha256.Sum256(catalog)
	f.catalogMu.Lock()
	defer f.catalogMu.Unlock()
	if f.catalogPublished && digest == f.catalogDigest {
		return nil
	}
	// Until this one is out, nothing counts as published: a retry of the same bytes goes out.
	f.catalogPublished = false
	value, parts, err := f.storeParts(ctx, kv, catalog, digest)
	if err != nil {
		return err
	}
	for _, key := range []string{GatewayCatalogKeyPrefix + f.opts.Gateway, CatalogKey} {
		if _, err := kv.Put(ctx, key, value); err != nil {
			return fmt.Errorf("natsface: publish catalog: key %q: %w", key, err)
		}
	}
	if err := f.publish(ctx, js, f.opts.Prefix+".evt.catalog.changed", "", value); err != nil {
		return err
	}
	// Parts an earlier, larger catalog left go once no manifest names them.
	f.deleteParts(ctx, kv, parts)
	f.catalogDigest, f.catalogPublished = digest, true
	return nil
}

// catalogRoom is what a message needs besides its payload: subject, headers, the KV's own.
const catalogRoom = 8 << 10

// storeParts returns what the bucket values and the event carry for catalog: the catalog itself
// when it fits in one message, else its manifest, once its parts are stored; and how many parts
// that is. catalogMu is held.
func (f *Face) storeParts(ctx context.Context, kv jetstream.KeyValue, catalog []byte, digest [sha256.Size]byte) ([]byte, int, error) {
	limit := int(f.nc.MaxPayload()) - catalogRoom
	if f.opts.catalogPartSize > 0 {
		limit = f.opts.catalogPartSize
	}
	if len(catalog) <= limit && !bytes.HasPrefix(catalog, []byte(catalogHead)) {
		return catalog, 0, nil
	}
	parts := 0
	for off := 0; off < len(catalog); off += limit {
		part := catalog[off:min(off+limit, len(catalog))]
		key := catalogPartKey(f.opts.Gateway, parts)
		if _, err := kv.Put(ctx, key, part); err != nil {
			return nil, 0, fmt.Errorf("natsface: publish catalog: key %q: %w", key, err)
		}
		parts++
	}
	m := CatalogManifest{Gateway: f.opts.Gateway, Digest: "sha256:" + hex.EncodeToString(digest[:]), Size: len(catalog), Parts: parts}
	value, err := json.Marshal(map[string]CatalogManifest{"chunked": m})
	if err != nil {
		return nil, 0, err
	}
	f.staleParts = max(f.staleParts, parts)
	return value, parts, nil
}

// deleteParts deletes the parts from n on that an earlier, larger catalog left, once no manifest
// names them. catalogMu is held.
func (f *Face) deleteParts(ctx context.Context, kv jetstream.KeyValue, n int) {
	for i := n; i < f.staleParts; i++ {
		key := catalogPartKey(f.opts.Gateway, i)
		if err := kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			f.log.Warn("deleting a stale catalog part", "key", key, "error", err)
			return
		}
	}
	f.staleParts = n
}

// PublishServerStatus publishes status (any JSON) on Prefix.evt.srv.{EncodeToken(server)}.status.
func (f *Face) PublishServerStatus(ctx context.Context, server string, status json.RawMessage) error {
	js, _, err := f.jetStream()
	if err != nil {
		return err
	}
	return f.publish(ctx, js, f.opts.Prefix+".evt.srv."+EncodeToken(server)+".status", server, status)
}

// PublishNotification publishes a server's notification params on
// Prefix.evt.srv.{EncodeToken(server)}.notify.{EncodeToken(kind)}; use NotificationKind to turn an
// MCP method into kind.
func (f *Face) PublishNotification(ctx context.Context, server, kind string, params json.RawMessage) error {
	js, _, err := f.jetStream()
	if err != nil {
		return err
	}
	subj := f.opts.Prefix + ".evt.srv." + EncodeToken(server) + ".notify." + EncodeToken(kind)
	return f.publish(ctx, js, subj, server, params)
}

// PublishGatewayStatus publishes status (any JSON) on Prefix.evt.gw.{Gateway}.status.
func (f *Face) PublishGatewayStatus(ctx context.Context, status json.RawMessage) error {
	js, _, err := f.jetStream()
	if err != nil {
		return err
	}
	return f.publish(ctx, js, f.opts.Prefix+".evt.gw."+f.opts.Gateway+".status", "", status)
}

// jetStream returns the JetStream handles once Start has succeeded.
func (f *Face) jetStream() (jetstream.JetStream, jetstream.KeyValue, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.js == nil {
		return nil, nil, ErrNotStarted
	}
	return f.js, f.kv, nil
}

// publish sends one event through JetStream, so that it is stored in the event stream (the
// returned error says if it was not) and delivered to core subscribers of the subject.
func (f *Face) publish(ctx context.Context, js jetstream.JetStream, subject, server string, data json.RawMessage) error {
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	if !json.Valid(data) {
		return fmt.Errorf("natsface: publish %s: not JSON", subject)
	}
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{HeaderGateway: []string{f.opts.Gateway}}}
	if server != "" {
		msg.Header[HeaderServer] = []string{headerValue(server)}
	}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("natsface: publish %s: %w", subject, err)
	}
	return nil
}

// PublishToolChanged publishes a tool-definition change (any JSON: the
// gateway's change, with the pinned and current digests) on
// Prefix.evt.srv.{EncodeToken(server)}.pin.changed.
func (f *Face) PublishToolChanged(ctx context.Context, server string, change json.RawMessage) error {
	js, _, err := f.jetStream()
	if err != nil {
		return err
	}
	return f.publish(ctx, js, f.opts.Prefix+".evt.srv."+EncodeToken(server)+".pin.changed", server, change)
}

// auditMaxPending bounds the audit records published and not yet acknowledged; beyond it
// PublishAudit waits (nats.go's stall wait, 200ms) and then fails.
const auditMaxPending = 4096

// PublishAudit publishes one audit record (any JSON: the gateway's record of an authorization
// decision) on Prefix.evt.audit.{EncodeToken(principal)}, stored in the audit stream. It does not
// wait for the stream's acknowledgement, so that a record per call costs the calls nothing: a
// record that cannot be sent, or that the stream refuses or loses, is counted and logged at the
// 1st, 2nd, 4th, 8th… failure, so a caller need not log the error again.
func (f *Face) PublishAudit(principal string, record json.RawMessage) error {
	msg := &nats.Msg{Subject: f.opts.Prefix + ".evt.audit." + EncodeToken(principal), Data: record,
		Header: nats.Header{HeaderGateway: []string{f.opts.Gateway}}}
	js, _, err := f.jetStream()
	if err == nil && !json.Valid(record) {
		err = errors.New("not JSON")
	}
	if err == nil {
		_, err = js.PublishMsgAsync(msg)
	}
	if err != nil {
		f.auditFailed(js, msg, err)
		return fmt.Errorf("natsface: publish audit: %w", err)
	}
	return nil
}

// WaitAudit waits until the stream has acknowledged (or refused) every audit record published so
// far, or ctx ends: gw waits for it before it exits.
func (f *Face) WaitAudit(ctx context.Context) error {
	js, _, err := f.jetStream()
	if err != nil {
		return err
	}
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("natsface: %d audit records not acknowledged: %w", js.PublishAsyncPending(), ctx.Err())
	}
}

func (f *Face) auditFailed(_ jetstream.JetStream, msg *nats.Msg, err error) {
	if n := f.auditFailures.Add(1); n&(n-1) == 0 { // log at 1, 2, 4, 8…
		f.log.Warn("audit records not stored", "subject", msg.Subject, "error", err, "failures", n)
	}
}
