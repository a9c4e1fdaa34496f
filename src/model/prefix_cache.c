/* Prefix KV cache: the K/V rows of a token prefix (system prompt + sources of a RAG question)
 * saved to a file and restored into a context, so that a second question on the same sources
 * decodes only what differs. File layout (little-endian, as the host; see phiforge.h):
 *
 *   header   "PFKVPFX1", u32 version, u32 kv_type, u64 fingerprint,
 *            u32 n_layer, n_head_kv, head_dim, reserved, u64 n_tokens          (48 bytes)
 *   ids      n_tokens × i32
 *   blocks   per layer, per kv head: K = n_tokens rows of head_dim elements, then
 *            V = head_dim rows of n_tokens elements (the cache's own layouts, cut to n_tokens)
 *   checksum u64 over every section above, each hashed as one piece
 *
 * The size is fully determined by the header, so a truncated or padded file is refused before
 * any allocation that the header could inflate. The fingerprint covers whatever the K/V values
 * depend on (model, KV type, RoPE factors, LoRA adapters) except the kernels' float rounding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/model_internal.h"

#define PFX_MAGIC "PFKVPFX1"
#define PFX_VERSION 1u
#define PFX_HEADER 48

typedef struct pfx_header {
    char magic[8];
    uint32_t version, kv_type;
    uint64_t fingerprint;
    uint32_t n_layer, n_head_kv, head_dim, reserved;
    uint64_t n_tokens;
} pfx_header;

_Static_assert(sizeof(pfx_header) == PFX_HEADER, "the header is written as it is laid out in memory");

/* ---- hashing --------------------------------------------------------------------------------- */

/* h absorbs v (64-bit multiply-xorshift; order-dependent). */
static uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 32);
}

/* Hash of n bytes, 8 at a time (fast enough to check a file of hundreds of MB). */
static uint64_t hash_bytes(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    uint64_t acc = 0x84222325cbf29ce4ull ^ (uint64_t)n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        acc = (acc ^ w) * 0x100000001b3ull;
        acc ^= acc >> 29;
    }
    for (; i < n; i++) acc = (acc ^ p[i]) * 0x100000001b3ull;
    return mix(h, acc);
}

static uint64_t hash_f32(uint64_t h, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return mix(h, u);
}

/* Every tensor's name, type, shape and three 64-byte samples of its data (start, middle, end):
 * two different models (or fine-tunes, or random inits with different seeds) differ there. */
static uint64_t hash_tensors(uint64_t h, const pf_gguf *g) {
    const int64_t n = pf_gguf_n_tensors(g);
    h = mix(h, (uint64_t)n);
    for (int64_t i = 0; i < n; i++) {
        const pf_tensor_info *t = pf_gguf_tensor(g, i);
        h = hash_bytes(h, t->name, strlen(t->name));
        h = mix(h, (uint64_t)t->type);
        for (int d = 0; d < 4; d++) h = mix(h, (uint64_t)t->ne[d]);
        const size_t w = t->nbytes < 64 ? t->nbytes : 64;
        const uint8_t *b = t->data;
        h = hash_bytes(h, b, w);
        h = hash_bytes(h, b + (t->nbytes - w) / 2, w);
        h = hash_bytes(h, b + t->nbytes - w, w);
    }
    return h;
}

uint64_t pf_context_fingerprint(const pf_context *ctx) {
    if (!ctx) return 0;
    const pf_model_hparams *hp = &ctx->m->hp;
    uint64_t h = 0x7066666b76667831ull; /* "pffkvfx1" */
    const int64_t ints[] = {hp->n_vocab, hp->n_ctx_train, hp->n_ctx_orig, hp->n_embd, hp->n_ff, hp->n_layer,
                            hp->n_head,  hp->n_head_kv,   hp->head_dim,   hp->n_rot, hp->has_rope_factors};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) h = mix(h, (uint64_t)ints[i]);
    h = hash_f32(hash_f32(hash_f32(h, hp->rms_eps), hp->rope_theta), hp->rope_attn_factor);
    h = hash_tensors(h, ctx->m->g);
    h = mix(mix(h, (uint64_t)ctx->kv_type), (uint64_t)ctx->long_rope);
    h = mix(h, (uint64_t)ctx->n_lora);
    for (int i = 0; i < ctx->n_lora; i++) {
        h = hash_f32(hash_f32(h, ctx->lora_scale[i]), pf_lora_alpha(ctx->lora[i]));
        h = hash_tensors(h, pf_lora_gguf(ctx->lora[i]));
    }
    return h;
}

int pf_context_truncate(pf_context *ctx, int64_t n, pf_error *err) {
    if (!ctx) return pf_error_set(err, PF_ERR_ARG, "pf_context_truncate: NULL context");
    if (n < 0 || n > ctx->n_past)
        return pf_error_set(err, PF_ERR_ARG, "pf_context_truncate: %lld outside [0, %lld]", (long long)n,
                            (long long)ctx->n_past);
    ctx->n_past = n;
    return PF_OK;
}

/* ---- save ------------------------------------------------------------------------------------ */

/* fwrite of one section, hashed into *sum. */
static bool put(FILE *f, const void *p, size_t n, uint64_t *sum) {
    *sum = hash_bytes(*sum, p, n);
    return fwrite(p, 1, n, f) == n;
}

int pf_context_save_prefix(pf_context *ctx, const int32_t *ids, int64_t n, const char *path, pf_error *err) {
    if (!ctx || !ids || !path) return pf_error_set(err, PF_ERR_ARG, "pf_context_save_prefix: NULL argument");
    if (n < 1 || n > ctx->n_past)
        return pf_error_set(err, PF_ERR_ARG, "pf_context_save_prefix: %lld tokens, but the cache holds %lld", (long long)n,
                            (long long)ctx->n_past);
    const pf_model_hparams *hp = &ctx->m->hp;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= hp->n_vocab)
            return pf_error_set(err, PF_ERR_ARG, "pf_context_save_prefix: token id %d at %lld outside [0, %lld)",
                                (int)ids[i], (long long)i, (long long)hp->n_vocab);
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return pf_error_set(err, PF_ERR_ARG, "pf_context_save_prefix: path too long");
    FILE *f = fopen(tmp, "wb");
    if (!f) return pf_error_set(err, PF_ERR_IO, "%s: cannot create: %m", tmp);
    pfx_header hd = {.version = PFX_VERSION, .kv_type = (uint32_t)ctx->kv_type,
                     .fingerprint = pf_context_fingerprint(ctx), .n_layer = (uint32_t)hp->n_layer,
                     .n_head_kv = (uint32_t)hp->n_head_kv, .head_dim = (uint32_t)hp->head_dim, .n_tokens = (uint64_t)n};
    memcpy(hd.magic, PFX_MAGIC, 8);
    uint64_t sum = 0;
    bool ok = put(f, &hd, sizeof hd, &sum) && put(f, ids, (size_t)n * sizeof *ids, &sum);
    const size_t es = ctx->kv_elem, d = (size_t)hp->head_dim;
    for (int64_t il = 0; il < hp->n_layer && ok; il++)
        for (int64_t h = 0; h < hp->n_head_kv && ok; h++) {
            const size_t off = pf_kv_offset(ctx, il, h);
            ok = put(f, (const uint8_t *)ctx->k_cache + off * es, (size_t)n * d * es, &sum);
            for (size_t i = 0; i < d && ok; i++)
                ok = put(f, (const uint8_t *)ctx->v_cache + (off + i * (size_t)ctx->n_ctx) * es, (size_t)n * es, &sum);
        }
    ok = ok && fwrite(&sum, 1, sizeof sum, f) == sizeof sum && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0) ok = false;
    if (!ok) {
        int rc = pf_error_set(err, PF_ERR_IO, "%s: write failed: %m", tmp);
        unlink(tmp);
        return rc;
    }
    if (rename(tmp, path) != 0) {
        int rc = pf_error_set(err, PF_ERR_IO, "%s: cannot rename to %s: %m", tmp, path);
        unlink(tmp);
        return rc;
    }
    return PF_OK;
}

/* ---- load ------------------------------------------------------------------------------------ */

/* fread of one section, hashed into *sum; false when the file ends early. */
static bool get(FILE *f, void *p, size_t n, uint64_t *sum) {
    if (fread(p, 1, n, f) != n) return false;
    *sum = hash_bytes(*sum, p, n);
    return true;
}

/* Checks the header against the context and the file size; PF_OK or an error naming the field. */
static int check_header(const pf_context *ctx, const pfx_header *hd, uint64_t file_size, const char *path, pf_error *err) {
    const pf_model_hparams *hp = &ctx->m->hp;
    if (memcmp(hd->magic, PFX_MAGIC, 8) != 0)
        return pf_error_set(err, PF_ERR_FORMAT, "%s: not a phiforge prefix cache (bad magic)", path);
    if (hd->version != PFX_VERSION)
        return pf_error_set(err, PF_ERR_UNSUPPORTED, "%s: prefix cache version %u (this build reads %u)", path,
                            hd->version, PFX_VERSION);
    if (hd->fingerprint != pf_context_fingerprint(ctx))
        return pf_error_set(err, PF_ERR_UNSUPPORTED,
                            "%s: written for another model, KV type, RoPE setting or LoRA set (fingerprint %016llx, "
                            "this context %016llx)", path, (unsigned long long)hd->fingerprint,
                            (unsigned long long)pf_context_fingerprint(ctx));
    if (hd->kv_type != (uint32_t)ctx->kv_type || hd->n_layer != (uint64_t)hp->n_layer ||
        hd->n_head_kv != (uint64_t)hp->n_head_kv || hd->head_dim != (uint64_t)hp->head_dim)
        return pf_error_set(err, PF_ERR_FORMAT, "%s: header shape (kv_type %u, %u layers, %u kv heads, head_dim %u) "
                            "does not match its fingerprint's model", path, hd->kv_type, hd->n_layer, hd->n_head_kv,
                            hd->head_dim);
    /* expected size = header + 4 n + n_layer * n_head_kv * 2 * n * head_dim * es + 8, overflow-checked */
    const uint64_t per_tok = 4 + (uint64_t)hd->n_layer * hd->n_head_kv * 2 * hd->head_dim * ctx->kv_elem;
    if (hd->n_tokens == 0 || hd->n_tokens > (file_size - PFX_HEADER - 8) / per_tok ||
        PFX_HEADER + 8 + hd->n_tokens * per_tok != file_size)
        return pf_error_set(err, PF_ERR_FORMAT, "%s: %llu bytes do not match the header (n_tokens %llu at %llu bytes "
                            "each): truncated or corrupt", path, (unsigned long long)file_size,
                            (unsigned long long)hd->n_tokens, (unsigned long long)per_tok);
    return PF_OK;
}

/* Reads the blocks after the ids, copying positions [0, keep) of each into the cache, and checks
 * the checksum. buf holds n × head_dim elements. */
static int read_blocks(pf_context *ctx, FILE *f, int64_t n, int64_t keep, uint8_t *buf, uint64_t sum, const char *path,
                       pf_error *err) {
    const pf_model_hparams *hp = &ctx->m->hp;
    const size_t es = ctx->kv_elem, d = (size_t)hp->head_dim;
    for (int64_t il = 0; il < hp->n_layer; il++)
        for (int64_t h = 0; h < hp->n_head_kv; h++) {
            const size_t off = pf_kv_offset(ctx, il, h);
            if (!get(f, buf, (size_t)n * d * es, &sum)) goto truncated;
            memcpy((uint8_t *)ctx->k_cache + off * es, buf, (size_t)keep * d * es);
            for (size_t i = 0; i < d; i++) {
                if (!get(f, buf, (size_t)n * es, &sum)) goto truncated;
                memcpy((uint8_t *)ctx->v_cache + (off + i * (size_t)ctx->n_ctx) * es, buf, (size_t)keep * es);
            }
        }
    uint64_t stored;
    if (fread(&stored, 1, sizeof stored, f) != sizeof stored) goto truncated;
    if (stored != sum) return pf_error_set(err, PF_ERR_FORMAT, "%s: checksum mismatch (corrupt file)", path);
    return PF_OK;
truncated:
    return pf_error_set(err, PF_ERR_FORMAT, "%s: truncated (ends inside the K/V data)", path);
}

int pf_context_load_prefix(pf_context *ctx, const int32_t *ids, int64_t n, const char *path, int64_t *n_restored,
                           pf_error *err) {
    if (n_restored) *n_restored = 0;
    if (!ctx || !path || !n_restored || (!ids && n > 0) || n < 0)
        return pf_error_set(err, PF_ERR_ARG, "pf_context_load_prefix: invalid argument");
    ctx->n_past = 0; /* positions are overwritten from here on; only a full success keeps any */
    FILE *f = fopen(path, "rb");
    if (!f) return pf_error_set(err, PF_ERR_NOT_FOUND, "%s: cannot open: %m", path);
    struct stat st = {0};
    pfx_header hd;
    int32_t *stored = NULL;
    uint8_t *buf = NULL;
    int rc;
    if (fstat(fileno(f), &st) != 0 || st.st_size < PFX_HEADER + 8) {
        rc = pf_error_set(err, PF_ERR_FORMAT, "%s: truncated (%lld bytes, no room for a header)", path,
                          (long long)st.st_size);
        goto done;
    }
    if (fread(&hd, 1, sizeof hd, f) != sizeof hd) {
        rc = pf_error_set(err, PF_ERR_IO, "%s: cannot read the header", path);
        goto done;
    }
    if ((rc = check_header(ctx, &hd, (uint64_t)st.st_size, path, err)) != PF_OK) goto done;
    const int64_t n_file = (int64_t)hd.n_tokens; /* bounded by the file size (checked above) */
    uint64_t sum = hash_bytes(0, &hd, sizeof hd);
    stored = malloc((size_t)n_file * sizeof *stored);
    buf = malloc((size_t)n_file * (size_t)ctx->m->hp.head_dim * ctx->kv_elem);
    if (!stored || !buf) {
        rc = pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory for %lld tokens", path, (long long)n_file);
        goto done;
    }
    if (!get(f, stored, (size_t)n_file * sizeof *stored, &sum)) {
        rc = pf_error_set(err, PF_ERR_FORMAT, "%s: truncated in the token ids", path);
        goto done;
    }
    int64_t keep = 0;
    while (keep < n && keep < n_file && keep < ctx->n_ctx && stored[keep] == ids[keep]) keep++;
    if (keep > 0 && (rc = read_blocks(ctx, f, n_file, keep, buf, sum, path, err)) != PF_OK) goto done;
    ctx->n_past = keep;
    *n_restored = keep;
    rc = PF_OK;
done:
    fclose(f);
    free(stored);
    free(buf);
    return rc;
}
