/* station crl: write a CRL of every revocation in the journal, signed in the HSM. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "commands.h"
#include "hsm.h"
#include "recipe.h"
#include "revlist.h"
#include "station.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: station crl --recipe FILE --out FILE [--next-update-days N] [--der]\n"
	    "\n"
	    "Write an X.509 v2 CRL, signed by the intermediate in the HSM, listing every certificate\n"
	    "the journal records as revoked (station revoke, rework, abandoned issuance). Each CRL\n"
	    "gets the next CRL number, recorded in the journal. nextUpdate: --next-update-days, else\n"
	    "the recipe's rework.crl_next_update_days.\n"
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
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *recipe_path = NULL, *out_path = NULL, *operator_name = NULL;
	long days = -1;
	int der = 0, c, ret = EXIT_USAGE;
	station *st = NULL;
	revlist rl = { 0 };
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
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
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
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc || !recipe_path || !out_path) {
		fprintf(stderr, "station crl: need --recipe FILE and --out FILE\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!operator_name)
		operator_name = getenv("USER") ? getenv("USER") : "unknown";
	if (station_open(recipe_path, operator_name, STATION_OPEN_HSM | STATION_OPEN_JOURNAL, 0, NULL, &st, &err) < 0 ||
	    revlist_load(st->rcp->audit.dir, &rl, &err) < 0) {
		fprintf(stderr, "station crl: %s\n", err.msg);
		goto out;
	}
	if (days < 0)
		days = st->rcp->rework.crl_next_update_days;
	if (!(entries = calloc(rl.n ? rl.n : 1, sizeof(*entries))))
		goto out;
	for (i = 0; i < rl.n; i++) {
		if (!rl.certs[i].revoked)
			continue;
		entries[n].serial_hex = rl.certs[i].serial;
		entries[n].revoked_at = rl.certs[i].revoked_at;
		entries[n].reason = hsm_crl_reason_from_name(rl.certs[i].reason);
		if (entries[n].reason < 0)
			entries[n].reason = HSM_CRL_UNSPECIFIED;
		n++;
	}
	if (hsm_crl_sign(st->ca_key, st->ca_cert, entries, n, now, now + days * 86400, rl.last_crl_number + 1, &crl,
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
	if (station_journal(st, NULL, NULL, "crl", "ok", json_pack("{s:I,s:i,s:s,s:s}", "crl_number",
	        (json_int_t)(rl.last_crl_number + 1), "entries", (int)n, "sha256", hex, "file", out_path), 0, &err) < 0 ||
	    st_file_write_atomic(out_path, bytes, (size_t)len, 0644, &err) < 0) {
		fprintf(stderr, "station crl: %s\n", err.msg);
		goto out;
	}
	printf("wrote %s: CRL number %llu, %zu revoked certificate%s, next update in %ld days\n", out_path,
	    (unsigned long long)(rl.last_crl_number + 1), n, n == 1 ? "" : "s", days);
	ret = EXIT_OK;
out:
	BIO_free(bio);
	X509_CRL_free(crl);
	free(entries);
	revlist_free(&rl);
	station_close(st);
	return ret;
}
