/*
 * lang.h -- kernel languages: everything a caller needs to know to write,
 * build, show and explain a kernel source in one language.  A backend hosts
 * one or more languages (backend_t.langs, its default first): cpu hosts C;
 * cuda hosts CUDA C++ and Triton, all built into the same emile_kernel
 * entry point (include/emile.h) and run by the same runner device.
 *
 * A new language is one file here (lang_<name>.c defining a lang_t) and one
 * line in lang_registry (lang.c), plus its name in the backends that host
 * it.  Callers ask the table; none compares a language's name.
 */
#ifndef EMILE_LANG_H
#define EMILE_LANG_H

#include <jansson.h>
#include <stddef.h>

typedef struct lang {
    const char *name;          /* the task's "lang": "c", "cuda", "triton" */
    const char *tag;           /* an iteration's stored "lang" and the source
                                  file's tag: "c", "cu", "py" */
    const char *src_ext;       /* ".c", ".cu", ".py" */
    const char *title;         /* for people and models: "C", "CUDA C++", "Triton" */
    const char *fence;         /* the Markdown fence info string: "c", "cuda", "python" */
    const char *const *fence_aliases; /* other info strings a model may write (NULL-terminated) */
    const char *entry_marker;  /* text every complete kernel in it contains */
    const char *source_words;  /* what a complete source holds, for a model: "it includes
                                  \"emile.h\" and defines emile_kernel" */
    const char *ladder_dir;    /* the builtin agent's ladder: kernels/<op>/<ladder_dir>/ */
    /* Files the build leaves beside the object (its name with this
     * extension instead of ".so") that reading the object's machine code
     * needs, NULL-terminated or NULL: Triton's ".cubin" (its .so embeds the
     * cubin as data, where cuobjdump does not look).  The compile cache
     * keeps them with the object. */
    const char *const *side_exts;
    /* Fill argv (NULL-terminated, strings in buf) to build src into the
     * shared object out; include_dir holds emile.h.  0, or -1 when argv or
     * buf is too small. */
    int (*compile_argv)(const char *src, const char *out, const char *include_dir, char **argv, int max,
                        char *buf, size_t bufn);
    /* What a model is told about writing a kernel in it (the system prompt). */
    const char *prompt_text;
    /* A complete, minimal kernel in it that meets the ABI (an elementwise
     * example: the model's first kernel follows its shape, not its op). */
    const char *example;
    /* The template with parameter values applied (the builtin agent's
     * ladder): C-like languages prepend #define lines, Python ones rewrite
     * the module-level assignments.  origin names the template in a
     * comment.  malloc'd, or NULL with err. */
    char *(*render)(const char *tpl, const json_t *params, const char *origin, char *err, size_t n);
} lang_t;

/* By name ("triton") or tag ("py"); NULL when unknown. */
const lang_t *lang_find(const char *name_or_tag);
/* The language a backend hosts under that name or tag; its default
 * language for NULL or ""; NULL when the backend does not host it (why
 * then says which languages it does, when why is given). */
const lang_t *lang_for(const char *backend, const char *name_or_tag, char *why, size_t n);
/* The language of a backend whose source extension the file has ("k.py"
 * on cuda: triton); NULL when none. */
const lang_t *lang_for_path(const char *backend, const char *path);
/* The languages known, NULL-terminated (for listings and help). */
const lang_t *const *lang_all(void);
/* argv as one shell command line, each word quoted where needed (export's
 * build.sh, the report).  Truncated to n. */
void lang_argv_line(char *const argv[], char *buf, size_t n);

/* Renderers shared by the languages (lang.c). */
char *lang_render_defines(const char *tpl, const json_t *params, const char *origin, char *err, size_t n);
char *lang_render_python(const char *tpl, const json_t *params, const char *origin, char *err, size_t n);

#endif
