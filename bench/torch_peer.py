#!/usr/bin/python3
"""PyTorch peer for `npm run bench`: a plain Llama-style decoder in fp32, timed the way a careful
PyTorch user would run it on this CPU.

Run with Debian's interpreter (python3-torch, PyTorch 1.13), NOT a pyenv python3:

    /usr/bin/python3 bench/torch_peer.py --config tiny15m --threads 2 --tuned
    /usr/bin/python3 bench/torch_peer.py --config smollm135 --steps 5 --warmup 3 --tuned

`--tuned` re-executes the script with the tuning from ../shared/specs/machine-limits.md: tcmalloc preloaded
(LD_PRELOAD of Debian's libtcmalloc-minimal4) and OMP_WAIT_POLICY=PASSIVE. bench/peers.ts sets the
same environment itself. Prints ONE JSON object on stdout; progress goes to stderr.

FLOP convention (matches machine-limits.md): N = the parameters that take part in matmuls or norms,
i.e. every parameter EXCEPT an untied input embedding table (a lookup, not a matmul). The lm_head
weight is counted; when tied it is the embedding table and counts once. Attention score/value FLOPs
are not counted. train_gflops = 6 * N * train_tokens_per_s, forward_gflops = 2 * N * forward_tokens_per_s.
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

TCMALLOC = '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4'

CONFIGS = {
    'tiny15m': dict(hidden=288, layers=6, heads=6, kv_heads=6, mlp=768, vocab=32000, tied=False,
                    seq=256, batch=8, rope_theta=10000.0, eps=1e-5),
    'smollm135': dict(hidden=576, layers=30, heads=9, kv_heads=3, mlp=1536, vocab=49152, tied=True,
                      seq=512, batch=4, rope_theta=100000.0, eps=1e-5),
}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default='tiny15m', help='tiny15m | smollm135, or a JSON object / path to a JSON file '
                   'with keys hidden, layers, heads, kv_heads, mlp, vocab, tied, seq, batch[, rope_theta, eps]')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--steps', type=int, default=None, help='timed training steps (default 8; 5 for big configs)')
    p.add_argument('--warmup', type=int, default=None, help='warmup training steps (default 3)')
    p.add_argument('--forward-steps', type=int, default=None, help='timed forward passes (default = steps)')
    p.add_argument('--prompt', type=int, default=64, help='decode: prompt length')
    p.add_argument('--new-tokens', type=int, default=64, help='decode: generated tokens')
    p.add_argument('--decode-runs', type=int, default=3, help='decode: timed generations (median)')
    p.add_argument('--seq', type=int, default=None, help='override the config sequence length')
    p.add_argument('--batch', type=int, default=None, help='override the config batch size')
    p.add_argument('--skip', default='', help='comma list of phases to skip: train,forward,decode')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--tuned', action='store_true', help='re-exec with tcmalloc preloaded and OMP_WAIT_POLICY=PASSIVE')
    p.add_argument('--untuned', action='store_true', help='re-exec WITHOUT LD_PRELOAD / OMP_WAIT_POLICY (for comparison)')
    return p.parse_args(argv)


def maybe_reexec(args):
    """Apply (or strip) the tuning environment by re-executing; env must be set before libgomp/torch load."""
    if os.environ.get('KOMPRESOR_PEER_REEXEC') == '1':
        return
    env = dict(os.environ)
    if args.tuned:
        if not os.path.exists(TCMALLOC):
            sys.exit(f'{TCMALLOC} not found: apt-get install libtcmalloc-minimal4')
        pre = [x for x in env.get('LD_PRELOAD', '').split(':') if x and 'tcmalloc' not in x]
        env['LD_PRELOAD'] = ':'.join([TCMALLOC] + pre)
        env['OMP_WAIT_POLICY'] = 'PASSIVE'
    elif args.untuned:
        pre = [x for x in env.get('LD_PRELOAD', '').split(':') if x and 'tcmalloc' not in x]
        if pre:
            env['LD_PRELOAD'] = ':'.join(pre)
        else:
            env.pop('LD_PRELOAD', None)
        env.pop('OMP_WAIT_POLICY', None)
    else:
        return
    env['KOMPRESOR_PEER_REEXEC'] = '1'
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


def load_config(spec):
    if spec in CONFIGS:
        return spec, dict(CONFIGS[spec])
    text = open(spec).read() if os.path.exists(spec) else spec
    cfg = json.loads(text)
    base = dict(CONFIGS['tiny15m'])
    base.update(cfg)
    return cfg.get('name', 'custom'), base


def tcmalloc_loaded():
    try:
        with open('/proc/self/maps') as f:
            return 'tcmalloc' in f.read()
    except OSError:
        return False


def main():
    args = parse_args(sys.argv[1:])
    maybe_reexec(args)

    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    name, cfg = load_config(args.config)
    if args.seq:
        cfg['seq'] = args.seq
    if args.batch:
        cfg['batch'] = args.batch
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    skip = set(s for s in args.skip.split(',') if s)
    big = cfg['hidden'] * cfg['layers'] >= 4096
    steps = args.steps if args.steps is not None else (5 if big else 8)
    warmup = args.warmup if args.warmup is not None else 3
    fwd_steps = args.forward_steps if args.forward_steps is not None else steps

    H, L, NH, NKV, I, V = cfg['hidden'], cfg['layers'], cfg['heads'], cfg['kv_heads'], cfg['mlp'], cfg['vocab']
    HD = H // NH
    assert NH % NKV == 0
    GROUPS = NH // NKV
    have_sdpa = hasattr(F, 'scaled_dot_product_attention')

    class RMSNorm(nn.Module):
        def __init__(self, d, eps):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(d))
            self.eps = eps

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight

    def rotate_half(x):
        x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
        return torch.cat((-x2, x1), dim=-1)

    class Rope:
        def __init__(self, max_len):
            inv = 1.0 / (cfg['rope_theta'] ** (torch.arange(0, HD, 2, dtype=torch.float32) / HD))
            t = torch.arange(max_len, dtype=torch.float32)
            freqs = torch.outer(t, inv)
            emb = torch.cat((freqs, freqs), dim=-1)
            self.cos, self.sin = emb.cos(), emb.sin()  # (max_len, HD)

        def apply(self, x, pos0):
            T = x.shape[2]
            cos, sin = self.cos[pos0:pos0 + T], self.sin[pos0:pos0 + T]
            return x * cos + rotate_half(x) * sin

    max_len = max(cfg['seq'], args.prompt + args.new_tokens)
    rope = Rope(max_len)
    causal = torch.full((max_len, max_len), float('-inf')).triu(1)

    def attention(q, k, v, is_causal):
        # q: (B, NH, T, HD); k, v: (B, NKV, S, HD)
        if GROUPS > 1:
            k = k.repeat_interleave(GROUPS, dim=1)
            v = v.repeat_interleave(GROUPS, dim=1)
        if have_sdpa:
            return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal and q.shape[2] > 1)
        s = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(HD))
        if is_causal and q.shape[2] > 1:
            T, S = q.shape[2], k.shape[2]
            s = s + causal[S - T:S, :S]
        return torch.matmul(torch.softmax(s, dim=-1), v)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_layernorm = RMSNorm(H, cfg['eps'])
            self.q_proj = nn.Linear(H, NH * HD, bias=False)
            self.k_proj = nn.Linear(H, NKV * HD, bias=False)
            self.v_proj = nn.Linear(H, NKV * HD, bias=False)
            self.o_proj = nn.Linear(NH * HD, H, bias=False)
            self.post_attention_layernorm = RMSNorm(H, cfg['eps'])
            self.gate_proj = nn.Linear(H, I, bias=False)
            self.up_proj = nn.Linear(H, I, bias=False)
            self.down_proj = nn.Linear(I, H, bias=False)

        def forward(self, x, cache=None, pos0=0):
            B, T, _ = x.shape
            h = self.input_layernorm(x)
            q = self.q_proj(h).view(B, T, NH, HD).transpose(1, 2)
            k = self.k_proj(h).view(B, T, NKV, HD).transpose(1, 2)
            v = self.v_proj(h).view(B, T, NKV, HD).transpose(1, 2)
            q, k = rope.apply(q, pos0), rope.apply(k, pos0)
            if cache is not None:
                # Preallocated KV cache: (B, NKV, max_len, HD) each; write then read the prefix.
                kc, vc = cache
                kc[:, :, pos0:pos0 + T] = k
                vc[:, :, pos0:pos0 + T] = v
                k, v = kc[:, :, :pos0 + T], vc[:, :, :pos0 + T]
            a = attention(q, k, v, is_causal=True)
            x = x + self.o_proj(a.transpose(1, 2).reshape(B, T, NH * HD))
            h = self.post_attention_layernorm(x)
            return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))

    class Llama(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(V, H)
            self.layers = nn.ModuleList([Block() for _ in range(L)])
            self.norm = RMSNorm(H, cfg['eps'])
            self.lm_head = nn.Linear(H, V, bias=False)
            if cfg['tied']:
                self.lm_head.weight = self.embed_tokens.weight
            for mod in self.modules():
                if isinstance(mod, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(mod.weight, std=0.02)

        def forward(self, ids, caches=None, pos0=0, last_only=False):
            x = self.embed_tokens(ids)
            for i, layer in enumerate(self.layers):
                x = layer(x, None if caches is None else caches[i], pos0)
            x = self.norm(x)
            if last_only:
                x = x[:, -1:]
            return self.lm_head(x)

    model = Llama()
    n_total = sum(p.numel() for p in model.parameters())  # tied weight counted once
    n_flops = n_total - (0 if cfg['tied'] else model.embed_tokens.weight.numel())
    B, T = cfg['batch'], cfg['seq']
    g = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, V, (B, T + 1), generator=g)
    inp, tgt = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()
    log = lambda *a: print('[torch_peer]', *a, file=sys.stderr, flush=True)
    log(f'{name}: params {n_total:,} (N for FLOPs {n_flops:,}), B={B} T={T}, threads={torch.get_num_threads()}, '
        f'sdpa={have_sdpa}, tcmalloc={tcmalloc_loaded()}, OMP_WAIT_POLICY={os.environ.get("OMP_WAIT_POLICY")}')

    out = {
        'config': dict(name=name, **cfg),
        'threads': torch.get_num_threads(),
        'torch_version': torch.__version__,
        'params': n_total,
        'flop_params': n_flops,
        'tcmalloc': tcmalloc_loaded(),
        'omp_wait_policy': os.environ.get('OMP_WAIT_POLICY'),
        'sdpa': have_sdpa,
        'steps': steps,
        'warmup': warmup,
        'train_tokens_per_s': None,
        'forward_tokens_per_s': None,
        'decode_tokens_per_s': None,
        'train_gflops': None,
        'forward_gflops': None,
    }

    def timed(fn, n_warm, n):
        for _ in range(n_warm):
            fn()
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts), ts

    # Forward (no_grad, same batch, logits for every position as a training forward would).
    if 'forward' not in skip:
        model.eval()

        def fwd():
            with torch.no_grad():
                model(inp)
        med, ts = timed(fwd, max(1, min(warmup, 2)), fwd_steps)
        out['forward_tokens_per_s'] = B * T / med
        out['forward_gflops'] = 2 * n_flops * out['forward_tokens_per_s'] / 1e9
        out['forward_step_s'] = ts
        log(f'forward: {out["forward_tokens_per_s"]:.1f} tok/s ({out["forward_gflops"]:.1f} GFLOP/s), median {med*1e3:.1f} ms')

    # Decode: batch 1, preallocated KV cache, greedy; time the new tokens only (prefill reported apart).
    if 'decode' not in skip:
        model.eval()
        prompt = torch.randint(0, V, (1, args.prompt), generator=g)

        def generate():
            with torch.no_grad():
                caches = [(torch.zeros(1, NKV, max_len, HD), torch.zeros(1, NKV, max_len, HD)) for _ in range(L)]
                t0 = time.perf_counter()
                logits = model(prompt, caches, 0, last_only=True)
                tok = logits[:, -1].argmax(-1, keepdim=True)
                t1 = time.perf_counter()
                pos = args.prompt
                for _ in range(args.new_tokens):
                    logits = model(tok, caches, pos)
                    tok = logits[:, -1].argmax(-1, keepdim=True)
                    pos += 1
                t2 = time.perf_counter()
                return t1 - t0, t2 - t1
        generate()  # warmup
        runs = [generate() for _ in range(args.decode_runs)]
        dec = statistics.median(r[1] for r in runs)
        pre = statistics.median(r[0] for r in runs)
        out['decode_tokens_per_s'] = args.new_tokens / dec
        out['prefill_tokens_per_s'] = args.prompt / pre
        out['decode'] = dict(prompt=args.prompt, new_tokens=args.new_tokens, runs=args.decode_runs)
        log(f'decode: {out["decode_tokens_per_s"]:.2f} tok/s (prefill {out["prefill_tokens_per_s"]:.1f} tok/s)')

    # Training step: forward + cross-entropy + backward + AdamW.
    if 'train' not in skip:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)

        def step():
            logits = model(inp)
            loss = F.cross_entropy(logits.view(-1, V), tgt.view(-1))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss
        med, ts = timed(step, warmup, steps)
        out['train_tokens_per_s'] = B * T / med
        out['train_gflops'] = 6 * n_flops * out['train_tokens_per_s'] / 1e9
        out['train_step_s'] = ts
        log(f'train: {out["train_tokens_per_s"]:.1f} tok/s ({out["train_gflops"]:.1f} GFLOP/s), median {med*1e3:.0f} ms')

    out['peak_rss_bytes'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(out))


if __name__ == '__main__':
    main()
