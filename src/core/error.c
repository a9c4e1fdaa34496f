/* Error reporting: a caller-owned pf_error carries a code and a message, never global state. */
#include "phiforge.h"

#include <stdarg.h>
#include <stdio.h>

int pf_error_set(pf_error *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

void pf_error_clear(pf_error *err) {
    if (err) {
        err->code = PF_OK;
        err->msg[0] = '\0';
    }
}

const char *pf_status_str(int code) {
    switch (code) {
    case PF_OK: return "ok";
    case PF_ERR_IO: return "I/O error";
    case PF_ERR_FORMAT: return "malformed input";
    case PF_ERR_NOMEM: return "out of memory";
    case PF_ERR_ARG: return "invalid argument";
    case PF_ERR_UNSUPPORTED: return "unsupported";
    case PF_ERR_NOT_FOUND: return "not found";
    default: return "unknown error";
    }
}
