package mcptest

import (
	"encoding/json"
	"maps"
	"slices"
)

// change is a server-side event that clients may be told about.
type change int

const (
	listChangedTools change = iota
	listChangedPrompts
	listChangedResources
	resourceUpdated
)

var changeMethods = map[change]string{
	listChangedTools:     "notifications/tools/list_changed",
	listChangedPrompts:   "notifications/prompts/list_changed",
	listChangedResources: "notifications/resources/list_changed",
	resourceUpdated:      "notifications/resources/updated",
}

// subscription is an open subscriptions/listen stream.
type subscription struct {
	call      *call
	tools     bool
	prompts   bool
	resources bool
	uris      map[string]bool
}

func (sub *subscription) wants(ch change, uri string) bool {
	switch ch {
	case listChangedTools:
		return sub.tools
	case listChangedPrompts:
		return sub.prompts
	case listChangedResources:
		return sub.resources
	}
	return sub.uris[uri]
}

// listen answers subscriptions/listen: it acknowledges, then keeps the stream
// open until the client cancels it or the input ends, and then sends nothing.
func (s *server) listen(c *call) (map[string]any, *rpcError) {
	filter, present, ok := obj(c.params, "notifications")
	if !present || !ok {
		return nil, invalidParams("Invalid params: subscriptions/listen needs a notifications object")
	}
	sub := &subscription{call: c, uris: map[string]bool{}}
	agreed := map[string]any{}
	for key, field := range map[string]*bool{
		"toolsListChanged":     &sub.tools,
		"promptsListChanged":   &sub.prompts,
		"resourcesListChanged": &sub.resources,
	} {
		raw, found := filter[key]
		if !found || isNull(raw) {
			continue
		}
		if json.Unmarshal(raw, field) != nil {
			return nil, invalidParams("Invalid params: notifications.%s must be a boolean", key)
		}
		if *field {
			agreed[key] = true
		}
	}
	if raw, found := filter["resourceSubscriptions"]; found && !isNull(raw) {
		var uris []string
		if json.Unmarshal(raw, &uris) != nil {
			return nil, invalidParams("Invalid params: notifications.resourceSubscriptions must be an array of strings")
		}
		var known []string
		for _, u := range uris {
			if knownResource(u) && !sub.uris[u] {
				sub.uris[u] = true
				known = append(known, u)
			}
		}
		if len(known) > 0 {
			agreed["resourceSubscriptions"] = known
		}
	}

	// The acknowledgement and the registration happen under subMu, so no
	// notification can overtake the acknowledgement.
	s.subMu.Lock()
	sent := s.notify(c.ctx, "notifications/subscriptions/acknowledged", map[string]any{
		"_meta":         map[string]any{metaSubscriptionID: c.id},
		"notifications": agreed,
	})
	if sent {
		s.subs[c.key] = sub
	}
	s.subMu.Unlock()
	if sent {
		<-c.ctx.Done()
		s.subMu.Lock()
		if s.subs[c.key] == sub {
			delete(s.subs, c.key)
		}
		s.subMu.Unlock()
	}
	return nil, errNoReply
}

// broadcast tells every interested client about ch: a legacy session (after
// the handshake; for resourceUpdated only if it subscribed to uri) by a plain
// notification, each modern stream that asked for it by a notification
// carrying its subscriptionId.
func (s *server) broadcast(ch change, uri string) {
	method := changeMethods[ch]
	s.mu.Lock()
	legacy := s.phase == phaseReady && (ch != resourceUpdated || s.resSubs[uri])
	s.mu.Unlock()
	if legacy {
		var params any
		if ch == resourceUpdated {
			params = map[string]any{"uri": uri}
		}
		s.notify(nil, method, params)
	}

	s.subMu.Lock()
	defer s.subMu.Unlock()
	for _, key := range slices.Sorted(maps.Keys(s.subs)) {
		sub := s.subs[key]
		if !sub.wants(ch, uri) {
			continue
		}
		params := map[string]any{"_meta": map[string]any{metaSubscriptionID: sub.call.id}}
		if ch == resourceUpdated {
			params["uri"] = uri
		}
		s.notify(sub.call.ctx, method, params) // dropped if the stream was cancelled
	}
}

// endSubscriptions closes every open stream as a server shutting down would:
// the final subscriptions/listen result carrying the subscriptionId, then
// notifications/cancelled referencing the stream. It returns how many ended.
func (s *server) endSubscriptions() int {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	n := 0
	for _, key := range slices.Sorted(maps.Keys(s.subs)) {
		sub := s.subs[key]
		delete(s.subs, key)
		c := sub.call
		res := s.decorate(c, map[string]any{"_meta": map[string]any{metaSubscriptionID: c.id}})
		if s.send(c.ctx, resultMsg{JSONRPC: "2.0", ID: c.id, Result: res}) {
			s.notify(c.ctx, "notifications/cancelled", map[string]any{
				"requestId": c.id, "reason": "the server ended the subscription",
			})
			n++
		}
		s.retire(c)
		c.cancel()
	}
	return n
}
