/* libaudit: the station's append-only, hash-chained audit journal.  It is
 * also the station's write-ahead log: audit_append() returns only when the
 * record is on disk, so `station run` journals a step before its effect
 * leaves the station, and on start scans the journal to resume devices.
 *
 * The journal is a folder of batch files (batch-000001.jsonl, ...), JSON
 * Lines, each record chained to the previous one by SHA-256.  A batch closes
 * after N devices (or on demand) with a "batch-close" record and is sealed
 * with a detached CMS signature (batch-000001.jsonl.p7s) by the audit key.
 * audit/FORMAT.md is the normative description of every file and field.
 *
 * Threads: one audit_journal may be shared by every worker thread;
 * audit_append, audit_seal_now and audit_get_status are thread-safe, and
 * concurrent appends share one fdatasync (group commit).  One process at a
 * time opens a journal folder for writing (an flock on DIR/journal.lock);
 * scanning, verifying and exporting only read and need no lock. */
#ifndef AUDIT_H
#define AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "st.h"

#define AUDIT_FORMAT_VERSION 1
#define AUDIT_RECORD_MAX 65536 /* bytes in one record line, newline included */
#define AUDIT_NAME_MAX 64       /* a batch or seal file name, NUL included */
#define AUDIT_SEAL_SUFFIX ".p7s" /* a batch's seal: its file name + this */
#define AUDIT_MANIFEST_SEAL "manifest.json.p7s" /* a bundle's manifest, sealed */

/* The file name of batch n: "batch-000042.jsonl".  Only libaudit spells it. */
void audit_batch_name(unsigned n, char out[AUDIT_NAME_MAX]);
/* The batch number of a batch file name, 0 when name is not one. */
unsigned audit_batch_number(const char *name);

/* Steps the library writes itself. */
#define AUDIT_STEP_BATCH_CLOSE "batch-close"     /* last record of every closed batch */
#define AUDIT_STEP_RECOVERED "journal-recovered" /* a torn tail was quarantined at open */
#define AUDIT_STEP_SEAL_FAILED "seal-failed"     /* automatic sealing failed; retried at next open */
#define AUDIT_STEP_AUDIT_KEY "audit-key"         /* the next audit certificate, announced (audit_announce_signer) */
/* A device's outcome: a record for a device (device not NULL) is terminal
 * when its step is "done" or its result is "fail" or "abandoned".  Each
 * terminal record counts one device toward the batch size. */
#define AUDIT_STEP_DONE "done"
#define AUDIT_RESULT_OK "ok"
#define AUDIT_RESULT_FAIL "fail"
#define AUDIT_RESULT_ABANDONED "abandoned"
#define AUDIT_RESULT_INFO "info"

/* 1 when a record with this device, step and result ends a device (above). */
int audit_is_terminal(const char *device, const char *step, const char *result);

/* ---- writing ------------------------------------------------------------ */

/* The audit key and its certificate: the key may live in a PKCS#11 token
 * (an hsm_key_pkey()); the library only calls st_cms_sign with it.  chain
 * (may be NULL) is embedded in every seal so a verifier needs only the root. */
typedef struct audit_signer {
	EVP_PKEY *key;
	X509 *cert;
	STACK_OF(X509) *chain;
} audit_signer;

typedef struct audit_config {
	/* Copied into every record.  station == NULL takes station, operator,
	 * recipe and the engineering flag from the journal's last record
	 * (maintenance: `station audit seal`); an error on an empty journal. */
	const char *station;       /* station id */
	const char *operator_name; /* who runs the station; NULL = "" */
	const char *recipe;        /* recipe digest, lower-case hex; NULL = "" */
	unsigned batch_devices;    /* close a batch after this many devices; 0 = only on demand */
	int engineering;           /* every record carries "engineering": true */
	const audit_signer *signer; /* NULL: batches close unsealed until sealed by a signer;
	                               borrowed, must outlive the journal */
} audit_config;

typedef struct audit_event {
	const char *jig;    /* jig URI, NULL for station events */
	const char *device; /* SE serial, NULL for station events */
	const char *step;   /* required: "identify", "issuing", "issued", "done", ... */
	const char *result; /* required: "ok", "fail", "abandoned", "info", ... */
	json_t *details;    /* a JSON object or NULL (= {}); borrowed, not stolen.  Build it with
	                       json_pack("{s:s, s:s}", "cert_serial", hex, "error", text). */
	int lazy;           /* 1: return once written; the next durable append (or audit_close)
	                       makes it durable.  For records that precede no effect outside the
	                       station.  Ignored for terminal records, which are always durable. */
} audit_event;

typedef struct audit_journal audit_journal;

/* Open (creating DIR if needed) the journal for appending.  Checks the
 * open batch: a torn or corrupt tail (partial last line, bad JSON, broken
 * chain at the end) is moved to DIR/<batch>.quarantine-<offset> and
 * recorded as a "journal-recovered" event; damage followed by well-formed
 * records is not a tail: open fails (ST_E_VERIFY) naming batch, line and
 * seq.  With a signer, closed batches that are not sealed yet are sealed. */
audit_journal *audit_open(const char *dir, const audit_config *cfg, st_err *err);
/* Make what was written durable, close the files and release the lock;
 * the open batch stays open.
 * audit_close(NULL) is a no-op. */
void audit_close(audit_journal *j);

/* Append one record and return once it is durable (fdatasync; the folder is
 * fsynced when a batch file is created).  *seq_out (may be NULL) gets its
 * sequence number.  A terminal record that completes the batch closes it
 * (and seals it when a signer is set; a sealing failure does not fail the
 * append: it is recorded as a "seal-failed" event and retried at the next
 * open).  After an I/O error the journal refuses further appends: reopen.
 * Returns 1 (err set) when the record is durable but closing or sealing its
 * batch failed after it and could not be recorded (a disk full): the record
 * counts, the journal takes no more. */
int audit_append(audit_journal *j, const audit_event *ev, uint64_t *seq_out, st_err *err);
/* Close the open batch now (if it holds any record) and seal every closed
 * batch without a seal.  Needs a signer (ST_E_CONFIG otherwise). */
int audit_seal_now(audit_journal *j, st_err *err);
/* Audit key rollover: append an "audit-key" record naming next, the audit
 * certificate that seals every batch after this one (its DER, SHA-256 and
 * subject), then close the batch and seal it with this journal's signer,
 * so the old key vouches for the new one.  Needs a signer (ST_E_CONFIG);
 * *seq (may be NULL) gets the record's seq. */
int audit_announce_signer(audit_journal *j, X509 *next, uint64_t *seq, st_err *err);

typedef struct audit_status {
	uint64_t last_seq;      /* 0 when the journal is empty */
	unsigned batch;         /* number of the batch the next record goes to */
	unsigned batch_devices; /* devices counted in that batch so far */
	unsigned unsealed;      /* closed batches without a seal */
	uint64_t syncs;         /* fdatasync calls since open (group commit makes it < appends) */
	uint64_t appends;       /* records appended since open */
	int recovered;          /* open quarantined a torn tail: */
	uint64_t recovered_offset; /*   its byte offset in recovered_batch */
	uint64_t recovered_bytes;
	char recovered_batch[64];
	char quarantine[128];   /*   the quarantine file's name in DIR */
} audit_status;

void audit_get_status(audit_journal *j, audit_status *st);

/* ---- reading -------------------------------------------------------------- */

/* One record as read back.  Strings and details are borrowed for the
 * duration of the callback (json_incref details to keep them). */
typedef struct audit_record {
	const char *batch;  /* "batch-000002.jsonl" */
	unsigned line;      /* 1-based line in the batch */
	uint64_t offset;    /* byte offset of the line in the batch */
	uint64_t seq;
	const char *time;   /* "2026-11-21T09:43:30.123Z" */
	const char *station, *operator_name, *recipe;
	const char *jig, *device; /* NULL when the record has null */
	const char *step, *result;
	int engineering;
	json_t *details;    /* a JSON object */
	const char *hash;   /* SHA-256 (hex) of this record's line, newline included */
	const char *text;   /* the line as read, without its newline (text_len bytes) */
	size_t text_len;
	const char *details_text; /* where details is in text (audit_record_details_span) */
	size_t details_len;
} audit_record;

/* Where the value of the record's top-level "details" member is in
 * rec->text (a JSON object's text, as the station wrote it): what a reader
 * that stores the record can keep without encoding details again.  A
 * record read from a batch has it from the parse (details_text); for one
 * built by hand it is found in text.  Returns 0, or -1 where it cannot be
 * found (no text, or the member's name spelled with escapes). */
int audit_record_details_span(const audit_record *rec, const char **p, size_t *n);

/* Return 0 to go on, anything else to stop the scan (audit_scan returns it). */
typedef int (*audit_record_cb)(const audit_record *rec, void *ctx);

/* Call cb for every record of the journal in DIR, in order, checking the
 * hash chain and sequence as it goes (seals are not checked: see
 * audit_verify).  Run it after audit_open (which repairs a torn tail); any
 * damage is ST_E_VERIFY naming batch, line and seq.  Returns 0, -1 (err),
 * or cb's non-zero value. */
int audit_scan(const char *dir, audit_record_cb cb, void *ctx, st_err *err);
/* The same, calling cb only for records about device (an SE serial). */
int audit_find_device(const char *dir, const char *device, audit_record_cb cb, void *ctx, st_err *err);
/* The records of batch number n alone, its own chain checked (the first
 * record's seq and prev taken as given): to read one record back cheaply.
 * Returns 0, -1 (err: missing, unreadable or damaged), or cb's value. */
int audit_scan_batch(const char *dir, unsigned n, audit_record_cb cb, void *ctx, st_err *err);

/* ---- verifying and exporting ---------------------------------------------- */

typedef struct audit_report {
	int bundle;            /* PATH held a manifest.json */
	unsigned batches;      /* batch files found */
	unsigned sealed;       /* seals that verified */
	uint64_t records;      /* records that verified */
	uint64_t first_seq, last_seq;
	char signer[256];      /* subject of the last seal's signer */
	unsigned rollovers;    /* "audit-key" records: audit certificates announced */
	char *first_broken;    /* "batch-000002.jsonl:17: seq 117: prev hash does not match the
	                          previous record", or NULL when every record holds */
	char **problems;       /* every failure, first_broken included (capped) */
	size_t n_problems;
	char **notes;          /* facts that are not failures: an open batch, unsealed batches of
	                          a live journal, seals not checked */
	size_t n_notes;
} audit_report;

/* Verify PATH, an export bundle (it has manifest.json) or a live journal
 * folder: every record's hash chain and sequence within and across batches,
 * batch numbering, batch-close records, every seal up to a root in trust
 * (NULL: seals are not checked, a note says so) at the time it was made
 * (its signingTime, no earlier than its batch's last record), by the audit
 * certificate of the batch before it unless that batch announced another
 * ("audit-key"), and the bundle's manifest.
 * Returns 0 when everything holds, -1 otherwise: ST_E_VERIFY when the
 * journal failed verification (details in *report), other codes when PATH
 * cannot be read at all.  *report (may be NULL) is allocated either way. */
int audit_verify(const char *path, X509_STORE *trust, audit_report **report, st_err *err);
/* The same, calling cb for every record whose place in the hash chain has
 * verified, in order, as it goes: a reader that needs every record reads the
 * journal once.  Seals and the manifest are checked after the records they
 * cover, so cb's records count only when this returns 0.  When cb returns
 * non-zero, verification stops and that value is returned. */
int audit_verify_each(const char *path, X509_STORE *trust, audit_record_cb cb, void *ctx, audit_report **report,
    st_err *err);
/* Check the records of one batch file's bytes on their own: the first
 * record's seq and prev are taken as given, the rest must chain.  name is
 * used in messages.  0 when all hold, -1 (ST_E_VERIFY) otherwise. */
int audit_verify_buffer(const char *name, const void *buf, size_t len, audit_report **report, st_err *err);
void audit_report_free(audit_report *r);

typedef struct audit_export_info {
	unsigned batches;         /* sealed batches exported */
	uint64_t first_seq, last_seq;
	char open_batch[64];      /* the open batch, not exported ("" when none) */
	uint64_t open_records;
	unsigned unsealed;        /* closed batches not exported because they have no seal yet */
	char first_unsealed[64];
} audit_export_info;

/* Write a self-contained bundle to OUT (created; must not exist or be
 * empty): every sealed batch from the first up to the first unsealed one,
 * their seals and quarantine files, audit-chain.pem (the certificates the
 * seals carry), manifest.json and its seal manifest.json.p7s by signer
 * (required: an unsealed manifest would let a bundle lose its last batches
 * unnoticed).  The journal's chain is checked first; the journal is only
 * read, never modified. */
int audit_export(const char *dir, const char *out, const audit_signer *signer, audit_export_info *info,
    st_err *err);

#endif
