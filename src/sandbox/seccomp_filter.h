/*
 * seccomp_filter.h -- the system calls a kernel may not make.  Installed by
 * the runner before it loads the candidate, so constructors are covered too,
 * and by the Tasting Room's engine child before it loads the kernels it
 * tastes (src/taste/taste_confine.c; no control socket there: ctl_fd -1).
 *
 * Denied: creating processes (fork, vfork, clone without CLONE_THREAD,
 * exec), network sockets (anything but AF_UNIX), opening files for writing
 * and every call that changes the file system, signalling, tracing,
 * limiting or rescheduling other processes (kill/tgkill to another pid,
 * tkill, fcntl F_SETOWN/F_SETOWN_EX/F_SETSIG, prlimit64 and the sched_*,
 * setpriority, ioprio_set, move_pages calls on another pid, pidfd_open,
 * process_vm_*, kcmp), memory that no rlimit counts or that outlives the
 * process (memfd_create, memfd_secret, System V shared memory, message
 * queues and semaphores, POSIX message queues), leaving the process group,
 * namespaces, mounts (old and new API), modules, bpf, io_uring, keyrings,
 * perf_event_open, userfaultfd, personality changes (READ_IMPLIES_EXEC),
 * typing into a terminal (ioctl TIOCSTI and TIOCLINUX, on any descriptor)
 * and resetting the parent-death signal (prctl PR_SET_PDEATHSIG).
 * Threads (clone with CLONE_THREAD) and read-only opens are allowed, so
 * OpenMP and the CUDA driver work.
 *
 * A denied call raises SIGSYS (the runner's handler names the call and
 * exits) except opens for writing when write_errno is set: those fail with
 * EACCES instead, for drivers that probe files.  ctl_fd, the runner's
 * control socket, cannot be closed, shut down or replaced with dup2/dup3
 * (which would let a kernel forge the runner's replies).
 */
#ifndef EMILE_SECCOMP_FILTER_H
#define EMILE_SECCOMP_FILTER_H

#include <stddef.h>

/* 0 on success; -1 with err when the kernel or the architecture does not
 * allow it (the caller records that the sandbox is weaker). */
int seccomp_install(int write_errno, int ctl_fd, char *err, size_t n);
/* Before the kernel is loaded: no anonymous executable memory, no memory
 * both writable and executable, no mprotect to PROT_EXEC (file mappings
 * with PROT_EXEC, the loader's, stay allowed). */
int seccomp_forbid_anon_exec(char *err, size_t n);
/* Second filter, once the kernel is loaded: no new executable memory (no
 * dlopen, no JIT) while it runs.  soft: EACCES instead of SIGSYS. */
int seccomp_forbid_exec_mappings(int soft, char *err, size_t n);
/* Name of a syscall number the filter denies (for messages). */
const char *seccomp_syscall_name(long nr);

#endif
