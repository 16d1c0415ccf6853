/*
 * Sealing, index builds and segment handles of a collection.
 *
 * Seal, the only way a buffer becomes a segment:
 *   freeze      ingest exclusive: rotate the log (generation G closes),
 *               take the seal clock, the growing buffer becomes the
 *               frozen one, a new empty buffer takes writes. G holds
 *               exactly the frozen writes, and the seal clock is above
 *               every one of them and below every later write.
 *   write       seg-<id>.ndvs from the frozen buffer's live rows,
 *               ordered by the clock of their write (temp file, fsync,
 *               rename, directory fsync). Each row keeps its write's
 *               clock as its version, here and on every peer: the rows
 *               of one write are one clock run (clock_runs.h), so a
 *               segment has at most as many runs as the buffer had
 *               writes (coll_buffer_full bounds those). The segment's
 *               clock (seal_hlc) is the newest of its rows' writes, or
 *               the seal clock if it keeps none. A seal later than due
 *               (the maintenance thread busy, a failed seal retried
 *               while writes went on, two log generations replayed into
 *               one buffer) can find more writes than clock_runs_max;
 *               it then merges runs into groups of consecutive ones,
 *               each group taking its newest clock, so rows keep their
 *               order and the segment stays shippable, and those rows'
 *               versions are rounded up to within their group.
 *   record      catalog->sealed(segment, its clock runs, wal_gen G, the
 *               buffer's tombstones): durable in the manifest
 *   swap        state exclusive: the segment becomes a part, live copies
 *               move to it, the frozen buffer goes
 *   cut         log generations <= G are deleted
 * A crash before "record" leaves a stray file (removed at open) and G
 * (replayed); after it, the segment and generations > G (G itself is
 * deleted at open). A failed write or record leaves the frozen buffer in
 * place, searched as before, and the next seal retries it.
 *
 * Handles: a segment's NDVS map, its index and searchers open on first use
 * (coll_part_acquire) and close when more than open_segments are open and
 * nobody uses them, least recently used first.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collection_impl.h"
#include "edgesync/store_error.h"

/* Moves the growing buffer to frozen, if due (seal_mu held). */
static int freeze(struct es_collection *c, int force)
{
	struct part *g, *fresh;
	uint64_t closed;
	uint32_t h;
	int rc;

	pthread_rwlock_wrlock(&c->ingest);
	g = c->parts[c->growing];
	if (c->frozen != PART_NONE ||
	    (g->buf.live == 0 && g->buf.n_tombs == 0) ||
	    (!force && !coll_buffer_full(c, &g->buf))) {
		pthread_rwlock_unlock(&c->ingest);
		return 0;
	}
	fresh = calloc(1, sizeof(*fresh));
	if (!fresh) {
		pthread_rwlock_unlock(&c->ingest);
		return -ENOMEM;
	}
	fresh->kind = PART_BUFFER;
	pthread_mutex_init(&fresh->mu, NULL);
	membuf_init(&fresh->buf, c->p.dim);
	rc = es_wal_rotate(c->wal, &closed);
	if (rc == 0)
		rc = c->cat.hlc_now(c->cat.arg, &c->frozen_hlc);
	if (rc == 0) {
		pthread_rwlock_wrlock(&c->state);
		rc = coll_part_add(c, fresh, &h);
		if (rc == 0) {
			c->frozen = c->growing;
			c->frozen_gen = closed;
			c->growing = h;
		}
		pthread_rwlock_unlock(&c->state);
	}
	pthread_rwlock_unlock(&c->ingest);
	if (rc < 0)
		coll_part_free(fresh);
	return rc;
}

/* Orders buffer rows by the clock of their write, then by row. */
static int by_clock(const void *a, const void *b, void *arg)
{
	const uint64_t *hlc = arg, ra = *(const uint64_t *)a,
		       rb = *(const uint64_t *)b;

	if (hlc[ra] != hlc[rb])
		return hlc[ra] < hlc[rb] ? -1 : 1;
	return ra < rb ? -1 : ra > rb;
}

/* The frozen rows to write: those still live (invariant 2), in the
 * order of their writes. */
static int live_rows(struct es_collection *c, const struct membuf *b,
		     uint64_t **rows, uint64_t *n)
{
	int sorted = 1;

	*n = 0;
	*rows = malloc((b->n + 1) * sizeof(**rows));
	if (!*rows)
		return -ENOMEM;
	pthread_rwlock_rdlock(&c->state);
	for (uint64_t r = 0; r < b->n; r++)
		if (b->alive[r])
			(*rows)[(*n)++] = r;
	pthread_rwlock_unlock(&c->state);
	for (uint64_t i = 1; sorted && i < *n; i++)
		sorted = b->hlc[(*rows)[i - 1]] <= b->hlc[(*rows)[i]];
	if (!sorted) /* a row written again, or writes applied out of order */
		qsort_r(*rows, *n, sizeof(**rows), by_clock, b->hlc);
	return 0;
}

/* The clock runs of rows[0..n), which live_rows ordered by clock, at
 * most max of them (see "write"). */
static int clock_runs(const struct membuf *b, const uint64_t *rows, uint64_t n,
		      size_t max, struct es_clock_run **runs, size_t *n_runs)
{
	size_t k = 0, group;

	*runs = malloc((n + 1) * sizeof(**runs));
	if (!*runs)
		return -ENOMEM;
	for (uint64_t i = 0; i < n; i++)
		if (i == 0 || b->hlc[rows[i]] != b->hlc[rows[i - 1]])
			(*runs)[k++] = (struct es_clock_run){
			    .row = i, .hlc = b->hlc[rows[i]]};
	group = (k + max - 1) / max;
	if (group > 1) {
		for (size_t g = 0; g * group < k; g++) {
			size_t last = (g + 1) * group - 1;

			(*runs)[g].row = (*runs)[g * group].row;
			(*runs)[g].hlc = (*runs)[last < k ? last : k - 1].hlc;
		}
		k = (k + group - 1) / group;
	}
	*n_runs = k;
	return 0;
}

static int write_segment(struct es_collection *c, const struct membuf *b,
			 const uint64_t *rows, uint64_t n, const char *path,
			 struct es_ndvs_info *info)
{
	struct es_ndvs_writer *w;
	int rc = es_ndvs_writer_open(&w, path, c->p.dim, n);

	for (uint64_t i = 0; rc == 0 && i < n; i++)
		rc = es_ndvs_writer_add(w, membuf_row(b, rows[i]),
					&b->ids[rows[i]], 1);
	if (rc < 0) {
		es_ndvs_writer_abort(w);
		return rc;
	}
	return es_ndvs_writer_commit(w, info);
}

/* Makes the frozen buffer a recorded segment (seal_mu held). */
static int seal_frozen(struct es_collection *c)
{
	struct part *f = c->parts[c->frozen], *seg = NULL;
	struct es_segment_meta meta = {0};
	struct es_clock_run *runs = NULL;
	struct es_ndvs_info info;
	uint64_t *rows, n;
	size_t n_runs = 0;
	uint32_t h;
	int rc = live_rows(c, &f->buf, &rows, &n);

	if (rc == 0 && n == 0 && f->buf.n_tombs == 0)
		goto cut; /* everything it held was superseded */
	if (rc == 0)
		rc = clock_runs(&f->buf, rows, n, c->p.clock_runs_max, &runs,
				&n_runs);
	if (rc == 0)
		rc = c->cat.reserve_id(c->cat.arg, &meta.id);
	/* the newest write: the last run, as rows are in clock order */
	meta.seal_hlc = n_runs ? runs[n_runs - 1].hlc : c->frozen_hlc;
	if (rc == 0 && !(seg = coll_segment_part(c, &meta)))
		rc = -ENOMEM;
	if (rc == 0)
		rc = write_segment(c, &f->buf, rows, n, seg->path, &info);
	if (rc < 0)
		goto out;
	meta.count = n;
	meta.dim = c->p.dim;
	meta.size = info.file_size;
	meta.checksum = info.checksum;
	meta.wal_gen = c->frozen_gen;
	memcpy(meta.origin, c->origin, sizeof(meta.origin));
	seg->meta = meta;
	seg->runs = runs;
	seg->n_runs = n_runs;
	runs = NULL;
	rc = c->cat.sealed(c->cat.arg, &meta, seg->runs, seg->n_runs,
			   f->buf.tombs, f->buf.n_tombs);
	if (rc < 0) {
		/* The file stays: a failed commit may still have been
		 * recorded (an fsync error after the commit frame was
		 * written), and a record naming no file would stop the next
		 * start; if nothing names it, that start removes it
		 * (remove_strays). */
		goto out;
	}
	pthread_rwlock_wrlock(&c->state);
	rc = coll_part_add(c, seg, &h);
	if (rc == 0) {
		for (uint64_t i = 0; i < n; i++) {
			uint64_t id = f->buf.ids[rows[i]];

			if (idmap_get(&c->live, id) ==
			    loc_pack(c->frozen, rows[i]))
				idmap_put(&c->live, id, loc_pack(h, i));
			else
				atomic_fetch_add(&seg->dead, 1);
		}
		seg = NULL;
		c->parts[c->frozen] = NULL;
		c->frozen = PART_NONE;
		coll_part_free(f);
	}
	pthread_rwlock_unlock(&c->state);
	if (rc < 0)
		goto out; /* recorded but not swapped: the restart adopts it */
	if (c->cat.wake)
		c->cat.wake(c->cat.arg); /* its index */
	free(rows);
	return es_wal_drop_through(c->wal, meta.wal_gen);
cut:
	pthread_rwlock_wrlock(&c->state);
	c->parts[c->frozen] = NULL;
	coll_part_free(f);
	c->frozen = PART_NONE;
	pthread_rwlock_unlock(&c->state);
	rc = es_wal_drop_through(c->wal, c->frozen_gen);
out:
	coll_part_free(seg);
	free(runs);
	free(rows);
	return rc;
}

int es_collection_seal(struct es_collection *c, int force)
{
	int rc;

	pthread_mutex_lock(&c->seal_mu);
	rc = freeze(c, force);
	if (rc == 0 && c->frozen != PART_NONE)
		rc = seal_frozen(c);
	pthread_mutex_unlock(&c->seal_mu);
	return rc;
}

/* ---- index builds ------------------------------------------------------ */

/* The first segment still without an index, copied out; 0 if none. */
static int next_unindexed(struct es_collection *c, struct es_segment_meta *m,
			  char **path, char **index_path)
{
	int found = 0;

	pthread_rwlock_rdlock(&c->state);
	for (uint32_t i = 0; !found && i < c->n_segments; i++) {
		struct part *pt = c->parts[c->segments[i]];

		if (pt->meta.indexed || pt->meta.count == 0)
			continue;
		*m = pt->meta;
		*path = strdup(pt->path);
		*index_path = strdup(pt->index_path);
		found = 1;
	}
	pthread_rwlock_unlock(&c->state);
	if (found && (!*path || !*index_path)) {
		free(*path);
		free(*index_path);
		return -ENOMEM;
	}
	return found;
}

int coll_mark_indexed(struct es_collection *c, const struct es_segment_meta *m)
{
	int rc = c->cat.indexed(c->cat.arg, m);

	if (rc < 0)
		return rc;
	pthread_rwlock_wrlock(&c->state);
	for (uint32_t i = 0; i < c->n_segments; i++) {
		struct part *pt = c->parts[c->segments[i]];

		if (pt->meta.id != m->id)
			continue;
		pthread_mutex_lock(&pt->mu);
		pt->meta = *m;
		pthread_mutex_unlock(&pt->mu);
	}
	pthread_rwlock_unlock(&c->state);
	return 0;
}

/* Builds one missing index; *built says whether there was one. */
static int build_one_index(struct es_collection *c, int *built)
{
	struct es_vamana_build_params bp = c->p.build;
	struct es_segment_meta m;
	struct es_vamana_info info;
	struct es_vamana *v;
	char *path = NULL, *index_path = NULL;
	int rc;

	pthread_mutex_lock(&c->index_mu);
	rc = next_unindexed(c, &m, &path, &index_path);
	*built = rc > 0;
	if (rc <= 0)
		goto out;
	bp.metric = c->p.metric;
	bp.segment_id = (uint64_t)m.id;
	rc = es_vamana_build(path, index_path, &bp);
	if (rc == 0)
		rc = es_vamana_open(&v, index_path, 0, 0, &info);
	if (rc == 0) {
		es_vamana_close(v);
		m.indexed = 1;
		m.index_size = info.file_size;
		m.index_checksum = info.checksum;
		/* A failed record keeps the file: see coll_mark_indexed. */
		rc = coll_mark_indexed(c, &m);
	}
out:
	pthread_mutex_unlock(&c->index_mu);
	free(path);
	free(index_path);
	return rc;
}

/* ---- handles ------------------------------------------------------------ */

int coll_part_acquire(struct es_collection *c, struct part *pt)
{
	int rc = 0;

	pthread_mutex_lock(&pt->mu);
	if (!pt->ndvs)
		rc = es_ndvs_open(&pt->ndvs, pt->path, 0, NULL);
	/*
	 * An index that fails to open leaves the segment searched exactly:
	 * slower, never wrong. The next acquire tries again.
	 */
	if (rc == 0 && pt->meta.indexed && !pt->index &&
	    es_vamana_open(&pt->index, pt->index_path, ES_VAMANA_OPEN_MEMORY, 0,
			   NULL) < 0)
		pt->index = NULL;
	if (rc == 0)
		pt->refs++;
	pthread_mutex_unlock(&pt->mu);
	return rc;
}

void coll_part_release(struct es_collection *c, struct part *pt)
{
	pthread_mutex_lock(&pt->mu);
	pt->refs--;
	pt->last_used = atomic_fetch_add(&c->tick, 1) + 1;
	pthread_mutex_unlock(&pt->mu);
}

int coll_searcher_get(struct part *pt, struct es_vamana_searcher **s)
{
	int rc = 0;

	pthread_mutex_lock(&pt->mu);
	if (pt->n_idle)
		*s = pt->idle[--pt->n_idle];
	else
		rc = es_vamana_searcher_create(pt->index, s);
	pthread_mutex_unlock(&pt->mu);
	return rc;
}

void coll_searcher_put(struct part *pt, struct es_vamana_searcher *s)
{
	pthread_mutex_lock(&pt->mu);
	if (pt->n_idle == pt->cap_idle) {
		size_t cap = pt->cap_idle ? pt->cap_idle * 2 : 4;
		struct es_vamana_searcher **idle =
		    realloc(pt->idle, cap * sizeof(*idle));

		if (!idle) {
			pthread_mutex_unlock(&pt->mu);
			es_vamana_searcher_destroy(s);
			return;
		}
		pt->idle = idle;
		pt->cap_idle = cap;
	}
	pt->idle[pt->n_idle++] = s;
	pthread_mutex_unlock(&pt->mu);
}

/* Closes pt's handles; nobody may hold them (refs 0). */
void coll_part_close_handles(struct part *pt)
{
	while (pt->n_idle)
		es_vamana_searcher_destroy(pt->idle[--pt->n_idle]);
	es_vamana_close(pt->index);
	pt->index = NULL;
	es_ndvs_close(pt->ndvs);
	pt->ndvs = NULL;
}

/* Closes the least recently used idle handles beyond open_segments. */
static void close_idle(struct es_collection *c)
{
	pthread_rwlock_rdlock(&c->state);
	for (;;) {
		struct part *lru = NULL;
		uint32_t open = 0;

		for (uint32_t i = 0; i < c->n_segments; i++) {
			struct part *pt = c->parts[c->segments[i]];

			pthread_mutex_lock(&pt->mu);
			if (pt->ndvs) {
				open++;
				if (pt->refs == 0 &&
				    (!lru || pt->last_used < lru->last_used))
					lru = pt;
			}
			pthread_mutex_unlock(&pt->mu);
		}
		if (open <= c->p.open_segments || !lru)
			break;
		pthread_mutex_lock(&lru->mu);
		if (lru->refs == 0)
			coll_part_close_handles(lru);
		pthread_mutex_unlock(&lru->mu);
	}
	pthread_rwlock_unlock(&c->state);
}

int es_collection_maintain(struct es_collection *c, int *more)
{
	struct es_segment_meta m;
	char *p1 = NULL, *p2 = NULL;
	int built = 0;
	int rc = es_collection_seal(c, 0);

	if (rc == 0)
		rc = build_one_index(c, &built);
	close_idle(c);
	*more = 0;
	if (rc == 0 && next_unindexed(c, &m, &p1, &p2) > 0)
		*more = 1;
	free(p1);
	free(p2);
	return rc;
}
