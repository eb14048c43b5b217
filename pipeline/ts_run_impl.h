/* ts_run_impl.h — pipeline-internal: the ledger-backed run API (pipeline/run_api.c). */
#ifndef TS_RUN_IMPL_H
#define TS_RUN_IMPL_H

#include "ts_ledger.h"
#include "ts_stage.h"

/* What ts_run.impl points to on rank 0. */
typedef struct ts_run_record {
  ts_ledger *ledger;
  int64_t run_id;
} ts_run_record;

extern const struct ts_run_ops ts_run_ledger_ops;

#endif
