/*
 * Private to the store: an open-addressing hash map from a u64 key (a
 * vector id; every value of u64 is a valid key) to a u64 value, with
 * linear probing and backward-shift deletion, so there are no tombstone
 * slots and lookups stay short. ES_IDMAP_NONE is the one value that
 * cannot be stored. Not thread-safe: callers lock.
 */
#ifndef EDGESYNC_IDMAP_H
#define EDGESYNC_IDMAP_H

#include <stddef.h>
#include <stdint.h>

#define ES_IDMAP_NONE UINT64_MAX

struct idmap_slot {
	uint64_t key;
	uint64_t value; /* ES_IDMAP_NONE: the slot is empty */
};

struct idmap {
	struct idmap_slot *slots;
	uint64_t mask; /* capacity - 1; capacity a power of two */
	uint64_t count;
};

void idmap_init(struct idmap *m);
void idmap_fini(struct idmap *m);

/* idmap_get returns the value of key, or ES_IDMAP_NONE. */
uint64_t idmap_get(const struct idmap *m, uint64_t key);

/* idmap_prefetch starts loading the slot where a lookup of key begins,
 * so that a loop over many keys can ask a few keys ahead. */
void idmap_prefetch(const struct idmap *m, uint64_t key);

/* idmap_put sets key to value (not ES_IDMAP_NONE); 0 or -ENOMEM. */
int idmap_put(struct idmap *m, uint64_t key, uint64_t value);

/* idmap_del removes key; returns its value or ES_IDMAP_NONE. */
uint64_t idmap_del(struct idmap *m, uint64_t key);

/* idmap_reserve makes room for n keys without growing; 0 or -ENOMEM. */
int idmap_reserve(struct idmap *m, uint64_t n);

/* Approximate bytes of memory held. */
uint64_t idmap_bytes(const struct idmap *m);

#endif
