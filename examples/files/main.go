// Command files is an example MCP server that reads files below one directory.
//
// It offers two read-only tools over the stdio transport, read_file and
// list_files. Every path is resolved inside the root directory given by -root
// through an [os.Root], so names that escape it ("../x", absolute paths, or
// symbolic links pointing outside) are refused.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// maxRead caps how much of one file read_file returns.
const maxRead = 64 << 10

type readArgs struct {
	Path string `json:"path" jsonschema:"path of the file, relative to the server's root directory"`
}

type listArgs struct {
	Dir string `json:"dir,omitempty" jsonschema:"directory to list, relative to the server's root directory; empty or . for the root itself"`
}

func main() {
	def := "."
	if fi, err := os.Stat(filepath.Join("examples", "files", "sample")); err == nil && fi.IsDir() {
		def = filepath.Join("examples", "files", "sample")
	}
	rootDir := flag.String("root", def, "directory the tools may read; paths outside it are refused")
	flag.Parse()
	log.SetFlags(0)
	log.SetOutput(os.Stderr) // stdout carries the protocol
	root, err := os.OpenRoot(*rootDir)
	if err != nil {
		log.Fatalf("files: %v", err)
	}
	defer root.Close()

	server := mcp.NewServer(&mcp.Implementation{Name: "files", Title: "Files (example)", Version: "0.1.0"}, nil)
	no := false
	mcp.AddTool(server, &mcp.Tool{
		Name:        "read_file",
		Description: fmt.Sprintf("Read a text file below the server's root directory and return its contents (at most %d KiB). Paths are relative to the root; paths that leave it are refused.", maxRead>>10),
		Annotations: &mcp.ToolAnnotations{Title: "Read file", ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &no},
	}, func(_ context.Context, _ *mcp.CallToolRequest, in readArgs) (*mcp.CallToolResult, any, error) {
		f, err := root.Open(in.Path)
		if err != nil {
			return nil, nil, err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxRead))
		if err != nil {
			return nil, nil, err
		}
		return text(string(b)), nil, nil
	})
	mcp.AddTool(server, &mcp.Tool{
		Name:        "list_files",
		Description: "List the entries of a directory below the server's root directory, one per line; directories end with a slash. Paths are relative to the root; paths that leave it are refused.",
		Annotations: &mcp.ToolAnnotations{Title: "List files", ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &no},
	}, func(_ context.Context, _ *mcp.CallToolRequest, in listArgs) (*mcp.CallToolResult, any, error) {
		dir := in.Dir
		if dir == "" {
			dir = "."
		}
		f, err := root.Open(dir)
		if err != nil {
			return nil, nil, err
		}
		defer f.Close()
		entries, err := f.ReadDir(-1)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, nil, err
		}
		slices.SortFunc(entries, func(a, b os.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
		var b strings.Builder
		for _, e := range entries {
			b.WriteString(e.Name())
			if e.IsDir() {
				b.WriteByte('/')
			}
			b.WriteByte('\n')
		}
		return text(b.String()), nil, nil
	})

	log.Printf("files: MCP server on stdio, root %s, tools: read_file, list_files", root.Name())
	if err := server.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		log.Fatalf("files: %v", err)
	}
}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}
