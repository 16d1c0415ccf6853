#!/usr/bin/env bash
# Sync under random SIGKILLs: a real edge and a real cloud agent (plain tcp
# with a token, through tests/tools/fault_proxy, which only passes bytes
# here), small segments in small chunks moving both ways (the edge uploads
# a segment every round; the cloud publishes one every third round and the
# edge downloads it). Each round, a seeded RNG picks the victim (edge or
# cloud) and the moment: half the time in the middle of a transfer (the
# proxy freezes the next chunk going up, or the next fetch reply coming
# down, in its middle, and the victim dies while it hangs there), else
# after a random delay from the start of the round (anywhere: staging,
# verifying, installing, idle); the victim gets SIGKILL and is started
# again at once (readiness: it answers `edgesync status`).
# At the end, with both up: identical manifests on both sides (segment
# ids, checksums, counts) and no loss: every segment the edge sealed (its
# inserts were acknowledged) is on the cloud, every segment the cloud
# published is on the edge, with every vector (counted) and sampled
# vectors bit for bit; no orphan segment file, no staged leftovers.
# ES_SYNC_KILLS sets the number of kills (default 100); the seed is
# printed, ES_TEST_SEED=N replays the choices. KEEP=1 keeps the directory.
# usage: sync_kills.sh EDGESYNC_BINARY FAULT_PROXY_BINARY SOURCE_DIR
es=$1
proxy=$2
src=$3
. "$src/tests/agent/sync_lib.sh"

seed=${ES_TEST_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "sync_kills: seed $seed (ES_TEST_SEED=$seed to replay)"
RANDOM=$((seed % 32768))
KILLS=${ES_SYNC_KILLS:-100}
# 2048 vectors of 32 floats: 256 KiB segments in 16 KiB chunks (a window
# sends them as requests of 1 KiB or more: the proxy freezes those)
SYNC=(--token "$TOKEN" --chunk-size 16K)
EDGE=(--sync-interval 200 --backoff-max 500)
N=2048
DIM=32

n_pub=$(((KILLS + 2) / 3 + 1))
check gen_many "$dir/up" "$seed" $((KILLS + 1)) $N $DIM
check gen_many "$dir/pub" $((seed + 100000)) $n_pub $N $DIM
: >"$dir/up.layout"
: >"$dir/pub.layout"

port=$(free_port)
$proxy --target "127.0.0.1:$port" --port-file "$dir/proxy.port" \
	--stats "$dir/proxy.json" --log "$dir/proxy.log" --seed "$seed" \
	--big 1024 --freeze-ms 10000 2>>"$dir/proxy.log" &
proxy_pid=$!
EXTRA_PIDS+=("$proxy_pid")
wait_for "the proxy's port" test -s "$dir/proxy.port"
pport=$(cat "$dir/proxy.port")
start_c() { start c --role cloud --listen "tcp://127.0.0.1:$port" "${SYNC[@]}"; }
start_e() { start e --role edge --peer "tcp://127.0.0.1:$pport" "${SYNC[@]}" "${EDGE[@]}"; }
start_c
start_e
e_id=$(device_of e)
c_id=$(device_of c)
must e collection create up --dim $DIM
must c collection create pub --dim $DIM --publish

ups=0
pubs=0
# add_up: a segment on the edge; recorded once the flush is acknowledged
add_up() {
	local f="$dir/up-$ups.fvecs" first=$((ups * 10000))
	if cli e import up "$f" --first-id $first --batch $N &&
		cli e flush up; then
		echo "$first $f" >>"$dir/up.layout"
		ups=$((ups + 1))
	else
		bad "edge: import or flush failed: $(cat "$dir/err")"
	fi
}
add_pub() {
	local f="$dir/pub-$pubs.fvecs" first=$((pubs * 10000))
	if cli c import pub "$f" --first-id $first --batch $N &&
		cli c flush pub; then
		echo "$first $f" >>"$dir/pub.layout"
		pubs=$((pubs + 1))
	else
		bad "cloud: import or flush failed: $(cat "$dir/err")"
	fi
}
# nap MS: a short wait without a process (read on a FIFO nobody writes)
mkfifo "$dir/nap"
exec 9<>"$dir/nap"
nap() { read -r -t "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))" -u 9; }
# freezes: how many transfers the proxy has frozen, into $frozen (no
# process: read and match)
frozen=0
freezes() {
	local line t=0
	read -r line <"$dir/proxy.json" || return 1
	while [[ $line =~ \"freeze\":([0-9]+)(.*) ]]; do
		t=$((t + BASH_REMATCH[1]))
		line=${BASH_REMATCH[2]}
	done
	frozen=$t
}

held=(0 0)
kills=(0 0)
for ((k = 0; k < KILLS; k++)); do
	add_up
	[ $((k % 3)) = 0 ] && add_pub
	victim=$((RANDOM % 2))
	if [ $((RANDOM % 2)) = 0 ]; then
		# in the middle of a chunk: going down if a segment was just
		# published and the RNG says so, else going up (the upload
		# comes first in a round)
		d=0
		[ $((k % 3)) = 0 ] && d=$((RANDOM % 2))
		freezes
		before=$frozen
		if [ $d = 0 ]; then sig=RTMIN; else sig=RTMIN+1; fi
		kill -s $sig "$proxy_pid"
		cli e sync-now
		# bounded: if no transfer shows up, kill anyway
		for _ in $(seq 300); do
			freezes
			[ "$frozen" != "$before" ] && break
			nap 5
		done
		[ "$frozen" != "$before" ] && held[$d]=$((held[d] + 1))
	else
		cli e sync-now
		nap $((RANDOM % 301)) # 0 to 300 ms after the round began
	fi
	if [ $victim = 0 ]; then
		crash e
	else
		crash c
	fi
	# the frozen connection goes (a freeze still armed stays armed)
	kill -USR1 "$proxy_pid"
	if [ $victim = 0 ]; then start_e; else start_c; fi
	kills[$victim]=$((kills[victim] + 1))
done
echo "kills: ${kills[0]} edge, ${kills[1]} cloud; ${held[0]} in the middle" \
	"of an upload chunk, ${held[1]} of a download chunk"
echo "segments: $ups uploaded, $pubs published"
[ "${held[0]}" -ge 1 ] && [ "${held[1]}" -ge 1 ] && ok ||
	bad "no kill in the middle of a chunk in one direction"

# ---- the end: everything arrives, both manifests agree -----------------
must e sync-now
uploaded() { agree e c up $ups "$e_id"; }
downloaded() { agree c e pub $pubs "$c_id"; }
wait_for "every uploaded segment on the cloud" uploaded
wait_for "every published segment on the edge" downloaded
if agree e c up $ups; then ok; else bad "up: manifests differ"; fi
if agree c e pub $pubs; then ok; else bad "pub: manifests differ"; fi
for n in e c; do
	if check all_present "${SOCK[$n]}" up "$dir/up.layout" 8; then ok; else
		bad "$n lacks uploaded vectors"; fi
	if check all_present "${SOCK[$n]}" pub "$dir/pub.layout" 8; then ok; else
		bad "$n lacks published vectors"; fi
done
stop e
stop c
kill -TERM "$proxy_pid"
wait "$proxy_pid"
on_disk e $((ups + pubs))
on_disk c $((ups + pubs))
sanitizers_quiet
finish sync_kills
