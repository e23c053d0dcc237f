/* The factory run: one worker thread per jig, each waiting for a device,
 * claiming it against --count and taking it through the factory path's
 * steps (steps.c) in order; the run's state, why it stops, and its end. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "engine-int.h"
#include "metrics.h"
#include "step.h"
#include "recipe.h"

const char *
run_end_name(run_end end)
{
	static const char *const names[] = {
		[RUN_COMPLETED] = "completed", [RUN_STOP_INTERRUPT] = "interrupt", [RUN_STOP_SIGTERM] = "sigterm",
		[RUN_STOP_SIGHUP] = "sighup", [RUN_STOP_QUIT] = "quit", [RUN_STOP_QUOTA] = "quota", [RUN_STOP_HSM] = "hsm",
		[RUN_STOP_DISK_FULL] = "disk-full", [RUN_STOP_JOURNAL] = "write-error", [RUN_STOP_CONFIG] = "configuration", [RUN_STOP_JIG] = "jig",
		[RUN_STOP_HALT] = "halt",
	};

	return (size_t)end < sizeof(names) / sizeof(names[0]) && names[end] ? names[end] : "unknown";
}

const char *
run_end_text(run_end end)
{
	static const char *const texts[] = {
		[RUN_COMPLETED] = "completed", [RUN_STOP_INTERRUPT] = "stopped by the operator (Ctrl-C)",
		[RUN_STOP_SIGTERM] = "stopped by SIGTERM", [RUN_STOP_SIGHUP] = "stopped by SIGHUP (terminal closed)",
		[RUN_STOP_QUIT] = "quit at once by a second signal", [RUN_STOP_QUOTA] = "stopped: issuance quota used up",
		[RUN_STOP_HSM] = "stopped: the HSM failed", [RUN_STOP_DISK_FULL] = "stopped: disk full",
		[RUN_STOP_JOURNAL] = "stopped: a write to the audit folder failed",
		[RUN_STOP_CONFIG] = "stopped: configuration error",
		[RUN_STOP_JIG] = "stopped: no jig left in the run (each was taken out after failing again and again)",
		[RUN_STOP_HALT] = "halted: anomaly (a signed resume lifts it)",
	};

	return (size_t)end < sizeof(texts) / sizeof(texts[0]) && texts[end] ? texts[end] : "stopped";
}

int
eng_stopping(struct engine *e)
{
	int f;

	pthread_mutex_lock(&e->lock);
	f = e->fatal;
	pthread_mutex_unlock(&e->lock);
	return f || *e->stop;
}

void
eng_set_stop(struct engine *e, run_end end, const char *msg)
{
	pthread_mutex_lock(&e->lock);
	if (!e->fatal) {
		e->fatal = 1;
		e->end = end;
		snprintf(e->fatal_msg, sizeof(e->fatal_msg), "%s", msg);
	}
	pthread_mutex_unlock(&e->lock);
}

void
eng_set_fatal(struct engine *e, const char *msg)
{
	eng_set_stop(e, RUN_STOP_CONFIG, msg);
}

void
eng_stop_write(struct engine *e, const st_err *err)
{
	char msg[sizeof(e->fatal_msg)];
	int full = err->sys == ENOSPC || err->sys == EDQUOT;

	snprintf(msg, sizeof(msg), "%.700s; %s %s, then run again (devices in progress resume)", err->msg,
	    full ? "disk full: free space on the file system of" : "check the disk holding", e->st->rcp->audit.dir);
	eng_set_stop(e, full ? RUN_STOP_DISK_FULL : RUN_STOP_JOURNAL, msg);
}

static void
sleep_ms(struct engine *e, int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	if (!eng_stopping(e))
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !*e->stop)
			;
}

/* The SE is locked already: it is ours only if the journal shows we issued
 * the certificate it holds and were about to lock it (a crash after LOCK),
 * or that it passed with it (a crash after the "done" record, before the
 * device was released): then it passes again, nothing is issued. */
static int
resume_locked(struct worker *w, struct dev *d)
{
	station *st = w->eng->st;
	int passed = d->has_prior && d->prior.state == HISTORY_PASSED, ret = -1;
	uint8_t *der = NULL;
	size_t len = 0;

	if (!d->has_prior || !d->prior.has_cert) {
		st_err_set(&d->err, ST_E_STATE, "SE is already locked (lifecycle provisioned)%s",
		    passed ? " and this station provisioned it before" : "");
		return eng_fail(d, STEP_POSTURE, ADV_LOCKED);
	}
	/* The journal's copy of the live certificate, read back from its
	 * "issued" record. */
	if (history_cert_der(st->history, st->rcp->audit.dir, d->prior.cert_serial, &der, &len, &d->err) < 0) {
		eng_set_fatal(w->eng, d->err.msg);
		return eng_fail(d, STEP_POSTURE, ADV_ENGINEERING);
	}
	switch (eng_read_back(w, d, der, len)) {
	case -1:
		eng_fail(d, STEP_POSTURE, ADV_RESEAT);
		goto out;
	case 0:
		st_err_set(&d->err, ST_E_STATE, "SE is locked with a certificate this station did not install");
		eng_fail(d, STEP_POSTURE, ADV_LOCKED);
		goto out;
	}
	snprintf(d->cert_serial, sizeof(d->cert_serial), "%s", d->prior.cert_serial);
	d->resumed = 1;
	if (w->eng->st->lock_receipt && eng_v11(w)) {
		/* The jig's word that it is locked is not enough here either: the
		 * SE signs a receipt again (LOCK on a provisioned SE locks nothing). */
		json_t *details = NULL;

		if (eng_step_auth(w, d) < 0 || eng_lock(w, d, der, len, &details) < 0)
			goto out;
		json_object_set_new(details, "resumed", json_true());
		ret = eng_journal(w, d, STEP_LOCK, "ok", details);
		goto out;
	}
	if (passed)
		ret = 0; /* its lock record is in the journal already */
	else
		ret = eng_journal(w, d, STEP_LOCK, "ok", json_pack("{s:s,s:b}", "lifecycle", "provisioned", "resumed", 1));
out:
	free(der);
	return ret;
}

static int
provision(struct worker *w, struct dev *d)
{
	station *st = w->eng->st;
	int keep;

	if (st->family == RECIPE_FAMILY_TPM2)
		return tpm_provision(w, d);

	d->has_prior = history_device_get(st->history, d->info.serial, &d->prior) == 0;
	if (eng_step_identify(w, d) < 0 || eng_step_posture(w, d) < 0)
		return -1;
	if (d->info.lifecycle == JIG_LC_PROVISIONED)
		return resume_locked(w, d);
	if (d->info.lifecycle != JIG_LC_FACTORY) {
		st_err_set(&d->err, ST_E_STATE, "SE lifecycle is %s; only factory SEs are provisioned here",
		    jig_lifecycle_name(d->info.lifecycle));
		return eng_fail(d, STEP_POSTURE, ADV_LOCKED);
	}
	if (d->has_prior && d->prior.state == HISTORY_PASSED) {
		st_err_set(&d->err, ST_E_STATE, "the journal shows SE %s provisioned already, yet it is in factory state "
		                                "(duplicate serial or cloned SE)", d->info.serial);
		return eng_fail(d, STEP_POSTURE, ADV_QUARANTINE);
	}
	if (eng_journal(w, d, STEP_POSTURE, "ok", NULL) < 0)
		return eng_fail(d, STEP_POSTURE, ADV_ENGINEERING);
	if (eng_stopping(w->eng))
		return 1;
	if (eng_step_auth(w, d) < 0 || eng_journal(w, d, STEP_AUTH, "ok", NULL) < 0)
		return -1;
	/* Resuming a device with a live certificate: keep its key if it has one. */
	keep = d->has_prior && d->prior.has_cert;
	if (eng_step_keygen(w, d, keep) < 0 || eng_step_csr_verify(w, d) < 0)
		return -1;
	if (eng_stopping(w->eng))
		return 1;
	if (eng_step_sign(w, d) < 0 || eng_step_install(w, d) < 0 || eng_step_lock(w, d) < 0)
		return -1;
	return 0;
}

/* ---- one worker per jig ------------------------------------------------ */

int
eng_open_jig(struct worker *w, st_err *err)
{
	jig_transport *t = NULL;
	station *st = w->eng->st;
	uint8_t c;

	if (jig_transport_open(w->uri, &t, err) < 0)
		return -1;
	w->client = jig_client_new(t); /* owns t */
	if (!w->client) {
		jig_transport_free(t);
		return st_err_set(err, ST_E_NOMEM, "jig %s: out of memory", w->uri);
	}
	for (c = 1; c <= JIG_CMD_LAST; c++)
		if (st->timeouts[c] > 0)
			jig_client_set_timeout(w->client, c, st->timeouts[c]);
	/* 1.2's CERT_TEMPLATE carries what INSTALL_CERT did: its timeout too */
	if (st->timeouts[JIG_CMD_INSTALL_CERT] > 0)
		jig_client_set_timeout(w->client, JIG_CMD_CERT_TEMPLATE, st->timeouts[JIG_CMD_INSTALL_CERT]);
	jig_client_set_retries(w->client, st->retries);
	jig_client_set_retry_hook(w->client, eng_on_retry, w);
	/* A jig that spoke 1.1 is not talked down to 1.0 by a reconnect. */
	if (w->spoke)
		jig_client_set_versions(w->client, w->spoke, JIG_VERSION_MAX);
	if (jig_client_hello(w->client, &w->resp, err) < 0) {
		if (w->spoke > JIG_VERSION_1_0) {
			st_err e = *err;

			st_err_set(err, e.code, "%s (this jig spoke protocol %s earlier in this run: the station does not fall "
			    "back to an older version)", e.msg, jig_version_name(w->spoke));
			err->remote = e.remote;
		}
		eng_drop_client(w);
		return -1;
	}
	if (jig_client_version(w->client) > w->spoke)
		w->spoke = jig_client_version(w->client);
	w->caps = w->resp.u.hello.capabilities;
	metrics_jig(st->metrics, w->idx, w->resp.u.hello.jig_id, w->resp.u.hello.firmware,
	    jig_version_name(jig_client_version(w->client)));
	if (st->family == RECIPE_FAMILY_TPM2 && !(w->caps & JIG_CAP_TPM)) {
		eng_drop_client(w);
		return st_err_set(err, ST_E_CONFIG, "jig %s: the recipe is for TPM devices (se.family tpm2) and this jig "
		    "does not offer the TPM commands (HELLO capability bit 3)", w->uri);
	}
	if (eng_v11(w) && w->resp.u.hello.nrates > 0) {
		/* A serial jig: the highest rate it lists, confirm-or-revert; a
		 * line already as fast stays as it is (a station is not slowed
		 * down by a jig that lists only slower rates). */
		uint32_t baud = w->resp.u.hello.rates[w->resp.u.hello.nrates - 1];
		unsigned cur = jig_client_line_baud(w->client);
		st_err e;
		int rc;

		if (cur && baud <= cur) {
			st_log("station", "jig %s: line stays at %u baud (HELLO lists nothing faster)", w->uri, cur);
			return 0;
		}
		/* After a reconnect: a switch that failed once is not tried (and
		 * waited out, and noted) again with every new connection. */
		if (baud == w->baud_failed) {
			st_log("station", "jig %s: SET_BAUD %u not tried again (it failed earlier in this run)", w->uri, baud);
			return 0;
		}
		rc = jig_client_set_baud(w->client, baud, ENG_BAUD_CONFIRM_MS, &e);
		if (rc < 0 && e.code != ST_E_REMOTE) {
			*err = e;
			eng_drop_client(w);
			return -1;
		}
		if (rc != 0) {
			w->baud_failed = baud;
			ui_jig_note(w->eng->u, w->idx, e.msg); /* the line stays at its starting rate */
		} else
			st_log("station", "jig %s: line at %u baud", w->uri, baud);
	}
	return 0;
}

static int done_claiming(struct engine *e);

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The jig answered sensibly: its trouble, if any, is over. */
static void
jig_fine(struct worker *w)
{
	w->attempts = 0;
	w->trouble[0] = '\0';
}

/* Wait for a device: SE_INFO answers NO_DUT while the jig is empty.  With
 * several jigs, one whose panel ran out must stop waiting once the others
 * have taken the last of --count.  A jig that says a device is seated but
 * unpowered is powered on, twice at most: a power-on that does not take is
 * an error, not a reason to ask again at once. */
int
eng_wait_device(struct worker *w, struct dev *d, st_err *err)
{
	int noted = 0, powered_on = 0;

	while (!eng_stopping(w->eng) && !done_claiming(w->eng)) {
		if (w->eng->st->family == RECIPE_FAMILY_TPM2) {
			if (tpm_identify(w, d, err) == 0)
				return 0;
		} else if (eng_call(w, JIG_CMD_SE_INFO, err) == 0) {
			d->info = w->resp.u.se_info;
			jig_fine(w);
			return 0;
		}
		if (err->code != ST_E_REMOTE || err->remote != JIG_E_NO_DUT)
			return -1;
		/* A device seated but not powered (a jig that does not power
		 * DUTs by itself, or one handed back): power it on. */
		if (eng_call(w, JIG_CMD_DUT_STATUS, err) < 0)
			return -1;
		if (w->resp.u.dut.present && !w->resp.u.dut.powered) {
			if (powered_on++ == 2)
				return st_err_set(err, ST_E_STATE, "jig %s: DUT_STATUS reports a device seated but not powered, "
				                                   "and DUT_POWER on does not power it", w->uri);
			w->req.u.power_req.action = JIG_POWER_ON;
			if (eng_call(w, JIG_CMD_DUT_POWER, err) < 0)
				return -1;
			sleep_ms(w->eng, 100);
			continue;
		}
		jig_fine(w);
		if (!noted++)
			ui_jig_note(w->eng->u, w->idx, "waiting for a device");
		sleep_ms(w->eng, 100);
	}
	return 1;
}

static int
claim(struct engine *e)
{
	int ok;

	pthread_mutex_lock(&e->lock);
	ok = !e->count || e->claimed < e->count;
	if (ok)
		e->claimed++;
	pthread_mutex_unlock(&e->lock);
	return ok;
}

static int
done_claiming(struct engine *e)
{
	int done;

	pthread_mutex_lock(&e->lock);
	done = e->count && e->claimed >= e->count;
	pthread_mutex_unlock(&e->lock);
	return done;
}

int
eng_release(struct worker *w, st_err *err)
{
	w->req.u.power_req.action = JIG_POWER_RELEASE;
	if (eng_call(w, JIG_CMD_DUT_POWER, err) < 0) {
		eng_drop_client(w);
		w->pending_release = 1;
		return -1;
	}
	w->pending_release = 0;
	return 0;
}

/* Take the jig out of the run; when it was the last one still going (and
 * --count is not reached), the run stops. */
static void
take_out(struct worker *w, const char *why)
{
	struct engine *e = w->eng;
	int last;

	/* Counted, not inferred from the workers still running: two jigs taken
	 * out at the same moment must not both think the other goes on. */
	pthread_mutex_lock(&e->lock);
	last = ++e->jigs_out == e->nworkers && !(e->count && e->claimed >= e->count);
	pthread_mutex_unlock(&e->lock);
	if (last)
		eng_set_stop(e, RUN_STOP_JIG, why);
}

/* An attempt that got no device through: tell the operator once per
 * condition, pause (longer each time), and after ENG_JIG_ATTEMPTS in a row
 * take the jig out of the run (1).  The other jigs go on. */
static int
jig_trouble(struct worker *w, const char *what)
{
	struct engine *e = w->eng;
	char note[1000];
	unsigned ms = ENG_JIG_PAUSE_MS;

	if (w->attempts++ == 0)
		w->trouble_since = now_s();
	if (w->attempts >= ENG_JIG_ATTEMPTS) {
		snprintf(note, sizeof(note), "jig %s taken out of the run: %u attempts in a row in %.0f s got no device "
		    "through; the last: %.600s", w->uri, w->attempts, now_s() - w->trouble_since, what);
		ui_jig_note(e->u, w->idx, note);
		take_out(w, note);
		return 1;
	}
	if (strncmp(w->trouble, what, sizeof(w->trouble) - 1) != 0) {
		snprintf(note, sizeof(note), "%.980s; retrying", what);
		ui_jig_note(e->u, w->idx, note);
		snprintf(w->trouble, sizeof(w->trouble), "%s", what);
	}
	for (unsigned i = 1; i < w->attempts && ms < ENG_JIG_PAUSE_MAX_MS; i++)
		ms *= 2;
	sleep_ms(e, ms < ENG_JIG_PAUSE_MAX_MS ? (int)ms : ENG_JIG_PAUSE_MAX_MS);
	return 0;
}

/* The device is done (passed, or failed at step), found in the jig at t0:
 * count it. */
static void
device_done(struct worker *w, struct dev *d, int passed, const char *step, double t0)
{
	metrics_device(w->eng->st->metrics, w->idx, passed, step, passed ? NULL : eng_failure_code(&d->err),
	    metrics_now() - t0);
}

/* Rewrite the metrics file, once the jig has its device back (the next
 * one need not wait for the fsync).  A write that fails is told once, and
 * again after one that worked; the run goes on (the journal, not the
 * dashboard, is the record). */
static void
metrics_write(struct worker *w)
{
	struct engine *e = w->eng;
	st_err err;
	int rc, tell;

	if (!e->st->metrics)
		return;
	rc = metrics_update(e->st->metrics, e->st, 1, &err);
	pthread_mutex_lock(&e->lock);
	tell = rc < 0 && !e->metrics_failing;
	e->metrics_failing = rc < 0;
	pthread_mutex_unlock(&e->lock);
	if (tell) {
		char note[1200];

		snprintf(note, sizeof(note), "%.1000s (the run goes on; the dashboard shows old counts)", err.msg);
		ui_jig_note(e->u, w->idx, note);
	}
}

void
eng_dev_clear(struct dev *d)
{
	tpm_state_free(d->tpm);
	d->tpm = NULL;
	EVP_PKEY_free(d->attest_key);
	X509_REQ_free(d->csr);
	X509_free(d->cert);
	OPENSSL_free(d->cert_der);
}

/* After a device failed: when the recipe's halt rules are met, stop
 * issuing on every jig at once, then journal the halt (one worker does). */
static void
check_halt(struct worker *w)
{
	struct engine *e = w->eng;
	char reason[32], msg[512], full[sizeof(e->fatal_msg)], id[33];
	uint64_t seq = 0;
	int first;
	st_err err;

	if (!station_halt_due(e->st, reason, sizeof(reason), msg, sizeof(msg)))
		return;
	pthread_mutex_lock(&e->lock);
	first = !e->halting;
	e->halting = 1;
	pthread_mutex_unlock(&e->lock);
	if (!first)
		return;
	eng_set_stop(e, RUN_STOP_HALT, msg);
	if (station_halt(e->st, reason, msg, &seq, id, &err) < 0) {
		eng_stop_write(e, &err);
		return;
	}
	snprintf(full, sizeof(full), "%s (halt %llu:%s); no certificate is issued until an authorizer signs a resume: "
	    "station authorize resume --recipe FILE ..., then station run --authorization FILE", msg,
	    (unsigned long long)seq, id);
	pthread_mutex_lock(&e->lock);
	if (e->end == RUN_STOP_HALT)
		snprintf(e->fatal_msg, sizeof(e->fatal_msg), "%s", full);
	pthread_mutex_unlock(&e->lock);
}

/* One SE serial on one jig at a time: the same serial on two jigs at once is
 * two SEs claiming one identity, and resume would let the second supersede
 * the first.  The journal catches a clone that comes after a pass; this
 * catches the one that comes at the same moment. */
static int
take_serial(struct worker *w, struct dev *d)
{
	struct engine *e = w->eng;
	size_t i;
	int ret = 0;

	pthread_mutex_lock(&e->lock);
	for (i = 0; i < e->nworkers; i++)
		if (&e->workers[i] != w && strcmp(e->workers[i].active, d->info.serial) == 0) {
			st_err_set(&d->err, ST_E_STATE, "SE %s is being provisioned on jig %s at this moment: two SEs with "
			                                "one serial (cloned SE?)", d->info.serial, e->workers[i].uri);
			ret = eng_fail(d, STEP_POSTURE, ADV_QUARANTINE);
			break;
		}
	if (ret == 0)
		snprintf(w->active, sizeof(w->active), "%s", d->info.serial);
	pthread_mutex_unlock(&e->lock);
	return ret;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct engine *e = w->eng;
	struct dev *d = malloc(sizeof(*d));
	st_err err;

	if (!d) {
		eng_set_fatal(e, "out of memory");
		pthread_mutex_lock(&e->lock);
		e->running--;
		pthread_mutex_unlock(&e->lock);
		return NULL;
	}
	while (!eng_stopping(e) && !done_claiming(e)) {
		double t0;
		int rc;

		if (!w->client) {
			if (eng_open_jig(w, &err) < 0) {
				w->open_failed = 1;
				if (jig_trouble(w, err.msg))
					break;
				continue;
			}
			if (w->open_failed)
				ui_jig_note(e->u, w->idx, "jig connected again");
			w->open_failed = 0;
		}
		if (w->pending_release) {
			if (eng_release(w, &err) < 0 && jig_trouble(w, err.msg))
				break;
			continue;
		}
		memset(d, 0, sizeof(*d));
		if ((rc = eng_wait_device(w, d, &err)) != 0) {
			if (rc < 0) {
				eng_drop_client(w);
				if (jig_trouble(w, err.msg))
					break;
			}
			continue;
		}
		if (!claim(e))
			break;
		t0 = metrics_now();
		ui_device_start(e->u, w->idx, d->info.serial);
		rc = take_serial(w, d) < 0 ? -1 : provision(w, d);
		if (rc == 0) {
			if (eng_journal(w, d, STEP_DONE, "pass", json_pack("{s:s,s:b}", "cert_serial", d->cert_serial, "resumed",
			        d->resumed)) >= 0) {
				ui_pass(e->u, w->idx, d->info.serial, d->cert_serial, d->resumed);
				device_done(w, d, 1, NULL, t0);
				eng_release(w, &err);
			} else {
				eng_report_fail(w, d, STEP_DONE);
				device_done(w, d, 0, STEP_DONE, t0);
			}
		} else if (rc > 0) {
			/* Stopped (Ctrl-C) before anything was signed: the device stays
			 * in the jig and resumes on the next run. */
			eng_journal(w, d, STEP_ABANDONED, "abandoned", json_pack("{s:s}", "reason", "the run was stopped"));
			ui_jig_note(e->u, w->idx, "run stopped: device left in the jig, it resumes on the next run");
		} else {
			eng_journal(w, d, d->step, "fail", json_pack("{s:s,s:s,s:s}", "error", d->err.msg, "advice",
			    advice_text[d->advice], "disposition", advice_name[d->advice]));
			eng_report_fail(w, d, d->step);
			device_done(w, d, 0, d->step, t0);
			check_halt(w);
			if (eng_is_link_error(&d->err))
				eng_drop_client(w);
			if (w->client)
				eng_release(w, &err);
			else
				w->pending_release = 1;
		}
		if (rc <= 0)
			metrics_write(w);
		pthread_mutex_lock(&e->lock);
		w->active[0] = '\0';
		pthread_mutex_unlock(&e->lock);
		eng_dev_clear(d);
	}
	tpm_state_free(d->tpm); /* a device identified but not claimed */
	free(d);
	eng_drop_client(w);
	pthread_mutex_lock(&e->lock);
	e->running--;
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

int
engine_run(station *st, const char *const *jigs, size_t njigs, unsigned count, volatile sig_atomic_t *stop,
    volatile sig_atomic_t *quit, ui *u, engine_result *res)
{
	/* Static: on *quit the workers go on using it until the process exits. */
	static struct engine e;
	struct worker *w = calloc(njigs, sizeof(*w));
	size_t i, started = 0, reachable = 0;
	st_err err, first_err = { 0 };

	memset(res, 0, sizeof(*res));
	if (!w)
		return -1;
	e = (struct engine){ .st = st, .u = u, .stop = stop, .count = count };
	e.workers = w;
	e.nworkers = njigs;
	pthread_mutex_init(&e.lock, NULL);
	if (eng_keys_load(&e, &err) < 0) {
		eng_set_fatal(&e, err.msg);
		njigs = 0;
	}
	/* A used-up shift stops the run before any device is touched; the
	 * refusal is recorded like the one at JOURNAL. */
	if (njigs && station_quota_check(st, &err) < 0) {
		st_err jerr;

		if (station_journal(st, NULL, NULL, "quota", "fail", json_pack("{s:s}", "error", err.msg), 0, &jerr) < 0)
			eng_stop_write(&e, &jerr);
		eng_set_stop(&e, RUN_STOP_QUOTA, err.msg);
		njigs = 0;
	}
	/* A halted journal issues nothing until a signed resume lifts it. */
	if (njigs && station_halt_check(st, &err) < 0) {
		eng_set_stop(&e, RUN_STOP_HALT, err.msg);
		njigs = 0;
	}
	/* A jig that cannot be reached at all when the run starts is a wrong
	 * URI or an unplugged jig: with none reachable, stop with a
	 * configuration error (exit 2) rather than retry forever.  A jig lost
	 * later, or one of several that is down, is reopened by its worker. */
	for (i = 0; i < njigs; i++) {
		w[i].eng = &e;
		w[i].idx = i;
		w[i].uri = jigs[i];
		if (eng_open_jig(&w[i], &err) == 0)
			reachable++;
		else if (!first_err.msg[0])
			first_err = err;
	}
	if (!reachable && njigs) {
		char msg[sizeof(e.fatal_msg)];

		/* A jig that answered HELLO with what the protocol does not allow
		 * (a malformed rate list, say) was reached: its firmware is wrong. */
		int proto = first_err.code == ST_E_PROTO;
		const char *advice = proto ? "the jig answers but breaks the jig protocol: update its firmware (or the station)" :
		    "check the jig URI (--jig or the recipe's jig.uri), that the jig is powered and connected";

		snprintf(msg, sizeof(msg), "%s %s%s: %.800s; %s, then run again",
		    njigs == 1 ? "the jig cannot be" : "none of the jigs can be", proto ? "used" : "reached",
		    njigs == 1 ? "" : ", the first", first_err.msg, advice);
		eng_set_fatal(&e, msg);
		njigs = 0; /* start no worker */
	}
	for (i = 0; i < njigs; i++) {
		pthread_mutex_lock(&e.lock);
		e.running++;
		pthread_mutex_unlock(&e.lock);
		if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0) {
			eng_set_fatal(&e, "cannot start a worker thread");
			pthread_mutex_lock(&e.lock);
			e.running--;
			pthread_mutex_unlock(&e.lock);
			break;
		}
		started++;
	}
	for (;;) {
		unsigned running;

		pthread_mutex_lock(&e.lock);
		running = e.running;
		pthread_mutex_unlock(&e.lock);
		if (!running || (quit && *quit))
			break;
		ui_tick(u);
		nanosleep(&(struct timespec){ 0, 250000000L }, NULL);
	}
	if (quit && *quit) {
		/* Quit now: the workers are left as they are (the caller exits); a
		 * device in progress resumes on the next run, as after a crash. */
		ui_counts(u, &res->passed, &res->failed);
		res->end = RUN_STOP_QUIT;
		return 0;
	}
	for (i = 0; i < started; i++)
		pthread_join(w[i].thread, NULL);
	ui_counts(u, &res->passed, &res->failed);
	res->fatal = e.fatal;
	snprintf(res->fatal_msg, sizeof(res->fatal_msg), "%s", e.fatal_msg);
	if (e.fatal)
		res->end = e.end;
	else if (e.count && res->passed + res->failed >= e.count)
		res->end = RUN_COMPLETED; /* a stop that came while the last device was finishing stopped nothing */
	else if (*stop == SIGTERM)
		res->end = RUN_STOP_SIGTERM;
	else if (*stop == SIGHUP)
		res->end = RUN_STOP_SIGHUP;
	else if (*stop)
		res->end = RUN_STOP_INTERRUPT;
	else
		res->end = RUN_COMPLETED;
	eng_keys_free(&e);
	pthread_mutex_destroy(&e.lock);
	free(w);
	return 0;
}
