/* counter: for each event, increments a per-key count in state and emits
 * {"key": <key>, "ts": <ts>, "value": {"count": n}} (as the Rust counter does). */
#include "cairn_operator.h"

static cairn_status on_event(const cairn_event *ev, cairn_out *out) {
    int64_t n;
    cairn_status s = cairn_incr(CAIRN_KEY, "count", 1, &n); /* this event's key's count */
    if (s) return s;
    char json[40] = "{\"count\":";
    size_t len = 9 + cairn_fmt_i64(json + 9, n);
    json[len++] = '}';
    return cairn_emit(out, ev->key, ev->ts, (cairn_str){json, len});
}

/* on_event reads "count" of its key: the SDK fetches them for the whole batch at once. */
CAIRN_OPERATOR(.prefetch = (const char *const[]){"count", NULL}, .on_event = on_event);
