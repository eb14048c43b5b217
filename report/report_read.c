/* report_read.c — the narrow read API of ts_report.h over the ledger: units of a stage, a
 * stage's record (skip note, times), every recorded output. Stage sections see the run only
 * through these, never through the ledger's tables, so the ledger's schema can change under
 * them. Tolerant of old ledgers: the columns and tables of schema 2 (units.note,
 * stages.note, outputs, bad_items) may be absent until a `tessera run` opens the ledger
 * read-write; what is absent reads as "" or 0. */
#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_error.h"
#include "ts_report.h"
#include "ts_report_internal.h"

typedef struct units_priv {
  GStringChunk *strings;
  GHashTable *by_name; /* unit name → ts_report_unit * (the first, in stage order) */
} units_priv;

void ts_report_units_clear(ts_report_units *u) {
  units_priv *p = u->priv;
  if (p) {
    if (p->strings) g_string_chunk_free(p->strings);
    if (p->by_name) g_hash_table_destroy(p->by_name);
    free(p);
  }
  free(u->v);
  memset(u, 0, sizeof *u);
}

const ts_report_unit *ts_report_units_find(const ts_report_units *u, const char *unit) {
  const units_priv *p = u->priv;
  return p && unit ? g_hash_table_lookup(p->by_name, unit) : NULL;
}

int ts_report_units_load(const ts_report *r, const char *stage, ts_report_units *out) {
  memset(out, 0, sizeof *out);
  bool note = ts_report_has_column(r, "units", "note"), bad = ts_report_has_table(r, "bad_items");
  char sql[1400];
  snprintf(sql, sizeof sql,
           "SELECT u.stage, u.unit, u.state, coalesce(u.output,''), coalesce(u.checksum,''), coalesce(u.error_token,''),"
           " coalesce(u.error_message,''), %s, u.idx, u.items, u.bytes, u.attempts, u.rank, u.seconds, %s"
           " FROM units u JOIN stages s ON s.name=u.stage %s ORDER BY s.position, u.idx",
           note ? "coalesce(u.note,'')" : "''",
           bad ? "(SELECT count(*) FROM bad_items b WHERE b.stage=u.stage AND b.unit=u.unit)" : "0",
           stage ? "WHERE u.stage=?1" : "");
  sqlite3_stmt *st = NULL;
  TS_CALL(ts__report_sql(r, sql, &st));
  if (stage) sqlite3_bind_text(st, 1, stage, -1, SQLITE_TRANSIENT);
  units_priv *p = calloc(1, sizeof *p);
  if (!p) {
    sqlite3_finalize(st);
    return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report units");
  }
  out->priv = p;
  p->strings = g_string_chunk_new(4096);
  p->by_name = g_hash_table_new(g_str_hash, g_str_equal);
  int64_t cap = 0;
  int s;
  while ((s = sqlite3_step(st)) == SQLITE_ROW) {
    if (out->n == cap) {
      ts_report_unit *nv = realloc(out->v, sizeof *nv * (size_t)(cap = cap ? 2 * cap : 64));
      if (!nv) {
        sqlite3_finalize(st);
        ts_report_units_clear(out);
        return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report units");
      }
      out->v = nv;
    }
    ts_report_unit *u = &out->v[out->n++];
    const char **strs[] = {&u->stage, &u->unit, &u->state, &u->output, &u->checksum, &u->error_token, &u->error_message, &u->note};
    for (int i = 0; i < 8; i++) {
      const char *t = ts__report_col(st, i);
      *strs[i] = g_string_chunk_insert_const(p->strings, t ? t : "");
    }
    u->idx = sqlite3_column_int64(st, 8);
    u->items = sqlite3_column_type(st, 9) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 9);
    u->bytes = sqlite3_column_type(st, 10) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 10);
    u->attempts = sqlite3_column_int64(st, 11);
    u->rank = sqlite3_column_type(st, 12) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 12);
    u->seconds = sqlite3_column_type(st, 13) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 13);
    u->bad_items = sqlite3_column_int64(st, 14);
  }
  sqlite3_finalize(st);
  if (s != SQLITE_DONE) {
    ts_report_units_clear(out);
    return ts_error_set(TS_EIO, "REPORT_LEDGER", "reading the units: %s", sqlite3_errmsg(ts_report_ledger(r)));
  }
  /* the index after the array stopped moving */
  for (int64_t i = 0; i < out->n; i++)
    if (!g_hash_table_contains(p->by_name, out->v[i].unit)) g_hash_table_insert(p->by_name, (gpointer)out->v[i].unit, &out->v[i]);
  return 0;
}

int ts_report_stage_info_get(const ts_report *r, const char *stage, ts_report_stage_info *out) {
  memset(out, 0, sizeof *out);
  out->seconds = NAN;
  char sql[300];
  snprintf(sql, sizeof sql, "SELECT %s, coalesce(started,''), coalesce(finished,''), seconds FROM stages WHERE name=?",
           ts_report_has_column(r, "stages", "note") ? "coalesce(note,'')" : "''");
  sqlite3_stmt *st = NULL;
  TS_CALL(ts__report_sql(r, sql, &st));
  sqlite3_bind_text(st, 1, stage, -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st) == SQLITE_ROW) {
    out->known = true;
    snprintf(out->note, sizeof out->note, "%s", ts__report_col(st, 0));
    snprintf(out->started, sizeof out->started, "%s", ts__report_col(st, 1));
    snprintf(out->finished, sizeof out->finished, "%s", ts__report_col(st, 2));
    if (sqlite3_column_type(st, 3) != SQLITE_NULL) out->seconds = sqlite3_column_double(st, 3);
  }
  sqlite3_finalize(st);
  return 0;
}

int ts_report_outputs_each(const ts_report *r, int (*cb)(void *ctx, const ts_report_output *o), void *ctx) {
  /* Done units whose main output is not consumed (a merged shard's output is NULL): every
   * output in the outputs table, the main one first; units.output alone when the ledger has
   * no outputs rows for the unit (older ledgers). */
  const char *with_outputs =
      "SELECT stage, unit, path, checksum, bytes FROM ("
      " SELECT o.stage, o.unit, o.path, o.checksum, coalesce(o.bytes,-1) AS bytes, s.position AS p, u.idx AS i,"
      "  (o.path<>u.output) AS k FROM outputs o JOIN units u ON u.stage=o.stage AND u.unit=o.unit JOIN stages s ON s.name=o.stage"
      "  WHERE u.state='done' AND u.output IS NOT NULL AND u.output<>''"
      " UNION ALL"
      " SELECT u.stage, u.unit, u.output, coalesce(u.checksum,''), coalesce(u.bytes,-1), s.position, u.idx, 0"
      "  FROM units u JOIN stages s ON s.name=u.stage WHERE u.state='done' AND u.output IS NOT NULL AND u.output<>''"
      "  AND NOT EXISTS (SELECT 1 FROM outputs o WHERE o.stage=u.stage AND o.unit=u.unit)"
      ") ORDER BY p, i, k, path";
  const char *without =
      "SELECT u.stage, u.unit, u.output, coalesce(u.checksum,''), coalesce(u.bytes,-1) FROM units u JOIN stages s ON s.name=u.stage "
      "WHERE u.state='done' AND u.output IS NOT NULL AND u.output<>'' ORDER BY s.position, u.idx";
  sqlite3_stmt *st = NULL;
  TS_CALL(ts__report_sql(r, ts_report_has_table(r, "outputs") ? with_outputs : without, &st));
  int rc = 0, s;
  while ((s = sqlite3_step(st)) == SQLITE_ROW) {
    ts_report_output o = {.stage = ts__report_col(st, 0), .unit = ts__report_col(st, 1), .path = ts__report_col(st, 2),
                          .checksum = ts__report_col(st, 3), .bytes = sqlite3_column_int64(st, 4)};
    if ((rc = cb(ctx, &o)) < 0) break;
  }
  if (rc >= 0 && s != SQLITE_DONE && s != SQLITE_ROW)
    rc = ts_error_set(TS_EIO, "REPORT_LEDGER", "reading the outputs: %s", sqlite3_errmsg(ts_report_ledger(r)));
  sqlite3_finalize(st);
  return rc;
}
