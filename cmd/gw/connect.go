package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/gwmcp/gw/transport/mcpface"
	"github.com/gwmcp/gw/transport/natsclient"
	"github.com/gwmcp/gw/transport/natsconn"
	"github.com/gwmcp/gw/transport/natsface"
)

// connectOptions are gw connect's flags.
type connectOptions struct {
	conn      natsconn.ConnOptions
	prefix    string
	principal string
	timeout   time.Duration
	verbose   bool
}

// parseConnect reads gw connect's flags; it needs no configuration file.
func parseConnect(args []string, stderr io.Writer) (connectOptions, error) {
	var o connectOptions
	fs := flag.NewFlagSet("connect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "run 'gw help connect' for usage") }
	fs.StringVar(&o.conn.URL, "nats", "", "NATS server URL(s), comma-separated")
	fs.StringVar(&o.conn.CredsFile, "creds", "", "a .creds file (user JWT and nkey seed)")
	fs.StringVar(&o.conn.NKeyFile, "nkey", "", "a file holding a user nkey seed")
	fs.StringVar(&o.conn.Token, "token", "", "an authentication token")
	fs.StringVar(&o.conn.User, "user", "", "a user name")
	fs.StringVar(&o.conn.Password, "password", "", "the user's password")
	fs.StringVar(&o.conn.TLS.CAFile, "tls-ca", "", "PEM file of the CAs that sign the server's certificate")
	fs.StringVar(&o.conn.TLS.CertFile, "tls-cert", "", "PEM client certificate")
	fs.StringVar(&o.conn.TLS.KeyFile, "tls-key", "", "PEM client key")
	fs.StringVar(&o.prefix, "prefix", natsface.DefaultPrefix, "the subject prefix of the gateways")
	fs.StringVar(&o.principal, "principal", "", "the caller's name (default: the local user)")
	fs.DurationVar(&o.timeout, "timeout", natsclient.DefaultTimeout, "deadline of a request")
	fs.BoolVar(&o.verbose, "v", false, "log at debug level")
	fs.BoolVar(&o.verbose, "verbose", false, "log at debug level")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.conn.URL == "":
		return o, fmt.Errorf("--nats URL is required")
	case o.timeout <= 0:
		return o, fmt.Errorf("--timeout must be positive")
	}
	return o, nil
}

// runConnect is `gw connect`: one MCP server on stdin and stdout, like gw
// stdio, with no servers of its own: it serves the tools of the gateways
// (`gw run`) on a NATS cluster (transport/natsclient). Logs go to stderr
// only.
//
// Order: connect to NATS (a failure ends gw connect at once) → start
// watching the fleet → serve the face until stdin closes or
// SIGINT/SIGTERM; the face cancels and answers what is in flight → stop
// watching → close the connection.
func runConnect(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parseConnect(args, stderr)
	if err != nil {
		if err != flag.ErrHelp {
			fmt.Fprintln(stderr, "gw connect:", err)
		}
		return 2
	}
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	principal := o.principal
	if principal == "" {
		principal = localUser()
	}
	o.conn.Name = "gw connect " + principal
	o.conn.Logger = logger
	nc, err := natsconn.Connect(ctx, o.conn)
	if err != nil {
		fmt.Fprintln(stderr, "gw connect:", err)
		return 1
	}
	defer nc.Close()

	var f *mcpface.Face // set before the client starts, which calls back into it
	client, err := natsclient.New(nc, natsclient.Options{
		Prefix:    o.prefix,
		Principal: principal,
		Timeout:   o.timeout,
		Logger:    logger,
		OnChange: func(k natsclient.Change) {
			logger.Info("the fleet's lists changed", "lists", k.String())
			f.ListChanged(faceKinds(k))
		},
		OnResourceUpdated: func(uri string) { f.ResourceUpdated(uri) },
	})
	if err != nil {
		fmt.Fprintln(stderr, "gw connect:", err)
		return 2
	}
	f = mcpface.New(client, mcpface.Options{
		Info:      mcpface.Implementation{Name: "gw", Version: version},
		Principal: principal,
		Logger:    logger,
	})
	if err := client.Start(); err != nil {
		fmt.Fprintln(stderr, "gw connect:", err)
		return 1
	}
	logger.Info("gw connect serving", "nats", nc.ConnectedUrlRedacted(), "prefix", o.prefix, "principal", principal)
	err = f.Serve(ctx, stdin, stdout)
	logger.Info("gw connect stopping", "reason", stopReason(err))
	client.Close()
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(stderr, "gw connect:", err)
		return 1
	}
	return 0
}

// faceKinds maps the client's changed lists to the face's.
func faceKinds(k natsclient.Change) mcpface.Kind {
	var out mcpface.Kind
	if k&natsclient.ChangeTools != 0 {
		out |= mcpface.KindTools
	}
	if k&natsclient.ChangePrompts != 0 {
		out |= mcpface.KindPrompts
	}
	return out
}
