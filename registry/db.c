/* station-registry: the connection and the schema migrations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

/* libpq's messages end with a newline; ours do not. */
static const char *
pq_msg(const char *m)
{
	static __thread char buf[512];
	size_t n;

	snprintf(buf, sizeof(buf), "%s", m && *m ? m : "unknown error");
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = 0;
	return buf;
}

int
reg_connect(struct reg *r, st_err *err)
{
	if (r->conn)
		return 0;
	r->conn = PQconnectdb(r->db ? r->db : "");
	if (PQstatus(r->conn) != CONNECTION_OK) {
		st_err_set(err, ST_E_IO, "cannot connect to the registry database%s%s: %s%s", r->db ? " " : "",
		    r->db ? r->db : " (PG* environment)", pq_msg(PQerrorMessage(r->conn)),
		    "; check --db or PGHOST/PGDATABASE, and that the server runs");
		PQfinish(r->conn);
		r->conn = NULL;
		return -1;
	}
	/* Quiet NOTICEs (CREATE ... IF NOT EXISTS) would reach the terminal otherwise. */
	PQclear(PQexec(r->conn, "SET client_min_messages = warning"));
	/* Every statement here is short (index probes, COPY): compiling one
	 * with JIT, which PostgreSQL does once its cost estimate is high (a
	 * table without statistics yet), takes longer than running it. */
	PQclear(PQexec(r->conn, "SET jit = off"));
	return 0;
}

void
reg_disconnect(struct reg *r)
{
	if (r->conn)
		PQfinish(r->conn);
	r->conn = NULL;
}

int
reg_exec(struct reg *r, const char *sql, st_err *err)
{
	PGresult *res = PQexec(r->conn, sql);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		st_err_set(err, ST_E_IO, "database: %s", pq_msg(PQerrorMessage(r->conn)));
	PQclear(res);
	return ok ? 0 : -1;
}

PGresult *
reg_query(struct reg *r, const char *sql, int n, const char *const *params, st_err *err)
{
	PGresult *res = PQexecParams(r->conn, sql, n, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		st_err_set(err, ST_E_IO, "database: %s", pq_msg(PQerrorMessage(r->conn)));
		PQclear(res);
		return NULL;
	}
	return res;
}

int
reg_schema_version(struct reg *r, st_err *err)
{
	PGresult *res = NULL;
	int v = -1;

	if (!(res = reg_query(r, "SELECT to_regclass('public.schema_version') IS NOT NULL", 0, NULL, err)))
		goto out;
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		v = 0;
		goto out;
	}
	PQclear(res);
	if (!(res = reg_query(r, "SELECT coalesce(max(version), 0) FROM schema_version", 0, NULL, err)))
		goto out;
	v = atoi(PQgetvalue(res, 0, 0));
out:
	PQclear(res);
	return v;
}

void
reg_print_json(json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII);

	if (s)
		printf("%s\n", s);
	free(s);
	json_decref(v);
}

/* ---- init ------------------------------------------------------------------ */

int
cmd_init(struct reg *r, int argc, char **argv)
{
	char num[16];
	const char *params[2];
	PGresult *res = NULL;
	json_t *applied = json_array();
	int from = -1, to, i, ret = EXIT_FAIL;
	st_err err;

	if (argc != 1) {
		fprintf(stderr, "usage: station-registry [--db URI] [--json] init\n");
		ret = EXIT_USAGE;
		goto out;
	}
	if (reg_connect(r, &err) < 0) {
		fprintf(stderr, "station-registry init: %s\n", err.msg);
		ret = EXIT_USAGE;
		goto out;
	}
	/* One transaction and one lock: two inits at once apply each migration once. */
	if (reg_exec(r,
	        "BEGIN; SELECT pg_advisory_xact_lock(5252001);"
	        "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, name text NOT NULL,"
	        " applied_at timestamptz NOT NULL DEFAULT now())",
	        &err) < 0 ||
	    (from = reg_schema_version(r, &err)) < 0)
		goto fail;
	for (to = 0; reg_migrations[to].sql; to++)
		;
	if (from > to) {
		st_err_set(&err, ST_E_CONFIG, "the database is at schema version %d, newer than this program's %d: use a newer station-registry",
		    from, to);
		goto fail;
	}
	for (i = from; i < to; i++) {
		if (reg_exec(r, reg_migrations[i].sql, &err) < 0) {
			st_err_prefix(&err, "migration %04d-%s", reg_migrations[i].version, reg_migrations[i].name);
			goto fail;
		}
		snprintf(num, sizeof(num), "%d", reg_migrations[i].version);
		params[0] = num;
		params[1] = reg_migrations[i].name;
		if (!(res = reg_query(r, "INSERT INTO schema_version (version, name) VALUES ($1, $2)", 2, params, &err)))
			goto fail;
		PQclear(res);
		res = NULL;
		json_array_append_new(applied, json_pack("{s:i,s:s}", "version", reg_migrations[i].version, "name",
		                                   reg_migrations[i].name));
	}
	if (reg_exec(r, "GRANT SELECT ON schema_version TO registry_ingest, registry_read; COMMIT", &err) < 0)
		goto fail;
	if (r->json) {
		reg_print_json(json_pack("{s:i,s:i,s:O}", "from_version", from, "version", to, "applied", applied));
	} else if (from == to) {
		printf("schema at version %d: up to date\n", to);
	} else {
		for (i = from; i < to; i++)
			printf("applied %04d-%s\n", reg_migrations[i].version, reg_migrations[i].name);
		printf("schema at version %d (was %d)\n", to, from);
	}
	ret = EXIT_OK;
	goto out;
fail:
	fprintf(stderr, "station-registry init: %s\n", err.msg);
	PQclear(PQexec(r->conn, "ROLLBACK"));
	ret = err.code == ST_E_CONFIG ? EXIT_USAGE : EXIT_FAIL;
out:
	PQclear(res);
	json_decref(applied);
	return ret;
}

/* Journal text (device serials, jig URIs, errors) may hold anything a jig
 * sent, and spool names anything a file transfer made: never raw to a
 * terminal. */
const char *
reg_safe(const char *s)
{
	static __thread char buf[4][4096];
	static __thread unsigned k;
	char *o = buf[k++ % 4];
	size_t n = 0;

	for (; s && *s && n + 5 < sizeof(buf[0]); s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f || c == '\\')
			n += (size_t)snprintf(o + n, sizeof(buf[0]) - n, "\\x%02x", c);
		else
			o[n++] = (char)c;
	}
	o[n] = 0;
	return o;
}
