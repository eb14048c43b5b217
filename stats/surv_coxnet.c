/* surv_coxnet.c — elastic-net penalised Cox regression (ts_coxnet_fit, ts_survival.h): the
 * objective of R's glmnet(family = "cox"),
 *     -loglik(beta) / n + lambda * (alpha * |beta|_1 + (1 - alpha) / 2 * |beta|_2^2),
 * loglik the Breslow (or Efron) log partial likelihood, on standardised columns (glmnet's
 * standardize = TRUE: mean 0, sd with the 1/n denominator), coefficients returned on the
 * original scale. Solved by proximal Newton: at beta, the quadratic model of -loglik/n (its
 * gradient and full information matrix from ts_cox_loglik) plus the penalty is minimised by
 * cyclic coordinate descent (soft thresholding), then a backtracking line search on the true
 * objective. The objective is convex, so any solver that converges reaches glmnet's optimum. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_survival.h"

void ts_coxnet_options_default(ts_coxnet_options *o) {
  memset(o, 0, sizeof *o);
  o->alpha = 1.0;
  o->standardize = true;
  o->ties = TS_COX_BRESLOW;
  o->max_iter = 200;
  o->tol = 1e-13;
}

/* One coordinate-descent sweep of the quadratic model (all coordinates, or only the nonzero
 * ones); returns the largest change. */
static double cd_sweep(size_t p, const double *g, const double *h, const double *b, double *nb, double *q, double la, double l2, bool active) {
  double change = 0;
  for (size_t j = 0; j < p; j++) {
    if (active && nb[j] == 0) continue;
    double hjj = h[j * p + j], r = g[j] - hjj * b[j] + q[j] - hjj * (nb[j] - b[j]), den = hjj + l2, v = 0;
    if (den > 0) v = r > la ? -(r - la) / den : r < -la ? -(r + la) / den : 0.0;
    double d = v - nb[j];
    if (d != 0) {
      for (size_t l = 0; l < p; l++) q[l] += h[l * p + j] * d;
      nb[j] = v;
      change = fmax(change, fabs(d));
    }
  }
  return change;
}

static double penalty(const double *b, size_t p, double lambda, double alpha) {
  double l1 = 0, l2 = 0;
  for (size_t j = 0; j < p; j++) l1 += fabs(b[j]), l2 += b[j] * b[j];
  return lambda * (alpha * l1 + 0.5 * (1 - alpha) * l2);
}

/* Standardised copy of x and the column sds (1 when not standardising or for a constant column,
 * which then stays 0 in the fit as glmnet leaves it). */
static int standardise(const double *x, size_t n, size_t p, bool on, double **xs_out, double *sd) {
  double *xs = malloc(sizeof *xs * n * p + 1);
  if (!xs) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "coxnet: %zu x %zu", n, p);
  for (size_t j = 0; j < p; j++) {
    double m = 0, v = 0;
    for (size_t i = 0; i < n; i++) m += x[i * p + j];
    m /= (double)n;
    for (size_t i = 0; i < n; i++) v += (x[i * p + j] - m) * (x[i * p + j] - m);
    sd[j] = on && v > 0 ? sqrt(v / (double)n) : 1.0;
    for (size_t i = 0; i < n; i++) xs[i * p + j] = (x[i * p + j] - m) / sd[j];
  }
  *xs_out = xs;
  return 0;
}

int ts_coxnet_lambda_max(const ts_surv_data *d, const double *x, size_t p, const ts_coxnet_options *o, double *out) {
  if (!d || !x || !o || !out || p == 0 || !(o->alpha > 0 && o->alpha <= 1))
    return ts_error_set(TS_EINVAL, "COX_BAD_ARG", "coxnet lambda_max: NULL pointer, p == 0 or alpha outside (0, 1]");
  double *sd = malloc(sizeof *sd * p), *xs = NULL, *beta = calloc(p, sizeof *beta), *score = malloc(sizeof *score * p), ll;
  int rc = sd && beta && score ? standardise(x, d->n, p, o->standardize, &xs, sd) : ts_error_set(TS_ENOMEM, "NO_MEMORY", "coxnet");
  if (rc >= 0) rc = ts_cox_loglik(d, xs, p, o->ties, beta, &ll, score, NULL);
  double m = 0;
  for (size_t j = 0; rc >= 0 && j < p; j++) m = fmax(m, fabs(score[j]) / (double)d->n);
  if (rc >= 0) *out = m / o->alpha;
  free(sd), free(xs), free(beta), free(score);
  return rc;
}

int ts_coxnet_fit(const ts_surv_data *d, const double *x, size_t p, const ts_coxnet_options *o, double *beta_out, int *iter_out) {
  if (!d || !x || !o || !beta_out || p == 0 || !(o->lambda >= 0) || !(o->alpha >= 0 && o->alpha <= 1))
    return ts_error_set(TS_EINVAL, "COX_BAD_ARG", "coxnet: NULL pointer, p == 0, lambda < 0 or alpha outside [0, 1]");
  TS_CALL(ts_surv_data_check(d));
  size_t n = d->n;
  double *sd = malloc(sizeof *sd * p), *xs = NULL, *b = calloc(p, sizeof *b), *nb = calloc(p, sizeof *nb), *t = calloc(p, sizeof *t),
         *g = malloc(sizeof *g * p), *h = malloc(sizeof *h * p * p), *q = malloc(sizeof *q * p);
  int rc = 0, it = 0;
  if (!sd || !b || !nb || !t || !g || !h || !q) {
    rc = ts_error_set(TS_ENOMEM, "NO_MEMORY", "coxnet");
    goto out;
  }
  if ((rc = standardise(x, n, p, o->standardize, &xs, sd)) < 0) goto out;
  double ll = 0, obj;
  if ((rc = ts_cox_loglik(d, xs, p, o->ties, b, &ll, g, h)) < 0) goto out;
  obj = -ll / (double)n;
  const double la = o->lambda * o->alpha, l2 = o->lambda * (1 - o->alpha);
  for (it = 1; it <= o->max_iter; it++) {
    for (size_t j = 0; j < p; j++) g[j] = -g[j] / (double)n; /* gradient of -loglik/n */
    for (size_t k = 0; k < p * p; k++) h[k] /= (double)n;     /* its Hessian */
    memcpy(nb, b, sizeof *b * p);
    memset(q, 0, sizeof *q * p); /* q = H (nb - b), kept up to date: a coordinate costs O(1), a move O(p) */
    for (int sweep = 0; sweep < 100; sweep++) { /* coordinate descent on the quadratic model; the outer */
      double big = 0, change = 0;                   /* Newton steps finish what it leaves */
      for (int pass = 0; pass < 200; pass++) { /* the active set (nonzero coordinates) */
        double ch = cd_sweep(p, g, h, b, nb, q, la, l2, true);
        if (ch <= 1e-12 * (1 + big)) break;
      }
      change = cd_sweep(p, g, h, b, nb, q, la, l2, false); /* then every coordinate */
      for (size_t j = 0; j < p; j++) big = fmax(big, fabs(nb[j]));
      if (change <= 1e-12 * (1 + big)) break;
    }
    /* line search on the true objective */
    double step = 1, new_obj = INFINITY, new_ll = 0, old_full = obj + penalty(b, p, o->lambda, o->alpha);
    for (int k = 0; k < 60; k++) {
      for (size_t j = 0; j < p; j++) t[j] = b[j] + step * (nb[j] - b[j]);
      if ((rc = ts_cox_loglik(d, xs, p, o->ties, t, &new_ll, NULL, NULL)) < 0) goto out;
      new_obj = -new_ll / (double)n + penalty(t, p, o->lambda, o->alpha);
      if (new_obj <= old_full) break;
      step *= 0.5;
    }
    double dmax = 0;
    for (size_t j = 0; j < p; j++) dmax = fmax(dmax, fabs(t[j] - b[j]));
    bool done = !(new_obj < old_full) || (old_full - new_obj <= o->tol * (1 + fabs(new_obj)) && dmax <= 1e-10);
    if (new_obj <= old_full) memcpy(b, t, sizeof *b * p);
    if (done) break;
    if ((rc = ts_cox_loglik(d, xs, p, o->ties, b, &ll, g, h)) < 0) goto out;
    obj = -ll / (double)n;
  }
  for (size_t j = 0; j < p; j++) beta_out[j] = b[j] / sd[j];
  if (iter_out) *iter_out = it;
out:
  free(sd), free(xs), free(b), free(nb), free(t), free(g), free(h), free(q);
  return rc;
}
