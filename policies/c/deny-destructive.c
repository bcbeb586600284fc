/*
 * deny-destructive: a gw authorize policy written in C, to show that the
 * policy ABI (docs/POLICY_ABI.md) is not tied to Go. It denies a call when
 * the tool's annotations say "destructiveHint": true and allows every other
 * call. (MCP's default for an absent destructiveHint is true; this policy
 * only acts on tools that declare it, so unannotated tools stay callable.
 * Use read-only for the strict reading.)
 *
 * Built with clang + wasi-libc as a WASI reactor:
 *   clang --target=wasm32-wasi -mexec-model=reactor -O2 \
 *         -o deny-destructive.wasm c/deny-destructive.c -Wl,--strip-all
 *
 * Like the Go kit, it validates the whole input and fails closed: bad JSON,
 * a duplicate member it reads or a non-boolean destructiveHint is a deny.
 * Keys are compared as written (gw never escapes its ASCII keys).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT(name) __attribute__((export_name(name)))

/* The input buffer gw_alloc hands out, reused and grown; the output buffer
 * that holds a deny until the next call. */
static uint8_t *in_buf;
static uint32_t in_cap;
static uint8_t *out_buf;
static uint32_t out_cap;

static uint64_t pack(const void *p, uint32_t n) {
    return ((uint64_t)(uintptr_t)p << 32) | n;
}

static uint64_t pack_str(const char *s) { return pack(s, (uint32_t)strlen(s)); }

EXPORT("gw_abi_version")
int32_t gw_abi_version(void) { return 1; }

EXPORT("gw_alloc")
uint32_t gw_alloc(int32_t size) {
    if (size < 0)
        return 0;
    uint32_t need = size > 0 ? (uint32_t)size : 1;
    if (need > in_cap) {
        uint32_t cap = in_cap > need / 2 ? in_cap * 2 : need;
        if (cap < 4096)
            cap = 4096;
        free(in_buf); /* the old contents are never needed */
        in_buf = malloc(cap);
        in_cap = in_buf ? cap : 0;
        if (!in_buf)
            return 0;
    }
    return (uint32_t)(uintptr_t)in_buf;
}

/* input checks that the host wrote where gw_alloc pointed. */
static int input(uint32_t ptr, uint32_t n, const uint8_t **data) {
    *data = in_buf;
    return n == 0 || (in_buf && ptr == (uint32_t)(uintptr_t)in_buf && n <= in_cap);
}

/* ---- a small validating JSON scanner ------------------------------------ */

typedef struct {
    const uint8_t *p, *end;
    const char *err; /* first error, NULL when none */
} scanner;

#define MAX_DEPTH 1000

static int fail(scanner *s, const char *msg) {
    if (!s->err)
        s->err = msg;
    return 0;
}

static void ws(scanner *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int peek(scanner *s, uint8_t c) {
    ws(s);
    return s->p < s->end && *s->p == c;
}

static int is_hex(uint8_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* scan_string consumes a string and returns its raw content (still
 * escaped, so it is a valid JSON string body). */
static int scan_string(scanner *s, const uint8_t **start, size_t *len) {
    ws(s);
    if (s->p >= s->end || *s->p != '"')
        return fail(s, "expected a string");
    const uint8_t *b = ++s->p;
    while (s->p < s->end) {
        uint8_t c = *s->p;
        if (c == '"') {
            if (start) {
                *start = b;
                *len = (size_t)(s->p - b);
            }
            s->p++;
            return 1;
        }
        if (c < 0x20)
            return fail(s, "control character in string");
        if (c == '\\') {
            if (s->end - s->p < 2)
                break;
            switch (s->p[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                s->p += 2;
                continue;
            case 'u':
                if (s->end - s->p < 6 || !is_hex(s->p[2]) || !is_hex(s->p[3]) || !is_hex(s->p[4]) || !is_hex(s->p[5]))
                    return fail(s, "invalid unicode escape");
                s->p += 6;
                continue;
            default:
                return fail(s, "invalid escape");
            }
        }
        s->p++;
    }
    return fail(s, "unterminated string");
}

static int digits(scanner *s) {
    const uint8_t *b = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return s->p > b;
}

static int scan_number(scanner *s) {
    if (s->p < s->end && *s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0')
        s->p++;
    else if (!digits(s))
        return fail(s, "invalid number");
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (!digits(s))
            return fail(s, "invalid number");
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (!digits(s))
            return fail(s, "invalid number");
    }
    return 1;
}

static int literal(scanner *s, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0)
        return fail(s, "invalid literal");
    s->p += n;
    return 1;
}

/* member_key consumes a key and its colon. */
static int member_key(scanner *s, const uint8_t **key, size_t *len) {
    if (!scan_string(s, key, len))
        return 0;
    if (!peek(s, ':'))
        return fail(s, "expected ':'");
    s->p++;
    return 1;
}

/* skip_value consumes one value of any kind, iteratively. */
static int skip_value(scanner *s) {
    uint8_t stack[MAX_DEPTH];
    int depth = 0;
    for (;;) {
        ws(s);
        if (s->p >= s->end)
            return fail(s, "unexpected end of input");
        switch (*s->p) {
        case '{':
        case '[': {
            uint8_t close = *s->p == '{' ? '}' : ']';
            s->p++;
            if (peek(s, close)) {
                s->p++;
                break;
            }
            if (depth == MAX_DEPTH)
                return fail(s, "nested too deeply");
            stack[depth++] = close;
            if (close == '}' && !member_key(s, NULL, NULL))
                return 0;
            continue;
        }
        case '"':
            if (!scan_string(s, NULL, NULL))
                return 0;
            break;
        case 't':
            if (!literal(s, "true"))
                return 0;
            break;
        case 'f':
            if (!literal(s, "false"))
                return 0;
            break;
        case 'n':
            if (!literal(s, "null"))
                return 0;
            break;
        default:
            if (*s->p != '-' && (*s->p < '0' || *s->p > '9'))
                return fail(s, "invalid character looking for a value");
            if (!scan_number(s))
                return 0;
        }
        /* after a value: close containers or go to the next element */
        for (;;) {
            if (depth == 0)
                return 1;
            ws(s);
            if (s->p >= s->end)
                return fail(s, "unexpected end of input");
            if (*s->p == stack[depth - 1]) {
                s->p++;
                depth--;
                continue;
            }
            if (*s->p != ',')
                return fail(s, "expected ',' or a closing bracket");
            s->p++;
            if (stack[depth - 1] == '}' && !member_key(s, NULL, NULL))
                return 0;
            break;
        }
    }
}

static int key_is(const uint8_t *k, size_t n, const char *want) {
    return n == strlen(want) && memcmp(k, want, n) == 0;
}

/* object walks the members of an object, calling member for each; member
 * must consume the value. */
typedef int (*member_fn)(scanner *s, const uint8_t *key, size_t len, void *ctx);

static int object(scanner *s, member_fn member, void *ctx) {
    if (!peek(s, '{'))
        return fail(s, "expected an object");
    s->p++;
    if (peek(s, '}')) {
        s->p++;
        return 1;
    }
    for (;;) {
        const uint8_t *key;
        size_t len;
        if (!member_key(s, &key, &len) || !member(s, key, len, ctx))
            return 0;
        ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == '}') {
            s->p++;
            return 1;
        }
        return fail(s, "expected ',' or '}'");
    }
}

/* ---- the policy ---------------------------------------------------------- */

typedef struct {
    const uint8_t *name; /* raw (escaped) exposed name */
    size_t name_len;
    int seen_name, seen_annotations, seen_hint;
    int destructive; /* destructiveHint is true */
} call;

static int annotation_member(scanner *s, const uint8_t *key, size_t len, void *ctx) {
    call *c = ctx;
    if (!key_is(key, len, "destructiveHint"))
        return skip_value(s);
    if (c->seen_hint++)
        return fail(s, "duplicate member annotations.destructiveHint");
    ws(s);
    if (s->p < s->end && *s->p == 't')
        return (c->destructive = literal(s, "true"));
    if (s->p < s->end && *s->p == 'f')
        return literal(s, "false");
    if (s->p < s->end && *s->p == 'n')
        return literal(s, "null");
    return fail(s, "annotations.destructiveHint: expected a boolean");
}

static int top_member(scanner *s, const uint8_t *key, size_t len, void *ctx) {
    call *c = ctx;
    if (key_is(key, len, "name")) {
        if (c->seen_name++)
            return fail(s, "duplicate member name");
        if (peek(s, 'n'))
            return literal(s, "null");
        return scan_string(s, &c->name, &c->name_len);
    }
    if (key_is(key, len, "annotations")) {
        if (c->seen_annotations++)
            return fail(s, "duplicate member annotations");
        if (peek(s, 'n'))
            return literal(s, "null");
        if (!peek(s, '{'))
            return fail(s, "annotations: expected an object");
        return object(s, annotation_member, c);
    }
    return skip_value(s);
}

/* out appends to the output buffer. */
static uint32_t out_len;

static int out_add(const void *b, size_t n) {
    if (out_len + n > out_cap) {
        size_t cap = (out_len + n) * 2;
        uint8_t *nb = realloc(out_buf, cap);
        if (!nb)
            return 0;
        out_buf = nb;
        out_cap = (uint32_t)cap;
    }
    memcpy(out_buf + out_len, b, n);
    out_len += (uint32_t)n;
    return 1;
}

static int out_str(const char *s) { return out_add(s, strlen(s)); }

static const char allow_json[] = "{\"allow\":true}";
static const char oom_json[] = "{\"allow\":false,\"reason\":\"deny-destructive policy: out of memory\"}";

/* deny answers with a reason built from a prefix, a JSON string body (raw,
 * already escaped) and a suffix. The scanner's error texts need no escaping. */
static uint64_t deny(const char *prefix, const void *body, size_t body_len, const char *suffix) {
    out_len = 0;
    if (!out_str("{\"allow\":false,\"reason\":\"deny-destructive policy: ") || !out_str(prefix) ||
        !out_add(body, body_len) || !out_str(suffix) || !out_str("\"}"))
        return pack_str(oom_json);
    return pack(out_buf, out_len);
}

EXPORT("gw_authorize")
uint64_t gw_authorize(uint32_t ptr, uint32_t n) {
    const uint8_t *data;
    if (!input(ptr, n, &data))
        return deny("input is not in the gw_alloc buffer", "", 0, "");
    scanner s = {data, data + n, NULL};
    call c = {0};
    if (object(&s, top_member, &c)) {
        ws(&s);
        if (s.p != s.end)
            fail(&s, "data after the input object");
    }
    if (s.err)
        return deny("bad input: ", s.err, strlen(s.err), "");
    if (c.destructive)
        return deny("tool \\\"", c.name, c.name_len, "\\\" is marked destructive");
    return pack_str(allow_json);
}

/* gw_init: this policy takes no config; accept "", null or {}. */
EXPORT("gw_init")
uint64_t gw_init(uint32_t ptr, uint32_t n) {
    const uint8_t *data;
    if (!input(ptr, n, &data))
        return pack_str("{\"error\":\"gw_init: input is not in the gw_alloc buffer\"}");
    scanner s = {data, data + n, NULL};
    ws(&s);
    if (s.p == s.end)
        return pack_str("{\"ok\":true}");
    if (peek(&s, 'n'))
        literal(&s, "null");
    else if (peek(&s, '{')) {
        s.p++;
        if (peek(&s, '}'))
            s.p++;
        else
            fail(&s, "not empty");
    } else
        fail(&s, "not an object");
    ws(&s);
    if (s.err || s.p != s.end)
        return pack_str("{\"error\":\"this policy takes no config\"}");
    return pack_str("{\"ok\":true}");
}
