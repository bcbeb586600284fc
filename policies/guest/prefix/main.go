// Prefix is the gw collision policy that exposes every item as
// server + separator + name, exactly as gw's built-in resolver
// (gateway.PrefixResolver) does: characters outside [A-Za-z0-9_-] become
// '_' (one per character), and a name longer than max_length, or already
// taken, is cut and suffixed with "_" and 8 hex digits of
// SHA-256(server + "\x00" + name). Config (both members optional):
//
//	{"separator":"__","max_length":64}
//
// separator is 1 to 8 of [A-Za-z0-9_.-]; max_length is 10 to 128.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"

	"github.com/gwmcp/gw/policies/guest/kit"
	"github.com/gwmcp/gw/policies/guest/kit/collision"
)

// The defaults and limits of gw's built-in resolver.
const (
	defaultSeparator = "__"
	defaultMaxLength = 64
	hashLen          = 8
	minMaxLength     = hashLen + 2
	maxMaxLength     = 128
)

// separator and maxLength are set by gw_init, before any decision.
var (
	separator = defaultSeparator
	maxLength = defaultMaxLength
)

func init() {
	kit.Init(configure)
	collision.Handle(resolve)
}

type itemKey struct{ server, name string }

func resolve(in *collision.Input) collision.Resolution {
	var res collision.Resolution
	seen := map[itemKey]bool{}
	taken := map[string]bool{}
	for _, s := range in.Servers {
		for _, it := range s.Items {
			key := itemKey{s.Server, it.Name}
			if seen[key] {
				res.Reject(s.Server, it.Name, "server lists this name twice")
				continue
			}
			name := sanitize(s.Server) + separator + sanitize(it.Name)
			if len(name) > maxLength || taken[name] {
				name = shorten(name, s.Server, it.Name)
			}
			if taken[name] {
				res.Reject(s.Server, it.Name, `exposed name "`+name+`" already taken`)
				continue
			}
			taken[name] = true
			seen[key] = true
			res.Expose(s.Server, it.Name, name)
		}
	}
	return res
}

// sanitize maps characters outside [A-Za-z0-9_-] to '_', one per rune (an
// invalid UTF-8 byte counts as one), like gw's strings.Map.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			return r
		}
		return '_'
	}, s)
}

// shorten cuts name to fit maxLength with a hash of the item's identity, so
// the result is stable across restarts and distinct for distinct items.
func shorten(name, server, item string) string {
	sum := sha256.Sum256([]byte(server + "\x00" + item))
	suffix := "_" + hex.EncodeToString(sum[:])[:hashLen]
	keep := min(len(name), maxLength-len(suffix))
	return name[:keep] + suffix
}

// configure reads {"separator":…,"max_length":…} strictly: unknown members
// and out-of-range values are errors.
func configure(config []byte) error {
	sep, maxLen := defaultSeparator, defaultMaxLength
	if len(strings.TrimSpace(string(config))) > 0 {
		var s kit.Scanner
		s.Reset(config)
		var seenSep, seenMax bool
		obj := s.Object()
		for obj.Next() {
			switch key := string(obj.Key()); key {
			case "separator":
				if seenSep {
					s.Fail(`duplicate member "separator"`)
				}
				seenSep = true
				sep = s.Str()
			case "max_length":
				if seenMax {
					s.Fail(`duplicate member "max_length"`)
				}
				seenMax = true
				maxLen = int(max(min(s.Int(), 1<<20), -1))
			default:
				s.Fail(`unknown member "` + key + `"`)
			}
		}
		if err := s.End(); err != nil {
			return errors.New("prefix config: " + err.Error())
		}
	}
	if !validSeparator(sep) {
		return errors.New(`prefix config: separator "` + sep + `" must be 1 to 8 of the characters A-Z a-z 0-9 _ . -`)
	}
	if maxLen < minMaxLength || maxLen > maxMaxLength {
		return errors.New("prefix config: max_length must be between " + strconv.Itoa(minMaxLength) + " and " +
			strconv.Itoa(maxMaxLength) + ", got " + strconv.Itoa(maxLen))
	}
	separator, maxLength = sep, maxLen
	return nil
}

func validSeparator(sep string) bool {
	if len(sep) == 0 || len(sep) > 8 {
		return false
	}
	for i := 0; i < len(sep); i++ {
		switch c := sep[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

func main() {}
