/*
 * es_vamana_build: a segment file in, a Vamana index file out.
 *
 *   parameters checked -> segment mapped and verified -> (cosine) a
 *   normalized copy of the rows -> vamana_graph_build (vamana_build.c) ->
 *   es_pq_train and es_pq_encode -> vamana_file_write (vamana_format.c:
 *   a temporary file, fsync, rename).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "edgesync/ndvs.h"
#include "edgesync/pq.h"
#include "edgesync/store_error.h"
#include "vamana_build.h"
#include "vamana_format.h"

#define PQ_SAMPLE    100000 /* training vectors for PQ */
#define PQ_M_DEFAULT 64	    /* default PQ bytes per vector (or dim) */
#define HUGE_PAGE    (2u << 20)

void es_vamana_build_defaults(struct es_vamana_build_params *p)
{
	memset(p, 0, sizeof(*p));
	p->R = 64;
	p->L = 100;
	p->alpha = 1.2f;
	p->threads = 0;
	p->metric = ES_METRIC_L2;
	p->seed = 1;
	p->pq_m = 0;
}

/*
 * The default PQ size: 64 bytes per vector, or dim if smaller. Fewer (32
 * at dim 128) lose the neighbours of clustered data in the disk regime;
 * more cost build time (short subspaces train slowly) and memory without
 * a measured gain.
 */
static uint32_t pq_m_default(uint32_t dim)
{
	return dim < PQ_M_DEFAULT ? dim : PQ_M_DEFAULT;
}

/* What the header says, and every size (checks R, dim, pq_m, count). */
static int layout_fill(struct vamana_layout *l, const struct es_ndvs_info *si,
		       const struct es_vamana_build_params *p)
{
	struct es_vamana_info *in = &l->info;

	memset(l, 0, sizeof(*l));
	if (si->count > UINT32_MAX)
		return ES_E_VAMANA_PARAM;
	in->metric = p->metric;
	in->dim = si->dim;
	in->R = p->R;
	in->build_L = p->L;
	in->pq_m = p->pq_m ? p->pq_m : pq_m_default(si->dim);
	in->alpha = p->alpha;
	in->num_nodes = si->count;
	in->seed = p->seed;
	in->segment_id = p->segment_id;
	in->segment_count = si->count;
	in->segment_size = si->file_size;
	in->segment_checksum = si->checksum;
	return vamana_layout_compute(l);
}

/* The rows to index: the mapping, or a normalized copy for cosine. */
static int rows_get(struct es_ndvs *seg, enum es_metric metric,
		    const float **vp, float **copy)
{
	const struct es_ndvs_info *si = es_ndvs_get_info(seg);
	size_t n = si->count, dim = si->dim, len;
	void *mem;

	*vp = NULL;
	*copy = NULL;
	if (n == 0)
		return 0;
	*vp = es_ndvs_row(seg, 0);
	if (!*vp)
		return -EINVAL; /* NEVER: opened mapped, count > 0 */
	if (metric != ES_METRIC_COSINE)
		return 0;
	if (n > SIZE_MAX / sizeof(float) / dim)
		return -ENOMEM;
	len = n * dim * sizeof(float);
	/* Huge pages spare the walk a TLB miss on most rows it reads. */
	if (posix_memalign(&mem, len < HUGE_PAGE ? 64 : HUGE_PAGE, len) != 0)
		return -ENOMEM;
	if (len >= HUGE_PAGE)
		madvise(mem, len, MADV_HUGEPAGE);
	*copy = mem;
	memcpy(*copy, *vp, len);
	for (size_t i = 0; i < n; i++)
		es_vector_normalize(*copy + i * dim, dim);
	*vp = *copy;
	return 0;
}

/* PQ codebook and codes of n > 0 rows. */
static int codes_make(const float *v, const struct vamana_layout *l,
		      const struct es_vamana_build_params *p, struct es_pq **pq,
		      uint8_t **codes)
{
	uint64_t n = l->info.num_nodes;
	unsigned threads = vamana_build_threads(p);
	int rc;

	*pq = NULL;
	*codes = NULL;
	if (n == 0)
		return 0;
	rc = es_pq_train(pq, v, n, l->info.dim, l->info.pq_m, PQ_SAMPLE,
			 p->seed, threads);
	if (rc < 0)
		return rc;
	*codes = malloc(n * l->info.pq_m);
	if (!*codes)
		return -ENOMEM;
	return es_pq_encode(*pq, v, n, *codes, threads);
}

int es_vamana_build(const char *segment_path, const char *out_path,
		    const struct es_vamana_build_params *p)
{
	struct vamana_graph g = {0};
	struct vamana_layout l;
	struct es_ndvs *seg = NULL;
	struct es_pq *pq = NULL;
	const float *v = NULL;
	float *copy = NULL;
	uint64_t *ids = NULL;
	uint8_t *codes = NULL;
	int rc = vamana_build_params_check(p);

	if (rc == 0 && vamana_build_stopped(p))
		return -ECANCELED; /* before reading the segment */

	if (rc == 0 && (!segment_path || !out_path))
		rc = ES_E_VAMANA_PARAM;
	if (rc < 0)
		return rc;
	rc = es_ndvs_open(&seg, segment_path, ES_NDVS_OPEN_VERIFY, NULL);
	if (rc < 0)
		return rc;
	rc = layout_fill(&l, es_ndvs_get_info(seg), p);
	if (rc == 0)
		rc = rows_get(seg, p->metric, &v, &copy);
	if (rc < 0)
		goto err;
	ids = malloc(l.info.num_nodes ? l.info.num_nodes * sizeof(*ids) : 1);
	if (!ids) {
		rc = -ENOMEM;
		goto err;
	}
	rc = es_ndvs_read_ids(seg, 0, l.info.num_nodes, ids);
	if (rc == 0)
		rc = vamana_graph_build(&g, v, (uint32_t)l.info.num_nodes,
					l.info.dim, p);
	if (rc == 0)
		rc = vamana_build_stopped(p)
			 ? -ECANCELED
			 : codes_make(v, &l, p, &pq, &codes);
	if (rc == 0 && vamana_build_stopped(p))
		rc = -ECANCELED;
	if (rc < 0)
		goto err;
	l.info.entry = g.entry;
	rc =
	    vamana_file_write(out_path, &l, v, g.adj, g.degree, ids, pq, codes);
err:
	free(codes);
	es_pq_destroy(pq);
	vamana_graph_free(&g);
	free(ids);
	free(copy);
	es_ndvs_close(seg);
	return rc;
}
