// `kompresor eval` as a user runs it: a folder of three tasks (multiple choice, rolling perplexity,
// generation) on two tiny models, the harness-shaped RESULTS.json with the recovery table, the
// printed table, and one-line errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { makeByteModel } from '../gguf_helpers.ts';
import { kompresor } from '../cli_run.ts';
import { tempDir } from '../helpers.ts';



let tmp: string, student: string, teacher: string, tasks: string;
before(() => {
  tmp = tempDir('kompresor-eval-cli-');
  student = path.join(tmp, 'student');
  teacher = path.join(tmp, 'teacher');
  makeByteModel(student, 'llama_tied_gqa', {}, 3);
  makeByteModel(teacher, 'llama_tied_gqa', {}, 4);
  tasks = path.join(tmp, 'tasks');
  fs.mkdirSync(path.join(tasks, 'data'), { recursive: true });
  const jsonl = (docs: object[]) => docs.map((d) => JSON.stringify(d)).join('\n') + '\n';
  fs.writeFileSync(path.join(tasks, 'data', 'mc.jsonl'), jsonl([
    { q: 'Co rośnie na łące?', choices: ['źdźbło', 'kamień', 'żółw'], gold: 0 },
    { q: 'Stolica Polski to', choices: ['Kraków', 'Warszawa'], gold: 1 },
    { q: 'Dwa plus dwa to', choices: ['cztery', 'pięć'], gold: 0 },
  ]));
  fs.writeFileSync(path.join(tasks, 'data', 'text.jsonl'), jsonl([{ text: 'Ala ma kota, a kot ma Alę.' }, { text: 'Źdźbło trawy kołysze się na wietrze nad łąką.' }]));
  fs.writeFileSync(path.join(tasks, 'data', 'gen.jsonl'), jsonl([{ q: '2+2', a: '4' }, { q: '3+4', a: '7' }]));
  fs.writeFileSync(path.join(tasks, 'mc.yaml'), 'task: pl_mc\ndataset_path: data/mc.jsonl\noutput_type: multiple_choice\n'
    + 'doc_to_text: "Pytanie: {{q}}\\nOdpowiedź:"\ndoc_to_target: gold\ndoc_to_choice: choices\nnum_fewshot: 1\n'
    + 'metric_list:\n  - metric: acc\n  - metric: acc_norm\n  - metric: acc_bytes\n');
  fs.writeFileSync(path.join(tasks, 'ppl.yaml'), 'task: pl_ppl\ndataset_path: data/text.jsonl\noutput_type: loglikelihood_rolling\ndoc_to_target: text\n');
  fs.writeFileSync(path.join(tasks, 'gen.yaml'), 'task: pl_gen\ndataset_path: data/gen.jsonl\noutput_type: generate_until\n'
    + 'doc_to_text: "{{q}}="\ndoc_to_target: a\ngeneration_kwargs:\n  until: ["\\n"]\n  max_gen_toks: 4\n'
    + 'filter_list:\n  - name: number\n    filter:\n      - function: regex\n        regex_pattern: "\\\\d+"\n      - function: take_first\n');
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('eval --teacher writes harness-shaped results with stderr, recovery per task and on average', async () => {
  const out = path.join(tmp, 'results.json');
  const r = await kompresor(['eval', student, '--tasks', tasks, '--out', out, '--teacher', teacher, '--max-length', '24', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(fs.readFileSync(out, 'utf8'));
  assert.deepEqual(JSON.parse(r.stdout), s);
  assert.deepEqual(Object.keys(s.results).sort(), ['pl_gen', 'pl_mc', 'pl_ppl']);
  assert.deepEqual(Object.keys(s.results.pl_mc), ['acc', 'acc_stderr', 'acc_norm', 'acc_norm_stderr', 'acc_bytes', 'acc_bytes_stderr']);
  assert.deepEqual(Object.keys(s.results.pl_ppl), ['word_perplexity', 'word_perplexity_stderr', 'byte_perplexity', 'byte_perplexity_stderr', 'bits_per_byte', 'bits_per_byte_stderr']);
  assert.deepEqual(Object.keys(s.results.pl_gen), ['exact_match', 'exact_match_stderr']);
  for (const m of Object.values(s.results) as Record<string, unknown>[]) for (const v of Object.values(m)) assert.equal(typeof v, 'number');
  assert.ok(Math.abs(s.results.pl_ppl.bits_per_byte - Math.log2(s.results.pl_ppl.byte_perplexity)) < 1e-9);
  assert.deepEqual(s.primary_metric, { pl_gen: 'exact_match', pl_mc: 'acc', pl_ppl: 'word_perplexity' });
  assert.deepEqual(s['n-shot'], { pl_gen: 0, pl_mc: 1, pl_ppl: 0 });
  assert.deepEqual(s['n-samples'].pl_mc, { original: 3, effective: 3 });
  // recovery: student / teacher on acc; teacher / student on word perplexity
  const ppl = s.teacher_results.pl_ppl.word_perplexity / s.results.pl_ppl.word_perplexity * 100;
  assert.ok(Math.abs(s.recovery.pl_ppl - ppl) < 1e-9);
  const defined = ['pl_gen', 'pl_mc', 'pl_ppl'].map((t) => s.recovery[t]).filter((x: unknown) => typeof x === 'number');
  assert.ok(Math.abs(s.recovery.average - defined.reduce((a: number, b: number) => a + b, 0) / defined.length) < 1e-9);
  assert.equal(s.config.max_length, 24);
  assert.equal(s.config.fewshot_seed, 1234);
});

test('eval prints a table, a progress line on a non-terminal stderr, and --limit cuts the docs', async () => {
  const out = path.join(tmp, 'r2.json');
  const r = await kompresor(['eval', student, '--tasks', `${path.join(tasks, 'mc.yaml')},${path.join(tasks, 'ppl.yaml')}`, '--out', out, '--limit', '2']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^task\s+metric\s+value\s+stderr\n/);
  assert.match(r.stdout, /\npl_mc\s+acc ↑\s+[\d.]+\s+[\d.]+\n/);
  assert.match(r.stdout, /\npl_ppl\s+bits_per_byte ↓\s+[\d.]+/);
  assert.match(r.stdout, /\d+ requests in [\d.]+ s \(student\)\nwrote .*r2\.json\n$/);
  assert.match(r.stderr, /^eval student \d+\/\d+ requests \| /m);
  assert.deepEqual(JSON.parse(fs.readFileSync(out, 'utf8'))['n-samples'].pl_mc, { original: 3, effective: 2 });
});

test('eval refuses with one line: a YAML error names the file and line; a missing task path', async () => {
  const bad = path.join(tmp, 'bad.yaml');
  fs.writeFileSync(bad, 'task: x\ndoc_to_text: "unterminated\n');
  const r = await kompresor(['eval', student, '--tasks', bad, '--out', path.join(tmp, 'x.json')]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^kompresor: .*bad\.yaml:3:1: the task file must be valid YAML; found Missing closing "quote\.\n$/);
  const m = await kompresor(['eval', student, '--tasks', path.join(tmp, 'nope.yaml'), '--out', path.join(tmp, 'x.json')]);
  assert.equal(m.code, 1);
  assert.match(m.stderr, /^kompresor: --tasks .*nope\.yaml: each task must be a YAML file or a folder of them; found no such file or folder\.\n$/);
});
