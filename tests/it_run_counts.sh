#!/usr/bin/env bash
# labels: pipeline mpi shard
# Unit counts agree between `tessera run` and `tessera status` and say slides and shards
# (issue 10 §3-4): a unit "<slide>#<first>-<end>" is a part (shard) of unit <slide>, counted
# apart: "extract: 3 of 3 slides to do (as K shards and 3 merges)", then "all 3 slides already
# done", and status "extract    3 slides done, 0 failed, 0 pending (K shards)".
. "$(dirname "$0")/lib.sh"
cd "$WORK"
# q DB SQL: the rows, or "?" when the ledger or the table is not there (never stops the script)
q() { $PY -c "import sqlite3,sys; print('\n'.join('|'.join(map(str,r)) for r in sqlite3.connect(sys.argv[1]).execute(sys.argv[2])))" "$1" "$2" 2>/dev/null || echo "?"; }

"$TESSERA" synth e --slides 3 --size 4000 --seed 3 --quiet >/dev/null
# small shards (tile.size default): several per slide with tissue
ARGS=(--set extract.encoder=resnet_tiny --set extract.batch=8 --set extract.shard_tiles=8)
expect_rc 0 mpirun -np 2 "$TESSERA" run e/config.yaml "${ARGS[@]}"
cp "$WORK/out" run1.out
L=e/run/ledger.sqlite
K=$(q $L "select count(*) from units where stage='extract' and instr(unit,'#')>0")
echo "    $K shards"
check "more shards than slides (the test means something)" test "$K" -gt 3
check "first run: 'extract: 3 of 3 slides to do (as $K shards and 3 merges)'" \
  grep -qx "extract: 3 of 3 slides to do (as $K shards and 3 merges)" run1.out
check "first run: 'tile: 3 of 3 slides to do'" grep -qx "tile: 3 of 3 slides to do" run1.out
check "first run's summary: extract 3 done (slides, not slides + shards)" grep -qE '^  extract +3 done +0 failed +0 pending' run1.out
expect_rc 0 "$TESSERA" status e/run
cp "$WORK/out" status1.out
check "status: extract 3 slides done ($K shards)" grep -qE "^  extract +3 slides done, 0 failed, 0 pending \($K shards\)" status1.out
check "status: tile 3 slides done" grep -qE "^  tile +3 slides done, 0 failed, 0 pending" status1.out
check "status: tiles counted once (shards' items)" \
  grep -qE "^  extract .*, $(q $L "select sum(items) from units where stage='tile'") tiles$" status1.out
expect_rc 0 "$TESSERA" status e/run --json
$PY - "$WORK/out" "$K" <<'PY' && pass "status --json: extract done 3 slides, parts done $K shards" || fail "status --json counts"
import json, sys
k = int(sys.argv[2])
st = {s["name"]: s for s in json.load(open(sys.argv[1]))["stages"]}
x = st["extract"]
assert (x["done"], x["failed"], x["pending"]) == (3, 0, 0), x
assert x["parts"] == {"done": k, "failed": 0, "pending": 0}, x
assert x["unit_noun"] == "slide" and x["part_noun"] == "shard", x
assert st["tile"]["done"] == 3 and st["tile"]["parts"]["done"] == 0, st["tile"]
PY

expect_rc 0 "$TESSERA" run e/config.yaml "${ARGS[@]}"
cp "$WORK/out" run2.out
check "rerun: 'extract: all 3 slides already done'" grep -qE '^extract: all 3 slides already done' run2.out
check "rerun: 'tile: all 3 slides already done'" grep -qE '^tile: all 3 slides already done' run2.out
check "rerun: no extract unit done again" test "$(q $L "select count(*) from events where stage='extract' and run_id=2")" = 0
expect_rc 0 "$TESSERA" status e/run
check "status after the rerun: the same 3 slides ($K shards)" grep -qE "^  extract +3 slides done, 0 failed, 0 pending \($K shards\)" "$WORK/out"

# a run no stage has reached (a ledger with no stage): as before
mkdir -p fresh
$PY -c "import sqlite3,sys; sqlite3.connect(sys.argv[1]).executescript(open(sys.argv[2]).read())" fresh/ledger.sqlite "$TS_SOURCE_DIR/schemas/ledger.sql"
expect_rc 1 "$TESSERA" status fresh
check "status of a run no stage reached: says so" grep -q "no stage has run yet" "$WORK/out"
finish
