/* station crl: write a CRL of every revocation in the journal, signed in the HSM. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "cli.h"
#include "cms.h"
#include "commands.h"
#include "fleet.h"
#include "hsm.h"
#include "recipe.h"
#include "revlist.h"
#include "station.h"
#include "step.h"

/* By serial, then by line: a serial listed twice sorts as its lines come. */
static int
fleet_cmp(const void *a, const void *b)
{
	const fleet_rev *x = a, *y = b;
	int c = strcmp(x->serial, y->serial);

	return c ? c : (x->line > y->line) - (x->line < y->line);
}

int
fleet_line(const char *path, unsigned lineno, const char *line, fleet_rev *r, st_err *err)
{
	char serial[128], when[64], reason[64];
	const char *end;
	struct tm tm;
	int n1 = 0, n2 = 0, used = 0;

	/* Each field must end where a blank (or the line) does: a field longer
	 * than its buffer would otherwise run on into the next conversion (the
	 * last one's rest is what line[used] finds). */
	if (sscanf(line, "%127s%n %63s%n %63s %n", serial, &n1, when, &n2, reason, &used) != 3 ||
	    !isspace((unsigned char)line[n1]) || !isspace((unsigned char)line[n2]) || line[used])
		return st_err_set(err, ST_E_CONFIG, "%s:%u: expected SERIAL (hex) TIME (YYYY-MM-DDTHH:MM:SSZ) REASON, "
		    "three fields apart by blanks", path, lineno);
	if (revlist_serial_parse(serial, r->serial, err) < 0)
		return st_err_prefix(err, "%s:%u", path, lineno);
	memset(&tm, 0, sizeof(tm));
	if (!(end = strptime(when, "%Y-%m-%dT%H:%M:%S", &tm)) || (*end == '.' && !isdigit((unsigned char)end[1])))
		end = NULL;
	else if (*end == '.')
		for (end++; isdigit((unsigned char)*end); end++)
			;
	if (!end || strcmp(end, "Z") != 0)
		return st_err_set(err, ST_E_CONFIG, "%s:%u: time \"%.63s\": expected YYYY-MM-DDTHH:MM:SSZ (UTC)", path,
		    lineno, when);
	r->revoked_at = timegm(&tm);
	if (hsm_crl_reason_from_name(reason) < 0)
		return st_err_set(err, ST_E_CONFIG, "%s:%u: reason \"%.63s\" is not an RFC 5280 reason name (keyCompromise, "
		    "superseded, cessationOfOperation, ...)", path, lineno, reason);
	snprintf(r->reason, sizeof(r->reason), "%.39s", reason); /* a name of the list: at most 20 */
	return 0;
}

#define FLEET_LINE_MAX 2046 /* bytes, without the newline */

/* Read the file `station-registry revocations` writes; its "# issuer:" line
 * must name this station's intermediate, so no CRL lists another CA's
 * serials.  A serial listed twice is refused: the registry writes each once. */
static int
fleet_load(const char *path, X509 *ca, fleet_rev **out, size_t *nout, st_err *err)
{
	char *line = NULL, *nul, want[1024] = "";
	fleet_rev *v = NULL, *nv;
	size_t n = 0, cap = 0, linecap = 0, i, len;
	unsigned lineno = 0;
	int have_issuer = 0, ret = -1, got;
	ssize_t nread;
	BIO *bio;
	FILE *f;

	if ((bio = BIO_new(BIO_s_mem()))) {
		X509_NAME_print_ex(bio, X509_get_subject_name(ca), 0, XN_FLAG_RFC2253);
		got = BIO_read(bio, want, sizeof(want) - 1);
		want[got > 0 ? got : 0] = 0;
		BIO_free(bio);
	}
	if (!(f = fopen(path, "r")))
		return st_err_errno(err, ST_E_CONFIG, errno, "--revocations %s", path);
	while ((nread = getline(&line, &linecap, f)) >= 0) {
		lineno++;
		len = (size_t)nread;
		if (len && line[len - 1] == '\n')
			line[--len] = 0;
		if (len && line[len - 1] == '\r')
			line[--len] = 0;
		if (len > FLEET_LINE_MAX) {
			st_err_set(err, ST_E_CONFIG, "%s:%u: a line longer than %d bytes", path, lineno, FLEET_LINE_MAX);
			goto out;
		}
		if ((nul = memchr(line, '\0', len))) {
			st_err_set(err, ST_E_CONFIG, "%s:%u: a NUL byte at column %zu", path, lineno, (size_t)(nul - line) + 1);
			goto out;
		}
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
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if (!(nv = realloc(v, cap * sizeof(*v)))) {
				st_err_set(err, ST_E_NOMEM, "out of memory");
				goto out;
			}
			v = nv;
		}
		if (fleet_line(path, lineno, line, &v[n], err) < 0)
			goto out;
		v[n++].line = lineno;
	}
	if (ferror(f)) {
		st_err_errno(err, ST_E_CONFIG, errno, "--revocations %s: reading", path);
		goto out;
	}
	if (!have_issuer) {
		st_err_set(err, ST_E_CONFIG, "%s: no \"# issuer:\" line: write it with station-registry revocations --issuer", path);
		goto out;
	}
	if (n)
		qsort(v, n, sizeof(*v), fleet_cmp);
	for (i = 1; i < n; i++)
		if (strcmp(v[i - 1].serial, v[i].serial) == 0) {
			st_err_set(err, ST_E_CONFIG, "%s: serial %s is listed twice (lines %u and %u)", path, v[i].serial,
			    v[i - 1].line, v[i].line);
			goto out;
		}
	*out = v;
	*nout = n;
	v = NULL;
	ret = 0;
out:
	fclose(f);
	free(line);
	free(v);
	return ret;
}

/* Every certificate the journal revoked (or closed out) that this issuer
 * signed (or announced), for its CRL; others counts those of other issuers. */
struct revoked {
	history_cert *v;
	size_t n, others;
	const char *issuer_key_id;
	int recipe_issuer;   /* the issuer is the recipe's intermediate */
};

static int
collect_revoked(const history_cert *c, void *ctx)
{
	struct revoked *r = ctx;

	if (!c->revoked)
		return 0;
	/* A serial whose issuer the journal does not name (announced before
	 * issue 15 and never issued) goes on the recipe intermediate's CRL,
	 * as it did before there were several. */
	if (c->issuer_key_id[0] ? strcmp(c->issuer_key_id, r->issuer_key_id) == 0 : r->recipe_issuer)
		r->v[r->n++] = *c;
	else
		r->others++;
	return 0;
}

/* --issuer CERT --issuer-key LABEL: a retired intermediate, its key still
 * in the token; the recipe's intermediate otherwise. */
static int
issuer_load(station *st, const char *cert_path, const char *label, hsm_key **key, X509 **cert, st_err *err)
{
	if (!cert_path) {
		*key = st->ca_key;
		*cert = st->ca_cert;
		return 0;
	}
	if (!(*cert = st_x509_load(cert_path, err)))
		return st_err_prefix(err, "--issuer %s", cert_path);
	if (X509_check_ca(*cert) < 1) {
		X509_free(*cert);
		*cert = NULL;
		return st_err_set(err, ST_E_CONFIG, "--issuer %s: not a CA certificate: give the retired intermediate's",
		    cert_path);
	}
	if (!(*key = hsm_key_find(st->hsm, label, err)))
		return st_err_prefix(err, "--issuer-key");
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: station crl --recipe FILE --out FILE [--next-update-days N] [--der] [--revocations FILE]\n"
	    "                   [--issuer CERT --issuer-key LABEL] [--operator NAME] [--require-signed] [--trust PEM]\n"
	    "                   " CLI_PIN_SYNOPSIS "\n"
	    "\n"
	    "Write an X.509 v2 CRL, signed by the recipe's intermediate in the HSM, listing every\n"
	    "certificate it signed that the journal records as revoked (station revoke, rework,\n"
	    "abandoned issuance). Each issuer's CRLs are numbered on their own, recorded in the journal.\n"
	    "nextUpdate: --next-update-days, else the recipe's rework.crl_next_update_days.\n"
	    "--issuer CERT --issuer-key LABEL: the CRL of another intermediate whose certificates the\n"
	    "journal holds (one retired by a rollover), signed by its key LABEL in the token.\n"
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
		{ "issuer", required_argument, NULL, 'I' },
		{ "issuer-key", required_argument, NULL, 'K' },
		CLI_PIN_LONGOPTS,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *recipe_path = NULL, *out_path = NULL, *operator_name = NULL, *revs_path = NULL, *trust = NULL;
	const char *issuer_path = NULL, *issuer_label = NULL;
	hsm_key *issuer_key = NULL;
	X509 *issuer = NULL;
	char kid[ST_KEY_ID_HEX], subject[512];
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
	char hex[ST_SHA256_HEX_LEN + 1];
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
		case 'I': issuer_path = optarg; break;
		case 'K': issuer_label = optarg; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc || !recipe_path || !out_path) {
		fprintf(stderr, "station crl: need --recipe FILE and --out FILE\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!issuer_path != !issuer_label) {
		fprintf(stderr, "station crl: --issuer CERT and --issuer-key LABEL go together (the intermediate's "
		    "certificate and its key in the token)\n");
		return EXIT_USAGE;
	}
	operator_name = cli_operator(operator_name);
	if (station_open(recipe_path, operator_name, STATION_OPEN_HSM | STATION_OPEN_JOURNAL, require_signed, trust, &pin,
	        &st, &err) < 0) {
		fprintf(stderr, "station crl: %s\n", err.msg);
		goto out;
	}
	cli_station_warnings("crl", st);
	if (issuer_load(st, issuer_path, issuer_label, &issuer_key, &issuer, &err) < 0) {
		fprintf(stderr, "station crl: %s\n", err.msg);
		goto out;
	}
	if (st_x509_ski_hex(issuer, kid) < 0) {
		fprintf(stderr, "station crl: the issuer's certificate has no subjectKeyIdentifier: its certificates "
		    "cannot be told from another issuer's\n");
		goto out;
	}
	st_x509_subject(issuer, subject, sizeof(subject));
	rv.issuer_key_id = kid;
	rv.recipe_issuer = X509_cmp(issuer, st->ca_cert) == 0;
	crl_number = history_last_crl_number(st->history, kid) + 1;
	if (!(rv.v = calloc(history_cert_count(st->history) + 1, sizeof(*rv.v))) ||
	    history_foreach_cert(st->history, collect_revoked, &rv) != 0)
		goto out;
	if (days < 0)
		days = st->rcp->rework.crl_next_update_days;
	if (revs_path && fleet_load(revs_path, issuer, &fleet, &nfleet, &err) < 0) {
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
	if (hsm_crl_sign(issuer_key, issuer, entries, n, now, now + days * 86400, crl_number, &crl,
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
	if (station_journal(st, NULL, NULL, STEP_CRL, "ok", json_pack("{s:I,s:i,s:s,s:s,s:s,s:s}", "crl_number",
	        (json_int_t)crl_number, "entries", (int)n, "sha256", hex, "file", out_path, "issuer", subject,
	        "issuer_key_id", kid), 0, &err) < 0 ||
	    st_file_write_atomic(out_path, bytes, (size_t)len, 0644, &err) < 0) {
		fprintf(stderr, "station crl: %s\n", err.msg);
		goto out;
	}
	printf("wrote %s: CRL number %llu of %s, %zu revoked certificate%s, next update in %ld days\n", out_path,
	    (unsigned long long)crl_number, subject, n, n == 1 ? "" : "s", days);
	if (rv.others)
		printf("note: %zu revoked certificate%s of another issuer %s not on it: sign that issuer's CRL with "
		    "--issuer CERT --issuer-key LABEL\n", rv.others, rv.others == 1 ? "" : "s", rv.others == 1 ? "is" : "are");
	ret = EXIT_OK;
out:
	BIO_free(bio);
	X509_CRL_free(crl);
	free(entries);
	free(fleet);
	free(rv.v);
	if (issuer_path) {
		hsm_key_free(issuer_key);
		X509_free(issuer);
	}
	station_close(st);
	return ret;
}
