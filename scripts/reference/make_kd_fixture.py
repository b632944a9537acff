#!/usr/bin/python3
"""Golden cases for the logit-distillation loss (src/distill/kd_head.ts, kdForwardBackward).

An independent PyTorch statement of the loss, in float64 with autograd for the gradient:

  per token  KL(P_teacher || P_student) = kl_div(log_softmax(z/T), log_softmax(u/T), log_target)
             reverse: KL(P_student || P_teacher) (the arguments swapped)
             top-k:   both sides gathered at the teacher's top-k ids, then log_softmax over those
  kd         mean over tokens with a target (>= 0), times T^2 when t2
  lm         total = CE + kd * (CE / kd).detach() * kd_loss_scale (CE = mean next-token CE)

Inputs are float32 values (so the TypeScript side reads them exactly); loss, per-row KL and
d(loss)/d(student logits) are float64. Writes test/fixtures_kd/kd_cases.json.

    /usr/bin/python3 scripts/reference/make_kd_fixture.py
"""
import json
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'fixtures_kd', 'kd_cases.json')
N, V = 7, 40
IGNORED = (2, 5)  # rows without a target: they must contribute nothing

# name, temperature, top_k (0 = all), reverse, t2, lm_loss, kd_loss_scale
CASES = [
    ('forward', 1.0, 0, False, False, False, 1.0),
    ('forward_T2', 2.0, 0, False, False, False, 1.0),
    ('forward_T2_t2', 2.0, 0, False, True, False, 1.0),
    ('forward_T0.5', 0.5, 0, False, False, False, 1.0),
    ('reverse', 1.0, 0, True, False, False, 1.0),
    ('reverse_T2_t2', 2.0, 0, True, True, False, 1.0),
    ('topk8', 1.0, 8, False, False, False, 1.0),
    ('topk8_reverse_T1.5', 1.5, 8, True, False, False, 1.0),
    ('topk5_T2_t2', 2.0, 5, False, True, False, 1.0),
    ('ce_kd', 1.0, 0, False, False, True, 1.0),
    ('ce_kd_reverse_topk8_T2_scale0.5', 2.0, 8, True, False, True, 0.5),
]


def kl_rows(z, u, T, k, reverse):
    if k:
        idx = torch.topk(u, k, dim=-1).indices
        z, u = z.gather(-1, idx), u.gather(-1, idx)
    log_p, log_q = F.log_softmax(z / T, dim=-1), F.log_softmax(u / T, dim=-1)
    # kl_div(input, target, log_target=True) = sum exp(target) * (target - input) = KL(target || input)
    inp, tgt = (log_q, log_p) if reverse else (log_p, log_q)
    return F.kl_div(inp, tgt, reduction='none', log_target=True).sum(-1)


def case(seed, name, T, k, reverse, t2, lm, scale):
    g = torch.Generator().manual_seed(seed)
    z32 = torch.randn(N, V, generator=g) * 2.5
    u32 = torch.randn(N, V, generator=g) * 3.0 + 0.5
    targets = torch.randint(0, V, (N,), generator=g)
    targets[list(IGNORED)] = -100
    z = z32.double().requires_grad_(True)
    u = u32.double()
    valid = targets >= 0
    rows = kl_rows(z, u, T, k, reverse)
    kd = rows[valid].mean() * (T * T if t2 else 1.0)
    ce = None
    if lm:
        ce = F.cross_entropy(z, targets, ignore_index=-100)
        loss = ce + kd * (ce / kd).detach() * scale
    else:
        loss = kd
    loss.backward()
    rows = rows.detach().masked_fill(~valid, 0.0)
    return {
        'name': name, 'temperature': T, 'topK': k, 'reverse': reverse, 'scaleT2': t2,
        'lmLoss': lm, 'kdLossScale': scale, 'N': N, 'V': V,
        'logits': [float(x) for x in z32.flatten()],
        'teacherLogits': [float(x) for x in u32.flatten()],
        'targets': [int(x) for x in targets],
        'rowKL': [float(x) for x in rows],
        'kd': float(kd), 'ce': None if ce is None else float(ce), 'loss': float(loss),
        'grad': [float(x) for x in z.grad.flatten()],
    }


def main():
    cases = [case(100 + i, *c) for i, c in enumerate(CASES)]
    # self-checks: a KL is >= 0, and an identical teacher gives 0 loss and 0 gradient
    for c in cases:
        assert min(c['rowKL']) >= -1e-12, c['name']
    z = torch.randn(3, V, dtype=torch.float64, requires_grad=True)
    same = kl_rows(z, z.detach(), 2.0, 0, False).sum()
    same.backward()
    assert abs(float(same)) < 1e-12 and float(z.grad.abs().max()) < 1e-12
    doc = {
        'generator': 'scripts/reference/make_kd_fixture.py',
        'torch_version': torch.__version__,
        'compute_dtype': 'float64',
        'ignored_rows': list(IGNORED),
        'cases': cases,
    }
    with open(OUT, 'w') as f:
        json.dump(doc, f, indent=None, separators=(',', ':'))
        f.write('\n')
    for c in cases:
        print(f"{c['name']}: loss {c['loss']:.6f} kd {c['kd']:.6f}" + (f" ce {c['ce']:.6f}" if c['ce'] is not None else ''))
    print('all ok')


if __name__ == '__main__':
    main()
