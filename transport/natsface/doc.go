// Package natsface is gw's NATS face: it exposes the gateway's router to callers over NATS
// request/reply, publishes the gateway's events, and keeps its catalog in a KV bucket.
//
// It knows no sessions and no gateway types: requests go to a Handler that the gateway side
// implements. It imports only the standard library, nats.go (with micro and jetstream) and
// transport/jsonrpc.
//
// # Subjects
//
// P is Options.Prefix ("mcp.v1"). {principal} is the caller's identity: NATS permissions decide who
// may publish under which token, and it is never taken from the payload or headers. Names in
// subjects ({tool}, {prompt}, {srv}, {kind}) are encoded with EncodeToken.
//
//	P.req.{principal}.tools.list               tools/list
//	P.req.{principal}.tools.call.{tool}        tools/call     (one subscription per hosted tool)
//	P.req.{principal}.prompts.list             prompts/list
//	P.req.{principal}.prompts.get.{prompt}     prompts/get
//	P.req.{principal}.resources.list           resources/list
//	P.req.{principal}.resources.read           resources/read
//	P.req.{principal}.servers.list             servers/list   (gw's own)
//	P.req.{principal}.at.{gw}.<any of the above>               the same, at gateway {gw} only
//	P.req.{principal}.at.{gw}.input.{id}       a streaming caller's answer to an input frame
//
//	P.evt.catalog.changed                      body: the catalog (also in the KV bucket)
//	P.evt.srv.{srv}.status                     body: the server's status
//	P.evt.srv.{srv}.notify.{kind}              body: the notification's params (NotificationKind)
//	P.evt.gw.{gw}.status                       body: the gateway's status
//
// Every request endpoint of every gateway is in one queue group (Options.QueueGroup, "gw"), so a
// request is served by exactly one gateway. A tools.call.{tool} endpoint exists only on gateways
// that host the tool (SetTools), so a call reaches one of them. The other shared endpoints are on
// every gateway: with gateways hosting different servers, a list or a prompts/get on a shared
// subject is answered by whichever gateway takes it; address a gateway with at.{gw} to be sure.
//
// The at.{gw} endpoints are subscribed only by gateway {gw}, in the same queue group (its
// tools.call.* is one wildcard endpoint: the gateway itself answers a call for a tool it lacks): with unique
// gateway names that changes nothing, and two processes briefly sharing a name (a rolling restart)
// still run each request once. Gateway names must be unique per prefix; the input subject is the
// one subject without a queue group, since an answer must reach the process that asked.
//
// The micro service ("gw", Options.Version, metadata gateway and prefix) makes every gateway
// visible to `nats micro ls/info/stats`, endpoints with their method and scope (shared or gateway)
// in metadata. micro runs one endpoint's requests one at a time, so the face hands each request to
// a goroutine at once; micro's processing times therefore measure the hand-off, and each
// endpoint's stats "data" (EndpointStats) carries the real counts and handler times. The hosted
// tools' subscriptions are plain queue subscriptions, not micro endpoints: one endpoint each made
// $SRV.INFO exceed the maximum payload at about 6,000 tools, and cost a goroutine each. They all
// deliver into one channel that one goroutine dispatches; their counters are summed in the stats
// data of at-tools-call (ToolCallStats). The input subscription is plain too, and not listed.
//
// # Requests and replies
//
// A request body is the MCP params object (or empty), decoded strictly: a JSON object,
// case-sensitive keys, no duplicate top-level keys. For tools/call and prompts/get, params.name
// must equal the decoded name token of the subject, else -32602.
//
// A reply body is the MCP result. An error reply body is the JSON-RPC error object
// {"code":…,"message":…,"data":…} with micro's error headers Nats-Service-Error-Code (the code)
// and Nats-Service-Error (the message). Every reply has the header Mcp-Gateway. Without streaming
// there is exactly one reply, so `nats req` works.
//
// Request headers:
//
//	Mcp-Timeout-Ms: 1500                      timeout in milliseconds from receipt
//	Mcp-Deadline: 2026-05-01T10:00:00.5Z      absolute deadline (RFC 3339); with both, the earlier
//	Mcp-Stream: 1                             opt into streaming frames
//
// Without a deadline header the request gets Options.DefaultTimeout (60s); any deadline is capped at
// Options.MaxTimeout (5 min). The deadline is the ctx deadline given to Handler.Serve, which the
// gateway turns into notifications/cancelled upstream.
//
// Refused without running (code 503, retryable elsewhere): "gw: busy" when Options.MaxConcurrent
// handlers are running, "gw: shutting down" during Stop.
//
// A request body over the server's max_payload never reaches a gateway: nats.go refuses to publish
// it and the caller gets nats.ErrMaxPayload ("nats: maximum payload exceeded") at once.
//
// # Streaming
//
// With Mcp-Stream: 1 the face publishes frames to the request's reply subject, each a JSON object
// with the header Mcp-Frame naming its type (see Frame):
//
//	{"type":"progress","params":{…}}
//	{"type":"input","id":"<id>","gateway":"<gw>","method":"sampling/createMessage","params":{…}}
//	{"type":"result","result":{…}}                 last frame on success
//	{"type":"error","error":{"code":…,"message":…}} last frame on error (with micro's error headers)
//
// A streaming caller subscribes to its own inbox and publishes the request with that reply
// subject (nc.Request keeps only the first reply). It answers an input frame with a request to
// P.req.{principal}.at.{gateway}.input.{id} whose body is {"result":…} or {"error":{…}}; the face
// takes it only if {principal} is the principal of the call that asked (NATS permissions make the
// token trustworthy) and replies {} — or an error, the same for an unknown id and for another
// principal.
//
// Without streaming, input requests go as NATS requests to Options.LLMSubject with the body
// {"principal":…,"method":…,"params":…} and the header Mcp-Deadline; the LLM host answers
// {"result":…} or {"error":{…}} (or a micro error reply). No LLM subject, no responders or no
// answer before the deadline give a *jsonrpc.Error with code -32603 naming the cause.
//
// # Claim checks
//
// A reply (or final frame) over the connection's max payload is stored in the object store
// Options.ObjectStoreBucket under a unique name, kept for Options.ClaimCheckTTL, and the reply is
// {"claimCheck":{"bucket":…,"name":…,"size":…,"digest":…}} (streaming:
// {"type":"result","claimCheck":{…}}) with the header Mcp-Claim-Check: 1. FetchClaimCheck
// returns the result for Go agents.
//
// # Events
//
// Events are published through JetStream into the stream Options.EventStream (subjects P.evt.>,
// file storage, max age 24h, 100 messages per subject), so core subscribers get them live and late
// subscribers replay them from the stream. Each has the header Mcp-Gateway; server events also
// Mcp-Server with the server's name. The catalog is also kept in the KV bucket
// Options.CatalogBucket under "catalog" (the latest from any gateway) and "gw.{gw}"; one too large
// for a message is stored in parts and announced by its manifest (CatalogManifest, ReadCatalog). A catalog
// equal, byte for byte, to the last one the Face published is neither written nor published
// again (see Face.PublishCatalog), so catalog.changed and the bucket's revisions follow changes
// of the catalog's content, not how often the gateway side reports it.
//
// # Goroutines
//
// The face starts one goroutine per accepted request, running Handler.Serve; each is counted in a
// WaitGroup, and none starts once Stop has passed its flush. dispatch (on micro's subscription
// goroutines, and on dispatchTools for the hosted tools) and handleInput (on the input subscription's goroutine) never block. Stop starts one
// goroutine to wait for the WaitGroup and waits for it. Every call is answered exactly once:
// call.retire decides who answers (the handler goroutine, a refusal, or Stop giving up).
//
// # Shutdown order
//
// See Face.Stop: stop the micro service and drain the tool subscriptions → flush → dispatch what
// is queued → refuse new work → wait for in-flight
// calls (or answer them 503 and cancel their ctx when Stop's ctx ends, then wait) → remove the
// input subscription.
//
// # Design notes
//
//   - Replies are published by the face itself (with micro's header names), not through
//     micro.Request.Respond: micro's request records the respond error in a field its own goroutine
//     reads once Handle returns, so answering later from the handler goroutine would be a data race.
//   - A tool that goes away has its subscription drained: calls already sent to this gateway
//     are taken and answered, none after.
//   - Input answers use a plain subscription, not a micro endpoint, because it must outlive the
//     micro service during Stop: an in-flight call may still be waiting for its caller's answer.
//   - The principal token is passed as sent, not decoded: it is exactly what the NATS permissions
//     matched, so no second spelling of an identity can exist.
//
// # Locks
//
// Face.svcMu (Start, SetTools, Stop's first step; held while calling into micro) is taken before
// Face.mu (state, in-flight calls, input waits). Face.catalogMu (PublishCatalog, held across its
// JetStream calls) is taken before Face.mu and never with svcMu. call.mu orders a call's frames; it is held while
// publishing one frame and never while taking another lock. Face.statsMu is a leaf, also taken
// under micro's own lock by its stats handler, which is why micro is never called with Face.mu held.
package natsface
