/* cache_size.c -- see cache_size.h. */
#include "runner/cache_size.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "16384K", "1M", "32768" -> bytes; 0 when unreadable. */
static size_t parse_size(const char *s)
{
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s)
        return 0;
    if (*end == 'K' || *end == 'k')
        v <<= 10;
    else if (*end == 'M' || *end == 'm')
        v <<= 20;
    else if (*end == 'G' || *end == 'g')
        v <<= 30;
    return (size_t)v;
}

static int read_word(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int ok = fgets(buf, (int)n, f) != NULL;
    fclose(f);
    if (!ok)
        return -1;
    buf[strcspn(buf, "\n")] = 0;
    return 0;
}

size_t cache_llc_bytes(const char *sysfs_root, int *level)
{
    size_t best = 0;
    int best_level = 0;
    for (int i = 0; i < 16; i++) {
        char path[512], lv[32], type[32], size[32];
        snprintf(path, sizeof path, "%s/devices/system/cpu/cpu0/cache/index%d/level", sysfs_root, i);
        if (read_word(path, lv, sizeof lv) != 0)
            continue;
        snprintf(path, sizeof path, "%s/devices/system/cpu/cpu0/cache/index%d/type", sysfs_root, i);
        if (read_word(path, type, sizeof type) != 0 || strcmp(type, "Instruction") == 0)
            continue;
        snprintf(path, sizeof path, "%s/devices/system/cpu/cpu0/cache/index%d/size", sysfs_root, i);
        if (read_word(path, size, sizeof size) != 0)
            continue;
        int l = atoi(lv);
        size_t b = parse_size(size);
        if (b > 0 && (l > best_level || (l == best_level && b > best))) {
            best = b;
            best_level = l;
        }
    }
    if (level)
        *level = best_level;
    return best;
}

size_t cache_flush_bytes(const char *sysfs_root, size_t cap, char *source, size_t n)
{
    int level = 0;
    size_t llc = cache_llc_bytes(sysfs_root, &level);
    int len;
    if (llc > 0) {
        len = snprintf(source, n, "sysfs: L%d %zu KiB x 2", level, llc >> 10);
    } else {
        llc = CACHE_FLUSH_DEFAULT_LLC;
        len = snprintf(source, n, "no cache topology in %s/devices/system/cpu/cpu0/cache: %zu MiB assumed x 2",
                       sysfs_root, llc >> 20);
    }
    size_t bytes = 2 * llc;
    if (bytes < CACHE_FLUSH_MIN)
        bytes = CACHE_FLUSH_MIN;
    if (cap > 0 && bytes > cap) {
        bytes = cap < CACHE_FLUSH_MIN ? CACHE_FLUSH_MIN : cap;
        if (len > 0 && (size_t)len < n)
            snprintf(source + len, n - (size_t)len, ", capped at %zu MiB by the memory limit", bytes >> 20);
    }
    return bytes;
}
