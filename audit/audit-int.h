/* libaudit internals shared by its files; not installed, not for callers. */
#ifndef AUDIT_INT_H
#define AUDIT_INT_H

#include <pthread.h>

#include "audit.h"

#define AUDIT_BATCH_FILE_MAX (1024u << 20) /* a batch file larger than this is refused */
#define AUDIT_LOCK_FILE "journal.lock"
#define AUDIT_MANIFEST "manifest.json"
#define AUDIT_CHAIN_FILE "audit-chain.pem"
#define AUDIT_BUNDLE_FORMAT "station-audit-bundle"

/* Where the chain stands: the seq and hash the next record must carry.
 * Not anchored: the next record's seq and prev are taken as given. */
struct audit_chain {
	int anchored;
	uint64_t next_seq;
	uint8_t prev[32];
};

void audit_chain_start(struct audit_chain *c); /* seq 1, prev = 64 zeros */

/* What a walk over one batch's bytes found. */
struct audit_walk {
	unsigned records;   /* good records */
	uint64_t good_end;  /* byte offset just after the last good record */
	uint64_t first_seq, last_seq;
	unsigned devices;   /* terminal records */
	int closed;         /* the last good record is batch-close */
	json_t *last;       /* the last good record (a reference), or NULL */
	int bad;            /* a record failed: */
	unsigned bad_line;
	uint64_t bad_offset;
	char msg[768];      /*   "batch-000002.jsonl:17: seq 117: prev hash does not match ..." */
};

typedef int (*audit_walk_cb)(const audit_record *rec, void *ctx);

/* Check every record of buf (one batch file named name) against c,
 * advancing c.  Stops at the first bad record (w->bad) or when cb returns
 * non-zero (returned).  Returns 0 otherwise.  Free w->last with
 * audit_walk_clear. */
int audit_walk_batch(const char *name, const uint8_t *buf, size_t len, struct audit_chain *c, struct audit_walk *w,
    audit_walk_cb cb, void *ctx);
void audit_walk_clear(struct audit_walk *w);
/* 1 when a complete line after the one at off parses as a well-formed
 * record: the damage at off is in the middle, not a torn tail. */
int audit_good_record_after(const uint8_t *buf, size_t len, uint64_t off);

/* What audit_record_parse decoded: rec's strings and details live here
 * until the next parse with it, or audit_parsed_clear.  Zero it first. */
struct audit_parsed {
	char *buf;      /* the decoded strings */
	size_t cap;
	json_t *details;
	const char *prev; /* the "prev" member: 64 hex digits */
};

/* Parse one line (without its newline) into rec; ps holds what rec points
 * to.  On failure -1 and a reason in why. */
int audit_record_parse(const char *line, size_t len, struct audit_parsed *ps, audit_record *rec, char *why,
    size_t why_len);
void audit_parsed_clear(struct audit_parsed *ps);

/* The fields a writer puts in a record, beside the event. */
struct audit_head {
	const char *station, *operator_name, *recipe;
	int engineering;
};
/* Encode one record line, newline included, into *line (malloc'd). */
int audit_record_encode(const struct audit_head *h, uint64_t seq, const uint8_t prev[32], const audit_event *ev,
    char **line, size_t *len, st_err *err);
/* "2026-11-21T09:43:30.123Z" (UTC, milliseconds). */
void audit_time_now(char out[32]);

/* Batch numbers present in dir, sorted; *nums malloc'd. */
int audit_batch_list(const char *dir, unsigned **nums, size_t *n, st_err *err);
/* dir/name into a malloc'd string (NULL when out of memory). */
char *audit_path(const char *dir, const char *name);
int audit_is_hex(const char *s, size_t len);

/* ---- the journal: journal.c writes, journal-open.c opens and recovers ---- */

struct audit_journal {
	char *dir;
	int dirfd, lockfd;
	int fd; /* the open batch file; -1: the next append starts batch `batch` */
	pthread_mutex_t mu;
	pthread_cond_t cv;

	struct audit_head head;
	char *station, *operator_name, *recipe; /* owned strings behind head */
	unsigned batch_max;
	const audit_signer *signer;

	unsigned batch;   /* number of the open batch (or the next one when fd < 0) */
	unsigned devices; /* terminal records in it */
	unsigned records; /* records in it */
	uint64_t next_seq;
	uint8_t prev[32];

	uint64_t written, durable; /* highest seq written / covered by an fdatasync */
	int syncing, rotating;
	int broken;
	st_err broken_err;

	uint64_t syncs, appends;
	unsigned unsealed;
	audit_status recovery;
};

/* What both halves of the journal use; "_locked": with j->mu held. */
int audit_exists_at(int dirfd, const char *name);
/* Batch num of j's folder into *buf (malloc'd). */
int audit_read_batch(audit_journal *j, unsigned num, uint8_t **buf, size_t *len, st_err *err);
/* Seal every closed batch that has no seal yet. */
int audit_seal_pending_locked(audit_journal *j, st_err *err);
/* Encode and write one record at the end of the open batch (not yet durable). */
int audit_write_record_locked(audit_journal *j, const audit_event *ev, uint64_t *seq, st_err *err);
/* Make everything written durable now. */
int audit_sync_now_locked(audit_journal *j, st_err *err);
/* Close the open batch with its batch-close record, make it durable, and
 * seal it when a signer is set (a sealing failure goes to seal_err). */
int audit_close_batch_locked(audit_journal *j, const char *reason, st_err *seal_err, st_err *err);

#endif
