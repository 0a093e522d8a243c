/* window: tumbling and sliding event-time windows per key with the aggregates of a numeric
 * field (count, sum, min, max, avg, stddev); the same configuration and byte-identical output
 * as the Rust `window` plugin. Config: {"field": "temp", "size_ms": 60000, "slide_ms": 60000,
 * "out_of_order_ms": 0, "allowed_lateness_ms": 0}. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn_operator.h"

static char field[256];
static int64_t size, slide, ooo, lateness;

/* A window's running aggregate (Welford), as it is kept in state. */
typedef struct {
    int64_t count;
    double sum, min, max, mean, m2;
} stats;

static cairn_status init(cairn_str config) {
    double v;
    if (!cairn_json_string_at(config, "field", field, sizeof field))
        return cairn_fail("field (a string) and size_ms are required");
    if (!cairn_json_number_at(config, "size_ms", &v)) return cairn_fail("field (a string) and size_ms are required");
    size = (int64_t)v;
    slide = cairn_json_number_at(config, "slide_ms", &v) ? (int64_t)v : size;
    ooo = cairn_json_number_at(config, "out_of_order_ms", &v) ? (int64_t)v : 0;
    lateness = cairn_json_number_at(config, "allowed_lateness_ms", &v) ? (int64_t)v : 0;
    if (size <= 0 || slide <= 0) return cairn_fail("size_ms and slide_ms must be positive");
    if (ooo < 0 || lateness < 0) return cairn_fail("out_of_order_ms and allowed_lateness_ms must not be negative");
    return CAIRN_OK;
}

/* "win/" + the start as 16 hex digits whose byte order is numeric order. */
static void window_name(char *buf, int64_t start) {
    snprintf(buf, 24, "win/%016" PRIx64, (uint64_t)start ^ (UINT64_C(1) << 63));
}

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static cairn_status on_event(const cairn_event *ev, cairn_out *out) {
    (void)out;
    double x;
    if (!cairn_json_number_at(ev->value, field, &x)) return CAIRN_OK;
    int64_t wm;
    bool has_wm = cairn_watermark(&wm);
    wm -= ooo;
    int64_t ts = ev->ts;
    bool assigned = false;
    for (int64_t start = floor_div(ts, slide) * slide; start > ts - size; start -= slide) {
        int64_t end = start + size;
        if (has_wm && end + lateness <= wm) continue; /* closed */
        char name[24];
        window_name(name, start);
        stats s = {0};
        cairn_str v;
        if (cairn_get(CAIRN_KEY, name, &v)) {
            if (v.len == sizeof s) memcpy(&s, v.ptr, sizeof s);
            cairn_free(v);
        }
        if (s.count == 0) {
            cairn_status st = cairn_timer_register(ev->key, end + lateness + ooo);
            if (st) return st;
        }
        s.count++;
        s.sum += x;
        s.min = s.count == 1 ? x : fmin(s.min, x);
        s.max = s.count == 1 ? x : fmax(s.max, x);
        double delta = x - s.mean;
        s.mean += delta / (double)s.count;
        s.m2 += delta * (x - s.mean);
        cairn_status st = cairn_set(CAIRN_KEY, name, &s, sizeof s);
        if (st) return st;
        assigned = true;
    }
    if (!assigned) return cairn_incr(CAIRN_KEY, "late", 1, NULL); /* late events of this key */
    return CAIRN_OK;
}

static cairn_status on_timer(cairn_str key, int64_t ts, cairn_out *out) {
    int64_t end = ts - lateness - ooo, start = end - size;
    char name[24];
    window_name(name, start);
    cairn_str v;
    if (!cairn_get(CAIRN_KEY, name, &v)) return CAIRN_OK;
    stats s = {0};
    if (v.len == sizeof s) memcpy(&s, v.ptr, sizeof s);
    cairn_free(v);
    char sum[32], lo[32], hi[32], avg[32], sd[32], json[320];
    cairn_fmt_f64(sum, s.sum);
    cairn_fmt_f64(lo, s.min);
    cairn_fmt_f64(hi, s.max);
    cairn_fmt_f64(avg, s.mean);
    double var = s.m2 / (double)s.count;
    cairn_fmt_f64(sd, sqrt(var > 0.0 ? var : 0.0));
    snprintf(json, sizeof json,
             "{\"start\":%lld,\"end\":%lld,\"count\":%lld,\"sum\":%s,\"min\":%s,\"max\":%s,\"avg\":%s,\"stddev\":%s}",
             (long long)start, (long long)end, (long long)s.count, sum, lo, hi, avg, sd);
    cairn_remove(CAIRN_KEY, name);
    return cairn_emit_str(out, key, end - 1, json);
}

CAIRN_OPERATOR(.init = init, .on_event = on_event, .on_timer = on_timer);
