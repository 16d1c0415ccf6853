#!/usr/bin/python3
"""The peer benchmark: edgesync against hnswlib and faiss on the same
machine, in the same run, on the same queries (run by deploy/bench-search.sh).

For each data set: every system builds its index on --build-threads
threads (timed), then answers every query on one thread, one query at a
time, for each search list size L (hnswlib and faiss: ef), giving recall@k
against exact ground truth, QPS, mean and p99 latency. Each system sweeps
the L values --runs times (default 2) and keeps the fastest run of each L,
so a burst of other work on a shared machine costs a run, not a figure.
edgesync runs as a user runs it: `edgesync segment create`, `edgesync
index build`, `edgesync index search --memory --json`. Its QPS is divided
by each peer's QPS at the same recall (interpolated on the peer's curve).

With --scale: a generated clustered set (default 1,000,000 x 128), built
by edgesync, searched in the disk regime warm and cold (O_DIRECT, page
cache dropped) and in the memory regime, with the peak RSS of each search
process (/usr/bin/time -v) beside the index file size.

Everything printed is measured in this run; results go to --out as
results.json (sets measured by earlier runs and not by this one are kept,
each with its date), one CSV per set, builds.csv, scale.csv and mnist.png.
"""

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import datasets  # noqa: E402
import peers  # noqa: E402
import report  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_L = "10,15,20,30,40,60,80,100,160,240,400"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr,
          flush=True)


def run(cmd, timed=False):
    """Runs cmd; stdout (and /usr/bin/time -v's peak RSS in KiB)."""
    if timed:
        cmd = ["/usr/bin/time", "-v"] + cmd
    log("$ " + " ".join(cmd))
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[2 if timed else 0]} exited "
                           f"{p.returncode}: {p.stderr.strip()[-800:]}")
    rss = None
    if timed:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)",
                      p.stderr)
        rss = int(m.group(1)) if m else None
    return p.stdout, rss


def json_lines(text):
    return [json.loads(line) for line in text.splitlines()
            if line.startswith("{")]


def tile(work, paths, min_queries):
    """Repeats a small query set (and its ground truth) to min_queries."""
    base_p, query_p, gt_p = paths
    q = datasets.read_fvecs(query_p)
    if len(q) >= min_queries:
        return paths, 1
    reps = math.ceil(min_queries / len(q))
    tq = os.path.join(work, "query_tiled.fvecs")
    tg = os.path.join(work, "groundtruth_tiled.ivecs")
    datasets.write_vecs(tq, np.tile(q, (reps, 1)))
    datasets.write_vecs(tg, np.tile(datasets.read_ivecs(gt_p), (reps, 1)))
    return (base_p, tq, tg), reps


def edgesync_build(es, work, base_p, threads, timed=False):
    seg = os.path.join(work, "base.ndvs")
    idx = os.path.join(work, "base.vamana")
    run([es, "segment", "create", "--from", base_p, "--out", seg])
    out, rss = run([es, "index", "build", seg, "--out", idx, "--threads",
                    str(threads), "--json"], timed)
    return seg, idx, json_lines(out)[0], rss


def run_edgesync(a, work, paths, Ls):
    base_p, query_p, gt_p = paths
    seg, idx, built, _ = edgesync_build(a.edgesync, work, base_p,
                                        a.build_threads)
    out, _ = run([a.edgesync, "index", "search", idx, "--segment", seg,
                  "--queries", query_p, "--gt", gt_p, "--k", str(a.k),
                  "--L", ",".join(map(str, peers.sweeps(Ls, a.runs))),
                  "--memory", "--json", "--threads", "1"])
    return {"system": "edgesync", "build_s": built["build_s"],
            "build_threads": built["threads"],
            "params": {k: built[k] for k in ("R", "L", "alpha", "metric")},
            "points": peers.best_per_L(json_lines(out))}


def run_set(a, name, paths, Ls):
    work = os.path.join(a.out, "work", name)
    os.makedirs(work, exist_ok=True)
    paths, reps = tile(work, paths, a.min_queries)
    base = datasets.read_fvecs(paths[0])
    queries = datasets.read_fvecs(paths[1])
    gt = datasets.read_ivecs(paths[2])
    result = {"n": len(base), "dim": base.shape[1], "queries": len(queries),
              "query_reps": reps, "k": a.k, "build_threads": a.build_threads,
              "runs": a.runs, "systems": {}}
    for sy in a.systems:
        log(f"{name}: {sy}")
        t = time.time()
        try:
            if sy == "edgesync":
                r = run_edgesync(a, work, paths, Ls)
            elif sy == "hnswlib-native":
                r = peers.run_native(peers.build_native(ROOT, a.out), paths,
                                     a.k, Ls, a.build_threads, a.runs)
            elif sy == "hnswlib":
                r = peers.run_hnswlib(base, queries, gt, a.k, Ls,
                                      a.build_threads, a.runs)
            else:
                r = peers.run_faiss(base, queries, gt, a.k, Ls,
                                    a.build_threads, a.runs)
        except Exception as e:  # a failing system is reported, not fatal
            r = {"system": sy, "error": str(e)}
            log(f"{name}: {sy} FAILED: {e}")
        r["wall_s"] = time.time() - t
        result["systems"][sy] = r
    report.add_ratios(result)
    return result


def run_scale(a):
    t0 = time.time()
    paths = datasets.clustered(a.cache, log,
                               n=a.scale_n, nq=a.scale_queries)
    gen_s = time.time() - t0
    work = os.path.join(a.out, "work", f"scale{a.scale_n}")
    os.makedirs(work, exist_ok=True)
    es = a.edgesync
    t = time.time()
    seg, idx, built, build_rss = edgesync_build(es, work, paths[0],
                                                a.build_threads, True)
    build_wall = time.time() - t
    sc = {"n": a.scale_n, "dim": 128, "queries": a.scale_queries, "k": a.k,
          "build_threads": built["threads"], "build_s": built["build_s"],
          "build_wall_s": build_wall, "build_rss_kib": build_rss,
          "generate_and_gt_s": gen_s,
          "segment_bytes": os.path.getsize(seg),
          "index_bytes": os.path.getsize(idx), "regimes": []}
    common = ["--segment", seg, "--queries", paths[1], "--gt", paths[2],
              "--k", str(a.k), "--L", a.scale_L, "--W", str(a.W),
              "--threads", "1", "--json"]
    for name, flags in (("disk warm", ["--warmup"]),
                        ("disk cold", ["--cold"]),
                        ("memory", ["--memory", "--warmup"])):
        if name == "disk warm":
            with open(idx, "rb") as f:  # bring the file into the page cache
                while f.read(1 << 24):
                    pass
        t = time.time()
        try:
            out, rss = run([es, "index", "search", idx] + common + flags,
                           True)
            reg = {"name": name, "rss_kib": rss, "points": json_lines(out)}
        except Exception as e:
            reg = {"name": name, "error": str(e)}
            log(f"scale {name} FAILED: {e}")
        reg["wall_s"] = time.time() - t
        sc["regimes"].append(reg)
    sc["total_s"] = time.time() - t0
    return sc


def merge_saved(path, results):
    """Saves results over the sets (and scale) of an earlier results.json
    in path, keeping the ones this run did not measure; returns the whole.
    """
    when = results["machine"]["date"]
    for r in results["sets"].values():
        r["date"] = when
    if "scale" in results:
        results["scale"]["date"] = when
    merged = dict(results)
    try:
        with open(path) as f:
            old = json.load(f)
        merged["sets"] = {**old.get("sets", {}), **results["sets"]}
        if "scale" not in results and "scale" in old:
            merged["scale"] = old["scale"]
    except (OSError, ValueError):
        pass
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(merged, f, indent=1)
    os.replace(tmp, path)
    return merged


def machine():
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    pk = {}
    for p in ("python3-hnswlib", "python3-faiss", "python3-numpy"):
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", p],
                           capture_output=True, text=True)
        pk[p] = r.stdout.strip() or None
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "packages": pk, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--edgesync", help="the edgesync binary")
    p.add_argument("--out", default=os.path.join(ROOT, "out", "bench"),
                   help="results, work files and the data cache")
    p.add_argument("--data", default=os.path.join(ROOT, "..", "shared",
                                                  "data"),
                   help="directory of sift5k_* and yfcc10k_*")
    p.add_argument("--sets", default="mnist,sift5k,yfcc10k",
                   help="comma-separated, of mnist, sift5k, yfcc10k")
    p.add_argument("--systems",
                   default="edgesync,hnswlib,hnswlib-native,faiss",
                   help="comma-separated, of the default ones")
    p.add_argument("--L", default=DEFAULT_L,
                   help="search list sizes (edgesync L, peers' ef)")
    p.add_argument("--k", type=int, default=10, help="recall@k, k found")
    p.add_argument("--W", type=int, default=4,
                   help="edgesync reads in flight (disk regime, --scale)")
    p.add_argument("--build-threads", type=int, default=2,
                   help="threads of every system's build")
    p.add_argument("--runs", type=int, default=2,
                   help="sweeps over L per system; the fastest of each L "
                   "is kept (the machine may be shared)")
    p.add_argument("--min-queries", type=int, default=1000,
                   help="repeat a smaller query set up to this many")
    p.add_argument("--quick", action="store_true",
                   help="MNIST cut to 10,000 x 1,000 and 5 L values: a "
                   "trial of the plumbing, not a result")
    p.add_argument("--scale", action="store_true",
                   help="also the generated 1M x 128 set (slow)")
    p.add_argument("--scale-n", type=int, default=1_000_000,
                   help="rows of the generated set (128 dims)")
    p.add_argument("--scale-queries", type=int, default=1000)
    p.add_argument("--scale-L", default="10,20,40,80,160",
                   help="search list sizes of the scale runs")
    a = p.parse_args()
    a.systems = [s for s in a.systems.split(",") if s]
    a.sets = [s for s in a.sets.split(",") if s]
    for s in a.systems:
        if s not in report.SYSTEMS:
            p.error(f"--systems: unknown system {s}")
    for s in a.sets:
        if s not in ("mnist", "sift5k", "yfcc10k"):
            p.error(f"--sets: unknown set {s}")
    if ("edgesync" in a.systems or a.scale) and not a.edgesync:
        p.error("--edgesync is needed")
    a.cache = os.path.join(a.out, "cache")
    if a.quick:  # never mixed with real results
        a.out = os.path.join(a.out, "quick")
    if a.quick and a.L == DEFAULT_L:
        a.L = "10,20,40,80,160"
    if a.runs < 1:
        p.error("--runs must be at least 1")
    return a


def main():
    a = parse_args()
    os.makedirs(a.out, exist_ok=True)
    cache = a.cache
    Ls = [int(x) for x in a.L.split(",")]
    started = time.time()
    results = {"machine": machine(), "k": a.k, "sets": {}, "phase_s": {}}
    if "hnswlib" in a.systems and "faiss" in a.systems:
        results["binding_call_overhead_us"] = peers.call_overhead_us(784)
    for name in a.sets:
        t = time.time()
        if name == "mnist" and a.quick:
            name = "mnist10000x1000"
            paths = datasets.mnist(cache, log, 10000, 1000)
        elif name == "mnist":
            paths = datasets.mnist(cache, log)
        else:
            paths = datasets.shared(a.data, name)
        results["phase_s"][f"{name} data"] = time.time() - t
        t = time.time()
        results["sets"][name] = run_set(a, name, paths, Ls)
        results["phase_s"][name] = time.time() - t
        report.write_csv(os.path.join(a.out, f"{name}.csv"), name,
                         results["sets"][name])
    if a.scale:
        results["scale"] = run_scale(a)
        results["phase_s"]["scale"] = results["scale"]["total_s"]
        report.write_scale_csv(os.path.join(a.out, "scale.csv"),
                               results["scale"])
    results["total_s"] = time.time() - started
    merged = merge_saved(os.path.join(a.out, "results.json"), results)
    report.write_builds_csv(os.path.join(a.out, "builds.csv"),
                            merged["sets"])
    for name, r in results["sets"].items():
        report.print_set(name, r)
        if name.startswith("mnist"):
            png = report.plot(a.out, name, r, log)
            if png:
                print(f"plot: {png}")
    if "binding_call_overhead_us" in results:
        o = results["binding_call_overhead_us"]
        print(f"\nPython binding cost per single-query call (1-vector index,"
              f" included in the peers' figures): hnswlib "
              f"{o['hnswlib']:.1f} us, faiss {o['faiss']:.1f} us")
    if a.scale:
        report.print_scale(results["scale"])
    print("\ntime taken: " + ", ".join(
        f"{k} {v:.0f} s" for k, v in results["phase_s"].items())
        + f"; total {results['total_s']:.0f} s")
    print(f"results: {a.out}/results.json, {a.out}/*.csv")
    failed = [f"{n}/{s}" for n, r in results["sets"].items()
              for s, run_ in r["systems"].items() if "error" in run_]
    failed += [f"scale/{g['name']}" for g in
               results.get("scale", {}).get("regimes", []) if "error" in g]
    if failed:
        print("FAILED: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
