/*
 * tinymcp: a small MCP server on stdio (protocol 2025-11-25, the legacy
 * era) for scale tests, where a thousand of them run at once and a Go
 * server's few MB of memory and milliseconds of start would measure the
 * servers rather than gw. It speaks real MCP: initialize,
 * notifications/initialized, ping, tools/list (13 tools: echo and
 * tool01..tool12, each with an input schema) and tools/call; server/discover
 * and every other request get -32601, as from any legacy server.
 *
 * Requests are newline-delimited JSON-RPC. The scanner below reads members
 * by exact key and skips values without decoding them; echo answers with its
 * "text" argument copied as the JSON string it was sent as.
 *
 * Usage: tinymcp [--name NAME] [--delay-ms N]
 *   --delay-ms sleeps before reading anything: a server with a slow start of
 *   its own (an interpreter loading, npx resolving a package).
 *
 * Built by mcptest.TinyServer with cc -O2.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *name = "tinymcp";

/* skip_ws returns p past JSON whitespace. */
static const char *skip_ws(const char *p, const char *end) {
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

/* skip_value returns p past one JSON value, or NULL if it is malformed. */
static const char *skip_value(const char *p, const char *end, int depth) {
	p = skip_ws(p, end);
	if (p >= end || depth > 64)
		return NULL;
	switch (*p) {
	case '"':
		for (p++; p < end; p++) {
			if (*p == '\\') {
				p++;
			} else if (*p == '"') {
				return p + 1;
			}
		}
		return NULL;
	case '{':
	case '[': {
		char close = *p == '{' ? '}' : ']';
		p = skip_ws(p + 1, end);
		if (p < end && *p == close)
			return p + 1;
		for (;;) {
			if (close == '}') {
				p = skip_value(p, end, depth + 1); /* the key */
				if (!p)
					return NULL;
				p = skip_ws(p, end);
				if (p >= end || *p != ':')
					return NULL;
				p++;
			}
			p = skip_value(p, end, depth + 1);
			if (!p)
				return NULL;
			p = skip_ws(p, end);
			if (p < end && *p == ',') {
				p++;
				continue;
			}
			if (p < end && *p == close)
				return p + 1;
			return NULL;
		}
	}
	default: /* number, true, false, null */
		if (!strchr("-0123456789tfn", *p))
			return NULL;
		while (p < end && !strchr(",}] \t\r\n", *p))
			p++;
		return p;
	}
}

/* member finds key in the object at obj; *vend gets the end of its value. */
static const char *member(const char *obj, const char *end, const char *key, const char **vend) {
	size_t klen = strlen(key);
	const char *p = skip_ws(obj, end);
	if (p >= end || *p != '{')
		return NULL;
	p = skip_ws(p + 1, end);
	while (p < end && *p == '"') {
		const char *k = p + 1;
		const char *kend = skip_value(p, end, 0);
		if (!kend)
			return NULL;
		p = skip_ws(kend, end);
		if (p >= end || *p != ':')
			return NULL;
		const char *v = skip_ws(p + 1, end);
		const char *ve = skip_value(v, end, 0);
		if (!ve)
			return NULL;
		if ((size_t)(kend - 1 - k) == klen && memcmp(k, key, klen) == 0) {
			*vend = ve;
			return v;
		}
		p = skip_ws(ve, end);
		if (p < end && *p == ',')
			p = skip_ws(p + 1, end);
	}
	return NULL;
}

/* is_string reports whether [v, ve) is the JSON string s. */
static int is_string(const char *v, const char *ve, const char *s) {
	size_t n = strlen(s);
	return v && (size_t)(ve - v) == n + 2 && v[0] == '"' && memcmp(v + 1, s, n) == 0;
}

static void reply(const char *id, const char *idend, const char *result) {
	printf("{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"result\":%s}\n", (int)(idend - id), id, result);
}

static void reply_error(const char *id, const char *idend, int code, const char *msg) {
	printf("{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"error\":{\"code\":%d,\"message\":\"%s\"}}\n",
	       (int)(idend - id), id, code, msg);
}

static void list_tools(const char *id, const char *idend) {
	printf("{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"result\":{\"tools\":["
	       "{\"name\":\"echo\",\"description\":\"Echoes its text argument.\","
	       "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}},\"required\":[\"text\"]},"
	       "\"annotations\":{\"readOnlyHint\":true}}",
	       (int)(idend - id), id);
	for (int i = 1; i <= 12; i++)
		printf(",{\"name\":\"tool%02d\",\"description\":\"Tool %d of %s: answers with its name.\","
		       "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\"}}}}",
		       i, i, name);
	printf("]}}\n");
}

static void call_tool(const char *id, const char *idend, const char *params, const char *pend) {
	const char *ve, *tool = params ? member(params, pend, "name", &ve) : NULL;
	if (!tool || *tool != '"') {
		reply_error(id, idend, -32602, "params.name is missing");
		return;
	}
	if (is_string(tool, ve, "echo")) {
		const char *aend, *args = member(params, pend, "arguments", &aend);
		const char *tend, *text = args ? member(args, aend, "text", &tend) : NULL;
		if (!text || *text != '"') {
			reply_error(id, idend, -32602, "echo needs a text argument");
			return;
		}
		printf("{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"result\":{\"content\":[{\"type\":\"text\",\"text\":%.*s}]}}\n",
		       (int)(idend - id), id, (int)(tend - text), text);
		return;
	}
	int n = 0;
	if (sscanf(tool, "\"tool%2d\"", &n) == 1 && n >= 1 && n <= 12 && ve - tool == 8) {
		printf("{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"tool%02d of %s\"}]}}\n",
		       (int)(idend - id), id, n, name);
		return;
	}
	reply_error(id, idend, -32602, "unknown tool");
}

static void handle(const char *line, const char *end) {
	const char *idend, *mend, *pend;
	const char *id = member(line, end, "id", &idend);
	const char *method = member(line, end, "method", &mend);
	const char *params = member(line, end, "params", &pend);
	if (!method)
		return; /* a response to us: we send no requests */
	if (!id)
		return; /* a notification: notifications/initialized, cancelled */
	if (is_string(method, mend, "initialize")) {
		char res[512];
		snprintf(res, sizeof res,
		         "{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{\"tools\":{\"listChanged\":false}},"
		         "\"serverInfo\":{\"name\":\"%s\",\"version\":\"1.0.0\"}}",
		         name);
		reply(id, idend, res);
	} else if (is_string(method, mend, "ping")) {
		reply(id, idend, "{}");
	} else if (is_string(method, mend, "tools/list")) {
		list_tools(id, idend);
	} else if (is_string(method, mend, "tools/call")) {
		call_tool(id, idend, params, pend);
	} else {
		reply_error(id, idend, -32601, "Method not found");
	}
}

int main(int argc, char **argv) {
	long delay = 0;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--name") == 0)
			name = argv[i + 1];
		else if (strcmp(argv[i], "--delay-ms") == 0)
			delay = atol(argv[i + 1]);
	}
	for (const char *c = name; *c; c++) {
		if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20) {
			fprintf(stderr, "tinymcp: --name must need no JSON escaping\n");
			return 2;
		}
	}
	if (delay > 0) {
		struct timespec ts = {delay / 1000, (delay % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, stdin)) > 0) {
		handle(line, line + n);
		fflush(stdout);
	}
	free(line);
	return 0;
}
