/* The per-device provisioning engine (DESIGN.md section 2): one worker
 * thread per jig, sharing the HSM, the journal, the quota and the device
 * index.  cmd-run.c sets it up from the recipe and reports the outcome. */
#ifndef STATION_ENGINE_H
#define STATION_ENGINE_H

#include <signal.h>
#include <stddef.h>

#include "history.h"
#include "ui.h"

struct station; /* station.h: recipe, HSM keys, journal — the shared context */

/* How a run ended: completed (--count reached), or why it stopped. */
typedef enum run_end {
	RUN_COMPLETED = 0,
	RUN_STOP_INTERRUPT, /* SIGINT: the operator's Ctrl-C */
	RUN_STOP_SIGTERM,
	RUN_STOP_SIGHUP,    /* the terminal was closed */
	RUN_STOP_QUIT,      /* a second signal: quit at once */
	RUN_STOP_QUOTA,     /* the recipe's issuance quota is used up */
	RUN_STOP_HSM,       /* the HSM failed to sign */
	RUN_STOP_DISK_FULL, /* the journal or the certificate copies: no space left */
	RUN_STOP_JOURNAL,   /* the journal or the certificate copies: another write error */
	RUN_STOP_CONFIG,    /* configuration found wrong during the run, or no jig reachable */
	RUN_STOP_JIG,       /* the last jig in the run was taken out: it kept failing */
	RUN_STOP_HALT,      /* the recipe's anomaly halt: too many attestation or posture failures */
} run_end;

/* The --json "reason" and the words of the last line. */
const char *run_end_name(run_end end);
const char *run_end_text(run_end end);

typedef struct engine_result {
	unsigned passed, failed;
	run_end end;
	int fatal;                 /* an error stopped the run (fatal_msg says which) */
	char fatal_msg[1024];
} engine_result;

/* Run workers on the jigs until count devices have been handled (0 = until
 * *stop is set to the number of the signal that asks to stop; *quit set
 * means return at once without waiting for the workers).  Returns after
 * every worker has finished, or at once on *quit. */
int engine_run(struct station *st, const char *const *jigs, size_t njigs, unsigned count,
    volatile sig_atomic_t *stop, volatile sig_atomic_t *quit, ui *u, engine_result *res);

#endif
