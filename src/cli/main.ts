// The `kompresor` command line. Each subcommand parses its flags, calls a library function and
// prints the result (or JSON with --json). Any KompresorError becomes one line on stderr and
// exit code 1; anything else is a bug and prints its stack with exit code 2.
import { Command } from 'commander';
import { KompresorError, renderError } from '../errors.ts';
import { parseIds, parseNumber, checkOutPath } from './args.ts';
import { inspectCommand, formatInspect, logitsCommand, gradsCommand, generateCommand } from './engine_commands.ts';
import { writeFileAtomic } from '../io/atomic.ts';
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
program
  .name('kompresor')
  .description('Minitron-style compression of Hugging Face decoder models on a CPU: score, prune, distill, align, eval, export.')
  .showHelpAfterError('(run with --help for usage)');

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
  .action(async (dir: string, o: { ids: string; out: string }) => {
    const ids = parseIds(o.ids);
    checkOutPath(o.out);
    const r = await logitsCommand(dir, ids);
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
    checkOutPath(o.out);
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
  .action(async (dir: string, o: Record<string, string | boolean | undefined>) => {
    const json = Boolean(o.json);
    const r = await generateCommand(dir, {
      prompt: String(o.prompt), chat: Boolean(o.chat),
      maxNewTokens: parseNumber(String(o.maxNewTokens), '--max-new-tokens', { min: 1, integer: true }),
      sampling: {
        temperature: parseNumber(String(o.temperature), '--temperature', { min: 0 }),
        topK: parseNumber(String(o.topK), '--top-k', { min: 0, integer: true }),
        topP: parseNumber(String(o.topP), '--top-p', { min: 0, max: 1 }),
        minP: parseNumber(String(o.minP), '--min-p', { min: 0, max: 1 }),
      },
      seed: parseNumber(String(o.seed), '--seed', { integer: true }),
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

function isFileSystemError(e: unknown): e is NodeJS.ErrnoException & { syscall: string } {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && typeof (e as NodeJS.ErrnoException).syscall === 'string';
}
