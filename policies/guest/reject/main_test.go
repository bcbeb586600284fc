package main

import (
	"testing"

	"github.com/gwmcp/gw/policies/guest/kit/collision"
)

func TestReject(t *testing.T) {
	out, err := collision.Eval([]byte(`{"kind":"tools","servers":[
		{"server":"notes","items":[{"name":"search"},{"name":"add"},{"name":"add"}]},
		{"server":"web","items":[{"name":"search"},{"name":"fetch"},{"name":"bad name"}]}]}`))
	want := `{"names":[{"server":"notes","name":"search","exposed":"search"},{"server":"notes","name":"add","exposed":"add"},{"server":"web","name":"fetch","exposed":"fetch"}],` +
		`"rejected":[{"server":"notes","name":"add","reason":"server lists this name twice"},{"server":"web","name":"search","reason":"name collides with notes/search"},{"server":"web","name":"bad name","reason":"name breaks the MCP naming rule [A-Za-z0-9_.-]{1,128}"}]}`
	if err != nil || string(out) != want {
		t.Fatalf("got  %s %v\nwant %s", out, err, want)
	}
}
