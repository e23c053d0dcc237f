/* libhsm internals: shared by the files in hsm/ and by hsm's own tests and benchmark. */
#ifndef HSM_INT_H
#define HSM_INT_H

#include <pthread.h>

#include <openssl/x509v3.h>
#include <p11-kit/pkcs11.h>

#include "hsm.h"

/* One loaded, initialised PKCS#11 module and the logged-in token in it.
 * Every PKCS#11 call of the process goes through fl: one instance of the
 * module, whether it is SoftHSM, p11-kit-proxy.so or p11-kit-client.so
 * (the proxies hand out a fresh, uninitialised instance per
 * C_GetFunctionList call, so a second loader would see CKR 0x190). */
struct hsm_ctx {
	void *dl;
	CK_FUNCTION_LIST *fl;
	int finalize;          /* we initialised the module: C_Finalize at close */
	CK_SLOT_ID slot_id;
	CK_TOKEN_INFO info;    /* as read at open */
	CK_SESSION_HANDLE login_session; /* held open so the login lasts */
	pthread_mutex_t pool_lock;       /* guards pool */
	CK_SESSION_HANDLE *pool;         /* idle sessions for signing threads */
	size_t npool, pool_cap;
	char *module;
	char *token;
	char desc[256];
	int live_keys;         /* hsm_key objects not yet freed */
	pthread_mutex_t lock;  /* guards live_keys and key lookups */
};

struct hsm_key {
	hsm_ctx *ctx;
	CK_OBJECT_HANDLE obj;  /* the private key */
	CK_KEY_TYPE type;      /* CKK_EC or CKK_RSA */
	EVP_PKEY *pkey;        /* public half; signing goes to the token (pkey.c) */
	char *label;
	char desc[32];         /* "EC P-256" */
	int generated;         /* CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE */
	uint8_t id[128];       /* CKA_ID */
	size_t id_len;         /* its length (0: none) */
	int can_sign;          /* CKA_SIGN */
	const EVP_MD *md;      /* digest for certificate/CRL signatures; NULL if unsuitable */
	pthread_mutex_t lock;  /* guards matched */
	X509 *matched;         /* last certificate proven to belong to this key */
};

/* ---- PKCS#11 return codes (ckr.c) ------------------------------------ */

/* "CKR_PIN_LOCKED", or NULL for a code not in the table. */
const char *hsm_ckr_name(CK_RV rv);
/* What the operator should do about rv, or NULL. */
const char *hsm_ckr_hint(CK_RV rv);
/* "CKR_PIN_LOCKED: the user PIN is locked ..." (any rv, vendor codes too). */
void hsm_ckr_describe(CK_RV rv, char *buf, size_t len);
/* st_err_set(err, code, "<fmt>: <hsm_ckr_describe(rv)>"). */
int hsm_err_ckr(st_err *err, int code, CK_RV rv, const char *fmt, ...) ST_PRINTF(4, 5);

/* ---- sessions and signing (token.c) ----------------------------------- */

/* One PKCS#11 signature with key's private key: out/outlen as C_Sign. */
CK_RV hsm_key_sign_raw(hsm_key *key, CK_MECHANISM_TYPE mech, const uint8_t *in, size_t inlen, uint8_t *out,
    CK_ULONG *outlen);
/* After an OpenSSL signing call with a token key failed: the error, named
 * by its CK_RV when the token gave one (this thread's last), else
 * OpenSSL's queue.  Returns -1. */
int hsm_err_sign(st_err *err, const char *fmt, ...) ST_PRINTF(2, 3);
/* Forget this thread's last signing CK_RV (before a signing call). */
void hsm_sign_rv_clear(void);

/* ---- EVP glue (pkey.c) ------------------------------------------------ */

/* An EVP_PKEY with the key's public half whose private operations sign
 * in the token through hsm_key_sign_raw.  EC: params and point are the
 * DER CKA_EC_PARAMS and the EC point (DER OCTET STRING or raw). */
EVP_PKEY *hsm_pkey_ec(hsm_key *key, const uint8_t *params, size_t plen, const uint8_t *point, size_t ptlen,
    st_err *err);
EVP_PKEY *hsm_pkey_rsa(hsm_key *key, const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen, st_err *err);

/* Check (once per certificate, cached) that cert belongs to key. */
int hsm_key_check_cert(hsm_key *key, X509 *cert, st_err *err);

/* The digest a CA key signs certificates and CRLs with (see hsm_issue_leaf);
 * NULL when the key is not suitable. */
const EVP_MD *hsm_sig_md(EVP_PKEY *pkey);

/* hsm_issue_leaf with any key: the benchmark's in-memory baseline runs
 * exactly the same code as the token path. */
int hsm_leaf_build(EVP_PKEY *ca_pkey, const EVP_MD *md, X509 *ca_cert, X509_REQ *csr,
    const hsm_leaf_profile *profile, X509 **out, st_err *err);

/* An authorityKeyIdentifier whose keyid is the CA certificate's SKI (required). */
AUTHORITY_KEYID *hsm_aki_new(X509 *ca_cert, st_err *err);

#endif
