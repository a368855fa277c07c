/*
 * textbuf.h -- a growable string for the report writers, with the escapes
 * each output format needs (XML for SVG, table cells for Markdown) and the
 * trimming that keeps a long compiler log from drowning a one-line summary.
 *
 * Errors are sticky: after an allocation fails every append is a no-op and
 * textbuf_finish() returns NULL, so a writer appends freely and checks once
 * at the end (SQLite's "rc threaded through" habit, without the rc).
 */
#ifndef EMILE_REPORT_TEXTBUF_H
#define EMILE_REPORT_TEXTBUF_H

#include <stddef.h>

typedef struct textbuf {
    char *s;        /* always NUL-terminated once anything was appended */
    size_t len;
    size_t cap;
    int failed;     /* an allocation failed; the content is incomplete */
} textbuf_t;

/* Start empty (no allocation until the first append). */
void textbuf_init(textbuf_t *b);
/* Release the content (after a failure, or when not finished). */
void textbuf_free(textbuf_t *b);
/* Hand the content to the caller (malloc'd, "" when nothing was appended);
 * NULL when any append failed.  The buffer is empty afterwards. */
char *textbuf_finish(textbuf_t *b);

void textbuf_puts(textbuf_t *b, const char *s);
void textbuf_putn(textbuf_t *b, const char *s, size_t n);
void textbuf_putc(textbuf_t *b, char c);
/* Append c n times (padding, rules). */
void textbuf_repeat(textbuf_t *b, char c, size_t n);
void textbuf_printf(textbuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Append s as XML character data or attribute value: & < > " ' escaped,
 * control characters other than tab/newline and invalid UTF-8 bytes
 * replaced by '?', because either would make the document ill-formed.
 * NULL appends nothing. */
void textbuf_xml(textbuf_t *b, const char *s);

/* Append s for a terminal or a plain-text block, on one line: tab, CR and
 * newline become spaces, other control bytes (ESC above all: text from an
 * LLM or a compiler must not drive the user's terminal) become '?'. */
void textbuf_plain(textbuf_t *b, const char *s);

/* Append s as one Markdown table cell (or any text inside a line), as
 * readable in a terminal as rendered: on one line (runs of whitespace
 * become one space), '|' and '\' escaped, '<' as "&lt;" so that text from
 * an LLM never opens HTML or an autolink, '&' as "&amp;" only where it
 * could start an entity (before a letter, digit, '#' or the cell's end);
 * '>' as it is ("BK 32 -> 64"; a cell never starts a line, where it would
 * quote).  Code spans (`...`) are copied literally, pipes escaped, since
 * Markdown shows an entity inside one as written.  Cut to at most max
 * bytes (0 = no limit) on a UTF-8 boundary with "..." appended when cut. */
void textbuf_md_cell(textbuf_t *b, const char *s, size_t max);

/* Write into out (size n) the first non-blank line of s, leading and trailing
 * blanks removed, cut to at most max bytes (0 = no limit; n bounds it
 * anyway) on a UTF-8 boundary, with "..." appended when cut.  Returns the
 * length written; out is "" for NULL or blank s. */
size_t text_first_line(const char *s, char *out, size_t n, size_t max);

/* Append the first max_lines lines of s (at most max_bytes bytes, cut on a
 * UTF-8 boundary), each ending in a newline, leading blank lines skipped,
 * and a last line "..." when anything was left out.  Control bytes other
 * than tab become '?', as in textbuf_plain().  For compiler logs and
 * tracebacks, whose head names the problem. */
void textbuf_head(textbuf_t *b, const char *s, int max_lines, size_t max_bytes);

#endif
