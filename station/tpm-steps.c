/* The factory path of a TPM 2.0 device (issue 18; PROTOCOL.md section 11):
 * IDENTIFY (TPM_INFO), POSTURE (manufacturer, firmware, EK certificate
 * chain), KEYGEN (IAK + IDevID), ACTIVATE (credential activation: the IAK
 * is in the TPM of that EK), VERIFY (TPM2_Certify of the IDevID by the IAK
 * over the station's nonce, the CSR), SIGN (an IAK and an IDevID
 * certificate, journaled and counted), INSTALL (NV indices, read back),
 * LOCK (NV write lock, read back).  Every check is in tpm-verify.c; a
 * failed one is a hard FAIL with no certificate. */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <tss2/tss2_tpm2_types.h>

#include "engine-int.h"
#include "step.h"
#include "hsm.h"
#include "recipe.h"
#include "tpm-verify.h"

struct tpm_state {
	jig_tpm_info ti;      /* TPM_INFO of this session */
	X509 *ek_cert;        /* the EK certificate that verified */
	TPM2B_PUBLIC ek, iak, idevid;
	EVP_PKEY *iak_key;
	char iak_serial[ST_CERT_SERIAL_HEX_LEN + 1]; /* IAK certificate issued in this session ("" = none) */
	int iak_installed;
};

void
tpm_state_free(struct tpm_state *t)
{
	if (!t)
		return;
	X509_free(t->ek_cert);
	EVP_PKEY_free(t->iak_key);
	free(t);
}

/* ---- IDENTIFY ---------------------------------------------------------------- */

int
tpm_identify(struct worker *w, struct dev *d, st_err *err)
{
	const jig_tpm_info *ti;
	size_t i, n = 0;

	if (eng_call(w, JIG_CMD_TPM_INFO, err) < 0)
		return -1;
	if (!d->tpm && !(d->tpm = calloc(1, sizeof(*d->tpm))))
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	d->tpm->ti = w->resp.u.tpm_info;
	ti = &d->tpm->ti;
	/* A TPM has no serial: its identity is its EK.  The station names the
	 * device by the EK's public area; POSTURE then checks that a TPM
	 * vendor certified that EK. */
	memset(&d->info, 0, sizeof(d->info));
	jig_tpm_serial(ti->ek_public.data, ti->ek_public.len, d->info.serial);
	/* The manufacturer's four ASCII characters, as an identifier. */
	for (i = 0; i < 4; i++) {
		unsigned char c = (unsigned char)(ti->manufacturer >> (24 - 8 * i));

		if (c == 0 || c == ' ')
			continue;
		d->info.model[n++] = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? (char)c : '_';
	}
	if (!n)
		d->info.model[n++] = '_';
	d->info.firmware = ti->fw1;
	/* Provisioned = both certificate indices written and locked for good. */
	d->info.lifecycle = JIG_LC_FACTORY;
	if ((ti->nv_attrs[0] & TPMA_NV_WRITELOCKED) && (ti->nv_attrs[1] & TPMA_NV_WRITELOCKED))
		d->info.lifecycle = JIG_LC_PROVISIONED;
	return 0;
}

/* ---- helpers --------------------------------------------------------------------- */

/* The IAK certificate of a device that fails before it is installed is
 * revoked at once (the IDevID's is swept at the end of the run). */
static int
fail_tpm(struct worker *w, struct dev *d, const char *step, enum advice adv)
{
	struct tpm_state *t = d->tpm;

	if (t && t->iak_serial[0] && !t->iak_installed)
		eng_journal(w, d, "revoke", "ok", json_pack("{s:s,s:s,s:s}", "cert_serial", t->iak_serial, "reason",
		    "cessationOfOperation", "why", "IAK certificate issued, the device failed before it was installed"));
	if (t)
		t->iak_serial[0] = '\0';
	return eng_fail(d, step, adv);
}

static int
call(struct worker *w, struct dev *d, uint8_t cmd, const char *step)
{
	if (eng_call(w, cmd, &d->err) < 0)
		return fail_tpm(w, d, step, eng_is_link_error(&d->err) ? ADV_RESEAT : ADV_SCRAP);
	return 0;
}

/* ---- POSTURE ------------------------------------------------------------------- */

static int
posture(struct worker *w, struct dev *d)
{
	station *st = w->eng->st;
	struct tpm_state *t = d->tpm;
	const recipe *r = st->rcp;
	uint32_t fw = d->info.firmware, min = r->se.min_firmware;
	size_t i;

	d->step = "posture";
	ui_step(w->eng->u, w->idx, d->step);
	for (i = 0; i < r->se.n_models; i++)
		if (strcmp(r->se.models[i], d->info.model) == 0)
			break;
	if (i == r->se.n_models) {
		st_err_set(&d->err, ST_E_STATE, "TPM manufacturer \"%s\" is not one the recipe allows", d->info.model);
		return eng_fail(d, "posture", ADV_WRONG_PART);
	}
	if (fw < min) {
		st_err_set(&d->err, ST_E_STATE, "TPM firmware %u.%u is older than the recipe's minimum %u.%u", fw >> 16,
		    fw & 0xffff, min >> 16, min & 0xffff);
		return eng_fail(d, "posture", ADV_WRONG_PART);
	}
	if (tv_public_parse(t->ti.ek_public.data, t->ti.ek_public.len, "EK public area", &t->ek, &d->err) < 0)
		return eng_fail(d, "posture", ADV_QUARANTINE);
	/* The EK certificate: the one that certifies this EK and chains to a
	 * vendor root of the recipe. */
	for (i = 0; i < t->ti.n_ekcerts && !t->ek_cert; i++) {
		const unsigned char *p = t->ti.ek_certs[i].data;
		X509 *x = d2i_X509(NULL, &p, (long)t->ti.ek_certs[i].len);
		st_err e;

		if (!x || p != t->ti.ek_certs[i].data + t->ti.ek_certs[i].len ||
		    EVP_PKEY_get_base_id(X509_get0_pubkey(x)) != EVP_PKEY_RSA) {
			X509_free(x);
			continue; /* the ECC EK's certificate, or bytes that are not one */
		}
		if (tv_check_ek(&t->ek, x, &e) < 0 || tv_check_ek_chain(x, st->tpm_vendor, &e) < 0) {
			d->err = e;
			X509_free(x);
			return eng_fail(d, "posture", ADV_QUARANTINE);
		}
		t->ek_cert = x;
	}
	if (!t->ek_cert) {
		st_err_set(&d->err, ST_E_VERIFY, "no RSA EK certificate among the %zu the TPM holds", t->ti.n_ekcerts);
		return eng_fail(d, "posture", ADV_QUARANTINE);
	}
	return 0;
}

/* ---- the identity ------------------------------------------------------------- */

static int
keygen(struct worker *w, struct dev *d)
{
	station *st = w->eng->st;
	struct tpm_state *t = d->tpm;
	uint8_t *spki = NULL, h[32], hi[32];
	size_t len = 0;
	char hex[ST_SHA256_HEX_LEN + 1], ihex[ST_SHA256_HEX_LEN + 1];

	d->step = "keygen";
	ui_step(w->eng->u, w->idx, d->step);
	w->req.u.tpm_keygen_req.flags = 0; /* always new keys: a resumed device gets new ones, its old
	                                      certificate is revoked (superseded) */
	if (call(w, d, JIG_CMD_TPM_KEYGEN, "keygen") < 0)
		return -1;
	if (tv_public_parse(w->resp.u.tpm_keys.iak.data, w->resp.u.tpm_keys.iak.len, "IAK public area", &t->iak, &d->err) < 0 ||
	    tv_public_parse(w->resp.u.tpm_keys.idevid.data, w->resp.u.tpm_keys.idevid.len, "IDevID public area", &t->idevid,
	        &d->err) < 0 ||
	    tv_check_key(&t->iak, 1, st->curve_nid, "IAK", &d->err) < 0 ||
	    tv_check_key(&t->idevid, 0, st->curve_nid, "IDevID", &d->err) < 0)
		return eng_fail(d, "keygen", ADV_QUARANTINE);
	if (!(t->iak_key = tv_pkey(&t->iak, &d->err)) || tv_spki(&t->iak, &spki, &len, &d->err) < 0)
		return eng_fail(d, "keygen", ADV_QUARANTINE);
	st_sha256(spki, len, hi);
	OPENSSL_free(spki);
	if (tv_spki(&t->idevid, &spki, &len, &d->err) < 0)
		return eng_fail(d, "keygen", ADV_QUARANTINE);
	if (len > JIG_BLOB_MAX) {
		OPENSSL_free(spki);
		st_err_set(&d->err, ST_E_INTERNAL, "IDevID key too large");
		return eng_fail(d, "keygen", ADV_ENGINEERING);
	}
	memcpy(d->pubkey.data, spki, len); /* what the IDevID certificate certifies */
	d->pubkey.len = len;
	OPENSSL_free(spki);
	st_sha256(d->pubkey.data, d->pubkey.len, h);
	st_hex(h, 32, hex);
	st_hex(hi, 32, ihex);
	if (eng_journal(w, d, "keygen", "ok", json_pack("{s:s,s:s,s:b}", "pubkey_sha256", hex, "iak_sha256", ihex, "kept", 0)) < 0)
		return -1;
	if (eng_key_fresh(w, d, hi, 0) < 0)
		return -1;
	return eng_key_fresh(w, d, h, 0);
}

static int
activate(struct worker *w, struct dev *d)
{
	struct tpm_state *t = d->tpm;
	uint8_t secret[32], name[TV_NAME_LEN];
	int ret = -1;

	/* Credential activation is part of the attestation gate: VERIFY. */
	d->step = "verify";
	ui_step(w->eng->u, w->idx, d->step);
	if (RAND_bytes(secret, sizeof(secret)) != 1) {
		st_err_openssl(&d->err, ST_E_CRYPTO, "credential secret");
		return eng_fail(d, "verify", ADV_ENGINEERING);
	}
	if (tv_name(&t->iak, name, &d->err) < 0) {
		eng_fail(d, "verify", ADV_QUARANTINE);
		goto out;
	}
	if (tv_make_credential(&t->ek, X509_get0_pubkey(t->ek_cert), name, secret, sizeof(secret),
	        w->req.u.tpm_activate_req.credential.data, JIG_BLOB_MAX, &w->req.u.tpm_activate_req.credential.len,
	        w->req.u.tpm_activate_req.secret.data, JIG_BLOB_MAX, &w->req.u.tpm_activate_req.secret.len, &d->err) < 0) {
		eng_fail(d, "verify", ADV_ENGINEERING);
		goto out;
	}
	if (eng_call(w, JIG_CMD_TPM_ACTIVATE, &d->err) < 0) {
		/* A TPM that cannot open the credential (TPM_RC_INTEGRITY...) holds
		 * no IAK of that EK: the hard gate, not a communication problem. */
		if (!eng_is_link_error(&d->err))
			st_err_prefix(&d->err, "credential activation failed (the IAK is not in the TPM of the verified EK)");
		eng_fail(d, "verify", eng_is_link_error(&d->err) ? ADV_RESEAT : ADV_QUARANTINE);
		goto out;
	}
	if (tv_check_activation(w->resp.u.tpm_secret.data, w->resp.u.tpm_secret.len, secret, sizeof(secret), &d->err) < 0) {
		eng_fail(d, "verify", ADV_QUARANTINE);
		goto out;
	}
	ret = eng_journal(w, d, STEP_ACTIVATE, "ok", NULL);
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	return ret;
}

static int
certify(struct worker *w, struct dev *d)
{
	struct tpm_state *t = d->tpm;
	uint8_t nonce[JIG_NONCE_LEN];
	char nonce_hex[2 * JIG_NONCE_LEN + 1];
	EVP_PKEY *idevid = NULL;
	X509_REQ *csr = NULL;
	int ret = -1;

	d->step = "csr";
	ui_step(w->eng->u, w->idx, d->step);
	if (RAND_bytes(nonce, sizeof(nonce)) != 1) {
		st_err_openssl(&d->err, ST_E_CRYPTO, "nonce");
		return eng_fail(d, "csr", ADV_ENGINEERING);
	}
	memcpy(w->req.u.tpm_certify_req.nonce, nonce, sizeof(nonce));
	if (call(w, d, JIG_CMD_TPM_CERTIFY, "csr") < 0)
		return -1;
	d->step = "verify";
	ui_step(w->eng->u, w->idx, d->step);
	if (tv_check_certify(w->resp.u.tpm_certify.attest.data, w->resp.u.tpm_certify.attest.len,
	        w->resp.u.tpm_certify.signature.data, w->resp.u.tpm_certify.signature.len, &t->iak, &t->idevid, nonce,
	        sizeof(nonce), &d->err) < 0)
		return eng_fail(d, "verify", ADV_QUARANTINE);
	if (!(csr = hsm_csr_from_der(w->resp.u.tpm_certify.csr.data, w->resp.u.tpm_certify.csr.len, &d->err)) ||
	    hsm_csr_verify(csr, &d->err) < 0 || !(idevid = tv_pkey(&t->idevid, &d->err))) {
		st_err_prefix(&d->err, "csr");
		eng_fail(d, "verify", ADV_QUARANTINE);
		goto out;
	}
	if (EVP_PKEY_eq(X509_REQ_get0_pubkey(csr), idevid) != 1) {
		st_err_set(&d->err, ST_E_VERIFY, "the CSR is for another key than the certified IDevID");
		eng_fail(d, "verify", ADV_QUARANTINE);
		goto out;
	}
	d->csr = csr;
	csr = NULL; /* owned by d */
	st_hex(nonce, sizeof(nonce), nonce_hex);
	ret = eng_journal(w, d, "verify", "ok", json_pack("{s:s}", "nonce", nonce_hex));
out:
	X509_REQ_free(csr);
	EVP_PKEY_free(idevid);
	return ret;
}

/* ---- SIGN, INSTALL, LOCK ----------------------------------------------------- */

/* The IAK certificate: JOURNAL + SIGN as for every certificate
 * (eng_issue), then its DER into the TPM_NV_WRITE request. */
static int
sign_iak(struct worker *w, struct dev *d)
{
	struct tpm_state *t = d->tpm;
	uint8_t *spki = NULL, h[32];
	size_t len = 0;
	char serial[ST_CERT_SERIAL_HEX_LEN + 1], name[JIG_STR_MAX + 8];
	X509 *cert = NULL;
	int ret = -1;

	if (tv_spki(&t->iak, &spki, &len, &d->err) < 0)
		return eng_fail(d, "journal", ADV_ENGINEERING);
	st_sha256(spki, len, h);
	OPENSSL_free(spki);
	snprintf(name, sizeof(name), "%s.iak", d->info.serial);
	{
		eng_issue_req rq = { .pubkey_sha256 = h, .key = t->iak_key, .role = "iak", .file = name };

		if (eng_issue(w, d, &rq, serial, &cert) < 0) {
			if (cert) /* issued: revoked at once */
				snprintf(t->iak_serial, sizeof(t->iak_serial), "%s", serial);
			fail_tpm(w, d, d->step, d->advice);
			goto out;
		}
	}
	snprintf(t->iak_serial, sizeof(t->iak_serial), "%s", serial);
	/* INSTALL takes it from here. */
	if (i2d_X509(cert, NULL) > JIG_BLOB_MAX) {
		st_err_set(&d->err, ST_E_CONFIG, "IAK certificate exceeds the protocol's %d bytes", JIG_BLOB_MAX);
		fail_tpm(w, d, "sign", ADV_ENGINEERING);
		goto out;
	}
	{
		unsigned char *p = w->req.u.tpm_nv_write_req.data.data;

		w->req.u.tpm_nv_write_req.data.len = (size_t)i2d_X509(cert, &p);
	}
	ret = 0;
out:
	X509_free(cert);
	return ret;
}

static int
nv_put(struct worker *w, struct dev *d, uint8_t which, const uint8_t *der, size_t len)
{
	w->req.u.tpm_nv_write_req.which = which;
	if (der != w->req.u.tpm_nv_write_req.data.data) {
		memcpy(w->req.u.tpm_nv_write_req.data.data, der, len);
		w->req.u.tpm_nv_write_req.data.len = len;
	}
	if (call(w, d, JIG_CMD_TPM_NV_WRITE, "install") < 0)
		return -1;
	w->req.u.tpm_nv_req.which = which;
	if (call(w, d, JIG_CMD_TPM_NV_READ, "install") < 0)
		return -1;
	if (w->resp.u.tpm_nv.data.len != len || memcmp(w->resp.u.tpm_nv.data.data, der, len) != 0) {
		st_err_set(&d->err, ST_E_VERIFY, "%s certificate read back from NV differs from the one written (%zu bytes "
		    "read, %zu written)", which == JIG_TPM_NV_IAK ? "IAK" : "IDevID", w->resp.u.tpm_nv.data.len, len);
		return fail_tpm(w, d, "install", ADV_SCRAP);
	}
	return 0;
}

static int
install(struct worker *w, struct dev *d, uint8_t *iak_der, size_t iak_len)
{
	d->step = "install";
	ui_step(w->eng->u, w->idx, d->step);
	if ((size_t)d->cert_len > JIG_BLOB_MAX) {
		st_err_set(&d->err, ST_E_CONFIG, "certificate of %d bytes exceeds the protocol's %d", d->cert_len, JIG_BLOB_MAX);
		return fail_tpm(w, d, "install", ADV_ENGINEERING);
	}
	if (nv_put(w, d, JIG_TPM_NV_IAK, iak_der, iak_len) < 0 ||
	    nv_put(w, d, JIG_TPM_NV_IDEVID, d->cert_der, (size_t)d->cert_len) < 0)
		return -1;
	d->tpm->iak_installed = 1;
	if (eng_journal(w, d, "install", "ok", json_pack("{s:s,s:s}", "cert_serial", d->cert_serial, "iak_cert_serial",
	        d->tpm->iak_serial)) < 0)
		return eng_fail(d, "install", ADV_ENGINEERING);
	return 0;
}

static int
lock(struct worker *w, struct dev *d)
{
	const uint32_t want = TPMA_NV_WRITTEN | TPMA_NV_WRITELOCKED | TPMA_NV_WRITEDEFINE;
	int i;

	d->step = "lock";
	ui_step(w->eng->u, w->idx, d->step);
	if (!w->eng->st->lock)
		return eng_journal(w, d, "lock", "skipped", json_pack("{s:s}", "reason", "engineering mode: lock: false"));
	if (eng_journal(w, d, "locking", "ok", NULL) < 0)
		return eng_fail(d, "lock", ADV_ENGINEERING);
	if (call(w, d, JIG_CMD_TPM_LOCK, "lock") < 0)
		return -1;
	for (i = 0; i < 2; i++)
		if ((w->resp.u.tpm_lock.attrs[i] & want) != want) {
			st_err_set(&d->err, ST_E_VERIFY, "%s certificate index reports attributes 0x%08x after TPM_LOCK: not "
			    "written, write-locked and WRITEDEFINE", i ? "IDevID" : "IAK", w->resp.u.tpm_lock.attrs[i]);
			return eng_fail(d, "lock", ADV_SCRAP);
		}
	return eng_journal(w, d, "lock", "ok", json_pack("{s:s}", "lifecycle", "provisioned"));
}

/* IDENTIFY (the record) and POSTURE, as the factory path and rework both
 * begin; the EK certificate is verified anew each time. */
int
tpm_identify_posture(struct worker *w, struct dev *d)
{
	char fw[32], ek_hex[ST_SHA256_HEX_LEN + 1] = "";

	X509_free(d->tpm->ek_cert);
	d->tpm->ek_cert = NULL;
	snprintf(fw, sizeof(fw), "%u.%u", d->info.firmware >> 16, d->info.firmware & 0xffff);
	if (d->tpm->ti.n_ekcerts)
		st_sha256_hex(d->tpm->ti.ek_certs[0].data, d->tpm->ti.ek_certs[0].len, ek_hex);
	if (eng_journal(w, d, "identify", "ok", json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "family", "tpm2", "model",
	        d->info.model, "vendor", d->tpm->ti.vendor, "firmware", fw, "lifecycle",
	        jig_lifecycle_name(d->info.lifecycle), "ek_cert_sha256", ek_hex)) < 0)
		return eng_fail(d, "identify", ADV_ENGINEERING);
	return posture(w, d);
}

int
tpm_issue(struct worker *w, struct dev *d)
{
	uint8_t iak_der[JIG_BLOB_MAX];
	size_t iak_len;

	/* No tool authentication: a TPM does not authenticate the station
	 * (PROTOCOL.md section 11, README "TPM devices"). */
	if (keygen(w, d) < 0 || activate(w, d) < 0 || certify(w, d) < 0)
		return -1;
	if (eng_stopping(w->eng))
		return 1;
	/* A TPM gets new keys every time: what an earlier attempt issued (an
	 * IAK certificate, an IDevID one, or both) is revoked before new ones
	 * exist. */
	if (d->has_prior && eng_revoke_live(w, d, "the device resumed with new keys") < 0)
		return fail_tpm(w, d, d->step, d->advice);
	if (sign_iak(w, d) < 0)
		return -1;
	iak_len = w->req.u.tpm_nv_write_req.data.len;
	memcpy(iak_der, w->req.u.tpm_nv_write_req.data.data, iak_len);
	if (eng_step_sign(w, d) < 0)
		return fail_tpm(w, d, d->step, d->advice);
	if (install(w, d, iak_der, iak_len) < 0 || lock(w, d) < 0)
		return -1;
	return 0;
}

int
tpm_provision(struct worker *w, struct dev *d)
{
	station *st = w->eng->st;

	d->has_prior = history_device_get(st->history, d->info.serial, &d->prior) == 0;
	if (tpm_identify_posture(w, d) < 0)
		return -1;
	if (d->info.lifecycle == JIG_LC_PROVISIONED) {
		st_err_set(&d->err, ST_E_STATE, "the TPM is already provisioned (its identity certificates are written and "
		    "locked)%s", d->has_prior && d->prior.state == HISTORY_PASSED ? "; this station provisioned it before" : "");
		return eng_fail(d, "posture", ADV_LOCKED);
	}
	if (d->has_prior && d->prior.state == HISTORY_PASSED) {
		st_err_set(&d->err, ST_E_STATE, "the journal shows TPM %s provisioned already, yet its certificate indices are "
		    "not locked (deleted by someone with owner authorization?)", d->info.serial);
		return eng_fail(d, "posture", ADV_QUARANTINE);
	}
	if (eng_journal(w, d, "posture", "ok", NULL) < 0)
		return eng_fail(d, "posture", ADV_ENGINEERING);
	if (eng_stopping(w->eng))
		return 1;
	return tpm_issue(w, d);
}

/* ---- rework ------------------------------------------------------------------ */

int
tpm_prove_identity(struct worker *w, struct dev *d, X509 *idevid_cert, const uint8_t *der, size_t len)
{
	uint8_t challenge[JIG_NONCE_LEN], msg[128];
	size_t mlen;

	d->step = STEP_REWORK;
	ui_step(w->eng->u, w->idx, d->step);
	/* The TPM holds the certificate this station issued and journaled ... */
	w->req.u.tpm_nv_req.which = JIG_TPM_NV_IDEVID;
	if (call(w, d, JIG_CMD_TPM_NV_READ, STEP_REWORK) < 0)
		return -1;
	if (w->resp.u.tpm_nv.data.len != len || memcmp(w->resp.u.tpm_nv.data.data, der, len) != 0) {
		st_err_set(&d->err, ST_E_VERIFY, "the IDevID certificate in the TPM's NV index is not the one this station "
		    "issued to %s (the journal's)", d->info.serial);
		return eng_fail(d, STEP_REWORK, ADV_QUARANTINE);
	}
	/* ... and its key, in the TPM, signs our fresh challenge: checked with
	 * the journal's certificate, never with anything the jig sends. */
	if (RAND_bytes(challenge, sizeof(challenge)) != 1) {
		st_err_openssl(&d->err, ST_E_CRYPTO, "rework challenge");
		return eng_fail(d, STEP_REWORK, ADV_ENGINEERING);
	}
	memcpy(w->req.u.tpm_rework_req.challenge, challenge, sizeof(challenge));
	if (eng_call(w, JIG_CMD_TPM_REWORK_SIGN, &d->err) < 0)
		return eng_fail(d, STEP_REWORK, eng_is_link_error(&d->err) ? ADV_RESEAT : ADV_QUARANTINE);
	if (jig_challenge_message(JIG_TAG_TPM_REWORK, d->info.serial, challenge, msg, sizeof(msg), &mlen, &d->err) < 0)
		return eng_fail(d, STEP_REWORK, ADV_ENGINEERING);
	if (tv_check_signature(w->resp.u.tpm_signature.data, w->resp.u.tpm_signature.len, X509_get0_pubkey(idevid_cert),
	        "the key of the device's IDevID certificate", msg, mlen, "TPM_REWORK_SIGN signature", &d->err) < 0) {
		st_err_prefix(&d->err, "identity proof");
		return eng_fail(d, STEP_REWORK, ADV_QUARANTINE);
	}
	return 0;
}

int
tpm_retire(struct worker *w, struct dev *d)
{
	jig_blob *ek = malloc(sizeof(*ek));
	int ret = -1;

	d->step = STEP_RETIRE;
	ui_step(w->eng->u, w->idx, d->step);
	if (!ek) {
		st_err_set(&d->err, ST_E_NOMEM, "out of memory");
		return eng_fail(d, STEP_RETIRE, ADV_ENGINEERING);
	}
	*ek = d->tpm->ti.ek_public;
	if (call(w, d, JIG_CMD_TPM_RETIRE, STEP_RETIRE) < 0)
		goto out;
	if (w->resp.u.tpm_lock.attrs[0] || w->resp.u.tpm_lock.attrs[1]) {
		st_err_set(&d->err, ST_E_VERIFY, "after TPM_RETIRE the certificate indices report attributes 0x%08x, 0x%08x: "
		    "still defined", w->resp.u.tpm_lock.attrs[0], w->resp.u.tpm_lock.attrs[1]);
		eng_fail(d, STEP_RETIRE, ADV_SCRAP);
		goto out;
	}
	/* Nothing of the second TPM_INFO is taken on the jig's word: the same
	 * EK, no certificate index, and POSTURE again (the caller). */
	if (tpm_identify(w, d, &d->err) < 0) {
		eng_fail(d, STEP_RETIRE, eng_is_link_error(&d->err) ? ADV_RESEAT : ADV_SCRAP);
		goto out;
	}
	if (d->tpm->ti.ek_public.len != ek->len || memcmp(d->tpm->ti.ek_public.data, ek->data, ek->len) != 0) {
		st_err_set(&d->err, ST_E_VERIFY, "after TPM_RETIRE the device reports another EK than before");
		eng_fail(d, STEP_RETIRE, ADV_QUARANTINE);
		goto out;
	}
	if (d->tpm->ti.nv_attrs[0] || d->tpm->ti.nv_attrs[1]) {
		st_err_set(&d->err, ST_E_VERIFY, "after TPM_RETIRE, TPM_INFO still reports certificate indices");
		eng_fail(d, STEP_RETIRE, ADV_SCRAP);
		goto out;
	}
	ret = 0;
out:
	free(ek);
	return ret;
}
