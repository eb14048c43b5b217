/* test_nn_optim_state.c — optimiser state and RNG state for resumed training
 * (ts_optim_state / ts_optim_load_state / ts_nn_rng_state / ts_nn_rng_set_state in nn/ts_nn.h).
 *
 * What a collective stage's resume needs: weights + optimiser state + RNG state written to HDF5
 * after N steps, loaded by a fresh process into a fresh model and optimiser, and M more steps
 * must give the very bytes of N+M uninterrupted steps. The model is linear -> relu -> dropout ->
 * linear on fixed data, so the RNG matters; AdamW with weight decay, Adam with L2 weight decay
 * (CLAM's optimiser), SGD with momentum, SGD with
 * Nesterov momentum. Controls show that the comparison can fail: leaving out the RNG state or
 * the optimiser state changes the result.
 *
 * The oracle is Debian's python3-torch (torch.optim.AdamW, torch.optim.Adam and torch.optim.SGD on the same
 * initial weights and data, no dropout): weights after N+M steps within 1e-6 (relative to the
 * tensor's largest value), and the state C exported after N steps, read from the HDF5 file with
 * h5py, equal to optimizer.state_dict() (names, exp_avg/exp_avg_sq/step/momentum_buffer values,
 * hyper-parameters exactly as float64). Then the errors: the other optimiser's state, another
 * parameter count or shape, a missing entry, another hyper-parameter, a bad RNG state, each
 * NN_CHECKPOINT naming the entry, and a failed load changing nothing. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_nn.h"
#include "ts_test_util.h"

enum { NP = 4, B = 16, DIN = 6, DH = 12, DOUT = 3, N_STEPS = 5, M_STEPS = 7 };
enum kind { ADAMW, ADAM, SGD_MOMENTUM, SGD_NESTEROV };

static const char *const PNAMES[NP] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
static const int64_t PSHAPE[NP][2] = {{DH, DIN}, {DH, 0}, {DOUT, DH}, {DOUT, 0}};
static const int PNDIM[NP] = {2, 1, 2, 1};
static const double LR_ADAMW = 1e-2, LR_SGD = 5e-2, DROP = 0.25;

static ts_tensor *X, *Y; /* fixed data, from private generators */

static int suite_init(void) {
  int64_t xs[2] = {B, DIN}, ys[2] = {B, DOUT};
  if (ts_tensor_randn(xs, 2, TS_NN_F32, 100, &X) < 0 || ts_tensor_randn(ys, 2, TS_NN_F32, 101, &Y) < 0)
    return -1;
  return ts_test_tmpdir_make("ts_test_nn_optim_state");
}

static int suite_clean(void) {
  ts_tensor_free(&X);
  ts_tensor_free(&Y);
  return ts_test_tmpdir_remove();
}

typedef struct {
  ts_tensor *p[NP];
} model;

static size_t param_numel(int i) {
  return (size_t)PSHAPE[i][0] * (PNDIM[i] == 2 ? (size_t)PSHAPE[i][1] : 1);
}

static size_t model_numel(void) {
  size_t n = 0;
  for (int i = 0; i < NP; i++)
    n += param_numel(i);
  return n;
}

/* Parameters from private generators (seed, seed+1, ...), scaled by 0.4. */
static void model_init(model *m, uint64_t seed) {
  for (int i = 0; i < NP; i++) {
    ts_tensor *r = NULL;
    CU_ASSERT_EQUAL_FATAL(ts_tensor_randn(PSHAPE[i], PNDIM[i], TS_NN_F32, seed + (uint64_t)i, &r), 0);
    CU_ASSERT_EQUAL_FATAL(ts_nn_mul_scalar(r, 0.4, &m->p[i]), 0);
    ts_tensor_free(&r);
    CU_ASSERT_EQUAL_FATAL(ts_tensor_set_requires_grad(m->p[i], true), 0);
  }
}

static void model_free(model *m) {
  for (int i = 0; i < NP; i++)
    ts_tensor_free(&m->p[i]);
}

static void model_bytes(const model *m, float *buf) {
  for (int i = 0; i < NP; i++) {
    CU_ASSERT_EQUAL(ts_tensor_copy_to(m->p[i], buf, param_numel(i) * sizeof(float), TS_NN_F32), 0);
    buf += param_numel(i);
  }
}

static ts_optim *optim_new(enum kind k, const model *m) {
  ts_optim *o = NULL;
  const ts_tensor *ps[NP] = {m->p[0], m->p[1], m->p[2], m->p[3]};
  int rc = k == ADAMW  ? ts_optim_adamw_new(ps, NP, LR_ADAMW, 0.9, 0.999, 1e-8, 0.05, &o)
           : k == ADAM ? ts_optim_adam_new(ps, NP, LR_ADAMW, 0.9, 0.999, 1e-8, 0.05, &o) /* L2, not decoupled */
                       : ts_optim_sgd_new(ps, NP, LR_SGD, 0.9, 1e-3, k == SGD_NESTEROV, &o);
  CU_ASSERT_EQUAL(rc, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(o);
  return o;
}

/* `steps` steps of MSE(fc2(dropout(relu(fc1(X)))), Y); dropout only when drop > 0. */
static void train(model *m, ts_optim *o, int steps, double drop) {
  for (int s = 0; s < steps; s++) {
    ts_tensor *h = NULL, *a = NULL, *d = NULL, *p = NULL, *loss = NULL;
    CU_ASSERT_EQUAL_FATAL(ts_nn_linear(X, m->p[0], m->p[1], &h), 0);
    CU_ASSERT_EQUAL_FATAL(ts_nn_relu(h, &a), 0);
    CU_ASSERT_EQUAL_FATAL(ts_nn_dropout(a, drop, drop > 0, &d), 0);
    CU_ASSERT_EQUAL_FATAL(ts_nn_linear(d, m->p[2], m->p[3], &p), 0);
    CU_ASSERT_EQUAL_FATAL(ts_nn_mse_loss(p, Y, &loss), 0);
    CU_ASSERT_EQUAL_FATAL(ts_optim_zero_grad(o), 0);
    CU_ASSERT_EQUAL_FATAL(ts_tensor_backward(loss), 0);
    CU_ASSERT_EQUAL_FATAL(ts_optim_step(o), 0);
    ts_tensor_free(&h), ts_tensor_free(&a), ts_tensor_free(&d), ts_tensor_free(&p), ts_tensor_free(&loss);
  }
}

static ts_nn_state *model_state(const model *m) {
  ts_nn_state *s = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_nn_state_new(&s), 0);
  for (int i = 0; i < NP; i++)
    CU_ASSERT_EQUAL(ts_nn_state_add(s, PNAMES[i], m->p[i]), 0);
  return s;
}

static void save_state(ts_nn_state *s, const char *name) {
  char p[512];
  ts_test_path(p, sizeof p, name);
  CU_ASSERT_EQUAL(ts_nn_state_save_h5(s, p, NULL), 0);
}

static ts_nn_state *load_state(const char *name) {
  char p[512];
  ts_nn_state *s = NULL;
  ts_test_path(p, sizeof p, name);
  CU_ASSERT_EQUAL_FATAL(ts_nn_state_load_h5(p, &s), 0);
  return s;
}

/* Checkpoint after N steps: weights, optimiser, RNG, each its own HDF5 file. */
static void checkpoint(const model *m, const ts_optim *o, const char *tag) {
  char name[64];
  ts_nn_state *s = model_state(m);
  snprintf(name, sizeof name, "%s_weights.h5", tag);
  save_state(s, name);
  ts_nn_state_free(&s);
  CU_ASSERT_EQUAL_FATAL(ts_optim_state(o, &s), 0);
  snprintf(name, sizeof name, "%s_optim.h5", tag);
  save_state(s, name);
  ts_nn_state_free(&s);
  ts_tensor *rng = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_nn_rng_state(&rng), 0);
  CU_ASSERT_EQUAL(ts_tensor_dtype(rng), TS_NN_U8);
  CU_ASSERT_EQUAL(ts_tensor_ndim(rng), 1);
  CU_ASSERT_EQUAL_FATAL(ts_nn_state_new(&s), 0);
  CU_ASSERT_EQUAL(ts_nn_state_add(s, "cpu_generator", rng), 0);
  snprintf(name, sizeof name, "%s_rng.h5", tag);
  save_state(s, name);
  ts_nn_state_free(&s);
  ts_tensor_free(&rng);
}

/* A fresh process's resume: other initial weights, a fresh optimiser at the base lr, the
 * generator elsewhere; load what `restore_*` says, then M steps. */
static void resume(enum kind k, const char *tag, bool restore_optim, bool restore_rng, float *out,
                   double *lr_out) {
  char name[64];
  model m = {{NULL}};
  model_init(&m, 5000);
  ts_optim *o = optim_new(k, &m);
  ts_nn_manual_seed(999); /* a fresh process has another generator position */
  ts_tensor *junk = NULL;
  int64_t js[1] = {37};
  ts_tensor_rand(js, 1, TS_NN_F32, 0, &junk);
  ts_tensor_free(&junk);
  ts_nn_state *dst = model_state(&m), *src = NULL;
  snprintf(name, sizeof name, "%s_weights.h5", tag);
  src = load_state(name);
  int unused = -1;
  CU_ASSERT_EQUAL(ts_nn_state_copy_into(dst, src, &unused), 0);
  CU_ASSERT_EQUAL(unused, 0);
  ts_nn_state_free(&dst), ts_nn_state_free(&src);
  if (restore_optim) {
    snprintf(name, sizeof name, "%s_optim.h5", tag);
    src = load_state(name);
    CU_ASSERT_EQUAL(ts_optim_load_state(o, src), 0);
    if (ts_error_code() < 0) fprintf(stderr, "%s\n", ts_error_message());
    ts_nn_state_free(&src);
  }
  if (restore_rng) {
    snprintf(name, sizeof name, "%s_rng.h5", tag);
    src = load_state(name);
    ts_tensor *rng = ts_nn_state_find(src, "cpu_generator");
    CU_ASSERT_PTR_NOT_NULL_FATAL(rng);
    CU_ASSERT_EQUAL(ts_tensor_dtype(rng), TS_NN_I64); /* the HDF5 writer's integer type */
    CU_ASSERT_EQUAL(ts_nn_rng_set_state(rng), 0);
    ts_nn_state_free(&src);
  }
  *lr_out = ts_optim_get_lr(o);
  train(&m, o, M_STEPS, DROP);
  model_bytes(&m, out);
  ts_optim_free(&o);
  model_free(&m);
}

static void check_resume(enum kind k, const char *tag) {
  size_t n = model_numel();
  float *a = calloc(n, sizeof *a), *c = calloc(n, sizeof *c), *noopt = calloc(n, sizeof *c),
        *norng = calloc(n, sizeof *c);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a && c && noopt && norng);
  double base = k == ADAMW || k == ADAM ? LR_ADAMW : LR_SGD, lr = 0.0;
  /* uninterrupted N+M steps; the lr halves after N (a schedule), which the checkpoint must keep */
  model m = {{NULL}};
  model_init(&m, 1);
  ts_optim *o = optim_new(k, &m);
  ts_nn_manual_seed(7);
  train(&m, o, N_STEPS, DROP);
  CU_ASSERT_EQUAL(ts_optim_set_lr(o, base * 0.5), 0);
  train(&m, o, M_STEPS, DROP);
  model_bytes(&m, a);
  ts_optim_free(&o);
  model_free(&m);
  /* interrupted after N steps */
  model_init(&m, 1);
  o = optim_new(k, &m);
  ts_nn_manual_seed(7);
  train(&m, o, N_STEPS, DROP);
  CU_ASSERT_EQUAL(ts_optim_set_lr(o, base * 0.5), 0);
  checkpoint(&m, o, tag);
  ts_optim_free(&o);
  model_free(&m);

  resume(k, tag, true, true, c, &lr);
  CU_ASSERT_EQUAL(lr, base * 0.5); /* exactly: float64 through HDF5 */
  CU_ASSERT_EQUAL(memcmp(a, c, n * sizeof *a), 0);
  if (memcmp(a, c, n * sizeof *a) != 0)
    fprintf(stderr, "%s: resumed weights differ (e.g. %.9g vs %.9g)\n", tag, a[0], c[0]);
  /* controls: without the RNG state, or without the optimiser state, the result differs */
  resume(k, tag, true, false, norng, &lr);
  CU_ASSERT_NOT_EQUAL(memcmp(a, norng, n * sizeof *a), 0);
  resume(k, tag, false, true, noopt, &lr);
  CU_ASSERT_EQUAL(lr, base);
  CU_ASSERT_NOT_EQUAL(memcmp(a, noopt, n * sizeof *a), 0);
  free(a), free(c), free(noopt), free(norng);
}

static void test_nn_optim_state_adamw_resume_bit_identical(void) {
  check_resume(ADAMW, "adamw");
}

static void test_nn_optim_state_adam_resume_bit_identical(void) {
  check_resume(ADAM, "adam");
}

static void test_nn_optim_state_sgd_momentum_resume_bit_identical(void) {
  check_resume(SGD_MOMENTUM, "sgd");
}

static void test_nn_optim_state_sgd_nesterov_resume_bit_identical(void) {
  check_resume(SGD_NESTEROV, "nesterov");
}

/* ---- the oracle: torch.optim in Python ---------------------------------------------------- */

static void write_floats(const char *name, const float *x, size_t n) {
  char p[512];
  ts_test_path(p, sizeof p, name);
  FILE *f = fopen(p, "wb");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  CU_ASSERT_EQUAL(fwrite(x, sizeof *x, n, f), n);
  fclose(f);
}

static void write_tensor(const char *name, const ts_tensor *t) {
  size_t n = (size_t)ts_tensor_numel(t);
  float *buf = calloc(n, sizeof *buf);
  CU_ASSERT_EQUAL(ts_tensor_copy_to(t, buf, n * sizeof *buf, TS_NN_F32), 0);
  write_floats(name, buf, n);
  free(buf);
}

/* N steps, export the state to HDF5 (through a load, as a resume would see it), M more steps. */
static void oracle_run(enum kind k, const char *tag) {
  size_t n = model_numel();
  float *w = calloc(n, sizeof *w);
  char name[64];
  model m = {{NULL}};
  model_init(&m, 1);
  ts_optim *o = optim_new(k, &m);
  ts_nn_state *s = NULL;
  CU_ASSERT_EQUAL(ts_optim_state(o, &s), 0); /* before any step: hyper-parameters only */
  CU_ASSERT_PTR_NULL(ts_nn_state_find(s, k == ADAMW || k == ADAM ? "state.0.exp_avg" : "state.0.momentum_buffer"));
  CU_ASSERT_EQUAL(ts_nn_state_count(s), 6);
  ts_nn_state_free(&s);
  train(&m, o, N_STEPS, 0.0);
  CU_ASSERT_EQUAL_FATAL(ts_optim_state(o, &s), 0);
  snprintf(name, sizeof name, "%s_n.h5", tag);
  save_state(s, name);
  ts_nn_state_free(&s);
  train(&m, o, M_STEPS, 0.0);
  model_bytes(&m, w);
  snprintf(name, sizeof name, "%s_final.bin", tag);
  write_floats(name, w, n);
  ts_optim_free(&o);
  model_free(&m);
  free(w);
}

static void test_nn_optim_state_matches_torch(void) {
  size_t n = model_numel();
  float *w = calloc(n, sizeof *w);
  model m = {{NULL}};
  model_init(&m, 1);
  model_bytes(&m, w);
  write_floats("init.bin", w, n);
  model_free(&m);
  free(w);
  write_tensor("x.bin", X);
  write_tensor("y.bin", Y);
  oracle_run(ADAMW, "adamw");
  oracle_run(ADAM, "adam");
  oracle_run(SGD_NESTEROV, "nesterov");
  oracle_run(SGD_MOMENTUM, "sgd");
  char py[8192];
  snprintf(py, sizeof py,
           "import h5py, numpy as np, torch\n"
           "N, M, B, DIN, DH, DOUT = %d, %d, %d, %d, %d, %d\n"
           "shapes = [(DH, DIN), (DH,), (DOUT, DH), (DOUT,)]\n"
           "def split(a):\n"
           "    out, o = [], 0\n"
           "    for s in shapes:\n"
           "        k = int(np.prod(s)); out.append(a[o:o + k].reshape(s)); o += k\n"
           "    return out\n"
           "init = split(np.fromfile('init.bin', '<f4'))\n"
           "x = torch.from_numpy(np.fromfile('x.bin', '<f4').reshape(B, DIN))\n"
           "y = torch.from_numpy(np.fromfile('y.bin', '<f4').reshape(B, DOUT))\n"
           "def run(tag, mk):\n"
           "    ps = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in init]\n"
           "    opt = mk(ps)\n"
           "    for step in range(N + M):\n"
           "        opt.zero_grad()\n"
           "        h = torch.relu(torch.nn.functional.linear(x, ps[0], ps[1]))\n"
           "        loss = torch.nn.functional.mse_loss(torch.nn.functional.linear(h, ps[2], ps[3]), y)\n"
           "        loss.backward()\n"
           "        opt.step()\n"
           "        if step == N - 1:\n"
           "            check_state(tag, opt.state_dict())\n"
           "    got = split(np.fromfile(tag + '_final.bin', '<f4'))\n"
           "    for i, p in enumerate(ps):\n"
           "        want = p.detach().numpy()\n"
           "        err = np.abs(got[i] - want).max() / np.abs(want).max()\n"
           "        print(tag, 'weights', i, 'max rel err', err)\n"
           "        assert err <= 1e-6, (tag, i, err)\n"
           "def close(name, got, want):\n"
           "    err = np.abs(got - want).max() / max(np.abs(want).max(), 1e-30)\n"
           "    print(name, 'max rel err', err)\n"
           "    assert got.shape == want.shape and err <= 1e-6, (name, got.shape, want.shape, err)\n"
           "def check_state(tag, sd):\n"
           "    g = h5py.File(tag + '_n.h5', 'r')['state_dict']\n"
           "    want = set()\n"
           "    for i, st in sd['state'].items():\n"
           "        for k, v in st.items():\n"
           "            name = 'state.%%d.%%s' %% (i, k)\n"
           "            want.add(name)\n"
           "            if k == 'step':\n"
           "                assert g[name].dtype == np.int64 and g[name][()] == int(v.item()), (name, "
           "g[name][()], v)\n"
           "            else:\n"
           "                assert g[name].dtype == np.float32\n"
           "                close(name, g[name][()], v.numpy())\n"
           "    pg = sd['param_groups'][0]\n"
           "    hyper = ['lr', 'betas', 'eps', 'weight_decay', 'amsgrad'] if 'betas' in pg else \\\n"
           "            ['lr', 'momentum', 'dampening', 'weight_decay', 'nesterov']\n"
           "    for k in hyper:\n"
           "        name = 'param_groups.0.' + k\n"
           "        want.add(name)\n"
           "        v = g[name][()]\n"
           "        if isinstance(pg[k], bool):\n"
           "            assert g[name].dtype == np.int64 and bool(v) == pg[k], (name, v)\n"
           "        else:\n"
           "            assert g[name].dtype == np.float64, (name, g[name].dtype)\n"
           "            assert np.array_equal(np.asarray(v), np.asarray(pg[k], dtype=np.float64)), (name, v, "
           "pg[k])\n"
           "    want.add('param_groups.0.params')\n"
           "    assert list(g['param_groups.0.params'][()]) == pg['params']\n"
           "    assert set(g.keys()) == want, (sorted(g.keys()), sorted(want))\n"
           "    print(tag, 'state ok:', len(want), 'entries')\n"
           "run('adamw', lambda ps: torch.optim.AdamW(ps, lr=%.17g, betas=(0.9, 0.999), eps=1e-8,\n"
           "    weight_decay=0.05))\n"
           "run('adam', lambda ps: torch.optim.Adam(ps, lr=%.17g, betas=(0.9, 0.999), eps=1e-8,\n"
           "    weight_decay=0.05))\n"
           "run('nesterov', lambda ps: torch.optim.SGD(ps, lr=%.17g, momentum=0.9, weight_decay=1e-3,\n"
           "    nesterov=True))\n"
           "run('sgd', lambda ps: torch.optim.SGD(ps, lr=%.17g, momentum=0.9, weight_decay=1e-3))\n"
           "print('ok')\n",
           N_STEPS, M_STEPS, B, DIN, DH, DOUT, LR_ADAMW, LR_ADAMW, LR_SGD, LR_SGD);
  CU_ASSERT_EQUAL(ts_test_python("check_optim.py", py), 0);
}

/* ---- errors ------------------------------------------------------------------------------- */

static ts_nn_state *stepped_state(enum kind k) {
  model m = {{NULL}};
  model_init(&m, 1);
  ts_optim *o = optim_new(k, &m);
  train(&m, o, 2, 0.0);
  ts_nn_state *s = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_optim_state(o, &s), 0);
  ts_optim_free(&o);
  model_free(&m);
  return s;
}

/* s without entry `drop` (may be NULL), plus `extra` aliasing `extra_t` (may be NULL). */
static ts_nn_state *edited(const ts_nn_state *s, const char *drop, const char *extra,
                           const ts_tensor *extra_t) {
  ts_nn_state *e = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_nn_state_new(&e), 0);
  for (int i = 0; i < ts_nn_state_count(s); i++)
    if (!drop || strcmp(ts_nn_state_name(s, i), drop) != 0) {
      CU_ASSERT_EQUAL(ts_nn_state_add(e, ts_nn_state_name(s, i), ts_nn_state_tensor(s, i)), 0);
    }
  if (extra) {
    CU_ASSERT_EQUAL(ts_nn_state_add(e, extra, extra_t), 0);
  }
  return e;
}

static char *state_hash(const ts_optim *o) {
  static char h[65];
  ts_nn_state *s = NULL;
  CU_ASSERT_EQUAL(ts_optim_state(o, &s), 0);
  CU_ASSERT_EQUAL(ts_nn_state_sha256(s, h), 0);
  ts_nn_state_free(&s);
  return h;
}

#define EXPECT_CHECKPOINT(call, needle)                                                                      \
  do {                                                                                                       \
    CU_ASSERT_EQUAL((call), TS_EINPUT);                                                                      \
    CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_CHECKPOINT");                                               \
    CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), (needle)));                                            \
    if (!strstr(ts_error_message(), (needle))) fprintf(stderr, "message: %s\n", ts_error_message());         \
  } while (0)

static void test_nn_optim_state_load_errors(void) {
  ts_nn_state *adam = stepped_state(ADAMW), *sgd = stepped_state(SGD_NESTEROV), *e = NULL;
  model m = {{NULL}};
  model_init(&m, 3);
  ts_optim *oa = optim_new(ADAMW, &m), *os = optim_new(SGD_NESTEROV, &m);
  train(&m, oa, 1, 0.0);
  char before[65];
  snprintf(before, sizeof before, "%s", state_hash(oa));

  /* the other optimiser's state */
  EXPECT_CHECKPOINT(ts_optim_load_state(os, adam), "param_groups.0.betas");
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "AdamW"));
  EXPECT_CHECKPOINT(ts_optim_load_state(oa, sgd), "param_groups.0.momentum");
  /* a missing entry, named */
  e = edited(adam, "state.2.exp_avg_sq", NULL, NULL);
  EXPECT_CHECKPOINT(ts_optim_load_state(oa, e), "state.2.exp_avg_sq");
  ts_nn_state_free(&e);
  e = edited(adam, "param_groups.0.params", NULL, NULL);
  EXPECT_CHECKPOINT(ts_optim_load_state(oa, e), "param_groups.0.params");
  ts_nn_state_free(&e);
  /* an entry no optimiser of this kind has */
  ts_tensor *t = ts_nn_state_find(adam, "state.0.exp_avg");
  e = edited(adam, NULL, "state.0.momentum_buffer", t);
  EXPECT_CHECKPOINT(ts_optim_load_state(oa, e), "unexpected entry 'state.0.momentum_buffer'");
  ts_nn_state_free(&e);
  /* another hyper-parameter */
  ts_tensor *wd = NULL;
  ts_tensor_full(NULL, 0, TS_NN_F64, 0.01, &wd);
  e = edited(adam, "param_groups.0.weight_decay", "param_groups.0.weight_decay", wd);
  EXPECT_CHECKPOINT(ts_optim_load_state(oa, e), "param_groups.0.weight_decay");
  ts_nn_state_free(&e);
  ts_tensor_free(&wd);
  /* a failed load changed nothing */
  CU_ASSERT_STRING_EQUAL(state_hash(oa), before);

  /* another parameter count: an AdamW over the first three parameters */
  const ts_tensor *three[3] = {m.p[0], m.p[1], m.p[2]};
  ts_optim *o3 = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_optim_adamw_new(three, 3, LR_ADAMW, 0.9, 0.999, 1e-8, 0.05, &o3), 0);
  EXPECT_CHECKPOINT(ts_optim_load_state(o3, adam), "param_groups.0.params");
  ts_optim_free(&o3);
  /* another shape: fc1 takes 7 inputs */
  ts_tensor *w7 = NULL;
  int64_t s7[2] = {DH, DIN + 1};
  CU_ASSERT_EQUAL_FATAL(ts_tensor_zeros(s7, 2, TS_NN_F32, &w7), 0);
  ts_tensor_set_requires_grad(w7, true);
  const ts_tensor *other[NP] = {w7, m.p[1], m.p[2], m.p[3]};
  CU_ASSERT_EQUAL_FATAL(ts_optim_adamw_new(other, NP, LR_ADAMW, 0.9, 0.999, 1e-8, 0.05, &o3), 0);
  EXPECT_CHECKPOINT(ts_optim_load_state(o3, adam), "state.0.exp_avg");
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "[12, 6]"));
  ts_optim_free(&o3);
  ts_tensor_free(&w7);

  /* a state taken before any step loads and clears what the optimiser had, as in PyTorch */
  ts_optim *fresh = optim_new(ADAMW, &m);
  CU_ASSERT_EQUAL_FATAL(ts_optim_state(fresh, &e), 0);
  CU_ASSERT_EQUAL(ts_optim_load_state(oa, e), 0);
  ts_nn_state_free(&e);
  CU_ASSERT_STRING_EQUAL(state_hash(oa), state_hash(fresh));
  ts_optim_free(&fresh);

  /* NULLs */
  CU_ASSERT_EQUAL(ts_optim_load_state(NULL, adam), TS_EINVAL);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_ARG");
  CU_ASSERT_EQUAL(ts_optim_load_state(oa, NULL), TS_EINVAL);
  e = adam;
  CU_ASSERT_EQUAL(ts_optim_state(NULL, &e), TS_EINVAL);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_ARG");
  CU_ASSERT_PTR_NULL(e);
  CU_ASSERT_EQUAL(ts_optim_state(oa, NULL), TS_EINVAL);

  ts_optim_free(&oa), ts_optim_free(&os);
  model_free(&m);
  ts_nn_state_free(&adam), ts_nn_state_free(&sgd);
}

static void test_nn_optim_state_rng_roundtrip_and_errors(void) {
  ts_tensor *st = NULL, *a = NULL, *b = NULL, *bad = NULL;
  int64_t sh[1] = {1000};
  ts_nn_manual_seed(11);
  CU_ASSERT_EQUAL_FATAL(ts_nn_rng_state(&st), 0);
  CU_ASSERT_EQUAL_FATAL(ts_tensor_randn(sh, 1, TS_NN_F32, 0, &a), 0); /* randn: the cached normal too */
  CU_ASSERT_EQUAL(ts_nn_rng_set_state(st), 0);
  CU_ASSERT_EQUAL_FATAL(ts_tensor_randn(sh, 1, TS_NN_F32, 0, &b), 0);
  float x[1000], y[1000];
  ts_tensor_copy_to(a, x, sizeof x, TS_NN_F32);
  ts_tensor_copy_to(b, y, sizeof y, TS_NN_F32);
  CU_ASSERT_EQUAL(memcmp(x, y, sizeof x), 0);
  ts_tensor_free(&b);
  /* a bad state leaves the generator where it was */
  CU_ASSERT_EQUAL(ts_nn_rng_set_state(st), 0);
  int64_t n = ts_tensor_numel(st), shorter = n - 1;
  CU_ASSERT_EQUAL(ts_tensor_zeros(&shorter, 1, TS_NN_U8, &bad), 0);
  EXPECT_CHECKPOINT(ts_nn_rng_set_state(bad), "RNG state has shape");
  ts_tensor_free(&bad);
  CU_ASSERT_EQUAL(ts_tensor_full(&n, 1, TS_NN_I64, 300.0, &bad), 0);
  EXPECT_CHECKPOINT(ts_nn_rng_set_state(bad), "0..255");
  ts_tensor_free(&bad);
  CU_ASSERT_EQUAL(ts_tensor_zeros(&n, 1, TS_NN_F32, &bad), 0);
  EXPECT_CHECKPOINT(ts_nn_rng_set_state(bad), "not uint8 or int64");
  ts_tensor_free(&bad);
  CU_ASSERT_EQUAL(ts_nn_rng_set_state(NULL), TS_EINVAL);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_ARG");
  CU_ASSERT_EQUAL(ts_nn_rng_state(NULL), TS_EINVAL);
  CU_ASSERT_EQUAL_FATAL(ts_tensor_randn(sh, 1, TS_NN_F32, 0, &b), 0);
  ts_tensor_copy_to(b, y, sizeof y, TS_NN_F32);
  CU_ASSERT_EQUAL(memcmp(x, y, sizeof x), 0);
  ts_tensor_free(&st), ts_tensor_free(&a), ts_tensor_free(&b);
}

/* float64 entries keep their bits through the HDF5 checkpoint (the hyper-parameters rely on it). */
static void test_nn_optim_state_h5_keeps_float64(void) {
  double v[3] = {0.1, 1.0 / 3.0, 1e-300};
  int64_t n = 3;
  ts_tensor *t = NULL;
  ts_nn_state *s = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_tensor_from_data(v, TS_NN_F64, &n, 1, &t), 0);
  CU_ASSERT_EQUAL_FATAL(ts_nn_state_new(&s), 0);
  CU_ASSERT_EQUAL(ts_nn_state_add(s, "x", t), 0);
  save_state(s, "f64.h5");
  ts_nn_state_free(&s);
  s = load_state("f64.h5");
  ts_tensor *u = ts_nn_state_find(s, "x");
  CU_ASSERT_EQUAL_FATAL(ts_tensor_dtype(u), TS_NN_F64);
  double w[3];
  CU_ASSERT_EQUAL(ts_tensor_copy_to(u, w, sizeof w, TS_NN_F64), 0);
  CU_ASSERT_EQUAL(memcmp(v, w, sizeof v), 0);
  ts_nn_state_free(&s);
  ts_tensor_free(&t);
}

int ts_test_register(void) {
  CU_pSuite s = CU_add_suite("nn_optim_state", suite_init, suite_clean);
  if (!s) return -1;
  if (!CU_add_test(s, "test_nn_optim_state_adamw_resume_bit_identical",
                   test_nn_optim_state_adamw_resume_bit_identical) ||
      !CU_add_test(s, "test_nn_optim_state_adam_resume_bit_identical", test_nn_optim_state_adam_resume_bit_identical) ||
      !CU_add_test(s, "test_nn_optim_state_sgd_momentum_resume_bit_identical",
                   test_nn_optim_state_sgd_momentum_resume_bit_identical) ||
      !CU_add_test(s, "test_nn_optim_state_sgd_nesterov_resume_bit_identical",
                   test_nn_optim_state_sgd_nesterov_resume_bit_identical) ||
      !CU_add_test(s, "test_nn_optim_state_matches_torch", test_nn_optim_state_matches_torch) ||
      !CU_add_test(s, "test_nn_optim_state_load_errors", test_nn_optim_state_load_errors) ||
      !CU_add_test(s, "test_nn_optim_state_rng_roundtrip_and_errors",
                   test_nn_optim_state_rng_roundtrip_and_errors) ||
      !CU_add_test(s, "test_nn_optim_state_h5_keeps_float64", test_nn_optim_state_h5_keeps_float64))
    return -1;
  return 0;
}
