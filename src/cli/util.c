/* Shared helpers of the CLI: error printing, formatting, JSON strings, progress bars. */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int cli_fail(const char *cmd, const pf_error *err) {
    fprintf(stderr, "phiforge %s: %s\n", cmd, err && err->msg[0] ? err->msg : pf_status_str(err ? err->code : -1));
    return 1;
}

int cli_failf(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "phiforge %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

const char *cli_human_bytes(double b, char *buf, size_t cap) {
    const char *unit[] = {"B", "KB", "MB", "GB", "TB"};
    int u = 0;
    while (b >= 1000.0 && u < 4) { b /= 1000.0; u++; }
    snprintf(buf, cap, u ? "%.2f %s" : "%.0f %s", b, unit[u]);
    return buf;
}

const char *cli_human_count(double n, char *buf, size_t cap) {
    const char *unit[] = {"", " K", " M", " B", " T"};
    int u = 0;
    while (n >= 1000.0 && u < 4) { n /= 1000.0; u++; }
    snprintf(buf, cap, u ? "%.2f%s" : "%.0f%s", n, unit[u]);
    return buf;
}

const char *cli_shape(const int64_t *ne, uint32_t n_dims, char *buf, size_t cap) {
    size_t off = 0;
    off += (size_t)snprintf(buf, cap, "[");
    for (uint32_t i = 0; i < n_dims && off < cap; i++)
        off += (size_t)snprintf(buf + off, cap - off, i ? ", %lld" : "%lld", (long long)ne[i]);
    if (off < cap) snprintf(buf + off, cap - off, "]");
    return buf;
}

void cli_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20) fprintf(f, "\\u%04x", *p);
            else fputc(*p, f);
        }
    }
    fputc('"', f);
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cli_progress_start(cli_progress *p, const char *label, double total) {
    p->tty = isatty(STDERR_FILENO);
    p->label = label;
    p->total = total > 0 ? total : 1;
    p->done = 0;
    p->t0 = cli_now();
    p->last_draw = 0;
    p->rate_unit = NULL;
}

static void fmt_duration(double s, char *buf, size_t cap) {
    if (s < 0 || s > 1e7) { snprintf(buf, cap, "--:--"); return; }
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, cap, "%02d:%02d", t / 60, t % 60);
}

void cli_progress_update(cli_progress *p, double done, const char *item) {
    p->done = done;
    if (!p->tty) return;
    double now = cli_now();
    if (now - p->last_draw < 0.1 && done < p->total) return;
    p->last_draw = now;
    double frac = done / p->total, el = now - p->t0;
    if (frac > 1) frac = 1;
    char eta[32], elapsed[32];
    fmt_duration(frac > 0 ? el / frac - el : -1, eta, sizeof eta);
    fmt_duration(el, elapsed, sizeof elapsed);
    char bar[31];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    char rate[48] = "";
    if (p->rate_unit && el > 0) snprintf(rate, sizeof rate, " %.1f %s/s", done / el, p->rate_unit);
    fprintf(stderr, "\r%s [%s] %5.1f%% %s<%s%s %-40.40s", p->label, bar, frac * 100, elapsed, eta, rate,
            item ? item : "");
    fflush(stderr);
}

void cli_progress_finish(cli_progress *p) {
    if (!p->tty) return;
    p->last_draw = 0;
    cli_progress_update(p, p->total, "done");
    fputc('\n', stderr);
}

char *cli_join_args(int argc, char **argv) {
    size_t n = 1;
    for (int i = 0; i < argc; i++) n += strlen(argv[i]) + 1;
    char *s = malloc(n);
    if (!s) return NULL;
    s[0] = '\0';
    for (int i = 0; i < argc; i++) {
        if (i) strcat(s, " ");
        strcat(s, argv[i]);
    }
    return s;
}

ssize_t cli_read_message(bool tty, char **line, size_t *cap) {
    for (;;) {
        if (tty) fputs("> ", stdout), fflush(stdout);
        ssize_t len = getline(line, cap, stdin);
        if (len < 0) return -1;
        while (len > 0 && ((*line)[len - 1] == '\n' || (*line)[len - 1] == '\r')) (*line)[--len] = 0;
        if (len > 0) return len;
    }
}
