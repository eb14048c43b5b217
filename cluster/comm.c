/* comm.c — the communicator of collective stages over MPI (see ts_comm.h). */
#include "ts_comm.h"

#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "ts_error.h"
#include "ts_stop.h"

struct ts_comm {
  MPI_Comm comm;
  int rank, size;
};

static int mpi_fail(int e, const char *what) {
  char s[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(e, s, &len);
  return ts_error_set(TS_EIO, "MPI_ERROR", "%s: %s", what, s);
}

int ts_comm_world(ts_comm **out) {
  *out = NULL;
  ts_comm *c = calloc(1, sizeof *c);
  if (!c) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "communicator");
  int e = MPI_Comm_dup(MPI_COMM_WORLD, &c->comm); /* its own context: no tag clash with the scheduler */
  if (e != MPI_SUCCESS) {
    free(c);
    return mpi_fail(e, "MPI_Comm_dup");
  }
  MPI_Comm_rank(c->comm, &c->rank);
  MPI_Comm_size(c->comm, &c->size);
  *out = c;
  return 0;
}

void ts_comm_free(ts_comm **c) {
  if (!c || !*c) return;
  MPI_Comm_free(&(*c)->comm);
  free(*c);
  *c = NULL;
}

int ts_comm_rank(const ts_comm *c) { return c ? c->rank : -1; }
int ts_comm_size(const ts_comm *c) { return c ? c->size : 0; }

static MPI_Op mpi_op(enum ts_comm_op op) { return op == TS_COMM_MAX ? MPI_MAX : op == TS_COMM_MIN ? MPI_MIN : MPI_SUM; }

/* Reduce to rank 0 (Open MPI's reduce to a root combines in a fixed order for a fixed size),
 * then broadcast: every rank gets rank 0's bits. */
static int allreduce(ts_comm *c, void *buf, int64_t n, MPI_Datatype t, size_t esize, enum ts_comm_op op) {
  if (n < 0 || (n > 0 && !buf)) return ts_error_set(TS_EINVAL, "COMM_ARG", "allreduce of %lld elements", (long long)n);
  const int64_t piece = INT_MAX / 8;
  for (int64_t off = 0; off < n; off += piece) {
    int k = (int)(n - off < piece ? n - off : piece);
    char *p = (char *)buf + (size_t)off * esize;
    int e = MPI_Reduce(c->rank == 0 ? MPI_IN_PLACE : p, c->rank == 0 ? p : NULL, k, t, mpi_op(op), 0, c->comm);
    if (e != MPI_SUCCESS) return mpi_fail(e, "MPI_Reduce");
    if ((e = MPI_Bcast(p, k, t, 0, c->comm)) != MPI_SUCCESS) return mpi_fail(e, "MPI_Bcast");
  }
  return 0;
}

int ts_comm_allreduce_f32(ts_comm *c, float *buf, int64_t n, enum ts_comm_op op) {
  return allreduce(c, buf, n, MPI_FLOAT, sizeof *buf, op);
}
int ts_comm_allreduce_f64(ts_comm *c, double *buf, int64_t n, enum ts_comm_op op) {
  return allreduce(c, buf, n, MPI_DOUBLE, sizeof *buf, op);
}
int ts_comm_allreduce_i64(ts_comm *c, int64_t *buf, int64_t n, enum ts_comm_op op) {
  return allreduce(c, buf, n, MPI_INT64_T, sizeof *buf, op);
}

int ts_comm_bcast(ts_comm *c, void *buf, int64_t bytes, int root) {
  if (bytes < 0 || root < 0 || root >= c->size) return ts_error_set(TS_EINVAL, "COMM_ARG", "broadcast of %lld bytes from rank %d", (long long)bytes, root);
  for (int64_t off = 0; off < bytes; off += INT_MAX) {
    int k = (int)(bytes - off < INT_MAX ? bytes - off : INT_MAX);
    int e = MPI_Bcast((char *)buf + off, k, MPI_BYTE, root, c->comm);
    if (e != MPI_SUCCESS) return mpi_fail(e, "MPI_Bcast");
  }
  return 0;
}

int ts_comm_barrier(ts_comm *c) {
  int e = MPI_Barrier(c->comm);
  return e == MPI_SUCCESS ? 0 : mpi_fail(e, "MPI_Barrier");
}

bool ts_comm_stop_agreed(ts_comm *c) {
  int stop = ts_stop_requested() ? 1 : 0;
  if (MPI_Allreduce(MPI_IN_PLACE, &stop, 1, MPI_INT, MPI_MAX, c->comm) != MPI_SUCCESS) return true;
  if (stop && !ts_stop_requested()) ts_stop_request(15); /* the whole run stops, this rank too */
  return stop != 0;
}

int ts_comm_agree(ts_comm *c, int status) {
  int v[2] = {status < 0 ? status : 0, status < 0 ? c->rank : c->size}, worst[2];
  /* the worst status, and the lowest rank that has it */
  int e = MPI_Allreduce(&v[0], &worst[0], 1, MPI_INT, MPI_MIN, c->comm);
  if (e != MPI_SUCCESS) return mpi_fail(e, "MPI_Allreduce");
  if (worst[0] == 0) return status > 0 ? status : 0;
  if (v[0] != worst[0]) v[1] = c->size;
  if ((e = MPI_Allreduce(&v[1], &worst[1], 1, MPI_INT, MPI_MIN, c->comm)) != MPI_SUCCESS) return mpi_fail(e, "MPI_Allreduce");
  char tok[64], msg[1024];
  snprintf(tok, sizeof tok, "%s", ts_error_token());
  snprintf(msg, sizeof msg, "%s", ts_error_message());
  if ((e = MPI_Bcast(tok, sizeof tok, MPI_CHAR, worst[1], c->comm)) != MPI_SUCCESS ||
      (e = MPI_Bcast(msg, sizeof msg, MPI_CHAR, worst[1], c->comm)) != MPI_SUCCESS)
    return mpi_fail(e, "MPI_Bcast");
  tok[sizeof tok - 1] = msg[sizeof msg - 1] = '\0';
  if (c->rank != worst[1]) {
    const char *detail = strncmp(msg, tok, strlen(tok)) == 0 && msg[strlen(tok)] == ':' ? msg + strlen(tok) + 2 : msg;
    ts_error_set(worst[0], tok, "rank %d: %s", worst[1], detail);
  }
  return worst[0];
}
