/* Every payload byte of a device's answers, changed (issue 13): a
 * protocol-fluent liar passes the honest jigsim's answers on, but for each
 * device it changes one byte of one answer's payload and frames it again
 * with a good CRC, so only the station's checks can see it.  Device by
 * device the changed byte walks through every byte of every answer of a
 * device's cycle; once as a jig of protocol 1.1, once of 1.2.
 *
 * The station may fail the device, retry, or stop the run, and it may pass
 * a device whose changed byte did not matter, but: it never crashes, every
 * device it passes really holds the certificate the station issued for that
 * SE's own key and is locked, no jig byte reaches its output unescaped, and
 * its journal verifies. */
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>

#include "liar.h"
#include "rwutil.h"

#define FLIP_ANSWERS 64   /* answers in one device's cycle, at most */
#define FLIP_DEVICES 4096 /* devices in the test, at most */

typedef struct answer {
	uint8_t type;   /* the request's */
	unsigned occ;   /* how many of that type came before it in the device's cycle */
	size_t len;     /* the answer's payload bytes */
} answer;

typedef struct flip_state {
	unsigned dev;                    /* the jigsim device the answers below belong to */
	answer seen[FLIP_ANSWERS];       /* that device's answers so far */
	unsigned nseen;
	answer cycle[FLIP_ANSWERS];      /* a whole cycle, learnt from an honest device */
	unsigned ncycle;
	size_t bytes;                    /* payload bytes in that cycle */
	unsigned first;                  /* the first device with a changed byte (0: none yet) */
	unsigned changed;                /* answers changed */
	struct {
		uint8_t type;            /* the request whose answer device d got changed (0: none) */
		uint16_t at;
	} what[FLIP_DEVICES];
} flip_state;

/* Which byte of which answer device d changes: the (d - first)th payload
 * byte of the cycle, counted through its answers in order. */
static const answer *
target(const flip_state *st, unsigned d, size_t *at)
{
	size_t k;
	unsigned i;

	if (!st->first || d < st->first)
		return NULL;
	k = d - st->first;
	for (i = 0; i < st->ncycle; k -= st->cycle[i].len, i++)
		if (k < st->cycle[i].len) {
			*at = k;
			return &st->cycle[i];
		}
	return NULL;
}

static int
hook(liar *l, int fd, const jig_frame *req, const jig_msg *q)
{
	static _Thread_local uint8_t raw[JIG_MAX_FRAME], resp[JIG_MAX_FRAME];
	static _Thread_local jig_frame fr;
	flip_state *st = l->lies.arg;
	unsigned d = jigsim_device_count(l->sim), i, occ = 0;
	size_t rl = 0, n = 0, used = 0, at = 0;
	const answer *t;
	st_err err;
	int act;

	(void)q;
	if (d != st->dev) {
		st->dev = d;
		st->nseen = 0;
	}
	for (i = 0; i < st->nseen; i++)
		occ += st->seen[i].type == req->type;
	ck_assert_uint_lt(st->nseen, FLIP_ANSWERS);
	st->seen[st->nseen] = (answer){ req->type, occ, 0 };
	ck_assert(jig_frame_encode(req, raw, sizeof(raw), &rl, &err) == 0);
	act = jigsim_handle(l->sim, raw, rl, resp, sizeof(resp), &n, &err);
	ck_assert_int_ge(act, 0);
	if (act != JIGSIM_REPLY) {
		shutdown(fd, SHUT_RDWR);
		return 1;
	}
	if (!n)
		return 1;
	ck_assert(jig_frame_decode(resp, n, &fr, &used, &err) == JIG_DECODE_OK);
	st->seen[st->nseen++].len = fr.len;
	t = target(st, d, &at);
	if (t && t->type == req->type && t->occ == occ && at < fr.len) {
		fr.payload[at] ^= (uint8_t)(1u << (d % 8));
		st->changed++;
		if (d < FLIP_DEVICES)
			st->what[d].type = req->type, st->what[d].at = (uint16_t)at;
		ck_assert(jig_frame_encode(&fr, resp, sizeof(resp), &n, &err) == 0);
	}
	liar_send_bytes(fd, resp, n);
	return 1;
}

START_TEST(test_flips)
{
	stu_ws *w = stu_ws_new(tu_pki);
	flip_state st;
	liar_lies lies = { .relay = 1, .v12 = _i, .hook = hook, .arg = &st };
	jigsim_config c;
	stu_sim *sim;
	unsigned runs = 0, passed = 0, failed = 0, stopped = 0, i, total;
	char **paths = NULL;
	size_t npaths = 0;
	stu_run r;
	liar *l;

	memset(&st, 0, sizeof(st));
	stu_recipe_edit(w, "  max_per_run: 1000\n", "  max_per_run: 100000\n");
	stu_recipe_edit(w, "  max_per_shift: 100\n", "  max_per_shift: 100000\n");
	jigsim_config_init(&c);
	c.devices = 100000;
	sim = stu_sim_start(tu_pki, &c);
	l = liar_start(tu_pki, sim->s, &lies);

	/* Three honest devices; the third one's answers are a steady-state cycle. */
	stu_station_run(w, l->uri, 3, 1, &r);
	ck_assert_msg(r.status == 0 && stu_event_count(&r, "passed") == 3, "honest run: exit %d\n%s\n%s", r.status,
	    stu_tail(r.out), stu_tail(r.err));
	stu_run_clear(&r);
	ck_assert_uint_eq(st.dev, 3);
	memcpy(st.cycle, st.seen, sizeof(st.seen));
	st.ncycle = st.nseen;
	for (i = 0; i < st.ncycle; i++)
		st.bytes += st.cycle[i].len;
	ck_assert_uint_gt(st.bytes, 500);
	st.first = 4;
	total = st.first + (unsigned)st.bytes;
	ck_assert_uint_lt(total, FLIP_DEVICES);

	/* Until every byte was changed once: a run that stops early is started again. */
	while (jigsim_device_count(sim->s) < total) {
		unsigned before = jigsim_device_count(sim->s);
		size_t k;
		json_t *ev;

		ck_assert_uint_lt(++runs, 200);
		stu_station_start(w, l->uri, total - before, 1, &r);
		stu_station_wait(&r, 600);
		ck_assert_msg(r.status < 128, "the station died of signal %d\n%s", r.status - 128, stu_tail(r.err));
		liar_check_clean(r.out, "stdout", "flips");
		liar_check_clean(r.err, "stderr", "flips");
		stopped += r.status != 0 && r.status != 1;

		json_array_foreach(r.events, k, ev) {
			jigsim_device_info info;
			unsigned d;

			if (strcmp(stu_str(ev, "event"), "failed") == 0)
				failed++;
			if (strcmp(stu_str(ev, "event"), "passed") != 0)
				continue;
			passed++;
			for (d = jigsim_device_count(sim->s); d >= 1; d--)
				if (jigsim_device_get(sim->s, d, &info) == 0 && strcmp(info.serial, stu_str(ev, "device")) == 0)
					break;
			ck_assert_msg(d >= 1, "passed %s, which no jigsim device is", stu_str(ev, "device"));
			stu_check_device_cert(w, sim->s, d, &paths, &npaths);
			if (d < FLIP_DEVICES && st.what[d].type)
				printf("# %s passed with byte %u of the answer to %s changed\n", info.serial, st.what[d].at,
				    jig_cmd_name(st.what[d].type));
		}
		ck_assert_msg(jigsim_device_count(sim->s) > before, "run %u made no progress: exit %d\n%s", runs, r.status,
		    stu_tail(r.err));
		stu_run_clear(&r);
	}
	printf("# protocol %s: %zu answer bytes in a cycle of %u answers, %u changed; %u runs (%u stopped early): %u passed, %u failed\n",
	    _i ? "1.2" : "1.1", st.bytes, st.ncycle, st.changed, runs, stopped, passed, failed);
	/* A DER signature is 70 to 72 bytes: where a device's answer came out
	 * shorter than the learnt cycle's, its byte was past the end. */
	ck_assert_uint_ge(st.changed + 32, st.bytes);
	stu_openssl_verify(w, paths, npaths);
	for (i = 0; i < npaths; i++)
		free(paths[i]);
	free(paths);
	liar_test_end(w, &r, l, NULL, sim);
}
END_TEST

int
main(void)
{
	TCase *tc;
	Suite *s = liar_suite("hostile-flips", "flips", 600, &tc);

	tcase_add_loop_test(tc, test_flips, 0, 2); /* the liar speaks 1.1, then 1.2 */
	return tu_run_suite(s);
}
