/* registry.c — the stages of a run, in order (NULL-terminated), checked at start-up
 * (pipeline/stage_table.c). Only the table is here, so that a test binary can link the whole
 * pipeline with a registry of its own (tests/toy_collective.c). */
#include "ts_stage.h"

extern const struct ts_stage ts_stage_tissue;
extern const struct ts_stage ts_stage_tile;
extern const struct ts_stage ts_stage_extract;
extern const struct ts_stage ts_stage_records;
extern const struct ts_stage ts_stage_mil;
extern const struct ts_stage ts_stage_survival;
extern const struct ts_stage ts_stage_report;

const struct ts_stage *const ts_stages[] = {
    &ts_stage_tissue,
    &ts_stage_tile,
    &ts_stage_extract,
    &ts_stage_records, /* needs no slide stage: clinical and genomic tables */
    &ts_stage_mil,     /* slide classifiers over the features, per (model, fold) */
    &ts_stage_survival, /* patient risk models, per (model, fold) */
    &ts_stage_report, /* last: the report of the run itself */
    NULL,
};
