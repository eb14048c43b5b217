/* torch_api.cpp — the only C++ translation unit of tessera: ts_nn.h implemented on LibTorch.
 *
 * Why one file: including torch/torch.h costs ~25 s and 1.3 GB of compiler memory; everything
 * that needs LibTorch lives here and the rest of tessera (encoders included) is C on ts_nn.h.
 *
 * Design (after tch-rs's torch-sys/libtch/torch_api.cpp, with status codes added):
 *  - a handle is a heap-allocated struct holding an at::Tensor (a reference-counted pointer to a
 *    TensorImpl), so freeing a handle never invalidates another one;
 *  - every extern "C" entry point runs its body inside guard(), which catches everything:
 *    our own ts_fail (NN_ARG/NN_SHAPE/NN_DEVICE/...), c10::Error (LibTorch's), std::bad_alloc,
 *    std::exception and (...), and turns it into a status plus the thread-local message of
 *    ts_error.h. No exception crosses the C boundary.
 */
#include <ATen/Parallel.h>
#include <torch/script.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "ts_nn.h"
extern "C" {
#include "ts_io.h" /* a C header without its own extern "C" */
}

struct ts_tensor {
  at::Tensor t;
};

struct ts_optim {
  std::unique_ptr<torch::optim::Optimizer> o;
  double lr;
};

struct ts_nn_guard {
  std::unique_ptr<at::NoGradGuard> no_grad;
  std::unique_ptr<c10::InferenceMode> inference;
};

struct ts_jit_module {
  torch::jit::Module m;
};

namespace {

/* Our own errors, thrown inside bodies and converted by guard(). */
struct ts_fail {
  int code;
  const char *token;
  std::string msg;
};

[[noreturn]] void fail(int code, const char *token, const std::string &msg) {
  throw ts_fail{code, token, msg};
}

/* A C function of tessera (nn/state.c) failed and already set the status and message: guard()
 * passes them through unchanged. */
struct ts_passed {
  int code;
};

void ccall(int rc) {
  if (rc < 0) throw ts_passed{rc};
}

std::string first_line(const char *s) {
  std::string m = s ? s : "";
  size_t nl = m.find('\n');
  if (nl != std::string::npos) m.resize(nl);
  return m;
}

/* LibTorch's shape errors are plain c10::Errors; recognise the common wordings (best effort). */
bool looks_like_shape(const std::string &m) {
  static const char *const words[] = {"shape",    "size",       "dimension", "mat1 and mat2",
                                      "Expected", "must match", nullptr};
  for (int i = 0; words[i]; i++)
    if (m.find(words[i]) != std::string::npos) return true;
  return false;
}

template <class F> int guard(const char *fn, F &&body) {
  try {
    return body();
  } catch (const ts_fail &e) {
    return ts_error_set(e.code, e.token, "%s: %s", fn, e.msg.c_str());
  } catch (const ts_passed &e) {
    return e.code;
  } catch (const c10::Error &e) {
    std::string m = first_line(e.what_without_backtrace());
    return ts_error_set(looks_like_shape(m) ? TS_EINVAL : TS_EINTERNAL,
                        looks_like_shape(m) ? "NN_SHAPE" : "NN_ERROR", "%s: %s", fn, m.c_str());
  } catch (const std::bad_alloc &) {
    return ts_error_set(TS_ENOMEM, "NN_OOM", "%s: out of memory", fn);
  } catch (const std::exception &e) { /* some shape checks throw std::runtime_error */
    std::string m = first_line(e.what());
    return ts_error_set(looks_like_shape(m) ? TS_EINVAL : TS_EINTERNAL,
                        looks_like_shape(m) ? "NN_SHAPE" : "NN_ERROR", "%s: %s", fn, m.c_str());
  } catch (...) {
    return ts_error_set(TS_EINTERNAL, "NN_ERROR", "%s: unknown C++ exception", fn);
  }
}

/* Run body (returning an at::Tensor) and hand the result to *out as a new handle. */
template <class F> int produce(const char *fn, ts_tensor **out, F &&body) {
  if (!out) return ts_error_set(TS_EINVAL, "NN_ARG", "%s: out is NULL", fn);
  *out = nullptr;
  return guard(fn, [&]() {
    at::Tensor r = body();
    *out = new ts_tensor{std::move(r)};
    return 0;
  });
}

const at::Tensor &T(const ts_tensor *p, const char *what = "tensor") {
  if (!p) fail(TS_EINVAL, "NN_ARG", std::string(what) + " is NULL");
  if (!p->t.defined()) fail(TS_EINVAL, "NN_ARG", std::string(what) + " is an undefined tensor");
  return p->t;
}

c10::optional<at::Tensor> OPT(const ts_tensor *p) {
  if (!p || !p->t.defined()) return c10::nullopt;
  return p->t;
}

at::ScalarType scalar_type(int dtype) {
  switch (dtype) {
  case TS_NN_F32:
    return at::kFloat;
  case TS_NN_F16:
    return at::kHalf;
  case TS_NN_U8:
    return at::kByte;
  case TS_NN_I64:
    return at::kLong;
  case TS_NN_F64:
    return at::kDouble;
  case TS_NN_BOOL:
    return at::kBool;
  }
  fail(TS_EINVAL, "NN_DTYPE", "unknown dtype code " + std::to_string(dtype));
}

int dtype_code(at::ScalarType s) {
  switch (s) {
  case at::kFloat:
    return TS_NN_F32;
  case at::kHalf:
    return TS_NN_F16;
  case at::kByte:
    return TS_NN_U8;
  case at::kLong:
    return TS_NN_I64;
  case at::kDouble:
    return TS_NN_F64;
  case at::kBool:
    return TS_NN_BOOL;
  default:
    return -1;
  }
}

at::Device device_of(int dev) {
  if (dev == TS_NN_CPU) return at::Device(at::kCPU);
  if (dev < 0)
    fail(TS_EINVAL, "NN_DEVICE", "device " + std::to_string(dev) + " is neither CPU (-1) nor a CUDA ordinal");
  if (!torch::cuda::is_available())
    fail(TS_EINVAL, "NN_DEVICE",
         "CUDA device " + std::to_string(dev) +
             " requested, but this LibTorch build has no CUDA support or no GPU is visible "
             "(Debian's libtorch is CPU-only); use the CPU");
  if (static_cast<size_t>(dev) >= torch::cuda::device_count())
    fail(TS_EINVAL, "NN_DEVICE",
         "CUDA device " + std::to_string(dev) + " does not exist (" +
             std::to_string(torch::cuda::device_count()) + " visible)");
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(dev));
}

std::vector<int64_t> shape_of(const int64_t *shape, int ndim) {
  if (ndim < 0 || ndim > TS_NN_MAX_DIMS)
    fail(TS_EINVAL, "NN_ARG", "ndim " + std::to_string(ndim) + " out of range");
  if (ndim > 0 && !shape) fail(TS_EINVAL, "NN_ARG", "shape is NULL");
  std::vector<int64_t> v(shape, shape + ndim);
  return v;
}

std::vector<int64_t> checked_sizes(const int64_t *shape, int ndim) {
  std::vector<int64_t> v = shape_of(shape, ndim);
  for (int64_t s : v)
    if (s < 0) fail(TS_EINVAL, "NN_SHAPE", "negative size " + std::to_string(s));
  return v;
}

std::vector<int64_t> all_dims(const at::Tensor &x) {
  std::vector<int64_t> d(static_cast<size_t>(x.dim()));
  for (size_t i = 0; i < d.size(); i++)
    d[i] = static_cast<int64_t>(i);
  return d;
}

std::vector<at::Tensor> tensor_list(const ts_tensor *const *xs, int n) {
  if (!xs || n < 1) fail(TS_EINVAL, "NN_ARG", "need a non-empty tensor list");
  std::vector<at::Tensor> v;
  v.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; i++)
    v.push_back(T(xs[i]));
  return v;
}

at::TensorOptions opts_of(int dtype) {
  return at::TensorOptions().dtype(scalar_type(dtype));
}

/* Random floats in the requested dtype: drawn in float32/float64, converted (Half has no CPU
 * normal_ kernel in 1.13). */
at::Tensor random_tensor(bool normal, const int64_t *shape, int ndim, int dtype, uint64_t seed) {
  std::vector<int64_t> s = checked_sizes(shape, ndim);
  at::ScalarType st = scalar_type(dtype);
  if (!at::isFloatingType(st)) fail(TS_EINVAL, "NN_DTYPE", "random tensors must be floating");
  at::TensorOptions o = at::TensorOptions().dtype(st == at::kDouble ? at::kDouble : at::kFloat);
  c10::optional<at::Generator> gen;
  if (seed != 0) gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor r = normal ? at::randn(s, gen, o) : at::rand(s, gen, o);
  return r.to(st);
}

} // namespace

extern "C" {

/* ---- Library ---- */

const char *ts_nn_version(void) {
  return TORCH_VERSION;
}

/* Debian's LibTorch runs CPU convolutions as im2col + sgemm through the system BLAS, and
 * OpenBLAS keeps its own thread pool, sized to the machine's cores, whose idle workers spin in
 * sched_yield. at::set_num_threads does not reach it: with two ranks on two cores that was four
 * busy threads (measured: ~35 % of a core per rank in the spinning worker, and a rank encoding
 * ~25 % slower than alone). So the BLAS pool gets the same count, when the BLAS is OpenBLAS. */
static void blas_set_num_threads(int n) {
  using fn = void (*)(int);
  if (void *f = dlsym(RTLD_DEFAULT, "openblas_set_num_threads")) reinterpret_cast<fn>(f)(n);
}

int ts_nn_set_num_threads(int n) {
  if (n < 1) return ts_error_set(TS_EINVAL, "NN_ARG", "%s: thread count %d < 1", __func__, n);
  return guard(__func__, [&]() {
    at::set_num_threads(n);
    blas_set_num_threads(n);
    return 0;
  });
}

int ts_nn_get_num_threads(void) {
  int n = 1;
  guard(__func__, [&]() {
    n = at::get_num_threads();
    return 0;
  });
  return n;
}

int ts_nn_set_deterministic(bool on) {
  return guard(__func__, [&]() {
    at::globalContext().setDeterministicAlgorithms(on, false);
    return 0;
  });
}

bool ts_nn_get_deterministic(void) {
  return at::globalContext().deterministicAlgorithms();
}

int ts_nn_manual_seed(uint64_t seed) {
  return guard(__func__, [&]() {
    torch::manual_seed(seed);
    return 0;
  });
}

bool ts_nn_cuda_available(void) {
  bool r = false;
  guard(__func__, [&]() {
    r = torch::cuda::is_available();
    return 0;
  });
  return r;
}

int ts_nn_cuda_device_count(void) {
  int r = 0;
  guard(__func__, [&]() {
    r = static_cast<int>(torch::cuda::device_count());
    return 0;
  });
  return r;
}

size_t ts_nn_dtype_size(int dtype) {
  switch (dtype) {
  case TS_NN_F32:
    return 4;
  case TS_NN_F16:
    return 2;
  case TS_NN_U8:
    return 1;
  case TS_NN_I64:
    return 8;
  case TS_NN_F64:
    return 8;
  case TS_NN_BOOL:
    return 1;
  }
  return 0;
}

/* ---- Tensors ---- */

void ts_tensor_free(ts_tensor **t) {
  if (!t || !*t) return;
  delete *t; /* an at::Tensor destructor does not throw */
  *t = nullptr;
}

int ts_tensor_from_data(const void *data, int dtype, const int64_t *shape, int ndim, ts_tensor **out) {
  return produce(__func__, out, [&]() {
    std::vector<int64_t> s = checked_sizes(shape, ndim);
    at::TensorOptions o = opts_of(dtype);
    at::Tensor r = at::empty(s, o);
    size_t nbytes = static_cast<size_t>(r.numel()) * ts_nn_dtype_size(dtype);
    if (nbytes && !data) fail(TS_EINVAL, "NN_ARG", "data is NULL");
    if (nbytes) std::memcpy(r.data_ptr(), data, nbytes);
    return r;
  });
}

int ts_tensor_zeros(const int64_t *shape, int ndim, int dtype, ts_tensor **out) {
  return produce(__func__, out, [&]() { return at::zeros(checked_sizes(shape, ndim), opts_of(dtype)); });
}

int ts_tensor_ones(const int64_t *shape, int ndim, int dtype, ts_tensor **out) {
  return produce(__func__, out, [&]() { return at::ones(checked_sizes(shape, ndim), opts_of(dtype)); });
}

int ts_tensor_full(const int64_t *shape, int ndim, int dtype, double value, ts_tensor **out) {
  return produce(__func__, out,
                 [&]() { return at::full(checked_sizes(shape, ndim), value, opts_of(dtype)); });
}

int ts_tensor_arange(int64_t n, ts_tensor **out) {
  return produce(__func__, out, [&]() {
    if (n < 0) fail(TS_EINVAL, "NN_ARG", "negative length");
    return at::arange(n, at::TensorOptions().dtype(at::kLong));
  });
}

int ts_tensor_randn(const int64_t *shape, int ndim, int dtype, uint64_t seed, ts_tensor **out) {
  return produce(__func__, out, [&]() { return random_tensor(true, shape, ndim, dtype, seed); });
}

int ts_tensor_rand(const int64_t *shape, int ndim, int dtype, uint64_t seed, ts_tensor **out) {
  return produce(__func__, out, [&]() { return random_tensor(false, shape, ndim, dtype, seed); });
}

int ts_tensor_copy_to(const ts_tensor *t, void *buf, size_t nbytes, int dtype) {
  return guard(__func__, [&]() {
    const at::Tensor &x = T(t);
    at::ScalarType st = scalar_type(dtype);
    size_t want = static_cast<size_t>(x.numel()) * ts_nn_dtype_size(dtype);
    if (nbytes != want)
      fail(TS_EINVAL, "NN_SHAPE",
           "buffer has " + std::to_string(nbytes) + " bytes, tensor needs " + std::to_string(want));
    if (want && !buf) fail(TS_EINVAL, "NN_ARG", "buffer is NULL");
    at::Tensor c = x.detach().to(at::kCPU).to(st).contiguous();
    if (want) std::memcpy(buf, c.data_ptr(), want);
    return 0;
  });
}

int ts_tensor_item(const ts_tensor *t, double *value_out) {
  if (!value_out) return ts_error_set(TS_EINVAL, "NN_ARG", "%s: value_out is NULL", __func__);
  return guard(__func__, [&]() {
    const at::Tensor &x = T(t);
    if (x.numel() != 1)
      fail(TS_EINVAL, "NN_SHAPE", "tensor has " + std::to_string(x.numel()) + " elements, not 1");
    *value_out = x.detach().to(at::kCPU).to(at::kDouble).item<double>();
    return 0;
  });
}

int ts_tensor_copy_(ts_tensor *dst, const ts_tensor *src) {
  return guard(__func__, [&]() {
    const at::Tensor &d = T(dst, "dst");
    const at::Tensor &s = T(src, "src");
    if (d.sizes() != s.sizes())
      fail(TS_EINVAL, "NN_SHAPE", "dst " + c10::str(d.sizes()) + " vs src " + c10::str(s.sizes()));
    at::NoGradGuard ng;
    dst->t.copy_(s);
    return 0;
  });
}

int ts_tensor_fill_(ts_tensor *dst, double value) {
  return guard(__func__, [&]() {
    T(dst);
    at::NoGradGuard ng;
    dst->t.fill_(value);
    return 0;
  });
}

int ts_tensor_alias(const ts_tensor *t, ts_tensor **out) {
  return produce(__func__, out, [&]() { return T(t); });
}

int ts_tensor_clone(const ts_tensor *t, ts_tensor **out) {
  return produce(__func__, out, [&]() { return T(t).clone(); });
}

int ts_tensor_detach(const ts_tensor *t, ts_tensor **out) {
  return produce(__func__, out, [&]() { return T(t).detach(); });
}

int ts_tensor_contiguous(const ts_tensor *t, ts_tensor **out) {
  return produce(__func__, out, [&]() { return T(t).contiguous(); });
}

int ts_tensor_to_dtype(const ts_tensor *t, int dtype, ts_tensor **out) {
  return produce(__func__, out, [&]() { return T(t).to(scalar_type(dtype)); });
}

int ts_tensor_to_device(const ts_tensor *t, int device, ts_tensor **out) {
  return produce(__func__, out, [&]() {
    const at::Tensor &x = T(t);
    return x.to(device_of(device));
  });
}

int ts_tensor_ndim(const ts_tensor *t) {
  return t && t->t.defined() ? static_cast<int>(t->t.dim()) : -1;
}

int ts_tensor_shape(const ts_tensor *t, int64_t *shape_out, int max_dims) {
  if (!t || !t->t.defined()) return -1;
  int nd = static_cast<int>(t->t.dim());
  for (int i = 0; i < nd && i < max_dims && shape_out; i++)
    shape_out[i] = t->t.size(i);
  return nd;
}

int64_t ts_tensor_size(const ts_tensor *t, int dim) {
  if (!t || !t->t.defined()) return -1;
  int64_t nd = t->t.dim();
  int64_t d = dim < 0 ? dim + nd : dim;
  if (d < 0 || d >= nd) return -1;
  return t->t.size(d);
}

int64_t ts_tensor_numel(const ts_tensor *t) {
  return t && t->t.defined() ? t->t.numel() : -1;
}

int ts_tensor_dtype(const ts_tensor *t) {
  return t && t->t.defined() ? dtype_code(t->t.scalar_type()) : -1;
}

int ts_tensor_device(const ts_tensor *t) {
  if (!t || !t->t.defined()) return TS_NN_CPU;
  return t->t.is_cuda() ? static_cast<int>(t->t.device().index()) : TS_NN_CPU;
}

bool ts_tensor_defined(const ts_tensor *t) {
  return t && t->t.defined();
}

/* ---- Views ---- */

int ts_tensor_reshape(const ts_tensor *t, const int64_t *shape, int ndim, ts_tensor **out) {
  return produce(__func__, out, [&]() { return T(t).reshape(shape_of(shape, ndim)); });
}

int ts_tensor_permute(const ts_tensor *t, const int64_t *dims, int ndim, ts_tensor **out) {
  return produce(__func__, out, [&]() { return T(t).permute(shape_of(dims, ndim)); });
}

int ts_tensor_transpose(const ts_tensor *t, int dim0, int dim1, ts_tensor **out) {
  return produce(__func__, out, [&]() { return T(t).transpose(dim0, dim1); });
}

int ts_tensor_narrow(const ts_tensor *t, int dim, int64_t start, int64_t length, ts_tensor **out) {
  return produce(__func__, out, [&]() { return T(t).narrow(dim, start, length); });
}

int ts_tensor_select(const ts_tensor *t, int dim, int64_t index, ts_tensor **out) {
  return produce(__func__, out, [&]() { return T(t).select(dim, index); });
}

int ts_tensor_unsqueeze(const ts_tensor *t, int dim, ts_tensor **out) {
  return produce(__func__, out, [&]() { return T(t).unsqueeze(dim); });
}

int ts_tensor_squeeze(const ts_tensor *t, int dim, ts_tensor **out) {
  return produce(__func__, out, [&]() { return T(t).squeeze(dim); });
}

int ts_tensor_flatten(const ts_tensor *t, int start_dim, int end_dim, ts_tensor **out) {
  return produce(__func__, out, [&]() { return T(t).flatten(start_dim, end_dim); });
}

int ts_tensor_index_select(const ts_tensor *t, int dim, const ts_tensor *index, ts_tensor **out) {
  return produce(__func__, out, [&]() { return T(t).index_select(dim, T(index, "index")); });
}

/* ---- Element-wise ---- */

#define TS_BINARY(name, expr)                                                                                \
  int name(const ts_tensor *a, const ts_tensor *b, ts_tensor **out) {                                        \
    return produce(__func__, out, [&]() {                                                                    \
      const at::Tensor &A = T(a, "a");                                                                       \
      const at::Tensor &B = T(b, "b");                                                                       \
      return (expr);                                                                                         \
    });                                                                                                      \
  }
TS_BINARY(ts_nn_add, A + B)
TS_BINARY(ts_nn_sub, A - B)
TS_BINARY(ts_nn_mul, A *B)
TS_BINARY(ts_nn_div, A / B)
TS_BINARY(ts_nn_matmul, at::matmul(A, B))
#undef TS_BINARY

#define TS_SCALAR(name, expr)                                                                                \
  int name(const ts_tensor *a, double s, ts_tensor **out) {                                                  \
    return produce(__func__, out, [&]() {                                                                    \
      const at::Tensor &A = T(a, "a");                                                                       \
      return (expr);                                                                                         \
    });                                                                                                      \
  }
TS_SCALAR(ts_nn_add_scalar, A + s)
TS_SCALAR(ts_nn_mul_scalar, A *s)
TS_SCALAR(ts_nn_pow_scalar, at::pow(A, s))
#undef TS_SCALAR

#define TS_UNARY(name, expr)                                                                                 \
  int name(const ts_tensor *x, ts_tensor **out) {                                                            \
    return produce(__func__, out, [&]() {                                                                    \
      const at::Tensor &X = T(x, "x");                                                                       \
      return (expr);                                                                                         \
    });                                                                                                      \
  }
TS_UNARY(ts_nn_relu, at::relu(X))
TS_UNARY(ts_nn_gelu, at::gelu(X))
TS_UNARY(ts_nn_tanh, at::tanh(X))
TS_UNARY(ts_nn_sigmoid, at::sigmoid(X))
TS_UNARY(ts_nn_exp, at::exp(X))
TS_UNARY(ts_nn_log, at::log(X))
TS_UNARY(ts_nn_neg, at::neg(X))
TS_UNARY(ts_nn_sqrt, at::sqrt(X))
TS_UNARY(ts_nn_abs, at::abs(X))
#undef TS_UNARY

int ts_nn_cat(const ts_tensor *const *xs, int n, int dim, ts_tensor **out) {
  return produce(__func__, out, [&]() { return at::cat(tensor_list(xs, n), dim); });
}

int ts_nn_stack(const ts_tensor *const *xs, int n, int dim, ts_tensor **out) {
  return produce(__func__, out, [&]() { return at::stack(tensor_list(xs, n), dim); });
}

/* ---- Reductions ---- */

#define TS_REDUCE(name, expr)                                                                                \
  int name(const ts_tensor *x, int dim, bool keepdim, ts_tensor **out) {                                     \
    return produce(__func__, out, [&]() {                                                                    \
      const at::Tensor &X = T(x, "x");                                                                       \
      std::vector<int64_t> dims = dim == TS_NN_ALL_DIMS ? all_dims(X) : std::vector<int64_t>{dim};           \
      return (expr);                                                                                         \
    });                                                                                                      \
  }
TS_REDUCE(ts_nn_sum, X.sum(dims, keepdim))
TS_REDUCE(ts_nn_mean, X.mean(dims, keepdim))
TS_REDUCE(ts_nn_max, at::amax(X, dims, keepdim))
TS_REDUCE(ts_nn_logsumexp, at::logsumexp(X, dims, keepdim))
#undef TS_REDUCE

int ts_nn_argmax(const ts_tensor *x, int dim, bool keepdim, ts_tensor **out) {
  return produce(__func__, out, [&]() {
    const at::Tensor &X = T(x, "x");
    if (dim == TS_NN_ALL_DIMS) return X.argmax();
    return X.argmax(dim, keepdim);
  });
}

int ts_nn_argsort(const ts_tensor *x, int dim, bool descending, ts_tensor **out) {
  return produce(__func__, out, [&]() { return at::argsort(T(x, "x"), dim, descending); });
}

int ts_nn_cumsum(const ts_tensor *x, int dim, ts_tensor **out) {
  return produce(__func__, out, [&]() { return at::cumsum(T(x, "x"), dim); });
}

int ts_nn_logcumsumexp(const ts_tensor *x, int dim, ts_tensor **out) {
  return produce(__func__, out, [&]() { return at::logcumsumexp(T(x, "x"), dim); });
}

/* ---- Layers ---- */

int ts_nn_linear(const ts_tensor *x, const ts_tensor *w, const ts_tensor *b, ts_tensor **out) {
  return produce(__func__, out, [&]() {
    const at::Tensor &X = T(x, "x");
    const at::Tensor &W = T(w, "weight");
    if (W.dim() != 2 || X.dim() < 1 || X.size(-1) != W.size(1))
      fail(TS_EINVAL, "NN_SHAPE", "x " + c10::str(X.sizes()) + " does not fit weight " + c10::str(W.sizes()));
    return at::linear(X, W, OPT(b));
  });
}

int ts_nn_conv2d(const ts_tensor *x, const ts_tensor *w, const ts_tensor *b, const int64_t stride[2],
                 const int64_t padding[2], const int64_t dilation[2], int64_t groups, ts_tensor **out) {
  return produce(__func__, out, [&]() {
    if (!stride || !padding || !dilation) fail(TS_EINVAL, "NN_ARG", "stride/padding/dilation is NULL");
    return at::conv2d(T(x, "x"), T(w, "weight"), OPT(b), at::IntArrayRef(stride, 2),
                      at::IntArrayRef(padding, 2), at::IntArrayRef(dilation, 2), groups);
  });
}

int ts_nn_batch_norm(const ts_tensor *x, const ts_tensor *weight, const ts_tensor *bias,
                     ts_tensor *running_mean, ts_tensor *running_var, bool training, double momentum,
                     double eps, ts_tensor **out) {
  return produce(__func__, out, [&]() {
    if (!training && (!running_mean || !running_var))
      fail(TS_EINVAL, "NN_ARG", "eval-mode batch norm needs running_mean and running_var");
    return at::batch_norm(T(x, "x"), OPT(weight), OPT(bias), OPT(running_mean), OPT(running_var), training,
                          momentum, eps, false);
  });
}

int ts_nn_layer_norm(const ts_tensor *x, const int64_t *shape, int nd, const ts_tensor *weight,
                     const ts_tensor *bias, double eps, ts_tensor **out) {
  return produce(__func__, out, [&]() {
    return at::layer_norm(T(x, "x"), shape_of(shape, nd), OPT(weight), OPT(bias), eps, false);
  });
}

int ts_nn_max_pool2d(const ts_tensor *x, int64_t k, int64_t s, int64_t p, ts_tensor **out) {
  return produce(__func__, out, [&]() { return at::max_pool2d(T(x, "x"), {k, k}, {s, s}, {p, p}); });
}

int ts_nn_avg_pool2d(const ts_tensor *x, int64_t k, int64_t s, int64_t p, ts_tensor **out) {
  return produce(__func__, out, [&]() { return at::avg_pool2d(T(x, "x"), {k, k}, {s, s}, {p, p}); });
}

int ts_nn_adaptive_avg_pool2d(const ts_tensor *x, int64_t oh, int64_t ow, ts_tensor **out) {
  return produce(__func__, out, [&]() { return at::adaptive_avg_pool2d(T(x, "x"), {oh, ow}); });
}

int ts_nn_interpolate_bilinear(const ts_tensor *x, int64_t oh, int64_t ow, bool align_corners,
                               ts_tensor **out) {
  return produce(__func__, out, [&]() {
    const at::Tensor &X = T(x, "x");
    if (X.dim() != 4)
      fail(TS_EINVAL, "NN_SHAPE", "bilinear resize needs [N, C, H, W], got " + c10::str(X.sizes()));
    return at::upsample_bilinear2d(X, {oh, ow}, align_corners);
  });
}

int ts_nn_softmax(const ts_tensor *x, int dim, ts_tensor **out) {
  return produce(__func__, out, [&]() { return at::softmax(T(x, "x"), dim); });
}

int ts_nn_log_softmax(const ts_tensor *x, int dim, ts_tensor **out) {
  return produce(__func__, out, [&]() { return at::log_softmax(T(x, "x"), dim); });
}

int ts_nn_dropout(const ts_tensor *x, double p, bool training, ts_tensor **out) {
  return produce(__func__, out, [&]() {
    if (!(p >= 0.0 && p < 1.0))
      fail(TS_EINVAL, "NN_ARG", "dropout probability " + std::to_string(p) + " not in [0, 1)");
    return at::dropout(T(x, "x"), p, training);
  });
}

/* Inverted dropout with tessera's own mask: u ~ U[0, 1) from the global CPU generator
 * (uniform_, one 32-bit draw per float32 element, 24-bit resolution; float64: 53 bits), then in
 * one pass mask = u < p ? 0 : 1/(1-p), and x * mask, so autograd's backward is grad * mask as
 * at::dropout's. LibTorch 1.13's CPU dropout without MKL (Debian's) fills a bool mask through
 * bernoulli_ and a distribution object per element, ~3x slower here (bench_survnet --dropout).
 * Other dtypes than float32/float64 fall back to at::dropout. */
int ts_nn_dropout_fast(const ts_tensor *x, double p, bool training, ts_tensor **out) {
  return produce(__func__, out, [&]() {
    if (!(p >= 0.0 && p < 1.0))
      fail(TS_EINVAL, "NN_ARG", "dropout probability " + std::to_string(p) + " not in [0, 1)");
    const at::Tensor &X = T(x, "x");
    if (!training || p == 0.0 || X.numel() == 0) return X;
    if (X.scalar_type() != at::kFloat && X.scalar_type() != at::kDouble) return at::dropout(X, p, training);
    at::Tensor mask = at::empty(X.sizes(), X.options().device(at::kCPU).requires_grad(false));
    {
      at::NoGradGuard ng;
      mask.uniform_(0.0, 1.0); /* the global generator */
    }
    const int64_t n = mask.numel();
    const double scale = 1.0 / (1.0 - p);
    if (X.scalar_type() == at::kFloat) {
      float *m = mask.data_ptr<float>(), keep = (float)scale, pf = (float)p;
      for (int64_t i = 0; i < n; i++)
        m[i] = m[i] < pf ? 0.0f : keep;
    } else {
      double *m = mask.data_ptr<double>();
      for (int64_t i = 0; i < n; i++)
        m[i] = m[i] < p ? 0.0 : scale;
    }
    if (X.device() != mask.device()) mask = mask.to(X.device());
    return at::mul(X, mask);
  });
}

int ts_nn_elu(const ts_tensor *x, double alpha, ts_tensor **out) {
  return produce(__func__, out, [&]() { return at::elu(T(x, "x"), alpha); });
}

int ts_nn_alpha_dropout(const ts_tensor *x, double p, bool training, ts_tensor **out) {
  return produce(__func__, out, [&]() {
    if (!(p >= 0.0 && p < 1.0))
      fail(TS_EINVAL, "NN_ARG", "alpha dropout probability " + std::to_string(p) + " not in [0, 1)");
    return at::alpha_dropout(T(x, "x"), p, training);
  });
}

int ts_nn_normalize(const ts_tensor *x, double p, int dim, double eps, ts_tensor **out) {
  return produce(__func__, out, [&]() {
    namespace F = torch::nn::functional;
    return F::normalize(T(x, "x"), F::NormalizeFuncOptions().p(p).dim(dim).eps(eps));
  });
}

int ts_nn_mse_loss(const ts_tensor *pred, const ts_tensor *target, ts_tensor **out) {
  return produce(__func__, out, [&]() {
    const at::Tensor &P = T(pred, "pred");
    const at::Tensor &Y = T(target, "target");
    if (P.sizes() != Y.sizes())
      fail(TS_EINVAL, "NN_SHAPE", "pred " + c10::str(P.sizes()) + " vs target " + c10::str(Y.sizes()));
    return at::mse_loss(P, Y);
  });
}

int ts_nn_cross_entropy(const ts_tensor *logits, const ts_tensor *target, ts_tensor **out) {
  return produce(__func__, out, [&]() {
    return torch::nn::functional::cross_entropy(T(logits, "logits"), T(target, "target"));
  });
}

/* ---- Autograd ---- */

int ts_tensor_set_requires_grad(ts_tensor *t, bool on) {
  return guard(__func__, [&]() {
    T(t);
    t->t.set_requires_grad(on);
    return 0;
  });
}

bool ts_tensor_requires_grad(const ts_tensor *t) {
  return t && t->t.defined() && t->t.requires_grad();
}

int ts_tensor_backward(const ts_tensor *t) {
  return guard(__func__, [&]() {
    const at::Tensor &x = T(t);
    if (x.numel() != 1) fail(TS_EINVAL, "NN_SHAPE", "backward needs a scalar, got " + c10::str(x.sizes()));
    if (!x.requires_grad())
      fail(TS_EINVAL, "NN_NO_GRAD", "tensor does not require grad (no graph to differentiate)");
    x.backward();
    return 0;
  });
}

int ts_tensor_grad(const ts_tensor *t, ts_tensor **out) {
  return produce(__func__, out, [&]() {
    at::Tensor g = T(t).grad();
    if (!g.defined())
      fail(TS_EINVAL, "NN_NO_GRAD", "tensor has no gradient (not a leaf reached by backward)");
    return g;
  });
}

int ts_tensor_zero_grad(ts_tensor *t) {
  return guard(__func__, [&]() {
    T(t);
    t->t.mutable_grad() = at::Tensor();
    return 0;
  });
}

int ts_nn_no_grad_begin(ts_nn_guard **out) {
  if (!out) return ts_error_set(TS_EINVAL, "NN_ARG", "%s: out is NULL", __func__);
  *out = nullptr;
  return guard(__func__, [&]() {
    std::unique_ptr<ts_nn_guard> g(new ts_nn_guard);
    g->no_grad.reset(new at::NoGradGuard);
    *out = g.release();
    return 0;
  });
}

int ts_nn_inference_mode_begin(ts_nn_guard **out) {
  if (!out) return ts_error_set(TS_EINVAL, "NN_ARG", "%s: out is NULL", __func__);
  *out = nullptr;
  return guard(__func__, [&]() {
    std::unique_ptr<ts_nn_guard> g(new ts_nn_guard);
    g->inference.reset(new c10::InferenceMode(true));
    *out = g.release();
    return 0;
  });
}

void ts_nn_guard_end(ts_nn_guard **g) {
  if (!g || !*g) return;
  delete *g;
  *g = nullptr;
}

bool ts_nn_grad_enabled(void) {
  return at::GradMode::is_enabled();
}

/* ---- Optimisers ---- */

static int make_optim(const char *fn, const ts_tensor *const *params, int n, ts_optim **out, double lr,
                      const std::function<torch::optim::Optimizer *(std::vector<at::Tensor>)> &mk) {
  if (!out) return ts_error_set(TS_EINVAL, "NN_ARG", "%s: out is NULL", fn);
  *out = nullptr;
  return guard(fn, [&]() {
    if (!(lr >= 0.0)) fail(TS_EINVAL, "NN_ARG", "learning rate " + std::to_string(lr) + " < 0");
    std::vector<at::Tensor> v = tensor_list(params, n);
    for (size_t i = 0; i < v.size(); i++)
      if (!v[i].is_leaf() || !v[i].requires_grad())
        fail(TS_EINVAL, "NN_ARG", "parameter " + std::to_string(i) + " is not a leaf that requires grad");
    std::unique_ptr<ts_optim> o(new ts_optim);
    o->o.reset(mk(std::move(v)));
    o->lr = lr;
    *out = o.release();
    return 0;
  });
}

int ts_optim_sgd_new(const ts_tensor *const *params, int n, double lr, double momentum, double weight_decay,
                     bool nesterov, ts_optim **out) {
  if (nesterov && momentum <= 0.0)
    return ts_error_set(TS_EINVAL, "NN_ARG", "%s: nesterov needs momentum > 0", __func__);
  return make_optim(__func__, params, n, out, lr, [&](std::vector<at::Tensor> v) {
    return new torch::optim::SGD(
        std::move(v),
        torch::optim::SGDOptions(lr).momentum(momentum).weight_decay(weight_decay).nesterov(nesterov));
  });
}

int ts_optim_adamw_new(const ts_tensor *const *params, int n, double lr, double beta1, double beta2,
                       double eps, double weight_decay, ts_optim **out) {
  return make_optim(__func__, params, n, out, lr, [&](std::vector<at::Tensor> v) {
    return new torch::optim::AdamW(std::move(v), torch::optim::AdamWOptions(lr)
                                                     .betas(std::make_tuple(beta1, beta2))
                                                     .eps(eps)
                                                     .weight_decay(weight_decay));
  });
}

int ts_optim_adam_new(const ts_tensor *const *params, int n, double lr, double beta1, double beta2,
                      double eps, double weight_decay, ts_optim **out) {
  return make_optim(__func__, params, n, out, lr, [&](std::vector<at::Tensor> v) {
    return new torch::optim::Adam(std::move(v), torch::optim::AdamOptions(lr)
                                                    .betas(std::make_tuple(beta1, beta2))
                                                    .eps(eps)
                                                    .weight_decay(weight_decay));
  });
}

int ts_optim_step(ts_optim *o) {
  return guard(__func__, [&]() {
    if (!o) fail(TS_EINVAL, "NN_ARG", "optimiser is NULL");
    o->o->step();
    return 0;
  });
}

int ts_optim_zero_grad(ts_optim *o) {
  return guard(__func__, [&]() {
    if (!o) fail(TS_EINVAL, "NN_ARG", "optimiser is NULL");
    o->o->zero_grad();
    return 0;
  });
}

int ts_optim_set_lr(ts_optim *o, double lr) {
  return guard(__func__, [&]() {
    if (!o) fail(TS_EINVAL, "NN_ARG", "optimiser is NULL");
    if (!(lr >= 0.0)) fail(TS_EINVAL, "NN_ARG", "learning rate " + std::to_string(lr) + " < 0");
    for (auto &g : o->o->param_groups())
      g.options().set_lr(lr);
    o->lr = lr;
    return 0;
  });
}

double ts_optim_get_lr(const ts_optim *o) {
  return o ? o->lr : 0.0;
}

void ts_optim_free(ts_optim **o) {
  if (!o || !*o) return;
  delete *o;
  *o = nullptr;
}

/* ---- Optimiser state and RNG state (checkpoints for resumed training) ----
 *
 * Names follow torch.optim.Optimizer.state_dict() flattened with '.', so that a reader who knows
 * PyTorch knows them: "state.<i>.<field>" per parameter i of the optimiser (its order at
 * construction), "param_groups.0.<hyper-parameter>". LibTorch's optimisers key their per-
 * parameter state by the parameter's TensorImpl address (c10::guts::to_string, as
 * torch/optim/serialize.h does), which means nothing in another process; the index is what
 * carries over. Exported tensors are copies: later steps do not change a state already taken. */

namespace {

std::string param_key(const at::Tensor &p) {
  return c10::guts::to_string(p.unsafeGetTensorImpl());
}

void put(ts_nn_state *s, const std::string &name, const at::Tensor &t) {
  ts_tensor h{t};
  ccall(ts_nn_state_add(s, name.c_str(), &h));
}

void put_f64(ts_nn_state *s, const std::string &name, double v) {
  put(s, name, at::scalar_tensor(v, at::TensorOptions().dtype(at::kDouble)));
}

void put_i64(ts_nn_state *s, const std::string &name, int64_t v) {
  put(s, name, at::scalar_tensor(v, at::TensorOptions().dtype(at::kLong)));
}

/* Shortest text that reads back as the same double. */
std::string num(double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

at::Tensor snapshot(const at::Tensor &t) {
  return t.detach().clone(at::MemoryFormat::Contiguous);
}

/* Reads entries of a state being loaded and remembers which were used, so that entries nobody
 * asked for (a parameter the optimiser does not have, a field of another optimiser) are an
 * error too. */
struct reader {
  const ts_nn_state *s;
  std::set<std::string> used;

  const at::Tensor *find(const std::string &name) {
    const ts_tensor *t = ts_nn_state_find(s, name.c_str());
    if (!t || !t->t.defined()) return nullptr;
    used.insert(name);
    return &t->t;
  }
  const at::Tensor &need(const std::string &name) {
    const at::Tensor *t = find(name);
    if (!t) fail(TS_EINPUT, "NN_CHECKPOINT", "optimiser state lacks '" + name + "'");
    return *t;
  }
  double scalar(const std::string &name) {
    const at::Tensor &t = need(name);
    if (t.numel() != 1 || !(at::isFloatingType(t.scalar_type()) || at::isIntegralType(t.scalar_type(), true)))
      fail(TS_EINPUT, "NN_CHECKPOINT",
           "'" + name + "' is not a number (shape " + c10::str(t.sizes()) + ", " +
               c10::toString(t.scalar_type()) + ")");
    return t.detach().to(at::kCPU).to(at::kDouble).item<double>();
  }
  /* Hyper-parameters are stored as float64 and must match the optimiser's exactly: a resume
   * with another weight decay is another training. */
  void check(const std::string &name, double want) {
    double got = scalar(name);
    if (!(got == want))
      fail(TS_EINPUT, "NN_CHECKPOINT",
           "'" + name + "' is " + num(got) + " in the checkpoint but " + num(want) + " in this optimiser");
  }
  int64_t step(const std::string &name) {
    double v = scalar(name);
    if (!(v >= 0.0 && v <= 9007199254740992.0 && v == std::floor(v)))
      fail(TS_EINPUT, "NN_CHECKPOINT", "'" + name + "' = " + num(v) + " is not a step count");
    const at::Tensor &t = need(name);
    return t.scalar_type() == at::kLong ? t.item<int64_t>() : static_cast<int64_t>(v);
  }
  /* A moment tensor for parameter p: same shape, floating; a private copy in p's dtype/device. */
  at::Tensor moment(const std::string &name, const at::Tensor &p) {
    const at::Tensor &t = need(name);
    if (t.sizes() != p.sizes())
      fail(TS_EINPUT, "NN_CHECKPOINT",
           "'" + name + "' has shape " + c10::str(t.sizes()) + " but the parameter has " +
               c10::str(p.sizes()));
    if (!at::isFloatingType(t.scalar_type()))
      fail(TS_EINPUT, "NN_CHECKPOINT",
           "'" + name + "' is " + c10::toString(t.scalar_type()) + ", not floating");
    return t.detach().to(p.device(), p.scalar_type(), false, true).contiguous();
  }
  void no_leftovers() {
    for (int i = 0; i < ts_nn_state_count(s); i++) {
      std::string n = ts_nn_state_name(s, i);
      if (!used.count(n))
        fail(TS_EINPUT, "NN_CHECKPOINT", "unexpected entry '" + n + "' in the optimiser state");
    }
  }
};

const char *optim_kind(const torch::optim::Optimizer *o) {
  if (dynamic_cast<const torch::optim::AdamW *>(o)) return "AdamW";
  if (dynamic_cast<const torch::optim::Adam *>(o)) return "Adam";
  if (dynamic_cast<const torch::optim::SGD *>(o)) return "SGD";
  fail(TS_EINTERNAL, "NN_ERROR", "optimiser of unknown kind");
}

/* Adam and AdamW keep the same state (PyTorch's state_dicts of the two cannot be told apart). */
bool adam_family(const char *kind) { return std::strcmp(kind, "SGD") != 0; }

/* Each family's hyper-parameter that the other family lacks: it names the family of a state. */
const char *kind_marker(const char *kind) {
  return adam_family(kind) ? "param_groups.0.betas" : "param_groups.0.momentum";
}

extern "C++" {
template <class PS, class OP>
void adam_state_put(ts_nn_state *s, const torch::optim::Optimizer &opt) {
  const auto &group = opt.param_groups().at(0);
  const std::vector<at::Tensor> &params = group.params();
  const auto &st = opt.state();
  const std::string pg = "param_groups.0.";
  int64_t n = static_cast<int64_t>(params.size());
  for (int64_t i = 0; i < n; i++) {
    auto it = st.find(param_key(params[static_cast<size_t>(i)]));
    if (it == st.end()) continue; /* no step yet: no state, as in PyTorch */
    const auto &ps = static_cast<const PS &>(*it->second);
    std::string pre = "state." + std::to_string(i) + ".";
    put_i64(s, pre + "step", ps.step());
    put(s, pre + "exp_avg", snapshot(ps.exp_avg()));
    put(s, pre + "exp_avg_sq", snapshot(ps.exp_avg_sq()));
    if (ps.max_exp_avg_sq().defined()) put(s, pre + "max_exp_avg_sq", snapshot(ps.max_exp_avg_sq()));
  }
  const auto &op = static_cast<const OP &>(group.options());
  put_f64(s, pg + "lr", op.lr());
  double b[2] = {std::get<0>(op.betas()), std::get<1>(op.betas())};
  put(s, pg + "betas", at::tensor(at::ArrayRef<double>(b, 2), at::TensorOptions().dtype(at::kDouble)));
  put_f64(s, pg + "eps", op.eps());
  put_f64(s, pg + "weight_decay", op.weight_decay());
  put_i64(s, pg + "amsgrad", op.amsgrad() ? 1 : 0);
}
} // extern "C++"

extern "C++" {
template <class PS, class OP>
void adam_state_read(reader &r, torch::optim::OptimizerParamGroup &group,
                     std::vector<std::unique_ptr<torch::optim::OptimizerParamState>> &next) {
  const std::vector<at::Tensor> &params = group.params();
  const ts_nn_state *s = r.s;
  const std::string pg = "param_groups.0.";
  int64_t n = static_cast<int64_t>(params.size());
  const auto &op = static_cast<const OP &>(group.options());
  const at::Tensor &b = r.need(pg + "betas");
  if (b.numel() != 2)
    fail(TS_EINPUT, "NN_CHECKPOINT",
         "'" + pg + "betas' has " + std::to_string(b.numel()) + " values, not 2");
  at::Tensor bd = b.detach().to(at::kCPU).to(at::kDouble).reshape({2});
  double b0 = bd[0].item<double>(), b1 = bd[1].item<double>();
  if (!(b0 == std::get<0>(op.betas()) && b1 == std::get<1>(op.betas())))
    fail(TS_EINPUT, "NN_CHECKPOINT",
         "'" + pg + "betas' is (" + num(b0) + ", " + num(b1) + ") in the checkpoint but (" +
             num(std::get<0>(op.betas())) + ", " + num(std::get<1>(op.betas())) + ") in this optimiser");
  r.check(pg + "eps", op.eps());
  r.check(pg + "weight_decay", op.weight_decay());
  r.check(pg + "amsgrad", op.amsgrad() ? 1.0 : 0.0);
  for (int64_t i = 0; i < n; i++) {
    const at::Tensor &p = params[static_cast<size_t>(i)];
    std::string pre = "state." + std::to_string(i) + ".";
    if (!ts_nn_state_find(s, (pre + "step").c_str()) && !ts_nn_state_find(s, (pre + "exp_avg").c_str()) &&
        !ts_nn_state_find(s, (pre + "exp_avg_sq").c_str()))
      continue; /* not stepped yet */
    std::unique_ptr<PS> ps(new PS);
    ps->step(r.step(pre + "step"));
    ps->exp_avg(r.moment(pre + "exp_avg", p));
    ps->exp_avg_sq(r.moment(pre + "exp_avg_sq", p));
    if (op.amsgrad()) ps->max_exp_avg_sq(r.moment(pre + "max_exp_avg_sq", p));
    next[static_cast<size_t>(i)] = std::move(ps);
  }
}
} // extern "C++"

} // namespace

int ts_optim_state(const ts_optim *o, ts_nn_state **out) {
  if (!out) return ts_error_set(TS_EINVAL, "NN_ARG", "%s: out is NULL", __func__);
  *out = nullptr;
  ts_nn_state *s = nullptr;
  int rc = guard(__func__, [&]() {
    if (!o) fail(TS_EINVAL, "NN_ARG", "optimiser is NULL");
    ccall(ts_nn_state_new(&s));
    const torch::optim::Optimizer &opt = *o->o;
    const auto &group = opt.param_groups().at(0);
    const std::vector<at::Tensor> &params = group.params();
    const auto &st = opt.state();
    const std::string pg = "param_groups.0.";
    int64_t n = static_cast<int64_t>(params.size());
    const char *kind = optim_kind(&opt);
    if (std::strcmp(kind, "AdamW") == 0) {
      adam_state_put<torch::optim::AdamWParamState, torch::optim::AdamWOptions>(s, opt);
    } else if (std::strcmp(kind, "Adam") == 0) {
      adam_state_put<torch::optim::AdamParamState, torch::optim::AdamOptions>(s, opt);
    } else {
      for (int64_t i = 0; i < n; i++) {
        auto it = st.find(param_key(params[static_cast<size_t>(i)]));
        if (it == st.end()) continue; /* momentum 0, or no step yet */
        const auto &ps = static_cast<const torch::optim::SGDParamState &>(*it->second);
        if (ps.momentum_buffer().defined())
          put(s, "state." + std::to_string(i) + ".momentum_buffer", snapshot(ps.momentum_buffer()));
      }
      const auto &op = static_cast<const torch::optim::SGDOptions &>(group.options());
      put_f64(s, pg + "lr", op.lr());
      put_f64(s, pg + "momentum", op.momentum());
      put_f64(s, pg + "dampening", op.dampening());
      put_f64(s, pg + "weight_decay", op.weight_decay());
      put_i64(s, pg + "nesterov", op.nesterov() ? 1 : 0);
    }
    put(s, pg + "params", at::arange(n, at::TensorOptions().dtype(at::kLong)));
    return 0;
  });
  if (rc < 0) {
    ts_nn_state_free(&s);
    return rc;
  }
  *out = s;
  return 0;
}

int ts_optim_load_state(ts_optim *o, const ts_nn_state *s) {
  return guard(__func__, [&]() {
    if (!o || !s) fail(TS_EINVAL, "NN_ARG", "optimiser or state is NULL");
    torch::optim::Optimizer &opt = *o->o;
    auto &group = opt.param_groups().at(0);
    const std::vector<at::Tensor> &params = group.params();
    const char *kind = optim_kind(&opt);
    bool adamw = adam_family(kind); /* Adam or AdamW */
    const char *other = adamw ? "SGD" : "Adam/AdamW";
    if (ts_nn_state_find(s, kind_marker(adamw ? "SGD" : "Adam")))
      fail(TS_EINPUT, "NN_CHECKPOINT",
           std::string("'") + kind_marker(other) + "' says this is an " + other +
               " state; the optimiser is " + kind);
    reader r{s, {}};
    const std::string pg = "param_groups.0.";
    int64_t n = static_cast<int64_t>(params.size());
    const at::Tensor &plist = r.need(pg + "params");
    if (plist.dim() != 1 || plist.numel() != n)
      fail(TS_EINPUT, "NN_CHECKPOINT",
           "'" + pg + "params' lists " + std::to_string(plist.numel()) + " parameters; the optimiser has " +
               std::to_string(n));
    double lr = r.scalar(pg + "lr");
    if (!(lr >= 0.0)) fail(TS_EINPUT, "NN_CHECKPOINT", "'" + pg + "lr' = " + num(lr) + " < 0");
    /* Validate and build everything first: a failed load leaves the optimiser as it was. */
    std::vector<std::unique_ptr<torch::optim::OptimizerParamState>> next(params.size());
    if (std::strcmp(kind, "AdamW") == 0) {
      adam_state_read<torch::optim::AdamWParamState, torch::optim::AdamWOptions>(r, group, next);
    } else if (adamw) {
      adam_state_read<torch::optim::AdamParamState, torch::optim::AdamOptions>(r, group, next);
    } else {
      const auto &op = static_cast<const torch::optim::SGDOptions &>(group.options());
      r.check(pg + "momentum", op.momentum());
      r.check(pg + "dampening", op.dampening());
      r.check(pg + "weight_decay", op.weight_decay());
      r.check(pg + "nesterov", op.nesterov() ? 1.0 : 0.0);
      for (int64_t i = 0; i < n; i++) {
        std::string name = "state." + std::to_string(i) + ".momentum_buffer";
        if (!ts_nn_state_find(s, name.c_str())) continue; /* no momentum, or no step yet */
        std::unique_ptr<torch::optim::SGDParamState> ps(new torch::optim::SGDParamState);
        ps->momentum_buffer(r.moment(name, params[static_cast<size_t>(i)]));
        next[static_cast<size_t>(i)] = std::move(ps);
      }
    }
    r.no_leftovers();
    /* Apply (nothing below throws but bad_alloc). */
    auto &st = opt.state();
    for (size_t i = 0; i < params.size(); i++) {
      std::string key = param_key(params[i]);
      st.erase(key);
      if (next[i]) st[key] = std::move(next[i]);
    }
    group.options().set_lr(lr);
    o->lr = lr;
    return 0;
  });
}

/* The global CPU generator: the one ts_nn_manual_seed seeds and dropout, bernoulli and
 * ts_tensor_rand* with seed 0 draw from. Its state (CPUGeneratorImpl::get_state) is a uint8
 * tensor: the mt19937 state plus the cached second normal sample of Box-Muller. */
int ts_nn_rng_state(ts_tensor **out) {
  return produce(__func__, out, [&]() {
    at::Generator g = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(g.mutex());
    return g.get_state(); /* a new tensor, a copy */
  });
}

int ts_nn_rng_set_state(const ts_tensor *state) {
  return guard(__func__, [&]() {
    const at::Tensor &x = T(state, "state");
    at::Generator g = at::detail::getDefaultCPUGenerator();
    int64_t want = 0;
    {
      std::lock_guard<std::mutex> lock(g.mutex());
      want = g.get_state().numel();
    }
    if (x.dim() != 1 || x.numel() != want)
      fail(TS_EINPUT, "NN_CHECKPOINT",
           "RNG state has shape " + c10::str(x.sizes()) + "; the CPU generator's is [" +
               std::to_string(want) + "]");
    at::ScalarType st = x.scalar_type();
    if (st != at::kByte) {
      /* an HDF5 checkpoint gives it back as int64 */
      if (!at::isIntegralType(st, false))
        fail(TS_EINPUT, "NN_CHECKPOINT",
             std::string("RNG state is ") + c10::toString(st) + ", not uint8 or int64");
      at::Tensor c = x.detach().to(at::kCPU);
      if (c.min().item<int64_t>() < 0 || c.max().item<int64_t>() > 255)
        fail(TS_EINPUT, "NN_CHECKPOINT", "RNG state has values outside 0..255");
    }
    at::Tensor b = x.detach().to(at::kCPU).to(at::kByte).contiguous();
    std::lock_guard<std::mutex> lock(g.mutex());
    g.set_state(b);
    return 0;
  });
}

/* ---- TorchScript ---- */

int ts_jit_load(const char *path, int device, ts_jit_module **out) {
  if (!out) return ts_error_set(TS_EINVAL, "NN_ARG", "%s: out is NULL", __func__);
  *out = nullptr;
  return guard(__func__, [&]() {
    if (!path) fail(TS_EINVAL, "NN_ARG", "path is NULL");
    at::Device dev = device_of(device);
    struct stat st;
    if (stat(path, &st) != 0) fail(TS_EINPUT, "NN_JIT", std::string(path) + ": no such file");
    std::unique_ptr<ts_jit_module> m(new ts_jit_module);
    try {
      m->m = torch::jit::load(path, dev);
    } catch (const c10::Error &e) {
      fail(TS_EINPUT, "NN_JIT",
           std::string(path) +
               ": not a loadable TorchScript file: " + first_line(e.what_without_backtrace()));
    } catch (const std::exception &e) {
      fail(TS_EINPUT, "NN_JIT",
           std::string(path) + ": not a loadable TorchScript file: " + first_line(e.what()));
    }
    m->m.eval();
    *out = m.release();
    return 0;
  });
}

int ts_jit_forward(ts_jit_module *m, const ts_tensor *x, ts_tensor **out) {
  return produce(__func__, out, [&]() {
    if (!m) fail(TS_EINVAL, "NN_ARG", "module is NULL");
    std::vector<torch::jit::IValue> in{T(x, "x")};
    torch::jit::IValue r;
    try {
      r = m->m.forward(in);
    } catch (const c10::Error &e) {
      fail(TS_EINPUT, "NN_JIT", "forward failed: " + first_line(e.what_without_backtrace()));
    } catch (const std::exception &e) { /* torch::jit::JITException and the like */
      fail(TS_EINPUT, "NN_JIT", "forward failed: " + first_line(e.what()));
    }
    if (r.isTensor()) return r.toTensor();
    if (r.isTuple())
      for (const auto &e : r.toTupleRef().elements())
        if (e.isTensor()) return e.toTensor();
    if (r.isTensorList() && r.toTensorList().size() > 0) return r.toTensorList().get(0);
    fail(TS_EINPUT, "NN_JIT", "forward returned " + r.tagKind() + ", not a tensor");
  });
}

int ts_jit_state(ts_jit_module *m, ts_nn_state **out) {
  if (!out) return ts_error_set(TS_EINVAL, "NN_ARG", "%s: out is NULL", __func__);
  *out = nullptr;
  ts_nn_state *s = nullptr;
  int rc = guard(__func__, [&]() {
    if (!m) fail(TS_EINVAL, "NN_ARG", "module is NULL");
    if (ts_nn_state_new(&s) < 0) return ts_error_code();
    for (const auto &p : m->m.named_parameters(true)) {
      ts_tensor h{p.value};
      if (ts_nn_state_add(s, p.name.c_str(), &h) < 0) return ts_error_code();
    }
    for (const auto &b : m->m.named_buffers(true)) {
      ts_tensor h{b.value};
      if (ts_nn_state_add(s, b.name.c_str(), &h) < 0) return ts_error_code();
    }
    return 0;
  });
  if (rc < 0) {
    ts_nn_state_free(&s);
    return rc;
  }
  *out = s;
  return 0;
}

void ts_jit_free(ts_jit_module **m) {
  if (!m || !*m) return;
  delete *m;
  *m = nullptr;
}

/* ---- .pt files ---- */

namespace {
/* torch.save's bytes for a [n, d] float32 tensor holding a copy of data. */
std::vector<char> pt_bytes_f32(const float *data, int64_t n, int64_t d) {
  if (n < 0 || d < 0)
    fail(TS_EINVAL, "NN_ARG", "negative shape [" + std::to_string(n) + ", " + std::to_string(d) + "]");
  at::Tensor t = at::empty({n, d}, at::TensorOptions().dtype(at::kFloat));
  size_t nbytes = static_cast<size_t>(t.numel()) * sizeof(float);
  if (nbytes && !data) fail(TS_EINVAL, "NN_ARG", "data is NULL");
  if (nbytes) std::memcpy(t.data_ptr(), data, nbytes);
  /* pickle_save, not torch::save: torch::save writes a TorchScript module archive
   * (serialize::OutputArchive) that Python's torch.load does not return as a tensor. */
  return torch::pickle_save(t);
}
} // namespace

int ts_nn_pt_encode_f32(const float *data, int64_t n, int64_t d, void **bytes_out, size_t *len_out) {
  if (!bytes_out || !len_out)
    return ts_error_set(TS_EINVAL, "NN_ARG", "%s: bytes_out or len_out is NULL", __func__);
  *bytes_out = nullptr;
  *len_out = 0;
  return guard(__func__, [&]() {
    std::vector<char> v = pt_bytes_f32(data, n, d);
    void *b = std::malloc(v.size() ? v.size() : 1);
    if (!b) throw std::bad_alloc();
    std::memcpy(b, v.data(), v.size());
    *bytes_out = b;
    *len_out = v.size();
    return 0;
  });
}

int ts_nn_pt_save_f32(const float *data, int64_t n, int64_t d, const char *path) {
  if (!path) return ts_error_set(TS_EINVAL, "NN_ARG", "%s: path is NULL", __func__);
  return guard(__func__, [&]() {
    std::vector<char> v = pt_bytes_f32(data, n, d);
    return ts_io_write_atomic(path, v.data(), v.size()); /* C: sets its own error, throws nothing */
  });
}

} /* extern "C" */
