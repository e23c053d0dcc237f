/* The station's subcommands: each lives in its own cmd-*.c and is listed
 * once in main.c's table.  A command returns the process exit code:
 * 0 success, 1 a device or a verification failed, 2 usage/configuration. */
#ifndef STATION_COMMANDS_H
#define STATION_COMMANDS_H

#include <stddef.h>
#include <stdio.h>

/* README "Exit codes" lists these; keep the two in step. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_STOPPED = 3, EXIT_DISK = 4 };

int cmd_run_main(int argc, char **argv);
int cmd_jig_main(int argc, char **argv);
int cmd_hsm_main(int argc, char **argv);
int cmd_recipe_main(int argc, char **argv);
int cmd_audit_main(int argc, char **argv);
int cmd_rework_main(int argc, char **argv);
int cmd_revoke_main(int argc, char **argv);
int cmd_crl_main(int argc, char **argv);
int cmd_authorize_main(int argc, char **argv);
int cmd_quota_main(int argc, char **argv);
int cmd_device_main(int argc, char **argv);
/* station audit report (cmd-audit-report.c), a sub-command of audit. */
int cmd_audit_report(int argc, char **argv);

struct ui;
struct station;
/* cmd-run.c: the header (or run_started event) of station run and rework:
 * the recipe, station, operator, a fresh run id. */
void cmd_ui_start(struct ui *u, struct station *st, const char *command, unsigned count);

/* Commands with sub-commands (station jig info|list, ...): one table each. */
struct subcommand {
	const char *name;
	int (*main)(int argc, char **argv);
};

/* Run the sub-command argv[1] names (argv[0] is the command), or show
 * usage: --help/-h/help on stdout (exit 0), anything else on stderr (2). */
int cli_dispatch(const char *command, const struct subcommand *subs, size_t n, void (*usage)(FILE *), int argc,
    char **argv);

#endif
