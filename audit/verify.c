/* Verification of a live journal folder or an export bundle: records,
 * chain and sequence, batch numbering and closing, seals, manifest. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audit-int.h"
#include "cms.h"

#define MAX_LINES 64 /* problems or notes kept in a report */

/* What verify learned about one batch, for the manifest comparison. */
struct batch_info {
	unsigned num;
	char sha256[ST_SHA256_HEX_LEN + 1], seal_sha256[ST_SHA256_HEX_LEN + 1];
	int have_seal;
	int walked; /* the records were checked: the ranges below are known */
	uint64_t first_seq, last_seq;
	unsigned records;
};

/* What a batch's records say about its seal, and the audit key that is
 * to seal it (the previous batch's, unless that one announced another). */
struct seal_facts {
	time_t last_time;      /* the time of the batch's last record (0: none) */
	X509 *announced;       /* the certificate its last "audit-key" record names, or NULL */
	uint64_t announced_seq;
	char bad[160];         /* an "audit-key" record that names no certificate */
	X509 *expected;        /* who must seal this batch (NULL: any audit seal key, the first batch) */
	audit_record_cb cb;    /* audit_verify_each's reader, and its ctx */
	void *ctx;
};

static int ST_PRINTF(3, 4)
add_line(char ***arr, size_t *n, const char *fmt, ...)
{
	char *s = NULL, **na;
	va_list ap;
	int rc;

	if (*n >= MAX_LINES)
		return 0;
	va_start(ap, fmt);
	rc = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return -1;
	if (!(na = realloc(*arr, (*n + 1) * sizeof(*na)))) {
		free(s);
		return -1;
	}
	*arr = na;
	na[(*n)++] = s;
	return 0;
}

#define PROBLEM(r, ...) add_line(&(r)->problems, &(r)->n_problems, __VA_ARGS__)
#define NOTE(r, ...) add_line(&(r)->notes, &(r)->n_notes, __VA_ARGS__)

/* The first broken record is reported once, first. */
static void
broken(audit_report *r, const char *msg)
{
	if (r->first_broken)
		return;
	r->first_broken = strdup(msg);
	PROBLEM(r, "%s", msg);
}

void
audit_report_free(audit_report *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->n_problems; i++)
		free(r->problems[i]);
	for (i = 0; i < r->n_notes; i++)
		free(r->notes[i]);
	free(r->problems);
	free(r->notes);
	free(r->first_broken);
	free(r);
}

/* The report to the caller who asked for one, else freed. */
static void
report_give(audit_report *r, audit_report **report)
{
	if (report)
		*report = r;
	else
		audit_report_free(r);
}

/* The seq of the first line of buf, or 0. */
static uint64_t
first_seq_of(const uint8_t *buf, size_t len)
{
	const uint8_t *nl = memchr(buf, '\n', len < AUDIT_RECORD_MAX ? len : AUDIT_RECORD_MAX);
	struct audit_parsed ps;
	audit_record rec;
	char why[128];
	uint64_t seq = 0;

	memset(&ps, 0, sizeof(ps));
	if (nl && audit_record_parse((const char *)buf, (size_t)(nl - buf), &ps, &rec, why, sizeof(why)) == 0)
		seq = rec.seq;
	audit_parsed_clear(&ps);
	return seq;
}

static int
plain_name(const char *s)
{
	return *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static int
file_sha256(const char *dir, const char *name, char out[ST_SHA256_HEX_LEN + 1])
{
	char *path = audit_path(dir, name);
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = -1;

	if (path && st_file_read(path, AUDIT_BATCH_FILE_MAX, &buf, &len, NULL) == 0) {
		st_sha256_hex(buf, len, out);
		rc = 0;
	}
	free(buf);
	free(path);
	return rc;
}

static int
json_seq_eq(json_t *v, uint64_t want)
{
	return json_is_integer(v) && json_integer_value(v) >= 0 && (uint64_t)json_integer_value(v) == want;
}

/* The manifest's seal: without it, a bundle cut after any batch (and its
 * manifest edited to match) would look complete. */
static void
check_manifest_seal(const char *path, const uint8_t *buf, size_t len, X509_STORE *trust, time_t created,
    audit_report *r)
{
	char *spath = audit_path(path, AUDIT_MANIFEST_SEAL);
	uint8_t *der = NULL;
	size_t der_len = 0;
	X509 *signer = NULL;
	st_err err;

	if (!spath || st_file_read(spath, 16u << 20, &der, &der_len, &err) < 0) {
		if (spath && err.code == ST_E_NOTFOUND)
			PROBLEM(r, "%s: not sealed (%s is missing): batches may have been removed from the bundle",
			    AUDIT_MANIFEST, AUDIT_MANIFEST_SEAL);
		else
			PROBLEM(r, "%s: cannot read: %s", AUDIT_MANIFEST_SEAL, spath ? err.msg : "out of memory");
		goto out;
	}
	if (trust && st_cms_verify_at(buf, len, der, der_len, trust, created, NULL, &signer, &err) < 0)
		PROBLEM(r, "%s: does not verify over %s (the manifest was edited, or the seal is not ours): %s",
		    AUDIT_MANIFEST_SEAL, AUDIT_MANIFEST, err.msg);
	else if (trust && st_x509_check_role(signer, ST_ROLE_AUDIT_SEAL, &err) < 0)
		PROBLEM(r, "%s: sealed by a key without the audit seal role: %s", AUDIT_MANIFEST_SEAL, err.msg);
out:
	X509_free(signer);
	free(der);
	free(spath);
}

static void
check_manifest(const char *path, X509_STORE *trust, audit_report *r, const struct batch_info *bi, size_t nb)
{
	char *mpath = audit_path(path, AUDIT_MANIFEST);
	uint8_t *buf = NULL, *nul;
	size_t len = 0, i, k;
	json_t *m = NULL, *batches, *files, *e;
	json_error_t jerr;
	st_err err;
	char *listed = NULL;
	time_t created;

	if (!mpath || st_file_read(mpath, 16u << 20, &buf, &len, &err) < 0) {
		PROBLEM(r, "%s: cannot read: %s", AUDIT_MANIFEST, mpath ? err.msg : "out of memory");
		goto out;
	}
	m = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
	/* Sealed when it was made, no earlier than its own "created" time. */
	if (!json_is_string(json_object_get(m, "created")) ||
	    st_time_parse(json_string_value(json_object_get(m, "created")), &created) < 0)
		created = 0;
	check_manifest_seal(path, buf, len, trust, created, r);
	/* jansson passes a NUL byte after a number or a literal; JSON has none. */
	if ((nul = memchr(buf, '\0', len))) {
		PROBLEM(r, "%s: a NUL byte at offset %zu", AUDIT_MANIFEST, (size_t)(nul - buf));
		goto out;
	}
	if (!m || !json_is_object(m)) {
		PROBLEM(r, "%s:%d: not a JSON object%s%s", AUDIT_MANIFEST, m ? 1 : jerr.line, m ? "" : ": ", m ? "" : jerr.text);
		goto out;
	}
	if (!json_is_string(json_object_get(m, "format")) ||
	    strcmp(json_string_value(json_object_get(m, "format")), AUDIT_BUNDLE_FORMAT) != 0 ||
	    !json_is_integer(json_object_get(m, "version")) || json_integer_value(json_object_get(m, "version")) != 1) {
		PROBLEM(r, "%s: not a version 1 \"%s\" manifest", AUDIT_MANIFEST, AUDIT_BUNDLE_FORMAT);
		goto out;
	}
	batches = json_object_get(m, "batches");
	files = json_object_get(m, "files");
	if (!json_is_array(batches) || !json_is_array(files)) {
		PROBLEM(r, "%s: \"batches\" and \"files\" must be arrays", AUDIT_MANIFEST);
		goto out;
	}
	if (!(listed = calloc(nb + 1, 1)))
		goto out;
	json_array_foreach(batches, i, e) {
		const char *file = json_string_value(json_object_get(e, "file"));
		const char *sha = json_string_value(json_object_get(e, "sha256"));
		const char *seal = json_string_value(json_object_get(e, "seal"));
		const char *seal_sha = json_string_value(json_object_get(e, "seal_sha256"));
		unsigned num = file ? audit_batch_number(file) : 0;
		char want_seal[AUDIT_NAME_MAX + 8];

		if (!num || !sha || !seal || !seal_sha) {
			PROBLEM(r, "%s: batches[%zu]: needs file (a batch name), sha256, seal and seal_sha256", AUDIT_MANIFEST, i);
			continue;
		}
		for (k = 0; k < nb && bi[k].num != num; k++)
			;
		if (k == nb) {
			PROBLEM(r, "%s: %s is listed but missing", AUDIT_MANIFEST, file);
			continue;
		}
		listed[k] = 1;
		if (strcmp(sha, bi[k].sha256) != 0)
			PROBLEM(r, "%s: %s: SHA-256 does not match the file", AUDIT_MANIFEST, file);
		snprintf(want_seal, sizeof(want_seal), "%s.p7s", file);
		if (strcmp(seal, want_seal) != 0)
			PROBLEM(r, "%s: %s: seal must be %s", AUDIT_MANIFEST, file, want_seal);
		else if (!bi[k].have_seal || strcmp(seal_sha, bi[k].seal_sha256) != 0)
			PROBLEM(r, "%s: %s: SHA-256 does not match the file", AUDIT_MANIFEST, seal);
		if (bi[k].walked && (!json_seq_eq(json_object_get(e, "first_seq"), bi[k].first_seq) ||
		                        !json_seq_eq(json_object_get(e, "last_seq"), bi[k].last_seq) ||
		                        !json_seq_eq(json_object_get(e, "records"), bi[k].records)))
			PROBLEM(r, "%s: %s: record range does not match the file (seq %" PRIu64 "..%" PRIu64 ", %u records)",
			    AUDIT_MANIFEST, file, bi[k].first_seq, bi[k].last_seq, bi[k].records);
	}
	for (k = 0; k < nb; k++) {
		if (!listed[k]) {
			char name[AUDIT_NAME_MAX];

			audit_batch_name(bi[k].num, name);
			PROBLEM(r, "%s: does not list %s", AUDIT_MANIFEST, name);
		}
	}
	json_array_foreach(files, i, e) {
		const char *name = json_string_value(json_object_get(e, "name"));
		const char *sha = json_string_value(json_object_get(e, "sha256"));
		char have[ST_SHA256_HEX_LEN + 1];

		if (!name || !sha || !plain_name(name)) {
			PROBLEM(r, "%s: files[%zu]: needs a plain file name and sha256", AUDIT_MANIFEST, i);
			continue;
		}
		if (file_sha256(path, name, have) < 0)
			PROBLEM(r, "%s: %s is listed but missing", AUDIT_MANIFEST, name);
		else if (strcmp(have, sha) != 0)
			PROBLEM(r, "%s: %s: SHA-256 does not match the file", AUDIT_MANIFEST, name);
	}
out:
	free(listed);
	json_decref(m);
	free(buf);
	free(mpath);
}

static int
on_seal_fact(const audit_record *rec, void *ctx)
{
	struct seal_facts *f = ctx;
	json_t *b64 = json_object_get(rec->details, "cert");
	const unsigned char *p;
	uint8_t *der = NULL;
	size_t len = 0;
	X509 *x = NULL;
	time_t t;

	if (st_time_parse(rec->time, &t) == 0)
		f->last_time = t;
	if (strcmp(rec->step, AUDIT_STEP_AUDIT_KEY) != 0 || rec->device)
		return f->cb ? f->cb(rec, f->ctx) : 0;
	if (!json_is_string(b64) || st_b64_decode(json_string_value(b64), &der, &len) < 0 || len > LONG_MAX ||
	    !(p = der, x = d2i_X509(NULL, &p, (long)len)) || p != der + len) {
		snprintf(f->bad, sizeof(f->bad), "%s:%u: seq %" PRIu64 ": the audit-key record's cert is not a base64 DER "
		    "certificate", rec->batch, rec->line, rec->seq);
		X509_free(x);
		x = NULL;
	}
	free(der);
	X509_free(f->announced);
	f->announced = x;
	f->announced_seq = rec->seq;
	return f->cb ? f->cb(rec, f->ctx) : 0;
}

/* After a batch's seal: who seals the next one. */
static void
seal_facts_next(struct seal_facts *f, X509 *signer, const char *name, audit_report *r)
{
	char subject[256];

	if (f->bad[0])
		PROBLEM(r, "%s", f->bad);
	if (!f->expected && signer)
		f->expected = X509_dup(signer);
	if (f->announced) {
		st_x509_subject(f->announced, subject, sizeof(subject));
		NOTE(r, "%s: seq %" PRIu64 " hands the audit seal to %s: the batches after it must be sealed by it", name,
		    f->announced_seq, subject);
		r->rollovers++;
		X509_free(f->expected);
		f->expected = f->announced;
		f->announced = NULL;
	}
	f->bad[0] = '\0';
	f->last_time = 0;
}

static void
check_seal(const char *path, const char *name, const uint8_t *buf, size_t len, X509_STORE *trust, audit_report *r,
    struct batch_info *b, int closed, int last, struct seal_facts *f)
{
	char seal[AUDIT_NAME_MAX + 8], *spath = NULL;
	uint8_t *der = NULL;
	size_t der_len = 0;
	X509 *signer = NULL;
	st_err err;

	snprintf(seal, sizeof(seal), "%s.p7s", name);
	if (!(spath = audit_path(path, seal)))
		return;
	if (st_file_read(spath, 16u << 20, &der, &der_len, &err) < 0) {
		if (err.code != ST_E_NOTFOUND)
			PROBLEM(r, "%s: cannot read: %s", seal, err.msg);
		else if (r->bundle)
			PROBLEM(r, "%s: no seal (%s is missing)", name, seal);
		else if (closed)
			NOTE(r, "%s: closed but not sealed yet: run 'station audit seal'", name);
		else if (!last)
			PROBLEM(r, "%s: no seal", name);
		goto out;
	}
	b->have_seal = 1;
	if (r->bundle)
		st_sha256_hex(der, der_len, b->seal_sha256);
	if (!trust)
		goto out;
	/* At the time it was made, which is no earlier than its last record:
	 * a seal stays good after its certificate expires. */
	if (st_cms_verify_at(buf, len, der, der_len, trust, f->last_time, NULL, &signer, &err) < 0) {
		PROBLEM(r, "%s: seal does not verify: %s", seal, err.msg);
		goto out;
	}
	if (st_x509_check_role(signer, ST_ROLE_AUDIT_SEAL, &err) < 0) {
		PROBLEM(r, "%s: sealed by a key without the audit seal role: %s", seal, err.msg);
		goto out;
	}
	if (f->expected && X509_cmp(signer, f->expected) != 0) {
		char got[256], want[256];

		st_x509_subject(signer, got, sizeof(got));
		st_x509_subject(f->expected, want, sizeof(want));
		PROBLEM(r, "%s: sealed by %s, but the journal's audit key is %s: a new audit key must be announced by an "
		    "audit-key record sealed by the old one (station audit rollover)", seal, got, want);
		goto out;
	}
	st_x509_subject(signer, r->signer, sizeof(r->signer));
	r->sealed++;
out:
	seal_facts_next(f, signer, name, r);
	X509_free(signer);
	free(der);
	free(spath);
}

int
audit_verify(const char *path, X509_STORE *trust, audit_report **report, st_err *err)
{
	return audit_verify_each(path, trust, NULL, NULL, report, err);
}

int
audit_verify_each(const char *path, X509_STORE *trust, audit_record_cb cb, void *ctx, audit_report **report,
    st_err *err)
{
	audit_report *r = NULL;
	unsigned *nums = NULL;
	size_t n = 0, i;
	struct batch_info *bi = NULL;
	struct audit_chain c;
	struct seal_facts facts;
	struct stat st;
	char *mpath = NULL;
	int chain_ok = 1, ret = -1;

	memset(&facts, 0, sizeof(facts));
	facts.cb = cb;
	facts.ctx = ctx;
	if (report)
		*report = NULL;
	if (!(r = calloc(1, sizeof(*r))))
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	if (stat(path, &st) < 0) {
		st_err_errno(err, errno == ENOENT ? ST_E_NOTFOUND : ST_E_IO, errno, "%s", path);
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		st_err_set(err, ST_E_CONFIG, "%s: not a folder (give a journal folder or an export bundle)", path);
		goto out;
	}
	if (!(mpath = audit_path(path, AUDIT_MANIFEST))) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto out;
	}
	r->bundle = stat(mpath, &st) == 0;
	if (audit_batch_list(path, &nums, &n, err) < 0)
		goto out;
	if (n && !(bi = calloc(n, sizeof(*bi)))) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto out;
	}
	r->batches = (unsigned)n;
	if (n == 0 && r->bundle)
		PROBLEM(r, "%s: no batch files (batch-000001.jsonl, ...)", path);
	else if (n == 0)
		NOTE(r, "%s: no batch files: the journal has no record yet", path);
	if (!trust)
		NOTE(r, "seals not checked: no trusted root given");
	audit_chain_start(&c);
	for (i = 0; i < n; i++) {
		char name[AUDIT_NAME_MAX], msg[AUDIT_NAME_MAX * 3], *bpath = NULL;
		uint8_t *buf = NULL;
		size_t len = 0;
		struct audit_walk w;
		int last = i + 1 == n;
		st_err rerr;

		memset(&w, 0, sizeof(w));
		bi[i].num = nums[i];
		audit_batch_name(nums[i], name);
		if (!(bpath = audit_path(path, name)) || st_file_read(bpath, AUDIT_BATCH_FILE_MAX, &buf, &len, &rerr) < 0) {
			PROBLEM(r, "%s: cannot read: %s", name, bpath ? rerr.msg : "out of memory");
			free(bpath);
			chain_ok = 0;
			continue;
		}
		free(bpath);
		if (r->bundle) /* for the manifest only */
			st_sha256_hex(buf, len, bi[i].sha256);
		if (nums[i] != (i ? nums[i - 1] + 1 : 1u) && chain_ok) {
			char missing[AUDIT_NAME_MAX];

			audit_batch_name(i ? nums[i - 1] + 1 : 1u, missing);
			snprintf(msg, sizeof(msg), "%s:1: seq %" PRIu64 ": %s is missing (batch numbers jump from %u to %u)", name,
			    first_seq_of(buf, len), missing, i ? nums[i - 1] : 0u, nums[i]);
			broken(r, msg);
			chain_ok = 0;
		}
		if (chain_ok) {
			if ((ret = audit_walk_batch(name, buf, len, &c, &w, on_seal_fact, &facts)) != 0) {
				audit_walk_clear(&w);
				free(buf);
				goto out;
			}
			ret = -1;
			if (w.bad) {
				broken(r, w.msg);
				chain_ok = 0;
			} else {
				bi[i].walked = 1;
				bi[i].first_seq = w.first_seq;
				bi[i].last_seq = w.last_seq;
				bi[i].records = w.records;
				if (!r->records)
					r->first_seq = w.first_seq;
				if (w.records)
					r->last_seq = w.last_seq;
				r->records += w.records;
				if (!w.closed && (r->bundle || !last)) {
					if (w.records)
						snprintf(msg, sizeof(msg),
						    "%s:%u: seq %" PRIu64 ": batch ends without its batch-close record (truncated?)", name,
						    w.records, w.last_seq);
					else
						snprintf(msg, sizeof(msg), "%s: empty batch", name);
					broken(r, msg);
					chain_ok = 0;
				} else if (!w.closed) {
					NOTE(r, "%s: open batch (%u records), not sealed yet", name, w.records);
				}
			}
		}
		check_seal(path, name, buf, len, trust, r, &bi[i], w.closed, last, &facts);
		audit_walk_clear(&w);
		free(buf);
	}
	if (r->bundle)
		check_manifest(path, trust, r, bi, n);
	if (r->n_problems) {
		st_err_set(err, ST_E_VERIFY, "%s: %s", path, r->first_broken ? r->first_broken : r->problems[0]);
		goto out;
	}
	ret = 0;
out:
	report_give(r, report);
	X509_free(facts.expected);
	X509_free(facts.announced);
	free(bi);
	free(nums);
	free(mpath);
	return ret;
}

int
audit_verify_buffer(const char *name, const void *buf, size_t len, audit_report **report, st_err *err)
{
	audit_report *r = NULL;
	struct audit_chain c;
	struct audit_walk w;
	int ret = -1;

	if (report)
		*report = NULL;
	if (!(r = calloc(1, sizeof(*r))))
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	memset(&c, 0, sizeof(c)); /* not anchored: the first record is taken as given */
	audit_walk_batch(name, buf, len, &c, &w, NULL, NULL);
	r->batches = 1;
	r->records = w.records;
	r->first_seq = w.first_seq;
	r->last_seq = w.last_seq;
	if (w.bad)
		broken(r, w.msg);
	else if (!w.closed)
		NOTE(r, "%s: no batch-close record: an open batch", name);
	audit_walk_clear(&w);
	if (r->first_broken) {
		st_err_set(err, ST_E_VERIFY, "%s", r->first_broken);
		goto out;
	}
	ret = 0;
out:
	report_give(r, report);
	return ret;
}
