#!/usr/bin/env bash
# labels: survival report mpi
# The report's "survival" section (stages/report_survival.c), checked against the survival
# stage's own files and against a recomputation in Python, not against itself: 60 synthetic
# patients (four of them made bad: no time, an event 2, no clinical row, a row without slides)
# fit cox_clinical over 3 folds on 2 ranks.
#  (a) report.json validates against schemas/report.schema.json (and a string C-index fails).
#  (b) report.json = the files, exactly: every per-fold figure = metrics.json, every KM row =
#      km.csv, every coefficient = model.json, the excluded patients = excluded.csv, the study
#      size = splits.csv; mean and sample sd over folds = numpy's (and the C-index mean =
#      summary.json's). Recomputed from risks.csv's test rows: the risk groups (risk > risk_cut),
#      the KM curves with their log-scale Greenwood CIs, Harrell's C, the log-rank p (1e-9).
#  (c) the page: each fold's table row and the mean row show those figures in their formats;
#      one KM SVG per fold whose two step curves pass through every km.csv step (0.05 px), with
#      a CI band, censoring ticks as risks.csv has censorings, the log-rank p and HR written on
#      it; the coefficient table; the excluded patients with their tokens; no "nan".
#  (d) compare: a fold's "seconds" is performance, a C-index a result.
#  (e) on copies of the run: a fold whose figures are undefined (null in metrics.json, a km.csv
#      without rows) shows "—" and a note instead of its plot, the means over the two others;
#      more than 100 excluded patients go collapsed onto pages report/survival-excluded-<k>.html;
#      without survival/summary.json there is no section.
. "$(dirname "$0")/lib.sh"
cd "$WORK"
$PY -c 'import jsonschema, numpy' 2>/dev/null || { echo "FAIL - python3-jsonschema or python3-numpy is not installed"; exit 1; }
SCHEMA="$TS_SOURCE_DIR/schemas/report.schema.json"

expect_rc 0 "$TESSERA" synth cohort --slides 60 --size 512 --seed 11 --quiet
expect_rc 0 $PY - cohort/clinical.csv <<'PY'
import csv, sys
p = sys.argv[1]
rows = list(csv.DictReader(open(p)))
by = {r["patient_id"]: r for r in rows}
by["P0003"]["time"] = ""                                # SURV_NO_TIME
by["P0006"]["event"] = "2"                              # SURV_BAD_EVENT
rows = [r for r in rows if r["patient_id"] != "P0008"]  # SURV_NO_CLINICAL
extra = dict(rows[0]); extra["patient_id"] = "P9999"; rows.append(extra)  # SURV_NO_SLIDE
w = csv.DictWriter(open(p, "w", newline=""), fieldnames=list(rows[0].keys()), lineterminator="\n")
w.writeheader(); w.writerows(rows)
PY
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml --set run.dir="$WORK/a" --set survival.models=cox_clinical \
  --set survival.folds=3 --set survival.time_bins=2 --stages survival --quiet
check "the survival stage wrote survival/summary.json" test -s a/survival/summary.json
check "the run wrote report.json" test -s a/report/report.json

cat > validate.py <<'PY'
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
errs = list(jsonschema.Draft202012Validator(schema).iter_errors(json.load(open(sys.argv[2]))))
for e in errs: print(list(e.absolute_path), e.message[:300])
sys.exit(1 if errs else 0)
PY
# ---- (a) ----
expect_rc 0 "$PY" validate.py "$SCHEMA" a/report/report.json
$PY -c "import json; r=json.load(open('a/report/report.json')); r['survival']['models'][0]['per_fold'][0]['c_index']='high'; json.dump(r, open('broken.json','w'))"
expect_rc 1 "$PY" validate.py "$SCHEMA" broken.json

# ---- (b) the facts: the stage's files and a recomputation ----
cat > facts.py <<'PY'
import csv, json, math, os, sys
import numpy as np
run = sys.argv[1]
r = json.load(open(os.path.join(run, 'report/report.json')))
assert 'survival' in r['sections'], r['sections']
s = r['survival']
assert s['folds'] == 3 and [m['model'] for m in s['models']] == ['cox_clinical'], (s['folds'], s['models'])
num = lambda v: None if v == '' else float(v)
sp = [x for x in csv.DictReader(open(os.path.join(run, 'survival/splits.csv'))) if x['fold'] == '0']
assert s['patients'] == len(sp) == 57 and s['events'] == sum(int(x['event']) for x in sp), (s['patients'], s['events'], len(sp))
ex = list(csv.DictReader(open(os.path.join(run, 'survival/excluded.csv'))))
assert s['excluded'] == [{'patient_id': x['patient_id'], 'token': x['token'], 'detail': x['detail']} for x in ex], (s['excluded'], ex)
assert {x['patient_id']: x['token'] for x in ex} == {'P0003': 'SURV_NO_TIME', 'P0006': 'SURV_BAD_EVENT', 'P0008': 'SURV_NO_CLINICAL', 'P9999': 'SURV_NO_SLIDE'}, ex
summary = json.load(open(os.path.join(run, 'survival/summary.json')))['models'][0]
Z = 1.959963984540054
for m in s['models']:
    assert m['folds_done'] == 3 and m['folds_failed'] == 0 and m['folds_pending'] == 0, m['folds_done']
    cols = {k: [] for k in ('c_index', 'uno_c', 'logrank_p', 'hr_high_vs_low')}
    aucs, coefs = [], {}
    for f in m['per_fold']:
        d = os.path.join(run, 'survival', m['model'], 'fold%d' % f['fold'])
        mj = json.load(open(os.path.join(d, 'metrics.json')))
        assert f['status'] == 'done' and f['error_token'] is None, f['status']
        for k in ('n_train', 'n_val', 'n_test', 'test_events', 'c_index', 'c_index_se', 'uno_c', 'uno_tau', 'auc_times', 'auc', 'risk_cut',
                  'n_high', 'n_low', 'logrank_p', 'hr_high_vs_low', 'hr_ci95'):
            assert f[k] == mj[k], (f['fold'], k, f[k], mj[k])  # full precision: equal, not close
        for k in cols: cols[k].append(mj[k])
        aucs.append(mj['auc'])
        km = list(csv.DictReader(open(os.path.join(d, 'km.csv'))))
        for g in ('high', 'low'):
            rows = [x for x in km if x['group'] == g]
            for k in ('time', 'n_risk', 'n_event', 'surv', 'lower', 'upper'):
                assert f['km'][g][k] == [num(x[k]) for x in rows], (f['fold'], g, k)
        mo = json.load(open(os.path.join(d, 'model.json')))
        assert f['coefficients'] == mo['coefficients'], (f['coefficients'], mo['coefficients'])
        assert f['fit_warning'] == (mo['warning'] or None)
        for c in mo['coefficients']: coefs.setdefault(c['name'], []).append(c['coef'])
        # --- recomputed from risks.csv's test rows ---
        te = [x for x in csv.DictReader(open(os.path.join(d, 'risks.csv'))) if x['set'] == 'test']
        t = np.array([float(x['time']) for x in te]); e = np.array([int(x['event']) for x in te]); x = np.array([float(x['risk']) for x in te])
        hi = x > mj['risk_cut']
        assert [('high' if h else 'low') for h in hi] == [y['group'] for y in te] and f['n_high'] == hi.sum() and f['n_low'] == (~hi).sum()
        for g, sel in (('high', hi), ('low', ~hi)):  # KM, Greenwood on the log scale (R's conf.type = "log")
            S, v, k = 1.0, 0.0, f['km'][g]
            ts = np.unique(t[sel])
            assert k['time'] == ts.tolist(), (g, k['time'], ts)
            for i, tt in enumerate(ts):
                n = (t[sel] >= tt).sum(); dd = ((t[sel] == tt) & (e[sel] == 1)).sum()
                S *= 1 - dd / n
                v = v + dd / (n * (n - dd)) if n > dd else math.inf
                assert k['n_risk'][i] == n and k['n_event'][i] == dd and abs(k['surv'][i] - S) < 1e-12, (g, i)
                lo, up = (S * math.exp(-Z * math.sqrt(v)), min(1.0, S * math.exp(Z * math.sqrt(v)))) if S > 0 and math.isfinite(v) else (None, None)
                for a, b in ((k['lower'][i], lo), (k['upper'][i], up)):
                    assert (a is None and b is None) or abs(a - b) < 1e-9, (g, i, a, b)
        conc = disc = tie = 0.0  # Harrell's C: higher risk, earlier event; a censoring at an event's time outlives it
        for i in range(len(t)):
            if not e[i]: continue
            for j in range(len(t)):
                if t[j] > t[i] or (t[j] == t[i] and not e[j]):
                    conc += x[i] > x[j]; disc += x[i] < x[j]; tie += x[i] == x[j]
        assert abs(f['c_index'] - (conc + tie / 2) / (conc + disc + tie)) < 1e-9, (f['c_index'], conc, disc, tie)
        O = E = V = 0.0  # log-rank, high vs low
        for tt in np.unique(t[e == 1]):
            at = t >= tt; n = at.sum(); n1 = (at & hi).sum(); dd = ((t == tt) & (e == 1)).sum()
            O += ((t == tt) & (e == 1) & hi).sum(); E += dd * n1 / n
            if n > 1: V += n1 * (n - n1) * dd * (n - dd) / (n * n * (n - 1))
        assert abs(f['logrank_p'] - math.erfc(math.sqrt((O - E) ** 2 / V / 2))) < 1e-9, f['logrank_p']
    for k, v in cols.items():
        fin = [y for y in v if y is not None]
        assert abs(m[k + '_mean'] - np.mean(fin)) < 1e-12 and abs(m[k + '_sd'] - np.std(fin, ddof=1)) < 1e-12 and m[k + '_folds'] == len(fin), (k, m[k + '_mean'], fin)
    a = np.array(aucs, dtype=float)
    assert np.allclose(m['auc_mean'], a.mean(0), atol=1e-12, rtol=0) and np.allclose(m['auc_sd'], a.std(0, ddof=1), atol=1e-12, rtol=0), (m['auc_mean'], a)
    assert abs(m['c_index_mean'] - summary['c_index_mean']) < 1e-12 and abs(m['uno_c_sd'] - summary['uno_c_sd']) < 1e-12
    assert [c['name'] for c in m['coefficients_mean']] == list(coefs), m['coefficients_mean']
    for c in m['coefficients_mean']:
        v = coefs[c['name']]
        assert abs(c['coef_mean'] - np.mean(v)) < 1e-12 and abs(c['coef_sd'] - np.std(v, ddof=1)) < 1e-12 and abs(c['hr_of_mean'] - math.exp(np.mean(v))) < 1e-12, c
print('folds', len(s['models'][0]['per_fold']), 'patients', s['patients'], 'excluded', len(s['excluded']))
PY
expect_rc 0 "$PY" facts.py a
tail -1 "$WORK/out"

# ---- (c) the page ----
cat > page.py <<'PY'
import csv, html, json, os, re, sys
import xml.etree.ElementTree as ET
run = sys.argv[1]
page = open(os.path.join(run, 'report/index.html')).read()
sec = re.search(r'<section id="survival">.*?</section>', page, re.S)
assert sec, 'no survival section'
sec = sec.group(0)
assert not re.search(r'(?i)\bnan\b|\binf\b', sec), 'nan or inf on the page'
s = json.load(open(os.path.join(run, 'report/report.json')))['survival']
U = '—'
def f(fmt, v): return U if v is None else fmt % v
def est(fmt, v, lo, hi):
    if v is None: return U
    return f(fmt, v) + (' [%s, %s]' % (fmt % lo, fmt % hi) if lo is not None and hi is not None else ' [' + U + ']')
def text(cell): return html.unescape(re.sub(r'<[^>]+>', '', cell)).strip()
def cells(row_id):
    row = re.search(r'<tr id="%s"[^>]*>(.*?)</tr>' % re.escape(row_id), sec, re.S)
    assert row, ('no row', row_id)
    return {k: text(c) for k, c in re.findall(r'<td class="n" data-k="([a-z0-9_]+)">(.*?)</td>', row.group(1), re.S)}
undefined = int(sys.argv[2]) if len(sys.argv) > 2 else -1
for m in s['models']:
    name = m['model']
    for x in m['per_fold']:
        c = cells('survival-%s-fold%d' % (name, x['fold']))
        want = {'sizes': '%d / %d / %d (%d)' % (x['n_train'], x['n_val'], x['n_test'], x['test_events']),
                'c_index': f('%.3f', x['c_index']) + (' (%s)' % f('%.3f', x['c_index_se']) if x['c_index'] is not None else ''),
                'uno_c': '%s (τ %s)' % (f('%.3f', x['uno_c']), f('%.4g', x['uno_tau'])),
                'logrank_p': f('%.3g', x['logrank_p']), 'hr_high_vs_low': est('%.2f', x['hr_high_vs_low'], *x['hr_ci95']),
                'groups': '%d / %d' % (x['n_high'], x['n_low'])}
        for q in range(3): want['auc%d' % q] = '%s (t %s)' % (f('%.3f', x['auc'][q]), f('%.4g', x['auc_times'][q]))
        assert c == want, (x['fold'], c, want)
        if x['fold'] == undefined:
            assert c['c_index'] == U and c['hr_high_vs_low'] == U, c
            continue
        # the fold's KM plot: both step curves through every km.csv step
        svg = re.search(r'<svg[^>]*id="survival-km-%s-fold%d".*?</svg>' % (name, x['fold']), sec, re.S)
        assert svg, ('no KM plot', x['fold'])
        root = ET.fromstring(svg.group(0))
        xmax = float(root.get('data-xmax'))
        fr = [e for e in root.iter() if e.get('class') == 'km-frame'][0]
        x0, y0, W, H = (float(fr.get(k)) for k in ('x', 'y', 'width', 'height'))
        X = lambda t: x0 + W * t / xmax
        Y = lambda v: y0 + H - H * v
        bands = 0
        risks = [y for y in csv.DictReader(open(os.path.join(run, 'survival', name, 'fold%d' % x['fold'], 'risks.csv'))) if y['set'] == 'test']
        for g in ('high', 'low'):
            k = x['km'][g]
            p = [e for e in root.iter() if e.get('class') == 'km-curve' and e.get('data-group') == g][0]
            assert int(p.get('data-points')) == len(k['time']), (g, p.get('data-points'))
            pts = [tuple(map(float, xy)) for xy in re.findall(r'[ML](-?[0-9.]+) (-?[0-9.]+)', p.get('d'))]
            want = [(X(0), Y(1))]
            prev = 1.0
            for t, v in zip(k['time'], k['surv']):
                want += [(X(t), Y(prev)), (X(t), Y(v))]
                prev = v
            assert len(pts) == len(want) and all(abs(a - c) <= 0.051 and abs(b - d) <= 0.051 for (a, b), (c, d) in zip(pts, want)), (g, pts, want)
            band = [e for e in root.iter() if e.get('class') == 'km-band' and e.get('data-group') == g][0]
            nb = sum(1 for i in range(len(k['time']) - 1) if k['lower'][i] is not None and k['upper'][i] is not None)
            assert band.get('d').count('Z') == nb, (g, band.get('d'), nb)
            bands += nb
            # a tick per time with a censoring (risks.csv: a censored test patient of the group)
            cens = {float(y['time']) for y in risks if y['group'] == g and y['event'] == '0'}
            tick = [e for e in root.iter() if e.get('class') == 'km-censor' and e.get('data-group') == g][0]
            assert tick.get('d').count('M') == len(cens), (g, tick.get('d'), cens)
            leg = ' '.join(e.text or '' for e in root.iter() if e.tag.endswith('text'))
            assert ('%s risk (n = %d)' % (g, x['n_' + g])) in leg, leg
        assert bands > 0, 'no CI band'
        st = [e for e in root.iter() if e.get('class') == 'cl km-stats'][0]
        assert st.text == 'log-rank p %s · HR %s' % (f('%.3g', x['logrank_p']), est('%.2f', x['hr_high_vs_low'], *x['hr_ci95'])), st.text
    c = cells('survival-%s-mean' % name)
    def ms(fmt, mean, sd, n):
        if mean is None: return U
        return fmt % mean + (' ± ' + fmt % sd if sd is not None else '') + (' (%d folds)' % n if n < m['folds_done'] else '')
    want = {'sizes': '%d of 3 folds done' % m['folds_done'], 'c_index': ms('%.3f', m['c_index_mean'], m['c_index_sd'], m['c_index_folds']),
            'uno_c': ms('%.3f', m['uno_c_mean'], m['uno_c_sd'], m['uno_c_folds']),
            'logrank_p': ms('%.3g', m['logrank_p_mean'], m['logrank_p_sd'], m['logrank_p_folds']),
            'hr_high_vs_low': ms('%.2f', m['hr_high_vs_low_mean'], m['hr_high_vs_low_sd'], m['hr_high_vs_low_folds'])}
    for q in range(3): want['auc%d' % q] = ms('%.3f', m['auc_mean'][q], m['auc_sd'][q], m['auc_folds'][q])
    assert c == want, (c, want)
    # the coefficients: per covariate, per fold HR [CI], p; the mean coefficient and its HR
    for i, cm in enumerate(m['coefficients_mean']):
        c = cells('survival-coef-%s-%d' % (name, i))
        want = {'coef_mean': '%.4g ± %.4g' % (cm['coef_mean'], cm['coef_sd']), 'hr_of_mean': '%.3f' % cm['hr_of_mean']}
        for x in m['per_fold']:
            q = [y for y in x['coefficients'] if y['name'] == cm['name']][0]
            want['fold%d' % x['fold']] = est('%.3f', q['hr'], *q['hr_ci95']) + ', p ' + f('%.3g', q['p'])
        assert c == want, (c, want)
# the excluded patients with their tokens
ids = re.search(r'<b id="survival-n-excluded">(\d+)</b>', sec)
assert ids and int(ids.group(1)) == len(s['excluded']), ids
tab = re.search(r'<table class="survtab" id="survival-excluded">.*?</table>', sec, re.S).group(0)
rows = re.findall(r'<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>', tab, re.S)
assert [tuple(text(c) for c in x) for x in rows] == [(e['patient_id'], e['token'], e['detail']) for e in s['excluded'][:100]], rows[:3]
print('page ok')
PY
expect_rc 0 "$PY" page.py a

# ---- (d) compare: a fold's seconds are performance, a C-index a result ----
$PY - <<'PY'
import json
r = json.load(open('a/report/report.json'))
r['survival']['models'][0]['per_fold'][0]['seconds'] = 12345.0
json.dump(r, open('perf.json', 'w'))
r['survival']['models'][0]['per_fold'][0]['c_index'] = 0.123
json.dump(r, open('result.json', 'w'))
PY
expect_rc 0 "$TESSERA" compare a/report/report.json perf.json
expect_rc 1 "$TESSERA" compare a/report/report.json result.json
check "compare names the differing C-index" grep -q "DIFFERS  survival.models" "$WORK/out"

# ---- (e) undefined figures: fold 1 as a test part without an event would leave it ----
cp -r a u
$PY - u/survival/cox_clinical/fold1 <<'PY'
import json, sys
p = sys.argv[1] + '/metrics.json'
m = json.load(open(p))
for k in ('c_index', 'c_index_se', 'uno_c', 'logrank_p', 'hr_high_vs_low'): m[k] = None
m['auc'] = [None] * 3; m['hr_ci95'] = [None, None]
json.dump(m, open(p, 'w'))
open(sys.argv[1] + '/km.csv', 'w').write('group,time,n_risk,n_event,surv,lower,upper\n')
PY
expect_rc 0 "$TESSERA" report u --quiet
expect_rc 0 "$PY" validate.py "$SCHEMA" u/report/report.json
expect_rc 0 "$PY" - u <<'PY'
import json, sys
import numpy as np
m = json.load(open(sys.argv[1] + '/report/report.json'))['survival']['models'][0]
f1 = m['per_fold'][1]
assert f1['c_index'] is None and f1['hr_ci95'] == [None, None] and f1['km'] == {g: {k: [] for k in ('time', 'n_risk', 'n_event', 'surv', 'lower', 'upper')} for g in ('high', 'low')}, f1
cs = [m['per_fold'][k]['c_index'] for k in (0, 2)]
assert m['c_index_folds'] == 2 and abs(m['c_index_mean'] - np.mean(cs)) < 1e-12 and abs(m['c_index_sd'] - np.std(cs, ddof=1)) < 1e-12
PY
expect_rc 0 "$PY" page.py u 1
check "undefined: no KM plot of fold 1, a note instead" grep -q 'id="survival-km-cox_clinical-fold1-none"' u/report/index.html
check "undefined: the mean row says over how many folds" grep -q '<small>(2 folds)</small>' u/report/index.html

# ---- (e) 130 more excluded patients: collapsed, on pages ----
cp -r a p
$PY - p/survival/excluded.csv <<'PY'
import sys
with open(sys.argv[1], 'a') as f:
    for i in range(130): f.write('Q%04d,SURV_NO_SLIDE,"clinical.csv:%d: no slide of this patient in the cohort"\n' % (i, 100 + i))
PY
expect_rc 0 "$TESSERA" report p --quiet
check "134 excluded: 2 pages" test -s p/report/survival-excluded-1.html -a -s p/report/survival-excluded-2.html -a ! -e p/report/survival-excluded-3.html
check "134 excluded: collapsed in the index, which links the pages" grep -qz '<details id="survival-excluded-list">.*href="survival-excluded-2.html"' p/report/index.html
check "page 2 shows rows 101-134" grep -q "patients left out, 101–134 of 134" p/report/survival-excluded-2.html
expect_rc 0 "$PY" - p <<'PY'
import json, sys
s = json.load(open(sys.argv[1] + '/report/report.json'))['survival']
assert len(s['excluded']) == 134 and s['excluded'][-1] == {'patient_id': 'Q0129', 'token': 'SURV_NO_SLIDE', 'detail': 'clinical.csv:229: no slide of this patient in the cohort'}, s['excluded'][-1]
PY
expect_rc 0 "$PY" page.py p
expect_rc 0 "$PY" validate.py "$SCHEMA" p/report/report.json

# ---- (e) no survival/summary.json: no section ----
cp -r a n
rm n/survival/summary.json
expect_rc 0 "$TESSERA" report n --quiet
expect_rc 0 "$PY" - n/report/report.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert 'survival' not in r and 'survival' not in r['sections'], r['sections']
PY
check "without survival/summary.json: no survival section on the page" test -z "$(grep -o '<section id="survival"' n/report/index.html || true)"
finish
