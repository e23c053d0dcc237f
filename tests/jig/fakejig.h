/* A scripted fake jig for the libjig tests: a thread answering requests on
 * one transport, misbehaving on cue.  It keeps the PROTOCOL.md section 2
 * response cache, so a retransmission is answered, not executed again. */
#ifndef FAKEJIG_H
#define FAKEJIG_H

#include <pthread.h>

#include "jig.h"

enum fake_action {
	FAKE_ANSWER = 0,  /* execute and answer */
	FAKE_DROP,        /* execute, send nothing */
	FAKE_STALE,       /* execute, send a frame with seq-1 first, then the answer */
	FAKE_CORRUPT,     /* execute, answer with one payload byte flipped (CRC fails) */
	FAKE_ERROR,       /* answer with an ERROR frame (code fake.error_code) */
	FAKE_GARBAGE,     /* execute, send garbage, then the answer byte by byte */
	FAKE_WRONG_TYPE,  /* answer with another command's response type */
	FAKE_MALFORMED,   /* answer with one trailing payload byte (good CRC) */
	FAKE_CLOSE,       /* close the connection without answering */
};

#define FAKE_MAX_REQ 32

typedef struct fakejig {
	jig_transport *t;        /* owned; closed by fake_stop */
	pthread_t thread;
	const int *script;       /* one action per received request frame; then FAKE_ANSWER */
	size_t nscript;
	uint8_t hello_version;   /* version the HELLO answer carries (default 1) */
	uint16_t error_code;     /* for FAKE_ERROR */
	const uint8_t *cert;     /* SE_INFO attestation certificate (DER), may be NULL */
	size_t cert_len;
	int no_dut;              /* no DUT: SE_INFO answers NO_DUT */
	/* what happened, read after fake_stop */
	int nreq;                /* request frames received */
	int executed;            /* commands executed (not answered from the cache) */
	uint8_t raw[FAKE_MAX_REQ][64];
	size_t rawlen[FAKE_MAX_REQ];
} fakejig;

/* Fill defaults and start serving t (ownership taken). */
void fake_start(fakejig *f, jig_transport *t);
/* Wait for the peer to hang up (the client closed its end), then clean up. */
void fake_stop(fakejig *f);

#endif
