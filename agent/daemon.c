/*
 * edgesync agent: the daemon process.
 *
 * Life of the process, and the function for each step:
 *
 *   parse_args -> build_config (defaults, file, command line, check)
 *     -n: print "configuration OK" and exit 0 (or the error, exit 78)
 *   block the signals, signalfd -> es_engine_open -> es_api_server_start
 *     -> with a [sync] role: es_sync_start, es_engine_attach_sync
 *     -> READY (journal line, sd_notify when under systemd)
 *   serve: read the signalfd
 *     SIGHUP          -> reload: build the configuration again, apply
 *                        what can change while running, log the rest
 *     SIGTERM, SIGINT -> es_engine_attach_sync(NULL), es_sync_stop
 *                        (transfers resume at the next start)
 *                        -> es_api_server_stop (no new requests; those in
 *                        flight finish; the socket goes) -> es_engine_close
 *                        (seals in flight finish) -> exit 0
 *     sync's restart  -> a SIGTERM to ourselves, stopped as above, exit 75
 *                        (an edge's connection wedged in nng: only a new
 *                        process reconnects; systemd starts it again)
 *
 * Invariants:
 *   1. SIGTERM, SIGINT and SIGHUP are blocked before the first thread is
 *      made, so every thread inherits the mask; they are read from the
 *      signalfd by the main thread only. No signal handler runs.
 *   2. A log line is formatted only when its level is enabled, and written
 *      with one write(2), so lines from several threads do not interleave.
 *   3. Exit codes: 0 stopped cleanly, 1 runtime failure, 64 usage,
 *      75 stopped to be started again, 78 configuration (sysexits).
 */
#include <errno.h>
#include <malloc.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api_server.h"
#include "cli.h"
#include "config.h"
#include "cpu_list.h"
#include "edgesync/client.h"
#include "edgesync/sync.h"
#include "engine.h"

/* ---- logging ---------------------------------------------------------- */

static atomic_int log_max = ES_LOG_INFO;

static void log_emit(enum es_log_level level, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_AT(level, err, ...)                                                \
	do {                                                                   \
		if ((int)(level) <=                                            \
		    atomic_load_explicit(&log_max, memory_order_relaxed))      \
			log_emit(level, err, __VA_ARGS__);                     \
	} while (0)
/* log_error and log_warn add the text of err (a negative code); the x
 * forms do not. */
#define log_error(err, ...) LOG_AT(ES_LOG_ERROR, err, __VA_ARGS__)
#define log_errorx(...)	    LOG_AT(ES_LOG_ERROR, 0, __VA_ARGS__)
#define log_warn(err, ...)  LOG_AT(ES_LOG_WARN, err, __VA_ARGS__)
#define log_warnx(...)	    LOG_AT(ES_LOG_WARN, 0, __VA_ARGS__)
#define log_info(...)	    LOG_AT(ES_LOG_INFO, 0, __VA_ARGS__)
#define SYNC_STOP_MS	    15000 /* how long stop waits for sync */
#define log_debug(...)	    LOG_AT(ES_LOG_DEBUG, 0, __VA_ARGS__)

static const char *err_text(int err, char *buf, size_t len)
{
	if (err < 0 && err > -4096)
		return strerror_r(-err, buf, len);
	return es_engine_strerror(err);
}

static void log_emit(enum es_log_level level, int err, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	char line[1024], ebuf[128];
	struct timespec ts;
	struct tm tm;
	size_t n, max = sizeof(line) - 2;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, max, "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, max - n, ".%03ldZ %-5s ",
			      ts.tv_nsec / 1000000L,
			      (unsigned)level < 4 ? names[level] : "?");
	va_start(ap, fmt);
	n += (size_t)vsnprintf(line + n, max - n, fmt, ap);
	va_end(ap);
	if (err && n < max)
		n += (size_t)snprintf(line + n, max - n, ": %s",
				      err_text(err, ebuf, sizeof(ebuf)));
	if (n >= max) {
		n = max;
		memcpy(line + n - 3, "...", 3);
	}
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	while (write(STDERR_FILENO, line, n) < 0 && errno == EINTR)
		;
}

/* Where the engine and the API server log from their own threads. */
static void module_log(void *arg, enum es_log_level level, const char *msg)
{
	LOG_AT(level, 0, "%s: %s", (const char *)arg, msg);
}

/* Tells systemd (Type=notify) how we are; nothing outside systemd. */
static void notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n;
	int fd;

	if (!path || (path[0] != '/' && path[0] != '@'))
		return;
	n = strlen(path);
	if (n >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL,
		   (struct sockaddr *)&sa,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
		log_debug("sd_notify %s failed", state);
	close(fd);
}

/* ---- arguments and configuration -------------------------------------- */

static const char agent_usage[] =
    "edgesync agent [-c FILE] [-n] [--OPTION VALUE]...";

struct args {
	const char *file;
	int check;
	size_t n_set;
	struct {
		const char *name, *value;
	} * set; /* command-line options, in order */
};

/* Prints text from column 26, wrapped before column 80. */
static void print_wrapped(const char *text)
{
	const char *p = text;
	int col = 26;

	while (*p) {
		const char *sp = strchr(p, ' ');
		int w = sp ? (int)(sp - p) : (int)strlen(p);

		if (col > 26 && col + 1 + w > 79) {
			printf("\n%26s", "");
			col = 26;
		} else if (col > 26) {
			putchar(' ');
			col++;
		}
		printf("%.*s", w, p);
		col += w;
		p += w;
		while (*p == ' ')
			p++;
	}
	putchar('\n');
}

static void agent_help(void)
{
	const struct es_config_option *o;
	const char *section = "";
	char arg[64], text[512];

	printf("usage: %s\n\n"
	       "Runs the agent in the foreground: opens the data directory, "
	       "serves the local\nAPI on its Unix socket and logs one line "
	       "per event on stderr.\n\n"
	       "  -c, --config FILE        the INI file (e.g. %s)\n"
	       "  -n, --check              check the configuration and "
	       "exit\n\n"
	       "Every option below is a key of the file, under its "
	       "[section]; given on the\ncommand line, --OPTION VALUE "
	       "overrides the file.\n",
	       agent_usage, ES_CONFIG_DEFAULT_FILE);
	for (size_t i = 0; (o = es_config_option(i)); i++) {
		int n;

		if (strcmp(section, o->section))
			printf("\n[%s]\n", o->section);
		section = o->section;
		snprintf(arg, sizeof(arg), o->flag ? "--%s[=%s]" : "--%s %s",
			 o->name, o->arg);
		printf("  %-24s%s", arg, strlen(arg) > 23 ? "\n" : "");
		if (strlen(arg) > 23)
			printf("%26s", "");
		n = snprintf(text, sizeof(text), "%s", o->help);
		if (o->max > 0)
			n += snprintf(text + n, sizeof(text) - (size_t)n,
				      ", %.15g to %.15g", o->min, o->max);
		if (*o->def)
			n += snprintf(text + n, sizeof(text) - (size_t)n,
				      " (default %s)", o->def);
		if (o->reloadable)
			snprintf(text + n, sizeof(text) - (size_t)n,
				 "; SIGHUP reloads it");
		print_wrapped(text);
	}
	printf(
	    "\nWith a [sync] role the agent syncs: an edge dials its peers, a "
	    "cloud listens;\nsync options take effect at a restart.\n"
	    "SIGTERM or SIGINT drain and stop; SIGHUP reloads the "
	    "file.\nExit: 0 stopped, 1 runtime failure, 64 usage, "
	    "75 stopped to be started again, 78 configuration.\n");
}

/* Parses argv; returns -1 to go on, or an exit code. */
static int parse_args(int argc, char **argv, struct args *a)
{
	const struct es_config_option *o;
	struct option *lo;
	size_t n = 0;
	int ch, rc = -1;

	while (es_config_option(n))
		n++;
	lo = calloc(n + 4, sizeof(*lo));
	a->set = calloc((size_t)argc, sizeof(*a->set));
	if (!lo || !a->set) {
		cli_error("out of memory");
		free(lo);
		return CLI_FAIL;
	}
	for (size_t i = 0; (o = es_config_option(i)); i++)
		lo[i] = (struct option){
		    o->name, o->flag ? optional_argument : required_argument,
		    NULL, 256 + (int)i};
	lo[n] = (struct option){"config", required_argument, NULL, 'c'};
	lo[n + 1] = (struct option){"check", no_argument, NULL, 'n'};
	lo[n + 2] = (struct option){"help", no_argument, NULL, 'h'};
	optind = 1;
	while (rc < 0 &&
	       (ch = getopt_long(argc, argv, "c:nh", lo, NULL)) != -1) {
		if (ch >= 256) {
			a->set[a->n_set].name = lo[ch - 256].name;
			/* a flag alone (--fetch-indexes) is true */
			a->set[a->n_set++].value = optarg ? optarg : "true";
		} else if (ch == 'c') {
			a->file = optarg;
		} else if (ch == 'n') {
			a->check = 1;
		} else if (ch == 'h') {
			agent_help();
			rc = CLI_OK;
		} else {
			rc = cli_usage(agent_usage, NULL);
		}
	}
	if (rc < 0 && optind < argc)
		rc = cli_usage(agent_usage, "unexpected argument '%s'",
			       argv[optind]);
	free(lo);
	return rc;
}

/* Defaults, then the file, then the command line, then the checks. */
static int build_config(const struct args *a, struct es_config *c, char *err,
			size_t len)
{
	int rc = es_config_init(c);

	if (rc < 0) {
		snprintf(err, len, "out of memory");
		return rc;
	}
	if (a->file)
		rc = es_config_load(c, a->file, err, len);
	for (size_t i = 0; rc == 0 && i < a->n_set; i++)
		rc =
		    es_config_set(c, a->set[i].name, a->set[i].value, err, len);
	if (rc == 0)
		rc = es_config_check(c, err, len);
	if (rc < 0)
		es_config_fini(c);
	return rc;
}

/* ---- running ---------------------------------------------------------- */

struct agent {
	struct args args;
	struct es_config config;
	struct es_engine *engine;
	struct es_api_server *api;
	struct es_sync *sync; /* NULL without a [sync] role */
	int sigfd;
};

/*
 * SIGHUP: reads the configuration again as at start. Only log-level
 * changes while running; the API server takes its allowed users and
 * groups at start, so they, like the rest, wait for a restart.
 */
static void reload(struct agent *ag)
{
	const struct es_config_option *o;
	struct es_config n;
	char err[ES_CONFIG_ERR_MAX], was[512], now[512];
	int changed = 0, rc;

	notify("RELOADING=1");
	log_info("SIGHUP: reloading %s",
		 ag->args.file ? ag->args.file : "the command-line options");
	rc = build_config(&ag->args, &n, err, sizeof(err));
	if (rc < 0) {
		log_warnx("reload: %s; the running configuration stays", err);
		notify("READY=1");
		return;
	}
	for (size_t i = 0; (o = es_config_option(i)); i++) {
		es_config_format(&ag->config, i, was, sizeof(was));
		es_config_format(&n, i, now, sizeof(now));
		if (!strcmp(was, now))
			continue;
		changed++;
		if (!strcmp(o->name, "token"))
			snprintf(was, sizeof(was), "(secret)");
		if (!strcmp(o->name, "token"))
			snprintf(now, sizeof(now), "(secret)");
		if (!o->reloadable) {
			log_warnx("reload: %s changed ('%s' -> '%s') but takes "
				  "effect only at restart",
				  o->name, was, now);
			continue;
		}
		log_info("reload: %s '%s' -> '%s' applied", o->name, was, now);
	}
	ag->config.log_level = n.log_level;
	atomic_store(&log_max, (int)n.log_level);
	log_info("reload done: %d option(s) changed; reloadable: log-level; "
		 "a restart applies the rest (allow-users and allow-groups "
		 "too: the API server reads them once)",
		 changed);
	es_config_fini(&n);
	notify("READY=1");
}

/*
 * Whether an agent answers on the socket already. Checked before the data
 * directory is touched, so a second agent started by mistake does no
 * recovery work under the first one's feet. The probe is a whole ping,
 * so an agent that still starts up or hangs (timeout) counts as in use,
 * and a socket file left by a crash does not.
 */
static int socket_in_use(const char *path)
{
	struct es_client *c;
	struct stat st;
	int rc;

	if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return 0;
	rc = es_client_open(&c, path, 5000);
	if (rc < 0)
		return 0;
	rc = es_client_ping(c);
	es_client_close(c);
	return rc == 0 || rc == ES_E_CLIENT_TIMEOUT;
}

/* ---- sync ------------------------------------------------------------- */

/* Sync's log lines, from its threads (the host's arg is the engine). */
static void sync_log_line(void *arg, int level, const char *msg)
{
	(void)arg;
	if (!strncmp(msg, "sync: ", 6))
		msg += 6;
	LOG_AT(level, 0, "sync: %s", msg);
}

/* Set by sync_restart: the agent stops as for SIGTERM, then exits 75. */
static atomic_int restart_wanted;

/* Sync cannot go on in this process (sync.h, restart): sync has logged
 * why; the main thread stops as it does for SIGTERM. */
static void sync_restart(void *arg, const char *why)
{
	(void)arg;
	(void)why;
	if (!atomic_exchange(&restart_wanted, 1))
		kill(getpid(), SIGTERM);
}

/* The sync configuration from ours; strings stay c's (sync copies). */
static void sync_config(const struct es_config *c, struct es_engine *e,
			const char *staging, struct es_sync_config *sc)
{
	memset(sc, 0, sizeof(*sc));
	sc->role = c->role == CFG_ROLE_EDGE ? ES_SYNC_EDGE : ES_SYNC_CLOUD;
	sc->device_id = es_engine_device_id(e);
	sc->listen_url = *c->listen ? c->listen : NULL;
	sc->peers = (const char *const *)c->peers;
	sc->n_peers = c->n_peers;
	sc->token = *c->token ? c->token : NULL;
	sc->tls_cert = *c->tls_cert ? c->tls_cert : NULL;
	sc->tls_key = *c->tls_key ? c->tls_key : NULL;
	sc->tls_ca = *c->tls_ca ? c->tls_ca : NULL;
	sc->allow_devices = (const char *const *)c->allow_devices;
	sc->n_allow_devices = c->n_allow_devices;
	sc->staging_dir = staging;
	sc->bandwidth = c->bandwidth;
	sc->interval_ms = (uint32_t)c->sync_interval;
	sc->chunk_size = (uint32_t)c->chunk_size;
	sc->backoff_max_ms = (uint32_t)c->backoff_max;
	sc->fetch_indexes = c->role == CFG_ROLE_EDGE && c->fetch_indexes;
	sc->index_wait_ms = (uint32_t)c->index_wait;
	sc->idle_timeout_ms =
	    c->role == CFG_ROLE_CLOUD ? (uint32_t)c->idle_timeout : 0;
}

/*
 * With a [sync] role: starts sync over the running engine and hands it to
 * the engine (peers, sync-now). 0 without a role.
 */
static int start_sync(struct agent *ag)
{
	const struct es_config *c = &ag->config;
	struct es_sync_config sc;
	struct es_sync_host host;
	char *staging;
	int rc;

	if (c->role == CFG_ROLE_NONE)
		return 0;
	if (asprintf(&staging, "%s/sync-staging", c->data_dir) < 0) {
		log_errorx("sync: out of memory");
		return -ENOMEM;
	}
	sync_config(c, ag->engine, staging, &sc);
	es_engine_sync_host(ag->engine, &host);
	host.log = sync_log_line;
	host.restart = sync_restart;
	rc = es_sync_start(&ag->sync, &sc, &host);
	free(staging);
	if (rc < 0) {
		if (rc == -EADDRINUSE)
			log_errorx("sync: cannot listen on %s: the address is "
				   "in use",
				   c->listen);
		else
			log_error(rc, "sync: cannot start");
		return rc;
	}
	es_engine_attach_sync(ag->engine, ag->sync);
	if (c->role == CFG_ROLE_CLOUD)
		log_info("sync: %zu allowed device(s)%s", c->n_allow_devices,
			 *c->token ? ", and a token" : "");
	else
		log_info("sync: a round every %llu ms%s",
			 (unsigned long long)c->sync_interval,
			 c->bandwidth ? ", bandwidth limited" : "");
	return 0;
}

/*
 * es_sync_stop on a thread of its own, waited for at most SYNC_STOP_MS:
 * nng 1.5.2 can hang for good closing a socket while a message arrives
 * on it (README, "Known limits"), and that must not keep the agent from
 * stopping. The record is shared with that thread; the last of the two
 * frees it.
 */
struct sync_stopper {
	struct es_sync *sync;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done, abandoned;
};

static void sync_stopper_free(struct sync_stopper *st)
{
	pthread_cond_destroy(&st->cv);
	pthread_mutex_destroy(&st->mu);
	free(st);
}

static void *sync_stop_main(void *arg)
{
	struct sync_stopper *st = arg;
	int abandoned;

	es_sync_stop(st->sync);
	pthread_mutex_lock(&st->mu);
	st->done = 1;
	abandoned = st->abandoned;
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->mu);
	if (abandoned)
		sync_stopper_free(st);
	return NULL;
}

/* 0 once sync stopped; -ETIMEDOUT if it is still stopping. */
static int stop_sync(struct agent *ag)
{
	struct sync_stopper *st;
	struct timespec until;
	pthread_t t;
	int rc = 0;

	if (!ag->sync)
		return 0;
	log_info("sync: stopping; transfers in progress resume at the next "
		 "start");
	es_engine_attach_sync(ag->engine, NULL);
	st = calloc(1, sizeof(*st));
	if (st) {
		st->sync = ag->sync;
		pthread_mutex_init(&st->mu, NULL);
		pthread_cond_init(&st->cv, NULL);
	}
	if (!st || pthread_create(&t, NULL, sync_stop_main, st)) {
		free(st); /* no thread: stop here, unbounded */
		es_sync_stop(ag->sync);
		ag->sync = NULL;
		return 0;
	}
	ag->sync = NULL;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += SYNC_STOP_MS / 1000;
	pthread_mutex_lock(&st->mu);
	while (!st->done && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&st->cv, &st->mu, &until);
	if (!st->done)
		st->abandoned = 1;
	pthread_mutex_unlock(&st->mu);
	if (!st->abandoned) {
		pthread_join(t, NULL);
		sync_stopper_free(st);
		return 0;
	}
	pthread_detach(t);
	log_errorx("sync: not stopped after %d s (nng 1.5.2 can hang closing "
		   "a connection its peer dropped); leaving without it: every "
		   "acknowledged write is durable, transfers resume at the "
		   "next start",
		   SYNC_STOP_MS / 1000);
	return -ETIMEDOUT;
}

/* ---- start and stop --------------------------------------------------- */

static int start(struct agent *ag)
{
	const struct es_config *c = &ag->config;
	struct es_engine_config ec;
	struct es_api_config ac = {0};
	int rc;

	log_info("edgesync %s starting: pid %d, config %s, log-level %s",
		 ES_VERSION, (int)getpid(),
		 ag->args.file ? ag->args.file : "(none)",
		 es_config_log_level_name(c->log_level));
	if (*c->cpus)
		log_info("running on CPUs %s", c->cpus);
	if (socket_in_use(c->socket)) {
		log_errorx("another agent is serving %s; not starting",
			   c->socket);
		return -EADDRINUSE;
	}
	es_engine_config_defaults(&ec);
	ec.data_dir = c->data_dir;
	ec.seal_threshold = c->seal_threshold;
	ec.index_R = (uint32_t)c->index_r;
	ec.index_L = (uint32_t)c->index_l;
	ec.index_alpha = (float)c->index_alpha;
	ec.build_threads = (unsigned)c->build_threads;
	ec.default_flags = c->role == CFG_ROLE_EDGE ? ES_SYNC_FLAG_UPLOAD : 0;
	ec.log = module_log;
	ec.log_arg = "engine";
	rc = es_engine_open(&ag->engine, &ec);
	if (rc < 0) {
		log_error(rc, "cannot open the data directory %s", c->data_dir);
		return rc;
	}
	log_info("data directory %s open", c->data_dir);

	ac.socket_path = c->socket;
	ac.workers = (unsigned)c->workers;
	ac.max_message = (size_t)c->max_message;
	ac.max_clients = (unsigned)c->max_clients;
	ac.allow_uids = c->allow_uids;
	ac.n_allow_uids = c->n_allow_uids;
	ac.allow_gids = c->allow_gids;
	ac.n_allow_gids = c->n_allow_gids;
	ac.log = module_log;
	ac.log_arg = "api";
	rc = es_api_server_start(&ag->api, ag->engine, &ac);
	if (rc < 0) {
		if (rc == -EADDRINUSE)
			log_errorx("cannot listen on %s: another agent is "
				   "serving it",
				   c->socket);
		else
			log_error(rc, "cannot listen on %s", c->socket);
		es_engine_close(ag->engine);
		ag->engine = NULL;
		return rc;
	}
	log_info("serving on %s (%llu workers, %zu allowed users, %zu "
		 "allowed groups)",
		 c->socket, (unsigned long long)c->workers, c->n_allow_uids,
		 c->n_allow_gids);
	rc = start_sync(ag);
	if (rc < 0) {
		es_api_server_stop(ag->api);
		es_engine_close(ag->engine);
		ag->api = NULL;
		ag->engine = NULL;
		return rc;
	}
	notify("READY=1\nSTATUS=serving");
	return 0;
}

/* Reads signals until one says stop; 0, or -errno if the fd failed. */
static int serve(struct agent *ag)
{
	struct signalfd_siginfo si;
	ssize_t n;

	for (;;) {
		n = read(ag->sigfd, &si, sizeof(si));
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(si)) {
			int rc = n < 0 ? -errno : -EIO;

			log_error(rc, "reading signals");
			return rc;
		}
		if (si.ssi_signo == SIGHUP) {
			reload(ag);
			continue;
		}
		if (atomic_load(&restart_wanted))
			log_info("stopping, to be started again (exit %d)",
				 CLI_RESTART);
		else
			log_info("%s from pid %u: stopping",
				 si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM",
				 si.ssi_pid);
		return 0;
	}
}

static void stop(struct agent *ag)
{
	int stuck;

	notify("STOPPING=1");
	stuck = stop_sync(ag) < 0;
	log_info("closing the API socket; requests in flight finish");
	es_api_server_stop(ag->api);
	if (stuck) {
		/* sync's threads may still call into the engine: leave it to
		 * the next start's recovery, as after a crash */
		log_info("stopped (the data directory is recovered at the "
			 "next start)");
		_exit(atomic_load(&restart_wanted) ? CLI_RESTART : CLI_OK);
	}
	log_info("draining the engine");
	es_engine_close(ag->engine);
	log_info("stopped");
}

/*
 * Sync moves a chunk (1 MiB by default) per message, and nng allocates
 * each message it receives. glibc maps buffers that large afresh and
 * unmaps them when freed, so every chunk would cost a fresh zeroed
 * mapping and a page fault per 4 KiB, on both sides (on the 2-core test
 * VM about as much time as the network itself). Allocations up to twice
 * the chunk stay on the heap instead, and up to 8 chunks of free heap
 * are kept for the next ones: a bounded few MiB.
 */
static void tune_malloc(const struct es_config *c)
{
	uint64_t chunk = c->chunk_size ? c->chunk_size : 1u << 20;
	uint64_t mmap_at = 2 * chunk + (1u << 20);

	if (mmap_at > 32u << 20) /* glibc's largest */
		mmap_at = 32u << 20;
	mallopt(M_MMAP_THRESHOLD, (int)mmap_at);
	mallopt(M_TRIM_THRESHOLD, (int)(8 * chunk));
}

/*
 * Pins the process to the configured CPUs before any thread starts, so
 * that every thread (the engine's, the API's, sync's and nng's) inherits
 * them. Every CPU listed must be one the process may run on now.
 */
/* Runs the agent on the configured CPUs; with check set, only says
 * whether it could. */
static int pin_cpus(const struct es_config *c, int check)
{
	cpu_set_t want, allowed, both;
	char why[160], list[256];
	int rc;

	if (!c->cpus || !*c->cpus)
		return 0;
	if (es_cpu_list_parse(c->cpus, &want, why, sizeof(why)) != 0) {
		cli_error("cpus: %s", why);
		return -EINVAL;
	}
	if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
		rc = -errno;
		log_error(rc, "cpus: cannot read the CPUs this agent may use");
		return rc;
	}
	CPU_AND(&both, &want, &allowed);
	if (!CPU_EQUAL(&both, &want)) {
		es_cpu_list_format(&allowed, list, sizeof(list));
		cli_error("cpus: %s names CPUs this agent may not run on "
			  "(it may use %s)",
			  c->cpus, list);
		return -EINVAL;
	}
	if (!check && sched_setaffinity(0, sizeof(want), &want) != 0) {
		rc = -errno;
		log_error(rc, "cpus: cannot run on %s", c->cpus);
		return rc;
	}
	return 0;
}

/* What -n checks beyond the file's values: what a start would refuse
 * (CPUs this agent may not use, TLS files that do not parse). */
static int check_more(const struct es_config *c)
{
	char why[512];
	int rc = pin_cpus(c, 1);

	if (rc < 0)
		return rc == -EINVAL ? CLI_CONFIG : CLI_FAIL;
	if (c->tls_cert && *c->tls_cert && c->tls_key && *c->tls_key &&
	    c->tls_ca && *c->tls_ca &&
	    es_sync_tls_check(c->tls_cert, c->tls_key, c->tls_ca, why,
			      sizeof(why)) != 0) {
		cli_error("%s", why);
		return CLI_CONFIG;
	}
	return CLI_OK;
}

int cli_agent(int argc, char **argv)
{
	struct agent ag = {.sigfd = -1};
	char err[ES_CONFIG_ERR_MAX];
	sigset_t set;
	int rc = parse_args(argc, argv, &ag.args);

	if (rc >= 0)
		goto out;
	if (build_config(&ag.args, &ag.config, err, sizeof(err)) < 0) {
		cli_error("%s", err);
		rc = CLI_CONFIG;
		goto out;
	}
	if (ag.args.check) {
		rc = check_more(&ag.config);
		if (rc == CLI_OK)
			printf("configuration OK\n");
		goto fini;
	}
	atomic_store(&log_max, (int)ag.config.log_level);
	tune_malloc(&ag.config);
	rc = pin_cpus(&ag.config, 0);
	if (rc < 0) {
		rc = rc == -EINVAL ? CLI_CONFIG : CLI_FAIL;
		goto fini;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	signal(SIGPIPE, SIG_IGN);
	rc = -pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (rc == 0) {
		ag.sigfd = signalfd(-1, &set, SFD_CLOEXEC);
		rc = ag.sigfd < 0 ? -errno : 0;
	}
	if (rc < 0) {
		log_error(rc, "cannot take the signals");
		rc = CLI_FAIL;
		goto fini;
	}
	rc = start(&ag);
	rc = rc == ES_E_SYNC_CONFIG ? CLI_CONFIG : rc < 0 ? CLI_FAIL : CLI_OK;
	if (rc == CLI_OK) {
		rc = serve(&ag) < 0 ? CLI_FAIL : CLI_OK;
		stop(&ag);
		if (rc == CLI_OK && atomic_load(&restart_wanted))
			rc = CLI_RESTART;
	}
	close(ag.sigfd);
fini:
	es_config_fini(&ag.config);
out:
	free(ag.args.set);
	return rc;
}
