/* section_run.c — the report's "run" section: what ran (tessera version and build, command
 * lines, ranks and hosts), when, and how it ended (ledger `runs`), the machine and the
 * library versions.
 *
 * How it ended: the run driver records the run's end (finish time, exit code) *before* the
 * summary stages (TS_STAGE_SUMMARY: the report) run, so the report written at the end of a
 * run says "finished, exit 0" and not "running". Only the last invocation without a finish
 * time is running (a `tessera report` while the run goes on); an earlier one without it was
 * killed. The unit counts leave out the summary stages' own units, as the exit code does. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_error.h"
#include "ts_report.h"
#include "ts_report_internal.h"
#include "ts_stage.h"
#include "ts_version.h"

typedef struct invocation {
  int64_t id;
  char started[32], finished[32], version[64];
  char *argv, *hosts;
  int ranks;
  bool has_exit;
  int exit_code;
} invocation;

typedef struct run_data {
  int n;
  invocation *v;
  int64_t done, failed, pending;
  double stage_seconds;
  ts_report_env env;
} run_data;

static void run_release(void *p) {
  run_data *d = p;
  if (!d) return;
  for (int i = 0; i < d->n; i++) {
    free(d->v[i].argv);
    free(d->v[i].hosts);
  }
  free(d->v);
  free(d);
}

static bool summary_stage(const ts_report *r, const char *name) {
  const struct ts_stage *s = ts_report_stage(r, name);
  return s && (s->flags & TS_STAGE_SUMMARY);
}

static int run_load(const ts_report *r, void **data_out) {
  run_data *d = calloc(1, sizeof *d);
  if (!d) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report run");
  ts_report_env_get(&d->env);
  sqlite3_stmt *st = NULL;
  int rc = 0, cap = 0;
  TS_TRY(ts__report_sql(r, "SELECT id, started, finished, argv, ranks, hosts, version, exit_code FROM runs ORDER BY id", &st));
  while (sqlite3_step(st) == SQLITE_ROW) {
    if (d->n == cap) {
      invocation *nv = realloc(d->v, sizeof *nv * (size_t)(cap = cap ? 2 * cap : 8));
      if (!nv) {
        rc = ts_error_set(TS_ENOMEM, "NO_MEMORY", "report run");
        goto out;
      }
      d->v = nv;
    }
    invocation *x = &d->v[d->n++];
    memset(x, 0, sizeof *x);
    x->id = sqlite3_column_int64(st, 0);
    snprintf(x->started, sizeof x->started, "%s", ts__report_col(st, 1) ? ts__report_col(st, 1) : "");
    snprintf(x->finished, sizeof x->finished, "%s", ts__report_col(st, 2) ? ts__report_col(st, 2) : "");
    x->argv = strdup(ts__report_col(st, 3) ? ts__report_col(st, 3) : "");
    x->ranks = sqlite3_column_int(st, 4);
    x->hosts = ts__report_col(st, 5) ? strdup(ts__report_col(st, 5)) : NULL;
    snprintf(x->version, sizeof x->version, "%s", ts__report_col(st, 6) ? ts__report_col(st, 6) : "");
    x->has_exit = sqlite3_column_type(st, 7) != SQLITE_NULL;
    x->exit_code = sqlite3_column_int(st, 7);
  }
  sqlite3_finalize(st);
  st = NULL;
  TS_TRY(ts__report_sql(r, "SELECT stage, state, count(*) FROM units GROUP BY stage, state", &st));
  while (sqlite3_step(st) == SQLITE_ROW) {
    if (summary_stage(r, ts__report_col(st, 0))) continue;
    const char *state = ts__report_col(st, 1);
    int64_t k = sqlite3_column_int64(st, 2);
    if (!strcmp(state, "done")) d->done += k;
    else if (!strcmp(state, "failed")) d->failed += k;
    else d->pending += k;
  }
  sqlite3_finalize(st);
  st = NULL;
  TS_TRY(ts__report_sql(r, "SELECT coalesce(sum(seconds),0) FROM stages", &st));
  if (sqlite3_step(st) == SQLITE_ROW) d->stage_seconds = sqlite3_column_double(st, 0);
out:
  sqlite3_finalize(st);
  if (rc < 0) {
    run_release(d);
    return rc;
  }
  *data_out = d;
  return 1;
}

static const invocation *last(const run_data *d) { return d->n ? &d->v[d->n - 1] : NULL; }
static bool running(const run_data *d) { return last(d) && !last(d)->finished[0]; }

static int run_json(const ts_report *r, const void *data, ts_report_out *o) {
  const run_data *d = data;
  const ts_report_env *e = &d->env;
  const invocation *l = last(d);
  ts_report_json_object(o, "tessera");
  ts_report_json_str(o, "version", TS_VERSION);
  ts_report_json_str(o, "build_type", TS_BUILD_TYPE);
  ts_report_json_str(o, "compiler", e->compiler);
  ts_report_json_end(o);
  ts_report_json_str(o, "config_hash", ts_report_config(r)->hash);
  /* The last invocation is "the run"; the earlier ones are resumes of the same run dir. */
  ts_report_json_array(o, "invocations");
  for (int i = 0; i < d->n; i++) {
    const invocation *x = &d->v[i];
    ts_report_json_object(o, NULL);
    ts_report_json_int(o, "id", x->id);
    ts_report_json_str(o, "started", x->started);
    ts_report_json_str(o, "finished", x->finished[0] ? x->finished : NULL);
    ts_report_json_str(o, "command_line", x->argv);
    ts_report_json_int(o, "ranks", x->ranks);
    ts_report_json_str(o, "hosts", x->hosts);
    ts_report_json_str(o, "version", x->version);
    if (x->has_exit) ts_report_json_int(o, "exit_code", x->exit_code);
    else ts_report_json_null(o, "exit_code");
    ts_report_json_end(o);
  }
  ts_report_json_end(o);
  ts_report_json_str(o, "command_line", l ? l->argv : "");
  ts_report_json_int(o, "ranks", l ? l->ranks : 0);
  ts_report_json_str(o, "hosts", l && l->hosts ? l->hosts : "");
  ts_report_json_str(o, "started", d->n && d->v[0].started[0] ? d->v[0].started : NULL);
  ts_report_json_str(o, "finished", l && l->finished[0] ? l->finished : NULL);
  ts_report_json_bool(o, "in_progress", running(d));
  if (l && l->finished[0] && l->has_exit) ts_report_json_int(o, "exit_code", l->exit_code);
  else ts_report_json_null(o, "exit_code");
  int64_t kb = ts_report_options(r)->peak_rss_kb;
  if (kb > 0) ts_report_json_int(o, "rank0_peak_rss_kb", kb);
  else ts_report_json_null(o, "rank0_peak_rss_kb");
  ts_report_json_object(o, "environment");
  ts_report_json_str(o, "hostname", e->hostname);
  ts_report_json_str(o, "os", e->os);
  ts_report_json_str(o, "cpu_model", e->cpu_model);
  ts_report_json_int(o, "cores", e->cores);
  ts_report_json_int(o, "memory_bytes", e->memory_bytes);
  ts_report_json_object(o, "libraries");
  ts_report_json_str(o, "openslide", e->openslide);
  ts_report_json_str(o, "libvips", e->vips);
  ts_report_json_str(o, "hdf5", e->hdf5);
  ts_report_json_str(o, "mpi", e->mpi);
  ts_report_json_str(o, "sqlite", e->sqlite);
  ts_report_json_str(o, "libtorch", e->libtorch);
  ts_report_json_end(o);
  ts_report_json_end(o);
  return 0;
}

static int run_html(const ts_report *r, const void *data, ts_report_out *o) {
  const run_data *d = data;
  const ts_report_env *e = &d->env;
  const invocation *l = last(d);
  char buf[512], wall[32], state[160];
  ts_report_fmt_seconds(wall, sizeof wall, d->stage_seconds);
  if (!l) snprintf(state, sizeof state, "never run");
  else if (running(d)) snprintf(state, sizeof state, "in progress (this report was written while the run goes on)");
  else if (l->has_exit && l->exit_code == 0) snprintf(state, sizeof state, "finished %s, exit code 0: every unit done", l->finished);
  else if (l->has_exit) snprintf(state, sizeof state, "finished %s, exit code %d: failed or pending units", l->finished, l->exit_code);
  else snprintf(state, sizeof state, "finished %s", l->finished);
  bool ok = l && !running(d) && l->has_exit && l->exit_code == 0 && !d->failed && !d->pending;
  ts_report_html(o, "<p id=\"summary\" class=\"%s\"><span id=\"run-state\">", ok ? "ok" : "warn");
  ts_report_html_text(o, state);
  ts_report_html(o, "</span> · %lld units done, %lld failed, %lld pending · stage wall time %s</p>\n", (long long)d->done,
                 (long long)d->failed, (long long)d->pending, wall);
  ts_report_html(o, "<table class=\"kv\">\n");
  snprintf(buf, sizeof buf, "%s (%s build, %s)", TS_VERSION, TS_BUILD_TYPE, e->compiler);
  ts__report_kv(o, "tessera", buf, "tessera-version");
  ts__report_kv(o, "config hash", ts_report_config(r)->hash, NULL);
  ts_report_html(o, "</table>\n<h3>Invocations of <code>tessera run</code> on this run directory</h3>\n"
                    "<table id=\"invocations\"><tr><th>#</th><th>command line</th><th>ranks</th><th>hosts</th><th>started</th>"
                    "<th>finished</th><th>exit</th></tr>\n");
  for (int i = 0; i < d->n; i++) {
    const invocation *x = &d->v[i];
    ts_report_html(o, "<tr><td class=\"n\">%lld</td><td><code>", (long long)x->id);
    ts_report_html_text(o, x->argv);
    ts_report_html(o, "</code></td><td class=\"n\">%d</td><td>", x->ranks);
    ts_report_html_text(o, x->hosts);
    ts_report_html(o, "</td><td>");
    ts_report_html_text(o, x->started);
    ts_report_html(o, "</td><td>");
    /* without a finish time: the last one is still going, an earlier one was killed */
    ts_report_html_text(o, x->finished[0] ? x->finished : i == d->n - 1 ? "in progress" : "interrupted");
    if (!x->has_exit) ts_report_html(o, "</td><td>–</td></tr>\n");
    else ts_report_html(o, "</td><td class=\"%s\">%d</td></tr>\n", x->exit_code ? "bad" : "ok", x->exit_code);
  }
  ts_report_html(o, "</table>\n<h3>Machine (host that wrote this report)</h3>\n<table class=\"kv\">\n");
  ts__report_kv(o, "host", e->hostname, NULL);
  ts__report_kv(o, "OS", e->os, NULL);
  ts__report_kv(o, "CPU", e->cpu_model, NULL);
  snprintf(buf, sizeof buf, "%d", e->cores);
  ts__report_kv(o, "cores", buf, NULL);
  ts_report_fmt_bytes(buf, sizeof buf, (double)e->memory_bytes);
  ts__report_kv(o, "memory", buf, NULL);
  if (ts_report_options(r)->peak_rss_kb > 0) {
    ts_report_fmt_bytes(buf, sizeof buf, 1024.0 * (double)ts_report_options(r)->peak_rss_kb);
    ts__report_kv(o, "peak RSS of rank 0", buf, NULL);
  }
  ts__report_kv(o, "OpenSlide", e->openslide, NULL);
  ts__report_kv(o, "libvips", e->vips, NULL);
  ts__report_kv(o, "HDF5", e->hdf5, NULL);
  ts__report_kv(o, "MPI", e->mpi, NULL);
  ts__report_kv(o, "SQLite", e->sqlite, NULL);
  ts__report_kv(o, "LibTorch", e->libtorch, NULL);
  ts_report_html(o, "</table>\n<details><summary>Resolved config (<code>config.yaml</code> of the run)</summary><pre>");
  ts_report_html_text(o, ts_report_config(r)->text);
  ts_report_html(o, "</pre></details>\n");
  return 0;
}

const struct ts_report_section ts__report_section_run = {.abi = TS_REPORT_SECTION_ABI,
                                                         .name = "run",
                                                         .title = "What ran",
                                                         .load = run_load,
                                                         .release = run_release,
                                                         .html = run_html,
                                                         .json = run_json};
