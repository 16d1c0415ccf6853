/*
 * Checking a collection's files whole, beyond the O(1) checks of a plain
 * open: a segment read end to end against its CRC32C and its record, an
 * index read end to end (fields, graph, CRC32C) and matched to its
 * segment and the collection's metric. Installs check a peer's index
 * this way; `edgesync verify` checks everything this way. Files are
 * immutable, so this reads beside searches without a lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "collection_impl.h"
#include "edgesync/store_error.h"

int coll_index_check(struct es_collection *c, const struct es_segment_meta *m,
		     const char *path, struct es_vamana_info *info)
{
	struct es_ndvs_info seg = {0};
	struct es_vamana *v = NULL;
	int rc;

	seg.dim = m->dim;
	seg.count = m->count;
	seg.file_size = m->size;
	seg.checksum = m->checksum;
	rc = es_vamana_open(&v, path, ES_VAMANA_OPEN_VERIFY, 0, info);
	if (rc == 0)
		rc = es_vamana_match(info, &seg);
	if (rc == 0 && info->metric != c->p.metric)
		rc = ES_E_VAMANA_SEGMENT;
	es_vamana_close(v);
	return rc;
}

/* The segment file at path, read whole, is the one m records. Read with
 * pread, not through a mapping: a bad block or a file cut under the
 * check is then an error to report (-EIO), not a SIGBUS. */
static int segment_check(const char *path, const struct es_segment_meta *m,
			 uint32_t dim)
{
	struct es_ndvs_info info;
	struct es_ndvs *seg = NULL;
	int rc = es_ndvs_open(&seg, path,
			      ES_NDVS_OPEN_PREAD | ES_NDVS_OPEN_VERIFY, &info);

	if (rc == 0 &&
	    (info.file_size != m->size || info.checksum != m->checksum ||
	     info.count != m->count || info.dim != dim))
		rc = ES_E_NDVS_RECORD;
	es_ndvs_close(seg);
	return rc;
}

int es_collection_verify(struct es_collection *c, int64_t id,
			 struct es_collection_verified *v)
{
	struct es_segment_meta m;
	struct es_vamana_info info;
	char *path = NULL, *index_path = NULL;
	int rc = -ENOENT;

	memset(v, 0, sizeof(*v));
	pthread_rwlock_rdlock(&c->state);
	for (uint32_t i = 0; i < c->n_segments; i++) {
		const struct part *pt = c->parts[c->segments[i]];

		if (pt->meta.id != id)
			continue;
		m = pt->meta;
		path = strdup(pt->path);
		index_path = strdup(pt->index_path);
		rc = path && index_path ? 0 : -ENOMEM;
		break;
	}
	pthread_rwlock_unlock(&c->state);
	if (rc == 0) {
		v->segment_rc = segment_check(path, &m, c->p.dim);
		v->bytes = v->segment_rc ? 0 : m.size;
		v->indexed = m.indexed;
		if (m.indexed) {
			v->index_rc =
			    coll_index_check(c, &m, index_path, &info);
			v->bytes += v->index_rc ? 0 : m.index_size;
		}
	}
	free(path);
	free(index_path);
	return rc;
}
