/* ts_survnet.h — deep survival models in C, on ts_nn.h: one patient (a bag of tile features, a
 * vector of genomic/clinical values, or both) in, K discrete-time logits (ts_surv_loss_nll) or
 * one Cox risk (ts_surv_loss_cox) out.
 *
 * Architectures (the reference is the PyTorch class named; "small" sizes; D = path_dim, the tile
 * feature width; G = omic_dim, the patient vector's width; K = n_out):
 *   "amil"          PORPOISE AMIL: mahmoodlab/PORPOISE models/model_set_mil.py
 *                   MIL_Attention_FC_surv(fusion=None) (main.py --model_type amil): fc D→512 ReLU
 *                   dropout, gated attention 512→256→1 (tanh ⊙ sigmoid, dropout in both
 *                   branches), softmax over tiles, rho 512→256 ReLU dropout, classifier 256→K.
 *   "snn"           PORPOISE SNN: models/model_genomic.py SNN(model_size_omic='small'): FOUR
 *                   SNN_Blocks (Linear, ELU, AlphaDropout) G→256→256→256→256 (size_dict_omic
 *                   'small' is [256, 256, 256, 256]; the brief said two: the class has four),
 *                   classifier 256→K.
 *   "mmf_concat"    PORPOISE PorpoiseMMF(fusion='concat') (models/model_porpoise.py), every other
 *   "mmf_bilinear"  argument at the CLASS's default (not main.py's; see below): dropinput 0.10
 *                   before the fc, fc D→512 ReLU dropout, gated attention 512→256→1, rho 512→256,
 *                   omic branch two SNN_Blocks G→256→256, then
 *                     concat:   mm = Linear 512→256 ReLU Linear 256→256 ReLU on [h_path, h_omic];
 *                     bilinear: BilinearFusion(dim1 = dim2 = 256, scale_dim 8 → 32, gate1 = gate2
 *                               = 1, skip = 1, mmhid 256): per modality h = ReLU(Linear 256→32),
 *                               gate z = Linear 512→32 on [v1, v2], o = dropout(ReLU(Linear 32→32
 *                               (sigmoid(z) ⊙ h))); o1, o2 get a trailing 1; the 33×33 outer
 *                               product (flattened o1-major, 1089) → dropout → Linear 1089→256
 *                               ReLU → [., v1, v2] (skip, 768) → Linear 768→256 ReLU;
 *                   classifier_mm 256→K.
 *   "coattn"        MCAT: mahmoodlab/MCAT models/model_coattn.py MCAT_Surv(fusion='concat'): wsi_net
 *                   D→256 ReLU dropout on the tiles; the omic vector cut into omic_groups
 *                   contiguous groups (MCAT's six signatures; group i = columns
 *                   [floor(iG/k), floor((i+1)G/k)), k = min(omic_groups, G)), each through its own
 *                   two SNN_Blocks g_i→256→256: k genomic tokens; co-attention = multi-head
 *                   attention (1 head, no dropout: MCAT's MultiheadAttention(256, 1)) with the
 *                   genomic tokens as queries and the tiles as keys and values: k tokens; two
 *                   transformer encoders (nn.TransformerEncoderLayer(d_model 256, nhead 8,
 *                   dim_feedforward 512, dropout, relu), post-norm, 2 layers each, full size), one
 *                   over the co-attended tokens, one over the genomic tokens; on each side gated
 *                   attention pooling 256→256→1 and rho 256→256 ReLU dropout; mm as mmf_concat;
 *                   classifier 256→K.
 *   "linear"        One linear layer G→K without bias: the Cox model fitted by gradient descent
 *                   (ts_surv_loss_cox over the whole cohort gives coxph's coefficients).
 *
 * What a_raw holds (one score per tile, before any softmax; NULL for snn and linear):
 *   amil, mmf_*: the gated attention's logit of each tile (A_raw of the reference).
 *   coattn: the co-attention's raw scores (q_g·k_n / sqrt(256), the MultiheadAttention's pre-
 *           softmax weights that MCAT returns as A_coattn with need_raw), MEANED over the k
 *           genomic tokens. (MCAT's path attention pooling runs over the k co-attended tokens,
 *           not the tiles, so it cannot rank tiles.)
 *
 * Weights and names: the model's state is a ts_nn_state whose names and order are those of the
 * reference module's state_dict(), so ts_nn_state_save_h5 writes a file that loads into the
 * PyTorch class by name (load_state_dict(strict=True)):
 *   amil:   attention_net.0 (fc), attention_net.3.attention_a.0, attention_net.3.attention_b.0,
 *           attention_net.3.attention_c, rho.0, classifier — each .weight and .bias.
 *   snn:    fc_omic.<b>.0 (b = 0..3), classifier.
 *   mmf_*:  attention_net.1 (index 1: attention_net.0 is the input dropout),
 *           attention_net.4.attention_{a.0,b.0,c}, rho.0, fc_omic.0.0, fc_omic.1.0, then
 *           concat:   mm.0, mm.2;
 *           bilinear: mm.linear_h1.0, mm.linear_z1.0, mm.linear_o1.0, mm.linear_h2.0,
 *                     mm.linear_z2.0, mm.linear_o2.0, mm.encoder1.0, mm.encoder2.0;
 *           classifier_mm.
 *   coattn: wsi_net.0, sig_networks.<i>.0.0, sig_networks.<i>.1.0 (i = 0..k-1),
 *           coattn.{in_proj_weight [768, 256], in_proj_bias, out_proj.weight, out_proj.bias},
 *           path_transformer.layers.<l>.{self_attn.in_proj_weight, self_attn.in_proj_bias,
 *           self_attn.out_proj.weight, self_attn.out_proj.bias, linear1.*, linear2.*, norm1.*,
 *           norm2.*} (l = 0, 1), path_attention_head.attention_{a.0,b.0,c}, path_rho.0, the same
 *           four groups for omic_*, mm.0, mm.2, classifier.
 *   linear: classifier.weight [K, G] (no bias; the Cox coefficients when K = 1).
 * Initialisation follows each reference class, from private generators seeded by (seed, entry
 * index), so the same seed gives the same weights whatever else the process runs:
 *   amil, mmf_*, linear: nn.Linear's default, weight and bias ~ U(±1/sqrt(in)) (these classes
 *     call no init function: PorpoiseMMF's init_max_weights is commented out);
 *   snn: init_max_weights (weight ~ N(0, 1/in), i.e. std 1/sqrt(in); bias 0);
 *   coattn: nn.Linear's default; attention in_proj_weight xavier_uniform (U(±sqrt(6/(256+768)))),
 *     in_proj_bias and out_proj.bias 0; LayerNorm weight 1, bias 0; and, as nn.TransformerEncoder
 *     deep-copies its layer, layer 1 of each encoder starts equal to layer 0.
 *
 * Dropout: opts.dropout (0.25) everywhere the reference drops (including the hard-coded 0.25 of
 * Attn_Net_Gated, SNN_Block and BilinearFusion), except PorpoiseMMF's input dropout, which is its
 * own 0.10 (0 when opts.dropout is 0: dropout 0 switches every dropout off). AlphaDropout in the
 * SNN blocks. All draw from LibTorch's global generator: the caller seeds it (ts_nn_manual_seed).
 * The ordinary dropouts use ts_nn_dropout_fast (the same Bernoulli masks in distribution, ~3x
 * cheaper than LibTorch's CPU bernoulli_ here, but not the masks PyTorch would draw for a seed);
 * AlphaDropout is LibTorch's (it only ever sees [1, 256]).
 *
 * Deviations from the reference code, on purpose:
 *  - PorpoiseMMF is built with the class's defaults (gate_path = gate_omic = 1, skip = 1,
 *    dropinput 0.10, scale_dim 8); PORPOISE's main.py passes gate 0, skip 0, dropinput 0 unless
 *    asked. The reference's BilinearFusion builds its ones with torch.cuda.FloatTensor; here they
 *    are CPU/any device, in the model's dtype.
 *  - MCAT takes six separate signature tensors of given sizes (omic_sizes, from signatures.csv);
 *    here one [1, G] vector is cut into k contiguous groups (the caller orders its columns).
 *  - MIL_Attention_FC_surv and MCAT_Surv return hazards, S and Y_hat; here the logits (sigmoid
 *    and cumprod are ts_surv_loss_nll's business).
 *
 * A worked example — one training step of mmf_bilinear (error handling shortened):
 *
 *     ts_survnet_opts o;
 *     ts_survnet_opts_default(&o);
 *     o.path_dim = 1024, o.omic_dim = 200, o.n_out = 4;
 *     ts_survnet *m = NULL;
 *     TS_TRY(ts_survnet_new("mmf_bilinear", &o, &m));
 *     const ts_tensor *const *p; int np;
 *     TS_TRY(ts_survnet_params(m, &p, &np));
 *     TS_TRY(ts_optim_adam_new(p, np, 2e-4, 0.9, 0.999, 1e-8, 1e-5, &opt));
 *     ts_survnet_out r = {0};
 *     TS_TRY(ts_survnet_forward(m, bag, omic, true, &r));      // bag [N, 1024], omic [1, 200]
 *     TS_TRY(ts_surv_loss_nll(r.logits, &bin, &censored, 0.0, &loss));
 *     TS_TRY(ts_optim_zero_grad(opt)); TS_TRY(ts_tensor_backward(loss)); TS_TRY(ts_optim_step(opt));
 *     ts_survnet_out_free(&r); ts_tensor_free(&loss); ts_optim_free(&opt); ts_survnet_free(&m);
 *
 * Conventions: as ts_nn.h (status 0 or a negative TS_E* code, thread-local "TOKEN: message", no
 * C++ exception crosses). Tokens: SURVNET_UNKNOWN (unknown architecture, TS_ECONFIG, listing the
 * known ones), NN_ARG (NULL or out-of-range option or argument, an input the architecture needs
 * that is missing), NN_SHAPE (a bag not [N, D] with N >= 1, an omic vector not [1, G]: the message
 * names both widths), NN_DTYPE (an input whose dtype is not the model's), NN_CHECKPOINT (a state
 * that does not fit), and ts_nn.h's. Thread safety: a model must not be used from two threads at
 * once; distinct models may.
 */
#ifndef TS_SURVNET_H
#define TS_SURVNET_H

#include <stdbool.h>
#include <stdint.h>

#include "ts_nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ts_survnet ts_survnet;

typedef struct ts_survnet_opts {
  int64_t path_dim; /* tile feature width D: > 0 for amil, mmf_*, coattn; 0 for snn, linear */
  int64_t omic_dim; /* width G of the patient's vector: > 0 for snn, mmf_*, coattn, linear; 0 for amil */
  int n_out;        /* outputs per patient: K time bins (discrete NLL) or 1 (Cox risk); 1..4096 */
  double dropout;   /* [0, 1) (0.25) */
  uint64_t seed;    /* weights from the seed alone (1) */
  int dtype;        /* TS_NN_F32 (default) or TS_NN_F64; inputs must match */
  int omic_groups;  /* coattn: genomic tokens (6, MCAT's signature count; min(6, G) are used) */
} ts_survnet_opts;

/* Defaults: path_dim 0, omic_dim 0 (the caller sets the widths its arch uses), n_out 4, dropout
 * 0.25, seed 1, F32, omic_groups 6. The width of an input the architecture does not use is
 * ignored (0 or not); a width the architecture needs must be >= 1 (NN_ARG). */
void ts_survnet_opts_default(ts_survnet_opts *o);

/* Build `arch` with weights from o->seed (o NULL: defaults). *out owned by the caller
 * (ts_survnet_free). Tokens: SURVNET_UNKNOWN, NN_ARG, NN_DTYPE. */
int ts_survnet_new(const char *arch, const ts_survnet_opts *o, ts_survnet **out);
/* Accepts NULL and *m == NULL; sets *m = NULL. */
void ts_survnet_free(ts_survnet **m);
/* Whether arch needs a bag / the omic vector (false for an unknown name). */
bool ts_survnet_uses_path(const char *arch);
bool ts_survnet_uses_omic(const char *arch);

/* What a forward pass gives; every handle is owned by the caller (ts_survnet_out_free). */
typedef struct ts_survnet_out {
  ts_tensor *logits; /* [1, n_out] ([B, n_out] for a batch of omic rows, snn/linear) */
  ts_tensor *a_raw;  /* [N] one score per tile before softmax (see above); NULL for snn/linear */
} ts_survnet_out;
/* Release the handles and set them NULL; accepts NULL and a zeroed struct. */
void ts_survnet_out_free(ts_survnet_out *o);

/* One patient through the model. bag: [N, D] (N >= 1, the model's dtype) or NULL when the arch
 * uses no pathology; omic: [1, G] (or [G]) or NULL when it uses none (an input given to an arch
 * that does not use it is ignored). Archs without a bag (snn, linear) also take a batch of
 * patients, omic [B, G], and give logits [B, n_out] (the whole cohort in one call, as the Cox
 * partial likelihood wants). training: dropout on. Gradients are recorded unless the
 * caller is in a no-grad/inference scope. out zeroed or a previous result (released first); on
 * failure every field is NULL. */
int ts_survnet_forward(ts_survnet *m, const ts_tensor *bag, const ts_tensor *omic, bool training,
                       ts_survnet_out *out);

/* The trainable tensors (all of the state), borrowed, valid while m lives, in state order. */
int ts_survnet_params(const ts_survnet *m, const ts_tensor *const **params_out, int *n_out);
/* The named tensors (borrowed; names above). Save with ts_nn_state_save_h5(.., ts_survnet_arch(m)). */
ts_nn_state *ts_survnet_state(const ts_survnet *m);
/* Strict load by name: exactly the model's names, same shapes, else NN_CHECKPOINT naming the first
 * missing, extra or misshapen entry, and the model is unchanged. Values converted to the dtype. */
int ts_survnet_load_state(ts_survnet *m, const ts_nn_state *src);
/* "" on NULL. */
const char *ts_survnet_arch(const ts_survnet *m);
/* The options the model was built with (NULL on NULL); for coattn, omic_groups is the k used. */
const ts_survnet_opts *ts_survnet_get_opts(const ts_survnet *m);
/* Number of scalar weights (0 on NULL). */
int64_t ts_survnet_param_count(const ts_survnet *m);

/* ---- For implementers (nn/survnet*.c) ---------------------------------------------------------- */

/* Temporaries of a forward pass, freed in one call (ggml-context style): ts__sn_tmp gives a fresh
 * NULL slot for an out-parameter (NULL on out of memory, which the op then rejects as NN_ARG). */
typedef struct ts__sn_pool {
  ts_tensor **t;
  int n, cap;
} ts__sn_pool;
ts_tensor **ts__sn_tmp(ts__sn_pool *p);
void ts__sn_pool_free(ts__sn_pool *p);

/* A linear layer whose tensors are borrowed from the model's state (b NULL: no bias). */
typedef struct ts__sn_linear {
  ts_tensor *w, *b;
} ts__sn_linear;
/* Initialisations of a new linear layer. */
enum ts__sn_init { TS__SN_INIT_TORCH = 0, TS__SN_INIT_MAXW = 1 };
/* "<name>.weight" [out, in] and, when bias, "<name>.bias" [out], added to the state. */
int ts__sn_linear_new(ts_survnet *m, const char *name, int64_t in, int64_t out, bool bias, int init,
                      ts__sn_linear *l);
/* A parameter filled with `value` (LayerNorm weights, zero biases) or ~ U(±bound) (bound > 0). */
int ts__sn_param_new(ts_survnet *m, const char *name, const int64_t *shape, int ndim, double value,
                     double bound, ts_tensor **borrowed_out);
int ts__sn_linear_fwd(const ts__sn_linear *l, const ts_tensor *x, ts_tensor **out);

/* Attn_Net_Gated: attention_a (Linear, Tanh, Dropout), attention_b (Linear, Sigmoid, Dropout),
 * attention_c. */
typedef struct ts__sn_gated {
  ts__sn_linear a, b, c;
} ts__sn_gated;
int ts__sn_gated_new(ts_survnet *m, const char *prefix, int64_t in, int64_t hid, ts__sn_gated *g);
/* x [N, in] -> softmax-pooled [1, in] in *pooled_out and the raw scores [N] in *araw_out (may be
 * NULL). */
int ts__sn_gated_pool(const ts__sn_gated *g, const ts_tensor *x, double p, bool training,
                      ts_tensor **pooled_out, ts_tensor **araw_out);
/* SNN_Block: Linear, ELU, AlphaDropout. */
int ts__sn_snn_fwd(const ts__sn_linear *l, const ts_tensor *x, double p, bool training, ts_tensor **out);
/* Linear, ReLU, Dropout (MLP blocks, rho, wsi_net). */
int ts__sn_relu_drop_fwd(const ts__sn_linear *l, const ts_tensor *x, double p, bool training,
                         ts_tensor **out);
/* The model's dropout and dtype. */
double ts__sn_dropout(const ts_survnet *m);
int ts__sn_dtype(const ts_survnet *m);

/* The MCAT architecture (nn/survnet_coattn.c). */
int ts__sn_coattn_build(ts_survnet *m, const ts_survnet_opts *o, void **impl_out);
int ts__sn_coattn_forward(ts_survnet *m, void *impl, const ts_tensor *bag, const ts_tensor *omic,
                          bool training, ts_survnet_out *out);
void ts__sn_coattn_free(void *impl);

#ifdef __cplusplus
}
#endif
#endif
