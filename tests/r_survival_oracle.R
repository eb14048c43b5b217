# r_survival_oracle.R — the R oracle of tests/test_survival.c, computed at test time.
#
# Usage: Rscript tests/r_survival_oracle.R OUTDIR
#
# Exports three real clinical data sets that R's survival package ships (lung, veteran,
# ovarian; Debian r-cran-survival) as complete-case design matrices (time, event 0/1, numeric
# covariates) and writes R's own results on them next to them, for Efron and Breslow ties:
#   lung.csv veteran.csv ovarian.csv          the data, as the C test reads them
#   r_coxph_coefficients.csv                   coef, exp(coef), SE, z, p per term
#   r_coxph_summary.csv                        n, events, log-likelihoods, LR/Wald/score tests,
#                                              concordance and its SE, iterations
#   r_coxph_breslow_basehaz_uncentered.csv     basehaz(fit, centered = FALSE), Breslow fits
#   r_coxph_breslow_linear_predictor.csv       uncentered linear predictor X beta, Breslow fits
#   r_concordance_lung.csv                     concordance() with timewt n, S and S/G on lung
#   r_km_lung.csv                              survfit() Kaplan-Meier of lung
#
# The oracle is independent of the code under test: it uses R and survival only, never
# tessera. The models are fitted on the CSVs re-read from disk, so that R and the C test see
# the same bytes (write.csv keeps 15 significant digits). Any error exits non-zero, and the C
# test then fails (a missing R is a failed test, not a skipped one).
suppressPackageStartupMessages(library(survival))
options(warn = 1)

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1) stop("usage: Rscript r_survival_oracle.R OUTDIR")
out <- args[1]
if (!dir.exists(out)) stop("OUTDIR does not exist: ", out)
path <- function(f) file.path(out, f)

# ---- data: complete cases, event as 0/1, factors one-hot against R's first level
lung <- survival::lung
lung <- lung[complete.cases(lung[, c("time", "status", "age", "sex", "ph.ecog")]), ]
lung <- data.frame(time = lung$time, event = as.integer(lung$status == 2), age = lung$age,
                   sex = lung$sex, ph_ecog = lung$ph.ecog)

vet <- survival::veteran
vet <- data.frame(time = vet$time, event = as.integer(vet$status == 1), trt = vet$trt,
                  karno = vet$karno, diagtime = vet$diagtime, age = vet$age, prior = vet$prior,
                  celltype_smallcell = as.integer(vet$celltype == "smallcell"),
                  celltype_adeno = as.integer(vet$celltype == "adeno"),
                  celltype_large = as.integer(vet$celltype == "large"))

ova <- survival::ovarian
ova <- data.frame(time = ova$futime, event = as.integer(ova$fustat == 1), age = ova$age,
                  ecog_ps = ova$ecog.ps, rx = ova$rx)

sets <- list(lung = lung, veteran = vet, ovarian = ova)
for (nm in names(sets)) write.csv(sets[[nm]], path(paste0(nm, ".csv")), row.names = FALSE)
sets <- lapply(names(sets), function(nm) read.csv(path(paste0(nm, ".csv"))))
names(sets) <- c("lung", "veteran", "ovarian")

# ---- Cox models
coefs <- list(); summ <- list(); bh <- list(); lps <- list()
fits <- list()
for (nm in names(sets)) {
  d <- sets[[nm]]
  terms <- setdiff(names(d), c("time", "event"))
  fml <- as.formula(paste("Surv(time, event) ~", paste(terms, collapse = " + ")))
  for (ties in c("efron", "breslow")) {
    fit <- coxph(fml, data = d, ties = ties)
    fits[[paste(nm, ties)]] <- fit
    s <- summary(fit)$coefficients
    coefs[[length(coefs) + 1]] <- data.frame(
      dataset = nm, ties = ties, term = rownames(s), coef = s[, "coef"],
      exp_coef = s[, "exp(coef)"], se = s[, "se(coef)"], z = s[, "z"], p = s[, "Pr(>|z|)"])
    summ[[length(summ) + 1]] <- data.frame(
      dataset = nm, ties = ties, n = fit$n, nevent = fit$nevent,
      loglik_null = fit$loglik[1], loglik_model = fit$loglik[2],
      lr_test = 2 * (fit$loglik[2] - fit$loglik[1]),
      wald_test = unname(fit$wald.test),     # unrounded (summary() prints it to 2 decimals)
      score_test = unname(fit$score),
      concordance = unname(fit$concordance["concordance"]),
      concordance_se = unname(fit$concordance["std"]),
      iter = fit$iter, formula = paste(deparse(fml, width.cutoff = 500L), collapse = " "))
    if (ties == "breslow") {
      b <- basehaz(fit, centered = FALSE)
      bh[[length(bh) + 1]] <- data.frame(dataset = nm, ties = ties, time = b$time,
                                         cumhaz = b$hazard)
      lp <- predict(fit, type = "lp", reference = "zero")   # X beta, not centred on the means
      lps[[length(lps) + 1]] <- data.frame(dataset = nm, ties = ties, row = seq_len(nrow(d)),
                                           lp_uncentered = unname(lp))
    }
  }
}
wr <- function(l, f) write.csv(do.call(rbind, l), path(f), row.names = FALSE)
wr(coefs, "r_coxph_coefficients.csv")
wr(summ, "r_coxph_summary.csv")
wr(bh, "r_coxph_breslow_basehaz_uncentered.csv")
wr(lps, "r_coxph_breslow_linear_predictor.csv")

# ---- concordance variants on lung (Efron fit): Harrell's C, S weights, Uno's S/G weights
f <- fits[["lung efron"]]
cc <- data.frame(variant = c("harrell (timewt=n)", "timewt=S", "uno (timewt=S/G)"),
                 c = sapply(c("n", "S", "S/G"),
                            function(w) unname(concordance(f, timewt = w)$concordance)))
write.csv(cc, path("r_concordance_lung.csv"), row.names = FALSE)

# ---- Kaplan-Meier of lung: every distinct time, std_err on the cumulative-hazard scale
km <- survfit(Surv(time, event) ~ 1, data = sets$lung)
write.csv(data.frame(time = km$time, n_risk = km$n.risk, n_event = km$n.event,
                     n_censor = km$n.censor, surv = km$surv, std_err = km$std.err),
          path("r_km_lung.csv"), row.names = FALSE)
cat("r_survival_oracle: R", as.character(getRversion()), "survival",
    as.character(packageVersion("survival")), "->", out, "\n")
