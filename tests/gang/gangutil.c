#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gangutil.h"

int
gang_wait_output(const stu_run *r, int timeout_s, ...)
{
	double deadline = stu_now() + timeout_s;
	const char *want[8];
	size_t n = 0, k;
	va_list ap;

	va_start(ap, timeout_s);
	while (n < 8 && (want[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	do {
		char *text = tu_slurp(r->out_path, NULL), *line, *save = NULL;
		int found = 0;

		for (line = text ? strtok_r(text, "\n", &save) : NULL; line && !found; line = strtok_r(NULL, "\n", &save)) {
			for (k = 0; k < n && strstr(line, want[k]); k++)
				;
			found = k == n;
		}
		free(text);
		if (found)
			return 0;
		stu_sleep_ms(20);
	} while (stu_now() < deadline);
	return -1;
}

/* ---- jigsim cores ------------------------------------------------------------ */

jigsim *
gang_core_new(const char *pki, const jigsim_config *c)
{
	char ca[4200], key[4200], tool[4200];
	jigsim_config cc = *c;
	jigsim *s;
	st_err err;

	snprintf(ca, sizeof(ca), "%s/se-vendor-ca.pem", pki);
	snprintf(key, sizeof(key), "%s/se-vendor-ca.key", pki);
	snprintf(tool, sizeof(tool), "%s/tool-pub.pem", pki);
	cc.vendor_ca_cert = ca;
	cc.vendor_ca_key = key;
	cc.tool_pub = tool;
	s = jigsim_new(&cc, &err);
	ck_assert_msg(s != NULL, "%s", err.msg);
	return s;
}

void
gang_core_release(jigsim *s)
{
	jig_msg m;
	jig_frame f;
	uint8_t req[JIG_MAX_FRAME], resp[JIG_MAX_FRAME];
	size_t len = 0, resp_len = 0, n = 0;
	st_err err;

	memset(&m, 0, sizeof(m));
	memset(&f, 0, sizeof(f));
	m.type = JIG_CMD_DUT_POWER;
	m.u.power_req.action = JIG_POWER_RELEASE;
	ck_assert_int_eq(jig_msg_encode(&m, f.payload, sizeof(f.payload), &n, &err), 0);
	f.version = 1;
	f.type = m.type;
	f.seq = 1;
	f.len = (uint16_t)n;
	ck_assert_int_eq(jig_frame_encode(&f, req, sizeof(req), &len, &err), 0);
	ck_assert_msg(jigsim_handle(s, req, len, resp, sizeof(resp), &resp_len, &err) == JIGSIM_REPLY, "%s", err.msg);
	ck_assert_uint_gt(resp_len, 0);
	jigsim_connection_reset(s);
}

/* ---- the patch panel ------------------------------------------------------------ */

struct gang_port {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	atomic_int stop;
	char uri[64];
	/* under lock */
	jigsim *core;
	int plugged;
	unsigned connections;
	uint8_t arm_cmd;
	unsigned arm_nth, arm_seen;
	enum gang_cut arm_how;
	jigsim *arm_then;
	int cut;
	int clone;
	/* the serving thread's own */
	int lfd, cfd;
	jig_stream rx;
	jig_frame f, rf;
	jig_msg m;
	uint8_t raw[JIG_MAX_FRAME], resp[JIG_MAX_FRAME], buf[4096];
};

static void
port_listen(gang_port *p)
{
	char bound[64];
	st_err err;

	/* The port may still be held for a moment after a close: retry. */
	if (jig_transport_tcp_listen(p->uri, &p->lfd, bound, sizeof(bound), &err) < 0)
		p->lfd = -1;
}

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* p->m as the response to p->f, into p->resp. */
static size_t
port_answer(gang_port *p)
{
	size_t n = 0, len = 0;
	st_err err;

	p->rf.version = p->f.version;
	p->rf.type = p->m.type;
	p->rf.seq = p->f.seq;
	ck_assert_msg(jig_msg_encode(&p->m, p->rf.payload, sizeof(p->rf.payload), &n, &err) == 0, "%s", err.msg);
	p->rf.len = (uint16_t)n;
	ck_assert_msg(jig_frame_encode(&p->rf, p->resp, sizeof(p->resp), &len, &err) == 0, "%s", err.msg);
	return len;
}

/* Clone mode: a locked SE reports itself in the factory state. */
static void
port_clone_reply(gang_port *p, size_t *resp_len)
{
	size_t used = 0;
	st_err err;

	if (jig_frame_decode(p->resp, *resp_len, &p->rf, &used, &err) != JIG_DECODE_OK ||
	    p->rf.type != (JIG_CMD_SE_INFO | JIG_RESPONSE))
		return;
	ck_assert_msg(jig_msg_decode_v(p->rf.version, p->rf.type, p->rf.payload, p->rf.len, &p->m, &err) == 0, "%s", err.msg);
	if (p->m.u.se_info.lifecycle != JIG_LC_PROVISIONED)
		return;
	p->m.u.se_info.lifecycle = JIG_LC_FACTORY;
	*resp_len = port_answer(p);
}

/* One complete request frame from the station: pass it on, or cut. */
static void
port_frame(gang_port *p)
{
	size_t raw_len = 0, resp_len = 0, off;
	jigsim *core;
	int act = JIGSIM_REPLY, cut = 0, clone;
	st_err err;

	pthread_mutex_lock(&p->lock);
	if (p->arm_nth && p->f.type == p->arm_cmd && ++p->arm_seen == p->arm_nth) {
		cut = 1;
		p->arm_nth = 0;
		p->cut = 1;
		if (p->arm_how == GANG_UNPLUG)
			p->plugged = 0;
		if (p->arm_then) {
			p->core = p->arm_then;
			jigsim_connection_reset(p->core);
		}
		pthread_cond_broadcast(&p->cond);
	}
	core = p->core;
	clone = p->clone;
	pthread_mutex_unlock(&p->lock);
	if (cut) {
		close_fd(&p->cfd);
		return;
	}
	if (clone && p->f.type == JIG_CMD_DUT_POWER && p->f.len == 1 && p->f.payload[0] == JIG_POWER_RELEASE) {
		/* The SE is not let go: it comes back as its own clone. */
		memset(&p->m, 0, sizeof(p->m));
		p->m.type = JIG_CMD_DUT_POWER | JIG_RESPONSE;
		p->m.u.dut.present = p->m.u.dut.powered = 1;
		resp_len = port_answer(p);
	} else if (jig_frame_encode(&p->f, p->raw, sizeof(p->raw), &raw_len, &err) < 0 ||
	    (act = jigsim_handle(core, p->raw, raw_len, p->resp, sizeof(p->resp), &resp_len, &err)) < 0) {
		/* Re-encoding above gives back the bytes received (the CRC was checked). */
		fprintf(stderr, "gang port %s: %s\n", p->uri, err.msg);
		close_fd(&p->cfd);
		return;
	} else if (clone) {
		port_clone_reply(p, &resp_len);
	}
	for (off = 0; off < resp_len;) {
		ssize_t n = write(p->cfd, p->resp + off, resp_len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close_fd(&p->cfd);
			return;
		}
		off += (size_t)n;
	}
	if (act != JIGSIM_REPLY)
		close_fd(&p->cfd); /* disconnect-mid-command; a pause is not used here */
}

static void *
port_main(void *arg)
{
	gang_port *p = arg;

	while (!atomic_load(&p->stop)) {
		struct pollfd pfd = { .fd = -1, .events = POLLIN };
		int plugged;

		pthread_mutex_lock(&p->lock);
		plugged = p->plugged;
		pthread_mutex_unlock(&p->lock);
		if (!plugged) {
			close_fd(&p->cfd);
			close_fd(&p->lfd);
		} else if (p->lfd < 0) {
			port_listen(p);
		}
		pfd.fd = p->cfd >= 0 ? p->cfd : p->lfd;
		if (pfd.fd < 0) {
			stu_sleep_ms(20);
			continue;
		}
		if (poll(&pfd, 1, 20) <= 0)
			continue;
		if (p->cfd < 0) {
			if ((p->cfd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
				pthread_mutex_lock(&p->lock);
				p->connections++;
				jigsim_connection_reset(p->core);
				pthread_mutex_unlock(&p->lock);
				jig_stream_init(&p->rx);
			}
			continue;
		}
		{
			ssize_t n = read(p->cfd, p->buf, sizeof(p->buf));

			if (n <= 0) {
				if (n == 0 || errno != EINTR)
					close_fd(&p->cfd);
				continue;
			}
			if (jig_stream_feed(&p->rx, p->buf, (size_t)n) < 0) {
				jig_stream_discard(&p->rx);
				jig_stream_feed(&p->rx, p->buf, (size_t)n);
			}
			while (p->cfd >= 0 && jig_stream_next(&p->rx, &p->f))
				port_frame(p);
		}
	}
	close_fd(&p->cfd);
	close_fd(&p->lfd);
	return NULL;
}

gang_port *
gang_port_new(jigsim *core)
{
	gang_port *p = calloc(1, sizeof(*p));
	st_err err;

	ck_assert_ptr_nonnull(p);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->core = core;
	p->plugged = 1;
	p->cfd = -1;
	ck_assert_msg(jig_transport_tcp_listen("tcp:127.0.0.1:0", &p->lfd, p->uri, sizeof(p->uri), &err) == 0, "%s",
	    err.msg);
	ck_assert_int_eq(pthread_create(&p->thread, NULL, port_main, p), 0);
	return p;
}

void
gang_port_free(gang_port *p)
{
	if (!p)
		return;
	atomic_store(&p->stop, 1);
	pthread_join(p->thread, NULL);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

const char *
gang_port_uri(const gang_port *p)
{
	return p->uri;
}

void
gang_port_attach(gang_port *p, jigsim *core)
{
	pthread_mutex_lock(&p->lock);
	p->core = core;
	jigsim_connection_reset(core);
	pthread_mutex_unlock(&p->lock);
}

void
gang_port_arm(gang_port *p, uint8_t cmd, unsigned nth, enum gang_cut how, jigsim *then)
{
	pthread_mutex_lock(&p->lock);
	p->arm_cmd = cmd;
	p->arm_nth = nth;
	p->arm_seen = 0;
	p->arm_how = how;
	p->arm_then = then;
	p->cut = 0;
	pthread_mutex_unlock(&p->lock);
}

int
gang_port_wait_cut(gang_port *p, int timeout_s)
{
	struct timespec ts;
	int cut;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_s;
	pthread_mutex_lock(&p->lock);
	while (!p->cut && pthread_cond_timedwait(&p->cond, &p->lock, &ts) == 0)
		;
	cut = p->cut;
	pthread_mutex_unlock(&p->lock);
	return cut ? 0 : -1;
}

void
gang_port_clone(gang_port *p, int on)
{
	pthread_mutex_lock(&p->lock);
	p->clone = on;
	pthread_mutex_unlock(&p->lock);
}

void
gang_port_unplug(gang_port *p)
{
	pthread_mutex_lock(&p->lock);
	p->plugged = 0;
	pthread_mutex_unlock(&p->lock);
}

void
gang_port_plug(gang_port *p)
{
	pthread_mutex_lock(&p->lock);
	p->plugged = 1;
	pthread_mutex_unlock(&p->lock);
}

unsigned
gang_port_connections(gang_port *p)
{
	unsigned n;

	pthread_mutex_lock(&p->lock);
	n = p->connections;
	pthread_mutex_unlock(&p->lock);
	return n;
}

stu_ws *
gang_ws_module(const char *pki, const char *module)
{
	stu_ws *w = stu_ws_new(pki);
	char to[600];

	snprintf(to, sizeof(to), "  module: %s\n", module);
	stu_recipe_edit(w, "  # module: omitted, the SoftHSM default\n", to);
	return w;
}

void
gang_sims_start(const char *pki, size_t n, unsigned per_jig, unsigned cmd_ms, stu_sim **sim, const char **uris)
{
	size_t i;

	for (i = 0; i < n; i++) {
		jigsim_config c;

		jigsim_config_init(&c);
		c.id = (unsigned)i + 1;
		c.devices = per_jig;
		c.cmd_ms = cmd_ms;
		sim[i] = stu_sim_start(pki, &c);
		uris[i] = sim[i]->uri;
	}
}

void
gang_provision_and_sign(stu_ws *w, stu_sim **sim, const char **uris, size_t njigs, unsigned per_jig)
{
	char crl[4200], root[4200], *text = NULL, **paths = NULL;
	size_t npaths = 0, i;
	unsigned k;
	stu_run r;
	int rc;

	stu_station_start_jigs(w, uris, njigs, (unsigned)njigs * per_jig, 1, &r);
	stu_station_wait(&r, 200);
	ck_assert_msg(r.status == 0, "station run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_uint_eq(stu_event_count(&r, "passed"), njigs * per_jig);
	for (i = 0; i < njigs; i++)
		for (k = 1; k <= per_jig; k++)
			stu_check_device_cert(w, sim[i]->s, k, &paths, &npaths);
	stu_openssl_verify(w, paths, npaths);
	for (i = 0; i < npaths; i++)
		free(paths[i]);
	free(paths);
	stu_run_clear(&r);

	rc = tu_station(&text, "audit", "seal", "--recipe", w->recipe, NULL);
	stu_cmd_ok("audit seal", "sealed by", rc, text);
	stu_audit_verify(w);
	snprintf(crl, sizeof(crl), "%s/line.crl", w->dir);
	rc = tu_station(&text, "crl", "--recipe", w->recipe, "--out", crl, NULL);
	stu_cmd_ok("crl", NULL, rc, text);
	stu_sh_ok("verify OK", "openssl crl -in '%s' -CAfile '%s/chain.pem' -noout 2>&1", crl, w->pki);
	rc = tu_station(&text, "recipe", "sign", w->recipe, "--key-label", "engineering", NULL);
	stu_cmd_ok("recipe sign", NULL, rc, text);
	snprintf(root, sizeof(root), "%s/root-ca.pem", w->pki);
	rc = tu_station(&text, "recipe", "check", w->recipe, "--trust", root, NULL);
	stu_cmd_ok("recipe check", "signed by", rc, text);
}
