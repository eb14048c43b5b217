/* mil.c — the MIL model interface (ts_mil.h): the architecture table, options, checks of every
 * bag, the loss, state loading, and the pieces the architectures share (seeded linear layers,
 * CLAM's gated-attention trunk).
 *
 * Design: a model is its ts_nn_state (names = the PyTorch module's state_dict keys) plus an
 * architecture's forward function over borrowed handles into that state (llama.cpp's model
 * structs; tch-rs VarStore paths). The loss lives here, not in the architectures, except CLAM's
 * instance loss, which needs the attention ranking the forward pass computes (as in CLAM).
 */
#include "ts_mil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_util.h"

/* The architectures: a declaration and a table line each (see ts_mil.h). */
extern const struct ts_mil_arch ts_mil_arch_abmil;
extern const struct ts_mil_arch ts_mil_arch_clam_sb;
extern const struct ts_mil_arch ts_mil_arch_clam_mb;
extern const struct ts_mil_arch ts_mil_arch_transmil;

static const struct ts_mil_arch *const ARCHS[] = {
    &ts_mil_arch_abmil,
    &ts_mil_arch_clam_sb,
    &ts_mil_arch_clam_mb,
    &ts_mil_arch_transmil,
    NULL,
};

struct ts_mil {
  const struct ts_mil_arch *arch;
  ts_mil_opts opts;
  ts_nn_state *state;
  const ts_tensor **params; /* borrowed from state */
  int n_params, cap_params;
  void *impl;
};

void ts_mil_opts_default(ts_mil_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->in_dim = 1024;
  o->n_classes = 2;
  o->hidden = 512;
  o->attn_dim = 256;
  o->dropout = 0.25;
  o->seed = 1;
  o->k_sample = 8;
  o->bag_weight = 0.7;
  o->subtyping = false;
  o->dtype = TS_NN_F32;
}

void ts_mil_out_free(ts_mil_out *o) {
  if (!o) return;
  ts_tensor_free(&o->logits);
  ts_tensor_free(&o->a_raw);
  ts_tensor_free(&o->embedding);
  ts_tensor_free(&o->inst_loss);
}

/* Take ownership of *t: make it trainable, add it to the state and the parameter list. */
static int add_param(ts_mil *m, const char *name, ts_tensor **t, ts_tensor **borrowed) {
  return ts__nn_add_trainable(m->state, &m->params, &m->n_params, &m->cap_params, name, t, borrowed, "ts_mil");
}

/* U(-bound, bound) from the entry's own generator. */
static int uniform(ts_mil *m, const int64_t *shape, int ndim, double bound, ts_tensor **out) {
  ts_tensor *u = NULL, *s = NULL;
  int rc = 0;
  uint64_t seed = ts__nn_mix_seed(m->opts.seed, (uint64_t)ts_nn_state_count(m->state));
  TS_TRY(ts_tensor_rand(shape, ndim, m->opts.dtype, seed, &u));
  TS_TRY(ts_nn_mul_scalar(u, 2.0 * bound, &s));
  TS_TRY(ts_nn_add_scalar(s, -bound, out));
out:
  ts_tensor_free(&u);
  ts_tensor_free(&s);
  return rc;
}

int ts__mil_linear_new(ts_mil *m, const char *name, int64_t in, int64_t out_f, ts__mil_linear *l) {
  char full[256];
  int64_t ws[2] = {out_f, in};
  ts_tensor *t = NULL;
  /* nn.Linear.reset_parameters: kaiming_uniform(a=sqrt 5) = U(±1/sqrt(in)); bias U(±1/sqrt(in)). */
  double bound = 1.0 / sqrt((double)in);
  TS_CALL(uniform(m, ws, 2, bound, &t));
  snprintf(full, sizeof full, "%s.weight", name);
  TS_CALL(add_param(m, full, &t, &l->w));
  TS_CALL(uniform(m, &out_f, 1, bound, &t));
  snprintf(full, sizeof full, "%s.bias", name);
  return add_param(m, full, &t, &l->b);
}

int ts__mil_param_new(ts_mil *m, const char *name, const int64_t *shape, int ndim, double std,
                      ts_tensor **borrowed_out) {
  ts_tensor *r = NULL, *t = NULL;
  int rc = 0;
  if (std == 0) {
    TS_TRY(ts_tensor_zeros(shape, ndim, m->opts.dtype, &t));
  } else {
    uint64_t seed = ts__nn_mix_seed(m->opts.seed, (uint64_t)ts_nn_state_count(m->state));
    TS_TRY(ts_tensor_randn(shape, ndim, m->opts.dtype, seed, &r));
    TS_TRY(ts_nn_mul_scalar(r, std, &t));
  }
  TS_TRY(add_param(m, name, &t, borrowed_out));
out:
  ts_tensor_free(&r);
  ts_tensor_free(&t);
  return rc;
}

int ts__mil_linear_fwd(const ts__mil_linear *l, const ts_tensor *x, ts_tensor **out) {
  return ts_nn_linear(x, l->w, l->b, out);
}

int ts__mil_gated_new(ts_mil *m, const ts_mil_opts *o, int64_t heads, ts__mil_gated *g) {
  TS_CALL(ts__mil_linear_new(m, "attention_net.0", o->in_dim, o->hidden, &g->fc));
  TS_CALL(ts__mil_linear_new(m, "attention_net.3.attention_a.0", o->hidden, o->attn_dim, &g->a));
  TS_CALL(ts__mil_linear_new(m, "attention_net.3.attention_b.0", o->hidden, o->attn_dim, &g->b));
  TS_CALL(ts__mil_linear_new(m, "attention_net.3.attention_c", o->attn_dim, heads, &g->c));
  g->p = o->dropout;
  g->p_attn = o->dropout;
  return 0;
}

int ts__mil_gated_forward(const ts__mil_gated *g, const ts_tensor *bag, bool training, ts_tensor **h_out,
                          ts_tensor **a_raw_out) {
  ts_tensor *z = NULL, *r = NULL, *h = NULL, *za = NULL, *ta = NULL, *da = NULL, *zb = NULL, *sb = NULL,
            *db = NULL, *ab = NULL, *a = NULL;
  int rc = 0;
  *h_out = *a_raw_out = NULL;
  TS_TRY(ts__mil_linear_fwd(&g->fc, bag, &z));
  TS_TRY(ts_nn_relu(z, &r));
  TS_TRY(ts_nn_dropout(r, g->p, training, &h));
  TS_TRY(ts__mil_linear_fwd(&g->a, h, &za));
  TS_TRY(ts_nn_tanh(za, &ta));
  TS_TRY(ts_nn_dropout(ta, g->p_attn, training, &da));
  TS_TRY(ts__mil_linear_fwd(&g->b, h, &zb));
  TS_TRY(ts_nn_sigmoid(zb, &sb));
  TS_TRY(ts_nn_dropout(sb, g->p_attn, training, &db));
  TS_TRY(ts_nn_mul(da, db, &ab));
  TS_TRY(ts__mil_linear_fwd(&g->c, ab, &a)); /* [N, heads] */
  TS_TRY(ts_tensor_transpose(a, 0, 1, a_raw_out));
  *h_out = h;
  h = NULL;
out : {
  ts_tensor *all[] = {z, r, h, za, ta, da, zb, sb, db, ab, a};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    ts_tensor_free(&all[i]);
}
  if (rc < 0) ts_tensor_free(a_raw_out);
  return rc;
}

/* ---- The model ---------------------------------------------------------------------------------- */

static int check_opts(const ts_mil_opts *o) {
  if (o->in_dim < 1 || o->hidden < 1 || o->attn_dim < 1)
    return ts_error_set(TS_EINVAL, "NN_ARG",
                        "ts_mil_new: in_dim %lld, hidden %lld, attn_dim %lld must be >= 1",
                        (long long)o->in_dim, (long long)o->hidden, (long long)o->attn_dim);
  if (o->n_classes < 1 || o->n_classes > 4096)
    return ts_error_set(TS_EINVAL, "NN_ARG", "ts_mil_new: n_classes %d out of [1, 4096]", o->n_classes);
  if (!(o->dropout >= 0 && o->dropout < 1))
    return ts_error_set(TS_EINVAL, "NN_ARG", "ts_mil_new: dropout %g out of [0, 1)", o->dropout);
  if (o->k_sample < 1)
    return ts_error_set(TS_EINVAL, "NN_ARG", "ts_mil_new: k_sample %d must be >= 1", o->k_sample);
  if (!(o->bag_weight >= 0 && o->bag_weight <= 1))
    return ts_error_set(TS_EINVAL, "NN_ARG", "ts_mil_new: bag_weight %g out of [0, 1]", o->bag_weight);
  if (o->dtype != TS_NN_F32 && o->dtype != TS_NN_F64)
    return ts_error_set(TS_EINVAL, "NN_DTYPE", "ts_mil_new: dtype %d (float32 or float64)", o->dtype);
  return 0;
}

int ts_mil_new(const char *arch, const ts_mil_opts *o, ts_mil **out) {
  ts_mil_opts def;
  ts_mil *m = NULL;
  int rc = 0;
  if (!out) return ts_error_set(TS_EINVAL, "NN_ARG", "ts_mil_new: out is NULL");
  *out = NULL;
  if (!arch) return ts_error_set(TS_EINVAL, "NN_ARG", "ts_mil_new: arch is NULL");
  if (!o) {
    ts_mil_opts_default(&def);
    o = &def;
  }
  const struct ts_mil_arch *a = NULL;
  char known[512] = "";
  for (int i = 0; ARCHS[i]; i++) {
    if (strcmp(ARCHS[i]->name, arch) == 0) a = ARCHS[i];
    size_t len = strlen(known);
    snprintf(known + len, sizeof known - len, "%s%s", i ? ", " : "", ARCHS[i]->name);
  }
  if (!a) return ts_error_set(TS_ECONFIG, "MIL_UNKNOWN", "unknown MIL model '%s' (%s)", arch, known);
  if (a->version != TS_MIL_ARCH_VERSION || !a->build || !a->forward)
    return ts_error_set(TS_EINTERNAL, "NN_ERROR", "MIL model '%s': bad table entry (version %d)", arch,
                        a->version);
  TS_CALL(check_opts(o));
  if (a->check) TS_CALL(a->check(o));
  m = calloc(1, sizeof *m);
  if (!m) return ts_error_set(TS_ENOMEM, "NN_OOM", "ts_mil_new: out of memory");
  m->arch = a;
  m->opts = *o;
  TS_TRY(ts_nn_state_new(&m->state));
  TS_TRY(a->build(m, &m->opts, &m->impl));
  *out = m;
  m = NULL;
out:
  ts_mil_free(&m);
  return rc;
}

void ts_mil_free(ts_mil **m) {
  if (!m || !*m) return;
  if ((*m)->impl && (*m)->arch->free_impl) (*m)->arch->free_impl((*m)->impl);
  ts_nn_state_free(&(*m)->state);
  free((*m)->params);
  free(*m);
  *m = NULL;
}

static const char *dtype_name(int dt) {
  return dt == TS_NN_F32   ? "float32"
         : dt == TS_NN_F64 ? "float64"
         : dt == TS_NN_F16 ? "float16"
                           : "non-float";
}

int ts_mil_forward(ts_mil *m, const ts_tensor *bag, bool training, const int64_t *label, ts_mil_out *out) {
  int rc = 0;
  if (!out) return ts_error_set(TS_EINVAL, "NN_ARG", "ts_mil_forward: out is NULL");
  ts_mil_out_free(out);
  if (!m || !bag) return ts_error_set(TS_EINVAL, "NN_ARG", "ts_mil_forward: NULL model or bag");
  const char *name = m->arch->name;
  int64_t s[TS_NN_MAX_DIMS];
  int nd = ts_tensor_shape(bag, s, TS_NN_MAX_DIMS);
  if (nd != 2)
    return ts_error_set(TS_EINVAL, "NN_SHAPE", "MIL model '%s': a bag is [N, D]; got a tensor of rank %d",
                        name, nd);
  if (s[1] != m->opts.in_dim)
    return ts_error_set(TS_EINVAL, "NN_SHAPE",
                        "MIL model '%s': bag has tiles of width %lld; the model was built for width %lld "
                        "(in_dim)",
                        name, (long long)s[1], (long long)m->opts.in_dim);
  if (s[0] < 1) return ts_error_set(TS_EINVAL, "NN_SHAPE", "MIL model '%s': empty bag (0 tiles)", name);
  if (ts_tensor_dtype(bag) != m->opts.dtype)
    return ts_error_set(TS_EINVAL, "NN_DTYPE", "MIL model '%s': bag is %s, the model %s", name,
                        dtype_name(ts_tensor_dtype(bag)), dtype_name(m->opts.dtype));
  if (label && (m->opts.n_classes < 2 || *label < 0 || *label >= m->opts.n_classes))
    return ts_error_set(TS_EINVAL, "NN_ARG", "MIL model '%s': label %lld outside 0..%d", name,
                        (long long)*label, m->opts.n_classes - 1);
  TS_TRY(m->arch->forward(m, m->impl, bag, training, label, out));
out:
  if (rc < 0) ts_mil_out_free(out);
  return rc;
}

int ts_mil_loss(const ts_mil *m, const ts_mil_out *r, double target, ts_tensor **loss_out) {
  ts_tensor *t = NULL, *ce = NULL, *a = NULL, *b = NULL;
  int rc = 0;
  if (!loss_out) return ts_error_set(TS_EINVAL, "NN_ARG", "ts_mil_loss: loss_out is NULL");
  *loss_out = NULL;
  if (!m || !r || !r->logits) return ts_error_set(TS_EINVAL, "NN_ARG", "ts_mil_loss: NULL model or result");
  if (m->opts.n_classes == 1) {
    int64_t one[2] = {1, 1};
    TS_TRY(ts_tensor_full(one, 2, ts_tensor_dtype(r->logits), target, &t));
    TS_TRY(ts_nn_mse_loss(r->logits, t, loss_out));
    goto out;
  }
  if (!(target >= 0 && target < m->opts.n_classes && target == floor(target)))
    TS_FAIL(TS_EINVAL, "NN_ARG", "MIL model '%s': class %g is not an integer in 0..%d", m->arch->name, target,
            m->opts.n_classes - 1);
  int64_t y = (int64_t)target, one = 1;
  TS_TRY(ts_tensor_from_data(&y, TS_NN_I64, &one, 1, &t));
  if (!r->inst_loss) {
    TS_TRY(ts_nn_cross_entropy(r->logits, t, loss_out));
    goto out;
  }
  TS_TRY(ts_nn_cross_entropy(r->logits, t, &ce));
  TS_TRY(ts_nn_mul_scalar(ce, m->opts.bag_weight, &a));
  TS_TRY(ts_nn_mul_scalar(r->inst_loss, 1.0 - m->opts.bag_weight, &b));
  TS_TRY(ts_nn_add(a, b, loss_out));
out:
  ts_tensor_free(&t);
  ts_tensor_free(&ce);
  ts_tensor_free(&a);
  ts_tensor_free(&b);
  return rc;
}

int ts_mil_params(const ts_mil *m, const ts_tensor *const **params_out, int *n_out) {
  if (!m || !params_out || !n_out) return ts_error_set(TS_EINVAL, "NN_ARG", "ts_mil_params: NULL argument");
  *params_out = m->params;
  *n_out = m->n_params;
  return 0;
}

ts_nn_state *ts_mil_state(const ts_mil *m) {
  return m ? m->state : NULL;
}

int ts_mil_load_state(ts_mil *m, const ts_nn_state *src) {
  if (!m || !src) return ts_error_set(TS_EINVAL, "NN_ARG", "ts_mil_load_state: NULL argument");
  const char *arch = m->arch->name;
  int n = ts_nn_state_count(m->state);
  /* Check everything first: a failed load changes nothing. */
  for (int i = 0; i < n; i++) {
    const char *name = ts_nn_state_name(m->state, i);
    const ts_tensor *d = ts_nn_state_tensor(m->state, i), *s = ts_nn_state_find(src, name);
    if (!s)
      return ts_error_set(TS_EINPUT, "NN_CHECKPOINT", "MIL model '%s': '%s' missing from the state", arch,
                          name);
    int64_t ds[TS_NN_MAX_DIMS], ss[TS_NN_MAX_DIMS];
    int dn = ts_tensor_shape(d, ds, TS_NN_MAX_DIMS), sn = ts_tensor_shape(s, ss, TS_NN_MAX_DIMS);
    bool same = dn == sn;
    for (int k = 0; same && k < dn; k++)
      same = ds[k] == ss[k];
    if (!same) {
      char a[128] = "", b[128] = "";
      for (int k = 0; k < dn && k < 8; k++)
        snprintf(a + strlen(a), sizeof a - strlen(a), "%s%lld", k ? ", " : "", (long long)ds[k]);
      for (int k = 0; k < sn && k < 8; k++)
        snprintf(b + strlen(b), sizeof b - strlen(b), "%s%lld", k ? ", " : "", (long long)ss[k]);
      return ts_error_set(TS_EINPUT, "NN_CHECKPOINT",
                          "MIL model '%s': '%s' is [%s] in the state, the model's [%s]", arch, name, b, a);
    }
  }
  for (int i = 0; i < ts_nn_state_count(src); i++) {
    const char *name = ts_nn_state_name(src, i);
    if (!ts_nn_state_find(m->state, name))
      return ts_error_set(TS_EINPUT, "NN_CHECKPOINT",
                          "MIL model '%s': the state has '%s', which the model lacks", arch, name);
  }
  for (int i = 0; i < n; i++)
    TS_CALL(ts_tensor_copy_(ts_nn_state_tensor(m->state, i),
                            ts_nn_state_find(src, ts_nn_state_name(m->state, i))));
  return 0;
}

const char *ts_mil_arch(const ts_mil *m) {
  return m ? m->arch->name : "";
}

const ts_mil_opts *ts_mil_get_opts(const ts_mil *m) {
  return m ? &m->opts : NULL;
}

int ts_mil_attention_heads(const ts_mil *m) {
  if (!m) return 0;
  return m->arch->attention_heads ? m->arch->attention_heads(&m->opts) : 1;
}
