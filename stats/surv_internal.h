/* surv_internal.h — shared-internal helpers of the survival module (not a public API). */
#ifndef TS_SURV_INTERNAL_H
#define TS_SURV_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "ts_survival.h"

/* Order of rows: by stratum (ascending), then time DEscending, then event ascending (censored
 * before events at a tied time: the order R's C routines use). idx_out has n entries. */
int ts__surv_order_desc(const ts_surv_data *d, size_t *idx_out);
/* Sort of idx by key ascending (key indexed by idx values), ties by idx value. */
void ts__surv_sort_by(size_t *idx, size_t n, const double *key);

/* Stable LSD radix sort of (KEY, VAL) pairs by KEY ascending; SCRATCH from ts__radix_scratch(n)
 * (malloc'ed, the caller frees it). ts__radix_dkey maps a double to a key with the same order
 * (-0 and +0 equal; no NaN). */
int ts__radix_sort(uint64_t *key, size_t *val, size_t n, void *scratch);
void *ts__radix_scratch(size_t n);
uint64_t ts__radix_dkey(double x);

/* malloc/calloc for large work arrays (freed with free): on transparent huge pages above 8 MB. */
void *ts__big_alloc(size_t bytes);
void *ts__big_calloc(size_t n, size_t size);

/* R's cholesky2/chsolve2/chinv2 (survival/src): LDL' in place on a symmetric n x n row-major
 * matrix; pivots below toler * max(diag) are zeroed (aliased columns). Returns the rank. */
int ts__chol(double *a, int n, double toler);
void ts__chsolve(const double *a, int n, double *b);
void ts__chinv(double *a, int n); /* a := inverse (zero rows/cols where singular) */

static inline double ts__w(const ts_surv_data *d, size_t i) { return d->weight ? d->weight[i] : 1.0; }
static inline int ts__s(const ts_surv_data *d, size_t i) { return d->strata ? d->strata[i] : 0; }

#endif
