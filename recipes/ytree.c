/* libyaml events -> a small tree of scalars, mappings and lists with their
 * positions.  The event API (not the document API) is used because it is the
 * only one that shows anchors and aliases, which a recipe must not use: an
 * alias lets one value stand for another far away in the file, so what a
 * reviewer reads would not be what the station runs.  Built without
 * recursion; freed with a bounded recursion (depth is capped). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "recipe-int.h"

void
ynode_free(ynode *n)
{
	size_t i;

	if (!n)
		return;
	for (i = 0; i < n->n; i++)
		ynode_free(n->kids[i]);
	free(n->kids);
	free(n->text);
	free(n);
}

const char *
ynode_kind_name(const ynode *n)
{
	switch (n->kind) {
	case YN_MAP: return "a mapping";
	case YN_SEQ: return "a list";
	default: return "a single value";
	}
}

bool
ynode_is_null(const ynode *n)
{
	return n->kind == YN_SCALAR && n->plain &&
	    (n->len == 0 || strcmp(n->text, "~") == 0 || strcmp(n->text, "null") == 0 ||
		strcmp(n->text, "Null") == 0 || strcmp(n->text, "NULL") == 0);
}

static ynode *
node_new(int kind, const yaml_event_t *ev)
{
	ynode *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->kind = kind;
	n->line = (int)ev->start_mark.line + 1;
	n->col = (int)ev->start_mark.column + 1;
	n->start = ev->start_mark.index;
	n->end = ev->end_mark.index;
	return n;
}

static int
node_add(ynode *parent, ynode *kid)
{
	if (parent->n == parent->cap) {
		size_t cap = parent->cap ? 2 * parent->cap : 8;
		ynode **k = realloc(parent->kids, cap * sizeof(*k));

		if (!k)
			return -1;
		parent->kids = k;
		parent->cap = cap;
	}
	/* A mapping value remembers where its key is: "missing key" errors point there. */
	if (parent->kind == YN_MAP && parent->n % 2 == 1) {
		kid->kline = parent->kids[parent->n - 1]->line;
		kid->kcol = parent->kids[parent->n - 1]->col;
	}
	parent->kids[parent->n++] = kid;
	return 0;
}

/* Best-effort key path of the place being parsed, for syntax errors. */
static void
stack_path(ynode *const *stack, size_t depth, char *buf, size_t cap)
{
	size_t i, len = 0;

	buf[0] = '\0';
	for (i = 0; i < depth && len < cap; i++) {
		const ynode *s = stack[i];
		int w = 0;

		/* Inside a mapping: the key whose value is being read.  At the
		 * innermost level after a complete value, the next key is unknown. */
		if (s->kind == YN_MAP && s->n > 0 && (s->n % 2 == 1 || i + 1 < depth)) {
			const ynode *k = s->kids[(s->n - 1) & ~(size_t)1];

			if (k->kind == YN_SCALAR)
				w = snprintf(buf + len, cap - len, "%s%s", len ? "." : "", k->text);
		} else if (s->kind == YN_SEQ) {
			w = snprintf(buf + len, cap - len, "[%zu]", s->n ? s->n - (i + 1 < depth) : 0);
		}
		if (w > 0)
			len += (size_t)w;
	}
	if (len >= cap)
		buf[cap - 1] = '\0';
}

/* The key path of a line holding a tab.  libyaml reports the tab before it
 * delivers the value of the key on an earlier line, so the stack still shows
 * that key as pending: drop it, and name the key written on the tab's line. */
static void
tab_path(const rctx *c, ynode *const *stack, size_t depth, int line, size_t off, char *buf, size_t cap)
{
	const ynode *top = depth ? stack[depth - 1] : NULL;
	size_t start = off, end, len;
	char *dot;

	if (top && top->kind == YN_MAP && top->n % 2 == 1 && top->kids[top->n - 1]->line < line) {
		dot = strrchr(buf, '.');
		if (dot)
			*dot = '\0';
		else
			buf[0] = '\0';
	}
	while (start > 0 && c->src[start - 1] != '\n')
		start--;
	while (start < c->len && (c->src[start] == ' ' || c->src[start] == '\t'))
		start++;
	for (end = start; end < c->len && (isalnum((unsigned char)c->src[end]) || c->src[end] == '_' ||
	    c->src[end] == '-'); end++)
		;
	if (end == start || end >= c->len || c->src[end] != ':')
		return;
	len = strlen(buf);
	snprintf(buf + len, cap - len, "%s%.*s", len ? "." : "", (int)(end - start), c->src + start);
}

static void
syntax_error(rctx *c, yaml_parser_t *p, ynode *const *stack, size_t depth)
{
	char path[RECIPE_PATH_MAX];
	size_t off = p->problem_mark.index;
	int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;
	const char *problem = p->problem ? p->problem : "not valid YAML";

	stack_path(stack, depth, path, sizeof(path));
	if (p->error == YAML_READER_ERROR) {
		off = p->problem_offset;
		rc_pos(c, off, &line, &col);
		rc_err(c, line, col, path, "not valid UTF-8 text (%s)", problem);
		return;
	}
	if (off < c->len && c->src[off] == '\t') {
		tab_path(c, stack, depth, line, off, path, sizeof(path));
		rc_err(c, line, col, path, "a tab character: YAML indents with spaces only, replace the tab with spaces");
		return;
	}
	if (p->context)
		rc_err(c, line, col, path, "YAML syntax error: %s (%s that starts at line %zu, column %zu)", problem,
		    p->context, p->context_mark.line + 1, p->context_mark.column + 1);
	else
		rc_err(c, line, col, path, "YAML syntax error: %s", problem);
}

/* Anchors, tags: reported, the node is kept (its value is still checked). */
static void
check_props(rctx *c, const yaml_event_t *ev, const yaml_char_t *anchor, const yaml_char_t *tag, int implicit,
    ynode *const *stack, size_t depth)
{
	char path[RECIPE_PATH_MAX];
	int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;

	if (!anchor && (!tag || implicit))
		return;
	stack_path(stack, depth, path, sizeof(path));
	if (anchor)
		rc_err(c, line, col, path, "anchor '&%s': anchors and aliases are not allowed in a recipe, write each value out",
		    (const char *)anchor);
	if (tag && !implicit)
		rc_err(c, line, col, path, "tag '%s': tags are not allowed in a recipe, write the plain value",
		    (const char *)tag);
}

ynode *
ytree_parse(rctx *c)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	ynode *stack[RECIPE_MAX_DEPTH + 1];
	ynode *root = NULL, *n = NULL;
	size_t depth = 0;
	int docs = 0, done = 0, ok = 0, want;

	if (!yaml_parser_initialize(&parser)) {
		rc_err(c, 0, 0, NULL, "out of memory");
		return NULL;
	}
	yaml_parser_set_input_string(&parser, c->src, c->len);
	while (!done) {
		char path[RECIPE_PATH_MAX];

		if (!yaml_parser_parse(&parser, &ev)) {
			syntax_error(c, &parser, stack, depth);
			break;
		}
		n = NULL;
		want = 0; /* this event makes a node */
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = ok = 1;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1) {
				rc_err(c, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1, NULL,
				    "a second YAML document starts here: a recipe file holds exactly one document");
				done = 1;
				ok = root != NULL;
			} else if (ev.data.document_start.tag_directives.start != ev.data.document_start.tag_directives.end) {
				rc_err(c, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1, NULL,
				    "%%TAG directives are not allowed in a recipe");
			}
			break;
		case YAML_ALIAS_EVENT:
			stack_path(stack, depth, path, sizeof(path));
			rc_err(c, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1, path,
			    "alias '*%s': anchors and aliases are not allowed in a recipe, write each value out",
			    (const char *)ev.data.alias.anchor);
			want = 1;
			if ((n = node_new(YN_SCALAR, &ev)) && (n->text = strdup(""))) {
				n->plain = 1;
				n->bad = 1;
			}
			break;
		case YAML_SCALAR_EVENT:
			check_props(c, &ev, ev.data.scalar.anchor, ev.data.scalar.tag,
			    ev.data.scalar.plain_implicit || ev.data.scalar.quoted_implicit, stack, depth);
			want = 1;
			if ((n = node_new(YN_SCALAR, &ev))) {
				n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
				n->len = ev.data.scalar.length;
				if ((n->text = malloc(n->len + 1))) {
					memcpy(n->text, ev.data.scalar.value, n->len);
					n->text[n->len] = '\0';
				}
			}
			break;
		case YAML_MAPPING_START_EVENT:
		case YAML_SEQUENCE_START_EVENT:
			if (ev.type == YAML_MAPPING_START_EVENT)
				check_props(c, &ev, ev.data.mapping_start.anchor, ev.data.mapping_start.tag,
				    ev.data.mapping_start.implicit, stack, depth);
			else
				check_props(c, &ev, ev.data.sequence_start.anchor, ev.data.sequence_start.tag,
				    ev.data.sequence_start.implicit, stack, depth);
			if (depth == RECIPE_MAX_DEPTH) {
				stack_path(stack, depth, path, sizeof(path));
				rc_err(c, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1, path,
				    "nested deeper than %d levels", RECIPE_MAX_DEPTH);
				done = 1;
				break;
			}
			want = 1;
			n = node_new(ev.type == YAML_MAPPING_START_EVENT ? YN_MAP : YN_SEQ, &ev);
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			if (depth > 0) {
				stack[depth - 1]->end = ev.end_mark.index;
				depth--;
			}
			break;
		default:
			break;
		}
		if (n && n->kind == YN_SCALAR && !n->text) {
			ynode_free(n);
			n = NULL;
		}
		if (want && !n) {
			rc_err(c, 0, 0, NULL, "out of memory");
			done = 1;
		}
		if (n) {
			if (depth > 0) {
				if (node_add(stack[depth - 1], n) < 0) {
					ynode_free(n);
					rc_err(c, 0, 0, NULL, "out of memory");
					done = 1;
					n = NULL;
				}
			} else if (!root) {
				root = n;
			} else {
				ynode_free(n); /* cannot happen in one document; keep the first root */
				n = NULL;
			}
			if (n && n->kind != YN_SCALAR)
				stack[depth++] = n;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	if (!ok) {
		ynode_free(root);
		return NULL;
	}
	if (!root)
		rc_err(c, 1, 1, NULL, "the file is empty (no YAML document)");
	return root;
}
