// Builds the Polish corpus of the demo from text Debian ships (docs/polish-corpus.md):
//   fortunes-pl, manpages-pl, libreoffice-help-pl  -> paragraphs -> cleaned, filtered, deduplicated
//   -> documents split train/validation/test by a seeded hash of their id
//   -> OUT/{train,validation,test}.jsonl ({"id", "source", "text"} per document) + OUT/manifest.json
// Idempotent: when OUT/manifest.json records the same inputs (package versions, builder sources,
// options) and the files still match their sha256, nothing is rebuilt (--force rebuilds).
// Missing packages are installed with apt when running as root; otherwise it prints the apt line.
//
//   node --import tsx scripts/polish/build_corpus.ts [--out runs/polish/corpus] [--seed 1234]
//        [--validation 0.05] [--test 0.05] [--force] [--no-install] [--json]
import fs from 'node:fs';
import nodePath from 'node:path';
import zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseFortunes, roffToParagraphs, htmlToParagraphs } from './extract.ts';
import { normalizeParagraph, reflowWrapped, rejectReason, words, Deduper, splitOf, SPLITS, type DropReason, type Split, type SplitFractions } from './clean.ts';
import { PACKAGES, ensurePackages, dpkgFiles, licenceOf, type PackageSource } from './sources.ts';

export const CORPUS_VERSION = 1;
const HERE = nodePath.dirname(fileURLToPath(import.meta.url));
/** Files whose content decides the output: a change in any of them rebuilds the corpus. */
const BUILDER_FILES = ['build_corpus.ts', 'extract.ts', 'clean.ts', 'sources.ts'];

export interface CorpusDoc { id: string; source: string; text: string }

export interface SplitStats { documents: number; paragraphs: number; chars: number; words: number; bytes: number; file: string; sha256: string }

export interface CorpusManifest {
  version: number;
  key: string;
  command: string;
  seed: number;
  fractions: SplitFractions;
  sources: {
    package: string; version: string; licence: string; copyright: string; copyright_file: string; copyright_sha256: string;
    about: string; files_read: number; input_bytes: number; documents: number; paragraphs_kept: number;
  }[];
  dropped: Record<DropReason | 'exact_duplicate' | 'near_duplicate' | 'empty_document' | 'man_mdoc_skipped' | 'man_so_link', number>;
  splits: Record<Split, SplitStats>;
}

interface Options { out: string; seed: number; fractions: SplitFractions; force: boolean; install: boolean; json: boolean }

function parseArgs(argv: string[]): Options {
  const o: Options = { out: 'runs/polish/corpus', seed: 1234, fractions: { validation: 0.05, test: 0.05 }, force: false, install: true, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = () => { const x = argv[++i]; if (x === undefined) throw new Error(`${a} needs a value`); return x; };
    if (a === '--out') o.out = v();
    else if (a === '--seed') o.seed = Number(v());
    else if (a === '--validation') o.fractions.validation = Number(v());
    else if (a === '--test') o.fractions.test = Number(v());
    else if (a === '--force') o.force = true;
    else if (a === '--no-install') o.install = false;
    else if (a === '--json') o.json = true;
    else throw new Error(`unknown option ${a} (options: --out DIR --seed N --validation F --test F --force --no-install --json)`);
  }
  return o;
}

const sha256 = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');

/** Paragraphs of one source file, before normalisation; fortunes give one document per entry. */
function documentsOf(src: PackageSource, path: string, bytes: Buffer, counts: CorpusManifest['dropped']): { id: string; paragraphs: string[]; keepLines: boolean }[] {
  const rel = path.replace(/^\/usr\/share\/(games\/fortunes\/pl|man\/pl|libreoffice\/help\/pl\/text)\//, '');
  if (src.kind === 'fortune') {
    return parseFortunes(bytes).map((f, i) => ({ id: `${src.pkg}/${rel}#${i}`, paragraphs: f.split(/\n\s*\n/).map(reflowWrapped), keepLines: true }));
  }
  if (src.kind === 'man') {
    const r = roffToParagraphs(zlib.gunzipSync(bytes).toString('utf8'));
    if (r.skipped === 'mdoc') counts.man_mdoc_skipped++;
    if (r.skipped === 'so') counts.man_so_link++;
    return [{ id: `${src.pkg}/${rel.replace(/\.gz$/, '')}`, paragraphs: r.paragraphs, keepLines: false }];
  }
  return [{ id: `${src.pkg}/${rel}`, paragraphs: htmlToParagraphs(bytes.toString('utf8')), keepLines: false }];
}

export function buildCorpus(o: Options, log: (s: string) => void): CorpusManifest {
  const textSources = PACKAGES.filter((p) => p.kind !== 'dictionary');
  const versions = ensurePackages(PACKAGES.map((p) => p.pkg), o.install, log);
  const builderSha = Object.fromEntries(BUILDER_FILES.map((f) => [f, sha256(fs.readFileSync(nodePath.join(HERE, f)))]));
  const key = sha256(JSON.stringify({ v: CORPUS_VERSION, versions, builderSha, seed: o.seed, fractions: o.fractions }));
  const manifestPath = nodePath.join(o.out, 'manifest.json');
  if (!o.force && fs.existsSync(manifestPath)) {
    const old = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as CorpusManifest;
    const intact = old.key === key && SPLITS.every((s) => {
      const f = nodePath.join(o.out, old.splits[s].file);
      return fs.existsSync(f) && sha256(fs.readFileSync(f)) === old.splits[s].sha256;
    });
    if (intact) { log(`corpus up to date: ${o.out} (--force rebuilds)`); return old; }
  }

  const dropped = Object.fromEntries(['bad_encoding', 'too_short', 'code_or_symbols', 'option_or_list', 'upper_case', 'chat_log', 'profanity',
    'not_polish', 'no_diacritics', 'exact_duplicate', 'near_duplicate', 'empty_document', 'man_mdoc_skipped', 'man_so_link'].map((k) => [k, 0])) as CorpusManifest['dropped'];
  const dedup = new Deduper();
  const out: Record<Split, CorpusDoc[]> = { train: [], validation: [], test: [] };
  const sources: CorpusManifest['sources'] = [];
  for (const src of PACKAGES) {
    const lic = licenceOf(src.pkg, src.licenceFiles);
    const files = dpkgFiles(src.pkg).filter(src.select);
    const entry = { package: src.pkg, version: versions[src.pkg], licence: lic.licence, copyright: lic.copyright, copyright_file: lic.copyrightFile,
      copyright_sha256: lic.copyrightSha256, about: src.about, files_read: files.length, input_bytes: 0, documents: 0, paragraphs_kept: 0 };
    sources.push(entry);
    if (!textSources.includes(src)) { entry.input_bytes = files.reduce((n, f) => n + fs.statSync(f).size, 0); continue; }
    for (const path of files) {
      const bytes = fs.readFileSync(path);
      entry.input_bytes += bytes.length;
      for (const d of documentsOf(src, path, bytes, dropped)) {
        const kept: string[] = [];
        for (const raw of d.paragraphs) {
          const p = normalizeParagraph(raw, d.keepLines);
          if (p === '') continue;
          const why = rejectReason(p);
          if (why) { dropped[why]++; continue; }
          if (!dedup.keep(p)) continue;
          kept.push(p);
        }
        if (kept.length === 0) { dropped.empty_document++; continue; }
        out[splitOf(d.id, o.seed, o.fractions)].push({ id: d.id, source: src.pkg, text: kept.join('\n\n') });
        entry.documents++;
        entry.paragraphs_kept += kept.length;
      }
    }
    log(`${src.pkg} ${versions[src.pkg]}: ${files.length} files, ${entry.documents} documents, ${entry.paragraphs_kept} paragraphs kept`);
  }
  dropped.exact_duplicate = dedup.exactDropped;
  dropped.near_duplicate = dedup.nearDropped;

  fs.mkdirSync(o.out, { recursive: true });
  const splits = {} as Record<Split, SplitStats>;
  for (const s of SPLITS) {
    const body = out[s].map((d) => JSON.stringify(d) + '\n').join('');
    const file = `${s}.jsonl`;
    writeAtomic(nodePath.join(o.out, file), body);
    const text = out[s].map((d) => d.text);
    splits[s] = {
      documents: out[s].length,
      paragraphs: text.reduce((n, t) => n + t.split('\n\n').length, 0),
      chars: text.reduce((n, t) => n + [...t].length, 0),
      words: text.reduce((n, t) => n + words(t).length, 0),
      bytes: text.reduce((n, t) => n + Buffer.byteLength(t), 0),
      file, sha256: sha256(body),
    };
  }
  const manifest: CorpusManifest = {
    version: CORPUS_VERSION, key,
    command: `node --import tsx scripts/polish/build_corpus.ts --out ${o.out} --seed ${o.seed} --validation ${o.fractions.validation} --test ${o.fractions.test}`,
    seed: o.seed, fractions: o.fractions, sources, dropped, splits,
  };
  writeAtomic(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

export function writeAtomic(path: string, body: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, body);
  fs.renameSync(tmp, path);
}

export function formatSplits(m: CorpusManifest): string {
  const rows = SPLITS.map((s) => {
    const x = m.splits[s];
    return `  ${s.padEnd(10)} ${String(x.documents).padStart(6)} docs ${String(x.paragraphs).padStart(7)} paragraphs ${x.chars.toLocaleString('en').padStart(11)} chars ${x.words.toLocaleString('en').padStart(10)} words ${(x.bytes / 2 ** 20).toFixed(2).padStart(6)} MiB`;
  });
  return rows.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === nodePath.resolve(process.argv[1])) {
  try {
    const o = parseArgs(process.argv.slice(2));
    const t0 = Date.now();
    const m = buildCorpus(o, (s) => { if (!o.json) console.error(s); });
    if (o.json) console.log(JSON.stringify(m));
    else {
      console.log(`Polish corpus in ${o.out} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n${formatSplits(m)}`);
      console.log(`  dropped: ${Object.entries(m.dropped).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ')}`);
    }
  } catch (e) {
    console.error(`build_corpus: ${(e as Error).message}`);
    process.exit(1);
  }
}
