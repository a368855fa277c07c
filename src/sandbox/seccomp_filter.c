/* seccomp_filter.c -- see seccomp_filter.h.  A classic BPF program, written
 * out by hand to keep the runner free of libraries.  x86-64 only: elsewhere
 * seccomp_install reports that it is unavailable. */
#include "sandbox/seccomp_filter.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)

#define LD_NR BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define LD_ARG(i) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[i]))
#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))
#define JEQ(k, t, f) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (k), (t), (f))
#define JSET(k, t, f) BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, (k), (t), (f))

static const struct { long nr; const char *name; } denied[] = {
    {SYS_fork, "fork"}, {SYS_vfork, "vfork"}, {SYS_execve, "execve"}, {SYS_execveat, "execveat"},
    {SYS_creat, "creat"}, {SYS_rename, "rename"}, {SYS_renameat, "renameat"},
    {SYS_renameat2, "renameat2"}, {SYS_unlink, "unlink"}, {SYS_unlinkat, "unlinkat"},
    {SYS_mkdir, "mkdir"}, {SYS_mkdirat, "mkdirat"}, {SYS_rmdir, "rmdir"}, {SYS_link, "link"},
    {SYS_linkat, "linkat"}, {SYS_symlink, "symlink"}, {SYS_symlinkat, "symlinkat"},
    {SYS_truncate, "truncate"}, {SYS_chmod, "chmod"}, {SYS_fchmodat, "fchmodat"},
    {SYS_chown, "chown"}, {SYS_lchown, "lchown"}, {SYS_fchownat, "fchownat"},
    {SYS_ptrace, "ptrace"}, {SYS_process_vm_readv, "process_vm_readv"},
    {SYS_process_vm_writev, "process_vm_writev"}, {SYS_setsid, "setsid"},
    {SYS_setpgid, "setpgid"}, {SYS_mount, "mount"}, {SYS_umount2, "umount2"},
    {SYS_unshare, "unshare"}, {SYS_setns, "setns"}, {SYS_chroot, "chroot"},
    {SYS_pivot_root, "pivot_root"}, {SYS_reboot, "reboot"}, {SYS_init_module, "init_module"},
    {SYS_finit_module, "finit_module"}, {SYS_delete_module, "delete_module"}, {SYS_bpf, "bpf"},
    {SYS_io_uring_setup, "io_uring_setup"}, {SYS_kexec_load, "kexec_load"},
    {SYS_setuid, "setuid"}, {SYS_setgid, "setgid"}, {SYS_setreuid, "setreuid"},
    {SYS_setresuid, "setresuid"}, {SYS_utimensat, "utimensat"}, {SYS_mknod, "mknod"},
    {SYS_mknodat, "mknodat"}, {SYS_tkill, "tkill"}, {SYS_pidfd_send_signal, "pidfd_send_signal"},
    {SYS_pidfd_getfd, "pidfd_getfd"}, {SYS_process_madvise, "process_madvise"},
    {SYS_name_to_handle_at, "name_to_handle_at"}, {SYS_open_by_handle_at, "open_by_handle_at"},
    {SYS_ftruncate, "ftruncate"}, {SYS_fallocate, "fallocate"},
    /* Memory no rlimit counts, or that outlives the process. */
    {SYS_memfd_create, "memfd_create"}, {SYS_memfd_secret, "memfd_secret"},
    {SYS_shmget, "shmget"}, {SYS_shmat, "shmat"}, {SYS_shmctl, "shmctl"}, {SYS_shmdt, "shmdt"},
    {SYS_msgget, "msgget"}, {SYS_msgsnd, "msgsnd"}, {SYS_msgrcv, "msgrcv"}, {SYS_msgctl, "msgctl"},
    {SYS_semget, "semget"}, {SYS_semop, "semop"}, {SYS_semctl, "semctl"}, {SYS_semtimedop, "semtimedop"},
    {SYS_mq_open, "mq_open"}, {SYS_mq_unlink, "mq_unlink"}, {SYS_mq_timedsend, "mq_timedsend"},
    {SYS_mq_timedreceive, "mq_timedreceive"}, {SYS_mq_notify, "mq_notify"},
    /* Other processes, other users' keys, the kernel's internals. */
    {SYS_pidfd_open, "pidfd_open"}, {SYS_kcmp, "kcmp"}, {SYS_migrate_pages, "migrate_pages"},
    {SYS_keyctl, "keyctl"}, {SYS_add_key, "add_key"}, {SYS_request_key, "request_key"},
    {SYS_perf_event_open, "perf_event_open"}, {SYS_userfaultfd, "userfaultfd"},
    {SYS_process_mrelease, "process_mrelease"}, {SYS_io_uring_enter, "io_uring_enter"},
    {SYS_io_uring_register, "io_uring_register"},
    {SYS_open_tree, "open_tree"}, {SYS_move_mount, "move_mount"}, {SYS_fsopen, "fsopen"},
    {SYS_fsconfig, "fsconfig"}, {SYS_fsmount, "fsmount"}, {SYS_fspick, "fspick"},
    {SYS_mount_setattr, "mount_setattr"}, {SYS_setresgid, "setresgid"}, {SYS_setregid, "setregid"},
    {SYS_setgroups, "setgroups"}, {SYS_setfsuid, "setfsuid"}, {SYS_setfsgid, "setfsgid"},
    {SYS_vhangup, "vhangup"}, {SYS_acct, "acct"}, {SYS_swapon, "swapon"}, {SYS_swapoff, "swapoff"},
};

const char *seccomp_syscall_name(long nr)
{
    for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++)
        if (denied[i].nr == nr)
            return denied[i].name;
    switch (nr) {
    case SYS_clone: return "clone (new process)";
    case SYS_socket: return "socket (network)";
    case SYS_open: return "open (for writing)";
    case SYS_openat: return "openat (for writing)";
    case SYS_kill: return "kill (another process)";
    case SYS_tgkill: return "tgkill (another process)";
    case SYS_openat2: return "openat2";
    case SYS_close: return "close (the runner's control socket)";
    case SYS_shutdown: return "shutdown (the runner's control socket)";
    case SYS_dup2: return "dup2 (onto the runner's control socket)";
    case SYS_dup3: return "dup3 (onto the runner's control socket)";
    case SYS_mmap: return "mmap (executable memory: the kernel loaded code at run time)";
    case SYS_mprotect: return "mprotect (executable memory: the kernel loaded code at run time)";
    case SYS_rt_sigqueueinfo: return "rt_sigqueueinfo (another process)";
    case SYS_rt_tgsigqueueinfo: return "rt_tgsigqueueinfo (another process)";
    case SYS_ioctl: return "ioctl (TIOCSTI or TIOCLINUX: typing into a terminal)";
    case SYS_prctl: return "prctl (PR_SET_PDEATHSIG: outliving the process that started it)";
    case SYS_fcntl: return "fcntl (F_SETOWN/F_SETOWN_EX/F_SETSIG: signals sent to another process)";
    case SYS_prlimit64: return "prlimit64 (another process's limits)";
    case SYS_personality: return "personality (a new execution domain, e.g. READ_IMPLIES_EXEC)";
    case SYS_sched_setaffinity: return "sched_setaffinity (another process)";
    case SYS_sched_setscheduler: return "sched_setscheduler (another process)";
    case SYS_sched_setparam: return "sched_setparam (another process)";
    case SYS_sched_setattr: return "sched_setattr (another process)";
    case SYS_setpriority: return "setpriority (another process)";
    case SYS_ioprio_set: return "ioprio_set (another process)";
    case SYS_move_pages: return "move_pages (another process)";
    case SYS_pkey_mprotect: return "pkey_mprotect (executable memory)";
    default: return "unknown";
    }
}

int seccomp_install(int write_errno, int ctl_fd, char *err, size_t n)
{
    const unsigned trap = SECCOMP_RET_TRAP;
    const unsigned allow = SECCOMP_RET_ALLOW;
    /* cuda (write_errno): the driver opens device files read-write lazily
     * (memory pools, UVM), so opens are allowed there; the sandbox user
     * cannot write outside its directory and /tmp anyway. */
    const unsigned wdeny = write_errno ? allow : trap;
    const unsigned enosys = SECCOMP_RET_ERRNO | ENOSYS;
    const unsigned pid = (unsigned)getpid();
    const unsigned wflags = 01 | 02 | 0100 | 01000 | 02000; /* WRONLY RDWR CREAT TRUNC APPEND */
    const size_t nd = sizeof denied / sizeof denied[0];

    struct sock_filter prog[1024];
    size_t k = 0;
    /* Architecture: anything but x86-64 (e.g. the x32 or i386 ABIs) dies. */
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    prog[k++] = (struct sock_filter)JEQ(AUDIT_ARCH_X86_64, 1, 0);
    prog[k++] = (struct sock_filter)RET(SECCOMP_RET_KILL_PROCESS);
    prog[k++] = (struct sock_filter)LD_NR;
    prog[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1); /* x32 */
    prog[k++] = (struct sock_filter)RET(SECCOMP_RET_KILL_PROCESS);
    for (size_t i = 0; i < nd; i++) {
        prog[k++] = (struct sock_filter)JEQ((unsigned)denied[i].nr, 0, 1);
        prog[k++] = (struct sock_filter)RET(trap);
    }
    /* clone: threads only. */
    prog[k++] = (struct sock_filter)JEQ(SYS_clone, 0, 4);
    prog[k++] = (struct sock_filter)LD_ARG(0);
    prog[k++] = (struct sock_filter)JSET(CLONE_THREAD, 0, 1);
    prog[k++] = (struct sock_filter)RET(allow);
    prog[k++] = (struct sock_filter)RET(trap);
    /* clone3 hides its flags in memory: make libc fall back to clone. */
    prog[k++] = (struct sock_filter)LD_NR;
    prog[k++] = (struct sock_filter)JEQ(SYS_clone3, 0, 1);
    prog[k++] = (struct sock_filter)RET(enosys);
    /* ioctl: no TIOCSTI (push characters into a terminal's input: the
     * user's shell would run them after we exit) and no TIOCLINUX (its
     * paste and console subcommands), whatever the descriptor.  The kernel
     * takes the request as an unsigned int: its low word is all that
     * counts, and that is what LD_ARG loads. */
    prog[k++] = (struct sock_filter)JEQ(SYS_ioctl, 0, 5);
    prog[k++] = (struct sock_filter)LD_ARG(1);
    prog[k++] = (struct sock_filter)JEQ(TIOCSTI, 2, 0);
    prog[k++] = (struct sock_filter)JEQ(TIOCLINUX, 1, 0);
    prog[k++] = (struct sock_filter)RET(allow);
    prog[k++] = (struct sock_filter)RET(trap);
    /* prctl: not PR_SET_PDEATHSIG (the runner set SIGKILL so that it dies
     * with the worker; resetting it would let it outlive the worker).
     * Other options (PR_SET_NAME: OpenMP's and CUDA's threads) pass. */
    prog[k++] = (struct sock_filter)JEQ(SYS_prctl, 0, 4);
    prog[k++] = (struct sock_filter)LD_ARG(0);
    prog[k++] = (struct sock_filter)JEQ(PR_SET_PDEATHSIG, 0, 1);
    prog[k++] = (struct sock_filter)RET(trap);
    prog[k++] = (struct sock_filter)RET(allow);
    /* socket: AF_UNIX only. */
    prog[k++] = (struct sock_filter)JEQ(SYS_socket, 0, 4);
    prog[k++] = (struct sock_filter)LD_ARG(0);
    /* cpu: no sockets at all (AF_UNIX paths escape the network namespace:
     * D-Bus, docker.sock); cuda: AF_UNIX for the driver's own use. */
    prog[k++] = (struct sock_filter)JEQ(write_errno ? 1 /* AF_UNIX */ : 0xffffffffu, 0, 1);
    prog[k++] = (struct sock_filter)RET(allow);
    prog[k++] = (struct sock_filter)RET(trap);
    /* open(path, flags): read-only. */
    prog[k++] = (struct sock_filter)LD_NR;
    prog[k++] = (struct sock_filter)JEQ(SYS_open, 0, 4);
    prog[k++] = (struct sock_filter)LD_ARG(1);
    prog[k++] = (struct sock_filter)JSET(wflags, 0, 1);
    prog[k++] = (struct sock_filter)RET(wdeny);
    prog[k++] = (struct sock_filter)RET(allow);
    /* openat(dir, path, flags): read-only. */
    prog[k++] = (struct sock_filter)JEQ(SYS_openat, 0, 4);
    prog[k++] = (struct sock_filter)LD_ARG(2);
    prog[k++] = (struct sock_filter)JSET(wflags, 0, 1);
    prog[k++] = (struct sock_filter)RET(wdeny);
    prog[k++] = (struct sock_filter)RET(allow);
    /* The control socket stays ours: no close/shutdown of it, no dup2/dup3
     * onto it. */
    const unsigned ctl = (unsigned)ctl_fd;
    prog[k++] = (struct sock_filter)JEQ(SYS_close, 1, 0);
    prog[k++] = (struct sock_filter)JEQ(SYS_shutdown, 0, 4);
    prog[k++] = (struct sock_filter)LD_ARG(0);
    prog[k++] = (struct sock_filter)JEQ(ctl, 0, 1);
    prog[k++] = (struct sock_filter)RET(trap);
    prog[k++] = (struct sock_filter)RET(allow);
    prog[k++] = (struct sock_filter)JEQ(SYS_dup2, 1, 0);
    prog[k++] = (struct sock_filter)JEQ(SYS_dup3, 0, 4);
    prog[k++] = (struct sock_filter)LD_ARG(1);
    prog[k++] = (struct sock_filter)JEQ(ctl, 0, 1);
    prog[k++] = (struct sock_filter)RET(trap);
    prog[k++] = (struct sock_filter)RET(allow);
    /* openat2 hides its flags in a struct: never (glibc does not need it). */
    prog[k++] = (struct sock_filter)JEQ(SYS_openat2, 0, 1);
    prog[k++] = (struct sock_filter)RET(wdeny);
    /* fcntl: no F_SETOWN, F_SETOWN_EX or F_SETSIG: with them a descriptor's
     * I/O signal (any signal, SIGKILL included) goes to a process of our
     * choosing, and no kill() call appears. */
    prog[k++] = (struct sock_filter)JEQ(SYS_fcntl, 0, 6);
    prog[k++] = (struct sock_filter)LD_ARG(1);
    prog[k++] = (struct sock_filter)JEQ(8 /* F_SETOWN */, 2, 0);
    prog[k++] = (struct sock_filter)JEQ(15 /* F_SETOWN_EX */, 1, 0);
    prog[k++] = (struct sock_filter)JEQ(10 /* F_SETSIG */, 0, 1);
    prog[k++] = (struct sock_filter)RET(trap);
    prog[k++] = (struct sock_filter)RET(allow);
    /* personality: only the query (0xffffffff); READ_IMPLIES_EXEC would
     * make every readable mapping executable behind the filter's back. */
    prog[k++] = (struct sock_filter)LD_NR;
    prog[k++] = (struct sock_filter)JEQ(SYS_personality, 0, 4);
    prog[k++] = (struct sock_filter)LD_ARG(0);
    prog[k++] = (struct sock_filter)JEQ(0xffffffffu, 0, 1);
    prog[k++] = (struct sock_filter)RET(allow);
    prog[k++] = (struct sock_filter)RET(trap);
    /* Calls that name a process in argument 0: 0 (ourselves) or our pid. */
    static const long self_arg0[] = {SYS_prlimit64, SYS_sched_setaffinity, SYS_sched_setscheduler,
                                     SYS_sched_setparam, SYS_sched_setattr, SYS_move_pages};
    for (size_t i = 0; i < sizeof self_arg0 / sizeof self_arg0[0]; i++) {
        prog[k++] = (struct sock_filter)LD_NR;
        prog[k++] = (struct sock_filter)JEQ((unsigned)self_arg0[i], 0, 5);
        prog[k++] = (struct sock_filter)LD_ARG(0);
        prog[k++] = (struct sock_filter)JEQ(0, 2, 0);
        prog[k++] = (struct sock_filter)JEQ(pid, 1, 0);
        prog[k++] = (struct sock_filter)RET(trap);
        prog[k++] = (struct sock_filter)RET(allow);
    }
    /* setpriority(PRIO_PROCESS, 0 or self) and ioprio_set(IOPRIO_WHO_PROCESS,
     * 0 or self) only: not a process group, not every process of the uid. */
    static const struct { long nr; unsigned which; } who_calls[] = {{SYS_setpriority, 0}, {SYS_ioprio_set, 1}};
    for (size_t i = 0; i < 2; i++) {
        prog[k++] = (struct sock_filter)LD_NR;
        prog[k++] = (struct sock_filter)JEQ((unsigned)who_calls[i].nr, 0, 7);
        prog[k++] = (struct sock_filter)LD_ARG(0);
        prog[k++] = (struct sock_filter)JEQ(who_calls[i].which, 0, 3);
        prog[k++] = (struct sock_filter)LD_ARG(1);
        prog[k++] = (struct sock_filter)JEQ(0, 2, 0);
        prog[k++] = (struct sock_filter)JEQ(pid, 1, 0);
        prog[k++] = (struct sock_filter)RET(trap);
        prog[k++] = (struct sock_filter)RET(allow);
    }
    prog[k++] = (struct sock_filter)LD_NR;
    /* Signals: only to this process (abort() and raise() use tgkill). */
    prog[k++] = (struct sock_filter)JEQ(SYS_kill, 3, 0);
    prog[k++] = (struct sock_filter)JEQ(SYS_rt_sigqueueinfo, 2, 0);
    prog[k++] = (struct sock_filter)JEQ(SYS_rt_tgsigqueueinfo, 1, 0);
    prog[k++] = (struct sock_filter)JEQ(SYS_tgkill, 0, 4);
    prog[k++] = (struct sock_filter)LD_ARG(0);
    prog[k++] = (struct sock_filter)JEQ(pid, 0, 1);
    prog[k++] = (struct sock_filter)RET(allow);
    prog[k++] = (struct sock_filter)RET(trap);
    prog[k++] = (struct sock_filter)RET(allow);

    if (k > sizeof prog / sizeof prog[0]) {
        snprintf(err, n, "seccomp program too long");
        return -1;
    }
    struct sock_fprog fprog = {.len = (unsigned short)k, .filter = prog};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        snprintf(err, n, "prctl(NO_NEW_PRIVS): %s", strerror(errno));
        return -1;
    }
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0) {
        snprintf(err, n, "seccomp: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Before the kernel is loaded: executable memory only from files, never
 * writable (W^X), never made executable after the fact.  The loader maps a
 * shared object's code from its file, read and execute; code copied into
 * anonymous memory (or written into a private file mapping) cannot run. */
int seccomp_forbid_anon_exec(char *err, size_t n)
{
    const unsigned trap = SECCOMP_RET_TRAP;
    struct sock_filter prog[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        JEQ(AUDIT_ARCH_X86_64, 1, 0),
        RET(SECCOMP_RET_KILL_PROCESS),
        LD_NR,
        JEQ(SYS_mmap, 0, 7),
        LD_ARG(2),
        JSET(4 /* PROT_EXEC */, 0, 4),
        JSET(2 /* PROT_WRITE */, 2, 0),
        LD_ARG(3),
        JSET(0x20 /* MAP_ANONYMOUS */, 0, 1),
        RET(trap),
        RET(SECCOMP_RET_ALLOW),
        JEQ(SYS_mprotect, 1, 0),
        JEQ(SYS_pkey_mprotect, 0, 3),
        LD_ARG(2),
        JSET(4 /* PROT_EXEC */, 0, 1),
        RET(trap),
        RET(SECCOMP_RET_ALLOW),
    };
    struct sock_fprog fprog = {.len = (unsigned short)(sizeof prog / sizeof prog[0]), .filter = prog};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0) {
        snprintf(err, n, "seccomp (anonymous executable memory): %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* After the kernel is loaded: no new executable memory, so no code can be
 * loaded (dlopen) or generated while it runs. */
int seccomp_forbid_exec_mappings(int soft, char *err, size_t n)
{
    const unsigned deny = soft ? (SECCOMP_RET_ERRNO | EACCES) : SECCOMP_RET_TRAP;
    struct sock_filter prog[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        JEQ(AUDIT_ARCH_X86_64, 1, 0),
        RET(SECCOMP_RET_KILL_PROCESS),
        LD_NR,
        JEQ(SYS_mmap, 2, 0),
        JEQ(SYS_mprotect, 1, 0),
        JEQ(SYS_pkey_mprotect, 0, 3),
        LD_ARG(2),
        JSET(4 /* PROT_EXEC */, 0, 1),
        RET(deny),
        RET(SECCOMP_RET_ALLOW),
    };
    struct sock_fprog fprog = {.len = (unsigned short)(sizeof prog / sizeof prog[0]), .filter = prog};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0) {
        snprintf(err, n, "seccomp (exec mappings): %s", strerror(errno));
        return -1;
    }
    return 0;
}

#else

int seccomp_forbid_anon_exec(char *err, size_t n)
{
    snprintf(err, n, "seccomp filter not available on this architecture");
    return -1;
}

int seccomp_forbid_exec_mappings(int soft, char *err, size_t n)
{
    (void)soft;
    snprintf(err, n, "seccomp filter not available on this architecture");
    return -1;
}

const char *seccomp_syscall_name(long nr)
{
    (void)nr;
    return "unknown";
}

int seccomp_install(int write_errno, int ctl_fd, char *err, size_t n)
{
    (void)write_errno;
    (void)ctl_fd;
    snprintf(err, n, "seccomp filter not available on this architecture");
    return -1;
}

#endif
