/* test_mil.c — the MIL models (nn/ts_mil.h): ABMIL, CLAM-SB, CLAM-MB.
 *
 * - forward oracle: each model built in C from a seed, its state dict saved to HDF5, loaded by
 *   name (strict) into the same architecture written below in plain torch.nn (Debian's
 *   python3-torch) after Ilse et al. (ABMIL, in their GatedAttention names) and CLAM's published
 *   classes (CLAM_SB / CLAM_MB module trees): eval-mode logits, raw attention and the instance
 *   loss agree within 1e-5; the state's names and order are the torch module's;
 * - gradients: central finite differences in float64 of the training loss (CLAM: 0.7 bag + 0.3
 *   instance) w.r.t. entries of every weight tensor, on a small bag;
 * - small bags (1, 3, 2k-1 tiles) train and evaluate; a bag of another width fails NN_SHAPE;
 *   option, label and checkpoint errors with their tokens; save/load round trip;
 * - learning: ABMIL on synthetic bags (positive = holds an instance of a shifted Gaussian):
 *   training loss falls, test AUC > 0.9.
 */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_mil.h"
#include "ts_nn.h"
#include "ts_test_util.h"

static int suite_init(void) {
  if (ts_test_tmpdir_make("ts_test_mil") < 0) return -1;
  return ts_nn_set_num_threads(2) == 0 ? 0 : -1;
}

/* ---- Small helpers ------------------------------------------------------------------------------ */


static ts_tensor *randn_bag(int64_t n, int64_t d, uint64_t seed, int dtype) {
  int64_t s[2] = {n, d};
  ts_tensor *t = NULL;
  CU_ASSERT_EQUAL(ts_tensor_randn(s, 2, dtype, seed, &t), 0);
  return t;
}

static ts_mil *new_model(const char *arch, int64_t in_dim, int n_classes, uint64_t seed) {
  ts_mil_opts o;
  ts_mil_opts_default(&o);
  o.in_dim = in_dim, o.n_classes = n_classes, o.seed = seed;
  ts_mil *m = NULL;
  int rc = ts_mil_new(arch, &o, &m);
  if (rc < 0) fprintf(stderr, "\n%s\n", ts_error_message());
  CU_ASSERT_EQUAL(rc, 0);
  return m;
}

static double max_abs_diff_f32(const ts_tensor *t, const float *want, size_t n, double *scale_out) {
  float *got = calloc(n ? n : 1, sizeof *got);
  double worst = INFINITY, scale = 0;
  if (got && (size_t)ts_tensor_numel(t) == n && ts_tensor_copy_to(t, got, n * sizeof *got, TS_NN_F32) == 0) {
    worst = 0;
    for (size_t i = 0; i < n; i++) {
      worst = fmax(worst, fabs((double)got[i] - want[i]));
      scale = fmax(scale, fabs(want[i]));
    }
  }
  free(got);
  if (scale_out) *scale_out = scale;
  return worst;
}

/* ---- (a) Forward against torch.nn ----------------------------------------------------------------- */

/* The reference models, written from the papers and CLAM's published module trees (not from
 * tessera's C). CASE (prepended) says which model, its sizes and the bag's. */
static const char *ORACLE_PY =
    "import numpy as np, h5py, torch, torch.nn as nn, torch.nn.functional as F\n"
    "torch.set_num_threads(2)\n"
    "D, C, L, DA, N, K = CASE['in_dim'], CASE['C'], 512, 256, CASE['N'], CASE['k']\n"
    "\n"
    "class GatedABMIL(nn.Module):\n"
    "    # Ilse et al. 2018, eq. 9, names of their GatedAttention; embedding fc instead of LeNet\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.feature_extractor_part2 = nn.Sequential(nn.Linear(D, L), nn.ReLU(), nn.Dropout(0.25))\n"
    "        self.attention_V = nn.Sequential(nn.Linear(L, DA), nn.Tanh())\n"
    "        self.attention_U = nn.Sequential(nn.Linear(L, DA), nn.Sigmoid())\n"
    "        self.attention_weights = nn.Linear(DA, 1)\n"
    "        self.classifier = nn.Sequential(nn.Linear(L, C))\n"
    "    def forward(self, x, label=None):\n"
    "        H = self.feature_extractor_part2(x)\n"
    "        A = self.attention_weights(self.attention_V(H) * self.attention_U(H)).t()  # 1 x N\n"
    "        Z = torch.mm(F.softmax(A, dim=1), H)\n"
    "        return self.classifier(Z), A.view(-1), None\n"
    "# tessera keeps CLAM_SB's names for ABMIL; Ilse's names for the same tensors:\n"
    "ILSE = {'attention_net.0': 'feature_extractor_part2.0', 'attention_net.3.attention_a.0': "
    "'attention_V.0',\n"
    "        'attention_net.3.attention_b.0': 'attention_U.0', 'attention_net.3.attention_c': "
    "'attention_weights',\n"
    "        'classifiers': 'classifier.0'}\n"
    "\n"
    "class GatedAttention(nn.Module):  # CLAM's Attn_Net_Gated\n"
    "    def __init__(self, heads):\n"
    "        super().__init__()\n"
    "        self.attention_a = nn.Sequential(nn.Linear(L, DA), nn.Tanh(), nn.Dropout(0.25))\n"
    "        self.attention_b = nn.Sequential(nn.Linear(L, DA), nn.Sigmoid(), nn.Dropout(0.25))\n"
    "        self.attention_c = nn.Linear(DA, heads)\n"
    "    def forward(self, h):\n"
    "        return self.attention_c(self.attention_a(h) * self.attention_b(h)), h\n"
    "\n"
    "class CLAM(nn.Module):  # CLAM_SB (mb=False) / CLAM_MB (mb=True)\n"
    "    def __init__(self, mb, subtyping):\n"
    "        super().__init__()\n"
    "        self.mb, self.subtyping = mb, subtyping\n"
    "        self.attention_net = nn.Sequential(nn.Linear(D, L), nn.ReLU(), nn.Dropout(0.25),\n"
    "                                           GatedAttention(C if mb else 1))\n"
    "        if mb:\n"
    "            self.classifiers = nn.ModuleList([nn.Linear(L, 1) for _ in range(C)])\n"
    "        else:\n"
    "            self.classifiers = nn.Linear(L, C)\n"
    "        self.instance_classifiers = nn.ModuleList([nn.Linear(L, 2) for _ in range(C)])\n"
    "    def term(self, a, h, clf, in_class):\n"
    "        # CLAM's inst_eval / inst_eval_out, k = min(k_sample, N // 2) for small bags\n"
    "        k = min(K, h.shape[0] // 2)\n"
    "        top = torch.index_select(h, 0, torch.topk(a, k)[1])\n"
    "        if not in_class:\n"
    "            return F.cross_entropy(clf(top), torch.zeros(k, dtype=torch.long))\n"
    "        bot = torch.index_select(h, 0, torch.topk(-a, k)[1])\n"
    "        y = torch.cat([torch.ones(k, dtype=torch.long), torch.zeros(k, dtype=torch.long)])\n"
    "        return F.cross_entropy(clf(torch.cat([top, bot])), y)\n"
    "    def forward(self, x, label=None):\n"
    "        A, h = self.attention_net(x)\n"
    "        A = A.t()  # heads x N\n"
    "        A_raw, A = A, F.softmax(A, dim=1)\n"
    "        inst = None\n"
    "        if label is not None and h.shape[0] >= 2:\n"
    "            inst = 0.0\n"
    "            for i in range(C):\n"
    "                a = A[i] if self.mb else A[0]\n"
    "                if i == label:\n"
    "                    inst = inst + self.term(a, h, self.instance_classifiers[i], True)\n"
    "                elif self.subtyping:\n"
    "                    inst = inst + self.term(a, h, self.instance_classifiers[i], False)\n"
    "            if self.subtyping:\n"
    "                inst = inst / C\n"
    "        elif label is not None:\n"
    "            inst = torch.zeros(())\n"
    "        M = torch.mm(A, h)\n"
    "        if self.mb:\n"
    "            logits = torch.cat([self.classifiers[c](M[c]) for c in range(C)]).view(1, C)\n"
    "        else:\n"
    "            logits = self.classifiers(M)\n"
    "        return logits, (A_raw if self.mb else A_raw.view(-1)), inst\n"
    "\n"
    "arch = CASE['arch']\n"
    "model = GatedABMIL() if arch == 'abmil' else CLAM(arch == 'clam_mb', CASE['subtyping'])\n"
    "with h5py.File('model.h5', 'r') as f:\n"
    "    names = list(f['state_dict'].keys())\n"
    "    sd = {n: torch.from_numpy(np.array(f['state_dict'][n])) for n in names}\n"
    "if arch == 'abmil':\n"
    "    sd = {ILSE[n.rsplit('.', 1)[0]] + '.' + n.rsplit('.', 1)[1]: t for n, t in sd.items()}\n"
    "    keys = [next(k for k, v in ILSE.items() if v == n.rsplit('.', 1)[0]) + '.' + n.rsplit('.', 1)[1]\n"
    "            for n in model.state_dict().keys()]\n"
    "else:\n"
    "    keys = list(model.state_dict().keys())\n"
    "model.load_state_dict(sd, strict=True)\n"
    "model.eval()\n"
    "open('keys.txt', 'w').write('\\n'.join(keys) + '\\n')\n"
    "x = torch.from_numpy(np.fromfile('bag.bin', dtype='<f4').reshape(N, D))\n"
    "with torch.no_grad():\n"
    "    logits, araw, inst = model(x, CASE['label'])\n"
    "logits.numpy().astype('<f4').tofile('want_logits.bin')\n"
    "araw.numpy().astype('<f4').tofile('want_araw.bin')\n"
    "np.array([inst.item() if inst is not None else np.nan], dtype='<f8').tofile('want_inst.bin')\n";

struct oracle_case {
  const char *arch;
  int64_t in_dim, n;
  int n_classes;
  int64_t label; /* -1: none */
  bool subtyping;
  uint64_t seed;
};

static void run_oracle(const struct oracle_case *c) {
  ts_mil_opts o;
  ts_mil_opts_default(&o);
  o.in_dim = c->in_dim, o.n_classes = c->n_classes, o.seed = c->seed, o.subtyping = c->subtyping;
  ts_mil *m = NULL;
  ts_tensor *bag = NULL;
  ts_mil_out r = {0};
  char path[512], *py = NULL, *keys = NULL;
  float *want_l = NULL, *want_a = NULL;
  double *want_i = NULL;
  int rc = ts_mil_new(c->arch, &o, &m);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  ts_test_path(path, sizeof path, "model.h5");
  CU_ASSERT_EQUAL_FATAL(ts_nn_state_save_h5(ts_mil_state(m), path, ts_mil_arch(m)), 0);
  bag = randn_bag(c->n, c->in_dim, c->seed + 1000, TS_NN_F32);
  size_t nb = (size_t)(c->n * c->in_dim);
  float *buf = malloc(nb * sizeof *buf);
  CU_ASSERT_FATAL(buf && ts_tensor_copy_to(bag, buf, nb * sizeof *buf, TS_NN_F32) == 0);
  ts_test_path(path, sizeof path, "bag.bin");
  FILE *f = fopen(path, "wb");
  CU_ASSERT_FATAL(f && fwrite(buf, sizeof *buf, nb, f) == nb);
  fclose(f);
  free(buf);
  size_t len = strlen(ORACLE_PY) + 512;
  py = malloc(len);
  snprintf(py, len, "CASE = dict(arch='%s', in_dim=%lld, C=%d, N=%lld, k=%d, label=%s, subtyping=%s)\n%s",
           c->arch, (long long)c->in_dim, c->n_classes, (long long)c->n, o.k_sample,
           c->label < 0 ? "None"
                        : (c->label == 0   ? "0"
                           : c->label == 1 ? "1"
                                           : "2"),
           c->subtyping ? "True" : "False", ORACLE_PY);
  CU_ASSERT_EQUAL_FATAL(ts_test_python("oracle.py", py), 0);
  /* names and order: the torch module's state_dict() */
  keys = ts_test_read("keys.txt", NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(keys);
  ts_nn_state *s = ts_mil_state(m);
  int i = 0;
  bool same = true;
  for (char *line = strtok(keys, "\n"); line; line = strtok(NULL, "\n"), i++) {
    const char *name = ts_nn_state_name(s, i);
    if (!name || strcmp(name, line) != 0) {
      fprintf(stderr, "\n%s name %d: torch '%s', tessera '%s'\n", c->arch, i, line, name ? name : "(none)");
      same = false;
      break;
    }
  }
  CU_ASSERT(same);
  CU_ASSERT_EQUAL(i, ts_nn_state_count(s));
  /* eval-mode forward */
  int64_t label = c->label;
  rc = ts_mil_forward(m, bag, false, c->label < 0 ? NULL : &label, &r);
  if (rc < 0) fprintf(stderr, "\n%s\n", ts_error_message());
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  int heads = ts_mil_attention_heads(m);
  size_t nl = 0, na = 0, ni = 0;
  want_l = ts_test_read("want_logits.bin", &nl);
  want_a = ts_test_read("want_araw.bin", &na);
  want_i = ts_test_read("want_inst.bin", &ni);
  CU_ASSERT_FATAL(want_l && want_a && want_i && nl == (size_t)c->n_classes * 4 &&
                  na == (size_t)(heads * c->n) * 4 && ni == 8);
  CU_ASSERT_EQUAL(ts_tensor_ndim(r.logits), 2);
  CU_ASSERT_EQUAL(ts_tensor_size(r.logits, 0), 1);
  CU_ASSERT_EQUAL(ts_tensor_ndim(r.a_raw), heads == 1 ? 1 : 2);
  double sl, sa;
  double dl = max_abs_diff_f32(r.logits, want_l, (size_t)c->n_classes, &sl);
  double da = max_abs_diff_f32(r.a_raw, want_a, (size_t)(heads * c->n), &sa);
  fprintf(stderr, "[%s N=%lld: |dlogits| %.2g (|logit| <= %.2g), |dA_raw| %.2g (<= %.2g)", c->arch,
          (long long)c->n, dl, sl, da, sa);
  CU_ASSERT(dl < 1e-5);
  CU_ASSERT(da < 1e-5);
  if (c->label >= 0 && strcmp(c->arch, "abmil") != 0) {
    double v = NAN;
    CU_ASSERT_PTR_NOT_NULL_FATAL(r.inst_loss);
    CU_ASSERT_EQUAL(ts_tensor_item(r.inst_loss, &v), 0);
    fprintf(stderr, ", inst %.6f vs %.6f", v, want_i[0]);
    CU_ASSERT(fabs(v - want_i[0]) < 1e-5);
  } else {
    CU_ASSERT_PTR_NULL(r.inst_loss);
  }
  fprintf(stderr, "] ");
  free(py), free(keys), free(want_l), free(want_a), free(want_i);
  ts_mil_out_free(&r);
  ts_tensor_free(&bag);
  ts_mil_free(&m);
}

static void test_mil_abmil_matches_torch(void) {
  struct oracle_case c1 = {"abmil", 1024, 50, 2, -1, false, 11};
  run_oracle(&c1);
  struct oracle_case c2 = {"abmil", 512, 7, 4, -1, false, 12};
  run_oracle(&c2);
}

static void test_mil_clam_sb_matches_torch(void) {
  struct oracle_case c1 = {"clam_sb", 1024, 60, 2, 1, false, 21}; /* CLAM's binary default */
  run_oracle(&c1);
  struct oracle_case c2 = {"clam_sb", 384, 40, 3, 0, true, 22}; /* subtyping */
  run_oracle(&c2);
  struct oracle_case c3 = {"clam_sb", 512, 5, 2, 0, false, 23}; /* N < 2k: k = 2 */
  run_oracle(&c3);
  struct oracle_case c4 = {"clam_sb", 512, 30, 2, -1, false, 24}; /* no label */
  run_oracle(&c4);
}

static void test_mil_clam_mb_matches_torch(void) {
  struct oracle_case c1 = {"clam_mb", 512, 45, 3, 2, false, 31};
  run_oracle(&c1);
  struct oracle_case c2 = {"clam_mb", 256, 33, 3, 1, true, 32};
  run_oracle(&c2);
  struct oracle_case c3 = {"clam_mb", 1024, 9, 2, 1, false, 33};
  run_oracle(&c3);
}

/* ---- (b) Gradients by finite differences --------------------------------------------------------- */

static double loss_value(ts_mil *m, const ts_tensor *bag, int64_t label) {
  ts_mil_out r = {0};
  ts_tensor *loss = NULL;
  double v = NAN;
  ts_nn_guard *g = NULL;
  if (ts_nn_no_grad_begin(&g) == 0 && ts_mil_forward(m, bag, false, &label, &r) == 0 &&
      ts_mil_loss(m, &r, (double)label, &loss) == 0)
    ts_tensor_item(loss, &v);
  ts_nn_guard_end(&g);
  ts_mil_out_free(&r);
  ts_tensor_free(&loss);
  return v;
}

/* Set element j of t (float64) to v without autograd. */
static void set_elem(ts_tensor *t, int64_t j, double v) {
  int64_t n = ts_tensor_numel(t), shape[TS_NN_MAX_DIMS];
  int nd = ts_tensor_shape(t, shape, TS_NN_MAX_DIMS);
  double *buf = malloc((size_t)n * sizeof *buf);
  ts_tensor *src = NULL;
  CU_ASSERT_FATAL(buf && ts_tensor_copy_to(t, buf, (size_t)n * sizeof *buf, TS_NN_F64) == 0);
  buf[j] = v;
  CU_ASSERT_EQUAL(ts_tensor_from_data(buf, TS_NN_F64, shape, nd, &src), 0);
  CU_ASSERT_EQUAL(ts_tensor_copy_(t, src), 0);
  ts_tensor_free(&src);
  free(buf);
}

static void gradcheck(const char *arch, int n_classes, int64_t n, bool subtyping) {
  ts_mil_opts o;
  ts_mil_opts_default(&o);
  o.in_dim = 6, o.n_classes = n_classes, o.hidden = 8, o.attn_dim = 5, o.k_sample = 2, o.seed = 5;
  o.dtype = TS_NN_F64, o.subtyping = subtyping;
  ts_mil *m = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_mil_new(arch, &o, &m), 0);
  ts_tensor *bag = randn_bag(n, 6, 77, TS_NN_F64), *loss = NULL;
  int64_t label = n_classes - 1;
  ts_mil_out r = {0};
  CU_ASSERT_EQUAL_FATAL(ts_mil_forward(m, bag, false, &label, &r), 0);
  CU_ASSERT_EQUAL_FATAL(ts_mil_loss(m, &r, (double)label, &loss), 0);
  CU_ASSERT_EQUAL_FATAL(ts_tensor_backward(loss), 0);
  const ts_tensor *const *p;
  int np;
  CU_ASSERT_EQUAL_FATAL(ts_mil_params(m, &p, &np), 0);
  CU_ASSERT_EQUAL(np, ts_nn_state_count(ts_mil_state(m)));
  double worst = 0;
  int checked = 0, nonzero = 0;
  const double eps = 1e-6;
  for (int i = 0; i < np; i++) {
    ts_tensor *t = (ts_tensor *)p[i], *g = NULL;
    int64_t numel = ts_tensor_numel(t);
    double *gv = malloc((size_t)numel * sizeof *gv), *w = malloc((size_t)numel * sizeof *w);
    int grc = ts_tensor_grad(t, &g);
    /* instance classifiers of classes not in the loss get no gradient: their FD is 0 */
    if (grc == 0) CU_ASSERT_EQUAL(ts_tensor_copy_to(g, gv, (size_t)numel * sizeof *gv, TS_NN_F64), 0);
    if (grc < 0) memset(gv, 0, (size_t)numel * sizeof *gv);
    CU_ASSERT_EQUAL(ts_tensor_copy_to(t, w, (size_t)numel * sizeof *w, TS_NN_F64), 0);
    int64_t picks[3] = {0, numel / 2, numel - 1};
    for (int q = 0; q < 3; q++) {
      int64_t j = picks[q];
      set_elem(t, j, w[j] + eps);
      double lp = loss_value(m, bag, label);
      set_elem(t, j, w[j] - eps);
      double lm = loss_value(m, bag, label);
      set_elem(t, j, w[j]);
      double fd = (lp - lm) / (2 * eps);
      double err = fabs(fd - gv[j]) / fmax(1e-3, fabs(fd) + fabs(gv[j]));
      if (err > worst) worst = err;
      if (err > 1e-6)
        fprintf(stderr, "\n%s %s[%lld]: analytic %.10g, fd %.10g\n", arch,
                ts_nn_state_name(ts_mil_state(m), i), (long long)j, gv[j], fd);
      checked++;
      nonzero += fabs(gv[j]) > 1e-8;
    }
    ts_tensor_free(&g);
    free(gv), free(w);
  }
  fprintf(stderr, "[%s: %d entries, %d nonzero, worst rel err %.2g] ", arch, checked, nonzero, worst);
  CU_ASSERT(worst < 1e-6);
  CU_ASSERT(nonzero > checked / 2);
  ts_mil_out_free(&r);
  ts_tensor_free(&loss);
  ts_tensor_free(&bag);
  ts_mil_free(&m);
}

static void test_mil_gradients_finite_differences(void) {
  gradcheck("abmil", 3, 7, false);
  gradcheck("clam_sb", 2, 7, false);
  gradcheck("clam_sb", 3, 6, true);
  gradcheck("clam_mb", 3, 7, false);
  gradcheck("clam_mb", 3, 5, true);
}

/* ---- (c) Small bags, shapes, errors ----------------------------------------------------------------- */

static void test_mil_small_bags(void) {
  const char *archs[2] = {"clam_sb", "clam_mb"};
  const int64_t sizes[4] = {1, 2, 3, 15}; /* 15 = 2k - 1 for k_sample 8 */
  for (int a = 0; a < 2; a++) {
    ts_mil *m = new_model(archs[a], 64, 3, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    const ts_tensor *const *p;
    int np;
    ts_optim *opt = NULL;
    CU_ASSERT_EQUAL_FATAL(ts_mil_params(m, &p, &np), 0);
    CU_ASSERT_EQUAL_FATAL(ts_optim_adamw_new(p, np, 1e-3, 0.9, 0.999, 1e-8, 1e-5, &opt), 0);
    for (int s = 0; s < 4; s++) {
      ts_tensor *bag = randn_bag(sizes[s], 64, 100 + s, TS_NN_F32), *loss = NULL;
      int64_t label = s % 3;
      ts_mil_out r = {0};
      for (int training = 1; training >= 0; training--) {
        int rc = ts_mil_forward(m, bag, training, &label, &r);
        if (rc < 0) fprintf(stderr, "\n%s N=%lld: %s\n", archs[a], (long long)sizes[s], ts_error_message());
        CU_ASSERT_EQUAL_FATAL(rc, 0);
        CU_ASSERT_EQUAL(ts_tensor_size(r.a_raw, -1), sizes[s]);
        CU_ASSERT_EQUAL(ts_tensor_size(r.logits, 1), 3);
        double v = NAN;
        CU_ASSERT_PTR_NOT_NULL_FATAL(r.inst_loss);
        CU_ASSERT_EQUAL(ts_tensor_item(r.inst_loss, &v), 0);
        CU_ASSERT(isfinite(v));
        if (sizes[s] == 1) CU_ASSERT_EQUAL(v, 0.0);
        if (sizes[s] > 1) CU_ASSERT(v > 0);
        CU_ASSERT_EQUAL_FATAL(ts_mil_loss(m, &r, (double)label, &loss), 0);
        if (training) {
          CU_ASSERT_EQUAL(ts_optim_zero_grad(opt), 0);
          CU_ASSERT_EQUAL(ts_tensor_backward(loss), 0);
          CU_ASSERT_EQUAL(ts_optim_step(opt), 0);
        }
        ts_tensor_free(&loss);
      }
      /* inference without a label: no instance loss; the struct is reused (released first) */
      CU_ASSERT_EQUAL(ts_mil_forward(m, bag, false, NULL, &r), 0);
      CU_ASSERT_PTR_NULL(r.inst_loss);
      ts_mil_out_free(&r);
      ts_mil_out_free(&r);
      ts_tensor_free(&bag);
    }
    ts_optim_free(&opt);
    ts_mil_free(&m);
  }
  /* ABMIL on a 1-tile bag: attention 1, the bag embedding is the tile's */
  ts_mil *m = new_model("abmil", 32, 2, 4);
  ts_tensor *bag = randn_bag(1, 32, 9, TS_NN_F32);
  ts_mil_out r = {0};
  CU_ASSERT_EQUAL(ts_mil_forward(m, bag, true, NULL, &r), 0);
  CU_ASSERT_EQUAL(ts_tensor_numel(r.a_raw), 1);
  ts_mil_out_free(&r);
  ts_tensor_free(&bag);
  ts_mil_free(&m);
}

static void test_mil_errors(void) {
  ts_mil *m = new_model("clam_sb", 1024, 2, 1), *bad = (ts_mil *)&bad;
  ts_tensor *bag = randn_bag(10, 512, 1, TS_NN_F32), *ok = randn_bag(10, 1024, 2, TS_NN_F32), *loss = NULL;
  ts_mil_out r = {0};
  /* a bag of another width: NN_SHAPE naming both widths */
  CU_ASSERT_EQUAL(ts_mil_forward(m, bag, false, NULL, &r), TS_EINVAL);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_SHAPE");
  CU_ASSERT(strstr(ts_error_message(), "512") && strstr(ts_error_message(), "1024"));
  CU_ASSERT_PTR_NULL(r.logits);
  /* not a matrix, wrong dtype, label out of range */
  ts_tensor *v = NULL, *d64 = NULL;
  CU_ASSERT_EQUAL(ts_tensor_select(ok, 0, 0, &v), 0);
  CU_ASSERT_EQUAL(ts_mil_forward(m, v, false, NULL, &r), TS_EINVAL);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_SHAPE");
  CU_ASSERT_EQUAL(ts_tensor_to_dtype(ok, TS_NN_F64, &d64), 0);
  CU_ASSERT_EQUAL(ts_mil_forward(m, d64, false, NULL, &r), TS_EINVAL);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_DTYPE");
  int64_t label = 2;
  CU_ASSERT_EQUAL(ts_mil_forward(m, ok, false, &label, &r), TS_EINVAL);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_ARG");
  CU_ASSERT_EQUAL(ts_mil_forward(m, ok, false, NULL, &r), 0);
  CU_ASSERT_EQUAL(ts_mil_loss(m, &r, 0.5, &loss), TS_EINVAL);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_ARG");
  ts_mil_out_free(&r);
  /* options */
  ts_mil_opts o;
  ts_mil_opts_default(&o);
  CU_ASSERT_EQUAL(ts_mil_new("transmi", &o, &bad), TS_ECONFIG);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "MIL_UNKNOWN");
  CU_ASSERT(strstr(ts_error_message(), "abmil, clam_sb, clam_mb") != NULL);
  CU_ASSERT_PTR_NULL(bad);
  o.n_classes = 1;
  CU_ASSERT_EQUAL(ts_mil_new("clam_mb", &o, &bad), TS_EINVAL);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_ARG");
  o.n_classes = 2, o.dropout = 1.0;
  CU_ASSERT_EQUAL(ts_mil_new("abmil", &o, &bad), TS_EINVAL);
  o.dropout = 0.25, o.in_dim = 0;
  CU_ASSERT_EQUAL(ts_mil_new("abmil", &o, &bad), TS_EINVAL);
  /* state: round trip through HDF5, and strict loading that changes nothing on failure */
  char path[512], h1[65], h2[65];
  ts_test_path(path, sizeof path, "rt.h5");
  CU_ASSERT_EQUAL(ts_nn_state_save_h5(ts_mil_state(m), path, ts_mil_arch(m)), 0);
  ts_mil *m2 = new_model("clam_sb", 1024, 2, 99);
  ts_nn_state *src = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_nn_state_load_h5(path, &src), 0);
  CU_ASSERT_EQUAL(ts_mil_load_state(m2, src), 0);
  CU_ASSERT_EQUAL(ts_nn_state_sha256(ts_mil_state(m), h1), 0);
  CU_ASSERT_EQUAL(ts_nn_state_sha256(ts_mil_state(m2), h2), 0);
  CU_ASSERT_STRING_EQUAL(h1, h2);
  ts_mil *m3 = new_model("clam_sb", 1024, 3, 7); /* 3 classes: shapes differ */
  CU_ASSERT_EQUAL(ts_nn_state_sha256(ts_mil_state(m3), h1), 0);
  CU_ASSERT_EQUAL(ts_mil_load_state(m3, src), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_CHECKPOINT");
  CU_ASSERT(strstr(ts_error_message(), "classifiers.weight") != NULL);
  CU_ASSERT_EQUAL(ts_nn_state_sha256(ts_mil_state(m3), h2), 0);
  CU_ASSERT_STRING_EQUAL(h1, h2);
  ts_mil *m4 = new_model("abmil", 1024, 2, 7); /* CLAM-SB's state has instance classifiers too */
  CU_ASSERT_EQUAL(ts_mil_load_state(m4, src), TS_EINPUT);
  CU_ASSERT(strstr(ts_error_message(), "instance_classifiers.0.weight") != NULL);
  /* same seed, same weights; another seed, others */
  ts_mil *m5 = new_model("clam_sb", 1024, 2, 1);
  CU_ASSERT_EQUAL(ts_nn_state_sha256(ts_mil_state(m), h1), 0);
  CU_ASSERT_EQUAL(ts_nn_state_sha256(ts_mil_state(m5), h2), 0);
  CU_ASSERT_STRING_EQUAL(h1, h2);
  /* regression ABMIL: one output, MSE */
  o.in_dim = 1024, o.n_classes = 1;
  ts_mil *reg = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_mil_new("abmil", &o, &reg), 0);
  CU_ASSERT_EQUAL(ts_mil_forward(reg, ok, false, NULL, &r), 0);
  CU_ASSERT_EQUAL(ts_tensor_size(r.logits, 1), 1);
  CU_ASSERT_EQUAL(ts_mil_loss(reg, &r, 0.37, &loss), 0);
  double pred = 0, l = 0;
  CU_ASSERT_EQUAL(ts_tensor_item(r.logits, &pred), 0);
  CU_ASSERT_EQUAL(ts_tensor_item(loss, &l), 0);
  CU_ASSERT_DOUBLE_EQUAL(l, (pred - 0.37) * (pred - 0.37), 1e-6);
  ts_mil_out_free(&r);
  ts_tensor_free(&loss);
  ts_mil_free(&reg);
  ts_nn_state_free(&src);
  ts_tensor_free(&v), ts_tensor_free(&d64), ts_tensor_free(&bag), ts_tensor_free(&ok);
  ts_mil_free(&m), ts_mil_free(&m2), ts_mil_free(&m3), ts_mil_free(&m4), ts_mil_free(&m5);
  ts_mil_free(&m5); /* NULL is fine */
}

/* ---- (d) Learning ------------------------------------------------------------------------------------ */

#define SD 16
#define SHIFT 1.5
/* A bag of 8..12 N(0, I) instances; positive bags hold 1-2 instances of N(1.5·1, I) (6 sd away along the
 * diagonal). */
static ts_tensor *synth_bag(uint64_t *s, bool positive) {
  int64_t n = 8 + (int64_t)(ts_test_rng_unif(s) * 5);
  int n_pos = positive ? 1 + (ts_test_rng_unif(s) < 0.5) : 0;
  float *x = malloc((size_t)n * SD * sizeof *x);
  for (int64_t i = 0; i < n; i++)
    for (int j = 0; j < SD; j++)
      x[i * SD + j] = (float)(ts_test_rng_normal(s) + (i < n_pos ? SHIFT : 0.0));
  /* put the positive instances anywhere */
  for (int k = 0; k < n_pos; k++) {
    int64_t to = (int64_t)(ts_test_rng_unif(s) * n);
    for (int j = 0; j < SD; j++) {
      float t = x[k * SD + j];
      x[k * SD + j] = x[to * SD + j];
      x[to * SD + j] = t;
    }
  }
  int64_t shape[2] = {n, SD};
  ts_tensor *t = NULL;
  CU_ASSERT_EQUAL(ts_tensor_from_data(x, TS_NN_F32, shape, 2, &t), 0);
  free(x);
  return t;
}

/* Mann-Whitney AUC with ties counted 1/2. */
static double auc(const double *score, const int *y, int n) {
  double num = 0;
  long pos = 0, neg = 0;
  for (int i = 0; i < n; i++) {
    if (!y[i]) continue;
    pos++;
    for (int j = 0; j < n; j++)
      if (!y[j]) num += score[i] > score[j] ? 1 : score[i] == score[j] ? 0.5 : 0;
  }
  for (int i = 0; i < n; i++)
    neg += !y[i];
  return num / (double)(pos * neg);
}

static void test_mil_abmil_learns(void) {
  enum { NTRAIN = 40, NTEST = 40, EPOCHS = 15 };
  uint64_t s = 2024;
  ts_tensor *train[NTRAIN], *test[NTEST];
  int ytr[NTRAIN], yte[NTEST];
  for (int i = 0; i < NTRAIN; i++)
    ytr[i] = i % 2, train[i] = synth_bag(&s, ytr[i]);
  for (int i = 0; i < NTEST; i++)
    yte[i] = i % 2, test[i] = synth_bag(&s, yte[i]);
  ts_mil *m = new_model("abmil", SD, 2, 8);
  const ts_tensor *const *p;
  int np;
  ts_optim *opt = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_mil_params(m, &p, &np), 0);
  CU_ASSERT_EQUAL_FATAL(ts_optim_adamw_new(p, np, 5e-4, 0.9, 0.999, 1e-8, 1e-4, &opt), 0);
  double first = 0, last = 0;
  for (int e = 0; e < EPOCHS; e++) {
    CU_ASSERT_EQUAL(ts_nn_manual_seed(1000 + (uint64_t)e), 0); /* dropout: per epoch */
    double sum = 0;
    for (int k = 0; k < NTRAIN; k++) {
      int i = (k * 7 + e * 3) % NTRAIN; /* a fixed shuffle per epoch */
      ts_mil_out r = {0};
      ts_tensor *loss = NULL;
      double v = 0;
      CU_ASSERT_EQUAL_FATAL(ts_mil_forward(m, train[i], true, NULL, &r), 0);
      CU_ASSERT_EQUAL_FATAL(ts_mil_loss(m, &r, ytr[i], &loss), 0);
      CU_ASSERT_EQUAL(ts_optim_zero_grad(opt), 0);
      CU_ASSERT_EQUAL(ts_tensor_backward(loss), 0);
      CU_ASSERT_EQUAL(ts_optim_step(opt), 0);
      CU_ASSERT_EQUAL(ts_tensor_item(loss, &v), 0);
      sum += v;
      ts_mil_out_free(&r);
      ts_tensor_free(&loss);
    }
    if (e == 0) first = sum / NTRAIN;
    last = sum / NTRAIN;
  }
  double score[NTEST];
  ts_nn_guard *g = NULL;
  CU_ASSERT_EQUAL(ts_nn_inference_mode_begin(&g), 0);
  for (int i = 0; i < NTEST; i++) {
    ts_mil_out r = {0};
    ts_tensor *pr = NULL;
    float pv[2] = {0, 0};
    CU_ASSERT_EQUAL_FATAL(ts_mil_forward(m, test[i], false, NULL, &r), 0);
    CU_ASSERT_EQUAL(ts_nn_softmax(r.logits, 1, &pr), 0);
    CU_ASSERT_EQUAL(ts_tensor_copy_to(pr, pv, sizeof pv, TS_NN_F32), 0);
    score[i] = pv[1];
    ts_tensor_free(&pr);
    ts_mil_out_free(&r);
  }
  ts_nn_guard_end(&g);
  double a = auc(score, yte, NTEST);
  fprintf(stderr, "[train loss %.3f -> %.3f, test AUC %.3f] ", first, last, a);
  CU_ASSERT(last < 0.6 * first);
  CU_ASSERT(a > 0.9);
  for (int i = 0; i < NTRAIN; i++)
    ts_tensor_free(&train[i]);
  for (int i = 0; i < NTEST; i++)
    ts_tensor_free(&test[i]);
  ts_optim_free(&opt);
  ts_mil_free(&m);
}

int ts_test_register(void) {
  CU_pSuite s = CU_add_suite("mil", suite_init, ts_test_tmpdir_remove);
  if (!s) return -1;
  if (!CU_add_test(s, "test_mil_abmil_matches_torch", test_mil_abmil_matches_torch) ||
      !CU_add_test(s, "test_mil_clam_sb_matches_torch", test_mil_clam_sb_matches_torch) ||
      !CU_add_test(s, "test_mil_clam_mb_matches_torch", test_mil_clam_mb_matches_torch) ||
      !CU_add_test(s, "test_mil_gradients_finite_differences", test_mil_gradients_finite_differences) ||
      !CU_add_test(s, "test_mil_small_bags", test_mil_small_bags) ||
      !CU_add_test(s, "test_mil_errors", test_mil_errors) ||
      !CU_add_test(s, "test_mil_abmil_learns", test_mil_abmil_learns))
    return -1;
  return 0;
}
