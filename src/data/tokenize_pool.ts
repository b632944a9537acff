// Tokenising documents for `data prepare`: in this thread (workers = 0) or in a pool of
// node:worker_threads, each loading the tokenizer once. Results come back as one Uint32Array of
// ids (transferred, not copied) plus the length of each document; every document ends with EOS.
//
// TypeScript workers on Node 20: `new Worker('x.ts')` fails with ERR_UNKNOWN_FILE_EXTENSION even
// with execArgv ['--import', 'tsx'], so a worker is started from a tiny eval'd script that loads
// tokenize_worker.ts through tsx's tsImport (a compiled .js worker is started directly).
// Limits: a worker costs ~0.2 s to start plus the tokenizer's parse time (~0.5 s for a 150k vocab).
import { Worker } from 'node:worker_threads';
import { KompresorError, type ErrorFields } from '../errors.ts';
import type { LoadedTokenizer } from '../io/tokenizer.ts';

export interface EncodedBatch {
  /** The documents' ids back to back, each document followed by EOS. */
  tokens: Uint32Array<ArrayBuffer>;
  lengths: Uint32Array<ArrayBuffer>;
}

export interface Encoder {
  readonly workers: number;
  encode(texts: string[]): Promise<EncodedBatch>;
  close(): Promise<void>;
}

/**
 * Documents longer than this are tokenised in segments cut before a space that follows a word:
 * the tokenizer's memory grows ~70x with the length of one call (a 100 MB document took 7 GB),
 * and pre-tokenizers split there anyway, so the ids are those of the whole text.
 */
export const SEGMENT_CHARS = 1 << 20;

/** Tokenises with the tokenizer's own special tokens (BOS where the tokenizer adds one), then EOS. */
export function encodeDocs(tok: LoadedTokenizer, texts: string[], eosId: number, segmentChars = SEGMENT_CHARS): EncodedBatch {
  const docs = texts.map((t) => {
    const ids = encodeSegmented(tok, t, eosId, segmentChars);
    if (ids[ids.length - 1] !== eosId) ids.push(eosId); // post-processors that add EOS themselves keep one
    return ids;
  });
  const lengths = Uint32Array.from(docs, (d) => d.length);
  const tokens = new Uint32Array(lengths.reduce((a, n) => a + n, 0));
  let at = 0;
  for (const d of docs) { tokens.set(d, at); at += d.length; }
  return { tokens, lengths };
}

function encodeSegmented(tok: LoadedTokenizer, text: string, eosId: number, segmentChars: number): number[] {
  if (text.length <= segmentChars) return tok.encode(text);
  const ids: number[] = [];
  for (let start = 0; start < text.length;) {
    const end = cutPoint(text, start, segmentChars);
    // special tokens (BOS) on the first segment only; an EOS a post-processor adds comes at the end
    const piece = tok.encode(text.slice(start, end), { addSpecialTokens: start === 0 });
    if (start === 0 && end < text.length && piece[piece.length - 1] === eosId) piece.pop();
    for (const id of piece) ids.push(id);
    start = end;
  }
  return ids;
}

/** The end of the segment from `start`: before the last " " that follows a non-space, else a hard cut off a surrogate pair. */
function cutPoint(text: string, start: number, segmentChars: number): number {
  let end = start + segmentChars;
  if (end >= text.length) return text.length;
  for (let i = end; i > start; i--) {
    if (text[i] === ' ' && text[i - 1] !== ' ' && !/\s/.test(text[i - 1])) return i;
  }
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end--;
  return end;
}

export function inlineEncoder(tok: LoadedTokenizer, eosId: number): Encoder {
  return {
    workers: 0,
    encode: async (texts) => encodeDocs(tok, texts, eosId),
    close: async () => {},
  };
}

// ---------------------------------------------------------------------------------------------
// worker pool

export interface WorkerInit { tokenizerDir: string; eosId: number }
type Reply = { id: number; tokens: Uint32Array<ArrayBuffer>; lengths: Uint32Array<ArrayBuffer> } | { id: number; error: ErrorFields | string };
type Ready = { ready: true } | { ready: false; error: ErrorFields | string };
interface Pending { resolve: (b: EncodedBatch) => void; reject: (e: Error) => void }

const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './tokenize_worker.ts' : './tokenize_worker.js', import.meta.url);

function spawn(init: WorkerInit): Worker {
  if (WORKER_URL.pathname.endsWith('.js')) return new Worker(WORKER_URL, { workerData: init });
  const api = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(api)}).then((m) => m.tsImport(${JSON.stringify(WORKER_URL.href)}, ${JSON.stringify(import.meta.url)}))`;
  return new Worker(code, { eval: true, workerData: init });
}

/** An error a worker sent back as data, rebuilt on this side. */
export function reviveError(e: ErrorFields | string, where: string): Error {
  if (typeof e === 'string') return new KompresorError({ code: 'impl_error', where, rule: 'tokenising must not throw', found: e });
  return new KompresorError(e);
}

/** Starts n workers and waits until each has loaded the tokenizer. */
export async function startWorkerPool(n: number, init: WorkerInit): Promise<Encoder> {
  const workers = Array.from({ length: n }, () => spawn(init));
  const pending = workers.map(() => new Map<number, Pending>());
  const failAll = (w: number, err: Error) => { for (const p of pending[w].values()) p.reject(err); pending[w].clear(); };
  try {
    await Promise.all(workers.map((w, i) => waitReady(w, i)));
  } catch (e) {
    await Promise.all(workers.map((w) => w.terminate()));
    throw e;
  }
  workers.forEach((w, i) => {
    w.on('message', (m: Reply) => {
      const p = pending[i].get(m.id);
      if (!p) return;
      pending[i].delete(m.id);
      if ('error' in m) p.reject(reviveError(m.error, `tokenize worker ${i}`));
      else p.resolve({ tokens: m.tokens, lengths: m.lengths });
    });
    w.on('error', (e) => failAll(i, reviveError(e.stack ?? e.message, `tokenize worker ${i}`)));
    w.on('exit', (code) => failAll(i, reviveError(`exited with code ${code}`, `tokenize worker ${i}`)));
  });
  let nextId = 0;
  return {
    workers: n,
    encode(texts) {
      // the least busy worker; ties go to the lowest index
      let w = 0;
      for (let i = 1; i < n; i++) if (pending[i].size < pending[w].size) w = i;
      const id = nextId++;
      return new Promise<EncodedBatch>((resolve, reject) => {
        pending[w].set(id, { resolve, reject });
        workers[w].postMessage({ id, texts });
      });
    },
    async close() {
      for (const w of workers) w.removeAllListeners('exit');
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}

function waitReady(w: Worker, i: number): Promise<void> {
  return new Promise((resolve, reject) => {
    w.once('message', (m: Ready) => (m.ready ? resolve() : reject(reviveError(m.error, `tokenize worker ${i}`))));
    w.once('error', (e) => reject(reviveError(e.stack ?? e.message, `tokenize worker ${i}`)));
    w.once('exit', (code) => reject(reviveError(`exited with code ${code} while starting`, `tokenize worker ${i}`)));
  });
}
