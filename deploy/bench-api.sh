#!/usr/bin/env bash
# The local API's figures (issue 4): ingest vectors/s and search QPS and
# latency through the agent's Unix socket with 1 and 8 clients, beside the
# same search in-process (es_engine_search in the bench's own process), so
# the ratio is the socket's overhead. Printed, never asserted.
#
#   bash deploy/bench-api.sh        # about 1 minute on 2 cores, built
#
# Builds release in build/release, starts an agent on a temporary data
# directory and socket, runs `edgesync bench ingest` (fresh collection per
# run), imports ../shared/data/sift5k (or generated 128-d vectors when it
# is absent), flushes, waits for the index, runs `edgesync bench search`
# (socket and in-process), prints one table and stops the agent (SIGTERM).
#
# Environment: BENCH_API_BUILD=DIR builds there instead of build/release;
# BENCH_EDGESYNC=PATH measures that binary without building;
# BENCH_API_VECTORS (200000), BENCH_API_CLIENTS (1,8), BENCH_API_SECONDS
# (3, per search run), BENCH_API_KEEP=1 keeps the temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${BENCH_API_BUILD:-build/release}
vectors=${BENCH_API_VECTORS:-200000}
clients=${BENCH_API_CLIENTS:-1,8}
seconds=${BENCH_API_SECONDS:-3}
data=$root/../shared/data
for a in "$@"; do
	case $a in
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*) echo "bench-api: no options (see --help)" >&2 && exit 64 ;;
	esac
done

# ---- build ------------------------------------------------------------------
es=${BENCH_EDGESYNC:-$root/$build/agent/edgesync}
if [ -z "${BENCH_EDGESYNC:-}" ]; then
	bash deploy/setup.sh # what edgesync needs to build, if missing
	echo "bench-api: building release in $build"
	mkdir -p "$build"
	if ! { cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release &&
		cmake --build "$build" -j"$(nproc)" --target edgesync; } \
		>"$build/bench-api-build.log" 2>&1; then
		tail -n 30 "$build/bench-api-build.log"
		echo "bench-api: the build failed (all of it in" \
			"$build/bench-api-build.log)" >&2
		exit 1
	fi
fi

# ---- the agent --------------------------------------------------------------
tmp=$(mktemp -d /tmp/edgesync-bench-api.XXXXXX)
sock=$tmp/agent.sock
agent=""
cleanup() {
	if [ -n "$agent" ] && kill -0 "$agent" 2>/dev/null; then
		kill -TERM "$agent"
		wait "$agent" || true
	fi
	if [ "${BENCH_API_KEEP:-0}" = 1 ]; then
		echo "bench-api: kept $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT

# The seal threshold is above what one ingest run inserts, so no seal or
# index build competes with the figure; the rest are the agent's defaults.
"$es" agent --data-dir "$tmp/data" --socket "$sock" \
	--seal-threshold $((vectors + 1)) 2>"$tmp/agent.log" &
agent=$!
# A whole request, not a bare connect: nng 1.5.2 stops accepting on a
# listener whose peer hangs up during the handshake (see daemon.c).
for _ in $(seq 100); do
	"$es" status -s "$sock" >/dev/null 2>&1 && break
	kill -0 "$agent" 2>/dev/null || break
	sleep 0.1
done
if ! "$es" status -s "$sock" >/dev/null 2>&1; then
	cat "$tmp/agent.log" >&2
	echo "bench-api: the agent did not start" >&2
	exit 1
fi

# ---- ingest -----------------------------------------------------------------
echo "bench-api: ingest, $vectors vectors per run, clients $clients"
"$es" bench ingest -s "$sock" --clients "$clients" --vectors "$vectors" \
	--dim 128 --batch 1000 --json >"$tmp/ingest.json"

# ---- search -----------------------------------------------------------------
if [ -f "$data/sift5k_base.fvecs" ]; then
	set_name=sift5k
	base=$data/sift5k_base.fvecs
	queries=$data/sift5k_query.fvecs
	truth=(--truth "$data/sift5k_groundtruth.ivecs")
else
	set_name="generated 5000 x 128"
	base=$tmp/base.fvecs
	queries=$tmp/query.fvecs
	truth=()
	python3 - "$base" "$queries" <<'EOF'
import random, struct, sys
rng = random.Random(42)
for path, n in ((sys.argv[1], 5000), (sys.argv[2], 100)):
    with open(path, "wb") as f:
        for _ in range(n):
            f.write(struct.pack("<i128f", 128,
                                *(rng.random() for _ in range(128))))
EOF
fi
echo "bench-api: search on $set_name: import, flush, index"
"$es" collection create bench -s "$sock" --dim 128 --metric l2 --sync none \
	>/dev/null
"$es" import bench "$base" -s "$sock" >/dev/null
"$es" flush bench -s "$sock" >/dev/null
for _ in $(seq 1200); do
	segs=$("$es" segments bench -s "$sock" --json)
	case $segs in
	*'"indexed":false'*) ;;
	*'"indexed":true'*) break ;;
	esac
	sleep 0.1
done
case $segs in
*'"indexed":false'* | *'"segments":[]'*)
	echo "bench-api: the index was not built in 2 minutes" >&2
	exit 1
	;;
esac
echo "bench-api: search, clients $clients, $seconds s per run, then in-process"
"$es" bench search -s "$sock" --collection bench --queries "$queries" \
	"${truth[@]}" --inproc "$tmp/inproc" --base "$base" \
	--clients "$clients" --k 10 --L 64 --seconds "$seconds" \
	--json >"$tmp/search.json"

kill -TERM "$agent"
wait "$agent" && status=0 || status=$?
agent=""
[ "$status" = 0 ] || echo "bench-api: the agent exited $status" >&2

# ---- the table --------------------------------------------------------------
python3 - "$tmp/ingest.json" "$tmp/search.json" "$set_name" "$(nproc)" <<'EOF'
import json, sys
ing = json.load(open(sys.argv[1]))
srch = json.load(open(sys.argv[2]))
name, cores = sys.argv[3], sys.argv[4]
rows = []
for r in ing["runs"]:
    rows.append(("ingest vectors/s (socket)", r["clients"],
                 f'{r["vectors_per_s"]:,.0f}', f'{r["batch_p50_ms"]:.2f} ms',
                 f'{r["batch_p99_ms"]:.2f} ms', f'{r["mb_per_s"]:.0f} MB/s'))
qps = {}
for r in srch["runs"]:
    qps[(r["path"], r["clients"])] = r["qps"]
    rec = f'recall@{srch["k"]} {r["recall"]:.3f}' if "recall" in r else ""
    rows.append((f'search QPS ({r["path"]})', r["clients"],
                 f'{r["qps"]:,.0f}', f'{r["p50_us"]:.0f} us',
                 f'{r["p99_us"]:.0f} us', rec))
for (path, c), v in sorted(qps.items()):
    if path == "socket" and ("in-process", c) in qps:
        rows.append(("socket overhead (in-proc/socket QPS)", c,
                     f'{qps[("in-process", c)] / v:.2f}x', "", "", ""))
print(f'\nedgesync local API, release, {cores} cores. Ingest: '
      f'{ing["vectors"]:,} x {ing["dim"]}-d per run, batches of '
      f'{ing["batch"]}, each acked durably (p50/p99: one batch).\n'
      f'Search: {name}, {srch["queries"]} queries, k {srch["k"]}, '
      f'L {srch["L"]}, {srch["seconds"]:g} s per run (p50/p99: one query); '
      f'same ids on both paths: {srch.get("same_ids", "-")}/'
      f'{srch["queries"]}.\n')
head = ("figure", "clients", "value", "p50", "p99", "")
w = [max(len(str(r[i])) for r in rows + [head]) for i in range(6)]
fmt = (f'{{:<{w[0]}}}  {{:>{w[1]}}}  {{:>{w[2]}}}  {{:>{w[3]}}}  '
       f'{{:>{w[4]}}}  {{}}')
print(fmt.format(*head).rstrip())
for r in rows:
    print(fmt.format(*r).rstrip())
EOF
