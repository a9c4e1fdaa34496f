/* Minimal protobuf reader for SentencePiece's tokenizer.model (ModelProto). Wire format: each
 * field is a varint key (field_number << 3 | wire_type) then a value — wire type 0 a varint,
 * 1 eight bytes, 2 a varint length and that many bytes, 5 four bytes (3/4, the deprecated groups,
 * are refused). Only what the converter needs is decoded:
 *   ModelProto    1: repeated SentencePiece pieces, 2: TrainerSpec trainer_spec
 *   SentencePiece 1: string piece, 2: float score, 3: Type type (default NORMAL = 1)
 *   TrainerSpec   40: unk_id (0), 41: bos_id (1), 42: eos_id (2), 43: pad_id (-1)
 * and every other field is skipped by its wire type, so newer files still parse. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/convert_internal.h"

typedef struct pb {
    const uint8_t *p, *end, *base;
    const char *path;
    pf_error *err;
} pb;

static int pb_fail(pb *b, const char *what) {
    return pf_error_set(b->err, PF_ERR_FORMAT, "tokenizer.model %s: %s at byte %zu", b->path, what, (size_t)(b->p - b->base));
}

static int pb_varint(pb *b, uint64_t *v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end) return pb_fail(b, "truncated varint");
        const uint8_t c = *b->p++;
        r |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = r;
            return PF_OK;
        }
    }
    return pb_fail(b, "varint longer than 10 bytes");
}

/* Skips the value of a field of wire type wt; for wt 2 also returns the payload. */
static int pb_value(pb *b, int wt, const uint8_t **payload, size_t *len) {
    uint64_t v;
    switch (wt) {
    case 0: return pb_varint(b, &v);
    case 1:
    case 5: {
        const size_t n = wt == 1 ? 8 : 4;
        if ((size_t)(b->end - b->p) < n) return pb_fail(b, "truncated fixed-size field");
        if (payload) *payload = b->p, *len = n;
        b->p += n;
        return PF_OK;
    }
    case 2: {
        int rc = pb_varint(b, &v);
        if (rc != PF_OK) return rc;
        if (v > (uint64_t)(b->end - b->p)) return pb_fail(b, "length-delimited field runs past the end");
        if (payload) *payload = b->p, *len = (size_t)v;
        b->p += v;
        return PF_OK;
    }
    default: return pb_fail(b, "unsupported wire type");
    }
}

static int parse_piece(pb *outer, const uint8_t *p, size_t n, pf_spm_model *m) {
    pb b = {p, p + n, outer->base, outer->path, outer->err};
    const int64_t i = m->n;
    m->scores[i] = 0.0f;
    m->types[i] = 1;
    m->pieces[i] = NULL;
    while (b.p < b.end) {
        uint64_t key;
        int rc = pb_varint(&b, &key);
        if (rc != PF_OK) return rc;
        const int field = (int)(key >> 3), wt = (int)(key & 7);
        const uint8_t *v = NULL;
        size_t len = 0;
        if (field == 3 && wt == 0) {
            uint64_t t;
            if ((rc = pb_varint(&b, &t)) != PF_OK) return rc;
            if (t < 1 || t > 6) return pb_fail(&b, "piece type outside 1..6");
            m->types[i] = (int32_t)t;
            continue;
        }
        if ((rc = pb_value(&b, wt, &v, &len)) != PF_OK) return rc;
        if (field == 1 && wt == 2) {
            free(m->pieces[i]);
            if ((m->pieces[i] = malloc(len + 1)) == NULL) return pf_error_set(outer->err, PF_ERR_NOMEM, "out of memory");
            memcpy(m->pieces[i], v, len);
            m->pieces[i][len] = 0;
            if (memchr(v, 0, len)) return pb_fail(&b, "piece contains a NUL byte");
        } else if (field == 2 && wt == 5) {
            uint32_t u = (uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 24;
            memcpy(&m->scores[i], &u, 4);
        }
    }
    if (m->pieces[i] == NULL) return pb_fail(&b, "SentencePiece without a piece string");
    m->n++;
    return PF_OK;
}

static int parse_trainer(pb *outer, const uint8_t *p, size_t n, pf_spm_model *m) {
    pb b = {p, p + n, outer->base, outer->path, outer->err};
    while (b.p < b.end) {
        uint64_t key, v;
        int rc = pb_varint(&b, &key);
        if (rc != PF_OK) return rc;
        const int field = (int)(key >> 3), wt = (int)(key & 7);
        if (wt == 0 && field >= 40 && field <= 43) {
            if ((rc = pb_varint(&b, &v)) != PF_OK) return rc;
            const int32_t id = (int32_t)(int64_t)v; /* int32: negative values are sign-extended */
            if (field == 40) m->unk_id = id;
            else if (field == 41) m->bos_id = id;
            else if (field == 42) m->eos_id = id;
            else m->pad_id = id;
        } else if ((rc = pb_value(&b, wt, NULL, NULL)) != PF_OK) {
            return rc;
        }
    }
    return PF_OK;
}

void pf_spm_free(pf_spm_model *m) {
    if (m == NULL) return;
    for (int64_t i = 0; i < m->n; i++) free(m->pieces[i]);
    if (m->pieces && m->n >= 0) free(m->pieces[m->n]); /* a piece being parsed when an error hit */
    free(m->pieces);
    free(m->scores);
    free(m->types);
    memset(m, 0, sizeof *m);
}

int pf_spm_parse(const void *data, size_t size, const char *path, pf_spm_model *out, pf_error *err) {
    if (out == NULL || (data == NULL && size > 0)) return pf_error_set(err, PF_ERR_ARG, "pf_spm_parse: NULL argument");
    memset(out, 0, sizeof *out);
    out->unk_id = 0, out->bos_id = 1, out->eos_id = 2, out->pad_id = -1;
    pb b = {data, (const uint8_t *)data + size, data, path ? path : "<memory>", err};
    /* first pass: count the pieces, so the arrays are allocated once */
    int64_t count = 0;
    while (b.p < b.end) {
        uint64_t key;
        int rc = pb_varint(&b, &key);
        if (rc == PF_OK) rc = pb_value(&b, (int)(key & 7), NULL, NULL);
        if (rc != PF_OK) return rc;
        count += (key >> 3) == 1 && (key & 7) == 2;
    }
    if (count == 0) return pf_error_set(err, PF_ERR_FORMAT, "tokenizer.model %s: no pieces (not a SentencePiece model?)", b.path);
    out->pieces = calloc((size_t)count + 1, sizeof *out->pieces);
    out->scores = calloc((size_t)count, sizeof *out->scores);
    out->types = calloc((size_t)count, sizeof *out->types);
    if (!out->pieces || !out->scores || !out->types) {
        pf_spm_free(out);
        return pf_error_set(err, PF_ERR_NOMEM, "tokenizer.model %s: out of memory for %lld pieces", b.path, (long long)count);
    }
    b.p = data;
    while (b.p < b.end) {
        uint64_t key;
        const uint8_t *v = NULL;
        size_t len = 0;
        int rc = pb_varint(&b, &key);
        if (rc == PF_OK) rc = pb_value(&b, (int)(key & 7), &v, &len);
        if (rc == PF_OK && (key >> 3) == 1 && (key & 7) == 2) rc = parse_piece(&b, v, len, out);
        else if (rc == PF_OK && (key >> 3) == 2 && (key & 7) == 2) rc = parse_trainer(&b, v, len, out);
        if (rc != PF_OK) {
            pf_spm_free(out);
            return rc;
        }
    }
    return PF_OK;
}

int pf_spm_load(const char *path, pf_spm_model *out, pf_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return pf_error_set(err, PF_ERR_IO, "tokenizer.model %s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 20, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        uint8_t *nb = cap < (SIZE_MAX / 2) ? realloc(buf, cap * 2) : NULL;
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb, cap *= 2;
    }
    const int rerr = ferror(f);
    fclose(f);
    if (!buf) return pf_error_set(err, PF_ERR_NOMEM, "tokenizer.model %s: out of memory", path);
    if (rerr) {
        free(buf);
        return pf_error_set(err, PF_ERR_IO, "tokenizer.model %s: read error", path);
    }
    int rc = pf_spm_parse(buf, n, path, out, err);
    free(buf);
    return rc;
}
