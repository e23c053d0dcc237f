/* The per-device provisioning engine (DESIGN.md section 2): one worker
 * thread per jig, sharing the HSM, the journal, the quota and the device
 * index.  cmd-run.c sets it up from the recipe and reports the outcome. */
#ifndef STATION_ENGINE_H
#define STATION_ENGINE_H

#include <signal.h>
#include <stddef.h>

#include "devindex.h"
#include "ui.h"

struct station; /* station.h: recipe, HSM keys, journal — the shared context */

typedef struct engine_result {
	unsigned passed, failed;
	int fatal;                 /* a configuration/HSM/journal error stopped the run (exit 2) */
	char fatal_msg[1024];
} engine_result;

/* Run workers on the jigs until count devices have been handled (0 = until
 * *stop is set).  Returns after every worker has finished. */
int engine_run(struct station *st, const char *const *jigs, size_t njigs, unsigned count,
    volatile sig_atomic_t *stop, ui *u, engine_result *res);

#endif
