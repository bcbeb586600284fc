package gateway

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func items(names ...string) []Item {
	var out []Item
	for _, n := range names {
		out = append(out, Item{Key: n, Raw: mustJSON(map[string]any{"name": n, "inputSchema": map[string]any{"type": "object"}})})
	}
	return out
}

func invOf(tools ...string) *inventory {
	return &inventory{lists: map[Kind]listing{KindTools: {items: items(tools...)}}}
}

func TestPrefixResolverDemoCollision(t *testing.T) {
	inv := map[string]*inventory{
		"notes": invOf("add_note", "list_notes", "search"),
		"files": invOf("read_file", "list_files"),
		"web":   invOf("fetch", "search"),
	}
	c, err := buildCatalog([]string{"files", "notes", "web"}, inv, PrefixResolver{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range c.Tools {
		got = append(got, e.Name)
	}
	want := "files__list_files files__read_file notes__add_note notes__list_notes notes__search web__fetch web__search"
	if strings.Join(got, " ") != want {
		t.Fatalf("catalog = %v\nwant %s", got, want)
	}
	e, ok := c.Tool("web__search")
	if !ok || e.Server != "web" || e.Original != "search" {
		t.Fatalf("web__search routes to %+v", e)
	}
	var exposed struct{ Name string }
	if err := json.Unmarshal(e.JSON, &exposed); err != nil || exposed.Name != "web__search" {
		t.Errorf("exposed JSON %s does not carry the exposed name", e.JSON)
	}
}

func TestPrefixResolverMapsAndShortens(t *testing.T) {
	long := strings.Repeat("x", 100)
	servers := []ServerItems{
		{Server: "git.hub", Items: items("repo/list", "a:b", "a_b", long, long+"y")},
	}
	res, err := PrefixResolver{MaxLength: 40}.Resolve(KindTools, servers)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateResolution(KindTools, servers, res); err != nil {
		t.Fatal(err)
	}
	if got := res.Names[ItemKey{"git.hub", "repo/list"}]; got != "git_hub__repo_list" {
		t.Errorf("repo/list -> %q", got)
	}
	ab1, ab2 := res.Names[ItemKey{"git.hub", "a:b"}], res.Names[ItemKey{"git.hub", "a_b"}]
	if ab1 == ab2 || ab1 == "" || ab2 == "" {
		t.Errorf("a:b and a_b must map to distinct names: %q %q", ab1, ab2)
	}
	l1, l2 := res.Names[ItemKey{"git.hub", long}], res.Names[ItemKey{"git.hub", long + "y"}]
	if len(l1) != 40 || len(l2) != 40 || l1 == l2 {
		t.Errorf("long names: %q (%d) %q (%d)", l1, len(l1), l2, len(l2))
	}
	for k, n := range res.Names {
		if strings.ContainsAny(n, ".:/") {
			t.Errorf("%v exposed as %q with a character clients reject", k, n)
		}
	}
	// Deterministic: the same input gives the same names.
	again, _ := PrefixResolver{MaxLength: 40}.Resolve(KindTools, servers)
	for k, n := range res.Names {
		if again.Names[k] != n {
			t.Errorf("%v: %q then %q", k, n, again.Names[k])
		}
	}
}

// badResolver returns whatever it is told to, to check gw refuses it.
type badResolver struct{ names map[ItemKey]string }

func (b badResolver) Resolve(Kind, []ServerItems) (Resolution, error) {
	return Resolution{Names: b.names}, nil
}

func TestBadResolutionKeepsLastCatalog(t *testing.T) {
	inv := map[string]*inventory{"a": invOf("x"), "b": invOf("x")}
	for name, names := range map[string]map[ItemKey]string{
		"duplicate": {{"a", "x"}: "x", {"b", "x"}: "x"},
		"invalid":   {{"a", "x"}: "has space"},
		"too long":  {{"a", "x"}: strings.Repeat("n", 129)},
		"ghost":     {{"c", "x"}: "c_x"},
	} {
		if _, err := buildCatalog([]string{"a", "b"}, inv, badResolver{names}, nil); err == nil {
			t.Errorf("%s: resolution accepted", name)
		}
	}
	g, err := New(Options{Servers: []ServerSpec{{Name: "a", Command: "x"}}, Resolver: badResolver{map[ItemKey]string{{"a", "x"}: "bad name"}}})
	if err != nil {
		t.Fatal(err)
	}
	before := g.Catalog()
	if err := g.setInventory("a", invOf("x")); err == nil {
		t.Error("a refused resolution was not reported")
	}
	if g.Catalog() != before {
		t.Fatal("a refused resolution replaced the catalog")
	}
}

func TestResourcesFirstServerWins(t *testing.T) {
	res := func(uris ...string) *inventory {
		var its []Item
		for _, u := range uris {
			its = append(its, Item{Key: u, Raw: mustJSON(map[string]string{"uri": u, "name": u})})
		}
		return &inventory{lists: map[Kind]listing{KindResources: {items: its},
			KindTemplates: {items: []Item{{Key: "mem://" + uris[len(uris)-1] + "/{id}", Raw: json.RawMessage(`{}`)}}}}}
	}
	c, err := buildCatalog([]string{"a", "b"}, map[string]*inventory{"a": res("file:///x", "file:///y"), "b": res("file:///x", "file:///z")}, PrefixResolver{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := c.Resource("file:///x"); e == nil || e.Server != "a" {
		t.Errorf("file:///x owned by %+v; want a", e)
	}
	if e, _ := c.Resource("file:///z"); e == nil || e.Server != "b" {
		t.Errorf("file:///z owned by %+v; want b", e)
	}
	if len(c.Rejected) != 1 {
		t.Errorf("rejected = %+v; want the duplicate uri", c.Rejected)
	}
	if e, ok := c.templateFor("mem://file:///z/42"); !ok || e.Server != "b" {
		t.Errorf("template match = %+v", e)
	}
}

func TestBackoffCapped(t *testing.T) {
	for n := 1; n < 40; n++ {
		d := backoff(500e6, 30e9, n)
		if d > 30e9 || d <= 0 {
			t.Fatalf("backoff(%d) = %v", n, d)
		}
	}
	if d := backoff(500e6, 30e9, 1); d < 250e6 || d > 500e6 {
		t.Errorf("first backoff %v not in [250ms, 500ms]", d)
	}
	if d := backoff(500e6, 30e9, 30); d < 15e9 {
		t.Errorf("late backoff %v should be near the cap", d)
	}
}

// BenchmarkCatalogLookup shows routing stays a map hit with many servers.
func BenchmarkCatalogLookup(b *testing.B) {
	inv := map[string]*inventory{}
	var order []string
	for s := range 200 {
		name := fmt.Sprintf("srv%03d", s)
		order = append(order, name)
		var tools []string
		for t := range 20 {
			tools = append(tools, fmt.Sprintf("tool_%d", t))
		}
		inv[name] = invOf(tools...)
	}
	c, err := buildCatalog(order, inv, PrefixResolver{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if _, ok := c.Tool(c.Tools[i%len(c.Tools)].Name); !ok {
			b.Fatal("missing")
		}
	}
}

func BenchmarkCatalogBuild200Servers(b *testing.B) {
	inv := map[string]*inventory{}
	var order []string
	for s := range 200 {
		name := fmt.Sprintf("srv%03d", s)
		order = append(order, name)
		inv[name] = invOf("a", "b", "c", "search", "fetch")
	}
	for b.Loop() {
		if _, err := buildCatalog(order, inv, PrefixResolver{}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListChanged10kTools is what a list_changed costs on a catalog of
// 10,000 tools (1,000 servers of 10): the server's new list swapped in and
// the whole catalog rebuilt with the built-in resolver (issue 12: ≤ 10 ms).
func BenchmarkListChanged10kTools(b *testing.B) {
	var specs []ServerSpec
	for s := range 1000 {
		specs = append(specs, ServerSpec{Name: fmt.Sprintf("srv%04d", s), Command: "x"})
	}
	g, err := New(Options{Servers: specs})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	tools := func(extra string) *inventory {
		names := []string{"read", "write", "list", "search", "fetch", "delete", "move", "copy", "stat", extra}
		return invOf(names...)
	}
	for _, s := range specs {
		if err := g.setInventory(s.Name, tools("tenth")); err != nil {
			b.Fatal(err)
		}
	}
	if n := len(g.Catalog().Tools); n != 10_000 {
		b.Fatalf("%d tools", n)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if err := g.setInventory("srv0500", tools(fmt.Sprintf("changed%d", i))); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPrefixResolverNamesValid: what the built-in resolver makes passes
// ValidateResolution (the catalog skips the check for it), whatever the
// server and item names; and a resolver set up to break the rule is checked.
func TestPrefixResolverNamesValid(t *testing.T) {
	servers := []ServerItems{
		{Server: "a b/c", Items: items("x.y", "日本語", strings.Repeat("long", 50), "")},
		{Server: "", Items: items("tool")},
		{Server: "a_b", Items: items("c", "x.y")},
	}
	for _, p := range []PrefixResolver{{}, {Separator: ".", MaxLength: 20}, {Separator: "-", MaxLength: 128}} {
		if !p.validByConstruction() {
			t.Fatalf("%+v is not valid by construction", p)
		}
		res, err := p.Resolve(KindTools, servers)
		if err != nil {
			t.Fatal(err)
		}
		if err := ValidateResolution(KindTools, servers, res); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
	}
	for _, p := range []PrefixResolver{{Separator: "/"}, {MaxLength: 200}} {
		if p.validByConstruction() {
			t.Errorf("%+v counts as valid by construction", p)
		}
	}
}
