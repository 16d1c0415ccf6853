/*
 * Vamana index file: layout, header and footer packing and checks, the
 * whole-file checks (checksum, graph) and the crash-safe writer
 * (vamana_format.md is the specification).
 *
 * vamana_file_write streams the file in order:
 *
 *   mkostemp "<path>.tmp.XXXXXX" in the same directory
 *     -> header, node sectors, ids, codebook, codes, pad (all checksummed)
 *     -> footer -> fsync(file) -> rename to path -> fsync(directory)
 *
 * Invariants:
 *   1. vf->crc is the CRC32C of every byte handed to the file so far, in
 *      file order, extended in emit() just before the bytes leave; the
 *      file is never read back.
 *   2. path is never opened for writing; only rename() touches it, after
 *      the temporary file's data is on disk. Any failure unlinks the
 *      temporary file.
 *   3. Every section is emitted with exactly the size the layout says, so
 *      the bytes written equal l->info.file_size or the write fails.
 *   4. vamana_file_write and vamana_header_parse run the same
 *      vamana_layout_compute() and info_check(): a header the writer
 *      accepts is a header the reader accepts, and the writer refuses a
 *      degree above R or a neighbour row >= num_nodes, so the graph check
 *      of a file it wrote passes too.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgesync/crc32c.h"
#include "edgesync/ndvs.h"
#include "io_util.h"
#include "edgesync/le.h"
#include "vamana_index.h"

#define SECTOR	     ES_VAMANA_SECTOR
#define WRITE_BUF    (1u << 20)
#define VERIFY_CHUNK (4u << 20)
/* Bounds a header must respect (node_size and every offset fit). */
#define VAMANA_MAX_DIM	 65536u
#define VAMANA_MAX_R	 4096u
#define VAMANA_MAX_NODES 0xFFFFFFFFull /* rows are u32, all-ones is "none" */

static const unsigned char head_magic[8] = {'E', 'S', 'V', 'A',
					    'M', 'A', 'N', 'A'};
static const unsigned char foot_magic[8] = {'V', 'A', 'M', 'A',
					    'N', 'E', 'N', 'D'};

static uint64_t round_up(uint64_t v, uint64_t to)
{
	return (v + to - 1) / to * to;
}

int vamana_layout_compute(struct vamana_layout *l)
{
	const struct es_vamana_info *in = &l->info;
	uint64_t n = in->num_nodes, sectors, end;

	if (in->dim == 0 || in->dim > VAMANA_MAX_DIM || in->R == 0 ||
	    in->R > VAMANA_MAX_R || n > VAMANA_MAX_NODES || in->pq_m == 0 ||
	    in->pq_m > in->dim)
		return ES_E_VAMANA_PARAM;
	l->node_size = 4 * in->dim + 4 + 4 * in->R;
	l->nodes_per_sector = SECTOR / l->node_size;
	l->sectors_per_node =
	    l->nodes_per_sector ? 1 : (l->node_size + SECTOR - 1) / SECTOR;
	if (l->nodes_per_sector)
		sectors = (n + l->nodes_per_sector - 1) / l->nodes_per_sector;
	else
		sectors = n * l->sectors_per_node;
	/* With the bounds above nothing below can overflow 64 bits. */
	l->nodes_offset = ES_VAMANA_HEADER_SIZE;
	l->nodes_bytes = sectors * SECTOR;
	l->ids_offset = l->nodes_offset + l->nodes_bytes;
	l->pq_offset = round_up(l->ids_offset + 8 * n, SECTOR);
	l->pq_codebook_bytes = (uint64_t)4 * ES_PQ_CENTROIDS * in->dim;
	l->codes_offset = l->pq_offset + l->pq_codebook_bytes;
	end = l->codes_offset + n * in->pq_m + ES_VAMANA_FOOTER_SIZE;
	l->info.file_size = round_up(end, SECTOR);
	l->footer_offset = l->info.file_size - ES_VAMANA_FOOTER_SIZE;
	return 0;
}

/* The fields the sizes do not depend on; 0 or ES_E_VAMANA_PARAM. */
static int info_check(const struct es_vamana_info *in)
{
	uint64_t seg_size;

	if (in->metric != ES_METRIC_L2 && in->metric != ES_METRIC_IP &&
	    in->metric != ES_METRIC_COSINE)
		return ES_E_VAMANA_PARAM;
	if (!isfinite(in->alpha) || in->alpha < 1.0f)
		return ES_E_VAMANA_PARAM;
	if (in->num_nodes ? in->entry >= in->num_nodes : in->entry != 0)
		return ES_E_VAMANA_PARAM;
	if (in->segment_count != in->num_nodes)
		return ES_E_VAMANA_PARAM;
	if (es_ndvs_file_size(in->dim, in->segment_count, &seg_size) < 0 ||
	    seg_size != in->segment_size)
		return ES_E_VAMANA_PARAM;
	return 0;
}

void vamana_header_pack(unsigned char hdr[ES_VAMANA_HEADER_SIZE],
			const struct vamana_layout *l)
{
	const struct es_vamana_info *in = &l->info;
	uint32_t alpha;

	memset(hdr, 0, ES_VAMANA_HEADER_SIZE);
	memcpy(hdr, head_magic, 8);
	le32_store(hdr + 8, ES_VAMANA_FORMAT_VERSION);
	le32_store(hdr + 12, ES_VAMANA_HEADER_SIZE);
	le32_store(hdr + 16, (uint32_t)in->metric);
	le32_store(hdr + 20, in->dim);
	le32_store(hdr + 24, in->R);
	le32_store(hdr + 28, in->build_L);
	memcpy(&alpha, &in->alpha, 4);
	le32_store(hdr + 32, alpha);
	le32_store(hdr + 36, l->node_size);
	le32_store(hdr + 40, l->nodes_per_sector);
	le32_store(hdr + 44, l->sectors_per_node);
	le64_store(hdr + 48, in->num_nodes);
	le64_store(hdr + 56, in->entry);
	le64_store(hdr + 64, l->nodes_offset);
	le64_store(hdr + 72, l->ids_offset);
	le64_store(hdr + 80, l->pq_offset);
	le32_store(hdr + 88, in->pq_m);
	le32_store(hdr + 92, (uint32_t)l->pq_codebook_bytes);
	le64_store(hdr + 96, in->seed);
	le64_store(hdr + 104, in->segment_id);
	le64_store(hdr + 112, in->segment_count);
	le64_store(hdr + 120, in->segment_size);
	le32_store(hdr + 128, in->segment_checksum);
	le32_store(hdr + 132, in->dim); /* segment_dim */
	le64_store(hdr + 136, in->file_size);
	/* 144..4095 reserved, zero */
}

static int all_zero(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return 0;
	return 1;
}

/* Fields as stored, into l->info; the derived ones are checked after. */
static void header_unpack(const unsigned char *hdr, struct vamana_layout *l)
{
	struct es_vamana_info *in = &l->info;
	uint32_t alpha = le32_load(hdr + 32);

	in->metric = (enum es_metric)le32_load(hdr + 16);
	in->dim = le32_load(hdr + 20);
	in->R = le32_load(hdr + 24);
	in->build_L = le32_load(hdr + 28);
	memcpy(&in->alpha, &alpha, 4);
	in->num_nodes = le64_load(hdr + 48);
	in->entry = le64_load(hdr + 56);
	in->pq_m = le32_load(hdr + 88);
	in->seed = le64_load(hdr + 96);
	in->segment_id = le64_load(hdr + 104);
	in->segment_count = le64_load(hdr + 112);
	in->segment_size = le64_load(hdr + 120);
	in->segment_checksum = le32_load(hdr + 128);
	in->file_size = le64_load(hdr + 136);
}

int vamana_header_parse(const unsigned char *hdr, uint64_t file_size,
			struct vamana_layout *l)
{
	struct vamana_layout want;

	memset(l, 0, sizeof(*l));
	if (file_size < ES_VAMANA_HEADER_SIZE + ES_VAMANA_FOOTER_SIZE)
		return ES_E_VAMANA_SHORT;
	if (memcmp(hdr, head_magic, 8) != 0)
		return ES_E_VAMANA_MAGIC;
	if (le32_load(hdr + 8) != ES_VAMANA_FORMAT_VERSION)
		return ES_E_VAMANA_VERSION;
	header_unpack(hdr, l);
	if (le32_load(hdr + 12) != ES_VAMANA_HEADER_SIZE ||
	    le32_load(hdr + 132) != l->info.dim ||
	    !all_zero(hdr + 144, ES_VAMANA_HEADER_SIZE - 144))
		return ES_E_VAMANA_HEADER;
	want.info = l->info;
	if (vamana_layout_compute(&want) < 0 || info_check(&want.info) < 0)
		return ES_E_VAMANA_HEADER;
	if (le32_load(hdr + 36) != want.node_size ||
	    le32_load(hdr + 40) != want.nodes_per_sector ||
	    le32_load(hdr + 44) != want.sectors_per_node ||
	    le64_load(hdr + 64) != want.nodes_offset ||
	    le64_load(hdr + 72) != want.ids_offset ||
	    le64_load(hdr + 80) != want.pq_offset ||
	    le32_load(hdr + 92) != want.pq_codebook_bytes ||
	    l->info.file_size != want.info.file_size)
		return ES_E_VAMANA_HEADER;
	*l = want;
	if (file_size != l->info.file_size)
		return ES_E_VAMANA_SIZE;
	return 0;
}

void vamana_footer_pack(unsigned char ftr[ES_VAMANA_FOOTER_SIZE],
			uint32_t checksum)
{
	le32_store(ftr, checksum);
	le32_store(ftr + 4, ES_VAMANA_FOOTER_SIZE);
	memcpy(ftr + 8, foot_magic, 8);
}

uint32_t es_vamana_file_crc(uint32_t checksum)
{
	unsigned char ftr[ES_VAMANA_FOOTER_SIZE];

	vamana_footer_pack(ftr, checksum);
	return es_crc32c(checksum, ftr, sizeof(ftr));
}

int vamana_footer_parse(const unsigned char *ftr, uint32_t *checksum)
{
	if (memcmp(ftr + 8, foot_magic, 8) != 0)
		return ES_E_VAMANA_MAGIC;
	if (le32_load(ftr + 4) != ES_VAMANA_FOOTER_SIZE)
		return ES_E_VAMANA_FOOTER;
	*checksum = le32_load(ftr);
	return 0;
}

/* ---- whole-file checks ------------------------------------------------ */

int vamana_check_record(const struct vamana_layout *l, const unsigned char *rec,
			int strict)
{
	const unsigned char *nb = rec + 4 * (size_t)l->info.dim;
	uint32_t deg = le32_load(nb), R = l->info.R;

	if (deg > R)
		return ES_E_VAMANA_GRAPH;
	nb += 4;
	for (uint32_t j = 0; j < deg; j++)
		if (le32_load(nb + 4 * j) >= l->info.num_nodes)
			return ES_E_VAMANA_GRAPH;
	for (uint32_t j = deg; strict && j < R; j++)
		if (le32_load(nb + 4 * j) != ES_VAMANA_NO_NEIGHBOUR)
			return ES_E_VAMANA_GRAPH;
	return 0;
}

static int verify_crc(int fd, const unsigned char *map,
		      const struct vamana_layout *l, uint32_t checksum)
{
	uint64_t len = l->footer_offset;
	uint32_t crc = 0;
	unsigned char *buf;
	int rc = 0;

	if (map)
		return es_crc32c(0, map, len) == checksum
			   ? 0
			   : ES_E_VAMANA_CHECKSUM;
	buf = malloc(VERIFY_CHUNK);
	if (!buf)
		return -ENOMEM;
	for (uint64_t off = 0; rc == 0 && off < len;) {
		size_t n = len - off < VERIFY_CHUNK ? len - off : VERIFY_CHUNK;

		rc = io_pread_all(fd, buf, n, (off_t)off);
		crc = es_crc32c(crc, buf, n);
		off += n;
	}
	free(buf);
	if (rc == 0 && crc != checksum)
		rc = ES_E_VAMANA_CHECKSUM;
	return rc;
}

/* Every node record, a run of whole node groups (sectors) at a time. */
static int verify_graph(int fd, const unsigned char *map,
			const struct vamana_layout *l)
{
	uint32_t group = vamana_node_read_len(l);
	uint32_t per = l->nodes_per_sector ? l->nodes_per_sector : 1;
	uint32_t groups = VERIFY_CHUNK / group ? VERIFY_CHUNK / group : 1;
	uint64_t n = l->info.num_nodes, row = 0;
	unsigned char *buf = map ? NULL : malloc((size_t)groups * group);
	int rc = 0;

	if (!map && !buf)
		return -ENOMEM;
	while (rc == 0 && row < n) {
		uint64_t off = vamana_node_read_offset(l, row);
		uint64_t left = (n - row + per - 1) / per;
		size_t len = (size_t)(left < groups ? left : groups) * group;
		const unsigned char *p = map ? map + off : buf;

		if (!map)
			rc = io_pread_all(fd, buf, len, (off_t)off);
		for (size_t g = 0; rc == 0 && g < len; g += group)
			for (uint32_t j = 0; rc == 0 && j < per && row < n;
			     j++, row++)
				rc = vamana_check_record(
				    l, p + g + (size_t)j * l->node_size, 1);
	}
	free(buf);
	return rc;
}

int vamana_file_verify(int fd, const unsigned char *map,
		       const struct vamana_layout *l, uint32_t checksum)
{
	int rc = verify_crc(fd, map, l, checksum);

	if (rc == 0)
		rc = verify_graph(fd, map, l);
	return rc;
}

/* ---- writer ----------------------------------------------------------- */

struct vfile {
	int fd;
	uint32_t crc;
	size_t used;
	uint64_t written;
	unsigned char *buf;
};

static int vf_flush(struct vfile *vf)
{
	int rc = io_write_all(vf->fd, vf->buf, vf->used);

	vf->used = 0;
	return rc;
}

/* Hands len bytes to the file; covered by the checksum when checked. */
static int emit(struct vfile *vf, const void *p, size_t len, int checked)
{
	int rc;

	if (checked)
		vf->crc = es_crc32c(vf->crc, p, len);
	vf->written += len;
	if (vf->used + len <= WRITE_BUF) {
		memcpy(vf->buf + vf->used, p, len);
		vf->used += len;
		return 0;
	}
	rc = vf_flush(vf);
	if (rc == 0)
		rc = io_write_all(vf->fd, p, len);
	return rc;
}

/* Zero bytes up to file offset off (checksummed). */
static int emit_zeros_to(struct vfile *vf, uint64_t off)
{
	static const unsigned char zeros[SECTOR];
	int rc = 0;

	while (rc == 0 && vf->written < off) {
		uint64_t n = off - vf->written;

		rc = emit(vf, zeros, n < SECTOR ? n : SECTOR, 1);
	}
	return rc;
}

/* Packs node row into rec (node_size bytes, zeroed by the caller). */
static int pack_node(const struct vamana_layout *l, uint64_t row,
		     const float *vectors, const uint32_t *adjacency,
		     const uint32_t *degree, unsigned char *rec)
{
	uint32_t dim = l->info.dim, R = l->info.R, deg = degree[row];
	const uint32_t *adj = adjacency + row * R;
	unsigned char *nb = rec + 4 * dim + 4;

	if (deg > R)
		return ES_E_VAMANA_PARAM;
	memcpy(rec, vectors + row * dim, 4 * (size_t)dim); /* LE host */
	le32_store(rec + 4 * dim, deg);
	for (uint32_t j = 0; j < R; j++) {
		uint32_t v = j < deg ? adj[j] : ES_VAMANA_NO_NEIGHBOUR;

		if (j < deg && v >= l->info.num_nodes)
			return ES_E_VAMANA_PARAM;
		le32_store(nb + 4 * j, v);
	}
	return 0;
}

static int emit_nodes(struct vfile *vf, const struct vamana_layout *l,
		      const float *vectors, const uint32_t *adjacency,
		      const uint32_t *degree)
{
	size_t len = (size_t)l->sectors_per_node * SECTOR;
	uint64_t n = l->info.num_nodes, row = 0;
	uint32_t per = l->nodes_per_sector ? l->nodes_per_sector : 1;
	unsigned char *sec = malloc(len);
	int rc = sec ? 0 : -ENOMEM;

	while (rc == 0 && row < n) {
		memset(sec, 0, len);
		for (uint32_t j = 0; rc == 0 && j < per && row < n; j++, row++)
			rc = pack_node(l, row, vectors, adjacency, degree,
				       sec + (size_t)j * l->node_size);
		if (rc == 0)
			rc = emit(vf, sec, len, 1);
	}
	free(sec);
	return rc;
}

static int emit_ids(struct vfile *vf, const uint64_t *ids, uint64_t n)
{
	unsigned char b[8 * 512];
	int rc = 0;

	for (uint64_t i = 0; rc == 0 && i < n;) {
		size_t k = 0;

		for (; k < 512 && i < n; k++, i++)
			le64_store(b + 8 * k, ids[i]);
		rc = emit(vf, b, 8 * k, 1);
	}
	return rc;
}

/* The codebook; an empty index may have no pq and gets zeros. */
static int emit_codebook(struct vfile *vf, const struct vamana_layout *l,
			 const struct es_pq *pq)
{
	unsigned char *cb;
	int rc;

	if (!pq)
		return emit_zeros_to(vf, l->codes_offset);
	if (es_pq_dim(pq) != l->info.dim || es_pq_m(pq) != l->info.pq_m ||
	    es_pq_packed_size(pq) != l->pq_codebook_bytes)
		return ES_E_VAMANA_PARAM;
	cb = malloc(l->pq_codebook_bytes);
	if (!cb)
		return -ENOMEM;
	es_pq_pack(pq, cb);
	rc = emit(vf, cb, l->pq_codebook_bytes, 1);
	free(cb);
	return rc;
}

static int emit_all(struct vfile *vf, struct vamana_layout *l,
		    const float *vectors, const uint32_t *adjacency,
		    const uint32_t *degree, const uint64_t *ids,
		    const struct es_pq *pq, const uint8_t *codes)
{
	unsigned char hdr[ES_VAMANA_HEADER_SIZE], ftr[ES_VAMANA_FOOTER_SIZE];
	uint64_t n = l->info.num_nodes;
	int rc;

	vamana_header_pack(hdr, l);
	rc = emit(vf, hdr, sizeof(hdr), 1);
	if (rc == 0)
		rc = emit_nodes(vf, l, vectors, adjacency, degree);
	if (rc == 0)
		rc = emit_ids(vf, ids, n);
	if (rc == 0)
		rc = emit_zeros_to(vf, l->pq_offset);
	if (rc == 0)
		rc = emit_codebook(vf, l, pq);
	if (rc == 0 && n)
		rc = emit(vf, codes, n * l->info.pq_m, 1);
	if (rc == 0)
		rc = emit_zeros_to(vf, l->footer_offset);
	if (rc == 0) {
		vamana_footer_pack(ftr, vf->crc);
		rc = emit(vf, ftr, sizeof(ftr), 0);
	}
	if (rc == 0 && vf->written != l->info.file_size)
		rc = -EIO; /* NEVER: the layout and the emitters disagree */
	if (rc == 0)
		rc = vf_flush(vf);
	return rc;
}

int vamana_file_write(const char *path, struct vamana_layout *l,
		      const float *vectors, const uint32_t *adjacency,
		      const uint32_t *degree, const uint64_t *ids,
		      const struct es_pq *pq, const uint8_t *codes)
{
	struct vfile vf = {.fd = -1};
	char *tmp = NULL;
	int rc = vamana_layout_compute(l);

	if (rc == 0)
		rc = info_check(&l->info);
	if (rc == 0 && !pq && l->info.num_nodes)
		rc = ES_E_VAMANA_PARAM;
	if (rc < 0)
		return rc;
	vf.buf = malloc(WRITE_BUF);
	if (!vf.buf || asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0) {
		tmp = NULL;
		rc = -ENOMEM;
		goto err;
	}
	vf.fd = mkostemp(tmp, O_CLOEXEC);
	if (vf.fd < 0) {
		rc = -errno;
		free(tmp);
		tmp = NULL;
		goto err;
	}
	/* Claim the space now: a full disk fails here, not at the end. */
	rc = posix_fallocate(vf.fd, 0, (off_t)l->info.file_size);
	if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) {
		rc = -rc;
		goto err;
	}
	rc = emit_all(&vf, l, vectors, adjacency, degree, ids, pq, codes);
	if (rc < 0)
		goto err;
	if (fsync(vf.fd) < 0 || rename(tmp, path) < 0) {
		rc = -errno;
		goto err;
	}
	free(tmp);
	close(vf.fd);
	free(vf.buf);
	l->info.checksum = vf.crc;
	return io_fsync_parent(path);
err:
	if (tmp)
		unlink(tmp);
	free(tmp);
	if (vf.fd >= 0)
		close(vf.fd);
	free(vf.buf);
	return rc;
}
