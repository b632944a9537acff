// The fuzz target's runner and judge. A case is written into CASE/in (broken files), run as
// `node bin/kompresor.mjs ...` with the working folder CASE/cwd and a time limit, and passes when:
//   - it ends by itself within the limit, with exit code 0, or with exit code 1 and exactly one
//     error line (`kompresor: ...`, the last line of stderr, printable characters only, no stack);
//   - nothing outside its output folders changed: the session's base model, CASE/in and CASE/cwd
//     are snapshotted (path, size, mtime, sha256) before and after.
// A failure that matches a defect of the reliability report which another branch is fixing is
// marked with that defect's id (KNOWN_DEFECTS) and does not count; empty the list once they are
// fixed.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import nodePath from 'node:path';
import type { FuzzCase } from './cases.ts';

export const ROOT = nodePath.join(import.meta.dirname, '../..');
export const BIN = nodePath.join(ROOT, 'bin/kompresor.mjs');

export interface CaseRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  seconds: number;
  stderr: string;
  /** Paths outside the output folders that were added, removed or changed. */
  changed: string[];
}

export interface Verdict {
  ok: boolean;
  /** Why it failed ('' when ok). */
  problem: string;
  /** The id of the known defect it matches (then it does not count as a failure). */
  known?: string;
}

// ---------------------------------------------------------------------------------------------
// known defects (reliability report D1-D23), fixed on another branch: empty this list then

export interface KnownDefect {
  id: string;
  about: string;
  matches: (c: FuzzCase, r: CaseRun, problem: string) => boolean;
}

// D1, D4, D16, D17 and D21 of the reliability report matched here until their fixes landed; the
// list is empty now, so every failure counts. A defect found later and not yet fixed goes here.
export const KNOWN_DEFECTS: KnownDefect[] = [];

// ---------------------------------------------------------------------------------------------
// judging

/** The verdict on one run: the rules above, then the known-defect match. */
export function judge(c: FuzzCase, r: CaseRun): Verdict {
  const problem = problemOf(r);
  if (!problem) return { ok: true, problem: '' };
  const known = KNOWN_DEFECTS.find((d) => d.matches(c, r, problem));
  return { ok: false, problem, known: known?.id };
}

const STACK = /^\s+at .+(\(|:\d+)|^(Range|Type|Reference|Syntax)?Error\b|^\[ImplError\]|FATAL ERROR|<--- Last few GCs --->/m;

export function problemOf(r: CaseRun): string {
  if (r.changed.length > 0) return `wrote outside its output folder: ${r.changed.slice(0, 3).join(', ')}`;
  if (r.timedOut) return `no ending within the time limit (${r.seconds.toFixed(0)} s)`;
  if (r.signal) return `killed by ${r.signal}`;
  if (r.code !== 0 && r.code !== 1) return `exit ${r.code}: ${firstLine(r.stderr)}`;
  if (STACK.test(r.stderr)) return `a stack trace on stderr: ${firstLine(r.stderr.match(STACK)![0])}`;
  if (r.code === 0) return '';
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  const errors = lines.filter((l) => l.startsWith('kompresor: '));
  if (errors.length !== 1) return `exit 1 with ${errors.length} error lines: ${firstLine(r.stderr)}`;
  if (lines.at(-1) !== errors[0]) return `exit 1, but the error line is not the last line: ${firstLine(lines.at(-1)!)}`;
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x08\x0b-\x1f\x7f]/.test(errors[0])) return `the error line holds control characters: ${firstLine(errors[0])}`;
  return '';
}

/** The first non-empty line, cut to 140 characters, control characters shown as \xNN. */
function firstLine(s: string): string {
  const l = (s.split('\n').find((x) => x.trim() !== '') ?? '')
    // eslint-disable-next-line no-control-regex
    .replace(/[\x00-\x1f\x7f]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return l.length > 140 ? l.slice(0, 140) + '…' : l;
}

// ---------------------------------------------------------------------------------------------
// snapshots

export type Snapshot = Map<string, string>;

/** path -> "size mtime sha256" for every file and folder under the roots, minus the skipped prefixes. */
export function snapshot(roots: string[], skip: string[] = []): Snapshot {
  const out: Snapshot = new Map();
  const walk = (p: string) => {
    if (skip.some((s) => p === s || p.startsWith(s + nodePath.sep))) return;
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (!st) return;
    if (st.isDirectory()) {
      out.set(p, `dir ${st.mtimeMs}`);
      for (const f of fs.readdirSync(p).sort()) walk(nodePath.join(p, f));
    } else if (st.isFile()) {
      out.set(p, `${st.size} ${st.mtimeMs} ${crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex')}`);
    } else out.set(p, `other ${st.mtimeMs}`);
  };
  for (const r of roots) walk(r);
  return out;
}

export function changedPaths(before: Snapshot, after: Snapshot): string[] {
  const out: string[] = [];
  for (const [p, v] of after) if (before.get(p) !== v) out.push(before.has(p) ? `${p} (changed)` : `${p} (new)`);
  for (const p of before.keys()) if (!after.has(p)) out.push(`${p} (removed)`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// running

export interface Workspace {
  /** The session folder: base/ (the healthy model) and one folder per case. */
  dir: string;
  baseModel: string;
}

/** Writes the case's files into WS/case-<index>/ and returns its folders and resolved args. */
export function materialize(ws: Workspace, c: FuzzCase): { dir: string; args: string[]; outputs: string[] } {
  const dir = nodePath.join(ws.dir, `case-${String(c.index).padStart(4, '0')}`);
  fs.rmSync(dir, { recursive: true, force: true });
  const sub = (s: string) => s.replaceAll('@BASE', ws.baseModel).replaceAll('@IN', nodePath.join(dir, 'in')).replaceAll('@OUT', nodePath.join(dir, 'out'));
  // the output folders exist beforehand, so that making them does not change their parent
  for (const f of ['in', 'cwd', ...c.outputs]) fs.mkdirSync(nodePath.join(dir, f), { recursive: true });
  if (c.copyModel) fs.cpSync(ws.baseModel, nodePath.join(dir, 'in/model'), { recursive: true });
  for (const [rel, content] of Object.entries(c.files)) {
    const p = nodePath.join(dir, 'in', rel);
    fs.mkdirSync(nodePath.dirname(p), { recursive: true });
    fs.writeFileSync(p, typeof content === 'string' ? sub(content) : content);
  }
  return { dir, args: c.args.map(sub), outputs: c.outputs.map((o) => nodePath.join(dir, o)) };
}

/** Runs one materialized case under the time limit (SIGKILL at the limit) and snapshots around it. */
export async function runCase(ws: Workspace, c: FuzzCase, limitMs: number): Promise<CaseRun & { dir: string; args: string[] }> {
  const m = materialize(ws, c);
  const roots = [nodePath.dirname(ws.baseModel), nodePath.join(m.dir, 'in'), nodePath.join(m.dir, 'cwd')];
  const before = snapshot(roots, m.outputs);
  const t0 = performance.now();
  const r = await spawnCli(m.args, nodePath.join(m.dir, 'cwd'), limitMs);
  const changed = changedPaths(before, snapshot(roots, m.outputs));
  return { ...r, seconds: (performance.now() - t0) / 1000, changed, dir: m.dir, args: m.args };
}

function spawnCli(args: string[], cwd: string, limitMs: number): Promise<Omit<CaseRun, 'seconds' | 'changed'>> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
    delete env.NODE_TEST_CONTEXT;
    delete env.KOMPRESOR_PROGRESS_FILE;
    // a heap cap: an input that makes the CLI allocate without bound fails in seconds, not after GBs
    const child = spawn(process.execPath, ['--max-old-space-size=768', BIN, ...args], { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '', timedOut = false;
    child.stderr.on('data', (d) => { if (stderr.length < 1 << 20) stderr += d; });
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, limitMs);
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal: timedOut ? null : signal, timedOut, stderr }); });
  });
}

/** How to run one case again by hand (it regenerates from the seed and index alone). */
export function reproCommand(seed: number, index: number): string {
  return `node --import tsx scripts/fuzz.ts --seed ${seed} --case ${index} --keep`;
}
