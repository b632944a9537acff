"""Independent plain-PyTorch reference of Hugging Face decoder LLM forward semantics.

Covers LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM as written in current
`transformers` (modeling_llama.py / modeling_mistral.py / modeling_qwen2.py,
modeling_rope_utils.py, masking_utils.py). `transformers` cannot be installed here, so this
is a re-implementation written from reading that source; gradients come from autograd.

Run with Debian's torch: /usr/bin/python3 (PyTorch 1.13). No third-party packages besides
torch/numpy: safetensors files are read and written with struct + json.

Usage as a tool:
    /usr/bin/python3 scripts/reference/hf_reference.py check test/fixtures/<case>
recomputes a fixture's golden values from its config.json + model.safetensors and compares.
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

# --------------------------------------------------------------------------------------------
# safetensors (tiny reader/writer)
# --------------------------------------------------------------------------------------------

_ST_DTYPES = {
    "F64": (np.float64, torch.float64),
    "F32": (np.float32, torch.float32),
    "F16": (np.float16, torch.float16),
    "I64": (np.int64, torch.int64),
    "I32": (np.int32, torch.int32),
    "I16": (np.int16, torch.int16),
    "I8": (np.int8, torch.int8),
    "U8": (np.uint8, torch.uint8),
}
_TORCH_TO_ST = {v[1]: k for k, v in _ST_DTYPES.items()}


def write_safetensors(path: str, tensors: Dict[str, torch.Tensor],
                      metadata: Optional[Dict[str, str]] = None) -> None:
    """Writes `tensors` (name -> tensor) as a safetensors file.

    Layout: 8-byte little-endian header length N, N bytes of JSON header (padded with spaces
    so the data section starts at a multiple of 8), then the raw little-endian tensor bytes,
    tensors laid out contiguously in sorted-name order.
    """
    header: Dict[str, object] = {"__metadata__": dict(metadata or {"format": "pt"})}
    blobs: List[bytes] = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _TORCH_TO_ST:
            raise ValueError(f"unsupported dtype {t.dtype} for {name}")
        data = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {
            "dtype": _TORCH_TO_ST[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def read_safetensors(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """Reads a safetensors file into (name -> torch tensor, metadata). Validates offsets."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    base = 8 + n
    meta = header.pop("__metadata__", {}) or {}
    out: Dict[str, torch.Tensor] = {}
    spans = []
    for name, info in header.items():
        npdt, _ = _ST_DTYPES[info["dtype"]]
        start, end = info["data_offsets"]
        count = int(np.prod(info["shape"])) if info["shape"] else 1
        if end - start != count * np.dtype(npdt).itemsize:
            raise ValueError(f"{path}: {name} byte length does not match shape/dtype")
        arr = np.frombuffer(raw, dtype=np.dtype(npdt).newbyteorder("<"), count=count,
                            offset=base + start).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.astype(npdt, copy=True))
        spans.append((start, end))
    spans.sort()
    pos = 0
    for s, e in spans:
        if s != pos:
            raise ValueError(f"{path}: data section has a gap or overlap at {s}")
        pos = e
    if base + pos != len(raw):
        raise ValueError(f"{path}: trailing bytes after the data section")
    return out, meta


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------

class Config:
    """The subset of an HF config.json this reference understands, normalized."""

    def __init__(self, d: dict):
        self.raw = d
        self.model_type = d.get("model_type", "llama")
        if self.model_type not in ("llama", "mistral", "qwen2"):
            raise ValueError(f"unsupported model_type {self.model_type}")
        self.vocab_size = int(d["vocab_size"])
        self.hidden_size = int(d["hidden_size"])
        self.intermediate_size = int(d["intermediate_size"])
        self.num_hidden_layers = int(d["num_hidden_layers"])
        self.num_attention_heads = int(d["num_attention_heads"])
        kv = d.get("num_key_value_heads")
        self.num_key_value_heads = int(kv if kv is not None else self.num_attention_heads)
        # All three models: head_dim = config.head_dim if set (and truthy) else hidden // heads.
        self.head_dim = int(d.get("head_dim") or self.hidden_size // self.num_attention_heads)
        self.rms_norm_eps = float(d.get("rms_norm_eps", 1e-6))
        self.rope_theta = float(d.get("rope_theta", 10000.0))
        self.rope_scaling = d.get("rope_scaling")
        self.max_position_embeddings = int(d.get("max_position_embeddings", 2048))
        self.tie_word_embeddings = bool(d.get("tie_word_embeddings", False))
        self.hidden_act = d.get("hidden_act", "silu")
        if self.hidden_act != "silu":
            raise ValueError("only silu (SwiGLU) MLPs are supported")
        if float(d.get("partial_rotary_factor", 1.0)) != 1.0:
            raise ValueError("partial_rotary_factor != 1 is not supported")
        # Biases per architecture.
        if self.model_type == "llama":
            ab = bool(d.get("attention_bias", False))
            self.qkv_bias, self.o_bias = ab, ab           # Llama: attention_bias covers o_proj too
            self.mlp_bias = bool(d.get("mlp_bias", False))
        elif self.model_type == "qwen2":
            self.qkv_bias, self.o_bias, self.mlp_bias = True, False, False
        else:  # mistral
            self.qkv_bias, self.o_bias, self.mlp_bias = False, False, False
        # Sliding window, per layer (None = full causal attention).
        sw = d.get("sliding_window")
        if self.model_type == "mistral":
            # Mistral: sliding_window (if not null) applies to every layer.
            self.layer_windows = [int(sw) if sw is not None else None] * self.num_hidden_layers
        elif self.model_type == "qwen2":
            # Qwen2Config: sliding_window = sliding_window if use_sliding_window else None; then
            # layer i is "sliding_attention" iff sliding_window is not None and i >= max_window_layers
            # (an explicit layer_types list wins).
            eff = sw if d.get("use_sliding_window", False) else None
            lt = d.get("layer_types")
            if lt is None:
                mwl = int(d.get("max_window_layers", 28))
                lt = ["sliding_attention" if eff is not None and i >= mwl else "full_attention"
                      for i in range(self.num_hidden_layers)]
            self.layer_windows = [int(eff) if (t == "sliding_attention" and eff is not None) else None
                                  for t in lt]
        else:
            self.layer_windows = [None] * self.num_hidden_layers

    def param_shapes(self) -> Dict[str, List[int]]:
        """HF tensor names -> shapes, exactly the tensors a checkpoint holds."""
        h, i, v = self.hidden_size, self.intermediate_size, self.vocab_size
        qd = self.num_attention_heads * self.head_dim
        kvd = self.num_key_value_heads * self.head_dim
        s: Dict[str, List[int]] = {"model.embed_tokens.weight": [v, h]}
        for l in range(self.num_hidden_layers):
            p = f"model.layers.{l}."
            s[p + "input_layernorm.weight"] = [h]
            s[p + "self_attn.q_proj.weight"] = [qd, h]
            s[p + "self_attn.k_proj.weight"] = [kvd, h]
            s[p + "self_attn.v_proj.weight"] = [kvd, h]
            s[p + "self_attn.o_proj.weight"] = [h, qd]
            if self.qkv_bias:
                s[p + "self_attn.q_proj.bias"] = [qd]
                s[p + "self_attn.k_proj.bias"] = [kvd]
                s[p + "self_attn.v_proj.bias"] = [kvd]
            if self.o_bias:
                s[p + "self_attn.o_proj.bias"] = [h]
            s[p + "post_attention_layernorm.weight"] = [h]
            s[p + "mlp.gate_proj.weight"] = [i, h]
            s[p + "mlp.up_proj.weight"] = [i, h]
            s[p + "mlp.down_proj.weight"] = [h, i]
            if self.mlp_bias:
                s[p + "mlp.gate_proj.bias"] = [i]
                s[p + "mlp.up_proj.bias"] = [i]
                s[p + "mlp.down_proj.bias"] = [h]
        s["model.norm.weight"] = [h]
        if not self.tie_word_embeddings:
            s["lm_head.weight"] = [v, h]
        return s


# --------------------------------------------------------------------------------------------
# RoPE (modeling_rope_utils.py + <Model>RotaryEmbedding.forward)
# --------------------------------------------------------------------------------------------

def rope_inv_freq(cfg: Config) -> Tuple[torch.Tensor, float]:
    """inv_freq (float32, length head_dim/2) and attention_scaling, as HF computes them.

    HF computes all of this in float32 (the exponent is int64 arange cast to float32), and the
    model's rotary forward re-casts inv_freq to float32 even for float64 models.
    """
    dim = cfg.head_dim
    base = cfg.rope_theta
    exps = torch.arange(0, dim, 2, dtype=torch.int64).to(torch.float32) / dim
    # `python float ** float32 tensor` stays float32, exactly as in HF.
    inv_freq = 1.0 / (base ** exps)
    assert inv_freq.dtype == torch.float32
    attention_scaling = 1.0
    rs = cfg.rope_scaling
    if rs is None:
        return inv_freq, attention_scaling
    rope_type = rs.get("rope_type", rs.get("type", "default"))
    if rope_type == "default":
        return inv_freq, attention_scaling
    if rope_type == "linear":
        # Linear ("position interpolation"): inv_freq / factor (== positions / factor).
        return inv_freq / float(rs["factor"]), attention_scaling
    if rope_type == "llama3":
        factor = float(rs["factor"])
        low_ff = float(rs["low_freq_factor"])
        high_ff = float(rs["high_freq_factor"])
        old_ctx = float(rs["original_max_position_embeddings"])
        low_freq_wavelen = old_ctx / low_ff
        high_freq_wavelen = old_ctx / high_ff
        wavelen = 2 * math.pi / inv_freq                       # float32 tensor
        # long wavelengths (low frequency): divide by factor; short ones: unchanged
        scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
        # in between: smooth interpolation
        smooth = (old_ctx / wavelen - low_ff) / (high_ff - low_ff)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
        out = torch.where(medium, smoothed, scaled)
        assert out.dtype == torch.float32
        return out, attention_scaling
    raise ValueError(f"unsupported rope_type {rope_type}")


def rope_cos_sin(cfg: Config, position_ids: torch.Tensor, dtype: torch.dtype
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [B, T, head_dim] for integer position_ids [B, T].

    As HF: freqs = positions(float32) * inv_freq(float32) in float32, emb = cat(freqs, freqs),
    cos/sin evaluated in float32 (times attention_scaling), then cast to the activation dtype.
    """
    inv_freq, scaling = rope_inv_freq(cfg)
    pos = position_ids.to(torch.float32)
    freqs = pos[:, :, None] * inv_freq[None, None, :]           # [B, T, dim/2], float32
    emb = torch.cat((freqs, freqs), dim=-1)
    cos = emb.cos() * scaling
    sin = emb.sin() * scaling
    return cos.to(dtype), sin.to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------

def rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    # HF: weight * (x * rsqrt(mean(x^2) + eps)); the normalization runs in (at least) float32
    # and the result is cast back to the input dtype before multiplying by the weight.
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def attention_mask(T: int, window: Optional[int], doc_ids: Optional[torch.Tensor], B: int
                   ) -> torch.Tensor:
    """Boolean [B, 1, T, T] mask: True where key j is visible to query i.

    causal: j <= i; sliding window (masking_utils.sliding_window_overlay): j > i - window;
    packed documents: doc_ids[b, i] == doc_ids[b, j] (block-diagonal).
    """
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    m = j <= i
    if window is not None:
        m = m & (j > i - window)
    m = m[None, None].expand(B, 1, T, T)
    if doc_ids is not None:
        same = doc_ids[:, None, :, None] == doc_ids[:, None, None, :]
        m = m & same
    return m


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """[B, kvH, T, D] -> [B, kvH * n_rep, T, D]; query head h uses kv head h // n_rep."""
    if n_rep == 1:
        return x
    b, kvh, t, d = x.shape
    return x[:, :, None].expand(b, kvh, n_rep, t, d).reshape(b, kvh * n_rep, t, d)


def _linear(x, p, name, bias: bool):
    y = x @ p[name + ".weight"].transpose(0, 1)
    if bias:
        y = y + p[name + ".bias"]
    return y


def forward(cfg: Config, params: Dict[str, torch.Tensor], ids: torch.Tensor,
            position_ids: Optional[torch.Tensor] = None,
            doc_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Logits [B, T, V] in the dtype of `params`.

    ids: int64 [B, T]. position_ids: int [B, T] (default arange(T) per row). doc_ids: int [B, T]
    document id per token for packed rows (block-diagonal causal attention).
    """
    B, T = ids.shape
    dtype = params["model.embed_tokens.weight"].dtype
    if position_ids is None:
        position_ids = torch.arange(T, dtype=torch.int64)[None].expand(B, T)
    H, KV, D = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    cos, sin = rope_cos_sin(cfg, position_ids, dtype)
    cos, sin = cos[:, None], sin[:, None]                          # [B, 1, T, D]
    masks = {w: attention_mask(T, w, doc_ids, B) for w in set(cfg.layer_windows)}
    neg = torch.finfo(dtype).min
    scale = D ** -0.5

    x = params["model.embed_tokens.weight"][ids]                    # [B, T, h]
    for l in range(cfg.num_hidden_layers):
        p = f"model.layers.{l}."
        # --- attention block ---
        hs = rms_norm(x, params[p + "input_layernorm.weight"], cfg.rms_norm_eps)
        q = _linear(hs, params, p + "self_attn.q_proj", cfg.qkv_bias)
        k = _linear(hs, params, p + "self_attn.k_proj", cfg.qkv_bias)
        v = _linear(hs, params, p + "self_attn.v_proj", cfg.qkv_bias)
        q = q.view(B, T, H, D).transpose(1, 2)                      # [B, H, T, D]
        k = k.view(B, T, KV, D).transpose(1, 2)
        v = v.view(B, T, KV, D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = repeat_kv(k, H // KV)
        v = repeat_kv(v, H // KV)
        scores = (q @ k.transpose(2, 3)) * scale                    # [B, H, T, T]
        m = masks[cfg.layer_windows[l]]
        # HF adds an additive mask of finfo.min; masked entries get exactly zero weight.
        scores = scores.masked_fill(~m, neg)
        probs = torch.softmax(scores, dim=-1)
        a = (probs @ v).transpose(1, 2).reshape(B, T, H * D)
        x = x + _linear(a, params, p + "self_attn.o_proj", cfg.o_bias)
        # --- MLP block ---
        hs = rms_norm(x, params[p + "post_attention_layernorm.weight"], cfg.rms_norm_eps)
        g = _linear(hs, params, p + "mlp.gate_proj", cfg.mlp_bias)
        u = _linear(hs, params, p + "mlp.up_proj", cfg.mlp_bias)
        x = x + _linear(torch.nn.functional.silu(g) * u, params, p + "mlp.down_proj", cfg.mlp_bias)
    x = rms_norm(x, params["model.norm.weight"], cfg.rms_norm_eps)
    head = params["model.embed_tokens.weight"] if cfg.tie_word_embeddings else params["lm_head.weight"]
    return x @ head.transpose(0, 1)


def shift_targets(ids: torch.Tensor, doc_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
    """targets[b, t] = ids[b, t+1] for t in [0, T-1), or -100 where t and t+1 are in different
    documents (doc_ids given). Shape [B, T-1], int64."""
    tg = ids[:, 1:].clone()
    if doc_ids is not None:
        tg[doc_ids[:, 1:] != doc_ids[:, :-1]] = -100
    return tg


def causal_lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """HF ForCausalLMLoss: mean cross entropy of logits[:, :-1] vs targets, ignoring -100."""
    V = logits.shape[-1]
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, V), targets.reshape(-1), ignore_index=-100, reduction="mean")


def logits_loss_grads(cfg: Config, params: Dict[str, torch.Tensor], ids: torch.Tensor,
                      position_ids=None, doc_ids=None, dtype=torch.float64):
    """Returns (logits, loss, grads) computed in `dtype`; grads keyed by the HF tensor name."""
    p = {k: v.detach().to(dtype).clone().requires_grad_(True) for k, v in params.items()}
    logits = forward(cfg, p, ids, position_ids, doc_ids)
    loss = causal_lm_loss(logits, shift_targets(ids, doc_ids))
    loss.backward()
    grads = {k: v.grad.detach().clone() for k, v in p.items()}
    return logits.detach(), loss.detach(), grads


def load_checkpoint(d: str) -> Tuple[Config, Dict[str, torch.Tensor]]:
    with open(os.path.join(d, "config.json")) as f:
        cfg = Config(json.load(f))
    params, _ = read_safetensors(os.path.join(d, "model.safetensors"))
    shapes = cfg.param_shapes()
    if set(params) != set(shapes):
        raise ValueError(f"tensor names differ from config: {sorted(set(params) ^ set(shapes))}")
    for k, s in shapes.items():
        if list(params[k].shape) != s:
            raise ValueError(f"{k}: shape {list(params[k].shape)} != {s}")
    return cfg, params


def check_fixture(d: str) -> float:
    """Recompute a fixture from its files and return the max abs deviation from the golden."""
    cfg, params = load_checkpoint(d)
    g, _ = read_safetensors(os.path.join(d, "golden.safetensors"))
    with open(os.path.join(d, "golden.json")) as f:
        gj = json.load(f)
    ids = g["ids"].to(torch.int64)
    pos = torch.tensor(gj["position_ids"], dtype=torch.int64) if gj.get("position_ids") else None
    doc = torch.tensor(gj["doc_ids"], dtype=torch.int64) if gj.get("doc_ids") else None
    logits, loss, grads = logits_loss_grads(cfg, params, ids, pos, doc)
    dev = (logits.float() - g["logits"]).abs().max().item()
    dev = max(dev, abs(loss.float().item() - g["loss"].item()))
    for k, v in grads.items():
        dev = max(dev, (v.float() - g["grad." + k]).abs().max().item())
    return dev


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "check":
        worst = 0.0
        for d in sys.argv[2:]:
            dev = check_fixture(d)
            worst = max(worst, dev)
            print(f"{d}: max |recomputed - golden| = {dev:.3g}")
        sys.exit(0 if worst == 0.0 else 1)
    print(__doc__)
