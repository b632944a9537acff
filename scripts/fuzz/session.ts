// One fuzz session: the base model in a fresh folder, then cases 0, 1, 2, ... of the seed until
// the case count or the time budget runs out (the count makes a session deterministic; the budget
// is for long runs by hand), each judged by oracle.ts. A table of the results, failures first.
import fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { makeBaseModel } from './base.ts';
import { makeCase, type BaseFiles, type FuzzCase } from './cases.ts';
import { runCase, judge, reproCommand, type Verdict, type Workspace } from './oracle.ts';

export interface SessionOptions {
  seed: number;
  /** Stop after this many cases (default: no limit). */
  cases?: number;
  /** Stop starting new cases after this many seconds (default: no limit). */
  seconds?: number;
  /** Run only this case. */
  only?: number;
  /** Time limit of one case. */
  limitMs: number;
  /** Keep the session folder (default: removed, except the folders of failed cases). */
  keep?: boolean;
  /** Where the session folder goes (default os.tmpdir()). */
  parent?: string;
  onResult?: (r: CaseResult) => void;
}

export interface CaseResult {
  c: FuzzCase;
  verdict: Verdict;
  code: number | null;
  seconds: number;
  stderrTail: string;
  args: string[];
  dir: string;
  repro: string;
}

export async function runSession(o: SessionOptions): Promise<{ dir: string; results: CaseResult[] }> {
  const dir = fs.mkdtempSync(nodePath.join(o.parent ?? os.tmpdir(), `kompresor-fuzz-${o.seed}-`));
  const ws: Workspace = { dir, baseModel: makeBaseModel(nodePath.join(dir, 'base')) };
  const base = readBase(ws.baseModel);
  const results: CaseResult[] = [];
  const t0 = performance.now();
  const indices = o.only !== undefined ? [o.only] : null;
  for (let k = 0; ; k++) {
    const index = indices ? indices[k] : k;
    if (index === undefined || (o.cases !== undefined && k >= o.cases)) break;
    if (o.seconds !== undefined && (performance.now() - t0) / 1000 >= o.seconds) break;
    const c = makeCase(o.seed, index, base);
    const r = await runCase(ws, c, o.limitMs);
    const verdict = judge(c, r);
    const res: CaseResult = { c, verdict, code: r.code, seconds: r.seconds, stderrTail: r.stderr.trim().split('\n').at(-1) ?? '',
      args: r.args, dir: r.dir, repro: reproCommand(o.seed, index) };
    results.push(res);
    o.onResult?.(res);
    // a case that wrote into the base model (D1) would break every later case: make it again
    const baseDir = nodePath.dirname(ws.baseModel);
    if (r.changed.some((p) => p.startsWith(baseDir + nodePath.sep))) {
      fs.rmSync(baseDir, { recursive: true, force: true });
      makeBaseModel(baseDir);
    }
    if (verdict.ok && !o.keep) fs.rmSync(r.dir, { recursive: true, force: true });
    else fs.writeFileSync(nodePath.join(r.dir, 'stderr.txt'), r.stderr);
  }
  if (!o.keep && results.every((r) => r.verdict.ok)) fs.rmSync(dir, { recursive: true, force: true });
  return { dir, results };
}

function readBase(model: string): BaseFiles {
  const json = (f: string) => JSON.parse(fs.readFileSync(nodePath.join(model, f), 'utf8')) as Record<string, unknown>;
  return { safetensors: fs.readFileSync(nodePath.join(model, 'model.safetensors')), config: json('config.json'),
    tokenizer: json('tokenizer.json'), tokenizerConfig: json('tokenizer_config.json') };
}

/** Markdown table of the results: new failures first, then known defects, then a count of passes. */
export function formatResults(results: CaseResult[]): string {
  const bad = results.filter((r) => !r.verdict.ok);
  const order = (r: CaseResult) => (r.verdict.known ? 1 : 0);
  const rows = [...bad].sort((a, b) => order(a) - order(b) || a.c.index - b.c.index).map((r) =>
    `| ${r.c.index} | ${r.c.family} | ${cell(r.c.mutation)} | \`${cell(commandLine(r.args))}\` | ${r.verdict.known ? `known ${r.verdict.known}` : '**new**'}: ${cell(r.verdict.problem)} | \`${r.repro}\` |`);
  const counts = summary(results);
  const head = `${results.length} cases: ${counts.passed} passed, ${counts.newFailures} new failures, ${counts.known} known defects`;
  if (rows.length === 0) return head;
  return [head, '', '| case | input | mutation | command | verdict | reproduce |', '|---|---|---|---|---|---|', ...rows].join('\n');
}

export function summary(results: CaseResult[]): { passed: number; newFailures: number; known: number } {
  return {
    passed: results.filter((r) => r.verdict.ok).length,
    newFailures: results.filter((r) => !r.verdict.ok && !r.verdict.known).length,
    known: results.filter((r) => !r.verdict.ok && r.verdict.known).length,
  };
}

function commandLine(args: string[]): string {
  return ['kompresor', ...args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`))].join(' ');
}

/** A table cell: pipes escaped, control characters shown as \xNN (inputs are hostile). */
function cell(s: string, max = 300): string {
  // eslint-disable-next-line no-control-regex
  const t = s.replaceAll('|', '\\|').replace(/[\x00-\x1f\x7f]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return t.length > max ? t.slice(0, max) + '…' : t;
}
