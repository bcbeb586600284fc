package mcptest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// allToolNames is the tools/list order for extra tools appended to the built-ins.
func allToolNames(extra ...string) []string {
	var names []string
	for _, t := range builtinTools {
		names = append(names, t.name)
	}
	return append(names, extra...)
}

// listAll pages through method and returns the names (or uris) of the items
// under field, checking every nextCursor with checkCursor.
func listAll(h *harness, method, field, meta string, checkCursor func(page int, cursor string)) (names []string, calls int) {
	h.t.Helper()
	cursorParam := ""
	for page := 0; ; page++ {
		params := "{" + strings.TrimPrefix(cursorParam+","+meta, ",") + "}"
		params = strings.Replace(params, ",}", "}", 1)
		id := fmt.Sprintf(`"%s-%d"`, method, page)
		res := h.call(id, fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"method":%q,"params":%s}`, id, method, params)).wantResult()
		calls++
		var items []map[string]any
		if err := json.Unmarshal(res.get(field), &items); err != nil {
			h.t.Fatalf("%s: %s is not a list: %s", method, field, res)
		}
		for _, it := range items {
			name, _ := it["name"].(string)
			names = append(names, name)
		}
		if !res.has("nextCursor") {
			return names, calls
		}
		cursor := res.str("nextCursor")
		checkCursor(page, cursor)
		b, _ := json.Marshal(cursor)
		cursorParam = `"cursor":` + string(b)
		if page > 100 {
			h.t.Fatal("pagination does not end")
		}
	}
}

func TestLegacyHandshakePaginationEcho(t *testing.T) {
	opts := Options{Name: "legacy-test", PageSize: 4, Tools: []string{"extra_a", "extra_b"}}
	bubble(t, opts, func(h *harness) {
		// Before initialize: everything but ping is refused; server/discover too.
		h.call(`1`, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`).wantError(CodeMethodNotFound)
		h.call(`"d"`, `{"jsonrpc":"2.0","id":"d","method":"server/discover","params":{`+modernMeta(`{}`)+`}}`).
			wantError(CodeMethodNotFound)
		pong := h.call(`"p0"`, `{"jsonrpc":"2.0","id":"p0","method":"ping"}`).wantResult()
		if pong.json() != `{}` {
			t.Errorf("legacy ping result = %s, want {}", pong)
		}

		init := h.call(`2`, `{"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"2025-11-25",`+
			`"capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`).wantResult()
		if v := init.str("protocolVersion"); v != LegacyVersion {
			t.Errorf("protocolVersion = %q", v)
		}
		if n := init.str("serverInfo", "name"); n != "legacy-test" {
			t.Errorf("serverInfo.name = %q", n)
		}
		if init.json("capabilities", "tools", "listChanged") != "true" || init.json("capabilities", "resources", "subscribe") != "true" {
			t.Errorf("capabilities: %s", init.get("capabilities"))
		}
		if init.has("resultType") {
			t.Errorf("legacy result has resultType: %s", init)
		}
		// Between initialize and notifications/initialized requests are still refused.
		h.call(`3`, `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`).wantError(CodeMethodNotFound)
		h.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
		// A second initialize is refused.
		h.call(`4`, `{"jsonrpc":"2.0","id":4,"method":"initialize","params":{"protocolVersion":"2025-11-25",`+
			`"capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`).wantError(CodeInvalidRequest)

		names, calls := listAll(h, "tools/list", "tools", "", func(page int, cursor string) {
			if cursor == "" {
				t.Errorf("legacy page %d has an empty nextCursor", page)
			}
		})
		if want := allToolNames("extra_a", "extra_b"); !slices.Equal(names, want) {
			t.Errorf("tools = %v, want %v", names, want)
		}
		if want := (len(builtinTools) + 2 + 3) / 4; calls != want {
			t.Errorf("%d pages, want %d", calls, want)
		}
		list := h.call(`5`, `{"jsonrpc":"2.0","id":5,"method":"tools/list"}`).wantResult()
		if list.has("resultType") || list.has("ttlMs") {
			t.Errorf("legacy list has modern fields: %s", list)
		}
		if list.str("tools", 0, "inputSchema", "type") != "object" {
			t.Errorf("echo inputSchema: %s", list.get("tools", 0))
		}
		h.call(`6`, `{"jsonrpc":"2.0","id":6,"method":"tools/list","params":{"cursor":"nope"}}`).wantError(CodeInvalidParams)

		echo := h.call(`"e1"`, `{"jsonrpc":"2.0","id":"e1","method":"tools/call","params":{"name":"echo","arguments":{"text":"hi\nthere"}}}`).wantResult()
		if echo.text() != "hi\nthere" || echo.str("structuredContent", "text") != "hi\nthere" {
			t.Errorf("echo: %s", echo)
		}
		extra := h.call(`7`, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"extra_b","arguments":{"text":"x"}}}`).wantResult()
		if extra.text() != "x" {
			t.Errorf("extra tool: %s", extra)
		}

		_, calls2 := listAll(h, "prompts/list", "prompts", "", func(int, string) {})
		resNames, _ := listAll(h, "resources/list", "resources", "", func(int, string) {})
		if !slices.Equal(resNames, []string{"a", "b"}) {
			t.Errorf("resources = %v", resNames)
		}
		read := h.call(`8`, `{"jsonrpc":"2.0","id":8,"method":"resources/read","params":{"uri":"test://item/42"}}`).wantResult()
		if read.str("contents", 0, "text") != "Item 42." {
			t.Errorf("read: %s", read)
		}
		h.call(`9`, `{"jsonrpc":"2.0","id":9,"method":"resources/read","params":{"uri":"test://nope"}}`).wantError(CodeResourceNotFoundLegacy)
		prompt := h.call(`10`, `{"jsonrpc":"2.0","id":10,"method":"prompts/get","params":{"name":"greet","arguments":{"name":"Ada"}}}`).wantResult()
		if prompt.str("messages", 0, "content", "text") != "Hello, Ada!" {
			t.Errorf("prompt: %s", prompt)
		}
		h.call(`11`, `{"jsonrpc":"2.0","id":11,"method":"server/discover"}`).wantError(CodeMethodNotFound)

		st := h.stats("")
		if st.Initialize != 2 || st.Initialized != 1 || st.Discover != 2 || st.Era != "legacy" {
			t.Errorf("stats: %+v", st)
		}
		if st.ListCalls["tools/list"] != 2+calls+1+1 || st.ListCalls["prompts/list"] != calls2 {
			t.Errorf("listCalls = %v", st.ListCalls)
		}
		if st.Legacy == nil || st.Legacy.ProtocolVersion != "2025-11-25" {
			t.Errorf("legacy hello: %+v", st.Legacy)
		}
		if st.LastMeta == nil || st.LastMeta.Method != "server/discover" || st.LastMeta.ProtocolVersion != "2026-07-28" {
			t.Errorf("lastMeta: %+v", st.LastMeta)
		}
	})
}

func TestMalformedInput(t *testing.T) {
	bubble(t, Options{}, func(h *harness) {
		h.send(`{"jsonrpc":"2.0","id":1,`)
		if m := h.recv().wantError(CodeParseError); m.json("id") != "null" {
			t.Errorf("parse error id: %s", m)
		}
		h.call(`2`, `{"jsonrpc":"2.0","id":2,"Method":"ping"}`).wantError(CodeInvalidRequest)
		h.call(`null`, `{"jsonrpc":"2.0","id":1.5,"method":"ping"}`).wantError(CodeInvalidRequest)
		h.call(`null`, `{"jsonrpc":"2.0","id":null,"method":"ping"}`).wantError(CodeInvalidRequest)
		h.call(`3`, `{"jsonrpc":"1.0","id":3,"method":"ping"}`).wantError(CodeInvalidRequest)
		h.call(`null`, `[{"jsonrpc":"2.0","id":4,"method":"ping"}]`).wantError(CodeInvalidRequest)
		h.call(`5`, `{"jsonrpc":"2.0","id":5,"method":"ping","params":[1]}`).wantError(CodeInvalidParams)
		// Ids are echoed exactly: "1" and 1 are different ids.
		h.call(`"1"`, `{"jsonrpc":"2.0","id":"1","method":"ping"}`).wantResult()
		h.call(`-7`, `{"jsonrpc":"2.0", "id" : -7 ,"method":"ping"}`).wantResult()
		// Notifications get no reply, known or not.
		h.send(`{"jsonrpc":"2.0","method":"notifications/whatever"}`)
		h.quiet()
	})
}

func TestPreinitErrorAndDiscoverModes(t *testing.T) {
	t.Run("invalid-request", func(t *testing.T) {
		bubble(t, Options{PreinitError: CodeInvalidRequest}, func(h *harness) {
			h.call(`1`, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`).wantError(CodeInvalidRequest)
			h.call(`2`, `{"jsonrpc":"2.0","id":2,"method":"server/discover"}`).wantError(CodeInvalidRequest)
		})
	})
	t.Run("silent", func(t *testing.T) {
		bubble(t, Options{Discover: DiscoverSilent}, func(h *harness) {
			h.send(`{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{` + modernMeta(`{}`) + `}}`)
			h.call(`2`, `{"jsonrpc":"2.0","id":2,"method":"ping"}`).wantResult()
			h.quiet()
			h.legacyHandshake(`{}`)
			if st := h.stats(""); st.Discover != 1 {
				t.Errorf("discover count = %d", st.Discover)
			}
		})
	})
	t.Run("garbage-then-error", func(t *testing.T) {
		bubble(t, Options{Discover: DiscoverGarbageThenError, PreinitError: -32000}, func(h *harness) {
			h.send(`{"jsonrpc":"2.0","id":1,"method":"server/discover"}`)
			if l := h.recvLine(); json.Valid([]byte(l)) {
				t.Errorf("want a garbage line, got %q", l)
			}
			h.recv().wantError(-32000)
		})
	})
}

const (
	metaNoCaps  = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}`
	metaOldVers = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25","io.modelcontextprotocol/clientCapabilities":{}}`
)

func TestModernDiscoverMetaVersion(t *testing.T) {
	opts := Options{Era: EraModern, Name: "modern-test", Version: "9.9", TTLMs: 5000}
	bubble(t, opts, func(h *harness) {
		init := h.call(`1`, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",`+
			`"capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`).wantError(CodeMethodNotFound)
		if !strings.Contains(init.str("error", "message"), "2026-07-28") {
			t.Errorf("initialize error does not name the supported versions: %s", init)
		}

		d := h.call(`"d"`, `{"jsonrpc":"2.0","id":"d","method":"server/discover","params":{`+modernMeta(`{}`)+`}}`).wantResult()
		if d.str("resultType") != "complete" || d.json("supportedVersions") != `["2026-07-28"]` ||
			d.str("_meta", "io.modelcontextprotocol/serverInfo", "name") != "modern-test" ||
			d.num("ttlMs") != 5000 || d.str("cacheScope") != "public" ||
			d.json("capabilities", "tools", "listChanged") != "true" {
			t.Errorf("discover: %s", d)
		}

		h.call(`2`, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`).wantError(CodeInvalidParams)
		h.call(`3`, `{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{`+metaNoCaps+`}}`).wantError(CodeInvalidParams)
		bad := h.call(`4`, `{"jsonrpc":"2.0","id":4,"method":"tools/list","params":{`+metaOldVers+`}}`).
			wantError(CodeUnsupportedProtocolVersion)
		if bad.json("error", "data") != `{"requested":"2025-11-25","supported":["2026-07-28"]}` {
			t.Errorf("-32022 data: %s", bad)
		}
		h.call(`5`, `{"jsonrpc":"2.0","id":5,"method":"resources/subscribe","params":{"uri":"test://static/a",`+modernMeta(`{}`)+`}}`).
			wantError(CodeMethodNotFound)
		pong := h.call(`6`, `{"jsonrpc":"2.0","id":6,"method":"ping"}`).wantResult()
		if pong.str("resultType") != "complete" {
			t.Errorf("modern ping: %s", pong)
		}
		h.call(`7`, `{"jsonrpc":"2.0","id":7,"method":"resources/read","params":{"uri":"test://nope",`+modernMeta(`{}`)+`}}`).
			wantError(CodeInvalidParams)
		read := h.call(`8`, `{"jsonrpc":"2.0","id":8,"method":"resources/read","params":{"uri":"test://static/b",`+modernMeta(`{}`)+`}}`).wantResult()
		if read.str("contents", 0, "blob") == "" || read.num("ttlMs") != 5000 {
			t.Errorf("read: %s", read)
		}
		h.call(`9`, `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"nope",`+modernMeta(`{}`)+`}}`).
			wantError(CodeInvalidParams)

		st := h.stats(modernMeta(`{"sampling":{}}`))
		if want := []string{"initialize", "tools/list", "tools/list", "ping"}; !slices.Equal(st.WithoutMeta, want) {
			t.Errorf("withoutMeta = %v, want %v", st.WithoutMeta, want)
		}
		if st.LastMeta == nil || st.LastMeta.Method != "tools/call" || string(st.LastMeta.ClientCapabilities) != `{"sampling":{}}` ||
			string(st.LastMeta.ClientInfo) != `{"name":"harness","version":"0"}` {
			t.Errorf("lastMeta = %+v", st.LastMeta)
		}
	})
}

func TestModernUnsupportedVersionLists(t *testing.T) {
	opts := Options{Era: EraModern, SupportedVersions: []string{"2026-09-99", "2026-07-28"}}
	bubble(t, opts, func(h *harness) {
		meta := strings.Replace(modernMeta(`{}`), "2026-07-28", "2027-01-01", 1)
		bad := h.call(`1`, `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{`+meta+`}}`).
			wantError(CodeUnsupportedProtocolVersion)
		if bad.json("error", "data", "supported") != `["2026-09-99","2026-07-28"]` || bad.str("error", "data", "requested") != "2027-01-01" {
			t.Errorf("-32022: %s", bad)
		}
		// The retry with the client's second choice works.
		h.call(`2`, `{"jsonrpc":"2.0","id":2,"method":"server/discover","params":{`+modernMeta(`{}`)+`}}`).wantResult()
	})
}

func TestModernPaginationEmptyFirstCursor(t *testing.T) {
	opts := Options{Era: EraModern, PageSize: 3, TTLMs: 1234}
	bubble(t, opts, func(h *harness) {
		meta := modernMeta(`{}`)
		first := h.call(`1`, `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{`+meta+`}}`).wantResult()
		if first.json("nextCursor") != `""` {
			t.Fatalf("first nextCursor = %s, want the empty string", first.get("nextCursor"))
		}
		if first.num("ttlMs") != 1234 || first.str("cacheScope") != "public" || first.str("resultType") != "complete" {
			t.Errorf("first page: %s", first)
		}
		names, calls := listAll(h, "tools/list", "tools", meta, func(page int, cursor string) {
			if page == 0 && cursor != "" {
				t.Errorf("first nextCursor = %q", cursor)
			}
			if page > 0 && cursor == "" {
				t.Errorf("page %d nextCursor is empty", page)
			}
		})
		if want := allToolNames(); !slices.Equal(names, want) {
			t.Errorf("tools = %v, want %v", names, want)
		}
		// A legacy-style cursor for page 1 is not valid in the modern era.
		h.call(`2`, `{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"cursor":"page-1",`+meta+`}}`).wantError(CodeInvalidParams)
		tmpl, _ := listAll(h, "resources/templates/list", "resourceTemplates", meta, func(int, string) {})
		if !slices.Equal(tmpl, []string{"item"}) {
			t.Errorf("templates = %v", tmpl)
		}
		if st := h.stats(meta); st.ListCalls["tools/list"] != 1+calls+1 {
			t.Errorf("listCalls = %v, pages %d", st.ListCalls, calls)
		}
	})
}

func TestModernMRTRSample(t *testing.T) {
	bubble(t, Options{Era: EraModern}, func(h *harness) {
		noCaps := modernMeta(`{}`)
		sampling := modernMeta(`{"sampling":{}}`)
		miss := h.call(`"a0"`, `{"jsonrpc":"2.0","id":"a0","method":"tools/call","params":{"name":"sample","arguments":{"prompt":"capital?"},`+noCaps+`}}`).
			wantError(CodeMissingRequiredClientCapability)
		if miss.json("error", "data") != `{"requiredCapabilities":{"sampling":{}}}` {
			t.Errorf("-32021 data: %s", miss)
		}

		first := h.call(`"a1"`, `{"jsonrpc":"2.0","id":"a1","method":"tools/call","params":{"name":"sample","arguments":{"prompt":"capital?"},`+sampling+`}}`).wantResult()
		if first.str("resultType") != "input_required" || first.str("inputRequests", "q1", "method") != "sampling/createMessage" ||
			first.str("inputRequests", "q1", "params", "messages", 0, "content", "text") != "capital?" {
			t.Fatalf("first attempt: %s", first)
		}
		state := first.json("requestState")
		answer := `"inputResponses":{"q1":{"role":"assistant","content":{"type":"text","text":"Paris"},"model":"m","stopReason":"endTurn"}}`
		retry := func(id, args, state, extra string) msg {
			params := `{"name":"sample","arguments":` + args + `,` + sampling
			if state != "" {
				params += `,"requestState":` + state
			}
			if extra != "" {
				params += "," + extra
			}
			return h.call(id, `{"jsonrpc":"2.0","id":`+id+`,"method":"tools/call","params":`+params+`}}`)
		}
		retry(`"a1"`, `{"prompt":"capital?"}`, state, answer).wantError(CodeInvalidParams)      // same id
		retry(`"a2"`, `{"prompt":"capital?"}`, `"forged"`, answer).wantError(CodeInvalidParams) // unknown state
		retry(`"a3"`, `{"prompt":"other"}`, state, answer).wantError(CodeInvalidParams)         // other call
		retry(`"a4"`, `{"prompt":"capital?"}`, "", answer).wantError(CodeInvalidParams)         // responses without state
		again := retry(`"a5"`, `{"prompt":"capital?"}`, state, "").wantResult()                 // no answer: ask again
		if again.str("resultType") != "input_required" || again.json("requestState") == state {
			t.Errorf("retry without inputResponses: %s", again)
		}
		done := retry(`6`, `{ "prompt" : "capital?" }`, state, answer).wantResult()
		if done.str("resultType") != "complete" || done.text() != "Paris" {
			t.Errorf("final result: %s", done)
		}
		wrong := retry(`7`, `{"prompt":"capital?"}`, state, `"inputResponses":{"q1":{"role":"assistant","content":[]}}`)
		wrong.wantError(CodeInvalidParams)
	})
}

func TestModernMRTRElicitRoots(t *testing.T) {
	bubble(t, Options{Era: EraModern}, func(h *harness) {
		meta := modernMeta(`{"elicitation":{},"roots":{}}`)
		first := h.call(`1`, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"elicit","arguments":{"message":"why?"},`+meta+`}}`).wantResult()
		if first.str("inputRequests", "q1", "method") != "elicitation/create" || first.str("inputRequests", "q1", "params", "mode") != "form" ||
			first.str("inputRequests", "q1", "params", "requestedSchema", "properties", "answer", "type") != "string" {
			t.Fatalf("elicit: %s", first)
		}
		state := first.json("requestState")
		for id, tc := range map[int]struct{ response, want string }{
			2: {`{"action":"accept","content":{"answer":"because"}}`, "because"},
			3: {`{"action":"decline"}`, "decline"},
			4: {`{"action":"cancel"}`, "cancel"},
		} {
			res := h.call(fmt.Sprint(id), fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"elicit","arguments":{"message":"why?"},"requestState":%s,"inputResponses":{"q1":%s},%s}}`,
				id, state, tc.response, meta)).wantResult()
			if res.text() != tc.want {
				t.Errorf("elicit %s: %s", tc.response, res)
			}
		}
		roots := h.call(`5`, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"roots",`+meta+`}}`).wantResult()
		if roots.str("inputRequests", "q1", "method") != "roots/list" || roots.has("inputRequests", "q1", "params") {
			t.Fatalf("roots: %s", roots)
		}
		res := h.call(`6`, `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"roots","requestState":`+roots.json("requestState")+
			`,"inputResponses":{"q1":{"roots":[{"uri":"file:///a"},{"uri":"file:///b","name":"b"}]}},`+meta+`}}`).wantResult()
		if res.text() != "file:///a\nfile:///b" {
			t.Errorf("roots result: %s", res)
		}
		// URL-only elicitation does not cover the form the tool needs.
		h.call(`7`, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"elicit","arguments":{"message":"m"},`+
			modernMeta(`{"elicitation":{"url":{}}}`)+`}}`).wantError(CodeMissingRequiredClientCapability)
	})
}

func TestModernSubscriptions(t *testing.T) {
	bubble(t, Options{Era: EraModern}, func(h *harness) {
		meta := modernMeta(`{}`)
		h.send(`{"jsonrpc":"2.0","id":"sub-1","method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true,"promptsListChanged":false,` +
			`"resourceSubscriptions":["test://static/a","test://nope"]},` + meta + `}}`)
		ack := h.recv()
		if ack.str("method") != "notifications/subscriptions/acknowledged" || ack.has("id") ||
			ack.json("params", "_meta", "io.modelcontextprotocol/subscriptionId") != `"sub-1"` ||
			ack.json("params", "notifications") != `{"resourceSubscriptions":["test://static/a"],"toolsListChanged":true}` {
			t.Fatalf("ack: %s", ack)
		}
		h.send(`{"jsonrpc":"2.0","id":7,"method":"subscriptions/listen","params":{"notifications":{"resourcesListChanged":true},` + meta + `}}`)
		if ack := h.recv(); ack.json("params", "_meta", "io.modelcontextprotocol/subscriptionId") != `7` {
			t.Fatalf("second ack: %s", ack)
		}
		h.call(`8`, `{"jsonrpc":"2.0","id":8,"method":"subscriptions/listen","params":{`+meta+`}}`).wantError(CodeInvalidParams)

		h.send(`{"jsonrpc":"2.0","id":"add-1","method":"tools/call","params":{"name":"add_tool","arguments":{"name":"fresh"},` + meta + `}}`)
		changed := h.recv()
		if changed.str("method") != "notifications/tools/list_changed" ||
			changed.json("params", "_meta", "io.modelcontextprotocol/subscriptionId") != `"sub-1"` {
			t.Fatalf("list_changed: %s", changed)
		}
		if h.recv().wantResult().text() != "added tool fresh" {
			t.Error("add_tool reply")
		}
		list := h.call(`9`, `{"jsonrpc":"2.0","id":9,"method":"tools/list","params":{`+meta+`}}`).wantResult()
		if !strings.Contains(list.json("tools"), `"name":"fresh"`) {
			t.Errorf("added tool not listed: %s", list)
		}

		h.send(`{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"touch_resource","arguments":{"uri":"test://static/a"},` + meta + `}}`)
		updated := h.recv()
		if updated.str("method") != "notifications/resources/updated" || updated.str("params", "uri") != "test://static/a" ||
			updated.json("params", "_meta", "io.modelcontextprotocol/subscriptionId") != `"sub-1"` {
			t.Fatalf("updated: %s", updated)
		}
		h.recv().wantID(`10`)

		// Once cancelled, the stream gets nothing more, and its request no reply.
		h.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"sub-1","reason":"done"}}`)
		h.call(`11`, `{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"remove_tool","arguments":{"name":"fresh"},`+meta+`}}`).wantResult()
		h.quiet()

		st := h.stats(meta)
		if st.Subscriptions != 1 || len(st.Cancelled) != 1 || string(st.Cancelled[0]) != `"sub-1"` {
			t.Errorf("stats: %+v", st)
		}
		h.send(`{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"end_subscriptions",` + meta + `}}`)
		end := h.recv()
		end.wantID(`7`)
		if r := end.wantResult(); r.str("resultType") != "complete" || r.json("_meta", "io.modelcontextprotocol/subscriptionId") != `7` {
			t.Errorf("graceful end: %s", end)
		}
		if c := h.recv(); c.str("method") != "notifications/cancelled" || c.json("params", "requestId") != `7` {
			t.Errorf("end cancel: %s", c)
		}
		if h.recv().wantResult().text() != "ended 1 subscriptions" {
			t.Error("end_subscriptions reply")
		}
		h.quiet()
	})
}

func TestLegacyListChangedAndResourceSubscribe(t *testing.T) {
	bubble(t, Options{}, func(h *harness) {
		h.legacyHandshake(`{}`)
		h.call(`1`, `{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"test://static/b"}}`).wantResult()
		h.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add_tool","arguments":{"name":"t2"}}}`)
		if n := h.recv(); n.str("method") != "notifications/tools/list_changed" || n.has("params") {
			t.Errorf("legacy list_changed: %s", n)
		}
		h.recv().wantID(`2`)
		h.send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"touch_resource","arguments":{"uri":"test://static/b"}}}`)
		if n := h.recv(); n.str("method") != "notifications/resources/updated" || n.str("params", "uri") != "test://static/b" {
			t.Errorf("legacy updated: %s", n)
		}
		h.recv().wantID(`3`)
		// Not subscribed to a: no notification.
		h.call(`4`, `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"touch_resource","arguments":{"uri":"test://static/a"}}}`).wantResult()
		h.call(`5`, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"add_tool","arguments":{"name":"t2"}}}`)
		h.quiet()
	})
}

func TestSlowCancelledGetsNoReply(t *testing.T) {
	bubble(t, Options{}, func(h *harness) {
		h.legacyHandshake(`{}`)
		h.send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow","arguments":{"ms":1000}}}`)
		h.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1,"reason":"test"}}`)
		h.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"slow","arguments":{"ms":2000}}}`)
		if r := h.recv(); r.json("id") != `2` || r.wantResult().text() != "slept 2000ms" {
			t.Fatalf("want the reply to 2 only, got %s", r)
		}
		h.send(`{"jsonrpc":"2.0","id":"n","method":"tools/call","params":{"name":"never"}}`)
		h.quiet()
		h.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"n"}}`)
		h.quiet()
		// A cancelled id can be used again.
		h.call(`1`, `{"jsonrpc":"2.0","id":1,"method":"ping"}`).wantResult()
		st := h.stats("")
		var cancelled []string
		for _, id := range st.Cancelled {
			cancelled = append(cancelled, string(id))
		}
		if want := []string{`1`, `"n"`}; !slices.Equal(cancelled, want) {
			t.Errorf("cancelled = %v, want %v", cancelled, want)
		}
	})
}

func TestConcurrentSlowCallsOutOfOrder(t *testing.T) {
	bubble(t, Options{}, func(h *harness) {
		h.legacyHandshake(`{}`)
		start := time.Now()
		h.send(`{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"slow","arguments":{"ms":300}}}`)
		h.send(`{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"slow","arguments":{"ms":100}}}`)
		h.send(`{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"echo","arguments":{"text":"now"}}}`)
		var order []string
		for range 3 {
			order = append(order, h.recv().json("id"))
		}
		if want := []string{`"c"`, `"b"`, `"a"`}; !slices.Equal(order, want) {
			t.Errorf("reply order = %v, want %v", order, want)
		}
		if d := time.Since(start); d != 300*time.Millisecond {
			t.Errorf("took %v of fake time, want 300ms (calls ran concurrently)", d)
		}
		// The same id twice while the first is in flight is refused.
		h.send(`{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"never"}}`)
		h.call(`"x"`, `{"jsonrpc":"2.0","id":"x","method":"ping"}`).wantError(CodeInvalidRequest)
	})
}

func TestLegacyServerToClientRequests(t *testing.T) {
	bubble(t, Options{}, func(h *harness) {
		h.legacyHandshake(`{"sampling":{},"elicitation":{},"roots":{"listChanged":true}}`)

		h.send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample","arguments":{"prompt":"capital?"}}}`)
		req := h.recv()
		if req.str("method") != "sampling/createMessage" || req.json("id") != `"s-1"` ||
			req.str("params", "messages", 0, "content", "text") != "capital?" || req.num("params", "maxTokens") <= 0 {
			t.Fatalf("sampling request: %s", req)
		}
		h.send(`{"jsonrpc":"2.0","id":"s-1","result":{"role":"assistant","content":[{"type":"text","text":"Paris"}],"model":"m"}}`)
		if r := h.recv(); r.json("id") != `1` || r.wantResult().text() != "Paris" {
			t.Fatalf("sample reply: %s", r)
		}

		h.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"sample","arguments":{"prompt":"p"}}}`)
		id := h.recv().json("id")
		h.sendf(`{"jsonrpc":"2.0","id":%s,"error":{"code":-1,"message":"User rejected sampling request"}}`, id)
		res := h.recv().wantResult()
		if res.json("isError") != "true" || !strings.Contains(res.text(), "User rejected") {
			t.Errorf("sample error reply: %s", res)
		}

		h.send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"elicit","arguments":{"message":"why?"}}}`)
		req = h.recv()
		if req.str("method") != "elicitation/create" || req.str("params", "requestedSchema", "properties", "answer", "type") != "string" {
			t.Fatalf("elicit request: %s", req)
		}
		h.sendf(`{"jsonrpc":"2.0","id":%s,"result":{"action":"accept","content":{"answer":"42"}}}`, req.json("id"))
		if h.recv().wantResult().text() != "42" {
			t.Error("elicit reply")
		}

		h.send(`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"roots"}}`)
		req = h.recv()
		if req.str("method") != "roots/list" || req.has("params") {
			t.Fatalf("roots request: %s", req)
		}
		h.sendf(`{"jsonrpc":"2.0","id":%s,"result":{"roots":[{"uri":"file:///x"}]}}`, req.json("id"))
		if h.recv().wantResult().text() != "file:///x" {
			t.Error("roots reply")
		}

		h.send(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"ping_client"}}`)
		req = h.recv()
		if req.str("method") != "ping" {
			t.Fatalf("ping request: %s", req)
		}
		h.sendf(`{"jsonrpc":"2.0","id":%s,"result":{}}`, req.json("id"))
		if h.recv().wantResult().text() != "pong-ok" {
			t.Error("ping_client reply")
		}

		// Cancelled while waiting for the client: no reply, and the late answer is unexpected.
		h.send(`{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"sample","arguments":{"prompt":"p"}}}`)
		late := h.recv().json("id")
		h.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":6}}`)
		h.quiet()
		h.sendf(`{"jsonrpc":"2.0","id":%s,"result":{"role":"assistant","content":{"type":"text","text":"late"},"model":"m"}}`, late)
		h.send(`{"jsonrpc":"2.0","id":"zzz","result":{}}`)
		h.quiet()
		if st := h.stats(""); st.UnexpectedResponses != 2 {
			t.Errorf("unexpectedResponses = %d", st.UnexpectedResponses)
		}
	})
}

func TestLegacyMissingCapability(t *testing.T) {
	bubble(t, Options{}, func(h *harness) {
		h.legacyHandshake(`{}`)
		res := h.call(`1`, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample","arguments":{"prompt":"p"}}}`).wantResult()
		if res.json("isError") != "true" {
			t.Errorf("sample without capability: %s", res)
		}
		h.quiet()
	})
}

func TestNotifyProgressAndLogs(t *testing.T) {
	t.Run("legacy", func(t *testing.T) {
		bubble(t, Options{}, func(h *harness) {
			h.legacyHandshake(`{}`)
			h.send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"notify","arguments":{"n":2},"_meta":{"progressToken":"tok"}}}`)
			var methods []string
			for range 4 {
				m := h.recv()
				methods = append(methods, m.str("method"))
				if m.str("method") == "notifications/progress" && m.json("params", "progressToken") != `"tok"` {
					t.Errorf("progress: %s", m)
				}
			}
			want := []string{"notifications/message", "notifications/progress", "notifications/message", "notifications/progress"}
			if !slices.Equal(methods, want) {
				t.Errorf("notifications = %v", methods)
			}
			h.recv().wantID(`1`)
			h.call(`2`, `{"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"error"}}`).wantResult()
			h.call(`3`, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"notify","arguments":{"n":3}}}`).wantResult()
		})
	})
	t.Run("modern", func(t *testing.T) {
		bubble(t, Options{Era: EraModern}, func(h *harness) {
			// Without a log level only progress; with info, both.
			h.send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"notify","arguments":{"n":1},"_meta":{"progressToken":5,` +
				strings.TrimSuffix(strings.TrimPrefix(modernMeta(`{}`), `"_meta":{`), `}`) + `}}}`)
			if p := h.recv(); p.str("method") != "notifications/progress" || p.json("params", "progressToken") != `5` || p.has("params", "_meta") {
				t.Errorf("progress: %s", p)
			}
			h.recv().wantID(`1`)
			withLevel := strings.Replace(modernMeta(`{}`), `"_meta":{`, `"_meta":{"io.modelcontextprotocol/logLevel":"info",`, 1)
			h.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"notify","arguments":{"n":1},` + withLevel + `}}`)
			if m := h.recv(); m.str("method") != "notifications/message" || m.str("params", "level") != "info" {
				t.Errorf("log: %s", m)
			}
			h.recv().wantID(`2`)
			badLevel := strings.Replace(withLevel, `"info"`, `"loud"`, 1)
			h.call(`3`, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"notify","arguments":{"n":1},`+badLevel+`}}`).
				wantError(CodeInvalidParams)
		})
	})
}

func TestMisbehavingTools(t *testing.T) {
	bubble(t, Options{}, func(h *harness) {
		h.legacyHandshake(`{}`)
		h.send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"garbage"}}`)
		if l := h.recvLine(); json.Valid([]byte(l)) {
			t.Errorf("want a non-JSON line, got %q", l)
		}
		if m := h.recv(); !strings.HasPrefix(m.str("id"), unknownIDBase) {
			t.Errorf("want a reply to an unknown id, got %s", m)
		}
		if h.recv().wantResult().text() != "garbage sent" {
			t.Error("garbage reply")
		}
		huge := h.call(`2`, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"huge","arguments":{"bytes":300000}}}`).wantResult()
		if text := huge.text(); len(text) != 300000 || strings.Trim(text, "x") != "" {
			t.Errorf("huge text has %d bytes", len(text))
		}
		e := h.call(`3`, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"error_tool"}}`).wantError(CodeInternalError)
		if e.str("error", "data", "tool") != "error_tool" {
			t.Errorf("error_tool: %s", e)
		}
		if r := h.call(`4`, `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"is_error"}}`).wantResult(); r.json("isError") != "true" {
			t.Errorf("is_error: %s", r)
		}
		h.call(`5`, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"nope"}}`).wantError(CodeInvalidParams)
		if r := h.call(`6`, `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","arguments":{"text":1}}}`).wantResult(); r.json("isError") != "true" {
			t.Errorf("echo with a bad argument: %s", r)
		}
	})
}

func TestDualEra(t *testing.T) {
	bubble(t, Options{Era: EraDual}, func(h *harness) {
		meta := modernMeta(`{}`)
		d := h.call(`1`, `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{`+meta+`}}`).wantResult()
		if d.str("resultType") != "complete" {
			t.Errorf("discover: %s", d)
		}
		h.call(`2`, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`).wantError(CodeMethodNotFound)
		h.legacyHandshake(`{}`)
		if l := h.call(`3`, `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`).wantResult(); l.has("resultType") {
			t.Errorf("legacy list in dual era: %s", l)
		}
		if l := h.call(`4`, `{"jsonrpc":"2.0","id":4,"method":"tools/list","params":{`+meta+`}}`).wantResult(); l.str("resultType") != "complete" {
			t.Errorf("modern list in dual era: %s", l)
		}
	})
}

func TestGarbageOnStart(t *testing.T) {
	bubble(t, Options{GarbageOnStart: true}, func(h *harness) {
		if l := h.recvLine(); json.Valid([]byte(l)) {
			t.Errorf("first line is JSON: %q", l)
		}
		l := h.recvLine()
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil || m["jsonrpc"] != nil {
			t.Errorf("second line should be JSON but not JSON-RPC: %q", l)
		}
		h.call(`1`, `{"jsonrpc":"2.0","id":1,"method":"ping"}`).wantResult()
	})
}

func TestDeathInProcess(t *testing.T) {
	t.Run("crash tool", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var exits []int
			var stderr bytes.Buffer
			h := startServer(t, Options{Exit: func(code int) { exits = append(exits, code) }, Stderr: &stderr})
			h.legacyHandshake(`{}`)
			h.send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"crash"}}`)
			if l, ok := <-h.lines; ok {
				t.Errorf("crash replied: %s", l)
			}
			var exit *ExitError
			if err := h.stop(); !errors.As(err, &exit) || exit.Code != 3 {
				t.Errorf("Serve returned %v, want exit status 3", err)
			}
			if !slices.Equal(exits, []int{3}) || !strings.Contains(stderr.String(), "crash") {
				t.Errorf("exits %v, stderr %q", exits, stderr.String())
			}
		})
	})
	t.Run("exit after", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := startServer(t, Options{ExitAfter: 5 * time.Second})
			start := time.Now()
			for range h.lines {
			}
			var exit *ExitError
			if err := <-h.done; !errors.As(err, &exit) || exit.Code != 1 || time.Since(start) != 5*time.Second {
				t.Errorf("Serve returned %v after %v", err, time.Since(start))
			}
		})
	})
	t.Run("crash on start", func(t *testing.T) {
		var stderr bytes.Buffer
		h := startServer(t, Options{CrashOnStart: true, StderrSpamKiB: 2, Stderr: &stderr})
		var exit *ExitError
		if err := h.stop(); !errors.As(err, &exit) || exit.Code != 2 {
			t.Errorf("Serve returned %v", err)
		}
		if stderr.Len() < 2048 || !strings.Contains(stderr.String(), "crashing on start") {
			t.Errorf("stderr has %d bytes: %.100q", stderr.Len(), stderr.String())
		}
	})
}

// finishInput closes the server's input and returns what it still wrote,
// Serve's error, and how much (fake) time that took.
func (h *harness) finishInput() (lines []string, err error, took time.Duration) {
	start := time.Now()
	h.in.Close()
	for l := range h.lines {
		lines = append(lines, l)
	}
	return lines, <-h.done, time.Since(start)
}

func TestEOFDrain(t *testing.T) {
	const slow = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow","arguments":{"ms":100}}}`
	t.Run("in-flight reply still sent", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := startServer(t, Options{})
			h.legacyHandshake(`{}`)
			h.send(slow)
			h.send(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
			lines, err, took := h.finishInput()
			if len(lines) != 2 || !strings.Contains(lines[1], `"slept 100ms"`) || err != nil || took != 100*time.Millisecond {
				t.Errorf("after EOF: %q, %v, after %v", lines, err, took)
			}
		})
	})
	t.Run("never is cut off after the grace", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := startServer(t, Options{EOFGrace: time.Second})
			h.legacyHandshake(`{}`)
			h.send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"never"}}`)
			lines, err, took := h.finishInput()
			if len(lines) != 0 || err != nil || took != time.Second {
				t.Errorf("after EOF: %q, %v, after %v", lines, err, took)
			}
		})
	})
	t.Run("no grace", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := startServer(t, Options{EOFGrace: -1})
			h.legacyHandshake(`{}`)
			h.send(slow)
			lines, err, took := h.finishInput()
			if len(lines) != 0 || err != nil || took != 0 {
				t.Errorf("after EOF: %q, %v, after %v", lines, err, took)
			}
		})
	})
}

func TestEnv(t *testing.T) {
	opts := Options{
		Era: EraModern, SupportedVersions: []string{"2026-09-99", "2026-07-28"}, PreinitError: -32600,
		Discover: DiscoverSilent, Name: "n", Version: "v", Tools: []string{"a", "b"}, PageSize: 2, TTLMs: 60000,
		GarbageOnStart: true, ExitAfter: 1500 * time.Millisecond, CrashOnStart: true, StderrSpamKiB: 4,
		EOFGrace: -time.Millisecond,
	}
	env := map[string]string{}
	for _, kv := range opts.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	if env[EnvServer] != "1" {
		t.Errorf("Environ lacks %s=1: %v", EnvServer, env)
	}
	got, err := ParseEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil || !reflect.DeepEqual(got, opts) {
		t.Errorf("round trip: %+v, %v; want %+v", got, err, opts)
	}
	if got, err := ParseEnv(func(string) (string, bool) { return "", false }); err != nil || !reflect.DeepEqual(got, Options{}) {
		t.Errorf("empty environment: %+v, %v", got, err)
	}
	for _, bad := range []map[string]string{
		{EnvEra: "future"},
		{EnvPageSize: "two"},
		{EnvGarbageOnStart: "yes please"},
		{EnvDiscover: "shout"},
		{EnvTools: "echo"},
		{EnvTools: "a,a"},
		{EnvPageSize: "-1"},
	} {
		if _, err := ParseEnv(func(k string) (string, bool) { v, ok := bad[k]; return v, ok }); !errors.Is(err, ErrBadOptions) {
			t.Errorf("ParseEnv(%v) = %v, want ErrBadOptions", bad, err)
		}
	}
	if err := Serve(strings.NewReader(""), &bytes.Buffer{}, Options{Era: "nope"}); !errors.Is(err, ErrBadOptions) {
		t.Errorf("Serve with a bad era: %v", err)
	}
}

// TestLegacyVersionNegotiation: initialize is answered with the revision the
// client asked for when the server knows it (older clients refuse any
// other), else with the newest.
func TestLegacyVersionNegotiation(t *testing.T) {
	for requested, want := range map[string]string{"2025-06-18": "2025-06-18", "2024-11-05": "2024-11-05",
		"2025-11-25": LegacyVersion, "2030-01-01": LegacyVersion, ModernVersion: LegacyVersion} {
		bubble(t, Options{}, func(h *harness) {
			init := h.call(`1`, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"`+requested+`",`+
				`"capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`).wantResult()
			if v := init.str("protocolVersion"); v != want {
				t.Errorf("asked %s: protocolVersion = %q, want %q", requested, v, want)
			}
		})
	}
}
