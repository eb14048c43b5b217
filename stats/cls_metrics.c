/* cls_metrics.c — evaluation statistics of classifiers and regressors (ts_classify.h).
 *
 * AUC: the Mann-Whitney form, P(case > control) + P(tie)/2, which is also the trapezoidal area
 * under the empirical ROC curve. Its variance is DeLong, DeLong & Clarke-Pearson (1988,
 * Biometrics 44:837): the AUC is a two-sample U-statistic; with placement values
 * V10(x_i) = mean_j psi(x_i, y_j) for each case and V01(y_j) = mean_i psi(x_i, y_j) for each
 * control (psi = 1, 1/2, 0 for >, =, <), var = s^2(V10)/m + s^2(V01)/n. Sun & Xu (2014, IEEE
 * Signal Processing Letters 21:1389) get the placements from midranks in O(N log N) instead of
 * the O(mn) double loop: V10(x_i) = (Tz_i - Tx_i)/n, V01(y_j) = 1 - (Tz_j - Ty_j)/m, where Tz are
 * midranks among all scores and Tx, Ty among the cases and among the controls alone. The CI is
 * pROC's: normal around the AUC, clipped to [0, 1].
 *
 * Normal quantile: a rational first guess (Abramowitz & Stegun 26.2.23) polished by Halley
 * steps on erfc, to a few ulps. Student's t tail: the regularised incomplete beta function by
 * its continued fraction (modified Lentz), as in Numerical Recipes' betacf, relative ~1e-14.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ts_classify.h"

/* ------------------------------------------------------------ helpers ----- */

typedef struct vi {
  double v;
  size_t i;
} vi;

static int cmp_vi(const void *a, const void *b) {
  const vi *x = a, *y = b;
  if (x->v != y->v) return x->v < y->v ? -1 : 1;
  return x->i < y->i ? -1 : (x->i > y->i);
}

int ts_midranks(const double *x, size_t n, double *rank_out) {
  vi *a = malloc((n ? n : 1) * sizeof *a);
  if (!a) return ts_error_set(TS_ENOMEM, "METRIC_NOMEM", "out of memory ranking %zu values", n);
  for (size_t i = 0; i < n; i++)
    a[i] = (vi){x[i], i};
  qsort(a, n, sizeof *a, cmp_vi);
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && a[j].v == a[i].v)
      j++;
    double r = 0.5 * (double)(i + 1 + j); /* mean of ranks i+1 .. j */
    for (size_t k = i; k < j; k++)
      rank_out[a[k].i] = r;
    i = j;
  }
  free(a);
  return 0;
}

static double pnorm_lower(double x) {
  return 0.5 * erfc(-x / M_SQRT2);
}

double ts_qnorm(double p) {
  if (!(p > 0 && p < 1)) return p == 0 ? -INFINITY : p == 1 ? INFINITY : NAN;
  if (p == 0.5) return 0;
  if (p > 0.5) return -ts_qnorm(1 - p);
  double t = sqrt(-2 * log(p));
  double x = -(t - (2.515517 + 0.802853 * t + 0.010328 * t * t) /
                       (1 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t));
  for (int it = 0; it < 6; it++) {
    double e = pnorm_lower(x) - p;
    double u = e * sqrt(2 * M_PI) * exp(0.5 * x * x);
    double dx = u / (1 + 0.5 * x * u);
    x -= dx;
    if (fabs(dx) <= 1e-16 * fabs(x)) break;
  }
  return x;
}

/* Continued fraction of the incomplete beta function (modified Lentz). */
static double betacf(double a, double b, double x) {
  const double tiny = 1e-300, eps = 1e-16;
  double qab = a + b, qap = a + 1, qam = a - 1, c = 1, d = 1 - qab * x / qap;
  if (fabs(d) < tiny) d = tiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= 10000; m++) {
    int m2 = 2 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (fabs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (fabs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (fabs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (fabs(c) < tiny) c = tiny;
    d = 1 / d;
    double del = d * c;
    h *= del;
    if (fabs(del - 1) < eps) break;
  }
  return h;
}

/* Regularised incomplete beta I_x(a, b), with y = 1 - x given separately (no cancellation). */
static double pbeta(double x, double y, double a, double b) {
  if (x <= 0) return 0;
  if (y <= 0) return 1;
  double lfront = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log(y);
  if (x < (a + 1) / (a + b + 2)) return exp(lfront) * betacf(a, b, x) / a;
  return 1 - exp(lfront) * betacf(b, a, y) / b;
}

double ts_pt2(double t, double df) {
  if (isnan(t) || !(df > 0)) return NAN;
  if (isinf(t)) return 0;
  double t2 = t * t;
  return pbeta(df / (df + t2), t2 / (df + t2), 0.5 * df, 0.5);
}

/* ------------------------------------------------------------ AUC --------- */

static int check_binary(const int *y, const double *score, size_t n, size_t *m_out, size_t *n_out) {
  if (!y || !score) return ts_error_set(TS_EINVAL, "METRIC_BAD_ARG", "NULL labels or scores");
  size_t m = 0, k = 0;
  for (size_t i = 0; i < n; i++) {
    if (y[i] != 0 && y[i] != 1)
      return ts_error_set(TS_EINPUT, "METRIC_BAD_LABEL", "label %d at index %zu is not 0 or 1", y[i], i);
    if (!isfinite(score[i]))
      return ts_error_set(TS_EINPUT, "METRIC_BAD_SCORE", "score %g at index %zu is not finite", score[i], i);
    if (y[i])
      m++;
    else
      k++;
  }
  if (m == 0 || k == 0)
    return ts_error_set(TS_EINPUT, "METRIC_ONE_CLASS",
                        "the AUC needs cases and controls: %zu cases (label 1), %zu controls (label 0)", m,
                        k);
  *m_out = m;
  *n_out = k;
  return 0;
}

/* AUC and (if var_out) DeLong variance of validated binary data by midranks. */
static int auc_core(const int *y, const double *score, size_t n, size_t m, size_t k, double *auc_out,
                    double *var_out) {
  int rc = 0;
  double *tz = malloc(n * sizeof *tz), *xs = malloc(m * sizeof *xs), *ys = malloc(k * sizeof *ys);
  double *tx = malloc(m * sizeof *tx), *ty = malloc(k * sizeof *ty);
  if (!tz || !xs || !ys || !tx || !ty) {
    rc = ts_error_set(TS_ENOMEM, "METRIC_NOMEM", "out of memory for an AUC of %zu scores", n);
    goto out;
  }
  TS_TRY(ts_midranks(score, n, tz));
  size_t a = 0, b = 0;
  for (size_t i = 0; i < n; i++) {
    if (y[i])
      xs[a++] = score[i];
    else
      ys[b++] = score[i];
  }
  TS_TRY(ts_midranks(xs, m, tx));
  TS_TRY(ts_midranks(ys, k, ty));
  /* placements, in the order of the cases / controls */
  double s10 = 0, s01 = 0, auc = 0;
  a = b = 0;
  for (size_t i = 0; i < n; i++) {
    if (y[i]) {
      xs[a] = (tz[i] - tx[a]) / (double)k; /* V10 */
      auc += xs[a++];
    } else {
      ys[b] = 1 - (tz[i] - ty[b]) / (double)m; /* V01 */
      b++;
    }
  }
  auc /= (double)m;
  if (var_out) {
    if (m < 2 || k < 2)
      *var_out = NAN;
    else {
      for (size_t i = 0; i < m; i++)
        s10 += (xs[i] - auc) * (xs[i] - auc);
      for (size_t j = 0; j < k; j++)
        s01 += (ys[j] - auc) * (ys[j] - auc);
      *var_out = s10 / (double)(m - 1) / (double)m + s01 / (double)(k - 1) / (double)k;
    }
  }
  *auc_out = auc;
out:
  free(tz);
  free(xs);
  free(ys);
  free(tx);
  free(ty);
  return rc;
}

int ts_auc_delong(const int *y, const double *score, size_t n, double conf_level, ts_auc *out) {
  if (!out) return ts_error_set(TS_EINVAL, "METRIC_BAD_ARG", "NULL output");
  memset(out, 0, sizeof *out);
  if (!(conf_level > 0 && conf_level < 1))
    return ts_error_set(TS_EINVAL, "METRIC_BAD_ARG", "conf_level %g is not in (0, 1)", conf_level);
  size_t m = 0, k = 0;
  TS_CALL(check_binary(y, score, n, &m, &k));
  double auc = NAN, var = NAN;
  TS_CALL(auc_core(y, score, n, m, k, &auc, &var));
  out->auc = auc;
  out->var = var;
  out->se = sqrt(var);
  out->conf_level = conf_level;
  out->n_pos = m;
  out->n_neg = k;
  double z = ts_qnorm(1 - (1 - conf_level) / 2); /* pROC: qnorm(1 - (1 - conf.level)/2) */
  double zl = ts_qnorm(0 + (1 - conf_level) / 2);
  out->lower = isnan(var) ? NAN : fmax(0.0, fmin(1.0, auc + zl * out->se));
  out->upper = isnan(var) ? NAN : fmax(0.0, fmin(1.0, auc + z * out->se));
  return 0;
}

/* ------------------------------------------------------------ ROC curve --- */

void ts_roc_curve_free(ts_roc_curve **c) {
  if (!c || !*c) return;
  free((*c)->threshold);
  free((*c)->tpr);
  free((*c)->fpr);
  free(*c);
  *c = NULL;
}

int ts_roc_curve_new(const int *y, const double *score, size_t n, ts_roc_curve **curve_out) {
  if (!curve_out) return ts_error_set(TS_EINVAL, "METRIC_BAD_ARG", "NULL output");
  *curve_out = NULL;
  size_t m = 0, k = 0;
  TS_CALL(check_binary(y, score, n, &m, &k));
  int rc = 0;
  ts_roc_curve *c = calloc(1, sizeof *c);
  vi *a = malloc(n * sizeof *a);
  if (!c || !a) goto nomem;
  for (size_t i = 0; i < n; i++)
    a[i] = (vi){score[i], i};
  qsort(a, n, sizeof *a, cmp_vi);
  size_t nu = 0;
  for (size_t i = 0; i < n; i++)
    if (i == 0 || a[i].v != a[i - 1].v) nu++;
  c->len = nu + 1;
  c->threshold = malloc(c->len * sizeof(double));
  c->tpr = malloc(c->len * sizeof(double));
  c->fpr = malloc(c->len * sizeof(double));
  if (!c->threshold || !c->tpr || !c->fpr) goto nomem;
  /* Walk the distinct scores upwards: at threshold t_j (between u_{j-1} and u_j) the positives
   * are the scores >= u_j, i.e. everything from the j-th distinct value on. */
  size_t pos_above = m, neg_above = k; /* cases / controls with score >= the current threshold */
  size_t i = 0, j = 0;
  double prev = -INFINITY;
  while (j <= nu) {
    double t;
    if (j == 0)
      t = -INFINITY;
    else if (j == nu)
      t = INFINITY;
    else {
      double u = a[i].v; /* the j-th distinct value (0-based), the one above the threshold */
      t = (prev + u) / 2;
      if (fabs(t) > 1e100) t = prev / 2 + u / 2; /* pROC's overflow guard */
      if (t == prev) t = u;                      /* pROC's near-tie fix for direction "<" */
    }
    c->threshold[j] = t;
    c->tpr[j] = (double)pos_above / (double)m;
    c->fpr[j] = (double)neg_above / (double)k;
    if (j < nu) { /* move the group of value a[i].v below the next threshold */
      double u = a[i].v;
      while (i < n && a[i].v == u) {
        if (y[a[i].i])
          pos_above--;
        else
          neg_above--;
        i++;
      }
      prev = u;
    }
    j++;
  }
  *curve_out = c;
  c = NULL;
  goto out;
nomem:
  rc = ts_error_set(TS_ENOMEM, "METRIC_NOMEM", "out of memory for a ROC curve of %zu scores", n);
out:
  free(a);
  ts_roc_curve_free(&c);
  return rc;
}

/* ------------------------------------------------------------ counts ------ */

void ts_class_argmax(const double *prob, size_t n, int nclass, int *pred_out) {
  for (size_t i = 0; i < n; i++) {
    const double *p = prob + i * (size_t)nclass;
    int best = 0;
    for (int c = 1; c < nclass; c++)
      if (p[c] > p[best]) best = c;
    pred_out[i] = best;
  }
}

int ts_class_metrics_compute(const int *y, const int *pred, size_t n, int nclass, ts_class_metrics *out,
                             size_t *confusion) {
  if (!out || !y || !pred) return ts_error_set(TS_EINVAL, "METRIC_BAD_ARG", "NULL argument");
  memset(out, 0, sizeof *out);
  if (n == 0 || nclass < 2 || nclass > 100000)
    return ts_error_set(TS_EINVAL, "METRIC_BAD_ARG", "need n > 0 and nclass >= 2 (n %zu, nclass %d)", n,
                        nclass);
  for (size_t i = 0; i < n; i++)
    if (y[i] < 0 || y[i] >= nclass || pred[i] < 0 || pred[i] >= nclass)
      return ts_error_set(TS_EINPUT, "METRIC_BAD_LABEL", "index %zu: %s %d is not a class 0..%d", i,
                          y[i] < 0 || y[i] >= nclass ? "label" : "prediction",
                          y[i] < 0 || y[i] >= nclass ? y[i] : pred[i], nclass - 1);
  size_t *tp = calloc((size_t)nclass * 3, sizeof *tp);
  if (!tp) return ts_error_set(TS_ENOMEM, "METRIC_NOMEM", "out of memory");
  size_t *ntrue = tp + nclass, *npred = tp + 2 * (size_t)nclass, correct = 0;
  if (confusion) memset(confusion, 0, (size_t)nclass * (size_t)nclass * sizeof *confusion);
  for (size_t i = 0; i < n; i++) {
    ntrue[y[i]]++;
    npred[pred[i]]++;
    if (y[i] == pred[i]) {
      tp[y[i]]++;
      correct++;
    }
    if (confusion) confusion[(size_t)y[i] * (size_t)nclass + (size_t)pred[i]]++;
  }
  double bsum = 0, fsum = 0;
  int bcount = 0, fcount = 0;
  for (int c = 0; c < nclass; c++) {
    if (ntrue[c]) {
      bsum += (double)tp[c] / (double)ntrue[c];
      bcount++;
    }
    if (ntrue[c] || npred[c]) {
      double den = (double)(ntrue[c] + npred[c]); /* 2TP + FP + FN */
      fsum += den > 0 ? 2.0 * (double)tp[c] / den : 0.0;
      fcount++;
    }
  }
  out->n = n;
  out->nclass = nclass;
  out->accuracy = (double)correct / (double)n;
  out->balanced_accuracy = bsum / bcount;
  if (nclass == 2) {
    double den = (double)(ntrue[1] + npred[1]);
    out->f1 = den > 0 ? 2.0 * (double)tp[1] / den : 0.0;
  } else
    out->f1 = fsum / fcount;
  free(tp);
  return 0;
}

int ts_auc_ovr(const int *y, const double *prob, size_t n, int nclass, double *auc_per_class_out,
               double *macro_out) {
  if (!y || !prob || !macro_out || nclass < 2)
    return ts_error_set(TS_EINVAL, "METRIC_BAD_ARG", "NULL argument or nclass < 2");
  *macro_out = NAN;
  for (size_t i = 0; i < n; i++) {
    if (y[i] < 0 || y[i] >= nclass)
      return ts_error_set(TS_EINPUT, "METRIC_BAD_LABEL", "label %d at index %zu is not a class 0..%d", y[i],
                          i, nclass - 1);
    for (int c = 0; c < nclass; c++)
      if (!isfinite(prob[i * (size_t)nclass + (size_t)c]))
        return ts_error_set(TS_EINPUT, "METRIC_BAD_SCORE", "score of class %d at index %zu is not finite", c,
                            i);
  }
  int rc = 0;
  int *yb = malloc((n ? n : 1) * sizeof *yb);
  double *s = malloc((n ? n : 1) * sizeof *s);
  if (!yb || !s) {
    rc = ts_error_set(TS_ENOMEM, "METRIC_NOMEM", "out of memory");
    goto out;
  }
  double sum = 0;
  int count = 0;
  for (int c = 0; c < nclass; c++) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
      yb[i] = y[i] == c;
      m += (size_t)yb[i];
      s[i] = prob[i * (size_t)nclass + (size_t)c];
    }
    double auc = NAN;
    if (m > 0 && m < n) TS_TRY(auc_core(yb, s, n, m, n - m, &auc, NULL));
    if (auc_per_class_out) auc_per_class_out[c] = auc;
    if (!isnan(auc)) {
      sum += auc;
      count++;
    }
  }
  if (count == 0) {
    rc = ts_error_set(TS_EINPUT, "METRIC_ONE_CLASS",
                      "no class has both members and non-members among %zu labels", n);
    goto out;
  }
  *macro_out = sum / count;
out:
  free(yb);
  free(s);
  return rc;
}

/* ------------------------------------------------------------ correlation - */

static int corr_core(const double *x, const double *y, size_t n, double conf, ts_corr *out) {
  double mx = 0, my = 0;
  for (size_t i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= (double)n;
  my /= (double)n;
  double sxx = 0, syy = 0, sxy = 0;
  for (size_t i = 0; i < n; i++) {
    double dx = x[i] - mx, dy = y[i] - my;
    sxx += dx * dx;
    syy += dy * dy;
    sxy += dx * dy;
  }
  if (sxx == 0 || syy == 0)
    return ts_error_set(TS_EINPUT, "METRIC_CONSTANT", "a correlation of a constant %s is undefined",
                        sxx == 0 ? "x" : "y");
  double r = sxy / sqrt(sxx * syy);
  if (r > 1) r = 1;
  if (r < -1) r = -1;
  out->r = r;
  out->n = n;
  out->conf_level = conf;
  double df = (double)n - 2;
  out->p_value = fabs(r) == 1 ? 0 : ts_pt2(r * sqrt(df / (1 - r * r)), df);
  if (out->p_value > 1) out->p_value = 1;
  if (n >= 4) {
    double z = atanh(r), se = 1 / sqrt((double)n - 3), q = ts_qnorm(1 - (1 - conf) / 2);
    out->lower = tanh(z - q * se);
    out->upper = tanh(z + q * se);
  } else
    out->lower = out->upper = NAN;
  return 0;
}

static int corr_check(const double *x, const double *y, size_t n, double conf, ts_corr *out) {
  if (!x || !y || !out) return ts_error_set(TS_EINVAL, "METRIC_BAD_ARG", "NULL argument");
  memset(out, 0, sizeof *out);
  if (n < 3 || !(conf > 0 && conf < 1))
    return ts_error_set(TS_EINVAL, "METRIC_BAD_ARG",
                        "a correlation test needs n >= 3 and conf in (0, 1) (n %zu, conf %g)", n, conf);
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i]) || !isfinite(y[i]))
      return ts_error_set(TS_EINPUT, "METRIC_BAD_SCORE", "index %zu: %s %g is not finite", i,
                          isfinite(x[i]) ? "y" : "x", isfinite(x[i]) ? y[i] : x[i]);
  return 0;
}

int ts_corr_pearson(const double *x, const double *y, size_t n, double conf_level, ts_corr *out) {
  TS_CALL(corr_check(x, y, n, conf_level, out));
  return corr_core(x, y, n, conf_level, out);
}

int ts_corr_spearman(const double *x, const double *y, size_t n, double conf_level, ts_corr *out) {
  TS_CALL(corr_check(x, y, n, conf_level, out));
  int rc = 0;
  double *rx = malloc(n * sizeof *rx), *ry = malloc(n * sizeof *ry);
  if (!rx || !ry) {
    rc = ts_error_set(TS_ENOMEM, "METRIC_NOMEM", "out of memory");
    goto out;
  }
  TS_TRY(ts_midranks(x, n, rx));
  TS_TRY(ts_midranks(y, n, ry));
  TS_TRY(corr_core(rx, ry, n, conf_level, out));
out:
  free(rx);
  free(ry);
  return rc;
}
