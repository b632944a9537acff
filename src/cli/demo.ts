// `npm run demo`: what the engine can do end to end today, on a model the project makes itself.
//   1. a byte-level tokenizer and a small Llama-architecture model (GQA, tied embeddings),
//   2. trained from scratch on English licence texts every Debian system ships (base-files),
//   3. saved as a standard Hugging Face checkpoint, inspected, and used to generate text.
// Every number printed is computed in this run. Options: --steps N, --out DIR, --json.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { byteLevelTokenizer } from '../io/byte_tokenizer.ts';
import { normalizeConfig } from '../io/hf_config.ts';
import { Decoder } from '../model/decoder.ts';
import { initWeights } from '../model/init.ts';
import { saveModel } from '../model/load.ts';
import { pretrain, evalLoss } from '../train/pretrain.ts';
import { progressBar } from './progress.ts';
import { inspectCommand, formatInspect, generateCommand } from './engine_commands.ts';
import { loadTokenizer } from '../io/tokenizer.ts';
import { nativeKernelNames } from '../tensor/ops.ts';

const CORPUS = ['GPL-3', 'GPL-2', 'LGPL-2.1', 'LGPL-3', 'Apache-2.0', 'MPL-2.0', 'GFDL-1.3', 'Artistic']
  .map((f) => join('/usr/share/common-licenses', f));

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

async function main(): Promise<void> {
  const out = arg('--out', 'runs/demo');
  const steps = Number(arg('--steps', '600'));
  const json = process.argv.includes('--json');
  const modelDir = join(out, 'model');
  mkdirSync(modelDir, { recursive: true });
  const say = (s: string) => { if (!json) console.log(s); };
  say(`kernels: ${nativeKernelNames.length ? 'native (' + nativeKernelNames.length + ' kernels)' : 'TypeScript reference (addon not built)'}`);

  // 1. tokenizer and corpus
  const tf = byteLevelTokenizer();
  writeFileSync(join(modelDir, 'tokenizer.json'), JSON.stringify(tf.tokenizerJson));
  writeFileSync(join(modelDir, 'tokenizer_config.json'), JSON.stringify(tf.tokenizerConfig, null, 2));
  const tok = loadTokenizer(modelDir);
  const text = CORPUS.map((f) => readFileSync(f, 'utf8')).join('\n\n');
  const all = Int32Array.from(tok.encode(text, { addSpecialTokens: false }));
  const split = Math.floor(all.length * 0.95);
  const train = all.subarray(0, split), valid = all.subarray(split);
  say(`corpus: ${CORPUS.length} licence texts from Debian base-files, ${all.length.toLocaleString()} byte tokens (${valid.length.toLocaleString()} held out)`);

  // 2. model
  const raw = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: tf.vocabSize, hidden_size: 192,
    intermediate_size: 512, num_hidden_layers: 4, num_attention_heads: 6, num_key_value_heads: 2,
    head_dim: 32, hidden_act: 'silu', max_position_embeddings: 1024, rms_norm_eps: 1e-5, rope_theta: 10000,
    tie_word_embeddings: true, attention_bias: false, torch_dtype: 'float32',
    bos_token_id: null, eos_token_id: tf.specialIds['<|im_end|>'], pad_token_id: tf.specialIds['<|endoftext|>'],
  };
  const model = new Decoder(normalizeConfig(raw, 'demo config'));
  initWeights(model, 1234);
  const B = 16, T = 128;
  const before = evalLoss(model, valid, 4, T);
  const bar = json ? null : progressBar('train', steps, 'steps', 'loss {loss}');
  const res = pretrain(model, train, {
    steps, batchSize: B, seqLen: T, lr: 3e-3, minLr: 3e-4, warmup: 30, seed: 1,
    onStep: (s) => bar?.update(s.step, { loss: s.loss.toFixed(3) }),
  });
  bar?.stop();
  const after = evalLoss(model, valid, 4, T);
  const tokensPerS = (steps * B * T) / res.seconds;
  say(`trained ${steps} steps x ${B}x${T} tokens in ${res.seconds.toFixed(1)} s (${tokensPerS.toFixed(0)} tokens/s); held-out loss ${before.toFixed(3)} -> ${after.toFixed(3)} nats/byte`);

  // 3. save, inspect, generate
  saveModel(model, modelDir, raw);
  writeFileSync(join(modelDir, 'generation_config.json'), JSON.stringify({ eos_token_id: raw.eos_token_id, pad_token_id: raw.pad_token_id }, null, 2));
  const info = await inspectCommand(modelDir);
  say('\n' + formatInspect(info) + '\n');
  const prompt = 'This License applies to';
  const greedy = await generateCommand(modelDir, { prompt, chat: false, maxNewTokens: 120, sampling: { temperature: 0, topK: 0, topP: 1, minP: 0 }, seed: 0 });
  const sampled = await generateCommand(modelDir, { prompt, chat: false, maxNewTokens: 120, sampling: { temperature: 0.7, topK: 40, topP: 0.95, minP: 0 }, seed: 7 });
  say(`greedy  > ${prompt}${greedy.completion}\n`);
  say(`sampled > ${prompt}${sampled.completion}\n`);
  say(`decode ${greedy.decode_tokens_per_s.toFixed(0)} tokens/s (batch 1, KV cache); checkpoint in ${modelDir} (loads in transformers as LlamaForCausalLM)`);
  const report = {
    model_dir: modelDir, total_params: info.total_params, steps, train_tokens_per_s: tokensPerS,
    valid_loss_before: before, valid_loss_after: after, greedy: greedy.completion, sampled: sampled.completion,
    decode_tokens_per_s: greedy.decode_tokens_per_s,
  };
  writeFileSync(join(out, 'demo.json'), JSON.stringify(report, null, 2));
  if (json) console.log(JSON.stringify(report, null, 2));
}

await main();
