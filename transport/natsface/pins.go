package natsface

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultPinBucket is the KV bucket of tool-definition pins, shared by every
// gateway on the cluster (pins go by server name).
const DefaultPinBucket = "mcp-pins"

// Keys of the pin bucket. The server and tool tokens are PinKeyToken
// encodings.
const (
	// PinKeyPrefix + server + "." + tool holds the accepted definition of a
	// server's tool (the gateway's JSON pin).
	PinKeyPrefix = "pin."
	// ChangeKeyPrefix + server + "." + tool holds a reported change: a tool
	// whose definition differs from its pin (the gateway's JSON change).
	ChangeKeyPrefix = "changed."
)

// PinKeyToken encodes a server or tool name as one token of a KV key, which
// allows only [-/_=.A-Za-z0-9]: [A-Za-z0-9_-] stand for themselves, any other
// byte is '=' and two upper-case hex digits ("a.b" → "a=2Eb"), and the empty
// name is "=". Distinct names have distinct tokens.
func PinKeyToken(name string) string {
	// EncodeToken's encoding with '=' for its escape: its tokens hold no '=' (it escapes it), so
	// the swap keeps them distinct.
	return strings.ReplaceAll(EncodeToken(name), string(tokenEscape), "=")
}

// PinKey is the key of a server's tool's pin.
func PinKey(server, tool string) string {
	return PinKeyPrefix + PinKeyToken(server) + "." + PinKeyToken(tool)
}

// ChangeKey is the key of a server's tool's reported change.
func ChangeKey(server, tool string) string {
	return ChangeKeyPrefix + PinKeyToken(server) + "." + PinKeyToken(tool)
}

// Pins is the pin bucket: the values are opaque JSON to this package (the
// gateway defines them); Pins only keeps and watches them.
type Pins struct{ kv jetstream.KeyValue }

// OpenPins creates (or opens) the pin bucket on nc's JetStream. The bucket
// keeps the latest value of each key, on disk (file storage): pins outlive
// a gateway's restart and, with the embedded server, live in its store
// directory.
func OpenPins(ctx context.Context, nc *nats.Conn, bucket string, replicas int) (*Pins, error) {
	if bucket == "" {
		bucket = DefaultPinBucket
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("natsface: pins: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "gw tool-definition pins",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("natsface: pins: bucket %q: %w", bucket, err)
	}
	return &Pins{kv: kv}, nil
}

// Watch calls fn with the value of every pin in the bucket and returns once
// it has; from then until ctx ends, a goroutine of its own calls fn with
// every pin put (by any gateway, or by `gw pin accept`). Deletes are not
// delivered.
func (p *Pins) Watch(ctx context.Context, fn func(value []byte)) error {
	w, err := p.kv.Watch(ctx, PinKeyPrefix+">")
	if err != nil {
		return fmt.Errorf("natsface: pins: watch: %w", err)
	}
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("natsface: pins: watch ended")
			}
			if e == nil { // the initial values are in
				go func() {
					defer func() { _ = w.Stop() }()
					for {
						select {
						case e, ok := <-w.Updates():
							if !ok {
								return
							}
							if e != nil && e.Operation() == jetstream.KeyValuePut {
								fn(e.Value())
							}
						case <-ctx.Done():
							return
						}
					}
				}()
				return nil
			}
			if e.Operation() == jetstream.KeyValuePut {
				fn(e.Value())
			}
		case <-ctx.Done():
			_ = w.Stop()
			return ctx.Err()
		}
	}
}

// Create stores a pin unless the bucket holds one for the server's tool.
func (p *Pins) Create(ctx context.Context, server, tool string, value []byte) error {
	_, err := p.kv.Create(ctx, PinKey(server, tool), value)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("natsface: pins: create %s/%s: %w", server, tool, err)
	}
	return nil
}

// Put stores a pin, replacing any (an accepted change).
func (p *Pins) Put(ctx context.Context, server, tool string, value []byte) error {
	if _, err := p.kv.Put(ctx, PinKey(server, tool), value); err != nil {
		return fmt.Errorf("natsface: pins: put %s/%s: %w", server, tool, err)
	}
	return nil
}

// Report stores a change of a server's tool.
func (p *Pins) Report(ctx context.Context, server, tool string, value []byte) error {
	if _, err := p.kv.Put(ctx, ChangeKey(server, tool), value); err != nil {
		return fmt.Errorf("natsface: pins: report %s/%s: %w", server, tool, err)
	}
	return nil
}

// Clear removes the change of a server's tool, if any.
func (p *Pins) Clear(ctx context.Context, server, tool string) error {
	err := p.kv.Delete(ctx, ChangeKey(server, tool))
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("natsface: pins: clear %s/%s: %w", server, tool, err)
	}
	return nil
}

// Changes returns the value of every reported change, in key order.
func (p *Pins) Changes(ctx context.Context) ([][]byte, error) {
	return p.values(ctx, ChangeKeyPrefix+">")
}

// AllPins returns the value of every pin, in key order.
func (p *Pins) AllPins(ctx context.Context) ([][]byte, error) {
	return p.values(ctx, PinKeyPrefix+">")
}

func (p *Pins) values(ctx context.Context, filter string) ([][]byte, error) {
	lister, err := p.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("natsface: pins: list: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	var out [][]byte
	slices.Sort(keys)
	for _, k := range keys {
		e, err := p.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("natsface: pins: get %s: %w", k, err)
		}
		out = append(out, e.Value())
	}
	return out, nil
}
