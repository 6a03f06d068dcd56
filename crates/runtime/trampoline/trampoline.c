/*
 * barge exec trampoline: a tiny static program with no libc.
 *
 * The runtime executes the container's process through this trampoline,
 * loaded from a sealed memfd: at the moment the container program starts,
 * /proc/self/exe of the process is this sealed, immutable memfd and never
 * the host's barge-runtime binary (CVE-2019-5736: a container image whose
 * entrypoint is /proc/self/exe, or a #! pointing at it, can then only
 * re-execute this trampoline, not reach the host binary).
 *
 * Usage: trampoline PATH ARGV0 [ARGS...]   (environment passed through)
 * On failure it prints a message and exits 127 (not found) or 126.
 */
typedef unsigned long size_t;

static long sys3(long n, long a, long b, long c)
{
	long r;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"(n), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return r;
}

static size_t slen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

static void say(const char *s)
{
	sys3(1 /* write */, 2, (long)s, (long)slen(s));
}

__attribute__((used)) void tramp_main(long argc, char **argv, char **envp)
{
	long r;
	if (argc < 3) {
		say("barge trampoline: usage: PATH ARGV0 [ARGS...]\n");
		sys3(60 /* exit */, 127, 0, 0);
	}
	r = sys3(59 /* execve */, (long)argv[1], (long)(argv + 2), (long)envp);
	say("barge-runtime: exec ");
	say(argv[1]);
	if (r == -13) {
		say(": permission denied\n");
		sys3(60, 126, 0, 0);
	}
	if (r == -2) {
		say(": no such file or directory\n");
		sys3(60, 127, 0, 0);
	}
	if (r == -8) {
		say(": exec format error\n");
		sys3(60, 126, 0, 0);
	}
	say(": failed\n");
	sys3(60, 126, 0, 0);
}

__attribute__((naked, noreturn)) void _start(void)
{
	__asm__ volatile("mov (%rsp), %rdi\n\t"
			 "lea 8(%rsp), %rsi\n\t"
			 "lea 8(%rsi,%rdi,8), %rdx\n\t"
			 "call tramp_main\n\t"
			 "hlt\n\t");
}
