/*
 * fake_llm_server.h -- a loopback HTTP server (libmicrohttpd, 127.0.0.1,
 * ephemeral port) that speaks the Anthropic Messages API or OpenAI Chat
 * Completions and replays a scripted conversation, checking every request.
 *
 * Script (JSON):
 *   {"protocol": "anthropic" | "openai",
 *    "key": "sk-test" | null,     anthropic: x-api-key must equal it;
 *                                 openai: "Authorization: Bearer <key>", and
 *                                 null means no Authorization header at all
 *    "steps": [ step, ... ]}
 * step:
 *   {"expect": {                  all optional
 *       "tool_results": [{"id", "is_error" (bool), "contains"}],
 *                                 exactly the tool results of the newest user
 *                                 turn, in order (openai: the role "tool"
 *                                 messages after the last assistant message;
 *                                 is_error there means content "ERROR: ...")
 *       "text_contains": "...",   the newest user text contains this
 *       "last_role": "user" | "assistant",
 *       "n_messages": N,          messages in the body (openai: with system)
 *       "body_contains": [...], "body_lacks": [...],   raw body substrings
 *       "header": {"name": "value"}},
 *    "delay_ms": 0,               wait before answering (timeouts)
 *    "status": 200, "headers": {"retry-after-ms": "20", ...},
 *    "body": {...} or "raw text",
 *    "optional": false}           an optional step may be left unserved
 *
 * Every request is also checked against the protocol: path, method,
 * content type, version header and key, required body fields, tool
 * definitions, role order, and that every tool call of an assistant message
 * is answered, first thing in the next message, by a result carrying its id
 * (and no result names an unknown id).  A request past the script's end is
 * answered 400 with x-should-retry: false and counted as a failure.
 */
#ifndef FAKE_LLM_SERVER_H
#define FAKE_LLM_SERVER_H

#include <jansson.h>
#include <stddef.h>

typedef struct fake_llm fake_llm_t;

/* Start serving a script (borrowed: copied); NULL with err on failure. */
fake_llm_t *fake_llm_start(const json_t *script, char *err, size_t errlen);
/* Start from a script file. */
fake_llm_t *fake_llm_start_file(const char *path, char *err, size_t errlen);
/* Stop the daemon and free everything. */
void fake_llm_stop(fake_llm_t *f);

int fake_llm_port(const fake_llm_t *f);
/* "http://127.0.0.1:PORT" */
const char *fake_llm_url(const fake_llm_t *f);

/* Requests received so far (answered or not). */
int fake_llm_requests(fake_llm_t *f);
/* Non-optional steps not served yet. */
int fake_llm_pending(fake_llm_t *f);
/* Steps not served yet, optional ones included. */
int fake_llm_remaining(fake_llm_t *f);
/* Number of failed checks; their text (one per line) into buf. */
int fake_llm_failures(fake_llm_t *f, char *buf, size_t n);
/* The body of request i (0-based) as received, new reference or NULL. */
json_t *fake_llm_request_body(fake_llm_t *f, int i);
/* Wait until every non-optional step is served or timeout_s passes;
 * 0 when all were served. */
int fake_llm_wait(fake_llm_t *f, double timeout_s);

/* Parse JSON written with single quotes for double quotes (test scripts
 * inline in C); aborts the test program on a syntax error. */
json_t *fake_llm_json(const char *single_quoted);

#endif
