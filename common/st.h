/* common: the few things every station library shares — an error object that
 * carries context, a bounds-checked buffer reader and writer, a debug log that
 * is off by default, and small file/digest helpers.  No library prints; they
 * fill a st_err and the program decides what the operator sees. */
#ifndef ST_H
#define ST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define ST_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* ---- errors ---------------------------------------------------------- */

/* Error categories: what a caller may want to branch on.  The message says
 * the rest, prefixed by each caller with what it was doing. */
enum st_code {
	ST_OK = 0,
	ST_E_IO,           /* a read/write/open failed */
	ST_E_TIMEOUT,      /* no answer in time */
	ST_E_DISCONNECTED, /* the peer or device went away */
	ST_E_PROTO,        /* malformed or unexpected bytes */
	ST_E_REMOTE,       /* the jig answered with an error frame */
	ST_E_CONFIG,       /* bad configuration: recipe, PIN, key label, URI */
	ST_E_CRYPTO,       /* a cryptographic operation failed */
	ST_E_VERIFY,       /* a signature, chain or binding did not verify */
	ST_E_STATE,        /* the operation is not allowed in this state */
	ST_E_NOTFOUND,     /* the thing asked for does not exist */
	ST_E_NOMEM,
	ST_E_QUOTA,        /* issuance quota exhausted */
	ST_E_INTERNAL,
};

#define ST_ERR_MSG_MAX 1024

typedef struct st_err {
	int code;   /* enum st_code; for ST_E_REMOTE see .remote */
	int remote; /* the jig's error code when code == ST_E_REMOTE */
	int sys;    /* the errno behind it (st_err_errno), else 0: ENOSPC is disk full */
	char msg[ST_ERR_MSG_MAX];
} st_err;

/* Set the error (err may be NULL) and return -1, so callers can write
 * `return st_err_set(err, ST_E_IO, "...")`. */
int st_err_set(st_err *err, int code, const char *fmt, ...) ST_PRINTF(3, 4);
/* Prefix the existing message with context: "ctx: old message".  Returns -1. */
int st_err_prefix(st_err *err, const char *fmt, ...) ST_PRINTF(2, 3);
/* Like st_err_set, appending the OpenSSL error queue (and clearing it). */
int st_err_openssl(st_err *err, int code, const char *fmt, ...) ST_PRINTF(3, 4);
/* Like st_err_set, appending strerror(errnum). */
int st_err_errno(st_err *err, int code, int errnum, const char *fmt, ...) ST_PRINTF(4, 5);
void st_err_clear(st_err *err);
const char *st_code_name(int code);

/* ---- bounds-checked reading ------------------------------------------ */

/* Every read from an untrusted buffer goes through st_rd_take(); once a
 * read fails the reader stays failed, so a decoder may check once at the end. */
typedef struct st_rd {
	const uint8_t *p;
	size_t len;
	size_t off;
	int bad;
} st_rd;

void st_rd_init(st_rd *rd, const void *p, size_t len);
const uint8_t *st_rd_take(st_rd *rd, size_t n); /* NULL if fewer than n bytes remain */
int st_rd_u8(st_rd *rd, uint8_t *v);
int st_rd_u16(st_rd *rd, uint16_t *v); /* big-endian */
int st_rd_u32(st_rd *rd, uint32_t *v); /* big-endian */
/* A u16 big-endian length followed by that many bytes (not copied). */
int st_rd_lv16(st_rd *rd, const uint8_t **p, size_t *len);
size_t st_rd_left(const st_rd *rd);
/* 0 when every byte was consumed and no read failed. */
int st_rd_done(const st_rd *rd);

/* ---- bounds-checked writing into a caller's buffer ------------------- */

typedef struct st_wr {
	uint8_t *p;
	size_t cap;
	size_t len;
	int bad; /* set when a write did not fit */
} st_wr;

void st_wr_init(st_wr *wr, void *p, size_t cap);
uint8_t *st_wr_reserve(st_wr *wr, size_t n); /* NULL (and bad) if it does not fit */
int st_wr_u8(st_wr *wr, uint8_t v);
int st_wr_u16(st_wr *wr, uint16_t v);
int st_wr_u32(st_wr *wr, uint32_t v);
int st_wr_bytes(st_wr *wr, const void *p, size_t n);
int st_wr_lv16(st_wr *wr, const void *p, size_t n); /* fails if n > 0xffff */

/* ---- debug log ----------------------------------------------------------
 * Libraries call st_log(); where the lines go is the program's decision (as
 * libfido2's fido_set_log_handler): the handler gets each formatted line
 * with the module that wrote it.  With no handler (the default) nothing is
 * logged.  The programs call st_log_from_env(), which installs
 * st_log_stderr when STATION_DEBUG is set; a test or a service installs its
 * own.  Set the handler before starting threads; it may be called from any
 * thread, so it must be thread-safe.  Never log secrets. */

/* Levels are syslog's priorities (RFC 5424), so they pass to journald as is. */
enum st_log_level {
	ST_LOG_ERR = 3,
	ST_LOG_WARNING = 4,
	ST_LOG_NOTICE = 5,
	ST_LOG_INFO = 6,
	ST_LOG_DEBUG = 7,
};
#define ST_LOG_LINE_MAX 2048 /* a longer log line is cut */
typedef void st_log_handler(int level, const char *module, const char *line);
void st_log_set_handler(st_log_handler *h); /* NULL: logging off */
/* One line on stderr: "2026-12-02T01:02:03.456Z debug [module] line" (UTC,
 * milliseconds); under systemd (JOURNAL_STREAM names stderr) "<7>[module]
 * line" instead, so journald keeps the level and adds its own time. */
void st_log_stderr(int level, const char *module, const char *line);
/* The level's name ("error", "warning", "notice", "info", "debug"). */
const char *st_log_level_name(int level);
/* st_log_stderr when STATION_DEBUG is set and not "0"; otherwise no change. */
void st_log_from_env(void);
int st_log_enabled(void); /* a handler is set */
/* A debug line (st_logl at ST_LOG_DEBUG). */
void st_log(const char *module, const char *fmt, ...) ST_PRINTF(2, 3);
void st_logl(int level, const char *module, const char *fmt, ...) ST_PRINTF(3, 4);
void st_log_hex(const char *module, const char *what, const void *p, size_t len);

/* ---- helpers ---------------------------------------------------------- */

/* Read a whole file (at most max bytes) into a fresh buffer; *buf is
 * NUL-terminated one past *len for convenience.  Free with free(). */
int st_file_read(const char *path, size_t max, uint8_t **buf, size_t *len, st_err *err);
/* Write a whole file via a temporary in the same folder, fsync, rename,
 * fsync the folder: the file is either old or complete, never torn.  A
 * character device or a FIFO at path (/dev/stdout) is written directly. */
int st_file_write_atomic(const char *path, const void *p, size_t len, unsigned mode, st_err *err);
/* The same without fsync: readers never see a torn file, but a power loss
 * may lose it.  For copies of data that is durable elsewhere. */
int st_file_write_replace(const char *path, const void *p, size_t len, unsigned mode, st_err *err);
/* Remove the temporaries (NAME.tmp.PID) those two leave in dir when a
 * process dies before its rename, those of processes that no longer run.
 * Returns how many were removed.  Only for a folder whose writers the
 * caller excludes (the journal's lock), so that no live writer's file
 * goes. */
int st_dir_remove_stale_tmp(const char *dir);
#define ST_SHA256_LEN 32
#define ST_SHA256_HEX_LEN (2 * ST_SHA256_LEN) /* characters, without the NUL */
/* A certificate serial (RFC 5280: at most 20 bytes) as hex: characters,
 * without the NUL. */
#define ST_CERT_SERIAL_HEX_LEN 40
/* SHA-256 (the algorithm is fetched once per process: an implicit fetch on
 * every call costs as much as hashing a journal record). */
void st_sha256(const void *p, size_t len, uint8_t out[ST_SHA256_LEN]);
/* The same, as lower-case hex. */
void st_sha256_hex(const void *p, size_t len, char out[ST_SHA256_HEX_LEN + 1]);
/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void st_hex(const uint8_t *p, size_t len, char *out);
/* Wipe a buffer that held a secret; not optimised away. */
void st_wipe(void *p, size_t len);
/* Monotonic milliseconds. */
uint64_t st_now_ms(void);
/* Standard base64 (RFC 4648, with padding) into *out (malloc'd). */
int st_b64_decode(const char *b64, uint8_t **out, size_t *len);
/* UTC "2026-11-21T09:43:30Z" into out (at least 21 bytes). */
void st_time_format(time_t t, char *out, size_t cap);
/* The seconds of an RFC 3339 UTC time as records spell it
 * ("2026-11-21T09:43:30.123Z"; fraction optional, "Z" required). */
int st_time_parse(const char *s, time_t *out);

#endif
