// Command notes is an example MCP server that keeps short notes in memory.
//
// It offers three tools over the stdio transport: add_note, list_notes and
// search. It starts with three notes so that list_notes and search have
// something to show; everything is lost when the process exits. Its search
// tool deliberately has the same name as the web example's, so that a gateway
// serving both has a name collision to resolve.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Note is one stored note.
type Note struct {
	ID    int    `json:"id" jsonschema:"the note's number, starting at 1"`
	Title string `json:"title" jsonschema:"the note's title"`
	Text  string `json:"text" jsonschema:"the note's body"`
}

// store holds the notes; its methods are safe for concurrent use, as the SDK
// runs tool calls concurrently.
type store struct {
	mu    sync.Mutex
	notes []Note
}

func (s *store) add(title, text string) Note {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := Note{ID: len(s.notes) + 1, Title: title, Text: text}
	s.notes = append(s.notes, n)
	return n
}

// find returns the notes whose title or text contains query, ignoring case;
// an empty query matches every note.
func (s *store) find(query string) []Note {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := strings.ToLower(query)
	found := []Note{} // an empty list, not null, in JSON
	for _, n := range s.notes {
		if strings.Contains(strings.ToLower(n.Title+"\n"+n.Text), q) {
			found = append(found, n)
		}
	}
	return found
}

type addArgs struct {
	Title string `json:"title" jsonschema:"a short title for the note"`
	Text  string `json:"text" jsonschema:"the body of the note"`
}

type listArgs struct{}

type searchArgs struct {
	Query string `json:"query" jsonschema:"text to look for in note titles and bodies (case-insensitive)"`
}

// Notes is the structured output of list_notes and search.
type Notes struct {
	Notes []Note `json:"notes" jsonschema:"the matching notes, oldest first"`
}

func main() {
	s := &store{}
	s.add("Shopping", "Milk, eggs, coffee beans and a new notebook.")
	s.add("Gateway idea", "Put several MCP servers behind one gateway and prefix tool names to avoid collisions.")
	s.add("Reading list", "The MCP specification: lifecycle, transports, tools.")

	server := mcp.NewServer(&mcp.Implementation{Name: "notes", Title: "Notes (example)", Version: "0.1.0"}, nil)
	no := false
	mcp.AddTool(server, &mcp.Tool{
		Name:        "add_note",
		Description: "Store a new note with a title and a body. The note is kept in memory only and is lost when the server stops. Returns the stored note with its number.",
		Annotations: &mcp.ToolAnnotations{Title: "Add note", DestructiveHint: &no, OpenWorldHint: &no},
	}, func(_ context.Context, _ *mcp.CallToolRequest, in addArgs) (*mcp.CallToolResult, Note, error) {
		if strings.TrimSpace(in.Title) == "" {
			return nil, Note{}, fmt.Errorf("title must not be empty")
		}
		return nil, s.add(in.Title, in.Text), nil
	})
	mcp.AddTool(server, &mcp.Tool{
		Name:        "list_notes",
		Description: "List every stored note, oldest first.",
		Annotations: &mcp.ToolAnnotations{Title: "List notes", ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &no},
	}, func(context.Context, *mcp.CallToolRequest, listArgs) (*mcp.CallToolResult, Notes, error) {
		return nil, Notes{Notes: s.find("")}, nil
	})
	mcp.AddTool(server, &mcp.Tool{
		Name:        "search",
		Description: "Search the stored notes: returns the notes whose title or body contains the query, ignoring case.",
		Annotations: &mcp.ToolAnnotations{Title: "Search notes", ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &no},
	}, func(_ context.Context, _ *mcp.CallToolRequest, in searchArgs) (*mcp.CallToolResult, Notes, error) {
		return nil, Notes{Notes: s.find(in.Query)}, nil
	})

	log.SetFlags(0)
	log.SetOutput(os.Stderr) // stdout carries the protocol
	log.Printf("notes: MCP server on stdio, %d notes, tools: add_note, list_notes, search", len(s.find("")))
	if err := server.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		log.Fatalf("notes: %v", err)
	}
}
