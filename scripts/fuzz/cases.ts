// The fuzz target's cases: one seeded generator per input kind (safetensors header, config.json,
// tokenizer files, JSONL rows of data prepare / sft / dpo / grpo, pipeline recipes), each a pure
// function of (seed, index). A case is files to write plus a CLI command line; the runner
// (oracle.ts) writes the files, runs bin/kompresor.mjs and judges the ending.
//
// Command lines use three placeholders: @BASE (the session's healthy tiny model folder), @IN
// (the case's input folder, where its broken files are) and @OUT (its output folder).
import YAML from 'yaml';
import { Pick, caseSeed, badValue, badSize, mutateObject, damageJsonText, mutateLine, flipBytes } from './mutate.ts';
import { sentence, textRow, sftRow, dpoRow, grpoRow } from './base.ts';

export const FAMILIES = ['safetensors', 'config', 'tokenizer', 'prepare', 'sft', 'dpo', 'grpo', 'recipe', 'flags'] as const;
export type Family = (typeof FAMILIES)[number];

export interface FuzzCase {
  index: number;
  family: Family;
  /** What was broken, for the table (e.g. 'config.json: "hidden_size" = huge 2^40'). */
  mutation: string;
  /** Start @IN/model as a copy of @BASE (then `files` overwrite some of it). */
  copyModel: boolean;
  /** Files under @IN, by relative path. */
  files: Record<string, string | Buffer>;
  args: string[];
  /** Outputs may go here (relative to the case folder): 'out', or 'cwd/runs' for a recipe's default run folder. */
  outputs: string[];
}

/** Reads the healthy base files a generator mutates (safetensors bytes, config, tokenizer files). */
export interface BaseFiles {
  safetensors: Buffer;
  config: Record<string, unknown>;
  tokenizer: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
}

/** Case `index` of a session seeded `seed`. */
export function makeCase(seed: number, index: number, base: BaseFiles): FuzzCase {
  const p = new Pick(caseSeed(seed, index));
  const family = FAMILIES[index % FAMILIES.length];
  const c: FuzzCase = { index, family, mutation: '', copyModel: false, files: {}, args: [], outputs: ['out'] };
  GENERATORS[family](p, c, base);
  return c;
}

const GENERATORS: Record<Family, (p: Pick, c: FuzzCase, b: BaseFiles) => void> = {
  safetensors: safetensorsCase, config: configCase, tokenizer: tokenizerCase, prepare: prepareCase,
  sft: (p, c) => alignCase(p, c, 'sft'), dpo: (p, c) => alignCase(p, c, 'dpo'), grpo: (p, c) => alignCase(p, c, 'grpo'), recipe: recipeCase,
  flags: flagsCase,
};

/** A command that reads the model folder @IN/model (every one of them loads all of it). */
function modelCommand(p: Pick): string[] {
  return p.one([
    ['inspect', '@IN/model'],
    ['logits', '@IN/model', '--ids', '1,2,3', '--out', '@OUT/logits.json'],
    ['grads', '@IN/model', '--ids', '1,2,3', '--out', '@OUT/grads.safetensors'],
    ['generate', '@IN/model', '--prompt', 'ala ma', '--max-new-tokens', '3', '--temperature', '0'],
    ['export', '@IN/model', '--gguf', '@OUT/model.gguf', '--dtype', 'f32'],
  ]);
}

// ---------------------------------------------------------------------------------------------
// model files

function safetensorsCase(p: Pick, c: FuzzCase, b: BaseFiles): void {
  c.copyModel = true;
  c.args = modelCommand(p);
  const n = Number(b.safetensors.readBigUInt64LE(0));
  const header = JSON.parse(b.safetensors.subarray(8, 8 + n).toString('utf8')) as Record<string, Record<string, unknown>>;
  const body = b.safetensors.subarray(8 + n);
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const kind = p.int(7);
  let out: Buffer, what: string;
  if (kind === 0) {
    const at = p.int(b.safetensors.length);
    out = b.safetensors.subarray(0, at); what = `cut at byte ${at} of ${b.safetensors.length}`;
  } else if (kind === 1) {
    const v = p.one([0n, 7n, 2n ** 60n, 2n ** 64n - 1n, BigInt(b.safetensors.length), BigInt(n + 8), BigInt(n - 8)]);
    out = Buffer.from(b.safetensors); out.writeBigUInt64LE(v, 0); what = `header length ${v}`;
  } else if (kind === 2) {
    out = flipBytes(p, b.safetensors, 8, 8 + n, 1 + p.int(4)); what = 'random bytes in the header JSON';
  } else {
    const h = structuredClone(header);
    const name = p.one(names);
    what = kind === 3 ? `tensor "${name}": ${mutateObject(p, h[name], ['dtype', 'shape', 'data_offsets'])}`
      : kind === 4 ? `tensor "${name}": ${entryEdit(p, h[name], h[p.one(names)])}`
      : kind === 5 ? tableEdit(p, h, name)
      : `__metadata__ = ${(([l, v]) => { (h as Record<string, unknown>).__metadata__ = v; return l; })(badValue(p))}`;
    out = encodeSafetensors(h, body);
  }
  c.mutation = `model.safetensors: ${what}`;
  c.files['model/model.safetensors'] = out;
}

/** Shape, dtype or offsets edits that keep the entry an object. */
function entryEdit(p: Pick, e: Record<string, unknown>, other: Record<string, unknown>): string {
  const off = e.data_offsets as number[], shape = e.shape as number[];
  return p.one<() => string>([
    () => { e.dtype = p.one(['F64', 'I32', 'U8', 'BF16', 'F16', 'F8_E4M3', 'Q4', 'f32']); return `dtype ${String(e.dtype)}`; },
    () => { e.shape = [...shape, 1]; return 'an extra dimension'; },
    () => { e.shape = [...shape].reverse(); return 'shape reversed'; },
    () => { e.shape = shape.map(() => 0); return 'shape of zeros'; },
    () => { e.shape = [-shape[0], ...shape.slice(1)]; return 'negative dimension'; },
    () => { e.data_offsets = [off[1], off[0]]; return 'offsets swapped'; },
    () => { e.data_offsets = [off[0], 1e20]; return 'end offset 1e20'; },
    () => { e.data_offsets = [-8, off[1]]; return 'negative begin offset'; },
    () => { e.data_offsets = [...(other.data_offsets as number[])]; return 'offsets of another tensor'; },
    () => { e.data_offsets = [off[0] + 4, off[1] + 4]; return 'offsets shifted by 4'; },
  ])();
}

/** Removes, duplicates or renames a tensor, or replaces the whole table. */
function tableEdit(p: Pick, h: Record<string, unknown>, name: string): string {
  const kind = p.int(4);
  if (kind === 0) { delete h[name]; return `tensor "${name}" removed`; }
  if (kind === 1) { h[name + '_copy'] = h[name]; return `tensor "${name}" listed twice`; }
  if (kind === 2) { h['../' + name] = h[name]; delete h[name]; return `tensor "${name}" renamed with ../`; }
  h.lm_head = { dtype: 'F32', shape: [4, 4], data_offsets: [0, 64] };
  return 'an extra tensor lm_head overlapping the first';
}

function encodeSafetensors(header: unknown, body: Buffer): Buffer {
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  const bytes = Buffer.from(json, 'utf8');
  len.writeBigUInt64LE(BigInt(bytes.length));
  return Buffer.concat([len, bytes, body]);
}

const SIZE_KEYS = ['hidden_size', 'num_hidden_layers', 'vocab_size', 'intermediate_size', 'num_attention_heads', 'num_key_value_heads', 'head_dim', 'max_position_embeddings'];

function configCase(p: Pick, c: FuzzCase, b: BaseFiles): void {
  c.copyModel = true;
  c.args = modelCommand(p);
  const cfg = structuredClone(b.config);
  const kind = p.int(5);
  let what: string;
  if (kind <= 1) {
    const key = p.one(SIZE_KEYS);
    const [label, v] = badSize(p);
    cfg[key] = v; what = `"${key}" = ${label}`;
  } else if (kind === 2) what = mutateObject(p, cfg);
  else if (kind === 3) {
    const [label, v] = p.one<[string, unknown]>([
      ['rope_scaling yarn', { rope_type: 'yarn', factor: 4 }], ['rope_scaling factor 0', { type: 'linear', factor: 0 }],
      ['rope_scaling llama3 without fields', { rope_type: 'llama3' }], ['architectures []', []], ['model_type gpt2', 'gpt2'],
      ['hidden_act gelu', 'gelu'], ['sliding_window -1', -1], ['rms_norm_eps 0', 0],
    ]);
    const key = label.split(' ')[0];
    cfg[key] = v; what = label;
  } else {
    const [label, text] = damageJsonText(p, JSON.stringify(cfg, null, 2));
    c.files['model/config.json'] = text;
    c.mutation = `config.json: ${label}`;
    return;
  }
  c.files['model/config.json'] = JSON.stringify(cfg, null, 2);
  c.mutation = `config.json: ${what}`;
}

const TEMPLATES: [string, string][] = [
  ['syntax error', '{% for m in messages %}{{ m.content '],
  ['undefined call', '{{ nothing() }}'],
  ['raise_exception', "{{ raise_exception('no') }}"],
  ['empty', ''],
  ['a loop of 1e4', '{% for i in range(10000) %}x{% endfor %}'],
  ['constructor escape', "{{ ''.constructor.constructor('return process')() }}"],
  ['no generation markers', "{% for m in messages %}{{ m['content'] }}{% endfor %}"],
];

function tokenizerCase(p: Pick, c: FuzzCase, b: BaseFiles): void {
  c.copyModel = true;
  c.args = p.one([
    ['generate', '@IN/model', '--prompt', 'ala ma kota', '--max-new-tokens', '3', '--temperature', '0'],
    ['generate', '@IN/model', '--prompt', 'ala ma kota', '--max-new-tokens', '3', '--temperature', '0', '--chat'],
    ['export', '@IN/model', '--gguf', '@OUT/model.gguf', '--dtype', 'f32'],
    ['data', 'prepare', '--input', '@IN/corpus.txt', '--tokenizer', '@IN/model', '--out', '@OUT/data', '--workers', '0'],
    ['sft', '@IN/model', '--data', '@IN/sft.jsonl', '--out', '@OUT/run', '--steps', '1', '--micro-batch', '2', '--seq-len', '128', '--eval-batches', '1'],
  ]);
  c.files['corpus.txt'] = Array.from({ length: 6 }, () => sentence(p)).join('\n\n') + '\n';
  c.files['sft.jsonl'] = Array.from({ length: 4 }, () => JSON.stringify(sftRow(p))).join('\n') + '\n';
  const tok = structuredClone(b.tokenizer) as Record<string, Record<string, unknown>>;
  const kind = p.int(5);
  if (kind === 0) {
    c.mutation = `tokenizer.json: ${mutateObject(p, tok)}`;
  } else if (kind === 1) {
    c.mutation = `tokenizer.json model: ${mutateObject(p, tok.model, ['type', 'vocab', 'merges', 'unk_token', 'byte_fallback'])}`;
  } else if (kind === 2) {
    const vocab = tok.model.vocab as Record<string, number>;
    const key = p.one(Object.keys(vocab));
    const [label, v] = p.one<[string, number]>([['id -1', -1], ['id 1e9', 1e9], ['a duplicate id', 5], ['id 0.5', 0.5]]);
    vocab[key] = v;
    c.mutation = `tokenizer.json vocab ${JSON.stringify(key)}: ${label}`;
  } else if (kind === 3) {
    const [label, text] = damageJsonText(p, JSON.stringify(tok));
    c.files['model/tokenizer.json'] = text;
    c.mutation = `tokenizer.json: ${label}`;
    return;
  } else {
    const cfg = structuredClone(b.tokenizerConfig);
    const [label, t] = p.one(TEMPLATES);
    cfg.chat_template = t;
    if (p.chance(0.3)) cfg.eos_token = p.one(['<|nope|>', 7, null]);
    c.files['model/tokenizer_config.json'] = JSON.stringify(cfg);
    c.mutation = `tokenizer_config.json: chat template ${label}${'eos_token' in cfg && cfg.eos_token !== b.tokenizerConfig.eos_token ? `, eos_token ${JSON.stringify(cfg.eos_token)}` : ''}`;
    return;
  }
  c.files['model/tokenizer.json'] = JSON.stringify(tok);
}

// ---------------------------------------------------------------------------------------------
// JSON Lines and recipes

/** Valid rows, then 0-2 breaks: a row's field, a raw line, or the whole file. */
function jsonlFile(p: Pick, row: (p: Pick) => Record<string, unknown>, n: number): [string, Buffer] {
  const lines: (string | Buffer)[] = Array.from({ length: n }, () => JSON.stringify(row(p)));
  const edits: string[] = [];
  const k = p.chance(0.15) ? 0 : 1 + p.int(2);
  for (let i = 0; i < k; i++) {
    const at = p.int(lines.length);
    const kind = p.int(5);
    if (kind <= 1) {
      const r = row(p);
      edits.push(`line ${at + 1}: ${mutateObject(p, r)}`);
      lines[at] = JSON.stringify(r);
    } else if (kind <= 3) {
      const [label, l] = mutateLine(p, String(lines[at]));
      edits.push(`line ${at + 1}: ${label}`);
      lines[at] = l;
    } else {
      const [label, all] = p.one<[string, (string | Buffer)[]]>([['empty file', []], ['only blank lines', ['', '  ', '']], ['one line of 200 kB', [JSON.stringify({ ...row(p), text: 'ala '.repeat(50_000) })]]]);
      edits.push(label);
      lines.splice(0, lines.length, ...all);
    }
  }
  const bytes = Buffer.concat(lines.flatMap((l) => [Buffer.from(l), Buffer.from('\n')]));
  return [edits.length ? edits.join('; ') : 'none (valid rows)', bytes];
}

function prepareCase(p: Pick, c: FuzzCase): void {
  if (p.chance(0.3)) {
    const text = Array.from({ length: 6 }, () => sentence(p)).join('\n\n');
    const bytes = p.chance(0.5) ? flipBytes(p, Buffer.from(text), 0, text.length, 3) : Buffer.from(text);
    c.files['corpus.txt'] = bytes;
    c.mutation = bytes.equals(Buffer.from(text)) ? 'corpus.txt: valid' : 'corpus.txt: 3 random bytes';
    c.args = ['data', 'prepare', '--input', '@IN/corpus.txt', '--tokenizer', '@BASE', '--out', '@OUT/data', '--workers', '0'];
    return;
  }
  const [what, bytes] = jsonlFile(p, textRow, 3 + p.int(6));
  c.files['data.jsonl'] = bytes;
  c.mutation = `data.jsonl: ${what}`;
  c.args = ['data', 'prepare', '--input', '@IN/data.jsonl', '--tokenizer', '@BASE', '--out', '@OUT/data', '--workers', '0', '--val-fraction', String(p.one([0, 0.2, 0.5]))];
}

const ALIGN_ROWS = { sft: sftRow, dpo: dpoRow, grpo: grpoRow };

function alignCase(p: Pick, c: FuzzCase, cmd: 'sft' | 'dpo' | 'grpo'): void {
  const [what, bytes] = jsonlFile(p, ALIGN_ROWS[cmd], 3 + p.int(5));
  c.files[`${cmd}.jsonl`] = bytes;
  c.mutation = `${cmd}.jsonl: ${what}`;
  const common = ['--out', '@OUT/run', '--steps', '1', '--seed', '1'];
  if (cmd === 'grpo') {
    c.args = ['grpo', '@BASE', '--data', `@IN/${cmd}.jsonl`, '--reward', p.one(['numeric', 'numeric,length', 'format']), ...common,
      '--num-generations', '2', '--micro-batch', '2', '--max-new-tokens', '3', '--max-prompt-length', '32'];
  } else {
    c.args = [cmd, '@BASE', '--data', `@IN/${cmd}.jsonl`, ...common, '--micro-batch', '2', '--seq-len', '128', '--eval-batches', '1'];
    if (p.chance(0.3)) c.args.push('--eval-data', `@IN/${cmd}.jsonl`);
  }
}

/** A two-step recipe (inspect, export) of the base model, then one break. */
function recipeCase(p: Pick, c: FuzzCase): void {
  const recipe: Record<string, unknown> = {
    name: 'fz', teacher: '@BASE',
    steps: [
      { name: 'look', command: 'inspect', args: { model_dir: '${teacher}' } },
      { name: 'gguf', command: 'export', args: { model_dir: '${teacher}', dtype: 'f32' } },
    ],
  };
  const steps = recipe.steps as Record<string, unknown>[];
  const kind = p.int(6);
  let what: string, text: string | null = null;
  if (kind === 0) what = `top level: ${mutateObject(p, recipe)}`;
  else if (kind === 1) { const s = p.one(steps); what = `step ${String(s.name)}: ${mutateObject(p, s)}`; }
  else if (kind === 2) { const s = p.one(steps); what = `step ${String(s.name)} args: ${mutateObject(p, s.args as Record<string, unknown>)}`; }
  else if (kind === 3) {
    const [label, edit] = p.one<[string, () => void]>([
      ['name ".."', () => { recipe.name = '..'; }], ['name "."', () => { recipe.name = '.'; }], ['name "a/b"', () => { recipe.name = 'a/b'; }],
      ['a forward reference', () => { (steps[0].args as Record<string, unknown>).model_dir = '${steps.gguf.out}'; }],
      ['a self reference', () => { (steps[1].args as Record<string, unknown>).model_dir = '${steps.gguf.model}'; }],
      ['an undefined variable', () => { (steps[0].args as Record<string, unknown>).model_dir = '${nowhere}'; }],
      ['an unknown flag', () => { (steps[1].args as Record<string, unknown>)['no-such-flag'] = 3; }],
      ['duplicate step names', () => { steps[1].name = 'look'; }],
      ['an unknown command', () => { steps[1].command = 'rm'; }],
      ['the output flag set by hand', () => { (steps[1].args as Record<string, unknown>).gguf = '/tmp/x.gguf'; }],
    ]);
    edit(); what = label;
  } else if (kind === 4) {
    [what, text] = p.one<[string, string]>([
      ['a tab indent', 'name: fz\nsteps:\n\t- name: a\n'],
      ['an unclosed quote', 'name: "fz\nteacher: @BASE\n'],
      ['a !!js/function tag', 'name: fz\nteacher: !!js/function "function(){ return 1 }"\nsteps: []\n'],
      ['an alias bomb', 'a: &a ["x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c]\nname: fz\nsteps: []\n'],
      ['a list at the top', '- 1\n- 2\n'],
      ['an empty file', ''],
    ]);
  } else what = 'none (valid recipe)';
  c.files['recipe.yaml'] = text ?? YAML.stringify(recipe);
  c.mutation = `recipe.yaml: ${what}`;
  // a quarter of the runs use the default run folder (runs/<name>, under the working folder)
  if (p.chance(0.25)) { c.args = ['pipeline', '@IN/recipe.yaml']; c.outputs = ['cwd/runs']; }
  else c.args = ['pipeline', '@IN/recipe.yaml', '--out', '@OUT/run'];
}

// ---------------------------------------------------------------------------------------------
// flags

/** Valid command lines on the healthy model; flagsCase breaks one flag of one of them. */
const FLAG_COMMANDS: string[][] = [
  ['generate', '@BASE', '--prompt', 'ala ma', '--max-new-tokens', '3', '--temperature', '0.7', '--top-k', '5', '--top-p', '0.9', '--seed', '1'],
  ['logits', '@BASE', '--ids', '1,2,3;4,5,6', '--out', '@OUT/logits.json'],
  ['export', '@BASE', '--gguf', '@OUT/model.gguf', '--dtype', 'q8_0'],
  ['data', 'prepare', '--input', '@IN/corpus.txt', '--tokenizer', '@BASE', '--out', '@OUT/data', '--workers', '0', '--val-fraction', '0.2', '--seed', '1'],
  ['sft', '@BASE', '--data', '@IN/sft.jsonl', '--out', '@OUT/run', '--steps', '1', '--micro-batch', '2', '--seq-len', '128', '--eval-batches', '1', '--lr', '1e-3', '--warmup', '0'],
  ['grpo', '@BASE', '--data', '@IN/grpo.jsonl', '--reward', 'numeric', '--out', '@OUT/run', '--steps', '1', '--num-generations', '2', '--micro-batch', '2',
    '--max-new-tokens', '3', '--max-prompt-length', '32', '--temperature', '1'],
];

/** Values a numeric or path flag must refuse with one line (none of them costs time or memory). */
const BAD_FLAG_VALUES = ['-1', '0', 'abc', '', 'NaN', '1.5', 'Infinity', '-0', '1e400', ' 2 '];

function flagsCase(p: Pick, c: FuzzCase): void {
  c.files['corpus.txt'] = Array.from({ length: 6 }, () => sentence(p)).join('\n\n') + '\n';
  c.files['sft.jsonl'] = Array.from({ length: 4 }, () => JSON.stringify(sftRow(p))).join('\n') + '\n';
  c.files['grpo.jsonl'] = Array.from({ length: 4 }, () => JSON.stringify(grpoRow(p))).join('\n') + '\n';
  const args = [...p.one(FLAG_COMMANDS)];
  const flags = args.flatMap((a, i) => (a.startsWith('--') ? [i] : []));
  const i = p.one(flags), flag = args[i];
  const kind = p.int(6);
  let what: string;
  if (kind <= 1) {
    const v = /^@OUT/.test(args[i + 1]) ? p.one(['@BASE/model.safetensors', '@BASE/config.json', '@BASE', '', '@IN']) : p.one(BAD_FLAG_VALUES);
    what = `${flag} ${JSON.stringify(v)}${v.startsWith('@BASE') ? " (the model's own files)" : ''}`;
    args[i + 1] = v;
  } else if (kind === 2) { args.splice(i, 2); what = `${flag} left out`; }
  else if (kind === 3) { args.push('--no-such-flag', '1'); what = 'an unknown flag'; }
  else if (kind === 4) { args.push(flag, args[i + 1]); what = `${flag} given twice`; }
  else { args.splice(i + 1, 1); what = `${flag} without its value`; }
  c.args = args;
  c.mutation = `${args[0] === 'data' ? 'data prepare' : args[0]}: ${what}`;
}
