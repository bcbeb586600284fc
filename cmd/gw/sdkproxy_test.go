package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gwmcp/gw/internal/mcptest"
)

// The Go SDK proxy: the yardstick BenchmarkMCPFaces holds gw's MCP faces
// to. The test binary re-executed with envSDKProxy set serves MCP with the
// official Go SDK (mcp.NewServer) over stdio ("stdio") or Streamable HTTP
// ("http", on envSDKProxyAddr) and forwards every tools/call to one
// upstream mcptest server (this binary again, in envSDKProxyEra) through a
// Go SDK client session, exposing the upstream's tools as gw's default
// resolver names them (s__echo), with their schemas.
//
// It is as lean as the SDK lets a proxy be, so that the bar is fair: one
// upstream session shared by every caller, the raw ToolHandler (arguments
// pass through as json.RawMessage, no decode or schema validation), no
// logging, JSON responses over HTTP instead of SSE, stateless HTTP in the
// modern era.
const (
	envSDKProxy     = "GWTEST_SDKPROXY"      // "stdio" or "http"
	envSDKProxyAddr = "GWTEST_SDKPROXY_ADDR" // host:port, for "http"
	envSDKProxyEra  = "GWTEST_SDKPROXY_ERA"  // the upstream's MCPTEST_ERA
)

// sdkProxyIfChild runs the SDK proxy and exits when this process is one.
func sdkProxyIfChild() {
	mode := os.Getenv(envSDKProxy)
	if mode == "" {
		return
	}
	exitProfiled("sdk-"+mode, func() int {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		if err := runSDKProxy(ctx, mode, os.Getenv(envSDKProxyAddr), os.Getenv(envSDKProxyEra)); err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "sdkproxy:", err)
			return 1
		}
		return 0
	})
}

func runSDKProxy(ctx context.Context, mode, addr, era string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	up := exec.Command(exe)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GWTEST_SDKPROXY") {
			up.Env = append(up.Env, kv)
		}
	}
	up.Env = append(up.Env, mcptest.EnvServer+"=1", "MCPTEST_ERA="+era)
	client := mcp.NewClient(&mcp.Implementation{Name: "sdkproxy", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: up}, nil)
	if err != nil {
		return fmt.Errorf("connect upstream: %w", err)
	}
	defer cs.Close()
	server := mcp.NewServer(&mcp.Implementation{Name: "sdkproxy", Version: "1"}, nil)
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return fmt.Errorf("list upstream tools: %w", err)
		}
		name := tool.Name
		exposed := *tool
		exposed.Name = "s__" + name
		server.AddTool(&exposed, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: req.Params.Arguments})
		})
	}
	switch mode {
	case "stdio":
		return server.Run(ctx, &mcp.StdioTransport{})
	case "http":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		// The SDK serves the modern era only statelessly, and legacy
		// sessions only statefully.
		h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
			&mcp.StreamableHTTPOptions{Stateless: era == "modern", JSONResponse: true, Logger: slog.New(slog.DiscardHandler)})
		srv := &http.Server{Handler: h}
		defer context.AfterFunc(ctx, func() { srv.Close() })()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return ctx.Err()
	}
	return fmt.Errorf("unknown mode %q", mode)
}
