export { startSupergraph, type RunningSupergraph, type SupergraphOptions } from './supergraph.js';
export { startEmbeddedPostgres, type EmbeddedPostgres } from './embedded-postgres.js';
