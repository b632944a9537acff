// The quantization report: each GGUF file loaded in llama.cpp (node-llama-cpp, CPU) and measured
// on held-out text, beside an f16 reference of the same model:
//   bits_per_byte       −Σ ln p(token | prefix) / ln 2 / Σ UTF-8 bytes, over the documents of a
//                       JSONL file ("text" field): each document tokenized by the model folder's
//                       tokenizer (with BOS when it adds one), cut to --quality-tokens, and every
//                       token after the first scored; the bytes are those of the whole documents
//                       kept, so the figure compares types exactly (same tokens, same bytes)
//   vs_f16_percent      100 · (bits_per_byte / f16's − 1)
//   decode_tokens_per_s greedy tokens per second after a 16-token prompt, batch 1 (median of 3)
// Logits come from llama.cpp itself (its own kernels, its F16 KV cache by default): this is what a
// user of the file gets, not our engine's figure.
import fs from 'node:fs';
import { loadTokenizer } from '../io/tokenizer.ts';
import { KompresorError } from '../errors.ts';
import { importLlamaCpp } from './bench.ts';

export interface QualityFile {
  dtype: string;
  /** Whether the calibration's input mean squares weighted the scales (block types only). */
  weighted: boolean;
  path: string;
  bytes: number;
  bits_per_weight: number;
}

export interface QualityRow extends Omit<QualityFile, 'path'> {
  /** Null when the file was a temporary one (the f16 reference, an unweighted twin). */
  file: string | null;
  bits_per_byte: number;
  vs_f16_percent: number;
  decode_tokens_per_s: number;
}

export interface QualityReport {
  text: string;
  documents: number;
  tokens: number;
  bytes: number;
  threads: number;
  backend: string;
  rows: QualityRow[];
}

export interface QualityOptions {
  /** Documents used (the first N of the file). */
  documents: number;
  /** Tokens per document at most (its context). */
  maxTokens: number;
  threads: number;
  /** Paths that stay on disk (reported by name); others are reported as file null. */
  kept: ReadonlySet<string>;
}

type Token = import('node-llama-cpp').Token;

/** Reads a JSONL file's "text" fields, first `n`, as token ids with the model's tokenizer. */
function heldOut(textFile: string, modelDir: string, n: number, maxTokens: number): { ids: number[][]; bytes: number } {
  if (!fs.existsSync(textFile)) {
    throw new KompresorError({ code: 'file_not_found', where: textFile, rule: '--quality-text must be a JSONL file with a "text" field per line', found: 'no such file' });
  }
  const tok = loadTokenizer(modelDir);
  const ids: number[][] = [];
  let bytes = 0;
  for (const [i, line] of fs.readFileSync(textFile, 'utf8').split('\n').entries()) {
    if (ids.length >= n || line.trim() === '') continue;
    let text: unknown;
    try { text = (JSON.parse(line) as { text?: unknown }).text; } catch { text = undefined; }
    if (typeof text !== 'string') {
      throw new KompresorError({ code: 'input_invalid', where: `${textFile}:${i + 1}`, rule: 'each line must be a JSON object with a string "text"', found: line.slice(0, 80) });
    }
    const t = tok.encode(text).slice(0, maxTokens);
    if (t.length < 2) continue;
    ids.push(t);
    bytes += Buffer.byteLength(tok.decode(t, { skipSpecialTokens: true }), 'utf8');
  }
  if (ids.length === 0) throw new KompresorError({ code: 'input_invalid', where: textFile, rule: '--quality-text needs documents of at least two tokens', found: 'none' });
  return { ids, bytes };
}

/**
 * Σ −ln p over every token after the first, per document, from llama.cpp's logits: for each
 * position only the next token's logit, the largest logit and Σ exp(logit − max) come back
 * (node-llama-cpp's logit filter with includeTop 1, and totalLogitWeight; its includeMax adds
 * nothing in 3.22.1), so ln p = logit − max − ln Σ without copying the whole vocabulary into
 * JavaScript at every position. Checked against the full logits on a small model.
 */
async function nats(model: import('node-llama-cpp').LlamaModel, docs: number[][], threads: number, maxTokens: number): Promise<number> {
  const ctx = await model.createContext({ contextSize: maxTokens + 8, batchSize: maxTokens + 8, threads, flashAttention: false });
  try {
    let total = 0;
    for (const d of docs) {
      const seq = ctx.getSequence();
      const res = await seq.controlledEvaluate(d.slice(0, -1).map((t, i) =>
        [t as Token, { generateNext: { logits: { filter: { tokens: [d[i + 1] as Token], includeTop: 1 } }, totalLogitWeight: true } }]));
      res.forEach((r, t) => {
        const logits = r?.next?.logits, weight = r?.next?.totalLogitWeight;
        const target = logits?.get(d[t + 1] as Token);
        if (!logits || weight === undefined || target === undefined) {
          throw new KompresorError({ code: 'impl_error', where: 'gguf_quality', rule: 'llama.cpp returns the filtered logits and their total weight', found: `none at ${t}` });
        }
        total += Math.max(...logits.values()) + Math.log(weight) - target;
      });
      await seq.clearHistory();
      seq.dispose();
    }
    return total;
  } finally {
    await ctx.dispose();
  }
}

/** Median greedy decode speed over three runs of 64 tokens after a 16-token prompt. */
async function decodeSpeed(model: import('node-llama-cpp').LlamaModel, prompt: number[], threads: number): Promise<number> {
  const ctx = await model.createContext({ contextSize: 96, threads, flashAttention: false });
  try {
    const seq = ctx.getSequence();
    const runs: number[] = [];
    for (let r = 0; r < 4; r++) {
      await seq.clearHistory();
      await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, -1) as Token[]);
      const t0 = performance.now();
      const it = seq.evaluate([prompt[prompt.length - 1] as Token], { temperature: 0, yieldEogToken: true });
      for (let k = 0; k < 64; k++) await it.next();
      await it.return();
      if (r > 0) runs.push(64 / ((performance.now() - t0) / 1000)); // run 0 warms up
    }
    return runs.sort((a, b) => a - b)[1];
  } finally {
    await ctx.dispose();
  }
}

/** Measures every file; `files[0]` must be the f16 reference. */
export async function measureQuality(files: QualityFile[], modelDir: string, textFile: string, o: QualityOptions): Promise<QualityReport> {
  const { ids, bytes } = heldOut(textFile, modelDir, o.documents, o.maxTokens);
  const prompt = Array.from({ length: 16 }, (_, i) => ids[0][i % ids[0].length]);
  const lib = await importLlamaCpp();
  const llama = await lib.getLlama({ gpu: false, build: 'never', logLevel: lib.LlamaLogLevel.error });
  try {
    const rows: QualityRow[] = [];
    for (const f of files) {
      const model = await llama.loadModel({ modelPath: f.path, gpuLayers: 0 });
      try {
        const bpb = (await nats(model, ids, o.threads, o.maxTokens)) / Math.LN2 / bytes;
        const { path, ...rest } = f;
        rows.push({ ...rest, file: o.kept.has(path) ? path : null, bits_per_byte: bpb, vs_f16_percent: 0,
          decode_tokens_per_s: await decodeSpeed(model, prompt, o.threads) });
      } finally {
        await model.dispose();
      }
    }
    for (const r of rows) r.vs_f16_percent = 100 * (r.bits_per_byte / rows[0].bits_per_byte - 1);
    return { text: textFile, documents: ids.length, tokens: ids.reduce((s, d) => s + d.length, 0), bytes, threads: o.threads,
      backend: `llama.cpp ${llama.llamaCppRelease.release} (${llama.buildType}, CPU)`, rows };
  } finally {
    await llama.dispose();
  }
}
