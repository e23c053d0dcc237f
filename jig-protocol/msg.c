/* Command codec (PROTOCOL.md section 4).  No I/O.  Every read goes through
 * st_rd_*; every field range is checked in one place (msg_check), which the
 * encoder runs too, so we never send what we would refuse to receive. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "jig-codec.h"
#include "msg-int.h"

static const char *const cmd_names[] = {
	[JIG_CMD_HELLO] = "HELLO",
	[JIG_CMD_DUT_STATUS] = "DUT_STATUS",
	[JIG_CMD_DUT_POWER] = "DUT_POWER",
	[JIG_CMD_SE_INFO] = "SE_INFO",
	[JIG_CMD_AUTH_CHALLENGE] = "AUTH_CHALLENGE",
	[JIG_CMD_AUTH_RESPONSE] = "AUTH_RESPONSE",
	[JIG_CMD_KEYGEN] = "KEYGEN",
	[JIG_CMD_GET_CSR] = "GET_CSR",
	[JIG_CMD_INSTALL_CERT] = "INSTALL_CERT",
	[JIG_CMD_READ_CERT] = "READ_CERT",
	[JIG_CMD_LOCK] = "LOCK",
	[JIG_CMD_REWORK_CHALLENGE] = "REWORK_CHALLENGE",
	[JIG_CMD_RETIRE] = "RETIRE",
	[JIG_CMD_VENDOR_CHAIN] = "VENDOR_CHAIN",
	[JIG_CMD_SET_BAUD] = "SET_BAUD",
};

static const char *const error_names[] = {
	[JIG_E_UNSUPPORTED_VERSION] = "UNSUPPORTED_VERSION",
	[JIG_E_UNKNOWN_COMMAND] = "UNKNOWN_COMMAND",
	[JIG_E_BAD_REQUEST] = "BAD_REQUEST",
	[JIG_E_NO_DUT] = "NO_DUT",
	[JIG_E_NOT_AUTHENTICATED] = "NOT_AUTHENTICATED",
	[JIG_E_AUTH_FAILED] = "AUTH_FAILED",
	[JIG_E_BAD_STATE] = "BAD_STATE",
	[JIG_E_LOCKED] = "LOCKED",
	[JIG_E_SLOT_EMPTY] = "SLOT_EMPTY",
	[JIG_E_BAD_SLOT] = "BAD_SLOT",
	[JIG_E_SE_FAILURE] = "SE_FAILURE",
	[JIG_E_BUSY] = "BUSY",
	[JIG_E_NO_TEMPLATE] = "NO_TEMPLATE",
};

const char *
jig_cmd_name(uint8_t cmd)
{
	static _Thread_local char buf[8];

	if (cmd >= JIG_CMD_HELLO && cmd <= JIG_CMD_LAST)
		return cmd_names[cmd];
	if (cmd >= JIG_CMD_TPM_FIRST && cmd <= JIG_CMD_TPM_LAST)
		return jig_tpm_cmd_name(cmd);
	if (cmd == JIG_CMD_CERT_TEMPLATE)
		return "CERT_TEMPLATE";
	if (cmd == JIG_T_ERROR)
		return "ERROR";
	snprintf(buf, sizeof(buf), "0x%02x", cmd);
	return buf;
}

const char *
jig_error_name(uint16_t code)
{
	static _Thread_local char buf[16];

	if (code >= JIG_E_UNSUPPORTED_VERSION && code <= JIG_E_NO_TEMPLATE)
		return error_names[code];
	snprintf(buf, sizeof(buf), "error %u", code);
	return buf;
}

const char *
jig_lifecycle_name(uint8_t lc)
{
	switch (lc) {
	case JIG_LC_FACTORY: return "factory";
	case JIG_LC_PROVISIONED: return "provisioned";
	case JIG_LC_REWORK: return "rework";
	default: return "invalid";
	}
}

void
jig_fw_format(uint32_t fw, char out[JIG_FW_TEXT_MAX])
{
	snprintf(out, JIG_FW_TEXT_MAX, "%u.%u.%u", fw >> 24, (fw >> 16) & 0xff, fw & 0xffff);
}

void
jig_msg_error(jig_msg *m, uint8_t cmd, uint16_t code, const char *fmt, ...)
{
	va_list ap;

	memset(m, 0, sizeof(*m));
	m->type = JIG_T_ERROR;
	m->u.error.command = cmd;
	m->u.error.code = code;
	va_start(ap, fmt);
	vsnprintf(m->u.error.message, sizeof(m->u.error.message), fmt, ap);
	va_end(ap);
}

int
jig_hello_answer(const jig_msg *req, uint8_t max, jig_msg *m)
{
	uint8_t lo = req->u.hello_req.min_version, hi = req->u.hello_req.max_version;
	uint8_t v = hi < max ? hi : max;

	if (v < lo || v < JIG_VERSION_MIN) {
		jig_msg_error(m, JIG_CMD_HELLO, JIG_E_UNSUPPORTED_VERSION,
		    "this jig speaks protocol versions %d..%u, the station offered %u..%u", JIG_VERSION_MIN, max, lo, hi);
		return -1;
	}
	memset(m, 0, sizeof(*m));
	m->type = JIG_CMD_HELLO | JIG_RESPONSE;
	m->u.hello.version = v;
	m->u.hello.max_payload = JIG_MAX_PAYLOAD;
	return 0;
}

int
jig_type_known(uint8_t type)
{
	uint8_t cmd = type & (uint8_t)~JIG_RESPONSE;

	return type == JIG_T_ERROR || (cmd >= JIG_CMD_HELLO && cmd <= JIG_CMD_LAST) ||
	    (cmd >= JIG_CMD_TPM_FIRST && cmd <= JIG_CMD_TPM_LAST) || cmd == JIG_CMD_CERT_TEMPLATE;
}

int
jig_cmd_in_version(uint8_t cmd, uint8_t version)
{
	if (cmd >= JIG_CMD_TPM_FIRST && cmd <= JIG_CMD_TPM_LAST)
		return version >= JIG_VERSION_MIN && version <= JIG_VERSION_MAX; /* offered by capability, not version */
	if (cmd == JIG_CMD_CERT_TEMPLATE)
		return version >= JIG_VERSION_1_2 && version <= JIG_VERSION_MAX;
	if (cmd < JIG_CMD_HELLO || cmd > JIG_CMD_LAST)
		return 0;
	if (version <= JIG_VERSION_1_0)
		return cmd <= JIG_CMD_LAST_1_0;
	return version <= JIG_VERSION_MAX;
}

const char *
jig_version_name(uint8_t version)
{
	static _Thread_local char buf[8];

	if (version == JIG_VERSION_1_0)
		return "1.0";
	if (version == JIG_VERSION_1_1)
		return "1.1";
	if (version == JIG_VERSION_1_2)
		return "1.2";
	snprintf(buf, sizeof(buf), "v%u", version);
	return buf;
}

/* "KEYGEN request", "KEYGEN response", "ERROR frame" */
static void
type_desc(uint8_t type, char *buf, size_t len)
{
	if (type == JIG_T_ERROR)
		snprintf(buf, len, "ERROR frame");
	else
		snprintf(buf, len, "%s %s", jig_cmd_name(type & (uint8_t)~JIG_RESPONSE),
		    (type & JIG_RESPONSE) ? "response" : "request");
}

/* ---- field readers: each sets err naming the field ------------------- */

int
rd_str(st_rd *rd, char *out, size_t max, const char *field, st_err *err)
{
	const uint8_t *p;
	size_t n;

	if (st_rd_lv16(rd, &p, &n) < 0)
		return st_err_set(err, ST_E_PROTO, "%s: truncated", field);
	if (n > max)
		return st_err_set(err, ST_E_PROTO, "%s: %zu bytes, at most %zu", field, n, max);
	if (memchr(p, 0, n))
		return st_err_set(err, ST_E_PROTO, "%s: contains a NUL byte", field);
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

int
rd_blob(st_rd *rd, jig_blob *b, const char *field, st_err *err)
{
	const uint8_t *p;
	size_t n;

	if (st_rd_lv16(rd, &p, &n) < 0)
		return st_err_set(err, ST_E_PROTO, "%s: truncated", field);
	if (n > JIG_BLOB_MAX)
		return st_err_set(err, ST_E_PROTO, "%s: %zu bytes, at most %d", field, n, JIG_BLOB_MAX);
	memcpy(b->data, p, n);
	b->len = n;
	return 0;
}

/* bytes16 holding exactly 32 bytes (challenges, nonces) */
int
rd_nonce(st_rd *rd, uint8_t out[JIG_NONCE_LEN], const char *field, st_err *err)
{
	const uint8_t *p;
	size_t n;

	if (st_rd_lv16(rd, &p, &n) < 0)
		return st_err_set(err, ST_E_PROTO, "%s: truncated", field);
	if (n != JIG_NONCE_LEN)
		return st_err_set(err, ST_E_PROTO, "%s: %zu bytes, must be %d", field, n, JIG_NONCE_LEN);
	memcpy(out, p, n);
	return 0;
}

int
rd_u8(st_rd *rd, uint8_t *v, const char *field, st_err *err)
{
	if (st_rd_u8(rd, v) < 0)
		return st_err_set(err, ST_E_PROTO, "%s: truncated", field);
	return 0;
}

static int
rd_u16(st_rd *rd, uint16_t *v, const char *field, st_err *err)
{
	if (st_rd_u16(rd, v) < 0)
		return st_err_set(err, ST_E_PROTO, "%s: truncated", field);
	return 0;
}

int
rd_u32(st_rd *rd, uint32_t *v, const char *field, st_err *err)
{
	if (st_rd_u32(rd, v) < 0)
		return st_err_set(err, ST_E_PROTO, "%s: truncated", field);
	return 0;
}

/* ---- range checks shared by encoder and decoder ----------------------- */

int
check_max(size_t v, size_t max, const char *field, st_err *err)
{
	if (v > max)
		return st_err_set(err, ST_E_PROTO, "%s: %zu, at most %zu", field, v, max);
	return 0;
}

/* PROTOCOL.md section 4, "Strings": identifiers (SE serial, SE model) are
 * 1..64 bytes of A-Z a-z 0-9 '-' '_' '.'; texts (jig id, jig firmware, error
 * messages) are printable ASCII 0x20..0x7E.  Nothing else is decoded, so no
 * byte of a jig's string can be a control sequence, invalid UTF-8 or a
 * journal-breaking character. */
int
check_str(const char *s, size_t max, enum str_kind kind, const char *field, st_err *err)
{
	size_t i, n = strnlen(s, max + 1);

	if (n > max)
		return st_err_set(err, ST_E_PROTO, "%s: longer than %zu bytes", field, max);
	if (kind == STR_ID && n == 0)
		return st_err_set(err, ST_E_PROTO, "%s: empty", field);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		int ok = kind == STR_TEXT ? c >= 0x20 && c <= 0x7e :
		                            (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		                                c == '-' || c == '_' || c == '.';

		if (!ok)
			return st_err_set(err, ST_E_PROTO, "%s: byte %zu is 0x%02x, outside the %s", field, i + 1, c,
			    kind == STR_TEXT ? "printable ASCII a text may hold (0x20..0x7e)" :
			                       "characters an identifier may hold (A-Z a-z 0-9 - _ .)");
	}
	return 0;
}

static int
check_lifecycle(uint8_t lc, st_err *err)
{
	if (lc < JIG_LC_FACTORY || lc > JIG_LC_REWORK)
		return st_err_set(err, ST_E_PROTO, "lifecycle: %u is not 1 (factory), 2 (provisioned) or 3 (rework)", lc);
	return 0;
}

static int
check_slot(uint8_t slot, st_err *err)
{
	return check_max(slot, JIG_MAX_SLOT, "slot", err);
}

/* HELLO's rate list (1.1) and SET_BAUD: standard rates only, ascending. */
static int
check_rates(const uint32_t *rates, size_t n, st_err *err)
{
	static const uint32_t ok[] = { 9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 921600, 1000000,
		1500000, 2000000, 3000000 };
	size_t i, k;

	if (n > JIG_MAX_RATES)
		return st_err_set(err, ST_E_PROTO, "rates: %zu, at most %d", n, JIG_MAX_RATES);
	for (i = 0; i < n; i++) {
		for (k = 0; k < sizeof(ok) / sizeof(ok[0]) && ok[k] != rates[i]; k++)
			;
		if (k == sizeof(ok) / sizeof(ok[0]))
			return st_err_set(err, ST_E_PROTO, "rate %zu: %u baud is not a standard rate", i + 1, rates[i]);
		if (i > 0 && rates[i] <= rates[i - 1])
			return st_err_set(err, ST_E_PROTO, "rate %zu: %u baud after %u: the list must ascend", i + 1, rates[i],
			    rates[i - 1]);
	}
	return 0;
}

/* A DER ECDSA signature's length (1.2 fields that must hold one). */
static int
check_sig(const jig_blob *b, const char *field, st_err *err)
{
	if (b->len < 8 || b->len > JIG_SIG_MAX)
		return st_err_set(err, ST_E_PROTO, "%s: %zu bytes, must be 8..%d", field, b->len, JIG_SIG_MAX);
	return 0;
}

/* 1..JIG_BLOB_MAX bytes */
static int
check_blob(const jig_blob *b, const char *field, st_err *err)
{
	if (b->len == 0 || b->len > JIG_BLOB_MAX)
		return st_err_set(err, ST_E_PROTO, "%s: %zu bytes, must be 1..%d", field, b->len, JIG_BLOB_MAX);
	return 0;
}

static int
msg_check(const jig_msg *m, st_err *err)
{
	const jig_se_info *si = &m->u.se_info;
	uint8_t version = m->version ? m->version : JIG_VERSION_1_0;
	size_t i;

	switch (m->type) {
	case JIG_CMD_HELLO:
		if (m->u.hello_req.min_version > m->u.hello_req.max_version)
			return st_err_set(err, ST_E_PROTO, "version range %u..%u is empty", m->u.hello_req.min_version,
			    m->u.hello_req.max_version);
		return 0;
	case JIG_CMD_HELLO | JIG_RESPONSE:
		if (check_str(m->u.hello.jig_id, JIG_STR_MAX, STR_TEXT, "jig id", err) < 0 ||
		    check_str(m->u.hello.firmware, JIG_STR_MAX, STR_TEXT, "firmware", err) < 0)
			return -1;
		if (m->u.hello.version >= JIG_VERSION_1_1)
			return check_rates(m->u.hello.rates, m->u.hello.nrates, err);
		return 0;
	case JIG_CMD_DUT_POWER:
		return check_max(m->u.power_req.action, JIG_POWER_RELEASE, "power action", err);
	case JIG_CMD_DUT_STATUS | JIG_RESPONSE:
	case JIG_CMD_DUT_POWER | JIG_RESPONSE:
		if (check_max(m->u.dut.present, 1, "present", err) < 0 || check_max(m->u.dut.powered, 1, "powered", err) < 0)
			return -1;
		return 0;
	case JIG_CMD_SE_INFO | JIG_RESPONSE:
		if (check_str(si->serial, JIG_STR_MAX, STR_ID, "serial", err) < 0 || check_str(si->model, JIG_STR_MAX, STR_ID, "model", err) < 0 ||
		    check_lifecycle(si->lifecycle, err) < 0 || check_max(si->ncerts, JIG_MAX_CERTS, "certificates", err) < 0)
			return -1;
		for (i = 0; i < si->ncerts; i++)
			if (check_max(si->certs[i].len, JIG_BLOB_MAX, "certificate", err) < 0)
				return -1;
		if (version >= JIG_VERSION_1_2)
			return (si->attest_delta.len == 0 || si->attest_delta.len > JIG_BLOB_MAX) ?
			    st_err_set(err, ST_E_PROTO, "attestation certificate delta: %zu bytes, must be 1..%d",
			        si->attest_delta.len, JIG_BLOB_MAX) : 0;
		if (version >= JIG_VERSION_1_1 && si->ncerts != 1)
			return st_err_set(err, ST_E_PROTO, "certificates: %zu, protocol 1.1 carries the attestation certificate "
			    "alone (the vendor chain goes by digest)", si->ncerts);
		return 0;
	case JIG_CMD_VENDOR_CHAIN | JIG_RESPONSE:
		if (m->u.chain.n < 1 || m->u.chain.n > JIG_MAX_CERTS - 1)
			return st_err_set(err, ST_E_PROTO, "certificate count: %zu, must be 1..%d", m->u.chain.n,
			    JIG_MAX_CERTS - 1);
		for (i = 0; i < m->u.chain.n; i++)
			if (check_max(m->u.chain.certs[i].len, JIG_BLOB_MAX, "certificate", err) < 0 ||
			    (m->u.chain.certs[i].len == 0 && st_err_set(err, ST_E_PROTO, "certificate %zu: empty", i + 1) < 0))
				return -1;
		return check_max(m->u.chain.tmpl.len, JIG_BLOB_MAX, "template", err);
	case JIG_CMD_SET_BAUD:
		if (check_rates(&m->u.baud_req.baud, 1, err) < 0)
			return -1;
		if (m->u.baud_req.confirm_ms < JIG_BAUD_CONFIRM_MIN_MS || m->u.baud_req.confirm_ms > JIG_BAUD_CONFIRM_MAX_MS)
			return st_err_set(err, ST_E_PROTO, "confirm_ms: %u, must be %d..%d", m->u.baud_req.confirm_ms,
			    JIG_BAUD_CONFIRM_MIN_MS, JIG_BAUD_CONFIRM_MAX_MS);
		return 0;
	case JIG_CMD_AUTH_RESPONSE:
	case JIG_CMD_REWORK_CHALLENGE | JIG_RESPONSE:
		return check_max(m->u.signature.len, JIG_BLOB_MAX, "signature", err);
	case JIG_CMD_KEYGEN:
		if (check_slot(m->u.keygen_req.slot, err) < 0)
			return -1;
		if (m->u.keygen_req.algorithm != JIG_ALG_P256 && m->u.keygen_req.algorithm != JIG_ALG_P384)
			return st_err_set(err, ST_E_PROTO, "algorithm: %u is not 1 (P-256) or 2 (P-384)",
			    m->u.keygen_req.algorithm);
		if (m->u.keygen_req.flags & ~JIG_KEYGEN_KEEP)
			return st_err_set(err, ST_E_PROTO, "flags: unknown bits 0x%02x", m->u.keygen_req.flags);
		return 0;
	case JIG_CMD_KEYGEN | JIG_RESPONSE:
		return check_max(m->u.pubkey.len, JIG_BLOB_MAX, "public key", err);
	case JIG_CMD_GET_CSR:
		return check_slot(m->u.csr_req.slot, err);
	case JIG_CMD_GET_CSR | JIG_RESPONSE:
		if (version >= JIG_VERSION_1_2)
			return (check_sig(&m->u.csr.csr_signature, "CSR signature", err) < 0 ||
			    check_sig(&m->u.csr.signature, "attestation signature", err) < 0) ? -1 : 0;
		if (check_max(m->u.csr.csr.len, JIG_BLOB_MAX, "csr", err) < 0 ||
		    check_max(m->u.csr.attestation.len, JIG_BLOB_MAX, "attestation", err) < 0 ||
		    check_max(m->u.csr.signature.len, JIG_BLOB_MAX, "signature", err) < 0)
			return -1;
		return 0;
	case JIG_CMD_INSTALL_CERT:
		if (version >= JIG_VERSION_1_2)
			return (check_slot(m->u.install_req.slot, err) < 0 ||
			    check_blob(&m->u.install_req.delta, "certificate delta", err) < 0) ? -1 : 0;
		if (check_slot(m->u.install_req.slot, err) < 0 ||
		    check_max(m->u.install_req.cert.len, JIG_BLOB_MAX, "certificate", err) < 0)
			return -1;
		return 0;
	case JIG_CMD_READ_CERT:
		if (version >= JIG_VERSION_1_1 && m->u.slot_req.form > JIG_CERT_SHA256)
			return st_err_set(err, ST_E_PROTO, "form: %u is not 0 (certificate) or 1 (SHA-256)", m->u.slot_req.form);
		return check_slot(m->u.slot_req.slot, err);
	case JIG_CMD_RETIRE:
		return check_slot(m->u.slot_req.slot, err);
	case JIG_CMD_READ_CERT | JIG_RESPONSE:
		return check_max(m->u.cert.len, JIG_BLOB_MAX, "certificate", err);
	case JIG_CMD_CERT_TEMPLATE:
		return check_blob(&m->u.cert, "template", err);
	case JIG_CMD_LOCK:
		return version >= JIG_VERSION_1_1 ? check_slot(m->u.lock_req.slot, err) : 0;
	case JIG_CMD_LOCK | JIG_RESPONSE:
		if (check_lifecycle(m->u.lock.lifecycle, err) < 0)
			return -1;
		if (version >= JIG_VERSION_1_1 && m->u.lock.signature.len != 0 &&
		    (m->u.lock.signature.len < 8 || m->u.lock.signature.len > JIG_SIG_MAX))
			return st_err_set(err, ST_E_PROTO, "receipt signature: %zu bytes, must be 8..%d (or none)",
			    m->u.lock.signature.len, JIG_SIG_MAX);
		return 0;
	case JIG_CMD_REWORK_CHALLENGE:
		return check_slot(m->u.rework_req.slot, err);
	case JIG_T_ERROR:
		return check_str(m->u.error.message, JIG_ERRMSG_MAX, STR_TEXT, "message", err);
	default:
		return jig_tpm_msg_check(m, err);
	}
}

/* ---- decode ------------------------------------------------------------ */

static int
decode_fields(st_rd *rd, jig_msg *m, st_err *err)
{
	jig_se_info *si = &m->u.se_info;
	int v11 = m->version >= JIG_VERSION_1_1, v12 = m->version >= JIG_VERSION_1_2;
	uint8_t n;
	size_t i;

	switch (m->type) {
	case JIG_CMD_HELLO:
		return (rd_u8(rd, &m->u.hello_req.min_version, "min_version", err) < 0 ||
		    rd_u8(rd, &m->u.hello_req.max_version, "max_version", err) < 0) ? -1 : 0;
	case JIG_CMD_HELLO | JIG_RESPONSE:
		if (rd_u8(rd, &m->u.hello.version, "version", err) < 0 ||
		    rd_str(rd, m->u.hello.jig_id, JIG_STR_MAX, "jig id", err) < 0 ||
		    rd_str(rd, m->u.hello.firmware, JIG_STR_MAX, "firmware", err) < 0 ||
		    rd_u32(rd, &m->u.hello.capabilities, "capabilities", err) < 0 ||
		    rd_u16(rd, &m->u.hello.max_payload, "max_payload", err) < 0)
			return -1;
		/* HELLO travels in a version-1 frame: the chosen version says
		 * whether the 1.1 fields follow. */
		if (m->u.hello.version < JIG_VERSION_1_1)
			return 0;
		if (rd_u8(rd, &m->u.hello.nrates, "rate count", err) < 0)
			return -1;
		if (m->u.hello.nrates > JIG_MAX_RATES)
			return st_err_set(err, ST_E_PROTO, "rate count: %u, at most %d", m->u.hello.nrates, JIG_MAX_RATES);
		for (i = 0; i < m->u.hello.nrates; i++)
			if (rd_u32(rd, &m->u.hello.rates[i], "rate", err) < 0)
				return -1;
		return 0;
	case JIG_CMD_DUT_STATUS:
	case JIG_CMD_SE_INFO:
	case JIG_CMD_AUTH_CHALLENGE:
	case JIG_CMD_AUTH_RESPONSE | JIG_RESPONSE:
	case JIG_CMD_INSTALL_CERT | JIG_RESPONSE:
	case JIG_CMD_RETIRE | JIG_RESPONSE:
	case JIG_CMD_VENDOR_CHAIN:
	case JIG_CMD_SET_BAUD | JIG_RESPONSE:
		return 0;
	case JIG_CMD_LOCK:
		if (!v11)
			return 0;
		return (rd_u8(rd, &m->u.lock_req.slot, "slot", err) < 0 ||
		    rd_nonce(rd, m->u.lock_req.nonce, "nonce", err) < 0) ? -1 : 0;
	case JIG_CMD_VENDOR_CHAIN | JIG_RESPONSE:
		if (rd_u8(rd, &n, "certificate count", err) < 0)
			return -1;
		if (n < 1 || n > JIG_MAX_CERTS - 1)
			return st_err_set(err, ST_E_PROTO, "certificate count: %u, must be 1..%d", n, JIG_MAX_CERTS - 1);
		m->u.chain.n = n;
		for (i = 0; i < n; i++)
			if (rd_blob(rd, &m->u.chain.certs[i], "certificate", err) < 0)
				return -1;
		return v12 ? rd_blob(rd, &m->u.chain.tmpl, "template", err) : 0;
	case JIG_CMD_SET_BAUD:
		return (rd_u32(rd, &m->u.baud_req.baud, "baud", err) < 0 ||
		    rd_u16(rd, &m->u.baud_req.confirm_ms, "confirm_ms", err) < 0) ? -1 : 0;
	case JIG_CMD_DUT_POWER:
		return rd_u8(rd, &m->u.power_req.action, "action", err);
	case JIG_CMD_DUT_STATUS | JIG_RESPONSE:
	case JIG_CMD_DUT_POWER | JIG_RESPONSE:
		return (rd_u8(rd, &m->u.dut.present, "present", err) < 0 ||
		    rd_u8(rd, &m->u.dut.powered, "powered", err) < 0) ? -1 : 0;
	case JIG_CMD_SE_INFO | JIG_RESPONSE:
		if (rd_str(rd, si->serial, JIG_STR_MAX, "serial", err) < 0 ||
		    rd_str(rd, si->model, JIG_STR_MAX, "model", err) < 0 ||
		    rd_u32(rd, &si->firmware, "firmware", err) < 0 || rd_u8(rd, &si->lifecycle, "lifecycle", err) < 0 ||
		    rd_nonce(rd, si->challenge, "auth challenge", err) < 0)
			return -1;
		if (v12) {
			/* 1.2: the attestation certificate as a delta, then the chain's digest. */
			si->ncerts = 1; /* certs[0] empty until rebuilt */
			si->chain_by_digest = 1;
			si->cert_by_delta = 1;
			return (rd_blob(rd, &si->attest_delta, "attestation certificate delta", err) < 0 ||
			    rd_nonce(rd, si->chain_sha256, "vendor chain digest", err) < 0) ? -1 : 0;
		}
		if (v11) {
			/* 1.1: the attestation certificate, then the vendor chain's digest. */
			si->ncerts = 1;
			si->chain_by_digest = 1;
			return (rd_blob(rd, &si->certs[0], "attestation certificate", err) < 0 ||
			    rd_nonce(rd, si->chain_sha256, "vendor chain digest", err) < 0) ? -1 : 0;
		}
		if (rd_u8(rd, &n, "certificate count", err) < 0)
			return -1;
		if (n > JIG_MAX_CERTS)
			return st_err_set(err, ST_E_PROTO, "certificate count: %u, at most %d", n, JIG_MAX_CERTS);
		si->ncerts = n;
		for (i = 0; i < n; i++)
			if (rd_blob(rd, &si->certs[i], "certificate", err) < 0)
				return -1;
		return 0;
	case JIG_CMD_AUTH_CHALLENGE | JIG_RESPONSE:
		return rd_nonce(rd, m->u.challenge.challenge, "challenge", err);
	case JIG_CMD_AUTH_RESPONSE:
	case JIG_CMD_REWORK_CHALLENGE | JIG_RESPONSE:
		return rd_blob(rd, &m->u.signature, "signature", err);
	case JIG_CMD_KEYGEN:
		return (rd_u8(rd, &m->u.keygen_req.slot, "slot", err) < 0 ||
		    rd_u8(rd, &m->u.keygen_req.algorithm, "algorithm", err) < 0 ||
		    rd_u8(rd, &m->u.keygen_req.flags, "flags", err) < 0) ? -1 : 0;
	case JIG_CMD_KEYGEN | JIG_RESPONSE:
		return rd_blob(rd, &m->u.pubkey, "public key", err);
	case JIG_CMD_GET_CSR:
		return (rd_u8(rd, &m->u.csr_req.slot, "slot", err) < 0 ||
		    rd_nonce(rd, m->u.csr_req.nonce, "nonce", err) < 0) ? -1 : 0;
	case JIG_CMD_GET_CSR | JIG_RESPONSE:
		if (v12)
			return (rd_blob(rd, &m->u.csr.csr_signature, "CSR signature", err) < 0 ||
			    rd_blob(rd, &m->u.csr.signature, "attestation signature", err) < 0) ? -1 : 0;
		return (rd_blob(rd, &m->u.csr.csr, "csr", err) < 0 ||
		    rd_blob(rd, &m->u.csr.attestation, "attestation", err) < 0 ||
		    rd_blob(rd, &m->u.csr.signature, "signature", err) < 0) ? -1 : 0;
	case JIG_CMD_INSTALL_CERT:
		if (v12)
			return (rd_u8(rd, &m->u.install_req.slot, "slot", err) < 0 ||
			    rd_nonce(rd, m->u.install_req.template_sha256, "template digest", err) < 0 ||
			    rd_blob(rd, &m->u.install_req.delta, "certificate delta", err) < 0) ? -1 : 0;
		return (rd_u8(rd, &m->u.install_req.slot, "slot", err) < 0 ||
		    rd_blob(rd, &m->u.install_req.cert, "certificate", err) < 0) ? -1 : 0;
	case JIG_CMD_READ_CERT:
		if (rd_u8(rd, &m->u.slot_req.slot, "slot", err) < 0)
			return -1;
		return v11 ? rd_u8(rd, &m->u.slot_req.form, "form", err) : 0;
	case JIG_CMD_RETIRE:
		return rd_u8(rd, &m->u.slot_req.slot, "slot", err);
	case JIG_CMD_READ_CERT | JIG_RESPONSE:
		return rd_blob(rd, &m->u.cert, "certificate", err);
	case JIG_CMD_CERT_TEMPLATE:
		return rd_blob(rd, &m->u.cert, "template", err);
	case JIG_CMD_CERT_TEMPLATE | JIG_RESPONSE:
		return 0;
	case JIG_CMD_LOCK | JIG_RESPONSE:
		if (rd_u8(rd, &m->u.lock.lifecycle, "lifecycle", err) < 0)
			return -1;
		return v11 ? rd_blob(rd, &m->u.lock.signature, "receipt signature", err) : 0;
	case JIG_CMD_REWORK_CHALLENGE:
		return (rd_u8(rd, &m->u.rework_req.slot, "slot", err) < 0 ||
		    rd_nonce(rd, m->u.rework_req.challenge, "challenge", err) < 0) ? -1 : 0;
	case JIG_T_ERROR:
		return (rd_u8(rd, &m->u.error.command, "command", err) < 0 ||
		    rd_u16(rd, &m->u.error.code, "code", err) < 0 ||
		    rd_str(rd, m->u.error.message, JIG_ERRMSG_MAX, "message", err) < 0) ? -1 : 0;
	default:
		return jig_tpm_decode_fields(rd, m, err);
	}
}

int
jig_msg_decode_v(uint8_t version, uint8_t type, const uint8_t *payload, size_t len, jig_msg *m, st_err *err)
{
	char what[48];
	st_rd rd;

	memset(m, 0, sizeof(*m));
	m->type = type;
	m->version = version ? version : JIG_VERSION_1_0;
	if (!jig_type_known(type))
		return st_err_set(err, ST_E_NOTFOUND, "unknown frame type 0x%02x", type);
	if (type != JIG_T_ERROR && !jig_cmd_in_version(type & (uint8_t)~JIG_RESPONSE, m->version))
		return st_err_set(err, ST_E_NOTFOUND, "frame type 0x%02x (%s) does not exist in protocol %s", type,
		    jig_cmd_name(type & (uint8_t)~JIG_RESPONSE), jig_version_name(m->version));
	type_desc(type, what, sizeof(what));
	st_rd_init(&rd, payload, len);
	if (decode_fields(&rd, m, err) < 0 || msg_check(m, err) < 0)
		return st_err_prefix(err, "%s", what);
	if (st_rd_left(&rd) > 0)
		return st_err_set(err, ST_E_PROTO, "%s: %zu trailing bytes", what, st_rd_left(&rd));
	return 0;
}

int
jig_msg_decode(uint8_t type, const uint8_t *payload, size_t len, jig_msg *m, st_err *err)
{
	return jig_msg_decode_v(JIG_VERSION_1_0, type, payload, len, m, err);
}

int
jig_chain_payload(const jig_blob *certs, size_t n, const jig_blob *tmpl, uint8_t *out, size_t cap, size_t *len)
{
	st_wr wr;
	size_t i;

	*len = 0;
	if (n > JIG_MAX_CERTS - 1)
		return -1;
	st_wr_init(&wr, out, cap);
	st_wr_u8(&wr, (uint8_t)n);
	for (i = 0; i < n; i++)
		st_wr_lv16(&wr, certs[i].data, certs[i].len);
	if (tmpl)
		st_wr_lv16(&wr, tmpl->data, tmpl->len);
	if (wr.bad)
		return -1;
	*len = wr.len;
	return 0;
}

int
jig_attest_cert_rebuild(jig_se_info *info, st_err *err)
{
	uint8_t src[JIG_CHAIN_PAYLOAD_MAX];
	size_t slen, ns = strlen(info->serial);

	if (info->ncerts >= 2 && !info->chain_has_tmpl)
		return st_err_set(err, ST_E_VERIFY, "SE_INFO: the vendor chain its digest names is a protocol 1.1 chain "
		    "(no template): a 1.2 attestation certificate is not rebuilt against it");
	if (info->ncerts < 2 || ns > JIG_STR_MAX ||
	    jig_chain_payload(&info->certs[1], info->ncerts - 1, &info->chain_tmpl, src, sizeof(src) - JIG_STR_MAX,
	        &slen) < 0)
		return st_err_set(err, ST_E_INTERNAL, "no vendor chain to rebuild the attestation certificate against");
	memcpy(src + slen, info->serial, ns);
	slen += ns;
	if (jig_delta_apply(src, slen, info->attest_delta.data, info->attest_delta.len, info->certs[0].data,
	        sizeof(info->certs[0].data), &info->certs[0].len, err) < 0)
		return st_err_prefix(err, "SE_INFO: attestation certificate");
	info->cert_by_delta = 0;
	return 0;
}

void
jig_chain_digest(const jig_blob *certs, size_t n, const jig_blob *tmpl, uint8_t out[JIG_SHA256_LEN])
{
	uint8_t buf[JIG_CHAIN_PAYLOAD_MAX];
	size_t len;

	if (jig_chain_payload(certs, n, tmpl, buf, sizeof(buf), &len) < 0) {
		memset(out, 0, JIG_SHA256_LEN); /* not a chain the protocol can carry: matches nothing real */
		return;
	}
	st_sha256(buf, len, out);
}

/* ---- encode ------------------------------------------------------------ */

void
wr_str(st_wr *wr, const char *s)
{
	st_wr_lv16(wr, s, strlen(s));
}

static void
encode_fields(st_wr *wr, const jig_msg *m)
{
	const jig_se_info *si = &m->u.se_info;
	int v11 = m->version >= JIG_VERSION_1_1, v12 = m->version >= JIG_VERSION_1_2;
	size_t i;

	switch (m->type) {
	case JIG_CMD_HELLO:
		st_wr_u8(wr, m->u.hello_req.min_version);
		st_wr_u8(wr, m->u.hello_req.max_version);
		break;
	case JIG_CMD_HELLO | JIG_RESPONSE:
		st_wr_u8(wr, m->u.hello.version);
		wr_str(wr, m->u.hello.jig_id);
		wr_str(wr, m->u.hello.firmware);
		st_wr_u32(wr, m->u.hello.capabilities);
		st_wr_u16(wr, m->u.hello.max_payload);
		if (m->u.hello.version >= JIG_VERSION_1_1) {
			st_wr_u8(wr, m->u.hello.nrates);
			for (i = 0; i < m->u.hello.nrates; i++)
				st_wr_u32(wr, m->u.hello.rates[i]);
		}
		break;
	case JIG_CMD_DUT_POWER:
		st_wr_u8(wr, m->u.power_req.action);
		break;
	case JIG_CMD_DUT_STATUS | JIG_RESPONSE:
	case JIG_CMD_DUT_POWER | JIG_RESPONSE:
		st_wr_u8(wr, m->u.dut.present);
		st_wr_u8(wr, m->u.dut.powered);
		break;
	case JIG_CMD_SE_INFO | JIG_RESPONSE:
		wr_str(wr, si->serial);
		wr_str(wr, si->model);
		st_wr_u32(wr, si->firmware);
		st_wr_u8(wr, si->lifecycle);
		st_wr_lv16(wr, si->challenge, JIG_NONCE_LEN);
		if (v12) {
			st_wr_lv16(wr, si->attest_delta.data, si->attest_delta.len);
			st_wr_lv16(wr, si->chain_sha256, JIG_SHA256_LEN);
			break;
		}
		if (v11) {
			st_wr_lv16(wr, si->certs[0].data, si->certs[0].len);
			st_wr_lv16(wr, si->chain_sha256, JIG_SHA256_LEN);
			break;
		}
		st_wr_u8(wr, (uint8_t)si->ncerts);
		for (i = 0; i < si->ncerts; i++)
			st_wr_lv16(wr, si->certs[i].data, si->certs[i].len);
		break;
	case JIG_CMD_AUTH_CHALLENGE | JIG_RESPONSE:
		st_wr_lv16(wr, m->u.challenge.challenge, JIG_NONCE_LEN);
		break;
	case JIG_CMD_AUTH_RESPONSE:
	case JIG_CMD_REWORK_CHALLENGE | JIG_RESPONSE:
		st_wr_lv16(wr, m->u.signature.data, m->u.signature.len);
		break;
	case JIG_CMD_KEYGEN:
		st_wr_u8(wr, m->u.keygen_req.slot);
		st_wr_u8(wr, m->u.keygen_req.algorithm);
		st_wr_u8(wr, m->u.keygen_req.flags);
		break;
	case JIG_CMD_KEYGEN | JIG_RESPONSE:
		st_wr_lv16(wr, m->u.pubkey.data, m->u.pubkey.len);
		break;
	case JIG_CMD_GET_CSR:
		st_wr_u8(wr, m->u.csr_req.slot);
		st_wr_lv16(wr, m->u.csr_req.nonce, JIG_NONCE_LEN);
		break;
	case JIG_CMD_GET_CSR | JIG_RESPONSE:
		if (v12) {
			st_wr_lv16(wr, m->u.csr.csr_signature.data, m->u.csr.csr_signature.len);
			st_wr_lv16(wr, m->u.csr.signature.data, m->u.csr.signature.len);
			break;
		}
		st_wr_lv16(wr, m->u.csr.csr.data, m->u.csr.csr.len);
		st_wr_lv16(wr, m->u.csr.attestation.data, m->u.csr.attestation.len);
		st_wr_lv16(wr, m->u.csr.signature.data, m->u.csr.signature.len);
		break;
	case JIG_CMD_INSTALL_CERT:
		st_wr_u8(wr, m->u.install_req.slot);
		if (v12) {
			st_wr_lv16(wr, m->u.install_req.template_sha256, JIG_SHA256_LEN);
			st_wr_lv16(wr, m->u.install_req.delta.data, m->u.install_req.delta.len);
			break;
		}
		st_wr_lv16(wr, m->u.install_req.cert.data, m->u.install_req.cert.len);
		break;
	case JIG_CMD_READ_CERT:
		st_wr_u8(wr, m->u.slot_req.slot);
		if (v11)
			st_wr_u8(wr, m->u.slot_req.form);
		break;
	case JIG_CMD_RETIRE:
		st_wr_u8(wr, m->u.slot_req.slot);
		break;
	case JIG_CMD_READ_CERT | JIG_RESPONSE:
	case JIG_CMD_CERT_TEMPLATE:
		st_wr_lv16(wr, m->u.cert.data, m->u.cert.len);
		break;
	case JIG_CMD_LOCK:
		if (v11) {
			st_wr_u8(wr, m->u.lock_req.slot);
			st_wr_lv16(wr, m->u.lock_req.nonce, JIG_NONCE_LEN);
		}
		break;
	case JIG_CMD_LOCK | JIG_RESPONSE:
		st_wr_u8(wr, m->u.lock.lifecycle);
		if (v11)
			st_wr_lv16(wr, m->u.lock.signature.data, m->u.lock.signature.len);
		break;
	case JIG_CMD_VENDOR_CHAIN | JIG_RESPONSE:
		st_wr_u8(wr, (uint8_t)m->u.chain.n);
		for (i = 0; i < m->u.chain.n; i++)
			st_wr_lv16(wr, m->u.chain.certs[i].data, m->u.chain.certs[i].len);
		if (v12)
			st_wr_lv16(wr, m->u.chain.tmpl.data, m->u.chain.tmpl.len);
		break;
	case JIG_CMD_SET_BAUD:
		st_wr_u32(wr, m->u.baud_req.baud);
		st_wr_u16(wr, m->u.baud_req.confirm_ms);
		break;
	case JIG_CMD_REWORK_CHALLENGE:
		st_wr_u8(wr, m->u.rework_req.slot);
		st_wr_lv16(wr, m->u.rework_req.challenge, JIG_NONCE_LEN);
		break;
	case JIG_T_ERROR:
		st_wr_u8(wr, m->u.error.command);
		st_wr_u16(wr, m->u.error.code);
		wr_str(wr, m->u.error.message);
		break;
	default: /* the TPM commands' (section 11), and the empty payloads */
		jig_tpm_encode_fields(wr, m);
		break;
	}
}

int
jig_msg_encode(const jig_msg *m, uint8_t *payload, size_t cap, size_t *len, st_err *err)
{
	return jig_msg_encode_v(m->version, m, payload, cap, len, err);
}

int
jig_msg_encode_v(uint8_t version, const jig_msg *m0, uint8_t *payload, size_t cap, size_t *len, st_err *err)
{
	/* The fields are read through a view with the version set: the caller's
	 * message is not touched. */
	static _Thread_local jig_msg view;
	const jig_msg *m = m0;
	char what[48];
	st_wr wr;

	if (version == 0)
		version = JIG_VERSION_1_0;
	if (m0->version != version) {
		memcpy(&view, m0, sizeof(view));
		view.version = version;
		m = &view;
	}

	*len = 0;
	if (!jig_type_known(m->type))
		return st_err_set(err, ST_E_INTERNAL, "cannot encode unknown frame type 0x%02x", m->type);
	if (m->type != JIG_T_ERROR && !jig_cmd_in_version(m->type & (uint8_t)~JIG_RESPONSE, m->version ? m->version : 1))
		return st_err_set(err, ST_E_INTERNAL, "cannot encode %s in protocol %s", jig_cmd_name(m->type & 0x7f),
		    jig_version_name(m->version ? m->version : 1));
	type_desc(m->type, what, sizeof(what));
	if (msg_check(m, err) < 0)
		return st_err_prefix(err, "encoding %s", what);
	st_wr_init(&wr, payload, cap);
	encode_fields(&wr, m);
	if (wr.bad)
		return st_err_set(err, ST_E_INTERNAL, "encoding %s: does not fit in %zu bytes", what, cap);
	*len = wr.len;
	return 0;
}
