// Package natsconn is how gw reaches NATS: either a nats-server running inside the gw process
// ([StartEmbedded], the zero-setup default when no NATS URL is configured) or an external server or
// cluster ([Connect]).
//
// Both hand out plain [*nats.Conn] values; the package adds no protocol of its own. What it adds is
// the choices gw makes for every connection, in one place:
//
//   - Connections reconnect on their own, forever (MaxReconnects(-1)), waiting ReconnectWait plus a
//     random jitter between attempts so that many gateways do not return to a restarted server at
//     the same instant. Subscriptions are re-established by nats.go after a reconnect.
//   - Disconnects, reconnects, failed reconnect attempts, lame-duck notices, asynchronous errors
//     and the final close are logged through log/slog, with the connection's name.
//   - Option combinations that cannot work (two kinds of credentials, a key file without its
//     certificate, a URL that carries credentials while others are set, …) are refused before
//     any network traffic, each with its own error wrapping [ErrInvalidOptions]. Errors never
//     contain a password or token: URLs in messages are redacted.
//
// # The embedded server
//
// The embedded server runs with JetStream enabled and its state in EmbeddedOptions.StoreDir. It
// has no authentication, so it listens on a loopback address only; with Port 0 it does not listen
// at all and is reachable only through in-process connections from [Embedded.Connect]. Its logs go
// to slog: Noticef at Info, Warnf at Warn, Errorf and Fatalf at Error, Debugf at Debug and Tracef
// at [LevelTrace]. Debug and trace logging are switched on in the server only when the logger's
// handler is enabled at those levels, because they cost something even when discarded. A Fatalf
// never exits the process: during start-up it makes StartEmbedded fail with [ErrStart] (or
// [ErrAddrInUse] when the listen address is taken), later it is logged as an error.
//
// The server installs no signal handlers (NoSigs): gw owns the process's signals. It holds an
// advisory lock (flock) on a file in its store directory while it runs, because nats-server would
// let two servers share one JetStream store and corrupt it; a second server on the same directory
// fails with [ErrStoreInUse].
//
// # Goroutines and shutdown order
//
// The goroutines of the server and of each connection belong to nats-server and nats.go; this
// package starts one goroutine of its own, which runs the server's Start so that StartEmbedded can
// give up when its context ends, and it waits for that goroutine before returning. Shutdown runs
// once, in this order: no new in-process connection is handed out; the in-process connections
// still open are closed (drain them first if their pending work matters); the server shuts down
// and Shutdown waits until that is complete; the store directory's lock is released. Later calls
// return once the first one has finished.
package natsconn
