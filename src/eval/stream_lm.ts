// Log-likelihood and perplexity requests on a model whose weights do not fit --max-memory: the
// items are packed into exactly the batches the in-memory engine makes (requests.ts packItems),
// and the batches go through the layer-streamed forward (src/model/stream_forward.ts) in groups
// whose hidden states fit the budget; each batch's final-norm output is scored by the same
// scoreRows, with the lm_head of StreamHead. With the lm_head resident the answers are the
// in-memory ones bit for bit; read by vocabulary blocks, equal to float32 rounding.
// generate_until needs a KV cache of every layer at every step, so it is refused here.
import type { Checkpoint } from '../io/checkpoint.ts';
import type { ModelConfig } from '../io/hf_config.ts';
import type { LoadedTokenizer } from '../io/tokenizer.ts';
import { planForward, streamForward, groupsOf, StreamHead, type ForwardPlan } from '../model/stream_forward.ts';
import { KompresorError } from '../errors.ts';
import {
  TokenLM, packItems, packedBatch, scoreRows, HEAD_ROWS,
  type EngineLMOptions, type GenerateRequest, type LoglikelihoodResult, type ScoreItem,
} from './requests.ts';

export const STREAM_HINT = 'raise --max-memory, or lower --batch-tokens or --max-length';

/**
 * The plan for batches of at most `batchTokens` tokens (eval's batches hold at most
 * max(--batch-tokens, one item of --max-length) tokens); refuses a budget too small for one.
 */
export function planEvalStream(cfg: ModelConfig, batchTokens: number, totalTokens: number, maxMemory: number): ForwardPlan {
  return planForward(cfg, {
    batchTokens, totalTokens: Math.max(batchTokens, totalTokens), headRows: HEAD_ROWS, maxMemory, hint: STREAM_HINT,
    extraBytes: HEAD_ROWS * cfg.hiddenSize * 4, // scoreRows' gathered rows
  });
}

/** scoreItems (requests.ts) on the layer-streamed forward. `done` in the caller's items. */
export function scoreItemsStreamed(ck: Checkpoint, items: ScoreItem[], batchTokens: number, maxMemory: number,
  done?: (n: number) => void): LoglikelihoodResult[] {
  const p = packItems(items, batchTokens);
  if (p.unique.length === 0) return [];
  const cfg = ck.config, C = cfg.hiddenSize, V = cfg.vocabSize, L = cfg.numLayers;
  const batches = [];
  for (let r0 = 0; r0 < p.rows.length; r0 += p.B) batches.push(packedBatch(p, r0));
  const plan = planEvalStream(cfg, p.B * p.T, p.rows.length * p.T, maxMemory);
  const head = new StreamHead(ck, plan.head!);
  const groups = [...groupsOf(batches, plan.groupTokens)];
  const res = new Array<LoglikelihoodResult>(p.unique.length);
  let layers = 0;
  streamForward(ck, groups, {
    onOutput: (_b, n, lnf) => scoreRows(lnf, C, V, (out, x, rows) => head.logits(out, x, rows), plan.head!.chunkRows, p, n * p.B, res),
    onLayer: () => done?.(Math.floor(++layers / (groups.length * L) * items.length)),
  });
  return p.slot.map((s) => res[s]);
}

/** An EvalLM over a checkpoint, layer-streamed: log-likelihood and perplexity requests only. */
export class StreamLM extends TokenLM {
  constructor(readonly ck: Checkpoint, tok: LoadedTokenizer, o: EngineLMOptions, readonly maxMemory: number) { super(tok, o); }

  protected score(items: ScoreItem[], done?: (n: number) => void): LoglikelihoodResult[] {
    return scoreItemsStreamed(this.ck, items, this.o.batchTokens, this.maxMemory, done);
  }

  generateUntil(_reqs: GenerateRequest[]): string[] {
    throw new KompresorError({ code: 'input_invalid', where: 'eval --stream', rule: 'generate_until tasks decode token by token with every layer\'s KV cache, so they need the model in memory',
      found: 'a generate_until task', hint: 'leave generate_until tasks out of --tasks, or raise --max-memory so the model loads' });
  }
}
