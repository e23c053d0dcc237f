/* station-registry: the fleet registry.  Ingests the stations' signed audit
 * bundles into PostgreSQL and correlates them.  See docs/REGISTRY.md. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "registry.h"

struct command {
	const char *name;
	int (*main)(struct reg *r, int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "init", cmd_init, "create or migrate the schema and the ingest and read roles" },
	{ "ingest", cmd_ingest, "verify bundles and load them (ingest --ca ROOT.pem BUNDLE...)" },
	{ "device", cmd_device, "a device's history across stations (device SERIAL)" },
	{ "certificate", cmd_certificate, "one certificate, where it was issued and its status" },
	{ "alarms", cmd_alarms, "open alarms; exit 1 while any is open" },
	{ "stations", cmd_stations, "enrolled stations and their audit keys (stations add STATION --cert AUDIT.pem)" },
	{ "watch", cmd_watch, "ingest every bundle delivered to a spool folder (watch --ca ROOT.pem DIR)" },
	{ "report", cmd_report, "per station and day: devices, yield, failures, revocations" },
	{ "revocations", cmd_revocations, "every revocation of one issuer, for station crl --revocations" },
};

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: station-registry [--db URI] [--json] COMMAND [ARGS]\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nWithout --db, libpq's environment (PGHOST, PGDATABASE, PGUSER...) names the database.\n"
	           "--json prints one JSON document instead of text.\n"
	           "Exit codes: 0 success, 1 a bundle was refused or an alarm is open, 2 usage or configuration error.\n"
	           "Manual: station-registry(1).\n");
}

int
main(int argc, char **argv)
{
	enum { O_DB = 1, O_JSON, O_HELP };
	static const struct option opts[] = {
		{ "db", required_argument, NULL, O_DB },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct rlimit nocore = { 0, 0 };
	struct reg r = { 0 };
	size_t i;
	int c, idx, ret = EXIT_USAGE;

	/* Never dump core: a core would hold the database password. */
	setrlimit(RLIMIT_CORE, &nocore);
	prctl(PR_SET_DUMPABLE, 0);
	/* Options before the command are ours; the command parses the rest. */
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case O_DB: r.db = optarg; break;
		case O_JSON: r.json = 1; break;
		case 'h':
		case O_HELP: usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[optind], "help") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			break;
	if (i == sizeof(commands) / sizeof(commands[0])) {
		fprintf(stderr, "station-registry: unknown command '%s'\n\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	/* getopt in the command starts over at its own argv[1]. */
	idx = optind;
	optind = 0;
	ret = commands[i].main(&r, argc - idx, argv + idx);
	reg_disconnect(&r);
	return ret;
}
