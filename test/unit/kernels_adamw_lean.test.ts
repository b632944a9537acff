// AdamW with bf16 and 8-bit moments (src/tensor/kernels/adamw_lean.ts): the code tables, the
// encoder's rounding (unbiased, a positive v never 0), one step against float32-state AdamW with
// only the storage rounded, and a few hundred steps on a noisy quadratic tracking the float32 run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adamwUpdate } from '../../src/tensor/kernels/adamw.ts';
import {
  adamwUpdateBf16, adamwUpdateInt8, M_CODE, V_CODE, QUANT_BLOCK, encodeMagnitude, roundingNoise, powInt,
} from '../../src/tensor/kernels/adamw_lean.ts';
import { bf16ToF32, f32ToBf16 } from '../../src/tensor/kernels/dtype.ts';
import { randn, relErr } from '../helpers.ts';

const H = { lr: 1e-2, b1: 0.9, b2: 0.95, eps: 1e-8, wd: 0.1 };

test('M_CODE and V_CODE: 0 at code 0, 1 at the top, strictly increasing, 15 octaves', () => {
  for (const [name, code, top] of [['M_CODE', M_CODE, 127], ['V_CODE', V_CODE, 255]] as const) {
    assert.equal(code.length, top + 1, name);
    assert.equal(code[0], 0, name);
    assert.equal(code[top], 1, name);
    for (let k = 1; k <= top; k++) assert.ok(code[k] > code[k - 1], `${name}[${k}] must exceed ${name}[${k - 1}]`);
    assert.ok(code[1] > 1e-5 && code[1] < 2e-5, `${name}[1] = ${code[1]}`);
    // relative spacing stays within one mantissa step: 1/8 (m) or 1/16 (v) at worst
    const worst = Math.max(...Array.from({ length: top - 1 }, (_, i) => code[i + 2] / code[i + 1] - 1));
    assert.ok(worst <= (top === 127 ? 1 / 8 : 1 / 16) + 1e-12, `${name} relative step ${worst}`);
  }
});

test('encodeMagnitude: stochastic rounding is unbiased, stays between the two codes, and keeps a positive v above 0', () => {
  const x = 0.3;
  let sum = 0;
  const n = 20000;
  for (let i = 0; i < n; i++) {
    const k = encodeMagnitude(V_CODE, x, roundingNoise(7, i, 1), true);
    assert.ok(V_CODE[k] <= x * 1.07 && V_CODE[k] >= x / 1.07, `code ${V_CODE[k]} is not next to ${x}`);
    sum += V_CODE[k];
  }
  assert.ok(Math.abs(sum / n / x - 1) < 2e-3, `mean decoded ${sum / n} vs ${x}`);
  assert.equal(encodeMagnitude(V_CODE, 1e-12, 0.999, true), 1, 'a tiny positive v keeps the smallest code');
  assert.equal(encodeMagnitude(M_CODE, 1e-12, 0.999, false), 0, 'a tiny m may round to 0');
  assert.equal(encodeMagnitude(M_CODE, 1.0000001, 0, false), 127, 'values above the scale clamp to the top');
  assert.equal(powInt(0.5, 37), 2 ** -37);
  assert.ok(Math.abs(powInt(0.95, 1000) - 0.95 ** 1000) < 1e-15);
});

test('adamwUpdateBf16(n=300,step=1): m, v are the bf16 roundings of float32 AdamW\'s, params equal', () => {
  const n = 300, p = randn(n, 1), g = randn(n, 2, 0.01);
  const p32 = p.slice(), m32 = new Float32Array(n), v32 = new Float32Array(n);
  const m16 = new Uint16Array(n), v16 = new Uint16Array(n);
  adamwUpdate(p32, g, m32, v32, n, H.lr, H.b1, H.b2, H.eps, H.wd, 1);
  adamwUpdateBf16(p, g, m16, v16, n, H.lr, H.b1, H.b2, H.eps, H.wd, 1);
  const want = new Uint16Array(n);
  f32ToBf16(want, m32, n);
  assert.deepEqual(m16, want, 'm');
  f32ToBf16(want, v32, n);
  assert.deepEqual(v16, want, 'v');
  assert.ok(relErr(p, p32) < 1e-7, `params relErr ${relErr(p, p32)}`);
});

test('adamwUpdateInt8(n=1000,step=1): decoded moments within one code step of the exact ones; block scales are the maxima', () => {
  const n = 1000, blocks = Math.ceil(n / QUANT_BLOCK);
  const p = randn(n, 3), g = randn(n, 4, 0.01);
  g[5] = 0; g[300] = 1e-9; // a zero and a tiny gradient: m may be 0, v must not be
  const p32 = p.slice(), m32 = new Float32Array(n), v32 = new Float32Array(n);
  const mq = new Uint8Array(n), vq = new Uint8Array(n), ms = new Float32Array(blocks), vs = new Float32Array(blocks);
  adamwUpdate(p32, g, m32, v32, n, H.lr, H.b1, H.b2, H.eps, H.wd, 1);
  adamwUpdateInt8(p, g, mq, ms, vq, vs, n, H.lr, H.b1, H.b2, H.eps, H.wd, 1, 12345);
  assert.ok(relErr(p, p32) < 1e-7, 'params use the unrounded moments');
  for (let j = 0; j < blocks; j++) {
    const blk = m32.subarray(j * QUANT_BLOCK, (j + 1) * QUANT_BLOCK);
    assert.equal(ms[j], Math.max(...Array.from(blk, Math.abs)), `m scale of block ${j}`);
  }
  for (let i = 0; i < n; i++) {
    const j = Math.floor(i / QUANT_BLOCK);
    const m = ms[j] * M_CODE[mq[i] & 0x7f] * (mq[i] & 0x80 ? -1 : 1), s = vs[j] * V_CODE[vq[i]];
    if (Math.abs(m32[i]) > ms[j] * 2e-5) assert.ok(Math.abs(m / m32[i] - 1) <= 1 / 7.5, `m[${i}] ${m} vs ${m32[i]}`);
    if (v32[i] > 0) assert.ok(s > 0, `v[${i}] > 0 must not decode to 0`);
    if (Math.sqrt(v32[i]) > vs[j] * 2e-5) assert.ok(Math.abs(s / Math.sqrt(v32[i]) - 1) <= 1 / 15.5, `sqrt v[${i}] ${s} vs ${Math.sqrt(v32[i])}`);
  }
  assert.equal(mq[5], 0, 'a zero gradient gives m = 0');
});

test('adamwUpdateBf16 and adamwUpdateInt8(n=512,steps=300) track float32 AdamW on a noisy quadratic', () => {
  // loss 0.5 * sum a_i (p_i - t_i)^2 with gradient noise: every run should reach the target
  const n = 512, steps = 300, a = randn(n, 5).map((x) => 0.5 + Math.abs(x)), t = randn(n, 6);
  const runs = { f32: randn(n, 7), bf16: randn(n, 7), int8: randn(n, 7) };
  const st = {
    m: new Float32Array(n), v: new Float32Array(n), m16: new Uint16Array(n), v16: new Uint16Array(n),
    mq: new Uint8Array(n), vq: new Uint8Array(n), ms: new Float32Array(2), vs: new Float32Array(2),
  };
  const grad = (p: Float32Array, step: number) => {
    const noise = randn(n, 1000 + step, 0.1);
    return p.map((pi, i) => a[i] * (pi - t[i]) + noise[i]);
  };
  for (let step = 1; step <= steps; step++) {
    const lr = 0.05 * (1 - step / (steps + 1));
    adamwUpdate(runs.f32, grad(runs.f32, step), st.m, st.v, n, lr, H.b1, H.b2, H.eps, 0, step);
    adamwUpdateBf16(runs.bf16, grad(runs.bf16, step), st.m16, st.v16, n, lr, H.b1, H.b2, H.eps, 0, step);
    adamwUpdateInt8(runs.int8, grad(runs.int8, step), st.mq, st.ms, st.vq, st.vs, n, lr, H.b1, H.b2, H.eps, 0, step, step * 7919);
  }
  const dist = (p: Float32Array) => relErr(p, t);
  assert.ok(dist(runs.f32) < 0.05, `f32 run reaches the target: ${dist(runs.f32)}`);
  for (const k of ['bf16', 'int8'] as const) {
    assert.ok(dist(runs[k]) < 1.5 * dist(runs.f32) + 0.01, `${k} distance ${dist(runs[k])} vs f32 ${dist(runs.f32)}`);
    assert.ok(relErr(runs[k], runs.f32) < 0.05, `${k} vs f32 weights: ${relErr(runs[k], runs.f32)}`);
  }
  // bf16 state dequantizes through float32 exactly
  const back = new Float32Array(n);
  bf16ToF32(back, st.m16, n);
  assert.ok(back.every(Number.isFinite));
});
