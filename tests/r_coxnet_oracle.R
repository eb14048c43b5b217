# r_coxnet_oracle.R OUT_DIR — the oracle of tests/test_coxnet.c: data sets and glmnet(family =
# "cox") coefficients at fixed lambdas, written as CSV (numbers with 17 significant digits).
#   OUT_DIR/<set>.csv: time,status,x1..xp   OUT_DIR/coef.csv: set,alpha,lambda,lambda_max,j,coef
# Sets: lung (survival::lung complete cases, ties broken; age, sex, ph.ecog, ph.karno, wt.loss) and wide
# (n = 120, p = 30, seed 7: 5 true effects, exponential times, ~30% censored), which glmnet
# makes sparse.
suppressMessages({ library(survival); library(glmnet) })
out <- commandArgs(TRUE)[1]
f17 <- function(v) sprintf("%.17g", v)
lung_cc <- na.omit(survival::lung[, c("time", "status", "age", "sex", "ph.ecog", "ph.karno", "wt.loss")])
lung_cc$status <- lung_cc$status - 1
# Ties broken (+ row * 1e-4 days; distinct lung times are >= 1 day apart, so no order changes):
# with tied times glmnet's Fortran likelihood is neither coxph's Breslow nor Efron (its
# coefficients are ~1e-3 off the minimiser of the Breslow objective, which ts_coxnet_fit finds).
lung_cc$time <- lung_cc$time + seq_len(nrow(lung_cc)) * 1e-4
set.seed(7)
n <- 120; p <- 30
X <- matrix(rnorm(n * p), n, p)
lp <- X[, 1:5] %*% c(0.8, -0.6, 0.5, 0.4, -0.3)
t_ev <- rexp(n, exp(lp)); t_c <- rexp(n, 0.4)
wide <- data.frame(time = round(pmin(t_ev, t_c), 4), status = as.integer(t_ev <= t_c), X)
rows <- c()
for (set in c("lung", "wide")) {
  d <- if (set == "lung") lung_cc else wide
  names(d) <- c("time", "status", paste0("x", seq_len(ncol(d) - 2)))
  write.csv(data.frame(lapply(d, f17)), file.path(out, paste0(set, ".csv")), row.names = FALSE, quote = FALSE)
  x <- as.matrix(d[, -(1:2)]); y <- Surv(d$time, d$status)
  for (alpha in c(1, 0.5)) {
    lmax <- max(glmnet(x, y, family = "cox", alpha = alpha)$lambda)
    fracs <- c(1, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05)
    fit <- glmnet(x, y, family = "cox", alpha = alpha, lambda = lmax * fracs, thresh = 1e-20, maxit = 1e7)
    stopifnot(length(fit$lambda) == length(fracs))
    for (k in which(fracs %in% c(0.5, 0.2, 0.05))) {
      b <- as.vector(as.matrix(coef(fit))[, k])
      rows <- c(rows, paste(set, alpha, f17(fit$lambda[k]), f17(lmax), seq_along(b), f17(b), sep = ","))
    }
  }
}
writeLines(c("set,alpha,lambda,lambda_max,j,coef", rows), file.path(out, "coef.csv"))
