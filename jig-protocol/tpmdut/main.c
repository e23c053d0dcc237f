/* tpmdut: serve the jig protocol for a panel of TPM 2.0 devices.
 *   tpmdut --tcti device:/dev/tpmrm0 --listen tcp:0.0.0.0:4000
 *   tpmdut --tcti swtpm:host=127.0.0.1,port=2321 --tcti swtpm:...,port=2331 --port-file F
 * One connection at a time; the TPMs keep their state across connections. */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "jig-wire.h"
#include "station-config.h"
#include "tpmdut.h"

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: tpmdut --tcti TCTI [--keys-tcti TCTI] [--fault NAME]... [--tcti TCTI ...]\n"
	           "              [--listen tcp:HOST:PORT] [--port-file FILE] [--id N] [--timing]\n"
	           "  --tcti TCTI        a device of the panel, in order: its TPM (device:/dev/tpmrm0,\n"
	           "                     swtpm:host=127.0.0.1,port=2321); the options below apply to the last one\n"
	           "  --keys-tcti TCTI   test fault: the device's IAK and IDevID live in this other TPM\n"
	           "  --fault NAME       test fault: imported-idevid, stale-nonce, certify-other-key,\n"
	           "                     rework-other-key, replay-challenge, stall-nv-write\n"
	           "  --listen URI       where to listen (default tcp:127.0.0.1:0, an ephemeral port)\n"
	           "  --port-file FILE   write the bound URI there once listening\n"
	           "  --id N             jig id tpmdut-N (default: the process id)\n"
	           "  --timing           print \"timing DEVICE COMMAND MS\" for every TPM command\n");
}

/* One connection, until the station goes away or a signal. */
static void
serve(tpmdut *t, jig_transport *tr)
{
	jig_stream *s = malloc(sizeof(*s));
	jig_frame *f = malloc(sizeof(*f));
	uint8_t *raw = malloc(JIG_MAX_FRAME), *resp = malloc(JIG_MAX_FRAME), buf[4096];
	size_t got, raw_len, resp_len;
	st_err e;

	if (!s || !f || !raw || !resp)
		goto out;
	tpmdut_connection_reset(t);
	jig_stream_init(s);
	while (!stop) {
		if (tr->ops->read(tr, buf, sizeof(buf), &got, 100, &e) < 0) {
			if (e.code == ST_E_TIMEOUT)
				continue;
			break;
		}
		if (jig_stream_feed(s, buf, got) < 0) {
			jig_stream_discard(s);
			jig_stream_feed(s, buf, got);
		}
		while (jig_stream_next(s, f)) {
			if (jig_frame_encode(f, raw, JIG_MAX_FRAME, &raw_len, &e) < 0 ||
			    tpmdut_handle(t, raw, raw_len, resp, JIG_MAX_FRAME, &resp_len, &e) < 0) {
				fprintf(stderr, "tpmdut: %s\n", e.msg);
				goto out;
			}
			if (resp_len > 0 && tr->ops->write(tr, resp, resp_len, 5000, &e) < 0)
				goto out;
		}
	}
out:
	tpmdut_connection_reset(t);
	free(s);
	free(f);
	free(raw);
	free(resp);
}

int
main(int argc, char **argv)
{
	enum { O_TCTI = 1, O_KEYS, O_FAULT, O_LISTEN, O_PORT_FILE, O_ID, O_TIMING, O_HELP, O_VERSION };
	static const struct option opts[] = {
		{ "tcti", required_argument, NULL, O_TCTI },
		{ "keys-tcti", required_argument, NULL, O_KEYS },
		{ "fault", required_argument, NULL, O_FAULT },
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "port-file", required_argument, NULL, O_PORT_FILE },
		{ "id", required_argument, NULL, O_ID },
		{ "timing", no_argument, NULL, O_TIMING },
		{ "help", no_argument, NULL, O_HELP },
		{ "version", no_argument, NULL, O_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	tpmdut_device_cfg devs[64];
	const char *listen_uri = "tcp:127.0.0.1:0", *port_file = NULL;
	char bound[300], name[400], *end;
	unsigned id = (unsigned)getpid(), fault;
	size_t ndevs = 0;
	struct sigaction sa;
	tpmdut *t = NULL;
	int o, fd = -1, lfd = -1, ret = 2, one = 1, timing = 0;
	unsigned long v;
	st_err err;

	st_log_from_env();
	/* tpm2-tss logs a warning for every absent handle we look up: quiet
	 * unless asked (TSS2_LOG=all+debug). */
	setenv("TSS2_LOG", "all+none", 0);
	memset(devs, 0, sizeof(devs));
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case O_TCTI:
			if (ndevs == sizeof(devs) / sizeof(devs[0])) {
				fprintf(stderr, "tpmdut: at most %zu devices\n", ndevs);
				return 2;
			}
			devs[ndevs++].tcti = optarg;
			break;
		case O_KEYS:
		case O_FAULT:
			if (!ndevs) {
				fprintf(stderr, "tpmdut: --%s applies to a device: give --tcti first\n", o == O_KEYS ? "keys-tcti" : "fault");
				return 2;
			}
			if (o == O_KEYS) {
				devs[ndevs - 1].keys_tcti = optarg;
			} else if (!(fault = tpmdut_fault_parse(optarg))) {
				fprintf(stderr, "tpmdut: --fault: no fault \"%s\" (see --help)\n", optarg);
				return 2;
			} else {
				devs[ndevs - 1].faults |= fault;
			}
			break;
		case O_LISTEN: listen_uri = optarg; break;
		case O_PORT_FILE: port_file = optarg; break;
		case O_ID:
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || v > 1000000000) {
				fprintf(stderr, "tpmdut: --id: expected a number, got \"%s\"\n", optarg);
				return 2;
			}
			id = (unsigned)v;
			break;
		case O_TIMING: timing = 1; break;
		case O_VERSION: printf("tpmdut %s\n", STATION_VERSION); return 0;
		case O_HELP: usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc || !ndevs) {
		fprintf(stderr, optind < argc ? "tpmdut: unexpected argument\n" : "tpmdut: no device: give --tcti\n");
		usage(stderr);
		return 2;
	}
	st_err_clear(&err);
	if (!(t = tpmdut_new(id, devs, ndevs, &err)) || jig_transport_tcp_listen(listen_uri, &lfd, bound, sizeof(bound), &err) < 0) {
		fprintf(stderr, "tpmdut: %s\n", err.msg);
		goto out;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (port_file && st_file_write_atomic(port_file, bound, strlen(bound), 0644, &err) < 0) {
		fprintf(stderr, "tpmdut: --port-file: %s\n", err.msg);
		goto out;
	}
	tpmdut_set_timing(t, timing);
	printf("tpmdut: listening on %s, %zu device%s\n", bound, ndevs, ndevs == 1 ? "" : "s");
	fflush(stdout);
	ret = 0;
	while (!stop) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		jig_transport *tr;

		if (poll(&p, 1, 100) <= 0)
			continue;
		if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		snprintf(name, sizeof(name), "%s (station connection)", bound);
		if (!(tr = jig_transport_fd_new(fd, name))) {
			ret = 1;
			break;
		}
		serve(t, tr);
		jig_transport_free(tr);
	}
out:
	if (lfd >= 0)
		close(lfd);
	tpmdut_free(t);
	return ret;
}
