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

/* ---- the 1.2 CSR (section 6): both ends build the same DER ---- */

static void
wr_der_len(st_wr *wr, size_t n)
{
	if (n < 0x80) {
		st_wr_u8(wr, (uint8_t)n);
	} else if (n < 0x100) {
		st_wr_u8(wr, 0x81);
		st_wr_u8(wr, (uint8_t)n);
	} else {
		st_wr_u8(wr, 0x82);
		st_wr_u16(wr, (uint16_t)n);
	}
}

static size_t
der_len_len(size_t n)
{
	return n < 0x80 ? 1 : n < 0x100 ? 2 : 3;
}

/* tag, length, then the caller writes n content bytes */
static void
wr_der_head(st_wr *wr, uint8_t tag, size_t n)
{
	st_wr_u8(wr, tag);
	wr_der_len(wr, n);
}

static const uint8_t oid_cn[] = { 0x06, 0x03, 0x55, 0x04, 0x03 };
static const uint8_t alg_ecdsa_sha256[] = { 0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02 };

int
jig_csr_info(const char *serial, const uint8_t *spki, size_t spki_len, uint8_t *out, size_t cap, size_t *len,
    st_err *err)
{
	size_t ns = strnlen(serial, JIG_STR_MAX + 1), atv, rdn, name, body;
	st_wr wr;

	*len = 0;
	if (ns < 1 || ns > JIG_STR_MAX)
		return st_err_set(err, ST_E_PROTO, "CSR: serial must be 1..%d bytes", JIG_STR_MAX);
	if (spki_len < 2 || spki_len > JIG_BLOB_MAX || spki[0] != 0x30)
		return st_err_set(err, ST_E_PROTO, "CSR: the public key is not a DER SEQUENCE of at most %d bytes",
		    JIG_BLOB_MAX);
	atv = sizeof(oid_cn) + 1 + der_len_len(ns) + ns;
	rdn = 1 + der_len_len(atv) + atv;
	name = 1 + der_len_len(rdn) + rdn;
	body = 3 + 1 + der_len_len(name) + name + spki_len + 2;
	st_wr_init(&wr, out, cap);
	wr_der_head(&wr, 0x30, body);
	st_wr_bytes(&wr, "\x02\x01\x00", 3); /* version 0 */
	wr_der_head(&wr, 0x30, name);
	wr_der_head(&wr, 0x31, rdn);
	wr_der_head(&wr, 0x30, atv);
	st_wr_bytes(&wr, oid_cn, sizeof(oid_cn));
	wr_der_head(&wr, 0x0C, ns); /* UTF8String */
	st_wr_bytes(&wr, serial, ns);
	st_wr_bytes(&wr, spki, spki_len);
	st_wr_bytes(&wr, "\xA0\x00", 2); /* attributes: none */
	if (wr.bad)
		return st_err_set(err, ST_E_INTERNAL, "CSR: does not fit in %zu bytes", cap);
	*len = wr.len;
	return 0;
}

int
jig_csr_assemble(const uint8_t *info, size_t info_len, const uint8_t *sig, size_t sig_len, uint8_t *out, size_t cap,
    size_t *len, st_err *err)
{
	size_t bits = 1 + sig_len, body = info_len + sizeof(alg_ecdsa_sha256) + 1 + der_len_len(bits) + bits;
	st_wr wr;

	*len = 0;
	if (sig_len < 8 || sig_len > JIG_SIG_MAX)
		return st_err_set(err, ST_E_PROTO, "CSR: a signature of %zu bytes (8..%d expected)", sig_len, JIG_SIG_MAX);
	if (body > 0xFFFF)
		return st_err_set(err, ST_E_PROTO, "CSR: too long");
	st_wr_init(&wr, out, cap);
	wr_der_head(&wr, 0x30, body);
	st_wr_bytes(&wr, info, info_len);
	st_wr_bytes(&wr, alg_ecdsa_sha256, sizeof(alg_ecdsa_sha256));
	wr_der_head(&wr, 0x03, bits);
	st_wr_u8(&wr, 0); /* no unused bits */
	st_wr_bytes(&wr, sig, sig_len);
	if (wr.bad)
		return st_err_set(err, ST_E_INTERNAL, "CSR: does not fit in %zu bytes", cap);
	*len = wr.len;
	return 0;
}
