/* ts_ledger.h — the SQLite ledger of a run directory (schema: schemas/ledger.sql).
 *
 * Rank 0 is the only writer. Every state change is its own committed transaction, so that a
 * kill -9 at any moment leaves the ledger at the last unit recorded.
 *
 *     ts_ledger *l = NULL;
 *     TS_CALL(ts_ledger_open("run/ledger.sqlite", false, &l));
 *     TS_CALL(ts_ledger_unit_done(l, "tile", "S0001", &res, 0));
 *     ts_ledger_close(&l);
 *
 * An existing ledger is checked at every open and refused, never rebuilt, when it cannot be
 * trusted (TS_ECONFIG, exit code 2; the message says what to do):
 *   LEDGER_NOT_A_LEDGER  not a SQLite file (empty, other bytes), or without the ledger's tables
 *   LEDGER_CORRUPT       cut short, or damaged (PRAGMA integrity_check; quick_check when readonly)
 *   LEDGER_TOO_NEW       PRAGMA user_version above TS_LEDGER_SCHEMA: written by a newer tessera
 * A leftover -wal/-shm (kill -9) is normal: SQLite replays it.
 *
 * Tokens: LEDGER_OPEN (cannot open/read: TS_EIO), LEDGER_SQL, and the three above.
 */
#ifndef TS_LEDGER_H
#define TS_LEDGER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ts_io.h"
#include "ts_unit.h"

typedef struct ts_ledger ts_ledger;

/* The ledger schema this tessera writes and reads (PRAGMA user_version; 0 is a schema 1 or 2
 * ledger from before the version was recorded, upgraded on its next read-write open). */
#define TS_LEDGER_SCHEMA 2

/* Per-stage counts of whole units; a unit named "<u>#<anything>" is a part of unit <u> (a shard
 * of a slide, api/ts_stage.h) and is counted apart, in parts_*. items sums every done unit,
 * parts included (the shards count a slide's tiles, its merge none). */
typedef struct ts_stage_counts {
  char name[64];
  int64_t done, failed, pending, items;
  int64_t parts_done, parts_failed, parts_pending;
  char note[512];   /* why the stage was left out of its last run (stages.note), "" none */
  int64_t n_notes;  /* done units (parts included) recorded with a note (a warning: SLIDE_NO_TILES) */
  char notes[4096]; /* the first of them, "unit\tnote\n" each, in unit order; whole lines only */
} ts_stage_counts;

/* Open path, creating it (atomically: a temporary renamed into place) when absent and not
 * readonly; an existing file is checked first (above). readonly never writes: a schema 1
 * ledger stays one. */
int ts_ledger_open(const char *path, bool readonly, ts_ledger **out);
void ts_ledger_close(ts_ledger **l);

int ts_ledger_run_begin(ts_ledger *l, const char *config_hash, const char *argv, int ranks,
                        const char *hosts, const char *version, int64_t *run_id_out);
int ts_ledger_run_end(ts_ledger *l, int64_t run_id, int exit_code);

/* Recorded hash of a stage into hex_out ("" when the stage never ran). */
int ts_ledger_stage_hash(ts_ledger *l, const char *stage, char hex_out[65]);
/* Set the stage's hash; when it differs from the recorded one, forget all its units. */
int ts_ledger_stage_prepare(ts_ledger *l, const char *stage, int position, const char *hash,
                            bool *reset_out);
int ts_ledger_stage_times(ts_ledger *l, const char *stage, const char *started,
                          const char *finished, double seconds);

/* Group many small writes (a stage's plan) into one transaction: one fsync instead of one per
 * unit. Not nestable. */
int ts_ledger_begin(ts_ledger *l);
int ts_ledger_commit(ts_ledger *l);

/* Insert a unit as pending if it is not there. */
int ts_ledger_unit_add(ts_ledger *l, const char *stage, const char *unit, int64_t idx);
/* "pending", "done", "failed" or "" when absent. */
int ts_ledger_unit_state(ts_ledger *l, const char *stage, const char *unit, char state_out[16]);
/* Record a unit done, with its bad items (r->bad), in one atomic change (a savepoint: also
 * inside ts_ledger_begin/commit). */
int ts_ledger_unit_done(ts_ledger *l, const char *stage, const char *unit, int rank,
                        int attempts, int64_t run_id, const ts_unit_record *r);
/* Make a unit pending again (its output is gone: a consumed intermediate lost before use). */
int ts_ledger_unit_reset(ts_ledger *l, const char *stage, const char *unit);
/* The key of a unit's own inputs (ts_units_add_keyed): a unit recorded done under another key
 * is made pending again (*redo_out true); the key is recorded either way. */
int ts_ledger_unit_key(ts_ledger *l, const char *stage, const char *unit, const char *key, bool *redo_out);
/* The key recorded for a unit ("" none). */
int ts_ledger_unit_key_get(ts_ledger *l, const char *stage, const char *unit, char key_out[80]);
/* The note (warning) recorded with a done unit ("" none). */
int ts_ledger_unit_note(ts_ledger *l, const char *stage, const char *unit, char *note, size_t n);
/* Why the stage was left out of the last run (NULL: it ran). */
int ts_ledger_stage_note(ts_ledger *l, const char *stage, const char *note);
/* Checkpoints of collective stages (schemas/ledger.sql). */
int ts_ledger_checkpoint_record(ts_ledger *l, const char *stage, const char *stage_hash, int64_t step, const char *path,
                                const char *checksum, int64_t bytes, int64_t run_id);
/* Call fn for each checkpoint of (stage, stage_hash), latest step first, until it returns
 * non-zero (a positive return stops without error). */
int ts_ledger_checkpoints(ts_ledger *l, const char *stage, const char *stage_hash,
                          int (*fn)(void *ctx, int64_t step, const char *path, const char *checksum), void *ctx);
/* Plan bookkeeping: mark every unit of the stage stale (idx -1); ts_ledger_unit_add() of a
 * planned unit makes it current again; drop_stale forgets the stale units that are not done
 * (pending or failed: they would hold the run's exit code forever). Done ones stay, as the
 * record of work done (shards of a merged slide, a slide since removed from the cohort). */
int ts_ledger_units_mark_stale(ts_ledger *l, const char *stage);
int ts_ledger_units_drop_stale(ts_ledger *l, const char *stage, int64_t *n_dropped);
/* Done units (those whose name starts with unit_prefix) whose outputs were intermediates that a
 * later unit consumed and removed: they stay done, their output becomes NULL (checksum kept). */
int ts_ledger_units_retire_outputs(ts_ledger *l, const char *stage, const char *unit_prefix);
int ts_ledger_unit_failed(ts_ledger *l, const char *stage, const char *unit, int rank,
                          int attempts, int64_t run_id, double seconds, const char *token,
                          const char *message);
/* Items recorded for a done unit (0 when not done). */
int ts_ledger_unit_items(ts_ledger *l, const char *stage, const char *unit, int64_t *items_out);
/* Error token recorded for a failed unit ("" otherwise). */
int ts_ledger_unit_error(ts_ledger *l, const char *stage, const char *unit, char token_out[64]);
/* Error message recorded for a failed unit ("" otherwise). */
int ts_ledger_unit_error_message(ts_ledger *l, const char *stage, const char *unit, char *message, size_t n);
/* Output path and checksum recorded for a done unit. */
int ts_ledger_unit_output(ts_ledger *l, const char *stage, const char *unit, char *output,
                          size_t n, char checksum_out[65]);

/* Per-stage counts (whole units and parts apart, see ts_stage_counts) in stage position order;
 * *out is malloc'd. */
int ts_ledger_counts(ts_ledger *l, ts_stage_counts **out, int *n_out);
/* Call fn for each failed unit of stage (in unit order). */
int ts_ledger_failures(ts_ledger *l, const char *stage,
                       void (*fn)(void *ctx, const char *unit, const char *token,
                                  const char *message),
                       void *ctx);

/* Call fn for each unit of stage with bad items: count, first token, the message recorded. */
int ts_ledger_bad_items(ts_ledger *l, const char *stage,
                        void (*fn)(void *ctx, const char *unit, int64_t n, const char *token,
                                   const char *message),
                        void *ctx);

/* Peak RSS (kB, getrusage ru_maxrss) and CPU seconds of one rank after one stage. */
int ts_ledger_rusage(ts_ledger *l, int64_t run_id, const char *stage, int rank, int64_t peak_rss_kb,
                     double cpu_seconds);


#endif
