/* Causal multi-head attention over the KV cache, one (token, head) pair at a time, the pairs
 * spread over the pool's threads. For query head h of the token at position p, with kv head
 * g = h / (n_head / n_head_kv) (GQA: consecutive query heads share a kv head):
 *   s_j = (q_h · k_{g,j}) / sqrt(d)          j = 0..p   (causal: nothing after p)
 *   P   = softmax(s)
 *   o_h = Σ_j P_j v_{g,j}
 * Both products are the kernel table's dot product over contiguous rows of the cache (K is
 * position-major, V is stored transposed), so F16 caches are read with F16C instructions. */
#include <math.h>

#include "model/model_internal.h"

typedef struct att_job {
    pf_context *ctx;
    int64_t il, pos0, n;
    pf_vec_dot_fn dot; /* cache element type · f32 */
} att_job;

/* s[0..n) = softmax(s[0..n)), in place. Terms below e^-100 are 0 (f32 underflow) without a
 * call to expf, whose underflow path is slow. */
static void softmax(float *s, int64_t n) {
    float max = s[0];
    for (int64_t j = 1; j < n; j++) max = s[j] > max ? s[j] : max;
    float sum = 0.0f;
    for (int64_t j = 0; j < n; j++) {
        const float z = s[j] - max;
        s[j] = z > -100.0f ? expf(z) : 0.0f;
        sum += s[j];
    }
    const float inv = 1.0f / sum;
    for (int64_t j = 0; j < n; j++) s[j] *= inv;
}

/* Attention output of query head h of batch row t (position pos0 + t) into ctx->att. */
static void attend(const att_job *job, int64_t t, int64_t h, float *scratch) {
    const pf_context *ctx = job->ctx;
    const pf_model_hparams *hp = &ctx->m->hp;
    const int64_t d = hp->head_dim, n_kv = job->pos0 + t + 1;
    const int64_t g = h / (hp->n_head / hp->n_head_kv);
    const size_t off = pf_kv_offset(ctx, job->il, g), es = ctx->kv_elem;
    const uint8_t *K = (const uint8_t *)ctx->k_cache + off * es, *V = (const uint8_t *)ctx->v_cache + off * es;
    float *s = scratch, *q = scratch + ctx->scores_stride - d;

    const float *qs = ctx->qkv + t * (hp->n_embd + 2 * hp->n_head_kv * d) + h * d;
    const float scale = 1.0f / sqrtf((float)d);
    for (int64_t i = 0; i < d; i++) q[i] = qs[i] * scale;
    for (int64_t j = 0; j < n_kv; j++) job->dot(d, &s[j], K + (size_t)(j * d) * es, q);
    softmax(s, n_kv);
    float *o = ctx->att + t * hp->n_embd + h * d;
    for (int64_t i = 0; i < d; i++) job->dot(n_kv, &o[i], V + (size_t)(i * ctx->n_ctx) * es, s);
}

/* Thread ith takes pairs ith, ith + nth, ...: rows of a batch have growing causal spans, so
 * interleaving balances the work. Pairs are numbered head-major (all rows of head 0, then of
 * head 1, ...), so the rows of a batch that share a kv head run back to back while its K/V rows
 * are still in cache: a batch of a few tokens after a long prompt (speculative verification)
 * then reads the KV cache from memory about once, not once per token. */
static void att_task(void *arg, int ith, int nth) {
    const att_job *job = arg;
    const int64_t n_head = job->ctx->m->hp.n_head, total = job->n * n_head;
    float *scratch = job->ctx->scores + (size_t)ith * (size_t)job->ctx->scores_stride;
    for (int64_t k = ith; k < total; k += nth) attend(job, k % job->n, k / job->n, scratch);
}

void pf_attention(pf_context *ctx, int64_t il, int64_t pos0, int64_t n) {
    const pf_kernels *k = pf_compute_kernels(ctx->c);
    const pf_type_traits *tr = pf_type_get(ctx->kv_type);
    att_job job = {.ctx = ctx, .il = il, .pos0 = pos0, .n = n,
                   .dot = k->vec_dot[ctx->kv_type] ? k->vec_dot[ctx->kv_type] : tr->vec_dot};
    if (ctx->n_threads == 1) att_task(&job, 0, 1);
    else pf_pool_run(pf_compute_pool(ctx->c), att_task, &job);
}
