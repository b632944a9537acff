// Shared by the GGUF tests: small models with a real (byte-level) tokenizer, built from a test
// fixture's config.json. The fixtures have vocab_size 64 and no tokenizer, and llama.cpp needs one
// token per embedding row, so the vocabulary becomes byte_tokenizer.ts's 259 tokens and the
// weights are seeded random values large enough to give well-separated logits.
import fs from 'node:fs';
import path from 'node:path';
import { byteLevelTokenizer } from '../src/io/byte_tokenizer.ts';
import { normalizeConfig } from '../src/io/hf_config.ts';
import { Decoder } from '../src/model/decoder.ts';
import { saveModel } from '../src/model/load.ts';
import { randn } from './helpers.ts';
import assert from 'node:assert/strict';
import type { Token } from 'node-llama-cpp';

type Llama = Awaited<ReturnType<typeof import('node-llama-cpp')['getLlama']>>;

export const FIXTURES = path.join(import.meta.dirname, 'fixtures');

/**
 * Writes a model folder (config.json, model.safetensors, tokenizer files) into `dir`: the
 * fixture's config with the byte tokenizer's vocab_size (259 + merges) and `overrides`, weights N(0, std^2 = 0.3^2), norm weights
 * 1 + N(0, 0.06^2), biases N(0, 0.3^2) (non-zero, so a lost bias shows in the logits).
 */
export function makeByteModel(dir: string, fixture: string, overrides: Record<string, unknown> = {}, seed = 7,
  merges: [string, string][] = [], std = 0.3): Decoder {
  fs.mkdirSync(dir, { recursive: true });
  const tf = byteLevelTokenizer(merges);
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tf.tokenizerJson));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tf.tokenizerConfig));
  const fixtureConfig = JSON.parse(fs.readFileSync(path.join(FIXTURES, fixture, 'config.json'), 'utf8'));
  const raw = { ...fixtureConfig, vocab_size: tf.vocabSize, bos_token_id: null, eos_token_id: tf.specialIds['<|im_end|>'], ...overrides };
  const model = new Decoder(normalizeConfig(raw, `${fixture} (byte vocabulary)`));
  const w = randn(model.params.length, seed, std);
  for (const s of model.layout.slots) {
    const v = model.params.view(s);
    v.set(w.subarray(s.offset, s.offset + s.size));
    if (s.name.endsWith('norm.weight')) for (let i = 0; i < v.length; i++) v[i] = 1 + 0.2 * v[i];
  }
  saveModel(model, dir, raw);
  return model;
}

/**
 * llama.cpp's logits after each token of `ids`, as one [T, V] array (no flash attention, one
 * thread; an F32 KV cache unless f32Cache is false, then llama.cpp's default F16).
 */
export async function llamaCppLogitsOf(llama: Llama, file: string, ids: number[], V: number, f32Cache = true): Promise<Float32Array> {
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  try {
    // one thread: these models are tiny, and llama.cpp's spinning worker threads crawl on a busy 2-core machine
    const ctx = await model.createContext({ threads: 1, contextSize: 64, batchSize: 64, flashAttention: false,
      ...(f32Cache ? { experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' } as const : {}) });
    try {
      const res = await ctx.getSequence().controlledEvaluate(ids.map((t) => [t as Token, { generateNext: { logits: true } }]));
      const out = new Float32Array(ids.length * V);
      res.forEach((r, t) => {
        const logits = r?.next?.logits;
        assert.ok(logits && logits.size === V, `llama.cpp returned ${logits?.size} logits at position ${t}, expected ${V}`);
        for (const [id, x] of logits) out[t * V + id] = x;
      });
      return out;
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/**
 * llama.cpp on the CPU through node-llama-cpp, for the GGUF parity tests. A missing package is an
 * assertion failure, not a skip: it is an optionalDependency of kompresor that `npm ci` installs
 * (with the CUDA/Vulkan/ARM builds stubbed by package.json "overrides").
 */
export async function cpuLlama(): Promise<Llama> {
  let lib: typeof import('node-llama-cpp');
  try {
    lib = await import('node-llama-cpp');
  } catch (e) {
    assert.fail(`node-llama-cpp is not installed (an optionalDependency that npm ci installs): ${(e as Error).message}`);
  }
  return lib.getLlama({ gpu: false, build: 'never', logLevel: lib.LlamaLogLevel.error });
}
