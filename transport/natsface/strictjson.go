package natsface

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/gwmcp/gw/internal/jsonscan"
)

// scanObject checks that data is one JSON object (surrounding whitespace allowed) whose keys are
// unique, matched exactly (case-sensitively), and, when allowed is non-nil, all in allowed; then it
// calls member for each member in order, with its key unescaped and its value as raw JSON (both
// aliasing data unless the key needed unescaping). Duplicates are refused so that no decoder
// downstream can see a different "name" than the one the face checked. It is on every request's
// path, so it walks the text instead of decoding it: no allocation for an object of plain keys.
func scanObject(data []byte, allowed []string, member func(key []byte, value json.RawMessage)) error {
	if i := jsonscan.SkipSpace(data, 0); i >= len(data) || data[i] != '{' {
		return errors.New("not a JSON object")
	}
	if !json.Valid(data) {
		var v json.RawMessage
		return fmt.Errorf("invalid JSON: %w", json.Unmarshal(data, &v))
	}
	// Valid JSON that starts with '{' is one object: the scanner reads it to its end.
	sc, _ := jsonscan.Object(data)
	var small [8][]byte // the keys seen, while they are few; a set beyond
	seen := small[:0]
	var many map[string]struct{}
	for {
		raw, plain, start, end, ok := sc.Next()
		if !ok {
			break
		}
		key := raw[1 : len(raw)-1]
		if !plain {
			s, _ := jsonscan.KeyText(raw, false) // valid: checked above
			key = []byte(s)
		}
		if allowed != nil && !slices.Contains(allowed, string(key)) {
			return fmt.Errorf("unknown key %q", key)
		}
		dup := false
		if many == nil {
			for _, k := range seen {
				dup = dup || bytes.Equal(k, key)
			}
			if !dup && len(seen) < len(small) {
				seen = append(seen, key)
			} else if !dup {
				many = make(map[string]struct{}, 2*len(small))
				for _, k := range seen {
					many[string(k)] = struct{}{}
				}
			}
		}
		if many != nil {
			_, dup = many[string(key)]
			many[string(key)] = struct{}{}
		}
		if dup {
			return fmt.Errorf("duplicate key %q", key)
		}
		if member != nil {
			member(key, data[start:end])
		}
	}
	return nil
}

// decodeObject decodes the top level of a JSON object into its members, as scanObject checks them.
func decodeObject(data []byte, allowed []string) (map[string]json.RawMessage, error) {
	fields := make(map[string]json.RawMessage)
	err := scanObject(data, allowed, func(key []byte, value json.RawMessage) { fields[string(key)] = value })
	if err != nil {
		return nil, err
	}
	return fields, nil
}

// isNull reports whether raw is the JSON literal null.
func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }
