/* station-registry ingest against a real PostgreSQL cluster, with bundles
 * exported from real sealed journals: loading, idempotence, overlaps,
 * forks, refused bundles, the alarms, the database going down mid-ingest
 * and two ingesters at once. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgtu.h"
#include "regtu.h"

static pgtu pg;

static void
cluster_setup(void)
{
	tu_pki_setup();
	atu_make_signer(tu_pki, "seal-a", "root-ca");
	atu_make_signer(tu_pki, "seal-b", "root-ca");
	atu_make_signer(tu_pki, "foreign", NULL);
	pgtu_start(&pg);
}

static void
cluster_teardown(void)
{
	pgtu_stop(&pg);
	tu_pki_teardown();
}

/* One number from SQL. */
static long
sql_num(const char *admin, const char *sql)
{
	char *out = NULL;
	long v;
	int rc = pgtu_psql_on(admin, sql, &out);

	ck_assert_msg(rc == 0, "%s: %s", sql, out);
	v = strtol(out, NULL, 10);
	free(out);
	return v;
}

/* A digest of everything in the registry, to show a refused load changed nothing. */
static char *
db_state(const char *admin)
{
	char *out = NULL;
	int rc = pgtu_psql_on(admin,
	    "SELECT (SELECT count(*) FROM records) || '/' || (SELECT count(*) FROM bundles) || '/' ||"
	    " (SELECT count(*) FROM certificates) || '/' || (SELECT count(*) FROM stations) || '/' ||"
	    " (SELECT coalesce(md5(string_agg(hash, '' ORDER BY station, seq)), '') FROM records)",
	    &out);

	ck_assert_msg(rc == 0, "%s", out);
	return out;
}

START_TEST(test_load_idempotent_overlap)
{
	char *admin, *db = regtu_fresh_db(&pg, "t_load", &admin), *out = NULL, *b1, *b2, *s1, *s2;
	regtu_station st;
	int rc;

	regtu_station_open(&st, "line-1", "seal-a");
	regtu_provision(&st, "SE-0001", "1001", NULL, 0);
	regtu_provision(&st, "SE-0002", "1002", NULL, 0);
	b1 = regtu_export(&st);
	rc = regtu_ingest(db, b1, &out);
	ck_assert_msg(rc == 0 && strstr(out, "loaded") && strstr(out, "new station"), "(%d) %s", rc, out);
	free(out);
	/* 2 devices x 5 records, plus the batch-close record. */
	ck_assert_int_eq(sql_num(admin, "SELECT count(*) FROM records"), 11);
	ck_assert_int_eq(sql_num(admin, "SELECT count(*) FROM certificates"), 2);
	ck_assert_int_eq(sql_num(admin, "SELECT count(*) FROM records WHERE station = 'line-1' AND seq = 4 AND step = 'issued'"), 1);
	s1 = db_state(admin);
	/* Again: nothing changes. */
	rc = regtu_ingest(db, b1, &out);
	ck_assert_msg(rc == 0 && strstr(out, "already ingested: 0 new records"), "(%d) %s", rc, out);
	free(out);
	s2 = db_state(admin);
	ck_assert_str_eq(s1, s2);
	free(s2);
	/* A later export overlaps the first: only the new records load. */
	regtu_provision(&st, "SE-0003", "0a03", NULL, 0); /* a leading zero byte */
	b2 = regtu_export(&st);
	rc = regtu_reg(db, &out, "--json ingest --enroll --ca '%s/root-ca.pem' '%s'", tu_pki, b2);
	ck_assert_msg(rc == 0 && strstr(out, "\"status\":\"loaded\"") && strstr(out, "\"new_records\":6") &&
	        strstr(out, "\"new_station\":false") && strstr(out, "\"gaps\":[]"),
	    "(%d) %s", rc, out);
	free(out);
	ck_assert_int_eq(sql_num(admin, "SELECT count(*) FROM records"), 17);
	ck_assert_int_eq(sql_num(admin, "SELECT count(*) FROM bundles"), 2);
	ck_assert_int_eq(sql_num(admin, "SELECT count(*) FROM alarms"), 0);
	/* What the registry says about them. */
	rc = regtu_reg(db, &out, "device SE-0001");
	ck_assert_msg(rc == 0 && strstr(out, "device SE-0001: 5 records, 1 certificate") && strstr(out, "line-1") &&
	        strstr(out, "issued") && strstr(out, "1001  live  issued to SE-0001 at line-1"),
	    "(%d) %s", rc, out);
	free(out);
	rc = regtu_reg(db, &out, "--json device SE-0003");
	ck_assert_msg(rc == 0 && strstr(out, "\"device\":\"SE-0003\"") && strstr(out, "\"step\":\"keygen\"") &&
	        strstr(out, "\"status\":\"live\""),
	    "(%d) %s", rc, out);
	free(out);
	rc = regtu_reg(db, &out, "device SE-NONE");
	ck_assert_msg(rc == 1 && strstr(out, "not in the registry"), "(%d) %s", rc, out);
	free(out);
	/* Every spelling the station takes finds it (it was once stripped of a
	 * leading zero the registry keeps, and found nothing). */
	rc = regtu_reg(db, &out, "certificate 0x1002");
	ck_assert_msg(rc == 0 && strstr(out, "1002  live  issued to SE-0002"), "(%d) %s", rc, out);
	free(out);
	rc = regtu_reg(db, &out, "certificate a03");
	ck_assert_msg(rc == 0 && strstr(out, "0a03  live  issued to SE-0003"), "(%d) %s", rc, out);
	free(out);
	rc = regtu_reg(db, &out, "certificate 0A:03");
	ck_assert_msg(rc == 0 && strstr(out, "0a03  live  issued to SE-0003"), "(%d) %s", rc, out);
	free(out);
	rc = regtu_reg(db, &out, "certificate 0x0a03");
	ck_assert_msg(rc == 0 && strstr(out, "certificate 0a03:"), "(%d) %s", rc, out);
	free(out);
	rc = regtu_reg(db, &out, "certificate 10g2");
	ck_assert_msg(rc == 2 && strstr(out, "'g' at offset 2"), "(%d) %s", rc, out);
	free(out);
	rc = regtu_reg(db, &out, "certificate 0x1003");
	ck_assert_msg(rc == 1 && strstr(out, "not in the registry"), "(%d) %s", rc, out);
	free(out);
	rc = regtu_reg(db, &out, "certificate 01002");
	ck_assert_msg(rc == 0 && strstr(out, "1002  live  issued to SE-0002"), "(%d) %s", rc, out);
	free(out);
	rc = regtu_reg(db, &out, "device");
	ck_assert_msg(rc == 2 && strstr(out, "usage"), "(%d) %s", rc, out);
	free(out);
	regtu_station_close(&st);
	tu_rmtree(b1);
	tu_rmtree(b2);
	free(b1);
	free(b2);
	free(s1);
	free(db);
	free(admin);
}
END_TEST

START_TEST(test_fork_refused_with_alarm)
{
	char *admin, *db = regtu_fresh_db(&pg, "t_fork", &admin), *out = NULL, *b1, *b2, *s1, *s2;
	regtu_station a, copy;
	int rc;

	regtu_station_open(&a, "line-2", "seal-a");
	regtu_provision(&a, "SE-0101", "2001", NULL, 0);
	b1 = regtu_export(&a);
	ck_assert_int_eq(regtu_ingest(db, b1, &out), 0);
	free(out);
	/* Another journal claiming to be line-2: same seqs, other records. */
	regtu_station_open(&copy, "line-2", "seal-a");
	regtu_provision(&copy, "SE-0999", "2999", NULL, 0);
	b2 = regtu_export(&copy);
	s1 = db_state(admin);
	rc = regtu_ingest(db, b2, &out);
	ck_assert_msg(rc == 1 && strstr(out, "REFUSED: fork: station line-2 seq 1 is already in the registry"), "(%d) %s", rc,
	    out);
	free(out);
	s2 = db_state(admin);
	ck_assert_str_eq(s1, s2);
	ck_assert_int_eq(sql_num(admin, "SELECT count(*) FROM alarms WHERE kind = 'fork' AND subject = 'line-2'"), 1);
	ck_assert_int_eq(sql_num(admin, "SELECT count(*) FROM records WHERE device = 'SE-0999'"), 0);
	regtu_station_close(&a);
	regtu_station_close(&copy);
	tu_rmtree(b1);
	tu_rmtree(b2);
	free(b1);
	free(b2);
	free(s1);
	free(s2);
	free(db);
	free(admin);
}
END_TEST

/* A station's bundles must be sealed by the audit key it is enrolled with:
 * an unknown station is refused unless --enroll, and another station's key
 * (it chains to the same root) cannot write its records. */
START_TEST(test_station_enrollment)
{
	char *admin, *db = regtu_fresh_db(&pg, "t_enrol", &admin), *out = NULL, *b1, *b2, *s1, *s2;
	regtu_station a, other;
	int rc;

	regtu_station_open(&a, "line-e", "seal-a");
	regtu_provision(&a, "SE-0E01", "e001", NULL, 0);
	b1 = regtu_export(&a);
	s1 = db_state(admin);
	rc = regtu_reg(db, &out, "ingest --ca '%s/root-ca.pem' '%s'", tu_pki, b1);
	ck_assert_msg(rc == 1 && strstr(out, "REFUSED: station line-e is not enrolled in the registry") &&
	        strstr(out, "stations add line-e --cert AUDIT.pem") && strstr(out, "CN = Test seal-a"),
	    "(%d) %s", rc, out);
	free(out);
	s2 = db_state(admin);
	ck_assert_str_eq(s1, s2);
	free(s2);
	ck_assert_int_eq(sql_num(admin, "SELECT count(*) FROM stations"), 0);
	rc = regtu_reg(db, &out, "stations");
	ck_assert_msg(rc == 0 && strstr(out, "no station is enrolled"), "(%d) %s", rc, out);
	free(out);
	/* Only a certificate with the audit seal role enrolls a station. */
	rc = regtu_reg(db, &out, "stations add line-e --cert '%s/intermediate.pem'", tu_pki);
	ck_assert_msg(rc == 2 && strstr(out, "--cert"), "(%d) %s", rc, out);
	free(out);
	rc = regtu_reg(db, &out, "stations add line-e");
	ck_assert_msg(rc == 2 && strstr(out, "usage"), "(%d) %s", rc, out);
	free(out);
	rc = regtu_reg(db, &out, "stations add line-e --cert '%s/seal-a.pem'", tu_pki);
	ck_assert_msg(rc == 0 && strstr(out, "station line-e enrolled") && strstr(out, "CN = Test seal-a"), "(%d) %s", rc, out);
	free(out);
	rc = regtu_reg(db, &out, "ingest --ca '%s/root-ca.pem' '%s'", tu_pki, b1);
	ck_assert_msg(rc == 0 && strstr(out, "loaded: 6 new records"), "(%d) %s", rc, out);
	free(out);
	/* Another station's audit key claims line-e. */
	regtu_station_open(&other, "line-e", "seal-b");
	regtu_provision(&other, "SE-0E99", "e099", NULL, 0);
	regtu_provision(&other, "SE-0E98", "e098", NULL, 0);
	b2 = regtu_export(&other);
	free(s1);
	s1 = db_state(admin);
	rc = regtu_reg(db, &out, "ingest --enroll --ca '%s/root-ca.pem' '%s'", tu_pki, b2);
	ck_assert_msg(rc == 1 && strstr(out, "REFUSED: station line-e is enrolled with audit key") &&
	        strstr(out, "sealed by") && strstr(out, "CN = Test seal-b"),
	    "(%d) %s", rc, out);
	free(out);
	s2 = db_state(admin);
	ck_assert_str_eq(s1, s2);
	ck_assert_int_eq(sql_num(admin, "SELECT count(*) FROM records WHERE device = 'SE-0E99'"), 0);
	rc = regtu_reg(db, &out, "--json stations");
	ck_assert_msg(rc == 0 && strstr(out, "\"station\":\"line-e\"") && strstr(out, "\"last_seq\":\"6\""), "(%d) %s", rc,
	    out);
	free(out);
	/* Enrolled already; re-keying is the owner's, not the ingest role's. */
	rc = regtu_reg(db, &out, "stations add line-e --cert '%s/seal-b.pem'", tu_pki);
	ck_assert_msg(rc == 1 && strstr(out, "enrolled already"), "(%d) %s", rc, out);
	free(out);
	rc = regtu_reg(db, &out, "stations add line-e --cert '%s/seal-b.pem' --replace", tu_pki);
	ck_assert_msg(rc == 1 && strstr(out, "permission denied"), "(%d) %s", rc, out);
	free(out);
	rc = regtu_reg(admin, &out, "stations add line-e --cert '%s/seal-b.pem' --replace", tu_pki);
	ck_assert_msg(rc == 0 && strstr(out, "CN = Test seal-b"), "(%d) %s", rc, out);
	free(out);
	regtu_station_close(&a);
	regtu_station_close(&other);
	tu_rmtree(b1);
	tu_rmtree(b2);
	free(b1);
	free(b2);
	free(s1);
	free(s2);
	free(db);
	free(admin);
}
END_TEST

/* An "issued" record whose certificate is not DER, though its journal is
 * sealed and verifies: refused naming the record, nothing loaded. */
START_TEST(test_bad_certificate_refused)
{
	static const char *const bad[] = { "AAAA", "MAA=", "not base64!" };
	char *admin, *db = regtu_fresh_db(&pg, "t_badcert", &admin), *out = NULL, *b, *s1, *s2;
	regtu_station st;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		regtu_station_open(&st, "line-c", "seal-a");
		regtu_provision(&st, "SE-0C01", "c001", NULL, 0);
		regtu_append(&st, "SE-0C02", "issued", "ok", json_pack("{s:s,s:s}", "cert_serial", "c002", "cert", bad[i]));
		b = regtu_export(&st);
		s1 = db_state(admin);
		rc = regtu_ingest(db, b, &out);
		ck_assert_msg(rc == 1 && strstr(out, "REFUSED: batch-000001.jsonl:6: seq 6: details.cert is not a base64 DER "
		                                     "certificate"),
		    "%s: (%d) %s", bad[i], rc, out);
		free(out);
		s2 = db_state(admin);
		ck_assert_str_eq(s1, s2);
		free(s1);
		free(s2);
		regtu_station_close(&st);
		tu_rmtree(b);
		free(b);
	}
	free(db);
	free(admin);
}
END_TEST

/* A copy of bundle, damaged by a shell fragment run inside it. */
static char *
damaged(const char *bundle, const char *sh)
{
	char *dir = tu_tmpdir("regd"), *cmd = NULL, *out = NULL;
	int rc;

	ck_assert_int_ne(asprintf(&cmd, "cp -a '%s'/. '%s'/ && cd '%s' && %s", bundle, dir, dir, sh), -1);
	rc = tu_sh(cmd, &out);
	ck_assert_msg(rc == 0, "%s: %s", cmd, out);
	free(cmd);
	free(out);
	return dir;
}

START_TEST(test_bad_bundles_refused)
{
	static const struct {
		const char *what, *sh, *expect;
	} cases[] = {
		{ "tampered", "sed -i 's/SE-0201/SE-0666/' batch-000001.jsonl", "verification failed" },
		{ "truncated", "truncate -s 700 batch-000001.jsonl", "verification failed" },
		{ "unsealed", "rm batch-000001.jsonl.p7s", "verification failed" },
		{ "no manifest", "rm manifest.json", "not an export bundle" },
		{ "missing", "cd / && rm -rf \"$OLDPWD\"", "cannot verify" },
	};
	char *admin, *db = regtu_fresh_db(&pg, "t_bad", &admin), *out = NULL, *good, *bad, *s1, *s2;
	regtu_station a, f;
	size_t i;
	int rc;

	regtu_station_open(&a, "line-3", "seal-a");
	regtu_provision(&a, "SE-0201", "3001", NULL, 0);
	regtu_provision(&a, "SE-0202", "3002", NULL, 0);
	good = regtu_export(&a);
	s1 = db_state(admin);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bad = damaged(good, cases[i].sh);
		rc = regtu_ingest(db, bad, &out);
		ck_assert_msg(rc == 1 && strstr(out, "REFUSED") && strstr(out, cases[i].expect), "%s: (%d) %s", cases[i].what,
		    rc, out);
		free(out);
		tu_rmtree(bad);
		free(bad);
	}
	/* Sealed by a key the audit root never certified. */
	regtu_station_open(&f, "line-3", "foreign");
	regtu_provision(&f, "SE-0203", "3003", NULL, 0);
	bad = regtu_export(&f);
	rc = regtu_ingest(db, bad, &out);
	ck_assert_msg(rc == 1 && strstr(out, "REFUSED: verification failed"), "foreign: (%d) %s", rc, out);
	free(out);
	tu_rmtree(bad);
	free(bad);
	/* A live journal folder is not a bundle. */
	rc = regtu_ingest(db, a.dir, &out);
	ck_assert_msg(rc == 1 && strstr(out, "REFUSED"), "live journal: (%d) %s", rc, out);
	free(out);
	s2 = db_state(admin);
	ck_assert_str_eq(s1, s2);
	/* And the good one still loads after all that. */
	rc = regtu_ingest(db, good, &out);
	ck_assert_msg(rc == 0 && strstr(out, "loaded"), "(%d) %s", rc, out);
	free(out);
	/* Usage and configuration errors: exit 2. */
	rc = regtu_reg(db, &out, "ingest '%s'", good);
	ck_assert_msg(rc == 2 && strstr(out, "usage"), "(%d) %s", rc, out);
	free(out);
	rc = regtu_reg(db, &out, "ingest --ca /nonexistent.pem '%s'", good);
	ck_assert_msg(rc == 2 && strstr(out, "--ca"), "(%d) %s", rc, out);
	free(out);
	regtu_station_close(&a);
	regtu_station_close(&f);
	tu_rmtree(good);
	free(good);
	free(s1);
	free(s2);
	free(db);
	free(admin);
}
END_TEST

static int
has_alarm(const char *admin, const char *kind)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM alarms WHERE kind = '%s'", kind);
	return (int)sql_num(admin, sql);
}

START_TEST(test_alarms)
{
	char *admin, *db = regtu_fresh_db(&pg, "t_alarms", &admin), *out = NULL, *ba, *bb;
	regtu_station a, b;
	EVP_PKEY *shared = regtu_key();
	int rc;

	regtu_station_open(&a, "site1-a", "seal-a");
	regtu_station_open(&b, "site2-b", "seal-b");
	/* A clean device, and a rework that is not an alarm. */
	regtu_provision(&a, "SE-OK", "a001", NULL, 0);
	regtu_provision(&a, "SE-RW", "a002", NULL, 0);
	regtu_revoke(&a, "SE-RW", "a002");
	regtu_provision(&a, "SE-RW", "a003", NULL, 1);
	ba = regtu_export(&a);
	rc = regtu_ingest(db, ba, &out);
	ck_assert_msg(rc == 0, "(%d) %s", rc, out);
	free(out);
	ck_assert_int_eq(sql_num(admin, "SELECT count(*) FROM alarms"), 0);
	rc = regtu_reg(db, &out, "alarms");
	ck_assert_msg(rc == 0 && strstr(out, "no open alarms"), "(%d) %s", rc, out);
	free(out);
	/* Cloned SE at a second station; one key under two serials; one issuer serial twice;
	 * a certificate issued at a revoked at b; provisioned twice at b without rework. */
	regtu_provision(&b, "SE-OK", "b001", NULL, 0);
	regtu_provision(&a, "SE-K1", "a010", shared, 0);
	regtu_provision(&b, "SE-K2", "b010", shared, 0);
	regtu_provision(&b, "SE-DUP", "a001", NULL, 0);
	regtu_revoke(&b, "SE-OK", "a001");
	regtu_provision(&b, "SE-TWICE", "b020", NULL, 0);
	regtu_provision(&b, "SE-TWICE", "b021", NULL, 0);
	regtu_provision(&a, "SE-AT1", "a030", NULL, 0);
	regtu_attest_as = "SE-AT1"; /* SE-AT1's attestation certificate, now under another serial */
	regtu_provision(&b, "SE-AT2", "b030", NULL, 0);
	regtu_attest_as = NULL;
	free(ba);
	ba = regtu_export(&a);
	bb = regtu_export(&b);
	rc = regtu_reg(db, &out, "ingest --enroll --ca '%s/root-ca.pem' '%s' '%s'", tu_pki, ba, bb);
	ck_assert_msg(rc == 0 && strstr(out, "new alarm"), "(%d) %s", rc, out);
	free(out);
	ck_assert_int_eq(has_alarm(admin, "device-two-stations"), 1);
	ck_assert_int_eq(has_alarm(admin, "pubkey-two-serials"), 1);
	ck_assert_int_eq(has_alarm(admin, "cert-serial-twice"), 1);
	ck_assert_int_eq(has_alarm(admin, "revoked-live"), 1);
	ck_assert_int_eq(has_alarm(admin, "device-twice"), 1);
	ck_assert_int_eq(has_alarm(admin, "attestation-two-serials"), 1);
	ck_assert_int_eq(sql_num(admin, "SELECT count(*) FROM alarms WHERE kind = 'attestation-two-serials' AND "
	                                "detail LIKE '%under SE serials SE-AT1, SE-AT2'"), 1);
	ck_assert_int_eq(sql_num(admin, "SELECT count(*) FROM alarms WHERE subject LIKE '%SE-RW%'"), 0);
	rc = regtu_reg(db, &out, "alarms");
	ck_assert_msg(rc == 1 && strstr(out, "device-two-stations") && strstr(out, "SE-OK provisioned at site1-a, site2-b"),
	    "(%d) %s", rc, out);
	free(out);
	rc = regtu_reg(db, &out, "certificate a001");
	ck_assert_msg(rc == 0 && strstr(out, "issued to SE-OK at site1-a") && strstr(out, "issued to SE-DUP at site2-b") &&
	        strstr(out, "revoked at site2-b"),
	    "(%d) %s", rc, out);
	free(out);
	rc = regtu_reg(db, &out, "device SE-OK");
	ck_assert_msg(rc == 0 && strstr(out, "ALARM") && strstr(out, "site2-b"), "(%d) %s", rc, out);
	free(out);
	rc = regtu_reg(db, &out, "--json alarms");
	ck_assert_msg(rc == 1 && strstr(out, "\"kind\":\"revoked-live\""), "(%d) %s", rc, out);
	free(out);
	/* Clearing: not for the ingest role; the owner clears each, then none is open. */
	rc = regtu_reg(db, &out, "alarms --clear 1 --by qa");
	ck_assert_msg(rc == 1 && strstr(out, "permission denied"), "(%d) %s", rc, out);
	free(out);
	rc = regtu_reg(admin, &out, "alarms --clear 1");
	ck_assert_msg(rc == 2 && strstr(out, "usage"), "(%d) %s", rc, out);
	free(out);
	{
		long n = sql_num(admin, "SELECT count(*) FROM alarms"), k;

		for (k = 0; k < n; k++) {
			char id[24];

			snprintf(id, sizeof(id), "%ld", sql_num(admin, "SELECT min(id) FROM alarms WHERE cleared_at IS NULL"));
			rc = regtu_reg(admin, &out, "alarms --clear %s --by qa", id);
			ck_assert_msg(rc == 0 && strstr(out, "cleared by qa"), "(%d) %s", rc, out);
			free(out);
		}
		rc = regtu_reg(admin, &out, "alarms --clear %ld --by qa", sql_num(admin, "SELECT min(id) FROM alarms"));
		ck_assert_msg(rc == 1 && strstr(out, "no open alarm"), "(%d) %s", rc, out);
		free(out);
	}
	rc = regtu_reg(db, &out, "alarms");
	ck_assert_msg(rc == 0 && strstr(out, "no open alarms"), "(%d) %s", rc, out);
	free(out);
	regtu_station_close(&a);
	regtu_station_close(&b);
	tu_rmtree(ba);
	tu_rmtree(bb);
	free(ba);
	free(bb);
	EVP_PKEY_free(shared);
	free(db);
	free(admin);
}
END_TEST

/* Poll until n sessions wait on a lock in the database (the ingest is mid-transaction). */
static void
wait_for_lock_waiters(const char *admin, const char *dbname, int n)
{
	char sql[256];
	int i;

	snprintf(sql, sizeof(sql),
	    "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND wait_event_type = 'Lock'", dbname);
	for (i = 0; i < 600; i++) {
		if (sql_num(admin, sql) >= n)
			return;
		usleep(50 * 1000);
	}
	ck_abort_msg("no ingest waited on the lock within 30 s");
}

START_TEST(test_database_down_mid_ingest)
{
	char *admin, *db = regtu_fresh_db(&pg, "t_down", &admin), *out = NULL, *b1, *b2, *s1, *s2, *cmd = NULL, *dir = tu_tmpdir("regdn");
	regtu_station st;
	int rc;

	regtu_station_open(&st, "line-4", "seal-a");
	regtu_provision(&st, "SE-0401", "4001", NULL, 0);
	b1 = regtu_export(&st);
	ck_assert_int_eq(regtu_ingest(db, b1, &out), 0);
	free(out);
	regtu_provision(&st, "SE-0402", "4002", NULL, 0);
	b2 = regtu_export(&st);
	s1 = db_state(admin);
	/* Hold a lock the ingest needs, so it sits mid-transaction, then kill the server under it.
	 * The lock is held before the ingest starts, else the ingest could win the race. */
	ck_assert_int_ne(asprintf(&cmd,
	                     "/usr/lib/postgresql/15/bin/psql -X -d '%s' -c 'BEGIN; LOCK TABLE records; SELECT pg_sleep(60)' "
	                     ">/dev/null 2>&1",
	                     admin),
	    -1);
	{
		pid_t locker = fork(), pid;
		int i;

		ck_assert_int_ge(locker, 0);
		if (locker == 0) {
			execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
			_exit(127);
		}
		for (i = 0; i < 600 && sql_num(admin, "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
		                                      " WHERE c.relname = 'records' AND l.mode = 'AccessExclusiveLock' AND l.granted") < 1;
		     i++)
			usleep(50 * 1000);
		free(cmd);
		ck_assert_int_ne(asprintf(&cmd,
		                     "'%s' --db '%s' ingest --enroll --ca '%s/root-ca.pem' '%s' > '%s/ingest.out' 2>&1; echo $? > '%s/ingest.rc'",
		                     getenv("STATION_REGISTRY_EXE"), db, tu_pki, b2, dir, dir),
		    -1);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
			_exit(127);
		}
		wait_for_lock_waiters(admin, "t_down", 1);
		pgtu_down(&pg);
		ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
		ck_assert_int_eq(waitpid(locker, NULL, 0), locker);
	}
	out = atu_read(dir, "ingest.rc", NULL);
	ck_assert_str_eq(out, "1\n");
	free(out);
	out = atu_read(dir, "ingest.out", NULL);
	ck_assert_msg(strstr(out, "nothing of it was loaded") && strstr(out, "run ingest again"), "%s", out);
	free(out);
	pgtu_up(&pg);
	s2 = db_state(admin);
	ck_assert_str_eq(s1, s2);
	free(s2);
	/* The re-run is clean. */
	rc = regtu_ingest(db, b2, &out);
	ck_assert_msg(rc == 0 && strstr(out, "loaded: 6 new records"), "(%d) %s", rc, out);
	free(out);
	ck_assert_int_eq(sql_num(admin, "SELECT count(*) FROM records WHERE device = 'SE-0402'"), 5);
	/* Read-only: refused by the server, nothing changes, and the re-run is clean. */
	regtu_provision(&st, "SE-0403", "4003", NULL, 0);
	tu_rmtree(b1);
	free(b1);
	b1 = regtu_export(&st);
	free(s1);
	s1 = db_state(admin);
	ck_assert_int_eq(pgtu_psql(&pg, "ALTER DATABASE t_down SET default_transaction_read_only = on", NULL), 0);
	rc = regtu_ingest(db, b1, &out);
	ck_assert_msg(rc == 1 && strstr(out, "read-only transaction") && strstr(out, "nothing of it was loaded"), "(%d) %s",
	    rc, out);
	free(out);
	s2 = db_state(admin);
	ck_assert_str_eq(s1, s2);
	free(s2);
	ck_assert_int_eq(pgtu_psql(&pg, "ALTER DATABASE t_down SET default_transaction_read_only = off", NULL), 0);
	rc = regtu_ingest(db, b1, &out);
	ck_assert_msg(rc == 0 && strstr(out, "loaded: 6 new records"), "(%d) %s", rc, out);
	free(out);
	regtu_station_close(&st);
	tu_rmtree(b1);
	tu_rmtree(b2);
	tu_rmtree(dir);
	free(dir);
	free(cmd);
	free(b1);
	free(b2);
	free(s1);
	free(db);
	free(admin);
}
END_TEST

START_TEST(test_two_ingesters_at_once)
{
	char *admin, *db = regtu_fresh_db(&pg, "t_two", &admin), *out = NULL, *b1, *b2, *cmd = NULL;
	regtu_station st;
	int rc, round;

	regtu_station_open(&st, "line-5", "seal-a");
	regtu_provision(&st, "SE-0501", "5001", NULL, 0);
	b1 = regtu_export(&st);
	regtu_provision(&st, "SE-0502", "5002", NULL, 0);
	b2 = regtu_export(&st);
	/* The same bundle twice at once, then the two overlapping bundles at once. */
	for (round = 0; round < 2; round++) {
		const char *x = b1, *y = round ? b2 : b1;

		free(cmd);
		ck_assert_int_ne(asprintf(&cmd,
		                     "r='%s'; ca='%s/root-ca.pem'; db='%s'; "
		                     "\"$r\" --db \"$db\" ingest --enroll --ca \"$ca\" '%s' & a=$!; "
		                     "\"$r\" --db \"$db\" ingest --enroll --ca \"$ca\" '%s' & b=$!; "
		                     "wait $a || exit 1; wait $b || exit 1",
		                     getenv("STATION_REGISTRY_EXE"), tu_pki, db, x, y),
		    -1);
		rc = tu_sh(cmd, &out);
		ck_assert_msg(rc == 0, "round %d: (%d) %s", round, rc, out);
		/* Round 0: one loads, the other finds it there; round 1: b1 is there, b2 adds 6. */
		ck_assert_msg(strstr(out, "loaded: 6 new records") &&
		        strstr(out, "already ingested: 0 new records"),
		    "round %d: %s", round, out);
		free(out);
	}
	ck_assert_int_eq(sql_num(admin, "SELECT count(*) FROM records"), 12);
	ck_assert_int_eq(sql_num(admin, "SELECT count(*) FROM certificates"), 2);
	ck_assert_int_eq(sql_num(admin, "SELECT count(*) FROM stations"), 1);
	ck_assert_int_eq(sql_num(admin, "SELECT count(*) FROM alarms"), 0);
	regtu_station_close(&st);
	tu_rmtree(b1);
	tu_rmtree(b2);
	free(cmd);
	free(b1);
	free(b2);
	free(db);
	free(admin);
}
END_TEST

/* Loads of two stations run at once (--jobs, or two ingesters), but their
 * alarm queries do not: one SE provisioned at both stations raises its
 * alarm whichever commits first.  Bundles of one station load in order. */
START_TEST(test_parallel_loads)
{
	char *admin = NULL, *db = NULL, *out = NULL, *ba, *bb, *ba2, *cmd = NULL, dev[32], serial[16];
	regtu_station a, b;
	int rc, round, d;

	regtu_station_open(&a, "par-a", "seal-a");
	regtu_station_open(&b, "par-b", "seal-b");
	for (d = 0; d < 300; d++) {
		snprintf(dev, sizeof(dev), "SE-PA-%04d", d);
		snprintf(serial, sizeof(serial), "a%04x", d);
		regtu_provision(&a, dev, serial, NULL, 0);
		snprintf(dev, sizeof(dev), "SE-PB-%04d", d);
		snprintf(serial, sizeof(serial), "b%04x", d);
		regtu_provision(&b, dev, serial, NULL, 0);
	}
	regtu_provision(&a, "SE-CLONE", "a9999", NULL, 0);
	regtu_provision(&b, "SE-CLONE", "b9999", NULL, 0);
	ba = regtu_export(&a);
	bb = regtu_export(&b);
	for (round = 0; round < 4; round++) {
		char name[32];

		snprintf(name, sizeof(name), "t_par%d", round);
		free(db);
		free(admin);
		db = regtu_fresh_db(&pg, name, &admin);
		free(cmd);
		if (round % 2)
			ck_assert_int_ne(asprintf(&cmd, "'%s' --db '%s' ingest --enroll --jobs 2 --ca '%s/root-ca.pem' '%s' '%s'",
			                     getenv("STATION_REGISTRY_EXE"), db, tu_pki, round == 1 ? ba : bb, round == 1 ? bb : ba),
			    -1);
		else
			ck_assert_int_ne(asprintf(&cmd,
			                     "r='%s'; ca='%s/root-ca.pem'; db='%s'; "
			                     "\"$r\" --db \"$db\" ingest --enroll --ca \"$ca\" '%s' & x=$!; "
			                     "\"$r\" --db \"$db\" ingest --enroll --ca \"$ca\" '%s' & y=$!; "
			                     "wait $x || exit 1; wait $y || exit 1",
			                     getenv("STATION_REGISTRY_EXE"), tu_pki, db, ba, bb),
			    -1);
		rc = tu_sh(cmd, &out);
		ck_assert_msg(rc == 0, "round %d: (%d) %s", round, rc, out);
		free(out);
		ck_assert_int_eq(sql_num(admin, "SELECT count(*) FROM certificates"), 2 * 301);
		ck_assert_int_eq(sql_num(admin, "SELECT count(DISTINCT station) FROM records"), 2);
		ck_assert_msg(sql_num(admin, "SELECT count(*) FROM alarms WHERE kind = 'device-two-stations' AND subject = 'SE-CLONE'") == 1,
		    "round %d: the clone's alarm was not raised", round);
		ck_assert_int_eq(sql_num(admin, "SELECT count(*) FROM alarms"), 1);
	}
	/* One station's bundles in one command: in order, whatever --jobs says. */
	regtu_provision(&a, "SE-PA-LAST", "a8888", NULL, 0);
	ba2 = regtu_export(&a);
	rc = regtu_reg(db, &out, "ingest --jobs 8 --ca '%s/root-ca.pem' '%s' '%s' '%s'", tu_pki, ba2, ba, ba2);
	ck_assert_msg(rc == 0 && !strstr(out, "gap"), "(%d) %s", rc, out);
	{
		/* ba2 first (the new device's records), then ba and ba2 again: nothing new. */
		char *l2 = strstr(out, ba2), *l1 = strstr(out, ba), *l3 = l2 ? strstr(l2 + 1, ba2) : NULL;

		ck_assert_msg(l2 && l1 && l3 && l2 < l1 && l1 < l3 && strstr(l2, ": loaded: ") == l2 + strlen(ba2) &&
		        strstr(l1, ": already ingested: 0 new records") == l1 + strlen(ba) &&
		        strstr(l3, ": already ingested: 0 new records") == l3 + strlen(ba2),
		    "reported out of order: %s", out);
	}
	free(out);
	rc = regtu_reg(db, &out, "ingest --jobs 0 --ca '%s/root-ca.pem' '%s'", tu_pki, ba);
	ck_assert_msg(rc == 2 && strstr(out, "--jobs 0: give a number from 1 to 8"), "(%d) %s", rc, out);
	free(out);
	regtu_station_close(&a);
	regtu_station_close(&b);
	tu_rmtree(ba);
	tu_rmtree(bb);
	tu_rmtree(ba2);
	free(ba);
	free(bb);
	free(ba2);
	free(cmd);
	free(db);
	free(admin);
}
END_TEST

START_TEST(test_watch_spool)
{
	char *admin, *db = regtu_fresh_db(&pg, "t_watch", &admin), *out = NULL, *b1, *spool = tu_tmpdir("regsp"), *cmd = NULL, *reason;
	char path[4200];
	regtu_station st;
	int rc;

	regtu_station_open(&st, "line-6", "seal-a");
	regtu_provision(&st, "SE-0601", "6001", NULL, 0);
	b1 = regtu_export(&st);
	ck_assert_int_ne(asprintf(&cmd,
	                     "cp -a '%s' '%s/good' && cp -a '%s' '%s/bad' && sed -i 's/SE-0601/SE-0666/' '%s/bad/batch-000001.jsonl' &&"
	                     " cp -a '%s' '%s/late.partial' && cp -a '%s' '%s/.hidden' &&"
	                     " cp -a '%s' '%s/yy-fifo' && rm '%s/yy-fifo/manifest.json' && mkfifo '%s/yy-fifo/manifest.json' &&"
	                     " cp -a '%s' \"$(printf '%s/zz\\033]0;x\\007')\"",
	                     b1, spool, b1, spool, spool, b1, spool, b1, spool, b1, spool, spool, spool, b1, spool),
	    -1);
	ck_assert_int_eq(tu_sh(cmd, NULL), 0);
	free(cmd);
	/* A manifest that is a FIFO is refused, not waited on; a spool name goes out escaped. */
	rc = regtu_reg(db, &out, "watch --enroll --ca '%s/root-ca.pem' --once '%s'", tu_pki, spool);
	ck_assert_msg(rc == 1 && strstr(out, "good: loaded") && strstr(out, "bad: REFUSED") && strstr(out, "yy-fifo: REFUSED") &&
	        strstr(out, "zz\\x1b]0;x\\x07: already ingested") && !strchr(out, '\033'),
	    "(%d) %s", rc, out);
	free(out);
	ck_assert(atu_exists(spool, "done/good/manifest.json"));
	ck_assert(atu_exists(spool, "rejected/bad/manifest.json"));
	reason = atu_read(spool, "rejected/bad.reason", NULL);
	ck_assert_msg(strstr(reason, "verification failed"), "%s", reason);
	free(reason);
	ck_assert(atu_exists(spool, "late.partial/manifest.json"));
	ck_assert(atu_exists(spool, ".hidden/manifest.json"));
	ck_assert_int_eq(sql_num(admin, "SELECT count(*) FROM records WHERE device = 'SE-0601'"), 5);
	/* As a service: a bundle renamed into place is taken within a round; SIGTERM ends it with 0. */
	ck_assert_int_ne(asprintf(&cmd,
	                     "'%s' --db '%s' watch --enroll --ca '%s/root-ca.pem' --interval 1 '%s' > '%s/.log' 2>&1 & p=$!; "
	                     "mv '%s/late.partial' '%s/late'; i=0; while [ ! -e '%s/done/late' ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; "
	                     "kill -TERM $p; wait $p",
	                     getenv("STATION_REGISTRY_EXE"), db, tu_pki, spool, spool, spool, spool, spool),
	    -1);
	rc = tu_sh(cmd, &out);
	free(cmd);
	snprintf(path, sizeof(path), "%s/.log", spool);
	free(out);
	out = tu_slurp(path, NULL);
	ck_assert_msg(rc == 0 && atu_exists(spool, "done/late/manifest.json") && strstr(out, "late: already ingested"),
	    "(%d) %s", rc, out);
	free(out);
	regtu_station_close(&st);
	tu_rmtree(b1);
	tu_rmtree(spool);
	free(b1);
	free(spool);
	free(db);
	free(admin);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("registry-ingest");
	TCase *tc = tcase_create("ingest");

	tcase_add_unchecked_fixture(tc, cluster_setup, cluster_teardown);
	tcase_add_test(tc, test_load_idempotent_overlap);
	tcase_add_test(tc, test_fork_refused_with_alarm);
	tcase_add_test(tc, test_station_enrollment);
	tcase_add_test(tc, test_bad_certificate_refused);
	tcase_add_test(tc, test_bad_bundles_refused);
	tcase_add_test(tc, test_alarms);
	tcase_add_test(tc, test_database_down_mid_ingest);
	tcase_add_test(tc, test_two_ingesters_at_once);
	tcase_add_test(tc, test_parallel_loads);
	tcase_add_test(tc, test_watch_spool);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
