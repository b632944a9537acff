// config.json normalisation (real model configs, trimmed to the keys that matter), refusals with
// their messages, RoPE tables against independent float64 formulas, and exact parameter counts.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { KompresorError } from '../../src/errors.ts';
import { normalizeConfig, ropeTables, ropeInvFreq, paramCount, countIn, type ModelConfig } from '../../src/io/hf_config.ts';
import { relErr, throwsWith } from '../helpers.ts';

// HuggingFaceTB/SmolLM2-135M
const SMOLLM2 = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 49152, hidden_size: 576, num_hidden_layers: 30,
  num_attention_heads: 9, num_key_value_heads: 3, intermediate_size: 1536, hidden_act: 'silu', rms_norm_eps: 1e-5,
  rope_theta: 100000, rope_scaling: null, max_position_embeddings: 8192, tie_word_embeddings: true,
  attention_bias: false, mlp_bias: false, bos_token_id: 0, eos_token_id: 0, pad_token_id: null,
};
// mistralai/Mistral-7B-v0.1
const MISTRAL = {
  architectures: ['MistralForCausalLM'], model_type: 'mistral', vocab_size: 32000, hidden_size: 4096, num_hidden_layers: 32,
  num_attention_heads: 32, num_key_value_heads: 8, intermediate_size: 14336, hidden_act: 'silu', rms_norm_eps: 1e-5,
  rope_theta: 10000, max_position_embeddings: 32768, sliding_window: 4096, tie_word_embeddings: false,
  bos_token_id: 1, eos_token_id: 2,
};
// Qwen/Qwen2.5-0.5B
const QWEN2 = {
  architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', vocab_size: 151936, hidden_size: 896, num_hidden_layers: 24,
  num_attention_heads: 14, num_key_value_heads: 2, intermediate_size: 4864, hidden_act: 'silu', rms_norm_eps: 1e-6,
  rope_theta: 1000000, max_position_embeddings: 32768, sliding_window: 32768, use_sliding_window: false,
  max_window_layers: 24, tie_word_embeddings: true, bos_token_id: 151643, eos_token_id: 151643,
};
// meta-llama/Llama-3.2-1B
const LLAMA32 = {
  architectures: ['LlamaForCausalLM'], vocab_size: 128256, hidden_size: 2048, num_hidden_layers: 16,
  num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, intermediate_size: 8192, hidden_act: 'silu',
  rms_norm_eps: 1e-5, rope_theta: 500000, max_position_embeddings: 131072, tie_word_embeddings: true,
  rope_scaling: { factor: 32, high_freq_factor: 4, low_freq_factor: 1, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  bos_token_id: 128000, eos_token_id: [128001, 128008, 128009],
};


const norm = (raw: object) => normalizeConfig(raw, 'cfg.json');

describe('normalizeConfig', () => {
  test('Llama (SmolLM2-135M): every field', () => {
    assert.deepEqual(norm(SMOLLM2), {
      architecture: 'LlamaForCausalLM', vocabSize: 49152, hiddenSize: 576, numLayers: 30, numHeads: 9, numKvHeads: 3,
      headDim: 64, intermediateSize: 1536, rmsNormEps: 1e-5, ropeTheta: 100000, ropeScaling: null,
      maxPositionEmbeddings: 8192, tieWordEmbeddings: true, qkvBias: false, oBias: false, slidingWindow: 0,
      bosTokenId: 0, eosTokenIds: [0], padTokenId: null,
    } satisfies ModelConfig);
  });

  test('Llama with attention_bias: q/k/v and o biases', () => {
    const c = norm({ ...SMOLLM2, attention_bias: true });
    assert.deepEqual([c.qkvBias, c.oBias], [true, true]);
  });

  test('Mistral: sliding window from sliding_window, untied head, defaults filled', () => {
    const c = norm(MISTRAL);
    assert.deepEqual([c.architecture, c.slidingWindow, c.headDim, c.numKvHeads, c.tieWordEmbeddings, c.qkvBias, c.eosTokenIds],
      ['MistralForCausalLM', 4096, 128, 8, false, false, [2]]);
    assert.equal(norm({ ...MISTRAL, sliding_window: null }).slidingWindow, 0);
  });

  test('Qwen2: q/k/v bias, no o bias, sliding_window ignored unless use_sliding_window', () => {
    const c = norm(QWEN2);
    assert.deepEqual([c.qkvBias, c.oBias, c.slidingWindow, c.headDim, c.ropeTheta, c.tieWordEmbeddings], [true, false, 0, 64, 1e6, true]);
    // transformers slides only in layers >= max_window_layers: all of them when it is 0 ...
    assert.equal(norm({ ...QWEN2, use_sliding_window: true, max_window_layers: 0 }).slidingWindow, 32768);
    // ... none when it is >= num_hidden_layers
    assert.equal(norm({ ...QWEN2, use_sliding_window: true, max_window_layers: 24 }).slidingWindow, 0);
  });

  test('Qwen2 with a per-layer mix of sliding and full attention is refused', () => {
    throwsWith(() => norm({ ...QWEN2, use_sliding_window: true, max_window_layers: 21 }), 'config_unsupported',
      /cfg\.json: max_window_layers/, /expected 0 or >= num_hidden_layers \(24\), found 21/, /layers 21\.\.23 would use a sliding window/);
  });

  test('Llama 3.2: llama3 rope scaling, explicit head_dim, list of eos ids', () => {
    const c = norm(LLAMA32);
    assert.deepEqual(c.ropeScaling, { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
    assert.deepEqual([c.headDim, c.ropeTheta, c.eosTokenIds, c.bosTokenId], [64, 500000, [128001, 128008, 128009], 128000]);
  });

  test('explicit head_dim wins over hidden/heads; null head_dim falls back', () => {
    assert.equal(norm({ ...SMOLLM2, hidden_size: 512, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 64 }).headDim, 64);
    assert.equal(norm({ ...SMOLLM2, head_dim: null }).headDim, 64);
  });

  test('linear scaling, old "type" key, and transformers v5 rope_parameters', () => {
    assert.deepEqual(norm({ ...SMOLLM2, rope_scaling: { type: 'linear', factor: 4 } }).ropeScaling, { type: 'linear', factor: 4 });
    assert.equal(norm({ ...SMOLLM2, rope_scaling: { rope_type: 'default' } }).ropeScaling, null);
    const v5 = norm({ ...SMOLLM2, rope_theta: undefined, rope_parameters: { rope_type: 'linear', factor: 2, rope_theta: 5e5 } });
    assert.deepEqual([v5.ropeTheta, v5.ropeScaling], [5e5, { type: 'linear', factor: 2 }]);
  });

  test('architecture from model_type when architectures is absent', () => {
    const { architectures: _drop, ...noArch } = QWEN2;
    assert.equal(norm(noArch).architecture, 'Qwen2ForCausalLM');
  });
});

describe('normalizeConfig refusals', () => {
  test('unknown architecture', () => {
    throwsWith(() => norm({ ...SMOLLM2, architectures: ['GPT2LMHeadModel'] }), 'config_unsupported',
      /cfg\.json: architectures/, /expected LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, found \["GPT2LMHeadModel"\]/, /Hint: /);
  });

  for (const t of ['yarn', 'dynamic']) {
    test(`rope type ${t}`, () => {
      throwsWith(() => norm({ ...SMOLLM2, rope_scaling: { rope_type: t, factor: 4 } }), 'config_unsupported',
        /rope_scaling\.rope_type/, /expected "default", "linear", "llama3", found "/, new RegExp(`found "${t}"`), /Hint: other RoPE variants/);
    });
  }

  test('hidden_act other than silu', () => {
    throwsWith(() => norm({ ...SMOLLM2, hidden_act: 'gelu' }), 'config_unsupported', /hidden_act/, /expected "silu", found "gelu"/);
  });

  test('mlp_bias true', () => {
    throwsWith(() => norm({ ...SMOLLM2, mlp_bias: true }), 'config_unsupported', /mlp_bias/, /expected false, found true/);
  });

  test('heads not divisible by kv heads', () => {
    throwsWith(() => norm({ ...SMOLLM2, num_key_value_heads: 2 }), 'config_unsupported',
      /num_attention_heads \(9\) must be divisible by num_key_value_heads \(2\)/, /found 2/);
  });

  test('missing or non-positive sizes', () => {
    const { hidden_size: _h, ...noHidden } = SMOLLM2;
    throwsWith(() => norm(noHidden), 'config_invalid', /cfg\.json: hidden_size/, /positive integer/, /found the key is missing/);
    throwsWith(() => norm({ ...SMOLLM2, vocab_size: 0 }), 'config_invalid', /vocab_size/, /found 0/);
    throwsWith(() => norm({ ...SMOLLM2, intermediate_size: -5 }), 'config_invalid', /intermediate_size/, /found -5/);
  });

  test('llama3 scaling without its parameters', () => {
    throwsWith(() => norm({ ...LLAMA32, rope_scaling: { rope_type: 'llama3', factor: 8 } }), 'config_invalid',
      /rope_scaling\.low_freq_factor/, /found the key is missing/);
  });

  test('not an object', () => {
    throwsWith(() => normalizeConfig([1], 'x.json'), 'config_invalid', /x\.json: config\.json must hold a JSON object; found an array/);
  });
});

// -----------------------------------------------------------------------------------------------
// RoPE

/** float64 reference: inv_freq_i = theta^(-2i/d), optionally scaled per HF's formulas. */
function inv64(d: number, theta: number): number[] {
  return Array.from({ length: d / 2 }, (_, i) => 1 / theta ** ((2 * i) / d));
}

function table64(inv: number[], maxPos: number, fn: (x: number) => number): Float64Array {
  const t = new Float64Array(maxPos * inv.length);
  for (let p = 0; p < maxPos; p++) for (let i = 0; i < inv.length; i++) t[p * inv.length + i] = fn(p * inv[i]);
  return t;
}

const cfg = (headDim: number, ropeTheta: number, ropeScaling: ModelConfig['ropeScaling']) => ({ headDim, ropeTheta, ropeScaling });

describe('ropeTables', () => {
  test('default (d=64, theta=1e4, 32 positions) matches float64 within 1e-6; values are float32', () => {
    const { cos, sin } = ropeTables(cfg(64, 10000, null), 32);
    assert.equal(cos.length, 32 * 32);
    const inv = inv64(64, 10000);
    assert.ok(relErr(cos, table64(inv, 32, Math.cos)) < 1e-6, `cos relErr ${relErr(cos, table64(inv, 32, Math.cos))}`);
    assert.ok(relErr(sin, table64(inv, 32, Math.sin)) < 1e-6);
    // position 0: cos 1, sin 0; first frequency is exactly 1 so row 1 holds cos(1), sin(1) in float32
    assert.deepEqual([cos[0], sin[0], cos[32], sin[32]], [1, 0, Math.fround(Math.cos(1)), Math.fround(Math.sin(1))]);
  });

  test('linear scaling divides every frequency by the factor', () => {
    const { cos, sin } = ropeTables(cfg(16, 10000, { type: 'linear', factor: 4 }), 64);
    const inv = inv64(16, 10000).map((f) => f / 4);
    assert.ok(relErr(cos, table64(inv, 64, Math.cos)) < 1e-6);
    assert.ok(relErr(sin, table64(inv, 64, Math.sin)) < 1e-6);
    const base = ropeInvFreq(cfg(16, 10000, null)), lin = ropeInvFreq(cfg(16, 10000, { type: 'linear', factor: 4 }));
    for (let i = 0; i < 8; i++) assert.equal(lin[i], Math.fround(base[i] / 4));
  });

  test('llama3 scaling (Llama 3.2: d=64, theta=5e5, factor 32, 1/4, 8192) matches the HF formula per band', () => {
    const s = { type: 'llama3' as const, factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
    const got = ropeInvFreq(cfg(64, 500000, s));
    // written from transformers' _compute_llama3_parameters, in float64
    const lowW = 8192 / 1, highW = 8192 / 4;
    const bands = { high: 0, mid: 0, low: 0 };
    const want = inv64(64, 500000).map((f) => {
      const w = (2 * Math.PI) / f;
      if (w < highW) { bands.high++; return f; }
      if (w > lowW) { bands.low++; return f / 32; }
      bands.mid++;
      const smooth = (8192 / w - 1) / (4 - 1);
      return ((1 - smooth) * f) / 32 + smooth * f;
    });
    // all three branches must be exercised for the comparison to mean anything
    assert.ok(bands.high > 0 && bands.mid > 0 && bands.low > 0, JSON.stringify(bands));
    assert.ok(relErr(got, want) < 1e-6, `relErr ${relErr(got, want)}`);
    for (let i = 0; i < 32; i++) assert.ok(Math.abs(got[i] - want[i]) <= 2e-6 * want[i], `inv_freq[${i}] ${got[i]} vs ${want[i]}`);
    const { cos } = ropeTables(cfg(64, 500000, s), 48);
    assert.ok(relErr(cos, table64(want, 48, Math.cos)) < 1e-6);
  });
});

// -----------------------------------------------------------------------------------------------
// parameter counts

describe('paramCount', () => {
  test('SmolLM2-135M: 134,515,008 (tied head)', () => {
    assert.deepEqual(paramCount(norm(SMOLLM2)), {
      embeddings: 28_311_552, attention: 26_542_080, mlp: 79_626_240, norms: 35_136, lmHead: 0, total: 134_515_008,
    });
  });

  test('Qwen2.5-0.5B: 494,032,768 (q/k/v biases included)', () => {
    const p = paramCount(norm(QWEN2));
    assert.equal(p.total, 494_032_768);
    assert.equal(p.attention, 24 * (896 * 896 * 2 + 896 * 128 * 2 + 896 + 256));
  });

  test('untied head and o bias are counted', () => {
    const tied = paramCount(norm(SMOLLM2)), untied = paramCount(norm({ ...SMOLLM2, tie_word_embeddings: false, attention_bias: true }));
    assert.equal(untied.lmHead, 49152 * 576);
    assert.equal(untied.attention - tied.attention, 30 * (576 + 192 * 2 + 576));
    assert.equal(untied.total - tied.total, 49152 * 576 + 30 * (576 + 384 + 576));
  });

  // Bielik-11B-v3.0 (Mistral-7B depth-upscaled): hidden 4096, 50 layers, 32/8 heads of 128, MLP
  // 14336, vocab 32128, untied. The seed published 11.04B -> 7.35B for the cut to 40 layers and
  // MLP 11264; those figures leave out the lm_head (with it: 11.17B -> 7.48B).
  test('Bielik-11B and the seed\'s 7.35B shape in both conventions: 11.04B -> 7.35B is the count without the lm_head', () => {
    const bielik = norm({ architectures: ['MistralForCausalLM'], model_type: 'mistral', vocab_size: 32128, hidden_size: 4096,
      intermediate_size: 14336, num_hidden_layers: 50, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 128, tie_word_embeddings: false });
    const seed = { ...bielik, numLayers: 40, intermediateSize: 11264 };
    const before = paramCount(bielik), after = paramCount(seed);
    // by hand: per layer q,o 2·4096² + k,v 2·4096·1024 + MLP 3·4096·F + norms 2·4096; embeddings (and lm_head) 32128·4096
    const layer = (F: number) => 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * F + 2 * 4096;
    const embed = 32128 * 4096;
    assert.equal(countIn(before, 'no-lm-head'), 50 * layer(14336) + 4096 + embed);
    assert.equal(countIn(before, 'no-lm-head'), 11_037_200_384);
    assert.equal(countIn(before, 'total'), 11_168_796_672);
    assert.equal(countIn(after, 'no-lm-head'), 40 * layer(11264) + 4096 + embed);
    assert.equal(countIn(after, 'no-lm-head'), 7_346_130_944);
    assert.equal(countIn(after, 'total'), 7_477_727_232);
    const billions = (n: number) => (n / 1e9).toFixed(2);
    assert.deepEqual([billions(countIn(before, 'no-lm-head')), billions(countIn(after, 'no-lm-head'))], ['11.04', '7.35'], 'the seed\'s figures');
    assert.deepEqual([billions(before.total), billions(after.total)], ['11.17', '7.48'], 'the totals do not match them');
    assert.equal((100 * (1 - countIn(after, 'no-lm-head') / countIn(before, 'no-lm-head'))).toFixed(1), '33.4', 'the seed\'s -33.4%');
    const tied = paramCount(norm(SMOLLM2));
    assert.equal(countIn(tied, 'no-lm-head'), countIn(tied, 'total'), 'the conventions agree on a tied model');
  });
});
