/* test_nn_pt.c — .pt tensor files (ts_nn_pt_encode_f32 / ts_nn_pt_save_f32 in nn/ts_nn.h).
 *
 * The oracle is Debian's python3-torch: torch.load (and weights_only=True) of what C wrote must
 * give an n x d float32 tensor whose bytes equal the raw float32 buffer C also wrote, for values
 * that a careless conversion would change (-0.0, NaN payload, infinities, subnormals, FLT_MAX)
 * and for the empty shapes a slide without tiles gives (0 x d). Also: encode and save give the
 * same bytes, twice the same; saving replaces a file whole and leaves no temporary; errors carry
 * their tokens and write nothing. */
#include <CUnit/Basic.h>
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_nn.h"
#include "ts_test_util.h"

static int suite_init(void) {
  return ts_test_tmpdir_make("ts_test_nn_pt");
}

static void write_raw(const char *name, const float *x, size_t n) {
  char p[512];
  ts_test_path(p, sizeof p, name);
  FILE *f = fopen(p, "wb");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  CU_ASSERT_EQUAL(n ? fwrite(x, sizeof *x, n, f) : 0, n);
  fclose(f);
}

static void test_nn_pt_torch_load_reads_exact_values(void) {
  enum { N = 7, D = 5 };
  float x[N * D];
  for (int i = 0; i < N * D; i++)
    x[i] = (float)i * 0.37f - 3.1f;
  uint32_t qnan = 0x7fc12345u; /* a NaN with a payload: bytes must survive, not just NaN-ness */
  memcpy(&x[0], &qnan, sizeof qnan);
  x[1] = -0.0f;
  x[2] = INFINITY;
  x[3] = -INFINITY;
  x[4] = 1e-40f; /* subnormal */
  x[5] = FLT_MAX;
  x[6] = -FLT_MIN;
  char p[512];
  ts_test_path(p, sizeof p, "a.pt");
  CU_ASSERT_EQUAL(ts_nn_pt_save_f32(x, N, D, p), 0);
  write_raw("a.bin", x, N * D);
  ts_test_path(p, sizeof p, "empty.pt");
  CU_ASSERT_EQUAL(ts_nn_pt_save_f32(NULL, 0, 64, p), 0); /* a slide without tiles */
  ts_test_path(p, sizeof p, "nocols.pt");
  CU_ASSERT_EQUAL(ts_nn_pt_save_f32(NULL, 3, 0, p), 0);
  ts_test_path(p, sizeof p, "one.pt");
  CU_ASSERT_EQUAL(ts_nn_pt_save_f32(x + 2, 1, 1, p), 0);
  const char *py =
      "import numpy as np, torch\n"
      "def check(name, shape, raw=None):\n"
      "    t = torch.load(name)\n"
      "    assert isinstance(t, torch.Tensor), type(t)\n"
      "    assert t.dtype == torch.float32 and tuple(t.shape) == shape, (name, t.dtype, t.shape)\n"
      "    assert t.is_contiguous() and t.device.type == 'cpu' and not t.requires_grad\n"
      "    assert torch.load(name, weights_only=True).numpy().tobytes() == t.numpy().tobytes()\n"
      "    if raw is not None:\n"
      "        assert t.numpy().tobytes() == raw.tobytes(), name\n"
      "raw = np.fromfile('a.bin', dtype='<f4')\n"
      "check('a.pt', (7, 5), raw)\n"
      "assert raw.view('<u4')[0] == 0x7fc12345 and str(raw[1]) == '-0.0'\n"
      "check('empty.pt', (0, 64))\n"
      "check('nocols.pt', (3, 0))\n"
      "check('one.pt', (1, 1), np.array([np.inf], dtype='<f4'))\n"
      "print('torch.load ok')\n";
  CU_ASSERT_EQUAL(ts_test_python("check_pt.py", py), 0);
}

static void test_nn_pt_encode_equals_save_and_is_deterministic(void) {
  float x[12];
  for (int i = 0; i < 12; i++)
    x[i] = (float)i / 7.0f;
  void *a = NULL, *b = NULL;
  size_t la = 0, lb = 0, lf = 0;
  CU_ASSERT_EQUAL_FATAL(ts_nn_pt_encode_f32(x, 3, 4, &a, &la), 0);
  CU_ASSERT_EQUAL_FATAL(ts_nn_pt_encode_f32(x, 3, 4, &b, &lb), 0);
  CU_ASSERT_TRUE(la > 48 && la == lb && !memcmp(a, b, la));
  char p[512];
  ts_test_path(p, sizeof p, "b.pt");
  CU_ASSERT_EQUAL(ts_nn_pt_save_f32(x, 3, 4, p), 0);
  void *f = ts_test_read("b.pt", &lf);
  CU_ASSERT_TRUE(f && lf == la && !memcmp(f, a, la));
  free(f);
  free(b);
  b = NULL;
  /* other values, other bytes; shape is part of the file */
  CU_ASSERT_EQUAL(ts_nn_pt_encode_f32(x, 4, 3, &b, &lb), 0);
  CU_ASSERT_TRUE(b && (lb != la || memcmp(a, b, la)));
  free(a);
  free(b);
}

static void test_nn_pt_save_replaces_whole_file(void) {
  char p[512];
  ts_test_path(p, sizeof p, "c.pt");
  FILE *f = fopen(p, "wb");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  for (int i = 0; i < 100000; i++)
    fputc('x', f); /* longer than the new file */
  fclose(f);
  float x[4] = {1, 2, 3, 4};
  void *want = NULL;
  size_t lw = 0, lf = 0;
  CU_ASSERT_EQUAL_FATAL(ts_nn_pt_encode_f32(x, 2, 2, &want, &lw), 0);
  CU_ASSERT_EQUAL(ts_nn_pt_save_f32(x, 2, 2, p), 0);
  void *got = ts_test_read("c.pt", &lf);
  CU_ASSERT_TRUE(got && lf == lw && !memcmp(got, want, lw));
  free(got);
  free(want);
  DIR *d = opendir(ts_test_tmpdir);
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  struct dirent *e;
  while ((e = readdir(d)))
    CU_ASSERT_PTR_NULL(strstr(e->d_name, ".tmp."));
  closedir(d);
}

static void test_nn_pt_errors(void) {
  float x[4] = {0};
  void *b = (void *)x;
  size_t n = 99;
  CU_ASSERT_EQUAL(ts_nn_pt_encode_f32(x, -1, 4, &b, &n), TS_EINVAL);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_ARG");
  CU_ASSERT_TRUE(b == NULL && n == 0);
  CU_ASSERT_EQUAL(ts_nn_pt_encode_f32(NULL, 2, 2, &b, &n), TS_EINVAL);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_ARG");
  CU_ASSERT_EQUAL(ts_nn_pt_encode_f32(x, 2, 2, NULL, &n), TS_EINVAL);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_ARG");
  CU_ASSERT_EQUAL(ts_nn_pt_save_f32(x, 2, 2, NULL), TS_EINVAL);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_ARG");
  char p[512];
  ts_test_path(p, sizeof p, "no_such_dir/d.pt");
  CU_ASSERT_EQUAL(ts_nn_pt_save_f32(x, 2, 2, p), TS_EIO);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "IO_WRITE");
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "no_such_dir"));
  ts_test_path(p, sizeof p, "e.pt");
  CU_ASSERT_EQUAL(ts_nn_pt_save_f32(x, 2, -2, p), TS_EINVAL);
  FILE *f = fopen(p, "rb");
  CU_ASSERT_PTR_NULL(f); /* nothing written on error */
  if (f) fclose(f);
}

int ts_test_register(void) {
  CU_pSuite s = CU_add_suite("nn_pt", suite_init, ts_test_tmpdir_remove);
  if (!s) return -1;
  if (!CU_add_test(s, "test_nn_pt_torch_load_reads_exact_values", test_nn_pt_torch_load_reads_exact_values) ||
      !CU_add_test(s, "test_nn_pt_encode_equals_save_and_is_deterministic",
                   test_nn_pt_encode_equals_save_and_is_deterministic) ||
      !CU_add_test(s, "test_nn_pt_save_replaces_whole_file", test_nn_pt_save_replaces_whole_file) ||
      !CU_add_test(s, "test_nn_pt_errors", test_nn_pt_errors))
    return -1;
  return 0;
}
