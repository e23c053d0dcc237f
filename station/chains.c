#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chains.h"

#define CHAIN_MEM_MAX 16
#define CHAIN_FILE_MAX JIG_CHAIN_PAYLOAD_MAX

struct chain_entry {
	uint8_t sha256[JIG_SHA256_LEN];
	size_t n;
	jig_blob certs[JIG_MAX_CERTS - 1];
	int has_tmpl; /* the 1.2 form: a template after the certificates */
	jig_blob tmpl;
};

struct chain_cache {
	pthread_mutex_t lock;
	char *dir;
	struct chain_entry *e[CHAIN_MEM_MAX];
	size_t n, next; /* next: the slot a new chain replaces once full */
};

chain_cache *
chain_cache_new(const char *dir)
{
	chain_cache *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	if (dir && !(c->dir = strdup(dir))) {
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

void
chain_cache_free(chain_cache *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->n; i++)
		free(c->e[i]);
	free(c->dir);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static int
append(jig_se_info *info, const struct chain_entry *e)
{
	size_t i;

	if (info->ncerts != 1 || e->n > JIG_MAX_CERTS - 1)
		return -1;
	for (i = 0; i < e->n; i++)
		info->certs[1 + i] = e->certs[i];
	info->ncerts = 1 + e->n;
	info->chain_has_tmpl = e->has_tmpl;
	info->chain_tmpl = e->tmpl;
	return 0;
}

static void
file_path(const chain_cache *c, const uint8_t sha[JIG_SHA256_LEN], char *out, size_t cap)
{
	char hex[2 * JIG_SHA256_LEN + 1];

	st_hex(sha, JIG_SHA256_LEN, hex);
	snprintf(out, cap, "%s/%s.chain", c->dir, hex);
}

/* The file for this digest: it must hash to its name and parse as a
 * VENDOR_CHAIN payload, with the message saying which file and why not. */
static int
read_file(const chain_cache *c, const uint8_t sha[JIG_SHA256_LEN], struct chain_entry *e, st_err *err)
{
	static _Thread_local jig_msg m;
	uint8_t got[JIG_SHA256_LEN], *buf = NULL;
	char path[4200];
	size_t len = 0, i;
	st_err e2;
	int ret = -1;

	file_path(c, sha, path, sizeof(path));
	if (st_file_read(path, CHAIN_FILE_MAX, &buf, &len, &e2) < 0) {
		if (e2.sys == ENOENT)
			return 0;
		return st_err_set(err, ST_E_IO, "vendor chain cache %s: %s", path, e2.msg);
	}
	st_sha256(buf, len, got);
	if (memcmp(got, sha, JIG_SHA256_LEN) != 0) {
		st_err_set(err, ST_E_PROTO, "vendor chain cache %s: the file does not hash to its name (altered or torn)",
		    path);
		goto out;
	}
	/* The 1.1 form, or the 1.2 form with a template after the chain: a
	 * payload of one form never decodes as the other. */
	if (jig_msg_decode_v(JIG_VERSION_1_1, JIG_CMD_VENDOR_CHAIN | JIG_RESPONSE, buf, len, &m, &e2) < 0 &&
	    jig_msg_decode_v(JIG_VERSION_1_2, JIG_CMD_VENDOR_CHAIN | JIG_RESPONSE, buf, len, &m, NULL) < 0) {
		st_err_set(err, ST_E_PROTO, "vendor chain cache %s: %s", path, e2.msg);
		goto out;
	}
	memcpy(e->sha256, sha, JIG_SHA256_LEN);
	e->n = m.u.chain.n;
	for (i = 0; i < e->n; i++)
		e->certs[i] = m.u.chain.certs[i];
	e->has_tmpl = m.version >= JIG_VERSION_1_2;
	e->tmpl = m.u.chain.tmpl;
	ret = 1;
out:
	free(buf);
	return ret;
}

int
chain_cache_get(chain_cache *c, jig_se_info *info, st_err *err)
{
	struct chain_entry *e = NULL;
	size_t i;
	int rc = CHAIN_MISS;

	pthread_mutex_lock(&c->lock);
	for (i = 0; i < c->n; i++)
		if (memcmp(c->e[i]->sha256, info->chain_sha256, JIG_SHA256_LEN) == 0) {
			rc = append(info, c->e[i]) == 0 ? CHAIN_MEMORY : CHAIN_MISS;
			break;
		}
	pthread_mutex_unlock(&c->lock);
	if (rc != CHAIN_MISS || !c->dir)
		return rc;
	if (!(e = malloc(sizeof(*e))))
		return CHAIN_MISS;
	if (read_file(c, info->chain_sha256, e, err) == 1 && append(info, e) == 0)
		rc = CHAIN_DISK;
	free(e);
	return rc;
}

void
chain_cache_put(chain_cache *c, const jig_se_info *info, int on_disk)
{
	struct chain_entry *e;
	uint8_t buf[CHAIN_FILE_MAX];
	char path[4200];
	size_t i, len;
	st_err err;

	if (info->ncerts < 2 || info->ncerts > JIG_MAX_CERTS || !(e = calloc(1, sizeof(*e))))
		return;
	memcpy(e->sha256, info->chain_sha256, JIG_SHA256_LEN);
	e->n = info->ncerts - 1;
	for (i = 0; i < e->n; i++)
		e->certs[i] = info->certs[1 + i];
	e->has_tmpl = info->chain_has_tmpl;
	e->tmpl = info->chain_tmpl;
	pthread_mutex_lock(&c->lock);
	for (i = 0; i < c->n && memcmp(c->e[i]->sha256, e->sha256, JIG_SHA256_LEN) != 0; i++)
		;
	if (i < c->n) {
		free(e); /* another worker put it first */
		e = NULL;
	} else if (c->n < CHAIN_MEM_MAX) {
		c->e[c->n++] = e;
	} else {
		free(c->e[c->next]);
		c->e[c->next] = e;
		c->next = (c->next + 1) % CHAIN_MEM_MAX;
	}
	pthread_mutex_unlock(&c->lock);
	if (!e || on_disk || !c->dir)
		return;
	if (jig_chain_payload(&info->certs[1], info->ncerts - 1, info->chain_has_tmpl ? &info->chain_tmpl : NULL, buf,
	        sizeof(buf), &len) < 0 || (mkdir(c->dir, 0755) < 0 && errno != EEXIST))
		return;
	file_path(c, info->chain_sha256, path, sizeof(path));
	if (st_file_write_atomic(path, buf, len, 0644, &err) < 0)
		st_log("station", "%s", err.msg); /* the next run fetches it from the jig again */
}
