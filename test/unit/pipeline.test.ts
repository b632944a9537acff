// `kompresor pipeline` (src/pipeline/recipe.ts, runner.ts, report.ts): recipe errors with their
// exact text (file, line, step, key), reference resolution into argv, the runner's resume rules on
// real child processes (inspect and prune of a fixture with synthetic scores: a finished step is
// skipped, changed arguments re-run the step and the steps reading from it, a failure leaves
// <name>.partial/ and a consistent state), the resume/fresh decision for stopped steps, and the
// report built from fabricated step outputs (report.json numbers, missing pieces, a well-formed,
// self-contained report.html).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import '../../src/cli/main.ts';
import { cliCatalog } from '../../src/cli/pipeline_command.ts';
import { parseRecipe, loadRecipe, type Plan } from '../../src/pipeline/recipe.ts';
import { runPipeline, readState, mergeState, writeState, stepHash, decideAction, partialDir, progressText, readProgress, type PipelineState } from '../../src/pipeline/runner.ts';
import { writePipelineReport } from '../../src/pipeline/report.ts';
import { barChart } from '../../src/report/svg_bar.ts';
import { openCheckpoint } from '../../src/io/checkpoint.ts';
import { scoredShapeOf } from '../../src/prune/plan.ts';
import { SCORES_FORMAT, SCORES_VERSION, saveScores } from '../../src/prune/scores.ts';
import { assertWellFormed } from '../xml_check.ts';
import { throwsWith, rng, tempDir } from '../helpers.ts';

const ROOT = path.join(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/kompresor.mjs');
const FIXTURE = path.join(ROOT, 'test/fixtures/llama_untied');
const tmp = tempDir('kompresor-pipeline-');
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const catalog = cliCatalog();

const recipe = (text: string, o: { runDir?: string; set?: string[] } = {}) => parseRecipe(text, 'r.yaml', catalog, { runDir: o.runDir ?? 'runs/t', set: o.set });
const head = 'name: t\nteacher: models/t\nsteps:\n';
const scoreStep = '  - name: score\n    command: score\n    args:\n      model_dir: ${teacher}\n      data: calib.txt\n';

// ---------------------------------------------------------------------------------------------
// validation: one line, file:line, step and key

test('recipe errors name the file, line, step and key, with the rule and a hint', () => {
  const cases: [string, string, string, string[]?][] = [
    ['an unknown command', `${head}  - name: prune\n    command: prunee\n`,
      /^r\.yaml:5 steps\.prune\.command: command must be a kompresor command; expected one of bench, data prepare, distill, .*, found "prunee"\. Hint: did you mean prune\?$/.source],
    ['an unknown step in a reference', `${head}${scoreStep}  - name: prune\n    command: prune\n    args:\n      model_dir: \${teacher}\n      scores: \${steps.scor.out}\n`,
      'r.yaml:13 steps.prune.args.scores: a step reference is ${steps.NAME.FIELD} with NAME an earlier step; expected NAME one of score, found "${steps.scor.out}". Hint: did you mean score?'],
    ['an unknown variable', `${head}  - name: i\n    command: inspect\n    args:\n      model_dir: \${teachr}/x\n`,
      'r.yaml:7 steps.i.args.model_dir: a reference names a variable, ${run_dir} or an earlier step\'s output; expected one of ${run_dir}, ${name}, ${teacher}, ${steps.<earlier step>.out|model|dir}, found "${teachr}". Hint: did you mean teacher?'],
    ['a reference to a later step', `${head}  - name: prune\n    command: prune\n    args:\n      model_dir: \${teacher}\n      scores: \${steps.score.out}\n${scoreStep}`,
      'r.yaml:8 steps.prune.args.scores: a step can only use the outputs of steps before it; found ${steps.score.out} (score is step 2, prune is step 1). Hint: move score before prune'],
    ['a missing mandatory flag', `${head}  - name: prune\n    command: prune\n    args:\n      model_dir: \${teacher}\n`,
      'r.yaml:7 steps.prune.args: kompresor prune needs --scores; found missing. Hint: add scores: VALUE under args'],
    ['a missing positional', `${head}  - name: prune\n    command: prune\n    args:\n      scores: s.json\n`,
      'r.yaml:7 steps.prune.args: kompresor prune needs MODEL_DIR; found missing. Hint: add model_dir: PATH under args'],
    ['a trainer without a budget', `${head}  - name: kd\n    command: distill\n    args:\n      teacher: \${teacher}\n      student: s\n      data: d\n`,
      'r.yaml:7 steps.kd.args: kompresor distill needs --steps or --tokens; found missing. Hint: add steps: VALUE under args'],
    ['an unknown flag', `${head}  - name: prune\n    command: prune\n    args:\n      model_dir: m\n      scores: s.json\n      targett: x\n`,
      'r.yaml:9 steps.prune.args.targett: kompresor prune has no --targett; expected one of model_dir, scores, target, params, depth, round-to, params-convention, no-report. Hint: did you mean target?'],
    ['the output flag', `${head}  - name: prune\n    command: prune\n    args:\n      model_dir: m\n      scores: s.json\n      out: x\n`,
      'r.yaml:9 steps.prune.args.out: --out is set by the pipeline; expected nothing (it is runs/t/steps/prune/model). Hint: refer to it as ${steps.prune.out}'],
    ['a list for a one-value flag', `${head}  - name: prune\n    command: prune\n    args:\n      model_dir: m\n      scores: [a, b]\n`,
      'r.yaml:8 steps.prune.args.scores: --scores takes one value; found a list of 2.'],
    ['a value for a switch', `${head}  - name: p\n    command: prune\n    args:\n      model_dir: m\n      scores: s\n      no-report: x\n`,
      'r.yaml:9 steps.p.args.no-report: --no-report is a switch; expected true (or false to leave it out), found "x".'],
    ['the model of a step that makes none', `${head}${scoreStep}  - name: i\n    command: inspect\n    args:\n      model_dir: \${steps.score.model}\n`,
      'r.yaml:12 steps.i.args.model_dir: step score (kompresor score) produces no model; found "${steps.score.model}". Hint: use ${steps.score.out}'],
    ['variables in a cycle', `name: t\nvars:\n  a: \${b}/x\n  b: \${a}\nsteps:\n  - name: i\n    command: inspect\n    args:\n      model_dir: \${a}\n`,
      'r.yaml:3 vars.a: variables must not refer to themselves; found ${a} -> ${b} -> ${a}.'],
    ['a duplicate step name', `${head}  - name: i\n    command: inspect\n    args:\n      model_dir: m\n  - name: i\n    command: inspect\n    args:\n      model_dir: m\n`,
      'r.yaml:8 steps.i.name: step names must be unique; found "i" again (first at step 1).'],
    ['an unknown top-level key', 'name: t\nteachr: x\nsteps: []\n',
      'r.yaml:2 teachr: unknown key; expected one of name, teacher, data, student, vars, steps, found "teachr". Hint: did you mean teacher?'],
    ['a flow mapping holding ${...}', 'name: t\nsteps:\n  - name: i\n    command: inspect\n    args: {model_dir: ${teacher}}\n',
      'r.yaml:5: the recipe must be valid YAML; found Unexpected flow-map-start at node end. Hint: quote values that start with ${...} inside [ ] or { } (flow style), or use block style'],
    ['a --set of an unknown variable', `${head}  - name: i\n    command: inspect\n    args:\n      model_dir: m\n`,
      '--set tacher: the recipe r.yaml must define the variable; expected one of teacher, found "tacher". Hint: did you mean teacher?', ['tacher=x']],
  ];
  for (const [what, text, message, set] of cases) {
    assert.throws(() => recipe(text, { set }), (e: Error) => {
      assert.ok(!e.message.includes('\n'), `${what}: one line`);
      if (message.startsWith('^')) assert.match(e.message, new RegExp(message), what);
      else assert.equal(e.message, message, what);
      return true;
    }, what);
  }
});

// ---------------------------------------------------------------------------------------------
// resolution

test('references resolve to variables, run_dir and earlier steps\' out/model/dir; --set overrides; argv ends with the output and --json', () => {
  const plan = recipe(`name: mini
teacher: models/teacher
data:
  - corpus/a.jsonl
  - corpus/b.jsonl
student: \${final}
vars:
  kd_steps: 20
  final: \${steps.kd.model}
steps:
  - name: score
    command: score
    args:
      model_dir: \${teacher}
      data: \${data}
      samples: 8
      no-report: true
  - name: prune
    command: prune
    args:
      model_dir: \${teacher}
      scores: \${steps.score.out}
      target: num_hidden_layers=3
      no-report: false
  - name: prep
    command: data prepare
    args:
      input: \${data}
      tokenizer: \${teacher}
  - name: kd
    command: distill
    args:
      teacher: \${teacher}
      student: \${steps.prune.model}
      data: \${steps.prep.out}
      steps: \${kd_steps}
      lr: 1e-4
  - name: note
    command: inspect
    args:
      model_dir: \${run_dir}/../elsewhere/\${name}
`, { runDir: 'runs/x', set: ['kd_steps=5'] });
  const by = (n: string) => plan.steps.find((s) => s.name === n)!;
  assert.deepEqual(plan.data, ['corpus/a.jsonl', 'corpus/b.jsonl']);
  assert.equal(plan.student, 'runs/x/steps/kd/run/final');
  assert.deepEqual(by('score').argv, ['score', 'models/teacher', '--data', 'corpus/a.jsonl', 'corpus/b.jsonl', '--samples', '8', '--no-report', '--out', 'runs/x/steps/score/scores.json', '--json']);
  assert.deepEqual(by('prune').argv, ['prune', 'models/teacher', '--scores', 'runs/x/steps/score/scores.json', '--target', 'num_hidden_layers=3', '--out', 'runs/x/steps/prune/model', '--json']);
  assert.deepEqual(by('prep').argv, ['data', 'prepare', '--input', 'corpus/a.jsonl', 'corpus/b.jsonl', '--tokenizer', 'models/teacher', '--out', 'runs/x/steps/prep/data', '--json']);
  assert.deepEqual(by('kd').argv, ['distill', '--teacher', 'models/teacher', '--student', 'runs/x/steps/prune/model', '--data', 'runs/x/steps/prep/data',
    '--steps', '5', '--lr', '0.0001', '--out', 'runs/x/steps/kd/run', '--json']);
  assert.deepEqual(by('note').argv, ['inspect', 'runs/x/../elsewhere/mini', '--json']);
  assert.deepEqual(plan.steps.map((s) => [s.name, s.deps, s.out, s.model, s.resumable]), [
    ['score', [], 'runs/x/steps/score/scores.json', null, false],
    ['prune', ['score'], 'runs/x/steps/prune/model', 'runs/x/steps/prune/model', false],
    ['prep', [], 'runs/x/steps/prep/data', null, false],
    ['kd', ['prune', 'prep'], 'runs/x/steps/kd/run', 'runs/x/steps/kd/run/final', true],
    ['note', [], null, null, false],
  ]);
  assert.equal(recipe('name: mini\nsteps:\n  - name: i\n    command: inspect\n    args:\n      model_dir: m\n', { runDir: undefined }).runDir, 'runs/t');
});

test('the recipes in recipes/ are valid against the CLI as it is', () => {
  const files = fs.readdirSync(path.join(ROOT, 'recipes')).filter((f) => /\.ya?ml$/.test(f));
  assert.ok(files.includes('bielik-minitron-mini.yaml'));
  for (const f of files) {
    const plan = loadRecipe(path.join(ROOT, 'recipes', f), catalog, { runDir: 'runs/check' });
    assert.ok(plan.steps.length > 0, f);
  }
  const bm = loadRecipe(path.join(ROOT, 'recipes/bielik-minitron-mini.yaml'), catalog, { runDir: 'runs/bm', set: ['teacher_dir=models/t'] });
  assert.deepEqual(bm.steps.map((s) => s.command), ['inspect', 'data prepare', 'score', 'prune', 'search', 'distill', 'distill', 'train', 'sft', 'dpo', 'grpo',
    'inspect', 'eval', 'eval', 'eval', 'eval', 'bench', 'bench', 'score', 'export']);
  // the export asks for two GGUF types (a list to the variadic --dtype) with the student's own calibration
  assert.ok(bm.steps.find((s) => s.name === 'export')!.argv.join(' ')
    .includes('--dtype q8_0 q4_k_m --calibration runs/bm/steps/score_student/scores.json'), bm.steps.find((s) => s.name === 'export')!.argv.join(' '));
  assert.ok(bm.steps.find((s) => s.name === 'prune')!.argv.join(' ').includes('--target num_hidden_layers=6,intermediate_size=800'));
  assert.equal(bm.teacher, 'models/t');
  assert.equal(bm.student, 'runs/bm/steps/grpo/run/final');
  assert.deepEqual(bm.steps.find((s) => s.name === 'dpo')!.argv.slice(0, 2), ['dpo', 'runs/bm/steps/sft/run/final']);
});

// ---------------------------------------------------------------------------------------------
// the runner, on real child processes

function syntheticScores(file: string): void {
  const cfg = openCheckpoint(FIXTURE).config, r = rng(3);
  const vec = (n: number) => Array.from({ length: n }, () => Math.round(r() * 1000) / 1000);
  saveScores(file, {
    format: SCORES_FORMAT, version: SCORES_VERSION, model: scoredShapeOf(cfg),
    calibration: { files: ['synthetic'], samples: 0, seq_len: 0, tokens: 0, mode: 'memory', seconds: 0 },
    hidden: vec(cfg.hiddenSize), heads: Array.from({ length: cfg.numLayers }, () => vec(cfg.numHeads)),
    mlp: Array.from({ length: cfg.numLayers }, () => vec(cfg.intermediateSize)), layers: vec(cfg.numLayers),
  });
}

const smallRecipe = (target: string) => `name: small
teacher: ${FIXTURE}
vars:
  scores: ${path.join(tmp, 'scores.json')}
steps:
  - name: teacher_params
    command: inspect
    args:
      model_dir: \${teacher}
  - name: prune
    command: prune
    args:
      model_dir: \${teacher}
      scores: \${scores}
      target: ${target}
  - name: student_params
    command: inspect
    args:
      model_dir: \${steps.prune.model}
`;

test('the runner skips finished steps, re-runs a step whose arguments changed and the steps reading it, and keeps a failure in <name>.partial/', async () => {
  syntheticScores(path.join(tmp, 'scores.json'));
  const runDir = path.join(tmp, 'run');
  const run = async (target: string, o: { only?: string; dryRun?: boolean } = {}) => {
    const lines: string[] = [];
    const s = await runPipeline(recipe(smallRecipe(target), { runDir }), { ...o, log: (l) => lines.push(l), live: false });
    return { s, lines, outcomes: s.steps.map((x) => x.outcome) };
  };

  const first = await run('intermediate_size=8');
  assert.equal(first.s.status, 'finished', first.lines.join('\n'));
  assert.deepEqual(first.outcomes, ['ran', 'ran', 'ran']);
  assert.match(first.lines.join('\n'), /^\[2\/3\] prune: running kompresor prune .* --out .*steps\/prune\.partial\/model --json$/m);
  assert.match(first.lines.join('\n'), /^\[2\/3\] prune: done in \d/m);
  const student = JSON.parse(fs.readFileSync(path.join(runDir, 'steps/student_params/result.json'), 'utf8'));
  assert.equal(student.config.intermediate_size, 8);
  assert.equal(student.model_dir, path.join(runDir, 'steps/prune/model'));
  const prune = JSON.parse(fs.readFileSync(path.join(runDir, 'steps/prune/result.json'), 'utf8'));
  assert.equal(prune.format, 'kompresor-prune-report');
  assert.ok(!fs.existsSync(path.join(runDir, 'steps/prune.partial')));
  const s1 = readState(runDir)!;
  assert.deepEqual(s1.steps.map((r) => r.status), ['finished', 'finished', 'finished']);
  assert.ok(s1.steps.every((r) => r.hash && r.run_id && r.sessions.length === 1 && r.sessions[0].exit === 0));

  const again = await run('intermediate_size=8');
  assert.deepEqual(again.outcomes, ['skipped', 'skipped', 'skipped']);
  assert.match(again.lines[0], /^\[1\/3\] teacher_params: skipped \(finished .* with the same inputs\)$/);
  assert.deepEqual(readState(runDir)!.steps.map((r) => r.run_id), s1.steps.map((r) => r.run_id));

  const dry = await run('intermediate_size=8', { only: 'student_params', dryRun: true });
  assert.deepEqual(dry.lines, [`[3/3] student_params: would run: kompresor inspect ${path.join(runDir, 'steps/prune/model')} --json`]);

  // an impossible target: prune fails, the student step does not run, the old output is gone
  const bad = await run('intermediate_size=99');
  assert.equal(bad.s.status, 'failed');
  assert.deepEqual(bad.outcomes, ['skipped', 'failed', 'not run']);
  assert.match(bad.s.error!, /^step prune failed after .* \(exit 1\): kompresor: --target intermediate_size.* \(log: .*steps\/prune\.partial\/log\.txt\)$/);
  const s2 = readState(runDir)!;
  // student_params read the old prune: outdated, so the report built now does not show its stale count
  assert.deepEqual(s2.steps.map((r) => r.status), ['finished', 'failed', 'outdated']);
  const stale = writePipelineReport(runDir).report;
  assert.equal(stale.student.params, null);
  assert.ok(stale.missing.some((m) => /student parameters: step student_params \(outdated\) has not finished/.test(m)), stale.missing.join('; '));
  assert.ok(!fs.existsSync(path.join(runDir, 'steps/prune')) && fs.existsSync(path.join(runDir, 'steps/prune.partial/log.txt')));

  const fixed = await run('intermediate_size=4');
  assert.deepEqual(fixed.outcomes, ['skipped', 'ran', 'ran'], fixed.lines.join('\n'));
  assert.equal(JSON.parse(fs.readFileSync(path.join(runDir, 'steps/student_params/result.json'), 'utf8')).config.intermediate_size, 4);
  const s3 = readState(runDir)!;
  assert.equal(s3.steps[0].run_id, s1.steps[0].run_id);
  assert.notEqual(s3.steps[2].run_id, s1.steps[2].run_id);
  assert.ok(!fs.existsSync(path.join(runDir, 'steps/prune.partial')));
});

test('a stopped trainer resumes from its checkpoint with --resume; other stopped steps and changed trainers start again in a fresh .partial', () => {
  const runDir = path.join(tmp, 'decide');
  const plan = recipe(`name: d
teacher: models/t
steps:
  - name: kd
    command: distill
    args:
      teacher: \${teacher}
      student: models/s
      data: data/d
      steps: 10
  - name: score
    command: score
    args:
      model_dir: \${teacher}
      data: calib.txt
`, { runDir });
  const state = mergeState(plan, null);
  const [kd, score] = plan.steps;
  const hash = stepHash(kd, state);
  Object.assign(state.steps[0], { status: 'interrupted', hash });
  assert.deepEqual(decideAction(kd, state.steps[0], hash, false), { kind: 'fresh', argv: ['distill', '--teacher', 'models/t', '--student', 'models/s', '--data', 'data/d', '--steps', '10', '--out', `${runDir}/steps/kd.partial/run`, '--json'] });
  fs.mkdirSync(path.join(partialDir(kd), 'run/checkpoint-4'), { recursive: true });
  fs.mkdirSync(path.join(partialDir(kd), 'run/checkpoint-7'), { recursive: true }); // torn: no state.json
  fs.writeFileSync(path.join(partialDir(kd), 'run/checkpoint-4/state.json'), '{}');
  assert.deepEqual(decideAction(kd, state.steps[0], hash, false), { kind: 'resume', argv: ['distill', '--resume', `${runDir}/steps/kd.partial/run`, '--json'], checkpoint: 'checkpoint-4' });
  assert.equal(decideAction(kd, state.steps[0], 'another hash', false).kind, 'fresh');
  assert.equal(decideAction(kd, state.steps[0], hash, true).kind, 'fresh');
  const h2 = stepHash(score, state);
  Object.assign(state.steps[1], { status: 'running', hash: h2 });
  assert.deepEqual(decideAction(score, state.steps[1], h2, false), { kind: 'fresh', argv: ['score', 'models/t', '--data', 'calib.txt', '--out', `${runDir}/steps/score.partial/scores.json`, '--json'] });
  // a finished step is skipped only while its folder is there
  Object.assign(state.steps[1], { status: 'finished' });
  assert.equal(decideAction(score, state.steps[1], h2, false).kind, 'fresh');
  fs.mkdirSync(score.dir, { recursive: true });
  assert.equal(decideAction(score, state.steps[1], h2, false).kind, 'skip');
  // a step's hash follows the runs of the steps it reads
  const p2 = recipe(`name: d\nteacher: m\nsteps:\n${scoreStep}  - name: prune\n    command: prune\n    args:\n      model_dir: m\n      scores: \${steps.score.out}\n`, { runDir });
  const st = mergeState(p2, null);
  const before = stepHash(p2.steps[1], st);
  st.steps[0].run_id = 'abc';
  assert.notEqual(stepHash(p2.steps[1], st), before);
});

test('each child gets KOMPRESOR_PROGRESS_FILE in its .partial/; off a terminal the runner logs its progress, then deletes the file', async () => {
  const scores = path.join(tmp, 'progress-scores.json');
  syntheticScores(scores);
  const runDir = path.join(tmp, 'progress'), seen = path.join(tmp, 'progress-env.txt'), hold = path.join(tmp, 'hold.mjs');
  // loaded into the child before the CLI: records the variable, and keeps the process alive for
  // 1.5 s after the command is done, so the runner reads the final state more than once
  fs.writeFileSync(hold, `import fs from 'node:fs';
fs.writeFileSync(${JSON.stringify(seen)}, process.env.KOMPRESOR_PROGRESS_FILE ?? 'unset');
let held = false;
process.on('beforeExit', () => { if (!held) { held = true; setTimeout(() => {}, 1500); } });
`);
  const plan = recipe(`name: p\nteacher: ${FIXTURE}\nsteps:\n  - name: prune\n    command: prune\n    args:\n      model_dir: \${teacher}\n      scores: ${scores}\n      target: intermediate_size=8\n`, { runDir });
  const lines: string[] = [];
  const s = await runPipeline(plan, { log: (l) => lines.push(l), live: false, progressEveryMs: 100, env: { NODE_OPTIONS: `--import=${pathToFileURL(hold).href}` } });
  assert.equal(s.status, 'finished', lines.join('\n'));
  const file = path.join(runDir, 'steps/prune.partial/progress.json');
  assert.equal(fs.readFileSync(seen, 'utf8'), file);
  // prune --json draws no bar, but its (hidden) bar keeps the file: the final state, every 100 ms
  const progress = lines.filter((l) => / tensors \| /.test(l));
  assert.ok(progress.length >= 2, lines.join('\n'));
  assert.match(progress.at(-1)!, /^\[1\/1\] prune: [\d.]+s \| (\d+)\/\1 tensors \| [\d.]+ tensors\/s \| ETA 0\.0s$/);
  assert.ok(!fs.existsSync(file));
  assert.deepEqual(fs.readdirSync(path.join(runDir, 'steps/prune')).sort(), ['log.txt', 'model', 'result.json']);

  // the line's progress part, and the file's states the runner ignores
  assert.equal(progressText({ label: 'distill', done: 45, total: 98, unit: 'steps', rate_per_s: 0.9123, eta_s: 58.1, extra: 'loss 0.0229' }, 'distill'),
    '45/98 steps | 0.91 steps/s | ETA 58s | loss 0.0229');
  assert.equal(progressText({ label: 'eval teacher', done: 3, total: 10, unit: 'requests', rate_per_s: null, eta_s: null, extra: '' }, 'eval'),
    'eval teacher 3/10 requests | - requests/s | ETA -');
  const f = path.join(tmp, 'p.json');
  assert.equal(readProgress(f), null);
  fs.writeFileSync(f, '{"label":"x","done":');
  assert.equal(readProgress(f), null);
});

// ---------------------------------------------------------------------------------------------
// the report, from fabricated step outputs

const reportRecipe = `name: rep
teacher: models/teacher
data:
  - corpus/train.jsonl
student: \${steps.grpo.model}
steps:
  - name: teacher_params
    command: inspect
    args: {model_dir: "\${teacher}"}
  - name: score
    command: score
    args: {model_dir: "\${teacher}", data: "\${data}"}
  - name: prune
    command: prune
    args: {model_dir: "\${teacher}", scores: "\${steps.score.out}", target: num_hidden_layers=3}
  - name: prune_width
    command: prune
    args: {model_dir: "\${teacher}", scores: "\${steps.score.out}", target: hidden_size=24}
  - name: prep
    command: data prepare
    args: {input: "\${data}", tokenizer: "\${teacher}"}
  - name: distill
    command: distill
    args: {teacher: "\${teacher}", student: "\${steps.prune.model}", data: "\${steps.prep.out}", steps: 4}
  - name: scratch
    command: train
    args: {init: "\${steps.prune.model}/config.json", data: "\${steps.prep.out}", steps: 4}
  - name: grpo
    command: grpo
    args: {model_dir: "\${steps.distill.model}", data: g.jsonl, reward: numeric, steps: 2}
  - name: student_params
    command: inspect
    args: {model_dir: "\${steps.grpo.model}"}
  - name: eval
    command: eval
    args: {model_dir: "\${steps.grpo.model}", tasks: evals/polish, teacher: "\${teacher}"}
  - name: bench
    command: bench
    args: {model_dir: "\${steps.grpo.model}", vs: "\${teacher}"}
  - name: bench_llama
    command: bench
    args: {model_dir: "\${steps.grpo.model}", vs: "\${teacher}", engine: llama.cpp}
  - name: export
    command: export
    args: {model_dir: "\${steps.grpo.model}"}
  - name: eval_distill
    command: eval
    args: {model_dir: "\${steps.distill.model}", tasks: evals/polish, teacher: "\${teacher}"}
`;

const write = (file: string, text: string) => { fs.mkdirSync(path.dirname(file), { recursive: true }); fs.writeFileSync(file, text); };
const jsonl = (lines: object[]) => lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
const svg = (title: string) => barChart({ title, xLabel: 'layer', yLabel: 'BI', bars: [0.1, 0.3, 0.2, 0.05].map((v, i) => ({ label: String(i), value: v, highlight: i === 3 })) });

function pruneReport(after: { layers: number; hidden: number }, params: object): object {
  const axis = (b: number, a: number) => ({ before: b, after: a, kept: [], dropped: [] });
  return { format: 'kompresor-prune-report', version: 1, axes: { num_hidden_layers: axis(4, after.layers), hidden_size: axis(32, after.hidden),
    num_attention_heads: { ...axis(4, 4), num_key_value_heads: 2, head_dim: 8 }, intermediate_size: axis(64, 64) },
    params: { before: { embeddings: 100, attention: 400, mlp: 800, norms: 10, lmHead: 0, total: 1310 }, after: params } };
}

function trainerLines(n: number, loss0: number, extra: (step: number) => object = () => ({})): object[] {
  // as the trainer writes them: validation at step 0 and at the end, "step" counts the steps done
  const out: object[] = [{ split: 'validation', step: 0, tokens: 0, loss: loss0 + 0.5, ...extra(0) }];
  for (let s = 1; s <= n; s++) out.push({ step: s, tokens: s * 64, loss: loss0 - 0.2 * s, lr: 1e-4, grad_norm: 1, tokens_per_s: 1000, seconds: 0.1, ...extra(s) });
  out.push({ split: 'validation', step: n, tokens: n * 64, loss: loss0 - 0.1 * n, ...extra(n) });
  return out;
}

/** A run folder as the runner leaves it, with every step finished except those in `pending`. */
function fabricatedRun(runDir: string, pending: string[]): Plan {
  const plan = recipe(reportRecipe, { runDir });
  const state: PipelineState = mergeState(plan, null);
  for (const r of state.steps) {
    if (pending.includes(r.name)) continue;
    Object.assign(r, { status: 'finished', hash: 'h', run_id: `id-${r.name}`, seconds: 1.5, finished_at: '2026-01-01T00:00:00.000Z',
      sessions: [{ started: '2026-01-01T00:00:00.000Z', seconds: 1.5, exit: 0, signal: null, resumed: false }] });
    fs.mkdirSync(r.dir, { recursive: true });
  }
  const result = (name: string, v: object) => { if (!pending.includes(name)) write(path.join(runDir, 'steps', name, 'result.json'), JSON.stringify(v)); };
  result('teacher_params', { model_dir: 'models/teacher', params: { embeddings: 100, attention: 400, mlp: 800, norms: 10, lm_head: 0 }, total_params: 1310 });
  result('student_params', { model_dir: plan.student, params: { embeddings: 100, attention: 300, mlp: 480, norms: 8, lm_head: 0 }, total_params: 888 });
  write(path.join(runDir, 'steps/score/scores.report/layers.svg'), svg('score layers'));
  write(path.join(runDir, 'steps/score/scores.report/heads.svg'), svg('score heads'));
  write(path.join(runDir, 'steps/prune/model/prune_report.json'), JSON.stringify(pruneReport({ layers: 3, hidden: 32 }, { embeddings: 100, attention: 300, mlp: 600, norms: 8, lmHead: 0, total: 1008 })));
  write(path.join(runDir, 'steps/prune/model/report/layers.svg'), svg('pruned layers'));
  write(path.join(runDir, 'steps/prune_width/model/prune_report.json'), JSON.stringify(pruneReport({ layers: 4, hidden: 24 }, { embeddings: 75, attention: 300, mlp: 600, norms: 8, lmHead: 0, total: 983 })));
  write(path.join(runDir, 'steps/distill/run/metrics.jsonl'), jsonl(trainerLines(4, 3, (step) => ({ kl: 1 / (step + 1) }))));
  write(path.join(runDir, 'steps/scratch/run/metrics.jsonl'), jsonl(trainerLines(4, 5)));
  write(path.join(runDir, 'steps/grpo/run/metrics.jsonl'), jsonl(trainerLines(2, 0.1, (s) => ({ reward: 0.2 + 0.1 * s }))));
  result('eval', {
    results: { pl_choice: { acc: 0.45, acc_stderr: 0.02 }, pl_ppl: { word_perplexity: 30 } },
    teacher_results: { pl_choice: { acc: 0.5 }, pl_ppl: { word_perplexity: 25 } },
    primary_metric: { pl_choice: 'acc', pl_ppl: 'word_perplexity' },
    higher_is_better: { pl_choice: { acc: true }, pl_ppl: { word_perplexity: false } },
    recovery: { pl_choice: 90, pl_ppl: 25 / 30 * 100, average: (90 + 25 / 30 * 100) / 2 },
  });
  result('eval_distill', {
    results: { pl_choice: { acc: 0.4 }, pl_ppl: { word_perplexity: 32 } }, teacher_results: { pl_choice: { acc: 0.5 }, pl_ppl: { word_perplexity: 25 } },
    primary_metric: { pl_choice: 'acc', pl_ppl: 'word_perplexity' }, recovery: { pl_choice: 80, pl_ppl: 78.125, average: 79.0625 },
  });
  const figures = (decode: number) => ({ prefill_tokens_per_s: 2 * decode, time_to_first_token_s: 0.01, decode_tokens_per_s: decode, batch_prefill_tokens_per_s: 3 * decode,
    batch_decode_tokens_per_s: 4 * decode, peak_rss_bytes: 1e8, load_seconds: 0.1, backend: 'native' });
  result('bench', { engine: 'kompresor', models: [{ path: plan.student, figures: figures(150) }, { path: 'models/teacher', figures: figures(100) }],
    ratios: { prefill_speedup: 1.4, decode_speedup: 1.5, batch_prefill_speedup: 1.3, batch_decode_speedup: 1.45, time_to_first_token_speedup: 1.2, params_ratio: 0.68, peak_rss_ratio: 0.7 } });
  writeState(runDir, state);
  return plan;
}

test('parameters in the seed\'s convention too: total_no_lm_head per model, and both reductions in the headline when a head is untied', () => {
  const runDir = path.join(tmp, 'rep-untied');
  fabricatedRun(runDir, ['bench_llama', 'export']);
  const tied = writePipelineReport(runDir);
  assert.equal(tied.report.params.without_lm_head.reduction_percent, tied.report.params.reduction_percent, 'tied: the same figure');
  assert.ok(!fs.readFileSync(tied.md, 'utf8').includes('as the seed counts'), 'tied: said once');
  const result = (name: string, v: object) => write(path.join(runDir, 'steps', name, 'result.json'), JSON.stringify(v));
  result('teacher_params', { model_dir: 'models/teacher', params: { embeddings: 100, attention: 400, mlp: 800, norms: 10, lm_head: 100 }, total_params: 1410 });
  result('student_params', { model_dir: path.join(runDir, 'steps/grpo/run/final'), params: { embeddings: 100, attention: 300, mlp: 480, norms: 8, lm_head: 100 }, total_params: 988 });
  const { report: r, md } = writePipelineReport(runDir);
  assert.deepEqual([r.teacher.components!.total_no_lm_head, r.student.components!.total_no_lm_head], [1310, 888]);
  assert.ok(Math.abs(r.params.reduction_percent! - 100 * (1 - 988 / 1410)) < 1e-9);
  assert.ok(Math.abs(r.params.without_lm_head.reduction_percent! - 100 * (1 - 888 / 1310)) < 1e-9);
  const text = fs.readFileSync(md, 'utf8');
  assert.ok(text.includes('| How much smaller? | 1,410 → 988 parameters (−29.9%); without the lm_head, as the seed counts: 1,310 → 888 (−32.2%) |'), text.slice(0, 800));
  assert.match(text, /\n\| total_no_lm_head \| 1,310 \| 1,008 \(76\.9%\) \| 983 \(75\.0%\) \| 888 \(67\.8%\) \|\n/);
});

test('report.json reads teacher/student params, recovery, speed-up, curves and importance charts from the steps, and marks the rest missing', () => {
  const runDir = path.join(tmp, 'rep');
  fabricatedRun(runDir, ['bench_llama', 'export']);
  const { report: r, html, md, json } = writePipelineReport(runDir);
  assert.deepEqual(JSON.parse(fs.readFileSync(json, 'utf8')), JSON.parse(JSON.stringify(r)));
  assert.equal(r.teacher.params, 1310);
  assert.equal(r.teacher.step, 'teacher_params');
  assert.equal(r.student.params, 888);
  assert.equal(r.student.path, path.join(runDir, 'steps/grpo/run/final'));
  assert.ok(Math.abs(r.params.reduction_percent! - 100 * (1 - 888 / 1310)) < 1e-9);
  assert.deepEqual(r.params.models.map((m) => [m.label, m.components.total, m.components.mlp]),
    [['teacher', 1310, 800], ['prune (pruned)', 1008, 600], ['prune_width (pruned)', 983, 600], ['student', 888, 480]]);
  assert.ok(Math.abs(r.recovery.average! - (90 + 250 / 3) / 2) < 1e-9);
  assert.equal(r.recovery.step, 'eval');
  assert.deepEqual(r.recovery.tasks.map((t) => [t.task, t.metric, t.higher_is_better, t.student, t.teacher]),
    [['pl_choice', 'acc', true, 0.45, 0.5], ['pl_ppl', 'word_perplexity', false, 30, 25]]);
  assert.equal(r.speedup.decode, 1.5);
  assert.equal(r.speedup.prefill, 1.4);
  assert.equal(r.speedup.llama_cpp, null);
  assert.deepEqual(r.training.map((t) => [t.step, t.command, t.steps, t.tokens, t.validation_first, t.validation_last]),
    [['distill', 'distill', 4, 256, 3.5, 2.6], ['scratch', 'train', 4, 256, 5.5, 4.6], ['grpo', 'grpo', 2, 128, 0.6, -0.1]]);
  assert.equal(r.training[0].start, path.join(runDir, 'steps/prune/model'));
  assert.equal(r.training[1].start, `random init from ${path.join(runDir, 'steps/prune/model')}/config.json`);
  assert.deepEqual(r.training.map((t) => t.start_label), ['prune model', 'random init (prune model config)', 'distill model']);
  assert.deepEqual([r.training[2].train_reward_first, r.training[2].train_reward_last, r.training[2].reward_first, r.training[2].reward_last], [0.30000000000000004, 0.4, 0.2, 0.4]);
  assert.deepEqual(r.speedup.runs.map((b) => [b.step, b.engine, b.model_label, b.reference_label, b.decode]), [['bench', 'kompresor', 'student', 'teacher', 1.5]]);
  assert.deepEqual([r.training[0].loss_first, r.training[0].loss_last], [2.8, 2.2]);
  assert.deepEqual(r.figures.map((f) => f.file), ['report_figures/distill_kl.svg', 'report_figures/scratch_loss.svg', 'report_figures/grpo_loss.svg',
    'report_figures/grpo_reward.svg', 'report_figures/recovery_runs.svg']);
  for (const f of r.figures) assertWellFormed(fs.readFileSync(path.join(runDir, f.file), 'utf8'));
  assert.deepEqual(r.importance, [
    { step: 'score', command: 'score', figures: ['steps/score/scores.report/layers.svg', 'steps/score/scores.report/heads.svg'] },
    { step: 'prune', command: 'prune', figures: ['steps/prune/model/report/layers.svg'] },
  ]);
  assert.deepEqual(r.missing, ['decode speed-up (llama.cpp): step bench_llama (pending) has not finished']);
  assert.equal(r.steps.length, 14);
  // the Minitron comparisons: each recovery run with the shape it trains, its final CE and its eval
  assert.deepEqual(r.comparisons.map((c) => [c.step, c.command, c.sizes?.num_hidden_layers, c.sizes?.hidden_size, c.params, c.tokens, c.validation_loss, c.eval_step, c.recovery_average]),
    [['distill', 'distill', 3, 32, 1008, 256, 2.6, 'eval_distill', 79.0625], ['scratch', 'train', 3, 32, 1008, 256, 4.6, null, null]]);
  assert.equal(r.recovery.step, 'eval', 'the headline recovery stays the student\'s');
  assert.match(r.steps[2].command_line, /^kompresor prune models\/teacher --scores .*\/steps\/score\/scores\.json --target num_hidden_layers=3 --out .*\/steps\/prune\/model --json$/);

  const page = fs.readFileSync(html, 'utf8');
  const els = assertWellFormed(page);
  assert.equal(els.filter((e) => e.name === 'svg').length, 5 + 3);
  const ids = els.map((e) => e.attrs.id).filter((x) => x !== undefined);
  assert.equal(new Set(ids).size, ids.length, 'ids are unique across the inline SVGs');
  for (const e of els) for (const k of ['href', 'src']) assert.ok(!/^\s*(https?:)?\/\//i.test(e.attrs[k] ?? ''), `<${e.name} ${k}> is external`);
  assert.ok(!els.some((e) => ['script', 'link', 'img', 'iframe'].includes(e.name)));
  assert.ok(!/url\(\s*['"]?https?:|@import/i.test(page));
  assert.match(page, /<h2>Minitron comparisons<\/h2>/);
  assert.match(page, /<td>finished<\/td><td>1\.5\u00a0s<\/td>/, 'a step\'s time does not wrap between number and unit');
  assert.match(page, /<td>distill<\/td><td>distill<\/td><td>prune model<\/td><td>3 \/ 32 \/ 4 \/ 64<\/td><td>1,008<\/td><td>256<\/td><td>2\.600<\/td><td>79\.1% \(eval_distill\)<\/td>/);
  assert.match(page, /<td>How much smaller\?<\/td><td>1,310 → 888 parameters \(−32\.2%\)<\/td>/);
  assert.match(page, /<td>How much faster\?<\/td><td>1\.50× decode on the engine; llama\.cpp: missing<\/td>/);
  assert.match(page, /<p class="missing">missing: decode speed-up \(llama\.cpp\): step bench_llama \(pending\) has not finished<\/p>/);
  const text = fs.readFileSync(md, 'utf8');
  assert.match(text, /^\| How much quality is kept\? \| 86\.7% of the teacher's average score \(2 tasks, step eval\) \|$/m);
  assert.match(text, /^!\[Validation loss of the distillation and training runs \(next-token CE\)\]\(report_figures\/recovery_runs\.svg\)$/m);
});

test('a step that has not finished is missing from the report, never estimated', () => {
  const runDir = path.join(tmp, 'rep-missing');
  // eval_distill has finished, but it evaluates another model: the headline never falls back to it
  fabricatedRun(runDir, ['student_params', 'eval', 'bench', 'bench_llama', 'grpo', 'export']);
  const { report: r, html } = writePipelineReport(runDir);
  assert.equal(r.student.params, null);
  assert.equal(r.params.reduction_percent, null);
  assert.equal(r.recovery.average, null);
  assert.equal(r.speedup.decode, null);
  assert.deepEqual(r.training.map((t) => t.step), ['distill', 'scratch']);
  assert.deepEqual(r.missing, [
    `student parameters: step student_params (pending) has not finished`,
    'recovery: step eval (pending) has not finished',
    'decode speed-up (engine): step bench (pending) has not finished',
    'decode speed-up (llama.cpp): step bench_llama (pending) has not finished',
  ]);
  const page = fs.readFileSync(html, 'utf8');
  assertWellFormed(page);
  assert.match(page, /<td>How much quality is kept\?<\/td><td>missing<\/td>/);
  assert.match(page, /<p class="missing">missing: recovery: step eval \(pending\) has not finished<\/p>/);
  assert.deepEqual(r.recovery.evals.map((e) => [e.step, e.average]), [['eval_distill', 79.0625]]);
});

// ---------------------------------------------------------------------------------------------
// the command

test('kompresor pipeline refuses a bad recipe with one line and exit 1', async () => {
  const file = path.join(tmp, 'bad.yaml');
  fs.writeFileSync(file, `${head}  - name: prune\n    command: prune\n    args:\n      model_dir: m\n      scores: \${steps.score.out}\n`);
  const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    execFile(process.execPath, [BIN, 'pipeline', file], { cwd: ROOT, env, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (err as unknown as { code: number }).code : 0, stdout, stderr }));
  });
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, `kompresor: ${file}:8 steps.prune.args.scores: a step reference is \${steps.NAME.FIELD} with NAME an earlier step; expected NAME one of (no earlier step), found "\${steps.score.out}".\n`);
  throwsWith(() => recipe(`${head}  - name: i\n    command: inspect\n`), 'config_invalid', /^r\.yaml:4 steps\.i\.args: kompresor inspect needs MODEL_DIR/);
});

test('a value with a NUL character is refused with one line naming the key (it used to crash spawn() with a stack, found by scripts/fuzz.ts)', () => {
  throwsWith(() => recipe(`${head}  - name: i\n    command: inspect\n    args:\n      model_dir: "m\\0x"\n`), 'config_invalid',
    /^r\.yaml:\d+ steps\.i\.args\.model_dir: model_dir must not hold a NUL character \(no command-line argument can\); found "m\\u0000x"/);
  throwsWith(() => recipe(`${head}  - name: e\n    command: eval\n    args:\n      model_dir: m\n      tasks: [a, "b\\0"]\n`), 'config_invalid', /--tasks must not hold a NUL/);
});
