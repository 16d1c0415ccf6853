/*
 * The client commands that show what an agent and its sync are doing:
 * status, segments, peers (approve, revoke) and sync-now. Like the rest
 * of the client commands (cli_client.c) they talk to a running agent
 * through the client library only, print a table for people or JSON
 * with --json, and exit 0, 1 or 64.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_client.h"
#include "edgesync/client.h"
#include "edgesync/sync.h"

/* ---- status, segments ------------------------------------------------- */

static int fetch_peers(struct es_client *c, struct es_client_peer **peers,
		       size_t *n);
static void json_peers(const struct es_client_peer *p, size_t n);
static void print_peer_line(const struct es_client_peer *p);

int cli_status(int argc, char **argv)
{
	static const struct cmd_spec spec = {
	    "edgesync status",
	    "Shows the agent: version, device id, uptime, collections, "
	    "vectors, segments,\nbytes, requests served, seals pending.",
	    NULL,
	    cli_no_opts,
	    0,
	    0};
	struct es_client_peer *peers = NULL;
	struct es_client_stats s;
	struct client_args a = {0};
	struct es_client *c;
	size_t n_peers = 0;
	char b[32];
	int sync, rc = cli_cmd_parse(argc, argv, &spec, NULL, &a);

	if (rc >= 0)
		return rc;
	if (cli_connect(&a, &c))
		return CLI_FAIL;
	rc = es_client_stats(c, &s);
	sync = rc == 0 && fetch_peers(c, &peers, &n_peers) == 0;
	if (rc < 0) {
		cli_failed(c, &a, rc, "status");
	} else if (a.json) {
		printf("{\"socket\":");
		cli_json_string(stdout, a.socket);
		printf(",\"version\":");
		cli_json_string(stdout, s.version);
		printf(",\"device_id\":");
		cli_json_string(stdout, s.device_id);
		printf(",\"uptime_s\":%llu,\"collections\":%llu,"
		       "\"vectors\":%llu,\"segments\":%llu,\"bytes\":%llu,"
		       "\"inserts\":%llu,\"searches\":%llu,"
		       "\"seals_pending\":%llu",
		       (unsigned long long)s.uptime_s,
		       (unsigned long long)s.collections,
		       (unsigned long long)s.vectors,
		       (unsigned long long)s.segments,
		       (unsigned long long)s.bytes,
		       (unsigned long long)s.inserts,
		       (unsigned long long)s.searches,
		       (unsigned long long)s.seals_pending);
		if (sync) {
			printf(",\"peers\":");
			json_peers(peers, n_peers);
		}
		printf("}\n");
	} else {
		printf("agent          edgesync %s on %s\ndevice         %s\n"
		       "uptime         %llud %02lluh %02llum %02llus\n"
		       "collections    %llu\nvectors        %llu\n"
		       "segments       %llu\non disk        %s\n"
		       "inserts        %llu since start\n"
		       "searches       %llu since start\n"
		       "seals pending  %llu\n",
		       s.version, a.socket, s.device_id,
		       (unsigned long long)(s.uptime_s / 86400),
		       (unsigned long long)(s.uptime_s / 3600 % 24),
		       (unsigned long long)(s.uptime_s / 60 % 60),
		       (unsigned long long)(s.uptime_s % 60),
		       (unsigned long long)s.collections,
		       (unsigned long long)s.vectors,
		       (unsigned long long)s.segments,
		       cli_human_bytes(s.bytes, b, sizeof(b)),
		       (unsigned long long)s.inserts,
		       (unsigned long long)s.searches,
		       (unsigned long long)s.seals_pending);
		if (sync && !n_peers)
			printf("sync           no peer yet\n");
		for (size_t i = 0; sync && i < n_peers; i++)
			print_peer_line(&peers[i]);
	}
	free(peers);
	es_client_close(c);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}

/* A hybrid logical clock (48 bits of milliseconds) as UTC time. */
static const char *hlc_time(uint64_t hlc, char *buf, size_t len)
{
	time_t t = (time_t)((hlc >> 16) / 1000);
	struct tm tm;

	if (!hlc || !gmtime_r(&t, &tm) ||
	    !strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm))
		snprintf(buf, len, "-");
	return buf;
}

static void print_segment(const struct es_client_segment *g, int json)
{
	char t[32], b1[32], b2[32];

	hlc_time(g->seal_hlc, t, sizeof(t));
	if (json) {
		printf("{\"id\":%lld,\"count\":%llu,\"size\":%llu,"
		       "\"checksum\":\"0x%08x\",\"indexed\":%s,"
		       "\"index_size\":%llu,\"seal_hlc\":%llu,"
		       "\"clock_runs\":%llu,\"clocks_crc\":\"0x%08x\","
		       "\"written\":",
		       (long long)g->id, (unsigned long long)g->count,
		       (unsigned long long)g->size, g->checksum,
		       g->indexed ? "true" : "false",
		       (unsigned long long)g->index_size,
		       (unsigned long long)g->seal_hlc,
		       (unsigned long long)g->clock_runs, g->clocks_crc);
		cli_json_string(stdout, t);
		printf(",\"origin\":");
		cli_json_string(stdout, g->origin);
		putchar('}');
		return;
	}
	printf(
	    "%8lld %10llu %10s %-7s %10s  0x%08x  %-20s  %.16s\n",
	    (long long)g->id, (unsigned long long)g->count,
	    cli_human_bytes(g->size, b1, sizeof(b1)), g->indexed ? "yes" : "no",
	    g->indexed ? cli_human_bytes(g->index_size, b2, sizeof(b2)) : "-",
	    g->checksum, t, g->origin);
}

int cli_segments(int argc, char **argv)
{
	static const struct cmd_spec spec = {
	    "edgesync segments NAME",
	    "Lists the sealed segments of a collection: vectors, size, "
	    "whether the index\nis built, CRC32C, the time of its newest "
	    "write (its rows' version) and\nwhere it was sealed.",
	    NULL,
	    cli_no_opts,
	    1,
	    1};
	struct es_client_segment *segs = NULL;
	struct client_args a = {0};
	struct es_client *c;
	size_t n = 0;
	int rc = cli_cmd_parse(argc, argv, &spec, NULL, &a);

	if (rc >= 0)
		return rc;
	if (cli_connect(&a, &c))
		return CLI_FAIL;
	rc = es_client_segments(c, a.pos[0], &segs, &n);
	if (rc < 0) {
		cli_failed(c, &a, rc, a.pos[0]);
	} else if (a.json) {
		printf("{\"collection\":");
		cli_json_string(stdout, a.pos[0]);
		printf(",\"segments\":[");
		for (size_t i = 0; i < n; i++) {
			if (i)
				putchar(',');
			print_segment(&segs[i], 1);
		}
		printf("]}\n");
	} else {
		printf("%8s %10s %10s %-7s %10s  %-10s  %-20s  %s\n", "ID",
		       "VECTORS", "SIZE", "INDEXED", "INDEX", "CRC32C",
		       "WRITTEN", "ORIGIN");
		for (size_t i = 0; i < n; i++)
			print_segment(&segs[i], 0);
	}
	free(segs);
	es_client_close(c);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}

/* ---- sync: peers, sync-now -------------------------------------------- */

/* The peers of an agent that syncs; -1 for one that does not. */
static int fetch_peers(struct es_client *c, struct es_client_peer **peers,
		       size_t *n)
{
	int rc = es_client_peers(c, peers, n);

	if (rc == ES_E_CLIENT_REMOTE &&
	    !strcmp(es_client_error_code(c), "no_sync"))
		return -1;
	if (rc < 0)
		cli_error("peers: %s", es_client_error(c));
	return rc < 0 ? -1 : 0;
}

static const char *ago(uint64_t unix_ms, char *buf, size_t len)
{
	struct timespec ts;
	uint64_t now;

	if (!unix_ms)
		return "never";
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	snprintf(
	    buf, len, "%llu s ago",
	    (unsigned long long)(now > unix_ms ? (now - unix_ms) / 1000 : 0));
	return buf;
}

static void json_peers(const struct es_client_peer *p, size_t n)
{
	putchar('[');
	for (size_t i = 0; i < n; i++, p++) {
		printf("%s{\"peer\":", i ? "," : "");
		cli_json_string(stdout, p->peer);
		printf(",\"device\":");
		cli_json_string(stdout, p->device);
		printf(",\"connected\":%s,\"last_success_ms\":%llu,"
		       "\"segments_pending\":%llu,\"bytes_pending\":%llu,"
		       "\"lag_s\":%llu,\"bytes_sent\":%llu,"
		       "\"bytes_received\":%llu,\"checksum_failures\":%llu,"
		       "\"segments_sent\":%llu,\"segments_received\":%llu,"
		       "\"last_error\":",
		       p->connected ? "true" : "false",
		       (unsigned long long)p->last_success_ms,
		       (unsigned long long)p->segments_pending,
		       (unsigned long long)p->bytes_pending,
		       (unsigned long long)p->lag_s,
		       (unsigned long long)p->bytes_sent,
		       (unsigned long long)p->bytes_received,
		       (unsigned long long)p->checksum_failures,
		       (unsigned long long)p->segments_sent,
		       (unsigned long long)p->segments_received);
		cli_json_string(stdout, p->last_error);
		printf(",\"awaiting_approval\":%s}",
		       p->awaiting_approval ? "true" : "false");
	}
	putchar(']');
}

/* One line of status per peer. */
static void print_peer_line(const struct es_client_peer *p)
{
	char t[32], b1[32], b2[32], b3[32];

	printf("sync           %s%s%s%s: %s%s, last success %s, %llu segments "
	       "(%s) pending, lag %llu s, sent %s, received %s%s%s\n",
	       p->peer, *p->device ? " (" : "", p->device,
	       *p->device ? ")" : "",
	       p->connected ? "connected" : "not connected",
	       p->awaiting_approval ? ", awaiting approval" : "",
	       ago(p->last_success_ms, t, sizeof(t)),
	       (unsigned long long)p->segments_pending,
	       cli_human_bytes(p->bytes_pending, b1, sizeof(b1)),
	       (unsigned long long)p->lag_s,
	       cli_human_bytes(p->bytes_sent, b2, sizeof(b2)),
	       cli_human_bytes(p->bytes_received, b3, sizeof(b3)),
	       *p->last_error ? "; last error: " : "", p->last_error);
}

static void print_peer(const struct es_client_peer *p)
{
	char t[32], b[32];

	printf("peer               %s\n"
	       "device             %s\n"
	       "connected          %s\n"
	       "last success       %s\n"
	       "pending            %llu segments, %s\n"
	       "lag                %llu s\n",
	       p->peer, *p->device ? p->device : "-",
	       p->connected ? "yes" : "no",
	       ago(p->last_success_ms, t, sizeof(t)),
	       (unsigned long long)p->segments_pending,
	       cli_human_bytes(p->bytes_pending, b, sizeof(b)),
	       (unsigned long long)p->lag_s);
	printf("sent               %s in %llu segments\n",
	       cli_human_bytes(p->bytes_sent, b, sizeof(b)),
	       (unsigned long long)p->segments_sent);
	printf("received           %s in %llu segments\n",
	       cli_human_bytes(p->bytes_received, b, sizeof(b)),
	       (unsigned long long)p->segments_received);
	printf("checksum failures  %llu\nlast error         %s\n",
	       (unsigned long long)p->checksum_failures,
	       *p->last_error ? p->last_error : "-");
	if (p->awaiting_approval)
		printf("approval           awaiting: `edgesync peers approve "
		       "%s` admits it\n",
		       *p->device ? p->device : p->peer);
}

static int peers_approval(int argc, char **argv, int approve)
{
	static const struct cmd_spec approve_spec = {
	    "edgesync peers approve DEVICE",
	    "Approves DEVICE on this cloud: an edge with that device id that "
	    "proves its\nidentity (its TLS certificate, or the token) is "
	    "admitted from its next\nconnection, even though it is not in "
	    "allow-devices. A device that never\nconnected can be approved "
	    "ahead of time. `edgesync peers` lists the devices\nawaiting "
	    "approval; `edgesync peers revoke DEVICE` undoes it.",
	    NULL,
	    cli_no_opts,
	    1,
	    1};
	static const struct cmd_spec revoke_spec = {
	    "edgesync peers revoke DEVICE",
	    "Revokes the approval of DEVICE on this cloud: its connections "
	    "are closed\nand it is refused from its next hello. A device "
	    "listed in allow-devices\nstays admitted until it is removed "
	    "from the configuration.",
	    NULL,
	    cli_no_opts,
	    1,
	    1};
	const struct cmd_spec *spec = approve ? &approve_spec : &revoke_spec;
	struct client_args a = {0};
	struct es_client *c;
	const char *dev;
	char why[160];
	int rc = cli_cmd_parse(argc, argv, spec, NULL, &a), listed = 0;

	if (rc >= 0)
		return rc;
	dev = a.pos[0];
	if (es_sync_device_check(dev, why, sizeof(why))) {
		cli_error("%s", why);
		return cli_usage(spec->usage, NULL);
	}
	if (cli_connect(&a, &c))
		return CLI_FAIL;
	rc = es_client_peer_approve(c, dev, approve, &listed);
	if (rc < 0) {
		cli_failed(c, &a, rc,
			   approve ? "peers approve" : "peers revoke");
	} else if (a.json) {
		printf("{\"device\":");
		cli_json_string(stdout, dev);
		printf(",\"approved\":%s,\"allow_listed\":%s}\n",
		       approve ? "true" : "false", listed ? "true" : "false");
	} else if (approve) {
		printf("device %s approved: admitted from its next "
		       "connection\n",
		       dev);
	} else {
		printf("device %s revoked: its connections are closed and it "
		       "is refused from its next hello\n",
		       dev);
	}
	if (rc >= 0 && listed && !a.json)
		printf("note: allow-devices lists %s, which admits it whatever "
		       "its approval\n",
		       dev);
	es_client_close(c);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}

static int peers_approve(int argc, char **argv)
{
	return peers_approval(argc, argv, 1);
}

static int peers_revoke(int argc, char **argv)
{
	return peers_approval(argc, argv, 0);
}

int cli_peers(int argc, char **argv)
{
	static const struct cmd_spec spec = {
	    "edgesync peers [approve DEVICE | revoke DEVICE]",
	    "Shows the sync peers: on an edge the clouds it dials, on a "
	    "cloud the edges\nthat said hello since it started and the "
	    "devices awaiting approval; for\neach, connected, last "
	    "success, segments and bytes pending, lag, bytes and\nsegments "
	    "sent and received, checksum failures and the last error.\n\n"
	    "On a cloud, `edgesync peers approve DEVICE` admits a device "
	    "that is not in\nallow-devices, `edgesync peers revoke DEVICE` "
	    "refuses it again (see their\n--help).",
	    NULL,
	    cli_no_opts,
	    0,
	    0};
	static const struct cli_cmd cmds[] = {
	    {"approve", peers_approve, "admit a device on this cloud"},
	    {"revoke", peers_revoke, "refuse an approved device again"},
	    {NULL, NULL, NULL},
	};
	struct es_client_peer *peers = NULL;
	struct client_args a = {0};
	struct es_client *c;
	size_t n = 0;
	int rc;

	if (argc >= 2 &&
	    (!strcmp(argv[1], "approve") || !strcmp(argv[1], "revoke")))
		return cli_dispatch("edgesync peers", cmds, argc - 1, argv + 1);
	rc = cli_cmd_parse(argc, argv, &spec, NULL, &a);
	if (rc >= 0)
		return rc;
	if (cli_connect(&a, &c))
		return CLI_FAIL;
	rc = es_client_peers(c, &peers, &n);
	if (rc < 0) {
		cli_failed(c, &a, rc, a.socket);
	} else if (a.json) {
		printf("{\"peers\":");
		json_peers(peers, n);
		printf("}\n");
	} else if (!n) {
		printf("no peer yet\n");
	} else {
		for (size_t i = 0; i < n; i++) {
			if (i)
				putchar('\n');
			print_peer(&peers[i]);
		}
	}
	free(peers);
	es_client_close(c);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}

int cli_sync_now(int argc, char **argv)
{
	static const struct cmd_spec spec = {
	    "edgesync sync-now",
	    "Wakes the agent's sync for a round now, instead of at the "
	    "next interval\n(an edge dials its peers; a cloud has nothing "
	    "to start). Returns at once;\n`edgesync peers` shows the "
	    "outcome.",
	    NULL,
	    cli_no_opts,
	    0,
	    0};
	struct client_args a = {0};
	struct es_client *c;
	int rc = cli_cmd_parse(argc, argv, &spec, NULL, &a);

	if (rc >= 0)
		return rc;
	if (cli_connect(&a, &c))
		return CLI_FAIL;
	rc = es_client_sync_now(c);
	if (rc < 0)
		cli_failed(c, &a, rc, a.socket);
	else if (a.json)
		printf("{\"sync_now\":true}\n");
	else
		printf("sync round requested\n");
	es_client_close(c);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}
