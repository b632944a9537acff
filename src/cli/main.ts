// The `kompresor` command line. Each subcommand parses its flags, calls a library function and
// prints the result (or JSON with --json). Any KompresorError becomes one line on stderr and
// exit code 1; anything else is a bug and prints its stack with exit code 2.
import { Command, CommanderError } from 'commander';
import { KompresorError, renderError, type ErrorFields } from '../errors.ts';
import { parseIds, parseNumber, checkOutPath, weightsDtypeOption } from './args.ts';
import type { WeightsOption } from '../model/load.ts';
import { inspectCommand, formatInspect, logitsCommand, gradsCommand, generateCommand } from './engine_commands.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { allowNonFinite } from '../io/finite.ts';
import { registerDataCommands } from './data_command.ts';
import { registerPruneCommand } from './prune_commands.ts';
import { registerScoreCommand } from './score_command.ts';
import { registerTrainCommand } from './train_command.ts';
import { registerDistillCommand } from './distill_command.ts';
import { registerTeacherCacheCommand } from './teacher_cache_command.ts';
import { registerExportCommand } from './export_command.ts';
import { registerSearchCommand } from './search_command.ts';
import { registerPipelineCommand } from './pipeline_command.ts';
import { registerBenchCommand } from './bench_command.ts';
import { registerEvalCommand } from './eval_command.ts';
import { registerSftCommand } from './sft_command.ts';
import { registerDpoCommand } from './dpo_command.ts';
import { registerGrpoCommand } from './grpo_command.ts';

const program = new Command();
let invoked = '';
program
  .name('kompresor')
  .description('Minitron-style compression of Hugging Face decoder models on a CPU: score, prune, distill, align, eval, export.')
  // commander's own errors ("error: ..." plus a usage line) become one KompresorError line in main()
  .exitOverride()
  .configureOutput({ outputError: () => {} })
  .hook('preSubcommand', (_p, sub) => {
    const nested = sub.commands.find((c) => process.argv.includes(c.name())); // data prepare
    invoked = nested ? `${sub.name()} ${nested.name()}` : sub.name();
  })
  .option('--allow-nonfinite', 'load weights that hold NaN or Infinity (refused by default; for inspecting a broken checkpoint)')
  .hook('preAction', () => allowNonFinite(program.opts().allowNonfinite === true));

program.command('inspect')
  .description('Architecture and exact parameter counts per component (embeddings, attention, MLP, norms, lm_head).')
  .argument('<model_dir>', 'a Hugging Face checkpoint folder (config.json + safetensors)')
  .option('--json', 'print JSON (total_params, params per component, config)')
  .action(async (dir: string, o: { json?: boolean }) => {
    const r = await inspectCommand(dir);
    console.log(o.json ? JSON.stringify(r, null, 2) : formatInspect(r));
  });

program.command('logits')
  .description('Write the float32 logits [B,T,V] for rows of token ids to a JSON file.')
  .argument('<model_dir>')
  .requiredOption('--ids <rows>', 'token ids, rows separated by ";" and of equal length, e.g. "1,2,3;4,5,6"')
  .requiredOption('--out <file.json>', 'output file: {"shape":[B,T,V],"logits":[...]}')
  .addOption(weightsDtypeOption())
  .action(async (dir: string, o: { ids: string; out: string; weightsDtype: WeightsOption }) => {
    const ids = parseIds(o.ids);
    checkOutPath(o.out, '--out', [dir]);
    const r = await logitsCommand(dir, ids, o.weightsDtype);
    writeFileAtomic(o.out, JSON.stringify(r));
    console.log(`wrote logits ${JSON.stringify(r.shape)} to ${o.out}`);
  });

program.command('grads')
  .description('Gradients of the mean next-token cross-entropy (all B x (T-1) targets) w.r.t. every parameter, as F32 safetensors under HF names.')
  .argument('<model_dir>')
  .requiredOption('--ids <rows>', 'token ids, rows separated by ";" and of equal length')
  .requiredOption('--out <file.safetensors>', 'output file')
  .option('--json', 'print {"loss", "tensors", "out"} as JSON')
  .action(async (dir: string, o: { ids: string; out: string; json?: boolean }) => {
    const ids = parseIds(o.ids);
    checkOutPath(o.out, '--out', [dir]);
    const r = await gradsCommand(dir, ids, o.out);
    if (o.json) console.log(JSON.stringify({ ...r, out: o.out }));
    else console.log(`loss ${r.loss.toFixed(6)}\nwrote ${r.tensors} gradient tensors to ${o.out}`);
  });

program.command('generate')
  .description('Generate text with the KV-cache decoder; prints the text and tokens/s.')
  .argument('<model_dir>')
  .requiredOption('--prompt <text>', 'the prompt')
  .option('--chat', 'wrap the prompt as a user turn with the model\'s chat template')
  .option('--max-new-tokens <n>', 'tokens to generate at most', '64')
  .option('--temperature <t>', '0 = greedy', '0.8')
  .option('--top-k <k>', '0 = off', '0')
  .option('--top-p <p>', '1 = off', '0.95')
  .option('--min-p <p>', '0 = off', '0')
  .option('--seed <s>', 'sampling seed', '0')
  .option('--json', 'print a JSON object instead of streaming text')
  .addOption(weightsDtypeOption())
  .action(async (dir: string, o: Record<string, string | boolean | undefined>) => {
    const json = Boolean(o.json);
    const r = await generateCommand(dir, {
      prompt: String(o.prompt), chat: Boolean(o.chat), weights: o.weightsDtype as WeightsOption,
      maxNewTokens: parseNumber(String(o.maxNewTokens), '--max-new-tokens', { min: 1, integer: true }),
      sampling: {
        temperature: parseNumber(String(o.temperature), '--temperature', { min: 0 }),
        topK: parseNumber(String(o.topK), '--top-k', { min: 0, integer: true }),
        topP: parseNumber(String(o.topP), '--top-p', { min: 0, max: 1 }),
        minP: parseNumber(String(o.minP), '--min-p', { min: 0, max: 1 }),
      },
      seed: parseNumber(String(o.seed), '--seed', { min: 0, integer: true }),
      onText: json ? undefined : (piece) => process.stdout.write(piece),
    });
    if (json) console.log(JSON.stringify(r));
    else {
      process.stdout.write('\n');
      console.error(`${r.new_tokens} tokens, prefill ${r.prefill_tokens_per_s.toFixed(1)} tokens/s, decode ${r.decode_tokens_per_s.toFixed(1)} tokens/s`);
    }
  });

registerScoreCommand(program);
registerPruneCommand(program);
registerSearchCommand(program);
registerDataCommands(program);
registerTrainCommand(program);
registerDistillCommand(program);
registerTeacherCacheCommand(program);
registerExportCommand(program);
registerBenchCommand(program);
registerEvalCommand(program);
registerSftCommand(program);
registerDpoCommand(program);
registerGrpoCommand(program);
registerPipelineCommand(program);

export async function main(argv: string[]): Promise<number> {
  try {
    await program.parseAsync(argv);
    // an action that ended without failing but not as a success (a stopped training run: 130/143)
    // sets process.exitCode; everything else is 0
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof KompresorError) {
      console.error(`kompresor: ${e.message}`);
      // a run a signal stopped mid-step keeps the signal's exit code (130/143), set by the command
      return typeof process.exitCode === 'number' && process.exitCode > 1 ? process.exitCode : 1;
    }
    if (e instanceof CommanderError) {
      if (e.exitCode === 0) return 0; // --help, --version
      console.error(`kompresor: ${renderError(commanderError(e, invoked))}`);
      return 1;
    }
    if (isFileSystemError(e)) {
      // the environment refused (permissions, full disk, a folder removed mid-run): not a bug
      console.error(`kompresor: ${renderError({ code: 'io_error', where: e.path ?? 'file system', rule: `${e.syscall} must succeed`, found: e.message })}`);
      return 1;
    }
    console.error(e);
    return 2;
  }
}

/** A parse error of commander in the documented form (where, rule, expected, found, hint). */
export function commanderError(e: CommanderError, command: string): ErrorFields {
  const text = e.message.replace(/^error: /, '').split('\n').map((l) => l.trim()).filter(Boolean);
  const cmd = command ? `kompresor ${command}` : 'kompresor';
  const hint = `see \`${cmd} --help\``;
  let m: RegExpExecArray | null;
  if (e.code === 'commander.missingMandatoryOptionValue' && (m = /option '(\S+)/.exec(text[0]))) {
    return { code: 'input_invalid', where: `${cmd} ${m[1]}`, rule: 'this option is required', found: 'not given', hint };
  }
  if (e.code === 'commander.unknownOption' && (m = /option '([^']+)'/.exec(text[0]))) {
    return { code: 'input_invalid', where: cmd, rule: 'every option must be one the command knows', found: JSON.stringify(m[1]), hint: text[1] ? `${text[1].replace(/^\(|\)$/g, '')}; ${hint}` : hint };
  }
  if (e.code === 'commander.invalidArgument' && (m = /option '(\S+)[^']*' argument '([^']*)' is invalid\. Allowed choices are (.*)\.$/.exec(text[0]))) {
    return { code: 'input_invalid', where: `${cmd} ${m[1]}`, rule: 'the value must be one of the choices', expected: m[3], found: JSON.stringify(m[2]), hint };
  }
  if (e.code === 'commander.missingArgument' && (m = /argument '([^']+)'/.exec(text[0]))) {
    return { code: 'input_invalid', where: `${cmd} <${m[1]}>`, rule: 'this argument is required', found: 'not given', hint };
  }
  return { code: 'input_invalid', where: cmd, rule: 'the command line must parse', found: text.join(' '), hint };
}

function isFileSystemError(e: unknown): e is NodeJS.ErrnoException & { syscall: string } {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && typeof (e as NodeJS.ErrnoException).syscall === 'string';
}
