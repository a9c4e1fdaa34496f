// Benchmark peer: Debian's hnswlib (header-only C++) behind a tiny C interface, so that
// bench/hnsw_bench.c can time it on the same data, queries and ground truth as phiforge's
// index in the same process. Cosine/IP: the harness passes normalized vectors, and
// InnerProductSpace's distance is 1 - a.b like phiforge's.
#include <hnswlib/hnswlib.h>

#include <cstdint>
#include <new>

struct peer {
    hnswlib::SpaceInterface<float> *space;
    hnswlib::HierarchicalNSW<float> *index;
};

extern "C" {

void *peer_create(int dim, int l2, int64_t max_elements, int M, int ef_construction, uint64_t seed) {
    peer *p = new (std::nothrow) peer();
    if (!p) return nullptr;
    if (l2) p->space = new hnswlib::L2Space(dim);
    else p->space = new hnswlib::InnerProductSpace(dim);
    p->index = new hnswlib::HierarchicalNSW<float>(p->space, (size_t)max_elements, (size_t)M,
                                                  (size_t)ef_construction, (size_t)seed);
    return p;
}

void peer_add(void *vp, const float *v, int64_t label) {
    static_cast<peer *>(vp)->index->addPoint(v, (hnswlib::labeltype)label);
}

void peer_set_ef(void *vp, int ef) { static_cast<peer *>(vp)->index->setEf((size_t)ef); }

// Closest first, like pf_hnsw_search.
int peer_search(void *vp, const float *q, int k, int64_t *labels, float *dists) {
    auto pq = static_cast<peer *>(vp)->index->searchKnn(q, (size_t)k);
    int n = (int)pq.size();
    for (int i = n - 1; i >= 0; i--) {
        labels[i] = (int64_t)pq.top().second;
        if (dists) dists[i] = pq.top().first;
        pq.pop();
    }
    return n;
}

void peer_save(void *vp, const char *path) { static_cast<peer *>(vp)->index->saveIndex(path); }

void peer_free(void *vp) {
    peer *p = static_cast<peer *>(vp);
    if (!p) return;
    delete p->index;
    delete p->space;
    delete p;
}

}  // extern "C"
