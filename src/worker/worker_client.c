/* worker_client.c -- see worker_client.h. */
#include "worker_client.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/paths.h"

int worker_client_open(worker_client_t *c, const char *cmd, char *err, size_t n)
{
    memset(c, 0, sizeof *c);
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
        snprintf(err, n, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, n, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        if (cmd && *cmd)
            execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        else
            execl(emile_self_path(), "emile", "worker", (char *)NULL);
        fprintf(stderr, "cannot start the worker: %s\n", strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    c->pid = pid;
    c->to = fdopen(in[1], "w");
    c->from = fdopen(out[0], "r");
    c->next_id = 1;
    return 0;
}

json_t *worker_client_call(worker_client_t *c, json_t *req, char *err, size_t n)
{
    int id = c->next_id++;
    json_object_set_new(req, "id", json_integer(id));
    char *text = json_dumps(req, JSON_COMPACT);
    if (!text || fprintf(c->to, "%s\n", text) < 0 || fflush(c->to) != 0) {
        free(text);
        snprintf(err, n, "the worker is not listening (it died?)");
        return NULL;
    }
    free(text);
    char *line = NULL;
    size_t cap = 0;
    for (;;) {
        ssize_t len = getline(&line, &cap, c->from);
        if (len < 0) {
            free(line);
            snprintf(err, n, "the worker exited without answering");
            return NULL;
        }
        json_t *reply = json_loads(line, 0, NULL);
        if (reply && json_integer_value(json_object_get(reply, "id")) == id) {
            free(line);
            return reply;
        }
        /* Anything else on the worker's stdout (a remote shell's banner):
         * skip it. */
        json_decref(reply);
    }
}

void worker_client_close(worker_client_t *c)
{
    if (c->to)
        fclose(c->to);
    if (c->from)
        fclose(c->from);
    c->to = c->from = NULL;
    if (c->pid > 0) {
        int st;
        for (int i = 0; i < 200; i++) {
            if (waitpid(c->pid, &st, WNOHANG) == c->pid) {
                c->pid = 0;
                return;
            }
            usleep(10000);
        }
        kill(c->pid, SIGKILL);
        waitpid(c->pid, &st, 0);
        c->pid = 0;
    }
}
