package jsonrpc

import (
	"bytes"
	"encoding/json"
	"errors"
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
		{`[1,2]`, "invalid JSON", ""},
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
