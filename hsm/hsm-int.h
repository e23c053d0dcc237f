/* libhsm internals: shared by the files in hsm/ and by hsm's own tests and benchmark. */
#ifndef HSM_INT_H
#define HSM_INT_H

#include <pthread.h>

#include <libp11.h>
#include <openssl/x509v3.h>
#include <p11-kit/pkcs11.h>

#include "hsm.h"

struct hsm_ctx {
	PKCS11_CTX *p11;
	PKCS11_SLOT *slots;
	unsigned int nslots;
	PKCS11_SLOT *slot;     /* the one holding our token */
	PKCS11_KEY *keys;      /* private keys, enumerated once at open (libp11 owns them) */
	unsigned int nkeys;
	void *dl;              /* our own reference to the module, for attributes libp11 hides */
	CK_FUNCTION_LIST *fl;
	CK_SLOT_ID slot_id;
	char *module;
	char *token;
	char desc[256];
	int live_keys;         /* hsm_key objects not yet freed */
	pthread_mutex_t lock;  /* guards live_keys and key lookups */
};

struct hsm_key {
	hsm_ctx *ctx;
	PKCS11_KEY *p11key;    /* borrowed from ctx->keys */
	EVP_PKEY *pkey;        /* signs in the token */
	char *label;
	char desc[32];         /* "EC P-256" */
	int generated;         /* CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE */
	const EVP_MD *md;      /* digest for certificate/CRL signatures; NULL if unsuitable */
	pthread_mutex_t lock;  /* guards matched */
	X509 *matched;         /* last certificate proven to belong to this key */
};

/* The PKCS#11 return code libp11 left in the OpenSSL error queue, or 0. */
unsigned long hsm_p11_rv(void);

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
