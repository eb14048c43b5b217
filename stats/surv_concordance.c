/* surv_concordance.c — concordance statistics of a risk score with censored survival data:
 * Harrell's C and its time-weighted variants exactly as R's survival::concordance (survival
 * 3.x, concordancefit() + src/concordance3.c + src/fastkm.c), Uno's IPCW C, and the
 * cumulative/dynamic time-dependent AUC.
 *
 * Pairs: a death at t is compared with everyone still at risk after t, including those
 * censored at t (they were known to outlive t). Two deaths at the same time are "tied on
 * time" and do not count. With risk r (higher = earlier death): concordant if r_death >
 * r_other, discordant if <, tied.x if equal; C = (C + T/2) / (C + D + T).
 *
 * Counting runs over rows sorted by descending time, with two Fenwick trees indexed by the rank
 * of r: one of everyone added (the risk set) and one of deaths weighted by the time weight.
 * O(n log n). The standard error is R's infinitesimal jackknife: each row's influence on
 * the three counts, both as the death and as the comparison (the second found as a difference
 * of death-tree queries when the row enters the risk set and at the end), gives
 * dfbeta_i = w_i ((I_C - I_D)/npair - somers/npair (I_C + I_D + I_T)), var(C) = sum dfbeta^2/4.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "surv_internal.h"

typedef struct fen {
  size_t n;
  double *t;  /* Fenwick tree, 1-based */
  double *eq; /* weight at each rank */
  double tot;
} fen;

static void fen_add(fen *f, size_t r, double w) { /* r 0-based */
  f->eq[r] += w;
  f->tot += w;
  for (size_t i = r + 1; i <= f->n; i += i & (~i + 1)) f->t[i] += w;
}
static double fen_below(const fen *f, size_t r) { /* sum of ranks < r */
  double s = 0;
  for (size_t i = r; i > 0; i -= i & (~i + 1)) s += f->t[i];
  return s;
}
/* q[0]: weight with rank < r, q[1]: rank > r, q[2]: rank == r */
static void fen_query(const fen *f, size_t r, double q[3]) {
  q[0] = fen_below(f, r);
  q[2] = f->eq[r];
  q[1] = f->tot - q[0] - q[2];
  if (q[1] < 0) q[1] = 0;
}

typedef struct crow {
  double time;
  int event;
  size_t rank;
  size_t i;
} crow;

static int cmp_crow(const void *a, const void *b) {
  const crow *x = a, *y = b;
  if (x->time != y->time) return x->time > y->time ? -1 : 1;
  if (x->event != y->event) return x->event < y->event ? -1 : 1;
  if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
  return x->i < y->i ? -1 : (x->i > y->i);
}

/* cmp_crow's order by stable radix passes ((event, rank), then time descending); C is in
 * increasing row order within its stratum, so ties end on the row index as in cmp_crow.
 * -1 when out of memory (the caller falls back to qsort). */
static int sort_crow_radix(crow *c, size_t m) {
  uint64_t *key = malloc(m * sizeof *key);
  size_t *pos = malloc(m * sizeof *pos);
  crow *tmp = malloc(m * sizeof *tmp);
  void *scr = ts__radix_scratch(m);
  int rc = -1;
  if (key && pos && tmp && scr) {
    for (size_t k = 0; k < m; k++) { /* event, then rank (< 2^40): one key */
      pos[k] = k;
      key[k] = ((uint64_t)c[k].event << 40) | (uint64_t)c[k].rank;
    }
    ts__radix_sort(key, pos, m, scr);
    for (size_t k = 0; k < m; k++) key[k] = ~ts__radix_dkey(c[pos[k]].time);
    ts__radix_sort(key, pos, m, scr);
    for (size_t k = 0; k < m; k++) tmp[k] = c[pos[k]];
    memcpy(c, tmp, m * sizeof *c);
    rc = 0;
  }
  free(key);
  free(pos);
  free(tmp);
  free(scr);
  return rc;
}

/* Time weights at the unique event times of one stratum, in DEscending time order (the order
 * the main loop meets them): R's fastkm1 gives S(t-), G(t-) and n(t). */
static void time_weights(const crow *c, size_t m, const double *wt, int timewt, double ymax,
                         double *tw, size_t nevt) {
  /* ascending pass over c reversed */
  double wsum = 0, S = 1, G = 1;
  int nev = 0;
  for (size_t k = 0; k < m; k++) {
    wsum += wt[c[k].i];
    nev += c[k].event;
  }
  if (nev < 2) timewt = TS_TIMEWT_N;
  double nrisk = wsum;
  size_t e = nevt; /* fill from the end: ascending time = reverse of tw */
  size_t k = m;
  while (k > 0) {
    /* group of rows with the same time: c[j..k-1] (descending order array) */
    size_t j = k - 1;
    while (j > 0 && c[j - 1].time == c[k - 1].time) j--;
    double d = 0, cz = 0;
    for (size_t q = j; q < k; q++) {
      if (c[q].event) d += wt[c[q].i];
      else cz += wt[c[q].i];
    }
    if (d > 0) {
      double v;
      switch (timewt) {
      case TS_TIMEWT_S: v = wsum * S / nrisk; break;
      case TS_TIMEWT_S_G: v = wsum * S / (G * nrisk); break;
      case TS_TIMEWT_N_G2: v = 1 / (G * G); break;
      case TS_TIMEWT_I: v = 1 / nrisk; break;
      default: v = 1; break;
      }
      if (c[k - 1].time > ymax) v = 0;
      tw[--e] = v;
      S *= (nrisk - d) / nrisk;
    }
    /* censors leave after the deaths at a tied time (fastkm1) */
    if (cz > 0) G *= (nrisk - d - cz) / (nrisk - d);
    nrisk -= d + cz;
    k = j;
  }
}

int ts_surv_concordance(const ts_surv_data *d, const double *risk, int timewt, double ymax,
                        ts_concordance *out) {
  int rc = 0;
  size_t n = d ? d->n : 0;
  crow *c = NULL;
  double *imat = NULL, *tw = NULL, *wt = NULL;
  size_t *sidx = NULL, *ranks = NULL, *perm = NULL;
  fen T = {0}, D = {0};
  memset(out, 0, sizeof *out);
  TS_TRY(ts_surv_data_check(d));
  if (!risk) TS_FAIL(TS_EINVAL, "SURV_BAD_ARG", "concordance without a risk score");
  if (timewt < TS_TIMEWT_N || timewt > TS_TIMEWT_I)
    TS_FAIL(TS_EINVAL, "SURV_BAD_ARG", "unknown time weight %d", timewt);
  for (size_t i = 0; i < n; i++)
    if (isnan(risk[i])) TS_FAIL(TS_EINVAL, "SURV_BAD_ARG", "risk score of row %zu is NaN", i);

  c = ts__big_alloc(n * sizeof *c);
  imat = ts__big_calloc(3 * n, sizeof *imat);
  tw = malloc(n * sizeof *tw);
  wt = malloc(n * sizeof *wt);
  sidx = malloc(n * sizeof *sidx);
  ranks = malloc(n * sizeof *ranks);
  perm = malloc(n * sizeof *perm);
  T.t = ts__big_calloc(n + 1, sizeof(double));
  T.eq = ts__big_calloc(n, sizeof(double));
  D.t = ts__big_calloc(n + 1, sizeof(double));
  D.eq = ts__big_calloc(n, sizeof(double));
  if (!c || !imat || !tw || !wt || !sidx || !ranks || !perm || !T.t || !T.eq || !D.t || !D.eq)
    TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "concordance of %zu rows", n);
  for (size_t i = 0; i < n; i++) wt[i] = ts__w(d, i);

  /* dense ranks of the risk score (ties share a rank) */
  for (size_t i = 0; i < n; i++) sidx[i] = i;
  ts__surv_sort_by(sidx, n, risk);
  size_t nr = 0;
  for (size_t k = 0; k < n; k++) {
    if (k > 0 && risk[sidx[k]] != risk[sidx[k - 1]]) nr++;
    ranks[sidx[k]] = nr;
  }
  nr++;
  T.n = D.n = nr;

  /* rows grouped by stratum: order by stratum label */
  double *skey = malloc(n * sizeof(double));
  if (!skey) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "concordance");
  for (size_t i = 0; i < n; i++) {
    sidx[i] = i;
    skey[i] = ts__s(d, i);
  }
  if (d->strata) ts__surv_sort_by(sidx, n, skey);
  free(skey);

  /* imat is indexed by position in the sorted order (sequential access in the loops below);
   * perm maps a position back to its row */
  for (size_t q = 0; q < n; q++) perm[q] = q;
  double cnt[5] = {0, 0, 0, 0, 0};
  for (size_t s0 = 0; s0 < n;) {
    size_t s1 = s0;
    while (s1 < n && ts__s(d, sidx[s1]) == ts__s(d, sidx[s0])) s1++;
    size_t m = s1 - s0, nevt = 0;
    for (size_t k = 0; k < m; k++) {
      size_t i = sidx[s0 + k];
      c[k] = (crow){d->time[i], d->event[i], ranks[i], i};
      nevt += d->event[i];
    }
    double *im = imat + 3 * s0;
    size_t *pm = perm + s0;
    s0 = s1;
    if (nevt == 0) continue;
    if (m < 1024 || sort_crow_radix(c, m) < 0) qsort(c, m, sizeof *c, cmp_crow);
    /* count unique event times */
    size_t ne = 0;
    for (size_t k = 0; k < m; k++)
      if (c[k].event && (k == 0 || !c[k - 1].event || c[k - 1].time != c[k].time)) ne++;
    time_weights(c, m, wt, timewt, ymax, tw, ne);
    for (size_t k = 0; k < m; k++) pm[k] = c[k].i;
    /* the trees are reused: clear what this stratum will touch */
    memset(T.t, 0, (nr + 1) * sizeof(double));
    memset(T.eq, 0, nr * sizeof(double));
    memset(D.t, 0, (nr + 1) * sizeof(double));
    memset(D.eq, 0, nr * sizeof(double));
    T.tot = D.tot = 0;
    double q[3];
    size_t ut = 0;
    for (size_t k = 0; k < m;) {
      const crow *ck = &c[k];
      if (!ck->event) {
        fen_query(&D, ck->rank, q);
        im[3 * k + 0] -= q[1];
        im[3 * k + 1] -= q[0];
        im[3 * k + 2] -= q[2];
        fen_add(&T, ck->rank, wt[ck->i]);
        k++;
        continue;
      }
      double a = tw[ut++];
      size_t k1 = k;
      while (k1 < m && c[k1].time == ck->time) k1++; /* deaths only: censored sort first */
      double dw = 0, dw2 = 0;
      for (size_t j = k; j < k1; j++) {
        size_t i = c[j].i;
        fen_query(&T, c[j].rank, q);
        /* concordant: others with lower risk; discordant: higher; tied */
        cnt[0] += wt[i] * q[0] * a;
        cnt[1] += wt[i] * q[1] * a;
        cnt[2] += wt[i] * q[2] * a;
        im[3 * j + 0] += q[0] * a;
        im[3 * j + 1] += q[1] * a;
        im[3 * j + 2] += q[2] * a;
        fen_add(&D, c[j].rank, a * wt[i]);
        /* tied on time (and on both) */
        cnt[3] += wt[i] * dw * a;
        if (j > k && c[j].rank != c[j - 1].rank) dw2 = 0;
        cnt[4] += wt[i] * dw2 * a;
        dw += wt[i];
        dw2 += wt[i];
      }
      for (size_t j = k; j < k1; j++) {
        size_t i = c[j].i;
        fen_query(&D, c[j].rank, q);
        im[3 * j + 0] -= q[1];
        im[3 * j + 1] -= q[0];
        im[3 * j + 2] -= q[2];
        fen_add(&T, c[j].rank, wt[i]);
      }
      k = k1;
    }
    /* the final death tree, queried once per row: by prefix sums when the ranks are few
     * enough for one O(nr) pass (T.t is free now), else by the tree */
    bool prefix = nr <= 4 * m;
    if (prefix) {
      double acc = 0;
      for (size_t r = 0; r < nr; r++) {
        T.t[r] = acc;
        acc += D.eq[r];
      }
    }
    for (size_t k = 0; k < m; k++) {
      if (prefix) {
        size_t rk = c[k].rank;
        q[0] = T.t[rk];
        q[2] = D.eq[rk];
        q[1] = D.tot - q[0] - q[2];
        if (q[1] < 0) q[1] = 0;
      } else {
        fen_query(&D, c[k].rank, q);
      }
      im[3 * k + 0] += q[1];
      im[3 * k + 1] += q[0];
      im[3 * k + 2] += q[2];
    }
  }
  double npair = cnt[0] + cnt[1] + cnt[2];
  out->concordant = cnt[0];
  out->discordant = cnt[1];
  out->tied_risk = cnt[2];
  out->tied_time = cnt[3] - cnt[4];
  out->tied_both = cnt[4];
  if (npair <= 0) {
    out->c = out->std_err = NAN;
    goto out;
  }
  double somer = (cnt[0] - cnt[1]) / npair, v = 0;
  for (size_t q = 0; q < n; q++) {
    size_t i = perm[q];
    const double *im = imat + 3 * q;
    double db = wt[i] * ((im[0] - im[1]) / npair - somer / npair * (im[0] + im[1] + im[2]));
    v += db * db;
  }
  out->c = (somer + 1) / 2;
  out->std_err = sqrt(v / 4);
out:
  free(c);
  free(imat);
  free(tw);
  free(wt);
  free(sidx);
  free(ranks);
  free(perm);
  free(T.t);
  free(T.eq);
  free(D.t);
  free(D.eq);
  return rc;
}

int ts_surv_uno_c(const ts_surv_data *d, const double *risk, double tau, ts_concordance *out) {
  TS_CALL(ts_surv_concordance(d, risk, TS_TIMEWT_N_G2, tau, out));
  return 0;
}

static int cmp_dbl(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : (x > y);
}

/* number of sorted values < v and == v */
static void count_lt_eq(const double *s, size_t m, double v, size_t *lt, size_t *eq) {
  size_t lo = 0, hi = m;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (s[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  *lt = lo;
  hi = m;
  size_t l2 = lo;
  while (l2 < hi) {
    size_t mid = l2 + (hi - l2) / 2;
    if (s[mid] <= v) l2 = mid + 1;
    else hi = mid;
  }
  *eq = l2 - lo;
}

int ts_surv_auc_cd(const ts_surv_data *d, const double *risk, const double *times, size_t nt,
                   double *auc_out) {
  int rc = 0;
  size_t n = d ? d->n : 0, *idx = NULL;
  double *gm = NULL, *ctl = NULL;
  TS_TRY(ts_surv_data_check(d));
  if (d->weight || d->strata)
    TS_FAIL(TS_EINVAL, "SURV_UNSUPPORTED", "time-dependent AUC takes no weights or strata");
  idx = malloc(n * sizeof *idx);
  gm = malloc(n * sizeof *gm);
  ctl = malloc(n * sizeof *ctl);
  if (!idx || !gm || !ctl) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "time-dependent AUC");
  /* G(T_i-): Kaplan-Meier of the censoring distribution, censors after deaths at a tie */
  for (size_t i = 0; i < n; i++) idx[i] = i;
  ts__surv_sort_by(idx, n, d->time);
  double G = 1, nrisk = (double)n;
  for (size_t k = 0; k < n;) {
    size_t k1 = k;
    double cz = 0, dz = 0;
    while (k1 < n && d->time[idx[k1]] == d->time[idx[k]]) {
      cz += d->event[idx[k1]] == 0;
      dz += d->event[idx[k1]] == 1;
      gm[idx[k1]] = G;
      k1++;
    }
    if (cz > 0) G *= (nrisk - dz - cz) / (nrisk - dz);
    nrisk -= (double)(k1 - k);
    k = k1;
  }
  for (size_t t = 0; t < nt; t++) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
      if (d->time[i] > times[t]) ctl[m++] = risk[i];
    qsort(ctl, m, sizeof *ctl, cmp_dbl);
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
      if (!d->event[i] || d->time[i] > times[t] || gm[i] <= 0) continue;
      size_t lt, eq;
      count_lt_eq(ctl, m, risk[i], &lt, &eq);
      num += ((double)lt + 0.5 * (double)eq) / gm[i];
      den += (double)m / gm[i];
    }
    auc_out[t] = den > 0 ? num / den : NAN;
  }
out:
  free(idx);
  free(gm);
  free(ctl);
  return rc;
}
