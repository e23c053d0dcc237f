/* Opening a journal: the folder and its lock, the chain through the last
 * two batches, and recovery: a torn tail of the open batch moves to a
 * quarantine file and a journal-recovered record says so.  The writer:
 * journal.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit-int.h"
#include "cms.h"


struct open_scan {
	char **quarantined; /* quarantine files named by journal-recovered records */
	size_t n;
};

static int
add_name(struct open_scan *s, const char *name)
{
	char **nq;

	if (!(nq = realloc(s->quarantined, (s->n + 1) * sizeof(*nq))))
		return -1;
	s->quarantined = nq;
	if (!(s->quarantined[s->n] = strdup(name)))
		return -1;
	s->n++;
	return 0;
}

static int
collect_recovered(const audit_record *rec, void *ctx)
{
	json_t *q;

	if (strcmp(rec->step, AUDIT_STEP_RECOVERED) != 0)
		return 0;
	q = json_object_get(rec->details, "quarantine");
	return json_is_string(q) ? add_name(ctx, json_string_value(q)) : 0;
}

static void
open_scan_clear(struct open_scan *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->quarantined[i]);
	free(s->quarantined);
	memset(s, 0, sizeof(*s));
}

static int
set_head(audit_journal *j, const char *station, const char *op, const char *recipe, st_err *err)
{
	free(j->station);
	free(j->operator_name);
	free(j->recipe);
	j->station = strdup(station);
	j->operator_name = strdup(op ? op : "");
	j->recipe = strdup(recipe ? recipe : "");
	if (!j->station || !j->operator_name || !j->recipe)
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	j->head.station = j->station;
	j->head.operator_name = j->operator_name;
	j->head.recipe = j->recipe;
	return 0;
}

/* Write the tail [off, len) of batch `name` to a quarantine file next to
 * it; the name is returned in qname.  A quarantine file left by an earlier
 * interrupted recovery with the same bytes is reused. */
static int
quarantine_tail(audit_journal *j, const char *name, const uint8_t *tail, size_t tail_len, uint64_t off,
    char *qname, size_t qname_len, st_err *err)
{
	char *path = NULL;
	int i, ret = -1;

	for (i = 0; i < 100; i++) {
		uint8_t *old = NULL;
		size_t old_len = 0;
		int same;

		if (i == 0)
			snprintf(qname, qname_len, "%s.quarantine-%" PRIu64, name, off);
		else
			snprintf(qname, qname_len, "%s.quarantine-%" PRIu64 ".%d", name, off, i);
		free(path);
		if (!(path = audit_path(j->dir, qname))) {
			st_err_set(err, ST_E_NOMEM, "out of memory");
			goto out;
		}
		if (st_file_read(path, AUDIT_BATCH_FILE_MAX, &old, &old_len, NULL) < 0)
			break; /* free name */
		same = old_len == tail_len && memcmp(old, tail, tail_len) == 0;
		free(old);
		if (same) {
			ret = 0;
			goto out;
		}
	}
	if (i == 100) {
		st_err_set(err, ST_E_STATE, "%s/%s: too many quarantine files at offset %" PRIu64, j->dir, name, off);
		goto out;
	}
	ret = st_file_write_atomic(path, tail, tail_len, 0644, err);
out:
	free(path);
	return ret;
}

static int
append_recovered_locked(audit_journal *j, const char *batch, uint64_t off, uint64_t bytes, const char *qname,
    const char *problem, st_err *err)
{
	json_t *details = json_pack("{s:s, s:I, s:I, s:s, s:s}", "batch", batch, "offset", (json_int_t)off, "bytes",
	    (json_int_t)bytes, "quarantine", qname, "problem", problem);
	audit_event ev = { NULL, NULL, AUDIT_STEP_RECOVERED, AUDIT_RESULT_INFO, details, 0 };
	uint64_t seq;
	int ret;

	if (!details)
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	ret = audit_write_record_locked(j, &ev, &seq, err) < 0 ? -1 : audit_sync_now_locked(j, err);
	json_decref(details);
	return ret;
}

/* Quarantine files of batch `name` that no journal-recovered record names:
 * an earlier recovery was interrupted after moving the tail; record it now. */
static int
record_orphans_locked(audit_journal *j, const char *name, struct open_scan *s, st_err *err)
{
	char prefix[AUDIT_NAME_MAX + 16];
	struct dirent **list = NULL;
	int i, n, ret = 0;

	snprintf(prefix, sizeof(prefix), "%s.quarantine-", name);
	if ((n = scandir(j->dir, &list, NULL, alphasort)) < 0)
		return st_err_errno(err, ST_E_IO, errno, "audit journal: list %s", j->dir);
	for (i = 0; i < n; i++) {
		const char *q = list[i]->d_name;
		size_t k;
		struct stat st;

		if (ret < 0 || strncmp(q, prefix, strlen(prefix)) != 0 || strstr(q, ".tmp."))
			continue;
		for (k = 0; k < s->n; k++)
			if (strcmp(s->quarantined[k], q) == 0)
				break;
		if (k < s->n)
			continue;
		if (fstatat(j->dirfd, q, &st, 0) < 0)
			continue;
		ret = append_recovered_locked(j, name, strtoull(q + strlen(prefix), NULL, 10), (uint64_t)st.st_size, q,
		    "quarantined by an interrupted recovery; recorded at the next open", err);
	}
	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
	return ret;
}

/* Check the open (last) batch; quarantine a torn tail. */
static int
open_last_batch(audit_journal *j, unsigned num, struct audit_chain *c, struct open_scan *s, json_t **last,
    st_err *err)
{
	char name[AUDIT_NAME_MAX], qname[128];
	uint8_t *buf = NULL;
	size_t len = 0;
	struct audit_walk w;
	int fd = -1, ret = -1;

	memset(&w, 0, sizeof(w));
	audit_batch_name(num, name);
	if (audit_read_batch(j, num, &buf, &len, err) < 0)
		goto out;
	if (audit_walk_batch(name, buf, len, c, &w, collect_recovered, s) != 0) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto out;
	}
	if ((fd = openat(j->dirfd, name, O_WRONLY | O_APPEND | O_CLOEXEC)) < 0) {
		st_err_errno(err, ST_E_IO, errno, "%s/%s: open for appending", j->dir, name);
		goto out;
	}
	if (w.bad) {
		if (audit_good_record_after(buf, len, w.bad_offset)) {
			st_err_set(err, ST_E_VERIFY,
			    "%s/%s: damaged before its end, not a torn tail (records follow the damage): %s; "
			    "nothing was changed: check it with 'station audit verify %s' and call engineering",
			    j->dir, name, w.msg, j->dir);
			goto out;
		}
		if (quarantine_tail(j, name, buf + w.bad_offset, len - w.bad_offset, w.bad_offset, qname, sizeof(qname),
		        err) < 0)
			goto out;
		if (ftruncate(fd, (off_t)w.bad_offset) < 0 || fsync(fd) < 0) {
			st_err_errno(err, ST_E_IO, errno, "%s/%s: truncate the torn tail at byte offset %" PRIu64, j->dir, name,
			    w.bad_offset);
			goto out;
		}
		j->recovery.recovered = 1;
		j->recovery.recovered_offset = w.bad_offset;
		j->recovery.recovered_bytes = len - w.bad_offset;
		snprintf(j->recovery.recovered_batch, sizeof(j->recovery.recovered_batch), "%s", name);
		snprintf(j->recovery.quarantine, sizeof(j->recovery.quarantine), "%s", qname);
		st_log("audit", "%s: torn tail of %zu bytes at offset %" PRIu64 " moved to %s: %s", name,
		    len - w.bad_offset, w.bad_offset, qname, w.msg);
	}
	j->batch = num;
	j->devices = w.devices;
	j->records = w.records;
	if (w.closed) {
		close(fd);
		j->batch = num + 1;
		j->devices = 0;
		j->records = 0;
	} else {
		j->fd = fd;
	}
	fd = -1;
	if (w.last) {
		json_decref(*last);
		*last = json_incref(w.last);
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	audit_walk_clear(&w);
	free(buf);
	return ret;
}

/* The batch before the open one: only its chain end is needed. */
static int
walk_previous(audit_journal *j, unsigned num, struct audit_chain *c, json_t **last, st_err *err)
{
	char name[AUDIT_NAME_MAX];
	uint8_t *buf = NULL;
	size_t len = 0;
	struct audit_walk w;
	int ret = -1;

	memset(&w, 0, sizeof(w));
	audit_batch_name(num, name);
	if (audit_read_batch(j, num, &buf, &len, err) < 0)
		goto out;
	c->anchored = num == 1;
	audit_walk_batch(name, buf, len, c, &w, NULL, NULL);
	if (w.bad || !w.closed) {
		st_err_set(err, ST_E_VERIFY, "%s/%s: %s; nothing was changed: check it with 'station audit verify %s'",
		    j->dir, name, w.bad ? w.msg : "closed batch without its batch-close record", j->dir);
		goto out;
	}
	json_decref(*last);
	*last = json_incref(w.last);
	ret = 0;
out:
	audit_walk_clear(&w);
	free(buf);
	return ret;
}

static int
open_dir(audit_journal *j, st_err *err)
{
	if (mkdir(j->dir, 0755) == 0) {
		/* A new folder: make its name durable in the parent too. */
		char *copy = strdup(j->dir);
		int pfd = copy ? open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
		int rc = pfd >= 0 ? fsync(pfd) : -1;

		if (pfd >= 0)
			close(pfd);
		free(copy);
		if (rc < 0)
			return st_err_errno(err, ST_E_IO, errno, "audit journal: fsync the parent of %s", j->dir);
	} else if (errno != EEXIST) {
		return st_err_errno(err, ST_E_IO, errno, "audit journal: create folder %s", j->dir);
	}
	if ((j->dirfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return st_err_errno(err, errno == ENOTDIR ? ST_E_CONFIG : ST_E_IO, errno, "audit journal: open %s", j->dir);
	if ((j->lockfd = openat(j->dirfd, AUDIT_LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
		return st_err_errno(err, ST_E_IO, errno, "audit journal: %s/%s", j->dir, AUDIT_LOCK_FILE);
	if (flock(j->lockfd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK) {
			/* The holder wrote its process id into the lock file. */
			char pid[24] = "";
			ssize_t n = pread(j->lockfd, pid, sizeof(pid) - 1, 0);
			long holder = n > 0 ? strtol(pid, NULL, 10) : 0;

			if (holder > 0)
				return st_err_set(err, ST_E_STATE, "in use by station process %ld (a run, rework or seal on the "
				    "same journal): wait for it to finish, or stop it", holder);
			return st_err_set(err, ST_E_STATE, "in use by another station process: wait for it to finish");
		}
		return st_err_errno(err, ST_E_IO, errno, "lock %s/%s", j->dir, AUDIT_LOCK_FILE);
	}
	{
		char pid[24];
		int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());

		/* Only a hint for the next one who finds it locked: not checked. */
		if (ftruncate(j->lockfd, 0) < 0 || pwrite(j->lockfd, pid, (size_t)n, 0) != n)
			st_log("audit", "%s: cannot note the process id in the lock file", j->dir);
	}
	return 0;
}

audit_journal *
audit_open(const char *dir, const audit_config *cfg, st_err *err)
{
	audit_journal *j = NULL;
	unsigned *nums = NULL;
	size_t n = 0, i;
	struct audit_chain c;
	struct open_scan s;
	json_t *last = NULL;
	char name[AUDIT_NAME_MAX];
	int ok = 0, k;

	memset(&s, 0, sizeof(s));
	if (!(j = calloc(1, sizeof(*j))) || !(j->dir = strdup(dir))) {
		free(j);
		st_err_set(err, ST_E_NOMEM, "out of memory");
		return NULL;
	}
	j->dirfd = j->lockfd = j->fd = -1;
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	j->batch_max = cfg->batch_devices;
	j->signer = cfg->signer;
	j->head.engineering = cfg->engineering;
	if (cfg->recipe && !audit_is_hex(cfg->recipe, strlen(cfg->recipe))) {
		st_err_set(err, ST_E_CONFIG, "audit journal: recipe digest \"%.80s\" is not lower-case hex", cfg->recipe);
		goto out;
	}
	if (cfg->signer && (!cfg->signer->key || !cfg->signer->cert)) {
		st_err_set(err, ST_E_CONFIG, "audit journal: a signer needs both key and certificate");
		goto out;
	}
	/* Seals a verifier would refuse are refused before the first one. */
	if (cfg->signer && st_x509_check_role(cfg->signer->cert, ST_ROLE_AUDIT_SEAL, err) < 0) {
		err->code = ST_E_CONFIG;
		st_err_prefix(err, "audit journal %s: audit key", dir);
		goto out;
	}
	if (open_dir(j, err) < 0)
		goto out;
	/* Left by a writer killed before its rename; the lock is ours now. */
	if ((k = st_dir_remove_stale_tmp(dir)) > 0)
		st_log("audit", "%s: removed %d temporary file(s) of an earlier process", dir, k);
	if (audit_batch_list(dir, &nums, &n, err) < 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (nums[i] != i + 1) {
			audit_batch_name((unsigned)i + 1, name);
			st_err_set(err, ST_E_VERIFY, "audit journal %s: %s is missing (the batches jump to %u)", dir, name,
			    nums[i]);
			goto out;
		}
	}
	audit_chain_start(&c);
	j->batch = 1;
	if (n >= 2 && walk_previous(j, (unsigned)n - 1, &c, &last, err) < 0)
		goto out;
	if (n >= 1 && open_last_batch(j, (unsigned)n, &c, &s, &last, err) < 0)
		goto out;
	j->next_seq = c.next_seq;
	memcpy(j->prev, c.prev, 32);
	j->written = j->durable = j->next_seq - 1;

	if (cfg->station) {
		if (set_head(j, cfg->station, cfg->operator_name, cfg->recipe, err) < 0)
			goto out;
	} else if (last) {
		if (set_head(j, json_string_value(json_object_get(last, "station")),
		        json_string_value(json_object_get(last, "operator")), json_string_value(json_object_get(last, "recipe")),
		        err) < 0)
			goto out;
		if (json_is_true(json_object_get(last, "engineering")))
			j->head.engineering = 1;
	} else {
		st_err_set(err, ST_E_CONFIG, "audit journal %s: no station id given and the journal is empty", dir);
		goto out;
	}
	if (fsync(j->dirfd) < 0) {
		st_err_errno(err, ST_E_IO, errno, "audit journal: fsync %s", dir);
		goto out;
	}

	/* From here on the journal takes records: the recovery events first. */
	pthread_mutex_lock(&j->mu);
	ok = 1;
	if (j->recovery.recovered &&
	    append_recovered_locked(j, j->recovery.recovered_batch, j->recovery.recovered_offset,
	        j->recovery.recovered_bytes, j->recovery.quarantine, "torn or corrupt tail after a crash", err) < 0)
		ok = 0;
	if (ok && j->recovery.recovered && add_name(&s, j->recovery.quarantine) < 0) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		ok = 0;
	}
	if (ok && n >= 1) {
		audit_batch_name((unsigned)n, name);
		if (record_orphans_locked(j, name, &s, err) < 0)
			ok = 0;
	}
	/* A crash between a batch's last device and its batch-close record. */
	if (ok && j->fd >= 0 && j->batch_max && j->devices >= j->batch_max && audit_close_batch_locked(j, "count", NULL, err) < 0)
		ok = 0;
	if (ok) {
		/* Which closed batches still lack a seal. */
		j->unsealed = 0;
		for (i = 1; i < j->batch; i++) {
			char seal[AUDIT_NAME_MAX + 8];

			audit_batch_name((unsigned)i, seal);
			strcat(seal, ".p7s");
			if (!audit_exists_at(j->dirfd, seal))
				j->unsealed++;
		}
		if (j->signer && audit_seal_pending_locked(j, err) < 0)
			ok = 0;
	}
	pthread_mutex_unlock(&j->mu);
out:
	json_decref(last);
	open_scan_clear(&s);
	free(nums);
	if (!ok) {
		audit_close(j);
		return NULL;
	}
	return j;
}
