/* ts_error.c — thread-local error state (see ts_error.h). */
#include "ts_error.h"

#include <stdio.h>
#include <string.h>

#define MSG_MAX 2048
#define TRACE_MAX 1024

static _Thread_local int err_code;
static _Thread_local char err_token[64];
static _Thread_local char err_msg[MSG_MAX];
static _Thread_local char err_trace[TRACE_MAX];

/* The arguments may point into the current message (a caller wrapping the last error:
 * ts_error_set(..., "%s", ts_error_detail())), so format into a scratch buffer first and only
 * then replace the state: formatting in place overwrote the text it was still reading. */
int ts_error_setv(int code, const char *token, const char *fmt, va_list ap) {
  char tok[sizeof err_token], msg[MSG_MAX];
  snprintf(tok, sizeof tok, "%s", token ? token : "ERROR");
  int n = snprintf(msg, sizeof msg, "%s: ", tok);
  if (n < 0 || (size_t)n >= sizeof msg) n = 0;
  vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
  err_code = code;
  memcpy(err_token, tok, sizeof err_token);
  memcpy(err_msg, msg, sizeof err_msg);
  err_trace[0] = '\0';
  return code;
}

int ts_error_set(int code, const char *token, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  ts_error_setv(code, token, fmt, ap);
  va_end(ap);
  return code;
}

const char *ts_error_message(void) { return err_msg; }
const char *ts_error_token(void) { return err_token; }
int ts_error_code(void) { return err_code; }
const char *ts_error_trace(void) { return err_trace; }

const char *ts_error_detail(void) {
  size_t n = strlen(err_token);
  if (n && strncmp(err_msg, err_token, n) == 0 && err_msg[n] == ':')
    return err_msg + n + (err_msg[n + 1] == ' ' ? 2 : 1);
  return err_msg;
}

void ts_error_clear(void) {
  err_code = 0;
  err_token[0] = err_msg[0] = err_trace[0] = '\0';
}

void ts__error_frame(const char *file, int line, const char *func) {
  size_t n = strlen(err_trace);
  if (n + 8 >= sizeof err_trace) return;
  snprintf(err_trace + n, sizeof err_trace - n, "%s  at %s:%d %s()", n ? "\n" : "", file, line,
           func);
}
