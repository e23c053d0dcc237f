/* The signed structures of PROTOCOL.md sections 5 and 6, byte for byte.
 * No I/O, no crypto: callers sign and verify these bytes. */
#include <string.h>

#include "jig-codec.h"

#define TAG_ATTEST_LEN (sizeof(JIG_TAG_ATTEST) - 1)

int
jig_attest_encode(const jig_attest *a, uint8_t *out, size_t cap, size_t *len, st_err *err)
{
	size_t ns = strnlen(a->serial, JIG_STR_MAX + 1), nm = strnlen(a->model, JIG_STR_MAX + 1);
	st_wr wr;

	*len = 0;
	if (ns < 1 || ns > JIG_STR_MAX || nm < 1 || nm > JIG_STR_MAX)
		return st_err_set(err, ST_E_PROTO, "attestation: serial and model must be 1..%d bytes", JIG_STR_MAX);
	if (a->lifecycle < JIG_LC_FACTORY || a->lifecycle > JIG_LC_REWORK || a->slot > JIG_MAX_SLOT)
		return st_err_set(err, ST_E_PROTO, "attestation: lifecycle %u or slot %u out of range", a->lifecycle, a->slot);
	st_wr_init(&wr, out, cap);
	st_wr_bytes(&wr, JIG_TAG_ATTEST, TAG_ATTEST_LEN);
	st_wr_u8(&wr, JIG_NONCE_LEN);
	st_wr_bytes(&wr, a->nonce, JIG_NONCE_LEN);
	st_wr_u8(&wr, (uint8_t)ns);
	st_wr_bytes(&wr, a->serial, ns);
	st_wr_u8(&wr, (uint8_t)nm);
	st_wr_bytes(&wr, a->model, nm);
	st_wr_u32(&wr, a->firmware);
	st_wr_u8(&wr, a->lifecycle);
	st_wr_u8(&wr, a->slot);
	st_wr_bytes(&wr, a->csr_sha256, 32);
	st_wr_bytes(&wr, a->pubkey_sha256, 32);
	if (wr.bad)
		return st_err_set(err, ST_E_INTERNAL, "attestation does not fit in %zu bytes", cap);
	*len = wr.len;
	return 0;
}

/* u8 length + text of 1..JIG_STR_MAX bytes without NUL */
static int
rd_str8(st_rd *rd, char *out, const char *field, st_err *err)
{
	const uint8_t *p;
	uint8_t n;

	if (st_rd_u8(rd, &n) < 0 || !(p = st_rd_take(rd, n)))
		return st_err_set(err, ST_E_PROTO, "attestation: %s: truncated", field);
	if (n < 1 || n > JIG_STR_MAX || memchr(p, 0, n))
		return st_err_set(err, ST_E_PROTO, "attestation: %s: %u bytes, must be 1..%d without NUL", field, n,
		    JIG_STR_MAX);
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

int
jig_attest_decode(const uint8_t *p, size_t len, jig_attest *a, st_err *err)
{
	const uint8_t *q;
	uint8_t n = 0;
	st_rd rd;

	memset(a, 0, sizeof(*a));
	st_rd_init(&rd, p, len);
	if (!(q = st_rd_take(&rd, TAG_ATTEST_LEN)) || memcmp(q, JIG_TAG_ATTEST, TAG_ATTEST_LEN) != 0)
		return st_err_set(err, ST_E_PROTO, "attestation: does not start with the tag \"%s\"", JIG_TAG_ATTEST);
	if (st_rd_u8(&rd, &n) < 0 || n != JIG_NONCE_LEN || !(q = st_rd_take(&rd, n)))
		return st_err_set(err, ST_E_PROTO, "attestation: nonce: %u bytes or truncated, must be %d", n,
		    JIG_NONCE_LEN);
	memcpy(a->nonce, q, JIG_NONCE_LEN);
	if (rd_str8(&rd, a->serial, "serial", err) < 0 || rd_str8(&rd, a->model, "model", err) < 0)
		return -1;
	st_rd_u32(&rd, &a->firmware);
	st_rd_u8(&rd, &a->lifecycle);
	st_rd_u8(&rd, &a->slot);
	if ((q = st_rd_take(&rd, 32)))
		memcpy(a->csr_sha256, q, 32);
	if ((q = st_rd_take(&rd, 32)))
		memcpy(a->pubkey_sha256, q, 32);
	if (rd.bad)
		return st_err_set(err, ST_E_PROTO, "attestation: truncated (%zu bytes)", len);
	if (st_rd_done(&rd) < 0)
		return st_err_set(err, ST_E_PROTO, "attestation: %zu trailing bytes", st_rd_left(&rd));
	if (a->lifecycle < JIG_LC_FACTORY || a->lifecycle > JIG_LC_REWORK)
		return st_err_set(err, ST_E_PROTO, "attestation: lifecycle %u is not 1, 2 or 3", a->lifecycle);
	if (a->slot > JIG_MAX_SLOT)
		return st_err_set(err, ST_E_PROTO, "attestation: slot %u, at most %d", a->slot, JIG_MAX_SLOT);
	return 0;
}

int
jig_challenge_message(const char *tag, const char *serial, const uint8_t challenge[JIG_NONCE_LEN], uint8_t *out,
    size_t cap, size_t *len, st_err *err)
{
	size_t ns = strnlen(serial, JIG_STR_MAX + 1);
	st_wr wr;

	*len = 0;
	if (strcmp(tag, JIG_TAG_TOOL_AUTH) != 0 && strcmp(tag, JIG_TAG_REWORK) != 0 && strcmp(tag, JIG_TAG_TPM_REWORK) != 0)
		return st_err_set(err, ST_E_INTERNAL, "challenge message: unknown domain tag \"%s\"", tag);
	if (ns < 1 || ns > JIG_STR_MAX)
		return st_err_set(err, ST_E_PROTO, "challenge message: serial must be 1..%d bytes", JIG_STR_MAX);
	st_wr_init(&wr, out, cap);
	st_wr_bytes(&wr, tag, strlen(tag));
	st_wr_u8(&wr, (uint8_t)ns);
	st_wr_bytes(&wr, serial, ns);
	st_wr_bytes(&wr, challenge, JIG_NONCE_LEN);
	if (wr.bad)
		return st_err_set(err, ST_E_INTERNAL, "challenge message does not fit in %zu bytes", cap);
	*len = wr.len;
	return 0;
}

void
jig_tpm_serial(const uint8_t *ek_public, size_t len, char out[20])
{
	static const char hex[] = "0123456789ABCDEF";
	uint8_t h[32];
	size_t i;

	st_sha256(ek_public, len, h);
	memcpy(out, "TPM", 3);
	for (i = 0; i < 8; i++) {
		out[3 + 2 * i] = hex[h[i] >> 4];
		out[4 + 2 * i] = hex[h[i] & 15];
	}
	out[19] = '\0';
}

int
jig_lock_receipt_encode(const jig_lock_receipt *r, uint8_t *out, size_t cap, size_t *len, st_err *err)
{
	size_t ns = strnlen(r->serial, JIG_STR_MAX + 1);
	st_wr wr;

	*len = 0;
	if (ns < 1 || ns > JIG_STR_MAX)
		return st_err_set(err, ST_E_PROTO, "lock receipt: serial must be 1..%d bytes", JIG_STR_MAX);
	if (r->lifecycle < JIG_LC_FACTORY || r->lifecycle > JIG_LC_REWORK || r->slot > JIG_MAX_SLOT)
		return st_err_set(err, ST_E_PROTO, "lock receipt: lifecycle %u or slot %u out of range", r->lifecycle, r->slot);
	st_wr_init(&wr, out, cap);
	st_wr_bytes(&wr, JIG_TAG_LOCK, sizeof(JIG_TAG_LOCK) - 1);
	st_wr_u8(&wr, JIG_NONCE_LEN);
	st_wr_bytes(&wr, r->nonce, JIG_NONCE_LEN);
	st_wr_u8(&wr, (uint8_t)ns);
	st_wr_bytes(&wr, r->serial, ns);
	st_wr_u8(&wr, r->lifecycle);
	st_wr_u8(&wr, r->slot);
	st_wr_bytes(&wr, r->cert_sha256, JIG_SHA256_LEN);
	if (wr.bad)
		return st_err_set(err, ST_E_INTERNAL, "lock receipt does not fit in %zu bytes", cap);
	*len = wr.len;
	return 0;
}
