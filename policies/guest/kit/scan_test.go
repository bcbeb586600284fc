package kit

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/gwmcp/gw/policies/guest/kit/internal/abi"
)

var jsonDocs = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `1.5e+3`, `-12.0E-1`, `true`, `false`, `null`,
	` {"a" : [1, 2, {"b": null}], "c": "d\"e\\f\u00e9\ud83d\ude00"} `,
	`{"arguments":{"q":"} ] \" {","n":[[[]]],"o":{}}}`,
	`"\ud800"`, `"\udc00\ud800x"`, `"\ud83d\ude00"`, "\"\xff\xfe\"", `"\/\b\f\n\r\t"`,
	// invalid
	``, ` `, `{`, `}`, `[`, `]`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `[,1]`, `{,}`,
	`{"a":1 "b":2}`, `[1 2]`, `01`, `1.`, `.5`, `1e`, `-`, `+1`, `tru`, `nul`, `falsey`,
	`"abc`, `"\x"`, `"\u12"`, `"\u12G4"`, "\"a\x01b\"", `{"a":1}}`, `[1]]`, `{1:2}`,
	`{"a":1}x`, `'a'`, `NaN`, `[1,2,]`, `{"a":[}`, `{"a":{]}`, `"\'"`,
}

func TestSkipMatchesEncodingJSON(t *testing.T) {
	for _, doc := range jsonDocs {
		var s Scanner
		s.Reset([]byte(doc))
		s.Skip()
		err := s.End()
		if want := json.Valid([]byte(doc)); (err == nil) != want {
			t.Errorf("Skip(%q): err=%v, json.Valid=%v", doc, err, want)
		}
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Errorf("Skip(%q): error %T is not a *SyntaxError", doc, err)
			}
		}
	}
}

func TestDepth(t *testing.T) {
	for _, depth := range []int{MaxDepth, MaxDepth + 1} {
		for _, open := range []string{"[", `{"a":`, "[!"} { // [! : the innermost container is empty
			close, inner := "]", "1"
			switch open {
			case `{"a":`:
				close = "}"
			case "[!":
				open, inner = "[", ""
			}
			doc := strings.Repeat(open, depth) + inner + strings.Repeat(close, depth)
			var s Scanner
			s.Reset([]byte(doc))
			s.Skip()
			err := s.End()
			if want := json.Valid([]byte(doc)); (err == nil) != want || want != (depth <= MaxDepth) {
				t.Errorf("depth %d %q: err=%v json.Valid=%v", depth, open, err, want)
			}
		}
	}
}

func TestString(t *testing.T) {
	for _, doc := range jsonDocs {
		if !json.Valid([]byte(doc)) || !strings.HasPrefix(strings.TrimSpace(doc), `"`) {
			continue
		}
		checkString(t, []byte(doc))
	}
}

func checkString(t *testing.T, doc []byte) {
	t.Helper()
	var want string
	if err := json.Unmarshal(doc, &want); err != nil {
		t.Fatalf("json.Unmarshal(%q): %v", doc, err)
	}
	var s Scanner
	s.Reset(doc)
	got := s.Str()
	if err := s.End(); err != nil || got != want {
		t.Errorf("Str(%q) = %q, %v; want %q", doc, got, err, want)
	}
	s.Reset(doc)
	app := s.AppendStr([]byte("x"))
	if err := s.End(); err != nil || string(app) != "x"+want {
		t.Errorf("AppendStr(%q) = %q, %v; want %q", doc, app, err, "x"+want)
	}
}

func TestObjectWalk(t *testing.T) {
	doc := []byte(`{"a":1, "b\u0063":"x", "skip":{"a":[1,{"z":"}"}]}, "arr":["p","q"], "n":null, "t":true}`)
	var s Scanner
	s.Reset(doc)
	var keys []string
	var arr []string
	obj := s.Object()
	for obj.Next() {
		keys = append(keys, string(obj.Key()))
		switch string(obj.Key()) {
		case "a":
			if v := s.Int(); v != 1 {
				t.Errorf("a = %d", v)
			}
		case "bc":
			if v := s.Str(); v != "x" {
				t.Errorf("bc = %q", v)
			}
		case "arr":
			a := s.Array()
			for a.Next() {
				arr = append(arr, s.Str())
			}
		case "n":
			if !s.Null() {
				t.Error("n is not null")
			}
		case "t":
			if !s.Bool() {
				t.Error("t is not true")
			}
		default:
			s.Skip()
		}
	}
	if err := s.End(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(keys, ","); got != "a,bc,skip,arr,n,t" {
		t.Errorf("keys = %s", got)
	}
	if got := strings.Join(arr, ","); got != "p,q" {
		t.Errorf("arr = %s", got)
	}
}

func TestWrongKinds(t *testing.T) {
	cases := []struct {
		doc  string
		read func(*Scanner)
		msg  string
	}{
		{`1`, func(s *Scanner) { s.Str() }, "expected string, found number"},
		{`"x"`, func(s *Scanner) { s.Int() }, "expected number, found string"},
		{`1.5`, func(s *Scanner) { s.Int() }, "expected an integer"},
		{`99999999999999999999`, func(s *Scanner) { s.Int() }, "integer out of range"},
		{`[]`, func(s *Scanner) { s.Object() }, "expected object, found array"},
		{``, func(s *Scanner) { s.Bool() }, "unexpected end of input, expected boolean"},
		{`[1,]`, func(s *Scanner) {
			a := s.Array()
			for a.Next() {
				s.Int()
			}
		}, "unexpected ']' after ','"},
	}
	for _, c := range cases {
		s := NewScanner([]byte(c.doc))
		c.read(s)
		err := s.End()
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%q: err = %v, want %q", c.doc, err, c.msg)
		}
	}
}

func TestStickyError(t *testing.T) {
	s := NewScanner([]byte(`{"a":x, "b":"y"}`))
	obj := s.Object()
	n := 0
	for obj.Next() {
		n++
		s.Skip()
	}
	if n != 1 || s.Err() == nil || s.Str() != "" || s.Peek() != Invalid {
		t.Fatalf("n=%d err=%v", n, s.Err())
	}
}

func TestSkipAllocs(t *testing.T) {
	doc := []byte(`{"q":"search \"me\"","n":[1,2,{"deep":[[[{"x":null}]]]}],"b":true}`)
	var s Scanner
	allocs := testing.AllocsPerRun(100, func() {
		s.Reset(doc)
		s.Skip()
		if s.End() != nil {
			t.Fatal(s.Err())
		}
	})
	if allocs != 0 {
		t.Errorf("Skip allocates %v times", allocs)
	}
}

// FuzzSkip: Skip+End accepts exactly what encoding/json accepts, and for a
// valid string token String returns what encoding/json decodes.
func FuzzSkip(f *testing.F) {
	for _, doc := range jsonDocs {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		var s Scanner
		s.Reset(doc)
		s.Skip()
		err := s.End()
		valid := json.Valid(doc)
		if (err == nil) != valid {
			t.Fatalf("Skip(%q): err=%v, json.Valid=%v", doc, err, valid)
		}
		if valid && strings.HasPrefix(strings.TrimSpace(string(doc)), `"`) {
			checkString(t, doc)
		}
		if valid {
			s.Reset(doc)
			raw := s.Raw()
			if s.End() != nil || string(raw) != strings.Trim(string(doc), " \t\r\n") {
				t.Fatalf("Raw(%q) = %q, %v", doc, raw, s.Err())
			}
		}
	})
}

// FuzzAppendString: the writer matches encoding/json (HTML escaping off)
// and round-trips.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a", `"\`, "\x00\x1f\x7f", "\u2028\u2029", "é😀", "\xff\xfe", "<&>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := AppendString(nil, in)
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(in); err != nil {
			t.Fatal(err)
		}
		if want := strings.TrimSuffix(b.String(), "\n"); string(got) != want {
			t.Fatalf("AppendString(%q) = %s, encoding/json %s", in, got, want)
		}
		checkString(t, got)
	})
}

func plainWordRef(b []byte) bool {
	for _, c := range b {
		if strStop[c] {
			return false
		}
	}
	return true
}

func TestPlainWord(t *testing.T) {
	// Every byte value in every lane, among plain neighbours.
	for lane := 0; lane < 8; lane++ {
		for c := 0; c < 256; c++ {
			b := []byte("abcdefgh")
			b[lane] = byte(c)
			if got, want := abi.PlainWord(abi.Load64(b, 0)), plainWordRef(b); got != want {
				t.Fatalf("PlainWord(%q) = %v", b, got)
			}
		}
	}
}

func FuzzPlainWord(f *testing.F) {
	f.Add(uint64(0x2122232425262728))
	f.Fuzz(func(t *testing.T, x uint64) {
		b := make([]byte, 8)
		for i := range b {
			b[i] = byte(x >> (8 * i))
		}
		if got, want := abi.PlainWord(abi.Load64(b, 0)), plainWordRef(b); got != want {
			t.Fatalf("PlainWord(%q) = %v", b, got)
		}
	})
}
