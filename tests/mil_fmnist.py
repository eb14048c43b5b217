"""mil_fmnist.py — Fashion-MNIST bags for tests/it_mil_fmnist.sh, and the PyTorch reference.

  make DIR      bags of Fashion-MNIST images (Ilse et al. 2018's MNIST-bags scheme: bag sizes
                ~ round(N(10, 2)), at least 2; images drawn at random; a bag is positive when it
                holds an image of the target class), instance vectors = a fixed, seeded random
                projection of the 784 pixels (scaled to [0, 1]) to 64 dims. 200 training and 50
                validation bags from the training images, 100 test bags from the test images.
                Writes DIR/features/<bag>.h5 (features N x 64 float32, coords N x 2 int64: the
                layout tessera's mil.features reads), DIR/cohort.csv, DIR/splits.csv (one fold:
                train / val / test) and DIR/config.yaml.
  torch DIR SEED  the same architecture as tessera's "abmil" (nn/mil_abmil.c: fc 64->512 ReLU
                dropout, gated attention 512->256->1 without dropout, softmax over the bag,
                linear 512->2) and the same training (AdamW lr 2e-4, betas (0.9, 0.999), eps
                1e-8, weight decay 1e-5, batch 1, a shuffle per epoch, early stopping on the
                validation loss with patience and minimum epochs, best epoch kept), written here
                from the paper in torch.nn; prints the test AUC of the best epoch.
  oracle RUNDIR DIR  loads tessera's mil/abmil/fold0/model.h5 into the torch.nn model above and
                checks that its test probabilities and raw attention are those tessera wrote
                (predictions.csv, attention.h5); prints tessera's test AUC from predictions.csv.
"""
import csv
import gzip
import json
import os
import sys

import h5py
import numpy as np

FM = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
TARGET = int(os.environ.get("FMNIST_TARGET", "6"))  # 6 = shirt: the hardest class to tell apart
EPOCHS, MIN_EPOCHS, PATIENCE = 40, 10, 10
LR, WD, DROPOUT, DIM = 2e-4, 1e-5, 0.25, 64


def idx(name):
    with gzip.open(os.path.join(FM, name)) as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    nd = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * nd).reshape(dims)


def make(out):
    rng = np.random.default_rng(2018)
    proj = (rng.standard_normal((784, DIM)) / np.sqrt(784)).astype(np.float32)
    tr_x, tr_y = idx("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz")
    te_x, te_y = idx("t10k-images-idx3-ubyte.gz"), idx("t10k-labels-idx1-ubyte.gz")
    os.makedirs(os.path.join(out, "features"), exist_ok=True)
    cohort = [("slide_id", "patient_id", "path", "label")]
    splits = [("fold", "set", "slide_id", "patient_id", "label")]
    k = 0
    counts = {}
    for part, nbags, X, Y in (("train", 200, tr_x, tr_y), ("val", 50, tr_x, tr_y), ("test", 100, te_x, te_y)):
        pos = 0
        for _ in range(nbags):
            n = max(2, int(round(rng.normal(10, 2))))
            ids = rng.integers(0, len(X), n)
            feats = (X[ids].reshape(n, 784).astype(np.float32) / 255.0) @ proj
            label = int((Y[ids] == TARGET).any())
            pos += label
            name = f"B{k:04d}"
            k += 1
            with h5py.File(os.path.join(out, "features", name + ".h5"), "w") as f:
                f["features"] = feats.astype(np.float32)
                xy = np.stack([ids % 1000 * 28, ids // 1000 * 28], 1).astype(np.int64)  # where the image came from
                f["coords"] = xy
            cohort.append((name, "P" + name[1:], f"slides/{name}.tiff", label))
            splits.append((0, part, name, "P" + name[1:], label))
        counts[part] = (nbags, pos)
    for fn, rows in (("cohort.csv", cohort), ("splits.csv", splits)):
        with open(os.path.join(out, fn), "w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(rows)
    with open(os.path.join(out, "config.yaml"), "w") as f:
        f.write("run:\n  dir: run\ncohort:\n  csv: cohort.csv\n"
                f"mil:\n  models: abmil\n  features: features\n  splits: splits.csv\n  epochs: {EPOCHS}\n"
                f"  min_epochs: {MIN_EPOCHS}\n  patience: {PATIENCE}\n  lr: {LR}\n  weight_decay: {WD}\n  dropout: {DROPOUT}\n  optimizer: adamw\n")
    print("fmnist bags: target class", TARGET, "(bags, positive):", json.dumps(counts))


def load(out):
    rows = list(csv.DictReader(open(os.path.join(out, "splits.csv"))))
    sets = {"train": [], "val": [], "test": []}
    for r in rows:
        with h5py.File(os.path.join(out, "features", r["slide_id"] + ".h5"), "r") as f:
            sets[r["set"]].append((r["slide_id"], f["features"][()], int(r["label"])))
    return sets


def model_class():
    import torch
    import torch.nn as nn

    class GatedABMIL(nn.Module):
        """Ilse et al. 2018 eq. 9 on features, CLAM_SB's module names (attention_net.0, .3)."""

        def __init__(self, d, L=512, Da=256, C=2, p=DROPOUT):
            super().__init__()
            gated = nn.Module()
            gated.attention_a = nn.Sequential(nn.Linear(L, Da), nn.Tanh())
            gated.attention_b = nn.Sequential(nn.Linear(L, Da), nn.Sigmoid())
            gated.attention_c = nn.Linear(Da, 1)
            self.attention_net = nn.Sequential(nn.Linear(d, L), nn.ReLU(), nn.Dropout(p), gated)
            self.classifiers = nn.Linear(L, C)

        def forward(self, x):
            h = self.attention_net[2](self.attention_net[1](self.attention_net[0](x)))
            g = self.attention_net[3]
            a = g.attention_c(g.attention_a(h) * g.attention_b(h)).T  # [1, N] raw
            z = torch.softmax(a, 1) @ h
            return self.classifiers(z), a[0]

    return GatedABMIL


def auc(y, s):
    from sklearn.metrics import roc_auc_score
    return float(roc_auc_score(y, s))


def train_torch(out, seed):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    sets = load(out)
    T = {k: [(n, torch.from_numpy(x), torch.tensor([y])) for n, x, y in v] for k, v in sets.items()}
    m = model_class()(DIM)
    opt = torch.optim.AdamW(m.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=WD)
    rng = np.random.default_rng(seed)

    def evaluate(part):
        m.eval()
        loss, p = 0.0, []
        with torch.no_grad():
            for _, x, y in T[part]:
                lg, _ = m(x)
                loss += F.cross_entropy(lg, y).item()
                p.append(torch.softmax(lg, 1)[0, 1].item())
        return loss / len(T[part]), p

    best, best_state, since = float("inf"), None, 0
    for ep in range(EPOCHS):
        m.train()
        for i in rng.permutation(len(T["train"])):
            _, x, y = T["train"][i]
            lg, _ = m(x)
            loss = F.cross_entropy(lg, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        vl, _ = evaluate("val")
        if vl < best:
            best, since = vl, 0
            best_state = {k: v.clone() for k, v in m.state_dict().items()}
        else:
            since += 1
        if since >= PATIENCE and ep + 1 >= MIN_EPOCHS:
            break
    m.load_state_dict(best_state)
    _, p = evaluate("test")
    a = auc([y for _, _, y in sets["test"]], p)
    print(f"torch seed {seed}: epochs {ep + 1}, best val loss {best:.4f}, test AUC {a:.6f}")
    print(f"TORCH_AUC {a:.6f}")


def oracle(run, out):
    import torch
    sets = load(out)
    m = model_class()(DIM)
    with h5py.File(os.path.join(run, "mil/abmil/fold0/model.h5"), "r") as f:
        sd = {k: torch.from_numpy(v[()]) for k, v in f["state_dict"].items()}
    m.load_state_dict(sd, strict=True)
    m.eval()
    pred = {r["slide_id"]: r for r in csv.DictReader(open(os.path.join(run, "mil/abmil/fold0/predictions.csv")))}
    att = h5py.File(os.path.join(run, "mil/abmil/fold0/attention.h5"), "r")
    assert sorted(pred) == sorted(n for n, _, _ in sets["test"]), "predictions.csv holds other slides than the test set"
    worst_p = worst_a = 0.0
    with torch.no_grad():
        for n, x, y in sets["test"]:
            lg, a = m(torch.from_numpy(x))
            p = torch.softmax(lg.double(), 1)[0].numpy()
            r = pred[n]
            assert int(r["label"]) == y, (n, r["label"], y)
            worst_p = max(worst_p, abs(p[0] - float(r["prob_0"])), abs(p[1] - float(r["prob_1"])))
            worst_a = max(worst_a, float(np.abs(att[n]["attention"][0] - a.numpy()).max()))
            assert att[n]["coords"].shape == (len(x), 2)
    print(f"oracle: torch.nn on tessera's model.h5: |dprob| <= {worst_p:.2e}, |dattention| <= {worst_a:.2e}")
    assert worst_p < 1e-5 and worst_a < 1e-4, (worst_p, worst_a)
    y = [int(pred[n]["label"]) for n, _, _ in sets["test"]]
    s = [float(pred[n]["prob_1"]) for n, _, _ in sets["test"]]
    print(f"TESSERA_AUC {auc(y, s):.6f}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2])
    elif cmd == "torch":
        train_torch(sys.argv[2], int(sys.argv[3]))
    elif cmd == "oracle":
        oracle(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: mil_fmnist.py make DIR | torch DIR SEED | oracle RUNDIR DIR")
