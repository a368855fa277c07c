/* compile_cache.c -- see compile_cache.h. */
#include "worker/compile_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/lang.h"
#include "util/fs.h"
#include "util/paths.h"

#define MAX_OBJECT ((size_t)1 << 30)

/* One field of the key: its name, its length, its bytes (so no two lists
 * of fields hash alike by running into each other). */
static void field(EVP_MD_CTX *h, const char *name, const void *data, size_t len)
{
    uint64_t l = len;
    EVP_DigestUpdate(h, name, strlen(name) + 1);
    EVP_DigestUpdate(h, &l, sizeof l);
    EVP_DigestUpdate(h, data, len);
}

/* The compiler's path: argv0 itself when it names a file, else found on
 * PATH.  0, or -1. */
static int find_compiler(const char *argv0, char out[PATH_MAX])
{
    if (strchr(argv0, '/'))
        return realpath(argv0, out) ? 0 : -1;
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t len = strcspn(path, ":");
        char cand[PATH_MAX];
        snprintf(cand, sizeof cand, "%.*s/%s", (int)len, path, argv0);
        if (access(cand, X_OK) == 0 && realpath(cand, out))
            return 0;
        path += len + (path[len] == ':');
    }
    return -1;
}

/* arg with every occurrence of dir written as "$DIR", into out. */
static void without_dir(const char *arg, const char *dir, char *out, size_t n)
{
    size_t dl = dir ? strlen(dir) : 0, off = 0;
    while (*arg && off + 1 < n) {
        if (dl && strncmp(arg, dir, dl) == 0) {
            off += (size_t)snprintf(out + off, n - off, "$DIR");
            arg += dl;
        } else {
            out[off++] = *arg++;
        }
    }
    out[off < n ? off : n - 1] = '\0';
}

/* A file's identity: its resolved path, size, modification time, inode. */
static void identity(EVP_MD_CTX *h, const char *what, const char *path, const struct stat *st)
{
    char id[PATH_MAX + 128];
    snprintf(id, sizeof id, "%.4096s %lld %lld.%09ld %llu", path, (long long)st->st_size, (long long)st->st_mtim.tv_sec,
             st->st_mtim.tv_nsec, (unsigned long long)st->st_ino);
    field(h, what, id, strlen(id));
}

/* What an argument naming a path outside the work directory brings in (a
 * build script, nvcc, a site-packages folder): a small file's content, a
 * large file's or a folder's identity (a folder's changes when an entry is
 * added or removed: a package installed over another). */
static void argument_path(EVP_MD_CTX *h, const char *arg, const char *work_dir)
{
    size_t wl = work_dir ? strlen(work_dir) : 0;
    struct stat st;
    char real[PATH_MAX];
    if (arg[0] != '/' || (wl && strncmp(arg, work_dir, wl) == 0) || stat(arg, &st) != 0 || !realpath(arg, real))
        return;
    if (S_ISREG(st.st_mode) && st.st_size <= (1 << 20)) {
        size_t len = 0;
        char *text = fs_read_file(real, (size_t)1 << 20, &len);
        if (text) {
            field(h, "argument file", real, strlen(real));
            field(h, "content", text, len);
            free(text);
            return;
        }
    }
    identity(h, "argument path", real, &st);
}

/* A compiler that is a virtual environment's interpreter (bin/python3
 * beside pyvenv.cfg) depends on its site-packages (Triton): their
 * folders' identities. */
static void venv_packages(EVP_MD_CTX *h, const char *argv0)
{
    if (argv0[0] != '/')
        return;
    char root[PATH_MAX], probe[PATH_MAX + 32];
    snprintf(root, sizeof root, "%s", argv0);
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(root, '/');
        if (!slash || slash == root)
            return;
        *slash = '\0';
    }
    snprintf(probe, sizeof probe, "%s/pyvenv.cfg", root);
    if (access(probe, R_OK) != 0)
        return;
    snprintf(probe, sizeof probe, "%s/lib", root);
    DIR *d = opendir(probe);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, "python", 6) != 0)
            continue;
        char site[PATH_MAX + 300];
        struct stat st;
        snprintf(site, sizeof site, "%s/lib/%.200s/site-packages", root, e->d_name);
        if (stat(site, &st) == 0)
            identity(h, "site-packages", site, &st);
    }
    if (d)
        closedir(d);
}

int compile_cache_key(const char *source, char *const argv[], const char *work_dir,
                      const char *const headers[], const char *device_key, compile_key_t *key,
                      char *err, size_t n)
{
    if (!argv || !argv[0]) {
        snprintf(err, n, "no compile command");
        return -1;
    }
    char compiler[PATH_MAX];
    struct stat st;
    if (find_compiler(argv[0], compiler) != 0 || stat(compiler, &st) != 0) {
        snprintf(err, n, "cannot find the compiler %s: %s", argv[0], strerror(errno ? errno : ENOENT));
        return -1;
    }
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    if (!h || EVP_DigestInit_ex(h, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(h);
        snprintf(err, n, "SHA-256 is not available");
        return -1;
    }
    const char version[] = "emile compile cache 1";
    field(h, "version", version, sizeof version);
    field(h, "source", source, strlen(source));
    char arg[8192];
    for (int i = 0; argv[i]; i++) {
        without_dir(argv[i], work_dir, arg, sizeof arg);
        field(h, "arg", arg, strlen(arg));
        if (i > 0)
            argument_path(h, argv[i], work_dir);
    }
    identity(h, "compiler", compiler, &st);
    venv_packages(h, argv[0]);
    int rc = 0;
    for (int i = 0; headers && headers[i] && rc == 0; i++) {
        size_t len = 0;
        char *text = fs_read_file(headers[i], (size_t)16 << 20, &len);
        if (!text) {
            snprintf(err, n, "cannot read %s: %s", headers[i], strerror(errno));
            rc = -1;
            break;
        }
        const char *base = strrchr(headers[i], '/');
        field(h, "header", base ? base + 1 : headers[i], strlen(base ? base + 1 : headers[i]));
        field(h, "content", text, len);
        free(text);
    }
    const char *dk = device_key ? device_key : "";
    field(h, "device", dk, strlen(dk));
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (rc == 0 && EVP_DigestFinal_ex(h, md, &mdlen) == 1 && mdlen == 32) {
        for (unsigned i = 0; i < 32; i++)
            snprintf(key->hex + 2 * i, 3, "%02x", md[i]);
    } else if (rc == 0) {
        snprintf(err, n, "SHA-256 failed");
        rc = -1;
    }
    EVP_MD_CTX_free(h);
    return rc;
}

/* Nobody but us (or root) may rename a folder above the cache: each one
 * is ours or root's, and one others may write is sticky (/tmp).  0, or -1
 * with err. */
static int safe_ancestors(const char *dir, char *err, size_t n)
{
    char real[PATH_MAX];
    if (!realpath(dir, real)) {
        snprintf(err, n, "cannot resolve the compile cache %s: %s", dir, strerror(errno));
        return -1;
    }
    for (char *slash = strrchr(real, '/'); slash; slash = strrchr(real, '/')) {
        if (slash == real)
            slash[1] = '\0';
        else
            *slash = '\0';
        struct stat st;
        memset(&st, 0, sizeof st);
        if (stat(real, &st) != 0 || (st.st_uid != 0 && st.st_uid != geteuid()) ||
            ((st.st_mode & 022) && !(st.st_mode & S_ISVTX))) {
            snprintf(err, n, "the compile cache %s lies in %s, which others may change (owner %u, mode %o)", dir,
                     real, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
            return -1;
        }
        if (slash == real)
            break;
    }
    return 0;
}

int compile_cache_open(compile_cache_t *c, const char *dir, size_t max_bytes, char *err, size_t n)
{
    memset(c, 0, sizeof *c);
    if (dir)
        snprintf(c->dir, sizeof c->dir, "%s", dir);
    else
        snprintf(c->dir, sizeof c->dir, "%.1000s/kernels", emile_cache_dir());
    c->max_bytes = max_bytes ? max_bytes : (size_t)2 << 30;
    if (fs_mkdir_p(c->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, n, "cannot make the compile cache %s: %s", c->dir, strerror(errno));
        return -1;
    }
    /* Objects here are loaded and run: nobody else may put one here. */
    struct stat st;
    if (lstat(c->dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022)) {
        snprintf(err, n, "the compile cache %s is not a directory of ours closed to others", c->dir);
        return -1;
    }
    if ((st.st_mode & 077) && chmod(c->dir, 0700) != 0) {
        snprintf(err, n, "cannot close the compile cache %s to others: %s", c->dir, strerror(errno));
        return -1;
    }
    return safe_ancestors(c->dir, err, n);
}

static void entry(const compile_cache_t *c, const compile_key_t *k, const char *ext, char *out, size_t n)
{
    snprintf(out, n, "%.1000s/%s%s", c->dir, k->hex, ext);
}

/* so_path's side file: its name with ext instead of ".so" (0), or -1 when
 * so_path does not end in ".so" or the name does not fit. */
static int side_path(const char *so_path, const char *ext, char *out, size_t n)
{
    size_t len = strlen(so_path);
    if (len < 3 || strcmp(so_path + len - 3, ".so") != 0)
        return -1;
    int w = snprintf(out, n, "%.*s%s", (int)(len - 3), so_path, ext);
    return w > 0 && (size_t)w < n ? 0 : -1;
}

/* Copy src to dst (created with mode), refusing links.  0, or -1. */
static int copy_file(const char *src, const char *dst, int mode)
{
    /* O_NONBLOCK: a fifo put in the object's place must not hang us. */
    int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct stat st;
    if (in >= 0 && (fstat(in, &st) != 0 || !S_ISREG(st.st_mode))) {
        close(in);
        errno = EINVAL;              /* a fifo or a device is no object */
        return -1;
    }
    if (in < 0)
        return -1;
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    int rc = out < 0 ? -1 : 0;
    char buf[65536];
    size_t total = 0;
    while (rc == 0) {
        ssize_t k = read(in, buf, sizeof buf);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            rc = k < 0 ? -1 : 0;
            break;
        }
        total += (size_t)k;
        if (total > MAX_OBJECT || fs_write_all(out, buf, (size_t)k) != 0)
            rc = -1;
    }
    close(in);
    if (out >= 0 && close(out) != 0)
        rc = -1;
    return rc;
}

int compile_cache_get(const compile_cache_t *c, const compile_key_t *key, const char *dest_so,
                      const char *const side_exts[], char **log, char *err, size_t n)
{
    char so[1200], lg[1200];
    entry(c, key, ".so", so, sizeof so);
    entry(c, key, ".log", lg, sizeof lg);
    if (log)
        *log = NULL;
    if (access(so, R_OK) != 0)
        return 1;
    /* The side files first: the object is what says "hit". */
    for (int i = 0; side_exts && side_exts[i]; i++) {
        char kept[1200], dest[1200];
        entry(c, key, side_exts[i], kept, sizeof kept);
        if (access(kept, R_OK) != 0)
            continue;
        if (side_path(dest_so, side_exts[i], dest, sizeof dest) != 0) {
            snprintf(err, n, "cannot name %s's %s side file (not a .so, or too long)", dest_so, side_exts[i]);
            return -1;
        }
        if (copy_file(kept, dest, 0644) != 0) {
            snprintf(err, n, "cannot copy %s beside %s: %s", kept, dest_so, strerror(errno));
            return -1;
        }
    }
    if (copy_file(so, dest_so, 0755) != 0) {
        snprintf(err, n, "cannot copy %s to %s: %s", so, dest_so, strerror(errno));
        return -1;
    }
    utimensat(AT_FDCWD, so, NULL, 0);       /* last use, for the trim */
    if (log)
        *log = fs_read_file(lg, (size_t)1 << 20, NULL);
    return 0;
}

typedef struct kept {
    char name[80];
    struct timespec used;
    off_t size;
} kept_t;

static int by_use(const void *a, const void *b)
{
    const struct timespec *x = &((const kept_t *)a)->used, *y = &((const kept_t *)b)->used;
    if (x->tv_sec != y->tv_sec)
        return (x->tv_sec > y->tv_sec) - (x->tv_sec < y->tv_sec);
    return (x->tv_nsec > y->tv_nsec) - (x->tv_nsec < y->tv_nsec);
}

/* Every language's side-file extensions, NULL-terminated: the cache is
 * shared by the languages, so a trim started by one must weigh and remove
 * the others' side files too. */
static const char *const *all_side_exts(void)
{
    static const char *exts[16];
    if (!exts[0]) {
        int n = 0;
        for (const lang_t *const *l = lang_all(); *l; l++)
            for (int i = 0; (*l)->side_exts && (*l)->side_exts[i] && n < 15; i++)
                exts[n++] = (*l)->side_exts[i];
    }
    return exts;
}

/* Remove the least recently used objects until the directory fits. */
static void trim(const compile_cache_t *c)
{
    const char *const *side_exts = all_side_exts();
    DIR *d = opendir(c->dir);
    if (!d)
        return;
    kept_t *k = NULL;
    size_t nk = 0, cap = 0;
    unsigned long long total = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len != 67 || strcmp(e->d_name + 64, ".so") != 0)
            continue;
        char p[1200];
        struct stat st;
        snprintf(p, sizeof p, "%.1000s/%.80s", c->dir, e->d_name);
        if (stat(p, &st) != 0)
            continue;
        if (nk == cap) {
            cap = cap ? cap * 2 : 64;
            kept_t *nkp = realloc(k, cap * sizeof *k);
            if (!nkp)
                break;
            k = nkp;
        }
        snprintf(k[nk].name, sizeof k[nk].name, "%.64s", e->d_name);
        k[nk].used = st.st_mtim;
        k[nk].size = st.st_size;
        /* An entry's side files count toward its size (a cubin is about
         * as large as its object). */
        for (int i = 0; side_exts && side_exts[i]; i++) {
            snprintf(p, sizeof p, "%.1000s/%.64s%.32s", c->dir, e->d_name, side_exts[i]);
            if (stat(p, &st) == 0)
                k[nk].size += st.st_size;
        }
        total += (unsigned long long)k[nk].size;
        nk++;
    }
    closedir(d);
    qsort(k, nk, sizeof *k, by_use);
    for (size_t g = 0; g < nk && total > c->max_bytes; g++) {
        char p[1200];
        snprintf(p, sizeof p, "%.1000s/%s.so", c->dir, k[g].name);
        unlink(p);
        snprintf(p, sizeof p, "%.1000s/%s.log", c->dir, k[g].name);
        unlink(p);
        for (int i = 0; side_exts && side_exts[i]; i++) {
            snprintf(p, sizeof p, "%.1000s/%s%.32s", c->dir, k[g].name, side_exts[i]);
            unlink(p);
        }
        total -= (unsigned long long)k[g].size;
    }
    free(k);
}

/* Write src's bytes (or text) to final through a temporary name. */
static int publish(const compile_cache_t *c, const char *src, const char *text, const char *final,
                   char *err, size_t n)
{
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%.1000s/.tmp-%d-%ld", c->dir, (int)getpid(), random());
    int rc;
    if (src) {
        rc = copy_file(src, tmp, 0700);
    } else {
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        rc = fd < 0 ? -1 : fs_write_all(fd, text, strlen(text));
        if (fd >= 0 && close(fd) != 0)
            rc = -1;
    }
    if (rc == 0 && rename(tmp, final) != 0)
        rc = -1;
    if (rc != 0) {
        snprintf(err, n, "cannot keep %s in the compile cache: %s", final, strerror(errno));
        unlink(tmp);
    }
    return rc;
}

int compile_cache_put(const compile_cache_t *c, const compile_key_t *key, const char *so_path,
                      const char *const side_exts[], const char *log, char *err, size_t n)
{
    char so[1200], lg[1200];
    entry(c, key, ".so", so, sizeof so);
    entry(c, key, ".log", lg, sizeof lg);
    /* The log and the side files first: whoever finds the object finds
     * them.  A side file the build did not leave is not kept. */
    if (publish(c, NULL, log ? log : "", lg, err, n) != 0)
        return -1;
    for (int i = 0; side_exts && side_exts[i]; i++) {
        char side[1200], kept[1200];
        if (side_path(so_path, side_exts[i], side, sizeof side) != 0 || access(side, R_OK) != 0)
            continue;
        entry(c, key, side_exts[i], kept, sizeof kept);
        if (publish(c, side, NULL, kept, err, n) != 0)
            return -1;
    }
    if (publish(c, so_path, NULL, so, err, n) != 0)
        return -1;
    trim(c);
    return 0;
}
