/* cmd_survival.c — the `tessera cox` and `tessera km` subcommands: read a numeric CSV, fit a
 * Cox model or Kaplan-Meier curves with stats/ts_survival.h, and print a table laid out like
 * R's summary(coxph) / survfit, or JSON with --json.
 *
 * Exit codes: 0 ok, 1 data error (stderr: "TOKEN: file:line:column: ..."), 2 usage error.
 * Warnings of the fit (infinite coefficient, non-convergence, singular information) go to
 * stderr as "Warning: TOKEN: ..." and into the JSON "warning" field; they do not fail the run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ts_cli.h"
#include "ts_survival.h"

#define MAX_COV 256

static const char COX_USAGE[] =
    "usage: tessera cox DATA.csv --time COL --event COL [--ties efron|breslow]\n"
    "                   [--strata COL] [--weights COL] [--ridge LAMBDA] [--json] [COVARIATE ...]\n"
    "\n"
    "Cox proportional hazards fit (Newton-Raphson, as R's coxph). Without covariates, every\n"
    "column other than time, event, strata and weights is used.\n"
    "  --time COL       follow-up time column (>= 0)\n"
    "  --event COL      event column (0 censored, 1 event)\n"
    "  --ties METHOD    efron (default, as R) or breslow\n"
    "  --strata COL     integer stratum column: separate baseline hazards\n"
    "  --weights COL    case weights (> 0)\n"
    "  --ridge LAMBDA   L2 penalty: maximise loglik - LAMBDA/2 |beta|^2 (default 0)\n"
    "  --json           machine-readable output\n"
    "  --timing         print the fit time (seconds, CSV reading excluded) on stderr\n"
    "Exit: 0 ok, 1 data error, 2 usage error.\n";

static const char KM_USAGE[] =
    "usage: tessera km DATA.csv --time COL --event COL [--group COL] [--json]\n"
    "\n"
    "Kaplan-Meier curves (Greenwood SE, log-scale 95% CI, as R's survfit) and, with --group,\n"
    "the log-rank test between the groups (as R's survdiff).\n"
    "Columns: std.err is the standard error of S(t) (R's summary(survfit) std.err, i.e.\n"
    "S * se(log S)); se(logS) is the Greenwood standard error of log S(t) (R's survfit()$std.err,\n"
    "the one the log-scale limits use). JSON: surv_std_err and std_err respectively.\n"
    "  --time COL    follow-up time column (>= 0)\n"
    "  --event COL   event column (0 censored, 1 event)\n"
    "  --group COL   integer group column: one curve per group, plus the log-rank test\n"
    "  --json        machine-readable output\n"
    "Exit: 0 ok, 1 data error, 2 usage error.\n";

typedef struct args {
  const char *file, *time, *event, *strata, *weights, *group;
  int ties;
  double ridge;
  bool json, help, timing;
  const char *cov[MAX_COV];
  size_t ncov;
} args;

static int usage_error(const char *usage, const char *fmt, const char *what) {
  fprintf(stderr, "USAGE: ");
  fprintf(stderr, fmt, what);
  fprintf(stderr, "\n%s", usage);
  return 2;
}

/* Returns 0, or 2 after printing a usage error. */
static int parse(int argc, char **argv, bool cox, args *a) {
  const char *usage = cox ? COX_USAGE : KM_USAGE;
  memset(a, 0, sizeof *a);
  a->ties = TS_COX_EFRON;
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
      a->help = true;
      return 0;
    }
    if (!strcmp(s, "--json")) {
      a->json = true;
      continue;
    }
    if (!strcmp(s, "--timing")) { /* for bench/bench_cox.sh: fit seconds on stderr */
      a->timing = true;
      continue;
    }
    if (!strncmp(s, "--", 2)) {
      if (i + 1 >= argc) return usage_error(usage, "option %s needs a value", s);
      const char *v = argv[++i];
      if (!strcmp(s, "--time")) a->time = v;
      else if (!strcmp(s, "--event")) a->event = v;
      else if (cox && !strcmp(s, "--strata")) a->strata = v;
      else if (cox && !strcmp(s, "--weights")) a->weights = v;
      else if (!cox && !strcmp(s, "--group")) a->group = v;
      else if (cox && !strcmp(s, "--ties")) {
        if (!strcmp(v, "efron")) a->ties = TS_COX_EFRON;
        else if (!strcmp(v, "breslow")) a->ties = TS_COX_BRESLOW;
        else return usage_error(usage, "--ties must be efron or breslow, not '%s'", v);
      } else if (cox && !strcmp(s, "--ridge")) {
        char *e;
        a->ridge = strtod(v, &e);
        if (*e || !(a->ridge >= 0)) return usage_error(usage, "--ridge needs a number >= 0, not '%s'", v);
      } else
        return usage_error(usage, "unknown option %s", s);
      continue;
    }
    if (!a->file) a->file = s;
    else if (cox && a->ncov < MAX_COV) a->cov[a->ncov++] = s;
    else return usage_error(usage, "unexpected argument '%s'", s);
  }
  if (!a->file) return usage_error(usage, "%s", "no DATA.csv given");
  if (!a->time || !a->event) return usage_error(usage, "%s", "--time and --event are required");
  return 0;
}

static void jnum(FILE *o, double v) {
  if (isfinite(v)) fprintf(o, "%.17g", v);
  else fputs("null", o);
}

static void jstr(FILE *o, const char *s) {
  fputc('"', o);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fprintf(o, "\\%c", *s);
    else if ((unsigned char)*s < 0x20) fprintf(o, "\\u%04x", *s);
    else fputc(*s, o);
  }
  fputc('"', o);
}

static void print_cox(const ts_cox_fit *f, const args *a, const char *const *cov, size_t p) {
  printf("Call:\ncoxph(formula = Surv(%s, %s) ~ ", a->time, a->event);
  for (size_t j = 0; j < p; j++) printf("%s%s", j ? " + " : "", cov[j]);
  if (a->strata) printf(" + strata(%s)", a->strata);
  printf(", ties = \"%s\"%s%s%s)\n\n", f->ties == TS_COX_EFRON ? "efron" : "breslow",
         a->weights ? ", weights = " : "", a->weights ? a->weights : "",
         a->ridge > 0 ? ", ridge" : "");
  printf("  n= %zu, number of events= %zu \n\n", f->n, f->nevent);
  size_t w = 8;
  for (size_t j = 0; j < p; j++)
    if (strlen(cov[j]) > w) w = strlen(cov[j]);
  printf("%-*s %12s %12s %12s %9s %12s\n", (int)w, "", "coef", "exp(coef)", "se(coef)", "z",
         "Pr(>|z|)");
  for (size_t j = 0; j < p; j++)
    printf("%-*s %12.6g %12.6g %12.6g %9.4g %12.4g\n", (int)w, cov[j], f->coef[j], f->hr[j],
           f->se[j], f->z[j], f->pvalue[j]);
  printf("\n%-*s %12s %12s %12s %12s\n", (int)w, "", "exp(coef)", "exp(-coef)", "lower .95",
         "upper .95");
  for (size_t j = 0; j < p; j++)
    printf("%-*s %12.6g %12.6g %12.6g %12.6g\n", (int)w, cov[j], f->hr[j], 1 / f->hr[j],
           f->hr_lower[j], f->hr_upper[j]);
  printf("\nConcordance= %.3f  (se = %.3f )\n", f->concordance, f->concordance_se);
  printf("Likelihood ratio test= %.4g  on %d df,   p=%.3g\n", f->lr_test, f->df, f->lr_p);
  printf("Wald test            = %.4g  on %d df,   p=%.3g\n", f->wald_test, f->df, f->wald_p);
  printf("Score (logrank) test = %.4g  on %d df,   p=%.3g\n", f->score_test, f->df, f->score_p);
  printf("\nloglik: null %.10g, model %.10g; iterations: %d%s\n", f->loglik_null, f->loglik,
         f->iter, f->status == TS_COX_CONVERGED ? "" : " (not converged)");
}

static void json_cox(const ts_cox_fit *f, const args *a, const char *const *cov, size_t p) {
  FILE *o = stdout;
  fprintf(o, "{\"model\":\"coxph\",\"ties\":\"%s\",\"n\":%zu,\"nevent\":%zu,\"time\":",
          f->ties == TS_COX_EFRON ? "efron" : "breslow", f->n, f->nevent);
  jstr(o, a->time);
  fprintf(o, ",\"event\":");
  jstr(o, a->event);
  fprintf(o, ",\"ridge\":");
  jnum(o, f->ridge);
  fprintf(o, ",\"coefficients\":[");
  for (size_t j = 0; j < p; j++) {
    fprintf(o, "%s{\"term\":", j ? "," : "");
    jstr(o, cov[j]);
    const double v[] = {f->coef[j], f->hr[j], f->se[j], f->z[j], f->pvalue[j], f->hr_lower[j],
                        f->hr_upper[j]};
    const char *k[] = {"coef", "exp_coef", "se", "z", "p", "lower95", "upper95"};
    for (size_t q = 0; q < 7; q++) {
      fprintf(o, ",\"%s\":", k[q]);
      jnum(o, v[q]);
    }
    fprintf(o, ",\"infinite\":%s}", f->infinite[j] ? "true" : "false");
  }
  fprintf(o, "]");
  const double v[] = {f->loglik_null, f->loglik, f->lr_test, f->lr_p, f->wald_test, f->wald_p,
                      f->score_test, f->score_p, f->concordance, f->concordance_se};
  const char *k[] = {"loglik_null", "loglik", "lr_test", "lr_p", "wald_test", "wald_p",
                     "score_test", "score_p", "concordance", "concordance_se"};
  for (size_t q = 0; q < 10; q++) {
    fprintf(o, ",\"%s\":", k[q]);
    jnum(o, v[q]);
  }
  fprintf(o, ",\"df\":%d,\"iter\":%d,\"converged\":%s,\"singular\":%s,\"warning\":", f->df,
          f->iter, f->status == TS_COX_CONVERGED ? "true" : "false",
          f->singular ? "true" : "false");
  if (f->warning[0]) jstr(o, f->warning);
  else fputs("null", o);
  fprintf(o, "}\n");
}

int ts_cmd_cox(int argc, char **argv) {
  args a;
  int rc = parse(argc, argv, true, &a), ret = 1;
  if (rc) return rc;
  if (a.help) {
    fputs(COX_USAGE, stdout);
    return 0;
  }
  ts_csv_table *t = NULL;
  ts_surv_data d = {0};
  double *x = NULL;
  ts_cox_fit *f = NULL;
  const char *cov[MAX_COV];
  size_t p = 0;
  if (ts_csv_read(a.file, &t) < 0) goto out;
  if (ts_surv_data_from_csv(t, a.time, a.event, a.weights, a.strata, &d) < 0) goto out;
  if (a.ncov) {
    for (size_t j = 0; j < a.ncov; j++) cov[p++] = a.cov[j];
  } else {
    for (size_t c = 0; c < t->ncol && p < MAX_COV; c++) {
      const char *nm = t->names[c];
      if (!strcmp(nm, a.time) || !strcmp(nm, a.event) || (a.strata && !strcmp(nm, a.strata)) ||
          (a.weights && !strcmp(nm, a.weights)))
        continue;
      cov[p++] = nm;
    }
    if (p == 0) {
      ts_csv_free(&t);
      ts_surv_data_release(&d);
      return usage_error(COX_USAGE, "%s", "no covariate columns");
    }
  }
  if (ts_csv_design(t, cov, p, &x) < 0) goto out;
  ts_cox_options o;
  ts_cox_options_default(&o);
  o.ties = a.ties;
  o.ridge = a.ridge;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (ts_cox_fit_new(&d, x, p, &o, &f) < 0) goto out;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (a.timing)
    fprintf(stderr, "fit_seconds: %.6f\n", (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
  if (f->warning[0]) fprintf(stderr, "Warning: %s\n", f->warning);
  if (a.json) json_cox(f, &a, cov, p);
  else print_cox(f, &a, cov, p);
  ret = 0;
out:
  if (ret) fprintf(stderr, "%s\n", ts_error_message());
  ts_cox_fit_free(&f);
  free(x);
  ts_surv_data_release(&d);
  ts_csv_free(&t);
  return ret;
}

/* Standard error of S(t) itself, the std.err column of R's summary(survfit): the delta method
 * on the Greenwood SE of log S, se(S) = S se(log S) (summary.survfit: std.err * surv). NaN
 * where S = 0 (R: NA). */
static double surv_std_err(const ts_km_curve *cv, size_t i) {
  double v = cv->surv[i] * cv->std_err[i];
  return cv->surv[i] > 0 && isfinite(v) ? v : NAN;
}

int ts_cmd_km(int argc, char **argv) {
  args a;
  int rc = parse(argc, argv, false, &a), ret = 1;
  if (rc) return rc;
  if (a.help) {
    fputs(KM_USAGE, stdout);
    return 0;
  }
  ts_csv_table *t = NULL;
  ts_surv_data d = {0};
  ts_km *km = NULL;
  ts_logrank *lr = NULL;
  if (ts_csv_read(a.file, &t) < 0) goto out;
  /* the group column travels as the strata of the data */
  if (ts_surv_data_from_csv(t, a.time, a.event, NULL, a.group, &d) < 0) goto out;
  if (ts_km_fit_new(&d, 0.95, &km) < 0) goto out;
  if (a.group && km->ncurve > 1 && ts_logrank_new(&d, d.strata, &lr) < 0) goto out;
  if (a.json) {
    printf("{\"model\":\"survfit\",\"conf_type\":\"log\",\"conf_level\":0.95,\"curves\":[");
    for (size_t c = 0; c < km->ncurve; c++) {
      const ts_km_curve *cv = &km->curve[c];
      printf("%s{\"group\":%d,\"median\":", c ? "," : "", cv->group);
      jnum(stdout, cv->median);
      const double *cols[] = {cv->time, cv->n_risk, cv->n_event, cv->n_censor, cv->surv,
                              cv->std_err, cv->lower, cv->upper};
      const char *k[] = {"time", "n_risk", "n_event", "n_censor", "surv", "std_err", "lower",
                         "upper"};
      for (size_t q = 0; q < 8; q++) {
        printf(",\"%s\":[", k[q]);
        for (size_t i = 0; i < cv->len; i++) {
          if (i) putchar(',');
          jnum(stdout, cols[q][i]);
        }
        putchar(']');
      }
      printf(",\"surv_std_err\":[");
      for (size_t i = 0; i < cv->len; i++) {
        if (i) putchar(',');
        jnum(stdout, surv_std_err(cv, i));
      }
      putchar(']');
      putchar('}');
    }
    printf("]");
    if (lr) {
      printf(",\"logrank\":{\"chisq\":");
      jnum(stdout, lr->chisq);
      printf(",\"df\":%d,\"p\":", lr->df);
      jnum(stdout, lr->p);
      printf("}");
    }
    printf("}\n");
  } else {
    for (size_t c = 0; c < km->ncurve; c++) {
      const ts_km_curve *cv = &km->curve[c];
      if (a.group) printf("%s=%d\n", a.group, cv->group);
      printf("%10s %8s %8s %8s %10s %10s %10s %10s %10s\n", "time", "n.risk", "n.event",
             "n.censor", "survival", "std.err", "lower 95%", "upper 95%", "se(logS)");
      for (size_t i = 0; i < cv->len; i++)
        printf("%10g %8g %8g %8g %10.6g %10.6g %10.6g %10.6g %10.6g\n", cv->time[i],
               cv->n_risk[i], cv->n_event[i], cv->n_censor[i], cv->surv[i], surv_std_err(cv, i),
               cv->lower[i], cv->upper[i], cv->std_err[i]);
      printf("median survival: %g\n\n", cv->median);
    }
    if (lr) {
      printf("%10s %8s %10s %10s\n", a.group, "N", "Observed", "Expected");
      for (size_t g = 0; g < lr->ngroup; g++)
        printf("%10d %8g %10.6g %10.6g\n", lr->group[g], lr->n[g], lr->observed[g],
               lr->expected[g]);
      printf("\n Chisq= %.6g  on %d degrees of freedom, p= %.4g\n", lr->chisq, lr->df, lr->p);
    }
  }
  ret = 0;
out:
  if (ret) fprintf(stderr, "%s\n", ts_error_message());
  ts_logrank_free(&lr);
  ts_km_free(&km);
  ts_surv_data_release(&d);
  ts_csv_free(&t);
  return ret;
}
