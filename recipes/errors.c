/* The error list every recipe load fills: each entry is kept both as parts
 * and as the one line an engineer reads, "FILE:LINE:COL: key.path: message". */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recipe-int.h"

struct rerr {
	int line, col;
	char *path, *msg, *text;
};

struct recipe_errors {
	struct rerr *v;
	size_t n, cap;
};

recipe_errors *
recipe_errors_new(void)
{
	return calloc(1, sizeof(recipe_errors));
}

void
recipe_errors_free(recipe_errors *e)
{
	size_t i;

	if (!e)
		return;
	for (i = 0; i < e->n; i++) {
		free(e->v[i].path);
		free(e->v[i].msg);
		free(e->v[i].text);
	}
	free(e->v);
	free(e);
}

size_t
recipe_errors_count(const recipe_errors *e)
{
	return e ? e->n : 0;
}

const char *
recipe_errors_get(const recipe_errors *e, size_t i)
{
	return e && i < e->n ? e->v[i].text : NULL;
}

int
recipe_errors_line(const recipe_errors *e, size_t i)
{
	return e && i < e->n ? e->v[i].line : 0;
}

int
recipe_errors_col(const recipe_errors *e, size_t i)
{
	return e && i < e->n ? e->v[i].col : 0;
}

const char *
recipe_errors_path(const recipe_errors *e, size_t i)
{
	return e && i < e->n ? e->v[i].path : NULL;
}

const char *
recipe_errors_message(const recipe_errors *e, size_t i)
{
	return e && i < e->n ? e->v[i].msg : NULL;
}

int
recipe_errors_add(recipe_errors *e, const char *file, int line, int col, const char *path, const char *msg)
{
	struct rerr r = { line, col, NULL, NULL, NULL };
	int n;

	if (!e)
		return 0;
	if (e->n == e->cap) {
		size_t cap = e->cap ? 2 * e->cap : 8;
		struct rerr *v = realloc(e->v, cap * sizeof(*v));

		if (!v)
			return -1;
		e->v = v;
		e->cap = cap;
	}
	/* A message about the whole file may already start with its name. */
	if (line <= 0 && strncmp(msg, file, strlen(file)) == 0 && strncmp(msg + strlen(file), ": ", 2) == 0)
		msg += strlen(file) + 2;
	if (line > 0)
		n = asprintf(&r.text, "%s:%d:%d: %s: %s", file, line, col, path && *path ? path : "(root)", msg);
	else if (path && *path)
		n = asprintf(&r.text, "%s: %s: %s", file, path, msg);
	else
		n = asprintf(&r.text, "%s: %s", file, msg);
	if (!path || !*path)
		path = "(root)";
	if (n < 0 || !(r.path = strdup(path)) || !(r.msg = strdup(msg))) {
		if (n >= 0)
			free(r.text);
		free(r.path);
		return -1;
	}
	e->v[e->n++] = r;
	return 0;
}

static int
rerr_before(const struct rerr *a, const struct rerr *b)
{
	int la = a->line > 0 ? a->line : 0, lb = b->line > 0 ? b->line : 0;

	return la < lb || (la == lb && a->col < b->col);
}

void
recipe_errors_sort(recipe_errors *e, size_t from)
{
	size_t i, j, n;

	if (!e || from >= e->n)
		return;
	n = e->n;
	if (strcmp(e->v[n - 1].msg, RECIPE_TOO_MANY) == 0)
		n--;
	/* Insertion sort: stable, and a recipe has at most RECIPE_MAX_ERRORS. */
	for (i = from + 1; i < n; i++) {
		struct rerr x = e->v[i];

		for (j = i; j > from && rerr_before(&x, &e->v[j - 1]); j--)
			e->v[j] = e->v[j - 1];
		e->v[j] = x;
	}
}

void
rc_err(rctx *c, int line, int col, const char *path, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	c->nerr++;
	if (c->nerr > RECIPE_MAX_ERRORS + 1)
		return;
	if (c->nerr == RECIPE_MAX_ERRORS + 1) {
		recipe_errors_add(c->errs, c->file, line, col, path, RECIPE_TOO_MANY);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	recipe_errors_add(c->errs, c->file, line, col, path, msg);
}

void
rc_pos(const rctx *c, size_t off, int *line, int *col)
{
	size_t i;
	int l = 1, k = 1;

	for (i = 0; i < off && i < c->len; i++) {
		if (c->src[i] == '\n') {
			l++;
			k = 1;
		} else if ((c->src[i] & 0xC0) != 0x80) { /* count characters, not UTF-8 continuation bytes */
			k++;
		}
	}
	*line = l;
	*col = k;
}
