// Command web is an example MCP server that pretends to fetch and search the
// web, answering only from a small corpus built into the program.
//
// It offers two read-only tools over the stdio transport, fetch and search.
// It never opens a network connection, so it works (and behaves the same) on
// machines without network access. Its search tool deliberately has the same
// name as the notes example's, so that a gateway serving both has a name
// collision to resolve.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// page is one document of the offline corpus.
type page struct {
	url, title, body string
}

var corpus = []page{
	{"https://modelcontextprotocol.io/", "Model Context Protocol",
		"The Model Context Protocol (MCP) is an open protocol that connects AI applications to data sources and tools through servers that offer tools, resources and prompts."},
	{"https://modelcontextprotocol.io/specification/2026-07-28/basic/transports/stdio", "MCP stdio transport",
		"In the stdio transport the client launches the server as a subprocess and exchanges newline-delimited JSON-RPC messages over its standard input and output. Logging goes to standard error."},
	{"https://go.dev/", "The Go Programming Language",
		"Go is an open source programming language that makes it simple to build secure, scalable systems."},
	{"https://example.com/", "Example Domain",
		"This domain is for use in illustrative examples in documents. You may use this domain in literature without prior coordination or asking for permission."},
}

type fetchArgs struct {
	URL string `json:"url" jsonschema:"the URL of the page, e.g. https://example.com/"`
}

type searchArgs struct {
	Query string `json:"query" jsonschema:"words to look for in page titles and text (case-insensitive, all words must match)"`
}

func main() {
	// -legacy makes this server speak only 2025-11-25 (initialize), so the
	// demo shows gw serving both eras of the spec side by side.
	legacy := flag.Bool("legacy", false, "speak only the 2025-11-25 protocol (initialize handshake)")
	flag.Parse()
	var opts *mcp.ServerOptions
	if *legacy {
		opts = &mcp.ServerOptions{SupportedProtocolVersions: []string{"2025-11-25"}}
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "web", Title: "Web (offline example)", Version: "0.1.0"}, opts)
	no := false
	mcp.AddTool(server, &mcp.Tool{
		Name: "fetch",
		Description: fmt.Sprintf("Return the text of a web page. OFFLINE: this server has no network access and "+
			"only knows the %d pages of its built-in corpus; any other URL is reported as not found.", len(corpus)),
		Annotations: &mcp.ToolAnnotations{Title: "Fetch page (offline)", ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &no},
	}, func(_ context.Context, _ *mcp.CallToolRequest, in fetchArgs) (*mcp.CallToolResult, any, error) {
		for _, p := range corpus {
			if p.url == in.URL || strings.TrimSuffix(p.url, "/") == strings.TrimSuffix(in.URL, "/") {
				return text(p.title + "\n\n" + p.body), nil, nil
			}
		}
		return nil, nil, fmt.Errorf("%s: not in the offline corpus (this server has no network access)", in.URL)
	})
	mcp.AddTool(server, &mcp.Tool{
		Name: "search",
		Description: "Search the web for pages matching a query and return their titles and URLs. OFFLINE: " +
			"this server has no network access and searches only its small built-in corpus.",
		Annotations: &mcp.ToolAnnotations{Title: "Search web (offline)", ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &no},
	}, func(_ context.Context, _ *mcp.CallToolRequest, in searchArgs) (*mcp.CallToolResult, any, error) {
		words := strings.Fields(strings.ToLower(in.Query))
		var b strings.Builder
	pages:
		for _, p := range corpus {
			hay := strings.ToLower(p.title + " " + p.body)
			for _, w := range words {
				if !strings.Contains(hay, w) {
					continue pages
				}
			}
			fmt.Fprintf(&b, "%s\n%s\n\n", p.title, p.url)
		}
		if b.Len() == 0 {
			return text("no results"), nil, nil
		}
		return text(b.String()), nil, nil
	})

	log.SetFlags(0)
	log.SetOutput(os.Stderr) // stdout carries the protocol
	log.Printf("web: MCP server on stdio, offline corpus of %d pages, tools: fetch, search", len(corpus))
	if err := server.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		log.Fatalf("web: %v", err)
	}
}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}
