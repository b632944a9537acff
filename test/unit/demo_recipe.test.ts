// The demo's recipe (recipes/bielik-minitron-mini.yaml) end to end on a tiny stand-in teacher:
// every one of its steps runs as the real command with the recipe's own flags, only sizes and
// budgets shrunk with --set, and the report answers the three questions that `npm run demo` prints.
// This guards the wiring the demo relies on (a renamed flag, a moved output, a report field)
// without its 15 minutes. Inputs: a random 2-layer Mistral with the byte-level tokenizer, the
// committed eval suite's held-out paragraphs as the corpus, instruction data from the inline
// Polish fixture. None of the numbers mean anything here; that they exist and agree does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { kompresor, ROOT } from '../cli_run.ts';
import { tempDir } from '../helpers.ts';
import { byteLevelTokenizer } from '../../src/io/byte_tokenizer.ts';
import { normalizeConfig } from '../../src/io/hf_config.ts';
import { Decoder } from '../../src/model/decoder.ts';
import { initWeights } from '../../src/model/init.ts';
import { saveModel } from '../../src/model/load.ts';
import { buildInstructionFiles } from '../../scripts/polish/build_instructions.ts';
import { FIXTURE_DOCS, fixtureAffixes, fixtureEntries } from '../polish_fixture.ts';
import { answers } from '../../src/cli/demo.ts';
import type { PipelineReport } from '../../src/pipeline/report.ts';

const RECIPE = path.join(ROOT, 'recipes/bielik-minitron-mini.yaml');

function tinyTeacher(dir: string): number {
  const tf = byteLevelTokenizer();
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tf.tokenizerJson));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tf.tokenizerConfig));
  const raw = {
    architectures: ['MistralForCausalLM'], model_type: 'mistral', vocab_size: tf.vocabSize, hidden_size: 64, intermediate_size: 128,
    num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, hidden_act: 'silu', max_position_embeddings: 2048, // as models/polish-teacher (GRPO rows are 512 + 24 tokens)
    rms_norm_eps: 1e-5, rope_theta: 10000, sliding_window: null, tie_word_embeddings: true, torch_dtype: 'float32',
    bos_token_id: null, eos_token_id: tf.specialIds['<|im_end|>'], pad_token_id: tf.specialIds['<|endoftext|>'],
  };
  const model = new Decoder(normalizeConfig(raw, 'tiny teacher'));
  initWeights(model, 5);
  saveModel(model, dir, raw);
  return model.params.length;
}

test('the demo recipe runs end to end on a tiny teacher and its report answers the three questions', async () => {
  const tmp = tempDir('kompresor-demo-recipe-');
  const teacher = path.join(tmp, 'teacher'), corpus = path.join(tmp, 'corpus'), instructions = path.join(tmp, 'instructions'), run = path.join(tmp, 'run');
  const teacherParams = tinyTeacher(teacher);
  fs.mkdirSync(corpus);
  fs.copyFileSync(path.join(ROOT, 'evals/polish/pl_perplexity/test.jsonl'), path.join(corpus, 'train.jsonl'));
  fs.mkdirSync(instructions);
  const built = buildInstructionFiles({ train: FIXTURE_DOCS, affixes: fixtureAffixes(), entries: fixtureEntries() }, { seed: 3, sft: 60, dpo: 40, grpo: 30, plain: 20 });
  for (const [name, body] of Object.entries(built.files)) fs.writeFileSync(path.join(instructions, name), body);

  const sets = [`teacher_dir=${teacher}`, `corpus=${corpus}`, `instructions=${instructions}`, 'layers=1', 'mlp=96', 'params=0.8',
    'kd_tokens=4k', 'warmup=1', 'sft_steps=2', 'dpo_steps=2', 'grpo_steps=2', 'eval_limit=4'];
  const r = await kompresor(['pipeline', RECIPE, '--out', run, ...sets.flatMap((s) => ['--set', s]), '--json'], undefined, 600_000);
  assert.equal(r.code, 0, r.stderr.slice(-2000));

  const report = JSON.parse(fs.readFileSync(path.join(run, 'report.json'), 'utf8')) as PipelineReport;
  assert.deepEqual(report.missing, []);
  assert.ok(report.steps.length >= 19 && report.steps.every((s) => s.status === 'finished'), JSON.stringify(report.steps.map((s) => [s.name, s.status])));
  assert.equal(report.teacher.params, teacherParams);
  // the depth+MLP cut of the recipe, --target num_hidden_layers=1,intermediate_size=96, survives to the student
  const pruned = report.params.models.find((m) => m.label === 'prune (pruned)')!;
  assert.deepEqual(pruned.sizes, { num_hidden_layers: 1, hidden_size: 64, num_attention_heads: 4, intermediate_size: 96 });
  assert.equal(report.student.params, pruned.components.total);
  assert.ok(report.params.reduction_percent! > 0);
  assert.equal(report.recovery.step, 'eval');
  assert.deepEqual(report.recovery.tasks.map((t) => t.task).sort(), ['pl_arithmetic', 'pl_inflection', 'pl_next_sentence', 'pl_perplexity']);
  assert.equal(report.recovery.tasks.find((t) => t.task === 'pl_perplexity')!.metric, 'bits_per_byte');
  assert.ok(Number.isFinite(report.recovery.average));
  assert.ok(report.speedup.decode! > 0 && report.speedup.llama_cpp!.decode! > 0);
  assert.deepEqual(report.comparisons.map((c) => [c.step, c.eval_step, c.tokens]),
    [['distill', 'eval_distill', 4096], ['distill_width', 'eval_width', 4096], ['scratch', 'eval_scratch', 4096]]);
  assert.ok(report.comparisons.every((c) => Number.isFinite(c.validation_loss) && Number.isFinite(c.recovery_average)));
  assert.ok(fs.statSync(path.join(run, 'steps/export/model.gguf')).size > 0);
  // the export step's two types, Q4_K_M with and without the student's calibration, measured against f16
  assert.ok(fs.statSync(path.join(run, 'steps/export/model-q4_k_m.gguf')).size > 0);
  assert.deepEqual(report.quantization.map((q) => [q.dtype, q.weighted]), [['f16', false], ['q8_0', false], ['q4_k_m', false], ['q4_k_m', true]]);
  assert.ok(report.quantization.every((q) => Number.isFinite(q.bits_per_byte) && q.decode_tokens_per_s > 0));

  const text = answers(report, 60, run);
  assert.match(text, new RegExp(`How much smaller\\?  ${teacherParams.toLocaleString('en-US')} -> ${report.student.params!.toLocaleString('en-US')} parameters \\(-${report.params.reduction_percent!.toFixed(1)}%`));
  assert.match(text, new RegExp(`Quality kept\\?      ${report.recovery.average!.toFixed(1)}% of the teacher's average score on the Polish suite \\(pl_`));
  assert.match(text, new RegExp(`decode ${report.speedup.decode!.toFixed(2)}x on the engine, ${report.speedup.llama_cpp!.decode!.toFixed(2)}x in llama\\.cpp`));
  assert.match(text, /report: .*report\.html .*; 1\.0 min this run$/);
});

test('npm run demo -- --help explains it; an unknown option is one line and exit 1', () => {
  const demo = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/demo.ts'), ...args], { encoding: 'utf8', cwd: ROOT });
  const help = demo('--help');
  assert.equal(help.status, 0);
  assert.match(help.stdout, /^Usage: npm run demo \[-- --out DIR\] \[--json\] \[--set key=value \.\.\.\]/);
  assert.match(help.stdout, /kompresor pipeline recipes\/bielik-minitron-mini\.yaml/);
  const bad = demo('--outt', 'x');
  assert.equal(bad.status, 1);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
  assert.match(bad.stderr, /^demo: unknown option --outt; expected --out DIR, --json or --set key=value/);
});
