/* schedule.c — learning-rate schedules as plain functions of the step (ts_nn.h).
 *
 * Stateless on purpose: a resumed run recomputes the rate from the step it resumes at, and the
 * schedule needs no checkpointing. Cosine annealing after Loshchilov & Hutter, "SGDR" (ICLR
 * 2017), with the linear warmup of Goyal et al., "Accurate, large minibatch SGD" (2017), as
 * SwAV and DINO use it.
 */
#include <math.h>

#include "ts_nn.h"

double ts_lr_cosine_warmup(int64_t step, int64_t total, int64_t warmup, double base_lr, double min_lr) {
  if (step < 0) step = 0;
  if (warmup > 0 && step < warmup) return base_lr * (double)(step + 1) / (double)warmup;
  int64_t span = total - (warmup > 0 ? warmup : 0);
  if (span <= 0) return min_lr;
  double t = (double)(step - (warmup > 0 ? warmup : 0)) / (double)span;
  if (t > 1.0) t = 1.0;
  return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + cos(M_PI * t));
}

double ts_lr_step_decay(int64_t step, int64_t step_size, double gamma, double base_lr) {
  if (step < 0 || step_size <= 0) return base_lr;
  return base_lr * pow(gamma, (double)(step / step_size));
}
