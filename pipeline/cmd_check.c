/* cmd_check.c — `tessera check CONFIG`: before a run, load the config and the cohort and open
 * every slide through OpenSlide (workers/ts_slide.h) the way the tissue stage will, resolving
 * the pixel size in the same order (file, then the cohort CSV's mpp column, then cohort.mpp).
 * One row per slide: id, vendor, level-0 size, levels, mpp and where it came from, and for a
 * bad slide the error token and message the run would record against it. Nothing is written.
 *
 * Single process, no MPI: it is meant for a login node, minutes before an sbatch. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_cli.h"
#include "ts_cli_setup.h"
#include "ts_config.h"
#include "ts_error.h"
#include "ts_io.h"
#include "ts_slide.h"
#include "ts_stage.h"

static const char CHECK_USAGE[] =
    "usage: tessera check CONFIG\n"
    "\n"
    "Loads CONFIG and its cohort CSV and opens every slide with OpenSlide, as a run would.\n"
    "Prints one row per slide: slide id, vendor, level-0 size (px), pyramid levels, level-0\n"
    "pixel size (um/px) and its source (file, cohort: the CSV's mpp column, config:\n"
    "cohort.mpp), and for a bad slide the error token and what to do. Writes nothing.\n"
    "Exit: 0 every slide is good, 1 some slides are bad, 2 usage, config or cohort error.\n";

typedef struct row_result {
  char vendor[64], size[48], levels[16], mpp[32];
  const char *source;
  char *problem; /* NULL when good */
} row_result;

static void check_slide(const ts_cohort_row *r, double config_mpp, row_result *o) {
  snprintf(o->vendor, sizeof o->vendor, "-");
  snprintf(o->size, sizeof o->size, "-");
  snprintf(o->levels, sizeof o->levels, "-");
  snprintf(o->mpp, sizeof o->mpp, "-");
  o->source = "-";
  o->problem = NULL;
  if (!ts_id_is_safe(r->slide_id)) {
    ts_error_set(TS_EINPUT, "SLIDE_BAD_ID",
                 "line %d: slide id '%.200s' cannot be a file name (use 1-128 of A-Z a-z 0-9 . _ -, "
                 "not starting with '.')",
                 r->line, r->slide_id);
    o->problem = strdup(ts_error_message());
    return;
  }
  ts_slide *s = NULL;
  if (ts_slide_open(r->path, r->slide_id, &s) < 0) {
    o->problem = strdup(ts_error_message());
    return;
  }
  int64_t w, h;
  ts_slide_level_dims(s, 0, &w, &h);
  snprintf(o->vendor, sizeof o->vendor, "%s", ts_slide_vendor(s));
  snprintf(o->size, sizeof o->size, "%lldx%lld", (long long)w, (long long)h);
  snprintf(o->levels, sizeof o->levels, "%d", ts_slide_level_count(s));
  if (ts_slide_resolve_mpp(s, r->mpp, config_mpp) < 0) {
    o->source = "none";
    o->problem = strdup(ts_error_message());
  } else {
    snprintf(o->mpp, sizeof o->mpp, "%.4g", ts_slide_mpp(s));
    o->source = ts_slide_mpp_source(s);
  }
  ts_slide_free(&s);
}

static int width(int w, const char *s) {
  int n = (int)strlen(s);
  return n > w ? n : w;
}

int ts_cmd_check(int argc, char **argv) {
  if (ts_cli_wants_help(argc, argv)) {
    fputs(CHECK_USAGE, stdout);
    return 0;
  }
  if (argc != 2) {
    fprintf(stderr, "USAGE: %s\n\n%s", argc < 2 ? "no CONFIG given" : "exactly one CONFIG", CHECK_USAGE);
    return TS_EXIT_USAGE;
  }
  ts_config *cfg = NULL;
  ts_cohort cohort = {0};
  char *text = NULL;
  row_result *res = NULL;
  int ret = TS_EXIT_USAGE;
  if (ts_config_load(argv[1], NULL, 0, &cfg) < 0) {
    fprintf(stderr, "%s\n", ts_error_message());
    goto out;
  }
  if (ts_io_read_all(cfg->cohort.csv, &text, NULL) < 0) {
    fprintf(stderr, "COHORT_MISSING_FILE: %s: cannot read the cohort CSV named by cohort.csv (%s)\n",
            cfg->cohort.csv, ts_error_detail());
    goto out;
  }
  if (ts_cohort_parse(cfg->cohort.csv, text, &cohort) < 0) {
    fprintf(stderr, "%s\n", ts_error_message());
    goto out;
  }
  if (cohort.n == 0) {
    fprintf(stderr, "COHORT_EMPTY: %s: no slides\n", cfg->cohort.csv);
    goto out;
  }
  res = calloc((size_t)cohort.n, sizeof *res);
  if (!res) {
    fprintf(stderr, "OUT_OF_MEMORY: check\n");
    goto out;
  }
  int wid = 8, wv = 6, ws = 7, wl = 6, wm = 4, wsrc = 6, bad = 0;
  for (int i = 0; i < cohort.n; i++) {
    check_slide(&cohort.rows[i], cfg->cohort.mpp, &res[i]);
    bad += res[i].problem != NULL;
    wid = width(wid, cohort.rows[i].slide_id);
    wv = width(wv, res[i].vendor);
    ws = width(ws, res[i].size);
    wl = width(wl, res[i].levels);
    wm = width(wm, res[i].mpp);
  }
  if (wid > 40) wid = 40;
  printf("%s: %d slides from %s\n", argv[1], cohort.n, cfg->cohort.csv);
  printf("%-*s  %-*s  %*s  %*s  %*s  %-*s  %s\n", wid, "slide_id", wv, "vendor", ws, "level-0", wl, "levels",
         wm, "mpp", wsrc, "source", "status");
  for (int i = 0; i < cohort.n; i++) {
    const row_result *o = &res[i];
    printf("%-*s  %-*s  %*s  %*s  %*s  %-*s  %s\n", wid, cohort.rows[i].slide_id, wv, o->vendor, ws, o->size,
           wl, o->levels, wm, o->mpp, wsrc, o->source, o->problem ? o->problem : "ok");
  }
  printf("%d ok, %d bad\n", cohort.n - bad, bad);
  ret = bad ? TS_EXIT_FAILED_UNITS : TS_EXIT_OK;
out:
  if (res)
    for (int i = 0; i < cohort.n; i++)
      free(res[i].problem);
  free(res);
  free(text);
  ts_cohort_clear(&cohort);
  ts_config_free(&cfg);
  return ret;
}
