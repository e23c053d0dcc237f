/* station device: one SE's story from the local journal, in order, with its
 * certificates and what became of each.  Everything it says comes from the
 * history (history.h), the one reader of the journal; it only reads (no
 * journal lock, so it works beside a running station). */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli.h"
#include "commands.h"
#include "history.h"
#include "recipe.h"
#include "revlist.h"
#include "ui.h"

/* PROTOCOL.md section 4: an SE serial is 1..64 of these. */
#define SE_SERIAL_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
#define SE_SERIAL_MAX JIG_STR_MAX /* the longest serial a jig reports */

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: station device (--recipe FILE | --dir DIR) [--json] SERIAL\n"
	    "\n"
	    "One device's history from the local audit journal (the recipe's audit.dir, or DIR), in\n"
	    "order: every record about the SE, then its certificates and what became of each (live,\n"
	    "issued but not installed, revoked with its reason, superseded by a rework, never issued).\n"
	    "SERIAL is the SE serial as the jig reports it (its case does not matter when only one SE\n"
	    "matches), or the serial of a certificate issued to it, in any spelling: OpenSSL's\n"
	    "(0C5F4E73), lower case, without leading zeros, 0x..., or colon-separated bytes.\n"
	    "It only reads the journal, so it can run beside 'station run'.\n"
	    "  --recipe FILE         the recipe whose audit.dir holds the journal\n"
	    "  --dir DIR             the journal folder itself\n"
	    "  --json                one JSON object: device, state, records, certificates\n"
	    "Exit: 0 the journal knows the device, 1 it does not, 2 usage, a malformed SERIAL, or a\n"
	    "journal that cannot be read.\n");
}

/* -1 and a message on stderr when arg is neither an SE serial nor a
 * certificate serial in a spelling the station reads. */
static int
check_serial(const char *arg, char cert_serial[ST_CERT_SERIAL_HEX_LEN + 1])
{
	size_t len = strlen(arg), bad = strspn(arg, SE_SERIAL_CHARS);
	char shown[4 * SE_SERIAL_MAX + 8], why[4 * ST_ERR_MSG_MAX];
	st_err err;

	cert_serial[0] = '\0';
	if (revlist_serial_parse(arg, cert_serial, &err) < 0)
		cert_serial[0] = '\0';
	if ((len >= 1 && len <= SE_SERIAL_MAX && bad == len) || cert_serial[0])
		return 0;
	ui_text_clean(arg, shown, sizeof(shown));
	ui_text_clean(err.msg, why, sizeof(why)); /* it quotes arg */
	if (len == 0)
		fprintf(stderr, "station device: SERIAL is empty: give the SE serial the jig reports (station jig info)\n");
	else if (bad < len)
		fprintf(stderr, "station device: SERIAL \"%s\": byte %zu (0x%02x) is in neither an SE serial (A-Z a-z 0-9 "
		                "- _ .) nor a certificate serial (hex, 0x..., colon-separated bytes): %s\n",
		    shown, bad + 1, (unsigned char)arg[bad], why);
	else
		fprintf(stderr, "station device: SERIAL \"%.80s...\" is %zu characters; an SE serial has at most %d and "
		                "it is no certificate serial either: %s\n", shown, len, SE_SERIAL_MAX, why);
	return -1;
}

struct find_ci {
	const char *want;
	char found[SE_SERIAL_MAX + 1];
	unsigned n;
};

static int
match_ci(const history_device *d, void *ctx)
{
	struct find_ci *f = ctx;

	if (strcasecmp(d->serial, f->want) == 0 && f->n++ == 0)
		snprintf(f->found, sizeof(f->found), "%s", d->serial);
	return 0;
}

/* The SE serial arg names, into se: itself, the one SE that matches it
 * but for case, or the SE a certificate with that serial was issued to.
 * 0 found, 1 unknown, -1 ambiguous (said on stderr). */
static int
resolve(history *h, const char *arg, const char *cert_serial, char se[SE_SERIAL_MAX + 1], int *by_cert)
{
	struct find_ci f = { arg, "", 0 };
	history_device d;
	history_cert c;
	char shown[300];

	*by_cert = 0;
	if (strlen(arg) <= SE_SERIAL_MAX && history_device_get(h, arg, &d) == 0) {
		snprintf(se, 65, "%s", d.serial);
		return 0;
	}
	if (strlen(arg) <= SE_SERIAL_MAX)
		history_foreach_device(h, match_ci, &f);
	if (f.n > 1) {
		fprintf(stderr, "station device: %u SEs in the journal are \"%s\" but for case: give the serial exactly\n",
		    f.n, ui_text_clean(arg, shown, sizeof(shown)));
		return -1;
	}
	if (f.n == 1) {
		snprintf(se, 65, "%s", f.found);
		return 0;
	}
	if (cert_serial[0] && history_cert_get(h, cert_serial, &c) == 0) {
		snprintf(se, 65, "%s", c.device);
		*by_cert = 1;
		return 0;
	}
	return 1;
}

static const char *
state_name(history_state s)
{
	return s == HISTORY_PASSED ? "passed" : s == HISTORY_FAILED ? "failed" : "not finished";
}

static void
iso_time(time_t t, char out[32])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A string member of a record json_event made ("" when absent). */
static const char *
stu(json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v ? v : "";
}

/* Where and by whom, told when it changes from the record before. */
struct printed {
	char jig[300], operator_name[300];
};

static void
print_record(json_t *rec, struct printed *p)
{
	const char *jig = stu(rec, "jig"), *op = stu(rec, "operator"), *what = stu(rec, "what"),
		   *serial = stu(rec, "cert_serial"), *advice = stu(rec, "advice");

	if (strcmp(jig, p->jig) != 0 || strcmp(op, p->operator_name) != 0)
		printf("  %s%s%s%s\n", jig[0] ? "on jig " : "no jig", jig, op[0] ? ", operator " : "", op);
	snprintf(p->jig, sizeof(p->jig), "%s", jig);
	snprintf(p->operator_name, sizeof(p->operator_name), "%s", op);
	printf("  %-24s seq %-7lld %-13s %-5s%s%s%s%s%s\n", stu(rec, "time"),
	    (long long)json_integer_value(json_object_get(rec, "seq")), stu(rec, "step"), stu(rec, "result"),
	    json_is_true(json_object_get(rec, "rework")) ? " [rework]" : "", serial[0] ? " cert " : "", serial,
	    what[0] ? "  " : "", what);
	if (advice[0])
		printf("  %-24s %-11s -> %s\n", "", "", advice);
}

static void
cert_words(const history_cert *c, char *buf, size_t cap)
{
	const char *s = history_cert_status(c);
	char when[32] = "";

	if (c->revoked)
		iso_time(c->revoked_at, when);
	if (strcmp(s, "live") == 0)
		snprintf(buf, cap, "live: issued and installed, not revoked");
	else if (strcmp(s, "issued") == 0)
		snprintf(buf, cap, "issued, not installed (not revoked)");
	else if (strcmp(s, "announced") == 0)
		snprintf(buf, cap, "announced, no certificate recorded: the next run closes it out");
	else if (strcmp(s, "unissued") == 0)
		snprintf(buf, cap, "never issued: closed out and listed on the CRL (%s, %s)", c->reason, when);
	else if (strcmp(s, "superseded-by-rework") == 0)
		snprintf(buf, cap, "superseded by a rework: revoked %s (%s)%s", when, c->reason,
		    c->installed ? "" : ", never installed");
	else
		snprintf(buf, cap, "revoked %s (%s)%s", when, c->reason, c->installed ? "" : ", never installed");
}

static int
print_cert(const history_cert *c, void *ctx)
{
	char words[200];

	(*(unsigned *)ctx)++;
	cert_words(c, words, sizeof(words));
	printf("  %-40s %s\n", c->serial, words);
	return 0;
}

static int
json_event(const history_event *e, void *ctx)
{
	char jig[300], op[300], what[2048], advice[1200];
	json_t *o;

	ui_text_clean(e->jig, jig, sizeof(jig));
	ui_text_clean(e->operator_name, op, sizeof(op));
	ui_text_clean(e->what, what, sizeof(what));
	ui_text_clean(e->advice, advice, sizeof(advice));
	o = json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:b}", "seq", (json_int_t)e->seq, "batch", e->batch, "time",
	    e->time, "step", e->step, "result", e->result, "jig", jig, "operator", op, "rework", e->rework);
	if (o && e->cert_serial[0])
		json_object_set_new(o, "cert_serial", json_string(e->cert_serial));
	if (o && what[0])
		json_object_set_new(o, "what", json_string(what));
	if (o && advice[0])
		json_object_set_new(o, "advice", json_string(advice));
	return !o || json_array_append_new(ctx, o) < 0;
}

static int
json_cert(const history_cert *c, void *ctx)
{
	char when[32] = "";
	json_t *o = json_pack("{s:s,s:s,s:b,s:b}", "serial", c->serial, "status", history_cert_status(c), "issued",
	    c->issued, "installed", c->installed);

	if (o && c->revoked) {
		iso_time(c->revoked_at, when);
		json_object_set_new(o, "reason", json_string(c->reason));
		json_object_set_new(o, "revoked_at", json_string(when));
	}
	return !o || json_array_append_new(ctx, o) < 0;
}

/* The journal could not be read (rc < 0: err says why) or memory ran out. */
static void
say_failed(const char *dir, int rc, const st_err *err)
{
	fprintf(stderr, "station device: audit journal %s: %s\n", dir, rc < 0 ? err->msg : "out of memory");
}

int
cmd_device_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "recipe", required_argument, NULL, 'r' },
		{ "dir", required_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *recipe_path = NULL, *dir = NULL, *arg;
	char cert_serial[ST_CERT_SERIAL_HEX_LEN + 1], se[SE_SERIAL_MAX + 1], shown[300];
	recipe *r = NULL;
	history *h = NULL;
	history_device d;
	json_t *out = NULL, *records = NULL, *certs = NULL;
	int c, json = 0, by_cert = 0, rc, ret = EXIT_USAGE;
	unsigned n_certs = 0;
	struct printed printed = { "", "" };
	size_t i;
	char *text;
	st_err err;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r': recipe_path = optarg; break;
		case 'd': dir = optarg; break;
		case 'J': json = 1; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind + 1 != argc || !recipe_path == !dir) {
		fprintf(stderr, "station device: need one SERIAL and exactly one of --recipe FILE or --dir DIR\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	arg = argv[optind];
	if (check_serial(arg, cert_serial) < 0)
		return EXIT_USAGE;
	if (recipe_path) {
		if (!(r = cli_recipe_load("device", recipe_path)))
			return EXIT_USAGE;
		dir = r->audit.dir;
	}
	if (!(h = history_new()) || !(records = json_array()) || !(certs = json_array())) {
		say_failed(dir, 1, &err);
		goto out;
	}
	/* The SE serial itself, the common case: its records alone, in one scan. */
	if (strlen(arg) <= SE_SERIAL_MAX && strspn(arg, SE_SERIAL_CHARS) == strlen(arg) &&
	    (rc = history_load_device(h, dir, arg, json_event, records, &err)) != 0) {
		say_failed(dir, rc, &err);
		goto out;
	}
	if (history_device_get(h, arg, &d) == 0) {
		snprintf(se, sizeof(se), "%s", arg);
	} else {
		/* Another spelling: the whole journal says which SE it names. */
		history_free(h);
		if (!(h = history_new())) {
			say_failed(dir, 1, &err);
			goto out;
		}
		if ((rc = history_load(h, dir, &err)) != 0) {
			say_failed(dir, rc, &err);
			goto out;
		}
		if ((rc = resolve(h, arg, cert_serial, se, &by_cert)) < 0)
			goto out;
		if (rc > 0) {
			ui_text_clean(arg, shown, sizeof(shown));
			if (json && (out = json_pack("{s:s,s:b}", "device", shown, "known", 0))) {
				text = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
				printf("%s\n", text ? text : "{}");
				free(text);
			}
			fprintf(stderr, "station device: the journal %s has no device or certificate %s (%zu devices in it; "
			                "an SE serial is what 'station jig info' shows)\n", dir, shown, history_device_count(h));
			ret = EXIT_FAIL;
			goto out;
		}
		history_free(h);
		json_array_clear(records);
		if (!(h = history_new())) {
			say_failed(dir, 1, &err);
			goto out;
		}
		if ((rc = history_load_device(h, dir, se, json_event, records, &err)) != 0) {
			say_failed(dir, rc, &err);
			goto out;
		}
		history_device_get(h, se, &d);
	}
	if (history_foreach_device_cert(h, se, json_cert, certs) != 0 ||
	    !(out = json_pack("{s:s,s:b,s:s,s:s?,s:i,s:i,s:O,s:O}", "device", se, "known", 1, "state", state_name(d.state),
	          "live_cert_serial", d.has_cert ? d.cert_serial : NULL, "issued", (int)d.issued, "revoked",
	          (int)d.revoked, "records", records, "certificates", certs))) {
		say_failed(dir, 1, &err);
		goto out;
	}
	if (json) {
		if (by_cert)
			json_object_set_new(out, "found_by_cert_serial", json_string(cert_serial));
		text = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
		printf("%s\n", text ? text : "{}");
		free(text);
	} else {
		if (by_cert)
			printf("certificate %s was issued to device %s\n", cert_serial, se);
		printf("device %s: %s; %u certificate%s issued, %u revoked; live certificate: %s (journal %s)\n", se,
		    state_name(d.state), d.issued, d.issued == 1 ? "" : "s", d.revoked, d.has_cert ? d.cert_serial : "none",
		    dir);
		printf("records:\n");
		for (i = 0; i < json_array_size(records); i++)
			print_record(json_array_get(records, i), &printed);
		printf("certificates:\n");
		history_foreach_device_cert(h, se, print_cert, &n_certs);
		if (!n_certs)
			printf("  none\n");
	}
	ret = EXIT_OK;
out:
	json_decref(out);
	json_decref(records);
	json_decref(certs);
	history_free(h);
	recipe_free(r);
	return ret;
}
