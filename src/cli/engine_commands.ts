// The engine's commands: inspect, logits, grads, generate. Each is a plain async function that
// returns what it computed (for library use and tests); main.ts wires them to the CLI.
import { loadModel, checkCheckpoint, type WeightsOption } from '../model/load.ts';
import { openCheckpoint } from '../io/checkpoint.ts';
import { buildLayout } from '../model/parameters.ts';
import { countParams, type ParamCounts } from '../model/counts.ts';
import { batchFromRows, checkRowIds } from '../model/batch.ts';
import { generate } from '../model/generate.ts';
import type { SamplingOptions } from '../model/sampling.ts';
import { writeSafetensors } from '../io/safetensors.ts';
import { loadTokenizer } from '../io/tokenizer.ts';
import { nativeKernelNames } from '../tensor/ops.ts';
import { KompresorError } from '../errors.ts';

export interface InspectResult {
  model_dir: string;
  architecture: string;
  config: Record<string, unknown>;
  params: Omit<ParamCounts, 'total'>;
  total_params: number;
  /** Without an untied lm_head: the convention of the seed's 11.04B -> 7.35B (equal to total_params when tied). */
  total_params_no_lm_head: number;
  native_kernels: string[];
}

export async function inspectCommand(dir: string): Promise<InspectResult> {
  // headers only: the counts need the layout and a check of the tensors, not their values (an 11B
  // checkpoint is inspected without reading 22 GB)
  const ck = openCheckpoint(dir), layout = buildLayout(ck.config);
  checkCheckpoint(ck, layout);
  const { total, ...params } = countParams(layout);
  const c = ck.config, config = ck.rawConfig;
  return {
    model_dir: dir,
    architecture: c.architecture,
    config: {
      vocab_size: c.vocabSize, hidden_size: c.hiddenSize, num_hidden_layers: c.numLayers,
      num_attention_heads: c.numHeads, num_key_value_heads: c.numKvHeads, head_dim: c.headDim,
      intermediate_size: c.intermediateSize, tie_word_embeddings: c.tieWordEmbeddings,
      rope_theta: c.ropeTheta, rope_scaling: c.ropeScaling, sliding_window: c.slidingWindow || null,
      qkv_bias: c.qkvBias, torch_dtype: (config as Record<string, unknown>).torch_dtype ?? null,
    },
    params,
    total_params: total,
    total_params_no_lm_head: total - params.lm_head,
    native_kernels: nativeKernelNames,
  };
}

export function formatInspect(r: InspectResult): string {
  const fmt = (n: number) => n.toLocaleString('en-US');
  const pct = (n: number) => `${((100 * n) / r.total_params).toFixed(1)}%`;
  const lines = [`${r.model_dir}: ${r.architecture}`];
  for (const [k, v] of Object.entries(r.config)) lines.push(`  ${k.padEnd(22)} ${JSON.stringify(v)}`);
  lines.push('  parameters:');
  for (const [k, v] of Object.entries(r.params)) lines.push(`    ${k.padEnd(12)} ${fmt(v).padStart(16)}  ${pct(v)}`);
  lines.push(`    ${'total'.padEnd(12)} ${fmt(r.total_params).padStart(16)}`);
  lines.push(`    ${'without lm_head'.padEnd(12)} ${fmt(r.total_params_no_lm_head).padStart(13)}  (the seed's convention: 11.04B -> 7.35B)`);
  lines.push(`  native kernels: ${r.native_kernels.length ? r.native_kernels.join(', ') : 'none (TypeScript reference kernels)'}`);
  return lines.join('\n');
}

/** Logits for equal-length rows of ids: {shape: [B,T,V], logits: nested [B][T][V] float32 values}. */
export async function logitsCommand(dir: string, rows: number[][], weights: WeightsOption = 'auto'): Promise<{ shape: number[]; logits: number[][][] }> {
  const { model } = await loadModel(dir, { weights });
  checkRowIds(rows, model.cfg.vocabSize, '--ids');
  const batch = batchFromRows(rows, '--ids');
  const { B, T } = batch, V = model.cfg.vocabSize;
  const logits: number[][][] = Array.from({ length: B }, () => []);
  model.logits(batch, (r0, n, chunk) => {
    for (let i = 0; i < n; i++) logits[Math.floor((r0 + i) / T)].push(Array.from(chunk.subarray(i * V, (i + 1) * V)));
  });
  return { shape: [B, T, V], logits };
}

/** Gradients of the mean next-token cross-entropy w.r.t. every parameter, under HF names. */
export async function gradsCommand(dir: string, rows: number[][], out: string): Promise<{ loss: number; tensors: number }> {
  const { model } = await loadModel(dir);
  checkRowIds(rows, model.cfg.vocabSize, '--ids');
  const batch = batchFromRows(rows, '--ids');
  if (batch.T < 2) {
    throw new KompresorError({ code: 'input_invalid', where: '--ids', rule: 'next-token loss needs rows of at least 2 tokens', found: `${batch.T}` });
  }
  model.zeroGrad();
  const loss = model.lossAndBackward(batch);
  const g = model.grads!;
  const tensors = model.layout.slots.map((s) => ({ name: s.name, dtype: 'F32' as const, shape: s.shape, data: g.view(s) }));
  writeSafetensors(out, tensors, { loss: String(loss) });
  return { loss, tensors: tensors.length };
}

export interface GenerateCommandOptions {
  prompt: string;
  chat: boolean;
  /** How the weights are held (default 'auto': as stored). */
  weights?: WeightsOption;
  maxNewTokens: number;
  sampling: SamplingOptions;
  seed: number;
  onText?: (piece: string) => void;
}

export async function generateCommand(dir: string, o: GenerateCommandOptions) {
  const { model } = await loadModel(dir, { weights: o.weights ?? 'auto' });
  const tok = await loadTokenizer(dir);
  const text = o.chat ? tok.applyChatTemplate([{ role: 'user', content: o.prompt }], { addGenerationPrompt: true }) : o.prompt;
  const ids = tok.encode(text, { addSpecialTokens: !o.chat });
  let shown = '';
  const produced: number[] = [];
  const res = generate(model, [ids], {
    maxNewTokens: o.maxNewTokens, sampling: o.sampling, seed: o.seed,
    eosTokenIds: tok.eosTokenIds.length ? tok.eosTokenIds : model.cfg.eosTokenIds,
    onStep: (t) => {
      if (t[0] < 0 || !o.onText) return;
      produced.push(t[0]);
      // a byte-level token may end inside a UTF-8 character, which decodes to U+FFFD until the
      // next token completes it: hold such a tail back instead of printing the placeholder
      const now = tok.decode(produced, { skipSpecialTokens: true }).replace(/\uFFFD+$/, '');
      if (now.length > shown.length && now.startsWith(shown)) {
        o.onText(now.slice(shown.length));
        shown = now;
      }
    },
  });
  const completion = tok.decode(res.tokens[0], { skipSpecialTokens: true });
  // what was held back (an incomplete character at the very end stays a U+FFFD)
  if (o.onText && completion.length > shown.length && completion.startsWith(shown)) o.onText(completion.slice(shown.length));
  return {
    prompt: text, completion, prompt_tokens: ids.length, new_tokens: res.tokens[0].length,
    prefill_tokens_per_s: ids.length / res.prefillSeconds,
    decode_tokens_per_s: res.decodeSteps > 0 ? res.decodeSteps / res.decodeSeconds : 0,
  };
}
