/* report_sections.c — the built-in sections of the run report, and the section table.
 *
 *   run              what ran: tessera version and build, command lines, ranks and hosts, start
 *                    and end (ledger `runs`), the machine and the library versions
 *   stages           per stage: units done/failed/pending/retried, wall time, throughput, busy
 *                    time per rank (SVG bars: load balance), peak memory
 *   slides           per slide: QC thumbnails, tile count, mpp and its source, tissue area,
 *                    failures with their error tokens
 *   failures         every failed unit with its token and message
 *   reproducibility  config text and hashes, seeds, input checksums/quickhashes, outputs with
 *                    their checksums: what `tessera rerun` and `tessera compare` use
 *
 * A later stage adds its section by appending one pointer to ts_report_sections (and, if it
 * lives in its own file, one extern line); nothing else changes. Keys follow the rule of
 * ts_report.h: performance figures end in seconds/_per_s/_per_h/_kb/per_rank/retried. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_error.h"
#include "ts_io.h"
#include "ts_report.h"
#include "ts_report_internal.h"
#include "ts_slide.h"
#include "ts_stage.h"
#include "ts_version.h"

/* What a stage's "items" are, for throughput labels. (A stage could declare it; see the
 * proposal for an optional ts_stage.items_unit.) */
static const char *items_unit(const char *stage) {
  if (!strcmp(stage, "tile")) return "tiles";
  if (!strcmp(stage, "tissue")) return "mask px";
  return "items";
}

static const char *col_text(sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? (const char *)t : NULL;
}

static int sql_prepare(const ts_report *r, const char *sql, sqlite3_stmt **st) {
  if (sqlite3_prepare_v2(ts_report_ledger(r), sql, -1, st, NULL) != SQLITE_OK)
    return ts_error_set(TS_EIO, "REPORT_LEDGER", "ledger query failed: %s", sqlite3_errmsg(ts_report_ledger(r)));
  return 0;
}

static void human_bytes(char *buf, size_t n, double b) {
  const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (b >= 1024 && i < 4) { b /= 1024; i++; }
  snprintf(buf, n, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static void human_seconds(char *buf, size_t n, double s) {
  if (!isfinite(s) || s < 0) snprintf(buf, n, "–");
  else if (s < 120) snprintf(buf, n, "%.2f s", s);
  else if (s < 7200) snprintf(buf, n, "%.1f min", s / 60);
  else snprintf(buf, n, "%.2f h", s / 3600);
}

/* 12345 → "12,345"; small values with 3 significant digits. */
static void human_num(char *buf, size_t n, double v) {
  if (!isfinite(v)) { snprintf(buf, n, "–"); return; }
  if (fabs(v) < 1000) { snprintf(buf, n, "%.3g", v); return; }
  char digits[64];
  snprintf(digits, sizeof digits, "%.0f", fabs(v));
  size_t len = strlen(digits), k = 0;
  if (v < 0 && k + 1 < n) buf[k++] = '-';
  for (size_t i = 0; i < len && k + 2 < n; i++) {
    if (i && (len - i) % 3 == 0) buf[k++] = ',';
    buf[k++] = digits[i];
  }
  buf[k] = '\0';
}

/* ===================================================================== run */

static int64_t run_peak_kb(const ts_report *r) {
  const ts_report_opts *o = ts_report_options(r);
  return o->peak_rss_kb > 0 ? o->peak_rss_kb : 0;
}

static int run_json(const ts_report *r, ts_report_out *o) {
  sqlite3_stmt *st = NULL;
  ts_report_env e;
  ts_report_env_get(&e);
  ts_report_json_object(o, "tessera");
  ts_report_json_str(o, "version", TS_VERSION);
  ts_report_json_str(o, "build_type", TS_BUILD_TYPE);
  ts_report_json_str(o, "compiler", e.compiler);
  ts_report_json_end(o);
  ts_report_json_str(o, "config_hash", ts_report_config(r)->hash);
  TS_CALL(sql_prepare(r, "SELECT id, started, finished, argv, ranks, hosts, version, exit_code FROM runs ORDER BY id", &st));
  /* The last invocation is "the run"; the earlier ones are resumes of the same run dir. */
  ts_report_json_array(o, "invocations");
  char first_started[32] = "", last_finished[32] = "", argv[4096] = "", hosts[4096] = "";
  int ranks = 0, n = 0;
  bool running = false;
  while (sqlite3_step(st) == SQLITE_ROW) {
    ts_report_json_object(o, NULL);
    ts_report_json_int(o, "id", sqlite3_column_int64(st, 0));
    ts_report_json_str(o, "started", col_text(st, 1));
    ts_report_json_str(o, "finished", col_text(st, 2));
    ts_report_json_str(o, "command_line", col_text(st, 3));
    ts_report_json_int(o, "ranks", sqlite3_column_int64(st, 4));
    ts_report_json_str(o, "hosts", col_text(st, 5));
    ts_report_json_str(o, "version", col_text(st, 6));
    if (sqlite3_column_type(st, 7) == SQLITE_NULL) ts_report_json_null(o, "exit_code");
    else ts_report_json_int(o, "exit_code", sqlite3_column_int64(st, 7));
    ts_report_json_end(o);
    if (!n++) snprintf(first_started, sizeof first_started, "%s", col_text(st, 1) ? col_text(st, 1) : "");
    snprintf(last_finished, sizeof last_finished, "%s", col_text(st, 2) ? col_text(st, 2) : "");
    running = !col_text(st, 2);
    snprintf(argv, sizeof argv, "%s", col_text(st, 3) ? col_text(st, 3) : "");
    snprintf(hosts, sizeof hosts, "%s", col_text(st, 5) ? col_text(st, 5) : "");
    ranks = sqlite3_column_int(st, 4);
  }
  sqlite3_finalize(st);
  ts_report_json_end(o);
  ts_report_json_str(o, "command_line", argv);
  ts_report_json_int(o, "ranks", ranks);
  ts_report_json_str(o, "hosts", hosts);
  ts_report_json_str(o, "started", first_started[0] ? first_started : NULL);
  ts_report_json_str(o, "finished", last_finished[0] && !running ? last_finished : NULL);
  ts_report_json_bool(o, "in_progress", running);
  int64_t kb = run_peak_kb(r);
  if (kb > 0) ts_report_json_int(o, "rank0_peak_rss_kb", kb);
  else ts_report_json_null(o, "rank0_peak_rss_kb");
  ts_report_json_object(o, "environment");
  ts_report_json_str(o, "hostname", e.hostname);
  ts_report_json_str(o, "os", e.os);
  ts_report_json_str(o, "cpu_model", e.cpu_model);
  ts_report_json_int(o, "cores", e.cores);
  ts_report_json_int(o, "memory_bytes", e.memory_bytes);
  ts_report_json_object(o, "libraries");
  ts_report_json_str(o, "openslide", e.openslide);
  ts_report_json_str(o, "libvips", e.vips);
  ts_report_json_str(o, "hdf5", e.hdf5);
  ts_report_json_str(o, "mpi", e.mpi);
  ts_report_json_str(o, "sqlite", e.sqlite);
  ts_report_json_str(o, "libtorch", e.libtorch);
  ts_report_json_end(o);
  ts_report_json_end(o);
  return 0;
}

static void kv(ts_report_out *o, const char *k, const char *v, const char *id) {
  ts_report_html(o, "<tr><th>%s</th><td", k);
  if (id) ts_report_html(o, " id=\"%s\"", id);
  ts_report_html(o, ">");
  ts_report_html_text(o, v ? v : "–");
  ts_report_html(o, "</td></tr>\n");
}

static int run_html(const ts_report *r, ts_report_out *o) {
  sqlite3_stmt *st = NULL;
  ts_report_env e;
  ts_report_env_get(&e);
  char buf[512];
  TS_CALL(sql_prepare(r, "SELECT (SELECT count(*) FROM units WHERE state='done'), (SELECT count(*) FROM units WHERE state='failed'),"
                         " (SELECT count(*) FROM units WHERE state='pending'), (SELECT coalesce(sum(seconds),0) FROM stages),"
                         " (SELECT exit_code FROM runs ORDER BY id DESC LIMIT 1), (SELECT finished FROM runs ORDER BY id DESC LIMIT 1)", &st));
  if (sqlite3_step(st) == SQLITE_ROW) {
    int64_t done = sqlite3_column_int64(st, 0), failed = sqlite3_column_int64(st, 1), pending = sqlite3_column_int64(st, 2);
    char wall[32];
    human_seconds(wall, sizeof wall, sqlite3_column_double(st, 3));
    const char *state = !col_text(st, 5) ? "running (this report was written by the run's last stage)"
                        : sqlite3_column_int(st, 4) == 0 ? "finished: every unit done" : "finished with failed or pending units";
    ts_report_html(o, "<p id=\"summary\" class=\"%s\">%s · %lld units done, %lld failed, %lld pending · stage wall time %s</p>\n",
                   failed || pending ? "warn" : "ok", state, (long long)done, (long long)failed, (long long)pending, wall);
  }
  sqlite3_finalize(st);
  TS_CALL(sql_prepare(r, "SELECT id, started, finished, argv, ranks, hosts, version, exit_code FROM runs ORDER BY id", &st));
  ts_report_html(o, "<table class=\"kv\">\n");
  snprintf(buf, sizeof buf, "%s (%s build, %s)", TS_VERSION, TS_BUILD_TYPE, e.compiler);
  kv(o, "tessera", buf, "tessera-version");
  kv(o, "config hash", ts_report_config(r)->hash, NULL);
  ts_report_html(o, "</table>\n<h3>Invocations of <code>tessera run</code> on this run directory</h3>\n"
                    "<table><tr><th>#</th><th>command line</th><th>ranks</th><th>hosts</th><th>started</th><th>finished</th><th>exit</th></tr>\n");
  while (sqlite3_step(st) == SQLITE_ROW) {
    ts_report_html(o, "<tr><td class=\"n\">%lld</td><td><code>", (long long)sqlite3_column_int64(st, 0));
    ts_report_html_text(o, col_text(st, 3));
    ts_report_html(o, "</code></td><td class=\"n\">%d</td><td>", sqlite3_column_int(st, 4));
    ts_report_html_text(o, col_text(st, 5));
    ts_report_html(o, "</td><td>");
    ts_report_html_text(o, col_text(st, 1));
    ts_report_html(o, "</td><td>");
    ts_report_html_text(o, col_text(st, 2) ? col_text(st, 2) : "running");
    if (sqlite3_column_type(st, 7) == SQLITE_NULL) ts_report_html(o, "</td><td>–</td></tr>\n");
    else {
      int x = sqlite3_column_int(st, 7);
      ts_report_html(o, "</td><td class=\"%s\">%d</td></tr>\n", x ? "bad" : "ok", x);
    }
  }
  sqlite3_finalize(st);
  ts_report_html(o, "</table>\n<h3>Machine (host that wrote this report)</h3>\n<table class=\"kv\">\n");
  kv(o, "host", e.hostname, NULL);
  kv(o, "OS", e.os, NULL);
  kv(o, "CPU", e.cpu_model, NULL);
  snprintf(buf, sizeof buf, "%d", e.cores);
  kv(o, "cores", buf, NULL);
  human_bytes(buf, sizeof buf, (double)e.memory_bytes);
  kv(o, "memory", buf, NULL);
  if (run_peak_kb(r) > 0) {
    human_bytes(buf, sizeof buf, 1024.0 * (double)run_peak_kb(r));
    kv(o, "peak RSS of rank 0", buf, NULL);
  }
  kv(o, "OpenSlide", e.openslide, NULL);
  kv(o, "libvips", e.vips, NULL);
  kv(o, "HDF5", e.hdf5, NULL);
  kv(o, "MPI", e.mpi, NULL);
  kv(o, "SQLite", e.sqlite, NULL);
  kv(o, "LibTorch", e.libtorch, NULL);
  ts_report_html(o, "</table>\n<details><summary>Resolved config (<code>config.yaml</code> of the run)</summary><pre>");
  ts_report_html_text(o, ts_report_config(r)->text);
  ts_report_html(o, "</pre></details>\n");
  return 0;
}

static const struct ts_report_section section_run = {
    .abi = TS_REPORT_SECTION_ABI, .name = "run", .title = "What ran", .html = run_html, .json = run_json};

/* ================================================================== stages */

typedef struct stage_row {
  char name[64], hash[65], started[32], finished[32];
  int64_t total, done, failed, pending, retried, items;
  double seconds; /* wall time of the stage in the last invocation that did units; NaN */
  int64_t peak_kb; /* max over ranks from the ledger's rusage table; 0 unknown */
} stage_row;

static int load_stages(const ts_report *r, stage_row **out, int *n_out) {
  sqlite3_stmt *st = NULL;
  *out = NULL;
  *n_out = 0;
  TS_CALL(sql_prepare(r,
                      "SELECT s.name, s.config_hash, coalesce(s.started,''), coalesce(s.finished,''), s.seconds,"
                      " (SELECT count(*) FROM units u WHERE u.stage=s.name),"
                      " (SELECT count(*) FROM units u WHERE u.stage=s.name AND u.state='done'),"
                      " (SELECT count(*) FROM units u WHERE u.stage=s.name AND u.state='failed'),"
                      " (SELECT count(*) FROM units u WHERE u.stage=s.name AND u.state='pending'),"
                      " (SELECT count(*) FROM units u WHERE u.stage=s.name AND u.attempts>1),"
                      " (SELECT coalesce(sum(items),0) FROM units u WHERE u.stage=s.name AND u.state='done')"
                      " FROM stages s ORDER BY s.position",
                      &st));
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
  *out = v;
  *n_out = n;
  return 0;
}

typedef struct rank_time {
  int nranks;
  int64_t *units, *peak_kb; /* peak_kb 0: unknown */
  double *seconds;
} rank_time;

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

static int stages_json(const ts_report *r, ts_report_out *o) {
  stage_row *v = NULL;
  int n = 0;
  TS_CALL(load_stages(r, &v, &n));
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
    ts_report_json_str(o, "items_unit", items_unit(s->name));
    ts_report_json_str(o, "started", s->started[0] ? s->started : NULL);
    ts_report_json_str(o, "finished", s->finished[0] ? s->finished : NULL);
    ts_report_json_num(o, "wall_seconds", s->seconds);
    ts_report_json_num(o, "items_per_s", per_s((double)s->items, s->seconds));
    ts_report_json_num(o, "units_per_h", per_s(3600.0 * (double)s->done, s->seconds));
    if (s->peak_kb > 0) ts_report_json_int(o, "peak_rss_kb", s->peak_kb);
    else ts_report_json_null(o, "peak_rss_kb");
    rank_time rt = {0};
    if (load_rank_time(r, s->name, &rt) == 0) {
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
    rank_time_clear(&rt);
    ts_report_json_end(o);
  }
  ts_report_json_end(o);
  free(v);
  return 0;
}

static int stages_html(const ts_report *r, ts_report_out *o) {
  stage_row *v = NULL;
  int n = 0;
  TS_CALL(load_stages(r, &v, &n));
  ts_report_html(o, "<table id=\"stage-table\"><tr><th>stage</th><th>done</th><th>failed</th><th>pending</th><th>retried</th>"
                    "<th>wall time</th><th>items</th><th>throughput</th><th>units/h</th><th>peak RSS</th></tr>\n");
  for (int i = 0; i < n; i++) {
    stage_row *s = &v[i];
    char wall[32], peak[32] = "–", thr[64] = "–", uph[32] = "–";
    human_seconds(wall, sizeof wall, s->seconds);
    if (s->peak_kb > 0) human_bytes(peak, sizeof peak, 1024.0 * (double)s->peak_kb);
    double t = per_s((double)s->items, s->seconds), u = per_s(3600.0 * (double)s->done, s->seconds);
    char num[48], items[48];
    human_num(items, sizeof items, (double)s->items);
    if (isfinite(t) && s->items > 0) {
      human_num(num, sizeof num, t);
      snprintf(thr, sizeof thr, "%s %s/s", num, items_unit(s->name));
    }
    if (isfinite(u)) human_num(uph, sizeof uph, u);
    ts_report_html(o, "<tr><td><b>");
    ts_report_html_text(o, s->name);
    ts_report_html(o, "</b></td><td class=\"n ok\">%lld</td><td class=\"n%s\">%lld</td><td class=\"n%s\">%lld</td>"
                      "<td class=\"n\">%lld</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td>"
                      "<td class=\"n\">%s</td><td class=\"n\">%s</td></tr>\n",
                   (long long)s->done, s->failed ? " bad" : "", (long long)s->failed, s->pending ? " warn" : "",
                   (long long)s->pending, (long long)s->retried, wall, items, thr, uph, peak);
  }
  ts_report_html(o, "</table>\n<p>Wall time and throughput are those of the last <code>tessera run</code> that did units of "
                    "the stage; throughput counts every unit recorded done. Peak RSS per stage comes from the ledger's "
                    "<code>rusage</code> table when the driver records it");
  if (run_peak_kb(r) > 0) {
    char b[32];
    human_bytes(b, sizeof b, 1024.0 * (double)run_peak_kb(r));
    ts_report_html(o, "; rank 0's peak over the whole run was %s", b);
  }
  ts_report_html(o, ".</p>\n<h3>Load balance: busy time per rank</h3>\n");
  for (int i = 0; i < n; i++) {
    rank_time rt = {0};
    if (v[i].total < 2) continue; /* one unit: nothing to balance */
    if (load_rank_time(r, v[i].name, &rt) < 0) continue;
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
    rank_time_clear(&rt);
  }
  free(v);
  return 0;
}

static const struct ts_report_section section_stages = {
    .abi = TS_REPORT_SECTION_ABI, .name = "stages", .title = "Stages", .html = stages_html, .json = stages_json};

/* ================================================================== slides */

typedef struct slide_info {
  char id[256], patient[256], path[TS_PATH_MAX];
  char tissue_state[16], tile_state[16];
  ts__tiles_facts t; /* t.n < 0 when the tiles file is absent */
  double tissue_mm2; /* NaN unknown */
  int64_t bad_tiles; /* tiles that did not decode (extract shards, ledger bad_items) */
} slide_info;

static void unit_state(const ts_report *r, const char *stage, const char *unit, char out[16]) {
  sqlite3_stmt *st = NULL;
  out[0] = '\0';
  if (sql_prepare(r, "SELECT state FROM units WHERE stage=? AND unit=?", &st) < 0) return;
  sqlite3_bind_text(st, 1, stage, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, unit, -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st) == SQLITE_ROW) snprintf(out, 16, "%s", col_text(st, 0));
  sqlite3_finalize(st);
}

static int64_t unit_items(const ts_report *r, const char *stage, const char *unit) {
  sqlite3_stmt *st = NULL;
  int64_t v = -1;
  if (sql_prepare(r, "SELECT items FROM units WHERE stage=? AND unit=? AND state='done'", &st) < 0) return v;
  sqlite3_bind_text(st, 1, stage, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, unit, -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

/* Tiles of a slide that did not decode (the extract stage's shards record them); 0 for a ledger
 * older than the bad_items table. */
static int64_t slide_bad_tiles(const ts_report *r, const char *id) {
  sqlite3_stmt *st = NULL;
  int64_t v = 0;
  if (sql_prepare(r, "SELECT count(*) FROM bad_items WHERE stage='extract' AND substr(unit, 1, length(?1) + 1)=?1 || '#'", &st) < 0) {
    ts_error_clear();
    return 0;
  }
  sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

/* The slides: the cohort CSV of the config, else the units of the tissue stage. */
static int load_slides(const ts_report *r, slide_info **out, int *n_out) {
  *out = NULL;
  *n_out = 0;
  ts_cohort c;
  memset(&c, 0, sizeof c);
  char *text = NULL;
  const ts_config *cfg = ts_report_config(r);
  int n = 0;
  slide_info *v = NULL;
  if (cfg->cohort.csv && ts_io_read_all(cfg->cohort.csv, &text, NULL) == 0 && ts_cohort_parse(cfg->cohort.csv, text, &c) == 0) {
    v = calloc((size_t)(c.n ? c.n : 1), sizeof *v);
    if (!v) { free(text); ts_cohort_clear(&c); return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report slides"); }
    for (int i = 0; i < c.n; i++, n++) {
      snprintf(v[n].id, sizeof v[n].id, "%s", c.rows[i].slide_id);
      snprintf(v[n].patient, sizeof v[n].patient, "%s", c.rows[i].patient_id ? c.rows[i].patient_id : "");
      snprintf(v[n].path, sizeof v[n].path, "%s", c.rows[i].path ? c.rows[i].path : "");
    }
  } else {
    ts_error_clear();
    sqlite3_stmt *st = NULL;
    TS_CALL(sql_prepare(r, "SELECT unit FROM units WHERE stage='tissue' ORDER BY idx", &st));
    int cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
      if (n == cap) {
        slide_info *nv = realloc(v, sizeof *v * (size_t)(cap = cap ? 2 * cap : 16));
        if (!nv) break;
        v = nv;
      }
      memset(&v[n], 0, sizeof v[n]);
      snprintf(v[n].id, sizeof v[n].id, "%s", col_text(st, 0));
      n++;
    }
    sqlite3_finalize(st);
  }
  free(text);
  ts_cohort_clear(&c);
  for (int i = 0; i < n; i++) {
    slide_info *s = &v[i];
    char rel[512], path[TS_PATH_MAX];
    unit_state(r, "tissue", s->id, s->tissue_state);
    unit_state(r, "tile", s->id, s->tile_state);
    s->bad_tiles = slide_bad_tiles(r, s->id);
    s->t.n = -1;
    s->t.mpp0 = NAN;
    s->tissue_mm2 = NAN;
    if (!ts_id_is_safe(s->id)) continue;
    if (!strcmp(s->tile_state, "done")) {
      snprintf(rel, sizeof rel, "tiles/%s.h5", s->id);
      if (ts_report_path(r, rel, path, sizeof path) == 0) ts__report_tiles_facts(path, &s->t);
    }
    if (!strcmp(s->tissue_state, "done")) {
      snprintf(rel, sizeof rel, "tissue/%s.h5", s->id);
      double mpp = ts_report_path(r, rel, path, sizeof path) == 0 ? ts__report_tissue_mpp(path) : NAN;
      int64_t px = unit_items(r, "tissue", s->id);
      if (px >= 0 && isfinite(mpp)) s->tissue_mm2 = (double)px * mpp * mpp * 1e-6;
    }
  }
  *out = v;
  *n_out = n;
  return 0;
}

/* The message without its leading "TOKEN: " (the page shows the token on its own). */
static const char *msg_body(const char *token, const char *message) {
  size_t n = token ? strlen(token) : 0;
  if (n && message && !strncmp(message, token, n) && message[n] == ':') return message + n + 1 + (message[n + 1] == ' ');
  return message;
}

typedef struct fail_list {
  ts_report_out *o;
  bool html;
  int n;
} fail_list;

static void slide_failures(const ts_report *r, const char *id, fail_list *fl) {
  sqlite3_stmt *st = NULL;
  if (sql_prepare(r, "SELECT u.stage, coalesce(u.error_token,''), coalesce(u.error_message,'') FROM units u "
                     "JOIN stages s ON s.name=u.stage WHERE u.unit=? AND u.state='failed' ORDER BY s.position", &st) < 0)
    return;
  sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
  while (sqlite3_step(st) == SQLITE_ROW) {
    if (fl->html) {
      ts_report_html(fl->o, "<div>%s: <span class=\"tok\">", col_text(st, 0));
      ts_report_html_text(fl->o, col_text(st, 1));
      ts_report_html(fl->o, "</span> ");
      ts_report_html_text(fl->o, msg_body(col_text(st, 1), col_text(st, 2)));
      ts_report_html(fl->o, "</div>");
    } else {
      ts_report_json_object(fl->o, NULL);
      ts_report_json_str(fl->o, "stage", col_text(st, 0));
      ts_report_json_str(fl->o, "token", col_text(st, 1));
      ts_report_json_str(fl->o, "message", col_text(st, 2));
      ts_report_json_end(fl->o);
    }
    fl->n++;
  }
  sqlite3_finalize(st);
}

static const char *slide_status(const slide_info *s) {
  if (!strcmp(s->tissue_state, "failed") || !strcmp(s->tile_state, "failed")) return "failed";
  if (!strcmp(s->tile_state, "done")) return "done";
  return "pending";
}

static int slides_json(const ts_report *r, ts_report_out *o) {
  slide_info *v = NULL;
  int n = 0;
  TS_CALL(load_slides(r, &v, &n));
  int64_t tiles = 0;
  for (int i = 0; i < n; i++) tiles += v[i].t.n > 0 ? v[i].t.n : 0;
  ts_report_json_int(o, "count", n);
  ts_report_json_int(o, "tiles_total", tiles);
  ts_report_json_array(o, "slides");
  for (int i = 0; i < n; i++) {
    slide_info *s = &v[i];
    ts_report_json_object(o, NULL);
    ts_report_json_str(o, "slide_id", s->id);
    ts_report_json_str(o, "patient_id", s->patient[0] ? s->patient : NULL);
    ts_report_json_str(o, "status", slide_status(s));
    if (s->t.n >= 0) ts_report_json_int(o, "tiles", s->t.n);
    else ts_report_json_null(o, "tiles");
    ts_report_json_num(o, "mpp_level0", s->t.mpp0);
    ts_report_json_str(o, "mpp_source", s->t.mpp_source[0] ? s->t.mpp_source : NULL);
    ts_report_json_num(o, "tissue_mm2", s->tissue_mm2);
    ts_report_json_int(o, "bad_tiles", s->bad_tiles);
    ts_report_json_array(o, "failures");
    fail_list fl = {o, false, 0};
    slide_failures(r, s->id, &fl);
    ts_report_json_end(o);
    ts_report_json_end(o);
  }
  ts_report_json_end(o);
  free(v);
  return 0;
}

/* Images are embedded for at most this many slides, so that a TCGA-scale report stays a
 * page a browser opens; the others link to their PNG in the run directory. */
#define MAX_EMBEDDED_SLIDES 400

static int slides_html(const ts_report *r, ts_report_out *o) {
  slide_info *v = NULL;
  int n = 0;
  TS_CALL(load_slides(r, &v, &n));
  int64_t tiles = 0;
  int failed = 0;
  for (int i = 0; i < n; i++) {
    tiles += v[i].t.n > 0 ? v[i].t.n : 0;
    failed += !strcmp(slide_status(&v[i]), "failed");
  }
  ts_report_html(o, "<p><b id=\"slide-count\">%d</b> slides, <b id=\"tiles-total\">%lld</b> tiles, "
                    "<b class=\"%s\">%d</b> failed. Left: tissue QC (mask outline); right: the tile grid.</p>\n<div class=\"slides\">\n",
                 n, (long long)tiles, failed ? "bad" : "ok", failed);
  for (int i = 0; i < n; i++) {
    slide_info *s = &v[i];
    ts_report_html(o, "<div class=\"slide\" id=\"slide-");
    ts_report_html_text(o, s->id);
    ts_report_html(o, "\"><h3>");
    ts_report_html_text(o, s->id);
    ts_report_html(o, "</h3><div class=\"imgs\">");
    if (ts_id_is_safe(s->id)) {
      char rel[512], path[TS_PATH_MAX];
      const char *dirs[] = {"tissue", "tiles"};
      for (int k = 0; k < 2; k++) {
        snprintf(rel, sizeof rel, "%s/%s.png", dirs[k], s->id);
        if (ts_report_path(r, rel, path, sizeof path) < 0) continue;
        if (i < MAX_EMBEDDED_SLIDES) ts_report_html_png(o, path, rel);
        else if (ts_io_exists(path)) ts_report_html(o, "<a href=\"../%s\">%s</a> ", rel, rel);
      }
    }
    ts_report_html(o, "</div><table class=\"kv\">");
    char buf[128];
    if (s->t.n >= 0) snprintf(buf, sizeof buf, "%lld", (long long)s->t.n);
    else snprintf(buf, sizeof buf, "–");
    ts_report_html(o, "<tr><th>tiles</th><td class=\"tiles\">%s</td></tr>", buf);
    if (isfinite(s->t.mpp0)) snprintf(buf, sizeof buf, "%.4g µm/px (from %s)", s->t.mpp0, s->t.mpp_source[0] ? s->t.mpp_source : "?");
    else snprintf(buf, sizeof buf, "–");
    ts_report_html(o, "<tr><th>level-0 mpp</th><td>%s</td></tr>", buf);
    if (isfinite(s->tissue_mm2)) snprintf(buf, sizeof buf, "%.2f mm²", s->tissue_mm2);
    else snprintf(buf, sizeof buf, "–");
    ts_report_html(o, "<tr><th>tissue area</th><td>%s</td></tr>", buf);
    int64_t nbad = s->bad_tiles;
    if (nbad > 0)
      ts_report_html(o, "<tr><th>bad tiles</th><td class=\"warn bad-tiles\">%lld did not decode: zero features (see <code>bad_tiles</code>, <code>tessera status</code>)</td></tr>",
                     (long long)nbad);
    const char *st = slide_status(s);
    ts_report_html(o, "<tr><th>status</th><td class=\"%s\">%s</td></tr></table>",
                   !strcmp(st, "failed") ? "bad" : !strcmp(st, "done") ? "ok" : "warn", st);
    fail_list fl = {o, true, 0};
    slide_failures(r, s->id, &fl);
    ts_report_html(o, "</div>\n");
  }
  ts_report_html(o, "</div>\n");
  free(v);
  return 0;
}

static const struct ts_report_section section_slides = {
    .abi = TS_REPORT_SECTION_ABI, .name = "slides", .title = "Slides", .html = slides_html, .json = slides_json};

/* ================================================================ failures */

static int failures_json(const ts_report *r, ts_report_out *o) {
  sqlite3_stmt *st = NULL;
  TS_CALL(sql_prepare(r, "SELECT coalesce(error_token,''), count(*) FROM units WHERE state='failed' GROUP BY 1 ORDER BY 1", &st));
  ts_report_json_object(o, "by_token");
  while (sqlite3_step(st) == SQLITE_ROW) ts_report_json_int(o, col_text(st, 0), sqlite3_column_int64(st, 1));
  sqlite3_finalize(st);
  ts_report_json_end(o);
  TS_CALL(sql_prepare(r, "SELECT u.stage, u.unit, coalesce(u.error_token,''), coalesce(u.error_message,''), u.attempts FROM units u "
                         "JOIN stages s ON s.name=u.stage WHERE u.state='failed' ORDER BY s.position, u.idx", &st));
  ts_report_json_array(o, "units");
  while (sqlite3_step(st) == SQLITE_ROW) {
    ts_report_json_object(o, NULL);
    ts_report_json_str(o, "stage", col_text(st, 0));
    ts_report_json_str(o, "unit", col_text(st, 1));
    ts_report_json_str(o, "token", col_text(st, 2));
    ts_report_json_str(o, "message", col_text(st, 3));
    ts_report_json_end(o);
  }
  sqlite3_finalize(st);
  ts_report_json_end(o);
  return 0;
}

static int failures_html(const ts_report *r, ts_report_out *o) {
  sqlite3_stmt *st = NULL;
  TS_CALL(sql_prepare(r, "SELECT u.stage, u.unit, coalesce(u.error_token,''), coalesce(u.error_message,''), u.attempts, u.rank FROM units u "
                         "JOIN stages s ON s.name=u.stage WHERE u.state='failed' ORDER BY s.position, u.idx", &st));
  int n = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    if (!n++) ts_report_html(o, "<table id=\"failure-table\"><tr><th>stage</th><th>unit</th><th>token</th><th>message</th><th>attempts</th></tr>\n");
    ts_report_html(o, "<tr><td>");
    ts_report_html_text(o, col_text(st, 0));
    ts_report_html(o, "</td><td>");
    ts_report_html_text(o, col_text(st, 1));
    ts_report_html(o, "</td><td><span class=\"tok\">");
    ts_report_html_text(o, col_text(st, 2));
    ts_report_html(o, "</span></td><td>");
    ts_report_html_text(o, msg_body(col_text(st, 2), col_text(st, 3)));
    ts_report_html(o, "</td><td class=\"n\">%d</td></tr>\n", sqlite3_column_int(st, 4));
  }
  sqlite3_finalize(st);
  if (n) ts_report_html(o, "</table>\n<p>Failed units are retried by the next <code>tessera run</code> of this run "
                           "directory only if their input changed or the failure was transient.</p>\n");
  else ts_report_html(o, "<p class=\"ok\" id=\"no-failures\">No unit failed.</p>\n");
  return 0;
}

static const struct ts_report_section section_failures = {
    .abi = TS_REPORT_SECTION_ABI, .name = "failures", .title = "Failures", .html = failures_html, .json = failures_json};

/* ========================================================= reproducibility */

static int repro_json(const ts_report *r, ts_report_out *o) {
  const ts_config *cfg = ts_report_config(r);
  char hex[65];
  int64_t bytes = 0;
  ts_report_env e;
  ts_report_env_get(&e);
  ts_report_json_object(o, "config");
  ts_report_json_str(o, "text", cfg->text);
  ts_report_json_str(o, "sha256", cfg->hash);
  ts_report_config_portable_sha256(cfg->text, hex);
  ts_report_json_str(o, "portable_sha256", hex);
  ts_report_json_end(o);
  ts_report_json_object(o, "seeds");
  ts_report_json_int(o, "run.seed", cfg->run.seed);
  ts_report_json_end(o);
  ts_report_json_object(o, "versions");
  ts_report_json_str(o, "tessera", TS_VERSION);
  ts_report_json_str(o, "build_type", TS_BUILD_TYPE);
  ts_report_json_str(o, "openslide", e.openslide);
  ts_report_json_str(o, "libvips", e.vips);
  ts_report_json_str(o, "hdf5", e.hdf5);
  ts_report_json_str(o, "mpi", e.mpi);
  ts_report_json_str(o, "sqlite", e.sqlite);
  ts_report_json_str(o, "libtorch", e.libtorch);
  ts_report_json_end(o);
  ts_report_json_object(o, "inputs");
  ts_report_json_object(o, "cohort_csv");
  ts_report_json_str(o, "path", cfg->cohort.csv);
  if (cfg->cohort.csv && ts_io_sha256_file(cfg->cohort.csv, hex, &bytes) == 0) {
    ts_report_json_str(o, "sha256", hex);
    ts_report_json_int(o, "bytes", bytes);
  } else {
    ts_error_clear();
    ts_report_json_null(o, "sha256");
  }
  ts_report_json_end(o);
  slide_info *v = NULL;
  int n = 0;
  TS_CALL(load_slides(r, &v, &n));
  ts_report_json_array(o, "slides");
  for (int i = 0; i < n; i++) {
    ts_report_json_object(o, NULL);
    ts_report_json_str(o, "slide_id", v[i].id);
    ts_report_json_str(o, "path", v[i].path[0] ? v[i].path : NULL);
    const char *qh = v[i].t.quickhash;
    ts_slide *s = NULL;
    /* Not tiled (failed or pending): ask OpenSlide itself, when it can open the file. */
    if (!qh[0] && v[i].path[0] && ts_slide_open(v[i].path, v[i].id, &s) == 0) qh = ts_slide_quickhash(s);
    ts_error_clear();
    ts_report_json_str(o, "quickhash", qh[0] ? qh : NULL);
    ts_slide_free(&s);
    ts_report_json_end(o);
  }
  ts_report_json_end(o);
  free(v);
  ts_report_json_end(o);
  ts_report_json_array(o, "encoders"); /* extract/ssl stages: name + weights hash */
  ts_report_json_end(o);
  sqlite3_stmt *st = NULL;
  TS_CALL(sql_prepare(r, "SELECT u.stage, u.unit, u.output, u.checksum, u.bytes FROM units u JOIN stages s ON s.name=u.stage "
                         "WHERE u.state='done' AND u.output IS NOT NULL AND u.output<>'' ORDER BY s.position, u.idx", &st));
  ts_report_json_array(o, "outputs");
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *rel = col_text(st, 2);
    char path[TS_PATH_MAX], content[65] = "";
    ts_report_json_object(o, NULL);
    ts_report_json_str(o, "stage", col_text(st, 0));
    ts_report_json_str(o, "unit", col_text(st, 1));
    ts_report_json_str(o, "path", rel);
    ts_report_json_str(o, "sha256", col_text(st, 3));
    ts_report_json_int(o, "bytes", sqlite3_column_int64(st, 4));
    size_t len = strlen(rel);
    bool h5 = len > 3 && !strcmp(rel + len - 3, ".h5");
    if (h5 && sqlite3_column_int64(st, 4) > TS_REPORT_CONTENT_HASH_MAX)
      ts_report_json_null(o, "content_sha256");
    else if (h5 && ts_report_path(r, rel, path, sizeof path) == 0 && ts_report_h5_content_sha256(path, content) == 0)
      ts_report_json_str(o, "content_sha256", content);
    else {
      ts_error_clear();
      ts_report_json_str(o, "content_sha256", col_text(st, 3));
    }
    ts_report_json_end(o);
  }
  sqlite3_finalize(st);
  ts_report_json_end(o);
  return 0;
}

static int repro_html(const ts_report *r, ts_report_out *o) {
  const ts_config *cfg = ts_report_config(r);
  char hex[65];
  int64_t bytes = 0;
  ts_report_config_portable_sha256(cfg->text, hex);
  ts_report_html(o, "<table class=\"kv\"><tr><th>config SHA-256</th><td class=\"hash\">%s</td></tr>"
                    "<tr><th>portable config SHA-256</th><td class=\"hash\">%s <br><small>(without run.dir: equal for a run and its rerun)</small></td></tr>"
                    "<tr><th>seed (run.seed)</th><td>%lld</td></tr>",
                 cfg->hash, hex, (long long)cfg->run.seed);
  ts_report_html(o, "<tr><th>cohort CSV</th><td><code>");
  ts_report_html_text(o, cfg->cohort.csv);
  if (cfg->cohort.csv && ts_io_sha256_file(cfg->cohort.csv, hex, &bytes) == 0)
    ts_report_html(o, "</code><br><span class=\"hash\">sha256 %s</span> (%lld bytes)</td></tr></table>\n", hex, (long long)bytes);
  else {
    ts_error_clear();
    ts_report_html(o, "</code> <span class=\"bad\">unreadable now</span></td></tr></table>\n");
  }
  ts_report_html(o, "<p>To repeat this run: <code>tessera rerun ");
  ts_report_html_text(o, ts_report_run_dir(r));
  ts_report_html(o, "/report/report.json NEW_RUN_DIR</code> (checks the inputs against the checksums below first), then "
                    "<code>tessera compare ");
  ts_report_html_text(o, ts_report_run_dir(r));
  ts_report_html(o, " NEW_RUN_DIR</code>.</p>\n<h3>Outputs (ledger checksums)</h3>\n"
                    "<table id=\"output-table\"><tr><th>stage</th><th>output</th><th>bytes</th><th>SHA-256</th></tr>\n");
  sqlite3_stmt *st = NULL;
  TS_CALL(sql_prepare(r, "SELECT u.stage, u.output, u.checksum, u.bytes FROM units u JOIN stages s ON s.name=u.stage "
                         "WHERE u.state='done' AND u.output IS NOT NULL AND u.output<>'' ORDER BY s.position, u.idx", &st));
  while (sqlite3_step(st) == SQLITE_ROW) {
    ts_report_html(o, "<tr><td>");
    ts_report_html_text(o, col_text(st, 0));
    ts_report_html(o, "</td><td><code>");
    ts_report_html_text(o, col_text(st, 1));
    ts_report_html(o, "</code></td><td class=\"n\">%lld</td><td class=\"hash\">", (long long)sqlite3_column_int64(st, 3));
    ts_report_html_text(o, col_text(st, 2));
    ts_report_html(o, "</td></tr>\n");
  }
  sqlite3_finalize(st);
  ts_report_html(o, "</table>\n<p>report.json also carries each HDF5 output's <em>content</em> hash (all data and attributes "
                    "except where the file was written and the config hash), the slides' OpenSlide quickhashes and the library "
                    "versions.</p>\n");
  return 0;
}

static const struct ts_report_section section_repro = {.abi = TS_REPORT_SECTION_ABI,
                                                       .name = "reproducibility",
                                                       .title = "Reproducibility",
                                                       .html = repro_html,
                                                       .json = repro_json};

/* ================================================================== table */

const struct ts_report_section *const ts_report_sections[] = {
    &section_run, &section_stages, &section_slides, &section_failures, &section_repro,
    /* later stages: &ts_report_section_mil, &ts_report_section_survival, ... */
    NULL,
};
