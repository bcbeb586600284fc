// Package httpface is gw's Streamable HTTP face: an http.Handler that serves
// a face.Handler — the router — at the MCP endpoint /mcp (and a configured
// view at /mcp/{view}) to remote MCP clients and SDK agents, in both eras of
// the protocol. It knows no gateway types; what requests mean and what
// answers look like comes from transport/mcpface's protocol half.
//
// # Security, before anything else
//
// A request whose Origin is present and not allowed gets 403: loopback
// origins (localhost, 127.0.0.0/8, ::1) and Options.AllowedOrigins are
// allowed. The request's own Host does not make its Origin allowed: that is
// exactly what a DNS-rebinding page has. A request that arrived on a
// loopback address must also name a loopback Host (or an allowed origin's
// host), so a rebinding page cannot reach a local gw even without Origin.
// With Options.Authenticate set, a request without a valid bearer token gets
// 401 and WWW-Authenticate; the token's principal is face.Request.Principal.
// Without it every caller is Options.Anonymous ("anonymous"). Tokens are
// never logged. Bodies over Options.MaxBodySize get 413; bodies that are not
// JSON get -32700, ones that are not JSON-RPC -32600 (both 400).
//
// # 2026-07-28 (modern): stateless
//
// A request whose params._meta carries io.modelcontextprotocol/protocolVersion
// (or server/discover, subscriptions/listen, or any request without a
// session whose MCP-Protocol-Version header is not a legacy version) is
// served on its own. The MCP-Protocol-Version, Mcp-Method and Mcp-Name
// headers must be present and match the body (Mcp-Name decoded from its
// =?base64?…?= form): otherwise 400 with -32020; an unsupported version gets
// 400 with -32022 and the supported list; an unknown method 404 with -32601.
// Results carry resultType. The answer is JSON, unless the request has a
// progressToken and a progress notification comes before the result: then
// the answer becomes an SSE stream of the notifications and the result.
// Closing the response (the client disconnecting) cancels the request's
// context. subscriptions/listen answers an SSE stream: its acknowledgment,
// then the list changes (ListChanged) and resource updates
// (ResourceUpdated) it asked for, and keep-alive comments, until the client
// closes it or the face shuts down (then the listen result ends it).
// Server-to-client requests are multi round-trip requests, with mcpface's
// Rounds: a tools/call, prompts/get or resources/read whose _meta declares
// sampling, elicitation or roots gets a face.Request.Input for them; when
// the gateway call asks, the POST is answered with an InputRequiredResult,
// and the call waits, parked, for the client's retry POST (inputResponses
// and the echoed requestState), which then waits for the call's next event.
// A requestState is bound to the principal and the path (view) that got it:
// anyone else's retry finds nothing (-32602). Parked calls are bounded
// (Options.MaxParked) and expire (Options.InputTTL). GET and DELETE without
// a session get 405.
//
// # 2025-11-25 and earlier (legacy): sessions
//
// initialize creates a session, named by MCP-Session-Id (256 random bits)
// and bound to the principal that created it and to the path (view) it was
// created on. Later requests need that header (400 without it; 404 for an
// unknown, expired, or someone else's session); an MCP-Protocol-Version
// header, when sent, must be the negotiated version (400). A POST is answered
// with JSON, or SSE once the request has something to send before its
// result: progress, or the server-to-client requests (sampling,
// elicitation, roots) that servers raise while serving it, which go to the
// client as JSON-RPC requests on that request's own stream — the message
// relates to it, as the spec asks — when the client declared the
// capability; the client POSTs its responses (202). notifications/cancelled
// cancels a request; a disconnect does not (the legacy spec says it is not
// a cancellation). GET opens the session's one notification stream
// (list_changed, resources/updated for the session's subscriptions); DELETE
// ends the session. Sessions are bounded: at most Options.MaxSessions (the
// least recently used idle one is evicted for a new one; when none is idle,
// 503), and a session idle (no request, no GET stream) for
// Options.SessionIdle expires.
//
// # Lifecycle
//
// New → ServeHTTP (from an http.Server the caller owns) → Shutdown: new
// requests get 503, listen streams end with their result and GET streams
// close, gateway calls parked for a retry are cancelled, requests in flight
// are waited for until Shutdown's context ends and then cancelled. Every
// stream and request runs on its http.Server goroutine; the one exception
// is the gateway call of a request whose client can answer input requests,
// which outlives its POST on a goroutine of Rounds, stopped as above.
//
// Lock order: Face.mu, then a reply's mu. Nothing is written to a client
// with Face.mu held.
package httpface
