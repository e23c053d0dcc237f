/* Audit key rollover (issue 15 item 5) with the station program, the test
 * PKI's token and faketime: a short-lived audit certificate seals the first
 * batches, `station audit rollover` hands the seal to a second audit key
 * (an audit-key record sealed by the old one), the recipe then names the
 * new key; three days later, when the first certificate has expired,
 * `station audit verify` still accepts its seals, checked at the time they
 * were made.  A seal made after it expired, and an audit key changed
 * without an announcement, are refused. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "stutil.h"

/* W/audit-short.pem: the token's audit key certified for one day from now,
 * with the audit seal role. */
static void
short_lived_cert(stu_ws *w)
{
	char *out = NULL;
	int rc;

	rc = tu_shf(&out,
	    "set -e; cd '%s'; "
	    "printf 'basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature\\n"
	    "extendedKeyUsage=emailProtection,2.25.55189662177780663467762906544539105105.1.1\\n"
	    "subjectKeyIdentifier=hash\\nauthorityKeyIdentifier=keyid:always\\n' > audit-short.ext; "
	    "openssl x509 -new -force_pubkey pki/audit-pub.pem -subj '/O=Station Test/CN=Short-lived Audit Seal' "
	    "-CA pki/root-ca.pem -CAkey pki/root-ca.key -extfile audit-short.ext -days 1 -sha384 "
	    "-set_serial 0x5e41 -out audit-short.pem 2>&1",
	    w->dir);
	ck_assert_msg(rc == 0, "short-lived audit certificate: %s", out ? out : "");
	free(out);
}

/* A workspace whose recipe seals with the short-lived certificate, two
 * devices a batch. */
static stu_ws *
short_lived_ws(void)
{
	stu_ws *w = stu_ws_new(tu_pki);

	short_lived_cert(w);
	stu_recipe_edit(w, "    key: audit\n    cert: pki/audit.pem", "    key: audit\n    cert: audit-short.pem");
	stu_recipe_edit(w, "  batch_size: 10", "  batch_size: 2");
	return w;
}

static void
run_ok(stu_ws *w, stu_sim *sim, unsigned count)
{
	stu_run r;

	stu_station_run(w, sim->uri, count, 0, &r);
	ck_assert_msg(r.status == 0, "station run: exit %d\n%s", r.status, stu_tail(r.err));
	stu_run_clear(&r);
}

/* `[faketime -f OFFSET] station audit verify W/audit --ca ROOT`: the exit
 * status, the output in *out. */
static int
verify_at(stu_ws *w, const char *offset, char **out)
{
	return tu_shf(out, "%s%s%s '%s' audit verify '%s' --ca '%s/root-ca.pem' 2>&1", offset ? "faketime -f " : "",
	    offset ? offset : "", offset ? " " : "", tu_station_exe(), w->audit, tu_pki);
}

START_TEST(test_rollover)
{
	stu_ws *w = short_lived_ws();
	char new_cert[4200], eng[4200], *out = NULL;
	stu_sim *sim;
	jigsim_config c;
	stu_run r;
	int rc;

	jigsim_config_init(&c);
	c.devices = 4;
	sim = stu_sim_start(tu_pki, &c);
	run_ok(w, sim, 2); /* batch 1, sealed by the short-lived certificate */
	snprintf(new_cert, sizeof(new_cert), "%s/audit2.pem", tu_pki);
	snprintf(eng, sizeof(eng), "%s/engineering.pem", tu_pki);

	/* Usage and configuration errors: exit 2, nothing announced. */
	rc = tu_station(&out, "audit", "rollover", "--recipe", w->recipe, "--new-cert", new_cert, NULL);
	stu_expect(rc, out, 2, "usage: station audit rollover", "rollover without --new-key");
	rc = tu_station(&out, "audit", "seal", "--recipe", w->recipe, "--new-cert", new_cert, "--new-key", "audit2", NULL);
	stu_expect(rc, out, 2, "usage: station audit seal", "seal with --new-cert");
	rc = tu_station(&out, "audit", "rollover", "--recipe", w->recipe, "--new-cert", eng, "--new-key", "engineering",
	    NULL);
	stu_expect(rc, out, 2, "audit seal", "rollover to the engineering key");
	rc = tu_station(&out, "audit", "rollover", "--recipe", w->recipe, "--new-cert", new_cert, "--new-key", "audit",
	    NULL);
	stu_expect(rc, out, 2, "--new-key audit", "rollover to a certificate of another key");
	rc = verify_at(w, NULL, &out);
	ck_assert_msg(rc == 0 && !strstr(out, "hands the audit seal"), "verify before the rollover: exit %d\n%s", rc,
	    stu_tail(out));
	free(out);

	/* The rollover: announced in batch 2, sealed by the old key. */
	rc = tu_station(&out, "audit", "rollover", "--recipe", w->recipe, "--new-cert", new_cert, "--new-key", "audit2",
	    NULL);
	stu_expect(rc, out, 0, "hands the audit seal to O = Station Test, CN = Station Test Audit Seal 2",
	    "station audit rollover");
	/* The recipe still names the old key: the station refuses to seal with it. */
	stu_station_run(w, sim->uri, 1, 0, &r);
	ck_assert_msg(r.status == 2 && strstr(r.err, "handed the audit seal to the certificate"),
	    "station run with the retired audit key: exit %d\n%s", r.status, stu_tail(r.err));
	stu_run_clear(&r);
	stu_recipe_edit(w, "    key: audit\n    cert: audit-short.pem", "    key: audit2\n    cert: pki/audit2.pem");
	run_ok(w, sim, 2); /* batch 3, sealed by the new key */

	rc = verify_at(w, NULL, &out);
	ck_assert_msg(rc == 0 && strstr(out, "3 seals verified, signed by O = Station Test, CN = Station Test Audit Seal 2")
	    && strstr(out, "batch-000002.jsonl: seq"), "verify after the rollover: exit %d\n%s", rc, stu_tail(out));
	free(out);

	/* Three days on the short-lived certificate has expired: its seals
	 * still verify, at the time they were made; stock OpenSSL agrees
	 * with -attime, and refuses without it. */
	rc = verify_at(w, "+3d", &out);
	ck_assert_msg(rc == 0 && strstr(out, ": OK:"), "verify after the old certificate expired: exit %d\n%s", rc,
	    stu_tail(out));
	free(out);
	rc = tu_shf(&out, "cd '%s' && faketime -f +3d openssl cms -verify -binary -inform DER -content batch-000001.jsonl "
	    "-in batch-000001.jsonl.p7s -CAfile '%s/root-ca.pem' -out /dev/null 2>&1", w->audit, tu_pki);
	stu_expect(rc, out, 4, "expired", "openssl cms -verify of an expired seal, now");
	rc = tu_shf(&out, "cd '%s' && faketime -f +3d openssl cms -verify -binary -inform DER -content batch-000001.jsonl "
	    "-in batch-000001.jsonl.p7s -CAfile '%s/root-ca.pem' -attime \"$(grep -o '\"time\":\"[^\"]*' "
	    "batch-000001.jsonl | tail -n1 | cut -d'\"' -f4 | xargs -I{} date -d {} +%%s)\" -out /dev/null 2>&1",
	    w->audit, tu_pki);
	stu_expect(rc, out, 0, "Verification successful", "openssl cms -verify -attime (the batch's close)");
	stu_format_check(w->audit);

	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* A seal made after its certificate expired does not verify; nor does a
 * journal whose audit key changed without an audit-key record. */
START_TEST(test_refused)
{
	stu_ws *w = short_lived_ws();
	char *out = NULL;
	stu_sim *sim;
	jigsim_config c;
	int rc;

	jigsim_config_init(&c);
	c.devices = 5;
	sim = stu_sim_start(tu_pki, &c);
	run_ok(w, sim, 1); /* batch 1 stays open */

	/* Sealed three days later, when the certificate has expired. */
	rc = tu_shf(&out, "faketime -f +3d '%s' audit seal --recipe '%s' 2>&1", tu_station_exe(), w->recipe);
	ck_assert_msg(rc == 0, "station audit seal at +3 days: exit %d\n%s", rc, stu_tail(out));
	free(out);
	rc = verify_at(w, "+3d", &out);
	stu_expect(rc, out, 1, "batch-000001.jsonl.p7s: seal does not verify: signature does not verify at",
	    "verify of a seal made after the certificate expired");

	/* A fresh journal; after batch 1 the recipe names another audit key
	 * without announcing it. */
	stu_ws_free(w);
	w = short_lived_ws();
	run_ok(w, sim, 2);
	stu_recipe_edit(w, "    key: audit\n    cert: audit-short.pem", "    key: audit2\n    cert: pki/audit2.pem");
	run_ok(w, sim, 2);
	rc = verify_at(w, NULL, &out);
	stu_expect(rc, out, 1, "batch-000002.jsonl.p7s: sealed by O = Station Test, CN = Station Test Audit Seal 2, but the "
	    "journal's audit key is O = Station Test, CN = Short-lived Audit Seal", "verify of an unannounced audit key");

	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

static Suite *
suite(void)
{
	TCase *tc;
	Suite *s = tu_pki_suite("station-audit-key", "audit-key", 150, &tc);

	tcase_add_test(tc, test_rollover);
	tcase_add_test(tc, test_refused);
	return s;
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return tu_run_suite(suite());
}
