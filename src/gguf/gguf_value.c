/* GGUF value types and tensor geometry, shared by the reader and the writer. */
#include <inttypes.h>
#include <stdio.h>

#include "gguf/gguf_internal.h"

size_t pf_gguf_type_size(pf_gguf_type t) {
    switch (t) {
    case PF_GGUF_UINT8:
    case PF_GGUF_INT8:
    case PF_GGUF_BOOL: return 1;
    case PF_GGUF_UINT16:
    case PF_GGUF_INT16: return 2;
    case PF_GGUF_UINT32:
    case PF_GGUF_INT32:
    case PF_GGUF_FLOAT32: return 4;
    case PF_GGUF_UINT64:
    case PF_GGUF_INT64:
    case PF_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

const char *pf_gguf_type_name(pf_gguf_type t) {
    static const char *const names[PF_GGUF_TYPE_COUNT] = {
        "UINT8", "INT8",   "UINT16", "INT16",  "UINT32", "INT32",   "FLOAT32",
        "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64",  "FLOAT64",
    };
    return (unsigned)t < PF_GGUF_TYPE_COUNT ? names[t] : "UNKNOWN";
}

size_t pfg_min_elem_bytes(pf_gguf_type t) {
    if (t == PF_GGUF_STRING) return 8;
    if (t == PF_GGUF_ARRAY) return 12;
    return pf_gguf_type_size(t);
}

int64_t pf_tensor_nelements(const pf_tensor_info *t) {
    if (t == NULL) return 0;
    int64_t n = 1;
    for (uint32_t d = 0; d < t->n_dims && d < PFG_MAX_DIMS; d++) n *= t->ne[d];
    return n;
}

/* a * b for non-negative int64, or -1 when it does not fit. */
static int64_t mul_nonneg(int64_t a, int64_t b) {
    if (a != 0 && b > INT64_MAX / a) return -1;
    return a * b;
}

int pfg_tensor_nbytes(uint32_t type_id, uint32_t n_dims, const int64_t *ne, size_t *nbytes, char *why, size_t why_cap) {
    if (n_dims < 1 || n_dims > PFG_MAX_DIMS) {
        snprintf(why, why_cap, "n_dims %" PRIu32 " is not in 1..%d", n_dims, PFG_MAX_DIMS);
        return PF_ERR_FORMAT;
    }
    /* Range-check the raw id before it becomes a pf_type: out-of-range enum values are UB-prone. */
    const pf_type_traits *tr = type_id < PF_TYPE_COUNT ? pf_type_get((pf_type)type_id) : NULL;
    if (tr == NULL) {
        snprintf(why, why_cap, "unknown tensor type %" PRIu32, type_id);
        return PF_ERR_UNSUPPORTED;
    }
    /* ne == 0 is accepted (ggml allows empty tensors; they occupy no bytes); negative is not. */
    int64_t rows = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] < 0) {
            snprintf(why, why_cap, "ne[%" PRIu32 "] = %" PRId64 " is negative", d, ne[d]);
            return PF_ERR_FORMAT;
        }
        if (d > 0 && (rows = mul_nonneg(rows, ne[d])) < 0) {
            snprintf(why, why_cap, "product of dims overflows int64");
            return PF_ERR_FORMAT;
        }
    }
    if (mul_nonneg(ne[0], rows) < 0) {
        snprintf(why, why_cap, "product of dims overflows int64");
        return PF_ERR_FORMAT;
    }
    if (ne[0] % tr->block_size != 0) {
        snprintf(why, why_cap, "ne[0] = %" PRId64 " is not a multiple of the %s block size %" PRId64, ne[0], tr->name,
                 tr->block_size);
        return PF_ERR_FORMAT;
    }
    uint64_t blocks = (uint64_t)(ne[0] / tr->block_size);
    if (blocks > SIZE_MAX / tr->type_size) {
        snprintf(why, why_cap, "row size overflows size_t");
        return PF_ERR_FORMAT;
    }
    size_t row = pf_row_size((pf_type)type_id, ne[0]);
    if (rows != 0 && row > SIZE_MAX / (uint64_t)rows) {
        snprintf(why, why_cap, "byte size overflows size_t");
        return PF_ERR_FORMAT;
    }
    *nbytes = row * (size_t)rows;
    return PF_OK;
}
