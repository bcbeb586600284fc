package mcptest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Tools that need something from the client (sample, elicit, roots) get it
// one of two ways. Legacy: a JSON-RPC request from the server ("s-1", "s-2",
// …) whose response the reader routes back through pending. Modern: a multi
// round-trip request: the first attempt returns resultType "input_required"
// with inputRequests {"q1": …} and a requestState; the client retries with a
// new id, inputResponses {"q1": …} and the requestState echoed.

// inputKey is the only key the server uses in inputRequests.
const inputKey = "q1"

// clientReply is the client's response to a legacy server-to-client request.
type clientReply struct {
	result json.RawMessage
	err    *rpcError
}

// mrtrState is what an issued requestState stands for.
type mrtrState struct {
	tool    string
	origKey string // id of the request that got input_required
	args    string // canonical JSON of its arguments
}

// ask sends a legacy server-to-client request and waits for the answer. It
// returns false if c was cancelled (or the server stopped) first.
func (s *server) ask(c *call, method string, params any) (clientReply, bool) {
	s.mu.Lock()
	s.nextOutID++
	id := fmt.Sprintf("s-%d", s.nextOutID)
	key, _ := json.Marshal(id)
	ch := make(chan clientReply, 1)
	s.pending[string(key)] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, string(key))
		s.mu.Unlock()
	}()
	if !s.send(c.ctx, requestMsg{JSONRPC: "2.0", ID: id, Method: method, Params: params}) {
		return clientReply{}, false
	}
	select {
	case r := <-ch:
		return r, true
	case <-c.ctx.Done():
		return clientReply{}, false
	}
}

// hasCapability reports whether the client declared the capability a
// server-to-client request needs. Elicitation here is form mode, which an
// empty elicitation object implies.
func hasCapability(caps object, name string) bool {
	raw, ok := caps[name]
	if !ok || isNull(raw) {
		return false
	}
	if name != "elicitation" {
		return true
	}
	e, ok := decodeObject(raw)
	if !ok {
		return false
	}
	_, form := e["form"]
	return len(e) == 0 || form
}

// clientInput obtains the client's result for one server-to-client request.
// It returns either the result, or the reply to send instead: a result body
// (input_required, or a tool error) or an error object.
func (s *server) clientInput(c *call, tool, capability, method string, params map[string]any) (json.RawMessage, map[string]any, *rpcError) {
	if !c.modern {
		s.mu.Lock()
		declared := hasCapability(s.legacyCaps, capability)
		s.mu.Unlock()
		if !declared {
			return nil, toolError(fmt.Sprintf("%s needs the client's %s capability, which initialize did not declare", tool, capability)), nil
		}
		var p any
		if params != nil {
			p = params
		}
		r, ok := s.ask(c, method, p)
		if !ok {
			return nil, nil, errNoReply
		}
		if r.err != nil {
			return nil, toolError(fmt.Sprintf("client answered %s with error %d: %s", method, r.err.Code, r.err.Message)), nil
		}
		return r.result, nil, nil
	}

	if !hasCapability(c.caps, capability) {
		return nil, nil, &rpcError{
			Code:    CodeMissingRequiredClientCapability,
			Message: fmt.Sprintf("Missing required client capability: %s", capability),
			Data:    map[string]any{"requiredCapabilities": map[string]any{capability: map[string]any{}}},
		}
	}
	state, hasState, ok := str(c.params, "requestState")
	if !ok {
		return nil, nil, invalidParams("Invalid params: requestState must be a string")
	}
	responses, hasResponses, ok := obj(c.params, "inputResponses")
	if !ok {
		return nil, nil, invalidParams("Invalid params: inputResponses must be an object")
	}
	args := canonical(c.params["arguments"])
	if !hasState {
		if hasResponses {
			return nil, nil, invalidParams("Invalid params: inputResponses without the requestState they answer")
		}
		return nil, s.inputRequired(c, tool, args, method, params), nil
	}
	s.mu.Lock()
	st, known := s.states[state]
	s.mu.Unlock()
	switch {
	case !known:
		return nil, nil, invalidParams("Invalid params: requestState was not issued by this server")
	case st.tool != tool || st.args != args:
		return nil, nil, invalidParams("Invalid params: requestState was issued for a different call (%s %s)", st.tool, st.args)
	case st.origKey == c.key:
		return nil, nil, invalidParams("Invalid params: the retry reuses id %s of the original request; it needs a new id", c.key)
	}
	answer, ok := responses[inputKey]
	if !ok || isNull(answer) {
		// The spec asks to request missing input again rather than fail.
		return nil, s.inputRequired(c, tool, args, method, params), nil
	}
	return answer, nil, nil
}

// inputRequired issues a new requestState and returns the interim result.
func (s *server) inputRequired(c *call, tool, args, method string, params map[string]any) map[string]any {
	s.mu.Lock()
	s.nextOutID++
	state := fmt.Sprintf("mcptest-%d-%s", s.nextOutID, rand.Text())
	s.states[state] = mrtrState{tool: tool, origKey: c.key, args: args}
	s.mu.Unlock()
	req := map[string]any{"method": method}
	if params != nil {
		req["params"] = params
	}
	return map[string]any{
		"resultType":    "input_required",
		"inputRequests": map[string]any{inputKey: req},
		"requestState":  state,
	}
}

// canonical re-encodes raw with sorted keys, so two spellings of the same
// arguments compare equal; absent arguments are {}.
func canonical(raw json.RawMessage) string {
	if isNull(raw) {
		return "{}"
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if d.Decode(&v) != nil {
		return string(raw)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return string(raw)
	}
	return string(b)
}

// badAnswer is the reply to a client result the server cannot use: a
// protocol error in the modern era (the spec's advice for invalid
// inputResponses), a tool error in the legacy one.
func badAnswer(c *call, method string, err error) (map[string]any, *rpcError) {
	if c.modern {
		return nil, invalidParams("Invalid params: inputResponses[%q] is not a valid %s result: %v", inputKey, method, err)
	}
	return toolError(fmt.Sprintf("client's %s result is not valid: %v", method, err)), nil
}

func runSample(s *server, c *call, args object) (map[string]any, *rpcError) {
	prompt, bad := needString(args, "prompt")
	if bad != nil {
		return bad, nil
	}
	const method = "sampling/createMessage"
	params := map[string]any{
		"messages": []any{map[string]any{
			"role":    "user",
			"content": map[string]any{"type": "text", "text": prompt},
		}},
		"maxTokens": 100,
	}
	answer, res, e := s.clientInput(c, "sample", "sampling", method, params)
	if answer == nil {
		return res, e
	}
	text, err := samplingText(answer)
	if err != nil {
		return badAnswer(c, method, err)
	}
	return textResult(text), nil
}

// samplingText returns the first text block of a CreateMessageResult, whose
// content is one block or an array of blocks.
func samplingText(raw json.RawMessage) (string, error) {
	m, ok := decodeObject(raw)
	if !ok {
		return "", errors.New("not an object")
	}
	content := bytes.TrimSpace(m["content"])
	var blocks []json.RawMessage
	switch {
	case len(content) > 0 && content[0] == '[':
		if json.Unmarshal(content, &blocks) != nil {
			return "", errors.New("content is not an array of blocks")
		}
	case len(content) > 0 && content[0] == '{':
		blocks = []json.RawMessage{content}
	default:
		return "", errors.New("no content")
	}
	for _, b := range blocks {
		block, ok := decodeObject(b)
		if !ok {
			return "", errors.New("a content block is not an object")
		}
		if typ, _, _ := str(block, "type"); typ == "text" {
			if text, present, ok := str(block, "text"); present && ok {
				return text, nil
			}
			return "", errors.New("a text block has no string text")
		}
	}
	return "", errors.New("no text content block")
}

func runElicit(s *server, c *call, args object) (map[string]any, *rpcError) {
	message, bad := needString(args, "message")
	if bad != nil {
		return bad, nil
	}
	const method = "elicitation/create"
	params := map[string]any{
		"mode":    "form",
		"message": message,
		"requestedSchema": map[string]any{
			"type":       "object",
			"properties": map[string]any{"answer": map[string]any{"type": "string", "description": "Your answer"}},
			"required":   []string{"answer"},
		},
	}
	answer, res, e := s.clientInput(c, "elicit", "elicitation", method, params)
	if answer == nil {
		return res, e
	}
	m, ok := decodeObject(answer)
	if !ok {
		return badAnswer(c, method, errors.New("not an object"))
	}
	action, _, _ := str(m, "action")
	switch action {
	case "accept":
		content, _, _ := obj(m, "content")
		text, present, ok := str(content, "answer")
		if !present || !ok {
			return badAnswer(c, method, errors.New(`accepted without a string content.answer`))
		}
		return textResult(text), nil
	case "decline", "cancel":
		return textResult(action), nil
	}
	return badAnswer(c, method, fmt.Errorf("action %q is not accept, decline or cancel", action))
}

func runRoots(s *server, c *call, _ object) (map[string]any, *rpcError) {
	const method = "roots/list"
	answer, res, e := s.clientInput(c, "roots", "roots", method, nil)
	if answer == nil {
		return res, e
	}
	m, ok := decodeObject(answer)
	if !ok {
		return badAnswer(c, method, errors.New("not an object"))
	}
	var roots []json.RawMessage
	if json.Unmarshal(m["roots"], &roots) != nil {
		return badAnswer(c, method, errors.New("roots is not an array"))
	}
	uris := make([]string, 0, len(roots))
	for _, r := range roots {
		root, ok := decodeObject(r)
		uri, present, strOK := str(root, "uri")
		if !ok || !present || !strOK {
			return badAnswer(c, method, errors.New("a root has no string uri"))
		}
		uris = append(uris, uri)
	}
	return textResult(strings.Join(uris, "\n")), nil
}
