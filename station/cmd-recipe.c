/* station recipe check|sign: validate a recipe and show what it will do, or
 * sign it with an engineering key in the HSM (FILE.sig, detached CMS). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "cli.h"
#include "cms.h"
#include "commands.h"
#include "hsm.h"
#include "jig-codec.h"
#include "recipe.h"

static void
print_errors(const recipe_errors *errs)
{
	size_t n = recipe_errors_count(errs);

	cli_recipe_errors_print(errs);
	fprintf(stderr, "%zu error%s\n", n, n == 1 ? "" : "s");
}

static const char *
alg_name(int alg)
{
	return alg == RECIPE_ALG_P384 ? "ECDSA P-384" : "ECDSA P-256";
}

static const char *
base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static void
print_summary(const recipe *r, const char *sig_status)
{
	char fw[JIG_FW_TEXT_MAX];
	size_t i;
	int k, n = 0;

	printf("recipe       %s %s\n", r->recipe.name, r->recipe.version);
	printf("file         %s/%s\n", r->dir, base_name(r->path));
	printf("digest       sha256:%s\n", r->digest);
	printf("product      %s (%s)\n", r->product.name, r->product.organisation);
	printf("jig          %s, %d retr%s, timeouts default %d ms", r->jig.uri, r->jig.retries,
	    r->jig.retries == 1 ? "y" : "ies", r->jig.timeout_ms[RECIPE_CMD_DEFAULT]);
	for (k = 1; k < RECIPE_CMD_COUNT; k++)
		if (r->jig.timeout_ms[k] != r->jig.timeout_ms[RECIPE_CMD_DEFAULT])
			printf(", %s %d ms", recipe_cmd_name(k), r->jig.timeout_ms[k]);
	printf("\nse           models ");
	for (i = 0; i < r->se.n_models; i++)
		printf("%s%s", i ? ", " : "", r->se.models[i]);
	jig_fw_format(r->se.min_firmware, fw);
	printf("; firmware >= %s; lifecycle factory; key slot %d, %s\n", fw, r->se.key_slot, alg_name(r->se.key_alg));
	printf("se vendor    %s\n", r->se.vendor_root);
	printf("hsm          token \"%s\" via %s; PIN from %s%s\n", r->hsm.token, r->hsm.module,
	    r->hsm.pin_source == RECIPE_PIN_FILE ? "file " : r->hsm.pin_source == RECIPE_PIN_PROMPT ? "the terminal"
	                                                                                       : "environment ",
	    r->hsm.pin_source == RECIPE_PIN_FILE ? r->hsm.pin_file : r->hsm.pin_source == RECIPE_PIN_PROMPT ? ""
	                                                                                                  : r->hsm.pin_env);
	printf("             intermediate key \"%s\": %s", r->hsm.intermediate_key, r->hsm.intermediate_cert);
	if (r->hsm.chain)
		printf(" (chain %s)", r->hsm.chain);
	printf("\n             audit key \"%s\": %s\n", r->hsm.audit_key, r->hsm.audit_cert);
	printf("             tool key \"%s\": %s\n", r->hsm.tool_key, r->hsm.tool_cert);
	printf("certificate  subject serialNumber=<SE serial>, CN=%s", r->certificate.cn);
	if (r->certificate.o)
		printf(", O=%s", r->certificate.o);
	if (r->certificate.ou)
		printf(", OU=%s", r->certificate.ou);
	printf("\n             SAN ");
	for (i = 0; i < r->certificate.n_san; i++)
		printf("%s%s:%s", i ? ", " : "", r->certificate.san[i].type == RECIPE_SAN_URI ? "URI" : "DNS",
		    r->certificate.san[i].tpl);
	if (!r->certificate.n_san)
		printf("(none)");
	printf("\n             keyUsage digitalSignature (critical); extendedKeyUsage ");
	for (k = 0; k < 32; k++)
		if (r->certificate.eku & (1u << k))
			printf("%s%s", n++ ? ", " : "", recipe_eku_name(1u << k));
	if (!n)
		printf("(none)");
	if (r->certificate.not_after)
		printf("; valid until %s\n", r->certificate.not_after);
	else
		printf("; valid %d days\n", r->certificate.validity_days);
	printf("quota        %ld certificates per shift (released by %s), %ld per run\n", r->quota.max_per_shift,
	    r->quota.release_signers ? r->quota.release_signers : "nobody: no quota.release_signers",
	    r->quota.max_per_run);
	if (r->lifecycle.engineering)
		printf("lifecycle    ENGINEERING mode, %s (every audit record says so)\n",
		    r->lifecycle.lock ? "SE locked" : "SE NOT LOCKED");
	else
		printf("lifecycle    production, SE locked after provisioning\n");
	printf("audit        %s, batches of %ld devices, station %s\n", r->audit.dir, r->audit.batch_size,
	    r->audit.station_id);
	if (r->metrics.file)
		printf("metrics      %s, rewritten after every device (node_exporter textfile)\n", r->metrics.file);
	printf("rework       %zu accepted intermediate%s, foreign devices %s, CRL next update %d days\n",
	    r->rework.n_intermediates, r->rework.n_intermediates == 1 ? "" : "s",
	    r->rework.allow_foreign_devices ? "allowed" : "refused", r->rework.crl_next_update_days);
	printf("signature    %s\n", sig_status);
}

static void
check_usage(FILE *f)
{
	fprintf(f,
	    "usage: station recipe check FILE [--require-signed] [--trust PEM] [--config FILE] [--root DIR]\n"
	    "\n"
	    "Validate a recipe and print what it will do, with its SHA-256 digest and\n"
	    "whether it carries a valid signature (FILE.sig).  Exit 0 when the station\n"
	    "would run it, 2 with every error otherwise.\n"
	    "\n"
	    "  --require-signed  refuse an unsigned, altered or untrusted recipe (as the\n"
	    "                    station config's require_signed_recipes: true does)\n"
	    "  --trust PEM       certificates that may sign recipes (their CA, or the\n"
	    "                    signers' own); default: recipe_signers in the config\n"
	    "  --config FILE     station config (default $STATION_CONFIG, else\n"
	    "                    " RECIPE_STATION_CONFIG_DEFAULT " when it exists)\n"
	    "  --root DIR        look absolute paths up under DIR: check a recipe for\n"
	    "                    another machine against a copy of its files\n");
}

static void
sign_usage(FILE *f)
{
	fprintf(f,
	    "usage: station recipe sign FILE --key-label LABEL [--cert CERT.pem] [--chain PEM]\n"
	    "                           [--recipe-for-hsm FILE] [--module PATH] [--token LABEL] [--root DIR]\n"
	    "                           " CLI_PIN_SYNOPSIS "\n"
	    "\n"
	    "Sign a valid recipe with a key in the HSM: writes FILE.sig, a detached CMS\n"
	    "signature over the file's bytes.  The HSM (module, token, PIN source) comes\n"
	    "from the recipe's hsm section, or from --recipe-for-hsm's, or the flags.\n"
	    "\n"
	    "  --key-label LABEL   the signing key in the token (e.g. engineering)\n"
	    "  --cert CERT.pem     its certificate (default: the recipe's certificate\n"
	    "                      for that label, when it is the intermediate, audit or tool key;\n"
	    "                      otherwise the token's certificate object with that label)\n"
	    "  --chain PEM         intermediate certificates to embed in the signature\n"
	    "  --recipe-for-hsm F  take the HSM settings from recipe F\n"
	    "  --module PATH       PKCS#11 module; --token LABEL  token label\n"
	    "  --root DIR          as for `station recipe check`\n"
	    CLI_PIN_HELP);
}

static int
cmd_check(int argc, char **argv)
{
	enum { O_REQUIRE = 1, O_TRUST, O_CONFIG, O_ROOT, O_HELP };
	static const struct option opts[] = {
		{ "require-signed", no_argument, NULL, O_REQUIRE },
		{ "trust", required_argument, NULL, O_TRUST },
		{ "config", required_argument, NULL, O_CONFIG },
		{ "root", required_argument, NULL, O_ROOT },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *trust = NULL, *config = NULL, *file = NULL;
	recipe_load_opts lo = { NULL };
	recipe_station_config *cfg = NULL;
	recipe_errors *errs = recipe_errors_new();
	recipe *r = NULL;
	bool required = false;
	char signer[512], status[1200];
	st_err err;
	int c, ret = EXIT_USAGE;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_REQUIRE: required = true; break;
		case O_TRUST: trust = optarg; break;
		case O_CONFIG: config = optarg; break;
		case O_ROOT: lo.root = optarg; break;
		case 'h':
		case O_HELP: check_usage(stdout); ret = EXIT_OK; goto out;
		default: check_usage(stderr); goto out;
		}
	}
	if (optind + 1 != argc) {
		check_usage(stderr);
		goto out;
	}
	file = argv[optind];
	if (!errs) {
		fprintf(stderr, "station recipe check: out of memory\n");
		goto out;
	}
	if (!(cfg = recipe_station_config_load(config, errs))) {
		print_errors(errs);
		goto out;
	}
	if (!(r = recipe_load(file, &lo, errs))) {
		print_errors(errs);
		goto out;
	}
	if (!trust)
		trust = cfg->recipe_signers;
	required = required || cfg->require_signed_recipes;
	if (!trust) {
		char *sig = NULL;
		bool present = asprintf(&sig, "%s.sig", r->path) >= 0 && access(sig, F_OK) == 0;

		snprintf(status, sizeof(status), "%s", present ? "present, not verified (no trust anchors: pass --trust or set "
		    "recipe_signers in the station config)" : "unsigned");
		free(sig);
	} else if (recipe_signature_check(r->path, r->digest, trust, signer, sizeof(signer), &err) == 0) {
		snprintf(status, sizeof(status), "signed by %s", signer);
	} else if (err.code == ST_E_NOTFOUND) {
		snprintf(status, sizeof(status), "unsigned");
	} else {
		snprintf(status, sizeof(status), "INVALID: %s", err.msg);
	}
	print_summary(r, status);
	/* Refuse exactly what `station run` would refuse. */
	if (recipe_policy_check(r, cfg, required, trust, signer, sizeof(signer), &err) < 0) {
		fprintf(stderr, "station recipe check: %s\n", err.msg);
		goto out;
	}
	ret = EXIT_OK;
out:
	recipe_free(r);
	recipe_station_config_free(cfg);
	recipe_errors_free(errs);
	return ret;
}

/* The certificate for a key label the recipe names, NULL otherwise. */
static const char *
recipe_cert_for(const recipe *r, const char *label)
{
	if (strcmp(label, r->hsm.intermediate_key) == 0)
		return r->hsm.intermediate_cert;
	if (strcmp(label, r->hsm.audit_key) == 0)
		return r->hsm.audit_cert;
	if (strcmp(label, r->hsm.tool_key) == 0)
		return r->hsm.tool_cert;
	return NULL;
}

static int
cmd_sign(int argc, char **argv)
{
	enum { O_LABEL = 1, O_CERT, O_CHAIN, O_FOR_HSM, O_MODULE, O_TOKEN, O_ROOT, O_HELP };
	static const struct option opts[] = {
		{ "key-label", required_argument, NULL, O_LABEL },
		{ "cert", required_argument, NULL, O_CERT },
		{ "chain", required_argument, NULL, O_CHAIN },
		{ "recipe-for-hsm", required_argument, NULL, O_FOR_HSM },
		{ "module", required_argument, NULL, O_MODULE },
		{ "token", required_argument, NULL, O_TOKEN },
		{ "root", required_argument, NULL, O_ROOT },
		CLI_PIN_LONGOPTS,
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *label = NULL, *cert_path = NULL, *chain_path = NULL, *for_hsm = NULL, *module = NULL,
		   *token = NULL;
	recipe_load_opts lo = { NULL };
	recipe_errors *errs = recipe_errors_new();
	recipe *r = NULL, *hr = NULL;
	hsm_ctx *hsm = NULL;
	hsm_key *key = NULL;
	cli_pin pin_opt = { 0 };
	hsm_pin_source pin;
	X509 *cert = NULL;
	STACK_OF(X509) *chain = NULL;
	uint8_t *data = NULL, *der = NULL;
	size_t len = 0, der_len = 0;
	char *sig_path = NULL, subject[512], hex[RECIPE_DIGEST_HEX];
	uint8_t md[32];
	st_err err;
	int c, pc, ret = EXIT_USAGE;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if ((pc = cli_pin_option(&pin_opt, "recipe sign", c, optarg)) != 0) {
			if (pc < 0)
				goto out;
			continue;
		}
		switch (c) {
		case O_LABEL: label = optarg; break;
		case O_CERT: cert_path = optarg; break;
		case O_CHAIN: chain_path = optarg; break;
		case O_FOR_HSM: for_hsm = optarg; break;
		case O_MODULE: module = optarg; break;
		case O_TOKEN: token = optarg; break;
		case O_ROOT: lo.root = optarg; break;
		case 'h':
		case O_HELP: sign_usage(stdout); ret = EXIT_OK; goto out;
		default: sign_usage(stderr); goto out;
		}
	}
	if (optind + 1 != argc || !label) {
		sign_usage(stderr);
		goto out;
	}
	if (!errs) {
		fprintf(stderr, "station recipe sign: out of memory\n");
		goto out;
	}
	/* Only a recipe that loads cleanly is worth a signature. */
	if (!(r = recipe_load(argv[optind], &lo, errs))) {
		print_errors(errs);
		fprintf(stderr, "station recipe sign: fix the recipe before signing it\n");
		goto out;
	}
	hr = r;
	if (for_hsm && !(hr = recipe_load(for_hsm, &lo, errs))) {
		print_errors(errs);
		goto out;
	}
	if (!cert_path)
		cert_path = recipe_cert_for(hr, label);
	/* Without a file, the token's own certificate object (loaded below). */
	if ((cert_path && !(cert = st_x509_load(cert_path, &err))) ||
	    (chain_path && !(chain = st_x509_chain_load(chain_path, &err)))) {
		fprintf(stderr, "station recipe sign: %s\n", err.msg);
		goto out;
	}
	if (st_file_read(r->path, 1u << 20, &data, &len, &err) < 0) {
		fprintf(stderr, "station recipe sign: %s\n", err.msg);
		goto out;
	}
	/* Sign exactly the bytes that were validated. */
	st_sha256(data, len, md);
	st_hex(md, sizeof(md), hex);
	if (strcmp(hex, r->digest) != 0) {
		fprintf(stderr, "station recipe sign: %s changed while it was being checked; run it again\n", r->path);
		goto out;
	}
	cli_pin_source(&pin_opt, hr, &pin);
	if (!(hsm = hsm_open(module ? module : hr->hsm.module, token ? token : hr->hsm.token, &pin, &err))) {
		fprintf(stderr, "station recipe sign: %s\n", err.msg);
		goto out;
	}
	if (!cert && !(cert = hsm_cert_find(hsm, label, &err))) {
		if (err.code == ST_E_NOTFOUND)
			fprintf(stderr, "station recipe sign: %s, and the recipe names no certificate for key \"%s\": "
			    "give --cert CERT.pem\n", err.msg, label);
		else
			fprintf(stderr, "station recipe sign: %s\n", err.msg);
		goto out;
	}
	if (st_x509_check_role(cert, ST_ROLE_RECIPE, &err) < 0) {
		fprintf(stderr, "station recipe sign: %s\n", err.msg);
		goto out;
	}
	if (!(key = hsm_key_find(hsm, label, &err)) || hsm_key_matches_cert(key, cert, &err) < 0 ||
	    st_cms_sign(hsm_key_pkey(key), cert, chain, data, len, &der, &der_len, &err) < 0) {
		fprintf(stderr, "station recipe sign: %s\n", err.msg);
		goto out;
	}
	if (asprintf(&sig_path, "%s.sig", r->path) < 0 ||
	    st_file_write_atomic(sig_path, der, der_len, 0644, &err) < 0) {
		fprintf(stderr, "station recipe sign: %s\n", sig_path ? err.msg : "out of memory");
		goto out;
	}
	st_x509_subject(cert, subject, sizeof(subject));
	printf("%s: signed by %s (recipe %s %s, sha256:%s)\n", sig_path, subject, r->recipe.name, r->recipe.version,
	    r->digest);
	ret = EXIT_OK;
out:
	free(sig_path);
	free(der);
	free(data);
	sk_X509_pop_free(chain, X509_free);
	X509_free(cert);
	hsm_key_free(key);
	hsm_close(hsm);
	if (hr != r)
		recipe_free(hr);
	recipe_free(r);
	recipe_errors_free(errs);
	return ret;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: station recipe check FILE [OPTIONS]   validate a recipe, show its summary and signature\n"
	           "       station recipe sign FILE --key-label LABEL [OPTIONS]   sign it with a key in the HSM\n"
	           "'station recipe check --help', 'station recipe sign --help' for the options.\n");
}

int
cmd_recipe_main(int argc, char **argv)
{
	static const struct subcommand subs[] = {
		{ "check", cmd_check },
		{ "sign", cmd_sign },
	};

	return cli_dispatch("recipe", subs, sizeof(subs) / sizeof(subs[0]), usage, argc, argv);
}
