package jsonvalid

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func reference(b []byte) bool { return utf8.Valid(b) && json.Valid(b) }

var cases = []string{
	`{"allow":true}`, `{"allow":false,"reason":"no \"x\"\n\u00e9 é"}`, ` [1, -0.5e+3, "", {}, [], null, false] `,
	`{"resolution":[{"server":"a","tool":"t","name":"a__t"}],"rejected":[]}`,
	``, ` `, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `[,1]`, `{,}`, `{"a":1 "b":2}`, `{1:2}`,
	`01`, `-`, `1.`, `.1`, `1e`, `1e+`, `+1`, `0x1`, `1 2`, `"a" "b"`, `nul`, `truex`, `True`,
	`"\x"`, `"\u12"`, `"\u12g4"`, "\"a\tb\"", "\"\xff\"", "\"\xed\xa0\x80\"", "\"a\" \xff", `"unterminated`,
	`{"a":[1,{"b":[true,{"c":null}]}]}`, strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001), strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100),
}

func TestValid(t *testing.T) {
	for _, c := range cases {
		if got, want := Valid([]byte(c)), reference([]byte(c)); got != want {
			t.Errorf("Valid(%.40q) = %v, want %v", c, got, want)
		}
	}
}

func TestValidAllocs(t *testing.T) {
	doc := []byte(`{"allow":false,"reason":"` + strings.Repeat("x", 100) + `","nested":[[[[{"a":[1]}]]]]}`)
	if n := testing.AllocsPerRun(100, func() { Valid(doc) }); n != 0 {
		t.Errorf("Valid allocates %v times", n)
	}
}

// FuzzValid: Valid answers what utf8.Valid && json.Valid answer.
func FuzzValid(f *testing.F) {
	for _, c := range cases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Valid(b), reference(b); got != want {
			t.Fatalf("Valid(%q) = %v, want %v", b, got, want)
		}
	})
}

func BenchmarkValid(b *testing.B) {
	for name, doc := range map[string]string{"allow": `{"allow":true}`,
		"deny": `{"allow":false,"reason":"read-only policy: tool \"notes__write\" is not read-only"}`} {
		b.Run(name+"/jsonvalid", func(b *testing.B) {
			for b.Loop() {
				Valid([]byte(doc))
			}
		})
		b.Run(name+"/reference", func(b *testing.B) {
			for b.Loop() {
				reference([]byte(doc))
			}
		})
	}
}
