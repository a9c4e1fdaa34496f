/* Plain text: paragraphs (runs of non-blank lines) become sections; lines are kept verbatim.
 * Invalid UTF-8 is read as Latin-1, which is what legacy text files mostly are. */
#include <stdlib.h>

#include "extract/extract_internal.h"

int pf_x_txt(const xin *in, pf_xresult *r, pf_error *err) {
    char *t;
    size_t n;
    int rc = xtext_decode(in, true, r, &t, &n, err);
    if (rc != PF_OK) return rc;
    xb b;
    xb_init(&b, in->budget);
    xb_paragraphs(&b, t, n);
    free(t);
    pf_xdoc doc = {0};
    return xb_emit(&b, in, r, &doc, err);
}
