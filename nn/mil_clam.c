/* mil_clam.c — CLAM-SB and CLAM-MB (Lu et al., Nat. Biomed. Eng. 2021; mahmoodlab/CLAM
 * models/model_clam.py), with CLAM's instance-level clustering loss.
 *
 * Trunk (both): attention_net = fc D→L, ReLU, dropout, gated attention L→Dₐ→heads (heads 1 for
 * SB, C for MB). The bag representation is M = softmax_N(A_raw) · h: [1, L] (SB) or [C, L] (MB).
 * SB scores M with one linear L→C; MB scores row c of M with its own linear L→1.
 *
 * Instance loss (CLAM's inst_eval / inst_eval_out; rule for small bags and ties in ts_mil.h):
 * the tiles of highest and lowest attention in the relevant branch are gathered from h (the fc
 * output after dropout, as CLAM's Attn_Net_Gated returns its input) and scored by that class's
 * instance classifier L→2 with cross-entropy. CLAM ranks with torch.topk over the softmaxed
 * scores; tessera ranks the raw scores with a sort (same order; k = min(k_sample, floor(N/2)),
 * which keeps top and bottom disjoint and works for any N >= 1, where CLAM's topk fails for
 * N < k_sample: CLAM#28).
 */
#include "ts_mil.h"

#include <stdio.h>
#include <stdlib.h>

struct clam {
  bool mb;
  int n_classes, k_sample;
  bool subtyping;
  ts__mil_gated g;
  ts__mil_linear *cls;  /* SB: 1 (L→C); MB: C (L→1) */
  ts__mil_linear *inst; /* C instance classifiers L→2 */
};

static void clam_free(void *impl) {
  struct clam *c = impl;
  if (!c) return;
  free(c->cls);
  free(c->inst);
  free(c);
}

static int clam_check(const ts_mil_opts *o) {
  if (o->n_classes < 2)
    return ts_error_set(TS_EINVAL, "NN_ARG",
                        "CLAM: n_classes %d; CLAM classifies (>= 2 classes, no regression)", o->n_classes);
  return 0;
}

static int clam_build(ts_mil *m, const ts_mil_opts *o, bool mb, void **impl_out) {
  char name[64];
  struct clam *c = calloc(1, sizeof *c);
  if (!c) return ts_error_set(TS_ENOMEM, "NN_OOM", "CLAM: out of memory");
  *impl_out = c; /* freed by ts_mil_free, also on failure below */
  c->mb = mb;
  c->n_classes = o->n_classes;
  c->k_sample = o->k_sample;
  c->subtyping = o->subtyping;
  c->cls = calloc(mb ? (size_t)o->n_classes : 1, sizeof *c->cls);
  c->inst = calloc((size_t)o->n_classes, sizeof *c->inst);
  if (!c->cls || !c->inst) return ts_error_set(TS_ENOMEM, "NN_OOM", "CLAM: out of memory");
  TS_CALL(ts__mil_gated_new(m, o, mb ? o->n_classes : 1, &c->g));
  if (mb) {
    for (int i = 0; i < o->n_classes; i++) {
      snprintf(name, sizeof name, "classifiers.%d", i);
      TS_CALL(ts__mil_linear_new(m, name, o->hidden, 1, &c->cls[i]));
    }
  } else {
    TS_CALL(ts__mil_linear_new(m, "classifiers", o->hidden, o->n_classes, &c->cls[0]));
  }
  for (int i = 0; i < o->n_classes; i++) {
    snprintf(name, sizeof name, "instance_classifiers.%d", i);
    TS_CALL(ts__mil_linear_new(m, name, o->hidden, 2, &c->inst[i]));
  }
  return 0;
}

static int clam_sb_build(ts_mil *m, const ts_mil_opts *o, void **impl_out) {
  return clam_build(m, o, false, impl_out);
}
static int clam_mb_build(ts_mil *m, const ts_mil_opts *o, void **impl_out) {
  return clam_build(m, o, true, impl_out);
}

/* Cross-entropy of classifier l over the k top tiles of `scores` [N] (labelled 1 when in_class,
 * else 0) and, when in_class, the k bottom tiles (labelled 0). */
static int inst_term(const ts__mil_linear *l, const ts_tensor *scores, const ts_tensor *h, int64_t k,
                     bool in_class, ts_tensor **loss_out) {
  ts_tensor *desc = NULL, *asc = NULL, *top = NULL, *bot = NULL, *idx = NULL, *x = NULL, *lg = NULL,
            *tg = NULL;
  int64_t *t = NULL, n = in_class ? 2 * k : k;
  int rc = 0;
  TS_TRY(ts_nn_argsort(scores, 0, true, &desc));
  TS_TRY(ts_tensor_narrow(desc, 0, 0, k, &top));
  if (in_class) {
    TS_TRY(ts_nn_argsort(scores, 0, false, &asc));
    TS_TRY(ts_tensor_narrow(asc, 0, 0, k, &bot));
    const ts_tensor *both[2] = {top, bot};
    TS_TRY(ts_nn_cat(both, 2, 0, &idx));
  } else {
    TS_TRY(ts_tensor_alias(top, &idx));
  }
  TS_TRY(ts_tensor_index_select(h, 0, idx, &x));
  TS_TRY(ts__mil_linear_fwd(l, x, &lg));
  t = malloc((size_t)n * sizeof *t);
  if (!t) TS_FAIL(TS_ENOMEM, "NN_OOM", "CLAM: out of memory");
  for (int64_t i = 0; i < n; i++)
    t[i] = in_class && i < k ? 1 : 0;
  TS_TRY(ts_tensor_from_data(t, TS_NN_I64, &n, 1, &tg));
  TS_TRY(ts_nn_cross_entropy(lg, tg, loss_out));
out:
  free(t);
  ts_tensor *all[] = {desc, asc, top, bot, idx, x, lg, tg};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    ts_tensor_free(&all[i]);
  return rc;
}

static int inst_loss(const struct clam *c, const ts_tensor *araw, const ts_tensor *h, int64_t label,
                     int dtype, ts_tensor **out) {
  ts_tensor *sum = NULL, *term = NULL, *next = NULL, *row = NULL;
  int rc = 0;
  int64_t n = ts_tensor_size(h, 0);
  int64_t k = c->k_sample < n / 2 ? c->k_sample : n / 2;
  TS_TRY(ts_tensor_zeros(NULL, 0, dtype, &sum));
  if (k == 0) goto done; /* a 1-tile bag: no instance loss */
  for (int i = 0; i < c->n_classes; i++) {
    bool in_class = i == label;
    if (!in_class && !c->subtyping) continue;
    TS_TRY(ts_tensor_select(araw, 0, c->mb ? i : 0, &row));
    TS_TRY(inst_term(&c->inst[i], row, h, k, in_class, &term));
    TS_TRY(ts_nn_add(sum, term, &next));
    ts_tensor_free(&sum), ts_tensor_free(&term), ts_tensor_free(&row);
    sum = next;
    next = NULL;
  }
  if (c->subtyping) {
    TS_TRY(ts_nn_mul_scalar(sum, 1.0 / c->n_classes, &next));
    ts_tensor_free(&sum);
    sum = next;
    next = NULL;
  }
done:
  *out = sum;
  sum = NULL;
out:
  ts_tensor_free(&sum);
  ts_tensor_free(&term);
  ts_tensor_free(&next);
  ts_tensor_free(&row);
  return rc;
}

static int clam_forward(ts_mil *m, void *impl, const ts_tensor *bag, bool training, const int64_t *label,
                        ts_mil_out *out) {
  const struct clam *c = impl;
  ts_tensor *h = NULL, *araw = NULL, *att = NULL, *mc = NULL, *flat = NULL;
  ts_tensor **parts = NULL;
  int rc = 0;
  TS_TRY(ts__mil_gated_forward(&c->g, bag, training, &h, &araw)); /* [N, L], [heads, N] */
  TS_TRY(ts_nn_softmax(araw, 1, &att));
  TS_TRY(ts_nn_matmul(att, h, &out->embedding)); /* [heads, L] */
  if (!c->mb) {
    TS_TRY(ts__mil_linear_fwd(&c->cls[0], out->embedding, &out->logits));
    TS_TRY(ts_tensor_squeeze(araw, 0, &out->a_raw));
  } else {
    /* logits[0, k] = classifiers[k](M[k]) */
    parts = calloc((size_t)c->n_classes, sizeof *parts);
    if (!parts) TS_FAIL(TS_ENOMEM, "NN_OOM", "CLAM: out of memory");
    for (int k = 0; k < c->n_classes; k++) {
      TS_TRY(ts_tensor_select(out->embedding, 0, k, &mc));
      TS_TRY(ts__mil_linear_fwd(&c->cls[k], mc, &parts[k])); /* [1] */
      ts_tensor_free(&mc);
    }
    TS_TRY(ts_nn_cat((const ts_tensor *const *)parts, c->n_classes, 0, &flat));
    int64_t shape[2] = {1, c->n_classes};
    TS_TRY(ts_tensor_reshape(flat, shape, 2, &out->logits));
    TS_TRY(ts_tensor_contiguous(araw, &out->a_raw));
  }
  if (label) TS_TRY(inst_loss(c, araw, h, *label, ts_mil_get_opts(m)->dtype, &out->inst_loss));
out:
  if (parts)
    for (int k = 0; k < c->n_classes; k++)
      ts_tensor_free(&parts[k]);
  free(parts);
  ts_tensor_free(&h);
  ts_tensor_free(&araw);
  ts_tensor_free(&att);
  ts_tensor_free(&mc);
  ts_tensor_free(&flat);
  return rc;
}

const struct ts_mil_arch ts_mil_arch_clam_sb = {
    .version = TS_MIL_ARCH_VERSION,
    .name = "clam_sb",
    .check = clam_check,
    .build = clam_sb_build,
    .forward = clam_forward,
    .free_impl = clam_free,
    .attention_heads = NULL,
};

static int clam_mb_heads(const ts_mil_opts *o) {
  return o->n_classes;
}

const struct ts_mil_arch ts_mil_arch_clam_mb = {
    .version = TS_MIL_ARCH_VERSION,
    .name = "clam_mb",
    .check = clam_check,
    .build = clam_mb_build,
    .forward = clam_forward,
    .free_impl = clam_free,
    .attention_heads = clam_mb_heads,
};
