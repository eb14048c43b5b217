/* report_survival.c — the report section "survival", owned by the survival stage
 * (stages/survival.c lists it in .report): patient risk models fitted and evaluated across
 * patient-level folds.
 *
 * Present only when survival/summary.json exists (the stage's finish wrote it); it names the
 * models and the number of folds. Every number is then read back from the per-unit files at
 * full precision, not from the summary's copy: survival/<model>/fold<k>/metrics.json (set
 * sizes, test events, Harrell's C with its SE, Uno's C and its tau, the cumulative/dynamic AUC
 * at three times, the risk cut, the risk group sizes, the log-rank p, the hazard ratio high vs
 * low with its CI), km.csv (the Kaplan-Meier curves of the test part's two risk groups) and
 * model.json (the fitted coefficients with SE, HR, CI and p); survival/splits.csv (the study's
 * patients and events) and survival/excluded.csv (every patient left out, with its token). The
 * ledger (read API) says which folds failed or are pending, and the note a fold completed with
 * (SURV_C_UNDEFINED, SURV_HR_INFINITE, SURV_ONE_RISK_GROUP).
 *
 * metrics.json also gives the percentile bootstrap CI of the test C (c_index_boot_ci95, _sd,
 * bootstrap), the integrated Brier score (ibs over brier_times, brier at each), the calibration
 * time and how S(t) was predicted. A deep model (amil, snn, mmf_*, coattn: its model.json has
 * "arch", and no coefficients) adds curve.csv (epoch,train_loss,val_loss,val_c_index,best) and,
 * for a pathology model, heatmaps.csv (patient_id,group,risk,slide_id: the highest- and
 * lowest-risk test patients) with heatmaps/<slide>.png and <slide>.top.png. The pooled test
 * figures (every fold's test patients together: Harrell's C with its bootstrap CI, the
 * calibration groups) come from summary.json's models[i].pooled_test, at full precision: the
 * stage's bootstrap draws cannot be redone here.
 *
 * What it shows: first the table a user quotes, model x metric: Harrell's C mean ± sd over the
 * folds, the pooled test C [bootstrap 95% CI] (patients), Uno's C and the IBS mean ± sd, the
 * folds done. Then per model:
 *  - a table of the test-part figures per fold: Harrell's C (SE) [bootstrap CI], Uno's C (tau),
 *    the AUC at the fold's three times (the quartiles of its training event times), the IBS,
 *    the log-rank p, the HR high vs low [95% CI], the group sizes; then the mean ± sample sd
 *    over the folds where the figure is defined (recomputed here; the count when some fold
 *    lacks it);
 *  - the Kaplan-Meier curves of the high and low risk test groups, one small inline SVG per
 *    fold (not pooled: each fold has its own risk cut), step curves with the 95% CI band of
 *    km.csv shaded and censorings ticked, annotated with the fold's log-rank p and HR;
 *  - the calibration of the pooled test patients at t_cal: an inline SVG of the mean predicted
 *    S(t_cal) per quintile against its Kaplan-Meier estimate with the 95% CI as bars, the
 *    diagonal, and the same as a table (a group whose follow-up ends before t_cal: "—");
 *  - deep models: the training curves (train and validation loss per epoch, the folds overlaid
 *    in one SVG, each fold's best epoch marked), and the heatmaps of the highest- and lowest-
 *    risk test patients per fold as thumbnails linking the stage's PNGs, with patient, group
 *    and risk;
 *  - the coefficients of every model whose model.json gives them with standard errors (an
 *    unpenalised Cox fit: cox_clinical; a penalised model's list of selected coefficients is in
 *    report.json only): per covariate and fold the HR [95% CI] and p, and over the folds the
 *    mean ± sd of the coefficient (log HR) with exp(mean) as the summary HR.
 * Then the patients left out with their tokens: counts per token and the table (collapsed in a
 * <details> beyond EX_OPEN_MAX rows; beyond EX_PER_PAGE rows on further pages
 * report/survival-excluded-<k>.html). Undefined figures are "—" on the page and null in JSON.
 * report.json holds the same figures, every km.csv row and every excluded patient. JSON keys
 * follow the compare rules of ts_report.h: results everywhere, except a fold's "seconds" (its
 * time from the ledger: performance). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_error.h"
#include "ts_io.h"
#include "ts_json.h"
#include "ts_report.h"
#include "ts_stage.h"

#define N_AUC 3
#define EX_OPEN_MAX 20  /* excluded rows shown open; more: collapsed */
#define EX_PER_PAGE 100 /* excluded rows per page; more: further pages */
#define UNDEF "—"       /* an undefined figure on the page */

/* The figures averaged over folds: report.json key (with _mean, _sd, _folds), format. */
enum { S_C, S_UNO, S_AUC0, S_AUC1, S_AUC2, S_IBS, S_LR, S_HR, N_STAT };
static const char *const stat_key[N_STAT] = {"c_index", "uno_c", NULL, NULL, NULL, "ibs", "logrank_p", "hr_high_vs_low"};
static const char *const stat_fmt[N_STAT] = {"%.3f", "%.3f", "%.3f", "%.3f", "%.3f", "%.3f", "%.3g", "%.2f"};
static const char *const group_name[2] = {"high", "low"};
static const char *const group_col[2] = {"#b42318", "#4f7cc3"};

typedef struct km_curve {
  size_t n;
  double *time, *n_risk, *n_event, *surv, *lower, *upper; /* one allocation, 6 x n */
} km_curve;

typedef struct coef {
  char *name;
  double coef, se, hr, lo, hi, p;
} coef;

#define N_BRIER 32 /* Brier times per fold kept (the stage writes 10) */

typedef struct sepoch {
  int64_t epoch;
  double train_loss, val_loss, val_c;
  int best; /* 1: the validation loss improved (the weights kept then) */
} sepoch;

typedef struct sheat {
  char *patient, *group, *slide;
  double risk;
  char png[600], top[600]; /* run-relative, "" when the file is not there */
} sheat;

typedef struct scal { /* one calibration group of the pooled test patients */
  int64_t group, n;
  double predicted, observed, lo, hi;
} scal;

typedef struct sfold {
  int fold;
  bool have;               /* metrics.json was read */
  const ts_report_unit *u; /* the ledger's unit "<model>:fold<k>", NULL none */
  int64_t n_train, n_val, n_test, test_events, n_high, n_low; /* -1 unknown */
  double c, c_se, uno, tau, at[N_AUC], auc[N_AUC], cut, lr_p, hr, hr_lo, hr_hi;
  bool have_km;            /* km.csv was read (it may hold no row: no event in the test part) */
  km_curve km[2];          /* high, low */
  bool have_model;         /* model.json was read */
  int n_coef;
  coef *coef;
  bool coef_se;            /* some coefficient has a standard error (an unpenalised fit) */
  char *warning;           /* the fit's warning, NULL none */
  /* predicted survival (metrics.json) */
  double boot_lo, boot_hi, boot_sd, ibs, t_cal;
  int64_t bootstrap;       /* resamples, -1 unknown */
  int n_brier;
  double brier_t[N_BRIER], brier[N_BRIER];
  char *spred;             /* how S(t) was predicted, NULL unknown */
  /* a deep model (model.json has "arch"): its training, curve.csv, heatmaps.csv */
  bool deep;
  char arch[32], loss[16], inputs[64];
  int64_t weights, epochs_run, best_epoch; /* -1 unknown */
  double best_val_loss;
  bool have_curve;
  int n_ep;
  sepoch *ep;
  bool have_heat;
  int n_heat;
  sheat *heat;
} sfold;

typedef struct coef_sum {
  char *name; /* borrowed from the first fold that has it */
  double mean, sd;
  int n;
} coef_sum;

typedef struct smodel {
  char name[64];
  sfold *f;
  int folds_done, folds_failed, folds_pending;
  double mean[N_STAT], sd[N_STAT];
  int nfin[N_STAT];
  int n_cs;
  coef_sum *cs;
  bool deep;               /* some fold is of a deep model */
  /* summary.json's pooled_test: every fold's test patients together */
  bool have_pooled;
  int64_t p_n, p_boot;
  double p_c, p_se, p_lo, p_hi, p_tcal;
  int n_cal;
  scal *cal;
} smodel;

typedef struct sexcl {
  char *id, *token, *detail;
} sexcl;

typedef struct surv_data {
  ts_report_units units;
  ts_report_stage_info info;
  int folds, n_models;
  smodel *m;
  int64_t patients, events; /* of the study (splits.csv fold 0), -1 unknown */
  size_t n_ex;
  sexcl *ex;
} surv_data;

static void surv_release(void *data) {
  surv_data *d = data;
  if (!d) return;
  for (int i = 0; i < d->n_models; i++) {
    smodel *m = &d->m[i];
    for (int k = 0; m->f && k < d->folds; k++) {
      sfold *f = &m->f[k];
      for (int g = 0; g < 2; g++) free(f->km[g].time);
      for (int c = 0; c < f->n_coef; c++) free(f->coef[c].name);
      free(f->coef);
      free(f->warning);
      free(f->spred);
      free(f->ep);
      for (int h = 0; h < f->n_heat; h++) free(f->heat[h].patient), free(f->heat[h].group), free(f->heat[h].slide);
      free(f->heat);
    }
    free(m->f);
    free(m->cs);
    free(m->cal);
  }
  free(d->m);
  for (size_t i = 0; i < d->n_ex; i++) {
    free(d->ex[i].id);
    free(d->ex[i].token);
    free(d->ex[i].detail);
  }
  free(d->ex);
  ts_report_units_clear(&d->units);
  free(d);
}

/* ---- reading ---- */

/* A CSV number; NaN when empty or not a number. */
static double csv_num(const char *s) {
  if (!s || !*s) return NAN;
  char *end;
  double v = strtod(s, &end);
  return *end ? NAN : v;
}

static void read_metrics(const ts_report *r, const char *model, sfold *f) {
  char rel[512];
  snprintf(rel, sizeof rel, "survival/%s/fold%d/metrics.json", model, f->fold);
  char *text = ts_report_read_text(r, rel);
  ts_json j;
  if (!text || ts_json_parse(text, &j) < 0) {
    ts_error_clear();
    free(text);
    return;
  }
  f->have = true;
  f->n_train = ts_json_count(&j, "n_train");
  f->n_val = ts_json_count(&j, "n_val");
  f->n_test = ts_json_count(&j, "n_test");
  f->test_events = ts_json_count(&j, "test_events");
  f->n_high = ts_json_count(&j, "n_high");
  f->n_low = ts_json_count(&j, "n_low");
  f->c = ts_json_num(&j, "c_index");
  f->c_se = ts_json_num(&j, "c_index_se");
  f->uno = ts_json_num(&j, "uno_c");
  f->tau = ts_json_num(&j, "uno_tau");
  for (int k = 0; k < N_AUC; k++) {
    f->at[k] = ts_json_num_at(&j, "auc_times", k);
    f->auc[k] = ts_json_num_at(&j, "auc", k);
  }
  f->cut = ts_json_num(&j, "risk_cut");
  f->lr_p = ts_json_num(&j, "logrank_p");
  f->hr = ts_json_num(&j, "hr_high_vs_low");
  f->hr_lo = ts_json_num_at(&j, "hr_ci95", 0);
  f->hr_hi = ts_json_num_at(&j, "hr_ci95", 1);
  f->boot_lo = ts_json_num_at(&j, "c_index_boot_ci95", 0);
  f->boot_hi = ts_json_num_at(&j, "c_index_boot_ci95", 1);
  f->boot_sd = ts_json_num(&j, "c_index_boot_sd");
  f->bootstrap = ts_json_count(&j, "bootstrap");
  f->ibs = ts_json_num(&j, "ibs");
  f->t_cal = ts_json_num(&j, "calibration_time");
  const ts_json *bt = ts_json_get(&j, "brier_times");
  if (bt && bt->type == TS_JARR)
    for (int k = 0; k < bt->n && f->n_brier < N_BRIER; k++) {
      f->brier_t[f->n_brier] = ts_json_num_at(&j, "brier_times", k);
      f->brier[f->n_brier++] = ts_json_num_at(&j, "brier", k);
    }
  const char *sp = ts_json_str(&j, "survival_prediction");
  if (sp) f->spred = strdup(sp); /* NULL on no memory: shown as unknown */
  ts_json_clear(&j);
  free(text);
}

/* km.csv: group,time,n_risk,n_event,surv,lower,upper (lower/upper empty where undefined) */
static int read_km(const ts_report *r, const char *model, sfold *f) {
  char rel[512];
  snprintf(rel, sizeof rel, "survival/%s/fold%d/km.csv", model, f->fold);
  char *text = ts_report_read_text(r, rel);
  if (!text) return 0;
  size_t lines = 1;
  for (const char *p = text; *p; p++) lines += *p == '\n';
  for (int g = 0; g < 2; g++) {
    km_curve *c = &f->km[g];
    if (!(c->time = calloc(6 * lines, sizeof *c->time))) {
      free(text);
      return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report survival: km.csv");
    }
    c->n_risk = c->time + lines;
    c->n_event = c->time + 2 * lines;
    c->surv = c->time + 3 * lines;
    c->lower = c->time + 4 * lines;
    c->upper = c->time + 5 * lines;
  }
  char *save = NULL;
  bool header = true;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *c[8];
    int nf = ts_report_csv_split(line, c, 8);
    if (header) { /* the first line names the columns */
      header = false;
      if (nf != 7 || strcmp(c[0], "group") || strcmp(c[4], "surv")) break; /* not a file this section knows */
      f->have_km = true;
      continue;
    }
    if (nf != 7) continue;
    int g = !strcmp(c[0], "high") ? 0 : !strcmp(c[0], "low") ? 1 : -1;
    if (g < 0) continue;
    km_curve *k = &f->km[g];
    size_t i = k->n++;
    k->time[i] = csv_num(c[1]);
    k->n_risk[i] = csv_num(c[2]);
    k->n_event[i] = csv_num(c[3]);
    k->surv[i] = csv_num(c[4]);
    k->lower[i] = csv_num(c[5]);
    k->upper[i] = csv_num(c[6]);
  }
  free(text);
  return 0;
}

/* model.json: {"coefficients": [{"name", "coef", "se", "hr", "hr_ci95": [lo, hi], "p"}], "warning"} */
static int read_model(const ts_report *r, const char *model, sfold *f) {
  char rel[512];
  snprintf(rel, sizeof rel, "survival/%s/fold%d/model.json", model, f->fold);
  char *text = ts_report_read_text(r, rel);
  ts_json j;
  if (!text || ts_json_parse(text, &j) < 0) {
    ts_error_clear();
    free(text);
    return 0;
  }
  free(text);
  int rc = 0;
  f->have_model = true;
  const char *w = ts_json_str(&j, "warning");
  if (w && w[0] && !(f->warning = strdup(w))) rc = ts_error_set(TS_ENOMEM, "NO_MEMORY", "report survival: model.json");
  const char *arch = ts_json_str(&j, "arch"); /* a deep model: its training, no coefficients */
  if (arch) {
    f->deep = true;
    snprintf(f->arch, sizeof f->arch, "%s", arch);
    const char *loss = ts_json_str(&j, "loss"), *in = ts_json_str(&j, "inputs");
    snprintf(f->loss, sizeof f->loss, "%s", loss ? loss : "");
    snprintf(f->inputs, sizeof f->inputs, "%s", in ? in : "");
    f->weights = ts_json_count(&j, "weights");
    f->epochs_run = ts_json_count(&j, "epochs_run");
    f->best_epoch = ts_json_count(&j, "best_epoch");
    f->best_val_loss = ts_json_num(&j, "best_val_loss");
  }
  const ts_json *cs = ts_json_get(&j, "coefficients");
  if (rc == 0 && cs && cs->type == TS_JARR && cs->n > 0) {
    if (!(f->coef = calloc((size_t)cs->n, sizeof *f->coef))) rc = ts_error_set(TS_ENOMEM, "NO_MEMORY", "report survival: model.json");
    for (int i = 0; rc == 0 && i < cs->n; i++) {
      const ts_json *e = &cs->kids[i];
      const char *name = ts_json_str(e, "name");
      if (!name) continue;
      coef *c = &f->coef[f->n_coef];
      if (!(c->name = strdup(name))) {
        rc = ts_error_set(TS_ENOMEM, "NO_MEMORY", "report survival: model.json");
        break;
      }
      f->n_coef++;
      c->coef = ts_json_num(e, "coef");
      c->se = ts_json_num(e, "se");
      c->hr = ts_json_num(e, "hr");
      c->lo = ts_json_num_at(e, "hr_ci95", 0);
      c->hi = ts_json_num_at(e, "hr_ci95", 1);
      c->p = ts_json_num(e, "p");
      f->coef_se |= isfinite(c->se);
    }
  }
  ts_json_clear(&j);
  return rc;
}

/* curve.csv of a deep model: epoch,train_loss,val_loss,val_c_index,best (empty: undefined). */
static int read_curve(const ts_report *r, const char *model, sfold *f) {
  char rel[512];
  snprintf(rel, sizeof rel, "survival/%s/fold%d/curve.csv", model, f->fold);
  char *text = ts_report_read_text(r, rel);
  if (!text) return 0;
  size_t lines = 1;
  for (const char *p = text; *p; p++) lines += *p == '\n';
  if (!(f->ep = calloc(lines, sizeof *f->ep))) {
    free(text);
    return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report survival: curve.csv");
  }
  char *save = NULL;
  bool header = true;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *c[8];
    int nf = ts_report_csv_split(line, c, 8);
    if (header) {
      header = false;
      if (nf != 5 || strcmp(c[0], "epoch") || strcmp(c[2], "val_loss")) break;
      f->have_curve = true;
      continue;
    }
    double e = csv_num(c[0]);
    if (nf != 5 || !isfinite(e)) continue;
    sepoch *q = &f->ep[f->n_ep++];
    q->epoch = (int64_t)e;
    q->train_loss = csv_num(c[1]);
    q->val_loss = csv_num(c[2]);
    q->val_c = csv_num(c[3]);
    q->best = !strcmp(c[4], "1");
  }
  free(text);
  return 0;
}

/* heatmaps.csv of a pathology model: patient_id,group,risk,slide_id (one row per slide of the
 * highest- and lowest-risk test patients), with heatmaps/<slide>.png and .top.png when there. */
static int read_heat(const ts_report *r, const char *model, sfold *f) {
  char rel[600];
  snprintf(rel, sizeof rel, "survival/%s/fold%d/heatmaps.csv", model, f->fold);
  char *text = ts_report_read_text(r, rel);
  if (!text) return 0;
  size_t lines = 1;
  for (const char *p = text; *p; p++) lines += *p == '\n';
  if (!(f->heat = calloc(lines, sizeof *f->heat))) {
    free(text);
    return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report survival: heatmaps.csv");
  }
  int rc = 0;
  char *save = NULL;
  bool header = true;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *c[6];
    int nf = ts_report_csv_split(line, c, 6);
    if (header) {
      header = false;
      if (nf != 4 || strcmp(c[0], "patient_id") || strcmp(c[3], "slide_id")) break;
      f->have_heat = true;
      continue;
    }
    if (nf != 4 || !ts_id_is_safe(c[3])) continue;
    sheat *h = &f->heat[f->n_heat];
    h->patient = strdup(c[0]);
    h->group = strdup(c[1]);
    h->slide = strdup(c[3]);
    if (!h->patient || !h->group || !h->slide) {
      free(h->patient), free(h->group), free(h->slide);
      rc = ts_error_set(TS_ENOMEM, "NO_MEMORY", "report survival: heatmaps.csv");
      break;
    }
    f->n_heat++;
    h->risk = csv_num(c[2]);
    snprintf(rel, sizeof rel, "survival/%s/fold%d/heatmaps/%s.png", model, f->fold, h->slide);
    if (ts_report_exists(r, rel)) snprintf(h->png, sizeof h->png, "%s", rel);
    snprintf(rel, sizeof rel, "survival/%s/fold%d/heatmaps/%s.top.png", model, f->fold, h->slide);
    if (ts_report_exists(r, rel)) snprintf(h->top, sizeof h->top, "%s", rel);
  }
  free(text);
  return rc;
}

/* summary.json models[i].pooled_test: {n, c_index, c_index_se, c_index_boot_ci95, bootstrap,
 * calibration_time, calibration: [{group, n, predicted, observed, observed_ci95}]}. The pooled
 * figures come from the summary (the stage's bootstrap cannot be redrawn here), at %.17g. */
static int read_pooled(const ts_json *mj, smodel *m) {
  const ts_json *p = ts_json_get(mj, "pooled_test");
  m->p_n = m->p_boot = -1;
  m->p_c = m->p_se = m->p_lo = m->p_hi = m->p_tcal = NAN;
  if (!p || p->type != TS_JOBJ) return 0;
  m->have_pooled = true;
  m->p_n = ts_json_count(p, "n");
  m->p_boot = ts_json_count(p, "bootstrap");
  m->p_c = ts_json_num(p, "c_index");
  m->p_se = ts_json_num(p, "c_index_se");
  m->p_lo = ts_json_num_at(p, "c_index_boot_ci95", 0);
  m->p_hi = ts_json_num_at(p, "c_index_boot_ci95", 1);
  m->p_tcal = ts_json_num(p, "calibration_time");
  const ts_json *cal = ts_json_get(p, "calibration");
  if (!cal || cal->type != TS_JARR || cal->n == 0) return 0;
  if (!(m->cal = calloc((size_t)cal->n, sizeof *m->cal))) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report survival: calibration");
  for (int i = 0; i < cal->n; i++) {
    const ts_json *e = &cal->kids[i];
    if (e->type != TS_JOBJ) continue;
    scal *c = &m->cal[m->n_cal++];
    c->group = ts_json_count(e, "group");
    c->n = ts_json_count(e, "n");
    c->predicted = ts_json_num(e, "predicted");
    c->observed = ts_json_num(e, "observed");
    c->lo = ts_json_num_at(e, "observed_ci95", 0);
    c->hi = ts_json_num_at(e, "observed_ci95", 1);
  }
  return 0;
}

/* splits.csv (fold,set,patient_id,time,event,stratum): each patient once per fold; fold 0's
 * rows are the study. */
static void read_study(const ts_report *r, surv_data *d) {
  d->patients = d->events = -1;
  char *text = ts_report_read_text(r, "survival/splits.csv");
  if (!text) return;
  char *save = NULL;
  bool header = true;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *c[8];
    int nf = ts_report_csv_split(line, c, 8);
    if (header) {
      header = false;
      if (nf != 6 || strcmp(c[0], "fold") || strcmp(c[4], "event")) break;
      d->patients = d->events = 0;
      continue;
    }
    if (nf != 6 || strcmp(c[0], "0")) continue;
    d->patients++;
    d->events += !strcmp(c[4], "1");
  }
  free(text);
}

/* excluded.csv: patient_id,token,detail with the detail quoted ("path:line: why"). The token
 * (SURV_...) is found from the left, so an id with a comma stays whole. */
static int read_excluded(const ts_report *r, surv_data *d) {
  char *text = ts_report_read_text(r, "survival/excluded.csv");
  if (!text) return 0;
  size_t lines = 1;
  for (const char *p = text; *p; p++) lines += *p == '\n';
  if (!(d->ex = calloc(lines, sizeof *d->ex))) {
    free(text);
    return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report survival: excluded.csv");
  }
  int rc = 0;
  char *save = NULL;
  bool header = true;
  for (char *line = strtok_r(text, "\n", &save); line && rc == 0; line = strtok_r(NULL, "\n", &save)) {
    size_t len = strlen(line);
    if (len && line[len - 1] == '\r') line[--len] = '\0';
    if (header) {
      header = false;
      if (strncmp(line, "patient_id,token,detail", 23)) break;
      continue;
    }
    char *tok = strstr(line, ",SURV_");
    if (!tok) continue;
    *tok++ = '\0';
    char *detail = strchr(tok, ',');
    if (detail) *detail++ = '\0';
    else detail = tok + strlen(tok);
    size_t dl = strlen(detail);
    if (dl >= 2 && detail[0] == '"' && detail[dl - 1] == '"') { /* unquote, "" -> " */
      detail[dl - 1] = '\0';
      detail++;
      char *w = detail;
      for (char *p = detail; *p; p++) {
        *w++ = *p;
        if (p[0] == '"' && p[1] == '"') p++;
      }
      *w = '\0';
    }
    sexcl *e = &d->ex[d->n_ex];
    e->id = strdup(line);
    e->token = strdup(tok);
    e->detail = strdup(detail);
    if (!e->id || !e->token || !e->detail) {
      free(e->id);
      free(e->token);
      free(e->detail);
      rc = ts_error_set(TS_ENOMEM, "NO_MEMORY", "report survival: excluded.csv");
      break;
    }
    d->n_ex++;
  }
  free(text);
  return rc;
}

static double fold_stat(const sfold *f, int k) {
  switch (k) {
  case S_C: return f->c;
  case S_UNO: return f->uno;
  case S_AUC0:
  case S_AUC1:
  case S_AUC2: return f->auc[k - S_AUC0];
  case S_IBS: return f->ibs;
  case S_LR: return f->lr_p;
  default: return f->hr;
  }
}

/* Mean and sample sd of the finite values (survival.c's finish does the same for the Cs). */
static void mean_sd(const double *v, int n, double *mean, double *sd, int *nfin) {
  double s = 0, ss = 0;
  int c = 0;
  for (int i = 0; i < n; i++)
    if (isfinite(v[i])) s += v[i], c++;
  *mean = c ? s / c : NAN;
  for (int i = 0; i < n; i++)
    if (isfinite(v[i])) ss += (v[i] - *mean) * (v[i] - *mean);
  *sd = c > 1 ? sqrt(ss / (c - 1)) : NAN;
  *nfin = c;
}

/* Over the folds: the figures of the table, and per covariate (by name, in the order of the
 * first fold with standard errors) its coefficient. */
static int summarise(const surv_data *d, smodel *m) {
  double *v = calloc((size_t)d->folds + 1, sizeof *v);
  if (!v) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report survival");
  for (int k = 0; k < N_STAT; k++) {
    for (int i = 0; i < d->folds; i++) v[i] = m->f[i].have ? fold_stat(&m->f[i], k) : NAN;
    mean_sd(v, d->folds, &m->mean[k], &m->sd[k], &m->nfin[k]);
  }
  const sfold *first = NULL;
  for (int i = 0; i < d->folds && !first; i++)
    if (m->f[i].n_coef > 0 && m->f[i].coef_se) first = &m->f[i];
  if (first) {
    if (!(m->cs = calloc((size_t)first->n_coef, sizeof *m->cs))) {
      free(v);
      return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report survival");
    }
    m->n_cs = first->n_coef;
    for (int c = 0; c < m->n_cs; c++) {
      m->cs[c].name = first->coef[c].name;
      for (int i = 0; i < d->folds; i++) {
        v[i] = NAN;
        for (int q = 0; q < m->f[i].n_coef; q++)
          if (!strcmp(m->f[i].coef[q].name, m->cs[c].name)) v[i] = m->f[i].coef[q].coef;
      }
      mean_sd(v, d->folds, &m->cs[c].mean, &m->cs[c].sd, &m->cs[c].n);
    }
  }
  free(v);
  return 0;
}

static int surv_load(const ts_report *r, void **data_out) {
  char *text = ts_report_read_text(r, "survival/summary.json");
  if (!text) return 0; /* the stage did not finish here: no section */
  ts_json j;
  memset(&j, 0, sizeof j);
  int rc = ts_json_parse(text, &j);
  free(text);
  if (rc < 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", ts_error_message());
    return ts_error_set(TS_EINPUT, "REPORT_IO", "survival/summary.json: %s", msg);
  }
  surv_data *d = calloc(1, sizeof *d);
  if (!d) {
    ts_json_clear(&j);
    return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report survival");
  }
  TS_TRY(ts_report_stage_info_get(r, "survival", &d->info));
  TS_TRY(ts_report_units_load(r, "survival", &d->units));
  const ts_json *models = ts_json_get(&j, "models");
  double folds = ts_json_num(&j, "folds");
  if (!models || models->type != TS_JARR || !isfinite(folds) || folds < 0 || folds > 1000)
    TS_FAIL(TS_EINPUT, "REPORT_IO", "survival/summary.json: no \"folds\" and \"models\"");
  d->folds = (int)folds;
  if (!(d->m = calloc((size_t)models->n + 1, sizeof *d->m))) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "report survival");
  for (int i = 0; i < models->n; i++) {
    const char *name = ts_json_str(&models->kids[i], "model");
    if (!name || !ts_id_is_safe(name) || strlen(name) >= sizeof d->m[0].name) continue;
    smodel *m = &d->m[d->n_models++];
    snprintf(m->name, sizeof m->name, "%s", name);
    if (!(m->f = calloc((size_t)d->folds + 1, sizeof *m->f))) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "report survival");
    for (int k = 0; k < d->folds; k++) {
      sfold *f = &m->f[k];
      f->fold = k;
      f->n_train = f->n_val = f->n_test = f->test_events = f->n_high = f->n_low = -1;
      f->c = f->c_se = f->uno = f->tau = f->cut = f->lr_p = f->hr = f->hr_lo = f->hr_hi = NAN;
      f->boot_lo = f->boot_hi = f->boot_sd = f->ibs = f->t_cal = f->best_val_loss = NAN;
      f->bootstrap = f->weights = f->epochs_run = f->best_epoch = -1;
      for (int q = 0; q < N_AUC; q++) f->at[q] = f->auc[q] = NAN;
      char unit[128];
      snprintf(unit, sizeof unit, "%s:fold%d", m->name, k);
      f->u = ts_report_units_find(&d->units, unit);
      read_metrics(r, m->name, f);
      if (f->have) {
        TS_TRY(read_km(r, m->name, f));
        TS_TRY(read_model(r, m->name, f));
        TS_TRY(read_curve(r, m->name, f));
        TS_TRY(read_heat(r, m->name, f));
        m->deep |= f->deep || f->have_curve;
      }
      bool failed = f->u && !strcmp(f->u->state, "failed");
      m->folds_done += f->have && !failed;
      m->folds_failed += failed;
      m->folds_pending += !f->have && !failed;
    }
    TS_TRY(summarise(d, m));
    TS_TRY(read_pooled(&models->kids[i], m));
  }
  read_study(r, d);
  TS_TRY(read_excluded(r, d));
out:
  ts_json_clear(&j);
  if (rc < 0) {
    surv_release(d);
    return rc;
  }
  *data_out = d;
  return 1;
}

/* ---- JSON ---- */

static const char *fold_status(const sfold *f) {
  if (f->u && !strcmp(f->u->state, "failed")) return "failed";
  if (f->have) return "done";
  /* not run yet; "missing": done in the ledger (or no unit) but metrics.json is not there */
  return f->u && strcmp(f->u->state, "done") ? "pending" : "missing";
}

static void fold_json(ts_report_out *o, const sfold *f) {
  ts_report_json_object(o, NULL);
  ts_report_json_int(o, "fold", f->fold);
  ts_report_json_str(o, "status", fold_status(f));
  bool failed = f->u && !strcmp(f->u->state, "failed");
  ts_report_json_str(o, "error_token", failed ? f->u->error_token : NULL);
  ts_report_json_str(o, "note", f->u && f->u->note[0] ? f->u->note : NULL);
  ts_report_json_count(o, "n_train", f->n_train);
  ts_report_json_count(o, "n_val", f->n_val);
  ts_report_json_count(o, "n_test", f->n_test);
  ts_report_json_count(o, "test_events", f->test_events);
  ts_report_json_num(o, "c_index", f->c);
  ts_report_json_num(o, "c_index_se", f->c_se);
  ts_report_json_num(o, "uno_c", f->uno);
  ts_report_json_num(o, "uno_tau", f->tau);
  ts_report_json_nums(o, "auc_times", f->at, N_AUC);
  ts_report_json_nums(o, "auc", f->auc, N_AUC);
  ts_report_json_num(o, "risk_cut", f->cut);
  ts_report_json_count(o, "n_high", f->n_high);
  ts_report_json_count(o, "n_low", f->n_low);
  ts_report_json_num(o, "logrank_p", f->lr_p);
  ts_report_json_num(o, "hr_high_vs_low", f->hr);
  ts_report_json_pair(o, "hr_ci95", f->hr_lo, f->hr_hi);
  ts_report_json_pair(o, "c_index_boot_ci95", f->boot_lo, f->boot_hi);
  ts_report_json_num(o, "c_index_boot_sd", f->boot_sd);
  ts_report_json_count(o, "bootstrap", f->bootstrap);
  ts_report_json_num(o, "ibs", f->ibs);
  ts_report_json_nums(o, "brier_times", f->brier_t, (size_t)f->n_brier);
  ts_report_json_nums(o, "brier", f->brier, (size_t)f->n_brier);
  ts_report_json_num(o, "calibration_time", f->t_cal);
  ts_report_json_str(o, "survival_prediction", f->spred);
  ts_report_json_num(o, "seconds", f->u ? f->u->seconds : NAN); /* performance (compare) */
  if (!f->have_km) {
    ts_report_json_null(o, "km");
  } else {
    ts_report_json_object(o, "km");
    for (int g = 0; g < 2; g++) {
      const km_curve *c = &f->km[g];
      ts_report_json_object(o, group_name[g]);
      ts_report_json_nums(o, "time", c->time, c->n);
      ts_report_json_nums(o, "n_risk", c->n_risk, c->n);
      ts_report_json_nums(o, "n_event", c->n_event, c->n);
      ts_report_json_nums(o, "surv", c->surv, c->n);
      ts_report_json_nums(o, "lower", c->lower, c->n);
      ts_report_json_nums(o, "upper", c->upper, c->n);
      ts_report_json_end(o);
    }
    ts_report_json_end(o);
  }
  if (!f->have_model) {
    ts_report_json_null(o, "coefficients");
  } else {
    ts_report_json_array(o, "coefficients");
    for (int c = 0; c < f->n_coef; c++) {
      const coef *q = &f->coef[c];
      ts_report_json_object(o, NULL);
      ts_report_json_str(o, "name", q->name);
      ts_report_json_num(o, "coef", q->coef);
      ts_report_json_num(o, "se", q->se);
      ts_report_json_num(o, "hr", q->hr);
      ts_report_json_pair(o, "hr_ci95", q->lo, q->hi);
      ts_report_json_num(o, "p", q->p);
      ts_report_json_end(o);
    }
    ts_report_json_end(o);
  }
  ts_report_json_str(o, "fit_warning", f->warning);
  if (!f->deep) {
    ts_report_json_null(o, "training");
  } else {
    ts_report_json_object(o, "training");
    ts_report_json_str(o, "arch", f->arch);
    ts_report_json_str(o, "inputs", f->inputs[0] ? f->inputs : NULL);
    ts_report_json_str(o, "loss", f->loss[0] ? f->loss : NULL);
    ts_report_json_count(o, "weights", f->weights);
    ts_report_json_count(o, "epochs_run", f->epochs_run);
    ts_report_json_count(o, "best_epoch", f->best_epoch);
    ts_report_json_num(o, "best_val_loss", f->best_val_loss);
    ts_report_json_end(o);
  }
  if (!f->have_curve) {
    ts_report_json_null(o, "curve");
  } else {
    ts_report_json_object(o, "curve");
    ts_report_json_array(o, "epoch");
    for (int i = 0; i < f->n_ep; i++) ts_report_json_int(o, NULL, f->ep[i].epoch);
    ts_report_json_end(o);
    const char *ck[3] = {"train_loss", "val_loss", "val_c_index"};
    for (int k = 0; k < 3; k++) {
      ts_report_json_array(o, ck[k]);
      for (int i = 0; i < f->n_ep; i++) ts_report_json_num(o, NULL, k == 0 ? f->ep[i].train_loss : k == 1 ? f->ep[i].val_loss : f->ep[i].val_c);
      ts_report_json_end(o);
    }
    ts_report_json_array(o, "best");
    for (int i = 0; i < f->n_ep; i++) ts_report_json_bool(o, NULL, f->ep[i].best);
    ts_report_json_end(o);
    ts_report_json_end(o);
  }
  if (!f->have_heat) {
    ts_report_json_null(o, "heatmaps");
  } else {
    ts_report_json_array(o, "heatmaps");
    for (int i = 0; i < f->n_heat; i++) {
      const sheat *h = &f->heat[i];
      ts_report_json_object(o, NULL);
      ts_report_json_str(o, "patient_id", h->patient);
      ts_report_json_str(o, "group", h->group);
      ts_report_json_num(o, "risk", h->risk);
      ts_report_json_str(o, "slide_id", h->slide);
      ts_report_json_str(o, "heatmap", h->png[0] ? h->png : NULL);
      ts_report_json_str(o, "top_tiles", h->top[0] ? h->top : NULL);
      ts_report_json_end(o);
    }
    ts_report_json_end(o);
  }
  ts_report_json_end(o);
}

static int surv_json(const ts_report *r, const void *data, ts_report_out *o) {
  (void)r;
  const surv_data *d = data;
  ts_report_json_int(o, "folds", d->folds);
  ts_report_json_count(o, "patients", d->patients);
  ts_report_json_count(o, "events", d->events);
  ts_report_json_str(o, "note", d->info.note[0] ? d->info.note : NULL);
  ts_report_json_array(o, "models");
  for (int i = 0; i < d->n_models; i++) {
    const smodel *m = &d->m[i];
    ts_report_json_object(o, NULL);
    ts_report_json_str(o, "model", m->name);
    ts_report_json_int(o, "folds_done", m->folds_done);
    ts_report_json_int(o, "folds_failed", m->folds_failed);
    ts_report_json_int(o, "folds_pending", m->folds_pending);
    for (int k = 0; k < N_STAT; k++) {
      if (!stat_key[k]) continue; /* the AUCs: arrays below */
      char key[64];
      snprintf(key, sizeof key, "%s_mean", stat_key[k]);
      ts_report_json_num(o, key, m->mean[k]);
      snprintf(key, sizeof key, "%s_sd", stat_key[k]);
      ts_report_json_num(o, key, m->sd[k]);
      snprintf(key, sizeof key, "%s_folds", stat_key[k]);
      ts_report_json_int(o, key, m->nfin[k]);
    }
    ts_report_json_nums(o, "auc_mean", m->mean + S_AUC0, N_AUC);
    ts_report_json_nums(o, "auc_sd", m->sd + S_AUC0, N_AUC);
    ts_report_json_array(o, "auc_folds");
    for (int k = 0; k < N_AUC; k++) ts_report_json_int(o, NULL, m->nfin[S_AUC0 + k]);
    ts_report_json_end(o);
    ts_report_json_bool(o, "deep", m->deep);
    if (!m->have_pooled) {
      ts_report_json_null(o, "pooled_test");
    } else {
      ts_report_json_object(o, "pooled_test");
      ts_report_json_count(o, "n", m->p_n);
      ts_report_json_num(o, "c_index", m->p_c);
      ts_report_json_num(o, "c_index_se", m->p_se);
      ts_report_json_pair(o, "c_index_boot_ci95", m->p_lo, m->p_hi);
      ts_report_json_count(o, "bootstrap", m->p_boot);
      ts_report_json_num(o, "calibration_time", m->p_tcal);
      ts_report_json_array(o, "calibration");
      for (int g = 0; g < m->n_cal; g++) {
        const scal *c = &m->cal[g];
        ts_report_json_object(o, NULL);
        ts_report_json_count(o, "group", c->group);
        ts_report_json_count(o, "n", c->n);
        ts_report_json_num(o, "predicted", c->predicted);
        ts_report_json_num(o, "observed", c->observed);
        ts_report_json_pair(o, "observed_ci95", c->lo, c->hi);
        ts_report_json_end(o);
      }
      ts_report_json_end(o);
      ts_report_json_end(o);
    }
    ts_report_json_array(o, "coefficients_mean");
    for (int c = 0; c < m->n_cs; c++) {
      const coef_sum *s = &m->cs[c];
      ts_report_json_object(o, NULL);
      ts_report_json_str(o, "name", s->name);
      ts_report_json_num(o, "coef_mean", s->mean);
      ts_report_json_num(o, "coef_sd", s->sd);
      ts_report_json_num(o, "hr_of_mean", exp(s->mean));
      ts_report_json_int(o, "folds", s->n);
      ts_report_json_end(o);
    }
    ts_report_json_end(o);
    ts_report_json_array(o, "per_fold");
    for (int k = 0; k < d->folds; k++) fold_json(o, &m->f[k]);
    ts_report_json_end(o);
    ts_report_json_end(o);
  }
  ts_report_json_end(o);
  ts_report_json_array(o, "excluded");
  for (size_t i = 0; i < d->n_ex; i++) {
    ts_report_json_object(o, NULL);
    ts_report_json_str(o, "patient_id", d->ex[i].id);
    ts_report_json_str(o, "token", d->ex[i].token);
    ts_report_json_str(o, "detail", d->ex[i].detail);
    ts_report_json_end(o);
  }
  ts_report_json_end(o);
  return 0;
}

/* ---- HTML ---- */

/* v in fmt, or UNDEF. */
static void num(ts_report_out *o, const char *fmt, double v) {
  if (isfinite(v))
    ts_report_html(o, fmt, v);
  else
    ts_report_html(o, UNDEF);
}
/* "[0.61, 0.78]", "[—]" when undefined. */
static void ci(ts_report_out *o, const char *fmt, double lo, double hi) {
  if (isfinite(lo) && isfinite(hi)) {
    ts_report_html(o, "[");
    ts_report_html(o, fmt, lo);
    ts_report_html(o, ", ");
    ts_report_html(o, fmt, hi);
    ts_report_html(o, "]");
  } else {
    ts_report_html(o, "[" UNDEF "]");
  }
}
/* "2.31 [1.10, 4.85]", the interval "[—]" when undefined, UNDEF without an estimate. */
static void est_ci(ts_report_out *o, const char *fmt, double v, double lo, double hi) {
  if (!isfinite(v)) {
    ts_report_html(o, UNDEF);
    return;
  }
  ts_report_html(o, fmt, v);
  if (isfinite(lo) && isfinite(hi)) {
    ts_report_html(o, " [");
    ts_report_html(o, fmt, lo);
    ts_report_html(o, ", ");
    ts_report_html(o, fmt, hi);
    ts_report_html(o, "]");
  } else {
    ts_report_html(o, " [" UNDEF "]");
  }
}
static void cell_begin(ts_report_out *o, const char *key) { ts_report_html(o, "<td class=\"n\" data-k=\"%s\">", key); }
/* "0.712 ± 0.031", with " (2 folds)" when some done fold lacks the figure; UNDEF without one. */
static void mean_sd_text(ts_report_out *o, const smodel *m, int k) {
  num(o, stat_fmt[k], m->mean[k]);
  if (isfinite(m->mean[k]) && isfinite(m->sd[k])) {
    ts_report_html(o, " ± ");
    ts_report_html(o, stat_fmt[k], m->sd[k]);
  }
  if (isfinite(m->mean[k]) && m->nfin[k] < m->folds_done) ts_report_html(o, " <small>(%d folds)</small>", m->nfin[k]);
}

static void metrics_table(ts_report_out *o, const surv_data *d, const smodel *m) {
  ts_report_html(o,
                 "<table class=\"survtab\" id=\"survival-metrics-%s\"><tr><th>fold</th><th>status</th>"
                 "<th>train / val / test patients (test events)</th><th>Harrell's C (SE) [bootstrap 95%% CI]</th><th>Uno's C (τ)</th>"
                 "<th>AUC(t<sub>25</sub>)</th><th>AUC(t<sub>50</sub>)</th><th>AUC(t<sub>75</sub>)</th><th>IBS</th>"
                 "<th>log-rank p</th><th>HR high vs low [95%% CI]</th><th>high / low</th><th>note</th></tr>\n",
                 m->name);
  for (int k = 0; k < d->folds; k++) {
    const sfold *f = &m->f[k];
    const char *st = fold_status(f);
    ts_report_html(o, "<tr id=\"survival-%s-fold%d\"><td class=\"n\">%d</td><td class=\"%s\">%s", m->name, k, k,
                   !strcmp(st, "done") ? "ok" : !strcmp(st, "failed") ? "bad" : "warn", st);
    if (!strcmp(st, "failed")) {
      ts_report_html(o, " <span class=\"tok\">");
      ts_report_html_text(o, f->u->error_token);
      ts_report_html(o, "</span> ");
      ts_report_html_text(o, ts_report_msg_body(f->u->error_token, f->u->error_message));
    }
    ts_report_html(o, "</td>");
    cell_begin(o, "sizes");
    if (f->n_train >= 0 && f->n_val >= 0 && f->n_test >= 0)
      ts_report_html(o, "%lld / %lld / %lld", (long long)f->n_train, (long long)f->n_val, (long long)f->n_test);
    else
      ts_report_html(o, UNDEF);
    if (f->test_events >= 0) ts_report_html(o, " (%lld)", (long long)f->test_events);
    ts_report_html(o, "</td>");
    cell_begin(o, "c_index");
    num(o, "%.3f", f->c);
    if (isfinite(f->c)) {
      ts_report_html(o, " (");
      num(o, "%.3f", f->c_se);
      ts_report_html(o, ") ");
      ci(o, "%.3f", f->boot_lo, f->boot_hi);
    }
    ts_report_html(o, "</td>");
    cell_begin(o, "uno_c");
    num(o, "%.3f", f->uno);
    ts_report_html(o, " (τ ");
    num(o, "%.4g", f->tau);
    ts_report_html(o, ")</td>");
    for (int q = 0; q < N_AUC; q++) {
      char key[16];
      snprintf(key, sizeof key, "auc%d", q);
      cell_begin(o, key);
      num(o, "%.3f", f->auc[q]);
      ts_report_html(o, " <small>(t ");
      num(o, "%.4g", f->at[q]);
      ts_report_html(o, ")</small></td>");
    }
    cell_begin(o, "ibs");
    num(o, "%.3f", f->ibs);
    ts_report_html(o, "</td>");
    cell_begin(o, "logrank_p");
    num(o, "%.3g", f->lr_p);
    ts_report_html(o, "</td>");
    cell_begin(o, "hr_high_vs_low");
    est_ci(o, "%.2f", f->hr, f->hr_lo, f->hr_hi);
    ts_report_html(o, "</td>");
    cell_begin(o, "groups");
    if (f->n_high >= 0 && f->n_low >= 0)
      ts_report_html(o, "%lld / %lld", (long long)f->n_high, (long long)f->n_low);
    else
      ts_report_html(o, UNDEF);
    ts_report_html(o, "</td><td>");
    if (f->u && f->u->note[0]) {
      const char *colon = strchr(f->u->note, ':');
      if (colon && colon > f->u->note && colon - f->u->note < 64) {
        ts_report_html(o, "<span class=\"wtok\">%.*s</span>", (int)(colon - f->u->note), f->u->note);
        ts_report_html_text(o, colon + 1);
      } else {
        ts_report_html_text(o, f->u->note);
      }
    }
    ts_report_html(o, "</td></tr>\n");
  }
  ts_report_html(o, "<tr id=\"survival-%s-mean\" class=\"mean\"><td colspan=\"2\"><b>mean ± sd</b></td>", m->name);
  cell_begin(o, "sizes");
  ts_report_html(o, "%d of %d folds done", m->folds_done, d->folds);
  if (m->folds_failed) ts_report_html(o, " <span class=\"bad\">(%d failed)</span>", m->folds_failed);
  ts_report_html(o, "</td>");
  static const char *const key[N_STAT] = {"c_index", "uno_c", "auc0", "auc1", "auc2", "ibs", "logrank_p", "hr_high_vs_low"};
  for (int k = 0; k < N_STAT; k++) {
    cell_begin(o, key[k]);
    mean_sd_text(o, m, k);
    ts_report_html(o, "</td>");
  }
  ts_report_html(o, "<td></td><td></td></tr>\n</table>\n");
}

/* The table a user quotes, model x metric: Harrell's C over the folds, the pooled test C with
 * its bootstrap CI, Uno's C, the IBS, the folds done. */
static void summary_table(ts_report_out *o, const surv_data *d) {
  ts_report_html(o,
                 "<table class=\"survtab\" id=\"survival-summary\"><tr><th>model</th><th>Harrell's C, mean ± sd over "
                 "folds</th><th>pooled test C [bootstrap 95%% CI] (patients)</th><th>Uno's C, mean ± sd</th><th>IBS, mean "
                 "± sd (lower is better)</th><th>folds done</th></tr>\n");
  for (int i = 0; i < d->n_models; i++) {
    const smodel *m = &d->m[i];
    ts_report_html(o, "<tr id=\"survival-summary-%s\"><td><a href=\"#survival-model-%s\">%s</a></td>", m->name, m->name, m->name);
    cell_begin(o, "c_index");
    mean_sd_text(o, m, S_C);
    ts_report_html(o, "</td>");
    cell_begin(o, "pooled_c");
    if (isfinite(m->p_c)) {
      ts_report_html(o, "%.3f ", m->p_c);
      ci(o, "%.3f", m->p_lo, m->p_hi);
    } else {
      ts_report_html(o, UNDEF);
    }
    if (m->p_n >= 0) ts_report_html(o, " (%lld)", (long long)m->p_n);
    ts_report_html(o, "</td>");
    cell_begin(o, "uno_c");
    mean_sd_text(o, m, S_UNO);
    ts_report_html(o, "</td>");
    cell_begin(o, "ibs");
    mean_sd_text(o, m, S_IBS);
    ts_report_html(o, "</td>");
    cell_begin(o, "folds");
    ts_report_html(o, "%d of %d", m->folds_done, d->folds);
    if (m->folds_failed) ts_report_html(o, " <span class=\"bad\">(%d failed)</span>", m->folds_failed);
    ts_report_html(o, "</td></tr>\n");
  }
  int64_t boot = -1;
  for (int i = 0; i < d->n_models && boot < 0; i++) boot = d->m[i].p_boot;
  ts_report_html(o,
                 "</table>\n<p><small>Harrell's, Uno's C and the integrated Brier score (IPCW, over ten times between "
                 "the 10th and 90th percentiles of the fold's training event times) are of each fold's test patients; "
                 "mean ± sample sd over the folds where defined. Pooled: every fold's test patients together, each "
                 "tested once by its fold's model, Harrell's C with a percentile bootstrap CI over the patients");
  if (boot > 0) ts_report_html(o, " (%lld resamples)", (long long)boot);
  ts_report_html(o, ".</small></p>\n");
}

static const char *const fold_col[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};
#define N_FOLD_COL (int)(sizeof fold_col / sizeof fold_col[0])

/* Calibration of the pooled test patients at t_cal: per group (quintiles of predicted S(t_cal))
 * the mean prediction against the Kaplan-Meier estimate with its 95% CI, and the diagonal. */
static void calibration(ts_report_out *o, const surv_data *d, const smodel *m) {
  if (!m->have_pooled) return;
  const char *spred = NULL;
  for (int k = 0; k < d->folds && !spred; k++) spred = m->f[k].spred;
  ts_report_html(o, "<h4>Calibration at t = ");
  num(o, "%.4g", m->p_tcal);
  ts_report_html(o, "</h4>\n");
  if (!m->n_cal) {
    ts_report_html(o, "<p id=\"survival-cal-%s-none\">No calibration: too few pooled test patients with a predicted S(t) "
                      "(or no calibration time).</p>\n", m->name);
    return;
  }
  char tcal[32];
  if (isfinite(m->p_tcal)) snprintf(tcal, sizeof tcal, "%.4g", m->p_tcal);
  else snprintf(tcal, sizeof tcal, UNDEF);
  const int S = 200, x0 = 48, y0 = 24, W = x0 + S + 16, H = y0 + S + 44;
#define PX(v) (x0 + S * (v))
#define PY(v) (y0 + S - S * (v))
  ts_report_html(o,
                 "<div class=\"survkm\"><svg class=\"chart cal\" id=\"survival-cal-%s\" role=\"img\" width=\"%d\" height=\"%d\" "
                 "viewBox=\"0 0 %d %d\"><title>%s: predicted vs observed survival at t = %s</title>"
                 "<text x=\"0\" y=\"14\" class=\"ct\">%s, S(t = %s)</text>"
                 "<rect class=\"cal-frame\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#99a\"/>"
                 "<line class=\"cal-diagonal\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#99a\" stroke-dasharray=\"4 3\"/>",
                 m->name, W, H, W, H, m->name, tcal, m->name, tcal, x0, y0, S, S, x0, y0 + S, x0 + S, y0);
  for (int t = 0; t <= 4; t++) {
    double v = t / 4.0;
    ts_report_html(o,
                   "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" class=\"cv\">%.2g</text><text x=\"%.1f\" y=\"%d\" "
                   "text-anchor=\"middle\" class=\"cv\">%.2g</text>",
                   x0 - 5, PY(v) + 4, v, PX(v), y0 + S + 14, v);
  }
  ts_report_html(o,
                 "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"cl\">predicted S(t), group mean</text>"
                 "<text x=\"10\" y=\"%d\" text-anchor=\"middle\" class=\"cl\" transform=\"rotate(-90 10 %d)\">observed "
                 "(Kaplan-Meier)</text>",
                 x0 + S / 2, y0 + S + 30, y0 + S / 2, y0 + S / 2);
  for (int g = 0; g < m->n_cal; g++) {
    const scal *c = &m->cal[g];
    if (!isfinite(c->predicted) || !isfinite(c->observed)) continue;
    if (isfinite(c->lo) && isfinite(c->hi))
      ts_report_html(o,
                     "<line class=\"cal-bar\" data-group=\"%lld\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#4f7cc3\"/>"
                     "<path class=\"cal-cap\" stroke=\"#4f7cc3\" d=\"M%.1f %.1f h6 M%.1f %.1f h6\"/>",
                     (long long)c->group, PX(c->predicted), PY(c->lo), PX(c->predicted), PY(c->hi), PX(c->predicted) - 3, PY(c->lo),
                     PX(c->predicted) - 3, PY(c->hi));
    ts_report_html(o, "<circle class=\"cal-point\" data-group=\"%lld\" cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#b42318\"/>", (long long)c->group,
                   PX(c->predicted), PY(c->observed));
  }
  ts_report_html(o, "</svg>\n");
#undef PX
#undef PY
  ts_report_html(o, "<table class=\"survtab\" id=\"survival-cal-%s-table\"><tr><th>group</th><th>patients</th><th>predicted</th>"
                    "<th>observed [95%% CI]</th></tr>\n", m->name);
  for (int g = 0; g < m->n_cal; g++) {
    const scal *c = &m->cal[g];
    ts_report_html(o, "<tr id=\"survival-cal-%s-%d\"><td class=\"n\">%lld</td>", m->name, g, (long long)c->group);
    cell_begin(o, "n");
    if (c->n >= 0) ts_report_html(o, "%lld", (long long)c->n);
    else ts_report_html(o, UNDEF);
    ts_report_html(o, "</td>");
    cell_begin(o, "predicted");
    num(o, "%.3f", c->predicted);
    ts_report_html(o, "</td>");
    cell_begin(o, "observed");
    if (isfinite(c->observed)) est_ci(o, "%.3f", c->observed, c->lo, c->hi);
    else ts_report_html(o, UNDEF " <small>(follow-up ends before t)</small>");
    ts_report_html(o, "</td></tr>\n");
  }
  ts_report_html(o, "</table></div>\n<p><small>The pooled test patients");
  if (m->p_n >= 0) ts_report_html(o, " (%lld)", (long long)m->p_n);
  ts_report_html(o, " in %d groups of predicted S(t) at the calibration time t = ", m->n_cal);
  num(o, "%.4g", m->p_tcal);
  ts_report_html(o, " (the median event time of the study); per group the mean prediction (x) against the Kaplan-Meier "
                    "estimate (y) with its 95%% CI (bars); on the dashed diagonal the model is calibrated. S(t) from: ");
  if (spred) ts_report_html_text(o, spred);
  else ts_report_html(o, UNDEF);
  ts_report_html(o, ".</small></p>\n");
}

/* A deep model's training: train (solid) and validation (dashed) loss per epoch, the folds
 * overlaid in their colours, each fold's best epoch (the weights kept and tested) marked. */
static void curves(ts_report_out *o, const surv_data *d, const smodel *m) {
  double lo = INFINITY, hi = -INFINITY;
  int64_t emax = 1;
  for (int k = 0; k < d->folds; k++)
    for (int i = 0; i < m->f[k].n_ep; i++) {
      const sepoch *e = &m->f[k].ep[i];
      double v[2] = {e->train_loss, e->val_loss};
      for (int q = 0; q < 2; q++)
        if (isfinite(v[q])) lo = v[q] < lo ? v[q] : lo, hi = v[q] > hi ? v[q] : hi;
      emax = e->epoch > emax ? e->epoch : emax;
    }
  ts_report_html(o, "<h4>Training curves</h4>\n");
  if (!isfinite(lo)) {
    ts_report_html(o, "<p id=\"survival-curve-%s-none\">No curve.csv with a finite loss.</p>\n", m->name);
    return;
  }
  if (hi - lo < 1e-9) lo -= 0.5e-3, hi += 0.5e-3;
  const int x0 = 50, y0 = 24, PW = 300, PH = 140, W = x0 + PW + 16, H = y0 + PH + 34 + 14 * d->folds;
  double span = emax > 1 ? (double)(emax - 1) : 1;
#define CX(e) (x0 + PW * ((double)(e)-1) / span)
#define CY(v) (y0 + PH - PH * ((v)-lo) / (hi - lo))
  ts_report_html(o,
                 "<svg class=\"chart curve\" id=\"survival-curve-%s\" data-lo=\"%.17g\" data-hi=\"%.17g\" data-emax=\"%lld\" "
                 "role=\"img\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\"><title>%s: loss per epoch, every fold</title>"
                 "<text x=\"0\" y=\"14\" class=\"ct\">%s: loss per epoch</text>"
                 "<rect class=\"curve-frame\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#99a\"/>"
                 "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" class=\"cv\">%.3g</text><text x=\"%d\" y=\"%d\" "
                 "text-anchor=\"end\" class=\"cv\">%.3g</text><text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"cv\">1</text>"
                 "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"cv\">%lld</text><text x=\"%d\" y=\"%d\" "
                 "text-anchor=\"middle\" class=\"cl\">epoch</text><text x=\"10\" y=\"%d\" text-anchor=\"middle\" class=\"cl\" "
                 "transform=\"rotate(-90 10 %d)\">loss</text>",
                 m->name, lo, hi, (long long)emax, W, H, W, H, m->name, m->name, x0, y0, PW, PH, x0 - 4, y0 + 8, hi, x0 - 4, y0 + PH, lo, x0,
                 y0 + PH + 13, x0 + PW, y0 + PH + 13, (long long)emax, x0 + PW / 2, y0 + PH + 26, y0 + PH / 2, y0 + PH / 2);
  for (int k = 0; k < d->folds; k++) {
    const sfold *f = &m->f[k];
    if (!f->n_ep) continue;
    const char *col = fold_col[k % N_FOLD_COL];
    for (int s = 0; s < 2; s++) {
      ts_report_html(o, "<path class=\"%s\" data-fold=\"%d\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\"%s d=\"", s ? "val-loss" : "train-loss", k,
                     col, s ? " stroke-dasharray=\"5 3\"" : "");
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
    int64_t best = f->best_epoch; /* model.json's; else the last epoch that improved */
    for (int i = 0; best < 0 && i < f->n_ep; i++)
      if (f->ep[i].best) best = f->ep[i].epoch;
    for (int i = 0; i < f->n_ep; i++)
      if (f->ep[i].epoch == best && isfinite(f->ep[i].val_loss))
        ts_report_html(o, "<circle class=\"best-epoch\" data-fold=\"%d\" data-epoch=\"%lld\" cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>", k,
                       (long long)best, CX(best), CY(f->ep[i].val_loss), col);
    int lx = 4, ly = y0 + PH + 42 + 14 * k;
    ts_report_html(o,
                   "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/><text class=\"cv curve-legend\" "
                   "data-fold=\"%d\" x=\"%d\" y=\"%d\">fold %d: best epoch ",
                   lx, ly - 4, lx + 14, ly - 4, col, k, lx + 18, ly, k);
    if (best >= 0) ts_report_html(o, "%lld", (long long)best);
    else ts_report_html(o, UNDEF);
    ts_report_html(o, " of %d, val loss ", f->n_ep);
    num(o, "%.4g", f->best_val_loss);
    ts_report_html(o, "</text>");
  }
#undef CX
#undef CY
  ts_report_html(o, "</svg>\n");
  const sfold *f = NULL;
  for (int k = 0; k < d->folds && !f; k++)
    if (m->f[k].deep) f = &m->f[k];
  ts_report_html(o, "<p><small>Solid: training loss, dashed: validation loss (the fold's validation patients), one colour per "
                    "fold; the dot is the best epoch by validation loss, whose weights were kept and tested");
  if (f) {
    ts_report_html(o, ". ");
    ts_report_html_text(o, f->arch);
    if (f->inputs[0]) ts_report_html(o, " on "), ts_report_html_text(o, f->inputs);
    if (f->loss[0]) ts_report_html(o, ", loss "), ts_report_html_text(o, f->loss);
    if (f->weights >= 0) ts_report_html(o, ", %lld weights", (long long)f->weights);
  }
  ts_report_html(o, ".</small></p>\n");
}

/* The attention heatmaps of the highest- and lowest-risk test patients of each fold. */
static void heatmaps(ts_report_out *o, const surv_data *d, const smodel *m) {
  int rows = 0, have = 0;
  for (int k = 0; k < d->folds; k++) {
    have += m->f[k].have_heat;
    rows += m->f[k].n_heat;
  }
  if (!have) return;
  ts_report_html(o, "<h4>Attention heatmaps of the highest- and lowest-risk test patients</h4>\n");
  if (!rows) {
    ts_report_html(o, "<p id=\"survival-heat-%s-none\">No heatmap (heatmaps.csv lists none).</p>\n", m->name);
    return;
  }
  ts_report_html(o, "<table class=\"survtab survheat\" id=\"survival-heat-%s\"><tr><th>fold</th><th>group</th><th>patient</th><th>risk</th>"
                    "<th>slide</th><th>heatmap</th><th>top tiles</th></tr>\n", m->name);
  for (int k = 0; k < d->folds; k++) {
    const sfold *f = &m->f[k];
    for (int i = 0; i < f->n_heat; i++) {
      const sheat *h = &f->heat[i];
      ts_report_html(o, "<tr id=\"survival-heat-%s-fold%d-%d\"><td class=\"n\">%d</td><td class=\"%s\">", m->name, k, i, k,
                     !strcmp(h->group, "high") ? "bad" : "ok");
      ts_report_html_text(o, h->group);
      ts_report_html(o, "</td><td>");
      ts_report_html_text(o, h->patient);
      ts_report_html(o, "</td>");
      cell_begin(o, "risk");
      num(o, "%.4g", h->risk);
      ts_report_html(o, "</td><td>");
      ts_report_html_text(o, h->slide);
      ts_report_html(o, "</td>");
      for (int q = 0; q < 2; q++) {
        const char *src = q ? h->top : h->png;
        ts_report_html(o, "<td>");
        if (src[0]) {
          char thumb[300];
          snprintf(thumb, sizeof thumb, "survival.%s.fold%d.%s%s", m->name, k, h->slide, q ? ".top" : "");
          ts_report_html_thumb(o, src, thumb, src);
        } else {
          ts_report_html(o, UNDEF);
        }
        ts_report_html(o, "</td>");
      }
      ts_report_html(o, "</tr>\n");
    }
  }
  ts_report_html(o, "</table>\n<p><small>Per fold, the test patients of highest and lowest predicted risk (one row per slide), "
                    "their tiles coloured by attention percentile; the top-tile strip shows the most attended tiles. Click a "
                    "thumbnail for the full-size image.</small></p>\n");
}

/* A tick step giving about five ticks over span (1, 2 or 5 times a power of ten). */
static double nice_step(double span) {
  double raw = span / 4, p = pow(10, floor(log10(raw))), f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

/* One fold's KM curves of the high and low risk test groups: step curves from (0, 1), the 95%
 * CI band shaded where km.csv has it, a tick at each time with a censoring. */
static void km_chart(ts_report_out *o, const smodel *m, const sfold *f) {
  const int W = 320, x0 = 50, y0 = 24, PW = 256, PH = 120, H = y0 + PH + 66;
  double tmax = 0;
  for (int g = 0; g < 2; g++)
    for (size_t i = 0; i < f->km[g].n; i++)
      if (isfinite(f->km[g].time[i]) && f->km[g].time[i] > tmax) tmax = f->km[g].time[i];
  double step = nice_step(tmax > 0 ? tmax : 1);
  double xmax = ceil((tmax > 0 ? tmax : 1) / step) * step;
#define KX(t) (x0 + PW * (t) / xmax)
#define KY(s) (y0 + PH - PH * (s))
  ts_report_html(o,
                 "<svg class=\"chart km\" id=\"survival-km-%s-fold%d\" data-xmax=\"%.17g\" role=\"img\" width=\"%d\" "
                 "height=\"%d\" viewBox=\"0 0 %d %d\"><title>%s fold %d: Kaplan-Meier curves of the high and low risk "
                 "test patients</title><text x=\"0\" y=\"14\" class=\"ct\">%s, fold %d</text>"
                 "<rect class=\"km-frame\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#99a\"/>",
                 m->name, f->fold, xmax, W, H, W, H, m->name, f->fold, m->name, f->fold, x0, y0, PW, PH);
  for (int t = 0; t <= 4; t++) { /* survival 0, .25, ..., 1 */
    double y = KY(t / 4.0);
    ts_report_html(o,
                   "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#99a\"/><text x=\"%d\" y=\"%.1f\" "
                   "text-anchor=\"end\" class=\"cv\">%.2g</text>",
                   x0 - 4, y, x0, y, x0 - 6, y + 4, t / 4.0);
  }
  for (int t = 0; t <= 40; t++) {
    double v = t * step;
    if (v > xmax + step / 2) break;
    double x = KX(v);
    ts_report_html(o,
                   "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#99a\"/><text x=\"%.1f\" y=\"%d\" "
                   "text-anchor=\"middle\" class=\"cv\">%.4g</text>",
                   x, y0 + PH, x, y0 + PH + 4, x, y0 + PH + 14, v);
  }
  ts_report_html(o,
                 "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"cl\">time</text><text x=\"10\" y=\"%d\" "
                 "text-anchor=\"middle\" class=\"cl\" transform=\"rotate(-90 10 %d)\">survival</text>",
                 x0 + PW / 2, y0 + PH + 27, y0 + PH / 2, y0 + PH / 2);
  for (int g = 0; g < 2; g++) { /* the CI bands first, under the curves */
    const km_curve *c = &f->km[g];
    ts_report_html(o, "<path class=\"km-band\" data-group=\"%s\" fill=\"%s\" fill-opacity=\"0.14\" stroke=\"none\" d=\"",
                   group_name[g], group_col[g]);
    for (size_t i = 0; i + 1 < c->n; i++)
      if (isfinite(c->lower[i]) && isfinite(c->upper[i]) && c->time[i + 1] > c->time[i])
        ts_report_html(o, "M%.1f %.1f H%.1f V%.1f H%.1f Z", KX(c->time[i]), KY(c->upper[i]), KX(c->time[i + 1]), KY(c->lower[i]),
                       KX(c->time[i]));
    ts_report_html(o, "\"/>");
  }
  for (int g = 0; g < 2; g++) {
    const km_curve *c = &f->km[g];
    if (!c->n) continue;
    ts_report_html(o,
                   "<path class=\"km-curve\" data-group=\"%s\" data-points=\"%zu\" fill=\"none\" stroke=\"%s\" "
                   "stroke-width=\"1.8\" d=\"M%.1f %.1f",
                   group_name[g], c->n, group_col[g], KX(0.0), KY(1.0));
    double prev = 1;
    for (size_t i = 0; i < c->n; i++) {
      ts_report_html(o, " L%.1f %.1f L%.1f %.1f", KX(c->time[i]), KY(prev), KX(c->time[i]), KY(c->surv[i]));
      prev = c->surv[i];
    }
    ts_report_html(o, "\"/><path class=\"km-censor\" data-group=\"%s\" stroke=\"%s\" d=\"", group_name[g], group_col[g]);
    for (size_t i = 0; i < c->n; i++) { /* censored at t_i: at risk at t_i, no event then, not at risk after */
      double censored = c->n_risk[i] - c->n_event[i] - (i + 1 < c->n ? c->n_risk[i + 1] : 0);
      if (censored > 0.5) ts_report_html(o, "M%.1f %.1f v-6", KX(c->time[i]), KY(c->surv[i]) + 3);
    }
    ts_report_html(o, "\"/>");
  }
  int ly = y0 + PH + 43;
  ts_report_html(o, "<text x=\"4\" y=\"%d\" class=\"cl km-stats\">log-rank p ", ly);
  num(o, "%.3g", f->lr_p);
  ts_report_html(o, " · HR ");
  est_ci(o, "%.2f", f->hr, f->hr_lo, f->hr_hi);
  ts_report_html(o, "</text>");
  for (int g = 0; g < 2; g++) {
    int lx = 4 + 150 * g;
    ts_report_html(o,
                   "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/><text x=\"%d\" "
                   "y=\"%d\" class=\"cv\">%s risk (n = ",
                   lx, ly + 14, lx + 16, ly + 14, group_col[g], lx + 20, ly + 18, group_name[g]);
    int64_t n = g ? f->n_low : f->n_high;
    if (n >= 0)
      ts_report_html(o, "%lld", (long long)n);
    else
      ts_report_html(o, UNDEF);
    ts_report_html(o, ")</text>");
  }
  ts_report_html(o, "</svg>");
#undef KX
#undef KY
}

static void km_charts(ts_report_out *o, const surv_data *d, const smodel *m) {
  ts_report_html(o, "<div class=\"survkm\" id=\"survival-km-%s\">", m->name);
  for (int k = 0; k < d->folds; k++) {
    const sfold *f = &m->f[k];
    if (f->have_km && f->km[0].n + f->km[1].n > 0) km_chart(o, m, f);
  }
  ts_report_html(o, "</div>\n");
  for (int k = 0; k < d->folds; k++) {
    const sfold *f = &m->f[k];
    if (!f->have) continue;
    if (!f->have_km)
      ts_report_html(o, "<p class=\"warn\" id=\"survival-km-%s-fold%d-none\">Fold %d: no readable km.csv.</p>\n", m->name, k, k);
    else if (f->km[0].n + f->km[1].n == 0)
      ts_report_html(o, "<p class=\"warn\" id=\"survival-km-%s-fold%d-none\">Fold %d: no Kaplan-Meier curve (no event among its test patients).</p>\n",
                     m->name, k, k);
  }
}

static void coef_table(ts_report_out *o, const surv_data *d, const smodel *m) {
  ts_report_html(o,
                 "<h4>Coefficients of %s</h4><p>Per fold, the hazard ratio of one unit of each covariate [95%% CI] and "
                 "its p-value (the fit on the fold's training patients); over the folds, the mean ± sd of the "
                 "coefficient (log HR) and the HR of that mean.</p>\n<table class=\"survtab\" id=\"survival-coef-%s\"><tr><th>covariate</th>",
                 m->name, m->name);
  for (int k = 0; k < d->folds; k++) ts_report_html(o, "<th>fold %d: HR [95%% CI], p</th>", k);
  ts_report_html(o, "<th>coef mean ± sd</th><th>exp(mean)</th></tr>\n");
  for (int c = 0; c < m->n_cs; c++) {
    const coef_sum *s = &m->cs[c];
    ts_report_html(o, "<tr id=\"survival-coef-%s-%d\"><td>", m->name, c);
    ts_report_html_text(o, s->name);
    ts_report_html(o, "</td>");
    for (int k = 0; k < d->folds; k++) {
      const sfold *f = &m->f[k];
      const coef *q = NULL;
      for (int i = 0; i < f->n_coef && !q; i++)
        if (!strcmp(f->coef[i].name, s->name)) q = &f->coef[i];
      ts_report_html(o, "<td class=\"n\" data-k=\"fold%d\">", k);
      if (q) {
        est_ci(o, "%.3f", q->hr, q->lo, q->hi);
        ts_report_html(o, ", p ");
        num(o, "%.3g", q->p);
      } else {
        ts_report_html(o, UNDEF);
      }
      ts_report_html(o, "</td>");
    }
    cell_begin(o, "coef_mean");
    num(o, "%.4g", s->mean);
    if (isfinite(s->mean) && isfinite(s->sd)) ts_report_html(o, " ± %.4g", s->sd);
    ts_report_html(o, "</td>");
    cell_begin(o, "hr_of_mean");
    num(o, "%.3f", exp(s->mean));
    ts_report_html(o, "</td></tr>\n");
  }
  ts_report_html(o, "</table>\n");
  for (int k = 0; k < d->folds; k++)
    if (m->f[k].warning) {
      ts_report_html(o, "<p class=\"warn\">%s fold %d: the fit warned: ", m->name, k);
      ts_report_html_text(o, m->f[k].warning);
      ts_report_html(o, "</p>\n");
    }
}

typedef struct ex_page {
  const surv_data *d;
  int page, pages; /* 1-based */
} ex_page;

static void ex_pager(ts_report_out *o, int page, int pages) {
  ts_report_html(o, "<p class=\"pager\">Pages of %d patients: ", EX_PER_PAGE);
  for (int k = 1; k <= pages; k++) {
    if (k == page)
      ts_report_html(o, "<b>%d</b>", k);
    else
      ts_report_html(o, "<a href=\"survival-excluded-%d.html\">%d</a>", k, k);
  }
  ts_report_html(o, "</p>\n");
}

static void ex_rows(ts_report_out *o, const ex_page *c) {
  const surv_data *d = c->d;
  size_t a = (size_t)(c->page - 1) * EX_PER_PAGE, b = a + EX_PER_PAGE < d->n_ex ? a + EX_PER_PAGE : d->n_ex;
  ts_report_html(o, "<table class=\"survtab\" id=\"survival-excluded\"><tr><th>patient</th><th>token</th><th>detail</th></tr>\n");
  for (size_t i = a; i < b; i++) {
    ts_report_html(o, "<tr><td>");
    ts_report_html_text(o, d->ex[i].id);
    ts_report_html(o, "</td><td><span class=\"wtok\">");
    ts_report_html_text(o, d->ex[i].token);
    ts_report_html(o, "</span></td><td>");
    ts_report_html_text(o, d->ex[i].detail);
    ts_report_html(o, "</td></tr>\n");
  }
  ts_report_html(o, "</table>\n");
}

static int ex_page_body(void *ctx, ts_report_out *o) {
  const ex_page *c = ctx;
  size_t a = (size_t)(c->page - 1) * EX_PER_PAGE + 1,
         b = (size_t)c->page * EX_PER_PAGE < c->d->n_ex ? (size_t)c->page * EX_PER_PAGE : c->d->n_ex;
  ts_report_html(o, "<section id=\"survival\"><h2>Survival: patients left out, %zu–%zu of %zu</h2>\n", a, b, c->d->n_ex);
  ex_pager(o, c->page, c->pages);
  ex_rows(o, c);
  ex_pager(o, c->page, c->pages);
  ts_report_html(o, "</section>\n");
  return 0;
}

static int excluded(ts_report_out *o, const surv_data *d) {
  ts_report_html(o, "<h3 id=\"survival-excluded-head\">Patients left out</h3>\n");
  if (!d->n_ex) {
    ts_report_html(o, "<p>None: every patient with a slide has a clinical row with a time, an event and every covariate.</p>\n");
    return 0;
  }
  ts_report_html(o, "<p><b id=\"survival-n-excluded\">%zu</b> patient(s) left out of the study (survival/excluded.csv): ", d->n_ex);
  for (size_t i = 0; i < d->n_ex; i++) { /* counts per token, in order of first appearance */
    bool first = true;
    for (size_t j = 0; j < i && first; j++) first = strcmp(d->ex[j].token, d->ex[i].token) != 0;
    if (!first) continue;
    size_t n = 0;
    for (size_t j = i; j < d->n_ex; j++) n += !strcmp(d->ex[j].token, d->ex[i].token);
    ts_report_html(o, "%s<span class=\"wtok\">", i ? ", " : "");
    ts_report_html_text(o, d->ex[i].token);
    ts_report_html(o, "</span> %zu", n);
  }
  ts_report_html(o, ".</p>\n");
  bool collapsed = d->n_ex > EX_OPEN_MAX;
  if (collapsed) ts_report_html(o, "<details id=\"survival-excluded-list\"><summary>The %zu patients left out</summary>\n", d->n_ex);
  int pages = (int)((d->n_ex + EX_PER_PAGE - 1) / EX_PER_PAGE);
  ex_page c = {d, 1, pages};
  if (pages > 1) {
    for (int k = 1; k <= pages; k++) {
      char file[64], title[80];
      snprintf(file, sizeof file, "survival-excluded-%d.html", k);
      snprintf(title, sizeof title, "tessera survival: patients left out, page %d of %d", k, pages);
      c.page = k;
      TS_CALL(ts_report_html_page(o, file, title, ex_page_body, &c));
    }
    c.page = 1;
    ex_pager(o, 1, pages);
  }
  ex_rows(o, &c);
  if (collapsed) ts_report_html(o, "</details>\n");
  return 0;
}

static const char surv_style[] =
    "<style>.survkm{display:flex;flex-wrap:wrap;gap:8px}table.survtab tr.mean td{border-top:2px solid #c8ccd4;background:#f8f9fb}"
    "table.survtab small{color:#667}table.survheat img{height:96px;width:auto;border:1px solid #ccd}"
    "table.survheat .missing{width:96px;height:40px}</style>\n";

static int surv_html(const ts_report *r, const void *data, ts_report_out *o) {
  (void)r;
  const surv_data *d = data;
  ts_report_html(o, "%s", surv_style);
  if (d->info.note[0]) {
    ts_report_html(o, "<p class=\"warn\">Not run in the last invocation: ");
    ts_report_html_text(o, d->info.note);
    ts_report_html(o, " (the results below are from an earlier one)</p>\n");
  }
  ts_report_html(o, "<p>");
  if (d->patients >= 0)
    ts_report_html(o, "<b id=\"survival-n-patients\">%lld</b> patients in the study (%lld with an event), %zu left out (below); ",
                   (long long)d->patients, (long long)d->events, d->n_ex);
  ts_report_html(o,
                 "%d model(s) × %d patient-level fold(s). Every figure is of the fold's test patients only: Harrell's "
                 "C of the risk (with its infinitesimal-jackknife SE), Uno's C truncated at τ, the largest training "
                 "event time, and the cumulative/dynamic AUC at t<sub>25</sub>, t<sub>50</sub>, t<sub>75</sub>, the "
                 "quartiles of the fold's training event times. High risk: a test risk above the median of the "
                 "training risks; the log-rank p and the hazard ratio of high vs low risk (a Cox fit on the group, "
                 "95%% CI) compare the two groups. The last row of each table is the mean ± sample sd over the folds "
                 "where the figure is defined; " UNDEF " marks a figure that is undefined (a test part without an "
                 "event, one risk group empty, a hazard ratio without a finite estimate).</p>\n",
                 d->n_models, d->folds);
  summary_table(o, d);
  for (int i = 0; i < d->n_models; i++) {
    const smodel *m = &d->m[i];
    ts_report_html(o, "<h3 id=\"survival-model-%s\">%s</h3>\n", m->name, m->name);
    metrics_table(o, d, m);
    ts_report_html(o,
                   "<h4>Kaplan-Meier curves by risk group, one plot per fold</h4><p>The fold's test patients, high "
                   "risk (red) and low risk (blue), each fold with its own risk cut; shaded: the 95%% CI of "
                   "survival/%s/fold&lt;k&gt;/km.csv; ticks: censorings.</p>\n",
                   m->name);
    km_charts(o, d, m);
    calibration(o, d, m);
    if (m->deep) {
      curves(o, d, m);
      heatmaps(o, d, m);
    }
    if (m->n_cs) coef_table(o, d, m);
  }
  return excluded(o, d);
}

const struct ts_report_section ts_report_section_survival = {.abi = TS_REPORT_SECTION_ABI,
                                                             .name = "survival",
                                                             .title = "Survival models",
                                                             .load = surv_load,
                                                             .release = surv_release,
                                                             .html = surv_html,
                                                             .json = surv_json};
