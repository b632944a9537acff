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
  assert.match(r.stdout, /17,792 parameters, [\d.]+ KiB in [\d.]+ s/);
  assert.match(r.stdout, /vocabulary 259 tokens \(gpt2 BPE, pre-tokenizer qwen2\)/);
  assert.match(r.stdout, /note: 2 matrices whose rows are not a multiple of 32 were stored as F16/);
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
  assertOneLineError(await kompresor(['export', model, '--gguf', path.join(tmp, 'x.gguf'), '--dtype', 'q4_0']),
    /^kompresor: kompresor export --dtype: the value must be one of the choices; expected f32, f16, bf16, q8_0, found "q4_0"\./);
  assertOneLineError(await kompresor(['export', model]), /^kompresor: kompresor export --gguf: this option is required; found not given\./);
  assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.startsWith('x.gguf')), []);
});
