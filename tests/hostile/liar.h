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
#include "stutil.h"

struct liar;

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
	/* Protocol 1.1 lies (tests/hostile/test-protocol.c) */
	int relay;                /* the SE's own attestation certificate and signatures go through
	                             unchanged: the liar holds no attestation key the station trusts */
	int v12;                  /* with relay: speak protocol 1.2 (else the liar plays a 1.1 jig) */
	/* Called for every request before anything else: 1 when it answered
	 * (or chose silence) itself; q is the decoded request (type only if it
	 * did not decode). */
	int (*hook)(struct liar *l, int fd, const jig_frame *req, const jig_msg *q);
	/* Called on every decoded answer of jigsim after the lies above. */
	void (*rewrite)(struct liar *l, const jig_msg *q, jig_msg *m);
	void *arg;                /* the test's */
	/* The compromised attestation key's certificate (genuine, from the
	 * vendor CA): the model its CN names ("%s attestation"; NULL:
	 * TSE-100), and a certificatePolicies OID (NULL: no extension). */
	const char *attest_cert_model;
	const char *attest_cert_policy;
	/* SE_INFO answers NO_DUT, DUT_STATUS a device seated but unpowered,
	 * DUT_POWER on "succeeds" and changes nothing. */
	int unpowered;
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
	uint8_t installed[JIG_BLOB_MAX]; /* the last certificate INSTALL_CERT carried */
	size_t installed_len;
	unsigned lies_told;      /* SE_INFO answers that carried an after-RETIRE lie */
	volatile unsigned requests, connections; /* frames handled, connections accepted */
} liar;

/* Start a liar in front of sim; the vendor CA comes from pki. */
liar *liar_start(const char *pki, jigsim *sim, const liar_lies *lies);
/* Encode m (version and seq of req) and send it: for hooks. */
int liar_send(liar *l, int fd, const jig_frame *req, jig_msg *m);
/* Send n bytes (a whole encoded frame) on fd: for hooks.  0, or -1. */
int liar_send_bytes(int fd, const uint8_t *p, size_t n);
/* Run req through jigsim and decode its answer into m (no lies): for hooks.
 * 0, or -1 when jigsim answered nothing. */
int liar_forward(liar *l, const jig_frame *req, jig_msg *m);
void liar_stop(liar *l);

/* ---- what the hostile suites share ---- */
/* A suite of one test case (tcase) under one test PKI for the whole binary
 * (tu_pki), with SIGPIPE ignored: the station and the liar hang up on each
 * other.  Add the tests to *tc, then tu_run_suite. */
Suite *liar_suite(const char *name, const char *tcase, int timeout, TCase **tc);
/* The end of a liar test: the journal still verifies; the run, the liar,
 * the jigsims (honest may be NULL) and the workspace go. */
void liar_test_end(stu_ws *w, stu_run *r, liar *l, stu_sim *honest, stu_sim *sim);
/* The station's output s (what: "stdout" or "stderr") holds no control
 * byte, no invalid UTF-8 lead byte and no line that starts with the forged
 * verdict "PASS SEFAKE"; name says which case failed. */
void liar_check_clean(const char *s, const char *what, const char *name);

#endif
