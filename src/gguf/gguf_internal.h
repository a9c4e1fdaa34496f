/* Helpers shared by the GGUF reader and writer (not part of the public API). */
#ifndef PF_GGUF_INTERNAL_H
#define PF_GGUF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "phiforge.h"

#define PFG_MAGIC "GGUF"
#define PFG_DEFAULT_ALIGNMENT 32u
#define PFG_ALIGNMENT_KEY "general.alignment"
/* Arrays of arrays deeper than this are rejected by the reader and refused by the writer;
 * real files never nest at all, and the bound keeps the recursive parser's stack small. */
#define PFG_MAX_DEPTH 8
#define PFG_MAX_DIMS 4

/* Smallest encodings, used to bound counts by the bytes left before allocating anything. */
#define PFG_MIN_KV_BYTES 13u     /* u64 key length + u32 type + 1-byte scalar              */
#define PFG_MIN_TENSOR_BYTES 32u /* u64 name length + u32 n_dims + one i64 + u32 + u64     */

/* Size of one encoded element of an array of `t` in the file (strings: their length field,
 * arrays: type + count), i.e. a lower bound on what each element consumes; 0 if unknown. */
size_t pfg_min_elem_bytes(pf_gguf_type t);

/* Validates a tensor shape and type and computes its byte size, refusing any overflow.
 * On failure returns PF_ERR_FORMAT / PF_ERR_UNSUPPORTED and writes the reason to `why`. */
int pfg_tensor_nbytes(uint32_t type_id, uint32_t n_dims, const int64_t *ne, size_t *nbytes, char *why, size_t why_cap);

static inline size_t pfg_pad(size_t n, size_t align) { return (n + align - 1) / align * align; }
static inline int pfg_is_pow2(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

#endif
