/* The C SDK against the codec's golden vectors (guest-sdk/golden/packed.txt), run by
 * tests/all/c_golden.rs as a core module whose imports the test provides, recording the bytes.
 * Event "a": emitted back unchanged, then "count" of scope "sensor-1" set to "7" and the
 * operator-wide "x" removed (the `writes` vector). Other events: their "count", prefetched
 * (the request and the `answers` vector), emitted as the value, or "absent". */
#include <string.h>

#include "cairn_operator.h"

static cairn_status on_event(const cairn_event *ev, cairn_out *out) {
    if (ev->key.len == 1 && ev->key.ptr[0] == 'a') {
        cairn_status s = cairn_emit(out, ev->key, ev->ts, ev->value);
        if (s) return s;
        cairn_str scope = {"sensor-1", 8};
        s = cairn_set(cairn_scope_of(scope), "count", "7", 1);
        if (s) return s;
        cairn_remove(CAIRN_OPERATOR_WIDE, "x");
        return CAIRN_OK;
    }
    cairn_str v;
    if (cairn_get(CAIRN_KEY, "count", &v)) {
        cairn_status s = cairn_emit(out, ev->key, ev->ts, v);
        cairn_free(v);
        return s;
    }
    cairn_str absent = {"absent", 6};
    return cairn_emit(out, ev->key, ev->ts, absent);
}

CAIRN_OPERATOR(.prefetch = (const char *const[]){"count", NULL}, .on_event = on_event);
