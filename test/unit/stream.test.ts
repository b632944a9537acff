// Streaming (layer-by-layer) scoring: row-range tensor reads, embedding gathers, the memory plan,
// and the scores themselves, equal to the in-memory path on F32 and BF16 checkpoints, with and
// without row groups, while only layer tensors and embedding row ranges are ever read.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { KompresorError } from '../../src/errors.ts';
import { readSafetensorsHeader, readTensorF32, readTensorRowsF32, writeSafetensors } from '../../src/io/safetensors.ts';
import { openCheckpoint } from '../../src/io/checkpoint.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { loadModel } from '../../src/model/load.ts';
import { buildCalibration, type CalibrationSet } from '../../src/prune/calibration.ts';
import { scoreInMemory, type Importance } from '../../src/prune/importance.ts';
import { planStream, scoreStreaming, embedRows } from '../../src/prune/stream.ts';
import { BASELINE_BYTES } from '../../src/prune/importance.ts';
import { randn, relErr, rng, throwsWith, tempDir } from '../helpers.ts';
import { tinyModelDir, spyReads, numel } from './score_fixture.ts';

let tmp: string;
before(() => { tmp = tempDir('kompresor-stream-'); });
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });


describe('row-range reads', () => {
  for (const dtype of ['F32', 'BF16', 'F16'] as const) {
    test(`readTensorRowsF32 (${dtype}) = the same rows of the whole tensor`, () => {
      const file = path.join(tmp, `rows-${dtype}.safetensors`);
      writeSafetensors(file, [
        { name: 'a', dtype, shape: [3], data: randn(3, 1) },
        { name: 'w', dtype, shape: [7, 2, 3], data: randn(42, 2) },
      ]);
      const h = readSafetensorsHeader(file), info = h.tensors.get('w')!;
      const whole = readTensorF32(h, info);
      for (const [r0, n] of [[0, 7], [2, 3], [6, 1], [4, 0]]) {
        assert.deepEqual(readTensorRowsF32(h, info, r0, n), whole.slice(r0 * 6, (r0 + n) * 6), `rows ${r0}+${n}`);
      }
      const out = new Float32Array(12);
      assert.equal(readTensorRowsF32(h, info, 5, 2, out), out);
      assert.deepEqual(out, whole.slice(30, 42));
      throwsWith(() => readTensorRowsF32(h, info, 6, 2), 'shape_mismatch', /a row range must lie inside the tensor's first dimension; expected 0 <= row0 <= row0 \+ rows <= 7, found row0 6, rows 2/);
      throwsWith(() => readTensorRowsF32(h, info, -1, 1), 'shape_mismatch');
      throwsWith(() => readTensorRowsF32(h, info, 0, 2, new Float32Array(5)), 'shape_mismatch', /expected 12 floats, found 5 floats/);
    });
  }

  test('embedRows gathers embed_tokens rows for any ids (repeats, gaps, both ends of the vocabulary)', () => {
    const { dir } = tinyModelDir(path.join(tmp, 'embed'), { layers: 1, dtype: 'BF16' });
    const ck = openCheckpoint(dir);
    const wte = ck.read('model.embed_tokens.weight'), C = ck.config.hiddenSize;
    const ids = Int32Array.from([258, 0, 5, 5, 200, 1, 130, 258, 7]);
    const out = new Float32Array(ids.length * C);
    embedRows(ck, ids, C, out);
    ids.forEach((id, n) => assert.deepEqual(out.subarray(n * C, (n + 1) * C), wte.subarray(id * C, (id + 1) * C), `token ${n}`));
  });
});

describe('plan', () => {
  test('everything in one group when it fits; row groups within the budget when not; a clear refusal below one row', async () => {
    const { model } = tinyModelDir(path.join(tmp, 'plan'), { layers: 2, hidden: 64, intermediate: 128 });
    const cfg = model.cfg;
    const big = planStream(cfg, 64, 128, 8 * 2 ** 30);
    assert.equal(big.groups, 1);
    assert.equal(big.groupRows, 64);
    const rowHidden = 128 * 64 * 4;
    const tight = planStream(cfg, 64, 128, BASELINE_BYTES + big.layerBytes + 2 * 2 ** 20);
    assert.ok(tight.groups > 1 && tight.groupRows < 64, JSON.stringify(tight));
    assert.equal(tight.groups, Math.ceil(64 / tight.groupRows));
    assert.ok(tight.batchRows <= tight.groupRows);
    assert.ok(tight.hiddenBytes === tight.groupRows * rowHidden && tight.hiddenBytes < 2 * 2 ** 20);
    throwsWith(() => planStream(cfg, 64, 128, BASELINE_BYTES), 'input_invalid',
      /--max-memory: the budget must hold one layer's weights and one calibration row; expected at least [\d.]+ MiB, found 192.00 MiB\. Hint: raise --max-memory or lower --seq-len/);
  });
});

describe('streamed scores = in-memory scores', () => {
  let text: string;
  before(() => {
    const r = rng(9), words = ['stream', 'layer', 'by', 'the', 'weights', 'hidden', 'state', '7', 'of', 'rows'];
    text = Array.from({ length: 40 }, () => Array.from({ length: 4 + Math.floor(r() * 16) }, () => words[Math.floor(r() * words.length)]).join(' ')).join('\n\n');
    fs.writeFileSync(path.join(tmp, 'calib.txt'), text);
  });

  const calib = (dir: string): CalibrationSet =>
    buildCalibration([path.join(tmp, 'calib.txt')], loadTokenizer(dir), { samples: 6, seqLen: 24, seed: 2, vocabSize: 259 });

  function assertSame(a: Importance, b: Importance, tol: number, what: string): void {
    const sa = a.scores(), sb = b.scores();
    for (const k of ['hidden', 'heads', 'mlp', 'layers'] as const) {
      const e = relErr(sa[k].flat(), sb[k].flat());
      assert.ok(e <= tol, `${what}: ${k} differs by ${e}`);
    }
  }

  const cases = [
    { name: 'Llama, tied, F32', opts: { layers: 4 } },
    { name: 'Qwen2 (q/k/v biases), untied, BF16', opts: { layers: 3, qwen: true, tied: false, dtype: 'BF16' as const } },
  ];
  for (const c of cases) {
    test(`${c.name}: same rows per pass gives the same scores; other batchings and row groups agree to 1e-6`, async () => {
      const { dir } = tinyModelDir(path.join(tmp, c.name.replace(/\W+/g, '_')), c.opts);
      const set = calib(dir);
      const { model } = await loadModel(dir);
      const mem = scoreInMemory(model, set, { batchRows: 4, layerMetric: 'bi' }).imp;
      const cfg = model.cfg;

      const ck = openCheckpoint(dir);
      const spy = spyReads(ck);
      const same = scoreStreaming(ck, set, { plan: planStream(cfg, 6, 24, 8 * 2 ** 30, { batchRows: 4, groupRows: 6 }) }).imp;
      assertSame(same, mem, 1e-12, 'one group, 4 rows per pass');
      // every layer tensor read exactly once; the embedding only by row ranges; never the final norm or the head
      const layerNames = [...ck.tensors.keys()].filter((n) => n.startsWith('model.layers.'));
      assert.deepEqual([...spy.floats.keys()].sort(), [...layerNames, 'model.embed_tokens.weight'].sort());
      for (const n of layerNames) assert.equal(spy.floats.get(n), numel(ck, n), n);
      assert.ok(!spy.whole.has('model.embed_tokens.weight') && spy.rows.get('model.embed_tokens.weight')! > 0);

      const spy2Ck = openCheckpoint(dir), spy2 = spyReads(spy2Ck);
      const grouped = scoreStreaming(spy2Ck, set, { plan: planStream(cfg, 6, 24, 8 * 2 ** 30, { batchRows: 2, groupRows: 3 }) }).imp;
      assertSame(grouped, mem, 1e-6, 'two groups of 3 rows, 2 rows per pass');
      for (const n of layerNames) assert.equal(spy2.floats.get(n), 2 * numel(ck, n), `${n}: read once per group`);
    });
  }

  test('progress is reported once per layer and group', () => {
    const { dir } = tinyModelDir(path.join(tmp, 'progress'), { layers: 2 });
    const ck = openCheckpoint(dir);
    const steps: string[] = [];
    scoreStreaming(ck, calib(dir), { plan: planStream(ck.config, 6, 24, 8 * 2 ** 30, { batchRows: 3, groupRows: 4 }), onLayer: (d, t) => steps.push(`${d}/${t}`) });
    assert.deepEqual(steps, ['1/4', '2/4', '3/4', '4/4']);
  });
});
