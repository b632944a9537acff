// The finite-weights check on every tensor read (src/io/finite.ts), fuzz report D7: NaN or Inf
// weights passed silently through logits, score, eval, export and generate.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { openCheckpoint } from '../../src/io/checkpoint.ts';
import { allowNonFinite } from '../../src/io/finite.ts';
import { readSafetensorsHeader } from '../../src/io/safetensors.ts';
import { loadModel } from '../../src/model/load.ts';
import { kompresor, ROOT } from '../cli_run.ts';
import { tempDir, throwsWith } from '../helpers.ts';

/** The fixture with one value of model.layers.1.mlp.up_proj.weight (row 3, column 5) set to v. */
function poisoned(v: number): string {
  const dir = path.join(tempDir('kp-finite-'), 'nan');
  fs.cpSync(path.join(ROOT, 'test/fixtures/llama_tied_gqa'), dir, { recursive: true });
  const file = path.join(dir, 'model.safetensors');
  const h = readSafetensorsHeader(file);
  const info = h.tensors.get('model.layers.1.mlp.up_proj.weight')!;
  const bytes = fs.readFileSync(file);
  bytes.writeFloatLE(v, h.dataStart + info.begin + 4 * (3 * info.shape[1] + 5));
  fs.writeFileSync(file, bytes);
  return dir;
}

test('a NaN or an infinity in the weights is refused by name and position, on every read path', async () => {
  for (const v of [NaN, Infinity, -Infinity]) {
    const dir = poisoned(v);
    const re = new RegExp(`model\\.safetensors: tensor "model\\.layers\\.1\\.mlp\\.up_proj\\.weight": weights must be finite numbers; found ${String(v).replace('+', '')} at row 3, column 5 \\(1 non-finite value in the tensor\\)\\. Hint: .*--allow-nonfinite`);
    throwsWith(() => openCheckpoint(dir).read('model.layers.1.mlp.up_proj.weight'), 'safetensors_corrupt', re);
    throwsWith(() => openCheckpoint(dir).readRows('model.layers.1.mlp.up_proj.weight', 2, 3), 'safetensors_corrupt', /found .* at row 3, column 5/);
    await assert.rejects(loadModel(dir), re);
    // the 16-bit path of a frozen model: the bit patterns are checked (all exponent bits set)
    const up = openCheckpoint(dir).tensors.get('model.layers.1.mlp.up_proj.weight')!.info.shape;
    for (const f16 of [false, true]) {
      throwsWith(() => openCheckpoint(dir).read16('model.layers.1.mlp.up_proj.weight', new Uint16Array(up[0] * up[1]), f16), 'safetensors_corrupt', re);
    }
    await assert.rejects(loadModel(dir, { weights: 'bf16' }), re);
  }
  const dir = poisoned(NaN);
  allowNonFinite(true);
  try {
    const { model } = await loadModel(dir);
    assert.ok(model.params.flat().some((x) => Number.isNaN(x)));
  } finally {
    allowNonFinite(false);
  }
});

test('logits refuses NaN weights with one line (it wrote a JSON of nulls); --allow-nonfinite, before or after the command, loads them', async () => {
  const dir = poisoned(NaN);
  const out = path.join(path.dirname(dir), 'l.json');
  const [refused, before, after] = await Promise.all([
    kompresor(['logits', dir, '--ids', '0,1,2', '--out', out]),
    kompresor(['--allow-nonfinite', 'logits', dir, '--ids', '0,1,2', '--out', out + '.a']),
    kompresor(['logits', dir, '--ids', '0,1,2', '--out', out + '.b', '--allow-nonfinite']),
  ]);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /^kompresor: .*weights must be finite numbers; found NaN at row 3, column 5.*\n$/);
  assert.equal(fs.existsSync(out), false);
  assert.equal(before.code, 0, before.stderr);
  assert.equal(after.code, 0, after.stderr);
});
