/* surv_cox.c — Cox proportional hazards by Newton-Raphson, after R's survival::coxph
 * (Therneau & Grambsch, "Modeling Survival Data", 2000, ch. 3; survival/src/coxfit6.c).
 *
 * Design, and why it matches R to rounding:
 *  - Rows are sorted once by (stratum, time descending); risk sets are then running sums, so
 *    one pass costs O(n p^2) (the p x p sums) and the fit O(n log n + iter n p^2).
 *  - Covariates are centred on their weighted means and scaled by 1/mean|x - mean| as coxfit6
 *    does; the Cholesky pivot tolerance (aliasing) is applied on that scale, like R.
 *  - Ties: Breslow, or Efron's approximation where the d tied deaths enter the risk-set sums in
 *    d steps of 1/d (Efron 1977).
 *  - Iteration: R's loop exactly (loglik[1] = best so far, progressive step halving, the
 *    convergence test |1 - best/new| <= eps), so fit$iter agrees with R.
 *  - Overflow: exp(eta) is taken relative to a running shift per stratum (raised whenever a
 *    new eta exceeds it by 30), so a linear predictor of 1000 does not overflow; R has no
 *    such guard, the results are the same whenever R's are finite.
 *  - Monotone likelihood: after convergence the next Newton step |u' V| is compared with
 *    eps and toler_inf * |beta| exactly as coxph.fit, which warns "Loglik converged before
 *    variable ...; coefficient may be infinite".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "surv_internal.h"

#define Z975 1.959963984540054

void ts_cox_options_default(ts_cox_options *o) {
  memset(o, 0, sizeof *o);
  o->ties = TS_COX_EFRON;
  o->max_iter = 20;
  o->eps = 1e-9;
  o->toler_chol = pow(2.220446049250313e-16, 0.75);
  o->toler_inf = sqrt(1e-9);
  o->ridge = 0;
  o->concordance = true;
}

typedef struct work {
  size_t n, p;
  int ties;
  double *x;       /* n x p, sorted, centred and scaled */
  double *w;       /* sorted weights */
  int *ev;         /* sorted events */
  size_t ngroup;
  size_t *gstart;  /* ngroup + 1: group g = rows gstart[g] .. gstart[g+1]-1 (tied time) */
  unsigned char *snew; /* group starts a new stratum */
  double *eta;     /* n */
  double *a, *a2, *cmat, *cmat2; /* p, p, p*p, p*p scratch */
  double *pen;     /* p: ridge * scale^2 (0 without ridge) */
} work;

static void work_free(work *w) {
  free(w->x);
  free(w->w);
  free(w->ev);
  free(w->gstart);
  free(w->snew);
  free(w->eta);
  free(w->a);
  free(w->pen);
}

static void rescale(work *w, double f, double *denom, double *denom2) {
  size_t p = w->p;
  *denom *= f;
  *denom2 *= f;
  for (size_t i = 0; i < p; i++) {
    w->a[i] *= f;
    w->a2[i] *= f;
  }
  for (size_t i = 0; i < p * p; i++) {
    w->cmat[i] *= f;
    w->cmat2[i] *= f;
  }
}

/* Log partial likelihood at beta (scaled space), score u, information imat (upper triangle,
 * imat[j*p+i] for j <= i is filled, then symmetrised). BASE (optional, ngroup): hazard
 * increment of each group on the centred scale times exp(-shift) convention resolved:
 * base[g] = increment for risk exp(eta) (centred), i.e. already multiplied back by the shift. */
static double cox_iter(work *w, const double *beta, double *u, double *imat, double *base) {
  size_t n = w->n, p = w->p;
  double loglik = 0, denom = 0, denom2 = 0, shift = 0;
  for (size_t i = 0; i < p; i++) u[i] = 0;
  if (imat)
    for (size_t i = 0; i < p * p; i++) imat[i] = 0;
  for (size_t r = 0; r < n; r++) {
    const double *xr = w->x + r * p;
    double e = 0;
    for (size_t j = 0; j < p; j++) e += beta[j] * xr[j];
    w->eta[r] = e;
  }
  for (size_t g = 0; g < w->ngroup; g++) {
    size_t r0 = w->gstart[g], r1 = w->gstart[g + 1];
    if (w->snew[g]) {
      denom = 0;
      shift = w->eta[r0];
      memset(w->a, 0, p * sizeof(double));
      memset(w->cmat, 0, p * p * sizeof(double));
    }
    int ndead = 0;
    double deadwt = 0;
    denom2 = 0;
    memset(w->a2, 0, p * sizeof(double));
    memset(w->cmat2, 0, p * p * sizeof(double));
    for (size_t r = r0; r < r1; r++) {
      const double *xr = w->x + r * p;
      double e = w->eta[r];
      if (e > shift + 30) {
        rescale(w, exp(shift - e), &denom, &denom2);
        shift = e;
      }
      double risk = exp(e - shift) * w->w[r];
      double *av = w->a, *cm = w->cmat;
      if (w->ev[r]) {
        ndead++;
        deadwt += w->w[r];
        denom2 += risk;
        loglik += w->w[r] * e;
        for (size_t i = 0; i < p; i++) u[i] += w->w[r] * xr[i];
        av = w->a2;
        cm = w->cmat2;
      } else {
        denom += risk;
      }
      if (!imat && !w->ev[r]) { /* only the sums the score needs */
        for (size_t i = 0; i < p; i++) av[i] += risk * xr[i];
        continue;
      }
      for (size_t i = 0; i < p; i++) {
        double rx = risk * xr[i];
        av[i] += rx;
        double *ci = cm + i * p;
        for (size_t j = 0; j <= i; j++) ci[j] += rx * xr[j];
      }
    }
    if (ndead == 0) {
      if (base) base[g] = 0;
      continue;
    }
    double hz = 0;
    if (w->ties == TS_COX_BRESLOW || ndead == 1) {
      denom += denom2;
      loglik -= deadwt * (log(denom) + shift);
      hz = deadwt / denom;
      for (size_t i = 0; i < p; i++) {
        w->a[i] += w->a2[i];
        double m = w->a[i] / denom;
        u[i] -= deadwt * m;
        if (!imat) continue;
        for (size_t j = 0; j <= i; j++) {
          w->cmat[i * p + j] += w->cmat2[i * p + j];
          imat[j * p + i] += deadwt * (w->cmat[i * p + j] - m * w->a[j]) / denom;
        }
      }
    } else {
      double wtave = deadwt / ndead;
      for (int k = 0; k < ndead; k++) {
        denom += denom2 / ndead;
        loglik -= wtave * (log(denom) + shift);
        hz += wtave / denom;
        for (size_t i = 0; i < p; i++) {
          w->a[i] += w->a2[i] / ndead;
          double m = w->a[i] / denom;
          u[i] -= wtave * m;
          if (!imat) continue;
          for (size_t j = 0; j <= i; j++) {
            w->cmat[i * p + j] += w->cmat2[i * p + j] / ndead;
            imat[j * p + i] += wtave * (w->cmat[i * p + j] - m * w->a[j]) / denom;
          }
        }
      }
    }
    if (base) base[g] = hz * exp(-shift);
  }
  if (imat)
    for (size_t i = 0; i < p; i++)
      for (size_t j = 0; j < i; j++) imat[i * p + j] = imat[j * p + i];
  /* ridge: loglik - 1/2 sum pen_i beta_i^2 (pen = lambda * scale^2 on the scaled betas) */
  for (size_t i = 0; i < p; i++) {
    if (w->pen[i] == 0) continue;
    loglik -= 0.5 * w->pen[i] * beta[i] * beta[i];
    u[i] -= w->pen[i] * beta[i];
    if (imat) imat[i * p + i] += w->pen[i];
  }
  return loglik;
}

/* Sort, centre, scale; fills w and the means/scales. */
static int work_init(work *w, const ts_surv_data *d, const double *x, size_t p, int ties,
                     double ridge, double *means, double *scale) {
  int rc = 0;
  size_t n = d->n, *idx = NULL;
  memset(w, 0, sizeof *w);
  w->n = n;
  w->p = p;
  w->ties = ties;
  w->x = malloc(n * p * sizeof(double));
  w->w = malloc(n * sizeof(double));
  w->ev = malloc(n * sizeof(int));
  w->gstart = malloc((n + 1) * sizeof(size_t));
  w->snew = malloc(n + 1);
  w->eta = malloc(n * sizeof(double));
  w->a = malloc((2 * p + 2 * p * p) * sizeof(double));
  w->pen = calloc(p, sizeof(double));
  idx = malloc(n * sizeof(size_t));
  if (!w->x || !w->w || !w->ev || !w->gstart || !w->snew || !w->eta || !w->a || !w->pen || !idx)
    TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "Cox fit of %zu rows x %zu covariates", n, p);
  w->a2 = w->a + p;
  w->cmat = w->a2 + p;
  w->cmat2 = w->cmat + p * p;
  TS_TRY(ts__surv_order_desc(d, idx));
  double wsum = 0;
  for (size_t r = 0; r < n; r++) {
    size_t i = idx[r];
    w->w[r] = ts__w(d, i);
    w->ev[r] = d->event[i];
    memcpy(w->x + r * p, x + i * p, p * sizeof(double));
    wsum += w->w[r];
  }
  for (size_t j = 0; j < p; j++) {
    double m = 0, s = 0;
    for (size_t r = 0; r < n; r++) m += w->w[r] * w->x[r * p + j];
    m /= wsum;
    for (size_t r = 0; r < n; r++) {
      w->x[r * p + j] -= m;
      s += w->w[r] * fabs(w->x[r * p + j]);
    }
    s = s > 0 ? wsum / s : 1.0;
    for (size_t r = 0; r < n; r++) w->x[r * p + j] *= s;
    means[j] = m;
    scale[j] = s;
    w->pen[j] = ridge * s * s; /* beta_orig = beta_scaled * s */
  }
  w->ngroup = 0;
  for (size_t r = 0; r < n; r++) {
    size_t i = idx[r], ip = r ? idx[r - 1] : 0;
    bool news = r == 0 || ts__s(d, i) != ts__s(d, ip);
    if (news || d->time[i] != d->time[ip]) {
      w->snew[w->ngroup] = news;
      w->gstart[w->ngroup++] = r;
    }
  }
  w->gstart[w->ngroup] = n;
out:
  free(idx);
  return rc;
}

void ts_cox_fit_free(ts_cox_fit **fit) {
  if (!fit || !*fit) return;
  ts_cox_fit *f = *fit;
  free(f->coef);
  free(f->var);
  free(f->infinite);
  free(f->lp);
  free(f->base_time);
  free(f->base_cumhaz);
  free(f->base_strata);
  free(f);
  *fit = NULL;
}

static int check_x(const ts_surv_data *d, const double *x, size_t p) {
  if (!x || p == 0) return ts_error_set(TS_EINVAL, "COX_BAD_ARG", "no covariates (p = %zu)", p);
  TS_CALL(ts_surv_data_check(d));
  for (size_t i = 0; i < d->n * p; i++)
    if (!isfinite(x[i]))
      return ts_error_set(TS_EINVAL, "COX_BAD_ARG", "covariate %zu of row %zu is not finite",
                          i % p, i / p);
  return 0;
}

int ts_cox_loglik(const ts_surv_data *d, const double *x, size_t p, int ties, const double *beta,
                  double *loglik_out, double *score_out, double *info_out) {
  int rc = 0;
  work w;
  memset(&w, 0, sizeof w);
  double *ms = malloc(2 * p * sizeof(double)), *bs = calloc(p ? p : 1, sizeof(double)), *own = NULL;
  TS_TRY(check_x(d, x, p));
  if (!ms || !bs) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "Cox log-likelihood");
  if (!score_out && !(score_out = own = malloc(p * sizeof(double) + 1))) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "Cox log-likelihood");
  TS_TRY(work_init(&w, d, x, p, ties, 0, ms, ms + p));
  for (size_t j = 0; j < p; j++) bs[j] = beta[j] / ms[p + j];
  /* centring cancels in the partial likelihood; undo the scaling of score and information */
  *loglik_out = cox_iter(&w, bs, score_out, info_out, NULL);
  for (size_t j = 0; j < p; j++) score_out[j] /= ms[p + j];
  if (info_out)
    for (size_t i = 0; i < p; i++)
      for (size_t j = 0; j < p; j++) info_out[i * p + j] /= ms[p + i] * ms[p + j];
out:
  work_free(&w);
  free(ms);
  free(bs);
  free(own);
  return rc;
}

int ts_cox_fit_new(const ts_surv_data *d, const double *x, size_t p, const ts_cox_options *opt,
                   ts_cox_fit **fit_out) {
  int rc = 0;
  ts_cox_options o;
  if (opt) o = *opt;
  else ts_cox_options_default(&o);
  work w;
  memset(&w, 0, sizeof w);
  ts_cox_fit *f = NULL;
  double *buf = NULL, *base = NULL;
  *fit_out = NULL;
  TS_TRY(check_x(d, x, p));
  if (o.ties != TS_COX_EFRON && o.ties != TS_COX_BRESLOW)
    TS_FAIL(TS_EINVAL, "COX_BAD_ARG", "unknown ties method %d", o.ties);
  if (!(o.ridge >= 0)) TS_FAIL(TS_EINVAL, "COX_BAD_ARG", "ridge penalty %g < 0", o.ridge);
  size_t n = d->n, nev = 0;
  for (size_t i = 0; i < n; i++) nev += d->event[i] == 1;
  if (nev == 0) TS_FAIL(TS_EINPUT, "COX_NO_EVENTS", "no events among %zu rows", n);

  f = calloc(1, sizeof *f);
  buf = malloc((8 * p + 2 * p * p) * sizeof(double));
  if (!f || !buf) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "Cox fit");
  f->n = n;
  f->p = p;
  f->nevent = nev;
  f->ties = o.ties;
  f->ridge = o.ridge;
  f->coef = malloc(9 * p * sizeof(double));
  f->var = malloc(p * p * sizeof(double));
  f->infinite = calloc(p, sizeof(bool));
  f->lp = malloc(n * sizeof(double));
  if (!f->coef || !f->var || !f->infinite || !f->lp) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "Cox fit");
  f->se = f->coef + p;
  f->z = f->se + p;
  f->pvalue = f->z + p;
  f->hr = f->pvalue + p;
  f->hr_lower = f->hr + p;
  f->hr_upper = f->hr_lower + p;
  f->means = f->hr_upper + p;
  double *scale = f->means + p; /* 9th block: scales, internal */

  TS_TRY(work_init(&w, d, x, p, o.ties, o.ridge, f->means, scale));
  base = malloc(w.ngroup * sizeof(double));
  if (!base) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "Cox fit");

  double *beta = buf, *newbeta = buf + p, *u = buf + 2 * p, *a = buf + 3 * p,
         *u0 = buf + 4 * p, *tmp = buf + 5 * p, *imat = buf + 8 * p;
  double *chol = imat + p * p;
  for (size_t j = 0; j < p; j++) beta[j] = 0;

  /* iteration 0: beta = 0, the null log-likelihood and the score test */
  double ll0 = cox_iter(&w, beta, u, imat, NULL);
  double best = ll0;
  memcpy(chol, imat, p * p * sizeof(double));
  int flag = ts__chol(chol, (int)p, o.toler_chol);
  memcpy(a, u, p * sizeof(double));
  memcpy(u0, u, p * sizeof(double));
  ts__chsolve(chol, (int)p, a);
  double sc = 0;
  for (size_t j = 0; j < p; j++) sc += u[j] * a[j];
  f->score_test = sc;
  for (size_t j = 0; j < p; j++) newbeta[j] = beta[j] + a[j];

  int halving = 0, iter, converged = 0;
  double newlk = ll0;
  for (iter = 1; iter <= o.max_iter; iter++) {
    newlk = cox_iter(&w, newbeta, u, imat, NULL);
    memcpy(chol, imat, p * p * sizeof(double));
    flag = ts__chol(chol, (int)p, o.toler_chol);
    int notfinite = !isfinite(newlk);
    for (size_t i = 0; i < p && !notfinite; i++) notfinite = !isfinite(u[i]);
    for (size_t i = 0; i < p * p && !notfinite; i++) notfinite = !isfinite(imat[i]);
    if (!notfinite && fabs(1 - best / newlk) <= o.eps) {
      best = newlk;
      memcpy(beta, newbeta, p * sizeof(double));
      converged = 1;
      break;
    }
    if (iter == o.max_iter) break;
    if (notfinite || newlk < best) {
      halving++;
      for (size_t i = 0; i < p; i++)
        newbeta[i] = (newbeta[i] + halving * beta[i]) / (halving + 1.0);
    } else {
      halving = 0;
      best = newlk;
      memcpy(a, u, p * sizeof(double));
      ts__chsolve(chol, (int)p, a);
      for (size_t i = 0; i < p; i++) {
        beta[i] = newbeta[i];
        newbeta[i] += a[i];
      }
    }
  }
  if (!converged) { /* ran out: report the last good beta, as R does */
    if (iter > o.max_iter) iter = o.max_iter;
    best = cox_iter(&w, beta, u, imat, NULL);
    memcpy(chol, imat, p * p * sizeof(double));
    flag = ts__chol(chol, (int)p, o.toler_chol);
  }
  f->iter = iter;
  f->status = converged ? TS_COX_CONVERGED : TS_COX_MAXITER;
  f->df = flag;
  f->singular = flag < (int)p;
  ts__chinv(chol, (int)p); /* chol := variance on the scaled space */

  /* back to the original scale */
  for (size_t i = 0; i < p; i++) {
    bool alias = chol[i * p + i] == 0;
    f->coef[i] = alias ? NAN : beta[i] * scale[i];
    u[i] /= scale[i];
    for (size_t j = 0; j < p; j++) f->var[i * p + j] = chol[i * p + j] * scale[i] * scale[j];
  }
  /* the unpenalised log-likelihood at the estimate */
  f->loglik_penalized = best;
  if (o.ridge > 0) {
    double pen = 0;
    for (size_t i = 0; i < p; i++)
      if (!isnan(f->coef[i])) pen += f->coef[i] * f->coef[i];
    f->loglik = best + 0.5 * o.ridge * pen;
  } else {
    f->loglik = best;
  }
  f->loglik_null = ll0;
  f->lr_test = 2 * (f->loglik - ll0);
  f->lr_p = ts_surv_pchisq_upper(f->lr_test, flag > 0 ? flag : 1);
  f->score_p = ts_surv_pchisq_upper(f->score_test, flag > 0 ? flag : 1);
  for (size_t i = 0; i < p; i++) {
    double se = sqrt(f->var[i * p + i]);
    if (isnan(f->coef[i])) se = NAN;
    f->se[i] = se;
    f->z[i] = f->coef[i] / se;
    f->pvalue[i] = ts_surv_pnorm2(f->z[i]);
    f->hr[i] = exp(f->coef[i]);
    f->hr_lower[i] = exp(f->coef[i] - Z975 * se);
    f->hr_upper[i] = exp(f->coef[i] + Z975 * se);
  }
  /* Wald test: beta' V^-1 beta over the non-aliased coefficients (coxph.wtest) */
  {
    double *vm = imat; /* reuse */
    for (size_t i = 0; i < p; i++)
      for (size_t j = 0; j < p; j++) vm[i * p + j] = f->var[i * p + j];
    for (size_t i = 0; i < p; i++) tmp[i] = isnan(f->coef[i]) ? 0 : f->coef[i];
    double *t2 = a;
    memcpy(t2, tmp, p * sizeof(double));
    ts__chol(vm, (int)p, o.toler_chol);
    ts__chsolve(vm, (int)p, t2);
    double wt = 0;
    for (size_t i = 0; i < p; i++) wt += tmp[i] * t2[i];
    f->wald_test = wt;
    f->wald_p = ts_surv_pchisq_upper(wt, flag > 0 ? flag : 1);
  }
  /* warnings, in R's order of precedence */
  if (!converged) {
    snprintf(f->warning, sizeof f->warning,
             "COX_NOT_CONVERGED: Ran out of iterations (%d) and did not converge", o.max_iter);
  } else if (o.max_iter > 1) {
    size_t len = 0;
    for (size_t i = 0; i < p; i++) {
      double s = 0;
      for (size_t j = 0; j < p; j++) s += u[j] * f->var[j * p + i];
      s = fabs(s);
      if (!isnan(f->coef[i]) && s > o.eps && s > o.toler_inf * fabs(f->coef[i])) {
        f->infinite[i] = true;
        if (len == 0)
          len = (size_t)snprintf(f->warning, sizeof f->warning,
                                 "COX_INFINITE_COEF: Loglik converged before variable %zu",
                                 i + 1);
        else if (len < sizeof f->warning)
          len += (size_t)snprintf(f->warning + len, sizeof f->warning - len, ",%zu", i + 1);
      }
    }
    if (len && len < sizeof f->warning)
      snprintf(f->warning + len, sizeof f->warning - len,
               "; coefficient may be infinite (monotone likelihood / separation)");
  }
  if (!f->warning[0] && f->singular)
    snprintf(f->warning, sizeof f->warning,
             "COX_SINGULAR: information matrix is singular (rank %d of %zu): aliased "
             "covariates have NaN coefficients",
             flag, p);

  /* linear predictors (uncentred, input order) */
  for (size_t i = 0; i < n; i++) {
    double s = 0;
    for (size_t j = 0; j < p; j++)
      if (!isnan(f->coef[j])) s += f->coef[j] * x[i * p + j];
    f->lp[i] = s;
  }
  /* baseline cumulative hazard at x = 0: hazard increments at the final beta */
  cox_iter(&w, beta, u, NULL, base);
  {
    double mb = 0;
    for (size_t j = 0; j < p; j++)
      if (!isnan(f->coef[j])) mb += f->means[j] * f->coef[j];
    f->nbase = w.ngroup;
    f->base_time = malloc(w.ngroup * sizeof(double));
    f->base_cumhaz = malloc(w.ngroup * sizeof(double));
    f->base_strata = malloc(w.ngroup * sizeof(int));
    size_t *ord = malloc(n * sizeof(size_t));
    if (!f->base_time || !f->base_cumhaz || !f->base_strata || !ord) {
      free(ord);
      TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "Cox baseline hazard");
    }
    rc = ts__surv_order_desc(d, ord);
    if (rc < 0) {
      free(ord);
      goto out;
    }
    /* groups are in (stratum asc, time desc) order: reverse each stratum's block */
    size_t g = 0, k = 0;
    while (g < w.ngroup) {
      size_t g1 = g + 1;
      while (g1 < w.ngroup && !w.snew[g1]) g1++;
      double cum = 0;
      for (size_t q = g1; q-- > g;) {
        size_t i = ord[w.gstart[q]];
        cum += base[q] * exp(-mb);
        f->base_time[k] = d->time[i];
        f->base_cumhaz[k] = cum;
        f->base_strata[k] = ts__s(d, i);
        k++;
      }
      g = g1;
    }
    free(ord);
  }
  f->concordance = f->concordance_se = NAN;
  if (o.concordance) {
    ts_concordance c;
    TS_TRY(ts_surv_concordance(d, f->lp, TS_TIMEWT_N, INFINITY, &c));
    f->concordance = c.c;
    f->concordance_se = c.std_err;
  }
  *fit_out = f;
  f = NULL;
out:
  work_free(&w);
  free(buf);
  free(base);
  ts_cox_fit_free(&f);
  return rc;
}
