/* landlock.c -- see landlock.h.  The system's <linux/landlock.h> may predate
 * the ABI this kernel has, so the few structures and constants used are
 * spelled out here (they are part of the kernel's stable ABI). */
#include "sandbox/landlock.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#define __NR_landlock_add_rule 445
#define __NR_landlock_restrict_self 446
#endif

struct ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;   /* ABI 4 */
    uint64_t scoped;               /* ABI 6 */
};

struct ll_path_beneath {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH 1

#define LL_FS_EXECUTE (1ULL << 0)
#define LL_FS_WRITE_FILE (1ULL << 1)
#define LL_FS_READ_FILE (1ULL << 2)
#define LL_FS_READ_DIR (1ULL << 3)
#define LL_FS_REMOVE_DIR (1ULL << 4)
#define LL_FS_REMOVE_FILE (1ULL << 5)
#define LL_FS_MAKE_CHAR (1ULL << 6)
#define LL_FS_MAKE_DIR (1ULL << 7)
#define LL_FS_MAKE_REG (1ULL << 8)
#define LL_FS_MAKE_SOCK (1ULL << 9)
#define LL_FS_MAKE_FIFO (1ULL << 10)
#define LL_FS_MAKE_BLOCK (1ULL << 11)
#define LL_FS_MAKE_SYM (1ULL << 12)
#define LL_FS_REFER (1ULL << 13)      /* ABI 2 */
#define LL_FS_TRUNCATE (1ULL << 14)   /* ABI 3 */
#define LL_FS_IOCTL_DEV (1ULL << 15)  /* ABI 5 */
#define LL_NET_BIND_TCP (1ULL << 0)
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LL_SCOPE_SIGNAL (1ULL << 1)

#define LL_FILE_RIGHTS (LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV)
#define LL_READ (LL_FS_EXECUTE | LL_FS_READ_FILE | LL_FS_READ_DIR)

int sandbox_landlock_abi(void)
{
    long v = syscall(__NR_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
    return v > 0 ? (int)v : 0;
}

/* Allow `rights` (masked to what the ruleset handles; file rights only for
 * a file) beneath path.  A path that does not exist is skipped. */
static int allow(int ruleset, const char *path, uint64_t rights, uint64_t handled)
{
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return 0;
    /* A directory takes every right; a file only the file rights. */
    struct stat st;
    int is_dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
    struct ll_path_beneath pb = {
        .allowed_access = rights & handled & (is_dir ? ~0ULL : LL_FILE_RIGHTS),
        .parent_fd = fd,
    };
    int rc = 0;
    if (pb.allowed_access && syscall(__NR_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &pb, 0) != 0)
        rc = -1;
    close(fd);
    return rc;
}

void sandbox_fs_add_list(sandbox_fs_t *fs, const char *list, char *store, size_t store_n)
{
    if (!list)
        return;
    int k = 0;
    while (k < SANDBOX_FS_EXTRA - 1 && fs->extra_ro[k])
        k++;
    size_t used = 0;
    const char *p = list;
    while (*p && k < SANDBOX_FS_EXTRA - 1) {
        size_t len = strcspn(p, ":");
        if (len > 0 && len < 1024 && used + len + 1 <= store_n && p[0] == '/') {
            memcpy(store + used, p, len);
            store[used + len] = 0;
            fs->extra_ro[k++] = store + used;
            used += len + 1;
        }
        p += len;
        if (*p == ':')
            p++;
    }
    fs->extra_ro[k] = NULL;
}

int sandbox_landlock_apply(const sandbox_fs_t *fs, char *err, size_t n)
{
    int abi = sandbox_landlock_abi();
    if (abi <= 0) {
        snprintf(err, n, "Landlock is not available in this kernel (%s)", strerror(errno));
        return 0;
    }
    uint64_t handled = LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_READ_DIR | LL_FS_REMOVE_DIR |
                       LL_FS_REMOVE_FILE | LL_FS_MAKE_CHAR | LL_FS_MAKE_DIR | LL_FS_MAKE_REG | LL_FS_MAKE_SOCK |
                       LL_FS_MAKE_FIFO | LL_FS_MAKE_BLOCK | LL_FS_MAKE_SYM;
    if (abi >= 2)
        handled |= LL_FS_REFER;
    if (abi >= 3)
        handled |= LL_FS_TRUNCATE;
    if (abi >= 5)
        handled |= LL_FS_IOCTL_DEV;
    struct ll_ruleset_attr attr = {.handled_access_fs = handled};
    size_t attr_size = sizeof attr.handled_access_fs;
    if (abi >= 4) {
        attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
        attr_size = offsetof(struct ll_ruleset_attr, scoped);
    }
    if (abi >= 6) {
        attr.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL;
        attr_size = sizeof attr;
    }
    int rs = (int)syscall(__NR_landlock_create_ruleset, &attr, attr_size, 0);
    if (rs < 0) {
        snprintf(err, n, "landlock_create_ruleset: %s", strerror(errno));
        return -1;
    }
    static const char *const system_ro[] = {"/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin",
                                            "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
                                            "/etc/alternatives", "/proc", "/sys", "/opt/cuda",
                                            "/dev/zero", "/dev/urandom", "/dev/random", "/dev/full"};
    int rc = 0;
    for (size_t i = 0; i < sizeof system_ro / sizeof system_ro[0] && rc == 0; i++)
        rc = allow(rs, system_ro[i], LL_READ, handled);
    for (int i = 0; i < SANDBOX_FS_EXTRA && fs->extra_ro[i] && rc == 0; i++)
        rc = allow(rs, fs->extra_ro[i], LL_READ, handled);
    if (rc == 0)
        rc = allow(rs, "/dev/null", LL_FS_READ_FILE | LL_FS_WRITE_FILE | LL_FS_TRUNCATE, handled);
    if (rc == 0 && fs->own_dir)
        rc = allow(rs, fs->own_dir, fs->own_write ? handled : LL_READ, handled);
    if (rc == 0 && fs->devices) {
        glob_t g;
        if (glob("/dev/nvidia*", 0, NULL, &g) == 0) {
            for (size_t i = 0; i < g.gl_pathc && rc == 0; i++)
                rc = allow(rs, g.gl_pathv[i], LL_FS_READ_FILE | LL_FS_WRITE_FILE | LL_FS_IOCTL_DEV | LL_FS_READ_DIR,
                           handled);
            globfree(&g);
        }
        if (rc == 0)
            rc = allow(rs, "/dev/dri", LL_FS_READ_FILE | LL_FS_WRITE_FILE | LL_FS_IOCTL_DEV | LL_FS_READ_DIR,
                       handled);
    }
    if (rc != 0) {
        snprintf(err, n, "landlock_add_rule: %s", strerror(errno));
        close(rs);
        return -1;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || syscall(__NR_landlock_restrict_self, rs, 0) != 0) {
        snprintf(err, n, "landlock_restrict_self: %s", strerror(errno));
        close(rs);
        return -1;
    }
    close(rs);
    return abi;
}
