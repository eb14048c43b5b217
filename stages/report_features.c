/* report_features.c — the report section "features", owned by the extract stage
 * (stages/extract.c lists it in .report): the encoder, the feature width, the weights hash,
 * and per slide its tiles and bad tiles, read back from the attributes extract wrote into each
 * features/<encoder>/<slide>.h5 (dataset `features`: encoder, weights_hash, n_bad_tiles; see
 * write_features in extract.c), with the units' state from the ledger (read API). Shards
 * ("<slide>#<first>-<end>") are parts of their slide's merge unit and are not listed.
 * The encoders used go to reproducibility.encoders (the repro hook). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_error.h"
#include "ts_io.h"
#include "ts_report.h"
#include "ts_stage.h"

typedef struct feat_slide {
  const ts_report_unit *u;
  int64_t tiles, dim, bad; /* -1 unknown */
  char encoder[128], weights_hash[80];
} feat_slide;

typedef struct feat_data {
  ts_report_units units;
  ts_report_stage_info info;
  int n;
  feat_slide *v;
  int64_t tiles_total, bad_total, done, failed, pending;
  char encoder[128], weights_hash[80]; /* of the first slide with features; "" none */
  int64_t dim;
  bool mixed; /* slides with different encoders or widths (should not happen: one stage hash) */
} feat_data;

static void feat_release(void *p) {
  feat_data *d = p;
  if (!d) return;
  free(d->v);
  ts_report_units_clear(&d->units);
  free(d);
}

static int feat_load(const ts_report *r, void **data_out) {
  feat_data *d = calloc(1, sizeof *d);
  if (!d) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report features");
  d->dim = -1;
  if (ts_report_stage_info_get(r, "extract", &d->info) < 0 || ts_report_units_load(r, "extract", &d->units) < 0) {
    feat_release(d);
    return -1;
  }
  if (!d->info.known) { /* extract never took part in this run directory */
    feat_release(d);
    return 0;
  }
  d->v = calloc((size_t)(d->units.n ? d->units.n : 1), sizeof *d->v);
  if (!d->v) {
    feat_release(d);
    return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report features");
  }
  for (int64_t i = 0; i < d->units.n; i++) {
    const ts_report_unit *u = &d->units.v[i];
    if (strchr(u->unit, '#')) continue; /* a shard: part of its slide */
    feat_slide *f = &d->v[d->n++];
    f->u = u;
    f->tiles = f->dim = f->bad = -1;
    if (!strcmp(u->state, "failed")) d->failed++;
    else if (strcmp(u->state, "done")) d->pending++;
    else d->done++;
    char path[TS_PATH_MAX];
    ts_report_h5 h;
    if (!strcmp(u->state, "done") && u->output[0] && ts_report_path(r, u->output, path, sizeof path) == 0 &&
        ts_report_h5_open(path, "features", &h) == 0) {
      f->tiles = h.rows;
      f->dim = h.cols;
      ts_report_h5_str(&h, "encoder", f->encoder, sizeof f->encoder);
      ts_report_h5_str(&h, "weights_hash", f->weights_hash, sizeof f->weights_hash);
      if (!ts_report_h5_i64(&h, "n_bad_tiles", &f->bad)) f->bad = -1;
      ts_report_h5_close(&h);
      d->tiles_total += f->tiles;
      d->bad_total += f->bad > 0 ? f->bad : 0;
      if (!d->encoder[0]) {
        snprintf(d->encoder, sizeof d->encoder, "%s", f->encoder);
        snprintf(d->weights_hash, sizeof d->weights_hash, "%s", f->weights_hash);
        d->dim = f->dim;
      } else if (strcmp(d->encoder, f->encoder) || strcmp(d->weights_hash, f->weights_hash) || d->dim != f->dim) {
        d->mixed = true;
      }
    }
  }
  *data_out = d;
  return 1;
}

static int feat_json(const ts_report *r, const void *data, ts_report_out *o) {
  (void)r;
  const feat_data *d = data;
  ts_report_json_str(o, "encoder", d->encoder[0] ? d->encoder : NULL);
  if (d->dim >= 0) ts_report_json_int(o, "feature_dim", d->dim);
  else ts_report_json_null(o, "feature_dim");
  ts_report_json_str(o, "weights_hash", d->weights_hash[0] ? d->weights_hash : NULL);
  ts_report_json_bool(o, "mixed", d->mixed);
  ts_report_json_str(o, "note", d->info.note[0] ? d->info.note : NULL);
  ts_report_json_int(o, "tiles_total", d->tiles_total);
  ts_report_json_int(o, "bad_tiles_total", d->bad_total);
  ts_report_json_array(o, "slides");
  for (int i = 0; i < d->n; i++) {
    const feat_slide *f = &d->v[i];
    ts_report_json_object(o, NULL);
    ts_report_json_str(o, "slide_id", f->u->unit);
    ts_report_json_str(o, "status", f->u->state);
    ts_report_json_str(o, "path", f->u->output[0] ? f->u->output : NULL);
    if (f->tiles >= 0) ts_report_json_int(o, "tiles", f->tiles);
    else ts_report_json_null(o, "tiles");
    if (f->bad >= 0) ts_report_json_int(o, "bad_tiles", f->bad);
    else ts_report_json_null(o, "bad_tiles");
    if (f->dim >= 0) ts_report_json_int(o, "feature_dim", f->dim);
    else ts_report_json_null(o, "feature_dim");
    ts_report_json_str(o, "encoder", f->encoder[0] ? f->encoder : NULL);
    ts_report_json_end(o);
  }
  ts_report_json_end(o);
  return 0;
}

static int feat_repro(const ts_report *r, const void *data, enum ts_report_repro_part part, ts_report_out *o) {
  (void)r;
  const feat_data *d = data;
  if (part != TS_REPORT_ENCODERS || !d->encoder[0]) return 0;
  /* every distinct (encoder, weights) pair, in slide order */
  for (int i = 0; i < d->n; i++) {
    const feat_slide *f = &d->v[i];
    if (!f->encoder[0]) continue;
    bool seen = false;
    for (int k = 0; k < i && !seen; k++)
      seen = !strcmp(d->v[k].encoder, f->encoder) && !strcmp(d->v[k].weights_hash, f->weights_hash);
    if (seen) continue;
    ts_report_json_object(o, NULL);
    ts_report_json_str(o, "name", f->encoder);
    ts_report_json_str(o, "sha256", f->weights_hash);
    ts_report_json_str(o, "stage", "extract");
    ts_report_json_end(o);
  }
  return 0;
}

static int feat_html(const ts_report *r, const void *data, ts_report_out *o) {
  (void)r;
  const feat_data *d = data;
  if (d->info.note[0]) {
    ts_report_html(o, "<p class=\"warn\">Not run: ");
    ts_report_html_text(o, d->info.note);
    ts_report_html(o, "</p>\n");
  }
  ts_report_html(o, "<table class=\"kv\" id=\"features-summary\">");
  ts_report_html(o, "<tr><th>encoder</th><td id=\"encoder\">");
  ts_report_html_text(o, d->encoder[0] ? d->encoder : "–");
  ts_report_html(o, "</td></tr><tr><th>feature width</th><td id=\"feature-dim\">");
  if (d->dim >= 0) ts_report_html(o, "%lld", (long long)d->dim);
  else ts_report_html(o, "–");
  ts_report_html(o, "</td></tr><tr><th>weights SHA-256</th><td class=\"hash\">");
  ts_report_html_text(o, d->weights_hash[0] ? d->weights_hash : "–");
  ts_report_html(o, "</td></tr><tr><th>slides</th><td>%lld done, %lld failed, %lld pending</td></tr>"
                    "<tr><th>tiles encoded</th><td>%lld, of which <span class=\"%s\">%lld</span> did not decode (zero rows)</td></tr></table>\n",
                 (long long)d->done, (long long)d->failed, (long long)d->pending, (long long)d->tiles_total,
                 d->bad_total ? "warn" : "ok", (long long)d->bad_total);
  if (d->mixed) ts_report_html(o, "<p class=\"bad\">The feature files do not all have the same encoder, weights and width.</p>\n");
  /* per slide: a compact table, folded (one row per slide: 1,000 rows stay cheap) */
  ts_report_html(o, "<details><summary>Per slide (%d)</summary><table id=\"features-table\"><tr><th>slide</th><th>status</th>"
                    "<th>tiles</th><th>bad tiles</th><th>width</th><th>file</th></tr>\n",
                 d->n);
  for (int i = 0; i < d->n; i++) {
    const feat_slide *f = &d->v[i];
    const char *st = f->u->state;
    ts_report_html(o, "<tr><td>");
    ts_report_html_text(o, f->u->unit);
    ts_report_html(o, "</td><td class=\"%s\">%s</td>", !strcmp(st, "done") ? "ok" : !strcmp(st, "failed") ? "bad" : "warn", st);
    if (f->tiles >= 0) ts_report_html(o, "<td class=\"n\">%lld</td>", (long long)f->tiles);
    else ts_report_html(o, "<td class=\"n\">–</td>");
    if (f->bad >= 0) ts_report_html(o, "<td class=\"n%s\">%lld</td>", f->bad ? " warn" : "", (long long)f->bad);
    else ts_report_html(o, "<td class=\"n\">–</td>");
    if (f->dim >= 0) ts_report_html(o, "<td class=\"n\">%lld</td><td><code>", (long long)f->dim);
    else ts_report_html(o, "<td class=\"n\">–</td><td><code>");
    ts_report_html_text(o, f->u->output);
    ts_report_html(o, "</code></td></tr>\n");
  }
  ts_report_html(o, "</table></details>\n");
  return 0;
}

const struct ts_report_section ts_report_section_features = {.abi = TS_REPORT_SECTION_ABI,
                                                             .name = "features",
                                                             .title = "Features",
                                                             .load = feat_load,
                                                             .release = feat_release,
                                                             .html = feat_html,
                                                             .json = feat_json,
                                                             .repro = feat_repro};
