/* Thread pool: every ith in 0..nth-1 runs exactly once per pf_pool_run, the call returns only
 * after all of them finished (their writes are visible), across many runs, several thread
 * counts (including oversubscription), and runs spaced out enough for workers to fall asleep. */
#include <stdatomic.h>
#include <time.h>

#include "testing.h"

#define MAX_TH 16

typedef struct run_ctx {
    atomic_int count[MAX_TH]; /* times each ith ran in this run   */
    int plain[MAX_TH];        /* non-atomic writes, read after run */
    atomic_int bad_nth;       /* calls that saw the wrong nth      */
    int expect_nth;
    int stamp;
} run_ctx;

static void task(void *vctx, int ith, int nth) {
    run_ctx *c = vctx;
    if (nth != c->expect_nth || ith < 0 || ith >= MAX_TH) {
        atomic_fetch_add(&c->bad_nth, 1);
        return;
    }
    atomic_fetch_add(&c->count[ith], 1);
    c->plain[ith] = c->stamp;
}

/* Some threads take longer, so the caller and the others must really wait. */
static void slow_task(void *vctx, int ith, int nth) {
    if (ith % 2 == 1) {
        struct timespec ts = {0, 200000}; /* 0.2 ms */
        nanosleep(&ts, NULL);
    }
    task(vctx, ith, nth);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Runs `runs` times; returns the number of runs where some ith did not run exactly once or a
 * plain write was not visible after the run. */
static int check_runs(pf_pool *p, int runs, pf_task_fn fn, int gap_ms) {
    int nth = pf_pool_n_threads(p), bad = 0;
    run_ctx c;
    memset(&c, 0, sizeof c);
    c.expect_nth = nth;
    for (int r = 0; r < runs; r++) {
        for (int i = 0; i < MAX_TH; i++) atomic_store(&c.count[i], 0);
        c.stamp = r + 1;
        pf_pool_run(p, fn, &c);
        int ok = atomic_load(&c.bad_nth) == 0;
        for (int i = 0; i < nth; i++) ok &= atomic_load(&c.count[i]) == 1 && c.plain[i] == r + 1;
        for (int i = nth; i < MAX_TH; i++) ok &= atomic_load(&c.count[i]) == 0;
        bad += !ok;
        if (gap_ms) sleep_ms(gap_ms);
    }
    return bad;
}

int main(void) {
    pf_test T = {0};
    pf_error err;
    const int counts[] = {1, 2, 3, 4, 7, 16};
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        int n = counts[k];
        pf_pool *p = NULL;
        int rc = pf_pool_create(n, &p, &err);
        CHECK(&T, rc == PF_OK && p != NULL, "create %d threads: %s", n, err.msg);
        if (rc != PF_OK) continue;
        CHECK(&T, pf_pool_n_threads(p) == n, "n_threads %d != %d", pf_pool_n_threads(p), n);
        int runs = n <= 4 ? 20000 : 2000;
        int bad = check_runs(p, runs, task, 0);
        CHECK(&T, bad == 0, "%d threads: %d of %d fast runs wrong", n, bad, runs);
        bad = check_runs(p, 50, slow_task, 0);
        CHECK(&T, bad == 0, "%d threads: %d of 50 slow runs wrong", n, bad);
        /* gaps longer than the spin window: workers go to sleep between runs */
        bad = check_runs(p, 8, task, 3);
        CHECK(&T, bad == 0, "%d threads: %d of 8 spaced runs wrong", n, bad);
        pf_pool_free(p);
    }

    /* default size = online CPUs; a NULL pool runs the task inline as a single thread */
    pf_pool *p = NULL;
    CHECK(&T, pf_pool_create(0, &p, &err) == PF_OK && pf_pool_n_threads(p) >= 1, "default pool: %s", err.msg);
    if (p) CHECK(&T, check_runs(p, 1000, task, 0) == 0, "default pool runs");
    pf_pool_free(p);
    CHECK(&T, pf_pool_n_threads(NULL) == 1, "NULL pool has one thread");
    CHECK(&T, check_runs(NULL, 3, task, 0) == 0, "NULL pool runs inline");
    pf_pool_free(NULL);

    /* bad arguments */
    CHECK(&T, pf_pool_create(4, NULL, &err) == PF_ERR_ARG, "NULL out");
    CHECK(&T, pf_pool_create(100000, &p, &err) == PF_ERR_ARG && p == NULL, "too many threads");

    /* create / free churn, with and without a run in between */
    int churn_bad = 0;
    for (int i = 0; i < 50; i++) {
        pf_pool *q = NULL;
        if (pf_pool_create(1 + i % 4, &q, &err) != PF_OK) { churn_bad++; continue; }
        if (i % 2) churn_bad += check_runs(q, 3, task, 0);
        pf_pool_free(q);
    }
    CHECK(&T, churn_bad == 0, "create/free churn: %d failures", churn_bad);
    return TEST_REPORT(&T);
}
