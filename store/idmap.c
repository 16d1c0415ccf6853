#include <errno.h>
#include <stdlib.h>

#include "idmap.h"

#define MIN_CAPACITY 16

static inline uint64_t hash64(uint64_t x)
{
	/* splitmix64's finalizer: every input bit moves every output bit. */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

void idmap_init(struct idmap *m)
{
	m->slots = NULL;
	m->mask = 0;
	m->count = 0;
}

void idmap_fini(struct idmap *m)
{
	free(m->slots);
	idmap_init(m);
}

uint64_t idmap_get(const struct idmap *m, uint64_t key)
{
	if (!m->slots)
		return ES_IDMAP_NONE;
	for (uint64_t i = hash64(key) & m->mask;; i = (i + 1) & m->mask) {
		const struct idmap_slot *s = &m->slots[i];

		if (s->value == ES_IDMAP_NONE)
			return ES_IDMAP_NONE;
		if (s->key == key)
			return s->value;
	}
}

void idmap_prefetch(const struct idmap *m, uint64_t key)
{
	if (m->slots)
		__builtin_prefetch(&m->slots[hash64(key) & m->mask]);
}

static void insert_fresh(struct idmap_slot *slots, uint64_t mask, uint64_t key,
			 uint64_t value)
{
	uint64_t i = hash64(key) & mask;

	while (slots[i].value != ES_IDMAP_NONE)
		i = (i + 1) & mask;
	slots[i].key = key;
	slots[i].value = value;
}

static int resize(struct idmap *m, uint64_t capacity)
{
	struct idmap_slot *slots;

	if (capacity > SIZE_MAX / sizeof(*slots))
		return -ENOMEM;
	slots = malloc(capacity * sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (uint64_t i = 0; i < capacity; i++)
		slots[i].value = ES_IDMAP_NONE;
	for (uint64_t i = 0; m->slots && i <= m->mask; i++)
		if (m->slots[i].value != ES_IDMAP_NONE)
			insert_fresh(slots, capacity - 1, m->slots[i].key,
				     m->slots[i].value);
	free(m->slots);
	m->slots = slots;
	m->mask = capacity - 1;
	return 0;
}

int idmap_reserve(struct idmap *m, uint64_t n)
{
	uint64_t capacity = MIN_CAPACITY;

	/* keep the load at most 3/4 */
	while (capacity / 4 * 3 < n)
		capacity *= 2;
	if (m->slots && capacity <= m->mask + 1)
		return 0;
	return resize(m, capacity);
}

int idmap_put(struct idmap *m, uint64_t key, uint64_t value)
{
	uint64_t i;
	int rc;

	if (m->slots) {
		for (i = hash64(key) & m->mask;
		     m->slots[i].value != ES_IDMAP_NONE;
		     i = (i + 1) & m->mask) {
			if (m->slots[i].key == key) {
				m->slots[i].value = value;
				return 0;
			}
		}
	}
	rc = idmap_reserve(m, m->count + 1);
	if (rc < 0)
		return rc;
	insert_fresh(m->slots, m->mask, key, value);
	m->count++;
	return 0;
}

uint64_t idmap_del(struct idmap *m, uint64_t key)
{
	uint64_t i, j, value;

	if (!m->slots)
		return ES_IDMAP_NONE;
	for (i = hash64(key) & m->mask;; i = (i + 1) & m->mask) {
		if (m->slots[i].value == ES_IDMAP_NONE)
			return ES_IDMAP_NONE;
		if (m->slots[i].key == key)
			break;
	}
	value = m->slots[i].value;
	/* Shift back the entries of the run that probed past slot i. */
	for (j = (i + 1) & m->mask; m->slots[j].value != ES_IDMAP_NONE;
	     j = (j + 1) & m->mask) {
		uint64_t home = hash64(m->slots[j].key) & m->mask;

		/* slot j's entry may move to i if i lies on its probe path */
		if (((j - home) & m->mask) >= ((j - i) & m->mask)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i].value = ES_IDMAP_NONE;
	m->count--;
	return value;
}

uint64_t idmap_bytes(const struct idmap *m)
{
	return m->slots ? (m->mask + 1) * sizeof(struct idmap_slot) : 0;
}
