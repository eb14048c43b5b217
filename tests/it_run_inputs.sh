#!/usr/bin/env bash
# labels: pipeline
# Units keyed by their own inputs (issue 10 §3-4): a slide whose cohort row changed (its mpp) is
# redone in tissue, tile and extract, and only it (other slides' files and ledger rows
# untouched); a slide missing from disk fails tissue with SLIDE_MISSING and tile/extract with
# UPSTREAM_FAILED carrying that root cause; a blank slide completes with the SLIDE_NO_TILES
# warning, in the run's output and in `tessera status`.
. "$(dirname "$0")/lib.sh"
cd "$WORK"
# q DB SQL: the rows, or "?" when the ledger or the table is not there (never stops the script)
q() { $PY -c "import sqlite3,sys; print('\n'.join('|'.join(map(str,r)) for r in sqlite3.connect(sys.argv[1]).execute(sys.argv[2])))" "$1" "$2" 2>/dev/null || echo "?"; }
FAST=(--set extract.encoder=resnet_tiny)

# ---- d. a changed cohort row (mpp) redoes exactly that slide ----
# no pixel size in the files: the cohort CSV's mpp column is the only source
"$TESSERA" synth d --slides 3 --size 4000 --seed 3 --no-mpp --quiet >/dev/null
T=$(awk -F, 'NR > 1 && $5 == 0 { print $1; exit }' d/truth/slides.csv) # a slide with tissue
others=$(awk -F, -v t="$T" 'NR > 1 && $1 != t { print $1 }' d/cohort.csv)
set_mpp() { awk -F, -v OFS=, -v t="$T" -v m="$1" 'NR == 1 { print $0, "mpp"; next } { print $0, ($1 == t ? m : 0.25) }' d/cohort.orig >d/cohort.csv; }
cp d/cohort.csv d/cohort.orig
set_mpp 0.5
expect_rc 0 "$TESSERA" run d/config.yaml "${FAST[@]}" --set extract.shard_tiles=32
L=d/run/ledger.sqlite
tile_mpp() { $PY -c "import h5py,sys; print(h5py.File(sys.argv[1],'r')['coords'].attrs['mpp_level0'])" "$1" 2>/dev/null || echo "?"; }
check "first run: $T tiled from the CSV's mpp 0.5" test "$(tile_mpp d/run/tiles/$T.h5)" = 0.5
sums() { for s in $others; do find d/run/tissue d/run/tiles d/run/features -name "$s.*" -type f | sort | xargs -r sha256sum; done; }
sums >before.sha
check "other slides have outputs to compare" test "$(wc -l <before.sha)" -ge 6
rows_others() { q $L "select stage, unit, run_id, checksum from units where stage in ('tissue','tile','extract') and unit not like '$T%' order by stage, unit"; }
rows_others >before.rows

set_mpp 0.25
expect_rc 0 "$TESSERA" run d/config.yaml "${FAST[@]}" --set extract.shard_tiles=32
check "second run: says the inputs of a unit changed" grep -q "whose inputs changed since they were done: redoing them" "$WORK/out"
check "second run: $T's tile file reflects mpp_level0 0.25" test "$(tile_mpp d/run/tiles/$T.h5)" = 0.25
check "second run: $T's features file reflects mpp_level0 0.25" \
  test "$(tile_mpp d/run/features/resnet_tiny/$T.h5)" = 0.25
$PY - d/run/tiles/$T.h5 <<'PY' && pass "h5py: $T's tiles laid at 0.25 um/px level 0 (patch_size_level0 = 2 x patch_size)" || fail "h5py: $T's tile geometry"
import sys, h5py
a = h5py.File(sys.argv[1], "r")["coords"].attrs
assert a["mpp_level0"] == 0.25 and a["target_mpp"] == 0.5, dict(a)
assert a["patch_size_level0"] == 2 * a["patch_size"], dict(a)
PY
for st in tissue tile extract; do
  check "$st of $T redone in the second run (run_id 2)" test "$(q $L "select run_id from units where stage='$st' and unit='$T'")" = 2
  check "$st of $T: done twice in the events" test "$(q $L "select count(*) from events where stage='$st' and unit='$T' and event='done'")" = 2
  check "$st: no other slide redone (one done event each)" \
    test "$(q $L "select count(*) from events where stage='$st' and unit not like '$T%' and event='done' group by unit having count(*) > 1")" = ""
done
rows_others >after.rows
check "other slides' ledger rows unchanged (run_id, checksum)" cmp -s before.rows after.rows
sums >after.sha
check "other slides' output files unchanged" cmp -s before.sha after.sha

# back to 0.5 with --reconfigure (the config text is the same): redone again, only it
set_mpp 0.5
expect_rc 0 "$TESSERA" run d/config.yaml "${FAST[@]}" --set extract.shard_tiles=32 --reconfigure
check "with --reconfigure: $T's tile file back at mpp_level0 0.5" test "$(tile_mpp d/run/tiles/$T.h5)" = 0.5
check "with --reconfigure: $T's tile unit redone (run_id 3)" test "$(q $L "select run_id from units where stage='tile' and unit='$T'")" = 3
rows_others >after3.rows
check "with --reconfigure: other slides' ledger rows unchanged" cmp -s before.rows after3.rows
sums >after3.sha
check "with --reconfigure: other slides' output files unchanged" cmp -s before.sha after3.sha
# the same inputs again: nothing redone
expect_rc 0 "$TESSERA" run d/config.yaml "${FAST[@]}" --set extract.shard_tiles=32
check "unchanged inputs: nothing redone" test "$(q $L "select count(*) from units where run_id=4 and stage in ('tissue','tile','extract')")" = 0

# ---- g. a missing slide file: the root cause travels downstream; i. a blank slide warns ----
"$TESSERA" synth g --slides 3 --size 4000 --seed 3 --quiet >/dev/null
B=$(awk -F, 'NR > 1 && $5 == 1 { print $1; exit }' g/truth/slides.csv) # the blank slide
echo "S9999,P9999,slides/nothere.tiff,0" >>g/cohort.csv
expect_rc 1 "$TESSERA" run g/config.yaml "${FAST[@]}"
cp "$WORK/out" run.out
check "tissue of S9999 fails SLIDE_MISSING" test "$(q g/run/ledger.sqlite "select error_token from units where stage='tissue' and unit='S9999'")" = SLIDE_MISSING
for st in tile extract; do
  check "$st of S9999 fails UPSTREAM_FAILED" test "$(q g/run/ledger.sqlite "select error_token from units where stage='$st' and unit='S9999'")" = UPSTREAM_FAILED
  check "$st of S9999: its message carries SLIDE_MISSING" \
    grep -q SLIDE_MISSING <<<"$(q g/run/ledger.sqlite "select error_message from units where stage='$st' and unit='S9999'")"
done
expect_rc 1 "$TESSERA" status g/run
cp "$WORK/out" status.out
check "status: tile's failure names the root cause" grep -qE '^    FAILED S9999: UPSTREAM_FAILED: .*SLIDE_MISSING' status.out
check "status: tissue's failure is SLIDE_MISSING" grep -qE '^    FAILED S9999: SLIDE_MISSING' status.out
check "status: the UPSTREAM_FAILED lines (tile, extract) both carry SLIDE_MISSING" \
  test "$(grep -c 'FAILED S9999: UPSTREAM_FAILED: .*SLIDE_MISSING' status.out)" = 2
expect_rc 1 "$TESSERA" status g/run --json
$PY - "$WORK/out" <<'PY' && pass "status --json: UPSTREAM_FAILED messages carry SLIDE_MISSING" || fail "status --json root cause"
import json, sys
st = {s["name"]: s for s in json.load(open(sys.argv[1]))["stages"]}
f = {s: {x["unit"]: x for x in st[s]["failures"]} for s in ("tissue", "tile", "extract")}
assert f["tissue"]["S9999"]["token"] == "SLIDE_MISSING", f["tissue"]
for s in ("tile", "extract"):
    assert f[s]["S9999"]["token"] == "UPSTREAM_FAILED" and "SLIDE_MISSING" in f[s]["S9999"]["message"], f[s]
PY

# i. the blank slide: done with 0 tiles and a warning, in the run's output and in status
check "blank slide $B: tile done with 0 tiles" test "$(q g/run/ledger.sqlite "select state || ',' || items from units where stage='tile' and unit='$B'")" = "done,0"
check "run output: a warning with SLIDE_NO_TILES for $B" grep -qE "warning.*$B.*SLIDE_NO_TILES|warning.*SLIDE_NO_TILES.*$B" run.out
check "status lists the warning" grep -qE "WARNING $B: SLIDE_NO_TILES" status.out
check "status --json lists the note" grep -q "\"notes\": \[{\"unit\": \"$B\", \"note\": \"SLIDE_NO_TILES" "$WORK/out"
finish
