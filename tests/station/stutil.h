/* Helpers for the `station run` tests: a throw-away workspace holding a copy
 * of the demo recipe beside a test PKI, jigsim in-process on a thread (so a
 * test can look inside every simulated SE), the station program as a child
 * process, its --json events, and what its audit journal says. */
#ifndef STUTIL_H
#define STUTIL_H

#include <sys/resource.h>
#include <sys/types.h>

#include <jansson.h>

#include "jigsim.h"
#include "testutil.h"

/* ---- workspace ----------------------------------------------------------- */

typedef struct stu_ws {
	char *dir;           /* W: removed by stu_ws_free */
	const char *pki;     /* the PKI (W/pki is a link to it; not removed) */
	char recipe[4096];   /* W/demo.yaml, a copy of recipes/examples/demo.yaml */
	char audit[4096];    /* W/audit, the recipe's audit.dir */
	unsigned runs;       /* station runs so far (names their output files) */
	const char *const *extra; /* more arguments for the next station runs (NULL-terminated), or NULL */
} stu_ws;

stu_ws *stu_ws_new(const char *pki);
void stu_ws_free(stu_ws *w);
/* Replace the one occurrence of `from` in the recipe copy by `to` (the test
 * fails when `from` is not there exactly once). */
void stu_recipe_edit(stu_ws *w, const char *from, const char *to);

/* ---- jigsim on a thread ----------------------------------------------------- */

typedef struct stu_sim {
	jigsim *s;
	pthread_t thread;
	char uri[300];   /* tcp:127.0.0.1:PORT */
} stu_sim;

/* Start jigsim with c (jigsim_config_init + the test's settings; the SE
 * vendor CA and the tool key are taken from pki) listening on loopback. */
stu_sim *stu_sim_start(const char *pki, const jigsim_config *c);
void stu_sim_stop(stu_sim *sim);
/* c's jig on jigsim's emulated 115200-baud line, its HELLO listing fast
 * too (what SET_BAUD asks for); baud_fail: nothing arrives at fast. */
void stu_config_line(jigsim_config *c, uint32_t fast, int baud_fail);

/* ---- the station program ------------------------------------------------------ */

typedef struct stu_run {
	int status;        /* exit code, or 128 + signal */
	char *out, *err;   /* stdout, stderr */
	json_t *events;    /* with --json: every stdout line, parsed (an array) */
	struct rusage ru;  /* the child's own user/sys time */
	double wall_s;
	pid_t pid;
	double start_s;
	char out_path[4200], err_path[4200];
	int json;
} stu_run;

/* Spawn `station run --recipe W/demo.yaml --jig JIG --count N --operator stu
 * [--json]` (count 0: no --count).  stu_station_wait collects it; every
 * stdout line must be valid JSON when json is set. */
void stu_station_start(stu_ws *w, const char *jig, unsigned count, int json, stu_run *r);
/* The same with one --jig per entry of jigs (a gang run). */
void stu_station_start_jigs(stu_ws *w, const char *const *jigs, size_t njigs, unsigned count, int json, stu_run *r);
void stu_station_wait(stu_run *r, int timeout_s);
/* Both in one. */
void stu_station_run(stu_ws *w, const char *jig, unsigned count, int json, stu_run *r);
void stu_run_clear(stu_run *r);
/* The end of a long output, for a failure message (Check caps its size). */
const char *stu_tail(const char *s);

/* Spawn argv with stdout/stderr to files ("/dev/null" allowed); wait for it
 * at most timeout_s (the test fails and the child is killed after that). */
pid_t stu_spawn(char *const argv[], const char *out_path, const char *err_path);
int stu_wait(pid_t pid, int timeout_s, struct rusage *ru);

/* ---- --json events ----------------------------------------------------------- */

/* The first event of this kind (about device, unless NULL), or NULL. */
json_t *stu_event(const stu_run *r, const char *event, const char *device);
unsigned stu_event_count(const stu_run *r, const char *event);
const char *stu_str(json_t *obj, const char *key); /* "" when absent */

/* ---- the journal ------------------------------------------------------------------ */

#define STU_MAX_CERTS 8
typedef struct stu_ledger {
	char serial[65];
	unsigned issued, revoked;
	char issued_serial[STU_MAX_CERTS][41];
	char revoked_serial[STU_MAX_CERTS][41];
	char done_serial[41];   /* cert_serial of the "done"/"pass" record, "" when none */
	char fail_step[32];     /* step of the last "fail" record, "" when none */
	unsigned passes, fails, resumes, abandons;
} stu_ledger;

typedef struct stu_journal {
	stu_ledger *dev;
	size_t n;
	unsigned records;
} stu_journal;

/* Read the journal in dir through libaudit's scan (which checks the hash
 * chain on the way); the test fails if it cannot. */
void stu_journal_load(const char *dir, stu_journal *j);
void stu_journal_clear(stu_journal *j);
stu_ledger *stu_journal_dev(stu_journal *j, const char *serial);
/* Certificates issued for the device and not revoked. */
unsigned stu_live(const stu_ledger *l);
/* Never two live certificates for one SE, and a passed device's certificate
 * is its live one: checked for every device of the journal. */
void stu_journal_check_live(stu_journal *j);

/* `station audit verify W/audit --ca W/pki/root-ca.pem` must pass, and the
 * journal must hold to audit/FORMAT.md (stu_format_check). */
void stu_audit_verify(stu_ws *w);

/* What audit/FORMAT.md section 3 documents, read from its tables: the
 * step names (the station's with operator name and lazy or durable, and
 * libaudit's), the results and the details members; each list is
 * NUL-separated, ending in "". */
#define STU_FORMAT_MAX 64
typedef struct stu_format {
	char steps[2048], results[512], details[4096];
	struct {
		char name[32], display[32];
		int lazy;
	} step[STU_FORMAT_MAX];
	size_t nsteps;
} stu_format;
void stu_format_load(stu_format *f);
int stu_format_has(const char *list, const char *name);
/* Every record of the journal in dir: its step, result and details members
 * are ones FORMAT.md documents, and jig is null or a URI (never "-"). */
void stu_format_check(const char *dir);
/* A command's exit status rc and output out (freed): the test fails unless
 * it exited want and out says `says`; what names the command. */
void stu_expect(int rc, char *out, int want, const char *says, const char *what);

/* ---- certificates -------------------------------------------------------------------- */

/* The station's copy of the SE's certificate: W/audit/certs/SERIAL.pem, or
 * once revoked the newest W/audit/certs/revoked/SERIAL-*.pem (malloc'd). */
char *stu_cert_path(stu_ws *w, const char *se_serial);
/* Read that copy as DER (malloc'd); NULL when absent. */
uint8_t *stu_cert_der(stu_ws *w, const char *se_serial, size_t *len);
/* The device certificate checks of the end-to-end test for device `index`
 * of the panel: the station's copy exists, equals what the SE holds in slot
 * 0 byte for byte, names the SE serial in its subject serialNumber, the SE
 * is locked.  Appends the PEM path to paths (for one `openssl verify`). */
void stu_check_device_cert(stu_ws *w, jigsim *s, unsigned index, char ***paths, size_t *npaths);
/* `openssl verify -x509_strict` of every file against the test root, the
 * intermediate untrusted. */
void stu_openssl_verify(stu_ws *w, char **paths, size_t n);

/* The printf-formatted shell command must exit 0 and, when want is not
 * NULL, say it (on stdout or stderr); the test fails otherwise. */
void stu_sh_ok(const char *want, const char *fmt, ...) ST_PRINTF(2, 3);
/* A station command's result (rc, its output, freed here): exit 0 and,
 * when want is not NULL, that text in its output. */
void stu_cmd_ok(const char *what, const char *want, int rc, char *text);

double stu_now(void);
void stu_sleep_ms(unsigned ms);

#endif
