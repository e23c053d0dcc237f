/* A lying jig, written for the hostile-jig tests: it listens on loopback,
 * speaks PROTOCOL.md with libjig's codec, and gets its honest SE behaviour
 * from an in-process jigsim (jigsim_handle), whose answers it decodes,
 * rewrites and signs again before they reach the station.  It holds an SE
 * attestation key of its own, certified by the test SE vendor CA for the
 * serial of the SE in the jig (a compromised attestation key), so its lies
 * are attested consistently: every SE_INFO carries its chain and every
 * GET_CSR attestation names what the last SE_INFO told. */
#ifndef LIAR_H
#define LIAR_H

#include <pthread.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "jigsim.h"

typedef struct liar_lies {
	uint32_t firmware_before; /* 0: as jigsim says; else reported before RETIRE */
	/* After RETIRE (0 / NULL: no lie) */
	const char *serial_after;
	const char *model_after;
	uint32_t firmware_after;
	int junk_chain_after;     /* the attestation "certificate" is not DER */
	/* The liar plays the key slot itself (KEYGEN, GET_CSR, INSTALL_CERT,
	 * READ_CERT, REWORK_CHALLENGE) with a key of its own: */
	int own_keys;
	int reuse_key;            /* after RETIRE, KEYGEN answers the retired key again */
	EVP_PKEY *shared_key;     /* every KEYGEN answers this key (not owned) */
	int csr_sha1;             /* the CSR is signed ecdsa-with-SHA1 */
	int explicit_key;         /* KEYGEN answers a P-256 key with explicit curve parameters */
	/* Bytes no encoder would write (patched into the encoded payload):
	 * the SE serial of every SE_INFO; the attestation certificate's
	 * subject serialNumber (UTF-8, e.g. with ESC); the text of an ERROR
	 * frame answering every AUTH_RESPONSE. */
	const char *raw_serial;
	const char *attest_cert_serial;
	const char *raw_error;
} liar_lies;

typedef struct liar {
	jigsim *sim;             /* not owned */
	liar_lies lies;
	char uri[300];           /* tcp:127.0.0.1:PORT, for --jig */
	int lfd;
	pthread_t thread;
	volatile int stop;
	EVP_PKEY *vendor_key, *akey;
	X509 *vendor_cert;
	char acert_serial[JIG_STR_MAX + 1]; /* the serial acert names */
	uint8_t acert[JIG_BLOB_MAX];
	size_t acert_len;
	int retired;             /* a RETIRE succeeded on this SE */
	int new_key;             /* the next KEYGEN makes a new key */
	EVP_PKEY *leaf;          /* own_keys: the slot's key */
	uint8_t leaf_cert[JIG_BLOB_MAX];
	size_t leaf_cert_len;
	jig_se_info told;        /* the last SE_INFO the station got */
	unsigned lies_told;      /* SE_INFO answers that carried an after-RETIRE lie */
} liar;

/* Start a liar in front of sim; the vendor CA comes from pki. */
liar *liar_start(const char *pki, jigsim *sim, const liar_lies *lies);
void liar_stop(liar *l);

#endif
