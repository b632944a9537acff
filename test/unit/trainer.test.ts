// The shared training loop on the tiny fixture model (llama_tied_gqa) and a synthetic corpus:
// gradient accumulation against one larger batch, the cosine schedule, bitwise resume after a
// crash, a stop request, SIGINT and kill -9 of a real child process, NaN stops that keep the last
// good checkpoint, and crashes in the middle of writing a checkpoint.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { train, accumulateGradients } from '../../src/train/trainer.ts';
import { nextTokenCE, type Objective } from '../../src/train/objective.ts';
import { cosineLr } from '../../src/train/optimizer.ts';
import { readMetrics, type MetricsLine } from '../../src/train/metrics.ts';
import { listCheckpoints, latestCheckpoint, readTrainState, LATEST_FILE } from '../../src/train/run_checkpoint.ts';
import { MemorySource } from '../../src/data/memory_source.ts';
import { loadModel } from '../../src/model/load.ts';
import { Rng } from '../../src/model/sampling.ts';
import { readSafetensorsHeader, readTensorF32 } from '../../src/io/safetensors.ts';
import { KompresorError } from '../../src/errors.ts';
import { tinyRun, tinyOptions, syntheticDocs, TINY, CHILD_OPTIONS } from '../train_helpers.ts';
import { relErr, tempDir } from '../helpers.ts';

const CHILD = path.join(import.meta.dirname, 'trainer_child.ts');
const tmp = () => tempDir('kompresor-trainer-');

/** What must match between two runs: every line's kind, step and numbers (not timings). */
function curve(runDir: string): string[] {
  return readMetrics(path.join(runDir, 'metrics.jsonl')).map((l: MetricsLine) =>
    JSON.stringify([l.split ?? 'train', l.step, l.tokens, l.loss, l.lr, l.grad_norm]));
}

function finalWeights(runDir: string): Float32Array {
  const h = readSafetensorsHeader(path.join(runDir, 'final/model.safetensors'));
  return Float32Array.from([...h.tensors.values()].flatMap((info) => [...readTensorF32(h, info)]));
}

/** The uninterrupted reference run for the given options, computed once per option set. */
const references = new Map<string, Promise<string>>();
function reference(opts: Parameters<typeof tinyOptions>[0] = {}): Promise<string> {
  const key = JSON.stringify(opts);
  if (!references.has(key)) {
    references.set(key, (async () => {
      const dir = tmp();
      await train(await tinyRun(dir, {}, opts));
      return dir;
    })());
  }
  return references.get(key)!;
}

function assertSameRun(dir: string, ref: string): void {
  assert.deepEqual(curve(dir), curve(ref), 'per-step losses, lr and grad norms must be bitwise equal');
  assert.deepEqual(finalWeights(dir), finalWeights(ref), 'final weights must be bitwise equal');
}

// -----------------------------------------------------------------------------------------------

describe('gradient accumulation', () => {
  // one document of exactly T tokens per row: every micro-batch has the same number of targets,
  // so the mean of micro-batch means is the mean over the double batch
  const T = 16;
  const docs = syntheticDocs(40, 3).map((d, i) => Array.from({ length: T }, (_, t) => (d[t % d.length] + i + t) % 64));
  const source = () => MemorySource.fromDocuments(docs, { seed: 0, shuffle: false });

  test('2 micro-batches of 2 rows give the loss and gradient of one batch of 4 rows', async () => {
    const { model } = await loadModel(TINY);
    const ctx = { step: 1, rng: new Rng(0) };
    const one = accumulateGradients(model, source(), nextTokenCE, { microBatch: 4, seqLen: T, gradAccum: 1 }, ctx);
    const g1 = model.grads!.flat();
    const two = accumulateGradients(model, source(), nextTokenCE, { microBatch: 2, seqLen: T, gradAccum: 2 }, ctx);
    assert.ok(Math.abs(one.loss - two.loss) < 1e-6, `loss ${one.loss} vs ${two.loss}`);
    assert.ok(relErr(model.grads!.flat(), g1) < 1e-5, `gradient rel err ${relErr(model.grads!.flat(), g1)}`);
  });

  test('in the loop: steps of 2 x 2 rows follow the steps of 1 x 4 rows', async () => {
    const run = async (microBatch: number, gradAccum: number) => {
      const dir = tmp();
      await train(await tinyRun(dir, { train: source(), valid: undefined }, { steps: 4, microBatch, gradAccum, saveEvery: 0 }));
      return readMetrics(path.join(dir, 'metrics.jsonl'));
    };
    const a = await run(4, 1), b = await run(2, 2);
    assert.equal(a.length, 4);
    a.forEach((l, i) => {
      assert.equal(b[i].tokens, l.tokens);
      assert.ok(Math.abs((l.loss as number) - (b[i].loss as number)) < 1e-5, `step ${l.step}: ${l.loss} vs ${b[i].loss}`);
      assert.ok(Math.abs((l.grad_norm as number) / (b[i].grad_norm as number) - 1) < 1e-4, `step ${l.step}: norm ${l.grad_norm} vs ${b[i].grad_norm}`);
    });
  });
});

describe('schedule', () => {
  test('cosine with warmup: linear ramp, peak, midpoint, floor', () => {
    const lr = 1e-3, min = 1e-4;
    assert.equal(cosineLr(0, 110, lr, min, 10), 1e-4);          // (0 + 1) / 10 of the peak
    assert.equal(cosineLr(4, 110, lr, min, 10), 5e-4);
    assert.equal(cosineLr(10, 110, lr, min, 10), lr);           // decay starts at the peak
    assert.ok(Math.abs(cosineLr(60, 110, lr, min, 10) - (lr + min) / 2) < 1e-15);
    assert.equal(cosineLr(110, 110, lr, min, 10), min);
    for (let s = 11; s < 110; s++) assert.ok(cosineLr(s, 110, lr, min, 10) < cosineLr(s - 1, 110, lr, min, 10));
  });

  test('the loop logs the schedule value of each step and counts tokens', async () => {
    const ref = await reference();
    const lines = readMetrics(path.join(ref, 'metrics.jsonl')).filter((l) => l.split === undefined);
    const o = tinyOptions();
    assert.deepEqual(lines.map((l) => l.step), [1, 2, 3, 4, 5, 6]);
    for (const l of lines) {
      assert.equal(l.lr, cosineLr((l.step as number) - 1, 6, o.lr, o.minLr, o.warmup));
      assert.equal(l.tokens, (l.step as number) * 2 * 16 * 2);
      for (const k of ['loss', 'grad_norm', 'tokens_per_s', 'seconds']) assert.ok(Number.isFinite(l[k]), k);
    }
    const evals = readMetrics(path.join(ref, 'metrics.jsonl')).filter((l) => l.split === 'validation');
    assert.deepEqual(evals.map((l) => l.step), [0, 3, 6]);
    assert.ok((lines[5].loss as number) < (lines[0].loss as number), 'the loss goes down');
  });
});

describe('checkpoints and resume', () => {
  test('a finished run leaves a loadable HF model in final/ and a report', async () => {
    const ref = await reference();
    const { model } = await loadModel(path.join(ref, 'final'));
    assert.ok(model.params.allFinite());
    assert.deepEqual(listCheckpoints(ref).map((c) => c.step), [6]);
    assert.equal(fs.readFileSync(path.join(ref, LATEST_FILE), 'utf8'), 'checkpoint-6\n');
    assert.match(fs.readFileSync(path.join(ref, 'report/loss.svg'), 'utf8'), /<svg[\s\S]*train loss[\s\S]*validation loss[\s\S]*<\/svg>/);
  });

  test('a crash after step 5 resumes from checkpoint 3 to the same losses and weights, bitwise', async () => {
    const dir = tmp(), ref = await reference();
    const crash = (l: MetricsLine) => { if (l.step === 5) throw new Error('crash'); };
    await assert.rejects(train(await tinyRun(dir, { onStep: crash })), /crash/);
    assert.deepEqual(curve(dir).length, 7, 'steps 1-5 and validation at 0 and 3 were logged');
    const r = await train(await tinyRun(dir, { resume: true }));
    assert.equal(r.status, 'finished');
    assert.equal(r.sessionSteps, 3);
    assertSameRun(dir, ref);
  });

  test('a stop request checkpoints the current step; resume continues from it', async () => {
    const dir = tmp(), ref = await reference();
    let steps = 0;
    const r = await train(await tinyRun(dir, { onStep: () => steps++, shouldStop: () => steps === 2 }));
    assert.equal(r.status, 'stopped');
    assert.equal(r.final, undefined);
    assert.deepEqual(listCheckpoints(dir).map((c) => c.step), [2]);
    assert.equal(readTrainState(latestCheckpoint(dir)!).tokens, 2 * 64);
    await train(await tinyRun(dir, { resume: true }));
    assertSameRun(dir, ref);
  });

  test('the run RNG is checkpointed: an objective that samples resumes identically', async () => {
    // a randomly weighted loss: gradient and loss scaled by a draw from the run's generator
    const weighted: Objective = {
      name: 'weighted_ce',
      train(model, batch, ctx) {
        const before = model.grads!.flat();
        const r = nextTokenCE.train(model, batch, ctx), w = 0.5 + ctx.rng.next();
        const g = model.grads!;
        for (let i = 0; i < g.length; i++) g.set(i, before[i] + (g.get(i) - before[i]) * w);
        return { loss: r.loss * w, metrics: { weight: w } };
      },
      evaluate: nextTokenCE.evaluate,
    };
    const ref = tmp(), dir = tmp();
    await train(await tinyRun(ref, { objective: weighted }));
    await train(await tinyRun(dir, { objective: weighted, shouldStop: () => true }));
    await train(await tinyRun(dir, { objective: weighted, resume: true }));
    assertSameRun(dir, ref);
    const w = readMetrics(path.join(dir, 'metrics.jsonl')).filter((l) => l.weight !== undefined);
    assert.equal(new Set(w.map((l) => l.weight)).size, 6, 'extras are logged per step');
    assert.ok(fs.existsSync(path.join(dir, 'report/weight.svg')), 'extras get their own plot');
  });

  for (const file of ['model.safetensors', 'optimizer.safetensors', 'state.json', 'rename']) {
    test(`a crash while writing a checkpoint (after ${file}) leaves a loadable checkpoint to resume from`, async () => {
      const dir = tmp(), ref = await reference({ saveEvery: 2 });
      let saves = 0;
      const hook = (f: string) => { if (f === 'model.safetensors') saves++; if (saves === 2 && f === file) throw new Error('simulated crash'); };
      await assert.rejects(train(await tinyRun(dir, { onCheckpointFile: hook }, { saveEvery: 2 })), /simulated crash/);
      // the second checkpoint becomes visible only by the rename; before it, checkpoint-2 is the one
      const expected = file === 'rename' ? 4 : 2;
      assert.equal(readTrainState(latestCheckpoint(dir)!).step, expected);
      assert.equal(fs.readFileSync(path.join(dir, LATEST_FILE), 'utf8'), 'checkpoint-2\n');
      const { model } = await loadModel(path.join(dir, 'checkpoint-2'));
      assert.ok(model.params.allFinite());
      const r = await train(await tinyRun(dir, { resume: true }, { saveEvery: 2 }));
      assert.equal(r.sessionSteps, 6 - expected);
      assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('tmp')), [], 'the torn folder is removed by the next save');
      assertSameRun(dir, ref);
    });
  }

  test('a used run folder is refused; a resume refuses changed options unless they are allowed', async () => {
    const ref = await reference();
    await assert.rejects(train(await tinyRun(ref)), (e: unknown) => e instanceof KompresorError && /new or empty run folder/.test(e.message) && /--resume/.test(e.message));
    const dir = tmp();
    fs.cpSync(ref, dir, { recursive: true });
    await assert.rejects(train(await tinyRun(dir, { resume: true }, { lr: 1e-3 })), /lr: 0\.003 -> 0\.001/);
    const r = await train(await tinyRun(dir, { resume: true, allowOptionChanges: true }, { lr: 1e-3 }));
    assert.equal(r.sessionSteps, 0);
    await assert.rejects(train(await tinyRun(tmp(), { resume: true })), /no|none/);
  });
});

describe('divergence', () => {
  const poisoned = (when: number, poison: Objective['train']): Objective => ({
    name: nextTokenCE.name,
    train: (model, batch, ctx) => (ctx.step === when ? poison : nextTokenCE.train)(model, batch, ctx),
    evaluate: nextTokenCE.evaluate,
  });

  test('a NaN loss stops the run with one line naming the step; the last good checkpoint is intact', async () => {
    const dir = tmp();
    const nanLoss = poisoned(5, (model, batch, ctx) => { model.w.lnf.fill(NaN); return nextTokenCE.train(model, batch, ctx); });
    const err = await train(await tinyRun(dir, { objective: nanLoss }, { saveEvery: 2 })).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof KompresorError && err.code === 'training_diverged', String(err));
    assert.ok(!err.message.includes('\n'));
    assert.match(err.message, /^step 5: the loss must be finite; found NaN\. .*checkpoint-4, step 4\) is intact.*--resume/);
    assert.deepEqual(listCheckpoints(dir).map((c) => c.step), [4]);
    assert.ok(!fs.existsSync(path.join(dir, 'final')));
    const { model } = await loadModel(path.join(dir, 'checkpoint-4'));
    assert.ok(model.params.allFinite());
    // the poison was in memory only: resuming replays steps 5 and 6 exactly
    await train(await tinyRun(dir, { resume: true }, { saveEvery: 2 }));
    assert.deepEqual(curve(dir), curve(await reference({ saveEvery: 2 })));
  });

  test('a non-finite gradient norm stops the run before the update', async () => {
    const dir = tmp();
    const nanGrad = poisoned(3, (model, batch, ctx) => { const r = nextTokenCE.train(model, batch, ctx); model.grads!.set(0, Infinity); return r; });
    await assert.rejects(train(await tinyRun(dir, { objective: nanGrad }, { saveEvery: 2 })),
      /^KompresorError: step 3: the gradient norm must be finite; found (Infinity|NaN)\. .*checkpoint-2, step 2\) is intact/);
    assert.deepEqual(listCheckpoints(dir).map((c) => c.step), [2]);
  });

  test('before the first checkpoint, the message says none was written', async () => {
    const nanLoss = poisoned(1, () => ({ loss: NaN }));
    await assert.rejects(train(await tinyRun(tmp(), { objective: nanLoss })), /step 1: .*no checkpoint was written yet/);
  });
});

// -----------------------------------------------------------------------------------------------
// real processes

interface Child { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** Starts trainer_child.ts; `act` runs once the run folder holds a checkpoint of step >= minStep. */
function runChild(dir: string, act: (kill: (sig: NodeJS.Signals) => void) => void, minStep: number): Promise<Child> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, '25'], { cwd: path.join(import.meta.dirname, '../..') });
    let stdout = '', stderr = '', acted = false;
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const poll = setInterval(() => {
      if (acted || !listCheckpoints(dir).some((c) => c.step >= minStep)) return;
      acted = true;
      act((sig) => child.kill(sig));
    }, 5);
    child.on('error', reject);
    child.on('close', (code, signal) => { clearInterval(poll); resolve({ code, signal, stdout, stderr }); });
  });
}

describe('interrupting a training process', () => {
  test('kill -9 after a checkpoint: resume reproduces the uninterrupted run bitwise', async () => {
    const dir = tmp(), ref = await reference(CHILD_OPTIONS);
    const r = await runChild(dir, (kill) => kill('SIGKILL'), 4);
    assert.equal(r.signal, 'SIGKILL', `the child must be killed mid-run (stdout: ${r.stdout}, stderr: ${r.stderr})`);
    const at = readTrainState(latestCheckpoint(dir)!).step;
    assert.ok(at >= 4 && at < 12, `killed at checkpoint ${at}`);
    assert.ok(!fs.existsSync(path.join(dir, 'final')));
    const res = await train(await tinyRun(dir, { resume: true }, CHILD_OPTIONS));
    assert.equal(res.sessionSteps, 12 - at);
    assertSameRun(dir, ref);
  });

  test('SIGINT: the process finishes its step, checkpoints it, exits 130 and says how to resume', async () => {
    const dir = tmp(), ref = await reference(CHILD_OPTIONS);
    const r = await runChild(dir, (kill) => kill('SIGINT'), 2);
    assert.equal(r.code, 130, r.stderr);
    const m = /^stopped at step (\d+) of 12 .*checkpoint saved in (\S+)\nresume with: kompresor train --resume (\S+)\n$/s.exec(r.stdout);
    assert.ok(m, r.stdout);
    assert.equal(m[2], path.join(dir, `checkpoint-${m[1]}`));
    assert.equal(readTrainState(latestCheckpoint(dir)!).step, Number(m[1]));
    assert.match(r.stderr, /SIGINT received; stopping after the current step/);
    await train(await tinyRun(dir, { resume: true }, CHILD_OPTIONS));
    assertSameRun(dir, ref);
  });
});
