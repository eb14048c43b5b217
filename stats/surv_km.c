/* surv_km.c — Kaplan-Meier curves with Greenwood standard errors and log-scale confidence
 * limits (R's survfit defaults: conf.type = "log", std.err on the cumulative-hazard scale),
 * the k-group log-rank test (R's survdiff, rho = 0) and risk groups from a score.
 *
 * Everything is one sort plus a linear pass: O(n log n) (log-rank O(n log n + T k^2)).
 * References: Kaplan & Meier (1958); Greenwood (1926); Mantel (1966) for the hypergeometric
 * variance of the log-rank statistic.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "surv_internal.h"

static double qnorm_upper(double a) {
  /* z with P(Z > z) = a, Acklam's rational approximation refined by one Halley step. */
  static const double c1[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                              -2.759285104469687e+02, 1.383577518672690e+02,
                              -3.066479806614716e+01, 2.506628277459239e+00};
  static const double c2[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                              -1.556989798598866e+02, 6.680131188771972e+01,
                              -1.328068155288572e+01};
  static const double c3[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                              -2.400758277161838e+00, -2.549732539343734e+00,
                              4.374664141464968e+00, 2.938163982698783e+00};
  static const double c4[] = {7.784695709041462e-03, 3.224671290700398e-01,
                              2.445134137142996e+00, 3.754408661907416e+00};
  double p = 1 - a, x;
  if (p < 0.02425) {
    double q = sqrt(-2 * log(p));
    x = (((((c3[0] * q + c3[1]) * q + c3[2]) * q + c3[3]) * q + c3[4]) * q + c3[5]) /
        ((((c4[0] * q + c4[1]) * q + c4[2]) * q + c4[3]) * q + 1);
  } else if (p <= 1 - 0.02425) {
    double q = p - 0.5, r = q * q;
    x = (((((c1[0] * r + c1[1]) * r + c1[2]) * r + c1[3]) * r + c1[4]) * r + c1[5]) * q /
        (((((c2[0] * r + c2[1]) * r + c2[2]) * r + c2[3]) * r + c2[4]) * r + 1);
  } else {
    double q = sqrt(-2 * log(1 - p));
    x = -(((((c3[0] * q + c3[1]) * q + c3[2]) * q + c3[3]) * q + c3[4]) * q + c3[5]) /
        ((((c4[0] * q + c4[1]) * q + c4[2]) * q + c4[3]) * q + 1);
  }
  double e = 0.5 * erfc(-x / sqrt(2)) - p, u = e * sqrt(2 * M_PI) * exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

void ts_km_free(ts_km **km) {
  if (!km || !*km) return;
  for (size_t c = 0; c < (*km)->ncurve; c++) free((*km)->curve[c].time);
  free((*km)->curve);
  free(*km);
  *km = NULL;
}

/* One curve from rows idx[0..m-1] sorted by ascending time. */
static int km_curve(const ts_surv_data *d, const size_t *idx, size_t m, double z,
                    ts_km_curve *cv) {
  size_t nt = 0;
  for (size_t k = 0; k < m; k++)
    if (k == 0 || d->time[idx[k]] != d->time[idx[k - 1]]) nt++;
  cv->len = nt;
  cv->time = malloc(8 * nt * sizeof(double));
  if (!cv->time) return ts_error_set(TS_ENOMEM, "OUT_OF_MEMORY", "Kaplan-Meier curve");
  cv->n_risk = cv->time + nt;
  cv->n_event = cv->n_risk + nt;
  cv->n_censor = cv->n_event + nt;
  cv->surv = cv->n_censor + nt;
  cv->std_err = cv->surv + nt;
  cv->lower = cv->std_err + nt;
  cv->upper = cv->lower + nt;
  double nrisk = 0;
  for (size_t k = 0; k < m; k++) nrisk += ts__w(d, idx[k]);
  double S = 1, varh = 0;
  size_t t = 0;
  for (size_t k = 0; k < m;) {
    size_t k1 = k;
    double de = 0, dc = 0, tm = d->time[idx[k]];
    while (k1 < m && d->time[idx[k1]] == tm) {
      if (d->event[idx[k1]]) de += ts__w(d, idx[k1]);
      else dc += ts__w(d, idx[k1]);
      k1++;
    }
    if (de > 0) {
      S *= (nrisk - de) / nrisk;
      varh = nrisk > de ? varh + de / (nrisk * (nrisk - de)) : INFINITY;
    }
    cv->time[t] = tm;
    cv->n_risk[t] = nrisk;
    cv->n_event[t] = de;
    cv->n_censor[t] = dc;
    cv->surv[t] = S;
    cv->std_err[t] = sqrt(varh);
    if (S > 0 && isfinite(varh)) {
      double se = sqrt(varh);
      cv->lower[t] = exp(log(S) - z * se);
      double up = exp(log(S) + z * se);
      cv->upper[t] = up < 1 ? up : 1;
    } else {
      cv->lower[t] = cv->upper[t] = NAN;
    }
    nrisk -= de + dc;
    t++;
    k = k1;
  }
  /* median: first time with S < 0.5; where S sits at 0.5, the midpoint of the first time it
   * does and the first time it drops below (R's rule; survfit's tolerance 1e-9) */
  cv->median = NAN;
  for (size_t q = 0; q < nt; q++) {
    if (fabs(cv->surv[q] - 0.5) < 1e-9) {
      size_t r = q;
      while (r < nt && !(cv->surv[r] < 0.5 - 1e-9)) r++;
      cv->median = r < nt ? (cv->time[q] + cv->time[r]) / 2 : cv->time[q];
      break;
    }
    if (cv->surv[q] < 0.5) {
      cv->median = cv->time[q];
      break;
    }
  }
  return 0;
}

/* Rows sorted by (group label, time) ascending. */
typedef struct grow {
  int g;
  double time;
  size_t i;
} grow;

static int cmp_grow(const void *a, const void *b) {
  const grow *x = a, *y = b;
  if (x->g != y->g) return x->g < y->g ? -1 : 1;
  if (x->time != y->time) return x->time < y->time ? -1 : 1;
  return x->i < y->i ? -1 : (x->i > y->i);
}

static int sort_groups(const ts_surv_data *d, const int *group, size_t **idx_out) {
  size_t n = d->n;
  grow *r = malloc(n * sizeof *r);
  size_t *idx = malloc(n * sizeof *idx);
  if (!r || !idx) {
    free(r);
    free(idx);
    return ts_error_set(TS_ENOMEM, "OUT_OF_MEMORY", "sorting %zu rows", n);
  }
  for (size_t i = 0; i < n; i++) r[i] = (grow){group ? group[i] : 0, d->time[i], i};
  qsort(r, n, sizeof *r, cmp_grow);
  for (size_t i = 0; i < n; i++) idx[i] = r[i].i;
  free(r);
  *idx_out = idx;
  return 0;
}

int ts_km_fit_new(const ts_surv_data *d, double conf_level, ts_km **km_out) {
  int rc = 0;
  size_t *idx = NULL;
  ts_km *km = NULL;
  *km_out = NULL;
  TS_TRY(ts_surv_data_check(d));
  if (!(conf_level > 0 && conf_level < 1))
    TS_FAIL(TS_EINVAL, "KM_BAD_ARG", "confidence level %g not in (0, 1)", conf_level);
  TS_TRY(sort_groups(d, d->strata, &idx));
  size_t n = d->n, ng = 0;
  for (size_t k = 0; k < n; k++)
    if (k == 0 || ts__s(d, idx[k]) != ts__s(d, idx[k - 1])) ng++;
  km = calloc(1, sizeof *km);
  if (!km || !(km->curve = calloc(ng, sizeof *km->curve)))
    TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "Kaplan-Meier");
  km->conf_level = conf_level;
  double z = qnorm_upper((1 - conf_level) / 2);
  for (size_t k = 0; k < n;) {
    size_t k1 = k;
    while (k1 < n && ts__s(d, idx[k1]) == ts__s(d, idx[k])) k1++;
    ts_km_curve *cv = &km->curve[km->ncurve++];
    cv->group = ts__s(d, idx[k]);
    TS_TRY(km_curve(d, idx + k, k1 - k, z, cv));
    k = k1;
  }
  *km_out = km;
  km = NULL;
out:
  free(idx);
  ts_km_free(&km);
  return rc;
}

void ts_logrank_free(ts_logrank **lr) {
  if (!lr || !*lr) return;
  free((*lr)->group);
  free((*lr)->n);
  free(*lr);
  *lr = NULL;
}

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return x < y ? -1 : (x > y);
}

int ts_logrank_new(const ts_surv_data *d, const int *group, ts_logrank **lr_out) {
  int rc = 0;
  size_t n = d ? d->n : 0, *idx = NULL, *gi = NULL;
  int *labels = NULL;
  double *nr = NULL, *v = NULL, *dg = NULL;
  ts_logrank *lr = NULL;
  *lr_out = NULL;
  TS_TRY(ts_surv_data_check(d));
  if (!group) TS_FAIL(TS_EINVAL, "LOGRANK_BAD_ARG", "log-rank test without groups");
  labels = malloc(n * sizeof *labels);
  gi = malloc(n * sizeof *gi);
  if (!labels || !gi) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "log-rank");
  memcpy(labels, group, n * sizeof *labels);
  qsort(labels, n, sizeof *labels, cmp_int);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (i == 0 || labels[i] != labels[i - 1]) labels[k++] = labels[i];
  if (k < 2) TS_FAIL(TS_EINPUT, "LOGRANK_ONE_GROUP", "log-rank test needs >= 2 groups, got %zu", k);
  for (size_t i = 0; i < n; i++) {
    int *hit = bsearch(&group[i], labels, k, sizeof *labels, cmp_int);
    gi[i] = (size_t)(hit - labels);
  }
  lr = calloc(1, sizeof *lr);
  nr = calloc(k, sizeof *nr);
  dg = calloc(k, sizeof *dg);
  v = calloc(k * k, sizeof *v);
  if (!lr || !nr || !dg || !v) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "log-rank");
  lr->ngroup = k;
  lr->group = malloc(k * sizeof(int));
  lr->n = calloc(3 * k, sizeof(double));
  if (!lr->group || !lr->n) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "log-rank");
  memcpy(lr->group, labels, k * sizeof(int));
  lr->observed = lr->n + k;
  lr->expected = lr->observed + k;
  idx = malloc(n * sizeof *idx);
  if (!idx) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "log-rank");
  for (size_t i = 0; i < n; i++) idx[i] = i;
  ts__surv_sort_by(idx, n, d->time);
  double ntot = 0;
  for (size_t i = 0; i < n; i++) {
    nr[gi[i]] += ts__w(d, i);
    ntot += ts__w(d, i);
  }
  memcpy(lr->n, nr, k * sizeof(double));
  for (size_t q = 0; q < n;) {
    size_t q1 = q;
    double dt = 0, leave = 0;
    memset(dg, 0, k * sizeof *dg);
    while (q1 < n && d->time[idx[q1]] == d->time[idx[q]]) {
      size_t i = idx[q1];
      if (d->event[i]) {
        dg[gi[i]] += ts__w(d, i);
        dt += ts__w(d, i);
      }
      q1++;
    }
    if (dt > 0) {
      double f = ntot > 1 ? dt * (ntot - dt) / (ntot * (ntot - 1)) : 0;
      for (size_t a = 0; a < k; a++) {
        lr->observed[a] += dg[a];
        lr->expected[a] += dt * nr[a] / ntot;
        for (size_t b = 0; b < k; b++)
          v[a * k + b] += f * nr[a] * ((a == b) - nr[b] / ntot);
      }
    }
    for (size_t r = q; r < q1; r++) {
      nr[gi[idx[r]]] -= ts__w(d, idx[r]);
      leave += ts__w(d, idx[r]);
    }
    ntot -= leave;
    q = q1;
  }
  /* chi-square on groups 2..k (survdiff drops the first), generalised inverse */
  size_t m = k - 1;
  double *vv = malloc(m * m * sizeof(double)), *oe = malloc(m * sizeof(double)),
         *sol = malloc(m * sizeof(double));
  if (!vv || !oe || !sol) {
    free(vv);
    free(oe);
    free(sol);
    TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "log-rank");
  }
  for (size_t a = 0; a < m; a++) {
    oe[a] = sol[a] = lr->observed[a + 1] - lr->expected[a + 1];
    for (size_t b = 0; b < m; b++) vv[a * m + b] = v[(a + 1) * k + b + 1];
  }
  int rank = ts__chol(vv, (int)m, 1e-10);
  ts__chsolve(vv, (int)m, sol);
  double chi = 0;
  for (size_t a = 0; a < m; a++) chi += oe[a] * sol[a];
  free(vv);
  free(oe);
  free(sol);
  lr->chisq = chi;
  int df = 0;
  for (size_t a = 0; a < k; a++) df += lr->expected[a] > 0;
  lr->df = df - 1 < rank ? df - 1 : rank;
  lr->p = lr->df > 0 ? ts_surv_pchisq_upper(chi, lr->df) : NAN;
  *lr_out = lr;
  lr = NULL;
out:
  free(labels);
  free(gi);
  free(idx);
  free(nr);
  free(dg);
  free(v);
  ts_logrank_free(&lr);
  return rc;
}

int ts_surv_risk_groups(const ts_surv_data *d, const double *score, const double *cuts,
                        size_t ncut, int *group_out, ts_km **km_out, ts_logrank **lr_out) {
  int rc = 0;
  size_t n = d ? d->n : 0, *idx = NULL;
  if (km_out) *km_out = NULL;
  if (lr_out) *lr_out = NULL;
  TS_TRY(ts_surv_data_check(d));
  if (!score || !group_out) TS_FAIL(TS_EINVAL, "SURV_BAD_ARG", "risk groups without a score");
  for (size_t c = 1; c < ncut; c++)
    if (!(cuts[c] > cuts[c - 1]))
      TS_FAIL(TS_EINVAL, "SURV_BAD_ARG", "cut points must increase (cut %zu)", c);
  if (ncut == 0) {
    idx = malloc(n * sizeof *idx);
    if (!idx) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "risk groups");
    for (size_t i = 0; i < n; i++) idx[i] = i;
    ts__surv_sort_by(idx, n, score);
    double med = n % 2 ? score[idx[n / 2]] : 0.5 * (score[idx[n / 2 - 1]] + score[idx[n / 2]]);
    for (size_t i = 0; i < n; i++) group_out[i] = score[i] > med;
  } else {
    for (size_t i = 0; i < n; i++) {
      int g = 0;
      while ((size_t)g < ncut && score[i] > cuts[g]) g++;
      group_out[i] = g;
    }
  }
  ts_surv_data dg = *d;
  dg.strata = group_out;
  dg.owned = NULL;
  if (km_out) TS_TRY(ts_km_fit_new(&dg, 0.95, km_out));
  if (lr_out) TS_TRY(ts_logrank_new(&dg, group_out, lr_out));
out:
  free(idx);
  if (rc < 0 && km_out) ts_km_free(km_out);
  return rc;
}
