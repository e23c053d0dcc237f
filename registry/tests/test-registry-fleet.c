/* The registry with the real station: a journal written by `station run`
 * against jigsim, sealed and exported by `station audit`, ingested and
 * queried; the fleet's revocations signed into one CRL by `station crl
 * --revocations`; the per-day report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "pgtu.h"
#include "regtu.h"
#include "rwutil.h"

static pgtu pg;

static void
cluster_setup(void)
{
	tu_pki_setup();
	atu_make_signer(tu_pki, "seal-f", "root-ca");
	pgtu_start(&pg);
}

static void
cluster_teardown(void)
{
	pgtu_stop(&pg);
	tu_pki_teardown();
}

START_TEST(test_real_station_journal)
{
	char *db = regtu_fresh_db(&pg, "f_station", NULL), *out = NULL, bundle[4200], serial[JIG_STR_MAX + 1];
	stu_ws *w = stu_ws_new(tu_pki);
	jigsim_config c;
	jigsim_device_info info;
	stu_sim *sim;
	stu_run r;
	int rc;

	jigsim_config_init(&c);
	c.devices = 2;
	sim = stu_sim_start(tu_pki, &c);
	stu_station_run(w, sim->uri, 2, 1, &r);
	ck_assert_msg(r.status == 0, "station run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	stu_run_clear(&r);
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &info), 0);
	snprintf(serial, sizeof(serial), "%s", info.serial);
	snprintf(bundle, sizeof(bundle), "%s/bundle", w->dir);
	rc = tu_station(&out, "audit", "seal", "--recipe", w->recipe, NULL);
	ck_assert_msg(rc == 0, "station audit seal: %s", out);
	free(out);
	rc = tu_station(&out, "audit", "export", "--recipe", w->recipe, "--out", bundle, NULL);
	ck_assert_msg(rc == 0, "station audit export: %s", out);
	free(out);
	rc = regtu_ingest(db, bundle, &out);
	ck_assert_msg(rc == 0 && strstr(out, "loaded") && strstr(out, "new station"), "(%d) %s", rc, out);
	free(out);
	rc = regtu_reg(db, &out, "device '%s'", serial);
	ck_assert_msg(rc == 0 && strstr(out, "identify") && strstr(out, "keygen") && strstr(out, "done") &&
	        strstr(out, "1 certificate") && strstr(out, "live  issued to"),
	    "(%d) %s", rc, out);
	free(out);
	/* The keygen record's key hash and the certificate's agree: no pubkey alarm, no alarm at all. */
	rc = regtu_reg(db, &out, "alarms");
	ck_assert_msg(rc == 0 && strstr(out, "no open alarms"), "(%d) %s", rc, out);
	free(out);
	rc = regtu_reg(db, &out, "report");
	ck_assert_msg(rc == 0 && strstr(out, "100.0%"), "(%d) %s", rc, out);
	free(out);
	rc = regtu_reg(db, &out, "--json report --station nowhere");
	ck_assert_msg(rc == 0 && strstr(out, "\"days\":[]"), "(%d) %s", rc, out);
	free(out);
	rc = regtu_reg(db, &out, "report --since not-a-time");
	ck_assert_msg(rc == 2 && strstr(out, "invalid input syntax"), "(%d) %s", rc, out);
	free(out);
	stu_sim_stop(sim);
	stu_ws_free(w);
	free(db);
}
END_TEST

START_TEST(test_fleet_crl)
{
	char *db = regtu_fresh_db(&pg, "f_crl", NULL), *out = NULL, *bundle, path[4200], crl[4200], inter[4200];
	stu_ws *w = stu_ws_new(tu_pki);
	regtu_station other;
	X509_CRL *x;
	FILE *f;
	int rc;

	/* Another station issued c0ffee01 and c0ffee02 under the same intermediate's name and revoked one. */
	regtu_station_open(&other, "site9-line1", "seal-f");
	regtu_provision(&other, "SE-F1", "c0ffee01", NULL, 0);
	regtu_provision(&other, "SE-F2", "c0ffee02", NULL, 0);
	regtu_revoke(&other, "SE-F1", "c0ffee01");
	bundle = regtu_export(&other);
	rc = regtu_ingest(db, bundle, &out);
	ck_assert_msg(rc == 0, "(%d) %s", rc, out);
	free(out);
	snprintf(path, sizeof(path), "%s/fleet-revocations.txt", w->dir);
	snprintf(inter, sizeof(inter), "%s/intermediate.pem", tu_pki);
	rc = regtu_reg(db, &out, "revocations --issuer '%s' > '%s'", inter, path);
	ck_assert_msg(rc == 0, "(%d) %s", rc, out);
	free(out);
	out = tu_slurp(path, NULL);
	ck_assert_msg(out && strstr(out, "# issuer: ") && strstr(out, "\nc0ffee01 ") && strstr(out, " keyCompromise\n") &&
	        !strstr(out, "c0ffee02"),
	    "%s", out);
	free(out);
	rc = regtu_reg(db, &out, "--json revocations --issuer '%s/root-ca.pem'", tu_pki);
	ck_assert_msg(rc == 0 && strstr(out, "\"revocations\":[]"), "(%d) %s", rc, out);
	free(out);
	/* This station's CRL now lists the other station's revocation. */
	snprintf(crl, sizeof(crl), "%s/fleet.crl", w->dir);
	rw_crl(w, crl, "--revocations", path);
	x = rw_crl_load(crl, 0);
	ck_assert_int_eq(rw_crl_reason(x, "c0ffee01"), CRL_REASON_KEY_COMPROMISE);
	ck_assert_int_eq(rw_crl_reason(x, "c0ffee02"), -2);
	X509_CRL_free(x);
	ck_assert_msg(rw_openssl_crl_verify(crl, inter, &out), "openssl crl -verify:\n%s", out);
	free(out);
	/* Another issuer's list, or a broken line, is refused with where and why. */
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fprintf(f, "# issuer: CN=Someone Else\nc0ffee01 2026-01-01T00:00:00Z keyCompromise\n");
	fclose(f);
	rc = tu_station(&out, "crl", "--recipe", w->recipe, "--out", crl, "--revocations", path, NULL);
	ck_assert_msg(rc == 2 && strstr(out, ":1: revocations of issuer \"CN=Someone Else\""), "(%d) %s", rc, out);
	free(out);
	{
		/* After the registry's own lines (header and c0ffee01), one broken line each. */
		static const char *const bad[][2] = {
			{ "c0ffee03 yesterday keyCompromise", ":4: time \"yesterday\": expected YYYY-MM-DDTHH:MM:SSZ" },
			{ "c0ffee03 2026-01-01T00:00:00.Z keyCompromise", ":4: time \"2026-01-01T00:00:00.Z\"" },
			{ "c0ffee03 2026-01-01T00:00:00Z keyCompromise extra", ":4: expected SERIAL (hex) TIME" },
			{ "c0ffee03 2026-01-01T00:00:00Z", ":4: expected SERIAL (hex) TIME" },
			{ "c0ffee03 2026-01-01T00:00:00Z compromised", ":4: reason \"compromised\" is not an RFC 5280 reason" },
			{ "c0ffeeg3 2026-01-01T00:00:00Z keyCompromise", ":4: certificate serial \"c0ffeeg3\"" },
			{ "0xC0:FF:EE:01 2026-01-01T00:00:00Z superseded", "serial C0FFEE01 is listed twice (lines 3 and 4)" },
			/* two fields glued: a 63-byte time (the time field's limit) and the reason */
			{ "c0ffee03 2026-01-01T00:00:00.000000000000000000000000000000000000000000ZkeyCompromise",
			    ":4: expected SERIAL (hex) TIME" },
			{ "c0ffee03 2026-01-01T00:00:00Z keyCompromise\rjunk", ":4: expected SERIAL (hex) TIME" },
			{ "c0ffee03 2026-01-01T00:00:00Z keyCompromise\0junk", ":4: a NUL byte at column 44" },
		};
		char *head;
		size_t i;

		rc = regtu_reg(db, &head, "revocations --issuer '%s'", inter);
		ck_assert_int_eq(rc, 0);
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			const char *line = bad[i][0];
			size_t len = strlen(line) + (strstr(bad[i][1], "NUL") ? 1 + strlen(line + strlen(line) + 1) : 0);

			ck_assert_ptr_nonnull(f = fopen(path, "w"));
			fprintf(f, "%s", head);
			ck_assert_uint_eq(fwrite(line, 1, len, f), len);
			fputc('\n', f);
			fclose(f);
			rc = tu_station(&out, "crl", "--recipe", w->recipe, "--out", crl, "--revocations", path, NULL);
			ck_assert_msg(rc == 2 && strstr(out, bad[i][1]), "%s: (%d) %s", bad[i][0], rc, out);
			free(out);
		}
		/* A fraction of a second, and a serial spelled another way, are fine. */
		ck_assert_ptr_nonnull(f = fopen(path, "w"));
		fprintf(f, "%s0xC0:FF:EE:03 2026-01-01T00:00:00.250Z superseded\n", head);
		fclose(f);
		rw_crl(w, crl, "--revocations", path);
		x = rw_crl_load(crl, 0);
		ck_assert_int_eq(rw_crl_reason(x, "c0ffee03"), CRL_REASON_SUPERSEDED);
		X509_CRL_free(x);
		free(head);
	}
	regtu_station_close(&other);
	tu_rmtree(bundle);
	free(bundle);
	stu_ws_free(w);
	free(db);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("registry-fleet");
	TCase *tc = tcase_create("fleet");

	tcase_add_unchecked_fixture(tc, cluster_setup, cluster_teardown);
	tcase_add_test(tc, test_real_station_journal);
	tcase_add_test(tc, test_fleet_crl);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
