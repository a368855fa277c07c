/*
 * auth.h -- who may call the API.
 *
 * Cooking compiles and runs code sent by the caller, so the API is guarded
 * even on loopback: a web page in the user's browser must not be able to
 * start a cook.  Three checks, all pure functions of the request:
 *
 *   - the token, when one is set (always when bound beyond loopback);
 *   - without a token, the Host header must name a loopback host, which
 *     defeats DNS rebinding (evil.example resolving to 127.0.0.1);
 *   - a request that carries an Origin must come from this server's own
 *     origin (browsers send Origin on cross-site POSTs).
 */
#ifndef EMILE_SERVE_AUTH_H
#define EMILE_SERVE_AUTH_H

#include <stddef.h>
#include <sys/socket.h>

#define AUTH_TOKEN_LEN 32   /* hex characters of a generated token */

/* 1 when sa is 127.0.0.0/8, ::1 or ::ffff:127.x.x.x. */
int auth_addr_is_loopback(const struct sockaddr *sa);

/* A fresh random token (AUTH_TOKEN_LEN hex characters) in buf (n > that).
 * 0, or -1 when the system has no randomness to give. */
int auth_make_token(char *buf, size_t n);

/* 1 when given equals expected, in time independent of where they differ. */
int auth_token_equal(const char *expected, const char *given);

/* The token of an "Authorization: Bearer TOKEN" header, or NULL.  Points
 * into header. */
const char *auth_bearer(const char *header);

/* 1 when a Host header ("localhost:8080", "127.0.0.1", "[::1]:80") names
 * a loopback host. */
int auth_host_is_loopback_name(const char *host_header);

/* 1 when origin is absent or is "http(s)://" + exactly host_header. */
int auth_origin_matches(const char *origin, const char *host_header);

#endif
