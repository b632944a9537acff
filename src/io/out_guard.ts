// The one guard every command that writes runs on its output path before any work is done.
//
// Rules (README "Safety"):
//   1. an output never lands on an input: not on an input file (same file, also through a
//      symlink), not inside an input folder (a model folder, a data folder), not on an input's
//      parent path (an output folder that holds an input would be replaced around it);
//   2. an output goes to a real file system: /proc, /sys and /dev are refused (Node's recursive
//      mkdir spins forever on /proc, and nothing useful is written there);
//   3. an output file's folder must exist and the name must not be a folder;
//   4. an output folder that must be new or empty (prune, search) is refused when it holds files.
// `makeDirs` is a recursive mkdir that creates one level at a time, so a refused level fails at
// once instead of spinning.
import fs from 'node:fs';
import nodePath from 'node:path';
import { KompresorError } from '../errors.ts';

const VIRTUAL_ROOTS = ['/proc', '/sys', '/dev'];
// statfs magic numbers of kernel file systems that take no regular files
const VIRTUAL_FS = new Set([0x9fa0 /* proc */, 0x62656572 /* sysfs */, 0x1cd1 /* devpts */, 0x27e0eb /* cgroup */, 0x63677270 /* cgroup2 */]);

/** The real path of `p`, following symlinks of every part that exists (the rest appended as is). */
export function realPathOf(p: string): string {
  const abs = nodePath.resolve(p);
  let head = abs;
  const tail: string[] = [];
  for (;;) {
    try {
      return nodePath.join(fs.realpathSync(head), ...tail);
    } catch {
      const up = nodePath.dirname(head);
      if (up === head) return abs;
      tail.unshift(nodePath.basename(head));
      head = up;
    }
  }
}

/** True when `inner` is `outer` or below it (both real, absolute paths). */
export function isWithin(outer: string, inner: string): boolean {
  const rel = nodePath.relative(outer, inner);
  return rel === '' || (!rel.startsWith('..') && !nodePath.isAbsolute(rel));
}

function checkRealFileSystem(path: string, flag: string): string {
  const real = realPathOf(path);
  const root = VIRTUAL_ROOTS.find((r) => isWithin(r, real));
  let fsType: number | undefined;
  if (!root) {
    let probe = real;
    while (!fs.existsSync(probe)) probe = nodePath.dirname(probe);
    try { fsType = Number(fs.statfsSync(probe).type); } catch { fsType = undefined; }
  }
  if (root || (fsType !== undefined && VIRTUAL_FS.has(fsType))) {
    throw new KompresorError({ code: 'input_invalid', where: `${flag} ${path}`, rule: 'outputs go to a regular file system',
      expected: 'a path outside /proc, /sys and /dev', found: root ? `a path under ${root}` : 'a kernel file system', hint: 'choose a folder on disk' });
  }
  return real;
}

function checkNotOnInputs(path: string, real: string, flag: string, inputs: string[]): void {
  for (const input of inputs) {
    if (!fs.existsSync(input)) continue;
    const inReal = fs.realpathSync(input);
    const isDir = fs.statSync(inReal).isDirectory();
    const clash = isDir ? isWithin(inReal, real) : real === inReal;
    // an output folder around an input would have the input replaced or mixed into it
    const holds = isDir && real !== inReal && isWithin(real, inReal);
    if (clash || holds) {
      throw new KompresorError({ code: 'input_invalid', where: `${flag} ${path}`, rule: 'an output must not overwrite an input',
        expected: `a path outside ${input}`, found: clash ? (isDir ? `a path inside the input folder ${input}` : `the input file ${input}`) : `a folder holding the input ${input}`,
        hint: 'write to a new path; inputs (model folders, data, scores) are never modified' });
    }
  }
}

/** The output file of --out/--gguf: checked before any work, see the rules above. */
export function checkOutFile(path: string, flag = '--out', inputs: string[] = []): void {
  const real = checkRealFileSystem(path, flag);
  const dir = nodePath.dirname(nodePath.resolve(path));
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new KompresorError({ code: 'file_not_found', where: `${flag} ${path}`, rule: 'the output folder must exist',
      expected: `a folder at ${dir}`, found: fs.existsSync(dir) ? 'a file' : 'no such folder', hint: 'create the folder first' });
  }
  if (fs.existsSync(path) && fs.statSync(path).isDirectory()) {
    throw new KompresorError({ code: 'input_invalid', where: `${flag} ${path}`, rule: 'the output must be a file name',
      found: 'a folder', hint: 'name a file inside it' });
  }
  checkNotOnInputs(path, real, flag, inputs);
}

export interface OutDirOptions {
  /** Refuse a folder that holds anything (prune, search: their files would mix with others). */
  mustBeEmpty?: boolean;
  /** With mustBeEmpty: a folder holding this file is one of ours and may be replaced (data prepare's manifest.json). */
  replaceableIf?: string;
}

/** An output folder (created later by the command): checked before any work. */
export function checkOutDir(path: string, flag = '--out', inputs: string[] = [], o: OutDirOptions = {}): void {
  const real = checkRealFileSystem(path, flag);
  if (fs.existsSync(path) && !fs.statSync(path).isDirectory()) {
    throw new KompresorError({ code: 'input_invalid', where: `${flag} ${path}`, rule: 'the output must be a folder', found: 'a file', hint: 'choose a new folder name' });
  }
  checkNotOnInputs(path, real, flag, inputs);
  if (o.mustBeEmpty && fs.existsSync(path)) {
    removeStaleTemps(path);
    const entries = fs.readdirSync(path);
    const ours = o.replaceableIf !== undefined && entries.includes(o.replaceableIf);
    if (entries.length > 0 && !ours) {
      throw new KompresorError({ code: 'input_invalid', where: `${flag} ${path}`, rule: 'the output folder must be new or empty',
        found: `${entries.length} entr${entries.length === 1 ? 'y' : 'ies'} (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''})`,
        hint: 'its files would be replaced or mixed with the new ones; choose a new folder' });
    }
  }
}

/**
 * Temp files of our atomic writes (NAME.tmp-PID) whose process is gone: a killed run left them
 * (prune's model.safetensors.tmp-PID); they are ours, so they go instead of blocking a rerun.
 */
export function removeStaleTemps(dir: string): void {
  for (const f of fs.readdirSync(dir)) {
    const m = /\.tmp-(\d+)$/.exec(f);
    if (m && !isAlive(Number(m[1]))) fs.rmSync(nodePath.join(dir, f), { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** mkdir -p, one level at a time (Node 20's recursive mkdir never returns on some kernel paths). */
export function makeDirs(path: string): void {
  const abs = nodePath.resolve(path);
  if (fs.existsSync(abs)) return;
  makeDirs(nodePath.dirname(abs));
  try {
    fs.mkdirSync(abs);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
}
