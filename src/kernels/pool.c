/* Persistent pthread pool. pf_pool_run publishes (fn, ctx) and bumps a generation counter;
 * workers spin on the counter for a short while (µs-level dispatch while the pool is busy),
 * then sleep on a condition variable. The caller runs ith 0 and waits for the others the
 * same way (spin, then sleep). Nothing is allocated per run.
 *
 * Lost wake-ups are excluded Dekker-style with sequentially consistent atomics: a sleeper
 * announces itself (n_sleeping / caller_sleeping) before re-checking the condition under the
 * mutex, and a waker changes the condition before reading the announcement; if it sees one,
 * it takes the mutex before signalling, so the sleeper is already waiting. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "phiforge.h"

#define POOL_MAX_THREADS 512
#define POOL_SPIN_NS 1000000LL /* how long an idle thread spins before sleeping (1 ms) */

typedef struct pool_worker {
    struct pf_pool *pool;
    int ith;
} pool_worker;

struct pf_pool {
    int n;                      /* threads in total, caller included   */
    int n_spawned;              /* workers actually started            */
    bool spin;                  /* false when oversubscribed: sleep at once */
    pthread_t *threads;         /* n - 1                               */
    pool_worker *workers;       /* n - 1                               */
    pthread_mutex_t mu;
    pthread_cond_t cv_work;     /* workers wait here for a new generation */
    pthread_cond_t cv_done;     /* the caller waits here for pending == 0 */
    pf_task_fn fn;              /* published before gen is bumped      */
    void *ctx;
    atomic_uint gen;            /* bumped once per run (and at shutdown) */
    atomic_int pending;         /* workers still running this generation */
    atomic_int n_sleeping;      /* workers blocked (or about to block) on cv_work */
    atomic_int caller_sleeping; /* caller blocked (or about to block) on cv_done */
    atomic_bool stop;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Spins until gen != seen (returns the new value) or the spin budget runs out (returns seen). */
static unsigned spin_for_gen(pf_pool *p, unsigned seen) {
    if (!p->spin) return seen;
    int64_t deadline = 0;
    for (unsigned it = 1;; it++) {
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen) return g;
        cpu_relax();
        if ((it & 255) == 0) {
            int64_t t = now_ns();
            if (deadline == 0) deadline = t + POOL_SPIN_NS;
            else if (t >= deadline) return seen;
        }
    }
}

static void *worker_main(void *arg) {
    pool_worker *w = arg;
    pf_pool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned g = spin_for_gen(p, seen);
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->n_sleeping, 1);
            while ((g = atomic_load(&p->gen)) == seen) pthread_cond_wait(&p->cv_work, &p->mu);
            atomic_fetch_sub(&p->n_sleeping, 1);
            pthread_mutex_unlock(&p->mu);
        }
        seen = g;
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        p->fn(p->ctx, w->ith, p->n);
        if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_sleeping)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

/* Bumps the generation and wakes sleeping workers, if any. */
static void publish(pf_pool *p) {
    atomic_fetch_add(&p->gen, 1);
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv_work);
        pthread_mutex_unlock(&p->mu);
    }
}

static void shutdown_workers(pf_pool *p) {
    atomic_store(&p->stop, true);
    publish(p);
    for (int i = 0; i < p->n_spawned; i++) pthread_join(p->threads[i], NULL);
    p->n_spawned = 0;
}

int pf_pool_create(int n_threads, pf_pool **out, pf_error *err) {
    if (out == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_pool_create: out is NULL");
    *out = NULL;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1) ncpu = 1;
    if (n_threads <= 0) n_threads = (int)(ncpu < POOL_MAX_THREADS ? ncpu : POOL_MAX_THREADS);
    if (n_threads > POOL_MAX_THREADS)
        return pf_error_set(err, PF_ERR_ARG, "pf_pool_create: %d threads requested, at most %d", n_threads,
                            POOL_MAX_THREADS);
    pf_pool *p = calloc(1, sizeof *p);
    if (p == NULL) return pf_error_set(err, PF_ERR_NOMEM, "pf_pool_create: out of memory");
    p->n = n_threads;
    p->spin = n_threads <= ncpu;
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->n_sleeping, 0);
    atomic_init(&p->caller_sleeping, 0);
    atomic_init(&p->stop, false);
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return pf_error_set(err, PF_ERR_NOMEM, "pf_pool_create: pthread_mutex_init failed");
    }
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    int nw = n_threads - 1;
    if (nw > 0) {
        p->threads = calloc((size_t)nw, sizeof *p->threads);
        p->workers = calloc((size_t)nw, sizeof *p->workers);
        if (p->threads == NULL || p->workers == NULL) {
            pf_pool_free(p);
            return pf_error_set(err, PF_ERR_NOMEM, "pf_pool_create: out of memory");
        }
    }
    for (int i = 0; i < nw; i++) {
        p->workers[i].pool = p;
        p->workers[i].ith = i + 1;
        int rc = pthread_create(&p->threads[i], NULL, worker_main, &p->workers[i]);
        if (rc != 0) {
            pf_pool_free(p);
            return pf_error_set(err, rc == EAGAIN ? PF_ERR_NOMEM : PF_ERR_UNSUPPORTED,
                                "pf_pool_create: pthread_create failed for thread %d of %d: %s", i + 1,
                                n_threads, strerror(rc));
        }
        p->n_spawned++;
    }
    *out = p;
    return PF_OK;
}

void pf_pool_free(pf_pool *p) {
    if (p == NULL) return;
    shutdown_workers(p);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_done);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p->workers);
    free(p);
}

int pf_pool_n_threads(const pf_pool *p) { return p ? p->n : 1; }

void pf_pool_run(pf_pool *p, pf_task_fn fn, void *ctx) {
    if (p == NULL || p->n <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    publish(p); /* seq_cst bump: orders fn, ctx and pending before it */
    fn(ctx, 0, p->n);

    /* Wait for the workers: spin first, then sleep. */
    if (p->spin) {
        int64_t deadline = 0;
        for (unsigned it = 1; atomic_load_explicit(&p->pending, memory_order_acquire) != 0; it++) {
            cpu_relax();
            if ((it & 255) == 0) {
                int64_t t = now_ns();
                if (deadline == 0) deadline = t + POOL_SPIN_NS;
                else if (t >= deadline) break;
            }
        }
    }
    if (atomic_load(&p->pending) != 0) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->caller_sleeping, 1);
        while (atomic_load(&p->pending) != 0) pthread_cond_wait(&p->cv_done, &p->mu);
        atomic_store(&p->caller_sleeping, 0);
        pthread_mutex_unlock(&p->mu);
    }
}
