// SwiGLU activation of the Llama MLP: the plain TypeScript reference for native/src/swiglu.cpp.
// Dimension legend: N = token rows, F = MLP intermediate size. The fused gate|up projection
// gives gateup[N,2F] with gate in columns [0,F) and up in [F,2F) of every row.
import type { F32 } from './types.ts';

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** out[N,F] = silu(gate) * up, silu(g) = g * sigmoid(g). Overwrites out; saves nothing (gateup is kept). */
export function swigluForward(out: F32, gateup: F32, N: number, F: number): void {
  for (let n = 0; n < N; n++) {
    const gu = n * 2 * F, o = n * F;
    for (let i = 0; i < F; i++) {
      const g = gateup[gu + i], u = gateup[gu + F + i];
      out[o + i] = g * sigmoid(g) * u;
    }
  }
}

/**
 * Adds into dgateup[N,2F].
 *
 * in the forward pass this was:  y = g * s(g) * u,  s = sigmoid, s' = s * (1 - s)
 * so now we have:
 *   dg = dy * u * (s + g * s * (1 - s)) = dy * u * s * (1 + g * (1 - s))
 *   du = dy * g * s
 */
export function swigluBackward(dgateup: F32, dout: F32, gateup: F32, N: number, F: number): void {
  for (let n = 0; n < N; n++) {
    const gu = n * 2 * F, o = n * F;
    for (let i = 0; i < F; i++) {
      const g = gateup[gu + i], u = gateup[gu + F + i], dy = dout[o + i];
      const s = sigmoid(g);
      dgateup[gu + i] += dy * u * s * (1 + g * (1 - s));
      dgateup[gu + F + i] += dy * g * s;
    }
  }
}
