// hnswlib from C++ (libhnswlib-dev, header-only), built with -march=native:
// the peer without the Python binding's per-call cost and with the SIMD
// kernels this CPU has (Debian's python3-hnswlib is built for baseline
// x86-64, SSE only). Same parameters and protocol as the Python peers:
// build on THREADS threads, then one thread, one query at a time.
//
// usage: hnsw_native BASE.fvecs QUERY.fvecs GT.ivecs K EF[,EF...] THREADS
//                    [M [EF_CONSTRUCTION [SEED]]]
// Prints one JSON object for the build, then one per ef.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <hnswlib/hnswlib.h>

namespace {

template <typename T>
std::vector<T> read_vecs(const char *path, size_t *dim, size_t *count)
{
	FILE *f = std::fopen(path, "rb");
	if (!f)
		throw std::runtime_error(std::string(path) + ": cannot open");
	std::vector<T> out;
	int32_t d = 0;
	size_t n = 0;
	while (std::fread(&d, 4, 1, f) == 1) {
		if (d <= 0 || (n && (size_t)d != *dim))
			throw std::runtime_error(std::string(path) +
						 ": bad record dimension");
		*dim = (size_t)d;
		out.resize((n + 1) * *dim);
		if (std::fread(&out[n * *dim], 4, *dim, f) != *dim)
			throw std::runtime_error(std::string(path) +
						 ": truncated");
		n++;
	}
	std::fclose(f);
	if (!n)
		throw std::runtime_error(std::string(path) + ": empty");
	*count = n;
	return out;
}

double now()
{
	using namespace std::chrono;
	return duration<double>(steady_clock::now().time_since_epoch())
		.count();
}

std::vector<size_t> parse_list(const char *text)
{
	std::vector<size_t> out;
	std::stringstream ss(text);
	std::string tok;
	while (std::getline(ss, tok, ','))
		out.push_back(std::stoul(tok));
	return out;
}

void build(hnswlib::HierarchicalNSW<float> &index, const float *base,
	   size_t n, size_t dim, unsigned threads)
{
	index.addPoint(base, 0);
	std::atomic<size_t> next(1);
	std::vector<std::thread> pool;
	for (unsigned t = 0; t < threads; t++)
		pool.emplace_back([&]() {
			for (size_t i; (i = next++) < n;)
				index.addPoint(base + i * dim, i);
		});
	for (auto &th : pool)
		th.join();
}

void search_all(const hnswlib::HierarchicalNSW<float> &index,
		const std::vector<float> &q, size_t nq, size_t dim,
		const std::vector<int32_t> &gt, size_t gt_dim, size_t k,
		size_t ef)
{
	std::vector<double> lat(nq);
	size_t found = 0;
	double start = now();
	std::vector<std::vector<size_t>> res(nq);
	for (size_t i = 0; i < nq; i++) {
		double t = now();
		auto pq = index.searchKnn(&q[i * dim], k);
		lat[i] = now() - t;
		while (!pq.empty()) {
			res[i].push_back(pq.top().second);
			pq.pop();
		}
	}
	double wall = now() - start;
	for (size_t i = 0; i < nq; i++) {
		std::set<size_t> g(gt.begin() + i * gt_dim,
				   gt.begin() + i * gt_dim + k);
		for (size_t r : res[i])
			found += g.count(r);
	}
	double sum = 0;
	for (double l : lat)
		sum += l;
	std::sort(lat.begin(), lat.end());
	size_t p99 = (size_t)std::ceil(0.99 * (double)nq) - 1;
	std::printf("{\"L\":%zu,\"recall\":%.6f,\"qps\":%.2f,\"mean_us\":%.2f,"
		    "\"p99_us\":%.2f}\n",
		    ef, (double)found / (double)(k * nq), (double)nq / wall,
		    sum / (double)nq * 1e6, lat[p99] * 1e6);
	std::fflush(stdout);
}

} // namespace

int main(int argc, char **argv)
{
	if (argc < 7) {
		std::fprintf(stderr, "usage: hnsw_native BASE QUERY GT K EFS "
				     "THREADS [M [EFC [SEED]]]\n");
		return 64;
	}
	try {
		size_t dim = 0, n = 0, qdim = 0, nq = 0, gdim = 0, ng = 0;
		auto base = read_vecs<float>(argv[1], &dim, &n);
		auto q = read_vecs<float>(argv[2], &qdim, &nq);
		auto gt = read_vecs<int32_t>(argv[3], &gdim, &ng);
		size_t k = std::stoul(argv[4]);
		auto efs = parse_list(argv[5]);
		unsigned threads = (unsigned)std::stoul(argv[6]);
		size_t M = argc > 7 ? std::stoul(argv[7]) : 16;
		size_t efc = argc > 8 ? std::stoul(argv[8]) : 200;
		size_t seed = argc > 9 ? std::stoul(argv[9]) : 100;
		if (qdim != dim || ng < nq || gdim < k || !threads)
			throw std::runtime_error("inputs do not match");
		hnswlib::L2Space space(dim);
		hnswlib::HierarchicalNSW<float> index(&space, n, M, efc, seed);
		double t = now();
		build(index, base.data(), n, dim, threads);
		std::printf("{\"build_s\":%.3f,\"threads\":%u,\"M\":%zu,"
			    "\"efConstruction\":%zu}\n",
			    now() - t, threads, M, efc);
		for (size_t ef : efs) {
			index.setEf(ef);
			search_all(index, q, nq, dim, gt, gdim, k, ef);
		}
	} catch (const std::exception &e) {
		std::fprintf(stderr, "hnsw_native: %s\n", e.what());
		return 1;
	}
	return 0;
}
