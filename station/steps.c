/* The steps a device walks, the factory path's (engine.c) and rework's
 * (rework.c): each a jig exchange, an HSM call or a check, with the journal
 * record that goes with it.  A failed step sets the device's step, error
 * and advice and returns -1. */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "chains.h"
#include "engine-int.h"
#include "recipe.h"
#include "revlist.h"
#include "step.h"
#include "verify.h"

const char *const advice_text[] = {
	[ADV_RESEAT] = "re-seat the device and run it again; if it fails again, check the jig and cable, then call engineering",
	[ADV_WRONG_PART] = "set the device aside: it is not a part this recipe provisions; call engineering",
	[ADV_LOCKED] = "the SE is already provisioned: set it aside for 'station rework' or scrap it",
	[ADV_QUARANTINE] = "quarantine the device (failed identity or attestation: possible counterfeit) and call engineering",
	[ADV_ENGINEERING] = "stop and call engineering (station configuration)",
	[ADV_SCRAP] = "re-seat and run it again once; if it fails the same way, scrap the device",
	[ADV_FACTORY] = "the device was never provisioned: put it through 'station run', not rework",
	[ADV_DISK] = "leave the device in the jig: the run stops, and the device resumes on the next run",
};

const char *const advice_name[] = {
	[ADV_RESEAT] = "reseat", [ADV_WRONG_PART] = "wrong-part", [ADV_LOCKED] = "already-provisioned",
	[ADV_QUARANTINE] = "quarantine", [ADV_ENGINEERING] = "engineering", [ADV_SCRAP] = "scrap",
	[ADV_FACTORY] = "not-provisioned", [ADV_DISK] = "leave-in-jig",
};

const char *
eng_failure_code(const st_err *err)
{
	static const char *const names[] = {
		[ST_OK] = "unknown", [ST_E_IO] = "io", [ST_E_TIMEOUT] = "timeout", [ST_E_DISCONNECTED] = "disconnected",
		[ST_E_PROTO] = "protocol", [ST_E_REMOTE] = "jig-error", [ST_E_CONFIG] = "configuration",
		[ST_E_CRYPTO] = "crypto", [ST_E_VERIFY] = "verification", [ST_E_STATE] = "state",
		[ST_E_NOTFOUND] = "not-found", [ST_E_NOMEM] = "out-of-memory", [ST_E_QUOTA] = "quota",
		[ST_E_INTERNAL] = "internal",
	};

	return err->code >= 0 && (size_t)err->code < sizeof(names) / sizeof(names[0]) && names[err->code]
	    ? names[err->code] : "unknown";
}

void
eng_report_fail(struct worker *w, struct dev *d, const char *step)
{
	ui_failure f = {
		.serial = d->info.serial,
		.step = step,
		.code = eng_failure_code(&d->err),
		.jig_error = d->err.code == ST_E_REMOTE ? jig_error_name((uint16_t)d->err.remote) : NULL,
		.disposition = advice_name[d->advice],
		/* a certificate was signed for it (it may be revoked at the end) */
		.cert_serial = d->cert ? d->cert_serial : NULL,
		.reason = d->err.msg,
		.advice = advice_text[d->advice],
	};

	ui_failed(w->eng->u, w->idx, &f);
}

void
eng_on_retry(void *ctx, uint8_t cmd, int attempt, int attempts, const char *why)
{
	struct worker *w = ctx;

	ui_retry(w->eng->u, w->idx, jig_cmd_name(cmd), (unsigned)attempt, (unsigned)attempts, why);
}

static const char *
jig_name(struct worker *w)
{
	return w->uri;
}

/* One command; the client already prefixes "jig URI: CMD:". */
int
eng_call(struct worker *w, uint8_t cmd, st_err *err)
{
	w->req.type = cmd;
	return jig_client_call(w->client, &w->req, &w->resp, err);
}

void
eng_drop_client(struct worker *w)
{
	jig_client_free(w->client);
	w->client = NULL;
}

int
eng_is_link_error(const st_err *err)
{
	return err->code == ST_E_TIMEOUT || err->code == ST_E_DISCONNECTED || err->code == ST_E_IO ||
	    err->code == ST_E_PROTO;
}

int
eng_journal(struct worker *w, struct dev *d, const char *step, const char *result, json_t *details)
{
	st_err err;
	int rc;

	if (w->extra) {
		if (!details)
			details = json_object();
		json_object_update_missing(details, w->extra);
	}
	rc = station_journal(w->eng->st, jig_name(w), d->info.serial, step, result, details, step_is_lazy(step, result),
	    &err);
	if (rc > 0) {
		/* The record is durable; what came after it failed: the run stops,
		 * the record (a device's pass) stands. */
		eng_stop_write(w->eng, &err);
		return 1;
	}
	if (rc < 0) {
		/* Without a durable journal nothing may leave the station. */
		st_err_prefix(&err, "journal");
		eng_stop_write(w->eng, &err);
		d->err = err;
		d->advice = ADV_DISK;
		return -1;
	}
	return 0;
}

int
eng_fail(struct dev *d, const char *step, enum advice adv)
{
	d->step = step;
	d->advice = adv;
	return -1;
}

/* ---- steps ------------------------------------------------------------ */

int
eng_v11(struct worker *w)
{
	return jig_client_version(w->client) >= JIG_VERSION_1_1;
}

int
eng_v12(struct worker *w)
{
	return jig_client_version(w->client) >= JIG_VERSION_1_2;
}

/* Protocol 1.1: SE_INFO named the vendor chain by its digest.  The chain
 * comes from the cache, or from the jig (VENDOR_CHAIN), where it must hash
 * to that digest; either way it is verified like one from the wire. */
static int
resolve_chain(struct worker *w, struct dev *d)
{
	int *from = &d->chain_from;
	station *st = w->eng->st;
	uint8_t h[JIG_SHA256_LEN];
	char want[2 * JIG_SHA256_LEN + 1], got[2 * JIG_SHA256_LEN + 1];
	size_t i;
	st_err e;

	st_err_clear(&e);
	if ((*from = chain_cache_get(st->chains, &d->info, &e)) != CHAIN_MISS)
		return 0;
	if (e.msg[0])
		ui_jig_note(w->eng->u, w->idx, e.msg); /* a bad cache file: fetched again, and replaced */
	if (eng_call(w, JIG_CMD_VENDOR_CHAIN, &d->err) < 0)
		return eng_fail(d, STEP_POSTURE, eng_is_link_error(&d->err) ? ADV_RESEAT : ADV_QUARANTINE);
	d->info.chain_has_tmpl = w->resp.version >= JIG_VERSION_1_2;
	jig_chain_digest(w->resp.u.chain.certs, w->resp.u.chain.n, d->info.chain_has_tmpl ? &w->resp.u.chain.tmpl : NULL,
	    h);
	if (memcmp(h, d->info.chain_sha256, sizeof(h)) != 0) {
		st_hex(d->info.chain_sha256, sizeof(h), want);
		st_hex(h, sizeof(h), got);
		st_err_set(&d->err, ST_E_VERIFY, "the vendor chain the jig sent hashes to %.16s..., SE_INFO named %.16s...",
		    got, want);
		return eng_fail(d, STEP_POSTURE, ADV_QUARANTINE);
	}
	for (i = 0; i < w->resp.u.chain.n; i++)
		d->info.certs[1 + i] = w->resp.u.chain.certs[i];
	d->info.ncerts = 1 + w->resp.u.chain.n;
	d->info.chain_tmpl = w->resp.u.chain.tmpl;
	return 0;
}

/* Protocol 1.2: the attestation certificate came as a delta against the
 * vendor chain; the chain first (cache or VENDOR_CHAIN), then the
 * certificate.  Whatever it rebuilds is verified at POSTURE like one that
 * came whole. */
static int
rebuild_attestation(struct worker *w, struct dev *d)
{
	if (d->info.ncerts == 1 && resolve_chain(w, d) < 0)
		return -1;
	if (jig_attest_cert_rebuild(&d->info, &d->err) < 0)
		return eng_fail(d, STEP_POSTURE, ADV_QUARANTINE);
	return 0;
}

/* IDENTIFY: what the SE says it is, journalled the same on the factory
 * and the rework path. */
int
eng_step_identify(struct worker *w, struct dev *d)
{
	char fw[JIG_FW_TEXT_MAX], attest[ST_SHA256_HEX_LEN + 1];
	json_t *details;

	d->chain_from = CHAIN_MEMORY;
	if (d->info.cert_by_delta && rebuild_attestation(w, d) < 0)
		return -1;
	jig_fw_format(d->info.firmware, fw);
	details = json_pack("{s:s,s:s,s:s}", "model", d->info.model, "firmware", fw, "lifecycle",
	    jig_lifecycle_name(d->info.lifecycle));
	/* The SE's own attestation certificate, as it claimed it (the posture
	 * step verifies it next): one certificate under two SE serials is a
	 * cloned or replayed identity the fleet registry can see. */
	if (details && d->info.ncerts > 0) {
		st_sha256_hex(d->info.certs[0].data, d->info.certs[0].len, attest);
		json_object_set_new(details, "attestation_sha256", json_string(attest));
	}
	if (eng_journal(w, d, STEP_IDENTIFY, "ok", details) < 0)
		return eng_fail(d, STEP_IDENTIFY, ADV_ENGINEERING);
	return 0;
}

int
eng_step_posture(struct worker *w, struct dev *d)
{
	station *st = w->eng->st;

	d->step = STEP_POSTURE;
	ui_step(w->eng->u, w->idx, d->step);
	if (station_posture(st, &d->info, &d->err) < 0)
		return eng_fail(d, STEP_POSTURE, ADV_WRONG_PART);
	if (st->lock && st->lock_receipt && !eng_v11(w)) {
		/* Nothing is issued for an SE whose lock could not be proven. */
		st_err_set(&d->err, ST_E_CONFIG, "jig %s speaks protocol %s, which has no lock receipt, and the recipe "
		    "requires one (se.lock_receipt): update the jig firmware to protocol 1.1, or set se.lock_receipt: false "
		    "for an SE model that cannot sign one", w->uri, jig_version_name(jig_client_version(w->client)));
		return eng_fail(d, STEP_POSTURE, ADV_ENGINEERING);
	}
	if (d->info.chain_by_digest && d->info.ncerts == 1 && resolve_chain(w, d) < 0)
		return -1;
	if (sv_check_se_chain(&d->info, st->vendor_trust, &d->attest_key, &d->err) < 0)
		return eng_fail(d, STEP_POSTURE, ADV_QUARANTINE);
	if (d->info.chain_by_digest && d->chain_from != CHAIN_MEMORY)
		chain_cache_put(st->chains, &d->info, d->chain_from == CHAIN_DISK);
	return 0;
}

int
eng_step_auth(struct worker *w, struct dev *d)
{
	uint8_t msg[128], *sig = NULL;
	size_t len = 0, sig_len = 0;
	int ret = -1;

	d->step = STEP_AUTH;
	ui_step(w->eng->u, w->idx, d->step);
	if (jig_challenge_message(JIG_TAG_TOOL_AUTH, d->info.serial, d->info.challenge, msg, sizeof(msg), &len,
	        &d->err) < 0 ||
	    station_tool_sign(w->eng->st, msg, len, &sig, &sig_len, &d->err) < 0) {
		eng_set_stop(w->eng, RUN_STOP_HSM, d->err.msg);
		return eng_fail(d, STEP_AUTH, ADV_ENGINEERING);
	}
	if (sig_len > JIG_BLOB_MAX) {
		st_err_set(&d->err, ST_E_INTERNAL, "tool signature too long");
		goto out;
	}
	w->req.u.signature.len = sig_len;
	memcpy(w->req.u.signature.data, sig, sig_len);
	if (eng_call(w, JIG_CMD_AUTH_RESPONSE, &d->err) < 0) {
		eng_fail(d, STEP_AUTH, eng_is_link_error(&d->err) ? ADV_RESEAT : ADV_ENGINEERING);
		goto out;
	}
	ret = 0;
out:
	free(sig);
	return ret;
}

int
eng_step_keygen(struct worker *w, struct dev *d, int keep)
{
	station *st = w->eng->st;
	uint8_t h[32];
	char hex[ST_SHA256_HEX_LEN + 1];

	d->step = STEP_KEYGEN;
	ui_step(w->eng->u, w->idx, d->step);
	w->req.u.keygen_req.slot = st->slot;
	w->req.u.keygen_req.algorithm = st->algorithm;
	w->req.u.keygen_req.flags = keep ? JIG_KEYGEN_KEEP : 0;
	if (eng_call(w, JIG_CMD_KEYGEN, &d->err) < 0)
		return eng_fail(d, STEP_KEYGEN, ADV_RESEAT);
	d->pubkey = w->resp.u.pubkey;
	st_sha256(d->pubkey.data, d->pubkey.len, h);
	st_hex(h, 32, hex);
	if (eng_journal(w, d, STEP_KEYGEN, "ok", json_pack("{s:s,s:i,s:b}", "pubkey_sha256", hex, "slot", st->slot, "kept", keep)) < 0)
		return -1;
	return eng_key_fresh(w, d, h, keep);
}

/* Protocol 1.2: only the CSR's and the attestation's signatures travel.
 * The station builds both signed structures from what it knows (section
 * 6), exactly as the SE must have; sv_verify_csr then checks them as if
 * they had come whole, so a signature over anything else fails there. */
static int
csr_rebuild(const sv_session *s, jig_msg *resp, st_err *err)
{
	uint8_t info[JIG_CSR_MAX];
	jig_blob *csr = &resp->u.csr.csr, *att = &resp->u.csr.attestation;
	size_t ilen;
	jig_attest a;

	if (jig_csr_info(s->info->serial, s->pubkey->data, s->pubkey->len, info, sizeof(info), &ilen, err) < 0 ||
	    jig_csr_assemble(info, ilen, resp->u.csr.csr_signature.data, resp->u.csr.csr_signature.len, csr->data,
	        sizeof(csr->data), &csr->len, err) < 0)
		return st_err_prefix(err, "GET_CSR: building the CSR the SE signed");
	memset(&a, 0, sizeof(a));
	memcpy(a.nonce, s->nonce, JIG_NONCE_LEN);
	snprintf(a.serial, sizeof(a.serial), "%s", s->info->serial);
	snprintf(a.model, sizeof(a.model), "%s", s->info->model);
	a.firmware = s->info->firmware;
	a.lifecycle = s->info->lifecycle;
	a.slot = s->slot;
	st_sha256(csr->data, csr->len, a.csr_sha256);
	st_sha256(s->pubkey->data, s->pubkey->len, a.pubkey_sha256);
	if (jig_attest_encode(&a, att->data, sizeof(att->data), &att->len, err) < 0)
		return st_err_prefix(err, "GET_CSR: building the attestation the SE signed");
	return 0;
}

/* In 1.2 the signed bytes are the station's own: a signature that does
 * not verify over them cannot say which part the SE signed otherwise. */
static void
explain_v12(st_err *err)
{
	char why[sizeof(err->msg)];

	snprintf(why, sizeof(why), "%.600s (protocol 1.2: the station built the CSR and the attestation from this "
	    "session's nonce, what SE_INFO reported and the key KEYGEN returned; the SE signed something else: another "
	    "nonce, as a replay would, or another public key than KEYGEN returned)", err->msg);
	st_err_set(err, err->code, "%s", why);
}

int
eng_step_csr_verify(struct worker *w, struct dev *d)
{
	station *st = w->eng->st;
	sv_session s = { .info = &d->info, .slot = st->slot, .pubkey = &d->pubkey, .curve_nid = st->curve_nid };
	char nonce_hex[2 * JIG_NONCE_LEN + 1];

	d->step = STEP_CSR;
	ui_step(w->eng->u, w->idx, d->step);
	if (RAND_bytes(s.nonce, sizeof(s.nonce)) != 1) {
		st_err_openssl(&d->err, ST_E_CRYPTO, "nonce");
		return eng_fail(d, STEP_CSR, ADV_ENGINEERING);
	}
	w->req.u.csr_req.slot = st->slot;
	memcpy(w->req.u.csr_req.nonce, s.nonce, sizeof(s.nonce));
	if (eng_call(w, JIG_CMD_GET_CSR, &d->err) < 0)
		return eng_fail(d, STEP_CSR, ADV_RESEAT);
	if (eng_v12(w)) {
		if (csr_rebuild(&s, &w->resp, &d->err) < 0)
			return eng_fail(d, STEP_VERIFY, ADV_QUARANTINE);
		s.csr_signature = &w->resp.u.csr.csr_signature;
	}

	/* The hard gate: nothing below runs unless every check holds. */
	d->step = STEP_VERIFY;
	ui_step(w->eng->u, w->idx, d->step);
	if (sv_verify_csr(&s, d->attest_key, &w->resp.u.csr.csr, &w->resp.u.csr.attestation,
	        &w->resp.u.csr.signature, &d->csr, &d->err) < 0) {
		if (eng_v12(w) && strstr(d->err.msg, "does not verify"))
			explain_v12(&d->err);
		return eng_fail(d, STEP_VERIFY, ADV_QUARANTINE);
	}
	st_hex(s.nonce, sizeof(s.nonce), nonce_hex);
	return eng_journal(w, d, STEP_VERIFY, "ok", json_pack("{s:s}", "nonce", nonce_hex));
}

static void
set_cert(struct dev *d, X509 *cert)
{
	X509_free(d->cert);
	OPENSSL_free(d->cert_der);
	d->cert_der = NULL;
	d->cert = cert;
	d->cert_len = i2d_X509(cert, &d->cert_der);
}

/* The certificate's serial number as OpenSSL spells it (the journal's key
 * for revocation). */
int
eng_cert_serial_hex(X509 *cert, char out[ST_CERT_SERIAL_HEX_LEN + 1])
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	int ret = -1;

	if (hex && strlen(hex) <= 40) {
		revlist_canon(hex, out); /* BN_bn2hex gives whole bytes: "03DF..." */
		ret = 0;
	}
	OPENSSL_free(hex);
	BN_free(bn);
	return ret;
}

/* The "issued" record's details: the certificate itself, its digest, and
 * (a TPM's two) its role. */
static json_t *
issued_details(X509 *cert, const char *serial, const char *role)
{
	unsigned char *der = NULL;
	int len = i2d_X509(cert, &der);
	char *b64 = len > 0 ? malloc((size_t)(4 * ((len + 2) / 3) + 1)) : NULL;
	char hex[ST_SHA256_HEX_LEN + 1];
	json_t *j = NULL;

	if (b64) {
		st_sha256_hex(der, (size_t)len, hex);
		EVP_EncodeBlock((unsigned char *)b64, der, len);
		j = json_pack("{s:s,s:s,s:s}", "cert_serial", serial, "cert_sha256", hex, "cert", b64);
		if (j && role)
			json_object_set_new(j, "role", json_string(role));
	}
	free(b64);
	OPENSSL_free(der);
	return j;
}

int
eng_issue(struct worker *w, struct dev *d, const eng_issue_req *rq, char serial[ST_CERT_SERIAL_HEX_LEN + 1], X509 **out)
{
	station *st = w->eng->st;
	char got[ST_CERT_SERIAL_HEX_LEN + 1], hex[ST_SHA256_HEX_LEN + 1];
	json_t *issuing;
	X509 *cert = NULL;
	int rc;

	*out = NULL;
	d->step = STEP_JOURNAL;
	ui_step(w->eng->u, w->idx, d->step);
	if (station_quota_take(st, &d->err) < 0) {
		eng_journal(w, d, STEP_QUOTA, "fail", json_pack("{s:s}", "error", d->err.msg));
		if (d->err.code == ST_E_QUOTA)
			eng_set_stop(w->eng, RUN_STOP_QUOTA, d->err.msg);
		return eng_fail(d, STEP_JOURNAL, ADV_ENGINEERING);
	}
	if (station_cert_serial(serial) < 0) {
		st_err_set(&d->err, ST_E_CRYPTO, "no random serial number");
		return eng_fail(d, STEP_JOURNAL, ADV_ENGINEERING);
	}
	st_hex(rq->pubkey_sha256, 32, hex);
	issuing = json_pack("{s:s,s:s,s:s}", "cert_serial", serial, "pubkey_sha256", hex, "issuer_key_id", st->ca_key_id);
	if (issuing && rq->role)
		json_object_set_new(issuing, "role", json_string(rq->role));
	if (eng_journal(w, d, STEP_ISSUING, "ok", issuing) < 0)
		return eng_fail(d, STEP_JOURNAL, ADV_ENGINEERING);

	d->step = STEP_SIGN;
	ui_step(w->eng->u, w->idx, d->step);
	rc = rq->key ? station_issue_iak(st, rq->key, &d->info, serial, &cert, &d->err)
	             : station_issue(st, d->csr, &d->info, serial, &cert, &d->err);
	if (rc < 0) {
		if (d->err.code == ST_E_VERIFY) /* the HSM refused this request: this device only */
			return eng_fail(d, STEP_SIGN, ADV_QUARANTINE);
		eng_set_stop(w->eng, RUN_STOP_HSM, d->err.msg);
		return eng_fail(d, STEP_SIGN, ADV_ENGINEERING);
	}
	*out = cert; /* the caller's from here, also when a step below fails */
	/* The certificate must carry the serial the "issuing" record named. */
	if (eng_cert_serial_hex(cert, got) < 0 || strcmp(got, serial) != 0) {
		st_err_set(&d->err, ST_E_CRYPTO, "the HSM issued serial %s, the journal announced %s", got, serial);
		return eng_fail(d, STEP_SIGN, ADV_ENGINEERING);
	}
	if (eng_journal(w, d, STEP_ISSUED, "ok", issued_details(cert, serial, rq->role)) < 0)
		return eng_fail(d, STEP_SIGN, ADV_ENGINEERING);
	if (station_save_cert(st, rq->file, cert, &d->err) < 0) {
		/* The next device would fail the same way: stop, as for the journal. */
		eng_stop_write(w->eng, &d->err);
		return eng_fail(d, STEP_SIGN, ADV_DISK);
	}
	return 0;
}

/* JOURNAL + SIGN: a new certificate, or the one already issued for this
 * very key when the device resumes. */
int
eng_step_sign(struct worker *w, struct dev *d)
{
	station *st = w->eng->st;
	uint8_t h[32];
	X509 *cert = NULL;
	eng_issue_req rq = { .pubkey_sha256 = h, .role = d->tpm ? "idevid" : NULL, .file = d->info.serial };
	int rc;

	st_sha256(d->pubkey.data, d->pubkey.len, h);
	if (d->has_prior && d->prior.has_cert) {
		if (memcmp(h, d->prior.pubkey_sha256, 32) == 0) {
			uint8_t *der = NULL;
			const unsigned char *p;
			size_t len = 0;

			/* The certificate issued for this very key, from its "issued" record. */
			if (history_cert_der(st->history, st->rcp->audit.dir, d->prior.cert_serial, &der, &len, &d->err) < 0) {
				eng_set_fatal(w->eng, d->err.msg);
				return eng_fail(d, STEP_SIGN, ADV_ENGINEERING);
			}
			p = der;
			cert = d2i_X509(NULL, &p, (long)len);
			free(der);
			if (!cert) {
				st_err_set(&d->err, ST_E_INTERNAL, "journal certificate %s does not parse", d->prior.cert_serial);
				return eng_fail(d, STEP_SIGN, ADV_ENGINEERING);
			}
			set_cert(d, cert);
			snprintf(d->cert_serial, sizeof(d->cert_serial), "%s", d->prior.cert_serial);
			d->resumed = 1;
			if (station_save_cert(w->eng->st, d->info.serial, cert, &d->err) < 0) {
				eng_stop_write(w->eng, &d->err);
				return eng_fail(d, STEP_SIGN, ADV_DISK);
			}
			return eng_journal(w, d, STEP_RESUME, "ok", json_pack("{s:s}", "cert_serial", d->cert_serial));
		}
		/* Another key than the certified one: the old certificate is
		 * revoked before a new one exists (never two live certificates). */
		if (eng_journal(w, d, STEP_REVOKE, "ok", json_pack("{s:s,s:s}", "cert_serial", d->prior.cert_serial,
		        "reason", "superseded")) < 0)
			return eng_fail(d, STEP_SIGN, ADV_ENGINEERING);
		d->prior.has_cert = 0;
		d->prior.cert_serial[0] = '\0';
	}

	rc = eng_issue(w, d, &rq, d->cert_serial, &cert);
	if (cert)
		set_cert(d, cert);
	return rc;
}

struct live_certs {
	char (*serial)[ST_CERT_SERIAL_HEX_LEN + 1];
	size_t n, cap;
};

static int
collect_live(const history_cert *c, void *ctx)
{
	struct live_certs *l = ctx;

	if (!c->issued || c->revoked)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 4;
		char (*v)[ST_CERT_SERIAL_HEX_LEN + 1] = realloc(l->serial, cap * sizeof(*v));

		if (!v)
			return 1;
		l->serial = v;
		l->cap = cap;
	}
	snprintf(l->serial[l->n++], ST_CERT_SERIAL_HEX_LEN + 1, "%s", c->serial);
	return 0;
}

int
eng_revoke_live(struct worker *w, struct dev *d, const char *why)
{
	struct live_certs l = { 0 };
	size_t i;
	int ret = 0;

	if (history_foreach_device_cert(w->eng->st->history, d->info.serial, collect_live, &l) != 0) {
		st_err_set(&d->err, ST_E_NOMEM, "out of memory");
		ret = eng_fail(d, d->step ? d->step : STEP_SIGN, ADV_ENGINEERING);
	}
	for (i = 0; i < l.n && ret == 0; i++) {
		if (eng_journal(w, d, STEP_REVOKE, "ok", json_pack("{s:s,s:s,s:s}", "cert_serial", l.serial[i], "reason",
		        "superseded", "why", why)) < 0) {
			ret = eng_fail(d, d->step ? d->step : STEP_SIGN, ADV_ENGINEERING);
			break;
		}
		ui_revoked(w->eng->u, d->info.serial, l.serial[i], "superseded", why);
	}
	if (ret == 0 && d->has_prior) {
		d->prior.has_cert = 0; /* nothing left to resume or to revoke */
		d->prior.cert_serial[0] = '\0';
	}
	free(l.serial);
	return ret;
}

int
eng_read_back(struct worker *w, struct dev *d, const uint8_t *cert, size_t len)
{
	uint8_t h[JIG_SHA256_LEN];
	int v11 = eng_v11(w);

	w->req.u.slot_req.slot = w->eng->st->slot;
	w->req.u.slot_req.form = v11 ? JIG_CERT_SHA256 : JIG_CERT_DER;
	if (eng_call(w, JIG_CMD_READ_CERT, &d->err) < 0)
		return -1;
	if (!v11)
		return w->resp.u.cert.len == len && memcmp(w->resp.u.cert.data, cert, len) == 0;
	if (w->resp.u.cert.len == 0)
		return 0; /* no certificate in the slot */
	if (w->resp.u.cert.len != sizeof(h))
		return st_err_set(&d->err, ST_E_PROTO, "jig %s: READ_CERT: asked for a SHA-256 (32 bytes), the jig sent %zu "
		    "bytes", w->uri, w->resp.u.cert.len);
	st_sha256(cert, len, h);
	return CRYPTO_memcmp(h, w->resp.u.cert.data, sizeof(h)) == 0;
}

/* Protocol 1.2: INSTALL_CERT sends the certificate as a delta against a
 * template (the first certificate this worker installed) and the slot's
 * public key.  A jig that does not hold the template (a new connection)
 * answers NO_TEMPLATE: it gets the template, and the delta once more.
 * Whatever the jig rebuilds is checked by the read-back digest. */
static int
install_request(struct worker *w, struct dev *d)
{
	uint8_t src[2 * JIG_BLOB_MAX + JIG_STR_MAX];
	jig_blob *delta = &w->req.u.install_req.delta;
	size_t ns = strlen(d->info.serial), n;

	w->req.u.install_req.slot = w->eng->st->slot;
	if (!eng_v12(w)) {
		w->req.u.install_req.cert.len = (size_t)d->cert_len;
		memcpy(w->req.u.install_req.cert.data, d->cert_der, (size_t)d->cert_len);
		return 0;
	}
	if (!w->tmpl_len) {
		memcpy(w->tmpl, d->cert_der, (size_t)d->cert_len);
		w->tmpl_len = (size_t)d->cert_len;
		st_sha256(w->tmpl, w->tmpl_len, w->tmpl_sha256);
	}
	if (d->pubkey.len > JIG_BLOB_MAX)
		return st_err_set(&d->err, ST_E_INTERNAL, "public key too long");
	memcpy(src, w->tmpl, w->tmpl_len);
	n = w->tmpl_len;
	memcpy(src + n, d->pubkey.data, d->pubkey.len);
	n += d->pubkey.len;
	memcpy(src + n, d->info.serial, ns);
	n += ns;
	memcpy(w->req.u.install_req.template_sha256, w->tmpl_sha256, JIG_SHA256_LEN);
	return jig_delta_make(src, n, d->cert_der, (size_t)d->cert_len, delta->data,
	    sizeof(delta->data), &delta->len, &d->err);
}

static int
install(struct worker *w, struct dev *d)
{
	if (install_request(w, d) < 0)
		return -1;
	if (eng_call(w, JIG_CMD_INSTALL_CERT, &d->err) == 0)
		return 0;
	if (!eng_v12(w) || d->err.code != ST_E_REMOTE || d->err.remote != JIG_E_NO_TEMPLATE)
		return -1;
	w->req.u.cert.len = w->tmpl_len;
	memcpy(w->req.u.cert.data, w->tmpl, w->tmpl_len);
	if (eng_call(w, JIG_CMD_CERT_TEMPLATE, &d->err) < 0 || install_request(w, d) < 0)
		return -1;
	return eng_call(w, JIG_CMD_INSTALL_CERT, &d->err);
}

int
eng_step_install(struct worker *w, struct dev *d)
{
	int same;

	d->step = STEP_INSTALL;
	ui_step(w->eng->u, w->idx, d->step);
	if (d->cert_len > JIG_BLOB_MAX) {
		st_err_set(&d->err, ST_E_CONFIG, "certificate of %d bytes exceeds the protocol's %d", d->cert_len,
		    JIG_BLOB_MAX);
		return eng_fail(d, STEP_INSTALL, ADV_ENGINEERING);
	}
	if (install(w, d) < 0)
		return eng_fail(d, STEP_INSTALL, ADV_RESEAT);
	if ((same = eng_read_back(w, d, d->cert_der, (size_t)d->cert_len)) < 0)
		return eng_fail(d, STEP_INSTALL, ADV_RESEAT);
	if (!same) {
		if (eng_v11(w))
			st_err_set(&d->err, ST_E_VERIFY, "the SHA-256 of the certificate read back from the SE differs from the one "
			                                 "installed");
		else
			st_err_set(&d->err, ST_E_VERIFY, "certificate read back from the SE differs from the one installed "
			                                 "(%zu bytes read, %d written)", w->resp.u.cert.len, d->cert_len);
		return eng_fail(d, STEP_INSTALL, ADV_SCRAP);
	}
	if (eng_journal(w, d, STEP_INSTALL, "ok", json_pack("{s:s}", "cert_serial", d->cert_serial)) < 0)
		return eng_fail(d, STEP_INSTALL, ADV_ENGINEERING);
	return 0;
}

int
eng_step_lock(struct worker *w, struct dev *d)
{
	json_t *details = NULL;

	d->step = STEP_LOCK;
	ui_step(w->eng->u, w->idx, d->step);
	if (!w->eng->st->lock)
		return eng_journal(w, d, STEP_LOCK, "skipped", json_pack("{s:s}", "reason", "engineering mode: lock: false"));
	if (eng_journal(w, d, STEP_LOCKING, "ok", NULL) < 0)
		return eng_fail(d, STEP_LOCK, ADV_ENGINEERING);
	if (eng_lock(w, d, d->cert_der, (size_t)d->cert_len, &details) < 0)
		return -1;
	return eng_journal(w, d, STEP_LOCK, "ok", details);
}

int
eng_lock(struct worker *w, struct dev *d, const uint8_t *cert, size_t cert_len, json_t **details)
{
	station *st = w->eng->st;
	uint8_t nonce[JIG_NONCE_LEN];
	char nonce_hex[2 * JIG_NONCE_LEN + 1];
	const char *receipt = "none: protocol 1.0";

	*details = NULL;
	if (eng_v11(w)) {
		/* A fresh nonce: a receipt from another LOCK does not verify. */
		if (RAND_bytes(nonce, sizeof(nonce)) != 1) {
			st_err_openssl(&d->err, ST_E_CRYPTO, "nonce");
			return eng_fail(d, STEP_LOCK, ADV_ENGINEERING);
		}
		w->req.u.lock_req.slot = st->slot;
		memcpy(w->req.u.lock_req.nonce, nonce, sizeof(nonce));
	}
	if (eng_call(w, JIG_CMD_LOCK, &d->err) < 0)
		return eng_fail(d, STEP_LOCK, ADV_RESEAT);
	if (w->resp.u.lock.lifecycle != JIG_LC_PROVISIONED) {
		st_err_set(&d->err, ST_E_VERIFY, "SE reports lifecycle %s after LOCK, not provisioned",
		    jig_lifecycle_name(w->resp.u.lock.lifecycle));
		return eng_fail(d, STEP_LOCK, ADV_SCRAP);
	}
	if (eng_v11(w) && (st->lock_receipt || w->resp.u.lock.signature.len > 0)) {
		if (sv_verify_lock_receipt(d->attest_key, nonce, d->info.serial, st->slot, cert, cert_len,
		        &w->resp.u.lock.signature, &d->err) < 0)
			return eng_fail(d, STEP_LOCK, ADV_QUARANTINE);
		receipt = "verified";
	} else if (eng_v11(w)) {
		receipt = "none: se.lock_receipt is false";
	}
	if (eng_v11(w)) {
		st_hex(nonce, sizeof(nonce), nonce_hex);
		*details = json_pack("{s:s,s:s,s:s}", "lifecycle", "provisioned", "receipt", receipt, "nonce", nonce_hex);
	} else {
		*details = json_pack("{s:s,s:s}", "lifecycle", "provisioned", "receipt", receipt);
	}
	return 0;
}
