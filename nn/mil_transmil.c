/* mil_transmil.c — TransMIL (Shao et al., "TransMIL: Transformer based correlated multiple instance
 * learning for whole slide image classification", NeurIPS 2021; szc19990412/TransMIL
 * models/TransMIL.py), on tile features, with its Nyström self-attention (Xiong et al.,
 * "Nyströmformer", AAAI 2021, as lucidrains/nystrom-attention NystromAttention implements it).
 *
 * The forward pass, step by step as the official module does it (L = opts.hidden, 512 there):
 *   h = ReLU(_fc1(bag))                         [N, L]   (no dropout: the official fc has none)
 *   pad to the next square s×s, s = ceil(sqrt N), by repeating the FIRST s²-N tiles
 *                                               (torch.cat([h, h[:, :add_length]])) [s², L]
 *   prepend cls_token                           [1+s², L]
 *   layer1: x + NystromAttention(LayerNorm(x))  (TransLayer)
 *   pos_layer (PPEG): the s² tokens as an L×s×s image (token t at row t / s, column t % s),
 *           image + dw7×7(image) + dw5×5(image) + dw3×3(image) (depthwise: groups = L, with
 *           bias, "same" padding); the cls token passes through unchanged
 *   layer2: as layer1
 *   norm (LayerNorm) of the cls token -> embedding [1, L] -> _fc2 -> logits [1, C]
 * Constants of the official TransLayer: heads 8, dim_head L/8, num_landmarks L/2, 6 pinv
 * iterations, residual value conv kernel 33, dropout 0.1 on the attention's output projection
 * (to_out.1). opts.dropout and opts.attn_dim are not used: TransMIL has no other dropout and no
 * attention MLP. n_classes 1 gives one output (regression through ts_mil_loss's MSE).
 * No instance loss (inst_loss stays NULL; a label changes nothing). float32 and float64.
 * Cost per TransLayer is linear in the sequence: [8, n_pad, m] attention blocks, m = 256.
 *
 * NystromAttention (per TransLayer, on the normalised sequence x [n, L]; nothing is masked, as
 * TransMIL passes no mask):
 *   - the sequence is padded AT THE FRONT with zero rows to a multiple of m = num_landmarks:
 *     pad = (m - n % m) % m. For TransMIL n = s²+1 is never a multiple of 4, hence never of
 *     m = 256, so there is always padding: a 1-tile bag (n = 2) becomes 254 zero rows + cls +
 *     tile. The zero rows are not masked: their q = k = v = 0 (to_qkv has no bias), they count
 *     in the landmark means and in every softmax over keys (logit 0), and the residual conv sees
 *     them. This is what the official model computes, and tessera reproduces it.
 *   - q, k, v = to_qkv(x) split in three, heads [8, n_pad, d]; q *= d^-1/2;
 *     landmarks = means over m consecutive segments of l = n_pad / m tokens (einops
 *     '(n l) d -> n d', sum then / l): q̃, k̃ [8, m, d];
 *   - A1 = softmax(q k̃ᵀ) [8, n_pad, m], A2 = softmax(q̃ k̃ᵀ) [8, m, m], A3 = softmax(q̃ kᵀ);
 *   - A2⁺ by 6 Newton-Schulz iterations (moore_penrose_iter_pinv): Z0 = A2ᵀ / (max_i Σ_j |A2|ij
 *     · max_j Σ_i |A2|ij), maxima over ALL heads together (torch.max of the whole tensor);
 *     Z <- ¼ Z (13 I - A2Z (15 I - A2Z (7 I - A2Z)));
 *   - out = (A1 A2⁺)(A3 v) + res_conv(v) (depthwise conv over the sequence, kernel 33×1, no
 *     bias), heads merged, to_out (Linear, Dropout), and the LAST n rows kept (out[:, -n:]): the
 *     rows of the real tokens.
 * Version note: TransMIL's requirements.txt pins nystrom-attention 0.0.9, whose forward keeps
 * the FIRST n rows (out[:, :n]) although it pads at the front, so each token receives the
 * output of the row `pad` places before it (the cls token that of a zero row). 0.0.10
 * ("fix padding bug", lucidrains d7eb229) keeps the last n rows, as every later release and
 * `pip install nystrom-attention` today do; tessera computes the fixed one. A checkpoint trained
 * with 0.0.9 loads (same names and shapes) but does not give the same logits here.
 *
 * Attention for heatmaps (a_raw, [N]). TransMIL has no attention vector: its prediction reads
 * the cls token after layer2. tessera gives the cls token's row of layer2's approximate attention
 * matrix, the one NystromAttention(return_attn=True) returns, A1 A2⁺ A3 [8, n_pad, n_pad]: the
 * row of the cls query, the columns of the N real tiles (the s²-N repeated copies, the front zero
 * rows and the cls key dropped), averaged over the 8 heads:
 *     a_raw[i] = 1/8 Σ_h (A1[h, pad, :] A2⁺[h]) A3[h, :, pad + 1 + i],  i = 0..N-1.
 * It is computed without gradient. It is not a softmax output: the Nyström approximation's
 * rows need not be positive and, over the kept columns, do not sum to 1; it leaves out the
 * residual conv path (a fixed local mixing along the sequence, not attention) and the value
 * vectors. Rank tiles by it, as CLAM's heatmaps rank raw scores (percentiles); do not read it
 * as a probability.
 *
 * State-dict names and order: those of TransMIL(n_classes).state_dict() (a module's own
 * parameters first, then its children in registration order):
 *   cls_token [1, 1, L]
 *   pos_layer.proj.{weight [L,1,7,7], bias}  pos_layer.proj1 (5×5)  pos_layer.proj2 (3×3)
 *   _fc1.0.{weight [L, D], bias}
 *   layer<k>.norm.{weight, bias}                              k = 1, 2
 *   layer<k>.attn.to_qkv.weight [3L, L]   (no bias)
 *   layer<k>.attn.to_out.0.{weight [L, L], bias}
 *   layer<k>.attn.res_conv.weight [8, 1, 33, 1]
 *   norm.{weight, bias}
 *   _fc2.{weight [C, L], bias}
 * The official module's _fc1 is Linear(1024, 512); here it is Linear(D, L) for any feature width.
 * Initialisation is PyTorch's default for each layer (what the official module gets: it calls no
 * init function): Linear and Conv2d U(±1/sqrt(fan_in)) for weights and biases (fan_in =
 * in/groups · kh · kw), LayerNorm 1 and 0, cls_token N(0, 1); each tensor from its own generator
 * seeded by (opts.seed, its index in the state), as in mil.c.
 */
#include "ts_mil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define HEADS 8
#define PINV_ITERS 6
#define RES_KERNEL 33
#define ATTN_DROPOUT 0.1
#define LN_EPS 1e-5

struct conv {
  ts_tensor *w, *b; /* b may be NULL */
};

struct nystrom {
  ts_tensor *qkv_w;   /* to_qkv.weight */
  ts__mil_linear out; /* to_out.0 */
  ts_tensor *res_w;   /* res_conv.weight */
};

struct translayer {
  ts_tensor *norm_w, *norm_b;
  struct nystrom attn;
};

struct transmil {
  int64_t dim, dim_head, landmarks;
  double scale;
  ts_tensor *cls;
  struct conv proj[3]; /* 7, 5, 3 */
  ts__mil_linear fc1, fc2;
  struct translayer layer[2];
  ts_tensor *norm_w, *norm_b;
  ts_tensor *eye; /* [m, m] in the model's dtype: not a weight, not in the state */
};

/* ---- Scratch: every intermediate of a function is kept here and released in one call ------- */

#define SCRATCH_MAX 96

typedef struct scratch {
  ts_tensor *t[SCRATCH_MAX];
  int n;
} scratch;

static int keep(scratch *s, ts_tensor *t) {
  if (s->n == SCRATCH_MAX) {
    ts_tensor_free(&t);
    return ts_error_set(TS_EINTERNAL, "NN_ERROR", "transmil: scratch full (%d tensors)", SCRATCH_MAX);
  }
  s->t[s->n++] = t;
  return 0;
}

static void scratch_free(scratch *s) {
  for (int i = 0; i < s->n; i++)
    ts_tensor_free(&s->t[i]);
  s->n = 0;
}

/* Run `call` (an op whose last argument is &var) and keep var in the function's scratch `sc`. */
#define K(var, call)                                                                                         \
  do {                                                                                                       \
    TS_TRY(call);                                                                                            \
    TS_TRY(keep(&sc, var));                                                                                  \
  } while (0)

static void transmil_free(void *impl) {
  struct transmil *t = impl;
  if (!t) return;
  ts_tensor_free(&t->eye);
  free(t);
}

/* ---- Weights ------------------------------------------------------------------------------------ */

/* mil.c's per-entry seed (splitmix64 of the run seed and the entry's index). */
static uint64_t entry_seed(uint64_t seed, uint64_t i) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (i + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return z ? z : 1;
}

/* A trainable `name` ~ U(-bound, bound) (bound 0: the constant `fill`). */
static int param(ts_mil *m, const char *name, const int64_t *shape, int nd, double bound, double fill,
                 ts_tensor **out) {
  ts_tensor *u = NULL, *s = NULL, *v = NULL;
  int rc = 0;
  const ts_mil_opts *o = ts_mil_get_opts(m);
  uint64_t seed = entry_seed(o->seed, (uint64_t)ts_nn_state_count(ts_mil_state(m)));
  TS_TRY(ts__mil_param_new(m, name, shape, nd, 0, out));
  if (bound == 0) {
    if (fill != 0) TS_TRY(ts_tensor_fill_(*out, fill));
    goto out;
  }
  TS_TRY(ts_tensor_rand(shape, nd, o->dtype, seed, &u));
  TS_TRY(ts_nn_mul_scalar(u, 2.0 * bound, &s));
  TS_TRY(ts_nn_add_scalar(s, -bound, &v));
  TS_TRY(ts_tensor_copy_(*out, v));
out:
  ts_tensor_free(&u), ts_tensor_free(&s), ts_tensor_free(&v);
  return rc;
}

/* nn.Conv2d(dim, dim, k, groups=dim) ("<name>.weight" [dim, 1, kh, kw], "<name>.bias" [dim] unless
 * !bias), default initialisation. */
static int conv_new(ts_mil *m, const char *name, int64_t ch, int64_t kh, int64_t kw, bool bias,
                    struct conv *c) {
  char full[128];
  int64_t ws[4] = {ch, 1, kh, kw};
  double bound = 1.0 / sqrt((double)(kh * kw)); /* fan_in = (in / groups) · kh · kw = kh · kw */
  snprintf(full, sizeof full, "%s.weight", name);
  TS_CALL(param(m, full, ws, 4, bound, 0, &c->w));
  c->b = NULL;
  if (!bias) return 0;
  snprintf(full, sizeof full, "%s.bias", name);
  return param(m, full, &ch, 1, bound, 0, &c->b);
}

static int layernorm_new(ts_mil *m, const char *prefix, int64_t dim, ts_tensor **w, ts_tensor **b) {
  char full[128];
  snprintf(full, sizeof full, "%s.weight", prefix);
  TS_CALL(param(m, full, &dim, 1, 0, 1.0, w));
  snprintf(full, sizeof full, "%s.bias", prefix);
  return param(m, full, &dim, 1, 0, 0.0, b);
}

static int translayer_new(ts_mil *m, int k, int64_t dim, struct translayer *t) {
  char p[64], full[128];
  snprintf(p, sizeof p, "layer%d.norm", k);
  TS_CALL(layernorm_new(m, p, dim, &t->norm_w, &t->norm_b));
  int64_t qs[2] = {3 * dim, dim};
  snprintf(full, sizeof full, "layer%d.attn.to_qkv.weight", k);
  TS_CALL(param(m, full, qs, 2, 1.0 / sqrt((double)dim), 0, &t->attn.qkv_w));
  snprintf(full, sizeof full, "layer%d.attn.to_out.0", k);
  TS_CALL(ts__mil_linear_new(m, full, dim, dim, &t->attn.out));
  struct conv rc;
  snprintf(full, sizeof full, "layer%d.attn.res_conv", k);
  TS_CALL(conv_new(m, full, HEADS, RES_KERNEL, 1, false, &rc));
  t->attn.res_w = rc.w;
  return 0;
}

static int transmil_check(const ts_mil_opts *o) {
  if (o->hidden < 2 * HEADS || o->hidden % HEADS != 0)
    return ts_error_set(TS_EINVAL, "NN_ARG",
                        "transmil: hidden %lld must be a multiple of %d and >= %d (heads %d, dim_head "
                        "hidden/8, landmarks hidden/2)",
                        (long long)o->hidden, HEADS, 2 * HEADS, HEADS);
  return 0;
}

static int transmil_build(ts_mil *m, const ts_mil_opts *o, void **impl_out) {
  struct transmil *t = calloc(1, sizeof *t);
  if (!t) return ts_error_set(TS_ENOMEM, "NN_OOM", "transmil: out of memory");
  *impl_out = t; /* freed by ts_mil_free, also on failure below */
  int64_t L = o->hidden;
  t->dim = L;
  t->dim_head = L / HEADS;
  t->landmarks = L / 2;
  t->scale = 1.0 / sqrt((double)t->dim_head);
  /* state_dict order: the module's own parameter, then pos_layer, _fc1, layer1, layer2, norm, _fc2 */
  int64_t cs[3] = {1, 1, L};
  TS_CALL(ts__mil_param_new(m, "cls_token", cs, 3, 1.0, &t->cls));
  static const char *const proj[3] = {"pos_layer.proj", "pos_layer.proj1", "pos_layer.proj2"};
  for (int i = 0; i < 3; i++)
    TS_CALL(conv_new(m, proj[i], L, 7 - 2 * i, 7 - 2 * i, true, &t->proj[i]));
  TS_CALL(ts__mil_linear_new(m, "_fc1.0", o->in_dim, L, &t->fc1));
  for (int k = 0; k < 2; k++)
    TS_CALL(translayer_new(m, k + 1, L, &t->layer[k]));
  TS_CALL(layernorm_new(m, "norm", L, &t->norm_w, &t->norm_b));
  TS_CALL(ts__mil_linear_new(m, "_fc2", L, o->n_classes, &t->fc2));
  /* the identity of the pseudo-inverse iterations */
  int64_t nm = t->landmarks, es[2] = {nm, nm};
  double *e = calloc((size_t)(nm * nm), sizeof *e);
  if (!e) return ts_error_set(TS_ENOMEM, "NN_OOM", "transmil: out of memory");
  for (int64_t i = 0; i < nm; i++)
    e[i * nm + i] = 1;
  ts_tensor *e64 = NULL;
  int rc = ts_tensor_from_data(e, TS_NN_F64, es, 2, &e64);
  free(e);
  if (rc == 0) rc = ts_tensor_to_dtype(e64, o->dtype, &t->eye);
  ts_tensor_free(&e64);
  return rc;
}

/* ---- Forward -------------------------------------------------------------------------------------- */

/* moore_penrose_iter_pinv(x, 6) of x [h, m, m] into *out. */
static int pinv(const struct transmil *t, const ts_tensor *x, ts_tensor **out) {
  scratch sc = {0};
  ts_tensor *ax, *col, *row, *mc, *mr, *den, *xt, *i7, *i13, *i15, *z = NULL;
  int rc = 0;
  *out = NULL;
  K(ax, ts_nn_abs(x, &ax));
  K(col, ts_nn_sum(ax, -1, false, &col));
  K(row, ts_nn_sum(ax, -2, false, &row));
  K(mc, ts_nn_max(col, TS_NN_ALL_DIMS, false, &mc)); /* over all heads, as torch.max(col) */
  K(mr, ts_nn_max(row, TS_NN_ALL_DIMS, false, &mr));
  K(den, ts_nn_mul(mc, mr, &den));
  K(xt, ts_tensor_transpose(x, -1, -2, &xt));
  TS_TRY(ts_nn_div(xt, den, &z));
  K(i7, ts_nn_mul_scalar(t->eye, 7, &i7));
  K(i13, ts_nn_mul_scalar(t->eye, 13, &i13));
  K(i15, ts_nn_mul_scalar(t->eye, 15, &i15));
  for (int it = 0; it < PINV_ITERS; it++) {
    /* z = 0.25 z @ (13 I - xz @ (15 I - xz @ (7 I - xz))) */
    ts_tensor *xz = NULL, *a = NULL, *b = NULL, *c = NULL, *d = NULL, *e = NULL, *zq = NULL, *zn = NULL;
    int r = ts_nn_matmul(x, z, &xz);
    if (r == 0) r = ts_nn_sub(i7, xz, &a);
    if (r == 0) r = ts_nn_matmul(xz, a, &b);
    if (r == 0) r = ts_nn_sub(i15, b, &c);
    if (r == 0) r = ts_nn_matmul(xz, c, &d);
    if (r == 0) r = ts_nn_sub(i13, d, &e);
    if (r == 0) r = ts_nn_mul_scalar(z, 0.25, &zq);
    if (r == 0) r = ts_nn_matmul(zq, e, &zn);
    ts_tensor *all[] = {xz, a, b, c, d, e, zq, z};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
      ts_tensor_free(&all[i]);
    z = zn;
    TS_TRY(r);
  }
  *out = z;
  z = NULL;
out:
  ts_tensor_free(&z);
  scratch_free(&sc);
  return rc;
}

/* NystromAttention(x) for x [n, L] into *out [n, L]. cls_row_out (may be NULL): the row of query
 * 0 of A1 A2⁺ A3 over the n unpadded keys, [h, 1, n], computed without gradient. */
static int nystrom(const struct transmil *t, const struct nystrom *w, const ts_tensor *x, bool training,
                   ts_tensor **cls_row_out, ts_tensor **out) {
  scratch sc = {0};
  ts_tensor *xp, *qkv, *qkvh[3], *q, *ql, *kl, *klt, *kt, *s1, *s2, *s3, *a1, *a2, *a3, *z, *a1z, *a3v, *o,
      *v4, *res, *res3, *sum, *sp, *merged, *proj, *dr;
  ts_nn_guard *g = NULL;
  int rc = 0;
  const int64_t n = ts_tensor_size(x, 0), L = t->dim, m = t->landmarks, dh = t->dim_head;
  const int64_t pad = (m - n % m) % m, np = n + pad, l = np / m, inner = HEADS * dh;
  *out = NULL;
  if (cls_row_out) *cls_row_out = NULL;
  /* F.pad(x, (0, 0, pad, 0)): zero rows in front */
  if (pad > 0) {
    ts_tensor *zr;
    int64_t zs[2] = {pad, L};
    K(zr, ts_tensor_zeros(zs, 2, ts_tensor_dtype(x), &zr));
    const ts_tensor *parts[2] = {zr, x};
    K(xp, ts_nn_cat(parts, 2, 0, &xp));
  } else {
    K(xp, ts_tensor_alias(x, &xp));
  }
  K(qkv, ts_nn_linear(xp, w->qkv_w, NULL, &qkv)); /* [np, 3·inner] */
  for (int i = 0; i < 3; i++) {
    ts_tensor *c, *r;
    int64_t rs[3] = {np, HEADS, dh}, perm[3] = {1, 0, 2};
    K(c, ts_tensor_narrow(qkv, 1, i * inner, inner, &c));
    K(r, ts_tensor_reshape(c, rs, 3, &r));
    K(qkvh[i], ts_tensor_permute(r, perm, 3, &qkvh[i])); /* [h, np, dh] */
  }
  const ts_tensor *k = qkvh[1], *v = qkvh[2];
  K(q, ts_nn_mul_scalar(qkvh[0], t->scale, &q));
  /* landmarks: means of l consecutive tokens */
  {
    ts_tensor *r, *s;
    int64_t rs[4] = {HEADS, m, l, dh};
    K(r, ts_tensor_reshape(q, rs, 4, &r));
    K(s, ts_nn_sum(r, 2, false, &s));
    K(ql, ts_nn_mul_scalar(s, 1.0 / (double)l, &ql));
    K(r, ts_tensor_reshape(k, rs, 4, &r));
    K(s, ts_nn_sum(r, 2, false, &s));
    K(kl, ts_nn_mul_scalar(s, 1.0 / (double)l, &kl));
  }
  K(klt, ts_tensor_transpose(kl, -1, -2, &klt));
  K(kt, ts_tensor_transpose(k, -1, -2, &kt));
  K(s1, ts_nn_matmul(q, klt, &s1));  /* [h, np, m] */
  K(s2, ts_nn_matmul(ql, klt, &s2)); /* [h, m, m] */
  K(s3, ts_nn_matmul(ql, kt, &s3));  /* [h, m, np] */
  K(a1, ts_nn_softmax(s1, -1, &a1));
  K(a2, ts_nn_softmax(s2, -1, &a2));
  K(a3, ts_nn_softmax(s3, -1, &a3));
  K(z, pinv(t, a2, &z));
  K(a1z, ts_nn_matmul(a1, z, &a1z));
  K(a3v, ts_nn_matmul(a3, v, &a3v));
  K(o, ts_nn_matmul(a1z, a3v, &o)); /* [h, np, dh] */
  {
    int64_t st[2] = {1, 1}, pd[2] = {RES_KERNEL / 2, 0}, dl[2] = {1, 1};
    K(v4, ts_tensor_unsqueeze(v, 0, &v4));
    K(res, ts_nn_conv2d(v4, w->res_w, NULL, st, pd, dl, HEADS, &res));
    K(res3, ts_tensor_squeeze(res, 0, &res3));
  }
  K(sum, ts_nn_add(o, res3, &sum));
  {
    int64_t perm[3] = {1, 0, 2}, ms[2] = {np, inner};
    K(sp, ts_tensor_permute(sum, perm, 3, &sp));
    K(merged, ts_tensor_reshape(sp, ms, 2, &merged));
  }
  K(proj, ts__mil_linear_fwd(&w->out, merged, &proj));
  K(dr, ts_nn_dropout(proj, ATTN_DROPOUT, training, &dr));
  TS_TRY(ts_tensor_narrow(dr, 0, pad, n, out)); /* out[:, -n:] */
  if (cls_row_out) {
    ts_tensor *r1, *r1z, *row;
    TS_TRY(ts_nn_no_grad_begin(&g));
    K(r1, ts_tensor_narrow(a1, 1, pad, 1, &r1)); /* the query of token 0 */
    K(r1z, ts_nn_matmul(r1, z, &r1z));
    K(row, ts_nn_matmul(r1z, a3, &row)); /* [h, 1, np] */
    TS_TRY(ts_tensor_narrow(row, 2, pad, n, cls_row_out));
    ts_nn_guard_end(&g);
  }
out:
  ts_nn_guard_end(&g);
  scratch_free(&sc);
  if (rc < 0) {
    ts_tensor_free(out);
    if (cls_row_out) ts_tensor_free(cls_row_out);
  }
  return rc;
}

/* TransLayer: x + attn(norm(x)). */
static int translayer(const struct transmil *t, const struct translayer *w, const ts_tensor *x, bool training,
                      ts_tensor **cls_row_out, ts_tensor **out) {
  scratch sc = {0};
  ts_tensor *nx, *a;
  int rc = 0;
  *out = NULL;
  K(nx, ts_nn_layer_norm(x, &t->dim, 1, w->norm_w, w->norm_b, LN_EPS, &nx));
  K(a, nystrom(t, &w->attn, nx, training, cls_row_out, &a));
  TS_TRY(ts_nn_add(x, a, out));
out:
  scratch_free(&sc);
  if (rc < 0 && cls_row_out) ts_tensor_free(cls_row_out);
  return rc;
}

/* PPEG on x [1 + s², L]. */
static int ppeg(const struct transmil *t, const ts_tensor *x, int64_t s, ts_tensor **out) {
  scratch sc = {0};
  ts_tensor *cls, *feat, *ft, *img, *c[3], *acc, *flat, *tok;
  int rc = 0;
  const int64_t L = t->dim;
  *out = NULL;
  K(cls, ts_tensor_narrow(x, 0, 0, 1, &cls));
  K(feat, ts_tensor_narrow(x, 0, 1, s * s, &feat));
  K(ft, ts_tensor_transpose(feat, 0, 1, &ft)); /* [L, s²] */
  int64_t is[4] = {1, L, s, s}, fs[2] = {L, s * s};
  K(img, ts_tensor_reshape(ft, is, 4, &img));
  for (int i = 0; i < 3; i++) {
    int64_t k = 7 - 2 * i, st[2] = {1, 1}, pd[2] = {k / 2, k / 2}, dl[2] = {1, 1};
    K(c[i], ts_nn_conv2d(img, t->proj[i].w, t->proj[i].b, st, pd, dl, L, &c[i]));
  }
  /* proj(cnn_feat) + cnn_feat + proj1(cnn_feat) + proj2(cnn_feat), in that order */
  K(acc, ts_nn_add(c[0], img, &acc));
  K(acc, ts_nn_add(acc, c[1], &acc));
  K(acc, ts_nn_add(acc, c[2], &acc));
  K(flat, ts_tensor_reshape(acc, fs, 2, &flat));
  K(tok, ts_tensor_transpose(flat, 0, 1, &tok)); /* [s², L] */
  const ts_tensor *parts[2] = {cls, tok};
  TS_TRY(ts_nn_cat(parts, 2, 0, out));
out:
  scratch_free(&sc);
  return rc;
}

static int transmil_forward(ts_mil *m, void *impl, const ts_tensor *bag, bool training, const int64_t *label,
                            ts_mil_out *out) {
  (void)m, (void)label;
  const struct transmil *t = impl;
  scratch sc = {0};
  ts_tensor *z, *h, *hp, *cls, *seq, *x1, *x2, *x3, *c3, *row = NULL, *rt, *am;
  int rc = 0;
  const int64_t n = ts_tensor_size(bag, 0), L = t->dim;
  /* the next square: s = ceil(sqrt(n)), exactly */
  int64_t s = (int64_t)ceil(sqrt((double)n));
  while (s * s < n)
    s++;
  while (s > 1 && (s - 1) * (s - 1) >= n)
    s--;
  const int64_t add = s * s - n; /* <= n for every n >= 1, so the first `add` tiles exist */
  K(z, ts__mil_linear_fwd(&t->fc1, bag, &z));
  K(h, ts_nn_relu(z, &h));
  if (add > 0) {
    ts_tensor *head;
    K(head, ts_tensor_narrow(h, 0, 0, add, &head));
    const ts_tensor *parts[2] = {h, head};
    K(hp, ts_nn_cat(parts, 2, 0, &hp));
  } else {
    hp = h;
  }
  int64_t cs[2] = {1, L};
  K(cls, ts_tensor_reshape(t->cls, cs, 2, &cls));
  {
    const ts_tensor *parts[2] = {cls, hp};
    K(seq, ts_nn_cat(parts, 2, 0, &seq)); /* [1 + s², L] */
  }
  K(x1, translayer(t, &t->layer[0], seq, training, NULL, &x1));
  K(x2, ppeg(t, x1, s, &x2));
  TS_TRY(translayer(t, &t->layer[1], x2, training, &row, &x3));
  TS_TRY(keep(&sc, x3));
  TS_TRY(keep(&sc, row));
  K(c3, ts_tensor_narrow(x3, 0, 0, 1, &c3)); /* LayerNorm is per token: only the cls token's */
  TS_TRY(ts_nn_layer_norm(c3, &L, 1, t->norm_w, t->norm_b, LN_EPS, &out->embedding));
  TS_TRY(ts__mil_linear_fwd(&t->fc2, out->embedding, &out->logits));
  /* a_raw: the cls row over the N real tiles (key 0 is the cls token), mean over heads */
  K(rt, ts_tensor_narrow(row, 2, 1, n, &rt)); /* [h, 1, N] */
  K(am, ts_nn_mean(rt, 0, false, &am));       /* [1, N] */
  TS_TRY(ts_tensor_reshape(am, &n, 1, &out->a_raw));
out:
  scratch_free(&sc);
  return rc; /* on failure ts_mil_forward releases out */
}

const struct ts_mil_arch ts_mil_arch_transmil = {
    .version = TS_MIL_ARCH_VERSION,
    .name = "transmil",
    .check = transmil_check,
    .build = transmil_build,
    .forward = transmil_forward,
    .free_impl = transmil_free,
    .attention_heads = NULL,
};
