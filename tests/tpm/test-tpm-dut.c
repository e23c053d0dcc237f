/* tpmdut against a real (software) TPM (issue 18, layer 2): every TPM
 * command of PROTOCOL.md section 11 through libjig's client, checked with
 * tools that are not ours: openssl for the EK certificate and the CSR,
 * tpm2-tools for the persistent keys and for the credential
 * (tpm2_makecredential -T none, a second implementation of MakeCredential),
 * libtss2-mu for the TPM structures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <tss2/tss2_mu.h>

#include "eckey.h"
#include "jig.h"
#include "testutil.h"
#include "tpmtest.h"

static char *dir;
static tu_tpm_ca ca;
static tu_swtpm tpm;
static pid_t dut;
static jig_client *client;
static jig_msg req, resp;

static void
start(const char *const *extra)
{
	const char *args[16] = { "--tcti", tpm.tcti };
	char uri[300];
	jig_transport *t = NULL;
	size_t i;
	st_err err;

	for (i = 0; extra && extra[i]; i++)
		args[2 + i] = extra[i];
	ck_assert_int_gt(dut = tu_tpmdut_start(dir, uri, sizeof(uri), args, NULL, 0), 0);
	ck_assert_msg(jig_transport_open(uri, &t, &err) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(client = jig_client_new(t));
	ck_assert_msg(jig_client_hello(client, &resp, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(resp.u.hello.capabilities & JIG_CAP_TPM, JIG_CAP_TPM);
}

static void
setup(void)
{
	char state[600], *log = NULL;

	ck_assert_ptr_nonnull(dir = tu_tmpdir("tpmdut"));
	ck_assert_int_eq(tu_tpm_ca_init(&ca, dir), 0);
	snprintf(state, sizeof(state), "%s/tpm", dir);
	if (tu_tpm_manufacture(&ca, state, &log) < 0)
		ck_abort_msg("swtpm_setup: %s", log ? log : "?");
	free(log);
	ck_assert_int_eq(tu_swtpm_start(&tpm, state), 0);
}

static void
teardown(void)
{
	jig_client_free(client);
	client = NULL;
	tu_tpmdut_stop(dut);
	tu_swtpm_stop(&tpm);
	tu_rmtree(dir);
	free(dir);
}

static int
call(uint8_t cmd, st_err *err)
{
	req.type = cmd;
	return jig_client_call(client, &req, &resp, err);
}

static void
call_ok(uint8_t cmd)
{
	st_err err;

	ck_assert_msg(call(cmd, &err) == 0, "%s: %s", jig_cmd_name(cmd), err.msg);
}

/* The DUT lets go of the TPM (swtpm serves one client at a time), so
 * tpm2-tools can look at it independently. */
static void
power(uint8_t action)
{
	req.u.power_req.action = action;
	call_ok(JIG_CMD_DUT_POWER);
}

static void
save(const char *name, const void *p, size_t n, char *path, size_t cap)
{
	FILE *f;

	snprintf(path, cap, "%s/%s", dir, name);
	ck_assert_ptr_nonnull(f = fopen(path, "wb"));
	ck_assert_uint_eq(fwrite(p, 1, n, f), n);
	fclose(f);
}

static void
sh_ok(const char *cmd)
{
	char *out = NULL;

	ck_assert_msg(tu_sh(cmd, &out) == 0, "%s: %s", cmd, out);
	free(out);
}

static void
unmarshal_public(const jig_blob *b, TPM2B_PUBLIC *pub)
{
	size_t off = 0;

	memset(pub, 0, sizeof(*pub)); /* libtss2-mu refuses a TPM2B destination whose size is set */
	ck_assert_int_eq(Tss2_MU_TPM2B_PUBLIC_Unmarshal(b->data, b->len, &off, pub), TSS2_RC_SUCCESS);
	ck_assert_uint_eq(off, b->len);
}

START_TEST(info_reports_the_tpm_and_its_ek_certificate)
{
	char path[700], cmd[4000];
	const unsigned char *p;
	TPM2B_PUBLIC ek;
	X509 *cert;
	EVP_PKEY *k;
	BIGNUM *n = NULL, *m = NULL;

	start(NULL);
	call_ok(JIG_CMD_TPM_INFO);
	ck_assert_uint_eq(resp.u.tpm_info.manufacturer, 0x49424d00); /* "IBM\0": libtpms */
	ck_assert_str_eq(resp.u.tpm_info.vendor, "SW   TPM");
	ck_assert_uint_eq(resp.u.tpm_info.nv_attrs[0], 0);
	ck_assert_uint_eq(resp.u.tpm_info.nv_attrs[1], 0);
	ck_assert_uint_ge(resp.u.tpm_info.n_ekcerts, 1);
	/* The RSA EK certificate chains to the TPM vendor CA ... */
	save("ek.der", resp.u.tpm_info.ek_certs[0].data, resp.u.tpm_info.ek_certs[0].len, path, sizeof(path));
	snprintf(cmd, sizeof(cmd), "openssl x509 -inform DER -in %s -out %s.pem && openssl verify -CAfile %s -untrusted %s %s.pem",
	    path, path, ca.root_pem, ca.issuer_pem, path);
	sh_ok(cmd);
	/* ... and certifies the EK public area the DUT sent. */
	unmarshal_public(&resp.u.tpm_info.ek_public, &ek);
	ck_assert_uint_eq(ek.publicArea.type, TPM2_ALG_RSA);
	p = resp.u.tpm_info.ek_certs[0].data;
	ck_assert_ptr_nonnull(cert = d2i_X509(NULL, &p, (long)resp.u.tpm_info.ek_certs[0].len));
	k = X509_get0_pubkey(cert);
	ck_assert(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n));
	ck_assert_ptr_nonnull(m = BN_bin2bn(ek.publicArea.unique.rsa.buffer, ek.publicArea.unique.rsa.size, NULL));
	ck_assert_int_eq(BN_cmp(n, m), 0);
	BN_free(n);
	BN_free(m);
	X509_free(cert);
	/* An SE command is not a TPM device's. */
	{
		st_err err;

		ck_assert_int_lt(call(JIG_CMD_SE_INFO, &err), 0);
		ck_assert_int_eq(err.remote, JIG_E_UNKNOWN_COMMAND);
		/* The DUT reads requests in the version HELLO negotiated: a 1.1
		 * READ_CERT (slot, form) is well formed, just not a TPM device's
		 * command; read as 1.0 it would have a trailing byte. */
		ck_assert_int_eq(jig_client_version(client), JIG_VERSION_1_1);
		req.u.slot_req.slot = 0;
		req.u.slot_req.form = JIG_CERT_SHA256;
		ck_assert_int_lt(call(JIG_CMD_READ_CERT, &err), 0);
		ck_assert_msg(err.remote == JIG_E_UNKNOWN_COMMAND, "%s", err.msg);
	}
}
END_TEST

START_TEST(keys_are_made_in_the_tpm_activated_and_certified)
{
	char path[700], pubfile[700], namefile[700], secfile[700], cmd[3000];
	uint8_t secret[32], nonce[32], *cred = NULL;
	TPM2B_PUBLIC iak, idevid, ek;
	jig_blob iak_blob, idevid_blob, ek_blob;
	TPM2B_ID_OBJECT id;
	TPM2B_ENCRYPTED_SECRET enc;
	TPM2B_DIGEST got;
	TPMS_ATTEST att;
	size_t len, off;
	char *readback;
	const unsigned char *p;
	X509_REQ *csr;

	start(NULL);
	call_ok(JIG_CMD_TPM_INFO);
	ek_blob = resp.u.tpm_info.ek_public;
	req.u.tpm_keygen_req.flags = 0;
	call_ok(JIG_CMD_TPM_KEYGEN);
	iak_blob = resp.u.tpm_keys.iak;
	idevid_blob = resp.u.tpm_keys.idevid;
	unmarshal_public(&iak_blob, &iak);
	unmarshal_public(&idevid_blob, &idevid);
	ck_assert(iak.publicArea.objectAttributes & TPMA_OBJECT_RESTRICTED);
	ck_assert(!(idevid.publicArea.objectAttributes & TPMA_OBJECT_RESTRICTED));
	ck_assert_uint_eq(idevid.publicArea.objectAttributes & (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
	    TPMA_OBJECT_SENSITIVEDATAORIGIN), TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN);
	unmarshal_public(&ek_blob, &ek);

	/* The persistent keys, read with tpm2-tools, are the ones the DUT sent;
	 * the IAK's name comes from there too, for tpm2_makecredential. */
	power(JIG_POWER_OFF);
	snprintf(pubfile, sizeof(pubfile), "%s/idevid.pub", dir);
	snprintf(namefile, sizeof(namefile), "%s/iak.name", dir);
	snprintf(cmd, sizeof(cmd), "tpm2_readpublic -T '%s' -c 0x81020001 -o %s >/dev/null && "
	    "tpm2_readpublic -T '%s' -c 0x81020000 -n %s >/dev/null", tpm.tcti, pubfile, tpm.tcti, namefile);
	sh_ok(cmd);
	ck_assert_ptr_nonnull(readback = tu_slurp(pubfile, &len));
	ck_assert_uint_eq(len, idevid_blob.len);
	ck_assert_mem_eq(readback, idevid_blob.data, len);
	free(readback);

	/* Credential activation with a credential tpm2-tools made. */
	ck_assert_int_eq(RAND_bytes(secret, sizeof(secret)), 1);
	save("secret", secret, sizeof(secret), secfile, sizeof(secfile));
	save("ek.pub", ek_blob.data, ek_blob.len, path, sizeof(path));
	snprintf(cmd, sizeof(cmd), "tpm2_makecredential -T none -u %s -s %s -n $(od -An -tx1 -v %s | tr -d ' \\n') -o %s/cred 2>&1", path, secfile,
	    namefile, dir);
	sh_ok(cmd);
	snprintf(path, sizeof(path), "%s/cred", dir);
	ck_assert_ptr_nonnull(cred = (uint8_t *)tu_slurp(path, &len));
	off = 8; /* tpm2-tools' header: magic 0xBADCC0DE, version 1 */
	ck_assert_int_eq(Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(cred, len, &off, &id), TSS2_RC_SUCCESS);
	ck_assert_int_eq(Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(cred, len, &off, &enc), TSS2_RC_SUCCESS);
	ck_assert_uint_eq(off, len);
	free(cred);
	power(JIG_POWER_ON);
	off = 0;
	ck_assert_int_eq(Tss2_MU_TPM2B_ID_OBJECT_Marshal(&id, req.u.tpm_activate_req.credential.data, JIG_BLOB_MAX, &off), 0);
	req.u.tpm_activate_req.credential.len = off;
	off = 0;
	ck_assert_int_eq(Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal(&enc, req.u.tpm_activate_req.secret.data, JIG_BLOB_MAX, &off), 0);
	req.u.tpm_activate_req.secret.len = off;
	call_ok(JIG_CMD_TPM_ACTIVATE);
	off = 0;
	ck_assert_int_eq(Tss2_MU_TPM2B_DIGEST_Unmarshal(resp.u.tpm_secret.data, resp.u.tpm_secret.len, &off, &got), 0);
	ck_assert_uint_eq(got.size, sizeof(secret));
	ck_assert_mem_eq(got.buffer, secret, sizeof(secret));

	/* TPM2_Certify with our nonce, and a CSR signed by the IDevID. */
	ck_assert_int_eq(RAND_bytes(nonce, sizeof(nonce)), 1);
	memcpy(req.u.tpm_certify_req.nonce, nonce, sizeof(nonce));
	call_ok(JIG_CMD_TPM_CERTIFY);
	off = 0;
	ck_assert_int_eq(Tss2_MU_TPMS_ATTEST_Unmarshal(resp.u.tpm_certify.attest.data, resp.u.tpm_certify.attest.len, &off,
	    &att), TSS2_RC_SUCCESS);
	ck_assert_uint_eq(off, resp.u.tpm_certify.attest.len);
	ck_assert_uint_eq(att.magic, TPM2_GENERATED_VALUE);
	ck_assert_uint_eq(att.type, TPM2_ST_ATTEST_CERTIFY);
	ck_assert_uint_eq(att.extraData.size, 32);
	ck_assert_mem_eq(att.extraData.buffer, nonce, 32);
	p = resp.u.tpm_certify.csr.data;
	ck_assert_ptr_nonnull(csr = d2i_X509_REQ(NULL, &p, (long)resp.u.tpm_certify.csr.len));
	ck_assert_int_eq(X509_REQ_verify(csr, X509_REQ_get0_pubkey(csr)), 1);
	X509_REQ_free(csr);
}
END_TEST

START_TEST(certificates_are_written_read_back_and_locked)
{
	static const uint8_t cert1[700] = { 0x30, 0x82, 0x02, 0xb8, 1, 2, 3 }, cert2[1500] = { 0x30, 0x82, 0x05, 0xd8, 9 };
	char cmd[1200];
	st_err err;

	start(NULL);
	req.u.tpm_keygen_req.flags = 0;
	call_ok(JIG_CMD_TPM_KEYGEN);
	req.u.tpm_nv_write_req.which = JIG_TPM_NV_IAK;
	memcpy(req.u.tpm_nv_write_req.data.data, cert1, sizeof(cert1));
	req.u.tpm_nv_write_req.data.len = sizeof(cert1);
	call_ok(JIG_CMD_TPM_NV_WRITE);
	/* Larger than one TPM2_NV_Write, written again (resume before the lock). */
	req.u.tpm_nv_write_req.which = JIG_TPM_NV_IDEVID;
	memcpy(req.u.tpm_nv_write_req.data.data, cert1, sizeof(cert1));
	req.u.tpm_nv_write_req.data.len = sizeof(cert1);
	call_ok(JIG_CMD_TPM_NV_WRITE);
	memcpy(req.u.tpm_nv_write_req.data.data, cert2, sizeof(cert2));
	req.u.tpm_nv_write_req.data.len = sizeof(cert2);
	call_ok(JIG_CMD_TPM_NV_WRITE);
	req.u.tpm_nv_req.which = JIG_TPM_NV_IDEVID;
	call_ok(JIG_CMD_TPM_NV_READ);
	ck_assert_uint_eq(resp.u.tpm_nv.data.len, sizeof(cert2));
	ck_assert_mem_eq(resp.u.tpm_nv.data.data, cert2, sizeof(cert2));
	ck_assert(resp.u.tpm_nv.attrs & TPMA_NV_WRITTEN);
	ck_assert(!(resp.u.tpm_nv.attrs & TPMA_NV_WRITELOCKED));
	call_ok(JIG_CMD_TPM_LOCK);
	ck_assert(resp.u.tpm_lock.attrs[0] & TPMA_NV_WRITELOCKED);
	ck_assert(resp.u.tpm_lock.attrs[1] & TPMA_NV_WRITELOCKED);
	ck_assert(resp.u.tpm_lock.attrs[1] & TPMA_NV_WRITEDEFINE);
	/* Locked: no new certificate, no new key. */
	req.u.tpm_nv_write_req.which = JIG_TPM_NV_IDEVID;
	req.u.tpm_nv_write_req.data.len = 10;
	ck_assert_int_lt(call(JIG_CMD_TPM_NV_WRITE, &err), 0);
	ck_assert_msg(err.remote == JIG_E_LOCKED, "%s", err.msg);
	req.u.tpm_keygen_req.flags = 0;
	ck_assert_int_lt(call(JIG_CMD_TPM_KEYGEN, &err), 0);
	ck_assert_msg(err.remote == JIG_E_LOCKED, "%s", err.msg);
	call_ok(JIG_CMD_TPM_INFO);
	ck_assert(resp.u.tpm_info.nv_attrs[0] & TPMA_NV_WRITELOCKED);
	/* The lock holds for tpm2-tools too, and survives a TPM restart. */
	power(JIG_POWER_OFF);
	snprintf(cmd, sizeof(cmd), "%s", tpm.statedir);
	tu_swtpm_stop(&tpm);
	ck_assert_int_eq(tu_swtpm_start(&tpm, cmd), 0);
	snprintf(cmd, sizeof(cmd), "tpm2_nvreadpublic -T '%s' 0x01400101 | grep -q writelocked && "
	    "! echo x | tpm2_nvwrite -T '%s' -C o -i - 0x01400101 2>/dev/null", tpm.tcti, tpm.tcti);
	sh_ok(cmd);
}
END_TEST

/* Rework on the DUT: TPM_RETIRE only after TPM_REWORK_SIGN in this power
 * cycle; the signature is the IDevID's (checked here with OpenSSL) over the
 * tagged message for this TPM's serial; RETIRE deletes both indices and
 * both keys, and TPM_KEYGEN works again. */
START_TEST(rework_signs_with_the_idevid_then_retires)
{
	static const uint8_t cert[600] = { 0x30, 0x82, 0x02, 0x54, 7 };
	uint8_t challenge[JIG_NONCE_LEN], msg[128];
	unsigned char *der = NULL;
	char serial[20];
	TPM2B_PUBLIC idevid;
	TPMT_SIGNATURE sig;
	ECDSA_SIG *es;
	EVP_PKEY *k;
	EVP_MD_CTX *md;
	size_t len, off = 0;
	int dlen;
	st_err err;

	start(NULL);
	req.u.tpm_keygen_req.flags = 0;
	call_ok(JIG_CMD_TPM_KEYGEN);
	unmarshal_public(&resp.u.tpm_keys.idevid, &idevid);
	for (uint8_t which = JIG_TPM_NV_IAK; which <= JIG_TPM_NV_IDEVID; which++) {
		req.u.tpm_nv_write_req.which = which;
		memcpy(req.u.tpm_nv_write_req.data.data, cert, sizeof(cert));
		req.u.tpm_nv_write_req.data.len = sizeof(cert);
		call_ok(JIG_CMD_TPM_NV_WRITE);
	}
	call_ok(JIG_CMD_TPM_LOCK);
	ck_assert_int_lt(call(JIG_CMD_TPM_RETIRE, &err), 0);
	ck_assert_msg(err.remote == JIG_E_BAD_STATE && strstr(err.msg, "before TPM_REWORK_SIGN"), "%s", err.msg);
	call_ok(JIG_CMD_TPM_INFO);
	jig_tpm_serial(resp.u.tpm_info.ek_public.data, resp.u.tpm_info.ek_public.len, serial);
	RAND_bytes(challenge, sizeof(challenge));
	memcpy(req.u.tpm_rework_req.challenge, challenge, sizeof(challenge));
	call_ok(JIG_CMD_TPM_REWORK_SIGN);
	memset(&sig, 0, sizeof(sig));
	ck_assert_int_eq(Tss2_MU_TPMT_SIGNATURE_Unmarshal(resp.u.tpm_signature.data, resp.u.tpm_signature.len, &off, &sig),
	    TSS2_RC_SUCCESS);
	ck_assert_uint_eq(off, resp.u.tpm_signature.len);
	ck_assert_uint_eq(sig.sigAlg, TPM2_ALG_ECDSA);
	ck_assert_ptr_nonnull(es = ECDSA_SIG_new());
	ck_assert(ECDSA_SIG_set0(es, BN_bin2bn(sig.signature.ecdsa.signatureR.buffer, sig.signature.ecdsa.signatureR.size, NULL),
	    BN_bin2bn(sig.signature.ecdsa.signatureS.buffer, sig.signature.ecdsa.signatureS.size, NULL)));
	ck_assert_int_gt(dlen = i2d_ECDSA_SIG(es, &der), 0);
	ck_assert_int_eq(jig_challenge_message(JIG_TAG_TPM_REWORK, serial, challenge, msg, sizeof(msg), &len, &err), 0);
	ck_assert_ptr_nonnull(k = st_ec_public_key(NID_X9_62_prime256v1, idevid.publicArea.unique.ecc.x.buffer,
	    idevid.publicArea.unique.ecc.x.size, idevid.publicArea.unique.ecc.y.buffer, idevid.publicArea.unique.ecc.y.size));
	ck_assert_ptr_nonnull(md = EVP_MD_CTX_new());
	ck_assert_int_eq(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k), 1);
	ck_assert_int_eq(EVP_DigestVerify(md, der, (size_t)dlen, msg, len), 1);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(k);
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	call_ok(JIG_CMD_TPM_RETIRE);
	ck_assert_uint_eq(resp.u.tpm_lock.attrs[0], 0);
	ck_assert_uint_eq(resp.u.tpm_lock.attrs[1], 0);
	call_ok(JIG_CMD_TPM_INFO);
	ck_assert_uint_eq(resp.u.tpm_info.nv_attrs[0] | resp.u.tpm_info.nv_attrs[1], 0);
	/* The keys are gone: nothing to sign with, and RETIRE needs a new proof. */
	ck_assert_int_lt(call(JIG_CMD_TPM_REWORK_SIGN, &err), 0);
	ck_assert_msg(err.remote == JIG_E_SLOT_EMPTY, "%s", err.msg);
	ck_assert_int_lt(call(JIG_CMD_TPM_RETIRE, &err), 0);
	ck_assert_msg(err.remote == JIG_E_BAD_STATE, "%s", err.msg);
	req.u.tpm_keygen_req.flags = 0;
	call_ok(JIG_CMD_TPM_KEYGEN);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("tpmdut");
	TCase *tc = tcase_create("tpmdut");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, info_reports_the_tpm_and_its_ek_certificate);
	tcase_add_test(tc, keys_are_made_in_the_tpm_activated_and_certified);
	tcase_add_test(tc, certificates_are_written_read_back_and_locked);
	tcase_add_test(tc, rework_signs_with_the_idevid_then_retires);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
