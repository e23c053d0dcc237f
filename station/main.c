/* station: provisioning station for a factory line.  See README.md. */
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "commands.h"
#include "st.h"
#include "station-config.h"

struct command {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "run", cmd_run_main, "provision the devices on one or more jigs with a recipe" },
	{ "jig", cmd_jig_main, "list jigs, show a jig and its device (jig list|info)" },
	{ "hsm", cmd_hsm_main, "check the HSM token, keys and certificates (hsm check)" },
	{ "recipe", cmd_recipe_main, "validate or sign a recipe (recipe check|sign)" },
	{ "audit", cmd_audit_main, "seal, export and verify the audit journal (audit seal|export|verify)" },
	{ "rework", cmd_rework_main, "re-provision a device proven by its existing identity" },
	{ "authorize", cmd_authorize_main, "sign a rework authorization (authorize rework)" },
	{ "revoke", cmd_revoke_main, "record the revocation of a certificate or device" },
	{ "quota", cmd_quota_main, "where the shift quota stands; its signed release" },
	{ "crl", cmd_crl_main, "write a CRL signed by the intermediate" },
	{ "device", cmd_device_main, "one device's history and certificates from the local journal" },
};

int
cli_dispatch(const char *command, const struct subcommand *subs, size_t n, void (*sub_usage)(FILE *), int argc,
    char **argv)
{
	size_t i;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0)) {
		sub_usage(stdout);
		return EXIT_OK;
	}
	for (i = 0; argc >= 2 && i < n; i++)
		if (strcmp(argv[1], subs[i].name) == 0)
			return subs[i].main(argc - 1, argv + 1);
	if (argc >= 2)
		fprintf(stderr, "station %s: unknown subcommand '%s'\n\n", command, argv[1]);
	sub_usage(stderr);
	return EXIT_USAGE;
}

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: station COMMAND [OPTIONS]\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'station help COMMAND' or 'station COMMAND --help' for a command's options.\n"
	           "Exit codes: 0 success, 1 a device or check failed, 2 usage or configuration error.\n"
	           "Manual: station(1); the recipe format station-recipe(5), the audit journal station-audit(5).\n");
}

static const struct command *
find_command(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Invariant 7: a station process holds the HSM PIN (until login) and a
 * logged-in token session, so it never writes a core dump, whatever the
 * shell's ulimit or the core_pattern pipe; non-dumpable also keeps other
 * processes of the same user from attaching to it. */
static void
no_core_dumps(void)
{
	struct rlimit none = { 0, 0 };

	setrlimit(RLIMIT_CORE, &none);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int
main(int argc, char **argv)
{
	const struct command *cmd;

	no_core_dumps();
	/* A network HSM (PKCS#11 over a socket) that goes away must be an
	 * error the station reports, not a signal that kills it mid-batch. */
	signal(SIGPIPE, SIG_IGN);
	st_log_from_env(); /* libraries log only through the handler we choose */

	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("station %s\n", STATION_VERSION);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "help") == 0) {
		char *help_argv[] = { NULL, (char *)"--help", NULL };

		if (argc < 3) {
			usage(stdout);
			return EXIT_OK;
		}
		if (!(cmd = find_command(argv[2]))) {
			fprintf(stderr, "station: unknown command '%s'\n", argv[2]);
			return EXIT_USAGE;
		}
		help_argv[0] = argv[2];
		return cmd->main(2, help_argv);
	}
	if (!(cmd = find_command(argv[1]))) {
		fprintf(stderr, "station: unknown command '%s'\n\n", argv[1]);
		usage(stderr);
		return EXIT_USAGE;
	}
	return cmd->main(argc - 1, argv + 1);
}
