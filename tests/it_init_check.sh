#!/usr/bin/env bash
# labels: cli slides
# it_init_check.sh — a user with a folder of slides and no cohort CSV: `tessera init` writes
# cohort.csv (safe slide ids, TCGA patients, absolute paths, subfolders scanned, non-slides
# skipped) and a starter config.yaml, and refuses to overwrite them; `tessera check` opens every
# slide and prints the table (vendor, level-0 size, levels, mpp and its source) with the token
# of each bad one; exit 0 all good, 1 some bad, 2 config error. Slides come from `tessera synth`.
. "$(dirname "$0")/lib.sh"
cd "$WORK"
expect_rc 0 "$TESSERA" init --help
check "init --help" grep -q 'usage: tessera init SLIDE_DIR' "$WORK/out"
expect_rc 0 "$TESSERA" check --help
check "check --help" grep -q 'usage: tessera check CONFIG' "$WORK/out"

expect_rc 0 "$TESSERA" synth a --slides 1 --size 1024 --seed 3 --mpp 0.5 --quiet
expect_rc 0 "$TESSERA" synth b --slides 1 --size 1024 --seed 4 --no-mpp --quiet
mkdir -p "my slides/sub" empty
cp a/slides/*.tiff "my slides/TCGA-AB-1234-01Z-00-DX1.tiff"
cp b/slides/*.tiff "my slides/sub/case 7.tif"     # no pixel size in the file; a blank in the name
echo "this is no slide" >"my slides/broken.svs"
echo "notes" >"my slides/notes.txt"
mkdir "my slides/.hidden" && cp a/slides/*.tiff "my slides/.hidden/skip.tiff"

expect_rc 2 "$TESSERA" init nowhere --out proj
check "missing slide folder: INIT_NO_DIR" grep -q '^INIT_NO_DIR: nowhere' "$WORK/out"
expect_rc 2 "$TESSERA" init empty --out proj
check "no slides: INIT_NO_SLIDES" grep -q '^INIT_NO_SLIDES: empty' "$WORK/out"
check "nothing written when nothing found" test ! -e proj/cohort.csv

expect_rc 0 "$TESSERA" init "my slides" --out proj
abs=$(cd "my slides" && pwd)
check "cohort header" test "$(head -1 proj/cohort.csv)" = "slide_id,patient_id,path"
check "3 slides (notes.txt and hidden folders skipped)" test "$(tail -n +2 proj/cohort.csv | wc -l)" = 3
check "TCGA slide: patient is the participant barcode" \
  grep -qx "TCGA-AB-1234-01Z-00-DX1,TCGA-AB-1234,$abs/TCGA-AB-1234-01Z-00-DX1.tiff" proj/cohort.csv
check "subfolder slide: safe id, patient = slide id, absolute path" \
  grep -qx "case_7,case_7,$abs/sub/case 7.tif" proj/cohort.csv
check "broken file listed (check judges it)" grep -q "^broken,broken,$abs/broken.svs$" proj/cohort.csv
check "config sets run.dir and cohort.csv" grep -q '^  csv: "cohort.csv"' proj/config.yaml
check "config lists the other keys, commented" grep -q '^#   size: 256' proj/config.yaml

sum=$(cat proj/cohort.csv proj/config.yaml | sha256sum)
expect_rc 2 "$TESSERA" init "my slides" --out proj
check "refuses to overwrite: token, file, what to do" \
  grep -q "^INIT_EXISTS: proj/cohort.csv already exists.*--out DIR" "$WORK/out"
check "existing files untouched" test "$sum" = "$(cat proj/cohort.csv proj/config.yaml | sha256sum)"
mkdir only_cfg && echo "x: 1" >only_cfg/config.yaml
expect_rc 2 "$TESSERA" init "my slides" --out only_cfg
check "an existing config.yaml alone is refused too" grep -q "^INIT_EXISTS: only_cfg/config.yaml" "$WORK/out"
check "and no cohort.csv written beside it" test ! -e only_cfg/cohort.csv

# ---- check: the table
expect_rc 1 "$TESSERA" check proj/config.yaml
cp "$WORK/out" check1.txt
row() { grep "^$1 " check1.txt | tr -s ' '; }
check "table header" grep -Eq '^slide_id +vendor +level-0 +levels +mpp +source +status$' check1.txt
check "good slide: vendor, size, levels, mpp from the file, ok" \
  test "$(row TCGA-AB-1234-01Z-00-DX1)" = "TCGA-AB-1234-01Z-00-DX1 aperio 1024x1024 3 0.5 file ok"
check "broken file: SLIDE_NOT_A_SLIDE" grep -Eq '^broken +- +- +- +- +- +SLIDE_NOT_A_SLIDE: ' check1.txt
check "no pixel size: SLIDE_NO_MPP naming both remedies" \
  grep -Eq "^case_7 +aperio +1024x1024 +3 +- +none +SLIDE_NO_MPP: .*mpp column.*cohort.mpp" check1.txt
check "summary line" grep -qx '1 ok, 2 bad' check1.txt

# the starter config is a config: uncomment cohort.mpp as the comment says
sed -i 's/^  # mpp: 0 /  mpp: 0.25 /' proj/config.yaml
grep -v "^broken," proj/cohort.csv >proj/c2 && mv proj/c2 proj/cohort.csv
expect_rc 0 "$TESSERA" check proj/config.yaml
check "cohort.mpp: source config" grep -Eq '^case_7 +aperio +1024x1024 +3 +0.25 +config +ok$' "$WORK/out"
# a per-slide mpp column wins over cohort.mpp
{ echo "slide_id,patient_id,path,mpp"; tail -n +2 proj/cohort.csv | sed 's/$/,0.3/'; } >proj/c3 && mv proj/c3 proj/cohort.csv
expect_rc 0 "$TESSERA" check proj/config.yaml
check "cohort mpp column: source cohort" grep -Eq '^case_7 +aperio +1024x1024 +3 +0.3 +cohort +ok$' "$WORK/out"
check "file mpp still wins" grep -Eq '^TCGA-AB-1234-01Z-00-DX1 +aperio +1024x1024 +3 +0.5 +file +ok$' "$WORK/out"
# ... and a run of the starter config goes through (single process)
expect_rc 0 "$TESSERA" run proj/config.yaml
check "the starter config runs: both slides tiled" grep -Eq '^ +tile +2 done +0 failed +0 pending' "$WORK/out"
check "the starter config runs: features extracted" grep -Eq '^ +extract +[1-9][0-9]* done +0 failed +0 pending' "$WORK/out"

# every commented default, uncommented, is a valid config (the text comes from the key table)
sed -e 's/^# \([a-z_]*:\)$/\1/' -e 's/^#   \([a-z_0-9]*: \)/  \1/' -e 's/^  # \([a-z_0-9]*: \)/  \1/' \
  proj/config.yaml >proj/all.yaml
check "all keys uncommented" test "$(grep -c '^#' proj/all.yaml)" = 5
expect_rc 0 "$TESSERA" check proj/all.yaml

# ---- check: config errors exit 2
expect_rc 2 "$TESSERA" check
expect_rc 2 "$TESSERA" check proj/missing.yaml
check "missing config: token" grep -q '^CONFIG_MISSING_FILE' "$WORK/out"
sed 's/cohort.csv"/nocohort.csv"/' proj/config.yaml >proj/nocsv.yaml
expect_rc 2 "$TESSERA" check proj/nocsv.yaml
check "missing cohort CSV: token" grep -q '^COHORT_MISSING_FILE' "$WORK/out"
finish
