// Huge documents in `data prepare`, fuzz report D10: a 100 MB one-line document took 7.2 GB
// (the tokenizer's memory grows with the length of one call), a 600 MB line was a RangeError
// stack, and a .txt symlink to /dev/zero an endless read.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { encodeDocs } from '../../src/data/tokenize_pool.ts';
import { expandInputs, readLines } from '../../src/data/inputs.ts';
import { tempDir, throwsWith } from '../helpers.ts';

const POLISH = path.join(import.meta.dirname, '../../models/polish-teacher');
const README = fs.readFileSync(path.join(import.meta.dirname, '../../README.md'), 'utf8');

test('a long document tokenised in segments gives the ids of the whole text (BOS once, EOS once)', () => {
  const tok = loadTokenizer(POLISH);
  const eos = tok.eosTokenIds[0];
  const text = README.split(/\s+/).join(' ').slice(0, 20_000) + ' Zażółć gęślą jaźń, 123 456.';
  const whole = encodeDocs(tok, [text], eos, Infinity);
  for (const seg of [97, 500, 4096]) {
    const cut = encodeDocs(tok, [text], eos, seg);
    assert.deepEqual([...cut.tokens], [...whole.tokens], `segments of ${seg}`);
    assert.deepEqual([...cut.lengths], [...whole.lengths]);
  }
  assert.equal([...whole.tokens].filter((t) => t === eos).length, 1);
});

test('an endless line is cut before a space in text mode and refused in JSON Lines; a device is not an input', () => {
  const dir = tempDir('kp-huge-');
  const p = path.join(dir, 'l.txt');
  fs.writeFileSync(p, 'abc '.repeat(1000) + '\nnext');
  const pieces = [...readLines(p, () => {}, 1000)];
  assert.equal(pieces.join(''), 'abc '.repeat(1000) + 'next');
  assert.ok(pieces.every((l) => l.length <= 1000));
  assert.ok(pieces.slice(1, -1).every((l) => l.startsWith(' ')), 'cut before a space');
  assert.ok(pieces.length > 4);
  assert.throws(() => [...readLines(p, () => {}, 1000, (n) => new Error(`too long: ${n}`))], /too long: \d+/);
  const zero = path.join(dir, 'zero.txt');
  fs.symlinkSync('/dev/zero', zero);
  throwsWith(() => expandInputs([zero]), 'input_invalid', /--input .*zero\.txt: inputs must be regular files; found a device, pipe or socket\./);
});
