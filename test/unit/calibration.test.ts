// Calibration data: documents from text and JSON Lines, packed into full rows with documents cut
// only at row ends, the batch segments that keep attention inside documents, determinism by seed,
// and the one-line errors for missing, empty, insufficient or malformed data.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { KompresorError } from '../../src/errors.ts';
import { loadTokenizer, type LoadedTokenizer } from '../../src/io/tokenizer.ts';
import { buildCalibration, calibrationBatch, readDocuments, type CalibrationOptions } from '../../src/prune/calibration.ts';
import { writeByteTokenizer } from './score_fixture.ts';
import { throwsWith, tempDir } from '../helpers.ts';

let tmp: string;
let tok: LoadedTokenizer;
before(() => {
  tmp = tempDir('kompresor-calib-');
  writeByteTokenizer(tmp);
  tok = loadTokenizer(tmp);
});
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

function file(name: string, text: string): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, text);
  return p;
}


const opts = (o: Partial<CalibrationOptions>): CalibrationOptions => ({ samples: 4, seqLen: 16, seed: 0, vocabSize: 259, ...o });

// documents made of one repeated letter each, so every token shows which document it came from
const LETTERS = 'abcdefghijklmnopqrstuvwxyz';
const lengths = [5, 9, 3, 20, 7, 11, 2, 30, 6, 4];
const docsText = lengths.map((n, i) => LETTERS[i].repeat(n)).join('\n\n');

describe('documents', () => {
  test('text: blocks separated by blank lines (whitespace-only lines count as blank), or the whole file', () => {
    const f = file('blocks.txt', 'first line\nstill first\n\n  \nsecond\n\n\n\nthird\n');
    const docs = readDocuments(f, tok, 'blank-lines');
    assert.deepEqual(docs.map((d) => d.text), ['first line\nstill first', 'second', 'third']);
    assert.deepEqual(docs.map((d) => d.where), [`${f}:1`, `${f}:5`, `${f}:9`]);
    assert.deepEqual(readDocuments(f, tok, 'file').map((d) => d.text), ['first line\nstill first\n\n  \nsecond\n\n\n\nthird\n']);
  });

  test('JSON Lines: "text", then "content", then chat "messages" through the chat template', () => {
    const f = file('mixed.jsonl', [
      JSON.stringify({ text: 'plain', content: 'ignored' }),
      '',
      JSON.stringify({ content: 'from content' }),
      JSON.stringify({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' }] }),
      JSON.stringify({ text: '   ' }),
    ].join('\n'));
    const docs = readDocuments(f, tok, 'blank-lines');
    assert.deepEqual(docs.map((d) => d.text), ['plain', 'from content', '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n']);
    assert.deepEqual(docs.map((d) => d.specials), [false, false, true]);
    assert.equal(docs[2].where, `${f}:4`);
  });

  test('messages without a chat template: contents joined by blank lines', () => {
    const noTemplate = { ...tok, hasChatTemplate: false };
    const f = file('chat.jsonl', JSON.stringify({ messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }] }));
    assert.deepEqual(readDocuments(f, noTemplate, 'blank-lines').map((d) => d.text), ['a\n\nb']);
  });

  test('a .json array of records', () => {
    const f = file('arr.json', JSON.stringify([{ text: 'one' }, { text: 'two' }]));
    assert.deepEqual(readDocuments(f, tok, 'blank-lines').map((d) => [d.text, d.where]), [['one', `${f}[0]`], ['two', `${f}[1]`]]);
  });
});

describe('packing', () => {
  test('rows are full, documents keep their order inside rows and are cut only where a row ends', () => {
    const f = file('letters.txt', docsText);
    const set = buildCalibration([f], tok, opts({ samples: 4, seqLen: 16 }));
    assert.equal(set.rows.length, 4);
    assert.equal(set.tokens, 64);
    assert.deepEqual([...set.valid], [16, 16, 16, 16]);
    const seen = new Map<string, number>();
    set.rows.forEach((row, r) => {
      assert.equal(row.reduce((s, d) => s + d.length, 0), 16, `row ${r} is full`);
      row.forEach((doc, i) => {
        const ch = String.fromCharCode(doc[0]);
        assert.ok(doc.every((id) => id === doc[0]), 'a piece holds one document');
        // a piece shorter than its document is cut: it must touch the row's start or end
        const full = lengths[LETTERS.indexOf(ch)];
        if (doc.length < full) assert.ok(i === 0 || i === row.length - 1, `piece of ${ch} cut mid-row`);
        seen.set(ch, (seen.get(ch) ?? 0) + doc.length);
      });
    });
    for (const [ch, n] of seen) assert.ok(n <= lengths[LETTERS.indexOf(ch)], `${ch} used at most once`);
    assert.equal(set.documents, 10);
  });

  test('a document longer than a row is split across rows; positions restart in every piece', () => {
    const f = file('long.txt', 'x'.repeat(40));
    const set = buildCalibration([f], tok, opts({ samples: 2, seqLen: 16 }));
    assert.deepEqual(set.rows.map((r) => r.map((d) => d.length)), [[16], [16]]);
    const f2 = file('two.txt', 'aaaaaaaaaa\n\nbbbbbbbbbb');
    const set2 = buildCalibration([f2], tok, opts({ samples: 1, seqLen: 16, seed: 3 }));
    const { batch, valid } = calibrationBatch(set2, 0, 1);
    assert.deepEqual([...valid], [16]);
    const first = set2.rows[0][0].length;
    assert.deepEqual([...batch.pos], [...Array.from({ length: first }, (_, i) => i), ...Array.from({ length: 16 - first }, (_, i) => i)]);
    assert.deepEqual([...batch.docStart], [...new Array(first).fill(0), ...new Array(16 - first).fill(first)]);
  });

  test('deterministic by seed: same seed, same rows; another seed, another order', () => {
    const f = file('letters2.txt', docsText);
    const a = buildCalibration([f], tok, opts({ seed: 1 }));
    const b = buildCalibration([f], tok, opts({ seed: 1 }));
    const c = buildCalibration([f], tok, opts({ seed: 2 }));
    assert.deepEqual(a.rows, b.rows);
    assert.notDeepEqual(a.rows, c.rows);
  });

  test('chat-template documents are encoded without extra special tokens, plain ones as the tokenizer does', () => {
    const f = file('chat2.jsonl', JSON.stringify({ messages: [{ role: 'user', content: 'hello there' }] }));
    const set = buildCalibration([f], tok, opts({ samples: 1, seqLen: 8 }));
    const ids = tok.encode('<|im_start|>user\nhello there<|im_end|>\n', { addSpecialTokens: false });
    assert.deepEqual(set.rows[0][0], ids.slice(0, 8));
  });
});

describe('errors', () => {
  test('missing file, folder, binary format', () => {
    throwsWith(() => buildCalibration([path.join(tmp, 'nope.txt')], tok, opts({})), 'file_not_found', /nope\.txt: each --data file must exist; found no such file/);
    throwsWith(() => buildCalibration([tmp], tok, opts({})), 'file_not_found', /found a folder/);
    throwsWith(() => buildCalibration([file('d.parquet', 'x')], tok, opts({})), 'input_invalid', /must be text or JSON Lines/, /Hint: export a sample as JSON Lines/);
    throwsWith(() => buildCalibration([], tok, opts({})), 'input_invalid', /--data: calibration needs at least one data file/);
  });

  test('empty data', () => {
    throwsWith(() => buildCalibration([file('empty.txt', '\n \n\n')], tok, opts({})), 'input_invalid', /at least one non-empty document; found 0 documents/);
  });

  test('not enough tokens: found vs needed, and what to lower', () => {
    const f = file('short.txt', 'a'.repeat(40));
    throwsWith(() => buildCalibration([f], tok, opts({ samples: 4, seqLen: 16 })), 'input_invalid',
      /--samples 4 × --seq-len 16 needs that many tokens/, /expected 64 tokens, found 40 tokens in 1 documents/, /lower --samples to 2/);
  });

  test('malformed JSON Lines: the line, the rule, what was found', () => {
    throwsWith(() => buildCalibration([file('bad.jsonl', '{"text": "ok"}\n{oops\n')], tok, opts({})), 'input_invalid', /bad\.jsonl:2: each line of a JSON Lines file must be one JSON object/);
    throwsWith(() => buildCalibration([file('keys.jsonl', '{"prompt": "x", "answer": "y"}\n')], tok, opts({})), 'input_invalid',
      /keys\.jsonl:1: each record must hold its text in "text"/, /found keys \["prompt","answer"\]/);
    throwsWith(() => buildCalibration([file('num.jsonl', '{"text": 5}\n')], tok, opts({})), 'input_invalid', /found "text" of type number/);
    throwsWith(() => buildCalibration([file('msg.jsonl', '{"messages": [{"role": "user"}]}\n')], tok, opts({})), 'input_invalid', /"messages" that is not a list of \{role, content\}/);
  });

  test('ids beyond the model vocabulary: the tokenizer does not belong to the model', () => {
    throwsWith(() => buildCalibration([file('hi.txt', 'hi')], tok, opts({ vocabSize: 64, samples: 1, seqLen: 2 })), 'ids_out_of_vocab',
      /hi\.txt:1: the tokenizer's ids must index the model's vocabulary; expected 0 <= id < 64, found 104/);
  });
});
