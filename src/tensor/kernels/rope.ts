// Rotary position embedding (RoPE), forward and backward: the plain TypeScript reference for
// native/src/rope.cpp. HF modeling_llama `apply_rotary_pos_emb` with the rotate_half convention:
// the head vector is split into halves x1 = x[:hd/2], x2 = x[hd/2:] and pair i is rotated by the
// angle of frequency i at the token's position (not interleaved pairs as in the Meta checkpoints).
// Dimension legend: N = token rows, nHeads = heads rotated per row, hd = head_dim (even),
// half = hd/2, stride = row length in floats (a row may hold more than the rotated heads, e.g.
// the fused q|k|v row where only q and k are rotated). cos/sin are [maxPos, half], built by the
// caller (inv_freq and any rope_scaling live there, not here).
import type { F32, I32 } from './types.ts';
import { KompresorError } from '../../errors.ts';

function checkRope(where: string, pos: I32, cos: F32, N: number, hd: number): void {
  if (hd % 2 !== 0) {
    throw new KompresorError({ code: 'input_invalid', where, rule: 'rotate_half needs an even head_dim', found: `hd=${hd}` });
  }
  const half = hd / 2;
  for (let n = 0; n < N; n++) {
    const p = pos[n];
    if (!(p >= 0 && (p + 1) * half <= cos.length)) {
      throw new KompresorError({
        code: 'input_invalid', where, rule: 'every position must index a row of the cos/sin tables',
        expected: `0 <= pos < ${Math.floor(cos.length / Math.max(half, 1))}`, found: `pos[${n}]=${p}`,
      });
    }
  }
}

/**
 * In place: x[n, h*hd .. (h+1)*hd) for h < nHeads is rotated by position pos[n].
 * y1 = x1*c - x2*s; y2 = x2*c + x1*s (HF: q*cos + rotate_half(q)*sin, rotate_half(q) = [-q2, q1]).
 */
export function ropeForward(x: F32, pos: I32, cos: F32, sin: F32, N: number, nHeads: number, hd: number, stride: number): void {
  checkRope('ropeForward', pos, cos, N, hd);
  const half = hd / 2;
  for (let n = 0; n < N; n++) {
    const cs = pos[n] * half; // row of the cos/sin tables for this token
    for (let h = 0; h < nHeads; h++) {
      const x1 = n * stride + h * hd, x2 = x1 + half;
      for (let i = 0; i < half; i++) {
        const c = cos[cs + i], s = sin[cs + i];
        const a = x[x1 + i], b = x[x2 + i];
        x[x1 + i] = a * c - b * s;
        x[x2 + i] = b * c + a * s;
      }
    }
  }
}

/**
 * In place: dx = R^T dy, the transpose of the forward rotation. In the forward pass this was
 * [y1; y2] = [[c, -s], [s, c]] [x1; x2], so now dx1 = dy1*c + dy2*s and dx2 = dy2*c - dy1*s.
 * (RoPE has no weights, so its backward overwrites the gradient instead of adding into one.)
 */
export function ropeBackward(dx: F32, pos: I32, cos: F32, sin: F32, N: number, nHeads: number, hd: number, stride: number): void {
  checkRope('ropeBackward', pos, cos, N, hd);
  const half = hd / 2;
  for (let n = 0; n < N; n++) {
    const cs = pos[n] * half;
    for (let h = 0; h < nHeads; h++) {
      const x1 = n * stride + h * hd, x2 = x1 + half;
      for (let i = 0; i < half; i++) {
        const c = cos[cs + i], s = sin[cs + i];
        const a = dx[x1 + i], b = dx[x2 + i];
        dx[x1 + i] = a * c + b * s;
        dx[x2 + i] = b * c - a * s;
      }
    }
  }
}
