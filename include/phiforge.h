/*
 * phiforge — make a Phi-3 model an expert of one industry (RAG + LoRA/QLoRA), in C11.
 *
 * Public API of libphiforge. Conventions:
 *   - Every fallible call returns PF_OK (0) or a negative pf_status and, when `err` is not
 *     NULL, fills it with a message that names the file / offset / field at fault.
 *   - The library never exits, aborts or keeps global mutable state; all state lives in the
 *     objects the caller creates.
 *   - Tensor shapes follow GGUF: ne[0] is the fastest-varying dimension (row length).
 */
#ifndef PHIFORGE_H
#define PHIFORGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PF_VERSION "0.1.0"

/* ------------------------------------------------------------------------------------------ */
/* Errors                                                                                       */
/* ------------------------------------------------------------------------------------------ */

typedef enum pf_status {
    PF_OK = 0,
    PF_ERR_IO = -1,          /* open/read/write/mmap failed                                  */
    PF_ERR_FORMAT = -2,      /* input is malformed (truncated, hostile, inconsistent)         */
    PF_ERR_NOMEM = -3,       /* allocation failed                                             */
    PF_ERR_ARG = -4,         /* caller passed an invalid argument                             */
    PF_ERR_UNSUPPORTED = -5, /* valid input that this build cannot handle (unknown type, ...) */
    PF_ERR_NOT_FOUND = -6,   /* a named key / tensor / file does not exist                    */
} pf_status;

typedef struct pf_error {
    int code;       /* last pf_status set, PF_OK when nothing failed */
    char msg[512];  /* human-readable reason, "" when code == PF_OK  */
} pf_error;

/* Fills `err` (may be NULL) with code and printf-style message; returns `code`. */
int pf_error_set(pf_error *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void pf_error_clear(pf_error *err);
const char *pf_status_str(int code);

/* ------------------------------------------------------------------------------------------ */
/* Half-precision helpers                                                                       */
/* ------------------------------------------------------------------------------------------ */

float pf_fp16_to_fp32(uint16_t h);
uint16_t pf_fp32_to_fp16(float f);   /* round to nearest even, like F16C / numpy  */
float pf_bf16_to_fp32(uint16_t h);
uint16_t pf_fp32_to_bf16(float f);   /* round to nearest even, NaN kept quiet     */

/* ------------------------------------------------------------------------------------------ */
/* Tensor types (ids are ggml's, as stored in GGUF)                                             */
/* ------------------------------------------------------------------------------------------ */

typedef enum pf_type {
    PF_TYPE_F32 = 0,
    PF_TYPE_F16 = 1,
    PF_TYPE_Q4_0 = 2,
    PF_TYPE_Q4_1 = 3,
    PF_TYPE_Q5_0 = 6,
    PF_TYPE_Q5_1 = 7,
    PF_TYPE_Q8_0 = 8,
    PF_TYPE_Q8_1 = 9,   /* activations only (vec_dot partner of Q4_1 / Q5_1) */
    PF_TYPE_Q2_K = 10,
    PF_TYPE_Q3_K = 11,
    PF_TYPE_Q4_K = 12,
    PF_TYPE_Q5_K = 13,
    PF_TYPE_Q6_K = 14,
    PF_TYPE_Q8_K = 15,  /* activations only (vec_dot partner of the K-quants) */
    PF_TYPE_IQ4_NL = 20,
    PF_TYPE_BF16 = 30,
    PF_TYPE_COUNT = 31  /* size of per-type tables; not every id below it is a type */
} pf_type;

/* dst/src are whole blocks; n is a multiple of the type's block size. */
typedef void (*pf_to_float_fn)(const void *src, float *dst, int64_t n);
typedef void (*pf_from_float_fn)(const float *src, void *dst, int64_t n);
/* *s = dot(x, y) over n elements; x is a row of the weight type, y a row of its vec_dot_type. */
typedef void (*pf_vec_dot_fn)(int64_t n, float *s, const void *x, const void *y);

typedef struct pf_type_traits {
    const char *name;           /* "Q4_K", as ggml and llama.cpp spell it                  */
    int64_t block_size;         /* elements per block                                      */
    size_t type_size;           /* bytes per block                                         */
    bool is_quantized;
    bool is_weight;             /* false for activation-only formats (Q8_1, Q8_K)          */
    pf_type vec_dot_type;       /* format the activations are converted to for vec_dot     */
    pf_to_float_fn to_float;    /* dequantize (exact, matches ggml bit for bit)            */
    pf_from_float_fn from_float;/* reference quantizer                                     */
    pf_vec_dot_fn vec_dot;      /* scalar reference dot product                            */
} pf_type_traits;

/* NULL when `t` is not a type this build knows. */
const pf_type_traits *pf_type_get(pf_type t);
/* "Q4_K" for a known type, "UNKNOWN" otherwise. */
const char *pf_type_name(pf_type t);
/* Case-insensitive lookup of a type name; PF_ERR_NOT_FOUND when unknown. */
int pf_type_from_name(const char *name, pf_type *out);
/* Bytes of one row of ne0 elements (ne0 must be a multiple of the block size). */
size_t pf_row_size(pf_type t, int64_t ne0);

/* ------------------------------------------------------------------------------------------ */
/* GGUF container (v2 and v3, little-endian)                                                    */
/* ------------------------------------------------------------------------------------------ */

typedef enum pf_gguf_type {
    PF_GGUF_UINT8 = 0,
    PF_GGUF_INT8 = 1,
    PF_GGUF_UINT16 = 2,
    PF_GGUF_INT16 = 3,
    PF_GGUF_UINT32 = 4,
    PF_GGUF_INT32 = 5,
    PF_GGUF_FLOAT32 = 6,
    PF_GGUF_BOOL = 7,
    PF_GGUF_STRING = 8,
    PF_GGUF_ARRAY = 9,
    PF_GGUF_UINT64 = 10,
    PF_GGUF_INT64 = 11,
    PF_GGUF_FLOAT64 = 12,
    PF_GGUF_TYPE_COUNT = 13
} pf_gguf_type;

/* A metadata value. Strings are NUL-terminated copies owned by the pf_gguf (or writer). */
typedef struct pf_gguf_value {
    pf_gguf_type type;
    union {
        uint64_t u;   /* UINT8/16/32/64, BOOL (0/1)  */
        int64_t i;    /* INT8/16/32/64               */
        double f;     /* FLOAT32/FLOAT64             */
        struct { const char *ptr; uint64_t len; } str;
        struct {
            pf_gguf_type type;                  /* element type                             */
            uint64_t n;                         /* element count                            */
            const void *data;                   /* scalar elements: packed little-endian,    */
                                                /* n * pf_gguf_type_size(type) bytes         */
            const struct pf_gguf_value *items;  /* STRING / ARRAY elements (n of them)       */
        } arr;
    } v;
} pf_gguf_value;

/* Size in bytes of a scalar value type; 0 for STRING / ARRAY / unknown. */
size_t pf_gguf_type_size(pf_gguf_type t);
const char *pf_gguf_type_name(pf_gguf_type t);

typedef struct pf_tensor_info {
    const char *name;     /* NUL-terminated                                           */
    uint32_t n_dims;      /* 1..4                                                     */
    int64_t ne[4];        /* unused dims are 1                                        */
    pf_type type;
    uint64_t offset;      /* relative to the start of the data section                */
    size_t nbytes;
    const void *data;     /* points into the read-only mapping; never copied          */
} pf_tensor_info;

typedef struct pf_gguf pf_gguf;

/* Opens and validates a GGUF file, mapping it read-only. */
int pf_gguf_open(const char *path, pf_gguf **out, pf_error *err);
/* Same, over a caller-owned buffer that must outlive the handle (used by fuzzing and tests). */
int pf_gguf_open_memory(const void *data, size_t size, pf_gguf **out, pf_error *err);
void pf_gguf_close(pf_gguf *g);

uint32_t pf_gguf_version(const pf_gguf *g);
size_t pf_gguf_alignment(const pf_gguf *g);
size_t pf_gguf_data_offset(const pf_gguf *g);  /* file offset of the tensor data section */
size_t pf_gguf_file_size(const pf_gguf *g);
const char *pf_gguf_path(const pf_gguf *g);    /* "<memory>" for open_memory            */

int64_t pf_gguf_n_kv(const pf_gguf *g);
const char *pf_gguf_key(const pf_gguf *g, int64_t i);
const pf_gguf_value *pf_gguf_value_at(const pf_gguf *g, int64_t i);
int64_t pf_gguf_find_key(const pf_gguf *g, const char *key);          /* -1 if absent */
const pf_gguf_value *pf_gguf_get(const pf_gguf *g, const char *key);  /* NULL if absent */

/* Typed getters: PF_ERR_NOT_FOUND when the key is absent, PF_ERR_FORMAT when its type does not
 * convert (any integer type converts to int64 if in range; FLOAT32/64 to double). */
int pf_gguf_get_int(const pf_gguf *g, const char *key, int64_t *out, pf_error *err);
int pf_gguf_get_float(const pf_gguf *g, const char *key, double *out, pf_error *err);
int pf_gguf_get_bool(const pf_gguf *g, const char *key, bool *out, pf_error *err);
int pf_gguf_get_str(const pf_gguf *g, const char *key, const char **out, pf_error *err);

int64_t pf_gguf_n_tensors(const pf_gguf *g);
const pf_tensor_info *pf_gguf_tensor(const pf_gguf *g, int64_t i);
int64_t pf_gguf_find_tensor(const pf_gguf *g, const char *name);      /* -1 if absent */
int64_t pf_tensor_nelements(const pf_tensor_info *t);

/* Writer: collects key/values and tensors, then writes the file in one pass (to PATH.tmp,
 * fsync, rename), laid out as the reference writer does (tensors in insertion order, each
 * padded to the alignment), so that reading a file and re-adding everything in order
 * reproduces it byte for byte. */
typedef struct pf_gguf_writer pf_gguf_writer;

int pf_gguf_writer_create(pf_gguf_writer **out, pf_error *err);
void pf_gguf_writer_free(pf_gguf_writer *w);
int pf_gguf_writer_set_version(pf_gguf_writer *w, uint32_t version, pf_error *err); /* 2 or 3 */
/* Adds or replaces a key (replacing keeps its position). The value is deep-copied.
 * `general.alignment` sets the layout alignment (must be a power of two). */
int pf_gguf_writer_set(pf_gguf_writer *w, const char *key, const pf_gguf_value *v, pf_error *err);
int pf_gguf_writer_set_u32(pf_gguf_writer *w, const char *key, uint32_t v, pf_error *err);
int pf_gguf_writer_set_i32(pf_gguf_writer *w, const char *key, int32_t v, pf_error *err);
int pf_gguf_writer_set_f32(pf_gguf_writer *w, const char *key, float v, pf_error *err);
int pf_gguf_writer_set_bool(pf_gguf_writer *w, const char *key, bool v, pf_error *err);
int pf_gguf_writer_set_str(pf_gguf_writer *w, const char *key, const char *v, pf_error *err);
int pf_gguf_writer_set_arr_str(pf_gguf_writer *w, const char *key, const char *const *v, uint64_t n,
                               pf_error *err);
/* Scalar array: `data` holds n packed little-endian elements of `elem_type`. */
int pf_gguf_writer_set_arr(pf_gguf_writer *w, const char *key, pf_gguf_type elem_type, const void *data,
                           uint64_t n, pf_error *err);
int pf_gguf_writer_remove(pf_gguf_writer *w, const char *key);
/* Copies every key/value of `src`, in order. */
int pf_gguf_writer_copy_kvs(pf_gguf_writer *w, const pf_gguf *src, pf_error *err);
/* Adds a tensor; `data` (nbytes = row size * rows) is NOT copied and must stay valid until
 * pf_gguf_writer_write returns. Pass data = NULL to reserve space and supply the bytes later
 * through a callback (see below). */
int pf_gguf_writer_add_tensor(pf_gguf_writer *w, const char *name, pf_type type, uint32_t n_dims,
                              const int64_t *ne, const void *data, pf_error *err);
/* Called for tensors added with data == NULL, in order; must fill `dst` with nbytes. */
typedef int (*pf_gguf_fill_fn)(void *ctx, int64_t tensor_index, void *dst, size_t nbytes, pf_error *err);
int pf_gguf_writer_write(pf_gguf_writer *w, const char *path, pf_gguf_fill_fn fill, void *fill_ctx,
                         pf_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Threads and kernels                                                                          */
/* ------------------------------------------------------------------------------------------ */

typedef struct pf_pool pf_pool;
typedef void (*pf_task_fn)(void *ctx, int ith, int nth);

/* A pool of n_threads workers in total (the caller counts as one: n_threads - 1 are spawned).
 * n_threads <= 0 means "number of online CPUs". */
int pf_pool_create(int n_threads, pf_pool **out, pf_error *err);
void pf_pool_free(pf_pool *p);
int pf_pool_n_threads(const pf_pool *p);
/* Runs fn(ctx, ith, nth) on every thread (ith = 0..nth-1, the caller runs ith 0) and waits. */
void pf_pool_run(pf_pool *p, pf_task_fn fn, void *ctx);

typedef enum pf_isa {
    PF_ISA_AUTO = 0,   /* best available, chosen by CPUID at run time */
    PF_ISA_SCALAR = 1, /* portable C reference                        */
    PF_ISA_AVX2 = 2,   /* AVX2 + FMA + F16C                           */
} pf_isa;

bool pf_cpu_has_avx2(void); /* AVX2 + FMA + F16C, and the OS saves YMM state */
/* AVX2 as above plus AVX-512 F/BW/VL/VNNI with OS support. A compute context created with
 * PF_ISA_AUTO on such a CPU uses vpdpbusd in the int8 matvec kernels (Q4_0, Q8_0); one created
 * with PF_ISA_AVX2 uses plain AVX2 everywhere. */
bool pf_cpu_has_avx512vnni(void);

/* One table of kernels per instruction set (immutable, static storage). */
typedef struct pf_kernels {
    const char *name;                             /* "scalar", "avx2"                       */
    pf_isa isa;
    pf_vec_dot_fn vec_dot[PF_TYPE_COUNT];         /* weight type -> dot with vec_dot_type    */
    pf_from_float_fn quantize_row[PF_TYPE_COUNT]; /* fast activation quantizers (Q8_0, Q8_1, */
                                                  /* Q8_K); NULL where none                  */
    pf_to_float_fn to_float[PF_TYPE_COUNT];       /* fast dequantizers                       */
} pf_kernels;

/* The kernel table for `isa` (AUTO resolves by CPUID); NULL if the CPU lacks it. */
const pf_kernels *pf_kernels_get(pf_isa isa);

/* A compute context: a thread pool, a kernel table and scratch memory that grows on demand
 * and is reused, so steady-state calls do not allocate. Not shareable between threads. */
typedef struct pf_compute pf_compute;

int pf_compute_create(int n_threads, pf_isa isa, pf_compute **out, pf_error *err);
void pf_compute_free(pf_compute *c);
pf_pool *pf_compute_pool(pf_compute *c);
const pf_kernels *pf_compute_kernels(const pf_compute *c);
/* "scalar", "avx2" or "avx2+vnni": the kernels this context really runs. */
const char *pf_compute_isa_name(const pf_compute *c);
/* Scratch of at least `bytes` (64-byte aligned), valid until the next call; NULL on OOM. */
void *pf_compute_scratch(pf_compute *c, size_t bytes);

/* Y = X · Wᵀ: W has n_out rows of n_in elements of type wtype (row stride pf_row_size),
 * X is n_tok × n_in f32 (row stride n_in), Y is n_tok × n_out f32 (row stride n_out).
 * n_tok == 1 is a matrix × vector product. Rows of W are split across the pool's threads. */
int pf_matmul(pf_compute *c, const void *w, pf_type wtype, int64_t n_out, int64_t n_in, const float *x,
              int64_t n_tok, float *y, pf_error *err);

/* Dequantize n_rows rows of a tensor to f32 (multithreaded). */
int pf_dequantize(pf_compute *c, const void *src, pf_type t, int64_t n_rows, int64_t ne0, float *dst,
                  pf_error *err);

/* Quantize n_rows rows of f32 to type t with the reference quantizer (multithreaded). */
int pf_quantize(pf_compute *c, const float *src, pf_type t, int64_t n_rows, int64_t ne0, void *dst,
                pf_error *err);

/* Runs fn(arg, i0, i1) over [0, n) split into one contiguous range per thread of c's pool, or
 * inline as fn(arg, 0, n) when n < min_par or the pool has one thread (the caller's loop is then
 * not worth a dispatch). */
typedef void (*pf_range_fn)(void *arg, int64_t i0, int64_t i1);
void pf_compute_parallel(pf_compute *c, int64_t n, int64_t min_par, pf_range_fn fn, void *arg);

/* ------------------------------------------------------------------------------------------ */
/* Tokenizer (SentencePiece BPE and WordPiece, from GGUF metadata)                              */
/* ------------------------------------------------------------------------------------------ */
/* Reproduces llama.cpp's SPM tokenizer (tokenizer.ggml.model = "llama"): special-token
 * partition, one space prefixed to each text fragment, " " -> U+2581, score-ordered BPE with
 * byte fallback. Phi-3 files (general.architecture "phi3", or a name containing "phi3"/"phi-3")
 * get the RSTRIP rule of Hugging Face: whitespace right after a special token other than
 * <unk>, <s>, <|endoftext|> is dropped. A tokenizer copies what it needs from the GGUF (the file
 * may be closed afterwards), is immutable once loaded and may be shared between threads. */
typedef struct pf_tokenizer pf_tokenizer;

/* PF_ERR_NOT_FOUND without tokenizer keys, PF_ERR_UNSUPPORTED for models other than "llama"
 * (SentencePiece) and "bert" (WordPiece, see the embedding section). */
int pf_tokenizer_load(const pf_gguf *g, pf_tokenizer **out, pf_error *err);
void pf_tokenizer_free(pf_tokenizer *tok);

int32_t pf_tokenizer_n_vocab(const pf_tokenizer *tok);
/* Special ids; -1 when the file has none. eot = end of turn (<|end|> for Phi-3). */
int32_t pf_token_bos(const pf_tokenizer *tok);
int32_t pf_token_eos(const pf_tokenizer *tok);
int32_t pf_token_eot(const pf_tokenizer *tok);
bool pf_tokenizer_add_bos(const pf_tokenizer *tok);  /* tokenizer.ggml.add_bos_token */
/* End of generation: eos, eot and tokens named <|end|>, <|endoftext|>, </s> (and, for Phi-3,
 * <|assistant|> as in its generation_config): {32007, 32000, 32001, 2} for Phi-3. */
bool pf_token_is_eog(const pf_tokenizer *tok, int32_t id);
/* Control or unknown-type token: rendered as "" unless render_special is asked for. */
bool pf_token_is_control(const pf_tokenizer *tok, int32_t id);
/* Raw vocabulary text of `id` (NUL-terminated, "▁" not unescaped); NULL when out of range. */
const char *pf_token_text(const pf_tokenizer *tok, int32_t id, size_t *len);
/* Id whose vocabulary text is exactly text[0..len); -1 when none. */
int32_t pf_token_lookup(const pf_tokenizer *tok, const char *text, size_t len);

/* Encodes text[0..len) (any bytes; invalid UTF-8 bytes fall back to byte tokens).
 * add_special: prepend BOS / append EOS as the file's add_bos_token / add_eos_token say.
 * parse_special: match control-token texts such as "<|user|>"; when false only
 * user-defined tokens are matched. Writes min(count, cap) ids and returns count (>= 0), so a
 * call with cap 0 sizes the buffer; a negative pf_status on failure. */
int64_t pf_tokenize(const pf_tokenizer *tok, const char *text, size_t len, bool add_special, bool parse_special,
                    int32_t *ids, int64_t cap, pf_error *err);

/* The bytes of one token, never stripped (for streaming): "▁" -> " ", <0xXX> -> that byte,
 * control tokens -> "" unless render_special. Returns the length n and copies the piece only
 * when n <= cap (no NUL is added); a negative pf_status for an invalid id. */
int64_t pf_token_to_piece(const pf_tokenizer *tok, int32_t id, bool render_special, char *buf, int64_t cap);

/* Concatenated pieces, as llama.cpp's detokenize: when the file has add_space_prefix, one
 * leading space of the FIRST token's piece is dropped (a first BOS piece has none, so text
 * after a BOS keeps its space). Returns the length n and fills buf only when n <= cap; no NUL
 * is added; a negative pf_status for an invalid id. Raw bytes are copied as they are. */
int64_t pf_detokenize(const pf_tokenizer *tok, const int32_t *ids, int64_t n, bool render_special, char *buf,
                      int64_t cap, pf_error *err);

/* Streaming detokenizer: emits only complete, valid UTF-8. Bytes of a character split over
 * several byte tokens are held back until it is complete; a sequence that cannot complete is
 * replaced by U+FFFD (one per maximal ill-formed subpart, as the Unicode standard recommends).
 * Plain struct, no allocation: initialise with pf_detok_stream_init. */
typedef struct pf_detok_stream {
    const pf_tokenizer *tok;
    bool render_special;
    bool strip_space;       /* drop one leading space of the next token's piece (first)   */
    uint8_t pending[4];     /* bytes of an incomplete UTF-8 sequence                      */
    int n_pending, need;    /* bytes held, total length of the sequence being completed   */
    uint8_t lo, hi;         /* allowed range of the next continuation byte                */
} pf_detok_stream;

/* strip_first_space: behave like pf_detokenize for a sequence that starts here (drop one
 * leading space of the first piece); false when continuing after a prompt. */
void pf_detok_stream_init(pf_detok_stream *s, const pf_tokenizer *tok, bool render_special, bool strip_first_space);
/* Feeds one token and writes the text it completes. Returns the byte count n; when n > cap
 * nothing is written or consumed (call again with a bigger buffer); at most
 * pf_detok_stream_max(tok) bytes. A negative pf_status for an invalid id (state unchanged). */
int64_t pf_detok_stream_push(pf_detok_stream *s, int32_t id, char *buf, int64_t cap);
/* End of stream: held bytes become U+FFFD (3 bytes); same return convention as push. */
int64_t pf_detok_stream_flush(pf_detok_stream *s, char *buf, int64_t cap);
/* Upper bound on the bytes one push or flush can return for this tokenizer. */
int64_t pf_detok_stream_max(const pf_tokenizer *tok);

/* ------------------------------------------------------------------------------------------ */
/* Phi-3 model: load, context (KV cache), batched forward                                       */
/* ------------------------------------------------------------------------------------------ */
/* Loading validates hyperparameters (phi3.* keys) and every tensor's presence, type and shape,
 * with errors naming the key or tensor; weights stay in the GGUF mapping (never copied).
 * A context holds the KV cache and every work buffer, allocated once at creation, so that
 * pf_decode does not allocate. One context is used by one thread at a time; several contexts
 * may share one model. */

typedef struct pf_model pf_model;
typedef struct pf_context pf_context;

typedef struct pf_model_hparams {
    int64_t n_vocab;        /* token_embd ne[1]                                              */
    int64_t n_ctx_train;    /* phi3.context_length                                           */
    int64_t n_ctx_orig;     /* phi3.rope.scaling.original_context_length (n_ctx_train if absent) */
    int64_t n_embd;         /* phi3.embedding_length                                         */
    int64_t n_ff;           /* phi3.feed_forward_length (ffn_up holds 2*n_ff rows: gate|up)  */
    int64_t n_layer;        /* phi3.block_count                                              */
    int64_t n_head;         /* phi3.attention.head_count                                     */
    int64_t n_head_kv;      /* phi3.attention.head_count_kv (n_head if absent; GQA if less)  */
    int64_t head_dim;       /* n_embd / n_head                                               */
    int64_t n_rot;          /* phi3.rope.dimension_count (head_dim if absent)                */
    float rms_eps;          /* phi3.attention.layer_norm_rms_epsilon (1e-5 if absent)        */
    float rope_theta;       /* phi3.rope.freq_base (10000 if absent)                         */
    float rope_attn_factor; /* LongRoPE magnitude m: phi3.rope.scaling.attn_factor, else      */
                            /* sqrt(1 + ln(n_ctx_train/n_ctx_orig) / ln(n_ctx_orig)) for a    */
                            /* model with rope factors and n_ctx_train > n_ctx_orig, else 1   */
    bool has_rope_factors;  /* rope_factors_long/short.weight present (LongRoPE)             */
} pf_model_hparams;

/* Opens PATH and loads a Phi-3 model from it (the model owns the mapping). */
int pf_model_load(const char *path, pf_model **out, pf_error *err);
/* Loads from an open GGUF that the caller keeps open (and unchanged) for the model's lifetime. */
int pf_model_load_gguf(const pf_gguf *g, pf_model **out, pf_error *err);
void pf_model_free(pf_model *m);
const pf_model_hparams *pf_model_get_hparams(const pf_model *m);
const pf_gguf *pf_model_gguf(const pf_model *m); /* e.g. for the tokenizer */

typedef struct pf_context_params {
    int64_t n_ctx;     /* positions the KV cache holds; 0: min(n_ctx_train, 4096). Must be <=     */
                       /* n_ctx_train. LongRoPE uses the long factors iff n_ctx > n_ctx_orig.   */
    int64_t n_batch;   /* most tokens per forward pass (longer calls are split); 0: 512        */
    pf_type kv_type;   /* PF_TYPE_F16 (default) or PF_TYPE_F32                                  */
    int n_threads;     /* <= 0: online CPUs                                                     */
    pf_isa isa;        /* PF_ISA_AUTO by default                                                */
} pf_context_params;

pf_context_params pf_context_default_params(void);
int pf_context_create(const pf_model *m, const pf_context_params *p, pf_context **out, pf_error *err);
void pf_context_free(pf_context *ctx);
const pf_model *pf_context_model(const pf_context *ctx);
int64_t pf_context_n_ctx(const pf_context *ctx);
int64_t pf_context_n_past(const pf_context *ctx);   /* positions held in the KV cache */
bool pf_context_long_rope(const pf_context *ctx);   /* long LongRoPE factors in use   */
pf_compute *pf_context_compute(pf_context *ctx);    /* its thread pool and kernels    */

typedef enum pf_logits_mode {
    PF_LOGITS_LAST = 0, /* logits of the last token only: 1 × n_vocab       */
    PF_LOGITS_ALL = 1,  /* logits of every token: n × n_vocab, row per token */
} pf_logits_mode;

/* Runs tokens ids[0..n) at positions pos0..pos0+n-1 through the model in one batched pass
 * (split into n_batch pieces if longer), appends their K (after RoPE) and V to the KV cache and
 * writes logits (NULL: none). pos0 must be <= pf_context_n_past (a smaller pos0 rewinds the
 * cache: later positions are dropped) and pos0 + n <= n_ctx. n = 1 is incremental decoding. */
int pf_decode(pf_context *ctx, const int32_t *ids, int64_t n, int64_t pos0, float *logits, pf_logits_mode mode,
              pf_error *err);

/* LoRA adapters in llama.cpp's GGUF format (general.type "adapter", adapter.type "lora",
 * adapter.lora.alpha; tensors <base>.lora_a ne [n_in, r] and <base>.lora_b ne [r, n_out] of
 * any matmul type). Loading checks the architecture against the model's and every pair's
 * shapes against its base weight (errors name the tensor); names ending in _norm.weight are
 * ignored. Attached to a context, each adapted linear computes y = W x + Σ s · B (A x) with
 * s = scale · alpha / r (r = lora_b ne[0]; s = scale when alpha is 0 or absent). The adapter
 * keeps its file mapped; it must outlive every context it is attached to. A directory is read
 * as a PEFT adapter (pf_lora_read, see "LoRA adapter files") with s = scale · alpha / r, or
 * scale · alpha / sqrt(r) when its config says use_rslora. */
typedef struct pf_lora pf_lora;

int pf_lora_load(const char *path, const pf_model *m, pf_lora **out, pf_error *err);
void pf_lora_free(pf_lora *a);
float pf_lora_alpha(const pf_lora *a);       /* adapter.lora.alpha, 0 when absent        */
int64_t pf_lora_n_adapted(const pf_lora *a); /* linear weights the adapter modifies      */
/* Replaces the context's adapters with adapters[0..n) (n = 0: none) at user scales scales[i]
 * (NULL: all 1.0). Each adapter must have been loaded for the context's model. Buffers are
 * allocated here, so pf_decode still does not allocate. The KV cache is not recomputed. */
int pf_context_set_lora(pf_context *ctx, pf_lora *const *adapters, const float *scales, int n, pf_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Sampling, generation and chat                                                                */
/* ------------------------------------------------------------------------------------------ */
/* Sampler: llama.cpp's default chain, penalties -> top-k -> top-p -> min-p -> temperature ->
 * draw (so top-p and min-p see the distribution before temperature), with its own PRNG (xoshiro256**, seeded through splitmix64) so that a seed fixes the
 * sequence. Every buffer is sized to n_vocab at creation: sampling a token does not allocate.
 * One sampler is used by one thread at a time. */
typedef struct pf_sampler pf_sampler;

typedef struct pf_sampler_params {
    float temperature;       /* <= 0: greedy (argmax of the penalized logits)                   */
    int32_t top_k;           /* keep the k most likely; <= 0: off                               */
    float top_p;             /* keep the smallest most-likely prefix with mass >= p; >= 1: off  */
    float min_p;             /* keep p_i >= min_p * p_max; <= 0: off                            */
    float repeat_penalty;    /* llama.cpp: logit > 0 -> logit / r, else logit * r; 1: off       */
    int32_t repeat_last_n;   /* window of accepted tokens all three penalties look at; 0: off   */
    float frequency_penalty; /* OpenAI: logit -= count * f + (count > 0) * presence             */
    float presence_penalty;
    uint64_t seed;
} pf_sampler_params;

/* temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, repeat_penalty 1, repeat_last_n 64,
 * frequency/presence 0, seed 0 (llama.cpp's defaults, except for its random seed). */
pf_sampler_params pf_sampler_default_params(void);
/* PF_ERR_ARG for NaN/negative values that have no meaning (top_p < 0, repeat_penalty <= 0, ...). */
int pf_sampler_create(const pf_sampler_params *p, int32_t n_vocab, pf_sampler **out, pf_error *err);
void pf_sampler_free(pf_sampler *s);
const pf_sampler_params *pf_sampler_get_params(const pf_sampler *s);
/* Forgets the penalty window and restarts the PRNG from the seed. */
void pf_sampler_reset(pf_sampler *s);
/* Forgets the penalty window only (the PRNG runs on). */
void pf_sampler_clear_history(pf_sampler *s);
/* Records a token in the penalty window (prompt tokens too, as llama.cpp does). */
int pf_sampler_accept(pf_sampler *s, int32_t id);
/* Draws a token from logits[0..n_vocab) (not modified); does not accept it. NaN logits count
 * as -inf. Returns the id, or PF_ERR_ARG for NULL arguments. */
int32_t pf_sampler_sample(pf_sampler *s, const float *logits);
/* The distribution the next draw would use: writes the kept candidates, most likely first (ties:
 * lower id first), with their final probabilities (after temperature; they sum to 1), and
 * returns their count (1 when greedy). ids/probs hold n_vocab entries. */
int64_t pf_sampler_candidates(pf_sampler *s, const float *logits, int32_t *ids, float *probs);
/* Applies the repeat / frequency / presence penalties of the current window to logits in place. */
void pf_sampler_apply_penalties(pf_sampler *s, float *logits);

/* Generation: decodes a prompt, then samples, streams and decodes token by token. Text goes to
 * the callback as complete UTF-8 (pf_detok_stream); text that could still be the start of a
 * stop string is withheld until it is known not to be, and a stop string is never emitted. */
typedef int (*pf_text_fn)(void *user, const char *text, size_t len); /* non-zero: stop */

typedef enum pf_stop_reason {
    PF_STOP_NONE = 0,
    PF_STOP_EOG = 1,        /* an end-of-generation token (pf_token_is_eog)              */
    PF_STOP_MAX_TOKENS = 2, /* max_tokens generated                                       */
    PF_STOP_STRING = 3,     /* a stop string appeared in the text                         */
    PF_STOP_CTX_FULL = 4,   /* the KV cache is full                                       */
    PF_STOP_CALLBACK = 5,   /* the text callback returned non-zero                        */
} pf_stop_reason;

typedef struct pf_gen_params {
    int64_t max_tokens;       /* most tokens to generate; <= 0: until EOG, stop or full context */
    const char *const *stop;  /* n_stop non-empty stop strings                                 */
    int n_stop;
    int64_t n_cached;         /* prompt[0..n_cached) already sits in the KV cache (from an      */
                              /* earlier call): decoding starts at that position. < n_prompt,   */
                              /* <= pf_context_n_past                                           */
    bool strip_first_space;   /* drop one leading space of the first generated piece           */
    pf_text_fn on_text;       /* may be NULL                                                    */
    void *user;
    int32_t *out_ids;         /* optional: generated ids (no EOG), min(n_gen, out_cap) of them  */
    int64_t out_cap;
    int32_t n_draft;          /* prompt-lookup speculative decoding: most draft tokens per      */
                              /* forward pass; 0: off (see pf_lookup below)                      */
    int32_t ngram_min, ngram_max; /* n-gram lengths matched for drafts; 0: 2 and 4              */
} pf_gen_params;

typedef struct pf_gen_result {
    pf_stop_reason stop;
    int64_t n_prompt;         /* prompt tokens decoded (n_prompt - n_cached)                   */
    int64_t n_gen;            /* tokens generated, the EOG that ended it not counted           */
    double prompt_ms, gen_ms; /* prompt decoding; sampling + decoding of the generated tokens  */
    int64_t n_drafted;        /* prompt lookup: draft tokens decoded for verification           */
    int64_t n_accepted;       /* of which were kept (they are part of n_gen)                    */
    int64_t n_forward;        /* forward passes after the prompt (plain: about n_gen)           */
} pf_gen_result;

pf_gen_params pf_gen_default_params(void);
const char *pf_stop_reason_str(pf_stop_reason r);
/* Resets the sampler's penalty window to the prompt, then generates. On return the KV cache
 * holds the prompt and the generated tokens except the last one sampled (never decoded):
 * pf_context_n_past tells how many positions. */
int pf_generate(pf_context *ctx, const pf_tokenizer *tok, pf_sampler *smp, const int32_t *prompt, int64_t n_prompt,
                const pf_gen_params *p, pf_gen_result *res, pf_error *err);

/* Chat template (Phi-3, spec 5.4): `<|system|>\n..<|end|>\n` (only when non-empty),
 * `<|user|>\n..<|end|>\n`, `<|assistant|>\n..<|end|>\n`, then `<|assistant|>\n`. BOS is not
 * part of the text: tokenizing with add_special adds it as tokenizer.ggml.add_bos_token says. */
typedef enum pf_chat_role { PF_CHAT_SYSTEM = 0, PF_CHAT_USER = 1, PF_CHAT_ASSISTANT = 2 } pf_chat_role;

typedef struct pf_chat_msg {
    pf_chat_role role;
    const char *content;
} pf_chat_msg;

typedef struct pf_chat_format {
    bool system; /* the template has a <|system|> branch; when false (April-2024 mini, medium) */
                 /* system text is folded into the next user message: "SYSTEM\n\nUSER"        */
} pf_chat_format;

/* From tokenizer.chat_template: system support iff it mentions "<|system|>"; a file without
 * a template gets the built-in form (system supported). */
pf_chat_format pf_chat_format_from_gguf(const pf_gguf *g);
/* Renders msgs[0..n) (plus `<|assistant|>\n` when add_generation_prompt). Returns the length;
 * writes the text and a NUL only when length < cap. PF_ERR_ARG for a bad role or NULL text. */
int64_t pf_chat_render(const pf_chat_format *f, const pf_chat_msg *msgs, int64_t n, bool add_generation_prompt,
                       char *buf, int64_t cap, pf_error *err);

/* A conversation bound to a context (it owns the context's KV cache while it lives) and a
 * tokenizer, both borrowed. Each turn renders and tokenizes the whole conversation, keeps the
 * longest prefix the KV cache already holds and decodes only the rest. */
typedef struct pf_chat pf_chat;

typedef struct pf_chat_stats {
    int64_t n_prompt;  /* tokens of the last prompt (whole conversation + generation prompt) */
    int64_t n_reused;  /* of which were already in the KV cache                               */
    int64_t n_decoded; /* of which were decoded: n_prompt - n_reused                          */
} pf_chat_stats;

/* system may be NULL or "". */
int pf_chat_create(pf_context *ctx, const pf_tokenizer *tok, const pf_chat_format *fmt, const char *system,
                   pf_chat **out, pf_error *err);
void pf_chat_free(pf_chat *c);
/* Drops every message but the system prompt (the KV cache stays for prefix reuse). */
void pf_chat_reset(pf_chat *c);
/* Appends a message without generating (content is copied). */
int pf_chat_add(pf_chat *c, pf_chat_role role, const char *content, pf_error *err);
int64_t pf_chat_n_messages(const pf_chat *c);
const pf_chat_msg *pf_chat_message(const pf_chat *c, int64_t i); /* NULL when out of range */
/* Tokens of the conversation followed by the generation prompt; count/cap as pf_tokenize. */
int64_t pf_chat_prompt(pf_chat *c, int32_t *ids, int64_t cap, pf_error *err);
/* Brings the KV cache to the prompt (decoding only what it lacks) and writes the logits of its
 * last position (logits may be NULL). */
int pf_chat_prefill(pf_chat *c, float *logits, pf_error *err);
/* Adds `user` (unless NULL), prefills, generates the answer (p->strip_first_space is forced
 * on, p->n_cached is computed) and appends it as an assistant message. On failure before
 * generation the user message is removed again. */
int pf_chat_respond(pf_chat *c, const char *user, pf_sampler *smp, const pf_gen_params *p, pf_gen_result *res,
                    pf_error *err);
pf_chat_stats pf_chat_last_stats(const pf_chat *c);

/* ------------------------------------------------------------------------------------------ */
/* Random-weight models (init) and end-to-end benchmark                                         */
/* ------------------------------------------------------------------------------------------ */
/* Quantization recipe: one type for every 2-D weight, or one of llama.cpp's mixes, with
 * llama.cpp's per-tensor rules (spec 4.6). Used by `phiforge init`; `quantize` may share it. */
typedef struct pf_quant_recipe {
    pf_type base;        /* type of most 2-D weights                                          */
    bool mix_m;          /* Q4_K_M / Q5_K_M: more bits on attn_qkv, output, some ffn_down      */
    uint32_t file_type;  /* general.file_type (llama_ftype): 1 F16, 2 Q4_0, 7 Q8_0, 15 Q4_K_M   */
} pf_quant_recipe;

/* A weight type name (case-insensitive) or Q4_K_M / Q5_K_M; PF_ERR_NOT_FOUND otherwise. */
int pf_quant_recipe_parse(const char *name, pf_quant_recipe *out, pf_error *err);
/* "Q4_K_M" for general.file_type 15, "Q4_0" for 2, ...; "unknown" otherwise. */
const char *pf_file_type_name(uint32_t file_type);
/* The type tensor `name` (n_dims dims, row length ne0, now of type `cur`) gets in a model of
 * n_layer blocks: 1-D tensors, norms and rope factors keep `cur`; output.weight becomes Q6_K
 * when the base is quantized (except Q8_0); the _M mixes give attn_qkv Q5_K (Q4_K_M) or Q6_K
 * (Q5_K_M) and ffn_down Q6_K on llama.cpp's use_more_bits layers; a row that does not split
 * into blocks falls back as llama.cpp does (Q4_K->Q5_0, Q5_K->Q5_1, Q6_K->Q8_0,
 * Q2_K/Q3_K->IQ4_NL, then F16). */
pf_type pf_quant_recipe_type(const pf_quant_recipe *r, const char *name, uint32_t n_dims, int64_t ne0, pf_type cur,
                             int64_t n_layer);

/* A model preset: the hyperparameters and metadata of a released Phi-3 model (spec 1, 3, 4). */
typedef struct pf_init_preset {
    const char *name;           /* "phi3-mini", "phi3-mini-128k", "phi3-medium", "phi3.5-mini", "tiny" */
    const char *description;
    const char *general_name;   /* general.name                                               */
    int64_t n_ctx_train;        /* phi3.context_length                                        */
    int64_t n_ctx_orig;         /* phi3.rope.scaling.original_context_length                   */
    int64_t n_embd, n_ff, n_layer, n_head, n_head_kv;
    uint32_t sliding_window;    /* phi3.attention.sliding_window; 0: key not written          */
    const float *rope_long;     /* LongRoPE factors, n_embd / n_head / 2 each, or NULL: the     */
    const float *rope_short;    /* rope_factors_* tensors and the attn_factor key are written  */
    bool add_bos;               /* tokenizer.ggml.add_bos_token                               */
    const char *chat_template;  /* NULL: the shipped vocab's (April-2024 Phi-3-mini)          */
} pf_init_preset;

int pf_init_preset_count(void);
const pf_init_preset *pf_init_preset_at(int i);           /* NULL when out of range */
const pf_init_preset *pf_init_preset_find(const char *name); /* NULL when unknown      */
/* sqrt(1 + ln(ctx / orig) / ln(orig)) for a LongRoPE preset with ctx > orig, else 1 (spec 3.2). */
float pf_init_attn_factor(const pf_init_preset *p);

/* One tensor of a model to be written. */
typedef struct pf_init_tensor {
    char name[48];
    uint32_t n_dims;
    int64_t ne[4];
    pf_type type;
    size_t nbytes;
} pf_init_tensor;

/* The tensors of preset p under recipe r, in file order (token_embd, rope_factors_long/short,
 * then per block attn_norm, attn_qkv, attn_output, ffn_norm, ffn_up, ffn_down, then
 * output_norm, output), n_vocab rows for token_embd / output. Writes min(count, cap) entries
 * and returns the count, or a negative pf_status for an inconsistent preset. */
int64_t pf_init_tensors(const pf_init_preset *p, const pf_quant_recipe *r, int64_t n_vocab, pf_init_tensor *out,
                        int64_t cap, pf_error *err);

/* Progress of a long operation: `done` of `total` units (bytes), `item` being processed. */
typedef void (*pf_progress_fn)(void *user, double done, double total, const char *item);

typedef struct pf_init_params {
    const pf_init_preset *preset;
    pf_quant_recipe recipe;
    uint64_t seed;              /* same seed, preset and recipe: the same bytes                */
    int n_threads;              /* <= 0: online CPUs (the file does not depend on it)          */
    const char *vocab_path;     /* Phi-3 tokenizer GGUF; NULL: pf_init_find_vocab             */
    bool vocab_only;            /* metadata only, no tensors (as the converter's --vocab-only) */
    pf_progress_fn progress;    /* may be NULL; called after each chunk of tensor data        */
    void *progress_user;
} pf_init_params;

/* preset NULL, recipe F16, seed 0, all CPUs, vocab searched. */
pf_init_params pf_init_default_params(void);
/* Finds the shipped Phi-3 tokenizer data (phi3-vocab.gguf): $PHIFORGE_VOCAB if set, else
 * data/phi3-vocab.gguf next to or above the running executable (<exe>/../data,
 * <exe>/../../data), <exe>/../share/phiforge, then ./data. PF_ERR_NOT_FOUND naming the places
 * looked at. */
int pf_init_find_vocab(char *path, size_t cap, pf_error *err);
/* Writes a model with random weights (each a seeded function of the seed, tensor name and
 * element, ~N(0, 1/row length); norms ~1) in the exact layout and metadata of the preset,
 * generated and quantized chunk by chunk on n_threads threads and streamed to PATH. */
int pf_init_write(const pf_init_params *p, const char *path, pf_error *err);

/* End-to-end benchmark of a model file: prompt processing (pp: one batch of n_prompt tokens
 * from position 0) and generation (tg: n_gen single-token decodes after the prompt), against
 * the memory-bandwidth bound of generation measured in the same run. */
typedef struct pf_bench_model_params {
    int64_t n_prompt;   /* 64                                                             */
    int64_t n_gen;      /* 16                                                             */
    int reps;           /* timed repetitions after one warm-up run (3)                     */
    int n_threads;      /* <= 0: online CPUs                                               */
    uint64_t seed;      /* of the random token ids                                         */
    const char *const *lora;   /* LoRA adapters (GGUF files or PEFT dirs) attached while timing */
    const float *lora_scale;   /* n_lora scales (NULL: 1.0)                                     */
    int n_lora;
} pf_bench_model_params;

typedef struct pf_bench_model_result {
    int n_threads, reps;
    int64_t n_prompt, n_gen, n_ctx;
    uint32_t file_type;            /* general.file_type (0 when absent)                        */
    double n_params, file_bytes, kv_cache_bytes;
    double pp_tps, pp_tps_sd, pp_tps_best;   /* mean, standard deviation, best over reps     */
    double tg_tps, tg_tps_sd, tg_tps_best;
    double bw_gbs;                 /* streaming read rate over the weights (GB/s), mean over   */
                                   /* reps of the better probe right before / after each tg run */
    double weight_bytes_per_token; /* every 2-D weight incl. output, the norms, one embd row   */
    double kv_bytes_per_token;     /* KV cache read per generated token, mean over positions   */
    double tg_bound_tps;           /* bw_gbs / (weight + KV bytes per token)                   */
    double tg_frac_of_bound;       /* mean over reps of tg / (that rep's bandwidth / bytes)    */
    double peak_rss_bytes;         /* VmHWM of the process at the end                          */
} pf_bench_model_result;

pf_bench_model_params pf_bench_model_default_params(void);
int pf_bench_model(const char *path, const pf_bench_model_params *p, pf_bench_model_result *out, pf_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Embedding models (BERT, nomic-bert) and the WordPiece tokenizer                            */
/* ------------------------------------------------------------------------------------------ */
/* WordPiece: pf_tokenizer_load also loads tokenizer.ggml.model = "bert" (llama.cpp's WPM,
 * spec 6.2 / 6.4): NFD + removal of accents (Mn) + lower-casing as
 * tokenizer.ggml.normalizer.lowercase / .strip_accents say (default true; strip_accents
 * follows lowercase), split on whitespace, punctuation / ASCII symbols / CJK ideographs as
 * one-character words, then per word the greedy longest match of "▁" + word in the vocabulary
 * ("##" continuations are stored without "##"); a word that cannot be covered is [UNK].
 * For WordPiece pf_token_bos is [CLS] and pf_token_eos is [SEP] (tokenizer.ggml.cls_token_id /
 * seperator_token_id, else bos / eos ids, else by name): add_special gives [CLS] ... [SEP].
 * Pieces turn "▁" into " ", so pf_detokenize joins words with spaces and glues "##" pieces to
 * the word before; [CLS] [SEP] [PAD] [UNK] [MASK] are control tokens (hidden unless
 * render_special). */

/* "llama" (SentencePiece) or "bert" (WordPiece). */
const char *pf_tokenizer_model(const pf_tokenizer *tok);

/* pf_tokenize(add_special, parse_special = false) keeping at most max_tokens ids (ids holds
 * max_tokens): a longer sequence keeps its first max_tokens - 1 ids, then the closing [SEP] /
 * EOS when add_special appends one (else simply its first max_tokens ids). *truncated (may be
 * NULL) tells whether anything was cut. Returns the count, or a negative pf_status (PF_ERR_ARG
 * when max_tokens cannot hold the closing token plus one). */
int64_t pf_tokenize_truncate(const pf_tokenizer *tok, const char *text, size_t len, bool add_special,
                             int64_t max_tokens, int32_t *ids, bool *truncated, pf_error *err);

/* Embedding model: general.architecture "bert" (BERT, bge, MiniLM: learned positions, q/k/v
 * with biases, GELU FFN) or "nomic-bert" (fused qkv, NeoX RoPE, SwiGLU FFN, no linear biases),
 * post-norm encoder with bidirectional attention (spec 6.4), pooled ({arch}.pooling_type) and
 * L2-normalized. Loading checks every key and tensor (errors name them); weights stay in the
 * file's read-only mapping. An embedder owns its compute context (thread pool) and grows its
 * work buffers per batch, never per token; one thread at a time may use it. */
typedef struct pf_embedder pf_embedder;

typedef enum pf_pooling {
    PF_POOLING_NONE = 0, /* rejected by pf_embedder_load: an embedder needs one vector/text */
    PF_POOLING_MEAN = 1, /* mean over the text's tokens ([CLS] and [SEP] included)         */
    PF_POOLING_CLS = 2,  /* hidden state of the first token                                */
    PF_POOLING_LAST = 3, /* hidden state of the last token                                 */
} pf_pooling;

/* n_threads <= 0: online CPUs. A file without {arch}.pooling_type pools MEAN. */
int pf_embedder_load(const char *path, int n_threads, pf_embedder **out, pf_error *err);
void pf_embedder_free(pf_embedder *e);
int64_t pf_embedder_dim(const pf_embedder *e);        /* {arch}.embedding_length           */
int64_t pf_embedder_max_tokens(const pf_embedder *e); /* {arch}.context_length, incl. CLS/SEP */
const pf_tokenizer *pf_embedder_tokenizer(const pf_embedder *e);
const char *pf_embedder_name(const pf_embedder *e);   /* general.name, else the file name   */
const char *pf_embedder_arch(const pf_embedder *e);   /* "bert" or "nomic-bert"             */
pf_pooling pf_embedder_pooling(const pf_embedder *e);
/* Most token rows of one forward pass (padding included; default max(512, max_tokens)). Texts
 * of similar length are batched together, each padded to the longest of its batch. */
int pf_embedder_set_batch(pf_embedder *e, int64_t max_rows, pf_error *err);

/* Embeds texts[0..n) (NUL-terminated UTF-8) into out (n × dim, each row of unit L2 norm; an
 * empty text is [CLS][SEP]). A text longer than max_tokens is cut to its first
 * max_tokens - 1 tokens + [SEP]. Returns how many texts were cut (>= 0) or a negative
 * pf_status; each result equals the text embedded on its own (up to float rounding). */
int64_t pf_embed(pf_embedder *e, const char *const *texts, int64_t n, float *out, pf_error *err);
/* Same from token ids (ids[i][0..n_ids[i]), 1 <= n_ids[i] <= max_tokens, used as given). */
int pf_embed_tokens(pf_embedder *e, const int32_t *const *ids, const int64_t *n_ids, int64_t n, float *out,
                    pf_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Vector index (HNSW)                                                                        */
/* ------------------------------------------------------------------------------------------ */
/* Approximate nearest-neighbour search (HNSW, Malkov & Yashunin 2018) over fixed-dimension
 * float vectors keyed by int64 labels (the knowledge base's chunk ids). Distances are "lower is
 * closer": cosine 1 - cos(a, b) (vectors are normalized at insert and query, then compared by
 * inner product), inner product 1 - a·b, L2 the squared Euclidean distance.
 * Threads: searches may run concurrently on one index (each takes its own scratch); add,
 * remove and save must not overlap any other call on the same index. Large arrays are
 * allocated on transparent huge pages where the kernel allows (fewer TLB misses). */
typedef enum pf_metric {
    PF_METRIC_COSINE = 0,
    PF_METRIC_IP = 1,
    PF_METRIC_L2 = 2,
} pf_metric;

typedef enum pf_vec_storage {
    PF_VEC_F32 = 0, /* 4 bytes per dimension                                                  */
    PF_VEC_F16 = 1, /* 2 bytes per dimension (IEEE half); queries stay f32                    */
    PF_VEC_I8 = 2,  /* 1 byte per dimension + 8 per vector: symmetric int8 with a per-vector  */
                    /* scale (and squared norm); queries are quantized the same way. Lossy:   */
                    /* recall@10 levels off near 0.94 on 384-d data (bench/), F16 near F32    */
} pf_vec_storage;

typedef struct pf_hnsw_params {
    int32_t dim;             /* 1..65536                                                         */
    pf_metric metric;
    pf_vec_storage storage;
    int32_t M;               /* links per node on upper levels, 2*M on level 0 (16); 2..255     */
    int32_t ef_construction; /* candidate list size while inserting (200; 1..65536), >= M used  */
    uint64_t seed;           /* level draws: same seed and same calls give the same graph       */
    int64_t exact_below;     /* pf_hnsw_search scans all vectors while fewer than this many are */
                             /* live (2000); 0: always use the graph                           */
    pf_isa isa;              /* distance kernels: AUTO picks AVX2 when the CPU has it           */
} pf_hnsw_params;

typedef struct pf_hnsw pf_hnsw;

typedef struct pf_hnsw_stats {
    int64_t count;       /* live vectors                                                        */
    int64_t slots;       /* live + deleted (deleted slots stay in the graph until reused)       */
    int64_t deleted;
    int max_level;       /* -1 when empty                                                       */
    size_t heap_bytes;   /* memory this index allocated (arrays, label table, scratch)          */
    size_t mapped_bytes; /* size of the file mapping still in use (0 when built or fully copied) */
} pf_hnsw_stats;

/* M 16, ef_construction 200, F32 storage, seed 0x5eed, exact_below 2000, AUTO. */
pf_hnsw_params pf_hnsw_default_params(int32_t dim, pf_metric metric);
int pf_hnsw_create(const pf_hnsw_params *p, pf_hnsw **out, pf_error *err);
void pf_hnsw_free(pf_hnsw *h);
/* Sizes the arrays for n slots in one step (optional; they also grow by doubling). */
int pf_hnsw_reserve(pf_hnsw *h, int64_t n, pf_error *err);
/* Adds v (dim floats, all finite) under `label`. An existing label is replaced: its old
 * vector is deleted first. Deleted slots (other than the entry point) are reused before new
 * ones are appended. PF_ERR_ARG when dim differs from the index's. */
int pf_hnsw_add(pf_hnsw *h, int64_t label, const float *v, int32_t dim, pf_error *err);
/* Marks the label deleted: searches never return it, but the node still routes searches
 * until an add reuses its slot. PF_ERR_NOT_FOUND when the label is not live. */
int pf_hnsw_remove(pf_hnsw *h, int64_t label, pf_error *err);
bool pf_hnsw_contains(const pf_hnsw *h, int64_t label);
int64_t pf_hnsw_count(const pf_hnsw *h); /* live vectors */
pf_hnsw_params pf_hnsw_get_params(const pf_hnsw *h);
void pf_hnsw_get_stats(const pf_hnsw *h, pf_hnsw_stats *out);
/* The k nearest live vectors to q, closest first: writes min(k, count) labels (and distances
 * when dists is not NULL) and returns that number, or a negative pf_status. ef (raised to k)
 * is the candidate list size: larger is slower and more exact. Below params.exact_below live
 * vectors this is pf_hnsw_search_exact. */
int64_t pf_hnsw_search(const pf_hnsw *h, const float *q, int32_t dim, int64_t k, int64_t ef, int64_t *labels,
                       float *dists, pf_error *err);
/* Same by brute force over every live vector (exact for the stored precision). */
int64_t pf_hnsw_search_exact(const pf_hnsw *h, const float *q, int32_t dim, int64_t k, int64_t *labels,
                             float *dists, pf_error *err);
/* Writes the index to PATH.tmp, fsyncs it, renames it over PATH and fsyncs the directory, so
 * PATH always holds either the old or the new index. `generation` is stored verbatim (the
 * knowledge base records which state of its tables the index matches). */
int pf_hnsw_save(const pf_hnsw *h, const char *path, uint64_t generation, pf_error *err);
/* Opens a saved index by mapping it (MAP_PRIVATE): vectors and graph are read in place, never
 * copied, and every link, level and label is checked first (errors name the field and file
 * offset). The label table and per-node offsets are rebuilt in heap memory. The index stays
 * fully usable: a remove or an add that reuses a slot writes to the mapping, which copies just
 * the touched pages (the file never changes); an add that needs more slots than the file holds
 * moves the arrays to the heap. The file must not be truncated in place while open (save
 * replaces it by rename, which is safe). generation may be NULL. Kernels are chosen by CPUID. */
int pf_hnsw_open(const char *path, pf_hnsw **out, uint64_t *generation, pf_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Document extraction (txt, md, html, pdf, docx, csv, json, jsonl)                           */
/* ------------------------------------------------------------------------------------------ */
/* Turns a file into UTF-8 text plus sections that say where each span came from (heading path,
 * PDF page), so chunks can cite their place. Sections are paragraphs (txt, md, html, docx),
 * pages (pdf) or records (csv rows, json records); a heading is its own hard-break section.
 * Sections are separated by a blank line ("\n\n") that belongs to the section before it.
 * Errors name the file and the reason; malformed records of multi-record formats (JSONL lines,
 * JSON records) become warnings, never failures. Reentrant and thread-safe: no global state is
 * kept (libxml2 and poppler's global parameters are initialised once, under pthread_once). */

/* Size caps (inputs above them are refused with PF_ERR_UNSUPPORTED naming the cap): */
#define PF_EXTRACT_MAX_INPUT_BYTES ((int64_t)512 << 20) /* bytes of one input file/buffer      */
#define PF_EXTRACT_MAX_TEXT_BYTES ((int64_t)256 << 20)  /* extracted text of one call, all docs */
#define PF_EXTRACT_MAX_ZIP_PART_BYTES ((int64_t)128 << 20) /* uncompressed DOCX part: zip-bomb guard */
#define PF_EXTRACT_MAX_WARNINGS 100 /* further warnings are counted in one final summary line    */

typedef struct pf_xsection {     /* a span of a document's text with its place in the source */
    int64_t start, end;          /* byte offsets into pf_xdoc.text                           */
    int32_t page;                /* 1-based page number (PDF), 0 when the format has none    */
    char *heading;               /* heading path "Manual › Maintenance › Filters", or NULL   */
    bool hard_break;             /* a chunk must not span this section's start (record/page/heading boundary) */
} pf_xsection;

typedef struct pf_xdoc {
    char *key;                   /* NULL: the file is the document; else its own id (JSONL _id/id, JSON record id) */
    char *title;                 /* from <title>, first # heading, PDF/DOCX metadata, record title; may be NULL */
    char *text;                  /* extracted UTF-8 text: valid UTF-8 (invalid bytes become U+FFFD), */
    int64_t len;                 /* no NUL bytes, NUL-terminated at text[len]                          */
    pf_xsection *sections;       /* ordered, non-overlapping, covering [0, len); none when len == 0    */
    int64_t n_sections;
    char *metadata_json;         /* a JSON object string (e.g. CSV header, JSON extra fields), "{}" when none */
} pf_xdoc;

typedef struct pf_xresult {
    const char *doc_type;        /* "txt" "md" "html" "pdf" "docx" "csv" "json" "jsonl" (static string) */
    pf_xdoc *docs;
    int64_t n_docs;
    int64_t n_skipped;           /* records skipped (e.g. malformed JSONL lines), each with a warning */
    char **warnings;             /* "data.jsonl:17: not JSON (expected value at column 3)"           */
    int64_t n_warnings;
} pf_xresult;

/* Document type by extension (case-insensitive): .txt .text -> "txt", .md .markdown -> "md",
 * .html .htm .xhtml -> "html", .pdf, .docx, .csv .tsv -> "csv", .json, .jsonl .ndjson -> "jsonl".
 * NULL if unsupported. */
const char *pf_extract_type_of(const char *path);
/* Reads and extracts `path` (type from its extension). On failure *out is left empty (safe to
 * free): PF_ERR_IO unreadable, PF_ERR_FORMAT broken/not that format/binary, PF_ERR_UNSUPPORTED
 * unknown extension, password-protected PDF or a cap exceeded. Warnings never fail a call. */
int pf_extract_file(const char *path, pf_xresult *out, pf_error *err);
/* Same from memory; `doc_type` is one of the type strings above, `name` is used in messages. */
int pf_extract_memory(const char *doc_type, const char *name, const void *data, size_t size, pf_xresult *out,
                      pf_error *err);
/* Frees everything *r owns and zeroes it; NULL is fine. */
void pf_xresult_free(pf_xresult *r);

/* ------------------------------------------------------------------------------------------ */
/* Knowledge base: store, chunking, ingestion                                                 */
/* ------------------------------------------------------------------------------------------ */
/* A knowledge base (KB) is a directory: kb.sqlite (SQLite, WAL; the source of truth: documents,
 * chunks, embeddings, an FTS5 index over chunks) and vectors.hnsw (an HNSW index derived from the
 * embeddings table, rebuilt whenever it is missing or stale). Schema: src/kb/kb_schema.h. */

/* ---- Chunking ---------------------------------------------------------------------------- */
/* Token-aware splitting of an extracted document. Sizes are counted with the tokenizer that
 * consumes the text (the embedder's when the KB has one, else Phi-3's). Regions are runs of
 * sections between hard breaks (record, page, heading): no chunk ever spans a hard break. Inside
 * a region text is cut into sentences (words, then runs of at most target tokens, only for a
 * sentence or word longer than the target) and packed greedily, ending preferably at the
 * strongest boundary (section or blank line > line > sentence > word) once the chunk is half
 * full. Consecutive chunks of a region share up to overlap_tokens tokens: whole trailing
 * sentences, or the last words of a sentence longer than that. Defaults: see src/chunk/chunk.c. */
#define PF_CHUNK_DEFAULT_TOKENS 256
#define PF_CHUNK_DEFAULT_OVERLAP 64

typedef struct pf_chunk_params {
    int32_t target_tokens;        /* most tokens per chunk (>= 8)                                */
    int32_t overlap_tokens;       /* most tokens consecutive chunks share (< target_tokens / 2 is */
                                  /* used: larger values are clamped)                            */
    int32_t max_input_tokens;     /* > 0: the consumer's limit without its specials (embedder    */
                                  /* max_tokens - 2): a region's target shrinks so that heading  */
                                  /* prefix + chunk fit                                         */
    const pf_tokenizer *tok;      /* counts tokens (no BOS/CLS/SEP)                              */
} pf_chunk_params;

typedef struct pf_chunk {
    int64_t start, end;   /* text[start..end) is the chunk (no leading/trailing whitespace)     */
    int32_t page;         /* page of the section it starts in; 0 when none                       */
    int32_t n_tokens;     /* tokens of text[start..end) (<= target_tokens)                       */
    int64_t section;      /* index of the section it starts in, -1 for a text without sections   */
    const char *heading;  /* heading path, borrowed from the sections; NULL when none            */
} pf_chunk;

/* target 256, overlap 64, no input limit, tok as given. */
pf_chunk_params pf_chunk_default_params(const pf_tokenizer *tok);
/* Chunks text[0..len) described by sections (ordered, non-overlapping; NULL/0: one plain
 * region). A region that holds only its own heading line (the heading path's last part) gets
 * no chunk unless the document would have none. *out is malloc'd (free()); *n_out may be 0. */
int pf_chunk_text(const char *text, int64_t len, const pf_xsection *secs, int64_t n_secs, const pf_chunk_params *p,
                  pf_chunk **out, int64_t *n_out, pf_error *err);
/* The text an embedder gets for a chunk: "HEADING\n\nTEXT" (just TEXT without heading), malloc'd. */
char *pf_chunk_embed_text(const char *heading, const char *text, size_t len);

/* ---- Store ------------------------------------------------------------------------------- */
/* A pf_kb is one connection (foreign keys on, WAL, 10 s busy timeout) plus, loaded on first
 * use, the KB's embedder and vector index. One thread at a time may use a pf_kb; several
 * processes may open the same KB (SQLite serializes writers; readers see committed states). */
typedef struct pf_kb pf_kb;
struct sqlite3;

/* Opens DIR (create: make the directory and an empty KB when missing). Runs the schema
 * migrations of older versions in one transaction; a newer version is refused (PF_ERR_UNSUPPORTED
 * naming both versions), a database that is not a KB too (PF_ERR_FORMAT). */
int pf_kb_open(const char *dir, bool create, pf_kb **out, pf_error *err);
void pf_kb_close(pf_kb *kb);
const char *pf_kb_dir(const pf_kb *kb);
/* The connection, for reading (FTS5 table chunks_fts, tables of src/kb/kb_schema.h). Writes
 * must go through the functions below, which keep the derived state (FTS, vector generation). */
struct sqlite3 *pf_kb_db(pf_kb *kb);
/* meta value of `key` into buf (NUL-terminated, truncated to cap); PF_ERR_NOT_FOUND if absent. */
int pf_kb_meta_get(pf_kb *kb, const char *key, char *buf, size_t cap, pf_error *err);

/* The KB's embedding model (meta.embed_model), loaded on first call with n_threads (<= 0: all
 * CPUs) and owned by the KB; *out = NULL (and PF_OK) when the KB has none. PF_ERR_NOT_FOUND /
 * PF_ERR_FORMAT naming the file when it cannot be loaded, PF_ERR_FORMAT when the file at that
 * path is no longer the model the KB was embedded with (different sha256). */
int pf_kb_embedder(pf_kb *kb, int n_threads, pf_embedder **out, pf_error *err);
/* The vector index over the embeddings of the KB's model (labels = chunk ids, cosine), owned by
 * the KB and fresh: vectors.hnsw is opened if its generation equals meta.vector_generation,
 * else rebuilt from the embeddings table and saved (atomically). *out = NULL when the KB has no
 * embedding model. */
int pf_kb_vector_index(pf_kb *kb, pf_hnsw **out, pf_error *err);

typedef struct pf_kb_chunk {
    int64_t id, doc_id, ordinal;
    int64_t start, end;         /* byte offsets in the document's extracted text               */
    int32_t page;               /* 0: none                                                     */
    int32_t n_tokens;
    char *text, *heading;       /* heading NULL when none                                      */
    char *doc_key, *source, *title, *doc_type; /* of its document (title may be NULL)        */
} pf_kb_chunk;

typedef struct pf_kb_doc {
    int64_t id;
    char *key, *source, *title, *doc_type, *sha256, *metadata; /* title may be NULL          */
    int64_t mtime, size, text_len, ingested_at;
    int64_t n_chunks, n_tokens;
} pf_kb_doc;

/* PF_ERR_NOT_FOUND when no such chunk / document. Free with the _clear functions. */
int pf_kb_chunk_get(pf_kb *kb, int64_t chunk_id, pf_kb_chunk *out, pf_error *err);
void pf_kb_chunk_clear(pf_kb_chunk *c);
int pf_kb_doc_get(pf_kb *kb, int64_t doc_id, pf_kb_doc *out, pf_error *err);
int pf_kb_doc_find(pf_kb *kb, const char *key, pf_kb_doc *out, pf_error *err); /* by doc_key */
void pf_kb_doc_clear(pf_kb_doc *d);
/* Calls fn for every document, ordered by key; fn's non-zero return stops (and is returned).
 * The pf_kb_doc is only valid during the call. */
typedef int (*pf_kb_doc_fn)(void *user, const pf_kb_doc *d);
int pf_kb_list(pf_kb *kb, pf_kb_doc_fn fn, void *user, pf_error *err);

typedef enum pf_kb_index_state {
    PF_KB_INDEX_NONE = 0,    /* no embedding model: lexical only                          */
    PF_KB_INDEX_MISSING = 1, /* vectors.hnsw absent or unreadable: rebuilt on next use     */
    PF_KB_INDEX_STALE = 2,   /* its generation differs from meta: rebuilt on next use       */
    PF_KB_INDEX_FRESH = 3,
} pf_kb_index_state;

typedef struct pf_kb_type_stats {
    char type[16];
    int64_t docs, chunks;
} pf_kb_type_stats;

typedef struct pf_kb_stats {
    int schema_version;
    int64_t documents, sources, chunks, tokens;
    int64_t embedded;                 /* chunks with a vector of the current model        */
    char embed_model[512];            /* path; "" when none                               */
    char embed_name[128];
    int64_t embed_dim;
    char chunk_tokenizer[128];
    int32_t chunk_tokens, chunk_overlap;
    uint64_t vector_generation;
    pf_kb_index_state index_state;
    int64_t index_vectors;            /* live vectors in vectors.hnsw when readable       */
    int64_t db_bytes, index_bytes;    /* kb.sqlite (+ -wal), vectors.hnsw                 */
    pf_kb_type_stats types[16];       /* by document type, most documents first          */
    int n_types;
} pf_kb_stats;

int pf_kb_get_stats(pf_kb *kb, pf_kb_stats *out, pf_error *err);
const char *pf_kb_index_state_str(pf_kb_index_state s);

/* Removes, in one transaction, the documents whose key is keys[i] or whose source is keys[i]
 * (as given, or made absolute with symlinks resolved). removed[i] (may be NULL) gets the count
 * per key; *n_total the sum. A source whose documents are all gone is forgotten (a later ingest
 * adds it again). The vector index is updated (or marked stale). */
int pf_kb_remove(pf_kb *kb, const char *const *keys, int64_t n, int64_t *removed, int64_t *n_total, pf_error *err);

/* ---- Ingestion --------------------------------------------------------------------------- */
/* Files and folders (recursively; hidden entries skipped, symlinks followed once, files of
 * unsupported types skipped) are read, hashed (sha256), extracted, chunked, embedded when the
 * KB has an embedding model, and stored one transaction per file (old documents of that source
 * deleted, new ones inserted), so a kill at any moment leaves a consistent KB and a re-run
 * finishes the job. Unchanged files (same sha256 and chunking configuration) are skipped. A
 * file that fails is reported through the callback and skipped; it never stops the run. */
typedef enum pf_ingest_event_kind {
    PF_INGEST_ADDED = 0,      /* a new file's documents were stored                           */
    PF_INGEST_UPDATED = 1,    /* a changed file's documents replaced the old ones              */
    PF_INGEST_UNCHANGED = 2,
    PF_INGEST_FAILED = 3,     /* path + reason; the file is skipped (old documents kept)       */
    PF_INGEST_WARNING = 4,    /* path + message (skipped record, duplicate key, ...)           */
    PF_INGEST_PRUNED = 5,     /* documents of a vanished file were removed                     */
    PF_INGEST_PROGRESS = 6,   /* files_done / files_total, bytes_done / bytes_total            */
    PF_INGEST_NOTE = 7,       /* a KB-level message (model configured, re-embedding, ...)       */
} pf_ingest_event_kind;

typedef struct pf_ingest_event {
    pf_ingest_event_kind kind;
    const char *path;         /* NULL for NOTE / PROGRESS                                     */
    const char *msg;          /* reason / warning / note; NULL otherwise                       */
    int64_t n_docs, n_chunks; /* ADDED / UPDATED / PRUNED                                      */
    int64_t files_done, files_total;
    double bytes_done, bytes_total;
} pf_ingest_event;

typedef void (*pf_ingest_fn)(void *user, const pf_ingest_event *ev);

typedef struct pf_ingest_params {
    const char *embed_model;  /* GGUF; NULL: the KB's model (if any). The first one given is  */
                              /* recorded; a different one re-embeds every chunk of the KB     */
    int32_t chunk_tokens;     /* 0: the KB's setting (meta), else PF_CHUNK_DEFAULT_TOKENS      */
    int32_t chunk_overlap;    /* < 0: the KB's setting, else PF_CHUNK_DEFAULT_OVERLAP          */
    bool prune;               /* remove documents whose source file no longer exists           */
    int n_threads;            /* <= 0: online CPUs                                             */
    const char *vocab_path;   /* Phi-3 tokenizer counting chunk tokens when the KB has no      */
                              /* embedder; NULL: pf_init_find_vocab                            */
    pf_ingest_fn on_event;    /* may be NULL                                                   */
    void *user;
} pf_ingest_params;

typedef struct pf_ingest_stats {
    int64_t files, added, updated, unchanged, failed, skipped; /* skipped: unsupported types  */
    int64_t pruned;           /* sources removed by prune                                     */
    int64_t docs, chunks, tokens, embedded; /* written by this run                           */
    int64_t warnings;
    double bytes;             /* of the files stored (added or updated): MB/s = bytes / seconds */
    double seconds, embed_seconds;
} pf_ingest_stats;

/* chunk_tokens 0, chunk_overlap -1, everything else off / default. */
pf_ingest_params pf_ingest_default_params(void);
/* Returns PF_OK even when files failed (see stats->failed); a negative pf_status only for a
 * KB-level error (database, model, tokenizer, invalid parameters). */
int pf_kb_ingest(pf_kb *kb, const char *const *paths, int64_t n_paths, const pf_ingest_params *p,
                 pf_ingest_stats *stats, pf_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Knowledge base: retrieval (BM25, dense, hybrid)                                            */
/* ------------------------------------------------------------------------------------------ */
/* A query in, the chunks that answer it out, best first, each with its place in its source.
 *   bm25:   FTS5 over chunks_fts. The MATCH expression is built from the query's words, never
 *           from its raw text: words are tokenized like the index (unicode61, diacritics
 *           removed), English stopwords dropped (unless nothing else is left), words with the
 *           same Porter stem kept once, each quoted, all ORed. Ranking is phiforge's own
 *           BM25 function (registered on the connection) because FTS5's built-in one has a
 *           fixed k1/b and clamps the IDF of any term in half the chunks to ~0, which wrecks
 *           small KBs: here IDF = ln(1 + (N - n + 0.5) / (n + 0.5)) (Lucene's) and k1, b and
 *           the column weights are parameters.
 *   dense:  the query (with a model-specific prefix, see pf_search_query_prefix) is embedded
 *           and looked up in the HNSW index; score = cosine similarity.
 *   hybrid: reciprocal rank fusion of both lists, score = sum_i w_i / (rrf_k + rank_i). Without
 *           an embedder or an index, hybrid runs as bm25 (results say which ran) and dense
 *           fails with PF_ERR_UNSUPPORTED.
 * Filters (source path glob, document types) apply before fusion: both retrievers return
 * `depth` passing candidates (dense: over-fetch, then an exact scan for selective filters). Near-duplicates are then collapsed, the best-ranked copy kept:
 * two chunks are duplicates when their normalized token sequences (the index's tokens) are
 * equal, or when the Jaccard similarity of their word 3-shingle sets is >= dedup_jaccard. */
struct sqlite3;

typedef enum pf_search_mode {
    PF_SEARCH_BM25 = 0,
    PF_SEARCH_DENSE = 1,
    PF_SEARCH_HYBRID = 2,
} pf_search_mode;

typedef struct pf_search_params {
    pf_search_mode mode;      /* HYBRID                                                          */
    int32_t k;                /* results wanted (10)                                             */
    int32_t depth;            /* candidates each retriever contributes to fusion (50), >= k      */
    double rrf_k;             /* 60                                                              */
    double w_bm25, w_dense;   /* RRF weights of the two lists (1, 1)                             */
    double bm25_k1, bm25_b;   /* 0.9, 0.4 (Anserini's defaults; see src/kb/kb_search_fts.c)      */
    double w_text, w_heading; /* BM25 weights of the chunk text and heading-path columns (1, 1)  */
    bool stopwords;           /* drop English stopwords from BM25 queries (true)                 */
    int32_t ef;               /* HNSW candidate list (0: 64), raised to what is fetched          */
    const char *query_prefix; /* text put before the query for embedding; NULL: by model name    */
                              /* (pf_search_query_prefix), "": none                              */
    const char *source_glob;  /* fnmatch(3) pattern (no flags: '*' also matches '/') on the      */
                              /* document's source path; a relative pattern (docs/x*.pdf) also   */
                              /* matches after any '/' of the path; NULL: all                    */
    const char *doc_types;    /* comma-separated documents.doc_type values ("pdf,md"); NULL: all */
    bool dedup;               /* collapse near-duplicate chunks (true)                           */
    double dedup_jaccard;     /* 3-shingle Jaccard threshold (0.9)                               */
} pf_search_params;

typedef struct pf_search_hit {
    int64_t doc_id;           /* documents.id                                                    */
    int64_t chunk_id;         /* chunks.id                                                       */
    double score;             /* what ranked it: BM25 score, cosine similarity, or RRF score      */
    char *doc_key;            /* documents.doc_key: the source path, or the JSONL record's id     */
    char *source, *title, *doc_type;
    char *heading;            /* heading path, NULL when none                                    */
    char *text;               /* the chunk's text                                                */
    int32_t page;             /* 1-based page, 0 when none                                       */
    int64_t start_char, end_char; /* byte offsets of the chunk in the document's extracted text  */
    int32_t bm25_rank, dense_rank; /* 1-based rank in each retriever's list, 0 when not in it    */
    double bm25_score, dense_score;
    int32_t n_collapsed;      /* near-duplicates folded into this hit                            */
} pf_search_hit;

typedef struct pf_search_results {
    pf_search_hit *hits;
    int32_t n;
    pf_search_mode mode;      /* the mode that ran (bm25 when dense was impossible)              */
    char *fts_query;          /* the MATCH expression used ("" when the query had no words)      */
} pf_search_results;

/* A retriever over an open KB database; prepares its statements once and registers its SQL
 * functions (pf_bm25, pf_fnmatch) on `db`. `embedder` and `index` may be NULL (lexical only);
 * they are borrowed and must outlive the retriever. One thread at a time per retriever. Each
 * search runs in one read transaction (unless the caller holds one), so it sees one state of a
 * KB that another process is writing. */
typedef struct pf_retriever pf_retriever;

pf_search_params pf_search_default_params(void);
/* The query prefix a model family expects: bge → "Represent this sentence for searching
 * relevant passages: ", nomic → "search_query: ", e5 → "query: ", else "" (by name, case-
 * insensitive). */
const char *pf_search_query_prefix(const char *model_name);
/* The matching document-side prefix for ingestion: nomic → "search_document: ", e5 →
 * "passage: ", else "" (bge embeds passages as they are). */
const char *pf_search_document_prefix(const char *model_name);
const char *pf_search_mode_name(pf_search_mode m); /* "bm25" "dense" "hybrid" */
int pf_search_mode_from_name(const char *name, pf_search_mode *out);

int pf_retriever_open(struct sqlite3 *db, pf_embedder *embedder, const pf_hnsw *index, pf_retriever **out,
                      pf_error *err);
/* A retriever over a KB: its connection, and when `dense` is true and the KB has an embedding
 * model, its embedder (n_threads) and fresh vector index (pf_kb_embedder, pf_kb_vector_index);
 * lexical only otherwise. Free it before closing the KB, and make a new one after writing to
 * the KB through the same pf_kb (the KB may replace its index). */
int pf_kb_retriever(pf_kb *kb, bool dense, int n_threads, pf_retriever **out, pf_error *err);
void pf_retriever_free(pf_retriever *r);
/* Runs one query. An empty query (or one with no words) gives no results, not an error. */
int pf_retriever_search(pf_retriever *r, const char *query, const pf_search_params *p, pf_search_results *out,
                        pf_error *err);
void pf_search_results_free(pf_search_results *res);

/* Search latency at scale (phiforge search --bench): a synthetic KB of n_chunks chunks of
 * English-like text (Zipf vocabulary, real stopwords), queries of 2-8 words, each timed through
 * pf_retriever_search (k results, default parameters). With embed_model, dense and hybrid are
 * timed too: the query is embedded by the model, the chunk vectors are random unit vectors in an
 * HNSW index (same size and dimension as real ones; embedding 100k chunks would take long). */
typedef struct pf_search_bench_params {
    int64_t n_chunks;         /* 100000                                                        */
    int32_t words_per_chunk;  /* 180 (about 256 tokens)                                        */
    int32_t vocab;            /* 50000 distinct words                                          */
    int32_t n_queries;        /* 500                                                           */
    int32_t k;                /* 10                                                            */
    const char *embed_model;  /* GGUF embedder; NULL: bm25 only                                */
    const char *dir;          /* where the KB is built, or reused when it holds n_chunks;       */
                              /* NULL: a temporary directory, removed at the end               */
    uint64_t seed;            /* 42                                                            */
    int n_threads;            /* embedder threads (<= 0: all CPUs)                             */
    void (*log)(void *user, const char *msg); /* progress lines, may be NULL                   */
    void *user;
} pf_search_bench_params;

typedef struct pf_search_bench_result {
    int64_t n_chunks;
    double db_bytes;
    double build_s, index_s;  /* KB build (0 when reused), HNSW build                          */
    double mean_hits;         /* bm25 results per query                                        */
    bool hybrid;              /* dense/hybrid figures below are valid                          */
    double bm25_ms[4], dense_ms[4], hybrid_ms[4], embed_ms[4]; /* p50, p90, p99, mean         */
} pf_search_bench_result;

pf_search_bench_params pf_search_bench_default_params(void);
int pf_search_bench(const pf_search_bench_params *p, pf_search_bench_result *out, pf_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Evaluation: answer metrics                                                                   */
/* ------------------------------------------------------------------------------------------ */
/* SQuAD v1.1's answer metrics (src/eval/answer_metrics.c): normalization = lower case, ASCII
 * punctuation removed, articles a/an/the removed, whitespace collapsed. */

/* Writes the normalized form of s (NUL-terminated when it fits) and returns its length; a call
 * with cap 0 sizes it. PF_ERR_ARG for NULL s, PF_ERR_NOMEM. */
int64_t pf_answer_normalize(const char *s, char *out, int64_t cap);
/* normalize(prediction) == normalize(reference). */
int pf_answer_exact_match(const char *prediction, const char *reference, bool *match);
/* Token-level F1 of the normalized word bags (0 when either has no word). */
int pf_answer_f1(const char *prediction, const char *reference, double *f1);

/* ------------------------------------------------------------------------------------------ */
/* Fine-tuning data                                                                             */
/* ------------------------------------------------------------------------------------------ */
/* Training rows from a JSONL or .txt file. One JSONL record per line (blank lines skipped):
 *   chat:        {"messages":[{"role":"system"|"user"|"assistant","content":"..."}, ...]}
 *   alpaca:      {"instruction":"...","input":"..." (optional),"output":"..."}
 *                -> user "instruction\n\ninput", assistant "output"
 *   completion:  {"prompt":"...","completion":"..."} ("response" also accepted)
 *                -> user "prompt", assistant "completion"
 *   text:        {"text":"..."} -> BOS text EOS, loss on every token
 * Chat, alpaca and completion samples are rendered with the Phi-3 chat template
 * (pf_chat_render) and tokenized with BOS as the tokenizer says; by default only assistant
 * tokens are targets: the content after `<|assistant|>` up to and including its `<|end|>`
 * (so the model learns to stop). Text is tokenized with special tokens parsed, as pf_chat does
 * at inference, so a literal "<|end|>" inside a message is that control token. A .txt file is
 * one text (BOS ... EOS) cut into windows of seq_len + 1 tokens that overlap by one token, so
 * every token after the first is predicted once. A sample of L tokens gives L - 1 positions (ids t[0..L-2], targets t[1..L-1]); one
 * longer than seq_len + 1 is cut to that (counted in n_truncated); one left without any
 * target is dropped (n_dropped). Samples are shuffled with `seed`, the first
 * round(val_fraction·n) go to validation, then each side is packed (best-fit decreasing) or
 * kept one sample per row. */
typedef enum pf_data_format {
    PF_DATA_AUTO = 0, /* by file extension (.txt) and, per line, by the keys present */
    PF_DATA_CHAT,
    PF_DATA_ALPACA,
    PF_DATA_COMPLETION,
    PF_DATA_TEXT,
} pf_data_format;

typedef struct pf_data_params {
    pf_data_format format;  /* AUTO: by file extension (.txt) and per-line keys               */
    int64_t seq_len;        /* tokens per training row (512)                                  */
    bool pack;              /* several short samples per row, no cross-sample attention (true) */
    bool train_on_prompt;   /* loss on every token, not only assistant/completion (false)     */
    const char *system;     /* system prompt for chat samples without one (NULL)              */
    double val_fraction;    /* samples held out for validation (0), split before packing      */
    uint64_t seed;          /* shuffling of samples before the split and packing (42)         */
    int n_threads;          /* tokenizing threads (0: all CPUs); the result does not depend on it */
} pf_data_params;

typedef struct pf_train_row {  /* a view into the dataset, valid while it lives */
    int64_t n;                 /* tokens in the row, 1..seq_len                                */
    const int32_t *ids;        /* input token of each position                                 */
    const int32_t *targets;    /* token to predict at each position; -1: no loss there         */
    const int32_t *pos;        /* position of each token in its own sample (restarts at 0)     */
    const int32_t *seg;        /* sample number inside the row: attention only within equal seg */
} pf_train_row;

typedef struct pf_dataset pf_dataset;

pf_data_params pf_data_default_params(void);
const char *pf_data_format_name(pf_data_format f); /* "auto" "chat" "alpaca" "completion" "text" */
int pf_data_format_from_name(const char *name, pf_data_format *out);
/* Reads a JSONL/txt file; a malformed line is PF_ERR_FORMAT naming file:line and field.
 * `fmt` NULL: the built-in template (system supported). `val` NULL: held-out samples dropped;
 * with val_fraction 0, *val is an empty dataset (0 rows). Datasets are immutable once loaded
 * and may be read from several threads. */
int pf_dataset_load(const char *path, const pf_tokenizer *tok, const pf_chat_format *fmt, const pf_data_params *p,
                    pf_dataset **train, pf_dataset **val /* NULL ok */, pf_error *err);
/* Same over a buffer; `name` is used in messages and, with AUTO, its extension picks .txt. */
int pf_dataset_load_memory(const char *name, const void *data, size_t size, const pf_tokenizer *tok,
                           const pf_chat_format *fmt, const pf_data_params *p, pf_dataset **train,
                           pf_dataset **val, pf_error *err);
void pf_dataset_free(pf_dataset *d);
int64_t pf_dataset_n_rows(const pf_dataset *d);
int64_t pf_dataset_n_samples(const pf_dataset *d);
int64_t pf_dataset_n_target_tokens(const pf_dataset *d);  /* positions with targets >= 0 */
int64_t pf_dataset_n_tokens(const pf_dataset *d);         /* positions in all rows        */
int64_t pf_dataset_seq_len(const pf_dataset *d);
int64_t pf_dataset_n_truncated(const pf_dataset *d);      /* samples cut to seq_len + 1   */
int64_t pf_dataset_n_dropped(const pf_dataset *d);        /* samples left with no target  */
int pf_dataset_row(const pf_dataset *d, int64_t i, pf_train_row *out, pf_error *err);
/* Seeded permutation of the rows for one epoch (same seed+epoch: same order). */
void pf_dataset_epoch_order(const pf_dataset *d, uint64_t seed, int64_t epoch, int64_t *perm);

/* ------------------------------------------------------------------------------------------ */
/* LoRA adapter files                                                                           */
/* ------------------------------------------------------------------------------------------ */
/* fp32 LoRA weights in memory (what the trainer produces), written and read as llama.cpp LoRA
 * GGUF or as a Hugging Face PEFT directory. Each pair adapts one linear weight of the base
 * model, named by its GGUF name; its HF module is the Phi-3 map of the spec (§1.1):
 *   blk.N.attn_qkv.weight    model.layers.N.self_attn.qkv_proj
 *   blk.N.attn_output.weight model.layers.N.self_attn.o_proj
 *   blk.N.ffn_up.weight      model.layers.N.mlp.gate_up_proj
 *   blk.N.ffn_down.weight    model.layers.N.mlp.down_proj
 *   output.weight            lm_head
 * The effective weight is W + s · B·A with s = alpha / r (alpha / sqrt(r) with rslora). */
typedef struct pf_lora_pair {
    char base[96];      /* base weight name: "blk.0.attn_qkv.weight"                              */
    int64_t n_in, n_out, r;
    float *a;           /* r × n_in, row-major  (= PEFT lora_A.weight; GGUF lora_a ne [n_in, r])  */
    float *b;           /* n_out × r, row-major (= PEFT lora_B.weight; GGUF lora_b ne [r, n_out]) */
} pf_lora_pair;

typedef struct pf_lora_weights {
    int64_t n;
    pf_lora_pair *pairs;    /* malloc'd; a/b malloc'd per pair                                   */
    float alpha;            /* scale = alpha / r, or alpha / sqrt(r) with rslora                 */
    int32_t rank;
    bool rslora;
    float dropout;          /* recorded in adapter_config.json                                   */
    char base_model[256];   /* general.name or path of the base, for adapter_config.json          */
} pf_lora_weights;

void pf_lora_weights_clear(pf_lora_weights *w);
/* s of one pair: alpha / r or alpha / sqrt(r) (rslora), with the pair's own r; 1 when alpha is 0. */
float pf_lora_pair_scale(const pf_lora_weights *w, const pf_lora_pair *p);
/* llama.cpp LoRA GGUF (layout of ../shared/golden/models/phi3-tiny-lora-r4.gguf, spec §7); with
 * rslora, adapter.lora.alpha is written as alpha·sqrt(r) so llama.cpp's alpha/r scale is right.
 * `base` (may be NULL) gives general.architecture and checks every pair's shape. */
int pf_lora_save_gguf(const pf_lora_weights *w, const pf_model *base, const char *path, pf_type t /* F32 or F16 */,
                      pf_error *err);
/* PEFT: DIR/adapter_model.safetensors + DIR/adapter_config.json (target_modules qkv_proj/o_proj/
 * gate_up_proj/down_proj, keys base_model.model.model.layers.N.self_attn.qkv_proj.lora_A.weight ...).
 * The directory is created when missing; both files are written to .tmp and renamed. */
int pf_lora_save_peft(const pf_lora_weights *w, const pf_model *base, const char *dir, pf_error *err);
/* Reads either format (a .gguf file or a PEFT directory) into fp32 weights; any GGUF tensor type,
 * F32/F16/BF16 safetensors. `base` (may be NULL) checks names and shapes against the model,
 * and a GGUF's general.architecture against the model's.
 * PEFT features that change the math (use_dora, alpha_pattern, fan_in_fan_out, bias) are
 * refused with PF_ERR_UNSUPPORTED; errors name the file and key. */
int pf_lora_read(const char *path, const pf_model *base, pf_lora_weights *out, pf_error *err);
/* An adapter for pf_context_set_lora made from in-memory weights (copied: `w` may be freed). */
int pf_lora_from_weights(const pf_lora_weights *w, const pf_model *m, pf_lora **out, pf_error *err);
/* GGUF base name <-> PEFT module path ("model.layers.0.self_attn.qkv_proj", "lm_head"); false
 * when the name is not a Phi-3 linear. */
bool pf_lora_peft_module(const char *gguf_base, char *out, size_t cap);
bool pf_lora_gguf_base(const char *peft_module, char *out, size_t cap);

/* Merge: OUT = BASE with W' = W + Σ_i scale_i · s_i · B_i·A_i for every adapted weight, written
 * tensor by tensor (a few rows at a time are dequantized, the delta added in fp32, then
 * requantized with the reference quantizers), every key/value copied. Adapted weights keep their
 * type unless `type` is given; with `type`, every 2-D weight is converted by the recipe of
 * `phiforge quantize` (pf_quant_recipe_type). */
typedef struct pf_merge_params {
    const char *type;        /* NULL: keep types; else a pf_quant_recipe_parse name            */
    int n_threads;           /* <= 0: all CPUs                                                 */
    pf_progress_fn progress; /* bytes done / total, tensor name; may be NULL                   */
    void *user;
} pf_merge_params;

typedef struct pf_merge_stats {
    int64_t n_tensors, n_merged;   /* tensors written; weights that got a delta                  */
    double in_bytes, out_bytes, seconds;
} pf_merge_stats;

int pf_lora_merge(const char *base_path, const char *const *adapters, const float *scales /* NULL: 1 */, int n,
                  const char *out_path, const pf_merge_params *p, pf_merge_stats *stats /* NULL ok */, pf_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Model download: `phiforge pull` (registry of published GGUFs, resumable verified downloads)  */
/* ------------------------------------------------------------------------------------------ */

/* One downloadable file of a registry model. size is -1 and sha256 NULL where they could not be
 * verified from a trustworthy source: the download then checks only what the server reports. */
typedef struct pf_pull_file {
    const char *variant;  /* "q4", "fp16", "f16", "q8" ... ; the first of a model is its default */
    const char *file;     /* file name in the hub repo                                         */
    int64_t size;         /* bytes, -1 when unknown                                            */
    const char *sha256;   /* lowercase hex, NULL when unknown                                  */
} pf_pull_file;

typedef struct pf_pull_model {
    const char *name;     /* "phi-3-mini-4k-instruct"                                          */
    const char *repo;     /* Hugging Face repo, "microsoft/Phi-3-mini-4k-instruct-gguf"        */
    const char *kind;     /* "chat" or "embed"                                                 */
    const pf_pull_file *files;
    int n_files;
} pf_pull_model;

/* The built-in registry (static, read-only). */
const pf_pull_model *pf_pull_registry(int *n_models);
/* "NAME" or "NAME:VARIANT" -> registry entry and file (the default variant when none is given).
 * PF_ERR_NOT_FOUND with a message listing the known names / variants. */
int pf_pull_lookup(const char *name_variant, const pf_pull_model **model, const pf_pull_file **file,
                   pf_error *err);
/* Cache directory: $PHIFORGE_CACHE, else $XDG_CACHE_HOME/phiforge, else $HOME/.cache/phiforge. */
int pf_pull_cache_dir(char *out, size_t cap, pf_error *err);
/* Where a registry file lives once pulled: <cache>/<model name>/<file>. */
int pf_pull_local_path(const pf_pull_model *m, const pf_pull_file *f, char *out, size_t cap, pf_error *err);
/* <hub>/<repo>/resolve/main/<file>; hub is $PHIFORGE_HUB_URL or https://huggingface.co. */
int pf_pull_url(const pf_pull_model *m, const pf_pull_file *f, char *out, size_t cap, pf_error *err);

/* Called once when a transfer starts (done = bytes already in the .part file), then as bytes
 * arrive (done counts them all); total is -1 when unknown. Return non-zero to cancel (the
 * .part file is kept for a later resume). */
typedef int (*pf_download_progress_fn)(void *user, int64_t done, int64_t total);

typedef struct pf_download_params {
    const char *url;             /* http(s); redirects are followed                             */
    const char *dest;            /* final path; data goes to dest.part, renamed when verified    */
    int64_t expected_size;       /* -1: unknown                                                 */
    const char *expected_sha256; /* NULL: unknown (the computed hash is still reported)          */
    int max_retries;             /* extra attempts after a network error, each resuming (3)     */
    long connect_timeout_s;      /* 30                                                          */
    long stall_timeout_s;        /* abort an attempt after this long below 1 byte/s (60)        */
    pf_download_progress_fn progress;
    void *user;
} pf_download_params;

typedef struct pf_download_result {
    int64_t bytes;              /* size of the final file                                       */
    int64_t resumed_from;       /* bytes already in dest.part when the last attempt began        */
    int attempts;               /* HTTP transfers made (0 when the file was already present)    */
    int http_status;            /* status of the last transfer                                  */
    bool already_present;       /* dest existed with the expected size: nothing downloaded      */
    bool sha256_verified;       /* the hash was compared with an expected one                   */
    char sha256[65];            /* of the downloaded file ("" when already_present)             */
} pf_download_result;

pf_download_params pf_download_default_params(void);
/* Resumable download with libcurl. Resumes dest.part with a Range request (206 appends, 200
 * restarts, 416 checks whether the part is already whole), verifies size and sha256 (a
 * mismatch removes the .part), fsyncs and renames atomically. An exclusive lock on dest.lock
 * makes a second concurrent download of the same dest wait, then find the file present. */
int pf_download(const pf_download_params *p, pf_download_result *res, pf_error *err);

/* Pulls a registry model ("NAME[:VARIANT]") into the cache; path_out gets the local path. */
int pf_pull(const char *name_variant, pf_download_progress_fn progress, void *user, char *path_out, size_t cap,
            pf_download_result *res, pf_error *err);

/* A path that exists is copied unchanged; otherwise a registry name ("NAME[:VARIANT]") gives its
 * cached file (without a variant: the default one if pulled, else any pulled variant). Errors:
 * a registry name not pulled yet ("not pulled yet: run phiforge pull NAME"), or neither a file
 * nor a registry name (PF_ERR_NOT_FOUND). */
int pf_model_resolve(const char *name_or_path, char *out, size_t cap, pf_error *err);

/* ------------------------------------------------------------------------------------------ */
/* RAG answers: relevance gate, prompt packing, citations, extractive answers                 */
/* ------------------------------------------------------------------------------------------ */
/* Retrieval gives passages; these turn them into an answer whose every claim can be traced:
 *   - a relevance gate that says whether the passages are about the question at all (RRF
 *     scores are ranks, not relevance), so an off-topic question is refused instead of guessed;
 *   - prompt packing: system instructions, then numbered sources, then the question (in that
 *     order so the [system + sources] prefix is shared by questions over the same sources),
 *     filled by token budget in the Phi-3 chat template;
 *   - citation markers ([1], [1, 3], [1][2], [1-3]) parsed from an answer and mapped back to
 *     the sources, out-of-range numbers flagged;
 *   - an extractive answer (no model): the sentences of the passages that match the question.
 * Query terms everywhere are the index's: unicode61 folding, Porter stems, English stopwords
 * and question words ("what", "how", "should", ...) dropped. */

/* The fixed answer when the knowledge base has nothing relevant (no model call is made). */
#define PF_RAG_NOT_COVERED "The knowledge base does not cover this question."

/* ---- Relevance gate ---------------------------------------------------------------------- */
/* Lexical evidence: for each passage, the IDF-weighted share of the question's content terms it
 * contains (text, heading path and title), coverage = sum idf(found) / sum idf(all), with
 * Lucene's IDF ln(1 + (N - df + 0.5) / (df + 0.5)) over the KB's chunks. A term the KB never
 * uses gets the highest IDF, so a question about something else ("capital of France", "oil
 * filter of a car" in a pump KB) scores low even when a common word matches. Dense evidence,
 * when the hits carry a cosine (hybrid / dense retrieval): the best cosine. A question passes
 * when coverage >= min_coverage, or when min_cosine > 0 and the cosine >= min_cosine.
 * Default 0.25: on the test KB (tests/test_rag.c) on-topic questions, paraphrases included,
 * score >= 0.357 and off-topic ones <= 0.065; 0.25 sits between them with room on both sides. */
#define PF_RAG_DEFAULT_MIN_COVERAGE 0.25

typedef struct pf_rag_gate_params {
    double min_coverage;  /* PF_RAG_DEFAULT_MIN_COVERAGE; 0 lets everything pass                */
    double min_cosine;    /* 0: off (cosine scales differ from one embedding model to another)  */
} pf_rag_gate_params;

typedef struct pf_rag_relevance {
    bool relevant;        /* the gate's verdict                                                */
    double coverage;      /* best passage's weighted coverage, 0..1                            */
    int32_t best;         /* index of that passage in the hits, -1 when none                   */
    double cosine;        /* best dense cosine among the hits; NAN when none was computed      */
    int32_t n_terms;      /* content terms of the question (at most 64 are used)               */
} pf_rag_relevance;

pf_rag_gate_params pf_rag_gate_default_params(void);
/* kb (may be NULL: every term weighs 1) gives the document frequencies. coverage (may be NULL)
 * receives each hit's coverage (n entries). */
int pf_rag_relevance_check(pf_kb *kb, const char *question, const pf_search_hit *hits, int32_t n,
                           const pf_rag_gate_params *p, pf_rag_relevance *out, double *coverage, pf_error *err);

/* ---- Prompt packing ---------------------------------------------------------------------- */
/* The user message is "Sources:\n\n[1] LABEL\nTEXT\n\n[2] ...\n\nQuestion: QUESTION" where
 * LABEL is pf_rag_source_label's short form. Hits are taken in rank order while the whole
 * rendered prompt (history and template included, BOS as the tokenizer adds it) fits
 * max_tokens; a passage that does not fit whole is cut (at a word boundary) when at least
 * min_source_tokens of room are left, and packing stops there. The token count is exact: the
 * final prompt is rendered and tokenized, and sources are dropped from the end while it is over. */
typedef struct pf_rag_prompt_params {
    const char *instructions;      /* system text; NULL: pf_rag_default_instructions()         */
    int64_t max_tokens;            /* the prompt must fit (n_ctx minus room for the answer)    */
    int32_t max_sources;           /* 0: no limit besides the budget                           */
    int32_t min_source_tokens;     /* 48                                                        */
    const pf_chat_msg *history;    /* earlier turns (user / assistant) rendered between the     */
    int64_t n_history;             /* system message and this question; NULL/0 for none        */
} pf_rag_prompt_params;

typedef struct pf_rag_source {
    int32_t hit;                   /* index into the hits given                                */
    int64_t text_len;              /* bytes of the hit's text used (< its length when cut)     */
    bool truncated;
} pf_rag_source;

typedef struct pf_rag_prompt {
    char *system;                  /* the instructions                                         */
    char *user;                    /* sources + question: the message to send                   */
    int32_t *ids;                  /* tokens of the rendered conversation + generation prompt   */
    int64_t n_ids;
    pf_rag_source *sources;        /* source n (1-based) is sources[n - 1]                      */
    int32_t n_sources;
    int32_t n_dropped;             /* hits left out for lack of room                           */
} pf_rag_prompt;

const char *pf_rag_default_instructions(void);
/* max_tokens 3584, max_sources 0, min_source_tokens 48, built-in instructions, no history. */
pf_rag_prompt_params pf_rag_prompt_default_params(void);
/* PF_ERR_ARG when even the question without sources does not fit max_tokens. */
int pf_rag_build_prompt(const pf_tokenizer *tok, const pf_chat_format *fmt, const char *question,
                        const pf_search_hit *hits, int32_t n_hits, const pf_rag_prompt_params *p, pf_rag_prompt *out,
                        pf_error *err);
void pf_rag_prompt_free(pf_rag_prompt *p);
/* "SOURCE p.12 › Heading" (page and heading when known). short_source: only the last two path
 * components of the source (what the model sees). Returns the length; truncates to cap. */
size_t pf_rag_source_label(const pf_search_hit *h, bool short_source, char *buf, size_t cap);

/* ---- Citations --------------------------------------------------------------------------- */
/* A marker is a bracket group of source numbers: "[1]", "[1, 3]", "[1,3]", "[1; 3]", "[1 and 3]",
 * "[1-3]" (also "–" / "—"; a range expands to each number, at most 64), optionally prefixed by
 * "source"/"sources" ("[Source 2]") or written as a footnote ("[^2]"). Anything else in brackets ("[see below]", "[1.5]") is text.
 * Each number gives one pf_rag_marker; a number outside 1..n_sources is invalid (a marker that
 * points to no source), and a range running past n_sources yields one invalid entry for the part
 * beyond. */
typedef struct pf_rag_marker {
    int64_t start, end;            /* byte offsets of the whole bracket group in the answer    */
    int32_t source;                /* the number written                                        */
    bool valid;                    /* 1 <= source <= n_sources                                  */
} pf_rag_marker;

typedef struct pf_rag_citations {
    pf_rag_marker *markers;        /* in text order                                             */
    int64_t n_markers, n_invalid;
    int32_t *count;                /* count[n - 1]: valid markers naming source n               */
    int32_t n_sources;
} pf_rag_citations;

int pf_rag_parse_citations(const char *answer, size_t len, int32_t n_sources, pf_rag_citations *out,
                           pf_error *err);
void pf_rag_citations_free(pf_rag_citations *c);

/* ---- Extractive answers (no model) --------------------------------------------------------- */
/* Each hit's text is split into sentences (after . ! ? followed by space and a non-lowercase
 * character, except after common abbreviations and initials; at blank lines; at line breaks
 * other than soft wraps, so list items and table rows stand alone). A sentence scores the
 * IDF-weighted share of the question's content terms it holds, plus a small bonus for its
 * passage's rank; units of fewer than 3 words (headings) are skipped. Sentences scoring at least
 * min_rel x the best are taken best first within max_chars (plus, budget allowing, the sentence
 * right after a chosen one when it begins with "It", "This", "They", ...; when the question's
 * words are only in a passage's heading or title, its first two sentences), then printed grouped by source in
 * rank order, in document order inside a source, each group followed by its "[n]" (n = hit
 * index + 1, so the citations are those of the hits as given). */
typedef struct pf_rag_extract_params {
    int32_t max_chars;             /* 700: bytes of answer text (citations not counted)         */
    int32_t max_sentences;         /* 8                                                         */
    double min_rel;                /* 0.5                                                       */
} pf_rag_extract_params;

typedef struct pf_rag_sentence {
    int32_t source;                /* 1-based: hit index + 1                                    */
    int64_t start, end;            /* byte offsets in the hit's text                            */
    double score;
} pf_rag_sentence;

typedef struct pf_rag_extract {
    char *text;                    /* the answer: "S1 S2 [1]\nS3 [2]"; "" when nothing matched  */
    pf_rag_sentence *sentences;    /* chosen sentences in output order                          */
    int32_t n_sentences;
} pf_rag_extract;

pf_rag_extract_params pf_rag_extract_default_params(void);
/* kb (may be NULL) gives IDF weights as for the gate. */
int pf_rag_extract_answer(pf_kb *kb, const char *question, const pf_search_hit *hits, int32_t n_hits,
                          const pf_rag_extract_params *p, pf_rag_extract *out, pf_error *err);
void pf_rag_extract_free(pf_rag_extract *x);
/* Sentence spans of text[0..len) as the extractive answer cuts them (trimmed; units of any
 * length). Writes min(count, cap) pairs (start, end) into spans[2 * i], returns the count. */
int64_t pf_rag_split_sentences(const char *text, size_t len, int64_t *spans, int64_t cap);

/* ---- Answers: the whole pipeline as one call (src/rag/rag_answer.c) ----------------------- */
/* Retrieval + gate (pf_rag_retrieve), then pf_rag_answer_retrieved: refused when the gate says
 * no; without a model an extractive answer (refused when no sentence matched); with a model the
 * packed prompt is generated from and the answer's [n] markers are mapped to the sources; with
 * retrieve = false the question alone goes to the model in the chat template ("closed book":
 * what the model knows by itself, with or without a LoRA). `phiforge ask` and `eval` use it. */

/* One retrieval: hits, gate verdict, each hit's coverage. Hits that share no content word with
 * the question and were not found by meaning (dense) only distract a small model: they are moved
 * behind the others (stable), and only hits[0..n_use) are used. ranked[0..res.n) keeps the doc
 * keys in the retriever's rank order (borrowed from res; for recall@k). */
typedef struct pf_rag_retrieval {
    pf_search_results res;
    int32_t n_use;
    pf_rag_relevance rel;
    double *coverage;              /* res.n entries, in the partitioned order                   */
    const char **ranked;
    double retrieve_ms;
} pf_rag_retrieval;

/* query is searched for; gate_query (the question; may equal query) is what the gate judges. */
int pf_rag_retrieve(pf_kb *kb, pf_retriever *r, const char *query, const char *gate_query, const pf_search_params *sp,
                    const pf_rag_gate_params *gate, pf_rag_retrieval *out, pf_error *err);
void pf_rag_retrieval_free(pf_rag_retrieval *t);

/* A loaded chat model (borrowed handles; the LoRA adapters are whatever the context has set). */
typedef struct pf_rag_model {
    pf_context *ctx;
    const pf_tokenizer *tok;
    pf_sampler *smp;
    pf_chat_format fmt;
} pf_rag_model;

typedef struct pf_rag_answer_params {
    pf_search_params search;
    pf_rag_gate_params gate;
    pf_rag_extract_params extract;
    bool retrieve;                 /* false: closed book (needs a model; no KB is read)         */
    const char *instructions;      /* system text; NULL: pf_rag_default_instructions() (RAG) or */
                                   /* pf_rag_closed_book_instructions()                          */
    int64_t max_tokens;            /* answer tokens; <= 0: until EOG (the prompt then leaves    */
                                   /* min(n_ctx / 4, 512) tokens of room)                        */
    const char *const *stop;       /* stop strings of the generation                             */
    int n_stop;
    pf_text_fn on_text;            /* streams the generated answer; may be NULL                  */
    void *user;
    /* called with the packed prompt before generation (--show-prompt); may be NULL */
    void (*on_prompt)(void *user, const pf_rag_prompt *pr);
    const char *given_answer;      /* with a model: do not generate, map this text's citations   */
    int32_t n_draft;               /* prompt-lookup speculative decoding: draft tokens per forward */
                                   /* (PF_LOOKUP_DEFAULT_N_DRAFT; 0: off); same output either way */
    const char *prefix_cache;      /* file of the KV state of the last RAG prompt (NULL: none):    */
                                   /* restored before generating, so a question over the same      */
                                   /* sources only decodes what follows them, and rewritten when   */
                                   /* it held less than the new prompt's prefix                    */
} pf_rag_answer_params;

typedef enum pf_rag_answer_kind {
    PF_RAG_ANSWER_NOT_COVERED = 0, /* refused: text is PF_RAG_NOT_COVERED                        */
    PF_RAG_ANSWER_EXTRACTIVE = 1,
    PF_RAG_ANSWER_GENERATED = 2,   /* from the packed sources                                    */
    PF_RAG_ANSWER_CLOSED_BOOK = 3, /* the question alone                                         */
} pf_rag_answer_kind;

typedef struct pf_rag_answer_source {
    int32_t hit;                   /* index into retrieval.res.hits                              */
    const char *doc_key;           /* borrowed from the hit                                      */
    int32_t n_cited;               /* valid markers naming it                                    */
    bool truncated;                /* cut to fit the prompt                                      */
} pf_rag_answer_source;

typedef struct pf_rag_answer {
    pf_rag_answer_kind kind;
    bool refused;
    char *text;                    /* the answer with its [n] markers                            */
    pf_rag_retrieval retrieval;    /* empty in closed-book mode                                  */
    pf_rag_answer_source *sources; /* source n (1-based) is sources[n - 1]                       */
    int32_t n_sources;
    int32_t n_dropped;             /* usable hits left out of the prompt for lack of room        */
    pf_rag_citations cit;          /* markers of text (over n_sources)                           */
    pf_rag_extract extract;        /* the extractive answer's sentences (kind EXTRACTIVE)        */
    pf_stop_reason stop;
    int64_t n_prompt, n_gen;       /* tokens decoded for the prompt, tokens generated            */
    int64_t n_prefix_restored;     /* prompt tokens restored from prefix_cache (not decoded)     */
    int64_t n_drafted, n_accepted; /* prompt lookup: draft tokens verified / accepted            */
    double pack_ms, prompt_ms, gen_ms, total_ms;
} pf_rag_answer;

const char *pf_rag_closed_book_instructions(void);
/* search/gate/extract defaults, retrieve true, until EOG, nothing streamed. */
pf_rag_answer_params pf_rag_answer_default_params(void);
/* The generation parameters of an answer (the single place they are set; chat --kb uses it too),
 * with prompt lookup drafting up to n_draft tokens (0: off). */
pf_gen_params pf_rag_gen_params(int64_t max_tokens, const char *const *stop, int n_stop, int32_t n_draft, pf_text_fn on_text,
                                void *user);
/* model may be NULL (extractive). kb and r may be NULL when p->retrieve is false. */
int pf_rag_answer_question(pf_kb *kb, pf_retriever *r, const pf_rag_model *model, const char *question,
                           const pf_rag_answer_params *p, pf_rag_answer *out, pf_error *err);
/* The second half, for a caller that retrieved already (and loads its model only when the gate
 * says yes): takes ownership of *t (zeroed) whatever the outcome. */
int pf_rag_answer_retrieved(pf_kb *kb, pf_rag_retrieval *t, const pf_rag_model *model, const char *question,
                            const pf_rag_answer_params *p, pf_rag_answer *out, pf_error *err);
void pf_rag_answer_free(pf_rag_answer *a);
/* The answer without its citation markers (for answer metrics): malloc'd, NULL on no memory. */
char *pf_rag_strip_markers(const char *text, const pf_rag_citations *cit);

/* ------------------------------------------------------------------------------------------ */
/* NF4: 4-bit NormalFloat weights with double-quantized scales (QLoRA / bitsandbytes)            */
/* ------------------------------------------------------------------------------------------ */

/* A matrix W of n_out rows × n_in columns (the PyTorch [out, in] layout; GGUF ne = [n_in, n_out])
 * stored as bitsandbytes' quantize_4bit(quant_type="nf4", blocksize=64, compress_statistics=True)
 * stores it: the row-major weights are cut into blocks of 64, each block keeps its absmax and one
 * 4-bit code per weight (the nearest of the 16 NF4 levels to w / absmax); the block absmax values
 * are then themselves quantized ("double quantization"): offset = mean(absmax), and
 * absmax - offset goes to 8 bits with the signed dynamic map in blocks of 256, one f32 scale per
 * 256-block. Dequantization:
 *     absmax[j] = map8[absmax_q[j]] · absmax_scale[j / 256] + offset
 *     w[i]      = nf4[code[i]] · absmax[i / 64]
 * Cost: 4 + 8/64 + 32/(64·256) ≈ 4.127 bits per weight. n_in must be a multiple of 64. */
#define PF_NF4_BLOCK 64      /* weights per absmax                                            */
#define PF_NF4_DQ_BLOCK 256  /* absmax values per second-level f32 scale                      */

typedef struct pf_nf4_tensor {
    int64_t n_out, n_in;
    int64_t n_blocks;        /* n_out · n_in / 64                                             */
    int64_t n_scales;        /* ceil(n_blocks / 256)                                          */
    uint8_t *codes;          /* n_out·n_in/2 bytes: weight 2i in the high nibble, 2i+1 low    */
    uint8_t *absmax_q;       /* n_blocks indices into pf_nf4_dq_map()                         */
    float *absmax_scale;     /* n_scales: max |absmax - offset| of each 256-block             */
    float offset;            /* mean of the n_blocks block absmax values                      */
    /* building state: rows quantized so far and their exact absmax (freed by pf_nf4_finish) */
    int64_t rows_done;
    float *absmax_f32;
    bool ready;              /* pf_nf4_finish done: the tensor can be used                    */
} pf_nf4_tensor;

/* The 16 NF4 levels (bitsandbytes get_4bit_type("nf4")), -1 ... 0 ... 1, code order. */
const float *pf_nf4_levels(void);
/* The 256 values of the signed 8-bit dynamic map (bitsandbytes create_dynamic_map()), sorted. */
const float *pf_nf4_dq_map(void);
/* Nearest NF4 code of a value already divided by its block absmax; ties and NaN as bitsandbytes'
 * CUDA kernel (a value exactly on a midpoint takes the lower code, NaN gives code 0). */
uint8_t pf_nf4_nearest(float x);
/* Nearest index of the dynamic map (ties as bitsandbytes' dQuantize: to the even index). */
uint8_t pf_nf4_dq_nearest(float x);

/* Streaming build: init, then append rows in order (any number at a time, e.g. while reading
 * a GGUF tensor chunk by chunk), then finish (double quantization once every row is in).
 * Peak extra memory is 4 bytes per 64 weights (the exact absmax values until finish). */
int pf_nf4_init(pf_nf4_tensor *t, int64_t n_out, int64_t n_in, pf_error *err);
int pf_nf4_append_rows(pf_nf4_tensor *t, const float *rows, int64_t n_rows, pf_error *err);
int pf_nf4_finish(pf_nf4_tensor *t, pf_error *err);
/* Same as append_rows, the rows split across c's threads. */
int pf_nf4_append_rows_mt(pf_compute *c, pf_nf4_tensor *t, const float *rows, int64_t n_rows, pf_error *err);
/* A 2-D GGUF tensor of any weight type (ne = [n_in, n_out]) to NF4: rows dequantized a few MB at a
 * time from the mapping and quantized in parallel, so the f32 matrix never exists; quantized types
 * are dequantized first (their rounding is then rounded again). */
int pf_nf4_quantize_tensor(pf_compute *c, const pf_tensor_info *src, pf_nf4_tensor *t, pf_error *err);
/* init + append every row + finish. */
int pf_nf4_quantize(pf_nf4_tensor *t, const float *w, int64_t n_out, int64_t n_in, pf_error *err);
void pf_nf4_free(pf_nf4_tensor *t);
/* Rows [r0, r0 + n_rows) as f32 into dst (n_rows · n_in floats). */
int pf_nf4_dequantize_rows(const pf_nf4_tensor *t, int64_t r0, int64_t n_rows, float *dst, pf_error *err);
/* Bytes held by a finished tensor (codes, absmax codes, scales, offset). */
size_t pf_nf4_bytes(const pf_nf4_tensor *t);
/* Storage bits per weight of a finished tensor (≈ 4.127 for 64/256 blocks). */
double pf_nf4_bits_per_weight(const pf_nf4_tensor *t);

/* y[n × n_out] = x[n × n_in] · Wᵀ and dx[n × n_in] = g[n × n_out] · W, W dequantized inside the
 * kernel (never as a whole); AVX2 or scalar per c's kernel table, split across c's threads, no
 * allocation. y / dx are overwritten. */
int pf_nf4_matmul(pf_compute *c, const pf_nf4_tensor *w, const float *x, int64_t n, float *y, pf_error *err);
int pf_nf4_matmul_t(pf_compute *c, const pf_nf4_tensor *w, const float *g, int64_t n, float *dx, pf_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Hugging Face checkpoint -> GGUF (phiforge convert)                                           */
/* ------------------------------------------------------------------------------------------ */

/* Converts a Phi3ForCausalLM checkpoint directory (config.json, model.safetensors or the shards of
 * model.safetensors.index.json in F32/F16/BF16, tokenizer.model — or tokenizer.json without it —,
 * tokenizer_config.json, added_tokens.json) into a GGUF with the tensor names, shapes, types and
 * metadata keys llama.cpp's convert_hf_to_gguf.py writes (Phi3MiniModel): 2-D weights in
 * `outtype`, norms and LongRoPE factors F32, phi3.* hyperparameters incl.
 * rope.scaling.original_context_length, attention.sliding_window and rope.scaling.attn_factor,
 * tokenizer.ggml.* with the added-token rules, general.file_type. Tensors are converted one at a
 * time from the read-only mapping while the file is written. Errors name the file and key. */
typedef struct pf_convert_params {
    pf_type outtype;    /* PF_TYPE_F16 (default), F32, BF16 or Q8_0                             */
    const char *name;   /* general.name; NULL: the directory's base name                          */
    /* called after each tensor (done of total), may be NULL */
    void (*progress)(void *user, int64_t done, int64_t total, const char *tensor);
    void *user;
} pf_convert_params;

pf_convert_params pf_convert_default_params(void);
int pf_convert_hf(const char *hf_dir, const char *out_path, const pf_convert_params *p, pf_error *err);


/* ------------------------------------------------------------------------------------------ */
/* Evaluation: RAG, fine-tuning, or both? (src/eval/qa_file.c, src/eval/eval_run.c)            */
/* ------------------------------------------------------------------------------------------ */
/* A Q&A file is JSONL, one object per line (blank lines skipped):
 *   {"id": "q001", "question": "...", "answer": "reference answer", "source": "docs/x.md" | null,
 *    "page": 3 | null, "type": "fact" | ... | "unanswerable"}
 * question and answer are required strings; id (default: the line number), source, page and type
 * are optional. type "unanswerable" marks a question the documents do not answer (its reference
 * answer is taken to be "not covered"). source names the gold document as a path; it matches a
 * KB document whose doc_key ends with it at a path boundary ("docs/x.md" matches
 * "/home/u/pack/docs/x.md"), since the KB stores paths as given at ingest.
 *
 * Metrics of one mode over the questions (each a mean; NAN where the denominator is empty or the
 * mode cannot have it):
 *   exact_match, f1   SQuAD v1.1 (pf_answer_exact_match / pf_answer_f1) of the answer without
 *                     its [n] markers against the reference, over ALL questions. A refusal counts
 *                     as the answer "not covered": right on an unanswerable question, (nearly
 *                     always) 0 on an answerable one.
 *   citation_acc      answerable questions with a source: the gold document is among the cited
 *                     sources (refusals cite nothing). Modes with retrieval only.
 *   recall_at_k       answerable questions with a source: the gold document is among the k
 *                     passages retrieved. Modes with retrieval only.
 *   refusal_acc       unanswerable questions that were refused.
 *   false_refusal     answerable questions that were refused.
 * A generated answer counts as a refusal when it contains the fixed PF_RAG_NOT_COVERED sentence
 * (normalized) or normalizes to "not covered". tokens_per_s = generated tokens / generation time
 * (NAN for extractive answers). */
typedef struct pf_qa_item {
    char *id, *question, *answer;
    char *source;                  /* NULL when none                                             */
    int32_t page;                  /* 0 when none                                                */
    bool unanswerable;
    int64_t line;                  /* 1-based line in the file                                    */
} pf_qa_item;

typedef struct pf_qa_set {
    pf_qa_item *items;
    int64_t n;
} pf_qa_set;

/* PF_ERR_FORMAT "FILE:LINE: field 'question': ..." for a bad line. */
int pf_qa_load(const char *path, pf_qa_set *out, pf_error *err);
void pf_qa_free(pf_qa_set *s);
/* doc_key ends with source at a path boundary (or equals it); a leading "./" of source ignored. */
bool pf_eval_doc_matches(const char *doc_key, const char *source);

typedef struct pf_eval_item {      /* one question's outcome */
    bool refused, exact;
    double f1;
    bool cited_gold, retrieved_gold; /* meaningful when the question has a source and mode retrieves */
    int64_t n_gen;
    double gen_ms, total_ms;
} pf_eval_item;

typedef struct pf_eval_scores {
    int64_t n, n_answerable, n_unanswerable, n_sourced; /* n_sourced: answerable with a source  */
    double exact_match, f1, citation_acc, recall_at_k, refusal_acc, false_refusal, tokens_per_s;
    int64_t n_gen_tokens;
    double gen_ms, total_ms;
    /* running sums (pf_eval_scores_add); pf_eval_scores_finish turns them into the means above */
    int64_t s_exact, s_cited, s_retrieved, s_refused_unans, s_refused_ans;
    double s_f1;
} pf_eval_scores;

/* Scores answer a (from pf_rag_answer_question) against q. retrieve: the mode retrieved. */
int pf_eval_score(const pf_qa_item *q, const pf_rag_answer *a, bool retrieve, pf_eval_item *out, pf_error *err);
void pf_eval_scores_add(pf_eval_scores *s, const pf_qa_item *q, const pf_eval_item *it);
void pf_eval_scores_finish(pf_eval_scores *s, bool retrieve, bool generated);

/* Called after each question (i of n); non-zero stops the run (PF_ERR_ARG "stopped"). */
typedef int (*pf_eval_item_fn)(void *user, int64_t i, int64_t n, const pf_qa_item *q, const pf_rag_answer *a,
                               const pf_eval_item *it);
/* Answers qa->items[0..n) with pf_rag_answer_question (p->retrieve chooses RAG or closed book;
 * model NULL: extractive) and fills *out. */
int pf_eval_run(pf_kb *kb, pf_retriever *r, const pf_rag_model *model, const pf_qa_set *qa, int64_t n,
                const pf_rag_answer_params *p, pf_eval_item_fn on_item, void *user, pf_eval_scores *out, pf_error *err);

/* ------------------------------------------------------------------------------------------ */
/* LoRA trainer (issue 6)                                                                       */
/* ------------------------------------------------------------------------------------------ */
/* Trains LoRA adapters (PEFT semantics: y = W x + s·B(A·drop(x)), s = alpha/r or alpha/sqrt(r)
 * with rsLoRA, A ~ U(±1/sqrt(n_in)) seeded, B = 0) on a loaded Phi-3 model whose weights stay
 * in their GGUF type and are only read. Every activation, gradient and optimizer buffer is
 * allocated at creation: a training step does not allocate. One trainer is used by one thread.
 * Rows come from the fine-tuning data section (struct pf_train_row: ids, targets (-1: no loss),
 * per-sample positions and segment numbers of packed rows). */
struct pf_train_row;
typedef struct pf_trainer pf_trainer;

enum {  /* pf_train_params.targets: which linear layers get adapters */
    PF_LORA_QKV = 1, PF_LORA_O = 2, PF_LORA_GATE_UP = 4, PF_LORA_DOWN = 8, PF_LORA_ALL = 15
};

typedef enum pf_lr_schedule {
    PF_LR_COSINE = 0,   /* lr·0.5(1 + cos(pi·progress)) after warmup (HF get_cosine_schedule_with_warmup) */
    PF_LR_LINEAR = 1,   /* lr·(total − step)/(total − warmup) after warmup                               */
    PF_LR_CONSTANT = 2, /* lr after warmup                                                               */
} pf_lr_schedule;

typedef struct pf_train_params {
    int32_t rank;          /* r (16)                                                            */
    float alpha;           /* (32)                                                              */
    bool rslora;           /* s = alpha / sqrt(r) instead of alpha / r (false)                  */
    float dropout;         /* on the adapter input, 0 <= p < 1 (0)                              */
    uint32_t targets;      /* PF_LORA_* bits (PF_LORA_ALL)                                      */
    int64_t seq_len;       /* most tokens per row (512)                                         */
    bool grad_checkpoint;  /* keep only each layer's input; recompute it in backward (false)    */
    uint64_t seed;         /* adapter init and dropout (42)                                     */
    int n_threads;         /* <= 0: online CPUs                                                 */
    pf_isa isa;            /* PF_ISA_AUTO                                                       */
    /* AdamW (decoupled weight decay, as torch.optim.AdamW) and the schedule */
    float lr, beta1, beta2, eps, weight_decay; /* 2e-4, 0.9, 0.999, 1e-8, 0                     */
    float clip;            /* max global gradient norm, <= 0: none (1.0)                        */
    int64_t warmup;        /* warmup steps (0)                                                  */
    int64_t total_steps;   /* for the schedule (1)                                              */
    pf_lr_schedule schedule;
    bool full;             /* full fine-tuning instead of LoRA (false): see pf_trainer_save_model */
    bool qlora;            /* QLoRA: base linears of the blocks held in NF4 (see below) (false) */
} pf_train_params;

typedef struct pf_train_step_stats {
    int64_t step;          /* optimizer steps done after this one                               */
    double lr;             /* learning rate used                                                */
    double grad_norm;      /* global norm before clipping                                       */
    double loss;           /* Σ token losses / tokens over the accumulated batch                */
    int64_t n_tokens;      /* target tokens of the accumulated batch                            */
} pf_train_step_stats;

pf_train_params pf_train_default_params(void);
int pf_trainer_create(const pf_model *m, const pf_train_params *p, pf_trainer **out, pf_error *err);
void pf_trainer_free(pf_trainer *t);
/* Forward + backward of one row; gradients accumulate. Token losses are divided by `norm`, the
 * number of target tokens of the whole accumulated batch (so accumulation equals one big batch).
 * *loss_sum gets Σ token losses of the row (not divided). */
int pf_trainer_accumulate(pf_trainer *t, const struct pf_train_row *row, double norm, double *loss_sum,
                          pf_error *err);
/* Clip, one AdamW step at the scheduled lr, zero the gradients. loss/n_tokens: what the caller
 * accumulated (copied into the stats). */
int pf_trainer_step(pf_trainer *t, double loss_sum, int64_t n_tokens, pf_train_step_stats *st, pf_error *err);
/* Forward only (no dropout): Σ token losses and target tokens of one row. */
int pf_trainer_eval(pf_trainer *t, const struct pf_train_row *row, double *loss_sum, int64_t *n_tokens,
                    pf_error *err);
int64_t pf_trainer_n_params(const pf_trainer *t);      /* trainable floats                     */
int64_t pf_trainer_steps_done(const pf_trainer *t);
double pf_trainer_lr_at(const pf_train_params *p, int64_t step); /* schedule of step (0-based) */
/* Trainable parameters and their gradients, flat (for tests and checkpoints): per layer, per
 * adapted module in the order qkv, o, gate_up, down: A (r × n_in) then B (n_out × r). */
float *pf_trainer_params_data(pf_trainer *t);
float *pf_trainer_grads_data(pf_trainer *t);
/* A copy of the adapters as pairs named after their base weight ("blk.0.attn_qkv.weight"); the
 * caller clears it with pf_lora_weights_clear (the fine-tuning data section). */
struct pf_lora_weights;
int pf_trainer_export(const pf_trainer *t, struct pf_lora_weights *out, pf_error *err);

/* Checkpoint: adapters, AdamW moments, step, micro-batch counter (the dropout stream) and the
 * caller's data position, in one file written to PATH.tmp then renamed. Loading checks that the
 * file was written by a trainer of the same shape (errors name the field). */
typedef struct pf_train_position {
    int64_t epoch;         /* epoch in progress                                                 */
    int64_t next;          /* index in that epoch's order of the next row                       */
    int64_t extra[4];      /* free for the caller                                               */
} pf_train_position;
int pf_trainer_save(const pf_trainer *t, const char *path, const pf_train_position *pos, pf_error *err);
int pf_trainer_load(pf_trainer *t, const char *path, pf_train_position *pos, pf_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Prompt-lookup speculative decoding and prefix KV caching                                     */
/* ------------------------------------------------------------------------------------------ */
/* Prompt lookup (pf_gen_params.n_draft > 0): before each forward pass of generation, the last
 * ngram_max..ngram_min tokens of prompt + output are looked up in the earlier tokens; what
 * followed their most recent occurrence (up to n_draft tokens) is the draft. One pf_decode of
 * [last token, draft] gives the logits of every position; the sampler then draws each next
 * token exactly as plain decoding would (same penalty window, same PRNG draws) and a draft token
 * is kept while the draw equals it. For a deterministic draft this is the standard speculative
 * acceptance rule: the draft token x is accepted with probability p(x) and, when rejected, the
 * token comes from p with x removed and renormalized, because a draw from p that is not x is
 * distributed exactly so. Output (greedy or seeded sampling) is therefore the one plain decoding
 * gives, up to the float rounding of a batched forward versus single-token ones; the KV cache
 * is rewound past rejected tokens. */
typedef struct pf_lookup pf_lookup;

/* An index of up to `cap` tokens, matching n-grams of ngram_min..ngram_max (1 <= min <= max <= 64). */
int pf_lookup_create(int64_t cap, int32_t ngram_min, int32_t ngram_max, pf_lookup **out, pf_error *err);
void pf_lookup_free(pf_lookup *l);
void pf_lookup_reset(pf_lookup *l);                /* forgets every token                   */
int64_t pf_lookup_n_tokens(const pf_lookup *l);
/* Appends ids[0..n) to the sequence; PF_ERR_ARG beyond the capacity. */
int pf_lookup_add(pf_lookup *l, const int32_t *ids, int64_t n, pf_error *err);
/* Writes up to `max` draft tokens: those that followed the most recent earlier occurrence of the
 * longest suffix of the sequence (ngram_max tokens down to ngram_min) that occurred before.
 * Returns their count (0: no match). */
int64_t pf_lookup_draft(const pf_lookup *l, int32_t *draft, int64_t max);

/* Verifies one draft token against logits: returns the token the sampler chooses (exactly the
 * draw pf_sampler_sample makes) and sets *accepted when it is the draft. For a deterministic
 * draft this is the standard speculative-sampling rule (accept x with probability p(x), else
 * draw from p without x, renormalized), so the output distribution is the sampler's. */
int32_t pf_sampler_verify(pf_sampler *s, const float *logits, int32_t draft, bool *accepted);

/* Defaults of prompt lookup as `phiforge ask` uses it: n_draft, ngram_min, ngram_max. */
#define PF_LOOKUP_DEFAULT_N_DRAFT 8
#define PF_LOOKUP_DEFAULT_NGRAM_MIN 2
#define PF_LOOKUP_DEFAULT_NGRAM_MAX 4

/* Sets n_draft / ngram_min / ngram_max of p to the defaults above (turns lookup on). */
void pf_gen_params_lookup_defaults(pf_gen_params *p);

/* Forgets the KV cache from position n on (n <= pf_context_n_past). */
int pf_context_truncate(pf_context *ctx, int64_t n, pf_error *err);

/* 64-bit fingerprint of what the KV rows of a context depend on: the model (hyperparameters,
 * tensor names, types, shapes and a sample of every tensor's bytes), the context (KV type, which
 * RoPE factors) and the attached LoRA adapters (same sample of their tensors, scales). */
uint64_t pf_context_fingerprint(const pf_context *ctx);

/* Prefix KV cache file ("PFKVPFX1"): header (version, fingerprint, KV type, layer / kv head /
 * head_dim, token count), the token ids, then per layer and kv head the K rows (n × head_dim)
 * and the V columns (head_dim × n) in the cache's element type, and a checksum of everything.
 * Save writes the KV rows of positions [0, n) with their token ids ids[0..n) (which must be
 * what the cache holds: n <= pf_context_n_past) to PATH.tmp, fsyncs and renames it to PATH. */
int pf_context_save_prefix(pf_context *ctx, const int32_t *ids, int64_t n, const char *path, pf_error *err);
/* Restores into ctx the longest common prefix of the stored ids and ids[0..n) (at most n_ctx
 * positions): *n_restored positions, and pf_context_n_past becomes that. PF_ERR_FORMAT for a
 * truncated / corrupt / hostile file, PF_ERR_UNSUPPORTED for a cache of another model,
 * context setting or adapter set (fingerprint mismatch), PF_ERR_IO / PF_ERR_NOT_FOUND when it
 * cannot be read; on any error the context's cache is emptied (n_past 0) and *n_restored is 0.
 * To generate after a full restore pass n_cached = min(*n_restored, n_prompt - 1). */
int pf_context_load_prefix(pf_context *ctx, const int32_t *ids, int64_t n, const char *path, int64_t *n_restored,
                           pf_error *err);

/* Prompt-lookup benchmark on a RAG workload (phiforge bench-lookup, src/bench/bench_lookup.c):
 * a chat prompt of numbered passages (prose paragraphs of the source files, up to
 * prompt_tokens) and a reference answer that quotes some of them between sentences of its own.
 * The answer is teacher-forced: plain decoding runs one forward per answer token; lookup runs
 * pf_generate's algorithm (draft from pf_lookup, one forward of [token, draft] with every row's
 * logits, the sampler on each row used) and accepts a draft token iff it equals the next answer
 * token. Every forward is the real full-size computation; only the acceptance decision comes
 * from the reference answer (a random-weight model does not quote its prompt). */
typedef struct pf_bench_lookup_params {
    const char *const *sources; /* text / markdown files whose prose paragraphs are the passages */
    int n_sources;
    int64_t prompt_tokens;      /* 1500                                                         */
    int64_t answer_tokens;      /* 200                                                          */
    int32_t n_draft, ngram_min, ngram_max; /* 0: PF_LOOKUP_DEFAULT_*                            */
    int n_threads;              /* <= 0: online CPUs                                            */
    int reps;                   /* 1; in each, plain and lookup alternate over 5 answer segments */
    uint64_t seed;              /* which paragraph the passages start from (1)                  */
} pf_bench_lookup_params;

typedef struct pf_bench_lookup_result {
    int n_threads, reps;
    int32_t n_draft, ngram_min, ngram_max;
    int64_t n_prompt, n_answer, n_quoted; /* n_quoted: answer tokens inside quotes (estimate) */
    double prompt_s;
    double plain_tps_best, plain_tps_median, lookup_tps_best, lookup_tps_median;
    int64_t n_forward, n_drafted, n_accepted; /* of the last lookup run                        */
    int batch_n[8];             /* forward of batch_n[i] tokens after the prompt took          */
    double batch_ms[8];         /* batch_ms[i] (best of 2, logits of every row)                */
    int n_batch_points;
} pf_bench_lookup_result;

pf_bench_lookup_params pf_bench_lookup_default_params(void);
int pf_bench_lookup(const char *model_path, const pf_bench_lookup_params *p, pf_bench_lookup_result *out,
                    pf_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Full fine-tuning (issue 6 item 2)                                                           */
/* ------------------------------------------------------------------------------------------ */
/* With pf_train_params.full the trainer trains every weight of an F32/F16/BF16 model (a
 * quantized one is refused: PF_ERR_UNSUPPORTED naming the tensor) instead of adapters: f32
 * copies of the norm vectors, every layer's qkv/o/gate_up/down, output and token_embd (one
 * tensor when output is tied to it). Memory: 4 f32 copies of the model (params, grads, AdamW m
 * and v) = 16 bytes per weight, plus the activations. rank/alpha/targets are ignored; dropout
 * must be 0. AdamW's weight decay skips the norm weights (as HF's Trainer). Flat parameter
 * order (pf_trainer_params_data): attn_norm, ffn_norm per layer, output_norm, then qkv, o,
 * gate_up, down per layer, output, token_embd. Checkpoints save/load as for LoRA. */
/* Writes the fine-tuned model: the base GGUF (all metadata, same tensor order and types) with
 * every trained tensor converted back to its type from the f32 copy. */
int pf_trainer_save_model(pf_trainer *t, const char *path, pf_error *err);

/* ------------------------------------------------------------------------------------------ */
/* QLoRA: LoRA training on an NF4 base (pf_train_params.qlora)                                  */
/* ------------------------------------------------------------------------------------------ */

/* With qlora set, pf_trainer_create quantizes every base linear of the blocks (qkv, o, gate_up,
 * down — adapted or not) to NF4 with double quantization (pf_nf4_quantize_tensor), tensor by
 * tensor from the model's mapping, dropping each tensor's mapped pages once it is quantized, so
 * the full-precision model is never resident. Forward / backward then use pf_nf4_matmul /
 * pf_nf4_matmul_t. The output head and the embedding stay in their GGUF type (bitsandbytes keeps
 * lm_head in 16 bit). A base already in a quantized type is dequantized then requantized
 * (n_requantized counts those tensors: callers should warn). Adapters are exported as for LoRA
 * and apply to the original base or any quantized copy. */
typedef struct pf_qlora_info {
    int64_t n_tensors;     /* base linears held in NF4 (0 without qlora)                        */
    int64_t n_weights;     /* their weights                                                     */
    size_t nf4_bytes;      /* their NF4 storage (codes, absmax codes, scales, offsets)          */
    size_t src_bytes;      /* the same tensors in the GGUF                                      */
    int64_t n_requantized; /* of them, read from a quantized type (rounded twice)               */
    pf_type src_type;      /* type of the first of those                                        */
} pf_qlora_info;
int pf_trainer_qlora_info(const pf_trainer *t, pf_qlora_info *out, pf_error *err);

#ifdef __cplusplus
}
#endif
#endif /* PHIFORGE_H */
