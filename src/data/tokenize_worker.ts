// Entry point of a tokenising worker thread (started by tokenize_pool.ts): loads the tokenizer
// once, says it is ready, then answers {id, texts} with {id, tokens, lengths} (buffers
// transferred) or {id, error} where error is a KompresorError's fields (errors are data).
import { parentPort, workerData } from 'node:worker_threads';
import { KompresorError, type ErrorFields } from '../errors.ts';
import { loadTokenizer, type LoadedTokenizer } from '../io/tokenizer.ts';
import { encodeDocs, type WorkerInit } from './tokenize_pool.ts';

const port = parentPort!;
const init = workerData as WorkerInit;

function asData(e: unknown): ErrorFields | string {
  if (e instanceof KompresorError) return { code: e.code, where: e.where, rule: e.rule, expected: e.expected, found: e.found, hint: e.hint };
  return e instanceof Error ? e.stack ?? e.message : String(e);
}

let tok: LoadedTokenizer | null = null;
try {
  tok = loadTokenizer(init.tokenizerDir);
  port.postMessage({ ready: true });
} catch (e) {
  port.postMessage({ ready: false, error: asData(e) });
}

port.on('message', (m: { id: number; texts: string[] }) => {
  try {
    const r = encodeDocs(tok!, m.texts, init.eosId);
    port.postMessage({ id: m.id, tokens: r.tokens, lengths: r.lengths }, [r.tokens.buffer, r.lengths.buffer]);
  } catch (e) {
    port.postMessage({ id: m.id, error: asData(e) });
  }
});
