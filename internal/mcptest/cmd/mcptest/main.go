// Command mcptest runs the mcptest MCP server on stdin and stdout, configured
// by the MCPTEST_* environment variables, for trying a client by hand:
//
//	MCPTEST_ERA=modern MCPTEST_PAGE_SIZE=2 go run ./internal/mcptest/cmd/mcptest
//
// See package github.com/gwmcp/gw/internal/mcptest for the variables and tools.
package main

import "github.com/gwmcp/gw/internal/mcptest"

func main() {
	mcptest.Main()
}
