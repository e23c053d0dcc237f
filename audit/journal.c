/* The journal writer: durable appends with group commit, batch rotation and
 * sealing.  Opening a journal and recovering a torn tail: journal-open.c.
 *
 * Group commit: an appender writes its line under the mutex, then waits
 * until an fdatasync that started after its write has finished.  The first
 * waiter that finds no sync running becomes the leader: it drops the mutex,
 * calls fdatasync, and on return marks everything written before it started
 * as durable and wakes the others.  Writers arriving during a sync write
 * their lines and the next leader covers them all with one call. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit-int.h"
#include "cms.h"

/* ---- small file helpers ------------------------------------------------ */

static int
write_all(int fd, const void *p, size_t len)
{
	const uint8_t *b = p;

	while (len) {
		ssize_t n = write(fd, b, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

int
audit_exists_at(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, 0) == 0;
}

int
audit_read_batch(audit_journal *j, unsigned num, uint8_t **buf, size_t *len, st_err *err)
{
	char name[AUDIT_NAME_MAX], *path;
	int ret;

	audit_batch_name(num, name);
	if (!(path = audit_path(j->dir, name)))
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	ret = st_file_read(path, AUDIT_BATCH_FILE_MAX, buf, len, err);
	free(path);
	return ret;
}

/* ---- sealing ---------------------------------------------------------------- */

static int
seal_batch(audit_journal *j, unsigned num, st_err *err)
{
	char name[AUDIT_NAME_MAX], seal[AUDIT_NAME_MAX + 8], *path = NULL;
	uint8_t *buf = NULL, *der = NULL;
	size_t len = 0, der_len = 0;
	int ret = -1;

	audit_batch_name(num, name);
	snprintf(seal, sizeof(seal), "%s.p7s", name);
	if (audit_read_batch(j, num, &buf, &len, err) < 0)
		goto out;
	if (st_cms_sign(j->signer->key, j->signer->cert, j->signer->chain, buf, len, &der, &der_len, err) < 0)
		goto out;
	if (!(path = audit_path(j->dir, seal))) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto out;
	}
	if (st_file_write_atomic(path, der, der_len, 0644, err) < 0)
		goto out;
	st_log("audit", "sealed %s (%zu bytes, seal %zu bytes)", name, len, der_len);
	ret = 0;
out:
	if (ret < 0)
		st_err_prefix(err, "sealing %s/%s", j->dir, name);
	free(path);
	free(der);
	free(buf);
	return ret;
}

/* Seal every closed batch that has no seal yet. */
int
audit_seal_pending_locked(audit_journal *j, st_err *err)
{
	unsigned n;

	for (n = 1; n < j->batch && j->unsealed; n++) {
		char seal[AUDIT_NAME_MAX + 8];

		audit_batch_name(n, seal);
		strcat(seal, ".p7s");
		if (audit_exists_at(j->dirfd, seal))
			continue;
		if (seal_batch(j, n, err) < 0)
			return -1;
		j->unsealed--;
	}
	return 0;
}

/* ---- appending ------------------------------------------------------------ */

static int
fail_broken(audit_journal *j, st_err *err)
{
	if (err)
		*err = j->broken_err;
	return -1;
}

static int
break_journal(audit_journal *j, int errnum, const char *what, st_err *err)
{
	char name[AUDIT_NAME_MAX];

	audit_batch_name(j->batch, name);
	j->broken = 1;
	st_err_errno(&j->broken_err, ST_E_IO, errnum,
	    "audit journal %s/%s: %s failed; this process writes no more records to it", j->dir, name, what);
	pthread_cond_broadcast(&j->cv);
	return fail_broken(j, err);
}

static int
create_batch_locked(audit_journal *j, st_err *err)
{
	char name[AUDIT_NAME_MAX];

	audit_batch_name(j->batch, name);
	if ((j->fd = openat(j->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644)) < 0)
		return st_err_errno(err, ST_E_IO, errno, "audit journal: create %s/%s", j->dir, name);
	/* The new name must be durable before any record in it counts as such. */
	if (fsync(j->dirfd) < 0)
		return break_journal(j, errno, "fsync of the folder", err);
	j->devices = 0;
	j->records = 0;
	return 0;
}

/* Encode and write one record at the end of the open batch (not yet durable). */
int
audit_write_record_locked(audit_journal *j, const audit_event *ev, uint64_t *seq, st_err *err)
{
	char *line = NULL;
	size_t len = 0;

	if (j->broken)
		return fail_broken(j, err);
	if (j->fd < 0 && create_batch_locked(j, err) < 0)
		return -1;
	if (audit_record_encode(&j->head, j->next_seq, j->prev, ev, &line, &len, err) < 0)
		return -1;
	if (write_all(j->fd, line, len) < 0) {
		int e = errno;

		free(line);
		/* Part of the line may be in the file: only a reopen (which
		 * quarantines the tail) makes the journal consistent again. */
		return break_journal(j, e, "write", err);
	}
	st_sha256(line, len, j->prev);
	free(line);
	*seq = j->next_seq++;
	j->written = *seq;
	j->records++;
	j->appends++;
	if (audit_is_terminal(ev->device, ev->step, ev->result))
		j->devices++;
	return 0;
}

/* Wait until seq is durable, becoming the group-commit leader when no
 * fdatasync is running. */
static int
wait_durable_locked(audit_journal *j, uint64_t seq, st_err *err)
{
	while (j->durable < seq) {
		if (j->broken)
			return fail_broken(j, err);
		if (!j->syncing) {
			uint64_t target = j->written;
			int fd = j->fd, rc, e;

			j->syncing = 1;
			pthread_mutex_unlock(&j->mu);
			rc = fdatasync(fd);
			e = errno;
			pthread_mutex_lock(&j->mu);
			j->syncing = 0;
			j->syncs++;
			if (rc < 0)
				return break_journal(j, e, "fdatasync", err);
			if (target > j->durable)
				j->durable = target;
			pthread_cond_broadcast(&j->cv);
		} else {
			pthread_cond_wait(&j->cv, &j->mu);
		}
	}
	return 0;
}

/* Make everything written durable now, holding the mutex throughout
 * (after any running leader has finished). */
int
audit_sync_now_locked(audit_journal *j, st_err *err)
{
	while (j->syncing)
		pthread_cond_wait(&j->cv, &j->mu);
	if (j->broken)
		return fail_broken(j, err);
	if (j->fd >= 0 && j->durable < j->written) {
		if (fdatasync(j->fd) < 0)
			return break_journal(j, errno, "fdatasync", err);
		j->syncs++;
		j->durable = j->written;
		pthread_cond_broadcast(&j->cv);
	}
	return 0;
}

/* Close the open batch with its batch-close record, make it durable, and
 * seal it when a signer is set.  A sealing failure is recorded in the next
 * batch and reported through seal_err (the batch stays closed, unsealed). */
int
audit_close_batch_locked(audit_journal *j, const char *reason, st_err *seal_err, st_err *err)
{
	char name[AUDIT_NAME_MAX];
	json_t *details = NULL;
	audit_event ev = { NULL, NULL, AUDIT_STEP_BATCH_CLOSE, AUDIT_RESULT_OK, NULL, 0 };
	uint64_t seq;
	unsigned closed = j->batch;
	int ret = -1;

	j->rotating = 1;
	audit_batch_name(closed, name);
	if (!(details = json_pack("{s:s, s:I, s:I, s:s}", "batch", name, "devices", (json_int_t)j->devices, "records",
	          (json_int_t)j->records + 1, "reason", reason))) {
		st_err_set(err, ST_E_NOMEM, "audit journal: out of memory");
		goto out;
	}
	ev.details = details;
	if (audit_write_record_locked(j, &ev, &seq, err) < 0 || audit_sync_now_locked(j, err) < 0)
		goto out;
	close(j->fd);
	j->fd = -1;
	j->batch++;
	j->devices = 0;
	j->records = 0;
	j->unsealed++;
	st_log("audit", "closed %s (%s)", name, reason);
	if (j->signer) {
		st_err serr;

		st_err_clear(&serr);
		if (seal_batch(j, closed, &serr) == 0) {
			j->unsealed--;
		} else {
			audit_event fe = { NULL, NULL, AUDIT_STEP_SEAL_FAILED, AUDIT_RESULT_FAIL, NULL, 0 };

			if (seal_err)
				*seal_err = serr;
			json_decref(details);
			if (!(details = json_pack("{s:s, s:s}", "batch", name, "error", serr.msg))) {
				st_err_set(err, ST_E_NOMEM, "audit journal: out of memory");
				goto out;
			}
			fe.details = details;
			if (audit_write_record_locked(j, &fe, &seq, err) < 0 || audit_sync_now_locked(j, err) < 0)
				goto out;
		}
	}
	ret = 0;
out:
	json_decref(details);
	j->rotating = 0;
	pthread_cond_broadcast(&j->cv);
	return ret;
}

int
audit_append(audit_journal *j, const audit_event *ev, uint64_t *seq_out, st_err *err)
{
	uint64_t seq = 0;
	int ret = -1;

	pthread_mutex_lock(&j->mu);
	while (j->rotating)
		pthread_cond_wait(&j->cv, &j->mu);
	if (audit_write_record_locked(j, ev, &seq, err) < 0)
		goto out;
	if (j->batch_max && j->devices >= j->batch_max && audit_is_terminal(ev->device, ev->step, ev->result)) {
		st_err serr;

		st_err_clear(&serr);
		if (audit_close_batch_locked(j, "count", &serr, err) < 0) {
			/* The batch-close record made this one durable; what failed came
			 * after it (the seal, or the record of its failure): say so. */
			if (j->durable >= seq) {
				if (serr.code) {
					int sys = err->sys;

					*err = serr;
					if (!err->sys)
						err->sys = sys;
					st_err_prefix(err, "sealing the batch failed and the journal could not record it");
				}
				if (seq_out)
					*seq_out = seq;
				ret = 1;
			}
			goto out;
		}
	}
	if ((!ev->lazy || audit_is_terminal(ev->device, ev->step, ev->result)) && wait_durable_locked(j, seq, err) < 0)
		goto out;
	if (seq_out)
		*seq_out = seq;
	ret = 0;
out:
	pthread_mutex_unlock(&j->mu);
	if (ret < 0)
		st_err_prefix(err, "audit append (step %s, device %s)", ev->step ? ev->step : "?",
		    ev->device ? ev->device : "-");
	else if (ret > 0)
		st_err_prefix(err, "audit journal, after the durable record (step %s, device %s)", ev->step ? ev->step : "?",
		    ev->device ? ev->device : "-");
	return ret;
}

int
audit_seal_now(audit_journal *j, st_err *err)
{
	st_err serr;
	int ret = -1;

	if (!j->signer)
		return st_err_set(err, ST_E_CONFIG, "audit journal %s: sealing needs the audit key and certificate", j->dir);
	st_err_clear(&serr);
	pthread_mutex_lock(&j->mu);
	while (j->rotating)
		pthread_cond_wait(&j->cv, &j->mu);
	if (j->fd >= 0 && j->records > 0) {
		if (audit_close_batch_locked(j, "on-demand", &serr, err) < 0)
			goto out;
		if (serr.code != ST_OK) {
			*err = serr;
			goto out;
		}
	}
	if (audit_seal_pending_locked(j, err) < 0)
		goto out;
	ret = 0;
out:
	pthread_mutex_unlock(&j->mu);
	return ret;
}

int
audit_announce_signer(audit_journal *j, X509 *next, uint64_t *seq, st_err *err)
{
	audit_event ev = { .step = AUDIT_STEP_AUDIT_KEY, .result = AUDIT_RESULT_OK };
	unsigned char *der = NULL;
	char *b64 = NULL, hex[ST_SHA256_HEX_LEN + 1], subject[512];
	int n, ret = -1;

	if (!j->signer)
		return st_err_set(err, ST_E_CONFIG, "audit journal %s: the next audit key is announced under the seal of "
		    "the current one: give the current audit key", j->dir);
	if ((n = i2d_X509(next, &der)) <= 0 || !(b64 = malloc(4 * (((size_t)n + 2) / 3) + 1))) {
		st_err_set(err, ST_E_NOMEM, "audit-key: cannot encode the certificate");
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)b64, der, n);
	st_sha256_hex(der, (size_t)n, hex);
	st_x509_subject(next, subject, sizeof(subject));
	if (!(ev.details = json_pack("{s:s,s:s,s:s}", "cert", b64, "cert_sha256", hex, "subject", subject))) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto out;
	}
	if (audit_append(j, &ev, seq, err) != 0 || audit_seal_now(j, err) < 0)
		goto out;
	ret = 0;
out:
	json_decref(ev.details);
	free(b64);
	OPENSSL_free(der);
	return ret;
}

void
audit_get_status(audit_journal *j, audit_status *st)
{
	pthread_mutex_lock(&j->mu);
	*st = j->recovery;
	st->last_seq = j->next_seq - 1;
	st->batch = j->batch;
	st->batch_devices = j->devices;
	st->unsealed = j->unsealed;
	st->syncs = j->syncs;
	st->appends = j->appends;
	pthread_mutex_unlock(&j->mu);
}

void
audit_close(audit_journal *j)
{
	if (!j)
		return;
	if (j->fd >= 0) {
		pthread_mutex_lock(&j->mu);
		audit_sync_now_locked(j, NULL); /* lazy records; a failure here was reported by no append */
		pthread_mutex_unlock(&j->mu);
		close(j->fd);
	}
	if (j->lockfd >= 0)
		close(j->lockfd); /* releases the flock */
	if (j->dirfd >= 0)
		close(j->dirfd);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cv);
	free(j->station);
	free(j->operator_name);
	free(j->recipe);
	free(j->dir);
	free(j);
}
