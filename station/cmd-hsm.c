/* station hsm check: open the token, find each key, check that it cannot
 * leave the token and that its certificate belongs to it, and say what was
 * found.  Exit 0, or 2 with the exact reason: everything it checks is
 * configuration an engineer fixes before a shift. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509.h>

#include "cli.h"
#include "cms.h"
#include "commands.h"
#include "hsm.h"
#include "recipe.h"
#include "station-config.h"

#define MAX_KEYS 16

struct key_spec {
	const char *label;
	const char *cert; /* PEM path, or NULL */
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: station hsm check [--recipe FILE] [--module PATH] [--token LABEL]\n"
	    "                         [--key-label LABEL[=CERT.pem]]... " CLI_PIN_SYNOPSIS "\n"
	    "\n"
	    "Open the HSM token, find each key, check it is sensitive and not extractable,\n"
	    "that its certificate belongs to it and is valid now, and print what was found.\n"
	    "Exit 0 when everything holds, 2 with the reason otherwise.\n"
	    "\n"
	    "  --recipe FILE          take module, token, PIN source and the intermediate,\n"
	    "                         audit and tool keys with their certificates from a recipe\n"
	    "  --module PATH          PKCS#11 module (default: the recipe's, else\n"
	    "                         " STATION_DEFAULT_PKCS11_MODULE ")\n"
	    "  --token LABEL          token label (required without --recipe)\n"
	    "  --key-label L[=CERT]   a key to check, with its certificate (repeatable; replaces\n"
	    "                         the recipe's keys; default without a recipe: intermediate,\n"
	    "                         audit, tool, with no certificate)\n"
	    CLI_PIN_HELP);
}

static void
print_time(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm))
		strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
	else
		snprintf(buf, len, "(unreadable)");
}

/* Certificate checks that need no key: readable, valid now. */
static int
check_cert_dates(X509 *cert, const char *path, st_err *err)
{
	char when[64];
	int days = 0, secs = 0;

	if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0) {
		print_time(X509_get0_notBefore(cert), when, sizeof(when));
		return st_err_set(err, ST_E_CONFIG, "certificate %s is not valid before %s", path, when);
	}
	if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
		print_time(X509_get0_notAfter(cert), when, sizeof(when));
		return st_err_set(err, ST_E_CONFIG, "certificate %s expired on %s: renew it", path, when);
	}
	print_time(X509_get0_notAfter(cert), when, sizeof(when));
	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert)))
		printf("  expires      %s (%d days left)\n", when, days);
	else
		printf("  expires      %s\n", when);
	return 0;
}

static int
check_key(hsm_ctx *ctx, const struct key_spec *k, st_err *err)
{
	hsm_key *key = NULL;
	X509 *cert = NULL;
	char desc[64], subject[512];
	int ret = -1;

	if (!(key = hsm_key_find(ctx, k->label, err)))
		goto out;
	hsm_key_describe(key, desc, sizeof(desc));
	printf("key \"%s\"\n  type         %s\n  protection   %s\n", k->label, desc, hsm_key_protection(key));
	if (hsm_key_audit(key, err) < 0)
		goto out;
	if (!k->cert) {
		printf("  certificate  (none given)\n");
		ret = 0;
		goto out;
	}
	if (!(cert = st_x509_load(k->cert, err)))
		goto out;
	st_x509_subject(cert, subject, sizeof(subject));
	printf("  certificate  %s\n  file         %s\n", subject, k->cert);
	if (check_cert_dates(cert, k->cert, err) < 0)
		goto out;
	if (hsm_key_matches_cert(key, cert, err) < 0)
		goto out;
	printf("  matches      yes (signed in the token, verified with the certificate)\n");
	ret = 0;
out:
	X509_free(cert);
	hsm_key_free(key);
	return ret;
}

static int
cmd_check(int argc, char **argv)
{
	enum { O_RECIPE = 1, O_MODULE, O_TOKEN, O_KEY, O_HELP };
	static const struct option opts[] = {
		{ "recipe", required_argument, NULL, O_RECIPE },
		{ "module", required_argument, NULL, O_MODULE },
		{ "token", required_argument, NULL, O_TOKEN },
		{ "key-label", required_argument, NULL, O_KEY },
		CLI_PIN_LONGOPTS,
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const default_labels[] = { "intermediate", "audit", "tool" };
	const char *recipe_path = NULL, *module = NULL, *token = NULL;
	char *key_args[MAX_KEYS];
	struct key_spec keys[MAX_KEYS];
	size_t nkeys = 0, nargs = 0, i;
	cli_pin pin_opt = { 0 };
	hsm_pin_source pin;
	int c, pc, ret = EXIT_USAGE;
	unsigned pin_state;
	recipe *r = NULL;
	hsm_ctx *ctx = NULL;
	char desc[512];
	st_err err;

	st_err_clear(&err);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if ((pc = cli_pin_option(&pin_opt, "hsm check", c, optarg)) != 0) {
			if (pc < 0)
				goto out;
			continue;
		}
		switch (c) {
		case O_RECIPE:
			recipe_path = optarg;
			break;
		case O_MODULE:
			module = optarg;
			break;
		case O_TOKEN:
			token = optarg;
			break;
		case O_KEY:
			if (nargs == MAX_KEYS) {
				fprintf(stderr, "station hsm check: at most %d --key-label options\n", MAX_KEYS);
				goto out;
			}
			key_args[nargs++] = optarg;
			break;
		case 'h':
		case O_HELP:
			usage(stdout);
			ret = EXIT_OK;
			goto out;
		default:
			usage(stderr);
			goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "station hsm check: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		goto out;
	}

	if (recipe_path) {
		if (!(r = cli_recipe_load("hsm check", recipe_path)))
			goto out;
		if (!module)
			module = r->hsm.module;
		if (!token)
			token = r->hsm.token;
		if (!nargs) {
			keys[nkeys++] = (struct key_spec){ r->hsm.intermediate_key, r->hsm.intermediate_cert };
			keys[nkeys++] = (struct key_spec){ r->hsm.audit_key, r->hsm.audit_cert };
			keys[nkeys++] = (struct key_spec){ r->hsm.tool_key, r->hsm.tool_cert };
		}
	}
	if (!token) {
		fprintf(stderr, "station hsm check: give --token LABEL or --recipe FILE\n");
		usage(stderr);
		goto out;
	}
	for (i = 0; i < nargs; i++) {
		char *eq = strchr(key_args[i], '=');

		/* A PKCS#11 URI has '=' of its own: its =CERT is the last '='
		 * followed by a .pem path. */
		if (strncmp(key_args[i], "pkcs11:", 7) == 0) {
			eq = strrchr(key_args[i], '=');
			if (eq && (strlen(eq) < 5 || strcmp(eq + strlen(eq) - 4, ".pem") != 0))
				eq = NULL;
		}

		if (eq)
			*eq = '\0';
		if (!key_args[i][0] || (eq && !eq[1])) {
			fprintf(stderr, "station hsm check: --key-label wants LABEL or LABEL=CERT.pem\n");
			goto out;
		}
		keys[nkeys++] = (struct key_spec){ key_args[i], eq ? eq + 1 : NULL };
	}
	if (!nkeys)
		for (i = 0; i < sizeof(default_labels) / sizeof(default_labels[0]); i++)
			keys[nkeys++] = (struct key_spec){ default_labels[i], NULL };

	cli_pin_source(&pin_opt, r, &pin);
	if (!(ctx = hsm_open(module, token, &pin, &err))) {
		fprintf(stderr, "station hsm check: %s\n", err.msg);
		ret = EXIT_USAGE;
		goto out;
	}
	hsm_token_describe(ctx, desc, sizeof(desc));
	printf("module         %s\ntoken          %s\n", hsm_module_path(ctx), desc);
	pin_state = hsm_token_pin_state(ctx);
	if (pin_state & HSM_PIN_FINAL_TRY)
		printf("warning        the token's user PIN is on its final try: one more wrong PIN locks it\n");
	else if (pin_state & HSM_PIN_COUNT_LOW)
		printf("warning        a wrong user PIN was given to this token since the last good login\n");
	for (i = 0; i < nkeys; i++) {
		if (check_key(ctx, &keys[i], &err) < 0) {
			fflush(stdout);
			fprintf(stderr, "station hsm check: %s\n", err.msg);
			ret = EXIT_USAGE;
			goto out;
		}
	}
	printf("hsm check: OK, %zu key%s in token \"%s\"\n", nkeys, nkeys == 1 ? "" : "s", token);
	ret = EXIT_OK;
out:
	hsm_close(ctx);
	recipe_free(r);
	return ret;
}

int
cmd_hsm_main(int argc, char **argv)
{
	static const struct subcommand subs[] = {
		{ "check", cmd_check },
	};

	return cli_dispatch("hsm", subs, sizeof(subs) / sizeof(subs[0]), usage, argc, argv);
}
