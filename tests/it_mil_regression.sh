#!/usr/bin/env bash
# labels: mil mpi
# The mil stage as a regression (mil.task: regression, WeakSTIL-style): a synthetic cohort whose
# label column is each slide's tumour burden in percent (from the generator's truth/slides.csv,
# not from tessera), ABMIL over 3 folds, MSE loss on standardised targets (lr 1e-3: 40 epochs of
# ~14 bags; at CLAM's 2e-4 the model barely moves in that budget).
#  (a) splits: patient-level, stratified by score quartile: the bins are recomputed here from the
#      cohort (patients sorted by (score, patient_id), bin of the i-th of m = floor(4 i / m)), and
#      every fold's test part holds patients of every bin; all slides of a patient together.
#  (b) per fold: test_mse equals the mean squared error of predictions.csv; test_pearson and
#      test_spearman with their 95% CIs and p-values equal R's cor.test on predictions.csv
#      (Pearson: estimate, conf.int, p.value; Spearman: estimate, p.value, exact = FALSE) to 1e-6;
#      the pooled Pearson and Spearman of mil/summary.json equal cor.test on all folds' test
#      predictions together.
#  (c) learning: the pooled Spearman r of ABMIL's test predictions is > 0.5 (0.84 here; a model
#      that learnt nothing predicts about the mean, r ~0: 0.03 after 12 epochs at lr 2e-4).
#  (d) configuration errors stop the run before anything trains (exit 2, no mil/): CLAM in a
#      regression (CONFIG_RANGE), mil.balanced in a regression; a fractional label in a
#      classification (MIL_BAD_LABEL naming cohort.csv:line and the slide); mil.classes 2 with a
#      label 2 (MIL_BAD_LABEL); a label that is not a number (COHORT_BAD_VALUE, line).
. "$(dirname "$0")/lib.sh"
cd "$WORK"
command -v Rscript >/dev/null || { fail "Rscript (r-base-core) is missing: the cor.test oracle"; finish; }

expect_rc 0 "$TESSERA" synth cohort --slides 24 --size 3000 --seed 5 --quiet
cp cohort/cohort.csv cohort/classes.csv
# label := tumour burden in percent (the generator's own record); two patients with two slides
# (one score per patient: the second slide takes the first's)
expect_rc 0 $PY - cohort/cohort.csv cohort/truth/slides.csv <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
burden = {r["slide_id"]: float(r["tumour_burden"]) for r in csv.DictReader(open(sys.argv[2]))}
by = {r["slide_id"]: r for r in rows}
for r in rows:
    r["label"] = "%.4f" % (100 * burden[r["slide_id"]])
for a, b in (("S0003", "S0004"), ("S0013", "S0014")):
    by[b]["patient_id"] = by[a]["patient_id"]
    by[b]["label"] = by[a]["label"]  # the splits need one score per patient
w = csv.DictWriter(open(sys.argv[1], "w", newline=""), fieldnames=list(rows[0].keys()), lineterminator="\n")
w.writeheader(); w.writerows(rows)
print("scores:", sorted(float(r["label"]) for r in rows))
PY
sets=(--set extract.encoder=resnet_tiny --set tile.size=128 --set mil.task=regression --set mil.models=abmil
      --set mil.folds=3 --set mil.test_frac=0.25 --set mil.val_frac=0.2 --set mil.epochs=40 --set mil.min_epochs=10 --set mil.patience=10
      --set mil.lr=1e-3)
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml "${sets[@]}"
grep -E '^mil:' "$WORK/out" || true
R=cohort/run

# ---- (a) splits ----
check "(a) splits stratified by score quartile, patients together" $PY - cohort/cohort.csv $R/splits/splits.csv <<'PY'
import csv, sys, collections
cohort = list(csv.DictReader(open(sys.argv[1])))
sp = list(csv.DictReader(open(sys.argv[2])))
pat_score = {}
for r in cohort:
    pat_score[r["patient_id"]] = float(r["label"])  # the two-slide patients' slides differ a little: any is fine for binning
tiles = {r["slide_id"] for r in sp}
pats = sorted({r["patient_id"] for r in sp}, key=lambda p: (min(float(s["label"]) for s in sp if s["patient_id"] == p), p))
m = len(pats)
binof = {p: (i * 4) // m for i, p in enumerate(pats)}
folds = sorted({int(r["fold"]) for r in sp})
ok = True
for f in folds:
    rows = [r for r in sp if int(r["fold"]) == f]
    where = collections.defaultdict(set)
    for r in rows:
        where[r["patient_id"]].add(r["set"])
    split = [p for p, s in where.items() if len(s) > 1]
    bins = {binof[r["patient_id"]] for r in rows if r["set"] == "test"}
    print("fold", f, "test bins", sorted(bins), "patients in two sets", split)
    ok &= not split and bins == {0, 1, 2, 3}
sys.exit(0 if ok else 1)
PY

# ---- (b) metrics against R ----
cat > oracle.R <<'R'
args <- commandArgs(TRUE)
out <- c()
for (p in args) {
  d <- read.csv(p)
  pe <- cor.test(d$pred, d$label)
  sp <- suppressWarnings(cor.test(d$pred, d$label, method = "spearman", exact = FALSE))
  out <- c(out, sprintf("%s,%.15g,%.15g,%.15g,%.15g,%.15g,%.15g,%.15g", p, mean((d$pred - d$label)^2), pe$estimate,
                        pe$conf.int[1], pe$conf.int[2], pe$p.value, sp$estimate, sp$p.value))
}
writeLines(out)
R
preds=$(ls $R/mil/*/fold*/predictions.csv)
for model in abmil; do
  $PY - $R/mil/$model > pooled_$model.csv <<'PY'
import csv, glob, sys
rows = []
for p in sorted(glob.glob(sys.argv[1] + "/fold*/predictions.csv")):
    rows += list(csv.DictReader(open(p)))
w = csv.DictWriter(sys.stdout, fieldnames=["slide_id", "patient_id", "label", "pred"], lineterminator="\n")
w.writeheader(); w.writerows(rows)
PY
done
Rscript oracle.R $preds pooled_abmil.csv > r.csv || fail "(b) R cor.test failed"
check "(b) R compared 3 folds + the pooled predictions" test "$(wc -l < r.csv)" = 4
check "(b) per-fold MSE, Pearson (CI, p), Spearman (p) and the pooled r equal R" $PY - $R r.csv <<'PY'
import csv, json, sys, math
run, rcsv = sys.argv[1], sys.argv[2]
ok = True
def close(what, got, want, tol=1e-6):
    global ok
    good = (got is None and (want != want)) or (got is not None and abs(got - want) <= tol * max(1, abs(want)))
    if not good:
        print("MISMATCH", what, got, want); ok = False
summary = json.load(open(run + "/mil/summary.json"))
assert summary["task"] == "regression"
pooled = {m["model"]: m for m in summary["models"]}
for line in open(rcsv):
    p, mse, r, lo, hi, pv, rho, sp_p = line.strip().split(",")
    mse, r, lo, hi, pv, rho, sp_p = map(float, (mse, r, lo, hi, pv, rho, sp_p))
    if "pooled_" in p:
        m = pooled[p.split("pooled_")[1][:-4]]
        close(p + " pooled pearson", m["pooled_pearson"], r)
        close(p + " pooled pearson lower", m["pooled_pearson_ci95"][0], lo)
        close(p + " pooled pearson upper", m["pooled_pearson_ci95"][1], hi)
        close(p + " pooled spearman", m["pooled_spearman"], rho)
        print(p, "pooled pearson %.3f [%.3f, %.3f] spearman %.3f (R agrees)" % (r, lo, hi, rho))
        continue
    mj = json.load(open(p.replace("predictions.csv", "metrics.json")))
    close(p + " mse", mj["test_mse"], mse)
    close(p + " pearson", mj["test_pearson"], r)
    close(p + " pearson lower", mj["test_pearson_ci95"][0], lo)
    close(p + " pearson upper", mj["test_pearson_ci95"][1], hi)
    close(p + " pearson p", mj["test_pearson_p"], pv, 1e-5)
    close(p + " spearman", mj["test_spearman"], rho)
    close(p + " spearman p", mj["test_spearman_p"], sp_p, 1e-5)
sys.exit(0 if ok else 1)
PY
check "(c) ABMIL's pooled test Spearman r > 0.5" $PY -c "
import json, sys
m = {m['model']: m for m in json.load(open('$R/mil/summary.json'))['models']}
for k in m: print(k, 'pooled spearman', m[k]['pooled_spearman'], 'pearson', m[k]['pooled_pearson'], m[k]['pooled_pearson_ci95'])
sys.exit(0 if (m['abmil']['pooled_spearman'] or 0) > 0.5 else 1)"
check "(c) the report shows the regression: its scatter plot" grep -q 'id="mil-scatter"' $R/report/index.html

# ---- (d) configuration errors ----
cp -a $R base
again() { rm -rf cohort/run; cp -a base cohort/run; }
again
expect_rc 2 "$TESSERA" run cohort/config.yaml "${sets[@]}" --set mil.models=clam_sb --stages mil
check "(d) clam in a regression: CONFIG_RANGE" grep -q 'CONFIG_RANGE.*clam_sb classifies' "$WORK/out"
expect_rc 2 "$TESSERA" run cohort/config.yaml "${sets[@]}" --set mil.balanced=true --stages mil
check "(d) mil.balanced in a regression: CONFIG_RANGE" grep -q 'CONFIG_RANGE.*mil.balanced' "$WORK/out"
cls=(--set extract.encoder=resnet_tiny --set tile.size=128 --set mil.models=abmil --set mil.folds=3 --set mil.epochs=2 --stages mil)
again
rm -rf cohort/run/mil cohort/run/splits
expect_rc 2 "$TESSERA" run cohort/config.yaml "${cls[@]}" --reconfigure
check "(d) a fractional label in a classification: MIL_BAD_LABEL with file:line and slide" \
  grep -Eq 'MIL_BAD_LABEL: .*cohort.csv:[0-9]+: slide S[0-9]+: label [0-9.]+ is not a class' "$WORK/out"
check "(d) ... and nothing trained" test ! -e cohort/run/mil
# classes 0/1 again, one slide labelled 2, mil.classes 2
$PY - cohort/classes.csv cohort/cohort.csv <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
h = lines[0].split(","); i = h.index("label")
f = lines[5].split(","); f[i] = "2"; lines[5] = ",".join(f)
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
PY
expect_rc 2 "$TESSERA" run cohort/config.yaml "${cls[@]}" --set mil.classes=2 --reconfigure
check "(d) label 2 with mil.classes 2: MIL_BAD_LABEL naming line 6" grep -Eq 'MIL_BAD_LABEL: .*cohort.csv:6: slide S[0-9]+: label 2 is outside 0..1' "$WORK/out"
sed -i '3s/,[^,]*$/,high/' cohort/cohort.csv
expect_rc 2 "$TESSERA" run cohort/config.yaml "${cls[@]}" --reconfigure
check "(d) a label that is not a number: COHORT_BAD_VALUE naming line 3" grep -q "COHORT_BAD_VALUE: .*cohort.csv:3: column label: 'high' is not a number" "$WORK/out"
finish
