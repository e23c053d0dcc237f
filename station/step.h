/* The station's steps in one table (step.c): the name every journal record
 * and --json event spells, the name the operator reads, and whether the
 * step's success record may be written lazily (it precedes no effect
 * outside the station, invariant 6).  The engine, rework, the UI and every
 * reader of the journal use these names; audit/FORMAT.md section 3 lists
 * them, and tests/station's format check holds every test journal to it. */
#ifndef STATION_STEP_H
#define STATION_STEP_H

/* Steps a device can be shown at and fail at (its phases), in order. */
#define STEP_IDENTIFY "identify"
#define STEP_POSTURE "posture"
#define STEP_AUTH "auth"
#define STEP_KEYGEN "keygen"
#define STEP_CSR "csr"
#define STEP_VERIFY "verify"
#define STEP_ACTIVATE "activate"  /* TPM: the IAK's credential activation (verify) */
#define STEP_JOURNAL "journal"    /* the quota and the "issuing" record before the HSM signs */
#define STEP_SIGN "sign"
#define STEP_INSTALL "install"
#define STEP_LOCK "lock"
#define STEP_DONE "done"
#define STEP_REWORK "rework"
#define STEP_RETIRE "retire"
/* Records within a step. */
#define STEP_ISSUING "issuing"    /* journal: the serial chosen, before the HSM signs */
#define STEP_ISSUED "issued"      /* sign: the certificate, before it leaves */
#define STEP_RESUME "resume"      /* sign: the certificate issued before is taken up */
#define STEP_LOCKING "locking"    /* lock: before LOCK goes to the SE */
#define STEP_QUOTA "quota"        /* journal: the quota refused an issuance */
#define STEP_REVOKE "revoke"
#define STEP_ABANDONED "abandoned" /* the run stopped before the device was signed */
#define STEP_REWORK_START "rework-start"
#define STEP_REWORK_AUTH "rework-auth"
#define STEP_CRL "crl"
#define STEP_QUOTA_RELEASE "quota-release" /* a station record: a signed release of the shift quota */
#define STEP_HALT "halt"               /* the anomaly halt: the run stops issuing */
#define STEP_HALT_RESUME "halt-resume" /* a signed resume lifts it */

typedef struct step_def {
	const char *name;    /* journal and --json spelling */
	const char *display; /* what the operator reads: "VERIFY" */
	int lazy;            /* an "ok" record of it may be written lazily */
} step_def;

/* The table entry of a step name, or NULL. */
const step_def *step_find(const char *name);
/* The operator's word for a step name (the name itself when unknown). */
const char *step_display(const char *name);
/* 1 when a record of this step and result may be written lazily. */
int step_is_lazy(const char *name, const char *result);
/* The whole table (for the tests that hold FORMAT.md to it). */
const step_def *step_table(size_t *n);

#endif
