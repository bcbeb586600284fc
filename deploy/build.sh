#!/bin/sh
# Builds the compose stack's build context (compose.yaml at the repository
# root builds its images from deploy/): static binaries of gw, the three
# example MCP servers and nats-server in deploy/build/bin, the files server's
# sample tree in deploy/build/files, and an empty deploy/build/data that
# becomes NATS's JetStream volume. The images are FROM scratch: building
# them pulls nothing from a registry.
#
#   deploy/build.sh [DIR]      (DIR defaults to deploy/build)
#
# VERSION sets gw's version (gw version). The host's CA bundle, when there is
# one, goes in too (for TLS to NATS).
set -eu
cd "$(dirname "$0")/.."
out=${1:-deploy/build}
rm -rf "$out"
mkdir -p "$out/bin" "$out/files" "$out/data" "$out/etc/ssl/certs"
export CGO_ENABLED=0 GOFLAGS=-trimpath
go build -ldflags "-s -w -X main.version=${VERSION:-dev}" -o "$out/bin/" \
  ./cmd/gw ./examples/notes ./examples/files ./examples/web
# The module's own nats-server (go.mod pins the version the tests use).
go build -ldflags "-s -w" -o "$out/bin/nats-server" github.com/nats-io/nats-server/v2
cp -R examples/files/sample/. "$out/files/"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$out/etc/ssl/certs/"
fi
