import { readFileSync } from 'node:fs';
import { CriticalityLevel, diff, type Change } from '@graphql-inspector/core';
import { buildSchema } from '../graphql-js.js';
import { z } from 'zod';

export type Criticality = 'breaking' | 'dangerous' | 'safe';

/** One difference between the base API schema and the new one, classified by @graphql-inspector. */
export interface SchemaChange {
  /** @graphql-inspector's change type, e.g. FIELD_REMOVED, FIELD_TYPE_CHANGED, ENUM_VALUE_ADDED. */
  type: string;
  criticality: Criticality;
  message: string;
  /** Schema coordinate, e.g. `Type.field` or `Query.field.argument`. */
  path?: string;
  /** Why a breaking change is acceptable, from the allow-list; absent when it is not allowed. */
  allowedBecause?: string;
}

const criticalityOf: Record<CriticalityLevel, Criticality> = {
  [CriticalityLevel.Breaking]: 'breaking',
  [CriticalityLevel.Dangerous]: 'dangerous',
  [CriticalityLevel.NonBreaking]: 'safe',
};

/** Every change from `baseSdl` to `newSdl`, each classified as breaking, dangerous or safe. */
export async function classifyChanges(baseSdl: string, newSdl: string): Promise<SchemaChange[]> {
  const changes: Change[] = await diff(buildSchema(baseSdl), buildSchema(newSdl));
  return changes.map((change) => ({
    type: change.type,
    criticality: criticalityOf[change.criticality.level],
    message: change.message,
    path: change.path,
  }));
}

/** The reviewed exceptions: a breaking change lands only if listed here with a reason. */
const AllowListSchema = z.array(
  z.object({
    /** The schema coordinate of the change (as the report prints it). */
    path: z.string().min(1),
    /** Optionally, only this kind of change at that coordinate. */
    type: z.string().optional(),
    reason: z.string().min(10, 'say why this break is acceptable (at least 10 characters)'),
  }),
);
export type AllowList = z.infer<typeof AllowListSchema>;

export function readAllowList(path: string): AllowList {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const parsed = AllowListSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`${path}: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/** Marks the breaking changes the allow-list accepts; returns the entries that matched nothing. */
export function applyAllowList(changes: SchemaChange[], allowList: AllowList): AllowList {
  const used = new Set<number>();
  for (const change of changes) {
    if (change.criticality !== 'breaking') continue;
    const index = allowList.findIndex(
      (entry) => entry.path === change.path && (!entry.type || entry.type === change.type),
    );
    if (index === -1) continue;
    change.allowedBecause = allowList[index]!.reason;
    used.add(index);
  }
  return allowList.filter((_, index) => !used.has(index));
}
