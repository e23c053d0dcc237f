/* station rework: re-provision a device proven by its existing identity. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "recipe.h"
#include "rework.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: station rework --recipe FILE --authorization FILE [--jig URI] [--note TEXT]\n"
	    "                      [--operator NAME] [--json] [--require-signed] [--trust PEM]\n"
	    "                      " CLI_PIN_SYNOPSIS "\n"
	    "\n"
	    "Re-provision the provisioned device on the jig (RMA, failed final test, ownership change).\n"
	    "The device must prove its identity: its certificate chains to one of our intermediates, is\n"
	    "not revoked, and its current key signs a fresh challenge. Then the old key and certificate\n"
	    "are retired in the SE and revoked (superseded), and a new key, attested CSR and certificate\n"
	    "go through the same checks as the factory path. Every record names the old and new\n"
	    "certificate, the authorization, its reason and who signed it. A TPM device (se.family tpm2)\n"
	    "proves its IDevID key against the certificate in this station's journal; its certificate\n"
	    "indices are deleted, both keys replaced, and both certificates revoked and issued anew.\n"
	    "\n"
	    "  --recipe FILE         the recipe the device was provisioned with (or its successor)\n"
	    "  --authorization FILE  a token from 'station authorize rework' naming this SE, signed by\n"
	    "                        a key of the authorization role under the recipe's\n"
	    "                        rework.authorizers; good for one completed rework per SE\n"
	    "  --note TEXT           a remark recorded beside it (--authorized-by is the same, kept\n"
	    "                        for scripts: a name here authorizes nothing)\n"
	    "  --jig URI             the jig (default: the recipe's jig.uri)\n"
	    "  --operator NAME       recorded in the journal (default: $USER, else the account name)\n"
	    "  --json                one JSON event per line\n"
	    "  --require-signed      refuse a recipe without a valid signature (see station recipe sign)\n"
	    "  --trust PEM           recipe signers (default: the station config's recipe_signers)\n"
	    CLI_PIN_HELP
	    "\n"
	    "Exit: 0 reworked, 1 refused or failed, 2 usage or configuration error.\n");
}

int
cmd_rework_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "recipe", required_argument, NULL, 'r' },
		{ "jig", required_argument, NULL, 'j' },
		{ "authorization", required_argument, NULL, 'A' },
		{ "note", required_argument, NULL, 'a' },
		{ "authorized-by", required_argument, NULL, 'a' },
		{ "operator", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'J' },
		{ "require-signed", no_argument, NULL, 'S' },
		{ "trust", required_argument, NULL, 't' },
		CLI_PIN_LONGOPTS,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *recipe_path = NULL, *jig = NULL, *authz_path = NULL, *note = NULL, *operator_name = NULL, *trust = NULL;
	authz *az = NULL;
	int json = 0, require_signed = 0, c, pc, rc, ret = EXIT_USAGE;
	run_end end = RUN_COMPLETED;
	cli_pin pin = { 0 };
	station *st = NULL;
	ui *u = NULL;
	st_err err;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if ((pc = cli_pin_option(&pin, "rework", c, optarg)) != 0) {
			if (pc < 0)
				return EXIT_USAGE;
			continue;
		}
		switch (c) {
		case 'r': recipe_path = optarg; break;
		case 'j': jig = optarg; break;
		case 'A': authz_path = optarg; break;
		case 'a': note = optarg; break;
		case 'o': operator_name = optarg; break;
		case 'J': json = 1; break;
		case 'S': require_signed = 1; break;
		case 't': trust = optarg; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc || !recipe_path || !authz_path) {
		fprintf(stderr, "station rework: %s\n", optind != argc ? "unexpected argument"
		    : !recipe_path ? "--recipe FILE is required"
		    : "--authorization FILE is required: a rework needs a signed authorization (station authorize rework)");
		return EXIT_USAGE;
	}
	operator_name = cli_operator(operator_name);
	if (station_open(recipe_path, operator_name, STATION_OPEN_HSM | STATION_OPEN_JOURNAL, require_signed, trust, &pin,
	        &st, &err) < 0) {
		fprintf(stderr, "station rework: %s\n", err.msg);
		goto out;
	}
	cli_station_warnings("rework", st);
	if (!st->rcp->rework.authorizers) {
		fprintf(stderr, "station rework: the recipe names no rework.authorizers (the certificates that may sign "
		    "rework authorizations): this station cannot rework\n");
		goto out;
	}
	if (authz_load(authz_path, "rework", st->rcp->rework.authorizers, time(NULL), &az, &err) < 0) {
		fprintf(stderr, "station rework: %s\n", err.msg);
		goto out;
	}
	if (!jig && !(jig = station_default_jig(st))) {
		fprintf(stderr, "station rework: no --jig given and the recipe names no jig.uri\n");
		goto out;
	}
	if (!(u = ui_new(ui_mode_for(stdout, json), stdout, 1, &jig)))
		goto out;
	cmd_ui_start(u, st, "rework", 0);
	rc = rework_run(st, jig, az, note, u, &end, &err);
	{
		char how[96];

		snprintf(how, sizeof(how), "rework %s", run_end_text(end));
		ui_summary(u, run_end_name(end), how, rc < 0 ? err.msg : NULL);
	}
	if (rc < 0) {
		fprintf(stderr, "station rework: %s\n", err.msg);
		goto out;
	}
	ret = rc == 0 ? EXIT_OK : EXIT_FAIL;
out:
	authz_free(az);
	ui_free(u);
	station_close(st);
	return ret;
}
