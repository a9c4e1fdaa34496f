/* LoRA adapter files: shared pieces of the GGUF and PEFT readers/writers and the merge. */
#ifndef PF_LORA_INTERNAL_H
#define PF_LORA_INTERNAL_H

#include "phiforge.h"

/* ---- safetensors (safetensors.c) ---------------------------------------------------------- */
/* The container: u64 LE header length N, N bytes of JSON {"name": {"dtype", "shape",
 * "data_offsets": [begin, end]}, ..., "__metadata__": {...}} (space-padded), then the data area
 * the offsets are relative to. */
typedef enum st_dtype { ST_F32 = 0, ST_F16 = 1, ST_BF16 = 2 } st_dtype;

typedef struct st_tensor {
    char *name;
    st_dtype dtype;
    int n_dims;
    int64_t shape[4];
    const uint8_t *data;   /* into the file buffer */
    size_t nbytes;
} st_tensor;

typedef struct st_file {
    uint8_t *buf;          /* whole file */
    size_t size;
    st_tensor *t;
    int64_t n;
} st_file;

/* Reads and validates PATH (header length, JSON, dtypes, shapes, offsets inside the data area
 * and not overlapping); errors name the file and the key. */
int st_read(const char *path, st_file *out, pf_error *err);
/* Same over a caller's buffer (taken over: freed by st_free). */
int st_parse(const char *name, uint8_t *buf, size_t size, st_file *out, pf_error *err);
void st_free(st_file *f);
/* Element i of a tensor as f32. */
void st_to_f32(const st_tensor *t, float *dst);

/* A tensor to write: F32 data of shape[0..n_dims) (row-major). */
typedef struct st_out {
    const char *name;
    int n_dims;
    int64_t shape[4];
    const float *data;
} st_out;
/* Writes PATH (via PATH.tmp + rename): keys sorted by name as the safetensors library does for
 * one dtype, header padded with spaces to a multiple of 8, __metadata__ {"format":"pt"}. */
int st_write_f32(const char *path, st_out *t, int64_t n, pf_error *err);

/* ---- shared helpers (lora_weights.c) ------------------------------------------------------- */
/* Appends an empty pair (a, b NULL) and returns it; NULL when out of memory. */
pf_lora_pair *pf_lora_weights_add(pf_lora_weights *w);
/* Checks every pair against the base model's linear weights (names and shapes). */
int pf_lora_check_base(const pf_lora_weights *w, const pf_model *m, const char *what, pf_error *err);
/* Sorts pairs by layer, then qkv, o, up, down, then output. */
void pf_lora_sort_pairs(pf_lora_weights *w);
/* n_in / n_out of the base model's linear named `name`; false when none. */
bool pf_lora_base_shape(const pf_model *m, const char *name, int64_t *n_in, int64_t *n_out);

/* The two readers behind pf_lora_read (w starts zeroed; left partly filled on error). */
int pf_lora_read_gguf(const char *path, pf_lora_weights *w, pf_error *err);
int pf_lora_read_peft(const char *dir, pf_lora_weights *w, pf_error *err);

#endif
