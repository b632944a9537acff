// `kompresor export MODEL_DIR --gguf OUT.gguf [--dtype TYPE] [--calibration SCORES.json]`: a Hugging Face
// checkpoint folder (Llama, Mistral, Qwen2; pruned ones included) as one GGUF file for llama.cpp,
// written tensor by tensor. Progress per tensor on stderr; a summary (or --json) on stdout.
import fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { Command, Option } from 'commander';
import { exportGguf, EXPORT_DTYPES, type ExportDtype, type ExportSummary } from '../export/gguf_export.ts';
import { measureQuality, type QualityFile, type QualityReport } from '../eval/gguf_quality.ts';
import { checkOutPath, parseNumber } from './args.ts';
import { defaultThreads } from './bench_command.ts';
import { progressBar, type Progress } from './progress.ts';

const HELP = `
Writes GGUF v3 as llama.cpp's convert_hf_to_gguf.py would, with no Python:
  - LlamaForCausalLM and MistralForCausalLM become arch "llama" (q/k rows permuted for
    llama.cpp's RoPE); Qwen2ForCausalLM becomes arch "qwen2", or "llama" when pruning made
    num_attention_heads * head_dim differ from hidden_size (llama.cpp's qwen2 graph cannot hold it).
  - tied embeddings write no output.weight (llama.cpp reuses token_embd); an explicit head_dim
    goes to attention.key_length/value_length; linear RoPE scaling to rope.scaling.*, llama3
    scaling to a rope_freqs tensor.
  - the tokenizer must be BPE: byte-level (GPT-2 / Llama 3 / Qwen2 style: llama.cpp's gpt2
    tokenizer, with merges) or SentencePiece-style (byte_fallback and "▁", as Llama 2, Mistral,
    Bielik: llama.cpp's llama tokenizer, scores from the merge ranks); special ids, add-bos/eos
    and the chat template go along. WordPiece and Unigram are refused.
  - a sliding window (Mistral) is not supported by llama.cpp's llama graph: the export warns
    that outputs agree only for sequences up to the window.
--dtype applies to 2-D weights: f16 (default, as convert_hf_to_gguf), bf16, f32, q8_0, or the
  4-6 bit types of llama-quantize: q4_0, q4_k_m, q5_k_m (Q4_K/Q5_K with Q6_K for the head and for
  attn_v/ffn_down in some layers), q6_k. A row length the block does not divide falls back as
  llama.cpp does (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, else F16), listed in the summary.
  Norms and biases stay f32.
--calibration SCORES.json (from \`kompresor score\`) weights each block's rounding error by the
  mean square of its input channel over the calibration tokens (an importance matrix), so one
  calibration pass serves pruning and quantization.

--quality-text held.jsonl: the quantization report. Each file (and an f16 reference; with
  --calibration also an unweighted twin of each 4-6 bit type) is loaded in llama.cpp: bits per
  byte on the held-out documents, the change against f16, file size and decode tokens/s.
Several types: --dtype q8_0 q4_k_m writes OUT.gguf (q8_0) and OUT-q4_k_m.gguf; --json then prints
  the first type's summary with "others" (the rest) and "quality" (the report, or null).

Examples:
  kompresor export ./pruned --gguf pruned-q8.gguf --dtype q8_0
  kompresor export ./pruned --gguf pruned-q4km.gguf --dtype q4_k_m --calibration scores.json
  kompresor export ./pruned --gguf p.gguf --dtype q8_0 q4_k_m --calibration scores.json --quality-text held.jsonl
  kompresor export ./model --gguf model.gguf --json
See docs/gguf.md.`;

export interface ExportFlags {
  gguf: string; dtype: ExportDtype[]; calibration?: string; json?: boolean;
  qualityText?: string; qualityDocs: number; qualityTokens: number; threads: number;
}

/** What `export --json` prints: the first type's summary, the other types', and the quality report. */
export type ExportResult = ExportSummary & { others: ExportSummary[]; quality: QualityReport | null };

export function registerExportCommand(program: Command): void {
  program.command('export')
    .description('Export a checkpoint folder as a GGUF file for llama.cpp (f32 and f16 to 4-bit k-quants).')
    .argument('<model_dir>', 'a Hugging Face checkpoint folder (config.json, safetensors, tokenizer.json)')
    .requiredOption('--gguf <file>', 'output .gguf file (written atomically); with several --dtype, the first type\'s')
    .addOption(new Option('--dtype <types...>', 'storage type of the 2-D weights; several write one file each (OUT-<type>.gguf after the first)')
      .choices([...EXPORT_DTYPES]).default(['f16']))
    .option('--calibration <scores>', 'scores file of `kompresor score`: weights the quantization error by input-channel mean squares')
    .option('--quality-text <jsonl>', 'held-out text ("text" per line): report bits per byte and decode speed in llama.cpp per type, against f16')
    .option('--quality-docs <n>', 'documents of --quality-text used', (v) => parseNumber(v, '--quality-docs', { min: 1, integer: true }), 64)
    .option('--quality-tokens <n>', 'tokens per document at most', (v) => parseNumber(v, '--quality-tokens', { min: 2, integer: true }), 256)
    .option('--threads <n>', 'llama.cpp threads for the quality report (default: one core fewer than the machine has, as bench)',
      (v) => parseNumber(v, '--threads', { min: 1, integer: true }), defaultThreads('llama.cpp'))
    .option('--json', 'print the summary as JSON (nothing else on stdout)')
    .addHelpText('after', HELP)
    .action(async (dir: string, o: ExportFlags) => {
      const dtypes = [...new Set(o.dtype)];
      // every file it will write is checked before the first is (none may land on the model's own files)
      for (const [i, dtype] of dtypes.entries()) checkOutPath(i === 0 ? o.gguf : typedPath(o.gguf, dtype), '--gguf', [dir]);
      const summaries: ExportSummary[] = [];
      for (const [i, dtype] of dtypes.entries()) {
        const progress = tensorLines(!o.json);
        try {
          summaries.push(exportGguf(dir, i === 0 ? o.gguf : typedPath(o.gguf, dtype), { dtype, calibration: o.calibration, onTensor: progress.onTensor }));
        } finally {
          progress.stop();
        }
      }
      const quality = o.qualityText ? await qualityReport(dir, summaries, o) : null;
      for (const s of summaries) for (const w of s.warnings) console.error(`kompresor: warning: ${w}`);
      const result: ExportResult = { ...summaries[0], others: summaries.slice(1), quality };
      console.log(o.json ? JSON.stringify(result) : [...summaries.map(formatExport), ...(quality ? [formatQuality(quality)] : [])].join('\n'));
    });
}

/** OUT.gguf -> OUT-<dtype>.gguf, the file of every type after the first. */
export function typedPath(out: string, dtype: string): string {
  return out.toLowerCase().endsWith('.gguf') ? `${out.slice(0, -5)}-${dtype}.gguf` : `${out}-${dtype}`;
}

const BLOCK_DTYPES = new Set(['q4_0', 'q4_k_m', 'q5_k_m', 'q6_k']);

/**
 * Every written file in llama.cpp against an f16 reference (the written one, or a temporary
 * export), plus, with --calibration, an unweighted twin of each block type (temporary), so the
 * report shows what the weighting buys.
 */
async function qualityReport(dir: string, written: ExportSummary[], o: ExportFlags): Promise<QualityReport> {
  const tmp = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'kompresor-quality-'));
  try {
    const file = (s: ExportSummary, weighted: boolean): QualityFile =>
      ({ dtype: s.dtype, weighted, path: s.out, bytes: s.bytes, bits_per_weight: s.bits_per_weight });
    const f16 = written.find((s) => s.dtype === 'f16') ?? exportGguf(dir, nodePath.join(tmp, 'f16.gguf'), { dtype: 'f16' });
    const files = [file(f16, false)];
    for (const s of written) {
      if (s === f16) continue;
      const block = BLOCK_DTYPES.has(s.dtype);
      if (block && o.calibration) files.push(file(exportGguf(dir, nodePath.join(tmp, `${s.dtype}-unweighted.gguf`), { dtype: s.dtype }), false));
      files.push(file(s, block && o.calibration !== undefined));
    }
    return await measureQuality(files, dir, o.qualityText!, {
      documents: o.qualityDocs, maxTokens: o.qualityTokens, threads: o.threads, kept: new Set(written.map((s) => s.out)),
    });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

export function formatQuality(q: QualityReport): string {
  const lines = [`quality in ${q.backend}, ${q.threads} threads: ${q.documents} documents of ${q.text} (${q.tokens.toLocaleString('en-US')} tokens, ${q.bytes.toLocaleString('en-US')} bytes)`,
    '  type     weighted  size       bits/param  bits/byte  vs f16    decode tok/s'];
  for (const r of q.rows) {
    lines.push(`  ${r.dtype.padEnd(8)} ${(BLOCK_DTYPES.has(r.dtype) ? (r.weighted ? 'yes' : 'no') : '-').padEnd(9)} ${formatBytes(r.bytes).padEnd(10)} ` +
      `${r.bits_per_weight.toFixed(2).padStart(10)}  ${r.bits_per_byte.toFixed(4).padStart(9)}  ${((r.vs_f16_percent >= 0 ? '+' : '') + r.vs_f16_percent.toFixed(2) + '%').padStart(7)}  ${r.decode_tokens_per_s.toFixed(0).padStart(12)}`);
  }
  return lines.join('\n');
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
    `  ${s.params.toLocaleString('en-US')} parameters, ${formatBytes(s.bytes)} (${s.bits_per_weight.toFixed(2)} bits per parameter) in ${s.seconds.toFixed(2)} s`,
    s.vocab.model === 'gpt2' ? `  vocabulary ${s.vocab.tokens.toLocaleString('en-US')} tokens (gpt2 BPE, pre-tokenizer ${s.vocab.pre})`
      : `  vocabulary ${s.vocab.tokens.toLocaleString('en-US')} tokens (llama SentencePiece-style BPE)`,
  ];
  if (s.calibration) lines.push(`  quantization weighted by the input mean squares of ${s.calibration}`);
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
