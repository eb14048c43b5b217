#!/usr/bin/env bash
# labels: survival report mpi
# The report's "survival" section (stages/report_survival.c), checked against the survival
# stage's own files and against a recomputation in Python, not against itself: 60 synthetic
# slides (four patients made bad: no time, an event 2, no clinical row, a row without slides;
# blank slides leave their patients out with SURV_NO_FEATURES) through tissue, tile, extract
# and survival on 2 ranks: cox_clinical and two deep models, amil (pathology) and mmf_bilinear
# (pathology + genomic + clinical), over 3 folds, 3 epochs (about 50 s on 2 cores).
#  (a) report.json validates against schemas/report.schema.json (and a string C-index fails).
#  (b) report.json = the files, exactly: every per-fold figure = metrics.json (bootstrap CI of C,
#      IBS and the Brier scores, calibration time, how S(t) was predicted included), every KM
#      row = km.csv, every coefficient = model.json (cox_clinical; the deep models: none, their
#      training = model.json), curve.csv and heatmaps.csv of the deep models, the pooled test
#      figures = summary.json, the excluded patients = excluded.csv, the study size =
#      splits.csv; mean and sample sd over folds = numpy's (and the C-index and IBS means =
#      summary.json's). Recomputed from risks.csv's test rows: the risk groups (risk > risk_cut),
#      the KM curves with their log-scale Greenwood CIs, Harrell's C, the log-rank p (1e-9);
#      pooled over the folds: Harrell's C (and its bootstrap CI brackets it), the calibration
#      time (the study's median event time), the quintiles of surv_at_tcal with their mean
#      prediction and the KM estimate at t_cal with its CI (1e-9).
#  (c) the page: the summary table (model x metric: C mean ± sd, pooled C [bootstrap CI], Uno's
#      C, IBS, folds); each fold's table row and the mean row show those figures in their
#      formats; one KM SVG per fold whose two step curves pass through every km.csv step
#      (0.05 px), with a CI band, censoring ticks as risks.csv has censorings, the log-rank p
#      and HR written on it; the calibration SVG (a point per estimable group at (predicted,
#      observed), CI bars) and table; the deep models' training curves (every epoch's losses,
#      the best epoch marked); the heatmap table (patient, group, risk per heatmaps.csv row),
#      and every thumbnail and full-size image the page references exists; the coefficient
#      table; the excluded patients with their tokens; no "nan".
#  (d) compare: a fold's "seconds" is performance, a C-index a result.
#  (e) on copies of the run: a fold whose figures are undefined (null in metrics.json, a km.csv
#      without rows) shows "—" and a note instead of its plot, the means over the two others;
#      a pooled C and a calibration group without a figure show "—"; more than 100 excluded
#      patients go collapsed onto pages report/survival-excluded-<k>.html; without
#      survival/summary.json there is no section.
. "$(dirname "$0")/lib.sh"
cd "$WORK"
$PY -c 'import jsonschema, numpy' 2>/dev/null || { echo "FAIL - python3-jsonschema or python3-numpy is not installed"; exit 1; }
SCHEMA="$TS_SOURCE_DIR/schemas/report.schema.json"

expect_rc 0 "$TESSERA" synth cohort --slides 60 --size 1600 --seed 11 --quiet
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
# (the records stage would fail on the bad rows: not run)
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml --set run.dir="$WORK/a" --set extract.encoder=resnet_tiny --set tile.size=64 \
  --set tile.mpp=1 --set survival.models=cox_clinical,amil,mmf_bilinear --set survival.folds=3 --set survival.time_bins=2 \
  --set survival.epochs=3 --stages tissue,tile,extract,survival --quiet
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
MODELS = ['cox_clinical', 'amil', 'mmf_bilinear']
assert s['folds'] == 3 and [m['model'] for m in s['models']] == MODELS, (s['folds'], s['models'])
num = lambda v: None if v == '' else float(v)
Z = 1.959963984540054
sp = [x for x in csv.DictReader(open(os.path.join(run, 'survival/splits.csv'))) if x['fold'] == '0']
assert s['patients'] == len(sp) >= 30 and s['events'] == sum(int(x['event']) for x in sp), (s['patients'], s['events'], len(sp))
ex = list(csv.DictReader(open(os.path.join(run, 'survival/excluded.csv'))))
assert s['excluded'] == [{'patient_id': x['patient_id'], 'token': x['token'], 'detail': x['detail']} for x in ex], (s['excluded'], ex)
tok = {x['patient_id']: x['token'] for x in ex}
assert {k: tok.get(k) for k in ('P0003', 'P0006', 'P0008', 'P9999')} == {'P0003': 'SURV_NO_TIME', 'P0006': 'SURV_BAD_EVENT', 'P0008': 'SURV_NO_CLINICAL', 'P9999': 'SURV_NO_SLIDE'}, ex
assert set(tok.values()) <= {'SURV_NO_TIME', 'SURV_BAD_EVENT', 'SURV_NO_CLINICAL', 'SURV_NO_SLIDE', 'SURV_NO_FEATURES'}, set(tok.values())
summary = {m['model']: m for m in json.load(open(os.path.join(run, 'survival/summary.json')))['models']}

def harrell(t, e, x):  # higher risk, earlier event; a censoring at an event's time outlives it
    conc = disc = tie = 0.0
    for i in range(len(t)):
        if not e[i]: continue
        for j in range(len(t)):
            if t[j] > t[i] or (t[j] == t[i] and not e[j]):
                conc += x[i] > x[j]; disc += x[i] < x[j]; tie += x[i] == x[j]
    return (conc + tie / 2) / (conc + disc + tie)

def km(t, e):  # [(time, n_risk, n_event, S, lower, upper)], Greenwood on the log scale (R's conf.type = "log")
    S, v, out = 1.0, 0.0, []
    for tt in np.unique(t):
        n = (t >= tt).sum(); dd = ((t == tt) & (e == 1)).sum()
        S *= 1 - dd / n
        v = v + dd / (n * (n - dd)) if n > dd else math.inf
        lo, up = (S * math.exp(-Z * math.sqrt(v)), min(1.0, S * math.exp(Z * math.sqrt(v)))) if S > 0 and math.isfinite(v) else (None, None)
        out.append((tt, n, dd, S, lo, up))
    return out

def close(a, b, tol=1e-9):
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= tol)

NEW = ('c_index_boot_ci95', 'c_index_boot_sd', 'bootstrap', 'ibs', 'brier_times', 'brier', 'calibration_time', 'survival_prediction')
for m in s['models']:
    deep = m['model'] != 'cox_clinical'
    assert m['deep'] == deep, (m['model'], m['deep'])
    assert m['folds_done'] == 3 and m['folds_failed'] == 0 and m['folds_pending'] == 0, m['folds_done']
    cols = {k: [] for k in ('c_index', 'uno_c', 'ibs', 'logrank_p', 'hr_high_vs_low')}
    aucs, coefs, pooled = [], {}, []
    for f in m['per_fold']:
        d = os.path.join(run, 'survival', m['model'], 'fold%d' % f['fold'])
        mj = json.load(open(os.path.join(d, 'metrics.json')))
        assert f['status'] == 'done' and f['error_token'] is None, f['status']
        for k in ('n_train', 'n_val', 'n_test', 'test_events', 'c_index', 'c_index_se', 'uno_c', 'uno_tau', 'auc_times', 'auc', 'risk_cut',
                  'n_high', 'n_low', 'logrank_p', 'hr_high_vs_low', 'hr_ci95') + NEW:
            assert f[k] == mj[k], (m['model'], f['fold'], k, f[k], mj[k])  # full precision: equal, not close
        assert f['survival_prediction'] and len(f['brier']) == len(f['brier_times']), f['survival_prediction']
        if f['c_index'] is not None and f['c_index_boot_ci95'][0] is not None:
            lo, hi = f['c_index_boot_ci95']
            assert 0 <= lo <= hi <= 1 and f['bootstrap'] > 0, (lo, hi)
        for k in cols: cols[k].append(mj[k])
        aucs.append(mj['auc'])
        kmr = list(csv.DictReader(open(os.path.join(d, 'km.csv'))))
        for g in ('high', 'low'):
            rows = [x for x in kmr if x['group'] == g]
            for k in ('time', 'n_risk', 'n_event', 'surv', 'lower', 'upper'):
                assert f['km'][g][k] == [num(x[k]) for x in rows], (f['fold'], g, k)
        mo = json.load(open(os.path.join(d, 'model.json')))
        if deep:  # no coefficients: the training instead
            assert f['coefficients'] == [] and 'coefficients' not in mo and f['fit_warning'] is None, f['coefficients']
            assert f['training'] == {k: mo[k] for k in ('arch', 'inputs', 'loss', 'weights', 'epochs_run', 'best_epoch', 'best_val_loss')}, (f['training'], mo)
            cv = list(csv.DictReader(open(os.path.join(d, 'curve.csv'))))
            want = {'epoch': [int(x['epoch']) for x in cv], 'train_loss': [num(x['train_loss']) for x in cv], 'val_loss': [num(x['val_loss']) for x in cv],
                    'val_c_index': [num(x['val_c_index']) for x in cv], 'best': [x['best'] == '1' for x in cv]}
            assert f['curve'] == want and len(cv) == mo['epochs_run'] and want['best'][mo['best_epoch'] - 1], (f['curve'], want)
            hm = list(csv.DictReader(open(os.path.join(d, 'heatmaps.csv'))))
            assert len(hm) >= 2 and {x['group'] for x in hm} == {'high', 'low'}, hm
            want = [{'patient_id': x['patient_id'], 'group': x['group'], 'risk': float(x['risk']), 'slide_id': x['slide_id'],
                     'heatmap': 'survival/%s/fold%d/heatmaps/%s.png' % (m['model'], f['fold'], x['slide_id']),
                     'top_tiles': 'survival/%s/fold%d/heatmaps/%s.top.png' % (m['model'], f['fold'], x['slide_id'])} for x in hm]
            assert f['heatmaps'] == want, (f['heatmaps'], want)
            for x in want: assert os.path.isfile(os.path.join(run, x['heatmap'])) and os.path.isfile(os.path.join(run, x['top_tiles'])), x
        else:
            assert f['coefficients'] == mo['coefficients'], (f['coefficients'], mo['coefficients'])
            assert f['fit_warning'] == (mo['warning'] or None)
            assert f['training'] is None and f['curve'] is None and f['heatmaps'] is None
            for c in mo['coefficients']: coefs.setdefault(c['name'], []).append(c['coef'])
        # --- recomputed from risks.csv's test rows ---
        te = [x for x in csv.DictReader(open(os.path.join(d, 'risks.csv'))) if x['set'] == 'test']
        pooled += te
        if deep:  # the highest- and lowest-risk test patients are the ones heatmaps.csv names
            order = sorted(te, key=lambda y: (-float(y['risk']), y['patient_id']))
            k = len({x['patient_id'] for x in hm if x['group'] == 'high'})
            assert {x['patient_id'] for x in hm if x['group'] == 'high'} == {y['patient_id'] for y in order[:k]}, (hm, order[:k])
            assert {x['patient_id'] for x in hm if x['group'] == 'low'} == {y['patient_id'] for y in order[-k:]}, (hm, order[-k:])
        t = np.array([float(x['time']) for x in te]); e = np.array([int(x['event']) for x in te]); x = np.array([float(x['risk']) for x in te])
        hi = x > mj['risk_cut']
        assert [('high' if h else 'low') for h in hi] == [y['group'] for y in te] and f['n_high'] == hi.sum() and f['n_low'] == (~hi).sum()
        for g, sel in (('high', hi), ('low', ~hi)):
            k = f['km'][g]
            want = km(t[sel], e[sel]) if e.sum() else []
            assert k['time'] == [w[0] for w in want], (g, k['time'], want)
            for i, (tt, n, dd, S, lo, up) in enumerate(want):
                assert k['n_risk'][i] == n and k['n_event'][i] == dd and abs(k['surv'][i] - S) < 1e-12, (g, i)
                assert close(k['lower'][i], lo) and close(k['upper'][i], up), (g, i, k['lower'][i], lo)
        if e.sum():
            assert abs(f['c_index'] - harrell(t, e, x)) < 1e-9, f['c_index']
        if f['logrank_p'] is not None:
            O = E = V = 0.0  # log-rank, high vs low
            for tt in np.unique(t[e == 1]):
                at = t >= tt; n = at.sum(); n1 = (at & hi).sum(); dd = ((t == tt) & (e == 1)).sum()
                O += ((t == tt) & (e == 1) & hi).sum(); E += dd * n1 / n
                if n > 1: V += n1 * (n - n1) * dd * (n - dd) / (n * n * (n - 1))
            assert abs(f['logrank_p'] - math.erfc(math.sqrt((O - E) ** 2 / V / 2))) < 1e-9, f['logrank_p']
    for k, v in cols.items():
        fin = [y for y in v if y is not None]
        assert abs(m[k + '_mean'] - np.mean(fin)) < 1e-12 and m[k + '_folds'] == len(fin), (k, m[k + '_mean'], fin)
        assert (len(fin) < 2 and m[k + '_sd'] is None) or abs(m[k + '_sd'] - np.std(fin, ddof=1)) < 1e-12, (k, m[k + '_sd'], fin)
    a = np.array(aucs, dtype=float)
    assert np.allclose(m['auc_mean'], a.mean(0), atol=1e-12, rtol=0) and np.allclose(m['auc_sd'], a.std(0, ddof=1), atol=1e-12, rtol=0), (m['auc_mean'], a)
    sm = summary[m['model']]
    for k in ('c_index', 'uno_c', 'ibs'):
        assert abs(m[k + '_mean'] - sm[k + '_mean']) < 1e-12 and abs(m[k + '_sd'] - sm[k + '_sd']) < 1e-12 and m[k + '_folds'] == sm[k + '_folds'], k
    assert m['pooled_test'] == sm['pooled_test'], (m['pooled_test'], sm['pooled_test'])
    assert [c['name'] for c in m['coefficients_mean']] == list(coefs), m['coefficients_mean']
    for c in m['coefficients_mean']:
        v = coefs[c['name']]
        assert abs(c['coef_mean'] - np.mean(v)) < 1e-12 and abs(c['coef_sd'] - np.std(v, ddof=1)) < 1e-12 and abs(c['hr_of_mean'] - math.exp(np.mean(v))) < 1e-12, c
    # --- pooled: every fold's test patients, each once ---
    p = m['pooled_test']
    assert p['n'] == len(pooled) == sum(f['n_test'] for f in m['per_fold']), (p['n'], len(pooled))
    t = np.array([float(y['time']) for y in pooled]); e = np.array([int(y['event']) for y in pooled]); x = np.array([float(y['risk']) for y in pooled])
    assert abs(p['c_index'] - harrell(t, e, x)) < 1e-9, (p['c_index'], harrell(t, e, x))
    assert p['bootstrap'] == 1000 and p['c_index_boot_ci95'][0] <= p['c_index'] <= p['c_index_boot_ci95'][1], p
    tcal = float(np.median([float(y['time']) for y in sp if y['event'] == '1']))  # R's quantile type 7
    assert abs(p['calibration_time'] - tcal) < 1e-12 and all(f['calibration_time'] == p['calibration_time'] for f in m['per_fold']), (p['calibration_time'], tcal)
    pred = {i: float(y['surv_at_tcal']) for i, y in enumerate(pooled) if y['surv_at_tcal'] != ''}
    assert len(pred) == len(pooled), 'a test patient without surv_at_tcal'
    order = sorted(pred, key=lambda i: (pred[i], i))  # by prediction, ties in file order
    G = 5 if len(order) >= 25 else 3 if len(order) >= 10 else 0
    assert len(p['calibration']) == G, (len(p['calibration']), G)
    for g, c in enumerate(p['calibration']):
        idx = order[len(order) * g // G: len(order) * (g + 1) // G]
        assert c['group'] == g + 1 and c['n'] == len(idx), (c, len(idx))
        assert abs(c['predicted'] - np.mean([pred[i] for i in idx])) < 1e-12, c
        curve = km(t[idx], e[idx])
        obs = [1.0, 1.0, 1.0]
        for tt, n, dd, S, lo, up in curve:
            if tt <= tcal: obs = [S, lo, up]
        if curve[-1][0] < tcal: obs = [None, None, None]  # follow-up ends before t_cal
        assert close(c['observed'], obs[0]) and close(c['observed_ci95'][0], obs[1]) and close(c['observed_ci95'][1], obs[2]), (m['model'], c, obs)
print('models', len(s['models']), 'folds', len(s['models'][0]['per_fold']), 'patients', s['patients'], 'excluded', len(s['excluded']))
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
def ci(fmt, lo, hi): return '[%s, %s]' % (fmt % lo, fmt % hi) if lo is not None and hi is not None else '[' + U + ']'
def est(fmt, v, lo, hi):
    if v is None: return U
    return f(fmt, v) + ' ' + ci(fmt, lo, hi)
def text(cell): return html.unescape(re.sub(r'<[^>]+>', '', cell)).strip()
def row(row_id):
    m = re.search(r'<tr id="%s"[^>]*>(.*?)</tr>' % re.escape(row_id), sec, re.S)
    assert m, ('no row', row_id)
    return m.group(1)
def cells(row_id):
    return {k: text(c) for k, c in re.findall(r'<td class="n" data-k="([a-z0-9_]+)">(.*?)</td>', row(row_id), re.S)}
def svg(svg_id):
    m = re.search(r'<svg[^>]*id="%s".*?</svg>' % re.escape(svg_id), sec, re.S)
    assert m, ('no SVG', svg_id)
    return ET.fromstring(m.group(0))
def near(p, q): return abs(p[0] - q[0]) <= 0.051 and abs(p[1] - q[1]) <= 0.051
def path_pts(d): return [tuple(map(float, xy)) for xy in re.findall(r'[MLVH]?(-?[0-9.]+) (-?[0-9.]+)', d)]
undefined = int(sys.argv[2]) if len(sys.argv) > 2 else -1
def ms(m, fmt, mean, sd, n):
    if mean is None: return U
    return fmt % mean + (' ± ' + fmt % sd if sd is not None else '') + (' (%d folds)' % n if n < m['folds_done'] else '')
thumbs = 0
for m in s['models']:
    name = m['model']
    # the summary table: the figures a user quotes, with their CIs
    p = m['pooled_test']
    c = cells('survival-summary-%s' % name)
    want = {'c_index': ms(m, '%.3f', m['c_index_mean'], m['c_index_sd'], m['c_index_folds']),
            'pooled_c': (U if p['c_index'] is None else '%.3f %s' % (p['c_index'], ci('%.3f', *p['c_index_boot_ci95']))) + ' (%d)' % p['n'],
            'uno_c': ms(m, '%.3f', m['uno_c_mean'], m['uno_c_sd'], m['uno_c_folds']), 'ibs': ms(m, '%.3f', m['ibs_mean'], m['ibs_sd'], m['ibs_folds']),
            'folds': '%d of 3' % m['folds_done']}
    assert c == want, (name, c, want)
    for x in m['per_fold']:
        c = cells('survival-%s-fold%d' % (name, x['fold']))
        want = {'sizes': '%d / %d / %d (%d)' % (x['n_train'], x['n_val'], x['n_test'], x['test_events']),
                'c_index': f('%.3f', x['c_index']) + (' (%s) %s' % (f('%.3f', x['c_index_se']), ci('%.3f', *x['c_index_boot_ci95'])) if x['c_index'] is not None else ''),
                'uno_c': '%s (τ %s)' % (f('%.3f', x['uno_c']), f('%.4g', x['uno_tau'])), 'ibs': f('%.3f', x['ibs']),
                'logrank_p': f('%.3g', x['logrank_p']), 'hr_high_vs_low': est('%.2f', x['hr_high_vs_low'], *x['hr_ci95']),
                'groups': '%d / %d' % (x['n_high'], x['n_low'])}
        for q in range(3): want['auc%d' % q] = '%s (t %s)' % (f('%.3f', x['auc'][q]), f('%.4g', x['auc_times'][q]))
        assert c == want, (name, x['fold'], c, want)
        if x['fold'] == undefined and name == 'cox_clinical':
            assert c['c_index'] == U and c['hr_high_vs_low'] == U and c['ibs'] == U, c
            continue
        # the fold's KM plot: both step curves through every km.csv step
        root = svg('survival-km-%s-fold%d' % (name, x['fold']))
        xmax = float(root.get('data-xmax'))
        fr = [e for e in root.iter() if e.get('class') == 'km-frame'][0]
        x0, y0, W, H = (float(fr.get(k)) for k in ('x', 'y', 'width', 'height'))
        X = lambda t: x0 + W * t / xmax
        Y = lambda v: y0 + H - H * v
        bands = 0
        risks = [y for y in csv.DictReader(open(os.path.join(run, 'survival', name, 'fold%d' % x['fold'], 'risks.csv'))) if y['set'] == 'test']
        for g in ('high', 'low'):
            k = x['km'][g]
            pc = [e for e in root.iter() if e.get('class') == 'km-curve' and e.get('data-group') == g]
            if not k['time']:
                assert not pc, (g, 'a curve without rows')
                continue
            pc = pc[0]
            assert int(pc.get('data-points')) == len(k['time']), (g, pc.get('data-points'))
            pts = path_pts(pc.get('d'))
            want = [(X(0), Y(1))]
            prev = 1.0
            for t, v in zip(k['time'], k['surv']):
                want += [(X(t), Y(prev)), (X(t), Y(v))]
                prev = v
            assert len(pts) == len(want) and all(near(a, b) for a, b in zip(pts, want)), (g, pts, want)
            band = [e for e in root.iter() if e.get('class') == 'km-band' and e.get('data-group') == g][0]
            nb = sum(1 for i in range(len(k['time']) - 1) if k['lower'][i] is not None and k['upper'][i] is not None and k['time'][i + 1] > k['time'][i])
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
    want = {'sizes': '%d of 3 folds done' % m['folds_done'], 'c_index': ms(m, '%.3f', m['c_index_mean'], m['c_index_sd'], m['c_index_folds']),
            'uno_c': ms(m, '%.3f', m['uno_c_mean'], m['uno_c_sd'], m['uno_c_folds']), 'ibs': ms(m, '%.3f', m['ibs_mean'], m['ibs_sd'], m['ibs_folds']),
            'logrank_p': ms(m, '%.3g', m['logrank_p_mean'], m['logrank_p_sd'], m['logrank_p_folds']),
            'hr_high_vs_low': ms(m, '%.2f', m['hr_high_vs_low_mean'], m['hr_high_vs_low_sd'], m['hr_high_vs_low_folds'])}
    for q in range(3): want['auc%d' % q] = ms(m, '%.3f', m['auc_mean'][q], m['auc_sd'][q], m['auc_folds'][q])
    assert c == want, (c, want)
    # calibration at t_cal: a point per estimable group, CI bars, the table
    assert ('Calibration at t = %.4g' % p['calibration_time']) in sec, p['calibration_time']
    root = svg('survival-cal-%s' % name)
    fr = [e for e in root.iter() if e.get('class') == 'cal-frame'][0]
    x0, y0, S = (float(fr.get(k)) for k in ('x', 'y', 'width'))
    X = lambda v: x0 + S * v
    Y = lambda v: y0 + S - S * v
    dots = {e.get('data-group'): (float(e.get('cx')), float(e.get('cy'))) for e in root.iter() if e.get('class') == 'cal-point'}
    bars = {e.get('data-group'): [(float(e.get('x1')), float(e.get('y1'))), (float(e.get('x2')), float(e.get('y2')))] for e in root.iter() if e.get('class') == 'cal-bar'}
    est_groups = [g for g in p['calibration'] if g['observed'] is not None]
    assert set(dots) == {str(g['group']) for g in est_groups}, (dots, p['calibration'])
    for g in p['calibration']:
        c = cells('survival-cal-%s-%d' % (name, g['group'] - 1))
        want = {'n': '%d' % g['n'], 'predicted': '%.3f' % g['predicted'],
                'observed': est('%.3f', g['observed'], *g['observed_ci95']) if g['observed'] is not None else U + ' (follow-up ends before t)'}
        assert c == want, (c, want)
        if g['observed'] is None: continue
        assert near(dots[str(g['group'])], (X(g['predicted']), Y(g['observed']))), (g, dots[str(g['group'])])
        lo, hi = g['observed_ci95']
        if lo is not None:
            b = bars[str(g['group'])]
            assert near(b[0], (X(g['predicted']), Y(lo))) and near(b[1], (X(g['predicted']), Y(hi))), (b, g)
        else:
            assert str(g['group']) not in bars, g
    diag = [e for e in root.iter() if e.get('class') == 'cal-diagonal'][0]
    assert near((float(diag.get('x1')), float(diag.get('y1'))), (X(0), Y(0))) and near((float(diag.get('x2')), float(diag.get('y2'))), (X(1), Y(1)))
    if not m['deep']:
        assert 'id="survival-curve-%s"' % name not in sec and 'id="survival-heat-%s"' % name not in sec
        for i, cm in enumerate(m['coefficients_mean']):
            c = cells('survival-coef-%s-%d' % (name, i))
            want = {'coef_mean': '%.4g ± %.4g' % (cm['coef_mean'], cm['coef_sd']), 'hr_of_mean': '%.3f' % cm['hr_of_mean']}
            for x in m['per_fold']:
                q = [y for y in x['coefficients'] if y['name'] == cm['name']][0]
                want['fold%d' % x['fold']] = est('%.3f', q['hr'], *q['hr_ci95']) + ', p ' + f('%.3g', q['p'])
            assert c == want, (c, want)
        assert m['coefficients_mean'] and 'id="survival-coef-%s"' % name in sec
        continue
    assert 'id="survival-coef-%s"' % name not in sec, 'a coefficient table for a deep model'
    # training curves: every fold's losses per epoch, the best epoch marked
    root = svg('survival-curve-%s' % name)
    lo, hi, emax = float(root.get('data-lo')), float(root.get('data-hi')), int(root.get('data-emax'))
    fr = [e for e in root.iter() if e.get('class') == 'curve-frame'][0]
    x0, y0, W, H = (float(fr.get(k)) for k in ('x', 'y', 'width', 'height'))
    X = lambda ep: x0 + W * (ep - 1) / max(emax - 1, 1)
    Y = lambda v: y0 + H - H * (v - lo) / (hi - lo)
    allv = [v for x in m['per_fold'] for k in ('train_loss', 'val_loss') for v in x['curve'][k] if v is not None]
    assert abs(lo - min(allv)) < 1e-12 and abs(hi - max(allv)) < 1e-12 and emax == max(e for x in m['per_fold'] for e in x['curve']['epoch']), (lo, hi, emax)
    for x in m['per_fold']:
        cv, tr = x['curve'], x['training']
        for k, cls in (('train_loss', 'train-loss'), ('val_loss', 'val-loss')):
            pe = [e for e in root.iter() if e.get('class') == cls and e.get('data-fold') == str(x['fold'])][0]
            want = [(X(ep), Y(v)) for ep, v in zip(cv['epoch'], cv[k]) if v is not None]
            pts = path_pts(pe.get('d'))
            assert len(pts) == len(want) and all(near(a, b) for a, b in zip(pts, want)), (name, x['fold'], k, pts, want)
        b = [e for e in root.iter() if e.get('class') == 'best-epoch' and e.get('data-fold') == str(x['fold'])][0]
        vl = cv['val_loss'][cv['epoch'].index(tr['best_epoch'])]
        assert int(b.get('data-epoch')) == tr['best_epoch'] and near((float(b.get('cx')), float(b.get('cy'))), (X(tr['best_epoch']), Y(vl))), (b.attrib, tr)
        leg = [e for e in root.iter() if 'curve-legend' in (e.get('class') or '') and e.get('data-fold') == str(x['fold'])][0]
        assert leg.text == 'fold %d: best epoch %d of %d, val loss %.4g' % (x['fold'], tr['best_epoch'], len(cv['epoch']), tr['best_val_loss']), leg.text
    # heatmaps of the highest- and lowest-risk test patients: a row per heatmaps.csv row, thumbnails of the stage's PNGs
    for x in m['per_fold']:
        for i, h in enumerate(x['heatmaps']):
            rw = row('survival-heat-%s-fold%d-%d' % (name, x['fold'], i))
            td = [text(c) for c in re.findall(r'<td[^>]*>(.*?)</td>', rw, re.S)]
            assert td[:5] == [str(x['fold']), h['group'], h['patient_id'], '%.4g' % h['risk'], h['slide_id']], (td, h)
            links = re.findall(r'<a href="\.\./([^"]+)"><img[^>]*src="([^"]+)"', rw)
            want = [v for v in (h['heatmap'], h['top_tiles']) if v is not None]
            assert [a for a, _ in links] == want, (links, want)
            assert td[5:] == ['' if h['heatmap'] else U, '' if h['top_tiles'] else U], td
            thumbs += len(links)
# every image the section references is there: thumbnails under report/, full-size images in the run
for src in re.findall(r'<img[^>]*src="([^"]+)"', sec):
    assert os.path.isfile(os.path.join(run, 'report', html.unescape(src))), src
for href in re.findall(r'<a href="\.\./([^"]+)"', sec):
    assert os.path.isfile(os.path.join(run, html.unescape(href))), href
assert 'class="missing"' not in sec, 'a thumbnail that could not be made'
assert thumbs >= 8, thumbs
# the excluded patients with their tokens
ids = re.search(r'<b id="survival-n-excluded">(\d+)</b>', sec)
assert ids and int(ids.group(1)) == len(s['excluded']), ids
tab = re.search(r'<table class="survtab" id="survival-excluded">.*?</table>', sec, re.S).group(0)
rows = re.findall(r'<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>', tab, re.S)
assert [tuple(text(c) for c in x) for x in rows] == [(e['patient_id'], e['token'], e['detail']) for e in s['excluded'][:100]], rows[:3]
print('page ok, %d heatmap thumbnails' % thumbs)
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
for k in ('c_index', 'c_index_se', 'uno_c', 'logrank_p', 'hr_high_vs_low', 'c_index_boot_sd', 'ibs'): m[k] = None
m['auc'] = [None] * 3; m['hr_ci95'] = [None, None]; m['c_index_boot_ci95'] = [None, None]; m['brier'] = [None] * len(m['brier'])
json.dump(m, open(p, 'w'))
open(sys.argv[1] + '/km.csv', 'w').write('group,time,n_risk,n_event,surv,lower,upper\n')
p = sys.argv[1] + '/../../summary.json'  # no pooled C; the first calibration group not estimable
s = json.load(open(p))
pt = s['models'][0]['pooled_test']
pt['c_index'] = None; pt['c_index_boot_ci95'] = [None, None]
pt['calibration'][0]['observed'] = None; pt['calibration'][0]['observed_ci95'] = [None, None]
json.dump(s, open(p, 'w'))
PY
hm=$(sed -n 2p u/survival/amil/fold0/heatmaps.csv | cut -d, -f4)
rm "u/survival/amil/fold0/heatmaps/$hm.png"   # a heatmap the stage did not draw
expect_rc 0 "$TESSERA" report u --quiet
expect_rc 0 "$PY" validate.py "$SCHEMA" u/report/report.json
expect_rc 0 "$PY" - u <<'PY'
import json, sys
import numpy as np
m = json.load(open(sys.argv[1] + '/report/report.json'))['survival']['models'][0]
f1 = m['per_fold'][1]
assert f1['c_index'] is None and f1['hr_ci95'] == [None, None] and f1['km'] == {g: {k: [] for k in ('time', 'n_risk', 'n_event', 'surv', 'lower', 'upper')} for g in ('high', 'low')}, f1
assert f1['ibs'] is None and f1['c_index_boot_ci95'] == [None, None] and f1['brier'] == [None] * len(f1['brier_times']), f1
for k in ('c_index', 'ibs'):
    cs = [m['per_fold'][f][k] for f in (0, 2)]
    assert m[k + '_folds'] == 2 and abs(m[k + '_mean'] - np.mean(cs)) < 1e-12 and abs(m[k + '_sd'] - np.std(cs, ddof=1)) < 1e-12, k
pt = m['pooled_test']
assert pt['c_index'] is None and pt['calibration'][0]['observed'] is None and pt['calibration'][0]['observed_ci95'] == [None, None], pt
h = json.load(open(sys.argv[1] + '/report/report.json'))['survival']['models'][1]['per_fold'][0]['heatmaps'][0]
assert h['heatmap'] is None and h['top_tiles'] is not None, h
PY
expect_rc 0 "$PY" page.py u 1
check "undefined: no KM plot of fold 1, a note instead" grep -q 'id="survival-km-cox_clinical-fold1-none"' u/report/index.html
check "undefined: the mean row says over how many folds" grep -q '<small>(2 folds)</small>' u/report/index.html
check "undefined: no pooled C, a dash in the summary table" grep -q '<td class="n" data-k="pooled_c">— (' u/report/index.html
check "undefined: a calibration group not estimable" grep -q '— <small>(follow-up ends before t)</small>' u/report/index.html

# ---- (e) 130 more excluded patients: collapsed, on pages ----
cp -r a p
$PY - p/survival/excluded.csv <<'PY'
import sys
with open(sys.argv[1], 'a') as f:
    for i in range(130): f.write('Q%04d,SURV_NO_SLIDE,"clinical.csv:%d: no slide of this patient in the cohort"\n' % (i, 100 + i))
PY
NEX=$(( $(wc -l < p/survival/excluded.csv) - 1 ))   # the run's own (23) and 130 more: 2 pages
expect_rc 0 "$TESSERA" report p --quiet
check "$NEX excluded: 2 pages" test -s p/report/survival-excluded-1.html -a -s p/report/survival-excluded-2.html -a ! -e p/report/survival-excluded-3.html
check "$NEX excluded: collapsed in the index, which links the pages" grep -qz '<details id="survival-excluded-list">.*href="survival-excluded-2.html"' p/report/index.html
check "page 2 shows rows 101-$NEX" grep -q "patients left out, 101–$NEX of $NEX" p/report/survival-excluded-2.html
expect_rc 0 "$PY" - p "$NEX" <<'PY'
import json, sys
s = json.load(open(sys.argv[1] + '/report/report.json'))['survival']
assert 100 < len(s['excluded']) == int(sys.argv[2]) <= 200 and s['excluded'][-1] == {'patient_id': 'Q0129', 'token': 'SURV_NO_SLIDE', 'detail': 'clinical.csv:229: no slide of this patient in the cohort'}, s['excluded'][-1]
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
