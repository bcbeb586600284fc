package mcptest

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// The fixed prompts and resources.
const (
	resourceA      = "test://static/a"
	resourceB      = "test://static/b"
	itemPrefix     = "test://item/"
	itemTemplate   = "test://item/{id}"
	resourceAText  = "Static resource A."
	cursorPrefix   = "page-"
	cacheScopeHint = "public"
)

var resourceBBytes = []byte{0x00, 0x01, 0x02, 0xfe, 0xff, 'b'}

func promptList() []any {
	return []any{
		map[string]any{
			"name":        "greet",
			"description": "Greets someone by name.",
			"arguments": []any{
				map[string]any{"name": "name", "description": "Who to greet.", "required": true},
			},
		},
		map[string]any{
			"name":        "summarize",
			"description": "Asks for a summary of some text.",
			"arguments": []any{
				map[string]any{"name": "text", "description": "The text to summarize.", "required": false},
			},
		},
	}
}

func resourceList() []any {
	return []any{
		map[string]any{"uri": resourceA, "name": "a", "title": "Static text resource A", "mimeType": "text/plain"},
		map[string]any{"uri": resourceB, "name": "b", "title": "Static binary resource B", "mimeType": "application/octet-stream"},
	}
}

func templateList() []any {
	return []any{
		map[string]any{"uriTemplate": itemTemplate, "name": "item", "title": "An item by id", "mimeType": "text/plain"},
	}
}

// itemID returns the id of a test://item/{id} URI.
func itemID(uri string) (string, bool) {
	id, ok := strings.CutPrefix(uri, itemPrefix)
	return id, ok && id != "" && !strings.ContainsAny(id, "/?#")
}

func knownResource(uri string) bool {
	_, item := itemID(uri)
	return uri == resourceA || uri == resourceB || item
}

func (s *server) listTools(c *call) (map[string]any, *rpcError) {
	s.mu.Lock()
	items := make([]any, 0, len(s.tools))
	for _, t := range s.tools {
		items = append(items, t.json())
	}
	s.mu.Unlock()
	if s.opts.BadTools {
		items = append(items,
			map[string]any{"name": "", "inputSchema": map[string]any{"type": "object"}},
			map[string]any{"description": "a tool without a name", "inputSchema": map[string]any{"type": "object"}},
			"not a tool object")
	}
	return s.page(c, "tools", items)
}

func (s *server) listPrompts(c *call) (map[string]any, *rpcError) {
	return s.page(c, "prompts", promptList())
}

func (s *server) listResources(c *call) (map[string]any, *rpcError) {
	return s.page(c, "resources", resourceList())
}

func (s *server) listTemplates(c *call) (map[string]any, *rpcError) {
	return s.page(c, "resourceTemplates", templateList())
}

// page returns the page of items that c's cursor selects. Page k starts at
// item k*PageSize. Modern cursors: page 1 is "" and page k>1 "page-k";
// legacy cursors: page k is "page-k". A cursor past the end (the list shrank)
// gives an empty last page.
func (s *server) page(c *call, field string, items []any) (map[string]any, *rpcError) {
	size := s.opts.PageSize
	k := 0
	cursor, present, ok := str(c.params, "cursor")
	if !ok {
		return nil, invalidParams("Invalid params: cursor must be a string")
	}
	if present {
		k, ok = parseCursor(cursor, c.modern)
		if !ok || size == 0 {
			return nil, invalidParams("Invalid params: invalid cursor %q", cursor)
		}
	}
	res := map[string]any{}
	start, end := 0, len(items)
	if size > 0 {
		start = min(k*size, len(items))
		end = min(start+size, len(items))
		if end < len(items) {
			res["nextCursor"] = makeCursor(k+1, c.modern)
		}
	}
	res[field] = items[start:end]
	if c.modern {
		res["ttlMs"] = s.opts.TTLMs
		res["cacheScope"] = cacheScopeHint
	}
	return res, nil
}

func makeCursor(k int, modern bool) string {
	if modern && k == 1 {
		return ""
	}
	return cursorPrefix + strconv.Itoa(k)
}

func parseCursor(cursor string, modern bool) (int, bool) {
	if modern && cursor == "" {
		return 1, true
	}
	n, ok := strings.CutPrefix(cursor, cursorPrefix)
	if !ok {
		return 0, false
	}
	k, err := strconv.Atoi(n)
	if err != nil || k < 1 || (modern && k < 2) || strconv.Itoa(k) != n {
		return 0, false
	}
	return k, true
}

func (s *server) getPrompt(c *call) (map[string]any, *rpcError) {
	name, present, ok := str(c.params, "name")
	if !present || !ok {
		return nil, invalidParams("Invalid params: prompts/get needs a string name")
	}
	args, _, ok := obj(c.params, "arguments")
	if !ok {
		return nil, invalidParams("Invalid params: arguments must be an object")
	}
	for key := range args {
		if _, _, ok := str(args, key); !ok {
			return nil, invalidParams("Invalid params: argument %q must be a string", key)
		}
	}
	var description, text string
	switch name {
	case "greet":
		who, present, _ := str(args, "name")
		if !present {
			return nil, invalidParams("Invalid params: prompt greet needs argument name")
		}
		description, text = "A greeting.", fmt.Sprintf("Hello, %s!", who)
	case "summarize":
		body, _, _ := str(args, "text")
		description, text = "A summary request.", "Please summarize the following text:\n"+body
	default:
		return nil, invalidParams("Invalid params: unknown prompt: %s", name)
	}
	return map[string]any{
		"description": description,
		"messages": []any{map[string]any{
			"role": "user", "content": map[string]any{"type": "text", "text": text},
		}},
	}, nil
}

func (s *server) readResource(c *call) (map[string]any, *rpcError) {
	uri, present, ok := str(c.params, "uri")
	if !present || !ok {
		return nil, invalidParams("Invalid params: resources/read needs a string uri")
	}
	var content map[string]any
	if id, ok := itemID(uri); ok {
		content = map[string]any{"uri": uri, "mimeType": "text/plain", "text": "Item " + id + "."}
	}
	switch uri {
	case resourceA:
		content = map[string]any{"uri": uri, "mimeType": "text/plain", "text": resourceAText}
	case resourceB:
		content = map[string]any{"uri": uri, "mimeType": "application/octet-stream",
			"blob": base64.StdEncoding.EncodeToString(resourceBBytes)}
	}
	if content == nil {
		return nil, notFound(c, uri)
	}
	res := map[string]any{"contents": []any{content}}
	if c.modern {
		res["ttlMs"] = s.opts.TTLMs
		res["cacheScope"] = cacheScopeHint
	}
	return res, nil
}

// notFound is the era's "resource not found": -32002 in 2025-11-25, -32602
// since 2026-07-28.
func notFound(c *call, uri string) *rpcError {
	code := CodeResourceNotFoundLegacy
	if c.modern {
		code = CodeInvalidParams
	}
	return &rpcError{Code: code, Message: "Resource not found", Data: map[string]any{"uri": uri}}
}

func (s *server) subscribeResource(c *call) (map[string]any, *rpcError) {
	uri, present, ok := str(c.params, "uri")
	if !present || !ok {
		return nil, invalidParams("Invalid params: resources/subscribe needs a string uri")
	}
	if !knownResource(uri) {
		return nil, notFound(c, uri)
	}
	s.mu.Lock()
	s.resSubs[uri] = true
	s.mu.Unlock()
	return map[string]any{}, nil
}

func (s *server) unsubscribeResource(c *call) (map[string]any, *rpcError) {
	uri, present, ok := str(c.params, "uri")
	if !present || !ok {
		return nil, invalidParams("Invalid params: resources/unsubscribe needs a string uri")
	}
	s.mu.Lock()
	delete(s.resSubs, uri)
	s.mu.Unlock()
	return map[string]any{}, nil
}
