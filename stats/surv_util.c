/* surv_util.c — helpers shared by the survival module: row ordering, the LDL' Cholesky of
 * R's survival package (cholesky2/chsolve2, so that aliased columns are detected with the same
 * tolerance rule), tail probabilities, and the data checks with their error tokens. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "surv_internal.h"

/* ------------------------------------------------------------------ sorting */

/* Large inputs are sorted by an LSD radix sort (stable; 16-bit digits, 8-bit below 2^16 rows; a
 * pass skipped when all keys share its digit): one O(n) pass per digit instead of qsort's
 * n log n comparisons through a function pointer (at n = 10^6, the sorts were a third of a Cox
 * fit). Composite orders are
 * stable passes from the least significant key to the most; the result is the comparator's
 * order exactly, since every comparator below ends its ties on the row index, i.e. on the
 * initial (identity) order a stable sort keeps. */
#define RADIX_MIN 1024
#define RADIX_SIZE (1u << 16) /* the counters: 16-bit digits for large n, 8-bit below 2^16 rows */

uint64_t ts__radix_dkey(double x) {
  uint64_t u;
  if (x == 0) x = 0; /* -0 == +0 */
  memcpy(&u, &x, sizeof u);
  return (u >> 63) ? ~u : u | 0x8000000000000000ULL;
}

int ts__radix_sort(uint64_t *key, size_t *val, size_t n, void *scratch) {
  uint64_t *ka = key, *kb = scratch;
  size_t *va = val, *vb = (size_t *)(kb + n), *cnt = vb + n;
  if (n < 2) return 0;
  unsigned bits = n >= (1u << 16) ? 16 : 8;
  size_t nb = (size_t)1 << bits, mask = nb - 1;
  for (unsigned shift = 0; shift < 64; shift += bits) {
    memset(cnt, 0, nb * sizeof *cnt);
    for (size_t i = 0; i < n; i++) cnt[(ka[i] >> shift) & mask]++;
    if (cnt[(ka[0] >> shift) & mask] == n) continue; /* one digit: nothing to do */
    size_t sum = 0;
    for (size_t b = 0; b < nb; b++) {
      size_t c = cnt[b];
      cnt[b] = sum;
      sum += c;
    }
    for (size_t i = 0; i < n; i++) {
      size_t o = cnt[(ka[i] >> shift) & mask]++;
      kb[o] = ka[i];
      vb[o] = va[i];
    }
    uint64_t *kt = ka;
    size_t *vt = va;
    ka = kb;
    va = vb;
    kb = kt;
    vb = vt;
  }
  if (ka != key) { /* the last pass wrote into the scratch */
    memcpy(key, ka, n * sizeof *key);
    memcpy(val, va, n * sizeof *val);
  }
  return 0;
}

void *ts__radix_scratch(size_t n) {
  return malloc(n * (sizeof(uint64_t) + sizeof(size_t)) + RADIX_SIZE * sizeof(size_t));
}

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
  size_t n = d->n;
  if (n >= RADIX_MIN) {
    uint64_t *key = malloc(n * sizeof *key);
    void *scr = ts__radix_scratch(n);
    if (key && scr) {
      for (size_t i = 0; i < n; i++) {
        idx_out[i] = i;
        key[i] = (uint64_t)d->event[i];
      }
      ts__radix_sort(key, idx_out, n, scr);
      for (size_t k = 0; k < n; k++) key[k] = ~ts__radix_dkey(d->time[idx_out[k]]); /* desc */
      ts__radix_sort(key, idx_out, n, scr);
      if (d->strata) {
        for (size_t k = 0; k < n; k++) key[k] = (uint64_t)((uint32_t)d->strata[idx_out[k]] ^ 0x80000000u);
        ts__radix_sort(key, idx_out, n, scr);
      }
      free(key);
      free(scr);
      return 0;
    }
    free(key);
    free(scr);
  }
  okey *k = malloc(n * sizeof *k);
  if (!k) return ts_error_set(TS_ENOMEM, "OUT_OF_MEMORY", "sorting %zu survival rows", n);
  for (size_t i = 0; i < n; i++) {
    k[i].time = d->time[i];
    k[i].strata = ts__s(d, i);
    k[i].event = d->event[i];
    k[i].i = i;
  }
  qsort(k, n, sizeof *k, cmp_desc);
  for (size_t i = 0; i < n; i++) idx_out[i] = k[i].i;
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
  if (n >= RADIX_MIN) { /* stable = the comparator's order when idx is increasing */
    bool inc = true;
    for (size_t a = 1; a < n && inc; a++) inc = idx[a] > idx[a - 1];
    uint64_t *kk = inc ? malloc(n * sizeof *kk) : NULL;
    void *scr = kk ? ts__radix_scratch(n) : NULL;
    if (kk && scr) {
      for (size_t a = 0; a < n; a++) kk[a] = ts__radix_dkey(key[idx[a]]);
      ts__radix_sort(kk, idx, n, scr);
      free(kk);
      free(scr);
      return;
    }
    free(kk);
    free(scr);
  }
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

/* ------------------------------------------------------------ large arrays */

/* Large work arrays on transparent huge pages where the kernel offers them (madvise mode):
 * the sorted Cox design is 160 MB at n = 10^6, p = 20, and with 4 KiB pages its first touch and
 * every pass over it pay page faults and TLB misses (a fifth of a fit on a VM). */
void *ts__big_alloc(size_t bytes) {
#ifdef MADV_HUGEPAGE
  if (bytes >= ((size_t)8 << 20)) {
    void *p = NULL;
    if (posix_memalign(&p, (size_t)2 << 20, bytes) != 0) return NULL;
    madvise(p, bytes, MADV_HUGEPAGE); /* advice only: failure is harmless */
    return p;
  }
#endif
  return malloc(bytes);
}

void *ts__big_calloc(size_t n, size_t size) {
  if (size && n > SIZE_MAX / size) return NULL;
  void *p = ts__big_alloc(n * size);
  if (p) memset(p, 0, n * size);
  return p;
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
