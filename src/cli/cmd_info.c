/* phiforge info FILE.gguf [--json] — architecture, hyperparameters, tokenizer, tensors. */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: phiforge info FILE.gguf [--json]\n"
               "  Prints the architecture, hyperparameters, tokenizer kind, every metadata key,\n"
               "  every tensor (type, shape, bytes), the parameter count and the file size.\n"
               "  --json   machine-readable output\n");
}

static const char *tokenizer_kind(const char *model) {
    if (!model) return "none";
    if (!strcmp(model, "llama")) return "SentencePiece BPE (llama)";
    if (!strcmp(model, "bert")) return "WordPiece (bert)";
    if (!strcmp(model, "gpt2")) return "byte-level BPE (gpt2)";
    if (!strcmp(model, "no_vocab")) return "none";
    return "other";
}

/* Reads element j of a scalar array as double (for printing). */
static double arr_num(const pf_gguf_value *v, uint64_t j, bool *is_int) {
    size_t sz = pf_gguf_type_size(v->v.arr.type);
    const unsigned char *p = (const unsigned char *)v->v.arr.data + j * sz;
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; float f32;
            uint64_t u64; int64_t i64; double f64; } u;
    memcpy(&u, p, sz);
    *is_int = true;
    switch (v->v.arr.type) {
    case PF_GGUF_UINT8: case PF_GGUF_BOOL: return u.u8;
    case PF_GGUF_INT8: return u.i8;
    case PF_GGUF_UINT16: return u.u16;
    case PF_GGUF_INT16: return u.i16;
    case PF_GGUF_UINT32: return u.u32;
    case PF_GGUF_INT32: return u.i32;
    case PF_GGUF_UINT64: return (double)u.u64;
    case PF_GGUF_INT64: return (double)u.i64;
    case PF_GGUF_FLOAT32: *is_int = false; return u.f32;
    case PF_GGUF_FLOAT64: *is_int = false; return u.f64;
    default: return 0;
    }
}

static void print_num(FILE *f, double x, bool is_int) {
    if (is_int) fprintf(f, "%.0f", x);
    else if (isfinite(x)) fprintf(f, "%.9g", x);
    else fputs("null", f);
}

/* One value, text form; long strings and arrays are abbreviated. */
static void print_value_text(FILE *f, const pf_gguf_value *v) {
    switch (v->type) {
    case PF_GGUF_STRING: {
        fputc('"', f);
        uint64_t n = v->v.str.len;
        for (uint64_t i = 0; i < n && i < 60; i++) {
            char c = v->v.str.ptr[i];
            if (c == '\n') fputs("\\n", f);
            else fputc(c, f);
        }
        fputs(n > 60 ? "\"…" : "\"", f);
        break;
    }
    case PF_GGUF_ARRAY: {
        fprintf(f, "[%s × %" PRIu64 "]", pf_gguf_type_name(v->v.arr.type), v->v.arr.n);
        if (v->v.arr.type != PF_GGUF_STRING && v->v.arr.type != PF_GGUF_ARRAY) {
            fputs(" ", f);
            for (uint64_t j = 0; j < v->v.arr.n && j < 4; j++) {
                bool ii;
                double x = arr_num(v, j, &ii);
                if (j) fputs(", ", f);
                print_num(f, x, ii);
            }
            if (v->v.arr.n > 4) fputs(", …", f);
        } else if (v->v.arr.type == PF_GGUF_STRING && v->v.arr.n) {
            fprintf(f, " \"%.20s\"%s", v->v.arr.items[0].v.str.ptr, v->v.arr.n > 1 ? ", …" : "");
        }
        break;
    }
    case PF_GGUF_BOOL: fputs(v->v.u ? "true" : "false", f); break;
    case PF_GGUF_FLOAT32: case PF_GGUF_FLOAT64: print_num(f, v->v.f, false); break;
    case PF_GGUF_INT8: case PF_GGUF_INT16: case PF_GGUF_INT32: case PF_GGUF_INT64:
        fprintf(f, "%" PRId64, v->v.i); break;
    default: fprintf(f, "%" PRIu64, v->v.u); break;
    }
}

/* One value, JSON form: scalars and short numeric arrays in full, long arrays summarized. */
static void print_value_json(FILE *f, const pf_gguf_value *v) {
    switch (v->type) {
    case PF_GGUF_STRING: cli_json_str(f, v->v.str.ptr); break;
    case PF_GGUF_ARRAY: {
        bool scalar = v->v.arr.type != PF_GGUF_STRING && v->v.arr.type != PF_GGUF_ARRAY;
        if (scalar && v->v.arr.n <= 256) {
            fputc('[', f);
            for (uint64_t j = 0; j < v->v.arr.n; j++) {
                bool ii;
                double x = arr_num(v, j, &ii);
                if (j) fputc(',', f);
                if (v->v.arr.type == PF_GGUF_BOOL) fputs(x ? "true" : "false", f);
                else print_num(f, x, ii);
            }
            fputc(']', f);
        } else {
            fprintf(f, "{\"array_type\":\"%s\",\"n\":%" PRIu64 "}", pf_gguf_type_name(v->v.arr.type), v->v.arr.n);
        }
        break;
    }
    default: print_value_text(f, v); break;
    }
}

typedef struct info_summary {
    const char *arch, *name, *tok_model;
    int64_t n_tokens, n_params;
} info_summary;

static void summarize(const pf_gguf *g, info_summary *s) {
    memset(s, 0, sizeof *s);
    pf_gguf_get_str(g, "general.architecture", &s->arch, NULL);
    pf_gguf_get_str(g, "general.name", &s->name, NULL);
    pf_gguf_get_str(g, "tokenizer.ggml.model", &s->tok_model, NULL);
    const pf_gguf_value *toks = pf_gguf_get(g, "tokenizer.ggml.tokens");
    s->n_tokens = toks && toks->type == PF_GGUF_ARRAY ? (int64_t)toks->v.arr.n : 0;
    for (int64_t i = 0; i < pf_gguf_n_tensors(g); i++) s->n_params += pf_tensor_nelements(pf_gguf_tensor(g, i));
}

/* Hyperparameters are the "<arch>." keys. */
static bool is_hparam(const char *key, const char *arch) {
    size_t n = arch ? strlen(arch) : 0;
    return arch && !strncmp(key, arch, n) && key[n] == '.';
}

static void print_text(const pf_gguf *g, const info_summary *s) {
    char b1[64], b2[64];
    printf("file:          %s (%s, GGUF v%u, alignment %zu)\n", pf_gguf_path(g),
           cli_human_bytes((double)pf_gguf_file_size(g), b1, sizeof b1), pf_gguf_version(g), pf_gguf_alignment(g));
    printf("architecture:  %s\n", s->arch ? s->arch : "(none)");
    if (s->name) printf("name:          %s\n", s->name);
    printf("parameters:    %s (%" PRId64 ")\n", cli_human_count((double)s->n_params, b2, sizeof b2), s->n_params);
    printf("tokenizer:     %s", tokenizer_kind(s->tok_model));
    if (s->n_tokens) printf(", %" PRId64 " tokens", s->n_tokens);
    printf("\n\nhyperparameters:\n");
    for (int64_t i = 0; i < pf_gguf_n_kv(g); i++) {
        const char *k = pf_gguf_key(g, i);
        if (!is_hparam(k, s->arch)) continue;
        printf("  %-42s ", k + strlen(s->arch) + 1);
        print_value_text(stdout, pf_gguf_value_at(g, i));
        putchar('\n');
    }
    printf("\nmetadata (%" PRId64 " keys):\n", pf_gguf_n_kv(g));
    for (int64_t i = 0; i < pf_gguf_n_kv(g); i++) {
        const pf_gguf_value *v = pf_gguf_value_at(g, i);
        printf("  %-42s %-7s ", pf_gguf_key(g, i), pf_gguf_type_name(v->type));
        print_value_text(stdout, v);
        putchar('\n');
    }
    printf("\ntensors (%" PRId64 "):\n", pf_gguf_n_tensors(g));
    printf("  %-36s %-7s %-18s %12s\n", "name", "type", "shape", "bytes");
    for (int64_t i = 0; i < pf_gguf_n_tensors(g); i++) {
        const pf_tensor_info *t = pf_gguf_tensor(g, i);
        printf("  %-36s %-7s %-18s %12zu\n", t->name, pf_type_name(t->type), cli_shape(t->ne, t->n_dims, b1, sizeof b1),
               t->nbytes);
    }
}

static void print_json(const pf_gguf *g, const info_summary *s) {
    printf("{\"file\":");
    cli_json_str(stdout, pf_gguf_path(g));
    printf(",\"file_size\":%zu,\"version\":%u,\"alignment\":%zu,\"architecture\":", pf_gguf_file_size(g),
           pf_gguf_version(g), pf_gguf_alignment(g));
    if (s->arch) cli_json_str(stdout, s->arch); else fputs("null", stdout);
    printf(",\"name\":");
    if (s->name) cli_json_str(stdout, s->name); else fputs("null", stdout);
    printf(",\"n_params\":%" PRId64 ",\"tokenizer\":{\"model\":", s->n_params);
    if (s->tok_model) cli_json_str(stdout, s->tok_model); else fputs("null", stdout);
    printf(",\"kind\":\"%s\",\"n_tokens\":%" PRId64 "},\"hyperparameters\":{", tokenizer_kind(s->tok_model), s->n_tokens);
    int first = 1;
    for (int64_t i = 0; i < pf_gguf_n_kv(g); i++) {
        const char *k = pf_gguf_key(g, i);
        if (!is_hparam(k, s->arch)) continue;
        if (!first) putchar(',');
        first = 0;
        cli_json_str(stdout, k + strlen(s->arch) + 1);
        putchar(':');
        print_value_json(stdout, pf_gguf_value_at(g, i));
    }
    printf("},\"metadata\":{");
    for (int64_t i = 0; i < pf_gguf_n_kv(g); i++) {
        if (i) putchar(',');
        cli_json_str(stdout, pf_gguf_key(g, i));
        putchar(':');
        print_value_json(stdout, pf_gguf_value_at(g, i));
    }
    printf("},\"tensors\":[");
    for (int64_t i = 0; i < pf_gguf_n_tensors(g); i++) {
        const pf_tensor_info *t = pf_gguf_tensor(g, i);
        if (i) putchar(',');
        printf("{\"name\":");
        cli_json_str(stdout, t->name);
        printf(",\"type\":\"%s\",\"shape\":[", pf_type_name(t->type));
        for (uint32_t d = 0; d < t->n_dims; d++) printf(d ? ",%" PRId64 : "%" PRId64, t->ne[d]);
        printf("],\"n_elements\":%" PRId64 ",\"bytes\":%zu,\"offset\":%" PRIu64 "}", pf_tensor_nelements(t), t->nbytes,
               t->offset);
    }
    printf("]}\n");
}

int cmd_info(int argc, char **argv) {
    static const struct option opts[] = {{"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hj", opts, NULL)) != -1) {
        if (c == 'j') json = true;
        else if (c == 'h') { usage(stdout); return 0; }
        else { usage(stderr); return 1; }
    }
    if (optind != argc - 1) { usage(stderr); return 1; }
    pf_error err = {0};
    pf_gguf *g = NULL;
    if (pf_gguf_open(argv[optind], &g, &err) != PF_OK) return cli_fail("info", &err);
    info_summary s;
    summarize(g, &s);
    if (json) print_json(g, &s);
    else print_text(g, &s);
    pf_gguf_close(g);
    return 0;
}
