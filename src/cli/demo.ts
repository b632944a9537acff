// `npm run demo`: the embedded default, Bielik-Minitron in miniature (issue 7). On a fresh machine:
//   1. the Polish corpus from Debian packages        scripts/polish/build_corpus.ts (installs them as root)
//   2. the Polish instruction data                    scripts/polish/build_instructions.ts
//   3. the recipe on the committed teacher            kompresor pipeline recipes/bielik-minitron-mini.yaml
//      (models/polish-teacher: score -> prune depth+MLP and width -> distill, and from scratch ->
//       SFT -> DPO-P -> GRPO -> eval on the Polish suite -> bench, engine and llama.cpp -> GGUF)
//   4. the three answers, read back from RUN_DIR/report.json
// Every stage skips what is already done, so a second run (or a run after Ctrl-C) continues.
//   npm run demo [-- --out runs/demo] [--json] [--set key=value ...]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import nodePath from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { PipelineReport } from '../pipeline/report.ts';

const ROOT = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), '../..');
const RECIPE = 'recipes/bielik-minitron-mini.yaml';
const TEACHER = 'models/polish-teacher';

const HELP = `Usage: npm run demo [-- --out DIR] [--json] [--set key=value ...]

Bielik-Minitron in miniature, on the project's Polish teacher (${TEACHER}, 14.2M parameters):
  1. the Polish corpus from Debian packages (installed with apt when run as root)
  2. the Polish SFT / DPO / GRPO data
  3. kompresor pipeline ${RECIPE}: score, prune (8 -> 6 layers, MLP 1024 -> 800) and a width
     variant, distillation of both and a from-scratch baseline, SFT -> DPO-P -> GRPO, eval on
     the Polish suite against the teacher, bench (engine and llama.cpp), GGUF export
  4. the three answers (how much smaller, quality kept, how much faster) from DIR/report.json
About 15 minutes on 2 cores. Every stage skips finished work: run it again to continue after Ctrl-C.

Options:
  --out DIR          the run folder (default runs/demo); the report is DIR/report.html
  --json             print the answers as JSON on stdout (progress stays on stderr)
  --set key=value    override a recipe variable, e.g. --set kd_tokens=400k (repeatable)
  -h, --help         this text`;

interface DemoArgs { out: string; json: boolean; sets: string[] }

function parseArgs(argv: string[]): DemoArgs {
  const a: DemoArgs = { out: 'runs/demo', json: false, sets: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') a.out = argv[++i];
    else if (argv[i] === '--json') a.json = true;
    else if (argv[i] === '--set') a.sets.push(argv[++i]);
    else if (argv[i] === '-h' || argv[i] === '--help') { console.log(HELP); process.exit(0); }
    else { console.error(`demo: unknown option ${argv[i]}; expected --out DIR, --json or --set key=value (npm run demo -- --help)`); process.exit(1); }
  }
  return a;
}

/** Runs one stage as a child (its progress on our stderr); returns its exit code, with a line when it is not 0. */
function stage(title: string, args: string[], json: boolean): number {
  if (!json) console.error(`\n== ${title}`);
  const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: ['inherit', json ? 'ignore' : 'inherit', 'inherit'] });
  const code = r.status ?? (r.signal === 'SIGINT' ? 130 : 143);
  if (code !== 0) console.error(`demo: "${title}" stopped (exit ${code}); run npm run demo again to continue where it stopped`);
  return code;
}

const fmt = (x: number | null, f: (v: number) => string) => (x === null ? 'missing' : f(x));

/** The three answers as the demo prints them, from a pipeline report. */
export function answers(r: PipelineReport, seconds: number, out: string): string {
  const llama = r.speedup.llama_cpp;
  return [
    '',
    `Bielik-Minitron in miniature: ${r.teacher.path} -> ${r.student.path}`,
    `  How much smaller?  ${fmt(r.teacher.params, (v) => v.toLocaleString('en-US'))} -> ${fmt(r.student.params, (v) => v.toLocaleString('en-US'))} parameters`
      + ` (${fmt(r.params.reduction_percent, (v) => `-${v.toFixed(1)}%`)}; the seed: 11.04B -> 7.35B, -33.4%)`,
    `  Quality kept?      ${fmt(r.recovery.average, (v) => `${v.toFixed(1)}%`)} of the teacher's average score on the Polish suite`
      + ` (${r.recovery.tasks.map((t) => `${t.task} ${fmt(t.recovery, (v) => v.toFixed(1))}%`).join(', ')})`,
    `  How much faster?   decode ${fmt(r.speedup.decode, (v) => `${v.toFixed(2)}x`)} on the engine, `
      + `${fmt(llama?.decode ?? null, (v) => `${v.toFixed(2)}x`)} in llama.cpp (prefill ${fmt(r.speedup.prefill, (v) => `${v.toFixed(2)}x`)} / ${fmt(llama?.prefill ?? null, (v) => `${v.toFixed(2)}x`)})`,
    ...(r.missing.length ? [`  missing: ${r.missing.join('; ')}`] : []),
    `report: ${nodePath.join(out, 'report.html')} (and report.json, report.md); ${(seconds / 60).toFixed(1)} min this run`,
  ].join('\n');
}

function main(): void {
  const a = parseArgs(process.argv.slice(2));
  const t0 = performance.now(), started = Date.now();
  if (!fs.existsSync(nodePath.join(ROOT, TEACHER, 'config.json'))) {
    console.error(`demo: ${TEACHER}: the committed teacher is missing (expected config.json there); restore it with git checkout -- ${TEACHER}, or retrain it with bash scripts/polish/train_teacher.sh`);
    process.exit(1);
  }
  const tsx = ['--import', 'tsx'];
  for (const [title, script] of [['Polish corpus from Debian packages', 'build_corpus.ts'], ['Polish instruction data', 'build_instructions.ts']]) {
    const code = stage(title, [...tsx, `scripts/polish/${script}`], a.json);
    if (code !== 0) process.exit(code);
  }
  const sets = a.sets.flatMap((s) => ['--set', s]);
  const code = stage(`pipeline ${RECIPE}`, ['bin/kompresor.mjs', 'pipeline', RECIPE, '--out', a.out, ...sets], a.json);
  // the pipeline writes its report also after a failed or stopped step: show what is there
  const file = nodePath.resolve(ROOT, a.out, 'report.json');
  if (!fs.existsSync(file) || fs.statSync(file).mtimeMs < started) process.exit(code); // no report from this run
  process.exitCode = code;
  const report = JSON.parse(fs.readFileSync(file, 'utf8')) as PipelineReport;
  const seconds = (performance.now() - t0) / 1000;
  if (a.json) console.log(JSON.stringify({ report: nodePath.join(a.out, 'report.json'), seconds, teacher_params: report.teacher.params,
    student_params: report.student.params, recovery_average: report.recovery.average, speedup_decode: report.speedup.decode,
    speedup_decode_llama_cpp: report.speedup.llama_cpp?.decode ?? null }, null, 2));
  else console.log(answers(report, seconds, a.out));
}

// run only as `npm run demo` (node src/cli/demo.ts), not when a test imports answers()
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
