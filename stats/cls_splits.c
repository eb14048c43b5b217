/* cls_splits.c — patient-level, label-stratified k-fold splits with a validation and a test part
 * per fold, their invariants and their CSV file (ts_classify.h says the rule).
 *
 * Where this follows CLAM (mahmoodlab/CLAM, create_splits_seq.py and utils.generate_split):
 * patients, not slides, are split (its patient_strat = True); per class, val_num and test_num are
 * np.round(n_c * frac) (half to even); every slide of a patient follows the patient. Where it
 * deliberately does not: CLAM draws each fold's test patients afresh, so its "10-fold" test sets
 * overlap and some patients are never tested (Monte-Carlo cross-validation); here the test parts
 * partition the patients whenever folds * test_frac <= 1, and only beyond that are they drawn per
 * fold. CLAM gives a patient whose slides disagree the max (or majority) label; that hides a
 * data error, so here it is SPLIT_PATIENT_LABEL_CONFLICT. CLAM fails later (an empty class
 * split) when a class is too small; here SPLIT_CLASS_TOO_SMALL says so before any training.
 * And CLAM uses numpy's global generator; here each draw has its own stream.
 *
 * Random streams: xoshiro256** (Blackman & Vigna 2018) seeded by splitmix64 over
 * (seed, purpose, fold, stratum); uniform integers below a bound by rejection (no modulo bias);
 * Fisher-Yates shuffles.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ts_classify.h"
#include "ts_io.h"

/* ------------------------------------------------------------ PRNG -------- */

typedef struct rng {
  uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng *r) {
  uint64_t *s = r->s;
  uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return out;
}

enum { PURPOSE_TEST = 1, PURPOSE_VAL = 2 };

static void rng_init(rng *r, uint64_t seed, uint64_t purpose, uint64_t fold, uint64_t stratum) {
  uint64_t h = seed;
  uint64_t k = splitmix64(&h);
  k ^= purpose * 0xd1b54a32d192ed03ULL;
  k = splitmix64(&k);
  k ^= fold * 0xaef17502108ef2d9ULL;
  k = splitmix64(&k);
  k ^= stratum * 0xf58c2d9e8e1b3a4fULL;
  for (int i = 0; i < 4; i++)
    r->s[i] = splitmix64(&k);
}

static uint64_t rng_below(rng *r, uint64_t bound) { /* uniform in [0, bound), bound >= 1 */
  uint64_t threshold = (0 - bound) % bound;
  for (;;) {
    uint64_t x = rng_next(r);
    if (x >= threshold) return x % bound;
  }
}

static void shuffle(size_t *a, size_t n, rng *r) {
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)rng_below(r, i);
    size_t t = a[i - 1];
    a[i - 1] = a[j];
    a[j] = t;
  }
}

/* ------------------------------------------------------------ names ------- */

static const char *const SET_NAMES[] = {"train", "val", "test"};

const char *ts_split_set_name(int set) {
  return set >= 0 && set <= 2 ? SET_NAMES[set] : NULL;
}

int ts_split_set_parse(const char *name) {
  for (int i = 0; name && i < 3; i++)
    if (!strcmp(name, SET_NAMES[i])) return i;
  return -1;
}

void ts_split_options_default(ts_split_options *o) {
  memset(o, 0, sizeof *o);
  o->folds = 10;
  o->val_frac = 0.1;
  o->test_frac = 0.1;
  o->seed = 1;
  o->task = TS_SPLIT_CLASSIFY;
  o->nclass = 0;
  o->nbins = 4;
}

void ts_splits_free(ts_splits **sp) {
  if (!sp || !*sp) return;
  ts_splits *s = *sp;
  for (size_t i = 0; i < s->nrow; i++) {
    free(s->rows[i].slide_id);
    free(s->rows[i].patient_id);
  }
  free(s->rows);
  free(s->stratum_patients);
  free(s->val_num);
  free(s->test_num);
  free(s->bin_upper);
  free(s->path);
  free(s);
  *sp = NULL;
}

size_t ts_splits_count(const ts_splits *sp, int fold, int set) {
  size_t c = 0;
  for (size_t i = 0; sp && i < sp->nrow; i++)
    c += sp->rows[i].fold == fold && sp->rows[i].set == set;
  return c;
}

/* ------------------------------------------------------------ the rule ---- */

/* Test block sizes of one stratum of N patients with per-fold count T (see the header). */
static size_t test_block(size_t n, size_t t, int folds, bool disjoint, int f) {
  if (!disjoint || (size_t)folds * t <= n) return t;
  return n / (size_t)folds + ((size_t)f < n % (size_t)folds);
}

static size_t round_even(double x) {
  return (size_t)nearbyint(x);
} /* FE_TONEAREST: np.round */

/* Can a stratum of N patients give every fold >= 1 test, >= 1 val and >= 1 train patient? */
static bool feasible(size_t n, const ts_split_options *o, bool disjoint) {
  size_t v = round_even((double)n * o->val_frac), t = round_even((double)n * o->test_frac);
  if (v < 1 || t < 1) return false;
  for (int f = 0; f < o->folds; f++) {
    size_t tb = test_block(n, t, o->folds, disjoint, f);
    if (tb < 1 || tb + v + 1 > n) return false;
  }
  return true;
}

static size_t min_feasible(const ts_split_options *o, bool disjoint) {
  for (size_t n = 1; n < 100000000; n = n < 1000000 ? n + 1 : n * 2)
    if (feasible(n, o, disjoint)) return n;
  return 0;
}

typedef struct srow { /* an input slide, for sorting */
  const char *slide, *patient;
  double label;
  size_t i;
} srow;

static int cmp_slide(const void *a, const void *b) {
  return strcmp(((const srow *)a)->slide, ((const srow *)b)->slide);
}
static int cmp_patient_slide(const void *a, const void *b) {
  const srow *x = a, *y = b;
  int c = strcmp(x->patient, y->patient);
  return c ? c : strcmp(x->slide, y->slide);
}

typedef struct patient {
  size_t first, count; /* slides [first, first + count) of the patient-sorted array */
  double label;
  int stratum;
} patient;

typedef struct plab { /* for regression bins: (label, patient index) */
  double label;
  size_t p;
} plab;
static int cmp_plab(const void *a, const void *b) {
  const plab *x = a, *y = b;
  if (x->label != y->label) return x->label < y->label ? -1 : 1;
  return x->p < y->p ? -1 : (x->p > y->p);
}

static char *dupstr(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

int ts_splits_make(const ts_split_slide *s, size_t n, const ts_split_options *o_in, ts_splits **splits_out) {
  ts_split_options o;
  if (o_in)
    o = *o_in;
  else
    ts_split_options_default(&o);
  if (!splits_out || (!s && n))
    return ts_error_set(TS_EINVAL, "SPLIT_BAD_ARG", "NULL slides or output pointer");
  *splits_out = NULL;
  if (o.folds < 1 || o.folds > 100000)
    return ts_error_set(TS_EINVAL, "SPLIT_BAD_ARG", "folds must be in 1..100000, not %d", o.folds);
  if (!(o.val_frac > 0 && o.val_frac < 1) || !(o.test_frac > 0 && o.test_frac < 1) ||
      !(o.val_frac + o.test_frac < 1))
    return ts_error_set(TS_EINVAL, "SPLIT_BAD_ARG",
                        "val_frac (%g) and test_frac (%g) must be in (0, 1) and sum below 1", o.val_frac,
                        o.test_frac);
  if (o.task != TS_SPLIT_CLASSIFY && o.task != TS_SPLIT_REGRESSION)
    return ts_error_set(TS_EINVAL, "SPLIT_BAD_ARG", "unknown task %d", o.task);
  if (o.task == TS_SPLIT_REGRESSION && (o.nbins < 1 || o.nbins > 1000))
    return ts_error_set(TS_EINVAL, "SPLIT_BAD_ARG", "nbins must be in 1..1000, not %d", o.nbins);
  if (o.task == TS_SPLIT_CLASSIFY && (o.nclass < 0 || o.nclass > 100000))
    return ts_error_set(TS_EINVAL, "SPLIT_BAD_ARG", "nclass must be in 0..100000, not %d", o.nclass);
  if (n == 0) return ts_error_set(TS_EINPUT, "SPLIT_NO_SLIDES", "no slides to split");

  int rc = 0;
  srow *r = NULL;
  patient *pt = NULL;
  plab *pl = NULL;
  size_t *members = NULL, *order = NULL, *tmp = NULL, *patient_of = NULL;
  signed char *set = NULL; /* folds x npatient */
  ts_splits *sp = NULL;
  size_t np = 0;
  int nstrata = 0;
  bool disjoint = (double)o.folds * o.test_frac <= 1.0 + 1e-12;

  r = malloc(n * sizeof *r);
  if (!r) goto nomem;
  for (size_t i = 0; i < n; i++) {
    if (!s[i].slide_id || !*s[i].slide_id) {
      rc = ts_error_set(TS_EINPUT, "SPLIT_BAD_ID", "row %zu: empty slide_id", i);
      goto out;
    }
    if (!s[i].patient_id || !*s[i].patient_id) {
      rc = ts_error_set(TS_EINPUT, "SPLIT_BAD_ID", "slide '%s': empty patient_id", s[i].slide_id);
      goto out;
    }
    double y = s[i].label;
    if (!isfinite(y) || (o.task == TS_SPLIT_CLASSIFY &&
                         (y < 0 || y != floor(y) || y > 100000 || (o.nclass > 0 && y >= o.nclass)))) {
      if (o.task == TS_SPLIT_CLASSIFY && o.nclass > 0)
        rc = ts_error_set(TS_EINPUT, "SPLIT_BAD_LABEL", "slide '%s': label %g is not a class 0..%d",
                          s[i].slide_id, y, o.nclass - 1);
      else
        rc = ts_error_set(TS_EINPUT, "SPLIT_BAD_LABEL", "slide '%s': label %g is not %s", s[i].slide_id, y,
                          o.task == TS_SPLIT_CLASSIFY ? "a class (an integer >= 0)" : "finite");
      goto out;
    }
    r[i] = (srow){s[i].slide_id, s[i].patient_id, y, i};
  }
  qsort(r, n, sizeof *r, cmp_slide);
  for (size_t i = 1; i < n; i++)
    if (!strcmp(r[i].slide, r[i - 1].slide)) {
      rc = ts_error_set(TS_EINPUT, "SPLIT_DUPLICATE_SLIDE", "slide '%s' is listed twice (rows %zu and %zu)",
                        r[i].slide, r[i - 1].i < r[i].i ? r[i - 1].i : r[i].i,
                        r[i - 1].i < r[i].i ? r[i].i : r[i - 1].i);
      goto out;
    }
  qsort(r, n, sizeof *r, cmp_patient_slide);

  /* patients */
  pt = calloc(n, sizeof *pt);
  if (!pt) goto nomem;
  for (size_t i = 0; i < n; i++) {
    if (i == 0 || strcmp(r[i].patient, r[i - 1].patient)) {
      pt[np++] = (patient){i, 1, r[i].label, 0};
      continue;
    }
    patient *p = &pt[np - 1];
    if (r[i].label != p->label) {
      rc = ts_error_set(TS_EINPUT, "SPLIT_PATIENT_LABEL_CONFLICT",
                        "patient '%s': slide '%s' has label %g but slide '%s' has label %g; all "
                        "slides of a patient must share the label",
                        r[i].patient, r[p->first].slide, p->label, r[i].slide, r[i].label);
      goto out;
    }
    p->count++;
  }

  /* strata */
  if (o.task == TS_SPLIT_CLASSIFY) {
    int maxl = 0;
    for (size_t p = 0; p < np; p++) {
      pt[p].stratum = (int)pt[p].label;
      if (pt[p].stratum > maxl) maxl = pt[p].stratum;
    }
    nstrata = o.nclass > 0 ? o.nclass : maxl + 1;
  } else {
    nstrata = o.nbins;
    pl = malloc(np * sizeof *pl);
    if (!pl) goto nomem;
    for (size_t p = 0; p < np; p++)
      pl[p] = (plab){pt[p].label, p};
    qsort(pl, np, sizeof *pl, cmp_plab);
    for (size_t i = 0; i < np; i++)
      pt[pl[i].p].stratum = (int)((i * (size_t)nstrata) / np);
  }

  sp = calloc(1, sizeof *sp);
  if (!sp) goto nomem;
  sp->folds = o.folds;
  sp->task = o.task;
  sp->test_disjoint = disjoint;
  sp->nstrata = nstrata;
  sp->stratum_patients = calloc((size_t)nstrata, sizeof(size_t));
  sp->val_num = calloc((size_t)nstrata, sizeof(size_t));
  sp->test_num = calloc((size_t)nstrata, sizeof(size_t));
  if (!sp->stratum_patients || !sp->val_num || !sp->test_num) goto nomem;
  if (o.task == TS_SPLIT_REGRESSION) {
    sp->bin_upper = malloc((size_t)nstrata * sizeof(double));
    if (!sp->bin_upper) goto nomem;
    for (int c = 0; c < nstrata; c++)
      sp->bin_upper[c] = NAN;
    for (size_t i = 0; i < np; i++)
      sp->bin_upper[pt[pl[i].p].stratum] = pl[i].label;
  }
  for (size_t p = 0; p < np; p++)
    sp->stratum_patients[pt[p].stratum]++;
  for (int c = 0; c < nstrata; c++) {
    size_t nc = sp->stratum_patients[c];
    sp->val_num[c] = round_even((double)nc * o.val_frac);
    sp->test_num[c] = round_even((double)nc * o.test_frac);
    if (!feasible(nc, &o, disjoint)) {
      size_t need = min_feasible(&o, disjoint);
      char what[128];
      if (o.task == TS_SPLIT_CLASSIFY)
        snprintf(what, sizeof what, "class %d", c);
      else
        snprintf(what, sizeof what, "label bin %d of %d (quantile bin up to %g)", c + 1, nstrata,
                 sp->bin_upper[c]);
      rc = ts_error_set(TS_EINPUT, "SPLIT_CLASS_TOO_SMALL",
                        "%s has %zu patients: %d folds with val %g and test %g (%zu val, %zu test "
                        "patients per fold) need at least %zu patients in every %s",
                        what, nc, o.folds, o.val_frac, o.test_frac, sp->val_num[c], sp->test_num[c], need,
                        o.task == TS_SPLIT_CLASSIFY ? "class" : "bin");
      goto out;
    }
  }

  /* assignment: set[f * np + p] */
  set = malloc((size_t)o.folds * np);
  members = malloc(np * sizeof *members);
  order = malloc(np * sizeof *order);
  tmp = malloc(np * sizeof *tmp);
  if (!set || !members || !order || !tmp) goto nomem;
  memset(set, TS_SET_TRAIN, (size_t)o.folds * np);
  for (int c = 0; c < nstrata; c++) {
    size_t nc = 0;
    for (size_t p = 0; p < np; p++)
      if (pt[p].stratum == c) members[nc++] = p; /* patient_id order */
    size_t t = sp->test_num[c], v = sp->val_num[c];
    rng g;
    if (disjoint) {
      memcpy(order, members, nc * sizeof *order);
      rng_init(&g, o.seed, PURPOSE_TEST, 0, (uint64_t)c);
      shuffle(order, nc, &g);
    }
    size_t off = 0;
    for (int f = 0; f < o.folds; f++) {
      signed char *sf = set + (size_t)f * np;
      size_t tb = test_block(nc, t, o.folds, disjoint, f);
      if (disjoint) {
        for (size_t k = 0; k < tb; k++)
          sf[order[off + k]] = TS_SET_TEST;
        off += tb;
      } else {
        memcpy(order, members, nc * sizeof *order);
        rng_init(&g, o.seed, PURPOSE_TEST, (uint64_t)f + 1, (uint64_t)c);
        shuffle(order, nc, &g);
        for (size_t k = 0; k < tb; k++)
          sf[order[k]] = TS_SET_TEST;
      }
      size_t nrest = 0;
      for (size_t k = 0; k < nc; k++)
        if (sf[members[k]] != TS_SET_TEST) tmp[nrest++] = members[k];
      rng_init(&g, o.seed, PURPOSE_VAL, (uint64_t)f, (uint64_t)c);
      shuffle(tmp, nrest, &g);
      for (size_t k = 0; k < v; k++)
        sf[tmp[k]] = TS_SET_VAL;
    }
  }

  /* rows: fold, set, slide_id. r is still in patient order here: map each slide to its patient
   * before sorting r by slide_id. */
  patient_of = malloc(n * sizeof *patient_of); /* by input index */
  if (!patient_of) goto nomem;
  for (size_t p = 0; p < np; p++)
    for (size_t k = pt[p].first; k < pt[p].first + pt[p].count; k++)
      patient_of[r[k].i] = p;
  qsort(r, n, sizeof *r, cmp_slide);
  {
    sp->nrow = (size_t)o.folds * n;
    sp->rows = calloc(sp->nrow, sizeof *sp->rows);
    if (!sp->rows) {
      sp->nrow = 0;
      goto nomem;
    }
    size_t k = 0;
    for (int f = 0; f < o.folds; f++)
      for (int st = TS_SET_TRAIN; st <= TS_SET_TEST; st++)
        for (size_t i = 0; i < n; i++) {
          size_t p = patient_of[r[i].i];
          if (set[(size_t)f * np + p] != st) continue;
          ts_split_row *w = &sp->rows[k++];
          w->fold = f;
          w->set = st;
          w->label = r[i].label;
          w->slide_id = dupstr(r[i].slide);
          w->patient_id = dupstr(r[i].patient);
          if (!w->slide_id || !w->patient_id) goto nomem;
        }
  }
  *splits_out = sp;
  sp = NULL;
  goto out;

nomem:
  rc = ts_error_set(TS_ENOMEM, "SPLIT_NOMEM", "out of memory making splits of %zu slides", n);
out:
  free(r);
  free(pt);
  free(pl);
  free(members);
  free(order);
  free(tmp);
  free(set);
  free(patient_of);
  ts_splits_free(&sp);
  return rc;
}

/* ------------------------------------------------------------ checks ------ */

static void where(const ts_splits *sp, const ts_split_row *w, char *buf, size_t n) {
  if (w->line && sp->path)
    snprintf(buf, n, "%s:%zu", sp->path, w->line);
  else if (w->line)
    snprintf(buf, n, "line %zu", w->line);
  else
    snprintf(buf, n, "row %zu", (size_t)(w - sp->rows));
}

static int cmp_fold_slide(const void *a, const void *b) {
  const ts_split_row *x = *(const ts_split_row *const *)a, *y = *(const ts_split_row *const *)b;
  if (x->fold != y->fold) return x->fold < y->fold ? -1 : 1;
  int c = strcmp(x->slide_id, y->slide_id);
  return c ? c : (x < y ? -1 : (x > y));
}
static int cmp_fold_patient(const void *a, const void *b) {
  const ts_split_row *x = *(const ts_split_row *const *)a, *y = *(const ts_split_row *const *)b;
  if (x->fold != y->fold) return x->fold < y->fold ? -1 : 1;
  int c = strcmp(x->patient_id, y->patient_id);
  return c ? c : (x < y ? -1 : (x > y));
}
static int cmp_slide_row(const void *a, const void *b) {
  const ts_split_row *x = *(const ts_split_row *const *)a, *y = *(const ts_split_row *const *)b;
  int c = strcmp(x->slide_id, y->slide_id);
  return c ? c : (x < y ? -1 : (x > y));
}
static int cmp_patient_row(const void *a, const void *b) {
  const ts_split_row *x = *(const ts_split_row *const *)a, *y = *(const ts_split_row *const *)b;
  int c = strcmp(x->patient_id, y->patient_id);
  if (c) return c;
  if (x->fold != y->fold) return x->fold < y->fold ? -1 : 1;
  return x < y ? -1 : (x > y);
}

/* Whether any patient is in the test sets of two folds; *a, *b the two rows. */
static int test_overlap(const ts_splits *sp, const ts_split_row **a, const ts_split_row **b) {
  const ts_split_row **v = malloc((sp->nrow ? sp->nrow : 1) * sizeof *v);
  if (!v) return ts_error_set(TS_ENOMEM, "SPLIT_NOMEM", "out of memory checking splits");
  size_t m = 0;
  for (size_t i = 0; i < sp->nrow; i++)
    if (sp->rows[i].set == TS_SET_TEST) v[m++] = &sp->rows[i];
  qsort(v, m, sizeof *v, cmp_patient_row);
  int found = 0;
  for (size_t i = 1; i < m && !found; i++)
    if (!strcmp(v[i]->patient_id, v[i - 1]->patient_id) && v[i]->fold != v[i - 1]->fold) {
      *a = v[i - 1];
      *b = v[i];
      found = 1;
    }
  free(v);
  return found;
}

int ts_splits_check(const ts_splits *sp, bool require_disjoint_test) {
  if (!sp) return ts_error_set(TS_EINVAL, "SPLIT_BAD_ARG", "NULL splits");
  char wa[TS_PATH_MAX + 32], wb[TS_PATH_MAX + 32];
  if (sp->folds < 1) return ts_error_set(TS_EINPUT, "SPLITS_MISSING_SET", "the splits have no fold");
  for (size_t i = 0; i < sp->nrow; i++) {
    const ts_split_row *w = &sp->rows[i];
    if (w->fold < 0 || w->fold >= sp->folds || !ts_split_set_name(w->set)) {
      where(sp, w, wa, sizeof wa);
      return ts_error_set(TS_EINPUT,
                          w->fold < 0 || w->fold >= sp->folds ? "SPLITS_BAD_FOLD" : "SPLITS_UNKNOWN_SET",
                          "%s: fold %d set %d out of range", wa, w->fold, w->set);
    }
  }
  for (int f = 0; f < sp->folds; f++)
    for (int st = 0; st < 3; st++)
      if (ts_splits_count(sp, f, st) == 0) {
        size_t first = 0;
        for (size_t i = 0; i < sp->nrow && !first; i++)
          if (sp->rows[i].fold == f) first = i + 1;
        if (first) where(sp, &sp->rows[first - 1], wa, sizeof wa);
        return ts_error_set(TS_EINPUT, "SPLITS_MISSING_SET", "fold %d has no %s slide%s%s", f,
                            ts_split_set_name(st), first ? " (its first row: " : "",
                            first ? strcat(wa, ")") : "");
      }
  int rc = 0;
  const ts_split_row **v = malloc((sp->nrow ? sp->nrow : 1) * sizeof *v);
  if (!v) return ts_error_set(TS_ENOMEM, "SPLIT_NOMEM", "out of memory checking splits");
  for (size_t i = 0; i < sp->nrow; i++)
    v[i] = &sp->rows[i];
  /* one slide once per fold */
  qsort(v, sp->nrow, sizeof *v, cmp_fold_slide);
  for (size_t i = 1; i < sp->nrow; i++)
    if (v[i]->fold == v[i - 1]->fold && !strcmp(v[i]->slide_id, v[i - 1]->slide_id)) {
      where(sp, v[i - 1], wa, sizeof wa);
      where(sp, v[i], wb, sizeof wb);
      rc = ts_error_set(TS_EINPUT, "SPLITS_DUPLICATE_SLIDE",
                        "%s: slide '%s' is in fold %d twice (%s in %s, %s in %s)", wb, v[i]->slide_id,
                        v[i]->fold, wa, ts_split_set_name(v[i - 1]->set), wb, ts_split_set_name(v[i]->set));
      goto out;
    }
  /* one patient in one set per fold */
  qsort(v, sp->nrow, sizeof *v, cmp_fold_patient);
  for (size_t i = 1; i < sp->nrow; i++)
    if (v[i]->fold == v[i - 1]->fold && !strcmp(v[i]->patient_id, v[i - 1]->patient_id) &&
        v[i]->set != v[i - 1]->set) {
      where(sp, v[i - 1], wa, sizeof wa);
      where(sp, v[i], wb, sizeof wb);
      rc =
          ts_error_set(TS_EINPUT, "SPLITS_PATIENT_SPLIT",
                       "%s: patient '%s' is in two sets of fold %d: slide '%s' in %s (%s), slide "
                       "'%s' in %s (%s)",
                       wb, v[i]->patient_id, v[i]->fold, v[i - 1]->slide_id, ts_split_set_name(v[i - 1]->set),
                       wa, v[i]->slide_id, ts_split_set_name(v[i]->set), wb);
      goto out;
    }
  /* labels: per slide across folds, per patient */
  qsort(v, sp->nrow, sizeof *v, cmp_slide_row);
  for (size_t i = 1; i < sp->nrow; i++)
    if (!strcmp(v[i]->slide_id, v[i - 1]->slide_id) &&
        (v[i]->label != v[i - 1]->label || strcmp(v[i]->patient_id, v[i - 1]->patient_id))) {
      where(sp, v[i - 1], wa, sizeof wa);
      where(sp, v[i], wb, sizeof wb);
      rc = ts_error_set(TS_EINPUT, "SPLITS_LABEL_CONFLICT",
                        "%s: slide '%s' has patient '%s' label %g here but patient '%s' label %g at %s", wb,
                        v[i]->slide_id, v[i]->patient_id, v[i]->label, v[i - 1]->patient_id, v[i - 1]->label,
                        wa);
      goto out;
    }
  qsort(v, sp->nrow, sizeof *v, cmp_patient_row);
  for (size_t i = 1; i < sp->nrow; i++)
    if (!strcmp(v[i]->patient_id, v[i - 1]->patient_id) && v[i]->label != v[i - 1]->label) {
      where(sp, v[i - 1], wa, sizeof wa);
      where(sp, v[i], wb, sizeof wb);
      rc = ts_error_set(TS_EINPUT, "SPLITS_LABEL_CONFLICT",
                        "%s: patient '%s': slide '%s' has label %g but slide '%s' has label %g (%s)", wb,
                        v[i]->patient_id, v[i]->slide_id, v[i]->label, v[i - 1]->slide_id, v[i - 1]->label,
                        wa);
      goto out;
    }
  if (require_disjoint_test) {
    const ts_split_row *a = NULL, *b = NULL;
    int o = test_overlap(sp, &a, &b);
    if (o < 0) {
      rc = o;
      goto out;
    }
    if (o) {
      where(sp, a, wa, sizeof wa);
      where(sp, b, wb, sizeof wb);
      rc = ts_error_set(TS_EINPUT, "SPLITS_TEST_OVERLAP",
                        "%s: patient '%s' is in the test sets of folds %d (%s) and %d (%s)", wb,
                        a->patient_id, a->fold, wa, b->fold, wb);
      goto out;
    }
  }
out:
  free(v);
  return rc;
}

/* ------------------------------------------------------------ CSV --------- */

static const char HEADER[] = "fold,set,slide_id,patient_id,label";

static int put_field(FILE *f, const char *s) {
  if (!strpbrk(s, ",\"\r\n")) return fputs(s, f) < 0 ? -1 : 0;
  if (fputc('"', f) == EOF) return -1;
  for (; *s; s++) {
    if (*s == '"' && fputc('"', f) == EOF) return -1;
    if (fputc(*s, f) == EOF) return -1;
  }
  return fputc('"', f) == EOF ? -1 : 0;
}

static void fmt_label(double x, char *buf, size_t n) {
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, n, "%.*g", prec, x);
    if (strtod(buf, NULL) == x) return;
  }
}

int ts_splits_write_csv(const ts_splits *sp, const char *path) {
  if (!sp || !path) return ts_error_set(TS_EINVAL, "SPLIT_BAD_ARG", "NULL splits or path");
  char tmp[TS_PATH_MAX];
  TS_CALL(ts_io_tmp_path(path, tmp, sizeof tmp));
  FILE *f = fopen(tmp, "w");
  if (!f) return ts_error_set(TS_EIO, "IO_OPEN", "cannot create %s: %s", tmp, strerror(errno));
  bool bad = fprintf(f, "%s\n", HEADER) < 0;
  for (size_t i = 0; i < sp->nrow && !bad; i++) {
    const ts_split_row *w = &sp->rows[i];
    char lab[64];
    fmt_label(w->label, lab, sizeof lab);
    bad = fprintf(f, "%d,%s,", w->fold, ts_split_set_name(w->set) ? ts_split_set_name(w->set) : "?") < 0 ||
          put_field(f, w->slide_id) < 0 || fputc(',', f) == EOF || put_field(f, w->patient_id) < 0 ||
          fprintf(f, ",%s\n", lab) < 0;
  }
  if (fclose(f) != 0) bad = true;
  if (bad) {
    int e = errno;
    unlink(tmp);
    return ts_error_set(TS_EIO, "IO_WRITE", "cannot write %s: %s", tmp, strerror(e));
  }
  int rc = ts_io_commit(tmp, path);
  if (rc < 0) unlink(tmp);
  return rc;
}

/* Split one CSV record (the line without its end) into at most MAXC cells in place. Returns the
 * number of cells, or -1 for an unterminated quote. */
static int split_cells(char *s, char **cell, int maxc) {
  int nc = 0;
  for (;;) {
    char *out = s, *start = s;
    if (*s == '"') {
      s++;
      for (;;) {
        if (!*s) return -1;
        if (*s == '"') {
          if (s[1] == '"') {
            *out++ = '"';
            s += 2;
            continue;
          }
          s++;
          break;
        }
        *out++ = *s++;
      }
      if (*s && *s != ',') return -1;
    } else {
      while (*s && *s != ',')
        *out++ = *s++;
    }
    char sep = *s;
    *out = 0;
    if (nc < maxc) cell[nc] = start;
    nc++;
    if (!sep) break;
    s++;
  }
  return nc;
}

int ts_splits_read_csv(const char *path, ts_splits **splits_out) {
  if (!path || !splits_out) return ts_error_set(TS_EINVAL, "SPLIT_BAD_ARG", "NULL path or output");
  *splits_out = NULL;
  char *data = NULL;
  size_t len = 0;
  if (ts_io_read_all(path, &data, &len) < 0)
    return ts_error_set(TS_EIO, "SPLITS_UNREADABLE", "cannot read the splits file %s: %s", path,
                        ts_error_detail());
  int rc = 0;
  ts_splits *sp = calloc(1, sizeof *sp);
  size_t cap = 0;
  if (!sp || !(sp->path = dupstr(path))) goto nomem;
  sp->task = TS_SPLIT_CLASSIFY;
  bool header = false;
  int maxfold = -1;
  size_t lineno = 0;
  for (char *s = data, *next; s && s < data + len; s = next) {
    lineno++;
    /* a quoted cell may hold a line break: find the record's end outside quotes */
    bool q = false;
    char *e = s;
    while (e < data + len && (q || *e != '\n')) {
      if (*e == '"') q = !q;
      e++;
    }
    size_t extra_lines = 0;
    for (char *c = s; c < e; c++)
      extra_lines += *c == '\n';
    next = e < data + len ? e + 1 : NULL;
    *e = 0;
    if (e > s && e[-1] == '\r') e[-1] = 0;
    size_t line = lineno;
    lineno += extra_lines;
    if (!*s) continue; /* blank line */
    char *cell[5];
    int nc = split_cells(s, cell, 5);
    if (!header) {
      if (nc != 5 || strcmp(cell[0], "fold") || strcmp(cell[1], "set") || strcmp(cell[2], "slide_id") ||
          strcmp(cell[3], "patient_id") || strcmp(cell[4], "label")) {
        rc = ts_error_set(TS_EINPUT, "SPLITS_BAD_HEADER", "%s:%zu: the header must be exactly '%s'", path,
                          line, HEADER);
        goto out;
      }
      header = true;
      continue;
    }
    if (nc != 5) {
      rc = ts_error_set(TS_EINPUT, "SPLITS_RAGGED", "%s:%zu: %d cells, expected 5 (%s)", path, line,
                        nc < 0 ? 0 : nc, nc < 0 ? "unterminated quote" : HEADER);
      goto out;
    }
    char *end = NULL;
    errno = 0;
    long fold = strtol(cell[0], &end, 10);
    if (!*cell[0] || *end || errno || fold < 0 || fold > 100000) {
      rc = ts_error_set(TS_EINPUT, "SPLITS_BAD_FOLD", "%s:%zu: fold '%s' is not an integer in 0..100000",
                        path, line, cell[0]);
      goto out;
    }
    int st = ts_split_set_parse(cell[1]);
    if (st < 0) {
      rc = ts_error_set(TS_EINPUT, "SPLITS_UNKNOWN_SET", "%s:%zu: set '%s' is not one of train, val, test",
                        path, line, cell[1]);
      goto out;
    }
    if (!*cell[2] || !*cell[3]) {
      rc = ts_error_set(TS_EINPUT, "SPLITS_BAD_ID", "%s:%zu: empty %s", path, line,
                        !*cell[2] ? "slide_id" : "patient_id");
      goto out;
    }
    double lab = strtod(cell[4], &end);
    if (!*cell[4] || *end || !isfinite(lab)) {
      rc = ts_error_set(TS_EINPUT, "SPLITS_BAD_LABEL", "%s:%zu: label '%s' is not a finite number", path,
                        line, cell[4]);
      goto out;
    }
    if (lab != floor(lab)) sp->task = TS_SPLIT_REGRESSION;
    if (sp->nrow == cap) {
      size_t nc2 = cap ? 2 * cap : 256;
      ts_split_row *nr = realloc(sp->rows, nc2 * sizeof *nr);
      if (!nr) goto nomem;
      sp->rows = nr;
      cap = nc2;
    }
    ts_split_row *w = &sp->rows[sp->nrow];
    memset(w, 0, sizeof *w);
    sp->nrow++;
    w->fold = (int)fold;
    w->set = st;
    w->label = lab;
    w->line = line;
    w->slide_id = dupstr(cell[2]);
    w->patient_id = dupstr(cell[3]);
    if (!w->slide_id || !w->patient_id) goto nomem;
    if (fold > maxfold) maxfold = (int)fold;
  }
  if (!header || sp->nrow == 0) {
    rc = ts_error_set(TS_EINPUT, "SPLITS_EMPTY", "%s: %s", path,
                      header ? "no rows after the header" : "empty file (no header)");
    goto out;
  }
  sp->folds = maxfold + 1;
  for (int f = 0; f < sp->folds; f++) {
    bool seen = false;
    for (size_t i = 0; i < sp->nrow && !seen; i++)
      seen = sp->rows[i].fold == f;
    if (!seen) {
      rc =
          ts_error_set(TS_EINPUT, "SPLITS_FOLD_GAP",
                       "%s: folds must be numbered 0..%d without gaps: fold %d has no row", path, maxfold, f);
      goto out;
    }
  }
  TS_TRY(ts_splits_check(sp, false));
  {
    const ts_split_row *a, *b;
    int o = test_overlap(sp, &a, &b);
    if (o < 0) {
      rc = o;
      goto out;
    }
    sp->test_disjoint = !o;
  }
  *splits_out = sp;
  sp = NULL;
  goto out;
nomem:
  rc = ts_error_set(TS_ENOMEM, "SPLIT_NOMEM", "out of memory reading %s", path);
out:
  free(data);
  ts_splits_free(&sp);
  return rc;
}
