/* The C SDK: the component's exports over `cairn_the_operator`, state, timers, output, and
 * JSON helpers. See cairn_operator.h. */
#include "cairn_operator.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "operator_packed.h"

extern const cairn_operator cairn_the_operator;

typedef operator_packed_string_t wstr;
typedef operator_packed_list_u8_t wbytes;
typedef exports_cairn_operator_operator_event_t wevent;

struct cairn_out {
    wevent *ptr;
    size_t len, cap;
    /* process-packed: the events as one buffer (u32 count, then key, ts, value each). */
    bool packed;
    uint8_t *buf;
    size_t blen, bcap;
    uint32_t count;
};

/* ---- the batch cache (process-packed only) ----
 * Reads go through it (a miss asks the host once); writes are held in it and sent with one
 * write-many-packed at the end of the batch, unless the state's quotas could be reached: then
 * they are flushed and the write goes straight to the host, which answers it exactly. */
typedef struct {
    uint8_t *id; /* scope marker, scope, 0, name */
    size_t idlen;
    size_t scope_off, scope_len; /* scope inside id (scope_len == SIZE_MAX: operator-wide) */
    size_t name_off;
    uint8_t *val;
    size_t vlen;
    bool present, dirty;
} centry;

static bool cache_on;
static centry *cache;
static size_t cache_cap, cache_len, cache_dirty;
static cairn_operator_packed_state_state_usage_t usage;
static uint64_t pending_keys, pending_bytes;

static uint64_t fnv(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

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

static centry *cache_entry(cairn_scope s, const char *name, bool *created);
static void fill_from_host(centry *e);
static cairn_status cache_set(centry *e, const void *data, size_t len, bool present);

bool cairn_get(cairn_scope s, const char *name, cairn_str *value) {
    if (cache_on) {
        centry *e = cache_entry(s, name, NULL);
        if (!e || !e->present) return false;
        uint8_t *c = malloc(e->vlen ? e->vlen : 1);
        memcpy(c, e->val, e->vlen);
        *value = (cairn_str){(const char *)c, e->vlen};
        return true;
    }
    wstr slot, k = wc(name);
    operator_packed_list_u8_t ret;
    if (!cairn_operator_state_get(scope_arg(s, &slot), &k, &ret)) return false;
    *value = (cairn_str){(const char *)ret.ptr, ret.len};
    return true;
}

void cairn_free(cairn_str value) { free((void *)value.ptr); }

cairn_status cairn_set(cairn_scope s, const char *name, const void *data, size_t len) {
    if (cache_on) {
        centry *e = cache_entry(s, name, NULL);
        if (e) return cache_set(e, data, len, true);
    }
    wstr slot, k = wc(name);
    operator_packed_list_u8_t v = {(uint8_t *)data, len};
    cairn_operator_state_state_error_t err;
    if (!cairn_operator_state_set(scope_arg(s, &slot), &k, &v, &err)) return refused(&err);
    return CAIRN_OK;
}

bool cairn_remove(cairn_scope s, const char *name) {
    if (cache_on) {
        centry *e = cache_entry(s, name, NULL);
        if (e) {
            bool was = e->present;
            if (was) cache_set(e, NULL, 0, false);
            return was;
        }
    }
    wstr slot, k = wc(name);
    return cairn_operator_state_remove(scope_arg(s, &slot), &k);
}

bool cairn_exists(cairn_scope s, const char *name) {
    if (cache_on) {
        centry *e = cache_entry(s, name, NULL);
        if (e) return e->present;
    }
    wstr slot, k = wc(name);
    return cairn_operator_state_exists(scope_arg(s, &slot), &k);
}

size_t cairn_fmt_i64(char *buf, int64_t v) {
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t len = 0;
    if (v < 0) buf[len++] = '-';
    while (n) buf[len++] = tmp[--n];
    buf[len] = 0;
    return len;
}

static int64_t parse_i64(const uint8_t *p, size_t n, int64_t dflt) {
    char buf[32];
    if (n >= sizeof buf) return dflt;
    memcpy(buf, p, n);
    buf[n] = 0;
    return strtoll(buf, NULL, 10);
}

int64_t cairn_get_i64(cairn_scope s, const char *name, int64_t dflt) {
    if (cache_on) {
        centry *e = cache_entry(s, name, NULL);
        if (e) return e->present ? parse_i64(e->val, e->vlen, dflt) : dflt;
    }
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
    size_t n = cairn_fmt_i64(buf, v);
    return cairn_set(s, name, buf, n);
}

cairn_status cairn_incr(cairn_scope s, const char *name, int64_t by, int64_t *result) {
    if (cache_on) {
        centry *e = cache_entry(s, name, NULL);
        if (e) {
            int64_t n = (e->present ? parse_i64(e->val, e->vlen, 0) : 0) + by;
            char buf[24];
            cairn_status st = cache_set(e, buf, cairn_fmt_i64(buf, n), true);
            if (st == CAIRN_OK && result) *result = n;
            return st;
        }
    }
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

static cairn_status cache_flush(void);

cairn_status cairn_list_keys(cairn_scope s, const char *prefix, const char *after, uint32_t limit, cairn_keys *keys) {
    keys->names = NULL;
    keys->len = 0;
    cairn_status st = cache_flush(); /* the host lists what it holds */
    if (st) return st;
    wstr slot, p = wc(prefix ? prefix : ""), a = wc(after ? after : "");
    operator_packed_list_string_t got;
    cairn_operator_state_list_keys(scope_arg(s, &slot), &p, after ? &a : NULL, limit, &got);
    keys->names = malloc((got.len ? got.len : 1) * sizeof(cairn_str));
    if (!keys->names) {
        operator_packed_list_string_free(&got);
        return cairn_fail("out of memory listing keys");
    }
    for (size_t i = 0; i < got.len; i++) {
        uint8_t *name = copy(got.ptr[i].ptr, got.ptr[i].len + 1);
        if (name) name[got.ptr[i].len] = 0;
        keys->names[keys->len++] = (cairn_str){(const char *)name, got.ptr[i].len};
    }
    operator_packed_list_string_free(&got);
    return CAIRN_OK;
}

void cairn_free_keys(cairn_keys *keys) {
    for (size_t i = 0; i < keys->len; i++) free((void *)keys->names[i].ptr);
    free(keys->names);
    keys->names = NULL;
    keys->len = 0;
}

static bool grow(uint8_t **buf, size_t *cap, size_t need) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 4096;
    while (c < need) c *= 2;
    uint8_t *p = realloc(*buf, c);
    if (!p) return false;
    *buf = p;
    *cap = c;
    return true;
}

static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

cairn_status cairn_emit(cairn_out *out, cairn_str key, int64_t ts, cairn_str value) {
    if (out->packed) {
        size_t need = out->blen + 16 + key.len + value.len;
        if (!grow(&out->buf, &out->bcap, need)) return cairn_fail("out of memory emitting an event");
        uint8_t *p = out->buf + out->blen;
        put_u32(p, (uint32_t)key.len);
        memcpy(p + 4, key.ptr, key.len);
        p += 4 + key.len;
        memcpy(p, &ts, 8);
        put_u32(p + 8, (uint32_t)value.len);
        memcpy(p + 12, value.ptr, value.len);
        out->blen = need;
        out->count++;
        return CAIRN_OK;
    }
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
    e->value = (operator_packed_list_u8_t){copy(value.ptr, value.len), value.len};
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
    operator_packed_string_dup(err, text);
    return false;
}

bool exports_cairn_operator_operator_init(wstr *config, wstr *err) {
    cairn_status st = CAIRN_OK;
    message[0] = 0;
    if (cairn_the_operator.init) st = cairn_the_operator.init((cairn_str){(const char *)config->ptr, config->len});
    operator_packed_string_free(config);
    if (st != CAIRN_OK) {
        char text[1200];
        snprintf(text, sizeof text, "init failed: %s", message[0] ? message : "an error status without a message");
        operator_packed_string_dup(err, text);
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

/* ---- the speed path: process-packed and the batch cache ---- */

#define ABSENT 0xFFFFFFFFu

static cairn_str scope_bytes(cairn_scope s, bool *operator_wide) {
    *operator_wide = false;
    if (s.kind == 0 && has_current) return (cairn_str){(const char *)current.ptr, current.len};
    if (s.kind == 2) return s.key;
    *operator_wide = true;
    return (cairn_str){"", 0};
}

static void cache_clear(void) {
    for (size_t i = 0; i < cache_cap; i++) {
        if (cache[i].id) {
            free(cache[i].id);
            free(cache[i].val);
        }
    }
    memset(cache, 0, cache_cap * sizeof *cache);
    cache_len = cache_dirty = 0;
    pending_keys = pending_bytes = 0;
}

static centry *slot_for(const uint8_t *id, size_t idlen) {
    size_t i = (size_t)fnv(id, idlen) & (cache_cap - 1);
    while (cache[i].id && !(cache[i].idlen == idlen && memcmp(cache[i].id, id, idlen) == 0)) i = (i + 1) & (cache_cap - 1);
    return &cache[i];
}

static bool cache_grow(void) {
    size_t old_cap = cache_cap;
    centry *old = cache;
    cache_cap = old_cap ? old_cap * 2 : 1024;
    cache = calloc(cache_cap, sizeof *cache);
    if (!cache) return false;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].id) *slot_for(old[i].id, old[i].idlen) = old[i];
    free(old);
    return true;
}

static void put_entry_name(uint8_t *p, size_t *at, const centry *e) {
    if (e->scope_len == SIZE_MAX) {
        put_u32(p + *at, ABSENT);
        *at += 4;
    } else {
        put_u32(p + *at, (uint32_t)e->scope_len);
        memcpy(p + *at + 4, e->id + e->scope_off, e->scope_len);
        *at += 4 + e->scope_len;
    }
    size_t nlen = e->idlen - e->name_off;
    put_u32(p + *at, (uint32_t)nlen);
    memcpy(p + *at + 4, e->id + e->name_off, nlen);
    *at += 4 + nlen;
}

/* The cache's entry for (scope, name), made (and read from the host, unless `created` asks
 * not to) when missing; NULL when out of memory. */
static centry *cache_entry(cairn_scope s, const char *name, bool *created) {
    bool wide;
    cairn_str scope = scope_bytes(s, &wide);
    size_t nlen = strlen(name);
    size_t idlen = 1 + scope.len + 1 + nlen;
    uint8_t stack[256];
    uint8_t *id = idlen <= sizeof stack ? stack : malloc(idlen);
    if (!id) return NULL;
    id[0] = wide ? 'o' : 'k';
    memcpy(id + 1, scope.ptr, scope.len);
    id[1 + scope.len] = 0;
    memcpy(id + 2 + scope.len, name, nlen);
    if ((cache_len + 1) * 2 > cache_cap && !cache_grow()) return NULL;
    centry *e = slot_for(id, idlen);
    if (e->id) {
        if (id != stack) free(id);
        if (created) *created = false;
        return e;
    }
    e->id = id == stack ? malloc(idlen) : id;
    if (!e->id) return NULL;
    if (id == stack) memcpy(e->id, stack, idlen);
    e->idlen = idlen;
    e->scope_off = 1;
    e->scope_len = wide ? SIZE_MAX : scope.len;
    e->name_off = 2 + scope.len;
    e->val = NULL;
    e->vlen = 0;
    e->present = e->dirty = false;
    cache_len++;
    if (created) {
        *created = true;
        return e;
    }
    fill_from_host(e);
    return e;
}

/* Read an entry's value from the host (in the inline form: no allocation for small values). */
static void fill_from_host(centry *e) {
    bool wide = e->scope_len == SIZE_MAX;
    wstr sc = {e->id + e->scope_off, wide ? 0 : e->scope_len};
    wstr k = {e->id + e->name_off, e->idlen - e->name_off};
    cairn_operator_packed_state_lookup_t r;
    cairn_operator_packed_state_get_inline(wide ? NULL : &sc, &k, &r);
    if (r.tag == CAIRN_OPERATOR_PACKED_STATE_LOOKUP_INLINE) {
        e->vlen = r.val.inline_.f0;
        e->val = malloc(e->vlen ? e->vlen : 1);
        uint64_t w[3] = {r.val.inline_.f1, r.val.inline_.f2, r.val.inline_.f3};
        memcpy(e->val, w, e->vlen);
        e->present = true;
    } else if (r.tag == CAIRN_OPERATOR_PACKED_STATE_LOOKUP_LARGE) {
        e->val = r.val.large.ptr;
        e->vlen = r.val.large.len;
        e->present = true;
    }
}

/* Send the held-back writes in one call. */
static cairn_status cache_flush(void) {
    if (!cache_dirty) return CAIRN_OK;
    size_t need = 4;
    for (size_t i = 0; i < cache_cap; i++)
        if (cache[i].id && cache[i].dirty) need += 12 + cache[i].idlen + cache[i].vlen;
    uint8_t *buf = malloc(need);
    if (!buf) return cairn_fail("out of memory writing the batch's state");
    size_t at = 4;
    uint32_t n = 0;
    for (size_t i = 0; i < cache_cap; i++) {
        centry *e = &cache[i];
        if (!e->id || !e->dirty) continue;
        put_entry_name(buf, &at, e);
        if (e->present) {
            put_u32(buf + at, (uint32_t)e->vlen);
            memcpy(buf + at + 4, e->val, e->vlen);
            at += 4 + e->vlen;
        } else {
            put_u32(buf + at, ABSENT);
            at += 4;
        }
        e->dirty = false;
        n++;
    }
    put_u32(buf, n);
    wbytes w = {buf, at};
    cairn_operator_packed_state_state_error_t err;
    bool ok = cairn_operator_packed_state_write_many_packed(&w, &err);
    free(buf);
    cache_dirty = 0;
    pending_keys = pending_bytes = 0;
    cairn_operator_packed_state_usage(&usage);
    return ok ? CAIRN_OK : refused(&err);
}

static cairn_status cache_set(centry *e, const void *data, size_t len, bool present) {
    /* Could the held-back writes reach a quota? Then flush them, and write this one now. */
    uint64_t add_keys = e->present ? 0 : 1;
    /* The host's scoped key can be longer than ours (escapes, the key group): count it thrice. */
    uint64_t add_bytes = 3 * e->idlen + 64 + len;
    if (len > usage.max_value_bytes || usage.keys + pending_keys + add_keys > usage.max_keys ||
        usage.bytes + pending_bytes + add_bytes > usage.max_state_bytes) {
        cairn_status st = cache_flush();
        if (st) return st;
        bool wide = e->scope_len == SIZE_MAX;
        wstr sc = {e->id + e->scope_off, wide ? 0 : e->scope_len};
        wstr k = {e->id + e->name_off, e->idlen - e->name_off};
        cairn_operator_packed_state_state_error_t err;
        if (present) {
            wbytes v = {(uint8_t *)data, len};
            if (!cairn_operator_state_set(wide ? NULL : &sc, &k, &v, &err)) return refused(&err);
        } else {
            cairn_operator_state_remove(wide ? NULL : &sc, &k);
        }
        cairn_operator_packed_state_usage(&usage);
    } else {
        if (!e->dirty) cache_dirty++;
        e->dirty = true;
        pending_keys += add_keys;
        pending_bytes += add_bytes;
    }
    uint8_t *v = NULL;
    if (present) {
        v = malloc(len ? len : 1);
        if (!v) return cairn_fail("out of memory");
        memcpy(v, data, len);
    }
    free(e->val);
    e->val = v;
    e->vlen = len;
    e->present = present;
    return CAIRN_OK;
}

/* Fetch the prefetch names of every event's key in one call. */
static void prefetch(const uint8_t *p, uint32_t n) {
    const char *const *names = cairn_the_operator.prefetch;
    if (!names || !names[0] || !n) return;
    size_t nn = 0, need = 4;
    while (names[nn]) nn++;
    /* Pass 1: entries not cached yet, and their size. */
    /* Room for every entry first: growing the table moves them. */
    while ((cache_len + (size_t)n * nn + 1) * 2 > cache_cap)
        if (!cache_grow()) return;
    centry **want = malloc(sizeof *want * n * nn);
    if (!want) return;
    size_t w = 0;
    const uint8_t *q = p;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t kl;
        memcpy(&kl, q, 4);
        cairn_scope s = cairn_scope_of((cairn_str){(const char *)q + 4, kl});
        for (size_t j = 0; j < nn; j++) {
            bool created;
            centry *e = cache_entry(s, names[j], &created);
            if (e && created) {
                want[w++] = e;
                need += 8 + e->idlen;
            }
        }
        uint32_t vl;
        memcpy(&vl, q + 4 + kl + 8, 4);
        q += 4 + kl + 8 + 4 + vl;
    }
    if (w) {
        uint8_t *buf = malloc(need);
        size_t at = 4;
        put_u32(buf, (uint32_t)w);
        for (size_t i = 0; i < w; i++) put_entry_name(buf, &at, want[i]);
        wbytes req = {buf, at}, ans;
        cairn_operator_packed_state_state_error_t err;
        if (cairn_operator_packed_state_get_many_packed(&req, &ans, &err)) {
            size_t a = 0;
            for (size_t i = 0; i < w && a + 4 <= ans.len; i++) {
                uint32_t l;
                memcpy(&l, ans.ptr + a, 4);
                a += 4;
                if (l == ABSENT) continue;
                want[i]->val = malloc(l ? l : 1);
                memcpy(want[i]->val, ans.ptr + a, l);
                want[i]->vlen = l;
                want[i]->present = true;
                a += l;
            }
            free(ans.ptr);
        } else {
            cairn_operator_packed_state_state_error_free(&err);
            for (size_t i = 0; i < w; i++) fill_from_host(want[i]);
        }
        free(buf);
    }
    free(want);
}

/* A packed batch (events, or fired timers with empty values) through `on_event` or
   `on_timer`, with the batch cache: one buffer in, one out. */
static bool run_packed(wbytes *batch, wbytes *ret, wstr *err, bool timers) {
    cairn_out out = {0};
    out.packed = true;
    out.blen = 4;
    grow(&out.buf, &out.bcap, 4);
    cairn_status st = CAIRN_OK;
    message[0] = 0;
    uint32_t n = 0;
    if (batch->len >= 4) memcpy(&n, batch->ptr, 4);
    if (timers && n && !cairn_the_operator.on_timer) st = cairn_fail("timers fired but the operator has no on_timer");
    cairn_operator_packed_state_usage(&usage);
    cache_on = true;
    if (st == CAIRN_OK && !cache && !cache_grow()) st = cairn_fail("out of memory");
    const uint8_t *p = batch->ptr + 4;
    if (st == CAIRN_OK) prefetch(p, n);
    bool handler = timers ? cairn_the_operator.on_timer != NULL : cairn_the_operator.on_event != NULL;
    for (uint32_t i = 0; i < n && st == CAIRN_OK && handler; i++) {
        uint32_t kl, vl;
        int64_t ts;
        memcpy(&kl, p, 4);
        memcpy(&ts, p + 4 + kl, 8);
        memcpy(&vl, p + 4 + kl + 8, 4);
        cairn_str key = {(const char *)p + 4, kl};
        current = (wstr){(uint8_t *)p + 4, kl};
        has_current = true;
        if (timers) {
            st = cairn_the_operator.on_timer(key, ts, &out);
        } else {
            cairn_event ev = {key, ts, {(const char *)p + 4 + kl + 12, vl}};
            st = cairn_the_operator.on_event(&ev, &out);
        }
        p += 4 + kl + 12 + vl;
    }
    has_current = false;
    if (st == CAIRN_OK) st = cache_flush();
    cache_clear();
    cache_on = false;
    free(batch->ptr);
    if (st != CAIRN_OK) {
        free(out.buf);
        char text[1200];
        snprintf(text, sizeof text, "%s failed: %s", timers ? "on_timer" : "on_event",
                 message[0] ? message : "an error status without a message");
        operator_packed_string_dup(err, text);
        return false;
    }
    put_u32(out.buf, out.count);
    ret->ptr = out.buf;
    ret->len = out.blen;
    return true;
}

bool exports_cairn_operator_packed_operator_process_packed(wbytes *batch, wbytes *ret, wstr *err) {
    return run_packed(batch, ret, err, false);
}

bool exports_cairn_operator_packed_timer_handler_on_timers_packed(wbytes *fired, wbytes *ret, wstr *err) {
    return run_packed(fired, ret, err, true);
}

/* ---- migration (WIT 0.2.5) ---- */

typedef exports_cairn_operator_migration_rewrite_t wrewrite;

bool exports_cairn_operator_migration_migrate(uint32_t from_version, exports_cairn_operator_migration_list_entry_t *page,
                                               exports_cairn_operator_migration_list_rewrite_t *ret, wstr *err) {
    cairn_status st = CAIRN_OK;
    message[0] = 0;
    wrewrite *out = calloc(page->len ? page->len : 1, sizeof *out);
    if (!out) st = cairn_fail("out of memory");
    if (st == CAIRN_OK && !cairn_the_operator.migrate)
        st = cairn_fail("the operator declares a new state version but has no migrate callback: state of version %u "
                        "cannot be read",
                        (unsigned)from_version);
    size_t done = 0;
    for (; done < page->len && st == CAIRN_OK; done++) {
        exports_cairn_operator_migration_entry_t *e = &page->ptr[done];
        has_current = e->scope.is_some;
        if (has_current) current = e->scope.val;
        cairn_rewrite r = {CAIRN_KEEP, {0, 0}};
        st = cairn_the_operator.migrate(from_version, (cairn_str){(const char *)e->key.ptr, e->key.len},
                                        (cairn_str){(const char *)e->value.ptr, e->value.len}, &r);
        if (st != CAIRN_OK) break;
        if (r.kind == CAIRN_SET) {
            out[done].tag = EXPORTS_CAIRN_OPERATOR_MIGRATION_REWRITE_SET;
            out[done].val.set = (wbytes){copy(r.value.ptr, r.value.len), r.value.len};
        } else {
            out[done].tag =
                r.kind == CAIRN_REMOVE ? EXPORTS_CAIRN_OPERATOR_MIGRATION_REWRITE_REMOVE : EXPORTS_CAIRN_OPERATOR_MIGRATION_REWRITE_KEEP;
        }
    }
    has_current = false;
    exports_cairn_operator_migration_list_entry_free(page);
    if (st != CAIRN_OK) {
        exports_cairn_operator_migration_list_rewrite_t all = {out, done};
        exports_cairn_operator_migration_list_rewrite_free(&all);
        char text[1200];
        snprintf(text, sizeof text, "migrate failed: %s", message[0] ? message : "an error status without a message");
        operator_packed_string_dup(err, text);
        return false;
    }
    ret->ptr = out;
    ret->len = done;
    return true;
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

/* Past the member or element value at p and its comma: the next one's start; NULL if malformed. */
static const char *next_item(const char *p, const char *end) {
    p = skip_value(p, end);
    if (!p) return NULL;
    p = ws(p, end);
    if (p < end && *p == ',') p = ws(p + 1, end);
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
                if (!(p = next_item(p, end))) return NULL;
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
                if (!(p = next_item(p, end))) return NULL;
            }
        }
        if (!found) return NULL;
        path += plen + (dot ? 1 : 0);
        if (!dot) break;
    }
    return p < end ? p : NULL;
}
