/* test_surv_loss.c — the survival losses (nn/ts_surv_loss.h): PORPOISE's discrete-time NLL and
 * the weighted Cox partial likelihood.
 *
 * Oracles, run live from the suite's set-up in a fresh temporary directory:
 *  - Python (Debian's /usr/bin/python3 with python3-torch): PORPOISE's nll_loss written below
 *    after mahmoodlab/PORPOISE utils/loss_func.py (sigmoid, cumprod, the ones column, gather,
 *    clamp(min = 1e-7), log; alpha as released), on random float64 inputs written by this suite:
 *    loss, d loss / d logits, risk -sum S; and PORPOISE's bins (pandas qcut of the uncensored
 *    times, the outer edges moved to min/max of all times -/+ eps, pandas cut right = False),
 *    reproduced with numpy because Debian's python3 here has no pandas: np.quantile's linear
 *    interpolation is what pandas qcut computes, searchsorted(side = 'right') - 1 what cut does.
 *  - R (Rscript, survival): the complete cases of survival::lung (time, status, age, sex,
 *    ph.ecog; 227 patients) with weights w = 1 + (row %% 3) / 2, written by R itself; coxph's
 *    loglik at beta = (0.01, -0.5, 0.4) (init = beta, iter.max = 0) and its fitted coefficients,
 *    Breslow and Efron.
 * Without either oracle the comparison tests fail (a skipped comparison is a failed one).
 * Invariants without an oracle: hand values (ML-ANCHORS: NLL of zero logits, the 5-patient Cox
 * example), central finite differences in float64 for both losses, permutation invariance, the
 * weight schemes by hand, error tokens. Controls show the tests can fail: BioFusionNet's released
 * ordering (risk sets by predicted risk) and unweighted risk sets give values far from R's.
 */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "ts_nn.h"
#include "ts_surv_loss.h"
#include "ts_test_util.h"

/* ---- Small helpers ------------------------------------------------------------------------------ */


static ts_tensor *tensor_f64(const double *v, int64_t rows, int64_t cols) {
  int64_t s[2] = {rows, cols};
  ts_tensor *t = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_tensor_from_data(v, TS_NN_F64, s, cols > 0 ? 2 : 1, &t), 0);
  return t;
}

static double item(const ts_tensor *t) {
  double v = NAN;
  CU_ASSERT_EQUAL(ts_tensor_item(t, &v), 0);
  return v;
}

static double nll_value(const ts_tensor *logits, const int64_t *y, const int *c, double alpha) {
  ts_tensor *l = NULL;
  int rc = ts_surv_loss_nll(logits, y, c, alpha, &l);
  if (rc < 0) fprintf(stderr, "\n  %s\n", ts_error_message());
  CU_ASSERT_EQUAL(rc, 0);
  double v = l ? item(l) : NAN;
  ts_tensor_free(&l);
  return v;
}

static double cox_value(const double *r, size_t n, const double *t, const int *e, const double *w, int ties) {
  ts_tensor *rt = tensor_f64(r, (int64_t)n, 0), *l = NULL;
  int rc = ts_surv_loss_cox(rt, t, e, w, ties, &l);
  if (rc < 0) fprintf(stderr, "\n  %s\n", ts_error_message());
  CU_ASSERT_EQUAL(rc, 0);
  double v = l ? item(l) : NAN;
  ts_tensor_free(&l);
  ts_tensor_free(&rt);
  return v;
}

#define CHECK_NEAR(got, want, tol, what)                                                                     \
  do {                                                                                                       \
    double g_ = (got), w_ = (want);                                                                          \
    if (!(fabs(g_ - w_) <= (tol)))                                                                           \
      fprintf(stderr, "\n  MISMATCH %s: got %.15g want %.15g (diff %.3g)\n", (what), g_, w_, fabs(g_ - w_)); \
    CU_ASSERT(fabs(g_ - w_) <= (tol));                                                                       \
  } while (0)

static bool token_is(int rc, const char *token) {
  bool ok = rc < 0 && strcmp(ts_error_token(), token) == 0;
  if (!ok) fprintf(stderr, "\n  expected %s, got rc %d '%s'\n", token, rc, ts_error_message());
  return ok;
}

/* Whitespace- or comma-separated numbers of a file (at most cap), after `skip` header lines. */
static size_t read_numbers(const char *name, int skip, double *out, size_t cap) {
  char p[512], line[8192];
  ts_test_path(p, sizeof p, name);
  FILE *f = fopen(p, "r");
  if (!f) return 0;
  size_t n = 0;
  for (int l = 0; fgets(line, sizeof line, f); l++) {
    if (l < skip) continue;
    for (char *s = line; *s && n < cap;) {
      char *e;
      double v = strtod(s, &e);
      if (e == s) {
        s++;
        continue;
      }
      out[n++] = v;
      s = e;
    }
  }
  fclose(f);
  return n;
}

/* ---- Oracles ------------------------------------------------------------------------------------ */

enum { NB = 64, NK = 4, NALPHA = 4, NBIN_PAT = 300, NBINS = 4, MAXLUNG = 400 };
static const double ALPHAS[NALPHA] = {0.0, 0.15, 0.4, 1.0};
static double nll_logits[NB * NK];
static int64_t nll_y[NB];
static int nll_c[NB];
static double bin_time[NBIN_PAT];
static int bin_event[NBIN_PAT];
static char py_error[512], r_error[512];

/* PORPOISE's nll_loss (utils/loss_func.py at 3390dc4; MCAT's utils.py nll_loss is the same on
 * hazards), its risk, and its bins, as the repository computes them. */
static const char *PY_SCRIPT =
    "import numpy as np, torch\n"
    "def nll_loss(h, y, c, alpha=0.0, eps=1e-7):\n"
    "    y = y.type(torch.int64); c = c.type(torch.int64)\n"
    "    hazards = torch.sigmoid(h)\n"
    "    S = torch.cumprod(1 - hazards, dim=1)\n"
    "    S_padded = torch.cat([torch.ones_like(c), S], 1)\n"
    "    s_prev = torch.gather(S_padded, dim=1, index=y).clamp(min=eps)\n"
    "    h_this = torch.gather(hazards, dim=1, index=y).clamp(min=eps)\n"
    "    s_this = torch.gather(S_padded, dim=1, index=y + 1).clamp(min=eps)\n"
    "    uncensored_loss = -(1 - c) * (torch.log(s_prev) + torch.log(h_this))\n"
    "    censored_loss = -c * torch.log(s_this)\n"
    "    neg_l = censored_loss + uncensored_loss\n"
    "    loss = (1 - alpha) * neg_l + alpha * uncensored_loss\n"
    "    return loss.mean()\n"
    "z = np.loadtxt('nll_logits.txt').reshape(-1, 4)\n"
    "y = torch.tensor(np.loadtxt('nll_y.txt'), dtype=torch.int64).view(-1, 1)\n"
    "c = torch.tensor(np.loadtxt('nll_c.txt'), dtype=torch.int64).view(-1, 1)\n"
    "out = []\n"
    "for a in [0.0, 0.15, 0.4, 1.0]:\n"
    "    h = torch.tensor(z, dtype=torch.float64, requires_grad=True)\n"
    "    l = nll_loss(h, y, c, alpha=a)\n"
    "    l.backward()\n"
    "    out += [l.item()] + h.grad.reshape(-1).tolist()\n"
    "S = torch.cumprod(1 - torch.sigmoid(torch.tensor(z)), dim=1)\n"
    "out += (-S.sum(1)).tolist()\n"
    "np.savetxt('nll_out.txt', np.array(out), fmt='%.17g')\n"
    "# dataset_survival.py: qcut of the uncensored times (q=4), edges[0]/[-1] -> min-eps / max+eps of\n"
    "# all times, cut(right=False); pandas' qcut quantiles are numpy's linear ones\n"
    "t = np.loadtxt('bin_time.txt'); e = np.loadtxt('bin_event.txt')\n"
    "eps = 1e-6\n"
    "q = np.quantile(t[e == 1], np.linspace(0, 1, 5))\n"
    "assert len(np.unique(q)) == 5\n"
    "q[-1] = t.max() + eps; q[0] = t.min() - eps\n"
    "lab = np.searchsorted(q, t, side='right') - 1\n"
    "np.savetxt('bin_out.txt', np.concatenate([q, lab]), fmt='%.17g')\n";

/* lung (complete cases), weights, coxph's loglik at beta and its fits. */
static const char *R_SCRIPT =
    "suppressMessages(library(survival))\n"
    "d <- na.omit(survival::lung[, c('time', 'status', 'age', 'sex', 'ph.ecog')])\n"
    "d$status <- d$status - 1\n"
    "d$w <- 1 + (seq_len(nrow(d)) %% 3) / 2\n"
    "con <- file('lung.csv', 'w')\n"
    "writeLines('time,status,age,sex,ph.ecog,w', con)\n"
    "writeLines(sprintf('%.17g,%d,%.17g,%.17g,%.17g,%.17g', d$time, as.integer(d$status), d$age,\n"
    "                   d$sex, d$ph.ecog, d$w), con)\n"
    "close(con)\n"
    "beta <- c(0.01, -0.5, 0.4)\n"
    "con <- file('r_cox.csv', 'w')\n"
    "writeLines('ties,loglik_beta,coef_age,coef_sex,coef_ecog,loglik_fit,loglik_unweighted_beta', con)\n"
    "for (k in 0:1) {\n"
    "  ties <- c('efron', 'breslow')[k + 1]\n"
    "  f0 <- suppressWarnings(coxph(Surv(time, status) ~ age + sex + ph.ecog, data = d, weights = w,\n"
    "                              ties = ties, init = beta, iter.max = 0))\n"
    "  f <- coxph(Surv(time, status) ~ age + sex + ph.ecog, data = d, weights = w, ties = ties)\n"
    "  u <- suppressWarnings(coxph(Surv(time, status) ~ age + sex + ph.ecog, data = d, ties = ties,\n"
    "                             init = beta, iter.max = 0))\n"
    "  writeLines(sprintf('%d,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g', k, f0$loglik[1], coef(f)[1],\n"
    "                     coef(f)[2], coef(f)[3], f$loglik[2], u$loglik[1]), con)\n"
    "}\n"
    "close(con)\n"
    "set.seed(7)\n" /* heavy ties: deaths and censorings tied at 10 distinct times */
    "m <- 80\n"
    "s <- data.frame(time = sample(1:10, m, replace = TRUE), status = rbinom(m, 1, 0.6), x = rnorm(m),\n"
    "                w = runif(m, 0.5, 2.5))\n"
    "con <- file('ties.csv', 'w')\n"
    "writeLines('time,status,x,w', con)\n"
    "writeLines(sprintf('%.17g,%d,%.17g,%.17g', s$time, as.integer(s$status), s$x, s$w), con)\n"
    "close(con)\n"
    "con <- file('r_ties.csv', 'w')\n"
    "writeLines('ties,loglik_beta', con)\n"
    "for (k in 0:1) {\n"
    "  f <- suppressWarnings(coxph(Surv(time, status) ~ x, data = s, weights = w,\n"
    "                             ties = c('efron', 'breslow')[k + 1], init = 0.7, iter.max = 0))\n"
    "  writeLines(sprintf('%d,%.17g', k, f$loglik[1]), con)\n"
    "}\n"
    "close(con)\n";

static int suite_init(void) {
  if (ts_test_tmpdir_make("ts_test_surv_loss") < 0) return -1;
  if (ts_nn_set_num_threads(1) < 0) return -1;
  uint64_t s = 20240611;
  for (int i = 0; i < NB * NK; i++)
    nll_logits[i] = 2.0 * ts_test_rng_normal(&s);
  for (int b = 0; b < NB; b++) {
    nll_y[b] = (int64_t)(ts_test_rng_next(&s) % NK);
    nll_c[b] = ts_test_rng_unif(&s) < 0.4;
  }
  for (int i = 0; i < NBIN_PAT; i++) {
    bin_time[i] = round(-40.0 * log(ts_test_rng_unif(&s)) * 100) / 100; /* months, 2 decimals (ties) */
    bin_event[i] = ts_test_rng_unif(&s) < 0.55;
  }
  double yv[NB], cv[NB], ev[NBIN_PAT];
  for (int b = 0; b < NB; b++)
    yv[b] = (double)nll_y[b], cv[b] = nll_c[b];
  for (int i = 0; i < NBIN_PAT; i++)
    ev[i] = bin_event[i];
  const struct {
    const char *name;
    const double *v;
    size_t n, per;
  } files[] = {{"nll_logits.txt", nll_logits, NB * NK, NK},
               {"nll_y.txt", yv, NB, 1},
               {"nll_c.txt", cv, NB, 1},
               {"bin_time.txt", bin_time, NBIN_PAT, 1},
               {"bin_event.txt", ev, NBIN_PAT, 1}};
  for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
    char p[512];
    ts_test_path(p, sizeof p, files[k].name);
    FILE *f = fopen(p, "w");
    if (!f) return -1;
    for (size_t i = 0; i < files[k].n; i++)
      fprintf(f, "%.17g%s", files[k].v[i], (i + 1) % files[k].per == 0 ? "\n" : " ");
    fclose(f);
  }
  if (ts_test_python("oracle.py", PY_SCRIPT) != 0)
    snprintf(py_error, sizeof py_error, "/usr/bin/python3 oracle.py failed: is python3-torch installed?");
  char p[512], cmd[1024];
  ts_test_path(p, sizeof p, "oracle.R");
  FILE *f = fopen(p, "w");
  if (!f) return -1;
  fputs(R_SCRIPT, f);
  fclose(f);
  snprintf(cmd, sizeof cmd, "cd '%s' && Rscript --vanilla oracle.R > r.log 2>&1", ts_test_tmpdir);
  int rc = system(cmd);
  if (rc != 0) {
    snprintf(r_error, sizeof r_error,
             "Rscript oracle.R failed (status %d): are r-base-core and r-cran-survival installed?",
             WIFEXITED(rc) ? WEXITSTATUS(rc) : rc);
    snprintf(cmd, sizeof cmd, "cat '%s/r.log' >&2", ts_test_tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "(no R log)\n");
  }
  return 0;
}

static int suite_clean(void) {
  return ts_test_tmpdir_remove(), 0;
}

static bool have(const char *err, const char *what) {
  if (!err[0]) return true;
  fprintf(stderr, "\n  %s oracle unavailable: %s\n", what, err);
  CU_FAIL("oracle unavailable: a skipped comparison is a failed one");
  return false;
}

/* ---- 1. NLL ------------------------------------------------------------------------------------- */

static void test_surv_loss_nll_hand_values(void) {
  double z[NK] = {0, 0, 0, 0};
  ts_tensor *lz = tensor_f64(z, 1, NK);
  const double want[NK] = {0.693147, 1.386294, 2.079442, 2.772589}; /* (y + 1) ln 2 */
  int unc = 0, cen = 1;
  for (int64_t y = 0; y < NK; y++) {
    char what[64];
    snprintf(what, sizeof what, "uncensored y=%d", (int)y);
    CHECK_NEAR(nll_value(lz, &y, &unc, 0.4), want[y], 1e-6, what);
    /* censored in bin y: alive at its end, -log S_y = (y + 1) ln 2, weighted (1 - alpha) */
    snprintf(what, sizeof what, "censored y=%d", (int)y);
    CHECK_NEAR(nll_value(lz, &y, &cen, 0.0), (double)(y + 1) * M_LN2, 1e-12, what);
    CHECK_NEAR(nll_value(lz, &y, &cen, 0.4), 0.6 * (double)(y + 1) * M_LN2, 1e-12, what);
  }
  /* a censored case by hand with non-zero logits: z = (1, -1, 0.5, 2), y = 1, censored:
   * -log((1 - s(1))(1 - s(-1))) = log(1 + e) + log(1 + e^-1) = 1.3132617 + 0.3132617 */
  double z2[NK] = {1, -1, 0.5, 2};
  ts_tensor *lz2 = tensor_f64(z2, 1, NK);
  int64_t y1 = 1;
  CHECK_NEAR(nll_value(lz2, &y1, &cen, 0.0), 1.626523, 1e-6, "censored by hand");
  /* uncensored in bin 2: -log(S_1) - log h_2 = 1.626523 + log(1 + e^-0.5) = 1.626523 + 0.474077 */
  int64_t y2 = 2;
  CHECK_NEAR(nll_value(lz2, &y2, &unc, 0.0), 2.100600, 1e-6, "uncensored by hand");
  /* the mean of a batch is the mean of its rows */
  double zz[2 * NK] = {1, -1, 0.5, 2, 0, 0, 0, 0};
  ts_tensor *lzz = tensor_f64(zz, 2, NK);
  int64_t yy[2] = {1, 3};
  int cc[2] = {1, 0};
  CHECK_NEAR(nll_value(lzz, yy, cc, 0.0), (1.626523 + 2.772589) / 2, 2e-6, "batch mean");
  /* PORPOISE's risk of zero logits: -(1/2 + 1/4 + 1/8 + 1/16) */
  ts_tensor *r = NULL;
  CU_ASSERT_EQUAL(ts_surv_loss_nll_risk(lz, &r), 0);
  CHECK_NEAR(item(r), -0.9375, 1e-12, "risk");
  /* the clamp: S and h below 1e-7 give -log(1e-7) and finite (zero) gradients, float32 too */
  float big[NK] = {1000, -1000, 30, 30};
  int64_t s1[2] = {1, NK};
  ts_tensor *lb = NULL, *l = NULL, *g = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_tensor_from_data(big, TS_NN_F32, s1, 2, &lb), 0);
  CU_ASSERT_EQUAL(ts_tensor_set_requires_grad(lb, true), 0);
  int64_t y3 = 3;
  CU_ASSERT_EQUAL_FATAL(ts_surv_loss_nll(lb, &y3, &unc, 0.0, &l), 0);
  /* S_pad[3] = S_2 = 0 is clamped to 1e-7; h_3 = sigmoid(30) rounds to 1 */
  CHECK_NEAR(item(l), -log(1e-7), 1e-4, "clamped uncensored");
  CU_ASSERT_EQUAL(ts_tensor_backward(l), 0);
  CU_ASSERT_EQUAL(ts_tensor_grad(lb, &g), 0);
  float gv[NK];
  CU_ASSERT_EQUAL(ts_tensor_copy_to(g, gv, sizeof gv, TS_NN_F32), 0);
  for (int k = 0; k < NK; k++)
    CU_ASSERT(isfinite(gv[k]));
  ts_tensor_free(&l), ts_tensor_free(&g), ts_tensor_free(&lb), ts_tensor_free(&r);
  ts_tensor_free(&lz), ts_tensor_free(&lz2), ts_tensor_free(&lzz);
}

static void test_surv_loss_nll_matches_porpoise(void) {
  if (!have(py_error, "Python")) return;
  enum { PER = 1 + NB * NK };
  static double ref[NALPHA * PER + NB];
  size_t got = read_numbers("nll_out.txt", 0, ref, sizeof ref / sizeof ref[0]);
  CU_ASSERT_EQUAL_FATAL(got, sizeof ref / sizeof ref[0]);
  double worst_l = 0, worst_g = 0, worst_f32 = 0;
  for (int a = 0; a < NALPHA; a++) {
    ts_tensor *z = tensor_f64(nll_logits, NB, NK), *l = NULL, *g = NULL;
    CU_ASSERT_EQUAL(ts_tensor_set_requires_grad(z, true), 0);
    CU_ASSERT_EQUAL_FATAL(ts_surv_loss_nll(z, nll_y, nll_c, ALPHAS[a], &l), 0);
    CU_ASSERT_EQUAL(ts_tensor_backward(l), 0);
    CU_ASSERT_EQUAL_FATAL(ts_tensor_grad(z, &g), 0);
    double gv[NB * NK];
    CU_ASSERT_EQUAL(ts_tensor_copy_to(g, gv, sizeof gv, TS_NN_F64), 0);
    const double *want = ref + a * PER;
    worst_l = fmax(worst_l, fabs(item(l) - want[0]) / fabs(want[0]));
    for (int i = 0; i < NB * NK; i++)
      worst_g = fmax(worst_g, fabs(gv[i] - want[1 + i]));
    /* float32 logits against the float64 reference */
    ts_tensor *z32 = NULL, *l32 = NULL;
    CU_ASSERT_EQUAL(ts_tensor_to_dtype(z, TS_NN_F32, &z32), 0);
    CU_ASSERT_EQUAL_FATAL(ts_surv_loss_nll(z32, nll_y, nll_c, ALPHAS[a], &l32), 0);
    worst_f32 = fmax(worst_f32, fabs(item(l32) - want[0]) / fabs(want[0]));
    ts_tensor_free(&z), ts_tensor_free(&l), ts_tensor_free(&g), ts_tensor_free(&z32), ts_tensor_free(&l32);
  }
  ts_tensor *z = tensor_f64(nll_logits, NB, NK), *r = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_surv_loss_nll_risk(z, &r), 0);
  double rv[NB], worst_r = 0;
  CU_ASSERT_EQUAL(ts_tensor_copy_to(r, rv, sizeof rv, TS_NN_F64), 0);
  for (int b = 0; b < NB; b++)
    worst_r = fmax(worst_r, fabs(rv[b] - ref[NALPHA * PER + b]));
  fprintf(stderr, "[vs PORPOISE: loss rel %.2g, grad abs %.2g, risk abs %.2g, f32 loss rel %.2g] ", worst_l,
          worst_g, worst_r, worst_f32);
  CU_ASSERT(worst_l < 1e-6);
  CU_ASSERT(worst_g < 1e-6);
  CU_ASSERT(worst_r < 1e-6);
  CU_ASSERT(worst_f32 < 1e-5);
  /* control: the event indicator in place of PORPOISE's censorship gives another loss */
  int flipped[NB];
  for (int b = 0; b < NB; b++)
    flipped[b] = !nll_c[b];
  CU_ASSERT(fabs(nll_value(z, nll_y, flipped, 0.0) - ref[0]) > 1e-2);
  ts_tensor_free(&z), ts_tensor_free(&r);
}

static void test_surv_loss_bins_match_porpoise(void) {
  if (!have(py_error, "Python")) return;
  double ref[NBINS + 1 + NBIN_PAT], edges[NBINS + 1];
  int64_t bins[NBIN_PAT];
  CU_ASSERT_EQUAL_FATAL(read_numbers("bin_out.txt", 0, ref, NBINS + 1 + NBIN_PAT), NBINS + 1 + NBIN_PAT);
  CU_ASSERT_EQUAL_FATAL(ts_surv_loss_bins_make(NBIN_PAT, bin_time, bin_event, NBINS, 1e-6, edges), 0);
  CU_ASSERT_EQUAL_FATAL(ts_surv_loss_bins_assign(NBIN_PAT, bin_time, edges, NBINS, bins), 0);
  double worst = 0;
  for (int k = 0; k <= NBINS; k++)
    worst = fmax(worst, fabs(edges[k] - ref[k]) / fmax(fabs(ref[k]), 1e-300));
  int differ = 0, count[NBINS] = {0};
  for (int i = 0; i < NBIN_PAT; i++) {
    differ += bins[i] != (int64_t)ref[NBINS + 1 + i];
    count[bins[i]]++;
  }
  fprintf(stderr, "[edges rel %.2g, %d bins differ; counts %d %d %d %d] ", worst, differ, count[0], count[1],
          count[2], count[3]);
  CU_ASSERT(worst < 1e-12);
  CU_ASSERT_EQUAL(differ, 0);
  /* outside the edges: first / last bin; bad edges rejected */
  double out_t[2] = {0.0, 1e9};
  int64_t ob[2] = {-1, -1};
  double e2[3] = {1, 2, 3};
  CU_ASSERT_EQUAL(ts_surv_loss_bins_assign(2, out_t, e2, 2, ob), 0);
  CU_ASSERT(ob[0] == 0 && ob[1] == 1);
  double bad[3] = {1, 1, 3};
  CU_ASSERT(token_is(ts_surv_loss_bins_assign(2, out_t, bad, 2, ob), "NN_ARG"));
  /* too few distinct event times (pandas qcut raises), no event at all */
  double tt[5] = {1, 2, 2, 2, 5};
  int ee[5] = {1, 1, 1, 1, 0}, none[5] = {0};
  CU_ASSERT(token_is(ts_surv_loss_bins_make(5, tt, ee, 4, 1e-6, edges), "SURV_LOSS_BINS"));
  CU_ASSERT(token_is(ts_surv_loss_bins_make(5, tt, none, 4, 1e-6, edges), "SURV_LOSS_BINS"));
  CU_ASSERT(token_is(ts_surv_loss_bins_make(5, tt, ee, 1, 0.0, edges), "NN_ARG"));
}

/* ---- 2. Cox ------------------------------------------------------------------------------------- */

/* The 5-patient example of ML-ANCHORS: -log partial likelihood 3.580325 (Breslow), 3.234691
 * (Efron); 4 events, so the loss is a quarter of it. */
static void test_surv_loss_cox_hand_values(void) {
  double t[5] = {1, 2, 2, 3, 4}, r[5] = {.5, -.2, .1, 0, -1};
  int e[5] = {1, 1, 1, 0, 1};
  CHECK_NEAR(4 * cox_value(r, 5, t, e, NULL, TS_SURV_LOSS_BRESLOW), 3.580325, 1e-6, "Breslow");
  CHECK_NEAR(4 * cox_value(r, 5, t, e, NULL, TS_SURV_LOSS_EFRON), 3.234691, 1e-6, "Efron");
  /* any row order gives the same loss (the ordering is by time, inside) */
  int perm[5] = {3, 0, 4, 2, 1};
  double t2[5], r2[5], w2[5], w[5] = {1, 2, .5, 3, 1.5};
  int e2[5];
  for (int i = 0; i < 5; i++)
    t2[i] = t[perm[i]], r2[i] = r[perm[i]], e2[i] = e[perm[i]], w2[i] = w[perm[i]];
  for (int ties = 0; ties < 2; ties++)
    CHECK_NEAR(cox_value(r2, 5, t2, e2, w2, ties), cox_value(r, 5, t, e, w, ties), 1e-13, "permuted");
  /* integer weights are replicated patients (R's frequency weights): w = 2 for row 0 equals
   * row 0 twice. Breslow only: Efron counts tied copies as tied deaths, so it differs. */
  double t3[6] = {1, 1, 2, 2, 3, 4}, r3[6] = {.5, .5, -.2, .1, 0, -1}, w3[5] = {2, 1, 1, 1, 1};
  int e3[6] = {1, 1, 1, 1, 0, 1};
  CHECK_NEAR(cox_value(r, 5, t, e, w3, TS_SURV_LOSS_BRESLOW),
             cox_value(r3, 6, t3, e3, NULL, TS_SURV_LOSS_BRESLOW), 1e-13, "frequency weights");
  /* no events: loss 0 with zero gradients */
  int none[5] = {0};
  ts_tensor *rt = tensor_f64(r, 5, 0), *l = NULL, *g = NULL;
  CU_ASSERT_EQUAL(ts_tensor_set_requires_grad(rt, true), 0);
  CU_ASSERT_EQUAL_FATAL(ts_surv_loss_cox(rt, t, none, NULL, TS_SURV_LOSS_EFRON, &l), 0);
  CU_ASSERT_EQUAL(item(l), 0.0);
  CU_ASSERT_EQUAL(ts_tensor_backward(l), 0);
  CU_ASSERT_EQUAL(ts_tensor_grad(rt, &g), 0);
  double gv[5];
  CU_ASSERT_EQUAL(ts_tensor_copy_to(g, gv, sizeof gv, TS_NN_F64), 0);
  for (int i = 0; i < 5; i++)
    CU_ASSERT_EQUAL(gv[i], 0.0);
  ts_tensor_free(&l), ts_tensor_free(&g), ts_tensor_free(&rt);
}

typedef struct lung {
  size_t n;
  double time[MAXLUNG], x[MAXLUNG * 3], w[MAXLUNG];
  int status[MAXLUNG];
  double r[2][7]; /* per ties (0 Efron, 1 Breslow): the row of r_cox.csv */
} lung;

static bool load_lung(lung *d) {
  static double v[MAXLUNG * 6];
  size_t k = read_numbers("lung.csv", 1, v, MAXLUNG * 6);
  CU_ASSERT(k > 0 && k % 6 == 0);
  d->n = k / 6;
  for (size_t i = 0; i < d->n; i++) {
    d->time[i] = v[6 * i], d->status[i] = (int)v[6 * i + 1];
    for (int j = 0; j < 3; j++)
      d->x[3 * i + (size_t)j] = v[6 * i + 2 + (size_t)j];
    d->w[i] = v[6 * i + 5];
  }
  double c[14];
  CU_ASSERT_EQUAL(read_numbers("r_cox.csv", 1, c, 14), 14);
  for (int row = 0; row < 2; row++) {
    int ties = (int)c[7 * row];
    memcpy(d->r[ties], c + 7 * row, sizeof d->r[ties]);
  }
  return d->n == 227;
}

/* BioFusionNet's released loss_fn (weighted_cox_loss.py): rows sorted by predicted risk,
 * descending; risk set of i = the rows ranked at or above it; -sum_events w (r - log cumsum
 * w e^r) / sum w d. Plain C, for the control. */
static double biofusionnet_loss(const double *r, const int *e, const double *w, size_t n) {
  size_t *o = malloc(n * sizeof *o);
  for (size_t i = 0; i < n; i++)
    o[i] = i;
  for (size_t i = 1; i < n; i++) /* insertion sort by risk, descending */
    for (size_t j = i; j > 0 && r[o[j - 1]] < r[o[j]]; j--) {
      size_t s = o[j];
      o[j] = o[j - 1], o[j - 1] = s;
    }
  double cum = 0, ll = 0, we = 0;
  for (size_t k = 0; k < n; k++) {
    size_t i = o[k];
    cum += w[i] * exp(r[i]);
    if (e[i]) ll += w[i] * (r[i] - log(cum)), we += w[i];
  }
  free(o);
  return -ll / we;
}

static void test_surv_loss_cox_matches_r(void) {
  if (!have(r_error, "R")) return;
  static lung d;
  CU_ASSERT_FATAL(load_lung(&d));
  const double beta[3] = {0.01, -0.5, 0.4};
  double r[MAXLUNG], sw = 0;
  for (size_t i = 0; i < d.n; i++) {
    r[i] = beta[0] * d.x[3 * i] + beta[1] * d.x[3 * i + 1] + beta[2] * d.x[3 * i + 2];
    sw += d.status[i] ? d.w[i] : 0;
  }
  double worst = 0, val[2];
  for (int ties = 0; ties < 2; ties++) {
    double want = -d.r[ties][1] / sw;
    val[ties] = cox_value(r, d.n, d.time, d.status, d.w, ties);
    double rel = fabs(val[ties] - want) / fabs(want);
    worst = fmax(worst, rel);
    CU_ASSERT(rel < 1e-6);
    /* unweighted: R without weights, divided by the event count */
    int ne = 0;
    for (size_t i = 0; i < d.n; i++)
      ne += d.status[i];
    double uw = cox_value(r, d.n, d.time, d.status, NULL, ties);
    double rel_u = fabs(uw - (-d.r[ties][6] / ne)) / fabs(d.r[ties][6] / ne);
    worst = fmax(worst, rel_u);
    CU_ASSERT(rel_u < 1e-6);
    /* controls, which a wrong implementation would equal: risk sets by predicted risk
     * (BioFusionNet), and the weighted numerator over unweighted risk sets */
    double bfn = biofusionnet_loss(r, d.status, d.w, d.n);
    CU_ASSERT(fabs(bfn - want) / fabs(want) > 1e-2);
    if (ties == 0) fprintf(stderr, "[BioFusionNet order %.6f vs R %.6f] ", bfn, want);
  }
  /* heavy ties (R's data, 80 patients at 10 times, deaths and censorings tied, weights in
   * [0.5, 2.5]): every Efron bucket and the censored-at-a-tie risk sets */
  static double v[80 * 4];
  double rr[2 * 2], tt[80], xw[80], ww[80], rt[80], swt = 0;
  int st[80];
  CU_ASSERT_EQUAL_FATAL(read_numbers("ties.csv", 1, v, 80 * 4), 80 * 4);
  CU_ASSERT_EQUAL_FATAL(read_numbers("r_ties.csv", 1, rr, 4), 4);
  for (int i = 0; i < 80; i++) {
    tt[i] = v[4 * i], st[i] = (int)v[4 * i + 1], xw[i] = v[4 * i + 2], ww[i] = v[4 * i + 3];
    rt[i] = 0.7 * xw[i];
    swt += st[i] ? ww[i] : 0;
  }
  for (int row = 0; row < 2; row++) {
    int ties = (int)rr[2 * row];
    double want = -rr[2 * row + 1] / swt, got = cox_value(rt, 80, tt, st, ww, ties);
    double rel = fabs(got - want) / fabs(want);
    if (rel >= 1e-6) fprintf(stderr, "\n  MISMATCH heavy ties %d: %.15g R %.15g\n", ties, got, want);
    CU_ASSERT(rel < 1e-6);
    worst = fmax(worst, rel);
  }
  fprintf(stderr, "[Efron %.10f Breslow %.10f; max rel vs R %.2g] ", val[0], val[1], worst);
  CU_ASSERT(fabs(val[0] - val[1]) > 1e-5); /* lung has tied deaths: the two must differ */
}

/* A linear Cox model, one ts_nn linear layer without bias from zero weights, trained on the
 * weighted loss by full-batch gradient descent (SGD, lr 1, no momentum) until the gradient norm
 * is below 1e-9; the covariates are standardised first (the Cox model is invariant to centring;
 * the coefficient of a raw covariate is the standardised one over its SD), which makes the
 * problem well conditioned enough for plain gradient descent. */
static void test_surv_loss_cox_trains_to_r(void) {
  if (!have(r_error, "R")) return;
  static lung d;
  CU_ASSERT_FATAL(load_lung(&d));
  static double xs[MAXLUNG * 3];
  double mean[3] = {0}, sd[3] = {0};
  for (int j = 0; j < 3; j++) {
    for (size_t i = 0; i < d.n; i++)
      mean[j] += d.x[3 * i + (size_t)j] / (double)d.n;
    for (size_t i = 0; i < d.n; i++)
      sd[j] += pow(d.x[3 * i + (size_t)j] - mean[j], 2) / (double)(d.n - 1);
    sd[j] = sqrt(sd[j]);
    for (size_t i = 0; i < d.n; i++)
      xs[3 * i + (size_t)j] = (d.x[3 * i + (size_t)j] - mean[j]) / sd[j];
  }
  ts_tensor *x = tensor_f64(xs, (int64_t)d.n, 3);
  double worst = 0;
  for (int ties = 0; ties < 2; ties++) {
    int64_t ws[2] = {1, 3};
    ts_tensor *w = NULL;
    ts_optim *opt = NULL;
    CU_ASSERT_EQUAL_FATAL(ts_tensor_zeros(ws, 2, TS_NN_F64, &w), 0);
    CU_ASSERT_EQUAL(ts_tensor_set_requires_grad(w, true), 0);
    const ts_tensor *params[1] = {w};
    CU_ASSERT_EQUAL_FATAL(ts_optim_sgd_new(params, 1, 1.0, 0.0, 0.0, false, &opt), 0);
    double gnorm = INFINITY;
    int it = 0;
    for (; it < 5000; it++) {
      ts_tensor *lp = NULL, *l = NULL, *g = NULL;
      CU_ASSERT_EQUAL(ts_optim_zero_grad(opt), 0);
      CU_ASSERT_EQUAL_FATAL(ts_nn_linear(x, w, NULL, &lp), 0);
      CU_ASSERT_EQUAL_FATAL(ts_surv_loss_cox(lp, d.time, d.status, d.w, ties, &l), 0);
      CU_ASSERT_EQUAL(ts_tensor_backward(l), 0);
      CU_ASSERT_EQUAL(ts_tensor_grad(w, &g), 0);
      double gv[3] = {0};
      CU_ASSERT_EQUAL(ts_tensor_copy_to(g, gv, sizeof gv, TS_NN_F64), 0);
      gnorm = sqrt(gv[0] * gv[0] + gv[1] * gv[1] + gv[2] * gv[2]);
      ts_tensor_free(&lp), ts_tensor_free(&l), ts_tensor_free(&g);
      if (gnorm < 1e-9) break;
      CU_ASSERT_EQUAL(ts_optim_step(opt), 0);
    }
    double wv[3];
    CU_ASSERT_EQUAL(ts_tensor_copy_to(w, wv, sizeof wv, TS_NN_F64), 0);
    for (int j = 0; j < 3; j++) {
      double coef = wv[j] / sd[j], want = d.r[ties][2 + j];
      double rel = fabs(coef - want) / fabs(want);
      worst = fmax(worst, rel);
      if (rel >= 1e-4) fprintf(stderr, "\n  coef %d: %.10g R %.10g\n", j, coef, want);
      CU_ASSERT(rel < 1e-4);
    }
    fprintf(stderr, "[%s: %d steps, |g| %.1e] ", ties ? "Breslow" : "Efron", it, gnorm);
    CU_ASSERT(gnorm < 1e-9);
    ts_optim_free(&opt);
    ts_tensor_free(&w);
  }
  fprintf(stderr, "[coef max rel vs R %.2g] ", worst);
  ts_tensor_free(&x);
}

/* ---- Gradients ---------------------------------------------------------------------------------- */

/* Central differences in float64 against autograd, for every input entry. */
static void test_surv_loss_gradients_finite_differences(void) {
  const double h = 1e-6;
  double worst_nll = 0, worst_cox = 0;
  /* NLL: 6 patients, 4 bins, every bin, both censorships, alpha 0.3 */
  enum { B = 6 };
  uint64_t s = 99;
  double z[B * NK];
  for (int i = 0; i < B * NK; i++)
    z[i] = ts_test_rng_normal(&s);
  int64_t y[B] = {0, 1, 2, 3, 3, 0};
  int c[B] = {0, 0, 1, 1, 0, 1};
  ts_tensor *zt = tensor_f64(z, B, NK), *l = NULL, *g = NULL;
  CU_ASSERT_EQUAL(ts_tensor_set_requires_grad(zt, true), 0);
  CU_ASSERT_EQUAL_FATAL(ts_surv_loss_nll(zt, y, c, 0.3, &l), 0);
  CU_ASSERT_EQUAL(ts_tensor_backward(l), 0);
  CU_ASSERT_EQUAL_FATAL(ts_tensor_grad(zt, &g), 0);
  double gv[B * NK];
  CU_ASSERT_EQUAL(ts_tensor_copy_to(g, gv, sizeof gv, TS_NN_F64), 0);
  ts_tensor_free(&l), ts_tensor_free(&g), ts_tensor_free(&zt);
  for (int i = 0; i < B * NK; i++) {
    double zp[B * NK], zm[B * NK];
    memcpy(zp, z, sizeof z), memcpy(zm, z, sizeof z);
    zp[i] += h, zm[i] -= h;
    ts_tensor *tp = tensor_f64(zp, B, NK), *tm = tensor_f64(zm, B, NK);
    double fd = (nll_value(tp, y, c, 0.3) - nll_value(tm, y, c, 0.3)) / (2 * h);
    worst_nll = fmax(worst_nll, fabs(fd - gv[i]));
    ts_tensor_free(&tp), ts_tensor_free(&tm);
  }
  /* Cox: 12 patients with tie groups (deaths only at the largest time, so Efron's rest set is
   * empty there; deaths and censored tied; a triple), non-integer weights */
  enum { N = 12 };
  double t[N] = {9, 9, 5, 5, 5, 5, 3, 2, 2, 2, 1, 7}, w[N], r[N];
  int e[N] = {1, 1, 1, 1, 0, 1, 0, 1, 1, 1, 1, 0};
  for (int i = 0; i < N; i++)
    w[i] = 0.5 + ts_test_rng_unif(&s) * 2, r[i] = ts_test_rng_normal(&s);
  for (int ties = 0; ties < 2; ties++) {
    ts_tensor *rt = tensor_f64(r, N, 0);
    CU_ASSERT_EQUAL(ts_tensor_set_requires_grad(rt, true), 0);
    CU_ASSERT_EQUAL_FATAL(ts_surv_loss_cox(rt, t, e, w, ties, &l), 0);
    CU_ASSERT_EQUAL(ts_tensor_backward(l), 0);
    CU_ASSERT_EQUAL_FATAL(ts_tensor_grad(rt, &g), 0);
    double gr[N];
    CU_ASSERT_EQUAL(ts_tensor_copy_to(g, gr, sizeof gr, TS_NN_F64), 0);
    ts_tensor_free(&l), ts_tensor_free(&g), ts_tensor_free(&rt);
    double gsum = 0;
    for (int i = 0; i < N; i++) {
      double rp[N], rm[N];
      memcpy(rp, r, sizeof r), memcpy(rm, r, sizeof r);
      rp[i] += h, rm[i] -= h;
      double fd = (cox_value(rp, N, t, e, w, ties) - cox_value(rm, N, t, e, w, ties)) / (2 * h);
      worst_cox = fmax(worst_cox, fabs(fd - gr[i]));
      gsum += gr[i];
    }
    CHECK_NEAR(gsum, 0.0, 1e-12, "shift invariance: gradients sum to 0");
  }
  fprintf(stderr, "[max |FD - autograd|: NLL %.2g, Cox %.2g] ", worst_nll, worst_cox);
  CU_ASSERT(worst_nll < 1e-8);
  CU_ASSERT(worst_cox < 1e-8);
}

/* ---- Weights and errors ------------------------------------------------------------------------- */

static void test_surv_loss_weights(void) {
  int e[5] = {1, 0, 1, 0, 0};
  int64_t bin[5] = {0, 0, 0, 1, 3}; /* bin 2 empty */
  double w[5];
  CU_ASSERT_EQUAL(ts_surv_loss_weights("events", 5, e, NULL, 0, 5.0, w), 0);
  CU_ASSERT(w[0] == 5 && w[1] == 1 && w[2] == 5 && w[3] == 1 && w[4] == 1);
  CU_ASSERT_EQUAL(ts_surv_loss_weights("none", 5, NULL, NULL, 0, 0, w), 0);
  CU_ASSERT(w[0] == 1 && w[4] == 1);
  /* counts 3, 1, 0, 1; 3 occupied bins: w = 5 / (3 n_k) */
  CU_ASSERT_EQUAL(ts_surv_loss_weights("inverse_time_bin_frequency", 5, NULL, bin, 4, 0, w), 0);
  CHECK_NEAR(w[0], 5.0 / 9, 1e-15, "bin 0");
  CHECK_NEAR(w[3], 5.0 / 3, 1e-15, "bin 1");
  CHECK_NEAR(w[4], 5.0 / 3, 1e-15, "bin 3");
  CHECK_NEAR((w[0] + w[1] + w[2] + w[3] + w[4]) / 5, 1.0, 1e-15, "mean 1");
  CU_ASSERT(token_is(ts_surv_loss_weights("balanced", 5, e, bin, 4, 5, w), "SURV_LOSS_UNKNOWN"));
  CU_ASSERT(strstr(ts_error_message(), "inverse_time_bin_frequency") != NULL);
  CU_ASSERT(token_is(ts_surv_loss_weights("events", 5, e, NULL, 0, 0.0, w), "SURV_BAD_WEIGHT"));
  CU_ASSERT(token_is(ts_surv_loss_weights("inverse_time_bin_frequency", 5, NULL, bin, 3, 0, w), "NN_ARG"));
}

static void test_surv_loss_errors(void) {
  double z[8] = {0};
  ts_tensor *z2 = tensor_f64(z, 2, 4), *z1 = tensor_f64(z, 8, 0), *l = NULL, *zi = NULL;
  int64_t y[2] = {0, 4}, y_ok[2] = {0, 3}, sz[2] = {2, 4};
  int c[2] = {0, 1}, c_bad[2] = {0, 2};
  CU_ASSERT(token_is(ts_surv_loss_nll(z1, y_ok, c, 0, &l), "NN_SHAPE"));
  CU_ASSERT_PTR_NULL(l);
  CU_ASSERT(token_is(ts_surv_loss_nll(z2, y, c, 0, &l), "NN_ARG"));
  CU_ASSERT(token_is(ts_surv_loss_nll(z2, y_ok, c_bad, 0, &l), "SURV_BAD_EVENT"));
  CU_ASSERT(token_is(ts_surv_loss_nll(z2, y_ok, c, 1.5, &l), "NN_ARG"));
  CU_ASSERT(token_is(ts_surv_loss_nll(NULL, y_ok, c, 0, &l), "NN_ARG"));
  int64_t iv[8] = {0};
  CU_ASSERT_EQUAL(ts_tensor_from_data(iv, TS_NN_I64, sz, 2, &zi), 0);
  CU_ASSERT(token_is(ts_surv_loss_nll(zi, y_ok, c, 0, &l), "NN_DTYPE"));
  double t[3] = {1, 2, 3}, tneg[3] = {1, -2, 3}, wz[3] = {1, 0, 1};
  int e[3] = {1, 0, 1}, ebad[3] = {1, 3, 1};
  ts_tensor *r = tensor_f64(z, 3, 0);
  CU_ASSERT(token_is(ts_surv_loss_cox(r, t, e, wz, TS_SURV_LOSS_EFRON, &l), "SURV_BAD_WEIGHT"));
  CU_ASSERT(token_is(ts_surv_loss_cox(r, tneg, e, NULL, TS_SURV_LOSS_EFRON, &l), "SURV_NEGATIVE_TIME"));
  CU_ASSERT(token_is(ts_surv_loss_cox(r, t, ebad, NULL, TS_SURV_LOSS_EFRON, &l), "SURV_BAD_EVENT"));
  CU_ASSERT(token_is(ts_surv_loss_cox(r, t, e, NULL, 7, &l), "NN_ARG"));
  CU_ASSERT(token_is(ts_surv_loss_cox(zi, t, e, NULL, TS_SURV_LOSS_EFRON, &l), "NN_DTYPE"));
  CU_ASSERT_PTR_NULL(l);
  ts_tensor_free(&z2), ts_tensor_free(&z1), ts_tensor_free(&zi), ts_tensor_free(&r);
}

int ts_test_register(void) {
  CU_pSuite s = CU_add_suite("surv_loss", suite_init, suite_clean);
  if (!s) return -1;
  if (!CU_add_test(s, "test_surv_loss_nll_hand_values", test_surv_loss_nll_hand_values) ||
      !CU_add_test(s, "test_surv_loss_nll_matches_porpoise", test_surv_loss_nll_matches_porpoise) ||
      !CU_add_test(s, "test_surv_loss_bins_match_porpoise", test_surv_loss_bins_match_porpoise) ||
      !CU_add_test(s, "test_surv_loss_cox_hand_values", test_surv_loss_cox_hand_values) ||
      !CU_add_test(s, "test_surv_loss_cox_matches_r", test_surv_loss_cox_matches_r) ||
      !CU_add_test(s, "test_surv_loss_cox_trains_to_r", test_surv_loss_cox_trains_to_r) ||
      !CU_add_test(s, "test_surv_loss_gradients_finite_differences",
                   test_surv_loss_gradients_finite_differences) ||
      !CU_add_test(s, "test_surv_loss_weights", test_surv_loss_weights) ||
      !CU_add_test(s, "test_surv_loss_errors", test_surv_loss_errors))
    return -1;
  return 0;
}
