/* Internal interface of the HNSW vector index: distance kernels (distance.c scalar,
 * distance_avx2.c AVX2/FMA/F16C, only called after pf_cpu_has_avx2()), the index structure
 * shared by hnsw.c (build), hnsw_search.c (search), hnsw_io.c (save / open) and labelmap.c. */
#ifndef PF_VINDEX_INTERNAL_H
#define PF_VINDEX_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "phiforge.h"

/* ---- distance kernels ----
 * Every kernel takes a "prepared query" q and one stored vector v of `dim` dimensions and
 * returns the distance (lower is closer). Prepared forms: F32 and F16 storage take the query
 * as f32; I8 takes an I8 record like the stored ones. So a stored F32 or I8 vector is its own
 * prepared form, and a stored F16 vector is prepared by widening it to f32. */
typedef float (*pf_vdist_fn)(const void *q, const void *v, size_t dim);

enum { PF_VK_IP = 0, PF_VK_L2 = 1 }; /* kernel kind: cosine and IP use PF_VK_IP */

typedef void (*pf_f16_decode_fn)(const uint16_t *src, float *dst, size_t n);

typedef struct pf_vdist_table {
    const char *name;             /* "scalar", "avx2"                          */
    pf_vdist_fn fn[3][2];         /* [pf_vec_storage][PF_VK_*]                  */
    pf_f16_decode_fn f16_decode;  /* widens a stored F16 vector (prepared form) */
} pf_vdist_table;

/* NULL when the CPU lacks the instruction set (AUTO resolves by CPUID). */
const pf_vdist_table *pf_vdist_get(pf_isa isa);

/* I8 record: int8 q[pf_i8_pad(dim)], then float scale, float squared norm of scale * q.
 * Values are round(v / scale) clamped to [-127, 127] (never -128, so the AVX2 kernel's
 * sign trick cannot overflow), scale = max|v| / 127. */
static inline size_t pf_i8_pad(size_t dim) { return (dim + 3) & ~(size_t)3; }
size_t pf_vec_bytes(pf_vec_storage st, size_t dim);
void pf_vec_encode(pf_vec_storage st, const float *v, size_t dim, void *dst);
void pf_vec_decode(pf_vec_storage st, const void *src, size_t dim, float *dst);

/* AVX2 kernels (distance_avx2.c). */
float pf_avx2_vdist_f32_ip(const void *q, const void *v, size_t dim);
float pf_avx2_vdist_f32_l2(const void *q, const void *v, size_t dim);
float pf_avx2_vdist_f16_ip(const void *q, const void *v, size_t dim);
float pf_avx2_vdist_f16_l2(const void *q, const void *v, size_t dim);
float pf_avx2_vdist_i8_ip(const void *q, const void *v, size_t dim);
float pf_avx2_vdist_i8_l2(const void *q, const void *v, size_t dim);
void pf_avx2_f16_decode(const uint16_t *src, float *dst, size_t n);

/* ---- label -> slot table: open addressing over slot ids, keys read from labels[] ---- */
typedef struct pf_labelmap {
    uint32_t *tab;   /* slot id or PF_NO_ID; capacity a power of two, load <= 1/2 */
    size_t cap, n;
} pf_labelmap;

#define PF_NO_ID 0xffffffffu
/* Slot of `label` or PF_NO_ID. */
uint32_t pf_labelmap_find(const pf_labelmap *m, const int64_t *labels, int64_t label);
/* Makes room for n entries, so that inserts up to n cannot fail; PF_ERR_NOMEM. */
int pf_labelmap_reserve(pf_labelmap *m, const int64_t *labels, size_t n);
/* labels[slot] must already hold the label; PF_ERR_NOMEM. The label must not be present. */
int pf_labelmap_insert(pf_labelmap *m, const int64_t *labels, uint32_t slot);
void pf_labelmap_erase(pf_labelmap *m, const int64_t *labels, int64_t label);
void pf_labelmap_free(pf_labelmap *m);

/* ---- big arrays (bigalloc.c): huge-page-advised mappings above 1 MiB, malloc below ---- */
void *pf_vbig_alloc(size_t bytes);
void *pf_vbig_realloc(void *p, size_t old_bytes, size_t new_bytes); /* NULL: p unchanged */
void pf_vbig_free(void *p, size_t bytes);

/* ---- the index ---- */
#define PF_HNSW_MAX_LEVEL 31   /* levels[] keeps the level in 7 bits            */
#define PF_HNSW_DELETED 0x80u  /* levels[] high bit: slot deleted               */
#define PF_HNSW_MAX_SLOTS 0x3fffffffu /* ids fit 30 bits (pool flags use 2)     */

typedef struct pf_hnsw_scratch pf_hnsw_scratch;

struct pf_hnsw {
    pf_hnsw_params p;
    pf_vdist_fn dist;
    pf_f16_decode_fn f16_decode;
    size_t dim, vec_bytes, prep_bytes;
    uint32_t M, M0;          /* list capacity on upper levels / on level 0 */
    double level_mult;       /* 1 / ln(M)                                   */

    /* Per-slot arrays, capacity cap: heap, or views into the file mapping (slots_mapped). */
    uint8_t *vecs;           /* cap * vec_bytes                                              */
    uint32_t *links0;        /* cap * M0, unused entries PF_NO_ID (lists end at the first)   */
    int64_t *labels;
    uint8_t *levels;         /* level | PF_HNSW_DELETED                                      */
    uint32_t *upper_off;     /* heap always: where a node's upper lists start in upper[]     */
    uint32_t n, cap;
    /* Upper-level lists: a node of level L owns L lists of M entries (levels 1..L). */
    uint32_t *upper;
    uint64_t upper_n, upper_cap;
    bool slots_mapped, upper_mapped;
    void *map;
    size_t map_size;

    uint32_t ep;             /* entry point, PF_NO_ID when no slot exists */
    int max_level;
    uint32_t n_deleted;
    uint64_t rng;
    pf_labelmap lmap;
    uint32_t *free_slots;    /* deleted slots, reused by add */
    uint32_t n_free, free_cap;

    pthread_mutex_t scratch_lock; /* guards the scratch free list (searches may be concurrent) */
    pf_hnsw_scratch *scratch_free;
};

/* Per-search working memory, reused across calls. */
typedef struct pf_cand { float d; uint32_t id; } pf_cand; /* id low 30 bits + flags below */
#define PF_CAND_EXPANDED 0x80000000u
#define PF_CAND_DELETED 0x40000000u
#define PF_CAND_ID(x) ((x) & 0x3fffffffu)

struct pf_hnsw_scratch {
    uint16_t *visited;       /* visited[i] == epoch: seen in this search (no clearing per search) */
    uint32_t vcap;
    uint16_t epoch;
    pf_cand *pool;
    uint32_t pool_cap;
    float *qf;               /* query as f32 (normalized for cosine)                */
    void *prep;              /* prepared query                                      */
    float *tmp, *tmp2;       /* f32 decode buffers for neighbour selection          */
    uint32_t *ids;           /* unvisited neighbours of the node being expanded     */
    pf_cand *cands;          /* neighbour selection candidates                      */
    uint32_t *sel;
    pf_hnsw_scratch *next;
};

static inline const void *pf_hnsw_vec(const pf_hnsw *h, uint32_t id) { return h->vecs + (size_t)id * h->vec_bytes; }
static inline uint32_t *pf_hnsw_links(const pf_hnsw *h, uint32_t id, int level) {
    return level == 0 ? h->links0 + (size_t)id * h->M0 : h->upper + h->upper_off[id] + (size_t)(level - 1) * h->M;
}
static inline int pf_hnsw_level(const pf_hnsw *h, uint32_t id) { return h->levels[id] & 0x7f; }

/* hnsw_search.c */
pf_hnsw_scratch *pf_hnsw_scratch_get(const pf_hnsw *h);
void pf_hnsw_scratch_put(const pf_hnsw *h, pf_hnsw_scratch *s);
void pf_hnsw_scratch_free_all(pf_hnsw *h);
/* Grows s for a search of list size ef; false on OOM. */
bool pf_hnsw_scratch_fit(const pf_hnsw *h, pf_hnsw_scratch *s, uint32_t ef);
/* Prepares q (dim floats) into s->qf / s->prep per metric and storage. */
void pf_hnsw_prepare(const pf_hnsw *h, pf_hnsw_scratch *s, const float *q);
/* Greedy walk (list size 1) on `level` from *cur; `exclude` is never entered. */
void pf_hnsw_greedy(const pf_hnsw *h, const void *q, int level, uint32_t exclude, uint32_t *cur, float *cur_d);
/* Best-first search of one level from eps; leaves the list sorted in s->pool and returns its
 * size. filter: deleted nodes are walked through but do not count toward ef (search time). */
uint32_t pf_hnsw_search_level(const pf_hnsw *h, pf_hnsw_scratch *s, const void *q, const uint32_t *eps,
                              uint32_t n_eps, uint32_t ef, int level, bool filter, uint32_t exclude);
/* A stored vector in prepared form (F16 widened into buf). */
const void *pf_hnsw_prep_stored(const pf_hnsw *h, uint32_t id, float *buf);

/* hnsw_io.c: file layout. A 128-byte little-endian header (fields at the offsets below,
 * then an FNV-1a 64 checksum of bytes 0..119 at 120), then the sections, each at a 64-byte
 * aligned offset, in this order, with nothing after the last one. */
enum {
    PF_HNSW_HDR_MAGIC = 0, PF_HNSW_HDR_VERSION = 8, PF_HNSW_HDR_SIZE = 12, PF_HNSW_HDR_DIM = 16,
    PF_HNSW_HDR_METRIC = 20, PF_HNSW_HDR_STORAGE = 24, PF_HNSW_HDR_M = 28, PF_HNSW_HDR_EFC = 32,
    PF_HNSW_HDR_MAX_LEVEL = 36, PF_HNSW_HDR_SLOTS = 40, PF_HNSW_HDR_DELETED = 48, PF_HNSW_HDR_EP = 56,
    PF_HNSW_HDR_VEC_BYTES = 60, PF_HNSW_HDR_UPPER = 64, PF_HNSW_HDR_GENERATION = 72, PF_HNSW_HDR_RNG = 80,
    PF_HNSW_HDR_EXACT_BELOW = 88, PF_HNSW_HDR_SEED = 96, PF_HNSW_HDR_CHECKSUM = 120, PF_HNSW_HDR_BYTES = 128
};
enum { PF_HNSW_SEC_VECS, PF_HNSW_SEC_LINKS0, PF_HNSW_SEC_LABELS, PF_HNSW_SEC_LEVELS, PF_HNSW_SEC_UPPER, PF_HNSW_SEC_N };
typedef struct pf_hnsw_layout {
    uint64_t off[PF_HNSW_SEC_N], size[PF_HNSW_SEC_N], end;
} pf_hnsw_layout;
extern const char *const pf_hnsw_sec_name[PF_HNSW_SEC_N];
void pf_hnsw_layout_of(uint64_t n_slots, uint64_t vec_bytes, uint64_t m0, uint64_t upper_words, pf_hnsw_layout *l);
uint64_t pf_hnsw_fnv1a(const void *p, size_t n);

/* hnsw.c */
int pf_hnsw_init_kernels(pf_hnsw *h, pf_error *err);
int pf_hnsw_check_params(const pf_hnsw_params *p, pf_error *err);

#endif
