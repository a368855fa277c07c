/* conn_limits.c -- the open connections and their limits (see
 * conn_limits.h). */
#include "conn_limits.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A client is its address without the port (IPv4 or IPv6). */
typedef struct client {
    int family;
    unsigned char addr[16];
} client_t;

struct conn_entry {
    conn_entry_t *prev, *next;   /* the table's list, oldest first */
    int fd;
    client_t client;
    uint64_t idle_since;         /* the table's tick when it last became idle */
    int busy;                    /* a request is being answered */
    int closing;                 /* shut down by a limit, not yet gone */
};

struct conn_table {
    pthread_mutex_t mu;
    conn_entry_t *head, *tail;
    size_t max_idle, max_per_client;
    uint64_t tick;               /* orders "oldest" without a clock */
};

conn_table_t *conn_table_create(size_t max_idle, size_t max_per_client)
{
    conn_table_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    pthread_mutex_init(&t->mu, NULL);
    t->max_idle = max_idle;
    t->max_per_client = max_per_client;
    return t;
}

void conn_table_destroy(conn_table_t *t)
{
    if (!t)
        return;
    while (t->head) {            /* none should be left; do not leak them */
        conn_entry_t *e = t->head;
        t->head = e->next;
        free(e);
    }
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static void client_of(const struct sockaddr *addr, socklen_t len, client_t *c)
{
    memset(c, 0, sizeof *c);
    if (!addr)
        return;
    c->family = addr->sa_family;
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in))
        memcpy(c->addr, &((const struct sockaddr_in *)(const void *)addr)->sin_addr, 4);
    else if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6))
        memcpy(c->addr, &((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr, 16);
}

static int same_client(const client_t *a, const client_t *b)
{
    return a->family == b->family && memcmp(a->addr, b->addr, sizeof a->addr) == 0;
}

static int is_idle(const conn_entry_t *e)
{
    return !e->busy && !e->closing;
}

/* Connections of e's client that are not closing. */
static size_t client_count(const conn_table_t *t, const client_t *c)
{
    size_t n = 0;
    for (const conn_entry_t *e = t->head; e; e = e->next)
        n += !e->closing && same_client(&e->client, c);
    return n;
}

/* The idle connection of client c (any client when c is NULL) that has
 * been idle longest; NULL when none. */
static conn_entry_t *oldest_idle(const conn_table_t *t, const client_t *c)
{
    conn_entry_t *best = NULL;
    for (conn_entry_t *e = t->head; e; e = e->next)
        if (is_idle(e) && (!c || same_client(&e->client, c)) &&
            (!best || e->idle_since < best->idle_since))
            best = e;
    return best;
}

/* The client with the most connections among those with an idle one. */
static const client_t *heaviest_idle_client(const conn_table_t *t)
{
    const client_t *best = NULL;
    size_t best_n = 0;
    for (const conn_entry_t *e = t->head; e; e = e->next) {
        if (!is_idle(e))
            continue;
        size_t n = client_count(t, &e->client);
        if (n > best_n) {
            best = &e->client;
            best_n = n;
        }
    }
    return best;
}

static void close_entry(conn_entry_t *e)
{
    e->closing = 1;
    shutdown(e->fd, SHUT_RDWR);
}

/* Enforce the limits after e arrived (under the lock). */
static void enforce(conn_table_t *t, conn_entry_t *e)
{
    while (!e->closing && client_count(t, &e->client) > t->max_per_client) {
        conn_entry_t *v = oldest_idle(t, &e->client);
        close_entry(v ? v : e);            /* all of them busy: not this one */
    }
    for (;;) {
        size_t idle = 0;
        for (const conn_entry_t *x = t->head; x; x = x->next)
            idle += is_idle(x);
        if (idle <= t->max_idle)
            break;
        conn_entry_t *v = oldest_idle(t, heaviest_idle_client(t));
        if (!v)
            break;
        close_entry(v);
    }
}

conn_entry_t *conn_opened(conn_table_t *t, int fd, const struct sockaddr *addr,
                          socklen_t addrlen)
{
    conn_entry_t *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->fd = fd;
    client_of(addr, addrlen, &e->client);
    pthread_mutex_lock(&t->mu);
    e->idle_since = ++t->tick;
    e->prev = t->tail;
    if (t->tail)
        t->tail->next = e;
    else
        t->head = e;
    t->tail = e;
    enforce(t, e);
    pthread_mutex_unlock(&t->mu);
    return e;
}

void conn_set_busy(conn_table_t *t, conn_entry_t *e, int busy)
{
    if (!e)
        return;
    pthread_mutex_lock(&t->mu);
    e->busy = busy;
    if (!busy)
        e->idle_since = ++t->tick;
    pthread_mutex_unlock(&t->mu);
}

void conn_closed(conn_table_t *t, conn_entry_t *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&t->mu);
    if (e->prev)
        e->prev->next = e->next;
    else
        t->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        t->tail = e->prev;
    pthread_mutex_unlock(&t->mu);
    free(e);
}

void conn_counts(conn_table_t *t, size_t *open, size_t *idle)
{
    size_t o = 0, i = 0;
    pthread_mutex_lock(&t->mu);
    for (const conn_entry_t *e = t->head; e; e = e->next) {
        o++;
        i += is_idle(e);
    }
    pthread_mutex_unlock(&t->mu);
    if (open)
        *open = o;
    if (idle)
        *idle = i;
}
