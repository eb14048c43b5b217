/* ts_unit.c — the outputs and notes of a unit record (ts_unit.h). */
#include "ts_unit.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ts_error.h"

int ts_unit_add_output(ts_unit_record *rec, const char *rel) {
  if (!rel || !rel[0]) return ts_error_set(TS_EINTERNAL, "UNIT_OUTPUTS", "an output needs a path");
  if (!rec->output[0]) {
    if (strlen(rel) >= sizeof rec->output) return ts_error_set(TS_EINTERNAL, "UNIT_OUTPUTS", "output path too long: %.200s", rel);
    snprintf(rec->output, sizeof rec->output, "%s", rel);
    return 0;
  }
  if (rec->n_more >= TS_UNIT_MAX_OUTPUTS - 1)
    return ts_error_set(TS_EINTERNAL, "UNIT_OUTPUTS", "more than %d outputs for one unit (at %.200s)", TS_UNIT_MAX_OUTPUTS, rel);
  ts_unit_file *f = &rec->more[rec->n_more];
  if (strlen(rel) >= sizeof f->path) return ts_error_set(TS_EINTERNAL, "UNIT_OUTPUTS", "output path too long: %.200s", rel);
  memset(f, 0, sizeof *f);
  snprintf(f->path, sizeof f->path, "%s", rel);
  rec->n_more++;
  return 0;
}

void ts_unit_note(ts_unit_record *rec, const char *fmt, ...) {
  if (rec->note[0]) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rec->note, sizeof rec->note, fmt, ap);
  va_end(ap);
}
