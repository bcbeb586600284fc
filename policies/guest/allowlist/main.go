// Allowlist is the gw authorize policy that allows a call only when a rule
// lists both its caller and its tool:
//
//	{"rules":[{"callers":["alice","group:dev","*"],"tools":["notes__*","web__search"]}]}
//
// A caller pattern matches the caller's id, or, written "group:<pattern>",
// any of its groups. A tool pattern matches the exposed tool name. In
// patterns '*' matches any run of characters (also none), so "*" matches
// every caller, anonymous ones included; every other character matches
// itself. Without rules every call is denied.
package main

import (
	"errors"
	"strconv"
	"strings"

	"github.com/gwmcp/gw/policies/guest/kit"
	"github.com/gwmcp/gw/policies/guest/kit/authz"
)

type rule struct{ callers, tools []string }

// rules is set once by gw_init, before any decision.
var rules []rule

func init() {
	kit.Init(configure)
	authz.Handle(decide)
}

func decide(in *authz.Input) authz.Decision {
	for _, r := range rules {
		if matchCaller(r.callers, &in.Caller) && matchAny(r.tools, in.Name) {
			return authz.Allow()
		}
	}
	who := `caller "` + in.Caller.ID + `"`
	if in.Caller.ID == "" {
		who = "anonymous caller"
	}
	return authz.Deny("allowlist policy: " + who + ` may not call tool "` + in.Name + `"`)
}

func matchCaller(patterns []string, c *authz.Caller) bool {
	for _, p := range patterns {
		if g, ok := strings.CutPrefix(p, "group:"); ok {
			if matchAny(c.Groups, g) {
				return true
			}
		} else if match(p, c.ID) {
			return true
		}
	}
	return false
}

// matchAny reports whether any pattern matches s (or, called with a list of
// groups and one pattern, whether the pattern matches any group).
func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if match(p, s) {
			return true
		}
	}
	return false
}

// match is a glob where '*' matches any run of bytes; it backtracks only to
// the last star, so it runs in O(len(p)·len(s)) at worst.
func match(p, s string) bool {
	px, sx := 0, 0
	starPx, starSx := -1, 0
	for px < len(p) || sx < len(s) {
		if px < len(p) {
			if p[px] == '*' {
				starPx, starSx = px, sx+1
				px++
				continue
			}
			if sx < len(s) && p[px] == s[sx] {
				px++
				sx++
				continue
			}
		}
		if starPx >= 0 && starSx <= len(s) {
			px, sx = starPx+1, starSx
			starSx++
			continue
		}
		return false
	}
	return true
}

// configure reads the config strictly: unknown members, wrong types, empty
// lists and empty patterns are errors.
func configure(config []byte) error {
	if len(strings.TrimSpace(string(config))) == 0 {
		rules = nil
		return nil
	}
	var s kit.Scanner
	s.Reset(config)
	var parsed []rule
	seen := false
	obj := s.Object()
	for obj.Next() {
		switch string(obj.Key()) {
		case "rules":
			if seen {
				s.Fail(`duplicate member "rules"`)
				continue
			}
			seen = true
			arr := s.Array()
			for arr.Next() {
				r, err := parseRule(&s, arr.Index()-1)
				if err != nil {
					return err
				}
				parsed = append(parsed, r)
			}
		default:
			s.Fail(`unknown member "` + string(obj.Key()) + `"`)
		}
	}
	if err := s.End(); err != nil {
		return errors.New("allowlist config: " + err.Error())
	}
	rules = parsed
	return nil
}

func parseRule(s *kit.Scanner, i int) (rule, error) {
	var r rule
	where := "allowlist config: rules[" + strconv.Itoa(i) + "]"
	var seenCallers, seenTools bool
	obj := s.Object()
	for obj.Next() {
		switch key := string(obj.Key()); key {
		case "callers", "tools":
			list, seen := &r.callers, &seenCallers
			if key == "tools" {
				list, seen = &r.tools, &seenTools
			}
			if *seen {
				s.Fail(`duplicate member "` + key + `"`)
				continue
			}
			*seen = true
			arr := s.Array()
			for arr.Next() {
				p := s.Str()
				if s.Err() == nil && p == "" {
					return r, errors.New(where + "." + key + ": empty pattern")
				}
				*list = append(*list, p)
			}
		default:
			s.Fail(`unknown member "` + key + `"`)
		}
	}
	if err := s.Err(); err != nil {
		return r, errors.New(where + ": " + err.Error())
	}
	if len(r.callers) == 0 {
		return r, errors.New(where + `: "callers" is missing or empty`)
	}
	if len(r.tools) == 0 {
		return r, errors.New(where + `: "tools" is missing or empty`)
	}
	return r, nil
}

func main() {}
