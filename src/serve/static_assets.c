/* static_assets.c -- serving the embedded pages.  "/" is the single page
 * (the Kitchen and the Tasting Room are views of it); any other path names
 * an asset file. */
#include "serve_internal.h"
#include "assets.h"

#include <string.h>

const asset_t *assets_find(const char *name)
{
    for (size_t i = 0; i < assets_count; i++)
        if (strcmp(assets_table[i].name, name) == 0)
            return &assets_table[i];
    return NULL;
}

const char *assets_content_type(const char *name)
{
    static const struct { const char *ext, *type; } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".json", "application/json"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

enum MHD_Result serve_asset(request_t *r, const char *path)
{
    if (strcmp(path, "/") == 0 || strcmp(path, "/kitchen") == 0 || strcmp(path, "/tasting") == 0)
        path = "/index.html";
    /* Names only: no directories, so nothing but the table is reachable. */
    const asset_t *a = path[0] == '/' && !strchr(path + 1, '/') ? assets_find(path + 1) : NULL;
    if (!a)
        return respond_error(r, 404, "no page %s", path);
    return respond_bytes(r, 200, assets_content_type(a->name), a->data, *a->len, NULL);
}
