/* librecipe internals: the error collector every loader shares, the small
 * YAML tree built from libyaml events, and typed accessors over it that
 * report their own errors. */
#ifndef RECIPE_INT_H
#define RECIPE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "recipe.h"

#define RECIPE_MAX_FILE (1u << 20) /* a recipe is a page of text, not a megabyte */
#define RECIPE_MAX_ERRORS 100
#define RECIPE_TOO_MANY "too many errors; stopped reporting"
#define RECIPE_MAX_DEPTH 32
#define RECIPE_PATH_MAX 256

/* One load: where messages point and how many errors it produced. */
typedef struct rctx {
	const char *file;     /* name used in messages */
	const uint8_t *src;   /* the file bytes */
	size_t len;
	recipe_errors *errs;  /* may be NULL: errors are still counted */
	size_t nerr;
} rctx;

void rc_err(rctx *c, int line, int col, const char *path, const char *fmt, ...) ST_PRINTF(5, 6);
/* 1-based line and column (in characters) of byte offset off in c->src. */
void rc_pos(const rctx *c, size_t off, int *line, int *col);

/* ---- the tree (ytree.c) -------------------------------------------------- */

enum { YN_SCALAR, YN_MAP, YN_SEQ };

typedef struct ynode {
	int kind;
	int line, col;         /* 1-based start */
	int kline, kcol;       /* where its key starts when it is a mapping value, else 0 */
	size_t start, end;     /* byte offsets of the node in the source */
	int plain;             /* scalar written without quotes or block style */
	int bad;               /* an error was already reported here: stay quiet */
	char *text;            /* scalar value (NUL-terminated; may hold NULs before len) */
	size_t len;
	struct ynode **kids;   /* map: key, value, key, value...; seq: items */
	size_t n, cap;
} ynode;

/* Parse one YAML document into a tree; NULL when the file is not usable
 * YAML (errors reported).  Aliases, anchors, tags and further documents
 * are reported as errors; the tree is still returned when it could be built. */
ynode *ytree_parse(rctx *c);
void ynode_free(ynode *n);
const char *ynode_kind_name(const ynode *n);
/* A plain empty, "~" or "null" scalar. */
bool ynode_is_null(const ynode *n);

/* ---- typed access (access.c) ---------------------------------------------- */

/* A special message for a key that is not allowed, instead of "unknown key". */
typedef struct rkey_note {
	const char *key;
	const char *msg;
} rkey_note;

/* Check n is a mapping whose keys are all in keys (NULL-terminated):
 * reports duplicates, unknown keys (with "did you mean") and non-scalar
 * keys.  0 when n is a usable mapping (even with bad keys), -1 otherwise. */
int rc_map(rctx *c, const ynode *n, const char *path, const char *const *keys, const rkey_note *notes);
/* The value of key in map n (first occurrence), NULL when absent. */
ynode *rc_get(const ynode *map, const char *key);
/* "parent.key" into buf. */
const char *rc_path(char *buf, const char *parent, const char *key);
const char *rc_path_idx(char *buf, const char *parent, size_t i);
/* Report a missing required key of map (or of the document when map is NULL). */
void rc_missing(rctx *c, const ynode *map, const char *path);

/* Scalar readers: 0 ok, -1 reported.  They do not look the key up. */
int rc_str(rctx *c, const ynode *v, const char *path, size_t maxlen, char **out);
int rc_int(rctx *c, const ynode *v, const char *path, long min, long max, long *out);
int rc_bool(rctx *c, const ynode *v, const char *path, bool *out);
/* One of names[] (NULL-terminated); *out = index. */
int rc_enum(rctx *c, const ynode *v, const char *path, const char *const *names, int *out);

/* Lookup + read: 1 absent (reported when required), 0 ok, -1 reported. */
int rc_get_str(rctx *c, const ynode *map, const char *parent, const char *key, bool required, size_t maxlen,
    char **out);
int rc_get_int(rctx *c, const ynode *map, const char *parent, const char *key, bool required, long min,
    long max, long *out);
int rc_get_bool(rctx *c, const ynode *map, const char *parent, const char *key, bool required, bool *out);
int rc_get_enum(rctx *c, const ynode *map, const char *parent, const char *key, bool required,
    const char *const *names, int *out);

/* Edit distance, for "did you mean" (capped: returns at most cap + 1;
 * names longer than RC_DISTANCE_MAX are never alike). */
#define RC_DISTANCE_MAX 64
size_t rc_distance(const char *a, const char *b, size_t cap);

/* ---- templates (template.c) ------------------------------------------------ */

/* Report each unknown variable or unclosed "${" in template node v. */
int rc_template(rctx *c, const ynode *v, const char *path);

/* ---- files (files.c) --------------------------------------------------------- */

/* dir/rel, or root + abs for an absolute path (root may be NULL). */
char *rc_resolve(const char *dir, const char *root, const char *p);
/* The file exists, is a regular file and can be opened for reading. */
int rc_file_readable(const char *path, st_err *err);
/* flags for rc_cert_file */
enum { RC_CERT_ONE = 1, RC_CERT_CA = 2 };
/* A PEM file of certificates: at least one, all parse; RC_CERT_ONE: exactly
 * one; RC_CERT_CA: every one is a CA certificate. */
int rc_cert_file(const char *path, int flags, st_err *err);
/* cert_path's first certificate chains to a self-signed root in chain_path. */
int rc_cert_chains(const char *cert_path, const char *chain_path, st_err *err);

/* ---- the error list (errors.c) ------------------------------------------------ */

int recipe_errors_add(recipe_errors *e, const char *file, int line, int col, const char *path, const char *msg);
/* Put the entries from index `from` on in file order (line, then column;
 * whole-file messages first), keeping the order of equal places and a
 * final "too many errors" entry last. */
void recipe_errors_sort(recipe_errors *e, size_t from);

#endif
