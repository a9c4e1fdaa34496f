/* Bidirectional multi-head attention over a padded batch. For head h of token t of sequence s
 * (rows r = s·len + t), with q, k, v the head's slices of the projections:
 *   a_j = (q_t · k_j) / sqrt(d) + mask_j     j = 0..len-1, mask_j = 0 for a real token of s,
 *                                             -inf for padding (so its weight is exactly 0)
 *   P   = softmax(a)
 *   o_t = Σ_j P_j v_j
 * K and V are first transposed per (s, h) (rows of len), so that the scores of 8 keys are one
 * FMA per head dimension and o_t is d dot products P · vᵀ[i].
 * Padding queries are not computed (their rows of the output are 0). The (s, h, t) triples are
 * spread over the pool's threads; each thread has its own row of scores. */
#include <math.h>
#include <string.h>

#include "embed/embed_internal.h"

typedef struct att_job {
    pf_embedder *e;
    const pfe_batch *b;
    const float *q;
    int64_t ld;        /* row stride of q                                   */
    pf_vec_dot_fn dot; /* f32 · f32                                         */
    void (*scores)(int64_t d, int64_t len, const float *q, const float *kt, float scale, const float *mask, float *s);
} att_job;

/* s[j] = e^(s[j] - max s) in place (-inf entries, and any below e^-100, become 0); returns
 * 1 / Σ_j s[j], the factor that makes them the softmax (applied to the output instead). */
static float softmax_unnormalized(float *s, int64_t n) {
    float max = -INFINITY;
    for (int64_t j = 0; j < n; j++) max = s[j] > max ? s[j] : max;
    float sum = 0.0f;
    for (int64_t j = 0; j < n; j++) {
        const float z = s[j] - max;
        s[j] = z > -100.0f ? expf(z) : 0.0f;
        sum += s[j];
    }
    return 1.0f / sum;
}

/* Output of head h for row r = s·len + t into w.att. */
static void attend(const att_job *job, int64_t s, int64_t h, int64_t t, float *sc) {
    const pf_embedder *e = job->e;
    const int64_t d = e->hp.head_dim, len = job->b->len, E = e->hp.n_embd;
    float *o = e->w.att + (s * len + t) * E + h * d;
    if (t >= job->b->n_tok[s]) { /* padding query */
        memset(o, 0, (size_t)d * sizeof(float));
        return;
    }
    const float scale = 1.0f / sqrtf((float)d);
    const float *q = job->q + (s * len + t) * job->ld + h * d, *mask = e->w.mask + s * len;
    const size_t head = (size_t)((s * e->hp.n_head + h) * d * len);
    job->scores(d, len, q, e->w.kt + head, scale, mask, sc);
    const float inv = softmax_unnormalized(sc, len);
    for (int64_t i = 0; i < d; i++) {
        job->dot(len, &o[i], e->w.vt + head + (size_t)(i * len), sc);
        o[i] *= inv;
    }
}

/* Portable scores: s[j] = scale · Σ_i q[i] kt[i·len + j] + mask[j]. */
static void scores_ref(int64_t d, int64_t len, const float *q, const float *kt, float scale, const float *mask,
                       float *s) {
    for (int64_t j = 0; j < len; j++) {
        float a = 0.0f;
        for (int64_t i = 0; i < d; i++) a += q[i] * kt[i * len + j];
        s[j] = a * scale + mask[j];
    }
}

/* dst[s][h][i][j] = src[s·len + j][h·d + i]: each head's K or V transposed, rows of len. */
static void transpose_heads(const pf_embedder *e, const pfe_batch *b, const float *src, int64_t ld, float *dst) {
    const int64_t hd = e->hp.n_embd, len = b->len;
    for (int64_t s = 0; s < b->n_seq; s++)
        for (int64_t j = 0; j < len; j++) {
            const float *row = src + (s * len + j) * ld;
            float *out = dst + s * hd * len + j;
            for (int64_t c = 0; c < hd; c++) out[c * len] = row[c];
        }
}

/* Thread ith takes triples ith, ith + nth, ... */
static void att_task(void *arg, int ith, int nth) {
    const att_job *job = arg;
    const int64_t H = job->e->hp.n_head, len = job->b->len, total = job->b->n_seq * H * len;
    float *sc = job->e->w.scores + (size_t)ith * (size_t)len;
    for (int64_t k = ith; k < total; k += nth) attend(job, k / (H * len), k / len % H, k % len, sc);
}

void pfe_attention(pf_embedder *e, const pfe_batch *b, const float *q, const float *k, const float *v, int64_t ld) {
    for (int64_t s = 0; s < b->n_seq; s++)
        for (int64_t t = 0; t < b->len; t++) e->w.mask[s * b->len + t] = t < b->n_tok[s] ? 0.0f : -INFINITY;
    transpose_heads(e, b, k, ld, e->w.kt);
    transpose_heads(e, b, v, ld, e->w.vt);
    const pf_kernels *kt = pf_compute_kernels(e->c);
    att_job job = {e, b, q, ld, kt->vec_dot[PF_TYPE_F32] ? kt->vec_dot[PF_TYPE_F32] : pf_type_get(PF_TYPE_F32)->vec_dot,
                   kt->isa == PF_ISA_AVX2 ? pfe_avx2_scores : scores_ref};
    if (e->n_threads == 1 || b->n_seq * b->len * b->len * e->hp.n_embd < 2 * PFE_PAR_WORK) att_task(&job, 0, 1);
    else pf_pool_run(pf_compute_pool(e->c), att_task, &job);
}
