package natsconn

import "errors"

// Sentinel errors. Compare with errors.Is; the errors returned by this package wrap them and, where
// there is one, the underlying cause (a *fs.PathError, a syscall.Errno, a nats.go sentinel such as
// nats.ErrAuthorization, …).
var (
	// ErrInvalidOptions is wrapped by every error about EmbeddedOptions or ConnOptions themselves,
	// found before anything is started or dialled. Several problems are reported together, joined
	// with errors.Join, one line each.
	ErrInvalidOptions = errors.New("natsconn: invalid options")

	// ErrAddrInUse is returned by StartEmbedded when its listen address is taken, usually by another
	// NATS server. The error also wraps the listener's error (syscall.EADDRINUSE).
	ErrAddrInUse = errors.New("natsconn: embedded server's address is in use")

	// ErrStoreInUse is returned by StartEmbedded when another embedded server, in this process or
	// another, runs on the same StoreDir.
	ErrStoreInUse = errors.New("natsconn: embedded server's store_dir is in use")

	// ErrStart is returned by StartEmbedded when the server reported a fatal error while starting, or
	// did not become ready in time. The message carries the server's own words.
	ErrStart = errors.New("natsconn: embedded server did not start")

	// ErrShutdown is returned by Embedded.Connect once Shutdown has begun.
	ErrShutdown = errors.New("natsconn: embedded server is shut down")
)
