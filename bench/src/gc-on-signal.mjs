// Preloaded into our gateway for the subscriptions workload only (with --expose-gc): SIGUSR2 runs a
// full garbage collection, so the bench reads the memory that live subscribers hold, not the garbage
// their first results left behind, which V8 frees at a time of its own choosing.
process.on('SIGUSR2', () => globalThis.gc?.());
