/**
 * What changes with the step: the learning-rate schedule, a pure function of the step (principle 9), so
 * that a resumed run gets the same rate at every step as an uninterrupted one with no schedule state to
 * save; and the loss options of each step (the held threshold of `alpha: {quantile, freezeAfter}`).
 */
import { CxrError } from '../errors';

/** Parameters of {@link lrAt}. */
export interface ScheduleParams {
  /** Peak learning rate (reached at the end of warm-up). */
  lr: number;
  /** Linear warm-up steps; 0 starts at the peak. */
  warmupSteps: number;
  /** Total optimizer steps of the run (the cosine reaches its minimum at the last step). */
  totalSteps: number;
  /** Floor of the cosine as a fraction of `lr` (0 decays to zero). */
  minLrRatio: number;
}

/**
 * Learning rate of optimizer step `step` (0-based: the rate used by the `step`-th update).
 *
 * - warm-up, `step < warmupSteps`: `lr · (step + 1) / warmupSteps` (open_clip's form: the first step
 *   is never taken at rate 0);
 * - then cosine from `lr` down to `minLrRatio · lr`, reached at `step = totalSteps − 1`;
 * - past the end the floor is kept (a run extended with more steps does not jump back up).
 *
 * @throws CxrError E_CONFIG for a negative or non-integer step or invalid parameters
 */
export function lrAt(step: number, p: ScheduleParams): number {
  if (!Number.isInteger(step) || step < 0) throw new CxrError('E_CONFIG', `schedule step must be an integer >= 0, got ${step}`);
  if (!(p.lr > 0) || !Number.isFinite(p.lr)) throw new CxrError('E_CONFIG', `schedule lr must be a positive number, got ${p.lr}`);
  if (!Number.isInteger(p.warmupSteps) || p.warmupSteps < 0) throw new CxrError('E_CONFIG', `warmupSteps must be an integer >= 0, got ${p.warmupSteps}`);
  if (!Number.isInteger(p.totalSteps) || p.totalSteps < 1) throw new CxrError('E_CONFIG', `totalSteps must be an integer >= 1, got ${p.totalSteps}`);
  if (!(p.minLrRatio >= 0 && p.minLrRatio <= 1)) throw new CxrError('E_CONFIG', `minLrRatio must be in [0, 1], got ${p.minLrRatio}`);
  if (step < p.warmupSteps) return (p.lr * (step + 1)) / p.warmupSteps;
  const minLr = p.lr * p.minLrRatio;
  const span = p.totalSteps - 1 - p.warmupSteps;
  // Warm-up reaches (or passes) the last step: nothing left to decay over, so the peak holds until the end.
  if (span <= 0) return step <= p.totalSteps - 1 ? p.lr : minLr;
  const t = Math.min(1, (step - p.warmupSteps) / span);
  return minLr + (p.lr - minLr) * 0.5 * (1 + Math.cos(Math.PI * t));
}

/** What {@link stepLoss} reads of the training config's loss section. */
export interface StepLossSection {
  alpha: number | { quantile: number; momentum?: number; freezeAfter?: number };
}

/**
 * The loss options of the step after `stepsDone` steps, a pure function of the step and the running α
 * (checkpointed), like the rate: `alpha: {quantile, freezeAfter: K}` keeps the running quantile for K steps
 * and then holds α where it stands (momentum 1), so the threshold is measured on the starting model and
 * cannot follow the positives down.
 */
export function stepLoss<L extends StepLossSection>(loss: L, relaxAlpha: number | null, stepsDone: number): Omit<L, 'alpha'> & { alpha: number | { quantile: number; momentum?: number }; alphaRunning: number | null } {
  const a = loss.alpha;
  if (typeof a === 'number') return { ...loss, alpha: a, alphaRunning: relaxAlpha };
  const { freezeAfter, ...rest } = a;
  const held = freezeAfter !== undefined && stepsDone >= freezeAfter && relaxAlpha !== null;
  return { ...loss, alpha: held ? { ...rest, momentum: 1 } : rest, alphaRunning: relaxAlpha };
}
