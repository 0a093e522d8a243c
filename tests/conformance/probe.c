/* The conformance probe (tests/all/languages.rs): each event's value names a state operation;
 * the operator performs it and emits what it observed. Every SDK's probe must emit the same. */
#include <stdio.h>
#include <string.h>

#include "cairn_operator.h"

static const char *boolean(bool b) { return b ? "true" : "false"; }

/* `name`'s value in scope `s` as a JSON string, or null. */
static void value_json(cairn_scope s, const char *name, char *buf, size_t cap) {
    cairn_str v;
    if (cairn_get(s, name, &v)) {
        snprintf(buf, cap, "\"%.*s\"", (int)v.len, v.ptr);
        cairn_free(v);
    } else {
        snprintf(buf, cap, "null");
    }
}

static cairn_status on_event(const cairn_event *ev, cairn_out *out) {
    char op[16] = "", name[32] = "", v[32] = "", target[32] = "", seen[256], val[64];
    cairn_json_string_at(ev->value, "op", op, sizeof op);
    cairn_json_string_at(ev->value, "name", name, sizeof name);
    cairn_json_string_at(ev->value, "v", v, sizeof v);
    cairn_json_string_at(ev->value, "target", target, sizeof target);
    cairn_status st = CAIRN_OK;
    if (!strcmp(op, "put")) {
        bool had = cairn_exists(CAIRN_KEY, name);
        if ((st = cairn_set(CAIRN_KEY, name, v, strlen(v)))) return st;
        snprintf(seen, sizeof seen, "{\"had\":%s}", boolean(had));
    } else if (!strcmp(op, "get")) {
        value_json(CAIRN_KEY, name, val, sizeof val);
        snprintf(seen, sizeof seen, "{\"value\":%s}", val);
    } else if (!strcmp(op, "del")) {
        bool removed = cairn_remove(CAIRN_KEY, name);
        snprintf(seen, sizeof seen, "{\"removed\":%s,\"exists\":%s}", boolean(removed),
                 boolean(cairn_exists(CAIRN_KEY, name)));
    } else if (!strcmp(op, "keys")) {
        cairn_keys keys;
        if ((st = cairn_list_keys(CAIRN_KEY, "", NULL, 1000, &keys))) return st;
        size_t at = (size_t)snprintf(seen, sizeof seen, "{\"keys\":[");
        for (size_t i = 0; i < keys.len && at < sizeof seen; i++)
            at += (size_t)snprintf(seen + at, sizeof seen - at, "%s\"%s\"", i ? "," : "", keys.names[i].ptr);
        if (at < sizeof seen) snprintf(seen + at, sizeof seen - at, "]}");
        cairn_free_keys(&keys);
    } else if (!strcmp(op, "other")) {
        cairn_scope other = cairn_scope_of(cairn_cstr(target));
        if ((st = cairn_set(other, name, v, strlen(v)))) return st;
        value_json(other, name, val, sizeof val);
        snprintf(seen, sizeof seen, "{\"value\":%s}", val);
    } else if (!strcmp(op, "global")) {
        int64_t total;
        if ((st = cairn_incr(CAIRN_OPERATOR_WIDE, "total", 1, &total))) return st;
        snprintf(seen, sizeof seen, "{\"total\":%lld}", (long long)total);
    } else if (!strcmp(op, "fail")) {
        cairn_set(CAIRN_KEY, "y", "boom", 4);
        return cairn_fail("asked to fail");
    } else if (!strcmp(op, "timer")) {
        double at;
        if (!cairn_json_number_at(ev->value, "at", &at)) return cairn_fail("no \"at\"");
        if ((st = cairn_timer_register(ev->key, (int64_t)at))) return st;
        snprintf(seen, sizeof seen, "{\"registered\":%lld}", (long long)at);
    } else {
        return cairn_fail("unknown op %s", op);
    }
    return cairn_emit_str(out, ev->key, ev->ts, seen);
}

static cairn_status on_timer(cairn_str key, int64_t ts, cairn_out *out) {
    char seen[96];
    cairn_str y;
    if (cairn_get(CAIRN_KEY, "y", &y)) {
        snprintf(seen, sizeof seen, "{\"fired\":%lld,\"y\":%.*s}", (long long)ts, (int)y.len, y.ptr);
        cairn_free(y);
    } else {
        snprintf(seen, sizeof seen, "{\"fired\":%lld,\"y\":null}", (long long)ts);
    }
    return cairn_emit_str(out, key, ts, seen);
}

CAIRN_OPERATOR(.on_event = on_event, .on_timer = on_timer);
