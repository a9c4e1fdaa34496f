/* Large index arrays live in their own anonymous mappings advised for transparent huge pages.
 * Why: a search touches vectors at random across the whole array (150 MB for 100k x 384
 * floats), so with 4 KiB pages nearly every vector fetch also misses the TLB; 2 MiB pages cut
 * that to a handful of entries (measured ~25% more queries/s at 100k x 384). Small arrays use
 * malloc. The caller passes the byte size back on resize and free (it always knows it). */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vindex/vindex_internal.h"

#define BIG (1u << 20)
#define PAGE 4096u

static size_t round_page(size_t n) { return (n + PAGE - 1) & ~(size_t)(PAGE - 1); }

static void *map_big(size_t bytes) {
    void *p = mmap(NULL, round_page(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, round_page(bytes), MADV_HUGEPAGE); /* advice only: failure is harmless */
#endif
    return p;
}

void *pf_vbig_alloc(size_t bytes) { return bytes < BIG ? malloc(bytes ? bytes : 1) : map_big(bytes); }

void pf_vbig_free(void *p, size_t bytes) {
    if (!p) return;
    if (bytes < BIG) free(p);
    else munmap(p, round_page(bytes));
}

void *pf_vbig_realloc(void *p, size_t old_bytes, size_t new_bytes) {
    if (!p) return pf_vbig_alloc(new_bytes);
    if (old_bytes < BIG && new_bytes < BIG) return realloc(p, new_bytes ? new_bytes : 1);
    if (old_bytes >= BIG && new_bytes >= BIG) {
        void *q = mremap(p, round_page(old_bytes), round_page(new_bytes), MREMAP_MAYMOVE);
        if (q == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
        madvise(q, round_page(new_bytes), MADV_HUGEPAGE);
#endif
        return q;
    }
    void *q = pf_vbig_alloc(new_bytes); /* crossing the threshold: copy */
    if (!q) return NULL;
    memcpy(q, p, old_bytes < new_bytes ? old_bytes : new_bytes);
    pf_vbig_free(p, old_bytes);
    return q;
}
