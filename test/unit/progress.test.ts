// src/cli/progress.ts: the progress file a bar keeps under KOMPRESOR_PROGRESS_FILE (its values,
// rate and ETA, written at the start, at most once a second by an injected clock, and at stop;
// atomically, no temp file left), alongside the plain lines; a hidden bar (a command's --json)
// writes the file and nothing on stderr or stdout, and without the file does nothing at all.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { progressBar, PROGRESS_FILE_ENV, type ProgressState } from '../../src/cli/progress.ts';
import { trainingProgress } from '../../src/cli/trainer_flags.ts';
import type { TrainOptions } from '../../src/train/options.ts';
import { tempDir } from '../helpers.ts';

const tmp = tempDir('kompresor-progress-');
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const read = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')) as ProgressState;

/** Runs f with KOMPRESOR_PROGRESS_FILE set to `file` (or unset) and stdout/stderr writes captured. */
function withEnv<T>(file: string | undefined, f: () => T): { value: T; output: string } {
  const saved = process.env[PROGRESS_FILE_ENV];
  const writes = [process.stdout.write, process.stderr.write];
  let output = '';
  const capture = ((chunk: string | Uint8Array) => { output += String(chunk); return true; }) as typeof process.stdout.write;
  if (file === undefined) delete process.env[PROGRESS_FILE_ENV]; else process.env[PROGRESS_FILE_ENV] = file;
  process.stdout.write = capture; process.stderr.write = capture;
  try {
    return { value: f(), output };
  } finally {
    [process.stdout.write, process.stderr.write] = writes;
    if (saved === undefined) delete process.env[PROGRESS_FILE_ENV]; else process.env[PROGRESS_FILE_ENV] = saved;
  }
}

test('under KOMPRESOR_PROGRESS_FILE a bar writes its state at the start, at most once a second, and at stop', () => {
  const dir = path.join(tmp, 'plain'), file = path.join(dir, 'progress.json');
  fs.mkdirSync(dir);
  let now = 0;
  const lines: string[] = [];
  withEnv(file, () => {
    const bar = progressBar('distill', 100, 'steps', 'loss {loss} | lr {lr}', { start: 10, plain: true, plainEveryMs: 5000, write: (l) => lines.push(l), now: () => now });
    assert.deepEqual(read(file), { label: 'distill', done: 10, total: 100, unit: 'steps', rate_per_s: null, eta_s: null, extra: 'loss - | lr -' });
    now = 500; bar.update(15, { loss: '3.000' });
    assert.equal(read(file).done, 10, 'not rewritten within a second');
    now = 1000; bar.update(20, { loss: '2.913' });
    // 10 steps of this session in 1 s; 80 left
    assert.deepEqual(read(file), { label: 'distill', done: 20, total: 100, unit: 'steps', rate_per_s: 10, eta_s: 8, extra: 'loss 2.913 | lr -' });
    now = 1999; bar.update(30, { lr: '3.00e-4' });
    assert.equal(read(file).done, 20, 'a second after the last write, not after the first');
    now = 2000; bar.update(40);
    assert.deepEqual([read(file).done, read(file).rate_per_s, read(file).eta_s], [40, 15, 4]);
    now = 2500; bar.update(46, { loss: '2.500' });
    assert.equal(read(file).done, 40);
    bar.stop();
  });
  assert.deepEqual(read(file), { label: 'distill', done: 46, total: 100, unit: 'steps', rate_per_s: 14.4, eta_s: 3.75, extra: 'loss 2.500 | lr 3.00e-4' });
  assert.deepEqual(fs.readdirSync(dir), ['progress.json'], 'written atomically: no temp file left');
  // the plain lines are unchanged by the file
  assert.deepEqual(lines, ['distill 46/100 steps | 14.40 steps/s | ETA 3.8s | loss 2.500 | lr 3.00e-4']);
});

test('a hidden bar (--json) writes only the progress file; without the variable it does nothing', () => {
  const file = path.join(tmp, 'hidden.json');
  const lines: string[] = [];
  const run = (env: string | undefined, o: { file?: string | null } = {}) => withEnv(env, () => {
    const bar = progressBar('score', 8, 'rows', '', { hidden: true, plain: true, plainEveryMs: 0, write: (l) => lines.push(l), ...o });
    bar.update(4); bar.update(8); bar.stop();
  }).output;
  assert.equal(run(file), '', 'nothing on stdout or stderr');
  assert.equal(lines.length, 0);
  const s = read(file);
  assert.deepEqual([s.label, s.done, s.total, s.unit, s.eta_s, s.extra], ['score', 8, 8, 'rows', 0, '']);
  assert.ok(s.rate_per_s !== null && s.rate_per_s > 0, `a rate: ${s.rate_per_s}`);
  fs.rmSync(file);
  assert.equal(run(undefined), '');
  assert.equal(run(file, { file: null }), '', 'file: null overrides the variable');
  assert.ok(!fs.existsSync(file));
  assert.equal(lines.length, 0);
  // not hidden: the plain lines and the file
  withEnv(file, () => { const bar = progressBar('score', 8, 'rows', '', { plain: true, plainEveryMs: 0, write: (l) => lines.push(l) }); bar.update(8); bar.stop(); });
  assert.equal(lines.length, 1);
  assert.match(lines[0], /^score 8\/8 rows \| [\d.]+ rows\/s \| ETA 0\.0s$/);
  assert.equal(read(file).done, 8);
});

test('a trainer under --json keeps the progress file with its loss, rate and ETA, and prints nothing', () => {
  const file = path.join(tmp, 'trainer.json');
  const { output } = withEnv(file, () => {
    const p = trainingProgress('distill', { steps: 98 } as TrainOptions, 40, true);
    p.onStep({ step: 45, tokens_per_s: 812.4, loss: 0.022913, lr: 3e-4 });
    p.stop();
  });
  assert.equal(output, '');
  const s = read(file);
  assert.deepEqual({ ...s, rate_per_s: null, eta_s: null },
    { label: 'distill', done: 45, total: 98, unit: 'steps', rate_per_s: null, eta_s: null, extra: '812 tok/s | loss 0.0229 | lr 3.00e-4' });
  assert.ok(s.rate_per_s! > 0 && Math.abs(s.eta_s! - 53 / s.rate_per_s!) <= 1e-3 * s.eta_s!, JSON.stringify(s));
  // without the variable, --json still means no bar at all
  const quiet = withEnv(undefined, () => { const p = trainingProgress('distill', { steps: 98 } as TrainOptions, 0, true); p.onStep({ step: 1, tokens_per_s: 1, loss: 1, lr: 1 }); p.stop(); });
  assert.equal(quiet.output, '');
});
