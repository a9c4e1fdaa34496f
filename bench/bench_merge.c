/* Merge benchmark: a random rank-r adapter on every linear weight of MODEL (attn_qkv, attn_output,
 * ffn_up, ffn_down; not output), saved as an F32 LoRA GGUF, then merged into MODEL keeping its
 * types. Prints the merge time, the input rate and the peak RSS, which stays near one chunk of
 * rows + the adapter however large the model is (the merge streams tensor by tensor).
 *   build/bench/bench_merge MODEL.gguf [RANK] [THREADS] [OUT.gguf] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "phiforge.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_merge MODEL.gguf [RANK] [THREADS] [OUT.gguf]\n");
        return 1;
    }
    const char *model = argv[1], *out = argc > 4 ? argv[4] : "/tmp/bench_merge.out.gguf";
    const int64_t r = argc > 2 ? atoll(argv[2]) : 16;
    const int threads = argc > 3 ? atoi(argv[3]) : 0;
    pf_error e = {0};
    pf_gguf *g = NULL;
    if (pf_gguf_open(model, &g, &e) != PF_OK) return fprintf(stderr, "%s\n", e.msg), 1;
    static const char *const kinds[4] = {"attn_qkv", "attn_output", "ffn_up", "ffn_down"};
    pf_lora_weights w = {0};
    w.alpha = (float)(2 * r), w.rank = (int32_t)r;
    uint64_t s = 88172645463325252ull;
    for (int64_t i = 0; i < pf_gguf_n_tensors(g); i++) {
        const pf_tensor_info *t = pf_gguf_tensor(g, i);
        bool lin = false;
        for (int k = 0; k < 4; k++) lin |= strstr(t->name, kinds[k]) && strstr(t->name, ".weight");
        if (!lin || t->n_dims != 2) continue;
        w.pairs = realloc(w.pairs, (size_t)(w.n + 1) * sizeof *w.pairs);
        pf_lora_pair *p = &w.pairs[w.n++];
        memset(p, 0, sizeof *p);
        snprintf(p->base, sizeof p->base, "%s", t->name);
        p->n_in = t->ne[0], p->n_out = t->ne[1], p->r = r;
        p->a = malloc((size_t)(r * p->n_in) * sizeof(float)), p->b = malloc((size_t)(r * p->n_out) * sizeof(float));
        for (int64_t k = 0; k < r * p->n_in; k++) s ^= s << 13, s ^= s >> 7, s ^= s << 17, p->a[k] = (float)(s >> 40) * 0x1p-30f - 0.0078f;
        for (int64_t k = 0; k < r * p->n_out; k++) s ^= s << 13, s ^= s >> 7, s ^= s << 17, p->b[k] = (float)(s >> 40) * 0x1p-30f - 0.0078f;
    }
    const double in_bytes = (double)pf_gguf_file_size(g);
    pf_gguf_close(g);
    const char *ad = "/tmp/bench_merge.adapter.gguf";
    if (pf_lora_save_gguf(&w, NULL, ad, PF_TYPE_F32, &e) != PF_OK) return fprintf(stderr, "%s\n", e.msg), 1;
    printf("adapter: %lld pairs, rank %lld\n", (long long)w.n, (long long)r);
    pf_lora_weights_clear(&w);
    struct rusage ru0;
    getrusage(RUSAGE_SELF, &ru0);
    pf_merge_params mp = {.n_threads = threads};
    pf_merge_stats st;
    const double t0 = now_s();
    if (pf_lora_merge(model, &ad, NULL, 1, out, &mp, &st, &e) != PF_OK) return fprintf(stderr, "%s\n", e.msg), 1;
    const double secs = now_s() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("merge: %.2f GB in %.1f s (%.0f MB/s), %lld of %lld tensors, peak RSS %.0f MB\n", in_bytes / 1e9, secs,
           in_bytes / 1e6 / secs, (long long)st.n_merged, (long long)st.n_tensors, (double)ru.ru_maxrss / 1024);
    remove(ad);
    return 0;
}
