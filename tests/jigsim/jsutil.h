/* Helpers for the jigsim tests: a test PKI with a file tool key, a caller
 * that drives jigsim either in-process (jigsim_handle) or through libjig's
 * client, and the station-side checks of an attested CSR. */
#ifndef JSUTIL_H
#define JSUTIL_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "jig.h"
#include "jigsim.h"
#include "testutil.h"

typedef struct js_pki {
	char *dir;               /* fixtures/make-test-pki output */
	char vendor_ca_cert[512], vendor_ca_key[512], vendor_root[512];
	char tool_pub[512];      /* public half of `tool` */
	EVP_PKEY *tool;          /* the test's tool key: a file key, no HSM */
	EVP_PKEY *ca_key;        /* throw-away CA that signs the leaves we install */
	X509 *ca_cert;
} js_pki;

js_pki *js_pki_new(void);
void js_pki_free(js_pki *p);
/* One js_pki for a whole test binary: register js_pki_setup and
 * js_pki_teardown as an unchecked fixture; js_test_pki is it. */
extern js_pki *js_test_pki;
void js_pki_setup(void);
void js_pki_teardown(void);
/* Defaults plus the PKI's files. */
void js_config(jigsim_config *c, const js_pki *p);

/* Send req, get its answer.  0 and resp filled; the jig's error code (> 0)
 * when it answered an ERROR frame (resp holds it); -1 when no answer came
 * (err says why). */
typedef int (*js_call_fn)(void *ctx, const jig_msg *req, jig_msg *resp, st_err *err);

/* In-process: frames through jigsim_handle. */
typedef struct js_direct {
	jigsim *s;
	uint8_t seq;
	int action; /* of the last jigsim_handle */
	uint8_t version; /* frames after HELLO: what HELLO negotiated (0: version 1) */
} js_direct;
int js_direct_call(void *ctx, const jig_msg *req, jig_msg *resp, st_err *err);
/* Through libjig's client. */
int js_client_call(void *ctx, const jig_msg *req, jig_msg *resp, st_err *err);

/* Raw frames: encode req as seq in a frame of version req->version (0: 1);
 * run one frame through jigsim_handle. */
size_t js_frame(uint8_t seq, const jig_msg *req, uint8_t *out);
/* Decode a response frame; -1 if it is not a valid frame. */
int js_unframe(const uint8_t *p, size_t len, jig_msg *resp);

void js_req(jig_msg *m, uint8_t cmd);
void js_sign(EVP_PKEY *key, const char *tag, const char *serial, const uint8_t challenge[JIG_NONCE_LEN], jig_blob *sig);
int js_verify(EVP_PKEY *pub, const char *tag, const char *serial, const uint8_t challenge[JIG_NONCE_LEN],
    const jig_blob *sig);
/* A leaf for the CSR's public key, signed by the throw-away CA. */
void js_issue(const js_pki *p, const jig_blob *csr, jig_blob *cert);
EVP_PKEY *js_pubkey(const jig_blob *spki);

/* What a station's VERIFY step finds wrong first (PROTOCOL.md section 6). */
enum js_verdict {
	JS_OK = 0,
	JS_BAD_PARSE,   /* attestation does not parse */
	JS_BAD_NONCE,   /* not our nonce */
	JS_BAD_FACTS,   /* serial/model/firmware/lifecycle/slot differ from SE_INFO */
	JS_BAD_CSR,     /* CSR hash, parse or self-signature */
	JS_BAD_KEY,     /* the key is not the one KEYGEN returned */
	JS_BAD_SIG,     /* attestation signature */
	JS_BAD_CHAIN,   /* attestation certificate does not chain to the vendor root */
	JS_BAD_SUBJECT, /* serialNumber is not the SE serial */
};
const char *js_verdict_name(int v);
int js_check_attestation(const js_pki *p, const jig_se_info *info, uint8_t slot, const uint8_t nonce[JIG_NONCE_LEN],
    const jig_blob *pubkey, const jig_msg *csr_resp);

/* One factory conversation with the DUT in the jig, as PROTOCOL.md section
 * 9 lists it (HELLO excluded), in protocol 1.0 or 1.1 as SE_INFO shows (1.1:
 * the vendor chain fetched once per process and by digest after, read-back
 * by digest, the lock receipt checked).  Stops at the first step that fails and says
 * which in `failed_at` (0 when all passed). */
typedef struct js_device {
	jig_se_info info;
	uint8_t nonce[JIG_NONCE_LEN];
	jig_blob pubkey;
	jig_msg csr;
	jig_blob cert;      /* what we installed */
	jig_blob readback;  /* what READ_CERT returned (1.1: the SHA-256) */
	int chain_fetched;  /* 1.1: VENDOR_CHAIN was asked */
	int template_sent;  /* 1.2: INSTALL_CERT answered NO_TEMPLATE, CERT_TEMPLATE sent, INSTALL_CERT again */
	uint8_t failed_at;  /* command that failed, 0 = none */
	int code;           /* its jig error code, -1 no answer, or 0 */
	int verdict;        /* enum js_verdict after GET_CSR */
	st_err err;
} js_device;
void js_provision(js_call_fn call, void *ctx, const js_pki *p, js_device *d);

#endif
