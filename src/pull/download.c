/* Resumable, verified HTTP download with libcurl: the heart of `phiforge pull`.
 *
 * Protocol (one call of pf_download):
 *   1. take an exclusive flock on DEST.lock (a second pull of the same file waits here, then
 *      finds DEST present and returns);
 *   2. open DEST.part (kept across runs) and hash what it already holds, so the SHA-256 of the
 *      whole file streams across resumes without a second pass at the end;
 *   3. GET with "Range: bytes=N-" where N is the part's size: 206 whose Content-Range starts at
 *      N appends; 200 means the server ignored the range, so the part restarts from zero; 416
 *      means there is nothing after N: the part is whole when N equals the size the server
 *      gives ("bytes * /TOTAL") or the expected size, otherwise it restarts; any other status is
 *      an error naming it;
 *   4. a network error (reset, timeout, stall) keeps the bytes received and retries, each retry
 *      resuming from the part's new size;
 *   5. verify size and SHA-256 (a mismatch deletes the part: its bytes are not the file), fsync,
 *      rename DEST.part -> DEST (atomic: DEST is either absent or complete), fsync the folder. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pull/pull_internal.h"

#define HASH_BUF (1 << 20)

typedef struct dl_state {
    const pf_download_params *p;
    int fd;                   /* DEST.part, opened O_APPEND                                 */
    kb_sha256 sha;            /* over every byte in the part file                          */
    int64_t offset;           /* part size when the attempt began                          */
    int64_t written;          /* bytes appended during the attempt                         */
    int64_t total;            /* full file size once known, else -1                        */
    /* headers of the current response (reset at each status line: redirects send several) */
    long status;
    int64_t cr_start, cr_total, content_length;
    bool decided;             /* what to do with this response's body is settled           */
    bool started;             /* progress was told where this transfer starts              */
    bool bad_range;           /* 206 that does not start where we asked                    */
    bool cancelled;
    int io_errno;             /* a write to the part failed                                */
} dl_state;

static int64_t parse_i64(const char *s, const char **end) {
    int64_t v = -1;
    while (*s == ' ') s++;
    if (*s >= '0' && *s <= '9') {
        v = 0;
        while (*s >= '0' && *s <= '9' && v < INT64_MAX / 10) v = v * 10 + (*s++ - '0');
    }
    if (end) *end = s;
    return v;
}

static bool header_is(const char *line, size_t n, const char *name) {
    size_t k = strlen(name);
    return n > k && !strncasecmp(line, name, k);
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *user) {
    dl_state *st = user;
    size_t n = size * nitems;
    char line[256];
    size_t k = n < sizeof line - 1 ? n : sizeof line - 1;
    memcpy(line, buf, k);
    line[k] = 0;
    if (header_is(line, k, "HTTP/")) { /* a new response: after a redirect, or the first */
        const char *sp = strchr(line, ' ');
        st->status = sp ? (long)parse_i64(sp + 1, NULL) : 0;
        st->cr_start = st->cr_total = st->content_length = -1;
        st->decided = false;
    } else if (header_is(line, k, "Content-Length:")) {
        st->content_length = parse_i64(line + 15, NULL);
    } else if (header_is(line, k, "Content-Range:")) {
        /* "bytes START-END/TOTAL" (206) or "bytes * /TOTAL" without the space (416) */
        const char *s = line + 14;
        while (*s == ' ') s++;
        if (!strncasecmp(s, "bytes", 5)) s += 5;
        while (*s == ' ') s++;
        if (*s != '*') st->cr_start = parse_i64(s, &s);
        const char *slash = strchr(s, '/');
        if (slash) st->cr_total = parse_i64(slash + 1, NULL);
    }
    return n;
}

/* Restart the part from zero: the server sent the whole file, or the part is unusable. */
static int part_reset(dl_state *st) {
    if (ftruncate(st->fd, 0) != 0) { st->io_errno = errno; return -1; }
    kb_sha256_init(&st->sha);
    st->offset = 0;
    st->written = 0;
    return 0;
}

/* Settles what the body of a 200/206 response means for the part file (see the header). */
static void decide(dl_state *st) {
    if (st->decided) return;
    st->decided = true;
    if (st->status == 206) {
        if (st->cr_start != st->offset) { st->bad_range = true; return; }
        if (st->cr_total >= 0) st->total = st->cr_total;
        else if (st->content_length >= 0) st->total = st->offset + st->content_length;
    } else if (st->status == 200) {
        if (st->offset > 0) part_reset(st);
        if (st->content_length >= 0) st->total = st->content_length;
    }
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *user) {
    dl_state *st = user;
    size_t n = size * nmemb;
    if (st->status != 200 && st->status != 206) return n; /* an error page: discarded */
    decide(st);
    if (st->bad_range || st->io_errno) return 0;
    int64_t total = st->p->expected_size >= 0 ? st->p->expected_size : st->total;
    if (!st->started && st->p->progress) { /* first call: the bytes already there, before any new */
        st->started = true;
        if (st->p->progress(st->p->user, st->offset, total)) { st->cancelled = true; return 0; }
    }
    for (size_t off = 0; off < n;) {
        ssize_t w = write(st->fd, data + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { st->io_errno = w < 0 ? errno : EIO; return 0; }
        kb_sha256_update(&st->sha, data + off, (size_t)w);
        off += (size_t)w;
        st->written += w;
    }
    if (st->p->progress && st->p->progress(st->p->user, st->offset + st->written, total)) {
        st->cancelled = true;
        return 0;
    }
    return n;
}

/* Hash the bytes already in the part (a resumed download's prefix). */
static int hash_part(dl_state *st, int64_t size, uint8_t *buf, const char *part, pf_error *err) {
    kb_sha256_init(&st->sha);
    for (int64_t at = 0; at < size;) {
        size_t want = size - at < HASH_BUF ? (size_t)(size - at) : HASH_BUF;
        ssize_t r = pread(st->fd, buf, want, (off_t)at);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return pf_error_set(err, PF_ERR_IO, "%s: read failed at byte %lld: %s", part, (long long)at,
                                        r < 0 ? strerror(errno) : "unexpected end of file");
        kb_sha256_update(&st->sha, buf, (size_t)r);
        at += r;
    }
    return PF_OK;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

int pull_mkdir_parent(const char *path, pf_error *err) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path) return PF_OK;
    size_t n = (size_t)(slash - path);
    if (n >= sizeof dir) return pf_error_set(err, PF_ERR_ARG, "%s: path too long", path);
    memcpy(dir, path, n);
    dir[n] = 0;
    for (char *p = dir + 1;; p++) {
        bool end = *p == 0;
        if (*p == '/' || end) {
            *p = 0;
            if (mkdir(dir, 0755) != 0 && errno != EEXIST)
                return pf_error_set(err, PF_ERR_IO, "cannot create folder %s: %s", dir, strerror(errno));
            if (end) break;
            *p = '/';
        }
    }
    return PF_OK;
}

static void fsync_parent(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    int fd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY);
    if (fd >= 0) { fsync(fd); close(fd); }
}

pf_download_params pf_download_default_params(void) {
    pf_download_params p;
    memset(&p, 0, sizeof p);
    p.expected_size = -1;
    p.max_retries = 3;
    p.connect_timeout_s = 30;
    p.stall_timeout_s = 60;
    return p;
}

/* One HTTP transfer appending to the part. Returns the CURLcode; fills st. */
static CURLcode transfer(CURL *c, dl_state *st, char *errbuf) {
    char range[32];
    st->status = 0;
    st->decided = st->bad_range = st->cancelled = st->started = false;
    st->cr_start = st->cr_total = st->content_length = -1;
    st->written = 0;
    snprintf(range, sizeof range, "%lld-", (long long)st->offset);
    curl_easy_setopt(c, CURLOPT_RANGE, st->offset > 0 ? range : NULL);
    errbuf[0] = 0;
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK && (st->status == 200 || st->status == 206)) decide(st); /* empty bodies */
    return rc;
}

static CURL *make_handle(const pf_download_params *p, dl_state *st, char *errbuf, struct curl_slist **hdrs) {
    CURL *c = curl_easy_init();
    if (!c) return NULL;
    curl_easy_setopt(c, CURLOPT_URL, p->url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L); /* the hub answers 302 -> its CDN */
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "phiforge/" PF_VERSION);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, p->connect_timeout_s > 0 ? p->connect_timeout_s : 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, p->stall_timeout_s > 0 ? p->stall_timeout_s : 60L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, st);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, st);
    /* Gated repos need a token; curl drops custom auth headers when a redirect changes host. */
    const char *tok = getenv("HF_TOKEN");
    if (tok && *tok) {
        char h[1024];
        snprintf(h, sizeof h, "Authorization: Bearer %s", tok);
        *hdrs = curl_slist_append(NULL, h);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
    }
    return c;
}

static int verify_and_install(dl_state *st, const pf_download_params *p, const char *part, pf_download_result *res,
                              pf_error *err) {
    struct stat sb;
    if (fstat(st->fd, &sb) != 0) return pf_error_set(err, PF_ERR_IO, "%s: %s", part, strerror(errno));
    int64_t size = (int64_t)sb.st_size;
    char hex[65];
    kb_sha256_hex(&st->sha, hex);
    int64_t want = p->expected_size >= 0 ? p->expected_size : st->total;
    if (want >= 0 && size != want) {
        unlink(part);
        return pf_error_set(err, PF_ERR_FORMAT, "%s: size mismatch: got %lld bytes, expected %lld (%s); the partial "
                            "file was removed", p->dest, (long long)size, (long long)want, p->url);
    }
    if (p->expected_sha256 && strcasecmp(hex, p->expected_sha256) != 0) {
        unlink(part);
        return pf_error_set(err, PF_ERR_FORMAT, "%s: sha256 mismatch: got %s, expected %s (%s); the partial file was "
                            "removed", p->dest, hex, p->expected_sha256, p->url);
    }
    if (fsync(st->fd) != 0) return pf_error_set(err, PF_ERR_IO, "%s: fsync failed: %s", part, strerror(errno));
    if (rename(part, p->dest) != 0)
        return pf_error_set(err, PF_ERR_IO, "cannot rename %s to %s: %s", part, p->dest, strerror(errno));
    fsync_parent(p->dest);
    res->bytes = size;
    res->sha256_verified = p->expected_sha256 != NULL;
    memcpy(res->sha256, hex, sizeof hex);
    return PF_OK;
}

static int io_error(const dl_state *st, const char *part, pf_error *err) {
    if (st->io_errno == ENOSPC || st->io_errno == EDQUOT)
        return pf_error_set(err, PF_ERR_IO, "%s: disk full after %lld bytes; free space and pull again to resume",
                            part, (long long)(st->offset + st->written));
    return pf_error_set(err, PF_ERR_IO, "%s: write failed: %s", part, strerror(st->io_errno));
}

/* The transfers, after the lock is held and the part is open. */
static int download_locked(const pf_download_params *p, dl_state *st, const char *part, uint8_t *buf,
                           pf_download_result *res, pf_error *err) {
    char errbuf[CURL_ERROR_SIZE];
    struct curl_slist *hdrs = NULL;
    CURL *c = make_handle(p, st, errbuf, &hdrs);
    if (!c) return pf_error_set(err, PF_ERR_NOMEM, "curl_easy_init failed");
    int rc = PF_OK;
    bool restarted_416 = false;
    for (int attempt = 0;; attempt++) {
        struct stat sb;
        if (fstat(st->fd, &sb) != 0) { rc = pf_error_set(err, PF_ERR_IO, "%s: %s", part, strerror(errno)); break; }
        st->offset = (int64_t)sb.st_size;
        if (p->expected_size >= 0 && st->offset > p->expected_size && part_reset(st)) { rc = io_error(st, part, err); break; }
        if (st->sha.n != (uint64_t)st->offset && (rc = hash_part(st, st->offset, buf, part, err))) break;
        res->resumed_from = st->offset;
        if (p->expected_size >= 0 && st->offset == p->expected_size) break; /* whole already: verify */
        CURLcode cr = transfer(c, st, errbuf);
        res->attempts++;
        res->http_status = (int)st->status;
        if (st->cancelled) { rc = pf_error_set(err, PF_ERR_IO, "%s: cancelled; pull again to resume", p->url); break; }
        if (st->io_errno) { rc = io_error(st, part, err); break; }
        if (st->bad_range) { /* the server resumed elsewhere: start over */
            if (part_reset(st)) { rc = io_error(st, part, err); break; }
            if (attempt < p->max_retries) continue;
            rc = pf_error_set(err, PF_ERR_FORMAT, "%s: server answered a range request at the wrong offset", p->url);
            break;
        }
        if (cr != CURLE_OK) {
            if (attempt < p->max_retries) { sleep_ms(250L * (attempt + 1)); continue; }
            rc = pf_error_set(err, PF_ERR_IO, "%s: network error after %lld bytes: %s; %lld bytes kept in %s, pull "
                              "again to resume", p->url, (long long)(st->offset + st->written),
                              errbuf[0] ? errbuf : curl_easy_strerror(cr), (long long)(st->offset + st->written), part);
            break;
        }
        if (st->status == 416) {
            int64_t whole = st->cr_total >= 0 ? st->cr_total : p->expected_size;
            if (whole >= 0 && whole == st->offset) { st->total = whole; break; }
            if (restarted_416) {
                rc = pf_error_set(err, PF_ERR_FORMAT, "%s: HTTP 416 (range not satisfiable) from a fresh start", p->url);
                break;
            }
            restarted_416 = true;
            if (part_reset(st)) { rc = io_error(st, part, err); break; }
            continue;
        }
        if (st->status != 200 && st->status != 206) {
            rc = pf_error_set(err, st->status == 404 ? PF_ERR_NOT_FOUND : PF_ERR_IO, "%s: HTTP %ld%s", p->url,
                              st->status, st->status == 404 ? " (not found)"
                                           : st->status == 401 || st->status == 403 ? " (gated repo? set HF_TOKEN)" : "");
            break;
        }
        int64_t have = st->offset + st->written;
        if (st->total >= 0 && have < st->total) { /* closed early without a curl error */
            if (attempt < p->max_retries) continue;
            rc = pf_error_set(err, PF_ERR_IO, "%s: transfer ended at %lld of %lld bytes; pull again to resume", p->url,
                              (long long)have, (long long)st->total);
        }
        break;
    }
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    if (rc == PF_OK) rc = verify_and_install(st, p, part, res, err);
    return rc;
}

int pf_download(const pf_download_params *p, pf_download_result *res, pf_error *err) {
    pf_download_result dummy;
    if (!res) res = &dummy;
    memset(res, 0, sizeof *res);
    if (!p || !p->url || !p->dest || !*p->dest) return pf_error_set(err, PF_ERR_ARG, "download: url and dest required");
    char part[4200], lock[4200];
    if ((size_t)snprintf(part, sizeof part, "%s.part", p->dest) >= sizeof part ||
        (size_t)snprintf(lock, sizeof lock, "%s.lock", p->dest) >= sizeof lock)
        return pf_error_set(err, PF_ERR_ARG, "%s: path too long", p->dest);
    int rc = pull_mkdir_parent(p->dest, err);
    if (rc) return rc;

    int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lfd < 0) return pf_error_set(err, PF_ERR_IO, "cannot open lock %s: %s", lock, strerror(errno));
    while (flock(lfd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            rc = pf_error_set(err, PF_ERR_IO, "cannot lock %s: %s", lock, strerror(errno));
            close(lfd);
            return rc;
        }
    }
    struct stat sb;
    if (stat(p->dest, &sb) == 0 && (p->expected_size < 0 || (int64_t)sb.st_size == p->expected_size)) {
        res->already_present = true; /* a pull that held the lock before us, or an earlier run */
        res->bytes = (int64_t)sb.st_size;
        close(lfd);
        return PF_OK;
    }
    dl_state st;
    memset(&st, 0, sizeof st);
    st.p = p;
    st.total = -1;
    kb_sha256_init(&st.sha);
    st.fd = open(part, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    uint8_t *buf = malloc(HASH_BUF);
    if (st.fd < 0) rc = pf_error_set(err, PF_ERR_IO, "cannot open %s: %s", part, strerror(errno));
    else if (!buf) rc = pf_error_set(err, PF_ERR_NOMEM, "download: out of memory");
    else {
        st.sha.n = (uint64_t)-1; /* forces hashing whatever the part holds on the first attempt */
        rc = download_locked(p, &st, part, buf, res, err);
    }
    if (st.fd >= 0) {
        bool empty = fstat(st.fd, &sb) == 0 && sb.st_size == 0;
        close(st.fd);
        if (rc != PF_OK && empty) unlink(part); /* an error before any byte: leave no litter */
    }
    free(buf);
    if (rc == PF_OK) unlink(lock); /* waiters re-check DEST after locking, so this is safe */
    close(lfd);
    return rc;
}
