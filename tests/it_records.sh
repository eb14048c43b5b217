#!/usr/bin/env bash
# labels: records mpi
# The records stage under mpirun -np 2: records.h5 against numpy on the CSVs (means, population
# stds, z-scores, one-hot levels, ids); a bad value fails its row block only (token with
# file:line:column in `tessera status --json`, exit 1) and records.h5 says which rows are
# missing; patients without slides and slides without patients are reported; a missing
# required column fails every block of its table.
. "$(dirname "$0")/lib.sh"
cd "$WORK"
expect_rc 0 "$TESSERA" synth cohort --slides 6 --size 4096 --seed 5 --quiet
cp -r cohort bad && cp -r cohort nocol
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml --set extract.encoder=resnet_tiny --set records.block_rows=2 --quiet
ls cohort/run/records/partial >"$WORK/parts"
check "six partials (3 clinical + 3 genomic blocks)" test "$(wc -l <"$WORK/parts")" = 6
expect_rc 0 $PY - cohort <<'PY'
import h5py, numpy as np, csv, sys
d = sys.argv[1]
f = h5py.File(d + "/run/records/records.h5", "r")
def table(name):
    rows = list(csv.reader(open(f"{d}/{name}.csv")))
    return rows[0], rows[1:]
# clinical: numeric columns z-scored with the population std, categorical ones one-hot
h, rows = table("clinical")
g = f["clinical"]
ids = [s.decode() for s in g["patient_id"][:]]
assert ids == [r[0] for r in rows], ids
cols = [s.decode() for s in g["columns"][:]]
assert list(g["values"].attrs["columns"]) == cols
V = g["values"][:]
assert V.dtype == np.float32 and V.shape == (len(rows), 2 + 2 + 3 + 4 + 2), V.shape
for c in ("age", "time"):
    x = np.array([float(r[h.index(c)]) for r in rows])
    k = [s.decode() for s in g["numeric_columns"][:]].index(c)
    assert abs(g["mean"][k] - x.mean()) <= 1e-12 * abs(x.mean()), (c, g["mean"][k], x.mean())
    assert abs(g["std"][k] - x.std()) <= 1e-12 * x.std(), (c, g["std"][k], x.std())
    assert np.allclose(V[:, cols.index(c)], (x - x.mean()) / x.std(), atol=1e-6), c
    assert g.attrs["mean"][k] == g["mean"][k]
for c, levels in (("sex", "01"), ("grade", "123"), ("stage", "1234"), ("event", "01")):
    x = np.array([r[h.index(c)] for r in rows])
    assert [s for s in g.attrs["levels:" + c]] == list(levels)
    for lv in levels:
        assert (V[:, cols.index(f"{c}={lv}")] == (x == lv)).all(), (c, lv)
    assert list(g.attrs["counts:" + c]) == [int((x == lv).sum()) for lv in levels]
assert g["failed_blocks"].shape == (0,) and g["patients_without_slides"].shape == (0,)
assert g["slides_without_patient"].shape == (0,)
# genomic: 300 gene columns by the wildcard
h, rows = table("genomic")
g = f["genomic"]
X = np.array([[float(v) for v in r[1:]] for r in rows])
assert [s.decode() for s in g["columns"][:]] == h[1:]
assert np.allclose(g["mean"][:], X.mean(0), rtol=1e-12, atol=0)
assert np.allclose(g["std"][:], X.std(0), rtol=1e-12, atol=0)
assert np.allclose(g["values"][:], (X - X.mean(0)) / X.std(0), atol=1e-5)
assert [s.decode() for s in g["patient_id"][:]] == [r[0] for r in rows]
print("records.h5 matches numpy")
PY
cat "$WORK/out"

# a bad value on line 5 (row 4, block clinical:1), a patient without slides, a slide without a patient
awk -F, -v OFS=, 'NR == 5 { $2 = "abc" } $1 != "P0006" { print } END { print "P9999,70,1,2,3,12.5,1" }' cohort/clinical.csv >bad/clinical.csv
expect_rc 1 mpirun -np 2 "$TESSERA" run bad/config.yaml --set extract.encoder=resnet_tiny --set records.block_rows=2 --quiet
grep -q "patient(s) without slides: P9999" "$WORK/out" && pass "stderr names the patient without slides" || fail "no stderr line for P9999"
grep -q "slide(s) without a patient row: S0006" "$WORK/out" && pass "stderr names the slide without a patient" || fail "no stderr line for S0006"
expect_rc 1 "$TESSERA" status bad/run --json  # 1: the run has failures
cp "$WORK/out" "$WORK/status.json"
expect_rc 0 $PY - "$WORK/status.json" bad <<'PY'
import json, sys, h5py
s = open(sys.argv[1]).read()
assert "RECORDS_BAD_VALUE" in s and "clinical.csv:5:2" in s, s
assert "clinical:1" in s, s
f = h5py.File(sys.argv[2] + "/run/records/records.h5", "r")
g = f["clinical"]
dec = lambda ds: [x.decode() for x in ds[:]]
assert dec(g["failed_blocks"]) == ["clinical:1"], dec(g["failed_blocks"])
assert dec(g["missing_patient_id"]) == ["P0003", "P0004"], dec(g["missing_patient_id"])
assert dec(g["patient_id"]) == ["P0001", "P0002", "P0005", "P9999"], dec(g["patient_id"])
assert dec(g["patients_without_slides"]) == ["P9999"]
assert dec(g["slides_without_patient"]) == ["S0006"]
assert f["genomic"]["values"].shape == (6, 300)
print("bad value: one block failed, the others written")
PY
cat "$WORK/out"

# a missing required column: every clinical block fails, genomic completes
cut -d, -f1,3- cohort/clinical.csv >nocol/clinical.csv
expect_rc 1 "$TESSERA" run nocol/config.yaml --set extract.encoder=resnet_tiny --set records.block_rows=2 --quiet
expect_rc 1 "$TESSERA" status nocol/run --json
grep -q "RECORDS_MISSING_COLUMN" "$WORK/out" && grep -q "clinical.csv:1:" "$WORK/out" && pass "RECORDS_MISSING_COLUMN with line 1" || { fail "no RECORDS_MISSING_COLUMN"; cat "$WORK/out"; }
expect_rc 0 $PY -c "
import h5py; f = h5py.File('nocol/run/records/records.h5', 'r')
assert f['clinical'].attrs['error'].startswith('RECORDS_MISSING_COLUMN'), f['clinical'].attrs['error']
assert f['genomic']['values'].shape == (6, 300)"

# a bad schema is a config error, before any unit (exit 2 needs run.c to map a TS_ECONFIG
# returned by plan to TS_EXIT_USAGE; until then the run exits 1 and this check fails)
expect_rc 2 "$TESSERA" run cohort/config.yaml --set "records.clinical_schema=patient_id:id, age:float[0," --set run.dir=run_badschema --quiet
grep -q CONFIG_RECORDS_SCHEMA "$WORK/out" && pass "CONFIG_RECORDS_SCHEMA" || fail "no CONFIG_RECORDS_SCHEMA"
finish
