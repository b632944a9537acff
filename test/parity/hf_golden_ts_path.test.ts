// The golden parity of hf_golden.test.ts must hold on the pure TypeScript path as well, not only
// with the native kernels. The kernel set is chosen once, when src/tensor/native.ts is first
// loaded, so this runs that file again in a fresh node process with KOMPRESOR_NATIVE=0 and reads
// the TAP summary of its test runner.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Run { code: number; stdout: string; stderr: string }

function runNode(args: string[]): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, KOMPRESOR_NATIVE: '0' };
  // set by the test runner in its file processes: a child test runner that inherits it would
  // report to us in the runner's internal protocol instead of the reporter asked for
  delete env.NODE_TEST_CONTEXT;
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: ROOT, env, timeout: 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

test('KOMPRESOR_NATIVE=0 leaves no native kernel in use', async () => {
  const r = await runNode(['--import', 'tsx', '--input-type=module', '-e',
    "const o = await import('./src/tensor/ops.ts'); const n = await import('./src/tensor/native.ts');" +
    ' console.log(JSON.stringify({ names: o.nativeKernelNames, native: n.native !== null, same: o.kernels.attentionForward === o.reference.attentionForward }));']);
  assert.equal(r.code, 0, `child failed:\n${r.stderr}`);
  assert.deepEqual(JSON.parse(r.stdout.trim()), { names: [], native: false, same: true });
});

test('hf_golden.test.ts passes on the TypeScript kernels (KOMPRESOR_NATIVE=0)', async () => {
  const r = await runNode(['--import', 'tsx', '--test', '--test-reporter=tap', 'test/parity/hf_golden.test.ts']);
  const count = (key: string) => {
    const m = r.stdout.match(new RegExp(`^# ${key} (\\d+)$`, 'm'));
    assert.ok(m, `no "# ${key}" line in the child's TAP output:\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`);
    return Number(m[1]);
  };
  const failing = r.stdout.split('\n').filter((l) => /^\s*not ok /.test(l));
  assert.deepEqual(failing, [], `failing golden tests on the TypeScript path:\n${r.stdout.slice(-4000)}`);
  assert.equal(count('fail'), 0);
  assert.equal(count('cancelled'), 0);
  assert.equal(count('skipped'), 0);
  assert.equal(count('todo'), 0);
  assert.ok(count('pass') >= 24, `expected at least 24 passing golden tests (8 fixture cases x 3), got ${count('pass')}`);
  assert.equal(count('pass'), count('tests'));
  assert.equal(r.code, 0, `the child test runner exited with ${r.code}:\n${r.stderr.slice(-2000)}`);
});
