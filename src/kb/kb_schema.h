/* The knowledge-base schema (version 1). A KB is a directory holding kb.sqlite (WAL mode) — the
 * source of truth — and vectors.hnsw, an index rebuilt from the embeddings table whenever it is
 * missing or its generation differs from meta.vector_generation.
 *
 * Offsets are in bytes of the document's extracted UTF-8 text (documents.text_len long).
 * Migrations: meta.schema_version is read at open; older versions are upgraded in one
 * transaction by the steps in kb_store.c; newer versions are refused with a clear error. */
#ifndef PF_KB_SCHEMA_H
#define PF_KB_SCHEMA_H

#define PF_KB_SCHEMA_VERSION 1
#define PF_KB_DB_NAME "kb.sqlite"
#define PF_KB_INDEX_NAME "vectors.hnsw"

static const char PF_KB_SCHEMA_V1[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);\n"
    /* doc_key: the user-visible document id — the source path for files, the record's _id/id for
     * JSONL records. source: path or URI of the file it came from. */
    "CREATE TABLE IF NOT EXISTS documents(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  doc_key TEXT NOT NULL UNIQUE,\n"
    "  source TEXT NOT NULL,\n"
    "  title TEXT,\n"
    "  doc_type TEXT NOT NULL,\n"          /* txt md html pdf docx csv json jsonl */
    "  sha256 TEXT NOT NULL,\n"            /* of the source file's bytes (of the record for JSONL) */
    "  mtime INTEGER NOT NULL,\n"
    "  size INTEGER NOT NULL,\n"
    "  text_len INTEGER NOT NULL,\n"
    "  metadata TEXT NOT NULL DEFAULT '{}',\n" /* JSON object */
    "  ingested_at INTEGER NOT NULL);\n"
    "CREATE INDEX IF NOT EXISTS documents_source ON documents(source);\n"
    "CREATE TABLE IF NOT EXISTS chunks(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,\n"
    "  ordinal INTEGER NOT NULL,\n"
    "  text TEXT NOT NULL,\n"
    "  start_char INTEGER NOT NULL,\n"     /* byte offsets in the extracted text */
    "  end_char INTEGER NOT NULL,\n"
    "  page INTEGER,\n"                    /* 1-based page (PDF), NULL when none */
    "  heading TEXT,\n"                    /* heading path, \"Maintenance › Filters\" */
    "  n_tokens INTEGER NOT NULL,\n"
    "  UNIQUE(doc_id, ordinal));\n"
    /* BM25 over chunk text + heading path, Porter stemming. External content: kept in step by
     * the triggers below. */
    "CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(\n"
    "  text, heading, content='chunks', content_rowid='id',\n"
    "  tokenize='porter unicode61 remove_diacritics 2');\n"
    "CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN\n"
    "  INSERT INTO chunks_fts(rowid, text, heading) VALUES (new.id, new.text, coalesce(new.heading, ''));\n"
    "END;\n"
    "CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN\n"
    "  INSERT INTO chunks_fts(chunks_fts, rowid, text, heading)\n"
    "    VALUES ('delete', old.id, old.text, coalesce(old.heading, ''));\n"
    "END;\n"
    /* One embedding per chunk and model; vector = dim little-endian float32. */
    "CREATE TABLE IF NOT EXISTS embeddings(\n"
    "  chunk_id INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,\n"
    "  model TEXT NOT NULL,\n"
    "  dim INTEGER NOT NULL,\n"
    "  vector BLOB NOT NULL,\n"
    "  PRIMARY KEY(chunk_id, model));\n"
    /* Added by the ingestion work (still version 1: no KB was ever written without it). One row
     * per ingested file: what incremental ingestion compares (sha256 of the bytes + the chunking
     * configuration) and what --prune walks. A file whose extraction yields no document still
     * gets a row, so it is not re-extracted on every run. */
    "CREATE TABLE IF NOT EXISTS sources(\n"
    "  path TEXT PRIMARY KEY,\n"           /* absolute, symlinks resolved: documents.source */
    "  sha256 TEXT NOT NULL,\n"
    "  mtime INTEGER NOT NULL,\n"
    "  size INTEGER NOT NULL,\n"
    "  config TEXT NOT NULL,\n"            /* \"tokens=256 overlap=64 tokenizer=phi3\" */
    "  n_docs INTEGER NOT NULL,\n"
    "  ingested_at INTEGER NOT NULL);\n";

/* meta keys: schema_version, embed_model (path/name of the configured embedding model or
 * absent), embed_dim, chunk_tokens, chunk_overlap, vector_generation (incremented by every
 * transaction that changes embeddings; stored in vectors.hnsw's header too).
 * Added by the ingestion work: embed_model_id ("NAME sha256:HEX16" of the model file: the
 * value of embeddings.model, so a changed file at the same path counts as another model),
 * embed_model_stat ("SIZE:MTIME_NS" of the file when its id was computed: an unchanged stamp
 * spares re-hashing the model at every open), embed_name (general.name), embed_max_tokens,
 * chunk_tokenizer ("phi3" or embed_model_id), created_at. */

#endif
