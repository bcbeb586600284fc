package main

import (
	"strings"
	"testing"

	"github.com/gwmcp/gw/internal/config"
)

func TestViewFor(t *testing.T) {
	cfg := &config.Config{Views: map[string]config.View{"coding": {Include: []string{"fs__*"}}}}
	if v, err := viewFor(cfg, ""); v != nil || err != nil {
		t.Fatalf(`viewFor("") = %v, %v; want the whole namespace`, v, err)
	}
	if v, err := viewFor(cfg, "coding"); err != nil || v.Name != "coding" || v.Include[0] != "fs__*" {
		t.Fatalf("viewFor(coding) = %+v, %v", v, err)
	}
	if _, err := viewFor(cfg, "nope"); err == nil || !strings.Contains(err.Error(), "[coding]") {
		t.Fatalf("viewFor(nope) = %v; want an error listing the views", err)
	}
}
