// Compares the runs of optim_state_error.sh with the first (float32-moment) run: a markdown table
// of final losses, bytes/parameter and weight differences. Usage: optim_state_error.ts OUT MODEL REF RUN...
import fs from 'node:fs';
import path from 'node:path';
import { openCheckpoint } from '../../src/io/checkpoint.ts';
import { readMetrics } from '../../src/train/metrics.ts';

const [out, model, ref, ...runs] = process.argv.slice(2);

function weights(dir: string): Map<string, Float32Array> {
  const ck = openCheckpoint(dir);
  const m = new Map<string, Float32Array>();
  for (const [name, t] of ck.tensors) {
    const a = new Float32Array(t.info.shape.reduce((x, y) => x * y, 1));
    ck.read(name, a);
    m.set(name, a);
  }
  return m;
}

function norm(a: Float32Array, b?: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) { const d = b ? a[i] - b[i] : a[i]; s += d * d; }
  return Math.sqrt(s);
}

const start = weights(model), base = weights(path.join(out, ref, 'final'));
const last = (run: string, split: 'train' | 'validation') =>
  readMetrics(path.join(out, run, 'metrics.jsonl')).filter((l) => (l.split ?? 'train') === split).at(-1)!.loss as number;
console.log('| run | bytes/param (state) | final train loss | final validation loss | max / mean over tensors of ‖w−w_f32‖/‖w_f32‖ | max / mean of ‖w−w_f32‖/‖w_f32−w_start‖ | identical to f32 tensors |');
console.log('|---|---|---|---|---|---|---|');
for (const run of [ref, ...runs]) {
  const w = weights(path.join(out, run, 'final'));
  const result = JSON.parse(fs.readFileSync(path.join(out, `${run}.json`), 'utf8').trim().split('\n').at(-1)!) as { memory: { bytes_per_parameter: number } };
  const rel: number[] = [], relMove: number[] = [];
  let same = 0;
  for (const [name, b] of base) {
    const a = w.get(name)!, d = norm(a, b);
    rel.push(d / norm(b));
    const moved = norm(b, start.get(name)!);
    if (moved > 0) relMove.push(d / moved);
    if (d === 0) same++;
  }
  const mm = (x: number[]) => `${Math.max(...x).toExponential(2)} / ${(x.reduce((s, v) => s + v, 0) / x.length).toExponential(2)}`;
  console.log(`| ${run} | ${result.memory.bytes_per_parameter.toFixed(2)} | ${last(run, 'train').toFixed(4)} | ${last(run, 'validation').toFixed(4)} | ${mm(rel)} | ${mm(relMove)} | ${same} of ${base.size} |`);
}
