/*
 * taste_kernel.h -- what goes into the Tasting Room's attention slot: the
 * engine's built-in attention, a kernel file (.so copied as it is; .c or
 * .cu compiled first), or a run of the store (its best iteration's
 * source, or, for the reference side, its task's reference source),
 * compiled by language.  Each gets the label the report prints.  The
 * sandboxed engine child loads them (taste_engine.h).
 */
#ifndef EMILE_ENGINE_TASTE_KERNEL_H
#define EMILE_ENGINE_TASTE_KERNEL_H

#include <stddef.h>


/* 1 when spec names a run (all digits) rather than a file. */
int taste_kernel_is_run(const char *spec);

/* The checks of a spec that need no work: 0 for NULL, a run id, or a
 * readable .so, or .c/.cu file of device's language; else TASTE_BAD_INPUT
 * (taste_status.h) with err naming the problem. */
int taste_kernel_check(const char *spec, const char *device, char *err, size_t errlen);

/*
 * Make spec ready to load for a model on device (engine_device_t: the cpu
 * takes C kernels on f32 host tensors, cuda CUDA kernels on bf16 device
 * tensors), in dir
 * (created here, mode 0711: the sandboxed engine child, which loads the
 * result as another user, can reach it; the caller removes it): a .so is
 * copied there; a .c or .cu file, or a run's source, is compiled there
 * with the backend's own command in the compile sandbox
 * (src/backend/cpu.c: $EMILE_CC or cc; cuda.c: $EMILE_NVCC or nvcc, the
 * detected architecture); a run's source as the sandbox's user when we
 * are root (as the worker compiles candidates), a file the user named as
 * the user (its #includes may reach the user's own folders).  A run is read from the store at store_path
 * (NULL: the default store, see store.h); reference picks the run's task
 * reference instead of its best iteration.  spec NULL: so = "" (the
 * built-in attention).  Labels: "builtin", the path as given, "run N's
 * best (iteration I)", "run N's reference".  Nothing is loaded here: the
 * kernel's code runs only in the sandbox (taste_confine.h).
 * Returns 0; TASTE_BAD_INPUT with err when taste_kernel_check refuses
 * spec; or -1 with err naming the problem (an
 * unknown run, a run without a valid kernel, a run of the other device,
 * the compiler's errors).
 */
int taste_kernel_prepare(const char *spec, int reference, const char *store_path,
                         const char *device, const char *dir, char *so, size_t so_n,
                         char *label, size_t labeln, char *err, size_t errlen);

/* The same for the slot of op ("attention", "decode_attention", ...:
 * op_slot.h): a run must be a run of that op (its task's "op", a name or a
 * spec's object). */
int taste_kernel_prepare_op(const char *spec, const char *op, int reference,
                            const char *store_path, const char *device, const char *dir,
                            char *so, size_t so_n, char *label, size_t labeln, char *err,
                            size_t errlen);

#endif /* EMILE_ENGINE_TASTE_KERNEL_H */
