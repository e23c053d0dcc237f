/* The anomaly halt (recipe halt:): too many attestation or identity
 * failures among the last devices, or the same posture failure again and
 * again, stop issuing on every jig; a "halt" record says why, and only a
 * signed resume (station authorize resume) lifts it, once. */
#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "authz.h"
#include "recipe.h"
#include "station.h"
#include "step.h"

int
station_halt_due(station *st, char *reason, size_t reason_cap, char *msg, size_t msg_cap)
{
	const recipe *r = st->rcp;
	unsigned failures = 0, streak = 0;
	char error[256];

	if (!r->halt.attestation_failures && !r->halt.identical_posture_failures)
		return 0;
	history_anomaly(st->history, (unsigned)r->halt.within, &failures, &streak, error, sizeof(error));
	if (r->halt.attestation_failures && failures >= (unsigned)r->halt.attestation_failures) {
		snprintf(reason, reason_cap, "attestation");
		snprintf(msg, msg_cap, "%u attestation or identity failures among the last %ld devices (halt: "
		    "attestation_failures %ld within %ld): counterfeit or tampered parts on the line?", failures,
		    r->halt.within, r->halt.attestation_failures, r->halt.within);
		return 1;
	}
	if (r->halt.identical_posture_failures && streak >= (unsigned)r->halt.identical_posture_failures) {
		snprintf(reason, reason_cap, "posture");
		snprintf(msg, msg_cap, "%u posture failures in a row (halt: identical_posture_failures %ld), each: %.200s: "
		    "the wrong recipe for the parts on the line?", streak, r->halt.identical_posture_failures, error);
		return 1;
	}
	return 0;
}

int
station_halt(station *st, const char *reason, const char *msg, uint64_t *seq, char id[33], st_err *err)
{
	uint8_t rnd[16];
	char why[256];

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return st_err_openssl(err, ST_E_CRYPTO, "halt id");
	st_hex(rnd, sizeof(rnd), id);
	if (station_journal(st, NULL, NULL, STEP_HALT, "info", json_pack("{s:s,s:s,s:s}", "reason", reason, "message",
	        msg, "halt_id", id), 0, err) < 0)
		return -1;
	*seq = history_halt_pending(st->history, id, why, sizeof(why));
	return 0;
}

int
station_halt_check(station *st, st_err *err)
{
	char id[33], why[256];
	uint64_t seq = history_halt_pending(st->history, id, why, sizeof(why));

	if (!seq)
		return 0;
	return st_err_set(err, ST_E_STATE, "the journal halted issuing at seq %llu (halt %llu:%s): %s; it resumes with "
	    "a signed resume: station authorize resume --recipe FILE ... --out F, then station run --authorization F",
	    (unsigned long long)seq, (unsigned long long)seq, id, why);
}

int
station_halt_resume(station *st, const char *path, char *signer, size_t signer_cap, st_err *err)
{
	const recipe *r = st->rcp;
	const char *trust = r->halt.authorizers ? r->halt.authorizers : r->rework.authorizers;
	char id[33], why[256];
	uint64_t seq = history_halt_pending(st->history, id, why, sizeof(why));
	authz *a = NULL;
	int ret = -1;

	if (!seq)
		return st_err_set(err, ST_E_CONFIG, "--authorization %s: the journal has no halt pending: nothing to "
		    "resume (a resume is used once)", path);
	/* A recipe that no longer has halt: still lifts a halt its journal holds. */
	if (!trust)
		return st_err_set(err, ST_E_CONFIG, "--authorization %s: the recipe has no halt.authorizers (nor "
		    "rework.authorizers): nobody's resume counts", path);
	if (authz_load(path, "resume", trust, time(NULL), &a, err) < 0)
		return -1;
	if (a->halt_seq != seq || strcmp(a->halt_id, id) != 0) {
		st_err_set(err, ST_E_VERIFY, "authorization %s lifts the halt %llu:%s, not the one pending (%llu:%s): ask "
		    "for a resume of this halt", path, (unsigned long long)a->halt_seq, a->halt_id, (unsigned long long)seq,
		    id);
		goto out;
	}
	if (station_journal(st, NULL, NULL, STEP_HALT_RESUME, "ok", json_pack("{s:s,s:I,s:s,s:s,s:s}", "authorization",
	        a->id, "halt_seq", (json_int_t)seq, "halt_id", id, "reason", a->reason, "authorized_by", a->signer), 0,
	        err) < 0)
		goto out;
	snprintf(signer, signer_cap, "%s", a->signer);
	ret = 0;
out:
	authz_free(a);
	return ret;
}
