// Shared pieces of the alignment tests (logprobs, dpo, grpo): an independent float64 log-softmax
// and random preference pairs over the tiny fixture's 64 token ids.
import type { PairExample, TokenExample } from '../src/align/data.ts';
import { rng } from './helpers.ts';

/** log_softmax(z/T)[y] in float64, written independently (divide, not multiply by 1/T). */
export function lp64(z: ArrayLike<number>, y: number, temp: number): number {
  let m = -Infinity;
  for (let j = 0; j < z.length; j++) m = Math.max(m, z[j] / temp);
  let s = 0;
  for (let j = 0; j < z.length; j++) s += Math.exp(z[j] / temp - m);
  return z[y] / temp - m - Math.log(s);
}

/** Pairs over the fixture's 64 ids: a shared prompt, then different answers (masked). */
export function pairs(n: number, seed: number): PairExample[] {
  const r = rng(seed);
  const seq = (prompt: number[], len: number): TokenExample => {
    const ids = Int32Array.from([...prompt, ...Array.from({ length: len }, () => Math.floor(r() * 64))]);
    return { ids, mask: new Uint8Array(ids.length).fill(1, prompt.length), where: 'x' };
  };
  return Array.from({ length: n }, () => {
    const prompt = Array.from({ length: 2 + Math.floor(r() * 5) }, () => Math.floor(r() * 64));
    return { chosen: seq(prompt, 1 + Math.floor(r() * 5)), rejected: seq(prompt, 1 + Math.floor(r() * 5)), where: 'x' };
  });
}
