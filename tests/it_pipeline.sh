#!/usr/bin/env bash
# labels: mpi pipeline
# Synthetic cohort → mpirun -np 2 tessera run → tiles read back with h5py, tissue IoU against
# the generator's truth; rerun does nothing; a changed tile size reruns the tile stage only.
. "$(dirname "$0")/lib.sh"
cd "$WORK"
expect_rc 0 "$TESSERA" synth cohort --slides 3 --size 6144 --seed 11 --quiet
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml
q() { $PY -c "import sqlite3,sys; print('\n'.join('|'.join(map(str,r)) for r in sqlite3.connect(sys.argv[1]).execute(sys.argv[2])))" cohort/run/ledger.sqlite "$1"; }
check "both ranks did units" test "$(q "select count(distinct rank) from units where state='done'")" = 2
expect_rc 0 $PY "$TS_SOURCE_DIR/tests/check_synth_run.py" cohort cohort/run
cat "$WORK/out"

before=$(q "select stage, unit, run_id, checksum from units where stage<>'report' order by stage, unit")
sum_tissue=$(cat cohort/run/tissue/*.h5 | sha256sum)
sum_tiles=$(cat cohort/run/tiles/*.h5 | sha256sum)

expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml
check "rerun says there is nothing to do" grep -q 'tile: all 3 slides already done' "$WORK/out"
check "rerun changed no unit" test "$before" = "$(q "select stage, unit, run_id, checksum from units where stage<>'report' order by stage, unit")"
check "rerun left outputs alone" test "$sum_tiles" = "$(cat cohort/run/tiles/*.h5 | sha256sum)"

expect_rc 2 "$TESSERA" run cohort/config.yaml --set tile.size=128
check "a changed config needs --reconfigure" grep -q 'RUN_CONFIG_CHANGED' "$WORK/out"
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml --set tile.size=128 --reconfigure
check "tissue stage not rerun" grep -q 'tissue: all 3 slides already done' "$WORK/out"
check "tile stage rerun" grep -q 'tile: settings changed' "$WORK/out"
check "tissue outputs untouched" test "$sum_tissue" = "$(cat cohort/run/tissue/*.h5 | sha256sum)"
last=$(q "select max(id) from runs")
check "every tile unit redone in the last run" test "$(q "select count(*) from units where stage='tile' and run_id=$last and state='done'")" = 3
check "no tissue unit redone in the last run" test "$(q "select count(*) from units where stage='tissue' and run_id=$last")" = 0
$PY -c "import h5py,glob,sys; sys.exit(0 if all(h5py.File(p,'r')['coords'].attrs['patch_size_level0']==256 for p in glob.glob('cohort/run/tiles/*.h5')) else 1)" \
  && pass "new tiles are 128 px at 0.5 um/px = 256 level-0 px" || fail "new tile size"
check "no temporary file left" test -z "$(find cohort/run -name '*.tmp.*')"
# a run directory whose job has not started (what `tessera submit` leaves): not "all done"
mkdir -p submitted && sqlite3 submitted/ledger.sqlite < "$TS_SOURCE_DIR/schemas/ledger.sql"
expect_rc 1 "$TESSERA" status submitted
check "status on a run no stage has reached says so" grep -q "no stage has run yet" "$WORK/out"
finish
