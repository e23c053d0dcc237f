/* jigsim: the simulated jig + DUT + SE as a TCP server (see jigsim.h). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "jigsim.h"
#include "station-config.h"

static jigsim *the_sim;

static void
on_signal(int sig)
{
	(void)sig;
	if (the_sim)
		jigsim_stop(the_sim);
}

static void
on_pause(void *arg, uint8_t cmd, int after)
{
	(void)arg;
	printf("jigsim: paused %s %s\n", jig_cmd_name(cmd), after ? "after" : "before");
	fflush(stdout);
}

static void
usage(FILE *f)
{
	unsigned i;

	fprintf(f,
	    "usage: jigsim --pki DIR [options]\n"
	    "Simulated test jig with a panel of DUTs, each with a simulated Secure Element.\n"
	    "\n"
	    "  --pki DIR              test PKI from fixtures/make-test-pki (se-vendor-ca.{pem,key}, tool-pub.pem)\n"
	    "  --vendor-ca-cert FILE  SE vendor batch CA certificate (PEM; overrides --pki)\n"
	    "  --vendor-ca-key FILE   its private key (PEM)\n"
	    "  --tool-pub FILE        tool public key the SEs are personalised with (PEM)\n"
	    "  --listen URI           tcp:HOST:PORT, port 0 = ephemeral (default tcp:127.0.0.1:0)\n"
	    "  --port-file FILE       write the bound URI there once listening\n"
	    "  --devices N            devices in the panel, 0 = unlimited (default)\n"
	    "  --serial-prefix P      SE serial = P + 16 hex digits (default SE)\n"
	    "  --model NAME           SE model (default TSE-100)\n"
	    "  --firmware X.Y.Z       SE firmware version (default 1.4.2)\n"
	    "  --id N                 jig id jigsim-N (default: the process id)\n"
	    "  --keygen-ms MS         KEYGEN latency\n"
	    "  --csr-ms MS            GET_CSR latency (attestation signature)\n"
	    "  --cmd-ms MS            latency of every other command\n"
	    "  --baud N               emulated line speed, 8N1 (default: none)\n"
	    "  --protocol 1.0|1.1|1.2 highest protocol version to speak (default 1.2; 1.0 and 1.1 play older jig firmware)\n"
	    "  --rates R1,R2,...      1.1: line rates HELLO lists and SET_BAUD switches --baud's line to (ascending)\n"
	    "  --baud-fail            after SET_BAUD nothing arrives intact at the new rate: the switch reverts\n"
	    "  --fault NAME           inject a fault (repeatable), one of:\n"
	    "                        ");
	for (i = 0; jigsim_fault_name(1u << i); i++)
		fprintf(f, " %s", jigsim_fault_name(1u << i));
	fprintf(f,
	    "\n"
	    "  --fault-every K        faults hit devices K, 2K, 3K... (default 1: every device)\n"
	    "  --slow-ms MS           slow-reply delay (default 10000)\n"
	    "  --pause CMD:before|after  once: stop answering at the first CMD until the station disconnects\n"
	    "  --serial S             every device gets serial S (clones: the station must refuse them)\n"
	    "  --rma                  a device released provisioned comes straight back once (an RMA return,\n"
	    "                         for station rework)\n"
	    "  --no-rework            a jig without rework: no capability bit 2, no REWORK_CHALLENGE or RETIRE\n"
	    "  --version, --help\n");
}

static int
parse_uint(const char *opt, const char *v, unsigned max, unsigned *out)
{
	char *end = NULL;
	unsigned long n = strtoul(v, &end, 10);

	if (!*v || *end || *v == '-' || n > max) {
		fprintf(stderr, "jigsim: %s: expected a number 0..%u, got \"%s\"\n", opt, max, v);
		return -1;
	}
	*out = (unsigned)n;
	return 0;
}

static int
parse_pause(const char *v, jigsim_config *c)
{
	const char *colon = strchr(v, ':');
	unsigned cmd;

	if (colon && (strcmp(colon + 1, "before") == 0 || strcmp(colon + 1, "after") == 0)) {
		for (cmd = JIG_CMD_HELLO; cmd <= JIG_CMD_LAST; cmd++) {
			const char *name = jig_cmd_name((uint8_t)cmd);

			if (strlen(name) == (size_t)(colon - v) && strncasecmp(v, name, strlen(name)) == 0) {
				c->pause_cmd = (uint8_t)cmd;
				c->pause_after = strcmp(colon + 1, "after") == 0;
				return 0;
			}
		}
	}
	fprintf(stderr, "jigsim: --pause: expected CMD:before or CMD:after with CMD a command name such as KEYGEN, "
	    "got \"%s\"\n", v);
	return -1;
}

static int
parse_firmware(const char *v, uint32_t *fw)
{
	unsigned a, b, c;
	char extra;

	if (sscanf(v, "%u.%u.%u%c", &a, &b, &c, &extra) != 3 || a > 255 || b > 255 || c > 65535) {
		fprintf(stderr, "jigsim: --firmware: expected MAJOR.MINOR.PATCH, got \"%s\"\n", v);
		return -1;
	}
	*fw = a << 24 | b << 16 | c;
	return 0;
}

int
main(int argc, char **argv)
{
	enum { O_PKI = 256, O_CA_CERT, O_CA_KEY, O_TOOL, O_LISTEN, O_PORT_FILE, O_DEVICES, O_PREFIX, O_MODEL, O_FW,
		O_ID, O_KEYGEN, O_CSR, O_CMD, O_BAUD, O_FAULT, O_EVERY, O_SLOW, O_PAUSE, O_RMA, O_NO_REWORK, O_SERIAL, O_PROTOCOL, O_RATES, O_BAUD_FAIL, O_VERSION, O_HELP };
	static const struct option opts[] = {
		{ "pki", required_argument, NULL, O_PKI },
		{ "vendor-ca-cert", required_argument, NULL, O_CA_CERT },
		{ "vendor-ca-key", required_argument, NULL, O_CA_KEY },
		{ "tool-pub", required_argument, NULL, O_TOOL },
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "port-file", required_argument, NULL, O_PORT_FILE },
		{ "devices", required_argument, NULL, O_DEVICES },
		{ "serial-prefix", required_argument, NULL, O_PREFIX },
		{ "model", required_argument, NULL, O_MODEL },
		{ "firmware", required_argument, NULL, O_FW },
		{ "id", required_argument, NULL, O_ID },
		{ "keygen-ms", required_argument, NULL, O_KEYGEN },
		{ "csr-ms", required_argument, NULL, O_CSR },
		{ "cmd-ms", required_argument, NULL, O_CMD },
		{ "baud", required_argument, NULL, O_BAUD },
		{ "fault", required_argument, NULL, O_FAULT },
		{ "fault-every", required_argument, NULL, O_EVERY },
		{ "slow-ms", required_argument, NULL, O_SLOW },
		{ "pause", required_argument, NULL, O_PAUSE },
		{ "rma", no_argument, NULL, O_RMA },
		{ "no-rework", no_argument, NULL, O_NO_REWORK },
		{ "serial", required_argument, NULL, O_SERIAL },
		{ "protocol", required_argument, NULL, O_PROTOCOL },
		{ "rates", required_argument, NULL, O_RATES },
		{ "baud-fail", no_argument, NULL, O_BAUD_FAIL },
		{ "version", no_argument, NULL, O_VERSION },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const unsigned ms_max = 600000;
	const char *pki = NULL, *listen_uri = "tcp:127.0.0.1:0", *port_file = NULL;
	char *ca_cert = NULL, *ca_key = NULL, *tool = NULL, bound[300];
	struct sigaction sa;
	jigsim_config c;
	unsigned fault;
	int o, ret = 2;
	st_err err;

	st_log_from_env(); /* where jigsim's and libjig's log lines go */
	jigsim_config_init(&c);
	c.id = (unsigned)getpid();
	c.on_pause = on_pause;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int bad = 0;

		switch (o) {
		case O_PKI: pki = optarg; break;
		case O_CA_CERT: c.vendor_ca_cert = optarg; break;
		case O_CA_KEY: c.vendor_ca_key = optarg; break;
		case O_TOOL: c.tool_pub = optarg; break;
		case O_LISTEN: listen_uri = optarg; break;
		case O_PORT_FILE: port_file = optarg; break;
		case O_DEVICES: bad = parse_uint("--devices", optarg, 1000000000, &c.devices); break;
		case O_PREFIX: c.serial_prefix = optarg; break;
		case O_MODEL: c.model = optarg; break;
		case O_FW: bad = parse_firmware(optarg, &c.firmware); break;
		case O_ID: bad = parse_uint("--id", optarg, 1000000000, &c.id); break;
		case O_KEYGEN: bad = parse_uint("--keygen-ms", optarg, ms_max, &c.keygen_ms); break;
		case O_CSR: bad = parse_uint("--csr-ms", optarg, ms_max, &c.csr_ms); break;
		case O_CMD: bad = parse_uint("--cmd-ms", optarg, ms_max, &c.cmd_ms); break;
		case O_BAUD: bad = parse_uint("--baud", optarg, 100000000, &c.baud); break;
		case O_EVERY: bad = parse_uint("--fault-every", optarg, 1000000000, &c.fault_every); break;
		case O_SLOW: bad = parse_uint("--slow-ms", optarg, ms_max, &c.slow_ms); break;
		case O_PAUSE: bad = parse_pause(optarg, &c); break;
		case O_RMA: c.rma = 1; break;
		case O_NO_REWORK: c.no_rework = 1; break;
		case O_SERIAL: c.fixed_serial = optarg; break;
		case O_BAUD_FAIL: c.baud_fail = 1; break;
		case O_RATES: {
			char *copy = strdup(optarg), *tok, *save = NULL;
			unsigned v;

			c.nrates = 0;
			for (tok = copy ? strtok_r(copy, ",", &save) : NULL; tok && !bad; tok = strtok_r(NULL, ",", &save)) {
				if (c.nrates == JIG_MAX_RATES) {
					fprintf(stderr, "jigsim: --rates: at most %d rates\n", JIG_MAX_RATES);
					bad = 1;
				} else if (!(bad = parse_uint("--rates", tok, 100000000, &v))) {
					c.rates[c.nrates++] = v;
				}
			}
			free(copy);
			break;
		}
		case O_PROTOCOL:
			if (strcmp(optarg, "1.0") == 0) {
				c.max_version = JIG_VERSION_1_0;
			} else if (strcmp(optarg, "1.1") == 0) {
				c.max_version = JIG_VERSION_1_1;
			} else if (strcmp(optarg, "1.2") == 0) {
				c.max_version = JIG_VERSION_1_2;
			} else {
				fprintf(stderr, "jigsim: --protocol: expected 1.0, 1.1 or 1.2, got \"%s\"\n", optarg);
				bad = 1;
			}
			break;
		case O_FAULT:
			if (!(fault = jigsim_fault_parse(optarg))) {
				fprintf(stderr, "jigsim: --fault: no fault \"%s\" (see --help)\n", optarg);
				bad = 1;
			}
			c.faults |= fault;
			break;
		case O_VERSION: printf("jigsim %s\n", STATION_VERSION); return 0;
		case O_HELP: usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (bad)
			return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "jigsim: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (pki) {
		if (!c.vendor_ca_cert && asprintf(&ca_cert, "%s/se-vendor-ca.pem", pki) > 0)
			c.vendor_ca_cert = ca_cert;
		if (!c.vendor_ca_key && asprintf(&ca_key, "%s/se-vendor-ca.key", pki) > 0)
			c.vendor_ca_key = ca_key;
		if (!c.tool_pub && asprintf(&tool, "%s/tool-pub.pem", pki) > 0)
			c.tool_pub = tool;
	}

	st_err_clear(&err);
	if (!(the_sim = jigsim_new(&c, &err)) || jigsim_listen(the_sim, listen_uri, bound, sizeof(bound), &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		goto out;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN); /* a station that vanished is a read/write error, not our death */
	if (port_file && st_file_write_atomic(port_file, bound, strlen(bound), 0644, &err) < 0) {
		fprintf(stderr, "jigsim: --port-file: %s\n", err.msg);
		goto out;
	}
	printf("jigsim: listening on %s\n", bound);
	fflush(stdout);
	ret = jigsim_run(the_sim, &err) < 0 ? 1 : 0;
	if (ret)
		fprintf(stderr, "%s\n", err.msg);
out:
	jigsim_free(the_sim);
	the_sim = NULL;
	free(ca_cert);
	free(ca_key);
	free(tool);
	return ret;
}
