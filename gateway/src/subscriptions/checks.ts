import { Supergraph, type ObjectType } from '@apollo/federation-internals';
import { eventDataFields, eventTypes, type EventType } from '@food/platform';
import { readLiveFields, type LiveField } from './declarations.js';

/**
 * What is wrong with the supergraph's `@subscribe` declarations, against the shared event
 * definitions and the subgraphs' own types: an unknown event, an event field it lacks, an argument
 * the field lacks, a type without that key in the declaring subgraph. `pnpm compose` and the gateway
 * at start refuse a supergraph with any.
 */
export function liveDeclarationProblems(supergraphSdl: string, supergraph = Supergraph.build(supergraphSdl)): string[] {
  let fields: Map<string, LiveField>;
  try {
    fields = readLiveFields(supergraphSdl);
  } catch (error) {
    return [error instanceof Error ? error.message : String(error)];
  }
  const problems: string[] = [];
  const api = supergraph.apiSchema();
  const subscriptionType = api.schemaDefinition.rootType('subscription');
  for (const live of fields.values()) {
    const where = `Subscription.${live.field}`;
    const problem = (message: string) => problems.push(`${where}: ${message}`);
    if (!eventTypes.includes(live.event as EventType)) {
      problem(`@subscribe names event ${live.event}, which packages/platform's event definitions do not define`);
      continue;
    }
    const data = new Set(eventDataFields(live.event as EventType));
    const needData = (dataField: string, role: string) => {
      if (!data.has(dataField)) problem(`${role} reads ${dataField}, which event ${live.event} does not carry`);
    };
    for (const dataField of live.key.values()) needData(dataField, 'entity');
    for (const dataField of live.fields.values()) needData(dataField, 'fields');
    const apiField = subscriptionType?.field(live.field);
    for (const condition of live.where) {
      for (const [dataField, operand] of condition) {
        needData(dataField, 'where');
        if ('argument' in operand && !apiField?.argument(operand.argument)) {
          problem(`where uses $${operand.argument}, which is not an argument of the field`);
        }
      }
    }
    const entityType = api.type(live.entityType);
    if (entityType?.kind !== 'ObjectType') {
      problem(`returns ${live.entityType}, which is not an object type`);
      continue;
    }
    for (const field of live.fields.keys()) {
      if (!entityType.field(field)) problem(`fields sets ${live.entityType}.${field}, which does not exist`);
    }
    const declaring = [...supergraph.subgraphs()].find((subgraph) =>
      subgraph.schema.schemaDefinition.rootType('subscription')?.field(live.field),
    );
    if (!declaring) continue;
    const type = declaring.schema.type(live.entityType) as ObjectType | undefined;
    const keys = (type?.appliedDirectivesOf(declaring.metadata().keyDirective()) ?? [])
      .filter((key) => key.arguments().resolvable !== false)
      .map((key) => String(key.arguments().fields).trim().split(/\s+/).sort().join(' '));
    const wanted = [...live.key.keys()].sort().join(' ');
    if (!keys.includes(wanted)) {
      problem(
        `entity { ${wanted} } is not a resolvable @key of ${live.entityType} in subgraph ${declaring.name}` +
          (keys.length ? ` (its keys: ${keys.map((k) => `"${k}"`).join(', ')})` : ''),
      );
    }
  }
  return problems;
}
