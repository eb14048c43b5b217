/* report.c — stage "report", the last of every run: writes report/index.html and
 * report/report.json (pipeline/report.c) from the ledger and the outputs.
 *
 * One unit, "report", redone on every run (TS_STAGE_ALWAYS): a report describes the run that
 * just happened, so it cannot be "already done" the way a slide's tiles are. The unit's work
 * is empty and the report is written in finish(), on rank 0: the report reads the ledger,
 * which lives on rank 0's host (SQLite WAL needs readers on the writer's host), and a sharded
 * unit may be handed to any rank. finish() also knows rank 0's peak RSS for the whole run.
 * The report depends on no config key: the stage hash only chains the extract stage's.
 * TS_STAGE_SUMMARY: the driver records the run's end (exit code, finish time) before this
 * stage runs, so the report says how the run ended. run->stages (the registry) tells the
 * report core which stages bring which sections. */
#include <stdio.h>
#include <sys/resource.h>

#include "ts_error.h"
#include "ts_report.h"
#include "ts_stage.h"

static const char *const needs[] = {"extract", NULL};
static const char *const keys[] = {NULL};

static int plan(const ts_run *run, ts_units *units) {
  (void)run;
  return ts_units_add(units, "report");
}

static int work(const ts_run *run, const ts_unit *u, ts_unit_record *rec) {
  (void)run;
  (void)u;
  rec->items = 0;
  return 0;
}

static int finish(const ts_run *run) {
  struct rusage ru;
  ts_report_opts o = {.peak_rss_kb = 0, .quiet = false};
  if (getrusage(RUSAGE_SELF, &ru) == 0) o.peak_rss_kb = ru.ru_maxrss; /* kB on Linux */
  return ts_report_write(run->dir, run->stages, &o); /* every stage's sections, in run order */
}

const struct ts_stage ts_stage_report = {
    .abi = TS_STAGE_ABI,
    .name = "report",
    .kind = TS_SHARDED,
    .needs = needs,
    .config_keys = keys,
    .plan = plan,
    .work = work,
    .finish = finish,
    .flags = TS_STAGE_ALWAYS | TS_STAGE_SUMMARY,
    .unit_noun = "report",
};
