// The shape of a checkpoint's state.json, checked before a resume reads any field of it: a
// hand-edited or corrupt file ("step": "x") crashed with a TypeError stack (fuzz report D15).
// readTrainState (run_checkpoint.ts) checks the format and version; this checks the fields.
import nodePath from 'node:path';
import { KompresorError } from '../errors.ts';
import type { TrainState } from './run_checkpoint.ts';

type Kind = 'count' | 'number' | 'number|null' | 'string' | 'object';

const FIELDS: [string, Kind][] = [
  ['step', 'count'], ['tokens', 'count'], ['seconds', 'number'], ['loss', 'number|null'], ['validLoss', 'number|null'],
  ['rng', 'number'], ['source', 'object'], ['objective', 'string'], ['schedule', 'object'], ['options', 'object'],
  ['metrics', 'object'], ['meta', 'object'],
  ['schedule.totalSteps', 'count'], ['schedule.lr', 'number'], ['schedule.minLr', 'number'], ['schedule.warmup', 'count'],
  ['metrics.bytes', 'count'], ['metrics.lines', 'count'], ['meta.command', 'string'],
];

const EXPECTED: Record<Kind, string> = {
  count: 'an integer >= 0', number: 'a finite number', 'number|null': 'a finite number or null', string: 'a string', object: 'a JSON object',
};

function fits(v: unknown, kind: Kind): boolean {
  switch (kind) {
    case 'count': return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
    case 'number': return typeof v === 'number' && Number.isFinite(v);
    case 'number|null': return v === null || (typeof v === 'number' && Number.isFinite(v));
    case 'string': return typeof v === 'string';
    case 'object': return typeof v === 'object' && v !== null && !Array.isArray(v);
  }
}

/** Refuses a state whose fields are missing or of the wrong type, naming the first one. */
export function checkTrainState(s: TrainState, checkpointDir: string): void {
  for (const [key, kind] of FIELDS) {
    const v = key.split('.').reduce<unknown>((o, k) => (typeof o === 'object' && o !== null ? (o as Record<string, unknown>)[k] : undefined), s);
    if (!fits(v, kind)) {
      throw new KompresorError({ code: 'config_invalid', where: `${nodePath.join(checkpointDir, 'state.json')}: ${key}`,
        rule: 'the training state must hold the fields a checkpoint writes', expected: EXPECTED[kind],
        found: v === undefined ? 'the key is missing' : JSON.stringify(v).slice(0, 60),
        hint: 'the checkpoint is corrupt or was edited; remove this checkpoint-<step> folder to resume from the one before' });
    }
  }
}
