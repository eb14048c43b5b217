/* ts_report.h — the run report: report/index.html (one self-contained page) and
 * report/report.json (the same facts for machines; schemas/report.schema.json).
 *
 *     ts_report_opts o = {.peak_rss_kb = 0};
 *     if (ts_report_write("/scratch/run1", &o) < 0) fprintf(stderr, "%s\n", ts_error_message());
 *     // → /scratch/run1/report/index.html and /scratch/run1/report/report.json
 *
 * Everything in the report is a *section*: a const struct with an HTML and a JSON writer,
 * listed in a NULL-terminated table (ts_report_sections, pipeline/report_sections.c). The core
 * (pipeline/report.c) only opens the ledger and the resolved config read-only, hands both to
 * each section in turn and writes the two files atomically. A later stage (MIL, survival)
 * adds its metrics, curves and heatmaps by adding one section to the table; the core does not
 * change. A section writes its JSON as the members of one object, report.json[section.name].
 *
 *     static int my_json(const ts_report *r, ts_report_out *o) {
 *       ts_report_json_num(o, "c_index", 0.71);
 *       return 0;
 *     }
 *     static int my_html(const ts_report *r, ts_report_out *o) {
 *       ts_report_html(o, "<p>C-index %.3f</p>", 0.71);
 *       return 0;
 *     }
 *     const struct ts_report_section ts_report_section_survival = {
 *       .abi = TS_REPORT_SECTION_ABI, .name = "survival", .title = "Survival",
 *       .html = my_html, .json = my_json};
 *
 * The page has no script and no external reference: charts are inline SVG drawn here
 * (ts_report_html_bars), images are base64 data: URIs (ts_report_html_png). It opens offline.
 *
 * Reading, not writing: the report opens ledger.sqlite read-only (WAL readers never block the
 * writer), so `tessera report` is safe while a run goes on. Inside a run, the report stage
 * calls it from rank 0 (the host of the ledger; SQLite WAL needs the same host).
 *
 * `tessera compare` treats the members of report.json by their key: a key ending in one of
 * TS_REPORT_PERF_SUFFIXES is performance (time, throughput, memory, placement on ranks: it
 * differs between runs and never makes two runs "different"; the whole subtree under it is
 * informational); every other leaf is a result and must be equal. Sections name their keys
 * accordingly. The sections "run" (what ran, where, when) and "reproducibility" (config,
 * inputs, outputs) are compared by their own rules (see cmd_report.c).
 *
 * Tokens: REPORT_NO_LEDGER, REPORT_CONFIG, REPORT_LEDGER, REPORT_IO, REPORT_SECTION, REPORT_JSON.
 */
#ifndef TS_REPORT_H
#define TS_REPORT_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "ts_config.h"
#include "ts_json.h"

#define TS_REPORT_SECTION_ABI 1u
#define TS_REPORT_SCHEMA "tessera-report/1"
/* Key suffixes of performance figures (see above), NULL-terminated. */
#define TS_REPORT_PERF_SUFFIXES                                                               \
  { "seconds", "_per_s", "_per_h", "_kb", "started", "finished", "per_rank", "retried", NULL }

typedef struct ts_report ts_report;         /* what a section may read (opaque) */
typedef struct ts_report_out ts_report_out; /* where a section writes (opaque) */

struct ts_report_section {
  uint32_t abi;      /* TS_REPORT_SECTION_ABI, first so the struct can grow */
  const char *name;  /* key in report.json and HTML anchor: [a-z_]+ */
  const char *title; /* heading on the page */
  /* (optional) 0: leave the section out of both files (e.g. the stage did not run). */
  int (*present)(const ts_report *r);
  /* Write the HTML body of the section (the core writes the heading). Negative on error. */
  int (*html)(const ts_report *r, ts_report_out *o);
  /* Write the members of the section's JSON object. Negative on error. */
  int (*json)(const ts_report *r, ts_report_out *o);
};

/* NULL-terminated, in page order (pipeline/report_sections.c). */
extern const struct ts_report_section *const ts_report_sections[];

typedef struct ts_report_opts {
  int64_t peak_rss_kb; /* peak RSS of the run's rank 0 when known (the report stage), else 0 */
  bool quiet;          /* no "report: wrote ..." line */
} ts_report_opts;

/* Write RUN_DIR/report/index.html and report.json (each via tmp + rename). opts may be NULL. */
int ts_report_write(const char *run_dir, const ts_report_opts *opts);
/* Build report.json in memory without writing anything (for `tessera compare` on a run dir).
 * *json_out is malloc'd. */
int ts_report_build_json(const char *run_dir, char **json_out);

/* ---- what a section may read ---- */
const char *ts_report_run_dir(const ts_report *r); /* absolute */
sqlite3 *ts_report_ledger(const ts_report *r);     /* read-only connection */
const ts_config *ts_report_config(const ts_report *r);
const ts_report_opts *ts_report_options(const ts_report *r);
/* True when the ledger has a table of that name (additive schema changes). */
bool ts_report_has_table(const ts_report *r, const char *table);
/* Absolute path of a run-relative name, into buf. */
int ts_report_path(const ts_report *r, const char *rel, char *buf, size_t n);

/* ---- HTML writers (append to the page; errors are sticky and reported at the end) ---- */
void ts_report_html(ts_report_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ts_report_html_text(ts_report_out *o, const char *s); /* escaped */
/* <img> of a PNG file as a data: URI, or a "missing" note when unreadable. */
void ts_report_html_png(ts_report_out *o, const char *path, const char *alt);
/* Horizontal bar chart as inline SVG: n bars, values ≥ 0 in unit; labels[i] per bar. */
void ts_report_html_bars(ts_report_out *o, const char *title, const char *unit,
                         const char *const *labels, const double *values, int n);

/* ---- JSON writers: key is the member name inside an object, NULL inside an array ---- */
void ts_report_json_object(ts_report_out *o, const char *key); /* begin { */
void ts_report_json_array(ts_report_out *o, const char *key);  /* begin [ */
void ts_report_json_end(ts_report_out *o);                     /* } or ] */
void ts_report_json_str(ts_report_out *o, const char *key, const char *v); /* NULL → null */
void ts_report_json_int(ts_report_out *o, const char *key, int64_t v);
void ts_report_json_num(ts_report_out *o, const char *key, double v); /* non-finite → null */
void ts_report_json_bool(ts_report_out *o, const char *key, bool v);
void ts_report_json_null(ts_report_out *o, const char *key);

/* ---- helpers shared by the report, compare and rerun (pipeline/report_util.c) ---- */
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

/* The config text with run.dir's line removed: its SHA-256 is the "portable" config hash,
 * equal for a run and its `tessera rerun`. */
void ts_report_config_portable_sha256(const char *text, char hex_out[65]);

#endif
