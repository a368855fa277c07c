/*
 * safetensors.c -- mapping and validating safetensors files and sharded
 * checkpoints (see safetensors.h for the format).
 */
#include "engine/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "emile.h"

/* A header bigger than this is not a checkpoint we wrote or HF wrote (the
 * reference implementation refuses headers over 100 MB too). */
#define ST_MAX_HEADER (100u << 20)

int st_dtype_from_string(const char *s)
{
    if (strcmp(s, "F32") == 0) return EMILE_DTYPE_F32;
    if (strcmp(s, "F16") == 0) return EMILE_DTYPE_F16;
    if (strcmp(s, "BF16") == 0) return EMILE_DTYPE_BF16;
    if (strcmp(s, "F64") == 0) return EMILE_DTYPE_F64;
    if (strcmp(s, "I32") == 0) return EMILE_DTYPE_I32;
    if (strcmp(s, "I64") == 0) return EMILE_DTYPE_I64;
    return -1;
}

float st_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t st_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)      /* NaN: keep it a NaN */
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);           /* round to nearest even */
    return (uint16_t)(u >> 16);
}

float st_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else {                               /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while ((man & 0x400u) == 0) { man <<= 1; exp--; }
            man &= 0x3ffu;
            u = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);  /* inf or NaN */
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

int st_tensor_to_f32(const st_tensor_t *t, int64_t offset, int64_t n, float *out)
{
    if (offset < 0 || n < 0 || offset + n > t->numel)
        return -1;
    if (t->dtype == EMILE_DTYPE_F32) {
        memcpy(out, (const char *)t->data + offset * 4, (size_t)n * 4);
        return 0;
    }
    if (t->dtype != EMILE_DTYPE_BF16 && t->dtype != EMILE_DTYPE_F16)
        return -1;
    /* The mapping gives no alignment guarantee for 2-byte elements past an
     * odd offset in a hand-made file, so read through memcpy. */
    const unsigned char *p = (const unsigned char *)t->data + offset * 2;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + i * 2, 2);
        out[i] = t->dtype == EMILE_DTYPE_BF16 ? st_bf16_to_f32(h) : st_f16_to_f32(h);
    }
    return 0;
}

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const st_tensor_t *)a)->name, ((const st_tensor_t *)b)->name);
}

static void free_tensors(st_tensor_t *ts, int n)
{
    for (int i = 0; i < n; i++)
        free(ts[i].name);
    free(ts);
}

/* Parse one header entry into *t; 0 or -1 with err filled. */
static int parse_entry(const char *path, const char *name, json_t *v,
                       const unsigned char *base, size_t data_len, st_tensor_t *t,
                       char *err, size_t errlen)
{
    json_t *jd = json_object_get(v, "dtype");
    json_t *js = json_object_get(v, "shape");
    json_t *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo) ||
        json_array_size(jo) != 2) {
        snprintf(err, errlen, "%s: tensor '%s': header entry needs dtype, shape "
                 "and data_offsets [begin, end]", path, name);
        return -1;
    }
    t->dtype = st_dtype_from_string(json_string_value(jd));
    if (t->dtype < 0) {
        snprintf(err, errlen, "%s: tensor '%s': unsupported dtype '%s'", path, name,
                 json_string_value(jd));
        return -1;
    }
    size_t nd = json_array_size(js);
    if (nd > ST_MAX_DIMS) {
        snprintf(err, errlen, "%s: tensor '%s': %zu dims (at most %d)", path, name,
                 nd, ST_MAX_DIMS);
        return -1;
    }
    t->ndim = (int)nd;
    t->numel = 1;
    for (size_t d = 0; d < nd; d++) {
        json_t *e = json_array_get(js, d);
        if (!json_is_integer(e) || json_integer_value(e) < 0 ||
            json_integer_value(e) > ((int64_t)1 << 40)) {
            snprintf(err, errlen, "%s: tensor '%s': bad shape entry %zu", path, name, d);
            return -1;
        }
        t->shape[d] = json_integer_value(e);
        t->numel *= t->shape[d];
        if (t->numel > ((int64_t)1 << 40)) {
            snprintf(err, errlen, "%s: tensor '%s': too many elements", path, name);
            return -1;
        }
    }
    json_t *jb = json_array_get(jo, 0), *je = json_array_get(jo, 1);
    if (!json_is_integer(jb) || !json_is_integer(je)) {
        snprintf(err, errlen, "%s: tensor '%s': data_offsets are not integers", path, name);
        return -1;
    }
    int64_t b = json_integer_value(jb), e = json_integer_value(je);
    if (b < 0 || e < b || (uint64_t)e > data_len) {
        snprintf(err, errlen, "%s: tensor '%s': data_offsets [%lld, %lld] outside the "
                 "%zu data bytes", path, name, (long long)b, (long long)e, data_len);
        return -1;
    }
    size_t want = (size_t)t->numel * emile_dtype_size(t->dtype);
    if ((size_t)(e - b) != want) {
        snprintf(err, errlen, "%s: tensor '%s': %lld bytes for a shape of %lld "
                 "elements (%zu bytes expected)", path, name, (long long)(e - b),
                 (long long)t->numel, want);
        return -1;
    }
    t->data = base + b;
    t->nbytes = want;
    t->name = strdup(name);
    if (!t->name) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* Parse the JSON header of a mapped file into f->tensors. */
static int parse_header(st_file_t *f, const char *path, const unsigned char *hdr,
                        size_t hlen, const unsigned char *base, size_t data_len,
                        char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb((const char *)hdr, hlen, 0, &je);
    if (!root || !json_is_object(root)) {
        snprintf(err, errlen, "%s: header is not a JSON object (%s)", path,
                 root ? "not an object" : je.text);
        json_decref(root);
        return -1;
    }
    size_t n = json_object_size(root);
    st_tensor_t *ts = calloc(n ? n : 1, sizeof *ts);
    if (!ts) {
        json_decref(root);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int k = 0, rc = 0;
    const char *name;
    json_t *v;
    json_object_foreach(root, name, v) {
        if (strcmp(name, "__metadata__") == 0)
            continue;
        if (!json_is_object(v)) {
            snprintf(err, errlen, "%s: tensor '%s': header entry is not an object", path, name);
            rc = -1;
            break;
        }
        rc = parse_entry(path, name, v, base, data_len, &ts[k], err, errlen);
        if (rc != 0)
            break;
        k++;
    }
    json_decref(root);
    if (rc != 0) {
        free_tensors(ts, k);
        return -1;
    }
    qsort(ts, (size_t)k, sizeof *ts, cmp_tensor);
    f->tensors = ts;
    f->n_tensors = k;
    return 0;
}

int st_file_open(st_file_t *f, const char *path, char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || sb.st_size < 8) {
        snprintf(err, errlen, "%s: too short for a safetensors file", path);
        close(fd);
        return -1;
    }
    size_t len = (size_t)sb.st_size;
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);                 /* the mapping keeps the file alive */
    if (map == MAP_FAILED) {
        snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
        return -1;
    }
    const unsigned char *p = map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | p[i];
    if (hlen == 0 || hlen > ST_MAX_HEADER || hlen > len - 8) {
        snprintf(err, errlen, "%s: header length %llu does not fit the %zu-byte file",
                 path, (unsigned long long)hlen, len);
        munmap(map, len);
        return -1;
    }
    const unsigned char *base = p + 8 + hlen;
    if (parse_header(f, path, p + 8, (size_t)hlen, base, len - 8 - (size_t)hlen,
                     err, errlen) != 0) {
        munmap(map, len);
        return -1;
    }
    f->map = map;
    f->map_len = len;
    f->path = strdup(path);
    if (!f->path) {
        st_file_close(f);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void st_file_close(st_file_t *f)
{
    if (!f)
        return;
    free_tensors(f->tensors, f->n_tensors);
    if (f->map)
        munmap(f->map, f->map_len);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const st_tensor_t *st_file_find(const st_file_t *f, const char *name)
{
    st_tensor_t key = { .name = (char *)name };
    return bsearch(&key, f->tensors, (size_t)f->n_tensors, sizeof key, cmp_tensor);
}

const st_tensor_t *st_checkpoint_find(const st_checkpoint_t *c, const char *name)
{
    for (int i = 0; i < c->n_files; i++) {
        const st_tensor_t *t = st_file_find(&c->files[i], name);
        if (t)
            return t;
    }
    return NULL;
}

void st_checkpoint_close(st_checkpoint_t *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n_files; i++)
        st_file_close(&c->files[i]);
    free(c->files);
    memset(c, 0, sizeof *c);
}

/* A shard name from the index must be a plain file name inside dir. */
static int shard_name_ok(const char *s)
{
    return s[0] != '\0' && strchr(s, '/') == NULL && strcmp(s, ".") != 0 &&
           strcmp(s, "..") != 0;
}

/* Open every distinct shard the index names, then check the weight map. */
static int open_sharded(st_checkpoint_t *c, const char *dir, const char *index_path,
                        char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(index_path, 0, &je);
    if (!root) {
        snprintf(err, errlen, "%s: %s (line %d)", index_path, je.text, je.line);
        return -1;
    }
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(wm) || json_object_size(wm) == 0) {
        snprintf(err, errlen, "%s: no weight_map object", index_path);
        json_decref(root);
        return -1;
    }
    /* Distinct shard names, in order of first appearance. */
    size_t cap = json_object_size(wm);
    const char **names = calloc(cap, sizeof *names);
    c->files = calloc(cap, sizeof *c->files);
    int n = 0, rc = 0;
    if (!names || !c->files) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    const char *tname;
    json_t *v;
    json_object_foreach(wm, tname, v) {
        if (rc != 0)
            break;
        if (!json_is_string(v) || !shard_name_ok(json_string_value(v))) {
            snprintf(err, errlen, "%s: tensor '%s' maps to a bad shard name", index_path, tname);
            rc = -1;
            break;
        }
        const char *s = json_string_value(v);
        int seen = 0;
        for (int i = 0; i < n && !seen; i++)
            seen = strcmp(names[i], s) == 0;
        if (seen)
            continue;
        names[n] = s;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, s);
        rc = st_file_open(&c->files[n], path, err, errlen);
        if (rc == 0)
            c->n_files = ++n;
    }
    /* Every tensor of the map must be in the shard the map names. */
    json_object_foreach(wm, tname, v) {
        if (rc != 0)
            break;
        const char *s = json_string_value(v);
        for (int i = 0; i < n; i++) {
            if (strcmp(names[i], s) != 0)
                continue;
            if (!st_file_find(&c->files[i], tname)) {
                snprintf(err, errlen, "%s: tensor '%s' is not in shard %s", index_path,
                         tname, s);
                rc = -1;
            }
            break;
        }
    }
    free(names);
    json_decref(root);
    if (rc != 0)
        st_checkpoint_close(c);
    return rc;
}

int st_checkpoint_open(st_checkpoint_t *c, const char *dir, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (access(path, R_OK) == 0)
        return open_sharded(c, dir, path, err, errlen);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    c->files = calloc(1, sizeof *c->files);
    if (!c->files) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (st_file_open(&c->files[0], path, err, errlen) != 0) {
        free(c->files);
        c->files = NULL;
        return -1;
    }
    c->n_files = 1;
    return 0;
}
