/* tpmdut's jig side: frames in, frames out (PROTOCOL.md sections 1-4 and
 * 11).  A panel of TPM devices comes one after another, the next when the
 * station releases the current one.  Only the commands a TPM device has
 * are answered; the SE commands (SE_INFO, KEYGEN, GET_CSR...) get
 * UNKNOWN_COMMAND, as any command outside the capabilities HELLO gave. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "station-config.h"
#include "tpmdut.h"

static const char *const fault_names[] = { "imported-idevid", "stale-nonce", "certify-other-key", "rework-other-key",
	"replay-challenge", "stall-nv-write" };

unsigned
tpmdut_fault_parse(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(fault_names) / sizeof(fault_names[0]); i++)
		if (strcmp(name, fault_names[i]) == 0)
			return 1u << i;
	return 0;
}

struct tpmdut {
	unsigned id;
	tpmdut_device_cfg *devs;
	size_t ndevs, cur;   /* devs[cur] is in the jig while cur < ndevs */
	tpm_dev *dev;        /* its TPM, opened when it came in */
	int powered;
	int timing;
	uint8_t version;     /* negotiated; 0 before HELLO */
	uint8_t prev_nonce[JIG_NONCE_LEN]; /* the last TPM_CERTIFY nonce, for the stale-nonce fault */
	uint8_t prev_challenge[JIG_NONCE_LEN]; /* the last TPM_REWORK_SIGN challenge, for replay-challenge */
	int cache_valid;
	uint8_t cache_seq;
	uint32_t cache_crc;
	uint8_t cache[JIG_MAX_FRAME];
	size_t cache_len;
};

tpmdut *
tpmdut_new(unsigned id, const tpmdut_device_cfg *devs, size_t ndevs, st_err *err)
{
	tpmdut *t = calloc(1, sizeof(*t));
	size_t i;

	if (!t || !(t->devs = calloc(ndevs ? ndevs : 1, sizeof(*devs)))) {
		free(t);
		st_err_set(err, ST_E_NOMEM, "out of memory");
		return NULL;
	}
	t->id = id;
	t->ndevs = ndevs;
	for (i = 0; i < ndevs; i++) {
		t->devs[i].tcti = strdup(devs[i].tcti);
		t->devs[i].keys_tcti = devs[i].keys_tcti ? strdup(devs[i].keys_tcti) : NULL;
		t->devs[i].faults = devs[i].faults;
	}
	t->powered = ndevs > 0;
	return t;
}

void
tpmdut_set_timing(tpmdut *t, int on)
{
	t->timing = on;
}

void
tpmdut_free(tpmdut *t)
{
	size_t i;

	if (!t)
		return;
	tpm_dev_close(t->dev);
	for (i = 0; i < t->ndevs; i++) {
		free(t->devs[i].tcti);
		free(t->devs[i].keys_tcti);
	}
	free(t->devs);
	free(t);
}

void
tpmdut_connection_reset(tpmdut *t)
{
	t->cache_valid = 0;
	t->version = 0;
}

static int
present(const tpmdut *t)
{
	return t->cur < t->ndevs;
}

static void
hello(tpmdut *t, const jig_msg *req, jig_msg *m)
{
	/* 1.1: what 1.2 adds is the SE commands' (section 4), which a TPM
	 * device does not answer; its TPM_* commands are the same in both. */
	if (jig_hello_answer(req, JIG_VERSION_1_1, m) < 0)
		return;
	t->version = m->u.hello.version;
	snprintf(m->u.hello.jig_id, sizeof(m->u.hello.jig_id), "tpmdut-%u", t->id);
	snprintf(m->u.hello.firmware, sizeof(m->u.hello.firmware), "tpmdut %s", STATION_VERSION);
	m->u.hello.capabilities = JIG_CAP_DUT_DETECT | JIG_CAP_DUT_POWER | JIG_CAP_TPM;
}

static void
dut(tpmdut *t, jig_msg *m, uint8_t type)
{
	memset(m, 0, sizeof(*m));
	m->type = type | JIG_RESPONSE;
	m->u.dut.present = (uint8_t)present(t);
	m->u.dut.powered = (uint8_t)(present(t) && t->powered);
}

static void
power(tpmdut *t, uint8_t action, jig_msg *m)
{
	if (present(t)) {
		if (action == JIG_POWER_ON) {
			t->powered = 1;
		} else {
			/* Power off: the TPM connection closes (its state stays in the TPM). */
			tpm_dev_close(t->dev);
			t->dev = NULL;
			t->powered = 0;
			if (action == JIG_POWER_RELEASE) {
				t->cur++;
				t->powered = present(t);
			}
		}
	}
	dut(t, m, JIG_CMD_DUT_POWER);
}

static void
tpm_error(jig_msg *m, uint8_t cmd, const st_err *e)
{
	jig_msg_error(m, cmd, e->code == ST_E_REMOTE ? (uint16_t)e->remote : JIG_E_SE_FAILURE, "%s", e->msg);
}

static void
tpm_command(tpmdut *t, const jig_msg *req, jig_msg *m)
{
	uint8_t cmd = req->type;
	struct timespec t0, t1;
	st_err e;
	int rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!present(t)) {
		jig_msg_error(m, cmd, JIG_E_NO_DUT, "no device in the jig");
		return;
	}
	if (!t->powered) {
		jig_msg_error(m, cmd, JIG_E_NO_DUT, "the device is not powered");
		return;
	}
	st_err_clear(&e);
	if (!t->dev && !(t->dev = tpm_dev_open(&t->devs[t->cur], &e))) {
		tpm_error(m, cmd, &e);
		return;
	}
	memset(m, 0, sizeof(*m));
	m->type = cmd | JIG_RESPONSE;
	switch (cmd) {
	case JIG_CMD_TPM_INFO:
		rc = tpm_dev_info(t->dev, &m->u.tpm_info, &e);
		break;
	case JIG_CMD_TPM_KEYGEN:
		rc = tpm_dev_keygen(t->dev, req->u.tpm_keygen_req.flags & JIG_KEYGEN_KEEP, &m->u.tpm_keys.iak,
		    &m->u.tpm_keys.idevid, &e);
		break;
	case JIG_CMD_TPM_ACTIVATE:
		rc = tpm_dev_activate(t->dev, &req->u.tpm_activate_req.credential, &req->u.tpm_activate_req.secret,
		    &m->u.tpm_secret, &e);
		break;
	case JIG_CMD_TPM_CERTIFY:
		rc = tpm_dev_certify(t->dev, req->u.tpm_certify_req.nonce, t->prev_nonce, &m->u.tpm_certify.attest,
		    &m->u.tpm_certify.signature, &m->u.tpm_certify.csr, &e);
		memcpy(t->prev_nonce, req->u.tpm_certify_req.nonce, JIG_NONCE_LEN);
		break;
	case JIG_CMD_TPM_NV_WRITE:
		if (t->devs[t->cur].faults & TPMDUT_F_STALL_NV_WRITE)
			nanosleep(&(struct timespec){ .tv_sec = 20 }, NULL);
		rc = tpm_dev_nv_write(t->dev, req->u.tpm_nv_write_req.which, &req->u.tpm_nv_write_req.data, &e);
		break;
	case JIG_CMD_TPM_NV_READ:
		rc = tpm_dev_nv_read(t->dev, req->u.tpm_nv_req.which, &m->u.tpm_nv.attrs, &m->u.tpm_nv.data, &e);
		break;
	case JIG_CMD_TPM_LOCK:
		rc = tpm_dev_lock(t->dev, m->u.tpm_lock.attrs, &e);
		break;
	case JIG_CMD_TPM_REWORK_SIGN:
		rc = tpm_dev_rework_sign(t->dev, (t->devs[t->cur].faults & TPMDUT_F_REPLAY_CHALLENGE) ? t->prev_challenge :
		    req->u.tpm_rework_req.challenge, &m->u.tpm_signature, &e);
		memcpy(t->prev_challenge, req->u.tpm_rework_req.challenge, JIG_NONCE_LEN);
		break;
	case JIG_CMD_TPM_RETIRE:
		rc = tpm_dev_retire(t->dev, m->u.tpm_lock.attrs, &e);
		break;
	default:
		jig_msg_error(m, cmd, JIG_E_UNKNOWN_COMMAND, "no such command");
		return;
	}
	if (rc < 0)
		tpm_error(m, cmd, &e);
	if (t->timing) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		printf("timing %zu %s %.3f\n", t->cur + 1, jig_cmd_name(cmd),
		    (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
		fflush(stdout);
	}
}

int
tpmdut_handle(tpmdut *t, const uint8_t *req, size_t len, uint8_t *resp, size_t cap, size_t *resp_len, st_err *err)
{
	jig_frame *f = malloc(sizeof(*f)), *out = malloc(sizeof(*out));
	jig_msg *rq = malloc(sizeof(*rq)), *m = malloc(sizeof(*m));
	uint32_t crc;
	size_t used;
	st_err e;
	int ret = -1;

	*resp_len = 0;
	if (!f || !out || !rq || !m) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto out;
	}
	if (jig_frame_decode(req, len, f, &used, &e) != JIG_DECODE_OK) {
		ret = 0; /* not a frame: nothing to answer */
		goto out;
	}
	crc = jig_crc32(req + 1, used - 1 - JIG_CRC_LEN);
	/* A retransmission is answered from the cache, never executed again. */
	if (t->cache_valid && f->seq == t->cache_seq && crc == t->cache_crc && t->cache_len <= cap) {
		memcpy(resp, t->cache, t->cache_len);
		*resp_len = t->cache_len;
		ret = 0;
		goto out;
	}
	if (f->version != (t->version ? t->version : JIG_VERSION_MIN) && f->type != JIG_CMD_HELLO)
		jig_msg_error(m, f->type, JIG_E_UNSUPPORTED_VERSION, "frame version %u, negotiated %u", f->version,
		    t->version ? t->version : JIG_VERSION_MIN);
	else if (jig_msg_decode_v(f->version, f->type, f->payload, f->len, rq, &e) < 0)
		jig_msg_error(m, f->type, e.code == ST_E_NOTFOUND ? JIG_E_UNKNOWN_COMMAND : JIG_E_BAD_REQUEST, "%s", e.msg);
	else if (f->type == JIG_CMD_HELLO)
		hello(t, rq, m);
	else if (f->type == JIG_CMD_DUT_STATUS)
		dut(t, m, JIG_CMD_DUT_STATUS);
	else if (f->type == JIG_CMD_DUT_POWER)
		power(t, rq->u.power_req.action, m);
	else if (f->type >= JIG_CMD_TPM_FIRST && f->type <= JIG_CMD_TPM_LAST)
		tpm_command(t, rq, m);
	else
		jig_msg_error(m, f->type, JIG_E_UNKNOWN_COMMAND, "%s: not a command of a TPM device", jig_cmd_name(f->type));
	out->version = f->version;
	out->type = m->type;
	out->seq = f->seq;
	/* Payloads in the frame's version: the negotiated one (HELLO travels
	 * in a version-1 frame, its answer says which version follows). */
	if (jig_msg_encode_v(f->version, m, out->payload, sizeof(out->payload), &used, &e) < 0) {
		/* Never send what the station would refuse: say why instead. */
		jig_msg_error(m, f->type, JIG_E_SE_FAILURE, "response does not encode: %.150s", e.msg);
		out->type = m->type;
		if (jig_msg_encode_v(f->version, m, out->payload, sizeof(out->payload), &used, err) < 0)
			goto out;
	}
	out->len = (uint16_t)used;
	if (jig_frame_encode(out, resp, cap, resp_len, err) < 0)
		goto out;
	t->cache_valid = 1;
	t->cache_seq = f->seq;
	t->cache_crc = crc;
	memcpy(t->cache, resp, *resp_len);
	t->cache_len = *resp_len;
	ret = 0;
out:
	free(f);
	free(out);
	free(rq);
	free(m);
	return ret;
}
