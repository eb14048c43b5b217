#!/usr/bin/env bash
# labels: report mpi
# The run report: a synthetic run writes report/index.html + report.json as its last stage;
# `tessera report` rewrites them; the page renders in headless Chromium with no console error
# and the key facts (slide ids, tile counts, config hash) in its DOM; report.json validates
# against schemas/report.schema.json; a second run of the same config (other run dir, 2 ranks)
# and a `tessera rerun` compare identical, a changed tile size compares different. The report
# written by the run's last stage says the run finished with exit 0 (not "running"); the blank
# slide (synth makes one of 3) is marked with SLIDE_NO_TILES; images are small JPEG thumbnails
# linking the full-size QC PNGs (no base64); the extract stage's "features" section matches
# the feature files.
# Needs Debian's chromium and python3-jsonschema (scripts/setup.sh).
. "$(dirname "$0")/lib.sh"
cd "$WORK"
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || { echo "FAIL - chromium is not installed (apt-get install --no-install-recommends chromium)"; exit 1; }
$PY -c 'import jsonschema' 2>/dev/null || { echo "FAIL - python3-jsonschema is not installed"; exit 1; }

expect_rc 0 "$TESSERA" synth cohort --slides 3 --size 6144 --seed 7 --quiet
expect_rc 0 "$TESSERA" run cohort/config.yaml --set run.dir="$WORK/a" --quiet
check "the run wrote report/index.html" test -s a/report/index.html
check "the run wrote report/report.json" test -s a/report/report.json
check "the run printed the report's path" grep -q "report: $WORK/a/report/index.html" "$WORK/out"
# the report stage runs after the driver recorded the run's end: it says so (issue 10, bug 6)
expect_rc 0 "$PY" - a/report/report.json a/ledger.sqlite <<'PY'
import json, sys, sqlite3
r = json.load(open(sys.argv[1]))['run']
assert r['in_progress'] is False, r['in_progress']
assert r['finished'] is not None and r['exit_code'] == 0, (r['finished'], r['exit_code'])
assert r['invocations'][-1]['exit_code'] == 0 and r['invocations'][-1]['finished'] == r['finished']
db = sqlite3.connect(sys.argv[2])
assert db.execute("select finished is not null, exit_code from runs order by id desc limit 1").fetchone() == (1, 0)
PY
check "the run's own report does not say running" test -z "$(grep -io 'running' a/report/index.html || true)"
check "the run's own report says exit code 0" grep -q 'id="run-state">finished [^<]*, exit code 0' a/report/index.html

# --- tessera report on a finished run ---
expect_rc 0 "$TESSERA" report a
check "tessera report prints the page's path" grep -qx "$WORK/a/report/index.html" "$WORK/out"
expect_rc 2 "$TESSERA" report "$WORK/cohort"
check "not a run dir: REPORT_NO_LEDGER" grep -q REPORT_NO_LEDGER "$WORK/out"
for c in report compare rerun; do expect_rc 0 "$TESSERA" "$c" --help; done

# --- report.json: schema and facts ---
cat > validate.py <<'PY'
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
errs = list(jsonschema.Draft202012Validator(schema).iter_errors(json.load(open(sys.argv[2]))))
for e in errs: print(list(e.absolute_path), e.message[:300])
sys.exit(1 if errs else 0)
PY
expect_rc 0 "$PY" validate.py "$TS_SOURCE_DIR/schemas/report.schema.json" a/report/report.json
# a report.json with a wrong type must fail the schema (the validator really validates)
$PY -c "import json; r=json.load(open('a/report/report.json')); r['slides']['slides'][0]['tiles']='many'; json.dump(r, open('broken.json','w'))"
expect_rc 1 "$PY" validate.py "$TS_SOURCE_DIR/schemas/report.schema.json" broken.json

# facts for the DOM check, from the ledger and the HDF5 files (not from the report itself)
ids=$(cut -d, -f1 cohort/cohort.csv | tail -n +2)
hash=$(sha256sum a/config.yaml | cut -d' ' -f1)
$PY - a > facts.txt <<'PY'
import h5py, sqlite3, sys, glob, os
d = sys.argv[1]
db = sqlite3.connect(os.path.join(d, 'ledger.sqlite'))
for unit, items in db.execute("select unit, items from units where stage='tile' and state='done' order by unit"):
    n = h5py.File(os.path.join(d, 'tiles', unit + '.h5'), 'r')['coords'].shape[0]
    assert n == items, (unit, n, items)
    print(unit, n)
PY
check "ledger items = HDF5 tile counts" test -s facts.txt
expect_rc 0 "$PY" - a/report/report.json facts.txt "$hash" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
facts = dict(l.split() for l in open(sys.argv[2]))
s = {x['slide_id']: x for x in r['slides']['slides']}
assert {k: str(s[k]['tiles']) for k in facts} == facts, (s, facts)
assert r['reproducibility']['config']['sha256'] == sys.argv[3]
assert r['run']['config_hash'] == sys.argv[3]
assert all(x['mpp_source'] == 'file' and abs(x['mpp_level0'] - 0.25) < 1e-9 for x in s.values())
st = {x['name']: x for x in r['stages']['stages']}
assert st['tile']['units']['done'] == 3 and st['tile']['items'] == sum(map(int, facts.values()))
assert r['run']['environment']['libraries']['hdf5'].startswith('1.')
# tissue (h5, png), tile (h5, png), extract (h5) x 3 slides + 2 record blocks
assert len(r['reproducibility']['outputs']) == 17, len(r['reproducibility']['outputs'])
assert all(len(x['quickhash']) == 64 for x in r['reproducibility']['inputs']['slides'])
# the quickhash comes from the tile file (the report opens no slide)
import h5py
for x in r['reproducibility']['inputs']['slides']:
    f = h5py.File('a/tiles/%s.h5' % x['slide_id'], 'r')
    assert f['coords'].attrs['slide_quickhash'] == x['quickhash'], x
# the blank slide: 0 tiles, marked (not green and silent), in slides and in failures.warnings
blank = [k for k, v in facts.items() if v == '0']
assert len(blank) == 1, facts
b = s[blank[0]]
assert [w['token'] for w in b['warnings']] == ['SLIDE_NO_TILES'] and b['warnings'][0]['stage'] == 'tile', b
assert r['slides']['warned'] == 1
assert [(w['unit'], w['token']) for w in r['failures']['warnings']] == [(blank[0], 'SLIDE_NO_TILES')]
assert all(not v['warnings'] for k, v in s.items() if k != blank[0])
assert st['tile']['warnings'] == 1
# features: what the feature files say
fe = r['features']
assert r['sections'][-2:] == ['slides', 'features'], r['sections']
enc = fe['encoder']
for x in fe['slides']:
    f = h5py.File('a/features/%s/%s.h5' % (enc, x['slide_id']), 'r')['features']
    assert x['status'] == 'done' and x['tiles'] == f.shape[0] and x['feature_dim'] == f.shape[1], x
    assert x['bad_tiles'] == f.attrs['n_bad_tiles'] and f.attrs['encoder'] == enc
    assert fe['weights_hash'] == f.attrs['weights_hash'] and fe['feature_dim'] == f.shape[1]
assert sorted(x['slide_id'] for x in fe['slides']) == sorted(facts)
assert r['reproducibility']['encoders'] == [{'name': enc, 'sha256': fe['weights_hash'], 'stage': 'extract'}]
PY

# --- the page in headless Chromium ---
chrome() {
  local ud; ud=$(mktemp -d "$WORK/chrome.XXXXXX")
  timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --disable-quic --user-data-dir="$ud" \
    --enable-logging=stderr --v=0 "$@"
}
# console errors (uncaught exceptions, CSP violations, failed loads) as Chromium logs them
console_errors() { grep -E 'CONSOLE|Uncaught|Refused to|net::ERR_|Not allowed to load' "$1" | grep -v 'dbus' || true; }
url="file://$WORK/a/report/index.html"
chrome --dump-dom "$url" > dom.html 2> dom.log || true
check "Chromium rendered the DOM" grep -q '</html>' dom.html
for id in $ids; do check "DOM has slide $id" grep -q "id=\"slide-$id\"" dom.html; done
while read -r id n; do
  check "DOM has tile count $n of $id" grep -qE "id=\"slide-$id\".*<td class=\"tiles\">$n</td>" dom.html
done < facts.txt
check "DOM has the config hash" grep -q "id=\"config-hash\">$hash<" dom.html
check "DOM has the total tile count" grep -q "id=\"tiles-total\">$(awk '{s+=$2} END {print s}' facts.txt)<" dom.html
check "no image is embedded as base64" test -z "$(grep -o 'src="data:image' dom.html || true)"
for id in $ids; do
  check "DOM has the thumbnail of $id linking the full-size tile grid" grep -q "<a href=\"../tiles/$id.png\"><img loading=\"lazy\" alt=\"tiles/$id.png\" src=\"thumbs/$id.tiles.jpg\"></a>" dom.html
done
check "the blank slide is marked in the DOM" grep -qE 'class="slide warned" id="slide-[^"]*".*SLIDE_NO_TILES' dom.html
expect_rc 0 "$PY" - a/report/thumbs $ids <<'PY'
import sys, os
from PIL import Image
d = sys.argv[1]
for id in sys.argv[2:]:
    for k in ('tissue', 'tiles'):
        p = os.path.join(d, '%s.%s.jpg' % (id, k))
        im = Image.open(p)
        assert im.format == 'JPEG' and max(im.size) <= 256 and max(im.size) >= 64, (p, im.format, im.size)
        assert os.path.getsize(p) < 64 * 1024, p
PY
check "index.html is small (no embedded images)" test "$(stat -c %s a/report/index.html)" -lt 200000
check "DOM has the load-balance chart" grep -q '<svg class="chart"' dom.html
check "the page references nothing outside itself" test -z "$(grep -oE '(src|href)="(https?:)?//[^"]*' dom.html)"
chrome --screenshot="$WORK/shot.png" --window-size=1280,2000 --hide-scrollbars "$url" > shot.log 2>&1 || true
check "screenshot taken" test "$(stat -c %s shot.png 2>/dev/null || echo 0)" -gt 20000
errs=$(console_errors dom.log; console_errors shot.log)
if [ -z "$errs" ]; then pass "no console errors"; else fail "console errors:"; echo "$errs" | sed 's/^/    /' | head; fi
# the detector itself: a page with an uncaught exception must be caught
printf '<!DOCTYPE html><html><body><script>throw new Error("boom")</script></body></html>' > bad.html
chrome --dump-dom "file://$WORK/bad.html" > /dev/null 2> bad.log || true
check "console-error check catches an uncaught exception" test -n "$(console_errors bad.log)"
if [ -n "${TS_REPORT_SHOT:-}" ]; then cp shot.png "$TS_REPORT_SHOT"; fi

# --- reproducibility: same config, other run dir, 2 ranks ---
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml --set run.dir="$WORK/b" --quiet
expect_rc 0 "$TESSERA" compare a b
check "compare says IDENTICAL" grep -q 'verdict      IDENTICAL' "$WORK/out"
check "compare saw the 17 outputs identical" grep -q 'outputs      17 identical, 0 differ' "$WORK/out"
expect_rc 0 "$TESSERA" compare a/report/report.json b/report/report.json --verbose
check "--verbose shows performance ratios" grep -q 'perf .*wall_seconds' "$WORK/out"
# tile files really differ in their bytes (save_path, config_hash) but not in content
check "tile files differ byte-wise between run dirs" test "$(sha256sum < a/tiles/S0001.h5)" != "$(sha256sum < b/tiles/S0001.h5)"

# --- rerun from the report ---
expect_rc 0 "$TESSERA" rerun a/report/report.json "$WORK/c" --quiet
expect_rc 0 "$TESSERA" compare a c
check "rerun's config differs only in run.dir" test "$(diff a/config.yaml c/config.yaml | grep -c '^[<>]')" = 2

# --- a different result is found ---
expect_rc 0 "$TESSERA" run cohort/config.yaml --set run.dir="$WORK/d" --set tile.size=128 --quiet
expect_rc 1 "$TESSERA" compare a d
check "compare names the differing tile counts" grep -q "DIFFERS  slides.tiles_total" "$WORK/out"
check "compare names the differing outputs" grep -q 'DIFFERS  output tiles/S0001.h5' "$WORK/out"
check "compare says DIFFERENT" grep -q 'verdict      DIFFERENT' "$WORK/out"

# --- rerun refuses changed inputs ---
cp -r cohort cohort2
sed -i "s|$WORK/cohort/|$WORK/cohort2/|g" a/report/report.json  # point the report at the copy
echo "S0004,P0004,slides/S0001.tiff,0" >> cohort2/cohort.csv
expect_rc 2 "$TESSERA" rerun a/report/report.json "$WORK/e" --quiet
check "changed cohort CSV: INPUT_CHANGED" grep -q 'INPUT_CHANGED: cohort CSV' "$WORK/out"
check "nothing was run" test ! -e "$WORK/e"
expect_rc 2 "$TESSERA" compare a
expect_rc 2 "$TESSERA" compare a "$WORK/nowhere"
finish
