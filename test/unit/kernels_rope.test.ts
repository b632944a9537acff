// RoPE reference kernel: forward against HF's formula written out in float64
// (q * cat(cos, cos) + rotate_half(q) * cat(sin, sin)), backward against finite differences,
// and the rotation being orthogonal (norm preserved, backward undoes forward).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ropeForward, ropeBackward } from '../../src/tensor/kernels/rope.ts';
import { randn, relErr, finiteDiff, dot, assertClose } from '../helpers.ts';

/** HF LlamaRotaryEmbedding tables: inv_freq[i] = base^(-2i/hd), angle = pos * inv_freq. (maxPos, hd/2) */
function ropeTables(maxPos: number, hd: number, base = 10000): { cos: Float32Array; sin: Float32Array } {
  const half = hd / 2, cos = new Float32Array(maxPos * half), sin = new Float32Array(maxPos * half);
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * Math.pow(base, -(2 * i) / hd);
      cos[p * half + i] = Math.cos(a); sin[p * half + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}

/** HF apply_rotary_pos_emb on every rotated head, float64, on a copy. */
function naiveRope(x: Float32Array, pos: Int32Array, cos: Float32Array, sin: Float32Array,
  N: number, nHeads: number, hd: number, stride: number): Float64Array {
  const y = Float64Array.from(x), half = hd / 2;
  for (let n = 0; n < N; n++) {
    for (let h = 0; h < nHeads; h++) {
      const o = n * stride + h * hd;
      for (let d = 0; d < hd; d++) {
        const i = d % half; // cat(cos, cos): both halves use frequency d mod hd/2
        const rot = d < half ? -x[o + d + half] : x[o + d - half]; // rotate_half = cat(-x2, x1)
        y[o + d] = x[o + d] * cos[pos[n] * half + i] + rot * sin[pos[n] * half + i];
      }
    }
  }
  return y;
}

/** Two packed documents: positions restart at 0 where the second one begins. */
function packedPositions(N: number): Int32Array {
  const pos = new Int32Array(N), cut = Math.floor(N / 2);
  for (let n = 0; n < N; n++) pos[n] = n < cut ? n : n - cut;
  return pos;
}

for (const [N, nHeads, hd, extra] of [[5, 3, 8, 0], [6, 2, 4, 12], [7, 4, 6, 6]] as const) {
  const stride = nHeads * hd + extra;
  const name = `rope(N=${N},nHeads=${nHeads},hd=${hd},stride=${stride})`;
  const { cos, sin } = ropeTables(64, hd);
  const pos = packedPositions(N);
  pos[N - 1] = 50; // a far position, so high frequencies wrap around many times

  test(`${name} forward matches HF apply_rotary_pos_emb`, () => {
    const x = randn(N * stride, 1);
    const want = naiveRope(x, pos, cos, sin, N, nHeads, hd, stride);
    const y = x.slice();
    ropeForward(y, pos, cos, sin, N, nHeads, hd, stride);
    assert.ok(relErr(y, want) < 1e-6, `relErr ${relErr(y, want)}`);
    // columns past the rotated heads (e.g. v in a fused q|k|v row) are left alone
    for (let n = 0; n < N; n++) {
      for (let c = nHeads * hd; c < stride; c++) assert.equal(y[n * stride + c], x[n * stride + c]);
    }
  });

  test(`${name} is a rotation: norms kept, position 0 is the identity, backward undoes forward`, () => {
    const x = randn(N * stride, 2);
    const y = x.slice();
    ropeForward(y, pos, cos, sin, N, nHeads, hd, stride);
    for (let n = 0; n < N; n++) {
      for (let h = 0; h < nHeads; h++) {
        const a = x.subarray(n * stride + h * hd, n * stride + (h + 1) * hd);
        const b = y.subarray(n * stride + h * hd, n * stride + (h + 1) * hd);
        assertClose(Math.sqrt(dot(b, b)), Math.sqrt(dot(a, a)), 1e-6, `norm of row ${n} head ${h}`);
        if (pos[n] === 0) assert.deepEqual(b, a, `position 0 must not rotate row ${n}`);
      }
    }
    assert.ok(relErr(y, x) > 0.1, 'positions > 0 must rotate');
    ropeBackward(y, pos, cos, sin, N, nHeads, hd, stride);
    assert.ok(relErr(y, x) < 1e-6, `R^T R x != x: relErr ${relErr(y, x)}`);
  });

  test(`${name} backward matches finite differences`, () => {
    const x = randn(N * stride, 3), w = randn(N * stride, 4);
    const loss = () => dot(naiveRope(x, pos, cos, sin, N, nHeads, hd, stride), w);
    const fd = finiteDiff(loss, x, 1e-2);
    const dx = w.slice(); // dL/dy = w; ropeBackward turns it into dL/dx in place
    ropeBackward(dx, pos, cos, sin, N, nHeads, hd, stride);
    assert.ok(relErr(dx, fd) < 1e-4, `relErr ${relErr(dx, fd)}`);
  });
}

test('rope rejects an odd head_dim and a position past the cos/sin tables', () => {
  const { cos, sin } = ropeTables(8, 4);
  const x = new Float32Array(20);
  assert.throws(() => ropeForward(x, new Int32Array(4), cos, sin, 4, 1, 5, 5), /even head_dim.*hd=5/);
  assert.throws(() => ropeBackward(x, Int32Array.from([0, 1, 8, 2]), cos, sin, 4, 1, 4, 4), /pos\[2\]=8/);
});
