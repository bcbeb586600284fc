package natsclient_test

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/gwmcp/gw/transport/jsonrpc"
	"github.com/gwmcp/gw/transport/natsclient"
)

// TestReplyError: an error reply is the JSON-RPC error of its body, with
// its code and data, else one made of micro's headers; a reply without the
// error headers is no error, whatever its body.
func TestReplyError(t *testing.T) {
	reply := func(code, message, body string) *nats.Msg {
		m := nats.NewMsg("_INBOX.x")
		if code != "" {
			m.Header.Set(micro.ErrorCodeHeader, code)
			m.Header.Set(micro.ErrorHeader, message)
		}
		m.Data = []byte(body)
		return m
	}
	for _, tt := range []struct {
		name string
		msg  *nats.Msg
		want *jsonrpc.Error // nil: no error
	}{
		{"body", reply("-31403", "denied", `{"code":-31403,"message":"gw: denied by policy","data":{"reason":"no"}}`),
			&jsonrpc.Error{Code: -31403, Message: "gw: denied by policy", Data: []byte(`{"reason":"no"}`)}},
		{"body without a message", reply("-32602", "bad", `{"code":-32602}`), &jsonrpc.Error{Code: -32602}},
		{"headers", reply("503", "gw: busy", `not JSON`), &jsonrpc.Error{Code: 503, Message: "gw: busy"}},
		{"a code that is not a number", reply("x", "odd", ``), &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "odd"}},
		{"a result", reply("", "", `{"content":[],"error":{"code":1}}`), nil},
		{"no headers at all", &nats.Msg{Data: []byte(`{"code":-32602,"message":"x"}`)}, nil},
	} {
		err := natsclient.ReplyError(tt.msg)
		var e *jsonrpc.Error
		switch {
		case tt.want == nil && err != nil:
			t.Errorf("%s: %v, want none", tt.name, err)
		case tt.want == nil:
		case !errors.As(err, &e):
			t.Errorf("%s: %v (%T), want a *jsonrpc.Error", tt.name, err, err)
		case e.Code != tt.want.Code || e.Message != tt.want.Message || string(e.Data) != string(tt.want.Data):
			t.Errorf("%s: %+v, want %+v", tt.name, e, tt.want)
		}
	}
}
