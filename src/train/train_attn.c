/* Causal self-attention of the trainer, masked to each packed sample (equal seg), with GQA.
 * Forward uses the online softmax (running max m, running sum l, rescaled accumulator), so
 * it needs no n-long score row; it keeps lse_t = m + log l per query and head, from which the
 * backward recomputes every probability P_tj = exp(s_tj − lse_t) instead of storing n² of them.
 * The backward also uses D_t = Σ_j P_tj dP_tj = do_t · o_t (the softmax Jacobian's row sum). */
#include <math.h>
#include <string.h>

#include "train/train_internal.h"

#define MAX_HEAD_DIM 256

typedef struct attn_job {
    const pf_model_hparams *hp;
    const float *qkv, *out, *lse, *dout;
    const int32_t *seg;
    float *o, *l, *dqkv;
    int64_t n;
    bool avx2;
} attn_job;

static inline float dotf(const float *a, const float *b, int64_t d) {
    float s = 0.0f;
    for (int64_t i = 0; i < d; i++) s += a[i] * b[i];
    return s;
}

/* One query t of one head: online softmax over keys j <= t of its segment (k_j = kb + j·stride,
 * v_j = vb + j·stride); writes o[0..d) and returns lse. */
float pf_train_attn_fwd_row_scalar(const float *q, const float *kb, const float *vb, int64_t stride, const int32_t *seg,
                                   int64_t t, int64_t d, float scale, float *o) {
    float m = -INFINITY, l = 0.0f;
    float acc[MAX_HEAD_DIM];
    memset(acc, 0, (size_t)d * sizeof *acc);
    for (int64_t k = 0; k <= t; k++) {
        if (seg[k] != seg[t]) continue;
        const float *kk = kb + k * stride, *v = vb + k * stride;
        const float s = dotf(q, kk, d) * scale;
        if (s > m) { /* new maximum: rescale what was summed so far by e^(m_old − m_new) */
            const float r = expf(m - s);
            l *= r;
            for (int64_t i = 0; i < d; i++) acc[i] *= r;
            m = s;
        }
        const float p = expf(s - m);
        l += p;
        for (int64_t i = 0; i < d; i++) acc[i] += p * v[i];
    }
    for (int64_t i = 0; i < d; i++) o[i] = acc[i] / l;
    return m + logf(l);
}

/* One query t of one head, backward: adds into dq (d), dk_j, dv_j (dkb/dvb + j·stride). */
void pf_train_attn_bwd_row_scalar(const float *q, const float *kb, const float *vb, float *dkb, float *dvb,
                                  int64_t stride, const int32_t *seg, int64_t t, int64_t d, float scale, float lse,
                                  float D, const float *dout, float *dq) {
    for (int64_t k = 0; k <= t; k++) {
        if (seg[k] != seg[t]) continue;
        const float *kk = kb + k * stride, *v = vb + k * stride;
        float *dk = dkb + k * stride, *dv = dvb + k * stride;
        const float p = expf(dotf(q, kk, d) * scale - lse);
        const float ds = p * (dotf(dout, v, d) - D) * scale;
        for (int64_t i = 0; i < d; i++) {
            dq[i] += ds * kk[i];
            dk[i] += ds * q[i];
            dv[i] += p * dout[i];
        }
    }
}

/* Items [i0, i1) of head-major (h, t) pairs. */
static void attn_fwd_items(void *arg, int64_t i0, int64_t i1) {
    const attn_job *j = arg;
    const pf_model_hparams *hp = j->hp;
    const int64_t d = hp->head_dim, n = j->n, group = hp->n_head / hp->n_head_kv;
    const int64_t stride = hp->n_embd + 2 * hp->n_head_kv * d;
    const float scale = 1.0f / sqrtf((float)d);
    for (int64_t it = i0; it < i1; it++) {
        const int64_t h = it / n, t = it % n, g = h / group;
        const float *q = j->qkv + t * stride + h * d, *kb = j->qkv + hp->n_embd + g * d, *vb = kb + hp->n_head_kv * d;
        float *o = j->o + t * hp->n_head * d + h * d;
        j->l[h * n + t] = j->avx2 ? pf_train_attn_fwd_row_avx2(q, kb, vb, stride, j->seg, t, d, scale, o)
                                  : pf_train_attn_fwd_row_scalar(q, kb, vb, stride, j->seg, t, d, scale, o);
    }
}

void pf_train_attn_fwd(pf_compute *c, const pf_model_hparams *hp, const float *qkv, const int32_t *seg, int64_t n,
                       float *out, float *lse) {
    attn_job job = {.hp = hp, .qkv = qkv, .seg = seg, .o = out, .l = lse, .n = n,
                    .avx2 = pf_compute_kernels(c)->isa == PF_ISA_AVX2 && hp->head_dim % 8 == 0};
    pf_compute_parallel(c, hp->n_head * n, 8, attn_fwd_items, &job);
}

/* kv heads [g0, g1): zero their dk, dv and the dq of their query heads, then accumulate. */
static void attn_bwd_heads(void *arg, int64_t g0, int64_t g1) {
    const attn_job *j = arg;
    const pf_model_hparams *hp = j->hp;
    const int64_t d = hp->head_dim, n = j->n, group = hp->n_head / hp->n_head_kv;
    const int64_t stride = hp->n_embd + 2 * hp->n_head_kv * d, ko = hp->n_embd, vo = hp->n_embd + hp->n_head_kv * d;
    const float scale = 1.0f / sqrtf((float)d);
    for (int64_t g = g0; g < g1; g++) {
        for (int64_t t = 0; t < n; t++) {
            float *row = j->dqkv + t * stride;
            memset(row + g * group * d, 0, (size_t)(group * d) * sizeof(float));
            memset(row + ko + g * d, 0, (size_t)d * sizeof(float));
            memset(row + vo + g * d, 0, (size_t)d * sizeof(float));
        }
        const float *kb = j->qkv + ko + g * d, *vb = j->qkv + vo + g * d;
        float *dkb = j->dqkv + ko + g * d, *dvb = j->dqkv + vo + g * d;
        for (int64_t h = g * group; h < (g + 1) * group; h++)
            for (int64_t t = 0; t < n; t++) {
                const float *q = j->qkv + t * stride + h * d;
                const float *o = j->out + t * hp->n_head * d + h * d, *dout = j->dout + t * hp->n_head * d + h * d;
                float *dq = j->dqkv + t * stride + h * d;
                const float lse = j->lse[h * n + t], D = dotf(dout, o, d);
                if (j->avx2)
                    pf_train_attn_bwd_row_avx2(q, kb, vb, dkb, dvb, stride, j->seg, t, d, scale, lse, D, dout, dq);
                else
                    pf_train_attn_bwd_row_scalar(q, kb, vb, dkb, dvb, stride, j->seg, t, d, scale, lse, D, dout, dq);
            }
    }
}

void pf_train_attn_bwd(pf_compute *c, const pf_model_hparams *hp, const float *qkv, const int32_t *seg,
                       const float *out, const float *lse, const float *dout, int64_t n, float *dqkv) {
    attn_job job = {.hp = hp, .qkv = qkv, .seg = seg, .out = out, .lse = lse, .dout = dout, .dqkv = dqkv, .n = n,
                    .avx2 = pf_compute_kernels(c)->isa == PF_ISA_AVX2 && hp->head_dim % 8 == 0};
    pf_compute_parallel(c, hp->n_head_kv, 1, attn_bwd_heads, &job);
}
