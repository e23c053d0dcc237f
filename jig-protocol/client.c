/* The station end of a jig conversation: one request at a time, sequence
 * numbers, per-command timeouts and bounded retransmission (PROTOCOL.md
 * sections 2 and 3).  Errors read "jig URI: CMD: what happened". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "jig.h"
#include "transport-int.h"

#define DEFAULT_TIMEOUT_MS 2000
#define SLOW_TIMEOUT_MS 5000 /* KEYGEN, GET_CSR: 75-650 ms on real parts */
#define TPM_TIMEOUT_MS 30000 /* the TPM commands: an RSA primary key on a real TPM takes seconds */
#define DEFAULT_RETRIES 2

struct jig_client {
	jig_transport *t;
	uint8_t seq;
	uint8_t version; /* frame version: 1 until HELLO negotiates */
	uint8_t min_version, max_version; /* what HELLO offers */
	int retries;
	int timeout_ms[JIG_CMD_MAX + 1];
	jig_client_stats stats;
	jig_retry_hook *on_retry;
	void *on_retry_ctx;
	jig_stream rx;
	jig_frame f;                 /* scratch frame */
	uint8_t tx[JIG_MAX_FRAME];   /* the request, kept for retransmission */
	uint8_t rbuf[JIG_MAX_FRAME]; /* one transport read */
};

jig_client *
jig_client_new(jig_transport *t)
{
	jig_client *c;
	int i;

	if (!t)
		return NULL;
	if (!(c = calloc(1, sizeof(*c)))) {
		jig_transport_free(t);
		return NULL;
	}
	c->t = t;
	c->version = 1;
	c->min_version = JIG_VERSION_MIN;
	c->max_version = JIG_VERSION_MAX;
	c->retries = DEFAULT_RETRIES;
	for (i = 0; i <= JIG_CMD_MAX; i++)
		c->timeout_ms[i] = DEFAULT_TIMEOUT_MS;
	c->timeout_ms[JIG_CMD_KEYGEN] = SLOW_TIMEOUT_MS;
	c->timeout_ms[JIG_CMD_GET_CSR] = SLOW_TIMEOUT_MS;
	/* A real TPM may derive the RSA EK again (TPM_INFO, TPM_ACTIVATE) or
	 * make keys: seconds, not milliseconds. */
	for (i = JIG_CMD_TPM_FIRST; i <= JIG_CMD_TPM_LAST; i++)
		c->timeout_ms[i] = TPM_TIMEOUT_MS;
	/* A random first seq: a jig that kept its cache across our reconnect
	 * must not mistake a new request for a retransmission of an old one. */
	if (getrandom(&c->seq, 1, GRND_NONBLOCK) != 1)
		c->seq = (uint8_t)st_now_ms();
	jig_stream_init(&c->rx);
	return c;
}

void
jig_client_free(jig_client *c)
{
	if (!c)
		return;
	jig_transport_free(c->t);
	free(c);
}

const char *
jig_client_uri(const jig_client *c)
{
	return c->t->uri;
}

void
jig_client_set_timeout(jig_client *c, uint8_t cmd, int timeout_ms)
{
	int i;

	if (timeout_ms <= 0)
		return;
	if (cmd == 0) {
		for (i = 1; i <= JIG_CMD_MAX; i++)
			c->timeout_ms[i] = timeout_ms;
	} else if (cmd <= JIG_CMD_MAX) {
		c->timeout_ms[cmd] = timeout_ms;
	}
}

int
jig_client_set_versions(jig_client *c, uint8_t min_version, uint8_t max_version)
{
	if (min_version < JIG_VERSION_MIN || max_version > JIG_VERSION_MAX || min_version > max_version)
		return -1;
	c->min_version = min_version;
	c->max_version = max_version;
	return 0;
}

uint8_t
jig_client_version(const jig_client *c)
{
	return c->version;
}

void
jig_client_set_retries(jig_client *c, int retries)
{
	c->retries = retries < 0 ? 0 : retries;
}

void
jig_client_set_retry_hook(jig_client *c, jig_retry_hook *fn, void *ctx)
{
	c->on_retry = fn;
	c->on_retry_ctx = ctx;
}

void
jig_client_get_stats(const jig_client *c, jig_client_stats *s)
{
	*s = c->stats;
}

enum { GOT_REPLY = 0, TIMED_OUT = 1, CORRUPT = 2 };

/* Wait up to timeout_ms for the frame answering seq.  Returns GOT_REPLY (resp
 * filled: the response or an ERROR frame), TIMED_OUT or CORRUPT (worth a
 * retransmission), or -1 for what a retransmission cannot fix. */
static int
wait_reply(jig_client *c, uint8_t cmd, uint8_t seq, int timeout_ms, jig_msg *resp, st_err *err)
{
	uint64_t deadline = st_now_ms() + (uint64_t)timeout_ms;
	uint64_t bad0 = c->rx.bad_frames;
	size_t got;
	int left;
	st_err e;

	for (;;) {
		while (jig_stream_next(&c->rx, &c->f)) {
			st_log_hex("jig", "rx", c->f.payload, c->f.len);
			if (c->f.seq != seq) {
				c->stats.stale++; /* a late answer to an earlier try */
				st_log("jig", "%s: discarding a stale frame (seq %u, want %u)", c->t->uri, c->f.seq, seq);
				continue;
			}
			if (c->f.type != (cmd | JIG_RESPONSE) && c->f.type != JIG_T_ERROR) {
				if (!(c->f.type & JIG_RESPONSE))
					return st_err_set(err, ST_E_PROTO, "the jig sent a request (frame type 0x%02x, %s) where the %s "
					    "response belongs: a jig answers, it does not ask", c->f.type, jig_cmd_name(c->f.type),
					    jig_cmd_name(cmd));
				return st_err_set(err, ST_E_PROTO, "the jig answered with frame type 0x%02x (%s), expected a %s response",
				    c->f.type, jig_cmd_name(c->f.type & (uint8_t)~JIG_RESPONSE), jig_cmd_name(cmd));
			}
			if (c->f.version != c->version)
				/* After HELLO every frame is in the negotiated version: an
				 * answer in another one is not taken in any layout. */
				return st_err_set(err, ST_E_PROTO, "the jig answered in a protocol %s frame; protocol %s was "
				    "negotiated", jig_version_name(c->f.version), jig_version_name(c->version));
			if (jig_msg_decode_v(c->f.version, c->f.type, c->f.payload, c->f.len, resp, err) < 0)
				return st_err_prefix(err, "malformed reply");
			c->stats.payload_in += c->f.len;
			return GOT_REPLY;
		}
		if (c->rx.bad_frames != bad0) {
			c->stats.corrupt++;
			st_log("jig", "%s: corrupt reply: %s", c->t->uri, c->rx.last_bad.msg);
			return CORRUPT;
		}
		left = jig_ms_left(deadline);
		if (left == 0)
			break;
		if (c->t->ops->read(c->t, c->rbuf, sizeof(c->rbuf), &got, left, &e) < 0) {
			if (e.code == ST_E_TIMEOUT)
				break;
			if (err)
				*err = e;
			return -1;
		}
		c->stats.bytes_in += got;
		jig_stream_feed(&c->rx, c->rbuf, got); /* fits: the stream holds less than one frame here */
	}
	jig_stream_discard(&c->rx); /* a truncated frame is abandoned at the timeout */
	return TIMED_OUT;
}

/* Send the request and wait for its answer, retransmitting the same bytes
 * after a timeout or a corrupt reply.  Errors are not yet prefixed. */
static int
exchange(jig_client *c, const jig_msg *req, jig_msg *resp, st_err *err)
{
	int timeout = c->timeout_ms[req->type <= JIG_CMD_MAX ? req->type : 0], attempt, r = TIMED_OUT;
	unsigned timeouts = 0, corrupt = 0;
	size_t len = 0, txlen = 0;
	st_err e;

	if (jig_msg_encode_v(c->version, req, c->f.payload, sizeof(c->f.payload), &len, err) < 0)
		return -1;
	c->rx.foreign_version = 0;
	c->f.version = c->version;
	c->f.type = req->type;
	c->f.seq = ++c->seq;
	c->f.len = (uint16_t)len;
	if (jig_frame_encode(&c->f, c->tx, sizeof(c->tx), &txlen, err) < 0)
		return -1;
	for (attempt = 0; attempt <= c->retries; attempt++) {
		if (attempt > 0) {
			c->stats.retries++;
			st_log("jig", "%s: %s: retransmitting seq %u (try %d)", c->t->uri, jig_cmd_name(req->type), c->seq,
			    attempt + 1);
			if (c->on_retry) {
				char why[320];

				if (r == CORRUPT)
					snprintf(why, sizeof(why), "corrupt reply (%.280s)", c->rx.last_bad.msg);
				else
					snprintf(why, sizeof(why), "no answer after %d ms", timeout);
				c->on_retry(c->on_retry_ctx, req->type, attempt + 1, c->retries + 1, why);
			}
		}
		st_log_hex("jig", "tx", c->tx, txlen);
		if (c->t->ops->write(c->t, c->tx, txlen, timeout, &e) < 0) {
			if (e.code != ST_E_TIMEOUT) {
				if (err)
					*err = e;
				return -1;
			}
			timeouts++;
			continue;
		}
		c->stats.bytes_out += txlen;
		c->stats.payload_out += len;
		r = wait_reply(c, req->type, c->seq, timeout, resp, err);
		if (r < 0)
			return -1;
		if (r == GOT_REPLY) {
			c->stats.round_trips++;
			return 0;
		}
		if (r == CORRUPT)
			corrupt++;
		else
			timeouts++;
	}
	if (corrupt == 0 && c->rx.foreign_version)
		return st_err_set(err, ST_E_PROTO, "no answer in protocol version %d..%d after %d ms (%d retries); the jig "
		    "sent frames of protocol version %u: it speaks another version (update the jig firmware or the station)",
		    JIG_VERSION_MIN, JIG_VERSION_MAX, timeout, c->retries, c->rx.foreign_version);
	if (corrupt == 0)
		return st_err_set(err, ST_E_TIMEOUT, "no answer after %d ms (%d retries)", timeout, c->retries);
	return st_err_set(err, ST_E_PROTO, "no valid answer after %d retries: %u corrupt replies (last: %s), %u timeouts of %d ms",
	    c->retries, corrupt, c->rx.last_bad.msg, timeouts, timeout);
}

int
jig_client_call(jig_client *c, const jig_msg *req, jig_msg *resp, st_err *err)
{
	const char *cmd = jig_cmd_name(req->type);

	if (req->type & JIG_RESPONSE || !jig_type_known(req->type))
		return st_err_set(err, ST_E_INTERNAL, "jig %s: frame type 0x%02x is not a command", c->t->uri, req->type);
	if (!jig_cmd_in_version(req->type, c->version))
		return st_err_set(err, ST_E_INTERNAL, "jig %s: %s does not exist in protocol %s, which this jig speaks",
		    c->t->uri, cmd, jig_version_name(c->version));
	if (exchange(c, req, resp, err) < 0)
		return st_err_prefix(err, "jig %s: %s", c->t->uri, cmd);
	if (resp->type == JIG_T_ERROR) {
		uint16_t code = resp->u.error.code;

		st_err_set(err, ST_E_REMOTE, "jig %s: %s: the jig refused: %s%s%s", c->t->uri, cmd, jig_error_name(code),
		    resp->u.error.message[0] ? ": " : "", resp->u.error.message);
		if (err)
			err->remote = code;
		return -1;
	}
	return 0;
}

int
jig_client_hello(jig_client *c, jig_msg *hello, st_err *err)
{
	jig_msg req;

	memset(&req, 0, sizeof(req));
	req.type = JIG_CMD_HELLO;
	req.u.hello_req.min_version = c->min_version;
	req.u.hello_req.max_version = c->max_version;
	c->version = 1; /* HELLO always travels in a version-1 frame */
	if (jig_client_call(c, &req, hello, err) < 0) {
		if (err && err->code == ST_E_REMOTE && err->remote == JIG_E_UNSUPPORTED_VERSION) {
			st_err_set(err, ST_E_REMOTE, "jig %s: HELLO: the jig speaks none of this station's protocol versions "
			    "%u..%u; the jig says: \"%s\"; update the jig firmware or the station",
			    c->t->uri, c->min_version, c->max_version, hello->u.error.message);
			err->remote = JIG_E_UNSUPPORTED_VERSION;
		} else if (err && err->code == ST_E_TIMEOUT) {
			/* A jig serves one station at a time: one held by another
			 * accepts the connection and never answers. */
			size_t n = strlen(err->msg);

			snprintf(err->msg + n, sizeof(err->msg) - n, "; another station may be connected to this jig (a jig "
			    "serves one at a time): close it there, or check that the jig is powered and its URI is right");
		}
		return -1;
	}
	if (hello->u.hello.version < c->min_version || hello->u.hello.version > c->max_version)
		return st_err_set(err, ST_E_PROTO, "jig %s: HELLO: the jig chose protocol version %u, this station speaks %u..%u",
		    c->t->uri, hello->u.hello.version, c->min_version, c->max_version);
	c->version = hello->u.hello.version;
	return 0;
}

int
jig_client_set_baud(jig_client *c, uint32_t baud, unsigned confirm_ms, st_err *err)
{
	static _Thread_local jig_msg req, resp;
	int saved_retries = c->retries, saved_timeout = c->timeout_ms[JIG_CMD_DUT_STATUS], rc, cannot = 0;
	unsigned old = 0;
	uint64_t switched;
	st_err e;

	memset(&req, 0, sizeof(req));
	req.type = JIG_CMD_SET_BAUD;
	req.u.baud_req.baud = baud;
	req.u.baud_req.confirm_ms = (uint16_t)confirm_ms;
	if (jig_client_call(c, &req, &resp, err) < 0)
		return -1;
	switched = st_now_ms();
	memset(&req, 0, sizeof(req));
	req.type = JIG_CMD_DUT_STATUS;
	if (c->t->ops->set_baud && c->t->ops->set_baud(c->t, baud, &old, &e) < 0) {
		cannot = 1; /* this end cannot: the jig goes back by itself */
	} else {
		jig_stream_discard(&c->rx);
		/* The confirmation: one try, answered within half the jig's window. */
		c->retries = 0;
		c->timeout_ms[JIG_CMD_DUT_STATUS] = (int)(confirm_ms / 2 ? confirm_ms / 2 : 1);
		rc = jig_client_call(c, &req, &resp, &e);
		c->retries = saved_retries;
		c->timeout_ms[JIG_CMD_DUT_STATUS] = saved_timeout;
		/* Any intact answer, an ERROR frame too, crossed the line at the
		 * new rate both ways and confirmed it at the jig: going back now
		 * would leave the two ends at different rates. */
		if (rc == 0 || e.code == ST_E_REMOTE)
			return 0;
		/* Revert: this end now, the jig once its window has passed. */
		if (c->t->ops->set_baud && c->t->ops->set_baud(c->t, old, &old, err) < 0)
			return st_err_prefix(err, "jig %s: SET_BAUD: back to the old rate", c->t->uri);
	}
	{
		uint64_t until = switched + confirm_ms + confirm_ms / 5 + 20, now;

		/* tv_nsec stays below one second: a longer one is EINVAL, and the
		 * loop would spin through a window of up to 6 s. */
		while ((now = st_now_ms()) < until) {
			struct timespec ts = { (time_t)((until - now) / 1000), (long)((until - now) % 1000) * 1000000L };

			nanosleep(&ts, NULL);
		}
	}
	jig_stream_discard(&c->rx);
	if (jig_client_call(c, &req, &resp, err) < 0)
		return st_err_prefix(err, "jig %s: SET_BAUD: no answer at the old rate either after the switch to %u baud "
		    "failed", c->t->uri, baud);
	if (cannot)
		st_err_set(err, ST_E_CONFIG, "jig %s: SET_BAUD: this end cannot run at %u baud (%s); both ends are back at the "
		    "old rate", c->t->uri, baud, e.msg);
	else
		st_err_set(err, ST_E_TIMEOUT, "jig %s: SET_BAUD: no answer at %u baud within %u ms (%s); both ends are back "
		    "at the old rate", c->t->uri, baud, confirm_ms / 2, e.msg);
	return 1;
}

unsigned
jig_client_line_baud(const jig_client *c)
{
	return c->t->baud;
}
