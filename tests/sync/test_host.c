/*
 * The in-memory host of the sync tests (test_host.h).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "edgesync/crc32c.h"
#include "edgesync/distance.h"
#include "edgesync/ndvs.h"
#include "test_host.h"

static struct th_coll *find(struct test_host *h, const char *name)
{
	for (size_t i = 0; i < h->ncolls; i++)
		if (!strcmp(h->colls[i].c.name, name))
			return &h->colls[i];
	return NULL;
}

static struct th_seg *find_seg(struct th_coll *c, const char *origin,
			       uint64_t seq)
{
	for (size_t i = 0; c && i < c->n; i++)
		if (!strcmp(c->segs[i].s.origin, origin) &&
		    c->segs[i].s.origin_seq == seq)
			return &c->segs[i];
	return NULL;
}

/* ---- the host's callbacks --------------------------------------------- */

static int h_list_collections(void *arg, struct es_sync_collection **out,
			      size_t *n)
{
	struct test_host *h = arg;

	pthread_mutex_lock(&h->lock);
	*out = calloc(h->ncolls + 1, sizeof(**out));
	for (size_t i = 0; i < h->ncolls; i++)
		(*out)[i] = h->colls[i].c;
	*n = h->ncolls;
	pthread_mutex_unlock(&h->lock);
	return 0;
}

static int h_ensure_collection(void *arg, const struct es_sync_collection *c)
{
	struct test_host *h = arg;
	struct th_coll *tc;
	int rc = 0;

	pthread_mutex_lock(&h->lock);
	tc = find(h, c->name);
	if (tc && (tc->c.dim != c->dim || tc->c.metric != c->metric))
		rc = ES_E_SYNC_MISMATCH;
	else if (!tc && h->ncolls == TH_COLLS)
		rc = -ENOSPC;
	else if (!tc) {
		tc = &h->colls[h->ncolls++];
		memset(tc, 0, sizeof(*tc));
		tc->c = *c;
		tc->c.version = 0;
	}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

static int h_list_segments(void *arg, const char *coll, uint64_t since,
			   struct es_sync_segment **out, size_t *n)
{
	struct test_host *h = arg;
	struct th_coll *c;
	size_t k = 0;

	pthread_mutex_lock(&h->lock);
	c = find(h, coll);
	*out = calloc(TH_SEGS, sizeof(**out));
	for (size_t i = 0; c && i < c->n; i++)
		if (c->segs[i].s.add_version > since)
			(*out)[k++] = c->segs[i].s;
	*n = k;
	pthread_mutex_unlock(&h->lock);
	return c ? 0 : -ENOENT;
}

static int h_segment_tombstones(void *arg, const char *coll,
				uint64_t add_version,
				struct es_sync_tombstone **out, size_t *n)
{
	struct test_host *h = arg;
	struct th_coll *c;
	int rc = -ENOENT;

	pthread_mutex_lock(&h->lock);
	c = find(h, coll);
	*out = NULL;
	*n = 0;
	for (size_t i = 0; c && i < c->n; i++) {
		struct th_seg *s = &c->segs[i];

		if (s->s.add_version != add_version)
			continue;
		*out = calloc(s->nt + 1, sizeof(**out));
		memcpy(*out, s->t, s->nt * sizeof(**out));
		*n = s->nt;
		rc = 0;
	}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

/* The runs segment_clocks gives for s: its own, or {0, seal_hlc}. */
static void clocks_of(const struct th_seg *s, struct es_clock_run **out,
		      size_t *n)
{
	*n = s->nck ? s->nck : s->s.count > 0;
	*out = calloc(*n + 1, sizeof(**out));
	if (s->nck)
		memcpy(*out, s->ck, s->nck * sizeof(**out));
	else if (*n)
		(*out)[0].hlc = s->s.seal_hlc;
}

static int h_segment_clocks(void *arg, const char *coll, uint64_t add_version,
			    struct es_clock_run **out, size_t *n)
{
	struct test_host *h = arg;
	struct th_coll *c;
	int rc = -ENOENT;

	pthread_mutex_lock(&h->lock);
	c = find(h, coll);
	*out = NULL;
	*n = 0;
	for (size_t i = 0; c && i < c->n && rc; i++) {
		if (c->segs[i].s.add_version != add_version)
			continue;
		clocks_of(&c->segs[i], out, n);
		rc = 0;
	}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

static int h_segment_path(void *arg, const char *coll, int64_t id, char **path)
{
	struct test_host *h = arg;
	struct th_coll *c;
	int rc = -ENOENT;

	pthread_mutex_lock(&h->lock);
	c = find(h, coll);
	for (size_t i = 0; c && i < c->n; i++) {
		if (c->segs[i].s.id == id) {
			*path = strdup(c->segs[i].path);
			rc = 0;
		}
	}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

static int h_index_path(void *arg, const char *coll, int64_t id, char **path)
{
	struct test_host *h = arg;
	struct th_coll *c;
	int rc = -ENOENT;

	pthread_mutex_lock(&h->lock);
	c = find(h, coll);
	for (size_t i = 0; c && i < c->n; i++)
		if (c->segs[i].s.id == id && c->segs[i].index_path[0]) {
			*path = strdup(c->segs[i].index_path);
			rc = 0;
		}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

static int h_has_segment(void *arg, const char *coll, const char *origin,
			 uint64_t seq, uint32_t *checksum)
{
	struct test_host *h = arg;
	const struct th_seg *s;

	pthread_mutex_lock(&h->lock);
	s = find_seg(find(h, coll), origin, seq);
	if (s && checksum)
		*checksum = s->s.checksum;
	pthread_mutex_unlock(&h->lock);
	return s != NULL;
}

/* 1 if the n runs at k keep the rule of clock_runs.h for seg. */
static int clocks_valid(const struct es_sync_segment *seg,
			const struct es_clock_run *k, size_t n)
{
	return es_clock_runs_check(k, n, seg->count, seg->seal_hlc) == 0;
}

/* install and install_indexed: moves the staged files here. */
static int install(struct test_host *h, const char *coll, const char *staged,
		   const char *index, const struct es_sync_segment *seg,
		   const struct es_sync_tombstone *tombs, size_t n,
		   const struct es_clock_run *clocks, size_t n_clocks,
		   int *index_rc)
{
	struct stat sb;
	struct th_coll *c;
	struct th_seg *s;
	int rc = 0;

	pthread_mutex_lock(&h->lock);
	c = find(h, coll);
	if (!c || c->n == TH_SEGS) {
		rc = -ENOENT;
		goto out;
	}
	if (!clocks_valid(seg, clocks, n_clocks)) {
		h->bad_clocks++;
		rc = -EINVAL;
		goto out;
	}
	if (find_seg(c, seg->origin, seg->origin_seq)) {
		unlink(staged);
		goto out;
	}
	s = &c->segs[c->n];
	memset(s, 0, sizeof(*s));
	s->s = *seg;
	s->s.id = h->next_id++;
	s->s.add_version = ++c->c.version;
	s->s.index_size = 0;
	s->s.index_checksum = 0;
	snprintf(s->path, sizeof(s->path), "%s/seg-%lld.ndvs", h->dir,
		 (long long)s->s.id);
	if (rename(staged, s->path) != 0) {
		rc = -errno;
		goto out;
	}
	if (index && h->refuse_index)
		*index_rc = h->refuse_index;
	else if (index) {
		snprintf(s->index_path, sizeof(s->index_path),
			 "%s/seg-%lld.vamana", h->dir, (long long)s->s.id);
		if (rename(index, s->index_path) != 0 ||
		    stat(s->index_path, &sb) != 0)
			abort();
		s->s.index_size = (uint64_t)sb.st_size;
		s->s.index_checksum = seg->index_checksum;
		h->indexed_installs++;
	}
	s->t = calloc(n + 1, sizeof(*tombs));
	if (n)
		memcpy(s->t, tombs, n * sizeof(*tombs));
	s->nt = n;
	s->ck = calloc(n_clocks + 1, sizeof(*clocks));
	if (n_clocks)
		memcpy(s->ck, clocks, n_clocks * sizeof(*clocks));
	s->nck = n_clocks;
	c->n++;
	h->installs++;
out:
	pthread_mutex_unlock(&h->lock);
	return rc;
}

static int h_install(void *arg, const char *coll, const char *staged,
		     const struct es_sync_segment *seg,
		     const struct es_sync_tombstone *tombs, size_t n,
		     const struct es_clock_run *clocks, size_t n_clocks)
{
	return install(arg, coll, staged, NULL, seg, tombs, n, clocks, n_clocks,
		       NULL);
}

static int h_install_indexed(void *arg, const char *coll, const char *staged,
			     const char *index,
			     const struct es_sync_segment *seg,
			     const struct es_sync_tombstone *tombs, size_t n,
			     const struct es_clock_run *clocks, size_t n_clocks,
			     int *index_rc)
{
	*index_rc = 0;
	return install(arg, coll, staged, index, seg, tombs, n, clocks,
		       n_clocks, index_rc);
}

static struct th_ack *ack_find(struct test_host *h, const char *peer,
			       const char *coll, int dir, int create)
{
	for (size_t i = 0; i < h->nacks; i++)
		if (!strcmp(h->acks[i].peer, peer) &&
		    !strcmp(h->acks[i].coll, coll) && h->acks[i].dir == dir)
			return &h->acks[i];
	if (!create || h->nacks == TH_ACKS)
		return NULL;
	snprintf(h->acks[h->nacks].peer, sizeof(h->acks[0].peer), "%s", peer);
	snprintf(h->acks[h->nacks].coll, sizeof(h->acks[0].coll), "%s", coll);
	h->acks[h->nacks].dir = dir;
	h->acks[h->nacks].v = 0;
	return &h->acks[h->nacks++];
}

static int h_ack_get(void *arg, const char *peer, const char *coll,
		     enum es_sync_direction dir, uint64_t *v)
{
	struct test_host *h = arg;
	struct th_ack *a;

	pthread_mutex_lock(&h->lock);
	a = ack_find(h, peer, coll, dir, 0);
	*v = a ? a->v : 0;
	pthread_mutex_unlock(&h->lock);
	return 0;
}

static int h_ack_put(void *arg, const char *peer, const char *coll,
		     enum es_sync_direction dir, uint64_t v)
{
	struct test_host *h = arg;
	struct th_ack *a;

	pthread_mutex_lock(&h->lock);
	a = ack_find(h, peer, coll, dir, 1);
	if (a && v > a->v)
		a->v = v;
	pthread_mutex_unlock(&h->lock);
	return a ? 0 : -ENOSPC;
}

static int h_hlc_observe(void *arg, uint64_t hlc)
{
	struct test_host *h = arg;

	pthread_mutex_lock(&h->lock);
	if (hlc > h->hlc_seen)
		h->hlc_seen = hlc;
	pthread_mutex_unlock(&h->lock);
	return 0;
}

static void h_log(void *arg, int level, const char *msg)
{
	struct test_host *h = arg;

	pthread_mutex_lock(&h->lock);
	if (h->verbose)
		fprintf(stderr, "[%s %d] %s\n", h->name, level, msg);
	if (h->nlogs < TH_LOGS)
		h->logs[h->nlogs++] = strdup(msg);
	pthread_mutex_unlock(&h->lock);
}

/* Sync asked for a restart: counted, and kept as a log line. */
static void h_restart(void *arg, const char *why)
{
	struct test_host *h = arg;
	char line[600];

	snprintf(line, sizeof(line), "restart asked: %s", why);
	h_log(h, 0, line);
	pthread_mutex_lock(&h->lock);
	h->restarts++;
	pthread_mutex_unlock(&h->lock);
}

/* The slot of device in h's approval table (added if new); under lock. */
static int dev_slot(struct test_host *h, const char *device)
{
	for (size_t i = 0; i < h->nseen; i++)
		if (!strcmp(h->seen[i], device))
			return (int)i;
	if (h->nseen == TH_DEVS)
		return -1;
	snprintf(h->seen[h->nseen], sizeof(h->seen[0]), "%s", device);
	h->seen_count[h->nseen] = 0;
	h->approved[h->nseen] = 0;
	return (int)h->nseen++;
}

static int h_device_approved(void *arg, const char *device)
{
	struct test_host *h = arg;
	int i, rc;

	pthread_mutex_lock(&h->lock);
	i = dev_slot(h, device);
	if (i >= 0)
		h->seen_count[i]++;
	rc = h->approval_err < 0 ? h->approval_err
	     : i < 0		 ? -ENOSPC
				 : h->approved[i];
	pthread_mutex_unlock(&h->lock);
	return rc;
}

/* ---- the test's side -------------------------------------------------- */

void th_approvals(struct test_host *h)
{
	h->api.device_approved = h_device_approved;
}

void th_approve(struct test_host *h, const char *device, int approved)
{
	int i;

	pthread_mutex_lock(&h->lock);
	i = dev_slot(h, device);
	if (i >= 0)
		h->approved[i] = approved;
	pthread_mutex_unlock(&h->lock);
}

unsigned th_asked(struct test_host *h, const char *device)
{
	unsigned n = 0;

	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->nseen; i++)
		if (!strcmp(h->seen[i], device))
			n = h->seen_count[i];
	pthread_mutex_unlock(&h->lock);
	return n;
}

void th_init(struct test_host *h, const char *name, const char *dir,
	     const char *device)
{
	memset(h, 0, sizeof(*h));
	pthread_mutex_init(&h->lock, NULL);
	snprintf(h->dir, sizeof(h->dir), "%s", dir);
	snprintf(h->device, sizeof(h->device), "%s", device);
	mkdir(dir, 0700);
	h->name = name;
	h->next_id = 1;
	h->verbose = getenv("ES_TEST_VERBOSE") != NULL;
	h->api = (struct es_sync_host){
	    .list_collections = h_list_collections,
	    .ensure_collection = h_ensure_collection,
	    .list_segments = h_list_segments,
	    .segment_tombstones = h_segment_tombstones,
	    .segment_clocks = h_segment_clocks,
	    .segment_path = h_segment_path,
	    .has_segment = h_has_segment,
	    .install = h_install,
	    .install_indexed = h_install_indexed,
	    .index_path = h_index_path,
	    .ack_get = h_ack_get,
	    .ack_put = h_ack_put,
	    .hlc_observe = h_hlc_observe,
	    .log = h_log,
	    .restart = h_restart,
	    .arg = h,
	};
}

void th_fini(struct test_host *h)
{
	for (size_t i = 0; i < h->ncolls; i++)
		for (size_t j = 0; j < h->colls[i].n; j++) {
			free(h->colls[i].segs[j].t);
			free(h->colls[i].segs[j].ck);
		}
	for (size_t i = 0; i < h->nlogs; i++)
		free(h->logs[i]);
	pthread_mutex_destroy(&h->lock);
}

void th_add_collection(struct test_host *h, const char *name, uint32_t dim,
		       uint32_t flags)
{
	struct es_sync_collection c = {
	    .dim = dim, .metric = ES_METRIC_L2, .flags = flags};

	snprintf(c.name, sizeof(c.name), "%s", name);
	h_ensure_collection(h, &c);
	pthread_mutex_lock(&h->lock);
	find(h, name)->c.flags = flags;
	pthread_mutex_unlock(&h->lock);
}

static uint64_t now_hlc(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000)
	       << 16;
}

uint64_t th_add_segment(struct test_host *h, const char *coll, uint64_t count,
			uint32_t seed, size_t ntombs, const char *origin,
			uint64_t origin_seq)
{
	struct es_ndvs_info info;
	struct th_coll *c;
	struct th_seg *s;
	uint32_t dim, x = seed * 2654435761u + 1;
	float *v;
	uint64_t *ids, av;

	pthread_mutex_lock(&h->lock);
	c = find(h, coll);
	dim = c->c.dim;
	s = &c->segs[c->n];
	memset(s, 0, sizeof(*s));
	s->s.id = h->next_id++;
	snprintf(s->path, sizeof(s->path), "%s/seg-%lld.ndvs", h->dir,
		 (long long)s->s.id);
	v = malloc((count ? count : 1) * dim * sizeof(*v));
	ids = malloc((count ? count : 1) * sizeof(*ids));
	for (uint64_t i = 0; i < count * dim; i++) {
		x = x * 1103515245u + 12345u;
		v[i] = (float)(x >> 8) / 16777216.0f;
	}
	for (uint64_t i = 0; i < count; i++)
		ids[i] = (uint64_t)seed * 1000000 + i;
	if (es_ndvs_write(s->path, dim, count, v, ids, &info) != 0)
		abort();
	free(v);
	free(ids);
	snprintf(s->s.origin, sizeof(s->s.origin), "%s",
		 origin && *origin ? origin : h->device);
	s->s.origin_seq = origin_seq ? origin_seq : (uint64_t)s->s.id;
	s->s.seal_hlc = now_hlc() - ((uint64_t)60000 << 16); /* 1 min ago */
	s->s.count = count;
	s->s.dim = dim;
	s->s.size = info.file_size;
	s->s.checksum = info.checksum;
	s->s.add_version = av = ++c->c.version;
	s->t = calloc(ntombs + 1, sizeof(*s->t));
	for (size_t k = 0; k < ntombs; k++) {
		s->t[k].id = (uint64_t)seed * 1000 + k;
		s->t[k].hlc = s->s.seal_hlc - k;
		snprintf(s->t[k].origin, sizeof(s->t[k].origin), "%s",
			 h->device);
	}
	s->nt = ntombs;
	c->n++;
	pthread_mutex_unlock(&h->lock);
	return av;
}

void th_add_index(struct test_host *h, const char *coll, size_t i,
		  uint64_t size, uint32_t seed)
{
	unsigned char *b = malloc(size ? size : 1);
	uint32_t x = seed * 2654435761u + 7;
	struct th_seg *s;
	FILE *f;

	for (uint64_t k = 0; k < size; k++) {
		x = x * 1103515245u + 12345u;
		b[k] = (unsigned char)(x >> 16);
	}
	pthread_mutex_lock(&h->lock);
	s = &find(h, coll)->segs[i];
	snprintf(s->index_path, sizeof(s->index_path), "%s/seg-%lld.vamana",
		 h->dir, (long long)s->s.id);
	f = fopen(s->index_path, "wb");
	if (!f || fwrite(b, 1, size, f) != size || fclose(f) != 0)
		abort();
	s->s.index_size = size;
	s->s.index_checksum = es_crc32c(0, b, size);
	pthread_mutex_unlock(&h->lock);
	free(b);
}

void th_set_clocks(struct test_host *h, const char *coll, size_t i,
		   const struct es_clock_run *k, size_t n)
{
	struct th_seg *s;

	pthread_mutex_lock(&h->lock);
	s = &find(h, coll)->segs[i];
	free(s->ck);
	s->ck = calloc(n + 1, sizeof(*k));
	if (n)
		memcpy(s->ck, k, n * sizeof(*k));
	s->nck = n;
	pthread_mutex_unlock(&h->lock);
}

int th_clocks(struct test_host *h, const char *coll, const char *origin,
	      uint64_t seq, struct es_clock_run **out, size_t *n)
{
	const struct th_seg *s;

	pthread_mutex_lock(&h->lock);
	s = find_seg(find(h, coll), origin, seq);
	*out = NULL;
	*n = 0;
	if (s && s->nck) {
		*out = malloc(s->nck * sizeof(**out));
		memcpy(*out, s->ck, s->nck * sizeof(**out));
		*n = s->nck;
	}
	pthread_mutex_unlock(&h->lock);
	return s ? 0 : -1;
}

size_t th_count(struct test_host *h, const char *coll)
{
	struct th_coll *c;
	size_t n;

	pthread_mutex_lock(&h->lock);
	c = find(h, coll);
	n = c ? c->n : 0;
	pthread_mutex_unlock(&h->lock);
	return n;
}

uint32_t th_flags(struct test_host *h, const char *coll)
{
	struct th_coll *c;
	uint32_t f;

	pthread_mutex_lock(&h->lock);
	c = find(h, coll);
	f = c ? c->c.flags : 0;
	pthread_mutex_unlock(&h->lock);
	return f;
}

int th_segment(struct test_host *h, const char *coll, size_t i,
	       struct th_seg *out)
{
	struct th_coll *c;
	int rc = -1;

	pthread_mutex_lock(&h->lock);
	c = find(h, coll);
	if (c && i < c->n) {
		*out = c->segs[i];
		out->t = NULL;
		out->ck = NULL;
		rc = 0;
	}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *b;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc((size_t)n + 1);
	if (fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return b;
}

int th_same(struct test_host *a, struct test_host *b, const char *coll,
	    const char *origin, uint64_t seq)
{
	struct es_clock_run *ka = NULL, *kb = NULL;
	struct th_seg *x, *y;
	char *fa = NULL, *fb = NULL;
	size_t la = 0, lb = 0, na = 0, nb = 0;
	int same = 0;

	pthread_mutex_lock(&a->lock);
	pthread_mutex_lock(&b->lock);
	x = find_seg(find(a, coll), origin, seq);
	y = find_seg(find(b, coll), origin, seq);
	if (x && y && x->nt == y->nt) {
		fa = slurp(x->path, &la);
		fb = slurp(y->path, &lb);
		same = fa && fb && la == lb && !memcmp(fa, fb, la) &&
		       x->s.size == y->s.size && x->s.count == y->s.count &&
		       x->s.checksum == y->s.checksum;
		for (size_t i = 0; same && i < x->nt; i++)
			same = x->t[i].id == y->t[i].id &&
			       x->t[i].hlc == y->t[i].hlc &&
			       !strcmp(x->t[i].origin, y->t[i].origin);
		clocks_of(x, &ka, &na);
		clocks_of(y, &kb, &nb);
		same = same && na == nb &&
		       (na == 0 || !memcmp(ka, kb, na * sizeof(*ka)));
	}
	pthread_mutex_unlock(&b->lock);
	pthread_mutex_unlock(&a->lock);
	free(ka);
	free(kb);
	free(fa);
	free(fb);
	return same;
}

int th_same_index(struct test_host *a, struct test_host *b, const char *coll,
		  const char *origin, uint64_t seq)
{
	struct th_seg *x, *y;
	char *fa = NULL, *fb = NULL;
	size_t la = 0, lb = 0;
	int same = -1;

	pthread_mutex_lock(&a->lock);
	pthread_mutex_lock(&b->lock);
	x = find_seg(find(a, coll), origin, seq);
	y = find_seg(find(b, coll), origin, seq);
	if (x && y && y->index_path[0] && x->index_path[0]) {
		fa = slurp(x->index_path, &la);
		fb = slurp(y->index_path, &lb);
		same = fa && fb && la == lb && !memcmp(fa, fb, la) &&
		       x->s.index_size == y->s.index_size &&
		       x->s.index_checksum == y->s.index_checksum;
	}
	pthread_mutex_unlock(&b->lock);
	pthread_mutex_unlock(&a->lock);
	free(fa);
	free(fb);
	return same;
}

uint64_t th_ack_value(struct test_host *h, const char *coll, int dir)
{
	uint64_t v = 0;

	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->nacks; i++)
		if (!strcmp(h->acks[i].coll, coll) && h->acks[i].dir == dir)
			v = h->acks[i].v;
	pthread_mutex_unlock(&h->lock);
	return v;
}

void th_clear_acks(struct test_host *h)
{
	pthread_mutex_lock(&h->lock);
	h->nacks = 0;
	pthread_mutex_unlock(&h->lock);
}

uint64_t th_installs(struct test_host *h)
{
	uint64_t n;

	pthread_mutex_lock(&h->lock);
	n = h->installs;
	pthread_mutex_unlock(&h->lock);
	return n;
}

size_t th_log_count(struct test_host *h, const char *needle)
{
	size_t n = 0;

	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->nlogs; i++)
		n += strstr(h->logs[i], needle) != NULL;
	pthread_mutex_unlock(&h->lock);
	return n;
}

size_t th_log_first(struct test_host *h, const char *needle)
{
	size_t i;

	pthread_mutex_lock(&h->lock);
	for (i = 0; i < h->nlogs; i++)
		if (strstr(h->logs[i], needle))
			break;
	pthread_mutex_unlock(&h->lock);
	return i;
}

/* ---- helpers of the tests --------------------------------------------- */

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>

int th_free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0)
		abort();
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

void th_tmpdir(char *buf, size_t size, const char *tag)
{
	const char *t = getenv("TMPDIR");

	snprintf(buf, size, "%s/es-sync-%s-XXXXXX", t && *t ? t : "/tmp", tag);
	if (!mkdtemp(buf))
		abort();
}

void th_rm_rf(const char *dir)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static struct {
	char *root;
	size_t size;
	const char *tag;
} group;

void th_group(char *root, size_t size, const char *tag)
{
	group.root = root;
	group.size = size;
	group.tag = tag;
	if (getenv("ES_TEST_FILTER"))
		cmocka_set_test_filter(getenv("ES_TEST_FILTER"));
}

int th_group_setup(void **state)
{
	(void)state;
	th_tmpdir(group.root, group.size, group.tag);
	return 0;
}

int th_group_teardown(void **state)
{
	(void)state;
	if (!getenv("ES_TEST_KEEP"))
		th_rm_rf(group.root);
	return 0;
}

uint64_t th_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

size_t th_files(const char *dir, const char *suffix, uint64_t *size)
{
	size_t n = 0, sl = strlen(suffix);
	struct dirent *de;
	struct stat sb;
	char path[1024];
	DIR *d = opendir(dir);

	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);

		if (l < sl || strcmp(de->d_name + l - sl, suffix))
			continue;
		n++;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (size && stat(path, &sb) == 0)
			*size = (uint64_t)sb.st_size;
	}
	closedir(d);
	return n;
}

void th_node_init(struct th_node *n, const char *root, const char *name,
		  const char *device, enum es_sync_role role)
{
	char files[512];

	memset(n, 0, sizeof(*n));
	snprintf(files, sizeof(files), "%s/%s-files", root, name);
	snprintf(n->staging, sizeof(n->staging), "%s/%s-staging", root, name);
	th_init(&n->h, name, files, device);
	n->c.role = role;
	n->c.device_id = n->h.device;
	n->c.staging_dir = n->staging;
	n->c.token = "lab-token-0123456789";
	n->c.chunk_size = 4096;
	n->c.interval_ms = 100;
	n->c.backoff_max_ms = 1000;
	if (role == ES_SYNC_CLOUD) {
		n->c.listen_url = n->url;
	} else {
		n->peers[0] = n->peer_url;
		n->c.peers = n->peers;
		n->c.n_peers = 1;
	}
	n->c.allow_devices = n->allow;
}

int th_node_start(struct th_node *n)
{
	return es_sync_start(&n->s, &n->c, &n->h.api);
}

void th_node_stop(struct th_node *n)
{
	es_sync_stop(n->s);
	n->s = NULL;
}

int th_status(struct th_node *n, const char *device,
	      struct es_sync_peer_status *st)
{
	struct es_sync_peer_status *v;
	size_t k;
	int rc = -1;

	if (es_sync_status(n->s, &v, &k) != 0)
		return -1;
	for (size_t i = 0; i < k; i++) {
		if (n->c.role == ES_SYNC_EDGE ||
		    (device && !strcmp(v[i].device, device))) {
			*st = v[i];
			rc = 0;
			break;
		}
	}
	free(v);
	return rc;
}
