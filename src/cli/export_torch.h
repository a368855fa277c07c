/* export_torch.h -- what `emile export` writes for PyTorch users (see
 * export_torch.c and docs/PYTORCH.md). */
#ifndef EMILE_EXPORT_TORCH_H
#define EMILE_EXPORT_TORCH_H

#include <jansson.h>

/* "emile_<op>" for the run's task (the package's folder and module). */
void export_torch_package_name(const json_t *task, char *out, size_t n);

/* Write DIR/emile_<op>/{__init__.py, op.json, kernel.so (a copy of so_path,
 * when not NULL)} and, when the run's reference is a PyTorch problem,
 * DIR/model_new.py; each path written is appended to written.  0, or -1
 * after printing "emile: ..." naming the file. */
int export_torch(const char *dir, const json_t *run, const json_t *best, long long run_id, const char *so_path,
                 json_t *written);

#endif
