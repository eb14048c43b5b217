#!/usr/bin/env bash
# labels: pipeline cli
# The run driver's bugs of issue 10 §3-4, one check each: a clean CONFIG_MISSING_FILE line; a
# wrong cohort (path or column) stops before the run directory is made (and the fixed rerun
# works); two runs at once on a new directory: the loser gets RUN_LOCKED; config errors of the
# stages' check() stop before anything runs; RUN_CONFIG_CHANGED names the keys; `tessera run`
# alone prints the short usage; --until / --stages select stages.
. "$(dirname "$0")/lib.sh"
cd "$WORK"
# q DB SQL: the rows, or "?" when the ledger or the table is not there (never stops the script)
q() { $PY -c "import sqlite3,sys; print('\n'.join('|'.join(map(str,r)) for r in sqlite3.connect(sys.argv[1]).execute(sys.argv[2])))" "$1" "$2" 2>/dev/null || echo "?"; }
FAST=(--set extract.encoder=resnet_tiny --quiet)

# ---- a. a missing config file: one clean line naming it ----
expect_rc 2 "$TESSERA" run missing.yaml
check "missing config: exactly one line" test "$(wc -l <"$WORK/out")" -eq 1
check "missing config: the line is CONFIG_MISSING_FILE naming missing.yaml, not garbled" \
  grep -qE '^CONFIG_MISSING_FILE: missing\.yaml: cannot read the config file \(cannot open missing\.yaml: No such file or directory\)$' "$WORK/out"
check "missing config: the token appears once" test "$(grep -o 'MISSING_FILE' "$WORK/out" | wc -l)" -eq 1

# ---- j. usage ----
expect_rc 2 "$TESSERA" run
check "run without arguments: short usage" grep -q '^usage: tessera run CONFIG.yaml' "$WORK/out"
check "run without arguments: no config-key table" bash -c "! grep -qE '^ +key +type +default +range +doc' '$WORK/out'"
check "run without arguments: at most 8 lines" test "$(wc -l <"$WORK/out")" -le 8
check "run without arguments: points to --help" grep -q -- '--help' "$WORK/out"
expect_rc 0 "$TESSERA" run --help
check "run --help: the key table" grep -qE '^ +key +type +default +range +doc$' "$WORK/out"
check "run --help: ranges (tile.overlap [0, 4096])" grep -qE '^ +overlap +integer +0 +\[0, 4096\]' "$WORK/out"
check "run --help: --stages and --until" grep -q -- '--until STAGE' "$WORK/out"

"$TESSERA" synth c --slides 3 --size 4000 --seed 3 --quiet >/dev/null
cp c/cohort.csv good.csv

# ---- b. a wrong cohort.csv path: exit 2, no run directory; the fixed rerun succeeds ----
sed 's#^  csv: .*#  csv: nothere.csv#' c/config.yaml >c/wrong.yaml
expect_rc 2 "$TESSERA" run c/wrong.yaml "${FAST[@]}"
check "wrong cohort path: COHORT_MISSING_FILE naming it" grep -q 'COHORT_MISSING_FILE: .*nothere.csv' "$WORK/out"
check "wrong cohort path: one line" test "$(wc -l <"$WORK/out")" -eq 1
check "wrong cohort path: no run directory made" test ! -e c/run
expect_rc 0 "$TESSERA" run c/config.yaml "${FAST[@]}"
check "fixed cohort path: the rerun is not refused (RUN_DIR_NOT_EMPTY)" bash -c "! grep -q RUN_DIR_NOT_EMPTY '$WORK/out'"
check "fixed cohort path: every tile unit done" test "$(q c/run/ledger.sqlite "select count(*) from units where stage='tile' and state='done'")" = 3

# a cohort CSV missing a column: same (a run directory of its own)
cut -d, -f1,3- good.csv >c/nopatient.csv
sed -e 's#^  csv: .*#  csv: nopatient.csv#' -e 's#^  dir: .*#  dir: run_nocol#' c/config.yaml >c/nocol.yaml
expect_rc 2 "$TESSERA" run c/nocol.yaml "${FAST[@]}"
check "cohort without patient_id: COHORT_MISSING_COLUMN" grep -q "COHORT_MISSING_COLUMN: .*nopatient.csv:1: no 'patient_id'" "$WORK/out"
check "cohort without patient_id: no run directory (nor .lock, config.yaml)" \
  test ! -e c/run_nocol -a ! -e c/run_nocol/.lock -a ! -e c/run_nocol/config.yaml
cp good.csv c/nopatient.csv
expect_rc 0 "$TESSERA" run c/nocol.yaml "${FAST[@]}"
check "fixed cohort columns: the rerun is not refused" bash -c "! grep -q RUN_DIR_NOT_EMPTY '$WORK/out'"
rm -rf c/run_nocol

# a wrong cohort on an existing run: exit 2, the run directory and its ledger untouched
runs0=$(q c/run/ledger.sqlite "select count(*) from runs")
expect_rc 2 "$TESSERA" run c/wrong.yaml "${FAST[@]}"
check "wrong cohort on an existing run: no new run in the ledger" test "$(q c/run/ledger.sqlite "select count(*) from runs")" = "$runs0"
check "wrong cohort on an existing run: its config.yaml stays" test -s c/run/config.yaml

# ---- f. config errors of the stages' check(): exit 2, CONFIG_* naming the key, nothing made ----
expect_rc 0 "$TESSERA" run c/config.yaml "${FAST[@]}" --set run.dir=base
i=0
for kv in extract.mean=1,2 extract.std=0,0,0 tile.overlap=300; do
  key=${kv%%=*}
  i=$((i + 1))
  expect_rc 2 "$TESSERA" run c/config.yaml "${FAST[@]}" --set run.dir=new$i --set "$kv"
  check "--set $kv: a CONFIG_ token naming $key" grep -qE "^CONFIG_[A-Z_]+: .*$key" "$WORK/out"
  check "--set $kv: no run directory made" test ! -e c/new$i
  # on an existing run: the same error (not RUN_CONFIG_CHANGED), no unit run, ledger unchanged
  before=$(q c/base/ledger.sqlite "select (select count(*) from runs) || ',' || (select count(*) from events) || ',' || (select group_concat(stage || unit || state || coalesce(run_id,''), ';') from units)")
  expect_rc 2 "$TESSERA" run c/config.yaml "${FAST[@]}" --set run.dir=base --set "$kv"
  check "--set $kv on an existing run: CONFIG_ token naming $key" grep -qE "^CONFIG_[A-Z_]+: .*$key" "$WORK/out"
  check "--set $kv on an existing run: not RUN_CONFIG_CHANGED" bash -c "! grep -q RUN_CONFIG_CHANGED '$WORK/out'"
  after=$(q c/base/ledger.sqlite "select (select count(*) from runs) || ',' || (select count(*) from events) || ',' || (select group_concat(stage || unit || state || coalesce(run_id,''), ';') from units)")
  check "--set $kv on an existing run: ledger unchanged (runs, events, units)" test "$before" = "$after"
done

# ---- h. RUN_CONFIG_CHANGED names the keys that changed ----
expect_rc 2 "$TESSERA" run c/config.yaml "${FAST[@]}" --set run.dir=base --set tile.size=224
check "RUN_CONFIG_CHANGED" grep -q '^RUN_CONFIG_CHANGED: ' "$WORK/out"
check "RUN_CONFIG_CHANGED names tile.size" grep -q 'RUN_CONFIG_CHANGED: .*tile\.size' "$WORK/out"
check "RUN_CONFIG_CHANGED does not name an unchanged key (tile.mpp)" bash -c "! grep -q 'tile\.mpp' '$WORK/out'"
expect_rc 2 "$TESSERA" run c/config.yaml "${FAST[@]}" --set run.dir=base --set tile.size=224 --set tissue.median=5
check "RUN_CONFIG_CHANGED names both changed keys" grep -q 'RUN_CONFIG_CHANGED: .*tissue\.median.*tile\.size\|RUN_CONFIG_CHANGED: .*tile\.size.*tissue\.median' "$WORK/out"

# ---- k. --until / --stages ----
expect_rc 0 "$TESSERA" run c/config.yaml --set extract.encoder=resnet_tiny --set run.dir=part --until tile
check "--until tile: extract not selected (said so)" grep -q '^extract: not selected' "$WORK/out"
check "--until tile: tissue and tile done" \
  test "$(q c/part/ledger.sqlite "select count(*) from units where stage in ('tissue','tile') and state='done'")" = 6
check "--until tile: no extract unit done" \
  test "$(q c/part/ledger.sqlite "select count(*) from units where stage='extract' and state='done'")" = 0
check "--until tile: no features written" test ! -e c/part/features
tile_events=$(q c/part/ledger.sqlite "select count(*) from events where stage in ('tissue','tile')")
expect_rc 0 "$TESSERA" run c/config.yaml --set extract.encoder=resnet_tiny --set run.dir=part --stages extract
check "--stages extract: tissue, tile not selected" grep -q '^tissue: not selected' "$WORK/out"
check "--stages extract: every slide's extract done" \
  test "$(q c/part/ledger.sqlite "select count(*) from units where stage='extract' and state='done' and instr(unit,'#')=0")" = 3
check "--stages extract: tissue and tile not redone" \
  test "$(q c/part/ledger.sqlite "select count(*) from events where stage in ('tissue','tile')")" = "$tile_events"
check "--stages extract: features of the non-blank slides" test "$(ls c/part/features/resnet_tiny/*.h5 | wc -l)" -ge 2
expect_rc 2 "$TESSERA" run c/config.yaml --set extract.encoder=resnet_tiny --set run.dir=part --stages nosuch
check "--stages nosuch: RUN_BAD_STAGE naming the stages" grep -q "^RUN_BAD_STAGE: .*nosuch.*tissue, tile, extract" "$WORK/out"
expect_rc 2 "$TESSERA" run c/config.yaml --set extract.encoder=resnet_tiny --set run.dir=nope --until nosuch
check "--until nosuch: RUN_BAD_STAGE" grep -q "^RUN_BAD_STAGE: .*nosuch" "$WORK/out"
check "--until nosuch: no run directory made" test ! -e c/nope

# ---- c. two runs started at once on a new directory: the loser gets RUN_LOCKED ----
# Each repetition starts two runs at once and three more a few milliseconds apart: the old
# driver checked emptiness before taking the lock, so a run arriving after the winner had
# made the directory and its lock, but before its ledger, got RUN_DIR_NOT_EMPTY. A large
# cohort CSV (an extra 20 MB column, as a cohort of many slides is large) widens that window:
# the old driver read the cohort between the two; the new one reads it before the directory.
"$TESSERA" synth one --slides 1 --size 1500 --seed 5 --quiet >/dev/null
$PY - one/cohort.csv one/big.csv <<'PY'
import sys
rows = [l.rstrip("\n") for l in open(sys.argv[1])]
with open(sys.argv[2], "w") as f:
    f.write(rows[0] + ",note\n")
    for r in rows[1:]:
        f.write(r + "," + "x" * 20_000_000 + "\n")
PY
sed 's#^  csv: .*#  csv: big.csv#' one/config.yaml >one/big.yaml
reps=${TS_RACE_REPS:-8}
delays=(0 0 0.02 0.05 0.1)
bad=0 locked=0
for r in $(seq 1 "$reps"); do
  pids=()
  for k in "${!delays[@]}"; do
    (sleep "${delays[$k]}"; exec "$TESSERA" run one/big.yaml --set extract.encoder=resnet_tiny --set run.dir=race$r --quiet >race$r.$k 2>&1) &
    pids+=($!)
  done
  for k in "${!delays[@]}"; do
    set +e; wait "${pids[$k]}"; rc=$?; set -e
    if grep -q RUN_DIR_NOT_EMPTY race$r.$k; then bad=$((bad + 1)); echo "    rep $r (run $k): $(head -1 race$r.$k)"
    elif [ "$rc" = 2 ]; then
      if grep -q '^RUN_LOCKED: ' race$r.$k; then locked=$((locked + 1)); else bad=$((bad + 1)); echo "    rep $r (run $k) exit 2: $(head -1 race$r.$k)"; fi
    elif [ "$rc" != 0 ]; then bad=$((bad + 1)); echo "    rep $r (run $k) exit $rc: $(tail -1 race$r.$k)"; fi
  done
  # whoever won, the directory holds a finished run
  [ "$(q one/race$r/ledger.sqlite "select count(*) from units where stage='tile' and state='done'")" = 1 ] ||
    { bad=$((bad + 1)); echo "    rep $r: no finished run in race$r"; }
  rm -rf one/race$r race$r.*
done
echo "    $reps repetitions of ${#delays[@]} runs: $locked lost with RUN_LOCKED"
check "runs at once on a new directory: never RUN_DIR_NOT_EMPTY, an exit 2 is always RUN_LOCKED ($bad bad)" test "$bad" = 0
check "runs at once: the losers did lose (RUN_LOCKED seen)" test "$locked" -gt 0
finish
