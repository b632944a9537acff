// Loading a Hugging Face checkpoint folder into a Decoder, and saving one back. Every tensor the
// layout expects must be present with the right shape; unexpected tensors are refused (a silent
// skip would hide a config/weights mismatch). Tensors load one at a time, straight into their
// block: never a buffer larger than one block.
//
// Weights load as float32 (a model that trains: the default), or, for a model that only runs
// forward, as the checkpoint stores them (`weights: 'auto'`): a bf16/f16 checkpoint then stays
// 2 bytes per weight and its matrices are widened inside the GEMM (see parameters.ts).
import { openCheckpoint, saveCheckpoint, type Checkpoint } from '../io/checkpoint.ts';
import type { FloatDtype } from '../io/safetensors.ts';
import { Decoder } from './decoder.ts';
import { buildLayout, storeBytes, ParamBlocks, HalfBlocks, type ParameterLayout, type WeightDtype, type WeightStore } from './parameters.ts';
import os from 'node:os';
import { KompresorError } from '../errors.ts';
import { formatBytes } from '../io/bytes.ts';

// Buffers some exporters store next to the weights; they are derived, so they are ignored.
const DERIVED = /(^|\.)rotary_emb\.inv_freq$/;

/** How to hold the weights: float32, as stored ('auto': bf16/f16 when every matrix is), or a given 16-bit format. */
export type WeightsOption = 'f32' | 'auto' | 'bf16' | 'f16';
export const WEIGHTS_OPTIONS: readonly WeightsOption[] = ['f32', 'auto', 'bf16', 'f16'];

export interface LoadedModel {
  model: Decoder;
  checkpoint: Checkpoint;
  config: Record<string, unknown>;
}

export interface LoadOptions {
  /** How to hold the weights (default 'f32': a model that trains). */
  weights?: WeightsOption;
  /** Refuse, before reading anything, weights larger than this (default: 90% of RAM). */
  maxMemory?: number;
}

export async function loadModel(dir: string, o: LoadOptions = {}): Promise<LoadedModel> {
  const ck = openCheckpoint(dir);
  return { model: modelFromCheckpoint(ck, o.weights ?? 'f32', o.maxMemory), checkpoint: ck, config: ck.rawConfig };
}

/** Checks the checkpoint against its config and its size against memory, then reads every weight into a new Decoder. */
export function modelFromCheckpoint(ck: Checkpoint, weights: WeightsOption, maxMemory?: number): Decoder {
  const layout = buildLayout(ck.config);
  checkCheckpoint(ck, layout);
  const dtype = weightDtypeFor(ck, layout, weights);
  checkFits(ck, layout, dtype, maxMemory === undefined ? { bytes: 0.9 * os.totalmem(), what: '90% of RAM' } : { bytes: maxMemory, what: '--max-memory' });
  return new Decoder(ck.config, readWeights(ck, layout, dtype));
}

/** A model whose weights alone exceed the budget is refused before any allocation, saying what would fit. */
function checkFits(ck: Checkpoint, layout: ParameterLayout, dtype: WeightDtype, budget: { bytes: number; what: string }): void {
  const need = storeBytes(layout, dtype);
  if (need <= budget.bytes) return;
  const as16 = dtype === 'f32' && weightDtypeFor(ck, layout, 'auto') !== 'f32' && storeBytes(layout, 'bf16') <= budget.bytes;
  throw new KompresorError({
    code: 'input_invalid', where: ck.dir, rule: 'the weights must fit in memory',
    expected: `at most ${formatBytes(budget.bytes)} (${budget.what})`,
    found: `${layout.total.toLocaleString('en-US')} parameters = ${formatBytes(need)} as ${dtype}`,
    hint: as16 ? 'keep the weights as stored (--weights-dtype auto): they fit in 16 bits'
      : 'score and eval can stream the model layer by layer (--stream); distill can read the teacher\'s logits from a cache built layer by layer',
  });
}

/** The storage dtype `option` gives for this checkpoint ('auto': the matrices' stored 16-bit format, if they share one). */
export function weightDtypeFor(ck: Checkpoint, layout: ParameterLayout, option: WeightsOption): WeightDtype {
  if (option !== 'auto') return option;
  const stored = new Set(layout.slots.filter((s) => s.shape.length > 1).map((s) => ck.tensors.get(s.name)!.info.dtype));
  if (stored.size !== 1) return 'f32';
  const only = [...stored][0];
  return only === 'BF16' ? 'bf16' : only === 'F16' ? 'f16' : 'f32';
}

/** Every tensor of the layout, one at a time, into new blocks of the given dtype. */
export function readWeights(ck: Checkpoint, layout: ParameterLayout, dtype: WeightDtype): WeightStore {
  if (dtype === 'f32') {
    const store = new ParamBlocks(layout);
    for (const s of layout.slots) ck.read(s.name, store.view(s));
    return store;
  }
  const store = new HalfBlocks(layout, dtype === 'f16');
  for (const s of layout.slots) {
    const vec = store.vectors.get(s.name);
    if (vec) ck.read(s.name, vec);
    else ck.read16(s.name, store.view(s), store.f16);
  }
  return store;
}

/**
 * Refuses a checkpoint whose tensors are not exactly those of the layout config.json implies,
 * with the shapes it implies (also used by streaming, which never builds the whole model).
 */
export function checkCheckpoint(ck: Checkpoint, layout: ParameterLayout): void {
  checkTensorSet(ck, layout);
  for (const s of layout.slots) {
    const found = ck.tensors.get(s.name)!.info.shape;
    if (found.length !== s.shape.length || found.some((d, i) => d !== s.shape[i])) {
      throw new KompresorError({
        code: 'safetensors_shape', where: `${ck.dir}: tensor "${s.name}"`,
        rule: 'each tensor must have the shape config.json implies', expected: JSON.stringify(s.shape), found: JSON.stringify(found),
        hint: 'the weights do not belong to this config.json (a pruned model needs its own rewritten config)',
      });
    }
  }
}

function checkTensorSet(ck: Checkpoint, layout: ParameterLayout): void {
  const missing = layout.slots.map((s) => s.name).filter((n) => !ck.tensors.has(n));
  if (missing.length > 0) {
    throw new KompresorError({
      code: 'checkpoint_missing_tensor', where: ck.dir, rule: 'every tensor of the architecture must be in the checkpoint',
      expected: `${layout.slots.length} tensors`, found: `${missing.length} missing (${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', ...' : ''})`,
      hint: 'check that config.json matches the weights (layer count, tie_word_embeddings, attention_bias)',
    });
  }
  // A tied model may still carry a copy of lm_head.weight; it is the embedding, so it is ignored.
  const extra = [...ck.tensors.keys()].filter((n) => !layout.byName.has(n) && !DERIVED.test(n)
    && !(n === 'lm_head.weight' && ck.config.tieWordEmbeddings));
  if (extra.length > 0) {
    throw new KompresorError({
      code: 'checkpoint_extra_tensor', where: ck.dir, rule: 'the checkpoint must not hold tensors the architecture does not use',
      expected: 'none', found: `${extra.length} (${extra.slice(0, 3).join(', ')}${extra.length > 3 ? ', ...' : ''})`,
      hint: 'check that config.json matches the weights (layer count, attention_bias, tie_word_embeddings)',
    });
  }
}

/** Writes the model as a standard HF checkpoint (config.json as given, tokenizer files copied). */
export function saveModel(model: Decoder, dir: string, config: Record<string, unknown>,
  o: { dtype?: FloatDtype; tokenizerFrom?: string; maxShardBytes?: number } = {}): void {
  const tensors = model.layout.slots.map((s) => ({ name: s.name, shape: s.shape, data: model.params.view(s) }));
  saveCheckpoint(dir, config, tensors, { dtype: o.dtype ?? 'F32', tokenizerFrom: o.tokenizerFrom, maxShardBytes: o.maxShardBytes });
}
