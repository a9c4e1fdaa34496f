/* Minimal test harness: CHECK records a pass or a failure (with file:line and a message);
 * TEST_MAIN ends by printing "N passed, N failed" and returns non-zero on any failure. */
#ifndef PF_TESTING_H
#define PF_TESTING_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "phiforge.h"

typedef struct pf_test { int passed, failed; } pf_test;

#define CHECK(T, cond, ...)                                                            \
    do {                                                                               \
        if (cond) { (T)->passed++; }                                                   \
        else {                                                                         \
            (T)->failed++;                                                             \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);            \
            fprintf(stderr, __VA_ARGS__);                                              \
            fputc('\n', stderr);                                                       \
        }                                                                              \
    } while (0)

#define TEST_REPORT(T) (printf("%d passed, %d failed\n", (T)->passed, (T)->failed), (T)->failed ? 1 : 0)

/* Test data lives in tests/data (copied from ../shared/golden); big files may be read from
 * ../shared/golden when present. Both helpers return a malloc'd buffer and its size. */
void *pf_test_read_file(const char *path, size_t *size);
/* Runs a shell command, captures its stdout (cap - 1 bytes at most, NUL-terminated; out may be
 * NULL), reads the pipe to the end, and returns the exit status (-1 when it did not exit). */
int pf_test_run(const char *cmd, char *out, size_t cap);
/* Returns the first existing path of tests/data/NAME, ../shared/golden/SUBDIR/NAME into buf,
 * or NULL when neither exists. */
const char *pf_test_data_path(char *buf, size_t cap, const char *subdir, const char *name);

/* Token ids (whitespace-separated) of tests/data/NAME or ../shared/golden/models/NAME; returns
 * how many were read (0 when the file is absent). */
int pf_test_read_ids(const char *name, int32_t *ids, int cap);
/* Exactly `count` floats of tests/data/NAME or ../shared/golden/models/NAME; NULL when absent or
 * of another size. */
float *pf_test_read_golden_f32(const char *name, size_t count);

/* Deterministic xorshift PRNG for test data. */
typedef struct pf_test_rng { uint64_t s; } pf_test_rng;
static inline uint64_t pf_test_next(pf_test_rng *r) {
    r->s ^= r->s << 13; r->s ^= r->s >> 7; r->s ^= r->s << 17; return r->s;
}
static inline float pf_test_uniform(pf_test_rng *r) { /* [-1, 1) */
    return (float)((pf_test_next(r) >> 40) * (1.0 / 8388608.0)) - 1.0f;
}
float pf_test_gauss(pf_test_rng *r);

/* Logit comparison against a golden row: Pearson correlation, max |a - b| relative to b's range,
 * and both argmaxes. */
typedef struct pf_logit_stats {
    double corr, rel;
    int argmax_a, argmax_b;
} pf_logit_stats;
pf_logit_stats pf_test_logit_row(const float *a, const float *b, int n);
/* Per-position checks of got against want (n_pos rows of n_vocab): correlation >= min_corr,
 * relative max diff <= max_rel, and equal argmax when asked; prints the worst figures. */
void pf_test_compare_logits(pf_test *t, const char *what, const float *got, const float *want, int n_pos, int n_vocab,
                            double min_corr, double max_rel, bool argmax);

/* A context of n_ctx positions (n_batch 0: default) with a kv-type cache on `threads` threads;
 * a failure is recorded in t and gives NULL. */
pf_context *pf_test_make_ctx(pf_test *t, const pf_model *m, int64_t n_ctx, int64_t n_batch, pf_type kv, int threads);
/* Logits of every position of ids[0..n), one batch from position 0 (malloc'd n × n_vocab;
 * NULL, recorded in t, on failure). */
float *pf_test_batch_logits(pf_test *t, pf_context *ctx, const int32_t *ids, int n);

#endif
