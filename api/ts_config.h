/* ts_config.h — the run configuration: YAML checked against schemas/config_params.h.
 *
 *     ts_config *c = NULL;
 *     const char *sets[] = {"tile.size=512"};
 *     if (ts_config_load("config.yaml", sets, 1, &c) < 0) { puts(ts_error_message()); exit(2); }
 *     printf("%d px at %g um/px, config %s\n", (int)c->tile.size, c->tile.mpp, c->hash);
 *     ts_config_free(&c);
 *
 * Loading is two passes. A libyaml pass walks the document with its line marks and checks
 * every key against the table (unknown key, wrong type, out of range → error naming
 * file:line and section.key), applies --set overrides (validated the same way), fills the
 * defaults and resolves relative paths against the config file's directory. The result is
 * written out as canonical YAML (one key per line, table order): that text is the resolved
 * config frozen into the run directory, its SHA-256 is the config hash, and it is what
 * libcyaml loads into the struct below (libcyaml 1.3 reports no line numbers, hence pass 1).
 *
 * Tokens: CONFIG_MISSING_FILE, CONFIG_SYNTAX, CONFIG_UNKNOWN_KEY, CONFIG_TYPE, CONFIG_RANGE,
 * CONFIG_MISSING_KEY, CONFIG_BAD_SET. All with status TS_ECONFIG. An unknown key or section
 * names the nearest one of the table when a typo away ("did you mean tile.mpp?"), across
 * sections too (tile.batch → extract.batch).
 */
#ifndef TS_CONFIG_H
#define TS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ts_config {
  struct { char *dir; int64_t seed; } run;
  struct { char *csv, *clinical, *genomic; double mpp; } cohort;
  struct { double mpp; int64_t median, close; double min_area_um2, min_hole_um2; int64_t sat_floor; } tissue;
  struct { int64_t size; double mpp; int64_t overlap; double min_tissue; } tile;
  struct { int64_t max_attempts; } scheduler;
  struct { char *encoder, *checkpoint; int64_t input_size; char *mean, *std; int64_t batch, threads, decode_threads, shard_tiles; bool float16; } extract;
  struct { char *clinical_schema, *genomic_schema; int64_t block_rows; } records;
  struct { char *models, *task; int64_t classes, folds; double val_frac, test_frac; char *splits, *features; int64_t epochs, min_epochs, patience;
           char *optimizer; double lr, weight_decay, dropout; int64_t k_sample; bool balanced; int64_t threads; } mil;
  struct { char *models, *time, *event, *covariates; int64_t folds; double val_frac, test_frac; int64_t time_bins; double lasso_alpha;
           char *loss; int64_t nll_bins; double nll_alpha; char *cox_ties, *cox_weights; double event_weight; int64_t batch, epochs, min_epochs, patience;
           double lr, weight_decay, dropout; int64_t omic_groups, heatmaps, bootstrap, threads; } survival;
  /* Not from YAML: */
  char *text;      /* canonical resolved YAML */
  char hash[65];   /* SHA-256 of text */
} ts_config;

/* Load path with n_sets "section.key=value" overrides. */
int ts_config_load(const char *path, const char *const *sets, int n_sets, ts_config **out);
/* Load an already resolved canonical text (what rank 0 broadcasts, or config.yaml of a run). */
int ts_config_from_text(const char *text, const char *origin, ts_config **out);
void ts_config_free(ts_config **c);

/* SHA-256 over "section.key=value" lines of the keys matched by deps: each dep is a section
 * ("tile") or a key ("cohort.csv"). */
void ts_config_hash_keys(const ts_config *c, const char *const *deps, char hex_out[65]);

/* Print the schema for --help: one row per key under its section (key, type, default, range,
 * doc), a header row first. Columns are as wide as their cells (an overlong default wraps under
 * its column and the row goes on at the same columns on the next line); docs wrap at 100
 * columns with a hanging indent. A function of schemas/config_params.h only. */
void ts_config_print_schema(FILE *f);

/* Which keys differ between two canonical resolved texts (c->text, a run's config.yaml): keys
 * whose value text differs, and keys present in only one of them. Writes their "section.key"
 * names into buf (n bytes, always NUL-terminated when n > 0; buf may be NULL when n is 0),
 * comma-separated in the old text's order, then the new text's, e.g. "tile.size, extract.batch";
 * a list that does not fit ends in ", ..." after the names that do. Returns the number of keys
 * that differ (0: same values), or TS_ECONFIG (CONFIG_SYNTAX, naming old/new and the line) when
 * a text is not canonical, TS_EINVAL for a NULL text. Exec keys count like any other.
 * Thread-safe; allocates only temporarily. */
int ts_config_diff_keys(const char *old_text, const char *new_text, char *buf, size_t n);

#endif
