"""Generates the golden fixtures in test/fixtures/<case>/ from the reference in hf_reference.py.

    /usr/bin/python3 scripts/reference/make_fixtures.py

Each case: a seeded random tiny float32 checkpoint (config.json + model.safetensors), and the
reference's logits / loss / gradient of every parameter (golden.safetensors + golden.json),
computed in float64 from the float32 weights and rounded to float32 for storage. Then
self-checks: finite differences vs autograd (float64), re-reading every written file, and a
full recomputation of each fixture from the files on disk.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys

import torch

sys.dont_write_bytecode = True  # keep scripts/reference free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_reference as ref  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "test", "fixtures")

ARCH = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}


def hf_config(model_type: str, **kw) -> dict:
    """A complete HF config.json dict for a tiny model."""
    c = {
        "architectures": [ARCH[model_type]],
        "model_type": model_type,
        "vocab_size": 64,
        "hidden_size": 32,
        "intermediate_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "hidden_act": "silu",
        "max_position_embeddings": 128,
        "initializer_range": 0.02,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "rope_scaling": None,
        "tie_word_embeddings": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "float32",
        "use_cache": True,
        "transformers_version": "4.46.0",
    }
    if model_type == "llama":
        c.update({"attention_bias": False, "mlp_bias": False, "pretraining_tp": 1})
    elif model_type == "mistral":
        c.update({"sliding_window": 4096})
    elif model_type == "qwen2":
        c.update({"use_sliding_window": False, "sliding_window": 4096, "max_window_layers": 28})
    c.update(kw)
    return c


CASES = [
    dict(name="llama_untied", seed=101, T=12,
         config=hf_config("llama", num_attention_heads=4, num_key_value_heads=4),
         description="LlamaForCausalLM, MHA (4 heads x head_dim 8), default RoPE theta 1e4, untied "
                     "lm_head, no biases."),
    dict(name="llama_tied_gqa", seed=102, T=12,
         config=hf_config("llama", num_attention_heads=4, num_key_value_heads=2,
                          tie_word_embeddings=True),
         description="LlamaForCausalLM, GQA 4 query / 2 kv heads (query head h uses kv head h // 2), "
                     "tie_word_embeddings: lm_head = embed_tokens (no lm_head.weight tensor; the "
                     "embed_tokens gradient sums both uses)."),
    dict(name="llama3_rope", seed=103, T=16,
         config=hf_config("llama", num_attention_heads=2, num_key_value_heads=1,
                          rope_theta=500000.0, max_position_embeddings=256, tie_word_embeddings=True,
                          rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                        "high_freq_factor": 4.0,
                                        "original_max_position_embeddings": 64}),
         description="LlamaForCausalLM, llama3 rope_scaling (factor 8, low_freq_factor 1, "
                     "high_freq_factor 4, original_max_position_embeddings 64), rope_theta 5e5, "
                     "head_dim 16 (2 heads, 1 kv head: MQA), tied. With these numbers the 8 frequencies "
                     "hit all three llama3 regimes: wavelength 6.28 < 16 kept, 32.4 in [16, 64] "
                     "smoothly interpolated, the other 6 (> 64) divided by 8. The scaling is a "
                     "fixed change of inv_freq and applies at every position, also below "
                     "original_max_position_embeddings."),
    dict(name="llama_linear_rope", seed=104, T=12,
         config=hf_config("llama", num_attention_heads=4, num_key_value_heads=1,
                          rope_scaling={"rope_type": "linear", "factor": 2.0},
                          attention_bias=True, tie_word_embeddings=True),
         description="LlamaForCausalLM, linear rope_scaling factor 2 (inv_freq / 2, i.e. positions "
                     "/ 2), MQA (4 heads, 1 kv head), attention_bias=true: Llama then has biases on "
                     "q_proj, k_proj, v_proj AND o_proj; tied embeddings."),
    dict(name="qwen2_bias", seed=105, T=12,
         config=hf_config("qwen2", num_attention_heads=4, num_key_value_heads=2,
                          tie_word_embeddings=True, rope_theta=1000000.0, rms_norm_eps=1e-6,
                          use_sliding_window=False, sliding_window=4, max_window_layers=1),
         description="Qwen2ForCausalLM: biases on q/k/v (not o_proj, not MLP), GQA 4/2, tied, "
                     "rope_theta 1e6, eps 1e-6. use_sliding_window=false, so the sliding_window=4 "
                     "in config.json must be IGNORED (Qwen2Config sets sliding_window=None): "
                     "full causal attention in every layer."),
    dict(name="mistral_window", seed=106, T=16,
         config=hf_config("mistral", num_attention_heads=4, num_key_value_heads=2, sliding_window=4,
                          tie_word_embeddings=True),
         description="MistralForCausalLM, sliding_window 4 in every layer with seq 16: key j is "
                     "visible to query i iff i - 4 < j <= i (each query sees itself and the 3 "
                     "previous tokens). GQA 4/2, tied, no biases."),
    dict(name="llama_head_dim", seed=107, T=12,
         config=hf_config("llama", hidden_size=48, num_attention_heads=4, num_key_value_heads=1,
                          head_dim=16, tie_word_embeddings=True),
         description="LlamaForCausalLM with explicit head_dim 16 while hidden_size / heads = 12: "
                     "q_proj [64, 48], k/v_proj [16, 48], o_proj [48, 64], RoPE over 16 dims "
                     "(inv_freq has 8 entries), scale 16 ** -0.5. MQA (4 heads, 1 kv head), tied."),
    dict(name="llama_packed", seed=108, T=16, docs=[[7, 9], [10, 6]],
         config=hf_config("llama", num_attention_heads=4, num_key_value_heads=2,
                          tie_word_embeddings=True),
         description="LlamaForCausalLM (GQA 4/2, tied) on packed rows: two documents per row "
                     "(lengths 7+9 and 10+6). position_ids restart at 0 for each document; "
                     "attention is causal AND block-diagonal (query i sees key j iff j <= i and "
                     "doc_ids[b][i] == doc_ids[b][j]). Loss = mean over targets that do not "
                     "cross a document boundary: targets[b][t] = ids[b][t+1] if "
                     "doc_ids[b][t+1] == doc_ids[b][t] else -100 (ignored)."),
]


def dump_json(obj) -> str:
    """Indented JSON with innermost number lists kept on one line."""
    text = json.dumps(obj, indent=1)
    text = re.sub(r"\[\s*(-?[0-9][^\[\]{}\"]*?)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)
    return text + "\n"


def init_params(cfg: ref.Config, seed: int) -> dict:
    """HF-like init with larger q/k weights and non-trivial norms/biases so everything matters."""
    g = torch.Generator().manual_seed(seed)

    def randn(shape, std, mean=0.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * std + mean).to(torch.float32)

    out = {}
    for name, shape in cfg.param_shapes().items():
        if name.endswith("norm.weight"):
            out[name] = randn(shape, 0.1, 1.0)
        elif name.endswith(".bias"):
            out[name] = randn(shape, 0.1)
        elif ".q_proj." in name or ".k_proj." in name:
            out[name] = randn(shape, 0.15)
        else:
            out[name] = randn(shape, 0.02)
    return out


def make_inputs(case: dict, V: int, B: int = 2):
    T = case["T"]
    g = torch.Generator().manual_seed(case["seed"] * 7 + 1)
    ids = torch.randint(0, V, (B, T), generator=g, dtype=torch.int64)
    if "docs" in case:
        pos = torch.zeros(B, T, dtype=torch.int64)
        doc = torch.zeros(B, T, dtype=torch.int64)
        for b, lens in enumerate(case["docs"]):
            assert sum(lens) == T
            t = 0
            for d, n in enumerate(lens):
                pos[b, t:t + n] = torch.arange(n)
                doc[b, t:t + n] = d
                t += n
        return ids, pos, doc
    return ids, None, None


def finite_difference_check(cfg, params, ids, pos, doc, grads, seed) -> float:
    """Central differences in float64 on a few elements of several tensors vs autograd."""
    p64 = {k: v.to(torch.float64) for k, v in params.items()}
    tg = ref.shift_targets(ids, doc)

    def loss_at():
        with torch.no_grad():
            return ref.causal_lm_loss(ref.forward(cfg, p64, ids, pos, doc), tg).item()

    g = torch.Generator().manual_seed(seed)
    names = sorted(p64)
    picks = [n for n in names if "norm" in n][:2] + [n for n in names if "q_proj" in n][:1] + \
            [n for n in names if "k_proj" in n][-1:] + [n for n in names if "v_proj" in n][:1] + \
            [n for n in names if "bias" in n][:2] + ["model.embed_tokens.weight"] + \
            [n for n in names if "down_proj" in n][-1:] + [n for n in names if "lm_head" in n]
    worst = 0.0
    eps = 1e-4
    for n in picks:
        flat = p64[n].view(-1)
        for _ in range(3):
            i = int(torch.randint(0, flat.numel(), (1,), generator=g))
            if n == "model.embed_tokens.weight":  # pick a row that is actually used
                row = int(ids.view(-1)[int(torch.randint(0, ids.numel(), (1,), generator=g))])
                i = row * p64[n].shape[1] + i % p64[n].shape[1]
            orig = flat[i].item()

            def central(h):
                flat[i] = orig + h
                fp = loss_at()
                flat[i] = orig - h
                fm = loss_at()
                flat[i] = orig
                return (fp - fm) / (2 * h)
            # Richardson extrapolation cancels the O(h^2) truncation term (the embeddings are
            # small, so the first RMSNorm makes the loss strongly curved in them).
            fd = (4 * central(eps / 2) - central(eps)) / 3
            ad = grads[n].view(-1)[i].item()
            # relative error with a floor: gradients here are ~1e-5..1e-2; float64 central
            # differences with eps 1e-4 are good to ~1e-10 absolute.
            worst = max(worst, abs(fd - ad) / max(abs(ad), 1e-4))
    return worst


def write_case(case: dict) -> dict:
    name = case["name"]
    d = os.path.join(OUT, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    cfgd = case["config"]
    cfg = ref.Config(cfgd)
    params = init_params(cfg, case["seed"])
    ids, pos, doc = make_inputs(case, cfg.vocab_size)
    B, T = ids.shape
    V = cfg.vocab_size

    logits, loss, grads = ref.logits_loss_grads(cfg, params, ids, pos, doc, torch.float64)
    targets = ref.shift_targets(ids, doc)
    pos_out = pos if pos is not None else torch.arange(T)[None].expand(B, T)
    doc_out = doc if doc is not None else torch.zeros(B, T, dtype=torch.int64)

    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfgd, f, indent=2)
        f.write("\n")
    ref.write_safetensors(os.path.join(d, "model.safetensors"), params, {"format": "pt"})

    golden = {
        "ids": ids.to(torch.int32),
        "targets": targets.to(torch.int32),
        "position_ids": pos_out.to(torch.int32).contiguous(),
        "doc_ids": doc_out.to(torch.int32).contiguous(),
        "logits": logits.to(torch.float32),
        "loss": loss.reshape(1).to(torch.float32),
    }
    for k, v in grads.items():
        golden["grad." + k] = v.to(torch.float32)
    ref.write_safetensors(os.path.join(d, "golden.safetensors"), golden, {"format": "pt"})

    n_targets = int((targets != -100).sum())
    gj = {
        "case": name,
        "description": case["description"],
        "architecture": cfgd["architectures"][0],
        "torch_version": torch.__version__,
        "reference": "scripts/reference/hf_reference.py (independent re-implementation of HF "
                     "transformers Llama/Mistral/Qwen2 semantics)",
        "compute_dtype": "float64 (from the float32 weights in model.safetensors; RoPE cos/sin "
                         "built in float32 as HF does), stored as float32",
        "shape": {"batch": B, "seq": T, "vocab": V},
        "packed": doc is not None,
        "ids": ids.tolist(),
        "position_ids": pos_out.tolist(),
        "doc_ids": doc_out.tolist(),
        "targets": targets.tolist(),
        "target_rule": "targets[b][t] = ids[b][t+1] for t in 0..T-2, or -100 (ignored) when "
                       "doc_ids[b][t+1] != doc_ids[b][t]; logits[b][t] predicts targets[b][t]; "
                       "logits at t = T-1 have no target",
        "num_targets": n_targets,
        "loss": loss.item(),
        "loss_rule": "mean over the num_targets non-ignored targets of "
                     "logsumexp(logits[b][t]) - logits[b][t][targets[b][t]]",
        "params": sorted(params),
        "shapes": {k: list(v.shape) for k, v in sorted(golden.items())},
        "golden_safetensors": {
            "ids": "I32 [B,T] token ids",
            "targets": "I32 [B,T-1] next-token targets, -100 = ignored",
            "position_ids": "I32 [B,T] RoPE positions (arange(T) unless packed)",
            "doc_ids": "I32 [B,T] document index per token (all 0 unless packed)",
            "logits": "F32 [B,T,V]",
            "loss": "F32 [1]",
            "grad.<name>": "F32, d loss / d <name> for every tensor in model.safetensors",
        },
    }
    with open(os.path.join(d, "golden.json"), "w") as f:
        f.write(dump_json(gj))

    # ---- self-checks ----
    # 1) re-read the files and compare bit for bit with what was written
    rp, meta = ref.read_safetensors(os.path.join(d, "model.safetensors"))
    assert meta == {"format": "pt"}, meta
    assert set(rp) == set(params)
    for k in params:
        assert rp[k].dtype == torch.float32 and torch.equal(rp[k], params[k]), k
    rg, _ = ref.read_safetensors(os.path.join(d, "golden.safetensors"))
    assert set(rg) == set(golden)
    for k in golden:
        assert rg[k].dtype == golden[k].dtype and torch.equal(rg[k], golden[k]), k
    with open(os.path.join(d, "model.safetensors"), "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        assert (8 + n) % 8 == 0
    # 2) recompute from the files on disk (config.json + model.safetensors + golden ids)
    dev = ref.check_fixture(d)
    assert dev == 0.0, f"{name}: recomputation from disk deviates by {dev}"
    # 3) finite differences vs autograd (float64)
    fd = finite_difference_check(cfg, params, ids, pos, doc, grads, case["seed"])
    assert fd < 1e-6, f"{name}: finite-difference mismatch {fd}"
    # 4) sanity: every gradient tensor is nonzero (every parameter matters)
    for k, v in grads.items():
        assert v.abs().max() > 0, f"{name}: zero gradient for {k}"

    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f"{name:18s} loss={loss.item():.6f} targets={n_targets:3d} params={len(params):2d} "
          f"bytes={size:7d}  reread ok, recompute ok, finite-diff ok (max rel err {fd:.1e})")
    return {"name": name, "bytes": size}


def semantic_checks() -> None:
    """Small independent checks of pieces whose HF behaviour is easy to get subtly wrong."""
    # sliding window: i - w < j <= i
    m = ref.attention_mask(6, 3, None, 1)[0, 0]
    for i in range(6):
        for j in range(6):
            assert bool(m[i, j]) == (j <= i and j > i - 3)
    # packed rows reduce exactly to separate sequences
    case = next(c for c in CASES if c["name"] == "llama_packed")
    cfg = ref.Config(case["config"])
    p = {k: v.to(torch.float64) for k, v in init_params(cfg, case["seed"]).items()}
    ids, pos, doc = make_inputs(case, cfg.vocab_size)
    with torch.no_grad():
        full = ref.forward(cfg, p, ids, pos, doc)
        for b, lens in enumerate(case["docs"]):
            t = 0
            for n in lens:
                sep = ref.forward(cfg, p, ids[b:b + 1, t:t + n])
                assert torch.allclose(sep[0], full[b, t:t + n], rtol=0, atol=1e-12)
                t += n
    # GQA via repeat_kv equals MHA with duplicated k/v weights
    cfg_g = ref.Config(hf_config("llama", num_attention_heads=4, num_key_value_heads=2))
    cfg_m = ref.Config(hf_config("llama", num_attention_heads=4, num_key_value_heads=4))
    pg = {k: v.to(torch.float64) for k, v in init_params(cfg_g, 5).items()}
    pm = dict(pg)
    for l in range(2):
        for w in ("k_proj", "v_proj"):
            k = f"model.layers.{l}.self_attn.{w}.weight"
            pm[k] = pg[k].view(2, 8, 32).repeat_interleave(2, dim=0).reshape(32, 32)
    ids2 = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(ref.forward(cfg_g, pg, ids2), ref.forward(cfg_m, pm, ids2), atol=1e-12)
    # llama3 regimes for the llama3_rope case
    c3 = ref.Config(next(c for c in CASES if c["name"] == "llama3_rope")["config"])
    inv3, _ = ref.rope_inv_freq(c3)
    base = ref.rope_inv_freq(ref.Config({**c3.raw, "rope_scaling": None}))[0]
    ratio = (base / inv3).tolist()
    assert abs(ratio[0] - 1) < 1e-6 and 1.05 < ratio[1] < 7.95 and all(abs(r - 8) < 1e-5 for r in ratio[2:]), ratio
    print("semantic checks ok (sliding window, packing = separate sequences, GQA = repeated kv, llama3 regimes)")


def main() -> None:
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    semantic_checks()
    total = 0
    for case in CASES:
        total += write_case(case)["bytes"]
    print(f"total fixture bytes: {total}")
    assert total < 1_000_000, "fixtures exceed 1 MB"
    print("all ok")


if __name__ == "__main__":
    main()
