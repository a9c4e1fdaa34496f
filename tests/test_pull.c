/* `phiforge pull` against a small HTTP/1.1 server started here on 127.0.0.1 (no other network):
 * it serves tests/data/bert-tiny-cls.gguf (4.7 MB) with Range support, redirects, 404s, a
 * connection dropped mid-body, a server that ignores Range, and a slow mode for the lock test.
 * The reference hash is coreutils' sha256sum of the same file, not our own SHA-256.
 * Checks: full download + verify; an interrupted download that resumes from the .part with a
 * Range request; automatic retries; 200-restart and 416-complete; sha256 / size mismatch
 * (error, .part removed); 404 and refused connections (clear errors); redirects; cancel and
 * resume; two concurrent pulls of one file; the registry, cache dir and URL rules; the resolver;
 * and the CLI: `phiforge pull NAME` then `phiforge embed -m NAME` equals embedding with the path. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testing.h"

#define BIN "./build/phiforge"

/* ------------------------------------------------------------------------------------------ */
/* The test server                                                                              */
/* ------------------------------------------------------------------------------------------ */

typedef struct server {
    int lfd, port;
    const uint8_t *data;
    size_t size;
    atomic_int stop;
    atomic_long drop_after;   /* > 0: the next /drop.bin body stops after this many bytes    */
    atomic_int slow_us;       /* sleep per 64 KiB chunk sent                                 */
    pthread_t th;
    pthread_mutex_t mu;       /* guards the fields below                                     */
    int n_requests;
    char last_path[512], last_range[64];
} server;

static void send_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return; /* the client went away */
        p += w;
        n -= (size_t)w;
    }
}

static void send_status(int fd, const char *status, const char *extra) {
    char h[512];
    int n = snprintf(h, sizeof h, "HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close\r\n%s\r\n", status, extra);
    send_all(fd, h, (size_t)n);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static void serve_one(server *s, int fd) {
    char req[4096];
    size_t got = 0;
    while (got < sizeof req - 1) { /* read the request head */
        ssize_t r = recv(fd, req + got, sizeof req - 1 - got, 0);
        if (r <= 0) return;
        got += (size_t)r;
        req[got] = 0;
        if (strstr(req, "\r\n\r\n")) break;
    }
    char path[512] = "", range[64] = "";
    sscanf(req, "GET %511s", path);
    const char *rh = strcasestr(req, "\r\nRange:");
    if (rh) sscanf(rh + 8, " %63[^\r\n]", range);
    pthread_mutex_lock(&s->mu);
    s->n_requests++;
    snprintf(s->last_path, sizeof s->last_path, "%s", path);
    snprintf(s->last_range, sizeof s->last_range, "%s", range);
    pthread_mutex_unlock(&s->mu);

    if (!strcmp(path, "/redirect")) { send_status(fd, "302 Found", "Location: /file.bin\r\n"); return; }
    bool file = !strcmp(path, "/file.bin") || !strcmp(path, "/drop.bin") || !strcmp(path, "/norange.bin") ||
                !strcmp(path, "/badrange.bin") || ends_with(path, ".gguf");
    if (!file) { send_status(fd, "404 Not Found", ""); return; }

    size_t start = 0;
    bool partial = false;
    long long rs;
    if (range[0] && strcmp(path, "/norange.bin") && sscanf(range, "bytes=%lld-", &rs) == 1 && rs >= 0) {
        if ((size_t)rs >= s->size) {
            char cr[96];
            snprintf(cr, sizeof cr, "Content-Range: bytes */%zu\r\n", s->size);
            send_status(fd, "416 Range Not Satisfiable", cr);
            return;
        }
        start = (size_t)rs;
        partial = true;
        if (!strcmp(path, "/badrange.bin")) start = 0; /* a broken server: 206 from the wrong offset */
    }
    char h[512];
    int n = partial ? snprintf(h, sizeof h, "HTTP/1.1 206 Partial Content\r\nContent-Length: %zu\r\nContent-Range: "
                                            "bytes %zu-%zu/%zu\r\nConnection: close\r\n\r\n",
                               s->size - start, start, s->size - 1, s->size)
                    : snprintf(h, sizeof h, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nAccept-Ranges: bytes\r\n"
                                            "Connection: close\r\n\r\n", s->size);
    send_all(fd, h, (size_t)n);
    size_t end = s->size;
    if (!strcmp(path, "/drop.bin")) {
        long drop = atomic_exchange(&s->drop_after, 0); /* only the first time */
        if (drop > 0 && start + (size_t)drop < end) end = start + (size_t)drop;
    }
    for (size_t at = start; at < end;) {
        size_t k = end - at < 65536 ? end - at : 65536;
        send_all(fd, s->data + at, k);
        at += k;
        int us = atomic_load(&s->slow_us);
        if (us) usleep((useconds_t)us);
    }
}

static void *server_main(void *arg) {
    server *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd pfd = {s->lfd, POLLIN, 0};
        if (poll(&pfd, 1, 50) <= 0) continue;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) continue;
        serve_one(s, fd);
        shutdown(fd, SHUT_WR); /* a clean FIN after the last byte: the client reads them all */
        char sink[256];
        while (recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {}
        close(fd);
    }
    return NULL;
}

static int listen_local(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 16) ||
        getsockname(fd, (struct sockaddr *)&a, &len)) {
        if (fd >= 0) close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static int server_start(server *s, const uint8_t *data, size_t size) {
    memset(s, 0, sizeof *s);
    s->data = data;
    s->size = size;
    pthread_mutex_init(&s->mu, NULL);
    s->lfd = listen_local(&s->port);
    if (s->lfd < 0) return -1;
    return pthread_create(&s->th, NULL, server_main, s);
}

static void server_stop(server *s) {
    atomic_store(&s->stop, 1);
    pthread_join(s->th, NULL);
    close(s->lfd);
    pthread_mutex_destroy(&s->mu);
}

static int requests(server *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->n_requests;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static char tmpdir[256];

static bool exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static long long file_size(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 ? (long long)sb.st_size : -1;
}

/* sha256sum's hex of a file: the independent reference. */
static bool ref_sha256(const char *path, char out[65]) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    FILE *p = popen(cmd, "r");
    if (!p) return false;
    bool ok = fscanf(p, "%64s", out) == 1;
    pclose(p);
    return ok && strlen(out) == 64;
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, n, f);
    fclose(f);
}

static void url_of(const server *s, const char *path, char *out, size_t cap) {
    snprintf(out, cap, "http://127.0.0.1:%d%s", s->port, path);
}

static void dest_of(const char *name, char *out, size_t cap) { snprintf(out, cap, "%s/dl/%s", tmpdir, name); }

static void rm_outputs(const char *dest) {
    char p[600];
    unlink(dest);
    snprintf(p, sizeof p, "%s.part", dest);
    unlink(p);
}

typedef struct prog { int64_t last, calls, cancel_at; bool monotonic; int64_t first; } prog;
static int on_prog(void *user, int64_t done, int64_t total) {
    prog *g = user;
    if (g->calls == 0) g->first = done;
    if (done < g->last) g->monotonic = false;
    g->last = done;
    g->calls++;
    (void)total;
    return g->cancel_at > 0 && done >= g->cancel_at;
}

/* ------------------------------------------------------------------------------------------ */
/* Download tests                                                                               */
/* ------------------------------------------------------------------------------------------ */

static void test_full(pf_test *t, server *s, const char *want) {
    char url[256], dest[512], got[65];
    url_of(s, "/file.bin", url, sizeof url);
    dest_of("full.gguf", dest, sizeof dest);
    pf_download_params p = pf_download_default_params();
    p.url = url;
    p.dest = dest;
    p.expected_size = (int64_t)s->size;
    p.expected_sha256 = want;
    prog g = {0, 0, 0, true, -1};
    p.progress = on_prog;
    p.user = &g;
    pf_download_result r;
    pf_error err = {0};
    int rc = pf_download(&p, &r, &err);
    CHECK(t, rc == PF_OK, "full download: %s", err.msg);
    CHECK(t, r.bytes == (int64_t)s->size && r.sha256_verified && !strcmp(r.sha256, want), "bytes %lld sha %s",
          (long long)r.bytes, r.sha256);
    CHECK(t, ref_sha256(dest, got) && !strcmp(got, want), "file on disk hashes to %s", got);
    CHECK(t, g.monotonic && g.first == 0 && g.last == (int64_t)s->size && g.calls > 1,
          "progress: first %lld, last %lld, %lld calls", (long long)g.first, (long long)g.last, (long long)g.calls);
    char part[600];
    snprintf(part, sizeof part, "%s.part", dest);
    CHECK(t, !exists(part), "no .part after success");
    /* Second call: already present, no request. */
    int before = requests(s);
    rc = pf_download(&p, &r, &err);
    CHECK(t, rc == PF_OK && r.already_present && r.attempts == 0 && requests(s) == before, "already present");
}

static void test_resume(pf_test *t, server *s, const char *want) {
    char url[256], dest[512], part[600], got[65];
    url_of(s, "/drop.bin", url, sizeof url);
    dest_of("resume.gguf", dest, sizeof dest);
    snprintf(part, sizeof part, "%s.part", dest);
    pf_download_params p = pf_download_default_params();
    p.url = url;
    p.dest = dest;
    p.expected_sha256 = want;
    p.max_retries = 0;
    const long drop = 1000003;
    atomic_store(&s->drop_after, drop);
    pf_download_result r;
    pf_error err = {0};
    int rc = pf_download(&p, &r, &err);
    CHECK(t, rc == PF_ERR_IO && strstr(err.msg, "network error") && strstr(err.msg, "resume"),
          "interrupted download: rc %d %s", rc, err.msg);
    CHECK(t, file_size(part) == drop && !exists(dest), ".part holds the %ld bytes received: %lld", drop,
          file_size(part));
    rc = pf_download(&p, &r, &err);
    CHECK(t, rc == PF_OK, "resume: %s", err.msg);
    char range[64];
    pthread_mutex_lock(&s->mu);
    snprintf(range, sizeof range, "%s", s->last_range);
    pthread_mutex_unlock(&s->mu);
    CHECK(t, !strcmp(range, "bytes=1000003-"), "resume asked Range '%s'", range);
    CHECK(t, r.resumed_from == drop && r.http_status == 206 && r.attempts == 1, "resumed_from %lld status %d",
          (long long)r.resumed_from, r.http_status);
    CHECK(t, ref_sha256(dest, got) && !strcmp(got, want) && !strcmp(r.sha256, want), "resumed file sha %s", got);

    /* The same within one call: the drop is retried automatically. */
    rm_outputs(dest);
    atomic_store(&s->drop_after, 777777);
    p.max_retries = 2;
    rc = pf_download(&p, &r, &err);
    CHECK(t, rc == PF_OK && r.attempts == 2 && r.resumed_from == 777777, "auto-retry: rc %d attempts %d from %lld %s",
          rc, r.attempts, (long long)r.resumed_from, err.msg);
    CHECK(t, ref_sha256(dest, got) && !strcmp(got, want), "auto-retried file sha %s", got);
}

static void test_restart_and_416(pf_test *t, server *s, const char *want) {
    char url[256], dest[512], part[600], got[65];
    pf_download_result r;
    pf_error err = {0};
    /* 200 to a Range request: the part (garbage here) restarts from zero. */
    url_of(s, "/norange.bin", url, sizeof url);
    dest_of("restart.gguf", dest, sizeof dest);
    snprintf(part, sizeof part, "%s.part", dest);
    write_file(part, "garbage garbage garbage", 23);
    pf_download_params p = pf_download_default_params();
    p.url = url;
    p.dest = dest;
    p.expected_sha256 = want;
    int rc = pf_download(&p, &r, &err);
    CHECK(t, rc == PF_OK && r.http_status == 200 && r.resumed_from == 23, "200 restart: rc %d status %d %s", rc,
          r.http_status, err.msg);
    CHECK(t, ref_sha256(dest, got) && !strcmp(got, want), "restarted file sha %s", got);

    /* 206 that starts elsewhere than asked: the part restarts, and no Range is sent again */
    url_of(s, "/badrange.bin", url, sizeof url);
    dest_of("badrange.gguf", dest, sizeof dest);
    snprintf(part, sizeof part, "%s.part", dest);
    write_file(part, s->data, 4096);
    p.url = url;
    p.dest = dest;
    rc = pf_download(&p, &r, &err);
    CHECK(t, rc == PF_OK && r.attempts == 2 && r.http_status == 200, "bad range: rc %d attempts %d status %d %s", rc,
          r.attempts, r.http_status, err.msg);
    CHECK(t, ref_sha256(dest, got) && !strcmp(got, want), "bad-range file sha %s", got);

    /* 416 with the part already whole (crash between download and rename): verified, no body. */
    url_of(s, "/file.bin", url, sizeof url);
    dest_of("whole.gguf", dest, sizeof dest);
    snprintf(part, sizeof part, "%s.part", dest);
    write_file(part, s->data, s->size);
    p.url = url;
    p.dest = dest;
    rc = pf_download(&p, &r, &err);
    CHECK(t, rc == PF_OK && r.http_status == 416 && r.resumed_from == (int64_t)s->size && r.sha256_verified,
          "416 whole part: rc %d status %d %s", rc, r.http_status, err.msg);
    CHECK(t, ref_sha256(dest, got) && !strcmp(got, want), "416 file sha %s", got);

    /* 416 with a part longer than the file: restart from zero. */
    dest_of("toolong.gguf", dest, sizeof dest);
    snprintf(part, sizeof part, "%s.part", dest);
    uint8_t *big = calloc(s->size + 10, 1);
    write_file(part, big, s->size + 10);
    free(big);
    p.dest = dest;
    rc = pf_download(&p, &r, &err);
    CHECK(t, rc == PF_OK && r.attempts == 2 && r.http_status == 200, "416 too long: rc %d attempts %d status %d %s", rc,
          r.attempts, r.http_status, err.msg);
    CHECK(t, ref_sha256(dest, got) && !strcmp(got, want), "416-restarted file sha %s", got);
}

static void test_errors(pf_test *t, server *s, const char *want) {
    char url[256], dest[512], part[600];
    pf_download_result r;
    pf_error err = {0};
    pf_download_params p = pf_download_default_params();
    p.dest = dest;
    p.max_retries = 0;

    /* sha256 mismatch: error, .part removed, nothing installed. */
    url_of(s, "/file.bin", url, sizeof url);
    p.url = url;
    dest_of("badsha.gguf", dest, sizeof dest);
    snprintf(part, sizeof part, "%s.part", dest);
    char wrong[65];
    memcpy(wrong, want, 65);
    wrong[0] = wrong[0] == '0' ? '1' : '0';
    p.expected_sha256 = wrong;
    int rc = pf_download(&p, &r, &err);
    CHECK(t, rc == PF_ERR_FORMAT && strstr(err.msg, "sha256 mismatch") && strstr(err.msg, want), "sha mismatch: %s",
          err.msg);
    CHECK(t, !exists(part) && !exists(dest), "sha mismatch leaves no .part and no file");

    /* size mismatch */
    p.expected_sha256 = NULL;
    p.expected_size = (int64_t)s->size + 1;
    rc = pf_download(&p, &r, &err);
    CHECK(t, rc == PF_ERR_FORMAT && strstr(err.msg, "size mismatch"), "size mismatch: %s", err.msg);
    CHECK(t, !exists(part) && !exists(dest), "size mismatch leaves no .part and no file");
    p.expected_size = -1;

    /* 404 */
    url_of(s, "/missing.bin", url, sizeof url);
    dest_of("missing.gguf", dest, sizeof dest);
    snprintf(part, sizeof part, "%s.part", dest);
    rc = pf_download(&p, &r, &err);
    CHECK(t, rc == PF_ERR_NOT_FOUND && strstr(err.msg, "HTTP 404") && strstr(err.msg, "/missing.bin"), "404: %s",
          err.msg);
    CHECK(t, !exists(part) && !exists(dest), "404 leaves nothing");

    /* connection refused: a port that was just free */
    int port = 0, fd = listen_local(&port);
    if (fd >= 0) close(fd);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/file.bin", port);
    dest_of("refused.gguf", dest, sizeof dest);
    rc = pf_download(&p, &r, &err);
    CHECK(t, rc == PF_ERR_IO && strstr(err.msg, "network error"), "refused: %s", err.msg);

    /* a write that fails (file size limit: the same path as a full disk) is reported, the part kept */
    struct rlimit old, lim;
    if (getrlimit(RLIMIT_FSIZE, &old) == 0) {
        void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
        lim = old;
        lim.rlim_cur = 1 << 20;
        url_of(s, "/file.bin", url, sizeof url);
        dest_of("full-disk.gguf", dest, sizeof dest);
        snprintf(part, sizeof part, "%s.part", dest);
        setrlimit(RLIMIT_FSIZE, &lim);
        rc = pf_download(&p, &r, &err);
        setrlimit(RLIMIT_FSIZE, &old);
        signal(SIGXFSZ, prev);
        CHECK(t, rc == PF_ERR_IO && strstr(err.msg, "write failed") && strstr(err.msg, ".part") &&
                     file_size(part) == (1 << 20) && !exists(dest), "write failure: %s (part %lld)", err.msg,
              file_size(part));
    }

    /* bad arguments */
    pf_download_params bad = pf_download_default_params();
    CHECK(t, pf_download(&bad, &r, &err) == PF_ERR_ARG, "no url: %s", err.msg);
}

static void test_redirect_and_cancel(pf_test *t, server *s, const char *want) {
    char url[256], dest[512], part[600], got[65];
    pf_download_result r;
    pf_error err = {0};
    pf_download_params p = pf_download_default_params();
    url_of(s, "/redirect", url, sizeof url);
    dest_of("redirect.gguf", dest, sizeof dest);
    p.url = url;
    p.dest = dest;
    p.expected_sha256 = want;
    int rc = pf_download(&p, &r, &err);
    char last[512];
    pthread_mutex_lock(&s->mu);
    snprintf(last, sizeof last, "%s", s->last_path);
    pthread_mutex_unlock(&s->mu);
    CHECK(t, rc == PF_OK && !strcmp(last, "/file.bin") && r.http_status == 200, "redirect: rc %d last %s %s", rc, last,
          err.msg);
    CHECK(t, ref_sha256(dest, got) && !strcmp(got, want), "redirected file sha %s", got);

    /* cancel from the progress callback keeps the part; the next call resumes it */
    url_of(s, "/file.bin", url, sizeof url);
    dest_of("cancel.gguf", dest, sizeof dest);
    snprintf(part, sizeof part, "%s.part", dest);
    prog g = {0, 0, 500000, true, -1};
    p.progress = on_prog;
    p.user = &g;
    rc = pf_download(&p, &r, &err);
    long long kept = file_size(part);
    CHECK(t, rc == PF_ERR_IO && strstr(err.msg, "cancelled") && kept >= 500000 && kept < (long long)s->size,
          "cancel: rc %d kept %lld %s", rc, kept, err.msg);
    prog g2 = {0, 0, 0, true, -1};
    p.user = &g2;
    rc = pf_download(&p, &r, &err);
    CHECK(t, rc == PF_OK && r.resumed_from == kept && r.http_status == 206, "resume after cancel: %s", err.msg);
    CHECK(t, g2.first == kept && g2.last == (int64_t)s->size && g2.monotonic, "resume progress: first %lld last %lld",
          (long long)g2.first, (long long)g2.last);
    CHECK(t, ref_sha256(dest, got) && !strcmp(got, want), "resumed-after-cancel sha %s", got);
}

typedef struct racer { const pf_download_params *p; pf_download_result r; int rc; pf_error err; } racer;
static void *race(void *arg) {
    racer *x = arg;
    x->rc = pf_download(x->p, &x->r, &x->err);
    return NULL;
}

/* Two pulls of one file at once: the lock makes one wait; exactly one transfer happens. */
static void test_lock(pf_test *t, server *s, const char *want) {
    char url[256], dest[512], got[65];
    url_of(s, "/file.bin", url, sizeof url);
    dest_of("locked.gguf", dest, sizeof dest);
    pf_download_params p = pf_download_default_params();
    p.url = url;
    p.dest = dest;
    p.expected_sha256 = want;
    atomic_store(&s->slow_us, 3000); /* ~0.25 s for the file: the second pull arrives mid-way */
    int before = requests(s);
    racer a = {&p, {0}, -1, {0}}, b = {&p, {0}, -1, {0}};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, race, &a);
    usleep(30000);
    pthread_create(&tb, NULL, race, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    atomic_store(&s->slow_us, 0);
    CHECK(t, a.rc == PF_OK && b.rc == PF_OK, "concurrent pulls: %s / %s", a.err.msg, b.err.msg);
    CHECK(t, requests(s) - before == 1 && a.r.already_present != b.r.already_present,
          "one transfer, one waiter: %d requests, present %d/%d", requests(s) - before, a.r.already_present,
          b.r.already_present);
    CHECK(t, ref_sha256(dest, got) && !strcmp(got, want), "locked file sha %s", got);
}

/* ------------------------------------------------------------------------------------------ */
/* Registry, cache, resolver, CLI                                                               */
/* ------------------------------------------------------------------------------------------ */

static void test_registry(pf_test *t) {
    int n = 0;
    const pf_pull_model *reg = pf_pull_registry(&n);
    const char *need[] = {"phi-3-mini-4k-instruct", "phi-3-mini-128k-instruct", "phi-3.5-mini-instruct",
                          "bge-small-en-v1.5", "all-minilm-l6-v2", "nomic-embed-text-v1.5"};
    for (size_t k = 0; k < sizeof need / sizeof need[0]; k++) {
        const pf_pull_model *m = NULL;
        const pf_pull_file *f = NULL;
        pf_error err = {0};
        CHECK(t, pf_pull_lookup(need[k], &m, &f, &err) == PF_OK && m && f == &m->files[0], "%s: %s", need[k], err.msg);
    }
    for (int i = 0; i < n; i++) {
        CHECK(t, reg[i].n_files >= 1 && strchr(reg[i].repo, '/'), "%s: files and owner/repo", reg[i].name);
        for (int j = 0; j < i; j++) CHECK(t, strcmp(reg[i].name, reg[j].name), "duplicate name %s", reg[i].name);
        for (int k = 0; k < reg[i].n_files; k++) {
            const char *h = reg[i].files[k].sha256;
            bool ok = !h || (strlen(h) == 64 && strspn(h, "0123456789abcdef") == 64);
            CHECK(t, ok && ends_with(reg[i].files[k].file, ".gguf"), "%s:%s hash/file", reg[i].name,
                  reg[i].files[k].variant);
        }
    }
    const pf_pull_model *m;
    const pf_pull_file *f;
    pf_error err = {0};
    CHECK(t, pf_pull_lookup("phi-3-mini-4k-instruct:fp16", &m, &f, &err) == PF_OK &&
                 !strcmp(f->file, "Phi-3-mini-4k-instruct-fp16.gguf"), "fp16 variant");
    CHECK(t, pf_pull_lookup("phi-3-mini-4k-instruct:q3", &m, &f, &err) == PF_ERR_NOT_FOUND &&
                 strstr(err.msg, "known: q4, fp16"), "unknown variant: %s", err.msg);
    CHECK(t, pf_pull_lookup("phi-9", &m, &f, &err) == PF_ERR_NOT_FOUND && strstr(err.msg, "--list"), "unknown: %s",
          err.msg);
    CHECK(t, pf_pull_lookup("phi-3-mini-4k", &m, &f, &err) == PF_ERR_NOT_FOUND, "a prefix is not a name");

    /* URL form and cache-dir precedence */
    char buf[1024];
    unsetenv("PHIFORGE_HUB_URL");
    pf_pull_lookup("phi-3-mini-4k-instruct", &m, &f, &err);
    CHECK(t, pf_pull_url(m, f, buf, sizeof buf, &err) == PF_OK &&
                 !strcmp(buf, "https://huggingface.co/microsoft/Phi-3-mini-4k-instruct-gguf/resolve/main/"
                              "Phi-3-mini-4k-instruct-q4.gguf"), "url %s", buf);
    setenv("PHIFORGE_HUB_URL", "http://mirror.local/hf/", 1);
    CHECK(t, pf_pull_url(m, f, buf, sizeof buf, &err) == PF_OK &&
                 !strcmp(buf, "http://mirror.local/hf/microsoft/Phi-3-mini-4k-instruct-gguf/resolve/main/"
                              "Phi-3-mini-4k-instruct-q4.gguf"), "mirror url %s", buf);
    unsetenv("PHIFORGE_HUB_URL");
    unsetenv("PHIFORGE_CACHE");
    setenv("XDG_CACHE_HOME", "/x/cache", 1);
    CHECK(t, pf_pull_cache_dir(buf, sizeof buf, &err) == PF_OK && !strcmp(buf, "/x/cache/phiforge"), "xdg %s", buf);
    unsetenv("XDG_CACHE_HOME");
    char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    setenv("HOME", "/h", 1);
    CHECK(t, pf_pull_cache_dir(buf, sizeof buf, &err) == PF_OK && !strcmp(buf, "/h/.cache/phiforge"), "home %s", buf);
    if (home) { setenv("HOME", home, 1); free(home); }
    setenv("PHIFORGE_CACHE", "/p/c", 1);
    CHECK(t, pf_pull_local_path(m, f, buf, sizeof buf, &err) == PF_OK &&
                 !strcmp(buf, "/p/c/phi-3-mini-4k-instruct/Phi-3-mini-4k-instruct-q4.gguf"), "local path %s", buf);
}

static bool run_cmd(const char *cmd, char *out, size_t cap) {
    FILE *p = popen(cmd, "r");
    if (!p) return false;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    return pclose(p) == 0;
}

static void test_resolve_and_cli(pf_test *t, server *s, const char *want, const char *src_path) {
    char cache[512], hub[128], path[1024], got[65];
    pf_error err = {0};
    snprintf(cache, sizeof cache, "%s/cache", tmpdir);
    snprintf(hub, sizeof hub, "http://127.0.0.1:%d/", s->port);
    setenv("PHIFORGE_CACHE", cache, 1);
    setenv("PHIFORGE_HUB_URL", hub, 1);

    CHECK(t, pf_model_resolve(src_path, path, sizeof path, &err) == PF_OK && !strcmp(path, src_path),
          "a path is returned unchanged: %s", err.msg);
    CHECK(t, pf_model_resolve("bge-small-en-v1.5", path, sizeof path, &err) == PF_ERR_NOT_FOUND &&
                 strstr(err.msg, "not pulled yet: run phiforge pull bge-small-en-v1.5"), "before pull: %s", err.msg);
    CHECK(t, pf_model_resolve("no-such-model.gguf", path, sizeof path, &err) == PF_ERR_NOT_FOUND &&
                 strstr(err.msg, "no such file"), "neither: %s", err.msg);
    CHECK(t, pf_model_resolve("bge-small-en-v1.5:q9", path, sizeof path, &err) == PF_ERR_NOT_FOUND &&
                 strstr(err.msg, "no variant"), "bad variant: %s", err.msg);

    pf_download_result r;
    char pulled[1024], want_path[1024];
    int rc = pf_pull("bge-small-en-v1.5", NULL, NULL, pulled, sizeof pulled, &r, &err);
    snprintf(want_path, sizeof want_path, "%s/bge-small-en-v1.5/bge-small-en-v1.5-f16.gguf", cache);
    char last[512];
    pthread_mutex_lock(&s->mu);
    snprintf(last, sizeof last, "%s", s->last_path);
    pthread_mutex_unlock(&s->mu);
    CHECK(t, rc == PF_OK && !strcmp(pulled, want_path), "pull: %s -> %s", err.msg, pulled);
    CHECK(t, !strcmp(last, "/CompendiumLabs/bge-small-en-v1.5-gguf/resolve/main/bge-small-en-v1.5-f16.gguf"),
          "hub path %s", last);
    CHECK(t, ref_sha256(pulled, got) && !strcmp(got, want) && !r.sha256_verified, "pulled sha %s", got);
    CHECK(t, pf_model_resolve("bge-small-en-v1.5", path, sizeof path, &err) == PF_OK && !strcmp(path, want_path),
          "resolve after pull: %s", path);
    CHECK(t, pf_model_resolve("bge-small-en-v1.5:f16", path, sizeof path, &err) == PF_OK && !strcmp(path, want_path),
          "resolve NAME:VARIANT: %s", path);
    CHECK(t, pf_model_resolve("bge-small-en-v1.5:q8", path, sizeof path, &err) == PF_ERR_NOT_FOUND &&
                 strstr(err.msg, "run phiforge pull bge-small-en-v1.5:q8"), "other variant not pulled: %s", err.msg);
    /* without a variant, any pulled variant serves when the default is absent */
    CHECK(t, pf_pull("bge-small-en-v1.5:q8", NULL, NULL, pulled, sizeof pulled, &r, &err) == PF_OK, "q8: %s", err.msg);
    unlink(want_path);
    CHECK(t, pf_model_resolve("bge-small-en-v1.5", path, sizeof path, &err) == PF_OK && !strcmp(path, pulled),
          "fallback variant: %s", path);

    /* A pinned size that the server's file does not match: error, nothing left behind. */
    rc = pf_pull("nomic-embed-text-v1.5:q8", NULL, NULL, pulled, sizeof pulled, &r, &err);
    snprintf(path, sizeof path, "%s/nomic-embed-text-v1.5/nomic-embed-text-v1.5.Q8_0.gguf.part", cache);
    CHECK(t, rc == PF_ERR_FORMAT && strstr(err.msg, "size mismatch") && !exists(path), "pinned size: %s", err.msg);

    /* CLI: pull, then -m NAME gives the same embedding as -m PATH. */
    if (!exists(BIN)) { fprintf(stderr, "skip CLI checks: %s not built\n", BIN); return; }
    char cmd[2048], out_name[8192], out_path[8192];
    snprintf(cmd, sizeof cmd, "%s pull all-minilm-l6-v2 --json 2>&1", BIN);
    bool ok = run_cmd(cmd, out_name, sizeof out_name);
    CHECK(t, ok && strstr(out_name, "\"name\":\"all-minilm-l6-v2\"") && strstr(out_name, want), "pull --json: %s",
          out_name);
    snprintf(cmd, sizeof cmd, "%s embed -m all-minilm-l6-v2 'pump maintenance' 2>&1", BIN);
    bool ok1 = run_cmd(cmd, out_name, sizeof out_name);
    snprintf(cmd, sizeof cmd, "%s embed -m '%s' 'pump maintenance' 2>&1", BIN, src_path);
    bool ok2 = run_cmd(cmd, out_path, sizeof out_path);
    CHECK(t, ok1 && ok2 && out_name[0] && !strcmp(out_name, out_path), "embed -m NAME == -m PATH:\n%s\n%s", out_name,
          out_path);
    snprintf(cmd, sizeof cmd, "%s info all-minilm-l6-v2 --json 2>&1", BIN);
    ok = run_cmd(cmd, out_name, sizeof out_name);
    CHECK(t, ok && strstr(out_name, "\"file_size\":4739776"), "info NAME: %.200s", out_name);
    snprintf(cmd, sizeof cmd, "%s embed --model=phi-3.5-mini-instruct hello 2>&1", BIN);
    ok = run_cmd(cmd, out_name, sizeof out_name);
    CHECK(t, !ok && strstr(out_name, "not pulled yet: run phiforge pull phi-3.5-mini-instruct"), "not pulled: %s",
          out_name);
    snprintf(cmd, sizeof cmd, "%s pull --list --json 2>&1", BIN);
    ok = run_cmd(cmd, out_name, sizeof out_name);
    CHECK(t, ok && strstr(out_name, "\"name\":\"all-minilm-l6-v2\",\"variant\":\"q8\",\"default\":true") &&
                 strstr(out_name, "\"pulled\":true"), "list --json: %.300s", out_name);
    snprintf(cmd, sizeof cmd, "%s pull no-such-model 2>&1", BIN);
    ok = run_cmd(cmd, out_name, sizeof out_name);
    CHECK(t, !ok && strstr(out_name, "not a model phiforge pull knows"), "unknown name: %s", out_name);
}

int main(void) {
    pf_test t = {0, 0};
    char src[256];
    if (!pf_test_data_path(src, sizeof src, "models", "bert-tiny-cls.gguf")) {
        fprintf(stderr, "bert-tiny-cls.gguf not found\n");
        return 1;
    }
    size_t size = 0;
    uint8_t *data = pf_test_read_file(src, &size);
    char want[65] = "";
    CHECK(&t, data && size > 1000000 && ref_sha256(src, want), "reference file and sha256sum");
    if (!data || !want[0]) return TEST_REPORT(&t);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pf_test_pull_XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    server s;
    if (server_start(&s, data, size)) { perror("server"); return 1; }

    test_full(&t, &s, want);
    test_resume(&t, &s, want);
    test_restart_and_416(&t, &s, want);
    test_errors(&t, &s, want);
    test_redirect_and_cancel(&t, &s, want);
    test_lock(&t, &s, want);
    test_registry(&t);
    test_resolve_and_cli(&t, &s, want, src);

    server_stop(&s);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    free(data);
    return TEST_REPORT(&t);
}
