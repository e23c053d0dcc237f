/* Crash test: a child process appends records (some large enough to need
 * several pages, so a kill can land inside a write) and is killed with
 * SIGKILL at a random moment, many times.  After each kill the parent
 * opens the journal: a torn tail must be reported at exactly the offset
 * where the last complete line ends and quarantined byte for byte; the
 * journal must then verify (chain and seals, checked every few rounds); and every append the child
 * saw return (reported through a pipe) must be in the journal with the
 * content the child gave it.  Every third round also tears the tail by
 * hand, as a power loss would. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit-tu.h"

#define ROUNDS 200
#define MAX_SEQ 200000

struct acked {
	uint32_t round, k;
};

static char *pki;
static struct acked *acked; /* by seq; round 0 = not acknowledged */

static void
setup(void)
{
	pki = tu_make_pki();
	atu_make_signer(pki, "seal", "root-ca");
	acked = calloc(MAX_SEQ, sizeof(*acked));
}

static void
teardown(void)
{
	tu_rmtree(pki);
	free(pki);
	free(acked);
}

static unsigned
rnd(unsigned *state, unsigned n)
{
	*state = *state * 1103515245u + 12345u;
	return (*state >> 8) % n;
}

/* The child: append until killed; report (seq, round, k) after each return. */
static void
child_main(const char *dir, int fd, unsigned round)
{
	static const char *const steps[] = { "identify", "issuing", "issued", "done" };
	atu_signer sg;
	audit_config cfg = { "crash-station", "op", "00ff", 3, 0, NULL };
	audit_journal *j;
	unsigned state = round * 7919u + 1, k;
	char *blob = malloc(9001);
	st_err err;

	atu_signer_load(&sg, pki, "seal");
	cfg.signer = &sg.s;
	if (!(j = audit_open(dir, &cfg, &err))) {
		fprintf(stderr, "child %u: %s\n", round, err.msg);
		_exit(3);
	}
	for (k = 0;; k++) {
		size_t blen = rnd(&state, 4) == 0 ? rnd(&state, 9000) : rnd(&state, 40);
		char dev[32];
		json_t *d;
		audit_event ev = { "tcp:127.0.0.1:7000", dev, steps[k % 4], "ok", NULL, 0 };
		uint64_t seq = 0;
		uint32_t msg[4];

		memset(blob, 'a' + (int)(k % 26), blen);
		blob[blen] = '\0';
		snprintf(dev, sizeof(dev), "SE-%u-%u", round, k / 4);
		d = json_pack("{s:i, s:i, s:s}", "round", (int)round, "k", (int)k, "blob", blob);
		ev.details = d;
		if (audit_append(j, &ev, &seq, &err) < 0) {
			fprintf(stderr, "child %u: %s\n", round, err.msg);
			_exit(4);
		}
		json_decref(d);
		msg[0] = (uint32_t)seq;
		msg[1] = (uint32_t)(seq >> 32);
		msg[2] = round;
		msg[3] = k;
		if (write(fd, msg, sizeof(msg)) != (ssize_t)sizeof(msg))
			_exit(5);
	}
}

/* The last batch file and where its last complete line ends. */
static unsigned
last_batch(const char *dir, char name[AUDIT_NAME_MAX])
{
	unsigned n = 0;

	for (;;) {
		char next[AUDIT_NAME_MAX];

		audit_batch_name(n + 1, next);
		if (!atu_exists(dir, next))
			break;
		n++;
		snprintf(name, AUDIT_NAME_MAX, "%s", next);
	}
	return n;
}

/* Record one acknowledged append reported by the child. */
static void
ack(const uint32_t msg[4], uint64_t *n_acked, uint64_t *max_acked)
{
	uint64_t seq = (uint64_t)msg[0] | (uint64_t)msg[1] << 32;

	ck_assert_uint_lt(seq, MAX_SEQ);
	acked[seq].round = msg[2];
	acked[seq].k = msg[3];
	(*n_acked)++;
	if (seq > *max_acked)
		*max_acked = seq;
}

struct check_ctx {
	uint64_t records;
	unsigned mismatches;
};

static int
check_record(const audit_record *rec, void *ctx)
{
	struct check_ctx *c = ctx;
	json_t *r = json_object_get(rec->details, "round"), *k = json_object_get(rec->details, "k");

	c->records++;
	if (rec->seq < MAX_SEQ && acked[rec->seq].round) {
		if (!r || !k || json_integer_value(r) != (json_int_t)acked[rec->seq].round ||
		    json_integer_value(k) != (json_int_t)acked[rec->seq].k)
			c->mismatches++;
		acked[rec->seq].round = 0; /* seen */
	}
	return 0;
}

START_TEST(test_sigkill)
{
	char *tmp = tu_tmpdir("audit-crash");
	char *dir = tu_path(tmp, "journal");
	X509_STORE *trust = atu_trust(pki);
	atu_signer sg;
	audit_config cfg = { "crash-station", "op", "00ff", 3, 0, NULL };
	unsigned state = 12345, round, injected = 0, torn_writes = 0;
	uint64_t n_acked = 0, max_acked = 0, seq;
	struct check_ctx cc = { 0, 0 };
	st_err err;

	atu_signer_load(&sg, pki, "seal");
	cfg.signer = &sg.s;
	for (round = 1; round <= ROUNDS; round++) {
		int fds[2], status = 0;
		pid_t pid;
		uint32_t msg[4];
		unsigned want, have;
		ssize_t got;
		char name[AUDIT_NAME_MAX] = "", *buf = NULL;
		size_t len = 0, tail_off = 0;
		audit_journal *j;
		audit_status st;

		ck_assert_int_eq(pipe(fds), 0);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			close(fds[0]);
			child_main(dir, fds[1], round);
		}
		close(fds[1]);
		/* Kill after a random number of acknowledged appends (0: during
		 * open or the first append) and a random extra delay, so the kill
		 * lands anywhere whatever the speed of the build (ASan, valgrind). */
		want = rnd(&state, 12);
		for (have = 0; have < want && (got = read(fds[0], msg, sizeof(msg))) == (ssize_t)sizeof(msg); have++)
			ack(msg, &n_acked, &max_acked);
		usleep(rnd(&state, 3000));
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "round %u: child ended by itself (%d)",
		    round, status);
		while ((got = read(fds[0], msg, sizeof(msg))) == (ssize_t)sizeof(msg))
			ack(msg, &n_acked, &max_acked);
		close(fds[0]);

		/* What the parent expects open to find. */
		if (last_batch(dir, name)) {
			const char *nl;

			if (round % 3 == 0) {
				/* A power-loss tear: the start of a record, no newline. */
				char torn[80];
				int n = snprintf(torn, sizeof(torn), "{\"v\":1,\"seq\":%u,\"time\":\"2026-11-", round * 10);

				atu_append_bytes(dir, name, torn, (size_t)rnd(&state, (unsigned)n) + 1);
				injected++;
			}
			buf = atu_read(dir, name, &len);
			for (nl = buf + len; nl > buf && nl[-1] != '\n'; nl--)
				;
			tail_off = (size_t)(nl - buf);
			if (tail_off < len && round % 3 != 0)
				torn_writes++;
		}
		j = audit_open(dir, &cfg, &err);
		ck_assert_msg(j != NULL, "round %u: open after SIGKILL: %s", round, err.msg);
		audit_get_status(j, &st);
		audit_close(j);
		if (buf && tail_off < len) {
			char *q;
			size_t qlen = 0;

			ck_assert_msg(st.recovered, "round %u: torn tail at %zu not reported", round, tail_off);
			ck_assert_str_eq(st.recovered_batch, name);
			ck_assert_uint_eq(st.recovered_offset, tail_off);
			ck_assert_uint_eq(st.recovered_bytes, len - tail_off);
			q = atu_read(dir, st.quarantine, &qlen);
			ck_assert_uint_eq(qlen, len - tail_off);
			ck_assert(memcmp(q, buf + tail_off, qlen) == 0);
			free(q);
		} else {
			ck_assert_msg(!st.recovered, "round %u: recovered a tail that was not there", round);
		}
		free(buf);
		ck_assert_uint_ge(st.last_seq, max_acked);
		ck_assert_uint_eq(st.unsealed, 0);
		/* The whole journal every 5 rounds, its seals too every 20: checking
		 * everything every time would grow quadratically. */
		if (round % 5 == 0)
			ck_assert_msg(audit_verify(dir, round % 20 == 0 ? trust : NULL, NULL, &err) == 0, "round %u: %s", round,
			    err.msg);
	}

	/* Every acknowledged append is there, with the content the child gave it. */
	ck_assert_msg(audit_scan(dir, check_record, &cc, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(cc.mismatches, 0);
	for (seq = 0; seq < MAX_SEQ; seq++)
		ck_assert_msg(acked[seq].round == 0, "acknowledged seq %llu missing", (unsigned long long)seq);
	ck_assert_uint_gt(n_acked, ROUNDS);
	ck_assert_uint_eq(injected, ROUNDS / 3);
	fprintf(stderr, "# %u rounds: %llu acknowledged appends, %llu records, %u torn tails from SIGKILL mid-write, "
	                "%u injected\n",
	    ROUNDS, (unsigned long long)n_acked, (unsigned long long)cc.records, torn_writes, injected);

	X509_STORE_free(trust);
	atu_signer_clear(&sg);
	tu_rmtree(tmp);
	free(tmp);
	free(dir);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("audit-crash");
	TCase *tc = tcase_create("crash");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_sigkill);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
