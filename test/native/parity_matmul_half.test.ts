// matmulForwardHalf (16-bit weights widened inside the kernel) against its TypeScript reference,
// and against matmulForward on the widened float32 weight, on both native paths: the GEMV for few
// rows (N <= 8: decode) and the widened tiles + sgemm for many (N = 9, with OC = 4100 spanning two
// tiles of 4096 rows at C = 1024). Buffers are offset views in NaN-padded arrays, as in parity_kernels_b.
//
// Bound: both sides sum float32 products of the same widened weights; the GEMV keeps 8 lanes of
// FMA partial sums per row, sgemm its own blocking, the reference a JS double: 1e-6 relative
// (measured <= 3e-7), the same bound as matmulForward's parity.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matmulForward, matmulForwardHalf } from '../../src/tensor/kernels/matmul.ts';
import { f32ToBf16, f32ToF16, bf16ToF32, f16ToF32 } from '../../src/tensor/kernels/dtype.ts';
import { randn } from '../helpers.ts';
import { nat, offsetF32, offsetU16, assertPadding, assertRel } from '../native_helpers.ts';

for (const [N, C, OC] of [[1, 576, 4099], [5, 13, 7], [8, 100, 33], [9, 1024, 4100], [9, 64, 20]] as const) {
  for (const f16 of [false, true]) {
    const name = `matmulForwardHalf(N=${N},C=${C},OC=${OC},${f16 ? 'f16' : 'bf16'})`;
    test(`${name} native matches the reference and matmulForward on the widened weight`, () => {
      const inp = offsetF32(randn(N * C, 201, 2));
      const w32 = randn(OC * C, 202, 0.05);
      const w16 = new Uint16Array(OC * C);
      (f16 ? f32ToF16 : f32ToBf16)(w16, w32, OC * C);
      const wide = new Float32Array(OC * C);
      (f16 ? f16ToF32 : bf16ToF32)(wide, w16, OC * C);
      const weight = offsetU16(w16);
      for (const bias of [null, offsetF32(randn(OC, 203))]) {
        for (const accumulate of [false, true]) {
          const start = accumulate ? randn(N * OC, 204) : new Float32Array(N * OC).fill(NaN);
          const a = offsetF32(start), b = start.slice(), c = start.slice();
          nat('matmulForwardHalf')(a, inp, weight, bias, N, C, OC, accumulate, f16);
          matmulForwardHalf(b, inp, weight, bias, N, C, OC, accumulate, f16);
          matmulForward(c, inp, wide, bias, N, C, OC, accumulate);
          assert.ok(a.every(Number.isFinite), 'overwrite must not read the NaNs already in out');
          assert.deepEqual(b, c, 'the reference is matmulForward on the widened weight, exactly');
          assertRel(a, b, 1e-6, `out (bias ${bias !== null}, accumulate ${accumulate})`);
          assertPadding(a, 'out');
        }
      }
    });
  }
}

test('matmulForwardHalf native rejects a float32 weight and short buffers, naming the argument', () => {
  const N = 3, C = 4, OC = 5, f = (n: number) => new Float32Array(n);
  assert.throws(() => nat('matmulForwardHalf')(f(N * OC), f(N * C), f(OC * C) as unknown as Uint16Array, null, N, C, OC),
    /matmulForwardHalf: argument weight must be a Uint16Array/);
  assert.throws(() => nat('matmulForwardHalf')(f(N * OC), f(N * C), new Uint16Array(OC * C - 1), null, N, C, OC),
    /matmulForwardHalf: weight has 19 elements, needs 20/);
  assert.throws(() => nat('matmulForwardHalf')(f(N * OC - 1), f(N * C), new Uint16Array(OC * C), null, N, C, OC),
    /matmulForwardHalf: out has 14 elements, needs 15/);
});
