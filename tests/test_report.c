/* test_report.c — the run report: the JSON reader, the HDF5 content hash, the portable config
 * hash, a report written from a small ledger read back with the reader (round trip: run
 * outcome, stage sections from the registry, unit warnings), the slides pages of a large
 * cohort, and the section table's checks (a stage section of another ABI is refused). */
#include <CUnit/CUnit.h>
#include <glib.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5util.h"
#include "ts_config.h"
#include "ts_error.h"
#include "ts_io.h"
#include "ts_ledger.h"
#include "ts_report.h"
#include "ts_stage.h"

static char dir[256];

static int setup(void) {
  snprintf(dir, sizeof dir, "/tmp/ts_test_report_XXXXXX");
  return mkdtemp(dir) ? 0 : 1;
}
static int teardown(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : 1;
}

static void test_report_json_reader(void) {
  ts_json j;
  const char *text = "{\"a\": {\"b\": [1, 2.5e3, -0.25, true, null]}, \"s\": \"x\\\"y\\n\\u00e9\\ud83d\\ude00\", \"e\": {}, \"z\": []}";
  CU_ASSERT_EQUAL_FATAL(ts_json_parse(text, &j), 0);
  const ts_json *b = ts_json_get(&j, "a.b");
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  CU_ASSERT_EQUAL(b->type, TS_JARR);
  CU_ASSERT_EQUAL(b->n, 5);
  CU_ASSERT_DOUBLE_EQUAL(b->kids[1].num, 2500, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(b->kids[2].num, -0.25, 1e-12);
  CU_ASSERT_EQUAL(b->kids[3].type, TS_JBOOL);
  CU_ASSERT_EQUAL(b->kids[4].type, TS_JNULL);
  CU_ASSERT_STRING_EQUAL(ts_json_str(&j, "s"), "x\"y\n\xc3\xa9\xf0\x9f\x98\x80");
  CU_ASSERT_EQUAL(ts_json_get(&j, "e")->n, 0);
  CU_ASSERT_PTR_NULL(ts_json_get(&j, "a.c"));
  CU_ASSERT_PTR_NULL(ts_json_str(&j, "a.b"));
  ts_json_clear(&j);
  const char *bad[] = {"{\"a\": }", "[1, 2", "{\"a\" 1}", "\"open", "{} x", "nul", NULL};
  for (int i = 0; bad[i]; i++) {
    CU_ASSERT(ts_json_parse(bad[i], &j) < 0);
    CU_ASSERT_STRING_EQUAL(ts_error_token(), "REPORT_JSON");
  }
}

static void test_report_portable_config_hash(void) {
  const char *a = "# header\nrun:\n  dir: \"/x/run1\"\n  seed: 1\ncohort:\n  csv: \"/c.csv\"\ntile:\n  size: 256\n";
  const char *b = "# other header\nrun:\n  dir: \"/y/run2\"\n  seed: 1\ncohort:\n  csv: \"/c.csv\"\ntile:\n  size: 256\n";
  const char *c = "run:\n  dir: \"/x/run1\"\n  seed: 1\ncohort:\n  csv: \"/c.csv\"\ntile:\n  size: 128\n";
  const char *d = "run:\n  dir: \"/x/run1\"\n  seed: 2\ncohort:\n  csv: \"/c.csv\"\ntile:\n  size: 256\n";
  char ha[65], hb[65], hc[65], hd[65];
  ts_report_config_portable_sha256(a, ha);
  ts_report_config_portable_sha256(b, hb);
  ts_report_config_portable_sha256(c, hc);
  ts_report_config_portable_sha256(d, hd);
  CU_ASSERT_STRING_EQUAL(ha, hb);
  CU_ASSERT_STRING_NOT_EQUAL(ha, hc);
  CU_ASSERT_STRING_NOT_EQUAL(ha, hd);
}

static int write_h5(const char *path, const char *save_path, double mpp, int64_t last) {
  hid_t f = ts__h5_create(path);
  if (f < 0) return -1;
  hsize_t dims[2] = {3, 2};
  int64_t coords[6] = {0, 0, 256, 0, 512, last};
  hid_t sp = H5Screate_simple(2, dims, NULL);
  hid_t dcpl = ts__h5_dcpl(0, 0, 0, 0);
  hid_t d = H5Dcreate2(f, "coords", H5T_STD_I64LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  int rc = d < 0 ? -1 : 0;
  if (!rc) rc = H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, coords) < 0 ? -1 : 0;
  if (!rc) rc = ts__h5_attr_str(d, "save_path", save_path);
  if (!rc) rc = ts__h5_attr_str(d, "config_hash", save_path);
  if (!rc) rc = ts__h5_attr_f64(d, "mpp_level0", mpp);
  if (!rc) rc = ts__h5_attr_str(d, "mpp_source", "file");
  if (d >= 0) H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(sp);
  H5Fclose(f);
  return rc;
}

static void test_report_h5_content_hash_ignores_run_attrs(void) {
  char p1[300], p2[300], p3[300], p4[300], h1[65], h2[65], h3[65], h4[65], s1[65], s2[65];
  snprintf(p1, sizeof p1, "%s/a.h5", dir);
  snprintf(p2, sizeof p2, "%s/b.h5", dir);
  snprintf(p3, sizeof p3, "%s/c.h5", dir);
  snprintf(p4, sizeof p4, "%s/d.h5", dir);
  CU_ASSERT_EQUAL_FATAL(write_h5(p1, "/runs/one/tiles", 0.25, 7), 0);
  CU_ASSERT_EQUAL_FATAL(write_h5(p2, "/other/run/dir/tiles", 0.25, 7), 0);
  CU_ASSERT_EQUAL_FATAL(write_h5(p3, "/runs/one/tiles", 0.5, 7), 0);
  CU_ASSERT_EQUAL_FATAL(write_h5(p4, "/runs/one/tiles", 0.25, 8), 0);
  int64_t n = 0;
  CU_ASSERT_EQUAL(ts_io_sha256_file(p1, s1, &n), 0);
  CU_ASSERT_EQUAL(ts_io_sha256_file(p2, s2, &n), 0);
  CU_ASSERT_STRING_NOT_EQUAL(s1, s2); /* the bytes differ ... */
  CU_ASSERT_EQUAL(ts_report_h5_content_sha256(p1, h1), 0);
  CU_ASSERT_EQUAL(ts_report_h5_content_sha256(p2, h2), 0);
  CU_ASSERT_EQUAL(ts_report_h5_content_sha256(p3, h3), 0);
  CU_ASSERT_EQUAL(ts_report_h5_content_sha256(p4, h4), 0);
  CU_ASSERT_STRING_EQUAL(h1, h2);     /* ... the content does not */
  CU_ASSERT_STRING_NOT_EQUAL(h1, h3); /* an attribute that matters */
  CU_ASSERT_STRING_NOT_EQUAL(h1, h4); /* the data */
  CU_ASSERT(ts_report_h5_content_sha256("/nonexistent.h5", h1) < 0);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "REPORT_IO");
}

/* A run directory made by hand: config + ledger with one stage, a done and a failed unit. */
static void test_report_write_round_trip(void) {
  char rd[300], p[400], csv[400], yaml[400];
  snprintf(rd, sizeof rd, "%s/run", dir);
  CU_ASSERT_EQUAL_FATAL(ts_io_mkdirs(rd, 0755), 0);
  snprintf(csv, sizeof csv, "%s/cohort.csv", dir);
  const char *c = "slide_id,patient_id,path\nS1,P1,/nonexistent/S1.svs\nS2,P2,/nonexistent/S2.svs\n";
  CU_ASSERT_EQUAL_FATAL(ts_io_write_atomic(csv, c, strlen(c)), 0);
  snprintf(yaml, sizeof yaml, "%s/config.yaml", dir);
  char y[1024];
  snprintf(y, sizeof y, "run:\n  dir: run\n  seed: 42\ncohort:\n  csv: cohort.csv\n");
  CU_ASSERT_EQUAL_FATAL(ts_io_write_atomic(yaml, y, strlen(y)), 0);
  ts_config *cfg = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_config_load(yaml, NULL, 0, &cfg), 0);
  snprintf(p, sizeof p, "%s/config.yaml", rd);
  CU_ASSERT_EQUAL_FATAL(ts_io_write_atomic(p, cfg->text, strlen(cfg->text)), 0);
  snprintf(p, sizeof p, "%s/ledger.sqlite", rd);
  ts_ledger *l = NULL;
  int64_t run_id = 0;
  bool reset = false;
  CU_ASSERT_EQUAL_FATAL(ts_ledger_open(p, false, &l), 0);
  CU_ASSERT_EQUAL(ts_ledger_run_begin(l, cfg->hash, "tessera run config.yaml", 2, "h1,h2", "0.1.0", &run_id), 0);
  CU_ASSERT_EQUAL(ts_ledger_stage_prepare(l, "tissue", 0, "abc", &reset), 0);
  CU_ASSERT_EQUAL(ts_ledger_unit_add(l, "tissue", "S1", 0), 0);
  CU_ASSERT_EQUAL(ts_ledger_unit_add(l, "tissue", "S2", 1), 0);
  ts_unit_record rec = {.seconds = 1.5, .items = 10};
  CU_ASSERT_EQUAL(ts_ledger_unit_done(l, "tissue", "S1", 1, 2, run_id, &rec), 0);
  CU_ASSERT_EQUAL(ts_ledger_unit_failed(l, "tissue", "S2", 0, 1, run_id, 0.5, "SLIDE_MISSING", "SLIDE_MISSING: <gone> & \"quoted\""), 0);
  CU_ASSERT_EQUAL(ts_ledger_stage_times(l, "tissue", "2026-01-01T00:00:00Z", "2026-01-01T00:00:02Z", 2.0), 0);
  /* a blank slide: the tile unit is done with 0 tiles and a note */
  CU_ASSERT_EQUAL(ts_ledger_stage_prepare(l, "tile", 1, "def", &reset), 0);
  CU_ASSERT_EQUAL(ts_ledger_unit_add(l, "tile", "S1", 0), 0);
  ts_unit_record rt = {.seconds = 0.5, .items = 0};
  ts_unit_note(&rt, "SLIDE_NO_TILES: slide S1: no tile has tissue");
  CU_ASSERT_EQUAL(ts_ledger_unit_done(l, "tile", "S1", 0, 1, run_id, &rt), 0);
  /* a stage left out, with why */
  CU_ASSERT_EQUAL(ts_ledger_stage_prepare(l, "extract", 2, "ghi", &reset), 0);
  CU_ASSERT_EQUAL(ts_ledger_stage_note(l, "extract", "no encoder today"), 0);

  /* while the run goes on (no end recorded yet): in progress */
  ts_report_opts o = {.peak_rss_kb = 1234, .quiet = true};
  char *text = NULL;
  ts_json j;
  CU_ASSERT_EQUAL_FATAL(ts_report_build_json(rd, ts_stages, &text), 0);
  CU_ASSERT_EQUAL_FATAL(ts_json_parse(text, &j), 0);
  CU_ASSERT_EQUAL(ts_json_get(&j, "run.in_progress")->type, TS_JBOOL);
  CU_ASSERT(ts_json_get(&j, "run.in_progress")->num != 0);
  CU_ASSERT_EQUAL(ts_json_get(&j, "run.finished")->type, TS_JNULL);
  CU_ASSERT_EQUAL(ts_json_get(&j, "run.exit_code")->type, TS_JNULL);
  ts_json_clear(&j);
  free(text);
  CU_ASSERT_EQUAL(ts_ledger_run_end(l, run_id, 1), 0);
  ts_ledger_close(&l);

  CU_ASSERT_EQUAL_FATAL(ts_report_write(rd, ts_stages, &o), 0);
  snprintf(p, sizeof p, "%s/report/report.json", rd);
  CU_ASSERT_EQUAL_FATAL(ts_io_read_all(p, &text, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(ts_json_parse(text, &j), 0);
  /* finished: the outcome the driver recorded */
  CU_ASSERT(ts_json_get(&j, "run.in_progress")->num == 0);
  CU_ASSERT_EQUAL(ts_json_get(&j, "run.finished")->type, TS_JSTR);
  CU_ASSERT_DOUBLE_EQUAL(ts_json_get(&j, "run.exit_code")->num, 1, 0);
  CU_ASSERT_STRING_EQUAL(ts_json_str(&j, "schema"), TS_REPORT_SCHEMA);
  CU_ASSERT_STRING_EQUAL(ts_json_str(&j, "run.config_hash"), cfg->hash);
  CU_ASSERT_DOUBLE_EQUAL(ts_json_get(&j, "run.rank0_peak_rss_kb")->num, 1234, 0);
  CU_ASSERT_DOUBLE_EQUAL(ts_json_get(&j, "run.ranks")->num, 2, 0);
  const ts_json *seeds = ts_json_get(&j, "reproducibility.seeds"); /* its key "run.seed" has a dot */
  CU_ASSERT(seeds && seeds->n == 1 && seeds->kids[0].num == 42);
  const ts_json *st = ts_json_get(&j, "stages.stages");
  CU_ASSERT_FATAL(st && st->n == 3);
  CU_ASSERT_STRING_EQUAL(ts_json_str(&st->kids[0], "items_unit"), "slides"); /* from the registry */
  CU_ASSERT_DOUBLE_EQUAL(ts_json_get(&st->kids[1], "warnings")->num, 1, 0);
  CU_ASSERT_STRING_EQUAL(ts_json_str(&st->kids[2], "note"), "no encoder today");
  CU_ASSERT_DOUBLE_EQUAL(ts_json_get(&st->kids[0], "units.done")->num, 1, 0);
  CU_ASSERT_DOUBLE_EQUAL(ts_json_get(&st->kids[0], "units.failed")->num, 1, 0);
  CU_ASSERT_DOUBLE_EQUAL(ts_json_get(&st->kids[0], "units.retried")->num, 1, 0);
  CU_ASSERT_DOUBLE_EQUAL(ts_json_get(&st->kids[0], "items_per_s")->num, 5, 1e-12);
  const ts_json *pr = ts_json_get(&st->kids[0], "per_rank");
  CU_ASSERT_FATAL(pr && pr->n == 2);
  CU_ASSERT_DOUBLE_EQUAL(ts_json_get(&pr->kids[1], "busy_seconds")->num, 1.5, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(ts_json_get(&j, "failures.by_token.SLIDE_MISSING")->num, 1, 0);
  const ts_json *sl = ts_json_get(&j, "slides.slides");
  CU_ASSERT_FATAL(sl && sl->n == 2);
  CU_ASSERT_STRING_EQUAL(ts_json_str(&sl->kids[1], "status"), "failed");
  CU_ASSERT_STRING_EQUAL(ts_json_str(&ts_json_get(&sl->kids[1], "failures")->kids[0], "message"), "SLIDE_MISSING: <gone> & \"quoted\"");
  /* the blank slide is marked, in the slides section and among the failures' warnings */
  const ts_json *w = ts_json_get(&sl->kids[0], "warnings");
  CU_ASSERT_FATAL(w && w->n == 1);
  CU_ASSERT_STRING_EQUAL(ts_json_str(&w->kids[0], "token"), "SLIDE_NO_TILES");
  CU_ASSERT_DOUBLE_EQUAL(ts_json_get(&j, "slides.warned")->num, 1, 0);
  const ts_json *fw = ts_json_get(&j, "failures.warnings");
  CU_ASSERT(fw && fw->n == 1 && !strcmp(ts_json_str(&fw->kids[0], "unit"), "S1"));
  /* the sections: the core's, then the stages' in registry order (extract's: it is in the ledger) */
  const ts_json *secs = ts_json_get(&j, "sections");
  CU_ASSERT_FATAL(secs && secs->n == 6);
  const char *want[] = {"run", "stages", "failures", "reproducibility", "slides", "features"};
  for (int i = 0; i < 6; i++) CU_ASSERT_STRING_EQUAL(secs->kids[i].str, want[i]);
  CU_ASSERT_STRING_EQUAL(ts_json_str(&j, "features.note"), "no encoder today");
  const ts_json *in = ts_json_get(&j, "reproducibility.inputs.slides");
  CU_ASSERT(in && in->n == 2 && ts_json_get(&in->kids[0], "quickhash")->type == TS_JNULL); /* no tile file */
  ts_json_clear(&j);
  free(text);
  /* the page escapes what it shows and references nothing outside itself */
  snprintf(p, sizeof p, "%s/report/index.html", rd);
  CU_ASSERT_EQUAL_FATAL(ts_io_read_all(p, &text, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "&lt;gone&gt; &amp; &quot;quoted&quot;"));
  CU_ASSERT_PTR_NULL(strstr(text, "<gone>"));
  CU_ASSERT_PTR_NULL(strstr(text, "http://"));
  CU_ASSERT_PTR_NULL(strstr(text, "<script"));
  CU_ASSERT_PTR_NULL(strstr(text, "running"));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "exit code 1"));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "class=\"slide warned\" id=\"slide-S1\""));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "SLIDE_NO_TILES"));
  CU_ASSERT_PTR_NULL(strstr(text, "data:image")); /* thumbnails are files, not embedded */
  free(text);
  /* in-memory build = the same facts */
  CU_ASSERT_EQUAL(ts_report_build_json(rd, ts_stages, &text), 0);
  CU_ASSERT_EQUAL(ts_json_parse(text, &j), 0);
  CU_ASSERT_STRING_EQUAL(ts_json_str(&j, "run_dir"), rd);
  ts_json_clear(&j);
  free(text);
  /* without a registry: the generic sections only */
  CU_ASSERT_EQUAL(ts_report_build_json(rd, NULL, &text), 0);
  CU_ASSERT_EQUAL(ts_json_parse(text, &j), 0);
  CU_ASSERT(ts_json_get(&j, "sections")->n == 4 && !ts_json_get(&j, "slides"));
  ts_json_clear(&j);
  free(text);
  CU_ASSERT(ts_report_write(dir, ts_stages, &o) < 0); /* no ledger */
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "REPORT_NO_LEDGER");
  ts_config_free(&cfg);
}

/* A cohort too large for one page: index.html shows the first 100 and links every page; the
 * JSON keeps every slide. A stage section of another ABI is refused before anything is read. */
static void test_report_slides_pages(void) {
  char rd[300], p[400], csv[400], yaml[400];
  snprintf(rd, sizeof rd, "%s/big", dir);
  CU_ASSERT_EQUAL_FATAL(ts_io_mkdirs(rd, 0755), 0);
  snprintf(csv, sizeof csv, "%s/big.csv", dir);
  GString *c = g_string_new("slide_id,patient_id,path\n");
  for (int i = 0; i < 250; i++) g_string_append_printf(c, "B%04d,P%04d,/nonexistent/B%04d.svs\n", i, i, i);
  CU_ASSERT_EQUAL_FATAL(ts_io_write_atomic(csv, c->str, c->len), 0);
  g_string_free(c, TRUE);
  snprintf(yaml, sizeof yaml, "%s/big.yaml", dir);
  const char *y = "run:\n  dir: big\ncohort:\n  csv: big.csv\n";
  CU_ASSERT_EQUAL_FATAL(ts_io_write_atomic(yaml, y, strlen(y)), 0);
  ts_config *cfg = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_config_load(yaml, NULL, 0, &cfg), 0);
  snprintf(p, sizeof p, "%s/config.yaml", rd);
  CU_ASSERT_EQUAL_FATAL(ts_io_write_atomic(p, cfg->text, strlen(cfg->text)), 0);
  snprintf(p, sizeof p, "%s/ledger.sqlite", rd);
  ts_ledger *l = NULL;
  int64_t run_id = 0;
  bool reset = false;
  CU_ASSERT_EQUAL_FATAL(ts_ledger_open(p, false, &l), 0);
  CU_ASSERT_EQUAL(ts_ledger_run_begin(l, cfg->hash, "tessera run big.yaml", 1, "h1", "0.1.0", &run_id), 0);
  CU_ASSERT_EQUAL(ts_ledger_stage_prepare(l, "tile", 1, "def", &reset), 0);
  CU_ASSERT_EQUAL(ts_ledger_run_end(l, run_id, 0), 0);
  ts_ledger_close(&l);
  ts_report_opts o = {.quiet = true};
  CU_ASSERT_EQUAL_FATAL(ts_report_write(rd, ts_stages, &o), 0);
  char *text = NULL;
  snprintf(p, sizeof p, "%s/report/index.html", rd);
  CU_ASSERT_EQUAL_FATAL(ts_io_read_all(p, &text, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "id=\"slide-B0099\""));
  CU_ASSERT_PTR_NULL(strstr(text, "id=\"slide-B0100\""));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "href=\"slides-3.html\""));
  free(text);
  for (int k = 1; k <= 3; k++) {
    snprintf(p, sizeof p, "%s/report/slides-%d.html", rd, k);
    CU_ASSERT_EQUAL_FATAL(ts_io_read_all(p, &text, NULL), 0);
    char want[64];
    snprintf(want, sizeof want, "id=\"slide-B%04d\"", (k - 1) * 100);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, want));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "href=\"index.html#run\""));
    free(text);
  }
  snprintf(p, sizeof p, "%s/report/slides-4.html", rd);
  CU_ASSERT(!ts_io_exists(p));
  ts_json j;
  snprintf(p, sizeof p, "%s/report/report.json", rd);
  CU_ASSERT_EQUAL_FATAL(ts_io_read_all(p, &text, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(ts_json_parse(text, &j), 0);
  CU_ASSERT(ts_json_get(&j, "slides.slides")->n == 250);
  ts_json_clear(&j);
  free(text);
  /* a registry whose stage brings a section of ABI 1 */
  static const struct ts_report_section old = {.abi = 1, .name = "old", .html = NULL, .json = NULL};
  static const struct ts_report_section *const olds[] = {&old, NULL};
  static const struct ts_stage st = {.abi = TS_STAGE_ABI, .name = "olden", .report = olds};
  const struct ts_stage *const reg[] = {&st, NULL};
  CU_ASSERT(ts_report_build_json(rd, reg, &text) < 0);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "REPORT_SECTION");
  ts_error_clear();
  ts_config_free(&cfg);
}

int ts_test_register(void) {
  CU_pSuite s = CU_add_suite("report", setup, teardown);
  if (!s) return -1;
  if (!CU_add_test(s, "test_report_json_reader", test_report_json_reader) ||
      !CU_add_test(s, "test_report_portable_config_hash", test_report_portable_config_hash) ||
      !CU_add_test(s, "test_report_h5_content_hash_ignores_run_attrs", test_report_h5_content_hash_ignores_run_attrs) ||
      !CU_add_test(s, "test_report_write_round_trip", test_report_write_round_trip) ||
      !CU_add_test(s, "test_report_slides_pages", test_report_slides_pages))
    return -1;
  return 0;
}
