// Package deploy holds the support files of the local compose stack (compose.yaml at the
// repository root) and the tests that check them, without a container engine and with one.
//
// Files:
//
//   - build.sh fills deploy/build, the images' build context: static binaries (CGO_ENABLED=0) of
//     gw, the three example MCP servers and nats-server, the files server's sample tree, and the
//     host's CA bundle. Nothing is pulled from a registry.
//   - Dockerfile builds the gw image FROM scratch: gw and the example servers in
//     /usr/local/bin, the sample tree in /srv/files, gw.yaml as the default configuration in
//     /etc/gw, and `gw health --ready` as its healthcheck (exec form: no shell).
//   - Dockerfile.nats builds the NATS image FROM scratch: nats-server, with gw as its
//     healthcheck's probe of the monitoring endpoint (gw health --url …:8222/healthz).
//   - Dockerfile.node is a documented variant for npm and Python servers; it starts from a
//     registry image, so no test builds it.
//   - gw.yaml is gw's configuration in the stack, bind-mounted over the image's copy so that it
//     can be edited without a rebuild. The NATS URL comes from compose (GW_NATS__URL).
//
// compose_test.go validates compose.yaml against the Compose Specification's JSON schema (a copy
// in testdata), then checks what the schema cannot know: the services and their dependency on
// NATS being healthy, the published ports, that every file the stack mounts or copies exists or
// is built by build.sh, that the images are FROM scratch with gw health as their healthcheck,
// and that gw.yaml passes gw's own strict configuration loading with the environment compose
// gives it. compose_run_test.go brings the stack up with podman and podman-compose (rootful,
// runc; its own storage and networks under a temporary directory, testdata/containers.conf and
// storage.conf), calls a tool over NATS, kills a server inside the gw container, and removes
// everything it made.
//
// The package has no code of its own.
package deploy
