import { PgFerryError } from '../../errors.ts';
import { conversationsKind } from './conversations/index.ts';
import { jobsKind } from './jobs/index.ts';
import { submissionsKind } from './submissions/index.ts';
import type { KindDescriptor, KindRecord } from './types.ts';
import { usageKind } from './usage/index.ts';

/**
 * The record kinds import and verify know, in the order they are scanned,
 * loaded and summarised. Adding a kind: a folder kinds/<name>/ whose index.ts
 * exports its KindDescriptor (types.ts), and one line here.
 */
const BUILT_IN: readonly KindDescriptor[] = [
  conversationsKind as unknown as KindDescriptor,
  usageKind as unknown as KindDescriptor,
  // Submissions before jobs: a job is linked to its submission as it loads (and after the run: jobs/link.ts).
  submissionsKind as unknown as KindDescriptor,
  jobsKind as unknown as KindDescriptor,
];

const registry: KindDescriptor[] = [...BUILT_IN];

export type { KindDescriptor, KindRecord } from './types.ts';

/** Every registered kind, in order. */
export function allKinds(): readonly KindDescriptor[] {
  return registry;
}

/** Registered kind names, in order: what `--only` accepts. */
export function kindNames(): string[] {
  return registry.map((k) => k.name);
}

/**
 * Add a kind at run time (a library user's own kind, or a test's). Its
 * descriptor's `module` must export it, so reader threads can load it too.
 */
export function registerKind<R extends KindRecord>(kind: KindDescriptor<R>): void {
  const existing = registry.find((k) => k.name === kind.name);
  if (existing) {
    if (existing.module === kind.module) return; // the same module loaded twice
    throw new Error(`a kind named ${JSON.stringify(kind.name)} is already registered (from ${existing.module})`);
  }
  if (!/^[a-z][a-z0-9_-]*$/.test(kind.name))
    throw new Error(`kind name ${JSON.stringify(kind.name)}: expected lower-case letters, digits, - or _`);
  if (registry.some((k) => k.logKind === kind.logKind)) throw new Error(`import_log kind ${JSON.stringify(kind.logKind)} is already taken`);
  registry.push(kind as unknown as KindDescriptor);
}

/** Remove a kind registered at run time (tests clean up with it); built-in kinds stay. */
export function unregisterKind(name: string): void {
  const index = registry.findIndex((k) => k.name === name);
  if (index >= 0 && !BUILT_IN.includes(registry[index]!)) registry.splice(index, 1);
}

/** The named kinds in registry order (all of them when `names` is undefined); an unknown name is a usage error. */
export function selectKinds(names?: readonly string[]): KindDescriptor[] {
  if (names === undefined) return [...registry];
  const unknown = names.filter((name) => !registry.some((k) => k.name === name));
  if (unknown.length > 0) {
    throw new PgFerryError('CONFIG_ERROR', `unknown kind ${unknown.join(', ')}: expected ${kindNames().join(', ')}`);
  }
  return registry.filter((k) => names.includes(k.name));
}

/** Summary rows: in the order the kinds were asked for (`--only usage,conversations`), else registry order. */
export function summaryOrder(kinds: readonly KindDescriptor[], asked: readonly string[] | undefined): string[] {
  return asked === undefined ? kinds.map((k) => k.name) : [...new Set(asked)];
}

/** The kind named `name`; it must be registered (the engine only meets names it scanned). */
export function kindNamed(name: string): KindDescriptor {
  const kind = registry.find((k) => k.name === name);
  if (!kind) throw new Error(`kind ${JSON.stringify(name)} is not registered on this thread`);
  return kind;
}

/**
 * Make sure the kinds from these modules are registered on this thread: a
 * reader or engine thread starts with the built-in kinds only, and is given
 * the modules of the kinds it works on.
 */
export async function loadKindModules(modules: readonly string[]): Promise<void> {
  for (const url of new Set(modules)) {
    if (registry.some((k) => k.module === url)) continue;
    const exported = Object.values((await import(url)) as Record<string, unknown>);
    const kinds = exported.filter((value): value is KindDescriptor => isDescriptor(value) && value.module === url);
    if (kinds.length === 0) throw new Error(`${url} exports no kind descriptor whose module is itself`);
    for (const kind of kinds) registerKind(kind);
  }
}

const isDescriptor = (value: unknown): value is KindDescriptor =>
  typeof value === 'object' &&
  value !== null &&
  typeof (value as KindDescriptor).name === 'string' &&
  'prepare' in value &&
  'load' in value;
