// Applying a PrunePlan to a Hugging Face checkpoint folder (the slicing half of Minitron pruning;
// plan.ts chooses sizes and indices). Streaming: saveCheckpoint calls one thunk per output
// tensor as it writes, and each thunk reads ONE source tensor, slices it and hands it over, so
// memory holds a source tensor and its slice, never the model.
//
// Slicing table (../shared/specs/minitron.md §2; Hk hidden channels, Qk kept q-head rows, Fk
// kept neurons of the layer; "all" = untouched):
//   embed_tokens [V,H] cols Hk | lm_head [V,H] cols Hk (absent when tied) | every norm [H] Hk
//   q_proj [nH*d,H] rows Qk cols Hk, bias Qk | k_proj, v_proj rows all cols Hk, bias all
//   o_proj [H,nH*d] rows Hk cols Qk, bias Hk | gate_proj, up_proj rows Fk cols Hk | down_proj rows Hk cols Fk
// Kept layers are renumbered 0..L'-1 in their original order. Everything is checked before the
// first tensor is read; the output is deterministic (same inputs -> byte-identical files).
import fs from 'node:fs';
import nodePath from 'node:path';
import { KompresorError, ensure } from '../errors.ts';
import { openCheckpoint, saveCheckpoint, type Checkpoint, type SaveTensor } from '../io/checkpoint.ts';
import { normalizeConfig, type ParamCount } from '../io/hf_config.ts';
import type { FloatDtype } from '../io/safetensors.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { buildLayout, layerPrefix } from '../model/parameters.ts';
import { checkScoresMatch, type ImportanceScores } from './scores.ts';
import { PRUNE_AXES, scoredShapeOf, selectChannels, sizesOf, type AxisSizes, type PrunePlan, type Selection } from './plan.ts';

export const REPORT_FILE = 'prune_report.json';
export const REPORT_FORMAT = 'kompresor-prune-report';

export interface PruneOptions {
  /** Names the scores in error messages (a path). */
  scoresPath?: string;
  /** Shard size limit of the output (default 5 GB, as transformers). */
  maxShardBytes?: number;
  /** Called after each output tensor is sliced. */
  onTensor?: (done: number, total: number, name: string) => void;
}

interface AxisReport<K> { before: number; after: number; kept: K; dropped: K }

/** prune_report.json. Per-layer lists (heads, MLP) have one row per KEPT layer, in the new order. */
export interface PruneReport {
  format: typeof REPORT_FORMAT;
  version: 1;
  architecture: string;
  dtype: FloatDtype;
  depth: PrunePlan['depth'];
  chosen_by: PrunePlan['chosen_by'];
  params_budget: number | null;
  /** How params_budget is counted: 'total' or 'no-lm-head' (without an untied lm_head). */
  params_convention: PrunePlan['params_convention'];
  /** --round-to, the policy's steps, the rounding cost and the notes (plan.ts PlanRounding). */
  rounding: PrunePlan['rounding'];
  axes: {
    num_hidden_layers: AxisReport<number[]>;
    hidden_size: AxisReport<number[]>;
    num_attention_heads: AxisReport<number[][]> & { num_key_value_heads: number; head_dim: number };
    intermediate_size: AxisReport<number[][]>;
  };
  params: { before: ParamCount; after: ParamCount };
  files: string[];
}

/** Rows and columns each tensor keeps, by HF name (layer tensors by the part after "model.layers.N."). */
type Index = 'hidden' | 'q' | 'mlp' | 'all';
const SLICING: Record<string, [rows: Index, cols?: Index]> = {
  'model.embed_tokens.weight': ['all', 'hidden'],
  'lm_head.weight': ['all', 'hidden'],
  'model.norm.weight': ['hidden'],
  'input_layernorm.weight': ['hidden'],
  'post_attention_layernorm.weight': ['hidden'],
  'self_attn.q_proj.weight': ['q', 'hidden'],
  'self_attn.q_proj.bias': ['q'],
  'self_attn.k_proj.weight': ['all', 'hidden'],
  'self_attn.k_proj.bias': ['all'],
  'self_attn.v_proj.weight': ['all', 'hidden'],
  'self_attn.v_proj.bias': ['all'],
  'self_attn.o_proj.weight': ['hidden', 'q'],
  'self_attn.o_proj.bias': ['hidden'],
  'mlp.gate_proj.weight': ['mlp', 'hidden'],
  'mlp.up_proj.weight': ['mlp', 'hidden'],
  'mlp.down_proj.weight': ['hidden', 'mlp'],
};

// Derived buffers some exporters store (recomputed by transformers) and the redundant lm_head copy
// of a tied model are not written.
const NOT_WRITTEN = /(^|\.)rotary_emb\.inv_freq$/;

const TORCH_DTYPE: Record<FloatDtype, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

// ---------------------------------------------------------------------------------------------
// entry point

/**
 * Prunes the checkpoint in `modelDir` to `plan` using `scores` and writes a complete HF folder to
 * `outDir`: weights (same dtype as the input), the rewritten config.json, tokenizer and
 * generation files, and prune_report.json. Returns the report.
 */
export function prune(modelDir: string, plan: PrunePlan, scores: ImportanceScores, outDir: string, opts: PruneOptions = {}): PruneReport {
  const ck = openCheckpoint(modelDir);
  checkPlanFits(plan, ck);
  checkScoresMatch(scores, scoredShapeOf(ck.config), opts.scoresPath ?? 'scores');
  checkOutDir(ck.dir, outDir);
  checkSourceTensors(ck);
  const dtype = weightDtype(ck);
  const sel = selectChannels(plan, scores);
  const config = prunedConfig(ck, plan, sel, dtype);
  const tensors = slicedTensors(ck, plan, sel, opts.onTensor);
  const written = tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  ensure(written === plan.params.after.total, 'prune', () => `the written tensors must hold plan.params.after.total (${plan.params.after.total}) values, not ${written}`);
  const files = saveCheckpoint(outDir, config, tensors, { dtype, tokenizerFrom: ck.dir, maxShardBytes: opts.maxShardBytes });
  const report = makeReport(plan, sel, dtype, [...files, REPORT_FILE]);
  writeFileAtomic(nodePath.join(outDir, REPORT_FILE), compactJson(report));
  return report;
}

// ---------------------------------------------------------------------------------------------
// up-front checks

function checkPlanFits(plan: PrunePlan, ck: Checkpoint): void {
  const have = sizesOf(ck.config);
  for (const a of PRUNE_AXES) {
    if (plan.before[a] !== have[a]) {
      throw new KompresorError({ code: 'invalid_prune_plan', where: `${ck.dir}: ${a}`, rule: 'the plan must be made for this model',
        expected: `${a} ${have[a]}`, found: `a plan from ${a} ${plan.before[a]}`, hint: 'make the plan from this model\'s config' });
    }
  }
}

function checkOutDir(modelDir: string, outDir: string): void {
  const out = nodePath.resolve(outDir);
  const same = out === modelDir || (fs.existsSync(out) && fs.realpathSync(out) === fs.realpathSync(modelDir));
  if (same) {
    throw new KompresorError({ code: 'input_invalid', where: `--out ${outDir}`, rule: 'the output folder must differ from the model folder',
      found: 'the model folder itself', hint: 'the source weights are read while the pruned ones are written; pick a new folder' });
  }
  if (fs.existsSync(out) && !fs.statSync(out).isDirectory()) {
    throw new KompresorError({ code: 'input_invalid', where: `--out ${outDir}`, rule: 'the output must be a folder', found: 'a file' });
  }
}

/** Every tensor the config implies, with its shape and a float dtype; nothing unknown. */
function checkSourceTensors(ck: Checkpoint): void {
  const layout = buildLayout(ck.config);
  for (const s of layout.slots) {
    const t = ck.tensors.get(s.name);
    if (!t) {
      throw new KompresorError({ code: 'checkpoint_missing_tensor', where: `${ck.dir}: tensor "${s.name}"`,
        rule: 'every tensor of the architecture must be in the checkpoint', found: 'missing',
        hint: 'check that config.json matches the weights (layer count, tie_word_embeddings, attention_bias)' });
    }
    const shape = t.info.shape;
    if (shape.length !== s.shape.length || shape.some((d, i) => d !== s.shape[i])) {
      throw new KompresorError({ code: 'safetensors_shape', where: `${ck.dir}: tensor "${s.name}"`,
        rule: 'each tensor must have the shape config.json implies', expected: JSON.stringify(s.shape), found: JSON.stringify(shape) });
    }
    if (!['F32', 'F16', 'BF16'].includes(t.info.dtype)) {
      throw new KompresorError({ code: 'safetensors_dtype', where: `${ck.dir}: tensor "${s.name}"`,
        rule: 'weights must be F32, F16 or BF16', found: t.info.dtype });
    }
  }
  const extra = [...ck.tensors.keys()].filter((n) => !layout.byName.has(n) && !NOT_WRITTEN.test(n)
    && !(n === 'lm_head.weight' && ck.config.tieWordEmbeddings));
  if (extra.length > 0) {
    throw new KompresorError({ code: 'checkpoint_extra_tensor', where: ck.dir,
      rule: 'every tensor must be one the slicing table knows', expected: 'none other',
      found: `${extra.length} (${extra.slice(0, 3).join(', ')}${extra.length > 3 ? ', ...' : ''})` });
  }
}

/** The input's weight dtype; F32 (which holds F16 and BF16 exactly) when the input mixes them. */
function weightDtype(ck: Checkpoint): FloatDtype {
  const dtypes = new Set(buildLayout(ck.config).slots.map((s) => ck.tensors.get(s.name)!.info.dtype));
  return dtypes.size === 1 ? ([...dtypes][0] as FloatDtype) : 'F32';
}

// ---------------------------------------------------------------------------------------------
// config.json

/** The input config with the four sizes replaced and num_key_value_heads, head_dim stated. */
function prunedConfig(ck: Checkpoint, plan: PrunePlan, sel: Selection, dtype: FloatDtype): Record<string, unknown> {
  const raw = ck.rawConfig, a = plan.after;
  const c: Record<string, unknown> = { ...raw };
  c.num_hidden_layers = a.num_hidden_layers;
  c.hidden_size = a.hidden_size;
  c.num_attention_heads = a.num_attention_heads;
  c.intermediate_size = a.intermediate_size;
  // explicit: hidden_size / num_attention_heads no longer gives d, and a missing
  // num_key_value_heads would default to the new head count
  c.num_key_value_heads = plan.num_key_value_heads;
  c.head_dim = plan.head_dim;
  if (Array.isArray(raw.layer_types)) {
    const lt = raw.layer_types;
    if (lt.length !== plan.before.num_hidden_layers) {
      throw new KompresorError({ code: 'config_invalid', where: `${ck.dir}/config.json: layer_types`, rule: 'layer_types must have one entry per layer',
        expected: `${plan.before.num_hidden_layers}`, found: `${lt.length}` });
    }
    c.layer_types = sel.layers.map((l) => lt[l]);
  }
  if (raw.torch_dtype === undefined && raw.dtype === undefined) c.torch_dtype = TORCH_DTYPE[dtype];
  const n = normalizeConfig(c, 'pruned config.json');
  ensure(n.numLayers === a.num_hidden_layers && n.hiddenSize === a.hidden_size && n.numHeads === a.num_attention_heads
    && n.intermediateSize === a.intermediate_size && n.headDim === plan.head_dim && n.numKvHeads === plan.num_key_value_heads,
  'prune', () => 'the rewritten config must normalise to the plan\'s sizes');
  return c;
}

// ---------------------------------------------------------------------------------------------
// slicing

/** The output tensors in HF order, each a thunk that reads and slices its source when called. */
function slicedTensors(ck: Checkpoint, plan: PrunePlan, sel: Selection, onTensor?: PruneOptions['onTensor']): SaveTensor[] {
  const slots = buildLayout(plan.config).slots;
  let done = 0;
  return slots.map((slot) => ({
    name: slot.name, shape: slot.shape,
    data: () => {
      const { source, rows, cols } = sliceSpec(slot.name, plan, sel);
      const src = ck.read(source);
      const out = gather(src, ck.tensors.get(source)!.info.shape, rows, cols);
      ensure(out.length === slot.size, 'prune', () => `${slot.name}: sliced ${out.length} values for shape [${slot.shape}]`);
      onTensor?.(++done, slots.length, slot.name);
      return out;
    },
  }));
}

/** Source tensor and kept rows/cols (null = all, in order) of one output tensor. */
function sliceSpec(name: string, plan: PrunePlan, sel: Selection): { source: string; rows: number[] | null; cols: number[] | null } {
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
  const key = m ? m[2] : name;
  const layer = m ? Number(m[1]) : -1;
  const rule = SLICING[key];
  ensure(rule !== undefined, 'prune', () => `no slicing rule for ${name}`);
  const index = (ix: Index | undefined): number[] | null => {
    switch (ix) {
      case 'hidden': return sel.hidden;
      case 'q': return expandHeads(sel.heads[layer], plan.head_dim);
      case 'mlp': return sel.mlp[layer];
      default: return null;
    }
  };
  const source = m ? layerPrefix(sel.layers[layer]) + key : name;
  return { source, rows: index(rule[0]), cols: index(rule[1]) };
}

/** Head indices -> their row indices h*d .. h*d+d-1, in the heads' order. */
export function expandHeads(heads: readonly number[], d: number): number[] {
  const rows: number[] = [];
  for (const h of heads) for (let i = 0; i < d; i++) rows.push(h * d + i);
  return rows;
}

/** out[i][j] = src[rows[i]][cols[j]] of a row-major [R, C] (or [R]) tensor. */
export function gather(src: Float32Array, shape: readonly number[], rows: readonly number[] | null, cols: readonly number[] | null): Float32Array {
  const R = shape[0], C = shape.length === 2 ? shape[1] : 1;
  const nr = rows ? rows.length : R, nc = cols ? cols.length : C;
  const out = new Float32Array(nr * nc);
  for (let i = 0; i < nr; i++) {
    const base = (rows ? rows[i] : i) * C;
    if (!cols) { out.set(src.subarray(base, base + C), i * C); continue; }
    for (let j = 0; j < nc; j++) out[i * nc + j] = src[base + cols[j]];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// report

function makeReport(plan: PrunePlan, sel: Selection, dtype: FloatDtype, files: string[]): PruneReport {
  const b = plan.before, a = plan.after;
  const droppedOf = (n: number, kept: readonly number[]) => {
    const k = new Set(kept);
    return Array.from({ length: n }, (_, i) => i).filter((i) => !k.has(i));
  };
  const axis = <K>(ax: keyof AxisSizes, kept: K, dropped: K): AxisReport<K> => ({ before: b[ax], after: a[ax], kept, dropped });
  return {
    format: REPORT_FORMAT, version: 1, architecture: plan.architecture, dtype, depth: plan.depth,
    chosen_by: plan.chosen_by, params_budget: plan.params_budget, params_convention: plan.params_convention, rounding: plan.rounding,
    axes: {
      num_hidden_layers: axis('num_hidden_layers', sel.layers, sel.droppedLayers),
      hidden_size: axis('hidden_size', sel.hidden, droppedOf(b.hidden_size, sel.hidden)),
      num_attention_heads: {
        ...axis('num_attention_heads', sel.heads, sel.heads.map((h) => droppedOf(b.num_attention_heads, h))),
        num_key_value_heads: plan.num_key_value_heads, head_dim: plan.head_dim,
      },
      intermediate_size: axis('intermediate_size', sel.mlp, sel.mlp.map((f) => droppedOf(b.intermediate_size, f))),
    },
    params: plan.params,
    files,
  };
}

/** Indented JSON with lists of numbers on one line (a report holds L x F neuron indices). */
function compactJson(v: unknown): string {
  return JSON.stringify(v, null, 2).replace(/\[\s*(-?\d[\d\s,.eE+-]*?)\s*\]/g, (_, body: string) => `[${body.split(/\s*,\s*/).join(', ')}]`) + '\n';
}
