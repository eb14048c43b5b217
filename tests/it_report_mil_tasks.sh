#!/usr/bin/env bash
# labels: mil mpi report
# The report's "mil" section (stages/report_mil.c) for a regression and a three-class run,
# checked against the stage's own files and against independent oracles (numpy, scipy,
# scikit-learn and a DeLong written here), not against itself. One 24-slide cohort is tiled and
# embedded once (--until records, 2 ranks); two copies of that run train ABMIL (3 folds, 4
# epochs) with `--stages mil --reconfigure` on relabelled cohorts: the label := 100 x tumour
# burden (the generator's truth/slides.csv; one slide per patient, so one score per patient) with
# mil.task=regression; and 0 = no tumour, 1 = burden below the median of the tumorous slides,
# 2 = above. Each run's report.json validates against schemas/report.schema.json (and a per-fold
# r that is a string does not). Then a second model, "abmil_b", is added to each run by copying
# abmil's folds with other predictions (mil/summary.json lists it), so that the charts hold two
# models, and `tessera report` rewrites the report.
#  regression: per fold, MSE, Pearson and Spearman r with CIs and p-values, set sizes, epochs,
#    the training targets' mean and sd equal metrics.json, the curve (val_pearson included)
#    curve.csv, the MSE numpy's on predictions.csv; mean and sample sd over folds; the pooled
#    Pearson and Spearman r and p-values equal scipy's pearsonr / spearmanr of all folds'
#    predictions.csv together (1e-9), their CIs the Fisher-z interval computed here, and
#    mil/summary.json's; every test slide is listed with its label and prediction. The page:
#    an SVG scatter plot (id mil-scatter) that parses as XML, one group of points per model in
#    its own colour, a point per prediction whose position orders as label and prediction do,
#    the identity line; the pooled r with its CI in the summary table; label and prediction
#    columns (no probabilities) in the slide table; no ROC chart.
#  three classes: per class, the pooled one-vs-rest AUC equals sklearn's roc_auc_score of
#    (label == c, prob_c), its CI the DeLong interval computed here, its ROC points sklearn's
#    roc_curve, its counts the CSV's; the macro AUC their mean and sklearn's
#    roc_auc_score(multi_class="ovr"); mil/summary.json's pooled_per_class agrees. The page: one
#    SVG per model (id mil-roc-ovr-<model>) with a curve per class, its AUC and CI in the legend,
#    the macro AUC and the chance diagonal, and a per-class table.
#  compare: a pooled r or a per-class AUC is a result.
. "$(dirname "$0")/lib.sh"
cd "$WORK"
$PY -c 'import jsonschema, sklearn, scipy, numpy' 2>/dev/null || { echo "FAIL - python3-jsonschema, python3-sklearn or python3-scipy is not installed"; exit 1; }
SCHEMA="$TS_SOURCE_DIR/schemas/report.schema.json"

expect_rc 0 "$TESSERA" synth cohort --slides 24 --size 3000 --seed 5 --quiet
expect_rc 0 "$PY" - cohort/cohort.csv cohort/truth/slides.csv <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
burden = {r["slide_id"]: float(r["tumour_burden"]) for r in csv.DictReader(open(sys.argv[2]))}
assert len({r["patient_id"] for r in rows}) == len(rows), "one slide per patient expected"
pos = sorted(v for v in burden.values() if v > 0)
med = (pos[(len(pos) - 1) // 2] + pos[len(pos) // 2]) / 2
relabel = {"reg.csv": lambda v: "%.4f" % (100 * v), "c3.csv": lambda v: "0" if v == 0 else "1" if v < med else "2"}
for name, f in relabel.items():
    with open("cohort/" + name, "w", newline="") as out:
        w = csv.DictWriter(out, fieldnames=list(rows[0].keys()), lineterminator="\n")
        w.writeheader()
        w.writerows(dict(r, label=f(burden[r["slide_id"]])) for r in rows)
PY
common=(--set extract.encoder=resnet_tiny --set tile.size=128 --quiet)
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml --set run.dir="$WORK/base" "${common[@]}" --until records
expect_rc 0 "$PY" -c "import json; r = json.load(open('base/report/report.json')); assert 'mil' not in r and 'mil' not in r['sections']"
mil=(--set mil.models=abmil --set mil.folds=3 --set mil.epochs=4 --set mil.min_epochs=2 --set mil.test_frac=0.25
     --set mil.val_frac=0.2 --stages mil --reconfigure)
cp -r base reg
cp -r base c3
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml --set run.dir="$WORK/reg" "${common[@]}" "${mil[@]}" \
  --set cohort.csv=reg.csv --set mil.task=regression
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml --set run.dir="$WORK/c3" "${common[@]}" "${mil[@]}" \
  --set cohort.csv=c3.csv
check "regression: mil/summary.json" test -s reg/mil/summary.json
check "three classes: mil/summary.json" test -s c3/mil/summary.json

cat > validate.py <<'PY'
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
errs = list(jsonschema.Draft202012Validator(schema).iter_errors(json.load(open(sys.argv[2]))))
for e in errs: print(list(e.absolute_path), e.message[:300])
sys.exit(1 if errs else 0)
PY
expect_rc 0 "$PY" validate.py "$SCHEMA" reg/report/report.json
expect_rc 0 "$PY" validate.py "$SCHEMA" c3/report/report.json
$PY -c "import json; r=json.load(open('reg/report/report.json')); r['mil']['models'][0]['per_fold'][0]['pearson']='high'; json.dump(r, open('broken.json','w'))"
expect_rc 1 "$PY" validate.py "$SCHEMA" broken.json

# --- a second model: abmil's folds with other predictions, listed in mil/summary.json ---
cat > clone.py <<'PY'
import csv, json, os, shutil, sys
run, task = sys.argv[1], sys.argv[2]
src, dst = os.path.join(run, 'mil/abmil'), os.path.join(run, 'mil/abmil_b')
shutil.copytree(src, dst)
for d in sorted(os.listdir(dst)):
    f = os.path.join(dst, d, 'predictions.csv')
    rows = list(csv.DictReader(open(f)))
    with open(f, 'w') as out:
        w = csv.DictWriter(out, fieldnames=list(rows[0].keys()), lineterminator='\n')
        w.writeheader()
        for i, r in enumerate(rows):
            if task == 'regression':  # towards the label, not all the way: a positive r
                r['pred'] = '%.9g' % (0.6 * float(r['label']) + 3 + (i % 3))
            else:  # half-way towards the true class
                C = sum(k.startswith('prob_') for k in r)
                p = [0.5 * float(r['prob_%d' % k]) + 0.5 * (k == int(r['label'])) * (i % 2) for k in range(C)]
                s = sum(p)
                p = [x / s for x in p]
                for k in range(C):
                    r['prob_%d' % k] = '%.9g' % p[k]
                r['pred'] = str(max(range(C), key=p.__getitem__))
            w.writerow(r)
s = json.load(open(os.path.join(run, 'mil/summary.json')))
s['models'].append(dict(s['models'][0], model='abmil_b'))
json.dump(s, open(os.path.join(run, 'mil/summary.json'), 'w'))
PY
expect_rc 0 "$PY" clone.py reg regression
expect_rc 0 "$PY" clone.py c3 classification
expect_rc 0 "$TESSERA" report reg --quiet
expect_rc 0 "$TESSERA" report c3 --quiet
expect_rc 0 "$PY" validate.py "$SCHEMA" reg/report/report.json
expect_rc 0 "$PY" validate.py "$SCHEMA" c3/report/report.json

# --- regression: the facts, from the stage's files, numpy and scipy ---
cat > facts_reg.py <<'PY'
import csv, json, math, os, re, sys
import xml.etree.ElementTree as ET
import numpy as np
from scipy import stats
run = sys.argv[1]
r = json.load(open(os.path.join(run, 'report/report.json')))
m = r['mil']
assert m['task'] == 'regression' and m['classes'] is None and m['folds'] == 3, (m['task'], m['classes'], m['folds'])
assert [x['model'] for x in m['models']] == ['abmil', 'abmil_b']
summary = {y['model']: y for y in json.load(open(os.path.join(run, 'mil/summary.json')))['models']}
close = lambda a, b, tol=1e-12: (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= tol * max(1, abs(b)))
z975 = stats.norm.ppf(0.975)
def fisher(rv, n):
    se = 1 / math.sqrt(n - 3)
    return math.tanh(math.atanh(rv) - z975 * se), math.tanh(math.atanh(rv) + z975 * se)
rows_all = []
for x in m['models']:
    name = x['model']
    assert x['folds_done'] == 3 and x['folds_failed'] == 0 and x['ci_method'] == 'Fisher z', x
    labels, preds, per = [], [], {'mse': [], 'pearson': [], 'spearman': []}
    for f in x['per_fold']:
        d = os.path.join(run, 'mil', name, 'fold%d' % f['fold'])
        mj = json.load(open(os.path.join(d, 'metrics.json')))
        assert f['status'] == 'done' and mj['task'] == 'regression'
        for k in ('mse', 'pearson', 'spearman'):
            assert close(f[k], mj['test_' + k]), (name, f['fold'], k, f[k], mj['test_' + k])
            per[k].append(mj['test_' + k])
        for k in ('pearson', 'spearman'):
            assert all(close(a, b) for a, b in zip(f[k + '_ci95'], mj['test_%s_ci95' % k])), (f[k + '_ci95'], mj['test_%s_ci95' % k])
            assert close(f[k + '_p'], mj['test_%s_p' % k])
        for k in ('n_train', 'n_val', 'n_test', 'epochs_run', 'best_epoch'):
            assert f[k] == mj[k], (name, k, f[k], mj[k])
        assert close(f['target_mean'], mj['target_mean']) and close(f['target_sd'], mj['target_sd'])
        assert close(f['best_val_loss'], mj['best_val_loss'])
        cr = list(csv.DictReader(open(os.path.join(d, 'curve.csv'))))
        assert f['curve']['epoch'] == [int(c['epoch']) for c in cr]
        for k in ('train_loss', 'val_loss', 'val_pearson'):
            assert all(close(a, float(c[k])) for a, c in zip(f['curve'][k], cr)), (k, f['curve'][k])
        assert 'val_auc' not in f['curve'] and 'auc' not in f
        pr = list(csv.DictReader(open(os.path.join(d, 'predictions.csv'))))
        assert list(pr[0].keys()) == ['slide_id', 'patient_id', 'label', 'pred'], list(pr[0].keys())
        y, p = np.array([float(q['label']) for q in pr]), np.array([float(q['pred']) for q in pr])
        if name == 'abmil':  # the stage's own numbers: MSE and r of its predictions.csv
            assert abs(mj['test_mse'] - float(np.mean((p - y) ** 2))) <= 1e-6 * max(1, mj['test_mse']), (mj['test_mse'], np.mean((p - y) ** 2))
            assert abs(mj['test_pearson'] - stats.pearsonr(p, y)[0]) < 1e-6
        labels += list(y); preds += list(p)
        rows_all += [(name, f['fold'], q['slide_id'], float(q['label']), float(q['pred'])) for q in pr]
    for k in ('mse', 'pearson', 'spearman'):
        assert close(x[k + '_mean'], float(np.mean(per[k]))) and close(x[k + '_sd'], float(np.std(per[k], ddof=1))), (k, x[k + '_mean'], per[k])
    n = len(labels)
    assert x['pooled_n'] == n, (x['pooled_n'], n)
    for k, fn in (('pearson', stats.pearsonr), ('spearman', stats.spearmanr)):
        ref, pv = fn(preds, labels)
        got = x['pooled_' + k]
        assert abs(got - ref) < 1e-9, (name, k, got, ref)
        assert abs(x['pooled_%s_p' % k] - pv) < 1e-6, (name, k, x['pooled_%s_p' % k], pv)
        lo, hi = fisher(ref, n)
        assert abs(x['pooled_%s_ci95' % k][0] - lo) < 1e-9 and abs(x['pooled_%s_ci95' % k][1] - hi) < 1e-9, (x['pooled_%s_ci95' % k], lo, hi)
        if name == 'abmil':  # the stage's summary, same files: the same numbers
            assert abs(summary[name]['pooled_' + k] - got) < 1e-12, (summary[name]['pooled_' + k], got)
    if name == 'abmil_b':
        assert x['pooled_pearson'] > 0.9, x['pooled_pearson']
preds_r = m['predictions']
assert len(preds_r) == len(rows_all), (len(preds_r), len(rows_all))
for p, (name, fold, slide, y, yhat) in zip(preds_r, rows_all):
    assert (p['model'], p['fold'], p['slide_id']) == (name, fold, slide) and p['label'] == y and p['pred'] == yhat, (p, y, yhat)
    assert 'prob' not in p
    png = os.path.join(run, 'mil', name, 'fold%d' % fold, 'heatmaps', slide + '.png')
    assert (p['heatmap'] is not None) == os.path.exists(png), (p, png)

# --- the page ---
html = open(os.path.join(run, 'report/index.html')).read()
sec = html[html.index('<section id="mil"'):]
sec = sec[:sec.index('</section>')]
sc = re.search(r'<svg[^>]*id="mil-scatter".*?</svg>', sec, re.S)
assert sc, 'no scatter plot'
svg = ET.fromstring(sc.group(0))
ident = [e for e in svg.iter() if e.tag.endswith('line') and e.get('class') == 'identity']
assert len(ident) == 1 and float(ident[0].get('x2')) > float(ident[0].get('x1')) and float(ident[0].get('y2')) < float(ident[0].get('y1')), 'no identity line'
texts = ' '.join(t.text or '' for t in svg.iter() if t.tag.endswith('text'))
assert 'label' in texts and 'prediction' in texts and 'identity' in texts, texts
colours = set()
for x in m['models']:
    g = [e for e in svg.iter() if e.tag.endswith('g') and e.get('id') == 'mil-scatter-' + x['model']]
    assert len(g) == 1, ('no points of', x['model'])
    g = g[0]
    colours.add(g.get('fill'))
    pts = [c for c in g if c.tag.endswith('circle')]
    mine = [p for p in preds_r if p['model'] == x['model']]
    assert int(g.get('data-points')) == len(pts) == len(mine) == x['pooled_n'], (g.get('data-points'), len(pts), len(mine))
    by_slide = {}
    for c in pts:
        t = c.find('title')
        slide = t.text.split(' ')[0]
        by_slide[(slide, int(re.search(r'fold (\d+)', t.text).group(1)))] = (float(c.get('cx')), float(c.get('cy')), t.text)
    for p in mine:
        cx, cy, t = by_slide[(p['slide_id'], p['fold'])]
        assert ('label %.4g, prediction %.4g' % (p['label'], p['pred'])) in t, t
    # positions order as the values do: x by label, y (downwards) by prediction
    for a in mine:
        for b in mine:
            pa, pb = by_slide[(a['slide_id'], a['fold'])], by_slide[(b['slide_id'], b['fold'])]
            if a['label'] < b['label'] - 1e-9: assert pa[0] <= pb[0] + 0.05, (a, b)
            if a['pred'] < b['pred'] - 1e-9: assert pa[1] >= pb[1] - 0.05, (a, b)
    assert ('Pearson r %.3f' % x['pooled_pearson']) in texts, (x['pooled_pearson'], texts)
    row = re.search(r'<tr id="mil-model-%s">.*?</tr>' % x['model'], sec, re.S).group(0)
    for k in ('pearson', 'spearman'):
        lo, hi = x['pooled_%s_ci95' % k]
        assert ('%.3f [%.3f, %.3f] (n = %d)' % (x['pooled_' + k], lo, hi, x['pooled_n'])) in row, (k, row)
    assert ('%.4g ± %.4g' % (x['mse_mean'], x['mse_sd'])) in row, row
    for f in x['per_fold']:
        c = re.search(r'<svg[^>]*id="mil-curve-%s-fold%d".*?</svg>' % (x['model'], f['fold']), sec, re.S)
        assert c, ('no learning curve', x['model'], f['fold'])
        ET.fromstring(c.group(0))
assert len(colours) == 2, colours
assert 'id="mil-roc' not in sec, 'a ROC chart in a regression'
assert re.search(r'<th>label</th><th>prediction</th><th>heatmap</th>', sec) and 'P(class 1)' not in sec and '<th>probabilities</th>' not in sec
assert 'test MSE' in sec and 'Pearson r' in sec and 'Spearman r' in sec and 'regression task' in sec
assert ('id="mil-n-predictions">%d<' % len(preds_r)) in sec
print('regression: models', len(m['models']), 'predictions', len(preds_r), 'pooled r', [round(x['pooled_pearson'], 3) for x in m['models']])
PY
expect_rc 0 "$PY" facts_reg.py reg
tail -1 "$WORK/out"

# --- three classes: the facts, from the stage's files, sklearn and a DeLong written here ---
cat > facts_c3.py <<'PY'
import csv, json, math, os, re, sys
import xml.etree.ElementTree as ET
import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve
run = sys.argv[1]
r = json.load(open(os.path.join(run, 'report/report.json')))
m = r['mil']
assert m['task'] == 'multiclass' and m['classes'] == 3 and m['folds'] == 3, (m['task'], m['classes'])
assert [x['model'] for x in m['models']] == ['abmil', 'abmil_b']
summary = {y['model']: y for y in json.load(open(os.path.join(run, 'mil/summary.json')))['models']}
close = lambda a, b, tol=1e-12: (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= tol)
z975 = stats.norm.ppf(0.975)
def delong(y, s):  # DeLong (1988) by its structural components, O(n^2)
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    auc = psi.mean()
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    se = math.sqrt(np.var(v10, ddof=1) / len(pos) + np.var(v01, ddof=1) / len(neg))
    return auc, max(0.0, auc - z975 * se), min(1.0, auc + z975 * se)
html = open(os.path.join(run, 'report/index.html')).read()
sec = html[html.index('<section id="mil"'):]
sec = sec[:sec.index('</section>')]
assert 'id="mil-roc-none"' not in sec and 'id="mil-roc"' not in sec, 'a binary ROC chart or none at all'
for x in m['models']:
    name = x['model']
    ys, ps = [], []
    for f in x['per_fold']:
        d = os.path.join(run, 'mil', name, 'fold%d' % f['fold'])
        mj = json.load(open(os.path.join(d, 'metrics.json')))
        assert mj['classes'] == 3 and close(f['auc'], mj['test_auc'])
        cr = list(csv.DictReader(open(os.path.join(d, 'curve.csv'))))
        assert all(close(a, float(c['val_auc'])) for a, c in zip(f['curve']['val_auc'], cr))
        for p in csv.DictReader(open(os.path.join(d, 'predictions.csv'))):
            ys.append(int(p['label'])); ps.append([float(p['prob_%d' % k]) for k in range(3)])
    y, P = np.array(ys), np.array(ps)
    assert x['roc'] is None and x['pooled_auc_method'] == 'one-vs-rest macro' and x['pooled_auc_ci95'] == [None, None]
    assert x['pooled_n'] == len(y) and [c['class'] for c in x['pooled_per_class']] == [0, 1, 2]
    per = [roc_auc_score(y == k, P[:, k]) for k in range(3)]
    assert abs(x['pooled_auc'] - np.mean(per)) < 1e-9, (x['pooled_auc'], per)
    assert abs(x['pooled_auc'] - roc_auc_score(y, P, multi_class='ovr')) < 1e-6
    svg = re.search(r'<svg[^>]*id="mil-roc-ovr-%s".*?</svg>' % name, sec, re.S)
    assert svg, ('no one-vs-rest ROC chart of', name)
    svg = ET.fromstring(svg.group(0))
    paths = {p.get('id'): p for p in svg.iter() if p.tag.endswith('path')}
    texts = ' '.join(t.text or '' for t in svg.iter() if t.tag.endswith('text'))
    assert any(l.get('stroke-dasharray') for l in svg.iter() if l.tag.endswith('line')), 'no chance diagonal'
    assert ('macro AUC %.3f' % x['pooled_auc']) in texts, texts
    for c in x['pooled_per_class']:
        k = c['class']
        yk = (y == k).astype(int)
        assert c['n_pos'] == int(yk.sum()) and c['n_neg'] == len(y) - int(yk.sum()), c
        assert abs(c['auc'] - per[k]) < 1e-12, (name, k, c['auc'], per[k])
        auc, lo, hi = delong(yk, P[:, k])
        assert abs(c['ci95'][0] - lo) < 1e-9 and abs(c['ci95'][1] - hi) < 1e-9, (c['ci95'], lo, hi)
        fpr, tpr, _ = roc_curve(yk, P[:, k], drop_intermediate=False)
        ours = sorted(zip(c['roc']['fpr'], c['roc']['tpr']))
        theirs = sorted(zip(fpr.tolist(), tpr.tolist()))
        assert len(ours) == len(theirs) and all(close(a, e) and close(b, g) for (a, b), (e, g) in zip(ours, theirs)), (ours, theirs)
        if name == 'abmil':  # the stage's summary (same files)
            sc = summary[name]['pooled_per_class'][k]
            assert sc['class'] == k and abs(sc['auc'] - c['auc']) < 1e-12 and sc['n_pos'] == c['n_pos'], (sc, c)
            assert all(abs(a - b) < 1e-12 for a, b in zip(sc['ci95'], c['ci95'])), (sc['ci95'], c['ci95'])
        p = paths.get('mil-roc-%s-class%d' % (name, k))
        assert p is not None, ('no curve of class', k, list(paths))
        assert int(p.get('data-points')) == len(c['roc']['fpr']) == p.get('d').count(' L') + 1
        assert ('class %d AUC %.3f [%.3f, %.3f]' % (k, c['auc'], c['ci95'][0], c['ci95'][1])) in texts, texts
        row = re.search(r'<tr id="mil-%s-class%d">.*?</tr>' % (name, k), sec, re.S)
        assert row and ('%d / %d' % (c['n_pos'], c['n_neg'])) in row.group(0) and ('%.3f [%.3f, %.3f]' % (c['auc'], c['ci95'][0], c['ci95'][1])) in row.group(0)
    assert ('%.3f (one-vs-rest, n = %d)' % (x['pooled_auc'], x['pooled_n'])) in sec
    cols = {p.get('stroke') for p in paths.values()}
    assert len(cols) == 3, cols
assert '<th>probabilities</th>' in sec
print('three classes: per-class AUCs', {x['model']: [round(c['auc'], 3) for c in x['pooled_per_class']] for x in m['models']})
PY
expect_rc 0 "$PY" facts_c3.py c3
tail -1 "$WORK/out"

# --- compare: a pooled r and a per-class AUC are results ---
$PY - <<'PY'
import json
r = json.load(open('reg/report/report.json'))
r['mil']['models'][0]['pooled_spearman'] = 0.5
json.dump(r, open('reg_result.json', 'w'))
r = json.load(open('c3/report/report.json'))
r['mil']['models'][0]['pooled_per_class'][2]['auc'] = 0.5
json.dump(r, open('c3_result.json', 'w'))
PY
expect_rc 1 "$TESSERA" compare reg/report/report.json reg_result.json
check "compare names the differing pooled Spearman r" grep -q "DIFFERS  mil.models" "$WORK/out"
expect_rc 1 "$TESSERA" compare c3/report/report.json c3_result.json
check "compare names the differing per-class AUC" grep -q "DIFFERS  mil.models" "$WORK/out"
finish
