/*
 * store_devices.c -- the cache of measured device ceilings, keyed by
 * "backend:host:device", so a cook does not re-measure a machine it knows.
 */
#include "store_private.h"

/* Stores (or replaces) the device object under key (non-empty). */
int store_device_put(store_t *s, const char *key, const json_t *device)
{
    if (!key || !*key)
        return store_fail(s, "store device: empty key");
    if (!json_is_object(device))
        return store_fail(s, "store device %s: not a JSON object", key);
    sqlite3_stmt *st = NULL;
    if (store_begin(s, "store device") != 0)
        return -1;
    int rc = store_prepare(s, &st,
        "INSERT INTO devices (key, device, updated) VALUES (?1, ?2, " STORE_NOW ")"
        " ON CONFLICT(key) DO UPDATE SET device = excluded.device,"
        " updated = excluded.updated", "store device");
    if (rc == 0) {
        int b = store_bind_text(st, 1, key);
        if (b == SQLITE_OK) b = store_bind_json(st, 2, device, 0);
        if (b != SQLITE_OK)
            rc = store_fail(s, "store device %s: cannot encode it", key);
        else if (sqlite3_step(st) != SQLITE_DONE)
            rc = store_fail_sql(s, "store device");
    }
    sqlite3_finalize(st);
    return store_end(s, rc, "store device");
}

/* *out = the device object stored under key, or NULL (and 0) when none. */
int store_device_get(store_t *s, const char *key, json_t **out)
{
    *out = NULL;
    if (!key)
        return store_fail(s, "read device: no key");
    sqlite3_stmt *st;
    if (store_prepare(s, &st, "SELECT device FROM devices WHERE key = ?1", "read device") != 0)
        return -1;
    store_bind_text(st, 1, key);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = store_col_json(st, 0);
        rc = *out ? 0 : store_fail(s, "read device %s: stored JSON is corrupt", key);
    } else if (rc == SQLITE_DONE) {
        rc = 0;
    } else {
        rc = store_fail_sql(s, "read device");
    }
    sqlite3_finalize(st);
    return rc;
}
