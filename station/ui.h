/* What the operator (or the MES) sees of a run: on a terminal a header, one
 * status line per jig and a totals line redrawn in place, cut to the
 * terminal's width; plain lines otherwise (or with TERM=dumb); or one JSON
 * event per line (--json, docs/events.schema.json).  Thread-safe: workers
 * report concurrently. */
#ifndef STATION_UI_H
#define STATION_UI_H

#include <stddef.h>
#include <stdio.h>

/* The version of the --json events (docs/events.schema.json): a consumer
 * checks run_started's schema_version. */
#define UI_SCHEMA_VERSION 1

typedef enum { UI_TTY, UI_PLAIN, UI_JSON } ui_mode;

typedef struct ui ui;

/* The mode for out: JSON when asked, the terminal's when out is one (and
 * TERM is not "dumb"), else plain lines. */
ui_mode ui_mode_for(FILE *out, int json);
ui *ui_new(ui_mode mode, FILE *out, size_t njigs, const char *const *jig_names);
void ui_free(ui *u);

/* What the header and the run_started event say; any field may be NULL. */
typedef struct ui_run_info {
	const char *command;       /* "run" or "rework": the last line's first word */
	const char *run_id;
	const char *station_id;
	const char *operator_name;
	const char *recipe_name, *recipe_version, *recipe_digest;
	const char *product;
	unsigned count;            /* --count, 0 = none */
} ui_run_info;
/* The header (terminal, plain) or the run_started event (--json). */
void ui_start(ui *u, const ui_run_info *info);

void ui_device_start(ui *u, size_t jig, const char *serial);
/* step: a name of the step table (step.h); the operator reads its display
 * name, --json the name itself. */
void ui_step(ui *u, size_t jig, const char *step);
/* The jig is being asked again (attempt of at most `of`, 0 = unknown):
 * what (a command, or "open the jig"), why (a timeout, a corrupt reply).
 * Shown on the jig's line until its device ends; a retry event. */
void ui_retry(ui *u, size_t jig, const char *what, unsigned attempt, unsigned of, const char *why);
void ui_pass(ui *u, size_t jig, const char *serial, const char *cert_serial, int resumed);

/* A device that failed.  code: a stable name of what kind of failure
 * (timeout, verification, ...), disposition: of the device (reseat,
 * quarantine, ...), both from the schema's lists; cert_serial: the
 * certificate it was issued, or NULL; reason: what happened; advice: what
 * the operator should do. */
typedef struct ui_failure {
	const char *serial, *step, *code, *jig_error, *disposition, *cert_serial, *reason, *advice;
} ui_failure;
void ui_failed(ui *u, size_t jig, const ui_failure *f);
/* The same with no code, disposition or certificate. */
void ui_fail(ui *u, size_t jig, const char *serial, const char *step, const char *reason, const char *advice);

/* A certificate revoked by this command (device: the SE serial). */
void ui_revoked(ui *u, const char *device, const char *cert_serial, const char *reason, const char *why);
/* The run, or one jig (jig != (size_t)-1), stopped for reason (a run_end
 * name: quota, hsm, disk-full, ...); message says why, for --json (the
 * command prints it on stderr). */
void ui_halt(ui *u, size_t jig, const char *reason, const char *message);
/* A message about a jig, not a device (disconnected, reopened, waiting). */
void ui_jig_note(ui *u, size_t jig, const char *what);
/* Redraw elapsed times and follow a resized terminal (call about four
 * times a second from the thread that blocks SIGWINCH last: see ui_block_winch). */
void ui_tick(ui *u);
/* Block SIGWINCH in the calling thread (and the threads it creates later):
 * ui_tick takes it with sigtimedwait, so no thread's system call is ever
 * interrupted by a resize. */
void ui_block_winch(void);
/* The last lines: per jig what passed and failed (by step), the counts and
 * how the run ended (end: "completed" or a stop reason's name; how: the
 * same in words; stopped: the error that stopped it, or NULL: in --json
 * only, the command prints it on stderr). */
void ui_summary(ui *u, const char *end, const char *how, const char *stopped);
/* s as text for a terminal, a log or a report: control bytes (C0, DEL, C1)
 * and invalid UTF-8 as \xNN, cut to fit buf (cap bytes).  Returns buf. */
const char *ui_text_clean(const char *s, char *buf, size_t cap);
/* Totals so far. */
void ui_counts(ui *u, unsigned *passed, unsigned *failed);

#endif
