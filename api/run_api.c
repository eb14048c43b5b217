/* run_api.c — the run API of ts_stage.h: thin calls through the ops table that the pipeline
 * fills (pipeline/run_api.c holds the ledger-backed implementation). Keeping the table here
 * means a stage links against api/ only, and the ledger stays a detail of the pipeline. */
#include "ts_error.h"
#include "ts_stage.h"

static int no_record(const ts_run *run, const char *what) {
  return ts_error_set(TS_EINTERNAL, "RUN_NO_RECORD", "%s: the run's record is only reachable on rank 0's main thread (rank %d)",
                      what, run ? run->rank : -1);
}

#define OPS_CALL(run, fn, ...) \
  ((run) && (run)->ops && (run)->ops->fn ? (run)->ops->fn((run)->impl, __VA_ARGS__) : no_record((run), #fn))

int ts_run_unit_state(const ts_run *run, const char *stage, const char *unit, char state_out[16]) {
  state_out[0] = '\0';
  return OPS_CALL(run, unit_state, stage, unit, state_out);
}
int ts_run_unit_error(const ts_run *run, const char *stage, const char *unit, char token_out[64], char *message, size_t n) {
  token_out[0] = '\0';
  if (message && n) message[0] = '\0';
  return OPS_CALL(run, unit_error, stage, unit, token_out, message, n);
}
int ts_run_unit_items(const ts_run *run, const char *stage, const char *unit, int64_t *items_out) {
  *items_out = 0;
  return OPS_CALL(run, unit_items, stage, unit, items_out);
}
int ts_run_unit_output(const ts_run *run, const char *stage, const char *unit, char *rel, size_t n, char checksum_out[65]) {
  if (n) rel[0] = '\0';
  checksum_out[0] = '\0';
  return OPS_CALL(run, unit_output, stage, unit, rel, n, checksum_out);
}
int ts_run_unit_redo(const ts_run *run, const char *unit) { return OPS_CALL(run, unit_redo, run->stage_name, unit); }
int ts_run_retire_outputs(const ts_run *run, const char *unit_prefix) {
  return OPS_CALL(run, retire_outputs, run->stage_name, unit_prefix);
}
int ts_run_begin(const ts_run *run) {
  return run && run->ops && run->ops->begin ? run->ops->begin(run->impl) : no_record(run, "begin");
}
int ts_run_commit(const ts_run *run) {
  return run && run->ops && run->ops->commit ? run->ops->commit(run->impl) : no_record(run, "commit");
}
