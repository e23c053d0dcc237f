#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "engine-int.h"
#include "recipe.h"
#include "revlist.h"
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

const char *
run_end_name(run_end end)
{
	static const char *const names[] = {
		[RUN_COMPLETED] = "completed", [RUN_STOP_INTERRUPT] = "interrupt", [RUN_STOP_SIGTERM] = "sigterm",
		[RUN_STOP_SIGHUP] = "sighup", [RUN_STOP_QUIT] = "quit", [RUN_STOP_QUOTA] = "quota", [RUN_STOP_HSM] = "hsm",
		[RUN_STOP_DISK_FULL] = "disk-full", [RUN_STOP_JOURNAL] = "write-error", [RUN_STOP_CONFIG] = "configuration",
	};

	return (size_t)end < sizeof(names) / sizeof(names[0]) && names[end] ? names[end] : "unknown";
}

const char *
run_end_text(run_end end)
{
	static const char *const texts[] = {
		[RUN_COMPLETED] = "completed", [RUN_STOP_INTERRUPT] = "stopped by the operator (Ctrl-C)",
		[RUN_STOP_SIGTERM] = "stopped by SIGTERM", [RUN_STOP_SIGHUP] = "stopped by SIGHUP (terminal closed)",
		[RUN_STOP_QUIT] = "quit at once by a second signal", [RUN_STOP_QUOTA] = "stopped: issuance quota used up",
		[RUN_STOP_HSM] = "stopped: the HSM failed", [RUN_STOP_DISK_FULL] = "stopped: disk full",
		[RUN_STOP_JOURNAL] = "stopped: a write to the audit folder failed",
		[RUN_STOP_CONFIG] = "stopped: configuration error",
	};

	return (size_t)end < sizeof(texts) / sizeof(texts[0]) && texts[end] ? texts[end] : "stopped";
}

int
eng_stopping(struct engine *e)
{
	int f;

	pthread_mutex_lock(&e->lock);
	f = e->fatal;
	pthread_mutex_unlock(&e->lock);
	return f || *e->stop;
}

void
eng_set_stop(struct engine *e, run_end end, const char *msg)
{
	pthread_mutex_lock(&e->lock);
	if (!e->fatal) {
		e->fatal = 1;
		e->end = end;
		snprintf(e->fatal_msg, sizeof(e->fatal_msg), "%s", msg);
	}
	pthread_mutex_unlock(&e->lock);
}

void
eng_set_fatal(struct engine *e, const char *msg)
{
	eng_set_stop(e, RUN_STOP_CONFIG, msg);
}

void
eng_stop_write(struct engine *e, const st_err *err)
{
	char msg[sizeof(e->fatal_msg)];
	int full = err->sys == ENOSPC || err->sys == EDQUOT;

	snprintf(msg, sizeof(msg), "%.700s; %s %s, then run again (devices in progress resume)", err->msg,
	    full ? "disk full: free space on the file system of" : "check the disk holding", e->st->rcp->audit.dir);
	eng_set_stop(e, full ? RUN_STOP_DISK_FULL : RUN_STOP_JOURNAL, msg);
}

static void
sleep_ms(struct engine *e, int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	if (!eng_stopping(e))
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !*e->stop)
			;
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

/* Records that report a step's result and precede no effect outside the
 * station need not wait for the disk: the next durable record (the
 * "issuing" before the HSM signs, the "issued" before the certificate goes
 * to the SE, "locking", "retire", "revoke", the outcome) carries them.
 * Invariant 6 asks exactly that much; it saves most of the fdatasyncs. */
static int
is_lazy(const char *step, const char *result)
{
	static const char *const informational[] = { "identify", "posture", "auth", "keygen", "verify", "install",
		"lock", "resume", "rework-start", "rework-auth" };
	size_t i;

	if (strcmp(result, "ok") != 0)
		return 0;
	for (i = 0; i < sizeof(informational) / sizeof(informational[0]); i++)
		if (strcmp(step, informational[i]) == 0)
			return 1;
	return 0;
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
	rc = station_journal(w->eng->st, jig_name(w), d->info.serial, step, result, details, is_lazy(step, result),
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
eng_step_posture(struct worker *w, struct dev *d)
{
	station *st = w->eng->st;

	d->step = "POSTURE";
	ui_step(w->eng->u, w->idx, d->step);
	if (station_posture(st, &d->info, &d->err) < 0)
		return eng_fail(d, "POSTURE", ADV_WRONG_PART);
	if (sv_check_se_chain(&d->info, st->vendor_trust, &d->attest_key, &d->err) < 0)
		return eng_fail(d, "POSTURE", ADV_QUARANTINE);
	return 0;
}

int
eng_step_auth(struct worker *w, struct dev *d)
{
	uint8_t msg[128], *sig = NULL;
	size_t len = 0, sig_len = 0;
	int ret = -1;

	d->step = "AUTH";
	ui_step(w->eng->u, w->idx, d->step);
	if (jig_challenge_message(JIG_TAG_TOOL_AUTH, d->info.serial, d->info.challenge, msg, sizeof(msg), &len,
	        &d->err) < 0 ||
	    station_tool_sign(w->eng->st, msg, len, &sig, &sig_len, &d->err) < 0) {
		eng_set_stop(w->eng, RUN_STOP_HSM, d->err.msg);
		return eng_fail(d, "AUTH", ADV_ENGINEERING);
	}
	if (sig_len > JIG_BLOB_MAX) {
		st_err_set(&d->err, ST_E_INTERNAL, "tool signature too long");
		goto out;
	}
	w->req.u.signature.len = sig_len;
	memcpy(w->req.u.signature.data, sig, sig_len);
	if (eng_call(w, JIG_CMD_AUTH_RESPONSE, &d->err) < 0) {
		eng_fail(d, "AUTH", eng_is_link_error(&d->err) ? ADV_RESEAT : ADV_ENGINEERING);
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
	char hex[65];

	d->step = "KEYGEN";
	ui_step(w->eng->u, w->idx, d->step);
	w->req.u.keygen_req.slot = st->slot;
	w->req.u.keygen_req.algorithm = st->algorithm;
	w->req.u.keygen_req.flags = keep ? JIG_KEYGEN_KEEP : 0;
	if (eng_call(w, JIG_CMD_KEYGEN, &d->err) < 0)
		return eng_fail(d, "KEYGEN", ADV_RESEAT);
	d->pubkey = w->resp.u.pubkey;
	st_sha256(d->pubkey.data, d->pubkey.len, h);
	st_hex(h, 32, hex);
	if (eng_journal(w, d, "keygen", "ok", json_pack("{s:s,s:i,s:b}", "pubkey_sha256", hex, "slot", st->slot, "kept", keep)) < 0)
		return -1;
	return eng_key_fresh(w, d, h, keep);
}

int
eng_step_csr_verify(struct worker *w, struct dev *d)
{
	station *st = w->eng->st;
	sv_session s = { .info = &d->info, .slot = st->slot, .pubkey = &d->pubkey, .curve_nid = st->curve_nid };
	char nonce_hex[2 * JIG_NONCE_LEN + 1];

	d->step = "CSR";
	ui_step(w->eng->u, w->idx, d->step);
	if (RAND_bytes(s.nonce, sizeof(s.nonce)) != 1) {
		st_err_openssl(&d->err, ST_E_CRYPTO, "nonce");
		return eng_fail(d, "CSR", ADV_ENGINEERING);
	}
	w->req.u.csr_req.slot = st->slot;
	memcpy(w->req.u.csr_req.nonce, s.nonce, sizeof(s.nonce));
	if (eng_call(w, JIG_CMD_GET_CSR, &d->err) < 0)
		return eng_fail(d, "CSR", ADV_RESEAT);

	/* The hard gate: nothing below runs unless every check holds. */
	d->step = "VERIFY";
	ui_step(w->eng->u, w->idx, d->step);
	if (sv_verify_csr(&s, d->attest_key, &w->resp.u.csr.csr, &w->resp.u.csr.attestation,
	        &w->resp.u.csr.signature, &d->csr, &d->err) < 0)
		return eng_fail(d, "VERIFY", ADV_QUARANTINE);
	st_hex(s.nonce, sizeof(s.nonce), nonce_hex);
	return eng_journal(w, d, "verify", "ok", json_pack("{s:s}", "nonce", nonce_hex));
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
eng_cert_serial_hex(X509 *cert, char out[41])
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

static json_t *
cert_details(struct dev *d)
{
	uint8_t h[32];
	char hex[65];
	char *b64 = malloc((size_t)(4 * ((d->cert_len + 2) / 3) + 1));
	json_t *j;

	st_sha256(d->cert_der, (size_t)d->cert_len, h);
	st_hex(h, 32, hex);
	if (!b64)
		return NULL;
	EVP_EncodeBlock((unsigned char *)b64, d->cert_der, d->cert_len);
	j = json_pack("{s:s,s:s,s:s}", "cert_serial", d->cert_serial, "cert_sha256", hex, "cert", b64);
	free(b64);
	return j;
}

void
eng_index_update(struct worker *w, struct dev *d, dev_state state, int live_cert, int installed)
{
	dev_entry e;

	memset(&e, 0, sizeof(e));
	if (devindex_get(w->eng->st->index, d->info.serial, &e) < 0)
		snprintf(e.serial, sizeof(e.serial), "%s", d->info.serial);
	/* A refusal (a clone of a provisioned SE, a locked SE presented again)
	 * must not make the station forget that the SE passed: the next
	 * presentation would be taken for a device to resume. */
	if (!(e.state == DEV_PASSED && state == DEV_FAILED))
		e.state = state;
	if (live_cert && d->cert_len > 0 && (size_t)d->cert_len <= sizeof(e.cert)) {
		memcpy(e.cert, d->cert_der, (size_t)d->cert_len);
		e.cert_len = (size_t)d->cert_len;
		snprintf(e.cert_serial, sizeof(e.cert_serial), "%s", d->cert_serial);
		st_sha256(d->pubkey.data, d->pubkey.len, e.pubkey_sha256);
		e.cert_installed = installed;
	}
	devindex_put(w->eng->st->index, &e);
}

/* JOURNAL + SIGN: a new certificate, or the one already issued for this
 * very key when the device resumes. */
int
eng_step_sign(struct worker *w, struct dev *d)
{
	station *st = w->eng->st;
	uint8_t h[32];
	X509 *cert = NULL;
	const unsigned char *p;

	st_sha256(d->pubkey.data, d->pubkey.len, h);
	if (d->has_prior && d->prior.cert_len) {
		if (memcmp(h, d->prior.pubkey_sha256, 32) == 0) {
			p = d->prior.cert;
			if (!(cert = d2i_X509(NULL, &p, (long)d->prior.cert_len))) {
				st_err_set(&d->err, ST_E_INTERNAL, "journal certificate %s does not parse", d->prior.cert_serial);
				return eng_fail(d, "SIGN", ADV_ENGINEERING);
			}
			set_cert(d, cert);
			snprintf(d->cert_serial, sizeof(d->cert_serial), "%s", d->prior.cert_serial);
			d->resumed = 1;
			if (station_save_cert(w->eng->st, d->info.serial, cert, &d->err) < 0) {
				eng_stop_write(w->eng, &d->err);
				return eng_fail(d, "SIGN", ADV_DISK);
			}
			return eng_journal(w, d, "resume", "ok", json_pack("{s:s}", "cert_serial", d->cert_serial));
		}
		/* Another key than the certified one: the old certificate is
		 * revoked before a new one exists (never two live certificates). */
		if (eng_journal(w, d, "revoke", "ok", json_pack("{s:s,s:s}", "cert_serial", d->prior.cert_serial,
		        "reason", "superseded")) < 0)
			return eng_fail(d, "SIGN", ADV_ENGINEERING);
		d->prior.cert_len = 0;
		d->prior.cert_serial[0] = '\0';
		devindex_put(st->index, &d->prior);
	}

	d->step = "JOURNAL";
	ui_step(w->eng->u, w->idx, d->step);
	if (station_quota_take(st, &d->err) < 0) {
		eng_journal(w, d, "quota", "fail", json_pack("{s:s}", "error", d->err.msg));
		if (d->err.code == ST_E_QUOTA)
			eng_set_stop(w->eng, RUN_STOP_QUOTA, d->err.msg);
		return eng_fail(d, "JOURNAL", ADV_ENGINEERING);
	}
	if (station_cert_serial(d->cert_serial) < 0) {
		st_err_set(&d->err, ST_E_CRYPTO, "no random serial number");
		return eng_fail(d, "JOURNAL", ADV_ENGINEERING);
	}
	{
		char hex[65];

		st_hex(h, 32, hex);
		if (eng_journal(w, d, "issuing", "ok", json_pack("{s:s,s:s}", "cert_serial", d->cert_serial,
		        "pubkey_sha256", hex)) < 0)
			return eng_fail(d, "JOURNAL", ADV_ENGINEERING);
	}

	d->step = "SIGN";
	ui_step(w->eng->u, w->idx, d->step);
	if (station_issue(st, d->csr, &d->info, d->cert_serial, &cert, &d->err) < 0) {
		if (d->err.code == ST_E_VERIFY) /* the HSM refused this CSR: this device only */
			return eng_fail(d, "SIGN", ADV_QUARANTINE);
		eng_set_stop(w->eng, RUN_STOP_HSM, d->err.msg);
		return eng_fail(d, "SIGN", ADV_ENGINEERING);
	}
	set_cert(d, cert);
	{
		char announced[41];

		/* The certificate must carry the serial the "issuing" record named. */
		snprintf(announced, sizeof(announced), "%s", d->cert_serial);
		if (d->cert_len <= 0 || eng_cert_serial_hex(cert, d->cert_serial) < 0 ||
		    strcmp(announced, d->cert_serial) != 0) {
			st_err_set(&d->err, ST_E_CRYPTO, "the HSM issued serial %s, the journal announced %s", d->cert_serial,
			    announced);
			return eng_fail(d, "SIGN", ADV_ENGINEERING);
		}
	}
	if (eng_journal(w, d, "issued", "ok", cert_details(d)) < 0)
		return eng_fail(d, "SIGN", ADV_ENGINEERING);
	eng_index_update(w, d, DEV_SEEN, 1, 0);
	if (station_save_cert(st, d->info.serial, d->cert, &d->err) < 0) {
		/* The next device would fail the same way: stop, as for the journal. */
		eng_stop_write(w->eng, &d->err);
		return eng_fail(d, "SIGN", ADV_DISK);
	}
	return 0;
}

int
eng_step_install(struct worker *w, struct dev *d)
{
	station *st = w->eng->st;

	d->step = "INSTALL";
	ui_step(w->eng->u, w->idx, d->step);
	if (d->cert_len > JIG_BLOB_MAX) {
		st_err_set(&d->err, ST_E_CONFIG, "certificate of %d bytes exceeds the protocol's %d", d->cert_len,
		    JIG_BLOB_MAX);
		return eng_fail(d, "INSTALL", ADV_ENGINEERING);
	}
	w->req.u.install_req.slot = st->slot;
	w->req.u.install_req.cert.len = (size_t)d->cert_len;
	memcpy(w->req.u.install_req.cert.data, d->cert_der, (size_t)d->cert_len);
	if (eng_call(w, JIG_CMD_INSTALL_CERT, &d->err) < 0)
		return eng_fail(d, "INSTALL", ADV_RESEAT);
	w->req.u.slot_req.slot = st->slot;
	if (eng_call(w, JIG_CMD_READ_CERT, &d->err) < 0)
		return eng_fail(d, "INSTALL", ADV_RESEAT);
	if (w->resp.u.cert.len != (size_t)d->cert_len || memcmp(w->resp.u.cert.data, d->cert_der, w->resp.u.cert.len)) {
		st_err_set(&d->err, ST_E_VERIFY, "certificate read back from the SE differs from the one installed "
		                                 "(%zu bytes read, %d written)", w->resp.u.cert.len, d->cert_len);
		return eng_fail(d, "INSTALL", ADV_SCRAP);
	}
	if (eng_journal(w, d, "install", "ok", json_pack("{s:s}", "cert_serial", d->cert_serial)) < 0)
		return eng_fail(d, "INSTALL", ADV_ENGINEERING);
	eng_index_update(w, d, DEV_SEEN, 1, 1);
	return 0;
}

int
eng_step_lock(struct worker *w, struct dev *d)
{
	d->step = "LOCK";
	ui_step(w->eng->u, w->idx, d->step);
	if (!w->eng->st->lock)
		return eng_journal(w, d, "lock", "skipped", json_pack("{s:s}", "reason", "engineering mode: lock: false"));
	if (eng_journal(w, d, "locking", "ok", NULL) < 0)
		return eng_fail(d, "LOCK", ADV_ENGINEERING);
	if (eng_call(w, JIG_CMD_LOCK, &d->err) < 0)
		return eng_fail(d, "LOCK", ADV_RESEAT);
	if (w->resp.u.lock.lifecycle != JIG_LC_PROVISIONED) {
		st_err_set(&d->err, ST_E_VERIFY, "SE reports lifecycle %s after LOCK, not provisioned",
		    jig_lifecycle_name(w->resp.u.lock.lifecycle));
		return eng_fail(d, "LOCK", ADV_SCRAP);
	}
	return eng_journal(w, d, "lock", "ok", json_pack("{s:s}", "lifecycle", "provisioned"));
}

/* The SE is locked already: it is ours only if the journal shows we issued
 * the certificate it holds and were about to lock it (a crash after LOCK),
 * or that it passed with it (a crash after the "done" record, before the
 * device was released): then it passes again, nothing is issued. */
static int
resume_locked(struct worker *w, struct dev *d)
{
	int passed = d->has_prior && d->prior.state == DEV_PASSED;

	if (!d->has_prior || !d->prior.cert_len) {
		st_err_set(&d->err, ST_E_STATE, "SE is already locked (lifecycle provisioned)%s",
		    passed ? " and this station provisioned it before" : "");
		return eng_fail(d, "POSTURE", ADV_LOCKED);
	}
	w->req.u.slot_req.slot = w->eng->st->slot;
	if (eng_call(w, JIG_CMD_READ_CERT, &d->err) < 0)
		return eng_fail(d, "POSTURE", ADV_RESEAT);
	if (w->resp.u.cert.len != d->prior.cert_len || memcmp(w->resp.u.cert.data, d->prior.cert, d->prior.cert_len)) {
		st_err_set(&d->err, ST_E_STATE, "SE is locked with a certificate this station did not install");
		return eng_fail(d, "POSTURE", ADV_LOCKED);
	}
	snprintf(d->cert_serial, sizeof(d->cert_serial), "%s", d->prior.cert_serial);
	d->resumed = 1;
	if (passed)
		return 0; /* its lock record is in the journal already */
	return eng_journal(w, d, "lock", "ok", json_pack("{s:s,s:b}", "lifecycle", "provisioned", "resumed", 1));
}

static int
provision(struct worker *w, struct dev *d)
{
	station *st = w->eng->st;
	int keep;

	d->has_prior = devindex_get(st->index, d->info.serial, &d->prior) == 0;
	char fw[32];

	snprintf(fw, sizeof(fw), "%u.%u.%u", d->info.firmware >> 24, (d->info.firmware >> 16) & 0xff,
	    d->info.firmware & 0xffff);
	if (eng_journal(w, d, "identify", "ok", json_pack("{s:s,s:s,s:s}", "model", d->info.model, "firmware", fw,
	        "lifecycle", jig_lifecycle_name(d->info.lifecycle))) < 0)
		return eng_fail(d, "IDENTIFY", ADV_ENGINEERING);
	if (eng_step_posture(w, d) < 0)
		return -1;
	if (d->info.lifecycle == JIG_LC_PROVISIONED)
		return resume_locked(w, d);
	if (d->info.lifecycle != JIG_LC_FACTORY) {
		st_err_set(&d->err, ST_E_STATE, "SE lifecycle is %s; only factory SEs are provisioned here",
		    jig_lifecycle_name(d->info.lifecycle));
		return eng_fail(d, "POSTURE", ADV_LOCKED);
	}
	if (d->has_prior && d->prior.state == DEV_PASSED) {
		st_err_set(&d->err, ST_E_STATE, "the journal shows SE %s provisioned already, yet it is in factory state "
		                                "(duplicate serial or cloned SE)", d->info.serial);
		return eng_fail(d, "POSTURE", ADV_QUARANTINE);
	}
	if (eng_journal(w, d, "posture", "ok", NULL) < 0)
		return eng_fail(d, "POSTURE", ADV_ENGINEERING);
	if (eng_stopping(w->eng))
		return 1;
	if (eng_step_auth(w, d) < 0 || eng_journal(w, d, "auth", "ok", NULL) < 0)
		return -1;
	/* Resuming a device with a live certificate: keep its key if it has one. */
	keep = d->has_prior && d->prior.cert_len > 0;
	if (eng_step_keygen(w, d, keep) < 0 || eng_step_csr_verify(w, d) < 0)
		return -1;
	if (eng_stopping(w->eng))
		return 1;
	if (eng_step_sign(w, d) < 0 || eng_step_install(w, d) < 0 || eng_step_lock(w, d) < 0)
		return -1;
	return 0;
}

/* ---- one worker per jig ------------------------------------------------ */

int
eng_open_jig(struct worker *w, st_err *err)
{
	jig_transport *t = NULL;
	station *st = w->eng->st;
	uint8_t c;

	if (jig_transport_open(w->uri, &t, err) < 0)
		return -1;
	w->client = jig_client_new(t); /* owns t */
	if (!w->client) {
		jig_transport_free(t);
		return st_err_set(err, ST_E_NOMEM, "jig %s: out of memory", w->uri);
	}
	for (c = 1; c <= JIG_CMD_LAST; c++)
		if (st->timeouts[c] > 0)
			jig_client_set_timeout(w->client, c, st->timeouts[c]);
	jig_client_set_retries(w->client, st->retries);
	if (jig_client_hello(w->client, &w->resp, err) < 0) {
		eng_drop_client(w);
		return -1;
	}
	return 0;
}

static int done_claiming(struct engine *e);

/* Wait for a device: SE_INFO answers NO_DUT while the jig is empty.  With
 * several jigs, one whose panel ran out must stop waiting once the others
 * have taken the last of --count. */
int
eng_wait_device(struct worker *w, struct dev *d, st_err *err)
{
	int noted = 0;

	while (!eng_stopping(w->eng) && !done_claiming(w->eng)) {
		if (eng_call(w, JIG_CMD_SE_INFO, err) == 0) {
			d->info = w->resp.u.se_info;
			return 0;
		}
		if (err->code != ST_E_REMOTE || err->remote != JIG_E_NO_DUT)
			return -1;
		/* A device seated but not powered (a jig that does not power
		 * DUTs by itself, or one handed back): power it on. */
		if (eng_call(w, JIG_CMD_DUT_STATUS, err) < 0)
			return -1;
		if (w->resp.u.dut.present && !w->resp.u.dut.powered) {
			w->req.u.power_req.action = JIG_POWER_ON;
			if (eng_call(w, JIG_CMD_DUT_POWER, err) < 0)
				return -1;
			continue;
		}
		if (!noted++)
			ui_jig_note(w->eng->u, w->idx, "waiting for a device");
		sleep_ms(w->eng, 100);
	}
	return 1;
}

static int
claim(struct engine *e)
{
	int ok;

	pthread_mutex_lock(&e->lock);
	ok = !e->count || e->claimed < e->count;
	if (ok)
		e->claimed++;
	pthread_mutex_unlock(&e->lock);
	return ok;
}

static int
done_claiming(struct engine *e)
{
	int done;

	pthread_mutex_lock(&e->lock);
	done = e->count && e->claimed >= e->count;
	pthread_mutex_unlock(&e->lock);
	return done;
}

void
eng_release(struct worker *w)
{
	st_err err;

	w->req.u.power_req.action = JIG_POWER_RELEASE;
	if (eng_call(w, JIG_CMD_DUT_POWER, &err) < 0) {
		ui_jig_note(w->eng->u, w->idx, err.msg);
		eng_drop_client(w);
		w->pending_release = 1;
		return;
	}
	w->pending_release = 0;
}

void
eng_dev_clear(struct dev *d)
{
	EVP_PKEY_free(d->attest_key);
	X509_REQ_free(d->csr);
	X509_free(d->cert);
	OPENSSL_free(d->cert_der);
}

/* One SE serial on one jig at a time: the same serial on two jigs at once is
 * two SEs claiming one identity, and resume would let the second supersede
 * the first.  The journal catches a clone that comes after a pass; this
 * catches the one that comes at the same moment. */
static int
take_serial(struct worker *w, struct dev *d)
{
	struct engine *e = w->eng;
	size_t i;
	int ret = 0;

	pthread_mutex_lock(&e->lock);
	for (i = 0; i < e->nworkers; i++)
		if (&e->workers[i] != w && strcmp(e->workers[i].active, d->info.serial) == 0) {
			st_err_set(&d->err, ST_E_STATE, "SE %s is being provisioned on jig %s at this moment: two SEs with "
			                                "one serial (cloned SE?)", d->info.serial, e->workers[i].uri);
			ret = eng_fail(d, "POSTURE", ADV_QUARANTINE);
			break;
		}
	if (ret == 0)
		snprintf(w->active, sizeof(w->active), "%s", d->info.serial);
	pthread_mutex_unlock(&e->lock);
	return ret;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct engine *e = w->eng;
	struct dev *d = malloc(sizeof(*d));
	unsigned backoff = 0;
	st_err err;

	if (!d) {
		eng_set_fatal(e, "out of memory");
		pthread_mutex_lock(&e->lock);
		e->running--;
		pthread_mutex_unlock(&e->lock);
		return NULL;
	}
	while (!eng_stopping(e) && !done_claiming(e)) {
		int rc;

		if (!w->client) {
			if (eng_open_jig(w, &err) < 0) {
				char note[1200];

				snprintf(note, sizeof(note), "%s; retrying", err.msg);
				if (backoff++ == 0 || backoff % 10 == 0)
					ui_jig_note(e->u, w->idx, note);
				sleep_ms(e, backoff < 5 ? 200 : 1000);
				continue;
			}
			if (backoff)
				ui_jig_note(e->u, w->idx, "jig connected again");
			backoff = 0;
		}
		if (w->pending_release) {
			eng_release(w);
			continue;
		}
		memset(d, 0, sizeof(*d));
		if ((rc = eng_wait_device(w, d, &err)) != 0) {
			if (rc < 0) {
				ui_jig_note(e->u, w->idx, err.msg);
				eng_drop_client(w);
			}
			continue;
		}
		if (!claim(e))
			break;
		ui_device_start(e->u, w->idx, d->info.serial);
		rc = take_serial(w, d) < 0 ? -1 : provision(w, d);
		if (rc == 0) {
			if (eng_journal(w, d, "done", "pass", json_pack("{s:s,s:b}", "cert_serial", d->cert_serial, "resumed",
			        d->resumed)) >= 0) {
				eng_index_update(w, d, DEV_PASSED, 1, 1);
				ui_pass(e->u, w->idx, d->info.serial, d->cert_serial, d->resumed);
				eng_release(w);
			} else {
				ui_fail(e->u, w->idx, d->info.serial, "DONE", d->err.msg, advice_text[d->advice]);
			}
		} else if (rc > 0) {
			/* Stopped (Ctrl-C) before anything was signed: the device stays
			 * in the jig and resumes on the next run. */
			eng_journal(w, d, "abandoned", "abandoned", json_pack("{s:s}", "reason", "the run was stopped"));
			ui_jig_note(e->u, w->idx, "run stopped: device left in the jig, it resumes on the next run");
		} else {
			eng_journal(w, d, d->step, "fail", json_pack("{s:s,s:s}", "error", d->err.msg, "advice",
			    advice_text[d->advice]));
			eng_index_update(w, d, DEV_FAILED, 0, 0);
			ui_fail(e->u, w->idx, d->info.serial, d->step, d->err.msg, advice_text[d->advice]);
			if (eng_is_link_error(&d->err))
				eng_drop_client(w);
			if (w->client)
				eng_release(w);
			else
				w->pending_release = 1;
		}
		pthread_mutex_lock(&e->lock);
		w->active[0] = '\0';
		pthread_mutex_unlock(&e->lock);
		eng_dev_clear(d);
	}
	free(d);
	eng_drop_client(w);
	pthread_mutex_lock(&e->lock);
	e->running--;
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

int
engine_run(station *st, const char *const *jigs, size_t njigs, unsigned count, volatile sig_atomic_t *stop,
    volatile sig_atomic_t *quit, ui *u, engine_result *res)
{
	/* Static: on *quit the workers go on using it until the process exits. */
	static struct engine e;
	struct worker *w = calloc(njigs, sizeof(*w));
	size_t i, started = 0, reachable = 0;
	st_err err, first_err = { 0 };

	memset(res, 0, sizeof(*res));
	if (!w)
		return -1;
	e = (struct engine){ .st = st, .u = u, .stop = stop, .count = count };
	e.workers = w;
	e.nworkers = njigs;
	pthread_mutex_init(&e.lock, NULL);
	if (eng_keys_load(&e, &err) < 0) {
		eng_set_fatal(&e, err.msg);
		njigs = 0;
	}
	/* A jig that cannot be reached at all when the run starts is a wrong
	 * URI or an unplugged jig: with none reachable, stop with a
	 * configuration error (exit 2) rather than retry forever.  A jig lost
	 * later, or one of several that is down, is reopened by its worker. */
	for (i = 0; i < njigs; i++) {
		w[i].eng = &e;
		w[i].idx = i;
		w[i].uri = jigs[i];
		if (eng_open_jig(&w[i], &err) == 0)
			reachable++;
		else if (!first_err.msg[0])
			first_err = err;
	}
	if (!reachable && njigs) {
		char msg[sizeof(e.fatal_msg)];

		snprintf(msg, sizeof(msg), "%s: %.800s; check the jig URI (--jig or the recipe's jig.uri), that the jig is "
		    "powered and connected, then run again", njigs == 1 ? "the jig cannot be reached" :
		    "none of the jigs can be reached, the first", first_err.msg);
		eng_set_fatal(&e, msg);
		njigs = 0; /* start no worker */
	}
	for (i = 0; i < njigs; i++) {
		pthread_mutex_lock(&e.lock);
		e.running++;
		pthread_mutex_unlock(&e.lock);
		if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0) {
			eng_set_fatal(&e, "cannot start a worker thread");
			pthread_mutex_lock(&e.lock);
			e.running--;
			pthread_mutex_unlock(&e.lock);
			break;
		}
		started++;
	}
	for (;;) {
		unsigned running;

		pthread_mutex_lock(&e.lock);
		running = e.running;
		pthread_mutex_unlock(&e.lock);
		if (!running || (quit && *quit))
			break;
		ui_tick(u);
		nanosleep(&(struct timespec){ 0, 250000000L }, NULL);
	}
	if (quit && *quit) {
		/* Quit now: the workers are left as they are (the caller exits); a
		 * device in progress resumes on the next run, as after a crash. */
		ui_counts(u, &res->passed, &res->failed);
		res->end = RUN_STOP_QUIT;
		return 0;
	}
	for (i = 0; i < started; i++)
		pthread_join(w[i].thread, NULL);
	ui_counts(u, &res->passed, &res->failed);
	res->fatal = e.fatal;
	snprintf(res->fatal_msg, sizeof(res->fatal_msg), "%s", e.fatal_msg);
	if (e.fatal)
		res->end = e.end;
	else if (*stop == SIGTERM)
		res->end = RUN_STOP_SIGTERM;
	else if (*stop == SIGHUP)
		res->end = RUN_STOP_SIGHUP;
	else if (*stop)
		res->end = RUN_STOP_INTERRUPT;
	else
		res->end = RUN_COMPLETED;
	eng_keys_free(&e);
	pthread_mutex_destroy(&e.lock);
	free(w);
	return 0;
}
