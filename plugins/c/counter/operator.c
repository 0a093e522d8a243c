/* counter: for each event, increments a per-key count in state and emits
 * {"key": <key>, "ts": <ts>, "value": {"count": n}} (as the Rust counter does). */
#include <stdio.h>

#include "cairn_operator.h"

static cairn_status on_event(const cairn_event *ev, cairn_out *out) {
    int64_t n;
    cairn_status s = cairn_incr(CAIRN_KEY, "count", 1, &n); /* this event's key's count */
    if (s) return s;
    char json[40];
    snprintf(json, sizeof json, "{\"count\":%lld}", (long long)n);
    return cairn_emit_str(out, ev->key, ev->ts, json);
}

CAIRN_OPERATOR(.on_event = on_event);
