#!/usr/bin/python3
"""survnet_torch_bench.py ARCH [THREADS=1] [STEPS=60] [WARMUP=5] [TILES=2000] [OMIC=200] — the PyTorch
eager baseline of bench_survnet (bench/bench_survnet.c): the same model, loss, optimiser and loop.

ARCH: mmf_bilinear or mmf_concat, PORPOISE's PorpoiseMMF (mahmoodlab/PORPOISE
models/model_porpoise.py) with the class's defaults (gates on, skip, dropinput 0.10, scale_dim 8),
written here in plain torch.nn after that file (not after tessera's C; BilinearFusion's ones made
on the CPU instead of torch.cuda.FloatTensor). Loss: PORPOISE's nll_loss (utils/loss_func.py,
alpha 0, eps 1e-7). Optimiser: torch.optim.Adam(lr 2e-4, weight_decay 1e-5). Loop per step:
forward (train mode), loss, zero_grad, backward, step, loss.item(); one patient per step.

Patients: 8 in memory, bag i of TILES - 400 + (137 i mod 801) tiles x 1024 float32 standard
normals (torch's generator: the same shapes as the C side, other values), an omic vector of OMIC
values, bin i mod 4, censored when i mod 3 == 0. torch.set_num_threads(THREADS), deterministic
algorithms on; OpenBLAS's threads are the caller's (bench_survnet.sh sets OPENBLAS_NUM_THREADS).
Prints RESULT side=torch ... patients_per_s=... patients_per_cpu_s=... (wall and process CPU time) in
bench_survnet's format.
"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def SNN_Block(dim1, dim2, dropout=0.25):
    return nn.Sequential(nn.Linear(dim1, dim2), nn.ELU(), nn.AlphaDropout(p=dropout, inplace=False))


class Attn_Net_Gated(nn.Module):
    def __init__(self, L=1024, D=256, dropout=False, n_classes=1):
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
        return self.attention_c(self.attention_a(x).mul(self.attention_b(x))), x


class BilinearFusion(nn.Module):
    def __init__(self, skip=0, gate1=1, gate2=1, dim1=128, dim2=128, scale_dim1=1, scale_dim2=1, mmhid=256,
                 dropout_rate=0.25):
        super().__init__()
        self.skip, self.gate1, self.gate2 = skip, gate1, gate2
        dim1_og, dim2_og, dim1, dim2 = dim1, dim2, dim1 // scale_dim1, dim2 // scale_dim2
        skip_dim = dim1_og + dim2_og if skip else 0
        self.linear_h1 = nn.Sequential(nn.Linear(dim1_og, dim1), nn.ReLU())
        self.linear_z1 = nn.Sequential(nn.Linear(dim1_og + dim2_og, dim1))
        self.linear_o1 = nn.Sequential(nn.Linear(dim1, dim1), nn.ReLU(), nn.Dropout(p=dropout_rate))
        self.linear_h2 = nn.Sequential(nn.Linear(dim2_og, dim2), nn.ReLU())
        self.linear_z2 = nn.Sequential(nn.Linear(dim1_og + dim2_og, dim2))
        self.linear_o2 = nn.Sequential(nn.Linear(dim2, dim2), nn.ReLU(), nn.Dropout(p=dropout_rate))
        self.post_fusion_dropout = nn.Dropout(p=dropout_rate)
        self.encoder1 = nn.Sequential(nn.Linear((dim1 + 1) * (dim2 + 1), 256), nn.ReLU())
        self.encoder2 = nn.Sequential(nn.Linear(256 + skip_dim, mmhid), nn.ReLU())

    def forward(self, vec1, vec2):
        h1 = self.linear_h1(vec1)
        z1 = self.linear_z1(torch.cat((vec1, vec2), dim=1))
        o1 = self.linear_o1(nn.Sigmoid()(z1) * h1)
        h2 = self.linear_h2(vec2)
        z2 = self.linear_z2(torch.cat((vec1, vec2), dim=1))
        o2 = self.linear_o2(nn.Sigmoid()(z2) * h2)
        o1 = torch.cat((o1, torch.ones(o1.shape[0], 1)), 1)
        o2 = torch.cat((o2, torch.ones(o2.shape[0], 1)), 1)
        o12 = torch.bmm(o1.unsqueeze(2), o2.unsqueeze(1)).flatten(start_dim=1)
        out = self.encoder1(self.post_fusion_dropout(o12))
        if self.skip:
            out = torch.cat((out, vec1, vec2), 1)
        return self.encoder2(out)


class PorpoiseMMF(nn.Module):
    def __init__(self, omic_input_dim, path_input_dim=1024, fusion='bilinear', dropout=0.25, n_classes=4,
                 scale_dim1=8, scale_dim2=8, gate_path=1, gate_omic=1, skip=True, dropinput=0.10):
        super().__init__()
        self.fusion = fusion
        size = [path_input_dim, 512, 256]
        fc = [nn.Dropout(dropinput), nn.Linear(size[0], size[1]), nn.ReLU(), nn.Dropout(dropout)]
        fc.append(Attn_Net_Gated(L=size[1], D=size[2], dropout=dropout, n_classes=1))
        self.attention_net = nn.Sequential(*fc)
        self.rho = nn.Sequential(nn.Linear(size[1], size[2]), nn.ReLU(), nn.Dropout(dropout))
        self.fc_omic = nn.Sequential(SNN_Block(omic_input_dim, 256), SNN_Block(256, 256, dropout=0.25))
        if fusion == 'concat':
            self.mm = nn.Sequential(nn.Linear(256 * 2, size[2]), nn.ReLU(), nn.Linear(size[2], size[2]), nn.ReLU())
        else:
            self.mm = BilinearFusion(dim1=256, dim2=256, scale_dim1=scale_dim1, gate1=gate_path,
                                     scale_dim2=scale_dim2, gate2=gate_omic, skip=skip, mmhid=256)
        self.classifier_mm = nn.Linear(size[2], n_classes)

    def forward(self, x_path, x_omic):
        A, h_path = self.attention_net(x_path)
        A = torch.transpose(A, 1, 0)
        h_path = self.rho(torch.mm(F.softmax(A, dim=1), h_path))
        h_omic = self.fc_omic(x_omic)
        if self.fusion == 'bilinear':
            h_mm = self.mm(h_path, h_omic)
        else:
            h_mm = self.mm(torch.cat([h_path, h_omic], axis=1))
        return self.classifier_mm(h_mm)


def nll_loss(h, y, c, alpha=0.0, eps=1e-7):  # PORPOISE utils/loss_func.py
    y = y.type(torch.int64)
    c = c.type(torch.int64)
    hazards = torch.sigmoid(h)
    S = torch.cumprod(1 - hazards, dim=1)
    S_padded = torch.cat([torch.ones_like(c), S], 1)
    s_prev = torch.gather(S_padded, dim=1, index=y).clamp(min=eps)
    h_this = torch.gather(hazards, dim=1, index=y).clamp(min=eps)
    s_this = torch.gather(S_padded, dim=1, index=y + 1).clamp(min=eps)
    uncensored_loss = -(1 - c) * (torch.log(s_prev) + torch.log(h_this))
    censored_loss = -c * torch.log(s_this)
    neg_l = censored_loss + uncensored_loss
    loss = (1 - alpha) * neg_l + alpha * uncensored_loss
    return loss.mean()


def main():
    arch = sys.argv[1] if len(sys.argv) > 1 else 'mmf_bilinear'
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 60
    warmup = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    tiles = int(sys.argv[5]) if len(sys.argv) > 5 else 2000
    g = int(sys.argv[6]) if len(sys.argv) > 6 else 200
    if arch not in ('mmf_bilinear', 'mmf_concat'):
        sys.exit('survnet_torch_bench.py: ARCH is mmf_bilinear or mmf_concat')
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(7)
    pat = 8
    bags = [torch.randn(tiles - 400 + (137 * i) % 801, 1024) for i in range(pat)]
    omics = [torch.randn(1, g) for _ in range(pat)]
    ys = [torch.tensor([[i % 4]]) for i in range(pat)]
    cs = [torch.tensor([[1 if i % 3 == 0 else 0]]) for i in range(pat)]
    model = PorpoiseMMF(omic_input_dim=g, fusion=arch[4:])
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, weight_decay=1e-5)
    t0, c0, total, ntiles = 0.0, 0.0, 0.0, 0
    for i in range(-warmup, steps):
        b = i % pat
        if i == 0:
            t0, c0 = time.perf_counter(), time.process_time()
        logits = model(bags[b], omics[b])
        loss = nll_loss(logits, ys[b], cs[b], alpha=0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        v = loss.item()
        if i >= 0:
            total += v
            ntiles += bags[b].shape[0]
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    nparams = sum(p.numel() for p in model.parameters())
    print(f"RESULT side=torch model={arch} steps={steps} tiles={ntiles} seconds={secs:.3f} "
          f"patients_per_s={steps / secs:.3f} cpu_seconds={cpu:.3f} patients_per_cpu_s={steps / cpu:.3f} mean_loss={total / steps:.4f} threads={threads} params={nparams} "
          f"torch={torch.__version__}")


if __name__ == '__main__':
    main()
