/* Protocol 1.1 and 1.2 against a lying jig (issue 17; issue 13, item 10): the
 * vendor chain and the read-back go by digest, LOCK is proven by the SE's
 * lock receipt, and 1.0 jigs keep working where the recipe allows.  A liar
 * gains nothing: a digest that does not match the chain, a known digest
 * with another SE's chain, a wrong read-back digest, a missing, replayed,
 * foreign or misdirected lock receipt, or a downgrade to 1.0 each fail the
 * device before PASS, and an SE that was never locked never passes.  In
 * 1.2 another SE's certificate delta or GET_CSR signatures replayed, or an
 * INSTALL_CERT that never reached the SE, fail it too, and so do the lock
 * receipt, read-back and downgrade lies of 1.1. */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "liar.h"
#include "rwutil.h"

typedef struct lie_state {
	int kind;
	unsigned locks;               /* LOCK requests seen */
	jig_msg first_lock;           /* the genuine answer to the first LOCK */
	uint8_t known_chain[32];      /* the digest of the first device's chain */
	int have_chain;
	unsigned se_infos;
	jig_blob first_delta;         /* 1.2: the first SE's attestation certificate delta */
	jig_msg first_csr;            /* 1.2: the first SE's GET_CSR answer (two signatures) */
	unsigned csrs;
} lie_state;

enum {
	L_NO_RECEIPT,     /* LOCK not passed on; "provisioned" with no receipt */
	L_REPLAY,         /* the second SE's LOCK answered with the first SE's receipt */
	L_OTHER_NONCE,    /* LOCK passed on with another nonce than the station's */
	L_FOREIGN_KEY,    /* LOCK not passed on; the receipt signed by a key of the liar's */
	L_CHAIN_DIGEST,   /* SE_INFO names a chain digest the chain does not have */
	L_KNOWN_DIGEST,   /* a rogue SE names the genuine chain's digest (cached by the station) */
	L_READBACK,       /* READ_CERT's SHA-256 is off by one bit */
	L_READBACK_LEN,   /* READ_CERT's "SHA-256" is 31 bytes */
	L_V10_FRAME,      /* after 1.1 was negotiated, READ_CERT answered in a 1.0 frame, 1.0 layout */
	/* protocol 1.2 */
	L12_REPLAY_DELTA, /* the second SE's SE_INFO carries the first SE's attestation certificate delta */
	L12_REPLAY_CSR,   /* the second SE's GET_CSR answered with the first SE's two signatures */
	L12_NO_INSTALL,   /* INSTALL_CERT "succeeds" without reaching the SE */
};

static int
hook(liar *l, int fd, const jig_frame *req, const jig_msg *q)
{
	lie_state *st = l->lies.arg;
	static _Thread_local jig_msg m;
	static _Thread_local jig_frame f;

	if (q->type == JIG_CMD_LOCK) {
		st->locks++;
		switch (st->kind) {
		case L_NO_RECEIPT:
		case L_FOREIGN_KEY:
			memset(&m, 0, sizeof(m));
			m.type = JIG_CMD_LOCK | JIG_RESPONSE;
			m.u.lock.lifecycle = JIG_LC_PROVISIONED;
			if (st->kind == L_FOREIGN_KEY) {
				jig_lock_receipt r;
				uint8_t bytes[JIG_LOCK_RECEIPT_MAX];
				size_t len = 0;
				EVP_PKEY *k = EVP_EC_gen("P-256");
				EVP_MD_CTX *md = EVP_MD_CTX_new();

				memset(&r, 0, sizeof(r));
				memcpy(r.nonce, q->u.lock_req.nonce, JIG_NONCE_LEN);
				snprintf(r.serial, sizeof(r.serial), "%s", l->told.serial);
				r.lifecycle = JIG_LC_PROVISIONED;
				r.slot = q->u.lock_req.slot;
				st_sha256(l->installed, l->installed_len, r.cert_sha256);
				ck_assert(k && md && jig_lock_receipt_encode(&r, bytes, sizeof(bytes), &len, NULL) == 0);
				m.u.lock.signature.len = sizeof(m.u.lock.signature.data);
				ck_assert(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
				    EVP_DigestSign(md, m.u.lock.signature.data, &m.u.lock.signature.len, bytes, len) == 1);
				EVP_MD_CTX_free(md);
				EVP_PKEY_free(k);
			}
			return liar_send(l, fd, req, &m), 1;
		case L_REPLAY:
			if (st->locks == 1) {
				ck_assert_int_eq(liar_forward(l, req, &st->first_lock), 0);
				return liar_send(l, fd, req, &st->first_lock), 1;
			}
			m = st->first_lock; /* the first SE's genuine receipt; this SE stays unlocked */
			return liar_send(l, fd, req, &m), 1;
		case L_OTHER_NONCE: {
			/* the SE locks and signs, over the liar's nonce */
			jig_msg q2 = *q;
			size_t len = 0;

			ck_assert_int_eq(RAND_bytes(q2.u.lock_req.nonce, JIG_NONCE_LEN), 1);
			f = *req;
			ck_assert(jig_msg_encode(&q2, f.payload, sizeof(f.payload), &len, NULL) == 0);
			f.len = (uint16_t)len;
			ck_assert_int_eq(liar_forward(l, &f, &m), 0);
			return liar_send(l, fd, req, &m), 1;
		}
		}
	}
	if (st->kind == L12_NO_INSTALL && q->type == JIG_CMD_INSTALL_CERT) {
		memset(&m, 0, sizeof(m));
		m.type = JIG_CMD_INSTALL_CERT | JIG_RESPONSE;
		return liar_send(l, fd, req, &m), 1;
	}
	if (st->kind == L_V10_FRAME && q->type == JIG_CMD_READ_CERT) {
		/* the whole certificate in a 1.0 frame, as a 1.0 jig would answer */
		memset(&m, 0, sizeof(m));
		m.type = JIG_CMD_READ_CERT | JIG_RESPONSE;
		m.u.cert.len = l->installed_len;
		memcpy(m.u.cert.data, l->installed, l->installed_len);
		f = *req;
		f.version = JIG_VERSION_1_0;
		return liar_send(l, fd, &f, &m), 1;
	}
	return 0;
}

static void
rewrite(liar *l, const jig_msg *q, jig_msg *m)
{
	lie_state *st = l->lies.arg;

	(void)l;
	if (m->type == JIG_T_ERROR)
		return;
	if (q->type == JIG_CMD_SE_INFO) {
		st->se_infos++;
		if (st->kind == L_CHAIN_DIGEST)
			m->u.se_info.chain_sha256[0] ^= 1;
		if (st->kind == L_KNOWN_DIGEST) {
			if (!st->have_chain) {
				memcpy(st->known_chain, m->u.se_info.chain_sha256, 32);
				st->have_chain = 1;
			} else {
				memcpy(m->u.se_info.chain_sha256, st->known_chain, 32);
			}
		}
		if (st->kind == L12_REPLAY_DELTA) {
			ck_assert_int_eq(m->u.se_info.cert_by_delta, 1);
			if (st->se_infos == 1)
				st->first_delta = m->u.se_info.attest_delta;
			else
				m->u.se_info.attest_delta = st->first_delta;
		}
		l->told = m->u.se_info;
	}
	if (q->type == JIG_CMD_GET_CSR && st->kind == L12_REPLAY_CSR) {
		ck_assert_uint_eq(m->version, JIG_VERSION_1_2);
		if (++st->csrs == 1)
			st->first_csr = *m;
		else
			*m = st->first_csr;
	}
	if (q->type == JIG_CMD_READ_CERT && m->u.cert.len == 32) {
		if (st->kind == L_READBACK)
			m->u.cert.data[7] ^= 0x10;
		if (st->kind == L_READBACK_LEN)
			m->u.cert.len = 31;
	}
}

static const struct {
	int kind;
	unsigned devices, faults, fault_every;
	const char *step, *reason;
	int v12; /* the liar speaks 1.2 */
} cases[] = {
	{ L_NO_RECEIPT, 1, 0, 0, "lock", "sent no lock receipt", 0 },
	{ L_REPLAY, 2, 0, 0, "lock", "lock receipt", 0 },
	{ L_OTHER_NONCE, 1, 0, 0, "lock", "lock receipt", 0 },
	{ L_FOREIGN_KEY, 1, 0, 0, "lock", "lock receipt", 0 },
	{ L_CHAIN_DIGEST, 1, 0, 0, "posture", "the vendor chain the jig sent hashes to", 0 },
	{ L_KNOWN_DIGEST, 2, JIGSIM_F_UNKNOWN_VENDOR, 2, "posture", "does not chain to the SE vendor root", 0 },
	{ L_READBACK, 1, 0, 0, "install", "SHA-256 of the certificate read back from the SE differs", 0 },
	{ L_READBACK_LEN, 1, 0, 0, "install", "asked for a SHA-256 (32 bytes), the jig sent 31 bytes", 0 },
	{ L_V10_FRAME, 1, 0, 0, "install", "answered in a protocol 1.0 frame; protocol 1.1 was negotiated", 0 },
	{ L_CHAIN_DIGEST, 1, 0, 0, "posture", "the vendor chain the jig sent hashes to", 1 },
	/* 1.2: rebuilt against the genuine chain, the rogue certificate is no DER, fails its
	 * signature, or its delta reaches past the shorter source */
	{ L_KNOWN_DIGEST, 2, JIGSIM_F_UNKNOWN_VENDOR, 2, "posture", "attestation certificate", 1 },
	{ L_READBACK, 1, 0, 0, "install", "SHA-256 of the certificate read back from the SE differs", 1 },
	{ L12_REPLAY_DELTA, 2, 0, 0, "posture", "does not chain to the SE vendor root", 1 },
	{ L12_REPLAY_CSR, 2, 0, 0, "verify", "signature does not verify", 1 },
	{ L12_NO_INSTALL, 1, 0, 0, "install", "SHA-256 of the certificate read back from the SE differs", 1 },
	/* the 1.1 lies again at 1.2 */
	{ L_NO_RECEIPT, 1, 0, 0, "lock", "sent no lock receipt", 1 },
	{ L_REPLAY, 2, 0, 0, "lock", "lock receipt", 1 },
	{ L_OTHER_NONCE, 1, 0, 0, "lock", "lock receipt", 1 },
	{ L_FOREIGN_KEY, 1, 0, 0, "lock", "lock receipt", 1 },
	{ L_READBACK_LEN, 1, 0, 0, "install", "asked for a SHA-256 (32 bytes), the jig sent 31 bytes", 1 },
	{ L_V10_FRAME, 1, 0, 0, "install", "answered in a protocol 1.0 frame; protocol 1.2 was negotiated", 1 },
};

START_TEST(test_liar_11)
{
	stu_ws *w = stu_ws_new(tu_pki);
	lie_state st;
	liar_lies lies = { .relay = 1, .v12 = cases[_i].v12, .hook = hook, .rewrite = rewrite, .arg = &st };
	jigsim_config c;
	jigsim_device_info bad;
	stu_sim *sim;
	json_t *f, *recs;
	unsigned last;
	stu_run r;
	liar *l;

	memset(&st, 0, sizeof(st));
	st.kind = cases[_i].kind;
	jigsim_config_init(&c);
	c.devices = cases[_i].devices;
	c.faults = cases[_i].faults;
	c.fault_every = cases[_i].fault_every;
	sim = stu_sim_start(tu_pki, &c);
	l = liar_start(tu_pki, sim->s, &lies);
	stu_station_run(w, l->uri, cases[_i].devices, 1, &r);
	last = cases[_i].devices;
	if (last == 2) { /* the first device is the honest one */
		jigsim_device_info a;

		ck_assert_int_eq(jigsim_device_get(sim->s, 1, &a), 0);
		ck_assert_msg(stu_event(&r, "passed", a.serial) != NULL, "case %d: the first SE did not pass\n%s\n%s", _i,
		    stu_tail(r.out), stu_tail(r.err));
	}
	ck_assert_int_eq(jigsim_device_get(sim->s, last, &bad), 0);
	ck_assert_msg(stu_event(&r, "passed", bad.serial) == NULL, "case %d: the lie passed", _i);
	ck_assert_msg((f = stu_event(&r, "failed", bad.serial)) != NULL, "case %d: no failed event for %s\n%s\n%s", _i,
	    bad.serial, stu_tail(r.out), stu_tail(r.err));
	ck_assert_msg(strcmp(stu_str(f, "step"), cases[_i].step) == 0 && strstr(stu_str(f, "reason"), cases[_i].reason),
	    "case %d: failed at %s: %s", _i, stu_str(f, "step"), stu_str(f, "reason"));
	if (cases[_i].kind == L_NO_RECEIPT || cases[_i].kind == L_REPLAY || cases[_i].kind == L_FOREIGN_KEY)
		ck_assert_uint_eq(bad.lifecycle, JIG_LC_FACTORY); /* the SE the liar shipped unlocked */
	recs = rw_records(w, bad.serial);
	ck_assert_msg(rw_record(recs, 0, "done", "pass", NULL) == NULL, "case %d: a pass record", _i);
	if (strcmp(cases[_i].step, "posture") == 0)
		ck_assert_msg(rw_record(recs, 0, "issuing", NULL, NULL) == NULL, "case %d: issued before the lie was seen", _i);
	json_decref(recs);
	stu_audit_verify(w);
	stu_run_clear(&r);
	liar_stop(l);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* A jig with 1.0 firmware: with the recipe's default (the SE signs lock
 * receipts) every device fails at POSTURE before anything is issued, so a
 * jig that talks the station down to 1.0 gains nothing; with
 * se.lock_receipt: false the 1.0 jig provisions as before. */
START_TEST(test_v10_jig)
{
	stu_ws *w = stu_ws_new(tu_pki);
	jigsim_config c;
	jigsim_device_info a;
	stu_sim *sim;
	json_t *f, *recs;
	stu_run r;

	jigsim_config_init(&c);
	c.devices = 1;
	c.max_version = JIG_VERSION_1_0;
	sim = stu_sim_start(tu_pki, &c);
	if (_i)
		stu_recipe_edit(w, "  lifecycle: factory\n", "  lifecycle: factory\n  lock_receipt: false\n");
	stu_station_run(w, sim->uri, 1, 1, &r);
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &a), 0);
	recs = rw_records(w, a.serial);
	if (_i) {
		ck_assert_msg(r.status == 0 && stu_event(&r, "passed", a.serial), "1.0 jig: exit %d\n%s\n%s", r.status,
		    stu_tail(r.out), stu_tail(r.err));
		ck_assert_uint_eq(a.lifecycle, JIG_LC_PROVISIONED);
		ck_assert_str_eq(rw_detail(rw_record(recs, 0, "lock", "ok", NULL), "receipt"), "none: protocol 1.0");
	} else {
		ck_assert_msg((f = stu_event(&r, "failed", a.serial)) != NULL, "no failed event\n%s\n%s", stu_tail(r.out),
		    stu_tail(r.err));
		ck_assert_msg(strcmp(stu_str(f, "step"), "posture") == 0 && strstr(stu_str(f, "reason"), "speaks protocol 1.0"),
		    "failed at %s: %s", stu_str(f, "step"), stu_str(f, "reason"));
		ck_assert_msg(rw_record(recs, 0, "issuing", NULL, NULL) == NULL, "a certificate was issued");
		ck_assert_uint_eq(a.lifecycle, JIG_LC_FACTORY);
	}
	json_decref(recs);
	stu_audit_verify(w);
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* The honest 1.1 path (_i 0) and 1.2 path (_i 1, the chain's payload with
 * its template): the lock record says the receipt verified; the vendor
 * chain is fetched once and kept on disk beside the journal, where the next
 * run finds it (and a file that is not that chain is replaced). */
START_TEST(test_v11_chain_cache)
{
	stu_ws *w = stu_ws_new(tu_pki);
	jigsim_config c;
	jigsim_device_info a;
	stu_sim *sim;
	json_t *recs;
	stu_run r;
	char path[4400], cmd[9000];
	int found = 0;
	FILE *p;

	jigsim_config_init(&c);
	c.devices = 3;
	c.max_version = _i ? JIG_VERSION_1_2 : JIG_VERSION_1_1;
	sim = stu_sim_start(tu_pki, &c);
	stu_station_run(w, sim->uri, 2, 1, &r);
	ck_assert_msg(r.status == 0 && stu_event_count(&r, "passed") == 2, "exit %d\n%s\n%s", r.status, stu_tail(r.out),
	    stu_tail(r.err));
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &a), 0);
	recs = rw_records(w, a.serial);
	ck_assert_str_eq(rw_detail(rw_record(recs, 0, "lock", "ok", NULL), "receipt"), "verified");
	json_decref(recs);
	stu_run_clear(&r);
	/* one file, named by the digest it hashes to */
	snprintf(cmd, sizeof(cmd), "cd '%s/audit/vendor-chains' && for f in *.chain; do "
	    "[ \"$(sha256sum < \"$f\" | cut -c1-64).chain\" = \"$f\" ] && echo ok; done", w->dir);
	ck_assert_ptr_nonnull(p = popen(cmd, "r"));
	while (fgets(path, sizeof(path), p))
		found += strcmp(path, "ok\n") == 0;
	pclose(p);
	ck_assert_int_eq(found, 1);
	/* a damaged file: noted, fetched again, replaced; the device passes */
	snprintf(cmd, sizeof(cmd), "cd '%s/audit/vendor-chains' && for f in *.chain; do printf 'X' >> \"$f\"; done", w->dir);
	ck_assert_int_eq(system(cmd), 0);
	stu_station_run(w, sim->uri, 1, 1, &r);
	ck_assert_msg(r.status == 0 && stu_event_count(&r, "passed") == 1, "exit %d\n%s\n%s", r.status, stu_tail(r.out),
	    stu_tail(r.err));
	ck_assert_msg(strstr(r.out, "does not hash to its name"), "the damaged cache file was not noted\n%s", stu_tail(r.out));
	stu_run_clear(&r);
	snprintf(cmd, sizeof(cmd), "cd '%s/audit/vendor-chains' && for f in *.chain; do "
	    "[ \"$(sha256sum < \"$f\" | cut -c1-64).chain\" = \"$f\" ] || exit 1; done", w->dir);
	ck_assert_int_eq(system(cmd), 0);
	stu_audit_verify(w);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* A serial jig's line (issue 17, item 3) on jigsim's emulated line: the
 * station moves it to the highest rate HELLO lists; a switch that fails
 * (nothing arrives at the new rate) reverts within the confirmation window,
 * the operator is told once, and the device is provisioned at the old rate. */
START_TEST(test_baud)
{
	stu_ws *w = stu_ws_new(tu_pki);
	jigsim_config c;
	jigsim_device_info a;
	stu_sim *sim;
	stu_run r;

	jigsim_config_init(&c);
	c.devices = 2;
	stu_config_line(&c, 921600, _i);
	sim = stu_sim_start(tu_pki, &c);
	stu_station_run(w, sim->uri, 2, 1, &r);
	ck_assert_int_eq(jigsim_device_get(sim->s, 2, &a), 0);
	ck_assert_msg(r.status == 0 && stu_event_count(&r, "passed") == 2, "exit %d\n%s\n%s", r.status, stu_tail(r.out),
	    stu_tail(r.err));
	if (_i)
		ck_assert_msg(strstr(r.out, "no answer at 921600 baud within 250 ms") && strstr(r.out, "back at the old rate"),
		    "the failed switch was not noted\n%s", stu_tail(r.out));
	else
		ck_assert_msg(!strstr(r.out, "SET_BAUD"), "a note about a switch that worked\n%s", stu_tail(r.out));
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

int
main(void)
{
	TCase *tc;
	Suite *s = liar_suite("hostile-protocol", "protocol", 180, &tc);

	tcase_add_loop_test(tc, test_liar_11, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_loop_test(tc, test_v10_jig, 0, 2);
	tcase_add_loop_test(tc, test_v11_chain_cache, 0, 2);
	tcase_add_loop_test(tc, test_baud, 0, 2);
	return tu_run_suite(s);
}
