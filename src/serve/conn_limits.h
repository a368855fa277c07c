/*
 * conn_limits.h -- the server's open connections, and the limits that keep
 * a flood of them from locking everyone out.
 *
 * A connection is idle while no request of it is being answered: before
 * its first request is complete (headers and body), and between the
 * requests of a kept-alive connection.  An idle connection costs the
 * server a thread and a slot and gives nothing, so idle ones are what gets
 * closed when there are too many:
 *   - at most max_idle idle connections in all: past it, the oldest idle
 *     connection of the client holding the most connections is closed;
 *   - at most max_per_client connections (idle or not) from one client
 *     address: past it, that client's oldest idle connection is closed, or,
 *     when all of its connections are busy, the new one.
 * So 100 idle sockets from one local process cost that process its own
 * oldest sockets, and a health check on a new connection still gets a slot
 * and an answer.  (A server-side timeout on idle connections, short, is
 * the daemon's: server.c.)  Closing is shutdown(2) of the socket, which
 * the connection's own thread sees as the client leaving.
 *
 * Thread-safe: the daemon's accept thread opens and closes entries, the
 * connection threads mark them busy and idle.
 */
#ifndef EMILE_SERVE_CONN_LIMITS_H
#define EMILE_SERVE_CONN_LIMITS_H

#include <stddef.h>
#include <sys/socket.h>

typedef struct conn_table conn_table_t;
typedef struct conn_entry conn_entry_t;

/* NULL when out of memory. */
conn_table_t *conn_table_create(size_t max_idle, size_t max_per_client);
/* Every connection must have been closed (conn_closed) before. */
void conn_table_destroy(conn_table_t *t);

/* A new connection on socket fd from addr (addrlen bytes): recorded as
 * idle, then the limits are enforced (which may close this one).  Returns
 * its entry, or NULL when out of memory (the connection is then not
 * tracked: it counts against no limit). */
conn_entry_t *conn_opened(conn_table_t *t, int fd, const struct sockaddr *addr,
                          socklen_t addrlen);
/* A request of e is being answered (busy 1), or its answer is done and the
 * connection waits for the next (busy 0).  e may be NULL. */
void conn_set_busy(conn_table_t *t, conn_entry_t *e, int busy);
/* The connection is gone (before its socket is closed: the entry is the
 * last to shut it down); frees e.  e may be NULL. */
void conn_closed(conn_table_t *t, conn_entry_t *e);

/* How many connections are tracked, and how many of them are idle and not
 * yet closed by a limit (for tests and the health check). */
void conn_counts(conn_table_t *t, size_t *open, size_t *idle);

#endif /* EMILE_SERVE_CONN_LIMITS_H */
