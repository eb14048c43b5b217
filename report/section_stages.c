/* section_stages.c — the report's "stages" section: per stage of the ledger, units
 * done/failed/pending/retried, warnings (units done with a note), why it was skipped, wall
 * time, throughput in the stage's own items (ts_stage.items_unit), busy time per rank (SVG
 * bars: load balance) and peak memory. Generic: it names no stage; what an item is comes from
 * the registry. Loaded once (one pass over the ledger) for both the page and report.json. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_error.h"
#include "ts_report.h"
#include "ts_report_internal.h"
#include "ts_stage.h"

#define col_text ts__report_col
#define sql_prepare ts__report_sql
#define human_bytes ts_report_fmt_bytes
#define human_seconds ts_report_fmt_seconds
#define human_num ts_report_fmt_num

typedef struct rank_time {
  int nranks;
  int64_t *units, *peak_kb; /* peak_kb 0: unknown */
  double *seconds;
} rank_time;

typedef struct stage_row {
  char name[64], hash[65], started[32], finished[32], note[512], items_unit[32];
  int64_t total, done, failed, pending, retried, items, warned;
  rank_time rt;
  double seconds; /* wall time of the stage in the last invocation that did units; NaN */
  int64_t peak_kb; /* max over ranks from the ledger's rusage table; 0 unknown */
} stage_row;

static int load_rank_time(const ts_report *r, const char *stage, rank_time *rt);
static void rank_time_clear(rank_time *rt);

static int load_stages(const ts_report *r, stage_row **out, int *n_out) {
  sqlite3_stmt *st = NULL;
  *out = NULL;
  *n_out = 0;
  char sql[2048];
  snprintf(sql, sizeof sql,
                      "SELECT s.name, s.config_hash, coalesce(s.started,''), coalesce(s.finished,''), s.seconds,"
                      " (SELECT count(*) FROM units u WHERE u.stage=s.name),"
                      " (SELECT count(*) FROM units u WHERE u.stage=s.name AND u.state='done'),"
                      " (SELECT count(*) FROM units u WHERE u.stage=s.name AND u.state='failed'),"
                      " (SELECT count(*) FROM units u WHERE u.stage=s.name AND u.state='pending'),"
                      " (SELECT count(*) FROM units u WHERE u.stage=s.name AND u.attempts>1),"
                      " (SELECT coalesce(sum(items),0) FROM units u WHERE u.stage=s.name AND u.state='done'),"
                      " %s, %s FROM stages s ORDER BY s.position",
           ts_report_has_column(r, "stages", "note") ? "coalesce(s.note,'')" : "''",
           ts_report_has_column(r, "units", "note")
               ? "(SELECT count(*) FROM units u WHERE u.stage=s.name AND u.state='done' AND coalesce(u.note,'')<>'')"
               : "0");
  TS_CALL(sql_prepare(r, sql, &st));
  int cap = 0, n = 0;
  stage_row *v = NULL;
  while (sqlite3_step(st) == SQLITE_ROW) {
    if (n == cap) {
      stage_row *nv = realloc(v, sizeof *v * (size_t)(cap = cap ? 2 * cap : 8));
      if (!nv) { free(v); sqlite3_finalize(st); return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report stages"); }
      v = nv;
    }
    stage_row *s = &v[n++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", col_text(st, 0));
    snprintf(s->hash, sizeof s->hash, "%s", col_text(st, 1) ? col_text(st, 1) : "");
    snprintf(s->started, sizeof s->started, "%s", col_text(st, 2));
    snprintf(s->finished, sizeof s->finished, "%s", col_text(st, 3));
    s->seconds = sqlite3_column_type(st, 4) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 4);
    s->total = sqlite3_column_int64(st, 5);
    s->done = sqlite3_column_int64(st, 6);
    s->failed = sqlite3_column_int64(st, 7);
    s->pending = sqlite3_column_int64(st, 8);
    s->retried = sqlite3_column_int64(st, 9);
    s->items = sqlite3_column_int64(st, 10);
    snprintf(s->note, sizeof s->note, "%s", col_text(st, 11) ? col_text(st, 11) : "");
    s->warned = sqlite3_column_int64(st, 12);
    const struct ts_stage *reg = ts_report_stage(r, s->name);
    snprintf(s->items_unit, sizeof s->items_unit, "%s", reg && reg->items_unit ? reg->items_unit : "items");
  }
  sqlite3_finalize(st);
  if (ts_report_has_table(r, "rusage")) {
    for (int i = 0; i < n; i++) {
      if (sql_prepare(r, "SELECT max(peak_rss_kb) FROM rusage WHERE stage=?", &st) < 0) break;
      sqlite3_bind_text(st, 1, v[i].name, -1, SQLITE_TRANSIENT);
      if (sqlite3_step(st) == SQLITE_ROW) v[i].peak_kb = sqlite3_column_int64(st, 0);
      sqlite3_finalize(st);
    }
  }
  for (int i = 0; i < n; i++)
    if (load_rank_time(r, v[i].name, &v[i].rt) < 0) {
      for (int k = 0; k <= i; k++) rank_time_clear(&v[k].rt);
      free(v);
      return -1;
    }
  *out = v;
  *n_out = n;
  return 0;
}

typedef struct stages_data {
  int n;
  stage_row *v;
} stages_data;

static void stages_release(void *p) {
  stages_data *d = p;
  if (!d) return;
  for (int i = 0; i < d->n; i++) rank_time_clear(&d->v[i].rt);
  free(d->v);
  free(d);
}

static int stages_load(const ts_report *r, void **data_out) {
  stages_data *d = calloc(1, sizeof *d);
  if (!d) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report stages");
  if (load_stages(r, &d->v, &d->n) < 0) {
    free(d);
    return -1;
  }
  *data_out = d;
  return 1;
}

static int max_ranks(const ts_report *r) {
  sqlite3_stmt *st = NULL;
  int n = 1;
  if (sql_prepare(r, "SELECT max(ranks) FROM runs", &st) == 0 && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > 0)
    n = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return n;
}

/* Busy seconds and units per rank for one stage (done and failed units, all invocations). */
static int load_rank_time(const ts_report *r, const char *stage, rank_time *rt) {
  sqlite3_stmt *st = NULL;
  rt->nranks = max_ranks(r);
  TS_CALL(sql_prepare(r, "SELECT max(rank) FROM units WHERE stage=? AND rank IS NOT NULL", &st));
  sqlite3_bind_text(st, 1, stage, -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL && sqlite3_column_int(st, 0) + 1 > rt->nranks)
    rt->nranks = sqlite3_column_int(st, 0) + 1;
  sqlite3_finalize(st);
  rt->units = calloc((size_t)rt->nranks, sizeof *rt->units);
  rt->seconds = calloc((size_t)rt->nranks, sizeof *rt->seconds);
  rt->peak_kb = calloc((size_t)rt->nranks, sizeof *rt->peak_kb);
  if (!rt->units || !rt->seconds || !rt->peak_kb) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report ranks");
  if (ts_report_has_table(r, "rusage")) {
    TS_CALL(sql_prepare(r, "SELECT rank, max(peak_rss_kb) FROM rusage WHERE stage=? GROUP BY rank", &st));
    sqlite3_bind_text(st, 1, stage, -1, SQLITE_TRANSIENT);
    while (sqlite3_step(st) == SQLITE_ROW) {
      int k = sqlite3_column_int(st, 0);
      if (k >= 0 && k < rt->nranks) rt->peak_kb[k] = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
  }
  TS_CALL(sql_prepare(r, "SELECT rank, count(*), coalesce(sum(seconds),0) FROM units WHERE stage=? AND rank IS NOT NULL "
                         "AND state IN ('done','failed') GROUP BY rank ORDER BY rank", &st));
  sqlite3_bind_text(st, 1, stage, -1, SQLITE_TRANSIENT);
  while (sqlite3_step(st) == SQLITE_ROW) {
    int k = sqlite3_column_int(st, 0);
    if (k < 0 || k >= rt->nranks) continue;
    rt->units[k] = sqlite3_column_int64(st, 1);
    rt->seconds[k] = sqlite3_column_double(st, 2);
  }
  sqlite3_finalize(st);
  return 0;
}

static void rank_time_clear(rank_time *rt) {
  free(rt->units);
  free(rt->seconds);
  free(rt->peak_kb);
  memset(rt, 0, sizeof *rt);
}

static double per_s(double x, double s) { return isfinite(s) && s > 0 ? x / s : NAN; }

static int stages_json(const ts_report *r, const void *data, ts_report_out *o) {
  (void)r;
  const stages_data *d = data;
  stage_row *v = d->v;
  int n = d->n;
  ts_report_json_array(o, "stages");
  for (int i = 0; i < n; i++) {
    stage_row *s = &v[i];
    ts_report_json_object(o, NULL);
    ts_report_json_str(o, "name", s->name);
    ts_report_json_str(o, "stage_hash", s->hash);
    ts_report_json_object(o, "units");
    ts_report_json_int(o, "total", s->total);
    ts_report_json_int(o, "done", s->done);
    ts_report_json_int(o, "failed", s->failed);
    ts_report_json_int(o, "pending", s->pending);
    ts_report_json_int(o, "retried", s->retried);
    ts_report_json_end(o);
    ts_report_json_int(o, "items", s->items);
    ts_report_json_str(o, "items_unit", s->items_unit);
    ts_report_json_int(o, "warnings", s->warned);
    ts_report_json_str(o, "note", s->note[0] ? s->note : NULL);
    ts_report_json_str(o, "started", s->started[0] ? s->started : NULL);
    ts_report_json_str(o, "finished", s->finished[0] ? s->finished : NULL);
    ts_report_json_num(o, "wall_seconds", s->seconds);
    ts_report_json_num(o, "items_per_s", per_s((double)s->items, s->seconds));
    ts_report_json_num(o, "units_per_h", per_s(3600.0 * (double)s->done, s->seconds));
    if (s->peak_kb > 0) ts_report_json_int(o, "peak_rss_kb", s->peak_kb);
    else ts_report_json_null(o, "peak_rss_kb");
    const rank_time rt = s->rt;
    {
      ts_report_json_array(o, "per_rank");
      for (int k = 0; k < rt.nranks; k++) {
        ts_report_json_object(o, NULL);
        ts_report_json_int(o, "rank", k);
        ts_report_json_int(o, "units", rt.units[k]);
        ts_report_json_num(o, "busy_seconds", rt.seconds[k]);
        if (rt.peak_kb[k] > 0) ts_report_json_int(o, "peak_rss_kb", rt.peak_kb[k]);
        else ts_report_json_null(o, "peak_rss_kb");
        ts_report_json_end(o);
      }
      ts_report_json_end(o);
    }
    ts_report_json_end(o);
  }
  ts_report_json_end(o);
  return 0;
}

static int stages_html(const ts_report *r, const void *data, ts_report_out *o) {
  const stages_data *d = data;
  stage_row *v = d->v;
  int n = d->n;
  int64_t peak_run = ts_report_options(r)->peak_rss_kb;
  ts_report_html(o, "<table id=\"stage-table\"><tr><th>stage</th><th>done</th><th>failed</th><th>pending</th><th>retried</th>"
                    "<th>wall time</th><th>items</th><th>throughput</th><th>units/h</th><th>peak RSS</th></tr>\n");
  for (int i = 0; i < n; i++) {
    stage_row *s = &v[i];
    char wall[32], peak[32] = "–", thr[128] = "–", uph[32] = "–";
    human_seconds(wall, sizeof wall, s->seconds);
    if (s->peak_kb > 0) human_bytes(peak, sizeof peak, 1024.0 * (double)s->peak_kb);
    double t = per_s((double)s->items, s->seconds), u = per_s(3600.0 * (double)s->done, s->seconds);
    char num[48], items[48];
    human_num(items, sizeof items, (double)s->items);
    if (isfinite(t) && s->items > 0) {
      human_num(num, sizeof num, t);
      snprintf(thr, sizeof thr, "%s %s/s", num, s->items_unit);
    }
    if (isfinite(u)) human_num(uph, sizeof uph, u);
    ts_report_html(o, "<tr><td><b>");
    ts_report_html_text(o, s->name);
    ts_report_html(o, "</b>");
    if (s->note[0]) {
      ts_report_html(o, "<br><small class=\"warn stage-note\">skipped: ");
      ts_report_html_text(o, s->note);
      ts_report_html(o, "</small>");
    }
    if (s->warned) ts_report_html(o, "<br><small class=\"warn\">%lld unit(s) with a warning (see Failures)</small>", (long long)s->warned);
    ts_report_html(o, "</td><td class=\"n ok\">%lld</td><td class=\"n%s\">%lld</td><td class=\"n%s\">%lld</td>"
                      "<td class=\"n\">%lld</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td>"
                      "<td class=\"n\">%s</td><td class=\"n\">%s</td></tr>\n",
                   (long long)s->done, s->failed ? " bad" : "", (long long)s->failed, s->pending ? " warn" : "",
                   (long long)s->pending, (long long)s->retried, wall, items, thr, uph, peak);
  }
  ts_report_html(o, "</table>\n<p>Wall time and throughput are those of the last <code>tessera run</code> that did units of "
                    "the stage; throughput counts every unit recorded done. Peak RSS per stage comes from the ledger's "
                    "<code>rusage</code> table when the driver records it");
  if (peak_run > 0) {
    char b[32];
    human_bytes(b, sizeof b, 1024.0 * (double)peak_run);
    ts_report_html(o, "; rank 0's peak over the whole run was %s", b);
  }
  ts_report_html(o, ".</p>\n<h3>Load balance: busy time per rank</h3>\n");
  for (int i = 0; i < n; i++) {
    const rank_time rt = v[i].rt;
    if (v[i].total < 2) continue; /* one unit: nothing to balance */
    char **labels = calloc((size_t)rt.nranks, sizeof *labels);
    for (int k = 0; labels && k < rt.nranks; k++) {
      labels[k] = malloc(64);
      char mem[32] = "";
      if (rt.peak_kb[k] > 0) {
        mem[0] = ',';
        mem[1] = ' ';
        human_bytes(mem + 2, sizeof mem - 2, 1024.0 * (double)rt.peak_kb[k]);
      }
      if (labels[k]) snprintf(labels[k], 64, "rank %d (%lld units%s)", k, (long long)rt.units[k], mem);
    }
    char title[160];
    snprintf(title, sizeof title, "%s: seconds of unit work per rank", v[i].name);
    if (labels) ts_report_html_bars(o, title, "s", (const char *const *)labels, rt.seconds, rt.nranks);
    for (int k = 0; labels && k < rt.nranks; k++) free(labels[k]);
    free(labels);
  }
  return 0;
}

const struct ts_report_section ts__report_section_stages = {.abi = TS_REPORT_SECTION_ABI,
                                                            .name = "stages",
                                                            .title = "Stages",
                                                            .load = stages_load,
                                                            .release = stages_release,
                                                            .html = stages_html,
                                                            .json = stages_json};
