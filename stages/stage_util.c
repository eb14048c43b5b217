/* stage_util.c — see stage_util.h. */
#include "stage_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ts_error.h"
#include "ts_io.h"

void ts__stage_jnum(FILE *f, double v, const char *fmt) {
  if (isfinite(v)) fprintf(f, fmt, v);
  else fputs("null", f);
}

int ts__stage_write_output(const ts_run *run, const char *rel, const char *text, size_t len, ts_unit_record *rec) {
  char path[TS_PATH_MAX];
  TS_CALL(ts_run_path(run, rel, path, sizeof path));
  TS_CALL(ts_io_write_atomic(path, text, len));
  return ts_unit_add_output(rec, rel);
}

int ts__stage_read_json(const ts_run *run, const char *rel, ts_json *out) {
  char path[TS_PATH_MAX], *text = NULL;
  memset(out, 0, sizeof *out);
  int rc = ts_run_path(run, rel, path, sizeof path) < 0 || ts_io_read_all(path, &text, NULL) < 0 || ts_json_parse(text, out) < 0 ? -1 : 0;
  free(text);
  ts_error_clear();
  return rc;
}

int ts__stage_write_summary(const ts_run *run, const char *stage, const char *csv, const char *json) {
  char rel[256], path[TS_PATH_MAX];
  TS_CALL(ts_run_path(run, stage, path, sizeof path));
  TS_CALL(ts_io_mkdirs(path, 0755));
  snprintf(rel, sizeof rel, "%s/summary.csv", stage);
  TS_CALL(ts_run_path(run, rel, path, sizeof path));
  TS_CALL(ts_io_write_atomic(path, csv, strlen(csv)));
  snprintf(rel, sizeof rel, "%s/summary.json", stage);
  TS_CALL(ts_run_path(run, rel, path, sizeof path));
  TS_CALL(ts_io_write_atomic(path, json, strlen(json)));
  fprintf(stderr, "%s: summary in %s (and summary.csv)\n", stage, path);
  return 0;
}
