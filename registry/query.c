/* station-registry device, certificate, alarms: reading the registry. */
#include <ctype.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "cms.h"
#include "queries.h"
#include "registry.h"
#include "revlist.h"

/* The common options of the reading commands: --json, --help. */
static int
read_opts(struct reg *r, int argc, char **argv, const char *usage_text, int nargs)
{
	enum { O_JSON = 1, O_HELP };
	static const struct option opts[] = {
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_JSON: r->json = 1; break;
		case 'h':
		case O_HELP: printf("%s", usage_text); return EXIT_OK;
		default: fprintf(stderr, "%s", usage_text); return EXIT_USAGE;
		}
	}
	if (argc - optind != nargs) {
		fprintf(stderr, "%s", usage_text);
		return EXIT_USAGE;
	}
	return -1;
}

static json_t *
row_json(PGresult *res, int row)
{
	json_t *o = json_object();
	int i;

	for (i = 0; i < PQnfields(res); i++) {
		const char *name = PQfname(res, i), *v = PQgetvalue(res, row, i);

		if (PQgetisnull(res, row, i))
			json_object_set_new(o, name, json_null());
		else if (strcmp(name, "details") == 0)
			json_object_set_new(o, name, json_loads(v, 0, NULL));
		else if (strcmp(name, "seq") == 0 || strcmp(name, "id") == 0)
			json_object_set_new(o, name, json_integer(strtoll(v, NULL, 10)));
		else
			json_object_set_new(o, name, json_string(v));
	}
	return o;
}

static json_t *
rows_json(PGresult *res)
{
	json_t *a = json_array();
	int i;

	for (i = 0; i < PQntuples(res); i++)
		json_array_append_new(a, row_json(res, i));
	return a;
}

static const char cert_sql[] = CERT_SQL;

static void
print_certs(PGresult *res)
{
	int i;

	for (i = 0; i < PQntuples(res); i++) {
		printf("  %s  %s  issued to %s at %s %s (seq %s) by %s, valid until %s", reg_safe(PQgetvalue(res, i, 0)),
		    PQgetvalue(res, i, 10), reg_safe(PQgetvalue(res, i, 3)), reg_safe(PQgetvalue(res, i, 4)), PQgetvalue(res, i, 6),
		    PQgetvalue(res, i, 5), reg_safe(PQgetvalue(res, i, 1)), PQgetvalue(res, i, 7));
		if (!PQgetisnull(res, i, 11))
			printf("; revoked at %s %s (%s)", reg_safe(PQgetvalue(res, i, 11)), PQgetvalue(res, i, 13),
			    reg_safe(PQgetvalue(res, i, 12)));
		printf("\n");
	}
}

#define DEVICE_USAGE                                                                                 \
	"usage: station-registry [--db URI] [--json] device SERIAL\n"                                     \
	"\n"                                                                                             \
	"Everything the fleet's journals say about one SE, in time order across stations:\n"           \
	"every step, the certificates it got and whether they are live or revoked, open alarms.\n"      \
	"Exit: 0 the device is known, 1 no station has journaled it, 2 usage or configuration error.\n"

int
cmd_device(struct reg *r, int argc, char **argv)
{
	const char *p[1];
	PGresult *recs = NULL, *certs = NULL, *alarms = NULL;
	int ret, i, stations;
	st_err err;

	if ((ret = read_opts(r, argc, argv, DEVICE_USAGE, 1)) >= 0)
		return ret;
	ret = EXIT_FAIL;
	p[0] = argv[optind];
	if (reg_connect(r, &err) < 0) {
		fprintf(stderr, "station-registry device: %s\n", err.msg);
		return EXIT_USAGE;
	}
	if (!(recs = reg_query(r, DEVICE_RECORDS_SQL, 1, p, &err)) || !(certs = reg_query(r, DEVICE_CERTS_SQL, 1, p, &err)) ||
	    !(alarms = reg_query(r, DEVICE_ALARMS_SQL, 1, p, &err))) {
		fprintf(stderr, "station-registry device: %s\n", err.msg);
		goto out;
	}
	if (r->json) {
		reg_print_json(json_pack("{s:s,s:o,s:o,s:o}", "device", argv[optind], "records", rows_json(recs),
		    "certificates", rows_json(certs), "alarms", rows_json(alarms)));
	} else if (PQntuples(recs) == 0) {
		printf("device %s: not in the registry (no ingested journal mentions it)\n", reg_safe(argv[optind]));
	} else {
		for (i = 0, stations = 0; i < PQntuples(recs); i++)
			if (i == 0 || strcmp(PQgetvalue(recs, i, 0), PQgetvalue(recs, i - 1, 0)) != 0)
				stations++;
		printf("device %s: %d record%s, %d certificate%s\n", reg_safe(argv[optind]), PQntuples(recs),
		    PQntuples(recs) == 1 ? "" : "s", PQntuples(certs), PQntuples(certs) == 1 ? "" : "s");
		for (i = 0; i < PQntuples(recs); i++)
			printf("  %s  %-12s #%-6s %-10s %s\n", PQgetvalue(recs, i, 2), reg_safe(PQgetvalue(recs, i, 0)),
			    PQgetvalue(recs, i, 1), reg_safe(PQgetvalue(recs, i, 3)), reg_safe(PQgetvalue(recs, i, 4)));
		if (PQntuples(certs)) {
			printf("certificates:\n");
			print_certs(certs);
		}
		for (i = 0; i < PQntuples(alarms); i++)
			printf("ALARM %s %s: %s\n", PQgetvalue(alarms, i, 0), PQgetvalue(alarms, i, 1), reg_safe(PQgetvalue(alarms, i, 2)));
	}
	ret = PQntuples(recs) ? EXIT_OK : EXIT_FAIL;
out:
	PQclear(recs);
	PQclear(certs);
	PQclear(alarms);
	return ret;
}

#define CERT_USAGE                                                                                   \
	"usage: station-registry [--db URI] [--json] certificate SERIAL\n"                                \
	"\n"                                                                                             \
	"One certificate serial, spelt as the station takes it (0C5F4E73, c5f4e73,\n"                  \
	"0x0c5f4e73, 0c:5f:4e:73): which issuer, device and station, and whether any\n"                \
	"station revoked it.  More than one line means the serial was issued more than once.\n"          \
	"Exit: 0 known, 1 not in the registry, 2 usage or configuration error.\n"

int
cmd_certificate(struct reg *r, int argc, char **argv)
{
	const char *p[1];
	PGresult *certs = NULL;
	char *sql = NULL, *serial = NULL;
	size_t i;
	int ret;
	st_err err;

	if ((ret = read_opts(r, argc, argv, CERT_USAGE, 1)) >= 0)
		return ret;
	ret = EXIT_FAIL;
	/* Any spelling the station takes (0C5F4E73, c5f4e73, 0x.., colons) into
	 * the registry's: OpenSSL's whole bytes, in lower case. */
	if (!(serial = malloc(41)))
		goto out;
	if (revlist_serial_parse(argv[optind], serial, &err) < 0) {
		fprintf(stderr, "station-registry certificate: %s\n", err.msg);
		ret = EXIT_USAGE;
		goto out;
	}
	for (i = 0; serial[i]; i++)
		serial[i] = (char)tolower((unsigned char)serial[i]);
	p[0] = serial;
	if (reg_connect(r, &err) < 0) {
		fprintf(stderr, "station-registry certificate: %s\n", err.msg);
		ret = EXIT_USAGE;
		goto out;
	}
	if (asprintf(&sql, "%s WHERE c.serial = $1 ORDER BY c.time, c.station, c.seq", cert_sql) < 0)
		goto out;
	if (!(certs = reg_query(r, sql, 1, p, &err))) {
		fprintf(stderr, "station-registry certificate: %s\n", err.msg);
		goto out;
	}
	if (r->json) {
		reg_print_json(json_pack("{s:s,s:o}", "serial", p[0], "certificates", rows_json(certs)));
	} else if (!PQntuples(certs)) {
		printf("certificate %s: not in the registry\n", reg_safe(p[0]));
	} else {
		printf("certificate %s:\n", reg_safe(p[0]));
		print_certs(certs);
	}
	ret = PQntuples(certs) ? EXIT_OK : EXIT_FAIL;
out:
	free(serial);
	free(sql);
	PQclear(certs);
	return ret;
}

#define ALARMS_USAGE                                                                                 \
	"usage: station-registry [--db URI] [--json] alarms [--clear ID --by WHO]\n"                      \
	"\n"                                                                                             \
	"The open alarms: journals that contradict each other (a fork of one station's\n"               \
	"journal, one SE provisioned at two stations or twice without a rework, one public\n"           \
	"key or attestation certificate under two SE serials, one certificate serial issued\n"          \
	"twice, a certificate revoked at one station and live at another).\n"                           \
	"--clear ID --by WHO closes one after it was dealt with (the registry owner's role only).\n"   \
	"Exit: 0 none open, 1 at least one is open, 2 usage or configuration error.\n"

int
cmd_alarms(struct reg *r, int argc, char **argv)
{
	enum { O_JSON = 1, O_CLEAR, O_BY, O_HELP };
	static const struct option opts[] = {
		{ "json", no_argument, NULL, O_JSON },
		{ "clear", required_argument, NULL, O_CLEAR },
		{ "by", required_argument, NULL, O_BY },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *clear = NULL, *by = NULL, *p[2];
	PGresult *res = NULL;
	int ret, i, c;
	st_err err;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_JSON: r->json = 1; break;
		case O_CLEAR: clear = optarg; break;
		case O_BY: by = optarg; break;
		case 'h':
		case O_HELP: printf("%s", ALARMS_USAGE); return EXIT_OK;
		default: fprintf(stderr, "%s", ALARMS_USAGE); return EXIT_USAGE;
		}
	}
	if (optind != argc || !clear != !by || (clear && clear[strspn(clear, "0123456789")])) {
		fprintf(stderr, "%s", ALARMS_USAGE);
		return EXIT_USAGE;
	}
	if (clear) {
		if (reg_connect(r, &err) < 0) {
			fprintf(stderr, "station-registry alarms: %s\n", err.msg);
			return EXIT_USAGE;
		}
		p[0] = clear;
		p[1] = by;
		if (!(res = reg_query(r, "UPDATE alarms SET cleared_at = now(), cleared_by = $2 WHERE id = $1 AND cleared_at IS NULL",
		          2, p, &err))) {
			fprintf(stderr, "station-registry alarms: --clear %s: %s\n", clear, err.msg);
			return EXIT_FAIL;
		}
		ret = strcmp(PQcmdTuples(res), "1") == 0 ? EXIT_OK : EXIT_FAIL;
		if (ret == EXIT_OK)
			printf("alarm %s cleared by %s\n", clear, reg_safe(by));
		else
			fprintf(stderr, "station-registry alarms: --clear %s: no open alarm with that id\n", clear);
		PQclear(res);
		return ret;
	}
	if (reg_connect(r, &err) < 0) {
		fprintf(stderr, "station-registry alarms: %s\n", err.msg);
		return EXIT_USAGE;
	}
	if (!(res = reg_query(r,
	          "SELECT id, kind, subject, detail, " TIME_SQL("raised_at") " AS raised_at FROM alarms"
	          " WHERE cleared_at IS NULL ORDER BY id",
	          0, NULL, &err))) {
		fprintf(stderr, "station-registry alarms: %s\n", err.msg);
		return EXIT_FAIL;
	}
	if (r->json) {
		reg_print_json(json_pack("{s:i,s:o}", "open", PQntuples(res), "alarms", rows_json(res)));
	} else if (!PQntuples(res)) {
		printf("no open alarms\n");
	} else {
		for (i = 0; i < PQntuples(res); i++)
			printf("ALARM %s %s %s: %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 4), PQgetvalue(res, i, 1),
			    reg_safe(PQgetvalue(res, i, 3)));
		printf("%d open alarm%s\n", PQntuples(res), PQntuples(res) == 1 ? "" : "s");
	}
	ret = PQntuples(res) ? EXIT_FAIL : EXIT_OK;
	PQclear(res);
	return ret;
}

#define REVS_USAGE                                                                                   \
	"usage: station-registry [--db URI] [--json] revocations --issuer CERT.pem\n"                     \
	"\n"                                                                                             \
	"Every certificate of that issuer that any station revoked, once each (the earliest\n"          \
	"revocation), as 'SERIAL TIME REASON' lines after an '# issuer:' line: the file\n"               \
	"'station crl --revocations FILE' signs, so one CRL per issuer covers the fleet.\n"             \
	"Exit: 0 written, 2 usage or configuration error.\n"

int
cmd_revocations(struct reg *r, int argc, char **argv)
{
	enum { O_ISSUER = 1, O_JSON, O_HELP };
	static const struct option opts[] = {
		{ "issuer", required_argument, NULL, O_ISSUER },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *issuer_path = NULL, *p[1];
	char subject[1024] = "";
	PGresult *res = NULL;
	X509 *ca = NULL;
	BIO *bio;
	int c, i, len, ret = EXIT_USAGE;
	st_err err;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_ISSUER: issuer_path = optarg; break;
		case O_JSON: r->json = 1; break;
		case 'h':
		case O_HELP: printf("%s", REVS_USAGE); return EXIT_OK;
		default: fprintf(stderr, "%s", REVS_USAGE); return EXIT_USAGE;
		}
	}
	if (!issuer_path || optind != argc) {
		fprintf(stderr, "%s", REVS_USAGE);
		return EXIT_USAGE;
	}
	if (!(ca = st_x509_load(issuer_path, &err))) {
		fprintf(stderr, "station-registry revocations: --issuer: %s\n", err.msg);
		goto out;
	}
	/* The same spelling ingest stores for each certificate's issuer. */
	if ((bio = BIO_new(BIO_s_mem()))) {
		X509_NAME_print_ex(bio, X509_get_subject_name(ca), 0, XN_FLAG_RFC2253);
		len = BIO_read(bio, subject, sizeof(subject) - 1);
		subject[len > 0 ? len : 0] = 0;
		BIO_free(bio);
	}
	if (reg_connect(r, &err) < 0) {
		fprintf(stderr, "station-registry revocations: %s\n", err.msg);
		goto out;
	}
	p[0] = subject;
	if (!(res = reg_query(r,
	          "SELECT DISTINCT ON (v.serial) v.serial, to_char(v.time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
	          " v.reason, v.station FROM revocations v"
	          " WHERE v.serial IN (SELECT serial FROM certificates WHERE issuer = $1) ORDER BY v.serial, v.time",
	          1, p, &err))) {
		fprintf(stderr, "station-registry revocations: %s\n", err.msg);
		ret = EXIT_FAIL;
		goto out;
	}
	if (r->json) {
		json_t *a = json_array();

		for (i = 0; i < PQntuples(res); i++)
			json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s}", "serial", PQgetvalue(res, i, 0), "revoked_at",
			                             PQgetvalue(res, i, 1), "reason", PQgetvalue(res, i, 2), "station",
			                             PQgetvalue(res, i, 3)));
		reg_print_json(json_pack("{s:s,s:o}", "issuer", subject, "revocations", a));
	} else {
		printf("# station-registry revocations: %d certificate%s\n# issuer: %s\n", PQntuples(res),
		    PQntuples(res) == 1 ? "" : "s", subject);
		for (i = 0; i < PQntuples(res); i++)
			printf("%s %s %s\n", reg_safe(PQgetvalue(res, i, 0)), PQgetvalue(res, i, 1), reg_safe(PQgetvalue(res, i, 2)));
	}
	ret = EXIT_OK;
out:
	PQclear(res);
	X509_free(ca);
	return ret;
}

#define REPORT_USAGE                                                                                 \
	"usage: station-registry [--db URI] [--json] report [--since TIME] [--station S]\n"               \
	"\n"                                                                                             \
	"Per station and day (UTC): devices seen, passed, failed, yield, revocations, and the\n"        \
	"failures by step and reason.  TIME: anything PostgreSQL reads as a timestamp\n"                 \
	"(2026-11-21, '2026-11-21 09:00Z').\n"                                                          \
	"Exit: 0, 2 usage or configuration error.\n"

int
cmd_report(struct reg *r, int argc, char **argv)
{
	enum { O_SINCE = 1, O_STATION, O_JSON, O_HELP };
	static const struct option opts[] = {
		{ "since", required_argument, NULL, O_SINCE },
		{ "station", required_argument, NULL, O_STATION },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *p[2] = { "-infinity", NULL };
	PGresult *days = NULL, *fails = NULL;
	json_t *out = NULL;
	int c, i, k, ret = EXIT_USAGE;
	st_err err;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_SINCE: p[0] = optarg; break;
		case O_STATION: p[1] = optarg; break;
		case O_JSON: r->json = 1; break;
		case 'h':
		case O_HELP: printf("%s", REPORT_USAGE); return EXIT_OK;
		default: fprintf(stderr, "%s", REPORT_USAGE); return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "%s", REPORT_USAGE);
		return EXIT_USAGE;
	}
	if (reg_connect(r, &err) < 0) {
		fprintf(stderr, "station-registry report: %s\n", err.msg);
		return EXIT_USAGE;
	}
	if (!(days = reg_query(r,
	          "SELECT station, to_char(date_trunc('day', time AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS day,"
	          " count(DISTINCT device) AS devices,"
	          " count(DISTINCT device) FILTER (WHERE step = 'done' AND result IN ('pass', 'ok')) AS passed,"
	          " count(DISTINCT device) FILTER (WHERE result IN ('fail', 'abandoned')) AS failed,"
	          " count(*) FILTER (WHERE step = 'revoke' AND result = 'ok') AS revocations"
	          " FROM records WHERE time >= $1::timestamptz AND ($2::text IS NULL OR station = $2)"
	          " GROUP BY 1, 2 ORDER BY 1, 2",
	          2, p, &err)) ||
	    !(fails = reg_query(r,
	          "SELECT station, to_char(date_trunc('day', time AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS day, step,"
	          " coalesce(details->>'error', result) AS reason, count(*) AS n"
	          " FROM records WHERE result IN ('fail', 'abandoned') AND device IS NOT NULL"
	          "  AND time >= $1::timestamptz AND ($2::text IS NULL OR station = $2)"
	          " GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 5 DESC, 3, 4",
	          2, p, &err))) {
		fprintf(stderr, "station-registry report: %s\n", err.msg);
		ret = err.msg[0] && strstr(err.msg, "invalid input syntax") ? EXIT_USAGE : EXIT_FAIL;
		goto out;
	}
	out = json_array();
	for (i = 0; i < PQntuples(days); i++) {
		long dev = strtol(PQgetvalue(days, i, 2), NULL, 10), pass = strtol(PQgetvalue(days, i, 3), NULL, 10);
		json_t *row = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:f,s:[]}", "station", PQgetvalue(days, i, 0), "day",
		    PQgetvalue(days, i, 1), "devices", (json_int_t)dev, "passed", (json_int_t)pass, "failed",
		    (json_int_t)strtol(PQgetvalue(days, i, 4), NULL, 10), "revocations",
		    (json_int_t)strtol(PQgetvalue(days, i, 5), NULL, 10), "yield", dev ? (double)pass / (double)dev : 0.0,
		    "failures");

		for (k = 0; k < PQntuples(fails); k++)
			if (strcmp(PQgetvalue(fails, k, 0), PQgetvalue(days, i, 0)) == 0 &&
			    strcmp(PQgetvalue(fails, k, 1), PQgetvalue(days, i, 1)) == 0)
				json_array_append_new(json_object_get(row, "failures"),
				    json_pack("{s:s,s:s,s:I}", "step", PQgetvalue(fails, k, 2), "reason", PQgetvalue(fails, k, 3),
				        "count", (json_int_t)strtol(PQgetvalue(fails, k, 4), NULL, 10)));
		json_array_append_new(out, row);
	}
	if (r->json) {
		reg_print_json(json_pack("{s:O}", "days", out));
	} else if (!json_array_size(out)) {
		printf("no records in the registry for that period\n");
	} else {
		size_t ri, fi;
		json_t *row, *f;

		printf("%-16s %-10s %8s %8s %8s %7s %8s\n", "station", "day", "devices", "passed", "failed", "yield", "revoked");
		json_array_foreach(out, ri, row) {
			printf("%-16s %-10s %8" JSON_INTEGER_FORMAT " %8" JSON_INTEGER_FORMAT " %8" JSON_INTEGER_FORMAT
			       " %6.1f%% %8" JSON_INTEGER_FORMAT "\n",
			    reg_safe(json_string_value(json_object_get(row, "station"))), json_string_value(json_object_get(row, "day")),
			    json_integer_value(json_object_get(row, "devices")), json_integer_value(json_object_get(row, "passed")),
			    json_integer_value(json_object_get(row, "failed")), 100.0 * json_real_value(json_object_get(row, "yield")),
			    json_integer_value(json_object_get(row, "revocations")));
			json_array_foreach(json_object_get(row, "failures"), fi, f)
				printf("    %5" JSON_INTEGER_FORMAT " x %s: %s\n", json_integer_value(json_object_get(f, "count")),
				    reg_safe(json_string_value(json_object_get(f, "step"))),
				    reg_safe(json_string_value(json_object_get(f, "reason"))));
		}
	}
	ret = EXIT_OK;
out:
	json_decref(out);
	PQclear(days);
	PQclear(fails);
	return ret;
}

#define STATIONS_USAGE                                                                               \
	"usage: station-registry [--db URI] [--json] stations\n"                                          \
	"       station-registry [--db URI] stations add STATION --cert AUDIT.pem [--replace]\n"         \
	"\n"                                                                                             \
	"The enrolled stations and the audit key (its certificate's subject) each one's\n"              \
	"bundles must be sealed by.  'add' enrolls a station with the audit certificate that\n"         \
	"seals its journal (it must carry the audit seal role); --replace changes an enrolled\n"        \
	"station's key, after its audit certificate was renewed under another subject (only\n"         \
	"the registry's owner may: the ingest role can enroll, not re-key; the read role neither).\n"  \
	"Exit: 0 done, 1 the database refused, 2 usage or configuration error.\n"

static int
stations_add(struct reg *r, int argc, char **argv)
{
	enum { O_CERT = 1, O_REPLACE, O_HELP };
	static const struct option opts[] = {
		{ "cert", required_argument, NULL, O_CERT },
		{ "replace", no_argument, NULL, O_REPLACE },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *cert = NULL, *p[2];
	char subject[256];
	PGresult *res = NULL;
	X509 *x = NULL;
	int c, replace = 0, ret = EXIT_USAGE;
	st_err err;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_CERT: cert = optarg; break;
		case O_REPLACE: replace = 1; break;
		case 'h':
		case O_HELP: printf("%s", STATIONS_USAGE); return EXIT_OK;
		default: fprintf(stderr, "%s", STATIONS_USAGE); return EXIT_USAGE;
		}
	}
	if (!cert || argc - optind != 1 || !argv[optind][0]) {
		fprintf(stderr, "%s", STATIONS_USAGE);
		return EXIT_USAGE;
	}
	if (!(x = st_x509_load(cert, &err)) || st_x509_check_role(x, ST_ROLE_AUDIT_SEAL, &err) < 0) {
		fprintf(stderr, "station-registry stations add: --cert %s: %s\n", cert, err.msg);
		goto out;
	}
	st_x509_subject(x, subject, sizeof(subject));
	if (reg_connect(r, &err) < 0) {
		fprintf(stderr, "station-registry stations add: %s\n", err.msg);
		goto out;
	}
	p[0] = argv[optind];
	p[1] = subject;
	ret = EXIT_FAIL;
	if (!(res = reg_query(r,
	          replace ? "UPDATE stations SET signer = $2 WHERE station = $1" :
	                    "INSERT INTO stations (station, signer) VALUES ($1, $2) ON CONFLICT DO NOTHING",
	          2, p, &err))) {
		fprintf(stderr, "station-registry stations add: %s\n", err.msg);
		goto out;
	}
	if (strcmp(PQcmdTuples(res), "1") != 0) {
		fprintf(stderr, "station-registry stations add: station %s is %s: %s\n", reg_safe(p[0]),
		    replace ? "not enrolled" : "enrolled already",
		    replace ? "enroll it without --replace" : "--replace changes its audit key");
		goto out;
	}
	printf("station %s enrolled: its bundles must be sealed by %s\n", reg_safe(p[0]), reg_safe(subject));
	ret = EXIT_OK;
out:
	PQclear(res);
	X509_free(x);
	return ret;
}

int
cmd_stations(struct reg *r, int argc, char **argv)
{
	PGresult *res = NULL;
	int ret, i;
	st_err err;

	if (argc > 1 && strcmp(argv[1], "add") == 0)
		return stations_add(r, argc - 1, argv + 1);
	if ((ret = read_opts(r, argc, argv, STATIONS_USAGE, 0)) >= 0)
		return ret;
	if (reg_connect(r, &err) < 0) {
		fprintf(stderr, "station-registry stations: %s\n", err.msg);
		return EXIT_USAGE;
	}
	if (!(res = reg_query(r,
	          "SELECT s.station, s.signer, " TIME_SQL("s.first_seen") " AS enrolled,"
	          " coalesce((SELECT max(last_seq) FROM bundles b WHERE b.station = s.station), 0) AS last_seq"
	          " FROM stations s ORDER BY s.station",
	          0, NULL, &err))) {
		fprintf(stderr, "station-registry stations: %s\n", err.msg);
		return EXIT_FAIL;
	}
	if (r->json) {
		reg_print_json(json_pack("{s:o}", "stations", rows_json(res)));
	} else {
		for (i = 0; i < PQntuples(res); i++)
			printf("%s  sealed by %s  enrolled %s  up to seq %s\n", reg_safe(PQgetvalue(res, i, 0)),
			    reg_safe(PQgetvalue(res, i, 1)), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
		if (!PQntuples(res))
			printf("no station is enrolled: station-registry stations add STATION --cert AUDIT.pem\n");
	}
	PQclear(res);
	return EXIT_OK;
}
