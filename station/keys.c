/* Key uniqueness (DESIGN.md invariant 5): a public key is certified for one
 * SE at most, and a new key differs from every key certified before: every
 * key an "issuing" record of the journal names (the history, history.h),
 * and every key an SE offered in this run (kept here). */
#include <stdlib.h>
#include <string.h>

#include "engine-int.h"
#include "recipe.h"
#include "step.h"

struct keyrec {
	uint8_t h[32];
	char serial[JIG_STR_MAX + 1];
};

struct keyset {
	struct keyrec *v;
	size_t n, cap;
};

static int
keyset_add(struct keyset *k, const uint8_t h[32], const char *serial)
{
	if (k->n == k->cap) {
		size_t cap = k->cap ? 2 * k->cap : 256;
		struct keyrec *v = realloc(k->v, cap * sizeof(*v));

		if (!v)
			return -1;
		k->v = v;
		k->cap = cap;
	}
	memcpy(k->v[k->n].h, h, 32);
	snprintf(k->v[k->n].serial, sizeof(k->v[k->n].serial), "%s", serial ? serial : "");
	k->n++;
	return 0;
}

void
eng_keys_free(struct engine *e)
{
	if (!e->keys)
		return;
	free(e->keys->v);
	free(e->keys);
	e->keys = NULL;
}

int
eng_keys_load(struct engine *e, st_err *err)
{
	struct keyset *k = calloc(1, sizeof(*k));

	if (!k)
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	e->keys = k;
	return 0;
}

int
eng_key_fresh(struct worker *w, struct dev *d, const uint8_t h[32], int keep)
{
	struct engine *e = w->eng;
	struct keyset *k;
	const char *other = NULL;
	char owner[JIG_STR_MAX + 1];
	int ret = -1, fatal = 0;
	size_t i;

	pthread_mutex_lock(&e->lock);
	if (!(k = e->keys)) {
		st_err_set(&d->err, ST_E_INTERNAL, "the certified keys were not loaded");
		fatal = 1;
		goto out;
	}
	if (history_key_owner(e->st->history, h, owner) == 0 && (!keep || strcmp(owner, d->info.serial) != 0))
		other = owner;
	for (i = 0; i < k->n && !other; i++)
		if (memcmp(k->v[i].h, h, 32) == 0 && (!keep || strcmp(k->v[i].serial, d->info.serial) != 0))
			other = k->v[i].serial;
	if (other) {
		if (strcmp(other, d->info.serial) == 0)
			st_err_set(&d->err, ST_E_VERIFY, "KEYGEN answered a key this SE had certified before (a new key must "
			                                 "differ from every key certified before)");
		else
			st_err_set(&d->err, ST_E_VERIFY, "KEYGEN answered a key that is certified or offered for another SE "
			                                 "(one public key is certified for one SE at most)");
		goto out;
	}
	if (keyset_add(k, h, d->info.serial) < 0) {
		st_err_set(&d->err, ST_E_NOMEM, "out of memory");
		fatal = 1;
		goto out;
	}
	ret = 0;
out:
	pthread_mutex_unlock(&e->lock);
	if (ret < 0 && fatal) {
		eng_set_fatal(e, d->err.msg);
		return eng_fail(d, STEP_KEYGEN, ADV_ENGINEERING);
	}
	return ret < 0 ? eng_fail(d, STEP_KEYGEN, ADV_QUARANTINE) : 0;
}
