package natsface

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
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
)

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
// written first, so that a subscriber reacting to the event reads the new value. A catalog over
// the max payload cannot be published (nats.ErrMaxPayload).
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
	for _, key := range []string{GatewayCatalogKeyPrefix + f.opts.Gateway, CatalogKey} {
		if _, err := kv.Put(ctx, key, catalog); err != nil {
			return fmt.Errorf("natsface: publish catalog: key %q: %w", key, err)
		}
	}
	if err := f.publish(ctx, js, f.opts.Prefix+".evt.catalog.changed", "", catalog); err != nil {
		return err
	}
	f.catalogDigest, f.catalogPublished = digest, true
	return nil
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
