package main

import (
	"testing"

	"github.com/gwmcp/gw/policies/guest/kit/authz"
)

func TestAllowAll(t *testing.T) {
	if got := string(authz.Eval([]byte(`{"caller":{"id":""},"name":"x"}`))); got != `{"allow":true}` {
		t.Fatal(got)
	}
	// Input gw could not have sent still fails closed.
	if got := string(authz.Eval([]byte(`{"name":`))); got[:15] != `{"allow":false,` {
		t.Fatal(got)
	}
}
