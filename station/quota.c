/* The shift quota (DESIGN.md invariant 8, issue 13 item 9): the recipe's
 * quota.max_per_shift caps the certificates the intermediate signs between
 * two releases, counted over the whole journal, so no restart, crash or new
 * run resets it.  When it is used up, issuance stops until someone whose
 * certificate the recipe lists in quota.release_signers signs a release
 * with a key in an HSM (`station quota release`), a certificate with the
 * authorization role.  A release is a journal
 * record carrying that signature over a domain-tagged statement naming the
 * station and the shift it opens; the station verifies it again every time
 * it reads the journal, and takes no record's word for it.  The journal's
 * releases and "issuing" records come from the history (history.h), the one
 * reader of the journal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cms.h"
#include "hsm.h"
#include "recipe.h"
#include "station.h"
#include "step.h"
#include "verify.h"

#define RELEASE_TAG "station-quota-release-v1"

/* The bytes a release signs: tag, station id, the release's number (release
 * k opens shift k + 1) and reason, each ended by a NUL byte.  malloc'd. */
static uint8_t *
statement(const char *station_id, unsigned shift, const char *reason, size_t *len)
{
	char num[16];
	size_t a = strlen(RELEASE_TAG) + 1, b = strlen(station_id) + 1, c, d = strlen(reason) + 1;
	uint8_t *m;

	snprintf(num, sizeof(num), "%u", shift);
	c = strlen(num) + 1;
	if (!(m = malloc(a + b + c + d)))
		return NULL;
	memcpy(m, RELEASE_TAG, a);
	memcpy(m + a, station_id, b);
	memcpy(m + a + b, num, c);
	memcpy(m + a + b + c, reason, d);
	*len = a + b + c + d;
	return m;
}

static STACK_OF(X509) *
load_signers(const station *st, st_err *err)
{
	const char *path = st->rcp->quota.release_signers;

	if (!path) {
		st_err_set(err, ST_E_CONFIG, "the recipe names no quota.release_signers: nobody may release the shift "
		                             "quota (name the certificates of those who may, SCHEMA.md)");
		return NULL;
	}
	return st_x509_chain_load(path, err);
}

static X509 *
signer_by_sha256(STACK_OF(X509) *signers, const char *hex)
{
	int i;

	for (i = 0; hex && i < sk_X509_num(signers); i++) {
		X509 *x = sk_X509_value(signers, i);
		unsigned char *der = NULL;
		int n = i2d_X509(x, &der);
		char h[ST_SHA256_HEX_LEN + 1] = "";

		if (n > 0)
			st_sha256_hex(der, (size_t)n, h);
		OPENSSL_free(der);
		if (n > 0 && strcmp(h, hex) == 0)
			return x;
	}
	return NULL;
}

/* Release number `shift` holds when it says so and its signature verifies
 * with a certificate the recipe lists now. */
static int
release_valid(STACK_OF(X509) *signers, const history_release *rel)
{
	json_t *d = rel->details;
	const char *reason = json_string_value(json_object_get(d, "reason")),
		   *sig64 = json_string_value(json_object_get(d, "signature"));
	json_int_t n = json_integer_value(json_object_get(d, "release"));
	X509 *signer = signer_by_sha256(signers, json_string_value(json_object_get(d, "signer_sha256")));
	uint8_t *msg = NULL, *sig = NULL;
	size_t len = 0, sl;
	int siglen, ok = 0;
	st_err err;

	if (!signers || !signer || !reason || !sig64 || !rel->station || !*rel->station ||
	    n != (json_int_t)rel->number || st_x509_check_role(signer, ST_ROLE_AUTHORIZE, &err) < 0 ||
	    !(msg = statement(rel->station, rel->number, reason, &len)))
		goto out;
	sl = strlen(sig64);
	if (!(sig = malloc(sl + 1)) || (siglen = EVP_DecodeBlock(sig, (const unsigned char *)sig64, (int)sl)) <= 0)
		goto out;
	while (sl > 0 && sig64[sl - 1] == '=') { /* EVP_DecodeBlock counts padding as zero bytes */
		siglen--;
		sl--;
	}
	ok = sv_verify_sig(X509_get0_pubkey(signer), msg, len, sig, (size_t)siglen, &err) == 0;
out:
	free(msg);
	free(sig);
	return ok;
}

struct shift_scan {
	STACK_OF(X509) *signers; /* NULL: no release can hold */
	station *st;
};

/* The last release that holds opens the shift; what was issued after it counts. */
static int
on_release(const history_release *rel, void *ctx)
{
	struct shift_scan *s = ctx;
	station *st = s->st;

	st->shift_releases = rel->number;
	if (release_valid(s->signers, rel)) {
		st->shift_no = rel->number;
		st->shift_issued = rel->issuing_after;
		snprintf(st->shift_since, sizeof(st->shift_since), "%s", rel->time);
	}
	return 0;
}

void
station_quota_load(station *st)
{
	struct shift_scan s = { .st = st };
	st_err ignored;

	st->shift_no = 0;
	st->shift_issued = history_issuing_count(st->history);
	st->shift_since[0] = '\0';
	st->shift_releases = 0;
	if (st->rcp->quota.release_signers)
		s.signers = load_signers(st, &ignored);
	history_foreach_release(st->history, on_release, &s);
	sk_X509_pop_free(s.signers, X509_free);
}

static int
shift_used_up(station *st, st_err *err)
{
	return st_err_set(err, ST_E_QUOTA, "shift quota used up: %u certificates issued since %s, the recipe allows %u "
	                                   "(quota.max_per_shift); issuance stays stopped until one of "
	                                   "quota.release_signers signs 'station quota release'", st->shift_issued,
	    st->shift_no ? "the last release" : "the journal began", st->quota_shift);
}

int
station_quota_check(station *st, st_err *err)
{
	int ret = 0;

	pthread_mutex_lock(&st->quota_lock);
	if (st->quota_shift && st->shift_issued >= st->quota_shift)
		ret = shift_used_up(st, err);
	pthread_mutex_unlock(&st->quota_lock);
	return ret;
}

int
station_quota_take(station *st, st_err *err)
{
	int ret = 0;

	pthread_mutex_lock(&st->quota_lock);
	if (st->quota_run && st->issued_run >= st->quota_run)
		ret = st_err_set(err, ST_E_QUOTA, "quota reached: %u certificates issued in this run, the recipe allows %u "
		                                  "(quota.max_per_run)", st->issued_run, st->quota_run);
	else if (st->quota_shift && st->shift_issued >= st->quota_shift)
		ret = shift_used_up(st, err);
	else {
		st->issued_run++;
		st->shift_issued++;
	}
	pthread_mutex_unlock(&st->quota_lock);
	return ret;
}

int
station_quota_release(station *st, hsm_key *key, const char *reason, char *signer_out, size_t signer_len,
    st_err *err)
{
	STACK_OF(X509) *signers = NULL;
	X509 *signer = NULL;
	uint8_t *msg = NULL, *sig = NULL, *der = NULL;
	size_t len = 0, sig_len = 0;
	char *b64 = NULL, h[ST_SHA256_HEX_LEN + 1], subject[512];
	int i, n, ret = -1;
	unsigned shift = st->shift_releases + 1;
	st_err e;

	if (!(signers = load_signers(st, err)))
		return -1;
	/* The key must be the key of a listed certificate (proved by a signature
	 * in the token), not merely hold the token's PIN. */
	for (i = 0; i < sk_X509_num(signers) && !signer; i++)
		if (hsm_key_matches_cert(key, sk_X509_value(signers, i), &e) == 0)
			signer = sk_X509_value(signers, i);
	if (!signer) {
		st_err_set(err, ST_E_VERIFY, "key \"%s\" belongs to none of the certificates in quota.release_signers (%s): "
		                             "it may not release the shift quota", hsm_key_label(key),
		    st->rcp->quota.release_signers);
		goto out;
	}
	/* A release is an authorization (DESIGN.md section 12): the signer
	 * needs that role, whatever the file lists. */
	if (st_x509_check_role(signer, ST_ROLE_AUTHORIZE, err) < 0) {
		st_err_prefix(err, "quota.release_signers");
		goto out;
	}
	st_x509_subject(signer, subject, sizeof(subject));
	if ((n = i2d_X509(signer, &der)) <= 0) {
		st_err_openssl(err, ST_E_CRYPTO, "signer certificate");
		goto out;
	}
	st_sha256_hex(der, (size_t)n, h);
	if (!(msg = statement(st->rcp->audit.station_id, shift, reason, &len))) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto out;
	}
	if (hsm_sign(key, msg, len, &sig, &sig_len, err) < 0) {
		st_err_prefix(err, "HSM: key \"%s\"", hsm_key_label(key));
		goto out;
	}
	if (!(b64 = malloc(4 * ((sig_len + 2) / 3) + 1))) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)b64, sig, (int)sig_len);
	if (station_journal(st, NULL, NULL, STEP_QUOTA_RELEASE, "ok",
	        json_pack("{s:i,s:s,s:s,s:s,s:i,s:i,s:s}", "release", (json_int_t)shift, "reason", reason, "signer",
	            subject, "signer_sha256", h, "issued_in_last_shift", (json_int_t)st->shift_issued, "max_per_shift",
	            (json_int_t)st->quota_shift, "signature", b64),
	        0, err) != 0) {
		st_err_prefix(err, "journal");
		goto out;
	}
	snprintf(signer_out, signer_len, "%s", subject);
	st->shift_no = shift;
	st->shift_releases = shift;
	st->shift_issued = 0;
	ret = 0;
out:
	free(b64);
	free(sig);
	free(msg);
	OPENSSL_free(der);
	sk_X509_pop_free(signers, X509_free);
	return ret;
}
