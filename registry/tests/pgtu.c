/* The throw-away PostgreSQL cluster of the registry tests (pgtu.h). */
#include <dirent.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pgtu.h"
#include "testutil.h"

#define PG_BIN "/usr/lib/postgresql/15/bin"

static pgtu *live; /* stopped at exit too, so a failing test binary leaves no server behind */
static pid_t live_owner; /* only the process that started it: forked test cases inherit atexit */

/* argv prefixed with runuser when we are root. */
static int
pg_run(char **argv, char **out)
{
	char *full[32];
	int n = 0, i;

	if (geteuid() == 0) {
		full[n++] = (char *)"runuser";
		full[n++] = (char *)"-u";
		full[n++] = (char *)"postgres";
		full[n++] = (char *)"--";
	}
	for (i = 0; argv[i] && n < 31; i++)
		full[n++] = argv[i];
	full[n] = NULL;
	return tu_run(full, out);
}

static char *
server_log(const pgtu *pg)
{
	char path[4096];
	char *s;

	snprintf(path, sizeof(path), "%s/server.log", pg->dir);
	s = tu_slurp(path, NULL);
	return s ? s : strdup("(no server log)");
}

void
pgtu_up(pgtu *pg)
{
	char data[4096], log[4096], opts[4200];
	char *argv[] = { (char *)PG_BIN "/pg_ctl", (char *)"-D", data, (char *)"-l", log, (char *)"-w", (char *)"-t",
		(char *)"60", (char *)"-o", opts, (char *)"start", NULL };
	char *out = NULL, *slog;
	int rc;

	snprintf(data, sizeof(data), "%s/data", pg->dir);
	snprintf(log, sizeof(log), "%s/server.log", pg->dir);
	/* listen_addresses='' : no TCP at all, only the socket in our folder. */
	snprintf(opts, sizeof(opts), "-k %s -c listen_addresses='' -c fsync=off -c max_connections=40 -c log_min_duration_statement=250", pg->socket_dir);
	rc = pg_run(argv, &out);
	if (rc != 0) {
		slog = server_log(pg);
		ck_abort_msg("pg_ctl start failed (%d): %s\n%s", rc, out ? out : "", slog);
	}
	free(out);
	pg->running = 1;
}

void
pgtu_down(pgtu *pg)
{
	char data[4096];
	char *argv[] = { (char *)PG_BIN "/pg_ctl", (char *)"-D", data, (char *)"-m", (char *)"immediate", (char *)"-w",
		(char *)"stop", NULL };
	char *out = NULL;

	if (!pg->running)
		return;
	snprintf(data, sizeof(data), "%s/data", pg->dir);
	pg_run(argv, &out);
	free(out);
	pg->running = 0;
}

static void
stop_at_exit(void)
{
	if (live && getpid() == live_owner)
		pgtu_stop(live);
}

void
pgtu_start(pgtu *pg)
{
	char data[4096];
	char *initdb[] = { (char *)PG_BIN "/initdb", (char *)"-D", data, (char *)"-U", (char *)"postgres", (char *)"-A",
		(char *)"trust", (char *)"-E", (char *)"UTF8", (char *)"--locale=C", (char *)"--no-sync", NULL };
	char *out = NULL;
	struct passwd *pw;
	int rc;

	memset(pg, 0, sizeof(*pg));
	pg->dir = tu_tmpdir("pg");
	ck_assert_ptr_nonnull(pg->dir);
	ck_assert_int_ne(asprintf(&pg->socket_dir, "%s", pg->dir), -1);
	if (geteuid() == 0) {
		pw = getpwnam("postgres");
		ck_assert_msg(pw != NULL, "running as root and there is no postgres account: install postgresql (scripts/deps)");
		ck_assert_msg(chown(pg->dir, pw->pw_uid, pw->pw_gid) == 0, "chown %s to postgres failed", pg->dir);
		/* The server must reach its folder through $TMPDIR. */
		chmod(pg->dir, 0755);
	}
	snprintf(data, sizeof(data), "%s/data", pg->dir);
	rc = pg_run(initdb, &out);
	ck_assert_msg(rc == 0, "initdb failed (%d): %s", rc, out ? out : "");
	free(out);
	if (!live_owner)
		atexit(stop_at_exit);
	live = pg;
	live_owner = getpid();
	pgtu_up(pg);
	ck_assert_int_ne(asprintf(&pg->conninfo, "host=%s dbname=registry user=postgres", pg->socket_dir), -1);
	{
		char *createdb[] = { (char *)PG_BIN "/createdb", (char *)"-h", pg->socket_dir, (char *)"-U", (char *)"postgres",
			(char *)"registry", NULL };
		rc = tu_run(createdb, &out);
		ck_assert_msg(rc == 0, "createdb failed (%d): %s", rc, out ? out : "");
		free(out);
	}
}

/* Fields 14-17 of /proc/PID/stat (utime stime cutime cstime), in ticks;
 * *ppid gets field 4.  -1 when the process is gone. */
static int
proc_cpu(long pid, long *ppid, unsigned long long t[4])
{
	char path[64], buf[1024], *p;
	FILE *f;
	int n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if (!(f = fopen(path, "r")))
		return -1;
	n = (int)fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n > 0 ? n : 0] = 0;
	/* The command name (field 2) may hold spaces: start after its ')'. */
	if (!(p = strrchr(buf, ')')) ||
	    sscanf(p + 1, " %*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", ppid, &t[0], &t[1], &t[2], &t[3]) != 5)
		return -1;
	return 0;
}

double
pgtu_server_cpu_s(const pgtu *pg)
{
	char path[4096];
	unsigned long long t[4], ticks = 0;
	long pm = 0, ppid;
	DIR *d;
	struct dirent *e;
	FILE *f;

	snprintf(path, sizeof(path), "%s/data/postmaster.pid", pg->dir);
	f = fopen(path, "r");
	ck_assert_msg(f && fscanf(f, "%ld", &pm) == 1, "%s: no postmaster pid", path);
	fclose(f);
	ck_assert_int_eq(proc_cpu(pm, &ppid, t), 0);
	ticks = t[0] + t[1] + t[2] + t[3];
	ck_assert_ptr_nonnull(d = opendir("/proc"));
	while ((e = readdir(d)))
		if (e->d_name[0] >= '1' && e->d_name[0] <= '9' && proc_cpu(strtol(e->d_name, NULL, 10), &ppid, t) == 0 &&
		    ppid == pm)
			ticks += t[0] + t[1];
	closedir(d);
	return (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

void
pgtu_stop(pgtu *pg)
{
	if (!pg->dir)
		return;
	pgtu_down(pg);
	tu_rmtree(pg->dir);
	free(pg->dir);
	free(pg->conninfo);
	free(pg->socket_dir);
	if (live == pg)
		live = NULL;
	memset(pg, 0, sizeof(*pg));
}

char *
pgtu_conninfo_as(const pgtu *pg, const char *user)
{
	char *s = NULL;

	ck_assert_int_ne(asprintf(&s, "host=%s dbname=registry user=%s", pg->socket_dir, user), -1);
	return s;
}

int
pgtu_psql_on(const char *conninfo, const char *sql, char **out)
{
	char *argv[] = { (char *)PG_BIN "/psql", (char *)"-X", (char *)"-q", (char *)"-A", (char *)"-t", (char *)"-v",
		(char *)"ON_ERROR_STOP=1", (char *)"-d", (char *)conninfo, (char *)"-c", (char *)sql, NULL };

	return tu_run(argv, out);
}

int
pgtu_psql(const pgtu *pg, const char *sql, char **out)
{
	return pgtu_psql_on(pg->conninfo, sql, out);
}

char *
pgtu_db(const pgtu *pg, const char *db, const char *user)
{
	char *s = NULL;

	ck_assert_int_ne(asprintf(&s, "host=%s dbname=%s user=%s", pg->socket_dir, db, user), -1);
	return s;
}

char *
pgtu_createdb(const pgtu *pg, const char *name)
{
	char *createdb[] = { (char *)PG_BIN "/createdb", (char *)"-h", pg->socket_dir, (char *)"-U", (char *)"postgres",
		(char *)name, NULL };
	char *out = NULL;
	int rc = tu_run(createdb, &out);

	ck_assert_msg(rc == 0, "createdb %s failed (%d): %s", name, rc, out ? out : "");
	free(out);
	return pgtu_db(pg, name, "postgres");
}
