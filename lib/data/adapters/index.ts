/** Registry of dataset adapters by name (`cxr-train prepare --dataset NAME`). */
import { CxrError } from '../../errors';
import type { BaseAdapterOptions, DatasetAdapter } from './types';
import { mimicCxrAdapter } from './mimicCxr';
import { csvAdapter } from './csv';
import { chexpertAdapter } from './chexpert';
import { chestXray14Adapter } from './chestxray14';
import { padchestAdapter } from './padchest';
import { vindrCxrAdapter } from './vindrCxr';
import { openIAdapter } from './openI';

export type { BaseAdapterOptions, DatasetAdapter } from './types';

const registry = new Map<string, DatasetAdapter<BaseAdapterOptions>>();

/** Adds an adapter to the registry (later registrations of the same name replace earlier ones). */
export function registerAdapter<O extends BaseAdapterOptions>(a: DatasetAdapter<O>): void {
  registry.set(a.name, a as unknown as DatasetAdapter<BaseAdapterOptions>);
}

/** The adapter named `name`; E_CONFIG listing the known names otherwise. */
export function getAdapter(name: string): DatasetAdapter<BaseAdapterOptions> {
  const a = registry.get(name);
  if (!a) throw new CxrError('E_CONFIG', `unknown dataset '${name}' (known: ${[...registry.keys()].join(', ')})`);
  return a;
}

/** Names and descriptions of all registered adapters. */
export function listAdapters(): { name: string; description: string }[] {
  return [...registry.values()].map((a) => ({ name: a.name, description: a.description }));
}

registerAdapter(mimicCxrAdapter);
registerAdapter(chexpertAdapter);
registerAdapter(chestXray14Adapter);
registerAdapter(padchestAdapter);
registerAdapter(vindrCxrAdapter);
registerAdapter(openIAdapter);
registerAdapter(csvAdapter);
