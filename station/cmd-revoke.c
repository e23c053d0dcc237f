/* station revoke: record the revocation of a certificate (or a device's). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli.h"
#include "authz.h"
#include "commands.h"
#include "hsm.h"
#include "recipe.h"
#include "revlist.h"
#include "station.h"
#include "step.h"

/* The device's most recent certificate that is not revoked yet; when all
 * are, its most recent one (already revoked, which the caller says). */
static int
pick_latest(const history_cert *c, void *ctx)
{
	history_cert *t = ctx;

	if (!c->issued && !c->revoked)
		return 0; /* announced only: no certificate to revoke */
	if (!c->revoked || !t->serial[0] || t->revoked)
		*t = *c;
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: station revoke --recipe FILE (--cert-serial HEX | --device SE_SERIAL) --reason REASON\n"
	    "                      [--operator NAME] [--authorization FILE] [--require-signed] [--trust PEM]\n"
	    "                      " CLI_PIN_SYNOPSIS "\n"
	    "\n"
	    "Record in the audit journal that a certificate this station issued is revoked; the next\n"
	    "'station crl' lists it. --device revokes that SE's live certificate (a scrapped device).\n"
	    "REASON: keyCompromise, cACompromise, affiliationChanged, superseded,\n"
	    "        cessationOfOperation, certificateHold, privilegeWithdrawn, unspecified.\n"
	    "REASON is recorded in RFC 5280's spelling, whatever its case here.\n"
	    "--authorization FILE: a token from 'station authorize revoke' naming the device; required\n"
	    "when the recipe says rework.revoke_needs_authorization: true.\n"
	    "--require-signed refuses a recipe without a valid signature; --trust PEM names its signers.\n"
	    CLI_PIN_HELP
	    "Exit: 0 recorded (or already revoked), 2 usage, configuration, or an unknown certificate.\n");
}

int
cmd_revoke_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "recipe", required_argument, NULL, 'r' },
		{ "cert-serial", required_argument, NULL, 'c' },
		{ "device", required_argument, NULL, 'd' },
		{ "reason", required_argument, NULL, 'R' },
		{ "operator", required_argument, NULL, 'o' },
		{ "authorization", required_argument, NULL, 'A' },
		{ "require-signed", no_argument, NULL, 'S' },
		{ "trust", required_argument, NULL, 't' },
		CLI_PIN_LONGOPTS,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *recipe_path = NULL, *cert_serial = NULL, *device = NULL, *reason = NULL, *operator_name = NULL, *trust = NULL, *authz_path = NULL;
	authz *az = NULL;
	int require_signed = 0;
	char serial_buf[ST_CERT_SERIAL_HEX_LEN + 1];
	station *st = NULL;
	history_cert tc, *target = NULL;
	int c, pc, ret = EXIT_USAGE;
	cli_pin pin = { 0 };
	st_err err;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if ((pc = cli_pin_option(&pin, "revoke", c, optarg)) != 0) {
			if (pc < 0)
				return EXIT_USAGE;
			continue;
		}
		switch (c) {
		case 'r': recipe_path = optarg; break;
		case 'c': cert_serial = optarg; break;
		case 'd': device = optarg; break;
		case 'R': reason = optarg; break;
		case 'o': operator_name = optarg; break;
		case 'A': authz_path = optarg; break;
		case 'S': require_signed = 1; break;
		case 't': trust = optarg; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc || !recipe_path || !reason || !cert_serial == !device) {
		fprintf(stderr, "station revoke: need --recipe, --reason and exactly one of --cert-serial or --device\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	if (hsm_crl_reason_from_name(reason) < 0 || strcasecmp(reason, "removeFromCRL") == 0) {
		fprintf(stderr, "station revoke: --reason: unknown reason \"%s\" (see --help)\n", reason);
		return EXIT_USAGE;
	}
	reason = hsm_crl_reason_name(hsm_crl_reason_from_name(reason)); /* RFC 5280's spelling */
	if (cert_serial && revlist_serial_parse(cert_serial, serial_buf, &err) < 0) {
		fprintf(stderr, "station revoke: --cert-serial: %s\n", err.msg);
		return EXIT_USAGE;
	}
	if (cert_serial)
		cert_serial = serial_buf;
	operator_name = cli_operator(operator_name);
	if (station_open(recipe_path, operator_name, STATION_OPEN_HSM | STATION_OPEN_JOURNAL, require_signed, trust, &pin,
	        &st, &err) < 0) {
		fprintf(stderr, "station revoke: %s\n", err.msg);
		goto out;
	}
	cli_station_warnings("revoke", st);
	if (cert_serial) {
		if (history_cert_get(st->history, cert_serial, &tc) == 0)
			target = &tc;
		if (!target) {
			fprintf(stderr, "station revoke: certificate %s was not issued by this station (journal %s)\n",
			    cert_serial, st->rcp->audit.dir);
			goto out;
		}
	} else {
		memset(&tc, 0, sizeof(tc));
		history_foreach_device_cert(st->history, device, pick_latest, &tc);
		if (tc.serial[0])
			target = &tc;
		if (!target) {
			fprintf(stderr, "station revoke: the journal (%s) shows no certificate issued to device %s\n",
			    st->rcp->audit.dir, device);
			goto out;
		}
	}
	if (authz_path || st->rcp->rework.revoke_needs_authorization) {
		if (!authz_path) {
			fprintf(stderr, "station revoke: this recipe revokes only under a signed authorization: give "
			    "--authorization FILE (station authorize revoke --se %s ...)\n", target->device);
			goto out;
		}
		if (!st->rcp->rework.authorizers) {
			fprintf(stderr, "station revoke: the recipe names no rework.authorizers to check %s against\n",
			    authz_path);
			goto out;
		}
		if (authz_load(authz_path, "revoke", st->rcp->rework.authorizers, time(NULL), &az, &err) < 0) {
			fprintf(stderr, "station revoke: %s\n", err.msg);
			goto out;
		}
		if (!authz_names(az, target->device)) {
			fprintf(stderr, "station revoke: authorization %s (%s) does not name device %s\n", az->id, az->signer,
			    target->device);
			goto out;
		}
	}
	if (target->revoked) {
		printf("certificate %s (device %s) is already revoked (%s)\n", target->serial, target->device,
		    target->reason);
		ret = EXIT_OK;
		goto out;
	}
	if (station_journal(st, NULL, target->device, STEP_REVOKE, "ok",
	        az ? json_pack("{s:s,s:s,s:s,s:s,s:s}", "cert_serial", target->serial, "reason", reason, "revoked_by",
	                 operator_name, "authorization", az->id, "authorized_by", az->signer)
	           : json_pack("{s:s,s:s,s:s}", "cert_serial", target->serial, "reason", reason, "revoked_by",
	                 operator_name),
	        0, &err) < 0) {
		fprintf(stderr, "station revoke: journal: %s\n", err.msg);
		goto out;
	}
	/* certs/ holds live certificates only. */
	if (station_retire_cert(st, target->device, target->serial, &err) < 0)
		fprintf(stderr, "station revoke: warning: %s (the revocation is recorded)\n", err.msg);
	printf("revoked certificate %s of device %s (%s); run 'station crl' to publish it\n", target->serial,
	    target->device, reason);
	ret = EXIT_OK;
out:
	authz_free(az);
	station_close(st);
	return ret;
}
