/* auth.c -- tokens and the checks on Host and Origin headers. */
#include "auth.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

int auth_addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return 1;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            return in6->sin6_addr.s6_addr[12] == 127;
    }
    return 0;
}

int auth_make_token(char *buf, size_t n)
{
    unsigned char raw[AUTH_TOKEN_LEN / 2];
    if (n <= AUTH_TOKEN_LEN)
        return -1;
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t k = getrandom(raw + got, sizeof raw - got, 0);
        if (k <= 0)
            return -1;
        got += (size_t)k;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(buf + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

int auth_token_equal(const char *expected, const char *given)
{
    if (!expected || !given)
        return 0;
    size_t le = strlen(expected), lg = strlen(given);
    /* Compare every byte of expected whatever given holds, so the time
     * says nothing about the length of the matching prefix. */
    unsigned diff = (unsigned)(le ^ lg);
    for (size_t i = 0; i < le; i++)
        diff |= (unsigned char)expected[i] ^ (unsigned char)(i < lg ? given[i] : 0);
    return diff == 0;
}

const char *auth_bearer(const char *header)
{
    if (!header || strncasecmp(header, "Bearer ", 7) != 0)
        return NULL;
    header += 7;
    while (*header == ' ')
        header++;
    return *header ? header : NULL;
}

int auth_host_is_loopback_name(const char *h)
{
    if (!h)
        return 0;
    char host[256];
    size_t n;
    if (h[0] == '[') {                       /* [v6]:port */
        const char *end = strchr(h, ']');
        if (!end)
            return 0;
        n = (size_t)(end - h - 1);
        if (n >= sizeof host)
            return 0;
        memcpy(host, h + 1, n);
        host[n] = 0;
        return strcmp(host, "::1") == 0;
    }
    const char *colon = strchr(h, ':');
    n = colon ? (size_t)(colon - h) : strlen(h);
    if (n == 0 || n >= sizeof host)
        return 0;
    memcpy(host, h, n);
    host[n] = 0;
    if (strcasecmp(host, "localhost") == 0)
        return 1;
    /* 127.a.b.c, digits and dots only: a name like 127.evil.example must
     * not pass. */
    unsigned a, b, c, d;
    char tail;
    if (sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) != 4)
        return 0;
    for (const char *p = host; *p; p++)
        if (!(*p == '.' || (*p >= '0' && *p <= '9')))
            return 0;
    return a == 127 && b < 256 && c < 256 && d < 256;
}

int auth_origin_matches(const char *origin, const char *host_header)
{
    if (!origin)
        return 1;
    if (!host_header)
        return 0;
    const char *rest;
    if (strncasecmp(origin, "http://", 7) == 0)
        rest = origin + 7;
    else if (strncasecmp(origin, "https://", 8) == 0)
        rest = origin + 8;
    else
        return 0;                            /* "null", file:, ... */
    return strcasecmp(rest, host_header) == 0;
}
