#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <ftw.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>

#include "testutil.h"

char *
tu_tmpdir(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char *path = NULL;

	if (!base || !*base)
		base = "/tmp";
	if (asprintf(&path, "%s/station-%s-XXXXXX", base, tag) < 0)
		return NULL;
	if (!mkdtemp(path)) {
		free(path);
		return NULL;
	}
	return path;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void
tu_rmtree(const char *path)
{
	if (path && *path && strcmp(path, "/") != 0)
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *
tu_path(const char *dir, const char *name)
{
	char *p = NULL;

	ck_assert_int_ne(asprintf(&p, "%s/%s", dir, name), -1);
	return p;
}

char *
tu_src(const char *rel)
{
	const char *root = getenv("STATION_SOURCE_ROOT");
	char *p = NULL;

	if (asprintf(&p, "%s/%s", root ? root : ".", rel) < 0)
		return NULL;
	return p;
}

static int
collect(int fd, char **out)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	ssize_t n;

	if (!buf)
		return -1;
	while ((n = read(fd, buf + len, cap - len - 1)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		len += (size_t)n;
		if (len + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);

			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
	}
	buf[len] = '\0';
	if (out)
		*out = buf;
	else
		free(buf);
	return 0;
}

int
tu_run(char *const argv[], char **out)
{
	int fds[2], status = 0, rc;
	pid_t pid;

	if (out)
		*out = NULL;
	if (pipe(fds) < 0)
		return -1;
	if ((pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		close(fds[0]);
		close(fds[1]);
		execvp(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	collect(fds[0], out);
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	rc = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
	if (getenv("STATION_TEST_VERBOSE")) {
		int i;

		fprintf(stderr, "$");
		for (i = 0; argv[i]; i++)
			fprintf(stderr, " %s", argv[i]);
		fprintf(stderr, "  -> %d\n%s\n", rc, out && *out ? *out : "");
	}
	return rc;
}

int
tu_sh(const char *cmdline, char **out)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)cmdline, NULL };

	return tu_run(argv, out);
}

int
tu_run_pty(char *const argv[], const char *answer, char **out)
{
	char *buf = NULL;
	size_t len = 0, cap = 8192;
	int master = -1, status = 0, typed = 0;
	pid_t pid;

	*out = NULL;
	if (!(buf = malloc(cap)))
		return -1;
	buf[0] = '\0';
	if ((pid = forkpty(&master, NULL, NULL, NULL)) < 0) {
		free(buf);
		return -1;
	}
	if (pid == 0) {
		execvp(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	/* Type the answer once the question shows (echo is off by then);
	 * read until the child is gone (EIO). */
	for (;;) {
		ssize_t r;

		if (len + 1 == cap) {
			char *n = realloc(buf, cap * 2);

			if (!n)
				break;
			buf = n;
			cap *= 2;
		}
		if ((r = read(master, buf + len, cap - 1 - len)) < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		buf[len] = '\0';
		if (!typed && answer && strstr(buf, "\": ")) {
			typed = 1;
			if (write(master, answer, strlen(answer)) != (ssize_t)strlen(answer) || write(master, "\n", 1) != 1)
				break;
		}
	}
	close(master);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	*out = buf;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

int
tu_vshf(char **out, const char *prefix, const char *fmt, va_list ap)
{
	char *cmd = NULL, *full = NULL;
	int rc;

	ck_assert_int_ne(vasprintf(&cmd, fmt, ap), -1);
	ck_assert_int_ne(asprintf(&full, "%s%s", prefix ? prefix : "", cmd), -1);
	rc = tu_sh(full, out);
	free(full);
	free(cmd);
	return rc;
}

int
tu_shf(char **out, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = tu_vshf(out, NULL, fmt, ap);
	va_end(ap);
	return rc;
}

pid_t
tu_p11kit_server_start(const char *dir, const char *token)
{
	char *rt = NULL, *sock = NULL, *envf = NULL, *cmd = NULL, *out = NULL, *text, *p, *e;
	long pid = 0;
	int rc, i;

	ck_assert_int_ne(asprintf(&rt, "%s/p11kit-run", dir), -1);
	ck_assert_int_ne(asprintf(&sock, "%s/hsm.sock", rt), -1);
	ck_assert_int_ne(asprintf(&envf, "%s/p11kit-server.env", dir), -1);
	mkdir(rt, 0700);
	ck_assert_int_eq(chmod(rt, 0700), 0);
	unlink(sock);
	setenv("XDG_RUNTIME_DIR", rt, 1);
	/* Its output goes to a file: the detached server keeps the fds. */
	ck_assert_int_ne(asprintf(&cmd,
	    "p11-kit server --provider /usr/lib/softhsm/libsofthsm2.so -s -n '%s' 'pkcs11:token=%s' >'%s' 2>&1", sock,
	    token, envf), -1);
	rc = tu_sh(cmd, &out);
	text = tu_slurp(envf, NULL);
	ck_assert_msg(rc == 0 && text, "p11-kit server failed (%d): %s %s", rc, out ? out : "", text ? text : "");
	ck_assert_msg((p = strstr(text, "P11_KIT_SERVER_ADDRESS=")) != NULL, "p11-kit server said: %s", text);
	p += strlen("P11_KIT_SERVER_ADDRESS=");
	if ((e = strchr(p, ';')) != NULL)
		*e = '\0';
	setenv("P11_KIT_SERVER_ADDRESS", p, 1);
	if (e)
		*e = ';';
	ck_assert_msg((p = strstr(text, "P11_KIT_SERVER_PID=")) != NULL, "p11-kit server said: %s", text);
	pid = strtol(p + strlen("P11_KIT_SERVER_PID="), NULL, 10);
	ck_assert_msg(pid > 1, "p11-kit server said: %s", text);
	/* The detached server may not listen yet when its parent returns. */
	for (i = 0; i < 500; i++) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int fd = socket(AF_UNIX, SOCK_STREAM, 0), ok;

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
		ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		if (fd >= 0)
			close(fd);
		if (ok)
			break;
		usleep(10 * 1000);
	}
	ck_assert_msg(i < 500, "p11-kit server never listened on %s", sock);
	free(text);
	free(out);
	free(cmd);
	free(envf);
	free(sock);
	free(rt);
	return (pid_t)pid;
}

void
tu_p11kit_server_stop(pid_t pid)
{
	int i;

	if (pid <= 1)
		return;
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	for (i = 0; i < 100 && kill(pid, 0) == 0; i++)
		usleep(10 * 1000);
}

char *
tu_make_pki_alg(const char *inter_alg)
{
	char *dir = tu_tmpdir("pki");
	char *script = getenv("MAKE_TEST_PKI") ? strdup(getenv("MAKE_TEST_PKI")) : tu_src("fixtures/make-test-pki");
	char *out = NULL, *conf = NULL;
	char *argv[] = { script, dir, (char *)"--intermediate", (char *)inter_alg, NULL };
	int rc;

	ck_assert_ptr_nonnull(dir);
	if (!inter_alg)
		argv[2] = NULL;
	rc = tu_run(argv, &out);
	ck_assert_msg(rc == 0, "make-test-pki %s%s failed (%d): %s", inter_alg ? "--intermediate " : "",
	    inter_alg ? inter_alg : "", rc, out ? out : "");
	ck_assert_int_ne(asprintf(&conf, "%s/softhsm2.conf", dir), -1);
	setenv("SOFTHSM2_CONF", conf, 1);
	setenv("STATION_HSM_PIN", "123456", 1); /* test PIN, see fixtures/make-test-pki */
	setenv("STATION_AUTHORIZER_PIN", "654321", 1); /* the authorizer token's test PIN */
	free(conf);
	free(out);
	free(script);
	return dir;
}

char *
tu_make_pki(void)
{
	return tu_make_pki_alg(NULL);
}

const char *
tu_station_exe(void)
{
	const char *exe = getenv("STATION_EXE");

	ck_assert_msg(exe && *exe, "STATION_EXE is not set (run through meson test)");
	return exe;
}

int
tu_station(char **out, const char *arg, ...)
{
	char *argv[32];
	size_t n = 0;
	va_list ap;

	argv[n++] = (char *)tu_station_exe();
	va_start(ap, arg);
	for (; arg && n < 31; arg = va_arg(ap, const char *))
		argv[n++] = (char *)arg;
	va_end(ap);
	ck_assert_msg(!arg, "tu_station: more than 30 arguments");
	argv[n] = NULL;
	return tu_run(argv, out);
}

void
tu_cert_serial_hex(const X509 *x, char out[TU_SERIAL_HEX_MAX])
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;

	ck_assert_ptr_nonnull(hex);
	snprintf(out, TU_SERIAL_HEX_MAX, "%s", hex);
	OPENSSL_free(hex);
	BN_free(bn);
}

void
tu_der_serial_hex(const uint8_t *der, size_t len, char out[TU_SERIAL_HEX_MAX])
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);

	ck_assert_msg(x != NULL, "not a DER certificate (%zu bytes)", len);
	tu_cert_serial_hex(x, out);
	X509_free(x);
}

char *tu_pki;

void
tu_pki_setup(void)
{
	tu_pki = tu_make_pki();
}

void
tu_pki_teardown(void)
{
	tu_rmtree(tu_pki);
	free(tu_pki);
	tu_pki = NULL;
}

void
tu_promtool_check(const char *path)
{
	const char *promtool = getenv("PROMTOOL");
	char *out = NULL;
	int rc;

	ck_assert_msg(promtool && *promtool, "PROMTOOL is not set (meson test sets it; apt-get install prometheus)");
	rc = tu_shf(&out, "'%s' check metrics < '%s'", promtool, path);
	ck_assert_msg(rc == 0 && (!out || !*out), "promtool check metrics %s: exit %d\n%s", path, rc, out ? out : "");
	free(out);
}

Suite *
tu_pki_suite(const char *name, const char *tcase, int timeout, TCase **tc)
{
	Suite *s = suite_create(name);

	*tc = tcase_create(tcase);
	tcase_add_unchecked_fixture(*tc, tu_pki_setup, tu_pki_teardown);
	tcase_set_timeout(*tc, timeout);
	suite_add_tcase(s, *tc);
	return s;
}

char *
tu_slurp(const char *path, size_t *len)
{
	uint8_t *buf = NULL;
	size_t n = 0;

	if (st_file_read(path, 64u << 20, &buf, &n, NULL) < 0)
		return NULL;
	if (len)
		*len = n;
	return (char *)buf;
}

int
tu_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	st_log_from_env(); /* STATION_DEBUG=1: the libraries' log on stderr, as in the programs */
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

void
tu_asan_full_unwind(char **argv)
{
	const char *o = getenv("ASAN_OPTIONS");
	char *n = NULL;

	if (!o || strstr(o, "fast_unwind_on_malloc"))
		return;
	if (asprintf(&n, "%s:fast_unwind_on_malloc=0", o) < 0 || setenv("ASAN_OPTIONS", n, 1) < 0)
		return;
	free(n);
	execv("/proc/self/exe", argv);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

long
tu_proc_hwm_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

double
tu_median(double *v, size_t n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

unsigned
tu_bench_arg(const char *prog, const char *s, unsigned min, unsigned max)
{
	char *end = NULL;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || *s == '-' || v < min || v > max) {
		fprintf(stderr, "%s: expected a number %u..%u, got \"%s\"\n", prog, min, max, s);
		exit(2);
	}
	return (unsigned)v;
}

int
tu_run_bench(const char *name, const TTest *test)
{
	Suite *s = suite_create(name);
	TCase *tc = tcase_create("bench");
	SRunner *sr;
	int failed;

	signal(SIGPIPE, SIG_IGN); /* a child that goes away must not kill the benchmark */
	tcase_set_timeout(tc, 3600);
	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
