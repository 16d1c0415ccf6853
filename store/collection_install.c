/*
 * Installing a segment that came from a peer.
 *
 *   link     staged file -> seg-<id>.ndvs (a fresh id), directory fsync
 *   record   catalog->sealed(meta with the peer's origin, origin_seq and
 *            seal_hlc, its rows' clock runs, its tombstones): durable in
 *            the manifest
 *   index    (install_indexed only) the peer's index, checked before
 *            anything was linked, -> seg-<id>.vamana, directory fsync,
 *            catalog->indexed: the segment is indexed before anyone can
 *            see it, so no build of it ever starts here
 *   publish  state exclusive: the segment becomes a part; its rows go
 *            live where their version wins, its tombstones remove older
 *            copies (the same rule as recovery, so the result does not
 *            depend on arrival order)
 * A crash before "record" leaves a stray seg file (removed at open) and
 * the staged file whole, so the caller can install again; after it, the
 * segment is there at the next open and the caller finds it recorded (a
 * crash before its index is recorded leaves it to be indexed here).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collection_impl.h"
#include "io_util.h"

/* Links the checked index at path as index_path, durably; m says so. */
static int index_link(const char *path, const char *index_path,
		      const struct es_vamana_info *info,
		      struct es_segment_meta *m)
{
	int rc;

	unlink(index_path); /* a half build's leftover */
	if (link(path, index_path) < 0)
		return -errno;
	rc = io_fsync_parent(index_path);
	if (rc) {
		unlink(index_path);
		return rc;
	}
	m->indexed = 1;
	m->index_size = info->file_size;
	m->index_checksum = info->checksum;
	return 0;
}

/* The segment's checked index (index NULL: none), before it is
 * published; a failure leaves it unindexed and says why in *index_rc. */
static void install_index(struct es_collection *c, struct part *pt,
			  const char *index, const struct es_vamana_info *info,
			  int *index_rc)
{
	struct es_segment_meta m = pt->meta;
	int rc;

	if (!index)
		return;
	rc = index_link(index, pt->index_path, info, &m);
	if (rc == 0) /* a failed record keeps the file: coll_mark_indexed */
		rc = c->cat.indexed(c->cat.arg, &m);
	if (rc == 0)
		pt->meta = m;
	else
		*index_rc = rc;
}

static int install(struct es_collection *c, const char *staged_path,
		   const struct es_segment_meta *meta,
		   const struct es_clock_run *runs, size_t n_runs,
		   const struct es_tombstone *tombs, size_t n_tombs,
		   const char *index, const struct es_vamana_info *info,
		   int *index_rc)
{
	struct es_segment_meta m = *meta;
	struct part *pt = NULL;
	uint64_t *ids = NULL;
	uint32_t h;
	int rc;

	if (m.dim != c->p.dim ||
	    (n_runs && es_clock_runs_check(runs, n_runs, m.count, m.seal_hlc)))
		return -EINVAL;
	m.wal_gen = 0;
	m.indexed = 0;
	m.index_size = 0;
	m.index_checksum = 0;
	pthread_mutex_lock(&c->seal_mu); /* one new segment at a time */
	rc = c->cat.reserve_id(c->cat.arg, &m.id);
	if (rc == 0 && !(pt = coll_segment_part(c, &m)))
		rc = -ENOMEM;
	if (rc == 0)
		rc = coll_part_set_runs(pt, runs, n_runs);
	if (rc == 0 && link(staged_path, pt->path) < 0)
		rc = -errno;
	if (rc == 0)
		rc = io_fsync_parent(pt->path);
	if (rc == 0)
		rc = coll_read_ids(pt->path, &m, c->p.dim, &ids);
	if (rc < 0) {
		if (pt)
			unlink(pt->path);
		goto out;
	}
	rc =
	    c->cat.sealed(c->cat.arg, &m, pt->runs, pt->n_runs, tombs, n_tombs);
	if (rc < 0)
		goto out; /* the file stays: see seal_frozen */
	install_index(c, pt, index, info, index_rc);
	pthread_rwlock_wrlock(&c->state);
	rc = coll_part_add(c, pt, &h);
	if (rc == 0) {
		pt = NULL;
		for (size_t i = 0; rc == 0 && i < n_tombs; i++)
			rc = coll_apply_tombstone(c, tombs[i].id, tombs[i].hlc);
		if (rc == 0)
			rc = coll_rows_live(c, h, ids);
	}
	pthread_rwlock_unlock(&c->state);
	/* recorded either way: a failure here is repaired at the next open */
	if (c->cat.wake)
		c->cat.wake(c->cat.arg); /* its index */
out:
	pthread_mutex_unlock(&c->seal_mu);
	coll_part_free(pt);
	free(ids);
	return rc;
}

int es_collection_install(struct es_collection *c, const char *staged_path,
			  const struct es_segment_meta *meta,
			  const struct es_clock_run *runs, size_t n_runs,
			  const struct es_tombstone *tombs, size_t n_tombs)
{
	return install(c, staged_path, meta, runs, n_runs, tombs, n_tombs, NULL,
		       NULL, NULL);
}

int es_collection_install_indexed(
    struct es_collection *c, const char *staged_path,
    const struct es_segment_meta *meta, const struct es_clock_run *runs,
    size_t n_runs, const struct es_tombstone *tombs, size_t n_tombs,
    const char *staged_index, int *index_rc)
{
	struct es_vamana_info info;

	/* Checked before anything is linked: a bad index costs itself. */
	*index_rc = coll_index_check(c, meta, staged_index, &info);
	return install(c, staged_path, meta, runs, n_runs, tombs, n_tombs,
		       *index_rc ? NULL : staged_index, &info, index_rc);
}

/*
 * An index file that came from a peer for an installed segment. Checked
 * whole and against the segment and the collection's metric
 * (index_check), then linked as the segment's index and recorded,
 * exactly as a local build ends. Under index_mu, so it never races the
 * builder.
 */
int es_collection_adopt_index(struct es_collection *c, const char *origin,
			      uint64_t origin_seq, const char *staged_path)
{
	struct es_segment_meta m;
	struct es_vamana_info info;
	char *index_path = NULL;
	int rc = -ENOENT;

	pthread_mutex_lock(&c->index_mu);
	pthread_rwlock_rdlock(&c->state);
	for (uint32_t i = 0; i < c->n_segments; i++) {
		struct part *pt = c->parts[c->segments[i]];

		if (strcmp(pt->meta.origin, origin) ||
		    pt->meta.origin_seq != origin_seq)
			continue;
		m = pt->meta;
		index_path = strdup(pt->index_path);
		rc = index_path ? 0 : -ENOMEM;
		break;
	}
	pthread_rwlock_unlock(&c->state);
	if (rc)
		goto out;
	if (m.indexed) {
		rc = 1; /* built here meanwhile, or adopted before */
		goto out;
	}
	rc = coll_index_check(c, &m, staged_path, &info);
	if (rc == 0)
		rc = index_link(staged_path, index_path, &info, &m);
	if (rc == 0)
		rc = coll_mark_indexed(c, &m);
out:
	pthread_mutex_unlock(&c->index_mu);
	free(index_path);
	return rc;
}
