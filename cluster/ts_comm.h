/* ts_comm.h — the communicator a collective stage talks to the other ranks through.
 *
 * A collective stage (api/ts_stage.h) runs on every rank's main thread at once and never calls
 * MPI itself: it gets a ts_comm from the driver. Every call here is collective: all ranks make
 * the same calls in the same order with the same sizes, or the run hangs (MPI's rule).
 *
 *     // data-parallel SGD: average the gradients of every rank's share of the batch
 *     TS_CALL(ts_comm_allreduce_f32(comm, grad, n, TS_COMM_SUM));
 *     for (int64_t i = 0; i < n; i++) grad[i] /= (float)ts_comm_size(comm);
 *     // a failure on one rank must not leave the others waiting in the next collective:
 *     rc = ts_comm_agree(comm, rc);          // the worst status of all ranks, on every rank
 *     if (rc < 0) return rc;
 *     if (ts_comm_stop_agreed(comm)) return ts_stop_error("train");  // SIGTERM on any rank
 *
 * Reductions are bitwise reproducible and identical on every rank: they are a reduction to
 * rank 0 in rank order followed by a broadcast (MPI_Reduce + MPI_Bcast), not MPI_Allreduce,
 * whose algorithm (and so its float rounding) Open MPI picks by message size and may let
 * differ between ranks. For a fixed number of ranks the same inputs give the same bits.
 *
 * Threading: only the calling (main) thread uses MPI; MPI_THREAD_FUNNELED suffices, the level
 * `tessera run` asks for (worker threads of sharded stages never call MPI either).
 * Errors: MPI_ERROR (TS_EIO) with MPI's message; COMM_ARG for a bad size.
 */
#ifndef TS_COMM_H
#define TS_COMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ts_comm ts_comm;

enum ts_comm_op { TS_COMM_SUM = 0, TS_COMM_MAX = 1, TS_COMM_MIN = 2 };

/* The world communicator (MPI must be initialised). *out is freed with ts_comm_free. */
int ts_comm_world(ts_comm **out);
void ts_comm_free(ts_comm **c);
int ts_comm_rank(const ts_comm *c);
int ts_comm_size(const ts_comm *c);

/* In place, n elements (any n >= 0; large buffers go in pieces). */
int ts_comm_allreduce_f32(ts_comm *c, float *buf, int64_t n, enum ts_comm_op op);
int ts_comm_allreduce_f64(ts_comm *c, double *buf, int64_t n, enum ts_comm_op op);
int ts_comm_allreduce_i64(ts_comm *c, int64_t *buf, int64_t n, enum ts_comm_op op);
/* bytes from root to every rank, in place. */
int ts_comm_bcast(ts_comm *c, void *buf, int64_t bytes, int root);
int ts_comm_barrier(ts_comm *c);
/* True on every rank when any rank was asked to stop (SIGTERM/SIGINT, ts_stop.h). */
bool ts_comm_stop_agreed(ts_comm *c);
/* The lowest (worst) status of all ranks, on every rank. When it is negative and this rank's
 * own status was fine, this rank's error message becomes the failing rank's (the lowest rank
 * that failed), so every rank reports the same cause. */
int ts_comm_agree(ts_comm *c, int status);

#endif
