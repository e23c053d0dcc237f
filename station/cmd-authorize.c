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
#include "history.h"
#include "hsm.h"
#include "recipe.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: station authorize rework|revoke --token LABEL --key-label LABEL --se SERIAL [--se SERIAL...]\n"
	    "                         --reason TEXT --expires DURATION --out FILE [--cert CERT.pem]\n"
	    "                         [--module PATH] " CLI_PIN_SYNOPSIS "\n"
	    "       station authorize resume (--recipe FILE | --halt SEQ:ID) --token LABEL --key-label LABEL\n"
	    "                         --reason TEXT --expires DURATION --out FILE [...]\n"
	    "\n"
	    "Write a CMS-signed authorization (one DER file) that lets `station rework --authorization\n"
	    "FILE` rework the SEs it names, once each, until it expires (`authorize revoke`: lets\n"
	    "`station revoke --authorization FILE` revoke their certificates, where the recipe asks for\n"
	    "that). `authorize resume` lets `station run --authorization FILE` lift one anomaly halt,\n"
	    "once: the one pending in the journal of the recipe FILE, or the halt record SEQ:ID (as\n"
	    "the halted run printed it). The key must hold the authorization role and live on the\n"
	    "authorizer's own token;\n"
	    "its certificate comes from --cert, else from the token (an object with the key's label).\n"
	    "\n"
	    "  --token LABEL      the authorizer's token (not the station's)\n"
	    "  --key-label LABEL  the authorizer's key in it\n"
	    "  --se SERIAL        an SE this authorizes (repeat; at most 1000)\n"
	    "  --recipe FILE      resume: the halt pending in this recipe's journal\n"
	    "  --halt SEQ:ID      resume: the halt record with this seq and halt_id\n"
	    "  --reason TEXT      why (recorded with every rework it allows)\n"
	    "  --expires DURATION how long it holds: N followed by s, m, h or d (at most 31d)\n"
	    "  --out FILE         where to write it (must not exist)\n"
	    "  --module PATH      the PKCS#11 module (default: SoftHSM)\n"
	    CLI_PIN_HELP
	    "Exit: 0 written, 2 usage or configuration error.\n");
}

/* The halt a resume lifts: --halt SEQ:ID, or the one pending in the
 * journal of --recipe FILE (read only, no lock: the station is halted). */
static int
halt_named(const char *cmd, const char *recipe_path, const char *spec, uint64_t *seq, char id[AUTHZ_ID_HEX + 1])
{
	recipe *r = NULL;
	history *h = NULL;
	char reason[256], *end = NULL;
	unsigned long long n;
	st_err err;
	int ret = -1;

	if (spec) {
		n = strtoull(spec, &end, 10);
		if (!n || *end != ':' || strlen(end + 1) != AUTHZ_ID_HEX || strspn(end + 1, "0123456789abcdef") != AUTHZ_ID_HEX) {
			fprintf(stderr, "station %s: --halt \"%.80s\": expected SEQ:ID, the halt record's seq and its %d-digit "
			    "halt_id (as the halted run printed them)\n", cmd, spec, AUTHZ_ID_HEX);
			return -1;
		}
		*seq = n;
		snprintf(id, AUTHZ_ID_HEX + 1, "%s", end + 1);
		return 0;
	}
	if (!(r = cli_recipe_load(cmd, recipe_path)))
		return -1;
	if (!(h = history_new()) || history_load(h, r->audit.dir, &err) < 0) {
		fprintf(stderr, "station %s: audit journal %s: %s\n", cmd, r->audit.dir, h ? err.msg : "out of memory");
		goto out;
	}
	if (!(*seq = history_halt_pending(h, id, reason, sizeof(reason)))) {
		fprintf(stderr, "station %s: the journal %s has no halt pending: nothing to resume\n", cmd, r->audit.dir);
		goto out;
	}
	printf("lifting the halt at seq %llu: %s\n", (unsigned long long)*seq, reason);
	ret = 0;
out:
	history_free(h);
	recipe_free(r);
	return ret;
}

static int
authorize(const char *type, int argc, char **argv)
{
	enum { O_TOKEN = 1, O_LABEL, O_SE, O_REASON, O_EXPIRES, O_OUT, O_CERT, O_MODULE, O_RECIPE, O_HALT };
	static const struct option opts[] = {
		{ "token", required_argument, NULL, O_TOKEN },
		{ "key-label", required_argument, NULL, O_LABEL },
		{ "se", required_argument, NULL, O_SE },
		{ "reason", required_argument, NULL, O_REASON },
		{ "expires", required_argument, NULL, O_EXPIRES },
		{ "out", required_argument, NULL, O_OUT },
		{ "cert", required_argument, NULL, O_CERT },
		{ "module", required_argument, NULL, O_MODULE },
		{ "recipe", required_argument, NULL, O_RECIPE },
		{ "halt", required_argument, NULL, O_HALT },
		CLI_PIN_LONGOPTS,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *token = NULL, *label = NULL, *reason = NULL, *expires = NULL, *out_path = NULL, *cert_path = NULL,
		   *module = NULL;
	const char **serials = NULL, *recipe_path = NULL, *halt_spec = NULL;
	int resume = strcmp(type, "resume") == 0;
	char halt_id[AUTHZ_ID_HEX + 1] = "";
	uint64_t halt_seq = 0;
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
		case O_RECIPE: recipe_path = optarg; break;
		case O_HALT: halt_spec = optarg; break;
		case 'h': usage(stdout); ret = EXIT_OK; goto out;
		default: usage(stderr); goto out;
		}
	}
	if (optind != argc || !token || !label || !reason || !expires || !out_path ||
	    (resume ? n_serials || !recipe_path == !halt_spec : !n_serials || recipe_path || halt_spec)) {
		fprintf(stderr, "station %s: need --token, --key-label, %s, --reason, --expires and --out\n", cmd,
		    resume ? "--recipe FILE or --halt SEQ:ID (and no --se)" : "--se");
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
	if (resume && halt_named(cmd, recipe_path, halt_spec, &halt_seq, halt_id) < 0)
		goto out;
	cli_pin_source(&pin_opt, NULL, &pin);
	if ((cert_path && !(cert = st_x509_load(cert_path, &err))) || !(hsm = hsm_open(module, token, &pin, &err)) ||
	    (!cert && !(cert = hsm_cert_find(hsm, label, &err))) || !(key = hsm_key_find(hsm, label, &err)) ||
	    hsm_key_matches_cert(key, cert, &err) < 0 ||
	    authz_create(type, serials, n_serials, halt_seq, resume ? halt_id : NULL, reason, seconds, hsm_key_pkey(key),
	        cert, &der, &der_len, &err) < 0 ||
	    st_file_write_atomic(out_path, der, der_len, 0644, &err) < 0) {
		fprintf(stderr, "station %s: %s\n", cmd, err.msg);
		goto out;
	}
	st_x509_subject(cert, subject, sizeof(subject));
	if (resume)
		printf("%s: authorizes the resume of the run halted at seq %llu, once, for %s, signed by %s\n", out_path,
		    (unsigned long long)halt_seq, expires, subject);
	else
		printf("%s: authorizes %s of %zu SE%s for %s, signed by %s\n", out_path, type, n_serials,
		    n_serials == 1 ? "" : "s", expires, subject);
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

static int
cmd_authorize_resume(int argc, char **argv)
{
	return authorize("resume", argc, argv);
}

static void
top_usage(FILE *f)
{
	fprintf(f, "usage: station authorize rework|revoke|resume ... (station authorize rework --help)\n");
}

int
cmd_authorize_main(int argc, char **argv)
{
	static const struct subcommand subs[] = {
		{ "rework", cmd_authorize_rework },
		{ "revoke", cmd_authorize_revoke },
		{ "resume", cmd_authorize_resume },
	};

	return cli_dispatch("authorize", subs, sizeof(subs) / sizeof(subs[0]), top_usage, argc, argv);
}
