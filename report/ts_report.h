/* ts_report.h — the run report: report/index.html (the page), report/report.json (the same
 * facts for machines; schemas/report.schema.json), report/thumbs/ (small JPEG thumbnails) and
 * report/<section>-<k>.html (further pages of long tables).
 *
 *     ts_report_opts o = {.peak_rss_kb = 0};
 *     if (ts_report_write("/scratch/run1", ts_stages, &o) < 0) fprintf(stderr, "%s\n", ts_error_message());
 *     // → /scratch/run1/report/index.html and /scratch/run1/report/report.json
 *
 * Everything in the report is a *section*. The core (report/) owns four generic sections that
 * name no stage: "run" (what ran, where, when, how it ended), "stages" (units and time of every
 * stage of the ledger), "failures" (failed units and unit warnings) and "reproducibility"
 * (config, inputs, outputs and their checksums). Then come the sections the stages bring:
 * each `struct ts_stage` of the registry the caller passes lists its own in `.report`
 * (NULL-terminated), rendered in registry order (the tile stage's "slides", the extract stage's
 * "features", ...). The core knows no stage by name: a new stage adds its metrics, curves and
 * heatmaps in its own stages/report_<name>.c without touching report/.
 *
 * A section (ABI 2) loads its data once and renders it twice, to HTML and to JSON:
 *
 *     typedef struct { double c_index; } surv;
 *     static int load(const ts_report *r, void **data_out) {      // 1 present, 0 leave out
 *       surv *s = calloc(1, sizeof *s);
 *       if (!s) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "survival section");
 *       s->c_index = 0.71;                                         // read via the API below
 *       *data_out = s;
 *       return 1;
 *     }
 *     static int json(const ts_report *r, const void *d, ts_report_out *o) {
 *       ts_report_json_num(o, "c_index", ((const surv *)d)->c_index);
 *       return 0;
 *     }
 *     static int html(const ts_report *r, const void *d, ts_report_out *o) {
 *       ts_report_html(o, "<p>C-index %.3f</p>", ((const surv *)d)->c_index);
 *       return 0;
 *     }
 *     const struct ts_report_section ts_report_section_survival = {
 *       .abi = TS_REPORT_SECTION_ABI, .name = "survival", .title = "Survival",
 *       .load = load, .release = free, .html = html, .json = json};
 *     // stages/survival.c:  .report = (const struct ts_report_section *const[]){&ts_report_section_survival, NULL},
 *
 * A section writes its JSON as the members of one object, report.json[section.name].
 * Stage sections read the run through the narrow API below (units of a stage with their state,
 * outputs, notes and bad items; a stage's skip note), never the ledger's tables.
 *
 * The page has no script and references nothing outside the run directory: charts are inline
 * SVG (ts_report_html_bars), images are thumbnails in report/thumbs/ linking the full-size QC
 * images in the run directory (ts_report_html_thumb). It opens offline.
 *
 * Reading, not writing: the report opens ledger.sqlite read-only (WAL readers never block the
 * writer), so `tessera report` is safe while a run goes on. Inside a run, the report stage
 * calls it from rank 0 (the host of the ledger; SQLite WAL needs the same host). Every file is
 * written atomically (tmp + rename); ts_report_build_json writes nothing at all.
 *
 * `tessera compare` treats the members of report.json by their key: a key ending in one of
 * TS_REPORT_PERF_SUFFIXES is performance (time, throughput, memory, placement on ranks: it
 * differs between runs and never makes two runs "different"; the whole subtree under it is
 * informational); every other leaf is a result and must be equal. Sections name their keys
 * accordingly. The sections "run" (what ran, where, when) and "reproducibility" (config,
 * inputs, outputs) are compared by their own rules (see pipeline/cmd_report.c).
 *
 * Tokens: REPORT_NO_LEDGER, REPORT_CONFIG, REPORT_LEDGER, REPORT_IO, REPORT_SECTION, REPORT_JSON.
 */
#ifndef TS_REPORT_H
#define TS_REPORT_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ts_config.h"
#include "ts_json.h"

struct ts_stage; /* api/ts_stage.h */

#define TS_REPORT_SECTION_ABI 2u
#define TS_REPORT_SCHEMA "tessera-report/1"
/* Key suffixes of performance figures (see above), NULL-terminated. */
#define TS_REPORT_PERF_SUFFIXES                                                               \
  { "seconds", "_per_s", "_per_h", "_kb", "started", "finished", "per_rank", "retried", NULL }

typedef struct ts_report ts_report;         /* what a section may read (opaque) */
typedef struct ts_report_out ts_report_out; /* where a section writes (opaque) */

/* The parts of the reproducibility section a stage section may contribute to (repro hook). */
enum ts_report_repro_part {
  TS_REPORT_INPUTS = 1,   /* members of reproducibility.inputs ("slides": [...]) */
  TS_REPORT_ENCODERS = 2, /* elements of reproducibility.encoders ({name, sha256}) */
};

struct ts_report_section {
  uint32_t abi;      /* TS_REPORT_SECTION_ABI, first so the struct can grow */
  const char *name;  /* key in report.json and HTML anchor: [a-z_]+, unique in the report */
  const char *title; /* heading on the page (NULL: name) */
  /* (optional) Read what the section shows, once: 1 and *data_out (may stay NULL) to render
   * it, 0 to leave the section out of both files (its stage did not run), negative on error.
   * NULL: always present, no data. */
  int (*load)(const ts_report *r, void **data_out);
  /* (optional) Free what load returned (called with NULL too). */
  void (*release)(void *data);
  /* The HTML body of the section (the core writes the heading). Negative on error. */
  int (*html)(const ts_report *r, const void *data, ts_report_out *o);
  /* The members of the section's JSON object. Negative on error. */
  int (*json)(const ts_report *r, const void *data, ts_report_out *o);
  /* (optional) What the section's stage adds to the reproducibility section's JSON (see
   * enum ts_report_repro_part): members of "inputs" or elements of "encoders". */
  int (*repro)(const ts_report *r, const void *data, enum ts_report_repro_part part, ts_report_out *o);
};

typedef struct ts_report_opts {
  int64_t peak_rss_kb; /* peak RSS of the run's rank 0 when known (the report stage), else 0 */
  bool quiet;          /* no "report: wrote ..." line */
} ts_report_opts;

/* Write RUN_DIR/report/index.html, report.json, thumbs/ and the further pages (each file via
 * tmp + rename). stages: the registry in run order (ts_stages, or run->stages inside a run),
 * NULL-terminated; the core renders its generic sections, then each stage's `.report`
 * sections in that order. stages may be NULL (generic sections only). opts may be NULL. */
int ts_report_write(const char *run_dir, const struct ts_stage *const *stages, const ts_report_opts *opts);
/* Build report.json in memory without writing anything (for `tessera compare` on a run dir).
 * *json_out is malloc'd. */
int ts_report_build_json(const char *run_dir, const struct ts_stage *const *stages, char **json_out);

/* ---- what a section may read ---- */
const char *ts_report_run_dir(const ts_report *r); /* absolute */
const ts_config *ts_report_config(const ts_report *r);
const ts_report_opts *ts_report_options(const ts_report *r);
/* Absolute path of a run-relative name, into buf. */
int ts_report_path(const ts_report *r, const char *rel, char *buf, size_t n);
/* A run-relative text file, malloc'ed; NULL (no error kept) when absent or unreadable. */
char *ts_report_read_text(const ts_report *r, const char *rel);
/* Whether a run-relative file exists (no error kept). */
bool ts_report_exists(const ts_report *r, const char *rel);
/* Split a line of a tessera-written CSV in place at commas into at most max fields (no quoting:
 * the stages write ids that need none); returns the count; a trailing '\r' goes. */
int ts_report_csv_split(char *line, char **fields, int max);
/* The registry the caller passed (NULL-terminated; never NULL: an empty list) and the entry
 * of a stage by name (NULL when not registered). */
const struct ts_stage *const *ts_report_stages(const ts_report *r);
const struct ts_stage *ts_report_stage(const ts_report *r, const char *name);

/* One unit of the ledger as the report sees it. Strings are "" when absent; they live as
 * long as the ts_report_units that holds them. */
typedef struct ts_report_unit {
  const char *stage, *unit;
  const char *state;          /* "pending", "done", "failed" */
  const char *output;         /* run-relative main output; "" none (or consumed) */
  const char *checksum;       /* SHA-256 hex of the main output, "" none */
  const char *error_token, *error_message; /* failed units */
  const char *note;           /* the warning a done unit completed with ("SLIDE_NO_TILES: ..."), "" none */
  int64_t idx;                /* position in the stage's plan */
  int64_t items;              /* items of a done unit, -1 unknown */
  int64_t bytes;              /* bytes of the main output, -1 unknown */
  int64_t attempts;
  int rank;                   /* rank that did it, -1 unknown */
  double seconds;             /* NaN unknown */
  int64_t bad_items;          /* items recorded bad (ledger bad_items), 0 none */
} ts_report_unit;

typedef struct ts_report_units {
  int64_t n;
  ts_report_unit *v;
  void *priv; /* (private) the strings and the name index */
} ts_report_units;

/* Every unit of `stage` (NULL: of every stage, in stage order), in plan order, into *out
 * (cleared first; free with ts_report_units_clear). A stage the ledger does not hold: n = 0.
 * Old ledgers without notes or bad items give "" and 0. Token REPORT_LEDGER. */
int ts_report_units_load(const ts_report *r, const char *stage, ts_report_units *out);
void ts_report_units_clear(ts_report_units *u);
/* The unit of that name in u, or NULL (a hash lookup). */
const ts_report_unit *ts_report_units_find(const ts_report_units *u, const char *unit);

/* A stage as the ledger records it. */
typedef struct ts_report_stage_info {
  bool known;        /* the ledger has the stage (it was planned or skipped at least once) */
  char note[512];    /* why it was left out of the last run ("no label column ..."), "" none */
  char started[32], finished[32]; /* of the last invocation that did units, "" unknown */
  double seconds;    /* wall time of that invocation, NaN unknown */
} ts_report_stage_info;
int ts_report_stage_info_get(const ts_report *r, const char *stage, ts_report_stage_info *out);

/* Every output of a done unit (the ledger's outputs table; for an old ledger, units.output):
 * cb once per output, in stage and plan order. A negative return from cb stops and is
 * returned. */
typedef struct ts_report_output {
  const char *stage, *unit, *path, *checksum;
  int64_t bytes;
} ts_report_output;
int ts_report_outputs_each(const ts_report *r, int (*cb)(void *ctx, const ts_report_output *o), void *ctx);

/* Low level, for the core's own sections (report/section_*.c): the read-only connection and
 * whether the ledger has a table / a column (additive schema changes). Stage sections use the
 * functions above instead. */
sqlite3 *ts_report_ledger(const ts_report *r);
bool ts_report_has_table(const ts_report *r, const char *table);
bool ts_report_has_column(const ts_report *r, const char *table, const char *column);

/* ---- HTML writers (append to the page; errors are sticky and reported at the end) ---- */
void ts_report_html(ts_report_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ts_report_html_text(ts_report_out *o, const char *s); /* escaped */
/* A thumbnail of the image at the run-relative path src (PNG, JPEG, TIFF: what libvips
 * reads), at most TS_REPORT_THUMB_PX on its long side, written once as the JPEG
 * report/thumbs/<thumb_name>.jpg (redone when src is newer), shown as <img> inside a link to
 * the full-size src. A "missing" box when src cannot be read. thumb_name: [A-Za-z0-9._-]. */
#define TS_REPORT_THUMB_PX 256
void ts_report_html_thumb(ts_report_out *o, const char *src, const char *thumb_name, const char *alt);
/* Horizontal bar chart as inline SVG: n bars, values ≥ 0 in unit; labels[i] per bar. */
void ts_report_html_bars(ts_report_out *o, const char *title, const char *unit,
                         const char *const *labels, const double *values, int n);
/* A further page, report/<file> (file: [a-z0-9_-]+.html), with the report's header and style,
 * whose body `body` writes; written atomically, nothing goes into o. Use it for tables too
 * long for one page (the slides of a 1,000-slide run); link it with <a href="<file>">. */
int ts_report_html_page(ts_report_out *o, const char *file, const char *title,
                        int (*body)(void *ctx, ts_report_out *page), void *ctx);
/* Whether HTML written here is a page other than index.html (links to sections differ). */
bool ts_report_html_is_subpage(const ts_report_out *o);

/* ---- JSON writers: key is the member name inside an object, NULL inside an array ---- */
void ts_report_json_object(ts_report_out *o, const char *key); /* begin { */
void ts_report_json_array(ts_report_out *o, const char *key);  /* begin [ */
void ts_report_json_end(ts_report_out *o);                     /* } or ] */
void ts_report_json_str(ts_report_out *o, const char *key, const char *v); /* NULL → null */
void ts_report_json_int(ts_report_out *o, const char *key, int64_t v);
void ts_report_json_num(ts_report_out *o, const char *key, double v); /* non-finite → null */
void ts_report_json_bool(ts_report_out *o, const char *key, bool v);
void ts_report_json_null(ts_report_out *o, const char *key);
void ts_report_json_count(ts_report_out *o, const char *key, int64_t v); /* v < 0 → null */
void ts_report_json_nums(ts_report_out *o, const char *key, const double *v, size_t n); /* [..] */
void ts_report_json_pair(ts_report_out *o, const char *key, double a, double b);         /* [a, b] */

/* ---- small formatting helpers for sections ---- */
void ts_report_fmt_bytes(char *buf, size_t n, double bytes);     /* "1.5 MiB" */
void ts_report_fmt_seconds(char *buf, size_t n, double seconds); /* "2.00 s", "1.5 min", "–" */
void ts_report_fmt_num(char *buf, size_t n, double v);           /* "12,345", "0.25", "–" */
/* The message without its leading "TOKEN: " (the page shows the token on its own). */
const char *ts_report_msg_body(const char *token, const char *message);

/* ---- helpers shared by the report, compare and rerun (report/report_util.c) ---- */
typedef struct ts_report_env {
  char cpu_model[256], hostname[256], os[256];
  int cores;
  int64_t memory_bytes;
  char openslide[64], vips[64], hdf5[64], mpi[256], sqlite[64], libtorch[64], compiler[128];
} ts_report_env;
void ts_report_env_get(ts_report_env *e);

/* SHA-256 of the *content* of an HDF5 file: every object's name, every dataset's type, shape
 * and data, every attribute's name and value, in name order, except the attributes that are
 * legitimately run-specific (TS_REPORT_H5_RUN_ATTRS: where the file was written, and the
 * config hash, which covers run.dir). Two runs of the same config in two run directories
 * give equal content hashes though their files differ in those bytes. Token REPORT_IO.
 * The report hashes content only for files up to TS_REPORT_CONTENT_HASH_MAX bytes (it runs
 * at the end of every run); larger outputs get content_sha256 null and compare falls back
 * to the file SHA-256. (Better, later: the writer hashes content while writing.) */
#define TS_REPORT_CONTENT_HASH_MAX ((int64_t)256 << 20)
#define TS_REPORT_H5_RUN_ATTRS { "save_path", "savetodir", "config_hash", "slide_path", NULL }
int ts_report_h5_content_sha256(const char *path, char hex_out[65]);

/* Attributes of one dataset of an HDF5 file, read back for a section (what a stage wrote).
 * Open with ts_report_h5_open (negative, no token kept, when the file or dataset cannot be
 * read), read any number of attributes, close. rows: the dataset's first dimension. */
typedef struct ts_report_h5 {
  int64_t file, dset; /* hid_t */
  int64_t rows, cols; /* -1 unknown */
} ts_report_h5;
int ts_report_h5_open(const char *path, const char *dataset, ts_report_h5 *h);
/* "" / NaN / false when absent or of another type. */
bool ts_report_h5_str(const ts_report_h5 *h, const char *attr, char *buf, size_t n);
double ts_report_h5_f64(const ts_report_h5 *h, const char *attr);
bool ts_report_h5_i64(const ts_report_h5 *h, const char *attr, int64_t *out);
void ts_report_h5_close(ts_report_h5 *h);

/* The config text with run.dir's line removed: its SHA-256 is the "portable" config hash,
 * equal for a run and its `tessera rerun`. */
void ts_report_config_portable_sha256(const char *text, char hex_out[65]);

#endif
