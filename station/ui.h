/* What the operator (or the MES) sees of a run: one status line per jig and
 * a totals line redrawn in place on a terminal, plain lines otherwise, or one
 * JSON event per line (--json).  Thread-safe: workers report concurrently. */
#ifndef STATION_UI_H
#define STATION_UI_H

#include <stddef.h>
#include <stdio.h>

typedef enum { UI_TTY, UI_PLAIN, UI_JSON } ui_mode;

typedef struct ui ui;

ui *ui_new(ui_mode mode, FILE *out, size_t njigs, const char *const *jig_names);
void ui_free(ui *u);
/* The last line's first word ("RUN" unless set; "REWORK"). */
void ui_set_title(ui *u, const char *title);
void ui_device_start(ui *u, size_t jig, const char *serial);
void ui_step(ui *u, size_t jig, const char *step);
void ui_pass(ui *u, size_t jig, const char *serial, const char *cert_serial, int resumed);
/* reason: what happened; advice: what the operator should do. */
void ui_fail(ui *u, size_t jig, const char *serial, const char *step, const char *reason, const char *advice);
/* A message about a jig, not a device (disconnected, reopened, waiting). */
void ui_jig_note(ui *u, size_t jig, const char *what);
/* Redraw elapsed times (call about once a second from the main thread). */
void ui_tick(ui *u);
/* The last line: the counts and how the run ended (end: "completed" or a
 * stop reason's name; how: the same in words; stopped: the error that
 * stopped it, or NULL: in --json only, the command prints it on stderr). */
void ui_summary(ui *u, const char *end, const char *how, const char *stopped);
/* Totals so far. */
void ui_counts(ui *u, unsigned *passed, unsigned *failed);

#endif
