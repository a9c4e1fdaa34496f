/* phiforge quantize IN.gguf OUT.gguf TYPE — requantize every 2-D weight, streaming tensor by tensor.
 *
 * TYPE is a tensor type (Q4_0, Q8_0, Q4_K, F16, ...) or one of llama.cpp's mixes Q4_K_M / Q5_K_M;
 * which type each tensor gets is pf_quant_recipe_type's rule (llama.cpp's: output.weight at 6 bits
 * for 4/5-bit files, more bits on attn_qkv and some ffn_down in the mixes, norms and 1-D
 * tensors untouched, llama.cpp's fallbacks for rows that do not split into blocks). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: phiforge quantize [-t THREADS] IN.gguf OUT.gguf TYPE\n"
               "  TYPE: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K IQ4_NL,\n"
               "        or the mixes Q4_K_M, Q5_K_M (as llama.cpp's recipe)\n"
               "  -t, --threads N   threads (default: all cores)\n");
}

typedef struct quant_job {
    const pf_gguf *in;
    pf_compute *comp;
    int64_t *src_index;   /* writer tensor i -> source tensor index */
    pf_type *dst_type;
    cli_progress prog;
    double done_bytes;
    float *f32;           /* chunk buffer */
    size_t f32_cap;       /* in floats    */
} quant_job;

/* Writer callback: converts source tensor rows in chunks (dequantize, then quantize). */
static int fill_tensor(void *ctx, int64_t i, void *dst, size_t nbytes, pf_error *err) {
    quant_job *q = ctx;
    const pf_tensor_info *t = pf_gguf_tensor(q->in, q->src_index[i]);
    int64_t ne0 = t->ne[0], rows = pf_tensor_nelements(t) / ne0;
    size_t src_row = pf_row_size(t->type, ne0), dst_row = pf_row_size(q->dst_type[i], ne0);
    if (dst_row * (size_t)rows != nbytes) return pf_error_set(err, PF_ERR_ARG, "quantize: size mismatch for %s", t->name);
    int64_t chunk = (int64_t)(q->f32_cap / (size_t)ne0);
    if (chunk < 1) {
        float *nb = realloc(q->f32, (size_t)ne0 * sizeof(float));
        if (!nb) return pf_error_set(err, PF_ERR_NOMEM, "quantize: out of memory for a row of %s", t->name);
        q->f32 = nb, q->f32_cap = (size_t)ne0, chunk = 1;
    }
    for (int64_t r = 0; r < rows; r += chunk) {
        int64_t n = rows - r < chunk ? rows - r : chunk;
        int rc = pf_dequantize(q->comp, (const char *)t->data + (size_t)r * src_row, t->type, n, ne0, q->f32, err);
        if (!rc) rc = pf_quantize(q->comp, q->f32, q->dst_type[i], n, ne0, (char *)dst + (size_t)r * dst_row, err);
        if (rc) return rc;
        q->done_bytes += (double)(n * (int64_t)src_row);
        cli_progress_update(&q->prog, q->done_bytes, t->name);
    }
    return PF_OK;
}

int cmd_quantize(int argc, char **argv) {
    static const struct option opts[] = {{"threads", required_argument, 0, 't'}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int threads = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ht:", opts, NULL)) != -1) {
        if (c == 't') threads = atoi(optarg);
        else if (c == 'h') { usage(stdout); return 0; }
        else { usage(stderr); return 1; }
    }
    if (argc - optind != 3) { usage(stderr); return 1; }
    const char *in_path = argv[optind], *out_path = argv[optind + 1], *type_name = argv[optind + 2];
    pf_error err = {0};
    pf_quant_recipe plan;
    if (pf_quant_recipe_parse(type_name, &plan, &err)) return cli_fail("quantize", &err);

    pf_gguf *in = NULL;
    pf_gguf_writer *w = NULL;
    quant_job q = {0};
    int rc = 1;
    if (pf_gguf_open(in_path, &in, &err) || pf_gguf_writer_create(&w, &err) ||
        pf_compute_create(threads, PF_ISA_AUTO, &q.comp, &err) || pf_gguf_writer_copy_kvs(w, in, &err))
        goto fail;
    int64_t n_layer = 0, nt = pf_gguf_n_tensors(in);
    const char *arch = NULL;
    if (pf_gguf_get_str(in, "general.architecture", &arch, NULL) == PF_OK) {
        char key[256];
        snprintf(key, sizeof key, "%s.block_count", arch);
        pf_gguf_get_int(in, key, &n_layer, NULL);
    }
    q.in = in;
    q.src_index = calloc((size_t)nt + 1, sizeof *q.src_index);
    q.dst_type = calloc((size_t)nt + 1, sizeof *q.dst_type);
    q.f32_cap = 4u << 20; /* 16 MiB of floats per chunk */
    q.f32 = malloc(q.f32_cap * sizeof(float));
    if (!q.src_index || !q.dst_type || !q.f32) { pf_error_set(&err, PF_ERR_NOMEM, "out of memory"); goto fail; }
    double total = 0;
    for (int64_t i = 0; i < nt; i++) {
        const pf_tensor_info *t = pf_gguf_tensor(in, i);
        pf_type nt_type = pf_quant_recipe_type(&plan, t->name, t->n_dims, t->ne[0], t->type, n_layer);
        q.src_index[i] = i;
        q.dst_type[i] = nt_type;
        /* Unchanged tensors are copied as they are (no requantization loss). */
        if (pf_gguf_writer_add_tensor(w, t->name, nt_type, t->n_dims, t->ne, nt_type == t->type ? t->data : NULL, &err))
            goto fail;
        if (nt_type != t->type) total += (double)t->nbytes;
    }
    if (pf_gguf_writer_set_u32(w, "general.file_type", plan.file_type, &err) ||
        pf_gguf_writer_set_u32(w, "general.quantization_version", 2, &err))
        goto fail;
    cli_progress_start(&q.prog, "quantize", total);
    if (pf_gguf_writer_write(w, out_path, fill_tensor, &q, &err)) goto fail;
    cli_progress_finish(&q.prog);
    rc = 0;
    {
        pf_gguf *out = NULL;
        char b1[32], b2[32];
        if (pf_gguf_open(out_path, &out, &err) == PF_OK) {
            fprintf(stderr, "quantize: %s (%s) -> %s (%s, %s)\n", in_path,
                    cli_human_bytes((double)pf_gguf_file_size(in), b1, sizeof b1), out_path,
                    cli_human_bytes((double)pf_gguf_file_size(out), b2, sizeof b2), type_name);
            pf_gguf_close(out);
        } else {
            rc = cli_fail("quantize", &err);
        }
    }
    goto done;
fail:
    if (q.prog.tty) fputc('\n', stderr);
    rc = cli_fail("quantize", &err);
done:
    free(q.src_index);
    free(q.dst_type);
    free(q.f32);
    pf_compute_free(q.comp);
    pf_gguf_writer_free(w);
    pf_gguf_close(in);
    return rc;
}
