// MemorySource: rows packed full from whole documents in a seeded per-epoch order, and a state
// that restores the exact continuation (the resume guarantee of the trainers depends on it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemorySource, memoryEvalSource, concatDocuments } from '../../src/data/memory_source.ts';
import { IGNORE, type Batch } from '../../src/model/batch.ts';
import { KompresorError } from '../../src/errors.ts';

const docs = Array.from({ length: 7 }, (_, d) => Array.from({ length: 3 + d }, (_, i) => d * 10 + i)); // 42 tokens
const rows = (b: Batch) => Array.from({ length: b.B }, (_, r) => Array.from(b.ids.subarray(r * b.T, (r + 1) * b.T)));

test('without shuffling, rows are the documents end to end, cut at row ends with positions restarting', () => {
  const src = MemorySource.fromDocuments(docs, { seed: 1, shuffle: false });
  const b = src.next(2, 5);
  assert.deepEqual(rows(b), [[0, 1, 2, 10, 11], [12, 13, 20, 21, 22]]);
  assert.deepEqual(Array.from(b.pos), [0, 1, 2, 0, 1, 0, 1, 0, 1, 2]);
  assert.deepEqual(Array.from(b.docStart), [0, 0, 0, 3, 3, 0, 0, 2, 2, 2]);
  // the last token of every segment has no target: the next token is in another segment or row
  assert.deepEqual(Array.from(b.targets), [1, 2, IGNORE, 11, IGNORE, 13, IGNORE, 21, 22, IGNORE]);
});

test('every epoch serves every token once, in a new seeded order', () => {
  const src = MemorySource.fromDocuments(docs, { seed: 5 });
  const epoch1 = rows(src.next(6, 7)).flat(), epoch2 = rows(src.next(6, 7)).flat();
  const all = docs.flat().sort((a, b) => a - b);
  assert.deepEqual([...epoch1].sort((a, b) => a - b), all);
  assert.deepEqual([...epoch2].sort((a, b) => a - b), all);
  assert.notDeepEqual(epoch1, epoch2);
  assert.notDeepEqual(epoch1, docs.flat(), 'shuffled');
  const again = MemorySource.fromDocuments(docs, { seed: 5 });
  assert.deepEqual(rows(again.next(6, 7)).flat(), epoch1, 'same seed, same order');
});

test('restore continues exactly where state() was taken, across epochs', () => {
  const a = MemorySource.fromDocuments(docs, { seed: 3 });
  a.next(3, 8);
  a.next(3, 8); // 48 tokens in all: into epoch 1
  const saved = JSON.parse(JSON.stringify(a.state()));
  assert.equal(saved.epoch, 1);
  const expected = [a.next(2, 8), a.next(5, 8)].map(rows);
  const b = MemorySource.fromDocuments(docs, { seed: 3 });
  b.restore(saved);
  assert.deepEqual([b.next(2, 8), b.next(5, 8)].map(rows), expected);
});

test('restore refuses a state of other data or another seed; bad document offsets are refused', () => {
  const s = MemorySource.fromDocuments(docs, { seed: 3 }).state();
  assert.throws(() => MemorySource.fromDocuments(docs, { seed: 4 }).restore(s), (e: unknown) => e instanceof KompresorError && /same documents and seed/.test(e.message));
  assert.throws(() => MemorySource.fromDocuments(docs.slice(1), { seed: 3 }).restore(s), KompresorError);
  assert.throws(() => new MemorySource(new Int32Array(5), [0, 3, 3], { seed: 0 }), /ascending/);
  assert.throws(() => new MemorySource(new Int32Array(5), [1], { seed: 0 }), /first start 1/);
});

test('the eval source gives the same batches every call, in stored order, at most one pass', () => {
  const { tokens, starts } = concatDocuments(docs);
  const ev = memoryEvalSource(tokens, starts);
  const first = ev.batches(2, 8, 10).map(rows);
  assert.equal(first.length, 2); // 42 tokens hold 2 full batches of 16
  assert.deepEqual(ev.batches(2, 8, 10).map(rows), first);
  assert.deepEqual(first[0][0], [0, 1, 2, 10, 11, 12, 13, 20]);
  assert.equal(ev.batches(2, 8, 1).length, 1);
});
