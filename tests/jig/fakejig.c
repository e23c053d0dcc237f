#include <stdlib.h>
#include <string.h>

#include "fakejig.h"

static void
answer(fakejig *f, const jig_msg *req, jig_msg *resp)
{
	memset(resp, 0, sizeof(*resp));
	resp->type = req->type | JIG_RESPONSE;
	switch (req->type) {
	case JIG_CMD_HELLO:
		resp->u.hello.version = f->hello_version;
		strcpy(resp->u.hello.jig_id, "fake-1");
		strcpy(resp->u.hello.firmware, "0.9.1");
		resp->u.hello.capabilities = JIG_CAP_DUT_DETECT | JIG_CAP_DUT_POWER;
		resp->u.hello.max_payload = JIG_MAX_PAYLOAD;
		break;
	case JIG_CMD_DUT_STATUS:
	case JIG_CMD_DUT_POWER:
		resp->u.dut.present = !f->no_dut;
		resp->u.dut.powered = !f->no_dut;
		break;
	case JIG_CMD_SE_INFO:
		if (f->no_dut) {
			resp->type = JIG_T_ERROR;
			resp->u.error.command = req->type;
			resp->u.error.code = JIG_E_NO_DUT;
			strcpy(resp->u.error.message, "no device in the jig");
			break;
		}
		strcpy(resp->u.se_info.serial, "SE00F00D");
		strcpy(resp->u.se_info.model, "TSE-100");
		resp->u.se_info.firmware = 1u << 24 | 4u << 16 | 2;
		resp->u.se_info.lifecycle = JIG_LC_FACTORY;
		memset(resp->u.se_info.challenge, 0x5c, JIG_NONCE_LEN);
		if (f->cert) {
			resp->u.se_info.ncerts = 1;
			resp->u.se_info.certs[0].len = f->cert_len;
			memcpy(resp->u.se_info.certs[0].data, f->cert, f->cert_len);
		}
		break;
	case JIG_CMD_KEYGEN: /* a different "key" each time it really runs */
		resp->u.pubkey.len = 8;
		memcpy(resp->u.pubkey.data, "key-", 4);
		resp->u.pubkey.data[4] = (uint8_t)('0' + f->executed);
		memcpy(resp->u.pubkey.data + 5, "...", 3);
		break;
	case JIG_CMD_LOCK:
		resp->u.lock.lifecycle = JIG_LC_PROVISIONED;
		break;
	default:
		resp->type = JIG_T_ERROR;
		resp->u.error.command = req->type;
		resp->u.error.code = JIG_E_UNKNOWN_COMMAND;
		strcpy(resp->u.error.message, "the fake jig does not do that");
		break;
	}
}

static size_t
frame(uint8_t type, uint8_t seq, const jig_msg *m, uint8_t *out)
{
	static _Thread_local jig_frame fr;
	size_t len = 0, n = 0;

	if (jig_msg_encode(m, fr.payload, sizeof(fr.payload), &len, NULL) < 0)
		abort();
	fr.version = 1;
	fr.type = type;
	fr.seq = seq;
	fr.len = (uint16_t)len;
	if (jig_frame_encode(&fr, out, JIG_MAX_FRAME, &n, NULL) < 0)
		abort();
	return n;
}

static void
send_all(fakejig *f, const uint8_t *p, size_t n)
{
	f->t->ops->write(f->t, p, n, 2000, NULL);
}

static void *
serve(void *arg)
{
	fakejig *f = arg;
	static _Thread_local jig_stream s;
	static _Thread_local jig_frame req;
	static _Thread_local jig_msg in, out;
	static _Thread_local uint8_t buf[JIG_MAX_FRAME], resp[JIG_MAX_FRAME + 1], cache[JIG_MAX_FRAME];
	size_t got, n, cache_len = 0, i;
	uint32_t cache_crc = 0;
	int cache_seq = -1;

	jig_stream_init(&s);
	for (;;) {
		if (f->t->ops->read(f->t, buf, sizeof(buf), &got, 10000, NULL) < 0)
			break;
		jig_stream_feed(&s, buf, got);
		while (jig_stream_next(&s, &req)) {
			int action = (size_t)f->nreq < f->nscript ? f->script[f->nreq] : FAKE_ANSWER;
			uint8_t raw[JIG_MAX_FRAME];
			size_t rl = 0;
			uint32_t crc;

			/* frame encoding is deterministic: these are the bytes the client sent */
			jig_frame_encode(&req, raw, sizeof(raw), &rl, NULL);
			crc = jig_crc32(raw + 1, rl - 1 - JIG_CRC_LEN);
			if (f->nreq < FAKE_MAX_REQ) {
				f->rawlen[f->nreq] = rl < sizeof(f->raw[0]) ? rl : sizeof(f->raw[0]);
				memcpy(f->raw[f->nreq], raw, f->rawlen[f->nreq]);
			}
			f->nreq++;
			if (action == FAKE_CLOSE) {
				jig_transport_free(f->t);
				f->t = NULL;
				return NULL;
			}
			if (cache_seq == req.seq && cache_crc == crc) {
				n = cache_len; /* a retransmission: answer again, do not execute */
				memcpy(resp, cache, n);
			} else if (action == FAKE_ERROR) {
				memset(&out, 0, sizeof(out));
				out.type = JIG_T_ERROR;
				out.u.error.command = req.type;
				out.u.error.code = f->error_code;
				strcpy(out.u.error.message, "scripted error");
				n = frame(JIG_T_ERROR, req.seq, &out, resp);
			} else {
				if (jig_msg_decode(req.type, req.payload, req.len, &in, NULL) < 0)
					abort();
				f->executed++;
				answer(f, &in, &out);
				n = frame(out.type, req.seq, &out, resp);
				memcpy(cache, resp, n);
				cache_len = n;
				cache_seq = req.seq;
				cache_crc = crc;
			}
			switch (action) {
			case FAKE_DROP:
				break;
			case FAKE_STALE: {
				uint8_t old[JIG_MAX_FRAME];
				size_t on = frame(out.type, (uint8_t)(req.seq - 1), &out, old);

				send_all(f, old, on);
				send_all(f, resp, n);
				break;
			}
			case FAKE_CORRUPT:
				resp[JIG_HEADER_LEN] ^= 0x01;
				send_all(f, resp, n);
				break;
			case FAKE_GARBAGE:
				send_all(f, (const uint8_t *)"\x00\xA5\x01\x13garbage", 11);
				for (i = 0; i < n; i++)
					send_all(f, resp + i, 1);
				break;
			case FAKE_WRONG_TYPE:
				n = frame(JIG_CMD_LOCK | JIG_RESPONSE, req.seq, &(jig_msg){ .type = JIG_CMD_LOCK | JIG_RESPONSE,
				    .u.lock.lifecycle = 1 }, resp);
				send_all(f, resp, n);
				break;
			case FAKE_MALFORMED: {
				static _Thread_local jig_frame bad;
				size_t len = 0;

				jig_msg_encode(&out, bad.payload, sizeof(bad.payload), &len, NULL);
				bad.version = 1;
				bad.type = out.type;
				bad.seq = req.seq;
				bad.len = (uint16_t)(len + 1);
				bad.payload[len] = 0;
				jig_frame_encode(&bad, resp, sizeof(resp), &n, NULL);
				send_all(f, resp, n);
				break;
			}
			default:
				send_all(f, resp, n);
				break;
			}
		}
	}
	return NULL;
}

void
fake_start(fakejig *f, jig_transport *t)
{
	f->t = t;
	if (!f->hello_version)
		f->hello_version = 1;
	pthread_create(&f->thread, NULL, serve, f);
}

void
fake_stop(fakejig *f)
{
	pthread_join(f->thread, NULL);
	jig_transport_free(f->t);
	f->t = NULL;
}
