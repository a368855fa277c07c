/*
 * safetensors.h -- read-only access to Hugging Face safetensors checkpoints.
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of
 * JSON ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__": {...}}), then the tensor bytes; offsets are relative to the
 * first byte after the header.  Files are memory-mapped, never copied: a 4B
 * checkpoint is 8 GB and the CUDA path uploads straight from the mapping.
 *
 * A checkpoint is either one model.safetensors or several shards listed by
 * model.safetensors.index.json ({"weight_map": {"tensor": "shard file"}}).
 * Every header is validated when opened (known dtype, offsets inside the
 * file, byte count equal to the shape's element count times the dtype size),
 * so a caller never reads out of bounds through a view.
 */
#ifndef EMILE_ENGINE_SAFETENSORS_H
#define EMILE_ENGINE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

/* A tensor inside a mapped file. data points into the mapping. */
typedef struct st_tensor {
    char *name;
    int dtype;                  /* emile_dtype_t */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const void *data;
    size_t nbytes;
} st_tensor_t;

/* One mapped file. */
typedef struct st_file {
    char *path;
    void *map;
    size_t map_len;
    int n_tensors;
    st_tensor_t *tensors;       /* sorted by name */
} st_file_t;

/* A checkpoint: one or more files. */
typedef struct st_checkpoint {
    int n_files;
    st_file_t *files;
} st_checkpoint_t;

/*
 * Map and validate one safetensors file.  Returns 0 and fills *f, or -1 with
 * a message naming the file and the problem in err.  On failure *f is left
 * empty (nothing to free).
 */
int st_file_open(st_file_t *f, const char *path, char *err, size_t errlen);
void st_file_close(st_file_t *f);

/* The tensor of that name in f, or NULL. */
const st_tensor_t *st_file_find(const st_file_t *f, const char *name);

/*
 * Open the checkpoint in directory dir: model.safetensors.index.json when
 * present (every shard it names is opened, and every tensor of the weight
 * map must be found in its shard), else model.safetensors.  Returns 0, or -1
 * with a message in err; on failure nothing needs freeing.
 */
int st_checkpoint_open(st_checkpoint_t *c, const char *dir, char *err, size_t errlen);
void st_checkpoint_close(st_checkpoint_t *c);

/* The tensor of that name in any file of c, or NULL. */
const st_tensor_t *st_checkpoint_find(const st_checkpoint_t *c, const char *name);

/* "BF16" -> EMILE_DTYPE_BF16 ...; -1 for a dtype the engine does not read. */
int st_dtype_from_string(const char *s);

/*
 * Convert n elements of a tensor of dtype (F32, F16 or BF16) starting at
 * element offset to float.  Returns 0, or -1 for another dtype or a range
 * outside the tensor.
 */
int st_tensor_to_f32(const st_tensor_t *t, int64_t offset, int64_t n, float *out);

/* Scalar conversions, exact (bf16/f16 -> f32 never rounds). */
float st_bf16_to_f32(uint16_t h);
float st_f16_to_f32(uint16_t h);
/* Round to nearest even; NaN stays NaN. */
uint16_t st_f32_to_bf16(float f);

#endif /* EMILE_ENGINE_SAFETENSORS_H */
