/* Internal pieces of the Hugging Face -> GGUF converter: a validating safetensors reader (one
 * file or a sharded set), a minimal SentencePiece model (protobuf) reader, and the tokenizer
 * vocabulary the converter assembles. */
#ifndef PF_CONVERT_INTERNAL_H
#define PF_CONVERT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "phiforge.h"

/* ---- safetensors ---------------------------------------------------------------------------- */

typedef struct pf_st_tensor {
    char *name;
    pf_type type;          /* F32, F16 or BF16                                              */
    int n_dims;            /* 0..4, shape as stored (PyTorch order: slowest first)          */
    int64_t shape[4];
    const uint8_t *data;   /* inside the file's read-only mapping                           */
    size_t nbytes;
    const char *file;      /* path of the file that holds it                                */
} pf_st_tensor;

typedef struct pf_st_set pf_st_set;

/* Opens HF_DIR's weights: model.safetensors.index.json (every shard it names), else every
 * *.safetensors file of the directory. Validates each header completely (length, JSON, dtypes,
 * shapes, offsets inside the file, sizes = shape × dtype, no two tensors of the same name);
 * errors name the file and the tensor key. */
int pf_st_open_dir(const char *dir, pf_st_set **out, pf_error *err);
/* One file (adds to *set, creating it when *set is NULL). */
int pf_st_open_file(pf_st_set **set, const char *path, pf_error *err);
void pf_st_close(pf_st_set *s);
int64_t pf_st_count(const pf_st_set *s);
const pf_st_tensor *pf_st_at(const pf_st_set *s, int64_t i);
const pf_st_tensor *pf_st_find(const pf_st_set *s, const char *name); /* NULL if absent */

/* ---- SentencePiece model (tokenizer.model) --------------------------------------------------- */

typedef struct pf_spm_model {
    int64_t n;
    char **pieces;        /* NUL-terminated UTF-8                                             */
    float *scores;
    int32_t *types;       /* 1 NORMAL, 2 UNKNOWN, 3 CONTROL, 4 USER_DEFINED, 5 UNUSED, 6 BYTE */
    int32_t unk_id, bos_id, eos_id, pad_id; /* trainer_spec (defaults 0, 1, 2, -1)              */
} pf_spm_model;

/* Parses the protobuf ModelProto by hand: field 1 (repeated SentencePiece {1 piece, 2 score,
 * 3 type}), field 2 TrainerSpec (40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id); everything else is
 * skipped by wire type. PF_ERR_FORMAT naming the byte offset for a truncated or malformed file. */
int pf_spm_parse(const void *data, size_t size, const char *path, pf_spm_model *out, pf_error *err);
int pf_spm_load(const char *path, pf_spm_model *out, pf_error *err);
void pf_spm_free(pf_spm_model *m);

#endif

/* ---- JSON files and the vocabulary of the converter ------------------------------------------ */

#include <cjson/cJSON.h>

/* DIR/NAME parsed; *out = NULL (PF_OK) when the file does not exist, PF_ERR_FORMAT naming it when
 * it is not valid JSON. */
int pf_cv_read_json(const char *dir, const char *name, cJSON **out, pf_error *err);

/* Adds tokenizer.ggml.model/pre/tokens/scores/token_type, the special token ids, add_bos/eos and
 * tokenizer.chat_template to `w` as Phi3MiniModel.set_vocab + gguf.SpecialVocab do. */
int pf_cv_add_vocab(pf_gguf_writer *w, const char *dir, const cJSON *config, pf_error *err);
