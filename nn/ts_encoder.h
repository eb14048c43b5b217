/* ts_encoder.h — tile encoders: a batch of RGB tiles in, one feature vector per tile out.
 *
 * Built-in architectures are ResNets written in C on ts_nn.h, with parameter names exactly as
 * torchvision's state_dict, so a torchvision checkpoint converted to HDF5
 * (schemas/nn_checkpoint.md) loads unchanged. Weights cannot be downloaded here: a built-in
 * encoder starts from a seeded initialisation (torchvision's: Kaiming-normal fan-out convs, BN
 * weight 1 / bias 0) or from an HDF5 checkpoint. Any other model comes as TorchScript.
 *
 *     ts_encoder_opts o;
 *     ts_encoder_opts_default(&o);            // 224 px, ImageNet mean/std, seed 1, CPU,
 *                                             // micro-batches of 4
 *     o.checkpoint = "resnet50.h5";           // or NULL: seeded init
 *     ts_encoder *enc = NULL;
 *     TS_CALL(ts_encoder_new("resnet50_trunc", &o, &enc));
 *     float *feat = malloc(n * ts_encoder_dim(enc) * sizeof *feat);
 *     TS_CALL(ts_encoder_forward_u8(enc, tiles_nhwc, n, 256, 256, feat, n * ts_encoder_dim(enc)));
 *     record(ts_encoder_name(enc), ts_encoder_weights_hash(enc));
 *     ts_encoder_free(&enc);
 *
 * Names:
 *   "resnet50_trunc"  ResNet-50 (torchvision v1.5 bottlenecks) cut after layer3, adaptive average
 *                     pooling: 1024-d. CLAM's default extractor (resnet50_trunc_baseline).
 *   "resnet50"        the full trunk to layer4, pooled: 2048-d (no fc).
 *   "resnet18"        basic blocks [2,2,2,2], pooled: 512-d (no fc).
 *   "resnet_tiny"     basic blocks [1,1,1,1], width 8, pooled: 64-d — for tests.
 *   "torchscript:PATH"  a module saved with torch.jit.save whose forward takes a float
 *                     [N, 3, S, S] normalised batch and returns [N, D] (or a tuple whose first
 *                     element is). D is found by one forward pass at creation.
 *
 * Inference runs in eval mode (batch norm uses running statistics) inside an inference-mode
 * scope. Tiles of another size than input_size are resized (bilinear) before normalisation.
 * Creating an encoder tunes glibc malloc for large tensors once per process (ts_nn_tune_malloc).
 * Thread safety: one encoder per thread, or serialise calls; LibTorch's intra-op threads
 * (ts_nn_set_num_threads) parallelise each forward.
 * Errors: ENCODER_UNKNOWN (TS_ECONFIG) for a bad name or option, NN_* from ts_nn.h.
 */
#ifndef TS_ENCODER_H
#define TS_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "ts_nn.h"

typedef struct ts_encoder ts_encoder;

typedef struct ts_encoder_opts {
  int input_size;         /* side in px of the network input (tiles are resized to it) */
  double mean[3], std[3]; /* per-channel normalisation of [0,1] RGB: (x - mean) / std */
  uint64_t seed;          /* seeded init of built-in encoders; ignored for torchscript: */
  const char *checkpoint; /* HDF5 checkpoint for a built-in encoder, or NULL */
  int device;             /* TS_NN_CPU or a CUDA ordinal */
  int micro_batch;        /* tiles per forward pass inside ts_encoder_forward_u8 (0: 4); the
                           * caller's batch is split so activations stay cache- and malloc-
                           * friendly (see encoder.c) */
} ts_encoder_opts;

/* 224 px, ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225), seed 1, no
 * checkpoint, CPU, micro-batch 4. */
void ts_encoder_opts_default(ts_encoder_opts *o);

/* Create by name (see above). o may be NULL (defaults). *out owned by the caller. */
int ts_encoder_new(const char *name, const ts_encoder_opts *o, ts_encoder **out);
/* Accepts NULL; sets *e = NULL. */
void ts_encoder_free(ts_encoder **e);

/* Output dimension D. */
int ts_encoder_dim(const ts_encoder *e);
int ts_encoder_input_size(const ts_encoder *e);
/* Tiles per forward pass: ts_encoder_forward_u8 runs only shapes [1..micro_batch]. */
int ts_encoder_micro_batch(const ts_encoder *e);
/* The name it was created with (borrowed, valid while e lives). */
const char *ts_encoder_name(const ts_encoder *e);
/* SHA-256 over the parameters and buffers (ts_nn_state_sha256: names, shapes, bytes), 64 hex
 * chars, computed at creation (borrowed). Same weights, same hash, whatever their origin. */
const char *ts_encoder_weights_hash(const ts_encoder *e);
/* The named parameters and buffers, state_dict names (borrowed; for TorchScript, the module's
 * own). Modifying tensors in place changes the model but not the recorded hash. */
ts_nn_state *ts_encoder_state(const ts_encoder *e);
/* Save the weights as an HDF5 checkpoint (durable write), with arch = the encoder's name. */
int ts_encoder_save(const ts_encoder *e, const char *path);

/* Encode n tiles: nhwc is n × h × w × 3 uint8 RGB, row-major (the tile reader's layout).
 * out receives n × D float32 row-major; out_len must be n × D (NN_SHAPE otherwise). On failure
 * out is zeroed, so no partial features escape. */
int ts_encoder_forward_u8(ts_encoder *e, const uint8_t *nhwc, int64_t n, int h, int w, float *out,
                          size_t out_len);
/* The network alone on an already normalised float [N, 3, S, S] tensor: *out is [N, D]. */
int ts_encoder_forward(ts_encoder *e, const ts_tensor *x, ts_tensor **out);

#endif
