/* Internals of `phiforge pull`: the streaming SHA-256 is the knowledge base's (src/kb). */
#ifndef PF_PULL_INTERNAL_H
#define PF_PULL_INTERNAL_H

#include "kb/kb_internal.h"
#include "phiforge.h"

/* mkdir -p of the directory part of `path` (everything before the last '/'). */
int pull_mkdir_parent(const char *path, pf_error *err);

#endif
