package natsface

import (
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/gwmcp/gw/transport/jsonrpc"
)

// Defaults for the zero fields of Options.
const (
	DefaultPrefix             = "mcp.v1"
	DefaultQueueGroup         = "gw"
	DefaultMaxConcurrent      = 64
	DefaultVersion            = "0.0.0"
	DefaultObjectStoreBucket  = "mcp-results"
	DefaultEventStream        = "MCP_EVENTS"
	DefaultCatalogBucket      = "mcp-catalog"
	DefaultTimeout            = 60 * time.Second
	DefaultMaxTimeout         = 5 * time.Minute
	DefaultClaimCheckTTL      = 15 * time.Minute
	DefaultEventMaxAge        = 24 * time.Hour
	DefaultEventMaxPerSubject = 100
	DefaultAuditStream        = "MCP_AUDIT"
	DefaultAuditMaxAge        = 30 * 24 * time.Hour
	DefaultAuditMaxBytes      = 256 << 20
)

// ServiceName is the micro service name every gw gateway registers under, so that
// `nats micro ls` lists all gateways together; Options.Gateway tells them apart (metadata "gateway").
const ServiceName = "gw"

// Options configures a Face. The zero value of every field except Gateway is usable.
// Options are copied by New; changing them afterwards has no effect.
type Options struct {
	// Prefix is the first subject tokens of every subject, default "mcp.v1". It must be a literal
	// subject (no wildcards, no whitespace, no empty tokens).
	Prefix string

	// Gateway is this gateway's name, unique among the gateways sharing Prefix. Required; it must
	// match [A-Za-z0-9_-]+ since it is a subject token, a KV key part and micro metadata.
	Gateway string

	// QueueGroup is the queue group of every request endpoint, default "gw". All gateways use the
	// same group, so a request reaches exactly one gateway that subscribes to its subject.
	QueueGroup string

	// MaxConcurrent is the number of Handler.Serve calls in flight at once, default 64. A request
	// that arrives while all are busy is answered at once with code 503, message "gw: busy".
	MaxConcurrent int

	// MaxDepth bounds how deeply a request body nests objects and arrays; a deeper one is
	// answered with -32600. Default jsonrpc.DefaultMaxDepth.
	MaxDepth int

	// catalogPartSize, when set (tests), is the largest catalog stored whole, and the size of its
	// parts beyond; otherwise the server's max payload sets it.
	catalogPartSize int

	// Version is the micro service version (SemVer), default "0.0.0".
	Version string

	// Logger receives the face's diagnostics; nil means slog.Default().
	Logger *slog.Logger

	// LLMSubject is where client features (sampling/createMessage, elicitation/create, roots/list)
	// go when the caller did not opt into streaming: a NATS request served by a queue group of LLM
	// hosts. "" means no fallback: such an input request fails with code -32603.
	LLMSubject string

	// ObjectStoreBucket is the claim-check bucket for replies over the connection's max payload,
	// default "mcp-results".
	ObjectStoreBucket string

	// ClaimCheckTTL is how long claim-checked results are kept, default 15 minutes. It is the
	// bucket's max age, so the first gateway to create the bucket sets it.
	ClaimCheckTTL time.Duration

	// EventStream is the JetStream stream that keeps events (subjects Prefix+".evt.>" but for
	// the audit records), default "MCP_EVENTS".
	EventStream string

	// AuditStream keeps the audit records (Prefix+".evt.audit.>"), default "MCP_AUDIT", for
	// AuditMaxAge (default 30 days) and at most AuditMaxBytes (default 256 MiB, which JetStream
	// reserves from the account's storage; -1: no limit), the oldest dropped first.
	AuditStream   string
	AuditMaxAge   time.Duration
	AuditMaxBytes int64

	// EventMaxAge and EventMaxPerSubject are the limits of EventStream, default 24h and 100.
	EventMaxAge        time.Duration
	EventMaxPerSubject int64

	// CatalogBucket is the KV bucket holding the catalog, default "mcp-catalog".
	CatalogBucket string

	// Replicas is the replica count of the stream and buckets the face creates, default 1.
	Replicas int

	// DefaultTimeout is the deadline of a request without a deadline header, default 60s.
	// MaxTimeout caps any requested deadline, default 5 minutes.
	DefaultTimeout time.Duration
	MaxTimeout     time.Duration

	// Methods are the MCP methods the face serves, each on the subject made of its name with
	// "/" written "." ({prefix}.req.{principal}.tools.list) and on the same under at.{gw}. The
	// router that serves the Handler lists them, so a method it gains is served here too.
	// tools/call and prompts/get end with the tool or prompt name (see the package doc); tools/call
	// is always served. nil means DefaultMethods.
	Methods []string
}

// DefaultMethods are the methods served when Options.Methods is nil.
var DefaultMethods = []string{"tools/list", "tools/call", "prompts/list", "prompts/get", "resources/list", "resources/read", "servers/list"}

var (
	gatewayNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	bucketNameRe  = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	// semVerRe is micro's own rule, checked here so that New fails rather than Start.
	semVerRe = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
)

// withDefaults returns o with its zero fields set and checks it.
func (o Options) withDefaults() (Options, error) {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.Prefix, DefaultPrefix)
	def(&o.QueueGroup, DefaultQueueGroup)
	def(&o.Version, DefaultVersion)
	def(&o.ObjectStoreBucket, DefaultObjectStoreBucket)
	def(&o.EventStream, DefaultEventStream)
	def(&o.CatalogBucket, DefaultCatalogBucket)
	if o.MaxConcurrent == 0 {
		o.MaxConcurrent = DefaultMaxConcurrent
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = jsonrpc.DefaultMaxDepth
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ClaimCheckTTL == 0 {
		o.ClaimCheckTTL = DefaultClaimCheckTTL
	}
	if o.EventMaxAge == 0 {
		o.EventMaxAge = DefaultEventMaxAge
	}
	if o.EventMaxPerSubject == 0 {
		o.EventMaxPerSubject = DefaultEventMaxPerSubject
	}
	if o.AuditStream == "" {
		o.AuditStream = DefaultAuditStream
	}
	if o.AuditMaxAge == 0 {
		o.AuditMaxAge = DefaultAuditMaxAge
	}
	if o.AuditMaxBytes == 0 {
		o.AuditMaxBytes = DefaultAuditMaxBytes
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.DefaultTimeout == 0 {
		o.DefaultTimeout = DefaultTimeout
	}
	if o.MaxTimeout == 0 {
		o.MaxTimeout = DefaultMaxTimeout
	}
	if o.Methods == nil {
		o.Methods = DefaultMethods
	}
	for _, m := range o.Methods {
		if m == "" || strings.ContainsAny(m, ".*> \t") {
			return Options{}, fmt.Errorf("%w: method %q cannot name a subject", ErrInvalidOptions, m)
		}
	}

	bad := func(format string, args ...any) (Options, error) {
		return Options{}, fmt.Errorf("%w: %s", ErrInvalidOptions, fmt.Sprintf(format, args...))
	}
	switch {
	case !validSubject(o.Prefix):
		return bad("prefix %q is not a literal subject", o.Prefix)
	case o.Gateway == "":
		return bad("gateway name is required")
	case !gatewayNameRe.MatchString(o.Gateway):
		return bad("gateway name %q must match [A-Za-z0-9_-]+", o.Gateway)
	case !validSubject(o.QueueGroup) || strings.Contains(o.QueueGroup, "."):
		return bad("queue group %q is not a valid name", o.QueueGroup)
	case o.MaxConcurrent < 0:
		return bad("max concurrent %d is negative", o.MaxConcurrent)
	case !semVerRe.MatchString(o.Version):
		return bad("version %q is not SemVer", o.Version)
	case o.LLMSubject != "" && !validSubject(o.LLMSubject):
		return bad("LLM subject %q is not a literal subject", o.LLMSubject)
	case !bucketNameRe.MatchString(o.ObjectStoreBucket):
		return bad("object store bucket %q is not a valid name", o.ObjectStoreBucket)
	case !bucketNameRe.MatchString(o.CatalogBucket):
		return bad("catalog bucket %q is not a valid name", o.CatalogBucket)
	case !bucketNameRe.MatchString(o.EventStream):
		return bad("event stream %q is not a valid name", o.EventStream)
	case o.ClaimCheckTTL < 0, o.EventMaxAge < 0, o.EventMaxPerSubject < 0, o.Replicas < 0, o.AuditMaxAge < 0, o.AuditMaxBytes < -1:
		return bad("durations, counts and replicas must not be negative")
	case o.DefaultTimeout < 0 || o.MaxTimeout < 0:
		return bad("timeouts must not be negative")
	case o.DefaultTimeout > o.MaxTimeout:
		return bad("default timeout %v exceeds max timeout %v", o.DefaultTimeout, o.MaxTimeout)
	}
	return o, nil
}

// validSubject reports whether s is a literal subject: non-empty dot-separated tokens without
// wildcards or whitespace.
func validSubject(s string) bool {
	if s == "" {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n\f\v*>") {
			return false
		}
	}
	return true
}

// ValidPrefix reports whether s can be Options.Prefix: a literal subject (no wildcard, no empty
// token). Readers of the gateways' subjects check theirs with it.
func ValidPrefix(s string) bool { return validSubject(s) }
