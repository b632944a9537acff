// Shared test utilities: a seeded RNG, error norms, a central finite-difference gradient and
// self-cleaning temporary folders.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KompresorError } from '../src/errors.ts';

/** Mulberry32: small, fast, deterministic. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n normal samples * scale (Box-Muller). */
export function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12), v = r();
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

/** ||a - b|| / ||b|| (0 when both are zero). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'relErr: lengths differ');
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { const d = a[i] - b[i]; num += d * d; den += b[i] * b[i]; }
  if (den === 0) return Math.sqrt(num);
  return Math.sqrt(num / den);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'maxAbsDiff: lengths differ');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * Central finite differences of a scalar function f at x (x is perturbed in place and restored),
 * evaluated in float64 by the caller's f. Returns d f / d x[i] for each index in `indices`
 * (default: all).
 */
export function finiteDiff(f: () => number, x: Float32Array, eps = 1e-2, indices?: number[]): Float64Array {
  const idx = indices ?? Array.from({ length: x.length }, (_, i) => i);
  const g = new Float64Array(idx.length);
  idx.forEach((i, k) => {
    const orig = x[i];
    x[i] = orig + eps; const fp = f();
    x[i] = orig - eps; const fm = f();
    x[i] = orig;
    g[k] = (fp - fm) / (2 * eps);
  });
  return g;
}

/** Dot product in float64, the usual projection for finite-difference checks: L = sum(out * w). */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

export function assertClose(actual: number, expected: number, tol: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tol * Math.max(1, Math.abs(expected)),
    `${what}: expected ${expected}, got ${actual} (tolerance ${tol})`);
}

/**
 * Asserts that fn throws a KompresorError with this code, a one-line message, and a message
 * matching every pattern (tests check the text users read, not just that something failed).
 */
export function throwsWith(fn: () => unknown, code: string, ...patterns: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof KompresorError, `expected KompresorError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.ok(!e.message.includes('\n'), `the message must be one line: ${e.message}`);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

const tempDirs: string[] = [];
let cleanupRegistered = false;

/**
 * A fresh folder under os.tmpdir() named `<prefix>XXXXXX`, removed when the test process exits
 * (node's runner gives every test file its own process, so this is once per file; child processes
 * a test spawns may write into it, since they are done by then). Set KOMPRESOR_KEEP_TEST_TMP=1 to
 * keep the folders for debugging.
 */
export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  if (!cleanupRegistered) { process.once('exit', removeTempDirs); cleanupRegistered = true; }
  tempDirs.push(dir);
  return dir;
}

function removeTempDirs(): void {
  if (process.env.KOMPRESOR_KEEP_TEST_TMP === '1') return;
  for (const dir of tempDirs.splice(0)) {
    try { fs.rmSync(dir, { recursive: true, force: true }); } catch { /* best effort at exit */ }
  }
}
