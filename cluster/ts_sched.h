/* ts_sched.h — the MPI coordinator/worker loop of one sharded stage.
 *
 * Rank 0 holds the queue of units and hands them out dynamically: a rank asks for the next
 * unit when it finishes one (its request carries the previous result). Rank 0 works too:
 * a worker thread on rank 0 pulls from the same queue, while rank 0's main thread serves the
 * other ranks and calls on_result — the only place the ledger is written. A failed unit is
 * retried (on any rank) until max_attempts; then it is reported failed. Nobody spins: waits
 * poll MPI with a sleep that backs off to 1 ms, so idle ranks leave the cores to workers.
 *
 * Dependencies: a unit may wait for others (`then` below: unit i, when done, lets unit then[i]
 * go). A waiting unit is handed out, ahead of the queue, once every unit it waits for is done;
 * when one of them fails for good, it fails with UPSTREAM_FAILED without running. Sub-slide
 * shards and the merge unit of their slide use this.
 *
 * Messages (tags in sched.c): REQUEST worker→0 {previous result or none, then its bad items:
 * variable length}, UNIT 0→worker {idx, id} or {idx = -1} when the stage is over.
 *
 * MPI must be initialised with at least MPI_THREAD_FUNNELED: only the main thread calls MPI.
 */
#ifndef TS_SCHED_H
#define TS_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ts_unit.h"

typedef struct ts_sched_result {
  int64_t idx;
  const char *id;
  bool ok;
  int rank, attempts;
  double seconds;
  ts_unit_record rec;         /* when ok (rec.bad valid during the call only) */
  char token[64];             /* when failed */
  char message[1024];
} ts_sched_result;

typedef struct ts_sched_cb {
  void *ctx;
  /* Any rank, any thread: do unit (idx, id). Fills rec; negative status + ts_error on failure.
   * The scheduler computes rec->checksum and rec->bytes of rec->output afterwards through
   * checksum (below) when rec->output is set. */
  int (*work)(void *ctx, int64_t idx, const char *id, ts_unit_record *rec);
  /* Rank 0 main thread: a unit is finished (done, or failed for the last time). */
  int (*on_result)(void *ctx, const ts_sched_result *r);
  /* Any rank: absolute path of a run-relative output (for the checksum). */
  int (*output_path)(void *ctx, const char *rel, char *buf, size_t n);
  const char *stage;          /* for progress lines */
  const char *items_unit;     /* what rec->items counts ("tiles"), NULL: no throughput figure */
  int max_attempts;
  bool progress;              /* rank 0: print progress to stderr */
} ts_sched_cb;

/* Collective over MPI_COMM_WORLD. On rank 0, ids/idx list the n units to run, in the order
 * they are handed out; then (NULL: no dependencies) gives for each unit the position (0..n-1)
 * of the one unit that waits for it, or -1. Other ranks pass n = 0. Returns 0, or a negative
 * status when the coordinator itself failed (ledger) or `then` is not a forest (SCHED_DEPS). */
int ts_sched_stage(const ts_sched_cb *cb, const char *const *ids, const int64_t *idx, const int64_t *then,
                   int64_t n);

#endif
