/* test_nn.c — the LibTorch C API (nn/ts_nn.h).
 *
 * - every op with a backward: analytic gradients against central finite differences in float64
 *   (ggml's test-backend-ops idea), loss = sum(op(inputs) * R) for a fixed random R;
 * - buffers in and out (float32/16, uint8, int64) bit for bit, views, errors with their tokens,
 *   the CUDA-absent path (Debian's LibTorch is CPU-only);
 * - autograd scopes, SGD-momentum and AdamW training a small MLP until its loss is low, the
 *   learning-rate schedules;
 * - HDF5 state dicts: save → load bitwise, read back by h5py (Debian's /usr/bin/python3);
 * - TorchScript written by Debian's python3-torch in the test, same output in C as in Python.
 */
#include <CUnit/Basic.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ts_test_util.h"
#include "ts_nn.h"

static int suite_init(void) {
  if (ts_test_tmpdir_make("ts_test_nn") < 0) return -1;
  return ts_nn_set_num_threads(2) == 0 ? 0 : -1;
}

/* ---- Buffers, views, errors ---------------------------------------------------------------- */

static void test_nn_buffers_roundtrip(void) {
  const int dtypes[4] = {TS_NN_F32, TS_NN_F16, TS_NN_U8, TS_NN_I64};
  unsigned char in[6 * 8], back[6 * 8];
  for (size_t i = 0; i < sizeof in; i++)
    in[i] = (unsigned char)(i * 37 + 11);
  /* float16/32: keep the bit patterns finite: build them from values. */
  float f32[6] = {0.5f, -1.25f, 3.0f, 1e-3f, -7.5f, 65504.0f};
  uint16_t f16[6] = {0x3800, 0xbd00, 0x4200, 0x1419, 0xc780, 0x7bff};
  int64_t i64[6] = {-3, 0, 1, INT64_MAX, INT64_MIN, 42};
  const void *src[4] = {f32, f16, in, i64};
  int64_t shape[2] = {2, 3};
  for (int k = 0; k < 4; k++) {
    ts_tensor *t = NULL;
    size_t nb = 6 * ts_nn_dtype_size(dtypes[k]);
    CU_ASSERT_EQUAL_FATAL(ts_tensor_from_data(src[k], dtypes[k], shape, 2, &t), 0);
    CU_ASSERT_EQUAL(ts_tensor_dtype(t), dtypes[k]);
    CU_ASSERT_EQUAL(ts_tensor_numel(t), 6);
    CU_ASSERT_EQUAL(ts_tensor_size(t, -1), 3);
    CU_ASSERT_EQUAL(ts_tensor_device(t), TS_NN_CPU);
    memset(back, 0, sizeof back);
    CU_ASSERT_EQUAL(ts_tensor_copy_to(t, back, nb, dtypes[k]), 0);
    CU_ASSERT(memcmp(back, src[k], nb) == 0);
    /* wrong size → NN_SHAPE */
    CU_ASSERT_EQUAL(ts_tensor_copy_to(t, back, nb - 1, dtypes[k]), TS_EINVAL);
    CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_SHAPE");
    ts_tensor_free(&t);
    CU_ASSERT_PTR_NULL(t);
  }
  /* float16 → float32 conversion on the way out */
  ts_tensor *h = NULL;
  float got[6];
  CU_ASSERT_EQUAL_FATAL(ts_tensor_from_data(f16, TS_NN_F16, shape, 2, &h), 0);
  CU_ASSERT_EQUAL(ts_tensor_copy_to(h, got, sizeof got, TS_NN_F32), 0);
  for (int i = 0; i < 6; i++)
    CU_ASSERT_DOUBLE_EQUAL(got[i], f32[i], fabs(f32[i]) * 1e-3);
  ts_tensor_free(&h);
  ts_tensor_free(&h); /* double free of a NULLed handle is fine */
}

static void test_nn_views(void) {
  float v[24];
  for (int i = 0; i < 24; i++)
    v[i] = (float)i;
  int64_t s[3] = {2, 3, 4}, r[2] = {6, -1}, bad[2] = {5, 5}, perm[3] = {2, 0, 1};
  ts_tensor *t = NULL, *a = NULL, *b = NULL, *c = NULL, *d = NULL, *idx = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_tensor_from_data(v, TS_NN_F32, s, 3, &t), 0);
  CU_ASSERT_EQUAL(ts_tensor_reshape(t, r, 2, &a), 0);
  CU_ASSERT_EQUAL(ts_tensor_size(a, 1), 4);
  CU_ASSERT_NOT_EQUAL(ts_tensor_reshape(t, bad, 2, &b), 0);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_SHAPE");
  CU_ASSERT_PTR_NULL(b);
  /* t[1, 1:3, 2] = 18, 22 */
  float out2[2];
  CU_ASSERT_EQUAL(ts_tensor_select(t, 0, 1, &b), 0);
  CU_ASSERT_EQUAL(ts_tensor_narrow(b, 0, 1, 2, &c), 0);
  CU_ASSERT_EQUAL(ts_tensor_select(c, 1, 2, &d), 0);
  CU_ASSERT_EQUAL(ts_tensor_copy_to(d, out2, sizeof out2, TS_NN_F32), 0);
  CU_ASSERT(out2[0] == 18 && out2[1] == 22);
  ts_tensor_free(&b), ts_tensor_free(&c), ts_tensor_free(&d);
  /* permute: [4, 2, 3], element [3][1][2] = t[1][2][3] = 23 */
  float all[24];
  CU_ASSERT_EQUAL(ts_tensor_permute(t, perm, 3, &b), 0);
  CU_ASSERT_EQUAL(ts_tensor_size(b, 0), 4);
  CU_ASSERT_EQUAL(ts_tensor_copy_to(b, all, sizeof all, TS_NN_F32), 0);
  CU_ASSERT(all[3 * 6 + 1 * 3 + 2] == 23);
  /* index_select rows 1, 0 of the 6×4 view */
  int64_t iv[2] = {1, 0}, is = 2;
  float rows[8];
  CU_ASSERT_EQUAL(ts_tensor_from_data(iv, TS_NN_I64, &is, 1, &idx), 0);
  CU_ASSERT_EQUAL(ts_tensor_index_select(a, 0, idx, &c), 0);
  CU_ASSERT_EQUAL(ts_tensor_copy_to(c, rows, sizeof rows, TS_NN_F32), 0);
  CU_ASSERT(rows[0] == 4 && rows[4] == 0);
  /* views share storage: writing through fill_ on a narrow changes t */
  CU_ASSERT_EQUAL(ts_tensor_narrow(t, 2, 0, 1, &d), 0);
  CU_ASSERT_EQUAL(ts_tensor_fill_(d, -1.0), 0);
  CU_ASSERT_EQUAL(ts_tensor_copy_to(t, all, sizeof all, TS_NN_F32), 0);
  CU_ASSERT(all[0] == -1 && all[4] == -1 && all[1] == 1);
  /* unsqueeze / squeeze / flatten */
  ts_tensor *u = NULL, *q = NULL, *fl = NULL;
  CU_ASSERT_EQUAL(ts_tensor_unsqueeze(t, 0, &u), 0);
  CU_ASSERT_EQUAL(ts_tensor_ndim(u), 4);
  CU_ASSERT_EQUAL(ts_tensor_squeeze(u, 0, &q), 0);
  CU_ASSERT_EQUAL(ts_tensor_ndim(q), 3);
  CU_ASSERT_EQUAL(ts_tensor_flatten(t, 1, -1, &fl), 0);
  CU_ASSERT_EQUAL(ts_tensor_size(fl, 1), 12);
  ts_tensor *fs[] = {t, a, b, c, d, idx, u, q, fl};
  for (int i = 0; i < 9; i++)
    ts_tensor_free(&fs[i]);
}

static void test_nn_errors_and_device(void) {
  ts_tensor *t = NULL, *o = (ts_tensor *)&o;
  int64_t s[2] = {2, 3}, s2[2] = {4, 5};
  /* NULL input: NN_ARG, and *out reset to NULL */
  CU_ASSERT_EQUAL(ts_nn_relu(NULL, &o), TS_EINVAL);
  CU_ASSERT_PTR_NULL(o);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_ARG");
  CU_ASSERT(strstr(ts_error_message(), "ts_nn_relu") != NULL);
  /* shape mismatch raised inside LibTorch */
  ts_tensor *a = NULL, *b = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_tensor_zeros(s, 2, TS_NN_F32, &a), 0);
  CU_ASSERT_EQUAL_FATAL(ts_tensor_zeros(s2, 2, TS_NN_F32, &b), 0);
  CU_ASSERT(ts_nn_matmul(a, b, &o) < 0);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_SHAPE");
  CU_ASSERT(ts_nn_linear(a, b, NULL, &o) < 0);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_SHAPE");
  CU_ASSERT(ts_tensor_zeros(s, 2, 99, &o) < 0);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_DTYPE");
  CU_ASSERT(ts_tensor_backward(a) < 0); /* not a scalar */
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_SHAPE");
  CU_ASSERT(ts_tensor_grad(a, &o) < 0);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_NO_GRAD");
  /* CUDA: absent in Debian's LibTorch; asking for it is an NN_DEVICE error, not a crash */
  if (!ts_nn_cuda_available()) {
    CU_ASSERT_EQUAL(ts_nn_cuda_device_count(), 0);
    CU_ASSERT_EQUAL(ts_tensor_to_device(a, 0, &t), TS_EINVAL);
    CU_ASSERT_PTR_NULL(t);
    CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_DEVICE");
    CU_ASSERT(strstr(ts_error_message(), "CUDA") != NULL);
    ts_jit_module *m = NULL;
    CU_ASSERT_EQUAL(ts_jit_load("/nonexistent.pt", 0, &m), TS_EINVAL);
    CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_DEVICE");
  } else {
    CU_ASSERT_EQUAL(ts_tensor_to_device(a, 0, &t), 0);
    CU_ASSERT_EQUAL(ts_tensor_device(t), 0);
    ts_tensor_free(&t);
  }
  CU_ASSERT_EQUAL(ts_tensor_to_device(a, TS_NN_CPU, &t), 0);
  ts_tensor_free(&t);
  ts_tensor_free(&a);
  ts_tensor_free(&b);
}

static void test_nn_threads_seed_deterministic(void) {
  /* the BLAS that LibTorch's convolutions use here (OpenBLAS) follows the thread count: its own
   * pool would otherwise use every core (and spin) whatever LibTorch was told */
  int (*blas_threads)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "openblas_get_num_threads");
  CU_ASSERT_PTR_NOT_NULL_FATAL(blas_threads); /* Debian's libtorch links OpenBLAS (setup.sh) */
  CU_ASSERT_EQUAL(ts_nn_set_num_threads(1), 0);
  CU_ASSERT_EQUAL(blas_threads(), 1);
  CU_ASSERT_EQUAL(ts_nn_set_num_threads(2), 0);
  CU_ASSERT_EQUAL(blas_threads(), 2);
  CU_ASSERT_EQUAL(ts_nn_get_num_threads(), 2);
  CU_ASSERT_EQUAL(ts_nn_set_num_threads(0), TS_EINVAL);
  CU_ASSERT_EQUAL(ts_nn_set_deterministic(true), 0);
  CU_ASSERT(ts_nn_get_deterministic());
  CU_ASSERT_EQUAL(ts_nn_set_deterministic(false), 0);
  CU_ASSERT(!ts_nn_get_deterministic());
  CU_ASSERT(strncmp(ts_nn_version(), "1.", 2) == 0);
  int64_t s[1] = {1000};
  float a[1000], b[1000];
  ts_tensor *x = NULL, *y = NULL;
  CU_ASSERT_EQUAL(ts_tensor_randn(s, 1, TS_NN_F32, 7, &x), 0);
  CU_ASSERT_EQUAL(ts_nn_manual_seed(123), 0);
  CU_ASSERT_EQUAL(ts_tensor_randn(s, 1, TS_NN_F32, 7, &y), 0);
  ts_tensor_copy_to(x, a, sizeof a, TS_NN_F32);
  ts_tensor_copy_to(y, b, sizeof b, TS_NN_F32);
  CU_ASSERT(memcmp(a, b, sizeof a) == 0);
  ts_tensor_free(&x), ts_tensor_free(&y);
  /* the global generator: same seed, same dropout mask */
  ts_tensor *o = NULL, *d1 = NULL, *d2 = NULL;
  CU_ASSERT_EQUAL(ts_tensor_ones(s, 1, TS_NN_F32, &o), 0);
  ts_nn_manual_seed(5);
  CU_ASSERT_EQUAL(ts_nn_dropout(o, 0.5, true, &d1), 0);
  ts_nn_manual_seed(5);
  CU_ASSERT_EQUAL(ts_nn_dropout(o, 0.5, true, &d2), 0);
  ts_tensor_copy_to(d1, a, sizeof a, TS_NN_F32);
  ts_tensor_copy_to(d2, b, sizeof b, TS_NN_F32);
  CU_ASSERT(memcmp(a, b, sizeof a) == 0);
  int zeros = 0;
  for (int i = 0; i < 1000; i++)
    zeros += a[i] == 0.0f;
  CU_ASSERT(zeros > 400 && zeros < 600);
  ts_tensor_free(&o), ts_tensor_free(&d1), ts_tensor_free(&d2);
}

/* ---- Gradient checks ----------------------------------------------------------------------- */

#define GC_MAX_IN 4
typedef int (*gc_fn)(ts_tensor *const *in, ts_tensor **out);

struct gc_case {
  const char *name;
  gc_fn fn;
  int nin;
  int ndim[GC_MAX_IN];
  int64_t shape[GC_MAX_IN][4];
  bool positive; /* inputs in [0.5, 2.5) instead of N(0, 1) */
};

static ts_tensor *R; /* the loss weights of the current case */

static int gc_loss(const struct gc_case *c, double *const *data, bool grad, ts_tensor **in, double *loss) {
  ts_tensor *y = NULL, *yr = NULL, *l = NULL;
  int rc = 0;
  for (int i = 0; i < c->nin; i++) {
    TS_TRY(ts_tensor_from_data(data[i], TS_NN_F64, c->shape[i], c->ndim[i], &in[i]));
    if (grad) TS_TRY(ts_tensor_set_requires_grad(in[i], true));
  }
  TS_TRY(c->fn(in, &y));
  if (!R) {
    int64_t s[TS_NN_MAX_DIMS];
    int nd = ts_tensor_shape(y, s, TS_NN_MAX_DIMS);
    TS_TRY(ts_tensor_randn(s, nd, TS_NN_F64, 99, &R));
  }
  TS_TRY(ts_nn_mul(y, R, &yr));
  TS_TRY(ts_nn_sum(yr, TS_NN_ALL_DIMS, false, &l));
  TS_TRY(ts_tensor_item(l, loss));
  if (grad) TS_TRY(ts_tensor_backward(l));
out:
  ts_tensor_free(&y), ts_tensor_free(&yr), ts_tensor_free(&l);
  return rc;
}

static void gradcheck(const struct gc_case *c) {
  double *data[GC_MAX_IN] = {0};
  int64_t numel[GC_MAX_IN];
  ts_tensor *in[GC_MAX_IN] = {0};
  double loss, lp, lm, worst = 0;
  R = NULL;
  for (int i = 0; i < c->nin; i++) {
    ts_tensor *r = NULL;
    numel[i] = 1;
    for (int k = 0; k < c->ndim[i]; k++)
      numel[i] *= c->shape[i][k];
    data[i] = malloc((size_t)numel[i] * sizeof(double));
    if (c->positive)
      ts_tensor_rand(c->shape[i], c->ndim[i], TS_NN_F64, 1000 + (uint64_t)i, &r);
    else
      ts_tensor_randn(c->shape[i], c->ndim[i], TS_NN_F64, 1000 + (uint64_t)i, &r);
    ts_tensor_copy_to(r, data[i], (size_t)numel[i] * sizeof(double), TS_NN_F64);
    if (c->positive)
      for (int64_t j = 0; j < numel[i]; j++)
        data[i][j] = 0.5 + 2.0 * data[i][j];
    ts_tensor_free(&r);
  }
  int rc = gc_loss(c, data, true, in, &loss);
  if (rc < 0) fprintf(stderr, "\n%s: %s\n", c->name, ts_error_message());
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  const double eps = 1e-6;
  for (int i = 0; i < c->nin; i++) {
    ts_tensor *g = NULL, *tmp[GC_MAX_IN] = {0};
    double *ga = malloc((size_t)numel[i] * sizeof(double));
    rc = ts_tensor_grad(in[i], &g);
    if (rc < 0) fprintf(stderr, "\n%s input %d: %s\n", c->name, i, ts_error_message());
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    ts_tensor_copy_to(g, ga, (size_t)numel[i] * sizeof(double), TS_NN_F64);
    for (int64_t j = 0; j < numel[i]; j++) {
      double keep = data[i][j];
      data[i][j] = keep + eps;
      CU_ASSERT_EQUAL_FATAL(gc_loss(c, data, false, tmp, &lp), 0);
      for (int k = 0; k < c->nin; k++)
        ts_tensor_free(&tmp[k]);
      data[i][j] = keep - eps;
      CU_ASSERT_EQUAL_FATAL(gc_loss(c, data, false, tmp, &lm), 0);
      for (int k = 0; k < c->nin; k++)
        ts_tensor_free(&tmp[k]);
      data[i][j] = keep;
      double num = (lp - lm) / (2 * eps);
      double err = fabs(num - ga[j]) / (1e-3 + fabs(num));
      if (err > worst) worst = err;
      if (err > 1e-5) {
        fprintf(stderr, "\ngradcheck %s: input %d element %lld: analytic %.10g numeric %.10g\n", c->name, i,
                (long long)j, ga[j], num);
        CU_FAIL("gradient mismatch");
        j = numel[i];
      }
    }
    free(ga);
    ts_tensor_free(&g);
  }
  for (int i = 0; i < c->nin; i++) {
    ts_tensor_free(&in[i]);
    free(data[i]);
  }
  ts_tensor_free(&R);
}

static const int64_t ONE2[2] = {1, 1}, ZERO2[2] = {0, 0};

static int op_linear(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_linear(x[0], x[1], x[2], o);
}
static int op_conv(ts_tensor *const *x, ts_tensor **o) {
  int64_t st[2] = {2, 1}, pad[2] = {1, 1};
  return ts_nn_conv2d(x[0], x[1], x[2], st, pad, ONE2, 1, o);
}
static int op_conv_groups(ts_tensor *const *x, ts_tensor **o) {
  int64_t dil[2] = {2, 2};
  return ts_nn_conv2d(x[0], x[1], NULL, ONE2, ZERO2, dil, 2, o);
}
static int op_bn_train(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_batch_norm(x[0], x[1], x[2], NULL, NULL, true, 0.1, 1e-5, o);
}
static int op_bn_eval(ts_tensor *const *x, ts_tensor **o) {
  int64_t c = 3;
  ts_tensor *rm = NULL, *rv = NULL;
  int rc = ts_tensor_full(&c, 1, TS_NN_F64, 0.3, &rm);
  if (!rc) rc = ts_tensor_full(&c, 1, TS_NN_F64, 1.7, &rv);
  if (!rc) rc = ts_nn_batch_norm(x[0], x[1], x[2], rm, rv, false, 0.1, 1e-5, o);
  ts_tensor_free(&rm), ts_tensor_free(&rv);
  return rc;
}
static int op_layer_norm(ts_tensor *const *x, ts_tensor **o) {
  int64_t s[1] = {5};
  return ts_nn_layer_norm(x[0], s, 1, x[1], x[2], 1e-5, o);
}
static int op_maxpool(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_max_pool2d(x[0], 3, 2, 1, o);
}
static int op_avgpool(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_avg_pool2d(x[0], 3, 1, 1, o);
}
static int op_adaptive(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_adaptive_avg_pool2d(x[0], 2, 3, o);
}
static int op_bilinear(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_interpolate_bilinear(x[0], 5, 4, false, o);
}
static int op_softmax(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_softmax(x[0], 1, o);
}
static int op_log_softmax(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_log_softmax(x[0], -1, o);
}
static int op_matmul(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_matmul(x[0], x[1], o);
}
static int op_add(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_add(x[0], x[1], o);
}
static int op_sub(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_sub(x[0], x[1], o);
}
static int op_mul(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_mul(x[0], x[1], o);
}
static int op_div(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_div(x[0], x[1], o);
}
static int op_add_s(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_add_scalar(x[0], 0.7, o);
}
static int op_mul_s(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_mul_scalar(x[0], -1.3, o);
}
static int op_pow_s(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_pow_scalar(x[0], 1.5, o);
}
static int op_relu(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_relu(x[0], o);
}
static int op_gelu(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_gelu(x[0], o);
}
static int op_tanh(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_tanh(x[0], o);
}
static int op_sigmoid(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_sigmoid(x[0], o);
}
static int op_exp(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_exp(x[0], o);
}
static int op_log(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_log(x[0], o);
}
static int op_neg(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_neg(x[0], o);
}
static int op_sqrt(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_sqrt(x[0], o);
}
static int op_abs(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_abs(x[0], o);
}
static int op_cat(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_cat((const ts_tensor *const *)x, 2, 0, o);
}
static int op_stack(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_stack((const ts_tensor *const *)x, 2, 1, o);
}
static int op_sum(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_sum(x[0], 1, false, o);
}
static int op_sum_all(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_sum(x[0], TS_NN_ALL_DIMS, false, o);
}
static int op_mean(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_mean(x[0], 0, true, o);
}
static int op_max(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_max(x[0], 1, false, o);
}
static int op_lse(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_logsumexp(x[0], 1, true, o);
}
static int op_lse_all(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_logsumexp(x[0], TS_NN_ALL_DIMS, false, o);
}
static int op_cumsum(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_cumsum(x[0], 0, o);
}
static int op_lcse(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_logcumsumexp(x[0], 0, o);
}
static int op_dropout(ts_tensor *const *x, ts_tensor **o) {
  ts_nn_manual_seed(11); /* the same mask at every evaluation */
  return ts_nn_dropout(x[0], 0.3, true, o);
}
static int op_normalize(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_normalize(x[0], 2.0, 1, 1e-12, o);
}
static int op_mse(ts_tensor *const *x, ts_tensor **o) {
  return ts_nn_mse_loss(x[0], x[1], o);
}
static int op_xent(ts_tensor *const *x, ts_tensor **o) {
  int64_t t[3] = {2, 0, 3}, n = 3;
  ts_tensor *tt = NULL;
  int rc = ts_tensor_from_data(t, TS_NN_I64, &n, 1, &tt);
  if (rc == 0) rc = ts_nn_cross_entropy(x[0], tt, o);
  ts_tensor_free(&tt);
  return rc;
}
static int op_views(ts_tensor *const *x, ts_tensor **o) {
  /* permute → narrow → reshape → transpose → select → index_select */
  int64_t perm[3] = {2, 0, 1}, shp[2] = {-1, 3}, iv[3] = {2, 0, 2}, n3 = 3;
  ts_tensor *a = NULL, *b = NULL, *c = NULL, *d = NULL, *idx = NULL;
  int rc = 0;
  TS_TRY(ts_tensor_permute(x[0], perm, 3, &a));
  TS_TRY(ts_tensor_narrow(a, 0, 1, 2, &b));
  ts_tensor_free(&a);
  TS_TRY(ts_tensor_reshape(b, shp, 2, &a));
  TS_TRY(ts_tensor_transpose(a, 0, 1, &c));
  TS_TRY(ts_tensor_select(c, 0, 1, &d));
  TS_TRY(ts_tensor_from_data(iv, TS_NN_I64, &n3, 1, &idx));
  TS_TRY(ts_tensor_index_select(d, 0, idx, o));
out:
  ts_tensor_free(&a), ts_tensor_free(&b), ts_tensor_free(&c), ts_tensor_free(&d), ts_tensor_free(&idx);
  return rc;
}

static const struct gc_case GC_CASES[] = {
    {"linear", op_linear, 3, {2, 2, 1}, {{3, 4}, {2, 4}, {2}}, false},
    {"conv2d", op_conv, 3, {4, 4, 1}, {{2, 2, 5, 4}, {3, 2, 3, 3}, {3}}, false},
    {"conv2d_groups_dilation", op_conv_groups, 2, {4, 4}, {{1, 4, 6, 6}, {2, 2, 2, 2}}, false},
    {"batch_norm_train", op_bn_train, 3, {4, 1, 1}, {{3, 2, 2, 2}, {2}, {2}}, false},
    {"batch_norm_eval", op_bn_eval, 3, {2, 1, 1}, {{4, 3}, {3}, {3}}, false},
    {"layer_norm", op_layer_norm, 3, {2, 1, 1}, {{3, 5}, {5}, {5}}, false},
    {"max_pool2d", op_maxpool, 1, {4}, {{1, 2, 5, 5}}, false},
    {"avg_pool2d", op_avgpool, 1, {4}, {{1, 2, 4, 4}}, false},
    {"adaptive_avg_pool2d", op_adaptive, 1, {4}, {{1, 2, 5, 7}}, false},
    {"interpolate_bilinear", op_bilinear, 1, {4}, {{1, 2, 3, 3}}, false},
    {"softmax", op_softmax, 1, {2}, {{3, 4}}, false},
    {"log_softmax", op_log_softmax, 1, {2}, {{3, 4}}, false},
    {"matmul", op_matmul, 2, {3, 2}, {{2, 2, 3}, {3, 4}}, false},
    {"add_broadcast", op_add, 2, {2, 1}, {{2, 3}, {3}}, false},
    {"sub", op_sub, 2, {2, 2}, {{2, 3}, {2, 3}}, false},
    {"mul", op_mul, 2, {2, 2}, {{2, 3}, {1, 3}}, false},
    {"div", op_div, 2, {2, 2}, {{2, 3}, {2, 3}}, true},
    {"add_scalar", op_add_s, 1, {2}, {{2, 3}}, false},
    {"mul_scalar", op_mul_s, 1, {2}, {{2, 3}}, false},
    {"pow_scalar", op_pow_s, 1, {2}, {{2, 3}}, true},
    {"relu", op_relu, 1, {2}, {{4, 5}}, false},
    {"gelu", op_gelu, 1, {2}, {{4, 5}}, false},
    {"tanh", op_tanh, 1, {2}, {{4, 5}}, false},
    {"sigmoid", op_sigmoid, 1, {2}, {{4, 5}}, false},
    {"exp", op_exp, 1, {2}, {{4, 5}}, false},
    {"log", op_log, 1, {2}, {{4, 5}}, true},
    {"neg", op_neg, 1, {2}, {{4, 5}}, false},
    {"sqrt", op_sqrt, 1, {2}, {{4, 5}}, true},
    {"abs", op_abs, 1, {2}, {{4, 5}}, false},
    {"cat", op_cat, 2, {2, 2}, {{2, 3}, {1, 3}}, false},
    {"stack", op_stack, 2, {2, 2}, {{2, 3}, {2, 3}}, false},
    {"sum_dim", op_sum, 1, {3}, {{2, 3, 2}}, false},
    {"sum_all", op_sum_all, 1, {3}, {{2, 3, 2}}, false},
    {"mean_keepdim", op_mean, 1, {2}, {{4, 3}}, false},
    {"max_dim", op_max, 1, {2}, {{4, 5}}, false},
    {"logsumexp_dim", op_lse, 1, {2}, {{4, 5}}, false},
    {"logsumexp_all", op_lse_all, 1, {2}, {{4, 5}}, false},
    {"cumsum", op_cumsum, 1, {2}, {{5, 2}}, false},
    {"logcumsumexp", op_lcse, 1, {2}, {{5, 2}}, false},
    {"dropout", op_dropout, 1, {2}, {{6, 5}}, false},
    {"normalize_l2", op_normalize, 1, {2}, {{3, 4}}, false},
    {"mse_loss", op_mse, 2, {2, 2}, {{3, 2}, {3, 2}}, false},
    {"cross_entropy", op_xent, 1, {2}, {{3, 4}}, false},
    {"views", op_views, 1, {3}, {{2, 3, 4}}, false},
};

static void test_nn_gradcheck_all_ops(void) {
  for (size_t i = 0; i < sizeof GC_CASES / sizeof GC_CASES[0]; i++)
    gradcheck(&GC_CASES[i]);
}

/* ---- Autograd scopes, optimisers, schedules ------------------------------------------------ */

static void test_nn_grad_guards(void) {
  int64_t s[1] = {3};
  ts_tensor *w = NULL, *y = NULL, *z = NULL, *g = NULL;
  ts_nn_guard *gd = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_tensor_ones(s, 1, TS_NN_F32, &w), 0);
  CU_ASSERT_EQUAL(ts_tensor_set_requires_grad(w, true), 0);
  CU_ASSERT(ts_nn_grad_enabled());
  CU_ASSERT_EQUAL(ts_nn_no_grad_begin(&gd), 0);
  CU_ASSERT(!ts_nn_grad_enabled());
  CU_ASSERT_EQUAL(ts_nn_mul_scalar(w, 2.0, &y), 0);
  CU_ASSERT(!ts_tensor_requires_grad(y));
  ts_nn_guard_end(&gd);
  CU_ASSERT_PTR_NULL(gd);
  CU_ASSERT(ts_nn_grad_enabled());
  ts_tensor_free(&y);
  CU_ASSERT_EQUAL(ts_nn_inference_mode_begin(&gd), 0);
  CU_ASSERT(!ts_nn_grad_enabled());
  CU_ASSERT_EQUAL(ts_nn_mul_scalar(w, 2.0, &y), 0);
  CU_ASSERT(!ts_tensor_requires_grad(y));
  ts_nn_guard_end(&gd);
  ts_tensor_free(&y);
  /* grad accumulates; zero_grad clears */
  CU_ASSERT_EQUAL(ts_nn_sum(w, TS_NN_ALL_DIMS, false, &y), 0);
  CU_ASSERT_EQUAL(ts_tensor_backward(y), 0);
  ts_tensor_free(&y);
  CU_ASSERT_EQUAL(ts_nn_sum(w, TS_NN_ALL_DIMS, false, &y), 0);
  CU_ASSERT_EQUAL(ts_tensor_backward(y), 0);
  float gv[3];
  CU_ASSERT_EQUAL(ts_tensor_grad(w, &g), 0);
  ts_tensor_copy_to(g, gv, sizeof gv, TS_NN_F32);
  CU_ASSERT(gv[0] == 2.0f && gv[2] == 2.0f);
  CU_ASSERT_EQUAL(ts_tensor_zero_grad(w), 0);
  CU_ASSERT_NOT_EQUAL(ts_tensor_grad(w, &z), 0);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_NO_GRAD");
  /* optimisers refuse non-leaf / no-grad parameters */
  ts_optim *o = NULL;
  const ts_tensor *ps[1] = {y};
  CU_ASSERT_EQUAL(ts_optim_sgd_new(ps, 1, 0.1, 0.9, 0, false, &o), TS_EINVAL);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_ARG");
  ts_tensor_free(&w), ts_tensor_free(&y), ts_tensor_free(&g), ts_tensor_free(&z);
}

static void test_nn_lr_schedules(void) {
  CU_ASSERT_DOUBLE_EQUAL(ts_lr_cosine_warmup(0, 100, 10, 1.0, 0.0), 0.1, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(ts_lr_cosine_warmup(9, 100, 10, 1.0, 0.0), 1.0, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(ts_lr_cosine_warmup(10, 100, 10, 1.0, 0.0), 1.0, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(ts_lr_cosine_warmup(55, 100, 10, 1.0, 0.0), 0.5, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(ts_lr_cosine_warmup(100, 100, 10, 1.0, 0.01), 0.01, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(ts_lr_cosine_warmup(500, 100, 10, 1.0, 0.01), 0.01, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(ts_lr_step_decay(0, 30, 0.1, 1.0), 1.0, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(ts_lr_step_decay(29, 30, 0.1, 1.0), 1.0, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(ts_lr_step_decay(30, 30, 0.1, 1.0), 0.1, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(ts_lr_step_decay(65, 30, 0.1, 1.0), 0.01, 1e-12);
}

/* Two-class "two moons"-like toy: label = x0 * x1 > 0 (XOR of signs), not linearly separable.
 * MLP 2 → 32 → 2 (GELU, layer norm, dropout), cross entropy; trained until loss < 0.15. */
static double train_xor(bool adamw, int steps) {
  enum { N = 256, H = 32 };
  float xs[N * 2];
  int64_t ys[N];
  ts_tensor *X = NULL, *Y = NULL, *w1 = NULL, *b1 = NULL, *w2 = NULL, *b2 = NULL, *r = NULL;
  ts_optim *opt = NULL;
  double loss = 1e9;
  int64_t sx[2] = {N, 2}, sy[1] = {N}, s1[2] = {H, 2}, sb1[1] = {H}, s2[2] = {2, H}, sb2[1] = {2},
          hn[1] = {H};
  ts_tensor_rand(sx, 2, TS_NN_F32, 5, &r);
  ts_tensor_copy_to(r, xs, sizeof xs, TS_NN_F32);
  ts_tensor_free(&r);
  for (int i = 0; i < N; i++) {
    xs[2 * i] = 2 * xs[2 * i] - 1;
    xs[2 * i + 1] = 2 * xs[2 * i + 1] - 1;
    ys[i] = xs[2 * i] * xs[2 * i + 1] > 0;
  }
  ts_tensor_from_data(xs, TS_NN_F32, sx, 2, &X);
  ts_tensor_from_data(ys, TS_NN_I64, sy, 1, &Y);
  ts_tensor_randn(s1, 2, TS_NN_F32, 11, &r);
  ts_nn_mul_scalar(r, 0.7, &w1);
  ts_tensor_free(&r);
  ts_tensor_randn(s2, 2, TS_NN_F32, 12, &r);
  ts_nn_mul_scalar(r, 0.2, &w2);
  ts_tensor_free(&r);
  ts_tensor_zeros(sb1, 1, TS_NN_F32, &b1);
  ts_tensor_zeros(sb2, 1, TS_NN_F32, &b2);
  ts_tensor *ps[4] = {w1, b1, w2, b2};
  for (int i = 0; i < 4; i++)
    ts_tensor_set_requires_grad(ps[i], true);
  const double base = adamw ? 0.03 : 0.2;
  int rc = adamw ? ts_optim_adamw_new((const ts_tensor *const *)ps, 4, base, 0.9, 0.999, 1e-8, 1e-4, &opt)
                 : ts_optim_sgd_new((const ts_tensor *const *)ps, 4, base, 0.9, 1e-4, true, &opt);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  ts_nn_manual_seed(3);
  for (int step = 0; step < steps && rc == 0; step++) {
    ts_tensor *h = NULL, *hn_ = NULL, *a = NULL, *d = NULL, *lg = NULL, *l = NULL;
    rc = ts_optim_set_lr(opt, ts_lr_cosine_warmup(step, steps, steps / 10, base, base * 0.05));
    if (!rc) rc = ts_nn_linear(X, w1, b1, &h);
    if (!rc) rc = ts_nn_layer_norm(h, hn, 1, NULL, NULL, 1e-5, &hn_);
    if (!rc) rc = ts_nn_gelu(hn_, &a);
    if (!rc) rc = ts_nn_dropout(a, 0.05, true, &d);
    if (!rc) rc = ts_nn_linear(d, w2, b2, &lg);
    if (!rc) rc = ts_nn_cross_entropy(lg, Y, &l);
    if (!rc) rc = ts_optim_zero_grad(opt);
    if (!rc) rc = ts_tensor_backward(l);
    if (!rc) rc = ts_optim_step(opt);
    if (!rc) rc = ts_tensor_item(l, &loss);
    ts_tensor *fr[] = {h, hn_, a, d, lg, l};
    for (int k = 0; k < 6; k++)
      ts_tensor_free(&fr[k]);
  }
  if (rc) fprintf(stderr, "\ntrain: %s\n", ts_error_message());
  CU_ASSERT_EQUAL(rc, 0);
  ts_optim_free(&opt);
  CU_ASSERT_PTR_NULL(opt);
  ts_tensor *fr[] = {X, Y, w1, b1, w2, b2};
  for (int k = 0; k < 6; k++)
    ts_tensor_free(&fr[k]);
  return loss;
}

static void test_nn_train_mlp_adamw(void) {
  double loss = train_xor(true, 400);
  fprintf(stderr, "[AdamW final loss %.4f] ", loss);
  CU_ASSERT(loss < 0.15);
}

static void test_nn_train_mlp_sgd_momentum(void) {
  double loss = train_xor(false, 400);
  fprintf(stderr, "[SGD final loss %.4f] ", loss);
  CU_ASSERT(loss < 0.15);
}

/* ---- HDF5 state dicts ---------------------------------------------------------------------- */

static void test_nn_state_h5_roundtrip(void) {
  ts_nn_state *s = NULL, *b = NULL;
  ts_tensor *w = NULL, *bias = NULL, *nbt = NULL, *h = NULL;
  int64_t sw[4] = {4, 3, 3, 3}, sb[1] = {4}, sh[2] = {2, 5}, seven = 7;
  char path[512], h1[65], h2[65];
  ts_test_path(path, sizeof path, "state.h5");
  CU_ASSERT_EQUAL_FATAL(ts_nn_state_new(&s), 0);
  ts_tensor_randn(sw, 4, TS_NN_F32, 1, &w);
  ts_tensor_randn(sb, 1, TS_NN_F32, 2, &bias);
  ts_tensor_from_data(&seven, TS_NN_I64, NULL, 0, &nbt);
  ts_tensor_randn(sh, 2, TS_NN_F16, 3, &h);
  /* names in state_dict order, deliberately not alphabetical */
  CU_ASSERT_EQUAL(ts_nn_state_add(s, "layer1.0.conv1.weight", w), 0);
  CU_ASSERT_EQUAL(ts_nn_state_add(s, "layer1.0.bn1.bias", bias), 0);
  CU_ASSERT_EQUAL(ts_nn_state_add(s, "layer1.0.bn1.num_batches_tracked", nbt), 0);
  CU_ASSERT_EQUAL(ts_nn_state_add(s, "fc.weight", h), 0);
  CU_ASSERT_EQUAL(ts_nn_state_add(s, "fc.weight", h), TS_EINVAL); /* duplicate */
  CU_ASSERT_EQUAL(ts_nn_state_add(s, "a/b", h), TS_EINVAL);       /* '/' */
  CU_ASSERT_EQUAL(ts_nn_state_save_h5(s, path, "test_arch"), 0);
  CU_ASSERT_EQUAL_FATAL(ts_nn_state_load_h5(path, &b), 0);
  CU_ASSERT_EQUAL_FATAL(ts_nn_state_count(b), 4);
  for (int i = 0; i < 4; i++) {
    CU_ASSERT_STRING_EQUAL(ts_nn_state_name(b, i), ts_nn_state_name(s, i));
    ts_tensor *x = ts_nn_state_tensor(s, i), *y = ts_nn_state_tensor(b, i);
    int dt = ts_tensor_dtype(x) == TS_NN_I64 ? TS_NN_I64 : TS_NN_F32;
    CU_ASSERT_EQUAL(ts_tensor_dtype(y), dt);
    CU_ASSERT_EQUAL(ts_tensor_ndim(x), ts_tensor_ndim(y));
    size_t n = (size_t)ts_tensor_numel(x) * 8;
    void *p = calloc(1, n), *q = calloc(1, n);
    ts_tensor_copy_to(x, p, (size_t)ts_tensor_numel(x) * ts_nn_dtype_size(dt), dt);
    ts_tensor_copy_to(y, q, (size_t)ts_tensor_numel(x) * ts_nn_dtype_size(dt), dt);
    CU_ASSERT(memcmp(p, q, n) == 0); /* bitwise */
    free(p), free(q);
  }
  /* the hash covers names, shapes and bytes: f16 → f32 changes the dtype, so hash a float32 state */
  CU_ASSERT_EQUAL(ts_nn_state_sha256(b, h1), 0);
  ts_nn_state *c = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_nn_state_load_h5(path, &c), 0);
  CU_ASSERT_EQUAL(ts_nn_state_sha256(c, h2), 0);
  CU_ASSERT_STRING_EQUAL(h1, h2);
  CU_ASSERT_EQUAL(strlen(h1), 64);
  /* copy_into: values land in place; a missing tensor is NN_CHECKPOINT */
  ts_tensor_fill_(ts_nn_state_find(c, "layer1.0.bn1.bias"), 0.0);
  int unused = -1;
  CU_ASSERT_EQUAL(ts_nn_state_copy_into(c, b, &unused), 0);
  CU_ASSERT_EQUAL(unused, 0);
  CU_ASSERT_EQUAL(ts_nn_state_sha256(c, h2), 0);
  CU_ASSERT_STRING_EQUAL(h1, h2);
  ts_nn_state *d = NULL;
  ts_nn_state_new(&d);
  ts_nn_state_add(d, "missing.weight", w);
  CU_ASSERT_EQUAL(ts_nn_state_copy_into(d, b, NULL), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_CHECKPOINT");
  ts_nn_state_free(&d);
  /* a file that is not a checkpoint */
  CU_ASSERT_EQUAL(ts_nn_state_load_h5("/nonexistent/x.h5", &d), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_CHECKPOINT");
  /* h5py reads it as a state_dict */
  static const char py[] =
      "import h5py, numpy as np\n"
      "f = h5py.File('state.h5', 'r')\n"
      "assert f.attrs['tessera_format'] == 'nn_checkpoint', f.attrs['tessera_format']\n"
      "assert int(f.attrs['tessera_format_version']) == 1\n"
      "assert f.attrs['arch'] == 'test_arch'\n"
      "g = f['state_dict']\n"
      "assert sorted(g.keys()) == sorted(['layer1.0.conv1.weight', 'layer1.0.bn1.bias',\n"
      "    'layer1.0.bn1.num_batches_tracked', 'fc.weight']), list(g.keys())\n"
      "assert g['layer1.0.conv1.weight'].shape == (4, 3, 3, 3)\n"
      "assert g['layer1.0.conv1.weight'].dtype == np.float32\n"
      "assert g['layer1.0.bn1.num_batches_tracked'].shape == ()\n"
      "assert g['layer1.0.bn1.num_batches_tracked'][()] == 7\n"
      "assert g['fc.weight'].attrs['torch_dtype'] == 'float16'\n"
      "assert g['fc.weight'].shape == (2, 5)\n"
      "print('ok')\n";
  CU_ASSERT_EQUAL(ts_test_python("check_state.py", py), 0);
  ts_nn_state_free(&s), ts_nn_state_free(&b), ts_nn_state_free(&c);
  CU_ASSERT_PTR_NULL(s);
  ts_tensor_free(&w), ts_tensor_free(&bias), ts_tensor_free(&nbt), ts_tensor_free(&h);
}

/* ---- TorchScript --------------------------------------------------------------------------- */

static void test_nn_torchscript_matches_python(void) {
  static const char py[] = "import torch, numpy as np\n"
                           "torch.manual_seed(0)\n"
                           "class M(torch.nn.Module):\n"
                           "    def __init__(self):\n"
                           "        super().__init__()\n"
                           "        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)\n"
                           "        self.bn = torch.nn.BatchNorm2d(4)\n"
                           "        self.fc = torch.nn.Linear(4, 5)\n"
                           "    def forward(self, x):\n"
                           "        h = torch.relu(self.bn(self.conv(x)))\n"
                           "        h = torch.nn.functional.adaptive_avg_pool2d(h, 1).flatten(1)\n"
                           "        return self.fc(h), h\n"
                           "m = M()\n"
                           "m.bn.running_mean.uniform_(-0.5, 0.5); m.bn.running_var.uniform_(0.5, 2.0)\n"
                           "m.eval()\n"
                           "s = torch.jit.script(m)\n"
                           "s.save('model.pt')\n"
                           "x = torch.randn(2, 3, 8, 8)\n"
                           "with torch.no_grad():\n"
                           "    y = s(x)[0]\n"
                           "x.numpy().astype('<f4').tofile('x.bin')\n"
                           "y.numpy().astype('<f4').tofile('y.bin')\n"
                           "open('garbage.pt', 'w').write('not a model')\n";
  CU_ASSERT_EQUAL_FATAL(ts_test_python("make_ts.py", py), 0);
  size_t nx = 0, ny = 0;
  float *x = ts_test_read("x.bin", &nx), *y = ts_test_read("y.bin", &ny);
  CU_ASSERT_FATAL(x && y && nx == 2 * 3 * 8 * 8 * 4 && ny == 2 * 5 * 4);
  char p[512];
  ts_test_path(p, sizeof p, "model.pt");
  ts_jit_module *m = NULL;
  ts_tensor *xt = NULL, *yt = NULL;
  int64_t sx[4] = {2, 3, 8, 8};
  CU_ASSERT_EQUAL_FATAL(ts_jit_load(p, TS_NN_CPU, &m), 0);
  CU_ASSERT_EQUAL(ts_tensor_from_data(x, TS_NN_F32, sx, 4, &xt), 0);
  CU_ASSERT_EQUAL_FATAL(ts_jit_forward(m, xt, &yt), 0); /* tuple: first element */
  float got[10];
  CU_ASSERT_EQUAL(ts_tensor_copy_to(yt, got, sizeof got, TS_NN_F32), 0);
  double worst = 0;
  for (int i = 0; i < 10; i++)
    worst = fmax(worst, fabs(got[i] - y[i]));
  CU_ASSERT(worst < 1e-5);
  /* the module's state dict names */
  ts_nn_state *st = NULL;
  CU_ASSERT_EQUAL(ts_jit_state(m, &st), 0);
  CU_ASSERT_PTR_NOT_NULL(ts_nn_state_find(st, "conv.weight"));
  CU_ASSERT_PTR_NOT_NULL(ts_nn_state_find(st, "bn.running_var"));
  CU_ASSERT_PTR_NOT_NULL(ts_nn_state_find(st, "fc.bias"));
  ts_nn_state_free(&st);
  /* wrong input rank: LibTorch's error, as a status */
  ts_tensor *bad = NULL, *o = NULL;
  int64_t sb[2] = {2, 3};
  ts_tensor_zeros(sb, 2, TS_NN_F32, &bad);
  CU_ASSERT(ts_jit_forward(m, bad, &o) < 0);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_JIT");
  ts_jit_free(&m);
  CU_ASSERT_PTR_NULL(m);
  ts_test_path(p, sizeof p, "garbage.pt");
  CU_ASSERT_EQUAL(ts_jit_load(p, TS_NN_CPU, &m), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_JIT");
  CU_ASSERT_EQUAL(ts_jit_load("/nonexistent/model.pt", TS_NN_CPU, &m), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_JIT");
  ts_tensor_free(&xt), ts_tensor_free(&yt), ts_tensor_free(&bad);
  free(x), free(y);
}

int ts_test_register(void) {
  CU_pSuite s = CU_add_suite("nn", suite_init, ts_test_tmpdir_remove);
  if (!s) return -1;
  if (!CU_add_test(s, "test_nn_buffers_roundtrip", test_nn_buffers_roundtrip) ||
      !CU_add_test(s, "test_nn_views", test_nn_views) ||
      !CU_add_test(s, "test_nn_errors_and_device", test_nn_errors_and_device) ||
      !CU_add_test(s, "test_nn_threads_seed_deterministic", test_nn_threads_seed_deterministic) ||
      !CU_add_test(s, "test_nn_gradcheck_all_ops", test_nn_gradcheck_all_ops) ||
      !CU_add_test(s, "test_nn_grad_guards", test_nn_grad_guards) ||
      !CU_add_test(s, "test_nn_lr_schedules", test_nn_lr_schedules) ||
      !CU_add_test(s, "test_nn_train_mlp_adamw", test_nn_train_mlp_adamw) ||
      !CU_add_test(s, "test_nn_train_mlp_sgd_momentum", test_nn_train_mlp_sgd_momentum) ||
      !CU_add_test(s, "test_nn_state_h5_roundtrip", test_nn_state_h5_roundtrip) ||
      !CU_add_test(s, "test_nn_torchscript_matches_python", test_nn_torchscript_matches_python))
    return -1;
  return 0;
}
