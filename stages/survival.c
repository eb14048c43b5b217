/* survival.c — stage "survival": patient risk models trained and evaluated across patient-level
 * folds (issue 12). This first part has the patients, the splits, the clinical Cox baseline and
 * the evaluation every later model (attention-MIL, SNN, fusion) is held to.
 *
 * Patients, not slides (plan, rank 0): the unit of survival is the patient. A patient is in the
 * study when the cohort CSV has a slide of it (a patient_id of cohort.csv) and cohort.clinical
 * has its row with a time (survival.time, >= 0), an event (survival.event, 0 or 1) and every
 * covariate of survival.covariates. Everyone else is listed with a token, on stderr and in
 * survival/excluded.csv (patient_id,token,detail), never silently dropped:
 *   SURV_NO_CLINICAL  a patient with slides but no clinical row
 *   SURV_NO_SLIDE     a clinical row whose patient has no slide in the cohort
 *   SURV_NO_TIME      empty or NA time;  SURV_BAD_TIME: not a number;  SURV_NEGATIVE_TIME
 *   SURV_BAD_EVENT    an event that is not 0 or 1 (or empty)
 *   SURV_MISSING_COVARIATE  an empty or non-numeric covariate (the name given)
 *   SURV_BAD_ID       a patient id that cannot name a file
 * A missing column (time, event, a covariate) is a configuration error: exit 2 before anything
 * runs, naming the file and the column.
 *
 * Splits: patient-level k-fold (stats/ts_classify.h, the MIL stage's rule), stratified by event
 * and time quantile: stratum = event * B + b, b = the patient's bin among B = survival.time_bins
 * near-equal groups of all patients sorted by (time, patient_id). Written to
 * survival/splits.csv (fold,set,patient_id,time,event,stratum) before any training.
 *
 * Units: (model, fold), "cox_clinical:fold0", ... Models:
 *   cox_clinical  Cox proportional hazards (stats core, Efron ties, = R's coxph) on the raw
 *                 clinical covariates of the training part (the baseline every paper should
 *                 beat); risk = the linear predictor.
 * Evaluation, on the test part of the fold only: Harrell's C (R's concordance(..., reverse =
 * TRUE) with its infinitesimal-jackknife SE), Uno's C truncated at the largest training event
 * time, the cumulative/dynamic AUC at the quartiles of the training event times, and the risk
 * stratification: high risk = test risk above the median of the TRAINING risks; KM curves of
 * the two groups on the test patients, the log-rank p and the hazard ratio high vs low (a Cox
 * fit on the group indicator, with its 95% CI). A figure that is undefined (a test part with
 * no event, one risk group empty) is null in JSON with a note on the unit, never NaN.
 * Outputs per unit, survival/<model>/fold<k>/: model.json (coefficients, SE, HR and CI, the
 * fit's warnings), risks.csv (patient_id,set,time,event,risk,group for train, val and test),
 * km.csv (group,time,n_risk,n_event,surv,lower,upper: the test groups' KM curves),
 * metrics.json. finish: survival/summary.csv|json: per model the per-fold figures, mean and sd.
 *
 * Reproducible: no random draw but the splits' (run.seed); the fits are deterministic. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stage_util.h"
#include "survival_deep.h"
#include "ts_classify.h"
#include "ts_error.h"
#include "ts_io.h"
#include "ts_records.h"
#include "ts_stage.h"
#include "ts_surv_loss.h"
#include "ts_survival.h"
#include "ts_survnet.h"

static const char *const needs[] = {NULL}; /* the Cox models read cohort.clinical/genomic themselves; pathology models need extract (needs_for) */
static const char *const keys[] = {"cohort.csv", "cohort.clinical", "survival", NULL};
static const char *const known_models[] = {"cox_clinical", "cox_lasso", "amil", "snn", "mmf_concat", "mmf_bilinear", "coattn", NULL};
#define KNOWN_MODELS "cox_clinical, cox_lasso, amil, snn, mmf_concat, mmf_bilinear, coattn"

static bool is_deep(const char *m) { return strcmp(m, "cox_clinical") && strcmp(m, "cox_lasso"); }

#define MAX_MODELS 8
#define MAX_COV 64

static int parse_list(const char *list, char *buf, size_t cap, const char **names, int max, int *n_out, const char *key,
                      const char *const *known) {
  *n_out = 0;
  snprintf(buf, cap, "%s", list ? list : "");
  for (char *save = NULL, *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
    bool ok = !known;
    for (int k = 0; known && known[k]; k++) ok |= !strcmp(known[k], t);
    if (!ok) return ts_error_set(TS_ECONFIG, "CONFIG_RANGE", "%s: unknown model '%s' (known: " KNOWN_MODELS ")", key, t);
    for (int j = 0; j < *n_out; j++)
      if (!strcmp(names[j], t)) return ts_error_set(TS_ECONFIG, "CONFIG_RANGE", "%s: '%s' listed twice", key, t);
    if (*n_out == max) return ts_error_set(TS_ECONFIG, "CONFIG_RANGE", "%s: at most %d entries", key, max);
    names[(*n_out)++] = t;
  }
  return 0;
}

static int check(const ts_config *c) {
  char buf[512], cbuf[2048];
  const char *names[MAX_MODELS], *cov[MAX_COV];
  int n = 0, nc = 0;
  TS_CALL(parse_list(c->survival.models, buf, sizeof buf, names, MAX_MODELS, &n, "survival.models", known_models));
  TS_CALL(parse_list(c->survival.covariates, cbuf, sizeof cbuf, cov, MAX_COV, &nc, "survival.covariates", NULL));
  bool need_cov = false;
  for (int i = 0; i < n; i++) need_cov |= !strcmp(names[i], "cox_clinical");
  if (need_cov && nc == 0) return ts_error_set(TS_ECONFIG, "CONFIG_RANGE", "survival.covariates is empty: cox_clinical needs clinical covariates");
  if (strcmp(c->survival.loss, "nll") && strcmp(c->survival.loss, "cox"))
    return ts_error_set(TS_ECONFIG, "CONFIG_RANGE", "survival.loss: '%s' is neither nll nor cox", c->survival.loss);
  if (strcmp(c->survival.cox_ties, "efron") && strcmp(c->survival.cox_ties, "breslow"))
    return ts_error_set(TS_ECONFIG, "CONFIG_RANGE", "survival.cox_ties: '%s' is neither efron nor breslow", c->survival.cox_ties);
  if (strcmp(c->survival.cox_weights, "none") && strcmp(c->survival.cox_weights, "events") && strcmp(c->survival.cox_weights, "inverse_time_bin_frequency"))
    return ts_error_set(TS_ECONFIG, "CONFIG_RANGE", "survival.cox_weights: '%s' is not one of none, events, inverse_time_bin_frequency", c->survival.cox_weights);
  for (int i = 0; i < n; i++)
    if ((!strcmp(names[i], "cox_lasso") || (is_deep(names[i]) && ts_survnet_uses_omic(names[i]))) && (!c->cohort.genomic || !c->cohort.genomic[0]))
      return ts_error_set(TS_ECONFIG, "SURV_NO_GENOMIC_TABLE", "survival.models: %s uses genomic data: set cohort.genomic", names[i]);
  if (c->survival.val_frac + c->survival.test_frac >= 0.9)
    return ts_error_set(TS_ECONFIG, "CONFIG_RANGE", "survival.val_frac + survival.test_frac (%g) leaves too little to train on",
                        c->survival.val_frac + c->survival.test_frac);
  return 0;
}

static int skip(const ts_run *run, char *why, size_t n) {
  char buf[512];
  const char *names[MAX_MODELS];
  int nm = 0;
  TS_CALL(parse_list(run->cfg->survival.models, buf, sizeof buf, names, MAX_MODELS, &nm, "survival.models", known_models));
  if (nm == 0) {
    snprintf(why, n, "survival.models is empty (set it, e.g. survival.models: cox_clinical, to fit survival models)");
    return 1;
  }
  if (!run->cfg->cohort.clinical || !run->cfg->cohort.clinical[0]) {
    snprintf(why, n, "no clinical table (cohort.clinical): survival times and events come from it");
    return 1;
  }
  return 0;
}

/* ---- the study's patients ---- */

typedef struct patient {
  char *id;
  double time;
  int event;
  double x[MAX_COV];
  double *g; /* genomic values (study.ng), when a model uses them */
  int stratum;
  char **slides; /* the slides with features (pathology models: survival/slides.csv) */
  int n_slides;
} patient;

typedef struct study {
  patient *p;
  size_t n;
  int ncov;
  const char *cov[MAX_COV];
  char covbuf[2048];
  int ng;      /* genomic columns (0 when no model uses them) */
  char **gname;
} study;

static bool uses_genomic(const ts_config *c) {
  char buf[512];
  const char *names[MAX_MODELS];
  int n = 0;
  if (parse_list(c->survival.models, buf, sizeof buf, names, MAX_MODELS, &n, "survival.models", known_models) < 0) return false;
  for (int i = 0; i < n; i++)
    if (!strcmp(names[i], "cox_lasso") || (is_deep(names[i]) && ts_survnet_uses_omic(names[i]))) return true;
  return false;
}

static bool uses_path(const ts_config *c) {
  char buf[512];
  const char *names[MAX_MODELS];
  int n = 0;
  if (parse_list(c->survival.models, buf, sizeof buf, names, MAX_MODELS, &n, "survival.models", known_models) < 0) return false;
  for (int i = 0; i < n; i++)
    if (is_deep(names[i]) && ts_survnet_uses_path(names[i])) return true;
  return false;
}

static int needs_for(const ts_config *c, const char **out, int max) {
  if (max < 1 || !uses_path(c)) return 0;
  out[0] = "extract";
  return 1;
}

static void study_clear(study *s) {
  for (size_t i = 0; i < s->n; i++) {
    for (int j = 0; j < s->p[i].n_slides; j++) free(s->p[i].slides[j]);
    free(s->p[i].slides), free(s->p[i].id), free(s->p[i].g);
  }
  for (int j = 0; j < s->ng; j++) free(s->gname[j]);
  free(s->gname);
  free(s->p);
  memset(s, 0, sizeof *s);
}

/* Strictly a number (and not NA / empty). */
static bool number(const char *s, double *v) {
  if (!s || !*s) return false;
  char *end;
  errno = 0;
  *v = strtod(s, &end);
  return !*end && !errno && isfinite(*v);
}

static int col_index(const ts_rec_table *t, const char *name, const char *path) {
  for (int j = 0; j < t->ncsv; j++)
    if (!strcmp(t->header[j], name)) return j;
  return ts_error_set(TS_ECONFIG, "SURV_MISSING_COLUMN", "%s: no column '%s' (survival.time, survival.event and survival.covariates name its columns)",
                      path, name);
}

static void excluded(FILE *ex, int *count, const char *id, const char *token, const char *fmt, const char *detail, int line, const char *path) {
  (*count)++;
  if (!ex) return; /* a unit's reload: the plan listed them */
  fprintf(stderr, "survival: patient %s left out: %s: %s:%d: %s%s\n", id, token, path, line, fmt, detail ? detail : "");
  fprintf(ex, "%s,%s,\"%s:%d: %s%s\"\n", id, token, path, line, fmt, detail ? detail : "");
}

/* The genomic values of the study's patients (every column of cohort.genomic but patient_id);
 * a patient without a genomic row, or with an empty or non-numeric value, leaves the study
 * (SURV_NO_GENOMIC, SURV_MISSING_GENOMIC), so that every model sees the same patients. */
static int load_genomic(const ts_run *run, study *s, FILE *ex, int *nx) {
  const char *path = run->cfg->cohort.genomic;
  if (!path || !path[0]) return ts_error_set(TS_ECONFIG, "SURV_NO_GENOMIC_TABLE", "survival.models: cox_lasso fits genomic data: set cohort.genomic");
  ts_rec_table *t = NULL;
  int rc = 0, jid = -1;
  if (ts_rec_table_open("genomic", path, NULL, &t) < 0) return ts_error_set(TS_ECONFIG, ts_error_token(), "%s", ts_error_detail());
  for (int j = 0; j < t->ncsv; j++)
    if (!strcmp(t->header[j], "patient_id")) jid = j;
  if (jid < 0) TS_FAIL(TS_ECONFIG, "SURV_MISSING_COLUMN", "%s: no column 'patient_id'", path);
  s->ng = t->ncsv - 1;
  if (!(s->gname = calloc((size_t)s->ng + 1, sizeof *s->gname))) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "genomic");
  for (int j = 0, k = 0; j < t->ncsv; j++)
    if (j != jid && !(s->gname[k++] = strdup(t->header[j]))) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "genomic");
  char *bad = calloc(s->n + 1, 1); /* 1: a bad value (listed), 0: not yet found */
  if (!bad) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "genomic");
  for (int64_t r = 0; r < t->nrows && rc >= 0; r++) { /* each row split once */
    char **f = NULL;
    int nf = 0;
    if ((rc = ts_rec_row_fields(t, r, &f, &nf)) < 0) break;
    for (size_t i = 0; i < s->n && rc >= 0; i++) {
      patient *p = &s->p[i];
      if (p->g || bad[i] || strcmp(f[jid], p->id)) continue;
      if (!(p->g = malloc(sizeof *p->g * (size_t)(s->ng + 1)))) rc = ts_error_set(TS_ENOMEM, "NO_MEMORY", "genomic");
      for (int j = 0, k = 0; rc >= 0 && !bad[i] && j < t->ncsv; j++) {
        if (j == jid) continue;
        if (!number(f[j], &p->g[k]))
          excluded(ex, nx, p->id, "SURV_MISSING_GENOMIC", "no number in genomic column ", t->header[j], t->row_line[r], path), bad[i] = 1;
        k++;
      }
      break;
    }
    free(f);
  }
  size_t keep = 0;
  for (size_t i = 0; i < s->n; i++) {
    patient *p = &s->p[i];
    if (!p->g && !bad[i]) excluded(ex, nx, p->id, "SURV_NO_GENOMIC", "no row of this patient in the genomic table", NULL, 0, path), bad[i] = 1;
    if (bad[i]) {
      free(p->id), free(p->g);
      continue;
    }
    s->p[keep++] = *p;
  }
  free(bad);
  s->n = keep;
out:
  ts_rec_table_free(&t);
  return rc;
}

/* The patients of the study, in cohort.clinical's row order; every one left out is in ex (NULL:
 * counted only). */
static int load_study(const ts_run *run, study *s, FILE *ex, int *n_out_excluded) {
  const ts_config *c = run->cfg;
  memset(s, 0, sizeof *s);
  TS_CALL(parse_list(c->survival.covariates, s->covbuf, sizeof s->covbuf, s->cov, MAX_COV, &s->ncov, "survival.covariates", NULL));
  ts_rec_table *t = NULL;
  int rc = 0;
  if (ts_rec_table_open("clinical", c->cohort.clinical, NULL, &t) < 0) {
    rc = ts_error_set(TS_ECONFIG, ts_error_token(), "%s", ts_error_detail());
    goto out;
  }
  int jid = -1, jt, je, jc[MAX_COV];
  for (int j = 0; j < t->ncsv; j++)
    if (!strcmp(t->header[j], "patient_id")) jid = j;
  if (jid < 0) TS_FAIL(TS_ECONFIG, "SURV_MISSING_COLUMN", "%s: no column 'patient_id'", c->cohort.clinical);
  TS_TRY(jt = col_index(t, c->survival.time, c->cohort.clinical));
  TS_TRY(je = col_index(t, c->survival.event, c->cohort.clinical));
  for (int k = 0; k < s->ncov; k++) TS_TRY(jc[k] = col_index(t, s->cov[k], c->cohort.clinical));
  if (!(s->p = calloc((size_t)t->nrows + 1, sizeof *s->p))) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "survival patients");
  bool *seen = calloc((size_t)run->cohort->n + 1, sizeof *seen); /* cohort rows whose patient has a clinical row */
  if (!seen) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "survival patients");
  int nx = 0;
  for (int64_t r = 0; r < t->nrows && rc >= 0; r++) {
    char **f = NULL;
    int nf = 0;
    if ((rc = ts_rec_row_fields(t, r, &f, &nf)) < 0) break;
    const char *id = f[jid];
    int line = t->row_line[r];
    bool has_slide = false;
    for (int i = 0; i < run->cohort->n; i++)
      if (!strcmp(run->cohort->rows[i].patient_id, id)) has_slide = true, seen[i] = true;
    double tm = 0, ev = 0, x[MAX_COV] = {0};
    int bad = 0;
    if (!has_slide) excluded(ex, &nx, id, "SURV_NO_SLIDE", "no slide of this patient in the cohort", NULL, line, c->cohort.clinical), bad = 1;
    else if (!ts_id_is_safe(id)) excluded(ex, &nx, id, "SURV_BAD_ID", "the id cannot name a file", NULL, line, c->cohort.clinical), bad = 1;
    else if (!f[jt][0] || !strcmp(f[jt], "NA"))
      excluded(ex, &nx, id, "SURV_NO_TIME", "no time in column ", c->survival.time, line, c->cohort.clinical), bad = 1;
    else if (!number(f[jt], &tm))
      excluded(ex, &nx, id, "SURV_BAD_TIME", "time is not a number: ", f[jt], line, c->cohort.clinical), bad = 1;
    else if (tm < 0) excluded(ex, &nx, id, "SURV_NEGATIVE_TIME", "negative time ", f[jt], line, c->cohort.clinical), bad = 1;
    else if (!number(f[je], &ev) || (ev != 0 && ev != 1))
      excluded(ex, &nx, id, "SURV_BAD_EVENT", "event is not 0 or 1: ", f[je][0] ? f[je] : "(empty)", line, c->cohort.clinical), bad = 1;
    for (int k = 0; !bad && k < s->ncov; k++)
      if (!number(f[jc[k]], &x[k])) excluded(ex, &nx, id, "SURV_MISSING_COVARIATE", "no number in column ", s->cov[k], line, c->cohort.clinical), bad = 1;
    if (!bad) {
      patient *p = &s->p[s->n];
      if (!(p->id = strdup(id))) rc = ts_error_set(TS_ENOMEM, "NO_MEMORY", "survival patients");
      p->time = tm;
      p->event = (int)ev;
      memcpy(p->x, x, sizeof(double) * (size_t)s->ncov);
      if (rc >= 0) s->n++;
    }
    free(f);
  }
  if (rc >= 0 && uses_genomic(c)) rc = load_genomic(run, s, ex, &nx);
  for (int i = 0; rc >= 0 && i < run->cohort->n; i++) { /* patients with slides but no clinical row, once each */
    const char *id = run->cohort->rows[i].patient_id;
    bool first = !seen[i];
    for (int j = 0; first && j < i; j++) first = strcmp(run->cohort->rows[j].patient_id, id) != 0;
    if (first) excluded(ex, &nx, id, "SURV_NO_CLINICAL", "no row of this patient in the clinical table", NULL, 0, c->cohort.clinical);
  }
  free(seen);
  *n_out_excluded = nx;
out:
  ts_rec_table_free(&t);
  if (rc < 0) study_clear(s);
  return rc;
}

/* Pathology models (plan, rank 0): every patient's slides whose features the extract stage
 * recorded done with at least one tile; a patient left with none leaves the study
 * (SURV_NO_FEATURES), so that every model sees the same patients. The list goes to
 * survival/slides.csv (patient_id,slide_id,features_sha256), which the units read; keytext gets
 * the checksums. */
static int select_slides(const ts_run *run, study *s, FILE *ex, int *nx, FILE *slides_csv) {
  size_t keep = 0;
  fprintf(slides_csv, "patient_id,slide_id,features_sha256\n");
  for (size_t i = 0; i < s->n; i++) {
    patient *p = &s->p[i];
    int cnt = 0, no_feat = 0, blank = 0;
    for (int r = 0; r < run->cohort->n; r++)
      cnt += !strcmp(run->cohort->rows[r].patient_id, p->id);
    if (!(p->slides = calloc((size_t)cnt + 1, sizeof *p->slides))) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "survival slides");
    for (int r = 0; r < run->cohort->n; r++) {
      const ts_cohort_row *row = &run->cohort->rows[r];
      if (strcmp(row->patient_id, p->id)) continue;
      char rel[1024], sum[65];
      int64_t tiles = 0;
      TS_CALL(ts_run_unit_output(run, "extract", row->slide_id, rel, sizeof rel, sum));
      if (!rel[0]) {
        no_feat++;
        continue;
      }
      TS_CALL(ts_run_unit_items(run, "tile", row->slide_id, &tiles));
      if (tiles == 0) {
        blank++;
        continue;
      }
      if (!(p->slides[p->n_slides] = strdup(row->slide_id))) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "survival slides");
      p->n_slides++;
      fprintf(slides_csv, "%s,%s,%s\n", p->id, row->slide_id, sum);
    }
    if (p->n_slides == 0) {
      char why[160];
      snprintf(why, sizeof why, "%d slide(s): %d without features (see the extract stage), %d blank (no tile)", cnt, no_feat, blank);
      excluded(ex, nx, p->id, "SURV_NO_FEATURES", "no slide of this patient has tile features: ", why, 0, run->cfg->cohort.csv);
      for (int j = 0; j < p->n_slides; j++) free(p->slides[j]);
      free(p->slides), free(p->id), free(p->g);
      continue;
    }
    s->p[keep++] = *p;
  }
  s->n = keep;
  return 0;
}

/* The units' side: the slides plan chose, from survival/slides.csv. */
static int read_slides(const ts_run *run, study *s) {
  char path[TS_PATH_MAX];
  TS_CALL(ts_run_path(run, "survival/slides.csv", path, sizeof path));
  ts_rec_table *t = NULL;
  TS_CALL(ts_rec_table_open("slides", path, NULL, &t));
  int rc = 0;
  for (int64_t r = 0; r < t->nrows && rc >= 0; r++) {
    char **f = NULL;
    int nf = 0;
    if ((rc = ts_rec_row_fields(t, r, &f, &nf)) < 0) break;
    for (size_t i = 0; nf >= 2 && i < s->n; i++) {
      patient *p = &s->p[i];
      if (strcmp(p->id, f[0])) continue;
      char **sl = realloc(p->slides, sizeof *sl * (size_t)(p->n_slides + 2));
      if (!sl || !(sl[p->n_slides] = strdup(f[1]))) {
        if (sl) p->slides = sl;
        rc = ts_error_set(TS_ENOMEM, "NO_MEMORY", "survival slides");
        break;
      }
      p->slides = sl;
      p->n_slides++;
      break;
    }
    free(f);
  }
  ts_rec_table_free(&t);
  return rc;
}

static int cmp_time(const void *a, const void *b) {
  const patient *const *x = a, *const *y = b;
  if ((*x)->time != (*y)->time) return (*x)->time < (*y)->time ? -1 : 1;
  return strcmp((*x)->id, (*y)->id);
}

/* ---- plan ---- */

static int plan(const ts_run *run, ts_units *units) {
  const ts_config *c = run->cfg;
  char mbuf[512], path[TS_PATH_MAX], dir[TS_PATH_MAX], tmp[TS_PATH_MAX];
  const char *models[MAX_MODELS];
  int n_models = 0, rc = 0, n_ex = 0;
  TS_CALL(parse_list(c->survival.models, mbuf, sizeof mbuf, models, MAX_MODELS, &n_models, "survival.models", known_models));
  study s;
  ts_splits *sp = NULL;
  ts_split_slide *sl = NULL;
  patient **order = NULL;
  FILE *ex = NULL;
  TS_CALL(ts_run_path(run, "survival", dir, sizeof dir));
  TS_CALL(ts_io_mkdirs(dir, 0755));
  TS_CALL(ts_run_path(run, "survival/excluded.csv", path, sizeof path));
  TS_CALL(ts_io_tmp_path(path, tmp, sizeof tmp));
  if (!(ex = fopen(tmp, "w"))) return ts_error_set(TS_EIO, "IO_WRITE", "cannot create %s: %s", tmp, strerror(errno));
  fprintf(ex, "patient_id,token,detail\n");
  char *slides_text = NULL;
  size_t slides_len = 0;
  if ((rc = load_study(run, &s, ex, &n_ex)) < 0) {
    fclose(ex);
    unlink(tmp);
    return rc;
  }
  if (uses_path(c)) {
    FILE *sf = open_memstream(&slides_text, &slides_len);
    if (!sf) rc = ts_error_set(TS_ENOMEM, "NO_MEMORY", "survival slides");
    else {
      rc = select_slides(run, &s, ex, &n_ex, sf);
      fclose(sf);
    }
    if (rc >= 0) {
      char sp_path[TS_PATH_MAX];
      if ((rc = ts_run_path(run, "survival/slides.csv", sp_path, sizeof sp_path)) >= 0) rc = ts_io_write_atomic(sp_path, slides_text, slides_len);
    }
    if (rc < 0) {
      free(slides_text);
      fclose(ex);
      unlink(tmp);
      study_clear(&s);
      return rc;
    }
  }
  int closed = fclose(ex);
  ex = NULL;
  if (closed != 0) TS_FAIL(TS_EIO, "IO_WRITE", "writing %s", tmp);
  TS_TRY(ts_io_commit(tmp, path));
  if (n_ex) fprintf(stderr, "survival: %d patient(s) left out, listed in %s\n", n_ex, path);
  if (s.n < 3) TS_FAIL(TS_EINPUT, "SURV_NO_PATIENTS", "%zu patient(s) with slides, a time and an event: too few to split", s.n);
  /* strata: event x time quantile bin */
  int B = (int)c->survival.time_bins;
  if (!(order = malloc(sizeof *order * s.n)) || !(sl = calloc(s.n, sizeof *sl))) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "survival plan");
  for (size_t i = 0; i < s.n; i++) order[i] = &s.p[i];
  qsort(order, s.n, sizeof *order, cmp_time);
  for (size_t i = 0; i < s.n; i++) order[i]->stratum = order[i]->event * B + (int)((i * (size_t)B) / s.n);
  for (size_t i = 0; i < s.n; i++) sl[i] = (ts_split_slide){.slide_id = s.p[i].id, .patient_id = s.p[i].id, .label = s.p[i].stratum};
  ts_split_options o;
  ts_split_options_default(&o);
  o.folds = (int)c->survival.folds;
  o.val_frac = c->survival.val_frac;
  o.test_frac = c->survival.test_frac;
  o.seed = (uint64_t)c->run.seed;
  o.nclass = 2 * B;
  if (ts_splits_make(sl, s.n, &o, &sp) < 0) {
    rc = ts_error_set(TS_ECONFIG, ts_error_token(), "survival splits are stratified by event x time bin (stratum = event * %d + bin): %s "
                      "(lower survival.folds, survival.time_bins or survival.test_frac, or add patients)", B, ts_error_detail());
    goto out;
  }
  /* survival/splits.csv, before any fit */
  char *csv = NULL;
  size_t cl = 0;
  FILE *m = open_memstream(&csv, &cl);
  if (!m) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "survival splits");
  fprintf(m, "fold,set,patient_id,time,event,stratum\n");
  for (size_t i = 0; i < sp->nrow; i++) {
    const patient *p = NULL;
    for (size_t j = 0; j < s.n && !p; j++)
      if (!strcmp(s.p[j].id, sp->rows[i].slide_id)) p = &s.p[j];
    fprintf(m, "%d,%s,%s,%.17g,%d,%d\n", sp->rows[i].fold, ts_split_set_name(sp->rows[i].set), p->id, p->time, p->event, p->stratum);
  }
  fclose(m);
  TS_TRY(ts_run_path(run, "survival/splits.csv", path, sizeof path));
  rc = ts_io_write_atomic(path, csv, cl);
  free(csv);
  if (rc < 0) goto out;
  char sum[65], ckey[200];
  int64_t bytes = 0;
  TS_TRY(ts_io_sha256_file(path, sum, &bytes));
  snprintf(ckey, sizeof ckey, "splits=%s\n", sum); /* the splits file holds every input a unit reads but the covariates */
  char *key = NULL;
  size_t kl = 0;
  FILE *k = open_memstream(&key, &kl);
  if (!k) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "survival plan");
  fputs(ckey, k);
  if (slides_text) { /* pathology models read these feature files */
    char ssum[65];
    ts_io_sha256(slides_text, slides_len, ssum);
    fprintf(k, "slides=%s\n", ssum);
  }
  if (uses_genomic(c)) { /* cox_lasso and the genomic models read every genomic value */
    char gsum[65];
    int64_t gb = 0;
    if (ts_io_sha256_file(c->cohort.genomic, gsum, &gb) < 0) ts_error_clear(), gsum[0] = 0;
    fprintf(k, "genomic=%s\n", gsum);
  }
  for (size_t i = 0; i < s.n; i++) {
    fprintf(k, "%s", s.p[i].id);
    for (int j = 0; j < s.ncov; j++) fprintf(k, ",%.17g", s.p[i].x[j]);
    fputc('\n', k);
  }
  fclose(k);
  for (int mi = 0; mi < n_models && rc >= 0; mi++)
    for (int f = 0; f < sp->folds && rc >= 0; f++) {
      char id[128];
      snprintf(id, sizeof id, "%s:fold%d", models[mi], f);
      rc = ts_units_add_keyed(units, id, key);
    }
  free(key);
  int events = 0;
  for (size_t i = 0; i < s.n; i++) events += s.p[i].event;
  fprintf(stderr, "survival: %zu patients (%d with an event), %d folds stratified by event x %d time bins\n", s.n, events, sp->folds, B);
out:
  if (ex) fclose(ex);
  free(slides_text);
  free(order);
  free(sl);
  ts_splits_free(&sp);
  study_clear(&s);
  return rc;
}

/* ---- work ---- */

typedef struct part {
  size_t n;
  const patient **p;
  double *time, *x, *risk, *surv_cal;
  int *event, *group;
} part;

static void part_clear(part *q) {
  free(q->p);
  free(q->time);
  free(q->x);
  free(q->risk);
  free(q->surv_cal);
  free(q->event);
  free(q->group);
  memset(q, 0, sizeof *q);
}

static int part_alloc(part *q, size_t n, int ncov) {
  memset(q, 0, sizeof *q);
  q->p = calloc(n + 1, sizeof *q->p);
  q->time = calloc(n + 1, sizeof *q->time);
  q->x = calloc((n + 1) * (size_t)(ncov ? ncov : 1), sizeof *q->x);
  q->risk = calloc(n + 1, sizeof *q->risk);
  q->event = calloc(n + 1, sizeof *q->event);
  q->group = calloc(n + 1, sizeof *q->group);
  q->surv_cal = calloc(n + 1, sizeof *q->surv_cal);
  if (!q->p || !q->time || !q->x || !q->risk || !q->event || !q->group || !q->surv_cal) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "survival");
  return 0;
}

static void part_add(part *q, const patient *p, int ncov) {
  q->p[q->n] = p;
  q->time[q->n] = p->time;
  q->event[q->n] = p->event;
  memcpy(q->x + q->n * (size_t)ncov, p->x, sizeof(double) * (size_t)ncov);
  q->n++;
}

static ts_surv_data part_data(const part *q) { return (ts_surv_data){.n = q->n, .time = q->time, .event = q->event}; }

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Quantile type 7 (R's default) of sorted v. */
static double quantile7(const double *v, size_t n, double q) {
  if (n == 0) return NAN;
  double h = (double)(n - 1) * q;
  size_t lo = (size_t)floor(h);
  return lo + 1 < n ? v[lo] + (h - (double)lo) * (v[lo + 1] - v[lo]) : v[lo];
}

/* The design of a part for cox_lasso: clinical covariates then genomic columns. */
static double *lasso_design(const study *s, const part *q) {
  size_t p = (size_t)(s->ncov + s->ng);
  double *x = malloc(sizeof *x * (q->n * p + 1));
  for (size_t i = 0; x && i < q->n; i++) {
    memcpy(x + i * p, q->p[i]->x, sizeof(double) * (size_t)s->ncov);
    memcpy(x + i * p + s->ncov, q->p[i]->g, sizeof(double) * (size_t)s->ng);
  }
  return x;
}

#define LASSO_GRID 12

/* cox_lasso: the elastic-net Cox fit (stats core, glmnet's objective, Breslow) of the training
 * part over a grid of LASSO_GRID lambdas from lambda_max down to 0.05 lambda_max (log-spaced),
 * the one kept maximising the VALIDATION part's Breslow log partial likelihood; risks of every
 * part from it; model.json written into m. */
static int fit_lasso(const ts_config *c, const study *s, part sets[3], FILE *m, const char *model, int fold) {
  size_t p = (size_t)(s->ncov + s->ng);
  part *tr = &sets[TS_SET_TRAIN], *va = &sets[TS_SET_VAL];
  double *xtr = lasso_design(s, tr), *xva = lasso_design(s, va), *beta = calloc(p, sizeof *beta), *best = calloc(p, sizeof *best), grid[LASSO_GRID],
         vll[LASSO_GRID];
  int rc = 0, kbest = -1, nz = 0;
  if (!xtr || !xva || !beta || !best) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "cox_lasso");
  ts_surv_data dtr = part_data(tr), dva = part_data(va);
  ts_coxnet_options o;
  ts_coxnet_options_default(&o);
  o.alpha = c->survival.lasso_alpha;
  double lmax = 0;
  TS_TRY(ts_coxnet_lambda_max(&dtr, xtr, p, &o, &lmax));
  for (int k = 0; k < LASSO_GRID; k++) {
    grid[k] = lmax * pow(0.05, (double)k / (LASSO_GRID - 1));
    o.lambda = grid[k];
    TS_TRY(ts_coxnet_fit(&dtr, xtr, p, &o, beta, NULL));
    vll[k] = NAN;
    int ve = 0;
    for (size_t i = 0; i < va->n; i++) ve += va->event[i];
    if (va->n && ve && ts_cox_loglik(&dva, xva, p, TS_COX_BRESLOW, beta, &vll[k], NULL, NULL) < 0) vll[k] = NAN;
    ts_error_clear();
    if (isfinite(vll[k]) && (kbest < 0 || vll[k] > vll[kbest])) kbest = k, memcpy(best, beta, sizeof *best * p);
  }
  if (kbest < 0) { /* no validation event: the middle of the grid, said in model.json */
    kbest = LASSO_GRID / 2;
    o.lambda = grid[kbest];
    TS_TRY(ts_coxnet_fit(&dtr, xtr, p, &o, best, NULL));
  }
  for (int k = 0; k < 3; k++) {
    double *x = lasso_design(s, &sets[k]);
    if (!x) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "cox_lasso");
    for (size_t i = 0; i < sets[k].n; i++) {
      double r = 0;
      for (size_t j = 0; j < p; j++) r += best[j] * x[i * p + j];
      sets[k].risk[i] = r;
    }
    free(x);
  }
  for (size_t j = 0; j < p; j++) nz += best[j] != 0;
  fprintf(m, "{\"model\": \"%s\", \"fold\": %d, \"ties\": \"breslow\", \"alpha\": %.17g, \"lambda\": %.17g, \"lambda_max\": %.17g,"
             " \"selected_by\": \"%s\", \"lambda_grid\": [", model, fold, o.alpha, grid[kbest], lmax,
          isfinite(vll[kbest]) ? "validation log partial likelihood" : "none (no validation event): the grid's middle");
  for (int k = 0; k < LASSO_GRID; k++) fprintf(m, "%s%.17g", k ? ", " : "", grid[k]);
  fprintf(m, "], \"val_loglik\": [");
  for (int k = 0; k < LASSO_GRID; k++) fprintf(m, "%s", k ? ", " : ""), ts__stage_jnum(m, vll[k], "%.17g");
  fprintf(m, "],\n \"nonzero\": %d, \"coefficients\": [", nz);
  for (size_t j = 0, w = 0; j < p; j++) {
    if (best[j] == 0) continue;
    fprintf(m, "%s\n  {\"name\": \"%s\", \"coef\": %.17g}", w++ ? "," : "", (int)j < s->ncov ? s->cov[j] : s->gname[j - (size_t)s->ncov], best[j]);
  }
  fprintf(m, "]}\n");
out:
  free(xtr), free(xva), free(beta), free(best);
  return rc;
}

/* Predicted survival S_i(t) of the patients of part q at time t.
 *   nll models: the network's survival at the bin edges, constant-density interpolation inside
 *     a bin (pycox's "CDI": S falls linearly from the bin's start to its end), S_{K-1} after the
 *     last edge, 1 before the first;
 *   Cox-type models (cox_clinical, cox_lasso, deep models on the cox loss): Breslow's estimate
 *     from the TRAINING part's risks, H0(t) = sum over training event times s <= t of
 *     d(s) / sum_{T_j >= s} exp(r_j), and S_i(t) = exp(-H0(t) exp(r_i)) (risks shifted by the
 *     training maximum for range; the product is unchanged). */
typedef struct surv_pred {
  const ts__surv_deep *deep; /* nll: its bins and survival; NULL: Cox-type */
  double rmax;
  size_t nt;                 /* Cox-type: distinct training event times and H0 at each */
  double *t, *h;
} surv_pred;

typedef struct trow {
  double t, r;
  int e;
} trow;

static int cmp_trow_desc(const void *a, const void *b) {
  const trow *x = a, *y = b;
  return x->t < y->t ? 1 : x->t > y->t ? -1 : 0;
}

/* Ascending by t, then r (pooled(): t the prediction, r the row). */
static int cmp_trow_pred(const void *a, const void *b) {
  const trow *x = a, *y = b;
  return x->t < y->t ? -1 : x->t > y->t ? 1 : x->r < y->r ? -1 : x->r > y->r;
}

/* Breslow's H0 at the training part's distinct event times, O(n log n). */
static int breslow(surv_pred *sp, const part *tr) {
  size_t n = tr->n;
  trow *o = malloc(sizeof *o * (n + 1));
  sp->t = malloc(sizeof *sp->t * (n + 1)), sp->h = malloc(sizeof *sp->h * (n + 1));
  if (!o || !sp->t || !sp->h) {
    free(o);
    return ts_error_set(TS_ENOMEM, "NO_MEMORY", "survival");
  }
  sp->rmax = -INFINITY;
  for (size_t i = 0; i < n; i++) o[i] = (trow){tr->time[i], tr->risk[i], tr->event[i]}, sp->rmax = tr->risk[i] > sp->rmax ? tr->risk[i] : sp->rmax;
  qsort(o, n, sizeof *o, cmp_trow_desc);
  double den = 0;
  size_t m = 0;
  double *inc = sp->h; /* increments at each distinct event time, descending, then reversed and summed */
  for (size_t a = 0; a < n;) {
    size_t b = a;
    int d = 0;
    for (; b < n && o[b].t == o[a].t; b++) den += exp(o[b].r - sp->rmax), d += o[b].e;
    if (d) sp->t[m] = o[a].t, inc[m] = d / den, m++;
    a = b;
  }
  for (size_t i = 0; i < m / 2; i++) { /* ascending */
    double x = sp->t[i];
    sp->t[i] = sp->t[m - 1 - i], sp->t[m - 1 - i] = x;
    x = inc[i], inc[i] = inc[m - 1 - i], inc[m - 1 - i] = x;
  }
  for (size_t i = 1; i < m; i++) sp->h[i] += sp->h[i - 1];
  sp->nt = m;
  free(o);
  return 0;
}

static double surv_at(const surv_pred *sp, int set, const part *q, size_t i, double t) {
  if (sp->deep && sp->deep->n_bins) {
    const ts__surv_deep *d = sp->deep;
    int K = d->n_bins;
    const double *S = d->surv[set] + i * (size_t)K, *e = d->edges;
    if (t < e[0]) return 1;
    for (int k = 0; k < K; k++)
      if (t < e[k + 1]) {
        double s0 = k ? S[k - 1] : 1;
        return s0 + (S[k] - s0) * (t - e[k]) / (e[k + 1] - e[k]);
      }
    return S[K - 1];
  }
  size_t lo = 0, hi = sp->nt; /* the last event time <= t */
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (sp->t[mid] <= t) lo = mid + 1;
    else hi = mid;
  }
  double h = lo ? sp->h[lo - 1] : 0;
  return exp(-h * exp(q->risk[i] - sp->rmax));
}

/* A deep model (stages/survival_deep.c) on the fold: the patients' vectors (genomic for snn;
 * genomic + clinical for mmf_* and coattn), standardised with the training part's mean and SD
 * (a constant column: SD 1), then training and the three parts' risks. model.json gets the fit. */
static int fit_deep(const ts_run *run, const char *model, int fold, const study *s, part sets[3], ts__surv_deep *d, float **omic_out,
                    ts__surv_pt **pts_out, const ts__surv_pt ***ptr_out, FILE *m, ts_unit_record *rec) {
  size_t n = sets[0].n + sets[1].n + sets[2].n;
  bool with_omic = ts_survnet_uses_omic(model), with_clin = with_omic && strcmp(model, "snn");
  int64_t G = with_omic ? s->ng + (with_clin ? s->ncov : 0) : 0;
  ts__surv_pt *pts = calloc(n + 1, sizeof *pts);
  const ts__surv_pt **ptr = calloc(n + 1, sizeof *ptr);
  float *om = calloc(n * (size_t)G + 1, sizeof *om);
  double *mu = calloc((size_t)G + 1, sizeof *mu), *sd = calloc((size_t)G + 1, sizeof *sd);
  *pts_out = pts, *ptr_out = ptr, *omic_out = om;
  if (!pts || !ptr || !om || !mu || !sd) {
    free(mu), free(sd);
    return ts_error_set(TS_ENOMEM, "NO_MEMORY", "survival %s", model);
  }
#define RAW(p, j) ((j) < s->ng ? (p)->g[j] : (p)->x[(j) - s->ng])
  const part *tr = &sets[TS_SET_TRAIN];
  for (int64_t j = 0; j < G; j++) {
    double a = 0, b = 0;
    for (size_t i = 0; i < tr->n; i++) a += RAW(tr->p[i], j);
    a /= (double)tr->n;
    for (size_t i = 0; i < tr->n; i++) b += (RAW(tr->p[i], j) - a) * (RAW(tr->p[i], j) - a);
    b = tr->n > 1 ? sqrt(b / (double)(tr->n - 1)) : 0;
    mu[j] = a, sd[j] = b > 0 ? b : 1;
  }
  size_t q = 0;
  for (int k = 0; k < 3; k++) {
    d->set[k] = ptr + q;
    d->n[k] = sets[k].n;
    for (size_t i = 0; i < sets[k].n; i++, q++) {
      const patient *p = sets[k].p[i];
      pts[q] = (ts__surv_pt){.id = p->id, .time = p->time, .event = p->event, .slides = (const char *const *)p->slides, .n_slides = p->n_slides};
      if (G) {
        pts[q].omic = om + q * (size_t)G;
        for (int64_t j = 0; j < G; j++) om[q * (size_t)G + (size_t)j] = (float)((RAW(p, j) - mu[j]) / sd[j]);
      }
      ptr[q] = &pts[q];
    }
  }
#undef RAW
  free(mu), free(sd);
  d->run = run, d->model = model, d->fold = fold, d->omic_dim = G;
  fprintf(m, "{\"model\": \"%s\", \"fold\": %d, \"inputs\": \"%s\", ", model, fold,
          !with_omic ? "pathology" : !ts_survnet_uses_path(model) ? "genomic" : "pathology + genomic + clinical");
  TS_CALL(ts__surv_deep_fit(d, m, rec));
  fprintf(m, "}\n");
  for (int k = 0; k < 3; k++) memcpy(sets[k].risk, d->risk[k], sizeof *d->risk[k] * sets[k].n);
  return 0;
}

static int work(const ts_run *run, const ts_unit *u, ts_unit_record *rec) {
  char model[64], path[TS_PATH_MAX], rel[512];
  int fold = -1, rc = 0, n_ex = 0;
  const char *colon = strchr(u->id, ':');
  if (!colon || sscanf(colon + 1, "fold%d", &fold) != 1 || colon - u->id >= (long)sizeof model)
    return ts_error_set(TS_EINTERNAL, "UNIT_UNKNOWN", "survival unit '%s' is not MODEL:foldK", u->id);
  snprintf(model, sizeof model, "%.*s", (int)(colon - u->id), u->id);
  study s;
  TS_CALL(load_study(run, &s, NULL, &n_ex));
  if (is_deep(model) && ts_survnet_uses_path(model) && (rc = read_slides(run, &s)) < 0) {
    study_clear(&s);
    return rc;
  }
  ts__surv_deep deep;
  memset(&deep, 0, sizeof deep);
  surv_pred spred = {0};
  float *omic = NULL;
  ts__surv_pt *pts = NULL;
  const ts__surv_pt **ptr = NULL;
  part sets[3];
  memset(sets, 0, sizeof sets);
  ts_rec_table *t = NULL;
  ts_cox_fit *fit = NULL, *hrfit = NULL;
  ts_km *km = NULL;
  ts_logrank *lr = NULL;
  char *csv = NULL, *js = NULL;
  size_t cl = 0, jl = 0;
  for (int k = 0; k < 3; k++) TS_TRY(part_alloc(&sets[k], s.n, s.ncov));
  TS_TRY(ts_run_path(run, "survival/splits.csv", path, sizeof path));
  TS_TRY(ts_rec_table_open("splits", path, NULL, &t));
  for (int64_t r = 0; r < t->nrows && rc >= 0; r++) {
    char **f = NULL;
    int nf = 0;
    if ((rc = ts_rec_row_fields(t, r, &f, &nf)) < 0) break;
    if (nf == 6 && atoi(f[0]) == fold) {
      int set = ts_split_set_parse(f[1]);
      const patient *p = NULL;
      for (size_t j = 0; j < s.n && !p; j++)
        if (!strcmp(s.p[j].id, f[2])) p = &s.p[j];
      if (!p || set < 0)
        rc = ts_error_set(TS_EINPUT, "SURV_SPLITS_STALE", "%s:%d: patient '%s' is not in the study (the clinical table changed?)", path, t->row_line[r], f[2]);
      else
        part_add(&sets[set], p, s.ncov);
    }
    free(f);
  }
  if (rc < 0) goto out;
  part *tr = &sets[TS_SET_TRAIN], *te = &sets[TS_SET_TEST];
  if (!tr->n || !te->n) TS_FAIL(TS_EINPUT, "SURV_FOLD_EMPTY", "%s: fold %d lacks a training or test part", path, fold);
  /* the fit */
  ts_surv_data dtr = part_data(tr), dte = part_data(te);
  ts_cox_options o;
  ts_cox_options_default(&o);
  FILE *m = open_memstream(&js, &jl); /* model.json */
  if (!m) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "survival");
  if (!strcmp(model, "cox_lasso")) {
    rc = fit_lasso(run->cfg, &s, sets, m, model, fold);
    fclose(m);
    if (rc < 0) goto out;
  } else if (is_deep(model)) {
    rc = fit_deep(run, model, fold, &s, sets, &deep, &omic, &pts, &ptr, m, rec);
    fclose(m);
    if (rc < 0) goto out;
  } else if ((rc = ts_cox_fit_new(&dtr, tr->x, (size_t)s.ncov, &o, &fit)) < 0) {
    fclose(m);
    goto out;
  }
  if (fit && fit->warning[0]) ts_unit_note(rec, "%s", fit->warning);
  for (int k = 0; fit && k < 3; k++)
    for (size_t i = 0; i < sets[k].n; i++) {
      double r = 0;
      for (int j = 0; j < s.ncov; j++)
        if (isfinite(fit->coef[j])) r += fit->coef[j] * sets[k].x[i * (size_t)s.ncov + (size_t)j];
      sets[k].risk[i] = r;
    }
  /* evaluation on the test part only */
  ts_concordance hc = {.c = NAN, .std_err = NAN}, uc = {.c = NAN, .std_err = NAN};
  int te_events = 0;
  for (size_t i = 0; i < te->n; i++) te_events += te->event[i];
  double tau = 0, *ev_times = calloc(tr->n + 1, sizeof *ev_times), *trisk = calloc(tr->n + 1, sizeof *trisk);
  size_t ne = 0;
  if (!ev_times || !trisk) {
    free(ev_times);
    free(trisk);
    TS_FAIL(TS_ENOMEM, "NO_MEMORY", "survival");
  }
  for (size_t i = 0; i < tr->n; i++) {
    if (tr->event[i]) ev_times[ne++] = tr->time[i], tau = tr->time[i] > tau ? tr->time[i] : tau;
    trisk[i] = tr->risk[i];
  }
  qsort(ev_times, ne, sizeof *ev_times, cmp_double);
  qsort(trisk, tr->n, sizeof *trisk, cmp_double);
  double at[3] = {quantile7(ev_times, ne, 0.25), quantile7(ev_times, ne, 0.5), quantile7(ev_times, ne, 0.75)}, auc[3] = {NAN, NAN, NAN};
  double cut = quantile7(trisk, tr->n, 0.5);
  free(ev_times);
  free(trisk);
  if (te_events == 0) {
    ts_unit_note(rec, "SURV_C_UNDEFINED: fold %d's test part has no event: C-index, AUC and risk groups are undefined (null)", fold);
  } else {
    if (ts_surv_concordance(&dte, te->risk, TS_TIMEWT_N, INFINITY, &hc) < 0) hc.c = hc.std_err = NAN;
    if (ts_surv_uno_c(&dte, te->risk, tau, &uc) < 0) uc.c = uc.std_err = NAN;
    if (ts_surv_auc_cd(&dte, te->risk, at, 3, auc) < 0) auc[0] = auc[1] = auc[2] = NAN;
    ts_error_clear();
  }
  /* predicted survival: the calibration time (the median event time of the fold's patients, the
   * same for every fold: they are all the study's patients) and the integrated Brier score over
   * 10 times from the 10th to the 90th percentile of the training event times, cut below the
   * test part's last follow-up (IPCW with the training part's censoring, ts_surv_brier) */
  spred.deep = is_deep(model) && deep.n_bins ? &deep : NULL;
  if (!spred.deep) TS_TRY(breslow(&spred, tr));
  double t_cal = NAN, ibs = NAN, ib_times[10], bs[10], boot_lo = NAN, boot_hi = NAN, boot_sd = NAN;
  int n_ib = 0;
  {
    size_t na = 0;
    double *all = malloc(sizeof *all * (s.n + 1));
    if (!all) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "survival");
    for (int k = 0; k < 3; k++)
      for (size_t i = 0; i < sets[k].n; i++)
        if (sets[k].event[i]) all[na++] = sets[k].time[i];
    qsort(all, na, sizeof *all, cmp_double);
    t_cal = na ? quantile7(all, na, 0.5) : NAN;
    free(all);
  }
  for (int k = 0; k < 3; k++)
    for (size_t i = 0; i < sets[k].n; i++) sets[k].surv_cal[i] = isfinite(t_cal) ? surv_at(&spred, k, &sets[k], i, t_cal) : NAN;
  if (ne >= 2 && te_events > 0) {
    double *et = malloc(sizeof *et * (tr->n + 1)), tmax = 0;
    size_t m2 = 0;
    if (!et) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "survival");
    for (size_t i = 0; i < tr->n; i++)
      if (tr->event[i]) et[m2++] = tr->time[i];
    qsort(et, m2, sizeof *et, cmp_double);
    for (size_t i = 0; i < te->n; i++) tmax = te->time[i] > tmax ? te->time[i] : tmax;
    double lo = quantile7(et, m2, 0.1), hi = quantile7(et, m2, 0.9);
    free(et);
    if (hi >= tmax) hi = tmax * (1 - 1e-9);
    if (hi > lo) {
      n_ib = 10;
      for (int k = 0; k < n_ib; k++) ib_times[k] = lo + (hi - lo) * k / (n_ib - 1);
      double *sv = malloc(sizeof *sv * (te->n * (size_t)n_ib + 1));
      if (!sv) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "survival");
      for (size_t i = 0; i < te->n; i++)
        for (int k = 0; k < n_ib; k++) sv[i * (size_t)n_ib + (size_t)k] = surv_at(&spred, TS_SET_TEST, te, i, ib_times[k]);
      for (int k = 0; k < n_ib; k++) bs[k] = NAN;
      if (ts_surv_brier(&dte, sv, ib_times, (size_t)n_ib, &dtr, bs, &ibs) < 0) {
        ts_unit_note(rec, "SURV_IBS_UNDEFINED: fold %d: %s", fold, ts_error_detail());
        ibs = NAN;
        ts_error_clear();
      }
      free(sv);
    }
    if (run->cfg->survival.bootstrap > 0 &&
        ts_surv_concordance_boot(&dte, te->risk, (int)run->cfg->survival.bootstrap, (uint64_t)run->cfg->run.seed ^ ((uint64_t)fold << 32), 0.95, &boot_lo,
                                 &boot_hi, &boot_sd) < 0) {
      boot_lo = boot_hi = boot_sd = NAN;
      ts_error_clear();
    }
  }
  /* risk groups: above the median of the TRAINING risks = high */
  double hr = NAN, hr_lo = NAN, hr_hi = NAN, lr_p = NAN;
  int n_high = 0;
  for (size_t i = 0; i < te->n; i++) n_high += te->group[i] = te->risk[i] > cut;
  for (size_t i = 0; i < tr->n; i++) tr->group[i] = tr->risk[i] > cut;
  for (size_t i = 0; i < sets[1].n; i++) sets[1].group[i] = sets[1].risk[i] > cut;
  if (n_high > 0 && (size_t)n_high < te->n && te_events > 0) {
    double *g = malloc(sizeof *g * te->n);
    if (!g) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "survival");
    for (size_t i = 0; i < te->n; i++) g[i] = te->group[i];
    if (ts_logrank_new(&dte, te->group, &lr) >= 0) lr_p = lr->p;
    if (ts_cox_fit_new(&dte, g, 1, &o, &hrfit) >= 0) {
      if (hrfit->warning[0] || hrfit->infinite[0] || !isfinite(hrfit->hr_upper[0])) /* monotone likelihood: all events on one side */
        ts_unit_note(rec, "SURV_HR_INFINITE: fold %d: the hazard ratio high vs low risk has no finite estimate (%s): null", fold,
                     hrfit->warning[0] ? hrfit->warning : "infinite upper limit");
      else
        hr = hrfit->hr[0], hr_lo = hrfit->hr_lower[0], hr_hi = hrfit->hr_upper[0];
    }
    free(g);
    ts_error_clear();
  } else if (te_events > 0) {
    ts_unit_note(rec, "SURV_ONE_RISK_GROUP: fold %d: every test patient is on one side of the training median risk: no log-rank or hazard ratio", fold);
  }
  if (te_events > 0 && ts_km_fit_new(&(ts_surv_data){.n = te->n, .time = te->time, .event = te->event, .strata = te->group}, 0.95, &km) < 0) {
    ts_error_clear();
    km = NULL;
  }
  /* outputs */
  snprintf(rel, sizeof rel, "survival/%s/fold%d", model, fold);
  TS_TRY(ts_run_path(run, rel, path, sizeof path));
  TS_TRY(ts_io_mkdirs(path, 0755));
  if (fit) {
  fprintf(m, "{\"model\": \"%s\", \"fold\": %d, \"ties\": \"efron\", \"n\": %zu, \"events\": %zu, \"loglik\": ", model, fold, fit->n, fit->nevent);
  ts__stage_jnum(m, fit->loglik, "%.17g");
  fprintf(m, ", \"iter\": %d, \"warning\": \"%s\", \"coefficients\": [", fit->iter, fit->warning);
  for (int j = 0; j < s.ncov; j++) {
    fprintf(m, "%s\n  {\"name\": \"%s\", \"coef\": ", j ? "," : "", s.cov[j]);
    ts__stage_jnum(m, fit->coef[j], "%.17g");
    fprintf(m, ", \"se\": ");
    ts__stage_jnum(m, fit->se[j], "%.17g");
    fprintf(m, ", \"hr\": ");
    ts__stage_jnum(m, fit->hr[j], "%.17g");
    fprintf(m, ", \"hr_ci95\": ");
    ts__stage_jpair(m, fit->hr_lower[j], fit->hr_upper[j]);
    fprintf(m, ", \"p\": ");
    ts__stage_jnum(m, fit->pvalue[j], "%.17g");
    fprintf(m, "}");
  }
  fprintf(m, "]}\n");
  fclose(m);
  }
  snprintf(rel, sizeof rel, "survival/%s/fold%d/model.json", model, fold);
  rc = ts__stage_write_output(run, rel, js, jl, rec);
  free(js);
  js = NULL;
  if (rc < 0) goto out;
  if (!(m = open_memstream(&csv, &cl))) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "survival");
  fprintf(m, "patient_id,set,time,event,risk,group,surv_at_tcal\n");
  for (int k = 0; k < 3; k++)
    for (size_t i = 0; i < sets[k].n; i++) {
      fprintf(m, "%s,%s,%.17g,%d,%.17g,%s,", sets[k].p[i]->id, ts_split_set_name(k), sets[k].time[i], sets[k].event[i], sets[k].risk[i],
              sets[k].group[i] ? "high" : "low");
      if (isfinite(sets[k].surv_cal[i])) fprintf(m, "%.17g", sets[k].surv_cal[i]);
      fputc('\n', m);
    }
  fclose(m);
  snprintf(rel, sizeof rel, "survival/%s/fold%d/risks.csv", model, fold);
  rc = ts__stage_write_output(run, rel, csv, cl, rec);
  free(csv);
  csv = NULL;
  if (rc < 0) goto out;
  if (!(m = open_memstream(&csv, &cl))) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "survival");
  fprintf(m, "group,time,n_risk,n_event,surv,lower,upper\n");
  for (size_t g = 0; km && g < km->ncurve; g++)
    for (size_t i = 0; i < km->curve[g].len; i++) {
      const ts_km_curve *kc = &km->curve[g];
      fprintf(m, "%s,%.17g,%.17g,%.17g,%.17g,", kc->group ? "high" : "low", kc->time[i], kc->n_risk[i], kc->n_event[i], kc->surv[i]);
      if (isfinite(kc->lower[i])) fprintf(m, "%.17g", kc->lower[i]);
      fputc(',', m);
      if (isfinite(kc->upper[i])) fprintf(m, "%.17g", kc->upper[i]);
      fputc('\n', m);
    }
  fclose(m);
  snprintf(rel, sizeof rel, "survival/%s/fold%d/km.csv", model, fold);
  rc = ts__stage_write_output(run, rel, csv, cl, rec);
  if (rc < 0) goto out;
  if (!(m = open_memstream(&js, &jl))) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "survival");
  fprintf(m, "{\"model\": \"%s\", \"fold\": %d, \"n_train\": %zu, \"n_val\": %zu, \"n_test\": %zu, \"test_events\": %d,\n \"c_index\": ", model, fold,
          tr->n, sets[1].n, te->n, te_events);
  ts__stage_jnum(m, hc.c, "%.17g");
  fprintf(m, ", \"c_index_se\": ");
  ts__stage_jnum(m, hc.std_err, "%.17g");
  fprintf(m, ", \"c_index_boot_ci95\": ");
  ts__stage_jpair(m, boot_lo, boot_hi);
  fprintf(m, ", \"c_index_boot_sd\": ");
  ts__stage_jnum(m, boot_sd, "%.17g");
  fprintf(m, ", \"bootstrap\": %lld", (long long)run->cfg->survival.bootstrap);
  fprintf(m, ",\n \"ibs\": ");
  ts__stage_jnum(m, ibs, "%.17g");
  fprintf(m, ", \"brier_times\": [");
  for (int k = 0; k < n_ib; k++) fprintf(m, "%s", k ? ", " : ""), ts__stage_jnum(m, ib_times[k], "%.17g");
  fprintf(m, "], \"brier\": [");
  for (int k = 0; k < n_ib; k++) fprintf(m, "%s", k ? ", " : ""), ts__stage_jnum(m, bs[k], "%.17g");
  fprintf(m, "], \"calibration_time\": ");
  ts__stage_jnum(m, t_cal, "%.17g");
  fprintf(m, ", \"survival_prediction\": \"%s\"", spred.deep ? "discrete-time bins (CDI interpolation)" : "Breslow baseline of the training part");
  fprintf(m, ",\n \"uno_c\": ");
  ts__stage_jnum(m, uc.c, "%.17g");
  fprintf(m, ", \"uno_tau\": ");
  ts__stage_jnum(m, tau, "%.17g");
  fprintf(m, ",\n \"auc_times\": [");
  for (int k = 0; k < 3; k++) fprintf(m, "%s", k ? ", " : ""), ts__stage_jnum(m, at[k], "%.17g");
  fprintf(m, "], \"auc\": [");
  for (int k = 0; k < 3; k++) fprintf(m, "%s", k ? ", " : ""), ts__stage_jnum(m, auc[k], "%.17g");
  fprintf(m, "],\n \"risk_cut\": ");
  ts__stage_jnum(m, cut, "%.17g");
  fprintf(m, ", \"n_high\": %d, \"n_low\": %zu, \"logrank_p\": ", n_high, te->n - (size_t)n_high);
  ts__stage_jnum(m, lr_p, "%.17g");
  fprintf(m, ", \"hr_high_vs_low\": ");
  ts__stage_jnum(m, hr, "%.17g");
  fprintf(m, ", \"hr_ci95\": ");
  ts__stage_jpair(m, hr_lo, hr_hi);
  fprintf(m, "}\n");
  fclose(m);
  snprintf(rel, sizeof rel, "survival/%s/fold%d/metrics.json", model, fold);
  rc = ts__stage_write_output(run, rel, js, jl, rec);
  if (rc >= 0) rec->items = (int64_t)tr->n;
out:
  free(csv);
  free(js);
  ts_km_free(&km);
  ts_logrank_free(&lr);
  ts_cox_fit_free(&fit);
  ts_cox_fit_free(&hrfit);
  ts_rec_table_free(&t);
  for (int k = 0; k < 3; k++) part_clear(&sets[k]);
  study_clear(&s);
  ts__surv_deep_clear(&deep);
  free(omic), free(pts), free(ptr);
  free(spred.t), free(spred.h);
  return rc;
}

/* ---- finish: the summary over folds ---- */

/* Every fold's test patients together (their risks come from different folds' models: the
 * pooled cross-validated C; test parts are disjoint, so a patient is tested at most once, and
 * all patients only when folds x test_frac >= 1), the pooled Harrell C with a percentile
 * bootstrap CI, and the calibration at the calibration time: test patients in quintiles of
 * predicted S(t_cal) (thirds below 25 patients, none below 10), per group the mean prediction and the Kaplan-Meier estimate at t_cal
 * with its 95% CI. JSON members appended to fj. */
static void pooled(const ts_run *run, const char *model, int folds, FILE *fj) {
  size_t n = 0, cap = 0;
  double *tm = NULL, *rk = NULL, *sv = NULL, t_cal = NAN;
  int *ev = NULL;
  for (int f = 0; f < folds; f++) {
    char rel[512], path[TS_PATH_MAX];
    snprintf(rel, sizeof rel, "survival/%s/fold%d/risks.csv", model, f);
    ts_rec_table *t = NULL;
    if (ts_run_path(run, rel, path, sizeof path) < 0 || !ts_io_exists(path) || ts_rec_table_open("risks", path, NULL, &t) < 0) {
      ts_error_clear();
      continue;
    }
    for (int64_t r = 0; r < t->nrows; r++) {
      char **fl = NULL;
      int nf = 0;
      if (ts_rec_row_fields(t, r, &fl, &nf) < 0) {
        ts_error_clear();
        break;
      }
      if (nf >= 7 && !strcmp(fl[1], "test")) {
        if (n == cap) {
          cap = cap ? 2 * cap : 256;
          double *a = realloc(tm, sizeof *a * cap), *b = a ? realloc(rk, sizeof *b * cap) : NULL, *c = b ? realloc(sv, sizeof *c * cap) : NULL;
          int *e = c ? realloc(ev, sizeof *e * cap) : NULL;
          if (a) tm = a;
          if (b) rk = b;
          if (c) sv = c;
          if (e) ev = e;
          if (!e) {
            free(fl);
            break;
          }
        }
        tm[n] = strtod(fl[2], NULL), ev[n] = atoi(fl[3]), rk[n] = strtod(fl[4], NULL), sv[n] = fl[6][0] ? strtod(fl[6], NULL) : NAN;
        n++;
      }
      free(fl);
    }
    ts_rec_table_free(&t);
    ts_json mj;
    snprintf(rel, sizeof rel, "survival/%s/fold%d/metrics.json", model, f);
    if (!isfinite(t_cal) && ts__stage_read_json(run, rel, &mj) >= 0) t_cal = ts_json_num(&mj, "calibration_time"), ts_json_clear(&mj);
  }
  ts_surv_data d = {.n = n, .time = tm, .event = ev};
  ts_concordance cc = {.c = NAN, .std_err = NAN};
  double lo = NAN, hi = NAN, sd = NAN;
  if (n >= 2 && ts_surv_concordance(&d, rk, TS_TIMEWT_N, INFINITY, &cc) >= 0 && run->cfg->survival.bootstrap > 0 &&
      ts_surv_concordance_boot(&d, rk, (int)run->cfg->survival.bootstrap, (uint64_t)run->cfg->run.seed, 0.95, &lo, &hi, &sd) < 0)
    lo = hi = sd = NAN;
  ts_error_clear();
  fprintf(fj, ",\n   \"pooled_test\": {\"n\": %zu, \"c_index\": ", n);
  ts__stage_jnum(fj, cc.c, "%.17g");
  fprintf(fj, ", \"c_index_se\": ");
  ts__stage_jnum(fj, cc.std_err, "%.17g");
  fprintf(fj, ", \"c_index_boot_ci95\": ");
  ts__stage_jpair(fj, lo, hi);
  fprintf(fj, ", \"bootstrap\": %lld, \"calibration_time\": ", (long long)run->cfg->survival.bootstrap);
  ts__stage_jnum(fj, t_cal, "%.17g");
  fprintf(fj, ", \"calibration\": [");
  /* quintiles of the prediction, sorted by (pred, index) */
  trow *o = malloc(sizeof *o * (n + 1));
  size_t nv = 0;
  for (size_t i = 0; o && i < n; i++)
    if (isfinite(sv[i])) o[nv++] = (trow){.t = sv[i], .r = (double)i};
  if (o) qsort(o, nv, sizeof *o, cmp_trow_pred);
  int G = nv >= 25 ? 5 : nv >= 10 ? 3 : 0, w = 0;
  for (int g = 0; g < G && isfinite(t_cal); g++) {
    size_t a = nv * (size_t)g / (size_t)G, b = nv * (size_t)(g + 1) / (size_t)G, k = b - a;
    double *gt = malloc(sizeof *gt * (k + 1)), mean = 0;
    int *ge = malloc(sizeof *ge * (k + 1));
    ts_km *km = NULL;
    if (!gt || !ge) {
      free(gt), free(ge);
      break;
    }
    for (size_t i = 0; i < k; i++) {
      size_t r = (size_t)o[a + i].r;
      gt[i] = tm[r], ge[i] = ev[r], mean += sv[r] / (double)k;
    }
    double obs = NAN, olo = NAN, ohi = NAN;
    if (ts_km_fit_new(&(ts_surv_data){.n = k, .time = gt, .event = ge}, 0.95, &km) >= 0 && km->ncurve == 1) {
      const ts_km_curve *kc = &km->curve[0];
      obs = 1, olo = 1, ohi = 1;
      for (size_t i = 0; i < kc->len && kc->time[i] <= t_cal; i++) obs = kc->surv[i], olo = kc->lower[i], ohi = kc->upper[i];
      double last = kc->len ? kc->time[kc->len - 1] : 0;
      if (last < t_cal) obs = olo = ohi = NAN; /* follow-up ends before t_cal: not estimable */
    }
    ts_error_clear();
    ts_km_free(&km);
    fprintf(fj, "%s{\"group\": %d, \"n\": %zu, \"predicted\": %.17g, \"observed\": ", w++ ? ", " : "", g + 1, k, mean);
    ts__stage_jnum(fj, obs, "%.17g");
    fprintf(fj, ", \"observed_ci95\": ");
    ts__stage_jpair(fj, olo, ohi);
    fprintf(fj, "}");
    free(gt), free(ge);
  }
  fprintf(fj, "]}");
  free(o), free(tm), free(rk), free(sv), free(ev);
}

static int finish(const ts_run *run) {
  const ts_config *c = run->cfg;
  char mbuf[512], path[TS_PATH_MAX];
  const char *models[MAX_MODELS];
  int n_models = 0, rc = 0;
  TS_CALL(parse_list(c->survival.models, mbuf, sizeof mbuf, models, MAX_MODELS, &n_models, "survival.models", known_models));
  TS_CALL(ts_run_path(run, "survival/splits.csv", path, sizeof path));
  if (!ts_io_exists(path)) return 0; /* the plan stopped before splitting */
  int folds = (int)c->survival.folds;
  static const char *const mk[] = {"c_index", "uno_c", "ibs", "logrank_p", "hr_high_vs_low"};
  enum { NK = 5, NMEAN = 3 };
  char *csv = NULL, *json = NULL;
  size_t cl = 0, jl = 0;
  FILE *fc = open_memstream(&csv, &cl), *fj = open_memstream(&json, &jl);
  if (!fc || !fj) {
    if (fc) fclose(fc);
    if (fj) fclose(fj);
    return ts_error_set(TS_ENOMEM, "NO_MEMORY", "survival summary");
  }
  fprintf(fc, "model,fold,c_index,uno_c,ibs,logrank_p,hr_high_vs_low\n");
  fprintf(fj, "{\"folds\": %d, \"models\": [", folds);
  for (int m = 0; m < n_models; m++) {
    double v[100][NK];
    int done = 0;
    fprintf(fj, "%s\n  {\"model\": \"%s\", \"per_fold\": [", m ? "," : "", models[m]);
    for (int f = 0; f < folds && f < 100; f++) {
      char rel[512];
      for (int k = 0; k < NK; k++) v[f][k] = NAN;
      snprintf(rel, sizeof rel, "survival/%s/fold%d/metrics.json", models[m], f);
      ts_json mj;
      if (ts__stage_read_json(run, rel, &mj) < 0) continue; /* the fold failed or did not run */
      fprintf(fc, "%s,%d", models[m], f);
      fprintf(fj, "%s{\"fold\": %d", done ? ", " : "", f);
      for (int k = 0; k < NK; k++) {
        v[f][k] = ts_json_num(&mj, mk[k]);
        fputc(',', fc);
        if (isfinite(v[f][k])) fprintf(fc, "%.9g", v[f][k]); /* undefined: an empty cell, not NaN */
        fprintf(fj, ", \"%s\": ", mk[k]);
        ts__stage_jnum(fj, v[f][k], "%.17g");
      }
      fprintf(fc, "\n");
      fprintf(fj, "}");
      ts_json_clear(&mj);
      done++;
    }
    fprintf(fj, "], \"folds_done\": %d", done);
    for (int k = 0; k < NMEAN; k++) { /* C-indices and IBS: mean and sd over the folds where defined */
      double s1 = 0, s2 = 0;
      int nn = 0;
      for (int f = 0; f < folds && f < 100; f++)
        if (isfinite(v[f][k])) s1 += v[f][k], nn++;
      double mean = nn ? s1 / nn : NAN;
      for (int f = 0; f < folds && f < 100; f++)
        if (isfinite(v[f][k])) s2 += (v[f][k] - mean) * (v[f][k] - mean);
      fprintf(fj, ", \"%s_mean\": ", mk[k]);
      ts__stage_jnum(fj, mean, "%.17g");
      fprintf(fj, ", \"%s_sd\": ", mk[k]);
      ts__stage_jnum(fj, nn > 1 ? sqrt(s2 / (nn - 1)) : NAN, "%.17g");
      fprintf(fj, ", \"%s_folds\": %d", mk[k], nn);
    }
    pooled(run, models[m], folds, fj);
    fprintf(fj, "}");
  }
  fprintf(fj, "\n]}\n");
  fclose(fc);
  fclose(fj);
  if (rc >= 0) rc = ts__stage_write_summary(run, "survival", csv, json);
  free(csv);
  free(json);
  return rc;
}

extern const struct ts_report_section ts_report_section_survival; /* stages/report_survival.c */
static const struct ts_report_section *const report_sections[] = {&ts_report_section_survival, NULL};

const struct ts_stage ts_stage_survival = {
    .abi = TS_STAGE_ABI,
    .name = "survival",
    .kind = TS_SHARDED,
    .needs = needs,
    .config_keys = keys,
    .plan = plan,
    .work = work,
    .finish = finish,
    .check = check,
    .needs_for = needs_for,
    .skip = skip,
    .items_unit = "patients",
    .unit_noun = "fold",
    .report = report_sections,
};
