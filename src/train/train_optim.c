/* Optimizer step: global-norm clipping, the learning-rate schedule, AdamW.
 *   clip:     ‖g‖ = sqrt(Σ g²); if ‖g‖ > c: g ← g · c/(‖g‖ + 1e-6)      (torch clip_grad_norm_)
 *   schedule: lr_k = lr · k/warmup for k < warmup, then cosine / linear / constant (HF's
 *             get_*_schedule_with_warmup; k = optimizer steps already done, so with warmup the
 *             first step runs at lr 0 exactly as HF's LambdaLR does)
 *   AdamW:    θ ← θ(1 − lr·wd) (not on norm weights: HF's no-decay group);  m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²
 *             θ ← θ − (lr / (1−β1ᵗ)) · m / (sqrt(v)/sqrt(1−β2ᵗ) + ε)   (torch.optim.AdamW)
 * The loss was already divided by the batch's target-token count in accumulate, so the
 * gradients are those of the mean token loss of the whole accumulated batch. */
#include <math.h>
#include <string.h>

#include "train/trainer.h"

double pf_trainer_lr_at(const pf_train_params *p, int64_t k) {
    if (k < p->warmup) return (double)p->lr * (double)k / (double)(p->warmup > 1 ? p->warmup : 1);
    const double span = (double)(p->total_steps - p->warmup > 1 ? p->total_steps - p->warmup : 1);
    const double progress = (double)(k - p->warmup) / span;
    switch (p->schedule) {
    case PF_LR_COSINE: return fmax(0.0, (double)p->lr * 0.5 * (1.0 + cos(M_PI * progress)));
    case PF_LR_LINEAR: return fmax(0.0, (double)p->lr * (double)(p->total_steps - k) / span);
    default: return p->lr;
    }
}

typedef struct adam_job {
    float *w, *g, *m, *v;
    int64_t n_nodecay; /* [0, n_nodecay): norm weights, no decay (full fine-tuning) */
    float lr, wd, b1, b2, eps, bc1, bc2_sqrt, gscale;
} adam_job;

static void adam_range(void *arg, int64_t i0, int64_t i1) {
    const adam_job *j = arg;
    const float step = j->lr / j->bc1;
    for (int64_t i = i0; i < i1; i++) {
        const float g = j->g[i] * j->gscale;
        float w = i < j->n_nodecay ? j->w[i] : j->w[i] * (1.0f - j->lr * j->wd);
        j->m[i] = j->b1 * j->m[i] + (1.0f - j->b1) * g;
        j->v[i] = j->b2 * j->v[i] + (1.0f - j->b2) * g * g;
        w -= step * j->m[i] / (sqrtf(j->v[i]) / j->bc2_sqrt + j->eps);
        j->w[i] = w;
        j->g[i] = 0.0f;
    }
}

int pf_trainer_step(pf_trainer *t, double loss_sum, int64_t n_tokens, pf_train_step_stats *st, pf_error *err) {
    if (t == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_trainer_step: NULL trainer");
    double ss = 0.0;
    for (int64_t i = 0; i < t->n_params; i++) ss += (double)t->grads[i] * t->grads[i];
    const double norm = sqrt(ss);
    if (!isfinite(norm)) return pf_error_set(err, PF_ERR_ARG, "pf_trainer_step: gradient norm is %g at step %lld",
                                             norm, (long long)t->step);
    float gscale = 1.0f;
    if (t->p.clip > 0.0f && norm > (double)t->p.clip) gscale = (float)((double)t->p.clip / (norm + 1e-6));
    const double lr = pf_trainer_lr_at(&t->p, t->step);
    t->step++;
    adam_job j = {t->params, t->grads, t->adam_m, t->adam_v, t->n_nodecay, (float)lr, t->p.weight_decay, t->p.beta1, t->p.beta2,
                  t->p.eps, (float)(1.0 - pow((double)t->p.beta1, (double)t->step)),
                  (float)sqrt(1.0 - pow((double)t->p.beta2, (double)t->step)), gscale};
    pf_compute_parallel(t->c, t->n_params, 4096, adam_range, &j);
    if (st) {
        st->step = t->step, st->lr = lr, st->grad_norm = norm, st->n_tokens = n_tokens;
        st->loss = n_tokens > 0 ? loss_sum / (double)n_tokens : 0.0;
    }
    return PF_OK;
}
