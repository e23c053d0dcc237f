/* station run: provision the devices on one or more jigs with a recipe. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "cli.h"
#include "commands.h"
#include "engine.h"
#include "metrics.h"
#include "recipe.h"
#include "station.h"
#include "step.h"

/* The number of the first signal that asked to stop; quit_now after a second. */
static volatile sig_atomic_t stop_requested, quit_now;

static void
say(const char *msg)
{
	if (write(STDERR_FILENO, msg, strlen(msg)) < 0) {
		/* nothing to do: the flag is what matters (a closed terminal) */
	}
}

static void
on_signal(int sig)
{
	if (quit_now) {
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	if (stop_requested) {
		say("\nquitting now: devices in progress resume on the next run\n");
		quit_now = 1;
		return;
	}
	stop_requested = sig;
	say(sig == SIGINT ? "\nstopping: finishing the devices past signing, the others resume on the next run (Ctrl-C again "
	                    "to quit now)\n"
	    : sig == SIGHUP ? "\nstopping on SIGHUP (terminal closed): finishing the devices past signing, the others "
	                      "resume on the next run\n"
	                    : "\nstopping on SIGTERM: finishing the devices past signing, the others resume on the next run "
	                      "(a second signal quits now)\n");
}

/* The exit code for how the run ended (README "Exit codes"). */
static int
exit_for(const engine_result *res, unsigned long count)
{
	switch (res->end) {
	case RUN_COMPLETED:
		return res->failed ? EXIT_FAIL : EXIT_OK;
	case RUN_STOP_INTERRUPT:
		/* Without --count the operator's Ctrl-C is how a run ends. */
		if (!count)
			return res->failed ? EXIT_FAIL : EXIT_OK;
		return EXIT_STOPPED;
	case RUN_STOP_DISK_FULL:
	case RUN_STOP_JOURNAL:
		return EXIT_DISK;
	case RUN_STOP_CONFIG:
		return EXIT_USAGE;
	default:
		return EXIT_STOPPED;
	}
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: station run --recipe FILE [--jig URI]... [--count N] [--operator NAME] [--json]\n"
	    "                   [--require-signed] [--trust PEM] [--metrics FILE.prom] [--authorization FILE]\n"
	    "                   " CLI_PIN_SYNOPSIS "\n"
	    "\n"
	    "Provision every device presented on the jigs: identify, check posture, authenticate,\n"
	    "generate the key in the SE, verify the attested CSR, sign, install, read back, lock.\n"
	    "\n"
	    "  --recipe FILE      the recipe (see station-recipe(5))\n"
	    "  --jig URI          tcp:HOST:PORT, serial:PATH?baud=N, usb:VID:PID[?serial=S];\n"
	    "                     repeat for several jigs (default: the recipe's jig.uri)\n"
	    "  --count N          stop after N devices in total (default: until Ctrl-C)\n"
	    "  --operator NAME    recorded in every audit record (default: $USER)\n"
	    "  --json             one JSON event per line on stdout, for MES integration\n"
	    "  --require-signed   refuse a recipe without a valid signature (see station recipe sign)\n"
	    "  --trust PEM        trust anchors for recipe signatures\n"
	    "  --metrics FILE     write the run's metrics there after every device, for node_exporter's\n"
	    "                     textfile collector (default: the recipe's metrics.file; see station(1))\n"
	    "  --authorization FILE  a signed resume (station authorize resume) that lifts the\n"
	    "                     anomaly halt the journal holds (recipe halt:); used once\n"
	    CLI_PIN_HELP
	    "\n"
	    "Exit: 0 every device passed and --count was reached (without --count: stopped by Ctrl-C),\n"
	    "1 a device failed, 2 usage or configuration error, 3 stopped early (signal, quota, HSM,\n"
	    "every jig taken out, anomaly halt), 4 the audit folder cannot be written (disk full).\n");
}

/* Certificates issued for devices that then failed, and never installed,
 * are revoked at the end of the run (issue 8: cessationOfOperation): every
 * such certificate of the device, not only its latest (a TPM has two). */
struct sweep {
	history_cert *list;
	size_t n, cap;
};

static int
sweep_push(struct sweep *s, const history_cert *c)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		history_cert *l = realloc(s->list, cap * sizeof(*l));

		if (!l)
			return 1;
		s->list = l;
		s->cap = cap;
	}
	s->list[s->n++] = *c;
	return 0;
}

/* The header and the run_started event (and rework's). */
void
cmd_ui_start(ui *u, station *st, const char *command, unsigned count)
{
	const recipe *r = st->rcp;
	unsigned char id[16];
	char run_id[33];
	size_t i;
	ui_run_info info = {
		.command = command,
		.run_id = run_id,
		.station_id = r->audit.station_id,
		.operator_name = st->operator_name,
		.recipe_name = r->recipe.name,
		.recipe_version = r->recipe.version,
		.recipe_digest = r->digest,
		.product = r->product.name,
		.count = count,
	};

	/* A random run id: what an MES joins this run's events on. */
	if (RAND_bytes(id, sizeof(id)) != 1)
		memset(id, 0, sizeof(id));
	for (i = 0; i < sizeof(id); i++)
		snprintf(run_id + 2 * i, 3, "%02x", id[i]);
	ui_start(u, &info);
}

static int
collect_failed(const history_device *e, void *ctx)
{
	struct sweep *s = ctx;
	history_cert c;

	/* A failed device's certificates are looked at afterwards (the history
	 * cannot be asked from inside its iteration): only .device is set. */
	if (e->state != HISTORY_FAILED || !e->issued)
		return 0;
	memset(&c, 0, sizeof(c));
	snprintf(c.device, sizeof(c.device), "%s", e->serial);
	return sweep_push(s, &c);
}

static int
collect_uninstalled(const history_cert *c, void *ctx)
{
	struct sweep *s = ctx;

	if (!c->issued || c->installed || c->revoked)
		return 0;
	return sweep_push(s, c);
}

static void
note_closed(const history_cert *c, void *ctx)
{
	ui_revoked(ctx, c->device, c->serial, "cessationOfOperation",
	    "announced and never issued (the station stopped while the HSM signed): closed out");
}

static int
revoke_abandoned(station *st, ui *u, st_err *err)
{
	struct sweep s = { 0 }, devs = { 0 };
	size_t i;
	int ret = 0;

	/* The HSM failed after the "issuing" record: the serial is closed out. */
	if (station_close_announced(st, note_closed, u, err) < 0)
		return -1;

	if (history_foreach_device(st->history, collect_failed, &devs) != 0)
		ret = st_err_set(err, ST_E_NOMEM, "out of memory");
	for (i = 0; i < devs.n && ret == 0; i++)
		if (history_foreach_device_cert(st->history, devs.list[i].device, collect_uninstalled, &s) != 0)
			ret = st_err_set(err, ST_E_NOMEM, "out of memory");
	for (i = 0; i < s.n && ret == 0; i++) {
		history_cert *e = &s.list[i];

		ret = station_journal(st, NULL, e->device, STEP_REVOKE, "ok",
		    json_pack("{s:s,s:s,s:s}", "cert_serial", e->serial, "reason", "cessationOfOperation", "why",
		        "issued but never installed: the device failed after signing"),
		    0, err);
		if (ret == 0 && station_retire_cert(st, e->device, e->serial, err) < 0)
			ret = -1;
		if (ret == 0)
			ui_revoked(u, e->device, e->serial, "cessationOfOperation",
			    "issued but never installed: the device failed after signing");
	}
	free(devs.list);
	free(s.list);
	return ret;
}

int
cmd_run_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "recipe", required_argument, NULL, 'r' },
		{ "jig", required_argument, NULL, 'j' },
		{ "count", required_argument, NULL, 'n' },
		{ "operator", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'J' },
		{ "require-signed", no_argument, NULL, 'S' },
		{ "trust", required_argument, NULL, 't' },
		{ "metrics", required_argument, NULL, 'm' },
		{ "authorization", required_argument, NULL, 'A' },
		CLI_PIN_LONGOPTS,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *recipe_path = NULL, *operator_name = NULL, *trust = NULL, *metrics_file = NULL;
	const char *authz_path = NULL;
	const char **jigs = NULL;
	size_t njigs = 0;
	unsigned long count = 0;
	int json = 0, require_signed = 0, c, pc, ret = EXIT_USAGE;
	cli_pin pin = { 0 };
	station *st = NULL;
	metrics *m = NULL;
	ui *u = NULL;
	engine_result res;
	struct sigaction sa;
	st_err err;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if ((pc = cli_pin_option(&pin, "run", c, optarg)) != 0) {
			if (pc < 0)
				goto out;
			continue;
		}
		switch (c) {
		case 'r':
			recipe_path = optarg;
			break;
		case 'j': {
			const char **n = realloc(jigs, (njigs + 1) * sizeof(*jigs));

			if (!n)
				goto out;
			jigs = n;
			jigs[njigs++] = optarg;
			break;
		}
		case 'n': {
			char *end;

			count = strtoul(optarg, &end, 10);
			if (*optarg == '-' || *end || count == 0 || count > 10000000) {
				fprintf(stderr, "station run: --count: expected a positive number, got \"%s\"\n", optarg);
				goto out;
			}
			break;
		}
		case 'o':
			operator_name = optarg;
			break;
		case 'J':
			json = 1;
			break;
		case 'S':
			require_signed = 1;
			break;
		case 't':
			trust = optarg;
			break;
		case 'm':
			metrics_file = optarg;
			break;
		case 'A':
			authz_path = optarg;
			break;
		case 'h':
			usage(stdout);
			ret = EXIT_OK;
			goto out;
		default:
			usage(stderr);
			goto out;
		}
	}
	if (optind != argc || !recipe_path) {
		fprintf(stderr, "station run: %s\n", recipe_path ? "unexpected argument" : "--recipe FILE is required");
		usage(stderr);
		goto out;
	}
	operator_name = cli_operator(operator_name);
	if (station_open(recipe_path, operator_name, STATION_OPEN_HSM | STATION_OPEN_JOURNAL, require_signed, trust,
	        &pin, &st, &err) < 0) {
		fprintf(stderr, "station run: %s\n", err.msg);
		goto out;
	}
	cli_station_warnings("run", st);
	/* A signed resume lifts the anomaly halt the journal holds (once). */
	if (authz_path) {
		char signer[512];

		if (station_halt_resume(st, authz_path, signer, sizeof(signer), &err) < 0) {
			fprintf(stderr, "station run: %s\n", err.msg);
			ret = err.sys == ENOSPC || err.sys == EDQUOT ? EXIT_DISK : EXIT_USAGE;
			goto out;
		}
		fprintf(stderr, "station run: halt lifted: resume authorized by %s\n", signer);
	}
	if (njigs == 0) {
		const char *def = station_default_jig(st);

		if (!def) {
			fprintf(stderr, "station run: no --jig given and the recipe names no jig.uri\n");
			goto out;
		}
		if (!(jigs = malloc(sizeof(*jigs))))
			goto out;
		jigs[njigs++] = def;
	}
	/* The metrics file is written once before any device, so a path that
	 * cannot be written stops the run here rather than on the first device. */
	if (!metrics_file)
		metrics_file = st->rcp->metrics.file;
	if (metrics_file && (!(m = metrics_new(metrics_file, njigs, jigs, &err)) || metrics_update(m, st, 1, &err) < 0)) {
		fprintf(stderr, "station run: %s%s\n", m ? "" : "--metrics or metrics.file: ", err.msg);
		metrics_free(m);
		m = NULL;
		goto out;
	}
	st->metrics = m;
	if (!(u = ui_new(ui_mode_for(stdout, json), stdout, njigs, jigs))) {
		fprintf(stderr, "station run: out of memory\n");
		goto out;
	}
	cmd_ui_start(u, st, "run", (unsigned)count);

	/* A run stopped between an "issuing" record and its "issued" record
	 * left a serial announced: close it out before anything else. */
	if (station_close_announced(st, note_closed, u, &err) < 0) {
		fprintf(stderr, "station run: journal: %s\n", err.msg);
		ret = err.sys == ENOSPC || err.sys == EDQUOT ? EXIT_DISK : EXIT_USAGE;
		goto out;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: blocking waits return and see the flag */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* A resize is taken by the main thread's ui_tick; blocked here, before
	 * the workers start, it interrupts no jig or HSM call. */
	ui_block_winch();

	engine_run(st, jigs, njigs, (unsigned)count, &stop_requested, &quit_now, u, &res);
	if (res.end == RUN_STOP_QUIT) {
		/* The workers are still running: say how it ended and leave, as a
		 * crash would (the journal recovers its tail, devices resume). */
		ui_summary(u, run_end_name(res.end), run_end_text(res.end), NULL);
		metrics_update(m, st, 0, &err);
		_exit(EXIT_STOPPED);
	}

	if (revoke_abandoned(st, u, &err) < 0 && !res.fatal) {
		res.fatal = 1;
		res.end = err.sys == ENOSPC || err.sys == EDQUOT ? RUN_STOP_DISK_FULL : RUN_STOP_JOURNAL;
		snprintf(res.fatal_msg, sizeof(res.fatal_msg), "%s", err.msg);
	}
	{
		char how[160];

		if (res.end == RUN_COMPLETED)
			snprintf(how, sizeof(how), "run completed: %u of --count %lu", res.passed + res.failed, count);
		else if (count)
			snprintf(how, sizeof(how), "run %s after %u of --count %lu", run_end_text(res.end),
			    res.passed + res.failed, count);
		else
			snprintf(how, sizeof(how), "run %s", run_end_text(res.end));
		if (res.fatal)
			ui_halt(u, (size_t)-1, run_end_name(res.end), res.fatal_msg);
		ui_summary(u, run_end_name(res.end), how, res.fatal ? res.fatal_msg : NULL);
	}
	if (res.fatal)
		fprintf(stderr, "station run: %s: %s\n", run_end_text(res.end), res.fatal_msg);
	ret = exit_for(&res, count);
out:
	/* However the run ended, the dashboard sees it is over. */
	if (m && metrics_update(m, st, 0, &err) < 0)
		fprintf(stderr, "station run: warning: %s\n", err.msg);
	ui_free(u);
	station_close(st);
	metrics_free(m);
	free(jigs);
	return ret;
}
