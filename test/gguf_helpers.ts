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

export const FIXTURES = path.join(import.meta.dirname, 'fixtures');

/**
 * Writes a model folder (config.json, model.safetensors, tokenizer files) into `dir`: the
 * fixture's config with the byte tokenizer's vocab_size (259 + merges) and `overrides`, weights N(0, 0.3^2), norm weights
 * 1 + N(0, 0.06^2), biases N(0, 0.3^2) (non-zero, so a lost bias shows in the logits).
 */
export function makeByteModel(dir: string, fixture: string, overrides: Record<string, unknown> = {}, seed = 7,
  merges: [string, string][] = []): Decoder {
  fs.mkdirSync(dir, { recursive: true });
  const tf = byteLevelTokenizer(merges);
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tf.tokenizerJson));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tf.tokenizerConfig));
  const fixtureConfig = JSON.parse(fs.readFileSync(path.join(FIXTURES, fixture, 'config.json'), 'utf8'));
  const raw = { ...fixtureConfig, vocab_size: tf.vocabSize, bos_token_id: null, eos_token_id: tf.specialIds['<|im_end|>'], ...overrides };
  const model = new Decoder(normalizeConfig(raw, `${fixture} (byte vocabulary)`));
  const w = randn(model.params.length, seed, 0.3);
  for (const s of model.layout.slots) {
    const v = model.params.view(s);
    v.set(w.subarray(s.offset, s.offset + s.size));
    if (s.name.endsWith('norm.weight')) for (let i = 0; i < v.length; i++) v[i] = 1 + 0.2 * v[i];
  }
  saveModel(model, dir, raw);
  return model;
}
