/* section_repro.c — the report's "reproducibility" section: the resolved config and its
 * hashes, the seeds, the library versions, the inputs (the cohort CSV's SHA-256, and what each
 * stage's own section adds: the tile stage's slides with their quickhashes), the encoders
 * (what the stages that use one add) and every recorded output with its SHA-256 and, for
 * HDF5, its content hash. What `tessera rerun` and `tessera compare` read. Generic: the
 * stage-specific parts come from the sections' repro hooks (ts_report.h).
 *
 * The content hashes are computed once, in load (they read every output), and written to
 * report.json; the page shows the ledger's checksums. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_error.h"
#include "ts_io.h"
#include "ts_report.h"
#include "ts_report_internal.h"
#include "ts_version.h"

typedef struct out_row {
  char *stage, *unit, *path, *sha256;
  int64_t bytes;
  char content[65]; /* "" null (too large) */
} out_row;

typedef struct repro_data {
  char portable[65], csv_sha[65];
  int64_t csv_bytes;
  bool csv_ok;
  int n, cap;
  out_row *v;
  ts_report_env env;
} repro_data;

static void repro_release(void *p) {
  repro_data *d = p;
  if (!d) return;
  for (int i = 0; i < d->n; i++) {
    free(d->v[i].stage);
    free(d->v[i].unit);
    free(d->v[i].path);
    free(d->v[i].sha256);
  }
  free(d->v);
  free(d);
}

typedef struct out_ctx {
  const ts_report *r;
  repro_data *d;
} out_ctx;

static int add_output(void *ctx, const ts_report_output *op) {
  out_ctx *c = ctx;
  repro_data *d = c->d;
  if (d->n == d->cap) {
    out_row *nv = realloc(d->v, sizeof *nv * (size_t)(d->cap = d->cap ? 2 * d->cap : 64));
    if (!nv) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report outputs");
    d->v = nv;
  }
  out_row *o = &d->v[d->n++];
  memset(o, 0, sizeof *o);
  o->stage = strdup(op->stage);
  o->unit = strdup(op->unit);
  o->path = strdup(op->path);
  o->sha256 = strdup(op->checksum);
  o->bytes = op->bytes;
  if (!o->stage || !o->unit || !o->path || !o->sha256) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report outputs");
  size_t len = strlen(op->path);
  bool h5 = len > 3 && !strcmp(op->path + len - 3, ".h5");
  char path[TS_PATH_MAX];
  if (h5 && op->bytes > TS_REPORT_CONTENT_HASH_MAX) o->content[0] = '\0';
  else if (h5 && ts_report_path(c->r, op->path, path, sizeof path) == 0 && ts_report_h5_content_sha256(path, o->content) == 0) {
  } else {
    ts_error_clear();
    snprintf(o->content, sizeof o->content, "%s", op->checksum);
  }
  return 0;
}

static int repro_load(const ts_report *r, void **data_out) {
  repro_data *d = calloc(1, sizeof *d);
  if (!d) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report reproducibility");
  const ts_config *cfg = ts_report_config(r);
  ts_report_env_get(&d->env);
  ts_report_config_portable_sha256(cfg->text, d->portable);
  d->csv_ok = cfg->cohort.csv && ts_io_sha256_file(cfg->cohort.csv, d->csv_sha, &d->csv_bytes) == 0;
  if (!d->csv_ok) ts_error_clear();
  out_ctx c = {r, d};
  if (ts_report_outputs_each(r, add_output, &c) < 0) {
    repro_release(d);
    return -1;
  }
  *data_out = d;
  return 1;
}

static int repro_json(const ts_report *r, const void *data, ts_report_out *o) {
  const repro_data *d = data;
  const ts_config *cfg = ts_report_config(r);
  const ts_report_env *e = &d->env;
  ts_report_json_object(o, "config");
  ts_report_json_str(o, "text", cfg->text);
  ts_report_json_str(o, "sha256", cfg->hash);
  ts_report_json_str(o, "portable_sha256", d->portable);
  ts_report_json_end(o);
  ts_report_json_object(o, "seeds");
  ts_report_json_int(o, "run.seed", cfg->run.seed);
  ts_report_json_end(o);
  ts_report_json_object(o, "versions");
  ts_report_json_str(o, "tessera", TS_VERSION);
  ts_report_json_str(o, "build_type", TS_BUILD_TYPE);
  ts_report_json_str(o, "openslide", e->openslide);
  ts_report_json_str(o, "libvips", e->vips);
  ts_report_json_str(o, "hdf5", e->hdf5);
  ts_report_json_str(o, "mpi", e->mpi);
  ts_report_json_str(o, "sqlite", e->sqlite);
  ts_report_json_str(o, "libtorch", e->libtorch);
  ts_report_json_end(o);
  ts_report_json_object(o, "inputs");
  ts_report_json_object(o, "cohort_csv");
  ts_report_json_str(o, "path", cfg->cohort.csv);
  if (d->csv_ok) {
    ts_report_json_str(o, "sha256", d->csv_sha);
    ts_report_json_int(o, "bytes", d->csv_bytes);
  } else {
    ts_report_json_null(o, "sha256");
  }
  ts_report_json_end(o);
  TS_CALL(ts__report_repro_parts(r, TS_REPORT_INPUTS, o)); /* "slides": [...] from the tile stage */
  ts_report_json_end(o);
  ts_report_json_array(o, "encoders");
  TS_CALL(ts__report_repro_parts(r, TS_REPORT_ENCODERS, o));
  ts_report_json_end(o);
  ts_report_json_array(o, "outputs");
  for (int i = 0; i < d->n; i++) {
    const out_row *x = &d->v[i];
    ts_report_json_object(o, NULL);
    ts_report_json_str(o, "stage", x->stage);
    ts_report_json_str(o, "unit", x->unit);
    ts_report_json_str(o, "path", x->path);
    ts_report_json_str(o, "sha256", x->sha256);
    ts_report_json_int(o, "bytes", x->bytes > 0 ? x->bytes : 0);
    ts_report_json_str(o, "content_sha256", x->content[0] ? x->content : NULL);
    ts_report_json_end(o);
  }
  ts_report_json_end(o);
  return 0;
}

static int repro_html(const ts_report *r, const void *data, ts_report_out *o) {
  const repro_data *d = data;
  const ts_config *cfg = ts_report_config(r);
  ts_report_html(o, "<table class=\"kv\"><tr><th>config SHA-256</th><td class=\"hash\">%s</td></tr>"
                    "<tr><th>portable config SHA-256</th><td class=\"hash\">%s <br><small>(without run.dir: equal for a run and its rerun)</small></td></tr>"
                    "<tr><th>seed (run.seed)</th><td>%lld</td></tr>",
                 cfg->hash, d->portable, (long long)cfg->run.seed);
  ts_report_html(o, "<tr><th>cohort CSV</th><td><code>");
  ts_report_html_text(o, cfg->cohort.csv);
  if (d->csv_ok)
    ts_report_html(o, "</code><br><span class=\"hash\">sha256 %s</span> (%lld bytes)</td></tr></table>\n", d->csv_sha,
                   (long long)d->csv_bytes);
  else
    ts_report_html(o, "</code> <span class=\"bad\">unreadable now</span></td></tr></table>\n");
  ts_report_html(o, "<p>To repeat this run: <code>tessera rerun ");
  ts_report_html_text(o, ts_report_run_dir(r));
  ts_report_html(o, "/report/report.json NEW_RUN_DIR</code> (checks the inputs against the checksums below first), then "
                    "<code>tessera compare ");
  ts_report_html_text(o, ts_report_run_dir(r));
  ts_report_html(o, " NEW_RUN_DIR</code>.</p>\n<details><summary>Outputs (%d, ledger checksums)</summary>\n"
                    "<table id=\"output-table\"><tr><th>stage</th><th>output</th><th>bytes</th><th>SHA-256</th></tr>\n",
                 d->n);
  for (int i = 0; i < d->n; i++) {
    const out_row *x = &d->v[i];
    ts_report_html(o, "<tr><td>");
    ts_report_html_text(o, x->stage);
    ts_report_html(o, "</td><td><code>");
    ts_report_html_text(o, x->path);
    ts_report_html(o, "</code></td><td class=\"n\">%lld</td><td class=\"hash\">", (long long)x->bytes);
    ts_report_html_text(o, x->sha256);
    ts_report_html(o, "</td></tr>\n");
  }
  ts_report_html(o, "</table></details>\n<p>report.json also carries each HDF5 output's <em>content</em> hash (all data and "
                    "attributes except where the file was written and the config hash), the inputs' checksums (the slides' "
                    "OpenSlide quickhashes) and the library versions.</p>\n");
  return 0;
}

const struct ts_report_section ts__report_section_repro = {.abi = TS_REPORT_SECTION_ABI,
                                                           .name = "reproducibility",
                                                           .title = "Reproducibility",
                                                           .load = repro_load,
                                                           .release = repro_release,
                                                           .html = repro_html,
                                                           .json = repro_json};
