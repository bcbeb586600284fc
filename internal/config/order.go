package config

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
	"go.yaml.in/yaml/v3"
)

// Server order
//
// koanf merges layers into Go maps, which forget the order of keys, but the
// order of servers matters: it breaks ties between servers in collision
// policies such as first-come. So the order of the server names is read
// from the file's own bytes, with each format's parser: a yaml.Node tree, a
// json.Decoder's tokens, go-toml's expression parser (its "unstable"
// package, the only go-toml API that keeps key order; koanf already depends
// on go-toml).

// fileServerOrder returns the server names in the order the file lists
// them, under "servers" or "mcpServers". data has been parsed successfully
// already, so a parser error here only cuts the list short.
func fileServerOrder(format string, data []byte) []string {
	var names []string
	switch format {
	case "json":
		names = jsonServerOrder(data)
	case "toml":
		names = tomlServerOrder(data)
	default:
		names = yamlServerOrder(data)
	}
	// The first mention decides a name's place; a name given twice is
	// merged (TOML tables) or overwritten (JSON), not moved.
	seen := make(map[string]bool, len(names))
	return slices.DeleteFunc(names, func(n string) bool {
		dup := seen[n]
		seen[n] = true
		return dup
	})
}

// isServersKey reports whether a top-level key holds the servers.
func isServersKey(k string) bool { return k == "servers" || k == "mcpServers" }

// yamlServerOrder reads the servers' keys from a YAML document, following
// aliases and merge keys ("<<").
func yamlServerOrder(data []byte) []string {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	root := yamlDeref(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return nil
	}
	var names []string
	for i := 0; i+1 < len(root.Content); i += 2 {
		if isServersKey(root.Content[i].Value) {
			names = yamlMapKeys(root.Content[i+1], names, 0)
		}
	}
	return names
}

// yamlMapKeys appends the keys of mapping node n to names, expanding merge
// keys in place.
func yamlMapKeys(n *yaml.Node, names []string, depth int) []string {
	n = yamlDeref(n)
	if n.Kind != yaml.MappingNode || depth > 8 {
		return names
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" || k.Value == "<<" && k.Style == 0 {
			v = yamlDeref(v)
			if v.Kind == yaml.SequenceNode {
				for _, m := range v.Content {
					names = yamlMapKeys(m, names, depth+1)
				}
			} else {
				names = yamlMapKeys(v, names, depth+1)
			}
			continue
		}
		names = append(names, k.Value)
	}
	return names
}

func yamlDeref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 8; i++ {
		n = n.Alias
	}
	return n
}

// jsonServerOrder reads the servers' keys from a JSON object. For a key
// given twice at the top level, encoding/json keeps the last value, so the
// last one's order counts.
func jsonServerOrder(data []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	var names []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return names
		}
		key, _ := t.(string)
		if !isServersKey(key) {
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return names
			}
			continue
		}
		names = names[:0]
		if t, err := dec.Token(); err != nil || t != json.Delim('{') {
			if t == json.Delim('[') {
				return nil // the checker reports the wrong type
			}
			continue
		}
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return names
			}
			name, _ := t.(string)
			names = append(names, name)
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return names
			}
		}
		if _, err := dec.Token(); err != nil { // the closing }
			return names
		}
	}
	return names
}

// tomlServerOrder reads the server names from TOML in the order they first
// appear: as tables ([servers.a]), dotted keys (servers.a.command = …, or
// a.command = … under [servers]) or an inline table (servers = {a = …}).
func tomlServerOrder(data []byte) []string {
	var (
		p     unstable.Parser
		names []string
		table []string // the current [table]'s key
	)
	p.Reset(data)
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = tomlKey(e.Key())
			if len(table) >= 2 && isServersKey(table[0]) {
				names = append(names, table[1])
			}
		case unstable.KeyValue:
			full := append(slices.Clone(table), tomlKey(e.Key())...)
			switch {
			case len(full) >= 2 && isServersKey(full[0]):
				names = append(names, full[1])
			case len(full) == 1 && isServersKey(full[0]) && e.Value().Kind == unstable.InlineTable:
				for it := e.Value().Children(); it.Next(); {
					if kv := it.Node(); kv.Kind == unstable.KeyValue {
						if k := tomlKey(kv.Key()); len(k) > 0 {
							names = append(names, k[0])
						}
					}
				}
			}
		}
	}
	return names
}

func tomlKey(it unstable.Iterator) []string {
	var parts []string
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return parts
}

// ServerNames returns the names of every configured server, disabled ones
// included, in the configured order: a higher [Server.Priority] first;
// among equal priorities, the order of the configuration file
// ([Config.Order]); then servers the file does not list (added by GW_
// variables or overrides, or in a Config built in code) by name.
func (c *Config) ServerNames() []string {
	pos := make(map[string]int, len(c.Order))
	for i, n := range c.Order {
		if _, dup := pos[n]; !dup {
			pos[n] = i
		}
	}
	names := sortedKeys(c.Servers)
	slices.SortStableFunc(names, func(a, b string) int {
		if pa, pb := c.Servers[a].Priority, c.Servers[b].Priority; pa != pb {
			return cmp.Compare(pb, pa) // higher first
		}
		ia, oka := pos[a]
		ib, okb := pos[b]
		switch {
		case oka && okb:
			return ia - ib
		case oka:
			return -1
		case okb:
			return 1
		}
		return strings.Compare(a, b)
	})
	return names
}
