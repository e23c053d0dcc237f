/* Disk full, for real: the station runs in its own mount namespace
 * (unshare) with a small tmpfs where its audit folder or its certs/ folder
 * is, and the test fills that tmpfs through /proc/PID/root at the moment it
 * chooses.  A device whose "done" record is durable stays PASSED when the
 * seal after it cannot be written; ENOSPC on the certs/ copy stops the run
 * after the one device; both end with exit 4 and advice to free space. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "stutil.h"

/* station run inside `unshare -rm sh -c SCRIPT`: SCRIPT mounts, runs the
 * station ("$@") and saves what the tmpfs held to save (when not NULL). */
static void
start_in_tmpfs(stu_ws *w, const char *mnt, const char *fill, const char *save, const char *jig, unsigned count,
    stu_run *r)
{
	char script[16384], countbuf[32];
	char *argv[24];
	size_t n = 0;

	snprintf(script, sizeof(script),
	    "set -e; mkdir -p '%s'; mount -t tmpfs -o size=1m tmpfs '%s'; %s%s%s"
	    "set +e; \"$@\"; rc=$?; %s%s%s exit $rc",
	    mnt, mnt, fill ? "dd if=/dev/zero of='" : "", fill ? fill : "",
	    fill ? "' bs=4096 2>/dev/null || true; " : "", save ? "mkdir -p '" : "", save ? save : "",
	    save ? "'; cp -a \"$0\"/. \"$SAVE_TO\"/;" : "");
	memset(r, 0, sizeof(*r));
	w->runs++;
	snprintf(r->out_path, sizeof(r->out_path), "%s/run-%u.out", w->dir, w->runs);
	snprintf(r->err_path, sizeof(r->err_path), "%s/run-%u.err", w->dir, w->runs);
	snprintf(countbuf, sizeof(countbuf), "%u", count);
	if (save) {
		setenv("SAVE_TO", save, 1);
	}
	argv[n++] = (char *)"/usr/bin/unshare";
	argv[n++] = (char *)"-rm";
	argv[n++] = (char *)"/bin/sh";
	argv[n++] = (char *)"-c";
	argv[n++] = script;
	argv[n++] = (char *)mnt; /* $0 */
	argv[n++] = (char *)tu_station_exe();
	argv[n++] = (char *)"run";
	argv[n++] = (char *)"--recipe";
	argv[n++] = w->recipe;
	argv[n++] = (char *)"--jig";
	argv[n++] = (char *)jig;
	argv[n++] = (char *)"--count";
	argv[n++] = countbuf;
	argv[n++] = (char *)"--operator";
	argv[n++] = (char *)"stu";
	argv[n++] = (char *)"--json";
	argv[n] = NULL;
	ck_assert_msg(argv[6] != NULL, "STATION_EXE is not set");
	r->json = 1;
	r->start_s = stu_now();
	r->pid = stu_spawn(argv, r->out_path, r->err_path);
}

/* What the station's mount namespace shows at path. */
static void
inside(const stu_run *r, const char *path, char *out, size_t size)
{
	snprintf(out, size, "/proc/%d/root%s", (int)r->pid, path);
}

static char *
slurp_inside(const stu_run *r, const char *path, size_t *len)
{
	char p[8192];

	inside(r, path, p, sizeof(p));
	return tu_slurp(p, len);
}

/* Bytes from the end of the "locking" record to the end of the batch (the
 * lock, done and batch-close records), or -1 when there is no such record. */
static long
tail_after_locking(const char *text, size_t len)
{
	const char *at = strstr(text, "\"step\":\"locking\"");
	const char *nl;

	if (!at || !(nl = strchr(at, '\n')))
		return -1;
	return (long)(len - (size_t)(nl + 1 - text));
}

/* Fill the tmpfs until ENOSPC, then give back `pages` pages. */
static void
fill_inside(const stu_run *r, const char *dir, unsigned pages)
{
	char path[8192], rel[4200], buf[4096];
	off_t size = 0;
	int fd;

	snprintf(rel, sizeof(rel), "%s/filler", dir);
	inside(r, rel, path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	memset(buf, 0, sizeof(buf));
	while (write(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf))
		size += (off_t)sizeof(buf);
	ck_assert_msg(errno == ENOSPC, "filling %s: %s (expected ENOSPC)", path, strerror(errno));
	if (pages)
		ck_assert_int_eq(ftruncate(fd, size - (off_t)pages * 4096), 0);
	close(fd);
}

/* The seal of a batch cannot be written, nor the record of that failure: the
 * device whose done record closed the batch stays PASSED, the run stops. */
START_TEST(test_seal_disk_full)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim;
	jigsim_config c;
	stu_run r;
	stu_journal j;
	char save[4200], *text = NULL;
	long need = -1;
	unsigned b, filled = 0, skip = 0;
	double deadline;
	json_t *sum, *ev;
	size_t i, len = 0;

	stu_recipe_edit(w, "  batch_size: 10\n", "  batch_size: 1\n");
	jigsim_config_init(&c);
	c.devices = 30;
	c.cmd_ms = 150; /* the LOCK round trip leaves time to fill the disk */
	sim = stu_sim_start(tu_pki, &c);
	snprintf(save, sizeof(save), "%s/audit-saved", w->dir);
	start_in_tmpfs(w, w->audit, NULL, save, sim->uri, 30, &r);

	/* Batch b holds device b.  Learn from a closed one how many bytes come
	 * after "locking"; fill the disk while a later device locks, leaving
	 * just the pages those bytes take, so the seal finds none. */
	deadline = stu_now() + 90;
	for (b = 1; !filled && b < 30 && stu_now() < deadline;) {
		char path[4400], name[AUDIT_NAME_MAX];
		long tail;

		audit_batch_name(b, name);
		snprintf(path, sizeof(path), "%s/%s", w->audit, name);
		free(text);
		if (!(text = slurp_inside(&r, path, &len))) {
			stu_sleep_ms(2);
			continue;
		}
		if (strstr(text, "\"step\":\"batch-close\"")) {
			if (need < 0)
				need = tail_after_locking(text, len);
			b++;
			continue;
		}
		tail = tail_after_locking(text, len);
		if (need > 0 && tail == 0 && b != skip) {
			long room = (long)((len + 4095) / 4096 * 4096 - len);

			if (room >= need + 64 || room + 64 <= need) {
				fill_inside(&r, w->audit, room >= need + 64 ? 0 : 1);
				filled = b;
				break;
			}
			skip = b; /* too close to call: try the next device */
		}
		stu_sleep_ms(2);
	}
	free(text);
	ck_assert_msg(filled, "never found a device locking with a known tail (need %ld)", need);
	stu_station_wait(&r, 60);
	ck_assert_msg(r.status == 4, "disk full at a seal: exit %d, expected 4\n%s\n%s", r.status, stu_tail(r.out),
	    stu_tail(r.err));
	sum = json_array_get(r.events, json_array_size(r.events) - 1);
	ck_assert_str_eq(stu_str(sum, "event"), "summary");
	ck_assert_str_eq(stu_str(sum, "end"), "disk-full");
	ck_assert_msg(strstr(stu_str(sum, "stopped"), "seal") && strstr(stu_str(sum, "stopped"), "free space"),
	    "the summary does not name the seal and the advice: %s", stu_str(sum, "stopped"));
	ck_assert_uint_eq(stu_event_count(&r, "failed"), 0);
	ck_assert_uint_eq(json_integer_value(json_object_get(sum, "passed")), filled);

	/* Every device the journal shows passed was reported passed. */
	stu_journal_load(save, &j);
	ck_assert_uint_eq(j.n, filled);
	for (i = 0; i < j.n; i++) {
		ck_assert_uint_eq(j.dev[i].passes, 1);
		ev = stu_event(&r, "passed", j.dev[i].serial);
		ck_assert_msg(ev != NULL, "%s passed in the journal, not on the line", j.dev[i].serial);
	}
	stu_journal_check_live(&j);
	stu_journal_clear(&j);
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* The certs/ copy cannot be written: that device fails with advice to free
 * space, the run stops (exit 4) instead of failing every next device. */
START_TEST(test_certs_disk_full)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim;
	jigsim_config c;
	stu_run r;
	char certs[4200], fill[4300];
	json_t *sum, *ev;

	jigsim_config_init(&c);
	c.devices = 5;
	sim = stu_sim_start(tu_pki, &c);
	snprintf(certs, sizeof(certs), "%s/certs", w->audit);
	snprintf(fill, sizeof(fill), "%s/filler", certs);
	start_in_tmpfs(w, certs, fill, NULL, sim->uri, 5, &r);
	stu_station_wait(&r, 60);
	ck_assert_msg(r.status == 4, "certs/ full: exit %d, expected 4\n%s\n%s", r.status, stu_tail(r.out),
	    stu_tail(r.err));
	ck_assert_uint_eq(stu_event_count(&r, "failed"), 1);
	ck_assert_uint_eq(stu_event_count(&r, "passed"), 0);
	ev = stu_event(&r, "failed", NULL);
	ck_assert_msg(strstr(stu_str(ev, "advice"), "the run stops"), "advice: %s", stu_str(ev, "advice"));
	sum = json_array_get(r.events, json_array_size(r.events) - 1);
	ck_assert_str_eq(stu_str(sum, "end"), "disk-full");
	ck_assert_msg(strstr(stu_str(sum, "stopped"), "free space") && strstr(stu_str(sum, "stopped"), w->audit),
	    "the summary does not say where to free space: %s", stu_str(sum, "stopped"));
	ck_assert_uint_lt(jigsim_device_count(sim->s), 3); /* it did not go on */
	stu_audit_verify(w);
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

static Suite *
suite(void)
{
	TCase *tc;
	Suite *s = tu_pki_suite("station-diskfull", "diskfull", 150, &tc);

	tcase_add_test(tc, test_certs_disk_full);
	tcase_add_test(tc, test_seal_disk_full);
	return s;
}

int
main(void)
{
	return tu_run_suite(suite());
}
