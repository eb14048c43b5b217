/* tile.c — stage "tile": one unit per slide. Lays the tile grid in physical units (tile.size px
 * at tile.mpp um/px, tile.overlap, tile.min_tissue) over the slide's tissue mask and writes
 * tiles/<slide>.h5 (coords, level-0 top-left, with CLAM's, TRIDENT's and tessera's attributes)
 * and tiles/<slide>.png (thumbnail, mask outline and tile grid, for QC). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ts_error.h"
#include "ts_io.h"
#include "ts_slide.h"
#include "ts_stage.h"
#include "ts_tiles.h"
#include "ts_tissue.h"
#include "ts_version.h"

static const char *const needs[] = {"tissue", NULL};
static const char *const keys[] = {"cohort.csv", "cohort.mpp", "tile", NULL};

/* Before anything runs: a grid whose tiles overlap by their whole size would never advance. */
static int check(const ts_config *c) {
  if (c->tile.overlap >= c->tile.size)
    return ts_error_set(TS_ECONFIG, "CONFIG_RANGE", "tile.overlap (%lld) must be smaller than tile.size (%lld)", (long long)c->tile.overlap,
                        (long long)c->tile.size);
  return 0;
}

static int plan(const ts_run *run, ts_units *units) { return ts_units_for_slides(run, "tissue", NULL, units); }

static int work(const ts_run *run, const ts_unit *u, ts_unit_record *rec) {
  const ts_cohort_row *row = ts_cohort_find(run->cohort, u->id);
  if (!row) return ts_error_set(TS_EINTERNAL, "UNIT_UNKNOWN", "slide %s is not in the cohort", u->id);
  ts_slide *s = NULL;
  ts_mask m;
  ts_grid g;
  memset(&m, 0, sizeof m);
  memset(&g, 0, sizeof g);
  int rc = 0;
  char dir[TS_PATH_MAX], mask_path[TS_PATH_MAX], h5[TS_PATH_MAX], png[TS_PATH_MAX + 256], rel[512];
  char h5_tmp[TS_PATH_MAX] = "", png_tmp[TS_PATH_MAX] = "";
  TS_TRY(ts_slide_open(row->path, row->slide_id, &s));
  TS_TRY(ts_slide_resolve_mpp(s, row->mpp, run->cfg->cohort.mpp));
  snprintf(rel, sizeof rel, "tissue/%s.h5", u->id);
  TS_TRY(ts_run_path(run, rel, mask_path, sizeof mask_path));
  TS_TRY(ts_mask_load_h5(mask_path, &m));
  ts_grid_params gp = {.size = (int)run->cfg->tile.size, .mpp = run->cfg->tile.mpp,
                       .overlap = (int)run->cfg->tile.overlap, .min_tissue = run->cfg->tile.min_tissue};
  int64_t w0, h0;
  ts_slide_level_dims(s, 0, &w0, &h0);
  TS_TRY(ts_grid_build(w0, h0, ts_slide_mpp(s), &m, &gp, &g));
  int lvl = ts_slide_best_level(s, gp.mpp);
  int64_t lw, lh;
  ts_slide_level_dims(s, lvl, &lw, &lh);
  ts_tiles_meta meta = {.slide_id = u->id, .slide_path = row->path, .quickhash = ts_slide_quickhash(s),
                        .mpp_source = ts_slide_mpp_source(s), .config_hash = run->stage_hash,
                        .version = TS_VERSION, .mpp0 = ts_slide_mpp(s),
                        .objective_power = ts_slide_objective_power(s), .w0 = w0, .h0 = h0,
                        .read_level = lvl, .read_downsample = ts_slide_level_downsample(s, lvl),
                        .read_w = lw, .read_h = lh};
  TS_TRY(ts_run_path(run, "tiles", dir, sizeof dir));
  TS_TRY(ts_io_mkdirs(dir, 0755));
  snprintf(rec->output, sizeof rec->output, "tiles/%s.h5", u->id);
  TS_TRY(ts_run_path(run, rec->output, h5, sizeof h5));
  snprintf(png, sizeof png, "%s/%s.png", dir, u->id);
  /* both files under temporary names, then one commit (one directory fsync for the two) */
  TS_TRY(ts_io_tmp_path(h5, h5_tmp, sizeof h5_tmp));
  TS_TRY(ts_io_tmp_path(png, png_tmp, sizeof png_tmp));
  TS_TRY(ts_qc_png_to_tmp(&m, g.coords, g.n, g.tile_l0, png_tmp));
  TS_TRY(ts_tiles_write_h5_to_tmp(h5, h5_tmp, &g, &gp, &meta));
  TS_TRY(ts_outputs_commit((const char *const[]){h5_tmp, png_tmp}, (const char *const[]){h5, png}, 2));
  h5_tmp[0] = png_tmp[0] = '\0';
  snprintf(rel, sizeof rel, "tiles/%s.png", u->id);
  TS_TRY(ts_unit_add_output(rec, rel));
  rec->items = g.n;
  if (g.n == 0)
    ts_unit_note(rec, "SLIDE_NO_TILES: slide %s: no tile of %d px at %g um/px has tissue >= tile.min_tissue (%g): a blank slide, or "
                 "a tissue mask that missed the tissue (see tiles/%s.png)", u->id, gp.size, gp.mpp, gp.min_tissue, u->id);
out:
  if (rc < 0 && h5_tmp[0]) unlink(h5_tmp);
  if (rc < 0 && png_tmp[0]) unlink(png_tmp);
  ts_grid_clear(&g);
  ts_mask_clear(&m);
  ts_slide_free(&s);
  return rc;
}

extern const struct ts_report_section ts_report_section_slides; /* stages/report_slides.c */

const struct ts_stage ts_stage_tile = {
    .abi = TS_STAGE_ABI,
    .name = "tile",
    .kind = TS_SHARDED,
    .needs = needs,
    .config_keys = keys,
    .plan = plan,
    .work = work,
    .finish = NULL,
    .check = check,
    .items_unit = "tiles",
    .unit_noun = "slide",
    .report = (const struct ts_report_section *const[]){&ts_report_section_slides, NULL},
};
