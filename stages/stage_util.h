/* stage_util.h — small helpers the sharded model stages (mil.c, survival.c) share: private to
 * stages/ (the double underscore), not part of the stage API. */
#ifndef TS_STAGE_UTIL_H
#define TS_STAGE_UTIL_H

#include <stddef.h>
#include <stdio.h>

#include "ts_json.h"
#include "ts_stage.h"

/* A number in FMT, or null where JSON has none (NaN, inf). */
void ts__stage_jnum(FILE *f, double v, const char *fmt);
/* Write TEXT to the run-relative REL atomically and name it an output of the unit. */
int ts__stage_write_output(const ts_run *run, const char *rel, const char *text, size_t len, ts_unit_record *rec);
/* Parse the run-relative JSON file REL into *out (ts_json_clear it); -1 (no error kept) when
 * absent or not JSON: a fold that failed or did not run. */
int ts__stage_read_json(const ts_run *run, const char *rel, ts_json *out);
/* <stage>/summary.csv and <stage>/summary.json, atomically, and the line that says where. */
int ts__stage_write_summary(const ts_run *run, const char *stage, const char *csv, const char *json);

#endif
