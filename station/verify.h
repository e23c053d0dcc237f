/* The attestation gate (DESIGN.md invariant 2, PROTOCOL.md section 6).
 * Pure checks on bytes the jig returned: no I/O, no switch to turn any of it
 * off.  A device is signed for only when sv_verify_csr() returns 0. */
#ifndef STATION_VERIFY_H
#define STATION_VERIFY_H

#include <openssl/x509.h>

#include "jig.h"

/* What this session saw and chose before GET_CSR. */
typedef struct sv_session {
	const jig_se_info *info;          /* SE_INFO answer of this session */
	uint8_t slot;
	uint8_t nonce[JIG_NONCE_LEN];     /* fresh RAND_bytes, sent with GET_CSR */
	const jig_blob *pubkey;           /* KEYGEN answer (SubjectPublicKeyInfo DER) */
	int curve_nid;                    /* the recipe's key algorithm: NID_X9_62_prime256v1 or NID_secp384r1 */
	const jig_blob *csr_signature;    /* protocol 1.2: the CSR's signature; the station built the CSR around it */
} sv_session;

/* The SE vendor roots of a recipe, and the vendor intermediates that have
 * verified up to one of them in this process.  Thread-safe. */
typedef struct sv_trust sv_trust;

/* How the vendor's attestation certificate names the SE model (the
 * recipe's se.attestation_model): exactly one subject attribute subject_nid
 * whose value is prefix MODEL suffix, or (subject_nid 0) a
 * certificatePolicies extension holding policies[i] for models[i] and no
 * other model's OID.  The strings must outlive the trust. */
typedef struct sv_model_rule {
	int subject_nid;
	const char *prefix, *suffix;
	const char *const *models;
	const char *const *policies; /* dotted OIDs, parallel to models */
	size_t n_models;
} sv_model_rule;

/* Takes ownership of roots (NULL on allocation failure, roots freed).
 * rule is copied; it is required: a chain check that does not bind the
 * model lets a certificate for one model vouch for another. */
sv_trust *sv_trust_new(X509_STORE *roots, const sv_model_rule *rule);
void sv_trust_free(sv_trust *t);

/* POSTURE: the attestation certificate (first in SE_INFO) chains through the
 * other certificates SE_INFO sent to a vendor root, its subject
 * serialNumber is the SE serial and it names the SE's model (the rule).  *attest_key gets the attestation public key.
 * An intermediate whose exact bytes already verified up to a root is not
 * parsed and checked again: it anchors the chain (an SE batch CA is shared by
 * thousands of SEs). */
int sv_check_se_chain(const jig_se_info *info, sv_trust *trust, EVP_PKEY **attest_key, st_err *err);

/* VERIFY: every check of PROTOCOL.md section 6.  On success *out is the
 * parsed CSR (its public key is the attested one). */
int sv_verify_csr(const sv_session *s, EVP_PKEY *attest_key, const jig_blob *csr, const jig_blob *attestation,
    const jig_blob *signature, X509_REQ **out, st_err *err);

/* LOCK (protocol 1.1): the SE's attestation key signed the lock receipt of
 * PROTOCOL.md section 5 over this session's nonce, its serial, lifecycle
 * provisioned, the slot and the SHA-256 of the certificate the station
 * installed.  The station builds the bytes itself from what it knows; a
 * signature over anything else (another nonce: a replay; another
 * certificate; an SE that is not provisioned) does not verify. */
int sv_verify_lock_receipt(EVP_PKEY *attest_key, const uint8_t nonce[JIG_NONCE_LEN], const char *serial, uint8_t slot,
    const uint8_t *cert, size_t cert_len, const jig_blob *signature, st_err *err);

/* Verify an ECDSA-SHA256 DER signature over msg with pkey (0 or ST_E_VERIFY). */
int sv_verify_sig(EVP_PKEY *pkey, const uint8_t *msg, size_t len, const uint8_t *sig, size_t sig_len, st_err *err);

#endif
