// `kompresor export MODEL_DIR --gguf OUT.gguf [--dtype f32|f16|bf16|q8_0]`: a Hugging Face
// checkpoint folder (Llama, Mistral, Qwen2; pruned ones included) as one GGUF file for llama.cpp,
// written tensor by tensor. Progress per tensor on stderr; a summary (or --json) on stdout.
import { Command, Option } from 'commander';
import { exportGguf, EXPORT_DTYPES, type ExportDtype, type ExportSummary } from '../export/gguf_export.ts';
import { checkOutPath } from './args.ts';
import { progressBar, type Progress } from './progress.ts';

const HELP = `
Writes GGUF v3 as llama.cpp's convert_hf_to_gguf.py would, with no Python:
  - LlamaForCausalLM and MistralForCausalLM become arch "llama" (q/k rows permuted for
    llama.cpp's RoPE); Qwen2ForCausalLM becomes arch "qwen2", or "llama" when pruning made
    num_attention_heads * head_dim differ from hidden_size (llama.cpp's qwen2 graph cannot hold it).
  - tied embeddings write no output.weight (llama.cpp reuses token_embd); an explicit head_dim
    goes to attention.key_length/value_length; linear RoPE scaling to rope.scaling.*, llama3
    scaling to a rope_freqs tensor.
  - the tokenizer must be byte-level BPE (tokenizer.json of GPT-2 / Llama 3 / Qwen2 style); its
    vocabulary, merges, special ids and chat template go into tokenizer.*. SentencePiece-style
    tokenizers (Llama 2, Mistral v0.1) are refused.
  - a sliding window (Mistral) is not supported by llama.cpp's llama graph: the export warns
    that outputs agree only for sequences up to the window.
--dtype applies to 2-D weights: f16 (default, as convert_hf_to_gguf), bf16, f32, or q8_0
  (32-value blocks with an f16 scale; rows not a multiple of 32 fall back to f16). Norms and
  biases stay f32.

Examples:
  kompresor export ./pruned --gguf pruned-q8.gguf --dtype q8_0
  kompresor export ./model --gguf model.gguf --json
See docs/gguf.md.`;

export function registerExportCommand(program: Command): void {
  program.command('export')
    .description('Export a checkpoint folder as a GGUF file for llama.cpp (f32, f16, bf16 or q8_0).')
    .argument('<model_dir>', 'a Hugging Face checkpoint folder (config.json, safetensors, tokenizer.json)')
    .requiredOption('--gguf <file>', 'output .gguf file (written atomically)')
    .addOption(new Option('--dtype <type>', 'storage type of the 2-D weights').choices([...EXPORT_DTYPES]).default('f16'))
    .option('--json', 'print the summary as JSON (nothing else on stdout)')
    .addHelpText('after', HELP)
    .action((dir: string, o: { gguf: string; dtype: ExportDtype; json?: boolean }) => {
      checkOutPath(o.gguf, '--gguf', [dir]);
      const progress = tensorLines(!o.json);
      let s: ExportSummary;
      try {
        s = exportGguf(dir, o.gguf, { dtype: o.dtype, onTensor: progress.onTensor });
      } finally {
        progress.stop();
      }
      for (const w of s.warnings) console.error(`kompresor: warning: ${w}`);
      console.log(o.json ? JSON.stringify(s) : formatExport(s));
    });
}

/** A bar on a terminal; otherwise (CI, pipes) one line per tensor on stderr; the progress file, if set, in any case. */
function tensorLines(show: boolean): { onTensor?: (done: number, total: number, name: string, type: string, bytes: number) => void; stop(): void } {
  const lines = show && !process.stderr.isTTY;
  let bar: Progress | null = null;
  return {
    onTensor: (done, total, name, type, bytes) => {
      if (lines) process.stderr.write(`export ${done}/${total} ${name} ${type} ${formatBytes(bytes)}\n`);
      bar ??= progressBar('export', total, 'tensors', '{tensor}', { hidden: !show || lines });
      bar.update(done, { tensor: name });
    },
    stop: () => bar?.stop(),
  };
}

export function formatExport(s: ExportSummary): string {
  const types = Object.entries(s.types).map(([t, n]) => `${n} ${t}`).join(', ');
  const lines = [
    `exported ${s.model_dir} -> ${s.out}`,
    `  arch ${s.gguf_arch} (${s.architecture}), dtype ${s.dtype}: ${s.tensors} tensors (${types})`,
    `  ${s.params.toLocaleString('en-US')} parameters, ${formatBytes(s.bytes)} in ${s.seconds.toFixed(2)} s`,
    `  vocabulary ${s.vocab.tokens.toLocaleString('en-US')} tokens (gpt2 BPE, pre-tokenizer ${s.vocab.pre})`,
  ];
  for (const n of s.notes) lines.push(`  note: ${n}`);
  for (const w of s.warnings) lines.push(`  warning: ${w}`);
  return lines.join('\n');
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}
