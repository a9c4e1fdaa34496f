/* phiforge tensor -m FILE.gguf -t NAME -o OUT.f32 — one tensor, dequantized to raw LE float32. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: phiforge tensor -m FILE.gguf -t NAME -o OUT.f32\n"
               "  Writes tensor NAME dequantized to raw little-endian float32, ne0 fastest.\n"
               "  -m, --model FILE   GGUF file\n"
               "  -t, --tensor NAME  tensor name (see phiforge info)\n"
               "  -o, --output FILE  output path ('-' for stdout)\n");
}

int cmd_tensor(int argc, char **argv) {
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"tensor", required_argument, 0, 't'},
                                         {"output", required_argument, 0, 'o'}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *model = NULL, *name = NULL, *out = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hm:t:o:", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 't': name = optarg; break;
        case 'o': out = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (!model || !name || !out || optind != argc) { usage(stderr); return 1; }

    pf_error err = {0};
    pf_gguf *g = NULL;
    if (pf_gguf_open(model, &g, &err) != PF_OK) return cli_fail("tensor", &err);
    int rc = 1;
    FILE *f = NULL;
    float *buf = NULL;
    int64_t ti = pf_gguf_find_tensor(g, name);
    if (ti < 0) { cli_failf("tensor", "%s: no tensor named '%s'", model, name); goto done; }
    const pf_tensor_info *t = pf_gguf_tensor(g, ti);
    const pf_type_traits *tr = pf_type_get(t->type);
    if (!tr || !tr->to_float) {
        cli_failf("tensor", "%s: tensor '%s' has type %s, which cannot be dequantized", model, name, pf_type_name(t->type));
        goto done;
    }
    int64_t ne0 = t->ne[0], rows = pf_tensor_nelements(t) / (ne0 ? ne0 : 1);
    size_t row_bytes = pf_row_size(t->type, ne0);
    buf = malloc((size_t)ne0 * sizeof(float));
    f = !strcmp(out, "-") ? stdout : fopen(out, "wb");
    if (!buf || !f) { cli_failf("tensor", "%s: %s", out, buf ? "cannot open for writing" : "out of memory"); goto done; }
    for (int64_t r = 0; r < rows; r++) {
        tr->to_float((const char *)t->data + (size_t)r * row_bytes, buf, ne0);
        if (fwrite(buf, sizeof(float), (size_t)ne0, f) != (size_t)ne0) { cli_failf("tensor", "%s: write failed", out); goto done; }
    }
    if (f != stdout && fclose(f) != 0) { f = NULL; cli_failf("tensor", "%s: write failed", out); goto done; }
    f = NULL;
    rc = 0;
done:
    if (f && f != stdout) fclose(f);
    free(buf);
    pf_gguf_close(g);
    return rc;
}
