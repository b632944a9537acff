// What a run's training state costs, per parameter and in total, from the config and the memory
// options alone (nothing is allocated): float32 weights, float32 gradients of the trainable
// tensors, AdamW moments in their storage (src/train/moments.ts) and the activation arena of one
// micro-batch (src/model/activations.ts). The trainer reports it when a run starts; docs/training.md
// tabulates it, and scripts/memory_table.ts prints it for any config.json.
import type { ModelConfig } from '../io/hf_config.ts';
import { buildLayout } from '../model/parameters.ts';
import { activationBytes } from '../model/activations.ts';
import { frozenTensors, trainableLayout, type FreezablePart } from '../model/freeze.ts';
import { momentBytes, type OptimState } from './moments.ts';

export interface StateMemory {
  parameters: number;
  trainable: number;
  optim_state: OptimState;
  frozen: FreezablePart[];
  recompute: boolean;
  weights_bytes: number;
  gradients_bytes: number;
  moments_bytes: number;
  /** (weights + gradients + moments) / parameters. */
  bytes_per_parameter: number;
  /** The activation arena of one micro-batch (microBatch x seqLen tokens), and per token. */
  activations_bytes: number;
  activation_bytes_per_token: number;
}

export function stateMemory(cfg: ModelConfig, o: { optimState: OptimState; freeze: FreezablePart[]; recompute: boolean; microBatch: number; seqLen: number }): StateMemory {
  const layout = buildLayout(cfg);
  const trainable = trainableLayout(layout, frozenTensors(cfg, o.freeze));
  const weights = 4 * layout.total, grads = 4 * trainable.total;
  const moments = trainable.slots.reduce((s, t) => s + momentBytes(o.optimState, t.size), 0);
  const acts = activationBytes(cfg, o.microBatch, o.seqLen, false, true, o.recompute);
  return {
    parameters: layout.total, trainable: trainable.total, optim_state: o.optimState, frozen: o.freeze, recompute: o.recompute,
    weights_bytes: weights, gradients_bytes: grads, moments_bytes: moments, bytes_per_parameter: (weights + grads + moments) / layout.total,
    activations_bytes: acts, activation_bytes_per_token: acts / (o.microBatch * o.seqLen),
  };
}

/** "training state: 9.8 bytes/parameter (weights 4.00, gradients 3.12, moments int8 2.71) ..." */
export function describeStateMemory(m: StateMemory): string {
  const per = (b: number) => (b / m.parameters).toFixed(2);
  const frozen = m.frozen.length > 0 ? `, frozen ${m.frozen.join(', ')}` : '';
  return `training state: ${m.bytes_per_parameter.toFixed(2)} bytes/parameter (weights ${per(m.weights_bytes)}, gradients ${per(m.gradients_bytes)}, ` +
    `moments ${m.optim_state} ${per(m.moments_bytes)}${frozen}) = ${gib(m.weights_bytes + m.gradients_bytes + m.moments_bytes)} for ` +
    `${m.parameters.toLocaleString('en-US')} parameters; activations ${gib(m.activations_bytes)} per micro-batch ` +
    `(${Math.round(m.activation_bytes_per_token).toLocaleString('en-US')} bytes/token${m.recompute ? ', recomputed per layer' : ''})`;
}

function gib(b: number): string {
  return b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`;
}
