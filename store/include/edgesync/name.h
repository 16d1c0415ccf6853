/*
 * edgesync: the one rule for collection names, wherever a name comes in
 * (the local API, a sync peer, the manifest): 1 to ES_NAME_MAX bytes of
 * [a-z0-9_-]. Names also become parts of file names (segments, staging),
 * so the rule keeps out '/', '.', and everything a shell or a file
 * system treats specially.
 */
#ifndef EDGESYNC_NAME_H
#define EDGESYNC_NAME_H

#include <string.h>

#define ES_NAME_MAX 64

/* 1 if name follows the rule, else 0. */
static inline int es_name_valid(const char *name)
{
	size_t n = strnlen(name, ES_NAME_MAX + 1);

	if (n < 1 || n > ES_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

#endif
