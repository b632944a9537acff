// The calibration statistics of `kompresor score` as quantization weights: for each matrix, the
// mean square of each of its input channels over the calibration tokens (scores.ts
// input_mean_squares). The embedding is a lookup and the head's input (the final norm's output) is
// not probed, so token_embd and output.weight are quantized unweighted. One calibration pass thus
// serves pruning and quantization.
import type { ModelConfig } from '../io/hf_config.ts';
import { loadScores, checkScoresMatch, type InputMeanSquares } from '../prune/scores.ts';
import { scoredShape } from '../prune/importance.ts';
import { KompresorError } from '../errors.ts';
import type { MatrixRole } from './gguf_quant_mix.ts';

export type ChannelImportance = { [K in keyof InputMeanSquares]: Float32Array[] };

/** Reads a scores file and checks it belongs to this model and holds input mean squares. */
export function loadImportance(path: string, cfg: ModelConfig): ChannelImportance {
  const s = loadScores(path);
  checkScoresMatch(s, scoredShape(cfg), path);
  const ms = s.input_mean_squares;
  if (!ms) {
    throw new KompresorError({ code: 'input_invalid', where: `${path}: input_mean_squares`, rule: '--calibration needs the input mean squares of every linear layer',
      found: 'a scores file without them (written before they were recorded)', hint: 'run `kompresor score` on this model again' });
  }
  // a channel that never fired (mean square 0) would get no say at all; a floor keeps every weight
  // in the fit, 1e-6 of the row's mean, as small as matters
  const floor = (rows: number[][]) => rows.map((r) => {
    const mean = r.reduce((a, b) => a + b, 0) / r.length;
    return Float32Array.from(r, (v) => Math.max(v, 1e-6 * mean + 1e-30));
  });
  return { qkv: floor(ms.qkv), o_proj: floor(ms.o_proj), gate_up: floor(ms.gate_up), down_proj: floor(ms.down_proj) };
}

/** The importance of the input channels of a matrix, or null (embedding, head). */
export function importanceFor(imp: ChannelImportance, role: MatrixRole, layer: number): Float32Array | null {
  switch (role) {
    case 'attn_q': case 'attn_k': case 'attn_v': return imp.qkv[layer];
    case 'attn_output': return imp.o_proj[layer];
    case 'ffn_gate': case 'ffn_up': return imp.gate_up[layer];
    case 'ffn_down': return imp.down_proj[layer];
    default: return null;
  }
}
