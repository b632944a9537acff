// The byte-level BPE trainer (src/io/bpe_train.ts): hand-computed merges, deterministic tie-breaks,
// pre-tokenization, and a trained Polish tokenizer loaded by @huggingface/tokenizers that
// round-trips diacritics exactly, agrees with the reference encoder and carries the chat template.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pretokenize, countPretokens, trainBpe, encodeWithMerges, bpeTokenizerFiles } from '../../src/io/bpe_train.ts';
import { loadTokenizer, type LoadedTokenizer } from '../../src/io/tokenizer.ts';
import { throwsWith, tempDir } from '../helpers.ts';

const counts = (o: Record<string, number>) => new Map(Object.entries(o));

describe('merges on a small corpus, computed by hand', () => {
  test('{"abab": 2, "ab": 3, "ba": 1}: (a,b) 7 times, then (ab,ab) twice; (b,a) once is below min frequency 2', () => {
    // pairs at the start: "abab" x2 -> ab 4, ba 2; "ab" x3 -> ab 3; "ba" x1 -> ba 1. ab = 7 wins.
    // after ab: "abab" = [ab ab] -> (ab,ab) 2; "ba" = [b a] -> (b,a) 1. (ab,ab) = 2 wins, then (b,a) = 1 < 2.
    const r = trainBpe(counts({ abab: 2, ab: 3, ba: 1 }), { vocabSize: 300 });
    assert.deepEqual(r.merges, [['a', 'b'], ['ab', 'ab']]);
    assert.deepEqual(r.counts, [7, 2]);
    assert.deepEqual(r.tokens.slice(256), ['ab', 'abab']);
    const r1 = trainBpe(counts({ abab: 2, ab: 3, ba: 1 }), { vocabSize: 300, minFrequency: 1 });
    assert.deepEqual(r1.merges, [['a', 'b'], ['ab', 'ab'], ['b', 'a']]);
  });

  test('overlapping pairs: "aaa" x3 merges (a,a) left to right, leaving [aa a]', () => {
    // "aaa": pairs (a,a) twice per word -> 6. After the merge: [aa a] -> (aa,a) 3.
    const r = trainBpe(counts({ aaa: 3 }), { vocabSize: 300 });
    assert.deepEqual(r.merges, [['a', 'a'], ['aa', 'a']]);
    assert.deepEqual(r.counts, [6, 3]);
  });

  test('the byte alphabet is GPT-2\'s: a space is "Ġ", ł (two UTF-8 bytes) starts as "Å" + "Ĥ"', () => {
    const r = trainBpe(counts({ ' łał': 5 }), { vocabSize: 300 });
    // " łał" = 20 c5 82 61 c5 82: (c5,82) occurs twice per word -> 10 and merges first (ł = id 256).
    // Then [Ġ ł a ł]: three pairs of 5; the smallest ids win: (Ġ=32, ł=256) -> id 257; then
    // [Ġł a ł]: (257, a=97) vs (97, 256) -> (a, ł); then [Ġł ał] -> (Ġł, ał).
    assert.deepEqual(r.merges, [['Å', 'Ĥ'], ['Ġ', 'ÅĤ'], ['a', 'ÅĤ'], ['ĠÅĤ', 'aÅĤ']]);
    assert.deepEqual(r.counts, [10, 5, 5, 5]);
  });

  test('ties go to the smaller (left id, right id), whatever the order of the input', () => {
    // every pair occurs twice; ids are byte values: (a,b) = (97,98) < (b,c) < (x,y)
    const a = trainBpe(counts({ xy: 2, bc: 2, ab: 2 }), { vocabSize: 300 });
    const b = trainBpe(counts({ ab: 2, xy: 2, bc: 2 }), { vocabSize: 300 });
    assert.deepEqual(a.merges, [['a', 'b'], ['b', 'c'], ['x', 'y']]);
    assert.deepEqual(b.merges, a.merges);
  });

  test('training stops at the vocabulary size (256 bytes + merges + 3 specials)', () => {
    const r = trainBpe(counts({ abcdefgh: 10 }), { vocabSize: 256 + 3 + 4 });
    assert.equal(r.merges.length, 4);
    throwsWith(() => trainBpe(counts({ ab: 2 }), { vocabSize: 100 }), 'input_invalid', /vocabSize must be an integer in \[259, 65536\]/);
  });
});

describe('pre-tokenization', () => {
  test('words keep their leading space, digits split, punctuation runs and newlines separate', () => {
    assert.deepEqual(pretokenize('Zażółć gęślą 123 jaźń...\n\nKoniec, "tak"'), [
      'Zażółć', ' gęślą', ' ', '1', '2', '3', ' jaźń', '...\n\n', 'Koniec', ',', ' "', 'tak', '"']);
  });

  test('NFC first: a decomposed ó counts as the composed one', () => {
    const c = countPretokens('zo\u0301łw żółw');
    assert.deepEqual([...c], [['zółw', 1], [' żółw', 1]]);
  });
});

describe('a trained Polish tokenizer', () => {
  const corpus = [
    'Zażółć gęślą jaźń. Pchnąć w tę łódź jeża lub ośm skrzyń fig.',
    'Wyświetla nazwę pliku, usuwając wiodące nazwy katalogów. Jeśli podano przyrostek, jest on także usuwany.',
    'Pasek narzędzi Znajdź może być użyty do szybkiego przeszukiwania zawartości dokumentów.',
    'Kliknij pole na pasku stanu, aby przełączyć tryb zaznaczania. Źdźbło trawy, gżegżółka i chrząszcz brzmią w trzcinie.',
  ];
  let dir: string;
  let tok: LoadedTokenizer;
  let merges: [string, string][];
  before(() => {
    const c = new Map<string, number>();
    for (let i = 0; i < 3; i++) for (const t of corpus) countPretokens(t, c);
    merges = trainBpe(c, { vocabSize: 256 + 3 + 120 }).merges;
    const files = bpeTokenizerFiles(merges);
    dir = tempDir('kompresor-bpe-');
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(files.tokenizerJson));
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(files.tokenizerConfig));
    tok = loadTokenizer(dir);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('training twice gives the same merges', () => {
    const c = new Map<string, number>();
    for (let i = 0; i < 3; i++) for (const t of [...corpus].reverse()) countPretokens(t, c);
    assert.deepEqual(trainBpe(c, { vocabSize: 256 + 3 + 120 }).merges, merges);
  });

  test('round trip of Polish text with diacritics is exact, also for text unseen in training', () => {
    for (const t of [...corpus, 'ĄĆĘŁŃÓŚŹŻ ąćęłńóśźż — „cudzysłów” i 42 zł…\n\n  wcięcie', 'Nieznane słowa: żółtodziób, źrebię, ćma.']) {
      const ids = tok.encode(t, { addSpecialTokens: false });
      assert.equal(tok.decode(ids), t);
    }
  });

  test('the library encodes exactly as the reference BPE encoder, and merges shorten the text', () => {
    for (const t of corpus) {
      const ids = tok.encode(t, { addSpecialTokens: false });
      assert.deepEqual(ids, encodeWithMerges(t, merges));
      assert.ok(ids.length < Buffer.byteLength(t) * 0.7, `${ids.length} tokens for ${Buffer.byteLength(t)} bytes`);
    }
    // the same pre-token boundaries on awkward text: spaces before newlines, contractions, digits, symbols
    const odd = "It's  two   spaces \n\n\tand tabs; 2024-05-01 r. — 3,5% „ćma”!?\r\n ok  ";
    assert.deepEqual(tok.encode(odd, { addSpecialTokens: false }), encodeWithMerges(odd, merges));
  });

  test('special tokens: eos <|im_end|>, pad and bos <|endoftext|>, after the merges; nothing added automatically', () => {
    assert.equal(tok.vocabSize, 256 + merges.length + 3);
    assert.equal(tok.eosTokenId, tok.tokenToId('<|im_end|>'));
    assert.equal(tok.padTokenId, tok.tokenToId('<|endoftext|>'));
    assert.equal(tok.bosTokenId, tok.tokenToId('<|endoftext|>'));
    assert.equal(tok.tokenToId('<|endoftext|>'), 256 + merges.length);
    assert.deepEqual(tok.encode('Ala', { addSpecialTokens: true }), tok.encode('Ala', { addSpecialTokens: false }));
  });

  test('ChatML template with {% generation %} around the assistant content and its <|im_end|>', () => {
    assert.ok(tok.hasGenerationMarkers);
    const msgs = [{ role: 'user', content: 'Ile to jest 2 + 2?' }, { role: 'assistant', content: '2 + 2 = 4.' }];
    assert.equal(tok.applyChatTemplate(msgs, { markGeneration: ['[', ']'] }),
      '<|im_start|>user\nIle to jest 2 + 2?<|im_end|>\n<|im_start|>assistant\n[2 + 2 = 4.<|im_end|>]\n');
    assert.equal(tok.applyChatTemplate(msgs.slice(0, 1), { addGenerationPrompt: true }), '<|im_start|>user\nIle to jest 2 + 2?<|im_end|>\n<|im_start|>assistant\n');
    const ids = tok.encode(tok.applyChatTemplate(msgs), { addSpecialTokens: false });
    assert.equal(ids.filter((i) => i === tok.eosTokenId).length, 2);
  });
});
