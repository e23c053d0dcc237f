/* station-registry: the fleet's audit records in PostgreSQL.  Internal to
 * registry/: the commands share a connection, an output mode and a few
 * helpers around libpq. */
#ifndef REGISTRY_H
#define REGISTRY_H

#include <stdio.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/x509.h>

#include "st.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

struct reg_migration {
	int version;
	const char *name;
	const char *sql;
};
extern const struct reg_migration reg_migrations[]; /* generated from migrations/ */

struct reg {
	const char *db; /* --db URI or NULL: libpq's PG* environment */
	int json;       /* --json */
	int enroll;     /* ingest, watch --enroll: an unknown station is enrolled with its bundle's signer */
	PGconn *conn;
};

/* Connect (once) to r->db; ST_E_IO naming the server when it cannot. */
int reg_connect(struct reg *r, st_err *err);
void reg_disconnect(struct reg *r);
/* Run sql (no parameters, any number of statements); -1 with the server's message. */
int reg_exec(struct reg *r, const char *sql, st_err *err);
/* Run one parameterised query; returns the result (caller PQclear()s) or NULL with err. */
PGresult *reg_query(struct reg *r, const char *sql, int n, const char *const *params, st_err *err);
/* The schema version the database is at (0: none), or -1. */
int reg_schema_version(struct reg *r, st_err *err);
/* Print a JSON value on stdout, one line, and release it (steals v). */
void reg_print_json(json_t *v);
/* s with control bytes and backslashes as \xNN, for a terminal or a log
 * (cut near 4 KB).  One of four rotating thread-local buffers: at most four
 * in one printf. */
const char *reg_safe(const char *s);

/* What ingesting one bundle did. */
struct reg_outcome {
	int refused;       /* 1: not loaded; reason says why */
	char reason[1200];
	int new_station;
	long long new_records, new_alarms;
	json_t *gaps;      /* caller-made array: [[from, to], ...] still missing for the station */
};

/* Verify the bundle at path against trust and load it (ingest.c); fills oc.
 * -1 only when the database failed (the transaction rolled back). */
int reg_ingest_bundle(struct reg *r, const char *path, X509_STORE *trust, struct reg_outcome *oc,
    st_err *err);

int cmd_init(struct reg *r, int argc, char **argv);
int cmd_ingest(struct reg *r, int argc, char **argv);
int cmd_device(struct reg *r, int argc, char **argv);
int cmd_certificate(struct reg *r, int argc, char **argv);
int cmd_alarms(struct reg *r, int argc, char **argv);
int cmd_revocations(struct reg *r, int argc, char **argv);
int cmd_report(struct reg *r, int argc, char **argv);
int cmd_watch(struct reg *r, int argc, char **argv);
int cmd_stations(struct reg *r, int argc, char **argv);

#endif
