package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	ktoml "github.com/knadh/koanf/parsers/toml/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/knadh/koanf/maps"
	kjson "github.com/knadh/koanf/parsers/json"
	kyaml "github.com/knadh/koanf/parsers/yaml"
)

// parseFile parses the file's bytes into a map, reporting syntax errors with
// the file name and position. It also returns the server names in the
// order the file lists them, which the map forgets.
func parseFile(f *fileSource) (map[string]any, []string, error) {
	data := bytes.TrimPrefix(f.data, []byte("\xef\xbb\xbf")) // a UTF-8 BOM, as Windows editors write
	prefix := ""
	if f.name != "" {
		prefix = f.name + ": "
	}
	var (
		raw map[string]any
		err error
	)
	switch f.format {
	case "json":
		data = stripJSONC(data)
		raw, err = kjson.Parser().Unmarshal(data)
		if err != nil {
			return nil, nil, jsonError(prefix, data, err)
		}
	case "toml":
		raw, err = ktoml.Parser().Unmarshal(data)
		if err != nil {
			// go-toml's messages carry the position: "toml: line 3 (last key …)".
			return nil, nil, &Error{Kind: ErrSyntax, msg: oneLine(prefix + err.Error()), err: err}
		}
	default:
		raw, err = kyaml.Parser().Unmarshal(data)
		if err != nil {
			// yaml.v3's messages carry the position: "yaml: line 3: …".
			return nil, nil, &Error{Kind: ErrSyntax, msg: oneLine(prefix + err.Error()), err: err}
		}
	}
	if raw == nil { // an empty file, or "null"
		raw = map[string]any{}
	}
	maps.IntfaceKeysToStrings(raw) // YAML maps with non-string keys
	prune(raw, 1)
	return raw, fileServerOrder(f.format, data), nil
}

// pruneDepth is the depth below which prune empties maps and lists. The
// deepest valid value is a string at depth 4 (servers.NAME.env.KEY), and
// the checker reports a container found where a string belongs without
// looking inside, so emptying deeper containers changes no message. It keeps
// hostile input from costing koanf, which flattens every path, quadratic
// time.
const pruneDepth = 8

// prune empties, in place, the maps and lists in m that lie deeper than
// pruneDepth; m itself is at depth.
func prune(m map[string]any, depth int) {
	for k, v := range m {
		m[k] = pruneValue(v, depth+1)
	}
}

func pruneValue(v any, depth int) any {
	switch x := v.(type) {
	case map[string]any:
		if depth > pruneDepth {
			return map[string]any{}
		}
		prune(x, depth)
	case []any:
		if depth > pruneDepth {
			return []any{}
		}
		for i, e := range x {
			x[i] = pruneValue(e, depth+1)
		}
	}
	return v
}

// jsonError reports a JSON error as file:line:column.
func jsonError(prefix string, data []byte, err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		msg = err.Error()
		off int64
	)
	switch {
	case errors.As(err, &syn):
		off = syn.Offset
	case errors.As(err, &typ):
		off = typ.Offset
		msg = "the top level must be an object, not " + typ.Value
	default:
		return &Error{Kind: ErrSyntax, msg: oneLine(prefix + msg), err: err}
	}
	line, col := position(data, off)
	if prefix == "" {
		prefix = "json: "
	} else {
		prefix = strings.TrimSuffix(prefix, ": ") + ":"
	}
	return &Error{Kind: ErrSyntax, msg: oneLine(fmt.Sprintf("%s%d:%d: %s", prefix, line, col, msg)), err: err}
}

// position returns the 1-based line and column of the last byte that
// encoding/json read before it stopped, given how many it read.
func position(data []byte, off int64) (line, col int) {
	off = min(max(off-1, 0), int64(len(data)))
	before := data[:off]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// stripJSONC blanks out // and /* */ comments and trailing commas, which
// VS Code allows in its JSON files, leaving every other byte where it was so
// that error positions stay right. Unterminated comments are left alone for
// the JSON parser to report.
func stripJSONC(in []byte) []byte {
	if !bytes.ContainsAny(in, "/,") {
		return in
	}
	out := bytes.Clone(in)
	inString := false
	lastComma := -1 // a comma that is trailing if a } or ] comes next
	var prev byte   // last significant byte outside strings and comments
	for i := 0; i < len(out); i++ {
		c := out[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
				prev = '"'
			}
			continue
		}
		switch {
		case c == '"':
			inString = true
			lastComma = -1
		case c == '/' && i+1 < len(out) && out[i+1] == '/':
			for ; i < len(out) && out[i] != '\n' && out[i] != '\r'; i++ {
				out[i] = ' '
			}
		case c == '/' && i+1 < len(out) && out[i+1] == '*':
			end := bytes.Index(out[i+2:], []byte("*/"))
			if end < 0 {
				return out
			}
			stop := i + 2 + end + 2
			for ; i < stop; i++ {
				if out[i] != '\n' && out[i] != '\r' {
					out[i] = ' '
				}
			}
			i--
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		case c == ',':
			if prev != ',' && prev != '{' && prev != '[' && prev != ':' && prev != 0 {
				lastComma = i
			} else {
				lastComma = -1
			}
			prev = c
		case c == '}' || c == ']':
			if lastComma >= 0 {
				out[lastComma] = ' '
			}
			lastComma = -1
			prev = c
		default:
			lastComma = -1
			prev = c
		}
	}
	return out
}

// gwSections are the top-level keys of gw's own configuration.
var gwSections = []string{"servers", "gateway", "policies", "nats", "http", "health", "metrics", "audit", "log", "tracing", "views", "pins"}

// nearSection returns the section of gw's that key most likely misspells,
// or "". Case is ignored; a key is near a section within one edit for the
// short names log, nats and views, within two for the others, or when it starts
// with the first five letters of a long one ("policy", "gateways").
func nearSection(key string) string {
	k := strings.ToLower(key)
	for _, s := range gwSections {
		limit := 2
		if len(s) <= 5 {
			limit = 1
		}
		if editDistance(k, s) <= limit || len(s) > 5 && strings.HasPrefix(k, s[:5]) {
			return s
		}
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return max(len(a), len(b)) // long keys are nothing like gw's
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// remoteTypes are transport types of servers that gw cannot run yet.
var remoteTypes = map[string]bool{
	"http":            true,
	"sse":             true,
	"streamable-http": true,
	"streamableHttp":  true,
	"streamable_http": true,
	"ws":              true,
	"websocket":       true,
}

// normalizer rewrites a parsed file from any accepted shape into gw's own,
// in place, before the layers merge.
type normalizer struct {
	dir        string // base for relative paths; "" leaves them relative
	mcpServers bool   // the file used "mcpServers"
	warnings   []string
	errs       []error
}

// file normalizes the top level, then each server. A returned error is fatal;
// other problems are collected in n.errs.
func (n *normalizer) file(raw map[string]any) error {
	servers, hasServers := raw["servers"]
	if mcp, ok := raw["mcpServers"]; ok {
		if hasServers {
			return newError(ErrInvalid, "", `both "servers" and "mcpServers" are set; use one`)
		}
		n.mcpServers = true
		servers = mcp
		raw["servers"] = mcp
		delete(raw, "mcpServers")
		// gw's own sections may sit beside mcpServers and are decoded as
		// strictly as in gw's own files: a policy written here is applied
		// or the file is refused, never dropped. Claude Desktop and Cursor
		// keep settings of their own at the top level too; those are
		// ignored with a warning, unless the key looks like a misspelt
		// section of gw's, which is an error (a dropped "polices" would run
		// without the policy the user wrote).
		for _, k := range sortedKeys(raw) {
			if slices.Contains(gwSections, k) || k == "inputs" {
				continue
			}
			if near := nearSection(k); near != "" {
				n.errs = append(n.errs, newError(ErrUnknownKey, k,
					"unknown key %q (did you mean %q?)", k, near))
			} else {
				n.warnf("top-level key %q is not used by gw; ignored", k)
			}
			delete(raw, k)
		}
	}
	if _, ok := raw["inputs"]; ok {
		n.warnf(`"inputs" (VS Code prompts) are not supported; ignored`)
		delete(raw, "inputs")
	}
	n.policyPaths(raw)
	n.natsPaths(raw)
	n.pinsPaths(raw)
	m, ok := servers.(map[string]any)
	if !ok {
		return nil // the checker reports the wrong type
	}
	for _, name := range sortedKeys(m) {
		if entry, ok := m[name].(map[string]any); ok {
			n.server(m, name, entry)
		}
	}
	return nil
}

// server normalizes one entry: it drops remote servers, "type": "stdio" and
// VS Code's "dev", merges the envFile, and resolves cwd.
func (n *normalizer) server(servers map[string]any, name string, entry map[string]any) {
	_, hasURL := entry["url"]
	typ, hasType := entry["type"]
	typeName, typeIsString := typ.(string)
	if hasURL || typeIsString && remoteTypes[typeName] {
		n.warnf("server %q: remote servers (url) are not supported yet; skipped", name)
		delete(servers, name)
		return
	}
	if hasType {
		switch {
		case !typeIsString:
			n.errs = append(n.errs, newError(ErrWrongType, "servers."+name+".type",
				"server %q: type: expected a string, got %s", name, describe(typ)))
		case typeName != "stdio":
			n.errs = append(n.errs, newError(ErrInvalid, "servers."+name+".type",
				"server %q: type %s is not supported (want \"stdio\")", name, quoteShort(typeName)))
		}
		delete(entry, "type")
	}
	if _, ok := entry["dev"]; ok {
		n.warnf(`server %q: "dev" (VS Code watch and debug settings) is ignored`, name)
		delete(entry, "dev")
	}
	if ef, ok := entry["envFile"]; ok {
		delete(entry, "envFile")
		n.envFile(name, entry, ef)
	}
	if cwd, ok := entry["cwd"].(string); ok && cwd != "" {
		entry["cwd"] = n.path(cwd)
	}
	if hasInputPlaceholder(entry) {
		n.warnf("server %q: ${input:...} placeholders are not resolved; passed as-is", name)
	}
}

// envFile adds the variables from a server's envFile to its env; variables
// already in env win.
func (n *normalizer) envFile(name string, entry map[string]any, ef any) {
	key := "servers." + name + ".envFile"
	p, ok := ef.(string)
	if !ok {
		n.errs = append(n.errs, newError(ErrWrongType, key,
			"server %q: envFile: expected a string, got %s", name, describe(ef)))
		return
	}
	if p == "" {
		return
	}
	vars, err := readEnvFile(n.path(p))
	if err != nil {
		n.errs = append(n.errs, &Error{Kind: ErrInvalid, Key: key,
			msg: oneLine(fmt.Sprintf("server %q: envFile: %v", name, err)), err: err})
		return
	}
	env, ok := entry["env"].(map[string]any)
	if !ok {
		if entry["env"] != nil {
			return // the checker reports the wrong type
		}
		env = make(map[string]any, len(vars))
		entry["env"] = env
	}
	for k, v := range vars {
		if _, set := env[k]; !set {
			env[k] = v
		}
	}
}

// path resolves p against the config file's directory.
func (n *normalizer) path(p string) string {
	if n.dir == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(n.dir, p)
}

func (n *normalizer) warnf(format string, args ...any) {
	n.warnings = append(n.warnings, oneLine(fmt.Sprintf(format, args...)))
}

// hasInputPlaceholder reports whether any string in a server entry holds a
// VS Code ${input:...} placeholder.
func hasInputPlaceholder(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.Contains(x, "${input:")
	case []any:
		for _, e := range x {
			if hasInputPlaceholder(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range x {
			if hasInputPlaceholder(e) {
				return true
			}
		}
	}
	return false
}

// readEnvFile reads KEY=VALUE lines. Blank lines and lines starting with #
// are skipped, an "export " prefix is allowed, a value in single or double
// quotes is taken literally up to the closing quote, and in an unquoted
// value " #" starts a comment.
func readEnvFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	vars := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("%s:%d: expected KEY=VALUE", path, i+1)
		}
		v = strings.TrimSpace(v)
		if len(v) > 0 && (v[0] == '"' || v[0] == '\'') {
			j := strings.IndexByte(v[1:], v[0])
			if j < 0 {
				return nil, fmt.Errorf("%s:%d: unterminated quote", path, i+1)
			}
			v = v[1 : 1+j] // anything after the closing quote is a comment
		} else if j := strings.Index(v, " #"); j >= 0 {
			v = strings.TrimSpace(v[:j])
		}
		vars[k] = v
	}
	return vars, nil
}

// policyPaths resolves policy modules given as paths (anything with a '/'
// or ending in .wasm; embedded names have neither) against the file's
// directory.
func (n *normalizer) policyPaths(raw map[string]any) {
	pols, ok := raw["policies"].(map[string]any)
	if !ok {
		return
	}
	for _, kind := range []string{"collision", "authorize"} {
		p, ok := pols[kind].(map[string]any)
		if !ok {
			continue
		}
		if mod, ok := p["module"].(string); ok && isModulePath(mod) {
			p["module"] = n.path(mod)
		}
	}
	if dir, ok := pols["cache_dir"].(string); ok && dir != "" {
		pols["cache_dir"] = n.path(dir)
	}
}

// natsPaths resolves the NATS section's files against the file's directory.
func (n *normalizer) natsPaths(raw map[string]any) {
	nc, ok := raw["nats"].(map[string]any)
	if !ok {
		return
	}
	resolve := func(m map[string]any, keys ...string) {
		for _, k := range keys {
			if p, ok := m[k].(string); ok && p != "" {
				m[k] = n.path(p)
			}
		}
	}
	resolve(nc, "creds_file", "nkey_file")
	if tls, ok := nc["tls"].(map[string]any); ok {
		resolve(tls, "ca_file", "cert_file", "key_file")
	}
	if emb, ok := nc["embedded"].(map[string]any); ok {
		resolve(emb, "store_dir")
	}
}

// pinsPaths resolves the pin file against the file's directory. A path
// starting with ~ is left for validation to refuse as written.
func (n *normalizer) pinsPaths(raw map[string]any) {
	if p, ok := raw["pins"].(map[string]any); ok {
		if f, ok := p["file"].(string); ok && f != "" && f != PinsFileNone && !strings.HasPrefix(f, "~") {
			p["file"] = n.path(f)
		}
	}
}

// isModulePath tells a .wasm path from an embedded policy's name.
func isModulePath(s string) bool {
	return strings.ContainsRune(s, '/') || strings.HasSuffix(s, ".wasm")
}
