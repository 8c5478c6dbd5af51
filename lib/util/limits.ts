/**
 * Machine-derived upper bounds shared by every place a count-like option enters (the training schema,
 * `setThreads`): a thread count above the machine's cores only adds contention, and thousands of threads
 * exhaust the process before any work is done.
 */
import os from 'node:os';

/** Logical cores this process may use (`os.availableParallelism()`, which honours CPU affinity). */
export function availableCores(): number {
  return Math.max(1, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
}
