// The Polish instruction data generator (SFT / DPO / GRPO / plain SFT) on the inline fixture:
// formats the alignment commands read, determinism, right answers, no evaluation problem leaks in.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { buildInstructionFiles } from '../../scripts/polish/build_instructions.ts';
import { masculinePlural, garble, arithmeticExample, wrongNumber, type SftRow, type DpoRow, type GrpoRow, type PlainRow } from '../../scripts/polish/instructions.ts';
import { isHeldOut, type Op } from '../../scripts/polish/eval_tasks.ts';
import { Random } from '../../scripts/polish/polish_text.ts';
import { FIXTURE_DOCS, fixtureAffixes, fixtureEntries } from '../polish_fixture.ts';

const inputs = () => ({ train: FIXTURE_DOCS, affixes: fixtureAffixes(), entries: fixtureEntries() });
const opts = { seed: 3, sft: 200, dpo: 80, grpo: 60, plain: 30 };
const rows = <T>(body: string): T[] => body.trim().split('\n').map((l) => JSON.parse(l) as T);

describe('instruction data', () => {
  const built = buildInstructionFiles(inputs(), opts);
  const sft = rows<SftRow>(built.files['sft.jsonl']);
  const dpo = rows<DpoRow>(built.files['dpo.jsonl']);
  const grpo = rows<GrpoRow>(built.files['grpo.jsonl']);
  const plain = rows<PlainRow>(built.files['sft_plain.jsonl']);

  test('byte-identical on a second run', () => {
    assert.deepEqual(buildInstructionFiles(inputs(), opts).files, built.files);
  });

  test('formats: SFT messages user -> assistant; DPO conversational pairs; GRPO prompts with a numeric answer; plain prompt/completion', () => {
    assert.equal(sft.length, 200);
    for (const r of sft) {
      assert.deepEqual(r.messages.map((m) => m.role), ['user', 'assistant']);
      assert.ok(r.messages.every((m) => m.content.trim() !== ''));
    }
    assert.ok(dpo.length >= 70);
    for (const r of dpo) {
      assert.deepEqual([r.prompt[0].role, r.chosen[0].role, r.rejected[0].role], ['user', 'assistant', 'assistant']);
      assert.notEqual(r.chosen[0].content, r.rejected[0].content, JSON.stringify(r));
    }
    assert.equal(grpo.length, 60);
    for (const r of grpo) assert.ok(Number.isInteger(r.answer) && r.prompt[0].role === 'user');
    assert.equal(plain.length, 30);
    for (const r of plain) assert.match(r.prompt + r.completion, /^Pytanie: .+[?.]\nOdpowiedź: \d+$/);
    const kinds = new Set(sft.map((r) => r.task));
    for (const k of ['arithmetic', 'complete_sentence', 'next_sentence', 'diacritics', 'plural', 'inflection']) assert.ok(kinds.has(k), k);
  });

  test('arithmetic: answers are right and no problem of the evaluation\'s held-out fifth is used', () => {
    const check = (a: number, op: string, b: number, n: number) => {
      const o = (op === '·' ? '*' : op) as Op;
      assert.equal(n, o === '+' ? a + b : o === '-' ? a - b : a * b);
      assert.equal(isHeldOut({ a, op: o, b }), false, `${a} ${op} ${b}`);
    };
    let seen = 0;
    for (const r of sft.filter((x) => x.task === 'arithmetic')) {
      const m = /^(\d+) ([+\-·]) (\d+) = (\d+)\./.exec(r.messages[1].content)!;
      check(+m[1], m[2], +m[3], +m[4]); seen++;
    }
    for (const r of plain) {
      const m = /(\d+) (\+|-|razy) (\d+)/.exec(r.prompt)!;
      check(+m[1], m[2] === 'razy' ? '*' : m[2], +m[3], +r.completion); seen++;
    }
    for (const r of grpo.filter((x) => x.task === 'arithmetic')) {
      const m = /(\d+) (\+|-|razy|·) (\d+)/.exec(r.prompt[0].content);
      if (m) { check(+m[1], m[2] === 'razy' ? '*' : m[2], +m[3], r.answer); seen++; }
    }
    assert.ok(seen > 50, String(seen));
  });

  test('other answers: plural from the dictionary, diacritics restored, counted letters and words', () => {
    for (const r of sft) {
      const [q, a] = [r.messages[0].content, r.messages[1].content];
      if (r.task === 'plural') assert.match(a, /^Liczba mnoga słowa „(kot|plik|katalog|użytkownik)” to „(koty|pliki|katalogi|użytkownicy)”\.$/);
      if (r.task === 'diacritics') assert.equal(q.replace('Popraw polskie znaki w zdaniu: ', ''), a.replace(/[ąćęłńóśźż]/g, (c) => 'acelnoszz'['ąćęłńóśźż'.indexOf(c)]).replace(/[ĄĆĘŁŃÓŚŹŻ]/g, (c) => 'ACELNOSZZ'['ĄĆĘŁŃÓŚŹŻ'.indexOf(c)]));
      if (r.task === 'count_letters') { const m = /„(.+)”/.exec(q)!; assert.ok(a.includes(` ${[...m[1]].length} `)); }
      if (r.task === 'inflection') assert.ok(FIXTURE_DOCS.some((d) => d.text.includes(a)), a);
    }
  });
});

test('masculinePlural: q for personal nouns, else s; entries without the plural-case flags are left out', () => {
  const aff = fixtureAffixes();
  const get = (stem: string) => masculinePlural(fixtureEntries().find((e) => e.stem === stem)!, aff);
  assert.equal(get('plik'), 'pliki');
  assert.equal(get('kot'), 'koty');
  assert.equal(get('użytkownik'), 'użytkownicy');
  assert.equal(get('dobry'), null);
  assert.equal(get('Kraków'), null);
});

test('wrong answers differ from right ones: numbers stay non-negative, garbled text is not the original', () => {
  const rnd = new Random(1);
  for (let n = 0; n < 50; n++) { const w = wrongNumber(n, [-10, -2, -1, 1, 2, 10], rnd); assert.ok(w >= 0 && w !== n); }
  assert.notEqual(garble('Ala ma kota i psa.', rnd), 'Ala ma kota i psa.');
  const e = arithmeticExample({ a: 3, op: '-', b: 3, answer: 0 }, rnd);
  assert.notEqual(e.answer, e.wrong);
});
