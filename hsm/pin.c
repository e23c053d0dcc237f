/* PIN sources: an environment variable, a private file, or the program's
 * prompt (libhsm never opens a terminal itself).  Never argv.  Every
 * buffer that held a PIN is wiped before it is freed or goes out of scope. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hsm-int.h"

/* Keep the first line of buf (len bytes) as the PIN: strip "\n" or "\r\n". */
static int
pin_take_line(const char *buf, size_t len, const char *where, char pin[HSM_PIN_MAX], st_err *err)
{
	size_t n = 0;

	while (n < len && buf[n] != '\n' && buf[n] != '\0')
		n++;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (n == 0)
		return st_err_set(err, ST_E_CONFIG, "%s: the PIN is empty", where);
	if (n >= HSM_PIN_MAX)
		return st_err_set(err, ST_E_CONFIG, "%s: the PIN is longer than %d bytes", where, HSM_PIN_MAX - 1);
	memcpy(pin, buf, n);
	pin[n] = '\0';
	return 0;
}

static int
pin_from_env(const char *name, char pin[HSM_PIN_MAX], st_err *err)
{
	const char *v;
	char where[128];

	if (!name || !*name)
		name = HSM_PIN_ENV_DEFAULT;
	v = getenv(name);
	if (!v || !*v)
		return st_err_set(err, ST_E_CONFIG,
		    "environment variable %s is %s: set it to the token's user PIN, or use a PIN file or the prompt", name,
		    v ? "empty" : "not set");
	snprintf(where, sizeof(where), "environment variable %s", name);
	if (pin_take_line(v, strlen(v), where, pin, err) < 0)
		return -1;
	/* Read once: the value is wiped where it lies (for the initial
	 * environment that is the memory /proc/PID/environ shows) and the
	 * variable is removed, so the PIN does not stay readable for the
	 * whole shift. */
	st_wipe((char *)v, strlen(v));
	if (unsetenv(name) < 0)
		return st_err_errno(err, ST_E_CONFIG, errno, "environment variable %s: unsetenv", name);
	return 0;
}

static int
pin_from_file(const char *path, char pin[HSM_PIN_MAX], st_err *err)
{
	char buf[HSM_PIN_MAX + 2];
	struct stat st;
	size_t len = 0;
	int fd = -1, ret = -1;

	if (!path || !*path)
		return st_err_set(err, ST_E_CONFIG, "PIN file: no path given");
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY)) < 0) {
		st_err_errno(err, ST_E_CONFIG, errno, "PIN file %s", path);
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		st_err_errno(err, ST_E_CONFIG, errno, "PIN file %s", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		st_err_set(err, ST_E_CONFIG, "PIN file %s is not a regular file", path);
		goto out;
	}
	if (st.st_uid != geteuid()) {
		st_err_set(err, ST_E_CONFIG,
		    "PIN file %s is owned by uid %ld, not by the user running station (uid %ld): chown it",
		    path, (long)st.st_uid, (long)geteuid());
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		st_err_set(err, ST_E_CONFIG,
		    "PIN file %s has mode %04o: it must be 0600 or stricter (chmod 600 %s)",
		    path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	while (len < sizeof(buf)) {
		ssize_t r = read(fd, buf + len, sizeof(buf) - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			st_err_errno(err, ST_E_CONFIG, errno, "PIN file %s: read", path);
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	{
		char where[512];

		snprintf(where, sizeof(where), "PIN file %s", path);
		ret = pin_take_line(buf, len, where, pin, err);
	}
out:
	st_wipe(buf, sizeof(buf));
	if (fd >= 0)
		close(fd);
	return ret;
}

/* The program asks (libhsm never talks to the user); what it answers is
 * held to the same rules as a file's first line. */
static int
pin_from_prompt(const hsm_pin_source *src, const char *token, char pin[HSM_PIN_MAX], st_err *err)
{
	char buf[HSM_PIN_MAX];
	int ret;

	if (!src->prompt)
		return st_err_set(err, ST_E_CONFIG,
		    "no way to ask for the PIN of token \"%s\" here (this program cannot prompt): set %s or use a PIN file",
		    token ? token : "?", HSM_PIN_ENV_DEFAULT);
	memset(buf, 0, sizeof(buf));
	if (src->prompt(src->prompt_arg, token ? token : "?", buf, err) != 0)
		ret = -1;
	else if (memchr(buf, '\0', sizeof(buf)) == NULL)
		ret = st_err_set(err, ST_E_CONFIG, "PIN prompt: the answer is longer than %d bytes", HSM_PIN_MAX - 1);
	else
		ret = pin_take_line(buf, strlen(buf), "PIN prompt", pin, err);
	st_wipe(buf, sizeof(buf));
	return ret;
}

int
hsm_pin_read(const hsm_pin_source *src, const char *token, char pin[HSM_PIN_MAX], st_err *err)
{
	int ret;

	memset(pin, 0, HSM_PIN_MAX);
	if (!src)
		ret = pin_from_env(NULL, pin, err);
	else if (src->kind == HSM_PIN_ENV)
		ret = pin_from_env(src->name, pin, err);
	else if (src->kind == HSM_PIN_FILE)
		ret = pin_from_file(src->name, pin, err);
	else if (src->kind == HSM_PIN_PROMPT)
		ret = pin_from_prompt(src, token, pin, err);
	else
		ret = st_err_set(err, ST_E_CONFIG, "unknown PIN source %d", src->kind);
	if (ret < 0)
		st_wipe(pin, HSM_PIN_MAX);
	return ret;
}
