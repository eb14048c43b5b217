/* ts_mil.h — attention multiple-instance-learning (MIL) slide models in C, on ts_nn.h.
 *
 * A slide is a bag: the [N, D] float matrix of its tiles' features (features/<encoder>/<slide>.h5).
 * A model maps a bag to bag logits and says, with one attention score per tile, which tiles drove
 * the prediction. Architectures:
 *   "abmil"    gated attention MIL (Ilse, Tomczak & Welling, "Attention-based deep multiple
 *              instance learning", ICML 2018, eq. 9), on features: fc D→L ReLU dropout, gated
 *              attention L→Dₐ→1 (tanh branch ⊙ sigmoid branch), softmax over tiles, linear head
 *              L→C.
 *   "clam_sb"  CLAM single branch (Lu et al., "Data-efficient and weakly supervised computational
 *              pathology on whole-slide images", Nat. Biomed. Eng. 2021; mahmoodlab/CLAM
 *              models/model_clam.py CLAM_SB): the same trunk and one attention branch, a bag
 *              classifier L→C, one instance classifier L→2 per class, and the instance loss.
 *   "clam_mb"  CLAM multi branch (CLAM_MB): C attention branches, C bag classifiers L→1 (class c
 *              scores the bag through its own attention), the same instance classifiers.
 *   "transmil" TransMIL (Shao et al., NeurIPS 2021; szc19990412/TransMIL models/TransMIL.py):
 *              two Nyström-attention layers around the PPEG position encoding, a cls token;
 *              names and a_raw (the cls token's row of the last layer's approximate attention
 *              over the real tiles, head mean: for ranking, not a softmax) in nn/mil_transmil.c.
 *              n_classes 1 (regression) works here too.
 * L = hidden (512) and Dₐ = attn_dim (256) are the papers' ("small" in CLAM's size_dict).
 *
 * A worked example — one training step of CLAM-SB on a bag (error handling shortened):
 *
 *     ts_mil_opts o;
 *     ts_mil_opts_default(&o);
 *     o.in_dim = 1024, o.n_classes = 2, o.seed = 7;   // weights from the seed alone
 *     ts_mil *m = NULL;
 *     TS_TRY(ts_mil_new("clam_sb", &o, &m));
 *     const ts_tensor *const *p; int np;
 *     TS_TRY(ts_mil_params(m, &p, &np));              // borrowed; the optimiser takes references
 *     TS_TRY(ts_optim_adamw_new(p, np, 2e-4, 0.9, 0.999, 1e-8, 1e-5, &opt));
 *     ts_mil_out r = {0};
 *     int64_t label = 1;
 *     TS_TRY(ts_mil_forward(m, bag, true, &label, &r));  // bag: [N, 1024] float32
 *     TS_TRY(ts_mil_loss(m, &r, 1.0, &loss));         // 0.7 CE(bag) + 0.3 instance loss
 *     TS_TRY(ts_optim_zero_grad(opt)); TS_TRY(ts_tensor_backward(loss)); TS_TRY(ts_optim_step(opt));
 *     ...
 *     ts_mil_out_free(&r); ts_tensor_free(&loss); ts_optim_free(&opt); ts_mil_free(&m);
 *
 * Weights and names. The model's state is a ts_nn_state whose names and order are exactly those
 * of the PyTorch module's state_dict(), so ts_nn_state_save_h5 writes a file that loads into
 * CLAM's classes name by name (load_state_dict of {name: torch.from_numpy(h5[name])}):
 *   clam_sb:  attention_net.0.{weight,bias}                     fc D→L
 *             attention_net.3.attention_a.0.{weight,bias}       tanh branch L→Dₐ
 *             attention_net.3.attention_b.0.{weight,bias}       sigmoid branch L→Dₐ
 *             attention_net.3.attention_c.{weight,bias}         Dₐ→1
 *             classifiers.{weight,bias}                         L→C
 *             instance_classifiers.<c>.{weight,bias}            L→2, c = 0..C-1
 *   clam_mb:  as clam_sb but attention_c is Dₐ→C and classifiers.<c>.{weight,bias} are L→1.
 *   abmil:    clam_sb's first eight entries (no instance classifiers), i.e. CLAM_SB's layout, so an
 *             ABMIL checkpoint loads into CLAM_SB with strict=False. In Ilse et al.'s code
 *             (GatedAttention) the same tensors are feature_extractor_part2.0, attention_V.0,
 *             attention_U.0, attention_weights and classifier.0.
 * (Index 3 in attention_net: CLAM's fc is Sequential(Linear, ReLU, Dropout, Attn_Net_Gated).)
 * Initialisation is nn.Linear's default (weight and bias ~ U(-1/sqrt(in), 1/sqrt(in))), which is
 * what the published CLAM classes get, drawn from private generators seeded by (seed, entry
 * index): the same seed gives the same weights whatever else the process runs.
 *
 * Dropout: after the fc (all models) with p = opts.dropout; CLAM also drops in both attention
 * branches (CLAM hard-codes 0.25 there whenever dropout is on; tessera uses opts.dropout, whose
 * default is 0.25). Dropout draws from LibTorch's global generator: seed it per (fold, epoch) with
 * ts_nn_manual_seed, outside the model.
 *
 * CLAM's instance loss (CLAM_SB.inst_eval / inst_eval_out), computed when a label is given:
 *   - in-class (the bag's true class c): the k tiles of highest attention in c's branch (SB: the
 *     single branch) are labelled 1, the k of lowest attention 0; instance classifier c scores
 *     them; cross-entropy, mean over the 2k tiles.
 *   - out-of-class (only with opts.subtyping, CLAM's --subtyping): for every other class c', its
 *     branch's top-k tiles are labelled 0 for classifier c'; the sum over classes is then divided
 *     by C. Without subtyping (CLAM's default, and what its binary tasks use) only the in-class
 *     term is computed: for a binary task, classifier `label` alone, top-k → 1, bottom-k → 0.
 *   - small bags (CLAM crashes in torch.topk when N < k: CLAM#28): k = min(k_sample, floor(N/2)),
 *     so the top and bottom sets never share a tile; a bag of 1 tile has no instance loss (a zero
 *     scalar, so `total` is then 0.7·bag loss: documented, not an error). A bag with N >= 2k_sample
 *     gets exactly CLAM's loss.
 *   - The ranking is by attention; softmax is monotone, so ranking the raw scores (as here) picks
 *     the tiles CLAM's topk over softmaxed scores picks. Ties (equal scores) are broken by
 *     LibTorch's sort, as CLAM's topk breaks them by its own: avoid comparing tied bags.
 *
 * Conventions: as ts_nn.h (status 0 or negative TS_E*, thread-local "TOKEN: message", no C++
 * exception crosses). Tokens: NN_ARG (NULL or out-of-range argument, TS_EINVAL), MIL_UNKNOWN
 * (unknown architecture, TS_ECONFIG, listing the known ones), NN_SHAPE (a bag that is not [N, D]
 * with N >= 1 and D == in_dim: the message names both widths; TS_EINVAL), NN_DTYPE (a bag whose
 * dtype is not the model's), NN_CHECKPOINT (a state that does not fit the model), and ts_nn.h's.
 * Thread safety: a model must not be used from two threads at once; distinct models may.
 */
#ifndef TS_MIL_H
#define TS_MIL_H

#include <stdbool.h>
#include <stdint.h>

#include "ts_nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ts_mil ts_mil; /* a MIL model: its weights and its architecture */

typedef struct ts_mil_opts {
  int64_t in_dim;    /* D: tile feature width (1024 resnet50_trunc, 512 resnet18, ...); >= 1 */
  int n_classes;     /* C >= 2; 1 = regression (one output; "abmil" only) */
  int64_t hidden;    /* L (512) */
  int64_t attn_dim;  /* Dₐ (256) */
  double dropout;    /* p in [0, 1) (0.25, CLAM's --drop_out) */
  uint64_t seed;     /* weight initialisation (1) */
  int k_sample;      /* CLAM: tiles per side of the instance loss (8) */
  double bag_weight; /* CLAM: total = bag_weight·bag + (1 - bag_weight)·instance (0.7) */
  bool subtyping;    /* CLAM: out-of-class instance terms too (false, CLAM's default) */
  int dtype;         /* TS_NN_F32 (default) or TS_NN_F64 (gradient checks); bags must match */
} ts_mil_opts;

/* The defaults above; in_dim 1024, n_classes 2. */
void ts_mil_opts_default(ts_mil_opts *o);

/* What a forward pass gives; every handle is owned by the caller (ts_mil_out_free). */
typedef struct ts_mil_out {
  ts_tensor *logits;    /* [1, C] (regression: [1, 1], the prediction) */
  ts_tensor *a_raw;     /* attention before softmax: [N] (abmil, clam_sb), [C, N] (clam_mb) */
  ts_tensor *embedding; /* attention-pooled bag: [1, L] ([C, L] for clam_mb): slide embedding */
  ts_tensor *inst_loss; /* CLAM with a label: scalar (0 for a 1-tile bag); NULL otherwise */
} ts_mil_out;

/* Release the handles of *o and set them NULL; accepts NULL and a zeroed struct. */
void ts_mil_out_free(ts_mil_out *o);

/* Build `arch` ("abmil", "clam_sb", "clam_mb") with weights from o->seed (o NULL: defaults).
 * *out is owned by the caller (ts_mil_free). Tokens: MIL_UNKNOWN, NN_ARG (in_dim < 1, n_classes
 * out of range for the architecture, hidden/attn_dim < 1, dropout outside [0, 1), k_sample < 1,
 * bag_weight outside [0, 1], dtype other than F32/F64). */
int ts_mil_new(const char *arch, const ts_mil_opts *o, ts_mil **out);
/* Accepts NULL and *m == NULL; sets *m = NULL. */
void ts_mil_free(ts_mil **m);

/* One bag through the model. bag: [N, D] (N >= 1, D == in_dim, the model's dtype), borrowed.
 * training: dropout on. label: the bag's class (0..C-1) or NULL; with a label, CLAM models also
 * compute the instance loss (in training and in evaluation, as CLAM's validate does). Gradients
 * are recorded unless the caller is in a no-grad/inference scope. `out` must be zeroed or hold a
 * previous result, which is released first; on failure every field is NULL. */
int ts_mil_forward(ts_mil *m, const ts_tensor *bag, bool training, const int64_t *label, ts_mil_out *out);

/* The training loss of a forward result, a NEW scalar in *loss_out. Classification: target is
 * the class index (integral, 0..C-1); loss = CE(logits, target), and for CLAM with an instance
 * loss bag_weight·CE + (1 - bag_weight)·inst_loss (CLAM's main.py: 0.7 / 0.3). Regression
 * (n_classes 1): MSE(logits, target). NN_ARG on a non-integral or out-of-range class. */
int ts_mil_loss(const ts_mil *m, const ts_mil_out *r, double target, ts_tensor **loss_out);

/* The trainable tensors (all of them, here), borrowed and valid while m lives, in state order:
 * pass them to ts_optim_adamw_new, which takes its own references. */
int ts_mil_params(const ts_mil *m, const ts_tensor *const **params_out, int *n_out);
/* The model's named tensors (borrowed, valid while m lives; names above). Writing into them
 * changes the model. Save with ts_nn_state_save_h5(ts_mil_state(m), path, ts_mil_arch(m)). */
ts_nn_state *ts_mil_state(const ts_mil *m);
/* Load weights by name from src (e.g. ts_nn_state_load_h5 of a saved model). Strict: src must hold
 * exactly the model's names, with the same shapes; otherwise NN_CHECKPOINT names the first
 * missing, extra or misshapen entry and the model is unchanged. Values are converted to the
 * model's dtype. */
int ts_mil_load_state(ts_mil *m, const ts_nn_state *src);

/* Metadata (never fail on a valid handle; "" / 0 on NULL). */
const char *ts_mil_arch(const ts_mil *m);
const ts_mil_opts *ts_mil_get_opts(const ts_mil *m);
/* Attention rows of a_raw: 1, or C for clam_mb. */
int ts_mil_attention_heads(const ts_mil *m);

/* ---- For implementers: how an architecture registers ------------------------------------------
 * One architecture family is one file nn/mil_<family>.c that exports `const struct ts_mil_arch`
 * objects (everything else static), and two lines per architecture in nn/mil.c: its declaration
 * and its entry in the NULL-terminated table ARCHS:
 *     extern const struct ts_mil_arch ts_mil_arch_transmil;
 *     &ts_mil_arch_transmil,
 * ts_mil_new finds the name there, checks the common options, calls build(), then forward() on
 * every ts_mil_forward after the bag's shape and dtype are checked. build() creates weights with
 * ts__mil_linear_new / ts__mil_param_new, in state_dict order, so that names and order are the
 * PyTorch module's. */

#define TS_MIL_ARCH_VERSION 1

struct ts_mil_arch {
  int version;      /* TS_MIL_ARCH_VERSION */
  const char *name; /* "abmil" */
  /* Extra checks of the options (optional): e.g. n_classes 1 allowed or not. */
  int (*check)(const ts_mil_opts *o);
  /* Create the weights; *impl_out gets the architecture's private data (may stay NULL). */
  int (*build)(ts_mil *m, const ts_mil_opts *o, void **impl_out);
  /* Fill out (zeroed on entry) from a checked bag; label may be NULL. */
  int (*forward)(ts_mil *m, void *impl, const ts_tensor *bag, bool training, const int64_t *label,
                 ts_mil_out *out);
  /* Release impl (optional: free() is not called on it otherwise). */
  void (*free_impl)(void *impl);
  /* Rows of a_raw (optional: NULL means 1). */
  int (*attention_heads)(const ts_mil_opts *o);
};

/* A linear layer whose tensors are borrowed from the model's state. */
typedef struct ts__mil_linear {
  ts_tensor *w, *b; /* [out, in], [out] */
} ts__mil_linear;

/* Add "<name>.weight" [out, in] and "<name>.bias" [out], nn.Linear's default initialisation,
 * trainable, to the model; l gets borrowed handles. */
int ts__mil_linear_new(ts_mil *m, const char *name, int64_t in, int64_t out, ts__mil_linear *l);
/* Add a trainable tensor `name` of the given shape ~ N(0, std²) (std 0: zeros). */
int ts__mil_param_new(ts_mil *m, const char *name, const int64_t *shape, int ndim, double std,
                      ts_tensor **borrowed_out);
/* y = x Wᵀ + b. */
int ts__mil_linear_fwd(const ts__mil_linear *l, const ts_tensor *x, ts_tensor **out);

/* CLAM's trunk: fc (attention_net.0) and gated attention (attention_net.3.attention_{a,b,c}),
 * shared by abmil and the CLAM models. */
typedef struct ts__mil_gated {
  ts__mil_linear fc, a, b, c;
  double p;      /* dropout after fc */
  double p_attn; /* dropout in the attention branches (0 for abmil) */
} ts__mil_gated;
int ts__mil_gated_new(ts_mil *m, const ts_mil_opts *o, int64_t heads, ts__mil_gated *g);
/* h = dropout(relu(fc(bag))) [N, L]; a_raw = attention_c(tanh(a(h)) ⊙ sigmoid(b(h)))ᵀ [heads, N]. */
int ts__mil_gated_forward(const ts__mil_gated *g, const ts_tensor *bag, bool training, ts_tensor **h_out,
                          ts_tensor **a_raw_out);

#ifdef __cplusplus
}
#endif
#endif
