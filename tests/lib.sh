# tests/lib.sh — sourced by the integration tests (tests/it_*.sh).
set -euo pipefail
: "${TS_SOURCE_DIR:?run through ctest}" "${TESSERA:?run through ctest}"
. "$TS_SOURCE_DIR/scripts/env.sh"
PY=/usr/bin/python3   # Debian's interpreter, with python3-h5py (the one on PATH may lack it)
TESTDATA="$TS_SOURCE_DIR/tests/data"   # small public fixtures shipped in the repo (tests/data/README.md)
WORK=$(mktemp -d /tmp/ts_it.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
fails=0
pass() { echo "ok   - $*"; }
fail() { echo "FAIL - $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
# expect_rc WANT CMD... : run CMD, keep its output in $WORK/out, compare its exit code
expect_rc() {
  local want=$1; shift
  set +e; "$@" >"$WORK/out" 2>&1; local rc=$?; set -e
  if [ "$rc" = "$want" ]; then pass "exit $want: $*"; else fail "exit $rc (want $want): $*"; sed 's/^/    /' "$WORK/out" | tail -20; fi
}
finish() {
  if [ "$fails" -ne 0 ]; then echo "$fails check(s) failed"; exit 1; fi
  echo "all checks passed"
}
