/* report_mil.c — the report section "mil", owned by the mil stage (stages/mil.c lists it in
 * .report): the slide classifiers (or regressors) trained across folds.
 *
 * Present only when mil/summary.json exists (the stage's finish wrote it); it gives the task
 * ("classification" or "regression"; absent in older runs: classification), the models and the
 * number of folds. Every number is then read back from the per-unit files at full precision,
 * not from the summary's rounded copy: mil/<model>/fold<k>/metrics.json (set sizes, epochs,
 * best epoch and the test metrics: AUC, accuracy, balanced accuracy, F1 for classification;
 * MSE, Pearson and Spearman r with their CIs and p-values for regression), curve.csv (train
 * and validation loss, and the validation AUC or Pearson r, per epoch) and predictions.csv (per
 * test slide: label, class probabilities and predicted class; regression: the score and the
 * prediction). The ledger (read API) says which folds failed or are pending.
 *
 * What it shows, per model:
 *  - the summary: folds done, the test metrics as mean ± sd over the folds (sample sd, as
 *    mil/summary.json) and the pooled figures of all folds' test predictions together:
 *    classification, the AUC with its DeLong 95% CI (stats/ts_classify.h, equal to pROC's
 *    ci.auc(method = "delong")), with more than two classes the one-vs-rest macro AUC (CLAM's)
 *    and per class its one-vs-rest AUC with a DeLong CI; regression, Pearson's and Spearman's r
 *    with Fisher-z 95% CIs (ts_corr_pearson / ts_corr_spearman, R's cor.test); the per-fold
 *    values below it;
 *  - classification: the pooled ROC curves (ts_roc_curve_new): binary models in one inline SVG,
 *    one curve per model; a model with more than two classes in an SVG of its own, one
 *    one-vs-rest curve per class; the chance diagonal in each;
 *  - regression: a scatter plot of prediction against label, pooled over folds, one colour per
 *    model, with the identity line;
 *  - learning curves: train and validation loss per epoch, one small SVG per fold, the best
 *    epoch (by validation loss: the weights kept and tested) marked;
 *  - per test slide: model, fold, label, probabilities and prediction (regression: label and
 *    prediction) and a thumbnail of its attention heatmap when the file exists
 *    (mil/<model>/fold<k>/heatmaps/<slide>.png, or mil/<model>/heatmaps/<slide>.png), in pages
 *    of ROWS_PER_PAGE rows (report/mil-<k>.html) as the slides section does. report.json keeps
 *    every row.
 * JSON keys follow the compare rules of ts_report.h: results everywhere, except a fold's
 * "seconds" (its training time from the ledger: performance). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_classify.h"
#include "ts_error.h"
#include "ts_io.h"
#include "ts_json.h"
#include "ts_report.h"
#include "ts_stage.h"

#define ROWS_PER_PAGE 100
#define N_METRICS 4 /* the most of either task */

/* The per-fold test metrics of a task: report.json key, metrics.json key, column title, format. */
typedef struct metric_set {
  int n;
  const char *key[N_METRICS], *file_key[N_METRICS], *title[N_METRICS], *fmt[N_METRICS];
} metric_set;
static const metric_set cls_metrics = {4,
                                       {"auc", "accuracy", "balanced_accuracy", "f1"},
                                       {"test_auc", "test_accuracy", "test_balanced_accuracy", "test_f1"},
                                       {"test AUC", "accuracy", "balanced accuracy", "F1"},
                                       {"%.3f", "%.3f", "%.3f", "%.3f"}};
static const metric_set reg_metrics = {3,
                                       {"mse", "pearson", "spearman"},
                                       {"test_mse", "test_pearson", "test_spearman"},
                                       {"test MSE", "Pearson r", "Spearman r"},
                                       {"%.4g", "%.3f", "%.3f"}};
/* one colour per model (mil.c allows at most 8), and per class in a one-vs-rest chart */
static const char *const palette[] = {"#4f7cc3", "#d9822b", "#2e9e5b", "#b42318",
                                      "#7d5ba6", "#8c6d31", "#d45fa0", "#5f6b7a"};
#define N_PALETTE (int)(sizeof palette / sizeof palette[0])

typedef struct mil_epoch {
  int epoch;
  double train_loss, val_loss, val_metric; /* val_metric: curve.csv's val_auc or val_pearson */
  bool improved;
} mil_epoch;

typedef struct mil_fold {
  int fold;
  bool have;                                              /* metrics.json was read */
  const ts_report_unit *u;                                /* the ledger's unit "<model>:fold<k>", NULL none */
  int classes;                                            /* -1 unknown */
  int64_t n_train, n_val, n_test, epochs_run, best_epoch; /* -1 unknown; best_epoch 1-based */
  double best_val_loss;
  double m[N_METRICS];
  /* regression: the training targets' mean and sd, and per r (0 Pearson, 1 Spearman) its CI
   * and p-value */
  double target_mean, target_sd, ci[2][2], p[2];
  int n_ep;
  mil_epoch *ep;
} mil_fold;

typedef struct mil_pred {
  int model, fold;
  char *slide, *patient;
  int label, pred, nclass; /* classification; nclass 0: a regression row */
  double *prob;            /* nclass */
  double y, yhat;          /* regression: the label (score) and the prediction */
  char heatmap[600];       /* run-relative path, "" none */
} mil_pred;

/* One class's one-vs-rest figures of the pooled predictions (binary: class 1 only). */
typedef struct mil_class {
  int cls;
  double auc, lo, hi;
  size_t n_pos, n_neg;
  ts_roc_curve *roc; /* NULL without both sides */
} mil_class;

typedef struct mil_model {
  char name[64];
  mil_fold *f; /* folds */
  int folds_done, folds_failed, folds_pending;
  double mean[N_METRICS], sd[N_METRICS];
  int classes; /* of the model's predictions, -1 unknown or mixed */
  double pooled_auc, lo, hi;
  size_t pooled_n;
  bool ovr;                /* multiclass: pooled_auc is the one-vs-rest macro AUC, no CI */
  const ts_roc_curve *roc; /* binary: class 1's curve (pc[0].roc), else NULL */
  int n_pc;
  mil_class *pc;   /* binary: class 1; multiclass: every class */
  ts_corr corr[2]; /* regression: pooled Pearson (0) and Spearman (1); r NaN undefined */
  size_t p0, np;   /* its rows in mil_data.p */
} mil_model;

typedef struct mil_data {
  ts_report_units units;
  ts_report_stage_info info;
  bool regression;
  const metric_set *ms;
  int folds, n_models;
  mil_model *m;
  size_t n_pred, cap;
  mil_pred *p;
  int classes; /* the largest class count seen, 2 when nothing was read; 0 for regression */
} mil_data;

static void mil_release(void *data) {
  mil_data *d = data;
  if (!d) return;
  for (int i = 0; i < d->n_models; i++) {
    mil_model *m = &d->m[i];
    for (int k = 0; m->f && k < d->folds; k++)
      free(m->f[k].ep);
    free(m->f);
    for (int c = 0; c < m->n_pc; c++)
      ts_roc_curve_free(&m->pc[c].roc);
    free(m->pc);
  }
  free(d->m);
  for (size_t i = 0; i < d->n_pred; i++) {
    free(d->p[i].slide);
    free(d->p[i].patient);
    free(d->p[i].prob);
  }
  free(d->p);
  ts_report_units_clear(&d->units);
  free(d);
}

/* ---- reading ---- */

static void read_metrics(const ts_report *r, const mil_data *d, const char *model, mil_fold *f) {
  char rel[512];
  snprintf(rel, sizeof rel, "mil/%s/fold%d/metrics.json", model, f->fold);
  char *text = ts_report_read_text(r, rel);
  ts_json j;
  if (!text || ts_json_parse(text, &j) < 0) {
    ts_error_clear();
    free(text);
    return;
  }
  f->have = true;
  f->classes = (int)ts_json_count(&j, "classes");
  f->n_train = ts_json_count(&j, "n_train");
  f->n_val = ts_json_count(&j, "n_val");
  f->n_test = ts_json_count(&j, "n_test");
  f->epochs_run = ts_json_count(&j, "epochs_run");
  f->best_epoch = ts_json_count(&j, "best_epoch");
  f->best_val_loss = ts_json_num(&j, "best_val_loss");
  for (int k = 0; k < d->ms->n; k++)
    f->m[k] = ts_json_num(&j, d->ms->file_key[k]);
  if (d->regression) {
    f->target_mean = ts_json_num(&j, "target_mean");
    f->target_sd = ts_json_num(&j, "target_sd");
    for (int k = 0; k < 2; k++) {
      char key[64];
      snprintf(key, sizeof key, "test_%s_ci95", k ? "spearman" : "pearson");
      f->ci[k][0] = ts_json_num_at(&j, key, 0);
      f->ci[k][1] = ts_json_num_at(&j, key, 1);
      snprintf(key, sizeof key, "test_%s_p", k ? "spearman" : "pearson");
      f->p[k] = ts_json_num(&j, key);
    }
  }
  ts_json_clear(&j);
  free(text);
}

/* curve.csv: epoch,train_loss,val_loss,val_auc,best (regression: val_pearson for val_auc) */
static int read_curve(const ts_report *r, const char *model, mil_fold *f) {
  char rel[512];
  snprintf(rel, sizeof rel, "mil/%s/fold%d/curve.csv", model, f->fold);
  char *text = ts_report_read_text(r, rel);
  if (!text) return 0;
  int lines = 0;
  for (const char *p = text; *p; p++)
    lines += *p == '\n';
  f->ep = calloc((size_t)lines + 1, sizeof *f->ep);
  if (!f->ep) {
    free(text);
    return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report mil: curve");
  }
  char *save = NULL;
  bool header = true;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (header) { /* the first line names the columns */
      header = false;
      continue;
    }
    char *c[8];
    if (ts_report_csv_split(line, c, 8) < 5) continue;
    mil_epoch *e = &f->ep[f->n_ep++];
    e->epoch = atoi(c[0]);
    e->train_loss = strtod(c[1], NULL);
    e->val_loss = strtod(c[2], NULL);
    e->val_metric = strtod(c[3], NULL);
    e->improved = atoi(c[4]) != 0;
  }
  free(text);
  if (f->best_epoch < 0) /* the last improvement is the epoch kept */
    for (int i = 0; i < f->n_ep; i++)
      if (f->ep[i].improved) f->best_epoch = f->ep[i].epoch;
  return 0;
}

static int add_pred(mil_data *d, mil_pred *p) {
  if (d->n_pred == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 256;
    mil_pred *v = realloc(d->p, cap * sizeof *v);
    if (!v) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report mil: predictions");
    d->p = v;
    d->cap = cap;
  }
  d->p[d->n_pred++] = *p;
  return 0;
}

/* The heatmap of a test slide: per fold (the brief's layout) or per model (the issue's). */
static void find_heatmap(const ts_report *r, const char *model, int fold, const char *slide, char *buf,
                         size_t n) {
  buf[0] = '\0';
  if (!ts_id_is_safe(slide)) return;
  char rel[600];
  snprintf(rel, sizeof rel, "mil/%s/fold%d/heatmaps/%s.png", model, fold, slide);
  if (ts_report_exists(r, rel)) {
    snprintf(buf, n, "%s", rel);
    return;
  }
  snprintf(rel, sizeof rel, "mil/%s/heatmaps/%s.png", model, slide);
  if (ts_report_exists(r, rel)) snprintf(buf, n, "%s", rel);
}

/* predictions.csv: slide_id,patient_id,label,prob_0..prob_{C-1},pred; regression:
 * slide_id,patient_id,label,pred (the score and the prediction, in the label's units) */
static int read_predictions(const ts_report *r, mil_data *d, int mi, int fold) {
  const char *model = d->m[mi].name;
  char rel[512];
  snprintf(rel, sizeof rel, "mil/%s/fold%d/predictions.csv", model, fold);
  char *text = ts_report_read_text(r, rel);
  if (!text) return 0;
  int rc = 0, C = -1;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line && rc >= 0; line = strtok_r(NULL, "\n", &save)) {
    char *c[72];
    int nf = ts_report_csv_split(line, c, 72);
    if (C < 0) { /* the header: count the prob_ columns */
      C = 0;
      for (int k = 3; k < nf; k++)
        C += !strncmp(c[k], "prob_", 5);
      if (d->regression ? nf != 4 || C || strcmp(c[3], "pred") : C < 2 || nf != C + 4)
        break; /* not a file this section knows */
      continue;
    }
    if (nf != C + 4) continue;
    mil_pred p = {.model = mi, .fold = fold, .nclass = C};
    if (d->regression) {
      p.y = strtod(c[2], NULL);
      p.yhat = strtod(c[3], NULL);
    } else {
      p.label = atoi(c[2]);
      p.pred = atoi(c[C + 3]);
    }
    p.slide = strdup(c[0]);
    p.patient = strdup(c[1]);
    p.prob = malloc(sizeof *p.prob * (size_t)(C + 1));
    if (!p.slide || !p.patient || !p.prob) {
      free(p.slide);
      free(p.patient);
      free(p.prob);
      rc = ts_error_set(TS_ENOMEM, "NO_MEMORY", "report mil: predictions");
      break;
    }
    for (int k = 0; k < C; k++)
      p.prob[k] = strtod(c[3 + k], NULL);
    find_heatmap(r, model, fold, p.slide, p.heatmap, sizeof p.heatmap);
    if ((rc = add_pred(d, &p)) < 0) {
      free(p.slide);
      free(p.patient);
      free(p.prob);
    }
  }
  free(text);
  return rc;
}

/* Mean and sample sd of the finite values (mil.c's finish does the same). */
static void mean_sd(const mil_fold *f, int folds, int k, double *mean, double *sd) {
  double s = 0, ss = 0;
  int n = 0;
  for (int i = 0; i < folds; i++)
    if (f[i].have && isfinite(f[i].m[k])) s += f[i].m[k], n++;
  *mean = n ? s / n : NAN;
  for (int i = 0; i < folds; i++)
    if (f[i].have && isfinite(f[i].m[k])) ss += (f[i].m[k] - *mean) * (f[i].m[k] - *mean);
  *sd = n > 1 ? sqrt(ss / (n - 1)) : NAN;
}

/* Regression: Pearson's and Spearman's r of the pooled predictions against the labels, with
 * their Fisher-z 95% CIs (as mil.c's summary: prediction first). */
static int pool_regression(mil_data *d, mil_model *m) {
  for (int k = 0; k < 2; k++)
    m->corr[k] = (ts_corr){.r = NAN, .lower = NAN, .upper = NAN, .p_value = NAN, .conf_level = 0.95};
  m->pooled_n = m->np;
  if (m->np < 3) return 0;
  double *x = malloc(sizeof *x * m->np), *y = malloc(sizeof *y * m->np);
  if (!x || !y) {
    free(x);
    free(y);
    return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report mil: pooled r");
  }
  for (size_t i = 0; i < m->np; i++) {
    x[i] = d->p[m->p0 + i].yhat;
    y[i] = d->p[m->p0 + i].y;
  }
  for (int k = 0; k < 2; k++) {
    ts_corr c;
    if ((k ? ts_corr_spearman : ts_corr_pearson)(x, y, m->np, 0.95, &c) == 0) m->corr[k] = c;
    ts_error_clear(); /* a constant prediction (METRIC_CONSTANT): r undefined, shown as – */
  }
  free(x);
  free(y);
  return 0;
}

/* The pooled AUC (binary: DeLong CI and ROC curve; multiclass: one-vs-rest macro, and per class
 * its one-vs-rest AUC, DeLong CI and ROC curve). */
static int pool(mil_data *d, mil_model *m) {
  m->pooled_auc = m->lo = m->hi = NAN;
  m->classes = -1;
  if (d->regression) return pool_regression(d, m);
  for (size_t i = m->p0; i < m->p0 + m->np; i++) {
    if (m->classes < 0)
      m->classes = d->p[i].nclass;
    else if (m->classes != d->p[i].nclass)
      m->classes = -2; /* mixed: nothing pooled */
  }
  if (m->classes < 2 || m->np < 2) return 0;
  size_t n = m->np;
  int C = m->classes;
  int *y = malloc(sizeof *y * n), *yc = malloc(sizeof *yc * n);
  double *s = malloc(sizeof *s * n * (size_t)C), *sc = malloc(sizeof *sc * n);
  m->n_pc = C == 2 ? 1 : C;
  m->pc = calloc((size_t)m->n_pc, sizeof *m->pc);
  if (!y || !yc || !s || !sc || !m->pc) {
    free(y);
    free(yc);
    free(s);
    free(sc);
    m->n_pc = 0;
    return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report mil: pooled AUC");
  }
  bool ok_labels = true;
  for (size_t i = 0; i < n; i++) {
    const mil_pred *p = &d->p[m->p0 + i];
    y[i] = p->label;
    ok_labels &= p->label >= 0 && p->label < C;
    memcpy(s + i * (size_t)C, p->prob, sizeof *s * (size_t)C);
  }
  m->pooled_n = n;
  m->ovr = C > 2;
  for (int k = 0; k < m->n_pc; k++) { /* binary: class 1 only (the AUC of the task) */
    mil_class *pc = &m->pc[k];
    pc->cls = C == 2 ? 1 : k;
    pc->auc = pc->lo = pc->hi = NAN;
    for (size_t i = 0; i < n; i++) {
      yc[i] = y[i] == pc->cls;
      sc[i] = s[i * (size_t)C + (size_t)pc->cls];
      pc->n_pos += yc[i] == 1;
    }
    pc->n_neg = n - pc->n_pos;
    ts_auc a;
    if (ok_labels && ts_auc_delong(yc, sc, n, 0.95, &a) == 0) {
      pc->auc = a.auc;
      pc->lo = a.lower;
      pc->hi = a.upper;
      if (ts_roc_curve_new(yc, sc, n, &pc->roc) < 0) pc->roc = NULL;
    }
    ts_error_clear(); /* one side only (METRIC_ONE_CLASS): the AUC is undefined, shown as – */
  }
  /* a label outside 0..C-1: no AUC (the per-fold files say what went wrong) */
  if (ok_labels && C == 2) {
    m->pooled_auc = m->pc[0].auc;
    m->lo = m->pc[0].lo;
    m->hi = m->pc[0].hi;
    m->roc = m->pc[0].roc;
  } else if (ok_labels) {
    double macro = NAN;
    if (ts_auc_ovr(y, s, n, C, NULL, &macro) == 0) m->pooled_auc = macro;
  }
  ts_error_clear();
  free(y);
  free(yc);
  free(s);
  free(sc);
  return 0;
}

static int mil_load(const ts_report *r, void **data_out) {
  char *text = ts_report_read_text(r, "mil/summary.json");
  if (!text) return 0; /* the stage did not finish here: no section */
  ts_json j;
  memset(&j, 0, sizeof j);
  int rc = ts_json_parse(text, &j);
  free(text);
  if (rc < 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", ts_error_message());
    return ts_error_set(TS_EINPUT, "REPORT_IO", "mil/summary.json: %s", msg);
  }
  mil_data *d = calloc(1, sizeof *d);
  if (!d) {
    ts_json_clear(&j);
    return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report mil");
  }
  TS_TRY(ts_report_stage_info_get(r, "mil", &d->info));
  TS_TRY(ts_report_units_load(r, "mil", &d->units));
  const ts_json *models = ts_json_get(&j, "models");
  double folds = ts_json_num(&j, "folds");
  if (!models || models->type != TS_JARR || !isfinite(folds) || folds < 0 || folds > 1000)
    TS_FAIL(TS_EINPUT, "REPORT_IO", "mil/summary.json: no \"folds\" and \"models\"");
  const char *task = ts_json_str(&j, "task"); /* absent before regression existed: classification */
  if (task && strcmp(task, "classification") && strcmp(task, "regression"))
    TS_FAIL(TS_EINPUT, "REPORT_IO", "mil/summary.json: unknown task \"%s\"", task);
  d->regression = task && !strcmp(task, "regression");
  d->ms = d->regression ? &reg_metrics : &cls_metrics;
  d->folds = (int)folds;
  d->m = calloc((size_t)models->n + 1, sizeof *d->m);
  if (!d->m) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "report mil");
  d->classes = d->regression ? 0 : 2;
  for (int i = 0; i < models->n; i++) {
    const char *name = ts_json_str(&models->kids[i], "model");
    if (!name || !ts_id_is_safe(name) || strlen(name) >= sizeof d->m[0].name) continue;
    mil_model *m = &d->m[d->n_models++];
    snprintf(m->name, sizeof m->name, "%s", name);
    if (!(m->f = calloc((size_t)d->folds + 1, sizeof *m->f))) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "report mil");
    m->p0 = d->n_pred;
    for (int k = 0; k < d->folds; k++) {
      mil_fold *f = &m->f[k];
      f->fold = k;
      f->classes = -1;
      f->n_train = f->n_val = f->n_test = f->epochs_run = f->best_epoch = -1;
      f->best_val_loss = f->target_mean = f->target_sd = NAN;
      for (int q = 0; q < N_METRICS; q++)
        f->m[q] = NAN;
      for (int q = 0; q < 2; q++)
        f->ci[q][0] = f->ci[q][1] = f->p[q] = NAN;
      char unit[128];
      snprintf(unit, sizeof unit, "%s:fold%d", m->name, k);
      f->u = ts_report_units_find(&d->units, unit);
      read_metrics(r, d, m->name, f);
      TS_TRY(read_curve(r, m->name, f));
      if (f->have) TS_TRY(read_predictions(r, d, d->n_models - 1, k));
      if (!d->regression && f->classes > d->classes) d->classes = f->classes;
      bool failed = f->u && !strcmp(f->u->state, "failed");
      m->folds_done += f->have && !failed;
      m->folds_failed += failed;
      m->folds_pending += !f->have && !failed;
    }
    m->np = d->n_pred - m->p0;
    for (int q = 0; q < d->ms->n; q++)
      mean_sd(m->f, d->folds, q, &m->mean[q], &m->sd[q]);
    TS_TRY(pool(d, m));
    if (m->classes > d->classes) d->classes = m->classes;
  }
out:
  ts_json_clear(&j);
  if (rc < 0) {
    mil_release(d);
    return rc;
  }
  *data_out = d;
  return 1;
}

/* ---- JSON ---- */

static const char *fold_status(const mil_fold *f) {
  if (f->u && !strcmp(f->u->state, "failed")) return "failed";
  if (f->have) return "done";
  /* not run yet; "missing": done in the ledger (or no unit) but metrics.json is not there */
  return f->u && strcmp(f->u->state, "done") ? "pending" : "missing";
}

static void json_roc(ts_report_out *o, const char *key, const ts_roc_curve *roc) {
  if (!roc) {
    ts_report_json_null(o, key);
    return;
  }
  ts_report_json_object(o, key);
  ts_report_json_array(o, "fpr");
  for (size_t k = 0; k < roc->len; k++)
    ts_report_json_num(o, NULL, roc->fpr[k]);
  ts_report_json_end(o);
  ts_report_json_array(o, "tpr");
  for (size_t k = 0; k < roc->len; k++)
    ts_report_json_num(o, NULL, roc->tpr[k]);
  ts_report_json_end(o);
  ts_report_json_end(o);
}

static void fold_json(ts_report_out *o, const mil_data *d, const mil_fold *f) {
  ts_report_json_object(o, NULL);
  ts_report_json_int(o, "fold", f->fold);
  ts_report_json_str(o, "status", fold_status(f));
  bool failed = f->u && !strcmp(f->u->state, "failed");
  ts_report_json_str(o, "error_token", failed ? f->u->error_token : NULL);
  ts_report_json_count(o, "n_train", f->n_train);
  ts_report_json_count(o, "n_val", f->n_val);
  ts_report_json_count(o, "n_test", f->n_test);
  ts_report_json_count(o, "epochs_run", f->epochs_run);
  ts_report_json_count(o, "best_epoch", f->best_epoch);
  ts_report_json_num(o, "best_val_loss", f->best_val_loss);
  if (d->regression) {
    ts_report_json_num(o, "target_mean", f->target_mean);
    ts_report_json_num(o, "target_sd", f->target_sd);
  }
  for (int k = 0; k < d->ms->n; k++) {
    ts_report_json_num(o, d->ms->key[k], f->m[k]);
    if (d->regression && k > 0) { /* pearson, spearman: their CI and p-value */
      char key[64];
      snprintf(key, sizeof key, "%s_ci95", d->ms->key[k]);
      ts_report_json_pair(o, key, f->ci[k - 1][0], f->ci[k - 1][1]);
      snprintf(key, sizeof key, "%s_p", d->ms->key[k]);
      ts_report_json_num(o, key, f->p[k - 1]);
    }
  }
  ts_report_json_num(o, "seconds", f->u ? f->u->seconds : NAN); /* performance (compare) */
  ts_report_json_object(o, "curve");
  ts_report_json_array(o, "epoch");
  for (int i = 0; i < f->n_ep; i++)
    ts_report_json_int(o, NULL, f->ep[i].epoch);
  ts_report_json_end(o);
  ts_report_json_array(o, "train_loss");
  for (int i = 0; i < f->n_ep; i++)
    ts_report_json_num(o, NULL, f->ep[i].train_loss);
  ts_report_json_end(o);
  ts_report_json_array(o, "val_loss");
  for (int i = 0; i < f->n_ep; i++)
    ts_report_json_num(o, NULL, f->ep[i].val_loss);
  ts_report_json_end(o);
  ts_report_json_array(o, d->regression ? "val_pearson" : "val_auc");
  for (int i = 0; i < f->n_ep; i++)
    ts_report_json_num(o, NULL, f->ep[i].val_metric);
  ts_report_json_end(o);
  ts_report_json_end(o);
  ts_report_json_end(o);
}

static void model_json_classification(ts_report_out *o, const mil_model *m) {
  ts_report_json_num(o, "pooled_auc", m->pooled_auc);
  ts_report_json_pair(o, "pooled_auc_ci95", m->lo, m->hi);
  ts_report_json_int(o, "pooled_n", (int64_t)m->pooled_n);
  ts_report_json_str(o, "pooled_auc_method", m->ovr ? "one-vs-rest macro" : "binary");
  ts_report_json_str(o, "ci_method", m->ovr ? NULL : "DeLong");
  json_roc(o, "roc", m->roc);
  ts_report_json_array(o, "pooled_per_class");
  for (int c = 0; c < m->n_pc; c++) {
    const mil_class *pc = &m->pc[c];
    ts_report_json_object(o, NULL);
    ts_report_json_int(o, "class", pc->cls);
    ts_report_json_num(o, "auc", pc->auc);
    ts_report_json_pair(o, "ci95", pc->lo, pc->hi);
    ts_report_json_int(o, "n_pos", (int64_t)pc->n_pos);
    ts_report_json_int(o, "n_neg", (int64_t)pc->n_neg);
    json_roc(o, "roc", pc->roc);
    ts_report_json_end(o);
  }
  ts_report_json_end(o);
}

static void model_json_regression(ts_report_out *o, const mil_model *m) {
  for (int k = 0; k < 2; k++) {
    const ts_corr *c = &m->corr[k];
    char key[64];
    snprintf(key, sizeof key, "pooled_%s", k ? "spearman" : "pearson");
    ts_report_json_num(o, key, c->r);
    snprintf(key, sizeof key, "pooled_%s_ci95", k ? "spearman" : "pearson");
    ts_report_json_pair(o, key, c->lower, c->upper);
    snprintf(key, sizeof key, "pooled_%s_p", k ? "spearman" : "pearson");
    ts_report_json_num(o, key, c->p_value);
  }
  ts_report_json_int(o, "pooled_n", (int64_t)m->pooled_n);
  ts_report_json_str(o, "ci_method", "Fisher z");
}

static int mil_json(const ts_report *r, const void *data, ts_report_out *o) {
  (void)r;
  const mil_data *d = data;
  ts_report_json_int(o, "folds", d->folds);
  if (d->regression)
    ts_report_json_null(o, "classes");
  else
    ts_report_json_int(o, "classes", d->classes);
  ts_report_json_str(o, "task", d->regression ? "regression" : d->classes > 2 ? "multiclass" : "binary");
  ts_report_json_str(o, "note", d->info.note[0] ? d->info.note : NULL);
  ts_report_json_array(o, "models");
  for (int i = 0; i < d->n_models; i++) {
    const mil_model *m = &d->m[i];
    ts_report_json_object(o, NULL);
    ts_report_json_str(o, "model", m->name);
    ts_report_json_int(o, "folds_done", m->folds_done);
    ts_report_json_int(o, "folds_failed", m->folds_failed);
    ts_report_json_int(o, "folds_pending", m->folds_pending);
    for (int k = 0; k < d->ms->n; k++) {
      char key[64];
      snprintf(key, sizeof key, "%s_mean", d->ms->key[k]);
      ts_report_json_num(o, key, m->mean[k]);
      snprintf(key, sizeof key, "%s_sd", d->ms->key[k]);
      ts_report_json_num(o, key, m->sd[k]);
    }
    if (d->regression)
      model_json_regression(o, m);
    else
      model_json_classification(o, m);
    ts_report_json_array(o, "per_fold");
    for (int k = 0; k < d->folds; k++)
      fold_json(o, d, &m->f[k]);
    ts_report_json_end(o);
    ts_report_json_end(o);
  }
  ts_report_json_end(o);
  ts_report_json_array(o, "predictions");
  for (size_t i = 0; i < d->n_pred; i++) {
    const mil_pred *p = &d->p[i];
    ts_report_json_object(o, NULL);
    ts_report_json_str(o, "model", d->m[p->model].name);
    ts_report_json_int(o, "fold", p->fold);
    ts_report_json_str(o, "slide_id", p->slide);
    ts_report_json_str(o, "patient_id", p->patient);
    if (d->regression) {
      ts_report_json_num(o, "label", p->y);
      ts_report_json_num(o, "pred", p->yhat);
    } else {
      ts_report_json_int(o, "label", p->label);
      ts_report_json_array(o, "prob");
      for (int k = 0; k < p->nclass; k++)
        ts_report_json_num(o, NULL, p->prob[k]);
      ts_report_json_end(o);
      ts_report_json_int(o, "pred", p->pred);
    }
    ts_report_json_str(o, "heatmap", p->heatmap[0] ? p->heatmap : NULL);
    ts_report_json_end(o);
  }
  ts_report_json_end(o);
  return 0;
}

/* ---- HTML ---- */

static void cell_num(ts_report_out *o, double v, const char *fmt) {
  if (isfinite(v)) {
    ts_report_html(o, "<td class=\"n\">");
    ts_report_html(o, fmt, v);
    ts_report_html(o, "</td>");
  } else {
    ts_report_html(o, "<td class=\"n\">–</td>");
  }
}
static void cell_int(ts_report_out *o, int64_t v) {
  if (v >= 0)
    ts_report_html(o, "<td class=\"n\">%lld</td>", (long long)v);
  else
    ts_report_html(o, "<td class=\"n\">–</td>");
}
static void cell_mean_sd(ts_report_out *o, double mean, double sd, const char *fmt) {
  if (!isfinite(mean)) {
    ts_report_html(o, "<td class=\"n\">–</td>");
    return;
  }
  ts_report_html(o, "<td class=\"n\">");
  ts_report_html(o, fmt, mean);
  if (isfinite(sd)) {
    ts_report_html(o, " ± ");
    ts_report_html(o, fmt, sd);
  }
  ts_report_html(o, "</td>");
}
/* "0.123 [0.010, 0.456]", the interval "[–]" when undefined, "–" without an estimate. */
static void est_ci(ts_report_out *o, double v, double lo, double hi) {
  if (!isfinite(v))
    ts_report_html(o, "–");
  else if (isfinite(lo) && isfinite(hi))
    ts_report_html(o, "%.3f [%.3f, %.3f]", v, lo, hi);
  else
    ts_report_html(o, "%.3f [–]", v);
}

static void folds_done_cell(ts_report_out *o, const mil_data *d, const mil_model *m) {
  ts_report_html(o, "<tr id=\"mil-model-%s\"><td><b>%s</b></td><td class=\"n%s\">%d of %d", m->name, m->name,
                 m->folds_done < d->folds ? " warn" : "", m->folds_done, d->folds);
  if (m->folds_failed) ts_report_html(o, " <span class=\"bad\">(%d failed)</span>", m->folds_failed);
  ts_report_html(o, "</td>");
}

static void summary_table_regression(ts_report_out *o, const mil_data *d) {
  ts_report_html(
      o, "<table id=\"mil-summary\"><tr><th>model</th><th>folds done</th><th>test MSE (mean ± sd)</th>"
         "<th>Pearson r (mean ± sd)</th><th>Spearman r (mean ± sd)</th><th>pooled Pearson r [95%% "
         "CI]</th><th>pooled Spearman r [95%% CI]</th></tr>\n");
  for (int i = 0; i < d->n_models; i++) {
    const mil_model *m = &d->m[i];
    folds_done_cell(o, d, m);
    for (int k = 0; k < d->ms->n; k++)
      cell_mean_sd(o, m->mean[k], m->sd[k], d->ms->fmt[k]);
    for (int k = 0; k < 2; k++) {
      const ts_corr *c = &m->corr[k];
      ts_report_html(o, "<td class=\"n pooled-%s\">", k ? "spearman" : "pearson");
      est_ci(o, c->r, c->lower, c->upper);
      ts_report_html(o, " (n = %zu)</td>", m->pooled_n);
    }
    ts_report_html(o, "</tr>\n");
  }
  ts_report_html(o, "</table>\n");
}

static void summary_table(ts_report_out *o, const mil_data *d) {
  if (d->regression) {
    summary_table_regression(o, d);
    return;
  }
  ts_report_html(
      o, "<table id=\"mil-summary\"><tr><th>model</th><th>folds done</th><th>test AUC (mean ± sd)</th>"
         "<th>pooled AUC [95%% CI]</th><th>accuracy</th><th>balanced accuracy</th><th>F1</th></tr>\n");
  for (int i = 0; i < d->n_models; i++) {
    const mil_model *m = &d->m[i];
    folds_done_cell(o, d, m);
    cell_mean_sd(o, m->mean[0], m->sd[0], d->ms->fmt[0]);
    if (!isfinite(m->pooled_auc))
      ts_report_html(o, "<td class=\"n\">–</td>");
    else if (m->ovr)
      ts_report_html(o, "<td class=\"n pooled-auc\">%.3f (one-vs-rest, n = %zu)</td>", m->pooled_auc,
                     m->pooled_n);
    else if (isfinite(m->lo))
      ts_report_html(o, "<td class=\"n pooled-auc\">%.3f [%.3f, %.3f] (n = %zu)</td>", m->pooled_auc, m->lo,
                     m->hi, m->pooled_n);
    else
      ts_report_html(o, "<td class=\"n pooled-auc\">%.3f [–] (n = %zu)</td>", m->pooled_auc, m->pooled_n);
    for (int k = 1; k < d->ms->n; k++)
      cell_mean_sd(o, m->mean[k], m->sd[k], d->ms->fmt[k]);
    ts_report_html(o, "</tr>\n");
  }
  ts_report_html(o, "</table>\n");
}

static void fold_table(ts_report_out *o, const mil_data *d) {
  ts_report_html(
      o, "<details open><summary>Per fold</summary><table "
         "id=\"mil-folds\"><tr><th>model</th><th>fold</th><th>status</th>"
         "<th>train / val / test slides</th><th>epochs run</th><th>best epoch</th><th>best val loss</th>");
  for (int k = 0; k < d->ms->n; k++)
    ts_report_html(o, "<th>%s</th>", d->ms->title[k]);
  ts_report_html(o, "</tr>\n");
  for (int i = 0; i < d->n_models; i++) {
    const mil_model *m = &d->m[i];
    for (int k = 0; k < d->folds; k++) {
      const mil_fold *f = &m->f[k];
      const char *st = fold_status(f);
      ts_report_html(o, "<tr id=\"mil-%s-fold%d\"><td>%s</td><td class=\"n\">%d</td><td class=\"%s\">%s",
                     m->name, k, m->name, k,
                     !strcmp(st, "done")     ? "ok"
                     : !strcmp(st, "failed") ? "bad"
                                             : "warn",
                     st);
      if (!strcmp(st, "failed")) {
        ts_report_html(o, " <span class=\"tok\">");
        ts_report_html_text(o, f->u->error_token);
        ts_report_html(o, "</span> ");
        ts_report_html_text(o, ts_report_msg_body(f->u->error_token, f->u->error_message));
      }
      ts_report_html(o, "</td>");
      if (f->n_train >= 0)
        ts_report_html(o, "<td class=\"n\">%lld / %lld / %lld</td>", (long long)f->n_train,
                       (long long)f->n_val, (long long)f->n_test);
      else
        ts_report_html(o, "<td class=\"n\">–</td>");
      cell_int(o, f->epochs_run);
      cell_int(o, f->best_epoch);
      cell_num(o, f->best_val_loss, "%.4f");
      for (int q = 0; q < d->ms->n; q++)
        cell_num(o, f->m[q], d->ms->fmt[q]);
      ts_report_html(o, "</tr>\n");
    }
  }
  ts_report_html(o, "</table></details>\n");
}

/* The frame of a ROC chart: the plot square S x S at (x0, y0), the chance diagonal, the ticks
 * and the axis titles. */
static void roc_frame(ts_report_out *o, int x0, int y0, int S) {
  ts_report_html(o,
                 "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#99a\"/>"
                 "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#aab\" stroke-dasharray=\"4 3\"/>",
                 x0, y0, S, S, x0, y0 + S, x0 + S, y0);
  for (int t = 0; t <= 4; t++) { /* ticks at 0, .25, .5, .75, 1 */
    int x = x0 + S * t / 4, y = y0 + S - S * t / 4;
    ts_report_html(o,
                   "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#99a\"/><text x=\"%d\" y=\"%d\" "
                   "text-anchor=\"middle\" class=\"cv\">%.2g</text>"
                   "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#99a\"/><text x=\"%d\" y=\"%d\" "
                   "text-anchor=\"end\" class=\"cv\">%.2g</text>",
                   x, y0 + S, x, y0 + S + 4, x, y0 + S + 16, t / 4.0, x0 - 4, y, x0, y, x0 - 7, y + 4,
                   t / 4.0);
  }
  ts_report_html(o,
                 "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"cl\">1 − specificity (false "
                 "positive rate)</text>"
                 "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"cl\" transform=\"rotate(-90 %d "
                 "%d)\">sensitivity (true positive rate)</text>",
                 x0 + S / 2, y0 + S + 34, 14, y0 + S / 2, 14, y0 + S / 2);
}

/* One curve: the points run from threshold -Inf (1, 1) to +Inf (0, 0). */
static void roc_path(ts_report_out *o, const char *id, const ts_roc_curve *roc, const char *col, int x0,
                     int y0, int S) {
  ts_report_html(o,
                 "<path id=\"%s\" class=\"roc\" data-points=\"%zu\" fill=\"none\" stroke=\"%s\" "
                 "stroke-width=\"2\" d=\"",
                 id, roc->len, col);
  for (size_t k = 0; k < roc->len; k++)
    ts_report_html(o, "%s%.1f %.1f", k ? " L" : "M", x0 + S * roc->fpr[k], y0 + S - S * roc->tpr[k]);
  ts_report_html(o, "\"/>");
}

/* The pooled ROC curves of every binary model in one chart. */
static void roc_chart(ts_report_out *o, const mil_data *d) {
  const int W = 520, H = 340, x0 = 56, y0 = 28, S = 260; /* plot square S x S at (x0, y0) */
  ts_report_html(
      o,
      "<svg class=\"chart\" id=\"mil-roc\" role=\"img\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">"
      "<title>ROC curves, test predictions pooled over folds</title>"
      "<text x=\"0\" y=\"16\" class=\"ct\">ROC, test predictions pooled over folds</text>",
      W, H, W, H);
  roc_frame(o, x0, y0, S);
  int li = 0;
  for (int i = 0; i < d->n_models; i++) {
    const mil_model *m = &d->m[i];
    if (!m->roc) continue;
    const char *col = palette[i % N_PALETTE];
    char id[96];
    snprintf(id, sizeof id, "mil-roc-%s", m->name);
    roc_path(o, id, m->roc, col, x0, y0, S);
    int ly = y0 + 8 + 20 * li++;
    ts_report_html(o,
                   "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>"
                   "<text x=\"%d\" y=\"%d\" class=\"cl\">%s AUC %.3f</text>",
                   x0 + S + 16, ly, x0 + S + 36, ly, col, x0 + S + 42, ly + 4, m->name, m->pooled_auc);
  }
  ts_report_html(o, "<text x=\"%d\" y=\"%d\" class=\"cv\">dashed: chance</text></svg>\n", x0 + S + 16,
                 y0 + 8 + 20 * li + 4);
}

/* A multiclass model's pooled one-vs-rest ROC curves, one per class, in a chart of its own. */
static void ovr_chart(ts_report_out *o, const mil_model *m) {
  const int x0 = 56, y0 = 28, S = 260, W = 620;
  int drawn = 0;
  for (int c = 0; c < m->n_pc; c++)
    drawn += m->pc[c].roc != NULL;
  int H = y0 + 8 + 20 * (drawn + 2) + 8;
  if (H < 340) H = 340;
  ts_report_html(o,
                 "<svg class=\"chart\" id=\"mil-roc-ovr-%s\" role=\"img\" width=\"%d\" height=\"%d\" "
                 "viewBox=\"0 0 %d %d\">"
                 "<title>%s: one-vs-rest ROC curves per class, test predictions pooled over folds</title>"
                 "<text x=\"0\" y=\"16\" class=\"ct\">%s: ROC per class (one vs rest), test predictions "
                 "pooled over folds</text>",
                 m->name, W, H, W, H, m->name, m->name);
  roc_frame(o, x0, y0, S);
  int li = 0;
  for (int c = 0; c < m->n_pc; c++) {
    const mil_class *pc = &m->pc[c];
    if (!pc->roc) continue;
    const char *col = palette[pc->cls % N_PALETTE];
    char id[128];
    snprintf(id, sizeof id, "mil-roc-%s-class%d", m->name, pc->cls);
    roc_path(o, id, pc->roc, col, x0, y0, S);
    int ly = y0 + 8 + 20 * li++;
    ts_report_html(o,
                   "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>"
                   "<text x=\"%d\" y=\"%d\" class=\"cl\">class %d AUC ",
                   x0 + S + 16, ly, x0 + S + 36, ly, col, x0 + S + 42, ly + 4, pc->cls);
    est_ci(o, pc->auc, pc->lo, pc->hi);
    ts_report_html(o, "</text>");
  }
  int ly = y0 + 8 + 20 * li;
  ts_report_html(o, "<text x=\"%d\" y=\"%d\" class=\"cl mil-macro\">macro AUC ", x0 + S + 16, ly + 4);
  if (isfinite(m->pooled_auc))
    ts_report_html(o, "%.3f", m->pooled_auc);
  else
    ts_report_html(o, "–");
  ts_report_html(
      o,
      " (n = %zu)</text><text x=\"%d\" y=\"%d\" class=\"cv\">dashed: chance; [95%% DeLong CI]</text>"
      "</svg>\n",
      m->pooled_n, x0 + S + 16, ly + 24);
}

/* Per class of every multiclass model: its one-vs-rest AUC with the DeLong CI and its counts. */
static void per_class_table(ts_report_out *o, const mil_data *d) {
  ts_report_html(o,
                 "<table id=\"mil-per-class\"><tr><th>model</th><th>class</th><th>test slides of the class / "
                 "of the rest</th><th>pooled one-vs-rest AUC [95%% CI]</th></tr>\n");
  for (int i = 0; i < d->n_models; i++) {
    const mil_model *m = &d->m[i];
    if (!m->ovr) continue;
    for (int c = 0; c < m->n_pc; c++) {
      const mil_class *pc = &m->pc[c];
      ts_report_html(o,
                     "<tr id=\"mil-%s-class%d\"><td>%s</td><td class=\"n\">%d</td><td class=\"n\">%zu / "
                     "%zu</td><td class=\"n\">",
                     m->name, pc->cls, m->name, pc->cls, pc->n_pos, pc->n_neg);
      est_ci(o, pc->auc, pc->lo, pc->hi);
      ts_report_html(o, "</td></tr>\n");
    }
  }
  ts_report_html(o, "</table>\n");
}

/* Classification: the binary models' curves in one chart, each multiclass model's per class. */
static void roc_charts(ts_report_out *o, const mil_data *d) {
  int binary = 0, ovr = 0, ovr_models = 0;
  for (int i = 0; i < d->n_models; i++) {
    const mil_model *m = &d->m[i];
    binary += m->roc != NULL;
    ovr_models += m->ovr;
    for (int c = 0; m->ovr && c < m->n_pc; c++)
      ovr += m->pc[c].roc != NULL;
  }
  if (!binary && !ovr)
    ts_report_html(o, "<p class=\"warn\" id=\"mil-roc-none\">No ROC curve: %s.</p>\n",
                   d->classes > 2 ? "no class has pooled test predictions of both it and the rest"
                                  : "no model has test predictions of both classes");
  if (binary) roc_chart(o, d);
  for (int i = 0; i < d->n_models; i++) {
    const mil_model *m = &d->m[i];
    int curves = 0;
    for (int c = 0; m->ovr && c < m->n_pc; c++)
      curves += m->pc[c].roc != NULL;
    if (curves) ovr_chart(o, m);
  }
  if (ovr_models) per_class_table(o, d);
  for (int i = 0; i < d->n_models; i++) {
    const mil_model *m = &d->m[i];
    if (m->ovr) {
      for (int c = 0; c < m->n_pc; c++)
        if (!m->pc[c].roc)
          ts_report_html(o,
                         "<p class=\"warn\">%s: no ROC curve of class %d (%zu pooled test slide(s) of the "
                         "class, %zu of the rest).</p>\n",
                         m->name, m->pc[c].cls, m->pc[c].n_pos, m->pc[c].n_neg);
    } else if (!m->roc && (binary || ovr)) {
      ts_report_html(o, "<p class=\"warn\">%s: no ROC curve (%s).</p>\n", m->name,
                     "no pooled test predictions of both classes");
    }
  }
}

/* A tick step giving about five ticks over span (1, 2 or 5 times a power of ten). */
static double nice_step(double span) {
  double raw = span / 4, p = pow(10, floor(log10(raw))), f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

/* Regression: prediction against label, every model's test predictions pooled over folds, one
 * colour per model, the identity line; both axes on one scale. */
static void scatter_chart(ts_report_out *o, const mil_data *d) {
  double lo = INFINITY, hi = -INFINITY;
  for (size_t i = 0; i < d->n_pred; i++) {
    const mil_pred *p = &d->p[i];
    if (!isfinite(p->y) || !isfinite(p->yhat)) continue;
    double v[2] = {p->y, p->yhat};
    for (int k = 0; k < 2; k++)
      lo = v[k] < lo ? v[k] : lo, hi = v[k] > hi ? v[k] : hi;
  }
  if (!isfinite(lo)) {
    ts_report_html(o,
                   "<p class=\"warn\" id=\"mil-scatter-none\">No scatter plot: no test predictions.</p>\n");
    return;
  }
  if (hi - lo < 1e-9 * (fabs(lo) + 1)) lo -= 0.5 * (fabs(lo) + 1), hi += 0.5 * (fabs(hi) + 1);
  double step = nice_step(hi - lo);
  lo = floor(lo / step) * step;
  hi = ceil(hi / step) * step;
  const int W = 620, H = 360, x0 = 64, y0 = 28, S = 280;
#define SX(v) (x0 + S * ((v)-lo) / (hi - lo))
#define SY(v) (y0 + S - S * ((v)-lo) / (hi - lo))
  ts_report_html(
      o,
      "<svg class=\"chart\" id=\"mil-scatter\" role=\"img\" width=\"%d\" height=\"%d\" viewBox=\"0 "
      "0 %d %d\"><title>Prediction against label, test predictions pooled over folds</title>"
      "<text x=\"0\" y=\"16\" class=\"ct\">Prediction against label, test predictions pooled over "
      "folds</text>"
      "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#99a\"/>"
      "<line class=\"identity\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#aab\" "
      "stroke-dasharray=\"4 3\"/>",
      W, H, W, H, x0, y0, S, S, x0, y0 + S, x0 + S, y0);
  for (int t = 0; t <= 40; t++) {
    double v = lo + t * step;
    if (v > hi + step / 2) break;
    double x = SX(v), y = SY(v);
    if (fabs(v) < step * 1e-9) v = 0; /* no "-0" or "1e-17" */
    ts_report_html(o,
                   "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#99a\"/><text x=\"%.1f\" "
                   "y=\"%d\" text-anchor=\"middle\" class=\"cv\">%.4g</text>"
                   "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#99a\"/><text x=\"%d\" "
                   "y=\"%.1f\" text-anchor=\"end\" class=\"cv\">%.4g</text>",
                   x, y0 + S, x, y0 + S + 4, x, y0 + S + 16, v, x0 - 4, y, x0, y, x0 - 7, y + 4, v);
  }
  ts_report_html(o,
                 "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"cl\">label</text>"
                 "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"cl\" transform=\"rotate(-90 %d "
                 "%d)\">prediction</text>",
                 x0 + S / 2, y0 + S + 34, 14, y0 + S / 2, 14, y0 + S / 2);
  for (int i = 0; i < d->n_models; i++) {
    const mil_model *m = &d->m[i];
    const char *col = palette[i % N_PALETTE];
    size_t n = 0;
    for (size_t k = m->p0; k < m->p0 + m->np; k++)
      n += isfinite(d->p[k].y) && isfinite(d->p[k].yhat);
    ts_report_html(o,
                   "<g id=\"mil-scatter-%s\" class=\"scatter\" data-points=\"%zu\" fill=\"%s\" "
                   "fill-opacity=\"0.7\" stroke=\"%s\">",
                   m->name, n, col, col);
    for (size_t k = m->p0; k < m->p0 + m->np; k++) {
      const mil_pred *p = &d->p[k];
      if (!isfinite(p->y) || !isfinite(p->yhat)) continue;
      ts_report_html(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\"><title>", SX(p->y), SY(p->yhat));
      ts_report_html_text(o, p->slide);
      ts_report_html(o, " (fold %d): label %.4g, prediction %.4g</title></circle>", p->fold, p->y, p->yhat);
    }
    ts_report_html(o, "</g>");
    int ly = y0 + 8 + 36 * i;
    ts_report_html(o,
                   "<circle cx=\"%d\" cy=\"%d\" r=\"4\" fill=\"%s\"/><text x=\"%d\" y=\"%d\" class=\"cl\">%s "
                   "(n = %zu)</text><text x=\"%d\" y=\"%d\" class=\"cv\">Pearson r ",
                   x0 + S + 22, ly, col, x0 + S + 32, ly + 4, m->name, n, x0 + S + 32, ly + 19);
    for (int k = 0; k < 2; k++) {
      if (k) ts_report_html(o, ", Spearman r ");
      if (isfinite(m->corr[k].r))
        ts_report_html(o, "%.3f", m->corr[k].r);
      else
        ts_report_html(o, "–");
    }
    ts_report_html(o, "</text>");
  }
  ts_report_html(o,
                 "<text x=\"%d\" y=\"%d\" class=\"cv\">dashed: identity (prediction = label)</text></svg>\n",
                 x0 + S + 16, y0 + 8 + 36 * d->n_models + 4);
#undef SX
#undef SY
}
/* One fold's learning curve: train (solid) and validation (dashed) loss, the best epoch marked. */
static void curve_chart(ts_report_out *o, const mil_model *m, int mi, const mil_fold *f) {
  const int W = 250, H = 170, x0 = 46, y0 = 22, PW = 190, PH = 112;
  double lo = INFINITY, hi = -INFINITY;
  for (int i = 0; i < f->n_ep; i++) {
    double v[2] = {f->ep[i].train_loss, f->ep[i].val_loss};
    for (int k = 0; k < 2; k++)
      if (isfinite(v[k])) lo = v[k] < lo ? v[k] : lo, hi = v[k] > hi ? v[k] : hi;
  }
  if (!isfinite(lo)) return;
  if (hi - lo < 1e-9) lo -= 0.5e-3, hi += 0.5e-3;
  int e1 = f->ep[0].epoch, en = f->ep[f->n_ep - 1].epoch;
  double span = en > e1 ? en - e1 : 1;
#define CX(e) (x0 + PW * ((e)-e1) / span)
#define CY(v) (y0 + PH - PH * ((v)-lo) / (hi - lo))
  ts_report_html(
      o,
      "<svg class=\"chart curve\" id=\"mil-curve-%s-fold%d\" role=\"img\" width=\"%d\" height=\"%d\" "
      "viewBox=\"0 0 %d %d\">"
      "<title>%s fold %d: loss per epoch</title><text x=\"0\" y=\"14\" class=\"ct\">%s, fold %d</text>"
      "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#99a\"/>",
      m->name, f->fold, W, H, W, H, m->name, f->fold, m->name, f->fold, x0, y0, PW, PH);
  ts_report_html(o,
                 "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" class=\"cv\">%.3g</text><text x=\"%d\" "
                 "y=\"%d\" text-anchor=\"end\" class=\"cv\">%.3g</text>"
                 "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"cv\">%d</text><text x=\"%d\" "
                 "y=\"%d\" text-anchor=\"middle\" class=\"cv\">%d</text>"
                 "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"cl\">epoch</text>"
                 "<text x=\"10\" y=\"%d\" text-anchor=\"middle\" class=\"cl\" transform=\"rotate(-90 10 "
                 "%d)\">loss</text>",
                 x0 - 4, y0 + 8, hi, x0 - 4, y0 + PH, lo, x0, y0 + PH + 13, e1, x0 + PW, y0 + PH + 13, en,
                 x0 + PW / 2, y0 + PH + 28, y0 + PH / 2, y0 + PH / 2);
  const char *col = palette[mi % N_PALETTE];
  for (int s = 0; s < 2; s++) {
    ts_report_html(o, "<path class=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\"%s d=\"",
                   s ? "val-loss" : "train-loss", col, s ? " stroke-dasharray=\"5 3\"" : "");
    bool pen = false;
    for (int i = 0; i < f->n_ep; i++) {
      double v = s ? f->ep[i].val_loss : f->ep[i].train_loss;
      if (!isfinite(v)) {
        pen = false;
        continue;
      }
      ts_report_html(o, "%s%.1f %.1f", pen ? " L" : "M", CX(f->ep[i].epoch), CY(v));
      pen = true;
    }
    ts_report_html(o, "\"/>");
  }
  for (int i = 0; i < f->n_ep; i++)
    if (f->ep[i].epoch == f->best_epoch && isfinite(f->ep[i].val_loss)) {
      double x = CX(f->best_epoch);
      ts_report_html(o,
                     "<line class=\"best-epoch\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" "
                     "stroke=\"#b42318\" stroke-dasharray=\"2 2\"/>"
                     "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"#b42318\"/>"
                     "<text x=\"%.1f\" y=\"%d\" text-anchor=\"%s\" class=\"cv\">best %lld</text>",
                     x, y0, x, y0 + PH, x, CY(f->ep[i].val_loss), x + (x > x0 + PW * 0.7 ? -4 : 4), y0 + 12,
                     x > x0 + PW * 0.7 ? "end" : "start", (long long)f->best_epoch);
    }
#undef CX
#undef CY
  ts_report_html(o, "</svg>");
}

static void curves(ts_report_out *o, const mil_data *d) {
  ts_report_html(o,
                 "<h3>Learning curves</h3><p>Loss per epoch%s: solid train, dashed validation; the red mark "
                 "is the best epoch "
                 "by validation loss, whose weights were kept and tested.</p>\n",
                 d->regression ? " (mean squared error of the standardised score)" : "");
  for (int i = 0; i < d->n_models; i++) {
    const mil_model *m = &d->m[i];
    ts_report_html(o, "<div class=\"milcurves\" id=\"mil-curves-%s\">", m->name);
    int n = 0;
    for (int k = 0; k < d->folds; k++)
      if (m->f[k].n_ep > 0) curve_chart(o, m, i, &m->f[k]), n++;
    if (!n) ts_report_html(o, "<p>%s: no curve.csv.</p>", m->name);
    ts_report_html(o, "</div>\n");
  }
}

typedef struct page_ctx {
  const mil_data *d;
  int page, pages; /* 1-based */
} page_ctx;

static void pager(ts_report_out *o, int page, int pages) {
  ts_report_html(o, "<p class=\"pager\">Pages of %d test predictions: ", ROWS_PER_PAGE);
  for (int k = 1; k <= pages; k++) {
    if (k == page)
      ts_report_html(o, "<b>%d</b>", k);
    else
      ts_report_html(o, "<a href=\"mil-%d.html\">%d</a>", k, k);
  }
  ts_report_html(o, "</p>\n");
}

static void pred_rows(ts_report_out *o, const page_ctx *c) {
  const mil_data *d = c->d;
  size_t a = (size_t)(c->page - 1) * ROWS_PER_PAGE,
         b = a + ROWS_PER_PAGE < d->n_pred ? a + ROWS_PER_PAGE : d->n_pred;
  if (d->regression)
    ts_report_html(o, "<table class=\"milpred\" "
                      "id=\"mil-predictions\"><tr><th>model</th><th>fold</th><th>slide</th><th>patient</th>"
                      "<th>label</th><th>prediction</th><th>heatmap</th></tr>\n");
  else
    ts_report_html(o,
                   "<table class=\"milpred\" "
                   "id=\"mil-predictions\"><tr><th>model</th><th>fold</th><th>slide</th><th>patient</th>"
                   "<th>label</th><th>%s</th><th>predicted</th><th>heatmap</th></tr>\n",
                   d->classes > 2 ? "probabilities" : "P(class 1)");
  for (size_t i = a; i < b; i++) {
    const mil_pred *p = &d->p[i];
    const char *model = d->m[p->model].name;
    ts_report_html(o, "<tr><td>%s</td><td class=\"n\">%d</td><td>", model, p->fold);
    ts_report_html_text(o, p->slide);
    ts_report_html(o, "</td><td>");
    ts_report_html_text(o, p->patient);
    if (d->regression) {
      ts_report_html(o, "</td><td class=\"n\">%.4g</td><td class=\"n\">%.4g</td><td>", p->y, p->yhat);
    } else {
      ts_report_html(o, "</td><td class=\"n\">%d</td><td class=\"n\">", p->label);
      if (p->nclass == 2)
        ts_report_html(o, "%.3f", p->prob[1]);
      else
        for (int k = 0; k < p->nclass; k++)
          ts_report_html(o, "%s%.3f", k ? ", " : "", p->prob[k]);
      ts_report_html(o, "</td><td class=\"n %s\">%d</td><td>", p->pred == p->label ? "ok" : "bad", p->pred);
    }
    if (p->heatmap[0]) {
      char thumb[300];
      snprintf(thumb, sizeof thumb, "mil.%s.fold%d.%s", model, p->fold, p->slide);
      ts_report_html_thumb(o, p->heatmap, thumb, p->heatmap);
    } else {
      ts_report_html(o, "–");
    }
    ts_report_html(o, "</td></tr>\n");
  }
  ts_report_html(o, "</table>\n");
}

static const char pred_style[] =
    "<style>table.milpred img{width:96px;height:auto;border:1px solid #ccd}"
    "table.milpred .missing{width:96px;height:40px}.milcurves{display:flex;flex-wrap:wrap;gap:6px}</style>\n";

static int page_body(void *ctx, ts_report_out *o) {
  const page_ctx *c = ctx;
  size_t a = (size_t)(c->page - 1) * ROWS_PER_PAGE + 1,
         b = (size_t)c->page * ROWS_PER_PAGE < c->d->n_pred ? (size_t)c->page * ROWS_PER_PAGE : c->d->n_pred;
  ts_report_html(o, "%s<section id=\"mil\"><h2>MIL test predictions %zu–%zu of %zu</h2>\n", pred_style, a, b,
                 c->d->n_pred);
  pager(o, c->page, c->pages);
  pred_rows(o, c);
  pager(o, c->page, c->pages);
  ts_report_html(o, "</section>\n");
  return 0;
}

static int predictions(ts_report_out *o, const mil_data *d) {
  size_t heat = 0;
  for (size_t i = 0; i < d->n_pred; i++)
    heat += d->p[i].heatmap[0] != '\0';
  ts_report_html(
      o,
      "<h3>Test slides</h3><p><b id=\"mil-n-predictions\">%zu</b> test predictions (each slide as tested by "
      "each model in its fold), %zu with an attention heatmap (click for the full-size image).</p>\n",
      d->n_pred, heat);
  if (!d->n_pred) return 0;
  int pages = (int)((d->n_pred + ROWS_PER_PAGE - 1) / ROWS_PER_PAGE);
  page_ctx c = {d, 1, pages};
  if (pages > 1) {
    for (int k = 1; k <= pages; k++) {
      char file[64], title[64];
      snprintf(file, sizeof file, "mil-%d.html", k);
      snprintf(title, sizeof title, "tessera MIL predictions, page %d of %d", k, pages);
      c.page = k;
      TS_CALL(ts_report_html_page(o, file, title, page_body, &c));
    }
    c.page = 1;
    pager(o, 1, pages);
  }
  pred_rows(o, &c);
  return 0;
}

static int mil_html(const ts_report *r, const void *data, ts_report_out *o) {
  (void)r;
  const mil_data *d = data;
  ts_report_html(o, "%s", pred_style);
  if (d->info.note[0]) {
    ts_report_html(o, "<p class=\"warn\">Not run in the last invocation: ");
    ts_report_html_text(o, d->info.note);
    ts_report_html(o, " (the results below are from an earlier one)</p>\n");
  }
  if (d->regression)
    ts_report_html(
        o,
        "<p>%d model(s) × %d fold(s), regression task (the label is a continuous score). Each fold's model "
        "is "
        "the epoch with the lowest validation loss (mean squared error of the score standardised by the "
        "training slides' mean and sd), evaluated on the fold's test slides only; MSE and predictions are in "
        "the label's units. Mean ± sd over folds; the pooled Pearson and Spearman r are those of all folds' "
        "test predictions together, with Fisher-z 95%% confidence intervals.</p>\n",
        d->n_models, d->folds);
  else
    ts_report_html(
        o,
        "<p>%d model(s) × %d fold(s), %s task (%d classes). Each fold's model is the epoch with the lowest "
        "validation loss, evaluated on the fold's test slides only. Mean ± sd over folds; the pooled AUC is "
        "that of all folds' test predictions together, with its DeLong 95%% confidence interval%s.</p>\n",
        d->n_models, d->folds, d->classes > 2 ? "multiclass" : "binary", d->classes,
        d->classes > 2 ? " (with more than two classes: the one-vs-rest macro AUC, no interval; each class's "
                         "one-vs-rest AUC, with its interval, is below)"
                       : "");
  summary_table(o, d);
  fold_table(o, d);
  if (d->regression)
    scatter_chart(o, d);
  else
    roc_charts(o, d);
  curves(o, d);
  return predictions(o, d);
}

const struct ts_report_section ts_report_section_mil = {.abi = TS_REPORT_SECTION_ABI,
                                                        .name = "mil",
                                                        .title = "Slide classifiers (MIL)",
                                                        .load = mil_load,
                                                        .release = mil_release,
                                                        .html = mil_html,
                                                        .json = mil_json};
