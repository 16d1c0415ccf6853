/* CPU lists ("0-3,6"): parsing and printing (cpu_list.h). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cpu_list.h"

/* A CPU number at *p, below CPU_SETSIZE; advances *p past it. */
static int cpu_number(const char **p, long *out)
{
	char *end;

	if (!isdigit((unsigned char)**p))
		return -1;
	errno = 0;
	*out = strtol(*p, &end, 10);
	if (errno || *out >= CPU_SETSIZE)
		*out = CPU_SETSIZE;
	*p = end;
	return 0;
}

int es_cpu_list_parse(const char *s, cpu_set_t *set, char *why, size_t wl)
{
	const char *p = s;

	CPU_ZERO(set);
	for (;;) {
		long first, last;

		while (*p == ' ' || *p == '\t')
			p++;
		if (cpu_number(&p, &first) != 0)
			goto bad;
		last = first;
		if (*p == '-') {
			p++;
			if (cpu_number(&p, &last) != 0)
				goto bad;
		}
		if (first >= CPU_SETSIZE || last >= CPU_SETSIZE) {
			snprintf(why, wl, "'%s': CPUs are numbered below %d", s,
				 CPU_SETSIZE);
			return -EINVAL;
		}
		if (last < first) {
			snprintf(why, wl,
				 "'%s': the range %ld-%ld runs backwards", s,
				 first, last);
			return -EINVAL;
		}
		for (long c = first; c <= last; c++)
			CPU_SET((int)c, set);
		if (*p == '\0')
			return 0;
		if (*p++ != ',')
			goto bad;
	}
bad:
	snprintf(why, wl, "'%s' is not a list of CPUs like 0-1,3", s);
	return -EINVAL;
}

int es_cpu_list_format(const cpu_set_t *set, char *buf, size_t len)
{
	size_t used = 0;

	if (len)
		buf[0] = '\0';
	for (int c = 0; c < CPU_SETSIZE; c++) {
		int last = c;

		if (!CPU_ISSET(c, set))
			continue;
		while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, set))
			last++;
		used += (size_t)snprintf(buf + (used < len ? used : len),
					 used < len ? len - used : 0,
					 last > c ? "%s%d-%d" : "%s%d",
					 used ? "," : "", c, last);
		c = last;
	}
	return (int)used;
}
