// Package deploy holds the support files of the local compose stack (compose.yaml at the
// repository root) and the test that checks them without a Docker engine.
//
// Files:
//
//   - Dockerfile builds the gw image: gw and the three example MCP servers (notes, files, web) as
//     static binaries in /usr/local/bin, the files server's sample tree in /srv/files, and
//     gw.yaml as the default configuration in /etc/gw. The build context is the repository root;
//     Dockerfile.dockerignore filters it.
//   - gw.yaml is gw's configuration in the stack, bind-mounted over the image's copy so that it
//     can be edited without a rebuild. The NATS URL comes from compose (GW_NATS__URL).
//
// The test validates compose.yaml against the Compose Specification's JSON schema (a copy in
// testdata), then checks what the schema cannot know: the services and their dependency on
// NATS being healthy, the published ports, that every file the stack mounts or copies exists,
// that the Dockerfile builds every binary gw.yaml starts, and that gw.yaml passes gw's own strict
// configuration loading with the environment compose gives it.
//
// The package has no code of its own.
package deploy
