/* What the commands share, said once: loading a recipe and showing why it
 * does not load, its signature gate, who the operator is, and where the HSM
 * user PIN comes from (the same options on every command that opens the
 * HSM, and the terminal prompt libhsm calls back into). */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"

void
cli_recipe_errors_print(const recipe_errors *errs)
{
	size_t i, n = recipe_errors_count(errs);

	for (i = 0; i < n; i++)
		fprintf(stderr, "%s\n", recipe_errors_get(errs, i));
}

recipe *
cli_recipe_load(const char *cmd, const char *path)
{
	recipe_errors *errs = recipe_errors_new();
	recipe *r = NULL;
	size_t n;

	if (!errs) {
		fprintf(stderr, "station %s: out of memory\n", cmd);
		return NULL;
	}
	if (!(r = recipe_load(path, NULL, errs))) {
		n = recipe_errors_count(errs);
		cli_recipe_errors_print(errs);
		fprintf(stderr, "station %s: recipe %s has %zu error%s: fix %s ('station recipe check %s')\n", cmd, path,
		    n, n == 1 ? "" : "s", n == 1 ? "it" : "them", path);
	}
	recipe_errors_free(errs);
	return r;
}

int
cli_pin_option(cli_pin *p, const char *cmd, int c, const char *arg)
{
	if (c != CLI_O_PIN_ENV && c != CLI_O_PIN_FILE && c != CLI_O_PIN_PROMPT)
		return 0;
	if (p->given++) {
		fprintf(stderr, "station %s: give at most one of --pin-env, --pin-file, --pin-prompt\n", cmd);
		return -1;
	}
	memset(&p->src, 0, sizeof(p->src));
	p->src.kind = c == CLI_O_PIN_ENV ? HSM_PIN_ENV : c == CLI_O_PIN_FILE ? HSM_PIN_FILE : HSM_PIN_PROMPT;
	p->src.name = c == CLI_O_PIN_PROMPT ? NULL : arg;
	return 1;
}

void
cli_pin_source(const cli_pin *p, const recipe *r, hsm_pin_source *out)
{
	memset(out, 0, sizeof(*out));
	if (p && p->given) {
		*out = p->src;
	} else if (r && r->hsm.pin_source == RECIPE_PIN_FILE) {
		out->kind = HSM_PIN_FILE;
		out->name = r->hsm.pin_file;
	} else if (r && r->hsm.pin_source == RECIPE_PIN_PROMPT) {
		out->kind = HSM_PIN_PROMPT;
	} else {
		out->kind = HSM_PIN_ENV;
		out->name = r ? r->hsm.pin_env : NULL;
	}
	if (out->kind == HSM_PIN_PROMPT)
		out->prompt = cli_pin_prompt;
}

int
cli_pin_prompt(void *arg, const char *token, char pin[HSM_PIN_MAX], st_err *err)
{
	char prompt[160], label[64];
	struct termios old, noecho;
	size_t len = 0, i;
	int fd, restore = 0, ret = -1;

	(void)arg;
	/* The label comes from a recipe or a flag: no control byte reaches the terminal. */
	for (i = 0; token[i] && i < sizeof(label) - 1; i++)
		label[i] = (unsigned char)token[i] < 0x20 || token[i] == 0x7f ? '?' : token[i];
	label[i] = '\0';
	if ((fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)) < 0)
		return st_err_errno(err, ST_E_CONFIG, errno,
		    "no terminal to ask for the PIN of token \"%s\" (use --pin-env, --pin-file or set %s)", label,
		    HSM_PIN_ENV_DEFAULT);
	if (tcgetattr(fd, &old) < 0) {
		st_err_errno(err, ST_E_CONFIG, errno, "PIN prompt: /dev/tty");
		goto out;
	}
	noecho = old;
	noecho.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
	noecho.c_lflag |= ICANON;
	if (tcsetattr(fd, TCSAFLUSH, &noecho) < 0) {
		st_err_errno(err, ST_E_CONFIG, errno, "PIN prompt: cannot turn off echo");
		goto out;
	}
	restore = 1;
	snprintf(prompt, sizeof(prompt), "User PIN for token \"%s\": ", label);
	if (write(fd, prompt, strlen(prompt)) < 0) {
		st_err_errno(err, ST_E_CONFIG, errno, "PIN prompt: write");
		goto out;
	}
	/* Canonical mode: one read returns at most one line. */
	while (len < HSM_PIN_MAX - 1) {
		ssize_t r = read(fd, pin + len, HSM_PIN_MAX - 1 - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			st_err_errno(err, ST_E_CONFIG, errno, "PIN prompt: read");
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (pin[len - 1] == '\n')
			break;
	}
	if (len == HSM_PIN_MAX - 1 && pin[len - 1] != '\n') {
		st_err_set(err, ST_E_CONFIG, "PIN prompt: the PIN is longer than %d bytes", HSM_PIN_MAX - 2);
		goto out;
	}
	pin[len] = '\0';
	ret = 0;
out:
	if (restore) {
		tcsetattr(fd, TCSAFLUSH, &old);
		if (write(fd, "\n", 1) < 0) {
			/* nothing to do: the PIN was read or the error is already set */
		}
	}
	if (ret < 0)
		st_wipe(pin, HSM_PIN_MAX);
	close(fd);
	return ret;
}

const char *
cli_operator(const char *given)
{
	static char uid_name[32];
	const char *user = getenv("USER");
	struct passwd *pw;

	if (given)
		return given;
	if (user && *user)
		return user;
	if ((pw = getpwuid(getuid())) && pw->pw_name && *pw->pw_name)
		return pw->pw_name;
	snprintf(uid_name, sizeof(uid_name), "uid %u", (unsigned)getuid());
	return uid_name;
}

static void
warn_unchecked(const char *cmd, const char *path)
{
	fprintf(stderr,
	    "station %s: warning: %s.sig is not checked: no recipe signers are configured (set recipe_signers in "
	    "the station config, or pass --trust FILE.pem; --require-signed refuses unsigned recipes)\n",
	    cmd, path);
}

int
cli_recipe_policy(const char *cmd, const recipe *r, int require_signed, const char *trust_pem)
{
	char signer[512];
	int unchecked;
	st_err err;

	if (station_recipe_policy(r, require_signed, trust_pem, signer, sizeof(signer), &unchecked, &err) < 0) {
		fprintf(stderr, "station %s: %s\n", cmd, err.msg);
		return -1;
	}
	if (unchecked)
		warn_unchecked(cmd, r->path);
	return 0;
}

void
cli_station_warnings(const char *cmd, const station *st)
{
	if (st->recipe_sig_unchecked)
		warn_unchecked(cmd, st->rcp->path);
}
