/* Typed reads over the YAML tree.  Each reader reports its own error with
 * the node's position and key path and returns -1, so the schema code can
 * keep going and report everything that is wrong in one pass.  YAML 1.1's
 * loose typing is not used: integers are plain decimal digits, booleans are
 * exactly true/false, and quoting a number or a boolean is an error. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recipe-int.h"

const char *
rc_path(char *buf, const char *parent, const char *key)
{
	snprintf(buf, RECIPE_PATH_MAX, "%s%s%s", parent && *parent ? parent : "", parent && *parent ? "." : "", key);
	return buf;
}

const char *
rc_path_idx(char *buf, const char *parent, size_t i)
{
	snprintf(buf, RECIPE_PATH_MAX, "%s[%zu]", parent ? parent : "", i);
	return buf;
}

size_t
rc_distance(const char *a, const char *b, size_t cap)
{
	size_t la = strlen(a), lb = strlen(b), i, j, best;
	size_t row[RC_DISTANCE_MAX + 1];

	if (la > RC_DISTANCE_MAX || lb > RC_DISTANCE_MAX)
		return cap + 1;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		best = row[0];
		for (j = 1; j <= lb; j++) {
			size_t up = row[j];
			/* case differences are cheap: "cn" is surely "CN" */
			size_t cost = a[i - 1] == b[j - 1] ? 0 : ((a[i - 1] | 0x20) == (b[j - 1] | 0x20) ? 0 : 1);
			size_t v = diag + cost;

			if (up + 1 < v)
				v = up + 1;
			if (row[j - 1] + 1 < v)
				v = row[j - 1] + 1;
			row[j] = v;
			diag = up;
			if (v < best)
				best = v;
		}
		if (best > cap)
			return cap + 1;
	}
	return row[lb];
}

ynode *
rc_get(const ynode *map, const char *key)
{
	size_t i;

	if (!map || map->kind != YN_MAP)
		return NULL;
	for (i = 0; i + 1 < map->n; i += 2)
		if (map->kids[i]->kind == YN_SCALAR && strcmp(map->kids[i]->text, key) == 0)
			return map->kids[i + 1];
	return NULL;
}

static const char *
suggest(const char *key, const char *const *keys)
{
	const char *best = NULL;
	size_t i, d, bestd = (size_t)-1, cap = strlen(key) < 5 ? 1 : 2;

	for (i = 0; keys[i]; i++) {
		d = rc_distance(key, keys[i], cap);
		if (d <= cap && d < bestd) {
			best = keys[i];
			bestd = d;
		}
	}
	return best;
}

static void
known_keys(const char *const *keys, char *buf, size_t cap)
{
	size_t i, len = 0;

	buf[0] = '\0';
	for (i = 0; keys[i] && len < cap; i++) {
		int w = snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", keys[i]);

		if (w > 0)
			len += (size_t)w;
	}
}

int
rc_map(rctx *c, const ynode *n, const char *path, const char *const *keys, const rkey_note *notes)
{
	char sub[RECIPE_PATH_MAX], list[512];
	size_t i, j;

	if (n->bad)
		return -1;
	if (n->kind != YN_MAP) {
		if (ynode_is_null(n))
			rc_err(c, n->kline ? n->kline : n->line, n->kline ? n->kcol : n->col, path,
			    "empty section: expected a mapping of keys (one of %s)",
			    (known_keys(keys, list, sizeof(list)), list));
		else
			rc_err(c, n->line, n->col, path, "expected a mapping (key: value lines), got %s", ynode_kind_name(n));
		return -1;
	}
	for (i = 0; i + 1 < n->n; i += 2) {
		const ynode *k = n->kids[i];
		const char *hint;

		if (k->kind != YN_SCALAR || k->bad || k->len != strlen(k->text) || k->len == 0) {
			if (!k->bad)
				rc_err(c, k->line, k->col, path, "keys must be plain words, got %s",
				    k->kind == YN_SCALAR ? "an empty or odd value" : ynode_kind_name(k));
			continue;
		}
		rc_path(sub, path, k->text);
		for (j = 0; j < i; j += 2)
			if (n->kids[j]->kind == YN_SCALAR && strcmp(n->kids[j]->text, k->text) == 0)
				break;
		if (j < i) {
			rc_err(c, k->line, k->col, sub, "duplicate key (first at line %d, column %d): each key appears once",
			    n->kids[j]->line, n->kids[j]->col);
			continue;
		}
		for (j = 0; keys[j]; j++)
			if (strcmp(keys[j], k->text) == 0)
				break;
		if (keys[j])
			continue;
		for (j = 0; notes && notes[j].key; j++)
			if (strcmp(notes[j].key, k->text) == 0)
				break;
		if (notes && notes[j].key) {
			rc_err(c, k->line, k->col, sub, "%s", notes[j].msg);
			continue;
		}
		if ((hint = suggest(k->text, keys)))
			rc_err(c, k->line, k->col, sub, "unknown key '%s', did you mean '%s'?", k->text, hint);
		else
			rc_err(c, k->line, k->col, sub, "unknown key '%s' (known here: %s)", k->text,
			    (known_keys(keys, list, sizeof(list)), list));
	}
	return 0;
}

void
rc_missing(rctx *c, const ynode *map, const char *path)
{
	int line = 1, col = 1;

	if (map) {
		line = map->kline ? map->kline : map->line;
		col = map->kline ? map->kcol : map->col;
	}
	rc_err(c, line, col, path, "missing required key");
}

/* Where a value is reported: the value itself. */
#define AT(v) (v)->line, (v)->col

static const char *
shown(const ynode *v, char *buf, size_t cap)
{
	size_t i, o = 0;

	/* quote and shorten the value; control bytes shown as '?' */
	for (i = 0; i < v->len && o + 4 < cap; i++)
		buf[o++] = (unsigned char)v->text[i] < 0x20 || v->text[i] == 0x7f ? '?' : v->text[i];
	if (i < v->len && o >= 3) {
		buf[o - 3] = buf[o - 2] = buf[o - 1] = '.';
	}
	buf[o] = '\0';
	return buf;
}

int
rc_str(rctx *c, const ynode *v, const char *path, size_t maxlen, char **out)
{
	char b[48];
	size_t i;

	*out = NULL;
	if (v->bad)
		return -1;
	if (v->kind != YN_SCALAR) {
		rc_err(c, AT(v), path, "expected a text value, got %s", ynode_kind_name(v));
		return -1;
	}
	if (ynode_is_null(v)) {
		rc_err(c, v->kline ? v->kline : v->line, v->kline ? v->kcol : v->col, path, "missing value");
		return -1;
	}
	if (v->len == 0) {
		rc_err(c, AT(v), path, "empty text");
		return -1;
	}
	for (i = 0; i < v->len; i++)
		if ((unsigned char)v->text[i] < 0x20 || v->text[i] == 0x7f) {
			rc_err(c, AT(v), path, "control characters (line breaks, tabs, NUL) are not allowed: \"%s\"",
			    shown(v, b, sizeof(b)));
			return -1;
		}
	if (v->len > maxlen) {
		rc_err(c, AT(v), path, "longer than %zu bytes: \"%s\"", maxlen, shown(v, b, sizeof(b)));
		return -1;
	}
	if (!(*out = strdup(v->text))) {
		rc_err(c, AT(v), path, "out of memory");
		return -1;
	}
	return 0;
}

int
rc_int(rctx *c, const ynode *v, const char *path, long min, long max, long *out)
{
	char b[48];
	const char *p;
	long val = 0;
	size_t i;

	if (v->bad)
		return -1;
	if (v->kind != YN_SCALAR) {
		rc_err(c, AT(v), path, "expected an integer %ld..%ld, got %s", min, max, ynode_kind_name(v));
		return -1;
	}
	if (ynode_is_null(v)) {
		rc_err(c, v->kline ? v->kline : v->line, v->kline ? v->kcol : v->col, path,
		    "missing value: expected an integer %ld..%ld", min, max);
		return -1;
	}
	shown(v, b, sizeof(b));
	if (!v->plain) {
		rc_err(c, AT(v), path, "expected an integer, got the quoted text \"%s\": write numbers without quotes", b);
		return -1;
	}
	p = v->text;
	if (p[0] == '-' && p[1] >= '0' && p[1] <= '9' && strspn(p + 1, "0123456789") == v->len - 1) {
		rc_err(c, AT(v), path, "must not be negative: %s (allowed %ld..%ld)", b, min, max);
		return -1;
	}
	if (strspn(p, "0123456789") != v->len) {
		if (strspn(p, "+-0123456789.eE_") == v->len && strpbrk(p, "0123456789"))
			rc_err(c, AT(v), path, "expected a whole number %ld..%ld, got \"%s\"", min, max, b);
		else
			rc_err(c, AT(v), path, "expected an integer %ld..%ld, got \"%s\"", min, max, b);
		return -1;
	}
	if (v->len > 1 && p[0] == '0') {
		rc_err(c, AT(v), path, "leading zero in \"%s\": YAML may read it as octal, write it without", b);
		return -1;
	}
	for (i = 0; i < v->len; i++) {
		if (val > (LONG_MAX - (p[i] - '0')) / 10) {
			val = LONG_MAX;
			break;
		}
		val = val * 10 + (p[i] - '0');
	}
	if (val < min || val > max) {
		rc_err(c, AT(v), path, "out of range: %s (allowed %ld..%ld)", b, min, max);
		return -1;
	}
	*out = val;
	return 0;
}

int
rc_bool(rctx *c, const ynode *v, const char *path, bool *out)
{
	char b[48];

	if (v->bad)
		return -1;
	if (v->kind == YN_SCALAR && v->plain && strcmp(v->text, "true") == 0) {
		*out = true;
		return 0;
	}
	if (v->kind == YN_SCALAR && v->plain && strcmp(v->text, "false") == 0) {
		*out = false;
		return 0;
	}
	if (v->kind != YN_SCALAR)
		rc_err(c, AT(v), path, "expected true or false, got %s", ynode_kind_name(v));
	else if (ynode_is_null(v))
		rc_err(c, v->kline ? v->kline : v->line, v->kline ? v->kcol : v->col, path,
		    "missing value: expected true or false");
	else
		rc_err(c, AT(v), path, "expected true or false%s, got \"%s\"", v->plain ? "" : " without quotes",
		    shown(v, b, sizeof(b)));
	return -1;
}

int
rc_enum(rctx *c, const ynode *v, const char *path, const char *const *names, int *out)
{
	char list[256], b[48];
	size_t i, len = 0;

	if (v->bad)
		return -1;
	if (v->kind == YN_SCALAR && v->len == strlen(v->text))
		for (i = 0; names[i]; i++)
			if (strcmp(names[i], v->text) == 0) {
				*out = (int)i;
				return 0;
			}
	list[0] = '\0';
	for (i = 0; names[i] && len < sizeof(list); i++) {
		int w = snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "", names[i]);

		if (w > 0)
			len += (size_t)w;
	}
	if (v->kind != YN_SCALAR)
		rc_err(c, AT(v), path, "expected one of %s, got %s", list, ynode_kind_name(v));
	else if (ynode_is_null(v))
		rc_err(c, v->kline ? v->kline : v->line, v->kline ? v->kcol : v->col, path,
		    "missing value: expected one of %s", list);
	else
		rc_err(c, AT(v), path, "expected one of %s, got \"%s\"", list, shown(v, b, sizeof(b)));
	return -1;
}

static const ynode *
lookup(rctx *c, const ynode *map, const char *parent, const char *key, bool required, char *path)
{
	const ynode *v = rc_get(map, key);

	rc_path(path, parent, key);
	if (!v && required && map)
		rc_missing(c, map, path);
	return v;
}

int
rc_get_str(rctx *c, const ynode *map, const char *parent, const char *key, bool required, size_t maxlen,
    char **out)
{
	char path[RECIPE_PATH_MAX];
	const ynode *v = lookup(c, map, parent, key, required, path);

	return v ? rc_str(c, v, path, maxlen, out) : 1;
}

int
rc_get_int(rctx *c, const ynode *map, const char *parent, const char *key, bool required, long min,
    long max, long *out)
{
	char path[RECIPE_PATH_MAX];
	const ynode *v = lookup(c, map, parent, key, required, path);

	return v ? rc_int(c, v, path, min, max, out) : 1;
}

int
rc_get_bool(rctx *c, const ynode *map, const char *parent, const char *key, bool required, bool *out)
{
	char path[RECIPE_PATH_MAX];
	const ynode *v = lookup(c, map, parent, key, required, path);

	return v ? rc_bool(c, v, path, out) : 1;
}

int
rc_get_enum(rctx *c, const ynode *map, const char *parent, const char *key, bool required,
    const char *const *names, int *out)
{
	char path[RECIPE_PATH_MAX];
	const ynode *v = lookup(c, map, parent, key, required, path);

	return v ? rc_enum(c, v, path, names, out) : 1;
}
