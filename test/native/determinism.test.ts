// Results that must not depend on the thread count (README "Reproducibility"): the native
// sumSquares (the global gradient norm, hence the clipping) adds fixed blocks in a fixed order,
// so 1 and 2 threads give the same bits; it still matches the float64 reference sum.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { native } from '../../src/tensor/native.ts';
import { sumSquares } from '../../src/tensor/kernels/adamw.ts';
import { randn, assertClose } from '../helpers.ts';
import { nat } from '../native_helpers.ts';

test('native sumSquares(n=3,000,001) gives the same bits on 1 and 2 threads, and matches the float64 sum', () => {
  const x = randn(3_000_001, 17);
  const f = nat('sumSquares');
  const threads = native!.info().ompThreads;
  try {
    native!.setThreads(1);
    const one = f(x, x.length);
    native!.setThreads(2);
    const two = f(x, x.length);
    assert.equal(Object.is(one, two), true, `1 thread: ${one}, 2 threads: ${two}`);
    assertClose(one, sumSquares(x, x.length), 1e-12, 'sumSquares vs reference');
  } finally { native!.setThreads(threads); }
});
