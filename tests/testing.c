#include "testing.h"

#include <math.h>
#include <unistd.h>

void *pf_test_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    if (buf && size) *size = (size_t)n;
    return buf;
}

const char *pf_test_data_path(char *buf, size_t cap, const char *subdir, const char *name) {
    snprintf(buf, cap, "tests/data/%s", name);
    if (access(buf, R_OK) == 0) return buf;
    snprintf(buf, cap, "../shared/golden/%s/%s", subdir, name);
    if (access(buf, R_OK) == 0) return buf;
    return NULL;
}

float pf_test_gauss(pf_test_rng *r) { /* Box-Muller */
    float u1 = (pf_test_uniform(r) + 1.0f) * 0.5f, u2 = (pf_test_uniform(r) + 1.0f) * 0.5f;
    if (u1 < 1e-7f) u1 = 1e-7f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}
