"""Tables, ratios, CSV and the recall/QPS plot of the peer benchmark.

Ratios compare QPS at equal recall: a peer's recall -> QPS curve is its
Pareto frontier (no point kept that another beats on both), interpolated
linearly in recall and log-linearly in QPS. Outside the peer's measured
recall range there is no ratio (None), never an extrapolation.
"""

import csv
import json
import math
import os
import shutil
import subprocess

SYSTEMS = ("edgesync", "hnswlib", "hnswlib-native", "faiss")
PEERS = SYSTEMS[1:]


def frontier(points):
    """(recall, qps) pairs of the Pareto frontier, recall ascending."""
    best = []
    for p in sorted(points, key=lambda p: (-p["recall"], -p["qps"])):
        if not best or p["qps"] > best[-1][1]:
            best.append((p["recall"], p["qps"]))
    return best[::-1]


def qps_at(points, recall):
    f = frontier(points)
    if not f or recall < f[0][0] - 1e-9 or recall > f[-1][0] + 1e-9:
        return None
    for (r0, q0), (r1, q1) in zip(f, f[1:]):
        if r0 - 1e-9 <= recall <= r1 + 1e-9:
            if r1 - r0 < 1e-12:
                return max(q0, q1)
            t = (recall - r0) / (r1 - r0)
            return math.exp(math.log(q0) + t * (math.log(q1) - math.log(q0)))
    return f[0][1] if len(f) == 1 else None


def add_ratios(result):
    """Sets x_PEER on every edgesync point of a data set, for each peer."""
    runs = result["systems"]
    es = runs.get("edgesync")
    if not es or "points" not in es:
        return
    for peer in PEERS:
        pts = runs.get(peer, {}).get("points")
        for p in es["points"]:
            q = qps_at(pts, p["recall"]) if pts else None
            p[f"x_{peer}"] = p["qps"] / q if q else None


def _fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def _reps(result):
    r = result.get("query_reps", 1)
    if r == 1:
        return ""
    return f" ({result['queries'] // r} distinct, each run {r} times)"


def print_set(name, result):
    s = result["systems"]
    print(f"\n== {name}: {result['n']} x {result['dim']}, "
          f"{result['queries']} queries{_reps(result)}, "
          f"k={result['k']}; search: 1 thread, one query at a time, "
          f"best of {result.get('runs', 1)} sweeps")
    builds = [f"{sy} {s[sy]['build_s']:.1f} s" for sy in SYSTEMS
              if sy in s and "build_s" in s[sy]]
    if builds:
        print(f"build on {result['build_threads']} threads: "
              + ", ".join(builds))
    for sy in SYSTEMS:
        if sy in s and "error" in s[sy]:
            print(f"{sy}: FAILED: {s[sy]['error']}")
    peers = [p for p in PEERS if s.get(p, {}).get("points")]
    print(f"{'system':14} {'L/ef':>5} {'recall@' + str(result['k']):>10} "
          f"{'QPS':>10} {'mean us':>9} {'p99 us':>9}"
          + "".join(f" {'x ' + peer:>16}" for peer in peers))
    for sy in SYSTEMS:
        for p in s.get(sy, {}).get("points", []):
            ratios = "".join(
                f" {_fmt(p.get('x_' + peer), '.2f'):>15}"
                f"{'x' if p.get('x_' + peer) else ' '}"
                if sy == "edgesync" else f" {'':>16}" for peer in peers)
            print(f"{sy:14} {p['L']:>5} {p['recall']:>10.4f} "
                  f"{p['qps']:>10.1f} {p['mean_us']:>9.1f} "
                  f"{p['p99_us']:>9.1f}{ratios.rstrip()}")


def write_csv(path, name, result):
    fields = ["set", "system", "L", "recall", "qps", "mean_us", "p99_us",
              "reads_per_query"] + [f"x_{p}" for p in PEERS]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        for sy in SYSTEMS:
            for p in result["systems"].get(sy, {}).get("points", []):
                w.writerow([name, sy] + [p.get(k) for k in fields[2:]])


def write_builds_csv(path, results):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["set", "system", "threads", "build_s", "params"])
        for name, r in results.items():
            for sy in SYSTEMS:
                run = r["systems"].get(sy)
                if run and "build_s" in run:
                    w.writerow([name, sy, r["build_threads"],
                                round(run["build_s"], 3),
                                json.dumps(run.get("params", {}))])


def write_scale_csv(path, sc):
    fields = ["L", "recall", "qps", "mean_us", "p99_us", "reads_per_query",
              "hops_per_query"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["regime"] + fields + ["peak_rss_kib", "index_bytes"])
        for reg in sc["regimes"]:
            for p in reg.get("points", []):
                w.writerow([reg["name"]] + [p.get(k) for k in fields]
                           + [reg["rss_kib"], sc["index_bytes"]])


def plot(out_dir, name, result, log):
    """out_dir/NAME.png: recall (x) against QPS (y, log) per system."""
    if not shutil.which("gnuplot"):
        log("gnuplot missing: no plot")
        return None
    plot_dir = os.path.join(out_dir, "plot")
    os.makedirs(plot_dir, exist_ok=True)
    series = []
    for sy in SYSTEMS:
        pts = result["systems"].get(sy, {}).get("points")
        if not pts:
            continue
        dat = os.path.join(plot_dir, f"{name}_{sy}.dat")
        with open(dat, "w") as f:
            f.write("# recall qps L\n")
            for p in sorted(pts, key=lambda p: p["L"]):
                f.write(f"{p['recall']} {p['qps']} {p['L']}\n")
        series.append(f"'{dat}' using 1:2 with linespoints lw 2 pt 7 "
                      f"title '{sy}'")
    if not series:
        return None
    png = os.path.join(out_dir, f"{name}.png")
    script = os.path.join(plot_dir, f"{name}.gp")
    with open(script, "w") as f:
        f.write(f"""set terminal pngcairo noenhanced size 960,640 font ',11'
set output '{png}'
set title '{name}: {result['n']} x {result['dim']}, recall@{result['k']} vs \
QPS (1 thread, one query at a time)'
set xlabel 'recall@{result['k']}'
set ylabel 'queries per second'
set logscale y
set grid
set key bottom left
plot {', '.join(series)}
""")
    subprocess.run(["gnuplot", script], check=True)
    return png


def print_scale(sc):
    print(f"\n== scale: {sc['n']} x {sc['dim']} generated clustered, "
          f"{sc['queries']} queries, k={sc['k']}, 1 thread")
    print(f"segment {sc['segment_bytes'] / 2**20:.0f} MiB, index "
          f"{sc['index_bytes'] / 2**20:.0f} MiB; build "
          f"{sc['build_s']:.1f} s on {sc['build_threads']} threads, peak "
          f"RSS {sc['build_rss_kib'] / 1024:.0f} MiB")
    print(f"{'regime':12} {'L':>5} {'recall':>8} {'QPS':>9} {'mean us':>9} "
          f"{'p99 us':>9} {'reads/q':>8} {'peak RSS':>9}")
    for reg in sc["regimes"]:
        if "error" in reg:
            print(f"{reg['name']:12} FAILED: {reg['error']}")
            continue
        rss = f"{reg['rss_kib'] / 1024:.0f} MiB"
        for p in reg["points"]:
            print(f"{reg['name']:12} {p['L']:>5} {p['recall']:>8.4f} "
                  f"{p['qps']:>9.1f} {p['mean_us']:>9.1f} "
                  f"{p['p99_us']:>9.1f} {p['reads_per_query']:>8.1f} "
                  f"{rss:>9}")
