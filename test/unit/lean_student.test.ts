// The memory-lean student (docs/training.md, "Memory"): activation recomputation gives the same
// gradients bit for bit with a smaller arena; frozen embeddings / lm_head get no gradient and no
// moments and stay bit-identical through training; bf16 and int8 AdamW moments train, checkpoint
// in their dtype and resume bitwise; a resume with another storage or other frozen parts is
// refused; the state's bytes/parameter as the trainer reports it.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { loadModel } from '../../src/model/load.ts';
import { batchFromDocs } from '../../src/model/batch.ts';
import { activationBytes, dimsOf } from '../../src/model/activations.ts';
import { frozenTensors } from '../../src/model/freeze.ts';
import { train } from '../../src/train/trainer.ts';
import { stateMemory, describeStateMemory } from '../../src/train/memory.ts';
import { readMetrics } from '../../src/train/metrics.ts';
import { latestCheckpoint } from '../../src/train/run_checkpoint.ts';
import { readSafetensorsHeader, readTensorF32 } from '../../src/io/safetensors.ts';
import { openCheckpoint } from '../../src/io/checkpoint.ts';
import { parseTrainerFlags, addTrainerFlags } from '../../src/cli/trainer_flags.ts';
import { KompresorError } from '../../src/errors.ts';
import { Command } from 'commander';
import { tinyRun, syntheticDocs } from '../train_helpers.ts';
import { tempDir, throwsWith } from '../helpers.ts';

const FIX = (name: string) => path.join(import.meta.dirname, '../fixtures', name);
const tmp = () => tempDir('kompresor-lean-');

function packedBatch(T: number) {
  const d = syntheticDocs(12, 5).map((x) => x.slice(0, 10));
  return batchFromDocs([[d[0], d[1].slice(0, 5)], [d[2]], [d[3].slice(0, 9), d[4]]], T, 0);
}

describe('activation recomputation', () => {
  for (const fixture of ['llama_untied', 'qwen2_bias', 'mistral_window']) {
    test(`${fixture}: gradients with --recompute equal those without, bit for bit; the arena shrinks to resid + one layer`, async () => {
      const { model } = await loadModel(FIX(fixture));
      const batch = packedBatch(24);
      model.zeroGrad();
      const loss = model.lossAndBackward(batch);
      const full = model.grads!.flat(), fullBytes = model.activations(batch.B, batch.T).bytes;
      model.recompute = true;
      model.zeroGrad();
      assert.equal(model.lossAndBackward(batch), loss, 'the loss');
      assert.deepEqual(model.grads!.flat(), full, 'every gradient');
      const a = model.activations(batch.B, batch.T);
      assert.ok(a.recompute);
      // per-layer buffers other than resid: L slots -> 1 slot
      const d = dimsOf(model.cfg, batch.B, batch.T), L = model.cfg.numLayers;
      const perLayer = 3 * d.N * d.C + 2 * d.N + d.N * d.QKV + d.N * d.nH * d.hd + d.B * d.nH * d.T + 3 * d.N * d.F;
      assert.equal(fullBytes - a.bytes, 4 * (L - 1) * perLayer, 'bytes saved = (L - 1) layers of buffers');
      assert.equal(a.bytes, activationBytes(model.cfg, batch.B, batch.T, false, true, true));
    });
  }
});

describe('frozen parts', () => {
  test('llama_untied: frozen embeddings and lm_head get no gradient memory; the other gradients are unchanged', async () => {
    const { model } = await loadModel(FIX('llama_untied'));
    const batch = packedBatch(24);
    model.zeroGrad();
    model.lossAndBackward(batch);
    const full = model.grads!;
    const keep = model.layout.slots.filter((s) => !s.name.includes('embed_tokens') && s.name !== 'lm_head.weight');
    const want = keep.map((s) => full.view(s).slice());
    model.freeze(frozenTensors(model.cfg, ['embeddings', 'lm_head']));
    model.zeroGrad();
    model.lossAndBackward(batch);
    const VC = model.cfg.vocabSize * model.cfg.hiddenSize;
    assert.equal(model.grads!.length, model.layout.total - 2 * VC, 'no gradient for V x C twice');
    assert.equal(model.dw!.wte.length, 0);
    assert.equal(model.dw!.lmHead.length, 0);
    keep.forEach((s, i) => assert.deepEqual(model.grads!.view(s.name), want[i], s.name));
  });

  test('tied embeddings: freezing lm_head freezes the shared matrix', async () => {
    const { model } = await loadModel(FIX('llama_tied_gqa'));
    assert.deepEqual([...frozenTensors(model.cfg, ['lm_head'])], ['model.embed_tokens.weight']);
  });

  test('a run with --freeze embeddings,lm_head leaves them bit-identical, trains the rest, and saves no moments for them', async () => {
    const dir = tmp();
    const { model } = await loadModel(FIX('llama_untied'));
    const before = ['model.embed_tokens.weight', 'lm_head.weight', 'model.norm.weight'].map((n) => model.params.view(n).slice());
    const run = await tinyRun(dir, { model, config: openCheckpoint(FIX('llama_untied')).rawConfig, tokenizerFrom: FIX('llama_untied') },
      { freeze: 'lm_head,embeddings', optimState: 'int8', recompute: true });
    const r = await train(run);
    assert.equal(r.memory.trainable, model.layout.total - 2 * 64 * 32);
    const ck = openCheckpoint(path.join(dir, 'final'));
    const after = (n: string) => { const out = new Float32Array(ck.tensors.get(n)!.info.shape.reduce((a, b) => a * b, 1)); ck.read(n, out); return out; };
    assert.deepEqual(after('model.embed_tokens.weight'), before[0], 'embeddings unchanged');
    assert.deepEqual(after('lm_head.weight'), before[1], 'lm_head unchanged');
    assert.notDeepEqual(after('model.norm.weight'), before[2], 'the final norm trained');
    const h = readSafetensorsHeader(path.join(latestCheckpoint(dir)!, 'optimizer.safetensors'));
    assert.ok(!h.tensors.has('exp_avg.lm_head.weight') && !h.tensors.has('exp_avg.model.embed_tokens.weight'));
    assert.equal(h.tensors.get('exp_avg.model.norm.weight')!.dtype, 'U8');
    const st = JSON.parse((await import('node:fs')).readFileSync(path.join(latestCheckpoint(dir)!, 'state.json'), 'utf8'));
    assert.equal(st.options.freeze, 'embeddings,lm_head', 'stored in normal form');
  });
});

describe('AdamW moments in bf16 and int8', () => {
  for (const optimState of ['bf16', 'int8'] as const) {
    test(`${optimState}: checkpointed in its dtype; a crash resumes to the same losses and weights, bitwise; close to the f32 run`, async () => {
      const ref = tmp(), dir = tmp(), f32 = tmp();
      await train(await tinyRun(ref, {}, { optimState }));
      await train(await tinyRun(f32, {}, {}));
      const crash = (l: { step: number }) => { if (l.step === 5) throw new Error('crash'); };
      await assert.rejects(train(await tinyRun(dir, { onStep: crash as never }, { optimState })), /crash/);
      const h = readSafetensorsHeader(path.join(latestCheckpoint(dir)!, 'optimizer.safetensors'));
      assert.equal(h.metadata.optim_state, optimState);
      const m = h.tensors.get('exp_avg.model.layers.0.mlp.down_proj.weight')!;
      assert.equal(m.dtype, optimState === 'bf16' ? 'BF16' : 'U8');
      if (optimState === 'int8') assert.deepEqual(h.tensors.get('exp_avg_sq_scale.model.layers.0.mlp.down_proj.weight')!.shape, [Math.ceil(32 * 16 / 256)]);
      await train(await tinyRun(dir, { resume: true }, { optimState }));
      const curve = (d: string) => readMetrics(path.join(d, 'metrics.jsonl')).map((l) => JSON.stringify([l.step, l.loss, l.grad_norm]));
      assert.deepEqual(curve(dir), curve(ref));
      const w = (d: string) => { const hh = readSafetensorsHeader(path.join(d, 'final/model.safetensors')); return [...hh.tensors.values()].map((i) => readTensorF32(hh, i)); };
      assert.deepEqual(w(dir), w(ref));
      const last = (d: string) => readMetrics(path.join(d, 'metrics.jsonl')).filter((l) => l.split !== 'validation').at(-1)!.loss as number;
      assert.ok(Math.abs(last(ref) - last(f32)) < 0.05 * last(f32), `${optimState} loss ${last(ref)} vs f32 ${last(f32)}`);
      assert.notEqual(last(ref), last(f32), 'the storage rounding does change the run');
    });
  }

  test('a resume with another --optim-state or other frozen parts is refused, naming the flag', async () => {
    const dir = tmp();
    await train(await tinyRun(dir, {}, { optimState: 'bf16', steps: 3 }));
    await assert.rejects(train(await tinyRun(dir, { resume: true, allowOptionChanges: true }, { optimState: 'int8', steps: 3 })),
      (e: unknown) => e instanceof KompresorError && e.where === '--optim-state' && /expected bf16.*found int8/.test(e.message));
    await assert.rejects(train(await tinyRun(dir, { resume: true, allowOptionChanges: true }, { optimState: 'bf16', freeze: 'embeddings', steps: 3 })),
      (e: unknown) => e instanceof KompresorError && e.where === '--freeze');
    // --recompute changes no number: a resume may turn it on without allowing option changes
    const r = await train(await tinyRun(dir, { resume: true }, { optimState: 'bf16', steps: 3, recompute: true }));
    assert.equal(r.status, 'finished');
  });
});

describe('bytes per parameter', () => {
  test('f32 = 16 bytes/parameter; bf16 12; int8 10 + scales; freezing removes gradients and moments', async () => {
    const { model } = await loadModel(FIX('llama_untied'));
    const m = (over: object) => stateMemory(model.cfg, { optimState: 'f32', freeze: [], recompute: false, microBatch: 2, seqLen: 16, ...over });
    assert.equal(m({}).bytes_per_parameter, 16);
    assert.equal(m({ optimState: 'bf16' }).bytes_per_parameter, 12);
    const int8 = m({ optimState: 'int8' });
    assert.ok(int8.bytes_per_parameter > 10 && int8.bytes_per_parameter < 10.2, String(int8.bytes_per_parameter));
    const frozen = m({ freeze: ['embeddings', 'lm_head'] });
    assert.equal(frozen.trainable, model.layout.total - 2 * 64 * 32);
    assert.equal(frozen.bytes_per_parameter, 4 + 12 * frozen.trainable / frozen.parameters);
    assert.ok(m({ recompute: true }).activations_bytes < m({}).activations_bytes);
    assert.match(describeStateMemory(int8), /^training state: 10\.\d\d bytes\/parameter \(weights 4\.00, gradients 4\.00, moments int8 2\.\d\d\)/);
  });

  test('CLI flags: --optim-state, --freeze and --recompute parse; a bad value is one line naming the flag', () => {
    const parse = (...args: string[]) => {
      const cmd = addTrainerFlags(new Command('train').exitOverride());
      cmd.parse(['--steps', '2', ...args], { from: 'user' });
      return parseTrainerFlags(cmd);
    };
    assert.deepEqual((({ optimState, freeze, recompute }) => ({ optimState, freeze, recompute }))(parse('--optim-state', 'int8', '--freeze', 'embeddings', '--recompute')),
      { optimState: 'int8', freeze: 'embeddings', recompute: true });
    throwsWith(() => parse('--optim-state', 'fp8'), 'input_invalid', /--optim-state/, /f32 \| bf16 \| int8/);
    throwsWith(() => parse('--freeze', 'embeddings,norms'), 'input_invalid', /--freeze/, /embeddings, lm_head/);
  });
});
