/* HNSW persistence. save: one pass to PATH.tmp, fsync, rename, fsync of the directory.
 * open: map the file MAP_PRIVATE and use its arrays in place (see pf_hnsw_open in phiforge.h),
 * after checking every header field, section bound, link, level and label, so that a hostile
 * or truncated file yields an error naming the field and offset instead of a wild read later.
 * Vector bytes themselves are not checked: a corrupted float only gives wrong distances. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vindex/vindex_internal.h"

static const char MAGIC[8] = {'P', 'F', 'H', 'N', 'S', 'W', '0', '1'};
#define VERSION 1u

const char *const pf_hnsw_sec_name[PF_HNSW_SEC_N] = {"vectors", "links0", "labels", "levels", "upper"};

uint64_t pf_hnsw_fnv1a(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

void pf_hnsw_layout_of(uint64_t n_slots, uint64_t vec_bytes, uint64_t m0, uint64_t upper_words, pf_hnsw_layout *l) {
    const uint64_t size[PF_HNSW_SEC_N] = {n_slots * vec_bytes, n_slots * m0 * 4, n_slots * 8, n_slots, upper_words * 4};
    uint64_t off = PF_HNSW_HDR_BYTES;
    for (int i = 0; i < PF_HNSW_SEC_N; i++) {
        off = (off + 63) & ~(uint64_t)63;
        l->off[i] = off;
        l->size[i] = size[i];
        off += size[i];
    }
    l->end = off;
}

static void put32(uint8_t *h, int off, uint32_t v) { memcpy(h + off, &v, 4); }
static void put64(uint8_t *h, int off, uint64_t v) { memcpy(h + off, &v, 8); }
static uint32_t get32(const uint8_t *h, int off) { uint32_t v; memcpy(&v, h + off, 4); return v; }
static uint64_t get64(const uint8_t *h, int off) { uint64_t v; memcpy(&v, h + off, 8); return v; }

static bool little_endian(void) { const uint16_t one = 1; uint8_t b; memcpy(&b, &one, 1); return b == 1; }

/* ---- save ---- */

static int write_all(int fd, const void *buf, uint64_t n) {
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : (size_t)n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (uint64_t)w;
    }
    return 0;
}

int pf_hnsw_save(const pf_hnsw *h, const char *path, uint64_t generation, pf_error *err) {
    if (!h || !path) return pf_error_set(err, PF_ERR_ARG, "hnsw save: NULL argument");
    if (!little_endian()) return pf_error_set(err, PF_ERR_UNSUPPORTED, "hnsw save: big-endian host");
    uint8_t hdr[PF_HNSW_HDR_BYTES] = {0};
    memcpy(hdr, MAGIC, 8);
    put32(hdr, PF_HNSW_HDR_VERSION, VERSION);
    put32(hdr, PF_HNSW_HDR_SIZE, PF_HNSW_HDR_BYTES);
    put32(hdr, PF_HNSW_HDR_DIM, (uint32_t)h->p.dim);
    put32(hdr, PF_HNSW_HDR_METRIC, (uint32_t)h->p.metric);
    put32(hdr, PF_HNSW_HDR_STORAGE, (uint32_t)h->p.storage);
    put32(hdr, PF_HNSW_HDR_M, h->M);
    put32(hdr, PF_HNSW_HDR_EFC, (uint32_t)h->p.ef_construction);
    put32(hdr, PF_HNSW_HDR_MAX_LEVEL, (uint32_t)h->max_level);
    put64(hdr, PF_HNSW_HDR_SLOTS, h->n);
    put64(hdr, PF_HNSW_HDR_DELETED, h->n_deleted);
    put32(hdr, PF_HNSW_HDR_EP, h->ep);
    put32(hdr, PF_HNSW_HDR_VEC_BYTES, (uint32_t)h->vec_bytes);
    put64(hdr, PF_HNSW_HDR_UPPER, h->upper_n);
    put64(hdr, PF_HNSW_HDR_GENERATION, generation);
    put64(hdr, PF_HNSW_HDR_RNG, h->rng);
    put64(hdr, PF_HNSW_HDR_EXACT_BELOW, (uint64_t)h->p.exact_below);
    put64(hdr, PF_HNSW_HDR_SEED, h->p.seed);
    put64(hdr, PF_HNSW_HDR_CHECKSUM, pf_hnsw_fnv1a(hdr, PF_HNSW_HDR_CHECKSUM));

    pf_hnsw_layout l;
    pf_hnsw_layout_of(h->n, h->vec_bytes, h->M0, h->upper_n, &l);
    const void *data[PF_HNSW_SEC_N] = {h->vecs, h->links0, h->labels, h->levels, h->upper};

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5), *dir = malloc(plen + 1);
    if (!tmp || !dir) { free(tmp); free(dir); return pf_error_set(err, PF_ERR_NOMEM, "hnsw save: out of memory"); }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    memcpy(dir, path, plen + 1);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = PF_OK;
    if (fd < 0) {
        rc = pf_error_set(err, PF_ERR_IO, "hnsw save: cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    static const uint8_t zeros[64];
    uint64_t pos = PF_HNSW_HDR_BYTES;
    bool ok = write_all(fd, hdr, sizeof hdr) == 0;
    for (int i = 0; ok && i < PF_HNSW_SEC_N; i++) {
        ok = write_all(fd, zeros, l.off[i] - pos) == 0 && (l.size[i] == 0 || write_all(fd, data[i], l.size[i]) == 0);
        pos = l.off[i] + l.size[i];
    }
    ok = ok && fsync(fd) == 0;
    if (close(fd) != 0) ok = false;
    if (!ok || rename(tmp, path) != 0) {
        rc = pf_error_set(err, PF_ERR_IO, "hnsw save: writing %s failed: %s", tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* make the rename durable */
    if (dfd >= 0) { fsync(dfd); close(dfd); }
out:
    free(tmp);
    free(dir);
    return rc;
}

/* ---- open ---- */

#define FAIL(code, ...) do { rc = pf_error_set(err, code, __VA_ARGS__); goto fail; } while (0)

/* Checks the per-slot sections of a mapped file and builds what lives in heap memory: the
 * upper-list offsets, the label table and the free-slot list. */
static int check_graph(pf_hnsw *h, const char *path, const pf_hnsw_layout *l, uint32_t n_deleted_hdr, pf_error *err) {
    uint64_t upper_sum = 0;
    uint32_t deleted = 0;
    for (uint32_t i = 0; i < h->n; i++) {
        int lv = pf_hnsw_level(h, i);
        if (lv > h->max_level)
            return pf_error_set(err, PF_ERR_FORMAT, "%s: levels[%u] at offset %llu: level %d above max_level %d", path, i,
                                (unsigned long long)(l->off[PF_HNSW_SEC_LEVELS] + i), lv, h->max_level);
        h->upper_off[i] = (uint32_t)upper_sum;
        upper_sum += (uint64_t)lv * h->M;
        if (upper_sum > h->upper_n) break; /* reported below, before any list is read */
        if (h->levels[i] & PF_HNSW_DELETED) deleted++;
    }
    if (upper_sum != h->upper_n)
        return pf_error_set(err, PF_ERR_FORMAT, "%s: offset %d (upper_words): header says %llu, levels[] need %s%llu", path,
                            PF_HNSW_HDR_UPPER, (unsigned long long)h->upper_n, upper_sum > h->upper_n ? "more than " : "",
                            (unsigned long long)upper_sum);
    if (deleted != n_deleted_hdr)
        return pf_error_set(err, PF_ERR_FORMAT, "%s: offset %d (n_deleted): header says %u, levels[] mark %u", path,
                            PF_HNSW_HDR_DELETED, n_deleted_hdr, deleted);
    if (pf_hnsw_level(h, h->ep) != h->max_level)
        return pf_error_set(err, PF_ERR_FORMAT, "%s: offset %d (entry_point): slot %u has level %d, max_level is %d", path,
                            PF_HNSW_HDR_EP, h->ep, pf_hnsw_level(h, h->ep), h->max_level);
    for (uint64_t j = 0; j < (uint64_t)h->n * h->M0; j++) {
        uint32_t id = h->links0[j];
        if (id != PF_NO_ID && id >= h->n)
            return pf_error_set(err, PF_ERR_FORMAT, "%s: links0 of slot %llu at offset %llu: neighbour %u >= n_slots %u", path,
                                (unsigned long long)(j / h->M0), (unsigned long long)(l->off[PF_HNSW_SEC_LINKS0] + 4 * j), id, h->n);
    }
    for (uint32_t i = 0; i < h->n; i++) {
        for (int lc = 1; lc <= pf_hnsw_level(h, i); lc++) {
            const uint32_t *li = pf_hnsw_links(h, i, lc);
            for (uint32_t j = 0; j < h->M; j++) {
                uint32_t id = li[j];
                if (id != PF_NO_ID && (id >= h->n || pf_hnsw_level(h, id) < lc))
                    return pf_error_set(err, PF_ERR_FORMAT,
                                        "%s: level-%d list of slot %u at offset %llu: neighbour %u is not a node of that level", path, lc, i,
                                        (unsigned long long)(l->off[PF_HNSW_SEC_UPPER] + 4 * (uint64_t)(li + j - h->upper)), id);
            }
        }
    }
    if (pf_labelmap_reserve(&h->lmap, h->labels, h->n - deleted) ||
        !(h->free_slots = malloc(sizeof *h->free_slots * (deleted ? deleted : 1))))
        return pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory", path);
    h->free_cap = deleted ? deleted : 1;
    for (uint32_t i = 0; i < h->n; i++) {
        if (h->levels[i] & PF_HNSW_DELETED) { h->free_slots[h->n_free++] = i; continue; }
        uint32_t dup = pf_labelmap_find(&h->lmap, h->labels, h->labels[i]);
        if (dup != PF_NO_ID)
            return pf_error_set(err, PF_ERR_FORMAT, "%s: labels[%u] at offset %llu: label %lld is also slot %u", path, i,
                                (unsigned long long)(l->off[PF_HNSW_SEC_LABELS] + 8 * (uint64_t)i), (long long)h->labels[i], dup);
        pf_labelmap_insert(&h->lmap, h->labels, i);
    }
    return PF_OK;
}

int pf_hnsw_open(const char *path, pf_hnsw **out, uint64_t *generation, pf_error *err) {
    if (!path || !out) return pf_error_set(err, PF_ERR_ARG, "hnsw open: NULL argument");
    *out = NULL;
    if (!little_endian()) return pf_error_set(err, PF_ERR_UNSUPPORTED, "hnsw open: big-endian host");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return pf_error_set(err, errno == ENOENT ? PF_ERR_NOT_FOUND : PF_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) { close(fd); return pf_error_set(err, PF_ERR_IO, "%s: %s", path, strerror(errno)); }
    size_t size = (size_t)st.st_size;
    if (size < PF_HNSW_HDR_BYTES) {
        close(fd);
        return pf_error_set(err, PF_ERR_FORMAT, "%s: file is %zu bytes, shorter than the %d-byte header", path, size,
                            PF_HNSW_HDR_BYTES);
    }
    /* Writable private mapping: pages stay shared with the page cache until written. */
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return pf_error_set(err, PF_ERR_IO, "%s: mmap: %s", path, strerror(errno));

    int rc = PF_OK;
    pf_hnsw *h = NULL;
    const uint8_t *hd = map;
    if (memcmp(hd, MAGIC, 8) != 0) FAIL(PF_ERR_FORMAT, "%s: offset 0 (magic): not an HNSW index", path);
    uint32_t u;
    if ((u = get32(hd, PF_HNSW_HDR_VERSION)) != VERSION)
        FAIL(PF_ERR_UNSUPPORTED, "%s: offset %d (version): %u, this build reads %u", path, PF_HNSW_HDR_VERSION, u, VERSION);
    if ((u = get32(hd, PF_HNSW_HDR_SIZE)) != PF_HNSW_HDR_BYTES)
        FAIL(PF_ERR_FORMAT, "%s: offset %d (header_bytes): %u, expected %d", path, PF_HNSW_HDR_SIZE, u, PF_HNSW_HDR_BYTES);
    pf_hnsw_params p = pf_hnsw_default_params((int32_t)get32(hd, PF_HNSW_HDR_DIM), PF_METRIC_COSINE);
    p.metric = (pf_metric)get32(hd, PF_HNSW_HDR_METRIC);
    p.storage = (pf_vec_storage)get32(hd, PF_HNSW_HDR_STORAGE);
    p.M = (int32_t)get32(hd, PF_HNSW_HDR_M);
    p.ef_construction = (int32_t)get32(hd, PF_HNSW_HDR_EFC);
    p.exact_below = (int64_t)get64(hd, PF_HNSW_HDR_EXACT_BELOW);
    p.seed = get64(hd, PF_HNSW_HDR_SEED);
    if (p.dim < 1 || p.dim > 65536) FAIL(PF_ERR_FORMAT, "%s: offset %d (dim): %d", path, PF_HNSW_HDR_DIM, (int)p.dim);
    if ((unsigned)p.metric > PF_METRIC_L2)
        FAIL(PF_ERR_FORMAT, "%s: offset %d (metric): unknown metric %u", path, PF_HNSW_HDR_METRIC, (unsigned)p.metric);
    if ((unsigned)p.storage > PF_VEC_I8)
        FAIL(PF_ERR_FORMAT, "%s: offset %d (storage): unknown storage %u", path, PF_HNSW_HDR_STORAGE, (unsigned)p.storage);
    if (p.M < 2 || p.M > 255) FAIL(PF_ERR_FORMAT, "%s: offset %d (M): %d", path, PF_HNSW_HDR_M, (int)p.M);
    if (p.ef_construction < 1 || p.ef_construction > 65536)
        FAIL(PF_ERR_FORMAT, "%s: offset %d (ef_construction): %d", path, PF_HNSW_HDR_EFC, (int)p.ef_construction);
    if (p.exact_below < 0)
        FAIL(PF_ERR_FORMAT, "%s: offset %d (exact_below): %lld", path, PF_HNSW_HDR_EXACT_BELOW, (long long)p.exact_below);
    uint64_t n = get64(hd, PF_HNSW_HDR_SLOTS), n_del = get64(hd, PF_HNSW_HDR_DELETED), upper = get64(hd, PF_HNSW_HDR_UPPER);
    int32_t max_level = (int32_t)get32(hd, PF_HNSW_HDR_MAX_LEVEL);
    uint64_t gen = get64(hd, PF_HNSW_HDR_GENERATION), rng = get64(hd, PF_HNSW_HDR_RNG);
    uint32_t ep = get32(hd, PF_HNSW_HDR_EP);
    if (n > PF_HNSW_MAX_SLOTS) FAIL(PF_ERR_FORMAT, "%s: offset %d (n_slots): %llu exceeds %u", path, PF_HNSW_HDR_SLOTS, (unsigned long long)n, PF_HNSW_MAX_SLOTS);
    if (n_del > n) FAIL(PF_ERR_FORMAT, "%s: offset %d (n_deleted): %llu > n_slots %llu", path, PF_HNSW_HDR_DELETED, (unsigned long long)n_del, (unsigned long long)n);
    if (n ? (max_level < 0 || max_level > PF_HNSW_MAX_LEVEL) : max_level != -1)
        FAIL(PF_ERR_FORMAT, "%s: offset %d (max_level): %d", path, PF_HNSW_HDR_MAX_LEVEL, (int)max_level);
    if (n ? ep >= n : ep != PF_NO_ID)
        FAIL(PF_ERR_FORMAT, "%s: offset %d (entry_point): %u with %llu slots", path, PF_HNSW_HDR_EP, ep, (unsigned long long)n);
    if ((u = get32(hd, PF_HNSW_HDR_VEC_BYTES)) != pf_vec_bytes(p.storage, (size_t)p.dim))
        FAIL(PF_ERR_FORMAT, "%s: offset %d (vec_bytes): %u, dim and storage imply %zu", path, PF_HNSW_HDR_VEC_BYTES, u,
             pf_vec_bytes(p.storage, (size_t)p.dim));
    if (upper > UINT32_MAX) FAIL(PF_ERR_FORMAT, "%s: offset %d (upper_words): %llu", path, PF_HNSW_HDR_UPPER, (unsigned long long)upper);
    if (get64(hd, PF_HNSW_HDR_CHECKSUM) != pf_hnsw_fnv1a(hd, PF_HNSW_HDR_CHECKSUM))
        FAIL(PF_ERR_FORMAT, "%s: offset %d (checksum): header bytes 0..%d do not match their checksum", path,
             PF_HNSW_HDR_CHECKSUM, PF_HNSW_HDR_CHECKSUM - 1);
    pf_hnsw_layout l;
    pf_hnsw_layout_of(n, u, 2 * (uint64_t)p.M, upper, &l);
    for (int i = 0; i < PF_HNSW_SEC_N; i++)
        if (l.off[i] + l.size[i] > size)
            FAIL(PF_ERR_FORMAT, "%s: truncated: section %s needs bytes %llu..%llu, the file has %zu", path, pf_hnsw_sec_name[i],
                 (unsigned long long)l.off[i], (unsigned long long)(l.off[i] + l.size[i]), size);
    if (l.end != size)
        FAIL(PF_ERR_FORMAT, "%s: %llu unexpected bytes after the last section (offset %llu)", path,
             (unsigned long long)(size - l.end), (unsigned long long)l.end);

    if ((rc = pf_hnsw_create(&p, &h, err))) goto fail;
    h->rng = rng;
    h->ep = ep;
    h->max_level = max_level;
    h->n = h->cap = (uint32_t)n;
    h->n_deleted = (uint32_t)n_del;
    h->upper_n = h->upper_cap = upper;
    if (n) {
        uint8_t *b = map;
        h->vecs = b + l.off[PF_HNSW_SEC_VECS];
        h->links0 = (uint32_t *)(void *)(b + l.off[PF_HNSW_SEC_LINKS0]);
        h->labels = (int64_t *)(void *)(b + l.off[PF_HNSW_SEC_LABELS]);
        h->levels = b + l.off[PF_HNSW_SEC_LEVELS];
        h->upper = upper ? (uint32_t *)(void *)(b + l.off[PF_HNSW_SEC_UPPER]) : NULL;
        h->slots_mapped = true;
        h->upper_mapped = upper != 0;
        h->map = map;
        h->map_size = size;
        map = NULL;
        if (!(h->upper_off = pf_vbig_alloc(sizeof *h->upper_off * n))) FAIL(PF_ERR_NOMEM, "%s: out of memory", path);
        if ((rc = check_graph(h, path, &l, (uint32_t)n_del, err))) goto fail;
    } else {
        munmap(map, size);
        map = NULL;
    }
    if (generation) *generation = gen;
    *out = h;
    return PF_OK;
fail:
    pf_hnsw_free(h);
    if (map) munmap(map, size);
    return rc;
}
