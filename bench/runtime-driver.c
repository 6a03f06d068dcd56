/*
 * Driver for bench/runtime.sh: create + start + wait-for-exit + delete of a
 * container whose process is /bin/true, alternating two OCI runtimes.
 *
 *   runtime-driver RUNS WARMUP BUNDLE ID_PREFIX RT_A ROOT_A RT_B ROOT_B
 *
 * One iteration with runtime R (state root S, fresh container id ID):
 *   t0  R --root S create --bundle BUNDLE --pid-file P ID   (waited for)
 *   t1  read P, pidfd_open(pid)
 *       R --root S start ID                                  (waited for)
 *   t2  poll(pidfd) until the container process has exited
 *   t3  reap it (we are a child subreaper, as conmon is), then
 *       R --root S delete ID                                 (waited for)
 *   t4
 * Phases create = t1-t0, start = t2-t1, wait = t3-t2, delete = t4-t3 and
 * total = t4-t0 are printed in ns, one CSV line per measured iteration:
 *   label,iter,create,start,wait,delete,total,exit_status
 * Every runtime invocation is a fork+exec from this process with stdio on
 * /dev/null (stderr to a file shown on failure), so both runtimes pay the
 * same overhead. Iteration i runs A then B when i is even, B then A when odd.
 * WARMUP iterations of each runtime are run first and not printed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static const char *bundle, *prefix, *errfile;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void show_err(void)
{
	char buf[4096];
	int fd = open(errfile, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n;
	while ((n = read(fd, buf, sizeof buf)) > 0)
		fwrite(buf, 1, (size_t)n, stderr);
	close(fd);
}

/* fork+exec argv, wait for it; returns its wait status. */
static int run(char *const argv[])
{
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(2);
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		int err = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (null < 0 || err < 0)
			_exit(126);
		dup2(null, 0);
		dup2(null, 1);
		dup2(err, 2);
		execv(argv[0], argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			perror("waitpid");
			exit(2);
		}
	return st;
}

static void must(char *const argv[], const char *what)
{
	int st = run(argv);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "runtime-driver: %s %s failed (status 0x%x):\n", argv[0], what, st);
		show_err();
		exit(1);
	}
}

struct rt {
	const char *label, *path, *root;
};

static void one(const struct rt *r, int iter, int print)
{
	char id[128], pidfile[4096];
	if (iter < 0)
		snprintf(id, sizeof id, "%s-%s-w%d", prefix, r->label, -1 - iter);
	else
		snprintf(id, sizeof id, "%s-%s-%d", prefix, r->label, iter);
	snprintf(pidfile, sizeof pidfile, "%s/%s.pid", r->root, id);
	char *create[] = {(char *)r->path, "--root", (char *)r->root, "create", "--bundle", (char *)bundle,
			  "--pid-file", pidfile, id, NULL};
	char *start[] = {(char *)r->path, "--root", (char *)r->root, "start", id, NULL};
	char *del[] = {(char *)r->path, "--root", (char *)r->root, "delete", id, NULL};

	uint64_t t0 = now_ns();
	must(create, "create");
	uint64_t t1 = now_ns();

	char buf[64] = {0};
	int fd = open(pidfile, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, buf, sizeof buf - 1) <= 0) {
		fprintf(stderr, "runtime-driver: %s: no pid file %s\n", r->path, pidfile);
		exit(1);
	}
	close(fd);
	pid_t pid = (pid_t)strtol(buf, NULL, 10);
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0) {
		fprintf(stderr, "runtime-driver: pidfd_open(%d): %s\n", pid, strerror(errno));
		exit(1);
	}

	must(start, "start");
	uint64_t t2 = now_ns();

	struct pollfd p = {.fd = pfd, .events = POLLIN};
	int n;
	while ((n = poll(&p, 1, 30000)) < 0 && errno == EINTR)
		;
	if (n != 1) {
		fprintf(stderr, "runtime-driver: %s: container process %d did not exit within 30 s\n", r->path, pid);
		exit(1);
	}
	uint64_t t3 = now_ns();
	close(pfd);

	/* Reap the container process (reparented to us, the subreaper) and any
	 * other orphan, without blocking if the runtime kept it elsewhere. */
	int st, status = -1;
	pid_t w;
	while ((w = waitpid(-1, &st, WNOHANG)) > 0)
		if (w == pid)
			status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);

	must(del, "delete");
	uint64_t t4 = now_ns();
	unlink(pidfile);

	if (print)
		printf("%s,%d,%llu,%llu,%llu,%llu,%llu,%d\n", r->label, iter, (unsigned long long)(t1 - t0),
		       (unsigned long long)(t2 - t1), (unsigned long long)(t3 - t2), (unsigned long long)(t4 - t3),
		       (unsigned long long)(t4 - t0), status);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	if (argc != 10) {
		fprintf(stderr, "usage: %s RUNS WARMUP BUNDLE ID_PREFIX ERRFILE RT_A ROOT_A RT_B ROOT_B\n", argv[0]);
		return 2;
	}
	int runs = atoi(argv[1]), warmup = atoi(argv[2]);
	bundle = argv[3];
	prefix = argv[4];
	errfile = argv[5];
	struct rt rts[2] = {{"A", argv[6], argv[7]}, {"B", argv[8], argv[9]}};
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
		perror("PR_SET_CHILD_SUBREAPER");
		return 2;
	}
	for (int i = 0; i < warmup; i++) {
		one(&rts[0], -1 - i, 0);
		one(&rts[1], -1 - i, 0);
	}
	for (int i = 0; i < runs; i++) {
		int first = i % 2;
		one(&rts[first], i, 1);
		one(&rts[1 - first], i, 1);
	}
	return 0;
}
