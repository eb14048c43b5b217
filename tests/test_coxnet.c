/* test_coxnet.c — elastic-net Cox regression (ts_coxnet_fit, stats/ts_survival.h) against R's
 * glmnet(family = "cox"), run live: tests/r_coxnet_oracle.R writes two data sets (survival::lung
 * complete cases with tied times broken by 1e-4 days, p = 5; a wide synthetic set, n = 120, p = 30, 5 true effects) and glmnet's
 * coefficients at 0.5, 0.2 and 0.05 of lambda_max for alpha 1 (lasso) and 0.5, fitted to
 * thresh 1e-20. Checked: every coefficient within 1e-4 (relative to the set's largest), exactly
 * the same zero pattern (a coefficient glmnet sets to 0 is 0 here, and no other), lambda_max
 * equal to glmnet's first lambda (1e-9 relative) and an all-zero fit at it; controls: another
 * lambda gives other coefficients (the comparison can fail), and the unpenalised limit
 * (lambda 0) equals the stats core's Breslow Cox fit. */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_survival.h"
#include "ts_test_util.h"

static char dir[512];
static int oracle_ok;

static int suite_init(void) {
  if (ts_test_tmpdir_make("ts_test_coxnet") < 0) return -1;
  ts_test_path(dir, sizeof dir, "");
  const char *src = getenv("TS_SOURCE_DIR");
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "Rscript --vanilla '%s/tests/r_coxnet_oracle.R' '%s' 2>&1", src ? src : ".", dir);
  oracle_ok = system(cmd) == 0;
  if (!oracle_ok) fprintf(stderr, "test_coxnet: the R oracle failed (needs r-base-core, r-cran-survival, r-cran-glmnet; TS_SOURCE_DIR=%s)\n", src ? src : "(unset)");
  return 0;
}

static int suite_clean(void) { return ts_test_tmpdir_remove(); }

typedef struct dataset {
  ts_csv_table *t;
  ts_surv_data d;
  double *x;
  size_t p;
} dataset;

static void load(const char *set, dataset *s) {
  char p[600];
  memset(s, 0, sizeof *s);
  snprintf(p, sizeof p, "%s/%s.csv", dir, set);
  CU_ASSERT_EQUAL_FATAL(ts_csv_read(p, &s->t), 0);
  CU_ASSERT_EQUAL_FATAL(ts_surv_data_from_csv(s->t, "time", "status", NULL, NULL, &s->d), 0);
  s->p = s->t->ncol - 2;
  const char *names[64];
  for (size_t j = 0; j < s->p; j++) names[j] = s->t->names[j + 2];
  CU_ASSERT_EQUAL_FATAL(ts_csv_design(s->t, names, s->p, &s->x), 0);
}

static void unload(dataset *s) {
  free(s->x);
  ts_surv_data_release(&s->d);
  ts_csv_free(&s->t);
}

static void test_coxnet_matches_glmnet(void) {
  CU_ASSERT_FATAL(oracle_ok);
  char p[600];
  snprintf(p, sizeof p, "%s/coef.csv", dir);
  FILE *f = fopen(p, "r");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  char line[512];
  CU_ASSERT_PTR_NOT_NULL(fgets(line, sizeof line, f)); /* header */
  char set[32] = "", cur[32] = "";
  double alpha = 0, lambda = 0, lmax = 0, want[64] = {0};
  int fits = 0, nz = 0;
  double worst = 0;
  dataset s = {0};
  for (;;) {
    char st[32];
    double a, l, lm, c;
    int j;
    bool more = fgets(line, sizeof line, f) && sscanf(line, "%31[^,],%lf,%lf,%lf,%d,%lf", st, &a, &l, &lm, &j, &c) == 6;
    if (!more || strcmp(st, set) || a != alpha || l != lambda) {
      if (set[0]) { /* one (set, alpha, lambda) complete: fit and compare */
        if (strcmp(cur, set)) {
          if (cur[0]) unload(&s);
          load(set, &s);
          snprintf(cur, sizeof cur, "%s", set);
        }
        ts_coxnet_options o;
        ts_coxnet_options_default(&o);
        o.lambda = lambda, o.alpha = alpha;
        double b[64], scale = 0;
        int it = 0;
        CU_ASSERT_EQUAL_FATAL(ts_coxnet_fit(&s.d, s.x, s.p, &o, b, &it), 0);
        for (size_t k = 0; k < s.p; k++) scale = fmax(scale, fabs(want[k]));
        for (size_t k = 0; k < s.p; k++) {
          double e = fabs(b[k] - want[k]) / fmax(scale, 1e-12);
          worst = fmax(worst, e);
          CU_ASSERT(e <= 1e-4);
          CU_ASSERT_EQUAL(b[k] == 0.0, want[k] == 0.0); /* the same coefficients selected */
          nz += want[k] != 0.0;
          if (e > 1e-4 || (b[k] == 0.0) != (want[k] == 0.0))
            fprintf(stderr, "\n%s alpha %g lambda %g: beta_%zu = %.10g, glmnet %.10g", set, alpha, lambda, k + 1, b[k], want[k]);
        }
        double lm2 = 0;
        CU_ASSERT_EQUAL(ts_coxnet_lambda_max(&s.d, s.x, s.p, &o, &lm2), 0);
        CU_ASSERT(fabs(lm2 - lmax) <= 1e-9 * lmax);
        o.lambda = lm2 * (1 + 1e-9);
        CU_ASSERT_EQUAL(ts_coxnet_fit(&s.d, s.x, s.p, &o, b, NULL), 0);
        for (size_t k = 0; k < s.p; k++) CU_ASSERT_EQUAL(b[k], 0.0);
        /* control: a lambda 10% off gives coefficients glmnet's do not match */
        o.lambda = lambda * 1.1;
        CU_ASSERT_EQUAL(ts_coxnet_fit(&s.d, s.x, s.p, &o, b, NULL), 0);
        double off = 0;
        for (size_t k = 0; k < s.p; k++) off = fmax(off, fabs(b[k] - want[k]) / fmax(scale, 1e-12));
        CU_ASSERT(off > 1e-3);
        fits++;
      }
      if (!more) break;
      snprintf(set, sizeof set, "%s", st);
      alpha = a, lambda = l, lmax = lm;
      memset(want, 0, sizeof want);
    }
    if (j >= 1 && j <= 64) want[j - 1] = c;
  }
  fclose(f);
  fprintf(stderr, "[%d glmnet fits, %d nonzero coefficients, worst relative error %.2e] ", fits, nz, worst);
  CU_ASSERT_EQUAL(fits, 12);
  if (cur[0]) unload(&s);
}

/* lambda 0: the unpenalised partial likelihood, i.e. the Cox fit of the stats core (Breslow). */
static void test_coxnet_unpenalised_is_cox(void) {
  CU_ASSERT_FATAL(oracle_ok);
  dataset s;
  load("lung", &s);
  ts_coxnet_options o;
  ts_coxnet_options_default(&o);
  o.lambda = 0;
  double b[8];
  CU_ASSERT_EQUAL(ts_coxnet_fit(&s.d, s.x, s.p, &o, b, NULL), 0);
  ts_cox_options co;
  ts_cox_options_default(&co);
  co.ties = TS_COX_BRESLOW;
  ts_cox_fit *fit = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_cox_fit_new(&s.d, s.x, s.p, &co, &fit), 0);
  for (size_t k = 0; k < s.p; k++) CU_ASSERT(fabs(b[k] - fit->coef[k]) <= 1e-7 * fmax(1, fabs(fit->coef[k])));
  ts_cox_fit_free(&fit);
  unload(&s);
}

static void test_coxnet_bad_args(void) {
  ts_coxnet_options o;
  ts_coxnet_options_default(&o);
  double t[2] = {1, 2}, x[2] = {0, 1}, b[1];
  int e[2] = {1, 0};
  ts_surv_data d = {.n = 2, .time = t, .event = e};
  o.alpha = 1.5;
  CU_ASSERT_EQUAL(ts_coxnet_fit(&d, x, 1, &o, b, NULL), TS_EINVAL);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "COX_BAD_ARG");
  o.alpha = 1, o.lambda = -1;
  CU_ASSERT_EQUAL(ts_coxnet_fit(&d, x, 1, &o, b, NULL), TS_EINVAL);
  t[0] = -1, o.lambda = 0.1;
  CU_ASSERT(ts_coxnet_fit(&d, x, 1, &o, b, NULL) < 0);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SURV_NEGATIVE_TIME");
}

int ts_test_register(void) {
  CU_pSuite s = CU_add_suite("coxnet", suite_init, suite_clean);
  if (!s) return -1;
  if (!CU_add_test(s, "test_coxnet_matches_glmnet", test_coxnet_matches_glmnet) ||
      !CU_add_test(s, "test_coxnet_unpenalised_is_cox", test_coxnet_unpenalised_is_cox) ||
      !CU_add_test(s, "test_coxnet_bad_args", test_coxnet_bad_args))
    return -1;
  return 0;
}
