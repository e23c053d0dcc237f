/* Gang provisioning: several jigs in one `station run`, one worker per jig
 * sharing the HSM, the journal, the quota and the device index.  Four jigs
 * with a faulty one; --count as the total across jigs; the quota shared by
 * every jig. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "gangutil.h"

static int
cmp_str(const void *a, const void *b)
{
	return strcasecmp(*(char *const *)a, *(char *const *)b);
}

/* Position in the event stream of the first (last = 0) or last (last = 1)
 * event of this kind on this jig; -1 when none. */
static long
event_pos(const stu_run *r, const char *jig, const char *kind, int last)
{
	long pos = -1;
	size_t i;
	json_t *ev;

	json_array_foreach(r->events, i, ev) {
		if (strcmp(stu_str(ev, "jig"), jig) || strcmp(stu_str(ev, "event"), kind))
			continue;
		pos = (long)i;
		if (!last)
			break;
	}
	return pos;
}

/* Four jigs of 25 devices, one of them giving a bad attestation signature
 * on every fifth device: `--count 100` handles all hundred; every good
 * device passes on its own jig, locked and holding the certificate the
 * station issued; every faulty one fails at VERIFY with nothing issued; the
 * certificate serial numbers are all different; the audit verifies. */
START_TEST(test_four_jigs_one_faulty)
{
	enum { NJIGS = 4, PER_JIG = 25, FAULTY = 2, EVERY = 5 };
	const unsigned total = NJIGS * PER_JIG, nfaulty = PER_JIG / EVERY;
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim[NJIGS];
	const char *uris[NJIGS];
	char **paths = NULL, **serials = NULL;
	size_t npaths = 0, nserials = 0, i;
	unsigned k, issued = 0;
	stu_journal j;
	stu_run r;
	json_t *sum, *ev;

	for (i = 0; i < NJIGS; i++) {
		jigsim_config c;

		jigsim_config_init(&c);
		c.id = (unsigned)i + 1;
		c.devices = PER_JIG;
		if (i == FAULTY) {
			c.faults = jigsim_fault_parse("bad-attestation-signature");
			c.fault_every = EVERY;
		}
		sim[i] = stu_sim_start(tu_pki, &c);
		uris[i] = sim[i]->uri;
	}
	stu_station_start_jigs(w, uris, NJIGS, total, 1, &r);
	stu_station_wait(&r, 150);
	ck_assert_msg(r.status == 1, "station run: exit %d, expected 1 (faulty devices)\n%s\n%s", r.status,
	    stu_tail(r.out), stu_tail(r.err));
	ck_assert_uint_eq(stu_event_count(&r, "passed"), total - nfaulty);
	ck_assert_uint_eq(stu_event_count(&r, "failed"), nfaulty);

	stu_journal_load(w->audit, &j);
	ck_assert_uint_eq(j.n, total);
	for (i = 0; i < NJIGS; i++) {
		ck_assert_uint_eq(jigsim_device_count(sim[i]->s), PER_JIG);
		ck_assert_uint_eq(jigsim_released(sim[i]->s), PER_JIG);
		for (k = 1; k <= PER_JIG; k++) {
			int faulty = i == FAULTY && k % EVERY == 0;
			jigsim_device_info info;
			uint8_t cert[JIG_BLOB_MAX];
			size_t len = 0;
			stu_ledger *l;
			json_t *p, *f, *st;

			ck_assert_int_eq(jigsim_device_get(sim[i]->s, k, &info), 0);
			ck_assert_msg((st = stu_event(&r, "device_started", info.serial)) != NULL, "%s never started",
			    info.serial);
			ck_assert_str_eq(stu_str(st, "jig"), uris[i]);
			p = stu_event(&r, "passed", info.serial);
			f = stu_event(&r, "failed", info.serial);
			ck_assert_msg((l = stu_journal_dev(&j, info.serial)) != NULL, "journal never saw %s", info.serial);
			issued += l->issued;
			if (faulty) {
				ck_assert_msg(f && !p, "faulty device %s (jig %zu, device %u): failed %d, passed %d", info.serial,
				    i, k, !!f, !!p);
				ck_assert_str_eq(stu_str(f, "jig"), uris[i]);
				ck_assert_str_eq(stu_str(f, "step"), "verify");
				ck_assert_msg(strstr(stu_str(f, "reason"), "attestation") != NULL, "reason: %s",
				    stu_str(f, "reason"));
				ck_assert_str_ne(stu_str(f, "advice"), "");
				/* The hard gate held: nothing issued, nothing installed, not locked. */
				ck_assert_uint_eq(l->issued, 0);
				ck_assert_uint_eq(l->passes, 0);
				ck_assert_uint_eq(l->fails, 1);
				ck_assert_str_eq(l->fail_step, "verify");
				ck_assert_int_eq(info.lifecycle, JIG_LC_FACTORY);
				ck_assert_int_eq(jigsim_device_cert(sim[i]->s, k, 0, cert, sizeof(cert), &len), 0);
				ck_assert_uint_eq(len, 0);
				continue;
			}
			ck_assert_msg(p && !f, "device %s (jig %zu, device %u): passed %d, failed %d", info.serial, i, k, !!p,
			    !!f);
			ck_assert_str_eq(stu_str(p, "jig"), uris[i]);
			ck_assert_uint_eq(info.keygens, 1);
			stu_check_device_cert(w, sim[i]->s, k, &paths, &npaths);
			ck_assert_uint_eq(l->issued, 1);
			ck_assert_uint_eq(l->revoked, 0);
			ck_assert_uint_eq(l->passes, 1);
			ck_assert_uint_eq(l->fails, 0);
			ck_assert(strcasecmp(l->done_serial, l->issued_serial[0]) == 0);
			ck_assert(strcasecmp(stu_str(p, "certificate_serial"), l->done_serial) == 0);
			ck_assert_ptr_nonnull(serials = realloc(serials, (nserials + 1) * sizeof(*serials)));
			serials[nserials++] = l->done_serial;
		}
	}
	/* Four workers, one HSM: no certificate serial number twice. */
	ck_assert_uint_eq(issued, total - nfaulty);
	ck_assert_uint_eq(nserials, total - nfaulty);
	qsort(serials, nserials, sizeof(*serials), cmp_str);
	for (i = 1; i < nserials; i++)
		ck_assert_msg(strcasecmp(serials[i - 1], serials[i]) != 0, "certificate serial %s issued twice", serials[i]);
	stu_journal_check_live(&j);
	stu_openssl_verify(w, paths, npaths);
	stu_audit_verify(w);

	/* The jigs worked side by side, not one after another: each jig
	 * started its first device before any jig finished its last. */
	for (i = 0; i < NJIGS; i++) {
		size_t o;

		for (o = 0; o < NJIGS; o++) {
			long first = event_pos(&r, uris[i], "device_started", 0);
			long last = o == FAULTY ? event_pos(&r, uris[o], "failed", 1) : event_pos(&r, uris[o], "passed", 1);

			ck_assert_msg(first >= 0 && first < last, "jig %s started (event %ld) after jig %s had finished "
			    "(event %ld)", uris[i], first, uris[o], last);
		}
	}
	/* For the MES, every event but those about the whole run (its start,
	 * its end, a revocation at the end) names its jig. */
	json_array_foreach(r.events, i, ev) {
		const char *jig = stu_str(ev, "jig"), *kind = stu_str(ev, "event");
		size_t o;

		if (strcmp(kind, "summary") == 0 || strcmp(kind, "run_started") == 0 || strcmp(kind, "revoked") == 0)
			continue;
		for (o = 0; o < NJIGS && strcmp(jig, uris[o]); o++)
			;
		ck_assert_msg(o < NJIGS, "event %zu names no jig of the run: %s", i, json_dumps(ev, JSON_COMPACT));
	}
	sum = json_array_get(r.events, json_array_size(r.events) - 1);
	ck_assert_str_eq(stu_str(sum, "event"), "summary");
	ck_assert_int_eq(json_integer_value(json_object_get(sum, "passed")), total - nfaulty);
	ck_assert_int_eq(json_integer_value(json_object_get(sum, "failed")), nfaulty);

	for (i = 0; i < npaths; i++)
		free(paths[i]);
	free(paths);
	free(serials);
	stu_journal_clear(&j);
	stu_run_clear(&r);
	for (i = 0; i < NJIGS; i++)
		stu_sim_stop(sim[i]);
	stu_ws_free(w);
}
END_TEST

/* --count is the total across jigs: panels of 2, 10 and 10 devices with
 * --count 15 handle exactly 15, and the run ends although the first jig ran
 * out of devices and waits for one (it must not wait for ever). */
START_TEST(test_count_is_total)
{
	enum { NJIGS = 3, COUNT = 15 };
	static const unsigned panel[NJIGS] = { 2, 10, 10 };
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim[NJIGS];
	const char *uris[NJIGS];
	unsigned released = 0, k;
	stu_run r;
	size_t i;

	for (i = 0; i < NJIGS; i++) {
		jigsim_config c;

		jigsim_config_init(&c);
		c.id = (unsigned)i + 1;
		c.devices = panel[i];
		sim[i] = stu_sim_start(tu_pki, &c);
		uris[i] = sim[i]->uri;
	}
	stu_station_start_jigs(w, uris, NJIGS, COUNT, 1, &r);
	stu_station_wait(&r, 60);
	ck_assert_msg(r.status == 0, "station run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_uint_eq(stu_event_count(&r, "passed"), COUNT);
	ck_assert_uint_eq(stu_event_count(&r, "device_started"), COUNT);
	ck_assert_uint_eq(stu_event_count(&r, "failed"), 0);
	ck_assert_uint_eq(jigsim_released(sim[0]->s), panel[0]);
	for (i = 0; i < NJIGS; i++) {
		unsigned rel = jigsim_released(sim[i]->s);

		released += rel;
		/* What the station did not take stays untouched in its jig. */
		for (k = rel + 1; k <= jigsim_device_count(sim[i]->s); k++) {
			jigsim_device_info info;

			ck_assert_int_eq(jigsim_device_get(sim[i]->s, k, &info), 0);
			ck_assert_int_eq(info.lifecycle, JIG_LC_FACTORY);
			ck_assert_uint_eq(info.keygens, 0);
			ck_assert_ptr_null(stu_event(&r, "device_started", info.serial));
		}
	}
	ck_assert_uint_eq(released, COUNT);
	stu_audit_verify(w);
	stu_run_clear(&r);
	for (i = 0; i < NJIGS; i++)
		stu_sim_stop(sim[i]);
	stu_ws_free(w);
}
END_TEST

/* The quota is the station's, not a jig's: with quota.max_per_run 5 and
 * three jigs of four devices, exactly five certificates are issued in all,
 * the sixth request is refused and recorded, and the run stops (exit 2). */
START_TEST(test_quota_shared)
{
	enum { NJIGS = 3, PER_JIG = 4, QUOTA = 5 };
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim[NJIGS];
	const char *uris[NJIGS];
	unsigned issued = 0, locked = 0, jigs_used = 0, k;
	stu_journal j;
	stu_run r;
	size_t i;

	stu_recipe_edit(w, "  max_per_run: 1000\n", "  max_per_run: 5\n");
	for (i = 0; i < NJIGS; i++) {
		jigsim_config c;

		jigsim_config_init(&c);
		c.id = (unsigned)i + 1;
		c.devices = PER_JIG;
		sim[i] = stu_sim_start(tu_pki, &c);
		uris[i] = sim[i]->uri;
	}
	stu_station_start_jigs(w, uris, NJIGS, 0, 1, &r);
	stu_station_wait(&r, 60);
	ck_assert_msg(r.status == 3, "station run: exit %d, expected 3 (stopped: quota)\n%s\n%s", r.status, stu_tail(r.out),
	    stu_tail(r.err));
	ck_assert_msg(strstr(r.err, "quota") != NULL, "stderr does not name the quota:\n%s", stu_tail(r.err));
	stu_journal_load(w->audit, &j);
	for (i = 0; i < j.n; i++)
		issued += j.dev[i].issued;
	ck_assert_uint_eq(issued, QUOTA);
	for (i = 0; i < NJIGS; i++) {
		unsigned here = 0;

		for (k = 1; k <= jigsim_device_count(sim[i]->s); k++) {
			jigsim_device_info info;
			stu_ledger *l;

			ck_assert_int_eq(jigsim_device_get(sim[i]->s, k, &info), 0);
			if (info.lifecycle != JIG_LC_PROVISIONED)
				continue;
			/* Every locked SE holds a certificate the journal issued. */
			ck_assert_ptr_nonnull(l = stu_journal_dev(&j, info.serial));
			ck_assert_uint_eq(l->issued, 1);
			locked++;
			here++;
		}
		jigs_used += here > 0;
	}
	ck_assert_uint_le(locked, QUOTA);
	ck_assert_msg(jigs_used >= 2, "only %u jig(s) got certificates", jigs_used);
	ck_assert_msg(strstr(r.out, "quota") != NULL, "no failed event names the quota:\n%s", stu_tail(r.out));
	stu_journal_check_live(&j);
	stu_audit_verify(w);
	stu_journal_clear(&j);
	stu_run_clear(&r);
	for (i = 0; i < NJIGS; i++)
		stu_sim_stop(sim[i]);
	stu_ws_free(w);
}
END_TEST

static Suite *
suite(void)
{
	TCase *tc;
	Suite *s = tu_pki_suite("gang-run", "run", 240, &tc);

	tcase_add_test(tc, test_four_jigs_one_faulty);
	tcase_add_test(tc, test_count_is_total);
	tcase_add_test(tc, test_quota_shared);
	return s;
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return tu_run_suite(suite());
}
