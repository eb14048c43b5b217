/* ts_stop.c — see ts_stop.h. Async-signal-safe: the handler writes one sig_atomic_t. */
#include "ts_stop.h"

#include <signal.h>
#include <string.h>

#include "ts_error.h"

static volatile sig_atomic_t stop_sig;

static void on_signal(int signo) { stop_sig = signo; }

void ts_stop_install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
}

bool ts_stop_requested(void) { return stop_sig != 0; }
void ts_stop_request(int signo) { stop_sig = signo ? signo : SIGTERM; }
int ts_stop_signal(void) { return (int)stop_sig; }

int ts_stop_error(const char *what) {
  return ts_error_set(TS_ESTOP, "STOPPED", "%s: interrupted by signal %d before it finished; it stays pending and the next run does it",
                      what, (int)stop_sig);
}
