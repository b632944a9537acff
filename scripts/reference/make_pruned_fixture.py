"""Golden fixtures for `kompresor prune`: pruned checkpoints checked by the independent reference.

    /usr/bin/python3 scripts/reference/make_pruned_fixture.py

For each case below: seeded synthetic importance scores are written to
test/fixtures_pruned/<case>/scores.json; OUR pruner (`node --import tsx src/cli/run.ts prune`) prunes
the golden fixture test/fixtures/<source> with them into test/fixtures_pruned/<case>/model/; then,
independently of the TypeScript code:
  1. the pruned folder is loaded the way transformers would load it (hf_reference.load_checkpoint:
     config.json -> tensor names and shapes, explicit head_dim) -- a checkpoint that needs any
     change to load fails here;
  2. every pruned tensor is compared bit for bit with a slicing of the source tensors written
     here from the spec's table (../shared/specs/minitron.md section 2), not from apply.ts;
  3. the reference forward (float64 from the stored float32 weights) gives the golden logits,
     stored in golden.safetensors.
test/parity/pruned_golden.test.ts re-prunes from scores.json, requires byte-identical files, and
compares the engine's logits on the pruned model with these.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import torch

sys.dont_write_bytecode = True  # keep scripts/reference free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_reference as ref  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SOURCES = os.path.join(ROOT, "test", "fixtures")
OUT = os.path.join(ROOT, "test", "fixtures_pruned")

CASES = [
    dict(name="qwen2_bias_all_axes", source="qwen2_bias", seed=301, depth="importance",
         target="num_hidden_layers=1,hidden_size=24,num_attention_heads=2,intermediate_size=12",
         description="Qwen2 (GQA 4/2, tied, q/k/v biases) pruned on all four axes: 2 -> 1 layers "
                     "(lowest Block Importance dropped), hidden 32 -> 24, heads 4 -> 2 (one per KV "
                     "group; q bias rows follow the heads, k/v untouched), MLP 16 -> 12."),
    dict(name="llama_untied_depth_width", source="llama_untied", seed=302, depth="contiguous",
         target="num_hidden_layers=1,hidden_size=20,intermediate_size=10",
         description="Llama MHA (4/4, heads cannot be pruned), untied lm_head (columns sliced like "
                     "the embedding): 2 -> 1 layers (contiguous), hidden 32 -> 20, MLP 16 -> 10."),
    dict(name="llama_linear_rope_heads", source="llama_linear_rope", seed=303, depth="importance",
         target="num_attention_heads=2,hidden_size=24,intermediate_size=12",
         description="Llama MQA (4/1) with attention_bias (q/k/v AND o_proj biases; o bias sliced "
                     "to Hk), linear RoPE: heads 4 -> 2, hidden 32 -> 24, MLP 16 -> 12; "
                     "head_dim 8 stays, so hidden/heads = 12 != head_dim."),
    dict(name="llama_head_dim_heads", source="llama_head_dim", seed=304, depth="importance",
         target="num_attention_heads=3,hidden_size=40",
         description="Llama MQA (4/1) with explicit head_dim 16 != hidden/heads: heads 4 -> 3, "
                     "hidden 48 -> 40 (head_dim 16 kept, written explicitly)."),
]


def synthetic_scores(cfg: ref.Config, seed: int) -> dict:
    """Scores on a 0.05 grid, so ties occur and the tie rule (lower index first) is exercised."""
    g = torch.Generator().manual_seed(seed)

    def vec(n):
        return [round(float(x) * 20) / 20 for x in torch.rand(n, generator=g, dtype=torch.float64)]

    L = cfg.num_hidden_layers
    return {
        "format": "kompresor-importance", "version": 1,
        "model": {
            "architecture": cfg.raw["architectures"][0], "hidden_size": cfg.hidden_size,
            "num_hidden_layers": L, "num_attention_heads": cfg.num_attention_heads,
            "num_key_value_heads": cfg.num_key_value_heads, "head_dim": cfg.head_dim,
            "intermediate_size": cfg.intermediate_size, "vocab_size": cfg.vocab_size,
            "tie_word_embeddings": cfg.tie_word_embeddings,
        },
        "calibration": {"files": ["synthetic"], "samples": 0, "seq_len": 0, "tokens": 0,
                        "mode": "memory", "seconds": 0},
        "hidden": vec(cfg.hidden_size),
        "heads": [vec(cfg.num_attention_heads) for _ in range(L)],
        "mlp": [vec(cfg.intermediate_size) for _ in range(L)],
        "layers": vec(L),
    }


# ---- the slicing table, written independently of src/prune/ -----------------------------------

def keep_top(s, k):
    """Top-k indices in importance order (stable sort: ties keep the lower index first); all
    indices in their original order when nothing is pruned."""
    if k == len(s):
        return list(range(len(s)))
    return sorted(range(len(s)), key=lambda i: -s[i])[:k]


def kept_layers(bi, k, mode):
    L = len(bi)
    if k == L:
        return list(range(L))
    if mode == "importance":
        return sorted(keep_top(bi, k))
    drop = L - k
    sums = [sum(bi[s:s + drop]) for s in range(L - drop + 1)]
    start = sums.index(min(sums))            # the earliest block on ties
    return [l for l in range(L) if l < start or l >= start + drop]


def reference_slice(src_cfg, src, scores, new_cfg, depth):
    """name -> tensor of the pruned checkpoint, from the source tensors and the scores."""
    layers = kept_layers(scores["layers"], new_cfg.num_hidden_layers, depth)
    hk = torch.tensor(keep_top(scores["hidden"], new_cfg.hidden_size))
    kv, d = src_cfg.num_key_value_heads, src_cfg.head_dim
    hpg = src_cfg.num_attention_heads // kv
    keep_per_group = new_cfg.num_attention_heads // kv
    out = {"model.embed_tokens.weight": src["model.embed_tokens.weight"][:, hk],
           "model.norm.weight": src["model.norm.weight"][hk]}
    if not new_cfg.tie_word_embeddings:
        out["lm_head.weight"] = src["lm_head.weight"][:, hk]
    for new, old in enumerate(layers):
        p, q = f"model.layers.{old}.", f"model.layers.{new}."
        heads = []
        for g in range(kv):              # groups in order, heads ranked inside each group
            group = scores["heads"][old][g * hpg:(g + 1) * hpg]
            heads += [g * hpg + i for i in keep_top(group, keep_per_group)]
        qrows = torch.tensor([h * d + i for h in heads for i in range(d)])
        fk = torch.tensor(keep_top(scores["mlp"][old], new_cfg.intermediate_size))
        out[q + "input_layernorm.weight"] = src[p + "input_layernorm.weight"][hk]
        out[q + "post_attention_layernorm.weight"] = src[p + "post_attention_layernorm.weight"][hk]
        out[q + "self_attn.q_proj.weight"] = src[p + "self_attn.q_proj.weight"][qrows][:, hk]
        out[q + "self_attn.k_proj.weight"] = src[p + "self_attn.k_proj.weight"][:, hk]
        out[q + "self_attn.v_proj.weight"] = src[p + "self_attn.v_proj.weight"][:, hk]
        out[q + "self_attn.o_proj.weight"] = src[p + "self_attn.o_proj.weight"][hk][:, qrows]
        if src_cfg.qkv_bias:
            out[q + "self_attn.q_proj.bias"] = src[p + "self_attn.q_proj.bias"][qrows]
            out[q + "self_attn.k_proj.bias"] = src[p + "self_attn.k_proj.bias"]
            out[q + "self_attn.v_proj.bias"] = src[p + "self_attn.v_proj.bias"]
        if src_cfg.o_bias:
            out[q + "self_attn.o_proj.bias"] = src[p + "self_attn.o_proj.bias"][hk]
        out[q + "mlp.gate_proj.weight"] = src[p + "mlp.gate_proj.weight"][fk][:, hk]
        out[q + "mlp.up_proj.weight"] = src[p + "mlp.up_proj.weight"][fk][:, hk]
        out[q + "mlp.down_proj.weight"] = src[p + "mlp.down_proj.weight"][hk][:, fk]
    return out


# ---- one case ------------------------------------------------------------------------------------

def run_pruner(src_dir, scores_path, out_dir, target, depth):
    cmd = ["node", "--import", "tsx", "src/cli/run.ts", "prune", os.path.relpath(src_dir, ROOT),
           "--scores", os.path.relpath(scores_path, ROOT), "--out", os.path.relpath(out_dir, ROOT),
           "--target", target, "--depth", depth, "--json", "--no-report"]   # the committed folder: checkpoint files only
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    return json.loads(r.stdout)


def write_case(case: dict) -> int:
    d = os.path.join(OUT, case["name"])
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    src_dir = os.path.join(SOURCES, case["source"])
    src_cfg, src = ref.load_checkpoint(src_dir)
    scores = synthetic_scores(src_cfg, case["seed"])
    scores_path = os.path.join(d, "scores.json")
    with open(scores_path, "w") as f:
        json.dump(scores, f)
        f.write("\n")
    model_dir = os.path.join(d, "model")
    report = run_pruner(src_dir, scores_path, model_dir, case["target"], case["depth"])

    # 1) loads as HF would: names and shapes from config.json alone
    cfg, params = ref.load_checkpoint(model_dir)
    with open(os.path.join(model_dir, "config.json")) as f:
        new_raw = json.load(f)
    for k, v in src_cfg.raw.items():   # everything but the pruned sizes is preserved
        if k not in ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size"):
            assert new_raw[k] == v, f"{case['name']}: config {k} changed: {v} -> {new_raw[k]}"
    assert new_raw["head_dim"] == src_cfg.head_dim and new_raw["num_key_value_heads"] == src_cfg.num_key_value_heads
    # 2) the tensors equal an independent slicing of the source
    want = reference_slice(src_cfg, src, scores, cfg, case["depth"])
    assert set(want) == set(params), sorted(set(want) ^ set(params))
    for k in want:
        assert params[k].dtype == torch.float32 and torch.equal(params[k], want[k].contiguous()), k
    n_params = sum(t.numel() for t in params.values())
    assert n_params == report["params"]["after"]["total"], (n_params, report["params"]["after"])
    # 3) golden logits of the pruned model
    g = torch.Generator().manual_seed(case["seed"] * 7 + 1)
    ids = torch.randint(0, cfg.vocab_size, (2, 12), generator=g, dtype=torch.int64)
    with torch.no_grad():
        logits = ref.forward(cfg, {k: v.to(torch.float64) for k, v in params.items()}, ids)
    ref.write_safetensors(os.path.join(d, "golden.safetensors"),
                          {"ids": ids.to(torch.int32), "logits": logits.to(torch.float32)},
                          {"format": "pt"})
    gj = {
        "case": case["name"], "description": case["description"], "source": case["source"],
        "target": case["target"], "depth": case["depth"],
        "command": f"kompresor prune test/fixtures/{case['source']} --scores scores.json "
                   f"--out model --target {case['target']} --depth {case['depth']}",
        "torch_version": torch.__version__,
        "reference": "scripts/reference/hf_reference.py forward in float64 from the pruned float32 "
                     "weights, stored as float32",
        "checks": ["loads by config.json alone (names, shapes, explicit head_dim)",
                   "every tensor equals an independent slicing of the source (bit for bit)",
                   "parameter count equals prune_report.json params.after.total"],
        "kept_layers": report["axes"]["num_hidden_layers"]["kept"],
        "params": {"before": report["params"]["before"]["total"],
                   "after": report["params"]["after"]["total"]},
        "ids": ids.tolist(),
        "shapes": {"ids": list(ids.shape), "logits": list(logits.shape)},
    }
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(gj, f, indent=1)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)
    print(f"{case['name']:26s} params {gj['params']['before']:6d} -> {gj['params']['after']:6d} "
          f"bytes={size:6d}  loads ok, slicing = independent reference, logits stored")
    return size


def main() -> None:
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    total = sum(write_case(c) for c in CASES)
    print(f"total bytes: {total}")
    assert total < 200_000, "pruned fixtures exceed 200 KB"
    print("all ok")


if __name__ == "__main__":
    main()
