package main

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/gwmcp/gw/policies/guest/kit/collision"
)

// The expected names were produced by gw's gateway.PrefixResolver; the
// wazero test in the main module compares the built module with it directly.
func TestResolveLikeGateway(t *testing.T) {
	input := `{"kind":"tools","servers":[
		{"server":"notes","items":[{"name":"search"},{"name":"add note"},{"name":"search"},{"name":"é\ufffd/x"}]},
		{"server":"no.tes","items":[{"name":"search"},{"name":"` + strings.Repeat("long", 20) + `"}]},
		{"server":"no_tes","items":[{"name":"search"}]}]}`
	long := strings.Repeat("long", 20)
	for _, c := range []struct {
		config string
		want   string
	}{
		{`{}`, `{"names":[{"server":"notes","name":"search","exposed":"notes__search"},{"server":"notes","name":"add note","exposed":"notes__add_note"},` +
			`{"server":"notes","name":"é�/x","exposed":"notes_____x"},{"server":"no.tes","name":"search","exposed":"no_tes__search"},` +
			`{"server":"no.tes","name":"` + long + `","exposed":"no_tes__longlonglonglonglonglonglonglonglonglonglonglon_e51ad5c4"},` +
			`{"server":"no_tes","name":"search","exposed":"no_tes__search_5ea7776c"}],` +
			`"rejected":[{"server":"notes","name":"search","reason":"server lists this name twice"}]}`},
		{`{"separator":".","max_length":20}`, `{"names":[{"server":"notes","name":"search","exposed":"notes.search"},{"server":"notes","name":"add note","exposed":"notes.add_note"},` +
			`{"server":"notes","name":"é�/x","exposed":"notes.___x"},{"server":"no.tes","name":"search","exposed":"no_tes.search"},` +
			`{"server":"no.tes","name":"` + long + `","exposed":"no_tes.long_e51ad5c4"},` +
			`{"server":"no_tes","name":"search","exposed":"no_tes.sear_5ea7776c"}],` +
			`"rejected":[{"server":"notes","name":"search","reason":"server lists this name twice"}]}`},
	} {
		if err := configure([]byte(c.config)); err != nil {
			t.Fatal(err)
		}
		out, err := collision.Eval([]byte(input))
		if err != nil || string(out) != c.want {
			t.Errorf("config %s:\n got  %s %v\n want %s", c.config, out, err, c.want)
		}
	}
	if err := configure(nil); err != nil || separator != "__" || maxLength != 64 {
		t.Fatalf("defaults: %v %q %d", err, separator, maxLength)
	}
}

func TestTakenAfterShortening(t *testing.T) {
	// With separator "_", server "s" item "_a" and server "s_" item "a" both
	// sanitize to "s__a"; the second is shortened, and its shortened name is
	// already taken by an item of "s" crafted to match, so it is rejected.
	defer configure(nil)
	if err := configure([]byte(`{"separator":"_"}`)); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("s_\x00a"))
	crafted := "_a_" + hex.EncodeToString(sum[:4])
	out, err := collision.Eval([]byte(`{"kind":"tools","servers":[{"server":"s","items":[{"name":"_a"},{"name":"` + crafted + `"}]},{"server":"s_","items":[{"name":"a"}]}]}`))
	want := `{"names":[{"server":"s","name":"_a","exposed":"s__a"},{"server":"s","name":"` + crafted + `","exposed":"s_` + crafted + `"}],` +
		`"rejected":[{"server":"s_","name":"a","reason":"exposed name \"s_` + crafted + `\" already taken"}]}`
	if err != nil || string(out) != want {
		t.Fatalf("got  %s %v\nwant %s", out, err, want)
	}
}

func TestConfigErrors(t *testing.T) {
	defer configure(nil)
	for cfg, want := range map[string]string{
		`{"separator":""}`:                  `separator "" must be 1 to 8`,
		`{"separator":"a/b"}`:               `separator "a/b" must be 1 to 8`,
		`{"separator":"123456789"}`:         `must be 1 to 8`,
		`{"max_length":9}`:                  "max_length must be between 10 and 128, got 9",
		`{"max_length":129}`:                "between 10 and 128, got 129",
		`{"max_length":99999999999}`:        "between 10 and 128",
		`{"max_length":64.5}`:               "expected an integer",
		`{"max_length":"64"}`:               "expected number, found string",
		`{"Separator":"__"}`:                `unknown member "Separator"`,
		`{"separator":"_","separator":"_"}`: `duplicate member "separator"`,
		`[]`:                                "expected object",
	} {
		err := configure([]byte(cfg))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "prefix config: ") {
			t.Errorf("configure(%s) = %v, want %q", cfg, err, want)
		}
		if separator != "__" || maxLength != 64 {
			t.Fatalf("a refused config changed the settings: %q %d", separator, maxLength)
		}
	}
}
