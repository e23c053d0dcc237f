/* station-registry init against a real throw-away PostgreSQL cluster:
 * migrations, the schema version table, and what each role may do. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgtu.h"
#include "testutil.h"

static pgtu pg;

static void
cluster_setup(void)
{
	pgtu_start(&pg);
}

static void
cluster_teardown(void)
{
	pgtu_stop(&pg);
}

/* station-registry --db CONNINFO ARGS..., output in *out. */
static int
reg(const char *conninfo, char **out, const char *a1, const char *a2)
{
	char *argv[] = { getenv("STATION_REGISTRY_EXE"), (char *)"--db", (char *)conninfo, (char *)a1, (char *)a2, NULL };

	return tu_run(argv, out);
}

START_TEST(test_init_creates_and_is_idempotent)
{
	char *out = NULL;
	int rc;

	rc = reg(pg.conninfo, &out, "init", NULL);
	ck_assert_msg(rc == 0, "init failed (%d): %s", rc, out);
	ck_assert_msg(strstr(out, "applied 0001-schema") && strstr(out, "applied 0002-alarm-indexes") && strstr(out, "schema at version 2"), "%s", out);
	free(out);
	rc = pgtu_psql(&pg, "SELECT version || ':' || name FROM schema_version ORDER BY version", &out);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(out, "1:schema\n2:alarm-indexes\n");
	free(out);
	/* Again: nothing to do. */
	rc = reg(pg.conninfo, &out, "--json", "init");
	ck_assert_msg(rc == 0, "second init failed (%d): %s", rc, out);
	ck_assert_msg(strstr(out, "\"from_version\":2") && strstr(out, "\"applied\":[]"), "%s", out);
	free(out);
	rc = pgtu_psql(&pg, "SELECT count(*) FROM schema_version", &out);
	ck_assert_str_eq(out, "2\n");
	free(out);
	/* A database at version 1 (made by an earlier program) is migrated. */
	rc = pgtu_psql(&pg, "DELETE FROM schema_version WHERE version = 2; DROP INDEX records_keygen_pubkey, "
	                    "records_identify_attestation", &out);
	ck_assert_int_eq(rc, 0);
	free(out);
	rc = reg(pg.conninfo, &out, "--json", "init");
	ck_assert_msg(rc == 0 && strstr(out, "\"from_version\":1") && strstr(out, "\"name\":\"alarm-indexes\""), "(%d) %s", rc, out);
	free(out);
	rc = pgtu_psql(&pg, "SELECT count(*) FROM pg_indexes WHERE indexname IN ('records_keygen_pubkey', "
	                    "'records_identify_attestation')", &out);
	ck_assert_str_eq(out, "2\n");
	free(out);
}
END_TEST

START_TEST(test_roles)
{
	char *ingest = pgtu_conninfo_as(&pg, "registry_ingest"), *ro = pgtu_conninfo_as(&pg, "registry_read");
	char *out = NULL;
	int rc;
	char *psql_ingest_ins[] = { (char *)"/usr/lib/postgresql/15/bin/psql", (char *)"-X", (char *)"-v", (char *)"ON_ERROR_STOP=1",
		(char *)"-d", ingest, (char *)"-c",
		(char *)"INSERT INTO stations (station, signer) VALUES ('s-roles', 'CN=x'); SELECT count(*) FROM stations", NULL };
	char *psql_ingest_del[] = { (char *)"/usr/lib/postgresql/15/bin/psql", (char *)"-X", (char *)"-v", (char *)"ON_ERROR_STOP=1",
		(char *)"-d", ingest, (char *)"-c", (char *)"DELETE FROM stations", NULL };
	char *psql_ingest_upd[] = { (char *)"/usr/lib/postgresql/15/bin/psql", (char *)"-X", (char *)"-v", (char *)"ON_ERROR_STOP=1",
		(char *)"-d", ingest, (char *)"-c", (char *)"UPDATE alarms SET cleared_at = now()", NULL };
	char *psql_ro_ins[] = { (char *)"/usr/lib/postgresql/15/bin/psql", (char *)"-X", (char *)"-v", (char *)"ON_ERROR_STOP=1",
		(char *)"-d", ro, (char *)"-c", (char *)"INSERT INTO stations (station, signer) VALUES ('s-ro', 'CN=x')", NULL };
	char *psql_ro_sel[] = { (char *)"/usr/lib/postgresql/15/bin/psql", (char *)"-X", (char *)"-v", (char *)"ON_ERROR_STOP=1",
		(char *)"-d", ro, (char *)"-c", (char *)"SELECT count(*) FROM records", NULL };

	rc = reg(pg.conninfo, &out, "init", NULL);
	ck_assert_msg(rc == 0, "init failed (%d): %s", rc, out);
	free(out);
	rc = tu_run(psql_ingest_ins, &out);
	ck_assert_msg(rc == 0, "ingest role cannot insert: %s", out);
	free(out);
	rc = tu_run(psql_ingest_del, &out);
	ck_assert_msg(rc != 0 && strstr(out, "permission denied"), "ingest role could delete: %s", out);
	free(out);
	rc = tu_run(psql_ingest_upd, &out);
	ck_assert_msg(rc != 0 && strstr(out, "permission denied"), "ingest role could update: %s", out);
	free(out);
	rc = tu_run(psql_ro_ins, &out);
	ck_assert_msg(rc != 0 && strstr(out, "permission denied"), "read role could insert: %s", out);
	free(out);
	rc = tu_run(psql_ro_sel, &out);
	ck_assert_msg(rc == 0, "read role cannot read: %s", out);
	free(out);
	/* The read role cannot run init's migrations either. */
	rc = pgtu_psql(&pg, "DROP TABLE schema_version", &out);
	free(out);
	rc = reg(ro, &out, "init", NULL);
	ck_assert_msg(rc == 1 && strstr(out, "permission denied"), "read role ran init (%d): %s", rc, out);
	free(out);
	free(ingest);
	free(ro);
}
END_TEST

START_TEST(test_unreachable_database)
{
	char *out = NULL, *bad = NULL;
	int rc;

	ck_assert_int_ne(asprintf(&bad, "host=%s/nowhere dbname=registry user=postgres", pg.dir), -1);
	rc = reg(bad, &out, "init", NULL);
	ck_assert_msg(rc == 2 && strstr(out, "cannot connect to the registry database"), "(%d): %s", rc, out);
	free(out);
	free(bad);
	rc = reg(pg.conninfo, &out, "bogus", NULL);
	ck_assert_msg(rc == 2 && strstr(out, "unknown command 'bogus'"), "(%d): %s", rc, out);
	free(out);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("registry-init");
	TCase *tc = tcase_create("init");

	tcase_add_unchecked_fixture(tc, cluster_setup, cluster_teardown);
	tcase_add_test(tc, test_init_creates_and_is_idempotent);
	tcase_add_test(tc, test_roles);
	tcase_add_test(tc, test_unreachable_database);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
