/* surv_eval.c — evaluation of survival predictions on a test part: the IPCW Brier score and
 * its integral (Graf, Schmoor, Sauerbrei & Schumacher, Stat Med 1999; 18:2529-45), and the
 * percentile bootstrap of Harrell's C (Efron & Tibshirani 1993, ch. 13).
 *
 * Brier score. With G the Kaplan-Meier estimate of the censoring distribution, i.e. R's
 * survfit(Surv(time, 1 - event) ~ 1) on the `cens` data (a death at a time where others are
 * censored stays in the censoring risk set there, as survfit has it), the Brier score at t is
 *     BS(t) = 1/n sum_i [ S_i(t)^2 I(T_i <= t, d_i = 1) / G(T_i-)  +  (1 - S_i(t))^2 I(T_i > t) / G(t) ]
 * Patients censored at or before t contribute 0 (their weight is carried by the 1/G factors).
 * A case uses G just before its own time (its censoring, if any, would have come after it); a
 * patient still at risk uses G(t) itself. G is a step function with jumps at the censoring
 * times only, so both are a binary search in the jump times: O((n + nt) log m + n nt).
 * A term whose G is 0 is undefined (there is nobody left in cens who could have been censored
 * that late): the Brier score at that time is NaN and the call fails SURV_BRIER_UNDEFINED,
 * leaving the other times valid. A term that is 0 anyway (no case, or nobody at risk) is
 * never undefined.
 *
 * Bootstrap. Resamples of n rows drawn with replacement from a splitmix64 stream seeded with
 * SEED (Lemire's unbiased bounded draws, so a seed gives the same resamples on every
 * platform); each resample keeps its rows' time, event, weight, stratum and risk, and Harrell's C
 * is ts_surv_concordance(TS_TIMEWT_N, no truncation) of it. Resamples without a comparable
 * pair (C undefined) are skipped and counted. The interval is the percentile interval: R's
 * quantile(type = 7) of the defined replicates at (1 - level)/2 and (1 + level)/2, the SD
 * R's sd() (denominator m - 1).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "surv_internal.h"

/* ---------------------------------------------------------------- Brier ---- */

typedef struct gstep {
  size_t m;    /* number of jumps */
  double *t;   /* jump (censoring) times, increasing */
  double *g;   /* G just after each jump */
} gstep;

/* Kaplan-Meier of (time, 1 - event): at each distinct time u, G *= 1 - c(u) / n(u) with n(u)
 * everyone whose time is >= u (deaths at u included: survfit's reverse KM). */
static int gstep_fit(const ts_surv_data *c, gstep *gs) {
  size_t n = c->n, *idx = malloc(n * sizeof *idx);
  gs->t = malloc(n * sizeof(double));
  gs->g = malloc(n * sizeof(double));
  gs->m = 0;
  if (!idx || !gs->t || !gs->g) {
    free(idx);
    return ts_error_set(TS_ENOMEM, "OUT_OF_MEMORY", "censoring distribution of %zu rows", n);
  }
  for (size_t i = 0; i < n; i++) idx[i] = i;
  ts__surv_sort_by(idx, n, c->time);
  double G = 1, nrisk = (double)n;
  for (size_t k = 0; k < n;) {
    size_t k1 = k;
    double cz = 0;
    while (k1 < n && c->time[idx[k1]] == c->time[idx[k]]) cz += c->event[idx[k1++]] == 0;
    if (cz > 0) {
      G *= (nrisk - cz) / nrisk;
      gs->t[gs->m] = c->time[idx[k]];
      gs->g[gs->m++] = G;
    }
    nrisk -= (double)(k1 - k);
    k = k1;
  }
  free(idx);
  return 0;
}

/* G(t) (left = false) or G(t-) (left = true) */
static double gstep_at(const gstep *gs, double t, bool left) {
  size_t lo = 0, hi = gs->m; /* number of jumps at times <= t (or < t) */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (left ? gs->t[mid] < t : gs->t[mid] <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo ? gs->g[lo - 1] : 1.0;
}

int ts_surv_brier(const ts_surv_data *test, const double *surv, const double *times, size_t nt,
                  const ts_surv_data *cens, double *bs_out, double *ibs_out) {
  int rc = 0;
  gstep gs = {0};
  double *gm = NULL;
  if (ibs_out) *ibs_out = NAN;
  TS_TRY(ts_surv_data_check(test));
  if (!cens) cens = test;
  else TS_TRY(ts_surv_data_check(cens));
  if (test->weight || test->strata || cens->weight || cens->strata)
    TS_FAIL(TS_EINVAL, "SURV_UNSUPPORTED", "the Brier score takes no weights or strata");
  if (!surv || !times || !bs_out || nt == 0)
    TS_FAIL(TS_EINVAL, "SURV_BAD_ARG", "Brier score without predictions, times or output");
  for (size_t k = 0; k < nt; k++) {
    bs_out[k] = NAN;
    if (!isfinite(times[k]) || (k > 0 && !(times[k] > times[k - 1])))
      TS_FAIL(TS_EINVAL, "SURV_BAD_ARG", "Brier times must be finite and increasing (times[%zu] = %g)",
              k, times[k]);
  }
  size_t n = test->n;
  for (size_t i = 0; i < n * nt; i++)
    if (!(surv[i] >= 0 && surv[i] <= 1))
      TS_FAIL(TS_EINVAL, "SURV_BAD_ARG", "predicted survival of patient %zu at times[%zu] is %g, not in [0, 1]",
              i / nt, i % nt, surv[i]);
  TS_TRY(gstep_fit(cens, &gs));
  gm = malloc(n * sizeof *gm);
  if (!gm) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "Brier score of %zu rows", n);
  for (size_t i = 0; i < n; i++) gm[i] = test->event[i] ? gstep_at(&gs, test->time[i], true) : 0;

  size_t bad = nt; /* first undefined time */
  for (size_t k = 0; k < nt; k++) {
    double t = times[k], Gt = gstep_at(&gs, t, false), sum = 0;
    bool undefined = false;
    for (size_t i = 0; i < n; i++) {
      double s = surv[i * nt + k];
      if (test->time[i] > t) {
        if (Gt <= 0) undefined = true;
        else sum += (1 - s) * (1 - s) / Gt;
      } else if (test->event[i]) {
        if (gm[i] <= 0) undefined = true;
        else sum += s * s / gm[i];
      }
    }
    if (undefined) {
      if (bad == nt) bad = k;
      continue;
    }
    bs_out[k] = sum / (double)n;
  }
  if (bad < nt)
    TS_FAIL(TS_EINPUT, "SURV_BRIER_UNDEFINED",
            "the censoring distribution G is 0 where the Brier score at t = %g needs it (no one "
            "left in the censoring data that late): choose times below %g",
            times[bad], gs.m ? gs.t[gs.m - 1] : times[bad]);
  if (ibs_out) {
    if (nt < 2)
      TS_FAIL(TS_EINPUT, "SURV_IBS_UNDEFINED", "the integrated Brier score needs >= 2 times, got %zu", nt);
    double s = 0;
    for (size_t k = 1; k < nt; k++) s += (times[k] - times[k - 1]) * (bs_out[k] + bs_out[k - 1]) / 2;
    *ibs_out = s / (times[nt - 1] - times[0]);
  }
out:
  free(gs.t);
  free(gs.g);
  free(gm);
  return rc;
}

/* ------------------------------------------------------------ bootstrap ---- */

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* uniform in [0, n), unbiased (Lemire 2019, "Fast random integer generation in an interval") */
static uint64_t bounded(uint64_t *s, uint64_t n) {
  __uint128_t m = (__uint128_t)splitmix64(s) * n;
  uint64_t l = (uint64_t)m;
  if (l < n) {
    uint64_t t = -n % n;
    while (l < t) {
      m = (__uint128_t)splitmix64(s) * n;
      l = (uint64_t)m;
    }
  }
  return (uint64_t)(m >> 64);
}

int ts_surv_boot_indices(size_t n, int n_boot, uint64_t seed, size_t *idx_out) {
  if (n == 0 || n_boot < 1 || !idx_out)
    return ts_error_set(TS_EINVAL, "SURV_BAD_ARG", "bootstrap of %zu rows x %d resamples", n, n_boot);
  uint64_t s = seed;
  for (size_t k = 0; k < (size_t)n_boot * n; k++) idx_out[k] = (size_t)bounded(&s, n);
  return 0;
}

typedef struct resample {
  double *time, *weight, *risk;
  int *event, *strata;
} resample;

static int resample_alloc(resample *r, size_t n) {
  r->time = malloc(n * sizeof(double));
  r->weight = malloc(n * sizeof(double));
  r->risk = malloc(n * sizeof(double));
  r->event = malloc(n * sizeof(int));
  r->strata = malloc(n * sizeof(int));
  if (!r->time || !r->weight || !r->risk || !r->event || !r->strata)
    return ts_error_set(TS_ENOMEM, "OUT_OF_MEMORY", "bootstrap resample of %zu rows", n);
  return 0;
}

static void resample_free(resample *r) {
  free(r->time);
  free(r->weight);
  free(r->risk);
  free(r->event);
  free(r->strata);
}

/* Harrell's C of rows IDX (n of them) of D: NaN when no pair is comparable */
static int c_of(const ts_surv_data *d, const double *risk, const size_t *idx, resample *r,
                double *c_out) {
  size_t n = d->n;
  for (size_t k = 0; k < n; k++) {
    size_t i = idx[k];
    if (i >= n) return ts_error_set(TS_EINVAL, "SURV_BAD_ARG", "resample index %zu >= n = %zu", i, n);
    r->time[k] = d->time[i];
    r->event[k] = d->event[i];
    r->weight[k] = ts__w(d, i);
    r->strata[k] = ts__s(d, i);
    r->risk[k] = risk[i];
  }
  ts_surv_data b = {n, r->time, r->event, d->weight ? r->weight : NULL, d->strata ? r->strata : NULL, NULL};
  ts_concordance c;
  TS_CALL(ts_surv_concordance(&b, r->risk, TS_TIMEWT_N, INFINITY, &c));
  *c_out = c.c;
  return 0;
}

static int check_boot_args(const ts_surv_data *d, const double *risk, int n_boot) {
  TS_CALL(ts_surv_data_check(d));
  if (!risk || n_boot < 1)
    return ts_error_set(TS_EINVAL, "SURV_BAD_ARG", "bootstrap without a risk score or with %d resamples", n_boot);
  for (size_t i = 0; i < d->n; i++)
    if (isnan(risk[i])) return ts_error_set(TS_EINVAL, "SURV_BAD_ARG", "risk score of row %zu is NaN", i);
  return 0;
}

int ts_surv_concordance_boot_reps(const ts_surv_data *d, const double *risk, const size_t *idx,
                                  int n_boot, double *c_out, int *n_undefined_out) {
  int rc = 0, und = 0;
  resample r = {0};
  TS_TRY(check_boot_args(d, risk, n_boot));
  if (!idx || !c_out) TS_FAIL(TS_EINVAL, "SURV_BAD_ARG", "bootstrap replicates without indices or output");
  TS_TRY(resample_alloc(&r, d->n));
  for (int b = 0; b < n_boot; b++) {
    TS_TRY(c_of(d, risk, idx + (size_t)b * d->n, &r, &c_out[b]));
    und += isnan(c_out[b]);
  }
out:
  if (n_undefined_out) *n_undefined_out = und;
  resample_free(&r);
  return rc;
}

static int cmp_dbl(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : (x > y);
}

/* R's quantile(x, p, type = 7) of sorted x[0..m-1], with R's arithmetic: index = 1 + (m-1) p,
 * (1 - h) x[lo] + h x[hi] */
static double quantile7(const double *x, size_t m, double p) {
  double index = 1 + (double)(m - 1) * p, flo = floor(index); /* 1-based, as R */
  size_t lo = (size_t)flo, hi = (size_t)ceil(index);
  double q = x[lo - 1], h = index - flo;
  if (index > flo && x[hi - 1] != q) q = (1 - h) * q + h * x[hi - 1];
  return q;
}

int ts_surv_concordance_boot(const ts_surv_data *d, const double *risk, int n_boot, uint64_t seed,
                             double level, double *lo, double *hi, double *boot_sd) {
  int rc = 0;
  resample r = {0};
  size_t *idx = NULL, m = 0;
  double *reps = NULL;
  if (lo) *lo = NAN;
  if (hi) *hi = NAN;
  if (boot_sd) *boot_sd = NAN;
  TS_TRY(check_boot_args(d, risk, n_boot));
  if (!(level > 0 && level < 1)) TS_FAIL(TS_EINVAL, "SURV_BAD_ARG", "confidence level %g not in (0, 1)", level);
  size_t n = d->n;
  idx = malloc(n * sizeof *idx);
  reps = malloc((size_t)n_boot * sizeof *reps);
  if (!idx || !reps) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "bootstrap of %zu rows", n);
  TS_TRY(resample_alloc(&r, n));
  uint64_t s = seed; /* the stream of ts_surv_boot_indices, one resample at a time */
  for (int b = 0; b < n_boot; b++) {
    for (size_t k = 0; k < n; k++) idx[k] = (size_t)bounded(&s, n);
    double c;
    TS_TRY(c_of(d, risk, idx, &r, &c));
    if (!isnan(c)) reps[m++] = c;
  }
  if (m < 2)
    TS_FAIL(TS_EINPUT, "SURV_BOOT_UNDEFINED",
            "Harrell's C is defined in %zu of %d bootstrap resamples (no comparable pair in the others)",
            m, n_boot);
  qsort(reps, m, sizeof *reps, cmp_dbl);
  double mean = 0, ss = 0;
  for (size_t k = 0; k < m; k++) mean += reps[k];
  mean /= (double)m;
  for (size_t k = 0; k < m; k++) ss += (reps[k] - mean) * (reps[k] - mean);
  if (lo) *lo = quantile7(reps, m, (1 - level) / 2);
  if (hi) *hi = quantile7(reps, m, (1 + level) / 2);
  if (boot_sd) *boot_sd = sqrt(ss / (double)(m - 1));
out:
  free(idx);
  free(reps);
  resample_free(&r);
  return rc;
}
