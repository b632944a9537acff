// The CLI fuzz target, by hand: seeded broken inputs (safetensors headers, config.json, tokenizer
// files, JSONL rows of data prepare / sft / dpo / grpo, pipeline recipes) run against
// bin/kompresor.mjs, each judged by scripts/fuzz/oracle.ts. Prints one line per case as it goes,
// then a table of the failures with a command that reproduces each one.
//
//   node --import tsx scripts/fuzz.ts --seconds 600 --seed 7      # as many cases as fit in 10 min
//   node --import tsx scripts/fuzz.ts --seed 7 --cases 200         # exactly cases 0..199
//   node --import tsx scripts/fuzz.ts --seed 7 --case 13 --keep    # one case again; keeps its files
//
// Exit code: 0 when no case failed outside the known defects, 1 otherwise.
import { runSession, formatResults, summary } from './fuzz/session.ts';

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function intFlag(name: string, fallback?: number): number | undefined {
  const v = flag(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`fuzz: ${name} takes a non-negative integer; found ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
}

const seed = intFlag('--seed', 1)!;
const only = intFlag('--case');
const cases = intFlag('--cases');
const seconds = intFlag('--seconds', only === undefined && cases === undefined ? 60 : undefined);
const keep = process.argv.includes('--keep');
const limitMs = 1000 * intFlag('--limit', 60)!;

const { dir, results } = await runSession({
  seed, only, cases, seconds, keep, limitMs,
  onResult: (r) => console.error(`case ${r.c.index} ${r.c.family}: ${r.verdict.ok ? 'ok' : r.verdict.known ? `known ${r.verdict.known}` : 'FAIL'} ` +
    `(exit ${r.code}, ${r.seconds.toFixed(1)} s) ${r.c.mutation}${r.verdict.ok ? '' : ` -> ${r.verdict.problem}`}`),
});
console.log(formatResults(results));
const s = summary(results);
if (keep || s.newFailures + s.known > 0) console.log(`\ncase folders (inputs in in/, outputs in out/, stderr.txt): ${dir}`);
process.exitCode = s.newFailures > 0 ? 1 : 0;
