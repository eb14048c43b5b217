#!/usr/bin/env bash
# labels: cli
# Config and usage errors exit 2 and name file:line and key; --help everywhere; --version.
. "$(dirname "$0")/lib.sh"
cd "$WORK"
printf 'slide_id,patient_id,path\n' > cohort.csv

printf 'cohort:\n  csv: cohort.csv\ntile:\n  size: 256\n  szie: 3\n' > unknown.yaml
expect_rc 2 "$TESSERA" run unknown.yaml
check "unknown key names file:line and key" grep -q 'CONFIG_UNKNOWN_KEY: unknown.yaml:5: .*tile.szie' "$WORK/out"

printf 'cohort:\n  csv: cohort.csv\ntile:\n  mpp: fast\n' > type.yaml
expect_rc 2 "$TESSERA" run type.yaml
check "wrong type names file:line and key" grep -q 'CONFIG_TYPE: type.yaml:4: tile.mpp' "$WORK/out"

expect_rc 2 "$TESSERA" run missing.yaml
check "missing config file is named" grep -q 'CONFIG_MISSING_FILE: missing.yaml' "$WORK/out"

printf 'tile:\n  size: 256\n' > nocsv.yaml
expect_rc 2 "$TESSERA" run nocsv.yaml
check "missing required key" grep -q "CONFIG_MISSING_KEY: nocsv.yaml: .*cohort.csv" "$WORK/out"

printf 'cohort:\n  csv: cohort.csv\n' > ok.yaml
expect_rc 2 "$TESSERA" run ok.yaml --set tile.size=huge
check "--set validated like the file" grep -q 'CONFIG_TYPE: --set tile.size' "$WORK/out"

printf 'cohort:\n  csv: cohort.csv\ntile:\n  mp: 0.5\n' > typo.yaml
expect_rc 2 "$TESSERA" run typo.yaml
check "unknown key suggests the nearest key" grep -q 'CONFIG_UNKNOWN_KEY: typo.yaml:4: .*did you mean tile.mpp?' "$WORK/out"
printf 'cohort:\n  csv: cohort.csv\nextrct:\n  batch: 8\n' > typosec.yaml
expect_rc 2 "$TESSERA" run typosec.yaml
check "unknown section suggests the nearest section" grep -q 'CONFIG_UNKNOWN_KEY: typosec.yaml:3: .*did you mean extract?' "$WORK/out"
expect_rc 2 "$TESSERA" run ok.yaml --set extract.encodr=resnet18
check "--set unknown key suggests the nearest key" grep -q 'CONFIG_UNKNOWN_KEY: --set extract.encodr=resnet18: .*did you mean extract.encoder?' "$WORK/out"
expect_rc 0 "$TESSERA" run --help
check "run --help shows each key's range in its column" grep -qE '^    size +integer +256 +\[16, 8192\] +tile side' "$WORK/out"
check "run --help keeps the key table within 100 columns" test "$(awk '/^    key +type +default +range +doc$/ { t = 1 } t && /^$/ { t = 0 } t && length($0) > m { m = length($0) } END { print m + 0 }' "$WORK/out")" -le 100
check "run --help has the key table" grep -qE '^    key +type +default +range +doc$' "$WORK/out"

printf 'cohort:\n  csv: nothere.csv\n' > nocohort.yaml
expect_rc 2 "$TESSERA" run nocohort.yaml
check "missing cohort CSV named" grep -q 'COHORT_MISSING_FILE: .*nothere.csv' "$WORK/out"

printf 'slide_id,path\nS1,a.svs\n' > bad.csv
printf 'cohort:\n  csv: bad.csv\nrun:\n  dir: run2\n' > badcsv.yaml
expect_rc 2 "$TESSERA" run badcsv.yaml
check "cohort CSV without patient_id named with line" grep -q "COHORT_MISSING_COLUMN: .*bad.csv:1: no 'patient_id'" "$WORK/out"

mkdir -p notmine && echo precious > notmine/data.txt
printf 'cohort:\n  csv: cohort.csv\nrun:\n  dir: notmine\n' > notmine.yaml
expect_rc 2 "$TESSERA" run notmine.yaml
check "refuses a non-empty directory it did not make" grep -q 'RUN_DIR_NOT_EMPTY' "$WORK/out"
check "user's file untouched" grep -q precious notmine/data.txt

expect_rc 2 "$TESSERA" frobnicate
expect_rc 2 "$TESSERA"
for c in synth run status inspect cox km; do
  expect_rc 0 "$TESSERA" "$c" --help
  check "$c --help prints usage" grep -qi 'usage' "$WORK/out"
done
expect_rc 0 "$TESSERA" --version
check "--version" grep -q '^tessera [0-9]' "$WORK/out"
finish
