/*
 * Distance kernels: every kernel set this CPU has agrees with the portable
 * one and with a double-precision reference, for every dim 1..1100 and
 * unaligned pointers; masked tails never read past the end (a guard page
 * would fault); metric names round-trip; normalization.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "edgesync/distance.h"

#define MAX_DIM 1100
#define MAX_OFF 16 /* floats of misalignment tried */
#define REL_TOL 1e-4

static const enum es_simd all_sets[] = {
    ES_SIMD_PORTABLE,
    ES_SIMD_AVX2,
    ES_SIMD_AVX512,
    ES_SIMD_NEON,
};
#define N_SETS (sizeof(all_sets) / sizeof(*all_sets))

static uint64_t rng = 0x9e3779b97f4a7c15ull;

/* xorshift64*, uniform in [-1, 1). */
static float rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (float)((rng * 0x2545f4914f6cdd1dull) >> 40) / (1 << 23) - 1.0f;
}

static void fill(float *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		v[i] = rnd();
}

/*
 * The exact value in double, and the scale the float rounding error is
 * relative to: the sum of the terms' magnitudes (for IP the sum itself can
 * be near 0 while each term is not).
 */
static double ref(enum es_metric m, const float *a, const float *b, size_t dim,
		  double *scale)
{
	double s = 0, mag = 0;

	for (size_t i = 0; i < dim; i++) {
		double t;

		if (m == ES_METRIC_L2) {
			double d = (double)a[i] - b[i];

			t = d * d;
		} else {
			t = (double)a[i] * b[i];
		}
		s += t;
		mag += fabs(t);
	}
	*scale = mag;
	return m == ES_METRIC_L2 ? s : -s;
}

static void check_close(double got, double want, double scale, size_t dim,
			const char *what)
{
	double err = fabs(got - want);

	if (err > REL_TOL * scale + 1e-30)
		fail_msg("%s dim %zu: %.9g vs %.9g (scale %.9g)", what, dim,
			 got, want, scale);
}

static void test_metric_names(void **state)
{
	static const char *const bad[] = {
	    "",	   "L2",	"IP", "Cosine", "l2 ",	    " ip",
	    "cos", "euclidean", "l1", "dot",	"cosine\n",
	};
	enum es_metric ms[] = {ES_METRIC_L2, ES_METRIC_IP, ES_METRIC_COSINE};
	enum es_metric m;

	for (size_t i = 0; i < sizeof(ms) / sizeof(*ms); i++) {
		const char *name = es_metric_name(ms[i]);

		assert_int_equal(es_metric_parse(name, &m), 0);
		assert_int_equal(m, ms[i]);
	}
	assert_string_equal(es_metric_name(ES_METRIC_L2), "l2");
	assert_string_equal(es_metric_name(ES_METRIC_IP), "ip");
	assert_string_equal(es_metric_name(ES_METRIC_COSINE), "cosine");
	assert_string_equal(es_metric_name((enum es_metric)7), "unknown");

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		m = (enum es_metric)99;
		assert_int_equal(es_metric_parse(bad[i], &m), -EINVAL);
		assert_int_equal(m, 99);
	}
	assert_int_equal(es_metric_parse(NULL, &m), -EINVAL);
	assert_int_equal(es_metric_parse("l2", NULL), -EINVAL);
}

static void test_dispatch(void **state)
{
	enum es_simd act = es_simd_active();

	assert_true(es_simd_available(ES_SIMD_PORTABLE));
	assert_true(es_simd_available(act));
	assert_false(es_simd_available((enum es_simd)42));
	assert_string_equal(es_simd_name(ES_SIMD_PORTABLE), "portable");
	assert_string_equal(es_simd_name(ES_SIMD_AVX2), "avx2");
	assert_string_equal(es_simd_name(ES_SIMD_AVX512), "avx512");
	assert_string_equal(es_simd_name(ES_SIMD_NEON), "neon");
	assert_string_equal(es_simd_name((enum es_simd)42), "unknown");
#if defined(__x86_64__)
	__builtin_cpu_init();
	assert_int_equal(es_simd_available(ES_SIMD_AVX2),
			 __builtin_cpu_supports("avx2") &&
			     __builtin_cpu_supports("fma"));
	assert_int_equal(es_simd_available(ES_SIMD_AVX512),
			 !!__builtin_cpu_supports("avx512f"));
	assert_false(es_simd_available(ES_SIMD_NEON));
	if (__builtin_cpu_supports("avx512f"))
		assert_int_equal(act, ES_SIMD_AVX512);
#elif defined(__aarch64__)
	assert_int_equal(act, ES_SIMD_NEON);
#else
	assert_int_equal(act, ES_SIMD_PORTABLE);
#endif
	print_message("active kernel set: %s\n", es_simd_name(act));

	/* One pointer per metric; COSINE is the IP kernel. */
	assert_ptr_equal(es_distance_get(ES_METRIC_L2),
			 es_distance_get_with(ES_METRIC_L2, act));
	assert_ptr_equal(es_distance_get(ES_METRIC_IP),
			 es_distance_get_with(ES_METRIC_IP, act));
	assert_ptr_equal(es_distance_get(ES_METRIC_COSINE),
			 es_distance_get(ES_METRIC_IP));
	assert_null(es_distance_get((enum es_metric)9));
	for (size_t s = 0; s < N_SETS; s++) {
		es_distance_fn f =
		    es_distance_get_with(ES_METRIC_L2, all_sets[s]);

		assert_int_equal(f != NULL, es_simd_available(all_sets[s]));
		assert_null(
		    es_distance_get_with((enum es_metric)9, all_sets[s]));
	}
	assert_null(es_distance_get_with(ES_METRIC_L2, (enum es_simd)42));
}

static void test_known_values(void **state)
{
	const float a[] = {1, 2, 3}, b[] = {4, 5, 6};

	for (size_t s = 0; s < N_SETS; s++) {
		es_distance_fn l2, ip;

		if (!es_simd_available(all_sets[s]))
			continue;
		l2 = es_distance_get_with(ES_METRIC_L2, all_sets[s]);
		ip = es_distance_get_with(ES_METRIC_IP, all_sets[s]);
		assert_true(l2(a, b, 3) == 27.0f);
		assert_true(ip(a, b, 3) == -32.0f);
		assert_true(l2(a, a, 3) == 0.0f);
		assert_true(l2(a, b, 0) == 0.0f);
		assert_true(ip(a, b, 0) == 0.0f);
	}
}

/* One metric, one dim, one pair of pointers: every set vs the reference. */
static void check_all_sets(enum es_metric m, const float *a, const float *b,
			   size_t dim)
{
	double scale, want = ref(m, a, b, dim, &scale);
	float port = es_distance_get_with(m, ES_SIMD_PORTABLE)(a, b, dim);

	check_close(port, want, scale, dim, "portable vs double");
	for (size_t s = 1; s < N_SETS; s++) {
		es_distance_fn f = es_distance_get_with(m, all_sets[s]);

		if (f)
			check_close(f(a, b, dim), port, scale, dim,
				    es_simd_name(all_sets[s]));
	}
}

static void test_sets_agree(void **state)
{
	float *a = malloc((MAX_DIM + MAX_OFF) * sizeof(float));
	float *b = malloc((MAX_DIM + MAX_OFF) * sizeof(float));

	assert_non_null(a);
	assert_non_null(b);
	for (size_t dim = 1; dim <= MAX_DIM; dim++) {
		/* Each dim gets every offset of a, and a varying one of b. */
		for (size_t oa = 0; oa < MAX_OFF; oa++) {
			size_t ob = (oa * 5 + dim) % MAX_OFF;
			float mag = (float)(1 + dim % 7) * 3.0f;

			fill(a + oa, dim);
			fill(b + ob, dim);
			for (size_t i = 0; i < dim; i++)
				a[oa + i] *= mag;
			check_all_sets(ES_METRIC_L2, a + oa, b + ob, dim);
			check_all_sets(ES_METRIC_IP, a + oa, b + ob, dim);
		}
	}
	free(a);
	free(b);
}

/*
 * Vectors that end exactly where an inaccessible page starts: a kernel
 * that reads one float too many dies of SIGSEGV (cmocka reports it).
 */
static void test_tail_guard_page(void **state)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t max = pg / sizeof(float);
	unsigned char *map = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	float *end_a, *end_b;

	assert_true(map != MAP_FAILED);
	assert_int_equal(mprotect(map + pg, pg, PROT_NONE), 0);
	assert_int_equal(mprotect(map + 3 * pg, pg, PROT_NONE), 0);
	end_a = (float *)(map + pg);
	end_b = (float *)(map + 3 * pg);
	fill(end_a - max, max);
	fill(end_b - max, max);
	for (size_t dim = 1; dim <= max; dim += dim < 160 ? 1 : 37) {
		check_all_sets(ES_METRIC_L2, end_a - dim, end_b - dim, dim);
		check_all_sets(ES_METRIC_IP, end_a - dim, end_b - dim, dim);
	}
	assert_int_equal(munmap(map, 4 * pg), 0);
}

static double norm2(const float *v, size_t dim)
{
	double s = 0;

	for (size_t i = 0; i < dim; i++)
		s += (double)v[i] * v[i];
	return s;
}

static void test_normalize(void **state)
{
	float v[300], orig[300];

	for (size_t dim = 1; dim <= 300; dim += 1 + dim / 8) {
		double n;

		fill(orig, dim);
		memcpy(v, orig, dim * sizeof(float));
		n = sqrt(norm2(orig, dim));
		es_vector_normalize(v, dim);
		assert_true(fabs(norm2(v, dim) - 1.0) < 1e-5);
		for (size_t i = 0; i < dim; i++)
			assert_true(fabs(v[i] * n - orig[i]) <= 1e-5 * n);
	}

	/* Zero stays zero, dim 0 touches nothing. */
	memset(v, 0, sizeof(v));
	es_vector_normalize(v, 300);
	for (size_t i = 0; i < 300; i++)
		assert_true(v[i] == 0.0f);
	v[0] = 5.0f;
	es_vector_normalize(v, 0);
	assert_true(v[0] == 5.0f);

	/* Sums that would underflow or overflow in float. */
	for (size_t i = 0; i < 300; i++)
		v[i] = 1e-30f;
	es_vector_normalize(v, 300);
	assert_true(fabs(norm2(v, 300) - 1.0) < 1e-5);
	for (size_t i = 0; i < 300; i++)
		v[i] = (i & 1) ? -3e30f : 3e30f;
	es_vector_normalize(v, 300);
	assert_true(fabs(norm2(v, 300) - 1.0) < 1e-5);
	assert_true(v[1] < 0 && v[0] > 0);

	/* Not finite: left as it is. */
	v[0] = INFINITY;
	v[1] = 1.0f;
	es_vector_normalize(v, 2);
	assert_true(isinf(v[0]) && v[1] == 1.0f);
}

/* Normalized vectors through the COSINE kernel give -cos(angle). */
static void test_cosine(void **state)
{
	float a[] = {3, 0, 4, 0, 0}, b[] = {0, 0, 5, 0, 0};
	es_distance_fn f = es_distance_get(ES_METRIC_COSINE);

	es_vector_normalize(a, 5);
	es_vector_normalize(b, 5);
	assert_true(fabsf(f(a, b, 5) + 0.8f) < 1e-6f);
	assert_true(fabsf(f(a, a, 5) + 1.0f) < 1e-6f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_metric_names),
	    cmocka_unit_test(test_dispatch),
	    cmocka_unit_test(test_known_values),
	    cmocka_unit_test(test_sets_agree),
	    cmocka_unit_test(test_tail_guard_page),
	    cmocka_unit_test(test_normalize),
	    cmocka_unit_test(test_cosine),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
