/* ts_survival.h — survival statistics core of tessera: Cox proportional hazards, concordance,
 * Kaplan-Meier, log-rank, and a small numeric CSV reader. Validated against R's survival
 * package (3.5): see tests/test_survival.c and tests/it_survival_r.sh.
 *
 * A worked example (error handling shortened; every call returns 0 or a negative TS_E* code and
 * leaves "TOKEN: message" in ts_error_message()):
 *
 *     ts_csv_table *tab = NULL;
 *     ts_surv_data d;  double *x = NULL;  ts_cox_fit *fit = NULL;
 *     rc = ts_csv_read("lung.csv", &tab);                         // header row, numeric cells
 *     rc = ts_surv_data_from_csv(tab, "time", "event", NULL, NULL, &d);  // checks time >= 0,
 *                                                                  // event in {0,1}
 *     const char *cov[] = {"age", "sex"};
 *     rc = ts_csv_design(tab, cov, 2, &x);                        // n x 2, row-major
 *     ts_cox_options o;  ts_cox_options_default(&o);              // Efron ties, as R
 *     rc = ts_cox_fit_new(&d, x, 2, &o, &fit);
 *     printf("beta_age = %g (se %g), HR %g\n", fit->coef[0], fit->se[0], fit->hr[0]);
 *     if (fit->warning[0]) fprintf(stderr, "%s\n", fit->warning);  // e.g. infinite coef
 *     ts_cox_fit_free(&fit);  free(x);  ts_surv_data_release(&d);  ts_csv_free(&tab);
 *
 * Conventions
 *  - Times are in whatever unit the data uses (days in the R data sets); nothing is rescaled.
 *    Events are 0 (censored) / 1 (event). Right-censored data only.
 *  - Case weights are frequency-style weights as in R's coxph(weights=) and survfit(weights=):
 *    likelihood terms are multiplied by them. NULL means all 1.
 *  - Strata: any int labels; NULL means one stratum. Cox fits use separate baseline hazards per
 *    stratum (R's strata()); concordance counts pairs only within a stratum.
 *  - Design matrices are row-major, n rows x p columns: x[i*p + j].
 *  - "risk" scores (linear predictors) mean higher = shorter survival, as R's coxph lp; the
 *    concordance of a risk score is R's concordance(Surv ~ lp, reverse = TRUE).
 *  - Ownership: every *_new / *_fit / *_read allocates an object that the caller frees with the
 *    matching *_free(&p), which accepts NULL and sets the pointer to NULL. Input arrays are
 *    borrowed for the duration of the call only.
 *  - Thread safety: all functions are reentrant; objects are not shared between threads
 *    internally. Errors are reported through the thread-local ts_error module.
 *  - Complexity: Cox O(n log n + iter * n p^2); KM, log-rank, concordance O(n log n);
 *    AUC O(T n log n) for T time points; Brier score O(n T + (n + T) log n); bootstrap of C
 *    O(B n log n) for B resamples.
 */
#ifndef TS_SURVIVAL_H
#define TS_SURVIVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ts_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- data ---- */

typedef struct ts_surv_data {
  size_t n;
  const double *time;   /* n follow-up times, >= 0 */
  const int *event;     /* n event indicators, 0 or 1 */
  const double *weight; /* n case weights > 0, or NULL for all 1 */
  const int *strata;    /* n stratum labels, or NULL for one stratum */
  void *owned;          /* internal: storage owned by ts_surv_data_from_csv, else NULL */
} ts_surv_data;

/* Release what ts_surv_data_from_csv allocated (no-op for caller-built data). */
void ts_surv_data_release(ts_surv_data *d);

/* Check a caller-built data set: n > 0, finite time >= 0 (SURV_NEGATIVE_TIME), event 0/1
 * (SURV_BAD_EVENT), weights finite and > 0 (SURV_BAD_WEIGHT). Errors name the row (0-based). */
int ts_surv_data_check(const ts_surv_data *d);

/* ---------------------------------------------------------------- CSV ----- */

/* A numeric table read from a CSV file with one header row. Cells that are not numbers (or
 * are empty / NA) are stored as NaN and remembered, so that a column that is never used may
 * hold text; ts_csv_numeric_column() reports the first bad cell of a column it is asked for. */
typedef struct ts_csv_table {
  char *path;       /* file name, as given */
  size_t nrow;      /* data rows (the header excluded) */
  size_t ncol;      /* columns, from the header */
  char **names;     /* ncol column names, surrounding quotes removed */
  double *values;   /* nrow x ncol, row-major */
  size_t *bad_line; /* per column: 1-based file line of the first non-numeric cell, 0 if none */
  char **bad_text;  /* per column: that cell's text (NULL if none) */
  size_t *row_line; /* nrow: 1-based file line of each data row (blank lines are skipped) */
} ts_csv_table;

/* Read PATH. Errors: CSV_UNREADABLE (TS_EIO), CSV_EMPTY, CSV_RAGGED (a row with the wrong
 * number of cells; names file:line), all TS_EINPUT. Separator ',', optional "quotes",
 * CRLF accepted, blank lines skipped. */
int ts_csv_read(const char *path, ts_csv_table **table_out);
void ts_csv_free(ts_csv_table **table);

/* Index of column NAME; CSV_MISSING_COLUMN (TS_EINPUT) naming file and the header line. */
int ts_csv_column(const ts_csv_table *t, const char *name, size_t *col_out);
/* Like ts_csv_column, and CSV_BAD_VALUE (file:line:column) if any cell is not a number. */
int ts_csv_numeric_column(const ts_csv_table *t, const char *name, size_t *col_out);

/* Survival data from columns of T (time, event required; weight_col, strata_col may be NULL).
 * Errors carry file:line:column: CSV_MISSING_COLUMN, CSV_BAD_VALUE, SURV_NEGATIVE_TIME,
 * SURV_BAD_EVENT, SURV_BAD_WEIGHT. Strata values must be integers (CSV_BAD_VALUE otherwise).
 * D owns copies; release with ts_surv_data_release. */
int ts_surv_data_from_csv(const ts_csv_table *t, const char *time_col, const char *event_col,
                          const char *weight_col, const char *strata_col, ts_surv_data *d_out);

/* Row-major n x p design from columns NAMES (all numeric, CSV_BAD_VALUE otherwise).
 * *x_out is malloc'ed; the caller frees it. */
int ts_csv_design(const ts_csv_table *t, const char *const *names, size_t p, double **x_out);

/* ----------------------------------------------------------- distributions -- */

/* Upper tail probabilities: P(|Z| > |z|) two-sided for N(0,1), P(X > x) for chi-square(df). */
double ts_surv_pnorm2(double z);
double ts_surv_pchisq_upper(double x, double df);

/* --------------------------------------------------------------- Cox PH ---- */

enum ts_cox_ties { TS_COX_EFRON = 0, TS_COX_BRESLOW = 1 };

typedef struct ts_cox_options {
  int ties;          /* TS_COX_EFRON (R's default) or TS_COX_BRESLOW */
  int max_iter;      /* Newton-Raphson iterations, R's iter.max: 20 */
  double eps;        /* convergence: |1 - loglik_old/loglik_new| <= eps, R's eps: 1e-9 */
  double toler_chol; /* pivot tolerance of the Cholesky (singularity), R: 2.2e-16^0.75 */
  double toler_inf;  /* infinite-coefficient test, R's toler.inf: sqrt(eps) */
  double ridge;      /* L2 penalty lambda: maximise loglik - lambda/2 * sum(beta^2); 0 = none.
                        Same objective as R's coxph(... ridge(x, theta = lambda)). */
  bool concordance;  /* also compute Harrell's C of the fitted lp (R's coxph does): true */
} ts_cox_options;

void ts_cox_options_default(ts_cox_options *o);

/* Convergence status of a fit. */
enum ts_cox_status {
  TS_COX_CONVERGED = 0, /* relative loglik change <= eps */
  TS_COX_MAXITER = 1,   /* ran out of iterations (R: "Ran out of iterations ...") */
};

typedef struct ts_cox_fit {
  size_t n, p;
  size_t nevent;     /* number of rows with event = 1 (unweighted, as R's nevent) */
  int ties;
  double ridge;
  /* per coefficient (p each); coefficients of aliased (singular) columns are NaN, as R's NA */
  double *coef, *se, *z, *pvalue, *hr, *hr_lower, *hr_upper; /* 95% CI of exp(coef) */
  double *var;       /* p x p covariance (inverse information, penalised if ridge > 0) */
  double *means;     /* weighted covariate means used for centring (R's fit$means) */
  bool *infinite;    /* p flags: "Loglik converged before variable ..." (monotone likelihood) */
  double loglik_null;      /* log partial likelihood at beta = 0 */
  double loglik;           /* at the estimate, without the penalty */
  double loglik_penalized; /* loglik - ridge/2 * |beta|^2 (== loglik without ridge) */
  double lr_test, lr_p;       /* 2 (loglik - loglik_null), df = rank */
  double wald_test, wald_p;   /* beta' var^-1 beta (R prints it rounded to 2 decimals) */
  double score_test, score_p; /* log-rank type score test at beta = 0 */
  int df;                     /* rank of the information matrix */
  int iter;                   /* Newton-Raphson iterations, as R's fit$iter */
  int status;                 /* enum ts_cox_status */
  bool singular;              /* information matrix singular: some coef NaN */
  char warning[512];          /* "" or "TOKEN: text" (COX_INFINITE_COEF, COX_NOT_CONVERGED,
                                 COX_SINGULAR), to be shown to the user as R warns */
  double *lp;                 /* n linear predictors x_i' beta, NOT centred (input order) */
  /* Baseline cumulative hazard at x = 0 (R: basehaz(fit, centered = FALSE)) at every unique
   * time of each stratum; Breslow increments for Breslow ties, Efron-adjusted for Efron (as
   * R's survfit.coxph default). */
  size_t nbase;
  double *base_time, *base_cumhaz;
  int *base_strata;
  double concordance, concordance_se; /* Harrell's C of lp (NaN if not requested) */
} ts_cox_fit;

/* Fit a Cox model to D with design X (n x p, row-major, borrowed). O = NULL for defaults.
 * Errors: TS_EINVAL (COX_BAD_ARG: p == 0, NULL pointers, non-finite x), TS_EINPUT (data check
 * tokens above, COX_NO_EVENTS), TS_ENOMEM. Non-convergence, infinite coefficients and a
 * singular information matrix are NOT errors: they set status/infinite/singular/warning. */
int ts_cox_fit_new(const ts_surv_data *d, const double *x, size_t p, const ts_cox_options *o,
                   ts_cox_fit **fit_out);
void ts_cox_fit_free(ts_cox_fit **fit);

/* Log partial likelihood, score (p, may be NULL) and information (p x p, may be NULL) at BETA, for gradient
 * checks and for callers that optimise their own penalties. Same conventions as the fit. */
int ts_cox_loglik(const ts_surv_data *d, const double *x, size_t p, int ties, const double *beta,
                  double *loglik_out, double *score_out, double *info_out);

/* Elastic-net penalised Cox regression, glmnet(family = "cox")'s objective:
 *   -loglik(beta) / n + lambda * (alpha * |beta|_1 + (1 - alpha) / 2 * |beta|^2)
 * on columns standardised to mean 0 and (1/n) sd 1 when `standardize` (glmnet's default), the
 * coefficients returned on the original scale. alpha 1 is the lasso, 0 ridge. Ties: Breslow
 * (glmnet's) or Efron. Case weights and strata of D are not supported (NULL). */
typedef struct ts_coxnet_options {
  double lambda, alpha;
  bool standardize;
  int ties;     /* enum ts_cox_ties: TS_COX_BRESLOW */
  int max_iter; /* proximal Newton iterations: 200 */
  double tol;   /* relative objective change: 1e-13 */
} ts_coxnet_options;

void ts_coxnet_options_default(ts_coxnet_options *o); /* lambda 0, alpha 1, standardize, Breslow */
/* BETA_OUT (p) gets the minimiser; ITER_OUT (may be NULL) the iterations. Errors: COX_BAD_ARG,
 * the data check tokens, TS_ENOMEM. */
int ts_coxnet_fit(const ts_surv_data *d, const double *x, size_t p, const ts_coxnet_options *o, double *beta_out, int *iter_out);
/* The smallest lambda at which every coefficient is 0 (alpha > 0): max_j |d loglik / d beta_j at
 * 0| / (n alpha) on the standardised columns, glmnet's lambda_max. */
int ts_coxnet_lambda_max(const ts_surv_data *d, const double *x, size_t p, const ts_coxnet_options *o, double *out);

/* ---------------------------------------------------------- concordance ---- */

/* Time weights of R's concordance(timewt = ...). */
enum ts_timewt {
  TS_TIMEWT_N = 0,   /* Harrell's C */
  TS_TIMEWT_S,       /* S(t-) n / n(t) */
  TS_TIMEWT_S_G,     /* S(t-) n / (G(t-) n(t))  (R's Uno-type weighting "S/G") */
  TS_TIMEWT_N_G2,    /* 1 / G(t-)^2             (Uno et al. 2011 exactly) */
  TS_TIMEWT_I,       /* 1 / n(t) */
};

typedef struct ts_concordance {
  double c;        /* concordance (ties in risk count 1/2), as R */
  double std_err;  /* infinitesimal-jackknife SE, as R's sqrt(fit$var) */
  double concordant, discordant, tied_risk, tied_time, tied_both; /* weighted pair counts */
} ts_concordance;

/* Concordance of RISK (higher = earlier event) with D. TIMEWT one of enum ts_timewt; pairs whose
 * earlier event time is > YMAX get weight 0 (truncation; pass INFINITY for none).
 * Within-stratum pairs only if D->strata. Errors: data check tokens, TS_ENOMEM. */
int ts_surv_concordance(const ts_surv_data *d, const double *risk, int timewt, double ymax,
                        ts_concordance *out);

/* Uno's C with IPCW weights 1/G(t-)^2 and truncation time TAU (INFINITY: none): exactly R's
 * concordance(..., timewt = "n/G2", ymax = TAU) (the vignette's "Uno et al recommend the use
 * of n/G^2 as a weight"; on lung C and SE agree to 1e-15, tests/test_survival_eval.c). A pair is
 * weighted 1/G(t-)^2 at its earlier event time t, G the censoring Kaplan-Meier with censorings
 * after the deaths at a tied time; pairs with t > TAU get weight 0 (R: timewt[etime > ymax] <-
 * 0). Where this differs from Uno et al. (Stat Med 2011) as written, R's reading is kept:
 * G(t-) rather than G(t) ("censoring weights G actually use G(t-) in the code ... Both the Uno
 * and Schemper papers ignore this detail", vignette "Details"), t <= TAU rather than t < TAU,
 * ties in risk count 1/2, and a patient censored at t is comparable with a death at t. */
int ts_surv_uno_c(const ts_surv_data *d, const double *risk, double tau, ts_concordance *out);

/* Cumulative/dynamic time-dependent AUC at each of NT times (Uno 2007; timeROC's IPCW
 * estimator): cases T_i <= t with an event, weighted 1/G(T_i-); controls T_j > t. Ties in RISK
 * count 1/2. auc_out[k] is NaN where there is no case or no control. Strata and weights are
 * ignored (an error, SURV_UNSUPPORTED, if given). */
int ts_surv_auc_cd(const ts_surv_data *d, const double *risk, const double *times, size_t nt,
                   double *auc_out);

/* ------------------------------------------------------------ Brier score --- */

/* IPCW Brier score of predicted survival curves (Graf et al., Stat Med 1999) at NT times, and
 * its integral. SURV: TEST->n x NT row-major, surv[i*nt + k] = S_i(times[k]) predicted for test
 * patient i (in [0, 1]); TIMES finite, strictly increasing. With G the Kaplan-Meier estimate
 * of the censoring distribution of CENS, i.e. R's survfit(Surv(time, 1 - event) ~ 1, CENS),
 *     bs_out[k] = 1/n sum_i [ S_i(t)^2 I(T_i <= t, d_i = 1) / G(T_i-)
 *                            + (1 - S_i(t))^2 I(T_i > t) / G(t) ],   t = times[k];
 * patients censored at or before t contribute 0. G(T_i-) for a case (its censoring would come
 * after its death), G(t) for one still at risk; at a time with deaths and censorings, the
 * deaths stay in G's risk set (survfit's reverse KM; sksurv's reverse KM takes them out first).
 * *ibs_out (may be NULL) = the trapezoidal integral of bs over [times[0], times[nt-1]] divided
 * by times[nt-1] - times[0]: sksurv's integrated_brier_score (pycox divides by the span too
 * but integrates by Simpson's rule). CENS: the data the censoring distribution is estimated on, the
 * training part of a fold (sksurv's survival_train convention), or NULL for TEST itself
 * (pycox's EvalSurv(censor_surv = "km") and pec's default). R's pec and riskRegression use
 * G(T_i-) and G(t) as here; sksurv and pycox evaluate G(T_i) for cases (different only where
 * a censoring in CENS falls exactly on a test death time), and sksurv silently drops a term
 * whose G is 0 (1/G := 0) where this fails with SURV_BRIER_UNDEFINED.
 * Errors: SURV_BAD_ARG (TS_EINVAL: NULL, nt 0, times not increasing, S outside [0, 1]),
 * SURV_UNSUPPORTED (weights or strata in TEST or CENS), the data check tokens, and, TS_EINPUT:
 * SURV_BRIER_UNDEFINED when a term needs G = 0 (a case after the last censoring time that G
 * reaches 0 at, or patients at risk beyond it): bs_out is NaN at those times and valid at the
 * others, *ibs_out NaN; SURV_IBS_UNDEFINED when nt < 2 and ibs_out is given (bs_out valid). */
int ts_surv_brier(const ts_surv_data *test, const double *surv, const double *times, size_t nt,
                  const ts_surv_data *cens, double *bs_out, double *ibs_out);

/* ------------------------------------------------------ bootstrap of C ---- */

/* Percentile bootstrap of Harrell's C (ts_surv_concordance with TS_TIMEWT_N, no truncation):
 * N_BOOT resamples of D's n rows drawn with replacement (rows keep their time, event, weight,
 * stratum and risk), deterministic from SEED (splitmix64 with unbiased bounded draws: the same
 * resamples on every platform and thread). Resamples in which C is undefined (no comparable
 * pair) are skipped; ts_surv_concordance_boot_reps counts them. *LO, *HI: R's
 * quantile(reps, c((1 - level)/2, (1 + level)/2), type = 7) of the defined replicates;
 * *BOOT_SD their sd() (denominator m - 1). Any out pointer may be NULL. Errors: SURV_BAD_ARG
 * (TS_EINVAL: n_boot < 1, level not in (0, 1), NaN risk), the data check tokens,
 * SURV_BOOT_UNDEFINED (TS_EINPUT: fewer than 2 defined replicates; outputs NaN). */
int ts_surv_concordance_boot(const ts_surv_data *d, const double *risk, int n_boot, uint64_t seed,
                             double level, double *lo, double *hi, double *boot_sd);

/* The resamples ts_surv_concordance_boot draws for (n, n_boot, seed): IDX_OUT (n_boot x n,
 * caller-allocated) gets row indices in [0, n), resample b in idx_out[b*n .. b*n + n-1]. */
int ts_surv_boot_indices(size_t n, int n_boot, uint64_t seed, size_t *idx_out);

/* Harrell's C of each of N_BOOT given resamples IDX (n_boot x n, as ts_surv_boot_indices):
 * C_OUT (n_boot) gets the replicates, NaN where undefined; *N_UNDEFINED_OUT (may be NULL)
 * their number. With ts_surv_boot_indices' indices these are the replicates
 * ts_surv_concordance_boot summarises. */
int ts_surv_concordance_boot_reps(const ts_surv_data *d, const double *risk, const size_t *idx,
                                  int n_boot, double *c_out, int *n_undefined_out);

/* ---------------------------------------------------------- Kaplan-Meier --- */

typedef struct ts_km_curve {
  int group;         /* stratum label (0 when none) */
  size_t len;        /* number of distinct times (events and censorings), as R's survfit */
  double *time, *n_risk, *n_event, *n_censor; /* weighted counts */
  double *surv;      /* S(t) */
  double *std_err;   /* Greenwood SE of -log S(t), i.e. R's survfit()$std.err; the std.err
                      * column of R's summary(survfit) is the SE of S, surv * std_err */
  double *lower, *upper; /* conf.type = "log" limits (upper capped at 1; NaN where S = 0) */
  double median;     /* median survival time (NaN if not reached), R's rule for S == 0.5 */
} ts_km_curve;

typedef struct ts_km {
  size_t ncurve;
  ts_km_curve *curve; /* one per stratum label, in increasing label order */
  double conf_level;
} ts_km;

/* KM curves of D, one per stratum label of D->strata (one curve if NULL). CONF_LEVEL e.g. 0.95.
 * Errors: data check tokens, TS_EINVAL (KM_BAD_ARG), TS_ENOMEM. */
int ts_km_fit_new(const ts_surv_data *d, double conf_level, ts_km **km_out);
void ts_km_free(ts_km **km);

/* ------------------------------------------------------------- log-rank ---- */

typedef struct ts_logrank {
  size_t ngroup;
  int *group;            /* ngroup labels, increasing */
  double *n, *observed, *expected; /* per group (weighted) */
  double chisq, p;
  int df;
} ts_logrank;

/* Log-rank test (R's survdiff, rho = 0) of GROUP labels (n ints) on D; D->strata is ignored.
 * Needs >= 2 groups (LOGRANK_ONE_GROUP otherwise). */
int ts_logrank_new(const ts_surv_data *d, const int *group, ts_logrank **lr_out);
void ts_logrank_free(ts_logrank **lr);

/* Risk groups from a score: with ncut == 0, split at the median of SCORE (group 1: score >
 * median, i.e. high risk; group 0 otherwise); else group g = number of CUTS below the score
 * (cuts increasing). Writes GROUP_OUT (n), then the KM curves and log-rank test of the groups
 * (either out pointer may be NULL). */
int ts_surv_risk_groups(const ts_surv_data *d, const double *score, const double *cuts,
                        size_t ncut, int *group_out, ts_km **km_out, ts_logrank **lr_out);

#ifdef __cplusplus
}
#endif
#endif
