// The shared output guard (src/io/out_guard.ts) and the commands that use it: fuzz report
// defects D1 (outputs over the model's own files), D8 (prune into a non-empty folder), D11
// (outputs under /proc), D16 (a recipe named "..") and D19 (temp files and nameless ENOSPC).
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { checkOutFile, checkOutDir, makeDirs } from '../../src/io/out_guard.ts';
import { writeAtomic } from '../../src/io/safetensors.ts';
import '../../src/cli/main.ts';
import { cliCatalog } from '../../src/cli/pipeline_command.ts';
import { parseRecipe } from '../../src/pipeline/recipe.ts';
import { kompresor, ROOT } from '../cli_run.ts';
import { tempDir, throwsWith } from '../helpers.ts';

const FIXTURE = path.join(ROOT, 'test/fixtures/llama_tied_gqa');

function copyFixture(to: string): string {
  fs.cpSync(FIXTURE, to, { recursive: true });
  return to;
}

/** Every file under dir with its bytes, to prove nothing changed. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const p = path.join(dir, f);
    if (fs.statSync(p).isFile()) out.set(f, fs.readFileSync(p).toString('base64'));
  }
  return out;
}

test('checkOutFile refuses an input file, a file inside an input folder (also through a symlink) and /proc', () => {
  const t = tempDir('kp-guard-');
  const model = copyFixture(path.join(t, 'fx'));
  throwsWith(() => checkOutFile(path.join(model, 'model.safetensors'), '--out', [model]), 'input_invalid',
    /--out .*model\.safetensors: an output must not overwrite an input; expected a path outside .*fx, found a path inside the input folder/);
  throwsWith(() => checkOutFile(path.join(model, 'new.json'), '--out', [model]), 'input_invalid', /inside the input folder/);
  const data = path.join(t, 'd.txt');
  fs.writeFileSync(data, 'x');
  throwsWith(() => checkOutFile(data, '--out', [model, data]), 'input_invalid', /found the input file .*d\.txt/);
  fs.symlinkSync(model, path.join(t, 'alias'));
  throwsWith(() => checkOutFile(path.join(t, 'alias', 'config.json'), '--gguf', [model]), 'input_invalid', /--gguf .*an output must not overwrite an input/);
  throwsWith(() => checkOutFile('/proc/m.gguf', '--gguf'), 'input_invalid', /outputs go to a regular file system; expected a path outside \/proc, \/sys and \/dev, found a path under \/proc/);
  checkOutFile(path.join(t, 'out.json'), '--out', [model, data]); // beside the inputs: fine
});

test('checkOutDir refuses a non-empty folder when asked, a folder around an input, and /proc; makeDirs does not spin', () => {
  const t = tempDir('kp-guard-');
  const model = copyFixture(path.join(t, 'fx'));
  const other = copyFixture(path.join(t, 'other'));
  throwsWith(() => checkOutDir(other, '--out', [model], { mustBeEmpty: true }), 'input_invalid', /the output folder must be new or empty; found 4 entries \(config\.json, golden\.json, golden\.safetensors, \.\.\.\)/);
  throwsWith(() => checkOutDir(t, '--out', [model]), 'input_invalid', /found a folder holding the input .*fx/);
  throwsWith(() => checkOutDir('/proc/x', '--out'), 'input_invalid', /regular file system/);
  throwsWith(() => checkOutDir('/sys/x/y', '--out'), 'input_invalid', /found a path under \/sys/);
  const prepared = path.join(t, 'data');
  fs.mkdirSync(prepared);
  fs.writeFileSync(path.join(prepared, 'manifest.json'), '{}');
  checkOutDir(prepared, '--out', [], { mustBeEmpty: true, replaceableIf: 'manifest.json' });
  makeDirs(path.join(t, 'a', 'b', 'c'));
  assert.ok(fs.statSync(path.join(t, 'a', 'b', 'c')).isDirectory());
  assert.throws(() => makeDirs('/proc/kp-guard-test/x'), /ENOENT/);
});

test('D1: grads, logits, score and export refuse the model\'s own files and leave the model untouched', async () => {
  const t = tempDir('kp-guard-');
  const model = copyFixture(path.join(t, 'fx'));
  const before = snapshot(model);
  const runs = await Promise.all([
    kompresor(['grads', model, '--ids', '1,2,3', '--out', path.join(model, 'model.safetensors')]),
    kompresor(['logits', model, '--ids', '1,2,3', '--out', path.join(model, 'model.safetensors')]),
    kompresor(['score', model, '--data', path.join(ROOT, 'README.md'), '--out', path.join(model, 'config.json'), '--samples', '1', '--seq-len', '8', '--no-report']),
    kompresor(['export', model, '--gguf', path.join(model, 'config.json')]),
  ]);
  for (const r of runs) {
    assert.equal(r.code, 1, `${r.args[0]}: ${r.stderr}`);
    assert.match(r.stderr, /^kompresor: --(out|gguf) .*: an output must not overwrite an input; .*\n$/, r.args[0]);
  }
  assert.deepEqual(snapshot(model), before);
});

test('D8/D11: prune refuses a non-empty --out and train refuses /proc, both at once with one line', async () => {
  const t = tempDir('kp-guard-');
  const model = copyFixture(path.join(t, 'fx'));
  const other = copyFixture(path.join(t, 'other'));
  const before = snapshot(other);
  fs.writeFileSync(path.join(t, 's.json'), '{}');
  const [p, tr] = await Promise.all([
    kompresor(['prune', model, '--scores', path.join(t, 's.json'), '--out', other, '--params', '0.8']),
    kompresor(['train', model, '--data', t, '--out', '/proc/x', '--steps', '1'], undefined, 60_000),
  ]);
  assert.equal(p.code, 1, p.stderr);
  assert.match(p.stderr, /^kompresor: --out .*other: the output folder must be new or empty; found 4 entries/);
  assert.deepEqual(snapshot(other), before);
  assert.equal(tr.code, 1, tr.stderr);
  assert.match(tr.stderr, /^kompresor: --out \/proc\/x: outputs go to a regular file system/);
});

test('D16: a recipe name may not start with "." (".." made the project root the run folder)', () => {
  const text = (name: string) => `name: ${name}\nteacher: t\nsteps:\n  - name: i\n    command: inspect\n    args: {model_dir: "\${teacher}"}\n`;
  for (const name of ['..', '.', '.hidden']) {
    assert.throws(() => parseRecipe(text(name), 'r.yaml', cliCatalog(), {}), /r\.yaml:1 name: the name must be letters, digits, "_", "-" or "\." and not start with "\."/, name);
  }
});

test('D19: a failed atomic write names its file and leaves no temp file; a killed run\'s temp files do not block a rerun', () => {
  const t = tempDir('kp-guard-');
  const target = path.join(t, 'w.bin');
  const enospc = () => { throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' }); };
  assert.throws(() => writeAtomic(target, enospc), (e: NodeJS.ErrnoException) => e.path === target && e.code === 'ENOSPC');
  assert.deepEqual(fs.readdirSync(t), []);
  // a dead process's temp file (pid 2^22 + 1 is above Linux's pid_max default) is removed; a live one stays
  const out = path.join(t, 'pruned');
  fs.mkdirSync(out);
  fs.writeFileSync(path.join(out, `model.safetensors.tmp-${2 ** 22 + 1}`), 'x');
  checkOutDir(out, '--out', [], { mustBeEmpty: true });
  assert.deepEqual(fs.readdirSync(out), []);
  fs.writeFileSync(path.join(out, `model.safetensors.tmp-${process.pid}`), 'x');
  throwsWith(() => checkOutDir(out, '--out', [], { mustBeEmpty: true }), 'input_invalid', /must be new or empty; found 1 entry/);
});
