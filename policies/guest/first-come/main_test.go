package main

import (
	"testing"

	"github.com/gwmcp/gw/policies/guest/kit/collision"
)

func TestFirstCome(t *testing.T) {
	out, err := collision.Eval([]byte(`{"kind":"prompts","servers":[
		{"server":"a","items":[{"name":"p"}]},{"server":"b","items":[{"name":"p"},{"name":"q"}]},{"server":"c","items":[{"name":"q"}]}]}`))
	want := `{"names":[{"server":"a","name":"p","exposed":"p"},{"server":"b","name":"q","exposed":"q"}],` +
		`"rejected":[{"server":"b","name":"p","reason":"shadowed by a"},{"server":"c","name":"q","reason":"shadowed by b"}]}`
	if err != nil || string(out) != want {
		t.Fatalf("got  %s %v\nwant %s", out, err, want)
	}
}
