/* surv_util.c — helpers shared by the survival module: row ordering, the LDL' Cholesky of
 * R's survival package (cholesky2/chsolve2, so that aliased columns are detected with the same
 * tolerance rule), tail probabilities, and the data checks with their error tokens. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "surv_internal.h"

/* ------------------------------------------------------------------ sorting */

typedef struct {
  double time;
  int strata;
  int event;
  size_t i;
} okey;

static int cmp_desc(const void *a, const void *b) {
  const okey *x = a, *y = b;
  if (x->strata != y->strata) return x->strata < y->strata ? -1 : 1;
  if (x->time != y->time) return x->time > y->time ? -1 : 1;
  if (x->event != y->event) return x->event < y->event ? -1 : 1;
  return x->i < y->i ? -1 : (x->i > y->i);
}

int ts__surv_order_desc(const ts_surv_data *d, size_t *idx_out) {
  okey *k = malloc(d->n * sizeof *k);
  if (!k) return ts_error_set(TS_ENOMEM, "OUT_OF_MEMORY", "sorting %zu survival rows", d->n);
  for (size_t i = 0; i < d->n; i++) {
    k[i].time = d->time[i];
    k[i].strata = ts__s(d, i);
    k[i].event = d->event[i];
    k[i].i = i;
  }
  qsort(k, d->n, sizeof *k, cmp_desc);
  for (size_t i = 0; i < d->n; i++) idx_out[i] = k[i].i;
  free(k);
  return 0;
}

typedef struct {
  double key;
  size_t i;
} vkey;

static int cmp_key(const void *a, const void *b) {
  const vkey *x = a, *y = b;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  return x->i < y->i ? -1 : (x->i > y->i);
}

void ts__surv_sort_by(size_t *idx, size_t n, const double *key) {
  vkey *k = malloc(n * sizeof *k);
  if (!k) { /* fall back: insertion sort is correct, just slow; n is small if malloc fails */
    for (size_t a = 1; a < n; a++)
      for (size_t b = a; b > 0 && key[idx[b - 1]] > key[idx[b]]; b--) {
        size_t t = idx[b];
        idx[b] = idx[b - 1];
        idx[b - 1] = t;
      }
    return;
  }
  for (size_t a = 0; a < n; a++) {
    k[a].key = key[idx[a]];
    k[a].i = idx[a];
  }
  qsort(k, n, sizeof *k, cmp_key);
  for (size_t a = 0; a < n; a++) idx[a] = k[a].i;
  free(k);
}

/* ------------------------------------------------------------------ Cholesky */

/* Generalised LDL' of R's survival cholesky2(): a[i*n+j] holds matrix[i][j]; the upper part
 * (j >= i) is the input. Pivots that are not finite or below toler * max(diag) are set to zero
 * and their columns are skipped: that is how coxph finds aliased covariates. */
int ts__chol(double *a, int n, double toler) {
  double eps = 0;
  int rank = 0;
  for (int i = 0; i < n; i++) {
    if (a[i * n + i] > eps) eps = a[i * n + i];
    for (int j = i + 1; j < n; j++) a[j * n + i] = a[i * n + j];
  }
  eps = eps == 0 ? toler : eps * toler;
  for (int i = 0; i < n; i++) {
    double pivot = a[i * n + i];
    if (!isfinite(pivot) || pivot < eps) {
      a[i * n + i] = 0;
      continue;
    }
    rank++;
    for (int j = i + 1; j < n; j++) {
      double temp = a[j * n + i] / pivot;
      a[j * n + i] = temp;
      a[j * n + j] -= temp * temp * pivot;
      for (int k = j + 1; k < n; k++) a[k * n + j] -= temp * a[k * n + i];
    }
  }
  return rank;
}

void ts__chsolve(const double *a, int n, double *y) {
  for (int i = 0; i < n; i++) {
    double temp = y[i];
    for (int j = 0; j < i; j++) temp -= y[j] * a[i * n + j];
    y[i] = temp;
  }
  for (int i = n - 1; i >= 0; i--) {
    if (a[i * n + i] == 0) {
      y[i] = 0;
      continue;
    }
    double temp = y[i] / a[i * n + i];
    for (int j = i + 1; j < n; j++) temp -= y[j] * a[j * n + i];
    y[i] = temp;
  }
}

void ts__chinv(double *a, int n) {
  /* p is small (tens): solve for each unit vector, O(p^3), and keep it obviously right. */
  double *inv = calloc((size_t)n * (size_t)n, sizeof *inv);
  double *col = malloc((size_t)n * sizeof *col);
  if (!inv || !col) {
    free(inv);
    free(col);
    for (int i = 0; i < n * n; i++) a[i] = NAN;
    return;
  }
  for (int k = 0; k < n; k++) {
    for (int i = 0; i < n; i++) col[i] = i == k;
    ts__chsolve(a, n, col);
    for (int i = 0; i < n; i++) inv[i * n + k] = col[i];
  }
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) a[i * n + j] = 0.5 * (inv[i * n + j] + inv[j * n + i]);
  free(inv);
  free(col);
}

/* ------------------------------------------------------------ distributions */

double ts_surv_pnorm2(double z) { return erfc(fabs(z) / sqrt(2.0)); }

/* Regularised upper incomplete gamma Q(a, x): series for x < a+1, Lentz continued fraction
 * otherwise (Numerical Recipes 6.2); relative accuracy ~1e-15, enough for printed p-values. */
static double gamma_q(double a, double x) {
  if (x <= 0) return 1.0;
  double lg = lgamma(a);
  if (x < a + 1) {
    double ap = a, sum = 1.0 / a, del = sum;
    for (int k = 0; k < 10000; k++) {
      ap += 1;
      del *= x / ap;
      sum += del;
      if (fabs(del) < fabs(sum) * 1e-17) break;
    }
    return 1.0 - sum * exp(-x + a * log(x) - lg);
  }
  double b = x + 1 - a, c = 1.0 / 1e-300, dd = 1.0 / b, h = dd;
  for (int i = 1; i < 10000; i++) {
    double an = -i * (i - a);
    b += 2;
    dd = an * dd + b;
    if (fabs(dd) < 1e-300) dd = 1e-300;
    c = b + an / c;
    if (fabs(c) < 1e-300) c = 1e-300;
    dd = 1.0 / dd;
    double del = dd * c;
    h *= del;
    if (fabs(del - 1) < 1e-17) break;
  }
  return exp(-x + a * log(x) - lg) * h;
}

double ts_surv_pchisq_upper(double x, double df) {
  if (!(df > 0) || isnan(x)) return NAN;
  if (x <= 0) return 1.0;
  return gamma_q(df / 2, x / 2);
}

/* --------------------------------------------------------------- data check */

int ts_surv_data_check(const ts_surv_data *d) {
  if (!d || !d->time || !d->event)
    return ts_error_set(TS_EINVAL, "SURV_BAD_ARG", "survival data without time or event");
  if (d->n == 0) return ts_error_set(TS_EINPUT, "SURV_EMPTY", "survival data has no rows");
  for (size_t i = 0; i < d->n; i++) {
    if (!isfinite(d->time[i]) || d->time[i] < 0)
      return ts_error_set(TS_EINPUT, "SURV_NEGATIVE_TIME",
                          "row %zu: time %g is negative or not finite", i, d->time[i]);
    if (d->event[i] != 0 && d->event[i] != 1)
      return ts_error_set(TS_EINPUT, "SURV_BAD_EVENT", "row %zu: event %d is not 0 or 1", i,
                          d->event[i]);
    if (d->weight && !(isfinite(d->weight[i]) && d->weight[i] > 0))
      return ts_error_set(TS_EINPUT, "SURV_BAD_WEIGHT", "row %zu: weight %g is not > 0", i,
                          d->weight[i]);
  }
  return 0;
}
