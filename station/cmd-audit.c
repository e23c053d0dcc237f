/* station audit seal|export|verify: close and seal the open batch with the
 * audit key in the HSM, write a bundle for upload, check a bundle or a live
 * journal.  The journal format is audit/FORMAT.md. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "audit.h"
#include "cli.h"
#include "cms.h"
#include "commands.h"
#include "hsm.h"
#include "recipe.h"

static int
exists(const char *dir, const char *name)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) == 0;
}

static int
exit_for(const st_err *err)
{
	return err->code == ST_E_VERIFY || err->code == ST_E_IO ? EXIT_FAIL : EXIT_USAGE;
}

/* ---- the audit key: the same options for seal and export ----------------- */

enum { O_CERT = 0x100, O_LABEL, O_TOKEN, O_MODULE, O_CHAIN };
#define AUDIT_KEY_LONGOPTS                                      \
	{ "cert", required_argument, NULL, O_CERT },            \
	{ "key-label", required_argument, NULL, O_LABEL },      \
	{ "token", required_argument, NULL, O_TOKEN },          \
	{ "module", required_argument, NULL, O_MODULE },        \
	{ "chain", required_argument, NULL, O_CHAIN },          \
	CLI_PIN_LONGOPTS
#define AUDIT_KEY_HELP                                                                          \
	"  --cert CERT.pem   the audit certificate (default: the recipe's)\n"                       \
	"  --key-label LABEL the audit key in the token (default: the recipe's, else \"audit\")\n"  \
	"  --token LABEL     the token (default: the recipe's)\n"                                   \
	"  --module PATH     the PKCS#11 module (default: the recipe's, else SoftHSM)\n"            \
	"  --chain PEM       certificates to embed with the signer's (default: the recipe's hsm chain)\n"

typedef struct audit_key {
	const char *cert_path, *label, *token, *module, *chain_path;
	cli_pin pin_opt;
	hsm_ctx *hsm;
	hsm_key *key;
	X509 *cert;
	STACK_OF(X509) *chain;
	audit_signer signer;
} audit_key;

/* Take getopt_long's answer c if it is an audit key option: 1 taken, 0
 * not one, -1 a usage error (said). */
static int
audit_key_option(audit_key *k, const char *cmd, int c, const char *arg)
{
	switch (c) {
	case O_CERT: k->cert_path = arg; return 1;
	case O_LABEL: k->label = arg; return 1;
	case O_TOKEN: k->token = arg; return 1;
	case O_MODULE: k->module = arg; return 1;
	case O_CHAIN: k->chain_path = arg; return 1;
	default: return cli_pin_option(&k->pin_opt, cmd, c, arg);
	}
}

/* Log in and find the audit key; r (may be NULL) gives the defaults. */
static int
audit_key_open(audit_key *k, const char *cmd, const recipe *r)
{
	hsm_pin_source pin;
	st_err err;

	if (r) {
		k->cert_path = k->cert_path ? k->cert_path : r->hsm.audit_cert;
		k->label = k->label ? k->label : r->hsm.audit_key;
		k->token = k->token ? k->token : r->hsm.token;
		k->module = k->module ? k->module : r->hsm.module;
		k->chain_path = k->chain_path ? k->chain_path : r->hsm.chain;
	}
	if (!k->label)
		k->label = "audit";
	cli_pin_source(&k->pin_opt, r, &pin);
	if (!k->cert_path || !k->token) {
		fprintf(stderr, "station %s: give --cert CERT.pem and --token LABEL (or --recipe FILE)\n", cmd);
		return -1;
	}
	if (!(k->cert = st_x509_load(k->cert_path, &err)) ||
	    (k->chain_path && !(k->chain = st_x509_chain_load(k->chain_path, &err))) ||
	    !(k->hsm = hsm_open(k->module, k->token, &pin, &err)) || !(k->key = hsm_key_find(k->hsm, k->label, &err)) ||
	    hsm_key_matches_cert(k->key, k->cert, &err) < 0) {
		fprintf(stderr, "station %s: %s\n", cmd, err.msg);
		return -1;
	}
	k->signer.key = hsm_key_pkey(k->key);
	k->signer.cert = k->cert;
	k->signer.chain = k->chain;
	return 0;
}

static void
audit_key_close(audit_key *k)
{
	sk_X509_pop_free(k->chain, X509_free);
	X509_free(k->cert);
	hsm_key_free(k->key);
	hsm_close(k->hsm);
}

/* ---- seal ------------------------------------------------------------------- */

static void
seal_usage(FILE *f)
{
	fprintf(f,
	    "usage: station audit seal --recipe FILE [--operator NAME] [HSM OPTIONS]\n"
	    "       station audit seal --dir DIR --cert CERT.pem [--token LABEL] [--key-label LABEL] [HSM OPTIONS]\n"
	    "\n"
	    "Close the open batch of the audit journal (when it holds any record) and\n"
	    "seal every closed batch that has no seal yet: BATCH.p7s, a detached CMS\n"
	    "signature by the audit key in the HSM.  With --recipe the journal folder,\n"
	    "station id and HSM come from the recipe (the flags override them); with\n"
	    "--dir, station, operator and recipe digest are those of the last record.\n"
	    "A running station holds the journal: seal when it has finished.\n"
	    "\n"
	    "  --recipe FILE     the line's recipe (audit.dir, hsm.audit.key/cert)\n"
	    "  --dir DIR         the journal folder\n"
	    AUDIT_KEY_HELP
	    "  --operator NAME   who seals (default $USER, else the account name); with --recipe only\n"
	    "  --require-signed  refuse a recipe without a valid signature (with --recipe)\n"
	    "  --trust PEM       recipe signers (default: the station config's recipe_signers)\n"
	    "  HSM OPTIONS: --cert, --token, --module, --key-label, --chain and " CLI_PIN_SYNOPSIS "\n"
	    CLI_PIN_HELP
	    "Exit: 0 sealed, 1 the journal is damaged, 2 usage or configuration error.\n");
}

static void
rollover_usage(FILE *f)
{
	fprintf(f,
	    "usage: station audit rollover --recipe FILE --new-cert CERT.pem --new-key LABEL [--operator NAME]\n"
	    "                              [HSM OPTIONS]\n"
	    "       station audit rollover --dir DIR --cert CERT.pem --new-cert CERT.pem --new-key LABEL [HSM OPTIONS]\n"
	    "\n"
	    "Hand the audit seal to a new key: an audit-key record naming the new certificate\n"
	    "(which must hold the audit seal role, its key LABEL in the same token) closes the\n"
	    "open batch, and the current audit key (the recipe's, or --cert/--key-label) seals\n"
	    "it, vouching for its successor.  Then point the recipe's hsm.audit at the new key\n"
	    "and certificate: every later batch must be sealed by it ('station audit verify'\n"
	    "refuses a change of audit key that no audit-key record announced).  Keep the old\n"
	    "certificate: batches it sealed verify at the time they were sealed, after it expires.\n"
	    "\n"
	    "  --new-cert CERT.pem  the next audit certificate\n"
	    "  --new-key LABEL      its key in the token (proved to belong to it)\n"
	    "  the other options as for 'station audit seal'\n"
	    "Exit: 0 announced and sealed, 1 the journal is damaged, 2 usage or configuration error.\n");
}

/* Load the next audit certificate and check it is one, with its key in
 * the token beside the current one. */
static X509 *
rollover_cert(audit_key *k, const char *cert_path, const char *label)
{
	hsm_key *key = NULL;
	X509 *cert = NULL;
	st_err err;

	if (!(cert = st_x509_load(cert_path, &err)) || st_x509_check_role(cert, ST_ROLE_AUDIT_SEAL, &err) < 0 ||
	    !(key = hsm_key_find(k->hsm, label, &err)) || hsm_key_matches_cert(key, cert, &err) < 0) {
		fprintf(stderr, "station audit rollover: --new-cert %s --new-key %s: %s\n", cert_path, label, err.msg);
		X509_free(cert);
		cert = NULL;
	} else if (X509_cmp(cert, k->cert) == 0) {
		fprintf(stderr, "station audit rollover: --new-cert %s is the current audit certificate\n", cert_path);
		X509_free(cert);
		cert = NULL;
	}
	hsm_key_free(key);
	return cert;
}

/* station audit seal, and (rollover) station audit rollover. */
static int
seal_main(int argc, char **argv, int rollover)
{
	enum { O_RECIPE = 1, O_DIR, O_OPERATOR, O_REQUIRE, O_TRUST, O_NEW_CERT, O_NEW_KEY, O_HELP };
	static const struct option opts[] = {
		{ "recipe", required_argument, NULL, O_RECIPE },
		{ "dir", required_argument, NULL, O_DIR },
		AUDIT_KEY_LONGOPTS,
		{ "operator", required_argument, NULL, O_OPERATOR },
		{ "require-signed", no_argument, NULL, O_REQUIRE },
		{ "trust", required_argument, NULL, O_TRUST },
		{ "new-cert", required_argument, NULL, O_NEW_CERT },
		{ "new-key", required_argument, NULL, O_NEW_KEY },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = rollover ? "audit rollover" : "audit seal";
	void (*usage_fn)(FILE *) = rollover ? rollover_usage : seal_usage;
	const char *new_cert_path = NULL, *new_label = NULL;
	X509 *next = NULL;
	uint64_t announced_seq = 0;
	const char *recipe_path = NULL, *dir = NULL, *operator_name = NULL, *trust = NULL;
	int require_signed = 0;
	recipe *r = NULL;
	audit_key k = { 0 };
	audit_config cfg;
	audit_journal *j = NULL;
	audit_status before, after;
	unsigned *pending = NULL, n_pending = 0, i, n;
	char subject[512], name[AUDIT_NAME_MAX];
	st_err err;
	int c, pc, ret = EXIT_USAGE;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if ((pc = audit_key_option(&k, cmd, c, optarg)) != 0) {
			if (pc < 0)
				goto out;
			continue;
		}
		switch (c) {
		case O_RECIPE: recipe_path = optarg; break;
		case O_DIR: dir = optarg; break;
		case O_OPERATOR: operator_name = optarg; break;
		case O_REQUIRE: require_signed = 1; break;
		case O_TRUST: trust = optarg; break;
		case O_NEW_CERT: new_cert_path = optarg; break;
		case O_NEW_KEY: new_label = optarg; break;
		case 'h':
		case O_HELP: usage_fn(stdout); ret = EXIT_OK; goto out;
		default: usage_fn(stderr); goto out;
		}
	}
	if (optind != argc || (!recipe_path && !dir) || (rollover && (!new_cert_path || !new_label)) ||
	    (!rollover && (new_cert_path || new_label))) {
		usage_fn(stderr);
		goto out;
	}
	if (recipe_path && (!(r = cli_recipe_load(cmd, recipe_path)) ||
	                       cli_recipe_policy(cmd, r, require_signed, trust) < 0))
		goto out;
	if (!recipe_path && (require_signed || trust)) {
		fprintf(stderr, "station %s: --require-signed and --trust check a recipe: give --recipe FILE\n", cmd);
		goto out;
	}
	memset(&cfg, 0, sizeof(cfg));
	if (r) {
		dir = dir ? dir : r->audit.dir;
		cfg.station = r->audit.station_id;
		cfg.operator_name = cli_operator(operator_name);
		if (station_operator_check(cfg.operator_name, &err) < 0) {
			fprintf(stderr, "station %s: %s\n", cmd, err.msg);
			goto out;
		}
		cfg.recipe = r->digest;
		cfg.batch_devices = r->audit.batch_size > 0 ? (unsigned)r->audit.batch_size : 0;
		cfg.engineering = r->lifecycle.engineering;
	} else if (operator_name) {
		fprintf(stderr, "station %s: --operator needs --recipe (with --dir the last record's is kept)\n", cmd);
		goto out;
	}
	/* Closed batches without a seal, to say what this run sealed. */
	for (n = 1;; n++) {
		unsigned *np;

		audit_batch_name(n, name);
		if (!exists(dir, name))
			break;
		strcat(name, AUDIT_SEAL_SUFFIX);
		if (exists(dir, name))
			continue;
		if (!(np = realloc(pending, (n_pending + 1) * sizeof(*np)))) {
			fprintf(stderr, "station %s: out of memory\n", cmd);
			goto out;
		}
		pending = np;
		pending[n_pending++] = n;
	}
	if (audit_key_open(&k, cmd, r) < 0 || (rollover && !(next = rollover_cert(&k, new_cert_path, new_label))))
		goto out;
	cfg.signer = &k.signer;
	if (!(j = audit_open(dir, &cfg, &err))) {
		fprintf(stderr, "station %s: audit journal %s: %s\n", cmd, dir, err.msg);
		ret = exit_for(&err);
		goto out;
	}
	audit_get_status(j, &before);
	if (before.recovered)
		printf("%s: recovered a torn tail of %llu bytes at byte offset %llu of %s: moved to %s\n", dir,
		    (unsigned long long)before.recovered_bytes, (unsigned long long)before.recovered_offset,
		    before.recovered_batch, before.quarantine);
	if (rollover ? audit_announce_signer(j, next, &announced_seq, &err) < 0 : audit_seal_now(j, &err) < 0) {
		fprintf(stderr, "station %s: %s\n", cmd, err.msg);
		ret = exit_for(&err);
		goto out;
	}
	audit_get_status(j, &after);
	st_x509_subject(k.cert, subject, sizeof(subject));
	if (after.batch != before.batch) {
		audit_batch_name(before.batch, name);
		printf("%s: closed %s on demand\n", dir, name);
	}
	for (i = 0; i < n_pending; i++) {
		char seal[AUDIT_NAME_MAX + sizeof(AUDIT_SEAL_SUFFIX)];

		audit_batch_name(pending[i], name);
		snprintf(seal, sizeof(seal), "%s%s", name, AUDIT_SEAL_SUFFIX);
		if (exists(dir, seal))
			printf("%s: sealed %s\n", dir, name);
	}
	if (after.batch > 1)
		printf("%s: all %u closed batches are sealed by %s (last record seq %llu)\n", dir, after.batch - 1, subject,
		    (unsigned long long)after.last_seq);
	else
		printf("%s: nothing to seal: the journal has no record yet\n", dir);
	if (rollover) {
		char next_subject[512];

		st_x509_subject(next, next_subject, sizeof(next_subject));
		printf("%s: seq %llu hands the audit seal to %s, sealed by %s\n"
		       "now set hsm.audit.key: %s and hsm.audit.cert: %s in the recipe\n", dir,
		    (unsigned long long)announced_seq, next_subject, subject, new_label, new_cert_path);
	}
	ret = EXIT_OK;
out:
	X509_free(next);
	audit_close(j);
	free(pending);
	audit_key_close(&k);
	recipe_free(r);
	return ret;
}

static int
cmd_seal(int argc, char **argv)
{
	return seal_main(argc, argv, 0);
}

static int
cmd_rollover(int argc, char **argv)
{
	return seal_main(argc, argv, 1);
}

/* ---- export ----------------------------------------------------------------- */

static void
export_usage(FILE *f)
{
	fprintf(f,
	    "usage: station audit export --recipe FILE --out OUT [HSM OPTIONS]\n"
	    "       station audit export --dir DIR --cert CERT.pem --token LABEL --out OUT [HSM OPTIONS]\n"
	    "\n"
	    "Write a self-contained bundle for upload to OUT (a new or empty folder):\n"
	    "every sealed batch, its seal and quarantine files, audit-chain.pem (the\n"
	    "certificates the seals carry) and manifest.json (batch names, record ranges,\n"
	    "SHA-256 of every file), sealed by the audit key as manifest.json.p7s so a\n"
	    "bundle cut short or edited does not verify.  The open batch and batches not\n"
	    "sealed yet are not exported: the output says so.  The journal is only read.\n"
	    "\n"
	    AUDIT_KEY_HELP
	    "  HSM OPTIONS: --cert, --token, --module, --key-label, --chain and " CLI_PIN_SYNOPSIS "\n"
	    CLI_PIN_HELP
	    "Exit: 0 exported, 1 the journal is damaged or nothing is sealed yet,\n"
	    "2 usage or configuration error.\n");
}

static int
cmd_export(int argc, char **argv)
{
	enum { O_RECIPE = 1, O_DIR, O_OUT, O_HELP };
	static const struct option opts[] = {
		{ "recipe", required_argument, NULL, O_RECIPE },
		{ "dir", required_argument, NULL, O_DIR },
		{ "out", required_argument, NULL, O_OUT },
		AUDIT_KEY_LONGOPTS,
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *recipe_path = NULL, *dir = NULL, *out_dir = NULL;
	recipe *r = NULL;
	audit_key k = { 0 };
	audit_export_info info;
	st_err err;
	int c, pc, ret = EXIT_USAGE;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if ((pc = audit_key_option(&k, "audit export", c, optarg)) != 0) {
			if (pc < 0)
				goto out;
			continue;
		}
		switch (c) {
		case O_RECIPE: recipe_path = optarg; break;
		case O_DIR: dir = optarg; break;
		case O_OUT: out_dir = optarg; break;
		case 'h':
		case O_HELP: export_usage(stdout); ret = EXIT_OK; goto out;
		default: export_usage(stderr); goto out;
		}
	}
	if (optind != argc || (!recipe_path && !dir) || !out_dir) {
		export_usage(stderr);
		goto out;
	}
	if (recipe_path && !(r = cli_recipe_load("audit export", recipe_path)))
		goto out;
	if (!dir)
		dir = r->audit.dir;
	if (audit_key_open(&k, "audit export", r) < 0)
		goto out;
	if (audit_export(dir, out_dir, &k.signer, &info, &err) < 0) {
		fprintf(stderr, "station audit export: %s\n", err.msg);
		if (err.code == ST_E_STATE || err.code == ST_E_VERIFY)
			ret = EXIT_FAIL;
		else if (err.code == ST_E_NOTFOUND || err.code == ST_E_CONFIG)
			ret = EXIT_USAGE;
		else
			ret = EXIT_FAIL;
		goto out;
	}
	printf("%s: exported %u sealed batch%s (seq %llu..%llu) from %s\n", out_dir, info.batches,
	    info.batches == 1 ? "" : "es", (unsigned long long)info.first_seq, (unsigned long long)info.last_seq, dir);
	if (info.unsealed)
		printf("not exported: %s and the batches after it: closed but not sealed yet: run 'station audit seal'\n",
		    info.first_unsealed);
	if (info.open_batch[0])
		printf("not exported: %s is open (%llu record%s, not sealed yet): 'station audit seal' closes and seals it\n",
		    info.open_batch, (unsigned long long)info.open_records, info.open_records == 1 ? "" : "s");
	printf("check it: station audit verify %s --ca ROOT.pem\n", out_dir);
	ret = EXIT_OK;
out:
	audit_key_close(&k);
	recipe_free(r);
	return ret;
}

/* ---- verify ----------------------------------------------------------------- */

static void
verify_usage(FILE *f)
{
	fprintf(f,
	    "usage: station audit verify PATH --ca ROOT.pem\n"
	    "\n"
	    "Check an export bundle or a live journal folder: every record's hash chain,\n"
	    "sequence numbers within and across batches, batch numbering and batch-close\n"
	    "records, every seal (its signer must chain to a certificate in ROOT.pem, hold\n"
	    "the audit seal role and be the journal's audit key as audit-key records\n"
	    "announce it), checked at the time it was made so seals outlive their\n"
	    "certificate, and a bundle's manifest.  Prints the first broken record as\n"
	    "BATCH:LINE: seq N: what is wrong, then any other problem.\n"
	    "Exit: 0 everything holds, 1 it does not, 2 usage or configuration error.\n");
}

static int
cmd_verify(int argc, char **argv)
{
	enum { O_CA = 1, O_HELP };
	static const struct option opts[] = {
		{ "ca", required_argument, NULL, O_CA },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *ca = NULL, *path;
	X509_STORE *trust = NULL;
	audit_report *rep = NULL;
	size_t i;
	st_err err;
	int c, ret = EXIT_USAGE;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_CA: ca = optarg; break;
		case 'h':
		case O_HELP: verify_usage(stdout); ret = EXIT_OK; goto out;
		default: verify_usage(stderr); goto out;
		}
	}
	if (optind + 1 != argc || !ca) {
		verify_usage(stderr);
		goto out;
	}
	path = argv[optind];
	if (!(trust = st_x509_store_load(ca, &err))) {
		fprintf(stderr, "station audit verify: --ca: %s\n", err.msg);
		goto out;
	}
	if (audit_verify(path, trust, &rep, &err) < 0 && err.code != ST_E_VERIFY) {
		fprintf(stderr, "station audit verify: %s\n", err.msg);
		ret = err.code == ST_E_NOTFOUND || err.code == ST_E_CONFIG ? EXIT_USAGE : EXIT_FAIL;
		goto out;
	}
	if (rep->n_problems) {
		printf("%s: FAILED: %zu problem%s\n", path, rep->n_problems, rep->n_problems == 1 ? "" : "s");
		if (rep->first_broken)
			printf("  %s\n", rep->first_broken);
		for (i = 0; i < rep->n_problems; i++)
			if (!rep->first_broken || strcmp(rep->problems[i], rep->first_broken) != 0)
				printf("  %s\n", rep->problems[i]);
		ret = EXIT_FAIL;
	} else {
		printf("%s: OK: %s, %u batch%s, %llu records (seq %llu..%llu), %u seal%s verified%s%s\n", path,
		    rep->bundle ? "bundle and manifest" : "live journal", rep->batches, rep->batches == 1 ? "" : "es",
		    (unsigned long long)rep->records, (unsigned long long)rep->first_seq, (unsigned long long)rep->last_seq,
		    rep->sealed, rep->sealed == 1 ? "" : "s", rep->sealed ? ", signed by " : "", rep->signer);
		ret = EXIT_OK;
	}
	for (i = 0; i < rep->n_notes; i++)
		printf("note: %s\n", rep->notes[i]);
out:
	audit_report_free(rep);
	X509_STORE_free(trust);
	return ret;
}

/* ---- the command ------------------------------------------------------------- */

static void
usage(FILE *f)
{
	fprintf(f, "usage: station audit seal (--recipe FILE | --dir DIR ...)   close and seal the open batch\n"
	           "       station audit rollover (--recipe FILE | --dir DIR ...) --new-cert CERT --new-key LABEL   hand the\n"
	           "           audit seal to a new key\n"
	           "       station audit export (--recipe FILE | --dir DIR) --out OUT   write a bundle for upload\n"
	           "       station audit verify PATH --ca ROOT.pem   check a bundle or a live journal\n"
	           "       station audit report PATH [--ca ROOT.pem] [--html FILE]   a summary for an auditor\n"
	           "'station audit seal --help' etc. for the options; station-audit(5) describes the files.\n");
}

int
cmd_audit_main(int argc, char **argv)
{
	static const struct subcommand subs[] = {
		{ "seal", cmd_seal },
		{ "rollover", cmd_rollover },
		{ "export", cmd_export },
		{ "verify", cmd_verify },
		{ "report", cmd_audit_report },
	};

	return cli_dispatch("audit", subs, sizeof(subs) / sizeof(subs[0]), usage, argc, argv);
}
