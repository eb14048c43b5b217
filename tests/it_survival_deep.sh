#!/usr/bin/env bash
# labels: survival mpi
# The deep survival models against the synthetic generator's ground truth (issue 12). The
# generator draws each patient's survival from a Cox model it records (truth/cox_truth.csv:
# tumour burden 3.0, age, grade, stage) and the tumour burden of each slide (truth/slides.csv);
# five genes track the burden (truth/genomic_truth.csv, among 300). What the truth implies, on
# 240 patients (small slides, resnet_tiny features of 64 px tiles at 1 um/px, 3 folds):
#   - amil sees the burden only through the slide: its pooled test risk must follow the true
#     burden (Spearman > 0.5, p < 0.01) and its pooled test C must beat chance (bootstrap CI
#     above 0.5) and come near the C of the true burden itself on the same patients (within 0.06;
#     with 32 px tiles at 1 um/px it is ~0.65 = the oracle's; 64 px tiles mix tumour and stroma
#     and give ~0.59);
#   - mmf_bilinear (slides + genes + clinical) should be at least as good as the better of its
#     branches (amil, snn) within its bootstrap CI, as issue 12 expects: it is NOT here (0.57 vs
#     amil 0.65: the genomic branch, 300 genes of which 5 carry the signal for ~160 training
#     patients, overfits and drags the fusion down). The test prints that comparison as NOT MET
#     without asserting it, so that the gap stays visible (issue 12's closing note).
# The truth does NOT imply that the slide models beat cox_clinical here: in this generator the
# clinical covariates carry more of the hazard than the burden (the test prints the oracle C of
# each part, e.g. burden alone ~0.60 vs clinical alone ~0.69), and the genes are 5 of 300 for
# ~160 training patients (snn is printed, not asserted). Independent checks of the stage's
# arithmetic: the pooled C (Harrell's, written here), the Breslow survival at the calibration
# time of cox_clinical from its training rows, the calibration groups (quintiles, KM written
# here). Then the weighted Cox loss (events weighted 3) on amil, and its outputs byte-identical
# under 1 and 2 ranks.
. "$(dirname "$0")/lib.sh"
cd "$WORK"
expect_rc 0 "$TESSERA" synth cohort --slides 240 --size 1600 --seed 3 --quiet
common=(--set tissue.min_area_um2=2000 --set extract.encoder=resnet_tiny --set tile.size=32 --set tile.mpp=1 --set survival.folds=3
        --set survival.epochs=15 --set survival.lr=5e-4 --set survival.weight_decay=1e-4 --set survival.bootstrap=500)
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml "${common[@]}" --set survival.models=cox_clinical,amil,snn,mmf_bilinear
check "(truth) amil ranks by the true burden; the stage's pooled C, Breslow S(t_cal) and calibration recomputed (mmf vs its branches printed, not asserted)" $PY - cohort <<'PY'
import csv, json, math, sys
import numpy as np
from scipy.stats import spearmanr
d = sys.argv[1]
run = d + "/run/survival"
sl = {r["slide_id"]: r for r in csv.DictReader(open(d + "/truth/slides.csv"))}
slides_of = {}
for r in csv.DictReader(open(d + "/cohort.csv")): slides_of.setdefault(r["patient_id"], []).append(r["slide_id"])
clin = {r["patient_id"]: r for r in csv.DictReader(open(d + "/clinical.csv"))}
truth = {r["covariate"]: float(r["beta"]) for r in csv.DictReader(open(d + "/truth/cox_truth.csv"))}
summ = {m["model"]: m for m in json.load(open(run + "/summary.json"))["models"]}
ok = True

def harrell(t, e, r):  # Harrell's C as R's concordance counts it: ties in risk 1/2; a death and a
    num = den = 0.0     # censoring at the same time are comparable (the censored one outlived it), two deaths are not
    for i in range(len(t)):
        if not e[i]: continue
        m = (t > t[i]) | ((t == t[i]) & (e == 0))
        den += m.sum(); num += (r[m] < r[i]).sum() + 0.5 * (r[m] == r[i]).sum()
    return num / den

def rows(model):
    out = []
    for f in range(3):
        out += [dict(r, fold=f) for r in csv.DictReader(open(f"{run}/{model}/fold{f}/risks.csv"))]
    return out

def burden(p): return np.mean([float(sl[s]["tumour_burden"]) for s in slides_of[p]])

# every patient left out is one whose slides have no tile (the tile stage's files say so)
import h5py
for r in csv.DictReader(open(run + "/excluded.csv")):
    tiles = [h5py.File(f"{d}/run/tiles/{s}.h5", "r")["coords"].shape[0] for s in slides_of[r["patient_id"]]]
    good = r["token"] == "SURV_NO_FEATURES" and sum(tiles) == 0
    ok &= good
    print("left out", r["patient_id"], r["token"], "tiles per slide:", tiles, "blank per truth:", [sl[s]["blank"] for s in slides_of[r["patient_id"]]],
          "ok" if good else "WRONG")

test = {}
for m in ["cox_clinical", "amil", "snn", "mmf_bilinear"]:
    tr = [r for r in rows(m) if r["set"] == "test"]
    t = np.array([float(r["time"]) for r in tr]); e = np.array([int(r["event"]) for r in tr]); rk = np.array([float(r["risk"]) for r in tr])
    c = harrell(t, e, rk)
    pt = summ[m]["pooled_test"]
    lo, hi = pt["c_index_boot_ci95"]
    rho = spearmanr(rk, [burden(r["patient_id"]) for r in tr])[0]
    test[m] = (c, lo, hi, rho, tr)
    good = abs(c - pt["c_index"]) < 1e-9 and pt["n"] == len(tr) and lo < pt["c_index"] < hi
    ok &= good
    print("%-13s pooled test C %.3f [%.3f, %.3f] (n %d; recomputed %.6f %s), mean over folds %.3f +- %.3f, IBS %.3f +- %.3f, Spearman(risk, true burden) %.3f"
          % (m, pt["c_index"], lo, hi, pt["n"], c, "ok" if good else "DIFFERS", summ[m]["c_index_mean"], summ[m]["c_index_sd"],
             summ[m]["ibs_mean"], summ[m]["ibs_sd"], rho))
# oracle C of the truth's parts on the same pooled test patients
tr = test["amil"][4]
t = np.array([float(r["time"]) for r in tr]); e = np.array([int(r["event"]) for r in tr])
tb = np.array([burden(r["patient_id"]) for r in tr])
cl = np.array([truth["age_per_10y"] / 10 * float(clin[r["patient_id"]]["age"]) + truth["grade"] * float(clin[r["patient_id"]]["grade"])
               + truth["stage"] * float(clin[r["patient_id"]]["stage"]) for r in tr])
c_tb, c_cl, c_all = harrell(t, e, tb), harrell(t, e, cl), harrell(t, e, truth["tumour_burden"] * tb + cl)
print("oracle C on these test patients: true burden %.3f, true clinical part %.3f, true hazard %.3f" % (c_tb, c_cl, c_all))
c, lo, hi, rho, _ = test["amil"]
p_rho = spearmanr(test["amil"][4] and [float(r["risk"]) for r in test["amil"][4]], tb)[1]
a = rho > 0.5 and p_rho < 0.01 and lo > 0.5 and c >= c_tb - 0.06
ok &= a
print("amil: Spearman(risk, burden) %.3f > 0.5 (p %.2g < 0.01), CI lower %.3f > 0.5, C %.3f >= oracle burden C - 0.06 (%.3f): %s"
      % (rho, p_rho, lo, c, c_tb - 0.06, "ok" if a else "FAIL"))
cm, lom, him, _, _ = test["mmf_bilinear"]
best = max(test["amil"][0], test["snn"][0])
a = cm >= best - (him - lom) / 2
print("mmf_bilinear C %.3f >= better branch %.3f - CI half-width %.3f: %s (not asserted: a known gap, see the header)"
      % (cm, best, (him - lom) / 2, "met" if a else "NOT MET"))
# Breslow S(t_cal) of cox_clinical, fold 0, from its training rows
r0 = [r for r in rows("cox_clinical") if r["fold"] == 0]
met = json.load(open(run + "/cox_clinical/fold0/metrics.json"))
tc = met["calibration_time"]
trn = [r for r in r0 if r["set"] == "train"]
tt = np.array([float(r["time"]) for r in trn]); te = np.array([int(r["event"]) for r in trn]); tr_r = np.array([float(r["risk"]) for r in trn])
H = sum(te[tt == s].sum() / np.exp(tr_r[tt >= s]).sum() for s in np.unique(tt[(te == 1) & (tt <= tc)]))
err = max(abs(math.exp(-H * math.exp(float(r["risk"]))) - float(r["surv_at_tcal"])) for r in r0)
ok &= err < 1e-9
print("cox_clinical fold 0: Breslow S(t_cal = %.4g) recomputed, max |diff| %.2e" % (tc, err))
# calibration groups of amil: quintiles of the pooled test predictions, KM at t_cal
tr = test["amil"][4]
sv = np.array([float(r["surv_at_tcal"]) for r in tr]); o = np.argsort(sv, kind="stable")
cal = summ["amil"]["pooled_test"]["calibration"]
n = len(o); G = 5
for g in range(G):
    idx = o[n * g // G: n * (g + 1) // G]
    t = np.array([float(tr[i]["time"]) for i in idx]); e = np.array([int(tr[i]["event"]) for i in idx])
    s = 1.0
    for u in np.unique(t[e == 1]):
        if u > tc: break
        s *= 1 - ((t == u) & (e == 1)).sum() / (t >= u).sum()
    obs = s if t.max() >= tc else None
    want = cal[g]
    good = want["n"] == len(idx) and abs(want["predicted"] - sv[idx].mean()) < 1e-9 and (obs is None and want["observed"] is None or abs(want["observed"] - obs) < 1e-9)
    ok &= good
    print("calibration group %d: n %d, predicted %.3f, observed %s [%s]: %s" % (g + 1, len(idx), sv[idx].mean(), want["observed"], want["observed_ci95"], "ok" if good else "DIFFERS"))
sys.exit(0 if ok else 1)
PY
# the weighted Cox loss on amil, and the same bytes under 1 and 2 ranks
cox=(--set survival.models=amil --set survival.loss=cox --set survival.cox_weights=events --set survival.event_weight=3 --set survival.batch=32)
cp -r cohort cohort1
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml --reconfigure --stages survival "${common[@]}" "${cox[@]}"
expect_rc 0 mpirun -np 1 "$TESSERA" run cohort1/config.yaml --reconfigure --stages survival "${common[@]}" "${cox[@]}"
check "(truth) amil on the weighted Cox loss still ranks by the true burden" $PY - cohort <<'PY'
import csv, json, sys
import numpy as np
from scipy.stats import spearmanr
d = sys.argv[1]
sl = {r["slide_id"]: float(r["tumour_burden"]) for r in csv.DictReader(open(d + "/truth/slides.csv"))}
sof = {r["patient_id"]: r["slide_id"] for r in csv.DictReader(open(d + "/cohort.csv"))}
rk, tb = [], []
for f in range(3):
    m = json.load(open(f"{d}/run/survival/amil/fold{f}/model.json"))
    assert m["loss"] == "cox" and m["case_weights"] == "events", m
    for r in csv.DictReader(open(f"{d}/run/survival/amil/fold{f}/risks.csv")):
        if r["set"] == "test": rk.append(float(r["risk"])), tb.append(sl[sof[r["patient_id"]]])
rho, p = spearmanr(rk, tb)
print("amil (cox loss, events x3): Spearman(test risk, true burden) %.3f (p %.2g; want > 0.3 with p < 0.01)" % (rho, p))
sys.exit(0 if rho > 0.3 and p < 0.01 else 1)
PY
same=1
for f in 0 1 2; do
  for x in risks.csv model.h5 metrics.json; do
    cmp -s "cohort/run/survival/amil/fold$f/$x" "cohort1/run/survival/amil/fold$f/$x" || { same=0; echo "differs: fold$f/$x"; }
  done
done
check "amil's risks, weights and metrics byte-identical under 1 and 2 ranks" test $same = 1
finish
