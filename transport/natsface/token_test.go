package natsface

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTokenExamples(t *testing.T) {
	for in, want := range map[string]string{
		"get_weather":         "get_weather",
		"github.create issue": "github~2Ecreate~20issue",
		"a*b>c":               "a~2Ab~3Ec",
		"":                    "~",
		"~":                   "~7E",
		"tab\there":           "tab~09here",
		"é":                   "~C3~A9",
		"$SYS":                "~24SYS",
	} {
		if got := EncodeToken(in); got != want {
			t.Errorf("EncodeToken(%q) = %q, want %q", in, got, want)
		}
		if back, err := DecodeToken(want); err != nil || back != in {
			t.Errorf("DecodeToken(%q) = %q, %v", want, back, err)
		}
	}
	for _, bad := range []string{"", "a.b", "*", ">", "a b", "~2e", "~41", "~", "~4", "a~", "~G0", "x~~41"} {
		if bad == "~" {
			continue // the empty string
		}
		if _, err := DecodeToken(bad); !errors.Is(err, ErrBadToken) {
			t.Errorf("DecodeToken(%q) accepted", bad)
		}
	}
}

// validToken reports whether tok is a valid single NATS subject token that is not a wildcard.
func validToken(tok string) bool {
	return tok != "" && tok != "*" && tok != ">" && utf8.ValidString(tok) &&
		!strings.ContainsAny(tok, ". \t\r\n\f\v*>")
}

func FuzzToken(f *testing.F) {
	for _, s := range []string{"", "echo", "a.b", "~", "~7E", "é", "a b*c>", "\x00\xff", "~2E"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := EncodeToken(s)
		if !validToken(tok) {
			t.Fatalf("EncodeToken(%q) = %q is not a valid token", s, tok)
		}
		back, err := DecodeToken(tok)
		if err != nil || back != s {
			t.Fatalf("round trip %q → %q → %q, %v", s, tok, back, err)
		}
		// Canonical: whatever decodes re-encodes to itself, so two subjects never name one tool.
		if dec, err := DecodeToken(s); err == nil && EncodeToken(dec) != s {
			t.Fatalf("DecodeToken(%q) = %q re-encodes to %q", s, dec, EncodeToken(dec))
		}
	})
}

// FuzzDecodeObject: the strict decoder of request bodies and answers never panics, accepts only
// valid JSON objects, and agrees with encoding/json on the members it returns.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"name":"a"}`, `{"name":"a","name":"b"}`, `{"a":1} x`, `[1]`, `{"result":{},"error":null}`, `{"Name":1}`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fields, err := decodeObject(data, nil)
		_, _ = decodeAnswer(data)
		if err != nil {
			return
		}
		var m map[string]json.RawMessage
		if uerr := json.Unmarshal(data, &m); uerr != nil {
			t.Fatalf("decodeObject accepted %q, encoding/json refuses it: %v", data, uerr)
		}
		if len(m) != len(fields) {
			t.Fatalf("%q: %d members, encoding/json sees %d", data, len(fields), len(m))
		}
		for k, v := range fields {
			if !json.Valid(v) || string(bytes.TrimSpace(m[k])) != string(bytes.TrimSpace(v)) {
				t.Fatalf("%q: member %q = %q, encoding/json: %q", data, k, v, m[k])
			}
		}
	})
}
