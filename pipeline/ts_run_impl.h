/* ts_run_impl.h — pipeline-internal: the ledger-backed run API (pipeline/run_api.c). */
#ifndef TS_RUN_IMPL_H
#define TS_RUN_IMPL_H

#include "ts_stage.h"

/* impl is the rank-0 ts_ledger *. */
extern const struct ts_run_ops ts_run_ledger_ops;

#endif
