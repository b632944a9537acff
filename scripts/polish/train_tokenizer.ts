// Trains the Polish byte-level BPE tokenizer of the demo on the corpus's train split
// (src/io/bpe_train.ts) and writes a Hugging Face tokenizer folder:
//   OUT/tokenizer.json, OUT/tokenizer_config.json (ChatML template with {% generation %} markers,
//   eos <|im_end|>, pad and bos <|endoftext|>), OUT/train_report.json (merge counts, compression)
// Deterministic: the same corpus gives byte-identical files. Skips the work when OUT/train_report.json
// records the same corpus sha256, vocabulary size and trainer source (--force retrains).
//
//   node --import tsx scripts/polish/train_tokenizer.ts [--corpus runs/polish/corpus] [--out runs/polish/tokenizer]
//        [--vocab-size 4096] [--min-frequency 2] [--force]
import fs from 'node:fs';
import nodePath from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { countPretokens, trainBpe, bpeTokenizerFiles } from '../../src/io/bpe_train.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { writeAtomic, type CorpusManifest } from './build_corpus.ts';

const HERE = nodePath.dirname(fileURLToPath(import.meta.url));
const sha256 = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');

interface Options { corpus: string; out: string; vocabSize: number; minFrequency: number; force: boolean }

function parseArgs(argv: string[]): Options {
  const o: Options = { corpus: 'runs/polish/corpus', out: 'runs/polish/tokenizer', vocabSize: 4096, minFrequency: 2, force: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = () => { const x = argv[++i]; if (x === undefined) throw new Error(`${a} needs a value`); return x; };
    if (a === '--corpus') o.corpus = v();
    else if (a === '--out') o.out = v();
    else if (a === '--vocab-size') o.vocabSize = Number(v());
    else if (a === '--min-frequency') o.minFrequency = Number(v());
    else if (a === '--force') o.force = true;
    else throw new Error(`unknown option ${a} (options: --corpus DIR --out DIR --vocab-size N --min-frequency N --force)`);
  }
  return o;
}

export function readSplit(corpus: string, split: string): { id: string; source: string; text: string }[] {
  const p = nodePath.join(corpus, `${split}.jsonl`);
  if (!fs.existsSync(p)) throw new Error(`${p} not found; build the corpus first: node --import tsx scripts/polish/build_corpus.ts --out ${corpus}`);
  return fs.readFileSync(p, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
}

export function trainTokenizer(o: Options, log: (s: string) => void): Record<string, unknown> {
  const manifest = JSON.parse(fs.readFileSync(nodePath.join(o.corpus, 'manifest.json'), 'utf8')) as CorpusManifest;
  const trainerSha = sha256(fs.readFileSync(nodePath.join(HERE, '../../src/io/bpe_train.ts')) + sha256(fs.readFileSync(fileURLToPath(import.meta.url))));
  const key = sha256(JSON.stringify({ corpus: manifest.splits.train.sha256, vocab: o.vocabSize, minFrequency: o.minFrequency, trainerSha }));
  const reportPath = nodePath.join(o.out, 'train_report.json');
  if (!o.force && fs.existsSync(reportPath)) {
    const old = JSON.parse(fs.readFileSync(reportPath, 'utf8'));
    if (old.key === key && fs.existsSync(nodePath.join(o.out, 'tokenizer.json'))
      && sha256(fs.readFileSync(nodePath.join(o.out, 'tokenizer.json'))) === old.tokenizer_json_sha256) {
      log(`tokenizer up to date: ${o.out} (--force retrains)`);
      return old;
    }
  }
  const t0 = Date.now();
  const counts = new Map<string, number>();
  for (const d of readSplit(o.corpus, 'train')) countPretokens(d.text, counts);
  const res = trainBpe(counts, { vocabSize: o.vocabSize, minFrequency: o.minFrequency });
  const seconds = (Date.now() - t0) / 1000;
  const files = bpeTokenizerFiles(res.merges);
  fs.mkdirSync(o.out, { recursive: true });
  const tokJson = JSON.stringify(files.tokenizerJson);
  writeAtomic(nodePath.join(o.out, 'tokenizer.json'), tokJson);
  writeAtomic(nodePath.join(o.out, 'tokenizer_config.json'), JSON.stringify(files.tokenizerConfig, null, 2) + '\n');

  // compression on the validation split, through the tokenizer library (what training will use)
  const tok = loadTokenizer(o.out);
  let chars = 0, bytes = 0, tokens = 0, wordsN = 0, roundTripFailures = 0;
  for (const d of readSplit(o.corpus, 'validation')) {
    const ids = tok.encode(d.text, { addSpecialTokens: false });
    tokens += ids.length; chars += [...d.text].length; bytes += Buffer.byteLength(d.text); wordsN += d.text.split(/\s+/).filter(Boolean).length;
    if (tok.decode(ids) !== d.text) roundTripFailures++;
  }
  const report = {
    key, vocab_size: files.vocabSize, merges: res.merges.length, min_frequency: o.minFrequency,
    distinct_pretokens: counts.size, train_seconds: seconds,
    validation: { chars, bytes, words: wordsN, tokens, chars_per_token: chars / tokens, bytes_per_token: bytes / tokens, tokens_per_word: tokens / wordsN, round_trip_failures: roundTripFailures },
    special_tokens: files.specialIds, tokenizer_json_sha256: sha256(tokJson),
    corpus_train_sha256: manifest.splits.train.sha256,
    command: `node --import tsx scripts/polish/train_tokenizer.ts --corpus ${o.corpus} --out ${o.out} --vocab-size ${o.vocabSize} --min-frequency ${o.minFrequency}`,
    first_merges: res.merges.slice(0, 20).map(([a, b], i) => ({ pair: [a, b], count: res.counts[i] })),
  };
  writeAtomic(reportPath, JSON.stringify(report, null, 2) + '\n');
  if (roundTripFailures > 0) throw new Error(`${roundTripFailures} validation documents did not decode back to their text`);
  return report;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === nodePath.resolve(process.argv[1])) {
  try {
    const o = parseArgs(process.argv.slice(2));
    const r = trainTokenizer(o, (s) => console.error(s)) as { vocab_size: number; merges: number; train_seconds: number; validation: { chars_per_token: number; tokens_per_word: number; tokens: number } };
    console.log(`Polish tokenizer in ${o.out}: vocabulary ${r.vocab_size} (${r.merges} merges, trained in ${r.train_seconds.toFixed(1)} s); ` +
      `validation: ${r.validation.tokens.toLocaleString('en')} tokens, ${r.validation.chars_per_token.toFixed(2)} chars/token, ${r.validation.tokens_per_word.toFixed(2)} tokens/word`);
  } catch (e) {
    console.error(`train_tokenizer: ${(e as Error).message}`);
    process.exit(1);
  }
}
