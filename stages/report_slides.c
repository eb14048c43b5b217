/* report_slides.c — the report section "slides", owned by the tile stage (stages/tile.c lists
 * it in .report): per slide of the cohort, QC thumbnails (tissue mask outline, tile grid), tile
 * count, level-0 mpp and its source, tissue area, bad tiles, warnings (SLIDE_NO_TILES: a blank
 * slide is marked, never green and silent) and failures of any stage with their tokens.
 *
 * Facts come from the ledger through the report's read API (units of every stage, grouped by
 * slide: a unit "<slide>#<part>" is a part of the slide's unit) and from the attributes the
 * tile stage wrote into tiles/<slide>.h5 (coords: mpp_level0, mpp_source, slide_quickhash) and
 * the tissue stage into tissue/<slide>.h5 (mask: mpp). It opens no slide. The quickhashes go
 * to reproducibility.inputs.slides (the repro hook), which `tessera rerun` checks.
 *
 * The page stays usable for a 1,000-slide run: index.html shows the first SLIDES_PER_PAGE
 * slides and links report/slides-<k>.html, pages of SLIDES_PER_PAGE; images are JPEG
 * thumbnails (report/thumbs/) linking the full-size QC PNGs. report.json keeps every slide. */
#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_error.h"
#include "ts_io.h"
#include "ts_report.h"
#include "ts_stage.h"

#define SLIDES_PER_PAGE 100

typedef struct slide_info {
  char *id, *patient, *path;
  const ts_report_unit *tissue, *tile; /* NULL: no such unit */
  int64_t tiles;                       /* rows of coords, -1 unknown */
  double mpp0, tissue_mm2;             /* NaN unknown */
  char mpp_source[32], quickhash[96];
  int64_t bad_tiles;                   /* tiles that did not decode (any unit of the slide) */
  GPtrArray *failed, *warned;          /* const ts_report_unit * of the slide's units */
} slide_info;

typedef struct slides_data {
  ts_report_units all;
  int n;
  slide_info *v;
  int64_t tiles_total;
  int n_failed, n_warned;
} slides_data;

static void slides_release(void *p) {
  slides_data *d = p;
  if (!d) return;
  for (int i = 0; i < d->n; i++) {
    free(d->v[i].id);
    free(d->v[i].patient);
    free(d->v[i].path);
    if (d->v[i].failed) g_ptr_array_free(d->v[i].failed, TRUE);
    if (d->v[i].warned) g_ptr_array_free(d->v[i].warned, TRUE);
  }
  free(d->v);
  ts_report_units_clear(&d->all);
  free(d);
}

static const char *slide_status(const slide_info *s) {
  if ((s->tissue && !strcmp(s->tissue->state, "failed")) || (s->tile && !strcmp(s->tile->state, "failed"))) return "failed";
  if (s->tile && !strcmp(s->tile->state, "done")) return "done";
  return "pending";
}

/* The token of a note or message ("SLIDE_NO_TILES: ..." → "SLIDE_NO_TILES"), "" none. */
static void token_of(const char *msg, char *buf, size_t n) {
  size_t k = strspn(msg, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
  if (k == 0 || msg[k] != ':' || k >= n) k = 0;
  memcpy(buf, msg, k);
  buf[k] = '\0';
}

/* The slides: the cohort CSV of the config, else the units of the tile stage. */
static int list_slides(const ts_report *r, slides_data *d) {
  const ts_config *cfg = ts_report_config(r);
  ts_cohort c;
  memset(&c, 0, sizeof c);
  char *text = NULL;
  if (cfg->cohort.csv && ts_io_read_all(cfg->cohort.csv, &text, NULL) == 0 && ts_cohort_parse(cfg->cohort.csv, text, &c) == 0) {
    d->v = calloc((size_t)(c.n ? c.n : 1), sizeof *d->v);
    for (int i = 0; d->v && i < c.n; i++, d->n++) {
      d->v[i].id = strdup(c.rows[i].slide_id);
      d->v[i].patient = c.rows[i].patient_id && c.rows[i].patient_id[0] ? strdup(c.rows[i].patient_id) : NULL;
      d->v[i].path = c.rows[i].path && c.rows[i].path[0] ? strdup(c.rows[i].path) : NULL;
    }
  } else {
    ts_error_clear();
    int64_t n = 0;
    for (int64_t i = 0; i < d->all.n; i++) n += !strcmp(d->all.v[i].stage, "tile");
    d->v = calloc((size_t)(n ? n : 1), sizeof *d->v);
    for (int64_t i = 0; d->v && i < d->all.n; i++)
      if (!strcmp(d->all.v[i].stage, "tile")) d->v[d->n++].id = strdup(d->all.v[i].unit);
  }
  free(text);
  ts_cohort_clear(&c);
  if (!d->v) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report slides");
  return 0;
}

static void read_facts(const ts_report *r, slide_info *s) {
  char rel[512], path[TS_PATH_MAX];
  ts_report_h5 h;
  if (s->tile && !strcmp(s->tile->state, "done")) {
    const char *out = s->tile->output;
    size_t len = strlen(out);
    if (len > 3 && !strcmp(out + len - 3, ".h5")) snprintf(rel, sizeof rel, "%s", out);
    else snprintf(rel, sizeof rel, "tiles/%s.h5", s->id);
    if (ts_report_path(r, rel, path, sizeof path) == 0 && ts_report_h5_open(path, "coords", &h) == 0) {
      s->tiles = h.rows;
      s->mpp0 = ts_report_h5_f64(&h, "mpp_level0");
      ts_report_h5_str(&h, "mpp_source", s->mpp_source, sizeof s->mpp_source);
      ts_report_h5_str(&h, "slide_quickhash", s->quickhash, sizeof s->quickhash);
      ts_report_h5_close(&h);
    }
  }
  if (s->tissue && !strcmp(s->tissue->state, "done") && s->tissue->items >= 0) {
    snprintf(rel, sizeof rel, "tissue/%s.h5", s->id);
    if (ts_report_path(r, rel, path, sizeof path) == 0 && ts_report_h5_open(path, "mask", &h) == 0) {
      double mpp = ts_report_h5_f64(&h, "mpp");
      if (isfinite(mpp)) s->tissue_mm2 = (double)s->tissue->items * mpp * mpp * 1e-6;
      ts_report_h5_close(&h);
    }
  }
}

static int slides_load(const ts_report *r, void **data_out) {
  ts_report_stage_info tile;
  TS_CALL(ts_report_stage_info_get(r, "tile", &tile));
  slides_data *d = calloc(1, sizeof *d);
  if (!d) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report slides");
  int rc = 0;
  TS_TRY(ts_report_units_load(r, NULL, &d->all));
  TS_TRY(list_slides(r, d));
  GHashTable *by_id = g_hash_table_new(g_str_hash, g_str_equal);
  for (int i = 0; i < d->n; i++) {
    slide_info *s = &d->v[i];
    s->tiles = -1;
    s->mpp0 = s->tissue_mm2 = NAN;
    s->failed = g_ptr_array_new();
    s->warned = g_ptr_array_new();
    if (!g_hash_table_contains(by_id, s->id)) g_hash_table_insert(by_id, s->id, s);
  }
  /* every unit of every stage named after a slide, or a part of one ("<slide>#...") */
  for (int64_t i = 0; i < d->all.n; i++) {
    const ts_report_unit *u = &d->all.v[i];
    char id[512];
    snprintf(id, sizeof id, "%.*s", (int)strcspn(u->unit, "#"), u->unit);
    slide_info *s = g_hash_table_lookup(by_id, id);
    if (!s) continue;
    bool whole = !strcmp(id, u->unit);
    if (whole && !strcmp(u->stage, "tissue")) s->tissue = u;
    if (whole && !strcmp(u->stage, "tile")) s->tile = u;
    s->bad_tiles += u->bad_items;
    if (!strcmp(u->state, "failed")) g_ptr_array_add(s->failed, (gpointer)u);
    else if (!strcmp(u->state, "done") && u->note[0]) g_ptr_array_add(s->warned, (gpointer)u);
  }
  g_hash_table_destroy(by_id);
  for (int i = 0; i < d->n; i++) {
    slide_info *s = &d->v[i];
    if (ts_id_is_safe(s->id)) read_facts(r, s);
    d->tiles_total += s->tiles > 0 ? s->tiles : 0;
    d->n_failed += !strcmp(slide_status(s), "failed");
    d->n_warned += s->warned->len > 0;
  }
out:
  if (rc < 0) {
    slides_release(d);
    return rc;
  }
  /* left out when the tile stage never ran here (a ledger without it) and no slide is known */
  if (!tile.known && d->n == 0) {
    slides_release(d);
    return 0;
  }
  *data_out = d;
  return 1;
}

static void unit_list_json(ts_report_out *o, const char *key, const GPtrArray *a, bool notes) {
  ts_report_json_array(o, key);
  for (guint k = 0; k < a->len; k++) {
    const ts_report_unit *u = a->pdata[k];
    char tok[64];
    token_of(u->note, tok, sizeof tok);
    ts_report_json_object(o, NULL);
    ts_report_json_str(o, "stage", u->stage);
    ts_report_json_str(o, "unit", u->unit);
    ts_report_json_str(o, "token", notes ? tok : u->error_token);
    ts_report_json_str(o, "message", notes ? u->note : u->error_message);
    ts_report_json_end(o);
  }
  ts_report_json_end(o);
}

static int slides_json(const ts_report *r, const void *data, ts_report_out *o) {
  (void)r;
  const slides_data *d = data;
  ts_report_json_int(o, "count", d->n);
  ts_report_json_int(o, "tiles_total", d->tiles_total);
  ts_report_json_int(o, "warned", d->n_warned);
  ts_report_json_array(o, "slides");
  for (int i = 0; i < d->n; i++) {
    const slide_info *s = &d->v[i];
    ts_report_json_object(o, NULL);
    ts_report_json_str(o, "slide_id", s->id);
    ts_report_json_str(o, "patient_id", s->patient);
    ts_report_json_str(o, "status", slide_status(s));
    if (s->tiles >= 0) ts_report_json_int(o, "tiles", s->tiles);
    else ts_report_json_null(o, "tiles");
    ts_report_json_num(o, "mpp_level0", s->mpp0);
    ts_report_json_str(o, "mpp_source", s->mpp_source[0] ? s->mpp_source : NULL);
    ts_report_json_num(o, "tissue_mm2", s->tissue_mm2);
    ts_report_json_int(o, "bad_tiles", s->bad_tiles);
    unit_list_json(o, "warnings", s->warned, true);
    unit_list_json(o, "failures", s->failed, false);
    ts_report_json_end(o);
  }
  ts_report_json_end(o);
  return 0;
}

static int slides_repro(const ts_report *r, const void *data, enum ts_report_repro_part part, ts_report_out *o) {
  (void)r;
  const slides_data *d = data;
  if (part != TS_REPORT_INPUTS) return 0;
  ts_report_json_array(o, "slides");
  for (int i = 0; i < d->n; i++) {
    ts_report_json_object(o, NULL);
    ts_report_json_str(o, "slide_id", d->v[i].id);
    ts_report_json_str(o, "path", d->v[i].path);
    /* from the tile file: a slide not tiled (failed, pending) has none recorded */
    ts_report_json_str(o, "quickhash", d->v[i].quickhash[0] ? d->v[i].quickhash : NULL);
    ts_report_json_end(o);
  }
  ts_report_json_end(o);
  return 0;
}

/* ---- HTML ---- */

static void slide_card(const ts_report *r, ts_report_out *o, const slide_info *s) {
  (void)r;
  const char *st = slide_status(s);
  bool warned = s->warned->len > 0;
  ts_report_html(o, "<div class=\"slide%s\" id=\"slide-", !strcmp(st, "failed") ? " failed" : warned ? " warned" : "");
  ts_report_html_text(o, s->id);
  ts_report_html(o, "\"><h3>");
  ts_report_html_text(o, s->id);
  ts_report_html(o, "</h3><div class=\"imgs\">");
  if (ts_id_is_safe(s->id)) {
    char src[512], thumb[300];
    const char *dirs[] = {"tissue", "tiles"};
    for (int k = 0; k < 2; k++) {
      snprintf(src, sizeof src, "%s/%s.png", dirs[k], s->id);
      snprintf(thumb, sizeof thumb, "%s.%s", s->id, dirs[k]);
      ts_report_html_thumb(o, src, thumb, src);
    }
  }
  ts_report_html(o, "</div><table class=\"kv\">");
  char buf[128];
  if (s->tiles >= 0) snprintf(buf, sizeof buf, "%lld", (long long)s->tiles);
  else snprintf(buf, sizeof buf, "–");
  ts_report_html(o, "<tr><th>tiles</th><td class=\"tiles\">%s</td></tr>", buf);
  if (isfinite(s->mpp0)) snprintf(buf, sizeof buf, "%.4g µm/px (from %s)", s->mpp0, s->mpp_source[0] ? s->mpp_source : "?");
  else snprintf(buf, sizeof buf, "–");
  ts_report_html(o, "<tr><th>level-0 mpp</th><td>%s</td></tr>", buf);
  if (isfinite(s->tissue_mm2)) snprintf(buf, sizeof buf, "%.2f mm²", s->tissue_mm2);
  else snprintf(buf, sizeof buf, "–");
  ts_report_html(o, "<tr><th>tissue area</th><td>%s</td></tr>", buf);
  if (s->bad_tiles > 0)
    ts_report_html(o, "<tr><th>bad tiles</th><td class=\"warn bad-tiles\">%lld did not decode: zero features (see "
                      "<code>bad_tiles</code>, <code>tessera status</code>)</td></tr>",
                   (long long)s->bad_tiles);
  ts_report_html(o, "<tr><th>status</th><td class=\"status %s\">%s%s</td></tr></table>",
                 !strcmp(st, "failed") ? "bad" : warned ? "warn" : !strcmp(st, "done") ? "ok" : "warn", st,
                 warned ? ", with a warning" : "");
  for (guint k = 0; k < s->warned->len; k++) {
    const ts_report_unit *u = s->warned->pdata[k];
    char tok[64];
    token_of(u->note, tok, sizeof tok);
    ts_report_html(o, "<div class=\"warning\">%s: <span class=\"wtok\">", u->stage);
    ts_report_html_text(o, tok);
    ts_report_html(o, "</span> ");
    ts_report_html_text(o, ts_report_msg_body(tok, u->note));
    ts_report_html(o, "</div>");
  }
  for (guint k = 0; k < s->failed->len; k++) {
    const ts_report_unit *u = s->failed->pdata[k];
    ts_report_html(o, "<div>%s: <span class=\"tok\">", u->stage);
    ts_report_html_text(o, u->error_token);
    ts_report_html(o, "</span> ");
    ts_report_html_text(o, ts_report_msg_body(u->error_token, u->error_message));
    ts_report_html(o, "</div>");
  }
  ts_report_html(o, "</div>\n");
}

typedef struct page_ctx {
  const ts_report *r;
  const slides_data *d;
  int page, pages; /* 1-based */
} page_ctx;

static void pager(ts_report_out *o, int page, int pages) {
  ts_report_html(o, "<p class=\"pager\">Pages of %d slides: ", SLIDES_PER_PAGE);
  for (int k = 1; k <= pages; k++) {
    if (k == page) ts_report_html(o, "<b>%d</b>", k);
    else ts_report_html(o, "<a href=\"slides-%d.html\">%d</a>", k, k);
  }
  ts_report_html(o, "</p>\n");
}

static void cards(ts_report_out *o, const page_ctx *c) {
  int a = (c->page - 1) * SLIDES_PER_PAGE, b = a + SLIDES_PER_PAGE < c->d->n ? a + SLIDES_PER_PAGE : c->d->n;
  ts_report_html(o, "<div class=\"slides\">\n");
  for (int i = a; i < b; i++) slide_card(c->r, o, &c->d->v[i]);
  ts_report_html(o, "</div>\n");
}

static int page_body(void *ctx, ts_report_out *o) {
  const page_ctx *c = ctx;
  int a = (c->page - 1) * SLIDES_PER_PAGE + 1, b = c->page * SLIDES_PER_PAGE < c->d->n ? c->page * SLIDES_PER_PAGE : c->d->n;
  ts_report_html(o, "<section id=\"slides\"><h2>Slides %d–%d of %d</h2>\n", a, b, c->d->n);
  pager(o, c->page, c->pages);
  cards(o, c);
  pager(o, c->page, c->pages);
  ts_report_html(o, "</section>\n");
  return 0;
}

static int slides_html(const ts_report *r, const void *data, ts_report_out *o) {
  const slides_data *d = data;
  ts_report_html(o, "<p><b id=\"slide-count\">%d</b> slides, <b id=\"tiles-total\">%lld</b> tiles, "
                    "<b class=\"%s\" id=\"slides-failed\">%d</b> failed, <b class=\"%s\" id=\"slides-warned\">%d</b> with a warning. "
                    "Left: tissue QC (mask outline); right: the tile grid (click for the full-size image).</p>\n",
                 d->n, (long long)d->tiles_total, d->n_failed ? "bad" : "ok", d->n_failed, d->n_warned ? "warn" : "ok", d->n_warned);
  int pages = (d->n + SLIDES_PER_PAGE - 1) / SLIDES_PER_PAGE;
  page_ctx c = {r, d, 1, pages};
  if (pages > 1) {
    for (int k = 1; k <= pages; k++) {
      char file[64], title[64];
      snprintf(file, sizeof file, "slides-%d.html", k);
      snprintf(title, sizeof title, "tessera slides, page %d of %d", k, pages);
      c.page = k;
      TS_CALL(ts_report_html_page(o, file, title, page_body, &c));
    }
    c.page = 1;
    pager(o, 1, pages);
  }
  cards(o, &c);
  return 0;
}

const struct ts_report_section ts_report_section_slides = {.abi = TS_REPORT_SECTION_ABI,
                                                           .name = "slides",
                                                           .title = "Slides",
                                                           .load = slides_load,
                                                           .release = slides_release,
                                                           .html = slides_html,
                                                           .json = slides_json,
                                                           .repro = slides_repro};
