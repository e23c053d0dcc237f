/* The shared context of a station command: the recipe, the HSM and its keys,
 * the SE vendor roots, the journal and its history.  The functions here
 * are the engine's only way to reach recipes/, hsm/ and audit/. */
#ifndef STATION_STATION_H
#define STATION_STATION_H

#include <pthread.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "audit.h"
#include "history.h"
#include "jig.h"
#include "st.h"

struct recipe;
struct cli_pin;
struct hsm_ctx;
struct hsm_key;

#define STATION_OPERATOR_MAX 127 /* bytes of an operator's name */

typedef struct station {
	struct recipe *rcp;
	char recipe_signer[512];  /* who signed the recipe, "" when it runs unsigned */
	int recipe_sig_unchecked; /* it has a .sig that nothing checked (no signers known) */
	char operator_name[STATION_OPERATOR_MAX + 1];
	/* from the recipe, in the engine's terms */
	uint8_t slot;
	uint8_t algorithm;        /* JIG_ALG_* */
	int curve_nid;
	int lock;                 /* lock the lifecycle at the end (false only in engineering mode) */
	int lock_receipt;         /* the SE must sign a lock receipt (se.lock_receipt) */
	int timeouts[JIG_CMD_LAST + 1];
	int retries;
	unsigned quota_run, quota_shift;  /* 0 = no limit */
	/* HSM */
	struct hsm_ctx *hsm;
	struct hsm_key *ca_key, *tool_key, *audit_key;
	X509 *ca_cert, *audit_cert;
	char ca_key_id[ST_KEY_ID_HEX]; /* the intermediate's subjectKeyIdentifier, hex: "issuing" records name it */
	STACK_OF(X509) *ca_chain;   /* intermediate's issuers, for bundles */
	struct sv_trust *vendor_trust; /* the recipe's SE vendor roots, and intermediates verified up to them */
	struct chain_cache *chains;    /* vendor chains by digest (protocol 1.1), on disk beside the journal */
	int family;                 /* RECIPE_FAMILY_*: the SE is an applet or a TPM 2.0 */
	STACK_OF(X509) *tpm_vendor; /* family tpm2: se.vendor_root's certificates (roots and intermediates) */
	/* journal and what it says */
	audit_signer signer;        /* the audit key, sealing batches as they close */
	audit_journal *journal;
	history *history;           /* what the journal says (history.h): every record appended goes in */
	char certs_dir[4096];
	pthread_mutex_t quota_lock;
	unsigned issued_run;
	/* The shift quota (quota.c), from the whole journal: release records so
	 * far, the number of the last valid one (0: none) and its time, and the
	 * certificates announced ("issuing") since it. */
	unsigned shift_releases, shift_no, shift_issued;
	char shift_since[40];
	struct metrics *metrics;    /* station run's metrics file (metrics.h), or NULL; not owned */
} station;

enum station_open_flags {
	STATION_OPEN_HSM = 1,      /* log in to the token, find the keys */
	STATION_OPEN_JOURNAL = 2,  /* open the journal and read its history */
};

/* Load and check everything a command needs; on error, err says what and
 * the command exits 2.  require_signed: refuse an unsigned/altered recipe.
 * pin: the command's PIN options (cli.h; NULL or none given: the recipe's
 * PIN source). */
int station_open(const char *recipe_path, const char *operator_name, int flags, int require_signed,
    const char *trust_pem, const struct cli_pin *pin, station **out, st_err *err);
void station_close(station *st);
/* The operator's name goes into every record and onto screens and
 * reports: at most STATION_OPERATOR_MAX bytes, no control
 * characters (UTF-8 is fine).  station_open checks it; ST_E_CONFIG. */
int station_operator_check(const char *name, st_err *err);

/* The recipe signature gate of every command that reads a recipe: the
 * station config's policy, require_signed and trust_pem (see
 * recipe_policy_check).  On 0, signer holds the signer's subject ("" when
 * it runs unsigned) and *unchecked is set when a FILE.sig lies beside it
 * that nothing could check: the command warns. */
int station_recipe_policy(const struct recipe *r, int require_signed, const char *trust_pem, char *signer,
    size_t signer_cap, int *unchecked, st_err *err);

/* Append a journal record; it is on disk when this returns, unless lazy
 * (a record that precedes no effect: the next durable one carries it),
 * and in st->history.  details is consumed (may be NULL). */
int station_journal(station *st, const char *jig, const char *device, const char *step, const char *result,
    json_t *details, int lazy, st_err *err);
/* Posture policy of the recipe (model, firmware, required lifecycle). */
int station_posture(station *st, const jig_se_info *info, st_err *err);
/* ECDSA-SHA256 with the tool key (for the SE's authentication challenge). */
int station_tool_sign(station *st, const uint8_t *msg, size_t len, uint8_t **sig, size_t *sig_len, st_err *err);
/* Pick the serial of the next certificate: the "issuing" record names it
 * before the HSM signs, so no signed certificate is unknown to the journal. */
int station_cert_serial(char hex[ST_CERT_SERIAL_HEX_LEN + 1]);
/* Sign a leaf for a verified CSR of the SE described by info, per the
 * recipe's profile; counts against the quota (ST_E_QUOTA when exhausted). */
int station_issue(station *st, X509_REQ *csr, const jig_se_info *info, const char *serial_hex, X509 **out,
    st_err *err);
/* The same for a key attested otherwise (a TPM's IAK, tpm-steps.c): its
 * certificate per the recipe's profile with the TCG's tcg-kp-AIKCertificate
 * extended key usage instead of the recipe's. */
int station_issue_iak(station *st, EVP_PKEY *key, const jig_se_info *info, const char *serial_hex, X509 **out,
    st_err *err);
/* ---- quota.c: the quotas ---- */

/* Reserve one issuance from the run's and the shift's quota (ST_E_QUOTA
 * when either is used up). */
int station_quota_take(station *st, st_err *err);
/* ST_E_QUOTA when the shift quota is used up: nothing may be issued. */
int station_quota_check(station *st, st_err *err);
/* Count the shift from the journal's history (station_open does, once the
 * history is loaded). */
void station_quota_load(station *st);
/* Sign a release of the shift quota with key, which must belong to a
 * certificate of quota.release_signers (ST_E_VERIFY otherwise), and journal
 * it; signer gets the certificate's subject. */
int station_quota_release(station *st, struct hsm_key *key, const char *reason, char *signer, size_t signer_len,
    st_err *err);
/* ---- halt.c: the anomaly halt (recipe halt:) ---- */

/* 1 when the history meets one of the recipe's halt rules: reason
 * ("attestation", "posture") and the operator's message; 0 otherwise. */
int station_halt_due(station *st, char *reason, size_t reason_cap, char *msg, size_t msg_cap);
/* Journal a "halt" record (durable) with a fresh halt_id; *seq and id get
 * the halt's seq and id (what a resume names). */
int station_halt(station *st, const char *reason, const char *msg, uint64_t *seq, char id[33], st_err *err);
/* ST_E_STATE, saying which halt and how to lift it, while a halt is pending. */
int station_halt_check(station *st, st_err *err);
/* Lift the pending halt with the resume at path (signed by halt.authorizers,
 * naming this halt): a "halt-resume" record; signer gets who signed it. */
int station_halt_resume(station *st, const char *path, char *signer, size_t signer_cap, st_err *err);

/* The recipe's default jig URI, or NULL. */
const char *station_default_jig(station *st);
/* Keep a copy of an issued certificate in certs_dir (SERIAL.pem). */
int station_save_cert(station *st, const char *se_serial, X509 *cert, st_err *err);
/* Close out every certificate serial an "issuing" record announced and no
 * "issued" record holds (the station stopped while the HSM signed): a
 * "revoke" record (cessationOfOperation, "unissued": true) says no
 * certificate with that serial left the station and puts the serial on the
 * CRL.  Only when no device is in progress.  note (may be NULL) is called
 * for each. */
int station_close_announced(station *st, void (*note)(const history_cert *c, void *ctx), void *ctx, st_err *err);
/* certs_dir holds live certificates only: when SERIAL.pem is the revoked
 * certificate cert_serial (hex), move it to certs_dir/revoked/SERIAL-CERTSERIAL.pem.
 * Nothing to do (0) when the copy is absent or is another certificate. */
int station_retire_cert(station *st, const char *se_serial, const char *cert_serial, st_err *err);

#endif
