/* test_encoder.c — tile encoders (nn/ts_encoder.h).
 *
 * - shapes (resnet_tiny 64-d, resnet50_trunc 1024-d), resize path, errors with their tokens;
 * - determinism: same seed → same weights hash and bitwise-identical features (deterministic
 *   mode), another seed → another hash;
 * - HDF5 checkpoint round trip (save, load into a differently seeded model → same features);
 * - the oracle: torchvision's resnet50 (Debian python3-torchvision), randomised, exported by
 *   h5py into our checkpoint layout, truncated after layer3 as CLAM does: the C model loaded from
 *   that file must give the same features (1e-4) and have exactly torchvision's names;
 * - torchscript:PATH with a module written by Debian's python3-torch.
 */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ts_encoder.h"
#include "ts_test_util.h"

static int suite_init(void) {
  if (ts_test_tmpdir_make("ts_test_encoder") < 0) return -1;
  if (ts_nn_set_num_threads(2) < 0 || ts_nn_set_deterministic(true) < 0) return -1;
  return 0;
}

/* Deterministic pseudo-random tiles. */
static uint8_t *make_tiles(int64_t n, int h, int w, unsigned seed) {
  size_t len = (size_t)n * h * w * 3;
  uint8_t *t = malloc(len);
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    t[i] = (uint8_t)(x >> 24);
  }
  return t;
}

static void test_encoder_tiny_shapes_and_resize(void) {
  ts_encoder_opts o;
  ts_encoder_opts_default(&o);
  o.input_size = 64;
  ts_encoder *e = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_encoder_new("resnet_tiny", &o, &e), 0);
  CU_ASSERT_EQUAL(ts_encoder_dim(e), 64);
  CU_ASSERT_EQUAL(ts_encoder_input_size(e), 64);
  CU_ASSERT_STRING_EQUAL(ts_encoder_name(e), "resnet_tiny");
  CU_ASSERT_EQUAL(strlen(ts_encoder_weights_hash(e)), 64);
  CU_ASSERT_PTR_NOT_NULL(ts_nn_state_find(ts_encoder_state(e), "layer4.0.downsample.1.running_var"));
  uint8_t *t = make_tiles(3, 64, 64, 1), *big = make_tiles(3, 80, 80, 2);
  float f[3 * 64], g[3 * 64];
  CU_ASSERT_EQUAL(ts_encoder_forward_u8(e, t, 3, 64, 64, f, 3 * 64), 0);
  bool finite = true, nonzero = false;
  for (int i = 0; i < 3 * 64; i++)
    finite &= isfinite(f[i]), nonzero |= f[i] != 0;
  CU_ASSERT(finite && nonzero);
  /* tiles of another size are resized to input_size */
  CU_ASSERT_EQUAL(ts_encoder_forward_u8(e, big, 3, 80, 80, g, 3 * 64), 0);
  /* a batch gives the same features as its tiles alone */
  float one[64];
  CU_ASSERT_EQUAL(ts_encoder_forward_u8(e, t + 64 * 64 * 3, 1, 64, 64, one, 64), 0);
  double worst = 0;
  for (int i = 0; i < 64; i++)
    worst = fmax(worst, fabs(one[i] - f[64 + i]) / (1e-3 + fabs(f[64 + i])));
  CU_ASSERT(worst < 1e-4);
  /* wrong output length: NN_SHAPE and a zeroed buffer */
  CU_ASSERT_EQUAL(ts_encoder_forward_u8(e, t, 3, 64, 64, g, 10), TS_EINVAL);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_SHAPE");
  free(t), free(big);
  ts_encoder_free(&e);
  CU_ASSERT_PTR_NULL(e);
  ts_encoder_free(&e);
}

static void test_encoder_errors(void) {
  ts_encoder *e = NULL;
  ts_encoder_opts o;
  ts_encoder_opts_default(&o);
  CU_ASSERT_EQUAL(ts_encoder_new("vgg16", &o, &e), TS_ECONFIG);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "ENCODER_UNKNOWN");
  CU_ASSERT_PTR_NULL(e);
  o.std[1] = 0;
  CU_ASSERT_EQUAL(ts_encoder_new("resnet_tiny", &o, &e), TS_ECONFIG);
  ts_encoder_opts_default(&o);
  o.checkpoint = "/nonexistent/ck.h5";
  CU_ASSERT_EQUAL(ts_encoder_new("resnet_tiny", &o, &e), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_CHECKPOINT");
  CU_ASSERT_EQUAL(ts_encoder_new("torchscript:/nonexistent/m.pt", NULL, &e), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_JIT");
  /* CUDA absent: a clear NN_DEVICE error */
  if (!ts_nn_cuda_available()) {
    ts_encoder_opts_default(&o);
    o.device = 0;
    CU_ASSERT_EQUAL(ts_encoder_new("resnet_tiny", &o, &e), TS_EINVAL);
    CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_DEVICE");
    CU_ASSERT_PTR_NULL(e);
  }
}

static void test_encoder_resnet50_trunc_deterministic(void) {
  ts_encoder_opts o;
  ts_encoder_opts_default(&o);
  o.seed = 7;
  ts_encoder *a = NULL, *b = NULL, *c = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_encoder_new("resnet50_trunc", &o, &a), 0);
  CU_ASSERT_EQUAL_FATAL(ts_encoder_new("resnet50_trunc", &o, &b), 0);
  o.seed = 8;
  CU_ASSERT_EQUAL_FATAL(ts_encoder_new("resnet50_trunc", &o, &c), 0);
  CU_ASSERT_EQUAL(ts_encoder_dim(a), 1024);
  CU_ASSERT_STRING_EQUAL(ts_encoder_weights_hash(a), ts_encoder_weights_hash(b));
  CU_ASSERT_STRING_NOT_EQUAL(ts_encoder_weights_hash(a), ts_encoder_weights_hash(c));
  /* CLAM's module tree: conv1 … layer3, nothing of layer4/fc */
  ts_nn_state *s = ts_encoder_state(a);
  CU_ASSERT_PTR_NOT_NULL(ts_nn_state_find(s, "layer3.5.bn3.running_var"));
  CU_ASSERT_PTR_NOT_NULL(ts_nn_state_find(s, "layer1.0.downsample.0.weight"));
  CU_ASSERT_PTR_NULL(ts_nn_state_find(s, "layer4.0.conv1.weight"));
  CU_ASSERT_PTR_NULL(ts_nn_state_find(s, "fc.weight"));
  uint8_t *t = make_tiles(2, 224, 224, 3);
  float *fa = malloc(2 * 1024 * sizeof *fa), *fb = malloc(2 * 1024 * sizeof *fb);
  CU_ASSERT_EQUAL(ts_encoder_forward_u8(a, t, 2, 224, 224, fa, 2048), 0);
  CU_ASSERT_EQUAL(ts_encoder_forward_u8(b, t, 2, 224, 224, fb, 2048), 0);
  CU_ASSERT(memcmp(fa, fb, 2048 * sizeof *fa) == 0);
  bool finite = true;
  for (int i = 0; i < 2048; i++)
    finite &= isfinite(fa[i]) && fa[i] >= 0; /* after ReLU + mean */
  CU_ASSERT(finite);
  free(t), free(fa), free(fb);
  ts_encoder_free(&a), ts_encoder_free(&b), ts_encoder_free(&c);
}

static void test_encoder_checkpoint_roundtrip(void) {
  ts_encoder_opts o;
  ts_encoder_opts_default(&o);
  o.input_size = 32;
  o.seed = 3;
  char path[512];
  ts_test_path(path, sizeof path, "tiny.h5");
  ts_encoder *a = NULL, *b = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_encoder_new("resnet_tiny", &o, &a), 0);
  CU_ASSERT_EQUAL_FATAL(ts_encoder_save(a, path), 0);
  o.seed = 4;
  o.checkpoint = path;
  CU_ASSERT_EQUAL_FATAL(ts_encoder_new("resnet_tiny", &o, &b), 0);
  CU_ASSERT_STRING_EQUAL(ts_encoder_weights_hash(a), ts_encoder_weights_hash(b));
  uint8_t *t = make_tiles(2, 32, 32, 9);
  float fa[128], fb[128];
  CU_ASSERT_EQUAL(ts_encoder_forward_u8(a, t, 2, 32, 32, fa, 128), 0);
  CU_ASSERT_EQUAL(ts_encoder_forward_u8(b, t, 2, 32, 32, fb, 128), 0);
  CU_ASSERT(memcmp(fa, fb, sizeof fa) == 0);
  /* a checkpoint of another architecture: NN_CHECKPOINT naming the tensor */
  ts_encoder *c = NULL;
  CU_ASSERT_EQUAL(ts_encoder_new("resnet18", &o, &c), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "NN_CHECKPOINT");
  CU_ASSERT_PTR_NULL(c);
  free(t);
  ts_encoder_free(&a), ts_encoder_free(&b);
}

/* torchvision's resnet50, randomised (weights and BN statistics), saved in our HDF5 layout by
 * h5py; features of CLAM's truncation computed by torchvision on the same uint8 tiles. */
static const char TV_PY[] =
    "import sys\n"
    "try:\n"
    "    import torchvision\n"
    "except ImportError:\n"
    "    sys.exit(3)\n"
    "import torch, h5py, numpy as np\n"
    "torch.manual_seed(0)\n"
    "m = torchvision.models.resnet50()\n"
    "with torch.no_grad():\n"
    "    for mod in m.modules():\n"
    "        if isinstance(mod, torch.nn.BatchNorm2d):\n"
    "            mod.weight.uniform_(0.5, 1.0); mod.bias.uniform_(-0.1, 0.1)\n"
    "            mod.running_mean.uniform_(-0.1, 0.1); mod.running_var.uniform_(1.0, 2.0)\n"
    "            mod.num_batches_tracked.fill_(5)\n"
    "m.eval()\n"
    "sd = m.state_dict()\n"
    "with h5py.File('tv.h5', 'w') as f:\n"
    "    g = f.create_group('state_dict')\n"
    "    for k, v in sd.items():\n"
    "        a = v.numpy()\n"
    "        g.create_dataset(k, data=a.astype(np.float32) if a.dtype.kind == 'f' else a.astype(np.int64))\n"
    "keys = [k for k in sd if not k.startswith(('layer4.', 'fc.'))]\n"
    "open('tv_keys.txt', 'w').write('\\n'.join(keys) + '\\n')\n"
    "trunc = torch.nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3,\n"
    "                            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(1))\n"
    "rng = np.random.default_rng(0)\n"
    "tiles = rng.integers(0, 256, size=(2, 224, 224, 3), dtype=np.uint8)\n"
    "tiles.tofile('tiles.bin')\n"
    "x = torch.from_numpy(tiles).permute(0, 3, 1, 2).float() / 255.0\n"
    "mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)\n"
    "std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)\n"
    "with torch.no_grad():\n"
    "    y = trunc((x - mean) / std)\n"
    "assert y.shape == (2, 1024)\n"
    "y.numpy().astype('<f4').tofile('tv_out.bin')\n";

static void test_encoder_resnet50_trunc_matches_torchvision(void) {
  int rc = ts_test_python("tv.py", TV_PY);
  if (rc != 0 && WIFEXITED(rc) && WEXITSTATUS(rc) == 3) /* a skipped check is a failed one */
    fprintf(stderr, "[/usr/bin/python3 has no torchvision: scripts/setup.sh installs python3-torchvision] ");
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  char path[512];
  ts_test_path(path, sizeof path, "tv.h5");
  ts_encoder_opts o;
  ts_encoder_opts_default(&o);
  o.checkpoint = path;
  ts_encoder *e = NULL;
  rc = ts_encoder_new("resnet50_trunc", &o, &e);
  if (rc < 0) fprintf(stderr, "\n%s\n", ts_error_message());
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  /* exactly torchvision's names, in torchvision's order */
  char *keys = ts_test_read("tv_keys.txt", NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(keys);
  ts_nn_state *s = ts_encoder_state(e);
  int i = 0;
  bool same = true;
  for (char *line = strtok(keys, "\n"); line; line = strtok(NULL, "\n"), i++) {
    const char *name = ts_nn_state_name(s, i);
    if (!name || strcmp(name, line) != 0) {
      fprintf(stderr, "\nname %d: torchvision '%s', tessera '%s'\n", i, line, name ? name : "(none)");
      same = false;
      break;
    }
  }
  CU_ASSERT(same);
  CU_ASSERT_EQUAL(i, ts_nn_state_count(s));
  size_t nt = 0, ny = 0;
  uint8_t *tiles = ts_test_read("tiles.bin", &nt);
  float *want = ts_test_read("tv_out.bin", &ny);
  CU_ASSERT_FATAL(tiles && want && nt == 2 * 224 * 224 * 3 && ny == 2 * 1024 * 4);
  float *got = malloc(2048 * sizeof *got);
  CU_ASSERT_EQUAL(ts_encoder_forward_u8(e, tiles, 2, 224, 224, got, 2048), 0);
  double worst = 0, scale = 0;
  for (int k = 0; k < 2048; k++)
    scale = fmax(scale, fabs(want[k]));
  for (int k = 0; k < 2048; k++)
    worst = fmax(worst, fabs(got[k] - want[k]));
  fprintf(stderr, "[max |C - torchvision| = %.3g, max |feature| = %.3g] ", worst, scale);
  CU_ASSERT(worst <= 1e-4 * fmax(1.0, scale));
  free(keys), free(tiles), free(want), free(got);
  ts_encoder_free(&e);
}

static void test_encoder_torchscript(void) {
  static const char py[] = "import torch, numpy as np\n"
                           "torch.manual_seed(1)\n"
                           "class Enc(torch.nn.Module):\n"
                           "    def __init__(self):\n"
                           "        super().__init__()\n"
                           "        self.conv = torch.nn.Conv2d(3, 6, 3, stride=2)\n"
                           "        self.proj = torch.nn.Linear(6, 5)\n"
                           "    def forward(self, x):\n"
                           "        h = torch.nn.functional.gelu(self.conv(x))\n"
                           "        return self.proj(h.mean(dim=(2, 3)))\n"
                           "s = torch.jit.script(Enc().eval())\n"
                           "s.save('enc.pt')\n"
                           "rng = np.random.default_rng(1)\n"
                           "tiles = rng.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)\n"
                           "tiles.tofile('ts_tiles.bin')\n"
                           "x = torch.from_numpy(tiles).permute(0, 3, 1, 2).float() / 255.0\n"
                           "mean = torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1)\n"
                           "std = torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1)\n"
                           "with torch.no_grad():\n"
                           "    s((x - mean) / std).numpy().astype('<f4').tofile('ts_out.bin')\n";
  CU_ASSERT_EQUAL_FATAL(ts_test_python("ts.py", py), 0);
  char name[600];
  snprintf(name, sizeof name, "torchscript:%s/enc.pt", ts_test_tmpdir);
  ts_encoder_opts o;
  ts_encoder_opts_default(&o);
  o.input_size = 32;
  for (int c = 0; c < 3; c++)
    o.mean[c] = 0.5, o.std[c] = 0.25;
  ts_encoder *e = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_encoder_new(name, &o, &e), 0);
  CU_ASSERT_EQUAL(ts_encoder_dim(e), 5);
  CU_ASSERT_EQUAL(strlen(ts_encoder_weights_hash(e)), 64);
  size_t nt = 0, ny = 0;
  uint8_t *tiles = ts_test_read("ts_tiles.bin", &nt);
  float *want = ts_test_read("ts_out.bin", &ny);
  CU_ASSERT_FATAL(tiles && want && nt == 3 * 32 * 32 * 3 && ny == 15 * 4);
  float got[15];
  CU_ASSERT_EQUAL(ts_encoder_forward_u8(e, tiles, 3, 32, 32, got, 15), 0);
  double worst = 0;
  for (int k = 0; k < 15; k++)
    worst = fmax(worst, fabs(got[k] - want[k]));
  CU_ASSERT(worst < 1e-5);
  /* same file, same hash */
  ts_encoder *e2 = NULL;
  CU_ASSERT_EQUAL(ts_encoder_new(name, &o, &e2), 0);
  CU_ASSERT_STRING_EQUAL(ts_encoder_weights_hash(e), ts_encoder_weights_hash(e2));
  /* a checkpoint makes no sense with TorchScript */
  ts_encoder *e3 = NULL;
  o.checkpoint = "x.h5";
  CU_ASSERT_EQUAL(ts_encoder_new(name, &o, &e3), TS_ECONFIG);
  free(tiles), free(want);
  ts_encoder_free(&e), ts_encoder_free(&e2);
}

int ts_test_register(void) {
  CU_pSuite s = CU_add_suite("encoder", suite_init, ts_test_tmpdir_remove);
  if (!s) return -1;
  if (!CU_add_test(s, "test_encoder_tiny_shapes_and_resize", test_encoder_tiny_shapes_and_resize) ||
      !CU_add_test(s, "test_encoder_errors", test_encoder_errors) ||
      !CU_add_test(s, "test_encoder_resnet50_trunc_deterministic",
                   test_encoder_resnet50_trunc_deterministic) ||
      !CU_add_test(s, "test_encoder_checkpoint_roundtrip", test_encoder_checkpoint_roundtrip) ||
      !CU_add_test(s, "test_encoder_resnet50_trunc_matches_torchvision",
                   test_encoder_resnet50_trunc_matches_torchvision) ||
      !CU_add_test(s, "test_encoder_torchscript", test_encoder_torchscript))
    return -1;
  return 0;
}
