/* ts_records.h — clinical and omics tables: a schema, a CSV reader that keeps line and column,
 * block validation with mergeable statistics, and the records.h5 writer (stages/records.c).
 *
 *     ts_rec_schema s;  ts_rec_table *t = NULL;  ts_rec_stats st;
 *     rc = ts_rec_schema_parse("patient_id:id, age:float[0,120], grade:int{1,2,3}",
 *                              "records.clinical_schema", &s);      // CONFIG_RECORDS_SCHEMA
 *     rc = ts_rec_table_open("clinical", "clinical.csv", &s, &t);   // reads, splits rows,
 *                                                                   // matches the header
 *     rc = ts_rec_block_stats(t, 0, 64, &st);   // rows [0,64): validate, then Welford stats
 *     ... ts_rec_stats_merge(&total, &st) over blocks (Chan et al.) ...
 *     ts_rec_stats_clear(&st);  ts_rec_table_free(&t);  ts_rec_schema_clear(&s);
 *
 * Schema grammar (one string per table, since the config holds scalars):
 *     entry   := NAME ':' TYPE [SPEC] ['?']        entries separated by ','
 *     TYPE    := id | float | int | str
 *     SPEC    := '[' [lo] ',' [hi] ']'    inclusive range (float, int)
 *              | '{' v1 ',' v2 ... '}'     allowed values: a categorical column (int, str;
 *                                           str needs one), one-hot encoded in records.h5
 *     NAME    := [A-Za-z0-9_.-]+, or a prefix ending in '*': every CSV column starting with
 *                it that no other entry names (in header order)
 *     '?'     optional: the column may be absent and its cells empty (NaN in records.h5).
 *             Without it the column must be there and every cell non-empty.
 * Exactly one entry is the id (the patient id): required, non-empty, unique in the table.
 * CSV columns the schema does not name are ignored (and listed in records.h5).
 *
 * CSV: RFC 4180 (quotes, "" escapes, quoted newlines), a header row, LF or CRLF. "Line" in
 * messages is the 1-based physical line where the row starts; "column" is the 1-based field.
 *
 * Statistics: per numeric column count, mean and M2 (sum of squared deviations) by Welford's
 * update (on data shifted by the column's first value), merged across blocks by Chan, Golub & LeVeque (1979): n = na+nb, d = mb-ma,
 * mean = ma + d nb/n, M2 = M2a + M2b + d^2 na nb / n. The std is the population one
 * (ddof 0, as sklearn's StandardScaler). Per categorical column: a count per level.
 *
 * Tokens: RECORDS_MISSING_FILE, RECORDS_BAD_CSV, RECORDS_BAD_HEADER, RECORDS_MISSING_COLUMN,
 * RECORDS_BAD_VALUE, RECORDS_MISSING_VALUE, RECORDS_DUPLICATE_ID (TS_EINPUT, naming
 * file:line:column); CONFIG_RECORDS_SCHEMA (TS_ECONFIG). Thread safety: objects are not shared;
 * a table is read-only after open and may be read by several threads.
 */
#ifndef TS_RECORDS_H
#define TS_RECORDS_H

#include <stdbool.h>
#include <stdint.h>

#include "ts_error.h"

typedef enum { TS_REC_ID = 1, TS_REC_FLOAT, TS_REC_INT, TS_REC_CAT } ts_rec_type;

typedef struct ts_rec_field {
  char *name;          /* without the '*' of a wildcard */
  bool wildcard, required;
  ts_rec_type type;    /* int{...} and str{...} are TS_REC_CAT */
  bool int_levels;     /* TS_REC_CAT from int{...}: cells compared as integers */
  bool has_lo, has_hi;
  double lo, hi;
  int n_levels;
  char **levels;       /* canonical text of each level */
} ts_rec_field;

typedef struct ts_rec_schema {
  int n;
  ts_rec_field *f;
  char *text;          /* as given */
} ts_rec_schema;

/* Parse text (key names the config key in messages). Errors: CONFIG_RECORDS_SCHEMA, TS_ECONFIG. */
int ts_rec_schema_parse(const char *text, const char *key, ts_rec_schema *out);
void ts_rec_schema_clear(ts_rec_schema *s);

/* One kept CSV column (not the id). */
typedef struct ts_rec_col {
  char *name;
  int csv;             /* 0-based CSV field */
  int field;           /* schema entry */
  ts_rec_type type;
  int cat_off;         /* TS_REC_CAT: first of its level counts in ts_rec_stats.cat_counts */
} ts_rec_col;

typedef struct ts_rec_table {
  char *name, *path;
  const ts_rec_schema *schema; /* borrowed */
  char sha256[65];             /* of the file's bytes */
  char *data;                  /* file text */
  int64_t nrows;               /* data rows */
  int64_t *row_off;            /* nrows + 1 byte offsets (row_off[nrows] = end) */
  int *row_line;               /* nrows physical lines */
  int ncsv;                    /* header fields */
  char **header;
  int id_csv;                  /* CSV field of the id */
  int ncols;
  ts_rec_col *cols;
  int n_cat;                   /* total level slots */
  char *ignored;               /* comma-separated CSV columns not in the schema ("" if none) */
} ts_rec_table;

/* Read path and split its rows (RECORDS_MISSING_FILE, RECORDS_BAD_CSV). When schema is not
 * NULL, also match the header against it (RECORDS_BAD_HEADER, RECORDS_MISSING_COLUMN); on a
 * header error *out is still set (rows split) so that a caller can count the rows. */
int ts_rec_table_open(const char *name, const char *path, const ts_rec_schema *schema, ts_rec_table **out);
void ts_rec_table_free(ts_rec_table **t);

/* Fields of row r (0-based data row): *fields_out is one malloc'd block the caller frees;
 * RECORDS_BAD_CSV when the field count differs from the header's. */
int ts_rec_row_fields(const ts_rec_table *t, int64_t r, char ***fields_out, int *n_out);

/* Statistics of some rows; arrays of length ncols (n, mean, m2, missing) and n_cat. */
typedef struct ts_rec_stats {
  int ncols, n_cat;
  int64_t rows;
  int64_t *n, *missing, *cat_counts;
  double *mean, *m2;
  double *shift, *smean; /* mean = shift + smean, shift a data value of the column (see push) */
} ts_rec_stats;

int ts_rec_stats_init(ts_rec_stats *s, int ncols, int n_cat);
void ts_rec_stats_clear(ts_rec_stats *s);
/* Welford update of column j with x. */
void ts_rec_stats_push(ts_rec_stats *s, int j, double x);
/* acc += b (Chan et al.); shapes must agree (TS_EINVAL). */
int ts_rec_stats_merge(ts_rec_stats *acc, const ts_rec_stats *b);

/* Validate rows [r0, r1) and compute their statistics into *out (initialised here). The first
 * bad cell is the error (file:line:column), with the count of further bad cells. */
int ts_rec_block_stats(const ts_rec_table *t, int64_t r0, int64_t r1, ts_rec_stats *out);

/* Parse one validated cell of column j: numeric value (NaN when empty), or for TS_REC_CAT the
 * level index (-1 when empty) in *level_out. Errors as ts_rec_block_stats. */
int ts_rec_cell(const ts_rec_table *t, int j, const char *cell, int line, double *x_out, int *level_out);

/* Partial statistics files (records/partial/<table>-<block>.h5): the stats plus the table's
 * SHA-256 and row range, so that finish can refuse a partial of another file. */
int ts_rec_partial_write(const char *path, const ts_rec_table *t, int64_t block, int64_t r0, int64_t r1,
                         const ts_rec_stats *s);
/* RECORDS_STALE when the partial was computed from other bytes than t's or another layout. */
int ts_rec_partial_read(const char *path, const ts_rec_table *t, ts_rec_stats *out);

/* One table's group in records.h5 (the file itself is the caller's: create, write every table,
 * close, commit). Layout of group /<name>, keyed by patient id:
 *   patient_id [N] str, line [N] int64 (CSV line of the row)
 *   values [N x C] float32: numeric columns z-scored, categorical ones one-hot, NaN where a
 *       cell is empty; values = (x - offset) / scale per column (one-hot: 0 and 1; scale is
 *       the population std, or 1 for a constant column); columns [C] (also attribute
 *       values.columns up to 2000 columns), offset [C], scale [C]
 *   numeric_columns, mean, std (ddof 0), count, missing: per numeric source column, over the
 *       rows of the blocks that passed (mean and std also as group attributes)
 *   attributes levels:<col> and counts:<col> per categorical column; source, source_sha256,
 *       schema, block_rows, rows_in_source, ignored_columns, std_ddof, error ("" when none)
 *   failed_blocks [str] (units that failed: their rows are left out), missing_patient_id (ids
 *       of those rows), patients_without_slides, slides_without_patient
 * With error set (the table could not be read or does not fit the schema) only the
 * attributes are written. */
typedef struct ts_rec_h5_table {
  const char *name, *source, *schema_text, *error;
  const ts_rec_table *t;
  const ts_rec_stats *stats;
  int64_t block_rows, n_rows;
  const int64_t *rows;                     /* data rows written, in file order */
  const char *const *failed_blocks;        int64_t n_failed_blocks;
  const char *const *missing_ids;          int64_t n_missing_ids;
  const char *const *patients_without_slides; int64_t n_patients_without_slides;
  const char *const *slides_without_patient;  int64_t n_slides_without_patient;
} ts_rec_h5_table;

int ts_rec_h5_write_table(int64_t file, const ts_rec_h5_table *o);

#endif
