// The Polish evaluation suite generator on an inline corpus and dictionary (test/polish_fixture.ts):
// sentences, numbers in words, hunspell paradigms, each task's items, determinism and the YAML;
// and the committed suite in evals/polish matches its manifest (and loads in the eval harness).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import YAML from 'yaml';
import { createHash } from 'node:crypto';
import { splitSentences, numberToWords, stripDiacritics } from '../../scripts/polish/polish_text.ts';
import { entryForms, suffixForms, paradigmsFor } from '../../scripts/polish/hunspell.ts';
import { perplexityItems, nextSentenceItems, inflectionItems, inflectionWords, arithmeticItems, allProblems, isHeldOut, isChoiceSentence } from '../../scripts/polish/eval_tasks.ts';
import { buildSuiteFiles, TASK_YAML, DEFAULT_SUITE } from '../../scripts/polish/build_eval_suite.ts';
import { FIXTURE_DOCS, fixtureAffixes, fixtureEntries } from '../polish_fixture.ts';

describe('Polish text helpers', () => {
  test('splitSentences: abbreviations, initials and ordinals do not end a sentence; line breaks do', () => {
    assert.deepEqual(splitSentences('Ala ma kota, np. Mruczka. To jest zdanie! A to? Tak… Dr. Nowak i J. Kowalski przyszli 5. maja. „Cytat.” Koniec'), [
      'Ala ma kota, np. Mruczka.', 'To jest zdanie!', 'A to?', 'Tak…', 'Dr. Nowak i J. Kowalski przyszli 5. maja.', '„Cytat.”', 'Koniec']);
    assert.deepEqual(splitSentences('- Tak.\n- A ten z domu?'), ['- Tak.', '- A ten z domu?']);
    assert.deepEqual(splitSentences('Wersja 2.5 działa. m.in. to'), ['Wersja 2.5 działa. m.in. to']);
  });

  test('numberToWords: teens, tens, hundreds and the three forms of tysiąc', () => {
    const cases: [number, string][] = [[0, 'zero'], [7, 'siedem'], [12, 'dwanaście'], [21, 'dwadzieścia jeden'], [100, 'sto'], [215, 'dwieście piętnaście'],
      [1000, 'tysiąc'], [2022, 'dwa tysiące dwadzieścia dwa'], [5000, 'pięć tysięcy'], [12000, 'dwanaście tysięcy'], [22000, 'dwadzieścia dwa tysiące'],
      [-3, 'minus trzy'], [999999, 'dziewięćset dziewięćdziesiąt dziewięć tysięcy dziewięćset dziewięćdziesiąt dziewięć']];
    for (const [n, w] of cases) assert.equal(numberToWords(n), w, String(n));
    assert.throws(() => numberToWords(1e6), /below one million/);
  });

  test('stripDiacritics', () => assert.equal(stripDiacritics('Zażółć GĘŚLĄ jaźń'), 'Zazolc GESLA jazn'));
});

describe('hunspell paradigms', () => {
  const aff = fixtureAffixes();
  const entries = fixtureEntries();
  test('forms of an entry: the stem and every suffix rule whose condition matches the stem', () => {
    const kot = entries.find((e) => e.stem === 'kot')!;
    assert.deepEqual(entryForms(kot, aff), ['kot', 'kotom', 'kotami', 'kotach', 'kota', 'kotowi', 'kotem', 'koty', 'kotów']);
    assert.deepEqual(suffixForms('plik', 's', aff), ['pliki']);                    // [kg] rule, not [^...k...]
    assert.deepEqual(suffixForms('plik', 'O', aff), ['plika', 'plikowi', 'plikem', 'pliku']);
    assert.deepEqual(suffixForms('dobry', 'X', aff), ['dobrego', 'dobremu', 'dobrym', 'dobra', 'dobre', 'dobrą']);
  });
  test('paradigmsFor finds the entries that produce the wanted words; names (upper case) are skipped', () => {
    const idx = paradigmsFor(new Set(['kota', 'dobrym', 'krakowa', 'nieznane']), entries, aff);
    assert.equal(idx.get('kota')![0].lemma, 'kot');
    assert.equal(idx.get('dobrym')![0].lemma, 'dobry');
    assert.equal(idx.has('krakowa'), false);
    assert.equal(idx.has('nieznane'), false);
  });
});

describe('task items', () => {
  const index = paradigmsFor(inflectionWords(FIXTURE_DOCS), fixtureEntries(), fixtureAffixes());

  test('pl_perplexity: whole paragraphs of at least minChars, within the character budget', () => {
    const items = perplexityItems(FIXTURE_DOCS, { seed: 1, maxChars: 600, minChars: 150 });
    const paragraphs = FIXTURE_DOCS.flatMap((d) => d.text.split('\n\n'));
    assert.ok(items.length >= 2);
    assert.ok(items.reduce((n, x) => n + [...x.text].length, 0) <= 600);
    for (const it of items) { assert.ok(paragraphs.includes(it.text)); assert.ok([...it.text].length >= 150); }
  });

  test('pl_next_sentence: the gold choice follows the context; 3 distractors from other documents of the same source', () => {
    const items = nextSentenceItems(FIXTURE_DOCS, { seed: 1, n: 50, perDoc: 3 });
    assert.ok(items.length >= 10, `${items.length} items`);
    for (const it of items) {
      assert.equal(it.choices.length, 4);
      assert.equal(new Set(it.choices).size, 4);
      const doc = FIXTURE_DOCS.find((d) => it.id.startsWith(d.id + '/'))!;
      assert.ok(doc.text.includes(`${it.context} ${it.choices[it.gold]}`), it.id);
      for (const [k, c] of it.choices.entries()) {
        assert.ok(isChoiceSentence(c));
        if (k === it.gold) continue;
        const from = FIXTURE_DOCS.filter((d) => d.text.includes(c));
        assert.ok(from.every((d) => d.source === doc.source && d.id !== doc.id), c);
      }
    }
    const golds = new Set(items.map((x) => x.gold));
    assert.ok(golds.size >= 3, 'the gold position varies');
  });

  test('pl_inflection: 4 forms of one entry, each followed by the same rest of the sentence', () => {
    const items = inflectionItems(FIXTURE_DOCS, index, { seed: 1, n: 50, perDoc: 5 });
    assert.ok(items.length >= 5, `${items.length} items`);
    for (const it of items) {
      assert.equal(new Set(it.forms).size, 4);
      assert.equal(it.forms[it.gold], it.word);
      const rest = it.sentence.slice(it.sentence.indexOf('___') + 3);
      it.choices.forEach((c, k) => assert.equal(c, it.forms[k] + rest));
      const forms = entryForms(fixtureEntries().find((e) => e.stem === it.lemma)!, fixtureAffixes());
      assert.ok(it.forms.every((f) => forms.includes(f)));
      assert.ok(FIXTURE_DOCS.some((d) => d.text.includes(`${it.context} ${it.choices[it.gold]}`)), it.id);
    }
  });

  test('pl_arithmetic: correct answers, only from the held-out fifth (commutative pairs together)', () => {
    const all = allProblems();
    const held = all.filter(isHeldOut).length / all.length;
    assert.ok(held > 0.15 && held < 0.25, String(held));
    for (const p of all) if (p.op !== '-') assert.equal(isHeldOut(p), isHeldOut({ a: p.b, op: p.op, b: p.a }));
    const items = arithmeticItems({ seed: 5, n: 100, heldOut: true, tag: 'test' });
    assert.equal(items.length, 100);
    assert.equal(new Set(items.map((x) => x.id)).size, 100);
    for (const it of items) {
      assert.ok(isHeldOut(it));
      assert.equal(Number(it.answer), it.op === '+' ? it.a + it.b : it.op === '-' ? it.a - it.b : it.a * it.b);
      assert.match(it.question, new RegExp(`${it.a} (\\+|-|razy) ${it.b}`));
    }
    assert.deepEqual(items.map((x) => x.op).sort().join(''), '*'.repeat(20) + '+'.repeat(45) + '-'.repeat(35));
    assert.ok(arithmeticItems({ seed: 5, n: 30, heldOut: false, tag: 'shot' }).every((x) => !isHeldOut(x)));
  });
});

describe('the suite files', () => {
  const index = paradigmsFor(inflectionWords(FIXTURE_DOCS), fixtureEntries(), fixtureAffixes());
  const opts = { ...DEFAULT_SUITE, pplChars: 2000, pplMinChars: 100, next: 20, inflection: 20, arithmetic: 40 };

  test('byte-identical on a second run; a different seed changes the items', () => {
    const a = buildSuiteFiles(FIXTURE_DOCS, index, opts);
    assert.deepEqual(buildSuiteFiles(FIXTURE_DOCS, index, opts), a);
    assert.notDeepEqual(buildSuiteFiles(FIXTURE_DOCS, index, { ...opts, seed: 7 }).files['pl_next_sentence/test.jsonl'], a.files['pl_next_sentence/test.jsonl']);
    assert.deepEqual(Object.keys(a.files).sort(), [
      'pl_arithmetic/pl_arithmetic.yaml', 'pl_arithmetic/test.jsonl', 'pl_arithmetic/validation.jsonl',
      'pl_inflection/pl_inflection.yaml', 'pl_inflection/test.jsonl',
      'pl_next_sentence/pl_next_sentence.yaml', 'pl_next_sentence/test.jsonl',
      'pl_perplexity/pl_perplexity.yaml', 'pl_perplexity/test.jsonl']);
    for (const [k, v] of Object.entries(a.files)) if (k.endsWith('.jsonl')) for (const line of v.trim().split('\n')) assert.equal(typeof JSON.parse(line), 'object');
  });

  test('YAML: the harness fields, and fields that name columns of the data', () => {
    const files = buildSuiteFiles(FIXTURE_DOCS, index, opts).files;
    const want: Record<string, string> = { pl_perplexity: 'loglikelihood_rolling', pl_next_sentence: 'multiple_choice', pl_inflection: 'multiple_choice', pl_arithmetic: 'generate_until' };
    for (const [task, type] of Object.entries(want)) {
      const y = YAML.parse(TASK_YAML[task]);
      assert.equal(y.task, task);
      assert.equal(y.output_type, type);
      assert.equal(y.dataset_path, '.');
      assert.equal(y.test_split, 'test');
      const doc = JSON.parse(files[`${task}/test.jsonl`].split('\n')[0]);
      if (type === 'multiple_choice') {
        for (const k of ['doc_to_text', 'doc_to_choice', 'doc_to_target']) assert.ok(y[k] in doc, `${task}.${k}`);
        assert.deepEqual(y.metric_list.map((m: { metric: string }) => m.metric), ['acc', 'acc_norm', 'acc_bytes']);
      }
    }
    const ar = YAML.parse(TASK_YAML.pl_arithmetic);
    assert.equal(ar.doc_to_text, 'Pytanie: {{question}}\nOdpowiedź:');
    assert.deepEqual(ar.generation_kwargs.until, ['\n', 'Pytanie:']);
    assert.equal(ar.filter_list[0].filter[0].regex_pattern, '(-?\\d+)');
    assert.equal(ar.fewshot_split, 'validation');
    assert.equal(ar.num_fewshot, 3);
    assert.deepEqual(YAML.parse(TASK_YAML.pl_perplexity).metric_list.map((m: { metric: string }) => m.metric), ['bits_per_byte', 'word_perplexity', 'byte_perplexity']);
  });
});

const SUITE = path.resolve('evals/polish');

test('the committed suite in evals/polish matches its manifest, stays under 1 MB, and loads in the eval harness when present', { skip: !fs.existsSync(path.join(SUITE, 'manifest.json')) }, async () => {
  const m = JSON.parse(fs.readFileSync(path.join(SUITE, 'manifest.json'), 'utf8')) as { files: Record<string, { bytes: number; sha256: string }>; items: Record<string, number> };
  let total = 0;
  for (const [rel, f] of Object.entries(m.files)) {
    const body = fs.readFileSync(path.join(SUITE, rel));
    assert.equal(createHash('sha256').update(body).digest('hex'), f.sha256, rel);
    total += body.length;
  }
  assert.ok(total < 1 << 20, `${total} bytes`);
  for (const [task, n] of Object.entries(m.items)) assert.equal(fs.readFileSync(path.join(SUITE, task, 'test.jsonl'), 'utf8').trim().split('\n').length, n);
  const harness = path.resolve('src/eval/tasks.ts');
  if (!fs.existsSync(harness)) return;
  const { findTaskFiles, loadTask } = await import(pathToFileURL(harness).href);
  const tasks = (findTaskFiles(SUITE) as string[]).map((f) => loadTask(f));
  assert.deepEqual(tasks.map((t: { name: string }) => t.name).sort(), Object.keys(m.items).sort());
});
