/* test_survival.c — CUnit suite of the survival module (stats/ts_survival.h).
 *
 * The oracle is R, run live: the suite's set-up runs tests/r_survival_oracle.R with Rscript,
 * which exports the lung, veteran and ovarian data sets of R's survival package into a fresh
 * temporary directory and writes R's results on them beside them (r_*.csv: coxph with Efron
 * and Breslow ties, basehaz, predict, concordance, survfit). Nothing is read from outside the
 * repository, and the oracle never calls tessera. No R (or no survival package) fails every
 * comparison test: a skipped comparison is a failed one. Tolerances are those of issue 5: coef
 * and SE relative 1e-6, log-likelihoods 1e-8, concordance 1e-9, Kaplan-Meier survival and SE
 * 1e-10, Wald test relative 1e-6 (the oracle writes coxph's unrounded wald.test).
 * Tests without an oracle check invariants: finite-difference gradients, brute-force pair
 * counts, the zero penalised score at a ridge optimum, and the CSV error tokens with their
 * file:line:column.
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

#define MAXP 16

static char data_dir[1024]; /* the oracle's output: a mkdtemp() directory, removed at clean-up */
static char oracle_error[4096]; /* why the oracle gave nothing, or "" */

static const char *ddir(void) { return data_dir; }

static const char *const ORACLE_FILES[] = {
    "lung.csv", "veteran.csv", "ovarian.csv", "r_coxph_coefficients.csv", "r_coxph_summary.csv",
    "r_coxph_breslow_basehaz_uncentered.csv", "r_coxph_breslow_linear_predictor.csv",
    "r_concordance_lung.csv", "r_km_lung.csv"};

/* Suite set-up: Rscript --vanilla $TS_SOURCE_DIR/tests/r_survival_oracle.R <tmpdir>. A failure
 * does not fail the set-up (the invariant tests need no R); it is recorded and every comparison
 * test fails on it in have_data(). */
static int oracle_init(void) {
  const char *src = getenv("TS_SOURCE_DIR");
#ifdef TS_SOURCE_DIR
  if (!src || !*src) src = TS_SOURCE_DIR;
#endif
  if (!src || !*src) src = ".";
  const char *tmp = getenv("TMPDIR");
  snprintf(data_dir, sizeof data_dir, "%s/ts_test_survival_XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(data_dir)) {
    snprintf(oracle_error, sizeof oracle_error, "mkdtemp(%s) failed", data_dir);
    data_dir[0] = 0;
    return 0;
  }
  char script[1100];
  snprintf(script, sizeof script, "%s/tests/r_survival_oracle.R", src);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    /* R's chatter goes to the test log (stderr), not to CUnit's report on stdout. */
    dup2(STDERR_FILENO, STDOUT_FILENO);
    execlp("Rscript", "Rscript", "--vanilla", script, data_dir, (char *)NULL);
    fprintf(stderr, "test_survival: cannot run Rscript: %s\n", strerror(errno));
    _exit(127);
  }
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) != pid)
    snprintf(oracle_error, sizeof oracle_error, "fork/wait of Rscript failed: %s", strerror(errno));
  else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    snprintf(oracle_error, sizeof oracle_error,
             "Rscript %s %s exited with status %d%s", script, data_dir,
             WIFEXITED(st) ? WEXITSTATUS(st) : -1,
             WIFEXITED(st) && WEXITSTATUS(st) == 127
                 ? " (no Rscript on PATH: install r-base-core r-cran-survival)"
                 : " (is the survival package installed? r-cran-survival)");
  return 0;
}

static int oracle_clean(void) {
  if (!data_dir[0]) return 0;
  char p[1200];
  for (size_t i = 0; i < sizeof ORACLE_FILES / sizeof ORACLE_FILES[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", data_dir, ORACLE_FILES[i]);
    unlink(p);
  }
  rmdir(data_dir);
  return 0;
}

static bool have_data(void) {
  char p[1200];
  for (size_t i = 0; !oracle_error[0] && i < sizeof ORACLE_FILES / sizeof ORACLE_FILES[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", ddir(), ORACLE_FILES[i]);
    if (access(p, R_OK) != 0) snprintf(oracle_error, sizeof oracle_error, "the R oracle did not write %s", p);
  }
  if (oracle_error[0]) {
    fprintf(stderr, "\n  R oracle unavailable: %s\n", oracle_error);
    CU_FAIL("R oracle unavailable: a skipped comparison is a failed one");
    return false;
  }
  return true;
}

static bool rel_ok(double got, double want, double tol) {
  if (isnan(got) || isnan(want)) return isnan(got) && isnan(want);
  return fabs(got - want) <= tol * fmax(fabs(want), 1e-300) || fabs(got - want) < 1e-300;
}

#define CHECK_REL(got, want, tol, what)                                                      \
  do {                                                                                       \
    double g_ = (got), w_ = (want);                                                          \
    if (!rel_ok(g_, w_, (tol)))                                                              \
      fprintf(stderr, "\n  MISMATCH %s: tessera %.15g R %.15g (rel %.3g)\n", (what), g_, w_,  \
              fabs(g_ - w_) / fabs(w_));                                                     \
    CU_ASSERT(rel_ok(g_, w_, (tol)));                                                        \
  } while (0)

#define CHECK_ABS(got, want, tol, what)                                                      \
  do {                                                                                       \
    double g_ = (got), w_ = (want);                                                          \
    if (!(fabs(g_ - w_) <= (tol)))                                                           \
      fprintf(stderr, "\n  MISMATCH %s: tessera %.15g R %.15g (abs %.3g)\n", (what), g_, w_,  \
              fabs(g_ - w_));                                                                \
    CU_ASSERT(fabs(g_ - w_) <= (tol));                                                       \
  } while (0)

/* A data set as the R oracle exported it, with the covariates R used (from r_coxph_coefficients). */
typedef struct dset {
  ts_csv_table *tab;
  ts_surv_data d;
  double *x;
  size_t p;
  char names[MAXP][64];
} dset;

static ts_csv_table *ref_table(const char *file) {
  char p[1200];
  snprintf(p, sizeof p, "%s/%s", ddir(), file);
  ts_csv_table *t = NULL;
  if (ts_csv_read(p, &t) < 0) fprintf(stderr, "%s\n", ts_error_message());
  return t;
}

/* R's CSVs have text columns (dataset, ties, term): read them as strings with a tiny parser. */
typedef struct strtab {
  size_t nrow, ncol;
  char cell[512][16][96];
} strtab;

static strtab *read_strtab(const char *file) {
  char p[1200], line[4096];
  snprintf(p, sizeof p, "%s/%s", ddir(), file);
  FILE *f = fopen(p, "r");
  if (!f) return NULL;
  strtab *t = calloc(1, sizeof *t);
  size_t r = 0;
  while (t && fgets(line, sizeof line, f) && r < 512) {
    size_t c = 0, k = 0;
    bool q = false;
    for (char *s = line; *s && *s != '\n' && *s != '\r'; s++) {
      if (*s == '"') q = !q;
      else if (*s == ',' && !q) {
        t->cell[r][c][k] = 0;
        if (c < 15) c++;
        k = 0;
      } else if (k < 95)
        t->cell[r][c][k++] = *s;
    }
    t->cell[r][c][k] = 0;
    t->ncol = c + 1;
    r++;
  }
  fclose(f);
  if (t) t->nrow = r;
  return t;
}

static size_t scol(const strtab *t, const char *name) {
  for (size_t c = 0; c < t->ncol; c++)
    if (!strcmp(t->cell[0][c], name)) return c;
  CU_FAIL("reference column missing");
  return 0;
}

static bool load(const char *name, dset *s) {
  memset(s, 0, sizeof *s);
  char file[128];
  snprintf(file, sizeof file, "%s.csv", name);
  s->tab = ref_table(file);
  if (!s->tab) return false;
  if (ts_surv_data_from_csv(s->tab, "time", "event", NULL, NULL, &s->d) < 0) return false;
  strtab *co = read_strtab("r_coxph_coefficients.csv");
  if (!co) return false;
  size_t cd = scol(co, "dataset"), ct = scol(co, "ties"), cterm = scol(co, "term");
  const char *nm[MAXP];
  for (size_t r = 1; r < co->nrow; r++)
    if (!strcmp(co->cell[r][cd], name) && !strcmp(co->cell[r][ct], "efron") && s->p < MAXP) {
      snprintf(s->names[s->p], 64, "%.63s", co->cell[r][cterm]);
      nm[s->p] = s->names[s->p];
      s->p++;
    }
  free(co);
  return ts_csv_design(s->tab, nm, s->p, &s->x) == 0;
}

static void unload(dset *s) {
  free(s->x);
  ts_surv_data_release(&s->d);
  ts_csv_free(&s->tab);
}

static const char *DATASETS[] = {"lung", "veteran", "ovarian"};

static void test_survival_cox_matches_r(void) {
  if (!have_data()) return;
  strtab *co = read_strtab("r_coxph_coefficients.csv"), *su = read_strtab("r_coxph_summary.csv");
  CU_ASSERT_PTR_NOT_NULL_FATAL(co);
  CU_ASSERT_PTR_NOT_NULL_FATAL(su);
  for (size_t k = 0; k < 3; k++) {
    dset s;
    CU_ASSERT_FATAL(load(DATASETS[k], &s));
    for (int ties = 0; ties < 2; ties++) {
      const char *tn = ties == TS_COX_EFRON ? "efron" : "breslow";
      ts_cox_options o;
      ts_cox_options_default(&o);
      o.ties = ties;
      ts_cox_fit *f = NULL;
      CU_ASSERT_EQUAL_FATAL(ts_cox_fit_new(&s.d, s.x, s.p, &o, &f), 0);
      char what[160];
      size_t j = 0;
      for (size_t r = 1; r < co->nrow; r++) {
        if (strcmp(co->cell[r][scol(co, "dataset")], DATASETS[k]) ||
            strcmp(co->cell[r][scol(co, "ties")], tn))
          continue;
        CU_ASSERT_STRING_EQUAL(co->cell[r][scol(co, "term")], s.names[j]);
#define RC(name) atof(co->cell[r][scol(co, name)])
        snprintf(what, sizeof what, "%s/%s/%s", DATASETS[k], tn, s.names[j]);
        CHECK_REL(f->coef[j], RC("coef"), 1e-6, what);
        CHECK_REL(f->hr[j], RC("exp_coef"), 1e-6, what);
        CHECK_REL(f->se[j], RC("se"), 1e-6, what);
        CHECK_REL(f->z[j], RC("z"), 1e-6, what);
        CHECK_REL(f->pvalue[j], RC("p"), 1e-5, what);
        j++;
      }
      CU_ASSERT_EQUAL(j, s.p);
      for (size_t r = 1; r < su->nrow; r++) {
        if (strcmp(su->cell[r][scol(su, "dataset")], DATASETS[k]) ||
            strcmp(su->cell[r][scol(su, "ties")], tn))
          continue;
#define RS(name) atof(su->cell[r][scol(su, name)])
        snprintf(what, sizeof what, "%s/%s summary", DATASETS[k], tn);
        CU_ASSERT_EQUAL(f->n, (size_t)RS("n"));
        CU_ASSERT_EQUAL(f->nevent, (size_t)RS("nevent"));
        CHECK_ABS(f->loglik_null, RS("loglik_null"), 1e-8, what);
        CHECK_ABS(f->loglik, RS("loglik_model"), 1e-8, what);
        CHECK_REL(f->lr_test, RS("lr_test"), 1e-6, what);
        CHECK_REL(f->wald_test, RS("wald_test"), 1e-6, what);
        CHECK_REL(f->score_test, RS("score_test"), 1e-6, what);
        CHECK_ABS(f->concordance, RS("concordance"), 1e-9, what);
        CHECK_REL(f->concordance_se, RS("concordance_se"), 1e-6, what);
        if (f->iter != (int)RS("iter"))
          fprintf(stderr, "\n  %s: iter %d, R %d\n", what, f->iter, (int)RS("iter"));
        CU_ASSERT_EQUAL(f->iter, (int)RS("iter"));
        CU_ASSERT_EQUAL(f->status, TS_COX_CONVERGED);
        CU_ASSERT_STRING_EQUAL(f->warning, "");
      }
      ts_cox_fit_free(&f);
      CU_ASSERT_PTR_NULL(f);
    }
    unload(&s);
  }
  free(co);
  free(su);
}

static void test_survival_cox_basehaz_lp_match_r(void) {
  if (!have_data()) return;
  strtab *bh = read_strtab("r_coxph_breslow_basehaz_uncentered.csv");
  strtab *lp = read_strtab("r_coxph_breslow_linear_predictor.csv");
  CU_ASSERT_PTR_NOT_NULL_FATAL(bh);
  CU_ASSERT_PTR_NOT_NULL_FATAL(lp);
  for (size_t k = 0; k < 3; k++) {
    dset s;
    CU_ASSERT_FATAL(load(DATASETS[k], &s));
    ts_cox_options o;
    ts_cox_options_default(&o);
    o.ties = TS_COX_BRESLOW;
    ts_cox_fit *f = NULL;
    CU_ASSERT_EQUAL_FATAL(ts_cox_fit_new(&s.d, s.x, s.p, &o, &f), 0);
    size_t j = 0;
    char what[128];
    for (size_t r = 1; r < bh->nrow; r++) {
      if (strcmp(bh->cell[r][0], DATASETS[k])) continue;
      snprintf(what, sizeof what, "%s basehaz t=%s", DATASETS[k], bh->cell[r][2]);
      CU_ASSERT_FATAL(j < f->nbase);
      CHECK_REL(f->base_time[j], atof(bh->cell[r][2]), 1e-12, what);
      CHECK_REL(f->base_cumhaz[j], atof(bh->cell[r][3]), 1e-6, what);
      j++;
    }
    CU_ASSERT_EQUAL(j, f->nbase);
    j = 0;
    for (size_t r = 1; r < lp->nrow; r++) {
      if (strcmp(lp->cell[r][0], DATASETS[k])) continue;
      size_t row = (size_t)atol(lp->cell[r][2]) - 1;
      CU_ASSERT_FATAL(row < f->n);
      snprintf(what, sizeof what, "%s lp row %zu", DATASETS[k], row + 1);
      CHECK_ABS(f->lp[row], atof(lp->cell[r][3]), 1e-6 * fmax(1, fabs(atof(lp->cell[r][3]))),
                what);
      j++;
    }
    CU_ASSERT_EQUAL(j, f->n);
    ts_cox_fit_free(&f);
    unload(&s);
  }
  free(bh);
  free(lp);
}

static void test_survival_concordance_matches_r(void) {
  if (!have_data()) return;
  strtab *cc = read_strtab("r_concordance_lung.csv");
  CU_ASSERT_PTR_NOT_NULL_FATAL(cc);
  dset s;
  CU_ASSERT_FATAL(load("lung", &s));
  ts_cox_fit *f = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_cox_fit_new(&s.d, s.x, s.p, NULL, &f), 0);
  static const struct {
    const char *label;
    int tw;
  } v[] = {{"harrell (timewt=n)", TS_TIMEWT_N},
           {"timewt=S", TS_TIMEWT_S},
           {"uno (timewt=S/G)", TS_TIMEWT_S_G}};
  size_t found = 0;
  for (size_t r = 1; r < cc->nrow; r++)
    for (size_t q = 0; q < 3; q++) {
      if (strcmp(cc->cell[r][0], v[q].label)) continue;
      ts_concordance c;
      CU_ASSERT_EQUAL_FATAL(ts_surv_concordance(&s.d, f->lp, v[q].tw, INFINITY, &c), 0);
      CHECK_ABS(c.c, atof(cc->cell[r][1]), 1e-9, v[q].label);
      found++;
    }
  CU_ASSERT_EQUAL(found, 3);
  ts_cox_fit_free(&f);
  unload(&s);
  free(cc);
}

static void test_survival_km_matches_r(void) {
  if (!have_data()) return;
  strtab *km = read_strtab("r_km_lung.csv");
  CU_ASSERT_PTR_NOT_NULL_FATAL(km);
  dset s;
  CU_ASSERT_FATAL(load("lung", &s));
  ts_km *k = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_km_fit_new(&s.d, 0.95, &k), 0);
  CU_ASSERT_EQUAL_FATAL(k->ncurve, 1);
  const ts_km_curve *cv = &k->curve[0];
  CU_ASSERT_EQUAL(cv->len, km->nrow - 1);
  char what[96];
  for (size_t r = 1; r < km->nrow && r - 1 < cv->len; r++) {
    size_t t = r - 1;
    snprintf(what, sizeof what, "lung KM t=%.80s", km->cell[r][0]);
    CU_ASSERT_EQUAL(cv->time[t], atof(km->cell[r][0]));
    CU_ASSERT_EQUAL(cv->n_risk[t], atof(km->cell[r][1]));
    CU_ASSERT_EQUAL(cv->n_event[t], atof(km->cell[r][2]));
    CU_ASSERT_EQUAL(cv->n_censor[t], atof(km->cell[r][3]));
    CHECK_ABS(cv->surv[t], atof(km->cell[r][4]), 1e-10, what);
    CHECK_ABS(cv->std_err[t], atof(km->cell[r][5]), 1e-10, what);
    /* log-scale limits bracket S */
    CU_ASSERT(cv->lower[t] <= cv->surv[t] && cv->surv[t] <= cv->upper[t]);
  }
  CU_ASSERT_EQUAL(cv->median, 310); /* R: survfit(Surv(time, status) ~ 1, lung) median 310 */
  ts_km_free(&k);
  CU_ASSERT_PTR_NULL(k);
  unload(&s);
  free(km);
}

/* ------------------------------------------------------------- invariants */

static double urand(unsigned *st) {
  *st = *st * 1103515245u + 12345u;
  return ((*st >> 8) & 0xffffff) / 16777216.0;
}

static void sim(size_t n, size_t p, unsigned seed, double *time, int *event, double *x) {
  unsigned st = seed;
  for (size_t i = 0; i < n; i++) {
    double lp = 0;
    for (size_t j = 0; j < p; j++) {
      x[i * p + j] = urand(&st) * 2 - 1;
      lp += 0.5 * x[i * p + j];
    }
    double t = -log(urand(&st) + 1e-12) * exp(-lp), c = -log(urand(&st) + 1e-12) * 1.5;
    time[i] = floor(fmin(t, c) * 20) / 20; /* ties */
    event[i] = t <= c;
  }
}

static void test_survival_cox_gradient_fd(void) {
  enum { N = 200, P = 3 };
  static double time[N], x[N * P], w[N];
  static int ev[N], st[N];
  sim(N, P, 7, time, ev, x);
  for (int i = 0; i < N; i++) {
    w[i] = 0.5 + (i % 3);
    st[i] = i % 2;
  }
  ts_surv_data d = {.n = N, .time = time, .event = ev, .weight = w, .strata = st};
  double beta[P] = {0.3, -0.2, 0.1}, u[P], info[P * P];
  for (int ties = 0; ties < 2; ties++) {
    double ll;
    CU_ASSERT_EQUAL_FATAL(ts_cox_loglik(&d, x, P, ties, beta, &ll, u, info), 0);
    for (int j = 0; j < P; j++) {
      double h = 1e-5, b1[P], b2[P], l1, l2, u1[P], u2[P];
      memcpy(b1, beta, sizeof b1);
      memcpy(b2, beta, sizeof b2);
      b1[j] += h;
      b2[j] -= h;
      ts_cox_loglik(&d, x, P, ties, b1, &l1, u1, NULL);
      ts_cox_loglik(&d, x, P, ties, b2, &l2, u2, NULL);
      CU_ASSERT(fabs((l1 - l2) / (2 * h) - u[j]) < 1e-5 * fmax(1, fabs(u[j])));
      for (int k = 0; k < P; k++) /* information = -d score / d beta */
        CU_ASSERT(fabs(-(u1[k] - u2[k]) / (2 * h) - info[k * P + j]) < 1e-5 * fmax(1, fabs(info[k * P + j])));
    }
  }
}

static void test_survival_cox_ridge_score_zero(void) {
  enum { N = 300, P = 4 };
  static double time[N], x[N * P];
  static int ev[N];
  sim(N, P, 11, time, ev, x);
  ts_surv_data d = {.n = N, .time = time, .event = ev};
  ts_cox_options o;
  ts_cox_options_default(&o);
  o.ridge = 5;
  ts_cox_fit *f = NULL, *f0 = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_cox_fit_new(&d, x, P, &o, &f), 0);
  o.ridge = 0;
  CU_ASSERT_EQUAL_FATAL(ts_cox_fit_new(&d, x, P, &o, &f0), 0);
  double ll, u[P];
  CU_ASSERT_EQUAL_FATAL(ts_cox_loglik(&d, x, P, TS_COX_EFRON, f->coef, &ll, u, NULL), 0);
  double nb = 0, nb0 = 0;
  for (int j = 0; j < P; j++) {
    CU_ASSERT(fabs(u[j] - 5 * f->coef[j]) < 1e-4); /* penalised score = 0 */
    nb += f->coef[j] * f->coef[j];
    nb0 += f0->coef[j] * f0->coef[j];
  }
  CU_ASSERT(nb < nb0); /* shrinkage */
  CU_ASSERT(fabs(ll - f->loglik) < 1e-9 * fabs(ll));
  ts_cox_fit_free(&f);
  ts_cox_fit_free(&f0);
}

static void test_survival_cox_separation_warns(void) {
  enum { N = 40 };
  double time[N], x[N * 2];
  int ev[N];
  for (int i = 0; i < N; i++) {
    time[i] = i + 1;
    ev[i] = i % 3 != 0;
    x[2 * i] = i < N / 2;           /* all early deaths have x = 1: monotone likelihood */
    x[2 * i + 1] = sin(i * 1.3);
  }
  ts_surv_data d = {.n = N, .time = time, .event = ev};
  ts_cox_fit *f = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_cox_fit_new(&d, x, 2, NULL, &f), 0);
  CU_ASSERT(f->infinite[0]);
  CU_ASSERT(!f->infinite[1]);
  CU_ASSERT(strncmp(f->warning, "COX_INFINITE_COEF:", 18) == 0);
  ts_cox_fit_free(&f);
}

static void test_survival_cox_singular_and_overflow(void) {
  enum { N = 100 };
  double time[N], x[N * 2], x1[N];
  int ev[N];
  sim(N, 1, 3, time, ev, x1);
  for (int i = 0; i < N; i++) {
    x[2 * i] = x1[i];
    x[2 * i + 1] = 2 * x1[i]; /* aliased */
  }
  ts_surv_data d = {.n = N, .time = time, .event = ev};
  ts_cox_fit *f = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_cox_fit_new(&d, x, 2, NULL, &f), 0);
  CU_ASSERT(f->singular);
  CU_ASSERT(isnan(f->coef[1]) && isfinite(f->coef[0]));
  CU_ASSERT(strncmp(f->warning, "COX_SINGULAR:", 13) == 0);
  ts_cox_fit_free(&f);
  /* huge covariate scale: the likelihood stays finite and the fit scales back exactly */
  double xs[N];
  for (int i = 0; i < N; i++) xs[i] = x1[i] * 1000;
  ts_cox_fit *g = NULL, *h = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_cox_fit_new(&d, x1, 1, NULL, &g), 0);
  CU_ASSERT_EQUAL_FATAL(ts_cox_fit_new(&d, xs, 1, NULL, &h), 0);
  CU_ASSERT(fabs(h->coef[0] * 1000 - g->coef[0]) < 1e-8 * fabs(g->coef[0]));
  double ll, u;
  double big = 800.0 / 1000 / fabs(x1[0] ? x1[0] : 1); /* lp ~ 800: exp would overflow */
  CU_ASSERT_EQUAL(ts_cox_loglik(&d, xs, 1, TS_COX_EFRON, &big, &ll, &u, NULL), 0);
  CU_ASSERT(isfinite(ll) && isfinite(u));
  ts_cox_fit_free(&g);
  ts_cox_fit_free(&h);
}

/* brute-force Harrell / Uno counts */
static double brute_c(const ts_surv_data *d, const double *r, bool uno, double tau) {
  size_t n = d->n;
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    if (!d->event[i] || d->time[i] > tau) continue;
    double wi = 1;
    if (uno) { /* G(T_i-): censoring KM, censors after deaths at ties */
      double G = 1;
      for (size_t k = 0; k < n; k++) {
        double t = d->time[k];
        if (t >= d->time[i] || d->event[k]) continue;
        bool seen = false; /* each censoring time once */
        for (size_t q = 0; q < k; q++) seen |= !d->event[q] && d->time[q] == t;
        if (seen) continue;
        double nr = 0, c = 0, dd = 0;
        for (size_t q = 0; q < n; q++) {
          nr += d->time[q] >= t;
          c += d->time[q] == t && !d->event[q];
          dd += d->time[q] == t && d->event[q];
        }
        G *= (nr - dd - c) / (nr - dd);
      }
      wi = 1 / (G * G);
    }
    for (size_t j = 0; j < n; j++) {
      if (!(d->time[j] > d->time[i] || (d->time[j] == d->time[i] && !d->event[j]))) continue;
      den += wi;
      num += wi * (r[i] > r[j] ? 1 : r[i] == r[j] ? 0.5 : 0);
    }
  }
  return num / den;
}

static void test_survival_concordance_brute_force(void) {
  enum { N = 150 };
  double time[N], x[N], r[N];
  int ev[N];
  sim(N, 1, 5, time, ev, x);
  for (int i = 0; i < N; i++) r[i] = floor(x[i] * 5); /* tied risks */
  ts_surv_data d = {.n = N, .time = time, .event = ev};
  ts_concordance c;
  CU_ASSERT_EQUAL_FATAL(ts_surv_concordance(&d, r, TS_TIMEWT_N, INFINITY, &c), 0);
  CU_ASSERT(fabs(c.c - brute_c(&d, r, false, INFINITY)) < 1e-12);
  CU_ASSERT(c.std_err > 0 && c.std_err < 0.2);
  CU_ASSERT_EQUAL_FATAL(ts_surv_uno_c(&d, r, 1.0, &c), 0);
  CU_ASSERT(fabs(c.c - brute_c(&d, r, true, 1.0)) < 1e-12);
  /* AUC(t): brute force with the same weights */
  double tt[2] = {0.5, 1.0}, auc[2];
  CU_ASSERT_EQUAL_FATAL(ts_surv_auc_cd(&d, r, tt, 2, auc), 0);
  for (int k = 0; k < 2; k++) {
    double num = 0, den = 0;
    for (int i = 0; i < N; i++) {
      if (!ev[i] || time[i] > tt[k]) continue;
      double G = 1; /* G(T_i-) */
      double ts[N];
      int m = 0;
      for (int q = 0; q < N; q++) {
        if (ev[q] || time[q] >= time[i]) continue;
        bool seen = false;
        for (int z = 0; z < m; z++) seen |= ts[z] == time[q];
        if (seen) continue;
        ts[m++] = time[q];
        double nr = 0, cz = 0, dz = 0;
        for (int z = 0; z < N; z++) {
          nr += time[z] >= time[q];
          cz += time[z] == time[q] && !ev[z];
          dz += time[z] == time[q] && ev[z];
        }
        G *= (nr - dz - cz) / (nr - dz);
      }
      for (int j = 0; j < N; j++) {
        if (time[j] <= tt[k]) continue;
        den += 1 / G;
        num += (r[i] > r[j] ? 1 : r[i] == r[j] ? 0.5 : 0) / G;
      }
    }
    CU_ASSERT(fabs(auc[k] - num / den) < 1e-12);
  }
}

static void test_survival_logrank_two_groups(void) {
  enum { N = 120 };
  double time[N], x[N];
  int ev[N], g[N];
  sim(N, 1, 9, time, ev, x);
  for (int i = 0; i < N; i++) g[i] = x[i] > 0;
  ts_surv_data d = {.n = N, .time = time, .event = ev};
  ts_logrank *lr = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_logrank_new(&d, g, &lr), 0);
  /* O - E sums to zero; 2-group chi-square = (O1 - E1)^2 / V11 by hand */
  double o = 0, e = 0, v = 0;
  for (size_t k = 0; k < 2; k++) {
    o += lr->observed[k];
    e += lr->expected[k];
  }
  CU_ASSERT(fabs(o - e) < 1e-9);
  double ts_[N];
  int m = 0;
  for (int i = 0; i < N; i++) {
    if (!ev[i]) continue;
    bool seen = false;
    for (int z = 0; z < m; z++) seen |= ts_[z] == time[i];
    if (seen) continue;
    ts_[m++] = time[i];
    double n = 0, n1 = 0, dd = 0;
    for (int z = 0; z < N; z++) {
      n += time[z] >= time[i];
      n1 += time[z] >= time[i] && g[z] == 1;
      dd += time[z] == time[i] && ev[z];
    }
    if (n > 1) v += dd * (n1 / n) * (1 - n1 / n) * (n - dd) / (n - 1);
  }
  double diff = lr->observed[1] - lr->expected[1];
  CU_ASSERT(fabs(lr->chisq - diff * diff / v) < 1e-9 * lr->chisq);
  CU_ASSERT_EQUAL(lr->df, 1);
  ts_logrank_free(&lr);
  int grp[N];
  ts_km *km = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_surv_risk_groups(&d, x, NULL, 0, grp, &km, &lr), 0);
  CU_ASSERT_EQUAL(km->ncurve, 2);
  CU_ASSERT(lr->p > 0 && lr->p <= 1);
  ts_km_free(&km);
  ts_logrank_free(&lr);
}

/* ------------------------------------------------------------- CSV errors */

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs(text, f);
  fclose(f);
}

static void expect_csv_error(const char *text, const char *token, const char *where) {
  char path[] = "/tmp/ts_surv_csv_XXXXXX";
  int fd = mkstemp(path);
  CU_ASSERT_FATAL(fd >= 0);
  close(fd);
  write_file(path, text);
  ts_csv_table *t = NULL;
  ts_surv_data d;
  int rc = ts_csv_read(path, &t);
  if (rc == 0) rc = ts_surv_data_from_csv(t, "time", "event", NULL, NULL, &d);
  if (rc == 0) {
    double *x = NULL;
    const char *cov[] = {"age"};
    rc = ts_csv_design(t, cov, 1, &x);
    free(x);
    ts_surv_data_release(&d);
  }
  CU_ASSERT(rc < 0);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), token);
  char want[1200];
  snprintf(want, sizeof want, "%s:%s", path, where);
  if (!strstr(ts_error_message(), want))
    fprintf(stderr, "\n  message '%s' lacks '%s'\n", ts_error_message(), want);
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), want));
  ts_csv_free(&t);
  remove(path);
}

static void test_survival_csv_errors(void) {
  expect_csv_error("time,event\n1,1\n", "CSV_MISSING_COLUMN", "1:");
  expect_csv_error("time,event,age\n1,1,50\n2,0,abc\n", "CSV_BAD_VALUE", "3:3:");
  expect_csv_error("time,event,age\n1,1,50\n\n-2,0,40\n", "SURV_NEGATIVE_TIME", "4:1:");
  expect_csv_error("time,event,age\n1,1,50\n2,0,40\n3,2,40\n", "SURV_BAD_EVENT", "4:2:");
  expect_csv_error("time,event,age\n1,1,50\n2,0\n", "CSV_RAGGED", "3:");
  expect_csv_error("\"time\",\"event\",\"age\"\n1,x,50\n", "CSV_BAD_VALUE", "2:2:");
  ts_csv_table *t = NULL;
  CU_ASSERT(ts_csv_read("/nonexistent/file.csv", &t) == TS_EIO);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "CSV_UNREADABLE");
}

int ts_test_register(void) {
  CU_pSuite s = CU_add_suite("survival", oracle_init, oracle_clean);
  if (!s) return -1;
  if (!CU_add_test(s, "test_survival_cox_matches_r", test_survival_cox_matches_r) ||
      !CU_add_test(s, "test_survival_cox_basehaz_lp_match_r", test_survival_cox_basehaz_lp_match_r) ||
      !CU_add_test(s, "test_survival_concordance_matches_r", test_survival_concordance_matches_r) ||
      !CU_add_test(s, "test_survival_km_matches_r", test_survival_km_matches_r) ||
      !CU_add_test(s, "test_survival_cox_gradient_fd", test_survival_cox_gradient_fd) ||
      !CU_add_test(s, "test_survival_cox_ridge_score_zero", test_survival_cox_ridge_score_zero) ||
      !CU_add_test(s, "test_survival_cox_separation_warns", test_survival_cox_separation_warns) ||
      !CU_add_test(s, "test_survival_cox_singular_and_overflow", test_survival_cox_singular_and_overflow) ||
      !CU_add_test(s, "test_survival_concordance_brute_force", test_survival_concordance_brute_force) ||
      !CU_add_test(s, "test_survival_logrank_two_groups", test_survival_logrank_two_groups) ||
      !CU_add_test(s, "test_survival_csv_errors", test_survival_csv_errors))
    return -1;
  return 0;
}
