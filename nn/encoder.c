/* encoder.c — tile encoders in C on ts_nn.h: the ResNet family and TorchScript modules.
 *
 * ResNets follow torchvision's models/resnet.py (He et al., "Deep residual learning", CVPR 2016;
 * torchvision's "v1.5" puts the stride of a bottleneck in its 3×3 conv), with the same module
 * tree and therefore the same state_dict names:
 *   conv1, bn1, layer{1..4}.{i}.conv{1,2[,3]}, .bn{1,2[,3]}, .downsample.0 (1×1 conv),
 *   .downsample.1 (BN); BN buffers running_mean, running_var, num_batches_tracked.
 * "resnet50_trunc" is CLAM's resnet50_trunc_baseline: conv1 … layer3, then adaptive average
 * pooling to 1×1 → 1024-d. Parameters of unbuilt modules (layer4, fc) in a checkpoint are
 * ignored, as CLAM does with load_state_dict(strict=False).
 *
 * Every intermediate tensor is freed as soon as the next one exists (each op gives a new handle).
 */
#include "ts_encoder.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_util.h"

#define MAX_BLOCKS 64

struct conv {
  ts_tensor *w; /* borrowed from the state */
  int64_t stride, pad;
};

struct bn {
  ts_tensor *w, *b, *rm, *rv; /* borrowed from the state */
};

struct block {
  struct conv c[3];
  struct bn n[3];
  bool has_ds;
  struct conv ds;
  struct bn dsn;
};

struct arch {
  const char *name;
  bool bottleneck;
  int layers[4];
  int nlayers; /* how many of layer1..4 are built */
  int width;   /* planes of layer1 (64 in torchvision) */
};

static const struct arch ARCHS[] = {
    {"resnet50_trunc", true, {3, 4, 6, 3}, 3, 64},
    {"resnet50", true, {3, 4, 6, 3}, 4, 64},
    {"resnet18", false, {2, 2, 2, 2}, 4, 64},
    {"resnet_tiny", false, {1, 1, 1, 1}, 4, 8},
};

struct ts_encoder {
  char *name;
  int dim, input_size, device, micro_batch;
  char hash[65];
  ts_tensor *scale, *shift; /* [1,3,1,1]: x_norm = x_u8 * scale + shift */
  ts_nn_state *state;
  /* ResNet */
  const struct arch *arch;
  struct conv stem;
  struct bn stem_bn;
  struct block blocks[MAX_BLOCKS];
  int nblocks;
  /* TorchScript */
  ts_jit_module *jit;
};

void ts_encoder_opts_default(ts_encoder_opts *o) {
  memset(o, 0, sizeof *o);
  o->input_size = 224;
  o->mean[0] = 0.485, o->mean[1] = 0.456, o->mean[2] = 0.406;
  o->std[0] = 0.229, o->std[1] = 0.224, o->std[2] = 0.225;
  o->seed = 1;
  o->checkpoint = NULL;
  o->device = TS_NN_CPU;
  o->micro_batch = 4;
}

/* Add a tensor (ownership passes to the state) and return the state's borrowed handle. */
static int add_param(ts_encoder *e, const char *name, ts_tensor **t, ts_tensor **borrowed) {
  if (e->device != TS_NN_CPU) {
    ts_tensor *d = NULL;
    int mv = ts_tensor_to_device(*t, e->device, &d);
    ts_tensor_free(t);
    if (mv < 0) return mv;
    *t = d;
  }
  int rc = ts_nn_state_add(e->state, name, *t);
  ts_tensor_free(t);
  if (rc < 0) return rc;
  *borrowed = ts_nn_state_tensor(e->state, ts_nn_state_count(e->state) - 1);
  return 0;
}

/* Kaiming-normal, mode fan_out, gain sqrt(2) (torchvision's ResNet init). */
static int make_conv(ts_encoder *e, uint64_t seed, const char *name, int64_t out_c, int64_t in_c, int64_t k,
                     int64_t stride, int64_t pad, struct conv *c) {
  char full[256];
  int64_t shape[4] = {out_c, in_c, k, k};
  ts_tensor *r = NULL, *w = NULL;
  int rc = 0;
  TS_TRY(ts_tensor_randn(shape, 4, TS_NN_F32, ts__nn_mix_seed(seed, (uint64_t)ts_nn_state_count(e->state)), &r));
  TS_TRY(ts_nn_mul_scalar(r, sqrt(2.0 / (double)(out_c * k * k)), &w));
  snprintf(full, sizeof full, "%s.weight", name);
  TS_TRY(add_param(e, full, &w, &c->w));
  c->stride = stride;
  c->pad = pad;
out:
  ts_tensor_free(&r);
  ts_tensor_free(&w);
  return rc;
}

static int make_bn(ts_encoder *e, const char *name, int64_t ch, struct bn *n) {
  static const char *const suffix[4] = {"weight", "bias", "running_mean", "running_var"};
  static const double init[4] = {1.0, 0.0, 0.0, 1.0};
  ts_tensor **dst[4] = {&n->w, &n->b, &n->rm, &n->rv};
  char full[256];
  ts_tensor *t = NULL, *unused = NULL;
  for (int i = 0; i < 4; i++) {
    TS_CALL(ts_tensor_full(&ch, 1, TS_NN_F32, init[i], &t));
    snprintf(full, sizeof full, "%s.%s", name, suffix[i]);
    TS_CALL(add_param(e, full, &t, dst[i]));
  }
  int64_t zero = 0;
  TS_CALL(ts_tensor_from_data(&zero, TS_NN_I64, NULL, 0, &t));
  snprintf(full, sizeof full, "%s.num_batches_tracked", name);
  return add_param(e, full, &t, &unused);
}

static int build_resnet(ts_encoder *e, const struct arch *a, uint64_t seed) {
  char name[128];
  int64_t inplanes = a->width;
  int expansion = a->bottleneck ? 4 : 1;
  e->arch = a;
  TS_CALL(make_conv(e, seed, "conv1", a->width, 3, 7, 2, 3, &e->stem));
  TS_CALL(make_bn(e, "bn1", a->width, &e->stem_bn));
  for (int l = 0; l < a->nlayers; l++) {
    int64_t planes = (int64_t)a->width << l;
    int64_t stride = l == 0 ? 1 : 2;
    for (int i = 0; i < a->layers[l]; i++) {
      if (e->nblocks == MAX_BLOCKS) return ts_error_set(TS_EINTERNAL, "NN_ERROR", "too many blocks");
      struct block *b = &e->blocks[e->nblocks++];
      int64_t s = i == 0 ? stride : 1;
      char p[64];
      snprintf(p, sizeof p, "layer%d.%d", l + 1, i);
      if (a->bottleneck) {
        snprintf(name, sizeof name, "%s.conv1", p);
        TS_CALL(make_conv(e, seed, name, planes, inplanes, 1, 1, 0, &b->c[0]));
        snprintf(name, sizeof name, "%s.bn1", p);
        TS_CALL(make_bn(e, name, planes, &b->n[0]));
        snprintf(name, sizeof name, "%s.conv2", p);
        TS_CALL(make_conv(e, seed, name, planes, planes, 3, s, 1, &b->c[1]));
        snprintf(name, sizeof name, "%s.bn2", p);
        TS_CALL(make_bn(e, name, planes, &b->n[1]));
        snprintf(name, sizeof name, "%s.conv3", p);
        TS_CALL(make_conv(e, seed, name, planes * 4, planes, 1, 1, 0, &b->c[2]));
        snprintf(name, sizeof name, "%s.bn3", p);
        TS_CALL(make_bn(e, name, planes * 4, &b->n[2]));
      } else {
        snprintf(name, sizeof name, "%s.conv1", p);
        TS_CALL(make_conv(e, seed, name, planes, inplanes, 3, s, 1, &b->c[0]));
        snprintf(name, sizeof name, "%s.bn1", p);
        TS_CALL(make_bn(e, name, planes, &b->n[0]));
        snprintf(name, sizeof name, "%s.conv2", p);
        TS_CALL(make_conv(e, seed, name, planes, planes, 3, 1, 1, &b->c[1]));
        snprintf(name, sizeof name, "%s.bn2", p);
        TS_CALL(make_bn(e, name, planes, &b->n[1]));
      }
      b->has_ds = s != 1 || inplanes != planes * expansion;
      if (b->has_ds) {
        snprintf(name, sizeof name, "%s.downsample.0", p);
        TS_CALL(make_conv(e, seed, name, planes * expansion, inplanes, 1, s, 0, &b->ds));
        snprintf(name, sizeof name, "%s.downsample.1", p);
        TS_CALL(make_bn(e, name, planes * expansion, &b->dsn));
      }
      inplanes = planes * expansion;
    }
  }
  e->dim = (int)inplanes;
  return 0;
}

/* y = bn(conv(x)) [+ relu]; x is borrowed. */
static int conv_bn(const ts_tensor *x, const struct conv *c, const struct bn *n, bool relu, ts_tensor **out) {
  int64_t st[2] = {c->stride, c->stride}, pad[2] = {c->pad, c->pad}, dil[2] = {1, 1};
  ts_tensor *y = NULL, *z = NULL;
  int rc = 0;
  *out = NULL;
  TS_TRY(ts_nn_conv2d(x, c->w, NULL, st, pad, dil, 1, &y));
  TS_TRY(ts_nn_batch_norm(y, n->w, n->b, n->rm, n->rv, false, 0.1, 1e-5, &z));
  if (relu) {
    TS_TRY(ts_nn_relu(z, out));
  } else {
    *out = z;
    z = NULL;
  }
out:
  ts_tensor_free(&y);
  ts_tensor_free(&z);
  return rc;
}

static int block_forward(const struct block *b, bool bottleneck, const ts_tensor *x, ts_tensor **out) {
  ts_tensor *h1 = NULL, *h2 = NULL, *h3 = NULL, *id = NULL, *sum = NULL;
  int rc = 0;
  *out = NULL;
  TS_TRY(conv_bn(x, &b->c[0], &b->n[0], true, &h1));
  TS_TRY(conv_bn(h1, &b->c[1], &b->n[1], bottleneck, &h2));
  if (bottleneck) TS_TRY(conv_bn(h2, &b->c[2], &b->n[2], false, &h3));
  if (b->has_ds) TS_TRY(conv_bn(x, &b->ds, &b->dsn, false, &id));
  TS_TRY(ts_nn_add(bottleneck ? h3 : h2, id ? id : x, &sum));
  TS_TRY(ts_nn_relu(sum, out));
out:
  ts_tensor_free(&h1);
  ts_tensor_free(&h2);
  ts_tensor_free(&h3);
  ts_tensor_free(&id);
  ts_tensor_free(&sum);
  return rc;
}

static int resnet_forward(const ts_encoder *e, const ts_tensor *x, ts_tensor **out) {
  ts_tensor *h = NULL, *p = NULL, *next = NULL;
  int rc = 0;
  TS_TRY(conv_bn(x, &e->stem, &e->stem_bn, true, &h));
  TS_TRY(ts_nn_max_pool2d(h, 3, 2, 1, &p));
  ts_tensor_free(&h);
  for (int i = 0; i < e->nblocks; i++) {
    TS_TRY(block_forward(&e->blocks[i], e->arch->bottleneck, p, &next));
    ts_tensor_free(&p);
    p = next;
    next = NULL;
  }
  TS_TRY(ts_nn_adaptive_avg_pool2d(p, 1, 1, &h));
  TS_TRY(ts_tensor_flatten(h, 1, -1, out));
out:
  ts_tensor_free(&h);
  ts_tensor_free(&p);
  ts_tensor_free(&next);
  return rc;
}

int ts_encoder_forward(ts_encoder *e, const ts_tensor *x, ts_tensor **out) {
  if (!out) return ts_error_set(TS_EINVAL, "NN_ARG", "ts_encoder_forward: out is NULL");
  *out = NULL;
  if (!e || !x) return ts_error_set(TS_EINVAL, "NN_ARG", "ts_encoder_forward: NULL argument");
  int64_t s[4];
  if (ts_tensor_shape(x, s, 4) != 4 || s[1] != 3)
    return ts_error_set(TS_EINVAL, "NN_SHAPE", "encoder '%s': input must be [N, 3, H, W]", e->name);
  ts_tensor *y = NULL;
  int rc = 0;
  if (e->jit) {
    TS_TRY(ts_jit_forward(e->jit, x, &y));
  } else {
    TS_TRY(resnet_forward(e, x, &y));
  }
  if (ts_tensor_ndim(y) != 2 || ts_tensor_size(y, 0) != s[0])
    TS_FAIL(TS_EINPUT, "NN_SHAPE", "encoder '%s': output is not [N, D] (rank %d)", e->name,
            ts_tensor_ndim(y));
  *out = y;
  y = NULL;
out:
  ts_tensor_free(&y);
  return rc;
}

/* uint8 NHWC → normalised float NCHW at input_size. */
static int preprocess(const ts_encoder *e, const uint8_t *nhwc, int64_t n, int h, int w, ts_tensor **out) {
  int64_t shape[4] = {n, h, w, 3}, perm[4] = {0, 3, 1, 2};
  ts_tensor *u = NULL, *f = NULL, *p = NULL, *r = NULL, *m = NULL, *dev = NULL;
  int rc = 0;
  TS_TRY(ts_tensor_from_data(nhwc, TS_NN_U8, shape, 4, &u));
  if (e->device != TS_NN_CPU) {
    TS_TRY(ts_tensor_to_device(u, e->device, &dev));
    ts_tensor_free(&u);
    u = dev;
    dev = NULL;
  }
  TS_TRY(ts_tensor_to_dtype(u, TS_NN_F32, &f));
  TS_TRY(ts_tensor_permute(f, perm, 4, &p));
  ts_tensor_free(&f);
  TS_TRY(ts_tensor_contiguous(p, &f));
  if (h != e->input_size || w != e->input_size) {
    TS_TRY(ts_nn_interpolate_bilinear(f, e->input_size, e->input_size, false, &r));
    ts_tensor_free(&f);
    f = r;
    r = NULL;
  }
  TS_TRY(ts_nn_mul(f, e->scale, &m));
  TS_TRY(ts_nn_add(m, e->shift, out));
out:
  ts_tensor_free(&u);
  ts_tensor_free(&f);
  ts_tensor_free(&p);
  ts_tensor_free(&r);
  ts_tensor_free(&m);
  ts_tensor_free(&dev);
  return rc;
}

int ts_encoder_forward_u8(ts_encoder *e, const uint8_t *nhwc, int64_t n, int h, int w, float *out,
                          size_t out_len) {
  int rc = 0;
  ts_nn_guard *g = NULL;
  ts_tensor *x = NULL, *y = NULL;
  if (!e || !nhwc || !out || n < 1 || h < 1 || w < 1)
    return ts_error_set(TS_EINVAL, "NN_ARG", "ts_encoder_forward_u8: NULL buffer or empty batch");
  if (out_len != (size_t)n * (size_t)e->dim)
    TS_FAIL(TS_EINVAL, "NN_SHAPE", "encoder '%s': out has %zu floats, need %lld × %d", e->name, out_len,
            (long long)n, e->dim);
  TS_TRY(ts_nn_inference_mode_begin(&g));
  /* Micro-batches: a batch of 16 at 224 px has ~50 MB activations per tensor, which glibc serves
   * with fresh mmaps (page faults: measured 2x the CPU time per tile of micro-batches of 4). */
  for (int64_t i = 0; i < n; i += e->micro_batch) {
    int64_t m = n - i < e->micro_batch ? n - i : e->micro_batch;
    TS_TRY(preprocess(e, nhwc + (size_t)i * h * w * 3, m, h, w, &x));
    TS_TRY(ts_encoder_forward(e, x, &y));
    if (ts_tensor_size(y, 1) != e->dim)
      TS_FAIL(TS_EINPUT, "NN_SHAPE", "encoder '%s': output dim %lld, expected %d", e->name,
              (long long)ts_tensor_size(y, 1), e->dim);
    TS_TRY(ts_tensor_copy_to(y, out + (size_t)i * e->dim, (size_t)m * e->dim * sizeof *out, TS_NN_F32));
    ts_tensor_free(&x);
    ts_tensor_free(&y);
  }
out:
  ts_tensor_free(&x);
  ts_tensor_free(&y);
  ts_nn_guard_end(&g);
  if (rc < 0 && out) memset(out, 0, out_len * sizeof *out);
  return rc;
}

static int make_norm(ts_encoder *e, const ts_encoder_opts *o) {
  float scale[3], shift[3];
  int64_t shape[4] = {1, 3, 1, 1};
  for (int c = 0; c < 3; c++) {
    if (!(o->std[c] > 0))
      return ts_error_set(TS_ECONFIG, "ENCODER_UNKNOWN", "normalisation std[%d] = %g must be > 0", c,
                          o->std[c]);
    scale[c] = (float)(1.0 / (255.0 * o->std[c]));
    shift[c] = (float)(-o->mean[c] / o->std[c]);
  }
  ts_tensor *a = NULL, *b = NULL;
  int rc = 0;
  TS_TRY(ts_tensor_from_data(scale, TS_NN_F32, shape, 4, &a));
  TS_TRY(ts_tensor_from_data(shift, TS_NN_F32, shape, 4, &b));
  TS_TRY(ts_tensor_to_device(a, e->device, &e->scale));
  TS_TRY(ts_tensor_to_device(b, e->device, &e->shift));
out:
  ts_tensor_free(&a);
  ts_tensor_free(&b);
  return rc;
}

static int init_jit(ts_encoder *e, const char *path) {
  ts_tensor *x = NULL, *y = NULL;
  ts_nn_guard *g = NULL;
  int rc = 0;
  int64_t shape[4] = {1, 3, e->input_size, e->input_size};
  TS_TRY(ts_jit_load(path, e->device, &e->jit));
  TS_TRY(ts_jit_state(e->jit, &e->state));
  TS_TRY(ts_nn_inference_mode_begin(&g));
  {
    ts_tensor *z = NULL;
    TS_TRY(ts_tensor_zeros(shape, 4, TS_NN_F32, &z));
    rc = ts_tensor_to_device(z, e->device, &x);
    ts_tensor_free(&z);
    if (rc < 0) goto out;
  }
  TS_TRY(ts_encoder_forward(e, x, &y));
  e->dim = (int)ts_tensor_size(y, 1);
out:
  ts_tensor_free(&x);
  ts_tensor_free(&y);
  ts_nn_guard_end(&g);
  return rc;
}

int ts_encoder_new(const char *name, const ts_encoder_opts *opts, ts_encoder **out) {
  ts_encoder_opts def;
  ts_encoder *e = NULL;
  ts_nn_state *ck = NULL;
  int rc = 0;
  if (!out || !name) return ts_error_set(TS_EINVAL, "NN_ARG", "ts_encoder_new: NULL argument");
  *out = NULL;
  if (!opts) {
    ts_encoder_opts_default(&def);
    opts = &def;
  }
  if (opts->input_size < 16 || opts->input_size > 4096)
    return ts_error_set(TS_ECONFIG, "ENCODER_UNKNOWN", "input size %d out of [16, 4096]", opts->input_size);
  TS_CALL(ts_nn_tune_malloc());
  e = calloc(1, sizeof *e);
  if (!e || !(e->name = strdup(name))) {
    free(e);
    return ts_error_set(TS_ENOMEM, "NN_OOM", "ts_encoder_new: out of memory");
  }
  e->input_size = opts->input_size;
  e->device = opts->device;
  e->micro_batch = opts->micro_batch > 0 ? opts->micro_batch : 4;
  TS_TRY(make_norm(e, opts));
  if (strncmp(name, "torchscript:", 12) == 0) {
    if (opts->checkpoint)
      TS_FAIL(TS_ECONFIG, "ENCODER_UNKNOWN",
              "encoder '%s': a TorchScript file carries its weights; no checkpoint", name);
    TS_TRY(init_jit(e, name + 12));
  } else {
    const struct arch *a = NULL;
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++)
      if (strcmp(ARCHS[i].name, name) == 0) a = &ARCHS[i];
    if (!a)
      TS_FAIL(TS_ECONFIG, "ENCODER_UNKNOWN",
              "unknown encoder '%s' (resnet50_trunc, resnet50, resnet18, resnet_tiny, torchscript:PATH)",
              name);
    TS_TRY(ts_nn_state_new(&e->state));
    TS_TRY(build_resnet(e, a, opts->seed));
    if (opts->checkpoint) {
      TS_TRY(ts_nn_state_load_h5(opts->checkpoint, &ck));
      TS_TRY(ts_nn_state_copy_into(e->state, ck, NULL));
    }
  }
  TS_TRY(ts_nn_state_sha256(e->state, e->hash));
  *out = e;
  e = NULL;
out:
  ts_nn_state_free(&ck);
  ts_encoder_free(&e);
  return rc;
}

void ts_encoder_free(ts_encoder **e) {
  if (!e || !*e) return;
  ts_nn_state_free(&(*e)->state);
  ts_jit_free(&(*e)->jit);
  ts_tensor_free(&(*e)->scale);
  ts_tensor_free(&(*e)->shift);
  free((*e)->name);
  free(*e);
  *e = NULL;
}

int ts_encoder_dim(const ts_encoder *e) {
  return e ? e->dim : 0;
}
int ts_encoder_micro_batch(const ts_encoder *e) {
  return e ? e->micro_batch : 0;
}
int ts_encoder_input_size(const ts_encoder *e) {
  return e ? e->input_size : 0;
}
const char *ts_encoder_name(const ts_encoder *e) {
  return e ? e->name : "";
}
const char *ts_encoder_weights_hash(const ts_encoder *e) {
  return e ? e->hash : "";
}
ts_nn_state *ts_encoder_state(const ts_encoder *e) {
  return e ? e->state : NULL;
}

int ts_encoder_save(const ts_encoder *e, const char *path) {
  if (!e) return ts_error_set(TS_EINVAL, "NN_ARG", "ts_encoder_save: NULL encoder");
  return ts_nn_state_save_h5(e->state, path, e->name);
}
