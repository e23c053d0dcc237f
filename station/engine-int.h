/* Internals shared by the factory run (engine.c), the steps (steps.c), the
 * key registry (keys.c) and rework (rework.c): the worker and device state
 * and the steps both paths walk. */
#ifndef STATION_ENGINE_INT_H
#define STATION_ENGINE_INT_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "engine.h"
#include "station.h"

/* What went wrong with a device, for the operator: the step, what happened
 * (err), and what to do. */
enum advice {
	ADV_RESEAT,      /* communication: re-seat and retry */
	ADV_WRONG_PART,  /* posture: not the part this recipe is for */
	ADV_LOCKED,      /* already provisioned */
	ADV_QUARANTINE,  /* attestation or identity failed: possible counterfeit */
	ADV_ENGINEERING, /* configuration on our side */
	ADV_SCRAP,       /* the SE misbehaves after our checks passed */
	ADV_FACTORY,     /* not provisioned yet: the factory path's job */
	ADV_DISK,        /* the station cannot write its records: the run stops */
};

extern const char *const advice_text[];
/* The same as stable names for --json (docs/events.schema.json "disposition"). */
extern const char *const advice_name[]; /* steps.c */

struct engine {
	station *st;
	ui *u;
	volatile sig_atomic_t *stop;
	pthread_mutex_t lock;
	unsigned count, claimed;
	unsigned running; /* workers still going */
	unsigned jigs_out; /* workers that took their jig out of the run */
	int fatal;
	int halting;            /* a worker is journaling the anomaly halt */
	run_end end;            /* why, when fatal */
	char fatal_msg[1024];
	struct worker *workers; /* all of them, to see which SE each is working on */
	size_t nworkers;
	struct keyset *keys;    /* keys certified or offered (keys.c; under lock) */
	int metrics_failing;    /* the last metrics write failed (the operator was told; under lock) */
};

#define ENG_BAUD_CONFIRM_MS 500 /* SET_BAUD: how long the jig waits for a frame at the new rate */

struct worker {
	struct engine *eng;
	size_t idx;
	const char *uri;
	jig_client *client;
	int pending_release;  /* a failed device is still in the jig */
	json_t *extra;        /* merged into every record's details (rework: serials, reason, who) */
	char active[JIG_STR_MAX + 1]; /* the SE serial this worker is provisioning ("" = none; engine lock) */
	/* Attempts in a row that got no device through (the jig cannot be
	 * opened, SE_INFO or a release fails, power-on does not take): each is
	 * followed by a longer pause, and after ENG_JIG_ATTEMPTS the jig is
	 * taken out of the run. */
	unsigned attempts;
	double trouble_since;
	char trouble[1200];    /* the condition last told the operator ("" = none) */
	int open_failed;       /* the last attempt could not open the jig */
	uint32_t caps;        /* the jig's HELLO capabilities */
	jig_msg req, resp;
	uint8_t spoke;        /* the highest protocol version this jig negotiated in this run: never less again */
	uint32_t baud_failed; /* a line rate SET_BAUD could not switch this jig to in this run: not tried again */
	/* 1.2: the certificate INSTALL_CERT deltas are made against (the first
	 * this worker installed), sent with CERT_TEMPLATE when the jig lacks it. */
	uint8_t tmpl[JIG_BLOB_MAX];
	size_t tmpl_len;
	uint8_t tmpl_sha256[JIG_SHA256_LEN];
	pthread_t thread;
};

/* A jig that fails this many times in a row without getting a device
 * through is taken out of the run; the pauses between attempts double from
 * ENG_JIG_PAUSE_MS up to ENG_JIG_PAUSE_MAX_MS (about 22 s in all). */
#define ENG_JIG_ATTEMPTS 10
#define ENG_JIG_PAUSE_MS 200
#define ENG_JIG_PAUSE_MAX_MS 4000

struct dev {
	jig_se_info info;
	const char *step;
	enum advice advice;
	st_err err;
	EVP_PKEY *attest_key;
	jig_blob pubkey;
	X509_REQ *csr;
	X509 *cert;
	uint8_t *cert_der;
	int cert_len;
	char cert_serial[ST_CERT_SERIAL_HEX_LEN + 1];
	history_device prior;
	int has_prior;
	int resumed;
	int chain_from;        /* where resolve_chain found the vendor chain (chains.h CHAIN_*) */
	struct tpm_state *tpm; /* a TPM device's session (tpm-steps.c), NULL for an SE */
};

/* engine.c: the run's state, shared by the workers. */
int eng_stopping(struct engine *e);
void eng_set_fatal(struct engine *e, const char *msg); /* RUN_STOP_CONFIG */
/* Stop the run for this reason (the first reason set is kept). */
void eng_set_stop(struct engine *e, run_end end, const char *msg);
/* A write to the journal or certs/ failed: stop the run, disk full (ENOSPC,
 * EDQUOT) or another error, with advice saying where to free space. */
void eng_stop_write(struct engine *e, const st_err *err);

/* engine.c: a worker's jig and device. */
int eng_open_jig(struct worker *w, st_err *err);
/* SE_INFO until a device is present: 0 found, 1 stopped, -1 error. */
int eng_wait_device(struct worker *w, struct dev *d, st_err *err);
/* DUT_POWER release; on failure the client is dropped and the release
 * stays pending (-1, err says why). */
int eng_release(struct worker *w, st_err *err);
void eng_dev_clear(struct dev *d);

/* steps.c: one jig command with w->req (type set here) into w->resp. */
int eng_call(struct worker *w, uint8_t cmd, st_err *err);
void eng_drop_client(struct worker *w);
/* Communication trouble (timeout, disconnect, garbage) rather than a refusal. */
int eng_is_link_error(const st_err *err);
/* Append a durable record for the device; a journal failure stops the run. */
int eng_journal(struct worker *w, struct dev *d, const char *step, const char *result, json_t *details);
/* Tell the operator the device failed at step: d->err, d->advice, the
 * certificate it was issued (if any), with stable names for --json. */
void eng_report_fail(struct worker *w, struct dev *d, const char *step);
/* jig_client's retry hook (ctx: the worker): the jig's status line and a
 * retry event. */
void eng_on_retry(void *ctx, uint8_t cmd, int attempt, int attempts, const char *why);
/* What kind of failure, as a stable name for --json (the schema's "code")
 * and the metrics' reason label. */
const char *eng_failure_code(const st_err *err);
/* Mark the device failed at step with advice; returns -1. */
int eng_fail(struct dev *d, const char *step, enum advice adv);

/* steps.c: the steps, in the order the factory path walks them. */
int eng_step_identify(struct worker *w, struct dev *d);
int eng_step_posture(struct worker *w, struct dev *d);
int eng_step_auth(struct worker *w, struct dev *d);
int eng_step_keygen(struct worker *w, struct dev *d, int keep);
int eng_step_csr_verify(struct worker *w, struct dev *d);
int eng_step_sign(struct worker *w, struct dev *d);
/* JOURNAL + SIGN of one certificate, for eng_step_sign and a TPM's IAK: the
 * quota, an "issuing" record naming serial (chosen here) before the HSM
 * signs, the serial checked, the "issued" record with the certificate,
 * certs/FILE.pem.  The key certified is the CSR's (d->csr) or, when key is
 * set, key itself.  *out: the certificate once the HSM signed it (the
 * caller's, also when a later part fails). */
typedef struct eng_issue_req {
	const uint8_t *pubkey_sha256; /* SHA-256 of the SPKI certified, for the "issuing" record */
	EVP_PKEY *key;                /* NULL: the CSR's key */
	const char *role;             /* a TPM's "iak" or "idevid" in both records; NULL: none */
	const char *file;             /* certs/FILE.pem */
} eng_issue_req;
int eng_issue(struct worker *w, struct dev *d, const eng_issue_req *rq, char serial[ST_CERT_SERIAL_HEX_LEN + 1],
    X509 **out);
/* Revoke (superseded, why) every certificate the journal holds live for the
 * device: before a TPM gets new ones, every old one goes (it has two). */
int eng_revoke_live(struct worker *w, struct dev *d, const char *why);
int eng_step_install(struct worker *w, struct dev *d);
int eng_step_lock(struct worker *w, struct dev *d);
/* The jig negotiated protocol 1.1 (vendor chain and read-back by digest, lock receipt). */
int eng_v11(struct worker *w);
int eng_v12(struct worker *w);
/* READ_CERT of the recipe's slot compared with cert (1.1: by SHA-256):
 * 1 the same, 0 not, -1 with d->err when the exchange failed. */
int eng_read_back(struct worker *w, struct dev *d, const uint8_t *cert, size_t len);
/* LOCK, and under 1.1 the SE's lock receipt over a fresh nonce for cert,
 * verified with the attestation key POSTURE verified (se.lock_receipt).
 * *details: what the "lock" record says. */
int eng_lock(struct worker *w, struct dev *d, const uint8_t *cert, size_t cert_len, json_t **details);
int eng_cert_serial_hex(X509 *cert, char out[ST_CERT_SERIAL_HEX_LEN + 1]);

/* tpm-steps.c: a TPM 2.0 device (recipe se.family tpm2).  tpm_identify is
 * the TPM's SE_INFO (TPM_INFO, filling d->info); tpm_provision its factory
 * path (0 pass, 1 stopped before signing, -1 failed). */
int tpm_identify(struct worker *w, struct dev *d, st_err *err);
int tpm_provision(struct worker *w, struct dev *d);
void tpm_state_free(struct tpm_state *t);
/* The parts rework walks (rework.c): the "identify" record and POSTURE (not
 * its record); the identity proof (the TPM's NV holds der, the IDevID
 * certificate from the journal, and its key signs a fresh challenge,
 * TPM_REWORK_SIGN); TPM_RETIRE and TPM_INFO again (the same EK, no
 * certificate index); KEYGEN to LOCK as the factory path (0, 1 stopped,
 * -1 failed). */
int tpm_identify_posture(struct worker *w, struct dev *d);
int tpm_prove_identity(struct worker *w, struct dev *d, X509 *idevid_cert, const uint8_t *der, size_t len);
int tpm_retire(struct worker *w, struct dev *d);
int tpm_issue(struct worker *w, struct dev *d);

/* keys.c: the keys offered in this run (before workers start); a key
 * KEYGEN answered must be new to the journal's history and to this run
 * (keep: the SE's own certified key is allowed, the factory path's resume),
 * else the device fails at KEYGEN. */
int eng_keys_load(struct engine *e, st_err *err);
int eng_key_fresh(struct worker *w, struct dev *d, const uint8_t h[32], int keep);
void eng_keys_free(struct engine *e);

#endif
