/*
 * test_serve_assets.c -- the pages embedded in the binary are byte for
 * byte the files of src/serve/assets/ (run scripts/embed_assets.sh after
 * editing one), each file has exactly one entry, and content types follow
 * the extension.  Runs from the repository root (as `make test` does).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/assets.h"

#define DIR_ASSETS "src/serve/assets"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    b[*len] = 0;
    fclose(f);
    return b;
}

static void test_embedded_match_files(void **state)
{
    (void)state;
    DIR *d = opendir(DIR_ASSETS);
    assert_non_null(d);                       /* run from the repository root */
    size_t files = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        files++;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", DIR_ASSETS, e->d_name);
        size_t len;
        char *want = slurp(path, &len);
        assert_non_null(want);
        const asset_t *a = assets_find(e->d_name);
        if (!a)
            fail_msg("%s is not embedded: run scripts/embed_assets.sh", path);
        if (*a->len != len || memcmp(a->data, want, len) != 0)
            fail_msg("%s differs from its embedded copy: run scripts/embed_assets.sh", path);
        free(want);
    }
    closedir(d);
    assert_true(files >= 5);
    assert_int_equal(assets_count, files);    /* nothing stale left behind */
    assert_null(assets_find("no-such.js"));
    assert_non_null(assets_find("index.html"));
}

static void test_content_types(void **state)
{
    (void)state;
    assert_string_equal(assets_content_type("index.html"), "text/html; charset=utf-8");
    assert_string_equal(assets_content_type("app.js"), "text/javascript; charset=utf-8");
    assert_string_equal(assets_content_type("style.css"), "text/css; charset=utf-8");
    assert_string_equal(assets_content_type("favicon.svg"), "image/svg+xml");
    assert_string_equal(assets_content_type("README"), "application/octet-stream");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedded_match_files),
        cmocka_unit_test(test_content_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
