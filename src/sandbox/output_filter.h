/*
 * output_filter.h -- what untrusted processes print (a compiler's log on a
 * candidate's source, a runner's output and error lines) before any of it
 * is quoted in a reply, the run store or an LLM's context:
 *   1. values of this process's secret-looking environment variables
 *      (names containing KEY, TOKEN, SECRET, PASSWORD or CREDENTIAL, any
 *      case; values of 8 characters or more) are replaced by
 *      "[redacted NAME]" -- the sandbox never hands them to the child, this
 *      is the second line;
 *   2. control characters (all but newline and tab, optionally those too)
 *      and bytes that are not shortest-form UTF-8 become \xNN; characters
 *      a terminal or an editor would act on or hide (C1 controls, line
 *      separators, bidirectional marks and overrides, zero-width ones,
 *      variation selectors, tag characters) become \uXXXX (\UXXXXXXXX
 *      past U+FFFF).  So the result is always valid UTF-8;
 *   3. the result is cut to cap bytes, keeping the head or the tail, with a
 *      note of what was cut.
 */
#ifndef EMILE_SANDBOX_OUTPUT_FILTER_H
#define EMILE_SANDBOX_OUTPUT_FILTER_H

#include <stddef.h>

enum {
    OUTPUT_KEEP_HEAD = 0,     /* a compile log: the first errors count */
    OUTPUT_KEEP_TAIL = 1,     /* a crash: the last lines count */
    OUTPUT_ONE_LINE = 2       /* newlines and tabs escaped too (flag) */
};

/* The filtered text (malloc'd; never NULL unless out of memory). */
char *output_filter(const char *text, size_t len, size_t cap, int flags);

/* Whether an environment variable's name looks secret (for tests). */
int output_secret_name(const char *name, size_t len);

#endif
