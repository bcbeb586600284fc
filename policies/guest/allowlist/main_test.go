package main

import (
	"strings"
	"testing"

	"github.com/gwmcp/gw/policies/guest/kit/authz"
)

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"*", "anything", true}, {"", "", true}, {"", "a", false},
		{"notes__*", "notes__search", true}, {"notes__*", "notes__", true}, {"notes__*", "web__notes__x", false},
		{"*__search", "web__search", true}, {"a*b*c", "axxbyyc", true}, {"a*b*c", "axxbyy", false},
		{"a*a*a*a*b", strings.Repeat("a", 50), false}, {"web__search", "web__search", true},
		{"web__search", "web__searchx", false}, {"?", "a", false}, {"a**", "a", true},
	} {
		if got := match(c.p, c.s); got != c.want {
			t.Errorf("match(%q, %q) = %v", c.p, c.s, got)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	defer func() { rules = nil }()
	for cfg, want := range map[string]string{
		`{"rule":[]}`:                                   `unknown member "rule"`,
		`{"rules":{}}`:                                  "expected array",
		`{"rules":[{"callers":["a"]}]}`:                 `rules[0]: "tools" is missing or empty`,
		`{"rules":[{"callers":["a"],"tools":[]}]}`:      `rules[0]: "tools" is missing or empty`,
		`{"rules":[{"callers":[],"tools":["x"]}]}`:      `rules[0]: "callers" is missing or empty`,
		`{"rules":[{"callers":[""],"tools":["x"]}]}`:    `rules[0].callers: empty pattern`,
		`{"rules":[{"callers":["a"],"tools":["x",1]}]}`: "expected string, found number",
		`{"rules":[{"callers":["a"],"tool":["x"]}]}`:    `rules[0]: json: unknown member "tool"`,
		`{"rules":[],"rules":[]}`:                       `duplicate member "rules"`,
		`{"rules":[{"callers":["a"],"tools":["x"]}]} x`: "after top-level value",
	} {
		err := configure([]byte(cfg))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "allowlist config: ") {
			t.Errorf("configure(%s) = %v, want %q", cfg, err, want)
		}
	}
	for _, cfg := range []string{``, ` `, `{}`, `{"rules":[]}`} {
		if err := configure([]byte(cfg)); err != nil || rules != nil {
			t.Errorf("configure(%q) = %v, %v", cfg, err, rules)
		}
	}
}

func TestDecide(t *testing.T) {
	defer func() { rules = nil }()
	if err := configure([]byte(`{"rules":[
		{"callers":["alice","group:dev"],"tools":["notes__*","web__search"]},
		{"callers":["*"],"tools":["public__*"]}]}`)); err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		`{"caller":{"id":"alice"},"name":"notes__delete"}`:                    `{"allow":true}`,
		`{"caller":{"id":"bob","groups":["ops","dev"]},"name":"web__search"}`: `{"allow":true}`,
		`{"caller":{"id":""},"name":"public__time"}`:                          `{"allow":true}`,
		`{"caller":{"id":"bob","groups":["ops"]},"name":"web__search"}`:       `{"allow":false,"reason":"allowlist policy: caller \"bob\" may not call tool \"web__search\""}`,
		`{"name":"notes__x"}`:                             `{"allow":false,"reason":"allowlist policy: anonymous caller may not call tool \"notes__x\""}`,
		`{"caller":{"id":"group:dev"},"name":"notes__x"}`: `{"allow":false,"reason":"allowlist policy: caller \"group:dev\" may not call tool \"notes__x\""}`,
	} {
		if got := string(authz.Eval([]byte(in))); got != want {
			t.Errorf("%s:\n got  %s\n want %s", in, got, want)
		}
	}
	rules = nil
	if got := string(authz.Eval([]byte(`{"caller":{"id":"alice"},"name":"notes__x"}`))); !strings.HasPrefix(got, `{"allow":false`) {
		t.Errorf("no rules must deny: %s", got)
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("a*b", "aab")
	f.Fuzz(func(t *testing.T, p, s string) {
		// Reference: a regexp-free recursive matcher.
		var ref func(p, s string) bool
		ref = func(p, s string) bool {
			if p == "" {
				return s == ""
			}
			if p[0] == '*' {
				for i := 0; i <= len(s); i++ {
					if ref(p[1:], s[i:]) {
						return true
					}
				}
				return false
			}
			return s != "" && p[0] == s[0] && ref(p[1:], s[1:])
		}
		if len(p) > 12 || len(s) > 24 {
			return
		}
		if got, want := match(p, s), ref(p, s); got != want {
			t.Fatalf("match(%q, %q) = %v, want %v", p, s, got, want)
		}
	})
}
