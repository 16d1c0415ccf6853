#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "membuf.h"

void membuf_init(struct membuf *b, uint32_t dim)
{
	memset(b, 0, sizeof(*b));
	b->dim = dim;
	idmap_init(&b->rows);
}

void membuf_fini(struct membuf *b)
{
	free(b->ids);
	free(b->hlc);
	free(b->vec);
	free(b->alive);
	free(b->tombs);
	idmap_fini(&b->rows);
	memset(b, 0, sizeof(*b));
}

static int grow(struct membuf *b)
{
	uint64_t cap = b->cap ? b->cap * 2 : 1024;
	uint64_t *ids = realloc(b->ids, cap * sizeof(*ids));

	if (!ids)
		return -ENOMEM;
	b->ids = ids;
	uint64_t *hlc = realloc(b->hlc, cap * sizeof(*hlc));
	if (!hlc)
		return -ENOMEM;
	b->hlc = hlc;
	float *vec = realloc(b->vec, cap * b->dim * sizeof(*vec));
	if (!vec)
		return -ENOMEM;
	b->vec = vec;
	uint8_t *alive = realloc(b->alive, cap);
	if (!alive)
		return -ENOMEM;
	b->alive = alive;
	b->cap = cap;
	return 0;
}

int membuf_put(struct membuf *b, uint64_t id, uint64_t hlc, const float *v,
	       uint64_t *row)
{
	uint64_t r = idmap_get(&b->rows, id);
	int rc;

	if (r == ES_IDMAP_NONE) {
		if (b->n == b->cap && (rc = grow(b)) < 0)
			return rc;
		rc = idmap_put(&b->rows, id, b->n);
		if (rc < 0)
			return rc;
		r = b->n++;
		b->ids[r] = id;
		b->alive[r] = 0;
	}
	if (b->writes == 0 || hlc != b->last_hlc) {
		b->writes++;
		b->last_hlc = hlc;
	}
	b->hlc[r] = hlc;
	memcpy(b->vec + r * b->dim, v, b->dim * sizeof(float));
	if (!b->alive[r]) {
		b->alive[r] = 1;
		b->live++;
	}
	*row = r;
	return 0;
}

void membuf_kill(struct membuf *b, uint64_t row)
{
	if (b->alive[row]) {
		b->alive[row] = 0;
		b->live--;
	}
}

int membuf_add_tomb(struct membuf *b, const struct es_tombstone *t)
{
	if (b->n_tombs == b->cap_tombs) {
		uint64_t cap = b->cap_tombs ? b->cap_tombs * 2 : 64;
		struct es_tombstone *tombs =
		    realloc(b->tombs, cap * sizeof(*tombs));

		if (!tombs)
			return -ENOMEM;
		b->tombs = tombs;
		b->cap_tombs = cap;
	}
	b->tombs[b->n_tombs++] = *t;
	return 0;
}
