/* ts_classify.h — cross-validation splits and evaluation statistics of slide classifiers and
 * regressors (the mil stage's numbers): patient-level stratified k-fold splits with a
 * validation and a test part per fold (CLAM's scheme), their CSV file, ROC AUC with its DeLong
 * variance and confidence interval, ROC curve points, accuracy, balanced accuracy, F1, one-vs-rest
 * multiclass AUC, and Pearson / Spearman correlation with Fisher-z intervals.
 * Pure C (no MPI, HDF5 or LibTorch). Validated against R's pROC 1.18 and stats::cor.test and
 * scikit-learn 1.2 at test time: tests/test_classify.c.
 *
 * A worked example (error handling shortened; every int function returns 0 or a negative TS_E*
 * code and leaves "TOKEN: message" in ts_error_message()):
 *
 *     ts_split_slide s[] = {{"s1", "p1", 0}, {"s2", "p1", 0}, {"s3", "p2", 1}, ...};
 *     ts_split_options o;  ts_split_options_default(&o);   // 10 folds, val 0.1, test 0.1
 *     o.seed = run_seed;
 *     ts_splits *sp = NULL;
 *     rc = ts_splits_make(s, n, &o, &sp);      // SPLIT_CLASS_TOO_SMALL, SPLIT_PATIENT_LABEL_...
 *     rc = ts_splits_write_csv(sp, "mil/splits.csv");          // fold,set,slide_id,patient_id,label
 *     for (size_t i = 0; i < sp->nrow; i++)
 *       if (sp->rows[i].fold == k && sp->rows[i].set == TS_SET_TEST) ... // fold k's test slides
 *     ts_splits_free(&sp);
 *
 *     ts_auc a;                                  // y: 0 = control, 1 = case; higher score = case
 *     rc = ts_auc_delong(y, p1, n, 0.95, &a);   // a.auc, a.se, a.lower, a.upper (pROC's numbers)
 *
 * Conventions
 *  - Labels of classification are integers 0..C-1 carried in a double; regression labels are
 *    any finite number. Scores are finite doubles, higher = more likely class 1 (pROC's
 *    direction "<" with levels c(0, 1)).
 *  - Ownership: ts_splits_make / ts_splits_read_csv allocate a ts_splits the caller frees with
 *    ts_splits_free(&sp) (accepts NULL, sets NULL). Input arrays and strings are borrowed for
 *    the call only (the splits keep copies). ts_roc_curve_new's curve: ts_roc_curve_free.
 *  - Thread safety: every function is reentrant; errors go to the thread-local ts_error.
 *  - Randomness: only the splits draw random numbers, from their own xoshiro256** generator
 *    seeded by splitmix64 from (seed, purpose, fold, stratum): never rand(), never global state,
 *    so the same seed gives the same splits on any machine and in any process.
 */
#ifndef TS_CLASSIFY_H
#define TS_CLASSIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ts_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* =============================================================== splits ==== */

/* The split rule (ts_splits_make), per stratum c (a class; for regression a quantile bin of the
 * patient labels) with n_c patients:
 *   v_c = round(n_c * val_frac), t_c = round(n_c * test_frac), round half to even: numpy's
 *   np.round, so the counts are CLAM's create_splits_seq.py val_num / test_num.
 *   Disjoint test parts (the usual k-fold; promised when folds * test_frac <= 1): the class's
 *   patients are shuffled once and fold f's test part is the f-th block of the shuffled list,
 *   t_c patients each when folds * t_c <= n_c; when rounding up made folds * t_c > n_c (n_c = 15,
 *   10 folds, 0.1: t_c = 2) the n_c patients are dealt into blocks of floor or ceil(n_c / folds)
 *   instead (every patient tested exactly once, each block within 1 of t_c).
 *   Overlapping test parts (folds * test_frac > 1, Monte-Carlo cross-validation as CLAM does for
 *   every setting): each fold draws its own t_c test patients; test_disjoint is false.
 *   Validation: each fold draws v_c patients from the class's patients outside its test part;
 *   the rest of the class trains. All slides of a patient go where the patient goes.
 * Every stratum must give every fold at least one test, one validation and one training
 * patient, else SPLIT_CLASS_TOO_SMALL names the class (or bin), its patient count and the
 * smallest count the folds asked for would need.
 * Regression bins: patients sorted by (label, patient_id) and cut by rank into nbins
 * near-equal groups (bin of the i-th of m: floor(i * nbins / m)), so equal labels may straddle
 * a bin edge; bin_upper[b] is the largest label of bin b.
 * Patients are ordered by patient_id before shuffling, so the splits do not depend on the order
 * of the input rows. */

enum ts_split_set { TS_SET_TRAIN = 0, TS_SET_VAL = 1, TS_SET_TEST = 2 };
enum ts_split_task { TS_SPLIT_CLASSIFY = 0, TS_SPLIT_REGRESSION = 1 };

/* "train", "val", "test" (NULL for anything else). */
const char *ts_split_set_name(int set);
/* Inverse of ts_split_set_name: the set, or -1 for an unknown name. */
int ts_split_set_parse(const char *name);

/* One slide of the cohort (input of ts_splits_make). */
typedef struct ts_split_slide {
  const char *slide_id;   /* unique, non-empty */
  const char *patient_id; /* non-empty; slides of one patient share it */
  double label;           /* class 0..C-1, or a continuous score for regression */
} ts_split_slide;

typedef struct ts_split_options {
  int folds;        /* k >= 1; CLAM's default 10 */
  double val_frac;  /* fraction of each stratum's patients for validation, (0, 1): 0.1 */
  double test_frac; /* ... for test, (0, 1), val_frac + test_frac < 1: 0.1 */
  uint64_t seed;    /* the run seed: 1 by default (CLAM's) */
  int task;         /* enum ts_split_task: TS_SPLIT_CLASSIFY */
  int nclass;       /* classification: number of classes C; 0 = max label + 1 */
  int nbins;        /* regression: quantile bins to stratify by (>= 1): 4 */
} ts_split_options;

void ts_split_options_default(ts_split_options *o);

/* One row of a split file: slide SLIDE_ID of patient PATIENT_ID is in set SET of fold FOLD. */
typedef struct ts_split_row {
  int fold;         /* 0..folds-1 */
  int set;          /* enum ts_split_set */
  char *slide_id;   /* owned by the ts_splits */
  char *patient_id; /* owned by the ts_splits */
  double label;
  size_t line; /* 1-based line of the CSV file it was read from; 0 when generated */
} ts_split_row;

typedef struct ts_splits {
  int folds;
  int task;           /* enum ts_split_task (read files: TS_SPLIT_CLASSIFY unless a label is
                         not an integer) */
  size_t nrow;        /* folds x slides when generated */
  ts_split_row *rows; /* generated: ordered by fold, set (train, val, test), slide_id */
  bool test_disjoint; /* generated: the promise (folds * test_frac <= 1); read: what the file
                         holds (no patient in the test sets of two folds) */
  /* Generated only (0 / NULL after ts_splits_read_csv): per stratum, the patient count and the
   * requested per-fold validation and test counts (v_c, t_c above). */
  int nstrata;
  size_t *stratum_patients, *val_num, *test_num;
  double *bin_upper; /* regression: the largest label of each bin (NULL for classification) */
  char *path;        /* the file it was read from, or NULL */
} ts_splits;

/* Make the splits of N slides S under O (NULL: defaults). Errors:
 *   TS_EINVAL SPLIT_BAD_ARG (folds < 1, fractions out of range, NULL pointers);
 *   TS_EINPUT SPLIT_NO_SLIDES, SPLIT_BAD_ID (empty id, naming the row), SPLIT_DUPLICATE_SLIDE,
 *     SPLIT_BAD_LABEL (not finite; classification: not an integer in 0..C-1), naming the slide;
 *     SPLIT_PATIENT_LABEL_CONFLICT (a patient whose slides disagree, naming the patient and two
 *     of its slides with their labels); SPLIT_CLASS_TOO_SMALL (above);
 *   TS_ENOMEM. */
int ts_splits_make(const ts_split_slide *s, size_t n, const ts_split_options *o, ts_splits **splits_out);
void ts_splits_free(ts_splits **splits);

/* The invariants every split must hold: folds >= 1 and rows' folds in 0..folds-1; sets known;
 * each fold has a train, a val and a test row (SPLITS_MISSING_SET, naming the fold); no slide
 * twice in one fold (SPLITS_DUPLICATE_SLIDE); no patient in two sets of one fold
 * (SPLITS_PATIENT_SPLIT); the same label for a slide everywhere and for every slide of a
 * patient (SPLITS_LABEL_CONFLICT); and, when REQUIRE_DISJOINT_TEST, no patient in the test
 * sets of two folds (SPLITS_TEST_OVERLAP). Messages name the two rows involved ("file:line"
 * for rows read from a file, "row i" otherwise). All TS_EINPUT. */
int ts_splits_check(const ts_splits *sp, bool require_disjoint_test);

/* Number of rows of fold FOLD in set SET. */
size_t ts_splits_count(const ts_splits *sp, int fold, int set);

/* Write SP to PATH atomically (tmp + fsync + rename) as CSV: the header
 * "fold,set,slide_id,patient_id,label", then one row per ts_split_row in order; ids holding a
 * comma, a quote or a line break are quoted as RFC 4180 says; labels in the shortest form that
 * reads back to the same double. Errors: TS_EIO (IO_*), TS_EINVAL. */
int ts_splits_write_csv(const ts_splits *sp, const char *path);

/* Read a split file in the same format (a user's `mil.splits: PATH`), then ts_splits_check(.,
 * false). Errors (TS_EINPUT unless said, each naming PATH:LINE): SPLITS_UNREADABLE (TS_EIO),
 * SPLITS_EMPTY, SPLITS_BAD_HEADER (not exactly the five columns above, in order), SPLITS_RAGGED
 * (not five cells), SPLITS_BAD_FOLD (not an integer >= 0), SPLITS_UNKNOWN_SET, SPLITS_BAD_ID
 * (empty id), SPLITS_BAD_LABEL (not a finite number), SPLITS_FOLD_GAP (fold numbers must be
 * 0..k-1, naming the first missing one), and the check's tokens. CRLF and blank lines are
 * accepted. test_disjoint tells whether the file's test sets are disjoint. */
int ts_splits_read_csv(const char *path, ts_splits **splits_out);

/* ============================================================= metrics ===== */

/* ROC AUC of binary labels Y (0 = control, 1 = case) and SCORE (n each): the Mann-Whitney
 * statistic P(score_case > score_control) + P(tie)/2, with DeLong's (1988) variance computed by
 * Sun & Xu's (2014) midrank algorithm, O(n log n): V10_i = (Tz(x_i) - Tx(x_i)) / n_neg for a
 * case, V01_j = 1 - (Tz(y_j) - Ty(y_j)) / n_pos for a control (midranks in all scores, among the
 * cases, among the controls); var = S10/n_pos + S01/n_neg with S the sample variances (n - 1).
 * The CI is auc -/+ qnorm((1 + conf_level)/2) * se, clipped to [0, 1], exactly pROC's
 * ci.auc(method = "delong"). With one case or one control the variance and the CI are NaN (pROC:
 * NA); the AUC is still given. */
typedef struct ts_auc {
  double auc;
  double var, se; /* DeLong variance of the AUC and its square root */
  double lower, upper;
  double conf_level;
  size_t n_pos, n_neg;
} ts_auc;

/* Errors: TS_EINVAL METRIC_BAD_ARG (NULL pointers, conf_level outside (0, 1)); TS_EINPUT
 * METRIC_BAD_LABEL (a y not 0/1, naming the index), METRIC_BAD_SCORE (not finite),
 * METRIC_ONE_CLASS (no case or no control: the AUC is undefined); TS_ENOMEM. */
int ts_auc_delong(const int *y, const double *score, size_t n, double conf_level, ts_auc *out);

/* Points of the empirical ROC curve, as pROC's coords(r, "all"): thresholds -Inf, the midpoints
 * between consecutive distinct scores, +Inf (ascending; len = distinct scores + 1); a slide is
 * called positive when score >= threshold. tpr = sensitivity, fpr = 1 - specificity. */
typedef struct ts_roc_curve {
  size_t len;
  double *threshold, *tpr, *fpr;
} ts_roc_curve;

/* Same errors as ts_auc_delong. */
int ts_roc_curve_new(const int *y, const double *score, size_t n, ts_roc_curve **curve_out);
void ts_roc_curve_free(ts_roc_curve **curve);

/* Classification counts of predicted classes PRED against true classes Y (n each, 0..nclass-1):
 *  - accuracy: fraction correct;
 *  - balanced accuracy: mean recall over the classes present in Y (sklearn's
 *    balanced_accuracy_score);
 *  - f1: for nclass == 2 the F1 of class 1 (sklearn's f1_score, pos_label = 1); for nclass > 2
 *    the macro F1: unweighted mean of per-class F1 over the classes present in Y or PRED
 *    (sklearn's average = "macro"). A class's F1 is 2TP / (2TP + FP + FN), 0 when that is 0/0
 *    (sklearn's zero_division default).
 * The confusion matrix is confusion[true * nclass + pred] (nclass^2 entries, caller's buffer,
 * may be NULL). Errors: TS_EINVAL METRIC_BAD_ARG (n == 0, nclass < 2); TS_EINPUT
 * METRIC_BAD_LABEL (a class outside 0..nclass-1, naming the index). */
typedef struct ts_class_metrics {
  size_t n;
  int nclass;
  double accuracy, balanced_accuracy, f1;
} ts_class_metrics;

int ts_class_metrics_compute(const int *y, const int *pred, size_t n, int nclass, ts_class_metrics *out,
                             size_t *confusion);

/* Predicted class = argmax of each row of PROB (n x nclass, row-major); ties go to the lowest
 * class, as numpy's argmax (CLAM's Y_hat = topk(1)). */
void ts_class_argmax(const double *prob, size_t n, int nclass, int *pred_out);

/* One-vs-rest multiclass AUC: per class c, the AUC of column c of PROB (n x nclass) for
 * "y == c" against "y != c" (auc_per_class_out[c], may be NULL; NaN for a class absent from Y
 * or present in every row). *macro_out = unweighted mean over the classes with a defined AUC:
 * CLAM's nanmean of per-class roc_auc_score, and sklearn's roc_auc_score(multi_class="ovr",
 * average="macro") when every class is present. With nclass == 2 this is the mean of the two
 * columns' AUCs (equal to the binary AUC of column 1 when the columns sum to 1).
 * Errors: as ts_auc_delong, METRIC_ONE_CLASS when no class has a defined AUC. */
int ts_auc_ovr(const int *y, const double *prob, size_t n, int nclass, double *auc_per_class_out,
               double *macro_out);

/* Correlation with a two-sided p-value and a Fisher-z confidence interval:
 * tanh(atanh(r) -/+ qnorm((1 + conf)/2) / sqrt(n - 3)) (NaN when n < 4), p-value of
 * t = r sqrt((n - 2) / (1 - r^2)) on n - 2 df. Pearson's equals R's cor.test(x, y) (estimate,
 * conf.int, p.value); Spearman's rho is Pearson's r of the midranks (ties averaged) and equals
 * cor.test(x, y, method = "spearman", exact = FALSE)'s estimate and p.value; R gives no interval
 * for Spearman: the same Fisher-z formula is used (Fieller et al. 1957 suggest a wider one).
 * Errors: TS_EINVAL METRIC_BAD_ARG (n < 3, conf outside (0, 1)); TS_EINPUT METRIC_BAD_SCORE
 * (a non-finite value), METRIC_CONSTANT (x or y constant: r undefined). */
typedef struct ts_corr {
  double r, lower, upper, p_value, conf_level;
  size_t n;
} ts_corr;

int ts_corr_pearson(const double *x, const double *y, size_t n, double conf_level, ts_corr *out);
int ts_corr_spearman(const double *x, const double *y, size_t n, double conf_level, ts_corr *out);

/* ------------------------------------------------------------ helpers ------ */

/* Midranks (1-based, ties averaged) of X (n) into RANK_OUT (n). Errors: TS_ENOMEM. */
int ts_midranks(const double *x, size_t n, double *rank_out);
/* Standard normal quantile (Newton-refined to double precision) for p in (0, 1). */
double ts_qnorm(double p);
/* Two-sided p-value P(|T| > |t|) of Student's t with DF degrees of freedom. */
double ts_pt2(double t, double df);

#ifdef __cplusplus
}
#endif
#endif
