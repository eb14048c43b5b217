/* test_survival_eval.c — CUnit suite of the evaluation statistics of stats/ts_survival.h: the
 * IPCW Brier score and its integral, Uno's C, the percentile bootstrap of Harrell's C.
 *
 * The oracle is R, run live (as tests/test_survival.c): the set-up runs
 * tests/r_survival_eval_oracle.R, which exports lung and writes R's numbers beside it; the
 * bootstrap test runs Rscript a second time on the replicates tessera drew, for R's
 * quantile(type = 7) and sd() of them. No R fails every comparison (a skipped comparison is a
 * failed one). Tolerances: Brier scores 1e-10 (absolute), Uno's C 1e-8, the bootstrap
 * percentiles equal to R's to the last bit (1e-15 relative), the bootstrap SD within 15% of
 * R's infinitesimal-jackknife SE. Invariant tests: hand-computed Brier scores with a death and
 * a censoring at the same time, the undefined cases and their tokens, determinism of the
 * bootstrap from its seed.
 */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ts_survival.h"
#include "ts_test_util.h"

static char oracle_error[4096];

static const char *const ORACLE_FILES[] = {
    "lung.csv", "r_brier_times.csv", "r_brier_surv_all.csv", "r_brier_all.csv",
    "r_brier_surv_split.csv", "r_brier_split.csv", "r_concordance_eval.csv"};

static const char *src_dir(void) {
  const char *src = getenv("TS_SOURCE_DIR");
#ifdef TS_SOURCE_DIR
  if (!src || !*src) src = TS_SOURCE_DIR;
#endif
  return src && *src ? src : ".";
}

/* Rscript --vanilla ARGS... with R's chatter on stderr; "" or why not into oracle_error. */
static int rscript(const char *const *argv) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(STDERR_FILENO, STDOUT_FILENO);
    execvp("Rscript", (char *const *)argv);
    fprintf(stderr, "test_survival_eval: cannot run Rscript: %s\n", strerror(errno));
    _exit(127);
  }
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) != pid) {
    snprintf(oracle_error, sizeof oracle_error, "fork/wait of Rscript failed: %s", strerror(errno));
    return -1;
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    snprintf(oracle_error, sizeof oracle_error, "Rscript %s exited with status %d%s", argv[2],
             WIFEXITED(st) ? WEXITSTATUS(st) : -1,
             WIFEXITED(st) && WEXITSTATUS(st) == 127
                 ? " (no Rscript on PATH: install r-base-core r-cran-survival)"
                 : " (is the survival package installed? r-cran-survival)");
    return -1;
  }
  return 0;
}

static int oracle_init(void) {
  if (ts_test_tmpdir_make("ts_test_survival_eval") < 0) {
    snprintf(oracle_error, sizeof oracle_error, "cannot make a temporary directory");
    return 0;
  }
  char script[1100];
  snprintf(script, sizeof script, "%s/tests/r_survival_eval_oracle.R", src_dir());
  const char *argv[] = {"Rscript", "--vanilla", script, ts_test_tmpdir, NULL};
  rscript(argv);
  return 0;
}

static bool have_data(void) {
  char p[1200];
  for (size_t i = 0; !oracle_error[0] && i < sizeof ORACLE_FILES / sizeof ORACLE_FILES[0]; i++) {
    ts_test_path(p, sizeof p, ORACLE_FILES[i]);
    if (access(p, R_OK) != 0) snprintf(oracle_error, sizeof oracle_error, "the R oracle did not write %s", p);
  }
  if (oracle_error[0]) {
    fprintf(stderr, "\n  R oracle unavailable: %s\n", oracle_error);
    CU_FAIL("R oracle unavailable: a skipped comparison is a failed one");
    return false;
  }
  return true;
}

static ts_csv_table *table(const char *file) {
  char p[1200];
  ts_test_path(p, sizeof p, file);
  ts_csv_table *t = NULL;
  if (ts_csv_read(p, &t) < 0) fprintf(stderr, "%s\n", ts_error_message());
  return t;
}

#define CHECK_ABS(got, want, tol, what)                                                      \
  do {                                                                                       \
    double g_ = (got), w_ = (want);                                                          \
    if (!(fabs(g_ - w_) <= (tol)))                                                           \
      fprintf(stderr, "\n  MISMATCH %s: tessera %.17g R %.17g (abs %.3g)\n", (what), g_, w_, \
              fabs(g_ - w_));                                                                \
    CU_ASSERT(fabs(g_ - w_) <= (tol));                                                       \
  } while (0)

/* lung as the oracle wrote it, with its Cox design (age, sex, ph_ecog) */
typedef struct lungset {
  ts_csv_table *tab;
  ts_surv_data d;
  double *x;
} lungset;

static bool load_lung(lungset *s) {
  memset(s, 0, sizeof *s);
  static const char *const cov[] = {"age", "sex", "ph_ecog"};
  s->tab = table("lung.csv");
  return s->tab && ts_surv_data_from_csv(s->tab, "time", "event", NULL, NULL, &s->d) == 0 &&
         ts_csv_design(s->tab, cov, 3, &s->x) == 0;
}

static void unload_lung(lungset *s) {
  free(s->x);
  ts_surv_data_release(&s->d);
  ts_csv_free(&s->tab);
}

static double max_dev; /* largest |tessera - R| of the last comparison, for the log */

/* Brier scores of S (file SURV_FILE) on TEST with G from CENS against R's REF_FILE */
static void brier_vs_r(const ts_surv_data *test, const ts_surv_data *cens, const char *surv_file,
                       const char *ref_file, const char *label) {
  ts_csv_table *tt = table("r_brier_times.csv"), *st = table(surv_file), *rt = table(ref_file);
  CU_ASSERT_PTR_NOT_NULL_FATAL(tt);
  CU_ASSERT_PTR_NOT_NULL_FATAL(st);
  CU_ASSERT_PTR_NOT_NULL_FATAL(rt);
  size_t nt = tt->nrow;
  CU_ASSERT_EQUAL_FATAL(st->ncol, nt);
  CU_ASSERT_EQUAL_FATAL(st->nrow, test->n);
  CU_ASSERT_EQUAL_FATAL(rt->nrow, nt + 1);
  double bs[64], ibs = NAN;
  CU_ASSERT_FATAL(nt <= 64);
  int rc = ts_surv_brier(test, st->values, tt->values, nt, cens, bs, &ibs);
  if (rc) fprintf(stderr, "\n  %s\n", ts_error_message());
  CU_ASSERT_EQUAL(rc, 0);
  char what[128];
  max_dev = 0;
  for (size_t k = 0; k < nt; k++) {
    snprintf(what, sizeof what, "%s Brier t=%g", label, tt->values[k]);
    CHECK_ABS(bs[k], rt->values[k * rt->ncol + 1], 1e-10, what);
    max_dev = fmax(max_dev, fabs(bs[k] - rt->values[k * rt->ncol + 1]));
  }
  snprintf(what, sizeof what, "%s integrated Brier", label);
  CHECK_ABS(ibs, rt->values[nt * rt->ncol + 1], 1e-10, what);
  max_dev = fmax(max_dev, fabs(ibs - rt->values[nt * rt->ncol + 1]));
  fprintf(stderr, "\n  %s: %zu Brier scores + IBS %.6f, max |tessera - R| = %.3g\n", label, nt, ibs,
          max_dev);
  ts_csv_free(&tt);
  ts_csv_free(&st);
  ts_csv_free(&rt);
}

static void test_survival_eval_brier_matches_r(void) {
  if (!have_data()) return;
  lungset s;
  CU_ASSERT_FATAL(load_lung(&s));
  /* G from the test data itself, both as NULL and passed explicitly */
  brier_vs_r(&s.d, NULL, "r_brier_surv_all.csv", "r_brier_all.csv", "lung, cens = NULL");
  brier_vs_r(&s.d, &s.d, "r_brier_surv_all.csv", "r_brier_all.csv", "lung, cens = lung");
  unload_lung(&s);
}

static void test_survival_eval_brier_train_test_matches_r(void) {
  if (!have_data()) return;
  lungset s;
  CU_ASSERT_FATAL(load_lung(&s));
  size_t n = s.d.n, nte = 0, ntr = 0;
  double *tt = malloc(n * sizeof *tt), *tr = malloc(n * sizeof *tr);
  int *et = malloc(n * sizeof *et), *er = malloc(n * sizeof *er);
  CU_ASSERT_FATAL(tt && tr && et && er);
  for (size_t i = 0; i < n; i++) { /* R: seq_len(n) %% 3 == 0 is the test part */
    if ((i + 1) % 3 == 0) {
      tt[nte] = s.d.time[i];
      et[nte++] = s.d.event[i];
    } else {
      tr[ntr] = s.d.time[i];
      er[ntr++] = s.d.event[i];
    }
  }
  ts_surv_data te = {nte, tt, et, NULL, NULL, NULL}, trn = {ntr, tr, er, NULL, NULL, NULL};
  brier_vs_r(&te, &trn, "r_brier_surv_split.csv", "r_brier_split.csv", "lung test third, G of the rest");
  free(tt);
  free(tr);
  free(et);
  free(er);
  unload_lung(&s);
}

/* Five patients, a death and a censoring tied at t = 2: G(2-) = 1 for the death at 2, G(2) =
 * 3/4 (survfit's reverse KM keeps the death in the censoring risk set at 2). */
static void test_survival_eval_brier_hand_ties(void) {
  double time[] = {1, 2, 2, 3, 4};
  int event[] = {1, 1, 0, 0, 1};
  ts_surv_data d = {5, time, event, NULL, NULL, NULL};
  double tk[] = {1.5, 2, 3.5};
  double S[5 * 3];
  for (int i = 0; i < 5; i++)
    for (int k = 0; k < 3; k++) S[i * 3 + k] = 0.9 - 0.1 * i - 0.2 * k;
  double bs[3], ibs;
  CU_ASSERT_EQUAL_FATAL(ts_surv_brier(&d, S, tk, 3, NULL, bs, &ibs), 0);
  /* G: jump at 2 by (4 - 1)/4 = 3/4, at 3 by (2 - 1)/2 -> 3/8 */
  double s = 0; /* t = 1.5: case 0 (G(1-) = 1); at risk 1..4 with G(1.5) = 1 */
  s += S[0] * S[0];
  for (int i = 1; i < 5; i++) s += (1 - S[i * 3]) * (1 - S[i * 3]);
  CHECK_ABS(bs[0], s / 5, 1e-15, "hand t=1.5");
  s = S[0 * 3 + 1] * S[0 * 3 + 1] / 1 + S[1 * 3 + 1] * S[1 * 3 + 1] / 1; /* cases 0, 1: G(1-), G(2-) = 1 */
  for (int i = 3; i < 5; i++) s += (1 - S[i * 3 + 1]) * (1 - S[i * 3 + 1]) / 0.75; /* G(2) */
  CHECK_ABS(bs[1], s / 5, 1e-15, "hand t=2");
  s = S[0 * 3 + 2] * S[0 * 3 + 2] + S[1 * 3 + 2] * S[1 * 3 + 2]; /* patient 3 censored at 3: 0 */
  s += (1 - S[4 * 3 + 2]) * (1 - S[4 * 3 + 2]) / 0.375;           /* G(3.5) = 3/8 */
  CHECK_ABS(bs[2], s / 5, 1e-15, "hand t=3.5");
  CHECK_ABS(ibs, (0.5 * (bs[0] + bs[1]) / 2 + 1.5 * (bs[1] + bs[2]) / 2) / 2, 1e-15, "hand IBS");
}

static void test_survival_eval_brier_undefined(void) {
  /* cens: the last observation censored at 10 -> G = 0 from 10 on */
  double ct[] = {2, 5, 8, 10}, tt[] = {3, 12, 15};
  int ce[] = {1, 0, 1, 0}, te[] = {1, 0, 1};
  ts_surv_data cens = {4, ct, ce, NULL, NULL, NULL}, test = {3, tt, te, NULL, NULL, NULL};
  double tk[] = {4, 11}, S[] = {0.5, 0.4, 0.8, 0.7, 0.6, 0.5}, bs[2], ibs = 0;
  CU_ASSERT_EQUAL(ts_surv_brier(&test, S, tk, 2, &cens, bs, &ibs), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SURV_BRIER_UNDEFINED");
  CU_ASSERT(isfinite(bs[0])); /* t = 4 needs G(3-) = 1 and G(4) = 1 */
  CU_ASSERT(isnan(bs[1]));    /* t = 11: at risk 12, 15 need G(11) = 0 */
  CU_ASSERT(isnan(ibs));
  /* one time: the scores, and a token for the integral */
  CU_ASSERT_EQUAL(ts_surv_brier(&test, S, tk, 1, &cens, bs, NULL), 0);
  CU_ASSERT_EQUAL(ts_surv_brier(&test, S, tk, 1, &cens, bs, &ibs), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SURV_IBS_UNDEFINED");
  CU_ASSERT(isfinite(bs[0]));
  /* bad arguments */
  double tbad[] = {4, 4};
  CU_ASSERT_EQUAL(ts_surv_brier(&test, S, tbad, 2, &cens, bs, NULL), TS_EINVAL);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SURV_BAD_ARG");
  double Sbad[] = {0.5, 1.2, 0.8, 0.7, 0.6, 0.5};
  CU_ASSERT_EQUAL(ts_surv_brier(&test, Sbad, tk, 2, &cens, bs, NULL), TS_EINVAL);
  double w[] = {1, 1, 1};
  ts_surv_data tw = test;
  tw.weight = w;
  CU_ASSERT_EQUAL(ts_surv_brier(&tw, S, tk, 2, NULL, bs, NULL), TS_EINVAL);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SURV_UNSUPPORTED");
}

static void test_survival_eval_uno_matches_r(void) {
  if (!have_data()) return;
  lungset s;
  CU_ASSERT_FATAL(load_lung(&s));
  ts_csv_table *cc = table("r_concordance_eval.csv");
  CU_ASSERT_PTR_NOT_NULL_FATAL(cc);
  CU_ASSERT_EQUAL_FATAL(cc->nrow, 4);
  ts_cox_fit *f = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_cox_fit_new(&s.d, s.x, 3, NULL, &f), 0);
  static const double tau[] = {INFINITY, 365, 353};
  static const char *const label[] = {"Uno (n/G2)", "Uno (n/G2) ymax=365", "Uno (n/G2) ymax=353"};
  for (size_t r = 0; r < 3; r++) {
    ts_concordance c;
    CU_ASSERT_EQUAL_FATAL(ts_surv_uno_c(&s.d, f->lp, tau[r], &c), 0);
    CHECK_ABS(c.c, cc->values[r * cc->ncol + 1], 1e-8, label[r]);
    double se_rel = fabs(c.std_err / cc->values[r * cc->ncol + 2] - 1);
    if (se_rel > 1e-6) fprintf(stderr, "\n  %s SE: tessera %.15g R %.15g\n", label[r], c.std_err, cc->values[r * cc->ncol + 2]);
    CU_ASSERT(se_rel <= 1e-6);
    fprintf(stderr, "\n  %s: C %.12f, |tessera - R| = %.3g, SE rel diff %.3g\n", label[r], c.c,
            fabs(c.c - cc->values[r * cc->ncol + 1]), se_rel);
  }
  ts_cox_fit_free(&f);
  ts_csv_free(&cc);
  unload_lung(&s);
}

/* R's quantile(type = 7) and sd() of the replicates in FILE, written to OUT */
static const char R_QUANTILE[] =
    "a <- commandArgs(TRUE); x <- read.csv(a[1])$c; x <- x[!is.na(x)]; lv <- as.numeric(a[3]);"
    "q <- unname(quantile(x, c((1 - lv) / 2, (1 + lv) / 2), type = 7));"
    "write.csv(data.frame(v = sprintf('%.17g', c(q, sd(x), length(x)))), a[2], row.names = FALSE, quote = FALSE)";

static void test_survival_eval_boot_matches_r(void) {
  if (!have_data()) return;
  lungset s;
  CU_ASSERT_FATAL(load_lung(&s));
  ts_csv_table *cc = table("r_concordance_eval.csv");
  CU_ASSERT_PTR_NOT_NULL_FATAL(cc);
  ts_cox_fit *f = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_cox_fit_new(&s.d, s.x, 3, NULL, &f), 0);
  enum { B = 2000 };
  const uint64_t seed = 20260601;
  const double level = 0.95;
  size_t n = s.d.n;
  double lo, hi, sd, lo2, hi2, sd2;
  CU_ASSERT_EQUAL_FATAL(ts_surv_concordance_boot(&s.d, f->lp, B, seed, level, &lo, &hi, &sd), 0);
  /* deterministic from the seed */
  CU_ASSERT_EQUAL_FATAL(ts_surv_concordance_boot(&s.d, f->lp, B, seed, level, &lo2, &hi2, &sd2), 0);
  CU_ASSERT(lo == lo2 && hi == hi2 && sd == sd2);
  /* the replicates through the given-indices path: same seed, same resamples */
  size_t *idx = malloc((size_t)B * n * sizeof *idx);
  double *reps = malloc(B * sizeof *reps);
  CU_ASSERT_FATAL(idx && reps);
  CU_ASSERT_EQUAL_FATAL(ts_surv_boot_indices(n, B, seed, idx), 0);
  int und = -1;
  CU_ASSERT_EQUAL_FATAL(ts_surv_concordance_boot_reps(&s.d, f->lp, idx, B, reps, &und), 0);
  CU_ASSERT_EQUAL(und, 0);
  char rp[1200], op[1200], lv[32];
  ts_test_path(rp, sizeof rp, "boot_reps.csv");
  ts_test_path(op, sizeof op, "r_boot_quantile.csv");
  FILE *fp = fopen(rp, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
  fprintf(fp, "c\n");
  for (int b = 0; b < B; b++) fprintf(fp, "%.17g\n", reps[b]);
  fclose(fp);
  snprintf(lv, sizeof lv, "%.17g", level);
  const char *argv[] = {"Rscript", "--vanilla", "-e", R_QUANTILE, rp, op, lv, NULL};
  CU_ASSERT_EQUAL_FATAL(rscript(argv), 0);
  ts_csv_table *q = table("r_boot_quantile.csv");
  CU_ASSERT_PTR_NOT_NULL_FATAL(q);
  CU_ASSERT_EQUAL_FATAL(q->nrow, 4);
  double rlo = q->values[0], rhi = q->values[1], rsd = q->values[2];
  CU_ASSERT_EQUAL(q->values[3], B);
  if (lo != rlo || hi != rhi)
    fprintf(stderr, "\n  percentiles: tessera %.17g %.17g R %.17g %.17g\n", lo, hi, rlo, rhi);
  CU_ASSERT(fabs(lo - rlo) <= 1e-15 * rlo);
  CU_ASSERT(fabs(hi - rhi) <= 1e-15 * rhi);
  CU_ASSERT(fabs(sd - rsd) <= 1e-12 * rsd);
  /* the bootstrap SD against R's infinitesimal-jackknife SE of Harrell's C */
  double ij = cc->values[3 * cc->ncol + 2], c = cc->values[3 * cc->ncol + 1];
  fprintf(stderr,
          "\n  lung bootstrap (B = %d, seed %llu): C %.4f, 95%% CI [%.6f, %.6f] (R's quantile: "
          "[%.6f, %.6f], |diff| %.3g %.3g), boot SD %.6f vs IJ SE %.6f (ratio %.3f)\n",
          B, (unsigned long long)seed, c, lo, hi, rlo, rhi, fabs(lo - rlo), fabs(hi - rhi), sd, ij,
          sd / ij);
  CU_ASSERT(fabs(sd / ij - 1) <= 0.15);
  CU_ASSERT(lo < c && c < hi);
  /* undefined resamples are counted: with one event in 40 rows, many resamples have none */
  double t1[40], r1[40];
  int e1[40] = {0};
  for (int i = 0; i < 40; i++) {
    t1[i] = i + 1;
    r1[i] = (i * 7) % 11;
  }
  e1[3] = 1;
  ts_surv_data d1 = {40, t1, e1, NULL, NULL, NULL};
  CU_ASSERT_EQUAL(ts_surv_boot_indices(40, 200, 7, idx), 0);
  CU_ASSERT_EQUAL(ts_surv_concordance_boot_reps(&d1, r1, idx, 200, reps, &und), 0);
  CU_ASSERT(und > 0 && und < 200);
  int nan = 0;
  for (int b = 0; b < 200; b++) nan += isnan(reps[b]);
  CU_ASSERT_EQUAL(nan, und);
  CU_ASSERT_EQUAL(ts_surv_concordance_boot(&d1, r1, 200, 7, 0.9, &lo, &hi, &sd), 0);
  CU_ASSERT(lo <= hi);
  /* no event at all: every resample undefined -> token */
  e1[3] = 0;
  CU_ASSERT_EQUAL(ts_surv_concordance_boot(&d1, r1, 50, 7, 0.9, &lo, &hi, &sd), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SURV_BOOT_UNDEFINED");
  CU_ASSERT(isnan(lo) && isnan(hi) && isnan(sd));
  CU_ASSERT_EQUAL(ts_surv_concordance_boot(&d1, r1, 50, 7, 1.0, &lo, &hi, &sd), TS_EINVAL);
  free(idx);
  free(reps);
  ts_csv_free(&q);
  ts_cox_fit_free(&f);
  ts_csv_free(&cc);
  unload_lung(&s);
}

/* n above the radix-sort threshold (1024), with tied times, strata and case weights: Harrell's C
 * against brute-force pair counting, and the Breslow Cox fit against the O(n^2) partial
 * likelihood written out (its log-likelihood equal, its score zero at the estimate); and at
 * n = 24000 (the threaded Gram product) the information against differences of the score. */
static void test_survival_eval_large_n_paths(void) {
  enum { N = 3000, P = 3 };
  double *time = malloc(N * sizeof *time), *w = malloc(N * sizeof *w), *x = malloc(N * P * sizeof *x),
         *r = malloc(N * sizeof *r);
  int *ev = malloc(N * sizeof *ev), *st = malloc(N * sizeof *st);
  CU_ASSERT_FATAL(time && w && x && r && ev && st);
  uint64_t rs = 99;
  for (int i = 0; i < N; i++) {
    double lp = 0;
    for (int j = 0; j < P; j++) {
      x[i * P + j] = ts_test_rng_normal(&rs);
      lp += (0.4 - 0.3 * j) * x[i * P + j];
    }
    double t = -log(ts_test_rng_unif(&rs)) * exp(-lp), c = -log(ts_test_rng_unif(&rs)) * 2;
    time[i] = ceil(fmin(t, c) * 10) / 10; /* heavy ties */
    ev[i] = t <= c;
    w[i] = 0.5 + (double)(i % 4) / 2;
    st[i] = (int)(i % 3) - 1;
    r[i] = floor(lp * 4); /* tied risks */
  }
  ts_surv_data d = {N, time, ev, w, st, NULL};
  ts_concordance c;
  CU_ASSERT_EQUAL_FATAL(ts_surv_concordance(&d, r, TS_TIMEWT_N, INFINITY, &c), 0);
  double con = 0, dis = 0, tie = 0;
  for (int i = 0; i < N; i++) {
    if (!ev[i]) continue;
    for (int j = 0; j < N; j++) {
      if (st[j] != st[i] || !(time[j] > time[i] || (time[j] == time[i] && !ev[j]))) continue;
      double ww = w[i] * w[j];
      if (r[i] > r[j]) con += ww;
      else if (r[i] < r[j]) dis += ww;
      else tie += ww;
    }
  }
  CHECK_ABS(c.concordant, con, 1e-6 * con, "large-n concordant pairs");
  CHECK_ABS(c.discordant, dis, 1e-6 * dis, "large-n discordant pairs");
  CHECK_ABS(c.c, (con + tie / 2) / (con + dis + tie), 1e-12, "large-n Harrell's C");

  ts_cox_options o;
  ts_cox_options_default(&o);
  o.ties = TS_COX_BRESLOW;
  o.concordance = false;
  ts_cox_fit *f = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_cox_fit_new(&d, x, P, &o, &f), 0);
  CU_ASSERT_EQUAL(f->status, TS_COX_CONVERGED);
  double ll = 0, u[P] = {0}, *eta = malloc(N * sizeof *eta);
  CU_ASSERT_FATAL(eta != NULL);
  for (int i = 0; i < N; i++) eta[i] = f->lp[i];
  for (int i = 0; i < N; i++) {
    if (!ev[i]) continue;
    double den = 0, num[P] = {0};
    for (int j = 0; j < N; j++) {
      if (st[j] != st[i] || time[j] < time[i]) continue;
      double e = w[j] * exp(eta[j]);
      den += e;
      for (int k = 0; k < P; k++) num[k] += e * x[j * P + k];
    }
    ll += w[i] * (eta[i] - log(den));
    for (int k = 0; k < P; k++) u[k] += w[i] * (x[i * P + k] - num[k] / den);
  }
  CHECK_ABS(f->loglik, ll, 1e-9 * fabs(ll), "large-n Breslow loglik (O(n^2) sum)");
  for (int k = 0; k < P; k++) CHECK_ABS(u[k], 0, 1e-6, "large-n Breslow score at the estimate");
  ts_cox_fit_free(&f);
  free(eta);

  /* n above the two-thread split of the information's Gram product (20000 rows), Efron ties:
   * the information of ts_cox_loglik against central differences of its score */
  enum { N2 = 24000 };
  double *t2 = malloc(N2 * sizeof *t2), *x2 = malloc(N2 * P * sizeof *x2);
  int *e2 = malloc(N2 * sizeof *e2);
  CU_ASSERT_FATAL(t2 && x2 && e2);
  for (int i = 0; i < N2; i++) {
    for (int j = 0; j < P; j++) x2[i * P + j] = ts_test_rng_normal(&rs);
    t2[i] = ceil(-log(ts_test_rng_unif(&rs)) * 50) / 10;
    e2[i] = ts_test_rng_unif(&rs) < 0.7;
  }
  ts_surv_data d2 = {N2, t2, e2, NULL, NULL, NULL};
  double beta[P] = {0.3, -0.2, 0.1}, info[P * P], up[P], um[P], ll2;
  CU_ASSERT_EQUAL_FATAL(ts_cox_loglik(&d2, x2, P, TS_COX_EFRON, beta, &ll2, NULL, info), 0);
  for (int j = 0; j < P; j++) {
    const double h = 1e-5;
    double bp[P], bm[P];
    for (int k = 0; k < P; k++) bp[k] = bm[k] = beta[k];
    bp[j] += h;
    bm[j] -= h;
    CU_ASSERT_EQUAL_FATAL(ts_cox_loglik(&d2, x2, P, TS_COX_EFRON, bp, &ll2, up, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(ts_cox_loglik(&d2, x2, P, TS_COX_EFRON, bm, &ll2, um, NULL), 0);
    for (int k = 0; k < P; k++) {
      double fd = -(up[k] - um[k]) / (2 * h);
      CHECK_ABS(info[k * P + j], fd, 1e-5 * fabs(info[j * P + j]), "n = 24000 information vs FD of the score");
    }
  }
  free(t2);
  free(x2);
  free(e2);
  free(time);
  free(w);
  free(x);
  free(r);
  free(ev);
  free(st);
}

int ts_test_register(void) {
  CU_pSuite s = CU_add_suite("survival_eval", oracle_init, ts_test_tmpdir_remove);
  if (!s) return -1;
  if (!CU_add_test(s, "test_survival_eval_brier_matches_r", test_survival_eval_brier_matches_r) ||
      !CU_add_test(s, "test_survival_eval_brier_train_test_matches_r", test_survival_eval_brier_train_test_matches_r) ||
      !CU_add_test(s, "test_survival_eval_brier_hand_ties", test_survival_eval_brier_hand_ties) ||
      !CU_add_test(s, "test_survival_eval_brier_undefined", test_survival_eval_brier_undefined) ||
      !CU_add_test(s, "test_survival_eval_uno_matches_r", test_survival_eval_uno_matches_r) ||
      !CU_add_test(s, "test_survival_eval_boot_matches_r", test_survival_eval_boot_matches_r) ||
      !CU_add_test(s, "test_survival_eval_large_n_paths", test_survival_eval_large_n_paths))
    return -1;
  return 0;
}
