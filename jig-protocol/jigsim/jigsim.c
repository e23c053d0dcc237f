/* The simulated jig: frames in, frames out (PROTOCOL.md sections 1-4).  It
 * owns the panel of DUTs, the retransmission cache, version negotiation,
 * latencies and the faults that concern how replies travel (corrupt, drop,
 * disconnect, slow, pause).  What the SE says is se.c's business. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jigsim-int.h"
#include "station-config.h"

static const char *const fault_names[] = {
	"corrupt-byte", "drop-reply", "disconnect-mid-command", "slow-reply", "bad-attestation-signature",
	"attestation-wrong-key", "replay-nonce", "already-locked", "readback-mismatch", "unknown-se-vendor",
	"rework-wrong-key", "bad-delta", "forgets-template",
};
#define NFAULTS (sizeof(fault_names) / sizeof(fault_names[0]))

unsigned
jigsim_fault_parse(const char *name)
{
	size_t i;

	for (i = 0; i < NFAULTS; i++)
		if (strcmp(name, fault_names[i]) == 0)
			return 1u << i;
	return 0;
}

const char *
jigsim_fault_name(unsigned fault)
{
	size_t i;

	for (i = 0; i < NFAULTS; i++)
		if (fault == 1u << i)
			return fault_names[i];
	return NULL;
}

void
jigsim_config_init(jigsim_config *c)
{
	memset(c, 0, sizeof(*c));
	c->serial_prefix = "SE";
	c->model = "TSE-100";
	c->firmware = 1u << 24 | 4u << 16 | 2u;
	c->id = 1;
	c->slow_ms = 10000;
	c->max_version = JIG_VERSION_MAX;
}

/* ---- the panel ------------------------------------------------------------ */

static unsigned
faults_for(const jigsim *s, size_t index)
{
	unsigned every = s->cfg.fault_every ? s->cfg.fault_every : 1;

	return index % every == 0 ? s->cfg.faults : 0;
}

/* The next DUT is put into the jig, powered. */
static int
next_device(jigsim *s, st_err *err)
{
	jigsim_dev *d;
	se *e;

	if (s->cfg.devices && s->ndev >= s->cfg.devices)
		return 0; /* the panel is done: no DUT from now on */
	if (!(e = se_new(&s->env, faults_for(s, s->ndev + 1), err)))
		return -1;
	if (!(d = realloc(s->dev, (s->ndev + 1) * sizeof(*d)))) {
		se_free(e);
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	}
	s->dev = d;
	s->dev[s->ndev++] = (jigsim_dev){ .se = e };
	s->present = 1;
	s->powered = 1;
	return 0;
}

static jigsim_dev *
current(jigsim *s)
{
	return s->present ? &s->dev[s->ndev - 1] : NULL;
}

jigsim *
jigsim_new(const jigsim_config *c, st_err *err)
{
	jigsim *s = calloc(1, sizeof(*s));

	if (!s) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	s->listen_fd = -1;
	s->cfg = *c;
	if (s->cfg.max_version < JIG_VERSION_MIN || s->cfg.max_version > JIG_VERSION_MAX)
		s->cfg.max_version = JIG_VERSION_MAX;
	if (s->cfg.nrates > JIG_MAX_RATES)
		s->cfg.nrates = JIG_MAX_RATES;
	s->line_baud = s->cfg.baud;
	if (s->cfg.nrates) {
		/* the rates HELLO will list: checked as the codec checks them */
		static _Thread_local jig_msg m;
		uint8_t buf[JIG_MAX_PAYLOAD];
		size_t n;

		memset(&m, 0, sizeof(m));
		m.type = JIG_CMD_HELLO | JIG_RESPONSE;
		m.u.hello.version = JIG_VERSION_1_1;
		m.u.hello.nrates = (uint8_t)s->cfg.nrates;
		memcpy(m.u.hello.rates, s->cfg.rates, sizeof(m.u.hello.rates));
		if (jig_msg_encode(&m, buf, sizeof(buf), &n, err) < 0) {
			st_err_prefix(err, "jigsim: --rates");
			if (err)
				err->code = ST_E_CONFIG;
			jigsim_free(s);
			return NULL;
		}
	}
	/* Only used while loading below; se_env keeps its own copies. */
	s->cfg.vendor_ca_cert = s->cfg.vendor_ca_key = s->cfg.tool_pub = NULL;
	s->cfg.serial_prefix = s->cfg.model = s->cfg.fixed_serial = NULL;
	if (se_env_init(&s->env, c, err) < 0 || next_device(s, err) < 0) {
		st_err_prefix(err, "jigsim");
		jigsim_free(s);
		return NULL;
	}
	return s;
}

void
jigsim_free(jigsim *s)
{
	size_t i;

	if (!s)
		return;
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	for (i = 0; i < s->ndev; i++)
		se_free(s->dev[i].se);
	free(s->dev);
	se_env_clear(&s->env);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* ---- requests ------------------------------------------------------------- */

typedef struct reply {
	jig_msg msg;
	int action;       /* enum jigsim_action */
	uint64_t delay_us; /* what the reply waits: the line both ways, the SE's work */
	int paused;       /* call on_pause once the lock is released */
	unsigned switch_to, confirm_ms; /* SET_BAUD: after the answer has gone at the old rate */
} reply;

static void
hello(jigsim *s, const jig_msg *req, jig_msg *m)
{
	if (jig_hello_answer(req, s->cfg.max_version, m) < 0)
		return;
	s->version = m->u.hello.version;
	snprintf(m->u.hello.jig_id, sizeof(m->u.hello.jig_id), "jigsim-%u", s->cfg.id);
	snprintf(m->u.hello.firmware, sizeof(m->u.hello.firmware), "jigsim %s", STATION_VERSION);
	m->u.hello.capabilities = JIG_CAP_DUT_DETECT | JIG_CAP_DUT_POWER | (s->cfg.no_rework ? 0 : JIG_CAP_REWORK);
	m->u.hello.nrates = (uint8_t)s->cfg.nrates;
	memcpy(m->u.hello.rates, s->cfg.rates, s->cfg.nrates * sizeof(s->cfg.rates[0]));
}

static void
dut_power(jigsim *s, uint8_t action, jig_msg *m)
{
	jigsim_dev *d = current(s);
	st_err e;

	if (d && action == JIG_POWER_ON)
		s->powered = 1;
	if (d && action != JIG_POWER_ON) {
		se_power_off(d->se);
		s->powered = 0;
	}
	if (d && action == JIG_POWER_RELEASE && s->cfg.rma && !d->returned && d->se->lifecycle == JIG_LC_PROVISIONED) {
		d->returned = 1; /* out and straight back in: an RMA return */
		s->released++;
	} else if (d && action == JIG_POWER_RELEASE) {
		se_drop_keys(d->se); /* it leaves the jig for good */
		s->present = 0;
		s->released++;
		if (next_device(s, &e) < 0) {
			jig_msg_error(m, JIG_CMD_DUT_POWER, JIG_E_SE_FAILURE, "next DUT: %s", e.msg);
			return;
		}
	}
	memset(m, 0, sizeof(*m));
	m->type = JIG_CMD_DUT_POWER | JIG_RESPONSE;
	m->u.dut.present = (uint8_t)s->present;
	m->u.dut.powered = (uint8_t)(s->present && s->powered);
}

/* Run a decoded, fresh request.  Fills r->msg; may ask for a disconnect. */
static void
execute(jigsim *s, const jig_msg *req, reply *r)
{
	jigsim_dev *d = current(s);
	jig_msg *m = &r->msg;
	char msg[JIG_ERRMSG_MAX + 1];
	int code;

	switch (req->type) {
	case JIG_CMD_HELLO:
		hello(s, req, m);
		return;
	case JIG_CMD_DUT_STATUS:
		memset(m, 0, sizeof(*m));
		m->type = JIG_CMD_DUT_STATUS | JIG_RESPONSE;
		m->u.dut.present = (uint8_t)s->present;
		m->u.dut.powered = (uint8_t)(s->present && s->powered);
		return;
	case JIG_CMD_DUT_POWER:
		dut_power(s, req->u.power_req.action, m);
		return;
	case JIG_CMD_SET_BAUD: {
		unsigned i;

		for (i = 0; i < s->cfg.nrates && s->cfg.rates[i] != req->u.baud_req.baud; i++)
			;
		if (!s->cfg.nrates) {
			jig_msg_error(m, req->type, JIG_E_BAD_REQUEST, "this jig has no serial line to switch (HELLO lists no rates)");
		} else if (i == s->cfg.nrates) {
			jig_msg_error(m, req->type, JIG_E_BAD_REQUEST, "%u baud is not a rate this jig lists", req->u.baud_req.baud);
		} else {
			memset(m, 0, sizeof(*m));
			m->type = JIG_CMD_SET_BAUD | JIG_RESPONSE;
			r->switch_to = req->u.baud_req.baud;
			r->confirm_ms = req->u.baud_req.confirm_ms;
		}
		return;
	}
	case JIG_CMD_CERT_TEMPLATE: {
		st_err e;

		memset(m, 0, sizeof(*m));
		m->type = JIG_CMD_CERT_TEMPLATE | JIG_RESPONSE;
		if (se_env_add_template(&s->env, &req->u.cert, &e) < 0)
			jig_msg_error(m, req->type, JIG_E_SE_FAILURE, "template: %s", e.msg);
		return;
	}
	}
	if (!d) {
		jig_msg_error(m, req->type, JIG_E_NO_DUT, "no DUT in the jig");
		return;
	}
	if (!s->powered) {
		jig_msg_error(m, req->type, JIG_E_NO_DUT, "the DUT is powered off (DUT_POWER on first)");
		return;
	}
	if (req->type == JIG_CMD_GET_CSR && (d->se->faults & JIGSIM_F_DISCONNECT) &&
	    !(d->fired & JIGSIM_F_DISCONNECT)) {
		d->fired |= JIGSIM_F_DISCONNECT;
		r->action = JIGSIM_DISCONNECT; /* nothing executed */
		return;
	}
	if ((code = se_command(&s->env, d->se, req, m, msg)) != 0)
		jig_msg_error(m, req->type, (uint16_t)code, "%s", msg);
}

/* A frame's time on the emulated line, to the microsecond (8N1: ten bit
 * times per byte): whole milliseconds would add up to a millisecond to
 * every frame, more than a short frame takes at 921600 baud. */
static uint64_t
wire_us(const jigsim *s, size_t bytes)
{
	return s->line_baud ? ((uint64_t)bytes * 10 * 1000000 + s->line_baud - 1) / s->line_baud : 0;
}

static uint64_t
latency_us(const jigsim *s, uint8_t cmd)
{
	return 1000ull * (cmd == JIG_CMD_KEYGEN ? s->cfg.keygen_ms : cmd == JIG_CMD_GET_CSR ? s->cfg.csr_ms : s->cfg.cmd_ms);
}

static int
encode(const jig_msg *m, uint8_t version, uint8_t seq, uint8_t *out, size_t cap, size_t *len, st_err *err)
{
	jig_frame f;
	size_t n;

	f.version = version;
	f.type = m->type;
	f.seq = seq;
	if (jig_msg_encode_v(version, m, f.payload, sizeof(f.payload), &n, err) < 0)
		return -1;
	f.len = (uint16_t)n;
	return jig_frame_encode(&f, out, cap, len, err);
}

/* The frame version this jig takes now: HELLO always comes in version 1;
 * after HELLO, the negotiated version; before, version 1. */
static int
version_ok(const jigsim *s, uint8_t version, uint8_t type)
{
	if (type == JIG_CMD_HELLO)
		return version == JIG_VERSION_1_0;
	return version == (s->version ? s->version : JIG_VERSION_1_0);
}

/* A frame in a version this jig does not take now, otherwise well formed:
 * it deserves an UNSUPPORTED_VERSION answer rather than silence. */
static int
foreign_version(const jigsim *s, const uint8_t *req, size_t len, uint8_t *type, uint8_t *seq, uint8_t *version)
{
	uint8_t sof;
	uint16_t n;
	uint32_t crc;
	st_rd rd;

	st_rd_init(&rd, req, len);
	if (st_rd_u8(&rd, &sof) < 0 || sof != JIG_SOF || st_rd_u8(&rd, version) < 0 || st_rd_u8(&rd, type) < 0 ||
	    st_rd_u8(&rd, seq) < 0 || st_rd_u16(&rd, &n) < 0 || n > JIG_MAX_PAYLOAD || !st_rd_take(&rd, n) ||
	    st_rd_u32(&rd, &crc) < 0 || version_ok(s, *version, *type))
		return 0;
	return crc == jig_crc32(req + 1, JIG_HEADER_LEN - 1 + n);
}

/* The slot is the first byte of every slot command, the algorithm KEYGEN's
 * second: out of range they are BAD_SLOT, which the codec alone would call
 * a malformed payload. */
static int
unsupported_slot(const jig_frame *f, jig_msg *m)
{
	uint8_t slot, alg;
	st_rd rd;

	if (f->type < JIG_CMD_KEYGEN || f->type > JIG_CMD_LAST_1_0 || (f->type == JIG_CMD_LOCK && f->version < JIG_VERSION_1_1))
		return 0;
	st_rd_init(&rd, f->payload, f->len);
	if (st_rd_u8(&rd, &slot) == 0 && slot > JIG_MAX_SLOT) {
		jig_msg_error(m, f->type, JIG_E_BAD_SLOT, "slot %u, the SE has slots 0..%d", slot, JIG_MAX_SLOT);
		return 1;
	}
	if (f->type == JIG_CMD_KEYGEN && st_rd_u8(&rd, &alg) == 0 && alg != JIG_ALG_P256 && alg != JIG_ALG_P384) {
		jig_msg_error(m, f->type, JIG_E_BAD_SLOT, "algorithm %u not supported (1 P-256, 2 P-384)", alg);
		return 1;
	}
	return 0;
}

static int
handle_locked(jigsim *s, const uint8_t *in, size_t len, uint8_t *out, size_t *out_len, reply *r, st_err *err)
{
	jig_frame f;
	jig_msg req;
	jigsim_dev *d = current(s);
	size_t used;
	uint32_t crc;
	uint8_t type, seq, version;
	st_err e;

	if (s->confirm_until && st_now_ms() > s->confirm_until) {
		s->line_baud = s->revert_baud; /* no frame came at the new rate */
		s->confirm_until = 0;
	} else if (s->confirm_until && s->cfg.baud_fail) {
		return 0; /* at the new rate nothing arrives intact */
	} else if (s->confirm_until) {
		s->confirm_until = 0; /* a frame at the new rate: it stays */
		s->busy_next = s->cfg.baud_busy;
	}
	if (foreign_version(s, in, len, &type, &seq, &version)) {
		if (type == JIG_CMD_HELLO)
			jig_msg_error(&r->msg, type, JIG_E_UNSUPPORTED_VERSION, "HELLO comes in a version-1 frame");
		else if (s->version)
			jig_msg_error(&r->msg, type, JIG_E_UNSUPPORTED_VERSION, "protocol %s was negotiated, not %s",
			    jig_version_name(s->version), jig_version_name(version));
		else
			jig_msg_error(&r->msg, type, JIG_E_UNSUPPORTED_VERSION, "this jig speaks protocol versions %d..%u; "
			    "HELLO first", JIG_VERSION_MIN, s->cfg.max_version);
		return encode(&r->msg, JIG_VERSION_MIN, seq, out, JIG_MAX_FRAME, out_len, err);
	}
	if (jig_frame_decode(in, len, &f, &used, &e) != JIG_DECODE_OK)
		return 0; /* line noise: no answer, the station retries */
	crc = (uint32_t)in[used - 4] << 24 | (uint32_t)in[used - 3] << 16 | (uint32_t)in[used - 2] << 8 | in[used - 1];
	r->delay_us = wire_us(s, used);
	if (f.type == JIG_CMD_KEYGEN && d && (d->se->faults & JIGSIM_F_SLOW_REPLY))
		r->delay_us += 1000ull * s->cfg.slow_ms;

	if (s->cache_valid && f.seq == s->cache_seq && crc == s->cache_crc) {
		/* A retransmission: answer again, never execute again. */
		memcpy(out, s->cache, s->cache_len);
		*out_len = s->cache_len;
		r->delay_us += 1000ull * s->cfg.cmd_ms + wire_us(s, *out_len);
		return 0;
	}
	s->cache_valid = 0;
	r->delay_us += latency_us(s, f.type);

	if (s->busy_next) {
		s->busy_next = 0;
		jig_msg_error(&r->msg, f.type, JIG_E_BUSY, "busy (jigsim: the frame that confirmed SET_BAUD)");
	} else if (!jig_cmd_in_version(f.type, f.version) ||
	    (s->cfg.no_rework && (f.type == JIG_CMD_REWORK_CHALLENGE || f.type == JIG_CMD_RETIRE)))
		jig_msg_error(&r->msg, f.type, JIG_E_UNKNOWN_COMMAND, "no command 0x%02x in protocol %s", f.type,
		    jig_version_name(f.version));
	else if (unsupported_slot(&f, &r->msg))
		;
	else if (jig_msg_decode_v(f.version, f.type, f.payload, f.len, &req, &e) < 0)
		jig_msg_error(&r->msg, f.type, JIG_E_BAD_REQUEST, "%s: %s", jig_cmd_name(f.type), e.msg);
	else if (s->cfg.pause_cmd == f.type && !s->pause_done) {
		s->pause_done = 1;
		if (s->cfg.pause_after)
			execute(s, &req, r);
		r->action = JIGSIM_PAUSED; /* the reply, if any, is discarded */
		r->paused = 1;
		return 0;
	} else {
		execute(s, &req, r);
		if (r->action == JIGSIM_DISCONNECT)
			return 0;
	}
	if (encode(&r->msg, f.version, f.seq, out, JIG_MAX_FRAME, out_len, &e) < 0) {
		jig_msg_error(&r->msg, f.type, JIG_E_SE_FAILURE, "jig: %s", e.msg);
		if (encode(&r->msg, f.version, f.seq, out, JIG_MAX_FRAME, out_len, err) < 0)
			return -1;
	}
	memcpy(s->cache, out, *out_len);
	s->cache_len = *out_len;
	s->cache_seq = f.seq;
	s->cache_crc = crc;
	s->cache_valid = 1;

	if (r->msg.type == (JIG_CMD_KEYGEN | JIG_RESPONSE)) {
		/* The device's first KEYGEN reply is damaged on the line; the
		 * cache keeps the good copy for the station's retry. */
		unsigned fire = d->se->faults & (JIGSIM_F_CORRUPT_BYTE | JIGSIM_F_DROP_REPLY) & ~d->fired;

		d->fired |= fire;
		if (fire & JIGSIM_F_DROP_REPLY)
			*out_len = 0;
		else if (fire & JIGSIM_F_CORRUPT_BYTE)
			out[*out_len / 2] ^= 0xff;
	}
	r->delay_us += wire_us(s, *out_len);
	if (r->switch_to) {
		/* The window opens once the answer has gone, after the delay the
		 * caller sleeps before sending it (PROTOCOL.md section 8). */
		s->revert_baud = s->line_baud;
		s->line_baud = r->switch_to;
		s->confirm_until = st_now_ms() + (r->delay_us + 999) / 1000 + r->confirm_ms;
	}
	return 0;
}

unsigned
jigsim_line_baud(jigsim *s)
{
	unsigned b;

	pthread_mutex_lock(&s->lock);
	if (s->confirm_until && st_now_ms() > s->confirm_until) {
		s->line_baud = s->revert_baud;
		s->confirm_until = 0;
	}
	b = s->line_baud;
	pthread_mutex_unlock(&s->lock);
	return b;
}

static void
sleep_us(jigsim *s, uint64_t us)
{
	/* In slices, so jigsim_stop() is not kept waiting by a slow reply. */
	while (us > 0 && !atomic_load(&s->stop)) {
		uint64_t n = us < 100000 ? us : 100000;
		struct timespec ts = { 0, (long)n * 1000L };

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		us -= n;
	}
}

int
jigsim_handle(jigsim *s, const uint8_t *req, size_t len, uint8_t *resp, size_t cap, size_t *resp_len, st_err *err)
{
	reply *r = NULL;
	int rc;

	*resp_len = 0;
	if (cap < JIG_MAX_FRAME)
		return st_err_set(err, ST_E_INTERNAL, "jigsim: response buffer of %zu bytes, need %d", cap, JIG_MAX_FRAME);
	if (!(r = calloc(1, sizeof(*r))))
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	pthread_mutex_lock(&s->lock);
	rc = handle_locked(s, req, len, resp, resp_len, r, err);
	pthread_mutex_unlock(&s->lock);
	if (rc == 0) {
		if (r->paused && s->cfg.on_pause)
			s->cfg.on_pause(s->cfg.on_pause_arg, s->cfg.pause_cmd, s->cfg.pause_after);
		sleep_us(s, r->delay_us);
		rc = r->action;
		if (rc != JIGSIM_REPLY)
			*resp_len = 0;
	}
	free(r);
	return rc;
}

void
jigsim_connection_reset(jigsim *s)
{
	pthread_mutex_lock(&s->lock);
	s->cache_valid = 0;
	s->version = 0;
	se_env_clear_templates(&s->env);
	s->line_baud = s->cfg.baud;
	s->confirm_until = 0;
	pthread_mutex_unlock(&s->lock);
}

void
jigsim_stop(jigsim *s)
{
	atomic_store(&s->stop, 1);
}

/* ---- introspection ---------------------------------------------------------- */

unsigned
jigsim_device_count(jigsim *s)
{
	unsigned n;

	pthread_mutex_lock(&s->lock);
	n = (unsigned)s->ndev;
	pthread_mutex_unlock(&s->lock);
	return n;
}

unsigned
jigsim_released(jigsim *s)
{
	unsigned n;

	pthread_mutex_lock(&s->lock);
	n = s->released;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* Device by 1-based index, 0 = the one in the jig; call with the lock held. */
static jigsim_dev *
device_at(jigsim *s, unsigned index)
{
	if (index == 0)
		return current(s);
	return index <= s->ndev ? &s->dev[index - 1] : NULL;
}

int
jigsim_device_set_faults(jigsim *s, unsigned index, unsigned faults)
{
	jigsim_dev *d;
	int ret = -1;

	pthread_mutex_lock(&s->lock);
	if ((d = device_at(s, index))) {
		d->se->faults = faults;
		d->fired = 0;
		ret = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int
jigsim_device_get(jigsim *s, unsigned index, jigsim_device_info *info)
{
	jigsim_dev *d;
	int ret = -1;

	pthread_mutex_lock(&s->lock);
	if ((d = device_at(s, index))) {
		memset(info, 0, sizeof(*info));
		info->index = (unsigned)(d - s->dev) + 1;
		snprintf(info->serial, sizeof(info->serial), "%s", d->se->serial);
		info->lifecycle = d->se->lifecycle;
		info->present = d == current(s);
		info->powered = info->present && s->powered;
		info->authenticated = d->se->authenticated;
		info->faults = d->se->faults;
		info->keygens = d->se->keygens;
		info->retired = (unsigned)d->se->nretired;
		ret = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static int
copy_out(const se_bytes *b, uint8_t *out, size_t cap, size_t *len)
{
	if (b->len > cap)
		return -1;
	if (b->len)
		memcpy(out, b->p, b->len);
	*len = b->len;
	return 0;
}

int
jigsim_device_cert(jigsim *s, unsigned index, uint8_t slot, uint8_t *out, size_t cap, size_t *len)
{
	jigsim_dev *d;
	int ret = -1;

	pthread_mutex_lock(&s->lock);
	if ((d = device_at(s, index)) && slot <= JIG_MAX_SLOT)
		ret = copy_out(&d->se->slot[slot].cert, out, cap, len);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int
jigsim_device_pubkey(jigsim *s, unsigned index, uint8_t slot, uint8_t *out, size_t cap, size_t *len)
{
	jigsim_dev *d;
	int ret = -1;

	pthread_mutex_lock(&s->lock);
	if ((d = device_at(s, index)) && slot <= JIG_MAX_SLOT)
		ret = copy_out(&d->se->slot[slot].pub, out, cap, len);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int
jigsim_device_retired(jigsim *s, unsigned index, unsigned r, uint8_t *pub, size_t pub_cap, size_t *pub_len,
    uint8_t *cert, size_t cert_cap, size_t *cert_len)
{
	jigsim_dev *d;
	int ret = -1;

	pthread_mutex_lock(&s->lock);
	if ((d = device_at(s, index)) && r < d->se->nretired &&
	    copy_out(&d->se->retired[r].pub, pub, pub_cap, pub_len) == 0)
		ret = copy_out(&d->se->retired[r].cert, cert, cert_cap, cert_len);
	pthread_mutex_unlock(&s->lock);
	return ret;
}
