// A user's reward module runs in its own worker thread, never on the trainer's thread.
//
// Why: a reward is arbitrary code. On the trainer's thread, one that never returns (`for (;;) {}`)
// starves the SIGINT/SIGTERM handlers (JavaScript callbacks on that same thread), and one whose
// promise never settles empties the event loop, so Node exits 13 without a word (fuzz report D2,
// D6). In a worker, the trainer's thread only waits on a message, with a deadline:
//   - every call has --reward-timeout seconds (default 30; loading at least 10); past it the worker is
//     terminated (V8 stops even a busy loop) and the run stops with one line naming the module;
//   - SIGINT/SIGTERM reach the trainer, which calls stopRewardWorkers(): pending calls end at once
//     with the signal's name, so the run stops with its last checkpoint intact.
// The worker gets the same arguments (structured clones: prompts, completions, JSONL rows, info)
// and sends back what the function returned; rewards.ts checks it as before. A value that cannot
// be copied (a function, a class instance with methods) comes back described, not as itself.
import { Worker } from 'node:worker_threads';
import nodePath from 'node:path';
import { pathToFileURL } from 'node:url';

export const DEFAULT_REWARD_TIMEOUT_S = 30;
const MIN_LOAD_MS = 10_000;

/** A call that did not return: timed out or stopped by a signal (rewards.ts turns it into one line). */
export class RewardStopped extends Error {
  constructor(readonly rule: string, readonly found: string) { super(`${rule}; ${found}`); }
}

/** The module could not be loaded, or has no default function (rule/found/hint for one line). */
export interface LoadFailure { rule: string; found: string; hint?: string }

type Reply =
  | { type: 'ready' } | { type: 'load-failed'; failure: LoadFailure }
  | { type: 'result'; id: number; value: unknown } | { type: 'threw'; id: number; message: string };

interface Pending { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }

// the worker's source: plain JavaScript, so no TypeScript loader is needed to start it; the
// module itself goes through tsx's tsImport (TypeScript) or import() (JavaScript)
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { api, file, parent } = workerData;
const summary = (e) => {
  const text = e instanceof Error ? (e.name === 'Error' ? '' : e.name + ': ') + e.message : String(e);
  const lines = text.split('\\n').map((l) => l.trim()).filter((l) => l.length > 0);
  // esbuild's "Transform failed with 1 error:" says what failed on the next line
  return lines.length > 1 && lines[0].endsWith(':') ? lines[0] + ' ' + lines[1] : (lines[0] ?? '');
};
const describe = (v) => v === null ? 'null' : Array.isArray(v) ? 'an array of ' + v.length : typeof v === 'object' ? 'an object' : typeof v;
(async () => {
  let mod;
  try {
    mod = /\\.[cm]?ts$/.test(file) ? await (await import(api)).tsImport(file, parent) : await import(file);
    if (mod.default && typeof mod.default === 'object' && mod.default.__esModule === true) mod = mod.default;
  } catch (e) {
    parentPort.postMessage({ type: 'load-failed', failure: { rule: 'the reward module must load', found: summary(e),
      hint: 'fix the module (run it with \`node --import tsx\` to see the full error)' } });
    return;
  }
  if (typeof mod.default !== 'function') {
    parentPort.postMessage({ type: 'load-failed', failure: { rule: 'the reward module must export a default function (prompts, completions, rows) => number[]',
      found: mod.default === undefined ? 'no default export' : 'a default export of type ' + typeof mod.default,
      hint: 'export default function reward(prompts: string[], completions: string[], rows: Record<string, unknown>[]): number[] { ... }' } });
    return;
  }
  const fn = mod.default;
  parentPort.on('message', async ({ id, args }) => {
    let value;
    try { value = await fn(...args); } catch (e) { parentPort.postMessage({ type: 'threw', id, message: summary(e) }); return; }
    try { parentPort.postMessage({ type: 'result', id, value }); } catch { parentPort.postMessage({ type: 'result', id, value: { uncopyable: describe(value) } }); }
  });
  parentPort.postMessage({ type: 'ready' });
})();
`;

const live = new Set<RewardWorker>();

/** Ends every pending reward call at once (a stop signal arrived); their workers are terminated. */
export function stopRewardWorkers(reason: string): void {
  for (const w of [...live]) w.kill(new RewardStopped(`the reward function was stopped by ${reason}`, 'the call had not returned'));
}

class RewardWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private dead: Error | null = null;
  private loaded: Pending | null = null;

  constructor(file: string, private readonly timeoutMs: number) {
    const workerData = { api: import.meta.resolve('tsx/esm/api'), file: pathToFileURL(file).href, parent: import.meta.url };
    // stdout/stderr stay the process's own: a reward may print
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData });
    this.worker.on('message', (m: Reply) => this.onMessage(m));
    this.worker.on('error', (e) => this.kill(new Error(e.message.split('\n')[0])));
    this.worker.on('exit', (code) => this.kill(new RewardStopped('the reward worker must keep running', `it exited with code ${code}`)));
    // only a pending call (its deadline timer) keeps the process alive; after the listeners,
    // since adding a 'message' listener refs the worker's port again
    this.worker.unref();
    live.add(this);
  }

  /** Resolves when the module is loaded and has a default function; else a LoadFailure. */
  ready(): Promise<LoadFailure | null> {
    return new Promise((resolve, reject) => {
      // starting the worker and compiling TypeScript take ~1-2 s under load: never less than 10 s
      const timer = setTimeout(() => this.kill(this.timeout('load')), Math.max(this.timeoutMs, MIN_LOAD_MS));
      this.loaded = { resolve: resolve as (v: unknown) => void, reject, timer };
    });
  }

  call(args: unknown[]): Promise<unknown> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.kill(this.timeout('return')), this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.worker.postMessage({ id, args });
    });
  }

  kill(err: Error): void {
    if (this.dead) return;
    this.dead = err;
    live.delete(this);
    for (const p of [...this.pending.values(), ...(this.loaded ? [this.loaded] : [])]) { clearTimeout(p.timer); p.reject(err); }
    this.pending.clear();
    this.loaded = null;
    void this.worker.terminate();
  }

  private timeout(what: 'load' | 'return'): RewardStopped {
    const s = (what === 'load' ? Math.max(this.timeoutMs, MIN_LOAD_MS) : this.timeoutMs) / 1000;
    return new RewardStopped(`the reward function must ${what} within --reward-timeout ${s} s`, `no result after ${s} s; its worker was stopped`);
  }

  private onMessage(m: Reply): void {
    if (m.type === 'ready' || m.type === 'load-failed') {
      const p = this.loaded;
      this.loaded = null;
      if (!p) return;
      clearTimeout(p.timer);
      p.resolve(m.type === 'ready' ? null : m.failure);
      if (m.type === 'load-failed') this.kill(new Error('not loaded'));
      return;
    }
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.type === 'threw') p.reject(new Error(m.message));
    else p.resolve(m.value);
  }
}

/**
 * Loads `file` in a new worker. Returns the function (calls go to the worker) or why it failed.
 * The deadline applies to the load too: a module whose top level never ends is stopped.
 */
export async function loadSandboxedReward(file: string, timeoutS: number)
  : Promise<{ fn: (...args: unknown[]) => Promise<unknown> } | { failure: LoadFailure }> {
  const w = new RewardWorker(nodePath.resolve(file), timeoutS * 1000);
  const failure = await w.ready();
  if (failure) return { failure };
  return { fn: (...args: unknown[]) => w.call(args) };
}
