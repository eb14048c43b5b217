/* run_api.c — the run API of ts_stage.h: thin calls through the ops table that the pipeline
 * fills (pipeline/run_api.c holds the ledger-backed implementation). Keeping the table here
 * means a stage links against api/ only, and the ledger stays a detail of the pipeline. */
#include <string.h>

#include "ts_error.h"
#include "ts_io.h"
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
int ts_run_unit_is_done(const ts_run *run, const char *unit, const char *key_text, bool *done_out) {
  char state[16], key[80];
  *done_out = false;
  TS_CALL(ts_run_unit_state(run, run->stage_name, unit, state));
  if (strcmp(state, "done")) return 0;
  TS_CALL(OPS_CALL(run, unit_key, run->stage_name, unit, key));
  char hex[65];
  if (key_text) ts_io_sha256(key_text, strlen(key_text), hex);
  *done_out = !key_text || !key[0] || !strcmp(key, hex); /* no key recorded (older ledger): as before */
  return 0;
}

int ts_run_checkpoint_record(const ts_run *run, int64_t step, const char *rel) {
  if (!run || !run->ops || !run->ops->checkpoint_record) return no_record(run, "checkpoint_record");
  char abs[TS_PATH_MAX], sum[65];
  int64_t bytes = 0;
  TS_CALL(ts_io_join(run->dir, rel, abs, sizeof abs));
  TS_CALL(ts_io_sha256_file(abs, sum, &bytes));
  return run->ops->checkpoint_record(run->impl, run->stage_name, run->stage_hash, step, rel, sum, bytes);
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
