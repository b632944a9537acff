// Task YAML, few-shot prompts and scoring, checked against values computed by hand: a mock model
// answers with fixed log-likelihoods, so every metric below is arithmetic on the test's numbers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadTask, findTaskFiles, applyFilters, pythonLiteral, type FilterStep } from '../../src/eval/tasks.ts';
import { fewshotContext, FewshotSampler, PyRandom } from '../../src/eval/fewshot.ts';
import { evaluateTask, evaluateTasks, computeRecovery, type EvalResults } from '../../src/eval/run.ts';
import { charLength, byteLength, countWords, exactMatch, meanStderr, bootstrapStderr, recoveryPercent } from '../../src/eval/metrics.ts';
import type { EvalLM, LoglikelihoodRequest, GenerateRequest } from '../../src/eval/requests.ts';
import { throwsWith, tempDir } from '../helpers.ts';

let tmp: string;
before(() => { tmp = tempDir('kompresor-eval-tasks-'); });
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Writes a task folder: NAME.yaml plus data/<split>.jsonl files; returns the YAML path. */
function writeTask(name: string, yaml: string, splits: Record<string, object[]> = {}): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(path.join(dir, 'data'), { recursive: true });
  for (const [split, docs] of Object.entries(splits)) fs.writeFileSync(path.join(dir, 'data', `${split}.jsonl`), docs.map((d) => JSON.stringify(d)).join('\n') + '\n');
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(file, yaml);
  return file;
}

/** Answers loglikelihood with lls[continuation without the leading delimiter], rolling and generation from tables. */
class MockLM implements EvalLM {
  seen: { ll: LoglikelihoodRequest[]; gen: GenerateRequest[] } = { ll: [], gen: [] };
  constructor(private lls: Record<string, number>, private greedy: Set<string> = new Set(), private rolling: Record<string, number> = {},
    private gens: Record<string, string> = {}) {}
  loglikelihood(reqs: LoglikelihoodRequest[]) {
    this.seen.ll.push(...reqs);
    return reqs.map((r) => {
      const c = r.continuation.replace(/^ /, '');
      assert.ok(c in this.lls, `no ll for ${JSON.stringify(c)}`);
      return { ll: this.lls[c], isGreedy: this.greedy.has(c) };
    });
  }
  loglikelihoodRolling(texts: string[]) { return texts.map((t) => this.rolling[t]); }
  generateUntil(reqs: GenerateRequest[]) {
    this.seen.gen.push(...reqs);
    return reqs.map((r) => this.gens[r.context.split('\n').at(-2) ?? ''] ?? '');
  }
}

const OPTS = { bootstrapIters: 200, seed: 1 };

test('Python\'s random.Random(1234).sample is reproduced exactly (values printed by CPython 3.11)', () => {
  const r = new PyRandom(1234);
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  assert.deepEqual(r.sample(range(10), 3), [7, 1, 0]);
  assert.deepEqual(r.sample(range(100), 5), [11, 74, 4, 85, 88]);
  assert.equal(r.getrandbits(32), 360511942);
  // the set-based branch (population larger than the pool size) and a seed wider than 32 bits
  assert.deepEqual(new PyRandom(1234).sample(range(1000), 10), [989, 796, 451, 119, 7, 92, 932, 965, 961, 826]);
  assert.deepEqual(new PyRandom(2 ** 40 + 5).sample(range(50), 6), [32, 33, 17, 42, 1, 48]);
});

test('few-shot prompts: description + shots (text + target_delimiter + answer + fewshot_delimiter) + text, exact strings', () => {
  const train = [0, 1, 2, 3, 4].map((i) => ({ q: `pytanie ${i}`, a: `odpowiedź ${i}` }));
  const file = writeTask('fewshot', [
    'task: fewshot_pl', 'dataset_path: data', 'test_split: test', 'fewshot_split: train', 'output_type: generate_until',
    'description: "Odpowiedz krótko.\\n\\n"', 'doc_to_text: "P: {{q}}\\nO:"', 'doc_to_target: a', 'num_fewshot: 2',
  ].join('\n'), { train, test: [{ q: 'ile?', a: '2' }, { q: 'kto?', a: 'Ala' }] });
  const task = loadTask(file);
  const sampler = new FewshotSampler(task.fewshotDocs!, task.samplerName, 1234, task.fewshotSameSplit);
  // Random(1234): sample(range(5), 2) -> [3, 0], then [0, 4]; one generator per task, doc by doc
  assert.equal(fewshotContext(task, task.evalDocs[0], 2, sampler),
    'Odpowiedz krótko.\n\nP: pytanie 3\nO: odpowiedź 3\n\nP: pytanie 0\nO: odpowiedź 0\n\nP: ile?\nO:');
  assert.equal(fewshotContext(task, task.evalDocs[1], 2, sampler),
    'Odpowiedz krótko.\n\nP: pytanie 0\nO: odpowiedź 0\n\nP: pytanie 4\nO: odpowiedź 4\n\nP: kto?\nO:');
  // --num-fewshot 0 overrides the YAML: the description and the text only
  const zero = loadTask(file, 0);
  assert.equal(fewshotContext(zero, zero.evalDocs[0], 0, null), 'Odpowiedz krótko.\n\nP: ile?\nO:');
});

test('few-shot from the evaluation split draws n + 1 and drops the evaluated doc; first_n; int targets index the choices', () => {
  const docs = [0, 1, 2, 3].map((i) => ({ text: `t${i}`, label: i % 2 }));
  const file = writeTask('samesplit', [
    'task: same', 'dataset_path: data', 'test_split: test', 'output_type: multiple_choice', 'doc_to_text: "{{text}}:"',
    'doc_to_target: label', 'doc_to_choice: ["nie", "tak"]', 'num_fewshot: 1', 'target_delimiter: " "', 'fewshot_delimiter: "\\n"',
  ].join('\n'), { test: docs });
  const task = loadTask(file);
  assert.equal(task.fewshotSameSplit, true);
  const sampler = new FewshotSampler(task.fewshotDocs!, 'default', 1234, true);
  // Random(1234): sample(range(4), 2) per doc = [3,0], [0,3], [0,2], [0,3]; the evaluated doc is removed
  const shots = task.evalDocs.map((d) => fewshotContext(task, d, 1, sampler));
  assert.deepEqual(shots, ['t3: tak\nt0:', 't0: nie\nt1:', 't0: nie\nt2:', 't0: nie\nt3:']);
  const firstN = new FewshotSampler(task.fewshotDocs!, 'first_n', 1234, true);
  assert.equal(fewshotContext(task, task.evalDocs[0], 1, firstN), 't1: tak\nt0:');
});

test('acc_norm divides by characters, acc_bytes by UTF-8 bytes: on "źdźbło" (6 characters, 9 bytes) they pick different winners', () => {
  assert.equal(charLength('źdźbło'), 6);
  assert.equal(byteLength('źdźbło'), 9);
  assert.equal(charLength('👍a'), 2); // code points, as Python's len (not UTF-16 units)
  const file = writeTask('diacritics', [
    'task: zdzblo', 'dataset_path: data', 'test_split: test', 'output_type: multiple_choice',
    'doc_to_text: "{{q}}"', 'doc_to_target: gold', 'doc_to_choice: "{{choices}}"',
    'metric_list:', '  - metric: acc', '  - metric: acc_norm', '  - metric: acc_bytes', '  - metric: exact_match',
  ].join('\n'), { test: [{ q: 'Co to jest?', choices: ['źdźbło', 'trawa'], gold: 0 }, { q: 'Jaki kolor?', choices: ['zielony', 'żółć'], gold: 'żółć' }] });
  // doc 0: źdźbło -6.0 (-1.0/char, -0.667/byte), trawa -4.5 (-0.9/char, -0.9/byte)
  // doc 1: zielony -7.7 (7 chars/bytes: -1.1), żółć -5.2 (4 chars: -1.3; 7 bytes: -0.743)
  const lm = new MockLM({ źdźbło: -6.0, trawa: -4.5, zielony: -7.7, żółć: -5.2 }, new Set(['żółć']));
  const r = evaluateTask(lm, loadTask(file), OPTS);
  assert.deepEqual(lm.seen.ll.map((q) => [q.context, q.continuation]),
    [['Co to jest?', ' źdźbło'], ['Co to jest?', ' trawa'], ['Jaki kolor?', ' zielony'], ['Jaki kolor?', ' żółć']]);
  // acc: argmax ll = trawa (wrong), żółć (right) -> 0.5; acc_norm: trawa, zielony -> 0; acc_bytes: źdźbło, żółć -> 1
  assert.equal(r.metrics.acc, 0.5);
  assert.equal(r.metrics.acc_norm, 0);
  assert.equal(r.metrics.acc_bytes, 1);
  assert.equal(r.metrics.exact_match, 0.5); // is_greedy of the gold continuation
  // mean_stderr = sample std / sqrt(n): values [0, 1] -> std 0.7071, / sqrt 2 = 0.5
  assert.equal(r.metrics.acc_stderr, 0.5);
  assert.equal(r.metrics.acc_norm_stderr, 0);
  assert.equal(r.primary, 'acc');
});

test('loglikelihood_rolling metrics are sums over documents: word and byte perplexity, bits per byte', () => {
  const texts = ['ala ma kota', 'źdźbło trawy'];
  const file = writeTask('rolling', ['task: ppl', 'dataset_path: data', 'test_split: test', 'output_type: loglikelihood_rolling', 'doc_to_target: text'].join('\n'),
    { test: texts.map((text) => ({ text })) });
  const r = evaluateTask(new MockLM({}, new Set(), { 'ala ma kota': -10, 'źdźbło trawy': -20 }), loadTask(file), OPTS);
  // words 3 + 2 = 5; bytes 11 + 15 = 26
  assert.equal(countWords('ala ma kota') + countWords('źdźbło trawy'), 5);
  assert.equal(byteLength('źdźbło trawy'), 15);
  assert.ok(Math.abs((r.metrics.word_perplexity as number) - Math.exp(30 / 5)) < 1e-9);
  assert.ok(Math.abs((r.metrics.byte_perplexity as number) - Math.exp(30 / 26)) < 1e-12);
  assert.ok(Math.abs((r.metrics.bits_per_byte as number) - 30 / 26 / Math.LN2) < 1e-12);
  assert.equal(r.primary, 'word_perplexity');
  assert.equal(typeof r.metrics.word_perplexity_stderr, 'number'); // bootstrap
});

test('loglikelihood tasks: the target is the continuation as it is (no delimiter); perplexity exp(-mean ll), acc = is_greedy', () => {
  const file = writeTask('ll', ['task: lambada_pl', 'dataset_path: data', 'test_split: test', 'output_type: loglikelihood',
    'doc_to_text: "{{ctx}}"', 'doc_to_target: "{{last}}"'].join('\n'), { test: [{ ctx: 'Ala ma', last: ' kota' }, { ctx: 'Kot ma', last: ' Alę' }] });
  const lm = new MockLM({ kota: -1, 'Alę': -3 }, new Set(['kota']));
  const r = evaluateTask(lm, loadTask(file), OPTS);
  assert.deepEqual(lm.seen.ll.map((q) => q.continuation), [' kota', ' Alę']);
  assert.ok(Math.abs((r.metrics.perplexity as number) - Math.exp(2)) < 1e-12);
  assert.equal(r.metrics.acc, 0.5);
  assert.equal(r.primary, 'perplexity');
});

test('generate_until: stop strings from generation_kwargs, regex + take_first filters, exact_match per pipeline', () => {
  const file = writeTask('gen', [
    'task: arytmetyka', 'dataset_path: data', 'test_split: test', 'output_type: generate_until',
    'doc_to_text: "Pytanie: {{q}}\\nOdpowiedź:"', 'doc_to_target: "{{a}}"',
    'generation_kwargs:', '  until: [".", ","]', '  max_gen_toks: 50',
    'filter_list:',
    '  - name: strict', '    filter:', '      - function: regex', '        regex_pattern: "\\\\b[ABCD]\\\\b"', '      - function: take_first',
    '  - name: none', '    filter:', '      - function: take_first',
  ].join('\n'), { test: [{ q: 'A czy B', a: 'B' }, { q: 'C czy D', a: 'C' }] });
  const lm = new MockLM({}, new Set(), {}, { 'Pytanie: A czy B': ' B', 'Pytanie: C czy D': ' chyba D' });
  const task = loadTask(file);
  const r = evaluateTask(lm, task, OPTS);
  assert.deepEqual(lm.seen.gen[0].until, ['.', ',']);
  assert.equal(lm.seen.gen[0].maxGenToks, 50);
  assert.equal(lm.seen.gen[0].context, 'Pytanie: A czy B\nOdpowiedź:');
  assert.equal(r.metrics['exact_match,strict'], 0.5);   // "B" vs B; "D" vs C
  assert.equal(r.metrics['exact_match,none'], 0);       // " B" != "B" without a filter
  assert.ok('exact_match_stderr,strict' in r.metrics);
});

test('regex filter: findall semantics, group_select (negative from the end), groups, fallback; exact_match options', () => {
  const rx = (pattern: string, groupSelect = 0): FilterStep[] => [{ fn: 'regex', regex: new RegExp(pattern, 'g'), groupSelect, fallback: '[invalid]' }, { fn: 'take_first' }];
  assert.equal(applyFilters('Odpowiedź: B, nie C', rx('\\b[ABCD]\\b')), 'B');
  assert.equal(applyFilters('Odpowiedź: B, nie C', rx('\\b[ABCD]\\b', -1)), 'C');
  assert.equal(applyFilters('brak', rx('\\b[ABCD]\\b')), '[invalid]');
  assert.equal(applyFilters('#### -1,234', rx('#### (\\-?[0-9\\.\\,]+)')), '-1,234');
  assert.equal(applyFilters('x=7', rx('(y)=(\\d)|(x)=(\\d)')), 'x'); // a tuple gives its first non-empty group
  assert.equal(exactMatch('Tak.', 'tak', { ignoreCase: true, ignorePunctuation: true }), 1);
  assert.equal(exactMatch('Tak.', 'tak'), 0);
  assert.equal(exactMatch('wynik: 42', '42', { regexesToIgnore: ['wynik: '] }), 1);
});

test('recovery: student/teacher x 100 when higher is better, teacher/student x 100 for perplexity; average over tasks', () => {
  assert.equal(recoveryPercent(0.45, 0.5, true), 90);
  assert.equal(recoveryPercent(12.5, 10, false), 80);
  assert.equal(recoveryPercent(0.3, 0, true), null);
  const res = (acc: number, ppl: number): EvalResults => ({
    results: { mc: { acc, acc_stderr: 0.01 }, ppl: { word_perplexity: ppl, word_perplexity_stderr: 0.1 } },
    'n-shot': {}, 'n-samples': {}, versions: {}, timing: {},
    higher_is_better: { mc: { acc: true }, ppl: { word_perplexity: false } }, primary_metric: { mc: 'acc', ppl: 'word_perplexity' },
  });
  const r = computeRecovery(res(0.45, 12.5), res(0.5, 10));
  assert.equal(r.mc, 90);
  assert.equal(r.ppl, 80);
  assert.equal(r.average, 85);
});

test('standard errors: mean_stderr is std/sqrt(n); the bootstrap is seeded and close to the analytic value for a mean', () => {
  const xs = [1, 0, 1, 1, 0, 1, 0, 1];
  const se = meanStderr(xs);
  assert.ok(Math.abs(se - Math.sqrt(0.26785714285714285) / Math.sqrt(8)) < 1e-12);
  const b1 = bootstrapStderr(xs, 'mean', 2000, 7), b2 = bootstrapStderr(xs, 'mean', 2000, 7);
  assert.equal(b1, b2);
  // the bootstrap estimates the population std / sqrt(n), slightly below the sample one
  assert.ok(Math.abs(b1 - se * Math.sqrt(7 / 8)) < 0.02, `${b1} vs ${se}`);
});

test('doc_to_choice renders: JSON-like lists, Python literals with either quote; a digit target becomes an index', () => {
  assert.deepEqual(pythonLiteral(`['a', "b'c", 'd\\'e', 3]`), ['a', "b'c", "d'e", 3]);
  assert.deepEqual(pythonLiteral('["źdźbło", "x"]'), ['źdźbło', 'x']);
  const file = writeTask('tpl', [
    'task: tpl', 'dataset_path: data', 'test_split: test', 'output_type: multiple_choice', 'doc_to_text: "{{q}}"',
    'doc_to_target: "{{ans}}"', `doc_to_choice: "['{{a}}', '{{b}}']"`,
  ].join('\n'), { test: [{ q: 'q', a: 'x', b: 'y', ans: 1 }] });
  const task = loadTask(file);
  assert.deepEqual(task.docToChoice(task.evalDocs[0]), ['x', 'y']);
  assert.equal(task.docToTarget(task.evalDocs[0]), 1);
});

test('task files: a folder is searched for YAML with a task key; include merges a base; names are checked', () => {
  const dir = path.join(tmp, 'suite');
  fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'sub', 'd.jsonl'), '{"t": "x", "c": ["a", "b"], "g": 0}\n');
  fs.writeFileSync(path.join(dir, '_base.yaml'), 'dataset_path: sub/d.jsonl\noutput_type: multiple_choice\ndoc_to_text: t\ndoc_to_target: g\ndoc_to_choice: c\n');
  fs.writeFileSync(path.join(dir, 'one.yaml'), 'include: _base.yaml\ntask: one\n');
  fs.writeFileSync(path.join(dir, 'two.yaml'), 'include: _base.yaml\ntask: two\nnum_fewshot: 0\n');
  const files = findTaskFiles(dir);
  assert.deepEqual(files.map((f) => path.basename(f)), ['one.yaml', 'two.yaml']);
  const r = evaluateTasks(new MockLM({ a: -1, b: -2 }), files.map((f) => loadTask(f)), OPTS);
  assert.deepEqual(Object.keys(r.results), ['one', 'two']);
  assert.equal(r.results.one.acc, 1);
  assert.equal(r.results.one.acc_stderr, 'N/A'); // one doc, as the harness writes
});

test('YAML and task errors are one line and name the file, the place and the rule', () => {
  const t = (name: string, yaml: string, docs: object[] = [{ q: 'x', a: 'y' }]) => writeTask(name, yaml, { test: docs });
  const base = 'dataset_path: data\ntest_split: test\n';
  throwsWith(() => loadTask(t('e1', 'task: x\n  bad: [\n')), 'config_invalid', /e1\.yaml:1:7: the task file must be valid YAML; found Nested mappings/);
  throwsWith(() => loadTask(t('e2', `task: x\n${base}process_docs: foo\n`)), 'config_invalid', /e2\.yaml: process_docs: unsupported key "process_docs".*precompute the fields/);
  throwsWith(() => loadTask(t('e3', `task: x\n${base}doc_to_text: !function utils.doc_to_text\n`)), 'config_invalid', /doc_to_text: !function utils\.doc_to_text is Python code/);
  throwsWith(() => loadTask(t('e4', `task: x\n${base}output_type: multiple_choice\ndoc_to_text: q\ndoc_to_target: a\n`)), 'config_invalid', /e4\.yaml: doc_to_choice: multiple_choice needs doc_to_choice/);
  throwsWith(() => loadTask(t('e5', `task: x\n${base}doc_to_text: "{{ qestion }}"\ndoc_to_target: a\n`)), 'config_invalid', /doc_to_text: the template uses "qestion", which is not a field of the docs; found fields q, a/);
  throwsWith(() => loadTask(t('e6', `task: x\n${base}output_type: generate_until\ndoc_to_text: q\ndoc_to_target: a\nmetric_list:\n  - metric: acc_norm\n`)), 'config_invalid', /metric_list\[0\]\.metric: generate_until tasks support the metrics exact_match; found "acc_norm"/);
  throwsWith(() => loadTask(t('e7', `task: x\ndataset_path: data\ntest_split: nope\ndoc_to_text: q\ndoc_to_target: a\n`)), 'file_not_found', /data .*nope\.jsonl: the split file must exist/);
  throwsWith(() => loadTask(t('e8', `${base}doc_to_text: q\n`)), 'config_invalid', /e8\.yaml: task: a task YAML needs `task: NAME`/);
  throwsWith(() => loadTask(t('e9', `task: x\n${base}output_type: multiple_choise\n`)), 'config_invalid', /output_type: output_type must be loglikelihood \| loglikelihood_rolling/);
  throwsWith(() => loadTask(t('e10', `task: x\n${base}doc_to_text: q\ndoc_to_target: a\nnum_fewshot: 3\n`)), 'config_invalid', /num_fewshot: 3 shots need enough few-shot docs.*expected at least 4 docs, found 1/);
});
