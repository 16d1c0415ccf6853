#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

void cli_error(const char *fmt, ...)
{
	va_list ap;

	fputs("edgesync: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_usage(const char *usage, const char *fmt, ...)
{
	va_list ap;

	if (fmt) {
		fputs("edgesync: ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	fprintf(stderr, "usage: %s\n", usage);
	return CLI_USAGE;
}

static void list_commands(FILE *f, const char *what, const struct cli_cmd *cmds)
{
	fprintf(f,
		"usage: %s COMMAND [OPTIONS]   (COMMAND --help for more)\n\n",
		what);
	for (const struct cli_cmd *c = cmds; c->name; c++)
		fprintf(f, "  %-10s %s\n", c->name, c->summary);
}

int cli_dispatch(const char *what, const struct cli_cmd *cmds, int argc,
		 char **argv)
{
	if (argc < 1) {
		list_commands(stderr, what, cmds);
		return CLI_USAGE;
	}
	if (!strcmp(argv[0], "help") || !strcmp(argv[0], "-h") ||
	    !strcmp(argv[0], "--help")) {
		list_commands(stdout, what, cmds);
		return CLI_OK;
	}
	for (const struct cli_cmd *c = cmds; c->name; c++)
		if (!strcmp(argv[0], c->name))
			return c->run(argc, argv);
	/* what is "edgesync" or "edgesync <group>"; cli_error says the
	 * first word already */
	if (strncmp(what, "edgesync ", 9) == 0)
		cli_error("%s: unknown command '%s'", what + 9, argv[0]);
	else
		cli_error("unknown command '%s'", argv[0]);
	list_commands(stderr, what, cmds);
	return CLI_USAGE;
}

int cli_same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 &&
	       sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int cli_parse_u64(const char *opt, const char *text, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(text, &end, 10);
	if (!*text || *end || errno || text[0] == '-') {
		cli_error("%s: '%s' is not a whole number", opt, text);
		return -1;
	}
	*out = v;
	return 0;
}

double cli_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The length of the well-formed UTF-8 sequence at s (1 to 4), or 0. */
static size_t utf8_len(const unsigned char *s)
{
	unsigned cp, min;
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1fu, min = 0x80;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 3, cp = s[0] & 0x0fu, min = 0x800;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07u, min = 0x10000;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80) /* the terminating NUL too */
			return 0;
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	return cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? 0
									   : n;
}

void cli_json_string(FILE *f, const char *s)
{
	const unsigned char *u = (const unsigned char *)s;

	fputc('"', f);
	while (*u) {
		size_t n = utf8_len(u);

		if (*u == '"' || *u == '\\')
			fprintf(f, "\\%c", *u);
		else if (*u < 0x20)
			fprintf(f, "\\u%04x", *u);
		else if (n == 0) /* not UTF-8 (a file name can be anything) */
			fputs("\\ufffd", f);
		else
			fwrite(u, 1, n, f);
		u += n ? n : 1;
	}
	fputc('"', f);
}

void cli_progress_start(struct cli_progress *p, const char *label,
			uint64_t total)
{
	p->label = label;
	p->total = total;
	p->started = cli_now();
	p->drawn = 0;
	p->active = isatty(STDERR_FILENO);
}

void cli_progress_update(struct cli_progress *p, uint64_t done)
{
	enum { WIDTH = 30 };
	double now = cli_now(), frac;
	int fill;

	if (!p->active || (now - p->drawn < 0.1 && done < p->total))
		return;
	p->drawn = now;
	frac = p->total ? (double)done / (double)p->total : 1.0;
	fill = (int)(frac * WIDTH);
	fprintf(stderr, "\r%s [%.*s%*s] %3d%%  %.1fs", p->label, fill,
		"==============================", WIDTH - fill, "",
		(int)(frac * 100), now - p->started);
	fflush(stderr);
}

void cli_progress_break(struct cli_progress *p)
{
	if (p->active)
		fputc('\n', stderr);
	p->active = 0;
}

void cli_progress_end(struct cli_progress *p)
{
	if (p->active) {
		cli_progress_update(p, p->total);
		fputc('\n', stderr);
	}
	p->active = 0;
}

const char *cli_human_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, len, "%.1f %s", v, unit[u]);
	return buf;
}
