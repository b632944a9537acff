// A training process for trainer.test.ts to kill (-9) or interrupt (SIGINT): the tiny fixture
// run with the CLI's signal handling, slowed by `delayMs` per micro-batch so the parent can act
// while it runs. Usage: node --import tsx trainer_child.ts RUN_DIR DELAY_MS [--resume]
// Prints the CLI's closing lines; exits like the CLI (0, or 130/143 after a signal).
import { train } from '../../src/train/trainer.ts';
import { nextTokenCE, type Objective } from '../../src/train/objective.ts';
import { installStopSignals, exitCodeFor, describeResult } from '../../src/cli/trainer_flags.ts';
import { tinyRun, CHILD_OPTIONS } from '../train_helpers.ts';

const [runDir, delay] = process.argv.slice(2);
const pause = new Int32Array(new SharedArrayBuffer(4));
const slow: Objective = {
  name: nextTokenCE.name,
  train(model, batch, ctx) {
    Atomics.wait(pause, 0, 0, Number(delay)); // a sleep that blocks like real compute does
    return nextTokenCE.train(model, batch, ctx);
  },
  evaluate: nextTokenCE.evaluate,
};
const signals = installStopSignals();
const r = await train(await tinyRun(runDir, { objective: slow, resume: process.argv.includes('--resume'), shouldStop: () => signals.received() !== null }, CHILD_OPTIONS));
console.log(describeResult(r, runDir, `kompresor train --resume ${runDir}`));
const sig = signals.received();
process.exitCode = r.status === 'stopped' && sig ? exitCodeFor(sig) : 0;
