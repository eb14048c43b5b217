/* ts_stop.h — cooperative stop on SIGTERM/SIGINT (Slurm's time limit, pre-emption, Ctrl-C).
 *
 * The handler only sets a flag. Long work checks ts_stop_requested() between pieces (the
 * extract stage between batches) and returns ts_stop_error(), a TS_ESTOP status with token
 * STOPPED. The scheduler never records a stopped unit (it stays pending: the next run does it)
 * and hands out no new unit once the flag is up. A unit interrupted this way loses nothing:
 * its output was never committed. */
#ifndef TS_STOP_H
#define TS_STOP_H

#include <stdbool.h>

/* Install the SIGTERM/SIGINT handler (idempotent). */
void ts_stop_install(void);
bool ts_stop_requested(void);
/* Raise the flag by hand (tests, or a coordinator telling its worker thread). */
void ts_stop_request(int signo);
/* The signal that raised it (0 when none). */
int ts_stop_signal(void);
/* Set the error "STOPPED: interrupted by SIGTERM ..." and return TS_ESTOP. */
int ts_stop_error(const char *what);

#endif
