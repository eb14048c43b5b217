/* tissue.c — stage "tissue": one unit per slide. Opens the slide, decides its pixel size
 * (file, cohort CSV, config — recorded), computes the CLAM-like tissue mask on a ~8 um/px view
 * (workers/tissue.c) and writes tissue/<slide>.h5 (mask + geometry) and tissue/<slide>.png
 * (thumbnail with the mask outline, for QC). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ts_error.h"
#include "ts_io.h"
#include "ts_slide.h"
#include "ts_stage.h"
#include "ts_tissue.h"

static const char *const needs[] = {NULL};
static const char *const keys[] = {"cohort.csv", "cohort.mpp", "tissue", NULL};

static int check(const ts_config *c) {
  if (c->tissue.min_hole_um2 < 0 || c->tissue.min_area_um2 < 0)
    return ts_error_set(TS_ECONFIG, "CONFIG_RANGE", "tissue.min_area_um2 and tissue.min_hole_um2 must be >= 0");
  return 0;
}

static int plan(const ts_run *run, ts_units *units) { return ts_units_for_slides(run, NULL, NULL, units); }

static int work(const ts_run *run, const ts_unit *u, ts_unit_record *rec) {
  const ts_cohort_row *row = ts_cohort_find(run->cohort, u->id);
  if (!row) return ts_error_set(TS_EINTERNAL, "UNIT_UNKNOWN", "slide %s is not in the cohort", u->id);
  ts_slide *s = NULL;
  ts_mask m;
  memset(&m, 0, sizeof m);
  int rc = 0;
  char dir[TS_PATH_MAX], h5[TS_PATH_MAX], png[TS_PATH_MAX + 256], rel[512];
  char h5_tmp[TS_PATH_MAX] = "", png_tmp[TS_PATH_MAX] = "";
  TS_TRY(ts_slide_open(row->path, row->slide_id, &s));
  TS_TRY(ts_slide_resolve_mpp(s, row->mpp, run->cfg->cohort.mpp));
  ts_tissue_params p;
  ts_tissue_params_default(&p);
  p.target_mpp = run->cfg->tissue.mpp;
  p.median_px = (int)run->cfg->tissue.median;
  p.close_px = (int)run->cfg->tissue.close;
  p.min_area_um2 = run->cfg->tissue.min_area_um2;
  p.min_hole_um2 = run->cfg->tissue.min_hole_um2;
  p.sat_floor = (int)run->cfg->tissue.sat_floor;
  TS_TRY(ts_tissue_mask(s, &p, &m));
  TS_TRY(ts_run_path(run, "tissue", dir, sizeof dir));
  TS_TRY(ts_io_mkdirs(dir, 0755));
  snprintf(rec->output, sizeof rec->output, "tissue/%s.h5", u->id);
  TS_TRY(ts_run_path(run, rec->output, h5, sizeof h5));
  snprintf(png, sizeof png, "%s/%s.png", dir, u->id);
  /* both files under temporary names, then one commit (one directory fsync for the two) */
  TS_TRY(ts_io_tmp_path(h5, h5_tmp, sizeof h5_tmp));
  TS_TRY(ts_io_tmp_path(png, png_tmp, sizeof png_tmp));
  TS_TRY(ts_qc_png_to_tmp(&m, NULL, 0, 0, png_tmp));
  TS_TRY(ts_mask_save_h5_to_tmp(&m, h5_tmp));
  TS_TRY(ts_outputs_commit((const char *const[]){h5_tmp, png_tmp}, (const char *const[]){h5, png}, 2));
  h5_tmp[0] = png_tmp[0] = '\0';
  snprintf(rel, sizeof rel, "tissue/%s.png", u->id);
  TS_TRY(ts_unit_add_output(rec, rel));
  rec->items = 1; /* slides */
out:
  if (rc < 0 && h5_tmp[0]) unlink(h5_tmp);
  if (rc < 0 && png_tmp[0]) unlink(png_tmp);
  ts_mask_clear(&m);
  ts_slide_free(&s);
  return rc;
}

const struct ts_stage ts_stage_tissue = {
    .abi = TS_STAGE_ABI,
    .name = "tissue",
    .kind = TS_SHARDED,
    .needs = needs,
    .config_keys = keys,
    .plan = plan,
    .work = work,
    .finish = NULL,
    .check = check,
    .items_unit = "slides",
    .unit_noun = "slide",
};
