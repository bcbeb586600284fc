// Package natsclient is the client half of gw's NATS protocol: it serves
// face requests with the gateways on a NATS cluster, so that one MCP face
// (gw connect: mcpface on stdin/stdout) offers the tools of a whole fleet of
// `gw run` gateways. It knows no gateway types; it speaks the subjects,
// headers, frames and catalog entries of docs/SUBJECTS.md, whose definitions
// it takes from transport/natsface (the server half) rather than copying
// them, so the two halves cannot drift apart.
//
// # The union
//
// Every gateway keeps its catalog ({"tools":[…],"prompts":[…]}) in the KV
// bucket mcp-catalog under gw.{gw} and announces its state on
// P.evt.gw.{gw}.status. The Client watches both: the bucket (every gw.*
// key) and the status events (an ordered JetStream consumer that starts
// with the last status of each gateway, then follows). A gateway is in the
// union while it has a catalog entry and its last status is not "stopped";
// a deleted entry or a stopped status takes its tools and prompts out, a
// catalog written after that brings them back. An item hosted by several
// gateways is listed once, with the JSON of the first gateway by name.
// Options.OnChange hears which lists changed.
//
// A gateway that dies without saying so (SIGKILL, a lost host) stays in the
// union until its entry is deleted; calls to its tools then get no
// responders, answered as unknown tools.
//
// # Requests
//
//   - tools/list, prompts/list: answered from the union, whole (no cursor).
//   - tools/call: P.req.{principal}.tools.call.{tool}, the shared subject:
//     NATS's queue group picks one gateway that hosts the tool. No responders
//     means no gateway hosts it: -32602 unknown tool.
//   - prompts/get: P.req.{principal}.at.{gw}.prompts.get.{prompt} of a
//     gateway that hosts the prompt (every gateway serves the shared
//     prompts.get.*, and one without the prompt would answer -32602).
//   - resources/list, resources/templates/list: asked of every gateway in the
//     union (at.{gw}), lists merged in gateway order, an item seen twice kept
//     once.
//   - resources/read, resources/subscribe, resources/unsubscribe,
//     completion/complete: asked of one gateway after another (at.{gw})
//     until one answers other than "unknown" (-32602, -32002, no
//     responders).
//   - ping, logging/setLevel: answered here.
//   - anything else: the shared subject P.req.{principal}.{method with "/"
//     written "."}; no responders is -32601.
//
// Replies are the gateways' bytes, untouched; a claim-checked result is
// fetched from the object store. An error reply keeps its JSON-RPC code.
//
// Deadlines: a request carries Mcp-Timeout-Ms, the time left of its ctx,
// or Options.Timeout when ctx has none; the Client waits a little longer
// than that, so that the gateway's own deadline error arrives.
//
// Streaming: a request whose face.Request has Progress, or an Input that
// can answer sampling, elicitation or roots, is sent with Mcp-Stream: 1.
// Progress frames go to Progress; each input frame is asked of Input on a
// goroutine of its own, and the answer ({"result":…} or {"error":…}) is
// sent to P.req.{principal}.at.{gw}.input.{id}. The request returns when
// the result or error frame arrives, after its input goroutines have
// returned.
//
// The principal is put into subjects encoded with natsface.EncodeToken, so
// a user name with a dot stays one token.
//
// # Goroutines and shutdown
//
// Start starts one goroutine, the watcher, which binds the bucket and the
// event stream (retrying every second while no gateway has created them),
// then follows the bucket; status messages arrive on the ordered
// consumer's goroutine (nats.go's). Both change the union under Client.mu
// and call OnChange outside it. Close stops the consumer and the watcher
// and waits for the watcher. Requests in flight are the caller's: their
// ctx ends them.
package natsclient
