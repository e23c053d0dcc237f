#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "st.h"

static _Atomic(st_log_handler *) log_handler;

void
st_log_set_handler(st_log_handler *h)
{
	atomic_store(&log_handler, h);
}

const char *
st_log_level_name(int level)
{
	switch (level) {
	case ST_LOG_ERR: return "error";
	case ST_LOG_WARNING: return "warning";
	case ST_LOG_NOTICE: return "notice";
	case ST_LOG_INFO: return "info";
	default: return "debug";
	}
}

/* stderr is the journal's stream: JOURNAL_STREAM is "DEV:INODE" of it
 * (systemd.exec(5)); a child whose stderr was redirected keeps the variable
 * but not the stream, so both are compared. */
static int
stderr_is_journal(void)
{
	const char *v = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char end;

	if (!v || sscanf(v, "%llu:%llu%c", &dev, &ino, &end) != 2 || fstat(STDERR_FILENO, &st) < 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void
st_log_stderr(int level, const char *module, const char *line)
{
	char text[2200], *p;
	struct timespec ts;
	struct tm tm;

	if (level < ST_LOG_ERR)
		level = ST_LOG_ERR;
	if (level > ST_LOG_DEBUG)
		level = ST_LOG_DEBUG;
	/* One record per line: a line feed inside would start a line without a level. */
	snprintf(text, sizeof(text), "%s", line);
	for (p = text; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (stderr_is_journal()) {
		fprintf(stderr, "<%d>[%s] %s\n", level, module, text);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s [%s] %s\n", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
	    tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L, st_log_level_name(level), module, text);
}

void
st_log_from_env(void)
{
	const char *v = getenv("STATION_DEBUG");

	if (v && *v && strcmp(v, "0") != 0)
		st_log_set_handler(st_log_stderr);
}

int
st_log_enabled(void)
{
	return atomic_load(&log_handler) != NULL;
}

static void st_vlog(int level, const char *module, const char *fmt, va_list ap) ST_PRINTF(3, 0);

static void
st_vlog(int level, const char *module, const char *fmt, va_list ap)
{
	st_log_handler *h = atomic_load(&log_handler);
	char line[ST_LOG_LINE_MAX];

	if (!h)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	h(level, module, line);
}

void
st_log(const char *module, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	st_vlog(ST_LOG_DEBUG, module, fmt, ap);
	va_end(ap);
}

void
st_logl(int level, const char *module, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	st_vlog(level, module, fmt, ap);
	va_end(ap);
}

void
st_log_hex(const char *module, const char *what, const void *p, size_t len)
{
	st_log_handler *h = atomic_load(&log_handler);
	char hex[2 * 64 + 1], line[sizeof(hex) + 128];
	const uint8_t *b = p;
	size_t off;

	if (!h)
		return;
	for (off = 0; off < len; off += 64) {
		size_t n = len - off < 64 ? len - off : 64;

		st_hex(b + off, n, hex);
		snprintf(line, sizeof(line), "%.100s %04zx: %s", what, off, hex);
		h(ST_LOG_DEBUG, module, line);
	}
	if (len == 0) {
		snprintf(line, sizeof(line), "%.100s (empty)", what);
		h(ST_LOG_DEBUG, module, line);
	}
}

int
st_file_read(const char *path, size_t max, uint8_t **buf, size_t *len, st_err *err)
{
	FILE *f = NULL;
	uint8_t *b = NULL;
	size_t n = 0, cap = 4096;
	int ret = -1, fd;
	struct stat sb;

	*buf = NULL;
	*len = 0;
	/* Opened without blocking: a FIFO that nobody writes to (dropped into
	 * a bundle, say) then reads as empty instead of hanging the reader.
	 * A terminal or another device (a bundle's symlink to one) is no file. */
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0) {
		st_err_errno(err, errno == ENOENT ? ST_E_NOTFOUND : ST_E_IO, errno, "%s", path);
		goto out;
	}
	if (fstat(fd, &sb) == 0 && !S_ISREG(sb.st_mode) && !S_ISFIFO(sb.st_mode)) {
		st_err_set(err, ST_E_IO, "%s: not a file but a %s", path, S_ISDIR(sb.st_mode) ? "folder" : "device or socket");
		close(fd);
		goto out;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0 || !(f = fdopen(fd, "rb"))) {
		st_err_errno(err, ST_E_IO, errno, "%s", path);
		close(fd);
		goto out;
	}
	for (;;) {
		size_t got;

		if (n + 1 >= cap) {
			uint8_t *nb;

			cap *= 2;
			if (!(nb = realloc(b, cap))) {
				st_err_set(err, ST_E_NOMEM, "%s: out of memory", path);
				goto out;
			}
			b = nb;
		} else if (!b && !(b = malloc(cap))) {
			st_err_set(err, ST_E_NOMEM, "%s: out of memory", path);
			goto out;
		}
		got = fread(b + n, 1, cap - n - 1, f);
		n += got;
		if (n > max) {
			st_err_set(err, ST_E_IO, "%s: larger than %zu bytes", path, max);
			goto out;
		}
		if (got == 0) {
			if (ferror(f)) {
				st_err_errno(err, ST_E_IO, errno, "%s: read", path);
				goto out;
			}
			break;
		}
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	b = NULL; /* owned by the caller now */
	ret = 0;
out:
	if (f)
		fclose(f);
	free(b);
	return ret;
}

static int
fsync_dir_of(const char *path, st_err *err)
{
	char *copy = strdup(path);
	int fd = -1, ret = -1;

	if (!copy)
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	if ((fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		st_err_errno(err, ST_E_IO, errno, "%s: open folder", path);
		goto out;
	}
	if (fsync(fd) < 0) {
		st_err_errno(err, ST_E_IO, errno, "%s: fsync folder", path);
		goto out;
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(copy);
	return ret;
}

static int
write_all(int fd, const char *path, const uint8_t *b, size_t len, st_err *err)
{
	size_t off = 0;

	while (off < len) {
		ssize_t w = write(fd, b + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return st_err_errno(err, ST_E_IO, errno, "%s: write", path);
		off += (size_t)w;
	}
	return 0;
}

/* A device or a pipe (--out /dev/stdout) is written as it is: renaming a
 * file over it would replace the device node itself. */
static int
write_special(const char *path, const uint8_t *b, size_t len, st_err *err)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ret;

	if (fd < 0)
		return st_err_errno(err, ST_E_IO, errno, "%s: open", path);
	ret = write_all(fd, path, b, len, err);
	close(fd);
	return ret;
}

static int
write_file(const char *path, const void *p, size_t len, unsigned mode, int durable, st_err *err)
{
	char tmp[4096];
	struct stat sb;
	int fd = -1, ret = -1;

	if (stat(path, &sb) == 0 && (S_ISCHR(sb.st_mode) || S_ISFIFO(sb.st_mode)))
		return write_special(path, p, len, err);
	if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
		return st_err_set(err, ST_E_IO, "%s: not a file (a folder?): give the path of a file to write", path);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= sizeof(tmp))
		return st_err_set(err, ST_E_IO, "%s: path too long", path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)) < 0) {
		st_err_errno(err, ST_E_IO, errno, "%s: create", tmp);
		goto out;
	}
	if (write_all(fd, tmp, p, len, err) < 0)
		goto out;
	if (durable && fsync(fd) < 0) {
		st_err_errno(err, ST_E_IO, errno, "%s: fsync", tmp);
		goto out;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, path) < 0) {
		st_err_errno(err, ST_E_IO, errno, "%s: rename", path);
		goto out;
	}
	ret = durable ? fsync_dir_of(path, err) : 0;
out:
	if (fd >= 0)
		close(fd);
	if (ret < 0)
		unlink(tmp);
	return ret;
}

int
st_file_write_atomic(const char *path, const void *p, size_t len, unsigned mode, st_err *err)
{
	return write_file(path, p, len, mode, 1, err);
}

int
st_file_write_replace(const char *path, const void *p, size_t len, unsigned mode, st_err *err)
{
	return write_file(path, p, len, mode, 0, err);
}

/* NAME.tmp.PID, as write_file names it: the PID of a process that has
 * ended, not ours. */
static int
stale_tmp(const char *name)
{
	const char *dot = strrchr(name, '.');
	char *end;
	long pid;

	if (!dot || dot - name < 5 || memcmp(dot - 4, ".tmp", 4) != 0 || dot[1] < '1' || dot[1] > '9')
		return 0;
	errno = 0;
	pid = strtol(dot + 1, &end, 10);
	if (*end || errno || pid <= 0 || pid != (pid_t)pid || pid == (long)getpid())
		return 0;
	return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

int
st_dir_remove_stale_tmp(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	struct stat sb;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		if (!stale_tmp(e->d_name) || fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(sb.st_mode))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0)
			n++;
		else
			st_log("util", "%s/%s: cannot remove a stale temporary file: %s", dir, e->d_name, strerror(errno));
	}
	closedir(d);
	return n;
}

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void
sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void
st_sha256(const void *p, size_t len, uint8_t out[ST_SHA256_LEN])
{
	unsigned int n = ST_SHA256_LEN;

	pthread_once(&sha256_once, sha256_fetch);
	if (sha256_md && EVP_Digest(p, len, out, &n, sha256_md, NULL))
		return;
	/* EVP_Digest with SHA-256 cannot fail short of memory exhaustion inside
	 * OpenSSL; on that failure the output is zeroed so nothing matches. */
	n = ST_SHA256_LEN;
	if (!EVP_Digest(p, len, out, &n, EVP_sha256(), NULL))
		memset(out, 0, ST_SHA256_LEN);
}

void
st_sha256_hex(const void *p, size_t len, char out[ST_SHA256_HEX_LEN + 1])
{
	uint8_t h[ST_SHA256_LEN];

	st_sha256(p, len, h);
	st_hex(h, sizeof(h), out);
}

void
st_hex(const uint8_t *p, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * len] = '\0';
}

void
st_wipe(void *p, size_t len)
{
	if (p && len)
		OPENSSL_cleanse(p, len);
}

uint64_t
st_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void
st_time_format(time_t t, char *out, size_t cap)
{
	struct tm tm;

	if (!cap)
		return;
	if (!gmtime_r(&t, &tm) || !strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
		out[0] = '\0';
}

int
st_time_parse(const char *s, time_t *out)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	if (!s || !(end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)))
		return -1;
	if (*end == '.')
		end += 1 + strspn(end + 1, "0123456789");
	if (strcmp(end, "Z") != 0)
		return -1;
	*out = timegm(&tm);
	return 0;
}

int
st_b64_decode(const char *b64, uint8_t **out, size_t *len)
{
	size_t n = strlen(b64);
	int l;

	*out = NULL;
	if (n > INT_MAX || n % 4 || !(*out = malloc(n + 1)))
		return -1;
	if ((l = EVP_DecodeBlock(*out, (const unsigned char *)b64, (int)n)) < 0) {
		free(*out);
		*out = NULL;
		return -1;
	}
	while (n > 0 && b64[n - 1] == '=') { /* EVP_DecodeBlock counts padding as zero bytes */
		l--;
		n--;
	}
	*len = (size_t)l;
	return 0;
}
