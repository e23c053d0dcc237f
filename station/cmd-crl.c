/* station crl: write a CRL of every revocation in the journal, signed in the HSM. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "cli.h"
#include "commands.h"
#include "hsm.h"
#include "recipe.h"
#include "revlist.h"
#include "station.h"
#include "step.h"

/* One line of a fleet revocations file: SERIAL TIME REASON. */
typedef struct fleet_rev {
	char serial[41];
	time_t revoked_at;
	char reason[40];
} fleet_rev;

/* Read the file `station-registry revocations` writes; its "# issuer:" line
 * must name this station's intermediate, so no CRL lists another CA's serials. */
static int
fleet_load(const char *path, X509 *ca, fleet_rev **out, size_t *nout, st_err *err)
{
	char line[512], want[1024] = "", serial[64], when[64], reason[40];
	fleet_rev *v = NULL, *nv;
	size_t n = 0, cap = 0;
	unsigned lineno = 0;
	int have_issuer = 0, ret = -1, len;
	struct tm tm;
	char *end;
	BIO *bio;
	FILE *f;

	if ((bio = BIO_new(BIO_s_mem()))) {
		X509_NAME_print_ex(bio, X509_get_subject_name(ca), 0, XN_FLAG_RFC2253);
		len = BIO_read(bio, want, sizeof(want) - 1);
		want[len > 0 ? len : 0] = 0;
		BIO_free(bio);
	}
	if (!(f = fopen(path, "r")))
		return st_err_errno(err, ST_E_CONFIG, errno, "--revocations %s", path);
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		line[strcspn(line, "\r\n")] = 0;
		if (strncmp(line, "# issuer: ", 10) == 0) {
			if (strcmp(line + 10, want) != 0) {
				st_err_set(err, ST_E_CONFIG, "%s:%u: revocations of issuer \"%.200s\", this station's intermediate is \"%.200s\"",
				    path, lineno, line + 10, want);
				goto out;
			}
			have_issuer = 1;
			continue;
		}
		if (!line[0] || line[0] == '#')
			continue;
		memset(&tm, 0, sizeof(tm));
		if (sscanf(line, "%63s %63s %39s", serial, when, reason) != 3 || strlen(serial) > 40 ||
		    serial[strspn(serial, "0123456789abcdefABCDEF")] || !(end = strptime(when, "%Y-%m-%dT%H:%M:%S", &tm)) ||
		    (*end && strcmp(end, "Z") != 0 && end[0] != '.')) {
			st_err_set(err, ST_E_CONFIG, "%s:%u: expected SERIAL (hex) TIME (YYYY-MM-DDTHH:MM:SSZ) REASON", path, lineno);
			goto out;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if (!(nv = realloc(v, cap * sizeof(*v)))) {
				st_err_set(err, ST_E_NOMEM, "out of memory");
				goto out;
			}
			v = nv;
		}
		revlist_canon(serial, v[n].serial);
		v[n].revoked_at = timegm(&tm);
		snprintf(v[n].reason, sizeof(v[n].reason), "%s", reason);
		n++;
	}
	if (!have_issuer) {
		st_err_set(err, ST_E_CONFIG, "%s: no \"# issuer:\" line: write it with station-registry revocations --issuer", path);
		goto out;
	}
	*out = v;
	*nout = n;
	v = NULL;
	ret = 0;
out:
	fclose(f);
	free(v);
	return ret;
}

/* Every certificate the journal revoked (or closed out), for the CRL. */
struct revoked {
	history_cert *v;
	size_t n;
};

static int
collect_revoked(const history_cert *c, void *ctx)
{
	struct revoked *r = ctx;

	if (c->revoked)
		r->v[r->n++] = *c;
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: station crl --recipe FILE --out FILE [--next-update-days N] [--der] [--revocations FILE]\n"
	    "                   [--operator NAME] [--require-signed] [--trust PEM]\n"
	    "                   " CLI_PIN_SYNOPSIS "\n"
	    "\n"
	    "Write an X.509 v2 CRL, signed by the intermediate in the HSM, listing every certificate\n"
	    "the journal records as revoked (station revoke, rework, abandoned issuance). Each CRL\n"
	    "gets the next CRL number, recorded in the journal. nextUpdate: --next-update-days, else\n"
	    "the recipe's rework.crl_next_update_days.\n"
	    "--revocations FILE adds the fleet's revocations for this intermediate, as written by\n"
	    "'station-registry revocations --issuer intermediate.pem', so one CRL covers every station.\n"
	    "--require-signed refuses a recipe without a valid signature; --trust PEM names its signers\n"
	    "(default: the station config's recipe_signers).\n"
	    CLI_PIN_HELP
	    "Exit: 0 written, 2 usage or configuration error.\n");
}

int
cmd_crl_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "recipe", required_argument, NULL, 'r' },
		{ "out", required_argument, NULL, 'o' },
		{ "next-update-days", required_argument, NULL, 'n' },
		{ "der", no_argument, NULL, 'D' },
		{ "operator", required_argument, NULL, 'O' },
		{ "revocations", required_argument, NULL, 'R' },
		{ "require-signed", no_argument, NULL, 'S' },
		{ "trust", required_argument, NULL, 't' },
		CLI_PIN_LONGOPTS,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *recipe_path = NULL, *out_path = NULL, *operator_name = NULL, *revs_path = NULL, *trust = NULL;
	int require_signed = 0;
	fleet_rev *fleet = NULL;
	size_t nfleet = 0;
	long days = -1;
	int der = 0, c, pc, ret = EXIT_USAGE;
	cli_pin pin = { 0 };
	station *st = NULL;
	struct revoked rv = { 0 };
	uint64_t crl_number;
	history_cert mine;
	hsm_revoked *entries = NULL;
	X509_CRL *crl = NULL;
	unsigned char *bytes = NULL;
	BIO *bio = NULL;
	size_t i, n = 0;
	long len = 0;
	time_t now = time(NULL);
	uint8_t digest[32];
	char hex[65];
	st_err err;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if ((pc = cli_pin_option(&pin, "crl", c, optarg)) != 0) {
			if (pc < 0)
				return EXIT_USAGE;
			continue;
		}
		switch (c) {
		case 'r': recipe_path = optarg; break;
		case 'o': out_path = optarg; break;
		case 'n': {
			char *end;

			days = strtol(optarg, &end, 10);
			if (*end || days < 1 || days > 3650) {
				fprintf(stderr, "station crl: --next-update-days: expected 1..3650, got \"%s\"\n", optarg);
				return EXIT_USAGE;
			}
			break;
		}
		case 'D': der = 1; break;
		case 'O': operator_name = optarg; break;
		case 'R': revs_path = optarg; break;
		case 'S': require_signed = 1; break;
		case 't': trust = optarg; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc || !recipe_path || !out_path) {
		fprintf(stderr, "station crl: need --recipe FILE and --out FILE\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	operator_name = cli_operator(operator_name);
	if (station_open(recipe_path, operator_name, STATION_OPEN_HSM | STATION_OPEN_JOURNAL, require_signed, trust, &pin,
	        &st, &err) < 0) {
		fprintf(stderr, "station crl: %s\n", err.msg);
		goto out;
	}
	cli_station_warnings("crl", st);
	crl_number = history_last_crl_number(st->history) + 1;
	if (!(rv.v = calloc(history_cert_count(st->history) + 1, sizeof(*rv.v))) ||
	    history_foreach_cert(st->history, collect_revoked, &rv) != 0)
		goto out;
	if (days < 0)
		days = st->rcp->rework.crl_next_update_days;
	if (revs_path && fleet_load(revs_path, st->ca_cert, &fleet, &nfleet, &err) < 0) {
		fprintf(stderr, "station crl: %s\n", err.msg);
		goto out;
	}
	if (!(entries = calloc(rv.n + nfleet + 1, sizeof(*entries))))
		goto out;
	for (i = 0; i < rv.n; i++) {
		entries[n].serial_hex = rv.v[i].serial;
		entries[n].revoked_at = rv.v[i].revoked_at;
		entries[n].reason = hsm_crl_reason_from_name(rv.v[i].reason);
		if (entries[n].reason < 0)
			entries[n].reason = HSM_CRL_UNSPECIFIED;
		n++;
	}
	for (i = 0; i < nfleet; i++) {
		if (history_cert_get(st->history, fleet[i].serial, &mine) == 0 && mine.revoked)
			continue; /* this station's own record of it wins */
		entries[n].serial_hex = fleet[i].serial;
		entries[n].revoked_at = fleet[i].revoked_at;
		entries[n].reason = hsm_crl_reason_from_name(fleet[i].reason);
		if (entries[n].reason < 0)
			entries[n].reason = HSM_CRL_UNSPECIFIED;
		n++;
	}
	if (hsm_crl_sign(st->ca_key, st->ca_cert, entries, n, now, now + days * 86400, crl_number, &crl,
	        &err) < 0) {
		fprintf(stderr, "station crl: %s\n", err.msg);
		goto out;
	}
	if (!(bio = BIO_new(BIO_s_mem())) || !(der ? i2d_X509_CRL_bio(bio, crl) : PEM_write_bio_X509_CRL(bio, crl)) ||
	    (len = BIO_get_mem_data(bio, (char **)&bytes)) <= 0) {
		fprintf(stderr, "station crl: cannot encode the CRL\n");
		goto out;
	}
	st_sha256(bytes, (size_t)len, digest);
	st_hex(digest, sizeof(digest), hex);
	/* The journal names the CRL before it leaves the station. */
	if (station_journal(st, NULL, NULL, STEP_CRL, "ok", json_pack("{s:I,s:i,s:s,s:s}", "crl_number",
	        (json_int_t)crl_number, "entries", (int)n, "sha256", hex, "file", out_path), 0, &err) < 0 ||
	    st_file_write_atomic(out_path, bytes, (size_t)len, 0644, &err) < 0) {
		fprintf(stderr, "station crl: %s\n", err.msg);
		goto out;
	}
	printf("wrote %s: CRL number %llu, %zu revoked certificate%s, next update in %ld days\n", out_path,
	    (unsigned long long)crl_number, n, n == 1 ? "" : "s", days);
	ret = EXIT_OK;
out:
	BIO_free(bio);
	X509_CRL_free(crl);
	free(entries);
	free(fleet);
	free(rv.v);
	station_close(st);
	return ret;
}
