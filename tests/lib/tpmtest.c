#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "tpmtest.h"

static int
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	int ok;

	if (!f)
		return -1;
	ok = fputs(text, f) >= 0;
	return fclose(f) == 0 && ok ? 0 : -1;
}

int
tu_tpm_ca_init(tu_tpm_ca *ca, const char *dir)
{
	char path[700], text[2400];

	memset(ca, 0, sizeof(*ca));
	snprintf(ca->dir, sizeof(ca->dir), "%s", dir);
	snprintf(ca->root_pem, sizeof(ca->root_pem), "%s/swtpm-localca-rootca-cert.pem", dir);
	snprintf(ca->issuer_pem, sizeof(ca->issuer_pem), "%s/issuercert.pem", dir);
	snprintf(ca->setup_conf, sizeof(ca->setup_conf), "%s/swtpm_setup.conf", dir);
	/* statedir, signingkey, issuercert and certserial all here: nothing of
	 * the system's /var/lib/swtpm-localca is read or written. */
	snprintf(text, sizeof(text), "statedir = %s\nsigningkey = %s/signkey.pem\nissuercert = %s\ncertserial = %s/certserial\n",
	    dir, dir, ca->issuer_pem, dir);
	snprintf(path, sizeof(path), "%s/swtpm-localca.conf", dir);
	if (write_file(path, text) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/swtpm-localca.options", dir);
	if (write_file(path, "--platform-manufacturer station-test\n--platform-version 2.1\n--platform-model swtpm\n") < 0)
		return -1;
	snprintf(text, sizeof(text), "create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = %s/swtpm-localca.conf\n"
	    "create_certs_tool_options = %s/swtpm-localca.options\nactive_pcr_banks = sha256\n", dir, dir);
	return write_file(ca->setup_conf, text);
}

int
tu_tpm_manufacture(const tu_tpm_ca *ca, const char *statedir, char **log)
{
	char logfile[700], conf[700], state[700];
	char *argv[] = { (char *)"swtpm_setup", (char *)"--tpm2", (char *)"--tpmstate", state, (char *)"--create-ek-cert",
		(char *)"--create-platform-cert", (char *)"--lock-nvram", (char *)"--config", conf, (char *)"--logfile", logfile,
		NULL };
	int rc;

	if (log)
		*log = NULL;
	if (mkdir(statedir, 0700) < 0 && errno != EEXIST)
		return -1;
	snprintf(state, sizeof(state), "%s", statedir);
	snprintf(conf, sizeof(conf), "%s", ca->setup_conf);
	snprintf(logfile, sizeof(logfile), "%s/swtpm_setup.log", statedir);
	rc = tu_run(argv, NULL);
	if (rc != 0 && log)
		*log = tu_slurp(logfile, NULL);
	return rc == 0 ? 0 : -1;
}

/* Bind a loopback port (0: the kernel's choice); returns the port and
 * leaves the socket in *fd, or -1. */
static int
hold_port(int want, int *fd)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)want),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int port = -1;

	if ((*fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	if (bind(*fd, (struct sockaddr *)&a, sizeof(a)) == 0 && getsockname(*fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (port < 0)
		close(*fd);
	return port;
}

/* Two consecutive free loopback ports: the swtpm TCTI expects the control
 * channel at port + 1. */
static int
free_port_pair(void)
{
	int i, fd1, fd2, port;

	for (i = 0; i < 50; i++) {
		if ((port = hold_port(0, &fd1)) < 0)
			return -1;
		if (port < 65535 && hold_port(port + 1, &fd2) == port + 1) {
			close(fd2);
			close(fd1);
			return port;
		}
		close(fd1);
	}
	return -1;
}

static int
can_connect(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	if (fd < 0)
		return 0;
	ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

static pid_t
spawn(const tu_swtpm *t)
{
	char state[600], server[80], ctrl[80], logopt[640];
	pid_t parent = getpid(), pid;

	snprintf(state, sizeof(state), "dir=%s", t->statedir);
	snprintf(server, sizeof(server), "type=tcp,port=%d,bindaddr=127.0.0.1", t->port);
	snprintf(ctrl, sizeof(ctrl), "type=tcp,port=%d,bindaddr=127.0.0.1", t->ctrl_port);
	snprintf(logopt, sizeof(logopt), "file=%s/swtpm.log", t->statedir);
	if ((pid = fork()) != 0)
		return pid;
	/* A test that dies must not leave TPMs running. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	execlp(getenv("SWTPM") ? getenv("SWTPM") : "swtpm", "swtpm", "socket", "--tpm2", "--tpmstate", state,
	    "--server", server, "--ctrl", ctrl, "--flags", "not-need-init,startup-clear", "--log", logopt, (char *)NULL);
	_exit(127);
}

int
tu_swtpm_start(tu_swtpm *t, const char *statedir)
{
	int attempt, i, status;

	memset(t, 0, sizeof(*t));
	snprintf(t->statedir, sizeof(t->statedir), "%s", statedir);
	/* The ports are free when chosen; another process may take one before
	 * swtpm binds it, so a swtpm that exits at once is tried again. */
	for (attempt = 0; attempt < 5; attempt++) {
		if ((t->port = free_port_pair()) < 0)
			continue;
		t->ctrl_port = t->port + 1;
		if ((t->pid = spawn(t)) < 0)
			return -1;
		for (i = 0; i < 500; i++) { /* 5 s */
			if (waitpid(t->pid, &status, WNOHANG) == t->pid) {
				t->pid = 0;
				break;
			}
			if (can_connect(t->port)) {
				snprintf(t->tcti, sizeof(t->tcti), "swtpm:host=127.0.0.1,port=%d", t->port);
				return 0;
			}
			nanosleep(&(struct timespec){ 0, 10000000L }, NULL);
		}
		if (t->pid > 0) {
			tu_swtpm_stop(t);
			return -1; /* running but never listening: not a port race */
		}
	}
	return -1;
}

/* SIGTERM, then SIGKILL after 2 s; reaped; a no-op when not running. */
static void
stop_child(pid_t *pid)
{
	int i, status;

	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	for (i = 0; i < 200; i++) {
		if (waitpid(*pid, &status, WNOHANG) == *pid) {
			*pid = 0;
			return;
		}
		nanosleep(&(struct timespec){ 0, 10000000L }, NULL);
	}
	kill(*pid, SIGKILL);
	waitpid(*pid, &status, 0);
	*pid = 0;
}

void
tu_swtpm_stop(tu_swtpm *t)
{
	stop_child(&t->pid);
}

pid_t
tu_tpmdut_start(const char *dir, char *uri, size_t uri_cap, const char *const *args, char *log, size_t log_cap)
{
	const char *exe = getenv("TPMDUT_EXE");
	char portfile[600], logfile[620], *text = NULL, *argv[80];
	size_t n = 0, i;
	pid_t parent = getpid(), pid;
	int fd;

	if (!exe)
		return -1;
	snprintf(portfile, sizeof(portfile), "%s/tpmdut-XXXXXX", dir);
	if ((fd = mkstemp(portfile)) < 0)
		return -1;
	close(fd);
	unlink(portfile);
	snprintf(logfile, sizeof(logfile), "%s.log", portfile);
	if (log)
		snprintf(log, log_cap, "%s", logfile);
	argv[n++] = (char *)exe;
	argv[n++] = (char *)"--port-file";
	argv[n++] = portfile;
	for (i = 0; args[i] && n + 1 < sizeof(argv) / sizeof(argv[0]); i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	if ((pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		int lfd = open(logfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (lfd >= 0) {
			dup2(lfd, 1);
			dup2(lfd, 2);
		}
		execv(exe, argv);
		_exit(127);
	}
	for (i = 0; i < 1000; i++) { /* 10 s */
		int status;

		if ((text = tu_slurp(portfile, NULL)) && *text)
			break;
		free(text);
		text = NULL;
		if (waitpid(pid, &status, WNOHANG) == pid)
			return -1;
		nanosleep(&(struct timespec){ 0, 10000000L }, NULL);
	}
	if (!text) {
		tu_tpmdut_stop(pid);
		return -1;
	}
	snprintf(uri, uri_cap, "%s", text);
	free(text);
	return pid;
}

void
tu_tpmdut_stop(pid_t pid)
{
	int status;

	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
}

/* fork + exec argv with its output in logfile; the child dies with us. */
static pid_t
spawn_logged(char *const argv[], const char *logfile)
{
	pid_t parent = getpid(), pid = fork();

	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	{
		int lfd = open(logfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (lfd >= 0) {
			dup2(lfd, 1);
			dup2(lfd, 2);
		}
	}
	execvp(argv[0], argv);
	_exit(127);
}

static int
can_connect_unix(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	int fd, ok;

	if (len >= sizeof(a.sun_path) || (fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
		return 0;
	memcpy(a.sun_path, path, len + 1);
	ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

int
tu_tabrmd_start(tu_tabrmd *t, const char *dir, const tu_swtpm *tpm)
{
	char addr[600], busopt[620], tcti[100], log[600];
	int i, rc = -1;

	memset(t, 0, sizeof(*t));
	snprintf(addr, sizeof(addr), "unix:path=%s/session-bus", dir);
	snprintf(busopt, sizeof(busopt), "--address=%s", addr);
	snprintf(log, sizeof(log), "%s/dbus-daemon.log", dir);
	{
		char *argv[] = { (char *)"dbus-daemon", (char *)"--session", (char *)"--nofork", (char *)"--nopidfile",
			busopt, NULL };

		if ((t->bus = spawn_logged(argv, log)) < 0)
			return -1;
	}
	setenv("DBUS_SESSION_BUS_ADDRESS", addr, 1);
	/* tpm2-abrmd started before the bus listens stays up without its name:
	 * wait for the socket first. */
	for (i = 0; i < 1000 && !can_connect_unix(addr + strlen("unix:path=")); i++) /* 20 s */
		nanosleep(&(struct timespec){ 0, 20000000L }, NULL);
	snprintf(tcti, sizeof(tcti), "--tcti=%s", tpm->tcti);
	snprintf(log, sizeof(log), "%s/tpm2-abrmd.log", dir);
	for (i = 0; i < 1000 && rc != 0; i++) { /* 20 s, and as long as tpm2_getcap takes */
		char *argv[] = { (char *)"tpm2-abrmd", (char *)"--session", (char *)"--allow-root", (char *)"--flush-all",
			tcti, NULL };
		int status;

		if (i % 250 == 249) /* up, but not answering (no name on the bus?): again */
			stop_child(&t->rm);
		if (t->rm <= 0 && (t->rm = spawn_logged(argv, log)) < 0)
			break;
		nanosleep(&(struct timespec){ 0, 20000000L }, NULL);
		if (waitpid(t->rm, &status, WNOHANG) == t->rm)
			t->rm = 0;
		else
			rc = tu_sh("tpm2_getcap -T " TU_TABRMD_TCTI " properties-fixed >/dev/null 2>&1", NULL) == 0 ? 0 : -1;
	}
	if (rc != 0)
		tu_tabrmd_stop(t);
	return rc;
}

void
tu_tabrmd_stop(tu_tabrmd *t)
{
	stop_child(&t->rm);
	stop_child(&t->bus);
}
