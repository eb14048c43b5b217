/* ts_nn.h — tessera's C interface to LibTorch: tensors, ops, autograd, optimisers, TorchScript,
 * named parameter sets ("state dicts") stored in HDF5, and .pt tensor files for PyTorch tools.
 *
 * Why a C API: tessera is C11; LibTorch is C++. All of LibTorch lives behind this header in ONE
 * C++ translation unit (nn/torch_api.cpp; including torch.h costs ~25 s and 1.3 GB to compile).
 * The model of the API is tch-rs's libtch (torch_api.h), with two differences: every call returns
 * a status (0, or a negative TS_E* code from ts_error.h) *and* sets the thread-local message
 * (tch-rs only sets a message that the caller must remember to poll), and handles are opaque
 * structs, never typedef'd pointers.
 *
 * A worked example — a two-layer MLP step (error handling shortened to TS_TRY):
 *
 *     #include "ts_nn.h"
 *
 *     int train_step(const float *xbuf, const float *ybuf, int64_t n) {
 *       int rc = 0;
 *       ts_tensor *w1 = NULL, *w2 = NULL, *x = NULL, *y = NULL, *h = NULL, *a = NULL,
 *                 *p = NULL, *loss = NULL;
 *       ts_optim *opt = NULL;
 *       int64_t xs[2] = {n, 4}, ys[2] = {n, 1}, s1[2] = {16, 4}, s2[2] = {1, 16};
 *       TS_TRY(ts_tensor_from_data(xbuf, TS_NN_F32, xs, 2, &x));      // copies xbuf
 *       TS_TRY(ts_tensor_from_data(ybuf, TS_NN_F32, ys, 2, &y));
 *       TS_TRY(ts_tensor_randn(s1, 2, TS_NN_F32, 42, &w1));           // seeded, CPU
 *       TS_TRY(ts_tensor_randn(s2, 2, TS_NN_F32, 43, &w2));
 *       TS_TRY(ts_tensor_set_requires_grad(w1, true));
 *       TS_TRY(ts_tensor_set_requires_grad(w2, true));
 *       const ts_tensor *params[] = {w1, w2};
 *       TS_TRY(ts_optim_adamw_new(params, 2, 1e-2, 0.9, 0.999, 1e-8, 0.0, &opt));
 *       TS_TRY(ts_nn_linear(x, w1, NULL, &h));                        // new handle in h
 *       TS_TRY(ts_nn_relu(h, &a));
 *       TS_TRY(ts_nn_linear(a, w2, NULL, &p));
 *       TS_TRY(ts_nn_mse_loss(p, y, &loss));
 *       TS_TRY(ts_optim_zero_grad(opt));
 *       TS_TRY(ts_tensor_backward(loss));
 *       TS_TRY(ts_optim_step(opt));
 *     out:
 *       if (rc < 0) fprintf(stderr, "%s\n", ts_error_message());  // "NN_SHAPE: linear: ..."
 *       ts_optim_free(&opt);                  // the optimiser's references go
 *       ts_tensor_free(&w1), ts_tensor_free(&w2), ts_tensor_free(&x), ts_tensor_free(&y);
 *       ts_tensor_free(&h), ts_tensor_free(&a), ts_tensor_free(&p), ts_tensor_free(&loss);
 *       return rc;
 *     }
 *
 * Conventions (they hold for every function below unless it says otherwise):
 *  - Ownership: a function that produces a tensor writes a NEW handle to `*out`; the caller owns
 *    it and releases it with ts_tensor_free(). Handles are reference-counted views of LibTorch
 *    tensors: freeing a handle never invalidates another handle, even one that shares storage
 *    (a view, a parameter held by an optimiser). Inputs are borrowed, never freed.
 *  - On failure `*out` is set to NULL, the status is negative and ts_error_message() holds
 *    "TOKEN: details". Tokens: NN_ARG (NULL or out-of-range argument, TS_EINVAL), NN_SHAPE
 *    (incompatible shapes, TS_EINVAL), NN_DTYPE (unsupported dtype, TS_EINVAL), NN_DEVICE
 *    (device not available, e.g. CUDA on a CPU-only LibTorch, TS_EINVAL), NN_NO_GRAD (no gradient,
 *    TS_EINVAL), NN_JIT (TorchScript file cannot be loaded or run, TS_EINPUT), NN_CHECKPOINT
 *    (HDF5 checkpoint missing/malformed/mismatching, TS_EINPUT or TS_EIO), NN_OOM (TS_ENOMEM),
 *    NN_ERROR (any other LibTorch error, TS_EINTERNAL; the message is LibTorch's first line).
 *    NN_SHAPE for errors raised inside LibTorch is best effort (recognised from the message).
 *  - No C++ exception ever crosses this interface.
 *  - Thread safety: distinct handles may be used from distinct threads. A handle must not be
 *    used from two threads at once. Grad-mode guards are per thread (LibTorch's are).
 *  - Devices: an int; TS_NN_CPU (-1) or a CUDA ordinal (0, 1, ...). Tensors are created on the
 *    CPU; ts_tensor_to_device() moves them.
 *  - Dimensions may be negative (counted from the end), as in PyTorch.
 */
#ifndef TS_NN_H
#define TS_NN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ts_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ts_tensor ts_tensor;         /* a LibTorch tensor (reference) */
typedef struct ts_optim ts_optim;           /* an optimiser over a fixed list of parameters */
typedef struct ts_nn_guard ts_nn_guard;     /* a no-grad or inference-mode scope */
typedef struct ts_jit_module ts_jit_module; /* a TorchScript module */
typedef struct ts_nn_state ts_nn_state;     /* named tensors, ordered: a PyTorch state_dict */

enum ts_nn_dtype {
  TS_NN_F32 = 0,
  TS_NN_F16 = 1,
  TS_NN_U8 = 2,
  TS_NN_I64 = 3,
  TS_NN_F64 = 4, /* for gradient checks and statistics */
  TS_NN_BOOL = 5,
};

#define TS_NN_CPU (-1)
#define TS_NN_MAX_DIMS 8
/* For reductions: reduce over all dimensions. */
#define TS_NN_ALL_DIMS INT32_MIN

/* ---- Library ---------------------------------------------------------------------------- */

/* LibTorch's version, e.g. "1.13.1". Static string. */
const char *ts_nn_version(void);
/* Intra-op threads. LibTorch's default on this VM is 1, so tessera sets it explicitly. n >= 1.
 * Process-wide. */
int ts_nn_set_num_threads(int n);
int ts_nn_get_num_threads(void);
/* Deterministic algorithms (at::globalContext().setDeterministicAlgorithms): ops without a
 * deterministic implementation then fail with NN_ERROR instead of varying. Process-wide. */
int ts_nn_set_deterministic(bool on);
bool ts_nn_get_deterministic(void);
/* Seed LibTorch's global generators (dropout, ts_tensor_rand* with seed 0 use it). */
int ts_nn_manual_seed(uint64_t seed);
/* The global CPU generator's state (at::CPUGeneratorImpl::get_state: the mt19937 state and the
 * cached Box-Muller sample), as a NEW 1-D uint8 tensor (a copy; ~5 kB) in *out: checkpoint it
 * with the weights (ts_nn_state_add + ts_nn_state_save_h5, which stores it as int64) so that the
 * dropout masks of a resumed training are those of an uninterrupted one. CUDA generators are not
 * included (Debian's LibTorch has none). Thread-safe (the generator's mutex). */
int ts_nn_rng_state(ts_tensor **out);
/* Restore a state from ts_nn_rng_state: a 1-D tensor of the same length, uint8, or integer with
 * values in 0..255 (what ts_nn_state_load_h5 gives back). The global generator then draws exactly
 * what it drew after the state was taken. NN_ARG (NULL), NN_CHECKPOINT (wrong length, dtype or
 * values; the generator is left unchanged). Process-wide; thread-safe.
 * Private generators need nothing of this: ts_tensor_randn/ts_tensor_rand with seed != 0 build a
 * fresh one per call, so their values depend on the seed alone. */
int ts_nn_rng_set_state(const ts_tensor *state);
/* Whether this LibTorch build has CUDA and a device is present (Debian's: never). */
bool ts_nn_cuda_available(void);
int ts_nn_cuda_device_count(void);
/* Tune glibc malloc for large tensors (mmap threshold 32 MiB, trim threshold 1 GiB, top pad
 * 64 MiB) so activations are reused instead of page-faulted in on every forward pass (2-3x
 * faster CNN inference on CPU here; see nn/malloc_tune.c). Process-wide; idempotent; not
 * thread-safe against concurrent first calls. ts_encoder_new() calls it. */
int ts_nn_tune_malloc(void);
/* Size in bytes of one element of dtype (0 when unknown). */
size_t ts_nn_dtype_size(int dtype);

/* ---- Tensors: creation, copies, metadata -------------------------------------------------- */

/* Release a handle; accepts NULL and *t == NULL; sets *t = NULL. */
void ts_tensor_free(ts_tensor **t);
/* A new CPU tensor of the given shape, COPIED from data (row-major, contiguous, `dtype`).
 * ndim 0 makes a scalar. NN_ARG on NULL data with a non-empty shape or negative sizes. */
int ts_tensor_from_data(const void *data, int dtype, const int64_t *shape, int ndim, ts_tensor **out);
int ts_tensor_zeros(const int64_t *shape, int ndim, int dtype, ts_tensor **out);
int ts_tensor_ones(const int64_t *shape, int ndim, int dtype, ts_tensor **out);
int ts_tensor_full(const int64_t *shape, int ndim, int dtype, double value, ts_tensor **out);
/* 0, 1, ..., n-1 (int64). */
int ts_tensor_arange(int64_t n, ts_tensor **out);
/* Standard normal / uniform [0,1) (floating dtypes). seed != 0: a private generator seeded with
 * it (same seed, same values, whatever else runs); seed == 0: the global generator. */
int ts_tensor_randn(const int64_t *shape, int ndim, int dtype, uint64_t seed, ts_tensor **out);
int ts_tensor_rand(const int64_t *shape, int ndim, int dtype, uint64_t seed, ts_tensor **out);
/* Copy the tensor's values into a caller buffer, converted to `dtype`, row-major. nbytes must
 * be exactly numel * ts_nn_dtype_size(dtype) (NN_SHAPE otherwise). Works for any device. */
int ts_tensor_copy_to(const ts_tensor *t, void *buf, size_t nbytes, int dtype);
/* The value of a one-element tensor as double. */
int ts_tensor_item(const ts_tensor *t, double *value_out);
/* In place, without recording autograd: dst <- src (shapes must match; dtype converted). For
 * loading weights into parameters that require grad. */
int ts_tensor_copy_(ts_tensor *dst, const ts_tensor *src);
/* In place dst <- value (no autograd). */
int ts_tensor_fill_(ts_tensor *dst, double value);
/* Another handle to the same tensor (shares storage and autograd identity). */
int ts_tensor_alias(const ts_tensor *t, ts_tensor **out);
/* Deep copy (keeps the autograd graph, like torch.clone). */
int ts_tensor_clone(const ts_tensor *t, ts_tensor **out);
/* Same storage, cut from the autograd graph. */
int ts_tensor_detach(const ts_tensor *t, ts_tensor **out);
int ts_tensor_contiguous(const ts_tensor *t, ts_tensor **out);
int ts_tensor_to_dtype(const ts_tensor *t, int dtype, ts_tensor **out);
/* Move to TS_NN_CPU or a CUDA ordinal. NN_DEVICE when that device is not available. */
int ts_tensor_to_device(const ts_tensor *t, int device, ts_tensor **out);

/* Metadata: these cannot fail on a valid handle; on NULL they return -1 / 0 / false. */
int ts_tensor_ndim(const ts_tensor *t);
/* Writes min(ndim, max_dims) sizes; returns ndim. */
int ts_tensor_shape(const ts_tensor *t, int64_t *shape_out, int max_dims);
int64_t ts_tensor_size(const ts_tensor *t, int dim);
int64_t ts_tensor_numel(const ts_tensor *t);
int ts_tensor_dtype(const ts_tensor *t);
int ts_tensor_device(const ts_tensor *t);
bool ts_tensor_defined(const ts_tensor *t);

/* ---- Views (share storage with the input, like PyTorch) ------------------------------------ */

/* One size may be -1 (inferred). NN_SHAPE when numel differs. */
int ts_tensor_reshape(const ts_tensor *t, const int64_t *shape, int ndim, ts_tensor **out);
int ts_tensor_permute(const ts_tensor *t, const int64_t *dims, int ndim, ts_tensor **out);
int ts_tensor_transpose(const ts_tensor *t, int dim0, int dim1, ts_tensor **out);
/* t[..., start:start+length, ...] along dim (torch.narrow): a slice. */
int ts_tensor_narrow(const ts_tensor *t, int dim, int64_t start, int64_t length, ts_tensor **out);
/* t[..., index, ...]: removes dim. */
int ts_tensor_select(const ts_tensor *t, int dim, int64_t index, ts_tensor **out);
int ts_tensor_unsqueeze(const ts_tensor *t, int dim, ts_tensor **out);
/* Remove dim when it has size 1 (no-op otherwise). */
int ts_tensor_squeeze(const ts_tensor *t, int dim, ts_tensor **out);
int ts_tensor_flatten(const ts_tensor *t, int start_dim, int end_dim, ts_tensor **out);
/* Gather rows (copy, not a view): index is int64 1-D. */
int ts_tensor_index_select(const ts_tensor *t, int dim, const ts_tensor *index, ts_tensor **out);

/* ---- Element-wise and linear algebra (broadcasting as in PyTorch) -------------------------- */

int ts_nn_add(const ts_tensor *a, const ts_tensor *b, ts_tensor **out);
int ts_nn_sub(const ts_tensor *a, const ts_tensor *b, ts_tensor **out);
int ts_nn_mul(const ts_tensor *a, const ts_tensor *b, ts_tensor **out);
int ts_nn_div(const ts_tensor *a, const ts_tensor *b, ts_tensor **out);
/* a + s, a * s, a ^ s. */
int ts_nn_add_scalar(const ts_tensor *a, double s, ts_tensor **out);
int ts_nn_mul_scalar(const ts_tensor *a, double s, ts_tensor **out);
int ts_nn_pow_scalar(const ts_tensor *a, double s, ts_tensor **out);
int ts_nn_matmul(const ts_tensor *a, const ts_tensor *b, ts_tensor **out);
int ts_nn_relu(const ts_tensor *x, ts_tensor **out);
int ts_nn_gelu(const ts_tensor *x, ts_tensor **out);
int ts_nn_tanh(const ts_tensor *x, ts_tensor **out);
int ts_nn_sigmoid(const ts_tensor *x, ts_tensor **out);
int ts_nn_exp(const ts_tensor *x, ts_tensor **out);
int ts_nn_log(const ts_tensor *x, ts_tensor **out);
int ts_nn_neg(const ts_tensor *x, ts_tensor **out);
int ts_nn_sqrt(const ts_tensor *x, ts_tensor **out);
int ts_nn_abs(const ts_tensor *x, ts_tensor **out);
/* Concatenate / stack n >= 1 tensors along dim. */
int ts_nn_cat(const ts_tensor *const *xs, int n, int dim, ts_tensor **out);
int ts_nn_stack(const ts_tensor *const *xs, int n, int dim, ts_tensor **out);

/* ---- Reductions (dim = TS_NN_ALL_DIMS reduces everything to a scalar) ---------------------- */

int ts_nn_sum(const ts_tensor *x, int dim, bool keepdim, ts_tensor **out);
int ts_nn_mean(const ts_tensor *x, int dim, bool keepdim, ts_tensor **out);
/* Maximum values (not indices). */
int ts_nn_max(const ts_tensor *x, int dim, bool keepdim, ts_tensor **out);
int ts_nn_logsumexp(const ts_tensor *x, int dim, bool keepdim, ts_tensor **out);
/* Indices of the maxima along dim (int64; no gradient). */
int ts_nn_argmax(const ts_tensor *x, int dim, bool keepdim, ts_tensor **out);
/* Indices that sort along dim (int64; no gradient). */
int ts_nn_argsort(const ts_tensor *x, int dim, bool descending, ts_tensor **out);
/* Cumulative sum and log(cumsum(exp(x))) along dim (the Cox partial likelihood's risk sets). */
int ts_nn_cumsum(const ts_tensor *x, int dim, ts_tensor **out);
int ts_nn_logcumsumexp(const ts_tensor *x, int dim, ts_tensor **out);

/* ---- Neural-network layers (functional: the weights are arguments) ------------------------- */

/* y = x W^T + b; w: [out, in], b: [out] or NULL. */
int ts_nn_linear(const ts_tensor *x, const ts_tensor *w, const ts_tensor *b, ts_tensor **out);
/* x: [N, C, H, W], w: [O, C/groups, kh, kw], b: [O] or NULL. stride/padding/dilation: {h, w}. */
int ts_nn_conv2d(const ts_tensor *x, const ts_tensor *w, const ts_tensor *b, const int64_t stride[2],
                 const int64_t padding[2], const int64_t dilation[2], int64_t groups, ts_tensor **out);
/* Batch norm over dim 1. training: batch statistics, and running_mean/var (may be NULL only when
 * training) are updated in place with `momentum` (PyTorch's convention: new = (1-m) old + m batch).
 * Eval: running statistics. weight/bias may be NULL. */
int ts_nn_batch_norm(const ts_tensor *x, const ts_tensor *weight, const ts_tensor *bias,
                     ts_tensor *running_mean, ts_tensor *running_var, bool training, double momentum,
                     double eps, ts_tensor **out);
/* Layer norm over the last `nd` dims, whose sizes are `shape`; weight/bias may be NULL. */
int ts_nn_layer_norm(const ts_tensor *x, const int64_t *shape, int nd, const ts_tensor *weight,
                     const ts_tensor *bias, double eps, ts_tensor **out);
/* Square pooling windows: kernel k, stride s, padding p. */
int ts_nn_max_pool2d(const ts_tensor *x, int64_t k, int64_t s, int64_t p, ts_tensor **out);
int ts_nn_avg_pool2d(const ts_tensor *x, int64_t k, int64_t s, int64_t p, ts_tensor **out);
int ts_nn_adaptive_avg_pool2d(const ts_tensor *x, int64_t oh, int64_t ow, ts_tensor **out);
/* Bilinear resize of [N, C, H, W] to oh × ow (torch.nn.functional.interpolate, antialias off). */
int ts_nn_interpolate_bilinear(const ts_tensor *x, int64_t oh, int64_t ow, bool align_corners,
                               ts_tensor **out);
int ts_nn_softmax(const ts_tensor *x, int dim, ts_tensor **out);
int ts_nn_log_softmax(const ts_tensor *x, int dim, ts_tensor **out);
/* Inverted dropout: training zeroes each element with probability p and scales by 1/(1-p);
 * otherwise identity. Uses the global generator (ts_nn_manual_seed). */
int ts_nn_dropout(const ts_tensor *x, double p, bool training, ts_tensor **out);
/* ts_nn_dropout with tessera's own mask (nn/torch_api.cpp): the same distribution (each element
 * dropped with probability p, to float32's 2^-24 resolution; kept ones scaled by 1/(1-p)), drawn
 * from the same global generator (uniform_), ~3x faster on CPU than LibTorch 1.13's bool
 * bernoulli_ mask, but not the masks at::dropout would draw for the same seed. float32/float64
 * (other dtypes: ts_nn_dropout). Used by the survival models (ts_survnet.h). */
int ts_nn_dropout_fast(const ts_tensor *x, double p, bool training, ts_tensor **out);
/* ELU (torch.nn.functional.elu): x for x > 0, alpha (e^x - 1) otherwise (alpha 1: nn.ELU()). */
int ts_nn_elu(const ts_tensor *x, double alpha, ts_tensor **out);
/* Alpha dropout (torch.nn.functional.alpha_dropout, SELU networks' dropout; nn.AlphaDropout):
 * training drops each element with probability p to SELU's negative saturation value and applies
 * the affine map that keeps mean 0 and variance 1; otherwise identity. p in [0, 1) (NN_ARG).
 * Uses the global generator (ts_nn_manual_seed). */
int ts_nn_alpha_dropout(const ts_tensor *x, double p, bool training, ts_tensor **out);
/* x / max(||x||_p along dim, eps) (torch.nn.functional.normalize; p = 2 for SwAV). */
int ts_nn_normalize(const ts_tensor *x, double p, int dim, double eps, ts_tensor **out);
/* Mean squared error (mean reduction) -> scalar. */
int ts_nn_mse_loss(const ts_tensor *pred, const ts_tensor *target, ts_tensor **out);
/* Cross entropy of logits [N, C] against int64 class indices [N] (mean) -> scalar. */
int ts_nn_cross_entropy(const ts_tensor *logits, const ts_tensor *target, ts_tensor **out);

/* ---- Autograd ------------------------------------------------------------------------------ */

int ts_tensor_set_requires_grad(ts_tensor *t, bool on);
bool ts_tensor_requires_grad(const ts_tensor *t);
/* d(t)/d(leaves), accumulated into the leaves' .grad. t must be a scalar (NN_SHAPE). */
int ts_tensor_backward(const ts_tensor *t);
/* A new handle to t's gradient. NN_NO_GRAD when t has none (never reached by backward). */
int ts_tensor_grad(const ts_tensor *t, ts_tensor **out);
/* Zero (set undefined) t's gradient. */
int ts_tensor_zero_grad(ts_tensor *t);
/* Scopes, per thread, ended in LIFO order by ts_nn_guard_end on the SAME thread:
 * no-grad (torch.no_grad) and inference mode (torch.inference_mode: faster, but tensors made in
 * it can never enter autograd later). *out is owned by the caller until ts_nn_guard_end. */
int ts_nn_no_grad_begin(ts_nn_guard **out);
int ts_nn_inference_mode_begin(ts_nn_guard **out);
/* Ends the scope and frees the guard; accepts NULL; sets *g = NULL. */
void ts_nn_guard_end(ts_nn_guard **g);
/* Whether gradients are being recorded on this thread. */
bool ts_nn_grad_enabled(void);

/* ---- Optimisers (torch.optim semantics) ---------------------------------------------------- */

/* The optimiser keeps its own references to the n parameters (the caller's handles stay valid
 * and may be freed independently). SGD: momentum 0 disables it; weight_decay is L2 added to the
 * gradient; nesterov needs momentum > 0. */
int ts_optim_sgd_new(const ts_tensor *const *params, int n, double lr, double momentum, double weight_decay,
                     bool nesterov, ts_optim **out);
/* AdamW (decoupled weight decay, Loshchilov & Hutter 2019). */
int ts_optim_adamw_new(const ts_tensor *const *params, int n, double lr, double beta1, double beta2,
                       double eps, double weight_decay, ts_optim **out);
/* Adam (torch.optim.Adam): weight_decay is L2 added to the gradient before the moments, what
 * CLAM trains with (optim.Adam(lr=2e-4, weight_decay=1e-5)). */
int ts_optim_adam_new(const ts_tensor *const *params, int n, double lr, double beta1, double beta2,
                      double eps, double weight_decay, ts_optim **out);
int ts_optim_step(ts_optim *o);
int ts_optim_zero_grad(ts_optim *o);
int ts_optim_set_lr(ts_optim *o, double lr);
double ts_optim_get_lr(const ts_optim *o);
void ts_optim_free(ts_optim **o);

/* Optimiser state for checkpoints: a NEW state in *out (the caller frees it with
 * ts_nn_state_free) holding COPIES (later steps do not change it) named as PyTorch's
 * optimizer.state_dict() flattened with '.', <i> being the parameter's index in the array the
 * optimiser was built with:
 *   Adam, AdamW (the same state, as in PyTorch): "state.<i>.step" (int64 scalar; Python's 1.13 keeps a float32 one),
 *          "state.<i>.exp_avg", "state.<i>.exp_avg_sq" (the parameter's shape and dtype),
 *          "param_groups.0.lr", ".eps", ".weight_decay" (float64 scalars), ".betas" (float64 [2]),
 *          ".amsgrad" (int64 0/1);
 *   SGD:   "state.<i>.momentum_buffer" (only once a step with momentum > 0 has made it),
 *          "param_groups.0.lr", ".momentum", ".dampening", ".weight_decay" (float64 scalars),
 *          ".nesterov" (int64 0/1);
 *   both:  "param_groups.0.params" (int64 [n]: 0..n-1, the parameter count).
 * A parameter that has not been stepped has no "state.<i>.*" entries, as in PyTorch. The state
 * survives ts_nn_state_save_h5/ts_nn_state_load_h5 exactly (float64 stays float64; the moments
 * are float32 like the parameters). Layout: schemas/nn_checkpoint.md. NN_ARG on NULL. */
int ts_optim_state(const ts_optim *o, ts_nn_state **out);
/* Restore a state from ts_optim_state (or its HDF5 round trip) into an optimiser of the same kind
 * built over parameters of the same count and shapes (the same model, e.g. a fresh process
 * resuming): per-parameter state by index (copied into the parameter's dtype and device), and
 * the learning rate (a schedule may have moved it; ts_optim_get_lr then returns it). The other
 * hyper-parameters are not taken over but checked: they must equal the optimiser's exactly.
 * Entries the optimiser does not know are an error. Steps may be int64 or integral floats (a
 * state converted from PyTorch). Errors: NN_ARG (NULL); NN_CHECKPOINT (TS_EINPUT) naming the
 * first offending entry: the other optimiser kind's ("'param_groups.0.betas' says this is an
 * AdamW state; the optimiser is SGD"), a missing one, a parameter count or shape that differs, a
 * hyper-parameter that differs, an unexpected entry. On failure the optimiser is unchanged. */
int ts_optim_load_state(ts_optim *o, const ts_nn_state *s);

/* Learning-rate schedules: plain functions of the step (0-based), no state.
 * Cosine with linear warmup: lr rises linearly from base/warmup to base over `warmup` steps, then
 * follows min + (base-min)(1+cos(pi*t))/2, t = (step-warmup)/(total-warmup), clamped to [0,1]. */
double ts_lr_cosine_warmup(int64_t step, int64_t total, int64_t warmup, double base_lr, double min_lr);
/* Step decay: base * gamma^floor(step / step_size). */
double ts_lr_step_decay(int64_t step, int64_t step_size, double gamma, double base_lr);

/* ---- TorchScript --------------------------------------------------------------------------- */

/* Load a module saved with torch.jit.save onto `device` and put it in eval mode.
 * NN_JIT (TS_EINPUT) when the file is missing or not TorchScript; NN_DEVICE. */
int ts_jit_load(const char *path, int device, ts_jit_module **out);
/* forward(x). When the module returns a tuple or list, its first tensor is returned. */
int ts_jit_forward(ts_jit_module *m, const ts_tensor *x, ts_tensor **out);
/* The module's parameters and buffers (recursive names, as state_dict()), aliases, in *out (new
 * state owned by the caller). */
int ts_jit_state(ts_jit_module *m, ts_nn_state **out);
void ts_jit_free(ts_jit_module **m);

/* ---- Named tensors (state dicts) and HDF5 checkpoints: nn/state.c, schemas/nn_checkpoint.md -- */

int ts_nn_state_new(ts_nn_state **out);
/* Frees the state and its handles; accepts NULL; sets *s = NULL. */
void ts_nn_state_free(ts_nn_state **s);
/* Append (name, alias of t). Names are unique (NN_ARG), 1..255 chars without '/'. */
int ts_nn_state_add(ts_nn_state *s, const char *name, const ts_tensor *t);
int ts_nn_state_count(const ts_nn_state *s);
/* Borrowed name / tensor of entry i (valid while s lives), NULL when out of range. */
const char *ts_nn_state_name(const ts_nn_state *s, int i);
ts_tensor *ts_nn_state_tensor(const ts_nn_state *s, int i);
/* Borrowed tensor by name, NULL when absent. */
ts_tensor *ts_nn_state_find(const ts_nn_state *s, const char *name);
/* Write every entry to `path` (durably: temporary name, fsync, rename) as /state_dict/<name>;
 * float64 tensors as float64, other floating tensors as float32, integer and bool ones as int64.
 * `arch` (may be NULL) is stored as a root attribute. Token NN_CHECKPOINT / H5_WRITE. */
int ts_nn_state_save_h5(const ts_nn_state *s, const char *path, const char *arch);
/* Read every dataset of /state_dict into a new state (CPU tensors: float64 for 8-byte float
 * datasets, float32 for other floats, int64 for integers), in creation order when the file
 * tracks it, else in name order. */
int ts_nn_state_load_h5(const char *path, ts_nn_state **out);
/* Copy values from src into the same-named tensors of dst (ts_tensor_copy_). Every dst entry must
 * be in src with the same shape (NN_CHECKPOINT names the first that is not); entries of src that
 * dst lacks are ignored and counted in *n_unused_out (may be NULL). */
int ts_nn_state_copy_into(ts_nn_state *dst, const ts_nn_state *src, int *n_unused_out);
/* SHA-256 (64 hex + NUL) over, per entry in order: name, NUL, dtype code, ndim, shape (int64),
 * then the values in the tensor's dtype, little-endian, row-major. */
int ts_nn_state_sha256(const ts_nn_state *s, char hex_out[65]);

/* ---- PyTorch .pt files (torch.save / torch.load): for tools that read them, e.g. CLAM ---------
 * CLAM's training (datasets/dataset_generic.py, Generic_MIL_Dataset) does
 * `torch.load(<data_root>/pt_files/<slide>.pt)` and expects an N x D float32 tensor, the file
 * its extract_features_fp.py writes with `torch.save(torch.from_numpy(features), path)`. These
 * write that file with LibTorch's torch::pickle_save ("compatible with torch.load"; not
 * torch::save, whose TorchScript archive torch.load does not return as a tensor): the zip
 * archive Python's torch.save writes (archive/data.pkl, archive/data/0, archive/version), with
 * an equivalent pickle and the same tensor bytes; no timestamps, so the same values always give
 * the same bytes. torch.load(path, weights_only=True) accepts it. */

/* Serialise the row-major float32 matrix data[n][d] (copied; data may be NULL when n*d == 0) as
 * torch.save would a float32 CPU tensor of shape [n, d]. *bytes_out is malloc'd (the caller
 * frees it), *len_out its size; both are NULL/0 on failure. Holds about twice the data in
 * memory while it runs. Tokens NN_ARG (NULL out-parameters, n or d < 0), NN_OOM, NN_ERROR. */
int ts_nn_pt_encode_f32(const float *data, int64_t n, int64_t d, void **bytes_out, size_t *len_out);
/* The same bytes written durably to path (temporary name, fsync, rename: a reader sees the old
 * file or the whole new one). Replaces an existing file. Tokens as above, IO_WRITE, IO_COMMIT. */
int ts_nn_pt_save_f32(const float *data, int64_t n, int64_t d, const char *path);

#ifdef __cplusplus
}
#endif
#endif
