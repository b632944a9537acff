// Recipes for `kompresor pipeline`: a YAML file naming a teacher, its data and an ordered list of
// steps, each one kompresor command with its flags. Everything is checked up front, before any
// step runs (docs/pipeline.md):
//   - the file's keys (name, teacher, data, student, vars, steps) and each step's (name, command, args);
//   - each command against the real CLI's definitions (a CommandCatalog read off commander):
//     its flags, its positional argument(s), commander's mandatory options and the flags the
//     pipeline knows a new run needs (STEP_RULES);
//   - every ${...} reference: a variable, ${run_dir}, or an EARLIER step's out / model / dir.
// Each error is one line naming the recipe file, its line, the step and the key.
// The result is a plan: per step the argv of the child process, where its output goes
// (RUN_DIR/steps/<name>/...), and the earlier steps it reads from.
// Limits: values are strings, numbers, booleans or lists of them; paths are passed to the commands
// as written (relative ones are relative to the folder the pipeline runs in).
import fs from 'node:fs';
import nodePath from 'node:path';
import { parseDocument, LineCounter, isMap, isSeq, isScalar, type Node, type Document } from 'yaml';
import { KompresorError } from '../errors.ts';

// ---------------------------------------------------------------------------------------------
// what the CLI offers (filled from commander by src/cli/pipeline_command.ts)

export interface OptionSpec {
  /** The flag without dashes, e.g. "seq-len" or "no-report". */
  flag: string;
  takesValue: boolean;
  variadic: boolean;
  /** commander's requiredOption. */
  mandatory: boolean;
}

export interface CommandSpec {
  /** "prune", or "data prepare" for a subcommand. */
  name: string;
  positionals: { name: string; required: boolean; variadic: boolean }[];
  options: Map<string, OptionSpec>;
}

export type CommandCatalog = Map<string, CommandSpec>;

/** What the pipeline knows about a command beyond its flags. */
export interface StepRule {
  /** The flag the pipeline sets to RUN_DIR/steps/<name>/<file>; `model`: where the model lands. */
  output?: { flag: string; file: string; model?: 'out' | 'out/final' };
  /** Flags (or positional names) a new run needs, beyond commander's mandatory ones; each entry is "one of". */
  needs?: string[][];
}

const BUDGET = ['steps', 'tokens'];
const RUN = { flag: 'out', file: 'run', model: 'out/final' } as const;

export const STEP_RULES: Record<string, StepRule> = {
  'data prepare': { output: { flag: 'out', file: 'data' } },
  score: { output: { flag: 'out', file: 'scores.json' } },
  prune: { output: { flag: 'out', file: 'model', model: 'out' } },
  search: { output: { flag: 'out', file: 'model', model: 'out' } },
  train: { output: RUN, needs: [['model_dir', 'init'], ['data'], BUDGET] },
  distill: { output: RUN, needs: [['teacher'], ['student'], ['data'], BUDGET] },
  'teacher-cache': { output: { flag: 'out', file: 'cache' }, needs: [BUDGET] },
  sft: { output: RUN, needs: [['model_dir'], ['data'], BUDGET] },
  dpo: { output: RUN, needs: [['model_dir'], ['data'], BUDGET] },
  grpo: { output: RUN, needs: [['model_dir'], ['data'], ['reward'], BUDGET] },
  eval: { output: { flag: 'out', file: 'results.json' } },
  export: { output: { flag: 'gguf', file: 'model.gguf' } },
  logits: { output: { flag: 'out', file: 'logits.json' } },
  grads: { output: { flag: 'out', file: 'grads.safetensors' } },
};

/** Flags the runner adds itself. */
const RUNNER_FLAGS = new Set(['json', 'resume']);

// ---------------------------------------------------------------------------------------------
// the plan

export type ArgValue = string | true | string[];

export interface PlannedStep {
  name: string;
  /** 0-based position in the recipe. */
  index: number;
  command: string;
  /** Resolved values by key (flag without dashes, or a positional's name), in recipe order. */
  args: Record<string, ArgValue>;
  /** The child's arguments after `kompresor` (output flag and --json included), final paths. */
  argv: string[];
  /** RUN_DIR/steps/<name>: result.json, log.txt and the output live here once the step finished. */
  dir: string;
  /** The output path (file or folder), or null for commands without one (inspect, bench...). */
  out: string | null;
  /** The model folder the step produces (prune: out; trainers: out/final), or null. */
  model: string | null;
  /** Whether a stopped run continues with `--resume` (the command has that flag). */
  resumable: boolean;
  /** Names of the earlier steps whose outputs the arguments use. */
  deps: string[];
}

export interface Plan {
  file: string;
  name: string;
  runDir: string;
  teacher: string | null;
  data: string[];
  /** The model the headline numbers describe (recipe `student`), or null. */
  student: string | null;
  vars: Record<string, string | string[]>;
  steps: PlannedStep[];
}

export interface RecipeOptions {
  /** RUN_DIR (default runs/<name>). */
  runDir?: string;
  /** --set key=value overrides of variables (teacher, data, student or a vars key). */
  set?: string[];
}

export const OUTPUT_FIELDS = ['out', 'model', 'dir'] as const;
const TOP_KEYS = ['name', 'teacher', 'data', 'student', 'vars', 'steps'];
const STEP_KEYS = ['name', 'command', 'args', 'about'];
const BUILTINS = ['run_dir', 'name'];
const REF = /\$\{([^}]*)\}/g;

// ---------------------------------------------------------------------------------------------
// entry point

/** Reads, checks and resolves a recipe file into a plan. Throws a one-line KompresorError. */
export function loadRecipe(file: string, catalog: CommandCatalog, o: RecipeOptions = {}): Plan {
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) {
    throw new KompresorError({ code: 'file_not_found', where: file, rule: 'the recipe must be a YAML file', found: 'no such file' });
  }
  return parseRecipe(fs.readFileSync(file, 'utf8'), file, catalog, o);
}

/** The same from the text of a recipe (`file` names it in errors). */
export function parseRecipe(text: string, file: string, catalog: CommandCatalog, o: RecipeOptions = {}): Plan {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const at = e.linePos?.[0] ? `:${e.linePos[0].line}` : '';
    const what = e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
    throw new KompresorError({ code: 'config_invalid', where: `${file}${at}`, rule: 'the recipe must be valid YAML', found: what,
      hint: 'quote values that start with ${...} inside [ ] or { } (flow style), or use block style' });
  }
  const r = new Reader(doc, lines, file);
  return r.plan(catalog, o);
}

// ---------------------------------------------------------------------------------------------
// reading the document

type Raw = string | number | boolean | null | Raw[];
interface Entry { value: Raw; path: (string | number)[] }

/** A step as read from the file, before resolution. */
interface RawStep { name: string; command: string; args: [key: string, e: Entry][]; index: number }

class Reader {
  private vars = new Map<string, Entry>();
  private steps: RawStep[] = [];
  private resolving: string[] = [];
  private cache = new Map<string, ArgValue>();
  private runDir = '';
  private name = '';

  constructor(private doc: Document, private lines: LineCounter, private file: string) {}

  /** "recipe.yaml:12 steps.prune.args.scores" (the line of the node at `path`, or of the nearest parent found). */
  where(path: (string | number)[], label = this.label(path)): string {
    for (let n = path.length; n >= 0; n--) {
      const node = this.doc.getIn(path.slice(0, n), true) as Node | undefined;
      if (node?.range) return `${this.file}:${this.lines.linePos(node.range[0]).line} ${label}`.trimEnd();
    }
    return `${this.file} ${label}`.trimEnd();
  }

  /** steps[3] -> steps.<its name> when the step has a name. */
  label(path: (string | number)[]): string {
    const out: string[] = [];
    for (let i = 0; i < path.length; i++) {
      const p = path[i];
      if (path[i - 1] === 'steps' && typeof p === 'number') out.push(this.steps[p]?.name ?? this.rawStepName(p) ?? `[${p}]`);
      else out.push(String(p));
    }
    return out.join('.');
  }

  private rawStepName(i: number): string | null {
    const n = this.doc.getIn(['steps', i, 'name']);
    return typeof n === 'string' && n !== '' ? n : null;
  }

  fail(path: (string | number)[], rule: string, f: { expected?: string; found?: string; hint?: string } = {}, label?: string): never {
    throw new KompresorError({ code: 'config_invalid', where: this.where(path, label), rule, ...f });
  }

  plan(catalog: CommandCatalog, o: RecipeOptions): Plan {
    const root = this.doc.contents;
    if (!isMap(root)) this.fail([], 'a recipe is a mapping with name, teacher, data, vars and steps', { found: root ? 'another kind of YAML value' : 'an empty file' });
    for (const pair of root.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : '?';
      if (!TOP_KEYS.includes(key)) this.fail([key], 'unknown key', { expected: `one of ${TOP_KEYS.join(', ')}`, found: JSON.stringify(key), hint: closest(key, TOP_KEYS) });
    }
    this.name = this.scalarString(['name'], 'the recipe name');
    // no leading ".": "." and ".." would make the project root or its parent the run folder
    if (!/^[\w-][\w.-]*$/.test(this.name)) this.fail(['name'], 'the name must be letters, digits, "_", "-" or "." and not start with "."', { found: JSON.stringify(this.name), hint: 'it names the default run folder, runs/<name>' });
    this.runDir = nodePath.normalize(o.runDir ?? nodePath.join('runs', this.name));
    this.readVars();
    this.applySets(o.set ?? []);
    this.readSteps(catalog);
    const steps = this.steps.map((s) => this.planStep(s, catalog));
    const teacher = this.vars.has('teacher') ? this.resolveVar('teacher', ['teacher'], this.steps.length) : null;
    const data = this.vars.has('data') ? this.resolveVar('data', ['data'], this.steps.length) : null;
    const student = this.vars.has('student') ? this.resolveVar('student', ['student'], this.steps.length) : null;
    const single = (v: ArgValue | null, key: string) => {
      if (v === null) return null;
      if (typeof v !== 'string') this.fail([key], `${key} must be one path`, { found: JSON.stringify(v) });
      return v;
    };
    const vars: Record<string, string | string[]> = {};
    for (const k of this.vars.keys()) {
      const v = this.resolveVar(k, this.vars.get(k)!.path, this.steps.length);
      vars[k] = v === true ? 'true' : v;
    }
    return {
      file: this.file, name: this.name, runDir: this.runDir, teacher: single(teacher, 'teacher'),
      data: data === null ? [] : typeof data === 'string' ? [data] : data === true ? [] : data,
      student: single(student, 'student'), vars, steps,
    };
  }

  private scalarString(path: (string | number)[], what: string): string {
    const v = this.doc.getIn(path);
    if (v === undefined || v === null) this.fail(path, `${what} is required`, { found: 'missing' }, this.label(path));
    if (typeof v !== 'string' || v.trim() === '') this.fail(path, `${what} must be a non-empty string`, { found: JSON.stringify(v) });
    return v;
  }

  /** teacher, data, student and vars.* share one namespace of variables. */
  private readVars(): void {
    for (const key of ['teacher', 'data', 'student']) {
      const v = this.doc.getIn([key], true) as Node | undefined;
      if (v !== undefined && v !== null) this.vars.set(key, { value: this.raw([key]), path: [key] });
    }
    const vars = this.doc.getIn(['vars'], true);
    if (vars === undefined || vars === null) return;
    if (!isMap(vars)) this.fail(['vars'], 'vars must be a mapping of names to values', { found: 'another kind of YAML value' });
    for (const pair of vars.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : '?';
      if (!/^[A-Za-z_]\w*$/.test(key)) this.fail(['vars', key], 'a variable name is letters, digits and "_", not starting with a digit', { found: JSON.stringify(key) });
      if (BUILTINS.includes(key) || key === 'steps') this.fail(['vars', key], `${key} is set by the pipeline`, { hint: key === 'run_dir' ? 'choose the run folder with --out' : 'rename the variable' });
      if (this.vars.has(key)) this.fail(['vars', key], `vars.${key} repeats the top-level ${key}`, { hint: `keep one of them` });
      this.vars.set(key, { value: this.raw(['vars', key]), path: ['vars', key] });
    }
  }

  private applySets(sets: string[]): void {
    for (const s of sets) {
      const m = /^([A-Za-z_]\w*)=(.*)$/s.exec(s);
      if (!m) throw new KompresorError({ code: 'input_invalid', where: `--set ${s}`, rule: '--set takes key=value', found: JSON.stringify(s) });
      const [, key, value] = m;
      if (!this.vars.has(key)) {
        const known = [...this.vars.keys()];
        throw new KompresorError({ code: 'input_invalid', where: `--set ${key}`, rule: `the recipe ${this.file} must define the variable`,
          expected: known.length ? `one of ${known.join(', ')}` : 'none: the recipe has no variables', found: JSON.stringify(key), hint: closest(key, known) });
      }
      this.vars.set(key, { value, path: this.vars.get(key)!.path });
    }
  }

  private raw(path: (string | number)[]): Raw {
    const node = this.doc.getIn(path, true);
    if (isSeq(node)) {
      return node.items.map((_, i) => {
        const item = this.raw([...path, i]);
        if (Array.isArray(item) || item === null) this.fail([...path, i], 'a list holds strings, numbers or booleans', { found: JSON.stringify(item) });
        return item;
      });
    }
    if (isMap(node)) this.fail(path, 'a value is a string, a number, a boolean or a list of them', { found: 'a mapping' });
    if (!isScalar(node)) return null;
    const v = node.value;
    if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
    this.fail(path, 'a value is a string, a number, a boolean or a list of them', { found: JSON.stringify(String(v)) });
  }

  private readSteps(catalog: CommandCatalog): void {
    const seq = this.doc.getIn(['steps'], true);
    if (seq === undefined || seq === null) this.fail(['steps'], 'steps is required', { found: 'missing' }, 'steps');
    if (!isSeq(seq) || seq.items.length === 0) this.fail(['steps'], 'steps must be a non-empty list', { found: isSeq(seq) ? 'an empty list' : 'another kind of YAML value' });
    const names = new Map<string, number>();
    seq.items.forEach((item, i) => {
      if (!isMap(item)) this.fail(['steps', i], 'each step is a mapping with name, command and args', { found: 'another kind of YAML value' });
      for (const pair of item.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : '?';
        if (!STEP_KEYS.includes(key)) this.fail(['steps', i, key], 'unknown key in a step', { expected: `one of ${STEP_KEYS.join(', ')}`, found: JSON.stringify(key), hint: closest(key, STEP_KEYS) });
      }
      const name = this.scalarString(['steps', i, 'name'], 'a step name');
      if (!/^[A-Za-z0-9_-]+$/.test(name)) this.fail(['steps', i, 'name'], 'a step name is letters, digits, "_" and "-"', { found: JSON.stringify(name), hint: 'it names the folder RUN_DIR/steps/<name> and appears in ${steps.<name>.out}' });
      if (names.has(name)) this.fail(['steps', i, 'name'], 'step names must be unique', { found: `"${name}" again (first at step ${names.get(name)! + 1})` });
      names.set(name, i);
      const command = this.scalarString(['steps', i, 'command'], 'command').trim().replace(/\s+/g, ' ');
      if (!catalog.has(command)) {
        const known = [...catalog.keys()].sort();
        this.fail(['steps', i, 'command'], 'command must be a kompresor command', { expected: `one of ${known.join(', ')}`, found: JSON.stringify(command), hint: closest(command, known) });
      }
      const argsNode = this.doc.getIn(['steps', i, 'args'], true);
      const args: [string, Entry][] = [];
      if (argsNode !== undefined && argsNode !== null) {
        if (!isMap(argsNode)) this.fail(['steps', i, 'args'], 'args must be a mapping of flags to values', { found: 'another kind of YAML value' });
        for (const pair of argsNode.items) {
          const written = isScalar(pair.key) ? String(pair.key.value) : '?';
          args.push([written, { value: this.raw(['steps', i, 'args', written]), path: ['steps', i, 'args', written] }]);
        }
      }
      this.steps.push({ name, command, args, index: i });
    });
  }

  // -------------------------------------------------------------------------------------------
  // one step: flags checked against the command, values resolved, argv built

  private planStep(s: RawStep, catalog: CommandCatalog): PlannedStep {
    const spec = catalog.get(s.command)!, rule = STEP_RULES[s.command] ?? {};
    const at = (key?: string) => (key === undefined ? ['steps', s.index, 'args'] : ['steps', s.index, 'args', key]);
    const dir = nodePath.join(this.runDir, 'steps', s.name);
    const out = rule.output && spec.options.has(rule.output.flag) ? nodePath.join(dir, rule.output.file) : null;
    const args: Record<string, ArgValue> = {};
    const deps = new Set<string>();
    for (const [written, e] of s.args) {
      const key = written.replace(/^--?/, '');
      const positional = spec.positionals.find((p) => p.name === key);
      const opt = spec.options.get(key);
      if (key in args) this.fail(e.path, 'each flag once', { found: `--${key} again` });
      if (!positional && !opt) {
        const known = [...spec.positionals.map((p) => p.name), ...spec.options.keys()].filter((k) => !RUNNER_FLAGS.has(k) && k !== rule.output?.flag);
        this.fail(e.path, `kompresor ${s.command} has no --${key}`, { expected: `one of ${known.join(', ')}`, hint: closest(key, known) });
      }
      if (RUNNER_FLAGS.has(key)) this.fail(e.path, `--${key} is added by the pipeline`, { hint: key === 'json' ? 'the step\'s JSON goes to result.json by itself' : 'an interrupted step resumes by itself; remove the key' });
      if (rule.output?.flag === key) this.fail(e.path, `--${key} is set by the pipeline`, { expected: `nothing (it is ${out})`, hint: `refer to it as \${steps.${s.name}.out}` });
      const v = this.resolveEntry(e, s.index, deps);
      if (v === null) continue;
      args[key] = this.checkValue(v, e.path, positional ? { takesValue: true, variadic: positional.variadic } : opt!, positional ? key : `--${key}`);
    }
    for (const p of spec.positionals) {
      if (p.required && !(p.name in args)) this.fail(at(), `kompresor ${s.command} needs ${p.name.toUpperCase()}`, { found: 'missing', hint: `add ${p.name}: PATH under args` });
    }
    for (const o of spec.options.values()) {
      if (o.mandatory && !(o.flag in args) && o.flag !== rule.output?.flag) this.fail(at(), `kompresor ${s.command} needs --${o.flag}`, { found: 'missing', hint: `add ${o.flag}: VALUE under args` });
    }
    for (const group of rule.needs ?? []) {
      if (!group.some((k) => k in args)) {
        const names = group.map((k) => (spec.positionals.some((p) => p.name === k) ? k.toUpperCase() : `--${k}`));
        this.fail(at(), `kompresor ${s.command} needs ${names.join(' or ')}`, { found: 'missing', hint: `add ${group[0]}: VALUE under args` });
      }
    }
    const argv = [...s.command.split(' ')];
    for (const p of spec.positionals) {
      const v = args[p.name];
      if (v !== undefined) argv.push(...(Array.isArray(v) ? v : [v as string]));
    }
    for (const [key, v] of Object.entries(args)) {
      if (spec.positionals.some((p) => p.name === key)) continue;
      argv.push(`--${key}`);
      if (v !== true) argv.push(...(Array.isArray(v) ? v : [v]));
    }
    if (out) argv.push(`--${rule.output!.flag}`, out);
    if (spec.options.has('json')) argv.push('--json');
    const model = out && rule.output?.model ? (rule.output.model === 'out' ? out : nodePath.join(out, 'final')) : null;
    return { name: s.name, index: s.index, command: s.command, args, argv, dir, out, model, resumable: spec.options.has('resume'), deps: [...deps] };
  }

  private checkValue(v: ArgValue, path: (string | number)[], o: { takesValue: boolean; variadic: boolean }, flag: string): ArgValue {
    // a NUL cannot pass through exec(): refused here, naming the key, not as a spawn() stack later
    const nul = (Array.isArray(v) ? v : [v]).find((x) => typeof x === 'string' && x.includes('\0'));
    if (nul !== undefined) this.fail(path, `${flag} must not hold a NUL character (no command-line argument can)`, { found: JSON.stringify(nul) });
    if (!o.takesValue) {
      if (v !== true) this.fail(path, `${flag} is a switch`, { expected: 'true (or false to leave it out)', found: JSON.stringify(v) });
      return v;
    }
    if (v === true) this.fail(path, `${flag} takes a value`, { found: 'true' });
    if (Array.isArray(v) && !o.variadic) this.fail(path, `${flag} takes one value`, { found: `a list of ${v.length}`, hint: v.length === 1 ? 'write the value without the list' : undefined });
    return v;
  }

  // -------------------------------------------------------------------------------------------
  // values and references

  /** A value in the context of step `at` (steps.length: after every step): null means "leave the flag out". */
  private resolveEntry(e: Entry, at: number, deps: Set<string>): ArgValue | null {
    const v = e.value;
    if (v === null) this.fail(e.path, 'a value is required', { found: 'null', hint: 'remove the key to leave the flag out' });
    if (v === false) return null;
    if (v === true) return true;
    if (typeof v === 'number') return String(v);
    if (typeof v === 'string') return this.interpolate(v, e.path, at, deps);
    const items = v.flatMap((x, i) => {
      const r = this.resolveEntry({ value: x, path: [...e.path, i] }, at, deps);
      return r === null || r === true ? this.fail([...e.path, i], 'a list holds paths or values', { found: JSON.stringify(x) }) : r;
    });
    return items;
  }

  private interpolate(text: string, path: (string | number)[], at: number, deps: Set<string>): ArgValue {
    const whole = /^\$\{([^}]*)\}$/.exec(text);
    if (whole) return this.reference(whole[1], text, path, at, deps);
    if (text.includes('${') && !/\$\{[^}]*\}/.test(text)) this.fail(path, 'a reference is written ${name}', { found: JSON.stringify(text), hint: 'close the brace' });
    return text.replace(REF, (_, ref: string) => {
      const v = this.reference(ref, text, path, at, deps);
      if (typeof v !== 'string') this.fail(path, `\${${ref}} is a list and can only stand alone as a value`, { found: JSON.stringify(text) });
      return v;
    });
  }

  private reference(ref: string, text: string, path: (string | number)[], at: number, deps: Set<string>): ArgValue {
    const r = ref.trim();
    if (r === 'run_dir') return this.runDir;
    if (r === 'name') return this.name;
    const parts = r.split('.');
    if (parts[0] === 'steps') return this.stepReference(parts, text, path, at, deps);
    if (parts.length === 1 && this.vars.has(r)) return this.resolveVar(r, path, at, deps);
    const known = ['run_dir', 'name', ...this.vars.keys(), 'steps.<earlier step>.out|model|dir'];
    this.fail(path, 'a reference names a variable, ${run_dir} or an earlier step\'s output', { expected: `one of ${known.map((k) => `\${${k}}`).join(', ')}`,
      found: JSON.stringify(`\${${ref}}`), hint: closest(r, [...this.vars.keys(), 'run_dir', 'name'].filter((k) => !k.startsWith('steps'))) ?? 'define it under vars' });
  }

  private stepReference(parts: string[], text: string, path: (string | number)[], at: number, deps: Set<string>): ArgValue {
    const [, name, field] = parts;
    const target = this.steps.find((s) => s.name === name);
    const refText = `\${${parts.join('.')}}`;
    if (parts.length !== 3 || !target) {
      this.fail(path, 'a step reference is ${steps.NAME.FIELD} with NAME an earlier step', { expected: `NAME one of ${this.steps.slice(0, at).map((s) => s.name).join(', ') || '(no earlier step)'}`,
        found: JSON.stringify(refText), hint: name && !target ? closest(name, this.steps.map((s) => s.name)) : undefined });
    }
    const user = this.userLabel(at);
    if (target.index >= at) {
      this.fail(path, 'a step can only use the outputs of steps before it', { found: `${refText} (${target.name} is step ${target.index + 1}, ${user})`,
        hint: `move ${target.name} before ${at < this.steps.length ? this.steps[at].name : 'its use'}` });
    }
    if (!(OUTPUT_FIELDS as readonly string[]).includes(field)) {
      this.fail(path, 'a step output is out, model or dir', { found: JSON.stringify(refText), hint: closest(field, [...OUTPUT_FIELDS]) });
    }
    const rule = STEP_RULES[target.command] ?? {};
    const dir = nodePath.join(this.runDir, 'steps', target.name);
    deps.add(target.name);
    if (field === 'dir') return dir;
    if (!rule.output) this.fail(path, `step ${target.name} (kompresor ${target.command}) writes no output file; only its dir`, { found: JSON.stringify(refText), hint: `use \${steps.${target.name}.dir}/result.json for its JSON` });
    const out = nodePath.join(dir, rule.output.file);
    if (field === 'out') return out;
    if (!rule.output.model) this.fail(path, `step ${target.name} (kompresor ${target.command}) produces no model`, { found: JSON.stringify(refText), hint: `use \${steps.${target.name}.out}` });
    return rule.output.model === 'out' ? out : nodePath.join(out, 'final');
  }

  private userLabel(at: number): string {
    return at < this.steps.length ? `${this.steps[at].name} is step ${at + 1}` : 'used after the last step';
  }

  /** A variable, resolved where it is used (a variable may refer to steps, so the place matters). */
  private resolveVar(key: string, usedAt: (string | number)[], at: number, deps: Set<string> = new Set()): ArgValue {
    const e = this.vars.get(key)!;
    const cacheKey = `${key}@${at}`;
    if (this.cache.has(cacheKey)) {
      for (const d of this.varDeps.get(cacheKey) ?? []) deps.add(d);
      return this.cache.get(cacheKey)!;
    }
    if (this.resolving.includes(key)) this.fail(e.path, 'variables must not refer to themselves', { found: [...this.resolving, key].map((k) => `\${${k}}`).join(' -> ') });
    this.resolving.push(key);
    const own = new Set<string>();
    const v = this.resolveEntry(e, at, own);
    this.resolving.pop();
    if (v === null) this.fail(e.path, 'a variable needs a value', { found: 'false' });
    this.cache.set(cacheKey, v);
    this.varDeps.set(cacheKey, own);
    for (const d of own) deps.add(d);
    void usedAt;
    return v;
  }

  private varDeps = new Map<string, Set<string>>();
}

// ---------------------------------------------------------------------------------------------
// helpers

/** "did you mean X?" for the nearest known name within a small edit distance, else undefined. */
export function closest(word: string, known: string[]): string | undefined {
  let best: string | undefined, bestD = Infinity;
  for (const k of known) {
    const d = editDistance(word.toLowerCase(), k.toLowerCase());
    if (d < bestD) { best = k; bestD = d; }
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(word.length / 3)) ? `did you mean ${best}?` : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur.push(Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1)));
    prev = cur;
  }
  return prev[b.length];
}

/** The command line a person would type for a step (POSIX shell quoting where needed). */
export function commandLine(argv: string[]): string {
  return ['kompresor', ...argv].map(shellQuote).join(' ');
}

export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
