package natsclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
)

// catalog is one gateway's catalog entry, decoded.
type catalog struct {
	tools, prompts []item
}

// item is one tool or prompt: its name and the JSON a client lists.
type item struct {
	name string
	raw  json.RawMessage
}

// decodeCatalog reads a gw.{gw} entry, {"tools":[…],"prompts":[…]}, by
// exact keys (it is untrusted JSON: "Tools" is not "tools"). An item
// without a string name is left out.
func decodeCatalog(data []byte) (*catalog, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, err
	}
	if top == nil {
		return nil, errors.New("not an object")
	}
	var c catalog
	for key, dst := range map[string]*[]item{"tools": &c.tools, "prompts": &c.prompts} {
		raw, ok := top[key]
		if !ok || string(raw) == "null" {
			continue
		}
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("%q: %w", key, err)
		}
		for _, obj := range list {
			var fields map[string]json.RawMessage
			var name string
			if json.Unmarshal(obj, &fields) != nil || json.Unmarshal(fields["name"], &name) != nil || name == "" {
				continue
			}
			*dst = append(*dst, item{name: name, raw: obj})
		}
	}
	return &c, nil
}

// union is the fleet's lists at one moment; immutable once built.
type union struct {
	gateways    []string            // in the union, sorted
	toolHosts   map[string][]string // tool name → gateways hosting it, sorted
	promptHosts map[string][]string
	toolsList   []byte // the tools/list result
	promptsList []byte // the prompts/list result
}

func emptyUnion() *union {
	return buildUnion(nil)
}

// buildUnion merges the catalogs of the gateways that are up.
func buildUnion(gateways map[string]*gatewayState) *union {
	u := &union{toolHosts: map[string][]string{}, promptHosts: map[string][]string{}}
	for _, name := range slices.Sorted(maps.Keys(gateways)) {
		g := gateways[name]
		if g.catalog == nil || g.stopped {
			continue
		}
		u.gateways = append(u.gateways, name)
	}
	var tools, prompts []item
	for _, name := range u.gateways {
		cat := gateways[name].catalog
		tools = merge(tools, cat.tools, u.toolHosts, name)
		prompts = merge(prompts, cat.prompts, u.promptHosts, name)
	}
	u.toolsList = listResult("tools", tools)
	u.promptsList = listResult("prompts", prompts)
	return u
}

// merge adds a gateway's items to list, the first gateway's JSON winning,
// and records the gateway as a host of each.
func merge(list, add []item, hosts map[string][]string, gw string) []item {
	for _, it := range add {
		if _, seen := hosts[it.name]; !seen {
			list = append(list, it)
		}
		if h := hosts[it.name]; len(h) == 0 || h[len(h)-1] != gw {
			hosts[it.name] = append(h, gw)
		}
	}
	return list
}

// listResult is {"key":[…]} with the items sorted by name.
func listResult(key string, items []item) []byte {
	sort.SliceStable(items, func(i, j int) bool { return items[i].name < items[j].name })
	var b bytes.Buffer
	b.WriteString(`{"` + key + `":[`)
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(it.raw)
	}
	b.WriteString("]}")
	return b.Bytes()
}
