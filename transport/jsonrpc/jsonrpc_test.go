package jsonrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestDecodeKinds(t *testing.T) {
	tests := []struct {
		in     string
		kind   Kind
		id     string
		method string
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, KindRequest, "1", "tools/list"},
		{`{"jsonrpc":"2.0","id":"a-1","method":"ping","params":{}}`, KindRequest, `"a-1"`, "ping"},
		{`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}`, KindNotification, "", "notifications/progress"},
		{`{"jsonrpc":"2.0","id":7,"result":{"x":1}}`, KindResponse, "7", ""},
		{`{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"nope"}}`, KindResponse, "7", ""},
		{`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse"}}`, KindResponse, "", ""},
	}
	for _, tt := range tests {
		m, err := Decode([]byte(tt.in))
		if err != nil {
			t.Fatalf("Decode(%s): %v", tt.in, err)
		}
		if m.Kind() != tt.kind || m.ID.String() != tt.id || m.Method != tt.method {
			t.Errorf("Decode(%s) = kind %v id %q method %q; want %v %q %q", tt.in, m.Kind(), m.ID.String(), m.Method, tt.kind, tt.id, tt.method)
		}
	}
}

func TestDecodeKeepsResultBytes(t *testing.T) {
	result := `{ "content" : [ {"type":"text","text":"a\u00e9"} ], "z":1 ,"a":2}`
	m, err := Decode([]byte(`{"jsonrpc":"2.0","id":3,"result":` + result + `}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Result) != result {
		t.Fatalf("result changed:\n got %s\nwant %s", m.Result, result)
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		in, want string
		id       string // id still readable from the broken message
	}{
		{`not json`, "invalid JSON", ""},
		{`[1,2]`, "not a JSON object", ""},
		{`null`, "not a JSON object", ""},
		{`{"id":1,"method":"x"}`, `"jsonrpc" must be "2.0"`, "1"},
		{`{"jsonrpc":"1.0","id":1,"method":"x"}`, `"jsonrpc" must be "2.0"`, "1"},
		{`{"jsonrpc":"2.0","id":1,"Method":"x"}`, "neither method nor result", "1"}, // case-sensitive
		{`{"jsonrpc":"2.0","id":1.5,"method":"x"}`, "not a string or an integer", ""},
		{`{"jsonrpc":"2.0","id":{},"method":"x"}`, "not a string or an integer", ""},
		{`{"jsonrpc":"2.0","id":1,"method":""}`, "non-empty string", "1"},
		{`{"jsonrpc":"2.0","id":1,"method":"x","params":3}`, "object or an array", "1"},
		{`{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":""}}`, "both result and error", "1"},
		{`{"jsonrpc":"2.0","result":{}}`, "must have an id", ""},
		{`{"jsonrpc":"2.0","id":2,"error":{"code":"x","message":"m"}}`, "not an integer", "2"},
		{`{"jsonrpc":"2.0","id":2,"error":{"message":"m"}}`, `no "code"`, "2"},
		{`{"jsonrpc":"2.0","id":2,"method":"x","result":{}}`, "must not carry result", "2"},
	}
	for _, tt := range tests {
		_, err := Decode([]byte(tt.in))
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("Decode(%s) = %v; want a DecodeError", tt.in, err)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Decode(%s) = %q; want it to mention %q", tt.in, err, tt.want)
		}
		if de.ID.String() != tt.id {
			t.Errorf("Decode(%s) id = %q; want %q", tt.in, de.ID.String(), tt.id)
		}
	}
}

func TestEncodeHasNoNewlines(t *testing.T) {
	params := json.RawMessage("{\n  \"a\": \"<b>\"\n}")
	line, err := EncodeRequest(Int64ID(5), "tools/call", params)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.IndexByte(line, '\n') >= 0 {
		t.Fatalf("encoded line has a newline: %q", line)
	}
	if !bytes.Contains(line, []byte(`"<b>"`)) {
		t.Errorf("HTML was escaped: %s", line)
	}
	m, err := Decode(line)
	if err != nil || m.Kind() != KindRequest || m.ID.String() != "5" {
		t.Fatalf("round trip: %v %+v", err, m)
	}
}

func TestStringIDRoundTrip(t *testing.T) {
	id := StringID(`we"ird`)
	line, err := EncodeResult(id, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(line)
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != id {
		t.Fatalf("id %s became %s", id, m.ID)
	}
	if string(m.Result) != "{}" {
		t.Errorf("nil result encoded as %s; want {}", m.Result)
	}
}

func TestErrorIsByCode(t *testing.T) {
	err := error(&Error{Code: CodeMethodNotFound, Message: "x"})
	if !errors.Is(err, &Error{Code: CodeMethodNotFound}) {
		t.Error("same code should match")
	}
	if errors.Is(err, &Error{Code: CodeInvalidParams}) {
		t.Error("different code should not match")
	}
	if got := AsError(errors.New("boom")); got.Code != CodeInternalError || got.Message != "boom" {
		t.Errorf("AsError(plain) = %+v", got)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"x","params":{}}`,
		`{"jsonrpc":"2.0","id":"s","result":{"a":[1,2]}}`,
		`{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"m","data":null}}`,
		`{"jsonrpc":"2.0","method":"n"}`,
		`{}`, `[]`, `"x"`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to something that decodes the same.
		var line []byte
		switch m.Kind() {
		case KindRequest:
			line, err = EncodeRequest(m.ID, m.Method, rawOrNil(m.Params))
		case KindNotification:
			line, err = EncodeNotification(m.Method, rawOrNil(m.Params))
		case KindResponse:
			if m.Error != nil {
				line, err = EncodeError(m.ID, m.Error)
			} else {
				line, err = EncodeResult(m.ID, m.Result)
			}
		}
		if err != nil {
			t.Fatalf("re-encode %q: %v", data, err)
		}
		m2, err := Decode(line)
		if err != nil {
			t.Fatalf("re-decode %q: %v", line, err)
		}
		if m2.Kind() != m.Kind() || m2.ID != m.ID || m2.Method != m.Method {
			t.Fatalf("round trip changed %q into %q", data, line)
		}
	})
}

func rawOrNil(r json.RawMessage) any {
	if r == nil {
		return nil
	}
	return r
}

func TestCheckDepth(t *testing.T) {
	nest := func(n int, open, close string) string {
		return strings.Repeat(open, n) + strings.Repeat(close, n)
	}
	for _, tc := range []struct {
		name string
		b    string
		max  int
		deep bool
		id   string
	}{
		{"flat", `{"a":1}`, 1, false, ""},
		{"at the limit", nest(5, "[", "]"), 5, false, ""},
		{"one past", nest(6, "[", "]"), 5, true, ""},
		{"objects count too", `{"a":{"b":{"c":{}}}}`, 3, true, ""},
		{"brackets in strings do not count", `{"a":"[[[[{{{{\"[[["}`, 1, false, ""},
		{"escaped backslash ends the string", `{"a":"\\","b":[[]]}`, 2, true, ""},
		{"request keeps its id", `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"arguments":` + nest(200, "[", "]") + `}}`, 128, true, "7"},
		{"past encoding/json's limit has no id", `{"jsonrpc":"2.0","id":7,"method":"m","params":` + nest(10001, "[", "]") + `}`, 128, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := CheckDepth([]byte(tc.b), tc.max)
			if (err != nil) != tc.deep {
				t.Fatalf("CheckDepth = %v, want too deep %v", err, tc.deep)
			}
			if err != nil && err.Code != CodeInvalidRequest {
				t.Fatalf("code %d, want -32600", err.Code)
			}
			if id.String() != tc.id {
				t.Fatalf("id %q, want %q", id, tc.id)
			}
		})
	}
}

// decodeReference is Decode as it was, over a map decode: FuzzDecodeReference
// holds the scanner-based Decode to it.
func decodeReference(data []byte) (*Message, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, &DecodeError{Reason: "invalid JSON: " + err.Error()}
	}
	if fields == nil {
		return nil, &DecodeError{Reason: "message is not a JSON object"}
	}
	var m Message
	if raw, ok := fields["id"]; ok && !isNull(raw) {
		if err := m.ID.UnmarshalJSON(raw); err != nil {
			return nil, &DecodeError{Reason: err.Error()}
		}
	}
	fail := func(format string, args ...any) (*Message, error) {
		return nil, &DecodeError{ID: m.ID, Reason: fmt.Sprintf(format, args...)}
	}
	var version string
	if raw, ok := fields["jsonrpc"]; !ok || json.Unmarshal(raw, &version) != nil || version != Version {
		return fail(`"jsonrpc" must be "2.0"`)
	}
	if raw, ok := fields["method"]; ok {
		if err := json.Unmarshal(raw, &m.Method); err != nil || m.Method == "" {
			return fail(`"method" must be a non-empty string`)
		}
	}
	if raw, ok := fields["params"]; ok && !isNull(raw) {
		if c := firstByte(raw); c != '{' && c != '[' {
			return fail(`"params" must be an object or an array`)
		}
		m.Params = raw
	}
	result, hasResult := fields["result"]
	errRaw, hasError := fields["error"]
	if m.Method != "" {
		if hasResult || hasError {
			return fail("a request must not carry result or error")
		}
		return &m, nil
	}
	switch {
	case hasResult && hasError:
		return fail("a response must not carry both result and error")
	case hasResult:
		if !m.ID.IsValid() {
			return fail("a result response must have an id")
		}
		m.Result = result
	case hasError:
		var e Error
		if err := e.UnmarshalJSON(errRaw); err != nil {
			return fail("bad error object: %v", err)
		}
		m.Error = &e
	default:
		return fail("message has neither method nor result nor error")
	}
	return &m, nil
}

// FuzzDecodeReference: Decode accepts what the map-based decoder accepted,
// and reads the same id, method, params, result and error.
func FuzzDecodeReference(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"x","params":{}}`,
		`{"jsonrpc":"2.0","id":"a<b","result":{"a":[1,2]}}`,
		`{"jsonrpc":"2.0","id":-0,"result":1}`,
		`{"jsonrpc":"2.0","id":"\u0041","result":1,"id":"x"}`,
		`{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"m","data":null}}`,
		`{"jsonrpc":"2.0","method":"n","\u006dethod":"m"}`,
		` { "jsonrpc" : "2.0" , "id" : 12345678901234567890 , "result" : null } `,
		`{}`, `[]`, `"x"`, ``, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Decode(data)
		want, werr := decodeReference(data)
		if (err == nil) != (werr == nil) {
			t.Fatalf("Decode(%q): %v; the map decoder: %v", data, err, werr)
		}
		if err != nil {
			var a, b *DecodeError
			if errors.As(err, &a) && errors.As(werr, &b) && a.ID != b.ID {
				t.Fatalf("Decode(%q) error id %q; the map decoder's %q", data, a.ID, b.ID)
			}
			return
		}
		if got.ID != want.ID || got.Method != want.Method || !bytes.Equal(got.Params, want.Params) ||
			!bytes.Equal(got.Result, want.Result) || (got.Error == nil) != (want.Error == nil) ||
			got.Error != nil && (got.Error.Code != want.Error.Code || got.Error.Message != want.Error.Message || !bytes.Equal(got.Error.Data, want.Error.Data)) {
			t.Fatalf("Decode(%q) = %+v; the map decoder: %+v", data, got, want)
		}
	})
}

// FuzzMember: Member and StringMember read of valid JSON what decoding it
// into a map reads (exact keys, the last of repeated ones).
func FuzzMember(f *testing.F) {
	for _, s := range [][2]string{
		{`{"name":"a","arguments":{"name":"b"}}`, "name"},
		{`{"Name":"a"}`, "name"},
		{`{"name":"a","name":"b"}`, "name"},
		{`{"n\u0061me":"\u00e9"}`, "name"},
		{`{"name":null}`, "name"},
		{`{"name":1}`, "name"},
		{`{"_meta":{"progressToken":1}}`, "_meta"},
		{`["name"]`, "name"}, {`null`, "name"}, {` { } `, ""},
		{"{\"\xff\":\"\xfe\"}", "\ufffd"},
	} {
		f.Add([]byte(s[0]), s[1])
	}
	f.Fuzz(func(t *testing.T, data []byte, key string) {
		if !json.Valid(data) {
			return
		}
		var m map[string]json.RawMessage
		_ = json.Unmarshal(data, &m)
		want, has := m[key]
		if got := Member(data, key); has != (got != nil) || has && !bytes.Equal(bytes.TrimSpace(got), want) {
			t.Fatalf("Member(%q, %q) = %q; the map decoder: %q (present %v)", data, key, got, want, has)
		}
		var ws string
		werr := json.Unmarshal(want, &ws)
		gs, ok := StringMember(data, key)
		if ok != (werr == nil) || ok && gs != ws {
			t.Fatalf("StringMember(%q, %q) = %q, %v; the map decoder: %q, %v", data, key, gs, ok, ws, werr)
		}
	})
}

func TestAppendRequest(t *testing.T) {
	for _, tt := range []struct {
		id     ID
		method string
		params string
		want   string
	}{
		{Int64ID(7), "tools/call", `{"name":"x"}`, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x"}}`},
		{StringID("a"), "ping", ``, `{"jsonrpc":"2.0","id":"a","method":"ping"}`},
		{Int64ID(1), "m", "{\n  \"a\": [1,\r\n 2]\n}", `{"jsonrpc":"2.0","id":1,"method":"m","params":{   "a": [1,   2] }}`},
		{Int64ID(2), "odd\"method", `[]`, `{"jsonrpc":"2.0","id":2,"method":"odd\"method","params":[]}`},
	} {
		got := AppendRequest([]byte("prefix:"), tt.id, tt.method, json.RawMessage(tt.params))
		if string(got) != "prefix:"+tt.want {
			t.Errorf("AppendRequest(%s, %q, %q) = %s, want %s", tt.id, tt.method, tt.params, got, tt.want)
		}
		m, err := Decode(got[len("prefix:"):])
		if err != nil || m.ID != tt.id || m.Method != tt.method {
			t.Errorf("%s does not decode back: %+v %v", got, m, err)
		}
	}
}
