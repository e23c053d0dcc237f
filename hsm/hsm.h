/* libhsm: the station's keys live in a PKCS#11 token (SoftHSMv2 in tests, a
 * real HSM on the line) and never leave it.  This library opens the token
 * through the module's own PKCS#11 function list (one instance per process,
 * so p11-kit's proxy and client modules work like SoftHSM), finds keys by
 * label and refuses any that could be
 * exported, signs with them, and builds what the station signs: leaf
 * certificates from a verified CSR, CRLs, and detached CMS signatures.
 *
 * Threads: one hsm_ctx per process, shared by every worker thread.  All
 * signing functions may be called from several threads at once on the same
 * hsm_ctx and hsm_key (a pool of PKCS#11 sessions is shared by the threads).
 * hsm_open/hsm_close and hsm_key_find/hsm_key_free are not for concurrent
 * use with each other; call them at start-up and shut-down.
 *
 * Errors go through st_err.  Configuration problems an operator fixes
 * (module path, token label, PIN, key label, key attributes, PIN file mode)
 * are ST_E_CONFIG; a CSR that does not verify is ST_E_VERIFY; a failing
 * token operation is ST_E_CRYPTO.  No message ever contains a PIN. */
#ifndef HSM_H
#define HSM_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "st.h"

typedef struct hsm_ctx hsm_ctx;
typedef struct hsm_key hsm_key;

/* ---- PIN sources: never argv ----------------------------------------- */

enum hsm_pin_kind {
	HSM_PIN_ENV = 0, /* environment variable `name` (NULL = HSM_PIN_ENV_DEFAULT) */
	HSM_PIN_FILE,    /* file `name`: first line; refused unless mode 0600 or stricter and owned by us */
	HSM_PIN_PROMPT,  /* ask the user through the program's `prompt` callback */
};

#define HSM_PIN_ENV_DEFAULT "STATION_HSM_PIN"
#define HSM_PIN_MAX 256 /* bytes, including the terminating NUL */

/* Ask the user for the user PIN of the token labelled `token` and write it,
 * NUL-terminated (a trailing newline is allowed), into pin; 0, or -1 with
 * err set (ST_E_CONFIG: no terminal, the user gave up ...).  The program
 * supplies it — libhsm itself never talks to the user — and wipes any copy
 * it made. */
typedef int (*hsm_pin_prompt_fn)(void *arg, const char *token, char pin[HSM_PIN_MAX], st_err *err);

typedef struct hsm_pin_source {
	int kind;                 /* enum hsm_pin_kind */
	const char *name;         /* variable name or file path; unused for a prompt */
	hsm_pin_prompt_fn prompt; /* HSM_PIN_PROMPT: how to ask (required) */
	void *prompt_arg;         /* handed to prompt */
} hsm_pin_source;

/* Read a PIN from src (NULL = the default environment variable) into pin
 * (HSM_PIN_MAX bytes, NUL-terminated; the caller wipes it with st_wipe).
 * token names the token in the question and in messages. */
int hsm_pin_read(const hsm_pin_source *src, const char *token, char pin[HSM_PIN_MAX], st_err *err);

/* ---- the token -------------------------------------------------------- */

/* Load the PKCS#11 module (NULL = STATION_DEFAULT_PKCS11_MODULE), find the
 * token by label (walking every slot), and log in as the user with the PIN
 * from pin (NULL = $STATION_HSM_PIN).  The PIN buffer is wiped after login.
 * Only one hsm_ctx may be open in a process at a time (a second PKCS#11
 * context would close the first one's sessions): a second hsm_open while
 * one is open fails with ST_E_STATE; share the first between threads.
 * PKCS#11 failures are reported by name (CKR_PIN_LOCKED ...) with what
 * the operator should do. */
hsm_ctx *hsm_open(const char *module_path, const char *token_label, const hsm_pin_source *pin, st_err *err);
/* Log out, close every session and unload the module.  Every hsm_key of
 * this ctx must be freed first.  hsm_close(NULL) is a no-op. */
void hsm_close(hsm_ctx *ctx);
const char *hsm_token_label(const hsm_ctx *ctx);
const char *hsm_module_path(const hsm_ctx *ctx);
/* "SoftHSM project SoftHSM v2, serial 1a2b..." into buf. */
void hsm_token_describe(const hsm_ctx *ctx, char *buf, size_t len);

/* ---- keys ------------------------------------------------------------- */

/* The private key labelled `label` (or with CKA_ID `id`).  Refused, with a
 * message naming the attribute, the label and the token, when it is
 * CKA_EXTRACTABLE or not CKA_SENSITIVE; a missing or ambiguous label is
 * ST_E_CONFIG naming the label and the token.  Free with hsm_key_free
 * before hsm_close. */
hsm_key *hsm_key_find(hsm_ctx *ctx, const char *label, st_err *err);
hsm_key *hsm_key_find_id(hsm_ctx *ctx, const uint8_t *id, size_t id_len, st_err *err);
void hsm_key_free(hsm_key *key);
const char *hsm_key_label(const hsm_key *key);
/* "EC P-256" / "EC P-384" / "RSA 3072" (static string or into buf). */
void hsm_key_describe(const hsm_key *key, char *buf, size_t len);
/* How the token protects it: "sensitive, never extractable (generated in
 * the token)" or "sensitive, not extractable (imported)". */
const char *hsm_key_protection(const hsm_key *key);
/* The key as an EVP_PKEY for OpenSSL signing APIs (CMS_sign, X509_sign):
 * borrowed, valid until hsm_key_free; signing with it happens in the token. */
EVP_PKEY *hsm_key_pkey(hsm_key *key);
/* 0 when cert's public key belongs to this token key (proved by signing a
 * fresh random challenge in the token and verifying it with the
 * certificate); -1 with ST_E_CONFIG naming label, token and subject. */
int hsm_key_matches_cert(hsm_key *key, X509 *cert, st_err *err);

/* A copy of the token's certificate object labelled `label` (public
 * objects: no login needed for it).  NULL with ST_E_NOTFOUND when the token
 * holds none, ST_E_CONFIG when several carry the label. */
X509 *hsm_cert_find(hsm_ctx *ctx, const char *label, st_err *err);

/* What real HSMs and other PKCS#11 tools trip over, for `station hsm
 * check`: a key without CKA_ID (libp11 and OpenSSL's pkcs11 engines find
 * the public half of an EC key by CKA_ID), a key that may not sign
 * (CKA_SIGN false), a certificate object with the key's CKA_ID that does
 * not belong to the key.  ST_E_CONFIG naming key, token and the fix. */
int hsm_key_audit(hsm_key *key, st_err *err);

/* The token's user-PIN flags as read before our login. */
enum {
	HSM_PIN_COUNT_LOW = 1, /* a wrong PIN was given since the last good login */
	HSM_PIN_FINAL_TRY = 2, /* one more wrong PIN locks it */
	HSM_PIN_LOCKED = 4,
};
unsigned hsm_token_pin_state(const hsm_ctx *ctx);

/* Sign msg with the key: ECDSA with SHA-256 (DER Ecdsa-Sig-Value) for an EC
 * key, RSA PKCS#1 v1.5 with SHA-256 for an RSA key.  *sig_der is malloc'd.
 * The station signs the SE's tool-authentication challenge with this. */
int hsm_sign(hsm_key *key, const uint8_t *msg, size_t len, uint8_t **sig_der, size_t *sig_len, st_err *err);

/* ---- certificate issuance -------------------------------------------- */

/* Parse a DER CSR (all bytes must be consumed). */
X509_REQ *hsm_csr_from_der(const uint8_t *der, size_t len, st_err *err);
/* The CSR d2i_X509_REQ would make of der, put together from the parts the
 * caller built der from (protocol 1.2, PROTOCOL.md section 6: one
 * UTF8String CN, the SubjectPublicKeyInfo, no attributes, ECDSA with
 * SHA-256 and the signature).  d2i_X509_REQ runs OpenSSL 3.0's key decoders
 * on the SubjectPublicKeyInfo, more work than verifying the signature;
 * this takes the legacy EC route, for a P-256 or P-384 key by name with an
 * uncompressed point only.  NULL, with nothing reported, for any other key
 * or unless the result encodes to der byte for byte: the caller parses der
 * then, and judges it. */
X509_REQ *hsm_csr_from_parts(const char *cn, const uint8_t *spki, size_t spki_len, const uint8_t *sig, size_t sig_len,
    const uint8_t *der, size_t der_len);
/* Proof of possession: the CSR's key is EC P-256 or P-384 (named curve)
 * and its self-signature verifies.  ST_E_VERIFY otherwise.  Issuing (below)
 * checks again; the signature of the exact CSR bytes verified last on the
 * same thread is not verified twice. */
int hsm_csr_verify(X509_REQ *csr, st_err *err);

/* The leaf profile, already expanded by the caller (the recipe's templates
 * filled with attested device facts).  Nothing here comes from the CSR. */
typedef struct hsm_leaf_profile {
	const char *serial_number; /* subject serialNumber: the attested SE serial (required) */
	const char *organization;  /* subject O (optional) */
	const char *org_unit;      /* subject OU (optional) */
	const char *common_name;   /* subject CN (required) */
	const char *const *san;    /* subjectAltName entries "URI:..." or "DNS:..." */
	size_t n_san;
	time_t not_before;         /* 0 = now */
	unsigned validity_days;    /* notAfter = now + days, unless one of the next two is set */
	int no_expiry;             /* notAfter = 99991231235959Z (RFC 5280 "no well-defined expiration") */
	const char *not_after;     /* fixed notAfter "YYYYMMDDHHMMSSZ" (NULL = not used) */
	const char *const *eku;    /* extendedKeyUsage names ("clientAuth") or dotted OIDs; none when 0 */
	size_t n_eku;
	const char *serial_hex;    /* certificate serial chosen in advance with hsm_serial_new(), so
	                            * the journal can name it before signing; NULL = a fresh one */
	/* hardwareModuleName (RFC 4108) in the SAN: hwType OID (dotted) and
	 * hwSerialNum (the attested device serial); NULL = none. */
	const char *hw_type;
	const char *hw_serial;
	/* A key attested by other means than a CSR (a TPM's IAK, which as a
	 * restricted key cannot sign one): certified instead of the CSR's key,
	 * with hsm_issue_leaf's csr NULL.  EC P-256 or P-384, named curve. */
	EVP_PKEY *subject_key;
	/* cRLDistributionPoints: one distribution point with this URI as its
	 * fullName (RFC 5280 4.2.1.13); NULL = none. */
	const char *crl_url;
} hsm_leaf_profile;

#define HSM_SERIAL_HEX_MAX 33
/* A fresh certificate serial: 16 random bytes, top bit clear, at least 64
 * bits, as upper-case hex (no leading zeros) into hex. */
int hsm_serial_new(char hex[HSM_SERIAL_HEX_MAX], st_err *err);

/* Issue a leaf certificate signed by ca_key (whose certificate is ca_cert):
 * re-verifies the CSR (hsm_csr_verify) and takes only its public key (or,
 * with csr NULL, certifies profile->subject_key).
 * Always: v3, a positive serial of 64 to 127 bits (profile->serial_hex, or
 * a fresh random one), subject and SAN from the
 * profile, keyUsage digitalSignature (critical), basicConstraints CA:FALSE
 * (critical), SKI (SHA-1 of the public key), AKI (the CA's SKI).  Signed
 * with ECDSA-SHA256 for a P-256 CA, ECDSA-SHA384 for P-384, RSA PKCS#1 v1.5
 * SHA-256 for RSA >= 2048.  The first use of a (ca_key, ca_cert) pair
 * checks that they match.  *out is a new certificate. */
int hsm_issue_leaf(hsm_key *ca_key, X509 *ca_cert, X509_REQ *csr, const hsm_leaf_profile *profile, X509 **out,
    st_err *err);

/* ---- CRL -------------------------------------------------------------- */

/* RFC 5280 CRLReason codes. */
enum hsm_crl_reason {
	HSM_CRL_UNSPECIFIED = 0,
	HSM_CRL_KEY_COMPROMISE = 1,
	HSM_CRL_CA_COMPROMISE = 2,
	HSM_CRL_AFFILIATION_CHANGED = 3,
	HSM_CRL_SUPERSEDED = 4,
	HSM_CRL_CESSATION_OF_OPERATION = 5,
	HSM_CRL_CERTIFICATE_HOLD = 6,
	HSM_CRL_REMOVE_FROM_CRL = 8,
	HSM_CRL_PRIVILEGE_WITHDRAWN = 9,
	HSM_CRL_AA_COMPROMISE = 10,
};
/* "keyCompromise" -> HSM_CRL_KEY_COMPROMISE etc. (RFC 5280 spelling); -1 if unknown. */
int hsm_crl_reason_from_name(const char *name);
const char *hsm_crl_reason_name(int reason); /* NULL if unknown */

typedef struct hsm_revoked {
	const char *serial_hex; /* certificate serial, hex digits (upper or lower case) */
	time_t revoked_at;
	int reason;             /* enum hsm_crl_reason; unspecified is encoded as no reason (RFC 5280) */
} hsm_revoked;

/* An X.509 v2 CRL over n entries, with thisUpdate/nextUpdate, CRL number
 * and AKI extensions, signed by ca_key in the token like hsm_issue_leaf. */
int hsm_crl_sign(hsm_key *ca_key, X509 *ca_cert, const hsm_revoked *entries, size_t n, time_t this_update,
    time_t next_update, uint64_t crl_number, X509_CRL **out, st_err *err);

/* ---- CMS -------------------------------------------------------------- */

/* Detached binary CMS SignedData over data with the token key and its
 * certificate (chain may be NULL; it is embedded).  Verify with
 * st_cms_verify (common/cms.h) or `openssl cms -verify -binary`. */
int hsm_cms_sign(hsm_key *key, X509 *cert, STACK_OF(X509) *chain, const void *data, size_t len, uint8_t **der,
    size_t *der_len, st_err *err);

#endif
