#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#include <openssl/x509.h>

#include "cms.h"
#include "engine-int.h"
#include "recipe.h"
#include "rework.h"
#include "step.h"
#include "verify.h"

/* What the journal said about the device when the rework began (the
 * history, history.h, before this rework's own records). */
struct before {
	int seen;
	history_device dev;
	uint64_t authz_used; /* seq of a completed rework of this SE under the authorization in hand (0: none) */
};

/* The journal has revoked this certificate serial. */
static int
is_revoked(station *st, const char *serial)
{
	history_cert c;

	return history_cert_get(st->history, serial, &c) == 0 && c.revoked;
}

/* The journal issued this certificate serial to the SE. */
static int
issued_to(station *st, const char *serial, const char *se)
{
	history_cert c;

	return history_cert_get(st->history, serial, &c) == 0 && c.issued && strcmp(c.device, se) == 0;
}

/* The certificate the SE holds chains to one of our intermediates, names
 * this SE, and (unless the recipe accepts foreign devices) is one we issued
 * to it and have not revoked. */
static int
check_current_cert(station *st, struct dev *d, const struct before *h, const jig_blob *der, X509 **out, st_err *err)
{
	const recipe *r = st->rcp;
	const unsigned char *p = der->data;
	X509 *cert = NULL, *x = NULL;
	X509_STORE *roots = NULL;
	X509_STORE_CTX *ctx = NULL;
	STACK_OF(X509) *ours = sk_X509_new_null();
	ASN1_STRING *sn;
	int idx, ret = -1;
	size_t i;

	*out = NULL;
	if (!(cert = d2i_X509(NULL, &p, (long)der->len)) || p != der->data + der->len) {
		st_err_set(err, ST_E_VERIFY, "the certificate in slot %u is not valid DER", st->slot);
		goto out;
	}
	if (!ours || !r->hsm.chain || !(roots = st_x509_store_load(r->hsm.chain, err)))
		goto out;
	if ((x = st_x509_load(r->hsm.intermediate_cert, err)) && !sk_X509_push(ours, x))
		goto out;
	for (i = 0; i < r->rework.n_intermediates; i++)
		if ((x = st_x509_load(r->rework.intermediates[i], err)) && !sk_X509_push(ours, x))
			goto out;
	x = NULL;
	if (!(ctx = X509_STORE_CTX_new()) || X509_STORE_CTX_init(ctx, roots, cert, ours) != 1) {
		st_err_openssl(err, ST_E_NOMEM, "certificate chain");
		goto out;
	}
	if (X509_verify_cert(ctx) != 1) {
		st_err_set(err, ST_E_VERIFY, "the device's certificate does not chain to one of our intermediates (%s)",
		    X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
		goto out;
	}
	idx = X509_NAME_get_index_by_NID(X509_get_subject_name(cert), NID_serialNumber, -1);
	sn = idx < 0 ? NULL : X509_NAME_ENTRY_get_data(X509_NAME_get_entry(X509_get_subject_name(cert), idx));
	if (!sn || (size_t)ASN1_STRING_length(sn) != strlen(d->info.serial) ||
	    memcmp(ASN1_STRING_get0_data(sn), d->info.serial, strlen(d->info.serial)) != 0) {
		st_err_set(err, ST_E_VERIFY, "the device's certificate is not for SE %s", d->info.serial);
		goto out;
	}
	if (eng_cert_serial_hex(cert, d->cert_serial) < 0) {
		st_err_openssl(err, ST_E_VERIFY, "certificate serial");
		goto out;
	}
	if (is_revoked(st, d->cert_serial)) {
		st_err_set(err, ST_E_VERIFY, "the device's certificate %s is revoked", d->cert_serial);
		goto out;
	}
	if (!h->seen && !r->rework.allow_foreign_devices) {
		st_err_set(err, ST_E_STATE, "this station's journal has never seen SE %s and the recipe does not allow "
		                            "foreign devices (rework.allow_foreign_devices)", d->info.serial);
		goto out;
	}
	if (h->seen && !issued_to(st, d->cert_serial, d->info.serial) && !r->rework.allow_foreign_devices) {
		st_err_set(err, ST_E_VERIFY, "the device's certificate %s is not one this station issued to SE %s",
		    d->cert_serial, d->info.serial);
		goto out;
	}
	*out = cert;
	cert = NULL;
	ret = 0;
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(roots);
	sk_X509_pop_free(ours, X509_free);
	X509_free(cert);
	return ret;
}

/* Journal the revocation of serial unless the journal has it already. */
static int
revoke_once(struct worker *w, struct dev *d, const char *serial)
{
	if (!serial[0] || is_revoked(w->eng->st, serial))
		return 0;
	if (eng_journal(w, d, STEP_REVOKE, "ok", json_pack("{s:s,s:s}", "cert_serial", serial, "reason", "superseded")) < 0)
		return -1;
	ui_revoked(w->eng->u, d->info.serial, serial, "superseded", "retired by this rework");
	return 0;
}

/* A certificate this rework issued and never installed is revoked when the
 * rework ends, as `station run` does at its end (cessationOfOperation). */
static void
revoke_uninstalled(struct worker *w, struct dev *d)
{
	station *st = w->eng->st;
	history_device e;

	if (history_device_get(st->history, d->info.serial, &e) < 0 || !e.has_cert || e.cert_installed)
		return;
	if (eng_journal(w, d, STEP_REVOKE, "ok", json_pack("{s:s,s:s,s:s}", "cert_serial", e.cert_serial, "reason",
	        "cessationOfOperation", "why", "issued but never installed: the rework failed after signing")) < 0)
		return;
	station_retire_cert(st, e.serial, e.cert_serial, &(st_err){ 0 }); /* certs/ keeps live ones only */
	ui_revoked(w->eng->u, e.serial, e.cert_serial, "cessationOfOperation",
	    "issued but never installed: the rework failed after signing");
}

/* Identity proof: the SE signs our fresh challenge with its current leaf key. */
static int
prove_identity(struct worker *w, struct dev *d, X509 *cert)
{
	uint8_t challenge[JIG_NONCE_LEN], msg[128];
	size_t len;
	EVP_PKEY *pub = X509_get0_pubkey(cert);

	if (RAND_bytes(challenge, sizeof(challenge)) != 1) {
		st_err_openssl(&d->err, ST_E_CRYPTO, "rework challenge");
		return eng_fail(d, STEP_REWORK, ADV_ENGINEERING);
	}
	w->req.u.rework_req.slot = w->eng->st->slot;
	memcpy(w->req.u.rework_req.challenge, challenge, sizeof(challenge));
	if (eng_call(w, JIG_CMD_REWORK_CHALLENGE, &d->err) < 0)
		return eng_fail(d, STEP_REWORK, ADV_RESEAT);
	if (jig_challenge_message(JIG_TAG_REWORK, d->info.serial, challenge, msg, sizeof(msg), &len, &d->err) < 0)
		return eng_fail(d, STEP_REWORK, ADV_ENGINEERING);
	if (!pub || sv_verify_sig(pub, msg, len, w->resp.u.signature.data, w->resp.u.signature.len, &d->err) < 0) {
		st_err_prefix(&d->err, "the rework challenge was not signed by the key of the device's certificate");
		return eng_fail(d, STEP_REWORK, ADV_QUARANTINE);
	}
	return 0;
}

/* IDENTIFY and POSTURE as the factory path journals them: what the SE
 * reported, then posture and its attestation chain checked on it (the
 * attestation key that VERIFY uses comes from this chain). */
static int
identify_posture(struct worker *w, struct dev *d)
{
	if (eng_step_identify(w, d) < 0)
		return -1;
	EVP_PKEY_free(d->attest_key);
	d->attest_key = NULL;
	if (eng_step_posture(w, d) < 0)
		return -1;
	if (eng_journal(w, d, STEP_POSTURE, "ok", NULL) < 0)
		return eng_fail(d, STEP_POSTURE, ADV_ENGINEERING);
	return 0;
}

/* After RETIRE the SE is the one that proved its identity before: the same
 * serial, model, firmware and attestation chain, byte for byte. */
static int
same_se(const jig_se_info *before, const jig_se_info *after, st_err *err)
{
	size_t i, nb, na;

	if (strcmp(before->serial, after->serial) != 0)
		return st_err_set(err, ST_E_VERIFY, "after RETIRE the SE reports another serial than before");
	if (strcmp(before->model, after->model) != 0)
		return st_err_set(err, ST_E_VERIFY, "after RETIRE the SE reports another model than before");
	if (before->firmware != after->firmware) {
		char fa[JIG_FW_TEXT_MAX], fb[JIG_FW_TEXT_MAX];

		jig_fw_format(after->firmware, fa);
		jig_fw_format(before->firmware, fb);
		return st_err_set(err, ST_E_VERIFY, "after RETIRE the SE reports firmware %s, before it was %s", fa, fb);
	}
	/* Protocol 1.1 names the vendor chain by digest: the digests and the
	 * attestation certificate are compared (before holds the chain too). */
	if (before->chain_by_digest != after->chain_by_digest ||
	    (before->chain_by_digest && memcmp(before->chain_sha256, after->chain_sha256, JIG_SHA256_LEN) != 0))
		return st_err_set(err, ST_E_VERIFY, "after RETIRE the SE names another vendor chain than before");
	nb = before->chain_by_digest ? 1 : before->ncerts;
	na = after->chain_by_digest ? 1 : after->ncerts;
	if (nb != na)
		return st_err_set(err, ST_E_VERIFY, "after RETIRE the SE sends %zu attestation certificates, before %zu",
		    na, nb);
	for (i = 0; i < nb; i++)
		if (before->certs[i].len != after->certs[i].len ||
		    memcmp(before->certs[i].data, after->certs[i].data, before->certs[i].len) != 0)
			return st_err_set(err, ST_E_VERIFY, "after RETIRE attestation certificate %zu differs from before", i + 1);
	return 0;
}

/* Protocol 1.2: the second SE_INFO's attestation certificate rebuilt
 * against the chain the first one named, when it names the same; same_se
 * then compares the certificates themselves. */
static int
rebuild_like(const jig_se_info *before, jig_se_info *after, st_err *err)
{
	size_t i;

	if (!after->cert_by_delta || !before->chain_by_digest || before->ncerts < 2 ||
	    memcmp(before->chain_sha256, after->chain_sha256, JIG_SHA256_LEN) != 0)
		return 0;
	for (i = 1; i < before->ncerts; i++)
		after->certs[i] = before->certs[i];
	after->ncerts = before->ncerts;
	after->chain_tmpl = before->chain_tmpl;
	after->chain_has_tmpl = before->chain_has_tmpl;
	return jig_attest_cert_rebuild(after, err);
}

static int
rework_device(struct worker *w, struct dev *d, const struct before *h)
{
	station *st = w->eng->st;
	X509 *old = NULL;
	jig_se_info *before = NULL;
	int ret = -1;

	if (identify_posture(w, d) < 0)
		return -1;
	if (d->info.lifecycle == JIG_LC_FACTORY) {
		st_err_set(&d->err, ST_E_STATE, "SE is in factory state: provision it with 'station run', not rework");
		return eng_fail(d, STEP_REWORK, ADV_FACTORY);
	}
	if (d->info.lifecycle == JIG_LC_REWORK && !h->dev.retiring) {
		st_err_set(&d->err, ST_E_STATE, "SE is in rework state, but this station's journal shows no rework of it");
		return eng_fail(d, STEP_REWORK, ADV_QUARANTINE);
	}
	if (eng_step_auth(w, d) < 0)
		return -1;
	if (d->info.lifecycle == JIG_LC_PROVISIONED) {
		d->step = STEP_REWORK;
		ui_step(w->eng->u, w->idx, d->step);
		w->req.u.slot_req.slot = st->slot;
		w->req.u.slot_req.form = JIG_CERT_DER; /* the certificate itself: its serial and key are checked */
		if (eng_call(w, JIG_CMD_READ_CERT, &d->err) < 0)
			return eng_fail(d, STEP_REWORK, ADV_RESEAT);
		if (check_current_cert(st, d, h, &w->resp.u.cert, &old, &d->err) < 0)
			return eng_fail(d, STEP_REWORK, ADV_QUARANTINE);
		json_object_set_new(w->extra, "old_cert_serial", json_string(d->cert_serial));
		if (prove_identity(w, d, old) < 0 || eng_journal(w, d, STEP_REWORK_AUTH, "ok", NULL) < 0)
			goto out;
		/* The old credential is retired in the SE and revoked here; the
		 * journal says so before the SE is told. */
		if (eng_journal(w, d, STEP_RETIRE, "ok", NULL) < 0)
			goto out;
		w->req.u.slot_req.slot = st->slot;
		if (eng_call(w, JIG_CMD_RETIRE, &d->err) < 0) {
			eng_fail(d, STEP_RETIRE, ADV_RESEAT);
			goto out;
		}
		if (eng_call(w, JIG_CMD_SE_INFO, &d->err) < 0) {
			eng_fail(d, STEP_RETIRE, ADV_RESEAT);
			goto out;
		}
		/* Nothing of the second SE_INFO is taken on the jig's word: it
		 * must be the SE of the first, and passes posture again.  Only
		 * then is the old certificate revoked. */
		if (!(before = malloc(sizeof(*before)))) {
			st_err_set(&d->err, ST_E_NOMEM, "out of memory");
			eng_fail(d, STEP_RETIRE, ADV_ENGINEERING);
			goto out;
		}
		*before = d->info;
		if (rebuild_like(before, &w->resp.u.se_info, &d->err) < 0 ||
		    same_se(before, &w->resp.u.se_info, &d->err) < 0) {
			eng_fail(d, STEP_RETIRE, ADV_QUARANTINE);
			goto out;
		}
		d->info = w->resp.u.se_info;
		if (d->info.lifecycle != JIG_LC_REWORK) {
			st_err_set(&d->err, ST_E_STATE, "SE reports lifecycle %s after RETIRE, not rework",
			    jig_lifecycle_name(d->info.lifecycle));
			eng_fail(d, STEP_RETIRE, ADV_SCRAP);
			goto out;
		}
		if (identify_posture(w, d) < 0)
			goto out;
		if (revoke_once(w, d, d->cert_serial) < 0)
			goto out;
	} else if (h->dev.retiring && h->dev.retired_serial[0]) {
		/* A rework resumed after RETIRE (its reply lost, the station
		 * stopped): the old certificate may not be revoked yet. */
		json_object_set_new(w->extra, "old_cert_serial", json_string(h->dev.retired_serial));
		if (revoke_once(w, d, h->dev.retired_serial) < 0)
			goto out;
	}
	/* From here on exactly the factory path.  Nothing to resume: a
	 * certificate the index still holds for this SE is revoked. */
	d->has_prior = history_device_get(st->history, d->info.serial, &d->prior) == 0;
	if (d->has_prior && d->prior.has_cert) {
		if (revoke_once(w, d, d->prior.cert_serial) < 0)
			goto out;
		d->prior.has_cert = 0;
		d->prior.cert_serial[0] = '\0';
	}
	if (eng_step_keygen(w, d, 0) < 0 || eng_step_csr_verify(w, d) < 0 || eng_step_sign(w, d) < 0)
		goto out;
	json_object_set_new(w->extra, "new_cert_serial", json_string(d->cert_serial));
	if (eng_step_install(w, d) < 0 || eng_step_lock(w, d) < 0)
		goto out;
	ret = 0;
out:
	free(before);
	X509_free(old);
	return ret;
}

/* ---- TPM 2.0 devices (PROTOCOL.md section 11, "Rework") ---------------------- */

/* The IDevID certificate this station issued to the TPM, from the journal
 * (never from the device), checked as an SE's current certificate is. */
static int
journal_idevid(struct worker *w, struct dev *d, const struct before *h, uint8_t **der, size_t *len, X509 **cert)
{
	station *st = w->eng->st;
	jig_blob *b = NULL;
	int ret = -1;

	if (!h->seen || !h->dev.has_cert) {
		st_err_set(&d->err, ST_E_STATE, "this station's journal holds no live IDevID certificate for TPM %s: a TPM "
		    "is reworked by the station whose journal provisioned it", d->info.serial);
		return eng_fail(d, STEP_REWORK, ADV_QUARANTINE);
	}
	if (history_cert_der(st->history, st->rcp->audit.dir, h->dev.cert_serial, der, len, &d->err) < 0)
		return eng_fail(d, STEP_REWORK, ADV_ENGINEERING);
	if (*len > JIG_BLOB_MAX || !(b = malloc(sizeof(*b)))) {
		st_err_set(&d->err, ST_E_INTERNAL, "journal certificate %s: %zu bytes", h->dev.cert_serial, *len);
		eng_fail(d, STEP_REWORK, ADV_ENGINEERING);
		goto out;
	}
	memcpy(b->data, *der, *len);
	b->len = *len;
	if (check_current_cert(st, d, h, b, cert, &d->err) < 0) {
		eng_fail(d, STEP_REWORK, ADV_QUARANTINE);
		goto out;
	}
	ret = 0;
out:
	free(b);
	if (ret < 0) {
		free(*der);
		*der = NULL;
	}
	return ret;
}

/* Rework on a TPM: the IDevID key proves itself (TPM_REWORK_SIGN against the
 * journal's certificate); "retire" deletes the write-locked certificate
 * indices and evicts both keys (TPM_RETIRE, the owner authorization that
 * defined them) and revokes both certificates here; then the factory path
 * from KEYGEN: new IAK and IDevID, activation, certification, two new
 * certificates, NV, lock. */
static int
tpm_rework_device(struct worker *w, struct dev *d, const struct before *h)
{
	X509 *old = NULL;
	uint8_t *der = NULL;
	size_t len = 0;
	int ret = -1;

	if (tpm_identify_posture(w, d) < 0)
		return -1;
	if (eng_journal(w, d, STEP_POSTURE, "ok", NULL) < 0)
		return eng_fail(d, STEP_POSTURE, ADV_ENGINEERING);
	if (d->info.lifecycle == JIG_LC_PROVISIONED) {
		if (journal_idevid(w, d, h, &der, &len, &old) < 0)
			return -1;
		json_object_set_new(w->extra, "old_cert_serial", json_string(d->cert_serial));
		if (tpm_prove_identity(w, d, old, der, len) < 0 || eng_journal(w, d, STEP_REWORK_AUTH, "ok", NULL) < 0)
			goto out;
		/* The journal says so before the TPM is told. */
		if (eng_journal(w, d, STEP_RETIRE, "ok", NULL) < 0 || tpm_retire(w, d) < 0)
			goto out;
		if (tpm_identify_posture(w, d) < 0 || eng_journal(w, d, STEP_POSTURE, "ok", NULL) < 0)
			goto out;
	} else if (!h->dev.retiring) {
		st_err_set(&d->err, ST_E_STATE, "the TPM's certificate indices are not written and locked: provision it "
		    "with 'station run', not rework");
		return eng_fail(d, STEP_REWORK, ADV_FACTORY);
	} else if (h->dev.retired_serial[0]) {
		/* Resumed after TPM_RETIRE (its reply lost, the station stopped). */
		json_object_set_new(w->extra, "old_cert_serial", json_string(h->dev.retired_serial));
	}
	d->has_prior = history_device_get(w->eng->st->history, d->info.serial, &d->prior) == 0;
	if (eng_revoke_live(w, d, "retired by this rework") < 0)
		goto out;
	if (tpm_issue(w, d) != 0) {
		if (!d->step)
			eng_fail(d, STEP_REWORK, ADV_ENGINEERING);
		goto out;
	}
	json_object_set_new(w->extra, "new_cert_serial", json_string(d->cert_serial));
	ret = 0;
out:
	free(der);
	X509_free(old);
	return ret;
}

/* The authorization names this SE and was not used for it yet: a token
 * is good for one completed rework per device. */
static int
authorized(struct dev *d, const struct before *h, const authz *az)
{
	if (!authz_names(az, d->info.serial)) {
		st_err_set(&d->err, ST_E_VERIFY, "authorization %s (%s) does not name this SE: ask for one that does",
		    az->id, az->signer);
		return eng_fail(d, STEP_REWORK, ADV_ENGINEERING);
	}
	if (h->authz_used) {
		st_err_set(&d->err, ST_E_VERIFY,
		    "authorization %s was already used for this SE (journal seq %llu): ask for a new one", az->id,
		    (unsigned long long)h->authz_used);
		return eng_fail(d, STEP_REWORK, ADV_ENGINEERING);
	}
	return 0;
}

int
rework_run(station *st, const char *uri, const authz *az, const char *note, ui *u, run_end *end, st_err *err)
{
	static volatile sig_atomic_t never;
	struct engine e = { .st = st, .u = u, .stop = &never, .count = 1 };
	struct worker *w = calloc(1, sizeof(*w));
	struct dev *d = calloc(1, sizeof(*d));
	struct before *h = calloc(1, sizeof(*h));
	st_err rerr;
	int ret = -1, rc;

	pthread_mutex_init(&e.lock, NULL);
	if (!w || !d || !h || !(w->extra = json_pack("{s:b,s:s,s:s,s:s}", "rework", 1, "reason", az->reason,
	                                     "authorization", az->id, "authorized_by", az->signer)) ||
	    (note && json_object_set_new(w->extra, "note", json_string(note)) < 0)) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto out;
	}
	w->eng = &e;
	w->uri = uri;
	/* No RETIRE of a device that could get no new certificate. */
	if (station_quota_check(st, err) < 0 || eng_keys_load(&e, err) < 0 || eng_open_jig(w, err) < 0)
		goto out;
	/* A TPM jig's rework commands come with the TPM capability (bit 3). */
	if (st->family != RECIPE_FAMILY_TPM2 && !(w->caps & JIG_CAP_REWORK)) {
		st_err_set(err, ST_E_CONFIG, "jig %s does not offer rework (HELLO capability bit 2: REWORK_CHALLENGE, "
		    "RETIRE): rework the device on a jig whose firmware does; nothing was done to it", uri);
		goto out;
	}
	if ((rc = eng_wait_device(w, d, err)) != 0)
		goto out;
	h->seen = history_device_get(st->history, d->info.serial, &h->dev) == 0;
	h->authz_used = history_authorization_used(st->history, d->info.serial, az->id);
	ui_device_start(u, 0, d->info.serial);
	if (eng_journal(w, d, STEP_REWORK_START, "ok", NULL) < 0) {
		*err = d->err;
		goto out;
	}
	if (authorized(d, h, az) == 0 &&
	    (st->family == RECIPE_FAMILY_TPM2 ? tpm_rework_device(w, d, h) : rework_device(w, d, h)) == 0 &&
	    eng_journal(w, d, STEP_DONE, "pass", json_pack("{s:s}", "cert_serial", d->cert_serial)) >= 0) {
		ui_pass(u, 0, d->info.serial, d->cert_serial, 0);
		ret = 0;
	} else {
		if (!d->step)
			d->step = STEP_REWORK;
		eng_journal(w, d, d->step, "fail", json_pack("{s:s,s:s}", "error", d->err.msg, "advice",
		    advice_text[d->advice]));
		revoke_uninstalled(w, d);
		eng_report_fail(w, d, d->step);
		ret = 1;
		if (e.fatal)
			ret = st_err_set(err, ST_E_CONFIG, "%s", e.fatal_msg);
	}
	if (w->client && eng_release(w, &rerr) < 0)
		ui_jig_note(u, 0, rerr.msg);
out:
	*end = ret >= 0 ? RUN_COMPLETED : e.fatal ? e.end : RUN_STOP_CONFIG;
	if (d)
		eng_dev_clear(d);
	if (w) {
		eng_drop_client(w);
		json_decref(w->extra);
	}
	eng_keys_free(&e);
	pthread_mutex_destroy(&e.lock);
	free(h);
	free(d);
	free(w);
	return ret;
}
