// Next-token sampling with the Hugging Face warper order: temperature -> top-k -> top-p -> min-p,
// each keeping at least one token, then a draw from the softmax of what is left. Temperature 0
// means greedy (argmax). A seeded generator makes runs repeatable.

export interface SamplingOptions {
  temperature: number; // 0 = greedy
  topK: number;        // 0 = off
  topP: number;        // 1 = off
  minP: number;        // 0 = off
}

export const GREEDY: SamplingOptions = { temperature: 0, topK: 0, topP: 1, minP: 0 };

/** Deterministic uniform [0, 1) generator (mulberry32); state is a plain number to checkpoint. */
export class Rng {
  state: number;
  constructor(seed: number) { this.state = seed >>> 0; }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

export function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/**
 * The probabilities a sampler draws from, after every warper: a sparse list of (token, p)
 * that sums to 1. Exposed so tests can check each warper against the HF definition.
 */
export function warpedDistribution(logits: Float32Array, o: SamplingOptions): { ids: Int32Array; probs: Float64Array } {
  const V = logits.length;
  // candidates sorted by logit, descending (ties by id, as a stable sort would)
  let ids = Int32Array.from({ length: V }, (_, i) => i);
  const scaled = new Float64Array(V);
  for (let i = 0; i < V; i++) scaled[i] = logits[i] / o.temperature;
  ids.sort((a, b) => scaled[b] - scaled[a] || a - b);
  if (o.topK > 0 && o.topK < ids.length) ids = ids.subarray(0, o.topK);
  let probs = softmaxOf(scaled, ids);
  if (o.topP < 1) {
    // keep the smallest prefix whose mass reaches topP (HF drops tokens whose cumulative
    // ascending mass is <= 1 - topP, which keeps the same set)
    let cum = 0, keep = 0;
    while (keep < ids.length) { cum += probs[keep]; keep++; if (cum >= o.topP) break; }
    ids = ids.subarray(0, Math.max(1, keep));
    probs = softmaxOf(scaled, ids);
  }
  if (o.minP > 0) {
    const floor = o.minP * probs[0];
    let keep = 0;
    while (keep < ids.length && probs[keep] >= floor) keep++;
    ids = ids.subarray(0, Math.max(1, keep));
    probs = softmaxOf(scaled, ids);
  }
  return { ids, probs };
}

function softmaxOf(scaled: Float64Array, ids: Int32Array): Float64Array {
  const m = scaled[ids[0]];
  const p = new Float64Array(ids.length);
  let s = 0;
  for (let i = 0; i < ids.length; i++) { p[i] = Math.exp(scaled[ids[i]] - m); s += p[i]; }
  for (let i = 0; i < ids.length; i++) p[i] /= s;
  return p;
}

/** One token from logits[V]. */
export function sampleToken(logits: Float32Array, o: SamplingOptions, rng: Rng): number {
  if (o.temperature <= 0) return argmax(logits);
  const { ids, probs } = warpedDistribution(logits, o);
  let u = rng.next(), i = 0;
  for (; i < ids.length - 1; i++) { u -= probs[i]; if (u < 0) break; }
  return ids[i];
}
