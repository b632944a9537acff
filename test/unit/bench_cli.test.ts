// `kompresor bench` on tiny models: the fields and their consistency (positive figures, ratios
// computed from the figures, per-model RSS), in our engine with --vs and in llama.cpp through a
// GGUF export. Timing values themselves are not checked: the machine is shared.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { makeByteModel } from '../gguf_helpers.ts';
import { kompresor } from '../cli_run.ts';
import { tempDir } from '../helpers.ts';
import { defaultThreads } from '../../src/cli/bench_command.ts';

const FIGURES = ['prefill_tokens_per_s', 'time_to_first_token_s', 'decode_tokens_per_s', 'batch_prefill_tokens_per_s',
  'batch_decode_tokens_per_s', 'peak_rss_bytes', 'load_seconds', 'backend', 'runs'];
// our engine also says how much weight memory it holds, and in which type
const ENGINE_FIGURES = [...FIGURES.slice(0, 7), 'weight_bytes', 'weights_dtype', ...FIGURES.slice(7)];
const SMALL = ['--batch', '2', '--prompt-len', '8', '--new-tokens', '4', '--repeats', '1'];

let tmp: string, big: string, small: string;
before(() => {
  tmp = tempDir('kompresor-bench-cli-');
  big = path.join(tmp, 'big');
  small = path.join(tmp, 'small');
  const dims = { hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2 };
  makeByteModel(big, 'llama_untied', { ...dims, intermediate_size: 96, num_hidden_layers: 4 }, 5);
  makeByteModel(small, 'llama_untied', { ...dims, intermediate_size: 64, num_hidden_layers: 3 }, 6);
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('bench MODEL --vs OTHER --rounds 2 (kompresor engine): both models\' figures, medians over the rounds, the ratios', async () => {
  const r = await kompresor(['bench', small, '--vs', big, ...SMALL, '--rounds', '2', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.equal(s.engine, 'kompresor');
  assert.deepEqual(s.settings, { batch: 2, prompt_len: 8, new_tokens: 4, repeats: 1, rounds: 2, threads: s.settings.threads, gguf_dtype: null, seed: 0, weights_dtype: 'auto' });
  assert.equal(s.models.length, 2);
  const [a, b] = s.models;
  assert.deepEqual([a.layers, a.intermediate_size, b.layers, b.intermediate_size], [3, 64, 4, 96]);
  for (const m of s.models) {
    assert.deepEqual(Object.keys(m.figures), ENGINE_FIGURES);
    assert.deepEqual([m.figures.weight_bytes, m.figures.weights_dtype], [4 * m.params, 'f32'], 'a float32 checkpoint stays float32');
    for (const k of FIGURES.slice(0, 7)) assert.ok(m.figures[k] > 0 && Number.isFinite(m.figures[k]), `${k} = ${m.figures[k]}`);
    assert.equal(m.gguf_bytes, null);
    // two rounds of one run: each figure is the median of its two runs
    for (const k of FIGURES.slice(0, 5)) {
      assert.equal(m.figures.runs[k].length, 2);
      assert.equal(m.figures[k], (m.figures.runs[k][0] + m.figures.runs[k][1]) / 2);
    }
  }
  assert.ok(a.params < b.params);
  assert.equal(s.ratios.params_ratio, a.params / b.params);
  assert.equal(s.ratios.decode_speedup, a.figures.decode_tokens_per_s / b.figures.decode_tokens_per_s);
  assert.equal(s.ratios.time_to_first_token_speedup, b.figures.time_to_first_token_s / a.figures.time_to_first_token_s);
  assert.equal(s.ratios.peak_rss_ratio, a.figures.peak_rss_bytes / b.figures.peak_rss_bytes);
  // each model ran in its own process: its RSS is its own, not the parent's
  assert.ok(a.figures.peak_rss_bytes !== b.figures.peak_rss_bytes);
});

test('bench prints a side-by-side table with ratios; one model prints no ratio column', async () => {
  const r = await kompresor(['bench', small, '--vs', big, ...SMALL]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^engine kompresor: prompt 8 tokens, 4 new tokens, median of 1 runs/);
  assert.match(r.stdout, /\ndecode tokens\/s \(batch 1\)\s+[\d,.]+\s+[\d,.]+\s+[\d.]+x\n/);
  assert.match(r.stdout, /\nprefill tokens\/s \(batch 2\)\s+[\d,.]+\s+[\d,.]+\s+[\d.]+x\n/);
  assert.match(r.stdout, /\npeak RSS\s+\d+ MiB\s+\d+ MiB\s+[\d.]+x\n/);
  assert.match(r.stderr, /bench: measuring .*small \(kompresor, prompt 8, 4 new tokens, batch 1 and 2, 1 runs\)\n/);
  const one = await kompresor(['bench', small, ...SMALL, '--repeats', '2']);
  assert.equal(one.code, 0, one.stderr);
  assert.doesNotMatch(one.stdout, /ratio/);
});

test('bench --weights-dtype bf16 holds 2 bytes per weight (half of float32), and says so', async () => {
  const r = await kompresor(['bench', small, ...SMALL, '--weights-dtype', 'bf16', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const [m] = JSON.parse(r.stdout).models;
  assert.deepEqual([m.figures.weight_bytes, m.figures.weights_dtype], [2 * m.params, 'bf16']);
  assert.ok(m.figures.decode_tokens_per_s > 0);
});

test('bench --engine llama.cpp exports to GGUF and measures it with node-llama-cpp (same fields)', async () => {
  const r = await kompresor(['bench', small, ...SMALL, '--engine', 'llama.cpp', '--threads', '1', '--gguf-dtype', 'f16', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.equal(s.engine, 'llama.cpp');
  assert.equal(s.settings.gguf_dtype, 'f16');
  const [m] = s.models;
  assert.deepEqual(Object.keys(m.figures), FIGURES);
  for (const k of FIGURES.slice(0, 7)) assert.ok(m.figures[k] > 0 && Number.isFinite(m.figures[k]), `${k} = ${m.figures[k]}`);
  assert.match(m.figures.backend, /^llama\.cpp .*CPU, 1 threads/);
  assert.ok(m.gguf_bytes > 0);
  assert.equal(s.ratios, null);
});

test('bench refuses with one line: a missing model, a bad engine', async () => {
  const r = await kompresor(['bench', path.join(tmp, 'nope')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^kompresor: .*nope: the model folder must exist; found no such folder\./);
  const e = await kompresor(['bench', small, '--engine', 'onnx']);
  assert.equal(e.code, 1);
  assert.match(e.stderr, /^kompresor: kompresor bench --engine: the value must be one of the choices; expected kompresor, llama\.cpp, found "onnx"\./);
});

test('default threads: llama.cpp leaves one core to Node (which drives every token), our engine uses up to 2', () => {
  assert.deepEqual([1, 2, 4, 8].map((c) => defaultThreads('llama.cpp', c)), [1, 1, 3, 7]);
  assert.deepEqual([1, 2, 4, 8].map((c) => defaultThreads('kompresor', c)), [1, 2, 2, 2]);
});
