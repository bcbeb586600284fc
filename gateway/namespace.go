package gateway

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// ServerItems is one server's tools (or prompts), the input to collision
// resolution. Servers come in configuration order.
type ServerItems struct {
	Server string
	Items  []Item
}

// ItemKey names one server's item.
type ItemKey struct{ Server, Name string }

// Resolution is a Resolver's answer: the exposed name of every item kept,
// and the items left out with a reason.
type Resolution struct {
	Names    map[ItemKey]string
	Rejected []Rejection
	// AllowChanged lets tools whose definitions changed since they were
	// pinned (Item.Pin PinChanged) into the catalog with their new
	// definitions, which pinning would hold back. Only named items count.
	AllowChanged map[ItemKey]bool
}

// Rejection is an item left out of the catalog.
type Rejection struct {
	Server string `json:"server"`
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Resolver decides exposed names when servers' lists are merged. It runs when
// the catalog changes (start, list_changed, restart), never on the call path.
// The Wasm policy host implements it; PrefixResolver is the built-in default.
type Resolver interface {
	Resolve(kind Kind, servers []ServerItems) (Resolution, error)
}

// validName reports whether name follows the MCP tool-name rule
// [A-Za-z0-9_.-]{1,128}; gw refuses a resolution that breaks it. (A loop: a
// regexp cost a tenth of a 10,000-tool rebuild.)
func validName(name string) bool {
	if len(name) == 0 || len(name) > 128 {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

// ValidateResolution checks a resolver's answer against the servers it was
// given: every exposed name valid and unique, every name for a real item.
func ValidateResolution(kind Kind, servers []ServerItems, r Resolution) error {
	n := 0
	for _, s := range servers {
		n += len(s.Items)
	}
	known := make(map[ItemKey]bool, n)
	for _, s := range servers {
		for _, it := range s.Items {
			known[ItemKey{s.Server, it.Key}] = true
		}
	}
	owner := make(map[string]ItemKey, len(r.Names))
	for key, name := range r.Names {
		if !known[key] {
			return fmt.Errorf("resolution names %s %q of server %q, which does not exist", kind, key.Name, key.Server)
		}
		if !validName(name) {
			return fmt.Errorf("exposed name %q for %s %q of server %q breaks the MCP naming rule [A-Za-z0-9_.-]{1,128}", name, kind, key.Name, key.Server)
		}
		if prev, dup := owner[name]; dup {
			return fmt.Errorf("exposed name %q given to both %s/%s and %s/%s", name, prev.Server, prev.Name, key.Server, key.Name)
		}
		owner[name] = key
	}
	return nil
}

// PrefixResolver exposes every item as server + Separator + name, mapped to
// the characters every major client accepts ([A-Za-z0-9_-]: Anthropic and
// OpenAI refuse '.', '/', ':'), and shortened to MaxLength with a short hash
// when too long (Cursor drops names over 60 characters). Names are never
// parsed back: routing goes through the catalog's table.
type PrefixResolver struct {
	Separator string // default "__"
	MaxLength int    // default 64
}

// validByConstruction reports whether every name p makes follows the MCP
// rule: its parts are mapped to [A-Za-z0-9_-], so only the separator and the
// length can break it.
func (p PrefixResolver) validByConstruction() bool {
	return (p.Separator == "" || validName(p.Separator)) && p.MaxLength <= 128
}

// hashLen is the hex digits of the suffix that keeps shortened names unique.
const hashLen = 8

// Resolve implements Resolver.
func (p PrefixResolver) Resolve(kind Kind, servers []ServerItems) (Resolution, error) {
	sep, maxLen := p.Separator, p.MaxLength
	if sep == "" {
		sep = "__"
	}
	if maxLen <= 0 {
		maxLen = 64
	}
	if maxLen < hashLen+2 {
		return Resolution{}, fmt.Errorf("prefix resolver: max length %d is below %d", maxLen, hashLen+2)
	}
	n := 0
	for _, s := range servers {
		n += len(s.Items)
	}
	res := Resolution{Names: make(map[ItemKey]string, n)}
	taken := make(map[string]bool, n)
	for _, s := range servers {
		for _, it := range s.Items {
			key := ItemKey{s.Server, it.Key}
			if _, dup := res.Names[key]; dup {
				res.Rejected = append(res.Rejected, Rejection{s.Server, it.Key, "server lists this name twice"})
				continue
			}
			name := sanitizeName(s.Server) + sep + sanitizeName(it.Key)
			if len(name) > maxLen || taken[name] {
				name = shorten(name, maxLen, s.Server, it.Key)
			}
			if taken[name] {
				res.Rejected = append(res.Rejected, Rejection{s.Server, it.Key, fmt.Sprintf("exposed name %q already taken", name)})
				continue
			}
			taken[name] = true
			res.Names[key] = name
		}
	}
	return res, nil
}

// sanitizeName maps characters outside [A-Za-z0-9_-] to '_'.
func sanitizeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			return r
		}
		return '_'
	}, s)
}

// shorten cuts name to fit maxLen with a hash of the item's identity, so the
// result is stable across restarts and distinct for distinct items.
func shorten(name string, maxLen int, server, item string) string {
	sum := sha256.Sum256([]byte(server + "\x00" + item))
	suffix := "_" + hex.EncodeToString(sum[:])[:hashLen]
	keep := min(len(name), maxLen-len(suffix))
	return name[:keep] + suffix
}

// Entry is one exposed tool, prompt, resource or template.
type Entry struct {
	Name     string // exposed name (the uri for resources, uriTemplate for templates)
	Server   string
	Original string // the server's own name or uri
	Item     Item
	// JSON is the server's object with its name replaced by the exposed
	// name: what a face lists to its clients.
	JSON json.RawMessage
}

// Catalog is an immutable snapshot of the merged namespace. The gateway
// swaps whole catalogs atomically; lookups are map hits, never scans.
type Catalog struct {
	Tools     []Entry // sorted by exposed name
	Prompts   []Entry // sorted by exposed name
	Resources []Entry // sorted by uri
	Templates []Entry // sorted by uriTemplate
	Rejected  []Rejection
	// Held are the tools held back because their definitions changed since
	// they were pinned (sorted by exposed name): not listed, their calls
	// refused with ErrToolChanged. Changes are every changed tool, held or
	// served (PinWarn, or allowed by the collision policy), by server and
	// tool.
	Held    []Entry
	Changes []ToolChange

	held      map[string]heldTool
	tools     map[string]*Entry
	prompts   map[string]*Entry
	resources map[string]*Entry
}

// heldTool is a held-back tool and its change.
type heldTool struct {
	entry  *Entry
	change *ToolChange
}

// Tool finds an exposed tool.
func (c *Catalog) Tool(name string) (*Entry, bool) { e, ok := c.tools[name]; return e, ok }

// Prompt finds an exposed prompt.
func (c *Catalog) Prompt(name string) (*Entry, bool) { e, ok := c.prompts[name]; return e, ok }

// Resource finds a listed resource by uri.
func (c *Catalog) Resource(uri string) (*Entry, bool) { e, ok := c.resources[uri]; return e, ok }

// ResourceOwner returns the entry that serves uri: the listed resource, else
// the resource template that matches it.
func (c *Catalog) ResourceOwner(uri string) (*Entry, bool) { return c.resourceOwner(uri) }

// resourceOwner returns the entry that serves uri: the listed resource, else
// the template that matches it.
func (c *Catalog) resourceOwner(uri string) (*Entry, bool) {
	if e, ok := c.Resource(uri); ok {
		return e, true
	}
	return c.templateFor(uri)
}

// templateFor returns the server whose resource template matches uri by its
// literal prefix (the text before the first '{'), longest prefix first.
func (c *Catalog) templateFor(uri string) (*Entry, bool) {
	var best *Entry
	bestLen := -1
	for i := range c.Templates {
		e := &c.Templates[i]
		prefix, _, _ := strings.Cut(e.Original, "{")
		if strings.HasPrefix(uri, prefix) && len(prefix) > bestLen {
			best, bestLen = e, len(prefix)
		}
	}
	return best, best != nil
}

// emptyCatalog is the catalog before any server is up.
func emptyCatalog() *Catalog {
	return &Catalog{tools: map[string]*Entry{}, prompts: map[string]*Entry{}, resources: map[string]*Entry{}, held: map[string]heldTool{}}
}

// buildCatalog merges the servers' inventories, given in configuration
// order. A resolver error or an invalid resolution is returned, and the
// caller keeps its previous catalog.
func buildCatalog(order []string, inv map[string]*inventory, resolver Resolver, pins *pinTable) (*Catalog, error) {
	return rebuildCatalog(nil, order, inv, resolver, pins)
}

// rebuildCatalog is buildCatalog that takes what it can from prev, the
// catalog it replaces (nil for none): an entry whose server lists the same
// item, under the same exposed name, keeps its JSON. A list_changed of one
// server then rebuilds a catalog of 10,000 tools without re-encoding the
// other 9,990.
func rebuildCatalog(prev *Catalog, order []string, inv map[string]*inventory, resolver Resolver, pins *pinTable) (*Catalog, error) {
	c := emptyCatalog()
	var prevTools, prevPrompts map[string]*Entry
	if prev != nil {
		prevTools, prevPrompts = prev.tools, prev.prompts
	}
	tools, allowed, err := resolveKind(KindTools, order, inv, resolver, pins, prevTools, &c.Rejected)
	if err != nil {
		return nil, err
	}
	if c.Prompts, _, err = resolveKind(KindPrompts, order, inv, resolver, nil, prevPrompts, &c.Rejected); err != nil {
		return nil, err
	}
	c.Tools, c.Held, c.Changes = splitChanged(tools, allowed, pins)
	for i := range c.Tools {
		c.tools[c.Tools[i].Name] = &c.Tools[i]
	}
	byKey := map[ItemKey]*ToolChange{}
	for i := range c.Changes {
		byKey[ItemKey{c.Changes[i].Server, c.Changes[i].Tool}] = &c.Changes[i]
	}
	for i := range c.Held {
		e := &c.Held[i]
		c.held[e.Name] = heldTool{entry: e, change: byKey[ItemKey{e.Server, e.Original}]}
	}
	for i := range c.Prompts {
		c.prompts[c.Prompts[i].Name] = &c.Prompts[i]
	}
	// Resource URIs are global: the first server in configuration order
	// that lists a uri owns it.
	for _, server := range order {
		in := inv[server]
		if in == nil {
			continue
		}
		for _, it := range in.lists[KindResources].items {
			if _, dup := c.resources[it.Key]; dup {
				c.Rejected = append(c.Rejected, Rejection{server, it.Key, "resource uri already served by another server"})
				continue
			}
			c.Resources = append(c.Resources, Entry{Name: it.Key, Server: server, Original: it.Key, Item: it, JSON: it.Raw})
			c.resources[it.Key] = nil // placeholder, pointers set after sorting
		}
		for _, it := range in.lists[KindTemplates].items {
			c.Templates = append(c.Templates, Entry{Name: it.Key, Server: server, Original: it.Key, Item: it, JSON: it.Raw})
		}
	}
	slices.SortStableFunc(c.Resources, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	slices.SortStableFunc(c.Templates, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	for i := range c.Resources {
		c.resources[c.Resources[i].Name] = &c.Resources[i]
	}
	return c, nil
}

// resolveKind resolves one kind's names; with pins, each item carries its
// pin state to the resolver and its entry. It returns the entries and the
// changed items the resolver allowed.
func resolveKind(kind Kind, order []string, inv map[string]*inventory, resolver Resolver, pins *pinTable, prev map[string]*Entry, rejected *[]Rejection) ([]Entry, map[ItemKey]bool, error) {
	var servers []ServerItems
	for _, server := range order {
		if in := inv[server]; in != nil {
			if l, ok := in.lists[kind]; ok {
				items := l.items
				if pins != nil {
					items = slices.Clone(items)
					for i := range items {
						items[i].Pin = pins.state(server, items[i])
					}
				}
				servers = append(servers, ServerItems{Server: server, Items: items})
			}
		}
	}
	res, err := resolver.Resolve(kind, servers)
	if err != nil {
		return nil, nil, fmt.Errorf("resolve %s: %w", kind, err)
	}
	// The built-in resolver's names are valid by construction (given a
	// valid separator and length); any other's (a Wasm policy's) are checked.
	if p, builtin := resolver.(PrefixResolver); !builtin || !p.validByConstruction() {
		if err := ValidateResolution(kind, servers, res); err != nil {
			return nil, nil, fmt.Errorf("resolve %s: %w", kind, err)
		}
	}
	*rejected = append(*rejected, res.Rejected...)
	out := make([]Entry, 0, len(res.Names))
	for _, s := range servers {
		for _, it := range s.Items {
			name, ok := res.Names[ItemKey{s.Server, it.Key}]
			if !ok {
				continue
			}
			var js json.RawMessage
			if e := prev[name]; e != nil && e.Server == s.Server && e.Original == it.Key && sameBytes(e.Item.Raw, it.Raw) {
				js = e.JSON // the same item under the same name: the same JSON
			} else {
				// ValidateResolution checked the name: [A-Za-z0-9_.-], nothing to escape.
				var err error
				if js, err = setField(it.Raw, "name", []byte(`"`+name+`"`)); err != nil {
					return nil, nil, err
				}
			}
			out = append(out, Entry{Name: name, Server: s.Server, Original: it.Key, Item: it, JSON: js})
		}
	}
	// Sorted through an index: an Entry is large, and moving each one
	// log n times cost more than the rest of a rebuild.
	idx := make([]int32, len(out))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(a, b int32) int { return strings.Compare(out[a].Name, out[b].Name) })
	sorted := make([]Entry, len(out))
	for i, j := range idx {
		sorted[i] = out[j]
	}
	return sorted, res.AllowChanged, nil
}

// sameBytes reports whether a and b are the same slice of memory: an item
// from a list that did not change since the last rebuild.
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// splitChanged takes the tools whose definitions changed out of the listed
// ones when pinning holds them back and the resolver did not allow them,
// and describes every change.
func splitChanged(tools []Entry, allowed map[ItemKey]bool, pins *pinTable) (listed, held []Entry, changes []ToolChange) {
	if pins == nil || !slices.ContainsFunc(tools, func(e Entry) bool { return e.Item.Pin == PinChanged }) {
		return tools, nil, nil // the common case: nothing to copy
	}
	listed = tools[:0:0]
	for _, e := range tools {
		if e.Item.Pin != PinChanged {
			listed = append(listed, e)
			continue
		}
		key := ItemKey{e.Server, e.Original}
		old := pins.pins[key]
		ch := ToolChange{
			Server: e.Server, Tool: e.Original, Name: e.Name,
			Fields: changedFields(old.Fields, e.Item.def.fields),
			Pinned: old, Current: e.Item.def.pin(e.Server, e.Original, ""),
		}
		switch {
		case allowed[key]:
			ch.AllowedBy = "policy"
			listed = append(listed, e)
		case pins.mode == PinWarn:
			listed = append(listed, e)
		default:
			ch.Held = true
			held = append(held, e)
		}
		changes = append(changes, ch)
	}
	slices.SortFunc(changes, func(a, b ToolChange) int {
		return cmp.Or(strings.Compare(a.Server, b.Server), strings.Compare(a.Tool, b.Tool))
	})
	return listed, held, changes
}
