/* The simulated Secure Element (internal to jigsim).  One `se` per DUT; the
 * `se_env` holds what all SEs of a panel share: the vendor CA that certifies
 * their attestation keys, the tool public key they were personalised with. */
#ifndef JIGSIM_SE_H
#define JIGSIM_SE_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "jig-codec.h"
#include "jigsim.h"

/* DER bytes owned by OpenSSL's allocator (i2d_*(x, &p) with p == NULL). */
typedef struct se_bytes {
	uint8_t *p;
	size_t len;
} se_bytes;

typedef struct se_env {
	EVP_PKEY *ca_key; /* SE vendor batch CA */
	X509 *ca_cert;
	se_bytes ca_der;
	EVP_PKEY *rogue_key; /* unknown-se-vendor: same names as the batch CA, another key */
	X509 *rogue_cert;
	se_bytes rogue_der;
	se_bytes attest_tmpl; /* 1.2 VENDOR_CHAIN template: an attestation certificate's TBS for this batch */
	EVP_PKEY *tool_pub;
	char serial_prefix[JIG_STR_MAX - 16 + 1]; /* + 16 hex digits = a serial */
	char fixed_serial[JIG_STR_MAX + 1];       /* "" = random serials */
	char model[JIG_STR_MAX + 1];
	uint32_t firmware;
	uint8_t prev_nonce[JIG_NONCE_LEN]; /* replay-nonce: the previous GET_CSR's nonce */
	/* 1.2: certificate templates CERT_TEMPLATE sent on this connection
	 * (the newest JIGSIM_TEMPLATES), by SHA-256. */
	se_bytes tmpl[2];
	uint8_t tmpl_sha256[2][JIG_SHA256_LEN];
	unsigned tmpl_next;
} se_env;

typedef struct se_slot {
	EVP_PKEY *key; /* never leaves the SE */
	se_bytes pub;  /* SubjectPublicKeyInfo DER of key */
	se_bytes cert; /* installed certificate */
	int rework_ok; /* REWORK_CHALLENGE answered with this key in this power cycle */
} se_slot;

typedef struct se_retired {
	uint8_t slot;
	se_bytes pub, cert;
} se_retired;

typedef struct se {
	char serial[JIG_STR_MAX + 1];
	uint8_t lifecycle;
	unsigned faults; /* the faults that hit this device */
	EVP_PKEY *attest_key;
	se_bytes attest_cert;
	se_bytes attest_delta; /* 1.2: attest_cert as a delta against the vendor chain payload */
	const se_bytes *issuer_der; /* the CA that certified attest_cert (env-owned) */
	int authenticated;
	int have_challenge;
	uint8_t challenge[JIG_NONCE_LEN];
	se_slot slot[JIG_MAX_SLOT + 1];
	se_retired *retired;
	size_t nretired;
	unsigned keygens;
} se;

/* Load the CA, its key and the tool public key; make the rogue CA when
 * `faults` asks for it. */
int se_env_init(se_env *env, const jigsim_config *c, st_err *err);
void se_env_clear(se_env *env);

/* CERT_TEMPLATE (1.2): keep a template for INSTALL_CERT deltas; forget
 * them all when a connection ends. */
int se_env_add_template(se_env *env, const jig_blob *der, st_err *err);
void se_env_clear_templates(se_env *env);

/* A new SE with a fresh serial and attestation certificate. */
se *se_new(se_env *env, unsigned faults, st_err *err);
void se_free(se *d);
/* Power off or reset: authentication and pending challenges are lost. */
void se_power_off(se *d);
/* The DUT left the jig: its private keys are of no further use. */
void se_drop_keys(se *d);

/* Run one SE command (SE_INFO .. RETIRE) whose request decoded into req.
 * 0 and resp filled, or a JIG_E_* code with a message in msg. */
int se_command(se_env *env, se *d, const jig_msg *req, jig_msg *resp, char msg[JIG_ERRMSG_MAX + 1]);

#endif
