#!/usr/bin/env bash
# labels: report mil mpi
# The report's "mil" section (stages/report_mil.c), checked against the mil stage's own files
# and against scikit-learn, not against itself: a 24-slide cohort trains ABMIL and CLAM-SB over
# 3 folds on 2 ranks; report.json validates against schemas/report.schema.json; mil.models
# holds both models with the per-fold test metrics of mil/<model>/fold<k>/metrics.json, their
# mean and sample sd, and the pooled AUC equal to sklearn's roc_auc_score of the concatenated
# predictions.csv (1e-6) with a DeLong CI around it, its ROC points equal to sklearn's
# roc_curve; learning curves equal curve.csv; every test prediction is listed with its heatmap
# when the PNG exists. The page holds a well-formed ROC SVG with one curve per model, one
# learning-curve SVG per fold, heatmap thumbnails. compare: a fold's "seconds" is performance,
# a pooled AUC a result. Then, on copies of the run: more than 100 predictions go to pages
# (report/mil-<k>.html), three classes give the one-vs-rest macro AUC and a chart of their own
# with one one-vs-rest curve per class; a run without mil.models has no mil section. (Regression
# and a real three-class run: tests/it_report_mil_tasks.sh.)
. "$(dirname "$0")/lib.sh"
cd "$WORK"
$PY -c 'import jsonschema, sklearn' 2>/dev/null || { echo "FAIL - python3-jsonschema or python3-sklearn is not installed"; exit 1; }
SCHEMA="$TS_SOURCE_DIR/schemas/report.schema.json"

expect_rc 0 "$TESSERA" synth cohort --slides 24 --size 3000 --seed 5 --quiet
common=(--set extract.encoder=resnet_tiny --set tile.size=128 --quiet)
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml --set run.dir="$WORK/a" "${common[@]}" \
  --set mil.models=abmil,clam_sb --set mil.folds=3 --set mil.epochs=10
check "the mil stage wrote mil/summary.json" test -s a/mil/summary.json
check "the run wrote report.json" test -s a/report/report.json

cat > validate.py <<'PY'
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
errs = list(jsonschema.Draft202012Validator(schema).iter_errors(json.load(open(sys.argv[2]))))
for e in errs: print(list(e.absolute_path), e.message[:300])
sys.exit(1 if errs else 0)
PY
expect_rc 0 "$PY" validate.py "$SCHEMA" a/report/report.json
# the schema really constrains the section: a per-fold AUC that is a string fails
$PY -c "import json; r=json.load(open('a/report/report.json')); r['mil']['models'][0]['per_fold'][0]['auc']='high'; json.dump(r, open('broken.json','w'))"
expect_rc 1 "$PY" validate.py "$SCHEMA" broken.json

# --- the facts, from the stage's files and sklearn ---
cat > facts.py <<'PY'
import csv, glob, json, math, os, sys
import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve
run, models_want = sys.argv[1], sys.argv[2].split(',')
r = json.load(open(os.path.join(run, 'report/report.json')))
assert 'mil' in r['sections'], r['sections']
m = r['mil']
assert m['folds'] == 3 and m['task'] == 'binary' and m['classes'] == 2, (m['folds'], m['task'], m['classes'])
assert [x['model'] for x in m['models']] == models_want, [x['model'] for x in m['models']]
close = lambda a, b, tol=1e-12: (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= tol)
n_pred = 0
for x in m['models']:
    name = x['model']
    assert x['folds_done'] == 3 and x['folds_failed'] == 0, x['folds_done']
    ys, ps, aucs = [], [], []
    for f in x['per_fold']:
        d = os.path.join(run, 'mil', name, 'fold%d' % f['fold'])
        mj = json.load(open(os.path.join(d, 'metrics.json')))
        assert f['status'] == 'done', f['status']
        for k in ('auc', 'accuracy', 'balanced_accuracy', 'f1'):
            assert close(f[k], mj['test_' + k]), (name, f['fold'], k, f[k], mj['test_' + k])
        for k in ('n_train', 'n_val', 'n_test', 'epochs_run', 'best_epoch'):
            assert f[k] == mj[k], (name, k, f[k], mj[k])
        aucs.append(mj['test_auc'])
        rows = list(csv.DictReader(open(os.path.join(d, 'curve.csv'))))
        assert f['curve']['epoch'] == [int(c['epoch']) for c in rows]
        assert all(close(a, float(c['train_loss'])) for a, c in zip(f['curve']['train_loss'], rows))
        assert all(close(a, float(c['val_loss'])) for a, c in zip(f['curve']['val_loss'], rows))
        assert len(rows) == mj['epochs_run'], (len(rows), mj['epochs_run'])
        for p in csv.DictReader(open(os.path.join(d, 'predictions.csv'))):
            ys.append(int(p['label'])); ps.append(float(p['prob_1']))
    assert close(x['auc_mean'], float(np.mean(aucs))) and close(x['auc_sd'], float(np.std(aucs, ddof=1))), (x['auc_mean'], x['auc_sd'], aucs)
    ref = roc_auc_score(ys, ps)
    assert abs(x['pooled_auc'] - ref) < 1e-6, (name, x['pooled_auc'], ref)
    assert x['pooled_n'] == len(ys), (x['pooled_n'], len(ys))
    lo, hi = x['pooled_auc_ci95']
    assert lo <= x['pooled_auc'] <= hi and x['ci_method'] == 'DeLong', (lo, hi)
    s = json.load(open(os.path.join(run, 'mil/summary.json')))
    sm = [y for y in s['models'] if y['model'] == name][0]
    assert abs(sm['pooled_auc'] - x['pooled_auc']) < 1e-5, (sm['pooled_auc'], x['pooled_auc'])
    # binary: the per-class list holds class 1 only, the task's AUC, CI and curve
    pc = x['pooled_per_class']
    assert len(pc) == 1 and pc[0]['class'] == 1 and pc[0]['auc'] == x['pooled_auc'] and pc[0]['ci95'] == x['pooled_auc_ci95'] and pc[0]['roc'] == x['roc'], pc
    assert pc[0]['n_pos'] == sum(ys) and pc[0]['n_neg'] == len(ys) - sum(ys), pc
    # the ROC points: sklearn's, all thresholds; its area is the AUC
    fpr, tpr, _ = roc_curve(ys, ps, drop_intermediate=False)
    ours = sorted(zip(x['roc']['fpr'], x['roc']['tpr']))
    theirs = sorted(zip(fpr.tolist(), tpr.tolist()))
    assert len(ours) == len(theirs) and all(close(a, c) and close(b, e) for (a, b), (c, e) in zip(ours, theirs)), (ours, theirs)
    area = sum((ours[i + 1][0] - ours[i][0]) * (ours[i + 1][1] + ours[i][1]) / 2 for i in range(len(ours) - 1))
    assert abs(area - ref) < 1e-12, (area, ref)
    n_pred += len(ys)
preds = m['predictions']
assert len(preds) == n_pred, (len(preds), n_pred)
heat = 0
for p in preds:
    png = os.path.join(run, 'mil', p['model'], 'fold%d' % p['fold'], 'heatmaps', p['slide_id'] + '.png')
    assert (p['heatmap'] is not None) == os.path.exists(png), (p, png)
    heat += p['heatmap'] is not None
print('models', len(m['models']), 'predictions', len(preds), 'heatmaps', heat)
PY
expect_rc 0 "$PY" facts.py a abmil,clam_sb
cat "$WORK/out" | tail -1

# --- the page: the SVGs parse as XML, one ROC curve per model, a learning curve per fold ---
cat > page.py <<'PY'
import json, os, re, sys
import xml.etree.ElementTree as ET
run = sys.argv[1]
html = open(os.path.join(run, 'report/index.html')).read()
r = json.load(open(os.path.join(run, 'report/report.json')))
assert '<section id="mil"' in html and 'id="mil-summary"' in html
roc = re.search(r'<svg[^>]*id="mil-roc".*?</svg>', html, re.S)
assert roc, 'no ROC svg'
svg = ET.fromstring(roc.group(0))
paths = {p.get('id'): p for p in svg.iter() if p.tag.endswith('path')}
assert any(l.get('stroke-dasharray') for l in svg.iter() if l.tag.endswith('line')), 'no chance diagonal'
texts = ' '.join(t.text or '' for t in svg.iter() if t.tag.endswith('text'))
assert 'false positive rate' in texts and 'true positive rate' in texts, texts
for x in r['mil']['models']:
    p = paths.get('mil-roc-' + x['model'])
    assert p is not None, ('no ROC curve of', x['model'], list(paths))
    assert int(p.get('data-points')) == len(x['roc']['fpr']) == p.get('d').count(' L') + 1
    assert '%.3f' % x['pooled_auc'] in html
    for f in x['per_fold']:
        c = re.search(r'<svg[^>]*id="mil-curve-%s-fold%d".*?</svg>' % (x['model'], f['fold']), html, re.S)
        assert c, ('no learning curve', x['model'], f['fold'])
        cs = ET.fromstring(c.group(0))
        kinds = [e.get('class') for e in cs.iter()]
        assert 'train-loss' in kinds and 'val-loss' in kinds and 'best-epoch' in kinds, kinds
        assert ('best %d' % f['best_epoch']) in ' '.join(t.text or '' for t in cs.iter())
    assert re.search(r'<tr id="mil-model-%s">' % x['model'], html)
n = len(r['mil']['predictions'])
assert ('id="mil-n-predictions">%d<' % n) in html
for p in r['mil']['predictions'][:100]:
    if p['heatmap']:
        t = 'thumbs/mil.%s.fold%d.%s.jpg' % (p['model'], p['fold'], p['slide_id'])
        assert ('href="../%s"' % p['heatmap']) in html and t in html, t
        assert os.path.getsize(os.path.join(run, 'report', t)) < 64 * 1024
assert 'base64' not in html
print('pages', 'ok')
PY
expect_rc 0 "$PY" page.py a

# --- compare: a fold's seconds are performance, the pooled AUC is a result ---
$PY - <<'PY'
import json
r = json.load(open('a/report/report.json'))
r['mil']['models'][0]['per_fold'][0]['seconds'] = 12345.0
json.dump(r, open('perf.json', 'w'))
r['mil']['models'][0]['pooled_auc'] = 0.123
json.dump(r, open('result.json', 'w'))
PY
expect_rc 0 "$TESSERA" compare a/report/report.json perf.json
expect_rc 1 "$TESSERA" compare a/report/report.json result.json
check "compare names the differing pooled AUC" grep -q "DIFFERS  mil.models" "$WORK/out"

# --- long tables go to pages: 120 more test rows in a copy of the run ---
# (counted from the run: how many slides a fold tests is the split rule's business)
n0=$($PY -c "import json; print(len(json.load(open('a/report/report.json'))['mil']['predictions']))")
n1=$((n0 + 120))
cp -r a p
$PY - p/mil/abmil/fold0/predictions.csv <<'PY'
import sys
with open(sys.argv[1], 'a') as f:
    for i in range(120):
        f.write('X%04d,Q%04d,%d,%.9g,%.9g,%d\n' % (i, i, i % 2, 1 - (i % 7) / 7, (i % 7) / 7, int((i % 7) / 7 >= 0.5)))
PY
expect_rc 0 "$TESSERA" report p --quiet
check "a copy with $n1 predictions: 2 pages" test "$n1" -gt 100 -a "$n1" -le 200 -a -s p/report/mil-1.html -a -s p/report/mil-2.html -a ! -e p/report/mil-3.html
check "the index links the pages" grep -q 'href="mil-2.html"' p/report/index.html
check "page 2 shows rows 101-$n1" grep -q "MIL test predictions 101–$n1 of $n1" p/report/mil-2.html
expect_rc 0 "$PY" - p "$n0" <<'PY'
import csv, glob, json, sys
from sklearn.metrics import roc_auc_score
r = json.load(open(sys.argv[1] + '/report/report.json'))
x = r['mil']['models'][0]
ys, ps = [], []
for f in sorted(glob.glob(sys.argv[1] + '/mil/abmil/fold*/predictions.csv')):
    for p in csv.DictReader(open(f)): ys.append(int(p['label'])); ps.append(float(p['prob_1']))
n0 = int(sys.argv[2])
assert len(r['mil']['predictions']) == n0 + 120 and x['pooled_n'] == len(ys) > 120, (len(r['mil']['predictions']), n0, x['pooled_n'], len(ys))
assert abs(x['pooled_auc'] - roc_auc_score(ys, ps)) < 1e-6
PY
expect_rc 0 "$PY" validate.py "$SCHEMA" p/report/report.json

# --- three classes: one-vs-rest AUC, a curve per class ---
cp -r a c
$PY - c <<'PY'
import csv, glob, json, sys
for f in sorted(glob.glob(sys.argv[1] + '/mil/clam_sb/fold*/predictions.csv')):
    rows = list(csv.DictReader(open(f)))
    with open(f, 'w') as out:
        out.write('slide_id,patient_id,label,prob_0,prob_1,prob_2,pred\n')
        for i, p in enumerate(rows):
            q = [float(p['prob_0']) * 0.8, float(p['prob_1']) * 0.8, 0.2]
            out.write('%s,%s,%d,%.9g,%.9g,%.9g,%d\n' % (p['slide_id'], p['patient_id'], 2 if i % 3 == 0 else int(p['label']), q[0], q[1], q[2], max(range(3), key=q.__getitem__)))
PY
expect_rc 0 "$TESSERA" report c --quiet
expect_rc 0 "$PY" validate.py "$SCHEMA" c/report/report.json
expect_rc 0 "$PY" - c <<'PY'
import csv, glob, json, sys
import numpy as np
from sklearn.metrics import roc_auc_score
r = json.load(open(sys.argv[1] + '/report/report.json'))
m = {x['model']: x for x in r['mil']['models']}
assert r['mil']['task'] == 'multiclass' and r['mil']['classes'] == 3
x = m['clam_sb']
assert x['roc'] is None and x['pooled_auc_ci95'] == [None, None] and x['pooled_auc_method'] == 'one-vs-rest macro'
ys, ps = [], []
for f in sorted(glob.glob(sys.argv[1] + '/mil/clam_sb/fold*/predictions.csv')):
    for p in csv.DictReader(open(f)): ys.append(int(p['label'])); ps.append([float(p['prob_%d' % k]) for k in range(3)])
ps = np.array(ps)
ref = np.mean([roc_auc_score(np.array(ys) == k, ps[:, k]) for k in range(3)])
assert abs(x['pooled_auc'] - ref) < 1e-6, (x['pooled_auc'], ref)
pc = x['pooled_per_class']
assert [c['class'] for c in pc] == [0, 1, 2] and all(c['roc'] is not None for c in pc), pc
assert all(abs(c['auc'] - roc_auc_score(np.array(ys) == c['class'], ps[:, c['class']])) < 1e-12 for c in pc)
assert m['abmil']['roc'] is not None
PY
check "three classes: a one-vs-rest ROC chart of clam_sb" grep -q 'id="mil-roc-ovr-clam_sb"' c/report/index.html
check "three classes: one curve per class of clam_sb" test "$(grep -o 'id="mil-roc-clam_sb-class[0-9]*"' c/report/index.html | sort -u | wc -l)" = 3
check "three classes: no binary ROC curve of clam_sb" test -z "$(grep -o 'id="mil-roc-clam_sb"' c/report/index.html || true)"
check "three classes: abmil's binary curve stays" grep -q 'id="mil-roc-abmil"' c/report/index.html

# --- a run without mil.models: no mil section ---
expect_rc 0 "$TESSERA" run cohort/config.yaml --set run.dir="$WORK/b" "${common[@]}"
check "without mil.models: no mil/summary.json" test ! -e b/mil/summary.json
expect_rc 0 "$PY" - b/report/report.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert 'mil' not in r and 'mil' not in r['sections'], r['sections']
PY
check "without mil.models: no mil section on the page" test -z "$(grep -o '<section id="mil"' b/report/index.html || true)"
expect_rc 0 "$PY" validate.py "$SCHEMA" b/report/report.json
finish
