/*
 * The staging directory: durable, resumable reception of segments. The
 * layout and the invariants are in staging.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/sha256.h>

#include "edgesync/crc32c.h"
#include "edgesync/le.h"
#include "edgesync/ndvs.h"
#include "edgesync/store_error.h"
#include "staging.h"
#include "sync_impl.h"
#include "sync_test.h"

#define META_SIZE    188
#define META_CRC_AT  184
#define META_VERSION 1

void sync_stage_meta_from(struct sync_stage_meta *m, const char *coll,
			  const struct es_sync_segment *seg)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->coll, sizeof(m->coll), "%s", coll);
	snprintf(m->origin, sizeof(m->origin), "%s", seg->origin);
	m->origin_seq = seg->origin_seq;
	m->seal_hlc = seg->seal_hlc;
	m->count = seg->count;
	m->size = seg->size;
	m->dim = seg->dim;
	m->checksum = seg->checksum;
}

int sync_staging_init(struct sync_staging *st, const char *dir)
{
	memset(st, 0, sizeof(*st));
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return -errno;
	st->dir = strdup(dir);
	if (!st->dir)
		return -ENOMEM;
	for (int i = 0; i < SYNC_STAGING_STRIPES; i++)
		pthread_mutex_init(&st->stripes[i], NULL);
	pthread_mutex_init(&st->room_lock, NULL);
	pthread_mutex_init(&st->holds_lock, NULL);
	return 0;
}

struct sync_stage_hold {
	char key[SYNC_KEY_LEN + 1];
	int n;
	struct sync_stage_hold *next;
};

int sync_staging_hold(struct sync_staging *st, const char *key)
{
	struct sync_stage_hold *h;

	pthread_mutex_lock(&st->holds_lock);
	for (h = st->holds; h && strcmp(h->key, key); h = h->next)
		;
	if (!h && (h = calloc(1, sizeof(*h))) != NULL) {
		snprintf(h->key, sizeof(h->key), "%s", key);
		h->next = st->holds;
		st->holds = h;
	}
	if (h)
		h->n++;
	pthread_mutex_unlock(&st->holds_lock);
	return h ? 0 : -ENOMEM;
}

int sync_staging_unhold(struct sync_staging *st, const char *key)
{
	struct sync_stage_hold **pp, *h;
	int left = 0;

	pthread_mutex_lock(&st->holds_lock);
	for (pp = &st->holds; *pp && strcmp((*pp)->key, key); pp = &(*pp)->next)
		;
	if ((h = *pp) != NULL && (left = --h->n) == 0) {
		*pp = h->next;
		free(h);
	}
	pthread_mutex_unlock(&st->holds_lock);
	return left;
}

void sync_staging_fini(struct sync_staging *st)
{
	if (!st->dir)
		return;
	for (int i = 0; i < SYNC_STAGING_STRIPES; i++)
		pthread_mutex_destroy(&st->stripes[i]);
	pthread_mutex_destroy(&st->room_lock);
	pthread_mutex_destroy(&st->holds_lock);
	while (st->holds) {
		struct sync_stage_hold *h = st->holds;

		st->holds = h->next;
		free(h);
	}
	free(st->dir);
	st->dir = NULL;
}

/* SHA-256 over coll NUL origin NUL seq (8 bytes LE) [tag], 32 hex digits. */
static void key_hash(const char *coll, const char *origin, uint64_t seq,
		     const char *tag, char key[SYNC_KEY_LEN + 1])
{
	unsigned char buf[ES_SYNC_NAME_MAX + ES_SYNC_DEVICE_MAX + 32];
	unsigned char h[32];
	size_t n = 0, a = strlen(coll), b = strlen(origin);
	size_t t = tag ? strlen(tag) : 0;

	/* Lengths are validated before (<= 64 each); cut defensively. */
	a = a > ES_SYNC_NAME_MAX ? ES_SYNC_NAME_MAX : a;
	b = b > ES_SYNC_DEVICE_MAX ? ES_SYNC_DEVICE_MAX : b;
	t = t > 16 ? 16 : t;
	memcpy(buf, coll, a);
	n = a;
	buf[n++] = 0;
	memcpy(buf + n, origin, b);
	n += b;
	buf[n++] = 0;
	for (int i = 0; i < 8; i++)
		buf[n++] = (unsigned char)(seq >> (8 * i));
	if (t)
		memcpy(buf + n, tag, t);
	n += t;
	mbedtls_sha256_ret(buf, n, h, 0);
	for (int i = 0; i < SYNC_KEY_LEN / 2; i++)
		snprintf(key + 2 * i, 3, "%02x", h[i]);
}

void sync_staging_key(const char *coll, const char *origin, uint64_t seq,
		      char key[SYNC_KEY_LEN + 1])
{
	key_hash(coll, origin, seq, NULL, key);
}

pthread_mutex_t *sync_staging_lock(struct sync_staging *st, const char *key)
{
	unsigned v = 0;

	sscanf(key, "%2x", &v);
	return &st->stripes[v % SYNC_STAGING_STRIPES];
}

static int path_of(const struct sync_staging *st, const char *key,
		   const char *ext, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/%s%s", st->dir, key, ext);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* ---- metadata --------------------------------------------------------- */

static void meta_pack(unsigned char *b, const struct sync_stage_meta *m)
{
	size_t a = strlen(m->coll), o = strlen(m->origin);

	memset(b, 0, META_SIZE);
	memcpy(b, "ESSM", 4);
	le32_store(b + 4, META_VERSION);
	le64_store(b + 8, m->origin_seq);
	le64_store(b + 16, m->seal_hlc);
	le64_store(b + 24, m->count);
	le64_store(b + 32, m->size);
	le32_store(b + 40, m->dim);
	le32_store(b + 44, m->checksum);
	b[48] = (unsigned char)a;
	memcpy(b + 49, m->coll, a);
	b[113] = (unsigned char)o;
	memcpy(b + 114, m->origin, o);
	le32_store(b + META_CRC_AT, es_crc32c(0, b, META_CRC_AT));
}

static int meta_unpack(const unsigned char *b, struct sync_stage_meta *m)
{
	size_t a = b[48], o = b[113];

	if (memcmp(b, "ESSM", 4) || le32_load(b + 4) != META_VERSION ||
	    le32_load(b + META_CRC_AT) != es_crc32c(0, b, META_CRC_AT) ||
	    a > ES_SYNC_NAME_MAX || o > ES_SYNC_DEVICE_MAX)
		return -EINVAL;
	memset(m, 0, sizeof(*m));
	m->origin_seq = le64_load(b + 8);
	m->seal_hlc = le64_load(b + 16);
	m->count = le64_load(b + 24);
	m->size = le64_load(b + 32);
	m->dim = le32_load(b + 40);
	m->checksum = le32_load(b + 44);
	memcpy(m->coll, b + 49, a);
	memcpy(m->origin, b + 114, o);
	return 0;
}

static int meta_read(const struct sync_staging *st, const char *key,
		     struct sync_stage_meta *m)
{
	unsigned char b[META_SIZE];
	char path[4096];
	int fd, rc;

	rc = path_of(st, key, ".meta", path, sizeof(path));
	if (rc)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = sync_pread_all(fd, b, META_SIZE, 0);
	close(fd);
	return rc ? rc : meta_unpack(b, m);
}

static int meta_equal(const struct sync_stage_meta *a,
		      const struct sync_stage_meta *b)
{
	return !strcmp(a->coll, b->coll) && !strcmp(a->origin, b->origin) &&
	       a->origin_seq == b->origin_seq && a->seal_hlc == b->seal_hlc &&
	       a->count == b->count && a->size == b->size && a->dim == b->dim &&
	       a->checksum == b->checksum;
}

static int meta_write(const struct sync_staging *st, const char *key,
		      const struct sync_stage_meta *m)
{
	unsigned char b[META_SIZE];
	char tmp[4096], path[4096];
	int fd, rc;

	if (path_of(st, key, ".meta.tmp", tmp, sizeof(tmp)) ||
	    path_of(st, key, ".meta", path, sizeof(path)))
		return -ENAMETOOLONG;
	meta_pack(b, m);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	rc = sync_pwrite_all(fd, b, META_SIZE, 0);
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	close(fd);
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

/* ---- transfers -------------------------------------------------------- */

void sync_staging_remove(struct sync_staging *st, const char *key)
{
	char path[4096];

	if (path_of(st, key, ".part", path, sizeof(path)) == 0)
		unlink(path);
	if (path_of(st, key, ".meta", path, sizeof(path)) == 0)
		unlink(path);
}

int sync_staging_path(struct sync_staging *st, const char *key, char **path)
{
	char buf[4096];
	int rc = path_of(st, key, ".part", buf, sizeof(buf));

	if (rc)
		return rc;
	*path = strdup(buf);
	return *path ? 0 : -ENOMEM;
}

/* The room kept free on a filesystem of sv's (sync_staging_keep_free). */
static uint64_t keep_free(const struct statvfs *sv)
{
	uint64_t tenth = (uint64_t)sv->f_blocks * sv->f_frsize / 10;

	return tenth < SYNC_STAGING_KEEP_MAX ? tenth : SYNC_STAGING_KEEP_MAX;
}

uint64_t sync_staging_keep_free(const struct sync_staging *st)
{
	struct statvfs sv;

	return statvfs(st->dir, &sv) == 0 ? keep_free(&sv)
					  : SYNC_STAGING_KEEP_MAX;
}

/* 0 if need more bytes leave the filesystem its keep_free, else
 * -ENOSPC; 0 if it cannot tell (fallocate will). */
static int room_for(const struct sync_staging *st, uint64_t need)
{
	struct statvfs sv;
	uint64_t avail, keep;

	if (statvfs(st->dir, &sv) != 0)
		return 0;
	keep = keep_free(&sv);
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (sync_test_hooks.staging_avail)
		avail = sync_test_hooks.staging_avail;
	return avail >= keep && avail - keep >= need ? 0 : -ENOSPC;
}

/*
 * The blocks of the whole segment for the .part at fd (the length
 * stays): a disk without the room says so at begin, not at 90%, and the
 * appends land in blocks already allocated, in one extent. What fd has
 * allocated already (a transfer resumed) needs no more room.
 */
static int reserve(struct sync_staging *st, int fd, uint64_t size)
{
	struct stat sb;
	uint64_t have;
	int rc;

	if (fstat(fd, &sb) != 0)
		return -errno;
	have = (uint64_t)sb.st_blocks * 512;
	pthread_mutex_lock(&st->room_lock);
	rc = room_for(st, size > have ? size - have : 0);
	if (rc == 0 &&
	    fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)size) != 0 &&
	    errno != EOPNOTSUPP)
		rc = -errno;
	pthread_mutex_unlock(&st->room_lock);
	return rc;
}

int sync_staging_open(struct sync_staging *st, const char *key,
		      const struct sync_stage_meta *m, uint64_t *offset)
{
	struct sync_stage_meta old;
	struct stat sb;
	char part[4096];
	int fd, rc;

	rc = path_of(st, key, ".part", part, sizeof(part));
	if (rc)
		return rc;
	if (meta_read(st, key, &old) == 0 && meta_equal(&old, m) &&
	    stat(part, &sb) == 0 && (uint64_t)sb.st_size <= m->size) {
		/* Resumed: its reservation was given back when its last
		 * transfer ended (sync_staging_release). */
		fd = open(part, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		rc = reserve(st, fd, m->size);
		close(fd);
		*offset = (uint64_t)sb.st_size;
		return rc;
	}
	sync_staging_remove(st, key);
	rc = meta_write(st, key, m);
	if (rc)
		return rc;
	fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		sync_staging_remove(st, key);
		return rc;
	}
	rc = reserve(st, fd, m->size);
	close(fd);
	if (rc) {
		sync_staging_remove(st, key);
		return rc;
	}
	rc = sync_fsync_dir(st->dir);
	*offset = 0;
	return rc;
}

void sync_stage_writer_init(struct sync_stage_writer *w, uint64_t offset)
{
	memset(w, 0, sizeof(*w));
	w->summed = offset == 0;
	w->flushed = offset;
}

void sync_stage_writer_fini(struct sync_stage_writer *w)
{
	if (w->has_fd)
		close(w->fd);
	memset(w, 0, sizeof(*w));
}

/* 1 if w's descriptor is the .part at part now (its stat in *sb). */
static int writer_is(const struct sync_stage_writer *w, const char *part,
		     struct stat *sb)
{
	struct stat at;

	return w->has_fd && fstat(w->fd, sb) == 0 && stat(part, &at) == 0 &&
	       at.st_dev == sb->st_dev && at.st_ino == sb->st_ino;
}

/*
 * w's descriptor of the .part at part, opened again unless the one w has
 * is still the file at that path: the file may have been removed (a
 * sweep, or another transfer of the key starting over) or installed (a
 * link in the store, and the .part removed) since. With the file's stat
 * in *sb: 0 or -errno (-ENOENT if nothing is staged).
 */
static int writer_fd(struct sync_stage_writer *w, const char *part,
		     struct stat *sb)
{
	if (writer_is(w, part, sb))
		return 0;
	if (w->has_fd)
		close(w->fd);
	w->has_fd = 0;
	w->fd = open(part, O_WRONLY | O_CLOEXEC);
	if (w->fd < 0)
		return -errno;
	w->has_fd = 1;
	return fstat(w->fd, sb) != 0 ? -errno : 0;
}

void sync_staging_release(struct sync_staging *st, const char *key,
			  const struct sync_stage_writer *w)
{
	struct stat sb;
	char part[4096];
	int fd;

	if (path_of(st, key, ".part", part, sizeof(part)))
		return;
	/* A writeback of w's failed: what is staged may not be what reached
	 * the disk, and a later transfer's fdatasync would not say so (the
	 * error was reported to w's descriptor). It starts over. */
	if (w->werr && writer_is(w, part, &sb)) {
		sync_staging_remove(st, key);
		return;
	}
	fd = open(part, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	/* Cut to its own length: the blocks reserved past it are freed
	 * (ext4 frees them even when the length does not change); if that
	 * fails they stay until the transfer resumes or the sweep. */
	if (fstat(fd, &sb) == 0 && ftruncate(fd, sb.st_size) != 0) {
		/* they stay reserved until a resume or the sweep */
	}
	close(fd);
}

/* sync_file_range, or the error a test has the writeback fail with. */
static int writeback(int fd, uint64_t off, uint64_t n, unsigned flags)
{
	if (sync_test_hooks.writeback_err)
		return sync_test_hooks.writeback_err;
	return sync_file_range(fd, (off_t)off, (off_t)n, flags) ? -errno : 0;
}

/*
 * Starts the writeback of [off, off + n) and finishes that of what w
 * appended before it, which then leaves the page cache (the writer's
 * streaming, staging.h). The first failure is kept in w->werr; a range
 * whose writeback failed stays in the cache.
 */
static void stream(int fd, struct sync_stage_writer *w, uint64_t off, size_t n)
{
	int rc = writeback(fd, off, n, SYNC_FILE_RANGE_WRITE);

	if (rc == 0 && w->flushed < off) {
		rc = writeback(fd, w->flushed, off - w->flushed,
			       SYNC_FILE_RANGE_WAIT_BEFORE |
				   SYNC_FILE_RANGE_WRITE |
				   SYNC_FILE_RANGE_WAIT_AFTER);
		if (rc == 0)
			(void)posix_fadvise(fd, (off_t)w->flushed,
					    (off_t)(off - w->flushed),
					    POSIX_FADV_DONTNEED);
	}
	if (rc && !w->werr)
		w->werr = rc;
	w->flushed = off;
}

int sync_staging_append(struct sync_staging *st, const char *key,
			struct sync_stage_writer *w, uint64_t off,
			const void *p, size_t n, const uint32_t *crc,
			uint64_t *now)
{
	struct stat sb;
	char part[4096];
	int fd, rc;

	rc = path_of(st, key, ".part", part, sizeof(part));
	if (rc == 0)
		rc = writer_fd(w, part, &sb);
	if (rc)
		return rc;
	fd = w->fd;
	*now = (uint64_t)sb.st_size;
	if (*now != off)
		return SYNC_E_OFFSET;
	rc = sync_pwrite_all(fd, p, n, (off_t)off);
	if (rc) {
		/* Keep the length an offset that was acknowledged. */
		if (ftruncate(fd, (off_t)off) != 0)
			rc = -EIO;
		return rc;
	}
	*now = off + n;
	if (w->summed && w->crc_len == off) {
		w->crc = es_crc32c_combine(w->crc,
					   crc ? *crc : es_crc32c(0, p, n), n);
		w->crc_len = off + n;
	} else {
		w->summed = 0;
	}
	if (w->defer) {
		if (w->pend_end != off)
			w->pend_off = off;
		w->pend_end = off + n;
	} else {
		stream(fd, w, off, n);
	}
	return 0;
}

void sync_staging_stream(struct sync_stage_writer *w)
{
	if (w->pend_end > w->pend_off && w->has_fd)
		stream(w->fd, w, w->pend_off,
		       (size_t)(w->pend_end - w->pend_off));
	w->pend_off = w->pend_end = 0;
}

/* A writeback that failed since w began (w->werr): what is on disk is
 * not known to be what was appended, so the check fails. */
static int write_failed(const struct sync_stage_writer *w, char *why,
			size_t whylen)
{
	if (!w || !w->werr)
		return 0;
	snprintf(why, whylen, "writing the staged file failed: %s",
		 strerror(-w->werr));
	return ES_E_SYNC_CHECKSUM;
}

/*
 * The whole file's CRC32C from w's sum: the footer says the CRC of what
 * precedes it, so the file's must be that combined with the footer's.
 */
static int sum_matches(const char *part, const struct sync_stage_writer *w,
		       const struct es_ndvs_info *info, int *match)
{
	unsigned char foot[ES_NDVS_FOOTER_SIZE];
	int fd, rc;

	fd = open(part, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = sync_pread_all(fd, foot, sizeof(foot),
			    (off_t)(info->file_size - sizeof(foot)));
	close(fd);
	if (rc)
		return rc;
	*match = w->crc == es_crc32c_combine(info->checksum,
					     es_crc32c(0, foot, sizeof(foot)),
					     sizeof(foot));
	return 0;
}

/* fdatasync, or the error a test has the writeback fail with. */
static int durable(int fd)
{
	if (sync_test_hooks.writeback_err) {
		errno = -sync_test_hooks.writeback_err;
		return -1;
	}
	return fdatasync(fd);
}

/*
 * Opens key's .part, makes it durable first (invariant 3: what is checked
 * is what stays) and checks that it holds m->size bytes: the descriptor
 * in *fdp, or ES_E_SYNC_CHECKSUM with why, or -errno.
 */
static int open_durable(struct sync_staging *st, const char *key,
			const struct sync_stage_meta *m, char *part,
			size_t partlen, int *fdp, char *why, size_t whylen)
{
	struct stat sb;
	int fd, rc;

	rc = path_of(st, key, ".part", part, partlen);
	if (rc)
		return rc;
	fd = open(part, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = fstat(fd, &sb) != 0 ? -errno : 0;
	if (rc == 0 && durable(fd) != 0) {
		/* The writeback failed: what is on disk is not known. */
		snprintf(why, whylen,
			 "making the staged file durable failed: %s",
			 strerror(errno));
		rc = ES_E_SYNC_CHECKSUM;
	}
	if (rc == 0 && (uint64_t)sb.st_size != m->size) {
		snprintf(why, whylen,
			 "staged %" PRIu64 " bytes of a %" PRIu64 "-byte file",
			 (uint64_t)sb.st_size, m->size);
		rc = ES_E_SYNC_CHECKSUM;
	}
	if (rc)
		close(fd);
	else
		*fdp = fd;
	return rc;
}

int sync_staging_check(struct sync_staging *st, const char *key,
		       const struct sync_stage_meta *m,
		       const struct sync_stage_writer *w, char *why,
		       size_t whylen)
{
	struct es_ndvs_info info;
	struct es_ndvs *seg;
	char part[4096];
	int fd = -1, rc, summed, match = 0;

	rc = open_durable(st, key, m, part, sizeof(part), &fd, why, whylen);
	if (rc)
		return rc;
	close(fd);
	rc = write_failed(w, why, whylen);
	if (rc)
		return rc;
	summed = w && w->summed && w->crc_len == m->size;
	memset(&info, 0, sizeof(info));
	/* Without the sum, the full check maps the file and runs over the
	 * page cache, with no copy (it cannot shrink: invariant 4). */
	rc = es_ndvs_open(&seg, part, summed ? 0 : ES_NDVS_OPEN_VERIFY, &info);
	if (rc) {
		snprintf(why, whylen, "the staged segment fails its checks: %s",
			 es_store_strerror(rc));
		return rc == -ENOMEM || rc == -EMFILE ? rc : ES_E_SYNC_CHECKSUM;
	}
	es_ndvs_close(seg);
	if (info.dim != m->dim || info.count != m->count ||
	    info.checksum != m->checksum || info.file_size != m->size) {
		snprintf(why, whylen,
			 "the staged segment (dim %" PRIu32 ", %" PRIu64
			 " vectors, crc %08" PRIx32
			 ") is not the one announced (dim %" PRIu32 ", %" PRIu64
			 " vectors, crc %08" PRIx32 ")",
			 info.dim, info.count, info.checksum, m->dim, m->count,
			 m->checksum);
		return ES_E_SYNC_CHECKSUM;
	}
	if (!summed)
		return 0;
	rc = sum_matches(part, w, &info, &match);
	if (rc)
		return rc;
	if (!match) {
		snprintf(why, whylen,
			 "the staged segment's CRC32C does not match its "
			 "footer's %08" PRIx32,
			 info.checksum);
		return ES_E_SYNC_CHECKSUM;
	}
	return 0;
}

/* ---- index files ----------------------------------------------------- */

void sync_staging_index_key(const char *coll, const char *origin, uint64_t seq,
			    char key[SYNC_KEY_LEN + 1])
{
	char seg[SYNC_KEY_LEN + 1];

	sync_staging_key(coll, origin, seq, seg);
	key_hash(coll, origin, seq, "index", key);
	memcpy(key, seg, 2); /* the segment's lock stripe (staging.h) */
}

void sync_stage_meta_index(struct sync_stage_meta *m, const char *coll,
			   const struct es_sync_segment *seg)
{
	sync_stage_meta_from(m, coll, seg);
	m->count = 0;
	m->dim = 0;
	m->size = seg->index_size;
	m->checksum = seg->index_checksum;
}

/* The CRC32C of the n bytes of fd, read a block at a time. */
static int file_crc(int fd, uint64_t n, uint32_t *crc)
{
	static const size_t block = 1u << 20;
	unsigned char *buf = malloc(block);
	int rc = buf ? 0 : -ENOMEM;

	*crc = 0;
	for (uint64_t off = 0; rc == 0 && off < n; off += block) {
		size_t k = n - off < block ? (size_t)(n - off) : block;

		rc = sync_pread_all(fd, buf, k, (off_t)off);
		if (rc == 0)
			*crc = es_crc32c(*crc, buf, k);
	}
	free(buf);
	return rc;
}

int sync_staging_check_crc(struct sync_staging *st, const char *key,
			   const struct sync_stage_meta *m,
			   const struct sync_stage_writer *w, char *why,
			   size_t whylen)
{
	char part[4096];
	uint32_t crc = 0;
	int fd = -1, rc;

	rc = open_durable(st, key, m, part, sizeof(part), &fd, why, whylen);
	if (rc)
		return rc;
	rc = write_failed(w, why, whylen);
	if (rc) {
		close(fd);
		return rc;
	}
	if (w && w->summed && w->crc_len == m->size)
		crc = w->crc; /* folded as it was written */
	else
		rc = file_crc(fd, m->size, &crc);
	if (rc == 0 && crc != m->checksum) {
		snprintf(why, whylen,
			 "the staged file's CRC32C is %08" PRIx32
			 ", not the %08" PRIx32 " announced",
			 crc, m->checksum);
		rc = ES_E_SYNC_CHECKSUM;
	}
	close(fd);
	return rc;
}

/* ---- sweep ------------------------------------------------------------ */

static int is_key(const char *name, const char **ext)
{
	for (int i = 0; i < SYNC_KEY_LEN; i++) {
		char c = name[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return 0;
	}
	*ext = name + SYNC_KEY_LEN;
	return !strcmp(*ext, ".meta") || !strcmp(*ext, ".part") ||
	       !strcmp(*ext, ".meta.tmp");
}

/* Newest mtime of key's files (0 if none). */
static time_t key_mtime(const struct sync_staging *st, const char *key)
{
	static const char *const exts[] = {".meta", ".part", ".meta.tmp"};
	struct stat sb;
	char path[4096];
	time_t t = 0;

	for (size_t i = 0; i < 3; i++)
		if (path_of(st, key, exts[i], path, sizeof(path)) == 0 &&
		    stat(path, &sb) == 0 && sb.st_mtime > t)
			t = sb.st_mtime;
	return t;
}

static int sweep_key(struct sync_staging *st, const char *key, time_t now,
		     uint64_t max_age_s,
		     int (*installed)(void *, const struct sync_stage_meta *),
		     void *arg)
{
	pthread_mutex_t *lk = sync_staging_lock(st, key);
	struct sync_stage_meta m;
	char tmp[4096];
	int gone = 0, rc;
	time_t mtime;

	pthread_mutex_lock(lk);
	mtime = key_mtime(st, key);
	if (mtime == 0) { /* gone already (readdir lists it still) */
		pthread_mutex_unlock(lk);
		return 0;
	}
	rc = meta_read(st, key, &m);
	/* A file dated ahead of now (the clock set back since, or a file
	 * time finer than time()'s) is new, not 2^64 seconds old. */
	if (mtime < now && (uint64_t)(now - mtime) > max_age_s)
		gone = 1;
	else if (rc)
		gone = 1; /* no or bad .meta: left by a crash (invariant 4) */
	else if (installed && installed(arg, &m) == 1)
		gone = 1;
	if (gone) {
		sync_staging_remove(st, key);
		if (path_of(st, key, ".meta.tmp", tmp, sizeof(tmp)) == 0)
			unlink(tmp);
	}
	pthread_mutex_unlock(lk);
	return gone;
}

int sync_staging_sweep(struct sync_staging *st, uint64_t max_age_s,
		       int (*installed)(void *arg,
					const struct sync_stage_meta *m),
		       void *arg)
{
	char key[SYNC_KEY_LEN + 1];
	struct dirent *de;
	const char *ext;
	time_t now = time(NULL);
	int removed = 0;
	DIR *d;

	d = opendir(st->dir);
	if (!d)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		if (strlen(de->d_name) <= SYNC_KEY_LEN ||
		    !is_key(de->d_name, &ext))
			continue;
		/* Each key once: by its .meta, or by an orphan file. */
		memcpy(key, de->d_name, SYNC_KEY_LEN);
		key[SYNC_KEY_LEN] = '\0';
		if (strcmp(ext, ".meta") != 0) {
			char meta[4096];

			if (path_of(st, key, ".meta", meta, sizeof(meta)) ||
			    access(meta, F_OK) == 0)
				continue;
		}
		removed += sweep_key(st, key, now, max_age_s, installed, arg);
	}
	closedir(d);
	return removed;
}
