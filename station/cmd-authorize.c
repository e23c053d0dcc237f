/* station authorize rework|revoke: sign an authorization token with a key
 * of the authorization role, which lives on a token of its own (with its
 * own PIN), never on the station's: whoever holds the station's PIN cannot
 * authorize themselves. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "authz.h"
#include "cli.h"
#include "cms.h"
#include "commands.h"
#include "hsm.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: station authorize rework|revoke --token LABEL --key-label LABEL --se SERIAL [--se SERIAL...]\n"
	    "                         --reason TEXT --expires DURATION --out FILE [--cert CERT.pem]\n"
	    "                         [--module PATH] " CLI_PIN_SYNOPSIS "\n"
	    "\n"
	    "Write a CMS-signed authorization (one DER file) that lets `station rework --authorization\n"
	    "FILE` rework the SEs it names, once each, until it expires (`authorize revoke`: lets\n"
	    "`station revoke --authorization FILE` revoke their certificates, where the recipe asks for\n"
	    "that). The key must hold the authorization role and live on the authorizer's own token;\n"
	    "its certificate comes from --cert, else from the token (an object with the key's label).\n"
	    "\n"
	    "  --token LABEL      the authorizer's token (not the station's)\n"
	    "  --key-label LABEL  the authorizer's key in it\n"
	    "  --se SERIAL        an SE this authorizes (repeat; at most 1000)\n"
	    "  --reason TEXT      why (recorded with every rework it allows)\n"
	    "  --expires DURATION how long it holds: N followed by s, m, h or d (at most 31d)\n"
	    "  --out FILE         where to write it (must not exist)\n"
	    "  --module PATH      the PKCS#11 module (default: SoftHSM)\n"
	    CLI_PIN_HELP
	    "Exit: 0 written, 2 usage or configuration error.\n");
}

static int
authorize(const char *type, int argc, char **argv)
{
	enum { O_TOKEN = 1, O_LABEL, O_SE, O_REASON, O_EXPIRES, O_OUT, O_CERT, O_MODULE };
	static const struct option opts[] = {
		{ "token", required_argument, NULL, O_TOKEN },
		{ "key-label", required_argument, NULL, O_LABEL },
		{ "se", required_argument, NULL, O_SE },
		{ "reason", required_argument, NULL, O_REASON },
		{ "expires", required_argument, NULL, O_EXPIRES },
		{ "out", required_argument, NULL, O_OUT },
		{ "cert", required_argument, NULL, O_CERT },
		{ "module", required_argument, NULL, O_MODULE },
		CLI_PIN_LONGOPTS,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *token = NULL, *label = NULL, *reason = NULL, *expires = NULL, *out_path = NULL, *cert_path = NULL,
		   *module = NULL;
	const char **serials = NULL;
	size_t n_serials = 0;
	char cmd[32];
	cli_pin pin_opt = { 0 };
	hsm_pin_source pin;
	hsm_ctx *hsm = NULL;
	hsm_key *key = NULL;
	X509 *cert = NULL;
	uint8_t *der = NULL;
	size_t der_len = 0;
	long seconds = 0;
	char subject[512];
	st_err err;
	int c, pc, ret = EXIT_USAGE;

	snprintf(cmd, sizeof(cmd), "authorize %s", type);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if ((pc = cli_pin_option(&pin_opt, cmd, c, optarg)) != 0) {
			if (pc < 0)
				goto out;
			continue;
		}
		switch (c) {
		case O_TOKEN: token = optarg; break;
		case O_LABEL: label = optarg; break;
		case O_SE: {
			const char **n = realloc(serials, (n_serials + 1) * sizeof(*serials));

			if (!n)
				goto out;
			serials = n;
			serials[n_serials++] = optarg;
			break;
		}
		case O_REASON: reason = optarg; break;
		case O_EXPIRES: expires = optarg; break;
		case O_OUT: out_path = optarg; break;
		case O_CERT: cert_path = optarg; break;
		case O_MODULE: module = optarg; break;
		case 'h': usage(stdout); ret = EXIT_OK; goto out;
		default: usage(stderr); goto out;
		}
	}
	if (optind != argc || !token || !label || !n_serials || !reason || !expires || !out_path) {
		fprintf(stderr, "station %s: need --token, --key-label, --se, --reason, --expires and --out\n", cmd);
		usage(stderr);
		goto out;
	}
	if (authz_duration_parse(expires, &seconds, &err) < 0) {
		fprintf(stderr, "station %s: --expires: %s\n", cmd, err.msg);
		goto out;
	}
	if (access(out_path, F_OK) == 0) {
		fprintf(stderr, "station %s: %s exists: an authorization is never overwritten\n", cmd, out_path);
		goto out;
	}
	cli_pin_source(&pin_opt, NULL, &pin);
	if ((cert_path && !(cert = st_x509_load(cert_path, &err))) || !(hsm = hsm_open(module, token, &pin, &err)) ||
	    (!cert && !(cert = hsm_cert_find(hsm, label, &err))) || !(key = hsm_key_find(hsm, label, &err)) ||
	    hsm_key_matches_cert(key, cert, &err) < 0 ||
	    authz_create(type, serials, n_serials, reason, seconds, hsm_key_pkey(key), cert, &der, &der_len, &err) < 0 ||
	    st_file_write_atomic(out_path, der, der_len, 0644, &err) < 0) {
		fprintf(stderr, "station %s: %s\n", cmd, err.msg);
		goto out;
	}
	st_x509_subject(cert, subject, sizeof(subject));
	printf("%s: authorizes %s of %zu SE%s for %s, signed by %s\n", out_path, type, n_serials, n_serials == 1 ? "" : "s",
	    expires, subject);
	ret = EXIT_OK;
out:
	free(der);
	X509_free(cert);
	hsm_key_free(key);
	hsm_close(hsm);
	free(serials);
	return ret;
}

static int
cmd_authorize_rework(int argc, char **argv)
{
	return authorize("rework", argc, argv);
}

static int
cmd_authorize_revoke(int argc, char **argv)
{
	return authorize("revoke", argc, argv);
}

static void
top_usage(FILE *f)
{
	fprintf(f, "usage: station authorize rework|revoke ... (station authorize rework --help)\n");
}

int
cmd_authorize_main(int argc, char **argv)
{
	static const struct subcommand subs[] = {
		{ "rework", cmd_authorize_rework },
		{ "revoke", cmd_authorize_revoke },
	};

	return cli_dispatch("authorize", subs, sizeof(subs) / sizeof(subs[0]), top_usage, argc, argv);
}
