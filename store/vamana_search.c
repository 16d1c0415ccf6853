/*
 * Vamana index: open, node cache and the two search regimes (vamana.h).
 *
 *   es_vamana_open       header, footer (each failure its own code);
 *                        VERIFY: checksum, graph. Then either
 *     memory regime      map the whole file (MAP_POPULATE, MADV_RANDOM)
 *     disk regime        ids, PQ codebook and codes into memory; a second
 *                        descriptor with O_DIRECT on request; then the
 *                        cache_nodes nodes nearest the entry (BFS), read
 *                        FILL_BATCH at a time through that descriptor
 *   es_vamana_searcher_create   one thread's scratch (and ring)
 *   es_vamana_search     search_memory() or search_disk()
 *
 * Invariants:
 *   1. After es_vamana_open returns, struct es_vamana is never written:
 *      any number of searchers on any threads share it.
 *   2. Every record a search uses (mapped, cached or just read) has its
 *      degree and neighbour rows checked before they are followed; bad
 *      data gives ES_E_VAMANA_GRAPH, never a wild access.
 *   3. A searcher's visited stamps equal s->gen only for rows seen by the
 *      current query; bumping gen clears them all in O(1) (a memset when
 *      it wraps).
 *   4. Disk regime: a round selects its candidates and marks them
 *      expanded before any is read; every read started in a round is
 *      reaped (or drained on error) before the search moves on or
 *      returns, so no buffer is in the kernel's hands between calls.
 *      With the (dist, row) order of the lists the result does not depend
 *      on the order completions arrive in.
 *   5. Disk regime, the walk (DiskANN's beam search): s->cand holds the
 *      best L candidates by PQ distance, each expanded at most once (the
 *      stamps admit a row once per query), so a query reads at most one
 *      sector per hop and never a row twice; s->res holds the best L
 *      expanded rows by exact distance (the vector came with the read),
 *      and the hits are its first k. The walk stops when the L best
 *      candidates are all expanded. A round reads the W best unexpanded
 *      candidates, except while the best candidate of all is unexpanded:
 *      the last round found a row nearer than every row expanded, the
 *      walk is still descending one hop at a time, and reads beside that
 *      one would mostly be wasted, so the round reads it alone. The rule
 *      looks at the list only, so the cache changes reads, never results.
 *   6. The cache is filled in breadth-first order, a batch of queued rows
 *      read together and their neighbours queued in queue order, so which
 *      rows it holds depends on the file and cache_nodes only.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edgesync/store_error.h"
#include "io_util.h"
#include "edgesync/le.h"
#include "uring_fetch.h"
#include "vamana_index.h"

#define CACHE_EMPTY  0xFFFFFFFFu
#define CACHE_MAX    (1u << 30) /* nodes; keeps the table size in 32 bits */
#define PREFETCH_MAX 512	/* bytes of a vector prefetched ahead */
#define FILL_BATCH   64		/* cache rows read together at open */

struct es_vamana {
	struct vamana_layout lay;
	unsigned flags;
	int fd;	   /* buffered: open, verify, cache, pread */
	int dfd;   /* the searches' reads (fd or O_DIRECT) */
	int uring; /* a ring could be set up at open */
	es_distance_fn dist;
	unsigned char *map;  /* memory regime: the whole file */
	const uint64_t *ids; /* into map, or ids_buf */
	uint64_t *ids_buf;
	struct es_pq *pq; /* disk regime */
	uint8_t *codes;
	uint32_t cache_n, cache_mask;
	uint32_t *cache_key;	  /* open addressing: row or CACHE_EMPTY */
	uint32_t *cache_idx;	  /* record index in cache_rec */
	unsigned char *cache_rec; /* cache_n records of node_size bytes */
};

struct es_vamana_searcher {
	const struct es_vamana *v;
	uint32_t *stamp, gen;
	struct vamana_list cand, res;
	uint32_t *todo;		    /* R */
	const unsigned char **recs; /* R, memory regime */
	float *query;		    /* dim, 64-aligned */
	float *table;		    /* m * 256 (disk) */
	uint32_t slot_row[ES_VAMANA_MAX_W];
	struct uring_fetch fetch; /* disk regime */
};

/* ---- open ------------------------------------------------------------- */

static int read_head(struct es_vamana *v, uint64_t size)
{
	unsigned char hdr[ES_VAMANA_HEADER_SIZE], ftr[ES_VAMANA_FOOTER_SIZE];
	int rc;

	if (size < ES_VAMANA_HEADER_SIZE + ES_VAMANA_FOOTER_SIZE) {
		v->lay.info.file_size = size;
		return ES_E_VAMANA_SHORT;
	}
	rc = io_pread_all(v->fd, hdr, sizeof(hdr), 0);
	if (rc == 0)
		rc = vamana_header_parse(hdr, size, &v->lay);
	if (rc == 0)
		rc = io_pread_all(v->fd, ftr, sizeof(ftr), size - sizeof(ftr));
	if (rc == 0)
		rc = vamana_footer_parse(ftr, &v->lay.info.checksum);
	return rc;
}

static int map_file(struct es_vamana *v)
{
	size_t len = v->lay.info.file_size;
	void *m =
	    mmap(NULL, len, PROT_READ, MAP_SHARED | MAP_POPULATE, v->fd, 0);

	if (m == MAP_FAILED)
		return -errno;
	madvise(m, len, MADV_RANDOM);
	v->map = m;
	v->ids = (const uint64_t *)(v->map + v->lay.ids_offset); /* LE host */
	return 0;
}

static int load_compressed(struct es_vamana *v)
{
	const struct vamana_layout *l = &v->lay;
	uint64_t n = l->info.num_nodes, cb = l->pq_codebook_bytes;
	void *buf = malloc(cb);
	int rc;

	v->ids_buf = malloc(n ? n * 8 : 1);
	v->codes = malloc(n ? n * l->info.pq_m : 1);
	if (!buf || !v->ids_buf || !v->codes) {
		free(buf);
		return -ENOMEM;
	}
	v->ids = v->ids_buf;
	rc = io_pread_all(v->fd, v->ids_buf, n * 8, (off_t)l->ids_offset);
	if (rc == 0)
		rc = io_pread_all(v->fd, buf, cb, (off_t)l->pq_offset);
	if (rc == 0)
		rc = io_pread_all(v->fd, v->codes, n * l->info.pq_m,
				  (off_t)l->codes_offset);
	if (rc == 0 && n) {
		rc = es_pq_unpack(&v->pq, buf, cb, l->info.dim, l->info.pq_m);
		if (rc == -EINVAL)
			rc = ES_E_VAMANA_HEADER; /* codebook unusable */
	}
	free(buf);
	return rc;
}

static uint32_t cache_hash(uint32_t row, uint32_t mask)
{
	return (row * 2654435761u) & mask;
}

static const unsigned char *cache_find(const struct es_vamana *v, uint32_t row)
{
	uint32_t h;

	if (!v->cache_n)
		return NULL;
	for (h = cache_hash(row, v->cache_mask);; h = (h + 1) & v->cache_mask) {
		if (v->cache_key[h] == row)
			return v->cache_rec +
			       (size_t)v->cache_idx[h] * v->lay.node_size;
		if (v->cache_key[h] == CACHE_EMPTY)
			return NULL;
	}
}

/* Adds row as record number idx; 0 if it was there already. */
static int cache_add(struct es_vamana *v, uint32_t row, uint32_t idx)
{
	uint32_t h = cache_hash(row, v->cache_mask);

	for (; v->cache_key[h] != CACHE_EMPTY; h = (h + 1) & v->cache_mask)
		if (v->cache_key[h] == row)
			return 0;
	v->cache_key[h] = row;
	v->cache_idx[h] = idx;
	return 1;
}

/*
 * Reads the records of queue[first, first + cnt) together into cache
 * records first.. and checks them (cnt <= FILL_BATCH slots of f).
 */
static int fill_batch(struct es_vamana *v, struct uring_fetch *f,
		      const uint32_t *queue, uint32_t first, uint32_t cnt)
{
	const struct vamana_layout *l = &v->lay;
	uint32_t started = 0, slot, row;
	unsigned char *rec;
	int rc = 0;

	for (uint32_t j = 0; rc == 0 && j < cnt; j++) {
		row = queue[first + j];
		rc = uring_fetch_start(f, j, vamana_node_read_offset(l, row));
		started += rc == 0;
	}
	uring_fetch_submit(f);
	for (uint32_t j = 0; rc == 0 && j < started; j++) {
		rc = uring_fetch_reap(f, &slot);
		if (rc < 0)
			break;
		row = queue[first + slot];
		rec = v->cache_rec + (size_t)(first + slot) * l->node_size;
		memcpy(rec,
		       uring_fetch_buf(f, slot) +
			   (vamana_node_offset(l, row) -
			    vamana_node_read_offset(l, row)),
		       l->node_size);
		uring_fetch_release(f, slot);
		rc = vamana_check_record(l, rec, 0);
	}
	if (rc < 0)
		uring_fetch_drain(f);
	return rc;
}

/* Queues the unqueued neighbours of cache record i, up to want rows. */
static void fill_queue(struct es_vamana *v, uint32_t *queue, uint32_t *queued,
		       uint32_t want, uint32_t i)
{
	const struct vamana_layout *l = &v->lay;
	const unsigned char *nb =
	    v->cache_rec + (size_t)i * l->node_size + 4 * (size_t)l->info.dim;
	uint32_t deg = le32_load(nb); /* checked: at most R */

	for (uint32_t j = 0; j < deg && *queued < want; j++) {
		uint32_t u = le32_load(nb + 4 + 4 * (size_t)j);

		if (cache_add(v, u, *queued))
			queue[(*queued)++] = u;
	}
}

/*
 * Breadth-first from the entry: queue[i] is the i-th node the walk
 * reaches and record i of the cache; a row enters the table when it is
 * queued, so it is queued once (invariant 6).
 */
static int cache_fill(struct es_vamana *v, uint32_t want)
{
	const struct vamana_layout *l = &v->lay;
	uint32_t queued = 1, size = 2, cnt;
	uint32_t *queue = malloc((size_t)want * sizeof(uint32_t));
	struct uring_fetch f;
	int rc = -ENOMEM;

	while (size < 2 * (uint64_t)want)
		size *= 2;
	v->cache_mask = size - 1;
	v->cache_key = malloc(size * sizeof(uint32_t));
	v->cache_idx = malloc(size * sizeof(uint32_t));
	v->cache_rec = malloc((size_t)want * l->node_size);
	if (!queue || !v->cache_key || !v->cache_idx || !v->cache_rec)
		goto out;
	rc = uring_fetch_init(&f, v->dfd, FILL_BATCH, vamana_node_read_len(l),
			      v->uring);
	if (rc < 0)
		goto out;
	memset(v->cache_key, 0xFF, size * sizeof(uint32_t));
	queue[0] = (uint32_t)l->info.entry;
	cache_add(v, queue[0], 0);
	for (uint32_t i = 0; rc == 0 && i < queued; i += cnt) {
		cnt = queued - i < FILL_BATCH ? queued - i : FILL_BATCH;
		rc = fill_batch(v, &f, queue, i, cnt);
		for (uint32_t j = i; rc == 0 && j < i + cnt; j++)
			fill_queue(v, queue, &queued, want, j);
	}
	v->cache_n = queued; /* the graph may reach fewer than want */
	uring_fetch_fini(&f);
out:
	free(queue);
	return rc;
}

/* A ring can be set up here (probed once; each searcher makes its own). */
static int probe_uring(void)
{
	struct io_uring ring;

	if (io_uring_queue_init(8, &ring, 0) < 0)
		return 0;
	io_uring_queue_exit(&ring);
	return 1;
}

/* The O_DIRECT descriptor, which must name the file fd names. */
static int open_direct(struct es_vamana *v, const char *path)
{
	struct stat a, b;

	v->dfd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
	if (v->dfd < 0 || fstat(v->dfd, &a) < 0 || fstat(v->fd, &b) < 0)
		return -errno;
	if (a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		return -ESTALE; /* path was replaced while we opened it */
	return 0;
}

static int open_disk(struct es_vamana *v, const char *path,
		     uint32_t cache_nodes)
{
	uint64_t n = v->lay.info.num_nodes, want = cache_nodes;
	int rc = load_compressed(v);

	if (rc < 0)
		return rc;
	if (v->flags & ES_VAMANA_OPEN_DIRECT) {
		rc = open_direct(v, path);
		if (rc < 0)
			return rc;
	} else {
		v->dfd = v->fd;
	}
	v->uring = !(v->flags & ES_VAMANA_OPEN_PREAD) && probe_uring();
	if (want > n)
		want = n;
	if (want > CACHE_MAX)
		want = CACHE_MAX;
	return want ? cache_fill(v, (uint32_t)want) : 0;
}

static int check_flags(unsigned flags)
{
	unsigned all = ES_VAMANA_OPEN_MEMORY | ES_VAMANA_OPEN_DIRECT |
		       ES_VAMANA_OPEN_PREAD | ES_VAMANA_OPEN_VERIFY;

	if (flags & ~all)
		return ES_E_VAMANA_PARAM;
	if ((flags & ES_VAMANA_OPEN_MEMORY) &&
	    (flags & (ES_VAMANA_OPEN_DIRECT | ES_VAMANA_OPEN_PREAD)))
		return ES_E_VAMANA_PARAM; /* those name disk-regime reads */
	return 0;
}

int es_vamana_open(struct es_vamana **vp, const char *path, unsigned flags,
		   uint32_t cache_nodes, struct es_vamana_info *info)
{
	struct es_vamana *v;
	struct stat st;
	int rc;

	*vp = NULL;
	if (info)
		memset(info, 0, sizeof(*info));
	rc = check_flags(flags);
	if (rc < 0)
		return rc;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->flags = flags;
	v->dfd = -1;
	v->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (v->fd < 0 || fstat(v->fd, &st) < 0) {
		rc = -errno;
		goto err;
	}
	rc = S_ISREG(st.st_mode) ? read_head(v, (uint64_t)st.st_size) : -EINVAL;
	if (info)
		*info = v->lay.info;
	if (rc < 0)
		goto err;
	v->dist = es_distance_get(v->lay.info.metric);
	if (flags & ES_VAMANA_OPEN_MEMORY)
		rc = map_file(v);
	if (rc == 0 && (flags & ES_VAMANA_OPEN_VERIFY))
		rc = vamana_file_verify(v->fd, v->map, &v->lay,
					v->lay.info.checksum);
	if (rc == 0 && !(flags & ES_VAMANA_OPEN_MEMORY))
		rc = open_disk(v, path, cache_nodes);
	if (rc < 0)
		goto err;
	*vp = v;
	return 0;
err:
	es_vamana_close(v);
	return rc;
}

void es_vamana_close(struct es_vamana *v)
{
	if (!v)
		return;
	free(v->cache_rec);
	free(v->cache_idx);
	free(v->cache_key);
	free(v->codes);
	es_pq_destroy(v->pq);
	free(v->ids_buf);
	if (v->map)
		munmap(v->map, v->lay.info.file_size);
	if (v->dfd >= 0 && v->dfd != v->fd)
		close(v->dfd);
	if (v->fd >= 0)
		close(v->fd);
	free(v);
}

const struct es_vamana_info *es_vamana_get_info(const struct es_vamana *v)
{
	return &v->lay.info;
}

int es_vamana_match(const struct es_vamana_info *info,
		    const struct es_ndvs_info *segment)
{
	if (info->segment_count != segment->count ||
	    info->dim != segment->dim ||
	    info->segment_size != segment->file_size ||
	    info->segment_checksum != segment->checksum)
		return ES_E_VAMANA_SEGMENT;
	return 0;
}

int es_vamana_uses_uring(const struct es_vamana *v)
{
	return v->uring;
}

/* ---- searcher --------------------------------------------------------- */

void es_vamana_searcher_destroy(struct es_vamana_searcher *s)
{
	if (!s)
		return;
	uring_fetch_fini(&s->fetch);
	free(s->table);
	free(s->query);
	free(s->recs);
	free(s->todo);
	free(s->res.c);
	free(s->cand.c);
	free(s->stamp);
	free(s);
}

int es_vamana_searcher_create(struct es_vamana *v,
			      struct es_vamana_searcher **sp)
{
	const struct es_vamana_info *in = &v->lay.info;
	struct es_vamana_searcher *s = calloc(1, sizeof(*s));
	size_t qlen = ((size_t)in->dim * 4 + 63) / 64 * 64;
	void *q = NULL;
	int rc = 0;

	*sp = NULL;
	if (!s)
		return -ENOMEM;
	s->v = v;
	s->stamp = calloc(in->num_nodes ? in->num_nodes : 1, sizeof(uint32_t));
	s->cand.c = malloc((ES_VAMANA_MAX_L + 1) * sizeof(struct vamana_cand));
	s->res.c = malloc((ES_VAMANA_MAX_L + 1) * sizeof(struct vamana_cand));
	s->todo = malloc((size_t)in->R * sizeof(uint32_t));
	s->recs = malloc((size_t)in->R * sizeof(*s->recs));
	if (posix_memalign(&q, 64, qlen) == 0)
		s->query = q;
	if (!v->map)
		s->table = malloc((size_t)in->pq_m * ES_PQ_CENTROIDS * 4);
	if (!s->stamp || !s->cand.c || !s->res.c || !s->todo || !s->recs ||
	    !s->query || (!v->map && !s->table))
		rc = -ENOMEM;
	if (rc == 0 && !v->map)
		rc = uring_fetch_init(&s->fetch, v->dfd, ES_VAMANA_MAX_W,
				      vamana_node_read_len(&v->lay), v->uring);
	if (rc < 0) {
		es_vamana_searcher_destroy(s);
		return rc;
	}
	*sp = s;
	return 0;
}

/* ---- search ----------------------------------------------------------- */

/* Record of row in the mapping (32-bit division: rows are u32). */
static inline const unsigned char *mem_record(const struct es_vamana *v,
					      uint32_t row)
{
	const struct vamana_layout *l = &v->lay;
	const unsigned char *base = v->map + l->nodes_offset;
	uint32_t per = l->nodes_per_sector;

	if (per)
		return base + (size_t)(row / per) * ES_VAMANA_SECTOR +
		       (size_t)(row % per) * l->node_size;
	return base + (size_t)row * l->sectors_per_node * ES_VAMANA_SECTOR;
}

static inline void prefetch_lines(const void *p, uint32_t bytes)
{
	for (uint32_t off = 0; off < bytes; off += 64)
		__builtin_prefetch((const char *)p + off, 0, 3);
}

static void new_query(struct es_vamana_searcher *s)
{
	if (++s->gen == 0) {
		memset(s->stamp, 0, s->v->lay.info.num_nodes * 4);
		s->gen = 1;
	}
}

/* Marks row's unvisited neighbours visited and lists them in s->todo. */
static int take_neighbours(struct es_vamana_searcher *s,
			   const unsigned char *rec, uint32_t *count)
{
	const struct vamana_layout *l = &s->v->lay;
	const uint32_t *nb = (const uint32_t *)(rec + 4 * (size_t)l->info.dim);
	uint32_t deg = nb[0], n = 0, gen = s->gen;
	uint64_t num = l->info.num_nodes;

	if (deg > l->info.R)
		return ES_E_VAMANA_GRAPH;
	for (uint32_t j = 1; j <= deg; j++) {
		uint32_t u = nb[j];

		if (u >= num)
			return ES_E_VAMANA_GRAPH;
		if (s->stamp[u] == gen)
			continue;
		s->stamp[u] = gen;
		s->todo[n++] = u;
	}
	*count = n;
	return 0;
}

/* The adjacency of the next candidate likely to be expanded. */
static inline void prefetch_next_adjacency(const struct es_vamana_searcher *s,
					   uint32_t i)
{
	const struct vamana_list *cand = &s->cand;
	const struct es_vamana *v = s->v;

	while (++i < cand->n && cand->c[i].done)
		;
	if (i < cand->n)
		prefetch_lines(mem_record(v, cand->c[i].row) +
				   4 * (size_t)v->lay.info.dim,
			       4 + 4 * v->lay.info.R);
}

static int search_memory(struct es_vamana_searcher *s,
			 struct es_vamana_stats *st)
{
	const struct es_vamana *v = s->v;
	uint32_t dim = v->lay.info.dim, entry = (uint32_t)v->lay.info.entry;
	uint32_t vbytes = dim * 4 < PREFETCH_MAX ? dim * 4 : PREFETCH_MAX;
	struct vamana_list *cand = &s->cand;
	const unsigned char **rec = s->recs;
	const float *q = s->query;
	uint32_t i, n;
	int rc;

	s->stamp[entry] = s->gen;
	vamana_list_insert(
	    cand, v->dist(q, (const float *)mem_record(v, entry), dim), entry);
	st->cmps++;
	while ((i = vamana_list_next(cand)) < cand->n) {
		cand->c[i].done = 1;
		st->hops++;
		prefetch_next_adjacency(s, i);
		rc = take_neighbours(s, mem_record(v, cand->c[i].row), &n);
		if (rc < 0)
			return rc;
		for (uint32_t j = 0; j < n; j++) {
			rec[j] = mem_record(v, s->todo[j]);
			prefetch_lines(rec[j], j < 2 ? vbytes : 128);
		}
		for (uint32_t j = 0; j < n; j++) {
			if (j + 2 < n)
				prefetch_lines(rec[j + 2], vbytes);
			vamana_list_insert(
			    cand, v->dist(q, (const float *)rec[j], dim),
			    s->todo[j]);
		}
		st->cmps += n;
	}
	return 0;
}

/* Disk regime: exact distance for re-ranking, PQ for the neighbours. */
static int expand(struct es_vamana_searcher *s, uint32_t row,
		  const unsigned char *rec, struct es_vamana_stats *st)
{
	const struct es_vamana *v = s->v;
	uint32_t m = v->lay.info.pq_m, n;
	int rc;

	vamana_list_insert(
	    &s->res, v->dist(s->query, (const float *)rec, v->lay.info.dim),
	    row);
	st->hops++;
	rc = take_neighbours(s, rec, &n);
	if (rc < 0)
		return rc;
	for (uint32_t j = 0; j < n; j++) {
		uint32_t u = s->todo[j];

		vamana_list_insert(
		    &s->cand,
		    es_pq_distance(s->table, v->codes + (size_t)u * m, m), u);
	}
	st->cmps += n + 1;
	return 0;
}

/*
 * Takes the W best unexpanded candidates, or only the best while it leads
 * the list (invariant 5), marked expanded.
 */
static uint32_t select_round(struct es_vamana_searcher *s, uint32_t W,
			     uint32_t *sel)
{
	struct vamana_list *cand = &s->cand;
	uint32_t n = 0, i = vamana_list_next(cand);

	if (i == 0)
		W = 1; /* still descending */
	for (; i < cand->n && n < W; i++) {
		if (!cand->c[i].done) {
			cand->c[i].done = 1;
			sel[n++] = cand->c[i].row;
		}
	}
	return n;
}

/* One round: reads started together, cached nodes expanded meanwhile. */
static int run_round(struct es_vamana_searcher *s, const uint32_t *sel,
		     uint32_t nsel, struct es_vamana_stats *st)
{
	const struct es_vamana *v = s->v;
	const struct vamana_layout *l = &v->lay;
	const unsigned char *rec;
	uint32_t nread = 0, slot, row;
	int rc = 0;

	for (uint32_t j = 0; rc == 0 && j < nsel; j++) {
		if (cache_find(v, sel[j]))
			continue;
		rc = uring_fetch_start(&s->fetch, nread,
				       vamana_node_read_offset(l, sel[j]));
		if (rc == 0)
			s->slot_row[nread++] = sel[j];
	}
	st->reads += nread;
	uring_fetch_submit(&s->fetch);
	for (uint32_t j = 0; rc == 0 && j < nsel; j++) {
		rec = cache_find(v, sel[j]);
		if (rec)
			rc = expand(s, sel[j], rec, st);
	}
	for (uint32_t j = 0; rc == 0 && j < nread; j++) {
		rc = uring_fetch_reap(&s->fetch, &slot);
		if (rc < 0)
			break;
		row = s->slot_row[slot];
		rec = uring_fetch_buf(&s->fetch, slot) +
		      (vamana_node_offset(l, row) -
		       vamana_node_read_offset(l, row));
		rc = expand(s, row, rec, st);
		uring_fetch_release(&s->fetch, slot);
	}
	if (rc < 0)
		uring_fetch_drain(&s->fetch); /* invariant 4 */
	return rc;
}

static int search_disk(struct es_vamana_searcher *s, uint32_t L, uint32_t W,
		       struct es_vamana_stats *st)
{
	const struct es_vamana *v = s->v;
	uint32_t entry = (uint32_t)v->lay.info.entry, m = v->lay.info.pq_m;
	uint32_t sel[ES_VAMANA_MAX_W], nsel;
	int rc = 0;

	vamana_list_reset(&s->res, L);
	es_pq_table(v->pq, v->lay.info.metric, s->query, s->table);
	s->stamp[entry] = s->gen;
	vamana_list_insert(
	    &s->cand, es_pq_distance(s->table, v->codes + (size_t)entry * m, m),
	    entry);
	st->cmps++;
	while (rc == 0 && (nsel = select_round(s, W, sel)) > 0)
		rc = run_round(s, sel, nsel, st);
	return rc;
}

int es_vamana_search(struct es_vamana_searcher *s, const float *query,
		     uint32_t k, uint32_t L, uint32_t W,
		     struct es_vamana_hit *hits, struct es_vamana_stats *stats)
{
	struct es_vamana_stats st = {0};
	const struct es_vamana *v;
	const struct vamana_list *out;
	uint32_t dim, n;
	int rc;

	if (!s || !query || !hits)
		return -EINVAL;
	v = s->v;
	out = v->map ? &s->cand : &s->res;
	dim = v->lay.info.dim;
	if (k < 1 || k > ES_VAMANA_MAX_K || L < k || L > ES_VAMANA_MAX_L ||
	    W < 1 || W > ES_VAMANA_MAX_W)
		return ES_E_VAMANA_PARAM;
	for (uint32_t i = 0; i < dim; i++)
		if (!isfinite(query[i]))
			return ES_E_VAMANA_PARAM;
	if (stats)
		*stats = st;
	if (v->lay.info.num_nodes == 0)
		return 0;
	memcpy(s->query, query, (size_t)dim * 4);
	if (v->lay.info.metric == ES_METRIC_COSINE)
		es_vector_normalize(s->query, dim);
	new_query(s);
	vamana_list_reset(&s->cand, L);
	rc = v->map ? search_memory(s, &st) : search_disk(s, L, W, &st);
	if (stats)
		*stats = st;
	if (rc < 0)
		return rc;
	n = out->n < k ? out->n : k;
	for (uint32_t i = 0; i < n; i++) {
		hits[i].row = out->c[i].row;
		hits[i].id = v->ids[out->c[i].row];
		hits[i].distance = out->c[i].dist;
	}
	return (int)n;
}
