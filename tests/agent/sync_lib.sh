# Helpers of the sync tests with real agents (sync_cli.sh, sync_faults.sh,
# sync_kills.sh), sourced after setting es (the edgesync binary) and src
# (the source tree); a test may set TEST_TAG (its directory's name),
# AGENT_OPTS (the agents' store options) and WAIT_S before. Agents run with
# their own data directory, socket and log under $dir; every wait polls a
# condition with a bound, nothing asserts on time. check runs
# sync_check.py.
set -u
dir=$(mktemp -d "/tmp/es-test-${TEST_TAG:-faults}-XXXXXX")
[ -n "${AGENT_OPTS+x}" ] ||
	AGENT_OPTS=(--seal-threshold 10000000 --index-r 8 --index-l 16)
declare -A PID SOCK
EXTRA_PIDS=()
cleanup() {
	local p
	for n in "${!PID[@]}"; do
		[ -n "${PID[$n]}" ] && kill -KILL "${PID[$n]}" 2>/dev/null
	done
	for p in "${EXTRA_PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null
	done
	wait 2>/dev/null
	# KEEP=1 keeps the directory (data, logs) to look at
	if [ -n "${KEEP:-}" ]; then echo "kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() {
	failed=$((failed + 1))
	echo "FAIL: $*"
}
TOKEN=sync-test-token-0123456789
PY=/usr/bin/python3
# A bound for AddressSanitizer builds on a busy machine, not a timing
# assertion: the checks after a wait look at state.
WAIT_S=${ES_SYNC_WAIT_S:-${WAIT_S:-150}}

free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
check() { $PY "$src/tests/agent/sync_check.py" "$src" "$@"; }
# ready NAME: the agent answers on its socket (a socket file alone can be
# a dead agent's)
ready() { $es -s "${SOCK[$1]}" status >/dev/null 2>&1; }
# start NAME OPTIONS...: an agent with its own data dir, socket and log;
# returns once it answers
start() {
	local n=$1
	shift
	SOCK[$n]="$dir/run-$n/agent.sock"
	echo "== start $*" >>"$dir/$n.log"
	$es agent --data-dir "$dir/$n" --socket "${SOCK[$n]}" \
		"${AGENT_OPTS[@]}" --build-threads 1 --log-level debug "$@" \
		>>"$dir/$n.log" 2>&1 &
	PID[$n]=$!
	local end=$((SECONDS + WAIT_S))
	while [ $SECONDS -lt $end ]; do
		ready "$n" && return 0
		kill -0 "${PID[$n]}" 2>/dev/null || break
		sleep 0.02
	done
	bad "agent $n did not start"
	tail -n 20 "$dir/$n.log"
	KEEP=${KEEP:-1}
	exit 1
}
stop() { # NAME: SIGTERM, exit 0 (bounded: a hung agent gets SIGKILL)
	local end=$((SECONDS + WAIT_S)) rc
	kill -TERM "${PID[$1]}"
	while kill -0 "${PID[$1]}" 2>/dev/null && [ $SECONDS -lt $end ]; do
		sleep 0.1
	done
	if kill -0 "${PID[$1]}" 2>/dev/null; then
		bad "agent $1 did not stop on SIGTERM"
		kill -KILL "${PID[$1]}"
	fi
	wait "${PID[$1]}"
	rc=$?
	[ "$rc" = 0 ] && ok || bad "agent $1 exited $rc on SIGTERM"
	PID[$1]=
}
crash() { # NAME: SIGKILL
	kill -KILL "${PID[$1]}"
	wait "${PID[$1]}" 2>/dev/null
	PID[$1]=
}
# cli NAME ARGS...: the client against agent NAME, output in $dir/out
cli() {
	local n=$1
	shift
	$es -s "${SOCK[$n]}" "$@" >"$dir/out" 2>"$dir/err"
}
# must NAME ARGS...: cli, and it must succeed
must() {
	if cli "$@"; then ok; else
		bad "failed: $*"
		cat "$dir/err" "$dir/out"
	fi
}
# diagnose: what the agents and the link look like, after a failed wait
diagnose() {
	local n
	for n in "${!SOCK[@]}"; do
		echo "-- $n: peers"
		$es -s "${SOCK[$n]}" --json peers 2>&1 | head -c 2000
		echo
	done
	if [ -n "${proxy_pid:-}" ]; then
		kill -0 "$proxy_pid" 2>/dev/null && echo "-- proxy alive" ||
			echo "-- proxy gone"
		cat "$dir/proxy.json" 2>/dev/null
		tail -n 5 "$dir/proxy.log" 2>/dev/null
	fi
	echo "-- tcp sockets"
	ss -tanp 2>/dev/null | grep -E "edgesync|es_fault_proxy" | head -20
}
# wait_for WHAT CMD...: polls CMD until it succeeds (bounded)
wait_for() {
	local what=$1
	shift
	local end=$((SECONDS + WAIT_S))
	while [ $SECONDS -lt $end ]; do
		if "$@" 2>/dev/null; then
			ok
			return 0
		fi
		sleep 0.2
	done
	bad "gave up waiting for $what"
	diagnose
	return 1
}
device_of() { # NAME
	cli "$1" --json status && check field "$dir/out" device_id
}
# segs NAME COLL FILE: the segments of COLL on NAME, as JSON, into FILE
segs() {
	$es -s "${SOCK[$1]}" --json segments "$2" >"$3" 2>/dev/null
}
# agree A B COLL [N [ORIGIN]]: both hold the same segments (N of them)
agree() {
	segs "$1" "$3" "$dir/a.json" && segs "$2" "$3" "$dir/b.json" &&
		check same_segments "$dir/a.json" "$dir/b.json" "${4:-}" "${5:-}"
}
# peers NAME FILE: `peers --json` of NAME into FILE
peers() {
	$es -s "${SOCK[$1]}" --json peers >"$2" 2>/dev/null
}
# on_disk NAME N: once NAME is stopped, N segment files and no staged
# leftovers (no orphan of an install cut short)
on_disk() {
	local n
	n=$(find "$dir/$1/collections" -name 'seg-*.ndvs' | wc -l)
	[ "$n" = "$2" ] && ok || bad "$1: $n segment files for $2 segments"
	if check staging_empty "$dir/$1/sync-staging"; then ok; else
		bad "$1: staged leftovers"; fi
}
sanitizers_quiet() {
	if grep -h "AddressSanitizer\|runtime error\|LeakSanitizer" \
		"$dir"/*.log; then
		bad "sanitizer reports in the logs"
	else ok; fi
}
finish() { # TEST_NAME
	echo "$1: $passed passed, $failed failed"
	[ "$failed" = 0 ] || KEEP=${KEEP:-1}
	[ "$failed" = 0 ]
}
