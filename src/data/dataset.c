/* Dataset loading: lines -> samples (data_record.c), seeded shuffle, validation split, then rows
 * (packed best-fit decreasing, or one sample per row). A row stores, per position j of each of
 * its samples, ids = t[j], targets = t[j+1] (or -1 where that token carries no loss),
 * pos = j and seg = the sample's index inside the row. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/data_internal.h"

struct pf_dataset {
    int64_t seq_len;
    int64_t n_rows, n_samples, n_tokens, n_targets, n_truncated, n_dropped;
    int64_t *row_off;                  /* n_rows + 1 */
    int32_t *ids, *targets, *pos, *seg;
};

pf_data_params pf_data_default_params(void) {
    return (pf_data_params){.format = PF_DATA_AUTO, .seq_len = 512, .pack = true, .seed = 42};
}

static const char *const format_names[] = {"auto", "chat", "alpaca", "completion", "text"};

const char *pf_data_format_name(pf_data_format f) {
    return (unsigned)f < sizeof format_names / sizeof *format_names ? format_names[f] : "unknown";
}

int pf_data_format_from_name(const char *name, pf_data_format *out) {
    for (size_t i = 0; name && i < sizeof format_names / sizeof *format_names; i++)
        if (!strcmp(name, format_names[i])) return *out = (pf_data_format)i, PF_OK;
    return PF_ERR_NOT_FOUND;
}

void pf_dataset_free(pf_dataset *d) {
    if (!d) return;
    free(d->row_off), free(d->ids), free(d->targets), free(d->pos), free(d->seg);
    free(d);
}

int64_t pf_dataset_n_rows(const pf_dataset *d) { return d ? d->n_rows : 0; }
int64_t pf_dataset_n_samples(const pf_dataset *d) { return d ? d->n_samples : 0; }
int64_t pf_dataset_n_target_tokens(const pf_dataset *d) { return d ? d->n_targets : 0; }
int64_t pf_dataset_n_tokens(const pf_dataset *d) { return d ? d->n_tokens : 0; }
int64_t pf_dataset_seq_len(const pf_dataset *d) { return d ? d->seq_len : 0; }
int64_t pf_dataset_n_truncated(const pf_dataset *d) { return d ? d->n_truncated : 0; }
int64_t pf_dataset_n_dropped(const pf_dataset *d) { return d ? d->n_dropped : 0; }

int pf_dataset_row(const pf_dataset *d, int64_t i, pf_train_row *out, pf_error *err) {
    if (!d || !out || i < 0 || i >= d->n_rows)
        return pf_error_set(err, PF_ERR_ARG, "pf_dataset_row: row %lld out of range (%lld rows)", (long long)i,
                            (long long)(d ? d->n_rows : 0));
    const int64_t o = d->row_off[i];
    *out = (pf_train_row){.n = d->row_off[i + 1] - o, .ids = d->ids + o, .targets = d->targets + o,
                          .pos = d->pos + o, .seg = d->seg + o};
    return PF_OK;
}

void pf_dataset_epoch_order(const pf_dataset *d, uint64_t seed, int64_t epoch, int64_t *perm) {
    if (!d || !perm) return;
    uint64_t st = seed ^ 0x5EEDull;
    st ^= pf_data_rand(&st) * (uint64_t)(epoch + 1); /* a different stream per epoch */
    pf_data_permutation(perm, d->n_rows, pf_data_rand(&st));
}

/* ---- building rows ------------------------------------------------------------------------ */

/* Positions sample k contributes: L - 1 for L tokens, at most seq_len. */
static int64_t sample_positions(const pf_samples *s, int64_t k, int64_t seq_len) {
    const int64_t L = s->start[k + 1] - s->start[k];
    const int64_t n = L - 1;
    return n > seq_len ? seq_len : n;
}

static bool sample_has_target(const pf_samples *s, int64_t k, int64_t n) {
    for (int64_t j = 1; j <= n; j++)
        if (s->loss[s->start[k] + j]) return true;
    return false;
}

typedef struct row_plan {
    int64_t *sample;   /* samples in row order                         */
    int64_t *row_of;   /* row index of each entry of `sample`          */
    int64_t n, n_rows;
} row_plan;

/* Best-fit decreasing: longest samples first, each into the open row whose free space fits it
 * most tightly (bucket lists by free space, so each placement scans at most seq_len buckets). */
typedef struct bfd_cmp_item { int64_t len, order, sample; } bfd_item;

static int cmp_len_desc(const void *a, const void *b) {
    const bfd_item *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int plan_rows(const pf_samples *s, const int64_t *keep, int64_t n, int64_t seq_len, bool pack, row_plan *pl,
                     pf_error *err) {
    pl->sample = malloc((size_t)(n ? n : 1) * sizeof *pl->sample);
    pl->row_of = malloc((size_t)(n ? n : 1) * sizeof *pl->row_of);
    bfd_item *it = pack ? malloc((size_t)(n ? n : 1) * sizeof *it) : NULL;
    int64_t *bucket = pack ? malloc((size_t)(seq_len + 1) * sizeof *bucket) : NULL; /* free space -> row list head */
    int64_t *next = pack ? malloc((size_t)(n ? n : 1) * sizeof *next) : NULL;       /* row -> next row, same space */
    int64_t *space = pack ? malloc((size_t)(n ? n : 1) * sizeof *space) : NULL;
    if (!pl->sample || !pl->row_of || (pack && (!it || !bucket || !next || !space))) {
        free(it), free(bucket), free(next), free(space);
        return pf_error_set(err, PF_ERR_NOMEM, "dataset: out of memory packing %lld samples", (long long)n);
    }
    pl->n = n;
    if (!pack) {
        for (int64_t i = 0; i < n; i++) pl->sample[i] = keep[i], pl->row_of[i] = i;
        pl->n_rows = n;
        return PF_OK;
    }
    for (int64_t i = 0; i < n; i++) it[i] = (bfd_item){sample_positions(s, keep[i], seq_len), i, keep[i]};
    qsort(it, (size_t)n, sizeof *it, cmp_len_desc);
    for (int64_t b = 0; b <= seq_len; b++) bucket[b] = -1;
    int64_t n_rows = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t len = it[i].len;
        int64_t row = -1;
        for (int64_t b = len; b <= seq_len && row < 0; b++)
            if (bucket[b] >= 0) row = bucket[b], bucket[b] = next[row];
        if (row < 0) row = n_rows++, space[row] = seq_len;
        space[row] -= len;
        next[row] = bucket[space[row]], bucket[space[row]] = row;
        pl->row_of[i] = row, pl->sample[i] = it[i].sample;
    }
    pl->n_rows = n_rows;
    free(it), free(bucket), free(next), free(space);
    return PF_OK;
}

static int build(const pf_samples *s, const int64_t *idx, int64_t n, const uint8_t *truncated, const pf_data_params *p,
                 pf_dataset **out, pf_error *err) {
    pf_dataset *d = calloc(1, sizeof *d);
    int64_t *keep = malloc((size_t)(n ? n : 1) * sizeof *keep);
    row_plan pl = {0};
    int rc = d && keep ? PF_OK : pf_error_set(err, PF_ERR_NOMEM, "dataset: out of memory");
    int64_t n_keep = 0;
    for (int64_t i = 0; rc == PF_OK && i < n; i++) {
        const int64_t k = idx[i], np = sample_positions(s, k, p->seq_len);
        if (np < 1 || !sample_has_target(s, k, np)) {
            d->n_dropped++;
            continue;
        }
        d->n_truncated += truncated[k];
        keep[n_keep++] = k;
    }
    if (rc == PF_OK) rc = plan_rows(s, keep, n_keep, p->seq_len, p->pack, &pl, err);
    if (rc == PF_OK) {
        d->seq_len = p->seq_len, d->n_rows = pl.n_rows, d->n_samples = n_keep;
        /* order entries by row (stable: counting sort on row_of) */
        d->row_off = calloc((size_t)pl.n_rows + 1, sizeof *d->row_off);
        int64_t *cursor = calloc((size_t)pl.n_rows + 1, sizeof *cursor);
        int32_t *nseg = calloc((size_t)pl.n_rows + 1, sizeof *nseg);
        int64_t total = 0;
        for (int64_t i = 0; i < pl.n; i++) total += sample_positions(s, pl.sample[i], p->seq_len);
        d->n_tokens = total;
        const size_t bytes = (size_t)(total ? total : 1) * sizeof(int32_t);
        d->ids = malloc(bytes), d->targets = malloc(bytes), d->pos = malloc(bytes), d->seg = malloc(bytes);
        if (!d->row_off || !cursor || !nseg || !d->ids || !d->targets || !d->pos || !d->seg) {
            rc = pf_error_set(err, PF_ERR_NOMEM, "dataset: out of memory (%lld tokens)", (long long)total);
        } else {
            for (int64_t i = 0; i < pl.n; i++) d->row_off[pl.row_of[i] + 1] += sample_positions(s, pl.sample[i], p->seq_len);
            for (int64_t r = 0; r < pl.n_rows; r++) d->row_off[r + 1] += d->row_off[r], cursor[r] = d->row_off[r];
            for (int64_t i = 0; i < pl.n; i++) {
                const int64_t k = pl.sample[i], r = pl.row_of[i], np = sample_positions(s, k, p->seq_len);
                const int32_t *t = s->tok + s->start[k];
                const uint8_t *l = s->loss + s->start[k];
                const int32_t sg = nseg[r]++;
                for (int64_t j = 0; j < np; j++) {
                    const int64_t o = cursor[r]++;
                    d->ids[o] = t[j];
                    d->targets[o] = l[j + 1] ? t[j + 1] : -1;
                    d->pos[o] = (int32_t)j;
                    d->seg[o] = sg;
                    d->n_targets += l[j + 1] != 0;
                }
            }
        }
        free(cursor), free(nseg);
    }
    free(pl.sample), free(pl.row_of), free(keep);
    if (rc != PF_OK) {
        pf_dataset_free(d);
        return rc;
    }
    *out = d;
    return PF_OK;
}

/* ---- loading ------------------------------------------------------------------------------ */

static bool is_txt(const char *name) {
    const size_t n = strlen(name);
    return n >= 4 && !strcasecmp(name + n - 4, ".txt");
}

static int read_samples(const pf_data_ctx *c, const char *data, size_t size, bool txt, pf_samples *s, pf_error *err) {
    if (size >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3)) data += 3, size -= 3; /* UTF-8 BOM */
    if (txt) return pf_data_text_file(c, data, size, s, err);
    return pf_data_read_lines(c, data, size, c->p->n_threads, s, err);
}

int pf_dataset_load_memory(const char *name, const void *data, size_t size, const pf_tokenizer *tok,
                           const pf_chat_format *fmt, const pf_data_params *p, pf_dataset **train, pf_dataset **val,
                           pf_error *err) {
    if (train) *train = NULL;
    if (val) *val = NULL;
    if (!name || (!data && size) || !tok || !p || !train)
        return pf_error_set(err, PF_ERR_ARG, "pf_dataset_load: NULL argument");
    if (p->seq_len < 2 || p->seq_len > (1 << 24))
        return pf_error_set(err, PF_ERR_ARG, "dataset: seq_len %lld out of range [2, 16777216]", (long long)p->seq_len);
    if (!(p->val_fraction >= 0.0 && p->val_fraction < 1.0))
        return pf_error_set(err, PF_ERR_ARG, "dataset: val_fraction %g out of range [0, 1)", p->val_fraction);
    if ((unsigned)p->format > PF_DATA_TEXT)
        return pf_error_set(err, PF_ERR_ARG, "dataset: unknown format %d", (int)p->format);
    pf_data_ctx c = {.name = name, .tok = tok, .fmt = fmt ? *fmt : (pf_chat_format){.system = true}, .p = p,
                     .assistant_id = pf_token_lookup(tok, "<|assistant|>", 13)};
    const bool txt = p->format == PF_DATA_AUTO ? is_txt(name) : false;
    if (!txt && p->format != PF_DATA_TEXT && c.assistant_id < 0 && p->format != PF_DATA_AUTO)
        return pf_error_set(err, PF_ERR_UNSUPPORTED, "%s: the tokenizer has no <|assistant|> token (not Phi-3)", name);
    pf_samples s = {0};
    int rc = read_samples(&c, data, size, txt, &s, err);
    if (rc == PF_OK && s.n == 0) rc = pf_error_set(err, PF_ERR_FORMAT, "%s: no samples", name);
    int64_t *perm = rc == PF_OK ? malloc((size_t)s.n * sizeof *perm) : NULL;
    uint8_t *trunc = rc == PF_OK ? malloc((size_t)s.n) : NULL;
    if (rc == PF_OK && (!perm || !trunc)) rc = pf_error_set(err, PF_ERR_NOMEM, "dataset: out of memory");
    if (rc == PF_OK) {
        for (int64_t k = 0; k < s.n; k++) trunc[k] = s.start[k + 1] - s.start[k] > p->seq_len + 1;
        pf_data_permutation(perm, s.n, p->seed);
        int64_t n_val = (int64_t)(p->val_fraction * (double)s.n + 0.5);
        if (p->val_fraction > 0 && n_val == 0 && s.n >= 2) n_val = 1;
        if (n_val >= s.n) n_val = s.n - 1;
        rc = build(&s, perm + n_val, s.n - n_val, trunc, p, train, err);
        if (rc == PF_OK && (*train)->n_rows == 0)
            rc = pf_error_set(err, PF_ERR_FORMAT, "%s: no training sample has a target token (%lld dropped)", name,
                              (long long)(*train)->n_dropped);
        if (rc == PF_OK && val) rc = build(&s, perm, n_val, trunc, p, val, err);
        if (rc != PF_OK) {
            pf_dataset_free(*train), *train = NULL;
            if (val) pf_dataset_free(*val), *val = NULL;
        }
    }
    free(perm), free(trunc);
    pf_samples_free(&s);
    return rc;
}

int pf_dataset_load(const char *path, const pf_tokenizer *tok, const pf_chat_format *fmt, const pf_data_params *p,
                    pf_dataset **train, pf_dataset **val, pf_error *err) {
    if (!path) return pf_error_set(err, PF_ERR_ARG, "pf_dataset_load: NULL path");
    FILE *f = fopen(path, "rb");
    if (!f) return pf_error_set(err, PF_ERR_IO, "%s: cannot open", path);
    struct stat st;
    char *buf = NULL;
    int rc = PF_OK;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) rc = pf_error_set(err, PF_ERR_IO, "%s: not a regular file", path);
    else if (!(buf = malloc((size_t)st.st_size + 1))) rc = pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory", path);
    else if (st.st_size && fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
        rc = pf_error_set(err, PF_ERR_IO, "%s: read failed", path);
    fclose(f);
    if (rc == PF_OK) rc = pf_dataset_load_memory(path, buf, (size_t)st.st_size, tok, fmt, p, train, val, err);
    free(buf);
    return rc;
}
