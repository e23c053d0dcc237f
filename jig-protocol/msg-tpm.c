/* The TPM 2.0 device commands' codec (PROTOCOL.md section 11): the same
 * rules as msg.c's (every length checked, exact consumption, one check
 * shared by encoder and decoder).  The TPM structures inside the blobs are
 * the station's to unmarshal (station/tpm-verify.c), not the codec's. */
#include <string.h>

#include "msg-int.h"

static const char *const tpm_names[] = {
	[JIG_CMD_TPM_INFO - JIG_CMD_TPM_FIRST] = "TPM_INFO",
	[JIG_CMD_TPM_KEYGEN - JIG_CMD_TPM_FIRST] = "TPM_KEYGEN",
	[JIG_CMD_TPM_ACTIVATE - JIG_CMD_TPM_FIRST] = "TPM_ACTIVATE",
	[JIG_CMD_TPM_CERTIFY - JIG_CMD_TPM_FIRST] = "TPM_CERTIFY",
	[JIG_CMD_TPM_NV_WRITE - JIG_CMD_TPM_FIRST] = "TPM_NV_WRITE",
	[JIG_CMD_TPM_NV_READ - JIG_CMD_TPM_FIRST] = "TPM_NV_READ",
	[JIG_CMD_TPM_LOCK - JIG_CMD_TPM_FIRST] = "TPM_LOCK",
	[JIG_CMD_TPM_REWORK_SIGN - JIG_CMD_TPM_FIRST] = "TPM_REWORK_SIGN",
	[JIG_CMD_TPM_RETIRE - JIG_CMD_TPM_FIRST] = "TPM_RETIRE",
};

const char *
jig_tpm_cmd_name(uint8_t cmd)
{
	return tpm_names[cmd - JIG_CMD_TPM_FIRST];
}

static int
check_which(uint8_t which, st_err *err)
{
	if (which != JIG_TPM_NV_IAK && which != JIG_TPM_NV_IDEVID)
		return st_err_set(err, ST_E_PROTO, "index: %u is not 1 (IAK certificate) or 2 (IDevID certificate)", which);
	return 0;
}

int
jig_tpm_msg_check(const jig_msg *m, st_err *err)
{
	const jig_tpm_info *ti = &m->u.tpm_info;
	size_t i;

	switch (m->type) {
	case JIG_CMD_TPM_INFO | JIG_RESPONSE:
		if (check_str(ti->vendor, JIG_STR_MAX, STR_TEXT, "vendor", err) < 0 ||
		    check_max(ti->ek_public.len, JIG_BLOB_MAX, "EK public", err) < 0 ||
		    check_max(ti->n_ekcerts, JIG_TPM_MAX_EKCERTS, "EK certificates", err) < 0)
			return -1;
		if (ti->ek_public.len == 0)
			return st_err_set(err, ST_E_PROTO, "EK public: empty");
		for (i = 0; i < ti->n_ekcerts; i++)
			if (check_max(ti->ek_certs[i].len, JIG_BLOB_MAX, "EK certificate", err) < 0)
				return -1;
		return 0;
	case JIG_CMD_TPM_KEYGEN:
		if (m->u.tpm_keygen_req.flags & ~JIG_KEYGEN_KEEP)
			return st_err_set(err, ST_E_PROTO, "flags: unknown bits 0x%02x", m->u.tpm_keygen_req.flags);
		return 0;
	case JIG_CMD_TPM_KEYGEN | JIG_RESPONSE:
		if (check_max(m->u.tpm_keys.iak.len, JIG_BLOB_MAX, "IAK public", err) < 0 ||
		    check_max(m->u.tpm_keys.idevid.len, JIG_BLOB_MAX, "IDevID public", err) < 0)
			return -1;
		return 0;
	case JIG_CMD_TPM_ACTIVATE:
		if (check_max(m->u.tpm_activate_req.credential.len, JIG_BLOB_MAX, "credential", err) < 0 ||
		    check_max(m->u.tpm_activate_req.secret.len, JIG_BLOB_MAX, "secret", err) < 0)
			return -1;
		return 0;
	case JIG_CMD_TPM_ACTIVATE | JIG_RESPONSE:
		return check_max(m->u.tpm_secret.len, JIG_BLOB_MAX, "certInfo", err);
	case JIG_CMD_TPM_CERTIFY | JIG_RESPONSE:
		if (check_max(m->u.tpm_certify.attest.len, JIG_BLOB_MAX, "attest", err) < 0 ||
		    check_max(m->u.tpm_certify.signature.len, JIG_BLOB_MAX, "signature", err) < 0 ||
		    check_max(m->u.tpm_certify.csr.len, JIG_BLOB_MAX, "csr", err) < 0)
			return -1;
		return 0;
	case JIG_CMD_TPM_NV_WRITE:
		if (check_which(m->u.tpm_nv_write_req.which, err) < 0 ||
		    check_max(m->u.tpm_nv_write_req.data.len, JIG_BLOB_MAX, "data", err) < 0)
			return -1;
		if (m->u.tpm_nv_write_req.data.len == 0)
			return st_err_set(err, ST_E_PROTO, "data: empty");
		return 0;
	case JIG_CMD_TPM_NV_READ:
		return check_which(m->u.tpm_nv_req.which, err);
	case JIG_CMD_TPM_NV_READ | JIG_RESPONSE:
		return check_max(m->u.tpm_nv.data.len, JIG_BLOB_MAX, "data", err);
	case JIG_CMD_TPM_REWORK_SIGN | JIG_RESPONSE:
		if (check_max(m->u.tpm_signature.len, JIG_BLOB_MAX, "signature", err) < 0)
			return -1;
		if (m->u.tpm_signature.len == 0)
			return st_err_set(err, ST_E_PROTO, "signature: empty");
		return 0;
	default:
		return 0;
	}
}

int
jig_tpm_decode_fields(st_rd *rd, jig_msg *m, st_err *err)
{
	jig_tpm_info *ti = &m->u.tpm_info;
	uint8_t n;
	size_t i;

	switch (m->type) {
	case JIG_CMD_TPM_INFO:
	case JIG_CMD_TPM_NV_WRITE | JIG_RESPONSE:
	case JIG_CMD_TPM_LOCK:
	case JIG_CMD_TPM_RETIRE:
		return 0;
	case JIG_CMD_TPM_INFO | JIG_RESPONSE:
		if (rd_u32(rd, &ti->manufacturer, "manufacturer", err) < 0 ||
		    rd_str(rd, ti->vendor, JIG_STR_MAX, "vendor", err) < 0 || rd_u32(rd, &ti->fw1, "firmware 1", err) < 0 ||
		    rd_u32(rd, &ti->fw2, "firmware 2", err) < 0 ||
		    rd_u32(rd, &ti->nv_attrs[0], "IAK certificate index attributes", err) < 0 ||
		    rd_u32(rd, &ti->nv_attrs[1], "IDevID certificate index attributes", err) < 0 ||
		    rd_blob(rd, &ti->ek_public, "EK public", err) < 0 || rd_u8(rd, &n, "EK certificate count", err) < 0)
			return -1;
		if (n > JIG_TPM_MAX_EKCERTS)
			return st_err_set(err, ST_E_PROTO, "EK certificate count: %u, at most %d", n, JIG_TPM_MAX_EKCERTS);
		ti->n_ekcerts = n;
		for (i = 0; i < n; i++)
			if (rd_blob(rd, &ti->ek_certs[i], "EK certificate", err) < 0)
				return -1;
		return 0;
	case JIG_CMD_TPM_KEYGEN:
		return rd_u8(rd, &m->u.tpm_keygen_req.flags, "flags", err);
	case JIG_CMD_TPM_KEYGEN | JIG_RESPONSE:
		return (rd_blob(rd, &m->u.tpm_keys.iak, "IAK public", err) < 0 ||
		    rd_blob(rd, &m->u.tpm_keys.idevid, "IDevID public", err) < 0) ? -1 : 0;
	case JIG_CMD_TPM_ACTIVATE:
		return (rd_blob(rd, &m->u.tpm_activate_req.credential, "credential", err) < 0 ||
		    rd_blob(rd, &m->u.tpm_activate_req.secret, "secret", err) < 0) ? -1 : 0;
	case JIG_CMD_TPM_ACTIVATE | JIG_RESPONSE:
		return rd_blob(rd, &m->u.tpm_secret, "certInfo", err);
	case JIG_CMD_TPM_CERTIFY:
		return rd_nonce(rd, m->u.tpm_certify_req.nonce, "nonce", err);
	case JIG_CMD_TPM_CERTIFY | JIG_RESPONSE:
		return (rd_blob(rd, &m->u.tpm_certify.attest, "attest", err) < 0 ||
		    rd_blob(rd, &m->u.tpm_certify.signature, "signature", err) < 0 ||
		    rd_blob(rd, &m->u.tpm_certify.csr, "csr", err) < 0) ? -1 : 0;
	case JIG_CMD_TPM_NV_WRITE:
		return (rd_u8(rd, &m->u.tpm_nv_write_req.which, "index", err) < 0 ||
		    rd_blob(rd, &m->u.tpm_nv_write_req.data, "data", err) < 0) ? -1 : 0;
	case JIG_CMD_TPM_NV_READ:
		return rd_u8(rd, &m->u.tpm_nv_req.which, "index", err);
	case JIG_CMD_TPM_NV_READ | JIG_RESPONSE:
		return (rd_u32(rd, &m->u.tpm_nv.attrs, "attributes", err) < 0 ||
		    rd_blob(rd, &m->u.tpm_nv.data, "data", err) < 0) ? -1 : 0;
	case JIG_CMD_TPM_LOCK | JIG_RESPONSE:
	case JIG_CMD_TPM_RETIRE | JIG_RESPONSE:
		return (rd_u32(rd, &m->u.tpm_lock.attrs[0], "IAK certificate index attributes", err) < 0 ||
		    rd_u32(rd, &m->u.tpm_lock.attrs[1], "IDevID certificate index attributes", err) < 0) ? -1 : 0;
	case JIG_CMD_TPM_REWORK_SIGN:
		return rd_nonce(rd, m->u.tpm_rework_req.challenge, "challenge", err);
	case JIG_CMD_TPM_REWORK_SIGN | JIG_RESPONSE:
		return rd_blob(rd, &m->u.tpm_signature, "signature", err);
	default:
		return st_err_set(err, ST_E_NOTFOUND, "unknown frame type 0x%02x", m->type);
	}
}

static void
wr_blob(st_wr *wr, const jig_blob *b)
{
	st_wr_lv16(wr, b->data, b->len);
}

void
jig_tpm_encode_fields(st_wr *wr, const jig_msg *m)
{
	const jig_tpm_info *ti = &m->u.tpm_info;
	size_t i;

	switch (m->type) {
	case JIG_CMD_TPM_INFO | JIG_RESPONSE:
		st_wr_u32(wr, ti->manufacturer);
		wr_str(wr, ti->vendor);
		st_wr_u32(wr, ti->fw1);
		st_wr_u32(wr, ti->fw2);
		st_wr_u32(wr, ti->nv_attrs[0]);
		st_wr_u32(wr, ti->nv_attrs[1]);
		wr_blob(wr, &ti->ek_public);
		st_wr_u8(wr, (uint8_t)ti->n_ekcerts);
		for (i = 0; i < ti->n_ekcerts; i++)
			wr_blob(wr, &ti->ek_certs[i]);
		break;
	case JIG_CMD_TPM_KEYGEN:
		st_wr_u8(wr, m->u.tpm_keygen_req.flags);
		break;
	case JIG_CMD_TPM_KEYGEN | JIG_RESPONSE:
		wr_blob(wr, &m->u.tpm_keys.iak);
		wr_blob(wr, &m->u.tpm_keys.idevid);
		break;
	case JIG_CMD_TPM_ACTIVATE:
		wr_blob(wr, &m->u.tpm_activate_req.credential);
		wr_blob(wr, &m->u.tpm_activate_req.secret);
		break;
	case JIG_CMD_TPM_ACTIVATE | JIG_RESPONSE:
		wr_blob(wr, &m->u.tpm_secret);
		break;
	case JIG_CMD_TPM_CERTIFY:
		st_wr_lv16(wr, m->u.tpm_certify_req.nonce, JIG_NONCE_LEN);
		break;
	case JIG_CMD_TPM_CERTIFY | JIG_RESPONSE:
		wr_blob(wr, &m->u.tpm_certify.attest);
		wr_blob(wr, &m->u.tpm_certify.signature);
		wr_blob(wr, &m->u.tpm_certify.csr);
		break;
	case JIG_CMD_TPM_NV_WRITE:
		st_wr_u8(wr, m->u.tpm_nv_write_req.which);
		wr_blob(wr, &m->u.tpm_nv_write_req.data);
		break;
	case JIG_CMD_TPM_NV_READ:
		st_wr_u8(wr, m->u.tpm_nv_req.which);
		break;
	case JIG_CMD_TPM_NV_READ | JIG_RESPONSE:
		st_wr_u32(wr, m->u.tpm_nv.attrs);
		wr_blob(wr, &m->u.tpm_nv.data);
		break;
	case JIG_CMD_TPM_LOCK | JIG_RESPONSE:
	case JIG_CMD_TPM_RETIRE | JIG_RESPONSE:
		st_wr_u32(wr, m->u.tpm_lock.attrs[0]);
		st_wr_u32(wr, m->u.tpm_lock.attrs[1]);
		break;
	case JIG_CMD_TPM_REWORK_SIGN:
		st_wr_lv16(wr, m->u.tpm_rework_req.challenge, JIG_NONCE_LEN);
		break;
	case JIG_CMD_TPM_REWORK_SIGN | JIG_RESPONSE:
		wr_blob(wr, &m->u.tpm_signature);
		break;
	default: /* empty payloads */
		break;
	}
}
