/*
 * assets.h -- the web pages embedded in the binary.  Each file of
 * src/serve/assets/ is a C string in src/serve/assets_<name>.c and a row of
 * assets_table (assets_table.c); scripts/embed_assets.sh writes all of
 * them from the files, and tests/unit/test_serve_assets.c fails when they
 * differ, so an edited page cannot ship stale.
 */
#ifndef EMILE_SERVE_ASSETS_H
#define EMILE_SERVE_ASSETS_H

#include <stddef.h>

typedef struct asset {
    const char *name;         /* file name under assets/, e.g. "app.js" */
    const char *data;         /* NUL-terminated */
    const size_t *len;        /* bytes, without the NUL */
} asset_t;

extern const asset_t assets_table[];
extern const size_t assets_count;

/* The asset named name ("index.html"), or NULL. */
const asset_t *assets_find(const char *name);

/* The Content-Type for a file name, by its extension. */
const char *assets_content_type(const char *name);

#endif
