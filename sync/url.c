/*
 * Peer URLs: tcp://host:port, tls+tcp://host:port (host a name, an IPv4
 * address, [an IPv6 address], or * / empty for every address when
 * listening) and ipc:///path for peers on the same host.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync_impl.h"

static int parse_port(const char *s, unsigned *port)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	v = strtoul(s, &end, 10);
	if (*end != '\0' || v > 65535)
		return -EINVAL;
	*port = (unsigned)v;
	return 0;
}

int sync_url_parse(const char *url, struct sync_url *u)
{
	const char *rest, *colon;
	size_t hl;

	memset(u, 0, sizeof(*u));
	if (!strncmp(url, "ipc://", 6)) {
		u->scheme = SYNC_URL_IPC;
		if (strlen(url + 6) < 1 || strlen(url + 6) >= sizeof(u->path))
			return -EINVAL;
		strcpy(u->path, url + 6);
		return 0;
	}
	if (!strncmp(url, "tcp://", 6)) {
		u->scheme = SYNC_URL_TCP;
		rest = url + 6;
	} else if (!strncmp(url, "tls+tcp://", 10)) {
		u->scheme = SYNC_URL_TLS;
		rest = url + 10;
	} else {
		return -EINVAL;
	}
	if (*rest == '[') {
		const char *close = strchr(rest, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		hl = (size_t)(close - rest - 1);
		colon = close + 1;
		rest++;
	} else {
		colon = strrchr(rest, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - rest);
	}
	if (hl >= sizeof(u->host) || memchr(rest, '/', hl))
		return -EINVAL;
	memcpy(u->host, rest, hl);
	u->host[hl] = '\0';
	if (!strcmp(u->host, "*"))
		u->host[0] = '\0';
	return parse_port(colon + 1, &u->port);
}

int sync_url_format(const struct sync_url *u, const char *host, char *buf,
		    size_t size)
{
	const char *scheme = u->scheme == SYNC_URL_TLS ? "tls+tcp" : "tcp";
	int n;

	if (!host)
		host = u->host;
	if (u->scheme == SYNC_URL_IPC)
		n = snprintf(buf, size, "ipc://%s", u->path);
	else if (strchr(host, ':'))
		n = snprintf(buf, size, "%s://[%s]:%u", scheme, host, u->port);
	else
		n = snprintf(buf, size, "%s://%s:%u", scheme, host, u->port);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}
