// Jinja templates (chat templates, eval tasks' doc_to_*) come with downloaded models and tasks,
// so they render in a worker thread with limits, never on the main thread:
//   - time: TEMPLATE_TIMEOUT_MS per render; past it the worker is terminated (V8 stops any loop);
//   - memory: the worker's heap is capped (TEMPLATE_HEAP_MB); running out ends the worker, not the
//     process (a 300M-iteration loop reached 2.4 GB and a fatal V8 error on the main thread);
//   - size: an output above TEMPLATE_MAX_CHARS is refused.
// @huggingface/jinja already blocks code execution (no attribute access to constructors); this
// adds the limits it lacks (fuzz report D5). Rendering stays synchronous for the callers: the
// main thread posts the job and blocks on Atomics.wait until the worker answers or time is up.
import { Worker, MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';

export const TEMPLATE_TIMEOUT_MS = 10_000;
export const TEMPLATE_HEAP_MB = 256;
export const TEMPLATE_MAX_CHARS = 16 * 2 ** 20;

const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { port, flag: shared, jinja, maxChars } = workerData;
const flag = new Int32Array(shared);
const done = (reply) => { port.postMessage(reply); Atomics.store(flag, 0, 1); Atomics.notify(flag, 0); };
import(jinja).then(({ Template }) => {
  const cache = new Map();
  port.on('message', ({ text, vars }) => {
    try {
      let t = cache.get(text);
      if (!t) { t = new Template(text); cache.set(text, t); }
      const out = t.render(vars);
      done(out.length > maxChars ? { tooLong: out.length } : { out });
    } catch (e) {
      done({ error: e instanceof Error ? e.message : String(e) });
    }
  });
  done({ ready: true });
}, (e) => done({ error: String(e) }));
`;

export type RenderResult = { out: string } | { error: string };

interface Sandbox { worker: Worker; port: MessagePort; flag: Int32Array }

let sandbox: Sandbox | null = null;

function start(): Sandbox {
  const { port1, port2 } = new MessageChannel();
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(WORKER_SOURCE, {
    eval: true, transferList: [port2], resourceLimits: { maxOldGenerationSizeMb: TEMPLATE_HEAP_MB },
    workerData: { port: port2, flag: flag.buffer, jinja: import.meta.resolve('@huggingface/jinja'), maxChars: TEMPLATE_MAX_CHARS },
  });
  worker.on('error', () => { /* an out-of-memory end: the pending render times out or finds no reply */ });
  worker.unref();
  port1.unref();
  const s = { worker, port: port1, flag };
  const ready = wait(s, TEMPLATE_TIMEOUT_MS);
  if (!ready || !('ready' in ready)) { void worker.terminate(); throw new Error(`the template worker did not start: ${ready ? JSON.stringify(ready) : 'timed out'}`); }
  return s;
}

/** Blocks until the worker answers (or the time is up: null). */
function wait(s: Sandbox, ms: number): Record<string, unknown> | null {
  const t0 = Date.now();
  for (;;) {
    const left = ms - (Date.now() - t0);
    if (left <= 0) return null;
    Atomics.wait(s.flag, 0, 0, Math.min(left, 50));
    const m = receiveMessageOnPort(s.port);
    if (m) return m.message as Record<string, unknown>;
    // a worker that died (heap limit) never answers: stop waiting at once
    if (s.worker.threadId === -1) return null;
  }
}

/**
 * Renders `text` with `vars` (structured-cloned) within the limits. Returns the output, or why it
 * failed in words for a one-line error; the caller names the template.
 */
export function renderSandboxed(text: string, vars: Record<string, unknown>): RenderResult {
  sandbox ??= start();
  const s = sandbox;
  Atomics.store(s.flag, 0, 0);
  s.port.postMessage({ text, vars });
  const reply = wait(s, TEMPLATE_TIMEOUT_MS);
  if (reply === null) {
    void s.worker.terminate();
    sandbox = null;
    return { error: `rendering took over ${TEMPLATE_TIMEOUT_MS / 1000} s or ${TEMPLATE_HEAP_MB} MB (the render was stopped)` };
  }
  if (typeof reply.out === 'string') return { out: reply.out };
  if (typeof reply.tooLong === 'number') return { error: `the output has ${reply.tooLong} characters, more than the limit of ${TEMPLATE_MAX_CHARS}` };
  return { error: String(reply.error) };
}
