/* label -> slot table. The table stores only slot ids (4 bytes per entry) and reads the key
 * from the index's labels[] array, so it costs about 8 bytes per vector at load <= 1/2. Linear
 * probing with backward-shift deletion: no tombstones, so lookups never degrade after many
 * removes. */
#include <stdlib.h>

#include "vindex/vindex_internal.h"

static inline size_t hash_label(int64_t label) { /* splitmix64 finalizer */
    uint64_t x = (uint64_t)label + 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return (size_t)(x ^ (x >> 31));
}

uint32_t pf_labelmap_find(const pf_labelmap *m, const int64_t *labels, int64_t label) {
    if (m->cap == 0) return PF_NO_ID;
    size_t mask = m->cap - 1;
    for (size_t i = hash_label(label) & mask;; i = (i + 1) & mask) {
        uint32_t s = m->tab[i];
        if (s == PF_NO_ID) return PF_NO_ID;
        if (labels[s] == label) return s;
    }
}

static void place(uint32_t *tab, size_t mask, const int64_t *labels, uint32_t slot) {
    size_t i = hash_label(labels[slot]) & mask;
    while (tab[i] != PF_NO_ID) i = (i + 1) & mask;
    tab[i] = slot;
}

int pf_labelmap_reserve(pf_labelmap *m, const int64_t *labels, size_t n) {
    if (2 * n <= m->cap) return PF_OK;
    size_t cap = m->cap ? m->cap : 64;
    while (2 * n > cap) cap *= 2;
    uint32_t *tab = malloc(cap * sizeof *tab);
    if (!tab) return PF_ERR_NOMEM;
    for (size_t i = 0; i < cap; i++) tab[i] = PF_NO_ID;
    for (size_t i = 0; i < m->cap; i++)
        if (m->tab[i] != PF_NO_ID) place(tab, cap - 1, labels, m->tab[i]);
    free(m->tab);
    m->tab = tab;
    m->cap = cap;
    return PF_OK;
}

int pf_labelmap_insert(pf_labelmap *m, const int64_t *labels, uint32_t slot) {
    if (pf_labelmap_reserve(m, labels, m->n + 1)) return PF_ERR_NOMEM;
    place(m->tab, m->cap - 1, labels, slot);
    m->n++;
    return PF_OK;
}

void pf_labelmap_erase(pf_labelmap *m, const int64_t *labels, int64_t label) {
    if (m->cap == 0) return;
    size_t mask = m->cap - 1, i = hash_label(label) & mask;
    while (m->tab[i] != PF_NO_ID && labels[m->tab[i]] != label) i = (i + 1) & mask;
    if (m->tab[i] == PF_NO_ID) return;
    /* Backward shift: move later members of the probe run into the hole when their home
     * position does not lie (cyclically) between the hole and their current position. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->tab[j] != PF_NO_ID; j = (j + 1) & mask) {
        size_t home = hash_label(labels[m->tab[j]]) & mask;
        bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!stays) { m->tab[hole] = m->tab[j]; hole = j; }
    }
    m->tab[hole] = PF_NO_ID;
    m->n--;
}

void pf_labelmap_free(pf_labelmap *m) {
    free(m->tab);
    m->tab = NULL;
    m->cap = m->n = 0;
}
