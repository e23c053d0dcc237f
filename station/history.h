/* A device's history as the journal tells it: the one place that turns
 * journal records into what happened to each SE and each certificate
 * (announced, issued, installed, revoked, closed out; retired by a rework;
 * passed, failed, abandoned).  Resume, rework, revocation, the CRL and key
 * uniqueness all ask it, so they agree by construction.
 *
 * history_load reads the whole journal; the station then applies every
 * record it appends (station_journal), so the history stays what the journal
 * says.  Memory is what resume needs, about 150 bytes per SE and certificate
 * (serials and digests, not certificates: history_cert_der reads one back
 * from its "issued" record).  Thread-safe. */
#ifndef STATION_HISTORY_H
#define STATION_HISTORY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "audit.h"
#include "cms.h"
#include "jig-codec.h"
#include "st.h"

typedef struct history history;

typedef enum history_state {
	HISTORY_SEEN = 0, /* records exist, no outcome yet (or abandoned) */
	HISTORY_PASSED,   /* a "done" "pass" record: provisioned (a later refusal does not undo it) */
	HISTORY_FAILED,   /* its last attempt failed */
} history_state;

/* One SE (a copy). */
typedef struct history_device {
	char serial[JIG_STR_MAX + 1];
	history_state state;
	/* The live certificate: issued by us and not revoked. */
	int has_cert;
	char cert_serial[ST_CERT_SERIAL_HEX_LEN + 1]; /* OpenSSL's spelling */
	uint8_t pubkey_sha256[32];   /* SHA-256 of its SubjectPublicKeyInfo DER */
	int cert_installed;          /* an "install" "ok" record: read back equal from the SE */
	/* A rework retired a certificate and has not finished ("done") since. */
	int retiring;
	char retired_serial[ST_CERT_SERIAL_HEX_LEN + 1];
	unsigned issued, revoked;    /* certificates issued to it, and revoked */
} history_device;

/* One certificate serial the journal announced ("issuing") or holds. */
typedef struct history_cert {
	char serial[ST_CERT_SERIAL_HEX_LEN + 1];
	char device[JIG_STR_MAX + 1];
	int issued;                  /* an "issued" record holds the certificate */
	int installed;
	int unissued;                /* announced, never issued: closed out and on the CRL */
	int revoked;
	time_t revoked_at;           /* the first revocation counts */
	char reason[40];             /* RFC 5280 name */
	int has_pubkey;
	uint8_t pubkey_sha256[32];
	/* Who signed it: the issuer's key identifier (lower-case hex, its
	 * certificate's AKI), from the "issuing" record or the certificate;
	 * "" when the journal does not say (before issue 15, never issued). */
	char issuer_key_id[ST_KEY_ID_HEX];
	int retired;                 /* a rework retired it (a "retire" record names it) */
} history_cert;

history *history_new(void);
void history_free(history *h);
/* Read every record of the journal in dir (chain checked on the way). */
int history_load(history *h, const char *dir, st_err *err);
/* Apply one record, in journal order.  batch is the number of the batch it
 * is in (for an appended record: the journal's batch after the append; the
 * record is in it or the one before).  -1 only when out of memory. */
int history_apply(history *h, const audit_record *rec, unsigned batch);

/* 0 and a copy when the journal saw the SE, -1 otherwise. */
int history_device_get(history *h, const char *serial, history_device *out);
/* 0 and a copy for a certificate serial (any spelling revlist_canon takes), -1 when unknown. */
int history_cert_get(history *h, const char *serial, history_cert *out);
/* The SE a public key (SHA-256 of its SPKI) was announced for, into owner;
 * 0 when found, -1 when no "issuing" record names it. */
int history_key_owner(history *h, const uint8_t pubkey_sha256[32], char owner[JIG_STR_MAX + 1]);
/* Every certificate in the order the journal first named it; stops when cb
 * returns non-zero (returned).  cb must not call into h. */
int history_foreach_cert(history *h, int (*cb)(const history_cert *c, void *ctx), void *ctx);
/* The certificates of one SE, in journal order, the same way. */
int history_foreach_device_cert(history *h, const char *serial, int (*cb)(const history_cert *c, void *ctx),
    void *ctx);
/* Every SE, in the order the journal first named it; the same way. */
int history_foreach_device(history *h, int (*cb)(const history_device *d, void *ctx), void *ctx);
size_t history_device_count(history *h);
size_t history_cert_count(history *h);
/* The highest crl_number of the "crl" records of the issuer with this key
 * identifier (lower-case hex), or of records naming none (journals before
 * issue 15); issuer_key_id NULL: of any "crl" record.  0: none. */
uint64_t history_last_crl_number(history *h, const char *issuer_key_id);
/* The seq of a completed rework ("done" "pass") of the SE under this
 * signed authorization id; 0 when there is none (a token is good for one). */
uint64_t history_authorization_used(history *h, const char *serial, const char *authorization);
/* What became of a certificate, one word (`station device`, --json):
 * "live" (issued, installed, not revoked), "issued" (not installed, not
 * revoked), "announced" (an "issuing" record only: the station stopped while
 * the HSM signed; the next run closes it out), "unissued" (closed out: never
 * left the station, on the CRL), "superseded-by-rework" (retired by a rework
 * and revoked), "revoked" (reason in c->reason). */
const char *history_cert_status(const history_cert *c);

/* One journal record about an SE, as `station device` tells it; borrowed
 * for the callback. */
typedef struct history_event {
	uint64_t seq;
	const char *batch;           /* "batch-000002.jsonl" */
	const char *time, *jig, *operator_name; /* "" when the record has none */
	const char *step, *result;
	char cert_serial[ST_CERT_SERIAL_HEX_LEN + 1]; /* the certificate it is about, OpenSSL's spelling; "" none */
	char what[512];              /* what else it says, in words ("" nothing): the error, a
	                                revocation's reason, the SE's facts, who authorized ... */
	const char *advice;          /* what the operator was told to do; "" none */
	int rework;                  /* a record of a rework */
	json_t *details;             /* the record's details */
} history_event;

/* Read only the records of SE serial from the journal in dir into h (a new
 * history: it then knows that SE and its certificates alone), calling cb
 * for each in journal order: one SE's story in one scan, in memory of its
 * own size.  Stops when cb returns non-zero (returned); -1 with err when
 * the journal cannot be read or memory runs out. */
int history_load_device(history *h, const char *dir, const char *serial,
    int (*cb)(const history_event *e, void *ctx), void *ctx, st_err *err);

/* One "quota-release" record (the shift quota's, quota.c); borrowed for
 * the callback. */
typedef struct history_release {
	unsigned number;             /* the number-th quota-release record of the journal, from 1 */
	const char *time, *station;  /* the record's ("" when it has none) */
	json_t *details;             /* its details object */
	unsigned issuing_after;      /* "issuing" records (any result) after it */
} history_release;

/* Every "quota-release" record in journal order, the same way as
 * history_foreach_cert. */
int history_foreach_release(history *h, int (*cb)(const history_release *r, void *ctx), void *ctx);
/* "issuing" records (any result) in the whole journal. */
unsigned history_issuing_count(history *h);
/* The anomaly halt (FORMAT.md "halt"): among the last `within` devices
 * of the factory path since the last halt or resume, how many failed
 * attestation or identity ("disposition" quarantine); how many posture
 * failures in a row ended the last devices with one error, and that
 * error (into error, cap bytes). */
void history_anomaly(history *h, unsigned within, unsigned *failures, unsigned *streak, char *error, size_t cap);
/* The seq of the halt record no resume has lifted yet (0: none), its
 * halt_id and its message. */
uint64_t history_halt_pending(history *h, char id[33], char *reason, size_t cap);
/* The seq of the last "audit-key" record (0: none) and the SHA-256 (hex)
 * of the audit certificate it announced, into sha256. */
uint64_t history_audit_key(history *h, char sha256[ST_SHA256_HEX_LEN + 1]);
/* "issued" records in batch number batch (for the per-batch quota). */
unsigned history_issued_in_batch(history *h, unsigned batch);
/* The DER of an issued certificate, read back from its "issued" record in
 * the journal in dir and checked against the digest that record carries;
 * *der malloc'd. */
int history_cert_der(history *h, const char *dir, const char *serial, uint8_t **der, size_t *len, st_err *err);

#endif
