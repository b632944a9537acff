// Builds the native addon (native/ -> native/build/Release/kompresor_native.node) with cmake-js.
// Skips the build when the addon is newer than every source file. A failed build is reported
// and leaves the plain TypeScript kernels in charge (slow, but correct): it never fails `npm install`.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'native/build/Release/kompresor_native.node');
const force = process.argv.includes('--force');

function newestSource(dir) {
  let t = 0;
  for (const f of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, f.name);
    if (f.isDirectory()) { if (f.name !== 'build') t = Math.max(t, newestSource(p)); }
    else t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

if (!force && existsSync(out) && statSync(out).mtimeMs >= newestSource(join(root, 'native'))) process.exit(0);
const cmakeJs = join(root, 'node_modules/cmake-js/bin/cmake-js');
if (!existsSync(cmakeJs)) {
  console.error('build_native: cmake-js is not installed yet (run npm ci); skipping the addon build');
  process.exit(0);
}
try {
  // Ninja when it is installed (faster rebuilds); plain make otherwise, so a machine without
  // ninja-build still gets the addon instead of silently falling back to the TypeScript kernels.
  let haveNinja = true;
  try { execFileSync('ninja', ['--version'], { stdio: 'ignore' }); } catch { haveNinja = false; }
  const generator = haveNinja ? ['-G', 'Ninja'] : ['-G', 'Unix Makefiles'];
  // KOMPRESOR_MARCH=x86-64-v3 (say) builds for that instruction set instead of -march=native;
  // always passed, so that a value left in CMake's cache by an earlier build does not stick
  const march = process.env.KOMPRESOR_MARCH || 'native';
  // `compile` reuses a configured build folder, so another -march needs `rebuild` (configure again)
  const cache = join(root, 'native/build/CMakeCache.txt');
  const cached = existsSync(cache) ? /^KOMPRESOR_MARCH:\w+=(.*)$/m.exec(readFileSync(cache, 'utf8'))?.[1] : march;
  const verb = cached === march ? 'compile' : 'rebuild';
  execFileSync(process.execPath, [cmakeJs, verb, '-d', join(root, 'native'), '-O', join(root, 'native/build'), '--CDCMAKE_BUILD_TYPE=Release', ...generator, `--CDKOMPRESOR_MARCH=${march}`],
    { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  console.error('build_native: built ' + out);
} catch (e) {
  console.error('build_native: the native addon did not build (' + e.message.split('\n')[0] + '); the TypeScript kernels will be used. Install libopenblas-dev, cmake and g++, then run `npm run build:native`.');
}
