package natsface

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// claimCheckTimeout bounds storing one large result.
const claimCheckTimeout = 2 * time.Minute

// ClaimCheck names a result kept in the JetStream object store because it exceeded the
// connection's max payload. A reply carrying one has the header Mcp-Claim-Check: 1 and the body
// {"claimCheck":{…}} (a streaming result frame: {"type":"result","claimCheck":{…}}).
type ClaimCheck struct {
	Bucket string `json:"bucket"`
	Name   string `json:"name"`
	Size   uint64 `json:"size"`
	// Digest is the object store's digest of the result, "SHA-256=" + base64url.
	Digest string `json:"digest"`
}

// ErrClaimCheck is wrapped by FetchClaimCheck's errors about the claim check itself.
var ErrClaimCheck = errors.New("natsface: bad claim check")

// sendClaimCheck stores res in the object store and answers with its claim check.
func (c *call) sendClaimCheck(res json.RawMessage) {
	f := c.f
	ctx, cancel := context.WithTimeout(f.baseCtx, claimCheckTimeout)
	defer cancel()
	name := f.opts.Gateway + "-" + newID()
	info, err := f.obj.PutBytes(ctx, name, res)
	if err != nil {
		c.ep.stats.served.Add(-1)
		c.ep.stats.errors.Add(1)
		c.sendError(internalError("result of %d bytes exceeds the max payload of %d bytes and could not be stored: %v",
			len(res), f.nc.MaxPayload(), err))
		return
	}
	cc := &ClaimCheck{Bucket: f.opts.ObjectStoreBucket, Name: name, Size: info.Size, Digest: info.Digest}
	var data []byte
	if c.stream {
		data, _ = json.Marshal(Frame{Type: FrameResult, ClaimCheck: cc})
	} else {
		data, _ = json.Marshal(map[string]*ClaimCheck{"claimCheck": cc})
	}
	h := c.newHeader(FrameResult)
	h[HeaderClaimCheck] = []string{"1"}
	if err := c.send(h, data); err != nil {
		f.log.Warn("sending a claim check", "subject", c.subject, "error", err)
	}
	f.log.Debug("result claim-checked", "subject", c.subject, "object", name, "size", info.Size)
}

// FetchClaimCheck returns the result carried by msg, a reply (or final streaming frame) from a
// gateway: for a reply with the header Mcp-Claim-Check: 1 it reads the object from the store
// through js, checks its size and digest against the claim and returns its bytes; for any other
// message it returns msg.Data as is. The object is left for its TTL (another reader may need it).
// The caller needs permission to use the JetStream API for the claim-check bucket.
func FetchClaimCheck(ctx context.Context, js jetstream.JetStream, msg *nats.Msg) ([]byte, error) {
	if msg.Header.Get(HeaderClaimCheck) != "1" {
		return msg.Data, nil
	}
	fields, err := decodeObject(msg.Data, []string{"claimCheck", "type"})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrClaimCheck, err)
	}
	cc, err := decodeClaimCheck(fields["claimCheck"])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrClaimCheck, err)
	}
	obj, err := js.ObjectStore(ctx, cc.Bucket)
	if err != nil {
		return nil, fmt.Errorf("natsface: claim check bucket %q: %w", cc.Bucket, err)
	}
	info, err := obj.GetInfo(ctx, cc.Name)
	if err != nil {
		return nil, fmt.Errorf("natsface: claim check %q: %w", cc.Name, err)
	}
	if info.Size != cc.Size || info.Digest != cc.Digest {
		return nil, fmt.Errorf("%w: object %q is not the one claimed", ErrClaimCheck, cc.Name)
	}
	data, err := obj.GetBytes(ctx, cc.Name) // verifies the digest while reading
	if err != nil {
		return nil, fmt.Errorf("natsface: claim check %q: %w", cc.Name, err)
	}
	if uint64(len(data)) != cc.Size {
		return nil, fmt.Errorf("%w: object %q has %d bytes, claimed %d", ErrClaimCheck, cc.Name, len(data), cc.Size)
	}
	return data, nil
}

// decodeClaimCheck decodes a claim check object strictly.
func decodeClaimCheck(raw json.RawMessage) (*ClaimCheck, error) {
	if raw == nil {
		return nil, errors.New(`no "claimCheck"`)
	}
	fields, err := decodeObject(raw, []string{"bucket", "name", "size", "digest"})
	if err != nil {
		return nil, err
	}
	var cc ClaimCheck
	for key, dst := range map[string]any{"bucket": &cc.Bucket, "name": &cc.Name, "size": &cc.Size, "digest": &cc.Digest} {
		v, ok := fields[key]
		if !ok {
			return nil, fmt.Errorf("no %q", key)
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return nil, fmt.Errorf("%q: %v", key, err)
		}
	}
	if cc.Bucket == "" || cc.Name == "" {
		return nil, errors.New("empty bucket or name")
	}
	return &cc, nil
}
