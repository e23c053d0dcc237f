/* A throw-away PostgreSQL cluster for the registry's tests: initdb and
 * pg_ctl on a unix socket in a temporary folder, no TCP, no system service.
 * PostgreSQL refuses to run as root: as root the server runs as the
 * `postgres` account (runuser), otherwise as the caller. */
#ifndef PGTU_H
#define PGTU_H

typedef struct pgtu {
	char *dir;      /* the cluster's folder: data/, the socket, server.log */
	char *conninfo; /* "host=DIR dbname=registry user=postgres" */
	char *socket_dir;
	int running;
} pgtu;

/* initdb + start; ck_asserts on failure (the server log is in the message). */
void pgtu_start(pgtu *pg);
/* Stop the server (immediate) and remove the folder; safe to call twice. */
void pgtu_stop(pgtu *pg);
/* Stop / start the server of an existing cluster, keeping its data. */
void pgtu_down(pgtu *pg);
void pgtu_up(pgtu *pg);
/* conninfo with another user: malloc'd. */
char *pgtu_conninfo_as(const pgtu *pg, const char *user);
/* A fresh database name in the cluster; returns the superuser's conninfo for it (malloc'd). */
char *pgtu_createdb(const pgtu *pg, const char *name);
/* conninfo for database db as user (malloc'd). */
char *pgtu_db(const pgtu *pg, const char *db, const char *user);
/* psql -c sql on conninfo; status, output in *out (malloc'd, may be NULL). */
int pgtu_psql_on(const char *conninfo, const char *sql, char **out);
/* Run one SQL statement with psql as the superuser; returns psql's status,
 * its output (unaligned, tuples only) in *out (malloc'd, may be NULL). */
int pgtu_psql(const pgtu *pg, const char *sql, char **out);
/* CPU seconds (user + system) the cluster's processes have used so far:
 * the postmaster, its live children, and the children it has reaped (the
 * backend of every connection that closed).  Differences of two readings
 * are the server's share of what ran between them. */
double pgtu_server_cpu_s(const pgtu *pg);

#endif
