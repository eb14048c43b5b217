#!/usr/bin/env bash
# labels: mil mpi
# The mil stage end to end on a synthetic cohort (24 slides, one blank, three patients with two
# slides each), resnet_tiny features, ABMIL and CLAM-SB over 3 folds.
#  (a) splits/splits.csv: every labelled slide with tiles in exactly one set per fold, no patient
#      in two sets of a fold, all slides of a patient together, test sets of the folds disjoint
#      and covering every patient (checked in Python from the cohort CSV, not from the stage).
#  (b) reproducibility: the same config on 1 rank and on 2 ranks gives byte-identical files
#      under mil/ and splits/ (cmp), and, should an HDF5 file differ in bytes, the test says
#      whether its datasets differ too.
#  (c) the pooled AUC and DeLong CI of mil/summary.json equal R pROC (roc, ci.auc(method =
#      "delong")) on the concatenated predictions.csv to 1e-6; per-fold AUC equals pROC on the
#      fold; per-fold accuracy, balanced accuracy and F1 equal a direct count from predictions.csv.
#  (d) bad input: folds too many for the cohort (exit 2 before training, SPLIT_CLASS_TOO_SMALL,
#      no mil/); a splits file naming an unknown slide (exit 2, MIL_SPLITS_UNKNOWN_SLIDE file:line);
#      a truncated feature file read by fold 0 only (fold 0 units fail naming the slide, the
#      others complete, exit 1); the blank slide is left out with a line.
#  (e) mil.models empty: the stage says it is skipped, exit 0.
#  (f) mil.balanced (CLAM's --weighted_sample): on splits whose training sets keep 2 positive
#      slides, the bags drawn per class (metrics.json train_draws_per_class) are near equal (each
#      draw is class c with probability 1/C), while without it every training bag is drawn once
#      per epoch (draws = the splits file's training counts x epochs_run, counted here).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/crash_lib.sh"
cd "$WORK"
command -v Rscript >/dev/null || { fail "Rscript (r-base-core) is missing: the pROC oracle"; finish; }
Rscript -e 'suppressMessages(library(pROC))' >/dev/null 2>&1 || { fail "R package pROC (r-cran-proc) is missing"; finish; }

expect_rc 0 "$TESSERA" synth cohort --slides 24 --size 3000 --seed 5 --quiet
# three patients with two slides each (same label): the splits must keep them together
expect_rc 0 $PY - cohort/cohort.csv <<'PY'
import csv, sys
p = sys.argv[1]
rows = list(csv.DictReader(open(p)))
by = {r["slide_id"]: r for r in rows}
pairs = 0
for a, b in (("S0003", "S0004"), ("S0001", "S0002"), ("S0013", "S0014")):
    assert by[a]["label"] == by[b]["label"], (a, b)
    by[b]["patient_id"] = by[a]["patient_id"]
    pairs += 1
w = csv.DictWriter(open(p, "w", newline=""), fieldnames=list(rows[0].keys()), lineterminator="\n")
w.writeheader()
w.writerows(rows)
print("patients with two slides:", pairs)
PY
sets=(--set extract.encoder=resnet_tiny --set tile.size=128 --set mil.models=abmil,clam_sb --set mil.folds=3
      --set mil.epochs=8 --set mil.min_epochs=3 --set mil.patience=3)
# the earlier stages once; then the mil stage on copies of that run in the same place (cohort/run)
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml "${sets[@]}" --until records
mv cohort/run base
mil_run() { # mil_run NAME RANKS [args]: mil (and the report) on a fresh copy of base, moved to NAME
  local name=$1 np=$2; shift 2
  rm -rf cohort/run
  cp -a base cohort/run
  expect_rc "${WANT_RC:-0}" mpirun -np "$np" "$TESSERA" run cohort/config.yaml "${sets[@]}" --stages mil "$@"
  cp "$WORK/out" "$WORK/$name.log"
  mv cohort/run "$name"
}
mil_run np2 2
grep -E '^mil:' np2.log || true
mil_run np1 1

# ---- (a) splits ----
check "(a) splits/splits.csv written" test -s np2/splits/splits.csv
expect_rc 0 $PY - cohort/cohort.csv np2/splits/splits.csv np2/tiles <<'PY'
import csv, sys, collections, h5py, os
cohort, splits, tiles = sys.argv[1:4]
C = {r["slide_id"]: r for r in csv.DictReader(open(cohort))}
S = list(csv.DictReader(open(splits)))
assert list(S[0].keys()) == ["fold", "set", "slide_id", "patient_id", "label"], S[0].keys()
# the slides the stage can train on: labelled, with at least one tile (the blank one has none)
def ntiles(s):
    f = os.path.join(tiles, s + ".h5")
    return len(h5py.File(f, "r")["coords"]) if os.path.exists(f) else 0
want = {s for s, r in C.items() if r.get("label", "") != "" and ntiles(s) > 0}
assert "S0011" not in want, "the synthetic blank slide should have no tile"
folds = sorted({int(r["fold"]) for r in S})
assert folds == [0, 1, 2], folds
test_patients = collections.Counter()
for f in folds:
    rows = [r for r in S if int(r["fold"]) == f]
    ids = [r["slide_id"] for r in rows]
    assert len(ids) == len(set(ids)), f"fold {f}: a slide in two sets"
    assert set(ids) == want, f"fold {f}: slides {sorted(set(ids) ^ want)} missing or extra"
    pset = collections.defaultdict(set)
    for r in rows:
        c = C[r["slide_id"]]
        assert r["patient_id"] == c["patient_id"] and int(float(r["label"])) == int(c["label"]), (r, c)
        assert r["set"] in ("train", "val", "test"), r
        pset[r["patient_id"]].add(r["set"])
    split = {p: s for p, s in pset.items() if len(s) > 1}
    assert not split, f"fold {f}: patients in two sets {split}"
    for s in ("train", "val", "test"):
        labels = {int(C[r["slide_id"]]["label"]) for r in rows if r["set"] == s}
        assert labels == {0, 1}, f"fold {f} {s}: classes {labels}"
    for p, s in pset.items():
        if "test" in s:
            test_patients[p] += 1
twice = [p for p, k in test_patients.items() if k > 1]
assert not twice, f"patients in the test sets of two folds: {twice}"
allp = {C[s]["patient_id"] for s in want}
print("splits ok:", len(want), "slides,", len(allp), "patients,", sum(test_patients.values()), "test patients over the folds")
PY
cat "$WORK/out"
check "(d) the blank slide is left out with a line" grep -q "mil: 1 labelled slide(s) left out: 0 without features.*1 with no tile (blank)" np2.log

# ---- (b) 1 rank vs 2 ranks ----
n=0
diffs=()
while IFS= read -r f; do
  n=$((n + 1))
  cmp -s "np2/$f" "np1/$f" || diffs+=("$f")
done < <(cd np2 && find mil splits -type f | LC_ALL=C sort)
check "(b) mil/ and splits/ hold the same files on 1 and 2 ranks" test "$(cd np2 && find mil splits -type f | LC_ALL=C sort)" = "$(cd np1 && find mil splits -type f | LC_ALL=C sort)"
check "(b) outputs compared: $n files (model.h5, predictions.csv, attention.h5, curve.csv ... per fold)" test "$n" -ge 30
check "(b) every file under mil/ and splits/ byte-identical on 1 and 2 ranks (differ: ${diffs[*]:-none})" test ${#diffs[@]} -eq 0
# the HDF5 contents, dataset by dataset and attribute by attribute (says more when bytes differ)
expect_rc 0 $PY - np1 np2 <<'PY'
import sys, glob, h5py, numpy as np, os
a, b = sys.argv[1:3]
bad, n = [], 0
def walk(g, out, pre=""):
    for k, v in g.attrs.items():
        out[pre + "@" + k] = np.asarray(v).tobytes() if not isinstance(v, (str, bytes)) else v
    for k in g:
        o = g[k]
        if isinstance(o, h5py.Dataset):
            out[pre + k] = (o.dtype.str, o.shape, o[()].tobytes())
            for ak, av in o.attrs.items():
                out[pre + k + "@" + ak] = np.asarray(av).tobytes() if not isinstance(av, (str, bytes)) else av
        else:
            walk(o, out, pre + k + "/")
for f in sorted(glob.glob(a + "/mil/*/fold*/*.h5")):
    g = b + f[len(a):]
    x, y = {}, {}
    walk(h5py.File(f, "r"), x)
    walk(h5py.File(g, "r"), y)
    n += 1
    if x != y:
        bad.append((f[len(a) + 1:], sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))[:5]))
    if f.endswith("attention.h5"):
        assert len([k for k in h5py.File(f, "r")]) > 0, f + " has no slide"
assert n >= 12, n
assert not bad, bad
print(n, "HDF5 files: same datasets and attributes")
PY
cat "$WORK/out"
check "(b) HDF5 content identical on 1 and 2 ranks" grep -q "same datasets" "$WORK/out"

# ---- (c) summary vs R pROC and direct counts ----
expect_rc 0 $PY - np2 <<'PY'
import sys, csv, json, glob
run = sys.argv[1]
S = json.load(open(run + "/mil/summary.json"))
with open("pooled.csv", "w") as out:
    out.write("model,fold,label,score\n")
    for m in S["models"]:
        name = m["model"]
        assert m["folds_done"] == 3, m
        for f in range(3):
            for r in csv.DictReader(open(f"{run}/mil/{name}/fold{f}/predictions.csv")):
                out.write(f"{name},{f},{r['label']},{r['prob_1']}\n")
PY
cat > proc.R <<'R'
suppressMessages(library(pROC))
d <- read.csv("pooled.csv")
for (m in unique(d$model)) {
  x <- d[d$model == m, ]
  r <- roc(x$label, x$score, levels = c(0, 1), direction = "<", quiet = TRUE)
  ci <- ci.auc(r, method = "delong", conf.level = 0.95)
  cat(sprintf("%s,pooled,%.15g,%.15g,%.15g\n", m, as.numeric(r$auc), ci[1], ci[3]))
  for (f in unique(x$fold)) {
    y <- x[x$fold == f, ]
    a <- if (length(unique(y$label)) == 2) as.numeric(roc(y$label, y$score, levels = c(0, 1), direction = "<", quiet = TRUE)$auc) else NA
    cat(sprintf("%s,%d,%.15g,NA,NA\n", m, f, a))
  }
}
R
expect_rc 0 Rscript proc.R
cp "$WORK/out" proc.out
cat proc.out
expect_rc 0 $PY - np2 proc.out <<'PY'
import sys, csv, json
run, proc = sys.argv[1:3]
S = {m["model"]: m for m in json.load(open(run + "/mil/summary.json"))["models"]}
R = {}
for line in open(proc):
    m, f, auc, lo, hi = line.strip().split(",")
    R[(m, f)] = (float(auc), float(lo) if lo != "NA" else None, float(hi) if hi != "NA" else None)
bad = []
def near(what, got, want, tol=1e-6):
    if got is None or abs(got - want) > tol:
        bad.append(f"{what}: tessera {got} pROC/count {want}")
for m, s in S.items():
    auc, lo, hi = R[(m, "pooled")]
    near(f"{m} pooled AUC", s["pooled_auc"], auc)
    near(f"{m} pooled CI lower", s["pooled_auc_ci95"][0], lo)
    near(f"{m} pooled CI upper", s["pooled_auc_ci95"][1], hi)
    per = {p["fold"]: p for p in s["per_fold"]}
    for f in range(3):
        rows = list(csv.DictReader(open(f"{run}/mil/{m}/fold{f}/predictions.csv")))
        js = json.load(open(f"{run}/mil/{m}/fold{f}/metrics.json"))
        y = [int(r["label"]) for r in rows]
        p = [int(r["pred"]) for r in rows]
        for r in rows:  # pred is the argmax of the probabilities (ties to the lower class)
            pr = [float(r["prob_0"]), float(r["prob_1"])]
            if int(r["pred"]) != (1 if pr[1] > pr[0] else 0):
                bad.append(f"{m} fold {f} {r['slide_id']}: pred {r['pred']} but probs {pr}")
            if abs(sum(pr) - 1) > 1e-6:
                bad.append(f"{m} fold {f} {r['slide_id']}: probs sum to {sum(pr)}")
        tp = sum(1 for a, b in zip(y, p) if a == 1 and b == 1)
        tn = sum(1 for a, b in zip(y, p) if a == 0 and b == 0)
        fp = sum(1 for a, b in zip(y, p) if a == 0 and b == 1)
        fn = sum(1 for a, b in zip(y, p) if a == 1 and b == 0)
        acc = (tp + tn) / len(y)
        bal = 0.5 * (tp / (tp + fn) + tn / (tn + fp))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        for key, want in (("accuracy", acc), ("balanced_accuracy", bal), ("f1", f1)):
            near(f"{m} fold {f} {key} (metrics.json)", js["test_" + key], want)
            near(f"{m} fold {f} {key} (summary.json)", per[f][key], want)
        near(f"{m} fold {f} AUC (metrics.json) vs pROC", js["test_auc"], R[(m, str(f))][0])
        near(f"{m} fold {f} AUC (summary.json) vs pROC", per[f]["auc"], R[(m, str(f))][0])
        assert js["n_test"] == len(rows), (js["n_test"], len(rows))
    print(m, "pooled AUC", s["pooled_auc"], s["pooled_auc_ci95"], "n", s["pooled_n"])
assert not bad, "\n".join(bad)
print("summary agrees with pROC and direct counts")
PY
cat "$WORK/out"
check "(c) summary.json: pooled AUC + DeLong CI = pROC, per-fold AUC = pROC, accuracy/balanced accuracy/F1 = counts" grep -q "summary agrees" "$WORK/out"

# ---- (d) bad input ----
# folds too many for the cohort: stops before any training
WANT_RC=2 mil_run toomany 1 --reconfigure --set mil.folds=50 --set mil.test_frac=0.05
sed 's/^/    /' toomany.log | tail -3
check "(d) too many folds: SPLIT_CLASS_TOO_SMALL" grep -q "SPLIT_CLASS_TOO_SMALL" toomany.log
check "(d) too many folds: no mil/ directory (nothing trained)" test ! -e toomany/mil
check "(d) too many folds: no splits written" test ! -e toomany/splits/splits.csv
check "(d) too many folds: no mil unit in the ledger" test "$(ledger_q toomany "select count(*) from units where stage='mil'")" = 0

# a splits file naming an unknown slide, at a known line
awk -F, 'NR == 7 { $3 = "S9999"; OFS = ","; print; next } { print }' OFS=, np2/splits/splits.csv > unknown.csv
WANT_RC=2 mil_run unknown 1 --reconfigure --set mil.splits="$WORK/unknown.csv"
sed 's/^/    /' unknown.log | tail -3
check "(d) unknown slide in mil.splits: MIL_SPLITS_UNKNOWN_SLIDE with file:line" grep -q "MIL_SPLITS_UNKNOWN_SLIDE.*unknown.csv:7: slide 'S9999'" unknown.log
check "(d) unknown slide in mil.splits: no mil/ directory" test ! -e unknown/mil
# the blank slide (labelled, no tile) named by a splits file is refused the same way
awk -F, 'NR == 2 { $3 = "S0011"; print; next } { print }' OFS=, np2/splits/splits.csv > blank.csv
WANT_RC=2 mil_run blanksplit 1 --reconfigure --set mil.splits="$WORK/blank.csv"
check "(d) blank slide in mil.splits: MIL_SPLITS_UNKNOWN_SLIDE blank.csv:2" grep -q "MIL_SPLITS_UNKNOWN_SLIDE.*blank.csv:2: slide 'S0011'" blanksplit.log

# a truncated feature file, read only by fold 0 (the splits file drops it from folds 1 and 2)
victim=S0005
awk -F, -v v=$victim 'NR == 1 || !($3 == v && $1 != 0)' np2/splits/splits.csv > trunc.csv
check "(d) trunc.csv keeps $victim in fold 0 only" test "$(grep -c ",$victim," trunc.csv)" = 1
rm -rf cohort/run
cp -a base cohort/run
f=cohort/run/features/resnet_tiny/$victim.h5
truncate -s $(($(stat -c %s "$f") / 2)) "$f"
expect_rc 1 mpirun -np 2 "$TESSERA" run cohort/config.yaml "${sets[@]}" --stages mil --reconfigure --set mil.splits="$WORK/trunc.csv"
cp "$WORK/out" trunc.log
mv cohort/run trunc
grep -E "^mil:|$victim" trunc.log | sed 's/^/    /' | head -8
# NOTE for stages/mil.c read_bag: a truncated (existing) file fails H5Fopen and is reported as
# MIL_FEATURES_MISSING "cannot open"; MIL_FEATURES_BAD would say what happened. Both are accepted
# here until that is decided; tighten to MIL_FEATURES_BAD then.
check "(d) truncated features: each fold-0 unit fails with a token naming $victim" \
  test "$(grep -cE "unit (abmil|clam_sb):fold0.*MIL_FEATURES_(BAD|MISSING).*slide $victim" trunc.log)" -ge 2
check "(d) truncated features: ledger: the 2 fold-0 units failed, the 4 others done" \
  test "$(ledger_q trunc "select group_concat(unit || '=' || state, ' ') from (select unit, state from units where stage='mil' order by unit)")" = \
       "abmil:fold0=failed abmil:fold1=done abmil:fold2=done clam_sb:fold0=failed clam_sb:fold1=done clam_sb:fold2=done"
check "(d) truncated features: folds 1 and 2 wrote their outputs" test -s trunc/mil/abmil/fold2/predictions.csv -a -s trunc/mil/clam_sb/fold1/model.h5
check "(d) truncated features: the summary covers the 2 folds that ran" grep -q '"folds_done": 2' trunc/mil/summary.json

# ---- (e) no model: skipped ----
rm -rf cohort/run
cp -a base cohort/run
expect_rc 0 "$TESSERA" run cohort/config.yaml "${sets[@]}" --stages mil --reconfigure --set mil.models=
grep -E "^mil" "$WORK/out" | sed 's/^/    /'
check "(e) mil.models empty: 'mil: skipped' with how to enable" grep -q "^mil: skipped.*mil.models" "$WORK/out"
check "(e) mil.models empty: no mil/ directory" test ! -e cohort/run/mil

# ---- (f) balanced sampling ----
check "(f) unbalanced: draws per class = training counts x epochs" $PY - np2 <<'PY'
import csv, json, sys
run = sys.argv[1]
sp = list(csv.DictReader(open(run + "/splits/splits.csv")))
for m in ("abmil", "clam_sb"):
    for f in range(3):
        js = json.load(open(f"{run}/mil/{m}/fold{f}/metrics.json"))
        n = [sum(1 for r in sp if r["fold"] == str(f) and r["set"] == "train" and r["label"] == str(c)) for c in (0, 1)]
        want = [k * js["epochs_run"] for k in n]
        assert js["balanced"] is False and js["train_draws_per_class"] == want, (m, f, js["train_draws_per_class"], want)
print("draws = counts x epochs")
PY
$PY - np2/splits/splits.csv imb.csv <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
keep, seen = [], {}
for r in rows:  # the training sets keep their first 2 positive slides
    if r["set"] == "train" and r["label"] == "1":
        seen[r["fold"]] = seen.get(r["fold"], 0) + 1
        if seen[r["fold"]] > 2:
            continue
    keep.append(r)
w = csv.DictWriter(open(sys.argv[2], "w", newline=""), fieldnames=list(rows[0].keys()), lineterminator="\n")
w.writeheader(); w.writerows(keep)
PY
mil_run balanced 2 --reconfigure --set mil.splits="$WORK/imb.csv" --set mil.models=abmil --set mil.balanced=true --set mil.min_epochs=8
check "(f) balanced: positives (2 of the training bags) are about half of the draws" $PY - balanced imb.csv <<'PY'
import csv, json, sys
run, imb = sys.argv[1:3]
sp = list(csv.DictReader(open(imb)))
tot = [0, 0]
for f in range(3):
    js = json.load(open(f"{run}/mil/abmil/fold{f}/metrics.json"))
    d = js["train_draws_per_class"]
    n = [sum(1 for r in sp if r["fold"] == str(f) and r["set"] == "train" and r["label"] == str(c)) for c in (0, 1)]
    assert js["balanced"] is True and sum(d) == sum(n) * js["epochs_run"], (f, d, n)
    print("fold", f, "training bags per class", n, "drawn", d)
    tot = [a + b for a, b in zip(tot, d)]
share = tot[1] / sum(tot)
print("positive share of draws %.3f (without balancing it would be %.3f)" % (share, 2 * 3 / sum(sum(1 for r in sp if r["fold"] == str(f) and r["set"] == "train") for f in range(3))))
sys.exit(0 if 0.38 <= share <= 0.62 else 1)
PY
finish
