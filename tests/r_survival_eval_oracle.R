# r_survival_eval_oracle.R — the R oracle of tests/test_survival_eval.c (evaluation of survival
# predictions: IPCW Brier score, Uno's C, bootstrap of C), computed at test time.
#
# Usage: Rscript tests/r_survival_eval_oracle.R OUTDIR
#
# Writes into OUTDIR, from R's lung data (complete cases of time, status, age, sex, ph.ecog):
#   lung.csv                 time, event 0/1, age, sex, ph_ecog (the rows the C test reads)
#   r_brier_times.csv        the evaluation times: deciles of the death times (observed times,
#                            so that ties with deaths and censorings are exercised)
#   r_brier_surv_all.csv     S_i(t_k) of every patient from survfit(coxph(all), newdata = lung)
#   r_brier_all.csv          R's Brier score at each time and the integrated score, with G the
#                            censoring KM of lung itself (test = cens)
#   r_brier_surv_split.csv   S_i(t_k) of the test rows (row %% 3 == 0) from a fit on the others
#   r_brier_split.csv        the same scores with G from the training rows
#   r_concordance_eval.csv   concordance(fit, timewt = "n/G2") with ymax Inf / 365 / 353 (a death
#                            time) and Harrell's C with its infinitesimal-jackknife SE
# The Brier score is written here from its definition (Graf et al. 1999) with G from
# survfit(Surv(time, 1 - event) ~ 1): G(T_i-) for a death at T_i <= t, G(t) for T_i > t.
# S values are written with 17 significant digits, so the C side reads R's doubles exactly.
suppressPackageStartupMessages(library(survival))
options(warn = 1)
args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1) stop("usage: Rscript r_survival_eval_oracle.R OUTDIR")
out <- args[1]
if (!dir.exists(out)) stop("OUTDIR does not exist: ", out)
path <- function(f) file.path(out, f)
w17 <- function(df, f) {
  for (j in seq_along(df)) if (is.double(df[[j]])) df[[j]] <- sprintf("%.17g", df[[j]])
  write.csv(df, path(f), row.names = FALSE, quote = FALSE)
}

lung <- survival::lung
lung <- lung[complete.cases(lung[, c("time", "status", "age", "sex", "ph.ecog")]), ]
lung <- data.frame(time = lung$time, event = as.integer(lung$status == 2), age = lung$age,
                   sex = lung$sex, ph_ecog = lung$ph.ecog)
write.csv(lung, path("lung.csv"), row.names = FALSE)
lung <- read.csv(path("lung.csv"))

tk <- unname(quantile(lung$time[lung$event == 1], seq(0.1, 0.9, 0.1), type = 1))
w17(data.frame(time = tk), "r_brier_times.csv")

brier_r <- function(time, status, S, tk, ctime, cstatus) {
  g <- survfit(Surv(ctime, 1 - cstatus) ~ 1)
  G <- stepfun(g$time, c(1, g$surv))                   # G(t), right-continuous
  Gm <- stepfun(g$time, c(1, g$surv), right = TRUE)    # G(t-)
  bs <- sapply(seq_along(tk), function(k) {
    t <- tk[k]; s <- S[, k]
    case <- time <= t & status == 1; ctrl <- time > t
    mean(ifelse(case, s^2 / Gm(time), 0) + ifelse(ctrl, (1 - s)^2 / G(t), 0))
  })
  ibs <- sum(diff(tk) * (head(bs, -1) + tail(bs, -1)) / 2) / (max(tk) - min(tk))
  list(bs = bs, ibs = ibs)
}
surv_at <- function(fit, newdata, tk) {
  sf <- survfit(fit, newdata = newdata)
  t(summary(sf, times = tk)$surv)                      # n x nt
}
fml <- Surv(time, event) ~ age + sex + ph_ecog

fit <- coxph(fml, data = lung)
S <- surv_at(fit, lung, tk)
w17(as.data.frame(S), "r_brier_surv_all.csv")
b <- brier_r(lung$time, lung$event, S, tk, lung$time, lung$event)
w17(data.frame(time = c(tk, NA), bs = c(b$bs, b$ibs), what = c(rep("bs", length(tk)), "ibs")),
    "r_brier_all.csv")

test <- seq_len(nrow(lung)) %% 3 == 0
tr <- lung[!test, ]; te <- lung[test, ]
fit2 <- coxph(fml, data = tr)
S2 <- surv_at(fit2, te, tk)
w17(as.data.frame(S2), "r_brier_surv_split.csv")
b2 <- brier_r(te$time, te$event, S2, tk, tr$time, tr$event)
w17(data.frame(time = c(tk, NA), bs = c(b2$bs, b2$ibs), what = c(rep("bs", length(tk)), "ibs")),
    "r_brier_split.csv")

cc <- function(label, x) data.frame(variant = label, c = unname(x$concordance), se = sqrt(x$var))
w17(rbind(cc("n/G2", concordance(fit, timewt = "n/G2")),
          cc("n/G2 ymax=365", concordance(fit, timewt = "n/G2", ymax = 365)),
          cc("n/G2 ymax=353", concordance(fit, timewt = "n/G2", ymax = 353)),
          cc("n", concordance(fit, timewt = "n"))),
    "r_concordance_eval.csv")
cat("r_survival_eval_oracle: R", as.character(getRversion()), "survival",
    as.character(packageVersion("survival")), "->", out, "\n")
