/* The journal writer and reader: record format and chaining, batches and
 * seals, torn-tail recovery, corruption in the middle, locking, group
 * commit with 8 threads. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit-tu.h"
#include "cms.h"

#define RECIPE_DIGEST "4f2c1d0e9b8a7766554433221100ffeeddccbbaa99887766554433221100abcd"

static audit_config
base_cfg(unsigned n)
{
	audit_config cfg = { "station-01", "alice", RECIPE_DIGEST, n, 0, NULL };

	return cfg;
}

static char *
journal_dir(char **tmp)
{
	*tmp = tu_tmpdir("audit");
	ck_assert_ptr_nonnull(*tmp);
	return tu_path(*tmp, "journal");
}

static audit_journal *
open_ok(const char *dir, const audit_config *cfg)
{
	st_err err;
	audit_journal *j = audit_open(dir, cfg, &err);

	ck_assert_msg(j != NULL, "audit_open: %s", err.msg);
	return j;
}

static void
hash_hex(const void *p, size_t len, char out[65])
{
	uint8_t h[32];

	st_sha256(p, len, h);
	st_hex(h, 32, out);
}

/* Line `line` (1-based) of a batch file as a JSON object. */
static json_t *
load_line(const char *dir, const char *batch, unsigned line)
{
	size_t len = 0, off;
	char *buf = atu_read(dir, batch, &len);
	const char *nl;
	json_error_t jerr;
	json_t *o;

	off = atu_line_offset(buf, len, line);
	nl = memchr(buf + off, '\n', len - off);
	ck_assert_ptr_nonnull(nl);
	o = json_loadb(buf + off, (size_t)(nl - buf) - off, JSON_REJECT_DUPLICATES, &jerr);
	ck_assert_msg(o != NULL, "%s line %u: %s", batch, line, jerr.text);
	free(buf);
	return o;
}

/* SHA-256 hex of line `line` of a batch file, newline included. */
static void
line_hash(const char *dir, const char *batch, unsigned line, char out[65])
{
	size_t len = 0, off;
	char *buf = atu_read(dir, batch, &len);
	const char *nl;

	off = atu_line_offset(buf, len, line);
	nl = memchr(buf + off, '\n', len - off);
	ck_assert_ptr_nonnull(nl);
	hash_hex(buf + off, (size_t)(nl - buf) - off + 1, out);
	free(buf);
}

static const char *
jstr(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	ck_assert_msg(json_is_string(v), "field %s is not a string", key);
	return json_string_value(v);
}

/* ---- records -------------------------------------------------------------- */

struct collected {
	unsigned n;
	uint64_t seqs[64];
	char hashes[64][65];
	char devices[64][64];
	json_int_t details_n;
};

static int
collect(const audit_record *rec, void *ctx)
{
	struct collected *c = ctx;

	ck_assert_uint_lt(c->n, 64);
	c->seqs[c->n] = rec->seq;
	snprintf(c->hashes[c->n], sizeof(c->hashes[0]), "%s", rec->hash);
	snprintf(c->devices[c->n], sizeof(c->devices[0]), "%s", rec->device ? rec->device : "(null)");
	if (json_object_get(rec->details, "n"))
		c->details_n = json_integer_value(json_object_get(rec->details, "n"));
	c->n++;
	return 0;
}

START_TEST(test_records)
{
	char *tmp, *dir = journal_dir(&tmp);
	audit_config cfg = base_cfg(0);
	const char *tricky = "quote \" backslash \\ newline \n tab \t e-acute \xc3\xa9 snowman \xe2\x98\x83 nul-free";
	json_t *details = json_pack("{s:s, s:s, s:i}", "cert_serial", "0a1b2c", "error", tricky, "n", 7);
	audit_event ev = { "tcp:127.0.0.1:7000", "SE\"0001\n", "issued", "ok", details, 0 };
	audit_journal *j;
	audit_status st;
	struct collected c;
	uint64_t seq = 0;
	json_t *o;
	char h[65], zeros[65];
	size_t len;
	char *raw;
	st_err err;

	cfg.engineering = 1;
	j = open_ok(dir, &cfg);
	ck_assert_msg(audit_append(j, &ev, &seq, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(seq, 1);
	ck_assert_uint_eq(atu_append(j, "SE0002", "identify", "ok"), 2);
	ev.jig = NULL;
	ev.device = NULL;
	ev.details = NULL;
	ev.step = "station-start";
	ev.result = "info";
	ck_assert_msg(audit_append(j, &ev, &seq, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(seq, 3);
	audit_get_status(j, &st);
	ck_assert_uint_eq(st.last_seq, 3);
	ck_assert_uint_eq(st.batch, 1);
	ck_assert_uint_eq(st.appends, 3);
	ck_assert_int_eq(st.recovered, 0);
	audit_close(j);

	ck_assert_uint_eq(atu_lines(dir, "batch-000001.jsonl"), 3);
	raw = atu_read(dir, "batch-000001.jsonl", &len);
	/* Keys in FORMAT.md's order, compact, one record per line. */
	ck_assert_msg(strncmp(raw, "{\"v\":1,\"seq\":1,\"time\":\"", 23) == 0, "%.60s", raw);
	free(raw);

	o = load_line(dir, "batch-000001.jsonl", 1);
	ck_assert_str_eq(jstr(o, "station"), "station-01");
	ck_assert_str_eq(jstr(o, "operator"), "alice");
	ck_assert_str_eq(jstr(o, "recipe"), RECIPE_DIGEST);
	ck_assert_str_eq(jstr(o, "jig"), "tcp:127.0.0.1:7000");
	ck_assert_str_eq(jstr(o, "device"), "SE\"0001\n");
	ck_assert_str_eq(jstr(o, "step"), "issued");
	ck_assert_str_eq(jstr(o, "result"), "ok");
	ck_assert(json_is_true(json_object_get(o, "engineering")));
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "details"), "error")), tricky);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "details"), "cert_serial")), "0a1b2c");
	memset(zeros, '0', 64);
	zeros[64] = '\0';
	ck_assert_str_eq(jstr(o, "prev"), zeros);
	/* 2026-11-21T09:43:30.123Z */
	ck_assert_uint_eq(strlen(jstr(o, "time")), 24);
	ck_assert_int_eq(jstr(o, "time")[10], 'T');
	ck_assert_int_eq(jstr(o, "time")[19], '.');
	ck_assert_int_eq(jstr(o, "time")[23], 'Z');
	json_decref(o);

	o = load_line(dir, "batch-000001.jsonl", 3);
	ck_assert(json_is_null(json_object_get(o, "jig")));
	ck_assert(json_is_null(json_object_get(o, "device")));
	ck_assert_int_eq(json_object_size(json_object_get(o, "details")), 0);
	line_hash(dir, "batch-000001.jsonl", 2, h);
	ck_assert_str_eq(jstr(o, "prev"), h);
	json_decref(o);

	memset(&c, 0, sizeof(c));
	ck_assert_msg(audit_scan(dir, collect, &c, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(c.n, 3);
	ck_assert_uint_eq(c.seqs[0], 1);
	ck_assert_uint_eq(c.seqs[2], 3);
	ck_assert_str_eq(c.devices[0], "SE\"0001\n");
	ck_assert_str_eq(c.devices[2], "(null)");
	ck_assert_int_eq(c.details_n, 7);
	line_hash(dir, "batch-000001.jsonl", 1, h);
	ck_assert_str_eq(c.hashes[0], h);

	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(audit_find_device(dir, "SE0002", collect, &c, &err), 0);
	ck_assert_uint_eq(c.n, 1);
	ck_assert_uint_eq(c.seqs[0], 2);

	json_decref(details);
	tu_rmtree(tmp);
	free(tmp);
	free(dir);
}
END_TEST

START_TEST(test_bad_events)
{
	char *tmp, *dir = journal_dir(&tmp);
	audit_config cfg = base_cfg(0);
	audit_journal *j = open_ok(dir, &cfg);
	json_t *arr = json_array();
	char *big = malloc(AUDIT_RECORD_MAX + 1);
	json_t *bigd;
	audit_event ev = { NULL, "SE1", "identify", "ok", arr, 0 };
	st_err err;

	ck_assert_int_eq(audit_append(j, &ev, NULL, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "details must be a JSON object"));
	ev.details = NULL;
	ev.step = NULL;
	ck_assert_int_eq(audit_append(j, &ev, NULL, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "step and result are required"));
	ev.step = "identify";
	ev.device = "SE\xff";
	ck_assert_int_eq(audit_append(j, &ev, NULL, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "not valid UTF-8"));
	ev.device = "SE1";
	memset(big, 'x', AUDIT_RECORD_MAX);
	big[AUDIT_RECORD_MAX] = '\0';
	bigd = json_pack("{s:s}", "blob", big);
	ev.details = bigd;
	ck_assert_int_eq(audit_append(j, &ev, NULL, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "more than the 65536 allowed"));
	/* None of these consumed a sequence number or left bytes behind. */
	ck_assert_uint_eq(atu_append(j, "SE1", "identify", "ok"), 1);
	audit_close(j);
	ck_assert_uint_eq(atu_lines(dir, "batch-000001.jsonl"), 1);

	json_decref(arr);
	json_decref(bigd);
	free(big);
	tu_rmtree(tmp);
	free(tmp);
	free(dir);
}
END_TEST

/* ---- batches and seals -------------------------------------------------------- */

static int
stock_openssl_verify(const char *dir, const char *content, const char *seal)
{
	char *cmd = NULL, *out = NULL;
	int rc;

	/* The exact command audit/FORMAT.md gives auditors. */
	ck_assert_int_ne(asprintf(&cmd,
	    "openssl cms -verify -binary -inform DER -content '%s/%s' -in '%s/%s' -CAfile '%s/root-ca.pem' "
	    "-out /dev/null",
	    dir, content, dir, seal, atu_pki), -1);
	rc = tu_sh(cmd, &out);
	if (rc == 0)
		ck_assert_msg(strstr(out, "Verification successful") != NULL, "%s", out);
	free(out);
	free(cmd);
	return rc;
}

START_TEST(test_batches_and_seals)
{
	char *tmp, *dir = journal_dir(&tmp);
	audit_config cfg = base_cfg(2);
	atu_signer sg;
	audit_journal *j;
	audit_status st;
	audit_report *rep = NULL;
	X509_STORE *trust = atu_trust(atu_pki);
	json_t *o;
	char h[65];
	char *buf;
	size_t len;
	st_err err;

	atu_signer_load(&sg, atu_pki, "seal");
	cfg.signer = &sg.s;
	j = open_ok(dir, &cfg);
	atu_append(j, "SE-A", "identify", "ok");
	atu_append(j, "SE-A", "done", "ok");           /* device 1 */
	audit_get_status(j, &st);
	ck_assert_uint_eq(st.batch_devices, 1);
	ck_assert(!atu_exists(dir, "batch-000001.jsonl.p7s"));
	atu_append(j, "SE-B", "keygen", "fail");       /* device 2: closes batch 1 */
	audit_get_status(j, &st);
	ck_assert_uint_eq(st.batch, 2);
	ck_assert_uint_eq(st.batch_devices, 0);
	ck_assert_uint_eq(st.unsealed, 0);
	ck_assert_uint_eq(st.last_seq, 4);
	ck_assert(atu_exists(dir, "batch-000001.jsonl.p7s"));
	ck_assert(!atu_exists(dir, "batch-000002.jsonl")); /* created by the next record */
	ck_assert_uint_eq(atu_lines(dir, "batch-000001.jsonl"), 4);
	o = load_line(dir, "batch-000001.jsonl", 4);
	ck_assert_str_eq(jstr(o, "step"), "batch-close");
	ck_assert_str_eq(jstr(o, "result"), "ok");
	ck_assert_str_eq(jstr(json_object_get(o, "details"), "batch"), "batch-000001.jsonl");
	ck_assert_str_eq(jstr(json_object_get(o, "details"), "reason"), "count");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(o, "details"), "devices")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(o, "details"), "records")), 4);
	json_decref(o);

	/* The next batch chains to the last record of the previous one. */
	ck_assert_uint_eq(atu_append(j, "SE-C", "identify", "ok"), 5);
	o = load_line(dir, "batch-000002.jsonl", 1);
	line_hash(dir, "batch-000001.jsonl", 4, h);
	ck_assert_str_eq(jstr(o, "prev"), h);
	json_decref(o);

	/* On demand: closes batch 2 with one record and seals it. */
	ck_assert_msg(audit_seal_now(j, &err) == 0, "%s", err.msg);
	audit_get_status(j, &st);
	ck_assert_uint_eq(st.batch, 3);
	ck_assert(atu_exists(dir, "batch-000002.jsonl.p7s"));
	o = load_line(dir, "batch-000002.jsonl", 2);
	ck_assert_str_eq(jstr(json_object_get(o, "details"), "reason"), "on-demand");
	json_decref(o);
	/* Nothing open: sealing again changes nothing. */
	ck_assert_msg(audit_seal_now(j, &err) == 0, "%s", err.msg);
	ck_assert(!atu_exists(dir, "batch-000003.jsonl"));
	atu_append(j, "SE-D", "identify", "ok");
	audit_close(j);

	ck_assert_msg(audit_verify(dir, trust, &rep, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(rep->batches, 3);
	ck_assert_uint_eq(rep->sealed, 2);
	ck_assert_uint_eq(rep->records, 7);
	ck_assert_ptr_nonnull(strstr(rep->signer, "Test seal"));
	ck_assert_uint_eq(rep->n_notes, 1); /* batch 3 is open */
	ck_assert_ptr_nonnull(strstr(rep->notes[0], "batch-000003.jsonl: open batch (1 records)"));
	audit_report_free(rep);

	/* The seals are plain CMS: stock openssl accepts them... */
	ck_assert_int_eq(stock_openssl_verify(dir, "batch-000001.jsonl", "batch-000001.jsonl.p7s"), 0);
	ck_assert_int_eq(stock_openssl_verify(dir, "batch-000002.jsonl", "batch-000002.jsonl.p7s"), 0);
	/* ...and refuse other bytes. */
	buf = atu_read(dir, "batch-000001.jsonl", &len);
	buf[len / 2] ^= 0x01;
	atu_write(tmp, "altered.jsonl", buf, len);
	free(buf);
	{
		char *cmd = NULL;

		ck_assert_int_ne(asprintf(&cmd, "cp '%s/batch-000001.jsonl.p7s' '%s/altered.jsonl.p7s'", dir, tmp), -1);
		ck_assert_int_eq(tu_sh(cmd, NULL), 0);
		free(cmd);
	}
	ck_assert_int_ne(stock_openssl_verify(tmp, "altered.jsonl", "altered.jsonl.p7s"), 0);

	X509_STORE_free(trust);
	atu_signer_clear(&sg);
	tu_rmtree(tmp);
	free(tmp);
	free(dir);
}
END_TEST

START_TEST(test_seal_needs_signer)
{
	char *tmp, *dir = journal_dir(&tmp);
	audit_config cfg = base_cfg(1);
	audit_journal *j = open_ok(dir, &cfg);
	audit_status st;
	st_err err;

	atu_append(j, "SE-A", "done", "ok");
	audit_get_status(j, &st);
	ck_assert_uint_eq(st.batch, 2);
	ck_assert_uint_eq(st.unsealed, 1); /* closed, no signer */
	ck_assert_int_eq(audit_seal_now(j, &err), -1);
	ck_assert_int_eq(err.code, ST_E_CONFIG);
	audit_close(j);
	tu_rmtree(tmp);
	free(tmp);
	free(dir);
}
END_TEST

START_TEST(test_seal_failure_recorded)
{
	char *tmp, *dir = journal_dir(&tmp);
	audit_config cfg = base_cfg(1);
	atu_signer good, other;
	audit_signer wrong;
	audit_journal *j;
	audit_status st;
	X509_STORE *trust = atu_trust(atu_pki);
	json_t *o;
	st_err err;

	atu_signer_load(&good, atu_pki, "seal");
	atu_signer_load(&other, atu_pki, "other");
	wrong = good.s;
	wrong.key = other.key; /* key and certificate do not match: CMS signing fails */
	cfg.signer = &wrong;
	j = open_ok(dir, &cfg);
	ck_assert_uint_eq(atu_append(j, "SE-A", "done", "ok"), 1); /* the append itself succeeds */
	audit_get_status(j, &st);
	ck_assert_uint_eq(st.unsealed, 1);
	ck_assert(!atu_exists(dir, "batch-000001.jsonl.p7s"));
	o = load_line(dir, "batch-000002.jsonl", 1);
	ck_assert_str_eq(jstr(o, "step"), "seal-failed");
	ck_assert_str_eq(jstr(json_object_get(o, "details"), "batch"), "batch-000001.jsonl");
	json_decref(o);
	audit_close(j);

	/* The next open with a working signer seals what was left. */
	cfg.signer = &good.s;
	j = open_ok(dir, &cfg);
	audit_get_status(j, &st);
	ck_assert_uint_eq(st.unsealed, 0);
	audit_close(j);
	ck_assert(atu_exists(dir, "batch-000001.jsonl.p7s"));
	ck_assert_msg(audit_verify(dir, trust, NULL, &err) == 0, "%s", err.msg);

	X509_STORE_free(trust);
	atu_signer_clear(&good);
	atu_signer_clear(&other);
	tu_rmtree(tmp);
	free(tmp);
	free(dir);
}
END_TEST

START_TEST(test_close_pending_at_open)
{
	char *tmp, *dir = journal_dir(&tmp);
	audit_config cfg = base_cfg(0);
	audit_journal *j = open_ok(dir, &cfg);
	audit_status st;
	json_t *o;

	/* A crash after a batch's last device, before its batch-close record,
	 * looks like this; the next open with N = 2 closes the batch. */
	atu_append(j, "SE-A", "done", "ok");
	atu_append(j, "SE-B", "lock", "fail");
	audit_close(j);
	cfg.batch_devices = 2;
	j = open_ok(dir, &cfg);
	audit_get_status(j, &st);
	ck_assert_uint_eq(st.batch, 2);
	ck_assert_uint_eq(st.unsealed, 1);
	audit_close(j);
	o = load_line(dir, "batch-000001.jsonl", 3);
	ck_assert_str_eq(jstr(o, "step"), "batch-close");
	json_decref(o);
	tu_rmtree(tmp);
	free(tmp);
	free(dir);
}
END_TEST

START_TEST(test_inherit_head)
{
	char *tmp, *dir = journal_dir(&tmp);
	audit_config cfg = base_cfg(0), bare = { 0 };
	audit_journal *j;
	json_t *o;
	st_err err;

	ck_assert_ptr_null(audit_open(dir, &bare, &err));
	ck_assert_int_eq(err.code, ST_E_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.msg, "no station id"));
	cfg.engineering = 1;
	j = open_ok(dir, &cfg);
	atu_append(j, "SE-A", "identify", "ok");
	audit_close(j);
	j = open_ok(dir, &bare);
	atu_append(j, "SE-A", "keygen", "ok");
	audit_close(j);
	o = load_line(dir, "batch-000001.jsonl", 2);
	ck_assert_str_eq(jstr(o, "station"), "station-01");
	ck_assert_str_eq(jstr(o, "operator"), "alice");
	ck_assert_str_eq(jstr(o, "recipe"), RECIPE_DIGEST);
	ck_assert(json_is_true(json_object_get(o, "engineering")));
	json_decref(o);

	cfg.recipe = "NOT-HEX";
	ck_assert_ptr_null(audit_open(dir, &cfg, &err));
	ck_assert_int_eq(err.code, ST_E_CONFIG);
	tu_rmtree(tmp);
	free(tmp);
	free(dir);
}
END_TEST

START_TEST(test_lock)
{
	char *tmp, *dir = journal_dir(&tmp);
	audit_config cfg = base_cfg(0);
	audit_journal *j = open_ok(dir, &cfg), *k;
	st_err err;

	ck_assert_ptr_null(audit_open(dir, &cfg, &err));
	ck_assert_int_eq(err.code, ST_E_STATE);
	{
		char holder[64]; /* the lock file names the process that holds it */

		snprintf(holder, sizeof(holder), "in use by station process %ld ", (long)getpid());
		ck_assert_msg(strstr(err.msg, holder) != NULL, "%s", err.msg);
	}
	audit_close(j);
	k = open_ok(dir, &cfg);
	audit_close(k);
	tu_rmtree(tmp);
	free(tmp);
	free(dir);
}
END_TEST

/* A writer killed between creating its temporary and the rename leaves
 * NAME.tmp.PID: the next open removes those of processes that are gone,
 * and nothing else. */
START_TEST(test_stale_temporaries)
{
	char *tmp, *dir = journal_dir(&tmp);
	audit_config cfg = base_cfg(0);
	char dead[64], ours[64], alive[64], path[4300];
	static const char *const kept_names[] = { "x.tmp.12ab", "x.tmp.0", "x.tmp.", "batch-000001.jsonl.tmp.-5" };
	pid_t child;
	size_t i;

	audit_close(open_ok(dir, &cfg));
	/* A PID that was and is no more. */
	if ((child = fork()) == 0)
		_exit(0);
	ck_assert_int_gt(child, 0);
	ck_assert_int_eq(waitpid(child, NULL, 0), child);
	snprintf(dead, sizeof(dead), "batch-000001.cms.tmp.%ld", (long)child);
	snprintf(ours, sizeof(ours), "batch-000001.cms.tmp.%ld", (long)getpid());
	snprintf(alive, sizeof(alive), "batch-000001.cms.tmp.%ld", (long)getppid());
	atu_write(dir, dead, "x", 1);
	atu_write(dir, ours, "x", 1);
	atu_write(dir, alive, "x", 1);
	for (i = 0; i < sizeof(kept_names) / sizeof(kept_names[0]); i++)
		atu_write(dir, kept_names[i], "x", 1);
	snprintf(path, sizeof(path), "%s/dir.tmp.%ld", dir, (long)child);
	ck_assert_int_eq(mkdir(path, 0755), 0);

	audit_close(open_ok(dir, &cfg));
	snprintf(path, sizeof(path), "%s/%s", dir, dead);
	ck_assert_msg(access(path, F_OK) != 0, "%s was not removed", dead);
	snprintf(path, sizeof(path), "%s/%s", dir, ours);
	ck_assert_msg(access(path, F_OK) == 0, "%s (this process) was removed", ours);
	snprintf(path, sizeof(path), "%s/%s", dir, alive);
	ck_assert_msg(access(path, F_OK) == 0, "%s (a live process) was removed", alive);
	for (i = 0; i < sizeof(kept_names) / sizeof(kept_names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, kept_names[i]);
		ck_assert_msg(access(path, F_OK) == 0, "%s was removed", kept_names[i]);
	}
	snprintf(path, sizeof(path), "%s/dir.tmp.%ld", dir, (long)child);
	ck_assert_msg(access(path, F_OK) == 0, "a folder was removed");
	tu_rmtree(tmp);
	free(tmp);
	free(dir);
}
END_TEST

/* ---- crash recovery --------------------------------------------------------- */

/* A record that parses but does not chain: line 3 with its seq bumped. */
static char *
unchained_record(const char *dir, size_t *len)
{
	json_t *o = load_line(dir, "batch-000001.jsonl", 3);
	char *s;

	json_object_set_new(o, "seq", json_integer(4));
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	*len = strlen(s) + 1;
	s = realloc(s, *len + 1);
	s[*len - 1] = '\n';
	s[*len] = '\0';
	return s;
}

START_TEST(test_torn_tail)
{
	static const char *const kinds[] = { "partial line", "bad JSON", "broken chain", "zeros" };
	char *tmp, *dir = journal_dir(&tmp);
	audit_config cfg = base_cfg(0);
	audit_journal *j;
	audit_status st;
	char *garbage = NULL, *before, *after, *q;
	size_t glen = 0, blen, alen, qlen, size0;
	json_t *o;
	st_err err;
	int kind = _i;

	j = open_ok(dir, &cfg);
	atu_append(j, "SE-A", "identify", "ok");
	atu_append(j, "SE-A", "issuing", "ok");
	atu_append(j, "SE-A", "issued", "ok");
	audit_close(j);
	before = atu_read(dir, "batch-000001.jsonl", &blen);
	size0 = blen;
	switch (kind) {
	case 0:
		garbage = strdup("{\"v\":1,\"seq\":4,\"time\":\"2026-");
		glen = strlen(garbage);
		break;
	case 1:
		garbage = strdup("this is not json\n");
		glen = strlen(garbage);
		break;
	case 2:
		garbage = unchained_record(dir, &glen);
		break;
	case 3:
		glen = 700;
		garbage = calloc(1, glen);
		break;
	}
	atu_append_bytes(dir, "batch-000001.jsonl", garbage, glen);

	j = open_ok(dir, &cfg);
	audit_get_status(j, &st);
	ck_assert_msg(st.recovered == 1, "%s: not recovered", kinds[kind]);
	ck_assert_uint_eq(st.recovered_offset, size0);
	ck_assert_uint_eq(st.recovered_bytes, glen);
	ck_assert_str_eq(st.recovered_batch, "batch-000001.jsonl");
	ck_assert_msg(strncmp(st.quarantine, "batch-000001.jsonl.quarantine-", 30) == 0, "%s", st.quarantine);
	ck_assert_uint_eq(strtoull(st.quarantine + 30, NULL, 10), size0);
	ck_assert_uint_eq(st.last_seq, 4); /* the journal-recovered record */
	audit_close(j);

	/* Quarantined byte for byte, the good records untouched, the event recorded. */
	q = atu_read(dir, st.quarantine, &qlen);
	ck_assert_uint_eq(qlen, glen);
	ck_assert(memcmp(q, garbage, glen) == 0);
	after = atu_read(dir, "batch-000001.jsonl", &alen);
	ck_assert_uint_gt(alen, size0);
	ck_assert(memcmp(after, before, size0) == 0);
	o = load_line(dir, "batch-000001.jsonl", 4);
	ck_assert_str_eq(jstr(o, "step"), "journal-recovered");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(o, "details"), "offset")), (json_int_t)size0);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(o, "details"), "bytes")), (json_int_t)glen);
	ck_assert_str_eq(jstr(json_object_get(o, "details"), "quarantine"), st.quarantine);
	json_decref(o);
	ck_assert_msg(audit_verify(dir, NULL, NULL, &err) == 0, "%s", err.msg);

	/* Nothing more to recover the next time. */
	j = open_ok(dir, &cfg);
	audit_get_status(j, &st);
	ck_assert_int_eq(st.recovered, 0);
	ck_assert_uint_eq(st.last_seq, 4);
	audit_close(j);

	free(q);
	free(before);
	free(after);
	free(garbage);
	tu_rmtree(tmp);
	free(tmp);
	free(dir);
}
END_TEST

START_TEST(test_middle_corruption)
{
	char *tmp, *dir = journal_dir(&tmp);
	audit_config cfg = base_cfg(0);
	audit_journal *j = open_ok(dir, &cfg);
	char *buf, *now, *p;
	size_t len, nlen, off;
	unsigned i;
	st_err err;

	for (i = 0; i < 5; i++)
		atu_append(j, "SE-0000", "identify", "ok");
	audit_close(j);

	/* One byte changed inside line 2: it still parses, line 3 no longer chains. */
	buf = atu_read(dir, "batch-000001.jsonl", &len);
	off = atu_line_offset(buf, len, 2);
	p = strstr(buf + off, "SE-0000");
	ck_assert_ptr_nonnull(p);
	p[3] = '9';
	atu_write(dir, "batch-000001.jsonl", buf, len);
	ck_assert_ptr_null(audit_open(dir, &cfg, &err));
	ck_assert_int_eq(err.code, ST_E_VERIFY);
	ck_assert_msg(strstr(err.msg, "batch-000001.jsonl:2: seq 2: does not match the hash line 3 chains to: line 2 was changed") != NULL,
	    "%s", err.msg);
	now = atu_read(dir, "batch-000001.jsonl", &nlen);
	ck_assert_uint_eq(nlen, len);
	ck_assert(memcmp(now, buf, len) == 0); /* nothing was changed */
	free(now);

	/* Line 2 replaced by garbage of the same length: not a valid record. */
	memset(buf + off, '#', (size_t)(strchr(buf + off, '\n') - (buf + off)));
	atu_write(dir, "batch-000001.jsonl", buf, len);
	ck_assert_ptr_null(audit_open(dir, &cfg, &err));
	ck_assert_msg(strstr(err.msg, "batch-000001.jsonl:2: expected seq 2: not a valid record") != NULL, "%s", err.msg);
	ck_assert_int_eq(audit_scan(dir, NULL, NULL, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "batch-000001.jsonl:2: expected seq 2"));

	free(buf);
	tu_rmtree(tmp);
	free(tmp);
	free(dir);
}
END_TEST

START_TEST(test_orphan_quarantine)
{
	char *tmp, *dir = journal_dir(&tmp);
	audit_config cfg = base_cfg(0);
	audit_journal *j = open_ok(dir, &cfg);
	audit_status st;
	json_t *o;

	atu_append(j, "SE-A", "identify", "ok");
	atu_append(j, "SE-A", "issuing", "ok");
	audit_close(j);
	/* A recovery that moved the tail and crashed before recording it. */
	atu_write(dir, "batch-000001.jsonl.quarantine-999", "junk", 4);
	j = open_ok(dir, &cfg);
	audit_get_status(j, &st);
	ck_assert_uint_eq(st.last_seq, 3);
	audit_close(j);
	o = load_line(dir, "batch-000001.jsonl", 3);
	ck_assert_str_eq(jstr(o, "step"), "journal-recovered");
	ck_assert_str_eq(jstr(json_object_get(o, "details"), "quarantine"), "batch-000001.jsonl.quarantine-999");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(o, "details"), "offset")), 999);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(o, "details"), "bytes")), 4);
	json_decref(o);
	/* Recorded once. */
	j = open_ok(dir, &cfg);
	audit_get_status(j, &st);
	ck_assert_uint_eq(st.last_seq, 3);
	audit_close(j);
	tu_rmtree(tmp);
	free(tmp);
	free(dir);
}
END_TEST

/* ---- group commit ------------------------------------------------------------- */

#define THREADS 8
#define PER_THREAD 160
#define BATCH_DEVICES 25
#define CLOSES (THREADS * (PER_THREAD / 4) / BATCH_DEVICES)

struct worker {
	audit_journal *j;
	int t;
	int failed;
	char msg[ST_ERR_MSG_MAX];
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	int i;

	for (i = 0; i < PER_THREAD && !w->failed; i++) {
		char dev[32];
		json_t *d = json_pack("{s:i, s:i}", "t", w->t, "i", i);
		/* Every 4th record ends a device, so batches close under load. */
		audit_event ev = { "tcp:127.0.0.1:7000", dev, i % 4 == 3 ? "done" : "issued", "ok", d, 0 };
		st_err err;

		snprintf(dev, sizeof(dev), "SE-%d-%d", w->t, i / 4);
		if (audit_append(w->j, &ev, NULL, &err) < 0) {
			w->failed = 1;
			snprintf(w->msg, sizeof(w->msg), "%s", err.msg);
		}
		json_decref(d);
	}
	return NULL;
}

struct seen {
	unsigned char got[THREADS][PER_THREAD];
	uint64_t records, last_seq;
};

static int
mark_seen(const audit_record *rec, void *ctx)
{
	struct seen *s = ctx;
	json_t *t = json_object_get(rec->details, "t"), *i = json_object_get(rec->details, "i");

	ck_assert_uint_eq(rec->seq, s->last_seq + 1);
	s->last_seq = rec->seq;
	s->records++;
	if (t && i)
		s->got[json_integer_value(t)][json_integer_value(i)]++;
	return 0;
}

/* Lazy records are written at once but wait for the next durable one (or
 * close) to reach the disk; terminal records are never lazy. */
START_TEST(test_lazy_records)
{
	char *tmp, *dir = journal_dir(&tmp);
	audit_config cfg = base_cfg(0);
	audit_event ev = { "tcp:127.0.0.1:7000", "SE0001", "identify", "ok", NULL, 1 };
	audit_journal *j = open_ok(dir, &cfg);
	audit_status before, after;
	st_err err;
	int i;

	audit_get_status(j, &before);
	for (i = 0; i < 5; i++)
		ck_assert_msg(audit_append(j, &ev, NULL, &err) == 0, "%s", err.msg);
	audit_get_status(j, &after);
	ck_assert_uint_eq(after.appends - before.appends, 5);
	ck_assert_uint_le(after.syncs - before.syncs, 1); /* at most the new batch file's first sync */
	before = after;
	ev.step = "done";
	ev.result = "pass"; /* terminal: durable although marked lazy */
	ck_assert_msg(audit_append(j, &ev, NULL, &err) == 0, "%s", err.msg);
	audit_get_status(j, &after);
	ck_assert_uint_eq(after.syncs - before.syncs, 1);
	ev.step = "keygen";
	ev.result = "ok";
	ck_assert_msg(audit_append(j, &ev, NULL, &err) == 0, "%s", err.msg);
	audit_close(j);
	ck_assert_uint_eq(atu_lines(dir, "batch-000001.jsonl"), 7);
	ck_assert_int_eq(audit_verify(dir, NULL, NULL, &err), 0);
	tu_rmtree(tmp);
	free(tmp);
	free(dir);
}
END_TEST

START_TEST(test_threads_group_commit)
{
	char *tmp, *dir = journal_dir(&tmp);
	audit_config cfg = base_cfg(BATCH_DEVICES);
	atu_signer sg;
	audit_journal *j;
	pthread_t th[THREADS];
	struct worker w[THREADS];
	struct seen *s = calloc(1, sizeof(*s));
	audit_status st;
	audit_report *rep = NULL;
	X509_STORE *trust = atu_trust(atu_pki);
	st_err err;
	int t, i;

	atu_signer_load(&sg, atu_pki, "seal");
	cfg.signer = &sg.s;
	j = open_ok(dir, &cfg);
	for (t = 0; t < THREADS; t++) {
		w[t] = (struct worker){ .j = j, .t = t };
		ck_assert_int_eq(pthread_create(&th[t], NULL, worker_main, &w[t]), 0);
	}
	for (t = 0; t < THREADS; t++) {
		pthread_join(th[t], NULL);
		ck_assert_msg(!w[t].failed, "thread %d: %s", t, w[t].msg);
	}
	audit_get_status(j, &st);
	audit_close(j);

	ck_assert_msg(audit_scan(dir, mark_seen, s, &err) == 0, "%s", err.msg);
	for (t = 0; t < THREADS; t++)
		for (i = 0; i < PER_THREAD; i++)
			ck_assert_msg(s->got[t][i] == 1, "thread %d record %d seen %d times", t, i, s->got[t][i]);
	/* Every 4th record ends a device; every BATCH_DEVICES devices a batch-close. */
	ck_assert_uint_eq(s->records, THREADS * PER_THREAD + CLOSES);
	ck_assert_uint_eq(st.appends, s->records);
	ck_assert_uint_eq(st.batch, CLOSES + 1);
	ck_assert_uint_eq(st.unsealed, 0);
	ck_assert_msg(st.syncs < st.appends, "group commit: %llu fdatasyncs for %llu records",
	    (unsigned long long)st.syncs, (unsigned long long)st.appends);
	ck_assert_msg(audit_verify(dir, trust, &rep, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(rep->sealed, CLOSES);
	audit_report_free(rep);

	X509_STORE_free(trust);
	atu_signer_clear(&sg);
	free(s);
	tu_rmtree(tmp);
	free(tmp);
	free(dir);
}
END_TEST

/* Where a record's details are in its line: the top-level member only,
 * whatever the other members' strings hold or in which order they come. */
START_TEST(test_details_span)
{
	static const struct {
		const char *line, *want; /* want NULL: not found (the name is escaped) */
	} cases[] = {
		{ "{\"v\":1,\"step\":\"x\",\"details\":{\"a\":1},\"prev\":\"00\"}", "{\"a\":1}" },
		{ "{\"details\":{},\"v\":1}", "{}" },
		{ "{\"operator\":\"o \\\",\\\"details\\\":{\\\"x\\\":2} \\\\\",\"details\":{\"y\":[1,{\"z\":\"}\"}]}}",
		    "{\"y\":[1,{\"z\":\"}\"}]}" },
		{ "{\"v\":1,\"x\":{\"details\":{\"inner\":1}},\"details\":{\"outer\":true}}", "{\"outer\":true}" },
		{ " { \"v\" : 1 , \"details\" : { \"a\" : null } , \"prev\" : \"00\" } ", "{ \"a\" : null }" },
		{ "{\"v\":-1.5e3,\"jig\":null,\"details\":{\"k\":\"\\u00e9\\\\\"}}", "{\"k\":\"\\u00e9\\\\\"}" },
		{ "{\"v\":1,\"d\\u0065tails\":{\"a\":1}}", NULL },
	};
	size_t i, n;
	const char *p;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		audit_record rec;

		memset(&rec, 0, sizeof(rec));
		rec.text = cases[i].line;
		rec.text_len = strlen(cases[i].line);
		if (!cases[i].want) {
			ck_assert_int_eq(audit_record_details_span(&rec, &p, &n), -1);
			continue;
		}
		ck_assert_msg(audit_record_details_span(&rec, &p, &n) == 0, "case %zu: not found", i);
		ck_assert_msg(n == strlen(cases[i].want) && memcmp(p, cases[i].want, n) == 0, "case %zu: %.*s", i, (int)n, p);
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("audit-journal");
	TCase *tc = tcase_create("journal");

	tcase_add_unchecked_fixture(tc, atu_pki_setup, atu_pki_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_records);
	tcase_add_test(tc, test_bad_events);
	tcase_add_test(tc, test_batches_and_seals);
	tcase_add_test(tc, test_seal_needs_signer);
	tcase_add_test(tc, test_seal_failure_recorded);
	tcase_add_test(tc, test_close_pending_at_open);
	tcase_add_test(tc, test_inherit_head);
	tcase_add_test(tc, test_lock);
	tcase_add_test(tc, test_stale_temporaries);
	tcase_add_loop_test(tc, test_torn_tail, 0, 4);
	tcase_add_test(tc, test_middle_corruption);
	tcase_add_test(tc, test_orphan_quarantine);
	tcase_add_test(tc, test_lazy_records);
	tcase_add_test(tc, test_threads_group_commit);
	tcase_add_test(tc, test_details_span);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
