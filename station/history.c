/* The journal's account of every SE and certificate (history.h).  Compact
 * on purpose: one journal may hold 100,000 devices, and `station run` keeps
 * all of them in memory (issue 12, item 8). */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cms.h"
#include "history.h"
#include "revlist.h"
#include "step.h"

enum {
	HC_ISSUED = 1,
	HC_INSTALLED = 2,
	HC_UNISSUED = 4,
	HC_REVOKED = 8,
	HC_PUBKEY = 16,
	HC_RETIRED = 32,
};

struct hcert {
	uint8_t serial[20];
	uint8_t serial_len;
	uint8_t flags;
	uint8_t reason;      /* index in h->reasons */
	uint8_t issuer;      /* index + 1 in h->issuers; 0: not known */
	uint32_t dev;        /* index in h->devs */
	uint32_t next;       /* the device's next certificate, index + 1 */
	uint32_t batch;      /* where its "issued" record is */
	uint64_t seq;
	int64_t revoked_at;
	uint8_t pubkey[32];
};

struct hdev {
	uint32_t name;       /* offset in h->names */
	uint32_t live;       /* certificate index + 1; 0 none */
	uint32_t retired;    /* the certificate a rework retired, index + 1 */
	uint32_t first, last; /* its certificates, index + 1 */
	uint16_t issued, revoked;
	uint8_t state;
	uint8_t retiring;
};

/* A completed rework under a signed authorization (few: a list). */
struct hauth {
	uint32_t dev;
	uint32_t id;         /* offset in h->names */
	uint64_t seq;        /* its "done" "pass" record */
};

/* A "quota-release" record (few: a list): {"time", "station", "details"}. */
struct hrelease {
	json_t *rec;
	unsigned issuing_before; /* "issuing" records before it */
};

/* Open addressing over index + 1 (0 = empty); capacity a power of two. */
struct table {
	uint32_t *slot;
	size_t cap;
};

#define MAX_REASONS 32
#define HALT_WINDOW 1000 /* device outcomes the anomaly halt looks back on (recipe halt.within at most) */
#define MAX_ISSUERS 16 /* intermediates one journal has seen (a rollover adds one) */

struct history {
	pthread_mutex_t lock;
	struct hdev *devs;
	size_t ndevs, devs_cap;
	struct hcert *certs;
	size_t ncerts, certs_cap;
	char *names;
	size_t names_len, names_cap;
	struct hauth *auths;
	size_t nauths, auths_cap;
	struct hrelease *releases;
	size_t nreleases, releases_cap;
	unsigned issuing;    /* "issuing" records, any result */
	struct table dev_tab, cert_tab, key_tab;
	char reasons[MAX_REASONS][40];
	unsigned nreasons;
	uint64_t last_crl;         /* the highest CRL number of any issuer */
	uint64_t legacy_crl;       /* of "crl" records that name no issuer (journals before issue 15) */
	char issuers[MAX_ISSUERS][ST_KEY_ID_HEX]; /* key identifiers, lower-case hex */
	uint64_t issuer_crl[MAX_ISSUERS];
	unsigned nissuers;
	char audit_key[ST_SHA256_HEX_LEN + 1];        /* SHA-256 of the last announced audit certificate ("audit-key") */
	uint64_t audit_key_seq;
	/* The anomaly halt: outcomes of the factory path's devices since the
	 * last halt or resume (1 = attestation or identity failure), the
	 * posture failures in a row with one error, the halt pending. */
	uint8_t outcomes[HALT_WINDOW];
	unsigned n_outcomes, next_outcome;
	unsigned posture_streak;
	char posture_error[256];
	uint64_t halt_seq;
	char halt_id[33], halt_reason[256];
	unsigned cur_batch, cur_batch_issued;
};

static uint64_t
fnv(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 1469598103934665603ull;

	while (n--)
		h = (h ^ *b++) * 1099511628211ull;
	return h;
}

history *
history_new(void)
{
	history *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	pthread_mutex_init(&h->lock, NULL);
	snprintf(h->reasons[0], sizeof(h->reasons[0]), "unspecified");
	h->nreasons = 1;
	return h;
}

void
history_free(history *h)
{
	if (!h)
		return;
	free(h->devs);
	free(h->certs);
	free(h->names);
	free(h->auths);
	for (size_t i = 0; i < h->nreleases; i++)
		json_decref(h->releases[i].rec);
	free(h->releases);
	free(h->dev_tab.slot);
	free(h->cert_tab.slot);
	free(h->key_tab.slot);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static const char *
dev_name(const history *h, const struct hdev *d)
{
	return h->names + d->name;
}

static uint64_t
key_hash(const history *h, int which, uint32_t idx)
{
	if (which == 0)
		return fnv(dev_name(h, &h->devs[idx]), strlen(dev_name(h, &h->devs[idx])));
	if (which == 1)
		return fnv(h->certs[idx].serial, h->certs[idx].serial_len);
	return fnv(h->certs[idx].pubkey, 32);
}

/* Make room for one more entry (load at most one half). */
static int
table_reserve(history *h, struct table *t, int which, size_t count)
{
	struct table n;
	size_t i;

	if ((count + 1) * 2 <= t->cap)
		return 0;
	n.cap = t->cap ? t->cap * 2 : 1024;
	if (!(n.slot = calloc(n.cap, sizeof(*n.slot))))
		return -1;
	for (i = 0; i < t->cap; i++) {
		size_t j;

		if (!t->slot[i])
			continue;
		for (j = key_hash(h, which, t->slot[i] - 1) & (n.cap - 1); n.slot[j]; j = (j + 1) & (n.cap - 1))
			;
		n.slot[j] = t->slot[i];
	}
	free(t->slot);
	*t = n;
	return 0;
}

static void
table_insert(history *h, struct table *t, int which, uint32_t idx)
{
	size_t j;

	for (j = key_hash(h, which, idx) & (t->cap - 1); t->slot[j]; j = (j + 1) & (t->cap - 1))
		;
	t->slot[j] = idx + 1;
}

static int
grow(void **p, size_t *cap, size_t n, size_t size)
{
	void *q;
	size_t c;

	if (n < *cap)
		return 0;
	c = *cap ? *cap * 2 : 256;
	if (!(q = realloc(*p, c * size)))
		return -1;
	*p = q;
	*cap = c;
	return 0;
}

static struct hdev *
dev_find(history *h, const char *serial)
{
	size_t j;

	if (!h->dev_tab.cap)
		return NULL;
	for (j = fnv(serial, strlen(serial)) & (h->dev_tab.cap - 1); h->dev_tab.slot[j];
	     j = (j + 1) & (h->dev_tab.cap - 1))
		if (strcmp(dev_name(h, &h->devs[h->dev_tab.slot[j] - 1]), serial) == 0)
			return &h->devs[h->dev_tab.slot[j] - 1];
	return NULL;
}

/* A copy of s[0..len) in the names arena, at *off. */
static int
name_add(history *h, const char *s, size_t len, uint32_t *off)
{
	while (h->names_len + len + 1 > h->names_cap) {
		size_t cap = h->names_cap ? h->names_cap * 2 : 8192;
		char *p = realloc(h->names, cap);

		if (!p)
			return -1;
		h->names = p;
		h->names_cap = cap;
	}
	*off = (uint32_t)h->names_len;
	memcpy(h->names + h->names_len, s, len);
	h->names[h->names_len + len] = '\0';
	h->names_len += len + 1;
	return 0;
}

static struct hdev *
dev_add(history *h, const char *serial)
{
	struct hdev *d = dev_find(h, serial);
	size_t len = strnlen(serial, 64);

	if (d)
		return d;
	uint32_t name;

	if (grow((void **)&h->devs, &h->devs_cap, h->ndevs, sizeof(*h->devs)) < 0 ||
	    table_reserve(h, &h->dev_tab, 0, h->ndevs) < 0 || name_add(h, serial, len, &name) < 0)
		return NULL;
	d = &h->devs[h->ndevs];
	memset(d, 0, sizeof(*d));
	d->name = name;
	table_insert(h, &h->dev_tab, 0, (uint32_t)h->ndevs++);
	return d;
}

/* A serial in any spelling into its bytes; -1 when it is not one. */
static int
serial_bytes(const char *in, uint8_t out[20], uint8_t *len)
{
	char c[ST_CERT_SERIAL_HEX_LEN + 1];
	size_t n, i;

	if (!in)
		return -1;
	revlist_canon(in, c);
	n = strlen(c);
	if (n == 0 || n % 2 || n > ST_CERT_SERIAL_HEX_LEN)
		return -1;
	for (i = 0; i < n; i++)
		if (!isxdigit((unsigned char)c[i]))
			return -1;
	for (i = 0; i < n / 2; i++) {
		unsigned v;

		sscanf(c + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
	*len = (uint8_t)(n / 2);
	return 0;
}

static struct hcert *
cert_find(history *h, const uint8_t *sn, uint8_t len)
{
	size_t j;

	if (!h->cert_tab.cap)
		return NULL;
	for (j = fnv(sn, len) & (h->cert_tab.cap - 1); h->cert_tab.slot[j]; j = (j + 1) & (h->cert_tab.cap - 1)) {
		struct hcert *c = &h->certs[h->cert_tab.slot[j] - 1];

		if (c->serial_len == len && memcmp(c->serial, sn, len) == 0)
			return c;
	}
	return NULL;
}

static struct hcert *
cert_add(history *h, const uint8_t *sn, uint8_t len, struct hdev *d)
{
	struct hcert *c = cert_find(h, sn, len);
	uint32_t di = (uint32_t)(d - h->devs), ci;

	if (c)
		return c;
	if (grow((void **)&h->certs, &h->certs_cap, h->ncerts, sizeof(*h->certs)) < 0 ||
	    table_reserve(h, &h->cert_tab, 1, h->ncerts) < 0)
		return NULL;
	ci = (uint32_t)h->ncerts++;
	c = &h->certs[ci];
	memset(c, 0, sizeof(*c));
	memcpy(c->serial, sn, len);
	c->serial_len = len;
	c->dev = di;
	if (d->last)
		h->certs[d->last - 1].next = ci + 1;
	else
		d->first = ci + 1;
	d->last = ci + 1;
	table_insert(h, &h->cert_tab, 1, ci);
	return c;
}

static struct hcert *
key_find(history *h, const uint8_t pub[32])
{
	size_t j;

	if (!h->key_tab.cap)
		return NULL;
	for (j = fnv(pub, 32) & (h->key_tab.cap - 1); h->key_tab.slot[j]; j = (j + 1) & (h->key_tab.cap - 1)) {
		struct hcert *c = &h->certs[h->key_tab.slot[j] - 1];

		if (memcmp(c->pubkey, pub, 32) == 0)
			return c;
	}
	return NULL;
}

static int
set_pubkey(history *h, struct hcert *c, const uint8_t pub[32])
{
	if (c->flags & HC_PUBKEY)
		return 0;
	memcpy(c->pubkey, pub, 32);
	c->flags |= HC_PUBKEY;
	if (key_find(h, pub))
		return 0; /* the first SE it was announced for is its owner */
	if (table_reserve(h, &h->key_tab, 2, h->ncerts) < 0)
		return -1;
	table_insert(h, &h->key_tab, 2, (uint32_t)(c - h->certs));
	return 0;
}

static int
hex32(const char *s, uint8_t out[32])
{
	size_t i;

	if (!s || strlen(s) != 64)
		return -1;
	for (i = 0; i < 32; i++) {
		unsigned v;

		if (!isxdigit((unsigned char)s[2 * i]) || !isxdigit((unsigned char)s[2 * i + 1]))
			return -1;
		sscanf(s + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
	return 0;
}

/* The index + 1 of an issuer's key identifier (added when new); 0 when
 * kid is not one or the table is full. */
static uint8_t
issuer_index(history *h, const char *kid)
{
	unsigned i;

	if (!kid || !*kid || strlen(kid) >= ST_KEY_ID_HEX || kid[strspn(kid, "0123456789abcdef")])
		return 0;
	for (i = 0; i < h->nissuers; i++)
		if (strcmp(h->issuers[i], kid) == 0)
			return (uint8_t)(i + 1);
	if (h->nissuers == MAX_ISSUERS)
		return 0;
	snprintf(h->issuers[h->nissuers], sizeof(h->issuers[0]), "%s", kid);
	return (uint8_t)++h->nissuers;
}

/* An "issued" record of a journal that has no "issuing" record for it, or
 * one that named no issuer: the key's digest and the issuer's key
 * identifier (AKI) from the certificate itself. */
static void
facts_from_cert(history *h, struct hcert *c, const char *b64)
{
	uint8_t *der = NULL, *spki = NULL, d[32];
	char kid[ST_KEY_ID_HEX];
	const unsigned char *p;
	size_t len;
	X509 *x;
	int n;

	if (!b64 || st_b64_decode(b64, &der, &len) < 0)
		return;
	p = der;
	if ((x = d2i_X509(NULL, &p, (long)len)) && !(c->flags & HC_PUBKEY) &&
	    (n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki)) > 0) {
		st_sha256(spki, (size_t)n, d);
		set_pubkey(h, c, d);
	}
	if (x && st_x509_aki_hex(x, kid) == 0)
		c->issuer = issuer_index(h, kid);
	OPENSSL_free(spki);
	X509_free(x);
	free(der);
}

static uint8_t
reason_index(history *h, const char *r)
{
	unsigned i;

	if (!r || !*r)
		return 0;
	for (i = 0; i < h->nreasons; i++)
		if (strcmp(h->reasons[i], r) == 0)
			return (uint8_t)i;
	if (h->nreasons == MAX_REASONS || strlen(r) >= sizeof(h->reasons[0]))
		return 0;
	snprintf(h->reasons[h->nreasons], sizeof(h->reasons[0]), "%s", r);
	return (uint8_t)h->nreasons++;
}

static time_t
parse_time(const char *s)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return time(NULL);
	return timegm(&tm);
}

static const char *
detail(const audit_record *rec, const char *name)
{
	json_t *v = json_object_get(rec->details, name);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static void
anomaly_reset(history *h)
{
	h->n_outcomes = h->next_outcome = 0;
	h->posture_streak = 0;
	h->posture_error[0] = '\0';
}

/* The anomaly halt's view of a record (FORMAT.md, "halt"): 1 when it was a
 * halt or resume record (nothing else to apply). */
static int
anomaly_apply(history *h, const audit_record *rec)
{
	const char *disp = detail(rec, "disposition"), *error = detail(rec, "error");
	int posture;

	if (!rec->device && strcmp(rec->step, STEP_HALT) == 0) {
		snprintf(h->halt_id, sizeof(h->halt_id), "%s", detail(rec, "halt_id") ? detail(rec, "halt_id") : "");
		snprintf(h->halt_reason, sizeof(h->halt_reason), "%s", detail(rec, "message") ? detail(rec, "message") : "");
		h->halt_seq = rec->seq;
		anomaly_reset(h);
		return 1;
	}
	if (!rec->device && strcmp(rec->step, STEP_HALT_RESUME) == 0 && strcmp(rec->result, AUDIT_RESULT_OK) == 0) {
		if (detail(rec, "halt_id") && strcmp(detail(rec, "halt_id"), h->halt_id) == 0)
			h->halt_seq = 0;
		anomaly_reset(h);
		return 1;
	}
	/* Devices of the factory path only: a rework is its own command. */
	if (!audit_is_terminal(rec->device, rec->step, rec->result) || json_is_true(json_object_get(rec->details, "rework")))
		return 0;
	h->outcomes[h->next_outcome] = disp && strcmp(disp, "quarantine") == 0;
	h->next_outcome = (h->next_outcome + 1) % HALT_WINDOW;
	if (h->n_outcomes < HALT_WINDOW)
		h->n_outcomes++;
	posture = strcmp(rec->step, "posture") == 0 && strcmp(rec->result, AUDIT_RESULT_FAIL) == 0 && disp &&
	          strcmp(disp, "wrong-part") == 0 && error;
	if (posture && h->posture_streak && strncmp(h->posture_error, error, sizeof(h->posture_error) - 1) == 0) {
		h->posture_streak++;
	} else if (posture) {
		h->posture_streak = 1;
		snprintf(h->posture_error, sizeof(h->posture_error), "%s", error);
	} else {
		h->posture_streak = 0;
		h->posture_error[0] = '\0';
	}
	return 0;
}

static int
apply_locked(history *h, const audit_record *rec, unsigned batch)
{
	int ok = strcmp(rec->result, AUDIT_RESULT_OK) == 0;
	struct hdev *d;
	struct hcert *c = NULL;
	uint8_t sn[20], len = 0, pub[32];
	int has_sn;
	size_t di;

	if (batch != h->cur_batch) {
		h->cur_batch = batch;
		h->cur_batch_issued = 0;
	}
	if (strcmp(rec->step, "crl") == 0) {
		json_t *v = json_object_get(rec->details, "crl_number");
		uint8_t ix = issuer_index(h, detail(rec, "issuer_key_id"));
		uint64_t *last = ix ? &h->issuer_crl[ix - 1] : &h->legacy_crl;

		if (json_is_integer(v) && json_integer_value(v) > 0) {
			if ((uint64_t)json_integer_value(v) > h->last_crl)
				h->last_crl = (uint64_t)json_integer_value(v);
			if ((uint64_t)json_integer_value(v) > *last)
				*last = (uint64_t)json_integer_value(v);
		}
		return 0;
	}
	if (strcmp(rec->step, STEP_QUOTA_RELEASE) == 0) {
		struct hrelease *r;

		if (grow((void **)&h->releases, &h->releases_cap, h->nreleases, sizeof(*h->releases)) < 0)
			return -1;
		r = &h->releases[h->nreleases];
		if (!(r->rec = json_pack("{s:s,s:s,s:O}", "time", rec->time ? rec->time : "", "station",
		          rec->station ? rec->station : "", "details", rec->details)))
			return -1;
		r->issuing_before = h->issuing;
		h->nreleases++;
		return 0;
	}
	if (strcmp(rec->step, STEP_ISSUING) == 0)
		h->issuing++;
	if (anomaly_apply(h, rec))
		return 0;
	if (strcmp(rec->step, AUDIT_STEP_AUDIT_KEY) == 0 && !rec->device && ok) {
		const char *sha = detail(rec, "cert_sha256");

		if (sha && strlen(sha) == 64) {
			snprintf(h->audit_key, sizeof(h->audit_key), "%s", sha);
			h->audit_key_seq = rec->seq;
		}
		return 0;
	}
	if (!rec->device)
		return 0;
	if (!(d = dev_add(h, rec->device)))
		return -1;
	di = (size_t)(d - h->devs);
	has_sn = serial_bytes(detail(rec, "cert_serial"), sn, &len) == 0;

	if (strcmp(rec->step, "issuing") == 0 && ok && has_sn) {
		if (!(c = cert_add(h, sn, len, d)))
			return -1;
		d = &h->devs[di];
		if (hex32(detail(rec, "pubkey_sha256"), pub) == 0 && set_pubkey(h, c, pub) < 0)
			return -1;
		if (!c->issuer)
			c->issuer = issuer_index(h, detail(rec, "issuer_key_id"));
	} else if (strcmp(rec->step, "issued") == 0 && has_sn) {
		if (!(c = cert_add(h, sn, len, d)))
			return -1;
		d = &h->devs[di];
		h->cur_batch_issued++;
		if (ok && !(c->flags & HC_ISSUED)) {
			c->flags |= HC_ISSUED;
			c->batch = batch;
			c->seq = rec->seq;
			if (!(c->flags & HC_PUBKEY) || !c->issuer)
				facts_from_cert(h, c, detail(rec, "cert"));
			if (c->dev == di)
				d->issued++;
			if (!(c->flags & HC_REVOKED))
				d->live = (uint32_t)(c - h->certs) + 1;
		}
	} else if (strcmp(rec->step, "install") == 0 && ok) {
		if (has_sn)
			c = cert_find(h, sn, len);
		else if (d->live)
			c = &h->certs[d->live - 1];
		if (c)
			c->flags |= HC_INSTALLED;
		/* A TPM's IAK certificate went into its NV beside the IDevID one. */
		if (serial_bytes(detail(rec, "iak_cert_serial"), sn, &len) == 0 && (c = cert_find(h, sn, len)))
			c->flags |= HC_INSTALLED;
	} else if (strcmp(rec->step, "revoke") == 0 && ok && has_sn) {
		if (!(c = cert_add(h, sn, len, d)))
			return -1;
		d = &h->devs[di];
		if (!(c->flags & HC_REVOKED)) {
			struct hdev *owner = &h->devs[c->dev];

			c->flags |= HC_REVOKED;
			if (json_is_true(json_object_get(rec->details, "unissued")))
				c->flags |= HC_UNISSUED;
			c->revoked_at = (int64_t)parse_time(rec->time);
			c->reason = reason_index(h, detail(rec, "reason"));
			owner->revoked++;
			if (owner->live == (uint32_t)(c - h->certs) + 1)
				owner->live = 0;
		}
	} else if (strcmp(rec->step, "retire") == 0 && ok) {
		d->retiring = 1;
		d->retired = 0;
		if (serial_bytes(detail(rec, "old_cert_serial"), sn, &len) == 0) {
			if (!(c = cert_add(h, sn, len, d)))
				return -1;
			d = &h->devs[di];
			d->retired = (uint32_t)(c - h->certs) + 1;
			c->flags |= HC_RETIRED;
		}
	}
	if (strcmp(rec->step, AUDIT_STEP_DONE) == 0) {
		d->retiring = 0;
		d->retired = 0;
	}
	if (strcmp(rec->step, AUDIT_STEP_DONE) == 0 && strcmp(rec->result, "pass") == 0 && detail(rec, "authorization")) {
		const char *id = detail(rec, "authorization");
		struct hauth *a;

		if (grow((void **)&h->auths, &h->auths_cap, h->nauths, sizeof(*h->auths)) < 0)
			return -1;
		a = &h->auths[h->nauths];
		if (name_add(h, id, strnlen(id, 256), &a->id) < 0)
			return -1;
		a->dev = (uint32_t)di;
		a->seq = rec->seq;
		h->nauths++;
	}
	if (strcmp(rec->step, AUDIT_STEP_DONE) == 0 && strcmp(rec->result, "pass") == 0)
		d->state = HISTORY_PASSED;
	else if (d->state == HISTORY_PASSED)
		; /* a later refusal (a clone, a locked SE again) does not undo a pass */
	else if (strcmp(rec->result, AUDIT_RESULT_FAIL) == 0)
		d->state = HISTORY_FAILED;
	else
		d->state = HISTORY_SEEN;
	return 0;
}

int
history_apply(history *h, const audit_record *rec, unsigned batch)
{
	int rc;

	pthread_mutex_lock(&h->lock);
	rc = apply_locked(h, rec, batch);
	pthread_mutex_unlock(&h->lock);
	return rc;
}

static int
on_record(const audit_record *rec, void *ctx)
{
	return history_apply(ctx, rec, audit_batch_number(rec->batch)) < 0 ? 2 : 0;
}

int
history_load(history *h, const char *dir, st_err *err)
{
	int rc = audit_scan(dir, on_record, h, err);

	if (rc > 0)
		return st_err_set(err, ST_E_NOMEM, "out of memory reading the journal %s", dir);
	return rc;
}

static void
serial_hex(const uint8_t *sn, uint8_t len, char out[ST_CERT_SERIAL_HEX_LEN + 1])
{
	st_hex(sn, len, out);
	for (; *out; out++)
		*out = (char)toupper((unsigned char)*out);
}

static void
cert_copy(const history *h, const struct hcert *c, history_cert *out)
{
	memset(out, 0, sizeof(*out));
	serial_hex(c->serial, c->serial_len, out->serial);
	snprintf(out->device, sizeof(out->device), "%s", dev_name(h, &h->devs[c->dev]));
	out->issued = (c->flags & HC_ISSUED) != 0;
	out->installed = (c->flags & HC_INSTALLED) != 0;
	out->unissued = (c->flags & HC_UNISSUED) != 0;
	out->revoked = (c->flags & HC_REVOKED) != 0;
	out->revoked_at = (time_t)c->revoked_at;
	snprintf(out->reason, sizeof(out->reason), "%s", h->reasons[c->reason]);
	out->has_pubkey = (c->flags & HC_PUBKEY) != 0;
	memcpy(out->pubkey_sha256, c->pubkey, 32);
	if (c->issuer)
		snprintf(out->issuer_key_id, sizeof(out->issuer_key_id), "%s", h->issuers[c->issuer - 1]);
	out->retired = (c->flags & HC_RETIRED) != 0;
}

const char *
history_cert_status(const history_cert *c)
{
	if (c->unissued)
		return "unissued";
	if (c->revoked)
		return c->retired ? "superseded-by-rework" : "revoked";
	if (!c->issued)
		return "announced";
	return c->installed ? "live" : "issued";
}

/* ---- one SE's records, for `station device` ---- */

struct events {
	history *h;
	int (*cb)(const history_event *e, void *ctx);
	void *ctx;
	int oom;
};

/* The details worth words, in the order they are told; label NULL: the
 * value alone.  A rework writes its context (why, who, under which
 * authorization, the certificates) on each of its records: told once, on
 * the record where it happens (step; NULL: rework-start). */
static const struct {
	const char *name, *label, *rework_step;
} told[] = {
	{ "error", NULL, "" }, { "reason", "reason", STEP_REVOKE }, { "why", NULL, "" }, { "model", "model", "" },
	{ "firmware", "firmware", "" }, { "lifecycle", "lifecycle", "" }, { "receipt", "lock receipt", "" },
	{ "revoked_by", "revoked by", "" }, { "authorized_by", "authorized by", NULL },
	{ "authorization", "authorization", NULL }, { "note", "note", NULL },
	{ "old_cert_serial", "old certificate", STEP_RETIRE }, { "new_cert_serial", "new certificate", STEP_DONE },
};

static void
what_add(char *buf, size_t cap, const char *label, const char *value)
{
	size_t n = strlen(buf);

	snprintf(buf + n, cap - n, "%s%s%s%s", n ? "; " : "", label ? label : "", label ? " " : "", value);
}

static int
on_device_record(const audit_record *rec, void *ctx)
{
	struct events *x = ctx;
	history_event e;
	size_t i;

	if (history_apply(x->h, rec, audit_batch_number(rec->batch)) < 0) {
		x->oom = 1;
		return 1;
	}
	memset(&e, 0, sizeof(e));
	e.seq = rec->seq;
	e.batch = rec->batch ? rec->batch : "";
	e.time = rec->time ? rec->time : "";
	e.jig = rec->jig ? rec->jig : "";
	e.operator_name = rec->operator_name ? rec->operator_name : "";
	e.step = rec->step;
	e.result = rec->result;
	e.details = rec->details;
	if (detail(rec, "cert_serial"))
		revlist_canon(detail(rec, "cert_serial"), e.cert_serial);
	e.rework = json_is_true(json_object_get(rec->details, "rework"));
	for (i = 0; i < sizeof(told) / sizeof(told[0]); i++) {
		const char *v = detail(rec, told[i].name), *only = told[i].rework_step;
		char canon[ST_CERT_SERIAL_HEX_LEN + 1];

		if (!v || !*v)
			continue;
		if (e.rework && strcmp(rec->step, STEP_REWORK_START) != 0 && (!only || (*only && strcmp(rec->step, only))))
			continue; /* the rework's context, told where it happens */
		if (strstr(told[i].name, "cert_serial")) {
			revlist_canon(v, canon);
			v = canon;
		}
		what_add(e.what, sizeof(e.what), told[i].label, v);
	}
	if (json_is_true(json_object_get(rec->details, "unissued")))
		what_add(e.what, sizeof(e.what), NULL, "never issued: no certificate with this serial left the station");
	if (json_is_true(json_object_get(rec->details, "resumed")))
		what_add(e.what, sizeof(e.what), NULL, "resumed: took up the certificate issued before");
	e.advice = detail(rec, "advice") ? detail(rec, "advice") : "";
	return x->cb(&e, x->ctx);
}

int
history_load_device(history *h, const char *dir, const char *serial, int (*cb)(const history_event *e, void *ctx),
    void *ctx, st_err *err)
{
	struct events x = { h, cb, ctx, 0 };
	int rc = audit_find_device(dir, serial, on_device_record, &x, err);

	if (x.oom)
		return st_err_set(err, ST_E_NOMEM, "out of memory reading the journal %s", dir);
	return rc;
}

static void
dev_copy(const history *h, const struct hdev *d, history_device *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->serial, sizeof(out->serial), "%s", dev_name(h, d));
	out->state = (history_state)d->state;
	if (d->live) {
		const struct hcert *c = &h->certs[d->live - 1];

		out->has_cert = 1;
		serial_hex(c->serial, c->serial_len, out->cert_serial);
		memcpy(out->pubkey_sha256, c->pubkey, 32);
		out->cert_installed = (c->flags & HC_INSTALLED) != 0;
	}
	out->retiring = d->retiring;
	if (d->retired)
		serial_hex(h->certs[d->retired - 1].serial, h->certs[d->retired - 1].serial_len, out->retired_serial);
	out->issued = d->issued;
	out->revoked = d->revoked;
}

int
history_device_get(history *h, const char *serial, history_device *out)
{
	struct hdev *d;

	pthread_mutex_lock(&h->lock);
	if ((d = dev_find(h, serial)))
		dev_copy(h, d, out);
	pthread_mutex_unlock(&h->lock);
	return d ? 0 : -1;
}

int
history_cert_get(history *h, const char *serial, history_cert *out)
{
	struct hcert *c = NULL;
	uint8_t sn[20], len;

	pthread_mutex_lock(&h->lock);
	if (serial_bytes(serial, sn, &len) == 0 && (c = cert_find(h, sn, len)))
		cert_copy(h, c, out);
	pthread_mutex_unlock(&h->lock);
	return c ? 0 : -1;
}

int
history_key_owner(history *h, const uint8_t pubkey_sha256[32], char owner[JIG_STR_MAX + 1])
{
	struct hcert *c;

	pthread_mutex_lock(&h->lock);
	if ((c = key_find(h, pubkey_sha256)))
		snprintf(owner, JIG_STR_MAX + 1, "%s", dev_name(h, &h->devs[c->dev]));
	pthread_mutex_unlock(&h->lock);
	return c ? 0 : -1;
}

int
history_foreach_cert(history *h, int (*cb)(const history_cert *c, void *ctx), void *ctx)
{
	history_cert c;
	size_t i;
	int rc = 0;

	pthread_mutex_lock(&h->lock);
	for (i = 0; i < h->ncerts && rc == 0; i++) {
		cert_copy(h, &h->certs[i], &c);
		rc = cb(&c, ctx);
	}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

int
history_foreach_device_cert(history *h, const char *serial, int (*cb)(const history_cert *c, void *ctx), void *ctx)
{
	history_cert c;
	struct hdev *d;
	uint32_t i;
	int rc = 0;

	pthread_mutex_lock(&h->lock);
	if ((d = dev_find(h, serial)))
		for (i = d->first; i && rc == 0; i = h->certs[i - 1].next) {
			cert_copy(h, &h->certs[i - 1], &c);
			rc = cb(&c, ctx);
		}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

int
history_foreach_device(history *h, int (*cb)(const history_device *d, void *ctx), void *ctx)
{
	history_device d;
	size_t i;
	int rc = 0;

	pthread_mutex_lock(&h->lock);
	for (i = 0; i < h->ndevs && rc == 0; i++) {
		dev_copy(h, &h->devs[i], &d);
		rc = cb(&d, ctx);
	}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

/* The counters, read together under the lock. */
struct totals {
	size_t devs, certs;
	unsigned issuing, batch, batch_issued;
};

static struct totals
totals(history *h)
{
	struct totals t;

	pthread_mutex_lock(&h->lock);
	t = (struct totals){ h->ndevs, h->ncerts, h->issuing, h->cur_batch, h->cur_batch_issued };
	pthread_mutex_unlock(&h->lock);
	return t;
}

size_t
history_device_count(history *h)
{
	return totals(h).devs;
}

size_t
history_cert_count(history *h)
{
	return totals(h).certs;
}

uint64_t
history_last_crl_number(history *h, const char *issuer_key_id)
{
	uint64_t n;
	unsigned i;

	pthread_mutex_lock(&h->lock);
	n = h->last_crl;
	if (issuer_key_id) {
		n = h->legacy_crl;
		for (i = 0; i < h->nissuers; i++)
			if (strcmp(h->issuers[i], issuer_key_id) == 0 && h->issuer_crl[i] > n)
				n = h->issuer_crl[i];
	}
	pthread_mutex_unlock(&h->lock);
	return n;
}

void
history_anomaly(history *h, unsigned within, unsigned *failures, unsigned *streak, char *error, size_t cap)
{
	unsigned i, n;

	pthread_mutex_lock(&h->lock);
	n = within < h->n_outcomes ? within : h->n_outcomes;
	for (*failures = 0, i = 1; i <= n; i++)
		*failures += h->outcomes[(h->next_outcome + HALT_WINDOW - i) % HALT_WINDOW];
	*streak = h->posture_streak;
	snprintf(error, cap, "%s", h->posture_error);
	pthread_mutex_unlock(&h->lock);
}

uint64_t
history_halt_pending(history *h, char id[33], char *reason, size_t cap)
{
	uint64_t seq;

	pthread_mutex_lock(&h->lock);
	seq = h->halt_seq;
	snprintf(id, 33, "%s", h->halt_id);
	snprintf(reason, cap, "%s", h->halt_reason);
	pthread_mutex_unlock(&h->lock);
	return seq;
}

uint64_t
history_audit_key(history *h, char sha256[ST_SHA256_HEX_LEN + 1])
{
	uint64_t seq;

	pthread_mutex_lock(&h->lock);
	seq = h->audit_key_seq;
	snprintf(sha256, 65, "%s", h->audit_key);
	pthread_mutex_unlock(&h->lock);
	return seq;
}

uint64_t
history_authorization_used(history *h, const char *serial, const char *authorization)
{
	struct hdev *d;
	uint64_t seq = 0;
	size_t i;

	pthread_mutex_lock(&h->lock);
	if ((d = dev_find(h, serial)))
		for (i = 0; i < h->nauths; i++)
			if (h->auths[i].dev == (uint32_t)(d - h->devs) && strcmp(h->names + h->auths[i].id, authorization) == 0)
				seq = h->auths[i].seq;
	pthread_mutex_unlock(&h->lock);
	return seq;
}

int
history_foreach_release(history *h, int (*cb)(const history_release *r, void *ctx), void *ctx)
{
	history_release r;
	size_t i;
	int rc = 0;

	pthread_mutex_lock(&h->lock);
	for (i = 0; i < h->nreleases && rc == 0; i++) {
		json_t *o = h->releases[i].rec;

		r.number = (unsigned)i + 1;
		r.time = json_string_value(json_object_get(o, "time"));
		r.station = json_string_value(json_object_get(o, "station"));
		r.details = json_object_get(o, "details");
		r.issuing_after = h->issuing - h->releases[i].issuing_before;
		rc = cb(&r, ctx);
	}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

unsigned
history_issuing_count(history *h)
{
	return totals(h).issuing;
}

unsigned
history_issued_in_batch(history *h, unsigned batch)
{
	struct totals t = totals(h);

	return t.batch == batch ? t.batch_issued : 0;
}

struct der_find {
	uint64_t seq;
	const char *serial;
	uint8_t *der;
	size_t len;
	char why[200];
};

static int
on_issued(const audit_record *rec, void *ctx)
{
	struct der_find *f = ctx;
	const char *b64 = detail(rec, "cert"), *want = detail(rec, "cert_sha256");
	char have[ST_SHA256_HEX_LEN + 1], canon[ST_CERT_SERIAL_HEX_LEN + 1];

	if (rec->seq != f->seq)
		return 0;
	revlist_canon(detail(rec, "cert_serial") ? detail(rec, "cert_serial") : "", canon);
	if (strcmp(rec->step, "issued") != 0 || strcmp(canon, f->serial) != 0 || !b64) {
		snprintf(f->why, sizeof(f->why), "seq %llu is not the \"issued\" record of certificate %s",
		    (unsigned long long)rec->seq, f->serial);
		return 1;
	}
	if (st_b64_decode(b64, &f->der, &f->len) < 0) {
		snprintf(f->why, sizeof(f->why), "seq %llu: the certificate is not base64", (unsigned long long)rec->seq);
		return 1;
	}
	st_sha256_hex(f->der, f->len, have);
	if (want && strcmp(want, have) != 0) {
		snprintf(f->why, sizeof(f->why), "seq %llu: the certificate does not hash to its cert_sha256",
		    (unsigned long long)rec->seq);
		free(f->der);
		f->der = NULL;
		return 1;
	}
	return 1;
}

int
history_cert_der(history *h, const char *dir, const char *serial, uint8_t **der, size_t *len, st_err *err)
{
	struct der_find f;
	struct hcert *c;
	uint8_t sn[20], slen;
	unsigned batch = 0, b;
	char canon[ST_CERT_SERIAL_HEX_LEN + 1];
	int rc;

	*der = NULL;
	memset(&f, 0, sizeof(f));
	revlist_canon(serial, canon);
	f.serial = canon;
	pthread_mutex_lock(&h->lock);
	if (serial_bytes(serial, sn, &slen) == 0 && (c = cert_find(h, sn, slen)) && (c->flags & HC_ISSUED)) {
		f.seq = c->seq;
		batch = c->batch;
	}
	pthread_mutex_unlock(&h->lock);
	if (!batch)
		return st_err_set(err, ST_E_STATE, "the journal holds no issued certificate %s", canon);
	/* An appended record is in the batch noted after the append or, when
	 * another record closed that batch meanwhile, the one before. */
	for (b = batch, rc = 0; b >= 1 && b + 1 >= batch && !rc; b--)
		if ((rc = audit_scan_batch(dir, b, on_issued, &f, err)) < 0 && b + 1 == batch)
			return st_err_prefix(err, "reading certificate %s back", canon);
	if (!f.der)
		return st_err_set(err, ST_E_VERIFY, "journal %s: certificate %s: %s", dir, canon,
		    f.why[0] ? f.why : "its \"issued\" record is not where the journal had it");
	*der = f.der;
	*len = f.len;
	return 0;
}
