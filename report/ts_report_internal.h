/* ts_report_internal.h — shared-internal to the report core (the .c files of report/): the core's own
 * generic sections and what they share. Not for stages (they see ts_report.h only). */
#ifndef TS_REPORT_INTERNAL_H
#define TS_REPORT_INTERNAL_H

#include <sqlite3.h>

#include "ts_report.h"

/* The core's sections, in page order, before the stages' own (section_*.c). */
extern const struct ts_report_section ts__report_section_run;
extern const struct ts_report_section ts__report_section_stages;
extern const struct ts_report_section ts__report_section_failures;
extern const struct ts_report_section ts__report_section_repro;

/* Let every loaded section with a repro hook write its part (report.c). */
int ts__report_repro_parts(const ts_report *r, enum ts_report_repro_part part, ts_report_out *o);

/* A row of a key/value table: <tr><th>k</th><td id=id>v (escaped)</td></tr>. */
void ts__report_kv(ts_report_out *o, const char *k, const char *v, const char *id);

/* sqlite3 helpers: prepare on the report's connection (token REPORT_LEDGER); column text or NULL. */
int ts__report_sql(const ts_report *r, const char *sql, sqlite3_stmt **st);
const char *ts__report_col(sqlite3_stmt *st, int i);

#endif
