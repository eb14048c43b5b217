/* run_api.c — the ledger-backed implementation of the run API that stages see (api/ts_stage.h).
 * Stages ask by stage and unit name; only this file and the driver know that the answers come
 * from SQLite. */
#include "ts_run_impl.h"

#include "ts_error.h"

#define L(impl) (((ts_run_record *)(impl))->ledger)

static int unit_state(void *impl, const char *stage, const char *unit, char state_out[16]) {
  return ts_ledger_unit_state(L(impl), stage, unit, state_out);
}
static int unit_error(void *impl, const char *stage, const char *unit, char token_out[64], char *message, size_t n) {
  TS_CALL(ts_ledger_unit_error(L(impl), stage, unit, token_out));
  return message && n ? ts_ledger_unit_error_message(L(impl), stage, unit, message, n) : 0;
}
static int unit_items(void *impl, const char *stage, const char *unit, int64_t *items_out) {
  return ts_ledger_unit_items(L(impl), stage, unit, items_out);
}
static int unit_output(void *impl, const char *stage, const char *unit, char *rel, size_t n, char checksum_out[65]) {
  return ts_ledger_unit_output(L(impl), stage, unit, rel, n, checksum_out);
}
static int unit_redo(void *impl, const char *stage, const char *unit) { return ts_ledger_unit_reset(L(impl), stage, unit); }
static int unit_key(void *impl, const char *stage, const char *unit, char key_out[80]) {
  return ts_ledger_unit_key_get(L(impl), stage, unit, key_out);
}
static int retire_outputs(void *impl, const char *stage, const char *prefix) {
  return ts_ledger_units_retire_outputs(L(impl), stage, prefix);
}
static int begin(void *impl) { return ts_ledger_begin(L(impl)); }
static int commit(void *impl) { return ts_ledger_commit(L(impl)); }
static int checkpoint_record(void *impl, const char *stage, const char *stage_hash, int64_t step, const char *rel,
                             const char *checksum, int64_t bytes) {
  return ts_ledger_checkpoint_record(L(impl), stage, stage_hash, step, rel, checksum, bytes, ((ts_run_record *)impl)->run_id);
}

const struct ts_run_ops ts_run_ledger_ops = {
    .unit_state = unit_state,
    .unit_error = unit_error,
    .unit_items = unit_items,
    .unit_output = unit_output,
    .unit_redo = unit_redo,
    .unit_key = unit_key,
    .retire_outputs = retire_outputs,
    .begin = begin,
    .commit = commit,
    .checkpoint_record = checkpoint_record,
};
