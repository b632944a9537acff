// `kompresor pipeline RECIPE.yaml [--out RUN_DIR] [--from STEP | --only STEP] [--set k=v] [--json]`:
// checks a recipe against the commands registered on this CLI (their flags, read off commander),
// runs its steps as child processes with resumable state (src/pipeline/runner.ts) and writes the
// report (src/pipeline/report.ts). Progress on stderr, a summary (or --json) on stdout.
import type { Command, Option } from 'commander';
import { KompresorError, ensure } from '../errors.ts';
import { checkOutDir } from '../io/out_guard.ts';
import { loadRecipe, type CommandCatalog, type OptionSpec } from '../pipeline/recipe.ts';
import { runPipeline, readState } from '../pipeline/runner.ts';
import { writePipelineReport, type PipelineReport } from '../pipeline/report.ts';
import { formatSeconds } from './progress.ts';

const HELP = `
Recipe (YAML; docs/pipeline.md, example recipes/bielik-minitron-mini.yaml):
  name: my-run                       # the default RUN_DIR is runs/<name>
  teacher: models/teacher            # a model folder; also \${teacher}
  data: [corpus/train.jsonl]         # corpus paths; also \${data}
  student: \${steps.kd.model}         # the model the headline numbers describe (default: the last model made)
  vars: {steps_kd: 200}              # more variables: \${steps_kd}; --set steps_kd=50 overrides
  steps:
    - name: prune                    # letters, digits, _ and -
      command: prune                 # any kompresor command ("data prepare" for the subcommand)
      args:                          # flag (without --) or positional name -> value
        model_dir: \${teacher}
        scores: \${steps.score.out}   # an EARLIER step's out (its output path), model or dir
        target: num_hidden_layers=40
  Values: strings, numbers, true (a switch), false (left out) or lists (variadic flags). The output
  flag (--out, or --gguf for export) and --json are set by the pipeline: the output goes to
  RUN_DIR/steps/<name>/ (scores.json, model, run, results.json, model.gguf, data).
  \${steps.X.model} is a trainer's run/final or a prune/search output. Everything is checked before
  the first step runs; errors name the file, line, step and key.

Run folder:
  pipeline_state.json   every step's command, status, hash of its inputs, sessions (written atomically)
  steps/<name>/         result.json (the command's JSON), log.txt (its stderr), its output
  report.html           one self-contained page (inline SVG and CSS): parameters, recovery, speed-up,
                        curves, importance charts, commands; also report.json and report.md

Resuming: run the same command again. A finished step whose inputs (command, arguments, the runs of
the steps it reads) are unchanged is skipped; a stopped trainer continues with --resume from its last
checkpoint; any other unfinished step starts again in a fresh RUN_DIR/steps/<name>.partial/, renamed
when it succeeds. --from STEP re-runs STEP and everything after it; --only STEP re-runs just STEP.
Ctrl-C is passed to the running step (a trainer checkpoints) and the state stays consistent.

Examples:
  kompresor pipeline recipes/bielik-minitron-mini.yaml
  kompresor pipeline recipes/bielik-minitron-mini.yaml --set teacher=models/my-teacher --out runs/try2
  kompresor pipeline recipes/bielik-minitron-mini.yaml --only eval
  kompresor pipeline recipes/bielik-minitron-mini.yaml --report-only`;

/** The commands a recipe may use, read off the program (every registered command but help and pipeline). */
export function catalogOf(program: Command): CommandCatalog {
  const out: CommandCatalog = new Map();
  const walk = (c: Command, prefix: string) => {
    for (const sub of c.commands) {
      const name = prefix ? `${prefix} ${sub.name()}` : sub.name();
      if (sub.name() === 'help' || sub.name() === 'pipeline') continue;
      if (sub.commands.length > 0) { walk(sub, name); continue; }
      out.set(name, {
        name,
        positionals: sub.registeredArguments.map((a) => ({ name: a.name(), required: a.required, variadic: a.variadic })),
        options: new Map(sub.options.filter((o) => o.long).map((o) => [flagOf(o), optionSpec(o)])),
      });
    }
  };
  walk(program, '');
  return out;
}

function flagOf(o: Option): string {
  return o.long!.replace(/^--/, '');
}

function optionSpec(o: Option): OptionSpec {
  return { flag: flagOf(o), takesValue: o.required || o.optional, variadic: o.variadic, mandatory: o.mandatory };
}

interface PipelineFlags { out?: string; from?: string; only?: string; set: string[]; dryRun?: boolean; reportOnly?: boolean; json?: boolean }

let registeredOn: Command | null = null;

/** The catalog of the program `pipeline` was registered on (tests: import main.ts, then call this). */
export function cliCatalog(): CommandCatalog {
  ensure(registeredOn !== null, 'cliCatalog', () => 'registerPipelineCommand has run (import src/cli/main.ts first)');
  return catalogOf(registeredOn);
}

export function registerPipelineCommand(program: Command): void {
  registeredOn = program;
  program.command('pipeline')
    .description('Run a compression recipe (YAML) step by step with resumable state, and write its report (HTML, JSON, Markdown).')
    .argument('<recipe>', 'the recipe file (YAML)')
    .option('--out <run_dir>', 'the run folder (default: runs/<recipe name>)')
    .option('--from <step>', 're-run this step and every later one')
    .option('--only <step>', 're-run only this step (the steps it reads from must have finished)')
    .option('--set <key=value>', 'override a recipe variable (teacher, data, student or a vars key); repeatable', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--dry-run', 'print what would run, resume or be skipped, and stop')
    .option('--report-only', 'only rebuild the report from the run folder')
    .option('--json', 'print the summary as JSON on stdout (progress stays on stderr)')
    .addHelpText('after', HELP)
    .action(async (recipe: string, o: PipelineFlags) => {
      const plan = loadRecipe(recipe, catalogOf(program), { runDir: o.out, set: o.set });
      // the run folder holds reports and steps/: never around or inside the teacher or the data
      checkOutDir(plan.runDir, o.out !== undefined ? '--out' : 'the run folder', [plan.teacher, ...plan.data].filter((p): p is string => p !== null));
      if (o.reportOnly) {
        if (!readState(plan.runDir)) {
          throw new KompresorError({ code: 'file_not_found', where: plan.runDir, rule: '--report-only needs a run folder with pipeline_state.json', found: 'none', hint: 'run the pipeline first' });
        }
        const files = writePipelineReport(plan.runDir);
        print(o.json ? JSON.stringify({ run_dir: plan.runDir, report: pick(files), headline: headline(files.report) }) : formatHeadline(files.report, files.html));
        return;
      }
      const summary = await runPipeline(plan, { from: o.from, only: o.only, dryRun: o.dryRun });
      if (o.dryRun) return;
      const files = writePipelineReport(plan.runDir);
      const counts = (k: string) => summary.steps.filter((s) => s.outcome === k).length;
      if (o.json) print(JSON.stringify({ ...summary, report: pick(files), headline: headline(files.report) }));
      else {
        print(`pipeline ${plan.name}: ${summary.status} in ${formatSeconds(summary.seconds)}; ${plan.steps.length} steps: ${counts('ran') + counts('resumed')} ran`
          + `${counts('resumed') ? ` (${counts('resumed')} resumed)` : ''}, ${counts('skipped')} skipped`
          + `${counts('failed') ? ', 1 failed' : ''}${counts('interrupted') ? ', 1 stopped' : ''}${counts('not run') ? `, ${counts('not run')} not run` : ''}\n`
          + formatHeadline(files.report, files.html));
      }
      if (summary.status === 'failed') {
        throw new KompresorError({ code: 'input_invalid', where: `pipeline ${plan.file}`, rule: 'every step must succeed', found: summary.error ?? 'a failed step',
          hint: 'fix the cause and run the same command again; finished steps are kept' });
      }
      if (summary.status === 'interrupted') {
        console.error(`stopped; run the same command again to continue (state: ${plan.runDir}/pipeline_state.json)`);
        process.exitCode = summary.exit_code; // main() returns it
      }
    });
}

function print(text: string): void {
  console.log(text);
}

function pick(f: { json: string; md: string; html: string }) {
  return { html: f.html, json: f.json, md: f.md };
}

function headline(r: PipelineReport) {
  return { teacher_params: r.teacher.params, student_params: r.student.params, reduction_percent: r.params.reduction_percent,
    recovery_average: r.recovery.average, speedup_decode: r.speedup.decode, speedup_decode_llama_cpp: r.speedup.llama_cpp?.decode ?? null, missing: r.missing.length };
}

function formatHeadline(r: PipelineReport, html: string): string {
  const p = r.teacher.params !== null && r.student.params !== null
    ? `parameters ${r.teacher.params.toLocaleString('en-US')} -> ${r.student.params.toLocaleString('en-US')} (${r.params.reduction_percent! >= 0 ? '-' : '+'}${Math.abs(r.params.reduction_percent!).toFixed(1)}%)`
    : 'parameters: missing';
  const q = r.recovery.average !== null ? `recovery ${r.recovery.average.toFixed(1)}%` : 'recovery: missing';
  const s = `decode ${r.speedup.decode !== null ? `${r.speedup.decode.toFixed(2)}x` : 'missing'} (engine), ${r.speedup.llama_cpp ? `${r.speedup.llama_cpp.decode?.toFixed(2)}x` : 'missing'} (llama.cpp)`;
  return `  ${p}; ${q}; ${s}${r.missing.length ? `; ${r.missing.length} pieces missing` : ''}\nreport: ${html}`;
}
