// The distillation Objective for the shared training loop (src/train/trainer.ts): the student is
// trained on the KD head of kd_head.ts against a teacher (live, or served from a teacher cache).
//
//   train:     loss = the KD loss as configured (forward KL at T = 1 by default; or CE + KD
//              balanced), gradient into the student; extras kl and ce
//   evaluate:  loss = the student's next-token CE on the validation batch (comparable with
//              `kompresor train` runs of the same data); extras kl and ce
//
// `kl` is the KD divergence as configured (direction, temperature, top-k), mean over valid tokens,
// without the T^2 factor; `ce` is the student's mean next-token cross-entropy. Measuring CE when
// the loss does not include it costs one copy of each logits chunk and a CE kernel pass over it.
import type { Objective } from '../train/objective.ts';
import { KompresorError } from '../errors.ts';
import { kdLoss, kdLossAndBackward, kdOptions, type KdOptions, type KdResult } from './kd_head.ts';
import type { Teacher } from './teacher_cache.ts';

export const KD_OBJECTIVE_NAME = 'logit_kd';

export function kdObjective(teacher: Teacher, opts: Partial<KdOptions> = {}): Objective {
  const o = kdOptions(opts);
  const t2 = o.scaleT2 ? o.temperature * o.temperature : 1;
  const extras = (r: KdResult) => ({ kl: r.kd / t2, ce: r.ce! });
  return {
    name: KD_OBJECTIVE_NAME,
    train(model, batch) {
      const r = finiteOrNull(() => kdLossAndBackward(model, batch, teacher.chunks(batch), o, true));
      return r ? { loss: r.loss, metrics: extras(r) } : { loss: NaN };
    },
    evaluate(model, batch) {
      const r = finiteOrNull(() => kdLoss(model, batch, teacher.chunks(batch), o, true));
      return r ? { loss: r.ce!, metrics: extras(r) } : { loss: NaN };
    },
  };
}

/**
 * The decoder refuses a non-finite loss by throwing (where: 'loss'); the trainer wants a NaN loss
 * to stop cleanly (as nextTokenCE does), so that one error becomes null and others pass through.
 */
function finiteOrNull(f: () => KdResult): KdResult | null {
  try {
    return f();
  } catch (e) {
    if (e instanceof KompresorError && e.where === 'loss') return null;
    throw e;
  }
}
