// `npm run bench:fits`: what fits on this machine, measured. For each real model shape (a random
// bf16 checkpoint written by scripts/bench/make_shaped_checkpoint.ts) it runs the real CLI, one
// child process per command under /usr/bin/time -v, and records the child's peak RSS, tokens/s and
// whether it ran within 24 GiB:
//   score          calibration importance (--max-memory: layer-streamed when the float32 weights exceed it)
//   eval           perplexity (loglikelihood_rolling) on about --eval-tokens tokens of Polish text
//                  (--stream when the build has it and the weights exceed --max-memory)
//   generate       greedy, --new-tokens tokens after a short prompt
//   eval-f32, generate-f32   the same with --weights-dtype f32 (the float32 path, for the bf16 ratio)
//   teacher-cache  the teacher's top-k logits for one distill step (when the build has the command)
//   distill        one optimizer step, the checkpoint as its own student (the largest student: the
//                  unpruned model), with the lean-student flags when the build has them
//   sft            one optimizer step, with the lean flags when the build has them
// A command whose predicted peak exceeds --run-cap (20 GiB) or the memory available now is not started: its row says the
// prediction and whether that is within 24 GiB. A command that refuses up front (a memory error
// before any work) is recorded with its message.
// Resumable: rows already in the results file (bench/results/fits.json) are kept and not run again
// (failed ones are retried; --redo runs everything again). Each checkpoint is deleted after its
// shape's rows unless --keep; free disk is checked before writing one.
//
//   npm run bench:fits -- [--shapes smollm2-135m,qwen2.5-0.5b,llama-3.2-1b] [--commands score,eval,...]
//     [--dir runs/fits] [--results bench/results/fits.json] [--keep] [--redo] [--run-cap 20] [--eval-tokens 2048]
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { normalizeConfig, type ModelConfig } from '../src/io/hf_config.ts';
import { loadTokenizer } from '../src/io/tokenizer.ts';
import { SHAPES, shapedConfig, planShards } from '../scripts/bench/make_shaped_checkpoint.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'bin/kompresor.mjs');
const MAKER = path.join(ROOT, 'scripts/bench/make_shaped_checkpoint.ts');
const CORPUS = path.join(ROOT, 'evals/polish/pl_perplexity/test.jsonl');
const GIB = 2 ** 30;
const FIT_LIMIT = 24 * GIB;
const COMMANDS = ['score', 'eval', 'eval-f32', 'generate', 'generate-f32', 'teacher-cache', 'distill', 'sft'] as const;
type FitsCommand = typeof COMMANDS[number];

export interface FitsRow {
  shape: string;
  command: FitsCommand;
  /** ran: finished; failed: non-zero exit; refused: the tool stopped before any work (memory);
   *  not run: predicted above the run cap; n/a: the command does not exist in this build. */
  status: 'ran' | 'failed' | 'refused' | 'not run' | 'n/a';
  params: number;
  peak_rss_bytes: number | null;
  predicted_bytes: number;
  /** measured peak (or, when not run, the prediction) <= 24 GiB */
  fits_24gib: boolean | null;
  tokens_per_s: number | null;
  tokens: number | null;
  seconds: number | null;
  /** the lean / streaming flags used, beyond the plain command */
  mode: string;
  command_line: string;
  load_avg: number;
  note?: string;
  measured_at: string;
}

export interface FitsFile { format: 'kompresor-fits'; version: 1; machine: Record<string, unknown>; rows: FitsRow[] }

interface Args { shapes: string[]; commands: FitsCommand[]; dir: string; results: string; keep: boolean; redo: boolean; runCap: number; evalTokens: number; newTokens: number; timeoutMin: number }

function parseArgs(argv: string[]): Args {
  const val = (k: string) => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1] : undefined; };
  const shapes = (val('--shapes') ?? 'smollm2-135m,qwen2.5-0.5b,llama-3.2-1b').split(',').filter(Boolean);
  for (const s of shapes) if (!SHAPES[s]) fail(`--shapes: unknown shape "${s}"; expected some of ${Object.keys(SHAPES).join(', ')}`);
  const commands = (val('--commands') ?? COMMANDS.join(',')).split(',').filter(Boolean) as FitsCommand[];
  for (const c of commands) if (!COMMANDS.includes(c)) fail(`--commands: unknown command "${c}"; expected some of ${COMMANDS.join(', ')}`);
  return { shapes, commands, dir: val('--dir') ?? path.join(ROOT, 'runs/fits'), results: val('--results') ?? path.join(ROOT, 'bench/results/fits.json'),
    keep: argv.includes('--keep'), redo: argv.includes('--redo'), runCap: Number(val('--run-cap') ?? 20) * GIB,
    evalTokens: Number(val('--eval-tokens') ?? 2048), newTokens: Number(val('--new-tokens') ?? 16), timeoutMin: Number(val('--timeout-min') ?? 90) };
}

function fail(msg: string): never {
  console.error(`bench:fits: ${msg}`);
  process.exit(1);
}

// ---------------------------------------------------------------------------------------------
// what the build offers (read off --help, so the bench uses the other branches' flags once they land)

const helpCache = new Map<string, string | null>();
function helpOf(command: string): string | null {
  if (!helpCache.has(command)) {
    const r = spawnSync(process.execPath, [BIN, command, '--help'], { encoding: 'utf8' });
    // an unknown command prints the top-level usage instead of its own
    helpCache.set(command, r.status === 0 && r.stdout.startsWith(`Usage: kompresor ${command} `) ? r.stdout : null);
  }
  return helpCache.get(command)!;
}
const hasFlag = (command: string, flag: string) => (helpOf(command) ?? '').includes(flag);

/** The memory-lean student flags of the lean-student branch, when this build has them. */
function leanFlags(command: string): string[] {
  const f: string[] = [];
  if (hasFlag(command, '--optim-state')) f.push('--optim-state', 'int8');
  if (hasFlag(command, '--recompute')) f.push('--recompute');
  return f;
}

// ---------------------------------------------------------------------------------------------
// predicted peaks: a floor for refusing to start a child that cannot fit (the rows say measured)

const NODE_BASE = 0.4 * GIB;

/** Activations of one training micro-batch of n tokens (arena per layer plus a logit chunk). */
function trainActBytes(c: ModelConfig, n: number): number {
  const perLayer = n * (12 * c.hiddenSize + 4 * c.intermediateSize + 2 * c.numHeads * c.headDim) * 4;
  return c.numLayers * perLayer + 2 * 256 * c.vocabSize * 4;
}

export function predictBytes(command: FitsCommand, c: ModelConfig, params: number, o: { lean: boolean; stream: boolean; tokens: number }): number {
  const layer = (params - c.vocabSize * c.hiddenSize * (c.tieWordEmbeddings ? 1 : 2)) / c.numLayers;
  const streamed = 4 * layer + 4 * c.vocabSize * c.hiddenSize + o.tokens * (c.hiddenSize * 8 + c.intermediateSize * 4) * 4;
  const studentBytesPerParam = o.lean ? 10 : 16;
  switch (command) {
    case 'score': return NODE_BASE + (o.stream ? streamed : 4 * params + trainActBytes(c, o.tokens) / 2);
    case 'eval': return NODE_BASE + (o.stream ? streamed : 2 * params + o.tokens * c.vocabSize * 4);
    case 'eval-f32': return NODE_BASE + 4 * params + o.tokens * c.vocabSize * 4;
    case 'generate': return NODE_BASE + 2 * params + 64 * c.vocabSize * 4;
    case 'generate-f32': return NODE_BASE + 4 * params + 64 * c.vocabSize * 4;
    case 'teacher-cache': return NODE_BASE + streamed;
    case 'distill': return NODE_BASE + studentBytesPerParam * params + 2 * params + trainActBytes(c, o.tokens);
    case 'sft': return NODE_BASE + studentBytesPerParam * params + trainActBytes(c, o.tokens);
  }
}

// ---------------------------------------------------------------------------------------------
// running one child under /usr/bin/time -v

interface ChildRun { code: number | null; stdout: string; stderr: string; maxRssBytes: number | null; seconds: number; timedOut: boolean }

function runMeasured(args: string[], timeoutMs: number, log: string): Promise<ChildRun> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn('/usr/bin/time', ['-v', process.execPath, BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '', err = '', timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    const timer = setTimeout(() => { timedOut = true; try { process.kill(-child.pid!, 'SIGTERM'); } catch { /* gone */ } }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      fs.writeFileSync(log, `$ kompresor ${args.join(' ')}\n${err}\n--- stdout ---\n${out}`);
      const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(err);
      resolve({ code, stdout: out, stderr: err, maxRssBytes: m ? Number(m[1]) * 1024 : null, seconds: (Date.now() - t0) / 1000, timedOut });
    });
  });
}

/** The child's own error line (KompresorError), without /usr/bin/time's report. */
function errorLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.startsWith('kompresor:'));
  return lines.length ? lines[lines.length - 1] : stderr.split('\n').filter((l) => l.trim() && !l.startsWith('\t')).slice(-3).join(' ');
}

/** The command's --json output: the whole stdout (score prints it indented) or its last JSON line. */
function lastJson(stdout: string): Record<string, unknown> | null {
  try { return JSON.parse(stdout); } catch { /* progress lines before it */ }
  const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  try { return line ? JSON.parse(line) : null; } catch { return null; }
}

/** Median tokens/s of a run folder's step lines (metrics.jsonl). */
function trainerTps(runDir: string): number | null {
  const f = path.join(runDir, 'metrics.jsonl');
  if (!fs.existsSync(f)) return null;
  const tps = fs.readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => typeof m.tokens_per_s === 'number').map((m) => m.tokens_per_s as number);
  return tps.length ? tps.sort((a, b) => a - b)[Math.floor(tps.length / 2)] : null;
}

// ---------------------------------------------------------------------------------------------
// per-shape inputs: prepared tokens, an eval task of about N tokens, SFT rows

interface Inputs { data: string; task: string; evalTokens: number; sft: string }

function makeInputs(ckpt: string, work: string, evalTokens: number): Inputs {
  fs.mkdirSync(work, { recursive: true });
  const docs = fs.readFileSync(CORPUS, 'utf8').trim().split('\n').map((l) => JSON.parse(l).text as string);
  const tok = loadTokenizer(ckpt);
  // the perplexity task: the first documents up to about evalTokens tokens
  const taskDir = path.join(work, 'ppl');
  fs.mkdirSync(taskDir, { recursive: true });
  const chosen: string[] = [];
  let n = 0;
  for (const d of docs) { if (n >= evalTokens) break; chosen.push(d); n += tok.encode(d).length; }
  fs.writeFileSync(path.join(taskDir, 'test.jsonl'), chosen.map((t) => JSON.stringify({ text: t })).join('\n') + '\n');
  fs.writeFileSync(path.join(taskDir, 'fits_ppl.yaml'), ['task: fits_ppl', 'dataset_path: .', 'test_split: test', 'output_type: loglikelihood_rolling',
    'doc_to_text: ""', 'doc_to_target: "{{text}}"', 'metric_list:', '  - metric: bits_per_byte', '    aggregation: bits_per_byte', '    higher_is_better: false', ''].join('\n'));
  // SFT rows: a paragraph's first sentence as the prompt, the rest as the completion
  const sft = path.join(work, 'sft.jsonl');
  fs.writeFileSync(sft, docs.slice(0, 200).map((d) => { const i = Math.max(1, d.indexOf('. ') + 1); return JSON.stringify({ prompt: d.slice(0, i), completion: d.slice(i) || '.' }); }).join('\n') + '\n');
  const data = path.join(work, 'data');
  if (!fs.existsSync(path.join(data, 'manifest.json'))) {
    const r = spawnSync(process.execPath, [BIN, 'data', 'prepare', '--input', CORPUS, '--tokenizer', ckpt, '--out', data, '--val-fraction', '0.1', '--json'], { encoding: 'utf8' });
    if (r.status !== 0) fail(`data prepare failed: ${r.stderr.slice(-500)}`);
  }
  return { data, task: taskDir, evalTokens: n, sft };
}

// ---------------------------------------------------------------------------------------------
// the commands

const SEQ = 256;
const CAP_FLAG = (cap: number) => `${Math.floor(cap / GIB)}GiB`;

interface Planned { args: string[]; mode: string[]; tokens: number; stream: boolean; lean: boolean; tps: (r: ChildRun, seconds: number) => number | null }

function planCommand(cmd: FitsCommand, ckpt: string, work: string, inp: Inputs, a: Args, c: ModelConfig, params: number): Planned | null {
  const cap = ['--max-memory', CAP_FLAG(a.runCap)];
  const out = path.join(work, cmd);
  const jsonNum = (k: string) => (r: ChildRun) => { const v = lastJson(r.stdout)?.[k]; return typeof v === 'number' ? v : null; };
  switch (cmd) {
    case 'score': {
      const stream = 4 * params > a.runCap;
      return { args: ['score', ckpt, '--data', CORPUS, '--out', `${out}.json`, '--samples', '8', '--seq-len', String(SEQ), ...cap, '--no-report', '--json'],
        mode: stream ? ['stream'] : [], tokens: 8 * SEQ, stream, lean: false, tps: jsonNum('tokens_per_s') };
    }
    case 'eval': {
      const canStream = hasFlag('eval', '--stream');
      const stream = canStream && 4 * params > a.runCap;
      return { args: ['eval', ckpt, '--tasks', inp.task, '--out', `${out}.json`, '--batch-tokens', '1024', '--bootstrap-iters', '0',
        ...(canStream ? cap : []), ...(stream ? ['--stream'] : []), '--json'],
      mode: stream ? ['stream'] : [], tokens: inp.evalTokens, stream, lean: false, tps: (_r, s) => inp.evalTokens / s };
    }
    case 'generate':
      return { args: ['generate', ckpt, '--prompt', 'Program ls wyświetla', '--max-new-tokens', String(a.newTokens), '--temperature', '0', '--json'],
        mode: [], tokens: a.newTokens, stream: false, lean: false, tps: jsonNum('decode_tokens_per_s') };
    case 'eval-f32': case 'generate-f32': {
      const base = planCommand(cmd === 'eval-f32' ? 'eval' : 'generate', ckpt, work, inp, a, c, params)!;
      if (base.stream || !hasFlag(cmd.slice(0, -4), '--weights-dtype')) return null;
      const args = base.args.map((x) => x.replace(/\/(eval|generate)\.json$/, '/$1-f32.json'));
      return { ...base, args: [...args.slice(0, -1), '--weights-dtype', 'f32', '--json'], mode: ['f32 weights'] };
    }
    case 'teacher-cache':
      if (!helpOf('teacher-cache')) return null;
      return { args: ['teacher-cache', '--teacher', ckpt, '--data', inp.data, '--out', path.join(work, 'cache'), '--steps', '1', '--micro-batch', '1',
        '--seq-len', String(SEQ), '--eval-batches', '1', '--top-k', '64', ...cap, '--json'],
      mode: ['stream'], tokens: 2 * SEQ, stream: true, lean: false, tps: (_r, s) => (2 * SEQ) / s };
    case 'distill': {
      const lean = leanFlags('distill');
      const cached = fs.existsSync(path.join(work, 'cache')) && hasFlag('distill', '--max-memory');
      const teacher = cached ? ['--teacher-cache', path.join(work, 'cache'), ...cap] : [];
      return { args: ['distill', '--teacher', ckpt, '--student', ckpt, '--data', inp.data, '--out', out, '--steps', '1', '--micro-batch', '1',
        '--seq-len', String(SEQ), '--warmup', '0', '--eval-batches', '1', '--top-k', '64', ...teacher, ...lean, '--json'],
      mode: [...(cached ? ['teacher cache'] : []), ...lean], tokens: SEQ, stream: false, lean: lean.length > 0, tps: () => trainerTps(out) };
    }
    case 'sft': {
      const lean = leanFlags('sft');
      return { args: ['sft', ckpt, '--data', inp.sft, '--out', out, '--steps', '1', '--micro-batch', '1', '--seq-len', String(SEQ), '--drop-long',
        '--eval-batches', '1', ...lean, '--json'],
      mode: lean, tokens: SEQ, stream: false, lean: lean.length > 0, tps: () => trainerTps(out) };
    }
  }
}

async function measure(cmd: FitsCommand, shape: string, ckpt: string, work: string, inp: Inputs, a: Args): Promise<FitsRow> {
  const config = shapedConfig(shape);
  const c = normalizeConfig(config, 'config.json');
  const params = planShards(config).reduce((s, sh) => s + sh.tensors.reduce((t, x) => t + x.bytes / 2, 0), 0);
  const base = { shape, command: cmd, params, measured_at: new Date().toISOString(), load_avg: Number(os.loadavg()[0].toFixed(1)) };
  const p = planCommand(cmd, ckpt, work, inp, a, c, params);
  if (!p) {
    return { ...base, status: 'n/a', peak_rss_bytes: null, predicted_bytes: 0, fits_24gib: null, tokens_per_s: null, tokens: null, seconds: null,
      mode: '', command_line: '', note: cmd.endsWith('-f32') ? 'streamed, or no --weights-dtype in this build' : `this build has no \`kompresor ${cmd}\`` };
  }
  const predicted = Math.round(predictBytes(cmd, c, params, { lean: p.lean, stream: p.stream, tokens: p.tokens }));
  const row = { ...base, predicted_bytes: predicted, mode: p.mode.join(' '), command_line: `kompresor ${p.args.join(' ')}` };
  // on a shared machine the cap is also what the other processes leave (os.freemem is MemAvailable)
  const available = os.freemem() - GIB;
  if (predicted > a.runCap || predicted > available) {
    const why = predicted > a.runCap ? `the run cap ${fmtGiB(a.runCap)}` : `the ${fmtGiB(available + GIB)} available now, less 1 GiB`;
    return { ...row, status: 'not run', peak_rss_bytes: null, fits_24gib: predicted <= FIT_LIMIT, tokens_per_s: null, tokens: null, seconds: null,
      note: `predicted ${fmtGiB(predicted)} > ${why}` };
  }
  console.error(`bench:fits: ${shape} ${cmd} (predicted ${fmtGiB(predicted)}, load ${base.load_avg})`);
  const r = await runMeasured(p.args, a.timeoutMin * 60_000, path.join(work, `${cmd}.log`));
  const refused = r.code === 1 && /memory|does not fit/i.test(errorLine(r.stderr));
  const status = r.code === 0 ? 'ran' : refused ? 'refused' : 'failed';
  return { ...row, status, peak_rss_bytes: r.maxRssBytes, fits_24gib: status === 'ran' ? r.maxRssBytes! <= FIT_LIMIT : refused ? false : null,
    tokens_per_s: status === 'ran' ? p.tps(r, r.seconds) : null, tokens: p.tokens, seconds: r.seconds,
    ...(status !== 'ran' ? { note: r.timedOut ? `stopped after ${a.timeoutMin} min` : errorLine(r.stderr).slice(0, 400) } : {}) };
}

function fmtGiB(b: number): string { return `${(b / GIB).toFixed(2)} GiB`; }

// ---------------------------------------------------------------------------------------------
// results file, checkpoints, the loop

function readResults(file: string): FitsFile {
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8')) as FitsFile;
  return { format: 'kompresor-fits', version: 1, machine: {}, rows: [] };
}

function saveResults(file: string, f: FitsFile): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  f.rows.sort((x, y) => Object.keys(SHAPES).indexOf(x.shape) - Object.keys(SHAPES).indexOf(y.shape) || COMMANDS.indexOf(x.command) - COMMANDS.indexOf(y.command));
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(f, null, 2) + '\n');
  fs.renameSync(`${file}.tmp`, file);
}

function machine(): Record<string, unknown> {
  return { cpu: os.cpus()[0]?.model, cores: os.cpus().length, mem_total_bytes: os.totalmem(), node: process.version, kernel: os.release() };
}

function ensureCheckpoint(shape: string, ckpt: string): void {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAKER, '--shape', shape, '--out', ckpt, '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) fail(`could not write the ${shape} checkpoint (see above)`);
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  if (!fs.existsSync('/usr/bin/time')) fail('needs /usr/bin/time (Debian package "time") to read each child\'s peak RSS');
  const results = readResults(a.results);
  results.machine = machine();
  for (const shape of a.shapes) {
    const done = (cmd: FitsCommand) => !a.redo && results.rows.some((r) => r.shape === shape && r.command === cmd && r.status !== 'failed');
    const todo = a.commands.filter((cmd) => !done(cmd));
    if (todo.length === 0) { console.error(`bench:fits: ${shape}: every row measured, skipped`); continue; }
    const ckpt = path.join(a.dir, 'checkpoints', shape), work = path.join(a.dir, 'work', shape);
    ensureCheckpoint(shape, ckpt);
    fs.rmSync(work, { recursive: true, force: true });
    const inp = makeInputs(ckpt, work, a.evalTokens);
    for (const cmd of todo) {
      const row = await measure(cmd, shape, ckpt, work, inp, a);
      results.rows = results.rows.filter((r) => !(r.shape === shape && r.command === cmd)).concat(row);
      saveResults(a.results, results);
      console.error(`bench:fits: ${shape} ${cmd}: ${row.status}${row.peak_rss_bytes ? `, peak ${fmtGiB(row.peak_rss_bytes)}` : ''}${row.tokens_per_s ? `, ${row.tokens_per_s.toFixed(1)} tokens/s` : ''}${row.note ? ` (${row.note})` : ''}`);
    }
    if (!a.keep) fs.rmSync(ckpt, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  }
  console.log(fitsTable(results.rows));
}

/** The BENCHMARKS.md table. */
export function fitsTable(rows: FitsRow[]): string {
  const out = ['| shape | params | command | mode | peak RSS | tokens/s | within 24 GiB | note |', '|---|---:|---|---|---:|---:|---|---|'];
  for (const r of rows) {
    const rss = r.peak_rss_bytes ? fmtGiB(r.peak_rss_bytes) : r.status === 'not run' ? `(predicted ${fmtGiB(r.predicted_bytes)})` : '—';
    const fits = r.fits_24gib === null ? '—' : r.status === 'not run' ? (r.fits_24gib ? 'predicted yes' : 'no (predicted)') : r.fits_24gib ? 'yes' : 'no';
    const tps = r.tokens_per_s ? r.tokens_per_s.toFixed(r.tokens_per_s < 10 ? 2 : 1) : '—';
    const note = r.status === 'ran' ? `load ${r.load_avg}` : `${r.status}${r.note ? `: ${r.note}` : ''}`;
    out.push(`| ${r.shape} | ${(r.params / 1e9).toFixed(3)}B | ${r.command} | ${r.mode || '—'} | ${rss} | ${tps} | ${fits} | ${note.replace(/\|/g, '\\|')} |`);
  }
  return out.join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
