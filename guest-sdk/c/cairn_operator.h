/* Write Cairn stream operators in C.
 *
 *   #include "cairn_operator.h"
 *
 *   static cairn_status on_event(const cairn_event *ev, cairn_out *out) {
 *       int64_t n;
 *       cairn_status s = cairn_incr(CAIRN_KEY, "count", 1, &n);   // this event's key's count
 *       if (s) return s;
 *       char json[48];
 *       snprintf(json, sizeof json, "{\"count\":%lld}", (long long)n);
 *       return cairn_emit_str(out, ev->key, ev->ts, json);
 *   }
 *   CAIRN_OPERATOR(.on_event = on_event);
 *
 * Built by `cairn build` (bindings as `wit-bindgen c` writes them, clang --target=wasm32-wasi,
 * then `cairn componentize`; world `operator-packed` of the current WIT (wit/README.md): batches cross as one buffer
 * each way, reads of a batch are cached, its writes are held back and sent in one call at its
 * end). A callback returns CAIRN_OK, or an error status: the
 * host then discards the call's state writes and applies the job's error policy; set the
 * message with cairn_fail(). State calls return CAIRN_QUOTA_EXCEEDED or CAIRN_INVALID when the
 * host refuses them (cairn_error_message() says why).
 */
#ifndef CAIRN_OPERATOR_H
#define CAIRN_OPERATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes that are not NUL-terminated (keys and values). */
typedef struct {
    const char *ptr;
    size_t len;
} cairn_str;

typedef enum {
    CAIRN_OK = 0,
    /* A quota of the sandbox would be exceeded (the message names the limit). */
    CAIRN_QUOTA_EXCEEDED = 1,
    /* The host refused a malformed request. */
    CAIRN_INVALID = 2,
    /* The operator failed (cairn_fail). */
    CAIRN_FAILED = 3,
} cairn_status;

typedef struct {
    cairn_str key;
    int64_t ts;
    cairn_str value; /* JSON text on the CLI */
} cairn_event;

/* The events a call emits. */
typedef struct cairn_out cairn_out;

/* A state scope: the current event's (or timer's) key, the operator-wide scope, or a key. */
typedef struct {
    int kind; /* 0 current key, 1 operator-wide, 2 named key */
    cairn_str key;
} cairn_scope;
#define CAIRN_KEY ((cairn_scope){0, {0, 0}})
#define CAIRN_OPERATOR_WIDE ((cairn_scope){1, {0, 0}})
cairn_scope cairn_scope_of(cairn_str key);

/* What becomes of one entry of older state in a migration: kept, set to `value` (copied by
 * the SDK), or removed. */
typedef enum { CAIRN_KEEP = 0, CAIRN_SET = 1, CAIRN_REMOVE = 2 } cairn_rewrite_kind;
typedef struct {
    cairn_rewrite_kind kind;
    cairn_str value;
} cairn_rewrite;

/* The operator: any callback may be NULL (on_event then drops events). `prefetch` (optional,
 * NULL-terminated) names the entries on_event reads in its event's key's scope: the SDK fetches
 * them for the whole batch in one host call. `migrate` rewrites one entry of state an older
 * state version wrote (`state_version` in cairn.toml; the entry's scope is CAIRN_KEY while it
 * runs, CAIRN_OPERATOR_WIDE for an operator-wide entry): called for every entry, before any
 * event, when the host resumes from a checkpoint of version `from_version`; NULL refuses. */
typedef struct {
    const char *const *prefetch;
    cairn_status (*init)(cairn_str config);
    cairn_status (*on_event)(const cairn_event *ev, cairn_out *out);
    cairn_status (*on_timer)(cairn_str key, int64_t ts, cairn_out *out);
    cairn_status (*on_watermark)(int64_t watermark, cairn_out *out);
    cairn_status (*migrate)(uint32_t from_version, cairn_str key, cairn_str value, cairn_rewrite *rewrite);
} cairn_operator;

#define CAIRN_OPERATOR(...) const cairn_operator cairn_the_operator = {__VA_ARGS__}

/* State. Values are bytes; the integer helpers store decimal text (as every SDK does). */
/* The value under `name`: true and *value (free it with cairn_free) when there is one. */
bool cairn_get(cairn_scope s, const char *name, cairn_str *value);
cairn_status cairn_set(cairn_scope s, const char *name, const void *data, size_t len);
bool cairn_remove(cairn_scope s, const char *name);
bool cairn_exists(cairn_scope s, const char *name);
/* The integer under `name`, or `dflt`. */
int64_t cairn_get_i64(cairn_scope s, const char *name, int64_t dflt);
cairn_status cairn_set_i64(cairn_scope s, const char *name, int64_t v);
/* Add `by` to the integer under `name` (0 when absent); the new value in *result. */
cairn_status cairn_incr(cairn_scope s, const char *name, int64_t by, int64_t *result);
void cairn_free(cairn_str value);
/* Names listed by cairn_list_keys, each NUL-terminated. */
typedef struct {
    cairn_str *names;
    size_t len;
} cairn_keys;
/* The names in scope `s` starting with `prefix`, in byte order, strictly after `after` (NULL:
 * from the first), at most `limit` of them (page through with the last name as `after`); free
 * them with cairn_free_keys. Writes held back are sent first, so the listing sees them. */
cairn_status cairn_list_keys(cairn_scope s, const char *prefix, const char *after, uint32_t limit, cairn_keys *keys);
void cairn_free_keys(cairn_keys *keys);

/* Timers (event time): on_timer(key, ts) once the watermark reaches ts, in key's scope. */
cairn_status cairn_timer_register(cairn_str key, int64_t ts);
bool cairn_timer_delete(cairn_str key, int64_t ts);
/* The host's watermark; false before the first event. */
bool cairn_watermark(int64_t *wm);

/* Output. */
cairn_status cairn_emit(cairn_out *out, cairn_str key, int64_t ts, cairn_str value);
cairn_status cairn_emit_str(cairn_out *out, cairn_str key, int64_t ts, const char *value);

/* Errors: fail the current call with a message (printf-style); returns CAIRN_FAILED. */
cairn_status cairn_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The message of the last refused state call. */
const char *cairn_error_message(void);

/* Logging into the host's log: level 0 trace .. 4 error. */
void cairn_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* JSON helpers. */
/* `x` as serde_json (the Rust SDK) writes an f64: shortest text that reads back ("2.0",
 * "0.1", "1e+16", "1.5e-7"); "null" for NaN and infinities. Returns its length; buf >= 32. */
size_t cairn_fmt_f64(char *buf, double x);
/* The number at a dotted path ("" = the value itself) of the JSON text `json`: numbers and
 * numeric strings count. True and *x when there is one. */
bool cairn_json_number_at(cairn_str json, const char *path, double *x);

/* The string at a dotted path of `json`, copied NUL-terminated into buf (cap bytes). False when
 * there is none, it holds escapes, or it does not fit. */
bool cairn_json_string_at(cairn_str json, const char *path, char *buf, size_t cap);

/* `v` in decimal, NUL-terminated; its length (buf >= 21 bytes). Faster than snprintf. */
size_t cairn_fmt_i64(char *buf, int64_t v);

/* A NUL-terminated C string as a cairn_str. */
cairn_str cairn_cstr(const char *s);

#endif
