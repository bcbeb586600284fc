package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// maxListPages stops a server whose cursors never end.
const maxListPages = 10000

// Kind names a list a server offers.
type Kind string

// List kinds.
const (
	KindTools     Kind = "tools"
	KindPrompts   Kind = "prompts"
	KindResources Kind = "resources"
	KindTemplates Kind = "resourceTemplates"
)

var listMethods = map[Kind]string{
	KindTools:     methodToolsList,
	KindPrompts:   methodPromptsList,
	KindResources: methodResourcesList,
	KindTemplates: methodTemplatesList,
}

// Item is one tool, prompt, resource or resource template as the server
// described it. Key is its name (tools, prompts), uri (resources) or
// uriTemplate (templates); Raw is the server's object, untouched.
type Item struct {
	Key         string
	Description string
	Annotations json.RawMessage
	Raw         json.RawMessage
	// Pin is a tool's definition compared with its pin when the catalog was
	// built: what the resolver saw and what the tool's Entry carries; ""
	// when pinning is off, for other kinds, and in a server's own lists.
	Pin PinState

	def *toolDef // a tool's pinned definition, digested when listed
}

// listing is one complete list, all pages, with its caching hints.
type listing struct {
	items []Item
	// freshUntil is when the earliest page goes stale (zero: no ttlMs was
	// given, so gw relies on change notifications); cacheScope is the
	// server's "public" or "private", "" when absent.
	freshUntil time.Time
	cacheScope string
	// skipped counts malformed entries left out.
	skipped int
}

// inventory is everything a server offers.
type inventory struct {
	lists map[Kind]listing
}

// skipped counts the malformed entries left out of every list.
func (inv *inventory) skipped() int {
	n := 0
	for _, l := range inv.lists {
		n += l.skipped
	}
	return n
}

// offers reports whether the server's capabilities announce a kind.
func (s *session) offers(k Kind) bool {
	switch k {
	case KindTools:
		return s.caps.Tools != nil
	case KindPrompts:
		return s.caps.Prompts != nil
	case KindResources, KindTemplates:
		return s.caps.Resources != nil
	}
	return false
}

// fetchInventory lists every kind the server offers.
func (s *session) fetchInventory(ctx context.Context) (*inventory, error) {
	inv := &inventory{lists: map[Kind]listing{}}
	for _, k := range []Kind{KindTools, KindPrompts, KindResources, KindTemplates} {
		if !s.offers(k) {
			continue
		}
		l, err := s.listAll(ctx, k)
		if err != nil {
			return nil, err
		}
		inv.lists[k] = l
	}
	return inv, nil
}

// listAll follows cursors to the end. In the modern era an empty-string
// cursor is a real cursor and only a missing nextCursor ends the list; legacy
// servers commonly send "" to mean the end, so there it ends the list too.
func (s *session) listAll(ctx context.Context, k Kind) (listing, error) {
	method := listMethods[k]
	var out listing
	seen := map[string]bool{}
	var cursor *string
	for page := 0; ; page++ {
		if page >= maxListPages {
			return listing{}, fmt.Errorf("server %q: %s: more than %d pages", s.name, method, maxListPages)
		}
		var params json.RawMessage
		if cursor != nil {
			params = mustJSON(map[string]string{"cursor": *cursor})
		}
		res, err := s.request(ctx, method, params, callOptions{})
		if err != nil {
			return listing{}, err
		}
		received := time.Now()
		fields, err := objectFields(res)
		if err != nil {
			return listing{}, fmt.Errorf("server %q: %s: result %w", s.name, method, err)
		}
		var items []json.RawMessage
		raw, ok := fields[string(k)]
		if !ok {
			return listing{}, fmt.Errorf("server %q: %s: result has no %q", s.name, method, k)
		}
		if err := json.Unmarshal(raw, &items); err != nil {
			return listing{}, fmt.Errorf("server %q: %s: %q is not an array", s.name, method, k)
		}
		for i, it := range items {
			item, err := parseItem(k, it)
			if err != nil {
				// One bad entry must not take the server's other items
				// (or the server) down with it.
				out.skipped++
				s.log.Warn("skipping a malformed list entry", "list", method, "page", page, "index", i, "error", err, "entry", truncateBytes(it, 200))
				continue
			}
			out.items = append(out.items, item)
		}
		if ttl, ok := fields["ttlMs"]; ok {
			var ms int64
			if json.Unmarshal(ttl, &ms) == nil {
				until := received.Add(time.Duration(max(ms, 0)) * time.Millisecond)
				if out.freshUntil.IsZero() || until.Before(out.freshUntil) {
					out.freshUntil = until
				}
			}
		}
		if scope, ok := fields["cacheScope"]; ok {
			_ = json.Unmarshal(scope, &out.cacheScope)
		}
		next, ok := fields["nextCursor"]
		if !ok || string(next) == "null" {
			return out, nil
		}
		var c string
		if err := json.Unmarshal(next, &c); err != nil {
			return listing{}, fmt.Errorf("server %q: %s: nextCursor is not a string", s.name, method)
		}
		if c == "" && s.era != EraModern {
			return out, nil
		}
		if seen[c] {
			return listing{}, fmt.Errorf("server %q: %s: cursor %q repeated; the list never ends", s.name, method, c)
		}
		seen[c] = true
		cursor = &c
	}
}

func parseItem(k Kind, raw json.RawMessage) (Item, error) {
	key := "name"
	switch k {
	case KindResources:
		key = "uri"
	case KindTemplates:
		key = "uriTemplate"
	}
	fields, err := objectFields(raw)
	if err != nil {
		return Item{}, fmt.Errorf("%s entry %w", k, err)
	}
	var it Item
	if err := json.Unmarshal(fields[key], &it.Key); err != nil || it.Key == "" {
		return Item{}, errors.New(string(k) + " entry without a " + key)
	}
	_ = json.Unmarshal(fields["description"], &it.Description)
	it.Annotations = fields["annotations"]
	it.Raw = raw
	if k == KindTools {
		it.def = newToolDef(fields)
	}
	return it, nil
}
