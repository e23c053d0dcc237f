/* Detached CMS SignedData: audit batch seals and signed recipes.  Signing
 * takes any EVP_PKEY, including one that lives in a PKCS#11 token (libp11);
 * verification needs only files, so auditors can do it offline. */
#ifndef ST_CMS_H
#define ST_CMS_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "st.h"

/* Sign data (detached, binary) with key/cert; chain (may be NULL) is
 * embedded so a verifier needs only the root.  *der is malloc'd. */
int st_cms_sign(EVP_PKEY *key, X509 *cert, STACK_OF(X509) *chain, const void *data, size_t len,
    uint8_t **der, size_t *der_len, st_err *err);
/* Verify a detached DER signature over data up to a root in trust.  On
 * success *signer (if not NULL) gets a new reference to the signer's
 * certificate.  A bad signature or chain is ST_E_VERIFY. */
int st_cms_verify(const void *data, size_t len, const uint8_t *der, size_t der_len, X509_STORE *trust,
    X509 **signer, st_err *err);
/* The same at the time the signature was made: its signingTime attribute,
 * which may be no earlier than not_before (what it signs was complete
 * then; 2 s of clock granularity allowed) and not in the future, or not_before when it has none (0: now).
 * The signer's chain must be valid at that time, not now: a seal made
 * while its certificate was valid stays valid after the certificate
 * expires.  *signed_at (may be NULL) gets the time used.  Sets and then
 * restores the verification time of trust: not for a store shared between
 * threads. */
int st_cms_verify_at(const void *data, size_t len, const uint8_t *der, size_t der_len, X509_STORE *trust,
    time_t not_before, time_t *signed_at, X509 **signer, st_err *err);
/* The same with the data inside the signature (a token that travels as
 * one file), and its check: on success *content (malloc'd, NUL-terminated
 * one past *content_len) is what was signed. */
int st_cms_sign_attached(EVP_PKEY *key, X509 *cert, STACK_OF(X509) *chain, const void *data, size_t len,
    uint8_t **der, size_t *der_len, st_err *err);
int st_cms_verify_attached(const uint8_t *der, size_t der_len, X509_STORE *trust, uint8_t **content,
    size_t *content_len, X509 **signer, st_err *err);
/* A store holding every certificate in a PEM file as a trust anchor. */
X509_STORE *st_x509_store_load(const char *pem_path, st_err *err);
/* Every certificate of a PEM file, in order (at least one). */
STACK_OF(X509) *st_x509_chain_load(const char *pem_path, st_err *err);
/* The first certificate of a PEM file. */
X509 *st_x509_load(const char *pem_path, st_err *err);
/* Key identifiers as lower-case hex (at most 32 bytes, into out[65]): the
 * certificate's own subjectKeyIdentifier, and the authorityKeyIdentifier
 * naming its issuer's key.  -1 (out "") when it has none. */
#define ST_KEY_ID_HEX 65
int st_x509_ski_hex(X509 *cert, char out[ST_KEY_ID_HEX]);
int st_x509_aki_hex(X509 *cert, char out[ST_KEY_ID_HEX]);
/* One-line subject, e.g. "O=Station Test, CN=Audit Seal 1" into buf. */
void st_x509_subject(X509 *cert, char *buf, size_t len);

/* Roles: each key a person or a station signs with has one, named by an
 * extended key usage under the project's OID arc (a UUID arc, X.667:
 * 2.25.<uuid>; its .1 branch holds the roles).  docs/ARCHITECTURE.md lists
 * them.  A verifier accepts a signature only from its own role. */
#define ST_OID_ARC "2.25.55189662177780663467762906544539105105"
typedef enum st_role {
	ST_ROLE_AUDIT_SEAL = 1, /* seals audit batches and bundle manifests */
	ST_ROLE_RECIPE = 2,     /* signs recipes (engineering) */
	ST_ROLE_AUTHORIZE = 3,  /* signs rework, revocation and resume authorizations */
} st_role;
/* "audit seal", "recipe signing", "authorization". */
const char *st_role_name(st_role role);
/* The role's OID in dotted form. */
const char *st_role_oid(st_role role);
/* 0 when cert's extendedKeyUsage names role; otherwise -1, ST_E_VERIFY,
 * and err names the certificate, the role and the OID it lacks. */
int st_x509_check_role(X509 *cert, st_role role, st_err *err);

#endif
