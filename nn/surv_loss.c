/* surv_loss.c — the survival losses of ts_surv_loss.h: PORPOISE's discrete-time NLL and the
 * weighted Cox partial likelihood (R's coxph with case weights), on ts_nn.h ops only.
 *
 * Design: the targets (bins, censorship, times, events, weights) are plain C arrays, read once
 * here; everything that depends on them (orderings, tie groups, gather indices, constants) is
 * worked out on the host in O(N log N) and handed to LibTorch as index and constant tensors, so
 * the graph that autograd differentiates is a short chain of gathers, cumulative
 * log-sum-exps and sums over the model's output. No N x N risk-set matrix (PORPOISE's
 * CoxSurvLoss builds one in a Python double loop) and no subtraction of partial sums (whose
 * gradient would blow up when a tie group is small against its risk set): every log of a sum is
 * a logsumexp of logs. The formulas and their sources are in the header.
 */
#include "ts_surv_loss.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Small helpers ---------------------------------------------------------------------------- */

/* Release n handles. */
static void free_all(ts_tensor **t, size_t n) {
  for (size_t i = 0; i < n; i++)
    ts_tensor_free(&t[i]);
}

static int check_float(const ts_tensor *t, const char *fn, const char *what) {
  int dt = ts_tensor_dtype(t);
  if (dt != TS_NN_F32 && dt != TS_NN_F64)
    return ts_error_set(TS_EINVAL, "NN_DTYPE", "%s: %s must be float32 or float64 (dtype code %d)", fn, what,
                        dt);
  return 0;
}

/* n doubles as a 1-D tensor of `dtype` on `device` (n >= 1). */
static int const_vec(const double *v, int64_t n, int dtype, int device, ts_tensor **out) {
  ts_tensor *a = NULL, *b = NULL;
  int rc = 0;
  TS_TRY(ts_tensor_from_data(v, TS_NN_F64, &n, 1, &a));
  TS_TRY(ts_tensor_to_dtype(a, dtype, &b));
  TS_TRY(ts_tensor_to_device(b, device, out));
out:
  ts_tensor_free(&a);
  ts_tensor_free(&b);
  return rc;
}

/* n int64 indices as a 1-D tensor on `device` (n >= 1). */
static int index_vec(const int64_t *v, int64_t n, int device, ts_tensor **out) {
  ts_tensor *a = NULL;
  int rc = 0;
  TS_TRY(ts_tensor_from_data(v, TS_NN_I64, &n, 1, &a));
  TS_TRY(ts_tensor_to_device(a, device, out));
out:
  ts_tensor_free(&a);
  return rc;
}

/* A one-element tensor of `dtype` on `device` holding v (for -inf pads). */
static int const_one(double v, int dtype, int device, ts_tensor **out) {
  return const_vec(&v, 1, dtype, device, out);
}

/* log(max(x, eps)) given lx = log x: max(lx, log eps) = relu(lx - log eps) + log eps. Same value
 * and the same gradient as PyTorch's log(clamp(x, min = eps)): 1 above eps, 0 where it clamps. */
static int clamp_log(const ts_tensor *lx, double eps, ts_tensor **out) {
  ts_tensor *a = NULL, *b = NULL;
  int rc = 0;
  double le = log(eps);
  TS_TRY(ts_nn_add_scalar(lx, -le, &a));
  TS_TRY(ts_nn_relu(a, &b));
  TS_TRY(ts_nn_add_scalar(b, le, out));
out:
  ts_tensor_free(&a);
  ts_tensor_free(&b);
  return rc;
}

/* sum(a * b) as a scalar. */
static int dot(const ts_tensor *a, const ts_tensor *b, ts_tensor **out) {
  ts_tensor *p = NULL;
  int rc = 0;
  TS_TRY(ts_nn_mul(a, b, &p));
  TS_TRY(ts_nn_sum(p, TS_NN_ALL_DIMS, false, out));
out:
  ts_tensor_free(&p);
  return rc;
}

/* log(1 - h) and log h of h = sigmoid(z), [B, K] each: log_softmax over the pair (0, z) gives
 * log sigmoid(-z) and log sigmoid(z) exactly, stable for any z, with exact gradients. */
static int log_sigmoid_pair(const ts_tensor *z, ts_tensor **l1mh_out, ts_tensor **lh_out) {
  ts_tensor *t[4] = {NULL};
  int rc = 0;
  int64_t shape[TS_NN_MAX_DIMS];
  int nd = ts_tensor_shape(z, shape, TS_NN_MAX_DIMS);
  TS_TRY(ts_tensor_zeros(shape, nd, ts_tensor_dtype(z), &t[0]));
  TS_TRY(ts_tensor_to_device(t[0], ts_tensor_device(z), &t[1]));
  const ts_tensor *pair[2] = {t[1], z};
  TS_TRY(ts_nn_stack(pair, 2, nd, &t[2])); /* [..., 2] */
  TS_TRY(ts_nn_log_softmax(t[2], nd, &t[3]));
  TS_TRY(ts_tensor_select(t[3], nd, 0, l1mh_out));
  TS_TRY(ts_tensor_select(t[3], nd, 1, lh_out));
out:
  if (rc < 0) ts_tensor_free(l1mh_out);
  free_all(t, 4);
  return rc;
}

/* ---- 1. Discrete-time NLL --------------------------------------------------------------------- */

/* Shape checks shared by the NLL and its risk score; B, K out. */
static int check_logits(const ts_tensor *logits, const char *fn, int64_t *b_out, int64_t *k_out) {
  if (!logits) return ts_error_set(TS_EINVAL, "NN_ARG", "%s: logits is NULL", fn);
  int64_t s[TS_NN_MAX_DIMS];
  int nd = ts_tensor_shape(logits, s, TS_NN_MAX_DIMS);
  if (nd != 2 || s[0] < 1 || s[1] < 1)
    return ts_error_set(TS_EINVAL, "NN_SHAPE", "%s: logits must be [B, K] with B, K >= 1 (%d dims)", fn, nd);
  TS_CALL(check_float(logits, fn, "logits"));
  *b_out = s[0], *k_out = s[1];
  return 0;
}

int ts_surv_loss_nll(const ts_tensor *logits, const int64_t *bin, const int *censored, double alpha,
                     ts_tensor **out) {
  static const char *fn = "ts_surv_loss_nll";
  enum {
    L1MH,  /* log(1 - h) [B, K] */
    LH,    /* log h [B, K] */
    LS,    /* log S = cumsum log(1 - h) */
    ZCOL0, /* zeros [B, 1] (CPU) */
    ZCOL,  /* zeros [B, 1] (logits' device) */
    LSPAD, /* log S_pad = [0, log S] [B, K + 1] */
    FLATS, /* log S_pad flattened */
    FLATH, /* log h flattened */
    IPREV, /* indices of S_pad[y] */
    ITHIS, /* indices of S_pad[y + 1] */
    IH,    /* indices of h[y] */
    GPREV, /* log S_pad[y] [B] */
    GTHIS, /* log S_pad[y + 1] */
    GH,    /* log h[y] */
    CPREV, /* the three, clamped */
    CTHIS,
    CH,
    SUMU, /* log S_pad[y] + log h[y] */
    CU,   /* -(1 - c) */
    CV,   /* -(1 - alpha) c */
    TU,   /* u [B] */
    TV,   /* v [B] */
    ROW,  /* u + (1 - alpha) v */
    NT
  };
  ts_tensor *t[NT] = {NULL};
  int64_t *idx = NULL;
  double *coef = NULL;
  int rc = 0;
  if (!out) return ts_error_set(TS_EINVAL, "NN_ARG", "%s: out is NULL", fn);
  *out = NULL;
  int64_t B = 0, K = 0;
  TS_CALL(check_logits(logits, fn, &B, &K));
  if (!bin || !censored) return ts_error_set(TS_EINVAL, "NN_ARG", "%s: bin or censored is NULL", fn);
  if (!(alpha >= 0 && alpha <= 1))
    return ts_error_set(TS_EINVAL, "NN_ARG", "%s: alpha %g is outside [0, 1]", fn, alpha);
  for (int64_t b = 0; b < B; b++) {
    if (bin[b] < 0 || bin[b] >= K)
      return ts_error_set(TS_EINVAL, "NN_ARG", "%s: bin[%lld] = %lld is outside 0..%lld", fn, (long long)b,
                          (long long)bin[b], (long long)(K - 1));
    if (censored[b] != 0 && censored[b] != 1)
      return ts_error_set(TS_EINVAL, "SURV_BAD_EVENT", "%s: censored[%lld] = %d is not 0 or 1", fn,
                          (long long)b, censored[b]);
  }
  int dtype = ts_tensor_dtype(logits), dev = ts_tensor_device(logits);
  idx = malloc(3 * (size_t)B * sizeof *idx);
  coef = malloc(2 * (size_t)B * sizeof *coef);
  if (!idx || !coef) TS_FAIL(TS_ENOMEM, "NN_OOM", "%s: out of memory (B = %lld)", fn, (long long)B);

  /* log S_k = cumsum_j<=k log(1 - h_j); S_pad = [1, S] in log space: [0, log S]. */
  TS_TRY(log_sigmoid_pair(logits, &t[L1MH], &t[LH]));
  TS_TRY(ts_nn_cumsum(t[L1MH], 1, &t[LS]));
  int64_t zs[2] = {B, 1};
  TS_TRY(ts_tensor_zeros(zs, 2, dtype, &t[ZCOL0]));
  TS_TRY(ts_tensor_to_device(t[ZCOL0], dev, &t[ZCOL]));
  const ts_tensor *parts[2] = {t[ZCOL], t[LS]};
  TS_TRY(ts_nn_cat(parts, 2, 1, &t[LSPAD])); /* [B, K + 1] */
  int64_t flat = -1;
  TS_TRY(ts_tensor_reshape(t[LSPAD], &flat, 1, &t[FLATS]));
  TS_TRY(ts_tensor_reshape(t[LH], &flat, 1, &t[FLATH]));

  /* torch.gather(S_pad, 1, y), (S_pad, 1, y + 1), (h, 1, y) on the flattened rows. */
  for (int64_t b = 0; b < B; b++) {
    idx[b] = b * (K + 1) + bin[b];
    idx[B + b] = b * (K + 1) + bin[b] + 1;
    idx[2 * B + b] = b * K + bin[b];
  }
  TS_TRY(index_vec(idx, B, dev, &t[IPREV]));
  TS_TRY(index_vec(idx + B, B, dev, &t[ITHIS]));
  TS_TRY(index_vec(idx + 2 * B, B, dev, &t[IH]));
  TS_TRY(ts_tensor_index_select(t[FLATS], 0, t[IPREV], &t[GPREV]));
  TS_TRY(ts_tensor_index_select(t[FLATS], 0, t[ITHIS], &t[GTHIS]));
  TS_TRY(ts_tensor_index_select(t[FLATH], 0, t[IH], &t[GH]));
  TS_TRY(clamp_log(t[GPREV], TS_SURV_LOSS_NLL_EPS, &t[CPREV]));
  TS_TRY(clamp_log(t[GTHIS], TS_SURV_LOSS_NLL_EPS, &t[CTHIS]));
  TS_TRY(clamp_log(t[GH], TS_SURV_LOSS_NLL_EPS, &t[CH]));

  /* Row b: (1 - alpha)(u + v) + alpha u = u + (1 - alpha) v, u = -(1 - c)(log S_pad[y] + log h_y),
   * v = -c log S_pad[y + 1]; then the mean over rows. */
  for (int64_t b = 0; b < B; b++) {
    coef[b] = -(1.0 - censored[b]);
    coef[B + b] = -(1.0 - alpha) * censored[b];
  }
  TS_TRY(ts_nn_add(t[CPREV], t[CH], &t[SUMU]));
  TS_TRY(const_vec(coef, B, dtype, dev, &t[CU]));
  TS_TRY(const_vec(coef + B, B, dtype, dev, &t[CV]));
  TS_TRY(ts_nn_mul(t[SUMU], t[CU], &t[TU]));
  TS_TRY(ts_nn_mul(t[CTHIS], t[CV], &t[TV]));
  TS_TRY(ts_nn_add(t[TU], t[TV], &t[ROW]));
  TS_TRY(ts_nn_mean(t[ROW], TS_NN_ALL_DIMS, false, out));
out:
  free_all(t, NT);
  free(idx);
  free(coef);
  return rc;
}

int ts_surv_loss_nll_risk(const ts_tensor *logits, ts_tensor **out) {
  static const char *fn = "ts_surv_loss_nll_risk";
  ts_tensor *t[5] = {NULL};
  int rc = 0;
  if (!out) return ts_error_set(TS_EINVAL, "NN_ARG", "%s: out is NULL", fn);
  *out = NULL;
  int64_t B = 0, K = 0;
  TS_CALL(check_logits(logits, fn, &B, &K));
  TS_TRY(log_sigmoid_pair(logits, &t[0], &t[1]));
  TS_TRY(ts_nn_cumsum(t[0], 1, &t[2]));
  TS_TRY(ts_nn_exp(t[2], &t[3]));           /* S [B, K] */
  TS_TRY(ts_nn_sum(t[3], 1, false, &t[4])); /* sum_k S_k */
  TS_TRY(ts_nn_neg(t[4], out));
out:
  free_all(t, 5);
  return rc;
}

/* ---- Bins and weights ------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int check_times(const char *fn, size_t n, const double *time) {
  for (size_t i = 0; i < n; i++)
    if (!(time[i] >= 0) || !isfinite(time[i]))
      return ts_error_set(TS_EINPUT, "SURV_NEGATIVE_TIME", "%s: time[%zu] = %g is negative or not finite", fn,
                          i, time[i]);
  return 0;
}

static int check_events(const char *fn, size_t n, const int *event) {
  for (size_t i = 0; i < n; i++)
    if (event[i] != 0 && event[i] != 1)
      return ts_error_set(TS_EINPUT, "SURV_BAD_EVENT", "%s: event[%zu] = %d is not 0 or 1", fn, i, event[i]);
  return 0;
}

int ts_surv_loss_bins_make(size_t n, const double *time, const int *event, int n_bins, double eps,
                           double *edges_out) {
  static const char *fn = "ts_surv_loss_bins_make";
  if (!time || !event || !edges_out || n == 0)
    return ts_error_set(TS_EINVAL, "NN_ARG", "%s: NULL argument or no patients", fn);
  if (n_bins < 1) return ts_error_set(TS_EINVAL, "NN_ARG", "%s: n_bins %d < 1", fn, n_bins);
  if (!(eps > 0) || !isfinite(eps))
    return ts_error_set(TS_EINVAL, "NN_ARG", "%s: eps %g must be > 0", fn, eps);
  TS_CALL(check_times(fn, n, time));
  TS_CALL(check_events(fn, n, event));
  size_t u = 0;
  double lo = INFINITY, hi = -INFINITY;
  for (size_t i = 0; i < n; i++) {
    u += event[i] == 1;
    lo = fmin(lo, time[i]);
    hi = fmax(hi, time[i]);
  }
  if (u == 0)
    return ts_error_set(TS_EINPUT, "SURV_LOSS_BINS", "%s: no uncensored patient to cut bins at", fn);
  double *x = malloc(u * sizeof *x), *q = malloc(((size_t)n_bins + 1) * sizeof *q);
  if (!x || !q) {
    free(x), free(q);
    return ts_error_set(TS_ENOMEM, "NN_OOM", "%s: out of memory", fn);
  }
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (event[i] == 1) x[m++] = time[i];
  qsort(x, u, sizeof *x, cmp_double);
  /* pandas qcut's quantiles: linear interpolation at h = (u - 1) j / K (numpy's default). */
  for (int j = 0; j <= n_bins; j++) {
    double h = (double)(u - 1) * j / n_bins;
    size_t k = (size_t)floor(h);
    if (k >= u - 1) {
      q[j] = x[u - 1];
    } else {
      double f = h - (double)k;
      q[j] = x[k] + (x[k + 1] - x[k]) * f;
    }
  }
  int rc = 0;
  for (int j = 0; j < n_bins; j++)
    if (!(q[j] < q[j + 1])) {
      rc = ts_error_set(TS_EINPUT, "SURV_LOSS_BINS",
                        "%s: quantiles %d/%d and %d/%d of the %zu uncensored times are equal (%g): "
                        "too few distinct event times for %d bins (pandas qcut raises here too)",
                        fn, j, n_bins, j + 1, n_bins, u, q[j], n_bins);
      break;
    }
  if (rc == 0) {
    q[0] = lo - eps;
    q[n_bins] = hi + eps;
    memcpy(edges_out, q, ((size_t)n_bins + 1) * sizeof *q);
  }
  free(x);
  free(q);
  return rc;
}

int ts_surv_loss_bins_assign(size_t n, const double *time, const double *edges, int n_bins,
                             int64_t *bin_out) {
  static const char *fn = "ts_surv_loss_bins_assign";
  if (!time || !edges || !bin_out) return ts_error_set(TS_EINVAL, "NN_ARG", "%s: NULL argument", fn);
  if (n_bins < 1) return ts_error_set(TS_EINVAL, "NN_ARG", "%s: n_bins %d < 1", fn, n_bins);
  for (int j = 0; j < n_bins; j++)
    if (!(edges[j] < edges[j + 1]))
      return ts_error_set(TS_EINVAL, "NN_ARG", "%s: edges[%d] = %g and edges[%d] = %g are not increasing", fn,
                          j, edges[j], j + 1, edges[j + 1]);
  TS_CALL(check_times(fn, n, time));
  for (size_t i = 0; i < n; i++) {
    /* the number of interior edges <= t: edges[k] <= t < edges[k+1], clamped to 0..K-1 */
    int lo = 0, hi = n_bins - 1; /* answer in [lo, hi] */
    while (lo < hi) {
      int mid = (lo + hi + 1) / 2;
      if (edges[mid] <= time[i])
        lo = mid;
      else
        hi = mid - 1;
    }
    bin_out[i] = lo;
  }
  return 0;
}

int ts_surv_loss_weights(const char *scheme, size_t n, const int *event, const int64_t *bin, int n_bins,
                         double event_weight, double *weight_out) {
  static const char *fn = "ts_surv_loss_weights";
  if (!scheme || !weight_out) return ts_error_set(TS_EINVAL, "NN_ARG", "%s: NULL scheme or weight_out", fn);
  if (strcmp(scheme, "none") == 0) {
    for (size_t i = 0; i < n; i++)
      weight_out[i] = 1.0;
    return 0;
  }
  if (strcmp(scheme, "events") == 0) {
    if (!event) return ts_error_set(TS_EINVAL, "NN_ARG", "%s: scheme 'events' needs event", fn);
    if (!(event_weight > 0) || !isfinite(event_weight))
      return ts_error_set(TS_EINVAL, "SURV_BAD_WEIGHT", "%s: event_weight %g must be finite and > 0", fn,
                          event_weight);
    TS_CALL(check_events(fn, n, event));
    for (size_t i = 0; i < n; i++)
      weight_out[i] = event[i] ? event_weight : 1.0;
    return 0;
  }
  if (strcmp(scheme, "inverse_time_bin_frequency") == 0) {
    if (!bin || n_bins < 1)
      return ts_error_set(TS_EINVAL, "NN_ARG", "%s: scheme '%s' needs bin and n_bins >= 1", fn, scheme);
    size_t *count = calloc((size_t)n_bins, sizeof *count);
    if (!count) return ts_error_set(TS_ENOMEM, "NN_OOM", "%s: out of memory", fn);
    for (size_t i = 0; i < n; i++) {
      if (bin[i] < 0 || bin[i] >= n_bins) {
        free(count);
        return ts_error_set(TS_EINVAL, "NN_ARG", "%s: bin[%zu] = %lld is outside 0..%d", fn, i,
                            (long long)bin[i], n_bins - 1);
      }
      count[bin[i]]++;
    }
    size_t occupied = 0;
    for (int k = 0; k < n_bins; k++)
      occupied += count[k] > 0;
    /* 1 / (n_k / n), times the factor that makes the mean 1: sum_i 1/f = n K', so w = n / (K' n_k). */
    for (size_t i = 0; i < n; i++)
      weight_out[i] = (double)n / ((double)occupied * (double)count[bin[i]]);
    free(count);
    return 0;
  }
  return ts_error_set(TS_ECONFIG, "SURV_LOSS_UNKNOWN",
                      "%s: unknown weight scheme '%s' (known: none, events, inverse_time_bin_frequency)", fn,
                      scheme);
}

/* ---- 2. Weighted Cox partial likelihood ------------------------------------------------------- */

typedef struct {
  double t;
  int e;
  size_t i;
} order_key;

/* Time descending; within a tie censored before deaths (so that the prefix that ends just
 * before a group's deaths is its risk set without them); then by row, for determinism. */
static int cmp_key(const void *a, const void *b) {
  const order_key *x = a, *y = b;
  if (x->t != y->t) return x->t < y->t ? 1 : -1;
  if (x->e != y->e) return x->e - y->e;
  return (x->i > y->i) - (x->i < y->i);
}

/* A tie group in sorted order: positions [a, b], its deaths from position first_death. */
typedef struct {
  size_t a, b, first_death, deaths;
  double deadwt;
} tie_group;

/* log E_g = logsumexp of v over the deaths of each Efron group (>= 2 deaths), into *le_out
 * ([G]; group g's value at le_pos[g]). Groups are padded in buckets of sizes (s/2, s], s = 2, 4,
 * 8, ..., so the padded matrices hold fewer than twice the deaths. */
static int efron_log_e(const ts_tensor *v, size_t n, const tie_group *g, size_t ng, int dtype, int dev,
                       int64_t *le_pos, ts_tensor **le_out) {
  static const char *fn = "ts_surv_loss_cox";
  ts_tensor *vpad = NULL, *ninf = NULL, **parts = NULL;
  int64_t *idx = NULL;
  int nparts = 0, rc = 0;
  size_t maxd = 0, done = 0;
  for (size_t k = 0; k < ng; k++)
    if (g[k].deaths > maxd) maxd = g[k].deaths;
  int nbucket = 1;
  for (size_t s = 2; s < maxd; s *= 2)
    nbucket++;
  parts = calloc((size_t)nbucket, sizeof *parts);
  idx = malloc(2 * (n + 1) * sizeof *idx);
  if (!parts || !idx) TS_FAIL(TS_ENOMEM, "NN_OOM", "%s: out of memory", fn);
  TS_TRY(const_one(-INFINITY, dtype, dev, &ninf));
  const ts_tensor *vv[2] = {v, ninf};
  TS_TRY(ts_nn_cat(vv, 2, 0, &vpad)); /* position n is -inf: the padding */
  for (size_t s = 2, lo = 1; lo < maxd; lo = s, s *= 2) {
    int64_t rows = 0, len = 0;
    for (size_t k = 0; k < ng; k++) {
      if (g[k].deaths <= lo || g[k].deaths > s) continue;
      for (size_t j = 0; j < s; j++)
        idx[len++] = j < g[k].deaths ? (int64_t)(g[k].first_death + j) : (int64_t)n;
      le_pos[k] = (int64_t)(done + (size_t)rows++);
    }
    if (rows == 0) continue;
    ts_tensor *it = NULL, *sel = NULL, *mat = NULL;
    int64_t shape[2] = {rows, (int64_t)s};
    rc = index_vec(idx, len, dev, &it);
    if (rc == 0) rc = ts_tensor_index_select(vpad, 0, it, &sel);
    if (rc == 0) rc = ts_tensor_reshape(sel, shape, 2, &mat);
    if (rc == 0) rc = ts_nn_logsumexp(mat, 1, false, &parts[nparts]);
    ts_tensor_free(&it), ts_tensor_free(&sel), ts_tensor_free(&mat);
    if (rc < 0) goto out;
    nparts++;
    done += (size_t)rows;
  }
  TS_TRY(ts_nn_cat((const ts_tensor *const *)parts, nparts, 0, le_out));
out:
  if (parts) free_all(parts, (size_t)nbucket);
  free(parts);
  free(idx);
  ts_tensor_free(&vpad);
  ts_tensor_free(&ninf);
  return rc;
}

int ts_surv_loss_cox(const ts_tensor *risk, const double *time, const int *event, const double *weight,
                     int ties, ts_tensor **out) {
  static const char *fn = "ts_surv_loss_cox";
  enum {
    RFLAT, /* risk [N] */
    ORD,   /* patient at each sorted position */
    RS,    /* r sorted (time descending) */
    LOGW,  /* log w sorted */
    V,     /* r + log w */
    L,     /* logcumsumexp(v): log A at each prefix */
    WE,    /* w d (numerator weights) */
    NUM,   /* sum w d r */
    END,   /* last position of each position's tie group */
    LEND,  /* log A(t) per position */
    CB,    /* w d where Breslow applies */
    DENB,  /* sum w d log A */
    LL,    /* Breslow part of the log likelihood */
    NINF,  /* -inf */
    LPAD,  /* [-inf, L] */
    LE,    /* log E per Efron group */
    IREST, /* Efron: index of log(A - E) in LPAD */
    ILE,   /* Efron: index into LE */
    CK,    /* log(1 - k/m) */
    WT,    /* deadwt / m */
    A,     /* log(A - E) per term */
    B0,    /* log E per term */
    B1,    /* log((1 - k/m) E) */
    AB,    /* [2, terms] */
    TERMS, /* log(A - (k/m) E) */
    DENE,  /* Efron denominators */
    LL2,   /* log likelihood (Efron) */
    SUMR,  /* sum r (no events) */
    NT
  };
  ts_tensor *t[NT] = {NULL};
  order_key *key = NULL;
  tie_group *grp = NULL, *efr = NULL;
  int64_t *ibuf = NULL, *le_pos = NULL;
  double *dbuf = NULL;
  int rc = 0;
  if (!out) return ts_error_set(TS_EINVAL, "NN_ARG", "%s: out is NULL", fn);
  *out = NULL;
  if (!risk || !time || !event)
    return ts_error_set(TS_EINVAL, "NN_ARG", "%s: risk, time or event is NULL", fn);
  if (ties != TS_SURV_LOSS_EFRON && ties != TS_SURV_LOSS_BRESLOW)
    return ts_error_set(TS_EINVAL, "NN_ARG", "%s: ties %d is neither TS_SURV_LOSS_EFRON nor _BRESLOW", fn,
                        ties);
  TS_CALL(check_float(risk, fn, "risk"));
  int64_t nn = ts_tensor_numel(risk);
  if (nn < 1) return ts_error_set(TS_EINVAL, "NN_SHAPE", "%s: risk has no element", fn);
  size_t n = (size_t)nn;
  TS_CALL(check_times(fn, n, time));
  TS_CALL(check_events(fn, n, event));
  if (weight)
    for (size_t i = 0; i < n; i++)
      if (!(weight[i] > 0) || !isfinite(weight[i]))
        return ts_error_set(TS_EINPUT, "SURV_BAD_WEIGHT", "%s: weight[%zu] = %g must be finite and > 0", fn,
                            i, weight[i]);
  int dtype = ts_tensor_dtype(risk), dev = ts_tensor_device(risk);
  int64_t flat = -1;
  TS_TRY(ts_tensor_reshape(risk, &flat, 1, &t[RFLAT]));

  double wevents = 0;
  for (size_t i = 0; i < n; i++)
    wevents += event[i] ? (weight ? weight[i] : 1.0) : 0.0;
  if (wevents == 0) { /* no events: loss 0, still in the graph */
    TS_TRY(ts_nn_sum(t[RFLAT], TS_NN_ALL_DIMS, false, &t[SUMR]));
    TS_TRY(ts_nn_mul_scalar(t[SUMR], 0.0, out));
    goto out;
  }

  key = malloc(n * sizeof *key);
  grp = malloc(n * sizeof *grp);
  ibuf = malloc(2 * n * sizeof *ibuf);
  dbuf = malloc(3 * n * sizeof *dbuf);
  if (!key || !grp || !ibuf || !dbuf) TS_FAIL(TS_ENOMEM, "NN_OOM", "%s: out of memory (N = %zu)", fn, n);
  for (size_t i = 0; i < n; i++)
    key[i] = (order_key){time[i], event[i], i};
  qsort(key, n, sizeof *key, cmp_key);
  size_t ng = 0;
  for (size_t p = 0; p < n;) {
    tie_group g = {p, p, p, 0, 0};
    while (g.b + 1 < n && key[g.b + 1].t == key[p].t)
      g.b++;
    g.first_death = g.b + 1;
    for (size_t q = p; q <= g.b; q++)
      if (key[q].e) {
        if (g.deaths++ == 0) g.first_death = q;
        g.deadwt += weight ? weight[key[q].i] : 1.0;
      }
    grp[ng++] = g;
    p = g.b + 1;
  }

  /* Sorted risk r, v = r + log w, L = log cumulative sums of w e^r (the risk sets). */
  double *logw = dbuf, *we = dbuf + n, *cb = dbuf + 2 * n;
  int64_t *ord = ibuf, *end = ibuf + n;
  size_t nefron = 0, tefron = 0; /* Efron groups (>= 2 deaths) and their deaths */
  for (size_t k = 0; k < ng; k++) {
    bool efron = ties == TS_SURV_LOSS_EFRON && grp[k].deaths >= 2;
    if (efron) nefron++, tefron += grp[k].deaths;
    for (size_t p = grp[k].a; p <= grp[k].b; p++) {
      size_t i = key[p].i;
      double w = weight ? weight[i] : 1.0;
      ord[p] = (int64_t)i;
      end[p] = (int64_t)grp[k].b;
      logw[p] = log(w);
      we[p] = key[p].e ? w : 0.0;           /* numerator: sum w_i r_i over deaths */
      cb[p] = key[p].e && !efron ? w : 0.0; /* Breslow denominators: w_i log A(t_i) */
    }
  }
  TS_TRY(index_vec(ord, (int64_t)n, dev, &t[ORD]));
  TS_TRY(ts_tensor_index_select(t[RFLAT], 0, t[ORD], &t[RS]));
  TS_TRY(const_vec(logw, (int64_t)n, dtype, dev, &t[LOGW]));
  TS_TRY(ts_nn_add(t[RS], t[LOGW], &t[V]));
  TS_TRY(ts_nn_logcumsumexp(t[V], 0, &t[L]));
  TS_TRY(const_vec(we, (int64_t)n, dtype, dev, &t[WE]));
  TS_TRY(dot(t[RS], t[WE], &t[NUM]));
  TS_TRY(index_vec(end, (int64_t)n, dev, &t[END]));
  TS_TRY(ts_tensor_index_select(t[L], 0, t[END], &t[LEND]));
  TS_TRY(const_vec(cb, (int64_t)n, dtype, dev, &t[CB]));
  TS_TRY(dot(t[LEND], t[CB], &t[DENB]));
  TS_TRY(ts_nn_sub(t[NUM], t[DENB], &t[LL]));

  if (nefron > 0) {
    /* Efron: for a group with m deaths, deadwt/m · sum_k log(A - (k/m) E), each term
     * logaddexp(log(A - E), log(1 - k/m) + log E); log(A - E) = the prefix before the group's
     * deaths (censored at the tie come first), -inf when empty. */
    efr = malloc(nefron * sizeof *efr);
    le_pos = malloc(nefron * sizeof *le_pos);
    int64_t *irest = malloc(2 * tefron * sizeof *irest);
    double *ck = malloc(2 * tefron * sizeof *ck);
    if (!efr || !le_pos || !irest || !ck) {
      free(irest), free(ck);
      TS_FAIL(TS_ENOMEM, "NN_OOM", "%s: out of memory (N = %zu)", fn, n);
    }
    size_t e = 0;
    for (size_t k = 0; k < ng; k++)
      if (grp[k].deaths >= 2) efr[e++] = grp[k];
    rc = efron_log_e(t[V], n, efr, nefron, dtype, dev, le_pos, &t[LE]);
    size_t q = 0;
    for (size_t k = 0; rc == 0 && k < nefron; k++) {
      double m = (double)efr[k].deaths;
      for (size_t j = 0; j < efr[k].deaths; j++, q++) {
        irest[q] = (int64_t)efr[k].first_death; /* L[first_death - 1] is Lpad[first_death] */
        irest[tefron + q] = le_pos[k];
        ck[q] = log1p(-(double)j / m);
        ck[tefron + q] = efr[k].deadwt / m;
      }
    }
    if (rc == 0) rc = const_one(-INFINITY, dtype, dev, &t[NINF]);
    const ts_tensor *lp[2] = {t[NINF], t[L]};
    if (rc == 0) rc = ts_nn_cat(lp, 2, 0, &t[LPAD]);
    if (rc == 0) rc = index_vec(irest, (int64_t)tefron, dev, &t[IREST]);
    if (rc == 0) rc = index_vec(irest + tefron, (int64_t)tefron, dev, &t[ILE]);
    if (rc == 0) rc = const_vec(ck, (int64_t)tefron, dtype, dev, &t[CK]);
    if (rc == 0) rc = const_vec(ck + tefron, (int64_t)tefron, dtype, dev, &t[WT]);
    free(irest);
    free(ck);
    if (rc < 0) goto out;
    TS_TRY(ts_tensor_index_select(t[LPAD], 0, t[IREST], &t[A]));
    TS_TRY(ts_tensor_index_select(t[LE], 0, t[ILE], &t[B0]));
    TS_TRY(ts_nn_add(t[B0], t[CK], &t[B1]));
    const ts_tensor *ab[2] = {t[A], t[B1]};
    TS_TRY(ts_nn_stack(ab, 2, 0, &t[AB]));
    TS_TRY(ts_nn_logsumexp(t[AB], 0, false, &t[TERMS]));
    TS_TRY(dot(t[TERMS], t[WT], &t[DENE]));
    TS_TRY(ts_nn_sub(t[LL], t[DENE], &t[LL2]));
    TS_TRY(ts_nn_mul_scalar(t[LL2], -1.0 / wevents, out));
  } else {
    TS_TRY(ts_nn_mul_scalar(t[LL], -1.0 / wevents, out));
  }
out:
  free_all(t, NT);
  free(key);
  free(grp);
  free(efr);
  free(le_pos);
  free(ibuf);
  free(dbuf);
  return rc;
}
