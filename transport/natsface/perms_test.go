package natsface

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gwmcp/gw/transport/jsonrpc"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// TestPrincipalPermissions runs a server where alice and bob may publish only under their own
// principal token: bob cannot call as alice, nor answer alice's input request, and the principal
// the handler sees is the subject's.
func TestPrincipalPermissions(t *testing.T) {
	caller := func(name string) *server.User {
		return &server.User{Username: name, Password: name + "-pw", Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"mcp.v1.req." + name + ".>"}},
			Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
		}}
	}
	s := startServer(t, func(o *server.Options) {
		o.Users = []*server.User{{Username: "gw", Password: "gw-pw"}, caller("alice"), caller("bob")}
	})
	g := newFakeGateway("gw1")
	startFace(t, connect(t, s, nats.UserInfo("gw", "gw-pw")), g, Options{}, "echo", "sample")

	violations := make(chan error, 10)
	onErr := nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err })
	alice := connect(t, s, nats.UserInfo("alice", "alice-pw"))
	bob := connect(t, s, nats.UserInfo("bob", "bob-pw"), onErr)
	wantViolation := func(what string) {
		t.Helper()
		select {
		case err := <-violations:
			if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), "mcp.v1.req.alice.") {
				t.Errorf("%s: %v", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: no permission violation", what)
		}
	}

	msg := request(t, alice, callSubject("alice", "echo"), callBody("echo", map[string]any{"text": "hi"}), nil)
	if got := resultText(t, msg.Data); got != "gw1 says hi to alice via tools/call" {
		t.Fatalf("alice: %q", got)
	}
	msg = request(t, bob, callSubject("bob", "echo"), callBody("echo", map[string]any{"text": "hi"}), nil)
	if got := resultText(t, msg.Data); got != "gw1 says hi to bob via tools/call" {
		t.Fatalf("bob: %q", got)
	}

	// Bob publishing as alice: the server refuses, nothing runs, no reply.
	if _, err := requestErr(bob, callSubject("alice", "echo"), callBody("echo", nil), nil, 500*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("bob as alice: %v", err)
	}
	wantViolation("bob as alice")
	if g.count("echo") != 2 {
		t.Errorf("echo ran %d times, want 2", g.count("echo"))
	}

	// Alice's streaming call asks for input; bob cannot answer it, alice can.
	sub := streamCall(t, alice, callSubject("alice", "sample"), callBody("sample", nil))
	nextFrame(t, sub)
	_, in := nextFrame(t, sub)
	if in.Type != FrameInput {
		t.Fatalf("want input frame, got %+v", in)
	}
	if _, err := requestErr(bob, "mcp.v1.req.alice.at.gw1.input."+in.ID, `{"result":{"text":"evil"}}`, nil, 500*time.Millisecond); err == nil {
		t.Error("bob answered as alice")
	}
	wantViolation("bob answering as alice")
	msg = request(t, bob, "mcp.v1.req.bob.at.gw1.input."+in.ID, `{"result":{"text":"evil"}}`, nil)
	if e := replyError(t, msg); e == nil || e.Code != jsonrpc.CodeInvalidParams {
		t.Errorf("bob's own subject: %s", msg.Data)
	}
	request(t, alice, "mcp.v1.req.alice.at.gw1.input."+in.ID, `{"result":{"text":"good"}}`, nil)
	_, f := nextFrame(t, sub)
	if f.Type != FrameResult || !strings.Contains(string(f.Result), "good") {
		t.Fatalf("result: %+v", f)
	}
}
