/* mil_abmil.c — gated attention MIL (Ilse, Tomczak & Welling, ICML 2018), on tile features.
 *
 * The paper's gated attention (eq. 9): a_n = softmax_n( wᵀ (tanh(V h_n) ⊙ sigm(U h_n)) ), the bag
 * z = Σ a_n h_n, then a classifier on z. Ilse et al. embed MNIST digits with a LeNet; on slide
 * features the embedding is one fc D→L ReLU (dropout), as in CLAM and in issue 11. The head is a
 * linear L→C on which the caller puts softmax + cross entropy (the paper's two-class Bernoulli
 * head is the C = 2 case up to parametrisation), or L→1 for regression (MSE; WeakSTIL-like).
 * Tensors carry CLAM_SB's names (see ts_mil.h) and the attention branches have no dropout (the
 * paper's have none).
 */
#include "ts_mil.h"

#include <stdlib.h>

struct abmil {
  ts__mil_gated g;
  ts__mil_linear head; /* classifiers */
};

static int abmil_build(ts_mil *m, const ts_mil_opts *o, void **impl_out) {
  struct abmil *a = calloc(1, sizeof *a);
  if (!a) return ts_error_set(TS_ENOMEM, "NN_OOM", "abmil: out of memory");
  *impl_out = a; /* freed by ts_mil_free, also on failure below */
  TS_CALL(ts__mil_gated_new(m, o, 1, &a->g));
  a->g.p_attn = 0;
  TS_CALL(ts__mil_linear_new(m, "classifiers", o->hidden, o->n_classes, &a->head));
  return 0;
}

static int abmil_forward(ts_mil *m, void *impl, const ts_tensor *bag, bool training, const int64_t *label,
                         ts_mil_out *out) {
  (void)m, (void)label;
  const struct abmil *a = impl;
  ts_tensor *h = NULL, *araw = NULL, *att = NULL;
  int rc = 0;
  TS_TRY(ts__mil_gated_forward(&a->g, bag, training, &h, &araw)); /* [N, L], [1, N] */
  TS_TRY(ts_nn_softmax(araw, 1, &att));
  TS_TRY(ts_nn_matmul(att, h, &out->embedding)); /* [1, L] */
  TS_TRY(ts__mil_linear_fwd(&a->head, out->embedding, &out->logits));
  TS_TRY(ts_tensor_squeeze(araw, 0, &out->a_raw));
out:
  ts_tensor_free(&h);
  ts_tensor_free(&araw);
  ts_tensor_free(&att);
  return rc;
}

const struct ts_mil_arch ts_mil_arch_abmil = {
    .version = TS_MIL_ARCH_VERSION,
    .name = "abmil",
    .check = NULL, /* any n_classes >= 1: 1 is regression */
    .build = abmil_build,
    .forward = abmil_forward,
    .free_impl = free,
    .attention_heads = NULL,
};
