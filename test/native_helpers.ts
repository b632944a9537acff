// What the native-parity tests share: the native kernel or a failing assertion saying why it is
// missing, offset views inside padded buffers (the addon must honour byteOffset and stay inside
// the view), and the check that a native kernel names the argument it finds too short.
import assert from 'node:assert/strict';
import { native, type NativeAddon } from '../src/tensor/native.ts';
import type { Kernels } from '../src/tensor/kernels/types.ts';
import { relErr } from './helpers.ts';

/** The native kernel `name`, or a failing assertion that says why it is missing (never a skip). */
export function nat<K extends keyof Kernels>(name: K): Kernels[K] {
  assert.ok(native, 'the native addon is not built (native/build/Release/kompresor_native.node); run `npm run build:native`');
  const fn = (native as NativeAddon)[name];
  assert.equal(typeof fn, 'function', `the native addon does not export ${name}`);
  return fn as Kernels[K];
}

const PAD_BEFORE = 3, PAD_AFTER = 5;
const guarded = new WeakMap<Float32Array, Float32Array>();

/** A copy of x at element offset 3 inside a larger NaN-filled buffer (byteOffset 12). */
export function offsetF32(x: Float32Array): Float32Array {
  const big = new Float32Array(x.length + PAD_BEFORE + PAD_AFTER).fill(NaN);
  big.set(x, PAD_BEFORE);
  const view = big.subarray(PAD_BEFORE, PAD_BEFORE + x.length);
  guarded.set(view, big);
  return view;
}

export function offsetU16(x: Uint16Array): Uint16Array {
  const big = new Uint16Array(x.length + PAD_BEFORE + PAD_AFTER).fill(0xffff);
  big.set(x, PAD_BEFORE);
  return big.subarray(PAD_BEFORE, PAD_BEFORE + x.length);
}

export function offsetI32(x: Int32Array): Int32Array {
  const big = new Int32Array(x.length + PAD_BEFORE + PAD_AFTER).fill(-7);
  big.set(x, PAD_BEFORE);
  return big.subarray(PAD_BEFORE, PAD_BEFORE + x.length);
}

/** The NaN padding around an offsetF32 view is intact (nothing was written out of bounds). */
export function assertPadding(view: Float32Array, what: string): void {
  const big = guarded.get(view);
  assert.ok(big, `${what} is not an offsetF32 view`);
  for (let i = 0; i < big.length; i++) {
    if (i >= PAD_BEFORE && i < PAD_BEFORE + view.length) continue;
    assert.ok(Number.isNaN(big[i]), `${what}: element ${i - PAD_BEFORE} outside the view was overwritten with ${big[i]}`);
  }
}

export function assertRel(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  const e = relErr(a, b);
  assert.ok(e < tol, `${what}: relErr ${e} >= ${tol}`);
}

/**
 * For each buffer argument of a native call in turn, pass a view one element short and expect
 * an Error whose message names that argument ("<kernel>: <arg> has k elements, needs k+1").
 */
export function checkShortBuffers(name: keyof Kernels, args: () => unknown[], buffers: [number, string][]): void {
  const fn = nat(name) as (...a: unknown[]) => unknown;
  for (const [i, argName] of buffers) {
    const a = args();
    const buf = a[i] as Float32Array;
    a[i] = buf.subarray(0, buf.length - 1);
    assert.throws(() => fn(...a), (e: unknown) => e instanceof Error &&
      e.message.includes(`${name}: ${argName} has ${buf.length - 1} elements, needs ${buf.length}`),
      `${name} with ${argName} one element short must throw naming ${argName}`);
  }
}
