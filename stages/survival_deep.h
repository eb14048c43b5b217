/* survival_deep.h — the deep models of the survival stage (stages/survival_deep.c): private to
 * stages/survival*.c. The stage (survival.c) has the patients, the splits and the evaluation; this
 * part trains one nn/ts_survnet.h model on a fold's training part, stops early on its validation
 * part, and gives every patient's risk (and predicted survival) from the best epoch. */
#ifndef TS_SURVIVAL_DEEP_H
#define TS_SURVIVAL_DEEP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ts_stage.h"

/* One patient as the deep models see it. */
typedef struct ts__surv_pt {
  const char *id;
  double time;
  int event;
  const float *omic;          /* omic_dim values (standardised by the caller), NULL when unused */
  const char *const *slides;  /* the patient's slides (cohort order): their tiles form one bag */
  int n_slides;
} ts__surv_pt;

typedef struct ts__surv_deep {
  /* in */
  const ts_run *run;
  const char *model;               /* the unit's model name = the ts_survnet arch */
  int fold;
  const ts__surv_pt *const *set[3]; /* TS_SET_TRAIN, TS_SET_VAL, TS_SET_TEST */
  size_t n[3];
  int64_t omic_dim;                /* 0 when the model uses none */
  /* out (allocated by ts__surv_deep_fit, freed by ts__surv_deep_clear) */
  double *risk[3];                 /* higher = earlier death */
  int n_bins;                      /* nll: K; cox: 0 */
  double edges[51];                /* nll: the K + 1 bin edges (training part) */
  double *surv[3];                 /* nll: n x K survival at the end of each bin */
  int epochs_run, best_epoch;
  double best_val_loss;
  int64_t path_dim;
} ts__surv_deep;

/* Train, evaluate, and write survival/<model>/fold<k>/{model.h5, curve.csv, attention.h5,
 * heatmaps.sha256 (+ heatmaps/)} as outputs of rec; a JSON fragment describing the fit (no
 * braces: "key": value, ...) goes to mj. */
int ts__surv_deep_fit(ts__surv_deep *d, FILE *mj, ts_unit_record *rec);
void ts__surv_deep_clear(ts__surv_deep *d);

#endif
