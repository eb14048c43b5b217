/* survnet.c — the survival-model interface (ts_survnet.h): the architecture table, options, checks
 * of every input, state loading, the pieces the architectures share (seeded linear layers,
 * gated attention pooling, SNN blocks) and the PORPOISE models (amil, snn, mmf_concat,
 * mmf_bilinear) and the linear Cox model. MCAT (coattn) is in survnet_coattn.c.
 *
 * Design: as ts_mil (nn/mil.c): a model is its ts_nn_state (names = the reference module's
 * state_dict keys) plus a forward function over borrowed handles into that state. The loss and
 * the training loop live outside (ts_surv_loss.h, stages/survival.c). Every forward pass keeps
 * its temporaries in a pool freed in one call, so the graph code reads like the PyTorch it
 * mirrors.
 */
#include "ts_survnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_util.h"

/* ---- The model ---------------------------------------------------------------------------------- */

struct sn_arch {
  const char *name;
  bool path, omic; /* inputs it needs */
  int (*build)(ts_survnet *m, const ts_survnet_opts *o, void **impl_out);
  int (*forward)(ts_survnet *m, void *impl, const ts_tensor *bag, const ts_tensor *omic, bool training,
                 ts_survnet_out *out);
  void (*free_impl)(void *impl);
};

struct ts_survnet {
  const struct sn_arch *arch;
  ts_survnet_opts opts;
  ts_nn_state *state;
  const ts_tensor **params;
  int n_params, cap_params;
  void *impl;
};

double ts__sn_dropout(const ts_survnet *m) {
  return m->opts.dropout;
}

int ts__sn_dtype(const ts_survnet *m) {
  return m->opts.dtype;
}

/* ---- Temporaries -------------------------------------------------------------------------------- */

ts_tensor **ts__sn_tmp(ts__sn_pool *p) {
  if (p->n == p->cap) {
    int cap = p->cap ? 2 * p->cap : 64;
    ts_tensor **t = realloc(p->t, (size_t)cap * sizeof *t);
    if (!t) return NULL;
    p->t = t;
    p->cap = cap;
  }
  p->t[p->n] = NULL;
  return &p->t[p->n++];
}

void ts__sn_pool_free(ts__sn_pool *p) {
  for (int i = 0; i < p->n; i++)
    ts_tensor_free(&p->t[i]);
  free(p->t);
  p->t = NULL;
  p->n = p->cap = 0;
}

/* ---- Weights ------------------------------------------------------------------------------------ */

/* Take ownership of *t: trainable, into the state and the parameter list. */
static int add_param(ts_survnet *m, const char *name, ts_tensor **t, ts_tensor **borrowed) {
  return ts__nn_add_trainable(m->state, &m->params, &m->n_params, &m->cap_params, name, t, borrowed, "ts_survnet");
}

static uint64_t next_seed(const ts_survnet *m) {
  return ts__nn_mix_seed(m->opts.seed, (uint64_t)ts_nn_state_count(m->state));
}

int ts__sn_param_new(ts_survnet *m, const char *name, const int64_t *shape, int ndim, double value,
                     double bound, ts_tensor **borrowed_out) {
  ts_tensor *u = NULL, *s = NULL, *t = NULL;
  int rc = 0;
  if (bound > 0) {
    TS_TRY(ts_tensor_rand(shape, ndim, m->opts.dtype, next_seed(m), &u));
    TS_TRY(ts_nn_mul_scalar(u, 2.0 * bound, &s));
    TS_TRY(ts_nn_add_scalar(s, -bound, &t));
  } else {
    TS_TRY(ts_tensor_full(shape, ndim, m->opts.dtype, value, &t));
  }
  TS_TRY(add_param(m, name, &t, borrowed_out));
out:
  ts_tensor_free(&u);
  ts_tensor_free(&s);
  ts_tensor_free(&t);
  return rc;
}

int ts__sn_linear_new(ts_survnet *m, const char *name, int64_t in, int64_t out_f, bool bias, int init,
                      ts__sn_linear *l) {
  char full[256];
  int64_t ws[2] = {out_f, in};
  ts_tensor *r = NULL, *t = NULL;
  int rc = 0;
  double bound = 1.0 / sqrt((double)in);
  l->w = l->b = NULL;
  snprintf(full, sizeof full, "%s.weight", name);
  if (init == TS__SN_INIT_MAXW) {
    /* PORPOISE init_max_weights: weight.normal_(0, 1/sqrt(in)), bias.zero_() */
    TS_TRY(ts_tensor_randn(ws, 2, m->opts.dtype, next_seed(m), &r));
    TS_TRY(ts_nn_mul_scalar(r, bound, &t));
    TS_TRY(add_param(m, full, &t, &l->w));
    if (bias) {
      snprintf(full, sizeof full, "%s.bias", name);
      TS_TRY(ts__sn_param_new(m, full, &out_f, 1, 0.0, 0.0, &l->b));
    }
  } else {
    /* nn.Linear.reset_parameters: kaiming_uniform(a = sqrt 5) = U(±1/sqrt(in)); bias the same */
    TS_TRY(ts__sn_param_new(m, full, ws, 2, 0.0, bound, &l->w));
    if (bias) {
      snprintf(full, sizeof full, "%s.bias", name);
      TS_TRY(ts__sn_param_new(m, full, &out_f, 1, 0.0, bound, &l->b));
    }
  }
out:
  ts_tensor_free(&r);
  ts_tensor_free(&t);
  return rc;
}

int ts__sn_linear_fwd(const ts__sn_linear *l, const ts_tensor *x, ts_tensor **out) {
  return ts_nn_linear(x, l->w, l->b, out);
}

int ts__sn_snn_fwd(const ts__sn_linear *l, const ts_tensor *x, double p, bool training, ts_tensor **out) {
  ts_tensor *z = NULL, *e = NULL;
  int rc = 0;
  TS_TRY(ts__sn_linear_fwd(l, x, &z));
  TS_TRY(ts_nn_elu(z, 1.0, &e));
  TS_TRY(ts_nn_alpha_dropout(e, p, training, out));
out:
  ts_tensor_free(&z);
  ts_tensor_free(&e);
  return rc;
}

int ts__sn_relu_drop_fwd(const ts__sn_linear *l, const ts_tensor *x, double p, bool training,
                         ts_tensor **out) {
  ts_tensor *z = NULL, *r = NULL;
  int rc = 0;
  TS_TRY(ts__sn_linear_fwd(l, x, &z));
  TS_TRY(ts_nn_relu(z, &r));
  TS_TRY(ts_nn_dropout_fast(r, p, training, out));
out:
  ts_tensor_free(&z);
  ts_tensor_free(&r);
  return rc;
}

static int relu_linear(const ts__sn_linear *l, const ts_tensor *x, ts_tensor **out) {
  ts_tensor *z = NULL;
  int rc = 0;
  TS_TRY(ts__sn_linear_fwd(l, x, &z));
  TS_TRY(ts_nn_relu(z, out));
out:
  ts_tensor_free(&z);
  return rc;
}

int ts__sn_gated_new(ts_survnet *m, const char *prefix, int64_t in, int64_t hid, ts__sn_gated *g) {
  char n[256];
  snprintf(n, sizeof n, "%s.attention_a.0", prefix);
  TS_CALL(ts__sn_linear_new(m, n, in, hid, true, TS__SN_INIT_TORCH, &g->a));
  snprintf(n, sizeof n, "%s.attention_b.0", prefix);
  TS_CALL(ts__sn_linear_new(m, n, in, hid, true, TS__SN_INIT_TORCH, &g->b));
  snprintf(n, sizeof n, "%s.attention_c", prefix);
  return ts__sn_linear_new(m, n, hid, 1, true, TS__SN_INIT_TORCH, &g->c);
}

int ts__sn_gated_pool(const ts__sn_gated *g, const ts_tensor *x, double p, bool training,
                      ts_tensor **pooled_out, ts_tensor **araw_out) {
  ts__sn_pool P = {0};
  int rc = 0;
  ts_tensor **za = ts__sn_tmp(&P), **ta = ts__sn_tmp(&P), **da = ts__sn_tmp(&P), **zb = ts__sn_tmp(&P),
            **sb = ts__sn_tmp(&P), **db = ts__sn_tmp(&P), **ab = ts__sn_tmp(&P), **a = ts__sn_tmp(&P),
            **at = ts__sn_tmp(&P), **sm = ts__sn_tmp(&P);
  int64_t flat = -1;
  *pooled_out = NULL;
  if (araw_out) *araw_out = NULL;
  TS_TRY(ts__sn_linear_fwd(&g->a, x, za));
  TS_TRY(ts_nn_tanh(*za, ta));
  TS_TRY(ts_nn_dropout_fast(*ta, p, training, da));
  TS_TRY(ts__sn_linear_fwd(&g->b, x, zb));
  TS_TRY(ts_nn_sigmoid(*zb, sb));
  TS_TRY(ts_nn_dropout_fast(*sb, p, training, db));
  TS_TRY(ts_nn_mul(*da, *db, ab));
  TS_TRY(ts__sn_linear_fwd(&g->c, *ab, a));  /* [N, 1] */
  TS_TRY(ts_tensor_transpose(*a, 0, 1, at)); /* [1, N] */
  TS_TRY(ts_nn_softmax(*at, 1, sm));
  TS_TRY(ts_nn_matmul(*sm, x, pooled_out)); /* [1, in] */
  if (araw_out) TS_TRY(ts_tensor_reshape(*a, &flat, 1, araw_out));
out:
  if (rc < 0) {
    ts_tensor_free(pooled_out);
    if (araw_out) ts_tensor_free(araw_out);
  }
  ts__sn_pool_free(&P);
  return rc;
}

/* ---- amil: MIL_Attention_FC_surv(fusion=None) --------------------------------------------------- */

struct amil {
  ts__sn_linear fc, rho, cls;
  ts__sn_gated g;
};

static int amil_build(ts_survnet *m, const ts_survnet_opts *o, void **impl_out) {
  struct amil *a = calloc(1, sizeof *a);
  if (!a) return ts_error_set(TS_ENOMEM, "NN_OOM", "amil: out of memory");
  *impl_out = a;
  TS_CALL(ts__sn_linear_new(m, "attention_net.0", o->path_dim, 512, true, TS__SN_INIT_TORCH, &a->fc));
  TS_CALL(ts__sn_gated_new(m, "attention_net.3", 512, 256, &a->g));
  TS_CALL(ts__sn_linear_new(m, "rho.0", 512, 256, true, TS__SN_INIT_TORCH, &a->rho));
  return ts__sn_linear_new(m, "classifier", 256, o->n_out, true, TS__SN_INIT_TORCH, &a->cls);
}

static int amil_forward(ts_survnet *m, void *impl, const ts_tensor *bag, const ts_tensor *omic, bool training,
                        ts_survnet_out *out) {
  (void)omic;
  const struct amil *a = impl;
  double p = m->opts.dropout;
  ts__sn_pool P = {0};
  int rc = 0;
  ts_tensor **h = ts__sn_tmp(&P), **pooled = ts__sn_tmp(&P), **r = ts__sn_tmp(&P);
  TS_TRY(ts__sn_relu_drop_fwd(&a->fc, bag, p, training, h)); /* [N, 512] */
  TS_TRY(ts__sn_gated_pool(&a->g, *h, p, training, pooled, &out->a_raw));
  TS_TRY(ts__sn_relu_drop_fwd(&a->rho, *pooled, p, training, r));
  TS_TRY(ts__sn_linear_fwd(&a->cls, *r, &out->logits));
out:
  ts__sn_pool_free(&P);
  return rc;
}

/* ---- snn: model_genomic.SNN('small') ------------------------------------------------------------ */

enum { SNN_BLOCKS = 4 };

struct snn {
  ts__sn_linear blk[SNN_BLOCKS], cls;
};

static int snn_build(ts_survnet *m, const ts_survnet_opts *o, void **impl_out) {
  struct snn *s = calloc(1, sizeof *s);
  if (!s) return ts_error_set(TS_ENOMEM, "NN_OOM", "snn: out of memory");
  *impl_out = s;
  for (int b = 0; b < SNN_BLOCKS; b++) {
    char n[64];
    snprintf(n, sizeof n, "fc_omic.%d.0", b);
    TS_CALL(ts__sn_linear_new(m, n, b ? 256 : o->omic_dim, 256, true, TS__SN_INIT_MAXW, &s->blk[b]));
  }
  return ts__sn_linear_new(m, "classifier", 256, o->n_out, true, TS__SN_INIT_MAXW, &s->cls);
}

static int snn_forward(ts_survnet *m, void *impl, const ts_tensor *bag, const ts_tensor *omic, bool training,
                       ts_survnet_out *out) {
  (void)bag;
  const struct snn *s = impl;
  ts__sn_pool P = {0};
  int rc = 0;
  const ts_tensor *x = omic;
  for (int b = 0; b < SNN_BLOCKS; b++) {
    ts_tensor **y = ts__sn_tmp(&P);
    TS_TRY(ts__sn_snn_fwd(&s->blk[b], x, m->opts.dropout, training, y));
    x = *y;
  }
  TS_TRY(ts__sn_linear_fwd(&s->cls, x, &out->logits));
out:
  ts__sn_pool_free(&P);
  return rc;
}

/* ---- mmf_concat, mmf_bilinear: PorpoiseMMF ------------------------------------------------------ */

struct mmf {
  bool bilinear;
  double p_in; /* dropinput */
  ts__sn_linear fc, rho, om[2], cls;
  ts__sn_gated g;
  ts__sn_linear mm0, mm2;                       /* concat */
  ts__sn_linear h1, z1, o1, h2, z2, o2, e1, e2; /* BilinearFusion */
};

static int mmf_build_common(ts_survnet *m, const ts_survnet_opts *o, bool bilinear, void **impl_out) {
  struct mmf *f = calloc(1, sizeof *f);
  if (!f) return ts_error_set(TS_ENOMEM, "NN_OOM", "mmf: out of memory");
  *impl_out = f;
  f->bilinear = bilinear;
  f->p_in = o->dropout > 0 ? 0.10 : 0.0;
  const int T = TS__SN_INIT_TORCH;
  TS_CALL(ts__sn_linear_new(m, "attention_net.1", o->path_dim, 512, true, T, &f->fc));
  TS_CALL(ts__sn_gated_new(m, "attention_net.4", 512, 256, &f->g));
  TS_CALL(ts__sn_linear_new(m, "rho.0", 512, 256, true, T, &f->rho));
  TS_CALL(ts__sn_linear_new(m, "fc_omic.0.0", o->omic_dim, 256, true, T, &f->om[0]));
  TS_CALL(ts__sn_linear_new(m, "fc_omic.1.0", 256, 256, true, T, &f->om[1]));
  if (!bilinear) {
    TS_CALL(ts__sn_linear_new(m, "mm.0", 512, 256, true, T, &f->mm0));
    TS_CALL(ts__sn_linear_new(m, "mm.2", 256, 256, true, T, &f->mm2));
  } else {
    /* BilinearFusion(dim1 = dim2 = 256, scale_dim 8, skip = 1, mmhid 256): dim 32 per modality */
    TS_CALL(ts__sn_linear_new(m, "mm.linear_h1.0", 256, 32, true, T, &f->h1));
    TS_CALL(ts__sn_linear_new(m, "mm.linear_z1.0", 512, 32, true, T, &f->z1));
    TS_CALL(ts__sn_linear_new(m, "mm.linear_o1.0", 32, 32, true, T, &f->o1));
    TS_CALL(ts__sn_linear_new(m, "mm.linear_h2.0", 256, 32, true, T, &f->h2));
    TS_CALL(ts__sn_linear_new(m, "mm.linear_z2.0", 512, 32, true, T, &f->z2));
    TS_CALL(ts__sn_linear_new(m, "mm.linear_o2.0", 32, 32, true, T, &f->o2));
    TS_CALL(ts__sn_linear_new(m, "mm.encoder1.0", 33 * 33, 256, true, T, &f->e1));
    TS_CALL(ts__sn_linear_new(m, "mm.encoder2.0", 256 + 512, 256, true, T, &f->e2));
  }
  return ts__sn_linear_new(m, "classifier_mm", 256, o->n_out, true, T, &f->cls);
}

static int mmf_concat_build(ts_survnet *m, const ts_survnet_opts *o, void **impl_out) {
  return mmf_build_common(m, o, false, impl_out);
}

static int mmf_bilinear_build(ts_survnet *m, const ts_survnet_opts *o, void **impl_out) {
  return mmf_build_common(m, o, true, impl_out);
}

/* One gated unit of BilinearFusion: o = dropout(relu(linear_o(sigmoid(linear_z([v1, v2])) ⊙
 * relu(linear_h(v))))), with a trailing 1 appended: [1, 33]. */
static int gated_unit(const ts__sn_linear *h, const ts__sn_linear *z, const ts__sn_linear *o,
                      const ts_tensor *v, const ts_tensor *v12, const ts_tensor *one, double p, bool training,
                      ts_tensor **out) {
  ts__sn_pool P = {0};
  int rc = 0;
  ts_tensor **hh = ts__sn_tmp(&P), **zz = ts__sn_tmp(&P), **sg = ts__sn_tmp(&P), **gg = ts__sn_tmp(&P),
            **oo = ts__sn_tmp(&P);
  TS_TRY(relu_linear(h, v, hh));
  TS_TRY(ts__sn_linear_fwd(z, v12, zz));
  TS_TRY(ts_nn_sigmoid(*zz, sg));
  TS_TRY(ts_nn_mul(*sg, *hh, gg));
  TS_TRY(ts__sn_relu_drop_fwd(o, *gg, p, training, oo));
  const ts_tensor *parts[2] = {*oo, one};
  TS_TRY(ts_nn_cat(parts, 2, 1, out));
out:
  ts__sn_pool_free(&P);
  return rc;
}

static int bilinear_fusion(const struct mmf *f, const ts_tensor *v1, const ts_tensor *v2, double p,
                           bool training, ts_tensor **out) {
  ts__sn_pool P = {0};
  int rc = 0;
  ts_tensor **v12 = ts__sn_tmp(&P), **one0 = ts__sn_tmp(&P), **one = ts__sn_tmp(&P), **o1 = ts__sn_tmp(&P),
            **o2 = ts__sn_tmp(&P), **o1t = ts__sn_tmp(&P), **outer = ts__sn_tmp(&P), **flat = ts__sn_tmp(&P),
            **d = ts__sn_tmp(&P), **e1 = ts__sn_tmp(&P), **sk = ts__sn_tmp(&P);
  const ts_tensor *cat12[2] = {v1, v2};
  int64_t s11[2] = {1, 1}, sflat[2] = {1, 33 * 33};
  TS_TRY(ts_nn_cat(cat12, 2, 1, v12));
  TS_TRY(ts_tensor_ones(s11, 2, ts_tensor_dtype(v1), one0));
  if (ts_tensor_device(v1) != TS_NN_CPU) {
    TS_TRY(ts_tensor_to_device(*one0, ts_tensor_device(v1), one));
  } else {
    TS_TRY(ts_tensor_alias(*one0, one));
  }
  TS_TRY(gated_unit(&f->h1, &f->z1, &f->o1, v1, *v12, *one, p, training, o1)); /* [1, 33] */
  TS_TRY(gated_unit(&f->h2, &f->z2, &f->o2, v2, *v12, *one, p, training, o2));
  TS_TRY(ts_tensor_transpose(*o1, 0, 1, o1t));       /* [33, 1] */
  TS_TRY(ts_nn_matmul(*o1t, *o2, outer));            /* [33, 33] */
  TS_TRY(ts_tensor_reshape(*outer, sflat, 2, flat)); /* o1-major */
  TS_TRY(ts_nn_dropout_fast(*flat, p, training, d)); /* post_fusion_dropout */
  TS_TRY(relu_linear(&f->e1, *d, e1));
  const ts_tensor *skip[3] = {*e1, v1, v2};
  TS_TRY(ts_nn_cat(skip, 3, 1, sk));
  TS_TRY(relu_linear(&f->e2, *sk, out));
out:
  ts__sn_pool_free(&P);
  return rc;
}

static int mmf_forward(ts_survnet *m, void *impl, const ts_tensor *bag, const ts_tensor *omic, bool training,
                       ts_survnet_out *out) {
  const struct mmf *f = impl;
  double p = m->opts.dropout;
  ts__sn_pool P = {0};
  int rc = 0;
  ts_tensor **x = ts__sn_tmp(&P), **h = ts__sn_tmp(&P), **pooled = ts__sn_tmp(&P), **hp = ts__sn_tmp(&P),
            **s1 = ts__sn_tmp(&P), **ho = ts__sn_tmp(&P), **c = ts__sn_tmp(&P), **m0 = ts__sn_tmp(&P),
            **hm = ts__sn_tmp(&P);
  TS_TRY(ts_nn_dropout_fast(bag, f->p_in, training, x));
  TS_TRY(ts__sn_relu_drop_fwd(&f->fc, *x, p, training, h));
  TS_TRY(ts__sn_gated_pool(&f->g, *h, p, training, pooled, &out->a_raw));
  TS_TRY(ts__sn_relu_drop_fwd(&f->rho, *pooled, p, training, hp)); /* [1, 256] */
  TS_TRY(ts__sn_snn_fwd(&f->om[0], omic, p, training, s1));
  TS_TRY(ts__sn_snn_fwd(&f->om[1], *s1, p, training, ho)); /* [1, 256] */
  if (f->bilinear) {
    TS_TRY(bilinear_fusion(f, *hp, *ho, p, training, hm));
  } else {
    const ts_tensor *parts[2] = {*hp, *ho};
    TS_TRY(ts_nn_cat(parts, 2, 1, c));
    TS_TRY(relu_linear(&f->mm0, *c, m0));
    TS_TRY(relu_linear(&f->mm2, *m0, hm));
  }
  TS_TRY(ts__sn_linear_fwd(&f->cls, *hm, &out->logits));
out:
  ts__sn_pool_free(&P);
  return rc;
}

/* ---- linear: the Cox model ---------------------------------------------------------------------- */

static int linear_build(ts_survnet *m, const ts_survnet_opts *o, void **impl_out) {
  ts__sn_linear *l = calloc(1, sizeof *l);
  if (!l) return ts_error_set(TS_ENOMEM, "NN_OOM", "linear: out of memory");
  *impl_out = l;
  return ts__sn_linear_new(m, "classifier", o->omic_dim, o->n_out, false, TS__SN_INIT_TORCH, l);
}

static int linear_forward(ts_survnet *m, void *impl, const ts_tensor *bag, const ts_tensor *omic,
                          bool training, ts_survnet_out *out) {
  (void)m, (void)bag, (void)training;
  return ts__sn_linear_fwd(impl, omic, &out->logits);
}

/* ---- The table ---------------------------------------------------------------------------------- */

static const struct sn_arch ARCHS[] = {
    {"amil", true, false, amil_build, amil_forward, free},
    {"snn", false, true, snn_build, snn_forward, free},
    {"mmf_concat", true, true, mmf_concat_build, mmf_forward, free},
    {"mmf_bilinear", true, true, mmf_bilinear_build, mmf_forward, free},
    {"coattn", true, true, ts__sn_coattn_build, ts__sn_coattn_forward, ts__sn_coattn_free},
    {"linear", false, true, linear_build, linear_forward, free},
    {NULL, false, false, NULL, NULL, NULL},
};

static const struct sn_arch *find_arch(const char *name) {
  for (int i = 0; name && ARCHS[i].name; i++)
    if (strcmp(ARCHS[i].name, name) == 0) return &ARCHS[i];
  return NULL;
}

bool ts_survnet_uses_path(const char *arch) {
  const struct sn_arch *a = find_arch(arch);
  return a && a->path;
}

bool ts_survnet_uses_omic(const char *arch) {
  const struct sn_arch *a = find_arch(arch);
  return a && a->omic;
}

void ts_survnet_opts_default(ts_survnet_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->path_dim = 0;
  o->omic_dim = 0;
  o->n_out = 4;
  o->dropout = 0.25;
  o->seed = 1;
  o->dtype = TS_NN_F32;
  o->omic_groups = 6;
}

static int check_opts(const struct sn_arch *a, const ts_survnet_opts *o) {
  const char *n = a->name;
  if (a->path && o->path_dim < 1)
    return ts_error_set(TS_EINVAL, "NN_ARG", "survival model '%s': path_dim %lld must be >= 1 (tile width)",
                        n, (long long)o->path_dim);
  if (a->omic && o->omic_dim < 1)
    return ts_error_set(TS_EINVAL, "NN_ARG", "survival model '%s': omic_dim %lld must be >= 1", n,
                        (long long)o->omic_dim);
  if (o->n_out < 1 || o->n_out > 4096)
    return ts_error_set(TS_EINVAL, "NN_ARG", "survival model '%s': n_out %d out of [1, 4096]", n, o->n_out);
  if (!(o->dropout >= 0 && o->dropout < 1))
    return ts_error_set(TS_EINVAL, "NN_ARG", "survival model '%s': dropout %g out of [0, 1)", n, o->dropout);
  if (o->dtype != TS_NN_F32 && o->dtype != TS_NN_F64)
    return ts_error_set(TS_EINVAL, "NN_DTYPE", "survival model '%s': dtype %d (float32 or float64)", n,
                        o->dtype);
  if (strcmp(n, "coattn") == 0 && o->omic_groups < 1)
    return ts_error_set(TS_EINVAL, "NN_ARG", "survival model 'coattn': omic_groups %d must be >= 1",
                        o->omic_groups);
  return 0;
}

int ts_survnet_new(const char *arch, const ts_survnet_opts *o, ts_survnet **out) {
  ts_survnet_opts def;
  ts_survnet *m = NULL;
  int rc = 0;
  if (!out) return ts_error_set(TS_EINVAL, "NN_ARG", "ts_survnet_new: out is NULL");
  *out = NULL;
  if (!arch) return ts_error_set(TS_EINVAL, "NN_ARG", "ts_survnet_new: arch is NULL");
  if (!o) {
    ts_survnet_opts_default(&def);
    o = &def;
  }
  const struct sn_arch *a = find_arch(arch);
  if (!a) {
    char known[256] = "";
    for (int i = 0; ARCHS[i].name; i++) {
      size_t len = strlen(known);
      snprintf(known + len, sizeof known - len, "%s%s", i ? ", " : "", ARCHS[i].name);
    }
    return ts_error_set(TS_ECONFIG, "SURVNET_UNKNOWN", "unknown survival model '%s' (%s)", arch, known);
  }
  TS_CALL(check_opts(a, o));
  m = calloc(1, sizeof *m);
  if (!m) return ts_error_set(TS_ENOMEM, "NN_OOM", "ts_survnet_new: out of memory");
  m->arch = a;
  m->opts = *o;
  if (!a->path) m->opts.path_dim = 0;
  if (!a->omic) m->opts.omic_dim = 0;
  if (strcmp(a->name, "coattn") == 0 && m->opts.omic_groups > m->opts.omic_dim)
    m->opts.omic_groups = (int)m->opts.omic_dim;
  TS_TRY(ts_nn_state_new(&m->state));
  TS_TRY(a->build(m, &m->opts, &m->impl));
  *out = m;
  m = NULL;
out:
  ts_survnet_free(&m);
  return rc;
}

void ts_survnet_free(ts_survnet **m) {
  if (!m || !*m) return;
  if ((*m)->impl && (*m)->arch->free_impl) (*m)->arch->free_impl((*m)->impl);
  ts_nn_state_free(&(*m)->state);
  free((*m)->params);
  free(*m);
  *m = NULL;
}

void ts_survnet_out_free(ts_survnet_out *o) {
  if (!o) return;
  ts_tensor_free(&o->logits);
  ts_tensor_free(&o->a_raw);
}

static const char *dtype_name(int dt) {
  return dt == TS_NN_F32   ? "float32"
         : dt == TS_NN_F64 ? "float64"
         : dt == TS_NN_F16 ? "float16"
                           : "non-float";
}

int ts_survnet_forward(ts_survnet *m, const ts_tensor *bag, const ts_tensor *omic, bool training,
                       ts_survnet_out *out) {
  ts_tensor *o2 = NULL;
  int64_t batch = 1;
  int rc = 0;
  if (!out) return ts_error_set(TS_EINVAL, "NN_ARG", "ts_survnet_forward: out is NULL");
  ts_survnet_out_free(out);
  if (!m) return ts_error_set(TS_EINVAL, "NN_ARG", "ts_survnet_forward: model is NULL");
  const char *name = m->arch->name;
  int64_t s[TS_NN_MAX_DIMS];
  if (m->arch->path) {
    if (!bag)
      return ts_error_set(TS_EINVAL, "NN_ARG", "survival model '%s' needs a bag of tile features; got NULL",
                          name);
    int nd = ts_tensor_shape(bag, s, TS_NN_MAX_DIMS);
    if (nd != 2)
      return ts_error_set(TS_EINVAL, "NN_SHAPE",
                          "survival model '%s': a bag is [N, D]; got a tensor of rank %d", name, nd);
    if (s[1] != m->opts.path_dim)
      return ts_error_set(TS_EINVAL, "NN_SHAPE",
                          "survival model '%s': bag has tiles of width %lld; the model was built for width "
                          "%lld (path_dim)",
                          name, (long long)s[1], (long long)m->opts.path_dim);
    if (s[0] < 1)
      return ts_error_set(TS_EINVAL, "NN_SHAPE", "survival model '%s': empty bag (0 tiles)", name);
    if (ts_tensor_dtype(bag) != m->opts.dtype)
      return ts_error_set(TS_EINVAL, "NN_DTYPE", "survival model '%s': bag is %s, the model %s", name,
                          dtype_name(ts_tensor_dtype(bag)), dtype_name(m->opts.dtype));
  }
  if (m->arch->omic) {
    if (!omic)
      return ts_error_set(TS_EINVAL, "NN_ARG", "survival model '%s' needs the omic vector; got NULL", name);
    int nd = ts_tensor_shape(omic, s, TS_NN_MAX_DIMS);
    int64_t width = nd == 1 ? s[0] : nd == 2 ? s[1] : -1, rows = nd == 2 ? s[0] : 1;
    /* archs without a bag take a batch of patients [B, G] (a cohort for the Cox model) */
    bool rows_ok = m->arch->path ? rows == 1 : rows >= 1;
    if (nd < 1 || nd > 2 || !rows_ok || width != m->opts.omic_dim)
      return ts_error_set(
          TS_EINVAL, "NN_SHAPE",
          "survival model '%s': the omic input is %lld x %lld (rank %d); the model was built for "
          "width %lld (omic_dim)%s",
          name, (long long)rows, (long long)width, nd, (long long)m->opts.omic_dim,
          m->arch->path ? ", one patient: [1, G]" : ", [B, G] with B >= 1");
    batch = rows;
    if (ts_tensor_dtype(omic) != m->opts.dtype)
      return ts_error_set(TS_EINVAL, "NN_DTYPE", "survival model '%s': omic vector is %s, the model %s", name,
                          dtype_name(ts_tensor_dtype(omic)), dtype_name(m->opts.dtype));
    int64_t s2[2] = {batch, m->opts.omic_dim};
    TS_TRY(ts_tensor_reshape(omic, s2, 2, &o2));
  }
  TS_TRY(m->arch->forward(m, m->impl, m->arch->path ? bag : NULL, o2, training, out));
out:
  ts_tensor_free(&o2);
  if (rc < 0) ts_survnet_out_free(out);
  return rc;
}

int ts_survnet_params(const ts_survnet *m, const ts_tensor *const **params_out, int *n_out) {
  if (!m || !params_out || !n_out)
    return ts_error_set(TS_EINVAL, "NN_ARG", "ts_survnet_params: NULL argument");
  *params_out = m->params;
  *n_out = m->n_params;
  return 0;
}

ts_nn_state *ts_survnet_state(const ts_survnet *m) {
  return m ? m->state : NULL;
}

static void shape_str(const ts_tensor *t, char *buf, size_t n) {
  int64_t s[TS_NN_MAX_DIMS];
  int nd = ts_tensor_shape(t, s, TS_NN_MAX_DIMS);
  buf[0] = 0;
  for (int k = 0; k < nd && k < TS_NN_MAX_DIMS; k++)
    snprintf(buf + strlen(buf), n - strlen(buf), "%s%lld", k ? ", " : "", (long long)s[k]);
}

int ts_survnet_load_state(ts_survnet *m, const ts_nn_state *src) {
  if (!m || !src) return ts_error_set(TS_EINVAL, "NN_ARG", "ts_survnet_load_state: NULL argument");
  const char *arch = m->arch->name;
  int n = ts_nn_state_count(m->state);
  for (int i = 0; i < n; i++) { /* check everything first: a failed load changes nothing */
    const char *name = ts_nn_state_name(m->state, i);
    const ts_tensor *d = ts_nn_state_tensor(m->state, i), *s = ts_nn_state_find(src, name);
    if (!s)
      return ts_error_set(TS_EINPUT, "NN_CHECKPOINT", "survival model '%s': '%s' missing from the state",
                          arch, name);
    char a[160], b[160];
    shape_str(d, a, sizeof a);
    shape_str(s, b, sizeof b);
    if (strcmp(a, b) != 0)
      return ts_error_set(TS_EINPUT, "NN_CHECKPOINT",
                          "survival model '%s': '%s' is [%s] in the state, the model's [%s]", arch, name, b,
                          a);
  }
  for (int i = 0; i < ts_nn_state_count(src); i++) {
    const char *name = ts_nn_state_name(src, i);
    if (!ts_nn_state_find(m->state, name))
      return ts_error_set(TS_EINPUT, "NN_CHECKPOINT",
                          "survival model '%s': the state has '%s', which the model lacks", arch, name);
  }
  for (int i = 0; i < n; i++)
    TS_CALL(ts_tensor_copy_(ts_nn_state_tensor(m->state, i),
                            ts_nn_state_find(src, ts_nn_state_name(m->state, i))));
  return 0;
}

const char *ts_survnet_arch(const ts_survnet *m) {
  return m ? m->arch->name : "";
}

const ts_survnet_opts *ts_survnet_get_opts(const ts_survnet *m) {
  return m ? &m->opts : NULL;
}

int64_t ts_survnet_param_count(const ts_survnet *m) {
  int64_t n = 0;
  for (int i = 0; m && i < m->n_params; i++)
    n += ts_tensor_numel(m->params[i]);
  return n;
}
