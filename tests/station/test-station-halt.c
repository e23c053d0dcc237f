/* The anomaly halt (recipe halt:, issue 15 item 3) on a gang of two jigs:
 * attestation failures on one jig stop issuing on both, a "halt" record
 * says why, the run ends "halt" (exit 3), and every later run refuses to
 * issue until `station run --authorization` gets a resume from `station
 * authorize resume` naming that halt (used once; journaled).  The same
 * posture failure again and again halts too. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "stutil.h"

static const char halt_rules[] = "  crl_next_update_days: 7\n"
				 "halt:\n"
				 "  attestation_failures: 2\n"
				 "  within: 10\n"
				 "  identical_posture_failures: 3\n";

static stu_ws *
halt_ws(void)
{
	stu_ws *w = stu_ws_new(tu_pki);

	stu_recipe_edit(w, "  crl_next_update_days: 7\n", halt_rules);
	return w;
}

static stu_sim *
sim(unsigned id, unsigned devices, unsigned faults, const char *model)
{
	jigsim_config c;

	jigsim_config_init(&c);
	c.id = id;
	c.devices = devices;
	c.faults = faults;
	c.fault_every = 1;
	if (model)
		c.model = model;
	return stu_sim_start(tu_pki, &c);
}

/* Positions of the records of a journal: the halt record's, and how many
 * records of step come after it. */
struct after_halt {
	uint64_t halt_seq;
	unsigned halts, resumes, identify_after, issued_after;
	json_t *halt, *resume;
};

static int
on_record(const audit_record *rec, void *ctx)
{
	struct after_halt *a = ctx;

	if (strcmp(rec->step, "halt") == 0) {
		a->halts++;
		a->halt_seq = rec->seq;
		json_decref(a->halt);
		a->halt = json_incref(rec->details);
		ck_assert_str_eq(rec->result, "info");
		ck_assert_ptr_null(rec->device);
	} else if (strcmp(rec->step, "halt-resume") == 0) {
		a->resumes++;
		json_decref(a->resume);
		a->resume = json_incref(rec->details);
	} else if (a->halt_seq && !a->resumes && strcmp(rec->step, "identify") == 0) {
		a->identify_after++;
	} else if (a->halt_seq && !a->resumes && strcmp(rec->step, "issued") == 0) {
		a->issued_after++;
	}
	return 0;
}

static void
scan(stu_ws *w, struct after_halt *a)
{
	st_err err;

	memset(a, 0, sizeof(*a));
	ck_assert_msg(audit_scan(w->audit, on_record, a, &err) == 0, "journal: %s", err.msg);
}

static void
scan_clear(struct after_halt *a)
{
	json_decref(a->halt);
	json_decref(a->resume);
}

/* station authorize resume with the authorizer's own token. */
static int
authorize_resume(stu_ws *w, const char *how, const char *value, const char *out_name, char **path, char **out)
{
	int rc;

	ck_assert_int_ne(asprintf(path, "%s/%s", w->dir, out_name), -1);
	rc = tu_station(out, "authorize", "resume", how, value, "--token", "station-authorizer", "--key-label",
	    "authorizer", "--pin-env", "STATION_AUTHORIZER_PIN", "--reason", "counterfeit lot quarantined, QA 17",
	    "--expires", "1h", "--out", *path, NULL);
	return rc;
}


/* A token over body (JSON, printf-safe) signed with stock openssl by a file
 * key of the authorization role under the test root: the station's parser
 * sees exactly these bytes. */
static char *
body_token(stu_ws *w, const char *name, const char *body)
{
	char *path = NULL, *out = NULL;
	int rc;

	ck_assert_int_ne(asprintf(&path, "%s/%s.der", w->dir, name), -1);
	rc = tu_shf(&out,
	    "set -e; cd '%s'; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out %s.key; "
	    "printf 'keyUsage=critical,digitalSignature\\nextendedKeyUsage=emailProtection,"
	    "2.25.55189662177780663467762906544539105105.1.3\\n' > %s.ext; "
	    "openssl req -new -key %s.key -subj '/O=Station Test/CN=%s' 2>/dev/null | openssl x509 -req -CA pki/root-ca.pem "
	    "-CAkey pki/root-ca.key -extfile %s.ext -days 2 -out %s.pem 2>/dev/null; printf '%%s' '%s' > %s.json; "
	    "openssl cms -sign -binary -nodetach -outform DER -in %s.json -out '%s' -signer %s.pem -inkey %s.key",
	    w->dir, name, name, name, name, name, name, body, name, name, path, name, name);
	ck_assert_msg(rc == 0, "%s", out);
	free(out);
	return path;
}

/* Malformed resumes, signed by someone the recipe trusts: each refused
 * (exit 2) and saying why; the halt stays. */
static void
malformed_resumes(stu_ws *w, const char *jig, const char *spec)
{
	static const struct {
		const char *name, *halt, *type, *says;
	} cases[] = {
		{ "no-halt", "", "resume", "a resume, and only a resume, names the halt it lifts" },
		{ "rework-halt", ",\"halt\":{\"id\":\"0123456789abcdef0123456789abcdef\",\"seq\":3}", "rework",
		  "a resume, and only a resume, names the halt it lifts" },
		{ "seq-zero", ",\"halt\":{\"id\":\"0123456789abcdef0123456789abcdef\",\"seq\":0}", "resume", "halt: expected" },
		{ "id-short", ",\"halt\":{\"id\":\"0123\",\"seq\":3}", "resume", "halt: expected" },
		{ "seq-text", ",\"halt\":{\"id\":\"0123456789abcdef0123456789abcdef\",\"seq\":\"3\"}", "resume", "halt: expected" },
		{ "extra", ",\"halt\":{\"id\":\"0123456789abcdef0123456789abcdef\",\"seq\":3,\"all\":true}", "resume",
		  "halt: expected" },
		{ "not-object", ",\"halt\":[3]", "resume", "halt: expected" },
		/* an unknown key is named, unless it is not printable (no escape sequence reaches the terminal) */
		{ "unknown-key", ",\"halt\":{\"id\":\"0123456789abcdef0123456789abcdef\",\"seq\":3},\"scope\":1", "resume",
		  "unknown key \"scope\"" },
		{ "unknown-esc", ",\"halt\":{\"id\":\"0123456789abcdef0123456789abcdef\",\"seq\":3},\"\\u001b[2J\":1", "resume",
		  "unknown key \"(not printable ASCII)\"" },
	};
	char body[1024], *path, *out = NULL;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(body, sizeof(body), "{\"expires\":\"2099-01-01T00:00:00Z\",\"format\":\"station-authorization\","
		    "\"id\":\"00112233445566778899aabbccddeeff\",\"issued\":\"2020-01-01T00:00:00Z\",\"reason\":\"r\","
		    "\"serials\":[],\"signer\":\"me\",\"type\":\"%s\",\"version\":1%s}", cases[i].type, cases[i].halt);
		path = body_token(w, cases[i].name, body);
		rc = tu_station(&out, "run", "--recipe", w->recipe, "--jig", jig, "--count", "1", "--authorization", path,
		    NULL);
		stu_expect(rc, out, 2, cases[i].says, cases[i].name);
		free(path);
	}
	rc = tu_station(&out, "run", "--recipe", w->recipe, "--jig", jig, "--count", "1", NULL);
	stu_expect(rc, out, 3, spec, "run after the malformed resumes: still halted");
}

START_TEST(test_attestation_halt_gang)
{
	stu_ws *w = halt_ws();
	stu_sim *bad = sim(1, 8, JIGSIM_F_BAD_ATTEST_SIG, NULL), *good = sim(2, 8, 0, NULL), *good2;
	const char *jigs[2] = { bad->uri, good->uri };
	char spec[128], *authz = NULL, *rework = NULL, *out = NULL;
	struct after_halt a;
	unsigned in_flight;
	json_t *ev;
	stu_run r;
	int rc;

	stu_station_start_jigs(w, jigs, 2, 12, 1, &r);
	stu_station_wait(&r, 120);
	ck_assert_msg(r.status == 3, "halted run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_msg((ev = stu_event(&r, "summary", NULL)) && strcmp(stu_str(ev, "reason"), "halt") == 0,
	    "the summary does not say halt:\n%s", stu_tail(r.out));
	ck_assert_msg((ev = stu_event(&r, "halt", NULL)) && strcmp(stu_str(ev, "reason"), "halt") == 0 &&
	    strstr(stu_str(ev, "message"), "2 attestation or identity failures among the last"),
	    "no halt event saying why:\n%s", stu_tail(r.out));
	stu_run_clear(&r);
	scan(w, &a);
	ck_assert_uint_eq(a.halts, 1);
	ck_assert_str_eq(stu_str(a.halt, "reason"), "attestation");
	ck_assert_uint_eq(strlen(stu_str(a.halt, "halt_id")), 32);
	/* Both jigs stop: at most the device in flight on the good jig goes on. */
	ck_assert_uint_le(a.identify_after, 1);
	ck_assert_uint_le(a.issued_after, 1);
	in_flight = a.identify_after;
	snprintf(spec, sizeof(spec), "%llu:%s", (unsigned long long)a.halt_seq, stu_str(a.halt, "halt_id"));
	scan_clear(&a);
	stu_audit_verify(w);

	/* Halted: a later run issues nothing, and says how to lift it. */
	stu_station_run(w, good->uri, 1, 0, &r);
	ck_assert_msg(r.status == 3 && strstr(r.err, "halted issuing at seq") && strstr(r.err, spec) &&
	    strstr(r.err, "station authorize resume"), "run while halted: exit %d\n%s", r.status, stu_tail(r.err));
	stu_run_clear(&r);
	scan(w, &a);
	/* Nothing after the halt but what the first run had in flight. */
	ck_assert_uint_eq(a.identify_after, in_flight);
	scan_clear(&a);

	/* Refused: a rework token, a malformed --halt, no halt named. */
	ck_assert_int_ne(asprintf(&rework, "%s/rework.authz", w->dir), -1);
	rc = tu_station(&out, "authorize", "rework", "--se", "SE0011223344556677", "--token", "station-authorizer",
	    "--key-label", "authorizer", "--pin-env", "STATION_AUTHORIZER_PIN", "--reason", "r", "--expires", "1h", "--out",
	    rework, NULL);
	stu_expect(rc, out, 0, "authorizes rework", "station authorize rework");
	rc = tu_station(&out, "run", "--recipe", w->recipe, "--jig", good->uri, "--count", "1", "--authorization", rework,
	    NULL);
	stu_expect(rc, out, 2, "is for rework, not resume", "run with a rework token");
	rc = authorize_resume(w, "--halt", "12:abc", "bad.authz", &authz, &out);
	stu_expect(rc, out, 2, "expected SEQ:ID", "authorize resume --halt 12:abc");
	free(authz);
	rc = authorize_resume(w, "--halt", "7:0123456789abcdef0123456789abcdef", "other.authz", &authz, &out);
	stu_expect(rc, out, 0, "authorizes the resume of the run halted at seq 7", "authorize resume of another halt");
	rc = tu_station(&out, "run", "--recipe", w->recipe, "--jig", good->uri, "--count", "1", "--authorization", authz,
	    NULL);
	stu_expect(rc, out, 2, "not the one pending", "run with a resume of another halt");
	free(authz);

	malformed_resumes(w, good->uri, spec);

	/* The resume for this halt, found in the recipe's journal; used once. */
	rc = authorize_resume(w, "--recipe", w->recipe, "resume.authz", &authz, &out);
	stu_expect(rc, out, 0, "authorizes the resume of the run halted at seq", "authorize resume --recipe");
	good2 = sim(3, 2, 0, NULL);
	rc = tu_station(&out, "run", "--recipe", w->recipe, "--jig", good2->uri, "--count", "2", "--authorization",
	    authz, "--operator", "qa", NULL);
	stu_expect(rc, out, 0, "halt lifted: resume authorized by", "run with the resume");
	scan(w, &a);
	ck_assert_uint_eq(a.resumes, 1);
	ck_assert_str_eq(stu_str(a.resume, "reason"), "counterfeit lot quarantined, QA 17");
	ck_assert_str_eq(stu_str(a.resume, "halt_id"), strchr(spec, ':') + 1);
	ck_assert_int_eq(json_integer_value(json_object_get(a.resume, "halt_seq")), (json_int_t)a.halt_seq);
	ck_assert_ptr_nonnull(strstr(stu_str(a.resume, "authorized_by"), "Station Test Rework Authorizer 1"));
	ck_assert_uint_eq(strlen(stu_str(a.resume, "authorization")), 32);
	scan_clear(&a);
	rc = tu_station(&out, "run", "--recipe", w->recipe, "--jig", good2->uri, "--count", "1", "--authorization",
	    authz, NULL);
	stu_expect(rc, out, 2, "no halt pending", "run with a used resume");
	stu_audit_verify(w);

	free(authz);
	free(rework);
	stu_sim_stop(good2);
	stu_sim_stop(good);
	stu_sim_stop(bad);
	stu_ws_free(w);
}
END_TEST

/* The wrong recipe for the parts on the line: the same posture failure
 * three times in a row halts the run. */
START_TEST(test_posture_halt)
{
	stu_ws *w = halt_ws();
	stu_sim *s = sim(1, 6, 0, "TSE-200");
	struct after_halt a;
	stu_run r;

	stu_station_run(w, s->uri, 6, 1, &r);
	ck_assert_msg(r.status == 3, "halted run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_msg(strstr(stu_str(stu_event(&r, "halt", NULL), "message"), "3 posture failures in a row") &&
	    strstr(stu_str(stu_event(&r, "halt", NULL), "message"), "TSE-200"), "halt event:\n%s", stu_tail(r.out));
	stu_run_clear(&r);
	scan(w, &a);
	ck_assert_uint_eq(a.halts, 1);
	ck_assert_str_eq(stu_str(a.halt, "reason"), "posture");
	ck_assert_uint_eq(a.identify_after, 0);
	scan_clear(&a);
	stu_audit_verify(w);
	stu_sim_stop(s);
	stu_ws_free(w);
}
END_TEST

static Suite *
suite(void)
{
	TCase *tc;
	Suite *s = tu_pki_suite("station-halt", "halt", 240, &tc);

	tcase_add_test(tc, test_attestation_halt_gang);
	tcase_add_test(tc, test_posture_halt);
	return s;
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return tu_run_suite(suite());
}
