package config

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/knadh/koanf/maps"
	"github.com/knadh/koanf/providers/env/v2"
)

// The schema is the Config type itself: struct fields by their koanf tags,
// maps with free keys (server names, env keys), and leaf values.
var (
	configType   = reflect.TypeFor[Config]()
	durationType = reflect.TypeFor[time.Duration]()
)

// tagName is the koanf key of a struct field; "" or "-" for none.
func tagName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
	return name
}

// field finds the field of struct type t whose key is name, ignoring case
// if fold is set.
func field(t reflect.Type, name string, fold bool) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := tagName(f)
		if tag == "" || tag == "-" {
			continue
		}
		if tag == name || fold && strings.EqualFold(tag, name) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// checker walks a merged configuration map against the schema and records
// every unknown key and wrong type with its full path.
type checker struct {
	serversLabel string // "servers", or "mcpServers" when the file used it
	errs         []error
}

// check checks v, found at path, against type t. nilOK says whether a null
// value is allowed here: it is for struct fields (meaning "not set") and
// server entries (an empty server), not for list items or env values.
func (c *checker) check(path string, v any, t reflect.Type, nilOK bool) {
	if v == nil {
		if !nilOK {
			c.wrongType(path, expected(t), v)
		}
		return
	}
	if t == durationType {
		switch x := v.(type) {
		case string:
			if _, err := time.ParseDuration(x); err != nil {
				c.errs = append(c.errs, newError(ErrInvalid, path,
					"key %q: invalid duration %s (want a number with a unit, such as \"30s\" or \"500ms\")", c.label(path), quoteShort(x)))
			}
		case time.Duration:
		default:
			c.wrongType(path, expected(t), v)
		}
		return
	}
	switch t.Kind() {
	case reflect.Interface:
		// Free-form JSON, such as a policy's own configuration.
	case reflect.String:
		if _, ok := v.(string); !ok {
			c.wrongType(path, expected(t), v)
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			c.wrongType(path, expected(t), v)
		}
	case reflect.Int:
		if _, ok := toInt(v); !ok {
			c.wrongType(path, expected(t), v)
		}
	case reflect.Float64:
		switch v.(type) {
		case float64, float32:
		default:
			if _, ok := toInt(v); !ok {
				c.wrongType(path, expected(t), v)
			}
		}
	case reflect.Slice:
		switch x := v.(type) {
		case []any:
			for i, e := range x {
				c.check(fmt.Sprintf("%s[%d]", path, i), e, t.Elem(), false)
			}
		case []string:
			if t.Elem().Kind() != reflect.String {
				c.wrongType(path, expected(t), v)
			}
		default:
			c.wrongType(path, expected(t), v)
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			c.wrongType(path, expected(t), v)
			return
		}
		for _, k := range sortedKeys(m) {
			c.check(joinKey(path, k), m[k], t.Elem(), t.Elem().Kind() == reflect.Struct)
		}
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			c.wrongType(path, expected(t), v)
			return
		}
		for _, k := range sortedKeys(m) {
			f, ok := field(t, k, false)
			if !ok {
				key := joinKey(path, k)
				c.errs = append(c.errs, newError(ErrUnknownKey, key, "unknown key %q", c.label(key)))
				continue
			}
			c.check(joinKey(path, k), m[k], f.Type, true)
		}
	default:
		panic("config: schema has unsupported kind " + t.Kind().String())
	}
}

func (c *checker) wrongType(path, want string, v any) {
	c.errs = append(c.errs, newError(ErrWrongType, path, "key %q: expected %s, got %s", c.label(path), want, describe(v)))
}

// label is path as the user wrote it: "mcpServers.x" for a Claude or Cursor
// file.
func (c *checker) label(path string) string {
	if c.serversLabel != "" && c.serversLabel != "servers" {
		if path == "servers" || strings.HasPrefix(path, "servers.") {
			return c.serversLabel + strings.TrimPrefix(path, "servers")
		}
	}
	return path
}

// expected names what a value of type t looks like.
func expected(t reflect.Type) string {
	if t == durationType {
		return `a duration string such as "30s"`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int:
		return "an integer"
	case reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list of strings"
	default:
		return "a map"
	}
}

// describe names the type and, for scalars, the value of v.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "string " + quoteShort(x)
	case bool:
		return fmt.Sprintf("boolean %t", x)
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return fmt.Sprintf("number %v", x)
	case time.Duration:
		return "duration " + x.String()
	case []any, []string:
		return "a list"
	case map[string]any:
		return "a map"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// quoteShort quotes s, shortened so that one message stays one short line.
func quoteShort(s string) string {
	const limit = 60
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "…"
	}
	return strconv.Quote(s)
}

// toInt converts any integer, or a float with an integral value (JSON
// numbers), to an int if it fits.
func toInt(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int8:
		return int(x), true
	case int16:
		return int(x), true
	case int32:
		return int(x), true
	case int64:
		if x < math.MinInt || x > math.MaxInt {
			return 0, false
		}
		return int(x), true
	case uint:
		return uintToInt(uint64(x))
	case uint8:
		return int(x), true
	case uint16:
		return int(x), true
	case uint32:
		return uintToInt(uint64(x))
	case uint64:
		return uintToInt(x)
	case float32:
		return floatToInt(float64(x))
	case float64:
		return floatToInt(x)
	}
	return 0, false
}

func uintToInt(x uint64) (int, bool) {
	if x > math.MaxInt {
		return 0, false
	}
	return int(x), true
}

func floatToInt(x float64) (int, bool) {
	// -float64(math.MinInt) is 2^63 (or 2^31), exactly; MaxInt as a
	// float would round up to it.
	if x != math.Trunc(x) || x < float64(math.MinInt) || x >= -float64(math.MinInt) {
		return 0, false
	}
	return int(x), true
}

// integralFloatHook lets mapstructure decode an integral float (a JSON
// number) into an int and rejects any other float, which mapstructure would
// otherwise truncate.
func integralFloatHook(from, to reflect.Type, data any) (any, error) {
	if to.Kind() != reflect.Int || (from.Kind() != reflect.Float64 && from.Kind() != reflect.Float32) {
		return data, nil
	}
	if i, ok := toInt(data); ok {
		return i, nil
	}
	return nil, fmt.Errorf("expected an integer, got %s", describe(data))
}

// durationOnlyFromStringHook rejects numbers for durations: without it,
// mapstructure would read "call_timeout: 30" as 30 nanoseconds.
func durationOnlyFromStringHook(from, to reflect.Type, data any) (any, error) {
	if to != durationType || from == durationType || from.Kind() == reflect.String {
		return data, nil
	}
	return nil, fmt.Errorf("expected %s, got %s", expected(durationType), describe(data))
}

// resolve maps the segments of a key from the environment or an override
// onto the schema and returns the key's path and type. Struct fields match
// ignoring case if fold is set. Map keys are taken as they are; for a map of
// strings (env), all remaining segments, joined by joiner, form one key.
func resolve(segs []string, fold bool, joiner string) ([]string, reflect.Type, error) {
	t := configType
	path := make([]string, 0, len(segs))
	for i := 0; i < len(segs); i++ {
		seg := segs[i]
		switch t.Kind() {
		case reflect.Struct:
			f, ok := field(t, seg, fold)
			if !ok {
				if fold {
					seg = strings.ToLower(seg)
				}
				return nil, nil, unknownPath(append(path, seg))
			}
			path = append(path, tagName(f))
			t = f.Type
		case reflect.Map:
			if t.Elem().Kind() == reflect.String {
				return append(path, strings.Join(segs[i:], joiner)), t.Elem(), nil
			}
			path = append(path, seg)
			t = t.Elem()
		default:
			rest := segs[i:]
			if fold {
				rest = slices.Clone(rest)
				for j := range rest {
					rest[j] = strings.ToLower(rest[j])
				}
			}
			return nil, nil, unknownPath(append(path, rest...))
		}
	}
	return path, t, nil
}

func unknownPath(path []string) error {
	key := strings.Join(path, ".")
	return newError(ErrUnknownKey, key, "unknown key %q", key)
}

// fromString converts a value given as a string (an environment variable,
// or a string override) to what the schema wants at type t. Durations stay
// strings: the checker validates them and the decoder parses them.
func fromString(t reflect.Type, s string) (any, error) {
	if t == durationType {
		return s, nil
	}
	switch t.Kind() {
	case reflect.String:
		return s, nil
	case reflect.Int:
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 0)
		if err != nil {
			return nil, fmt.Errorf("%s is not an integer", quoteShort(s))
		}
		return int(i), nil
	case reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, fmt.Errorf("%s is not a number", quoteShort(s))
		}
		return f, nil
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%s is not a boolean", quoteShort(s))
		}
		return b, nil
	case reflect.Slice:
		var v []any
		if err := json.Unmarshal([]byte(s), &v); err != nil || v == nil {
			return nil, fmt.Errorf(`%s is not a JSON list such as ["a","b"]`, quoteShort(s))
		}
		return v, nil
	default:
		var v map[string]any
		if err := json.Unmarshal([]byte(s), &v); err != nil || v == nil {
			return nil, fmt.Errorf(`%s is not a JSON object such as {"KEY":"value"}`, quoteShort(s))
		}
		return v, nil
	}
}

// envPrefix starts every environment variable that gw reads.
const envPrefix = "GW_"

// envLayer reads the GW_ variables from environ into a nested map.
func envLayer(environ []string) (layer, []error) {
	var errs []error
	// Paths are joined with NUL, which no variable name contains, and
	// split again by the provider; so keys keep any dots and underscores.
	const delim = "\x00"
	p := env.Provider(delim, env.Opt{
		Prefix:      envPrefix,
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, value string) (string, any) {
			segs := strings.Split(strings.TrimPrefix(name, envPrefix), "__")
			if !envIsGWs(segs[0]) {
				return "", nil
			}
			path, t, err := resolve(segs, true, "__")
			if err != nil {
				errs = append(errs, fromEnv(err, name))
				return "", nil
			}
			v, err := fromString(t, value)
			if err != nil {
				key := strings.Join(path, ".")
				errs = append(errs, newError(ErrWrongType, key, "environment variable %s (key %q): %v", name, key, err))
				return "", nil
			}
			return strings.Join(path, delim), v
		},
	})
	m, err := p.Read()
	if err != nil {
		errs = append(errs, fmt.Errorf("config: environment: %w", err))
	}
	prune(m, 1)
	return m, errs
}

// fromEnv notes in an unknown-key error which variable it came from.
func fromEnv(err error, name string) error {
	if e, ok := err.(*Error); ok {
		e.msg += " (from environment variable " + name + ")"
	}
	return err
}

// overrideLayer turns dotted override keys into a nested map. Keys are
// applied shortest first, so "gateway.names.separator" refines a
// "gateway.names" map rather than being replaced by it.
func overrideLayer(overrides map[string]any) (map[string]any, []error) {
	var errs []error
	keys := sortedKeys(overrides)
	slices.SortStableFunc(keys, func(a, b string) int {
		return strings.Count(a, ".") - strings.Count(b, ".")
	})
	out := map[string]any{}
	for _, key := range keys {
		path, t, err := resolve(strings.Split(key, "."), false, ".")
		if err != nil {
			if e, ok := err.(*Error); ok {
				e.msg += " (from override " + strconv.Quote(key) + ")"
			}
			errs = append(errs, err)
			continue
		}
		v := overrides[key]
		switch x := v.(type) {
		case string:
			if t.Kind() != reflect.String {
				conv, err := fromString(t, x)
				if err != nil {
					k := strings.Join(path, ".")
					errs = append(errs, newError(ErrWrongType, k, "override %q: %v", key, err))
					continue
				}
				v = conv
			}
		case map[string]any, []any:
			v = clone(x) // the caller's values must not change when layers merge
		case map[string]string:
			m := make(map[string]any, len(x))
			for k, e := range x {
				m[k] = e
			}
			v = m
		}
		setPath(out, path, v)
	}
	prune(out, 1)
	return out, errs
}

// clone deep-copies the maps and lists in v.
func clone(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = clone(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = clone(e)
		}
		return l
	}
	return v
}

// setPath stores v at path in m, creating maps on the way.
func setPath(m map[string]any, path []string, v any) {
	for _, p := range path[:len(path)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	last := path[len(path)-1]
	if old, ok := m[last].(map[string]any); ok {
		if nv, ok := v.(map[string]any); ok {
			maps.Merge(nv, old)
			return
		}
	}
	m[last] = v
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// envIsGWs reports whether a GW_ variable whose first part is first is meant
// for gw. GW_ is a short prefix that other tools use too (GW_TOKEN,
// GW_HOME): a variable that names none of gw's sections, nor a near miss
// of one (GW_GATWAY__…, GW_LOG_LEVEL for GW_LOG__LEVEL), is left alone.
func envIsGWs(first string) bool {
	first = strings.ToLower(first)
	if slices.Contains(gwSections, first) || nearSection(first) != "" {
		return true
	}
	for _, s := range gwSections {
		if strings.HasPrefix(first, s+"_") {
			return true
		}
	}
	return false
}
