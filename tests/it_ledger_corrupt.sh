#!/usr/bin/env bash
# labels: crash
# it_ledger_corrupt.sh — a ledger.sqlite tessera cannot trust is refused at start by every
# command that opens it (run, status, report), with a stable token, the path and what to do,
# exit code 2, and never rebuilt: the run directory is byte-identical afterwards (SQLite may
# add an empty -wal and a -shm beside a ledger it opened read-only; nothing else). Each way:
# other bytes, an empty file, cut short (truncate -s), a b-tree page header overwritten in
# the middle of the file, a newer schema (PRAGMA user_version), a SQLite file that is not a
# ledger. And the opposite: a run killed by kill -9 leaves -wal/-shm, which is not damage: it
# resumes normally.
. "$(dirname "$0")/lib.sh"
cd "$WORK"
q() { $PY -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print('\n'.join('|'.join(map(str,r)) for r in c.execute(sys.argv[2]))); c.commit(); c.close()" "$@"; }
snap() { (cd "$1" && find . -type f ! -name 'ledger.sqlite-wal' ! -name 'ledger.sqlite-shm' | LC_ALL=C sort | xargs -r sha256sum); }

expect_rc 0 "$TESSERA" synth c --slides 4 --size 2000 --seed 1 --quiet
sets=(--set run.dir="$WORK/run" --quiet)
expect_rc 0 "$TESSERA" run c/config.yaml --stages tissue "${sets[@]}"
check "the reference run made its ledger" test -s run/ledger.sqlite
check "a new ledger records its schema (user_version 2)" test "$(q run/ledger.sqlite 'PRAGMA user_version')" = 2
check "a finished run leaves no -wal" test ! -e run/ledger.sqlite-wal
size=$(stat -c %s run/ledger.sqlite)
root=$(q run/ledger.sqlite "select rootpage from sqlite_master where name='units'")
psize=$(q run/ledger.sqlite 'PRAGMA page_size')

# Each case: the reference run directory restored from a copy (its config.yaml names run.dir,
# so the damaged ledger is tried in place), its ledger damaged one way, then refused.
cp -a run pristine
fresh() { rm -rf run && cp -a pristine run; }
# refused TOKEN WHAT [report]: run, status (and report, for one case of each token: each
# tessera start costs ~0.8 s, the test stays under 30 s) exit 2 with TOKEN and the ledger's
# path first on a line, say what to do, and leave every file of the run directory as it was
refused() {
  local token=$1 what=$2 also=${3:-} before
  before=$(snap run)
  local todo="restore ledger.sqlite from a copy"
  [ "$token" = LEDGER_TOO_NEW ] && todo="use the newer tessera"
  expect_rc 2 "$TESSERA" run c/config.yaml --stages tissue "${sets[@]}"
  check "$what: run says $token with the path and what to do" grep -q "^$token: $WORK/run/ledger.sqlite .*$todo" "$WORK/out"
  cp "$WORK/out" "$WORK/run.out"
  expect_rc 2 "$TESSERA" status run
  check "$what: status says $token" grep -q "^$token: run/ledger.sqlite .*$todo" "$WORK/out"
  if [ "$also" = report ]; then
    expect_rc 2 "$TESSERA" report run --quiet
    check "$what: report says $token" grep -q "^$token: run/ledger.sqlite .*$todo" "$WORK/out"
  fi
  check "$what: every file byte-identical" test "$before" = "$(snap run)"
  check "$what: a -wal SQLite added is empty" test ! -s run/ledger.sqlite-wal
}

fresh && head -c "$size" /dev/urandom >run/ledger.sqlite
refused LEDGER_NOT_A_LEDGER "other bytes" report
fresh && : >run/ledger.sqlite
refused LEDGER_NOT_A_LEDGER "an empty file"
fresh && truncate -s 10 run/ledger.sqlite
refused LEDGER_CORRUPT "cut to 10 bytes"
fresh && truncate -s $((size / 2)) run/ledger.sqlite
refused LEDGER_CORRUPT "cut to half ($((size / 2)) of $size bytes)"
# the units table's root page, in the middle of the file: its b-tree page header (type,
# first freeblock, cell count, content start) overwritten
check "the units root page lies inside the file, not first" test "$root" -gt 1 -a $((root * psize)) -le "$size"
fresh && printf '\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f' | dd of=run/ledger.sqlite bs=1 seek=$(((root - 1) * psize)) conv=notrunc status=none
refused LEDGER_CORRUPT "b-tree page $root overwritten" report
check "page: the report's quick_check found it" grep -q 'PRAGMA quick_check: .*Page' "$WORK/out"
check "page: the run's integrity_check found it" grep -q 'PRAGMA integrity_check: .*Page' "$WORK/run.out"
fresh && q run/ledger.sqlite 'PRAGMA user_version = 3' >/dev/null
refused LEDGER_TOO_NEW "schema 3" report
check "newer: the message names both schemas" grep -q 'schema 3, this tessera .* knows schemas up to 2' "$WORK/out"
fresh && rm run/ledger.sqlite && q run/ledger.sqlite 'create table notes(x)' >/dev/null
refused LEDGER_NOT_A_LEDGER "a SQLite file without the ledger's tables"

# a leftover WAL is not damage: kill -9 a run once units are recorded, then status and resume
"$TESSERA" run c/config.yaml --stages tissue,tile --set run.dir="$WORK/killed" --quiet >"$WORK/killed.log" 2>&1 &
pid=$!
for _ in $(seq 1 400); do
  n=$(q "file:killed/ledger.sqlite?mode=ro" "select count(*) from units where state='done'" 2>/dev/null || echo 0)
  [ "${n:-0}" -ge 1 ] && [ -s killed/ledger.sqlite-wal ] && break
  sleep 0.02
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
check "kill -9 left a -wal and a -shm" test -s killed/ledger.sqlite-wal -a -e killed/ledger.sqlite-shm
set +e; "$TESSERA" status killed >"$WORK/out" 2>&1; rc=$?; set -e
check "status on a killed run: read (exit $rc), no LEDGER_ token" test "$rc" -le 1 -a -z "$(grep LEDGER_ "$WORK/out")"
expect_rc 0 "$TESSERA" run c/config.yaml --stages tissue,tile --set run.dir="$WORK/killed" --quiet
check "resumed: 4 tissue and 4 tile units done" test "$(q killed/ledger.sqlite "select count(*) from units where state='done' and stage in ('tissue','tile')")" = 8
finish
