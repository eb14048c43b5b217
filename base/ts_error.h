/* ts_error.h — status codes and the thread-local error message of tessera.
 *
 * Every fallible function returns an int: 0 on success, a negative TS_E* code on failure.
 * The details go in a thread-local message that starts with a stable token, e.g.
 *
 *     SLIDE_NO_MPP: slide 'case-07' (/data/case-07.tiff): no pixel size in the file, ...
 *
 * The token is what the ledger, the CLI and the tests match; the rest is for people.
 * (tch-rs keeps only a message in torch_last_err; we keep status *and* message.)
 *
 *     int rc = ts_slide_open(path, "slide-7", &slide);
 *     if (rc < 0) fprintf(stderr, "%s\n", ts_error_message());
 *
 * Propagation: TS_CALL(expr) returns the negative status of expr from the calling function,
 * TS_TRY(expr) stores it in a local `rc` and jumps to `out` (one cleanup path per function).
 * Both append file:line:function to a trace that TESSERA_DEBUG=1 prints (PETSc's PetscCall).
 *
 * Thread safety: the message is per thread. Setting a new error replaces the previous one.
 */
#ifndef TS_ERROR_H
#define TS_ERROR_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum ts_status {
  TS_OK = 0,
  TS_EINVAL = -1,    /* programmer or usage error: bad argument */
  TS_EIO = -2,       /* file system or library I/O failure */
  TS_ENOMEM = -3,    /* allocation failed */
  TS_EINPUT = -4,    /* bad user input: slide, CSV row, ... (recorded against a unit) */
  TS_ECONFIG = -5,   /* invalid configuration (exit code 2) */
  TS_EINTERNAL = -6, /* a library returned something we did not expect */
  TS_ESTOP = -7,     /* interrupted by a signal: stop cleanly */
};

/* Set the error: token is a stable UPPER_CASE word; fmt describes the case.
 * Returns code, so that `return ts_error_set(TS_EINPUT, "SLIDE_NO_MPP", ...)` works. */
int ts_error_set(int code, const char *token, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int ts_error_setv(int code, const char *token, const char *fmt, va_list ap);

/* "TOKEN: message" of this thread's last error, or "" when none. Valid until the next set. */
const char *ts_error_message(void);
/* The token alone ("" when none). */
const char *ts_error_token(void);
/* The message after "TOKEN: ". */
const char *ts_error_detail(void);
/* Last status set on this thread (0 when none). */
int ts_error_code(void);
/* Forget the error of this thread. */
void ts_error_clear(void);
/* file:line:func frames collected while the error travelled up. */
const char *ts_error_trace(void);

/* Shared-internal: append a frame to the trace. */
void ts__error_frame(const char *file, int line, const char *func);

#define TS_CALL(expr)                                                                        \
  do {                                                                                       \
    int ts__rc = (expr);                                                                     \
    if (ts__rc < 0) {                                                                        \
      ts__error_frame(__FILE__, __LINE__, __func__);                                         \
      return ts__rc;                                                                         \
    }                                                                                        \
  } while (0)

#define TS_TRY(expr)                                                                         \
  do {                                                                                       \
    rc = (expr);                                                                             \
    if (rc < 0) {                                                                            \
      ts__error_frame(__FILE__, __LINE__, __func__);                                         \
      goto out;                                                                              \
    }                                                                                        \
  } while (0)

/* Set an error and jump to out: TS_FAIL(TS_EINPUT, "CSV_BAD_VALUE", "%s:%d: ...", f, l). */
#define TS_FAIL(code, token, ...)                                                            \
  do {                                                                                       \
    rc = ts_error_set((code), (token), __VA_ARGS__);                                         \
    goto out;                                                                                \
  } while (0)

#ifdef __cplusplus
}
#endif
#endif
