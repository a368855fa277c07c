/*
 * test_serve_auth.c -- the access checks of `emile serve`: loopback
 * addresses, tokens, Bearer headers, Host names (DNS rebinding) and Origin.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "serve/auth.h"

static int v4_loopback(const char *ip)
{
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    return auth_addr_is_loopback((struct sockaddr *)&a);
}

static int v6_loopback(const char *ip)
{
    struct sockaddr_in6 a = {0};
    a.sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
    return auth_addr_is_loopback((struct sockaddr *)&a);
}

static void test_loopback_addresses(void **state)
{
    (void)state;
    assert_true(v4_loopback("127.0.0.1"));
    assert_true(v4_loopback("127.1.2.3"));
    assert_false(v4_loopback("0.0.0.0"));
    assert_false(v4_loopback("10.0.0.1"));
    assert_false(v4_loopback("128.0.0.1"));
    assert_true(v6_loopback("::1"));
    assert_true(v6_loopback("::ffff:127.0.0.1"));
    assert_false(v6_loopback("::"));
    assert_false(v6_loopback("::ffff:10.0.0.1"));
}

static void test_tokens(void **state)
{
    (void)state;
    char a[64], b[64];
    assert_int_equal(auth_make_token(a, sizeof a), 0);
    assert_int_equal(auth_make_token(b, sizeof b), 0);
    assert_int_equal(strlen(a), AUTH_TOKEN_LEN);
    assert_int_equal(strspn(a, "0123456789abcdef"), AUTH_TOKEN_LEN);
    assert_string_not_equal(a, b);                  /* random, not fixed */
    char small[AUTH_TOKEN_LEN];
    assert_int_equal(auth_make_token(small, sizeof small), -1);

    assert_true(auth_token_equal("s3cret-token", "s3cret-token"));
    assert_false(auth_token_equal("s3cret-token", "s3cret-tokem"));
    assert_false(auth_token_equal("s3cret-token", "s3cret-token2"));
    assert_false(auth_token_equal("s3cret-token", "s3cret"));
    assert_false(auth_token_equal("s3cret-token", ""));
    assert_false(auth_token_equal("s3cret-token", NULL));
}

static void test_bearer(void **state)
{
    (void)state;
    assert_string_equal(auth_bearer("Bearer abc"), "abc");
    assert_string_equal(auth_bearer("bearer   abc"), "abc");
    assert_null(auth_bearer("Basic abc"));
    assert_null(auth_bearer("Bearer "));
    assert_null(auth_bearer(NULL));
}

static void test_host_names(void **state)
{
    (void)state;
    assert_true(auth_host_is_loopback_name("localhost"));
    assert_true(auth_host_is_loopback_name("LOCALHOST:8080"));
    assert_true(auth_host_is_loopback_name("127.0.0.1:8080"));
    assert_true(auth_host_is_loopback_name("127.9.9.9"));
    assert_true(auth_host_is_loopback_name("[::1]:8080"));
    assert_false(auth_host_is_loopback_name("evil.example:8080"));
    assert_false(auth_host_is_loopback_name("127.0.0.1.evil.example"));
    assert_false(auth_host_is_loopback_name("127.evil.example"));
    assert_false(auth_host_is_loopback_name("localhost.evil.example"));
    assert_false(auth_host_is_loopback_name("10.0.0.1:8080"));
    assert_false(auth_host_is_loopback_name("[::2]:80"));
    assert_false(auth_host_is_loopback_name(""));
    assert_false(auth_host_is_loopback_name(NULL));
}

static void test_origin(void **state)
{
    (void)state;
    assert_true(auth_origin_matches(NULL, "127.0.0.1:8080"));
    assert_true(auth_origin_matches("http://127.0.0.1:8080", "127.0.0.1:8080"));
    assert_true(auth_origin_matches("https://box:443", "box:443"));
    assert_false(auth_origin_matches("http://evil.example", "127.0.0.1:8080"));
    assert_false(auth_origin_matches("http://127.0.0.1:9999", "127.0.0.1:8080"));
    assert_false(auth_origin_matches("null", "127.0.0.1:8080"));
    assert_false(auth_origin_matches("http://127.0.0.1:8080", NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback_addresses),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_host_names),
        cmocka_unit_test(test_origin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
