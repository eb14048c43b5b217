#!/usr/bin/env bash
# bench_cox.sh — Cox fit time of tessera against R's coxph on the same generated data
# (n = 10,000 / 100,000 / 1,000,000, p = 20, Efron ties), measured in the same run and printed
# as ratios R / tessera (> 1: tessera faster), with the largest differences of the coefficients,
# the SEs (relative) and the log-likelihood from R's. Only the fit is timed on both sides (CSV
# reading excluded: `tessera cox --timing`, system.time(coxph(...)) in R; both include the
# concordance coxph computes). Wall-clock seconds: on a shared machine run it twice and compare
# the ratios, which are measured in the same run. Run by hand, not by ctest:
#     TESSERA=build/tessera bench/bench_cox.sh [n ...]
set -euo pipefail
TESSERA=${TESSERA:-$(cd "$(dirname "$0")/.." && pwd)/build/tessera}
bench_lines=()
[ -x "$TESSERA" ] || { echo "set TESSERA to the tessera binary" >&2; exit 2; }
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000 1000000)
work=$(mktemp -d /tmp/bench_cox.XXXXXX); trap 'rm -rf "$work"' EXIT
printf "%10s %4s %12s %12s %10s %14s %12s %12s\n" n p "tessera_s" "R_s" "R/tessera" "max|dcoef|" "max|dse/se|" "|dloglik|"
for n in "${sizes[@]}"; do
  Rscript -e '
    args <- commandArgs(TRUE); n <- as.integer(args[1]); p <- 20L; set.seed(1)
    x <- matrix(round(rnorm(n * p), 4), n, p); colnames(x) <- paste0("x", 1:p)
    t <- rexp(n, exp(drop(x %*% seq(-0.3, 0.3, length.out = p)))); c <- rexp(n, 0.5)
    d <- data.frame(time = round(pmin(t, c), 4), event = as.integer(t <= c), x)
    write.csv(d, args[2], row.names = FALSE)' "$n" "$work/d.csv"
  covs=$(printf "x%d " $(seq 1 20))
  # shellcheck disable=SC2086
  "$TESSERA" cox "$work/d.csv" --time time --event event --json --timing $covs \
    >"$work/ts.json" 2>"$work/ts.err"
  ts=$(sed -n 's/^fit_seconds: //p' "$work/ts.err")
  out=$(Rscript -e '
    suppressMessages(library(survival)); args <- commandArgs(TRUE)
    d <- read.csv(args[1]); f <- as.formula(paste("Surv(time, event) ~", paste0("x", 1:20, collapse = "+")))
    tm <- system.time(fit <- coxph(f, d))[["elapsed"]]
    txt <- paste(readLines(args[2]), collapse = "")
    val <- function(key) as.numeric(sub("^[^:]*:", "", regmatches(txt, gregexpr(paste0("\"", key, "\":[-+0-9.eE]+"), txt))[[1]]))
    dse <- max(abs(val("se") / sqrt(diag(fit$var)) - 1))
    dll <- abs(val("loglik") - fit$loglik[2])
    cat(tm, max(abs(val("coef") - coef(fit))), dse, dll, "\n")' "$work/d.csv" "$work/ts.json")
  read -r rs dc dse dll <<<"$out"
  awk -v n="$n" -v t="$ts" -v r="$rs" -v dc="$dc" -v dse="$dse" -v dll="$dll" \
    'BEGIN { printf "%10d %4d %12.4f %12.4f %10.1f %14.3g %12.3g %12.3g\n", n, 20, t, r, r / t, dc, dse, dll }'
  bench_lines+=("BENCH name=cox_fit_n$n value=$ts unit=s baseline=$rs ratio=$(awk -v t="$ts" -v r="$rs" 'BEGIN{print r/t}') better=lower")
done
printf '%s\n' "${bench_lines[@]}"
