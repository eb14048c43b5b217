/* ts_surv_loss.h — the two survival losses every deep model of tessera can train with, in C on
 * ts_nn.h (autograd flows through both), and the helpers that prepare their targets.
 *
 *  1. Discrete-time negative log-likelihood (Zadeh & Schmid, "Bias in cross-entropy-based
 *     training of deep survival networks", IEEE TPAMI 2021), the `NLLSurvLoss` of PORPOISE and
 *     MCAT (mahmoodlab/PORPOISE utils/loss_func.py nll_loss; MCAT utils/utils.py nll_loss, the
 *     same formula on hazards). The model outputs K logits per patient; follow-up is cut into K
 *     time bins at quartiles of the uncensored times (ts_surv_loss_bins_make).
 *  2. Weighted Cox partial likelihood, BioFusionNet's idea (Mondol et al. 2024,
 *     raktim-mondol/BioFusionNet weighted_cox_loss.py) done right: risk sets ordered by TIME,
 *     case weights used exactly as R's coxph(weights = w), Breslow or Efron ties.
 *
 * A worked example — one full-batch step of a linear Cox model (error handling shortened):
 *
 *     // x: [N, p] float64 covariates, w: [1, p] trainable; time/event: the patients' follow-up
 *     double *cw = malloc(n * sizeof *cw);
 *     TS_TRY(ts_surv_loss_weights("events", n, event, NULL, 0, 5.0, cw));  // events 5, else 1
 *     TS_TRY(ts_nn_linear(x, w, NULL, &lp));                     // [N, 1] linear predictor
 *     TS_TRY(ts_surv_loss_cox(lp, time, event, cw, TS_SURV_LOSS_EFRON, &loss));
 *     TS_TRY(ts_optim_zero_grad(opt)); TS_TRY(ts_tensor_backward(loss)); TS_TRY(ts_optim_step(opt));
 *
 * and of the discrete-time loss (K = 4 bins, PORPOISE's alpha 0 of main.py):
 *
 *     double edges[5];
 *     TS_TRY(ts_surv_loss_bins_make(n, time, event, 4, 1e-6, edges));    // on all patients
 *     TS_TRY(ts_surv_loss_bins_assign(n, time, edges, 4, bin));          // int64 per patient
 *     for (i = 0; i < n; i++) censored[i] = !event[i];                   // PORPOISE's c
 *     TS_TRY(ts_surv_loss_nll(logits, bin, censored, 0.0, &loss));       // logits [B, 4]
 *
 * ---- 1. Discrete-time NLL (ts_surv_loss_nll) -------------------------------------------------
 * Logits z [B, K]; hazards h_k = sigmoid(z_k) = P(event in bin k | alive at its start); survival
 * S_k = prod_{j<=k} (1 - h_j) (alive at the end of bin k); S_pad = [1, S_0, ..., S_{K-1}], so that
 * S_pad[y] = S_{y-1} is survival to the start of bin y (1 for y = 0). For patient b with bin y,
 * censorship c (1 = censored, PORPOISE's c; NOT an event indicator):
 *     u_b = -(1 - c) (log max(S_pad[y], eps) + log max(h_y, eps))      event in bin y
 *     v_b = -c log max(S_pad[y + 1], eps)                              alive at the end of bin y
 *     loss = mean_b [ (1 - alpha)(u_b + v_b) + alpha u_b ]  =  mean_b [ u_b + (1 - alpha) v_b ]
 * eps = 1e-7 (TS_SURV_LOSS_NLL_EPS, PORPOISE's clamp(min = eps) before each log). alpha moves
 * weight off the censored term. Defaults differ across the code: main.py's --alpha_surv is 0.0
 * in both repositories (what they run); the function nll_loss of utils/utils.py defaults to 0.4
 * and the loss classes there to 0.15 (MCAT NLLSurvLoss, PORPOISE NLLSurvLoss_dep); PORPOISE's
 * utils/loss_func.py NLLSurvLoss to 0.0. Here the caller always passes it. Reduction: the mean
 * over the B patients (PORPOISE's 'mean'; with batch 1 and gradient accumulation, as they
 * train, it is the per-patient loss).
 * How it is computed: log h and log(1 - h) come from one log_softmax over the pair [0, z]
 * (exactly log sigmoid(z) and log sigmoid(-z): stable for any z, exact gradients; PORPOISE's
 * float32 1 - sigmoid(z) keeps 3 digits at z = 9 and none above z ≈ 17); log S = cumsum of
 * log(1 - h); each clamp is max(log x, log eps), the same function as log(clamp(x, eps)), with
 * zero gradient where it clamps, as PyTorch's clamp. Agrees with PORPOISE's code to 1e-12 in
 * float64 (tests/test_surv_loss.c).
 * Risk score (ts_surv_loss_nll_risk): -sum_k S_k, PORPOISE's risk for the C-index (higher =
 * earlier death); all logits 0 with K = 4 give -0.9375.
 *
 * Bins (ts_surv_loss_bins_make), PORPOISE's datasets/dataset_survival.py exactly (one entry per
 * PATIENT: PORPOISE drops duplicate slides of a case first):
 *   - edges = quantiles at 0, 1/K, ..., 1 of the UNCENSORED times, with linear interpolation
 *     (pandas qcut = numpy's default = R's quantile type 7);
 *   - like pandas qcut (duplicates = 'raise'), two equal quantiles are an error (SURV_LOSS_BINS),
 *     checked before the next step, as pandas does;
 *   - then edges[0] = min(all times) - eps and edges[K] = max(all times) + eps (ALL patients,
 *     censored included; PORPOISE's eps 1e-6, in the unit of the times);
 *   - patient i is in bin k when edges[k] <= t_i < edges[k+1] (pandas cut right = False).
 * ts_surv_loss_bins_assign also bins times outside [edges[0], edges[K]) (patients that did not
 * make the edges, e.g. a later cohort): below → bin 0, at or above the top → bin K-1 (pandas
 * would give NaN). PORPOISE computes the edges once on the whole cohort, before any split.
 *
 * ---- 2. Weighted Cox partial likelihood (ts_surv_loss_cox) -----------------------------------
 * Linear predictor r [N] (any shape with N elements, e.g. [N, 1]), times t, events d (0/1),
 * case weights w > 0 (NULL = all 1). Risk set R(s) = {j : t_j >= s} (ordered by TIME; censored
 * at s are in it, as in R). For each distinct event time s with deaths D(s), m = |D(s)| deaths,
 * deadwt = sum_{i in D(s)} w_i, A = sum_{j in R(s)} w_j e^{r_j}, E = sum_{i in D(s)} w_i e^{r_i}:
 *     Breslow:  ll += sum_{i in D(s)} w_i r_i - deadwt log A
 *     Efron:    ll += sum_{i in D(s)} w_i r_i - (deadwt / m) sum_{k=0}^{m-1} log(A - (k/m) E)
 * which is R's survival coxfit6.c (coxph's log partial likelihood with weights: frequency
 * weights in the numerator and in the risk-set sums; Efron with tied deaths uses their MEAN
 * weight deadwt/m for each of the m terms). Efron with m = 1 is Breslow.
 *     loss = -ll / sum_i w_i d_i        (the weighted number of events)
 * so that with unit weights it is the per-event mean of the negative log partial likelihood
 * (DeepSurv's and BioFusionNet's reduction; PORPOISE's CoxSurvLoss divides by the batch size).
 * The loss equals -loglik / sum(w d) of R's coxph(Surv(t, d) ~ x, weights = w, init = beta,
 * iter.max = 0) at r = x beta, to 1e-12 relative on R's lung (tests/test_surv_loss.c).
 * Minibatches: the loss of a batch uses the batch as the whole cohort (risk sets within the
 * batch: a bag-of-patients estimate, the case-control view of Kvamme, Borgan & Scheel, JMLR
 * 2019); the full cohort in one batch is the exact partial likelihood. A batch without
 * events has no partial likelihood: the loss is then 0 (0 · sum r, so backward still works and
 * gives zero gradients), not an error: a training loop may call it on every batch.
 * How it is computed (O(N log N), no N x N matrix): patients sorted by time descending (within a
 * tie, censored before deaths); log A = logcumsumexp(r + log w) read at each group's last
 * position; for Efron, log E from a logsumexp over the group's deaths (groups of similar size
 * padded together, so at most 2x the deaths in memory) and log(A - (k/m)E) =
 * logaddexp(log(A - E), log(1 - k/m) + log E) — no subtraction of sums, finite gradients.
 * What BioFusionNet's released loss_fn does instead, for the record: it sorts by PREDICTED risk
 * (argsort(risks, descending)), so the "risk set" of i is the patients the model ranks above it
 * and follow-up times are never used; its training loop passes all weights = event_weight (5),
 * which only adds log 5 to the loss; and train_loop.py calls loss_fn(predictions, times, events,
 * weights) while the function is loss_fn(risks, events, weights, device).
 *
 * Weights (ts_surv_loss_weights), by scheme name (a config value):
 *   "none"                        all 1;
 *   "events"                      w = event_weight for events, 1 for censored patients;
 *   "inverse_time_bin_frequency"  w_i = 1 / f(bin_i), f(k) = (patients in bin k) / N, then
 *                                 scaled to mean 1: w_i = N / (K' n_{bin_i}), K' = number of
 *                                 non-empty bins (each occupied bin then carries N / K' of the
 *                                 total weight).
 *
 * Conventions: as ts_nn.h (status 0 or a negative TS_E* code; thread-local "TOKEN: message"; the
 * loss is a NEW scalar handle in *out, owned by the caller, NULL on failure; inputs borrowed).
 * Logits/risk must be TS_NN_F32 or TS_NN_F64 and may live on any device (the index and constant
 * tensors are made on the CPU in their dtype and moved there). The C arrays (bins, censorship,
 * times, events, weights) are read during the call only. Two indicator conventions, named by
 * their parameters: `censored` (NLL, PORPOISE's c) and `event` (Cox, bins, weights: as
 * ts_survival.h and R's Surv). Tokens: NN_ARG (NULL, alpha outside [0, 1], bin out of range,
 * n_bins < 1, eps <= 0, unknown ties), NN_SHAPE (logits not [B, K] with B, K >= 1; risk empty),
 * NN_DTYPE, SURV_NEGATIVE_TIME (a time < 0 or not finite), SURV_BAD_EVENT (an event or censored
 * flag not 0/1), SURV_BAD_WEIGHT (a weight not finite and > 0, or event_weight), SURV_LOSS_BINS
 * (TS_EINPUT: no uncensored time, or equal quantiles), SURV_LOSS_UNKNOWN (TS_ECONFIG: unknown
 * weight scheme; the message lists the known ones), NN_OOM; messages name the row (0-based).
 * Thread safety: reentrant; the tensors follow ts_nn.h's rules.
 */
#ifndef TS_SURV_LOSS_H
#define TS_SURV_LOSS_H

#include <stddef.h>
#include <stdint.h>

#include "ts_nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* PORPOISE's clamp of S and h before the logs. */
#define TS_SURV_LOSS_NLL_EPS 1e-7

/* Ties of the Cox loss; the values of ts_survival.h's enum ts_cox_ties. */
enum ts_surv_loss_ties { TS_SURV_LOSS_EFRON = 0, TS_SURV_LOSS_BRESLOW = 1 };

/* Discrete-time NLL (formula above). logits: [B, K]; bin: B bin indices in 0..K-1; censored: B
 * flags (1 = censored); alpha in [0, 1]. A NEW scalar (logits' dtype and device) in *out. */
int ts_surv_loss_nll(const ts_tensor *logits, const int64_t *bin, const int *censored, double alpha,
                     ts_tensor **out);

/* PORPOISE's risk score of each row of logits [B, K]: -sum_k S_k, a NEW [B] tensor (with
 * gradient; detach it for metrics). */
int ts_surv_loss_nll_risk(const ts_tensor *logits, ts_tensor **out);

/* Weighted Cox loss (formula above). risk: N elements (any shape), N >= 1; time, event, weight
 * (NULL = all 1): N each; ties: TS_SURV_LOSS_EFRON or TS_SURV_LOSS_BRESLOW. A NEW scalar. */
int ts_surv_loss_cox(const ts_tensor *risk, const double *time, const int *event, const double *weight,
                     int ties, ts_tensor **out);

/* The n_bins + 1 increasing bin edges of PORPOISE (above) from n patients' times and events.
 * n_bins >= 1, eps > 0 (PORPOISE: 1e-6). edges_out: n_bins + 1 doubles; untouched on failure. */
int ts_surv_loss_bins_make(size_t n, const double *time, const int *event, int n_bins, double eps,
                           double *edges_out);

/* Bin index of each time (edges[k] <= t < edges[k+1]; below / above the edges: first / last
 * bin). edges: n_bins + 1 increasing values (from ts_surv_loss_bins_make). bin_out: n. */
int ts_surv_loss_bins_assign(size_t n, const double *time, const double *edges, int n_bins, int64_t *bin_out);

/* Case weights by scheme (above) into weight_out[n]. "events" needs event and event_weight
 * (finite, > 0); "inverse_time_bin_frequency" needs bin (0..n_bins-1); arguments a scheme does
 * not use may be NULL / 0. SURV_LOSS_UNKNOWN for another name. */
int ts_surv_loss_weights(const char *scheme, size_t n, const int *event, const int64_t *bin, int n_bins,
                         double event_weight, double *weight_out);

#ifdef __cplusplus
}
#endif
#endif
