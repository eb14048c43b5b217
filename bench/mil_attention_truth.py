#!/usr/bin/env python3
# bench/mil_attention_truth.py COHORT_DIR MODELS — does attention find the tumour? For every positive
# test slide of a finished mil run (COHORT_DIR/run, a `tessera synth` cohort with truth/<slide>.tumour.png),
# the AUC of the raw attention scores for "tile overlaps the tumour mask". Prints per model the AUCs,
# their minimum and median. Run with Debian's /usr/bin/python3 (h5py, PIL, sklearn).
import h5py, numpy as np, sys, glob
from PIL import Image
from sklearn.metrics import roc_auc_score
cohort=sys.argv[1]; run=cohort+'/run'; models=sys.argv[2].split(',')
for model in models:
  aucs=[]
  import glob
  for fp in sorted(glob.glob(f'{run}/mil/{model}/fold*/attention.h5')):
    f=h5py.File(fp,'r')
    for s in f:
      g=f[s]
      if g.attrs['label']!=1: continue
      att=g['attention'][0]; xy=g['coords'][:]
      tf=h5py.File(f'{run}/tiles/{s}.h5','r'); ts=tf['coords'].attrs['patch_size_level0']
      m=np.array(Image.open(f'{cohort}/truth/{s}.tumour.png'))>0
      W0=tf['coords'].attrs['level0_width']; H0=tf['coords'].attrs['level0_height']
      sx=m.shape[1]/W0; sy=m.shape[0]/H0
      y=np.array([m[int(y0*sy):max(int((y0+ts)*sy),int(y0*sy)+1), int(x0*sx):max(int((x0+ts)*sx),int(x0*sx)+1)].any() for x0,y0 in xy])
      if y.all() or (~y).all(): continue
      aucs.append(roc_auc_score(y,att))
  print(model, 'slides', len(aucs), 'AUCs', np.round(aucs,3), 'min %.3f median %.3f'%(min(aucs),np.median(aucs)) if aucs else '')
