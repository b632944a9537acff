// recipes/bielik-11b-to-7b.yaml, the seed's cut at full size: it passes the pipeline's recipe checker
// against the CLI as it is (every flag a real flag, every step reading only earlier steps), and its
// variables reach the commands: the model folder and token budgets a user sets with --set, the
// seed's shape, streamed scoring, forward KL at T = 1 from cached top-k teacher logits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import '../../src/cli/main.ts';
import { cliCatalog } from '../../src/cli/pipeline_command.ts';
import { loadRecipe } from '../../src/pipeline/recipe.ts';

const ROOT = path.join(import.meta.dirname, '../..');
const RECIPE = path.join(ROOT, 'recipes/bielik-11b-to-7b.yaml');

test('bielik-11b-to-7b.yaml passes the recipe checker and its variables reach the commands', () => {
  const plan = loadRecipe(RECIPE, cliCatalog(), { runDir: 'runs/b', set: ['model=/models/Bielik-11B-v3.0', 'kd_tokens=4k', 'seq_len=256', 'corpus=/data/pl'] });
  assert.deepEqual(plan.steps.map((s) => s.name), ['teacher_params', 'tokens', 'score', 'prune', 'distill', 'sft', 'dpo', 'grpo', 'student_params', 'eval', 'export']);
  assert.equal(plan.teacher, '/models/Bielik-11B-v3.0');
  assert.equal(plan.student, 'runs/b/steps/grpo/run/final');
  const argv = (name: string) => plan.steps.find((s) => s.name === name)!.argv.join(' ');
  assert.equal(argv('score'), 'score /models/Bielik-11B-v3.0 --data /data/pl/train.jsonl --samples 64 --seq-len 512 --stream --max-memory 22GiB --out runs/b/steps/score/scores.json --json');
  assert.match(argv('prune'), /^prune \/models\/Bielik-11B-v3\.0 --scores runs\/b\/steps\/score\/scores\.json --target num_hidden_layers=40,intermediate_size=11264 --depth importance /);
  const kd = argv('distill');
  assert.match(kd, /--teacher \/models\/Bielik-11B-v3\.0 --student runs\/b\/steps\/prune\/model --data runs\/b\/steps\/tokens\/data --tokens 4k --seq-len 256 /);
  assert.match(kd, / --temperature 1 --top-k 1024 --teacher-cache runs\/b\/teacher_cache /);
  assert.ok(!/--reverse-kl|--ce-weight|--t2/.test(kd), 'forward KL, no LM loss, no T^2');
  assert.match(argv('dpo'), /--dpop-lambda 2\.5/);
  assert.match(argv('eval'), /--teacher \/models\/Bielik-11B-v3\.0/);
  assert.match(argv('export'), /--dtype q8_0/);
});

test('the checked recipe refuses a misspelt variable override with the variables it knows', () => {
  assert.throws(() => loadRecipe(RECIPE, cliCatalog(), { runDir: 'runs/b', set: ['modle=/x'] }), /modle/);
});
