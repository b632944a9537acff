// Tiny model folders for the scoring tests: a random Llama/Qwen2 with a byte-level tokenizer
// (any text tokenizes), or a copy of a golden fixture with the byte tokenizer beside it (only text
// made of bytes below the fixture's vocab_size of 64: digits, spaces and punctuation).
import fs from 'node:fs';
import path from 'node:path';
import { byteLevelTokenizer } from '../../src/io/byte_tokenizer.ts';
import { normalizeConfig } from '../../src/io/hf_config.ts';
import { Decoder } from '../../src/model/decoder.ts';
import { initWeights } from '../../src/model/init.ts';
import { saveModel } from '../../src/model/load.ts';
import type { FloatDtype } from '../../src/io/safetensors.ts';
import type { Checkpoint } from '../../src/io/checkpoint.ts';

export const FIXTURES = path.join(import.meta.dirname, '../fixtures');

export function writeByteTokenizer(dir: string): void {
  const tf = byteLevelTokenizer();
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tf.tokenizerJson));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tf.tokenizerConfig));
}

export interface TinyModelOptions {
  layers?: number;
  hidden?: number;
  heads?: number;
  kvHeads?: number;
  intermediate?: number;
  tied?: boolean;
  qwen?: boolean;
  dtype?: FloatDtype;
  seed?: number;
  /** Larger than HF's 0.02 so activations and layer outputs differ visibly between channels. */
  std?: number;
}

/** A random model with the byte tokenizer's vocabulary (259), saved as an HF folder. */
export function tinyModelDir(dir: string, o: TinyModelOptions = {}): { dir: string; model: Decoder; raw: Record<string, unknown> } {
  fs.mkdirSync(dir, { recursive: true });
  const vocab = byteLevelTokenizer().vocabSize;
  const raw: Record<string, unknown> = {
    architectures: [o.qwen ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM'], model_type: o.qwen ? 'qwen2' : 'llama',
    vocab_size: vocab, hidden_size: o.hidden ?? 32, intermediate_size: o.intermediate ?? 48,
    num_hidden_layers: o.layers ?? 3, num_attention_heads: o.heads ?? 4, num_key_value_heads: o.kvHeads ?? 2,
    hidden_act: 'silu', max_position_embeddings: 256, rms_norm_eps: 1e-5, rope_theta: 10000,
    tie_word_embeddings: o.tied ?? true, torch_dtype: 'float32',
  };
  const model = new Decoder(normalizeConfig(raw, 'tiny'));
  initWeights(model, o.seed ?? 7, o.std ?? 0.2);
  saveModel(model, dir, raw, { dtype: o.dtype ?? 'F32' });
  writeByteTokenizer(dir);
  return { dir, model, raw };
}

/** A golden fixture's config and weights copied to `dir`, with the byte tokenizer. */
export function fixtureCopy(name: string, dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(FIXTURES, name, f), path.join(dir, f));
  writeByteTokenizer(dir);
  return dir;
}

/**
 * Wraps a checkpoint to count what is read: per tensor, the floats read (whole reads and row
 * ranges together) and the calls of each kind.
 */
export function spyReads(ck: Checkpoint): { floats: Map<string, number>; whole: Map<string, number>; rows: Map<string, number> } {
  const floats = new Map<string, number>(), whole = new Map<string, number>(), rows = new Map<string, number>();
  const add = (m: Map<string, number>, name: string, n: number) => m.set(name, (m.get(name) ?? 0) + n);
  const read = ck.read, readRows = ck.readRows;
  ck.read = (name, out) => { const r = read(name, out); add(whole, name, 1); add(floats, name, r.length); return r; };
  ck.readRows = (name, r0, n, out) => { const r = readRows(name, r0, n, out); add(rows, name, 1); add(floats, name, r.length); return r; };
  return { floats, whole, rows };
}

/** Float count of a checkpoint tensor. */
export function numel(ck: Checkpoint, name: string): number {
  return ck.tensors.get(name)!.info.shape.reduce((a, b) => a * b, 1);
}
