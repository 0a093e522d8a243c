/* The C SDK: the component's exports over `cairn_the_operator`, state, timers, output, and
 * JSON helpers. See cairn_operator.h. */
#include "cairn_operator.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "operator_timers.h"

extern const cairn_operator cairn_the_operator;

typedef operator_timers_string_t wstr;
typedef exports_cairn_operator_operator_event_t wevent;

struct cairn_out {
    wevent *ptr;
    size_t len, cap;
};

/* The key whose scope CAIRN_KEY means, while an event or a timer is handled. */
static bool has_current;
static wstr current;
static char message[1024];

cairn_str cairn_cstr(const char *s) { return (cairn_str){s, strlen(s)}; }
cairn_scope cairn_scope_of(cairn_str key) { return (cairn_scope){2, key}; }

static wstr w(cairn_str s) { return (wstr){(uint8_t *)s.ptr, s.len}; }
static wstr wc(const char *s) { return (wstr){(uint8_t *)s, strlen(s)}; }

/* The scope argument of a state call: NULL is the operator-wide scope. */
static wstr *scope_arg(cairn_scope s, wstr *slot) {
    if (s.kind == 0) return has_current ? &current : NULL;
    if (s.kind == 1) return NULL;
    *slot = w(s.key);
    return slot;
}

static cairn_status refused(cairn_operator_state_state_error_t *e) {
    cairn_status st = e->tag == 0 ? CAIRN_QUOTA_EXCEEDED : CAIRN_INVALID;
    wstr *m = e->tag == 0 ? &e->val.quota_exceeded : &e->val.invalid;
    snprintf(message, sizeof message, "%s: %.*s", st == CAIRN_QUOTA_EXCEEDED ? "quota-exceeded" : "invalid",
             (int)m->len, (const char *)m->ptr);
    cairn_operator_state_state_error_free(e);
    return st;
}

const char *cairn_error_message(void) { return message; }

cairn_status cairn_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return CAIRN_FAILED;
}

void cairn_log(int level, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    wstr m = wc(buf);
    cairn_operator_log_log((cairn_operator_log_level_t)(level < 0 ? 0 : level > 4 ? 4 : level), &m);
}

bool cairn_get(cairn_scope s, const char *name, cairn_str *value) {
    wstr slot, k = wc(name);
    operator_timers_list_u8_t ret;
    if (!cairn_operator_state_get(scope_arg(s, &slot), &k, &ret)) return false;
    *value = (cairn_str){(const char *)ret.ptr, ret.len};
    return true;
}

void cairn_free(cairn_str value) { free((void *)value.ptr); }

cairn_status cairn_set(cairn_scope s, const char *name, const void *data, size_t len) {
    wstr slot, k = wc(name);
    operator_timers_list_u8_t v = {(uint8_t *)data, len};
    cairn_operator_state_state_error_t err;
    if (!cairn_operator_state_set(scope_arg(s, &slot), &k, &v, &err)) return refused(&err);
    return CAIRN_OK;
}

bool cairn_remove(cairn_scope s, const char *name) {
    wstr slot, k = wc(name);
    return cairn_operator_state_remove(scope_arg(s, &slot), &k);
}

bool cairn_exists(cairn_scope s, const char *name) {
    wstr slot, k = wc(name);
    return cairn_operator_state_exists(scope_arg(s, &slot), &k);
}

int64_t cairn_get_i64(cairn_scope s, const char *name, int64_t dflt) {
    cairn_str v;
    if (!cairn_get(s, name, &v)) return dflt;
    char buf[32];
    size_t n = v.len < sizeof buf - 1 ? v.len : sizeof buf - 1;
    memcpy(buf, v.ptr, n);
    buf[n] = 0;
    cairn_free(v);
    return strtoll(buf, NULL, 10);
}

cairn_status cairn_set_i64(cairn_scope s, const char *name, int64_t v) {
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%lld", (long long)v);
    return cairn_set(s, name, buf, (size_t)n);
}

cairn_status cairn_incr(cairn_scope s, const char *name, int64_t by, int64_t *result) {
    int64_t n = cairn_get_i64(s, name, 0) + by;
    cairn_status st = cairn_set_i64(s, name, n);
    if (st == CAIRN_OK && result) *result = n;
    return st;
}

cairn_status cairn_timer_register(cairn_str key, int64_t ts) {
    wstr k = w(key);
    cairn_operator_timers_state_error_t err;
    if (!cairn_operator_timers_register(&k, ts, &err)) return refused(&err);
    return CAIRN_OK;
}

bool cairn_timer_delete(cairn_str key, int64_t ts) {
    wstr k = w(key);
    return cairn_operator_timers_delete(&k, ts);
}

bool cairn_watermark(int64_t *wm) { return cairn_operator_timers_current_watermark(wm); }

static uint8_t *copy(const void *p, size_t n) {
    uint8_t *c = malloc(n ? n : 1);
    if (c && n) memcpy(c, p, n);
    return c;
}

cairn_status cairn_emit(cairn_out *out, cairn_str key, int64_t ts, cairn_str value) {
    if (out->len == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 64;
        wevent *p = realloc(out->ptr, cap * sizeof *p);
        if (!p) return cairn_fail("out of memory emitting an event");
        out->ptr = p;
        out->cap = cap;
    }
    wevent *e = &out->ptr[out->len++];
    e->key = (wstr){copy(key.ptr, key.len), key.len};
    e->ts = ts;
    e->value = (operator_timers_list_u8_t){copy(value.ptr, value.len), value.len};
    return CAIRN_OK;
}

cairn_status cairn_emit_str(cairn_out *out, cairn_str key, int64_t ts, const char *value) {
    return cairn_emit(out, key, ts, cairn_cstr(value));
}

/* The end of a call: its events, or its error (and the events are dropped). */
static bool finish(cairn_status st, cairn_out *out, exports_cairn_operator_operator_list_event_t *ret, wstr *err,
                   const char *call) {
    has_current = false;
    if (st == CAIRN_OK) {
        ret->ptr = out->ptr;
        ret->len = out->len;
        return true;
    }
    exports_cairn_operator_operator_list_event_t all = {out->ptr, out->len};
    exports_cairn_operator_operator_list_event_free(&all);
    char text[1200];
    snprintf(text, sizeof text, "%s failed: %s", call, message[0] ? message : "an error status without a message");
    operator_timers_string_dup(err, text);
    return false;
}

bool exports_cairn_operator_operator_init(wstr *config, wstr *err) {
    cairn_status st = CAIRN_OK;
    message[0] = 0;
    if (cairn_the_operator.init) st = cairn_the_operator.init((cairn_str){(const char *)config->ptr, config->len});
    operator_timers_string_free(config);
    if (st != CAIRN_OK) {
        char text[1200];
        snprintf(text, sizeof text, "init failed: %s", message[0] ? message : "an error status without a message");
        operator_timers_string_dup(err, text);
        return false;
    }
    return true;
}

bool exports_cairn_operator_operator_process(exports_cairn_operator_operator_list_event_t *batch,
                                             exports_cairn_operator_operator_list_event_t *ret, wstr *err) {
    cairn_out out = {0};
    cairn_status st = CAIRN_OK;
    message[0] = 0;
    if (cairn_the_operator.on_event) {
        for (size_t i = 0; i < batch->len && st == CAIRN_OK; i++) {
            wevent *e = &batch->ptr[i];
            cairn_event ev = {{(const char *)e->key.ptr, e->key.len}, e->ts, {(const char *)e->value.ptr, e->value.len}};
            current = e->key;
            has_current = true;
            st = cairn_the_operator.on_event(&ev, &out);
        }
    }
    bool ok = finish(st, &out, ret, err, "on_event");
    exports_cairn_operator_operator_list_event_free(batch);
    return ok;
}

bool exports_cairn_operator_operator_on_watermark(int64_t watermark, exports_cairn_operator_operator_list_event_t *ret,
                                                  wstr *err) {
    cairn_out out = {0};
    message[0] = 0;
    cairn_status st = cairn_the_operator.on_watermark ? cairn_the_operator.on_watermark(watermark, &out) : CAIRN_OK;
    return finish(st, &out, ret, err, "on_watermark");
}

bool exports_cairn_operator_timer_handler_on_timers(exports_cairn_operator_timer_handler_list_timer_t *fired,
                                                    exports_cairn_operator_timer_handler_list_event_t *ret, wstr *err) {
    cairn_out out = {0};
    cairn_status st = CAIRN_OK;
    message[0] = 0;
    if (!cairn_the_operator.on_timer && fired->len) st = cairn_fail("timers fired but the operator has no on_timer");
    for (size_t i = 0; i < fired->len && st == CAIRN_OK; i++) {
        exports_cairn_operator_timer_handler_timer_t *t = &fired->ptr[i];
        current = t->key;
        has_current = true;
        st = cairn_the_operator.on_timer((cairn_str){(const char *)t->key.ptr, t->key.len}, t->ts, &out);
    }
    exports_cairn_operator_operator_list_event_t r;
    bool ok = finish(st, &out, &r, err, "on_timer");
    if (ok) {
        ret->ptr = r.ptr;
        ret->len = r.len;
    }
    exports_cairn_operator_timer_handler_list_timer_free(fired);
    return ok;
}

/* ---- JSON ---- */

size_t cairn_fmt_f64(char *buf, double x) {
    if (x != x || x - x != 0) return (size_t)sprintf(buf, "null");
    if (x == 0) return (size_t)sprintf(buf, "%s", __builtin_signbit(x) ? "-0.0" : "0.0");
    /* The shortest %e that reads back: its digits and exponent. */
    char e[40];
    for (int p = 0; p < 17; p++) {
        snprintf(e, sizeof e, "%.*e", p, x);
        if (strtod(e, NULL) == x) break;
    }
    char digits[24];
    size_t n = 0;
    const char *c = e;
    bool neg = *c == '-';
    if (neg) c++;
    for (; *c && *c != 'e'; c++)
        if (*c >= '0' && *c <= '9') digits[n++] = *c;
    int exp10 = atoi(c + 1);
    while (n > 1 && digits[n - 1] == '0') n--;
    digits[n] = 0;
    int kk = exp10 + 1; /* value = 0.<digits> * 10^kk */
    int k = kk - (int)n;  /* value = <digits> * 10^k */
    char *o = buf;
    if (neg) *o++ = '-';
    if (k >= 0 && kk <= 16) {
        o += sprintf(o, "%s", digits);
        for (int i = 0; i < k; i++) *o++ = '0';
        o += sprintf(o, ".0");
    } else if (kk > 0 && kk <= 16) {
        o += sprintf(o, "%.*s.%s", kk, digits, digits + kk);
    } else if (kk > -5 && kk <= 0) {
        o += sprintf(o, "0.");
        for (int i = 0; i < -kk; i++) *o++ = '0';
        o += sprintf(o, "%s", digits);
    } else {
        int ex = kk - 1;
        if (n == 1)
            o += sprintf(o, "%c", digits[0]);
        else
            o += sprintf(o, "%c.%s", digits[0], digits + 1);
        o += sprintf(o, ex > 0 ? "e+%d" : "e%d", ex);
    }
    *o = 0;
    return (size_t)(o - buf);
}

static const char *ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* Past the string starting at p (on its opening quote); NULL if malformed. */
static const char *skip_string(const char *p, const char *end) {
    for (p++; p < end; p++) {
        if (*p == '\\') p++;
        else if (*p == '"') return p + 1;
    }
    return NULL;
}

/* Past the value starting at p; NULL if malformed. */
static const char *skip_value(const char *p, const char *end) {
    p = ws(p, end);
    if (p >= end) return NULL;
    if (*p == '"') return skip_string(p, end);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        for (; p < end; p++) {
            if (*p == '"') {
                p = skip_string(p, end);
                if (!p) return NULL;
                p--;
            } else if (*p == '{' || *p == '[') depth++;
            else if (*p == '}' || *p == ']') {
                if (--depth == 0) return p + 1;
            }
        }
        return NULL;
    }
    while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\t' && *p != '\r') p++;
    return p;
}

/* A whole string as a number (what Rust's f64 parsing accepts, near enough). */
static bool parse_number(const char *p, size_t n, double *x) {
    char buf[64];
    while (n && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\n' || p[n - 1] == '\r')) n--;
    if (!n || n >= sizeof buf) return false;
    memcpy(buf, p, n);
    buf[n] = 0;
    for (size_t i = 0; i < n; i++)
        if (buf[i] == 'x' || buf[i] == 'X' || buf[i] == '_') return false;
    char *stop;
    *x = strtod(buf, &stop);
    return stop == buf + n;
}

/* The start of the value at `path` in `json` (within [.., end)), or NULL. */
static const char *value_at(cairn_str json, const char *path, const char *end);

bool cairn_json_number_at(cairn_str json, const char *path, double *x) {
    const char *end = json.ptr + json.len, *p = value_at(json, path, end);
    if (!p) return false;
    if (*p == '"') {
        const char *q = skip_string(p, end);
        if (!q) return false;
        if (memchr(p + 1, '\\', (size_t)(q - p - 2))) return false;
        return parse_number(p + 1, (size_t)(q - p - 2), x);
    }
    if (*p == '-' || (*p >= '0' && *p <= '9')) {
        const char *q = skip_value(p, end);
        return q && parse_number(p, (size_t)(q - p), x);
    }
    return false;
}

bool cairn_json_string_at(cairn_str json, const char *path, char *buf, size_t cap) {
    const char *end = json.ptr + json.len, *p = value_at(json, path, end);
    if (!p || *p != '"') return false;
    const char *q = skip_string(p, end);
    if (!q) return false;
    size_t n = (size_t)(q - p - 2);
    if (n >= cap || memchr(p + 1, '\\', n)) return false;
    memcpy(buf, p + 1, n);
    buf[n] = 0;
    return true;
}

static const char *value_at(cairn_str json, const char *path, const char *end) {
    const char *p = ws(json.ptr, end);
    while (*path) {
        const char *dot = strchr(path, '.');
        size_t plen = dot ? (size_t)(dot - path) : strlen(path);
        if (p >= end) return NULL;
        bool found = false;
        if (*p == '{') {
            p = ws(p + 1, end);
            while (p < end && *p == '"') {
                const char *kend = skip_string(p, end);
                if (!kend) return NULL;
                bool match = (size_t)(kend - p - 2) == plen && memcmp(p + 1, path, plen) == 0;
                p = ws(kend, end);
                if (p >= end || *p != ':') return NULL;
                p = ws(p + 1, end);
                if (match) {
                    found = true;
                    break;
                }
                p = skip_value(p, end);
                if (!p) return NULL;
                p = ws(p, end);
                if (p < end && *p == ',') p = ws(p + 1, end);
            }
        } else if (*p == '[') {
            char *stop;
            char idx[24];
            if (plen == 0 || plen >= sizeof idx) return NULL;
            memcpy(idx, path, plen);
            idx[plen] = 0;
            long want = strtol(idx, &stop, 10);
            if (*stop || want < 0) return NULL;
            p = ws(p + 1, end);
            for (long i = 0; p < end && *p != ']'; i++) {
                if (i == want) {
                    found = true;
                    break;
                }
                p = skip_value(p, end);
                if (!p) return NULL;
                p = ws(p, end);
                if (p < end && *p == ',') p = ws(p + 1, end);
            }
        }
        if (!found) return NULL;
        path += plen + (dot ? 1 : 0);
        if (!dot) break;
    }
    return p < end ? p : NULL;
}
