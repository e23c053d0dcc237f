/* The TPM 2.0 attestation gate (issue 18, PROTOCOL.md section 11): pure
 * checks on the TPM structures a TPM device sent, unmarshalled with
 * libtss2-mu (never by hand), and the station's own TPM2_MakeCredential.
 * No I/O, no switch.  Every refusal says where and why, ST_E_VERIFY (or
 * ST_E_PROTO for bytes that are not the structure they claim to be). */
#ifndef STATION_TPM_VERIFY_H
#define STATION_TPM_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>
#include <tss2/tss2_tpm2_types.h>

#include "st.h"

#define TV_NAME_LEN 34 /* TPM2_ALG_SHA256 || SHA-256 */

/* Exactly one TPM2B_PUBLIC in p[0..n), nothing after it. */
int tv_public_parse(const uint8_t *p, size_t n, const char *what, TPM2B_PUBLIC *out, st_err *err);
/* The object's name: nameAlg || H(marshalled TPMT_PUBLIC); nameAlg must be SHA-256. */
int tv_name(const TPM2B_PUBLIC *pub, uint8_t name[TV_NAME_LEN], st_err *err);
/* The RSA EK has the TCG template's shape (restricted decrypt, fixedTPM,
 * fixedParent, sensitiveDataOrigin, adminWithPolicy, SHA-256, AES-128-CFB,
 * 2048 bits) and is the key the EK certificate certifies. */
int tv_check_ek(const TPM2B_PUBLIC *ek, X509 *ek_cert, st_err *err);
/* The EK certificate chains to a self-signed root in bundle, through the
 * bundle's other (intermediate) certificates. */
int tv_check_ek_chain(X509 *ek_cert, STACK_OF(X509) *bundle, st_err *err);
/* An IAK (restricted) or IDevID key: ECC of curve_nid, ECDSA-SHA256 (or a
 * NULL scheme for the IDevID), sign, not decrypt, fixedTPM, fixedParent,
 * sensitiveDataOrigin. */
int tv_check_key(const TPM2B_PUBLIC *k, int restricted, int curve_nid, const char *what, st_err *err);
/* The key as OpenSSL's (a new EVP_PKEY), and its SubjectPublicKeyInfo DER
 * (malloc'd into *spki). */
EVP_PKEY *tv_pkey(const TPM2B_PUBLIC *k, st_err *err);
int tv_spki(const TPM2B_PUBLIC *k, uint8_t **spki, size_t *len, st_err *err);
/* TPM2_MakeCredential, computed here (TPM 2.0 Part 1 "Credential
 * Protection", Part 3 12.6): secret for the object `name`, wrapped to the
 * RSA EK.  Writes the marshalled TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET. */
/* ek_key is the EK certificate's public key (tv_check_ek showed it is ek's);
 * ek gives the nameAlg and symmetric algorithm. */
int tv_make_credential(const TPM2B_PUBLIC *ek, EVP_PKEY *ek_key, const uint8_t name[TV_NAME_LEN], const uint8_t *secret,
    size_t secret_len, uint8_t *cred, size_t cred_cap, size_t *cred_len, uint8_t *enc, size_t enc_cap, size_t *enc_len,
    st_err *err);
/* TPM_ACTIVATE's answer (a TPM2B_DIGEST) is exactly secret. */
int tv_check_activation(const uint8_t *p, size_t n, const uint8_t *secret, size_t secret_len, st_err *err);
/* sig is exactly one TPMT_SIGNATURE, ECDSA with SHA-256, made by key (the
 * signer's name for errors) over SHA-256(msg); errors begin with what. */
int tv_check_signature(const uint8_t *sig, size_t sig_len, EVP_PKEY *key, const char *signer, const uint8_t *msg,
    size_t msg_len, const char *what, st_err *err);
/* TPM_CERTIFY's answer: the TPMS_ATTEST parses exactly, has the TPM's magic,
 * type CERTIFY, extraData == nonce, certifies the name of idevid, and its
 * TPMT_SIGNATURE (ECDSA-SHA256) verifies with iak. */
int tv_check_certify(const uint8_t *attest, size_t attest_len, const uint8_t *sig, size_t sig_len, const TPM2B_PUBLIC *iak,
    const TPM2B_PUBLIC *idevid, const uint8_t *nonce, size_t nonce_len, st_err *err);

#endif
