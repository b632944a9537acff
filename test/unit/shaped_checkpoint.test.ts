// scripts/bench/make_shaped_checkpoint.ts: the shapes carry the published parameter counts (so the
// "what fits" table measures the real models' sizes), Bielik-11B splits into HF's <= 5 GB shards,
// and a written checkpoint loads as what it claims (config, tensors, a tokenizer of vocab_size ids);
// a second run keeps complete shards and rewrites a truncated one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { SHAPES, shapedConfig, planShards, makeShapedCheckpoint } from '../../scripts/bench/make_shaped_checkpoint.ts';
import { openCheckpoint } from '../../src/io/checkpoint.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { readSafetensorsHeader, readTensorF32 } from '../../src/io/safetensors.ts';
import { tempDir } from '../helpers.ts';

const count = (name: string) => planShards(shapedConfig(name)).reduce((s, sh) => s + sh.tensors.reduce((t, x) => t + x.bytes / 2, 0), 0);

test('shaped configs have the published parameter counts; Bielik-11B is the seed\'s 11.04B without lm_head', () => {
  assert.equal(count('smollm2-135m'), 134_515_008);
  assert.equal(count('qwen2.5-0.5b'), 494_032_768);
  assert.equal(count('llama-3.2-1b'), 1_235_814_400);
  assert.equal(count('qwen2.5-1.5b'), 1_543_714_304);
  assert.equal(count('mistral-7b'), 7_248_023_552);
  const b = SHAPES['bielik-11b'];
  assert.equal(count('bielik-11b'), 11_168_796_672);
  assert.equal(count('bielik-11b') - b.vocab * b.hidden, 11_037_200_384);
  const shards = planShards(shapedConfig('bielik-11b'));
  assert.deepEqual(shards.map((s) => s.file), [1, 2, 3, 4, 5].map((i) => `model-0000${i}-of-00005.safetensors`));
  assert.ok(shards.every((s) => s.bytes <= 5e9 + 1e6), shards.map((s) => s.bytes).join(','));
});

test('make_shaped_checkpoint(smollm2-135m) loads as SmolLM2-135M, N(0, 0.02) weights, resumes by shard', () => {
  const dir = path.join(tempDir('kompresor-shaped-'), 'smollm');
  const first = makeShapedCheckpoint('smollm2-135m', dir, 7);
  assert.deepEqual([first.params, first.shards, first.written, first.kept], [134_515_008, 1, 1, 0]);
  const ck = openCheckpoint(dir);
  assert.deepEqual([ck.config.hiddenSize, ck.config.numLayers, ck.config.numHeads, ck.config.numKvHeads, ck.config.vocabSize], [576, 30, 9, 3, 49152]);
  assert.equal(loadTokenizer(dir).vocabSize, 49152);
  const q = ck.tensors.get('model.layers.0.self_attn.q_proj.weight')!;
  const header = readSafetensorsHeader(q.file);
  const w = readTensorF32(header, q.info);
  const mean = w.reduce((a, x) => a + x, 0) / w.length, std = Math.sqrt(w.reduce((a, x) => a + x * x, 0) / w.length);
  assert.ok(Math.abs(mean) < 1e-3 && Math.abs(std - 0.02) < 5e-4, `mean ${mean} std ${std}`);
  const norm = ck.tensors.get('model.norm.weight')!;
  assert.ok(readTensorF32(header, norm.info).every((x) => x === 1));

  const again = makeShapedCheckpoint('smollm2-135m', dir, 7);
  assert.deepEqual([again.written, again.kept], [0, 1]);
  const file = path.join(dir, 'model.safetensors');
  fs.truncateSync(file, fs.statSync(file).size - 2);
  assert.deepEqual([makeShapedCheckpoint('smollm2-135m', dir, 7).written, fs.statSync(file).size], [1, first.bytes]);
});

test('make_shaped_checkpoint refuses an unknown shape, naming the known ones', () => {
  assert.throws(() => makeShapedCheckpoint('llama-70b', tempDir('kompresor-shaped-')),
    /--shape: the shape must be one of the known models; expected smollm2-135m, qwen2\.5-0\.5b, .*bielik-11b, found "llama-70b"/);
});
