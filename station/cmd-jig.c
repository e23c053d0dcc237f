/* station jig info|list: the first operator-facing look at a jig. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "cli.h"
#include "cms.h"
#include "commands.h"
#include "recipe.h"
#include "jig.h"

static void
usage(FILE *f)
{
	fprintf(f, "usage: station jig info --jig URI [--timeout MS] [--json]\n"
	           "       station jig list [--usb VID:PID]... [--recipe FILE] [--json]\n"
	           "\n"
	           "info   connect to the jig, run HELLO, DUT_STATUS and SE_INFO (protocol 1.2: and VENDOR_CHAIN,\n"
	           "       to rebuild the attestation certificate) and show the jig and the device in it;\n"
	           "       exit 1 when the jig cannot be reached or holds no device\n"
	           "list   show USB jigs (%04x:%04x, every --usb VID:PID and the recipe's usb: jig) and serial ports\n"
	           "\n"
	           "URI    tcp:HOST:PORT | serial:PATH?baud=N[&flow=none|rtscts] | usb:VID:PID[?serial=S]\n"
	           "--timeout MS  per-command timeout (default 2000, KEYGEN/GET_CSR 5000)\n"
	           "--json        one JSON object on stdout instead of text\n",
	    JIG_USB_VID, JIG_USB_PID);
}

/* A JSON string literal. */
static void
json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static const char *const cap_names[] = { "dut-detect", "dut-power", "rework" };

static void
caps_text(uint32_t caps, char *buf, size_t len)
{
	size_t i, off = 0;

	buf[0] = '\0';
	for (i = 0; i < sizeof(cap_names) / sizeof(cap_names[0]); i++)
		if (caps & (1u << i) && off < len)
			off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "", cap_names[i]);
	if (!off)
		snprintf(buf, len, "none");
}

/* Subject of the attestation certificate (the first one). */
static void
attest_subject(const jig_se_info *si, char *buf, size_t len)
{
	const uint8_t *p;
	X509 *x;

	if (si->ncerts == 0) {
		snprintf(buf, len, "(no certificate)");
		return;
	}
	p = si->certs[0].data;
	if (!(x = d2i_X509(NULL, &p, (long)si->certs[0].len))) {
		snprintf(buf, len, "(not a DER certificate)");
		return;
	}
	st_x509_subject(x, buf, len);
	X509_free(x);
}

/* Protocol 1.2: the attestation certificate comes as a delta against the
 * vendor chain; fetch the chain (it must hash to the digest SE_INFO named)
 * and rebuild it, to show its subject.  Nothing here is trusted: `station
 * run` verifies both. */
static int
rebuild_attestation(jig_client *c, jig_se_info *si, st_err *err)
{
	static jig_msg req, chain;
	uint8_t h[JIG_SHA256_LEN];
	size_t i;

	memset(&req, 0, sizeof(req));
	req.type = JIG_CMD_VENDOR_CHAIN;
	if (jig_client_call(c, &req, &chain, err) < 0)
		return -1;
	jig_chain_digest(chain.u.chain.certs, chain.u.chain.n, &chain.u.chain.tmpl, h);
	if (memcmp(h, si->chain_sha256, sizeof(h)) != 0)
		return st_err_set(err, ST_E_VERIFY, "the vendor chain the jig sent does not hash to the digest SE_INFO named");
	for (i = 0; i < chain.u.chain.n; i++)
		si->certs[1 + i] = chain.u.chain.certs[i];
	si->ncerts = 1 + chain.u.chain.n;
	si->chain_tmpl = chain.u.chain.tmpl;
	si->chain_has_tmpl = 1;
	return jig_attest_cert_rebuild(si, err);
}

/* What the operator should do, by error kind. */
static const char *
hint(const st_err *err)
{
	if (err->code == ST_E_REMOTE && err->remote == JIG_E_NO_DUT)
		return "insert a device into the jig and retry";
	switch (err->code) {
	case ST_E_NOTFOUND:
	case ST_E_IO:
	case ST_E_TIMEOUT:
	case ST_E_DISCONNECTED:
		return "check that the jig is powered and connected and that the URI is right ('station jig list' shows "
		       "attached jigs)";
	default:
		return NULL;
	}
}

static int
info_fail(int json, const char *uri, const st_err *err)
{
	const char *h = hint(err);

	fprintf(stderr, "station jig info: %s\n", err->msg);
	if (h)
		fprintf(stderr, "station jig info: %s\n", h);
	if (json) {
		printf("{\"jig\":");
		json_str(stdout, uri);
		printf(",\"ok\":false,\"error\":");
		json_str(stdout, err->msg);
		printf("}\n");
	}
	return err->code == ST_E_CONFIG ? EXIT_USAGE : EXIT_FAIL;
}

static void
print_text(const char *uri, const jig_msg *hello, const jig_msg *dut, const jig_se_info *si)
{
	char caps[128], fw[32], subj[512];

	caps_text(hello->u.hello.capabilities, caps, sizeof(caps));
	printf("jig           %s\n", uri);
	printf("jig id        %s\n", hello->u.hello.jig_id);
	printf("jig firmware  %s\n", hello->u.hello.firmware);
	printf("protocol      %u\n", hello->u.hello.version);
	printf("capabilities  %s\n", caps);
	printf("DUT present   %s%s\n", dut->u.dut.present ? "yes" : "no",
	    dut->u.dut.present ? (dut->u.dut.powered ? " (powered)" : " (not powered)") : "");
	if (!si)
		return;
	jig_fw_format(si->firmware, fw);
	attest_subject(si, subj, sizeof(subj));
	printf("SE serial     %s\n", si->serial);
	printf("SE model      %s\n", si->model);
	printf("SE firmware   %s\n", fw);
	printf("lifecycle     %s\n", jig_lifecycle_name(si->lifecycle));
	printf("attestation   %s\n", subj);
	printf("certificates  %zu (attestation certificate and its issuers)\n", si->ncerts);
}

static void
print_json(const char *uri, const jig_msg *hello, const jig_msg *dut, const jig_se_info *si)
{
	char fw[32], subj[512];
	size_t i, n = 0;

	printf("{\"jig\":");
	json_str(stdout, uri);
	printf(",\"ok\":true,\"jig_id\":");
	json_str(stdout, hello->u.hello.jig_id);
	printf(",\"firmware\":");
	json_str(stdout, hello->u.hello.firmware);
	printf(",\"protocol\":%u,\"capabilities\":[", hello->u.hello.version);
	for (i = 0; i < sizeof(cap_names) / sizeof(cap_names[0]); i++)
		if (hello->u.hello.capabilities & (1u << i))
			printf("%s\"%s\"", n++ ? "," : "", cap_names[i]);
	printf("],\"dut_present\":%s,\"dut_powered\":%s", dut->u.dut.present ? "true" : "false",
	    dut->u.dut.powered ? "true" : "false");
	if (si) {
		jig_fw_format(si->firmware, fw);
		attest_subject(si, subj, sizeof(subj));
		printf(",\"se\":{\"serial\":");
		json_str(stdout, si->serial);
		printf(",\"model\":");
		json_str(stdout, si->model);
		printf(",\"firmware\":\"%s\",\"lifecycle\":\"%s\",\"attestation_subject\":", fw,
		    jig_lifecycle_name(si->lifecycle));
		json_str(stdout, subj);
		printf(",\"certificates\":%zu}", si->ncerts);
	}
	printf("}\n");
}

static int
cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "jig", required_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static jig_msg hello, dut, se; /* large: off the stack */
	const char *uri = NULL;
	jig_transport *t = NULL;
	jig_client *c = NULL;
	jig_msg req;
	int json = 0, timeout = 0, o, ret = EXIT_FAIL;
	st_err err;

	optind = 1;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'j':
			uri = optarg;
			break;
		case 't': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || v <= 0 || v > 600000) {
				fprintf(stderr, "station jig info: --timeout %s: expected milliseconds 1..600000\n", optarg);
				return EXIT_USAGE;
			}
			timeout = (int)v;
			break;
		}
		case 'J':
			json = 1;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!uri || optind != argc) {
		fprintf(stderr, "station jig info: %s\n\n", uri ? "unexpected arguments" : "--jig URI is required");
		usage(stderr);
		return EXIT_USAGE;
	}
	if (jig_transport_open(uri, &t, &err) < 0)
		return info_fail(json, uri, &err);
	c = jig_client_new(t); /* owns t now, even on failure */
	if (!c) {
		st_err_set(&err, ST_E_NOMEM, "out of memory");
		return info_fail(json, uri, &err);
	}
	if (timeout)
		jig_client_set_timeout(c, 0, timeout);
	if (jig_client_hello(c, &hello, &err) < 0) {
		ret = info_fail(json, uri, &err);
		goto out;
	}
	memset(&req, 0, sizeof(req));
	req.type = JIG_CMD_DUT_STATUS;
	if (jig_client_call(c, &req, &dut, &err) < 0) {
		ret = info_fail(json, uri, &err);
		goto out;
	}
	if (!dut.u.dut.present) {
		/* show what we know about the jig, then say why it is not enough */
		if (json)
			print_json(uri, &hello, &dut, NULL);
		else
			print_text(uri, &hello, &dut, NULL);
		fprintf(stderr, "station jig info: jig %s: no device in the jig; insert a device and retry\n", uri);
		goto out;
	}
	if (!dut.u.dut.powered) {
		/* SE_INFO would answer NO_DUT: say it in the line's terms. */
		if (json)
			print_json(uri, &hello, &dut, NULL);
		else
			print_text(uri, &hello, &dut, NULL);
		fprintf(stderr, "station jig info: jig %s: a device is in the jig but not powered, so its SE cannot be read "
		    "here; 'station run' powers it on by itself\n", uri);
		goto out;
	}
	req.type = JIG_CMD_SE_INFO;
	if (jig_client_call(c, &req, &se, &err) < 0) {
		ret = info_fail(json, uri, &err);
		goto out;
	}
	if (se.u.se_info.cert_by_delta && rebuild_attestation(c, &se.u.se_info, &err) < 0) {
		ret = info_fail(json, uri, &err);
		goto out;
	}
	if (json)
		print_json(uri, &hello, &dut, &se.u.se_info);
	else
		print_text(uri, &hello, &dut, &se.u.se_info);
	ret = EXIT_OK;
out:
	jig_client_free(c);
	return ret;
}

static void
list_json_array(const char *name, const jig_port_info *v, size_t n)
{
	size_t i;

	printf("\"%s\":[", name);
	for (i = 0; i < n; i++) {
		printf("%s{\"uri\":", i ? "," : "");
		json_str(stdout, v[i].uri);
		if (v[i].vid || v[i].pid)
			printf(",\"vid\":\"%04x\",\"pid\":\"%04x\"", v[i].vid, v[i].pid);
		if (v[i].bus >= 0)
			printf(",\"bus\":%d", v[i].bus);
		printf(",\"port\":");
		json_str(stdout, v[i].port_path);
		printf(",\"serial\":");
		json_str(stdout, v[i].serial);
		printf(",\"description\":");
		json_str(stdout, v[i].description);
		printf("}");
	}
	printf("]");
}

static void
list_rows(const char *kind, const jig_port_info *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char id[16] = "-", where[48] = "-";

		if (v[i].vid || v[i].pid)
			snprintf(id, sizeof(id), "%04x:%04x", v[i].vid, v[i].pid);
		if (v[i].port_path[0])
			snprintf(where, sizeof(where), "%s", v[i].port_path);
		else if (v[i].bus >= 0)
			snprintf(where, sizeof(where), "bus %d", v[i].bus);
		printf("%-7s %-44s %-10s %-9s %-16s %s\n", kind, v[i].uri, where, id, v[i].serial[0] ? v[i].serial : "-",
		    v[i].description[0] ? v[i].description : "-");
	}
}

/* Add the VID:PID of a usb: URI to the list of identities to look for. */
static int
add_usb_id(uint16_t *ids, size_t *nids, size_t max, const char *uri, const char *what, int allow_serial)
{
	jig_uri u;
	st_err err;
	size_t i;

	if (jig_uri_parse(uri, &u, &err) < 0 || strcmp(u.scheme, "usb") != 0 || (u.serial[0] && !allow_serial)) {
		fprintf(stderr, "station jig list: %s: expected VID:PID in hex, e.g. 1209:0001\n", what);
		return -1;
	}
	for (i = 0; i < *nids; i++)
		if (ids[2 * i] == u.vid && ids[2 * i + 1] == u.pid)
			return 0;
	if (*nids == max) {
		fprintf(stderr, "station jig list: at most %zu extra VID:PIDs\n", max - 1);
		return -1;
	}
	ids[2 * *nids] = u.vid;
	ids[2 * *nids + 1] = u.pid;
	(*nids)++;
	return 0;
}

static int
cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "usb", required_argument, NULL, 'u' },
		{ "recipe", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint16_t ids[2 * 17] = { JIG_USB_VID, JIG_USB_PID };
	jig_port_info *usb = NULL, *ser = NULL;
	size_t nids = 1, nusb = 0, nser = 0;
	int json = 0, o, ret = EXIT_OK;
	st_err err;

	optind = 1;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'u': {
			char uri[64], what[64];

			snprintf(uri, sizeof(uri), "usb:%.50s", optarg);
			snprintf(what, sizeof(what), "--usb %.50s", optarg);
			if (add_usb_id(ids, &nids, sizeof(ids) / sizeof(ids[0]) / 2, uri, what, 0) < 0)
				return EXIT_USAGE;
			break;
		}
		case 'r': {
			recipe *r = cli_recipe_load("jig list", optarg);
			int bad = !r;

			if (r && r->jig.uri && strncmp(r->jig.uri, "usb:", 4) == 0)
				bad = add_usb_id(ids, &nids, sizeof(ids) / sizeof(ids[0]) / 2, r->jig.uri, "the recipe's jig.uri", 1) < 0;
			recipe_free(r);
			if (bad)
				return EXIT_USAGE;
			break;
		}
		case 'J':
			json = 1;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "station jig list: unexpected arguments\n\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	/* One source failing (no USB stack in a container) still lists the other. */
	if (jig_usb_list(ids, nids, &usb, &nusb, &err) < 0) {
		fprintf(stderr, "station jig list: USB: %s\n", err.msg);
		ret = EXIT_FAIL;
	}
	if (jig_serial_list(&ser, &nser, &err) < 0) {
		fprintf(stderr, "station jig list: serial ports: %s\n", err.msg);
		ret = EXIT_FAIL;
	}
	if (json) {
		printf("{");
		list_json_array("usb", usb, nusb);
		printf(",");
		list_json_array("serial", ser, nser);
		printf("}\n");
	} else if (nusb + nser == 0) {
		printf("no USB jigs and no serial ports found\n");
	} else {
		printf("%-7s %-44s %-10s %-9s %-16s %s\n", "KIND", "URI", "PORT", "VID:PID", "SERIAL", "DESCRIPTION");
		list_rows("usb", usb, nusb);
		list_rows("serial", ser, nser);
	}
	free(usb);
	free(ser);
	return ret;
}

int
cmd_jig_main(int argc, char **argv)
{
	static const struct subcommand subs[] = {
		{ "info", cmd_info },
		{ "list", cmd_list },
	};

	return cli_dispatch("jig", subs, sizeof(subs) / sizeof(subs[0]), usage, argc, argv);
}
