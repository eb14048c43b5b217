/* survival_deep.c — the deep survival models of stage "survival" (issue 12): amil, snn,
 * mmf_concat, mmf_bilinear, coattn (nn/ts_survnet.h), trained per (model, fold).
 *
 * A patient is one bag: the tiles of all its slides, in cohort order (PORPOISE's case-level
 * bag), and/or one vector: its genomic values (snn) or genomic + clinical values (mmf_*, coattn),
 * standardised with the training part's means and SDs by the caller.
 *
 * Training (one unit): Adam with L2 weight decay (PORPOISE's optim.Adam, lr 2e-4, decay 1e-5),
 * survival.batch patients per step, epochs in a seeded shuffled order, early stopping on the
 * VALIDATION loss (patience, min_epochs), the best epoch's weights evaluated. Losses
 * (nn/ts_surv_loss.h):
 *   nll  discrete-time NLL over survival.nll_bins bins at quantiles of the TRAINING part's
 *        uncensored times (PORPOISE computes them on the whole cohort before splitting: a
 *        little of the test part's follow-up leaks into its targets; here it does not), alpha
 *        survival.nll_alpha; the batch mean = PORPOISE's gradient accumulation over `batch`
 *        patients. Risk = -sum_k S_k (PORPOISE's).
 *   cox  weighted Cox partial likelihood, risk sets within the batch (all of the validation part
 *        for its loss), survival.cox_ties, weights by survival.cox_weights (computed on the whole
 *        training part: "events" = survival.event_weight for events, 1 for censored;
 *        inverse_time_bin_frequency over the nll bins). A batch without an event takes no step.
 *        Risk = the network's output.
 * Reproducible: weights, dropout and shuffles from (run.seed, model, fold, epoch); LibTorch
 * deterministic, survival.threads threads; bags read in the same order.
 *
 * Outputs (survival/<model>/fold<k>/): model.h5 (state dict, PyTorch names), curve.csv
 * (epoch,train_loss,val_loss,val_c_index,best), attention.h5 (/<patient>/<slide>/{attention
 * (raw, pre-softmax), percentile, coords}) for every test patient of a pathology model, and the
 * heatmaps of the survival.heatmaps highest- and lowest-risk test patients (heatmaps/<slide>.png
 * through heatmaps.sha256; heatmaps.csv: patient_id,group,risk,slide_id). */
#include "survival_deep.h"

#include <hdf5.h>
#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5util.h"
#include "stage_util.h"
#include "ts_classify.h"
#include "ts_error.h"
#include "ts_heatmap.h"
#include "ts_io.h"
#include "ts_stop.h"
#include "ts_surv_loss.h"
#include "ts_survival.h"
#include "ts_survnet.h"

#define BAG_CACHE_BYTES ((size_t)1 << 30) /* bags kept in memory across epochs, at most */

typedef struct pbag {
  float *x;           /* N x D */
  int64_t *xy;        /* N x 2 */
  int64_t n;
  int n_slides;
  int64_t *start;     /* per slide: first row */
  int64_t *len;       /* per slide: rows (0: no tile) */
  int64_t *tile_l0;   /* per slide */
} pbag;

static void pbag_clear(pbag *b) {
  free(b->x), free(b->xy), free(b->start), free(b->len), free(b->tile_l0);
  memset(b, 0, sizeof *b);
}

typedef struct trainer {
  ts__surv_deep *d;
  const ts_config *c;
  ts_survnet *m;
  ts_optim *opt;
  bool path, omic, nll;
  int K;               /* outputs: nll bins or 1 */
  int ties;
  pbag *cache[3];      /* per set and patient, NULL = not cached */
  size_t cached_bytes;
  int64_t dim;
} trainer;

static int read_pbag(trainer *t, const ts__surv_pt *p, pbag *out) {
  memset(out, 0, sizeof *out);
  out->n_slides = p->n_slides;
  if (!(out->start = calloc((size_t)p->n_slides + 1, sizeof *out->start)) || !(out->len = calloc((size_t)p->n_slides + 1, sizeof *out->len)) ||
      !(out->tile_l0 = calloc((size_t)p->n_slides + 1, sizeof *out->tile_l0))) {
    pbag_clear(out);
    return ts_error_set(TS_ENOMEM, "NO_MEMORY", "patient %s", p->id);
  }
  int rc = 0;
  for (int s = 0; s < p->n_slides && rc >= 0; s++) {
    ts__stage_bag b;
    if ((rc = ts__stage_read_bag(t->d->run, NULL, p->slides[s], "SURV", &b)) < 0) {
      if (!strcmp(ts_error_token(), "SURV_EMPTY_BAG")) ts_error_clear(), rc = 0; /* a blank slide adds no tile */
      out->start[s] = out->n;
      continue;
    }
    if (t->dim == 0) t->dim = b.d;
    if (b.d != t->dim) {
      rc = ts_error_set(TS_EINPUT, "SURV_FEATURES_WIDTH", "patient %s: slide %s has %lld features per tile, the others %lld (features from another encoder?)", p->id,
                        p->slides[s], (long long)b.d, (long long)t->dim);
      ts__stage_bag_clear(&b);
      break;
    }
    float *x = realloc(out->x, sizeof *x * (size_t)((out->n + b.n) * b.d));
    int64_t *xy = x ? realloc(out->xy, sizeof *xy * (size_t)((out->n + b.n) * 2)) : NULL;
    if (x) out->x = x;
    if (xy) out->xy = xy;
    if (!x || !xy) rc = ts_error_set(TS_ENOMEM, "NO_MEMORY", "patient %s: %lld tiles", p->id, (long long)(out->n + b.n));
    else {
      memcpy(out->x + out->n * b.d, b.x, sizeof *x * (size_t)(b.n * b.d));
      memcpy(out->xy + out->n * 2, b.xy, sizeof *xy * (size_t)(b.n * 2));
      out->start[s] = out->n, out->len[s] = b.n, out->tile_l0[s] = b.tile_l0;
      out->n += b.n;
    }
    ts__stage_bag_clear(&b);
  }
  if (rc >= 0 && out->n == 0)
    rc = ts_error_set(TS_EINPUT, "SURV_EMPTY_BAG", "patient %s: none of its %d slide(s) has a tile: a pathology model cannot score it (leave it out of the cohort, or check its slides' tissue)",
                      p->id, p->n_slides);
  if (rc < 0) pbag_clear(out);
  return rc;
}

/* The patient's bag: from the cache, or read (and cached while the budget lasts). *owned: the
 * caller must pbag_clear it. */
static int get_bag(trainer *t, int set, size_t i, pbag *tmp, const pbag **out, bool *owned) {
  *owned = false;
  if (t->cache[set] && t->cache[set][i].n_slides) {
    *out = &t->cache[set][i];
    return 0;
  }
  TS_CALL(read_pbag(t, t->d->set[set][i], tmp));
  size_t bytes = (size_t)tmp->n * (sizeof(float) * (size_t)t->dim + 2 * sizeof(int64_t));
  if (t->cache[set] && t->cached_bytes + bytes <= BAG_CACHE_BYTES) {
    t->cache[set][i] = *tmp;
    t->cached_bytes += bytes;
    memset(tmp, 0, sizeof *tmp);
    *out = &t->cache[set][i];
  } else {
    *out = tmp;
    *owned = true;
  }
  return 0;
}

/* One patient through the model. */
static int forward(trainer *t, int set, size_t i, bool training, ts_survnet_out *o, pbag *keep) {
  ts_tensor *bag = NULL, *om = NULL;
  pbag tmp;
  memset(&tmp, 0, sizeof tmp);
  const pbag *b = NULL;
  bool owned = false;
  int rc = 0;
  const ts__surv_pt *p = t->d->set[set][i];
  if (t->path) {
    TS_TRY(get_bag(t, set, i, &tmp, &b, &owned));
    int64_t shape[2] = {b->n, t->dim};
    TS_TRY(ts_tensor_from_data(b->x, TS_NN_F32, shape, 2, &bag));
  }
  if (t->omic) {
    int64_t shape[2] = {1, t->d->omic_dim};
    TS_TRY(ts_tensor_from_data(p->omic, TS_NN_F32, shape, 2, &om));
  }
  rc = ts_survnet_forward(t->m, bag, om, training, o);
  if (rc < 0) rc = ts_error_set(rc, ts_error_token(), "patient %s: %s", p->id, ts_error_detail());
  if (rc >= 0 && keep && b) { /* the caller keeps the geometry (test patients' attention) */
    if (owned) *keep = tmp, owned = false, memset(&tmp, 0, sizeof tmp);
    else {
      memset(keep, 0, sizeof *keep);
      keep->n = b->n, keep->n_slides = b->n_slides;
      keep->xy = malloc(sizeof *keep->xy * (size_t)(b->n * 2));
      keep->start = malloc(sizeof *keep->start * (size_t)(b->n_slides + 1));
      keep->len = malloc(sizeof *keep->len * (size_t)(b->n_slides + 1));
      keep->tile_l0 = malloc(sizeof *keep->tile_l0 * (size_t)(b->n_slides + 1));
      if (!keep->xy || !keep->start || !keep->len || !keep->tile_l0) {
        pbag_clear(keep);
        TS_FAIL(TS_ENOMEM, "NO_MEMORY", "attention of %s", p->id);
      }
      memcpy(keep->xy, b->xy, sizeof *keep->xy * (size_t)(b->n * 2));
      memcpy(keep->start, b->start, sizeof *keep->start * (size_t)b->n_slides);
      memcpy(keep->len, b->len, sizeof *keep->len * (size_t)b->n_slides);
      memcpy(keep->tile_l0, b->tile_l0, sizeof *keep->tile_l0 * (size_t)b->n_slides);
    }
  }
out:
  if (owned) pbag_clear(&tmp);
  ts_tensor_free(&bag);
  ts_tensor_free(&om);
  return rc;
}

/* The loss of B patients' stacked outputs (logits [B, K]). */
static int batch_loss(trainer *t, const ts_tensor *logits, int set, const size_t *idx, size_t B, const double *cw, ts_tensor **loss) {
  int rc = 0;
  int64_t *bin = malloc(sizeof *bin * (B + 1));
  int *cens = malloc(sizeof *cens * (B + 1)), *ev = malloc(sizeof *ev * (B + 1));
  double *tm = malloc(sizeof *tm * (B + 1)), *w = malloc(sizeof *w * (B + 1));
  if (!bin || !cens || !ev || !tm || !w) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "survival loss");
  for (size_t b = 0; b < B; b++) {
    const ts__surv_pt *p = t->d->set[set][idx[b]];
    tm[b] = p->time, ev[b] = p->event, cens[b] = !p->event, w[b] = cw ? cw[idx[b]] : 1;
  }
  if (t->nll) {
    TS_TRY(ts_surv_loss_bins_assign(B, tm, t->d->edges, t->K, bin));
    rc = ts_surv_loss_nll(logits, bin, cens, t->c->survival.nll_alpha, loss);
  } else {
    rc = ts_surv_loss_cox(logits, tm, ev, w, t->ties, loss);
  }
out:
  free(bin), free(cens), free(ev), free(tm), free(w);
  return rc;
}

static int train_epoch(trainer *t, const size_t *order, const double *cw, double *loss_out) {
  const ts__surv_deep *d = t->d;
  size_t n = d->n[TS_SET_TRAIN], B = (size_t)t->c->survival.batch, steps = 0;
  double sum = 0;
  int rc = 0;
  ts_tensor **lg = calloc(B + 1, sizeof *lg);
  size_t *idx = malloc(sizeof *idx * (B + 1));
  if (!lg || !idx) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "survival batch");
  for (size_t s = 0; s < n && rc >= 0; s += B) {
    if (ts_stop_requested()) {
      rc = ts_stop_error(d->model);
      goto out;
    }
    size_t nb = s + B <= n ? B : n - s;
    int events = 0;
    for (size_t b = 0; b < nb; b++) idx[b] = order[s + b], events += d->set[TS_SET_TRAIN][idx[b]]->event;
    if (!t->nll && events == 0) continue; /* no partial likelihood in this batch: no step */
    ts_tensor *cat = NULL, *loss = NULL;
    for (size_t b = 0; b < nb && rc >= 0; b++) {
      ts_survnet_out o = {0};
      rc = forward(t, TS_SET_TRAIN, idx[b], true, &o, NULL);
      lg[b] = o.logits, o.logits = NULL;
      ts_survnet_out_free(&o);
    }
    if (rc >= 0) rc = ts_nn_cat((const ts_tensor *const *)lg, (int)nb, 0, &cat);
    if (rc >= 0) rc = batch_loss(t, cat, TS_SET_TRAIN, idx, nb, cw, &loss);
    double v = 0;
    if (rc >= 0 && (rc = ts_optim_zero_grad(t->opt)) >= 0 && (rc = ts_tensor_backward(loss)) >= 0 && (rc = ts_optim_step(t->opt)) >= 0 &&
        (rc = ts_tensor_item(loss, &v)) >= 0)
      sum += v, steps++;
    for (size_t b = 0; b < nb; b++) ts_tensor_free(&lg[b]);
    ts_tensor_free(&cat);
    ts_tensor_free(&loss);
  }
  *loss_out = steps ? sum / (double)steps : NAN;
out:
  free(lg);
  free(idx);
  return rc;
}

/* The Cox loss's case weights of a whole set by survival.cox_weights (*out NULL for "none");
 * inverse_time_bin_frequency bins by the training part's edges. The same function makes the
 * training part's once (ts__surv_deep_fit) and the validation part's for its loss. */
static int case_weights(const trainer *t, int set, double **out) {
  const ts__surv_deep *d = t->d;
  const char *scheme = t->c->survival.cox_weights;
  size_t n = d->n[set];
  *out = NULL;
  if (!strcmp(scheme, "none")) return 0;
  int rc = 0, K = (int)t->c->survival.nll_bins;
  bool itbf = !strcmp(scheme, "inverse_time_bin_frequency");
  int *e = malloc(sizeof *e * (n + 1));
  int64_t *bin = malloc(sizeof *bin * (n + 1));
  double *tm = malloc(sizeof *tm * (n + 1)), *w = malloc(sizeof *w * (n + 1));
  if (!e || !bin || !tm || !w) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "weights");
  for (size_t i = 0; i < n; i++) e[i] = d->set[set][i]->event, tm[i] = d->set[set][i]->time;
  if (itbf) TS_TRY(ts_surv_loss_bins_assign(n, tm, d->edges, K, bin));
  TS_TRY(ts_surv_loss_weights(scheme, n, e, itbf ? bin : NULL, K, t->c->survival.event_weight, w));
  *out = w, w = NULL;
out:
  free(e), free(bin), free(tm), free(w);
  return rc;
}

/* A set through the best (or current) weights without gradients: its loss, risks, survival
 * (nll) and, when att is not NULL, every patient's raw attention and geometry. */
static int evaluate(trainer *t, int set, double *loss_out, double *risk, double *surv, float **att, pbag *geo) {
  const ts__surv_deep *d = t->d;
  size_t n = d->n[set];
  int rc = 0;
  ts_nn_guard *g = NULL;
  ts_tensor **lg = calloc(n + 1, sizeof *lg), *cat = NULL, *loss = NULL, *rk = NULL;
  size_t *idx = malloc(sizeof *idx * (n + 1));
  double *cw = NULL;
  if (!lg || !idx) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "survival evaluation");
  TS_TRY(ts_nn_no_grad_begin(&g));
  for (size_t i = 0; i < n && rc >= 0; i++) {
    ts_survnet_out o = {0};
    idx[i] = i;
    rc = forward(t, set, i, false, &o, att ? &geo[i] : NULL);
    if (rc >= 0 && att && o.a_raw) {
      int64_t na = ts_tensor_numel(o.a_raw);
      if (!(att[i] = malloc(sizeof **att * (size_t)(na + 1)))) rc = ts_error_set(TS_ENOMEM, "NO_MEMORY", "attention");
      else rc = ts_tensor_copy_to(o.a_raw, att[i], sizeof **att * (size_t)na, TS_NN_F32);
    }
    lg[i] = o.logits, o.logits = NULL;
    ts_survnet_out_free(&o);
  }
  if (rc < 0) goto out;
  TS_TRY(ts_nn_cat((const ts_tensor *const *)lg, (int)n, 0, &cat)); /* [n, K] */
  if (loss_out) {
    int ev = 0;
    for (size_t i = 0; i < n; i++) ev += d->set[set][i]->event;
    if (!t->nll && ev == 0) *loss_out = NAN; /* no partial likelihood without an event */
    else {
      if (!t->nll) TS_TRY(case_weights(t, set, &cw));
      TS_TRY(batch_loss(t, cat, set, idx, n, cw, &loss));
      TS_TRY(ts_tensor_item(loss, loss_out));
    }
  }
  if (t->nll) {
    TS_TRY(ts_surv_loss_nll_risk(cat, &rk));
    TS_TRY(ts_tensor_copy_to(rk, risk, sizeof *risk * n, TS_NN_F64));
    if (surv) { /* S_k = prod_{j<=k} (1 - sigmoid(z_j)) */
      double *z = malloc(sizeof *z * (n * (size_t)t->K + 1));
      if (!z) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "survival");
      rc = ts_tensor_copy_to(cat, z, sizeof *z * n * (size_t)t->K, TS_NN_F64);
      for (size_t i = 0; rc >= 0 && i < n; i++) {
        double s = 1;
        for (int k = 0; k < t->K; k++) s *= 1 / (1 + exp(z[i * (size_t)t->K + (size_t)k])), surv[i * (size_t)t->K + (size_t)k] = s;
      }
      free(z);
    }
  } else {
    TS_TRY(ts_tensor_copy_to(cat, risk, sizeof *risk * n, TS_NN_F64));
  }
out:
  ts_nn_guard_end(&g);
  for (size_t i = 0; lg && i < n; i++) ts_tensor_free(&lg[i]);
  free(lg), free(idx), free(cw);
  ts_tensor_free(&cat);
  ts_tensor_free(&loss);
  ts_tensor_free(&rk);
  return rc;
}

static double c_index(const ts__surv_deep *d, int set, const double *risk) {
  size_t n = d->n[set];
  double *tm = malloc(sizeof *tm * (n + 1));
  int *ev = malloc(sizeof *ev * (n + 1));
  ts_concordance cc = {.c = NAN};
  if (tm && ev) {
    for (size_t i = 0; i < n; i++) tm[i] = d->set[set][i]->time, ev[i] = d->set[set][i]->event;
    ts_surv_data sd = {.n = n, .time = tm, .event = ev};
    if (ts_surv_concordance(&sd, risk, TS_TIMEWT_N, INFINITY, &cc) < 0) cc.c = NAN;
    ts_error_clear();
  }
  free(tm), free(ev);
  return cc.c;
}

/* attention.h5 for the test patients, and the heatmaps of the highest- and lowest-risk ones. */
static int write_attention(trainer *t, const char *dir_rel, const double *risk, float **att, pbag *geo, ts_unit_record *rec) {
  const ts__surv_deep *d = t->d;
  size_t n = d->n[TS_SET_TEST];
  char rel[512], path[TS_PATH_MAX], tmp[TS_PATH_MAX];
  int rc = 0;
  snprintf(rel, sizeof rel, "%s/attention.h5", dir_rel);
  TS_CALL(ts_run_path(d->run, rel, path, sizeof path));
  TS_CALL(ts_io_tmp_path(path, tmp, sizeof tmp));
  hid_t f = ts__h5_create(tmp), dc = -1;
  if (f < 0) return ts_error_set(TS_EIO, "H5_WRITE", "cannot create %s", tmp);
  TS_TRY(ts__h5_attr_str(f, "model", d->model));
  TS_TRY(ts__h5_attr_i64(f, "fold", d->fold));
  TS_TRY(ts__h5_attr_str(f, "attention", "raw (pre-softmax) attention score of every tile of every test patient, per slide: /<patient>/<slide>/attention"));
  if ((dc = ts__h5_dcpl(0, 0, 0, 0)) < 0) TS_FAIL(TS_EIO, "H5_WRITE", "%s", tmp);
  for (size_t i = 0; i < n && rc >= 0; i++) {
    const ts__surv_pt *p = d->set[TS_SET_TEST][i];
    if (!att[i]) continue;
    hid_t g = H5Gcreate2(f, p->id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0 || ts__h5_attr_f64(g, "risk", risk[i]) < 0 || ts__h5_attr_f64(g, "time", p->time) < 0 || ts__h5_attr_i64(g, "event", p->event) < 0)
      rc = ts__h5_fail(TS_EIO, "H5_WRITE", "attention of %s", p->id);
    for (int s = 0; rc >= 0 && s < p->n_slides; s++) {
      int64_t len = geo[i].len[s], st = geo[i].start[s];
      if (!len) continue;
      float *pct = malloc(sizeof *pct * (size_t)len);
      if (!pct) {
        rc = ts_error_set(TS_ENOMEM, "NO_MEMORY", "percentiles");
        break;
      }
      hid_t sg = H5Gcreate2(g, p->slides[s], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      if (sg < 0 || ts_heatmap_percentiles(att[i] + st, len, pct) < 0) rc = ts__h5_fail(TS_EIO, "H5_WRITE", "attention of %s", p->slides[s]);
      hsize_t ad[1] = {(hsize_t)len}, cd[2] = {(hsize_t)len, 2};
      const char *names[2] = {"attention", "percentile"};
      const float *vals[2] = {att[i] + st, pct};
      for (int k = 0; rc >= 0 && k < 2; k++) {
        hid_t sp = H5Screate_simple(1, ad, NULL), ds = sp >= 0 ? H5Dcreate2(sg, names[k], H5T_IEEE_F32LE, sp, H5P_DEFAULT, dc, H5P_DEFAULT) : -1;
        if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals[k]) < 0) rc = ts__h5_fail(TS_EIO, "H5_WRITE", "%s of %s", names[k], p->slides[s]);
        if (ds >= 0) H5Dclose(ds);
        if (sp >= 0) H5Sclose(sp);
      }
      if (rc >= 0) {
        hid_t sp = H5Screate_simple(2, cd, NULL), ds = sp >= 0 ? H5Dcreate2(sg, "coords", H5T_STD_I64LE, sp, H5P_DEFAULT, dc, H5P_DEFAULT) : -1;
        if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, geo[i].xy + st * 2) < 0) rc = ts__h5_fail(TS_EIO, "H5_WRITE", "coords of %s", p->slides[s]);
        if (ds >= 0) H5Dclose(ds);
        if (sp >= 0) H5Sclose(sp);
      }
      free(pct);
      if (sg >= 0) H5Gclose(sg);
    }
    if (g >= 0) H5Gclose(g);
  }
  H5Pclose(dc);
  dc = -1;
  if (rc < 0) goto out;
  if (H5Fclose(f) < 0) {
    f = -1;
    TS_FAIL(TS_EIO, "H5_WRITE", "closing %s", tmp);
  }
  f = -1;
  TS_TRY(ts_io_commit(tmp, path));
  TS_TRY(ts_unit_add_output(rec, rel));
  /* heatmaps: the k highest- and k lowest-risk test patients (distinct) */
  size_t *ord = malloc(sizeof *ord * (n + 1));
  char *man = NULL, *idx = NULL;
  size_t ml = 0, il = 0;
  FILE *fm = open_memstream(&man, &ml), *fi = open_memstream(&idx, &il);
  if (!ord || !fm || !fi) {
    free(ord);
    if (fm) fclose(fm), free(man);
    if (fi) fclose(fi), free(idx);
    TS_FAIL(TS_ENOMEM, "NO_MEMORY", "heatmaps");
  }
  for (size_t i = 0; i < n; i++) ord[i] = i;
  for (size_t i = 1; i < n; i++) /* by risk descending, then id: insertion sort (test parts are small) */
    for (size_t j = i; j > 0; j--) {
      size_t a = ord[j - 1], b = ord[j];
      bool swap = risk[b] > risk[a] || (risk[b] == risk[a] && strcmp(d->set[TS_SET_TEST][b]->id, d->set[TS_SET_TEST][a]->id) < 0);
      if (!swap) break;
      ord[j - 1] = b, ord[j] = a;
    }
  size_t k = (size_t)t->c->survival.heatmaps;
  if (2 * k > n) k = n / 2;
  int n_maps = 0, n_missing = 0;
  fprintf(fi, "patient_id,group,risk,slide_id\n");
  for (size_t r = 0; r < 2 * k && rc >= 0; r++) {
    size_t i = r < k ? ord[r] : ord[n - 1 - (r - k)];
    const ts__surv_pt *p = d->set[TS_SET_TEST][i];
    for (int s = 0; rc >= 0 && s < p->n_slides; s++) {
      if (!geo[i].len[s] || !att[i]) continue;
      fprintf(fi, "%s,%s,%.17g,%s\n", p->id, r < k ? "high" : "low", risk[i], p->slides[s]);
      rc = ts__stage_heatmap(d->run, dir_rel, p->slides[s], geo[i].xy + geo[i].start[s] * 2, geo[i].len[s], geo[i].tile_l0[s], att[i] + geo[i].start[s], fm,
                             &n_maps, &n_missing);
    }
  }
  fclose(fm);
  fclose(fi);
  free(ord);
  if (rc >= 0) {
    snprintf(rel, sizeof rel, "%s/heatmaps.sha256", dir_rel);
    rc = ts__stage_write_output(d->run, rel, man, ml, rec);
  }
  if (rc >= 0) {
    snprintf(rel, sizeof rel, "%s/heatmaps.csv", dir_rel);
    rc = ts__stage_write_output(d->run, rel, idx, il, rec);
  }
  free(man);
  free(idx);
  if (rc >= 0 && n_missing) ts_unit_note(rec, "SURV_NO_HEATMAP: %d slide(s) without a heatmap (slide file or tile geometry not at hand)", n_missing);
out:
  if (dc >= 0) H5Pclose(dc);
  if (f >= 0) {
    H5Fclose(f);
    unlink(tmp);
  }
  return rc;
}

int ts__surv_deep_fit(ts__surv_deep *d, FILE *mj, ts_unit_record *rec) {
  const ts_config *c = d->run->cfg;
  trainer t;
  memset(&t, 0, sizeof t);
  t.d = d, t.c = c;
  t.path = ts_survnet_uses_path(d->model), t.omic = ts_survnet_uses_omic(d->model);
  t.nll = !strcmp(c->survival.loss, "nll");
  t.ties = !strcmp(c->survival.cox_ties, "breslow") ? TS_SURV_LOSS_BRESLOW : TS_SURV_LOSS_EFRON;
  int rc = 0;
  size_t ntr = d->n[TS_SET_TRAIN];
  double *cw = NULL, *ttm = NULL;
  int *tev = NULL;
  size_t *order = NULL;
  ts_nn_state *best = NULL;
  char *curve = NULL, rel[512], path[TS_PATH_MAX], dir_rel[256];
  size_t curve_len = 0;
  FILE *cf = NULL;
  float **att = NULL;
  pbag *geo = NULL;
  snprintf(dir_rel, sizeof dir_rel, "survival/%s/fold%d", d->model, d->fold);
  /* targets: bins on the training part */
  int K = (int)c->survival.nll_bins;
  if (!(ttm = malloc(sizeof *ttm * (ntr + 1))) || !(tev = malloc(sizeof *tev * (ntr + 1))) ||
      !(order = malloc(sizeof *order * (ntr + 1))))
    TS_FAIL(TS_ENOMEM, "NO_MEMORY", "survival");
  for (size_t i = 0; i < ntr; i++) ttm[i] = d->set[TS_SET_TRAIN][i]->time, tev[i] = d->set[TS_SET_TRAIN][i]->event;
  bool need_bins = t.nll || !strcmp(c->survival.cox_weights, "inverse_time_bin_frequency");
  if (need_bins) {
    if (ts_surv_loss_bins_make(ntr, ttm, tev, K, 1e-6, d->edges) < 0) {
      rc = ts_error_set(TS_EINPUT, ts_error_token(), "fold %d's training part: %s (lower survival.nll_bins)", d->fold, ts_error_detail());
      goto out;
    }
  }
  if (!t.nll) TS_TRY(case_weights(&t, TS_SET_TRAIN, &cw));
  t.K = t.nll ? K : 1;
  d->n_bins = t.nll ? K : 0; /* cox with inverse_time_bin_frequency keeps the edges, not a bin model */
  for (int k = 0; k < 3; k++) {
    if (!(d->risk[k] = calloc(d->n[k] + 1, sizeof *d->risk[k]))) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "survival");
    if (t.nll && !(d->surv[k] = calloc(d->n[k] * (size_t)K + 1, sizeof *d->surv[k]))) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "survival");
    if (t.path && !(t.cache[k] = calloc(d->n[k] + 1, sizeof *t.cache[k]))) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "survival");
  }
  /* the width from the first training patient's bag */
  if (t.path) {
    pbag b;
    TS_TRY(read_pbag(&t, d->set[TS_SET_TRAIN][0], &b));
    pbag_clear(&b);
  }
  d->path_dim = t.dim;
  ts_nn_set_num_threads((int)c->survival.threads);
  ts_nn_set_deterministic(true);
  ts_nn_tune_malloc();
  uint64_t useed = ts__stage_mix64((uint64_t)c->run.seed ^ ts__stage_mix64(ts__stage_str_hash(d->model)) ^ ts__stage_mix64((uint64_t)d->fold + 0x57u));
  ts_survnet_opts so;
  ts_survnet_opts_default(&so);
  so.path_dim = t.path ? t.dim : 0;
  so.omic_dim = t.omic ? d->omic_dim : 0;
  so.n_out = t.K;
  so.dropout = c->survival.dropout;
  so.seed = useed;
  so.omic_groups = (int)c->survival.omic_groups;
  TS_TRY(ts_survnet_new(d->model, &so, &t.m));
  const ts_tensor *const *params = NULL;
  int np = 0;
  TS_TRY(ts_survnet_params(t.m, &params, &np));
  TS_TRY(ts_optim_adam_new(params, np, c->survival.lr, 0.9, 0.999, 1e-8, c->survival.weight_decay, &t.opt));
  int64_t n_weights = 0;
  for (int i = 0; i < np; i++) n_weights += ts_tensor_numel(params[i]);
  if (!(cf = open_memstream(&curve, &curve_len))) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "curve");
  fprintf(cf, "epoch,train_loss,val_loss,val_c_index,best\n");
  double best_loss = INFINITY;
  int best_epoch = -1, since = 0, epochs_run = 0;
  bool val_undefined = false;
  for (int ep = 0; ep < c->survival.epochs; ep++) {
    uint64_t es = ts__stage_mix64(useed ^ ts__stage_mix64((uint64_t)ep + 0x5151));
    for (size_t i = 0; i < ntr; i++) order[i] = i;
    for (size_t i = ntr; i > 1; i--) { /* Fisher–Yates */
      es = ts__stage_mix64(es);
      size_t j = (size_t)(es % i), x = order[i - 1];
      order[i - 1] = order[j], order[j] = x;
    }
    ts_nn_manual_seed(ts__stage_mix64(es ^ 0xD5));
    double tl = NAN, vl = NAN;
    TS_TRY(train_epoch(&t, order, cw, &tl));
    TS_TRY(evaluate(&t, TS_SET_VAL, &vl, d->risk[TS_SET_VAL], NULL, NULL, NULL));
    double vc = c_index(d, TS_SET_VAL, d->risk[TS_SET_VAL]);
    epochs_run = ep + 1;
    if (!isfinite(vl)) val_undefined = true; /* cox without a validation event: the last epoch is kept */
    bool improved = val_undefined || vl < best_loss;
    if (improved) {
      best_loss = vl, best_epoch = ep, since = 0;
      ts_nn_state_free(&best);
      TS_TRY(ts__stage_state_clone(ts_survnet_state(t.m), &best));
    } else {
      since++;
    }
    fprintf(cf, "%d,", ep + 1);
    ts__stage_jnum(cf, tl, "%.9g");
    fputc(',', cf);
    ts__stage_jnum(cf, vl, "%.9g");
    fputc(',', cf);
    ts__stage_jnum(cf, vc, "%.9g");
    fprintf(cf, ",%d\n", improved ? 1 : 0);
    if (!val_undefined && since >= c->survival.patience && ep + 1 >= c->survival.min_epochs) break;
  }
  fclose(cf);
  cf = NULL;
  if (val_undefined) ts_unit_note(rec, "SURV_VAL_NO_EVENT: fold %d's validation part has no event: no Cox validation loss, the last epoch is kept", d->fold);
  if (best) TS_TRY(ts_nn_state_copy_into(ts_survnet_state(t.m), best, NULL));
  d->epochs_run = epochs_run, d->best_epoch = best_epoch + 1, d->best_val_loss = best_loss;
  /* outputs */
  TS_TRY(ts_run_path(d->run, dir_rel, path, sizeof path));
  TS_TRY(ts_io_mkdirs(path, 0755));
  snprintf(rel, sizeof rel, "%s/model.h5", dir_rel);
  TS_TRY(ts_run_path(d->run, rel, path, sizeof path));
  TS_TRY(ts_nn_state_save_h5(ts_survnet_state(t.m), path, d->model));
  TS_TRY(ts_unit_add_output(rec, rel));
  snprintf(rel, sizeof rel, "%s/curve.csv", dir_rel);
  TS_TRY(ts__stage_write_output(d->run, rel, curve, curve_len, rec));
  for (int k = 0; k < 2; k++) TS_TRY(evaluate(&t, k, NULL, d->risk[k], d->surv[k], NULL, NULL));
  size_t nte = d->n[TS_SET_TEST];
  if (t.path) {
    if (!(att = calloc(nte + 1, sizeof *att)) || !(geo = calloc(nte + 1, sizeof *geo))) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "attention");
  }
  TS_TRY(evaluate(&t, TS_SET_TEST, NULL, d->risk[TS_SET_TEST], d->surv[TS_SET_TEST], att, geo));
  if (t.path) TS_TRY(write_attention(&t, dir_rel, d->risk[TS_SET_TEST], att, geo, rec));
  fprintf(mj, "\"arch\": \"%s\", \"loss\": \"%s\", \"weights\": %lld, \"path_dim\": %lld, \"omic_dim\": %lld, \"epochs_run\": %d, \"best_epoch\": %d, \"best_val_loss\": ", d->model,
          t.nll ? "nll" : "cox", (long long)n_weights, (long long)so.path_dim, (long long)so.omic_dim, epochs_run, best_epoch + 1);
  ts__stage_jnum(mj, best_loss, "%.17g");
  if (t.nll) {
    fprintf(mj, ", \"nll_alpha\": %.17g, \"bin_edges\": [", c->survival.nll_alpha);
    for (int k = 0; k <= K; k++) fprintf(mj, "%s%.17g", k ? ", " : "", d->edges[k]);
    fprintf(mj, "]");
  } else {
    fprintf(mj, ", \"ties\": \"%s\", \"case_weights\": \"%s\", \"event_weight\": %.17g", c->survival.cox_ties, c->survival.cox_weights, c->survival.event_weight);
  }
  fprintf(mj, ", \"batch\": %lld, \"lr\": %.17g, \"weight_decay\": %.17g, \"optimizer\": \"adam (L2 decay, PORPOISE's)\"", (long long)c->survival.batch, c->survival.lr,
          c->survival.weight_decay);
  rec->items = (int64_t)ntr * epochs_run;
out:
  if (cf) fclose(cf);
  free(curve);
  for (size_t i = 0; att && i < d->n[TS_SET_TEST]; i++) free(att[i]);
  for (size_t i = 0; geo && i < d->n[TS_SET_TEST]; i++) pbag_clear(&geo[i]);
  free(att), free(geo);
  for (int k = 0; k < 3; k++) {
    for (size_t i = 0; t.cache[k] && i < d->n[k]; i++) pbag_clear(&t.cache[k][i]);
    free(t.cache[k]);
  }
  ts_nn_state_free(&best);
  ts_optim_free(&t.opt);
  ts_survnet_free(&t.m);
  free(cw), free(ttm), free(tev), free(order);
  malloc_trim(0);
  return rc;
}

void ts__surv_deep_clear(ts__surv_deep *d) {
  for (int k = 0; k < 3; k++) free(d->risk[k]), free(d->surv[k]), d->risk[k] = d->surv[k] = NULL;
}
