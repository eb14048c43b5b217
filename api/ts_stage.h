/* ts_stage.h — the stage plug-in interface (ABI 2) and the run context stages see.
 *
 * A stage is one file, stages/<name>.c, exporting one `const struct ts_stage ts_stage_<name>`
 * and keeping everything else static (OpenSlide's one-driver-per-file). The registry in
 * pipeline/registry.c lists them in run order; it is checked at start-up. Two kinds:
 *
 * SHARDED (tissue, tile, extract, records): rank 0 plans independent units, any rank does one.
 *   check  (optional) rank 0, before anything runs: validate the stage's own config keys; a
 *          TS_ECONFIG error stops the run with exit 2 and nothing done.
 *   skip   (optional) rank 0: 1 when the stage's inputs are absent (no labels, no clinical
 *          table), with the reason in why: the stage is left out with one line saying why.
 *   plan   rank 0: list the units (one per slide, say) with ts_units_add() /
 *          ts_units_add_keyed() (the key covers the unit's own inputs: a unit recorded done
 *          under another key is redone); a unit that can be seen to fail already (unsafe id,
 *          upstream failed) goes in with ts_units_add_failed(); a unit that needs others done
 *          first says so with ts_units_wait(). Units the ledger holds for this stage that the
 *          plan no longer lists are forgotten unless done.
 *   work   any rank, any thread: do one unit; write outputs under a temporary name, commit them
 *          with ts_io_commit(), name them with ts_unit_add_output() (several per unit: a fold
 *          writes a model, predictions, attention and metrics), set the item count; items that
 *          failed while the unit completed (undecodable tiles) go in rec->bad (malloc'd); on
 *          failure return a negative status with a token set. The scheduler checksums every
 *          output and rank 0 records the unit done with all of them.
 *   finish (optional) rank 0, after all units: summarise.
 *   unit_done (optional) rank 0, each time a unit is recorded done.
 *
 * COLLECTIVE (training on every rank at once): one unit named after the stage.
 *   collective  every rank, on its main thread, together: run->resume_step / resume_checkpoint
 *          say where the last recorded checkpoint of this stage (same stage hash) is; talk to
 *          the other ranks only through the ts_comm of cluster/ts_comm.h (allreduce, broadcast,
 *          barrier, agreed stop and agreed status); rank 0 writes checkpoints and records them
 *          with ts_run_checkpoint_record(); outputs go in rec (rank 0's rec is the one recorded).
 *          A stop request (SIGTERM) is seen by all ranks at once through ts_comm_stop_agreed():
 *          return ts_stop_error(); the unit stays pending and the next run resumes from the last
 *          checkpoint.
 *
 * Both kinds may declare needs_for (extra upstream stages the config makes it need: extract
 * needs ssl only when its encoder comes from ssl) and a report section (report/ts_report.h)
 * that the report core renders among the others without knowing the stage.
 * A stage never calls MPI (the arrow goes pipeline → cluster; the communicator is an interface).
 */
#ifndef TS_STAGE_H
#define TS_STAGE_H

#include <stdint.h>

#include <stdbool.h>
#include <stddef.h>

#include "ts_config.h"
#include "ts_unit.h"

#define TS_STAGE_ABI 2u

enum ts_stage_kind { TS_SHARDED = 1, TS_COLLECTIVE = 2 };

enum ts_stage_flags {
  TS_STAGE_ALWAYS = 1u << 0,  /* redo every unit on every run (a report of the run itself) */
  TS_STAGE_SUMMARY = 1u << 1, /* describes the run: always selected, and runs after the run's
                               * outcome (exit code, finish time) is recorded */
};

enum { TS_LABEL_NONE = -1, TS_LABEL_NOT_CLASS = -2 };

/* One row of the cohort CSV. */
typedef struct ts_cohort_row {
  char *slide_id, *patient_id, *path; /* path absolute (relative ones resolved vs the CSV) */
  int label;                          /* the label as a class: an integer >= 0; TS_LABEL_NONE (-1)
                                         when the CSV has no label column or it is empty,
                                         TS_LABEL_NOT_CLASS (-2) when it is a number that is not a
                                         class (negative, fractional: a regression score) */
  double score;                       /* the label as a number (regression); NAN when absent */
  double mpp;                         /* 0 when absent */
  int line;                           /* line in the CSV */
} ts_cohort_row;

typedef struct ts_cohort {
  char *csv_path;
  int n;
  ts_cohort_row *rows;
} ts_cohort;

typedef struct ts_run {
  const ts_config *cfg;
  const char *dir;          /* absolute run directory */
  const ts_cohort *cohort;
  const struct ts_stage *const *stages; /* the registry, in run order */
  int rank, nranks;
  int64_t run_id;           /* rank 0 only */
  const char *stage_hash;   /* hash of the running stage: its config keys and upstream stages */
  const char *stage_name;   /* the running stage */
  /* COLLECTIVE stages: the last checkpoint recorded for this stage under this stage hash whose
   * file still has its recorded SHA-256 (every rank knows it), or -1 / NULL: start afresh. */
  int64_t resume_step;
  const char *resume_checkpoint; /* run-relative path */
  /* The run's record (the ledger), rank 0 only, main thread only (plan, finish, unit_done):
   * reached through the ts_run_* functions below, never directly. */
  const struct ts_run_ops *ops;
  void *impl;
} ts_run;

/* ---- The run API: what a stage may ask of the run's record (rank 0, main thread) ----
 * Stages read upstream results by stage and unit name, never the ledger's tables; the pipeline
 * provides the implementation (pipeline/run_api.c, over the SQLite ledger). All return 0 or a
 * negative status with a token set. */
struct ts_run_ops {
  int (*unit_state)(void *impl, const char *stage, const char *unit, char state_out[16]);
  int (*unit_error)(void *impl, const char *stage, const char *unit, char token_out[64], char *message, size_t n);
  int (*unit_items)(void *impl, const char *stage, const char *unit, int64_t *items_out);
  int (*unit_output)(void *impl, const char *stage, const char *unit, char *rel, size_t n, char checksum_out[65]);
  int (*unit_redo)(void *impl, const char *stage, const char *unit);
  int (*unit_key)(void *impl, const char *stage, const char *unit, char key_out[80]);
  int (*retire_outputs)(void *impl, const char *stage, const char *unit_prefix);
  int (*begin)(void *impl);
  int (*commit)(void *impl);
  int (*checkpoint_record)(void *impl, const char *stage, const char *stage_hash, int64_t step, const char *rel,
                           const char *checksum, int64_t bytes);
};
/* "pending", "done", "failed", or "" when the stage has no such unit. */
int ts_run_unit_state(const ts_run *run, const char *stage, const char *unit, char state_out[16]);
/* Token (and message, when message is not NULL) of a failed unit; "" otherwise. */
int ts_run_unit_error(const ts_run *run, const char *stage, const char *unit, char token_out[64], char *message, size_t n);
/* Items recorded for a done unit (0 when not done). */
int ts_run_unit_items(const ts_run *run, const char *stage, const char *unit, int64_t *items_out);
/* Run-relative path and SHA-256 of a done unit's main output ("" when not done). */
int ts_run_unit_output(const ts_run *run, const char *stage, const char *unit, char *rel, size_t n,
                       char checksum_out[65]);
/* Whether a unit of the running stage is recorded done under the key of key_text (the text
 * given to ts_units_add_keyed; NULL: any key). A plan uses it to decide what a done unit spares
 * (a merged slide needs no shards) before the driver redoes units whose inputs changed. */
int ts_run_unit_is_done(const ts_run *run, const char *unit, const char *key_text, bool *done_out);
/* A unit of the running stage recorded done whose output is gone (a consumed intermediate
 * removed by hand): make it pending again, so that this run redoes it. */
int ts_run_unit_redo(const ts_run *run, const char *unit);
/* Done units of the running stage (name starting with unit_prefix) whose outputs a later unit
 * consumed and removed: they stay done; their outputs are recorded as consumed. */
int ts_run_retire_outputs(const ts_run *run, const char *unit_prefix);
/* COLLECTIVE stages, rank 0: record the checkpoint of `step` (a file committed at the
 * run-relative path rel) with its SHA-256: the next run of this stage (same hash) resumes from
 * the last one recorded. Steps only grow; recording step s forgets none. */
int ts_run_checkpoint_record(const ts_run *run, int64_t step, const char *rel);
/* Group many of the calls above into one transaction (one fsync). Not nestable. */
int ts_run_begin(const ts_run *run);
int ts_run_commit(const ts_run *run);

typedef struct ts_unit {
  int64_t idx;              /* position in the plan */
  const char *id;           /* unit name, unique within the stage (slide id, ...) */
} ts_unit;

typedef struct ts_units {
  int64_t n, cap;
  char **ids;
  char **fail_token;        /* NULL for a normal unit */
  char **fail_message;
  int64_t *then;            /* the unit waiting for this one (ts_units_wait), -1 none */
  char **key;               /* SHA-256 hex of the unit's own inputs, NULL when none */
} ts_units;

int ts_units_add(ts_units *u, const char *id);
/* A unit whose result depends on inputs outside the config (a slide file and its CSV row, the
 * checksums of the upstream outputs it reads): key_text is hashed; a unit recorded done under
 * another key is redone. */
int ts_units_add_keyed(ts_units *u, const char *id, const char *key_text);
/* The units of a per-slide stage (rank 0, plan): one per cohort slide, in `order` (indexes into
 * the cohort; NULL: cohort order). A slide whose id cannot be a file name goes in failed with
 * SLIDE_BAD_ID (naming the CSV line); one whose unit of stage `upstream` (NULL: none) failed goes
 * in failed with UPSTREAM_FAILED naming the upstream token. */
int ts_units_for_slides(const ts_run *run, const char *upstream, const int *order, ts_units *units);
/* The key text of a slide's unit (ts_units_add_keyed): the CSV row's path and mpp (and label
 * when with_label), the slide file's size and modification time, and, when upstream is set, the
 * checksum of the upstream unit of the same slide. Rank 0. */
int ts_unit_key_slide(const ts_run *run, const ts_cohort_row *row, const char *upstream, bool with_label, char *buf,
                      size_t n);
int ts_units_add_failed(ts_units *u, const char *id, const char *token, const char *message);
/* Unit `later` (an index in u) runs only after unit `earlier` (planned before it) is done; when
 * `earlier` fails, `later` fails with UPSTREAM_FAILED without running. A unit is waited for by
 * at most one unit (shards → the merge of their slide); a unit may wait for many. */
int ts_units_wait(ts_units *u, int64_t later, int64_t earlier);
void ts_units_clear(ts_units *u);

typedef struct ts_comm ts_comm;          /* cluster/ts_comm.h */
struct ts_report_section;                /* report/ts_report.h */

struct ts_stage {
  uint32_t abi;                    /* TS_STAGE_ABI, first so the struct can grow */
  const char *name;
  enum ts_stage_kind kind;
  const char *const *needs;        /* NULL-terminated names of stages whose outputs it reads */
  const char *const *config_keys;  /* NULL-terminated sections/keys its result depends on */
  /* SHARDED: plan and work required. */
  int (*plan)(const ts_run *run, ts_units *units);
  int (*work)(const ts_run *run, const ts_unit *unit, ts_unit_record *rec);
  int (*finish)(const ts_run *run); /* (optional) */
  uint32_t flags;                   /* (optional) TS_STAGE_* */
  /* (optional) rank 0, main thread, right after a unit was recorded done (drop intermediates
   * it consumed). Keep it short: the scheduler waits. */
  int (*unit_done)(const ts_run *run, const char *unit);
  /* ---- ABI 2 ---- */
  /* (optional) rank 0, before any stage runs: validate this stage's config keys (TS_ECONFIG). */
  int (*check)(const ts_config *cfg);
  /* (optional) rank 0: 1 = leave the stage out of this run, why says so ("no label column in
   * cohort.csv"); 0 = run it. */
  int (*skip)(const ts_run *run, char *why, size_t n);
  /* (optional) extra stages this config makes the stage need (written into out, at most max;
   * returns how many). They take part in the stage hash like needs. */
  int (*needs_for)(const ts_config *cfg, const char **out, int max);
  /* COLLECTIVE: required; every rank, main thread (see the top of this file). */
  int (*collective)(const ts_run *run, ts_comm *comm, ts_unit_record *rec);
  /* (optional) what work()'s items count, for progress and throughput ("tiles", "slides",
   * "rows"); NULL: no throughput figure. */
  const char *items_unit;
  /* (optional) what one unit is, for the lines users read ("slide", "fold"; NULL: "unit"), and
   * what a part of one is: a unit named "<unit>#<anything>" is a part of unit <unit> (a shard
   * of a slide, merged by the unit itself), counted under part_noun ("shard"). */
  const char *unit_noun;
  const char *part_noun;
  /* (optional) NULL-terminated: this stage's sections of the report. */
  const struct ts_report_section *const *report;
};

/* NULL-terminated registry, in run order. */
extern const struct ts_stage *const ts_stages[];
/* Check the registry: ABI, names unique, required pointers, needs refer to earlier stages. */
int ts_stages_check(void);
const struct ts_stage *ts_stage_find(const char *name);

/* Cohort CSV (columns slide_id, patient_id, path, optional label and mpp). Errors:
 * COHORT_MISSING_FILE, COHORT_MISSING_COLUMN, COHORT_BAD_VALUE, COHORT_DUPLICATE_ID (naming
 * file:line:column). Unsafe slide ids are kept: the stages refuse them per unit. */
int ts_cohort_parse(const char *csv_path, const char *text, ts_cohort *out);
void ts_cohort_clear(ts_cohort *c);
const ts_cohort_row *ts_cohort_find(const ts_cohort *c, const char *slide_id);

/* The folder name of an encoder's features (features/<tag>/): its name, or
 * torchscript-<file stem>, made safe as a file name. Shared by the extract stage (writer) and
 * its readers (mil). */
void ts_encoder_tag(const char *name, char *out, size_t n);

/* Absolute path of name inside the run directory. */
int ts_run_path(const ts_run *run, const char *name, char *buf, size_t n);

#endif
