/* survnet_coattn.c — MCAT (Chen et al., "Multimodal co-attention transformer for survival
 * prediction in gigapixel whole slide images", ICCV 2021; mahmoodlab/MCAT models/model_coattn.py
 * MCAT_Surv, fusion 'concat', sizes 'small'), on ts_nn.h.
 *
 * Genomic tokens (one per group of the omic vector, each through its own two SNN_Blocks) query
 * the bag's tiles in a one-head attention (the "genomic-guided co-attention"): k co-attended
 * tokens. Two post-norm transformer encoders (as torch.nn.TransformerEncoderLayer, d_model 256,
 * 8 heads, feed-forward 512, ReLU, dropout) then run over the co-attended tokens and over the
 * genomic tokens; each side is pooled by gated attention and a rho layer; the two are
 * concatenated into the fusion MLP and the classifier. Everything after the co-attention works
 * on k <= 6 tokens: the cost is the per-tile fc and key/value projections, so the transformers
 * are built at full size. Names, initialisation and a_raw: ts_survnet.h.
 *
 * Multi-head attention is written out (torch's F.multi_head_attention_forward): q, k, v from one
 * packed in_proj ([3E, E] weight, [3E] bias: narrowed views, so their gradients flow into the
 * one parameter), per head q k^T / sqrt(E/h), softmax over the keys, dropout of the weights in
 * training, weighted values, out_proj.
 */
#include "ts_survnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { E = 256, FF = 512, HEADS = 8, LAYERS = 2 };

struct mha {
  ts_tensor *in_w, *in_b; /* borrowed */
  ts__sn_linear out;
};

struct tlayer {
  struct mha sa;
  ts__sn_linear l1, l2;
  ts_tensor *n1w, *n1b, *n2w, *n2b;
};

struct coattn {
  int k;
  int64_t *start, *len; /* column range of each genomic group */
  ts__sn_linear wsi;
  ts__sn_linear (*sig)[2];
  struct mha co;
  struct tlayer path_tr[LAYERS], omic_tr[LAYERS];
  ts__sn_gated path_head, omic_head;
  ts__sn_linear path_rho, omic_rho, mm0, mm2, cls;
};

void ts__sn_coattn_free(void *impl) {
  struct coattn *c = impl;
  if (!c) return;
  free(c->start);
  free(c->len);
  free(c->sig);
  free(c);
}

/* nn.MultiheadAttention._reset_parameters: xavier_uniform_(in_proj_weight), in_proj_bias 0,
 * out_proj.weight as nn.Linear, out_proj.bias 0. */
static int mha_new(ts_survnet *m, const char *prefix, struct mha *a) {
  char n[192];
  int64_t ws[2] = {3 * E, E}, bs = 3 * E, e = E;
  snprintf(n, sizeof n, "%s.in_proj_weight", prefix);
  TS_CALL(ts__sn_param_new(m, n, ws, 2, 0.0, sqrt(6.0 / (double)(E + 3 * E)), &a->in_w));
  snprintf(n, sizeof n, "%s.in_proj_bias", prefix);
  TS_CALL(ts__sn_param_new(m, n, &bs, 1, 0.0, 0.0, &a->in_b));
  snprintf(n, sizeof n, "%s.out_proj.weight", prefix);
  int64_t os[2] = {E, E};
  TS_CALL(ts__sn_param_new(m, n, os, 2, 0.0, 1.0 / sqrt((double)E), &a->out.w));
  snprintf(n, sizeof n, "%s.out_proj.bias", prefix);
  return ts__sn_param_new(m, n, &e, 1, 0.0, 0.0, &a->out.b);
}

static int tlayer_new(ts_survnet *m, const char *prefix, struct tlayer *l) {
  char n[128];
  int64_t e = E;
  snprintf(n, sizeof n, "%s.self_attn", prefix);
  TS_CALL(mha_new(m, n, &l->sa));
  snprintf(n, sizeof n, "%s.linear1", prefix);
  TS_CALL(ts__sn_linear_new(m, n, E, FF, true, TS__SN_INIT_TORCH, &l->l1));
  snprintf(n, sizeof n, "%s.linear2", prefix);
  TS_CALL(ts__sn_linear_new(m, n, FF, E, true, TS__SN_INIT_TORCH, &l->l2));
  snprintf(n, sizeof n, "%s.norm1.weight", prefix);
  TS_CALL(ts__sn_param_new(m, n, &e, 1, 1.0, 0.0, &l->n1w));
  snprintf(n, sizeof n, "%s.norm1.bias", prefix);
  TS_CALL(ts__sn_param_new(m, n, &e, 1, 0.0, 0.0, &l->n1b));
  snprintf(n, sizeof n, "%s.norm2.weight", prefix);
  TS_CALL(ts__sn_param_new(m, n, &e, 1, 1.0, 0.0, &l->n2w));
  snprintf(n, sizeof n, "%s.norm2.bias", prefix);
  return ts__sn_param_new(m, n, &e, 1, 0.0, 0.0, &l->n2b);
}

/* nn.TransformerEncoder deep-copies its layer: every layer starts as the first. */
static int tlayer_copy(struct tlayer *dst, const struct tlayer *src) {
  ts_tensor *d[] = {dst->sa.in_w, dst->sa.in_b, dst->sa.out.w, dst->sa.out.b, dst->l1.w, dst->l1.b,
                    dst->l2.w,    dst->l2.b,    dst->n1w,      dst->n1b,      dst->n2w,  dst->n2b};
  const ts_tensor *s[] = {src->sa.in_w, src->sa.in_b, src->sa.out.w, src->sa.out.b, src->l1.w, src->l1.b,
                          src->l2.w,    src->l2.b,    src->n1w,      src->n1b,      src->n2w,  src->n2b};
  for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
    TS_CALL(ts_tensor_copy_(d[i], s[i]));
  return 0;
}

static int encoder_new(ts_survnet *m, const char *prefix, struct tlayer *ls) {
  for (int l = 0; l < LAYERS; l++) {
    char n[64];
    snprintf(n, sizeof n, "%s.layers.%d", prefix, l);
    TS_CALL(tlayer_new(m, n, &ls[l]));
    if (l) TS_CALL(tlayer_copy(&ls[l], &ls[0]));
  }
  return 0;
}

int ts__sn_coattn_build(ts_survnet *m, const ts_survnet_opts *o, void **impl_out) {
  struct coattn *c = calloc(1, sizeof *c);
  if (!c) return ts_error_set(TS_ENOMEM, "NN_OOM", "coattn: out of memory");
  *impl_out = c;
  int k = o->omic_groups; /* already min(omic_groups, G) */
  c->k = k;
  c->start = calloc((size_t)k, sizeof *c->start);
  c->len = calloc((size_t)k, sizeof *c->len);
  c->sig = calloc((size_t)k, sizeof *c->sig);
  if (!c->start || !c->len || !c->sig) return ts_error_set(TS_ENOMEM, "NN_OOM", "coattn: out of memory");
  const int T = TS__SN_INIT_TORCH;
  TS_CALL(ts__sn_linear_new(m, "wsi_net.0", o->path_dim, E, true, T, &c->wsi));
  for (int i = 0; i < k; i++) {
    char n[64];
    c->start[i] = (int64_t)i * o->omic_dim / k;
    c->len[i] = (int64_t)(i + 1) * o->omic_dim / k - c->start[i];
    snprintf(n, sizeof n, "sig_networks.%d.0.0", i);
    TS_CALL(ts__sn_linear_new(m, n, c->len[i], E, true, T, &c->sig[i][0]));
    snprintf(n, sizeof n, "sig_networks.%d.1.0", i);
    TS_CALL(ts__sn_linear_new(m, n, E, E, true, T, &c->sig[i][1]));
  }
  TS_CALL(mha_new(m, "coattn", &c->co));
  TS_CALL(encoder_new(m, "path_transformer", c->path_tr));
  TS_CALL(ts__sn_gated_new(m, "path_attention_head", E, E, &c->path_head));
  TS_CALL(ts__sn_linear_new(m, "path_rho.0", E, E, true, T, &c->path_rho));
  TS_CALL(encoder_new(m, "omic_transformer", c->omic_tr));
  TS_CALL(ts__sn_gated_new(m, "omic_attention_head", E, E, &c->omic_head));
  TS_CALL(ts__sn_linear_new(m, "omic_rho.0", E, E, true, T, &c->omic_rho));
  TS_CALL(ts__sn_linear_new(m, "mm.0", 2 * E, E, true, T, &c->mm0));
  TS_CALL(ts__sn_linear_new(m, "mm.2", E, E, true, T, &c->mm2));
  return ts__sn_linear_new(m, "classifier", E, o->n_out, true, T, &c->cls);
}

/* Attention of xq [S, E] over xkv [T, E] with h heads; *out [S, E]; raw_out (may be NULL): the
 * pre-softmax scores [T], meaned over heads and queries. */
static int mha_fwd(const struct mha *a, const ts_tensor *xq, const ts_tensor *xkv, int h, double p,
                   bool training, ts_tensor **out, ts_tensor **raw_out) {
  ts__sn_pool P = {0};
  int rc = 0;
  int64_t S = ts_tensor_size(xq, 0), T = ts_tensor_size(xkv, 0), hd = E / h;
  ts_tensor **w[3], **b[3], **y[3], **r[3], **t[3];
  for (int i = 0; i < 3; i++) {
    w[i] = ts__sn_tmp(&P), b[i] = ts__sn_tmp(&P), y[i] = ts__sn_tmp(&P), r[i] = ts__sn_tmp(&P);
    t[i] = ts__sn_tmp(&P);
  }
  ts_tensor **qs = ts__sn_tmp(&P), **kt = ts__sn_tmp(&P), **sc = ts__sn_tmp(&P), **sm = ts__sn_tmp(&P),
            **dr = ts__sn_tmp(&P), **o = ts__sn_tmp(&P), **ot = ts__sn_tmp(&P), **oc = ts__sn_tmp(&P),
            **of = ts__sn_tmp(&P), **s2 = ts__sn_tmp(&P);
  *out = NULL;
  if (raw_out) *raw_out = NULL;
  for (int i = 0; i < 3; i++) {
    int64_t rows = i == 0 ? S : T, shape[3] = {rows, h, hd};
    TS_TRY(ts_tensor_narrow(a->in_w, 0, (int64_t)i * E, E, w[i]));
    TS_TRY(ts_tensor_narrow(a->in_b, 0, (int64_t)i * E, E, b[i]));
    TS_TRY(ts_nn_linear(i == 0 ? xq : xkv, *w[i], *b[i], y[i]));
    TS_TRY(ts_tensor_reshape(*y[i], shape, 3, r[i]));
    TS_TRY(ts_tensor_transpose(*r[i], 0, 1, t[i])); /* [h, rows, hd] */
  }
  TS_TRY(ts_nn_mul_scalar(*t[0], 1.0 / sqrt((double)hd), qs));
  TS_TRY(ts_tensor_transpose(*t[1], 1, 2, kt));
  TS_TRY(ts_nn_matmul(*qs, *kt, sc)); /* [h, S, T] */
  if (raw_out) {
    int64_t s2s[2] = {h * S, T};
    TS_TRY(ts_tensor_reshape(*sc, s2s, 2, s2));
    TS_TRY(ts_nn_mean(*s2, 0, false, raw_out));
  }
  TS_TRY(ts_nn_softmax(*sc, -1, sm));
  TS_TRY(ts_nn_dropout_fast(*sm, p, training, dr));
  TS_TRY(ts_nn_matmul(*dr, *t[2], o));       /* [h, S, hd] */
  TS_TRY(ts_tensor_transpose(*o, 0, 1, ot)); /* [S, h, hd] */
  TS_TRY(ts_tensor_contiguous(*ot, oc));
  int64_t fs[2] = {S, E};
  TS_TRY(ts_tensor_reshape(*oc, fs, 2, of));
  TS_TRY(ts__sn_linear_fwd(&a->out, *of, out));
out:
  if (rc < 0) {
    ts_tensor_free(out);
    if (raw_out) ts_tensor_free(raw_out);
  }
  ts__sn_pool_free(&P);
  return rc;
}

/* TransformerEncoderLayer (norm_first False): x = norm1(x + drop(sa(x))); x = norm2(x +
 * drop(linear2(drop(relu(linear1(x)))))). */
static int tlayer_fwd(const struct tlayer *l, const ts_tensor *x, double p, bool training, ts_tensor **out) {
  ts__sn_pool P = {0};
  int rc = 0;
  int64_t e = E;
  ts_tensor **sa = ts__sn_tmp(&P), **d1 = ts__sn_tmp(&P), **r1 = ts__sn_tmp(&P), **n1 = ts__sn_tmp(&P),
            **f1 = ts__sn_tmp(&P), **a1 = ts__sn_tmp(&P), **fd = ts__sn_tmp(&P), **f2 = ts__sn_tmp(&P),
            **d2 = ts__sn_tmp(&P), **r2 = ts__sn_tmp(&P);
  TS_TRY(mha_fwd(&l->sa, x, x, HEADS, p, training, sa, NULL));
  TS_TRY(ts_nn_dropout_fast(*sa, p, training, d1));
  TS_TRY(ts_nn_add(x, *d1, r1));
  TS_TRY(ts_nn_layer_norm(*r1, &e, 1, l->n1w, l->n1b, 1e-5, n1));
  TS_TRY(ts__sn_linear_fwd(&l->l1, *n1, f1));
  TS_TRY(ts_nn_relu(*f1, a1));
  TS_TRY(ts_nn_dropout_fast(*a1, p, training, fd));
  TS_TRY(ts__sn_linear_fwd(&l->l2, *fd, f2));
  TS_TRY(ts_nn_dropout_fast(*f2, p, training, d2));
  TS_TRY(ts_nn_add(*n1, *d2, r2));
  TS_TRY(ts_nn_layer_norm(*r2, &e, 1, l->n2w, l->n2b, 1e-5, out));
out:
  ts__sn_pool_free(&P);
  return rc;
}

/* Encoder, gated pooling, rho: one side of MCAT, [k, E] -> [1, E]. */
static int side_fwd(const struct tlayer *ls, const ts__sn_gated *head, const ts__sn_linear *rho,
                    const ts_tensor *x, double p, bool training, ts_tensor **out) {
  ts__sn_pool P = {0};
  int rc = 0;
  const ts_tensor *h = x;
  for (int l = 0; l < LAYERS; l++) {
    ts_tensor **y = ts__sn_tmp(&P);
    TS_TRY(tlayer_fwd(&ls[l], h, p, training, y));
    h = *y;
  }
  ts_tensor **pooled = ts__sn_tmp(&P);
  TS_TRY(ts__sn_gated_pool(head, h, p, training, pooled, NULL));
  TS_TRY(ts__sn_relu_drop_fwd(rho, *pooled, p, training, out));
out:
  ts__sn_pool_free(&P);
  return rc;
}

int ts__sn_coattn_forward(ts_survnet *m, void *impl, const ts_tensor *bag, const ts_tensor *omic,
                          bool training, ts_survnet_out *out) {
  const struct coattn *c = impl;
  double p = ts__sn_dropout(m);
  ts__sn_pool P = {0};
  int rc = 0;
  const ts_tensor **toks = calloc((size_t)c->k, sizeof *toks);
  ts_tensor **hp = ts__sn_tmp(&P), **tokens = ts__sn_tmp(&P), **co = ts__sn_tmp(&P), **hpath = ts__sn_tmp(&P),
            **homic = ts__sn_tmp(&P), **cat = ts__sn_tmp(&P), **m0 = ts__sn_tmp(&P), **z0 = ts__sn_tmp(&P),
            **m2 = ts__sn_tmp(&P), **z2 = ts__sn_tmp(&P);
  if (!toks) TS_FAIL(TS_ENOMEM, "NN_OOM", "coattn: out of memory");
  TS_TRY(ts__sn_relu_drop_fwd(&c->wsi, bag, p, training, hp)); /* [N, E] */
  for (int i = 0; i < c->k; i++) {
    ts_tensor **xi = ts__sn_tmp(&P), **s1 = ts__sn_tmp(&P), **s2 = ts__sn_tmp(&P);
    TS_TRY(ts_tensor_narrow(omic, 1, c->start[i], c->len[i], xi));
    TS_TRY(ts__sn_snn_fwd(&c->sig[i][0], *xi, p, training, s1));
    TS_TRY(ts__sn_snn_fwd(&c->sig[i][1], *s1, p, training, s2));
    toks[i] = *s2;
  }
  TS_TRY(ts_nn_cat(toks, c->k, 0, tokens));                                 /* [k, E] */
  TS_TRY(mha_fwd(&c->co, *tokens, *hp, 1, 0.0, training, co, &out->a_raw)); /* [k, E], [N] */
  TS_TRY(side_fwd(c->path_tr, &c->path_head, &c->path_rho, *co, p, training, hpath));
  TS_TRY(side_fwd(c->omic_tr, &c->omic_head, &c->omic_rho, *tokens, p, training, homic));
  const ts_tensor *parts[2] = {*hpath, *homic};
  TS_TRY(ts_nn_cat(parts, 2, 1, cat));
  TS_TRY(ts__sn_linear_fwd(&c->mm0, *cat, m0));
  TS_TRY(ts_nn_relu(*m0, z0));
  TS_TRY(ts__sn_linear_fwd(&c->mm2, *z0, m2));
  TS_TRY(ts_nn_relu(*m2, z2));
  TS_TRY(ts__sn_linear_fwd(&c->cls, *z2, &out->logits));
out:
  free(toks);
  ts__sn_pool_free(&P);
  return rc;
}
