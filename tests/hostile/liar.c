#include <errno.h>
#include <signal.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>

#include <check.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "st.h"

#include "liar.h"

static void
add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, v3, nid, value);

	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(X509_add_ext(x, e, -1), 1);
	X509_EXTENSION_free(e);
}

/* A certificatePolicies extension of the comma-separated OIDs in list. */
static void
add_policies(X509 *x, const char *list)
{
	CERTIFICATEPOLICIES *pols = sk_POLICYINFO_new_null();
	char buf[256], *save = NULL, *oid;

	ck_assert_ptr_nonnull(pols);
	snprintf(buf, sizeof(buf), "%s", list);
	for (oid = strtok_r(buf, ",", &save); oid; oid = strtok_r(NULL, ",", &save)) {
		POLICYINFO *pi = POLICYINFO_new();

		ck_assert_ptr_nonnull(pi);
		ck_assert_ptr_nonnull(pi->policyid = OBJ_txt2obj(oid, 1));
		ck_assert_int_gt(sk_POLICYINFO_push(pols, pi), 0);
	}
	ck_assert_int_eq(X509_add1_ext_i2d(x, NID_certificate_policies, pols, 0, X509V3_ADD_DEFAULT), 1);
	sk_POLICYINFO_pop_free(pols, POLICYINFO_free);
}

/* The compromised attestation key's certificate: a genuine vendor
 * certificate naming serial. */
static void
certify(liar *l, const char *serial)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	uint8_t rnd[8], *p = l->acert;
	BIGNUM *bn = NULL;
	X509V3_CTX v3;
	char cn[JIG_STR_MAX + 16];
	int len;

	ck_assert_ptr_nonnull(x);
	ck_assert_ptr_nonnull(n);
	ck_assert_int_eq(RAND_bytes(rnd, sizeof(rnd)), 1);
	rnd[0] &= 0x7f;
	ck_assert_ptr_nonnull(bn = BN_bin2bn(rnd, sizeof(rnd), NULL));
	ck_assert_ptr_nonnull(BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)));
	BN_free(bn);
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *)"Test SE Vendor", -1, -1, 0);
	snprintf(cn, sizeof(cn), "%s attestation", l->lies.attest_cert_model ? l->lies.attest_cert_model : "TSE-100");
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
	/* the bytes as they are (a UTF8String), whatever they hold */
	ck_assert_int_eq(X509_NAME_add_entry_by_txt(n, "serialNumber", V_ASN1_UTF8STRING, (const unsigned char *)serial, -1,
	                     -1, 0),
	    1);
	ck_assert_int_eq(X509_set_version(x, X509_VERSION_3), 1);
	ck_assert_int_eq(X509_set_subject_name(x, n), 1);
	ck_assert_int_eq(X509_set_issuer_name(x, X509_get_subject_name(l->vendor_cert)), 1);
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notBefore(x), -86400));
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365));
	ck_assert_int_eq(X509_set_pubkey(x, l->akey), 1);
	X509V3_set_ctx(&v3, l->vendor_cert, x, NULL, NULL, 0);
	add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE");
	add_ext(x, &v3, NID_key_usage, "critical,digitalSignature");
	add_ext(x, &v3, NID_subject_key_identifier, "hash");
	add_ext(x, &v3, NID_authority_key_identifier, "keyid:always");
	if (l->lies.attest_cert_policy)
		add_policies(x, l->lies.attest_cert_policy);
	ck_assert_int_gt(X509_sign(x, l->vendor_key, EVP_sha256()), 0);
	len = i2d_X509(x, NULL);
	ck_assert_int_gt(len, 0);
	ck_assert_int_le(len, (int)sizeof(l->acert));
	ck_assert_int_eq(i2d_X509(x, &p), len);
	l->acert_len = (size_t)len;
	snprintf(l->acert_serial, sizeof(l->acert_serial), "%s", serial);
	X509_NAME_free(n);
	X509_free(x);
}

static void
sign(EVP_PKEY *key, const uint8_t *msg, size_t len, jig_blob *sig)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t n = sizeof(sig->data);

	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_eq(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
	ck_assert_int_eq(EVP_DigestSign(ctx, sig->data, &n, msg, len), 1);
	sig->len = n;
	EVP_MD_CTX_free(ctx);
}

static void
spki(EVP_PKEY *key, jig_blob *out)
{
	unsigned char *p = out->data;
	int n = i2d_PUBKEY(key, NULL);

	ck_assert_int_gt(n, 0);
	ck_assert_int_le(n, (int)sizeof(out->data));
	ck_assert_int_eq(i2d_PUBKEY(key, &p), n);
	out->len = (size_t)n;
}

static void
make_csr(EVP_PKEY *key, const char *serial, int sha1, jig_blob *out)
{
	X509_REQ *req = X509_REQ_new();
	unsigned char *p = out->data;
	int n;

	ck_assert_ptr_nonnull(req);
	ck_assert_int_eq(X509_REQ_set_version(req, X509_REQ_VERSION_1), 1);
	X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8, (const unsigned char *)serial,
	    -1, -1, 0);
	ck_assert_int_eq(X509_REQ_set_pubkey(req, key), 1);
	ck_assert_int_gt(X509_REQ_sign(req, key, sha1 ? EVP_sha1() : EVP_sha256()), 0);
	n = i2d_X509_REQ(req, NULL);
	ck_assert_int_gt(n, 0);
	ck_assert_int_le(n, (int)sizeof(out->data));
	ck_assert_int_eq(i2d_X509_REQ(req, &p), n);
	out->len = (size_t)n;
	X509_REQ_free(req);
}

/* A P-256 key whose encoding carries the curve's parameters, not its name. */
static EVP_PKEY *
explicit_p256(void)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	OSSL_PARAM params[3];
	EVP_PKEY *key = NULL;

	ck_assert_ptr_nonnull(ctx);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"P-256", 0);
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, (char *)OSSL_PKEY_EC_ENCODING_EXPLICIT, 0);
	params[2] = OSSL_PARAM_construct_end();
	ck_assert_int_eq(EVP_PKEY_keygen_init(ctx), 1);
	ck_assert_int_eq(EVP_PKEY_CTX_set_params(ctx, params), 1);
	ck_assert_int_eq(EVP_PKEY_generate(ctx, &key), 1);
	EVP_PKEY_CTX_free(ctx);
	return key;
}

/* own_keys: the liar answers these itself, jigsim never sees them. */
static int
answer_slot(liar *l, const jig_msg *req, jig_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->type = req->type | JIG_RESPONSE;
	if (req->type == JIG_CMD_INSTALL_CERT) {
		memcpy(l->leaf_cert, req->u.install_req.cert.data, req->u.install_req.cert.len);
		l->leaf_cert_len = req->u.install_req.cert.len;
		return 1;
	}
	if (req->type == JIG_CMD_READ_CERT) {
		m->u.cert.len = l->leaf_cert_len;
		memcpy(m->u.cert.data, l->leaf_cert, l->leaf_cert_len);
		if (req->version >= JIG_VERSION_1_1 && req->u.slot_req.form == JIG_CERT_SHA256 && l->leaf_cert_len) {
			st_sha256(l->leaf_cert, l->leaf_cert_len, m->u.cert.data);
			m->u.cert.len = 32;
		}
		return 1;
	}
	return 0;
}

/* Rewrite one answer of jigsim to the request req. */
static void
lie(liar *l, const jig_msg *req, jig_msg *m)
{
	uint8_t req_type = req->type;

	if (m->type == JIG_T_ERROR)
		return;
	if (req_type == JIG_CMD_INSTALL_CERT) {
		memcpy(l->installed, req->u.install_req.cert.data, req->u.install_req.cert.len);
		l->installed_len = req->u.install_req.cert.len;
	}
	if (req_type == JIG_CMD_LOCK && req->version >= JIG_VERSION_1_1 && !l->lies.relay) {
		/* The receipt by the liar's attestation key, which the station
		 * verifies with the certificate the liar sent. */
		jig_lock_receipt r;
		uint8_t bytes[JIG_LOCK_RECEIPT_MAX];
		size_t len = 0;
		st_err err;

		memset(&r, 0, sizeof(r));
		memcpy(r.nonce, req->u.lock_req.nonce, JIG_NONCE_LEN);
		snprintf(r.serial, sizeof(r.serial), "%s", l->told.serial);
		r.lifecycle = m->u.lock.lifecycle;
		r.slot = req->u.lock_req.slot;
		if (l->lies.own_keys)
			st_sha256(l->leaf_cert, l->leaf_cert_len, r.cert_sha256);
		else
			st_sha256(l->installed, l->installed_len, r.cert_sha256);
		ck_assert(jig_lock_receipt_encode(&r, bytes, sizeof(bytes), &len, &err) == 0);
		sign(l->akey, bytes, len, &m->u.lock.signature);
	}
	if (req_type == JIG_CMD_RETIRE) {
		l->retired = 1;
		l->new_key = !l->lies.reuse_key;
		l->leaf_cert_len = 0;
	}
	if (l->lies.own_keys && req_type == JIG_CMD_KEYGEN) {
		if (l->lies.shared_key) {
			EVP_PKEY_free(l->leaf);
			ck_assert_int_eq(EVP_PKEY_up_ref(l->lies.shared_key), 1);
			l->leaf = l->lies.shared_key;
		} else if (!l->leaf || l->new_key) {
			EVP_PKEY_free(l->leaf);
			l->leaf = l->lies.explicit_key ? explicit_p256() : EVP_EC_gen("P-256");
			ck_assert_ptr_nonnull(l->leaf);
		}
		l->new_key = 0;
		spki(l->leaf, &m->u.pubkey);
	}
	if (l->lies.own_keys && req_type == JIG_CMD_REWORK_CHALLENGE) {
		uint8_t msg[JIG_CHALLENGE_MSG_MAX];
		size_t len = 0;
		st_err err;

		ck_assert_ptr_nonnull(l->leaf);
		ck_assert(jig_challenge_message(JIG_TAG_REWORK, l->told.serial, req->u.rework_req.challenge, msg,
		              sizeof(msg), &len, &err) == 0);
		sign(l->leaf, msg, len, &m->u.signature);
	}
	if (req_type == JIG_CMD_SE_INFO && l->lies.relay) {
		l->told = m->u.se_info;
		if (l->lies.raw_serial) { /* the placeholder patch() overwrites */
			memset(m->u.se_info.serial, 0, sizeof(m->u.se_info.serial));
			memset(m->u.se_info.serial, 'Z', strlen(l->lies.raw_serial));
		}
		return;
	}
	if (req_type == JIG_CMD_GET_CSR && l->lies.relay)
		return;
	if (req_type == JIG_CMD_SE_INFO) {
		jig_se_info *i = &m->u.se_info;

		if (l->lies.attest_cert_serial) {
			if (strcmp(l->acert_serial, l->lies.attest_cert_serial) != 0)
				certify(l, l->lies.attest_cert_serial);
		} else if (strcmp(l->acert_serial, i->serial) != 0) {
			certify(l, i->serial);
		}
		i->certs[0].len = l->acert_len;
		memcpy(i->certs[0].data, l->acert, l->acert_len);
		if (l->lies.raw_serial) {
			memset(i->serial, 0, sizeof(i->serial));
			memset(i->serial, 'Z', strlen(l->lies.raw_serial));
		}
		if (!l->retired && l->lies.firmware_before)
			i->firmware = l->lies.firmware_before;
		if (l->retired) {
			if (l->lies.serial_after)
				snprintf(i->serial, sizeof(i->serial), "%s", l->lies.serial_after);
			if (l->lies.model_after)
				snprintf(i->model, sizeof(i->model), "%s", l->lies.model_after);
			if (l->lies.firmware_after)
				i->firmware = l->lies.firmware_after;
			if (l->lies.junk_chain_after) {
				memset(i->certs[0].data, 0x42, 40);
				i->certs[0].len = 40;
			}
			if (l->lies.serial_after || l->lies.model_after || l->lies.firmware_after ||
			    l->lies.junk_chain_after)
				l->lies_told++;
		}
		l->told = *i;
	}
	if (req_type == JIG_CMD_GET_CSR) {
		jig_attest a;
		st_err err;

		ck_assert_msg(jig_attest_decode(m->u.csr.attestation.data, m->u.csr.attestation.len, &a, &err) == 0,
		    "liar: jigsim's attestation: %s", err.msg);
		snprintf(a.serial, sizeof(a.serial), "%s", l->told.serial);
		snprintf(a.model, sizeof(a.model), "%s", l->told.model);
		a.firmware = l->told.firmware;
		a.lifecycle = l->told.lifecycle;
		if (l->lies.own_keys) {
			jig_blob pub;

			make_csr(l->leaf, l->told.serial, l->lies.csr_sha1, &m->u.csr.csr);
			spki(l->leaf, &pub);
			st_sha256(m->u.csr.csr.data, m->u.csr.csr.len, a.csr_sha256);
			st_sha256(pub.data, pub.len, a.pubkey_sha256);
		}
		ck_assert(jig_attest_encode(&a, m->u.csr.attestation.data, sizeof(m->u.csr.attestation.data),
		              &m->u.csr.attestation.len, &err) == 0);
		sign(l->akey, m->u.csr.attestation.data, m->u.csr.attestation.len, &m->u.csr.signature);
	}
}

int
liar_send_bytes(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Replace the placeholder of a raw string (as many 'Z' as it has bytes) by
 * the raw bytes. */
static void
patch_at(jig_frame *fr, size_t off, const char *raw)
{
	size_t n = strlen(raw);

	ck_assert_uint_le(off + 2 + n, fr->len);
	ck_assert_uint_eq((size_t)(fr->payload[off] << 8 | fr->payload[off + 1]), n);
	memcpy(fr->payload + off + 2, raw, n);
}

static void
patch(liar *l, jig_frame *fr)
{
	if (l->lies.raw_serial && fr->type == (JIG_CMD_SE_INFO | JIG_RESPONSE))
		patch_at(fr, 0, l->lies.raw_serial); /* str16 serial comes first */
	if (l->lies.raw_error && fr->type == JIG_T_ERROR)
		patch_at(fr, 3, l->lies.raw_error); /* u8 command, u16 code, str16 message */
}

int
liar_send(liar *l, int fd, const jig_frame *req, jig_msg *m)
{
	static _Thread_local jig_frame fr;
	static _Thread_local uint8_t out[JIG_MAX_FRAME];
	size_t len = 0, n = 0;
	st_err err;

	(void)l;
	m->version = req->version;
	ck_assert_msg(jig_msg_encode(m, fr.payload, sizeof(fr.payload), &len, &err) == 0, "liar: %s", err.msg);
	fr.version = req->version;
	fr.type = m->type;
	fr.seq = req->seq;
	fr.len = (uint16_t)len;
	ck_assert(jig_frame_encode(&fr, out, sizeof(out), &n, &err) == 0);
	return liar_send_bytes(fd, out, n);
}

int
liar_forward(liar *l, const jig_frame *req, jig_msg *m)
{
	static _Thread_local uint8_t raw[JIG_MAX_FRAME], resp[JIG_MAX_FRAME];
	static _Thread_local jig_frame fr;
	size_t rl = 0, n = 0, used = 0;
	st_err err;

	ck_assert(jig_frame_encode(req, raw, sizeof(raw), &rl, &err) == 0);
	if (jigsim_handle(l->sim, raw, rl, resp, sizeof(resp), &n, &err) != JIGSIM_REPLY || !n)
		return -1;
	ck_assert(jig_frame_decode(resp, n, &fr, &used, &err) == JIG_DECODE_OK);
	ck_assert_msg(jig_msg_decode_v(fr.version, fr.type, fr.payload, fr.len, m, &err) == 0, "liar: %s", err.msg);
	return 0;
}

/* One request frame: jigsim executes it, the liar rewrites the answer. */
static int
handle(liar *l, int fd, const jig_frame *req)
{
	static _Thread_local uint8_t raw[JIG_MAX_FRAME], resp[JIG_MAX_FRAME];
	static _Thread_local jig_frame fr;
	static _Thread_local jig_msg q, m;
	static _Thread_local jig_frame capped;
	size_t rl = 0, n = 0, used = 0, len = 0;
	st_err err;
	int act;

	/* The liar plays jig firmware of protocol 1.1: its lies are written
	 * against 1.1's payloads (a 1.2 station still gets 1.1 from it, as from
	 * any older jig).  1.2's own lies are jigsim faults. */
	if (!l->lies.v12 && req->type == JIG_CMD_HELLO && req->len == 2 && req->payload[0] <= JIG_VERSION_1_1 &&
	    req->payload[1] > JIG_VERSION_1_1) {
		capped = *req;
		capped.payload[1] = JIG_VERSION_1_1;
		req = &capped;
	}
	memset(&q, 0, sizeof(q));
	if (jig_msg_decode_v(req->version, req->type, req->payload, req->len, &q, &err) < 0) {
		q.type = req->type;
		q.version = req->version;
	}
	l->requests++;
	if (l->lies.hook && l->lies.hook(l, fd, req, &q))
		return 0; /* the test's own lie answered (or said nothing) */
	if (l->lies.unpowered && (q.type == JIG_CMD_SE_INFO || q.type == JIG_CMD_DUT_STATUS || q.type == JIG_CMD_DUT_POWER)) {
		memset(&m, 0, sizeof(m));
		if (q.type == JIG_CMD_SE_INFO) {
			m.type = JIG_T_ERROR;
			m.u.error.command = q.type;
			m.u.error.code = JIG_E_NO_DUT;
			snprintf(m.u.error.message, sizeof(m.u.error.message), "no device");
		} else {
			m.type = q.type | JIG_RESPONSE;
			m.u.dut.present = 1;
			m.u.dut.powered = 0;
		}
		fr.version = req->version;
		fr.seq = req->seq;
		fr.type = m.type;
		goto encode;
	}
	if (l->lies.raw_error && q.type == JIG_CMD_AUTH_RESPONSE) {
		memset(&m, 0, sizeof(m));
		m.type = JIG_T_ERROR;
		m.u.error.command = q.type;
		m.u.error.code = JIG_E_AUTH_FAILED;
		m.version = req->version;
		memset(m.u.error.message, 'Z', strlen(l->lies.raw_error));
		fr.version = req->version;
		fr.seq = req->seq;
		fr.type = m.type;
		goto encode;
	}
	if (l->lies.own_keys && answer_slot(l, &q, &m)) {
		m.version = req->version;
		fr.version = req->version;
		fr.seq = req->seq;
		fr.type = m.type;
		goto encode;
	}
	ck_assert(jig_frame_encode(req, raw, sizeof(raw), &rl, &err) == 0);
	act = jigsim_handle(l->sim, raw, rl, resp, sizeof(resp), &n, &err);
	if (act != JIGSIM_REPLY)
		return -1;
	if (!n)
		return 0;
	ck_assert(jig_frame_decode(resp, n, &fr, &used, &err) == JIG_DECODE_OK);
	if (fr.type == JIG_T_ERROR || !(fr.type & JIG_RESPONSE) || !jig_type_known(fr.type))
		return liar_send_bytes(fd, resp, n);
	ck_assert_msg(jig_msg_decode_v(fr.version, fr.type, fr.payload, fr.len, &m, &err) == 0, "liar: %s", err.msg);
	lie(l, &q, &m);
	if (l->lies.rewrite)
		l->lies.rewrite(l, &q, &m);
encode:
	ck_assert_msg(jig_msg_encode(&m, fr.payload, sizeof(fr.payload), &len, &err) == 0, "liar: %s", err.msg);
	fr.len = (uint16_t)len;
	patch(l, &fr);
	ck_assert(jig_frame_encode(&fr, resp, sizeof(resp), &n, &err) == 0);
	return liar_send_bytes(fd, resp, n);
}

static void
serve(liar *l, int fd)
{
	static _Thread_local jig_stream s;
	static _Thread_local jig_frame req;
	uint8_t buf[4096];

	jig_stream_init(&s);
	jigsim_connection_reset(l->sim);
	while (!l->stop) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t k;

		if (poll(&p, 1, 100) <= 0)
			continue;
		if ((k = read(fd, buf, sizeof(buf))) <= 0)
			return;
		jig_stream_feed(&s, buf, (size_t)k);
		while (jig_stream_next(&s, &req))
			if (handle(l, fd, &req) < 0)
				return;
	}
}

static void *
liar_main(void *arg)
{
	liar *l = arg;

	while (!l->stop) {
		struct pollfd p = { .fd = l->lfd, .events = POLLIN };
		int fd;

		if (poll(&p, 1, 100) <= 0)
			continue;
		if ((fd = accept(l->lfd, NULL, NULL)) < 0)
			continue;
		l->connections++;
		serve(l, fd);
		close(fd);
	}
	return NULL;
}

liar *
liar_start(const char *pki, jigsim *sim, const liar_lies *lies)
{
	liar *l = calloc(1, sizeof(*l));
	char path[4200];
	st_err err;
	FILE *f;

	ck_assert_ptr_nonnull(l);
	l->sim = sim;
	if (lies)
		l->lies = *lies;
	snprintf(path, sizeof(path), "%s/se-vendor-ca.pem", pki);
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	ck_assert_ptr_nonnull(l->vendor_cert = PEM_read_X509(f, NULL, NULL, NULL));
	fclose(f);
	snprintf(path, sizeof(path), "%s/se-vendor-ca.key", pki);
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	ck_assert_ptr_nonnull(l->vendor_key = PEM_read_PrivateKey(f, NULL, NULL, NULL));
	fclose(f);
	ck_assert_ptr_nonnull(l->akey = EVP_EC_gen("P-256"));
	ck_assert_msg(jig_transport_tcp_listen("tcp:127.0.0.1:0", &l->lfd, l->uri, sizeof(l->uri), &err) == 0, "%s",
	    err.msg);
	ck_assert_int_eq(pthread_create(&l->thread, NULL, liar_main, l), 0);
	return l;
}

void
liar_stop(liar *l)
{
	if (!l)
		return;
	l->stop = 1;
	pthread_join(l->thread, NULL);
	close(l->lfd);
	EVP_PKEY_free(l->akey);
	EVP_PKEY_free(l->leaf);
	EVP_PKEY_free(l->vendor_key);
	X509_free(l->vendor_cert);
	free(l);
}

void
liar_check_clean(const char *s, const char *what, const char *name)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p; p++)
		ck_assert_msg(!((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f || *p == 0xfe || *p == 0xff),
		    "%s: %s has byte 0x%02x at %zu: %s", name, what, *p, (size_t)(p - (const unsigned char *)s),
		    stu_tail(s));
	ck_assert_msg(strncmp(s, "PASS SEFAKE", 11) != 0 && !strstr(s, "\nPASS SEFAKE"), "%s: %s has a forged PASS line",
	    name, what);
}

Suite *
liar_suite(const char *name, const char *tcase, int timeout, TCase **tc)
{
	signal(SIGPIPE, SIG_IGN);
	return tu_pki_suite(name, tcase, timeout, tc);
}

void
liar_test_end(stu_ws *w, stu_run *r, liar *l, stu_sim *honest, stu_sim *sim)
{
	stu_audit_verify(w);
	stu_run_clear(r);
	liar_stop(l);
	stu_sim_stop(honest);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
