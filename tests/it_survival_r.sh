#!/usr/bin/env bash
# labels: survival r
# it_survival_r.sh — live comparison of `tessera cox` / `tessera km` with R's survival package
# (Rscript) on generated data: strata, case weights, heavy ties, a perfectly separating
# covariate (R warns "Loglik converged before variable ..."; tessera must warn too), plus
# malformed CSV input that must fail with exit code 1 and a token naming file:line:column.
# Needs: $TESSERA (the built binary), Rscript with the survival package.
set -u
: "${TESSERA:?TESSERA must point to the tessera binary}"
if ! command -v Rscript >/dev/null || ! Rscript -e 'library(survival)' >/dev/null 2>&1; then
  echo "FAIL: Rscript with the survival package is not installed (scripts/setup.sh installs r-base-core r-cran-survival)"; exit 1
fi
if [ ! -x "$TESSERA" ]; then echo "FAIL: $TESSERA is not built"; exit 1; fi
if ! "$TESSERA" cox --help 2>/dev/null | grep -q "usage: tessera cox"; then
  echo "FAIL: $TESSERA has no working cox subcommand (dispatch in pipeline/main.c?)"; exit 1
fi
work=$(mktemp -d /tmp/it_survival.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail=0
failed() { echo "FAIL: $*"; fail=1; }

# ---- 1. generated data, written by R so that both sides read the same bytes
Rscript - "$work" <<'REOF' || { echo "FAIL: R data generation"; exit 1; }
library(survival)
dir <- commandArgs(TRUE)[1]
set.seed(42)
gen <- function(n, p, ties = FALSE) {
  x <- matrix(rnorm(n * p), n, p); colnames(x) <- paste0("x", 1:p)
  t <- rexp(n, exp(drop(x %*% seq(0.5, -0.5, length.out = p))))
  c <- rexp(n, 0.3)
  time <- pmin(t, c); if (ties) time <- ceiling(time * 4) / 4
  data.frame(time = time, event = as.integer(t <= c), x)
}
d <- gen(400, 3); d$st <- sample(1:3, 400, TRUE); d$w <- round(runif(400, 0.5, 3), 2)
write.csv(d, file.path(dir, "strata_weights.csv"), row.names = FALSE)
d <- gen(600, 2, ties = TRUE); d$grp <- sample(1:3, 600, TRUE)
write.csv(d, file.path(dir, "ties.csv"), row.names = FALSE)
d <- gen(60, 2); d$sep <- as.integer(d$time < median(d$time) & d$event == 1)
write.csv(d, file.path(dir, "separation.csv"), row.names = FALSE)
REOF

run() { # name, csv, extra args...
  local name=$1; shift
  "$TESSERA" cox "$@" --json >"$work/$name.json" 2>"$work/$name.err"
  local rc=$?
  [ $rc -eq 0 ] || failed "tessera cox $* exited $rc: $(cat "$work/$name.err")"
}
for ties in efron breslow; do
  run sw_$ties "$work/strata_weights.csv" --time time --event event --ties $ties --strata st --weights w x1 x2 x3
  run w_$ties "$work/strata_weights.csv" --time time --event event --ties $ties --weights w x1 x2 x3
  run ties_$ties "$work/ties.csv" --time time --event event --ties $ties x1 x2
done
run sep "$work/separation.csv" --time time --event event x1 sep
"$TESSERA" km "$work/ties.csv" --time time --event event --group grp --json >"$work/km.json" 2>"$work/km.err" \
  || failed "tessera km exited $?: $(cat "$work/km.err")"

# ---- 2. R fits the same models and compares with tessera's JSON
Rscript - "$work" <<'REOF' || fail=1
suppressMessages(library(survival))
dir <- commandArgs(TRUE)[1]
bad <- 0
num <- function(txt, key) { # scalar or array values of KEY, all occurrences, null -> NA
  m <- regmatches(txt, gregexpr(paste0('"', key, '":(\\[[^]]*\\]|null|[-+0-9.eE]+)'), txt))[[1]]
  v <- unlist(strsplit(gsub("[][]", "", sub("^[^:]*:", "", m)), ","))
  suppressWarnings(as.numeric(v))
}
cmp <- function(what, got, want, tol, rel = TRUE) {
  err <- if (rel) abs(got - want) / pmax(abs(want), 1e-300) else abs(got - want)
  if (length(got) != length(want) || any(!is.finite(err)) || any(err > tol)) {
    cat(sprintf("FAIL: %s: tessera %s R %s (err %s > %g)\n", what, paste(format(got, digits = 15), collapse = " "),
                paste(format(want, digits = 15), collapse = " "), paste(format(err, digits = 3), collapse = " "), tol))
    bad <<- bad + 1
  } else cat(sprintf("ok: %s (max err %.2g)\n", what, max(err)))
}
check_cox <- function(name, fit) {
  txt <- paste(readLines(file.path(dir, paste0(name, ".json"))), collapse = "")
  cmp(paste(name, "coef"), num(txt, "coef"), unname(coef(fit)), 1e-6)
  cmp(paste(name, "se"), num(txt, "se"), unname(sqrt(diag(fit$var))), 1e-6)
  cmp(paste(name, "loglik"), c(num(txt, "loglik_null"), num(txt, "loglik")), fit$loglik, 1e-8, rel = FALSE)
  cmp(paste(name, "score test"), num(txt, "score_test"), fit$score, 1e-6)
  cmp(paste(name, "wald test"), num(txt, "wald_test"), unname(fit$wald.test), 1e-6)
  cmp(paste(name, "concordance"), num(txt, "concordance"), unname(fit$concordance["concordance"]), 1e-9, rel = FALSE)
  cmp(paste(name, "concordance se"), num(txt, "concordance_se"), unname(fit$concordance["std"]), 1e-6)
  cmp(paste(name, "iter"), num(txt, "iter"), fit$iter, 0, rel = FALSE)
}
sw <- read.csv(file.path(dir, "strata_weights.csv"))
ti <- read.csv(file.path(dir, "ties.csv"))
for (ties in c("efron", "breslow")) {
  check_cox(paste0("sw_", ties), coxph(Surv(time, event) ~ x1 + x2 + x3 + strata(st), sw, weights = w, ties = ties, robust = FALSE))
  check_cox(paste0("w_", ties), coxph(Surv(time, event) ~ x1 + x2 + x3, sw, weights = w, ties = ties, robust = FALSE))
  check_cox(paste0("ties_", ties), coxph(Surv(time, event) ~ x1 + x2, ti, ties = ties))
}
# separation: R must warn, and so must tessera (on stderr and in the JSON)
se <- read.csv(file.path(dir, "separation.csv"))
warned <- FALSE
invisible(withCallingHandlers(coxph(Surv(time, event) ~ x1 + sep, se),
  warning = function(w) { if (grepl("coefficient may be infinite", conditionMessage(w))) warned <<- TRUE
                          invokeRestart("muffleWarning") }))
err <- paste(readLines(file.path(dir, "sep.err")), collapse = " ")
if (!warned) { cat("FAIL: R did not warn on the separating covariate (test data problem)\n"); bad <- bad + 1 }
if (!grepl("COX_INFINITE_COEF", err) || !grepl("variable 2", err)) {
  cat("FAIL: tessera did not warn about the infinite coefficient of 'sep':", err, "\n"); bad <- bad + 1
} else cat("ok: separation warned by both:", err, "\n")
# KM per group and log-rank (R: NA std.err where S = 0 is Inf here, NA limits are null)
txt <- paste(readLines(file.path(dir, "km.json")), collapse = "")
km <- survfit(Surv(time, event) ~ grp, ti)
cmp("km surv", num(txt, "surv"), km$surv, 1e-10, rel = FALSE)
cmp("km std.err", num(txt, "std_err")[is.finite(km$std.err)], km$std.err[is.finite(km$std.err)], 1e-10, rel = FALSE)
cmp("km lower", num(txt, "lower")[!is.na(km$lower)], km$lower[!is.na(km$lower)], 1e-10, rel = FALSE)
cmp("km upper", num(txt, "upper")[!is.na(km$upper)], km$upper[!is.na(km$upper)], 1e-10, rel = FALSE)
cmp("km median", num(txt, "median"), unname(summary(km)$table[, "median"]), 1e-12)
sd <- survdiff(Surv(time, event) ~ grp, ti)
cmp("logrank chisq", num(txt, "chisq"), sd$chisq, 1e-9)
if (bad) { cat(bad, "comparison(s) failed\n"); quit(status = 1) }
REOF

# ---- 3. malformed CSV: exit 1, token first, file:line:column named
expect_err() { # token where csv-text args...
  local token=$1 where=$2 text=$3; shift 3
  local f="$work/bad.csv"
  printf '%b' "$text" >"$f"
  "$TESSERA" "$@" "$f" --time time --event event >"$work/out" 2>"$work/err"
  local rc=$?
  if [ $rc -ne 1 ]; then failed "$token: exit $rc, want 1 ($(cat "$work/err"))"; return; fi
  if ! head -1 "$work/err" | grep -q "^$token: $f:$where"; then
    failed "$token: stderr '$(head -1 "$work/err")' does not start with '$token: $f:$where'"
  else echo "ok: $token -> $(head -1 "$work/err")"; fi
}
expect_err CSV_MISSING_COLUMN "1:" 'time,age\n1,2\n' cox
expect_err CSV_BAD_VALUE "3:3:" 'time,event,age\n1,1,50\n2,0,fifty\n' cox
expect_err SURV_NEGATIVE_TIME "4:1:" 'time,event,age\n1,1,50\n2,0,40\n-3,1,40\n' cox
expect_err SURV_BAD_EVENT "2:2:" 'time,event,age\n1,2,50\n2,0,40\n' km
expect_err CSV_BAD_VALUE "2:2:" 'time,event\n5,yes\n' km
# usage errors: exit 2
"$TESSERA" cox >/dev/null 2>&1; [ $? -eq 2 ] || failed "cox without arguments: want exit 2"
"$TESSERA" cox "$work/ties.csv" --time time --event event --ties exact >/dev/null 2>&1
[ $? -eq 2 ] || failed "cox --ties exact: want exit 2"
"$TESSERA" km --help | grep -q "usage: tessera km" || failed "km --help"

[ $fail -eq 0 ] && echo "it_survival_r: all comparisons passed"
exit $fail
