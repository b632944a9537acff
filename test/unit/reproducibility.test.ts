// Reproducibility on one machine, checked from outside: sft -> dpo -> grpo run twice through the
// CLI with the same seed on a tiny byte-level model give byte-identical model.safetensors at
// every stage (another seed does not, so the comparison can fail); every checkpoint's state.json
// carries the machine fingerprint; KOMPRESOR_PIN=1 fixes OpenBLAS's core type and the thread
// counts before the addon loads; the pipeline report names the machine that made the student.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { makeBaseModel, sftRow, dpoRow, grpoRow } from '../../scripts/fuzz/base.ts';
import { Pick } from '../../scripts/fuzz/mutate.ts';
import { pinnedEnvironment, PINNED_CORE } from '../../src/tensor/native.ts';
import { madeOn } from '../../src/pipeline/report.ts';
import type { PipelineState } from '../../src/pipeline/runner.ts';
import type { MachineFingerprint } from '../../src/tensor/machine.ts';
import { tempDir } from '../helpers.ts';
import { kompresor, ROOT } from '../cli_run.ts';

const tmp = tempDir('kompresor-repro-');
const at = (...p: string[]) => path.join(tmp, ...p);
let base = '';

before(() => {
  base = makeBaseModel(at('base'));
  const p = new Pick(5);
  const jsonl = (row: (p: Pick) => unknown, n: number) => Array.from({ length: n }, () => JSON.stringify(row(p))).join('\n') + '\n';
  fs.writeFileSync(at('sft.jsonl'), jsonl(sftRow, 12));
  fs.writeFileSync(at('dpo.jsonl'), jsonl(dpoRow, 12));
  fs.writeFileSync(at('grpo.jsonl'), jsonl(grpoRow, 8));
});

/** sft -> dpo -> grpo into DIR; returns the three final model.safetensors. */
async function chain(dir: string, seed: number): Promise<Buffer[]> {
  const s = ['--seed', String(seed), '--json'];
  const steps: string[][] = [
    ['sft', base, '--data', at('sft.jsonl'), '--out', path.join(dir, 'sft'), '--steps', '3', '--micro-batch', '2', '--seq-len', '96', '--lr', '1e-3', '--eval-batches', '1', ...s],
    ['dpo', path.join(dir, 'sft/final'), '--data', at('dpo.jsonl'), '--out', path.join(dir, 'dpo'), '--steps', '2', '--micro-batch', '2', '--seq-len', '96', '--lr', '1e-3', '--eval-batches', '1', ...s],
    ['grpo', path.join(dir, 'dpo/final'), '--data', at('grpo.jsonl'), '--reward', 'numeric,length', '--out', path.join(dir, 'grpo'), '--steps', '2',
      '--num-generations', '4', '--micro-batch', '4', '--max-new-tokens', '6', '--max-prompt-length', '32', '--lr', '1e-3', ...s],
  ];
  for (const args of steps) {
    const r = await kompresor(args);
    assert.equal(r.code, 0, `${args[0]}: ${r.stderr}`);
  }
  return ['sft', 'dpo', 'grpo'].map((x) => fs.readFileSync(path.join(dir, x, 'final/model.safetensors')));
}

test('sft -> dpo -> grpo twice with the same seed: byte-identical weights at every stage; another seed differs', async () => {
  const a = await chain(at('a'), 3), b = await chain(at('b'), 3);
  ['sft', 'dpo', 'grpo'].forEach((x, i) => assert.ok(a[i].equals(b[i]), `${x}/final/model.safetensors differs between two runs with the same seed`));
  const c = await chain(at('c'), 4);
  assert.ok(!a[2].equals(c[2]), 'another seed gave the same grpo weights: the comparison cannot tell runs apart');
  // every checkpoint records the machine of the session that wrote it
  const ck = fs.readdirSync(at('a/grpo')).find((f) => f.startsWith('checkpoint-'))!;
  const st = JSON.parse(fs.readFileSync(at('a/grpo', ck, 'state.json'), 'utf8')) as { meta: { machine: MachineFingerprint } };
  assert.match(st.meta.machine.key, /^[0-9a-f]{12}$/);
  assert.equal(st.meta.machine.node, process.version);
  assert.equal(typeof st.meta.machine.native, 'boolean');
});

test('KOMPRESOR_PIN=1: OPENBLAS_CORETYPE (Haswell unless given) and both thread counts fixed before the addon loads', () => {
  assert.deepEqual(pinnedEnvironment({ KOMPRESOR_THREADS: '3' }), { OPENBLAS_CORETYPE: PINNED_CORE, OPENBLAS_NUM_THREADS: '3', OMP_NUM_THREADS: '3' });
  assert.equal(pinnedEnvironment({ OPENBLAS_CORETYPE: 'SkylakeX', KOMPRESOR_THREADS: '1' }).OPENBLAS_CORETYPE, 'SkylakeX');
  const env: NodeJS.ProcessEnv = { ...process.env, KOMPRESOR_PIN: '1', KOMPRESOR_THREADS: '1' };
  delete env.OPENBLAS_CORETYPE; delete env.OPENBLAS_NUM_THREADS; delete env.OMP_NUM_THREADS; delete env.NODE_TEST_CONTEXT;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '-e',
    'const m = await import("./src/tensor/machine.ts"); console.log(JSON.stringify(m.machineFingerprint()))'], { cwd: ROOT, env, encoding: 'utf8' });
  const f = JSON.parse(out) as MachineFingerprint;
  assert.equal(f.pinned, true);
  assert.equal(f.env.OPENBLAS_CORETYPE, PINNED_CORE);
  if (f.native) { // the addon reports what OpenBLAS actually chose
    assert.equal(f.blas_core, PINNED_CORE);
    assert.equal(f.blas_threads, 1);
    assert.equal(f.omp_threads, 1);
  }
});

test('the pipeline report names the machine of the step that made the student, and steps that ran elsewhere', () => {
  const m = (key: string): MachineFingerprint => ({ key, cpu: 'CPU ' + key, cpus: 2, cpu_flags: ['avx2'], arch: 'x64', platform: 'linux', node: 'v20', native: true,
    blas: 'OpenBLAS', blas_core: 'Haswell', blas_threads: 2, omp_threads: 2, addon_flags: '-O3', compiler: '12', pinned: false, env: {} });
  const step = (name: string, model: string | null, keys: string[]) => ({ name, status: 'finished', model, out: model, sessions: keys.map((k) => ({ machine: m(k) })) });
  const state = { steps: [step('prune', 'r/prune', ['aaa']), step('kd', 'r/kd/final', ['bbb', 'aaa']), step('grpo', 'r/grpo/final', ['aaa'])] } as unknown as PipelineState;
  const r = madeOn(state, 'r/grpo/final');
  assert.equal(r.step, 'grpo');
  assert.equal(r.made_on!.key, 'aaa');
  assert.deepEqual(r.other_machines.map((o) => [o.step, o.key]), [['kd', 'bbb']]);
  assert.equal(madeOn(state, 'models/teacher').made_on, null);
});
