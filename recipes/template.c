/* Certificate templates: "${name}" substitutes one attested or recipe fact;
 * any other "$" is literal.  The variable list is closed on purpose: a
 * certificate may only say what the SE attested or the signed recipe states. */
#include <stdio.h>
#include <string.h>

#include "recipe-int.h"

static const char *const vars[] = {
	"se.serial", "se.model", "product.name", "product.organisation", "recipe.name", "recipe.version", NULL,
};

static const char *
fact(const recipe_facts *f, size_t i)
{
	switch (i) {
	case 0: return f->se_serial;
	case 1: return f->se_model;
	case 2: return f->product_name;
	case 3: return f->product_organisation;
	case 4: return f->recipe_name;
	default: return f->recipe_version;
	}
}

/* Index of the variable named by p[0..n), or -1. */
static int
var_index(const char *p, size_t n)
{
	size_t i;

	for (i = 0; vars[i]; i++)
		if (strlen(vars[i]) == n && memcmp(vars[i], p, n) == 0)
			return (int)i;
	return -1;
}

/* Position of text t (found inside node v's source) for a precise message. */
static void
locate(rctx *c, const ynode *v, const char *t, size_t tlen, int *line, int *col)
{
	size_t i;

	*line = v->line;
	*col = v->col;
	if (v->end > c->len || v->start > v->end || tlen == 0)
		return;
	for (i = v->start; i + tlen <= v->end; i++)
		if (memcmp(c->src + i, t, tlen) == 0) {
			rc_pos(c, i, line, col);
			return;
		}
}

int
rc_template(rctx *c, const ynode *v, const char *path)
{
	const char *p = v->text, *q;
	int line, col, ret = 0;

	while ((p = strstr(p, "${"))) {
		char shown[80];

		if (!(q = strchr(p + 2, '}'))) {
			locate(c, v, p, strlen(p) < 8 ? strlen(p) : 8, &line, &col);
			rc_err(c, line, col, path, "unclosed \"${\" in template: write ${variable}");
			return -1;
		}
		if (var_index(p + 2, (size_t)(q - p - 2)) < 0) {
			snprintf(shown, sizeof(shown), "%.*s", (int)(q - p + 1), p);
			locate(c, v, p, (size_t)(q - p + 1), &line, &col);
			rc_err(c, line, col, path,
			    "unknown template variable %s: use ${se.serial}, ${se.model}, ${product.name}, "
			    "${product.organisation}, ${recipe.name} or ${recipe.version}",
			    shown);
			ret = -1;
		}
		p = q + 1;
	}
	return ret;
}

void
recipe_facts_init(recipe_facts *f, const recipe *r, const char *se_serial, const char *se_model)
{
	memset(f, 0, sizeof(*f));
	f->se_serial = se_serial;
	f->se_model = se_model;
	if (r) {
		f->product_name = r->product.name;
		f->product_organisation = r->product.organisation;
		f->recipe_name = r->recipe.name;
		f->recipe_version = r->recipe.version;
	}
}

int
recipe_expand(const char *tpl, const recipe_facts *facts, char *out, size_t cap, st_err *err)
{
	st_wr wr;
	const char *p = tpl, *q;
	int ret = -1;

	if (!cap)
		return st_err_set(err, ST_E_INTERNAL, "template: no room for the result");
	st_wr_init(&wr, out, cap - 1);
	while (*p) {
		const char *val;
		int i;

		if (p[0] != '$' || p[1] != '{') {
			st_wr_u8(&wr, (uint8_t)*p++);
			continue;
		}
		if (!(q = strchr(p + 2, '}'))) {
			st_err_set(err, ST_E_CONFIG, "template \"%s\": unclosed \"${\"", tpl);
			goto out;
		}
		if ((i = var_index(p + 2, (size_t)(q - p - 2))) < 0) {
			st_err_set(err, ST_E_CONFIG, "template \"%s\": unknown variable %.*s", tpl, (int)(q - p + 1), p);
			goto out;
		}
		if (!(val = fact(facts, (size_t)i)) || !*val) {
			st_err_set(err, ST_E_CONFIG, "template \"%s\": no value for ${%s}", tpl, vars[i]);
			goto out;
		}
		for (; *val; val++) {
			unsigned char ch = (unsigned char)*val;

			/* The SE's facts come from the device: only printable ASCII of
			 * theirs goes into a certificate.  Recipe facts may be UTF-8. */
			if (ch < 0x20 || ch == 0x7f || (i < 2 && ch > 0x7e)) {
				st_err_set(err, ST_E_VERIFY, "template \"%s\": ${%s} holds a non-printable byte 0x%02x", tpl,
				    vars[i], ch);
				goto out;
			}
			st_wr_u8(&wr, ch);
		}
		p = q + 1;
	}
	if (wr.bad) {
		st_err_set(err, ST_E_CONFIG, "template \"%s\": result longer than %zu bytes", tpl, cap - 1);
		goto out;
	}
	ret = 0;
out:
	out[ret == 0 ? wr.len : 0] = '\0';
	return ret;
}
