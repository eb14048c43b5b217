#!/usr/bin/python3
"""mil_torch.py PREFIX MODEL [THREADS=1] [WARMUP=20] — the PyTorch eager baseline of bench_mil.

Trains ABMIL or CLAM-SB with batch 1 on the bags that `bench_mil gen PREFIX` wrote
(PREFIX.txt: "bags dim seed" then "n label" per bag; PREFIX.f32: the rows, float32), held in
memory as tensors before timing, and prints one line
    RESULT side=torch model=abmil bags=200 ... bags_per_s=... malloc=tuned|default
in the format of bench_mil's. Run with Debian's /usr/bin/python3 (python3-torch). The malloc
setting is the caller's: bench_mil.sh runs this once with GLIBC_TUNABLES set to tessera's values
(nn/malloc_tune.c) and once without; the line says which it saw.

The models are plain torch.nn written after CLAM's models/model_clam.py (Attn_Net_Gated, CLAM_SB,
size "small": D -> 512 -> 256), not after tessera's C:
  clam_sb  CLAM_SB(gate=True, dropout=0.25, k_sample=8, n_classes=2, CrossEntropyLoss instance
           loss, subtyping=False): forward with instance_eval=True; total loss 0.7 bag CE + 0.3
           instance CE, as CLAM's train_loop_clam. CLAM's logging outputs (Y_prob, Y_hat, the
           instance preds it copies to numpy) are left out: tessera computes none of them.
  abmil    the same trunk with the attention branches undropped (Attn_Net_Gated(dropout=False),
           Ilse et al.'s gated attention has no dropout; tessera's abmil likewise) and the bag
           classifier L -> 2; loss CE.
The loop is tessera's and CLAM's: forward, loss, zero_grad, backward, AdamW step (lr 2e-4,
weight decay 1e-5, torch defaults otherwise), loss.item(). Same threads (torch.set_num_threads),
deterministic algorithms on (stages/mil.c sets them), the first WARMUP bags untimed.
"""
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Attn_Net_Gated(nn.Module):  # CLAM's, names included
    def __init__(self, L=512, D=256, dropout=False, n_classes=1):
        super().__init__()
        a = [nn.Linear(L, D), nn.Tanh()]
        b = [nn.Linear(L, D), nn.Sigmoid()]
        if dropout:
            a.append(nn.Dropout(0.25))
            b.append(nn.Dropout(0.25))
        self.attention_a = nn.Sequential(*a)
        self.attention_b = nn.Sequential(*b)
        self.attention_c = nn.Linear(D, n_classes)

    def forward(self, x):
        A = self.attention_c(self.attention_a(x).mul(self.attention_b(x)))  # N x n_classes
        return A, x


class CLAM_SB(nn.Module):
    def __init__(self, dropout=0.25, k_sample=8, n_classes=2, embed_dim=1024, attn_dropout=True):
        super().__init__()
        size = [embed_dim, 512, 256]
        fc = [nn.Linear(size[0], size[1]), nn.ReLU(), nn.Dropout(dropout)]
        fc.append(Attn_Net_Gated(L=size[1], D=size[2], dropout=attn_dropout and dropout > 0, n_classes=1))
        self.attention_net = nn.Sequential(*fc)
        self.classifiers = nn.Linear(size[1], n_classes)
        self.instance_classifiers = nn.ModuleList([nn.Linear(size[1], 2) for _ in range(n_classes)])
        self.k_sample = k_sample
        self.n_classes = n_classes
        self.instance_loss_fn = nn.CrossEntropyLoss()

    @staticmethod
    def create_positive_targets(length, device):
        return torch.full((length,), 1, device=device).long()

    @staticmethod
    def create_negative_targets(length, device):
        return torch.full((length,), 0, device=device).long()

    def inst_eval(self, A, h, classifier):  # CLAM's in-class term
        if len(A.shape) == 1:
            A = A.view(1, -1)
        top_p_ids = torch.topk(A, self.k_sample)[1][-1]
        top_p = torch.index_select(h, dim=0, index=top_p_ids)
        top_n_ids = torch.topk(-A, self.k_sample, dim=1)[1][-1]
        top_n = torch.index_select(h, dim=0, index=top_n_ids)
        p_targets = self.create_positive_targets(self.k_sample, h.device)
        n_targets = self.create_negative_targets(self.k_sample, h.device)
        all_targets = torch.cat([p_targets, n_targets], dim=0)
        all_instances = torch.cat([top_p, top_n], dim=0)
        logits = classifier(all_instances)
        return self.instance_loss_fn(logits, all_targets)

    def forward(self, h, label=None, instance_eval=False):
        A, h = self.attention_net(h)  # N x 1
        A = torch.transpose(A, 1, 0)  # 1 x N
        A = F.softmax(A, dim=1)
        total_inst_loss = None
        if instance_eval:
            total_inst_loss = 0.0
            inst_labels = F.one_hot(label, num_classes=self.n_classes).squeeze()
            for i in range(len(self.instance_classifiers)):
                if inst_labels[i].item() == 1:  # in-the-class (subtyping off: no out-of-class term)
                    total_inst_loss = total_inst_loss + self.inst_eval(A, h, self.instance_classifiers[i])
        M = torch.mm(A, h)
        return self.classifiers(M), total_inst_loss


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    prefix, arch = sys.argv[1], sys.argv[2]
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    warmup = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    if arch not in ("abmil", "clam_sb"):
        sys.exit("mil_torch.py: MODEL is abmil or clam_sb")
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    with open(prefix + ".txt") as f:
        bags, dim, seed = (int(v) for v in f.readline().split())
        rows = [tuple(int(v) for v in f.readline().split()) for _ in range(bags)]
    xs, ys, off = [], [], 0
    for n, y in rows:  # private copies, as tessera's tensors are (no memory map)
        a = np.fromfile(prefix + ".f32", dtype="<f4", count=n * dim, offset=off).reshape(n, dim)
        xs.append(torch.from_numpy(a))
        ys.append(torch.tensor([y], dtype=torch.long))
        off += 4 * n * dim
    tiles = sum(n for n, _ in rows)
    torch.manual_seed(seed)
    model = CLAM_SB(dropout=0.25, k_sample=8, n_classes=2, embed_dim=dim, attn_dropout=(arch == "clam_sb"))
    if arch == "abmil":
        model.instance_classifiers = nn.ModuleList()  # ABMIL has none (and AdamW must not see them)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-5)
    warmup = min(warmup, bags)
    t0, total = 0.0, 0.0
    for i in range(-warmup, bags):
        b = i + warmup if i < 0 else i
        if i == 0:
            t0 = time.perf_counter()
        x, y = xs[b], ys[b]
        if arch == "clam_sb":
            logits, inst = model(x, label=y, instance_eval=True)
            loss = 0.7 * F.cross_entropy(logits, y) + 0.3 * inst
        else:
            logits, _ = model(x)
            loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        v = loss.item()
        if i >= 0:
            total += v
    secs = time.perf_counter() - t0
    tun = os.environ.get("GLIBC_TUNABLES", "")
    print(f"RESULT side=torch model={arch} bags={bags} tiles={tiles} seconds={secs:.3f} bags_per_s={bags / secs:.3f} "
          f"mean_loss={total / bags:.4f} threads={threads} malloc={'tuned' if 'malloc' in tun else 'default'} "
          f"torch={torch.__version__}", flush=True)


if __name__ == "__main__":
    main()
