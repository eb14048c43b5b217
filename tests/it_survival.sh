#!/usr/bin/env bash
# labels: survival mpi
# The survival stage (first part: patients, splits, the clinical Cox baseline, test-part
# evaluation) on a synthetic cohort of 60 patients whose clinical table is edited to hold every
# kind of bad row.
#  (a) exclusions: a patient with slides but no clinical row (SURV_NO_CLINICAL), a clinical row
#      without slides (SURV_NO_SLIDE), an empty time (SURV_NO_TIME), a text time (SURV_BAD_TIME),
#      a negative time (SURV_NEGATIVE_TIME), an event 2 (SURV_BAD_EVENT), an empty covariate
#      (SURV_MISSING_COVARIATE): each listed in survival/excluded.csv with its token and CSV
#      line, none in the splits; everyone else in them.
#  (b) splits: every study patient in exactly one set per fold, the test parts of the folds
#      disjoint, each test part holding events and censorings.
#  (c) per fold, against R (survival::coxph, concordance, survdiff) on the training and test
#      patients of survival/splits.csv joined with the clinical CSV in R: the coefficients and
#      their SEs (1e-6), Harrell's C of the test risks (reverse = TRUE) and its SE, the risk
#      groups (test risk > median of the training risks), the log-rank p and the hazard ratio
#      high vs low with its CI (null where R's is infinite: all test events in one group).
#  (d) reproducibility: 1 rank and 2 ranks give byte-identical survival/ files.
#  (f) cox_lasso (clinical + genomic, elastic net; the solver itself is checked against glmnet in
#      test_coxnet): a patient without a genomic row is left out (SURV_NO_GENOMIC) of every model;
#      the lambda kept is the grid's best validation log partial likelihood; the test risks equal
#      x'beta recomputed here from the CSVs and model.json's coefficients.
#  (e) a covariate column that does not exist stops the plan (exit 2, SURV_MISSING_COLUMN naming
#      the file and column), nothing fitted.
. "$(dirname "$0")/lib.sh"
cd "$WORK"
command -v Rscript >/dev/null || { fail "Rscript (r-base-core) is missing: the survival oracle"; finish; }

expect_rc 0 "$TESSERA" synth cohort --slides 60 --size 1200 --seed 11 --quiet
expect_rc 0 $PY - cohort/clinical.csv <<'PY'
import csv, sys
p = sys.argv[1]
rows = list(csv.DictReader(open(p)))
by = {r["patient_id"]: r for r in rows}
by["P0003"]["time"] = ""          # SURV_NO_TIME
by["P0004"]["time"] = "soon"      # SURV_BAD_TIME
by["P0005"]["time"] = "-2.5"      # SURV_NEGATIVE_TIME
by["P0006"]["event"] = "2"        # SURV_BAD_EVENT
by["P0007"]["age"] = ""           # SURV_MISSING_COVARIATE
rows = [r for r in rows if r["patient_id"] != "P0008"]  # SURV_NO_CLINICAL
extra = dict(rows[0]); extra["patient_id"] = "P9999"; rows.append(extra)  # SURV_NO_SLIDE
w = csv.DictWriter(open(p, "w", newline=""), fieldnames=list(rows[0].keys()), lineterminator="\n")
w.writeheader(); w.writerows(rows)
PY
grep -v '^P0009,' cohort/genomic.csv > g.csv && mv g.csv cohort/genomic.csv   # SURV_NO_GENOMIC (with cox_lasso)
sets=(--set extract.encoder=resnet_tiny --set tile.size=128 --set survival.models=cox_clinical --set survival.folds=3
      --set survival.time_bins=2 --stages survival)
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml "${sets[@]}"
grep -E '^survival' "$WORK/out" | sed 's/^/    /'
R=cohort/run
mv $R np2

# ---- (a) exclusions ----
check "(a) every bad patient listed with its token and line, none in the splits" $PY - np2 cohort/clinical.csv <<'PY'
import csv, sys
run, clin = sys.argv[1:3]
ex = {r["patient_id"]: r for r in csv.DictReader(open(run + "/survival/excluded.csv"))}
want = {"P0003": "SURV_NO_TIME", "P0004": "SURV_BAD_TIME", "P0005": "SURV_NEGATIVE_TIME", "P0006": "SURV_BAD_EVENT",
        "P0007": "SURV_MISSING_COVARIATE", "P0008": "SURV_NO_CLINICAL", "P9999": "SURV_NO_SLIDE"}
lines = {r["patient_id"]: i + 2 for i, r in enumerate(csv.DictReader(open(clin)))}
ok = True
for p, tok in want.items():
    got = ex.get(p, {}).get("token")
    if got != tok:
        print("patient", p, "token", got, "want", tok); ok = False
    elif p in lines and (":%d:" % lines[p]) not in ex[p]["detail"]:
        print("patient", p, "detail lacks line", lines[p], ex[p]["detail"]); ok = False
extra = set(ex) - set(want)
if extra: print("unexpected exclusions", extra); ok = False
sp = {r["patient_id"] for r in csv.DictReader(open(run + "/survival/splits.csv"))}
if sp & set(want): print("excluded patients in the splits", sp & set(want)); ok = False
study = set(lines) - set(want)
if sp != study: print("splits miss", study - sp, "or add", sp - study); ok = False
print(len(sp), "patients in the study,", len(ex), "left out")
sys.exit(0 if ok else 1)
PY

# ---- (b) splits ----
check "(b) splits: one set per fold, disjoint covering test parts with events and censorings" $PY - np2 <<'PY'
import csv, sys, collections
rows = list(csv.DictReader(open(sys.argv[1] + "/survival/splits.csv")))
pats = {r["patient_id"] for r in rows}
ok = True
tested = collections.Counter()
for f in sorted({r["fold"] for r in rows}):
    fr = [r for r in rows if r["fold"] == f]
    c = collections.Counter(r["patient_id"] for r in fr)
    if set(c) != pats or max(c.values()) != 1: print("fold", f, "not one set per patient"); ok = False
    test = [r for r in fr if r["set"] == "test"]
    ev = sum(int(r["event"]) for r in test)
    print("fold", f, "test", len(test), "events", ev)
    if ev == 0 or ev == len(test): ok = False
    tested.update(r["patient_id"] for r in test)
if max(tested.values()) != 1: print("test parts not disjoint"); ok = False
print(len(tested), "of", len(pats), "patients tested (3 folds x test_frac 0.2)")
sys.exit(0 if ok else 1)
PY

# ---- (c) against R ----
cat > oracle.R <<'R'
suppressMessages(library(survival))
args <- commandArgs(TRUE); run <- args[1]; clin <- read.csv(args[2])
sp <- read.csv(file.path(run, "survival/splits.csv"))
out <- c()
for (f in sort(unique(sp$fold))) {
  tr <- merge(sp[sp$fold == f & sp$set == "train", c("patient_id")], clin, by.x = 1, by.y = "patient_id")
  names(tr)[1] <- "patient_id"
  te <- merge(sp[sp$fold == f & sp$set == "test", c("patient_id")], clin, by.x = 1, by.y = "patient_id")
  names(te)[1] <- "patient_id"
  tr$time <- as.numeric(tr$time); te$time <- as.numeric(te$time)
  fit <- coxph(Surv(time, event) ~ age + sex + grade + stage, data = tr, ties = "efron")
  b <- coef(fit); se <- sqrt(diag(vcov(fit)))
  rtr <- as.vector(as.matrix(tr[, c("age", "sex", "grade", "stage")]) %*% b)
  rte <- as.vector(as.matrix(te[, c("age", "sex", "grade", "stage")]) %*% b)
  cc <- concordance(Surv(time, event) ~ rte, data = te, reverse = TRUE)
  g <- as.integer(rte > quantile(rtr, 0.5))
  lr <- survdiff(Surv(te$time, te$event) ~ g)
  p <- pchisq(lr$chisq, 1, lower.tail = FALSE)
  hf <- coxph(Surv(te$time, te$event) ~ g)
  out <- c(out, paste(f, paste(sprintf("%.15g", c(b, se, cc$concordance, sqrt(cc$var), p, exp(coef(hf)), exp(confint(hf)))), collapse = ","),
                      paste(te$patient_id[g == 1], collapse = ";"), sep = ","))
}
writeLines(out)
R
Rscript oracle.R np2 cohort/clinical.csv > r.csv 2> r.err || { fail "(c) R failed"; cat r.err; }
check "(c) coefficients, SEs, Harrell's C and SE, risk groups, log-rank p, HR and CI equal R" $PY - np2 r.csv <<'PY'
import csv, json, sys
run, rcsv = sys.argv[1:3]
ok, n = True, 0
def close(what, got, want, tol=1e-6):
    global ok
    if got is None or abs(got - want) > tol * max(1.0, abs(want)):
        print("MISMATCH", what, got, want); ok = False
for line in open(rcsv):
    v = line.strip().split(",")
    f = int(v[0]); num = list(map(float, v[1:15])); high = set(v[15].split(";")) if v[15] else set()
    d = f"{run}/survival/cox_clinical/fold{f}"
    mj = json.load(open(d + "/model.json")); me = json.load(open(d + "/metrics.json"))
    for j, c in enumerate(mj["coefficients"]):
        close(f"fold {f} coef {c['name']}", c["coef"], num[j])
        close(f"fold {f} se {c['name']}", c["se"], num[4 + j])
    close(f"fold {f} Harrell C", me["c_index"], num[8])
    close(f"fold {f} C se", me["c_index_se"], num[9])
    close(f"fold {f} log-rank p", me["logrank_p"], num[10])
    if num[13] == float("inf"):  # R: an infinite estimate (all events on one side): tessera says null
        if me["hr_high_vs_low"] is not None: print("fold", f, "HR should be null, is", me["hr_high_vs_low"]); ok = False
    else:
        close(f"fold {f} HR", me["hr_high_vs_low"], num[11], 1e-5)
        close(f"fold {f} HR lower", me["hr_ci95"][0], num[12], 1e-5)
        close(f"fold {f} HR upper", me["hr_ci95"][1], num[13], 1e-5)
    got_high = {r["patient_id"] for r in csv.DictReader(open(d + "/risks.csv")) if r["set"] == "test" and r["group"] == "high"}
    if got_high != high: print("fold", f, "high-risk group differs", got_high ^ high); ok = False
    print("fold", f, "C %.3f (se %.3f), log-rank p %.3g, HR %.2f [%.2f, %.2f]: R agrees" % tuple(num[8:14]))
    n += 1
sys.exit(0 if ok and n == 3 else 1)
PY

# ---- (d) reproducibility ----
expect_rc 0 "$TESSERA" run cohort/config.yaml "${sets[@]}"
check "(d) 1 rank = 2 ranks, byte for byte" diff -r np2/survival $R/survival

# ---- (f) cox_lasso ----
rm -rf $R
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml "${sets[@]}" --set survival.models=cox_clinical,cox_lasso
check "(f) cox_lasso: SURV_NO_GENOMIC, lambda = best validation loglik, risks = x'beta" $PY - $R cohort <<'PY'
import csv, json, sys
run, co = sys.argv[1:3]
ex = {r["patient_id"]: r["token"] for r in csv.DictReader(open(run + "/survival/excluded.csv"))}
ok = ex.get("P0009") == "SURV_NO_GENOMIC"
sp = {r["patient_id"] for r in csv.DictReader(open(run + "/survival/splits.csv"))}
ok &= "P0009" not in sp
clin = {r["patient_id"]: r for r in csv.DictReader(open(co + "/clinical.csv"))}
gen = {r["patient_id"]: r for r in csv.DictReader(open(co + "/genomic.csv"))}
for f in range(3):
    m = json.load(open(f"{run}/survival/cox_lasso/fold{f}/model.json"))
    v = m["val_loglik"]
    best = max(range(len(v)), key=lambda k: v[k] if v[k] is not None else -1e300)
    ok &= abs(m["lambda"] - m["lambda_grid"][best]) <= 1e-12 * m["lambda"]
    err = 0.0
    for r in csv.DictReader(open(f"{run}/survival/cox_lasso/fold{f}/risks.csv")):
        p = r["patient_id"]
        x = {**{k: float(clin[p][k]) for k in ("age", "sex", "grade", "stage")}, **{k: float(vv) for k, vv in gen[p].items() if k != "patient_id"}}
        want = sum(c["coef"] * x[c["name"]] for c in m["coefficients"])
        err = max(err, abs(float(r["risk"]) - want))
    ok &= err < 1e-9
    print("fold", f, "lambda %.4g (grid %d of %d), %d nonzero, max |risk - x'beta| %.2e" % (m["lambda"], best + 1, len(v), m["nonzero"], err))
s = json.load(open(run + "/survival/summary.json"))
for mm in s["models"]: print(mm["model"], "test C %.3f +- %.3f" % (mm["c_index_mean"], mm["c_index_sd"]))
sys.exit(0 if ok else 1)
PY

# ---- (e) a missing column ----
rm -rf $R
expect_rc 2 "$TESSERA" run cohort/config.yaml "${sets[@]}" --set survival.covariates=age,ecog
check "(e) SURV_MISSING_COLUMN names the file and the column" grep -q "SURV_MISSING_COLUMN: .*clinical.csv: no column 'ecog'" "$WORK/out"
check "(e) nothing fitted" test ! -e $R/survival/splits.csv

# ---- (g) deep models' configuration errors stop the run before anything runs ----
rm -rf $R
expect_rc 2 "$TESSERA" run cohort/config.yaml "${sets[@]}" --set survival.models=snn --set cohort.genomic=
check "(g) snn without cohort.genomic: SURV_NO_GENOMIC_TABLE" grep -q "SURV_NO_GENOMIC_TABLE: .*snn uses genomic data: set cohort.genomic" "$WORK/out"
expect_rc 2 "$TESSERA" run cohort/config.yaml "${sets[@]}" --set survival.models=amil --set survival.loss=deephit
check "(g) an unknown loss: CONFIG_RANGE naming the key" grep -q "CONFIG_RANGE: survival.loss: 'deephit' is neither nll nor cox" "$WORK/out"
expect_rc 2 "$TESSERA" run cohort/config.yaml "${sets[@]}" --set survival.models=amil --set survival.cox_weights=heavy
check "(g) an unknown weight scheme: CONFIG_RANGE listing the schemes" grep -q "CONFIG_RANGE: survival.cox_weights: 'heavy' is not one of none, events, inverse_time_bin_frequency" "$WORK/out"
expect_rc 2 "$TESSERA" run cohort/config.yaml "${sets[@]}" --set survival.models=amil,deepsurv
check "(g) an unknown model: CONFIG_RANGE listing the known ones" grep -q "CONFIG_RANGE: survival.models: unknown model 'deepsurv' (known: cox_clinical, cox_lasso, amil, snn, mmf_concat, mmf_bilinear, coattn)" "$WORK/out"
check "(g) nothing ran" test ! -e $R/ledger.sqlite
finish
