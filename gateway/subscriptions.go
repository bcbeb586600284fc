package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// SubscribeResource asks the server that owns uri to report its changes;
// they arrive as EventServerNotification events with method
// notifications/resources/updated. Subscriptions survive server restarts.
func (g *Gateway) SubscribeResource(ctx context.Context, uri string) error {
	return g.setSubscription(ctx, uri, true)
}

// UnsubscribeResource ends a SubscribeResource.
func (g *Gateway) UnsubscribeResource(ctx context.Context, uri string) error {
	return g.setSubscription(ctx, uri, false)
}

func (g *Gateway) setSubscription(ctx context.Context, uri string, on bool) error {
	e, ok := g.Catalog().resourceOwner(uri)
	if !ok {
		return invalidParams(fmt.Errorf("%w: %q", ErrUnknownResource, uri))
	}
	m := g.server(e.Server)
	if m == nil {
		return fmt.Errorf("%w: %q is not configured", ErrServerDown, e.Server)
	}
	m.mu.Lock()
	if m.subs[uri] == on {
		m.mu.Unlock()
		return nil
	}
	if on {
		m.subs[uri] = true
	} else {
		delete(m.subs, uri)
	}
	s := m.sess
	m.mu.Unlock()
	if s == nil {
		return nil // applied when the server is back
	}
	if s.era == EraModern {
		select { // the listener re-opens its stream with the new filter
		case m.subsChanged <- struct{}{}:
		default:
		}
		return nil
	}
	if !s.offersSubscribe() {
		return fmt.Errorf("server %q: does not offer resource subscriptions", e.Server)
	}
	method := methodResourcesSub
	if !on {
		method = methodResourcesUnsub
	}
	_, err := s.request(ctx, method, mustJSON(map[string]string{"uri": uri}), callOptions{})
	return err
}

// subscribedURIs returns the server's subscribed uris, sorted.
func (m *managed) subscribedURIs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	uris := make([]string, 0, len(m.subs))
	for u := range m.subs {
		uris = append(uris, u)
	}
	slices.Sort(uris)
	return uris
}

// resubscribeLegacy renews a legacy server's resource subscriptions after a
// (re)start; a modern server gets them in its listen filter instead.
func (m *managed) resubscribeLegacy(ctx context.Context, s *session) {
	if s.era != EraLegacy || !s.offersSubscribe() {
		return
	}
	for _, uri := range m.subscribedURIs() {
		if _, err := s.request(ctx, methodResourcesSub, mustJSON(map[string]string{"uri": uri}), callOptions{}); err != nil {
			m.log.Warn("could not renew resource subscription", "uri", uri, "error", err)
		}
	}
}

// listenFilter is what a modern server is asked to report.
func (m *managed) listenFilter(s *session) map[string]any {
	filter := map[string]any{}
	if s.caps.Tools != nil && s.caps.Tools.ListChanged {
		filter["toolsListChanged"] = true
	}
	if s.caps.Prompts != nil && s.caps.Prompts.ListChanged {
		filter["promptsListChanged"] = true
	}
	if s.caps.Resources != nil && s.caps.Resources.ListChanged {
		filter["resourcesListChanged"] = true
	}
	if uris := m.subscribedURIs(); len(uris) > 0 && s.offersSubscribe() {
		filter["resourceSubscriptions"] = uris
	}
	return filter
}

// listen keeps a modern server's subscriptions/listen stream open so list
// changes and resource updates arrive. The stream is re-opened when the
// server ends it gracefully and when the subscribed uris change.
func (m *managed) listen(ctx context.Context, s *session) {
	if s.era != EraModern {
		return
	}
	for {
		filter := m.listenFilter(s)
		if len(filter) == 0 {
			s.ackOnce.Do(func() { close(s.acked) })
			select {
			case <-m.subsChanged:
				continue
			case <-ctx.Done():
				return
			}
		}
		lctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := s.request(lctx, methodListen, mustJSON(map[string]any{"notifications": filter}), callOptions{})
			done <- err
		}()
		var err error
		select {
		case err = <-done:
		case <-m.subsChanged:
			cancel() // sends notifications/cancelled for the old stream
			<-done
			continue
		case <-ctx.Done():
			cancel()
			<-done
			return
		}
		cancel()
		if ctx.Err() != nil || errors.Is(err, ErrSessionClosed) {
			return
		}
		if err != nil {
			m.log.Warn("subscriptions/listen failed; changes will not be seen", "error", err)
			s.ackOnce.Do(func() { close(s.acked) })
			return
		}
		select { // the server ended the stream gracefully: re-open it
		case <-time.After(time.Second):
		case <-m.subsChanged:
		case <-ctx.Done():
			return
		}
	}
}

// offersSubscribe reports whether the server announced resource
// subscriptions.
func (s *session) offersSubscribe() bool {
	return s.caps.Resources != nil && s.caps.Resources.Subscribe
}
