#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "devindex.h"

/* Chained hash table keyed by SE serial; entries are few kilobytes and a
 * station sees at most some hundred thousand devices per journal. */
struct node {
	struct node *next;
	dev_entry e;
};

struct devindex {
	pthread_mutex_t lock;
	struct node **buckets;
	size_t nbuckets, count;
};

static size_t
hash(const char *s)
{
	size_t h = 1469598103934665603ull;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

devindex *
devindex_new(void)
{
	devindex *ix = calloc(1, sizeof(*ix));

	if (!ix)
		return NULL;
	ix->nbuckets = 1024;
	if (!(ix->buckets = calloc(ix->nbuckets, sizeof(*ix->buckets)))) {
		free(ix);
		return NULL;
	}
	pthread_mutex_init(&ix->lock, NULL);
	return ix;
}

void
devindex_free(devindex *ix)
{
	size_t i;

	if (!ix)
		return;
	for (i = 0; i < ix->nbuckets; i++) {
		struct node *n = ix->buckets[i], *next;

		for (; n; n = next) {
			next = n->next;
			free(n);
		}
	}
	pthread_mutex_destroy(&ix->lock);
	free(ix->buckets);
	free(ix);
}

static struct node *
find(devindex *ix, const char *serial)
{
	struct node *n = ix->buckets[hash(serial) % ix->nbuckets];

	for (; n; n = n->next)
		if (strcmp(n->e.serial, serial) == 0)
			return n;
	return NULL;
}

static void
grow(devindex *ix)
{
	size_t nb = ix->nbuckets * 4, i;
	struct node **b = calloc(nb, sizeof(*b));

	if (!b)
		return; /* keep the smaller table: slower, still correct */
	for (i = 0; i < ix->nbuckets; i++) {
		struct node *n = ix->buckets[i], *next;

		for (; n; n = next) {
			size_t h = hash(n->e.serial) % nb;

			next = n->next;
			n->next = b[h];
			b[h] = n;
		}
	}
	free(ix->buckets);
	ix->buckets = b;
	ix->nbuckets = nb;
}

int
devindex_get(devindex *ix, const char *serial, dev_entry *out)
{
	struct node *n;
	int ret = -1;

	pthread_mutex_lock(&ix->lock);
	if ((n = find(ix, serial))) {
		*out = n->e;
		ret = 0;
	}
	pthread_mutex_unlock(&ix->lock);
	return ret;
}

int
devindex_put(devindex *ix, const dev_entry *e)
{
	struct node *n;
	int ret = 0;

	pthread_mutex_lock(&ix->lock);
	if ((n = find(ix, e->serial))) {
		n->e = *e;
	} else if ((n = malloc(sizeof(*n)))) {
		size_t h;

		if (ix->count >= ix->nbuckets)
			grow(ix);
		h = hash(e->serial) % ix->nbuckets;
		n->e = *e;
		n->next = ix->buckets[h];
		ix->buckets[h] = n;
		ix->count++;
	} else {
		ret = -1;
	}
	pthread_mutex_unlock(&ix->lock);
	return ret;
}

void
devindex_foreach(devindex *ix, void (*cb)(const dev_entry *e, void *ctx), void *ctx)
{
	size_t i;

	pthread_mutex_lock(&ix->lock);
	for (i = 0; i < ix->nbuckets; i++) {
		struct node *n;

		for (n = ix->buckets[i]; n; n = n->next)
			cb(&n->e, ctx);
	}
	pthread_mutex_unlock(&ix->lock);
}

size_t
devindex_count(devindex *ix)
{
	size_t n;

	pthread_mutex_lock(&ix->lock);
	n = ix->count;
	pthread_mutex_unlock(&ix->lock);
	return n;
}
