#!/usr/bin/env bash
# labels: survival r
# it_km_lung.sh — `tessera km` on R's lung data by sex against R's summary(survfit), both run
# here: the table's std.err column must be R's (the SE of S(t), not of log S), and the
# se(logS) column and JSON std_err survfit()$std.err. Needs Rscript with the survival package.
. "$(dirname "$0")/lib.sh"
if ! command -v Rscript >/dev/null || ! Rscript -e 'library(survival)' >/dev/null 2>&1; then
  echo "FAIL: Rscript with the survival package is not installed (scripts/setup.sh installs r-base-core r-cran-survival)"; exit 1
fi
cd "$WORK"
# lung as R ships it (status 1 censored / 2 dead) plus the 0/1 event column tessera reads
Rscript -e 'd <- survival::lung; d$event <- d$status - 1; write.csv(d, "lung.csv", row.names = FALSE)'
check "lung exported" test -s lung.csv
expect_rc 0 "$TESSERA" km lung.csv --time time --event event --group sex
cp "$WORK/out" km.txt
expect_rc 0 "$TESSERA" km lung.csv --time time --event event --group sex --json
cp "$WORK/out" km.json
# tessera's table rows at event times: group time survival std.err lower upper se(logS)
# (columns by position: the header's "lower 95%" has a blank; se(logS) NA if the table lacks it)
awk '/^sex=/ { g = substr($1, 5) } $1 ~ /^[0-9.]+$/ && NF >= 8 && $3 > 0 { print g, $1, $5, $6, $7, $8, (NF >= 9 ? $9 : "NA") }' \
  km.txt >tessera.txt
check "table has rows" test "$(wc -l <tessera.txt)" -gt 100
check "header names both standard errors" grep -q 'std.err.*se(logS)' km.txt
Rscript - <<'REOF' >r.out 2>&1 && pass "table and JSON match R's summary(survfit)" || { fail "R comparison"; cat r.out; }
suppressMessages(library(survival))
fit <- survfit(Surv(time, status) ~ sex, data = lung)
s <- summary(fit)     # event times only, as tessera's rows with n.event > 0
r <- data.frame(g = as.integer(sub("sex=", "", as.character(s$strata))), time = s$time,
                surv = s$surv, se = s$std.err, lo = s$lower, up = s$upper)
# survfit's own std.err (of the cumulative hazard, = se(log S)) at the same times
r$selog <- unlist(lapply(split(seq_along(fit$time), rep(seq_along(fit$strata), fit$strata)),
  function(i) fit$std.err[i][fit$n.event[i] > 0]))
t <- read.table("tessera.txt", col.names = c("g", "time", "surv", "se", "lo", "up", "selog"))
bad <- 0
if (nrow(t) != nrow(r) || any(t$g != r$g) || any(t$time != r$time)) {
  cat("FAIL: event times differ:", nrow(t), "rows vs R", nrow(r), "\n"); quit(status = 1)
}
cmp <- function(what, got, want, tol) { # printed with 6 significant digits
  if (length(got) != length(want)) {
    cat(sprintf("FAIL: %s: %d values, R %d\n", what, length(got), length(want))); bad <<- bad + 1; return()
  }
  err <- abs(got - want) / pmax(abs(want), 1e-12)
  ok <- is.na(want) & is.na(got) | !is.na(err) & err <= tol
  if (!all(ok)) {
    i <- which(!ok)[1]
    cat(sprintf("FAIL: %s at sex=%d t=%g: tessera %.10g, R %.10g (%d rows differ)\n", what,
                r$g[i], r$time[i], got[i], want[i], sum(!ok)))
    bad <<- bad + 1
  } else cat(sprintf("ok: %s (%d rows, max rel err %.2g)\n", what, length(got), max(err, na.rm = TRUE)))
}
cmp("survival", t$surv, r$surv, 1e-5)
cmp("std.err (summary)", t$se, r$se, 1e-5)
cmp("lower 95%", t$lo, r$lo, 1e-5)
cmp("upper 95%", t$up, r$up, 1e-5)
cmp("se(logS) (survfit$std.err)", t$selog, r$selog, 1e-5)
i11 <- which(r$g == 1 & r$time == 11)
cat(sprintf("sex=1 t=11: tessera std.err %.7g, R %.7g\n", t$se[i11], r$se[i11]))
# JSON: surv_std_err is summary's std.err, std_err survfit's, at full precision
txt <- paste(readLines("km.json"), collapse = "")
arr <- function(key) {
  m <- regmatches(txt, gregexpr(paste0('"', key, '":\\[[^]]*\\]'), txt))[[1]]
  lapply(m, function(x) suppressWarnings(as.numeric(strsplit(gsub("^[^[]*\\[|\\]$", "", x), ",")[[1]])))
}
ev <- arr("n_event"); sse <- arr("surv_std_err"); se <- arr("std_err")
js <- unlist(mapply(function(e, v) v[e > 0], ev, sse)); jl <- unlist(mapply(function(e, v) v[e > 0], ev, se))
cmp("JSON surv_std_err", js, r$se, 1e-10)
cmp("JSON std_err", jl, r$selog, 1e-10)
quit(status = bad > 0)
REOF
cat r.out
finish
