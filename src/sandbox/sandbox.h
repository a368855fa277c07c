/*
 * sandbox.h -- child processes for untrusted code (compilers on candidate
 * source, runners hosting candidate kernels), each in a session and process
 * group of its own (no controlling terminal: nothing in it can open
 * /dev/tty), killed with the process that started it (PDEATHSIG), with
 * resource limits, its own directory, no network where the kernel allows
 * it, and a wall-clock limit after which the whole group is killed.
 */
#ifndef EMILE_SANDBOX_H
#define EMILE_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>

#include "sandbox/landlock.h"

typedef struct sandbox_limits {
    double wall_s;         /* wall clock; the group is SIGKILLed after it */
    double cpu_s;          /* RLIMIT_CPU (all threads together) */
    size_t mem_bytes;      /* RLIMIT_AS; 0 = none (CUDA reserves huge VA) */
    size_t fsize_bytes;    /* RLIMIT_FSIZE: largest file (and log) written */
    long nproc;            /* RLIMIT_NPROC; set only with drop_uid >= 0 (it counts the uid's
                              every process and thread) */
    long nofile;           /* RLIMIT_NOFILE when > 0 (pipes and sockets cannot hoard memory) */
    int isolate_net;       /* a network namespace of its own */
    int namespaces;        /* pid (fresh /proc), mount, IPC and, as a user, user namespaces */
    long drop_uid;         /* >= 0 and running as root: become this uid */
    const sandbox_fs_t *fs; /* sandbox_run: Landlock view for the child (NULL: none) */
    int idle;              /* SCHED_IDLE: it runs only on cores nothing else wants (a GPU
                              host's compilers beside a worker timing a kernel) */
} sandbox_limits_t;

/* The isolation layers a child got (sandbox_proc_t.layers, sandbox_run's
 * *layers). */
enum {
    SANDBOX_NET = 1 << 0,      /* network namespace */
    SANDBOX_PID = 1 << 1,      /* pid namespace */
    SANDBOX_USER = 1 << 2,     /* user namespace (only as an ordinary user) */
    SANDBOX_PROC = 1 << 3,     /* mount namespace with a /proc of its own */
    SANDBOX_IPC = 1 << 4,      /* IPC namespace */
    SANDBOX_LANDLOCK = 1 << 5  /* Landlock applied by sandbox_run's child */
};

/* Defaults: the task's limits; the sandbox user is "nobody" when root;
 * namespaces and a network namespace on. */
void sandbox_limits_default(sandbox_limits_t *l);
/* The uid untrusted code runs as when we are root (nobody), or -1. */
long sandbox_untrusted_uid(void);
/* The uid a reference runs as when we are root: a second unprivileged uid,
 * never the candidates' (EMILE_REFERENCE_UID, else the first of 65533,
 * 65532, ... that no account uses), or -1 when not root. */
long sandbox_reference_uid(void);
/* A JSON-ready description of layers ("pid,user,proc,ipc,net,landlock"). */
void sandbox_describe_layers(int layers, char *buf, size_t n);

/* Keep only the allow-listed environment (PATH, LD_LIBRARY_PATH, locale,
 * CUDA_/NVIDIA_/NV_, OMP_/GOMP_ and Emile's own compiler settings): what
 * untrusted code may see.  No API keys or tokens pass: the strings dropped
 * are overwritten in place, not just unlinked from environ.  For forked
 * children only (a value the caller still holds from getenv is wiped). */
void sandbox_scrub_env(void);

/* l's rlimits on this process (CPU, file size, NPROC only with drop_uid
 * >= 0, no core files, address space when mem_bytes > 0): the sandbox's
 * children take them right before exec, the tasting's engine child after
 * its model is loaded. */
void sandbox_apply_limits(const sandbox_limits_t *l);

/* Become uid (and its group, no supplementary groups): 0, or -1 with
 * errno.  Root only; the runner, a separate binary, does the same. */
int sandbox_become(long uid);

/* Die with the process that started us (SIGKILL when it ends, even by
 * SIGKILL itself): a compiler, runner or engine child in its own session
 * is not ended with its parent's process group otherwise.  A uid change
 * clears the setting: call again after one.  parent: getpid() before the
 * fork; if it is already gone, _exit(126). */
void sandbox_die_with_parent(pid_t parent);

/* Run argv in dir, wait at most wall_s.  Output (stdout+stderr) is captured
 * into *log (malloc'd, at most fsize_bytes kept).  *status receives a
 * waitpid status; *timed_out is set when the wall limit struck.
 * Returns 0 when the process ran (whatever its status), -1 on spawn error. */
int sandbox_run(const char *dir, char *const argv[], const sandbox_limits_t *l,
                int *status, int *timed_out, char **log, double *seconds,
                char *err, size_t errlen);
/* The same, and *layers: the isolation layers the child got. */
int sandbox_run_layers(const char *dir, char *const argv[], const sandbox_limits_t *l, int *status,
                       int *timed_out, char **log, double *seconds, int *layers, char *err, size_t errlen);

/* A long-lived runner: spawned with a control socket and the arena fd. */
typedef struct sandbox_proc {
    pid_t pid;
    int ctl;               /* our end of the control socket */
    char log_path[512];    /* the child's stdout+stderr */
    int exited;
    int status;            /* waitpid status once exited */
    int timed_out;
    int net_isolated;
    int layers;            /* SANDBOX_* bits the child got */
} sandbox_proc_t;

/* argv[0] is the runner binary; the strings "{CTL}" and "{ARENA}" in argv
 * are replaced by the child's fd numbers. */
int sandbox_spawn(const char *dir, char *const argv[], int arena_fd,
                  const sandbox_limits_t *l, sandbox_proc_t *p, char *err, size_t errlen);
/* Send one line, read one reply line within timeout_s.  Returns 0, or -1
 * when the process died or timed out (then it is killed and reaped and
 * sandbox_describe_death explains). */
int sandbox_request(sandbox_proc_t *p, const char *line, char *reply, size_t n, double timeout_s);
/* Read one line without sending (e.g. the "ready" greeting). */
int sandbox_read_line(sandbox_proc_t *p, char *reply, size_t n, double timeout_s);
void sandbox_kill(sandbox_proc_t *p);
/* "crashed: SIGSEGV (Segmentation fault)", "timed out after 30 s", ... plus
 * the tail of the child's output (filtered: sandbox/output_filter.h). */
void sandbox_describe_death(const sandbox_proc_t *p, double timeout_s, char *buf, size_t n);
void sandbox_describe_status(int status, int timed_out, double timeout_s, char *buf, size_t n);

#endif
