// Runs the real `kompresor` executable (bin/kompresor.mjs) as a child process, for the tests of
// every command: plain output (NO_COLOR), outside the parent test runner's reporting protocol.
import { spawn } from 'node:child_process';
import path from 'node:path';

export const ROOT = path.join(import.meta.dirname, '..');
export const BIN = path.join(ROOT, 'bin/kompresor.mjs');

export interface Run { args: string[]; code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/**
 * Runs the CLI and never rejects. `watch` is polled while it runs and may send it one signal;
 * a run that outlives timeoutMs is killed (signal SIGKILL) so a hang fails the test instead of CI.
 */
export function kompresor(args: string[], watch?: (kill: (s: NodeJS.Signals) => void) => void, timeoutMs = 240_000): Promise<Run> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
    delete env.NODE_TEST_CONTEXT;
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    let sent = false;
    const poll = watch ? setInterval(() => watch((s) => { if (!sent) child.kill(s); sent = true; }), 5) : undefined;
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => { clearInterval(poll); clearTimeout(timer); resolve({ args, code, signal, stdout, stderr }); });
  });
}
