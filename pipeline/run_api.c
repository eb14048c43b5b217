/* run_api.c — the ledger-backed implementation of the run API that stages see (api/ts_stage.h).
 * Stages ask by stage and unit name; only this file and the driver know that the answers come
 * from SQLite. */
#include "ts_run_impl.h"

#include "ts_error.h"
#include "ts_ledger.h"

static int unit_state(void *impl, const char *stage, const char *unit, char state_out[16]) {
  return ts_ledger_unit_state(impl, stage, unit, state_out);
}
static int unit_error(void *impl, const char *stage, const char *unit, char token_out[64], char *message, size_t n) {
  TS_CALL(ts_ledger_unit_error(impl, stage, unit, token_out));
  return message && n ? ts_ledger_unit_error_message(impl, stage, unit, message, n) : 0;
}
static int unit_items(void *impl, const char *stage, const char *unit, int64_t *items_out) {
  return ts_ledger_unit_items(impl, stage, unit, items_out);
}
static int unit_output(void *impl, const char *stage, const char *unit, char *rel, size_t n, char checksum_out[65]) {
  return ts_ledger_unit_output(impl, stage, unit, rel, n, checksum_out);
}
static int unit_redo(void *impl, const char *stage, const char *unit) { return ts_ledger_unit_reset(impl, stage, unit); }
static int retire_outputs(void *impl, const char *stage, const char *prefix) {
  return ts_ledger_units_retire_outputs(impl, stage, prefix);
}
static int begin(void *impl) { return ts_ledger_begin(impl); }
static int commit(void *impl) { return ts_ledger_commit(impl); }

const struct ts_run_ops ts_run_ledger_ops = {
    .unit_state = unit_state,
    .unit_error = unit_error,
    .unit_items = unit_items,
    .unit_output = unit_output,
    .unit_redo = unit_redo,
    .retire_outputs = retire_outputs,
    .begin = begin,
    .commit = commit,
};
