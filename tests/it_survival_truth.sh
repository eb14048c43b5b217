#!/usr/bin/env bash
# labels: survival mpi
# Ground truth for the survival stage's clinical baseline: the synthetic generator draws survival
# times from a Cox model it records (truth/cox_truth.csv: tumour burden 3.0, age 0.25 per 10
# years, grade 0.35, stage 0.5; sex has no effect). On 400 patients, the cox_clinical fit of every
# fold's training part (~260 patients) must hold the true clinical coefficients inside its 95%
# confidence intervals (exp of the HR CI of model.json: age per year = 0.025, sex = 0), and its
# test C-index must beat chance. The tumour burden is not a clinical covariate: it is what the
# slide and genomic models will add.
. "$(dirname "$0")/lib.sh"
cd "$WORK"
expect_rc 0 "$TESSERA" synth cohort --slides 400 --size 800 --seed 3 --quiet
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml --set survival.models=cox_clinical --set survival.folds=3 --stages survival
check "(truth) every fold's 95% CI holds the true clinical coefficients; test C > 0.55" $PY - cohort <<'PY'
import csv, json, math, sys
d = sys.argv[1]
truth = {r["covariate"]: float(r["beta"]) for r in csv.DictReader(open(d + "/truth/cox_truth.csv"))}
want = {"age": truth["age_per_10y"] / 10, "sex": 0.0, "grade": truth["grade"], "stage": truth["stage"]}
ok = True
for f in range(3):
    m = json.load(open(f"{d}/run/survival/cox_clinical/fold{f}/model.json"))
    me = json.load(open(f"{d}/run/survival/cox_clinical/fold{f}/metrics.json"))
    for c in m["coefficients"]:
        lo, hi = math.log(c["hr_ci95"][0]), math.log(c["hr_ci95"][1])
        inside = lo <= want[c["name"]] <= hi
        ok &= inside
        print("fold %d %-5s beta %.4f [%.4f, %.4f] truth %.4f %s" % (f, c["name"], c["coef"], lo, hi, want[c["name"]], "" if inside else "OUTSIDE"))
    print("fold %d test C %.3f (se %.3f), Uno's C %.3f" % (f, me["c_index"], me["c_index_se"], me["uno_c"]))
    ok &= me["c_index"] > 0.55
sys.exit(0 if ok else 1)
PY
finish
