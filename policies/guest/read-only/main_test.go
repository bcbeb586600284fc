package main

import (
	"testing"

	"github.com/gwmcp/gw/policies/guest/kit/authz"
)

func TestReadOnly(t *testing.T) {
	for in, want := range map[string]string{
		`{"name":"notes__search","annotations":{"readOnlyHint":true}}`:  `{"allow":true}`,
		`{"name":"notes__delete","annotations":{"readOnlyHint":false}}`: `{"allow":false,"reason":"read-only policy: tool \"notes__delete\" is not read-only"}`,
		`{"name":"notes__delete"}`:                                      `{"allow":false,"reason":"read-only policy: tool \"notes__delete\" is not read-only"}`,
		`{"name":"x","annotations":{"readOnlyHint":"true"}}`:            `{"allow":false,"reason":"policy input: json: annotations.readOnlyHint: expected a boolean at offset 42"}`,
	} {
		if got := string(authz.Eval([]byte(in))); got != want {
			t.Errorf("%s:\n got  %s\n want %s", in, got, want)
		}
	}
}
