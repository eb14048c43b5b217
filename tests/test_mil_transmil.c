/* test_mil_transmil.c — TransMIL (nn/mil_transmil.c) against an oracle and finite differences.
 *
 * - forward oracle: the model built in C from a seed, its state dict saved to HDF5 and loaded by
 *   name (strict) into TransMIL written below in plain torch (Debian's python3-torch 1.13; the
 *   nystrom_attention package is not installed, so its NystromAttention is written out after
 *   lucidrains/nystrom-attention's published code, >= 0.0.10) with the module tree of
 *   szc19990412/TransMIL models/TransMIL.py: the state's names and order are the torch module's,
 *   and eval-mode logits and a_raw (the cls row of layer2's A1 A2⁺ A3 over the real tiles, head
 *   mean, from the full matrix the reference returns with return_attn) agree within 1e-4 in
 *   float32 on bags of 1, 7, 50 and 300 tiles (L = 512: 256 landmarks, 1 or 2 tokens per
 *   landmark), and within 1e-10 in float64 on a small model (several tokens per landmark);
 * - gradients: central finite differences in float64 of the cross-entropy w.r.t. entries of
 *   every weight tensor, on a small bag;
 * - bags of 1, 2, 3 and 10 tiles train and evaluate, a_raw has one value per real tile;
 *   options that TransMIL cannot take fail NN_ARG;
 * - training smoke: the training loss falls on synthetic bags; the time of a 1000-tile bag's
 *   forward and backward at the paper's sizes is printed.
 */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ts_mil.h"
#include "ts_nn.h"
#include "ts_test_util.h"

static int suite_init(void) {
  if (ts_test_tmpdir_make("ts_test_mil_transmil") < 0) return -1;
  return ts_nn_set_num_threads(2) == 0 ? 0 : -1;
}


static ts_tensor *randn_bag(int64_t n, int64_t d, uint64_t seed, int dtype) {
  int64_t s[2] = {n, d};
  ts_tensor *t = NULL;
  CU_ASSERT_EQUAL(ts_tensor_randn(s, 2, dtype, seed, &t), 0);
  return t;
}

static ts_mil *new_transmil(int64_t in_dim, int64_t hidden, int n_classes, uint64_t seed, int dtype) {
  ts_mil_opts o;
  ts_mil_opts_default(&o);
  o.in_dim = in_dim, o.hidden = hidden, o.n_classes = n_classes, o.seed = seed, o.dtype = dtype;
  ts_mil *m = NULL;
  int rc = ts_mil_new("transmil", &o, &m);
  if (rc < 0) fprintf(stderr, "\n%s\n", ts_error_message());
  CU_ASSERT_EQUAL(rc, 0);
  return m;
}

/* max |t - want| over n values (as double), and max |want| in *scale_out. */
static double max_abs_diff(const ts_tensor *t, const double *want, size_t n, double *scale_out) {
  double *got = calloc(n ? n : 1, sizeof *got), worst = INFINITY, scale = 0;
  if (got && (size_t)ts_tensor_numel(t) == n && ts_tensor_copy_to(t, got, n * sizeof *got, TS_NN_F64) == 0) {
    worst = 0;
    for (size_t i = 0; i < n; i++) {
      worst = fmax(worst, fabs(got[i] - want[i]));
      scale = fmax(scale, fabs(want[i]));
    }
  }
  free(got);
  if (scale_out) *scale_out = scale;
  return worst;
}

/* ---- (a) Forward against torch ------------------------------------------------------------------- */

/* The reference, written from TransMIL.py's module tree and nystrom-attention's NystromAttention
 * (not from tessera's C). CASES (prepended) lists each case's sizes and dtype; case i reads
 * model<i>.h5 and bag<i>.bin and writes keys<i>.txt, want_logits<i>.bin, want_araw<i>.bin. */
static const char *ORACLE_PY =
    "import math, numpy as np, h5py, torch, torch.nn as nn, torch.nn.functional as F\n"
    "torch.set_num_threads(2)\n"
    "\n"
    "def moore_penrose_iter_pinv(x, iters=6):\n"
    "    abs_x = torch.abs(x)\n"
    "    col = abs_x.sum(dim=-1)\n"
    "    row = abs_x.sum(dim=-2)\n"
    "    z = x.transpose(-1, -2) / (torch.max(col) * torch.max(row))\n"
    "    I = torch.eye(x.shape[-1])[None]\n"
    "    for _ in range(iters):\n"
    "        xz = x @ z\n"
    "        z = 0.25 * z @ (13 * I - (xz @ (15 * I - (xz @ (7 * I - xz)))))\n"
    "    return z\n"
    "\n"
    "class NystromAttention(nn.Module):  # lucidrains/nystrom-attention, no mask\n"
    "    def __init__(self, dim, dim_head=64, heads=8, num_landmarks=256, pinv_iterations=6,\n"
    "                 residual=True, residual_conv_kernel=33, eps=1e-8, dropout=0.):\n"
    "        super().__init__()\n"
    "        inner_dim = heads * dim_head\n"
    "        self.num_landmarks, self.pinv_iterations, self.heads = num_landmarks, pinv_iterations, heads\n"
    "        self.scale = dim_head ** -0.5\n"
    "        self.to_qkv = nn.Linear(dim, inner_dim * 3, bias=False)\n"
    "        self.to_out = nn.Sequential(nn.Linear(inner_dim, dim), nn.Dropout(dropout))\n"
    "        k = residual_conv_kernel\n"
    "        self.res_conv = nn.Conv2d(heads, heads, (k, 1), padding=(k // 2, 0), groups=heads, bias=False)\n"
    "    def forward(self, x, return_attn=False):\n"
    "        b, n, _ = x.shape\n"
    "        h, m, iters = self.heads, self.num_landmarks, self.pinv_iterations\n"
    "        if n % m > 0:\n"
    "            x = F.pad(x, (0, 0, m - n % m, 0), value=0)\n"
    "        q, k, v = self.to_qkv(x).chunk(3, dim=-1)\n"
    "        # rearrange 'b n (h d) -> b h n d'\n"
    "        q, k, v = [t.reshape(b, t.shape[1], h, -1).permute(0, 2, 1, 3) for t in (q, k, v)]\n"
    "        q = q * self.scale\n"
    "        l = math.ceil(n / m)\n"
    "        # reduce '... (n l) d -> ... n d', 'sum'\n"
    "        q_landmarks = q.reshape(b, h, m, l, -1).sum(dim=3)\n"
    "        k_landmarks = k.reshape(b, h, m, l, -1).sum(dim=3)\n"
    "        q_landmarks = q_landmarks / l\n"
    "        k_landmarks = k_landmarks / l\n"
    "        eq = '...id,...jd->...ij'\n"
    "        sim1 = torch.einsum(eq, q, k_landmarks)\n"
    "        sim2 = torch.einsum(eq, q_landmarks, k_landmarks)\n"
    "        sim3 = torch.einsum(eq, q_landmarks, k)\n"
    "        attn1, attn2, attn3 = [t.softmax(dim=-1) for t in (sim1, sim2, sim3)]\n"
    "        attn2_inv = moore_penrose_iter_pinv(attn2, iters)\n"
    "        out = (attn1 @ attn2_inv) @ (attn3 @ v)\n"
    "        out = out + self.res_conv(v)\n"
    "        out = out.permute(0, 2, 1, 3).reshape(b, out.shape[2], -1)  # 'b h n d -> b n (h d)'\n"
    "        out = self.to_out(out)\n"
    "        out = out[:, -n:]\n"
    "        if return_attn:\n"
    "            return out, attn1 @ attn2_inv @ attn3\n"
    "        return out\n"
    "\n"
    "class TransLayer(nn.Module):\n"
    "    def __init__(self, norm_layer=nn.LayerNorm, dim=512):\n"
    "        super().__init__()\n"
    "        self.norm = norm_layer(dim)\n"
    "        self.attn = NystromAttention(dim=dim, dim_head=dim // 8, heads=8, num_landmarks=dim // 2,\n"
    "                                     pinv_iterations=6, residual=True, dropout=0.1)\n"
    "    def forward(self, x, return_attn=False):\n"
    "        if return_attn:\n"
    "            o, a = self.attn(self.norm(x), return_attn=True)\n"
    "            return x + o, a\n"
    "        return x + self.attn(self.norm(x))\n"
    "\n"
    "class PPEG(nn.Module):\n"
    "    def __init__(self, dim=512):\n"
    "        super().__init__()\n"
    "        self.proj = nn.Conv2d(dim, dim, 7, 1, 7 // 2, groups=dim)\n"
    "        self.proj1 = nn.Conv2d(dim, dim, 5, 1, 5 // 2, groups=dim)\n"
    "        self.proj2 = nn.Conv2d(dim, dim, 3, 1, 3 // 2, groups=dim)\n"
    "    def forward(self, x, H, W):\n"
    "        B, _, C = x.shape\n"
    "        cls_token, feat_token = x[:, 0], x[:, 1:]\n"
    "        cnn_feat = feat_token.transpose(1, 2).view(B, C, H, W)\n"
    "        x = self.proj(cnn_feat) + cnn_feat + self.proj1(cnn_feat) + self.proj2(cnn_feat)\n"
    "        x = x.flatten(2).transpose(1, 2)\n"
    "        return torch.cat((cls_token.unsqueeze(1), x), dim=1)\n"
    "\n"
    "class TransMIL(nn.Module):  # models/TransMIL.py, with D -> L instead of 1024 -> 512\n"
    "    def __init__(self, n_classes, D, L):\n"
    "        super().__init__()\n"
    "        self.pos_layer = PPEG(dim=L)\n"
    "        self._fc1 = nn.Sequential(nn.Linear(D, L), nn.ReLU())\n"
    "        self.cls_token = nn.Parameter(torch.randn(1, 1, L))\n"
    "        self.n_classes = n_classes\n"
    "        self.layer1 = TransLayer(dim=L)\n"
    "        self.layer2 = TransLayer(dim=L)\n"
    "        self.norm = nn.LayerNorm(L)\n"
    "        self._fc2 = nn.Linear(L, self.n_classes)\n"
    "    def forward(self, data):\n"
    "        h = self._fc1(data)\n"
    "        H = h.shape[1]\n"
    "        _H, _W = int(np.ceil(np.sqrt(H))), int(np.ceil(np.sqrt(H)))\n"
    "        add_length = _H * _W - H\n"
    "        h = torch.cat([h, h[:, :add_length, :]], dim=1)\n"
    "        h = torch.cat((self.cls_token.expand(h.shape[0], -1, -1), h), dim=1)\n"
    "        h = self.layer1(h)\n"
    "        h = self.pos_layer(h, _H, _W)\n"
    "        n = h.shape[1]\n"
    "        h, attn = self.layer2(h, return_attn=True)\n"
    "        h = self.norm(h)[:, 0]\n"
    "        logits = self._fc2(h)\n"
    "        # a_raw: the cls query's row of layer2's attention, keys of the N real tiles, head mean\n"
    "        pad = attn.shape[-1] - n\n"
    "        a_raw = attn[0, :, pad, pad + 1:pad + 1 + H].mean(0)\n"
    "        return logits, a_raw\n"
    "\n"
    "for i, case in enumerate(CASES):\n"
    "    D, L, C, N = case['D'], case['L'], case['C'], case['N']\n"
    "    dt = torch.float64 if case['f64'] else torch.float32\n"
    "    model = TransMIL(C, D, L).to(dt)\n"
    "    keys = list(model.state_dict().keys())\n"
    "    with h5py.File('model%d.h5' % i, 'r') as f:\n"
    "        g = f['state_dict']\n"
    "        sd = {n: torch.from_numpy(np.array(g[n])).to(dt) for n in g.keys()}\n"
    "    model.load_state_dict(sd, strict=True)\n"
    "    model.eval()\n"
    "    open('keys%d.txt' % i, 'w').write('\\n'.join(keys) + '\\n')\n"
    "    x = torch.from_numpy(np.fromfile('bag%d.bin' % i, dtype='<f8').reshape(1, N, D)).to(dt)\n"
    "    with torch.no_grad():\n"
    "        logits, a_raw = model(x)\n"
    "    logits.double().numpy().astype('<f8').tofile('want_logits%d.bin' % i)\n"
    "    a_raw.double().numpy().astype('<f8').tofile('want_araw%d.bin' % i)\n";

struct oracle_case {
  int64_t in_dim, hidden, n;
  int n_classes;
  int dtype;
  uint64_t seed;
  double tol;
};

/* Case i: the model and the bag into model<i>.h5 and bag<i>.bin (float64); the bag back in *bag_out. */
static ts_mil *prepare(const struct oracle_case *c, int i, ts_tensor **bag_out) {
  char name[64], path[512];
  ts_mil *m = new_transmil(c->in_dim, c->hidden, c->n_classes, c->seed, c->dtype);
  *bag_out = NULL;
  if (!m) return NULL;
  snprintf(name, sizeof name, "model%d.h5", i);
  ts_test_path(path, sizeof path, name);
  CU_ASSERT_EQUAL(ts_nn_state_save_h5(ts_mil_state(m), path, ts_mil_arch(m)), 0);
  ts_tensor *bag = randn_bag(c->n, c->in_dim, c->seed + 1000, c->dtype);
  size_t nb = (size_t)(c->n * c->in_dim);
  double *buf = malloc(nb * sizeof *buf);
  CU_ASSERT(buf && ts_tensor_copy_to(bag, buf, nb * sizeof *buf, TS_NN_F64) == 0);
  snprintf(name, sizeof name, "bag%d.bin", i);
  ts_test_path(path, sizeof path, name);
  FILE *f = fopen(path, "wb");
  CU_ASSERT(f && buf && fwrite(buf, sizeof *buf, nb, f) == nb);
  if (f) fclose(f);
  free(buf);
  *bag_out = bag;
  return m;
}

/* Case i against the reference's keys<i>.txt, want_logits<i>.bin, want_araw<i>.bin. */
static void check(const struct oracle_case *c, int i, ts_mil *m, const ts_tensor *bag) {
  char name[64], *keys = NULL;
  double *want_l = NULL, *want_a = NULL;
  ts_mil_out r = {0};
  /* names and order: the torch module's state_dict() */
  snprintf(name, sizeof name, "keys%d.txt", i);
  keys = ts_test_read(name, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(keys);
  ts_nn_state *s = ts_mil_state(m);
  int k = 0;
  bool same = true;
  for (char *line = strtok(keys, "\n"); line; line = strtok(NULL, "\n"), k++) {
    const char *sn = ts_nn_state_name(s, k);
    if (!sn || strcmp(sn, line) != 0) {
      fprintf(stderr, "\nname %d: torch '%s', tessera '%s'\n", k, line, sn ? sn : "(none)");
      same = false;
      break;
    }
  }
  CU_ASSERT(same);
  CU_ASSERT_EQUAL(k, ts_nn_state_count(s));
  /* eval-mode forward */
  int rc = ts_mil_forward(m, bag, false, NULL, &r);
  if (rc < 0) fprintf(stderr, "\n%s\n", ts_error_message());
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  size_t nl = 0, na = 0;
  snprintf(name, sizeof name, "want_logits%d.bin", i);
  want_l = ts_test_read(name, &nl);
  snprintf(name, sizeof name, "want_araw%d.bin", i);
  want_a = ts_test_read(name, &na);
  CU_ASSERT_FATAL(want_l && want_a && nl == (size_t)c->n_classes * 8 && na == (size_t)c->n * 8);
  CU_ASSERT_EQUAL(ts_tensor_ndim(r.logits), 2);
  CU_ASSERT_EQUAL(ts_tensor_size(r.logits, 0), 1);
  CU_ASSERT_EQUAL(ts_tensor_ndim(r.a_raw), 1);
  CU_ASSERT_EQUAL(ts_tensor_size(r.embedding, 1), c->hidden);
  CU_ASSERT_FALSE(ts_tensor_requires_grad(r.a_raw));
  double sl, sa;
  double dl = max_abs_diff(r.logits, want_l, (size_t)c->n_classes, &sl);
  double da = max_abs_diff(r.a_raw, want_a, (size_t)c->n, &sa);
  fprintf(stderr, "[transmil %s L=%lld N=%lld: |dlogits| %.2g (|logit| <= %.2g), |dA_raw| %.2g (<= %.2g)] ",
          c->dtype == TS_NN_F64 ? "f64" : "f32", (long long)c->hidden, (long long)c->n, dl, sl, da, sa);
  CU_ASSERT(dl < c->tol);
  CU_ASSERT(da < c->tol);
  free(keys), free(want_l), free(want_a);
  ts_mil_out_free(&r);
}

static void test_mil_transmil_matches_torch(void) {
  /* the paper's sizes: L 512, 8 heads of 64, 256 landmarks; D 1024 (resnet50_trunc) and 384 */
  static const struct oracle_case cs[] = {
      {1024, 512, 1, 2, TS_NN_F32, 41, 1e-4},   /* 1 tile: s = 1, 254 zero rows in front */
      {384, 512, 7, 3, TS_NN_F32, 42, 1e-4},    /* s = 3: tiles 0, 1 repeated */
      {384, 512, 50, 2, TS_NN_F32, 43, 1e-4},   /* s = 8: 14 repeated */
      {1024, 512, 300, 2, TS_NN_F32, 44, 1e-4}, /* s = 18: 325 tokens -> 512, 2 per landmark */
      {12, 16, 20, 3, TS_NN_F64, 45, 1e-10},    /* 8 landmarks: 26 tokens -> 32, 4 per landmark */
      {12, 16, 1, 2, TS_NN_F64, 46, 1e-10},
  };
  enum { NC = sizeof cs / sizeof cs[0] };
  ts_mil *m[NC] = {0};
  ts_tensor *bag[NC] = {0};
  char head[1024] = "CASES = [\n", *py = NULL;
  for (int i = 0; i < NC; i++) {
    m[i] = prepare(&cs[i], i, &bag[i]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m[i]);
    size_t len = strlen(head);
    snprintf(head + len, sizeof head - len, "    dict(D=%lld, L=%lld, C=%d, N=%lld, f64=%s),\n",
             (long long)cs[i].in_dim, (long long)cs[i].hidden, cs[i].n_classes, (long long)cs[i].n,
             cs[i].dtype == TS_NN_F64 ? "True" : "False");
  }
  size_t len = strlen(head) + strlen(ORACLE_PY) + 8;
  py = malloc(len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(py);
  snprintf(py, len, "%s]\n%s", head, ORACLE_PY);
  CU_ASSERT_EQUAL_FATAL(ts_test_python("oracle.py", py), 0); /* one interpreter for all cases */
  free(py);
  for (int i = 0; i < NC; i++) {
    check(&cs[i], i, m[i], bag[i]);
    ts_tensor_free(&bag[i]);
    ts_mil_free(&m[i]);
  }
}

/* ---- (b) Gradients by finite differences --------------------------------------------------------- */

static double loss_value(ts_mil *m, const ts_tensor *bag, int64_t label) {
  ts_mil_out r = {0};
  ts_tensor *loss = NULL;
  double v = NAN;
  ts_nn_guard *g = NULL;
  if (ts_nn_no_grad_begin(&g) == 0 && ts_mil_forward(m, bag, false, NULL, &r) == 0 &&
      ts_mil_loss(m, &r, (double)label, &loss) == 0)
    ts_tensor_item(loss, &v);
  ts_nn_guard_end(&g);
  ts_mil_out_free(&r);
  ts_tensor_free(&loss);
  return v;
}

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

static void gradcheck(int64_t n) {
  /* L 16: 8 heads of 2, 8 landmarks; n 7: s = 3, 10 tokens -> 16, 2 per landmark */
  ts_mil *m = new_transmil(6, 16, 3, 5, TS_NN_F64);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  ts_tensor *bag = randn_bag(n, 6, 77 + (uint64_t)n, TS_NN_F64), *loss = NULL;
  int64_t label = 2;
  ts_mil_out r = {0};
  CU_ASSERT_EQUAL_FATAL(ts_mil_forward(m, bag, false, NULL, &r), 0);
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
    double *gv = calloc((size_t)numel, sizeof *gv), *w = malloc((size_t)numel * sizeof *w);
    CU_ASSERT_EQUAL(ts_tensor_grad(t, &g), 0);
    if (g) CU_ASSERT_EQUAL(ts_tensor_copy_to(g, gv, (size_t)numel * sizeof *gv, TS_NN_F64), 0);
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
        fprintf(stderr, "\ntransmil %s[%lld]: analytic %.10g, fd %.10g\n",
                ts_nn_state_name(ts_mil_state(m), i), (long long)j, gv[j], fd);
      checked++;
      nonzero += fabs(gv[j]) > 1e-8;
    }
    ts_tensor_free(&g);
    free(gv), free(w);
  }
  fprintf(stderr, "[transmil N=%lld: %d entries of %d tensors, %d nonzero, worst rel err %.2g] ",
          (long long)n, checked, np, nonzero, worst);
  CU_ASSERT(worst < 1e-6);
  CU_ASSERT(nonzero > checked / 2);
  ts_mil_out_free(&r);
  ts_tensor_free(&loss);
  ts_tensor_free(&bag);
  ts_mil_free(&m);
}

static void test_mil_transmil_gradients_finite_differences(void) {
  gradcheck(7);
  gradcheck(1);
}

/* ---- (c) Small bags, options --------------------------------------------------------------------- */

static void test_mil_transmil_small_bags(void) {
  ts_mil *m = new_transmil(32, 64, 2, 3, TS_NN_F32);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  const ts_tensor *const *p;
  int np;
  ts_optim *opt = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_mil_params(m, &p, &np), 0);
  CU_ASSERT_EQUAL(np, 25);
  CU_ASSERT_EQUAL_FATAL(ts_optim_adamw_new(p, np, 1e-3, 0.9, 0.999, 1e-8, 1e-5, &opt), 0);
  const int64_t sizes[4] = {1, 2, 3, 10};
  for (int s = 0; s < 4; s++) {
    ts_tensor *bag = randn_bag(sizes[s], 32, 200 + s, TS_NN_F32), *loss = NULL;
    ts_mil_out r = {0};
    for (int training = 1; training >= 0; training--) {
      int rc = ts_mil_forward(m, bag, training, NULL, &r);
      if (rc < 0) fprintf(stderr, "\nN=%lld: %s\n", (long long)sizes[s], ts_error_message());
      CU_ASSERT_EQUAL_FATAL(rc, 0);
      CU_ASSERT_EQUAL(ts_tensor_numel(r.a_raw), sizes[s]);
      CU_ASSERT_EQUAL(ts_tensor_size(r.logits, 1), 2);
      CU_ASSERT_PTR_NULL(r.inst_loss);
      double a[10], lg[2];
      CU_ASSERT_EQUAL(ts_tensor_copy_to(r.a_raw, a, (size_t)sizes[s] * sizeof(double), TS_NN_F64), 0);
      CU_ASSERT_EQUAL(ts_tensor_copy_to(r.logits, lg, sizeof lg, TS_NN_F64), 0);
      for (int i = 0; i < sizes[s]; i++)
        CU_ASSERT(isfinite(a[i]));
      CU_ASSERT(isfinite(lg[0]) && isfinite(lg[1]));
      CU_ASSERT_EQUAL_FATAL(ts_mil_loss(m, &r, (double)(s % 2), &loss), 0);
      if (training) {
        CU_ASSERT_EQUAL(ts_optim_zero_grad(opt), 0);
        CU_ASSERT_EQUAL(ts_tensor_backward(loss), 0);
        CU_ASSERT_EQUAL(ts_optim_step(opt), 0);
      }
      ts_tensor_free(&loss);
    }
    ts_mil_out_free(&r);
    ts_tensor_free(&bag);
  }
  ts_optim_free(&opt);
  ts_mil_free(&m);
  /* options: hidden must give 8 heads (hidden / 8) and hidden / 2 landmarks */
  ts_mil_opts o;
  ts_mil_opts_default(&o);
  ts_mil *bad = NULL;
  o.hidden = 100;
  CU_ASSERT_EQUAL(ts_mil_new("transmil", &o, &bad), TS_EINVAL);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_ARG");
  CU_ASSERT(strstr(ts_error_message(), "hidden 100") != NULL);
  o.hidden = 8;
  CU_ASSERT_EQUAL(ts_mil_new("transmil", &o, &bad), TS_EINVAL);
  CU_ASSERT_PTR_NULL(bad);
  /* same seed, same weights */
  ts_mil *a = new_transmil(32, 64, 2, 9, TS_NN_F32), *b = new_transmil(32, 64, 2, 9, TS_NN_F32);
  char h1[65], h2[65];
  CU_ASSERT_EQUAL(ts_nn_state_sha256(ts_mil_state(a), h1), 0);
  CU_ASSERT_EQUAL(ts_nn_state_sha256(ts_mil_state(b), h2), 0);
  CU_ASSERT_STRING_EQUAL(h1, h2);
  ts_mil_free(&a), ts_mil_free(&b);
}

/* ---- (d) Training smoke and speed ------------------------------------------------------------------- */

#define SD 16
/* 8..16 N(0, I) instances; positive bags hold 1-2 instances shifted by 1.5 along the diagonal. */
static ts_tensor *synth_bag(uint64_t *s, bool positive) {
  int64_t n = 8 + (int64_t)(ts_test_rng_unif(s) * 9);
  int n_pos = positive ? 1 + (ts_test_rng_unif(s) < 0.5) : 0;
  float *x = malloc((size_t)n * SD * sizeof *x);
  for (int64_t i = 0; i < n; i++)
    for (int j = 0; j < SD; j++)
      x[i * SD + j] = (float)(ts_test_rng_normal(s) + (i < n_pos ? 1.5 : 0.0));
  int64_t shape[2] = {n, SD};
  ts_tensor *t = NULL;
  CU_ASSERT_EQUAL(ts_tensor_from_data(x, TS_NN_F32, shape, 2, &t), 0);
  free(x);
  return t;
}

static void test_mil_transmil_learns(void) {
  enum { NTRAIN = 24, EPOCHS = 8 };
  uint64_t s = 2025;
  ts_tensor *train[NTRAIN];
  int y[NTRAIN];
  for (int i = 0; i < NTRAIN; i++)
    y[i] = i % 2, train[i] = synth_bag(&s, y[i]);
  ts_mil *m = new_transmil(SD, 64, 2, 8, TS_NN_F32);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  const ts_tensor *const *p;
  int np;
  ts_optim *opt = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_mil_params(m, &p, &np), 0);
  CU_ASSERT_EQUAL_FATAL(ts_optim_adamw_new(p, np, 2e-4, 0.9, 0.999, 1e-8, 1e-5, &opt), 0);
  double first = 0, last = 0;
  for (int e = 0; e < EPOCHS; e++) {
    CU_ASSERT_EQUAL(ts_nn_manual_seed(500 + (uint64_t)e), 0);
    double sum = 0;
    for (int k = 0; k < NTRAIN; k++) {
      int i = (k * 7 + e * 5) % NTRAIN;
      ts_mil_out r = {0};
      ts_tensor *loss = NULL;
      double v = 0;
      CU_ASSERT_EQUAL_FATAL(ts_mil_forward(m, train[i], true, NULL, &r), 0);
      CU_ASSERT_EQUAL_FATAL(ts_mil_loss(m, &r, y[i], &loss), 0);
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
  fprintf(stderr, "[train loss %.3f -> %.3f over %d epochs] ", first, last, EPOCHS);
  CU_ASSERT(isfinite(last));
  CU_ASSERT(last < 0.8 * first);
  for (int i = 0; i < NTRAIN; i++)
    ts_tensor_free(&train[i]);
  ts_optim_free(&opt);
  ts_mil_free(&m);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_mil_transmil_speed(void) {
  ts_mil *m = new_transmil(1024, 512, 2, 1, TS_NN_F32);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  ts_tensor *bag = randn_bag(1000, 1024, 3, TS_NN_F32), *loss = NULL;
  ts_mil_out r = {0};
  double best_f = INFINITY, best_fb = INFINITY;
  for (int rep = 0; rep < 2; rep++) {
    double t0 = now_s();
    CU_ASSERT_EQUAL_FATAL(ts_mil_forward(m, bag, true, NULL, &r), 0);
    CU_ASSERT_EQUAL_FATAL(ts_mil_loss(m, &r, 1, &loss), 0);
    double t1 = now_s();
    CU_ASSERT_EQUAL(ts_tensor_backward(loss), 0);
    double t2 = now_s();
    best_f = fmin(best_f, t1 - t0);
    best_fb = fmin(best_fb, t2 - t0);
    ts_tensor_free(&loss);
    ts_mil_out_free(&r);
  }
  fprintf(stderr, "[1000 tiles x 1024, L 512, %d threads: forward %.0f ms, forward+backward %.0f ms] ",
          ts_nn_get_num_threads(), 1e3 * best_f, 1e3 * best_fb);
  ts_tensor_free(&bag);
  ts_mil_free(&m);
}

int ts_test_register(void) {
  CU_pSuite s = CU_add_suite("mil_transmil", suite_init, ts_test_tmpdir_remove);
  if (!s) return -1;
  if (!CU_add_test(s, "test_mil_transmil_matches_torch", test_mil_transmil_matches_torch) ||
      !CU_add_test(s, "test_mil_transmil_gradients_finite_differences",
                   test_mil_transmil_gradients_finite_differences) ||
      !CU_add_test(s, "test_mil_transmil_small_bags", test_mil_transmil_small_bags) ||
      !CU_add_test(s, "test_mil_transmil_learns", test_mil_transmil_learns) ||
      !CU_add_test(s, "test_mil_transmil_speed", test_mil_transmil_speed))
    return -1;
  return 0;
}
