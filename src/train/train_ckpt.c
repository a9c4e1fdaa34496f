/* Trainer checkpoints: everything a resumed run needs to continue exactly as an uninterrupted
 * one — adapters, AdamW moments m and v, the optimizer step, the row counter that salts the
 * dropout masks, and the caller's data position. Layout (little-endian, as this machine):
 *   "PFTRAIN1" | header (ckpt_header) | params | m | v  (n_params f32 each) | "PFTREND1"
 * written to PATH.tmp, fsync'd, then renamed over PATH, so a crash never leaves half a file. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "train/trainer.h"

static const char k_magic[8] = {'P', 'F', 'T', 'R', 'A', 'I', 'N', '1'};
static const char k_end[8] = {'P', 'F', 'T', 'R', 'E', 'N', 'D', '1'};

typedef struct ckpt_header {
    int64_t n_layer, n_embd, n_vocab, rank, targets, n_params; /* shape: must match to load */
    int64_t step, n_micro;
    pf_train_position pos;
} ckpt_header;

int pf_trainer_save(const pf_trainer *t, const char *path, const pf_train_position *pos, pf_error *err) {
    if (t == NULL || path == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_trainer_save: NULL argument");
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return pf_error_set(err, PF_ERR_ARG, "pf_trainer_save: path too long: %s", path);
    FILE *f = fopen(tmp, "wb");
    if (f == NULL) return pf_error_set(err, PF_ERR_IO, "pf_trainer_save: cannot create %s: %s", tmp, strerror(errno));
    ckpt_header h = {t->hp.n_layer, t->E, t->V, t->p.rank, t->p.targets, t->n_params, t->step, t->n_micro, {0}};
    if (pos) h.pos = *pos;
    const size_t n = (size_t)t->n_params;
    bool ok = fwrite(k_magic, 8, 1, f) == 1 && fwrite(&h, sizeof h, 1, f) == 1 &&
              fwrite(t->params, sizeof(float), n, f) == n && fwrite(t->adam_m, sizeof(float), n, f) == n &&
              fwrite(t->adam_v, sizeof(float), n, f) == n && fwrite(k_end, 8, 1, f) == 1;
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        const int e = errno;
        unlink(tmp);
        return pf_error_set(err, PF_ERR_IO, "pf_trainer_save: writing %s failed: %s", path, strerror(e));
    }
    return PF_OK;
}

/* Reads into the trainer only after the whole file checked out (a bad file changes nothing). */
int pf_trainer_load(pf_trainer *t, const char *path, pf_train_position *pos, pf_error *err) {
    if (t == NULL || path == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_trainer_load: NULL argument");
    FILE *f = fopen(path, "rb");
    if (f == NULL) return pf_error_set(err, PF_ERR_IO, "pf_trainer_load: cannot open %s: %s", path, strerror(errno));
    char magic[8];
    ckpt_header h;
    int rc = PF_OK;
    if (fread(magic, 8, 1, f) != 1 || memcmp(magic, k_magic, 8) != 0)
        rc = pf_error_set(err, PF_ERR_FORMAT, "pf_trainer_load: %s: not a phiforge training checkpoint (magic)", path);
    else if (fread(&h, sizeof h, 1, f) != 1)
        rc = pf_error_set(err, PF_ERR_FORMAT, "pf_trainer_load: %s: truncated header", path);
    else {
        const struct { const char *name; int64_t got, want; } chk[] = {
            {"n_layer", h.n_layer, t->hp.n_layer}, {"n_embd", h.n_embd, t->E}, {"n_vocab", h.n_vocab, t->V},
            {"rank", h.rank, t->p.rank}, {"targets", h.targets, t->p.targets}, {"n_params", h.n_params, t->n_params}};
        for (size_t i = 0; i < sizeof chk / sizeof chk[0] && rc == PF_OK; i++)
            if (chk[i].got != chk[i].want)
                rc = pf_error_set(err, PF_ERR_FORMAT, "pf_trainer_load: %s: %s is %lld, this trainer has %lld", path,
                                  chk[i].name, (long long)chk[i].got, (long long)chk[i].want);
        if (rc == PF_OK && (h.step < 0 || h.n_micro < 0))
            rc = pf_error_set(err, PF_ERR_FORMAT, "pf_trainer_load: %s: negative step or row counter", path);
    }
    /* stage into the gradient buffer (zero between steps anyway), then m and v in place */
    const size_t n = (size_t)t->n_params;
    if (rc == PF_OK) {
        const bool ok = fread(t->grads, sizeof(float), n, f) == n;
        if (!ok) rc = pf_error_set(err, PF_ERR_FORMAT, "pf_trainer_load: %s: truncated adapter weights", path);
    }
    long moments = ftell(f);
    if (rc == PF_OK) { /* check the length and the end marker before touching m and v */
        if (fseek(f, (long)(2 * n * sizeof(float)), SEEK_CUR) != 0 || fread(magic, 8, 1, f) != 1 ||
            memcmp(magic, k_end, 8) != 0 || fgetc(f) != EOF)
            rc = pf_error_set(err, PF_ERR_FORMAT, "pf_trainer_load: %s: truncated or trailing data (end marker)", path);
        else if (fseek(f, moments, SEEK_SET) != 0 || fread(t->adam_m, sizeof(float), n, f) != n ||
                 fread(t->adam_v, sizeof(float), n, f) != n)
            rc = pf_error_set(err, PF_ERR_IO, "pf_trainer_load: %s: read failed", path);
    }
    fclose(f);
    if (rc != PF_OK) {
        memset(t->grads, 0, n * sizeof(float));
        return rc;
    }
    memcpy(t->params, t->grads, n * sizeof(float));
    memset(t->grads, 0, n * sizeof(float));
    t->step = h.step, t->n_micro = h.n_micro;
    if (pos) *pos = h.pos;
    return PF_OK;
}
