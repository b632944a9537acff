// DPO on the model: d(DPO loss)/d(param) against finite differences on the tiny fixture (sigmoid
// + DPO-Positive with the penalty on for some pairs and off for others, and IPO), precomputed
// reference log-probs equal to the live reference, the pair batches and their positions, and
// `kompresor dpo` end to end (accuracy on the pairs rises; --precompute-ref cached and read back
// on resume; one-line errors). The sequence log-prob head itself is tested in logprobs.test.ts.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { byteLevelTokenizer } from '../../src/io/byte_tokenizer.ts';
import { normalizeConfig } from '../../src/io/hf_config.ts';
import { Decoder } from '../../src/model/decoder.ts';
import { initWeights } from '../../src/model/init.ts';
import { loadModel, saveModel } from '../../src/model/load.ts';
import { dpoObjective, computeRefLogps } from '../../src/align/dpo.ts';
import { dpoLossOptions, type DpoLossOptions } from '../../src/align/losses.ts';
import { DpoSource, dpoEvalSource, pairBatch, type DpoBatch } from '../../src/align/sources.ts';
import { Rng } from '../../src/model/sampling.ts';
import { readMetrics } from '../../src/train/metrics.ts';
import { TINY } from '../train_helpers.ts';
import { randn, relErr, throwsWith, tempDir } from '../helpers.ts';
import { pairs } from '../align_helpers.ts';

const ROOT = path.join(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/kompresor.mjs');
let work: string;
const at = (...p: string[]) => path.join(work, ...p);
before(() => { work = tempDir('kompresor-dpo-'); });
after(() => { fs.rmSync(work, { recursive: true, force: true }); });

/** The fixture with every weight nudged: a reference that differs from the policy. */
async function perturbed(seed: number, scale: number): Promise<Decoder> {
  const { model } = await loadModel(TINY);
  const noise = randn(model.params.length, seed, scale);
  for (let i = 0; i < noise.length; i++) model.params.set(i, model.params.get(i) + noise[i]);
  model.forwardOnly = true;
  return model;
}

describe('d(DPO loss)/d(param) against finite differences on the fixture', () => {
  const cases: [string, Partial<DpoLossOptions>][] = [
    ['sigmoid + DPOP (beta 0.5, lambda 5)', { beta: 0.5, dpopLambda: 5 }],
    ['ipo (beta 0.1)', { loss: 'ipo' }],
  ];
  for (const [name, over] of cases) {
    test(name, async () => {
      const o = dpoLossOptions(over);
      const { model } = await loadModel(TINY);
      const ref = await perturbed(9, 0.02);
      const b = pairBatch(pairs(6, 2), [0, 1, 2, 3, 4, 5], 6, 12, 0, null);
      const obj = dpoObjective(o, ref);
      model.zeroGrad();
      const r = obj.train(model, b, { step: 1, micro: 0, rng: new Rng(0) });
      if (o.dpopLambda > 0) {
        const active = r.metrics!['dpop/active'];
        assert.ok(active > 0 && active < 1, `the penalty should be on for some pairs and off for others: ${active}`);
      }
      const loss = () => obj.evaluate(model, b).loss;
      assert.ok(Math.abs(loss() - r.loss) < 1e-9);
      // in each of four tensors, the two entries with the largest gradient
      const g = model.grads!.flat(), eps = 2e-3; // float32 forward: rounding noise below, curvature above (measured worst 2.7e-3)
      for (const name of ['model.embed_tokens.weight', 'model.layers.0.self_attn.q_proj.weight', 'model.layers.1.mlp.down_proj.weight', 'model.norm.weight']) {
        const slot = model.layout.slots.find((s) => s.name === name)!;
        const idx = Array.from({ length: slot.size }, (_, i) => slot.offset + i).sort((a, c) => Math.abs(g[c]) - Math.abs(g[a])).slice(0, 2);
        for (const i of idx) {
          const w = model.params.get(i);
          model.params.set(i, w + eps); const lp = loss();
          model.params.set(i, w - eps); const lm = loss();
          model.params.set(i, w);
          const fd = (lp - lm) / (2 * eps);
          assert.ok(Math.abs(fd - g[i]) <= 1e-2 * Math.abs(g[i]) + 1e-6, `${name}[${i - slot.offset}]: analytic ${g[i]}, finite differences ${fd}`);
        }
      }
    });
  }
});

describe('the reference and the batches', () => {
  test('precomputed reference log-probs give the live reference\'s loss and gradient', async () => {
    const ps = pairs(8, 3), ref = await perturbed(5, 0.05), o = dpoLossOptions({ dpopLambda: 2.5 });
    const pre = computeRefLogps(ref, ps, 4, 12, 0);
    const grads: Float32Array[] = [], losses: number[] = [];
    for (const [obj, refLogps] of [[dpoObjective(o, ref), null], [dpoObjective(o, null), pre]] as const) {
      const { model } = await loadModel(TINY);
      const src = new DpoSource(ps, { seed: 1, padId: 0, refLogps });
      model.zeroGrad();
      losses.push(obj.train(model, src.next(4, 12), { step: 1, micro: 0, rng: new Rng(0) }).loss);
      grads.push(model.grads!.flat());
    }
    assert.ok(Math.abs(losses[0] - losses[1]) < 1e-6, `${losses}`);
    assert.ok(relErr(grads[1], grads[0]) < 1e-5);
  });

  test('a micro-batch of 2P rows: chosen rows, then rejected rows; positions round-trip; odd sizes refused', () => {
    const ps = pairs(5, 4);
    const src = new DpoSource(ps, { seed: 2, padId: 0 });
    const b = src.next(4, 12) as DpoBatch;
    assert.equal(b.pairs, 2);
    for (let k = 0; k < 2; k++) {
      const p = ps[b.index[k]];
      assert.deepEqual(Array.from(b.ids.subarray(k * 12, k * 12 + p.chosen.ids.length)), Array.from(p.chosen.ids));
      assert.deepEqual(Array.from(b.ids.subarray((2 + k) * 12, (2 + k) * 12 + p.rejected.ids.length)), Array.from(p.rejected.ids));
    }
    const saved = src.state(), next = src.next(4, 12);
    const again = new DpoSource(ps, { seed: 2, padId: 0 });
    again.restore(saved);
    assert.deepEqual(Array.from(again.next(4, 12).ids), Array.from(next.ids));
    throwsWith(() => src.next(3, 12), 'input_invalid', /--micro-batch: a DPO micro-batch holds whole pairs/, /expected an even number of rows/);
    // held-out batches: every pair once, the last batch partly empty
    const ev = dpoEvalSource(ps, { padId: 0 }).batches(4, 12, 10) as DpoBatch[];
    assert.deepEqual(ev.map((x) => x.pairs), [2, 2, 1]);
    assert.deepEqual(Array.from(ev[2].index), [4, -1]);
  });
});

// -----------------------------------------------------------------------------------------------

describe('kompresor dpo', () => {
  let modelDir: string;
  before(() => {
    modelDir = at('model');
    fs.mkdirSync(modelDir, { recursive: true });
    const tf = byteLevelTokenizer();
    fs.writeFileSync(path.join(modelDir, 'tokenizer.json'), JSON.stringify(tf.tokenizerJson));
    fs.writeFileSync(path.join(modelDir, 'tokenizer_config.json'), JSON.stringify(tf.tokenizerConfig));
    const raw = { architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: tf.vocabSize, hidden_size: 32, intermediate_size: 64,
      num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, hidden_act: 'silu', max_position_embeddings: 256, rms_norm_eps: 1e-5,
      tie_word_embeddings: true, eos_token_id: tf.specialIds['<|im_end|>'], torch_dtype: 'float32' };
    const m = new Decoder(normalizeConfig(raw, 'dpo-test'));
    initWeights(m, 4);
    saveModel(m, modelDir, raw);
    const rows = [];
    for (let a = 0; a < 6; a++) for (let b = 0; b < 4; b++) rows.push({ prompt: `${a} + ${b} = `, chosen: String(a + b), rejected: String(a + b + 3) });
    fs.writeFileSync(at('pairs.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  });

  const kompresor = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: ROOT });
  const common = ['--micro-batch', '8', '--seq-len', '16', '--lr', '1e-2', '--beta', '0.5', '--eval-every', '0', '--save-every', '5'];

  test('trains: the pairs\' accuracy rises; --precompute-ref is cached and read back on resume', () => {
    const r = kompresor('dpo', modelDir, '--data', at('pairs.jsonl'), '--eval-data', at('pairs.jsonl'), '--out', at('run'), '--steps', '10', '--precompute-ref', ...common);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /reference log-probs of 24 train pairs/);
    assert.ok(fs.existsSync(at('run/ref_logps.json')));
    const val = readMetrics(at('run/metrics.jsonl')).filter((l) => l.split === 'validation');
    assert.equal(val[0]['rewards/accuracies'], 0); // the policy is the reference: every reward is 0
    const last = val.at(-1)!;
    assert.ok((last['rewards/accuracies'] as number) > 0.6 && (last['rewards/margins'] as number) > 0 && (last.loss as number) < Math.log(2), JSON.stringify(last));
    assert.ok((val.at(-1)!['logps/accuracies'] as number) > (val[0]['logps/accuracies'] as number), JSON.stringify(val));
    assert.ok(fs.existsSync(at('run/report/rewards_accuracies.svg')));
    const again = kompresor('dpo', '--resume', at('run'), '--steps', '12');
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /reference log-probs of the train pairs read from/);
    assert.doesNotMatch(again.stderr, /reference log-probs of 24/);
  });

  test('bad rows and odd micro-batches: one line on stderr, exit 1', () => {
    fs.writeFileSync(at('bad.jsonl'), '{"prompt": "a", "chosen": "b", "rejected": "c"}\n\n{"prompt": "a", "chosen": "b"}\n');
    // the default --seq-len (1024) is beyond this model's 256 positions: refused before the data is read
    const long = kompresor('dpo', modelDir, '--data', at('bad.jsonl'), '--out', at('bad'), '--steps', '2');
    assert.equal(long.status, 1);
    assert.match(long.stderr, /^kompresor: --seq-len: training rows must fit the model's context; expected at most max_position_embeddings = 256, found 1024\./);
    const r = kompresor('dpo', modelDir, '--data', at('bad.jsonl'), '--out', at('bad'), '--steps', '2', '--seq-len', '64');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^kompresor: .*bad\.jsonl:3: the row must have a "rejected" field/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    const odd = kompresor('dpo', modelDir, '--data', at('pairs.jsonl'), '--out', at('odd'), '--steps', '2', '--micro-batch', '3', '--seq-len', '16');
    assert.equal(odd.status, 1);
    assert.match(odd.stderr, /--micro-batch: a DPO micro-batch holds whole pairs/);
  });
});
