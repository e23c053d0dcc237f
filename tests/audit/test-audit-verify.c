/* Verification and export: the committed golden bundle verifies; forged
 * copies made here do not, each with the first broken record named; export
 * writes a bundle that verifies and leaves the journal as it was. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "audit-tu.h"
#include "cms.h"

static X509_STORE *
golden_trust(void)
{
	char *path = tu_src("tests/audit/golden-root-ca.pem");
	X509_STORE *s;
	st_err err;

	s = st_x509_store_load(path, &err);
	ck_assert_msg(s != NULL, "%s", err.msg);
	free(path);
	return s;
}

/* ---- a batch file as lines -------------------------------------------------- */

struct lines {
	char **v;
	size_t n;
};

static void
lines_read(struct lines *l, const char *dir, const char *name)
{
	size_t len = 0, off = 0;
	char *buf = atu_read(dir, name, &len);

	memset(l, 0, sizeof(*l));
	while (off < len) {
		char *nl = memchr(buf + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - buf) - off + 1 : len - off;

		l->v = realloc(l->v, (l->n + 1) * sizeof(*l->v));
		l->v[l->n] = strndup(buf + off, n);
		l->n++;
		off += n;
	}
	free(buf);
}

static void
lines_write(const struct lines *l, const char *dir, const char *name)
{
	size_t i;

	atu_write(dir, name, "", 0);
	for (i = 0; i < l->n; i++)
		atu_append_bytes(dir, name, l->v[i], strlen(l->v[i]));
}

static void
lines_free(struct lines *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

/* The seq of line i (0-based). */
static unsigned long long
seq_of(const struct lines *l, size_t i)
{
	json_t *o = json_loads(l->v[i], 0, NULL);
	unsigned long long s;

	ck_assert_ptr_nonnull(o);
	s = (unsigned long long)json_integer_value(json_object_get(o, "seq"));
	json_decref(o);
	return s;
}

static char *
golden_copy(const char *tmp)
{
	char *golden = tu_src("tests/audit/golden");
	char *copy = tu_path(tmp, "bundle");

	atu_copy_dir(golden, copy);
	free(golden);
	return copy;
}

/* Verify and return the report (ck_assert that it failed). */
static audit_report *
verify_fails(const char *dir, X509_STORE *trust)
{
	audit_report *rep = NULL;
	st_err err;

	ck_assert_int_eq(audit_verify(dir, trust, &rep, &err), -1);
	ck_assert_int_eq(err.code, ST_E_VERIFY);
	ck_assert_ptr_nonnull(rep);
	ck_assert_uint_gt(rep->n_problems, 0);
	return rep;
}

/* `station audit verify DIR --ca golden-root-ca.pem`: exit status, output in *out. */
static int
cli_verify(const char *dir, char **out)
{
	char *root = tu_src("tests/audit/golden-root-ca.pem");
	char *argv[] = { (char *)tu_station_exe(), (char *)"audit", (char *)"verify", (char *)dir, (char *)"--ca", root, NULL };
	int rc;

	ck_assert_ptr_nonnull(argv[0]);
	rc = tu_run(argv, out);
	free(root);
	return rc;
}

static int
has_problem(const audit_report *rep, const char *text)
{
	size_t i;

	for (i = 0; i < rep->n_problems; i++)
		if (strstr(rep->problems[i], text))
			return 1;
	return 0;
}

/* ---- the golden bundle -------------------------------------------------------- */

START_TEST(test_golden_verifies)
{
	char *golden = tu_src("tests/audit/golden");
	X509_STORE *trust = golden_trust();
	audit_report *rep = NULL;
	st_err err;

	ck_assert_msg(audit_verify(golden, trust, &rep, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(rep->bundle, 1);
	ck_assert_uint_eq(rep->batches, 3);
	ck_assert_uint_eq(rep->sealed, 3);
	ck_assert_uint_eq(rep->first_seq, 1);
	ck_assert_uint_eq(rep->last_seq, rep->records);
	ck_assert_ptr_null(rep->first_broken);
	ck_assert_uint_eq(rep->n_problems, 0);
	ck_assert_ptr_nonnull(strstr(rep->signer, "Audit Seal"));
	audit_report_free(rep);
	{
		char *out = NULL;

		ck_assert_int_eq(cli_verify(golden, &out), 0);
		ck_assert_ptr_nonnull(strstr(out, ": OK: bundle and manifest, 3 batches"));
		free(out);
	}

	/* Each batch also holds on its own. */
	{
		size_t len = 0;
		char *buf = atu_read(golden, "batch-000002.jsonl", &len);

		ck_assert_msg(audit_verify_buffer("batch-000002.jsonl", buf, len, &rep, &err) == 0, "%s", err.msg);
		ck_assert_uint_gt(rep->records, 10);
		audit_report_free(rep);
		free(buf);
	}
	/* Not against another root. */
	{
		char path[1024];
		X509_STORE *other;

		snprintf(path, sizeof(path), "%s/root-ca.pem", atu_pki);
		other = st_x509_store_load(path, &err);
		rep = verify_fails(golden, other);
		ck_assert_ptr_null(rep->first_broken); /* the records hold, the seals do not */
		ck_assert(has_problem(rep, "batch-000001.jsonl.p7s: seal does not verify"));
		audit_report_free(rep);
		X509_STORE_free(other);
	}
	X509_STORE_free(trust);
	free(golden);
}
END_TEST

/* One forgery per loop index; the expected first problem is computed from
 * the golden files themselves. */
enum { F_BYTE, F_DELETE, F_SWAP, F_DROP_BATCH, F_OTHER_SEAL, F_TRUNCATE, F_TRUNCATE_MIDLINE, F_COUNT };

static void
refresh_manifest(const char *dir)
{
	/* An attacker can rewrite the manifest to match the files (and then its
	 * seal fails). */
	size_t len = 0;
	char *text = atu_read(dir, "manifest.json", &len);
	json_t *m = json_loads(text, 0, NULL), *e;
	size_t i;

	ck_assert_ptr_nonnull(m);
	json_array_foreach(json_object_get(m, "batches"), i, e) {
		const char *keys[2][2] = { { "file", "sha256" }, { "seal", "seal_sha256" } };
		int k;

		for (k = 0; k < 2; k++) {
			size_t flen = 0;
			char *f = atu_read(dir, json_string_value(json_object_get(e, keys[k][0])), &flen);
			uint8_t h[32];
			char hex[65];

			st_sha256(f, flen, h);
			st_hex(h, 32, hex);
			json_object_set_new(e, keys[k][1], json_string(hex));
			free(f);
		}
	}
	free(text);
	text = json_dumps(m, JSON_INDENT(2));
	atu_write(dir, "manifest.json", text, strlen(text));
	free(text);
	json_decref(m);
}

START_TEST(test_forgeries)
{
	char *tmp = tu_tmpdir("audit-forge");
	char *dir = golden_copy(tmp);
	X509_STORE *trust = golden_trust();
	audit_report *rep;
	struct lines l;
	char expect[512];
	int f = _i;

	lines_read(&l, dir, "batch-000002.jsonl");
	ck_assert_uint_gt(l.n, 8);
	switch (f) {
	case F_BYTE: {
		/* One byte of the device serial in line 5: still valid JSON. */
		char *p = strstr(l.v[4], "SE-0A1B2C");

		ck_assert_ptr_nonnull(p);
		p[3] = 'F';
		lines_write(&l, dir, "batch-000002.jsonl");
		/* The edited record is named, not the next one. */
		snprintf(expect, sizeof(expect), "batch-000002.jsonl:5: seq %llu: does not match the hash line 6 chains to: "
		    "line 5 was changed, or line 6's prev link is wrong", seq_of(&l, 4));
		break;
	}
	case F_DELETE:
		snprintf(expect, sizeof(expect),
		    "batch-000002.jsonl:5: seq %llu: expected seq %llu: a record is missing, duplicated or out of order",
		    seq_of(&l, 5), seq_of(&l, 4));
		free(l.v[4]);
		memmove(&l.v[4], &l.v[5], (l.n - 5) * sizeof(*l.v));
		l.n--;
		lines_write(&l, dir, "batch-000002.jsonl");
		break;
	case F_SWAP: {
		char *t = l.v[4];

		snprintf(expect, sizeof(expect),
		    "batch-000002.jsonl:5: seq %llu: expected seq %llu: a record is missing, duplicated or out of order",
		    seq_of(&l, 5), seq_of(&l, 4));
		l.v[4] = l.v[5];
		l.v[5] = t;
		lines_write(&l, dir, "batch-000002.jsonl");
		break;
	}
	case F_DROP_BATCH: {
		struct lines l3;
		char *p;

		lines_read(&l3, dir, "batch-000003.jsonl");
		snprintf(expect, sizeof(expect),
		    "batch-000003.jsonl:1: seq %llu: batch-000002.jsonl is missing (batch numbers jump from 1 to 3)",
		    seq_of(&l3, 0));
		lines_free(&l3);
		p = tu_path(dir, "batch-000002.jsonl");
		ck_assert_int_eq(unlink(p), 0);
		free(p);
		p = tu_path(dir, "batch-000002.jsonl.p7s");
		ck_assert_int_eq(unlink(p), 0);
		free(p);
		break;
	}
	case F_OTHER_SEAL: {
		/* Resealed with a key the root never certified, manifest rewritten. */
		atu_signer sg;
		uint8_t *der = NULL;
		size_t der_len = 0, len = 0;
		char *buf = atu_read(dir, "batch-000002.jsonl", &len);
		st_err err;

		atu_signer_load(&sg, atu_pki, "other");
		ck_assert_int_eq(st_cms_sign(sg.key, sg.cert, NULL, buf, len, &der, &der_len, &err), 0);
		atu_write(dir, "batch-000002.jsonl.p7s", der, der_len);
		refresh_manifest(dir);
		snprintf(expect, sizeof(expect), "batch-000002.jsonl.p7s: seal does not verify");
		free(der);
		free(buf);
		atu_signer_clear(&sg);
		break;
	}
	case F_TRUNCATE:
	case F_TRUNCATE_MIDLINE: {
		struct lines l3;
		size_t keep, all;

		lines_read(&l3, dir, "batch-000003.jsonl");
		all = l3.n;
		keep = l3.n - 2;
		if (f == F_TRUNCATE) {
			/* The last two records gone, on a line boundary. */
			snprintf(expect, sizeof(expect),
			    "batch-000003.jsonl:%zu: seq %llu: batch ends without its batch-close record (truncated?)", keep,
			    seq_of(&l3, keep - 1));
			l3.n = keep;
		} else {
			/* Cut in the middle of the second-to-last record. */
			size_t off = 0, i;

			for (i = 0; i < keep; i++)
				off += strlen(l3.v[i]);
			snprintf(expect, sizeof(expect),
			    "batch-000003.jsonl:%zu: expected seq %llu: partial record at byte offset %zu (40 bytes, no newline): "
			    "torn or truncated",
			    keep + 1, seq_of(&l3, keep), off);
			l3.v[keep][40] = '\0';
			l3.n = keep + 1;
		}
		lines_write(&l3, dir, "batch-000003.jsonl");
		l3.n = all;
		lines_free(&l3);
		break;
	}
	}

	rep = verify_fails(dir, trust);
	if (f == F_OTHER_SEAL) {
		ck_assert_ptr_null(rep->first_broken);
		ck_assert_msg(strncmp(rep->problems[0], expect, strlen(expect)) == 0, "got \"%s\", expected \"%s\"",
		    rep->problems[0], expect);
		/* The manifest was made to match, and so its seal no longer does. */
		ck_assert_uint_eq(rep->n_problems, 2);
		ck_assert(has_problem(rep, "manifest.json.p7s: does not verify over manifest.json"));
	} else {
		ck_assert_msg(rep->first_broken && strcmp(rep->first_broken, expect) == 0, "got \"%s\", expected \"%s\"",
		    rep->first_broken ? rep->first_broken : "(none)", expect);
	}
	/* The seal and the manifest catch the same forgeries on their own. */
	if (f == F_BYTE || f == F_DELETE || f == F_SWAP || f == F_TRUNCATE || f == F_TRUNCATE_MIDLINE) {
		const char *b = f >= F_TRUNCATE ? "batch-000003.jsonl" : "batch-000002.jsonl";
		char seal_msg[128], man_msg[128];

		snprintf(seal_msg, sizeof(seal_msg), "%s.p7s: seal does not verify", b);
		snprintf(man_msg, sizeof(man_msg), "manifest.json: %s: SHA-256 does not match the file", b);
		ck_assert_msg(has_problem(rep, seal_msg), "no \"%s\"", seal_msg);
		ck_assert_msg(has_problem(rep, man_msg), "no \"%s\"", man_msg);
	}
	if (f == F_DROP_BATCH)
		ck_assert(has_problem(rep, "manifest.json: batch-000002.jsonl is listed but missing"));
	audit_report_free(rep);
	/* The same through the command line: exit 1, the first problem first. */
	{
		char *out = NULL, *first;

		ck_assert_int_eq(cli_verify(dir, &out), 1);
		ck_assert_ptr_nonnull(strstr(out, ": FAILED: "));
		first = strchr(out, '\n');
		ck_assert_ptr_nonnull(first);
		ck_assert_msg(strncmp(first + 1, "  ", 2) == 0 && strncmp(first + 3, expect, strlen(expect)) == 0,
		    "expected \"%s\" first in:\n%s", expect, out);
		free(out);
	}

	lines_free(&l);
	X509_STORE_free(trust);
	tu_rmtree(tmp);
	free(tmp);
	free(dir);
}
END_TEST

START_TEST(test_manifest_checks)
{
	char *tmp = tu_tmpdir("audit-manifest");
	char *dir = golden_copy(tmp);
	X509_STORE *trust = golden_trust();
	audit_report *rep;

	/* An extra batch file the manifest does not list, and a changed chain file. */
	atu_write(dir, "batch-000004.jsonl", "", 0);
	atu_append_bytes(dir, "audit-chain.pem", "\n", 1);
	rep = verify_fails(dir, trust);
	ck_assert(has_problem(rep, "manifest.json: does not list batch-000004.jsonl"));
	ck_assert(has_problem(rep, "manifest.json: audit-chain.pem: SHA-256 does not match the file"));
	ck_assert(has_problem(rep, "batch-000004.jsonl: empty batch"));
	audit_report_free(rep);

	/* A manifest that is not one. */
	atu_write(dir, "manifest.json", "[1, 2", 5);
	rep = verify_fails(dir, trust);
	ck_assert(has_problem(rep, "manifest.json:1: not a JSON object"));
	audit_report_free(rep);

	/* A NUL byte after a literal, which jansson would let pass. */
	atu_write(dir, "manifest.json", "{\"a\": true\0}", 12);
	rep = verify_fails(dir, trust);
	ck_assert(has_problem(rep, "manifest.json: a NUL byte at offset 10"));
	audit_report_free(rep);

	/* A FIFO in its place, which nobody writes to: read as empty, not waited on. */
	{
		char *fifo = NULL;

		ck_assert_int_ne(asprintf(&fifo, "%s/manifest.json", dir), -1);
		ck_assert_int_eq(unlink(fifo), 0);
		ck_assert_int_eq(mkfifo(fifo, 0600), 0);
		rep = verify_fails(dir, trust);
		ck_assert(has_problem(rep, "manifest.json:1: not a JSON object"));
		audit_report_free(rep);
		/* A link to a device (a terminal would wait for typing) is no file. */
		ck_assert_int_eq(unlink(fifo), 0);
		ck_assert_int_eq(symlink("/dev/null", fifo), 0);
		rep = verify_fails(dir, trust);
		ck_assert(has_problem(rep, "not a file but a device or socket"));
		audit_report_free(rep);
		free(fifo);
	}

	X509_STORE_free(trust);
	tu_rmtree(tmp);
	free(tmp);
	free(dir);
}
END_TEST

/* Issue 15 item 6: cut the last batch and its seal off a bundle and edit
 * the manifest to match; the manifest's seal no longer verifies.  Without
 * the seal file the bundle is not complete either. */
START_TEST(test_truncated_bundle)
{
	char *tmp = tu_tmpdir("audit-truncated");
	char *dir = golden_copy(tmp), *text, *cmd = NULL, *out = NULL;
	X509_STORE *trust = golden_trust();
	audit_report *rep;
	json_t *m;

	text = atu_read(dir, "manifest.json", NULL);
	ck_assert_ptr_nonnull(m = json_loads(text, 0, NULL));
	free(text);
	ck_assert_int_eq(json_array_remove(json_object_get(m, "batches"), 2), 0);
	ck_assert_ptr_nonnull(text = json_dumps(m, JSON_INDENT(2)));
	json_decref(m);
	atu_write(dir, "manifest.json", text, strlen(text));
	free(text);
	ck_assert_int_ne(asprintf(&cmd, "cd '%s' && rm batch-000003.jsonl batch-000003.jsonl.p7s", dir), -1);
	ck_assert_int_eq(tu_sh(cmd, NULL), 0);
	free(cmd);
	rep = verify_fails(dir, trust);
	ck_assert(has_problem(rep, "manifest.json.p7s: does not verify over manifest.json"));
	audit_report_free(rep);
	/* The station's command says so too, with exit 1. */
	ck_assert_int_eq(cli_verify(dir, &out), 1);
	ck_assert_msg(strstr(out, "manifest.json.p7s: does not verify"), "%s", out);
	free(out);

	ck_assert_int_ne(asprintf(&cmd, "rm '%s/manifest.json.p7s'", dir), -1);
	ck_assert_int_eq(tu_sh(cmd, NULL), 0);
	free(cmd);
	rep = verify_fails(dir, trust);
	ck_assert(has_problem(rep, "manifest.json: not sealed (manifest.json.p7s is missing)"));
	audit_report_free(rep);

	X509_STORE_free(trust);
	tu_rmtree(tmp);
	free(tmp);
	free(dir);
}
END_TEST


/* ---- export ------------------------------------------------------------------ */

static char *
tree_digest(const char *dir)
{
	char *cmd = NULL, *out = NULL;

	ck_assert_int_ne(asprintf(&cmd, "cd '%s' && find . -type f | sort | xargs sha256sum && "
	                                  "find . -printf '%%p %%s %%T@ %%m\\n' | sort",
	                     dir), -1);
	ck_assert_int_eq(tu_sh(cmd, &out), 0);
	free(cmd);
	return out;
}

START_TEST(test_export)
{
	char *tmp = tu_tmpdir("audit-export");
	char *dir = tu_path(tmp, "journal"), *out = tu_path(tmp, "bundle"), *before, *after;
	audit_config cfg = { "station-01", "alice", "00aa", 2, 0, NULL };
	X509_STORE *trust = atu_trust(atu_pki);
	audit_export_info info;
	audit_report *rep = NULL;
	audit_journal *j;
	atu_signer sg;
	json_t *m;
	char *text;
	const char *garbage = "{\"v\":1,\"se";
	st_err err;
	int i;

	atu_signer_load(&sg, atu_pki, "seal");
	cfg.signer = &sg.s;

	/* Nothing sealed yet: nothing to export. */
	j = audit_open(dir, &cfg, &err);
	ck_assert_ptr_nonnull(j);
	atu_append(j, "SE-1", "identify", "ok");
	audit_close(j);
	ck_assert_int_eq(audit_export(dir, out, &sg.s, &info, &err), -1);
	ck_assert_int_eq(err.code, ST_E_STATE);
	ck_assert_ptr_nonnull(strstr(err.msg, "no sealed batch yet"));

	/* A torn tail in batch 1, recovered: its quarantine file goes with it. */
	atu_append_bytes(dir, "batch-000001.jsonl", garbage, strlen(garbage));
	ck_assert_ptr_nonnull(j = audit_open(dir, &cfg, &err));
	for (i = 0; i < 5; i++)
		atu_append(j, i % 2 ? "SE-2" : "SE-3", "done", "ok"); /* 5 devices: batches 1, 2 sealed */
	atu_append(j, "SE-4", "identify", "ok");                   /* batch 3 open */
	audit_close(j);

	before = tree_digest(dir);
	ck_assert_msg(audit_export(dir, out, &sg.s, &info, &err) == 0, "%s", err.msg);
	after = tree_digest(dir);
	ck_assert_str_eq(before, after); /* export never modifies the journal */
	ck_assert_uint_eq(info.batches, 2);
	ck_assert_uint_eq(info.first_seq, 1);
	ck_assert_str_eq(info.open_batch, "batch-000003.jsonl");
	ck_assert_uint_eq(info.open_records, 2);
	ck_assert_uint_eq(info.unsealed, 0);
	ck_assert(atu_exists(out, "batch-000001.jsonl"));
	ck_assert(atu_exists(out, "batch-000002.jsonl.p7s"));
	ck_assert(!atu_exists(out, "batch-000003.jsonl"));
	ck_assert(atu_exists(out, "audit-chain.pem"));
	text = atu_read(out, "manifest.json", NULL);
	ck_assert_ptr_nonnull(strstr(text, "\"not_exported\""));
	ck_assert_ptr_nonnull(strstr(text, "batch-000001.jsonl.quarantine-"));
	m = json_loads(text, 0, NULL);
	ck_assert_int_eq(json_array_size(json_object_get(m, "batches")), 2);
	ck_assert_int_eq(json_array_size(json_object_get(m, "files")), 2); /* quarantine + chain */
	json_decref(m);
	free(text);
	ck_assert_msg(audit_verify(out, trust, &rep, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(rep->bundle, 1);
	ck_assert_uint_eq(rep->sealed, 2);
	audit_report_free(rep);

	/* OUT must be new or empty. */
	ck_assert_int_eq(audit_export(dir, out, &sg.s, &info, &err), -1);
	ck_assert_int_eq(err.code, ST_E_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.msg, "not empty"));

	free(before);
	free(after);
	X509_STORE_free(trust);
	atu_signer_clear(&sg);
	tu_rmtree(tmp);
	free(tmp);
	free(dir);
	free(out);
}
END_TEST

START_TEST(test_export_stops_at_unsealed)
{
	char *tmp = tu_tmpdir("audit-export");
	char *dir = tu_path(tmp, "journal"), *out = tu_path(tmp, "bundle");
	audit_config cfg = { "station-01", "alice", "00aa", 1, 0, NULL };
	audit_export_info info;
	audit_journal *j;
	atu_signer sg;
	st_err err;

	atu_signer_load(&sg, atu_pki, "seal");
	cfg.signer = &sg.s;
	ck_assert_ptr_nonnull(j = audit_open(dir, &cfg, &err));
	atu_append(j, "SE-1", "done", "ok"); /* batch 1, sealed */
	audit_close(j);
	cfg.signer = NULL;
	ck_assert_ptr_nonnull(j = audit_open(dir, &cfg, &err));
	atu_append(j, "SE-2", "done", "ok"); /* batch 2, closed without a seal */
	audit_close(j);
	ck_assert_msg(audit_export(dir, out, &sg.s, &info, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(info.batches, 1);
	ck_assert_uint_eq(info.unsealed, 1);
	ck_assert_str_eq(info.first_unsealed, "batch-000002.jsonl");
	ck_assert_str_eq(info.open_batch, "");
	ck_assert(!atu_exists(out, "batch-000002.jsonl"));

	/* A live journal with a closed, unsealed batch verifies, with a note. */
	{
		X509_STORE *trust = atu_trust(atu_pki);
		audit_report *rep = NULL;
		size_t i;
		int noted = 0;

		ck_assert_msg(audit_verify(dir, trust, &rep, &err) == 0, "%s", err.msg);
		for (i = 0; i < rep->n_notes; i++)
			noted |= strstr(rep->notes[i], "batch-000002.jsonl: closed but not sealed yet") != NULL;
		ck_assert(noted);
		audit_report_free(rep);
		X509_STORE_free(trust);
	}
	atu_signer_clear(&sg);
	tu_rmtree(tmp);
	free(tmp);
	free(dir);
	free(out);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("audit-verify");
	TCase *tc = tcase_create("verify");

	tcase_add_unchecked_fixture(tc, atu_pki_setup, atu_pki_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_golden_verifies);
	tcase_add_loop_test(tc, test_forgeries, 0, F_COUNT);
	tcase_add_test(tc, test_manifest_checks);
	tcase_add_test(tc, test_truncated_bundle);
	tcase_add_test(tc, test_export);
	tcase_add_test(tc, test_export_stops_at_unsealed);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
