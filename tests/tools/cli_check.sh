# The checks of the command-line tests (tests/cli/*.sh,
# tests/agent/daemon_cli.sh), sourced after the test has set $dir, its
# scratch directory: each check counts as passed or failed, a failure
# says what and shows the command's output, and cli_check_done ends the
# test with the count and a status.
passed=0
failed=0

ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }
# expect CODE CMD...: the command exits with CODE (its output is kept
# for says)
expect() {
	local want=$1; shift
	"$@" >"$dir/out" 2>"$dir/err"
	local got=$?
	if [ "$got" = "$want" ]; then ok; else
		bad "exit $got, not $want: $*"; cat "$dir/err" "$dir/out"; fi
}
# says PATTERN: the last command's stderr or stdout matches
says() {
	if grep -q -- "$1" "$dir/err" "$dir/out"; then ok; else
		bad "output lacks '$1'"; cat "$dir/err" "$dir/out"; fi
}
# cli_check_done: prints the count; fails if any check failed
cli_check_done() {
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
}
