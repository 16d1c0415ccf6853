/*
 * Private to the store: how distance.c and the per-architecture kernel
 * files (distance_x86.c, distance_arm.c) meet.
 *
 * A kernel set is a pair of functions with the es_distance_fn signature:
 *   l2  sum (a[i] - b[i])^2
 *   ip  -sum a[i] * b[i]
 * Both accept any dim (0 gives 0), any float-aligned pointers (no wider
 * alignment), and read exactly a[0..dim) and b[0..dim): a tail may be read
 * with a masked load, which never touches (or faults on) a byte past the
 * end. They differ from the portable set only in summation order.
 */
#ifndef EDGESYNC_DISTANCE_IMPL_H
#define EDGESYNC_DISTANCE_IMPL_H

#include "edgesync/distance.h"

struct distance_kernels {
	const char *name;
	es_distance_fn l2;
	es_distance_fn ip;
};

/*
 * distance_simd_detect returns set s if this build has it and the CPU
 * (and the kernel's saved register state) can run it, else NULL. Each
 * architecture file defines it for its own sets; distance.c defines a
 * stub on other architectures. Called once, under pthread_once.
 * ES_SIMD_PORTABLE is not asked for here: distance.c owns it.
 */
const struct distance_kernels *distance_simd_detect(enum es_simd s);

#endif
