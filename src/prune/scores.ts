// The importance scores file: what `kompresor score` writes and `prune` / `search` read, so a new
// pruning target never needs new forward passes (ModelOpt saves its scores for the same reason).
// JSON, written atomically. All statistics follow ../shared/specs/minitron.md §1:
//   per sequence   m[c] = mean over the sequence's valid tokens of |x[t, c]|
//   over sequences A[c] = Σ_seq m[c]²   (accumulated in float64 here; fp32 would do, this is stricter)
//   hidden[c]      = Σ over every input_layernorm and post_attention_layernorm output j of sqrt(A_j[c])
//   heads[l][h]    = sqrt(Σ_{c in head h} A[c]) of the o_proj input of layer l (ranked later within KV groups)
//   mlp[l][f]      = sqrt(A[f]) of the down_proj input of layer l
//   layers[l]      = Σ over calibration sequences of (1 − mean_t cos(resid_in[t], resid_out[t]))  (Block Importance)
//   layers_loss[l] = mean LM loss with layer l skipped − mean LM loss of the full model (optional)
//   input_mean_squares.{qkv, o_proj, gate_up, down_proj}[l][c] = mean over every valid calibration
//                    token of x[t, c]², x the input of that linear layer of layer l (optional: files
//                    written before it lack it); `export --calibration` weights quantization with it
import { readFileSync, existsSync } from 'node:fs';
import { writeFileAtomic } from '../io/atomic.ts';
import { KompresorError } from '../errors.ts';

export const SCORES_FORMAT = 'kompresor-importance';
export const SCORES_VERSION = 1;

/** The shape of the model the scores belong to, in HF config names. */
export interface ScoredShape {
  architecture: string;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  intermediate_size: number;
  vocab_size: number;
  tie_word_embeddings: boolean;
}

export interface CalibrationInfo {
  files: string[];
  samples: number;
  seq_len: number;
  /** Valid tokens seen. */
  tokens: number;
  /** 'memory' or 'stream' (layer by layer). */
  mode: 'memory' | 'stream';
  seconds: number;
}

/** Per layer, the mean square of each input channel of the linear layers ([L][width]). */
export interface InputMeanSquares {
  qkv: number[][];        // [L][C] input_layernorm output, the input of q_proj, k_proj, v_proj
  o_proj: number[][];     // [L][nH*hd]
  gate_up: number[][];    // [L][C] post_attention_layernorm output, the input of gate_proj, up_proj
  down_proj: number[][];  // [L][F]
}

export interface ImportanceScores {
  format: typeof SCORES_FORMAT;
  version: typeof SCORES_VERSION;
  model: ScoredShape;
  calibration: CalibrationInfo;
  hidden: number[];        // [C]
  heads: number[][];       // [L][nH]
  mlp: number[][];         // [L][F]
  layers: number[];        // [L] Block Importance
  layers_loss?: number[];  // [L] LM-loss increase when the layer is skipped
  input_mean_squares?: InputMeanSquares;
}

export function saveScores(path: string, s: ImportanceScores): void {
  writeFileAtomic(path, JSON.stringify(s));
}

function bad(path: string, rule: string, expected: string, found: string): KompresorError {
  return new KompresorError({ code: 'input_invalid', where: path, rule, expected, found, hint: 'recompute the scores with `kompresor score` for this model' });
}

function checkVector(path: string, name: string, v: unknown, n: number): void {
  if (!Array.isArray(v) || v.length !== n) throw bad(path, `${name} must have one score per entry`, `${n} numbers`, Array.isArray(v) ? `${v.length}` : typeof v);
  for (const x of v) if (typeof x !== 'number' || !Number.isFinite(x)) throw bad(path, `${name} must hold finite numbers`, 'finite numbers', JSON.stringify(x));
}

/** Reads and validates a scores file (every vector has the model's sizes, every value finite). */
export function loadScores(path: string): ImportanceScores {
  if (!existsSync(path)) {
    throw new KompresorError({ code: 'file_not_found', where: path, rule: 'the scores file must exist', hint: 'run `kompresor score MODEL_DIR --out SCORES` first' });
  }
  let s: ImportanceScores;
  try { s = JSON.parse(readFileSync(path, 'utf8')); } catch (e) {
    throw bad(path, 'the scores file must be JSON', 'JSON', (e as Error).message);
  }
  if (s?.format !== SCORES_FORMAT || s.version !== SCORES_VERSION) {
    throw bad(path, 'the file must be a Kompresor importance file', `format ${SCORES_FORMAT} v${SCORES_VERSION}`, `${s?.format} v${s?.version}`);
  }
  const m = s.model, L = m.num_hidden_layers;
  checkVector(path, 'hidden', s.hidden, m.hidden_size);
  checkVector(path, 'layers', s.layers, L);
  if (s.layers_loss !== undefined) checkVector(path, 'layers_loss', s.layers_loss, L);
  if (!Array.isArray(s.heads) || s.heads.length !== L) throw bad(path, 'heads must have one row per layer', `${L}`, `${s.heads?.length}`);
  if (!Array.isArray(s.mlp) || s.mlp.length !== L) throw bad(path, 'mlp must have one row per layer', `${L}`, `${s.mlp?.length}`);
  s.heads.forEach((h, l) => checkVector(path, `heads[${l}]`, h, m.num_attention_heads));
  s.mlp.forEach((f, l) => checkVector(path, `mlp[${l}]`, f, m.intermediate_size));
  if (s.input_mean_squares !== undefined) checkMeanSquares(path, s.input_mean_squares, m);
  return s;
}

function checkMeanSquares(path: string, ms: InputMeanSquares, m: ScoredShape): void {
  const widths: Record<keyof InputMeanSquares, number> = {
    qkv: m.hidden_size, o_proj: m.num_attention_heads * m.head_dim, gate_up: m.hidden_size, down_proj: m.intermediate_size,
  };
  for (const [k, w] of Object.entries(widths) as Array<[keyof InputMeanSquares, number]>) {
    const rows = ms?.[k];
    if (!Array.isArray(rows) || rows.length !== m.num_hidden_layers) {
      throw bad(path, `input_mean_squares.${k} must have one row per layer`, `${m.num_hidden_layers}`, `${Array.isArray(rows) ? rows.length : typeof rows}`);
    }
    rows.forEach((r, l) => checkVector(path, `input_mean_squares.${k}[${l}]`, r, w));
  }
}

/** Refuses scores computed for another shape than the model about to be pruned. */
export function checkScoresMatch(s: ImportanceScores, model: ScoredShape, scoresPath: string): void {
  for (const k of ['hidden_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'head_dim', 'intermediate_size'] as const) {
    if (s.model[k] !== model[k]) {
      throw new KompresorError({
        code: 'input_invalid', where: `${scoresPath}: model.${k}`, rule: 'the scores must belong to the model being pruned',
        expected: String(model[k]), found: String(s.model[k]), hint: 'recompute the scores with `kompresor score` on this model',
      });
    }
  }
}

/**
 * Indices sorted by descending score; ties keep the lower index first, so the order (and every
 * file derived from it) is deterministic.
 */
export function argsortDesc(v: readonly number[]): number[] {
  return v.map((_, i) => i).sort((a, b) => (v[b] - v[a]) || (a - b));
}
