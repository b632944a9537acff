// Builds the Polish instruction data of the demo (docs/polish-corpus.md §5) beside the corpus:
//   OUT/sft.jsonl        chat SFT rows ({"messages": [user, assistant]})
//   OUT/sft_plain.jsonl  arithmetic in the evaluation's plain few-shot format ({"prompt", "completion"})
//   OUT/sft_mix.jsonl    both of the above, the SFT data of the teacher and of the demo's student
//                        (the trainer shuffles rows, so one file after the other is enough)
//   OUT/dpo.jsonl        preference pairs ({"prompt", "chosen", "rejected"}, conversational)
//   OUT/grpo.jsonl       prompts with a numeric answer ({"prompt", "answer"})
//   OUT/manifest.json    counts per task, sha256 per file, the command
// From the TRAIN split, hunspell-pl and the arithmetic problems outside the evaluation's held-out
// fifth; deterministic for a given corpus, dictionary and seed. SFT and DPO use different examples.
//
//   node --import tsx scripts/polish/build_instructions.ts [--corpus runs/polish/corpus]
//        [--out runs/polish/instructions] [--seed 1234] [--sft 4000] [--dpo 1500] [--grpo 1000] [--plain 1000]
// Skips the work when OUT/manifest.json records the same inputs and the files are intact.
import fs from 'node:fs';
import nodePath from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { readSplit } from './train_tokenizer.ts';
import { writeAtomic } from './build_corpus.ts';
import { HUNSPELL_AFF, HUNSPELL_DIC } from './sources.ts';
import { parseAffixes, parseDic, paradigmsFor, suffixForms, type Affixes, type DicEntry } from './hunspell.ts';
import { inflectionItems, inflectionWords, type SourceDoc } from './eval_tasks.ts';
import { Random, hashUnit } from './polish_text.ts';
import {
  trainingProblems, arithmeticExample, arithmeticPlain, numberWordsExample, corpusSentences, completeSentenceExample,
  nextSentenceExample, diacriticsExample, countingExample, masculinePlural, pluralExample, inflectionExample,
  sftRow, dpoRow, grpoRow, type Example, type Sentence,
} from './instructions.ts';

const sha256 = (b: string) => createHash('sha256').update(b).digest('hex');

export interface InstructionOptions { seed: number; sft: number; dpo: number; grpo: number; plain: number }
export const DEFAULT_INSTRUCTIONS: InstructionOptions = { seed: 1234, sft: 4000, dpo: 1500, grpo: 1000, plain: 1000 };

/** Share of each task in SFT and DPO (normalised); GRPO uses only tasks with numeric answers. */
const MIX: Record<string, number> = {
  arithmetic: 0.30, number_words: 0.10, complete_sentence: 0.12, next_sentence: 0.10, diacritics: 0.12, plural: 0.09, inflection: 0.12, counting: 0.05,
};
const GRPO_MIX: Record<string, number> = { arithmetic: 0.6, number_words: 0.15, counting: 0.25 };

export interface Inputs {
  train: SourceDoc[];
  affixes: Affixes;
  entries: DicEntry[];
}

/** An endless, deterministic stream of examples of one kind. */
type Stream = () => Example | null;

function streams(inp: Inputs, seed: number): Record<string, Stream> {
  const rnd = new Random(seed);
  const problems = trainingProblems(seed);
  let pi = 0;
  const sentences = corpusSentences(inp.train).sort((a, b) => hashUnit(`${seed}/s/${a.doc}/${a.text}`) - hashUnit(`${seed}/s/${b.doc}/${b.text}`));
  const withNext = sentences.filter((s) => s.next !== null);
  let si = 0, ni = 0, di = 0, ci = 0;
  const at = <T>(xs: T[], i: number) => xs[i % xs.length];
  /** A sentence of another document, chosen by the stream position i. */
  const otherThan = (s: Sentence, i: number): Sentence => {
    for (let k = 1; k < 50; k++) { const o = at(sentences, i + 7919 * k); if (o.doc !== s.doc) return o; }
    return at(sentences, i + 1);
  };

  // inflection: the evaluation's generator over train documents, as cloze questions
  const index = paradigmsFor(inflectionWords(inp.train), inp.entries, inp.affixes);
  const infl = inflectionItems(inp.train, index, { seed, n: 1e9, perDoc: 50 });
  let iIdx = 0;

  // plural: masculine nouns that occur in the train text at least twice and are no form of another entry
  const freq = new Map<string, number>();
  for (const d of inp.train) for (const m of d.text.matchAll(/\p{L}+/gu)) { const w = m[0].toLowerCase(); freq.set(w, (freq.get(w) ?? 0) + 1); }
  const nouns: { stem: string; pl: string; gen: string | null }[] = [];
  for (const e of inp.entries) {
    if ((freq.get(e.stem) ?? 0) < 2 || (index.get(e.stem)?.length ?? 0) !== 1) continue;
    const pl = masculinePlural(e, inp.affixes);
    if (pl) nouns.push({ stem: e.stem, pl, gen: suffixForms(e.stem, 'T', inp.affixes)[0] ?? null });
  }
  nouns.sort((a, b) => hashUnit(`${seed}/n/${a.stem}`) - hashUnit(`${seed}/n/${b.stem}`));
  let nIdx = 0;

  return {
    arithmetic: () => arithmeticExample(at(problems, pi++), rnd),
    number_words: () => numberWordsExample(rnd.next() < 0.7 ? rnd.int(0, 100) : rnd.int(101, 9999), rnd),
    complete_sentence: () => { const s = at(sentences, si); return completeSentenceExample(s, otherThan(s, si++), rnd); },
    next_sentence: () => { const s = at(withNext, ni); return nextSentenceExample(s, otherThan(s, 3 * ni++)); },
    diacritics: () => diacriticsExample(at(sentences, 3 * di++ + 1), rnd),
    plural: () => { if (nouns.length === 0) return null; const n = at(nouns, nIdx++); return pluralExample(n.stem, n.pl, n.gen, rnd); },
    inflection: () => {
      if (infl.length === 0) return null;
      const it = at(infl, iIdx++);
      return inflectionExample(it.sentence, it.lemma, it.word, it.forms.find((f) => f !== it.word)!);
    },
    counting: () => countingExample(at(sentences, 5 * ci++ + 2), rnd),
  };
}

/** n examples drawn from the streams in the given proportions (largest remainder, then interleaved by hash). */
function draw(ss: Record<string, Stream>, mix: Record<string, number>, n: number, seed: number, tag: string, filter: (e: Example) => boolean = () => true): Example[] {
  const total = Object.values(mix).reduce((a, b) => a + b, 0);
  const kinds = Object.keys(mix);
  const quota = kinds.map((k) => Math.floor((n * mix[k]) / total));
  let left = n - quota.reduce((a, b) => a + b, 0);
  for (let i = 0; left > 0; i = (i + 1) % kinds.length, left--) quota[i]++;
  const out: { e: Example; h: number }[] = [];
  kinds.forEach((k, i) => {
    let misses = 0;
    for (let got = 0; got < quota[i] && misses < 10 * quota[i] + 10;) {
      const e = ss[k]();
      if (e === null || !filter(e)) { misses++; continue; }
      out.push({ e, h: hashUnit(`${seed}/${tag}/${k}/${got}`) });
      got++;
    }
  });
  return out.sort((a, b) => a.h - b.h).map((x) => x.e);
}

export interface InstructionFiles { files: Record<string, string>; counts: Record<string, Record<string, number>> }

export function buildInstructionFiles(inp: Inputs, o: InstructionOptions = DEFAULT_INSTRUCTIONS): InstructionFiles {
  const ss = streams(inp, o.seed);
  const sft = draw(ss, MIX, o.sft, o.seed, 'sft');
  const dpo = draw(ss, MIX, o.dpo, o.seed, 'dpo');        // the streams continue: other examples than SFT's
  const grpo = draw(ss, GRPO_MIX, o.grpo, o.seed, 'grpo', (e) => e.numeric !== undefined);
  const rnd = new Random(o.seed + 7);
  const plainProblems = trainingProblems(o.seed + 7).slice(0, o.plain);
  const jsonl = (xs: object[]) => xs.map((x) => JSON.stringify(x) + '\n').join('');
  const plain = jsonl(plainProblems.map((p) => arithmeticPlain(p, rnd)));
  const tally = (xs: Example[]) => xs.reduce<Record<string, number>>((m, e) => { m[e.task] = (m[e.task] ?? 0) + 1; return m; }, {});
  return {
    files: {
      'sft.jsonl': jsonl(sft.map(sftRow)),
      'sft_plain.jsonl': plain,
      'sft_mix.jsonl': jsonl(sft.map(sftRow)) + plain,
      'dpo.jsonl': jsonl(dpo.map(dpoRow)),
      'grpo.jsonl': jsonl(grpo.map(grpoRow)),
    },
    counts: { sft: tally(sft), dpo: tally(dpo), grpo: tally(grpo), sft_plain: { arithmetic_plain: plainProblems.length } },
  };
}

function parseArgs(argv: string[]): InstructionOptions & { corpus: string; out: string } {
  const o = { ...DEFAULT_INSTRUCTIONS, corpus: 'runs/polish/corpus', out: 'runs/polish/instructions' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = () => { const x = argv[++i]; if (x === undefined) throw new Error(`${a} needs a value`); return x; };
    if (a === '--corpus') o.corpus = v();
    else if (a === '--out') o.out = v();
    else if (a === '--seed') o.seed = Number(v());
    else if (a === '--sft') o.sft = Number(v());
    else if (a === '--dpo') o.dpo = Number(v());
    else if (a === '--grpo') o.grpo = Number(v());
    else if (a === '--plain') o.plain = Number(v());
    else throw new Error(`unknown option ${a} (options: --corpus DIR --out DIR --seed N --sft N --dpo N --grpo N --plain N)`);
  }
  return o;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === nodePath.resolve(process.argv[1])) {
  try {
    const o = parseArgs(process.argv.slice(2));
    for (const f of [HUNSPELL_AFF, HUNSPELL_DIC]) if (!fs.existsSync(f)) throw new Error(`${f} not found; install hunspell-pl (build_corpus.ts does as root)`);
    const latin2 = new TextDecoder('iso-8859-2');
    const corpusManifest = JSON.parse(fs.readFileSync(nodePath.join(o.corpus, 'manifest.json'), 'utf8'));
    // up to date when the train split, the options and the generator sources are the same
    const here = nodePath.dirname(fileURLToPath(import.meta.url));
    const sources = ['build_instructions.ts', 'instructions.ts', 'eval_tasks.ts', 'hunspell.ts', 'polish_text.ts', 'clean.ts']
      .map((f) => sha256(fs.readFileSync(nodePath.join(here, f), 'utf8')));
    const key = sha256(JSON.stringify({ train: corpusManifest.splits.train.sha256, o: { ...o, out: '' }, sources, dic: sha256(latin2.decode(fs.readFileSync(HUNSPELL_DIC))) }));
    const manifestPath = nodePath.join(o.out, 'manifest.json');
    if (fs.existsSync(manifestPath)) {
      const old = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as { key?: string; files: Record<string, { sha256: string }> };
      const intact = old.key === key && Object.entries(old.files).every(([f, x]) => fs.existsSync(nodePath.join(o.out, f)) && sha256(fs.readFileSync(nodePath.join(o.out, f), 'utf8')) === x.sha256);
      if (intact) { console.log(`instruction data up to date: ${o.out}`); process.exit(0); }
    }
    const inp: Inputs = {
      train: readSplit(o.corpus, 'train'),
      affixes: parseAffixes(latin2.decode(fs.readFileSync(HUNSPELL_AFF))),
      entries: parseDic(latin2.decode(fs.readFileSync(HUNSPELL_DIC))),
    };
    const { files, counts } = buildInstructionFiles(inp, o);
    fs.mkdirSync(o.out, { recursive: true });
    for (const [name, body] of Object.entries(files)) writeAtomic(nodePath.join(o.out, name), body);
    writeAtomic(manifestPath, JSON.stringify({
      generator: 'scripts/polish/build_instructions.ts', key,
      command: `node --import tsx scripts/polish/build_instructions.ts --corpus ${o.corpus} --out ${o.out} --seed ${o.seed} --sft ${o.sft} --dpo ${o.dpo} --grpo ${o.grpo} --plain ${o.plain}`,
      corpus_train_sha256: corpusManifest.splits.train.sha256,
      counts,
      files: Object.fromEntries(Object.entries(files).map(([k, v]) => [k, { rows: v.split('\n').length - 1, bytes: Buffer.byteLength(v), sha256: sha256(v) }])),
    }, null, 2) + '\n');
    console.log(`Polish instruction data in ${o.out}: ${Object.entries(counts).map(([k, c]) => `${k} ${Object.values(c).reduce((a, b) => a + b, 0)}`).join(', ')}`);
  } catch (e) {
    console.error(`build_instructions: ${(e as Error).message}`);
    process.exit(1);
  }
}
