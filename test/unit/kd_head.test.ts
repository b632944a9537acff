// The distillation loss head end to end on the tiny fixture model (test/fixtures/llama_tied_gqa):
// a student Decoder distilled from a teacher Decoder, chunk by chunk. d(loss)/d(params) against
// central finite differences of the loss for several tensors (forward KL; reverse + T + top-k + T^2;
// CE + KD with the balancing ratio held fixed), an identical teacher (0 loss, all-zero gradient),
// more rows than one logit chunk against the loss on fully materialised logits, the teacher
// callback's call pattern, the T^2 factor, and the error messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadModel } from '../../src/model/load.ts';
import { batchFromRows, type Batch } from '../../src/model/batch.ts';
import type { Decoder } from '../../src/model/decoder.ts';
import { LOGIT_CHUNK } from '../../src/model/activations.ts';
import { kdLoss, kdLossAndBackward, kdLossOnRows, teacherChunks, type KdOptions, type TeacherChunk } from '../../src/distill/kd_head.ts';
import { KompresorError } from '../../src/errors.ts';
import { randn, rng } from '../helpers.ts';

const TINY = join(import.meta.dirname, '../fixtures/llama_tied_gqa');

/** Student = the fixture; teacher = the fixture perturbed, with a 20x sharper (tied) lm_head. */
async function pair(): Promise<{ student: Decoder; teacher: Decoder }> {
  const student = (await loadModel(TINY)).model;
  const teacher = (await loadModel(TINY)).model;
  const noise = randn(teacher.params.length, 91, 0.03);
  for (let i = 0; i < teacher.params.length; i++) teacher.params.set(i, teacher.params.get(i) + noise[i]);
  teacher.w.wte.forEach((p, i) => { teacher.w.wte[i] = 20 * p; });
  return { student, teacher };
}

function randomBatch(B: number, T: number, seed: number): Batch {
  const r = rng(seed);
  return batchFromRows(Array.from({ length: B }, () => Array.from({ length: T }, () => Math.floor(r() * 64))));
}

/** The element of each named tensor with the largest |gradient|: [name, index into params]. */
function probes(model: Decoder, names: string[]): [string, number][] {
  return names.map((name) => {
    const s = model.layout.byName.get(name)!;
    let best = s.offset;
    for (let i = s.offset; i < s.offset + s.size; i++) if (Math.abs(model.grads!.get(i)) > Math.abs(model.grads!.get(best))) best = i;
    return [name, best];
  });
}

const TENSORS = ['model.embed_tokens.weight', 'model.layers.0.self_attn.q_proj.weight', 'model.layers.0.input_layernorm.weight',
  'model.layers.1.mlp.down_proj.weight', 'model.layers.1.self_attn.v_proj.weight', 'model.norm.weight'];

/**
 * Central differences of f at params[i]. The model computes in float32: a step of 1e-2 keeps the
 * rounding noise (~4e-7 on a loss near 20) small next to the gradients; the curvature error
 * stays under 1% here.
 */
function fdAt(model: Decoder, i: number, f: () => number, eps = 1e-2): number {
  const orig = model.params.get(i);
  model.params.set(i, orig + eps); const fp = f();
  model.params.set(i, orig - eps); const fm = f();
  model.params.set(i, orig);
  return (fp - fm) / (Math.fround(orig + eps) - Math.fround(orig - eps));
}

function checkGradients(student: Decoder, loss: () => number, what: string): void {
  for (const [name, i] of probes(student, TENSORS)) {
    const g = student.grads!.get(i), fd = fdAt(student, i, loss);
    assert.ok(Math.abs(fd - g) <= 2e-2 * Math.abs(g) + 1e-5, `${what}: d loss / d ${name}[${i - student.layout.byName.get(name)!.offset}] = ${g}, finite differences ${fd}`);
  }
}

const VARIANTS: [string, Partial<KdOptions>][] = [
  ['forward KL, T=1', {}],
  ['reverse KL, T=2, topK=16, T^2', { reverse: true, temperature: 2, topK: 16, scaleT2: true }],
];

for (const [label, opts] of VARIANTS) {
  test(`kd head (llama_tied_gqa, B=2,T=12, ${label}): d(loss)/d(params) matches finite differences`, async () => {
    const { student, teacher } = await pair();
    const batch = randomBatch(2, 12, 92);
    student.zeroGrad();
    const r = kdLossAndBackward(student, batch, teacherChunks(teacher, batch), opts);
    assert.ok(r.loss > 0.05 && r.loss === r.kd && r.ce === undefined, `a KD-only loss well above 0, got ${JSON.stringify(r)}`);
    assert.equal(r.count, 22);
    checkGradients(student, () => kdLoss(student, batch, teacherChunks(teacher, batch), opts).loss, label);
  });
}

test('kd head (llama_tied_gqa, CE + KD balanced, topK=16): the gradient is d CE + w d KD with w = CE/KD held fixed', async () => {
  const { student, teacher } = await pair();
  const batch = randomBatch(2, 12, 93);
  const opts: Partial<KdOptions> = { lmLoss: true, kdLossScale: 0.5, topK: 16 };
  student.zeroGrad();
  const r = kdLossAndBackward(student, batch, teacherChunks(teacher, batch), opts);
  const ce = student.loss(batch), kd = kdLoss(student, batch, teacherChunks(teacher, batch), { topK: 16 }).kd;
  assert.ok(Math.abs(r.ce! - ce) < 1e-6 && Math.abs(r.kd - kd) < 1e-6, `CE ${r.ce} vs ${ce}, KD ${r.kd} vs ${kd}`);
  // the value is CE + kd * (CE/kd) * scale = CE * (1 + scale); the ratio is detached
  assert.ok(Math.abs(r.loss - 1.5 * ce) < 1e-5, `total ${r.loss} vs ${1.5 * ce}`);
  const w = 0.5 * ce / kd;
  checkGradients(student, () => student.loss(batch) + w * kdLoss(student, batch, teacherChunks(teacher, batch), { topK: 16 }).kd, 'CE + KD');
});

test('kd head (llama_tied_gqa): a student identical to its teacher has loss 0 and an all-zero gradient', async () => {
  const student = (await loadModel(TINY)).model, teacher = (await loadModel(TINY)).model;
  const batch = randomBatch(2, 12, 94);
  for (const opts of [{}, { reverse: true, temperature: 2, topK: 8 }] as Partial<KdOptions>[]) {
    student.zeroGrad();
    const r = kdLossAndBackward(student, batch, teacherChunks(teacher, batch), opts);
    assert.equal(r.loss, 0, `loss with ${JSON.stringify(opts)}`);
    assert.ok(student.grads!.flat().every((g) => g === 0), `gradient with ${JSON.stringify(opts)} must be all zero`);
  }
});

for (const lmLoss of [false, true]) {
  test(`kd head (B=3,T=100: ${3 * 100} rows > LOGIT_CHUNK ${LOGIT_CHUNK}, lmLoss=${lmLoss}) equals the loss on materialised logits; the teacher is asked chunk by chunk`, async () => {
    const { student, teacher } = await pair();
    const batch = randomBatch(3, 100, 95), N = 300, V = 64;
    const opts: Partial<KdOptions> = { lmLoss, temperature: 1.5, topK: 20 };
    const calls: [number, number][] = [];
    const serve = teacherChunks(teacher, batch);
    const spy: TeacherChunk = (r0, rows) => { calls.push([r0, rows]); return serve(r0, rows); };
    student.zeroGrad();
    const r = kdLossAndBackward(student, batch, spy, opts);
    const once = [[0, LOGIT_CHUNK], [LOGIT_CHUNK, N - LOGIT_CHUNK]];
    assert.deepEqual(calls, lmLoss ? [...once, ...once] : once);

    const full = (m: Decoder) => {
      const out = new Float32Array(N * V);
      m.logits(batch, (r0, rows, chunk) => out.set(chunk.subarray(0, rows * V), r0 * V));
      return out;
    };
    const want = kdLossOnRows(full(student), full(teacher), batch.targets, N, V, opts);
    assert.ok(Math.abs(r.loss - want.loss) < 1e-6 * Math.max(1, want.loss), `loss ${r.loss} vs ${want.loss}`);
    assert.ok(Math.abs(r.kd - want.kd) < 1e-6 * Math.max(1, want.kd), `kd ${r.kd} vs ${want.kd}`);
    // and the gradient of the second chunk's rows reaches the parameters
    const [[name, i]] = probes(student, ['model.embed_tokens.weight']);
    const f = () => kdLoss(student, batch, teacherChunks(teacher, batch), opts).loss;
    if (!lmLoss) assert.ok(Math.abs(fdAt(student, i, f) - student.grads!.get(i)) <= 2e-2 * Math.abs(student.grads!.get(i)) + 1e-5, `d loss / d ${name}`);
  });
}

test('kd head: scaleT2 multiplies the loss and the gradient by T^2', async () => {
  const { student, teacher } = await pair();
  const batch = randomBatch(2, 12, 96);
  const run = (scaleT2: boolean) => {
    student.zeroGrad();
    const r = kdLossAndBackward(student, batch, teacherChunks(teacher, batch), { temperature: 3, scaleT2 });
    return { loss: r.loss, grads: student.grads!.flat() };
  };
  const plain = run(false), t2 = run(true);
  assert.ok(Math.abs(t2.loss - 9 * plain.loss) < 1e-6 * t2.loss, `${t2.loss} vs 9 * ${plain.loss}`);
  let num = 0, den = 0;
  plain.grads.forEach((g, i) => { num += (t2.grads[i] - 9 * g) ** 2; den += (9 * g) ** 2; });
  assert.ok(Math.sqrt(num / den) < 1e-6, `gradient relErr ${Math.sqrt(num / den)}`);
});

test('kd head: forward-only kdLoss leaves the gradient arena alone', async () => {
  const { student, teacher } = await pair();
  const batch = randomBatch(2, 12, 97);
  student.zeroGrad();
  const a = kdLoss(student, batch, teacherChunks(teacher, batch));
  assert.ok(student.grads!.flat().every((g) => g === 0));
  const b = kdLossAndBackward(student, batch, teacherChunks(teacher, batch));
  assert.equal(a.loss, b.loss);
});

test('kd head refuses a teacher with another vocabulary and invalid options, saying why', async () => {
  const { student } = await pair();
  const batch = randomBatch(1, 6, 98);
  const wrongVocab: TeacherChunk = (_r0, rows) => new Float32Array(rows * 65);
  assert.throws(() => kdLoss(student, batch, wrongVocab), (e: unknown) => e instanceof KompresorError && e.code === 'shape_mismatch' &&
    e.message.startsWith("KD teacher logits: the teacher must share the student's vocabulary (one row of V logits per token); expected 6 x 64 = 384 values, found 390."));
  const teacher: TeacherChunk = (_r0, rows) => new Float32Array(rows * 64);
  assert.throws(() => kdLoss(student, batch, teacher, { temperature: 0 }),
    /KD option temperature: the temperature must be a finite number > 0; found 0\./);
  assert.throws(() => kdLoss(student, batch, teacher, { topK: -3 }), /KD option topK: topK must be an integer >= 0 \(0 = full vocabulary\); found -3\./);
  assert.throws(() => kdLoss(student, batch, teacher, { kdLossScale: -1 }), /KD option kdLossScale/);
});
