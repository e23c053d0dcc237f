/* station audit report BUNDLE [--ca ROOT.pem] [--html FILE]: what an auditor
 * reads of an export bundle (or a journal folder): its batches and who
 * sealed them, devices and yield per hour, failures by step and reason,
 * revocations with their reason and who made them, CRL numbers, operators
 * and recipe digests.  Text on stdout; --html writes one self-contained page
 * (inline CSS and SVG, a Content-Security-Policy that allows nothing else).
 * Every string from the journal is escaped: a jig's bytes reach it through
 * error messages and serials. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/x509.h>

#include "audit.h"
#include "cli.h"
#include "cms.h"
#include "commands.h"
#include "ui.h"

/* ---- what the journal says ----------------------------------------------- */

struct count {     /* one distinct key (or pair of keys) and how often */
	char *a, *b;
	unsigned long n;
	char first[32], last[32];
};

struct counts {
	struct count *v;
	size_t n, cap;
};

struct hour {
	char hour[14]; /* "2026-11-21T09" */
	unsigned long passed, failed, abandoned;
};

struct revocation {
	char time[32];
	char *device, *serial, *reason, *who;
};

struct crl {
	char time[32];
	long long number;
	long long entries;
	char *who;
};

struct batch {
	char name[AUDIT_NAME_MAX];
	unsigned long records, devices;
	unsigned long long first_seq, last_seq;
	char first[32], last[32];
	char *signer; /* subject of the seal's signer, NULL when unsealed */
};

struct rep {
	const char *path;
	struct batch *batches;
	size_t nbatches, cap_batches;
	struct hour *hours;
	size_t nhours, cap_hours;
	struct revocation *revs;
	size_t nrevs, cap_revs;
	struct crl *crls;
	size_t ncrls, cap_crls;
	struct counts failures, operators, recipes, stations;
	unsigned long long records, first_seq, last_seq;
	unsigned long passed, failed, abandoned;
	char first[32], last[32];
	int oom;
};

static char *
dup(struct rep *r, const char *s)
{
	char *d = strdup(s ? s : "");

	if (!d)
		r->oom = 1;
	return d;
}

static int
grow(struct rep *r, void **v, size_t n, size_t *cap, size_t size)
{
	void *nv;
	size_t c;

	if (n < *cap)
		return 0;
	c = *cap ? *cap * 2 : 16;
	if (!(nv = realloc(*v, c * size))) {
		r->oom = 1;
		return -1;
	}
	*v = nv;
	*cap = c;
	return 0;
}

static void
count_add(struct rep *r, struct counts *c, const char *a, const char *b, const char *time)
{
	size_t i;

	a = a ? a : "";
	for (i = 0; i < c->n; i++)
		if (strcmp(c->v[i].a, a) == 0 && (!b || strcmp(c->v[i].b, b) == 0))
			break;
	if (i == c->n) {
		if (grow(r, (void **)&c->v, c->n, &c->cap, sizeof(*c->v)) < 0)
			return;
		memset(&c->v[i], 0, sizeof(c->v[i]));
		c->v[i].a = dup(r, a);
		c->v[i].b = dup(r, b);
		snprintf(c->v[i].first, sizeof(c->v[i].first), "%s", time);
		c->n++;
	}
	c->v[i].n++;
	snprintf(c->v[i].last, sizeof(c->v[i].last), "%s", time);
}

static const char *
detail(const audit_record *rec, const char *key)
{
	const char *s = json_string_value(json_object_get(rec->details, key));

	return s && *s ? s : NULL;
}

static long long
detail_int(const audit_record *rec, const char *key)
{
	json_t *v = json_object_get(rec->details, key);

	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

static void
add_hour(struct rep *r, const char *time, int passed, int failed)
{
	char h[14];
	size_t i;

	/* RFC 3339 UTC, FORMAT.md section 2: the hour is the first 13 bytes. */
	if (strlen(time) < 13 || time[4] != '-' || time[10] != 'T')
		snprintf(h, sizeof(h), "unknown");
	else
		snprintf(h, sizeof(h), "%.13s", time);
	for (i = 0; i < r->nhours; i++)
		if (strcmp(r->hours[i].hour, h) == 0)
			break;
	if (i == r->nhours) {
		if (grow(r, (void **)&r->hours, r->nhours, &r->cap_hours, sizeof(*r->hours)) < 0)
			return;
		memset(&r->hours[i], 0, sizeof(r->hours[i]));
		snprintf(r->hours[i].hour, sizeof(r->hours[i].hour), "%s", h);
		r->nhours++;
	}
	if (passed)
		r->hours[i].passed++;
	else if (failed)
		r->hours[i].failed++;
	else
		r->hours[i].abandoned++;
}

static int
on_record(const audit_record *rec, void *ctx)
{
	struct rep *r = ctx;
	struct batch *b = r->nbatches ? &r->batches[r->nbatches - 1] : NULL;

	if (!r->records) {
		r->first_seq = rec->seq;
		snprintf(r->first, sizeof(r->first), "%s", rec->time);
	}
	r->records++;
	r->last_seq = rec->seq;
	snprintf(r->last, sizeof(r->last), "%s", rec->time);
	if (!b || strcmp(b->name, rec->batch) != 0) {
		if (grow(r, (void **)&r->batches, r->nbatches, &r->cap_batches, sizeof(*r->batches)) < 0)
			return 1;
		b = &r->batches[r->nbatches++];
		memset(b, 0, sizeof(*b));
		snprintf(b->name, sizeof(b->name), "%s", rec->batch);
		b->first_seq = rec->seq;
		snprintf(b->first, sizeof(b->first), "%s", rec->time);
	}
	b->records++;
	b->last_seq = rec->seq;
	snprintf(b->last, sizeof(b->last), "%s", rec->time);
	count_add(r, &r->operators, rec->operator_name, NULL, rec->time);
	count_add(r, &r->recipes, rec->recipe, NULL, rec->time);
	count_add(r, &r->stations, rec->station, NULL, rec->time);

	if (audit_is_terminal(rec->device, rec->step, rec->result)) {
		int failed = strcmp(rec->result, AUDIT_RESULT_FAIL) == 0;
		int abandoned = strcmp(rec->result, AUDIT_RESULT_ABANDONED) == 0;
		int passed = !failed && !abandoned;

		b->devices++;
		if (passed)
			r->passed++;
		else if (failed)
			r->failed++;
		else
			r->abandoned++;
		add_hour(r, rec->time, passed, failed);
		if (failed) {
			const char *why = detail(rec, "error");

			count_add(r, &r->failures, rec->step, why ? why : "(no reason recorded)", rec->time);
		}
	}
	if (strcmp(rec->step, "revoke") == 0 && strcmp(rec->result, AUDIT_RESULT_OK) == 0) {
		struct revocation *v;
		const char *who = detail(rec, "revoked_by");

		if (!who)
			who = detail(rec, "authorized_by");
		if (grow(r, (void **)&r->revs, r->nrevs, &r->cap_revs, sizeof(*r->revs)) < 0)
			return 1;
		v = &r->revs[r->nrevs++];
		snprintf(v->time, sizeof(v->time), "%s", rec->time);
		v->device = dup(r, rec->device);
		v->serial = dup(r, detail(rec, "cert_serial"));
		v->reason = dup(r, detail(rec, "reason"));
		v->who = dup(r, who ? who : rec->operator_name);
		if (detail(rec, "why")) { /* the station's own: "issued but never installed..." */
			free(v->who);
			v->who = dup(r, "station (automatic)");
		}
	}
	if (strcmp(rec->step, "crl") == 0 && strcmp(rec->result, AUDIT_RESULT_OK) == 0) {
		struct crl *c;

		if (grow(r, (void **)&r->crls, r->ncrls, &r->cap_crls, sizeof(*r->crls)) < 0)
			return 1;
		c = &r->crls[r->ncrls++];
		snprintf(c->time, sizeof(c->time), "%s", rec->time);
		c->number = detail_int(rec, "crl_number");
		c->entries = detail_int(rec, "entries");
		c->who = dup(r, rec->operator_name);
	}
	return r->oom;
}

/* The subject of the certificate that signed BATCH.p7s, or NULL. */
static char *
seal_signer(const char *dir, const char *batch)
{
	char path[4200];
	uint8_t *der = NULL;
	size_t len = 0;
	const unsigned char *p;
	CMS_ContentInfo *cms = NULL;
	STACK_OF(CMS_SignerInfo) *sis;
	STACK_OF(X509) *certs = NULL;
	char *out = NULL;
	st_err err;
	int i, k;

	snprintf(path, sizeof(path), "%s/%s%s", dir, batch, AUDIT_SEAL_SUFFIX);
	if (st_file_read(path, 1 << 20, &der, &len, &err) < 0)
		return NULL;
	p = der;
	if (!(cms = d2i_CMS_ContentInfo(NULL, &p, (long)len)) || !(sis = CMS_get0_SignerInfos(cms)))
		goto out;
	certs = CMS_get1_certs(cms);
	for (i = 0; !out && i < sk_CMS_SignerInfo_num(sis); i++)
		for (k = 0; !out && k < sk_X509_num(certs); k++)
			if (CMS_SignerInfo_cert_cmp(sk_CMS_SignerInfo_value(sis, i), sk_X509_value(certs, k)) == 0) {
				char buf[512];

				X509_NAME_oneline(X509_get_subject_name(sk_X509_value(certs, k)), buf, sizeof(buf));
				out = strdup(buf);
			}
	if (!out)
		out = strdup("(signer certificate not in the seal)");
out:
	sk_X509_pop_free(certs, X509_free);
	CMS_ContentInfo_free(cms);
	free(der);
	return out;
}

static int
hour_cmp(const void *a, const void *b)
{
	return strcmp(((const struct hour *)a)->hour, ((const struct hour *)b)->hour);
}

static int
count_cmp(const void *a, const void *b)
{
	const struct count *x = a, *y = b;

	return x->n < y->n ? 1 : x->n > y->n ? -1 : strcmp(x->a, y->a);
}

static void
rep_free(struct rep *r)
{
	struct counts *cs[] = { &r->failures, &r->operators, &r->recipes, &r->stations };
	size_t i, k;

	for (k = 0; k < sizeof(cs) / sizeof(cs[0]); k++) {
		for (i = 0; i < cs[k]->n; i++) {
			free(cs[k]->v[i].a);
			free(cs[k]->v[i].b);
		}
		free(cs[k]->v);
	}
	for (i = 0; i < r->nbatches; i++)
		free(r->batches[i].signer);
	for (i = 0; i < r->nrevs; i++) {
		free(r->revs[i].device);
		free(r->revs[i].serial);
		free(r->revs[i].reason);
		free(r->revs[i].who);
	}
	for (i = 0; i < r->ncrls; i++)
		free(r->crls[i].who);
	free(r->batches);
	free(r->hours);
	free(r->revs);
	free(r->crls);
}

static double
yield(unsigned long passed, unsigned long failed)
{
	return passed + failed ? 100.0 * (double)passed / (double)(passed + failed) : 0.0;
}

/* ---- text ---------------------------------------------------------------------- */

/* Cleaned text for one printf: up to 8 arguments per call. */
static const char *
T(const char *s)
{
	static char tb[8][2048];
	static unsigned i;

	i = (i + 1) % 8;
	return ui_text_clean(s, tb[i], sizeof(tb[i]));
}

static void
print_text(const struct rep *r, const char *verified)
{
	size_t i;

	printf("audit report: %s\n", T(r->path));
	printf("verification: %s\n", verified);
	printf("records %llu (seq %llu..%llu) from %s to %s\n", r->records, r->first_seq, r->last_seq, T(r->first),
	    T(r->last));
	for (i = 0; i < r->stations.n; i++)
		printf("station %s: %lu records\n", T(r->stations.v[i].a), r->stations.v[i].n);
	printf("\nbatches and seals\n");
	for (i = 0; i < r->nbatches; i++)
		printf("  %s  seq %llu..%llu  %lu records  %lu devices  %s .. %s  %s%s\n", T(r->batches[i].name),
		    r->batches[i].first_seq, r->batches[i].last_seq, r->batches[i].records, r->batches[i].devices,
		    T(r->batches[i].first), T(r->batches[i].last), r->batches[i].signer ? "sealed by " : "NOT SEALED",
		    r->batches[i].signer ? T(r->batches[i].signer) : "");
	printf("\ndevices: %lu handled, %lu passed, %lu failed, %lu abandoned; yield %.1f%%\n",
	    r->passed + r->failed + r->abandoned, r->passed, r->failed, r->abandoned, yield(r->passed, r->failed));
	printf("per hour (UTC)\n");
	for (i = 0; i < r->nhours; i++)
		printf("  %s:00  passed %lu  failed %lu  abandoned %lu  yield %.1f%%\n", T(r->hours[i].hour),
		    r->hours[i].passed, r->hours[i].failed, r->hours[i].abandoned,
		    yield(r->hours[i].passed, r->hours[i].failed));
	printf("\nfailures by step and reason\n");
	if (!r->failures.n)
		printf("  none\n");
	for (i = 0; i < r->failures.n; i++)
		printf("  %5lu  %-10s %s\n", r->failures.v[i].n, T(r->failures.v[i].a), T(r->failures.v[i].b));
	printf("\nrevocations\n");
	if (!r->nrevs)
		printf("  none\n");
	for (i = 0; i < r->nrevs; i++)
		printf("  %s  device %s  certificate %s  %s  by %s\n", T(r->revs[i].time), T(r->revs[i].device),
		    T(r->revs[i].serial), T(r->revs[i].reason), T(r->revs[i].who));
	printf("\nCRLs\n");
	if (!r->ncrls)
		printf("  none\n");
	for (i = 0; i < r->ncrls; i++)
		printf("  %s  CRL number %lld  %lld entries  by %s\n", T(r->crls[i].time), r->crls[i].number,
		    r->crls[i].entries, T(r->crls[i].who));
	printf("\noperators\n");
	for (i = 0; i < r->operators.n; i++)
		printf("  %-24s %6lu records  %s .. %s\n", T(r->operators.v[i].a), r->operators.v[i].n,
		    T(r->operators.v[i].first), T(r->operators.v[i].last));
	printf("\nrecipe digests\n");
	for (i = 0; i < r->recipes.n; i++)
		printf("  %-64s %6lu records  %s .. %s\n", r->recipes.v[i].a[0] ? T(r->recipes.v[i].a) : "(none: tools)",
		    r->recipes.v[i].n, T(r->recipes.v[i].first), T(r->recipes.v[i].last));
}

/* ---- HTML ------------------------------------------------------------------------ */

/* Text into HTML: markup characters as entities, and control bytes and
 * invalid UTF-8 as \xNN (ui_text_clean) so nothing from a jig is markup. */
static void
h(FILE *f, const char *s)
{
	char buf[4096];
	const char *p;

	for (p = ui_text_clean(s ? s : "", buf, sizeof(buf)); *p; p++) {
		switch (*p) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: fputc(*p, f);
		}
	}
}

/* Devices per hour as stacked bars (passed, failed, abandoned) and the
 * yield as a line on a 0-100 % scale. */
static void
svg_chart(FILE *f, const struct rep *r)
{
	const double W = 760, H = 310, L = 50, R = 50, T0 = 20, B = 80;
	double pw = W - L - R, ph = H - T0 - B, bw, x, y, hp, hf, ha;
	unsigned long max = 1;
	size_t i;

	for (i = 0; i < r->nhours; i++)
		if (r->hours[i].passed + r->hours[i].failed + r->hours[i].abandoned > max)
			max = r->hours[i].passed + r->hours[i].failed + r->hours[i].abandoned;
	bw = r->nhours ? pw / (double)r->nhours : pw;
	if (bw > 80)
		bw = 80;
	fprintf(f, "<svg id=\"devices-per-hour\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
	           "viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"devices and yield per hour\">\n", W, H, W, H);
	fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n", L, T0 + ph, L + pw, T0 + ph);
	fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n", L, T0, L, T0 + ph);
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%lu</text>\n", L - 4, T0 + 4, max);
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">0</text>\n", L - 4, T0 + ph);
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">100%%</text>\n", L + pw + 4, T0 + 4);
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">0%%</text>\n", L + pw + 4, T0 + ph);
	for (i = 0; i < r->nhours; i++) {
		const struct hour *o = &r->hours[i];

		x = L + bw * (double)i + bw * 0.1;
		hp = ph * (double)o->passed / (double)max;
		hf = ph * (double)o->failed / (double)max;
		ha = ph * (double)o->abandoned / (double)max;
		y = T0 + ph;
		fprintf(f, "<g class=\"hour\"><title>");
		h(f, o->hour);
		fprintf(f, ":00 UTC: %lu passed, %lu failed, %lu abandoned</title>\n", o->passed, o->failed, o->abandoned);
		fprintf(f, "<rect class=\"passed\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#2e7d32\"/>\n", x,
		    y - hp, bw * 0.8, hp);
		fprintf(f, "<rect class=\"failed\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#c62828\"/>\n", x,
		    y - hp - hf, bw * 0.8, hf);
		fprintf(f, "<rect class=\"abandoned\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#9e9e9e\"/>\n",
		    x, y - hp - hf - ha, bw * 0.8, ha);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" transform=\"rotate(-45 %.1f %.1f)\" "
		           "text-anchor=\"end\">", x + bw * 0.4, T0 + ph + 14, x + bw * 0.4, T0 + ph + 14);
		h(f, o->hour + (strlen(o->hour) == 13 ? 5 : 0));
		fprintf(f, "h</text></g>\n");
	}
	fprintf(f, "<polyline id=\"yield\" fill=\"none\" stroke=\"#1565c0\" stroke-width=\"2\" points=\"");
	for (i = 0; i < r->nhours; i++)
		fprintf(f, "%s%.1f,%.1f", i ? " " : "", L + bw * ((double)i + 0.5),
		    T0 + ph - ph * yield(r->hours[i].passed, r->hours[i].failed) / 100.0);
	fprintf(f, "\"/>\n");
	for (i = 0; i < r->nhours; i++)
		fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#1565c0\"/>\n", L + bw * ((double)i + 0.5),
		    T0 + ph - ph * yield(r->hours[i].passed, r->hours[i].failed) / 100.0);
	/* The legend. */
	fprintf(f, "<g font-size=\"11\"><rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"#2e7d32\"/>"
	           "<text x=\"%.1f\" y=\"%.1f\">passed</text>", L, H - 14, L + 14, H - 5);
	fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"#c62828\"/>"
	           "<text x=\"%.1f\" y=\"%.1f\">failed</text>", L + 70, H - 14, L + 84, H - 5);
	fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"#9e9e9e\"/>"
	           "<text x=\"%.1f\" y=\"%.1f\">abandoned</text>", L + 140, H - 14, L + 154, H - 5);
	fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"3\" fill=\"#1565c0\"/>"
	           "<text x=\"%.1f\" y=\"%.1f\">yield (right scale)</text></g>\n</svg>\n", L + 230, H - 10, L + 244, H - 5);
}

static void
html_counts(FILE *f, const struct counts *c, const char *head_a, const char *head_b, int with_b)
{
	size_t i;

	fprintf(f, "<table><tr><th>%s</th>%s%s%s<th>records</th><th>first</th><th>last</th></tr>\n", head_a,
	    with_b ? "<th>" : "", with_b ? head_b : "", with_b ? "</th>" : "");
	for (i = 0; i < c->n; i++) {
		fputs("<tr><td>", f);
		h(f, c->v[i].a[0] ? c->v[i].a : "(none)");
		if (with_b) {
			fputs("</td><td>", f);
			h(f, c->v[i].b);
		}
		fprintf(f, "</td><td class=\"n\">%lu</td><td>", c->v[i].n);
		h(f, c->v[i].first);
		fputs("</td><td>", f);
		h(f, c->v[i].last);
		fputs("</td></tr>\n", f);
	}
	fputs("</table>\n", f);
}

static int
write_html(const struct rep *r, const char *verified, int ok, const char *out, st_err *err)
{
	char *buf = NULL;
	size_t len = 0, i;
	FILE *f = open_memstream(&buf, &len);
	int ret;

	if (!f)
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
	      "img-src data:\">\n<title>audit report: ",
	    f);
	h(f, r->path);
	fputs("</title>\n<style>\nbody{font-family:sans-serif;margin:2em;color:#222}\n"
	      "table{border-collapse:collapse;margin:.5em 0 1.5em}\n"
	      "td,th{border:1px solid #bbb;padding:.2em .6em;text-align:left;vertical-align:top}\n"
	      "th{background:#eee}td.n{text-align:right}\n.ok{color:#2e7d32}.bad{color:#c62828;font-weight:bold}\n"
	      "code{font-size:.9em}\n</style></head><body>\n<h1>Audit report</h1>\n<p>",
	    f);
	h(f, r->path);
	fprintf(f, "</p>\n<p class=\"%s\" id=\"verification\">", ok ? "ok" : "bad");
	h(f, verified);
	fprintf(f, "</p>\n<p>%llu records (seq %llu..%llu) from ", r->records, r->first_seq, r->last_seq);
	h(f, r->first);
	fputs(" to ", f);
	h(f, r->last);
	fputs("</p>\n<h2>Batches and seals</h2>\n<table id=\"batches\"><tr><th>batch</th><th>seq</th><th>records</th>"
	      "<th>devices</th><th>from</th><th>to</th><th>sealed by</th></tr>\n",
	    f);
	for (i = 0; i < r->nbatches; i++) {
		const struct batch *b = &r->batches[i];

		fputs("<tr><td>", f);
		h(f, b->name);
		fprintf(f, "</td><td>%llu..%llu</td><td class=\"n\">%lu</td><td class=\"n\">%lu</td><td>", b->first_seq,
		    b->last_seq, b->records, b->devices);
		h(f, b->first);
		fputs("</td><td>", f);
		h(f, b->last);
		fputs(b->signer ? "</td><td>" : "</td><td class=\"bad\">", f);
		h(f, b->signer ? b->signer : "not sealed");
		fputs("</td></tr>\n", f);
	}
	fprintf(f, "</table>\n<h2>Devices and yield per hour (UTC)</h2>\n<p>%lu handled: %lu passed, %lu failed, %lu "
	           "abandoned; yield %.1f%%</p>\n",
	    r->passed + r->failed + r->abandoned, r->passed, r->failed, r->abandoned, yield(r->passed, r->failed));
	svg_chart(f, r);
	fputs("<table id=\"hours\"><tr><th>hour</th><th>passed</th><th>failed</th><th>abandoned</th><th>yield</th></tr>\n",
	    f);
	for (i = 0; i < r->nhours; i++) {
		fputs("<tr><td>", f);
		h(f, r->hours[i].hour);
		fprintf(f, ":00</td><td class=\"n\">%lu</td><td class=\"n\">%lu</td><td class=\"n\">%lu</td>"
		           "<td class=\"n\">%.1f%%</td></tr>\n",
		    r->hours[i].passed, r->hours[i].failed, r->hours[i].abandoned,
		    yield(r->hours[i].passed, r->hours[i].failed));
	}
	fputs("</table>\n<h2>Failures by step and reason</h2>\n", f);
	html_counts(f, &r->failures, "step", "reason", 1);
	fputs("<h2>Revocations</h2>\n<table id=\"revocations\"><tr><th>time</th><th>device</th><th>certificate</th>"
	      "<th>reason</th><th>by</th></tr>\n",
	    f);
	for (i = 0; i < r->nrevs; i++) {
		const char *cells[] = { r->revs[i].time, r->revs[i].device, r->revs[i].serial, r->revs[i].reason,
			r->revs[i].who };
		size_t k;

		fputs("<tr>", f);
		for (k = 0; k < 5; k++) {
			fputs("<td>", f);
			h(f, cells[k]);
			fputs("</td>", f);
		}
		fputs("</tr>\n", f);
	}
	fputs("</table>\n<h2>CRLs</h2>\n<table id=\"crls\"><tr><th>time</th><th>CRL number</th><th>entries</th>"
	      "<th>by</th></tr>\n",
	    f);
	for (i = 0; i < r->ncrls; i++) {
		fputs("<tr><td>", f);
		h(f, r->crls[i].time);
		fprintf(f, "</td><td class=\"n\">%lld</td><td class=\"n\">%lld</td><td>", r->crls[i].number,
		    r->crls[i].entries);
		h(f, r->crls[i].who);
		fputs("</td></tr>\n", f);
	}
	fputs("</table>\n<h2>Operators</h2>\n", f);
	html_counts(f, &r->operators, "operator", NULL, 0);
	fputs("<h2>Recipe digests</h2>\n", f);
	html_counts(f, &r->recipes, "SHA-256", NULL, 0);
	fputs("<h2>Stations</h2>\n", f);
	html_counts(f, &r->stations, "station", NULL, 0);
	fputs("</body></html>\n", f);
	if (fclose(f) != 0) {
		free(buf);
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	}
	ret = st_file_write_atomic(out, buf, len, 0644, err);
	free(buf);
	return ret;
}

/* ---- the command --------------------------------------------------------------------- */

static void
report_usage(FILE *f)
{
	fprintf(f,
	    "usage: station audit report PATH [--ca ROOT.pem] [--html FILE]\n"
	    "\n"
	    "Summarise an export bundle (or a journal folder) for an auditor: its batches and\n"
	    "who sealed them, devices and yield per hour, failures by step and reason,\n"
	    "revocations with their reason and who made them, CRL numbers, operators and\n"
	    "recipe digests.  The hash chain is always checked; with --ca the seals and the\n"
	    "manifest too, as 'station audit verify' does, and the report says the result.\n"
	    "\n"
	    "  --ca ROOT.pem   verify the seals up to this root first\n"
	    "  --html FILE     also write the report as one self-contained HTML page\n"
	    "                  (inline SVG chart, no external resources)\n"
	    "Exit: 0 reported (and verified, with --ca), 1 the journal is damaged or does not\n"
	    "verify (reported anyway when readable), 2 usage or configuration error.\n");
}

int
cmd_audit_report(int argc, char **argv)
{
	enum { O_CA = 1, O_HTML, O_HELP };
	static const struct option opts[] = {
		{ "ca", required_argument, NULL, O_CA },
		{ "html", required_argument, NULL, O_HTML },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *ca = NULL, *html = NULL;
	X509_STORE *trust = NULL;
	audit_report *ar = NULL;
	struct rep r;
	char verified[1200];
	size_t i;
	st_err err;
	int c, ok = 0, ret = EXIT_USAGE;

	memset(&r, 0, sizeof(r));
	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_CA: ca = optarg; break;
		case O_HTML: html = optarg; break;
		case 'h':
		case O_HELP: report_usage(stdout); ret = EXIT_OK; goto out;
		default: report_usage(stderr); goto out;
		}
	}
	if (optind + 1 != argc) {
		report_usage(stderr);
		goto out;
	}
	r.path = argv[optind];
	if (ca && !(trust = st_x509_store_load(ca, &err))) {
		fprintf(stderr, "station audit report: --ca: %s\n", err.msg);
		goto out;
	}
	if (audit_verify(r.path, trust, &ar, &err) < 0 && err.code != ST_E_VERIFY) {
		fprintf(stderr, "station audit report: %s\n", err.msg);
		ret = err.code == ST_E_NOTFOUND || err.code == ST_E_CONFIG ? EXIT_USAGE : EXIT_FAIL;
		goto out;
	}
	if (ar->n_problems) {
		snprintf(verified, sizeof(verified), "FAILED verification: %s%s", ar->first_broken ? ar->first_broken :
		    ar->problems[0], ar->n_problems > 1 ? " (and more: station audit verify lists them)" : "");
	} else if (trust) {
		ok = 1;
		snprintf(verified, sizeof(verified), "verified: the hash chain%s and %u seal%s hold, up to %.400s",
		    ar->bundle ? ", the manifest" : "", ar->sealed, ar->sealed == 1 ? "" : "s", ca);
	} else {
		snprintf(verified, sizeof(verified),
		    "hash chain holds; seals NOT checked (give --ca ROOT.pem, or run station audit verify)");
	}
	if (audit_scan(r.path, on_record, &r, &err) != 0 || r.oom) {
		if (r.oom || err.code != ST_E_VERIFY || !ar->n_problems) {
			fprintf(stderr, "station audit report: %s\n", r.oom ? "out of memory" : err.msg);
			ret = EXIT_FAIL;
			goto out;
		}
		/* Damaged: report what comes before the damage, under the FAILED line. */
		snprintf(verified + strlen(verified), sizeof(verified) - strlen(verified),
		    "; this report covers only the records before it");
	}
	for (i = 0; i < r.nbatches; i++)
		r.batches[i].signer = seal_signer(r.path, r.batches[i].name);
	if (r.nhours)
		qsort(r.hours, r.nhours, sizeof(*r.hours), hour_cmp);
	if (r.failures.n)
		qsort(r.failures.v, r.failures.n, sizeof(*r.failures.v), count_cmp);
	print_text(&r, verified);
	if (html) {
		if (write_html(&r, verified, ok || (!trust && !ar->n_problems), html, &err) < 0) {
			fprintf(stderr, "station audit report: --html: %s\n", err.msg);
			ret = EXIT_USAGE;
			goto out;
		}
		printf("\nwrote %s\n", html);
	}
	ret = ar->n_problems ? EXIT_FAIL : EXIT_OK;
out:
	rep_free(&r);
	audit_report_free(ar);
	X509_STORE_free(trust);
	return ret;
}
