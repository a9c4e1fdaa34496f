/* JSONL records -> samples on several threads: the lines are split into one contiguous range
 * per thread, each thread tokenizes its range into its own pf_samples (the tokenizer is
 * immutable and shared), and the parts are concatenated in order, so the result does not depend
 * on the thread count. On malformed input the error of the earliest failing range is reported,
 * which is the first bad line of the file (every range stops at its own first error). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/data_internal.h"

typedef struct line {
    const char *p;
    size_t len;
    int64_t ln;    /* 1-based line number in the file */
} line;

typedef struct part {
    pf_samples s;
    pf_error err;
    int rc;
} part;

typedef struct job {
    const pf_data_ctx *c;
    const line *lines;
    int64_t n_lines;
    part *parts;
} job;

static void work(void *ctx, int ith, int nth) {
    job *j = ctx;
    const int64_t i0 = j->n_lines * ith / nth, i1 = j->n_lines * (ith + 1) / nth;
    part *pt = &j->parts[ith];
    for (int64_t i = i0; i < i1 && pt->rc == PF_OK; i++)
        pt->rc = pf_data_record(j->c, j->lines[i].p, j->lines[i].len, j->lines[i].ln, &pt->s, &pt->err);
}

/* Non-blank lines, trailing CR / blanks trimmed. */
static int split_lines(const char *data, size_t size, line **out, int64_t *n_out, pf_error *err) {
    int64_t n = 0, cap = 1024, ln = 0;
    line *v = malloc((size_t)cap * sizeof *v);
    if (!v) return pf_error_set(err, PF_ERR_NOMEM, "dataset: out of memory");
    for (size_t i = 0; i < size;) {
        const char *nl = memchr(data + i, '\n', size - i);
        const size_t end = nl ? (size_t)(nl - data) : size;
        const char *p = data + i;
        size_t len = end - i, lead = 0;
        i = end + 1, ln++;
        while (len > 0 && (p[len - 1] == '\r' || p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
        while (lead < len && (p[lead] == ' ' || p[lead] == '\t')) lead++;
        if (lead == len) continue;
        if (n == cap) {
            line *g = realloc(v, (size_t)(cap *= 2) * sizeof *v);
            if (!g) return free(v), pf_error_set(err, PF_ERR_NOMEM, "dataset: out of memory");
            v = g;
        }
        v[n++] = (line){p, len, ln};
    }
    *out = v, *n_out = n;
    return PF_OK;
}

/* Appends the samples of `from` to `to`. */
static int append(pf_samples *to, const pf_samples *from, pf_error *err) {
    if (from->n == 0) return PF_OK;
    const int64_t nt = to->n_tok + from->n_tok, ns = to->n + from->n;
    int32_t *tok = realloc(to->tok, (size_t)nt * sizeof *tok);
    if (tok) to->tok = tok;
    uint8_t *loss = tok ? realloc(to->loss, (size_t)nt) : NULL;
    if (loss) to->loss = loss;
    int64_t *st = loss ? realloc(to->start, (size_t)(ns + 1) * sizeof *st) : NULL;
    if (!st) return pf_error_set(err, PF_ERR_NOMEM, "dataset: out of memory (%lld tokens)", (long long)nt);
    if (to->cap == 0) st[0] = 0;
    to->start = st;
    memcpy(to->tok + to->n_tok, from->tok, (size_t)from->n_tok * sizeof *tok);
    memcpy(to->loss + to->n_tok, from->loss, (size_t)from->n_tok);
    for (int64_t k = 1; k <= from->n; k++) st[to->n + k] = to->n_tok + from->start[k];
    to->n = ns, to->n_tok = nt, to->cap = ns + 1, to->cap_tok = nt; /* exact sizes */
    return PF_OK;
}

int pf_data_read_lines(const pf_data_ctx *c, const char *data, size_t size, int n_threads, pf_samples *s, pf_error *err) {
    line *lines = NULL;
    int64_t n = 0;
    int rc = split_lines(data, size, &lines, &n, err);
    if (rc != PF_OK) return rc;
    if (n_threads <= 0) n_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n_threads > 64) n_threads = 64;
    if (n_threads > n / 16) n_threads = (int)(n / 16); /* threads only pay off with some lines each */
    if (n_threads < 1) n_threads = 1;
    pf_pool *pool = NULL;
    part *parts = calloc((size_t)n_threads, sizeof *parts);
    if (!parts) rc = pf_error_set(err, PF_ERR_NOMEM, "dataset: out of memory");
    if (rc == PF_OK && n_threads > 1) rc = pf_pool_create(n_threads, &pool, err);
    if (rc == PF_OK) {
        job j = {c, lines, n, parts};
        if (pool) pf_pool_run(pool, work, &j);
        else work(&j, 0, 1);
        for (int t = 0; t < n_threads && rc == PF_OK; t++) {
            if (parts[t].rc != PF_OK) {
                rc = parts[t].rc;
                if (err) *err = parts[t].err;
            } else {
                rc = append(s, &parts[t].s, err);
            }
        }
    }
    for (int t = 0; parts && t < n_threads; t++) pf_samples_free(&parts[t].s);
    free(parts), free(lines);
    pf_pool_free(pool);
    return rc;
}
