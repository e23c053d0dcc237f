/* station quota: where the shift quota stands, and its release by someone
 * the recipe names (quota.release_signers). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "hsm.h"
#include "recipe.h"
#include "station.h"

static void
status_usage(FILE *f)
{
	fprintf(f, "usage: station quota status --recipe FILE\n"
	           "\n"
	           "How many certificates the journal shows issued since the last valid release, and how many\n"
	           "the recipe's quota.max_per_shift allows.  Exit: 0, 1 the shift quota is used up, 2 usage.\n");
}

static void
release_usage(FILE *f)
{
	fprintf(f, "usage: station quota release --recipe FILE --key-label LABEL --reason TEXT\n"
	           "                             [--token LABEL] " CLI_PIN_SYNOPSIS " [--operator NAME]\n"
	           "\n"
	           "Open a new shift: sign a release with the key LABEL, whose certificate must be in the\n"
	           "recipe's quota.release_signers, and record it in the journal.  The key is in the recipe's\n"
	           "HSM token, or in --token (a token of the same module, e.g. the supervisor's own).\n"
	           CLI_PIN_HELP
	           "Exit: 0 released, 1 refused (the key may not release), 2 usage or configuration.\n");
}

static int
cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "recipe", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *recipe_path = NULL;
	station *st = NULL;
	st_err err;
	int c, ret = EXIT_USAGE;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r': recipe_path = optarg; break;
		case 'h': status_usage(stdout); return EXIT_OK;
		default: status_usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc || !recipe_path) {
		fprintf(stderr, "station quota status: --recipe FILE is required\n");
		return EXIT_USAGE;
	}
	if (station_open(recipe_path, "-", STATION_OPEN_JOURNAL, 0, NULL, NULL, &st, &err) < 0) {
		fprintf(stderr, "station quota status: %s\n", err.msg);
		goto out;
	}
	if (st->shift_no)
		printf("shift %u: %u of %u certificates issued since release %u (%s)\n", st->shift_no + 1, st->shift_issued,
		    st->quota_shift, st->shift_no, st->shift_since);
	else
		printf("shift 1: %u of %u certificates issued since the journal began\n", st->shift_issued,
		    st->quota_shift);
	ret = station_quota_check(st, &err) < 0 ? EXIT_FAIL : EXIT_OK;
	if (ret == EXIT_FAIL)
		printf("%s\n", err.msg);
out:
	station_close(st);
	return ret;
}

static int
cmd_release(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "recipe", required_argument, NULL, 'r' },
		{ "key-label", required_argument, NULL, 'k' },
		{ "reason", required_argument, NULL, 'R' },
		{ "token", required_argument, NULL, 't' },
		{ "operator", required_argument, NULL, 'o' },
		CLI_PIN_LONGOPTS,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *recipe_path = NULL, *label = NULL, *reason = NULL, *token = NULL, *operator_name = NULL;
	cli_pin pin = { 0 };
	char signer[512];
	station *st = NULL;
	hsm_ctx *hsm = NULL;
	hsm_key *key = NULL;
	st_err err;
	int c, pc, ret = EXIT_USAGE;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((pc = cli_pin_option(&pin, "quota release", c, optarg)) != 0) {
			if (pc < 0)
				return EXIT_USAGE;
			continue;
		}
		switch (c) {
		case 'r': recipe_path = optarg; break;
		case 'k': label = optarg; break;
		case 'R': reason = optarg; break;
		case 't': token = optarg; break;
		case 'o': operator_name = optarg; break;
		case 'h': release_usage(stdout); return EXIT_OK;
		default: release_usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc || !recipe_path || !label || !reason || !*reason) {
		fprintf(stderr, "station quota release: need --recipe, --key-label and --reason\n");
		release_usage(stderr);
		return EXIT_USAGE;
	}
	if (!operator_name)
		operator_name = getenv("USER") ? getenv("USER") : "unknown";
	/* The journal, and the signer's HSM on its own (one PKCS#11 context per
	 * process): the recipe's token, or the signer's --token. */
	if (station_open(recipe_path, operator_name, STATION_OPEN_JOURNAL, 0, NULL, NULL, &st, &err) < 0) {
		fprintf(stderr, "station quota release: %s\n", err.msg);
		goto out;
	}
	{
		hsm_pin_source src;

		/* Another token's PIN is not the recipe's: only the command line's. */
		cli_pin_source(&pin, token ? NULL : st->rcp, &src);
		if (!(hsm = hsm_open(st->rcp->hsm.module, token ? token : st->rcp->hsm.token, &src, &err))) {
			fprintf(stderr, "station quota release: HSM: %s\n", err.msg);
			goto out;
		}
	}
	if (!(key = hsm_key_find(hsm, label, &err))) {
		fprintf(stderr, "station quota release: %s\n", err.msg);
		goto out;
	}
	if (station_quota_release(st, key, reason, signer, sizeof(signer), &err) < 0) {
		fprintf(stderr, "station quota release: %s\n", err.msg);
		ret = err.code == ST_E_VERIFY ? EXIT_FAIL : EXIT_USAGE;
		goto out;
	}
	printf("release %u signed by %s: shift %u allows %u certificates\n", st->shift_no, signer, st->shift_no + 1,
	    st->quota_shift);
	ret = EXIT_OK;
out:
	hsm_key_free(key);
	hsm_close(hsm);
	station_close(st);
	return ret;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: station quota status --recipe FILE      where the shift quota stands\n"
	           "       station quota release --recipe FILE --key-label LABEL --reason TEXT   open a new shift\n"
	           "'station quota release --help' for the options.\n");
}

int
cmd_quota_main(int argc, char **argv)
{
	static const struct subcommand subs[] = {
		{ "status", cmd_status },
		{ "release", cmd_release },
	};

	return cli_dispatch("quota", subs, sizeof(subs) / sizeof(subs[0]), usage, argc, argv);
}
