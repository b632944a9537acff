// The native AdamW with bf16 and 8-bit moments (native/src/adamw_lean.cpp) against its TypeScript
// reference (src/tensor/kernels/adamw_lean.ts): the same operations in double with no pow and
// no fused multiply-adds, so parameters, moments, codes and scales are equal BIT FOR BIT, on
// sizes below and above the parallel threshold (and not a multiple of the 256-value block),
// on offset views, over several steps; plus argument checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adamwUpdateBf16, adamwUpdateInt8, QUANT_BLOCK } from '../../src/tensor/kernels/adamw_lean.ts';
import { randn } from '../helpers.ts';
import { nat, offsetF32, offsetU16, checkShortBuffers } from '../native_helpers.ts';

function offsetU8(x: Uint8Array): Uint8Array {
  const big = new Uint8Array(x.length + 8).fill(0xab);
  big.set(x, 3);
  return big.subarray(3, 3 + x.length);
}

const lr = 3e-3, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;

for (const n of [1000, 70001]) {
  test(`adamwUpdateBf16(n=${n},steps=5) native equals the reference bit for bit`, () => {
    const p = [offsetF32(randn(n, 11)), randn(n, 11)];
    const m = [offsetU16(new Uint16Array(n)), new Uint16Array(n)], v = [offsetU16(new Uint16Array(n)), new Uint16Array(n)];
    for (let step = 1; step <= 5; step++) {
      const g = offsetF32(randn(n, 20 + step, 0.01));
      nat('adamwUpdateBf16')(p[0], g, m[0], v[0], n, lr, b1, b2, eps, wd, step);
      adamwUpdateBf16(p[1], g, m[1], v[1], n, lr, b1, b2, eps, wd, step);
    }
    assert.deepEqual(p[0], p[1], 'params');
    assert.deepEqual(m[0], m[1], 'm');
    assert.deepEqual(v[0], v[1], 'v');
  });

  test(`adamwUpdateInt8(n=${n},steps=5) native equals the reference bit for bit`, () => {
    const blocks = Math.ceil(n / QUANT_BLOCK);
    const p = [offsetF32(randn(n, 12)), randn(n, 12)];
    const mq = [offsetU8(new Uint8Array(n)), new Uint8Array(n)], vq = [offsetU8(new Uint8Array(n)), new Uint8Array(n)];
    const ms = [offsetF32(new Float32Array(blocks)), new Float32Array(blocks)], vs = [offsetF32(new Float32Array(blocks)), new Float32Array(blocks)];
    for (let step = 1; step <= 5; step++) {
      const g = offsetF32(randn(n, 40 + step, 0.01));
      g[17] = 0;
      const salt = (0x9e3779b9 * step) >>> 0;
      nat('adamwUpdateInt8')(p[0], g, mq[0], ms[0], vq[0], vs[0], n, lr, b1, b2, eps, wd, step, salt);
      adamwUpdateInt8(p[1], g, mq[1], ms[1], vq[1], vs[1], n, lr, b1, b2, eps, wd, step, salt);
    }
    assert.deepEqual(p[0], p[1], 'params');
    assert.deepEqual(mq[0], mq[1], 'm codes');
    assert.deepEqual(vq[0], vq[1], 'v codes');
    assert.deepEqual(ms[0], ms[1], 'm scales');
    assert.deepEqual(vs[0], vs[1], 'v scales');
    assert.ok(new Set(mq[1]).size > 100, 'the m codes use most of the table');
  });
}

test('adamwUpdateBf16 / adamwUpdateInt8 native argument checks', () => {
  const f = (k: number) => new Float32Array(k), u16 = (k: number) => new Uint16Array(k), u8 = (k: number) => new Uint8Array(k);
  checkShortBuffers('adamwUpdateBf16', () => [f(10), f(10), u16(10), u16(10), 10, lr, b1, b2, eps, wd, 1],
    [[0, 'params'], [1, 'grads'], [2, 'm'], [3, 'v']]);
  checkShortBuffers('adamwUpdateInt8', () => [f(300), f(300), u8(300), f(2), u8(300), f(2), 300, lr, b1, b2, eps, wd, 1, 5],
    [[0, 'params'], [1, 'grads'], [2, 'mq'], [3, 'mScale'], [4, 'vq'], [5, 'vScale']]);
  assert.throws(() => nat('adamwUpdateInt8')(f(3), f(3), u8(3), f(1), u8(3), f(1), 3, lr, b1, b2, eps, wd, 0, 5), /step must be >= 1/);
  assert.throws(() => nat('adamwUpdateBf16')(f(3), f(3), f(3) as unknown as Uint16Array, u16(3), 3, lr, b1, b2, eps, wd, 1), /m must be a Uint16Array/);
});
