/*
 * cook_child.h -- one CLI child process: spawned with stdout and stderr on
 * pipes, read line by line from stdout while stderr is drained alongside
 * (its tail kept for the error message when the child fails).
 */
#ifndef EMILE_SERVE_COOK_CHILD_H
#define EMILE_SERVE_COOK_CHILD_H

#include <stddef.h>
#include <sys/types.h>

#define COOK_CHILD_MAX_LINE (64u << 20)   /* an iteration with its logs */
#define COOK_CHILD_TAIL 2048
#define COOK_CHILD_UNKNOWN_STATUS (255 << 8)   /* waitpid's form of exit(255) */

typedef struct cook_child {
    pid_t pid;
    int out_fd, err_fd;          /* -1 once at end of file */
    char *buf;                   /* stdout bytes not yet returned */
    size_t len, cap;
    int overlong;                /* discarding the rest of an overlong line */
    char tail[COOK_CHILD_TAIL];  /* the last bytes of stderr */
    size_t tail_len;
    const char *echo_prefix;     /* non-NULL: copy stderr lines to ours */
    char echo_line[512];
    size_t echo_len;
} cook_child_t;

/* Start argv[0] with argv, stdin from /dev/null, in its own process group
 * (so a Ctrl-C at the server's terminal reaches the server, which then
 * stops its cooks in order).  0, or -1 with err. */
int cook_child_spawn(cook_child_t *c, char *const argv[], const char *echo_prefix,
                     char *err, size_t errlen);

/* The next complete stdout line, without its newline, NUL-terminated, in
 * *line (malloc'd).  1: a line; 0: stdout closed (the last unterminated
 * bytes, if any, are dropped: a half-written event is no event); -1: error.
 * Lines over COOK_CHILD_MAX_LINE are skipped. */
int cook_child_next_line(cook_child_t *c, char **line);

/* Drain stderr to its end, close the pipes and wait until the child has
 * exited, without reaping it: until cook_child_reap its pid (and process
 * group id) stays reserved for this zombie, so whoever may still signal it
 * can be told to stop first.  *wstatus as waitpid's.  0, or -1 with errno
 * when its exit could not be learned (waitid failed, or no child): then
 * there is nothing to reap and *wstatus is COOK_CHILD_UNKNOWN_STATUS,
 * which reads as an exit with status 255, never as a clean exit. */
int cook_child_wait_exit(cook_child_t *c, int *wstatus);

/* Reap the child cook_child_wait_exit saw exit; from then on its pid may
 * belong to another process, so nothing may signal it any more.  0 or -1. */
int cook_child_reap(cook_child_t *c);

/* Both of the above: close the pipes, wait for the child and reap it;
 * *wstatus as waitpid's.  0 or -1.  For a child nobody else signals. */
int cook_child_wait(cook_child_t *c, int *wstatus);

/* The last line of stderr (for "cook exited with status 1: <line>"). */
void cook_child_last_error(const cook_child_t *c, char *out, size_t n);

#endif
