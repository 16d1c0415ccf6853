/*
 * A collection: open and recovery, inserts, deletes, gets. The locks and
 * invariants are in collection_impl.h; sealing and segment handles are in
 * collection_seal.c, searching in collection_search.c.
 *
 * Write path (es_collection_insert):
 *   1. check the batch, take ingest shared, stamp it with one hlc
 *   2. append one log record and wait until it is durable (group commit)
 *   3. take state exclusively and apply every row: the row goes to the
 *      growing buffer if its version beats the id's tombstone and live
 *      copy (invariants 1-3)
 *   4. release; return 0: durable and visible
 * A crash between 2 and 3 loses nothing: recovery replays the record.
 *
 * Recovery (es_collection_open): tombstones, then segments in the order
 * they were added, then the log generations no segment holds, each
 * applied with the same version rule, so the result does not depend on
 * the order in which concurrent writers reached the log.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "collection_impl.h"
#include "edgesync/dirs.h"
#include "edgesync/store_error.h"
#include "edgesync/le.h"

enum { REC_INSERT = 1, REC_DELETE = 2 };
#define REC_HEADER 16 /* type u8, 3 zero bytes, count u32, hlc u64 */

static int origin_cmp(const char *a, const char *b)
{
	return strcmp(a, b);
}

/* The version of the copy at loc. */
static void version_of(const struct es_collection *c, uint64_t loc,
		       uint64_t *hlc, const char **origin)
{
	const struct part *pt = c->parts[loc_part(loc)];

	if (pt->kind == PART_BUFFER) {
		*hlc = pt->buf.hlc[loc_row(loc)];
		*origin = c->origin;
	} else {
		*hlc = es_clock_runs_at(pt->runs, pt->n_runs, loc_row(loc));
		*origin = pt->meta.origin;
	}
}

int coll_wins(const struct es_collection *c, uint64_t id, uint64_t hlc,
	      const char *origin, uint64_t *cur)
{
	uint64_t tomb = idmap_get(&c->tombs, id), cur_hlc;
	const char *cur_origin;

	*cur = idmap_get(&c->live, id);
	if (tomb != ES_IDMAP_NONE && tomb >= hlc)
		return 0; /* a delete at the same clock wins */
	if (*cur == ES_IDMAP_NONE)
		return 1;
	version_of(c, *cur, &cur_hlc, &cur_origin);
	if (cur_hlc != hlc)
		return hlc > cur_hlc;
	return origin_cmp(origin, cur_origin) >= 0;
}

/* The copy at loc stops being live. */
void coll_kill(struct es_collection *c, uint64_t loc)
{
	struct part *pt = c->parts[loc_part(loc)];

	if (pt->kind == PART_BUFFER)
		membuf_kill(&pt->buf, loc_row(loc));
	else
		atomic_fetch_add(&pt->dead, 1);
}

int coll_set_live(struct es_collection *c, uint64_t id, uint64_t loc,
		  uint64_t cur)
{
	if (cur != ES_IDMAP_NONE && cur != loc)
		coll_kill(c, cur);
	return idmap_put(&c->live, id, loc);
}

/* Applies one inserted row to the growing buffer (state held). */
static int apply_insert(struct es_collection *c, uint64_t id, uint64_t hlc,
			const float *v)
{
	struct part *g = c->parts[c->growing];
	uint64_t cur, row;
	int rc;

	if (!coll_wins(c, id, hlc, c->origin, &cur))
		return 0;
	rc = membuf_put(&g->buf, id, hlc, v, &row);
	if (rc == 0)
		rc = coll_set_live(c, id, loc_pack(c->growing, row), cur);
	return rc;
}

int coll_apply_tombstone(struct es_collection *c, uint64_t id, uint64_t hlc)
{
	uint64_t cur = idmap_get(&c->live, id), cur_hlc, tomb;
	const char *cur_origin;

	if (cur != ES_IDMAP_NONE) {
		version_of(c, cur, &cur_hlc, &cur_origin);
		if (cur_hlc > hlc)
			return 0; /* a newer write stands */
		coll_kill(c, cur);
		idmap_del(&c->live, id);
	}
	tomb = idmap_get(&c->tombs, id);
	if (tomb == ES_IDMAP_NONE || tomb < hlc)
		return idmap_put(&c->tombs, id, hlc);
	return 0;
}

/* Applies one local delete, kept to be sealed with the buffer. */
static int apply_delete(struct es_collection *c, uint64_t id, uint64_t hlc)
{
	struct es_tombstone t = {.id = id, .hlc = hlc};
	int rc = coll_apply_tombstone(c, id, hlc);

	if (rc < 0)
		return rc;
	memcpy(t.origin, c->origin, sizeof(t.origin));
	return membuf_add_tomb(&c->parts[c->growing]->buf, &t);
}

/* Checks a log record and applies it (state held). */
static int apply_record(struct es_collection *c, const unsigned char *rec,
			uint32_t len)
{
	uint32_t count;
	uint64_t hlc, want;
	int rc = 0;

	if (len < REC_HEADER)
		return ES_E_WAL_CORRUPT;
	count = le32_load(rec + 4);
	hlc = le64_load(rec + 8);
	want = REC_HEADER + (uint64_t)count * 8;
	if (rec[0] == REC_INSERT)
		want += (uint64_t)count * c->p.dim * sizeof(float);
	else if (rec[0] != REC_DELETE)
		return ES_E_WAL_CORRUPT;
	if (want != len)
		return ES_E_WAL_CORRUPT;
	const unsigned char *ids = rec + REC_HEADER;
	const unsigned char *vec = ids + (uint64_t)count * 8;
	size_t row_bytes = c->p.dim * sizeof(float);
	float *v = malloc(row_bytes);

	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; rc == 0 && i < count; i++) {
		uint64_t id = le64_load(ids + 8 * (size_t)i);

		if (rec[0] == REC_DELETE) {
			rc = apply_delete(c, id, hlc);
		} else {
			memcpy(v, vec + i * row_bytes, row_bytes);
			rc = apply_insert(c, id, hlc, v);
		}
	}
	free(v);
	return rc;
}

static int replay_one(void *arg, uint64_t gen, const void *data, uint32_t len)
{
	return apply_record(arg, data, len);
}

/* Builds, logs and applies one record; returns once durable and visible. */
static int write_record(struct es_collection *c, int type, const uint64_t *ids,
			const float *vectors, size_t n)
{
	uint64_t len = REC_HEADER + n * 8, hlc;
	unsigned char *rec;
	int rc, due = 0;

	if (type == REC_INSERT)
		len += n * c->p.dim * sizeof(float);
	if (n > UINT32_MAX || len > ES_WAL_MAX_RECORD)
		return ES_E_WAL_TOO_BIG;
	rec = malloc(len);
	if (!rec)
		return -ENOMEM;
	pthread_rwlock_rdlock(&c->ingest);
	rc = c->cat.hlc_now(c->cat.arg, &hlc);
	if (rc == 0) {
		memset(rec, 0, REC_HEADER);
		rec[0] = (unsigned char)type;
		le32_store(rec + 4, (uint32_t)n);
		le64_store(rec + 8, hlc);
		for (size_t i = 0; i < n; i++)
			le64_store(rec + REC_HEADER + 8 * i, ids[i]);
		if (type == REC_INSERT)
			memcpy(rec + REC_HEADER + 8 * n, vectors,
			       n * c->p.dim * sizeof(float));
		rc = es_wal_append(c->wal, rec, (uint32_t)len);
	}
	if (rc == 0) {
		pthread_rwlock_wrlock(&c->state);
		rc = apply_record(c, rec, (uint32_t)len);
		/* read under the lock: a seal swaps parts and growing */
		due = rc == 0 && type == REC_INSERT &&
		      coll_buffer_full(c, &c->parts[c->growing]->buf);
		pthread_rwlock_unlock(&c->state);
	}
	pthread_rwlock_unlock(&c->ingest);
	free(rec);
	if (due && c->cat.wake)
		c->cat.wake(c->cat.arg);
	return rc;
}

int es_collection_insert(struct es_collection *c, const uint64_t *ids,
			 const float *vectors, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n * c->p.dim; i++)
		if (!isfinite(vectors[i]))
			return ES_E_VECS_NONFINITE;
	if (c->p.metric != ES_METRIC_COSINE)
		return write_record(c, REC_INSERT, ids, vectors, n);

	/* cosine: stored normalized, so every part compares the same way */
	float *unit = malloc(n * c->p.dim * sizeof(float));
	int rc;

	if (!unit)
		return -ENOMEM;
	memcpy(unit, vectors, n * c->p.dim * sizeof(float));
	for (size_t i = 0; i < n; i++)
		es_vector_normalize(unit + i * c->p.dim, c->p.dim);
	rc = write_record(c, REC_INSERT, ids, unit, n);
	free(unit);
	return rc;
}

int es_collection_delete(struct es_collection *c, const uint64_t *ids, size_t n)
{
	return n ? write_record(c, REC_DELETE, ids, NULL, n) : 0;
}

int es_collection_get(struct es_collection *c, uint64_t id, float *out)
{
	uint64_t loc;
	struct part *pt;
	int rc;

	pthread_rwlock_rdlock(&c->state);
	loc = idmap_get(&c->live, id);
	if (loc == ES_IDMAP_NONE) {
		rc = -ENOENT;
	} else if ((pt = c->parts[loc_part(loc)])->kind == PART_BUFFER) {
		memcpy(out, membuf_row(&pt->buf, loc_row(loc)),
		       c->p.dim * sizeof(float));
		rc = 0;
	} else {
		rc = coll_part_acquire(c, pt);
		if (rc == 0) {
			rc = es_ndvs_read_rows(pt->ndvs, loc_row(loc), 1, out);
			coll_part_release(c, pt);
		}
	}
	pthread_rwlock_unlock(&c->state);
	return rc;
}

/* ---- parts ---------------------------------------------------------- */

int coll_part_add(struct es_collection *c, struct part *pt, uint32_t *h)
{
	uint32_t i;

	for (i = 0; i < c->n_parts && c->parts[i]; i++)
		;
	if (i == c->n_parts) {
		struct part **parts =
		    realloc(c->parts, (c->n_parts + 1) * sizeof(*parts));

		if (!parts)
			return -ENOMEM;
		c->parts = parts;
		c->n_parts++;
	}
	c->parts[i] = pt;
	*h = i;
	if (pt->kind == PART_SEGMENT) {
		if (c->n_segments == c->cap_segments) {
			uint32_t cap =
			    c->cap_segments ? c->cap_segments * 2 : 16;
			uint32_t *segs =
			    realloc(c->segments, cap * sizeof(*segs));

			if (!segs) {
				c->parts[i] = NULL;
				return -ENOMEM;
			}
			c->segments = segs;
			c->cap_segments = cap;
		}
		c->segments[c->n_segments++] = i;
	}
	return 0;
}

void coll_part_free(struct part *pt)
{
	if (!pt)
		return;
	if (pt->kind == PART_BUFFER)
		membuf_fini(&pt->buf);
	coll_part_close_handles(pt);
	pthread_mutex_destroy(&pt->mu);
	free(pt->path);
	free(pt->index_path);
	free(pt->idle);
	free(pt->runs);
	free(pt);
}

int coll_part_set_runs(struct part *pt, const struct es_clock_run *runs,
		       size_t n)
{
	const struct es_segment_meta *m = &pt->meta;
	const struct es_clock_run one = {.row = 0, .hlc = m->seal_hlc};
	struct es_clock_run *copy;

	if (n == 0 && m->count > 0) {
		runs = &one;
		n = 1;
	}
	if (es_clock_runs_check(runs, n, m->count, m->seal_hlc))
		return -EINVAL;
	copy = malloc((n ? n : 1) * sizeof(*copy));
	if (!copy)
		return -ENOMEM;
	if (n)
		memcpy(copy, runs, n * sizeof(*copy));
	free(pt->runs);
	pt->runs = copy;
	pt->n_runs = n;
	return 0;
}

static struct part *part_new(enum part_kind kind, uint32_t dim)
{
	struct part *pt = calloc(1, sizeof(*pt));

	if (!pt)
		return NULL;
	pt->kind = kind;
	pthread_mutex_init(&pt->mu, NULL);
	if (kind == PART_BUFFER)
		membuf_init(&pt->buf, dim);
	return pt;
}

struct part *coll_segment_part(struct es_collection *c,
			       const struct es_segment_meta *m)
{
	struct part *pt = part_new(PART_SEGMENT, c->p.dim);

	if (!pt)
		return NULL;
	pt->meta = *m;
	if (asprintf(&pt->path, "%s/seg-%lld.ndvs", c->dir, (long long)m->id) <
		0 ||
	    asprintf(&pt->index_path, "%s/seg-%lld.vamana", c->dir,
		     (long long)m->id) < 0) {
		pt->path = pt->index_path = NULL;
		coll_part_free(pt);
		return NULL;
	}
	return pt;
}

/* ---- open and recovery ----------------------------------------------- */

int coll_read_ids(const char *path, const struct es_segment_meta *m,
		  uint32_t dim, uint64_t **ids)
{
	struct es_ndvs_info info;
	struct es_ndvs *seg = NULL;
	int rc = es_ndvs_open(&seg, path, ES_NDVS_OPEN_PREAD, &info);

	*ids = NULL;
	if (rc == 0 &&
	    (info.file_size != m->size || info.checksum != m->checksum ||
	     info.count != m->count || info.dim != dim))
		rc = ES_E_NDVS_SIZE; /* not the file the record describes */
	if (rc == 0 && !(*ids = malloc((m->count + 1) * sizeof(uint64_t))))
		rc = -ENOMEM;
	if (rc == 0)
		rc = es_ndvs_read_ids(seg, 0, m->count, *ids);
	es_ndvs_close(seg);
	if (rc < 0) {
		free(*ids);
		*ids = NULL;
	}
	return rc;
}

/*
 * A segment's rows are many keys in a table much larger than the cache:
 * the table gets room for all of them first (no rehash on the way), and
 * each row's slots are fetched ROWS_AHEAD rows before they are used.
 */
#define ROWS_AHEAD 8

int coll_rows_live(struct es_collection *c, uint32_t h, const uint64_t *ids)
{
	struct part *pt = c->parts[h];
	uint64_t n = pt->meta.count;
	size_t run = 0;
	int rc = idmap_reserve(&c->live, c->live.count + n);

	for (uint64_t r = 0; rc == 0 && r < n; r++) {
		uint64_t cur;

		while (run + 1 < pt->n_runs && pt->runs[run + 1].row <= r)
			run++;
		if (r + ROWS_AHEAD < n) {
			idmap_prefetch(&c->live, ids[r + ROWS_AHEAD]);
			if (c->tombs.count)
				idmap_prefetch(&c->tombs, ids[r + ROWS_AHEAD]);
		}
		if (coll_wins(c, ids[r], pt->runs[run].hlc, pt->meta.origin,
			      &cur))
			rc = coll_set_live(c, ids[r], loc_pack(h, r), cur);
		else
			atomic_fetch_add(&pt->dead, 1);
	}
	return rc;
}

/* Loads a recorded segment: its file must be there, whole; its ids go live. */
static int load_segment(struct es_collection *c,
			const struct es_segment_meta *m)
{
	struct part *pt = coll_segment_part(c, m);
	struct es_clock_run *runs = NULL;
	uint64_t *ids = NULL;
	size_t n_runs = 0;
	uint32_t h;
	int rc;

	if (!pt)
		return -ENOMEM;
	rc = c->cat.clocks(c->cat.arg, m, &runs, &n_runs);
	if (rc == 0)
		rc = coll_part_set_runs(pt, runs, n_runs);
	free(runs);
	if (rc == 0)
		rc = coll_read_ids(pt->path, m, c->p.dim, &ids);
	if (rc == 0)
		rc = coll_part_add(c, pt, &h);
	if (rc < 0) {
		free(ids);
		coll_part_free(pt);
		return rc;
	}
	rc = coll_rows_live(c, h, ids);
	free(ids);
	return rc;
}

/* Is name a file the catalog names (or the log directory)? */
static int is_recorded(const struct es_collection *c, const char *name)
{
	long long id;
	char kind[16], tail;

	if (!strcmp(name, "wal") || !strcmp(name, ".") || !strcmp(name, ".."))
		return 1;
	if (sscanf(name, "seg-%lld.%15[a-z]%c", &id, kind, &tail) != 2)
		return 0;
	for (uint32_t i = 0; i < c->n_segments; i++) {
		const struct part *pt = c->parts[c->segments[i]];

		if (pt->meta.id != id)
			continue;
		if (!strcmp(kind, "ndvs"))
			return 1;
		return !strcmp(kind, "vamana") && pt->meta.indexed;
	}
	return 0;
}

/* Removes what no record names: half-done seals, temporary files. */
static int remove_strays(struct es_collection *c)
{
	DIR *d = opendir(c->dir);
	struct dirent *e;
	int rc = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)) != NULL) {
		if (is_recorded(c, e->d_name))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT) {
			rc = -errno;
			break;
		}
	}
	closedir(d);
	return rc;
}

static int collection_alloc(struct es_collection **cp, const char *dir,
			    const struct es_collection_params *p,
			    const struct es_collection_catalog *cat)
{
	struct es_collection *c = calloc(1, sizeof(*c));
	pthread_rwlockattr_t attr;

	if (!c)
		return -ENOMEM;
	c->dir = strdup(dir);
	c->p = *p;
	if (!c->p.clock_runs_max)
		c->p.clock_runs_max = ES_CLOCK_RUNS_MAX;
	snprintf(c->origin, sizeof(c->origin), "%s",
		 p->origin ? p->origin : "");
	c->p.origin = c->origin;
	c->cat = *cat;
	c->dist = es_distance_get(p->metric);
	c->frozen = PART_NONE;
	idmap_init(&c->live);
	idmap_init(&c->tombs);
	pthread_mutex_init(&c->seal_mu, NULL);
	pthread_mutex_init(&c->index_mu, NULL);
	/* writers first: searches must not starve a seal or an insert */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(
	    &attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&c->ingest, &attr);
	pthread_rwlock_init(&c->state, &attr);
	pthread_rwlockattr_destroy(&attr);
	*cp = c;
	if (!c->dir || !c->dist)
		return !c->dir ? -ENOMEM : -EINVAL;
	return 0;
}

int es_collection_open(struct es_collection **cp, const char *dir,
		       const struct es_collection_params *p,
		       const struct es_collection_catalog *cat,
		       const struct es_segment_meta *segs, size_t n_segs,
		       const struct es_tombstone *tombs, size_t n_tombs)
{
	struct es_collection *c = NULL;
	struct part *growing;
	uint64_t max_gen = 0;
	char *wal_dir = NULL;
	int rc;

	*cp = NULL;
	if (p->dim == 0 || p->dim > 65536 || p->seal_threshold == 0 ||
	    p->clock_runs_max > ES_CLOCK_RUNS_MAX || !cat->clocks)
		return -EINVAL;
	rc = es_mkdir_durable(dir);
	if (rc < 0)
		return rc;
	rc = collection_alloc(&c, dir, p, cat);
	if (rc < 0)
		goto err;
	for (size_t i = 0; rc == 0 && i < n_tombs; i++) {
		uint64_t t = idmap_get(&c->tombs, tombs[i].id);

		if (t == ES_IDMAP_NONE || t < tombs[i].hlc)
			rc = idmap_put(&c->tombs, tombs[i].id, tombs[i].hlc);
	}
	for (size_t i = 0; rc == 0 && i < n_segs; i++) {
		rc = load_segment(c, &segs[i]);
		if (segs[i].wal_gen > max_gen)
			max_gen = segs[i].wal_gen;
	}
	if (rc == 0)
		rc = remove_strays(c);
	if (rc < 0)
		goto err;
	growing = part_new(PART_BUFFER, p->dim);
	rc = growing ? coll_part_add(c, growing, &c->growing) : -ENOMEM;
	if (rc < 0) {
		coll_part_free(growing);
		goto err;
	}
	if (asprintf(&wal_dir, "%s/wal", dir) < 0) {
		rc = -ENOMEM;
		goto err;
	}
	rc = es_wal_open(&c->wal, wal_dir, max_gen + 1, replay_one, c);
	free(wal_dir);
	if (rc < 0)
		goto err;
	*cp = c;
	if (c->cat.wake)
		c->cat.wake(c->cat.arg); /* unindexed segments, a due seal */
	return 0;
err:
	es_collection_close(c);
	return rc;
}

void es_collection_close(struct es_collection *c)
{
	if (!c)
		return;
	es_wal_close(c->wal);
	for (uint32_t i = 0; i < c->n_parts; i++)
		coll_part_free(c->parts[i]);
	free(c->parts);
	free(c->segments);
	idmap_fini(&c->live);
	idmap_fini(&c->tombs);
	pthread_rwlock_destroy(&c->ingest);
	pthread_rwlock_destroy(&c->state);
	pthread_mutex_destroy(&c->seal_mu);
	pthread_mutex_destroy(&c->index_mu);
	free(c->dir);
	free(c);
}

void es_collection_stats(struct es_collection *c, struct es_collection_stats *s)
{
	memset(s, 0, sizeof(*s));
	pthread_rwlock_rdlock(&c->state);
	s->vectors = c->live.count;
	for (uint32_t i = 0; i < c->n_parts; i++) {
		struct part *pt = c->parts[i];

		if (!pt)
			continue;
		if (pt->kind == PART_BUFFER) {
			s->growing += pt->buf.live;
			continue;
		}
		s->segments++;
		s->indexed += pt->meta.indexed != 0;
		s->bytes += pt->meta.size + pt->meta.index_size;
		pthread_mutex_lock(&pt->mu);
		s->open_handles += pt->ndvs != NULL;
		pthread_mutex_unlock(&pt->mu);
	}
	pthread_rwlock_unlock(&c->state);
}

int es_collection_segments(struct es_collection *c,
			   struct es_segment_meta **out, size_t *n)
{
	pthread_rwlock_rdlock(&c->state);
	*n = c->n_segments;
	*out = malloc((c->n_segments + 1) * sizeof(**out));
	for (uint32_t i = 0; *out && i < c->n_segments; i++)
		(*out)[i] = c->parts[c->segments[i]]->meta;
	pthread_rwlock_unlock(&c->state);
	return *out ? 0 : -ENOMEM;
}
