"""The peers, measured the way edgesync is: build on N threads, then one
thread, one query at a time, for each search list size (ef).

hnswlib: HNSW with M=16, efConstruction=200 (hnswlib's README example and
ann-benchmarks' usual point); faiss: IndexHNSWFlat(d, 32) with faiss's own
default efConstruction (40, faiss/impl/HNSW.h), taken as it comes.

Both are called from Python, one query per call, so every query also pays
the binding's call cost; call_overhead_us() measures that cost on a
one-vector index so the reader can judge it beside the latencies. Debian
builds both for baseline x86-64 (SSE, no AVX), so hnswlib-native runs the
same hnswlib from C++ (libhnswlib-dev) built with -march=native, without
Python: the strongest form of the peer this machine can run.
"""

import json
import os
import subprocess
import time

import numpy as np


def recall_at_k(found, gt, k):
    """Mean over queries of |found[:k] & gt[:k]| / k (found: list of rows)."""
    total = 0
    for f, g in zip(found, gt):
        total += len(set(int(x) for x in f[:k]) & set(int(x) for x in g[:k]))
    return total / (k * len(gt))


def timed_loop(search, queries, gt, k):
    """Runs search(q) for each query; recall, QPS, mean and p99 us."""
    lat = np.empty(len(queries))
    found = [None] * len(queries)
    clock = time.perf_counter
    start = clock()
    for i in range(len(queries)):
        t = clock()
        found[i] = search(queries[i])
        lat[i] = clock() - t
    wall = clock() - start
    lat_sorted = np.sort(lat) * 1e6
    p99 = lat_sorted[int(np.ceil(0.99 * len(lat))) - 1]
    return {
        "recall": recall_at_k(found, gt, k),
        "qps": len(queries) / wall,
        "mean_us": float(lat.mean() * 1e6),
        "p99_us": float(p99),
    }


def sweeps(values, runs):
    """values, runs times over: repeated sweeps spread noise over time."""
    return list(values) * runs


def best_per_L(points):
    """Of repeated runs, the fastest point of each L, in first-seen order."""
    best = {}
    for p in points:
        b = best.get(p["L"])
        if b is None or p["qps"] > b["qps"]:
            best[p["L"]] = dict(p)
        best[p["L"]]["runs"] = best[p["L"]].get("runs", 0) + 1
    return list(best.values())


def run_hnswlib(base, queries, gt, k, efs, threads, runs=1, M=16,
                ef_construction=200, seed=100):
    import hnswlib

    n, dim = base.shape
    index = hnswlib.Index(space="l2", dim=dim)
    t = time.perf_counter()
    index.init_index(max_elements=n, ef_construction=ef_construction, M=M,
                     random_seed=seed)
    index.set_num_threads(threads)
    index.add_items(base, np.arange(n), num_threads=threads)
    build_s = time.perf_counter() - t
    index.set_num_threads(1)
    points = []
    for ef in sweeps(efs, runs):
        index.set_ef(ef)

        def search(q):
            labels, _ = index.knn_query(q, k=k, num_threads=1)
            return labels[0]

        r = timed_loop(search, queries, gt, k)
        r["L"] = ef
        points.append(r)
    return {
        "system": "hnswlib",
        "params": {"M": M, "efConstruction": ef_construction, "seed": seed},
        "build_threads": threads,
        "build_s": build_s,
        "points": best_per_L(points),
    }


def run_faiss(base, queries, gt, k, efs, threads, runs=1, M=32):
    import faiss

    n, dim = base.shape
    index = faiss.IndexHNSWFlat(dim, M)
    efc = index.hnsw.efConstruction
    faiss.omp_set_num_threads(threads)
    t = time.perf_counter()
    index.add(base)
    build_s = time.perf_counter() - t
    faiss.omp_set_num_threads(1)
    points = []
    for ef in sweeps(efs, runs):
        index.hnsw.efSearch = ef

        def search(q):
            _, labels = index.search(q.reshape(1, -1), k)
            return labels[0]

        r = timed_loop(search, queries, gt, k)
        r["L"] = ef
        points.append(r)
    return {
        "system": "faiss",
        "params": {"M": M, "efConstruction": efc},
        "build_threads": threads,
        "build_s": build_s,
        "points": best_per_L(points),
    }


def build_native(root, out_dir):
    """Compiles hnsw_native.cpp with -march=native (if newer); its path."""
    src = os.path.join(root, "tests", "bench", "hnsw_native.cpp")
    exe = os.path.join(out_dir, "hnsw_native")
    if (not os.path.exists(exe)
            or os.path.getmtime(exe) < os.path.getmtime(src)):
        subprocess.run(["g++", "-O3", "-march=native", "-std=c++17",
                        "-pthread", src, "-o", exe], check=True)
    return exe


def run_native(exe, paths, k, efs, threads, runs=1, M=16,
               ef_construction=200, seed=100):
    """hnswlib in C++, same parameters as run_hnswlib (hnsw_native.cpp)."""
    p = subprocess.run([exe, *paths, str(k),
                        ",".join(map(str, sweeps(efs, runs))),
                        str(threads), str(M), str(ef_construction),
                        str(seed)], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"hnsw_native exited {p.returncode}: "
                           f"{p.stderr.strip()[-400:]}")
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    return {
        "system": "hnswlib-native",
        "params": {"M": M, "efConstruction": ef_construction, "seed": seed,
                   "compiled": "g++ -O3 -march=native"},
        "build_threads": threads,
        "build_s": lines[0]["build_s"],
        "points": best_per_L(lines[1:]),
    }


def call_overhead_us(dim, reps=20000):
    """Mean us per single-query call on a one-vector index, per binding."""
    import faiss
    import hnswlib

    one = np.zeros((1, dim), dtype=np.float32)
    q = np.zeros(dim, dtype=np.float32)
    h = hnswlib.Index(space="l2", dim=dim)
    h.init_index(max_elements=1, ef_construction=10, M=4)
    h.add_items(one, [0])
    h.set_num_threads(1)
    f = faiss.IndexHNSWFlat(dim, 4)
    f.add(one)
    faiss.omp_set_num_threads(1)
    out = {}
    for name, call in (("hnswlib", lambda: h.knn_query(q, k=1)),
                       ("faiss", lambda: f.search(q.reshape(1, -1), 1))):
        call()
        t = time.perf_counter()
        for _ in range(reps):
            call()
        out[name] = (time.perf_counter() - t) / reps * 1e6
    return out
