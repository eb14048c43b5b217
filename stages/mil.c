/* mil.c — stage "mil": attention-MIL slide classifiers (nn/ts_mil.h: ABMIL, CLAM-SB/MB, TransMIL)
 * trained and evaluated across patient-level folds on the extract stage's features.
 *
 * Plan (rank 0): the cohort's labelled slides with features (a slide whose tile file has no tile
 * is left out, said once), patient-level label-stratified splits with a validation and a test
 * part per fold (stats/ts_classify.h: CLAM's counts, disjoint test sets) — or the user's
 * mil.splits file, checked against the cohort — written to splits/splits.csv BEFORE any training;
 * then one unit per (model, fold): "abmil:fold0", ... so 3 models × 10 folds are 30 independent
 * units over the ranks. A unit's key covers the splits file and the checksums of every feature
 * file it reads: new features redo exactly the folds that read them.
 *
 * Work (any rank): train on the fold's training set (mil.optimizer: Adam with L2 weight decay, as
 * CLAM trains, or AdamW; batch 1; optionally class-balanced draws; bags streamed from their
 * feature files one at a time: memory holds one bag), early stopping on the VALIDATION loss with
 * patience and a minimum epoch count, the best epoch's weights kept; then the best weights
 * evaluate the TEST set only (never the set it stopped on: MCAT#25). Outputs under
 * mil/<model>/fold<k>/: model.h5 (state dict, PyTorch names), curve.csv (per epoch train/val
 * loss and val AUC), predictions.csv (per test slide), attention.h5 (raw, pre-softmax attention
 * of every tile of every test slide, with its coords), metrics.json.
 * Finish (rank 0): mil/summary.csv and mil/summary.json: per model, per-fold test AUC (DeLong
 * CI), accuracy, balanced accuracy, F1, their mean and sd over folds, and the pooled AUC of all
 * test predictions with its DeLong 95% CI.
 *
 * Regression (mil.task: regression; abmil, transmil): the label column is a score; splits are
 * stratified by score quartile; the model learns the score standardised by the training set's
 * mean and sd (MSE), predictions are in the label's units; metrics are MSE, Pearson's and
 * Spearman's r with Fisher-z CIs (stats/ts_classify.h, = R's cor.test), pooled over folds too.
 *
 * Reproducible: the weights come from (run.seed, model, fold), the epoch order and dropout from
 * (run.seed, fold, epoch), LibTorch runs mil.threads threads on the unit's worker thread: the
 * same bytes whichever rank runs a unit, and when a killed unit is redone. */
#include <errno.h>
#include <hdf5.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "h5util.h"
#include "stage_util.h"
#include "ts_classify.h"
#include "ts_error.h"
#include "ts_heatmap.h"
#include "ts_io.h"
#include "ts_mil.h"
#include "ts_slide.h"
#include "ts_tissue.h"
#include "ts_stage.h"
#include "ts_stop.h"

static const char *const needs[] = {"extract", NULL};
static const char *const keys[] = {"cohort.csv", "mil", NULL};
static const char *const known_models[] = {"abmil", "clam_sb", "clam_mb", "transmil", NULL};

#define MAX_MODELS 8

/* "abmil, clam_sb" → names (into buf). */
static int parse_models(const char *list, char buf[512], const char *names[MAX_MODELS], int *n_out) {
  *n_out = 0;
  snprintf(buf, 512, "%s", list ? list : "");
  for (char *save = NULL, *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
    bool known = false;
    for (int k = 0; known_models[k]; k++) known |= !strcmp(known_models[k], t);
    if (!known)
      return ts_error_set(TS_ECONFIG, "CONFIG_RANGE", "mil.models: unknown model '%s' (known: abmil, clam_sb, clam_mb, transmil)", t);
    for (int j = 0; j < *n_out; j++)
      if (!strcmp(names[j], t)) return ts_error_set(TS_ECONFIG, "CONFIG_RANGE", "mil.models: '%s' listed twice", t);
    if (*n_out == MAX_MODELS) return ts_error_set(TS_ECONFIG, "CONFIG_RANGE", "mil.models: at most %d models", MAX_MODELS);
    names[(*n_out)++] = t;
  }
  return 0;
}

static bool is_regression(const ts_config *c) { return c->mil.task && !strcmp(c->mil.task, "regression"); }

static int check(const ts_config *c) {
  char buf[512];
  const char *names[MAX_MODELS];
  int n = 0;
  TS_CALL(parse_models(c->mil.models, buf, names, &n));
  if (!c->mil.task || (strcmp(c->mil.task, "classification") && strcmp(c->mil.task, "regression")))
    return ts_error_set(TS_ECONFIG, "CONFIG_RANGE", "mil.task: '%s' (known: classification, regression)", c->mil.task ? c->mil.task : "");
  if (!c->mil.optimizer || (strcmp(c->mil.optimizer, "adam") && strcmp(c->mil.optimizer, "adamw")))
    return ts_error_set(TS_ECONFIG, "CONFIG_RANGE", "mil.optimizer: '%s' (known: adam, adamw)", c->mil.optimizer ? c->mil.optimizer : "");
  if (is_regression(c)) {
    for (int i = 0; i < n; i++)
      if (!strncmp(names[i], "clam", 4))
        return ts_error_set(TS_ECONFIG, "CONFIG_RANGE",
                            "mil.models: %s classifies (its instance loss needs classes); for mil.task: regression use abmil or transmil", names[i]);
    if (c->mil.balanced) return ts_error_set(TS_ECONFIG, "CONFIG_RANGE", "mil.balanced samples by class: it has no meaning for mil.task: regression");
    if (c->mil.classes) return ts_error_set(TS_ECONFIG, "CONFIG_RANGE", "mil.classes is for classification (mil.task: regression has none)");
  } else if (c->mil.classes == 1) {
    return ts_error_set(TS_ECONFIG, "CONFIG_RANGE", "mil.classes: 1 class is nothing to classify (2 or more, or 0 for the largest label + 1)");
  }
  if (c->mil.val_frac + c->mil.test_frac >= 0.9)
    return ts_error_set(TS_ECONFIG, "CONFIG_RANGE", "mil.val_frac + mil.test_frac (%g) leaves too little to train on", c->mil.val_frac + c->mil.test_frac);
  return 0;
}

static int skip(const ts_run *run, char *why, size_t n) {
  char buf[512];
  const char *names[MAX_MODELS];
  int nm = 0;
  TS_CALL(parse_models(run->cfg->mil.models, buf, names, &nm));
  if (nm == 0) {
    snprintf(why, n, "mil.models is empty (set it, e.g. mil.models: abmil,clam_sb, to train slide classifiers)");
    return 1;
  }
  int labelled = 0;
  for (int i = 0; i < run->cohort->n; i++) labelled += isfinite(run->cohort->rows[i].score);
  if (labelled == 0) {
    snprintf(why, n, "no slide of %s has a label (add a label column: integers 0..C-1, or scores with mil.task: regression)",
             run->cohort->csv_path);
    return 1;
  }
  return 0;
}

static int splits_path(const ts_run *run, char *buf, size_t n) { return ts_run_path(run, "splits/splits.csv", buf, n); }

/* Rows of a feature file's `features` (-1 when unreadable). */
static int64_t bag_rows(const char *path) {
  ts__h5_quiet();
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = -1, sp = -1;
  int64_t n = -1;
  hsize_t dims[2];
  if (f >= 0 && (d = H5Dopen2(f, "features", H5P_DEFAULT)) >= 0 && (sp = H5Dget_space(d)) >= 0 && H5Sget_simple_extent_ndims(sp) == 2 &&
      H5Sget_simple_extent_dims(sp, dims, NULL) >= 0)
    n = (int64_t)dims[0];
  if (sp >= 0) H5Sclose(sp);
  if (d >= 0) H5Dclose(d);
  if (f >= 0) H5Fclose(f);
  return n;
}

/* ---- plan ---- */
static int plan(const ts_run *run, ts_units *units) {
  const ts_config *c = run->cfg;
  char mbuf[512];
  const char *models[MAX_MODELS];
  int n_models = 0, rc = 0;
  TS_CALL(parse_models(c->mil.models, mbuf, models, &n_models));
  int n = run->cohort->n;
  ts_split_slide *sl = calloc((size_t)(n ? n : 1), sizeof *sl);
  char **sums = calloc((size_t)(n ? n : 1), sizeof *sums);
  ts_splits *sp = NULL;
  char *key = NULL;
  size_t n_sl = 0;
  if (!sl || !sums) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "mil plan");
  int no_feat = 0, no_tiles = 0;
  char left_out[512] = "";
  size_t lo = 0;
  bool regression = is_regression(c);
  for (int i = 0; i < n; i++) { /* labels first: a bad one stops the run before anything trains */
    const ts_cohort_row *r = &run->cohort->rows[i];
    if (regression || !isfinite(r->score)) continue;
    if (r->label < 0)
      TS_FAIL(TS_ECONFIG, "MIL_BAD_LABEL", "%s:%d: slide %s: label %.17g is not a class 0..C-1 (a score? set mil.task: regression)",
              run->cohort->csv_path, r->line, r->slide_id, r->score);
    if (r->label >= 1000)
      TS_FAIL(TS_ECONFIG, "MIL_BAD_LABEL", "%s:%d: slide %s: label %d: at most 1000 classes (0..999)", run->cohort->csv_path, r->line, r->slide_id,
              r->label);
    if (c->mil.classes > 0 && r->label >= c->mil.classes)
      TS_FAIL(TS_ECONFIG, "MIL_BAD_LABEL", "%s:%d: slide %s: label %d is outside 0..%lld (mil.classes: %lld)", run->cohort->csv_path, r->line,
              r->slide_id, r->label, (long long)c->mil.classes - 1, (long long)c->mil.classes);
  }
  for (int i = 0; i < n; i++) {
    const ts_cohort_row *r = &run->cohort->rows[i];
    if (!isfinite(r->score) || !ts_id_is_safe(r->slide_id)) continue;
    char rel[1024], sum[80];
    int64_t tiles = 0;
    if (c->mil.features && c->mil.features[0]) { /* the user's own feature files */
      char p2[TS_PATH_MAX];
      struct stat st;
      snprintf(rel, sizeof rel, "%s.h5", r->slide_id);
      TS_TRY(ts_io_join(c->mil.features, rel, p2, sizeof p2));
      if (stat(p2, &st) < 0) {
        no_feat++;
        continue;
      }
      snprintf(sum, sizeof sum, "size=%lld,mtime_ns=%lld", (long long)st.st_size,
               (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec);
      tiles = bag_rows(p2);
      if (tiles < 0) {
        fprintf(stderr, "mil: slide %s: %s has no readable N x D 'features': left out\n", r->slide_id, p2);
        no_feat++;
        continue;
      }
    } else {
      TS_TRY(ts_run_unit_output(run, "extract", r->slide_id, rel, sizeof rel, sum));
      if (!rel[0]) {
        no_feat++;
        if (lo < sizeof left_out - 80) lo += (size_t)snprintf(left_out + lo, sizeof left_out - lo, "%s%s", lo ? ", " : "", r->slide_id);
        continue;
      }
      TS_TRY(ts_run_unit_items(run, "tile", r->slide_id, &tiles));
    }
    if (tiles == 0) { /* a blank slide has an empty bag: nothing to learn from or predict */
      no_tiles++;
      if (lo < sizeof left_out - 80) lo += (size_t)snprintf(left_out + lo, sizeof left_out - lo, "%s%s", lo ? ", " : "", r->slide_id);
      continue;
    }
    sl[n_sl].slide_id = r->slide_id;
    sl[n_sl].patient_id = r->patient_id;
    sl[n_sl].label = regression ? r->score : (double)r->label;
    sums[n_sl] = strdup(sum);
    if (!sums[n_sl]) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "mil plan");
    n_sl++;
  }
  if (no_feat || no_tiles)
    fprintf(stderr, "mil: %d labelled slide(s) left out: %d without features (%s), %d with no tile (blank)\n", no_feat + no_tiles, no_feat,
            c->mil.features && c->mil.features[0] ? "no readable <slide>.h5 in mil.features" : "see the extract stage", no_tiles);
  if (lo) fprintf(stderr, "mil: left out: %s%s\n", left_out, lo >= sizeof left_out - 80 ? ", ..." : "");
  char path[TS_PATH_MAX];
  TS_TRY(splits_path(run, path, sizeof path));
  if (c->mil.splits && c->mil.splits[0]) {
    if (ts_splits_read_csv(c->mil.splits, &sp) < 0) TS_FAIL(TS_ECONFIG, ts_error_token(), "mil.splits: %s", ts_error_detail());
    for (size_t i = 0; i < sp->nrow; i++) { /* every slide it names must be one we can train on */
      bool found = false;
      for (size_t j = 0; j < n_sl && !found; j++) found = !strcmp(sl[j].slide_id, sp->rows[i].slide_id);
      if (!found)
        TS_FAIL(TS_ECONFIG, "MIL_SPLITS_UNKNOWN_SLIDE", "%s:%zu: slide '%s' is not a labelled slide of the cohort with features", c->mil.splits,
                sp->rows[i].line, sp->rows[i].slide_id);
    }
  } else {
    if (n_sl == 0) TS_FAIL(TS_EINPUT, "MIL_NO_SLIDES", "no labelled slide has features: nothing to train on");
    ts_split_options o;
    ts_split_options_default(&o);
    o.folds = (int)c->mil.folds;
    o.val_frac = c->mil.val_frac;
    o.test_frac = c->mil.test_frac;
    o.seed = (uint64_t)c->run.seed;
    o.task = regression ? TS_SPLIT_REGRESSION : TS_SPLIT_CLASSIFY;
    o.nclass = regression ? 0 : (int)c->mil.classes;
    if (ts_splits_make(sl, n_sl, &o, &sp) < 0) { /* a class too small for the folds: stop before training */
      bool small = !strcmp(ts_error_token(), "SPLIT_CLASS_TOO_SMALL");
      rc = ts_error_set(TS_ECONFIG, ts_error_token(), "%s%s", ts_error_detail(), small ? " (lower mil.folds or mil.test_frac, or add patients)" : "");
      goto out;
    }
  }
  char dir[TS_PATH_MAX];
  TS_TRY(ts_run_path(run, "splits", dir, sizeof dir));
  TS_TRY(ts_io_mkdirs(dir, 0755));
  TS_TRY(ts_splits_write_csv(sp, path)); /* written before any training: readable, reusable, checkable */
  char ssum[65];
  int64_t sbytes = 0;
  TS_TRY(ts_io_sha256_file(path, ssum, &sbytes));
  size_t klen = 128 + n_sl * 200, k = 0;
  if (!(key = malloc(klen))) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "mil plan");
  k += (size_t)snprintf(key, klen, "splits=%s\n", ssum);
  for (size_t i = 0; i < n_sl; i++) k += (size_t)snprintf(key + k, klen - k, "%s=%s\n", sl[i].slide_id, sums[i]);
  for (int m = 0; m < n_models; m++)
    for (int f = 0; f < sp->folds; f++) {
      char id[128];
      snprintf(id, sizeof id, "%s:fold%d", models[m], f);
      TS_TRY(ts_units_add_keyed(units, id, key));
    }
out:
  for (size_t i = 0; sums && i < n_sl; i++) free(sums[i]);
  free(sums);
  free(sl);
  free(key);
  ts_splits_free(&sp);
  return rc;
}

/* ---- bags: stages/stage_util.c (ts__stage_read_bag, shared with the survival stage) ---- */

typedef ts__stage_bag bag;

static int read_bag(const ts_run *run, const char *slide, bag *b) {
  return ts__stage_read_bag(run, run->cfg->mil.features, slide, "MIL", b);
}

/* ---- work ---- */

typedef struct fold_set {
  const ts_split_row **rows;
  size_t n;
} fold_set;

typedef struct eval_out {
  double loss;      /* mean bag cross-entropy (regression: mean squared error) */
  double *prob;     /* n x C (regression: n predictions, C = 1) */
  int *y;           /* classes (classification) */
  double *target;   /* the labels as numbers (regression scores) */
  size_t n;
} eval_out;

static void eval_clear(eval_out *e) {
  free(e->prob);
  free(e->y);
  free(e->target);
  memset(e, 0, sizeof *e);
}

/* Binary: AUC of P(class 1); multiclass: one-vs-rest macro AUC; regression (C = 1): Pearson's r
 * of predictions and scores; NaN when undefined. */
static double auc_of(const eval_out *e, int C) {
  if (e->n < 2) return NAN;
  if (C == 1) {
    ts_corr r;
    double v = e->n >= 3 && ts_corr_pearson(e->prob, e->target, e->n, 0.95, &r) >= 0 ? r.r : NAN;
    ts_error_clear();
    return v;
  }
  if (C == 2) {
    double *s = malloc(sizeof *s * e->n);
    if (!s) return NAN;
    for (size_t i = 0; i < e->n; i++) s[i] = e->prob[i * 2 + 1];
    ts_auc a;
    double v = ts_auc_delong(e->y, s, e->n, 0.95, &a) < 0 ? NAN : a.auc;
    free(s);
    ts_error_clear();
    return v;
  }
  double macro = NAN, *per = malloc(sizeof *per * (size_t)C);
  if (per && ts_auc_ovr(e->y, e->prob, e->n, C, per, &macro) < 0) macro = NAN;
  free(per);
  ts_error_clear();
  return macro;
}

typedef struct trainer {
  const ts_run *run;
  const char *arch;
  int fold, C;
  int64_t dim;
  ts_mil *m;
  ts_optim *opt;
  const char *unit;
  double y_mean, y_sd; /* regression: the model learns (y - y_mean) / y_sd (training set's) */
} trainer;

static int bag_tensor(const bag *b, ts_tensor **out) {
  int64_t shape[2] = {b->n, b->d};
  return ts_tensor_from_data(b->x, TS_NN_F32, shape, 2, out);
}

/* Width check: every bag must be as wide as the first. */
static int check_width(const trainer *t, const char *slide, const bag *b) {
  if (b->d != t->dim)
    return ts_error_set(TS_EINPUT, "MIL_WIDTH", "slide %s: features are %lld wide, the fold's other slides %lld (mixed encoders?)", slide,
                        (long long)b->d, (long long)t->dim);
  return 0;
}

static int train_epoch(trainer *t, const fold_set *tr, const size_t *order, double *loss_out) {
  double sum = 0;
  int rc = 0;
  for (size_t i = 0; i < tr->n && rc >= 0; i++) {
    const ts_split_row *r = tr->rows[order[i]];
    bag b;
    ts_tensor *x = NULL, *loss = NULL;
    ts_mil_out o;
    memset(&o, 0, sizeof o);
    if (ts_stop_requested()) return ts_stop_error(t->unit);
    int64_t label = (int64_t)r->label; /* regression: no class, the score is the target */
    TS_CALL(read_bag(t->run, r->slide_id, &b));
    double v = 0;
    if ((rc = check_width(t, r->slide_id, &b)) >= 0 && (rc = bag_tensor(&b, &x)) >= 0 &&
        (rc = ts_mil_forward(t->m, x, true, t->C == 1 ? NULL : &label, &o)) >= 0 && (rc = ts_mil_loss(t->m, &o, t->C == 1 ? (r->label - t->y_mean) / t->y_sd : r->label, &loss)) >= 0 && (rc = ts_optim_zero_grad(t->opt)) >= 0 &&
        (rc = ts_tensor_backward(loss)) >= 0 && (rc = ts_optim_step(t->opt)) >= 0 && (rc = ts_tensor_item(loss, &v)) >= 0)
      sum += v;
    ts_mil_out_free(&o);
    ts_tensor_free(&loss);
    ts_tensor_free(&x);
    ts__stage_bag_clear(&b);
  }
  *loss_out = tr->n ? sum / (double)tr->n : NAN;
  return rc;
}

/* Evaluation of a set: mean bag cross-entropy (the loss early stopping watches), class
 * probabilities; attention and coords of every bag when att is not NULL (written per slide). */
typedef int (*att_sink)(void *ctx, const ts_split_row *r, const bag *b, const float *att, int heads, const double *prob, int C);

static int evaluate(trainer *t, const fold_set *s, eval_out *e, att_sink sink, void *ctx) {
  memset(e, 0, sizeof *e);
  e->n = s->n;
  e->prob = calloc(s->n * (size_t)t->C + 1, sizeof *e->prob);
  e->y = calloc(s->n + 1, sizeof *e->y);
  e->target = calloc(s->n + 1, sizeof *e->target);
  if (!e->prob || !e->y || !e->target) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "evaluation");
  ts_nn_guard *g = NULL;
  TS_CALL(ts_nn_no_grad_begin(&g));
  int rc = 0;
  double sum = 0;
  for (size_t i = 0; i < s->n && rc >= 0; i++) {
    const ts_split_row *r = s->rows[i];
    bag b;
    ts_tensor *x = NULL, *ce = NULL, *p = NULL, *tgt = NULL;
    ts_mil_out o;
    memset(&o, 0, sizeof o);
    float *att = NULL;
    int64_t label = (int64_t)r->label, one = 1;
    e->y[i] = t->C == 1 ? 0 : (int)label;
    e->target[i] = r->label;
    if ((rc = read_bag(t->run, r->slide_id, &b)) < 0) break;
    if (t->C == 1) { /* regression: the output is the prediction; the loss its squared error */
      if ((rc = check_width(t, r->slide_id, &b)) >= 0 && (rc = bag_tensor(&b, &x)) >= 0 && (rc = ts_mil_forward(t->m, x, false, NULL, &o)) >= 0 &&
          (rc = ts_tensor_copy_to(o.logits, e->prob + i, sizeof(double), TS_NN_F64)) >= 0) {
        double z = (r->label - t->y_mean) / t->y_sd; /* the loss in the units trained on; the prediction in the label's */
        sum += (e->prob[i] - z) * (e->prob[i] - z);
        e->prob[i] = e->prob[i] * t->y_sd + t->y_mean;
      }
    } else if ((rc = check_width(t, r->slide_id, &b)) >= 0 && (rc = bag_tensor(&b, &x)) >= 0 && (rc = ts_mil_forward(t->m, x, false, NULL, &o)) >= 0 &&
               (rc = ts_tensor_from_data(&label, TS_NN_I64, &one, 1, &tgt)) >= 0 && (rc = ts_nn_cross_entropy(o.logits, tgt, &ce)) >= 0 &&
               (rc = ts_nn_softmax(o.logits, 1, &p)) >= 0) {
      double v = 0;
      rc = ts_tensor_item(ce, &v);
      sum += v;
      if (rc >= 0) rc = ts_tensor_copy_to(p, e->prob + i * (size_t)t->C, sizeof(double) * (size_t)t->C, TS_NN_F64);
    }
    if (rc >= 0 && o.a_raw) {
      if (rc >= 0 && sink) {
        int heads = ts_mil_attention_heads(t->m);
        att = malloc(sizeof *att * (size_t)(heads * b.n));
        if (!att) rc = ts_error_set(TS_ENOMEM, "NO_MEMORY", "attention");
        if (rc >= 0) rc = ts_tensor_copy_to(o.a_raw, att, sizeof *att * (size_t)(heads * b.n), TS_NN_F32);
        if (rc >= 0) rc = sink(ctx, r, &b, att, heads, e->prob + i * (size_t)t->C, t->C);
      }
    }
    free(att);
    ts_mil_out_free(&o);
    ts_tensor_free(&ce);
    ts_tensor_free(&p);
    ts_tensor_free(&tgt);
    ts_tensor_free(&x);
    ts__stage_bag_clear(&b);
  }
  ts_nn_guard_end(&g);
  e->loss = s->n ? sum / (double)s->n : NAN;
  return rc;
}

/* A copy of the model's weights (the best epoch's). */
static int snapshot(const ts_mil *m, ts_nn_state **out) { return ts__stage_state_clone(ts_mil_state(m), out); }

typedef struct att_writer {
  hid_t f;
  const ts_run *run;
  const char *dir_rel;  /* mil/<model>/fold<k> */
  FILE *manifest;       /* heatmaps/<slide>.png and .top.png with their SHA-256 */
  int n_maps, n_no_slide;
} att_writer;

/* The heatmap of one test slide: the attention of its predicted class's branch (CLAM-MB has one
 * per class); ts__stage_heatmap draws it (or lists it as missing in the manifest). */
static int draw_heatmap(att_writer *w, const ts_split_row *r, const bag *b, const float *att, int heads, const double *prob, int C) {
  int head = 0;
  if (heads > 1)
    for (int k = 1; k < C && k < heads; k++)
      if (prob[k] > prob[head]) head = k;
  return ts__stage_heatmap(w->run, w->dir_rel, r->slide_id, b->xy, b->n, b->tile_l0, att + (size_t)head * (size_t)b->n, w->manifest,
                           &w->n_maps, &w->n_no_slide);
}

static int write_att(void *ctx, const ts_split_row *r, const bag *b, const float *att, int heads, const double *prob, int C) {
  att_writer *w = ctx;
  hid_t g = H5Gcreate2(w->f, r->slide_id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), sp = -1, d = -1, dc = -1;
  int rc = 0;
  hsize_t ad[2] = {(hsize_t)heads, (hsize_t)b->n}, cd[2] = {(hsize_t)b->n, 2};
  if (g < 0 || (dc = ts__h5_dcpl(0, 0, 0, 0)) < 0 || (sp = H5Screate_simple(2, ad, NULL)) < 0 ||
      (d = H5Dcreate2(g, "attention", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dc, H5P_DEFAULT)) < 0 ||
      H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, att) < 0)
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "attention of %s", r->slide_id);
  if (d >= 0) H5Dclose(d);
  if (sp >= 0) H5Sclose(sp);
  d = sp = -1;
  if (rc == 0 && ((sp = H5Screate_simple(2, cd, NULL)) < 0 || (d = H5Dcreate2(g, "coords", H5T_STD_I64LE, sp, H5P_DEFAULT, dc, H5P_DEFAULT)) < 0 ||
                  H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, b->xy) < 0))
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "coords of %s", r->slide_id);
  if (rc == 0) rc = is_regression(w->run->cfg) ? ts__h5_attr_f64(g, "label", r->label) : ts__h5_attr_i64(g, "label", (int64_t)r->label);
  if (d >= 0) H5Dclose(d);
  if (sp >= 0) H5Sclose(sp);
  d = sp = -1;
  float *pct = rc == 0 ? malloc(sizeof *pct * (size_t)(heads * b->n)) : NULL; /* the heatmap's values, for users who draw their own */
  if (rc == 0 && !pct) rc = ts_error_set(TS_ENOMEM, "NO_MEMORY", "percentiles");
  for (int h = 0; rc == 0 && h < heads; h++) rc = ts_heatmap_percentiles(att + (size_t)h * (size_t)b->n, b->n, pct + (size_t)h * (size_t)b->n);
  if (rc == 0 && ((sp = H5Screate_simple(2, ad, NULL)) < 0 || (d = H5Dcreate2(g, "percentile", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dc, H5P_DEFAULT)) < 0 ||
                  H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, pct) < 0))
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "percentiles of %s", r->slide_id);
  free(pct);
  if (d >= 0) H5Dclose(d);
  if (sp >= 0) H5Sclose(sp);
  if (dc >= 0) H5Pclose(dc);
  if (g >= 0) H5Gclose(g);
  if (rc == 0 && w->manifest) rc = draw_heatmap(w, r, b, att, heads, prob, C);
  /* glibc keeps what this slide's HDF5 writes and tensors freed in the worker thread's arena, and
   * without a trim the test pass grows by ~1 bag per test slide (bench/bench_mil_rss.sh: 873 MiB
   * at 10 test slides, 4980 MiB at 100): give it back, so memory stays bounded by one bag. */
  malloc_trim(0);
  return rc;
}

/* Regression's test outputs: predictions.csv (slide_id,patient_id,label,pred) and metrics.json
 * (MSE, Pearson and Spearman r with Fisher-z 95% CIs: stats/ts_classify.h, = R's cor.test). */
static int write_regression(const ts_run *run, const char *arch, int fold, const fold_set *ts, const eval_out *e, const size_t nset[2], int epochs_run,
                            int best_epoch, double best_loss, double y_mean, double y_sd, ts_unit_record *rec) {
  char rel[512], *csv = NULL, *js = NULL;
  size_t cl = 0, jl = 0;
  FILE *mem = open_memstream(&csv, &cl);
  if (!mem) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "predictions");
  fprintf(mem, "slide_id,patient_id,label,pred\n");
  double mse = 0;
  for (size_t i = 0; i < e->n; i++) {
    char lab[40]; /* the label as the cohort wrote it: the shortest form that reads back the same */
    snprintf(lab, sizeof lab, "%.15g", e->target[i]);
    if (strtod(lab, NULL) != e->target[i]) snprintf(lab, sizeof lab, "%.17g", e->target[i]);
    fprintf(mem, "%s,%s,%s,%.9g\n", ts->rows[i]->slide_id, ts->rows[i]->patient_id, lab, e->prob[i]);
    mse += (e->prob[i] - e->target[i]) * (e->prob[i] - e->target[i]);
  }
  fclose(mem);
  mse = e->n ? mse / (double)e->n : NAN;
  snprintf(rel, sizeof rel, "mil/%s/fold%d/predictions.csv", arch, fold);
  int rc = ts__stage_write_output(run, rel, csv, strlen(csv), rec);
  free(csv);
  if (rc < 0) return rc;
  ts_corr pr, sr;
  for (int k = 0; k < 2; k++) { /* undefined (n < 3, a constant prediction): NaN, written null */
    ts_corr *o = k ? &sr : &pr;
    if ((k ? ts_corr_spearman : ts_corr_pearson)(e->prob, e->target, e->n, 0.95, o) < 0) o->r = o->lower = o->upper = o->p_value = NAN;
    ts_error_clear();
  }
  FILE *fj = open_memstream(&js, &jl);
  if (!fj) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "metrics");
  fprintf(fj, "{\"model\": \"%s\", \"fold\": %d, \"task\": \"regression\", \"n_train\": %zu, \"n_val\": %zu, \"n_test\": %zu,\n"
              " \"epochs_run\": %d, \"best_epoch\": %d, \"best_val_loss\": ",
          arch, fold, nset[0], nset[1], e->n, epochs_run, best_epoch + 1);
  ts__stage_jnum(fj, best_loss, "%.9g");
  fprintf(fj, ",\n \"target_mean\": %.17g, \"target_sd\": %.17g, \"test_mse\": ", y_mean, y_sd);
  ts__stage_jnum(fj, mse, "%.9g");
  for (int k = 0; k < 2; k++) {
    const ts_corr *o = k ? &sr : &pr;
    const char *nm = k ? "spearman" : "pearson";
    fprintf(fj, ", \"test_%s\": ", nm);
    ts__stage_jnum(fj, o->r, "%.9g");
    fprintf(fj, ", \"test_%s_ci95\": [", nm);
    ts__stage_jnum(fj, o->lower, "%.9g");
    fprintf(fj, ", ");
    ts__stage_jnum(fj, o->upper, "%.9g");
    fprintf(fj, "], \"test_%s_p\": ", nm);
    ts__stage_jnum(fj, o->p_value, "%.9g");
  }
  fprintf(fj, "}\n");
  fclose(fj);
  snprintf(rel, sizeof rel, "mil/%s/fold%d/metrics.json", arch, fold);
  rc = ts__stage_write_output(run, rel, js, jl, rec);
  free(js);
  return rc;
}

static void fold_sets(const ts_splits *sp, int fold, fold_set sets[3]) {
  for (int s = 0; s < 3; s++) sets[s].n = 0;
  for (size_t i = 0; i < sp->nrow; i++)
    if (sp->rows[i].fold == fold) sets[sp->rows[i].set].rows[sets[sp->rows[i].set].n++] = &sp->rows[i];
}

static int work(const ts_run *run, const ts_unit *u, ts_unit_record *rec) {
  const ts_config *c = run->cfg;
  char arch[64];
  int fold = -1;
  const char *colon = strchr(u->id, ':');
  if (!colon || sscanf(colon + 1, "fold%d", &fold) != 1 || colon - u->id >= (long)sizeof arch)
    return ts_error_set(TS_EINTERNAL, "UNIT_UNKNOWN", "mil unit '%s' is not MODEL:foldK", u->id);
  snprintf(arch, sizeof arch, "%.*s", (int)(colon - u->id), u->id);
  int rc = 0;
  ts_splits *sp = NULL;
  fold_set sets[3];
  memset(sets, 0, sizeof sets);
  trainer t = {.run = run, .arch = arch, .fold = fold, .unit = u->id};
  ts_nn_state *best = NULL;
  eval_out val, test;
  memset(&val, 0, sizeof val);
  memset(&test, 0, sizeof test);
  size_t *order = NULL;
  char *csv = NULL;
  size_t csv_cap = 0;
  FILE *mem = NULL;
  att_writer aw = {.f = -1};
  char path[TS_PATH_MAX], dir[TS_PATH_MAX], rel[512], tmp[TS_PATH_MAX];
  TS_TRY(splits_path(run, path, sizeof path));
  TS_TRY(ts_splits_read_csv(path, &sp));
  for (int s = 0; s < 3; s++)
    if (!(sets[s].rows = calloc(sp->nrow + 1, sizeof *sets[s].rows))) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "folds");
  fold_sets(sp, fold, sets);
  if (!sets[TS_SET_TRAIN].n || !sets[TS_SET_VAL].n || !sets[TS_SET_TEST].n)
    TS_FAIL(TS_EINPUT, "MIL_FOLD_EMPTY", "%s: fold %d lacks a train, validation or test part", path, fold);
  bool regression = is_regression(c);
  int C = c->mil.classes > 0 ? (int)c->mil.classes : 2; /* regression: one output */
  for (size_t i = 0; !regression && !c->mil.classes && i < sp->nrow; i++)
    if ((int)sp->rows[i].label + 1 > C) C = (int)sp->rows[i].label + 1;
  for (size_t i = 0; !regression && i < sp->nrow; i++) /* a user's splits file may hold anything */
    if (sp->rows[i].label < 0 || sp->rows[i].label >= C || sp->rows[i].label != floor(sp->rows[i].label))
      TS_FAIL(TS_EINPUT, "MIL_BAD_LABEL", "%s:%zu: slide %s: label %.17g is not a class 0..%d", path, sp->rows[i].line, sp->rows[i].slide_id,
              sp->rows[i].label, C - 1);
  if (regression) { /* standardised targets: the training set's mean and sd (1 when constant) */
    C = 1;
    double s1 = 0, s2 = 0;
    size_t nt = 0;
    for (size_t i = 0; i < sp->nrow; i++)
      if (sp->rows[i].fold == fold && sp->rows[i].set == TS_SET_TRAIN) s1 += sp->rows[i].label, nt++;
    t.y_mean = nt ? s1 / (double)nt : 0;
    for (size_t i = 0; i < sp->nrow; i++)
      if (sp->rows[i].fold == fold && sp->rows[i].set == TS_SET_TRAIN) s2 += (sp->rows[i].label - t.y_mean) * (sp->rows[i].label - t.y_mean);
    t.y_sd = nt > 1 && s2 > 0 ? sqrt(s2 / (double)(nt - 1)) : 1.0;
  }
  t.C = C;
  { /* width from the first training bag */
    bag b;
    TS_TRY(read_bag(run, sets[TS_SET_TRAIN].rows[0]->slide_id, &b));
    t.dim = b.d;
    ts__stage_bag_clear(&b);
  }
  ts_nn_set_num_threads((int)c->mil.threads);
  ts_nn_set_deterministic(true);
  ts_nn_tune_malloc(); /* glibc keeps the activations' memory instead of faulting it in each bag */
  uint64_t useed = ts__stage_mix64((uint64_t)c->run.seed ^ ts__stage_mix64(ts__stage_str_hash(arch)) ^ ts__stage_mix64((uint64_t)fold + 1));
  ts_mil_opts mo;
  ts_mil_opts_default(&mo);
  mo.in_dim = t.dim;
  mo.n_classes = C;
  mo.dropout = c->mil.dropout;
  mo.seed = useed;
  mo.k_sample = (int)c->mil.k_sample;
  TS_TRY(ts_mil_new(arch, &mo, &t.m));
  const ts_tensor *const *params = NULL;
  int np = 0;
  TS_TRY(ts_mil_params(t.m, &params, &np));
  if (!strcmp(c->mil.optimizer, "adamw")) TS_TRY(ts_optim_adamw_new(params, np, c->mil.lr, 0.9, 0.999, 1e-8, c->mil.weight_decay, &t.opt));
  else TS_TRY(ts_optim_adam_new(params, np, c->mil.lr, 0.9, 0.999, 1e-8, c->mil.weight_decay, &t.opt)); /* CLAM's optim.Adam */

  /* class weights for balanced sampling (CLAM's make_weights_for_balanced_classes_split) */
  const fold_set *tr = &sets[TS_SET_TRAIN];
  order = malloc(sizeof *order * (tr->n + 1));
  double *cls_w = calloc((size_t)C, sizeof *cls_w);
  int64_t draws[1001] = {0}; /* training bags drawn per class, all epochs (mil.classes <= 1000) */
  if (!order || !cls_w) {
    free(cls_w);
    TS_FAIL(TS_ENOMEM, "NO_MEMORY", "mil");
  }
  for (size_t i = 0; !regression && i < tr->n; i++) cls_w[(int)tr->rows[i]->label] += 1;
  mem = open_memstream(&csv, &csv_cap);
  if (!mem) {
    free(cls_w);
    TS_FAIL(TS_ENOMEM, "NO_MEMORY", "curve");
  }
  fprintf(mem, regression ? "epoch,train_loss,val_loss,val_pearson,best\n" : "epoch,train_loss,val_loss,val_auc,best\n");
  double best_loss = INFINITY;
  int best_epoch = -1, since = 0, epochs_run = 0;
  for (int ep = 0; ep < c->mil.epochs; ep++) {
    uint64_t es = ts__stage_mix64(useed ^ ts__stage_mix64((uint64_t)ep + 0x5151));
    if (c->mil.balanced) { /* draw N bags with replacement, P(bag) ∝ 1 / count(class) */
      double tot = 0;
      for (size_t i = 0; i < tr->n; i++) tot += 1.0 / cls_w[(int)tr->rows[i]->label];
      for (size_t i = 0; i < tr->n; i++) {
        es = ts__stage_mix64(es);
        double x = (double)(es >> 11) / 9007199254740992.0 * tot, acc = 0;
        size_t j = 0;
        for (; j + 1 < tr->n; j++) {
          acc += 1.0 / cls_w[(int)tr->rows[j]->label];
          if (x < acc) break;
        }
        order[i] = j;
      }
    } else { /* a shuffle (Fisher–Yates) */
      for (size_t i = 0; i < tr->n; i++) order[i] = i;
      for (size_t i = tr->n; i > 1; i--) {
        es = ts__stage_mix64(es);
        size_t j = (size_t)(es % i);
        size_t tmpi = order[i - 1];
        order[i - 1] = order[j];
        order[j] = tmpi;
      }
    }
    for (size_t i = 0; !regression && i < tr->n; i++) draws[(int)tr->rows[order[i]]->label]++;
    ts_nn_manual_seed(ts__stage_mix64(es ^ 0xD5));
    double tl = 0;
    if ((rc = train_epoch(&t, tr, order, &tl)) < 0) {
      free(cls_w);
      goto out;
    }
    eval_clear(&val);
    if ((rc = evaluate(&t, &sets[TS_SET_VAL], &val, NULL, NULL)) < 0) {
      free(cls_w);
      goto out;
    }
    double vauc = auc_of(&val, C);
    epochs_run = ep + 1;
    bool improved = val.loss < best_loss;
    if (improved) { /* the best checkpoint (by validation loss) is the one evaluated */
      best_loss = val.loss;
      best_epoch = ep;
      since = 0;
      ts_nn_state_free(&best);
      if ((rc = snapshot(t.m, &best)) < 0) {
        free(cls_w);
        goto out;
      }
    } else {
      since++;
    }
    fprintf(mem, "%d,%.9g,%.9g,%.9g,%d\n", ep + 1, tl, val.loss, vauc, improved ? 1 : 0);
    if (since >= c->mil.patience && ep + 1 >= c->mil.min_epochs) break; /* early stop (CLAM: patience, stop_epoch) */
  }
  free(cls_w);
  fclose(mem);
  mem = NULL;
  if (best) {
    int unused = 0;
    TS_TRY(ts_nn_state_copy_into(ts_mil_state(t.m), best, &unused));
  }

  /* outputs */
  snprintf(rel, sizeof rel, "mil/%s/fold%d", arch, fold);
  TS_TRY(ts_run_path(run, rel, dir, sizeof dir));
  TS_TRY(ts_io_mkdirs(dir, 0755));
  snprintf(rel, sizeof rel, "mil/%s/fold%d/model.h5", arch, fold);
  TS_TRY(ts_run_path(run, rel, path, sizeof path));
  TS_TRY(ts_nn_state_save_h5(ts_mil_state(t.m), path, arch));
  TS_TRY(ts_unit_add_output(rec, rel));
  snprintf(rel, sizeof rel, "mil/%s/fold%d/curve.csv", arch, fold);
  TS_TRY(ts__stage_write_output(run, rel, csv, strlen(csv), rec));
  /* test set, with the attention of every tile of every test slide */
  snprintf(rel, sizeof rel, "mil/%s/fold%d/attention.h5", arch, fold);
  TS_TRY(ts_run_path(run, rel, path, sizeof path));
  TS_TRY(ts_io_tmp_path(path, tmp, sizeof tmp));
  if ((aw.f = ts__h5_create(tmp)) < 0) TS_FAIL(TS_EIO, "H5_WRITE", "cannot create %s", tmp);
  char dir_rel[256], *man = NULL;
  size_t man_len = 0;
  snprintf(dir_rel, sizeof dir_rel, "mil/%s/fold%d", arch, fold);
  aw.run = run;
  aw.dir_rel = dir_rel;
  if (!(aw.manifest = open_memstream(&man, &man_len))) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "heatmap manifest");
  TS_TRY(ts__h5_attr_str(aw.f, "model", arch));
  TS_TRY(ts__h5_attr_i64(aw.f, "fold", fold));
  TS_TRY(ts__h5_attr_str(aw.f, "attention", "raw (pre-softmax) attention score of every tile, heads x N, as CLAM's heatmaps use"));
  rc = evaluate(&t, &sets[TS_SET_TEST], &test, write_att, &aw);
  fclose(aw.manifest);
  aw.manifest = NULL;
  if (rc >= 0) { /* the heatmaps, through their checksums: one recorded output for them all */
    snprintf(rel, sizeof rel, "mil/%s/fold%d/heatmaps.sha256", arch, fold);
    rc = ts__stage_write_output(run, rel, man, strlen(man), rec);
  }
  free(man);
  if (rc < 0) goto out;
  if (aw.n_no_slide) ts_unit_note(rec, "MIL_NO_HEATMAP: %d test slide(s) without a heatmap (slide file or tile geometry not at hand)", aw.n_no_slide);
  if (H5Fclose(aw.f) < 0) {
    aw.f = -1;
    TS_FAIL(TS_EIO, "H5_WRITE", "closing %s", tmp);
  }
  aw.f = -1;
  TS_TRY(ts_io_commit(tmp, path));
  TS_TRY(ts_unit_add_output(rec, rel));
  /* predictions and metrics */
  free(csv);
  csv = NULL;
  if (regression) {
    const size_t nset[2] = {tr->n, sets[TS_SET_VAL].n};
    if ((rc = write_regression(run, arch, fold, &sets[TS_SET_TEST], &test, nset, epochs_run, best_epoch, best_loss, t.y_mean, t.y_sd, rec)) >= 0)
      rec->items = (int64_t)tr->n * epochs_run;
    goto out;
  }
  if (!(mem = open_memstream(&csv, &csv_cap))) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "predictions");
  fprintf(mem, "slide_id,patient_id,label");
  for (int k = 0; k < C; k++) fprintf(mem, ",prob_%d", k);
  fprintf(mem, ",pred\n");
  int *pred = malloc(sizeof *pred * (test.n + 1));
  if (!pred) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "predictions");
  ts_class_argmax(test.prob, test.n, C, pred);
  for (size_t i = 0; i < test.n; i++) {
    const ts_split_row *r = sets[TS_SET_TEST].rows[i];
    fprintf(mem, "%s,%s,%d", r->slide_id, r->patient_id, test.y[i]);
    for (int k = 0; k < C; k++) fprintf(mem, ",%.9g", test.prob[i * (size_t)C + (size_t)k]);
    fprintf(mem, ",%d\n", pred[i]);
  }
  fclose(mem);
  mem = NULL;
  snprintf(rel, sizeof rel, "mil/%s/fold%d/predictions.csv", arch, fold);
  rc = ts__stage_write_output(run, rel, csv, strlen(csv), rec);
  ts_class_metrics cm;
  memset(&cm, 0, sizeof cm);
  if (rc >= 0) rc = ts_class_metrics_compute(test.y, pred, test.n, C, &cm, NULL);
  free(pred);
  if (rc < 0) goto out;
  double tauc = auc_of(&test, C);
  char *js = NULL;
  size_t js_len = 0;
  FILE *fj = open_memstream(&js, &js_len);
  if (!fj) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "metrics");
  fprintf(fj, "{\"model\": \"%s\", \"fold\": %d, \"task\": \"classification\", \"classes\": %d, \"n_train\": %zu, \"n_val\": %zu, \"n_test\": %zu,\n"
              " \"epochs_run\": %d, \"best_epoch\": %d, \"best_val_loss\": ",
          arch, fold, C, tr->n, sets[TS_SET_VAL].n, test.n, epochs_run, best_epoch + 1);
  const char *mk[5] = {NULL, "test_auc", "test_accuracy", "test_balanced_accuracy", "test_f1"};
  const double mv[5] = {best_loss, tauc, cm.accuracy, cm.balanced_accuracy, cm.f1};
  for (int k = 0; k < 5; k++) { /* JSON has no NaN: jnum writes null */
    if (mk[k]) fprintf(fj, "%s\"%s\": ", k == 1 ? ",\n " : ", ", mk[k]);
    ts__stage_jnum(fj, mv[k], "%.9g");
  }
  fprintf(fj, ",\n \"balanced\": %s, \"train_draws_per_class\": [", c->mil.balanced ? "true" : "false");
  for (int k = 0; k < C; k++) fprintf(fj, "%s%lld", k ? ", " : "", (long long)draws[k]);
  fprintf(fj, "]}\n");
  fclose(fj);
  snprintf(rel, sizeof rel, "mil/%s/fold%d/metrics.json", arch, fold);
  rc = ts__stage_write_output(run, rel, js, js_len, rec);
  free(js);
  if (rc < 0) goto out;
  rec->items = (int64_t)tr->n * epochs_run; /* bags trained on */
out:
  if (mem) fclose(mem);
  if (aw.f >= 0) {
    H5Fclose(aw.f);
    unlink(tmp);
  }
  free(csv);
  free(order);
  eval_clear(&val);
  eval_clear(&test);
  ts_nn_state_free(&best);
  ts_optim_free(&t.opt);
  ts_mil_free(&t.m);
  for (int s = 0; s < 3; s++) free(sets[s].rows);
  ts_splits_free(&sp);
  return rc;
}

/* ---- finish: the summary over folds ---- */

/* The test predictions of every fold, pooled: classes and the C class probabilities (C = 1:
 * regression, the prediction) and the label as a number. */
typedef struct pooled {
  int *y;
  double *target, *p; /* n, n x C */
  size_t n, cap;
  int C;
} pooled;

static int pooled_add(pooled *pl, int y, double target, const double *p) {
  if (pl->n == pl->cap) {
    size_t cap = pl->cap ? pl->cap * 2 : 256;
    int *ny = realloc(pl->y, sizeof *ny * cap);
    if (ny) pl->y = ny;
    double *nt = realloc(pl->target, sizeof *nt * cap);
    if (nt) pl->target = nt;
    double *np = realloc(pl->p, sizeof *np * cap * (size_t)pl->C);
    if (np) pl->p = np;
    if (!ny || !nt || !np) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "summary");
    pl->cap = cap;
  }
  pl->y[pl->n] = y;
  pl->target[pl->n] = target;
  memcpy(pl->p + pl->n * (size_t)pl->C, p, sizeof *p * (size_t)pl->C);
  pl->n++;
  return 0;
}

static void pooled_free(pooled *pl) {
  free(pl->y);
  free(pl->target);
  free(pl->p);
  memset(pl, 0, sizeof *pl);
}

/* A fold's predictions.csv into pl (rows whose width is not the file's first row's are skipped:
 * the file is tessera's own). */
static int pooled_read(pooled *pl, char *text, bool regression) {
  char *save = NULL, *line = strtok_r(text, "\n", &save); /* header */
  int ncol = 1, rc = 0;
  for (char *q = line; q && *q; q++) ncol += *q == ',';
  int C = regression ? 1 : ncol - 4; /* slide_id,patient_id,label,prob_0..prob_{C-1},pred */
  if (C < 1 || (pl->C && pl->C != C)) return 0;
  pl->C = C;
  for (line = strtok_r(NULL, "\n", &save); line && rc >= 0; line = strtok_r(NULL, "\n", &save)) {
    char *fields[1100];
    int nf = 0;
    for (char *s2 = NULL, *tok = strtok_r(line, ",", &s2); tok && nf < 1100; tok = strtok_r(NULL, ",", &s2)) fields[nf++] = tok;
    if (nf != ncol) continue;
    double p[1024];
    for (int k = 0; k < C && k < 1024; k++) p[k] = strtod(fields[3 + k], NULL);
    rc = pooled_add(pl, regression ? 0 : atoi(fields[2]), strtod(fields[2], NULL), p);
  }
  return rc;
}

static void mean_sd(const double *v, int n, double *mean, double *sd) {
  double s = 0, ss = 0;
  int k = 0;
  for (int i = 0; i < n; i++)
    if (isfinite(v[i])) s += v[i], k++;
  *mean = k ? s / k : NAN;
  for (int i = 0; i < n; i++)
    if (isfinite(v[i])) ss += (v[i] - *mean) * (v[i] - *mean);
  *sd = k > 1 ? sqrt(ss / (k - 1)) : NAN;
}


/* The pooled figures of one model into fj: binary, the AUC of P(class 1) with its DeLong CI;
 * multiclass, per class the one-vs-rest AUC with its DeLong CI and their macro mean; regression,
 * Pearson's and Spearman's r with their Fisher-z CIs. */
static void pooled_json(FILE *fj, const pooled *pl, bool regression) {
  if (regression) {
    for (int k = 0; k < 2; k++) {
      ts_corr r;
      bool ok = pl->n >= 3 && (k ? ts_corr_spearman : ts_corr_pearson)(pl->p, pl->target, pl->n, 0.95, &r) >= 0;
      ts_error_clear();
      const char *nm = k ? "spearman" : "pearson";
      fprintf(fj, "%s\"pooled_%s\": ", k ? ", " : ",\n   ", nm);
      ts__stage_jnum(fj, ok ? r.r : NAN, "%.17g");
      fprintf(fj, ", \"pooled_%s_ci95\": [", nm);
      ts__stage_jnum(fj, ok ? r.lower : NAN, "%.17g");
      fprintf(fj, ", ");
      ts__stage_jnum(fj, ok ? r.upper : NAN, "%.17g");
      fprintf(fj, "]");
    }
    fprintf(fj, ", \"pooled_n\": %zu, \"ci_method\": \"Fisher z\"}", pl->n);
    return;
  }
  int C = pl->C < 2 ? 2 : pl->C, classes = C == 2 ? 1 : C;
  int *yc = malloc(sizeof *yc * (pl->n + 1));
  double *sc = malloc(sizeof *sc * (pl->n + 1)), macro = 0;
  int defined = 0;
  fprintf(fj, ",\n   \"pooled_per_class\": [");
  for (int c = 0; c < classes; c++) { /* binary: class 1 only (the AUC of the task) */
    int cls = C == 2 ? 1 : c;
    ts_auc a;
    memset(&a, 0, sizeof a);
    bool ok = yc && sc && pl->n >= 2;
    for (size_t i = 0; ok && i < pl->n; i++) yc[i] = pl->y[i] == cls, sc[i] = pl->p[i * (size_t)pl->C + (size_t)cls];
    ok = ok && ts_auc_delong(yc, sc, pl->n, 0.95, &a) >= 0;
    ts_error_clear();
    if (ok) macro += a.auc, defined++;
    fprintf(fj, "%s{\"class\": %d, \"auc\": ", c ? ", " : "", cls);
    ts__stage_jnum(fj, ok ? a.auc : NAN, "%.17g");
    fprintf(fj, ", \"ci95\": [");
    ts__stage_jnum(fj, ok ? a.lower : NAN, "%.17g");
    fprintf(fj, ", ");
    ts__stage_jnum(fj, ok ? a.upper : NAN, "%.17g");
    size_t npos = 0;
    for (size_t i = 0; i < pl->n; i++) npos += pl->y[i] == cls;
    fprintf(fj, "], \"n_pos\": %zu, \"n_neg\": %zu}", npos, pl->n - npos);
    if (C == 2) { /* the pooled AUC is class 1's */
      fprintf(fj, "],\n   \"pooled_auc\": ");
      ts__stage_jnum(fj, ok ? a.auc : NAN, "%.17g");
      fprintf(fj, ", \"pooled_auc_ci95\": [");
      ts__stage_jnum(fj, ok ? a.lower : NAN, "%.17g");
      fprintf(fj, ", ");
      ts__stage_jnum(fj, ok ? a.upper : NAN, "%.17g");
      fprintf(fj, "]");
    }
  }
  if (C > 2) { /* the macro one-vs-rest AUC has no DeLong CI of its own: the per-class ones are above */
    fprintf(fj, "],\n   \"pooled_auc\": ");
    ts__stage_jnum(fj, defined ? macro / defined : NAN, "%.17g");
    fprintf(fj, ", \"pooled_auc_ci95\": [null, null], \"pooled_auc_method\": \"one-vs-rest macro\"");
  }
  fprintf(fj, ", \"pooled_n\": %zu, \"ci_method\": \"DeLong\"}", pl->n);
  free(yc);
  free(sc);
}

static int finish(const ts_run *run) {
  const ts_config *c = run->cfg;
  char mbuf[512], path[TS_PATH_MAX];
  const char *models[MAX_MODELS];
  int n_models = 0, rc = 0;
  bool regression = is_regression(c);
  TS_CALL(parse_models(c->mil.models, mbuf, models, &n_models));
  ts_splits *sp = NULL;
  TS_CALL(splits_path(run, path, sizeof path));
  if (!ts_io_exists(path)) return 0; /* the plan stopped before splitting */
  TS_CALL(ts_splits_read_csv(path, &sp));
  int folds = sp->folds;
  ts_splits_free(&sp);
  /* per-fold figures, as metrics.json holds them */
  static const char *const mk_cls[] = {"test_auc", "test_accuracy", "test_balanced_accuracy", "test_f1", NULL};
  static const char *const mk_reg[] = {"test_mse", "test_pearson", "test_spearman", NULL};
  const char *const *mk = regression ? mk_reg : mk_cls;
  int nk = 0;
  while (mk[nk]) nk++;
  char *csv = NULL, *json = NULL;
  size_t cl = 0, jl = 0;
  FILE *fc = open_memstream(&csv, &cl), *fj = open_memstream(&json, &jl);
  if (!fc || !fj) {
    if (fc) fclose(fc);
    if (fj) fclose(fj);
    return ts_error_set(TS_ENOMEM, "NO_MEMORY", "summary");
  }
  fprintf(fc, "model,fold");
  for (int k = 0; k < nk; k++) fprintf(fc, ",%s", mk[k]);
  fprintf(fc, "\n");
  fprintf(fj, "{\"task\": \"%s\", \"folds\": %d, \"models\": [", regression ? "regression" : "classification", folds);
  for (int m = 0; m < n_models && rc >= 0; m++) {
    double *v = calloc((size_t)folds * (size_t)nk, sizeof *v);
    pooled pl = {0};
    int done = 0;
    if (!v) {
      rc = ts_error_set(TS_ENOMEM, "NO_MEMORY", "summary");
      break;
    }
    fprintf(fj, "%s\n  {\"model\": \"%s\", \"per_fold\": [", m ? "," : "", models[m]);
    for (int f = 0; f < folds && rc >= 0; f++) {
      char rel[512], p2[TS_PATH_MAX], *text = NULL;
      for (int k = 0; k < nk; k++) v[f * nk + k] = NAN;
      snprintf(rel, sizeof rel, "mil/%s/fold%d/metrics.json", models[m], f);
      ts_json mj;
      if (ts__stage_read_json(run, rel, &mj) < 0) continue; /* the fold failed or did not run: the summary says how many folds it covers */
      for (int k = 0; k < nk; k++) v[f * nk + k] = ts_json_num(&mj, mk[k]);
      ts_json_clear(&mj);
      fprintf(fc, "%s,%d", models[m], f);
      fprintf(fj, "%s{\"fold\": %d", done ? ", " : "", f);
      for (int k = 0; k < nk; k++) {
        fprintf(fc, ",%.9g", v[f * nk + k]); /* as metrics.json holds them */
        fprintf(fj, ", \"%s\": ", mk[k] + 5);
        ts__stage_jnum(fj, v[f * nk + k], "%.17g");
      }
      fprintf(fc, "\n");
      fprintf(fj, "}");
      done++;
      snprintf(rel, sizeof rel, "mil/%s/fold%d/predictions.csv", models[m], f);
      if (ts_run_path(run, rel, p2, sizeof p2) >= 0 && ts_io_read_all(p2, &text, NULL) >= 0) {
        rc = pooled_read(&pl, text, regression);
        free(text);
      }
      ts_error_clear();
    }
    fprintf(fj, "],\n   \"folds_done\": %d", done);
    for (int k = 0; k < nk; k++) {
      double col[128], mean, sd;
      int nn = folds < 128 ? folds : 128;
      for (int f = 0; f < nn; f++) col[f] = v[f * nk + k];
      mean_sd(col, nn, &mean, &sd);
      fprintf(fj, ", \"%s_mean\": ", mk[k] + 5);
      ts__stage_jnum(fj, mean, "%.17g");
      fprintf(fj, ", \"%s_sd\": ", mk[k] + 5);
      ts__stage_jnum(fj, sd, "%.17g");
    }
    pooled_json(fj, &pl, regression);
    pooled_free(&pl);
    free(v);
  }
  fprintf(fj, "\n]}\n");
  fclose(fc);
  fclose(fj);
  if (rc >= 0) rc = ts__stage_write_summary(run, "mil", csv, json);
  free(csv);
  free(json);
  return rc;
}

extern const struct ts_report_section ts_report_section_mil; /* stages/report_mil.c */
static const struct ts_report_section *const report_sections[] = {&ts_report_section_mil, NULL};

const struct ts_stage ts_stage_mil = {
    .abi = TS_STAGE_ABI,
    .name = "mil",
    .kind = TS_SHARDED,
    .needs = needs,
    .config_keys = keys,
    .plan = plan,
    .work = work,
    .finish = finish,
    .check = check,
    .skip = skip,
    .items_unit = "bags",
    .unit_noun = "fold",
    .report = report_sections,
};
