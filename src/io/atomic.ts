// Atomic text writes: a temp file beside the target, then rename, so a killed run leaves either the
// old file or the new one, never half of one. (Binary checkpoint writes use safetensors.writeAtomic.)
import { writeFileSync, renameSync, rmSync } from 'node:fs';

export function writeFileAtomic(path: string, data: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    const err = e as NodeJS.ErrnoException;
    if (err instanceof Error && typeof err.code === 'string' && err.path === undefined) err.path = path; // ENOSPC names no file
    throw e;
  }
}
