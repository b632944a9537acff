// `kompresor export` as a user runs it (node bin/kompresor.mjs): the summary, --json, one progress
// line per tensor on a non-terminal stderr, the output readable by our GGUF reader, and one-line
// errors for what is refused before anything is written.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { readGguf } from '../../src/export/gguf_reader.ts';
import { makeByteModel, FIXTURES } from '../gguf_helpers.ts';
import { kompresor, type Run } from '../cli_run.ts';
import { tempDir } from '../helpers.ts';




function assertOneLineError(r: Run, ...patterns: RegExp[]): void {
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  for (const p of patterns) assert.match(lines[0], p);
}

let tmp: string, model: string;
before(() => {
  tmp = tempDir('kompresor-export-cli-');
  model = path.join(tmp, 'model');
  makeByteModel(model, 'qwen2_bias');
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('export prints a summary, one progress line per tensor on stderr, and a file llama.cpp-style readers parse', async () => {
  const out = path.join(tmp, 'm.gguf');
  const r = await kompresor(['export', model, '--gguf', out, '--dtype', 'q8_0']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^exported .*model -> .*m\.gguf\n/);
  assert.match(r.stdout, /arch qwen2 \(Qwen2ForCausalLM\), dtype q8_0: 26 tensors \(13 Q8_0, 11 F32, 2 F16\)/);
  assert.match(r.stdout, /17,792 parameters, [\d.]+ KiB \([\d.]+ bits per parameter\) in [\d.]+ s/);
  assert.match(r.stdout, /vocabulary 259 tokens \(gpt2 BPE, pre-tokenizer qwen2\)/);
  assert.match(r.stdout, /note: 2 matrices whose rows do not divide the block size were stored in a fallback type: blk\.0\.ffn_down\.weight Q8_0 -> F16/);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 26);
  assert.match(lines[0], /^export 1\/26 token_embd\.weight Q8_0 8\.6 KiB$/);
  assert.match(lines[25], /^export 26\/26 output_norm\.weight F32 128 B$/);
  assert.equal(readGguf(out).kv.get('general.architecture')!.value, 'qwen2');
});

test('export --json prints only the summary object; warnings go to stderr', async () => {
  const dir = path.join(tmp, 'mistral');
  makeByteModel(dir, 'mistral_window');
  const out = path.join(tmp, 'w.gguf');
  const r = await kompresor(['export', dir, '--gguf', out, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.equal(s.dtype, 'f16');
  assert.equal(s.gguf_arch, 'llama');
  assert.equal(s.bytes, fs.statSync(out).size);
  assert.deepEqual(s.types, { F16: 15, F32: 5 });
  assert.match(r.stderr, /^kompresor: warning: sliding_window 4: .*at most 4 tokens\n$/);
});

test('export refuses with one line: no tokenizer, missing output folder, unknown dtype, missing --gguf', async () => {
  assertOneLineError(await kompresor(['export', path.join(FIXTURES, 'llama_tied_gqa'), '--gguf', path.join(tmp, 'x.gguf')]),
    /^kompresor: .*tokenizer\.json: GGUF export needs the model's tokenizer\.json; found no such file\. Hint: copy tokenizer\.json/);
  assertOneLineError(await kompresor(['export', model, '--gguf', path.join(tmp, 'no/such/x.gguf')]), /--gguf .*: the output folder must exist/);
  assertOneLineError(await kompresor(['export', model, '--gguf', path.join(tmp, 'x.gguf'), '--dtype', 'q3_k']),
    /^kompresor: kompresor export --dtype: the value must be one of the choices; expected f32, f16, bf16, q8_0, q4_0, q4_k_m, q5_k_m, q6_k, found "q3_k"\./);
  assertOneLineError(await kompresor(['export', model]), /^kompresor: kompresor export --gguf: this option is required; found not given\./);
  assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.startsWith('x.gguf')), []);
});

test('export --calibration: several types in one run (OUT, OUT-<type>), the scores of `score`, and --quality-text measured in llama.cpp', async () => {
  const data = path.join(tmp, 'calib.jsonl');
  const lines = fs.readFileSync(path.join(import.meta.dirname, '..', 'fixtures_text', 'pl_en.txt'), 'utf8').trim().split('\n');
  fs.writeFileSync(data, lines.map((text) => JSON.stringify({ text })).join('\n') + '\n');
  const scores = path.join(tmp, 'scores.json');
  const sc = await kompresor(['score', model, '--data', data, '--samples', '4', '--seq-len', '64', '--out', scores, '--json']);
  assert.equal(sc.code, 0, sc.stderr);
  const out = path.join(tmp, 'c.gguf');
  const r = await kompresor(['export', model, '--gguf', out, '--dtype', 'q8_0', 'q4_k_m', '--calibration', scores,
    '--quality-text', data, '--quality-docs', '6', '--quality-tokens', '32', '--threads', '1', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.equal(s.dtype, 'q8_0');
  assert.equal(s.out, out);
  assert.deepEqual(s.others.map((o: { dtype: string; out: string }) => [o.dtype, path.basename(o.out)]), [['q4_k_m', 'c-q4_k_m.gguf']]);
  assert.equal(s.others[0].calibration, scores);
  assert.match(s.notes.join(' '), /--calibration has no effect on q8_0/);
  // hidden 32: Q4_K falls back to Q5_0, Q6_K (head, layer 1's attn_v) to Q8_0, the 16-wide ffn_down to F16
  assert.deepEqual(s.others[0].types, { Q8_0: 2, F32: 11, Q5_0: 11, F16: 2 });
  assert.match(s.others[0].notes.join(" "), /blk\.1\.attn_v\.weight Q6_K -> Q8_0/);
  assert.ok(fs.statSync(path.join(tmp, 'c-q4_k_m.gguf')).size === s.others[0].bytes);
  // rows: f16 (temporary), q8_0, then q4_k_m unweighted (temporary) and weighted
  const q = s.quality;
  assert.deepEqual(q.rows.map((x: { dtype: string; weighted: boolean; file: string | null }) => [x.dtype, x.weighted, x.file !== null]),
    [['f16', false, false], ['q8_0', false, true], ['q4_k_m', false, false], ['q4_k_m', true, true]]);
  assert.equal(q.documents, 6);
  assert.equal(q.rows[0].vs_f16_percent, 0);
  for (const x of q.rows) assert.ok(x.bits_per_byte > 0 && Number.isFinite(x.bits_per_byte) && x.decode_tokens_per_s > 0, JSON.stringify(x));
  // a random model: q8_0 is close to f16, 4-5 bits further
  assert.ok(Math.abs(q.rows[1].vs_f16_percent) < 1, JSON.stringify(q.rows[1]));
  assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.endsWith('.gguf') && f.startsWith('c')).sort(), ['c-q4_k_m.gguf', 'c.gguf']);
});

test('export --calibration refuses scores of another model, and scores without input mean squares, leaving no file', async () => {
  const scores = path.join(tmp, 'scores.json');
  const s = JSON.parse(fs.readFileSync(scores, 'utf8'));
  const other = path.join(tmp, 'other_scores.json');
  fs.writeFileSync(other, JSON.stringify({ ...s, model: { ...s.model, hidden_size: 48 }, hidden: new Array(48).fill(1) }));
  assertOneLineError(await kompresor(['export', model, '--gguf', path.join(tmp, 'y.gguf'), '--dtype', 'q4_0', '--calibration', other]),
    /other_scores\.json: input_mean_squares\.qkv\[0\] must have one score per entry; expected 48 numbers, found 32\. Hint: recompute the scores/);
  const old = path.join(tmp, 'old_scores.json');
  fs.writeFileSync(old, JSON.stringify({ ...s, input_mean_squares: undefined }));
  assertOneLineError(await kompresor(['export', model, '--gguf', path.join(tmp, 'y.gguf'), '--dtype', 'q4_0', '--calibration', old]),
    /input_mean_squares: --calibration needs the input mean squares of every linear layer; found a scores file without them.*Hint: run `kompresor score` on this model again/);
  assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.startsWith('y.gguf')), []);
});
