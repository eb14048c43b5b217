/* test_classify.c — CUnit suite of the classification statistics (stats/ts_classify.h).
 *
 * Oracles, run live at set-up in a fresh temporary directory: the suite writes its data sets
 * as CSV (generated here from a fixed splitmix64 stream), then
 *   - R (Rscript --vanilla) with pROC: roc(y, score, direction = "<", levels = c(0, 1)), auc,
 *     var(method = "delong"), ci.auc(method = "delong"), coords(r, "all"); and stats::cor.test
 *     (Pearson; Spearman with exact = FALSE);
 *   - Debian's python3 with scikit-learn: accuracy_score, balanced_accuracy_score, f1_score
 *     (binary and macro), roc_auc_score(multi_class = "ovr", average = "macro").
 * Both scripts are written by this file; nothing is read from outside the repository and the
 * oracles never call tessera. A missing Rscript, pROC, python3 or sklearn fails every
 * comparison test: a skipped comparison is a failed one.
 * Tolerances: AUC, DeLong variance and CI 1e-9 absolute (reached: ~1e-15), ROC thresholds and
 * rates 1e-12, correlation estimates and CIs 1e-9 absolute, p-values 1e-9 relative, sklearn's
 * counts 1e-12.
 * The splits have no oracle (CLAM's generator is numpy's global stream): property tests check
 * the rule of ts_classify.h (disjoint test sets, per-class counts, determinism), the CSV round
 * trip and every reader error token with its line.
 */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "ts_classify.h"
#include "ts_io.h"
#include "ts_test_util.h"

#define GOLDEN_SHA256 "206149a95cd0be3e4182aece01970b2d80e69e6d639c1aaa5ff1bc8b49980c03"

/* ------------------------------------------------------------ data -------- */

static uint64_t sm_state;
static uint64_t sm_next(void) {
  uint64_t z = (sm_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
static double unif(void) {
  return ((double)(sm_next() >> 11) + 0.5) / 9007199254740992.0;
}
static double gauss(void) {
  return sqrt(-2 * log(unif())) * cos(2 * M_PI * unif());
}

#define MAXN 400
typedef struct bin_ds {
  size_t n;
  int y[MAXN];
  double s[MAXN];
} bin_ds;

enum { NBIN = 10 };
static bin_ds BIN[NBIN];

static void make_bin(void) {
  sm_state = 20240611;
  bin_ds *d;
  /* 0: continuous, no ties */
  d = &BIN[0];
  d->n = 200;
  for (size_t i = 0; i < d->n; i++) {
    d->y[i] = unif() < 0.4;
    d->s[i] = gauss() + 0.9 * d->y[i];
  }
  /* 1: heavy ties (one decimal) */
  d = &BIN[1];
  d->n = 150;
  for (size_t i = 0; i < d->n; i++) {
    d->y[i] = unif() < 0.5;
    d->s[i] = round((gauss() * 0.6 + 0.5 * d->y[i]) * 10) / 10;
  }
  /* 2: tiny with a tie across classes */
  d = &BIN[2];
  d->n = 4;
  int y2[] = {0, 1, 0, 1};
  double s2[] = {0.2, 0.8, 0.5, 0.5};
  memcpy(d->y, y2, sizeof y2);
  memcpy(d->s, s2, sizeof s2);
  /* 3: perfect separation, 2 + 2 */
  d = &BIN[3];
  d->n = 4;
  int y3[] = {0, 0, 1, 1};
  double s3[] = {0.1, 0.2, 0.7, 0.9};
  memcpy(d->y, y3, sizeof y3);
  memcpy(d->s, s3, sizeof s3);
  /* 4: all scores equal */
  d = &BIN[4];
  d->n = 10;
  for (size_t i = 0; i < d->n; i++) {
    d->y[i] = (int)(i % 3 == 0);
    d->s[i] = 0.3;
  }
  /* 5: unbalanced, integer scores 0..4 */
  d = &BIN[5];
  d->n = 100;
  for (size_t i = 0; i < d->n; i++) {
    d->y[i] = i < 3;
    d->s[i] = floor(unif() * 5) + (d->y[i] ? 1 : 0);
  }
  /* 6: worse than chance (AUC < 0.5; direction fixed, not flipped) */
  d = &BIN[6];
  d->n = 60;
  for (size_t i = 0; i < d->n; i++) {
    d->y[i] = (int)(i % 2);
    d->s[i] = gauss() - 1.2 * d->y[i];
  }
  /* 7: one case: variance undefined (pROC: NA) */
  d = &BIN[7];
  d->n = 6;
  int y7[] = {0, 0, 1, 0, 0, 0};
  double s7[] = {0.1, 0.4, 0.35, 0.8, 0.4, 0.2};
  memcpy(d->y, y7, sizeof y7);
  memcpy(d->s, s7, sizeof s7);
  /* 8: huge scores (pROC's overflow guard of the midpoints) */
  d = &BIN[8];
  d->n = 40;
  for (size_t i = 0; i < d->n; i++) {
    d->y[i] = unif() < 0.5;
    d->s[i] = (round(gauss() * 3) + d->y[i]) * 1e150;
  }
  /* 9: probabilities in (0, 1) with ties, as a model writes them */
  d = &BIN[9];
  d->n = 300;
  for (size_t i = 0; i < d->n; i++) {
    d->y[i] = unif() < 0.3;
    d->s[i] = round(1000 / (1 + exp(-(gauss() + 1.0 * d->y[i])))) / 1000;
  }
}

enum { NCOR = 5 };
static struct {
  size_t n;
  double x[MAXN], y[MAXN];
} COR[NCOR];

static void make_cor(void) {
  size_t ns[NCOR] = {50, 30, 4, 200, 12};
  for (int k = 0; k < NCOR; k++) {
    COR[k].n = ns[k];
    for (size_t i = 0; i < ns[k]; i++) {
      double a = gauss();
      COR[k].x[i] = a;
      COR[k].y[i] = (k == 3 ? 0.1 : 0.7) * a + gauss();
      if (k == 1 || k == 4) { /* ties */
        COR[k].x[i] = round(COR[k].x[i] * 2) / 2;
        COR[k].y[i] = round(COR[k].y[i]);
      }
    }
  }
}

enum { NCLS = 3, NC_MC = 4 };
static struct {
  size_t n;
  int nclass;
  int y[MAXN], pred[MAXN];
  double p[MAXN * NC_MC];
} CLS[NCLS];

static void make_cls(void) {
  /* 0: binary; 1: four classes with softmax probabilities; 2: four classes, class 3 predicted
   * but never true (balanced accuracy over the true classes, macro F1 over the union) */
  for (int k = 0; k < NCLS; k++) {
    CLS[k].n = k == 0 ? 100 : 120;
    CLS[k].nclass = k == 0 ? 2 : NC_MC;
    int C = CLS[k].nclass;
    for (size_t i = 0; i < CLS[k].n; i++) {
      int y = (int)(unif() * (k == 2 ? C - 1 : C));
      CLS[k].y[i] = y;
      double z[NC_MC], sum = 0;
      for (int c = 0; c < C; c++) {
        z[c] = exp(gauss() + (c == y ? 1.2 : 0) + (k == 2 && c == 3 ? 0.8 : 0));
        sum += z[c];
      }
      for (int c = 0; c < C; c++)
        CLS[k].p[i * (size_t)C + (size_t)c] = z[c] / sum;
    }
    ts_class_argmax(CLS[k].p, CLS[k].n, C, CLS[k].pred);
  }
}

/* ------------------------------------------------------------ oracles ----- */

static char r_error[2048], py_error[2048];

static const char R_SCRIPT[] =
    "suppressMessages(library(pROC))\n"
    "f <- function(x) ifelse(is.na(x), 'nan', sprintf('%.17g', x))\n"
    "out <- c('dataset,auc,var,lower,upper')\n"
    "for (k in 0:(NBIN - 1)) {\n"
    "  d <- read.csv(sprintf('bin_%d.csv', k))\n"
    "  r <- roc(d$y, d$score, direction = '<', levels = c(0, 1), quiet = TRUE)\n"
    "  v <- if (sum(d$y == 1) > 1 && sum(d$y == 0) > 1) var(r, method = 'delong') else NA\n"
    "  ci <- as.numeric(ci.auc(r, method = 'delong'))\n"
    "  out <- c(out, paste(k, f(as.numeric(auc(r))), f(v), f(ci[1]), f(ci[3]), sep = ','))\n"
    "  co <- coords(r, 'all', ret = c('threshold', 'specificity', 'sensitivity'), transpose = FALSE)\n"
    "  writeLines(c('threshold,specificity,sensitivity', paste(f(co$threshold), f(co$specificity),\n"
    "             f(co$sensitivity), sep = ',')), sprintf('r_coords_%d.csv', k))\n"
    "}\n"
    "writeLines(out, 'r_auc.csv')\n"
    "out <- c('dataset,method,r,lower,upper,p')\n"
    "for (k in 0:(NCOR - 1)) {\n"
    "  d <- read.csv(sprintf('cor_%d.csv', k))\n"
    "  t <- cor.test(d$x, d$y)\n"
    "  ci <- if (is.null(t$conf.int)) c(NA, NA) else as.numeric(t$conf.int)\n"
    "  out <- c(out, paste(k, 'pearson', f(t$estimate), f(ci[1]), f(ci[2]), f(t$p.value), sep = ','))\n"
    "  t <- cor.test(d$x, d$y, method = 'spearman', exact = FALSE)\n"
    "  out <- c(out, paste(k, 'spearman', f(t$estimate), 'nan', 'nan', f(t$p.value), sep = ','))\n"
    "}\n"
    "writeLines(out, 'r_cor.csv')\n";

static const char PY_SCRIPT[] =
    "import csv\n"
    "import numpy as np\n"
    "from sklearn import metrics as M\n"
    "rows = ['dataset,accuracy,balanced,f1,auc_ovr']\n"
    "for k in range(NCLS):\n"
    "    d = np.genfromtxt('cls_%d.csv' % k, delimiter=',', names=True)\n"
    "    y = d['y'].astype(int); pr = d['pred'].astype(int)\n"
    "    P = np.column_stack([d['p%d' % c] for c in range(NC if k else 2)])\n"
    "    binary = k == 0\n"
    "    f1 = M.f1_score(y, pr) if binary else M.f1_score(y, pr, average='macro')\n"
    "    if binary: auc = M.roc_auc_score(y, P[:, 1])\n"
    "    elif len(set(y)) == P.shape[1]: auc = M.roc_auc_score(y, P, multi_class='ovr', average='macro')\n"
    "    else: auc = float('nan')\n"
    "    rows.append('%d,%.17g,%.17g,%.17g,%.17g' % (k, M.accuracy_score(y, pr),\n"
    "                M.balanced_accuracy_score(y, pr), f1, auc))\n"
    "open('py_metrics.csv', 'w').write('\\n'.join(rows) + '\\n')\n";

static void write_data(void) {
  char p[512];
  for (int k = 0; k < NBIN; k++) {
    char name[64];
    snprintf(name, sizeof name, "bin_%d.csv", k);
    ts_test_path(p, sizeof p, name);
    FILE *f = fopen(p, "w");
    if (!f) continue;
    fprintf(f, "y,score\n");
    for (size_t i = 0; i < BIN[k].n; i++)
      fprintf(f, "%d,%.17g\n", BIN[k].y[i], BIN[k].s[i]);
    fclose(f);
  }
  for (int k = 0; k < NCOR; k++) {
    char name[64];
    snprintf(name, sizeof name, "cor_%d.csv", k);
    ts_test_path(p, sizeof p, name);
    FILE *f = fopen(p, "w");
    if (!f) continue;
    fprintf(f, "x,y\n");
    for (size_t i = 0; i < COR[k].n; i++)
      fprintf(f, "%.17g,%.17g\n", COR[k].x[i], COR[k].y[i]);
    fclose(f);
  }
  for (int k = 0; k < NCLS; k++) {
    char name[64];
    snprintf(name, sizeof name, "cls_%d.csv", k);
    ts_test_path(p, sizeof p, name);
    FILE *f = fopen(p, "w");
    if (!f) continue;
    int C = CLS[k].nclass;
    fprintf(f, "y,pred");
    for (int c = 0; c < C; c++)
      fprintf(f, ",p%d", c);
    fprintf(f, "\n");
    for (size_t i = 0; i < CLS[k].n; i++) {
      fprintf(f, "%d,%d", CLS[k].y[i], CLS[k].pred[i]);
      for (int c = 0; c < C; c++)
        fprintf(f, ",%.17g", CLS[k].p[i * (size_t)C + (size_t)c]);
      fprintf(f, "\n");
    }
    fclose(f);
  }
}

static int suite_init(void) {
  if (ts_test_tmpdir_make("ts_test_classify") != 0) {
    snprintf(r_error, sizeof r_error, "mkdtemp failed");
    snprintf(py_error, sizeof py_error, "mkdtemp failed");
    return 0;
  }
  make_bin();
  make_cor();
  make_cls();
  write_data();
  char p[512], cmd[2048];
  ts_test_path(p, sizeof p, "oracle.R");
  FILE *f = fopen(p, "w");
  if (f) {
    fprintf(f, "NBIN <- %d\nNCOR <- %d\n%s", NBIN, NCOR, R_SCRIPT);
    fclose(f);
  }
  snprintf(cmd, sizeof cmd, "cd '%s' && Rscript --vanilla oracle.R > r.log 2>&1", ts_test_tmpdir);
  int rc = system(cmd);
  if (rc != 0) {
    snprintf(r_error, sizeof r_error,
             "Rscript oracle.R failed (%s %d): is r-base-core with r-cran-proc installed? "
             "(scripts/setup.sh)",
             WIFEXITED(rc) ? "exit status" : "wait status", WIFEXITED(rc) ? WEXITSTATUS(rc) : rc);
    snprintf(cmd, sizeof cmd, "cat '%s/r.log' >&2", ts_test_tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "(no R log)\n");
  }
  char py[4096];
  snprintf(py, sizeof py, "NCLS = %d\nNC = %d\n%s", NCLS, NC_MC, PY_SCRIPT);
  if (ts_test_python("oracle.py", py) != 0)
    snprintf(py_error, sizeof py_error,
             "/usr/bin/python3 oracle.py failed: is python3-sklearn installed? (scripts/setup.sh)");
  return 0;
}

static int suite_clean(void) {
  return ts_test_tmpdir_remove(), 0;
}

/* A numeric CSV written by an oracle: header + rows of numbers ("nan", "Inf" accepted; the
 * non-numeric 'method' column of r_cor.csv reads as 0 / 1 for pearson / spearman). */
typedef struct numtab {
  size_t nrow, ncol;
  double v[1024][8];
} numtab;

static numtab *read_num(const char *name, const char *why) {
  if (why[0]) {
    fprintf(stderr, "\n  oracle unavailable: %s\n", why);
    CU_FAIL("oracle unavailable: a skipped comparison is a failed one");
    return NULL;
  }
  char p[512], line[4096];
  ts_test_path(p, sizeof p, name);
  FILE *f = fopen(p, "r");
  if (!f) {
    fprintf(stderr, "\n  the oracle did not write %s\n", p);
    CU_FAIL("oracle output missing");
    return NULL;
  }
  numtab *t = calloc(1, sizeof *t);
  bool first = true;
  while (t && fgets(line, sizeof line, f) && t->nrow < 1024) {
    if (first) {
      first = false;
      continue;
    }
    size_t c = 0;
    for (char *s = strtok(line, ",\n"); s && c < 8; s = strtok(NULL, ",\n"), c++)
      t->v[t->nrow][c] = !strcmp(s, "pearson") ? 0 : !strcmp(s, "spearman") ? 1 : strtod(s, NULL);
    t->ncol = c;
    t->nrow++;
  }
  fclose(f);
  return t;
}

static bool close_abs(double got, double want, double tol) {
  if (isnan(want) || isnan(got)) return isnan(want) && isnan(got);
  if (isinf(want) || isinf(got)) return got == want;
  return fabs(got - want) <= tol;
}

#define CHECK(got, want, tol, ...)                                                                           \
  do {                                                                                                       \
    double g_ = (got), w_ = (want);                                                                          \
    if (!close_abs(g_, w_, (tol))) {                                                                         \
      fprintf(stderr, "\n  MISMATCH ");                                                                      \
      fprintf(stderr, __VA_ARGS__);                                                                          \
      fprintf(stderr, ": tessera %.17g oracle %.17g (diff %.3g)\n", g_, w_, fabs(g_ - w_));                  \
    }                                                                                                        \
    CU_ASSERT(close_abs(g_, w_, (tol)));                                                                     \
  } while (0)

static double worst_auc_diff;

/* ------------------------------------------------------------ metric tests - */

static void test_classify_auc_delong_vs_proc(void) {
  numtab *t = read_num("r_auc.csv", r_error);
  if (!t) return;
  CU_ASSERT_EQUAL(t->nrow, NBIN);
  for (size_t r = 0; r < t->nrow; r++) {
    int k = (int)t->v[r][0];
    ts_auc a;
    CU_ASSERT_EQUAL_FATAL(ts_auc_delong(BIN[k].y, BIN[k].s, BIN[k].n, 0.95, &a), 0);
    CHECK(a.auc, t->v[r][1], 1e-9, "data set %d auc", k);
    CHECK(a.var, t->v[r][2], 1e-9, "data set %d DeLong var", k);
    CHECK(a.lower, t->v[r][3], 1e-9, "data set %d CI lower", k);
    CHECK(a.upper, t->v[r][4], 1e-9, "data set %d CI upper", k);
    for (int c = 1; c <= 4; c++) {
      double g = c == 1 ? a.auc : c == 2 ? a.var : c == 3 ? a.lower : a.upper;
      if (isfinite(g) && isfinite(t->v[r][c])) worst_auc_diff = fmax(worst_auc_diff, fabs(g - t->v[r][c]));
    }
  }
  fprintf(stderr, "\n  largest |tessera - pROC| over AUC, var, CI: %.3g\n", worst_auc_diff);
  free(t);
}

/* Brute force: the O(mn) Mann-Whitney count and DeLong's placements by their definition. */
static void test_classify_auc_bruteforce(void) {
  for (int k = 0; k < NBIN; k++) {
    const bin_ds *d = &BIN[k];
    double v10[MAXN], v01[MAXN];
    size_t m = 0, n = 0;
    for (size_t i = 0; i < d->n; i++)
      if (d->y[i]) {
        double s = 0;
        size_t cnt = 0;
        for (size_t j = 0; j < d->n; j++)
          if (!d->y[j]) {
            s += d->s[i] > d->s[j] ? 1 : d->s[i] == d->s[j] ? 0.5 : 0;
            cnt++;
          }
        v10[m++] = s / (double)cnt;
      }
    for (size_t j = 0; j < d->n; j++)
      if (!d->y[j]) {
        double s = 0;
        size_t cnt = 0;
        for (size_t i = 0; i < d->n; i++)
          if (d->y[i]) {
            s += d->s[i] > d->s[j] ? 1 : d->s[i] == d->s[j] ? 0.5 : 0;
            cnt++;
          }
        v01[n++] = s / (double)cnt;
      }
    double auc = 0;
    for (size_t i = 0; i < m; i++)
      auc += v10[i] / (double)m;
    double s10 = 0, s01 = 0;
    for (size_t i = 0; i < m; i++)
      s10 += (v10[i] - auc) * (v10[i] - auc);
    for (size_t j = 0; j < n; j++)
      s01 += (v01[j] - auc) * (v01[j] - auc);
    double var = m > 1 && n > 1 ? s10 / (double)(m - 1) / (double)m + s01 / (double)(n - 1) / (double)n : NAN;
    ts_auc a;
    CU_ASSERT_EQUAL_FATAL(ts_auc_delong(d->y, d->s, d->n, 0.95, &a), 0);
    CHECK(a.auc, auc, 1e-12, "brute-force auc, set %d", k);
    CHECK(a.var, var, 1e-12, "brute-force var, set %d", k);
    CU_ASSERT_EQUAL(a.n_pos, m);
    CU_ASSERT_EQUAL(a.n_neg, n);
  }
}

static void test_classify_roc_points_vs_proc(void) {
  for (int k = 0; k < NBIN; k++) {
    char name[64];
    snprintf(name, sizeof name, "r_coords_%d.csv", k);
    numtab *t = read_num(name, r_error);
    if (!t) return;
    ts_roc_curve *c = NULL;
    CU_ASSERT_EQUAL_FATAL(ts_roc_curve_new(BIN[k].y, BIN[k].s, BIN[k].n, &c), 0);
    CU_ASSERT_EQUAL(c->len, t->nrow);
    for (size_t j = 0; j < c->len && j < t->nrow; j++) {
      double tol = fabs(t->v[j][0]) > 1 ? 1e-12 * fabs(t->v[j][0]) : 1e-12;
      CHECK(c->threshold[j], t->v[j][0], tol, "set %d threshold %zu", k, j);
      CHECK(c->fpr[j], 1 - t->v[j][1], 1e-12, "set %d 1 - specificity %zu", k, j);
      CHECK(c->tpr[j], t->v[j][2], 1e-12, "set %d sensitivity %zu", k, j);
    }
    /* the trapezoidal area under the points is the AUC */
    double area = 0;
    for (size_t j = 1; j < c->len; j++)
      area += (c->fpr[j - 1] - c->fpr[j]) * (c->tpr[j - 1] + c->tpr[j]) / 2;
    ts_auc a;
    CU_ASSERT_EQUAL(ts_auc_delong(BIN[k].y, BIN[k].s, BIN[k].n, 0.95, &a), 0);
    CHECK(area, a.auc, 1e-12, "set %d trapezoid", k);
    ts_roc_curve_free(&c);
    CU_ASSERT_PTR_NULL(c);
    free(t);
  }
}

static void test_classify_counts_vs_sklearn(void) {
  numtab *t = read_num("py_metrics.csv", py_error);
  if (!t) return;
  CU_ASSERT_EQUAL(t->nrow, NCLS);
  for (size_t r = 0; r < t->nrow; r++) {
    int k = (int)t->v[r][0];
    ts_class_metrics m;
    size_t conf[NC_MC * NC_MC];
    CU_ASSERT_EQUAL_FATAL(ts_class_metrics_compute(CLS[k].y, CLS[k].pred, CLS[k].n, CLS[k].nclass, &m, conf),
                          0);
    CHECK(m.accuracy, t->v[r][1], 1e-12, "set %d accuracy", k);
    CHECK(m.balanced_accuracy, t->v[r][2], 1e-12, "set %d balanced accuracy", k);
    CHECK(m.f1, t->v[r][3], 1e-12, "set %d F1", k);
    double macro = NAN, per[NC_MC];
    CU_ASSERT_EQUAL(ts_auc_ovr(CLS[k].y, CLS[k].p, CLS[k].n, CLS[k].nclass, per, &macro), 0);
    if (k == 0) { /* binary: sklearn's AUC of column 1 */
      ts_auc a;
      double s1[MAXN];
      for (size_t i = 0; i < CLS[k].n; i++)
        s1[i] = CLS[k].p[2 * i + 1];
      CU_ASSERT_EQUAL(ts_auc_delong(CLS[k].y, s1, CLS[k].n, 0.95, &a), 0);
      CHECK(a.auc, t->v[r][4], 1e-12, "binary AUC vs sklearn");
      CHECK(macro, t->v[r][4], 1e-12, "OvR of 2 columns summing to 1");
    } else if (k == 1) {
      CHECK(macro, t->v[r][4], 1e-12, "OvR macro AUC vs sklearn");
    } else { /* class 3 absent from y: CLAM's nanmean over classes 0..2 */
      CU_ASSERT(isnan(per[3]));
      CHECK(macro, (per[0] + per[1] + per[2]) / 3, 1e-15, "nanmean");
    }
    size_t tot = 0;
    for (int i = 0; i < CLS[k].nclass * CLS[k].nclass; i++)
      tot += conf[i];
    CU_ASSERT_EQUAL(tot, CLS[k].n);
  }
  free(t);
}

/* A hand count: y 0 0 1 1 1 2, pred 0 1 1 1 0 1. */
static void test_classify_counts_by_hand(void) {
  int y[] = {0, 0, 1, 1, 1, 2}, p[] = {0, 1, 1, 1, 0, 1};
  ts_class_metrics m;
  CU_ASSERT_EQUAL(ts_class_metrics_compute(y, p, 6, 3, &m, NULL), 0);
  CU_ASSERT_DOUBLE_EQUAL(m.accuracy, 3.0 / 6, 1e-15);
  /* recalls 1/2, 2/3, 0 */
  CU_ASSERT_DOUBLE_EQUAL(m.balanced_accuracy, (0.5 + 2.0 / 3 + 0) / 3, 1e-15);
  /* F1 = 2TP / (n_true + n_pred): class 0 2/(2+2); class 1 4/(3+4); class 2 0 */
  CU_ASSERT_DOUBLE_EQUAL(m.f1, (0.5 + 4.0 / 7 + 0) / 3, 1e-15);
  int yb[] = {1, 1, 0, 0, 1}, pb[] = {1, 0, 0, 1, 1};
  CU_ASSERT_EQUAL(ts_class_metrics_compute(yb, pb, 5, 2, &m, NULL), 0);
  CU_ASSERT_DOUBLE_EQUAL(m.f1, 2.0 * 2 / (2 * 2 + 1 + 1), 1e-15); /* TP 2, FP 1, FN 1 */
  CU_ASSERT_DOUBLE_EQUAL(m.balanced_accuracy, (0.5 + 2.0 / 3) / 2, 1e-15);
  int bad[] = {0, 3};
  CU_ASSERT_EQUAL(ts_class_metrics_compute(bad, pb, 2, 2, &m, NULL), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "METRIC_BAD_LABEL");
}

static void test_classify_corr_vs_cortest(void) {
  numtab *t = read_num("r_cor.csv", r_error);
  if (!t) return;
  CU_ASSERT_EQUAL(t->nrow, 2 * NCOR);
  for (size_t r = 0; r < t->nrow; r++) {
    int k = (int)t->v[r][0], sp = (int)t->v[r][1];
    ts_corr c;
    int rc = (sp ? ts_corr_spearman : ts_corr_pearson)(COR[k].x, COR[k].y, COR[k].n, 0.95, &c);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    const char *m = sp ? "spearman" : "pearson";
    CHECK(c.r, t->v[r][2], 1e-9, "set %d %s r", k, m);
    if (!sp) {
      CHECK(c.lower, t->v[r][3], 1e-9, "set %d %s CI lower", k, m);
      CHECK(c.upper, t->v[r][4], 1e-9, "set %d %s CI upper", k, m);
    } else if (COR[k].n >= 4) { /* R gives none: the Fisher-z formula of the header */
      double z = atanh(c.r), q = 1.959963984540054 / sqrt((double)COR[k].n - 3);
      CHECK(c.lower, tanh(z - q), 1e-12, "set %d spearman Fisher-z lower", k);
      CHECK(c.upper, tanh(z + q), 1e-12, "set %d spearman Fisher-z upper", k);
    }
    CHECK(c.p_value, t->v[r][5], 1e-9 * fmax(t->v[r][5], 1e-300), "set %d %s p-value", k, m);
  }
  free(t);
}

static void test_classify_helpers(void) {
  CU_ASSERT_DOUBLE_EQUAL(ts_qnorm(0.975), 1.959963984540054, 1e-15);
  CU_ASSERT_DOUBLE_EQUAL(ts_qnorm(0.5), 0, 1e-16);
  CU_ASSERT_DOUBLE_EQUAL(ts_qnorm(1e-10), -6.361340902404056, 1e-13);
  CU_ASSERT_DOUBLE_EQUAL(ts_pt2(2.0, 10), 0.073388034770740, 1e-14); /* 2 * pt(-2, 10) */
  CU_ASSERT_DOUBLE_EQUAL(ts_pt2(0.0, 3), 1.0, 1e-15);
  double x[] = {3, 1, 3, 2, 3}, r[5];
  CU_ASSERT_EQUAL(ts_midranks(x, 5, r), 0);
  CU_ASSERT_DOUBLE_EQUAL(r[0], 4, 0);
  CU_ASSERT_DOUBLE_EQUAL(r[1], 1, 0);
  CU_ASSERT_DOUBLE_EQUAL(r[3], 2, 0);
}

static void test_classify_metric_errors(void) {
  int y[] = {1, 1, 1}, y2[] = {0, 2, 1};
  double s[] = {0.1, 0.2, 0.3}, snan[] = {0.1, NAN, 0.3};
  ts_auc a;
  CU_ASSERT_EQUAL(ts_auc_delong(y, s, 3, 0.95, &a), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "METRIC_ONE_CLASS");
  CU_ASSERT_EQUAL(ts_auc_delong(y2, s, 3, 0.95, &a), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "METRIC_BAD_LABEL");
  int y3[] = {0, 1, 1};
  CU_ASSERT_EQUAL(ts_auc_delong(y3, snan, 3, 0.95, &a), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "METRIC_BAD_SCORE");
  CU_ASSERT(strstr(ts_error_message(), "index 1") != NULL);
  CU_ASSERT_EQUAL(ts_auc_delong(y3, s, 3, 1.5, &a), TS_EINVAL);
  ts_corr c;
  double k[] = {1, 1, 1};
  CU_ASSERT_EQUAL(ts_corr_pearson(k, s, 3, 0.95, &c), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "METRIC_CONSTANT");
  CU_ASSERT_EQUAL(ts_corr_pearson(k, s, 2, 0.95, &c), TS_EINVAL);
}

/* ------------------------------------------------------------ split tests -- */

/* A synthetic cohort: classes of NPC[c] patients, 1-3 slides each, ids in a shuffled order. */
typedef struct cohort {
  size_t n;
  ts_split_slide s[2000];
  char ids[2000][2][32];
} cohort;

static void make_cohort(cohort *co, const size_t *npc, int nclass, bool regression, uint64_t seed) {
  sm_state = seed;
  co->n = 0;
  size_t pid = 0;
  for (int c = 0; c < nclass; c++)
    for (size_t p = 0; p < npc[c]; p++, pid++) {
      int ns = 1 + (int)(unif() * 3);
      double lab = regression ? round(gauss() * 1000) / 100 : c;
      for (int k = 0; k < ns && co->n < 2000; k++) {
        snprintf(co->ids[co->n][0], 32, "slide-%04zu-%d", pid, k);
        snprintf(co->ids[co->n][1], 32, "pat-%04zu", pid);
        co->s[co->n] = (ts_split_slide){co->ids[co->n][0], co->ids[co->n][1], lab};
        co->n++;
      }
    }
  /* shuffle the rows */
  for (size_t i = co->n; i > 1; i--) {
    size_t j = (size_t)(unif() * (double)i);
    ts_split_slide t = co->s[i - 1];
    co->s[i - 1] = co->s[j];
    co->s[j] = t;
  }
}

/* patients of stratum-class C in set ST of fold F */
static size_t count_patients(const ts_splits *sp, int f, int st, double label) {
  size_t n = 0;
  const char *last = NULL;
  /* rows are in slide order within (fold, set); slides of one patient are adjacent since the
   * slide ids start with the patient number */
  for (size_t i = 0; i < sp->nrow; i++) {
    const ts_split_row *w = &sp->rows[i];
    if (w->fold != f || w->set != st || w->label != label) continue;
    if (!last || strcmp(last, w->patient_id)) n++;
    last = w->patient_id;
  }
  return n;
}

static cohort CO, CO2;

static void test_classify_splits_properties(void) {
  size_t npc[] = {120, 60, 35};
  make_cohort(&CO, npc, 3, false, 7);
  ts_split_options o;
  ts_split_options_default(&o);
  o.seed = 42;
  ts_splits *sp = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_splits_make(CO.s, CO.n, &o, &sp), 0);
  CU_ASSERT_EQUAL(sp->folds, 10);
  CU_ASSERT(sp->test_disjoint);
  CU_ASSERT_EQUAL(sp->nrow, 10 * CO.n);
  CU_ASSERT_EQUAL(ts_splits_check(sp, true), 0);
  /* CLAM's counts: np.round(n * 0.1): 12, 6, 4 (3.5 rounds to even) */
  CU_ASSERT_EQUAL(sp->test_num[0], 12);
  CU_ASSERT_EQUAL(sp->test_num[1], 6);
  CU_ASSERT_EQUAL(sp->test_num[2], 4);
  CU_ASSERT_EQUAL(sp->val_num[2], 4);
  for (int f = 0; f < 10; f++)
    for (int c = 0; c < 3; c++) {
      size_t t = count_patients(sp, f, TS_SET_TEST, c), v = count_patients(sp, f, TS_SET_VAL, c);
      size_t tr = count_patients(sp, f, TS_SET_TRAIN, c);
      /* class 2: 10 * 4 > 35, so blocks of 3 or 4 (every patient tested once) */
      CU_ASSERT(t + 1 >= sp->test_num[c] && t <= sp->test_num[c] + 1);
      CU_ASSERT_EQUAL(v, sp->val_num[c]);
      CU_ASSERT_EQUAL(t + v + tr, npc[c]);
    }
  /* every patient in exactly one test set (10 x 0.1 = 1) */
  size_t tested = 0;
  for (int c = 0; c < 3; c++)
    for (int f = 0; f < 10; f++)
      tested += count_patients(sp, f, TS_SET_TEST, c);
  CU_ASSERT_EQUAL(tested, 120 + 60 + 35);

  /* same seed, same splits, whatever the order of the input rows */
  memcpy(&CO2, &CO, sizeof CO);
  for (size_t i = 0; i < CO2.n; i++) { /* rebind the id pointers into CO2, then reverse */
    CO2.s[i].slide_id = CO.s[i].slide_id;
    CO2.s[i].patient_id = CO.s[i].patient_id;
  }
  for (size_t i = 0; i < CO2.n / 2; i++) {
    ts_split_slide t = CO2.s[i];
    CO2.s[i] = CO2.s[CO2.n - 1 - i];
    CO2.s[CO2.n - 1 - i] = t;
  }
  ts_splits *sp2 = NULL, *sp3 = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_splits_make(CO2.s, CO2.n, &o, &sp2), 0);
  bool same = sp2->nrow == sp->nrow;
  for (size_t i = 0; same && i < sp->nrow; i++)
    same = sp->rows[i].fold == sp2->rows[i].fold && sp->rows[i].set == sp2->rows[i].set &&
           !strcmp(sp->rows[i].slide_id, sp2->rows[i].slide_id);
  CU_ASSERT(same);
  o.seed = 43;
  CU_ASSERT_EQUAL_FATAL(ts_splits_make(CO.s, CO.n, &o, &sp3), 0);
  size_t differ = 0;
  for (size_t i = 0; i < sp->nrow; i++)
    differ += sp->rows[i].set != sp3->rows[i].set || strcmp(sp->rows[i].slide_id, sp3->rows[i].slide_id);
  CU_ASSERT(differ > 0);
  CU_ASSERT_EQUAL(ts_splits_check(sp3, true), 0);
  ts_splits_free(&sp);
  ts_splits_free(&sp2);
  ts_splits_free(&sp3);
  CU_ASSERT_PTR_NULL(sp);
}

static void test_classify_splits_overlapping_and_partial(void) {
  size_t npc[] = {50, 30};
  make_cohort(&CO, npc, 2, false, 11);
  ts_split_options o;
  ts_split_options_default(&o);
  /* 5 folds x 0.3 > 1: Monte-Carlo test parts of exactly t_c, overlapping */
  o.folds = 5;
  o.test_frac = 0.3;
  o.val_frac = 0.2;
  ts_splits *sp = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_splits_make(CO.s, CO.n, &o, &sp), 0);
  CU_ASSERT(!sp->test_disjoint);
  CU_ASSERT_EQUAL(ts_splits_check(sp, false), 0);
  CU_ASSERT_EQUAL(ts_splits_check(sp, true), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SPLITS_TEST_OVERLAP");
  for (int f = 0; f < 5; f++) {
    CU_ASSERT_EQUAL(count_patients(sp, f, TS_SET_TEST, 0), 15);
    CU_ASSERT_EQUAL(count_patients(sp, f, TS_SET_TEST, 1), 9);
    CU_ASSERT_EQUAL(count_patients(sp, f, TS_SET_VAL, 0), 10);
  }
  ts_splits_free(&sp);
  /* 5 folds x 0.1: disjoint, not covering, exactly t_c each */
  o.test_frac = 0.1;
  o.val_frac = 0.1;
  CU_ASSERT_EQUAL_FATAL(ts_splits_make(CO.s, CO.n, &o, &sp), 0);
  CU_ASSERT(sp->test_disjoint);
  CU_ASSERT_EQUAL(ts_splits_check(sp, true), 0);
  for (int f = 0; f < 5; f++) {
    CU_ASSERT_EQUAL(count_patients(sp, f, TS_SET_TEST, 0), 5);
    CU_ASSERT_EQUAL(count_patients(sp, f, TS_SET_TEST, 1), 3);
  }
  ts_splits_free(&sp);
}

static void test_classify_splits_regression(void) {
  size_t npc[] = {203};
  make_cohort(&CO, npc, 1, true, 5);
  ts_split_options o;
  ts_split_options_default(&o);
  o.task = TS_SPLIT_REGRESSION;
  o.folds = 5;
  o.nbins = 4;
  ts_splits *sp = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_splits_make(CO.s, CO.n, &o, &sp), 0);
  CU_ASSERT_EQUAL(sp->nstrata, 4);
  CU_ASSERT_EQUAL(ts_splits_check(sp, true), 0);
  size_t tot = 0;
  for (int b = 0; b < 4; b++) {
    tot += sp->stratum_patients[b];
    CU_ASSERT(sp->stratum_patients[b] >= 50 && sp->stratum_patients[b] <= 51);
    if (b) CU_ASSERT(sp->bin_upper[b] >= sp->bin_upper[b - 1]);
  }
  CU_ASSERT_EQUAL(tot, 203);
  /* per fold and bin: test patients within 1 of t_b */
  for (int f = 0; f < 5; f++)
    for (int b = 0; b < 4; b++) {
      size_t t = 0;
      const char *last = NULL;
      for (size_t i = 0; i < sp->nrow; i++) {
        const ts_split_row *w = &sp->rows[i];
        double lo = b ? sp->bin_upper[b - 1] : -INFINITY;
        if (w->fold != f || w->set != TS_SET_TEST || !(w->label > lo && w->label <= sp->bin_upper[b]))
          continue;
        if (!last || strcmp(last, w->patient_id)) t++;
        last = w->patient_id;
      }
      CU_ASSERT(t + 1 >= sp->test_num[b] && t <= sp->test_num[b] + 1);
    }
  ts_splits_free(&sp);
}

static void test_classify_splits_input_errors(void) {
  ts_split_options o;
  ts_split_options_default(&o);
  ts_splits *sp = NULL;
  /* a class with too few patients */
  size_t npc[] = {100, 4};
  make_cohort(&CO, npc, 2, false, 3);
  CU_ASSERT_EQUAL(ts_splits_make(CO.s, CO.n, &o, &sp), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SPLIT_CLASS_TOO_SMALL");
  CU_ASSERT(strstr(ts_error_message(), "class 1 has 4 patients") != NULL);
  CU_ASSERT(strstr(ts_error_message(), "at least 10 patients") != NULL); /* 10 disjoint test blocks */
  fprintf(stderr, "\n  %s\n", ts_error_message());
  CU_ASSERT_PTR_NULL(sp);
  /* a missing class (nclass given) */
  size_t npc2[] = {100, 100};
  make_cohort(&CO, npc2, 2, false, 3);
  o.nclass = 3;
  CU_ASSERT_EQUAL(ts_splits_make(CO.s, CO.n, &o, &sp), TS_EINPUT);
  CU_ASSERT(strstr(ts_error_message(), "class 2 has 0 patients") != NULL);
  o.nclass = 0;
  /* label conflict within a patient */
  ts_split_slide bad[] = {{"a", "P1", 0}, {"b", "P1", 1}, {"c", "P2", 0}};
  CU_ASSERT_EQUAL(ts_splits_make(bad, 3, &o, &sp), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SPLIT_PATIENT_LABEL_CONFLICT");
  CU_ASSERT(strstr(ts_error_message(), "patient 'P1'") != NULL);
  ts_split_slide dup[] = {{"a", "P1", 0}, {"b", "P2", 1}, {"a", "P3", 0}};
  CU_ASSERT_EQUAL(ts_splits_make(dup, 3, &o, &sp), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SPLIT_DUPLICATE_SLIDE");
  ts_split_slide lab[] = {{"a", "P1", 0.5}};
  CU_ASSERT_EQUAL(ts_splits_make(lab, 1, &o, &sp), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SPLIT_BAD_LABEL");
  CU_ASSERT(strstr(ts_error_message(), "slide 'a'") != NULL);
  ts_split_slide noid[] = {{"a", "", 0}};
  CU_ASSERT_EQUAL(ts_splits_make(noid, 1, &o, &sp), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SPLIT_BAD_ID");
  o.val_frac = 0.6;
  o.test_frac = 0.5;
  CU_ASSERT_EQUAL(ts_splits_make(CO.s, CO.n, &o, &sp), TS_EINVAL);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SPLIT_BAD_ARG");
  CU_ASSERT_EQUAL(ts_splits_make(CO.s, 0, NULL, &sp), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SPLIT_NO_SLIDES");
}

static void test_classify_splits_csv_roundtrip(void) {
  size_t npc[] = {40, 30};
  make_cohort(&CO, npc, 2, false, 9);
  /* ids that need quoting */
  snprintf(CO.ids[0][0], 32, "odd,\"id\"");
  ts_split_options o;
  ts_split_options_default(&o);
  o.folds = 5;
  o.test_frac = 0.2;
  ts_splits *sp = NULL, *back = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_splits_make(CO.s, CO.n, &o, &sp), 0);
  char p[512];
  ts_test_path(p, sizeof p, "splits.csv");
  CU_ASSERT_EQUAL_FATAL(ts_splits_write_csv(sp, p), 0);
  size_t len = 0;
  char *txt = ts_test_read("splits.csv", &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(txt);
  CU_ASSERT(!strncmp(txt, "fold,set,slide_id,patient_id,label\n0,train,", 43));
  CU_ASSERT(strstr(txt, "\"odd,\"\"id\"\"\"") != NULL);
  free(txt);
  int rc = ts_splits_read_csv(p, &back);
  if (rc) fprintf(stderr, "\n  %s\n", ts_error_message());
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  CU_ASSERT_EQUAL(back->folds, 5);
  CU_ASSERT(back->test_disjoint);
  CU_ASSERT_EQUAL(back->task, TS_SPLIT_CLASSIFY);
  CU_ASSERT_EQUAL_FATAL(back->nrow, sp->nrow);
  bool same = true;
  for (size_t i = 0; i < sp->nrow; i++)
    same = same && back->rows[i].fold == sp->rows[i].fold && back->rows[i].set == sp->rows[i].set &&
           !strcmp(back->rows[i].slide_id, sp->rows[i].slide_id) &&
           !strcmp(back->rows[i].patient_id, sp->rows[i].patient_id) &&
           back->rows[i].label == sp->rows[i].label && back->rows[i].line == i + 2;
  CU_ASSERT(same);
  ts_splits_free(&back);
  ts_splits_free(&sp);
  /* regression labels survive exactly */
  size_t npr[] = {60};
  make_cohort(&CO, npr, 1, true, 10);
  for (size_t i = 0; i < CO.n; i++)
    CO.s[i].label = CO.s[i].label / 3; /* not short decimals */
  o.task = TS_SPLIT_REGRESSION;
  o.nbins = 2;
  o.folds = 3;
  o.test_frac = 0.2;
  o.val_frac = 0.2;
  CU_ASSERT_EQUAL_FATAL(ts_splits_make(CO.s, CO.n, &o, &sp), 0);
  CU_ASSERT_EQUAL_FATAL(ts_splits_write_csv(sp, p), 0);
  CU_ASSERT_EQUAL_FATAL(ts_splits_read_csv(p, &back), 0);
  CU_ASSERT_EQUAL(back->task, TS_SPLIT_REGRESSION);
  same = back->nrow == sp->nrow;
  for (size_t i = 0; same && i < sp->nrow; i++)
    same = back->rows[i].label == sp->rows[i].label;
  CU_ASSERT(same);
  ts_splits_free(&back);
  ts_splits_free(&sp);
}

/* The rule is frozen: a fixed cohort and seed give these exact bytes (a change of the PRNG, the
 * rounding or the order of draws changes every published split, so it must be deliberate). */
static void test_classify_splits_golden(void) {
  size_t npc[] = {25, 15};
  make_cohort(&CO, npc, 2, false, 1);
  ts_split_options o;
  ts_split_options_default(&o); /* 10 folds, 0.1 / 0.1, seed 1 */
  o.folds = 5;
  o.test_frac = 0.2;
  ts_splits *sp = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_splits_make(CO.s, CO.n, &o, &sp), 0);
  char p[512], hex[65];
  ts_test_path(p, sizeof p, "golden.csv");
  CU_ASSERT_EQUAL_FATAL(ts_splits_write_csv(sp, p), 0);
  CU_ASSERT_EQUAL_FATAL(ts_io_sha256_file(p, hex, NULL), 0);
  if (strcmp(hex, GOLDEN_SHA256)) fprintf(stderr, "\n  golden splits changed: sha256 %s\n", hex);
  CU_ASSERT_STRING_EQUAL(hex, GOLDEN_SHA256);
  ts_splits_free(&sp);
}

/* A user's file with one mistake: TOKEN and "file:LINE" in the message. */
static void expect_read_error(const char *text, const char *token, int line, const char *also) {
  char p[512], want[600];
  ts_test_path(p, sizeof p, "user_splits.csv");
  FILE *f = fopen(p, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs(text, f);
  fclose(f);
  ts_splits *sp = NULL;
  int rc = ts_splits_read_csv(p, &sp);
  CU_ASSERT(rc < 0);
  CU_ASSERT_PTR_NULL(sp);
  if (strcmp(ts_error_token(), token)) fprintf(stderr, "\n  want %s, got %s\n", token, ts_error_message());
  CU_ASSERT_STRING_EQUAL(ts_error_token(), token);
  if (line > 0) {
    snprintf(want, sizeof want, "%s:%d", p, line);
    if (!strstr(ts_error_message(), want)) fprintf(stderr, "\n  no '%s' in: %s\n", want, ts_error_message());
    CU_ASSERT(strstr(ts_error_message(), want) != NULL);
  }
  if (also) CU_ASSERT(strstr(ts_error_message(), also) != NULL);
}

#define OKF                                                                                                  \
  "fold,set,slide_id,patient_id,label\n"                                                                     \
  "0,train,s1,p1,0\n0,train,s2,p2,1\n0,val,s3,p3,0\n0,test,s4,p4,1\n"
static void test_classify_splits_reader_errors(void) {
  /* the good file reads, with CRLF and a blank line */
  char p[512];
  ts_test_path(p, sizeof p, "user_ok.csv");
  FILE *f = fopen(p, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs("fold,set,slide_id,patient_id,label\r\n0,train,s1,p1,0\r\n\r\n0,val,s3,p3,0\r\n0,test,s4,p4,1\r\n",
        f);
  fclose(f);
  ts_splits *sp = NULL;
  CU_ASSERT_EQUAL(ts_splits_read_csv(p, &sp), 0);
  CU_ASSERT_EQUAL(sp ? sp->nrow : 0, 3);
  CU_ASSERT_EQUAL(sp ? sp->rows[2].line : 0, 5);
  ts_splits_free(&sp);

  expect_read_error(OKF "0,tset,s5,p5,0\n", "SPLITS_UNKNOWN_SET", 6, "'tset'");
  expect_read_error(OKF "0,val,s1,p1,0\n", "SPLITS_DUPLICATE_SLIDE", 6, "s1");
  expect_read_error(OKF "0,test,s5,p2,1\n", "SPLITS_PATIENT_SPLIT", 6, "patient 'p2'");
  expect_read_error(OKF "1,train,s1,p1,0\n1,test,s4,p4,1\n", "SPLITS_MISSING_SET", 6, "fold 1 has no val");
  expect_read_error(OKF "2,train,s1,p1,0\n", "SPLITS_FOLD_GAP", 0, "fold 1 has no row");
  expect_read_error("fold,set,slide,patient_id,label\n", "SPLITS_BAD_HEADER", 1, NULL);
  expect_read_error(OKF "0,train,s9\n", "SPLITS_RAGGED", 6, NULL);
  expect_read_error(OKF "x,train,s9,p9,0\n", "SPLITS_BAD_FOLD", 6, NULL);
  expect_read_error(OKF "0,train,s9,p9,abc\n", "SPLITS_BAD_LABEL", 6, NULL);
  expect_read_error(OKF "0,train,,p9,0\n", "SPLITS_BAD_ID", 6, NULL);
  expect_read_error(OKF "0,train,s9,p1,1\n", "SPLITS_LABEL_CONFLICT", 6, "patient 'p1'");
  expect_read_error("fold,set,slide_id,patient_id,label\n", "SPLITS_EMPTY", 0, NULL);
  expect_read_error("", "SPLITS_EMPTY", 0, NULL);
  ts_test_path(p, sizeof p, "no_such_file.csv");
  CU_ASSERT_EQUAL(ts_splits_read_csv(p, &sp), TS_EIO);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SPLITS_UNREADABLE");
  /* overlapping test sets read fine, and say so */
  ts_test_path(p, sizeof p, "user_overlap.csv");
  f = fopen(p, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs(OKF "1,train,s1,p1,0\n1,val,s2,p2,1\n1,test,s3,p3,0\n1,test,s4,p4,1\n", f);
  fclose(f);
  CU_ASSERT_EQUAL(ts_splits_read_csv(p, &sp), 0);
  CU_ASSERT(sp && !sp->test_disjoint);
  CU_ASSERT_EQUAL(ts_splits_check(sp, true), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SPLITS_TEST_OVERLAP");
  CU_ASSERT(strstr(ts_error_message(), "patient 'p4'") != NULL);
  CU_ASSERT(strstr(ts_error_message(), ":5") != NULL && strstr(ts_error_message(), ":9") != NULL);
  ts_splits_free(&sp);
}

int ts_test_register(void) {
  CU_pSuite s = CU_add_suite("classify", suite_init, suite_clean);
  if (!s) return -1;
  if (!CU_add_test(s, "test_classify_auc_delong_vs_proc", test_classify_auc_delong_vs_proc) ||
      !CU_add_test(s, "test_classify_auc_bruteforce", test_classify_auc_bruteforce) ||
      !CU_add_test(s, "test_classify_roc_points_vs_proc", test_classify_roc_points_vs_proc) ||
      !CU_add_test(s, "test_classify_counts_vs_sklearn", test_classify_counts_vs_sklearn) ||
      !CU_add_test(s, "test_classify_counts_by_hand", test_classify_counts_by_hand) ||
      !CU_add_test(s, "test_classify_corr_vs_cortest", test_classify_corr_vs_cortest) ||
      !CU_add_test(s, "test_classify_helpers", test_classify_helpers) ||
      !CU_add_test(s, "test_classify_metric_errors", test_classify_metric_errors) ||
      !CU_add_test(s, "test_classify_splits_properties", test_classify_splits_properties) ||
      !CU_add_test(s, "test_classify_splits_overlapping_and_partial",
                   test_classify_splits_overlapping_and_partial) ||
      !CU_add_test(s, "test_classify_splits_regression", test_classify_splits_regression) ||
      !CU_add_test(s, "test_classify_splits_input_errors", test_classify_splits_input_errors) ||
      !CU_add_test(s, "test_classify_splits_csv_roundtrip", test_classify_splits_csv_roundtrip) ||
      !CU_add_test(s, "test_classify_splits_golden", test_classify_splits_golden) ||
      !CU_add_test(s, "test_classify_splits_reader_errors", test_classify_splits_reader_errors))
    return -1;
  return 0;
}
