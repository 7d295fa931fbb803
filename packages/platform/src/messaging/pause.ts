/** Small timing helpers shared by the messaging implementations (not exported from the package). */

export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Pauses that `interrupt()` ends at once, so a close never waits out a backoff. */
export function interruptiblePause() {
  const sleepers = new Set<() => void>();
  return {
    wait(ms: number): Promise<void> {
      return new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          sleepers.delete(done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        sleepers.add(done);
      });
    },
    interrupt() {
      for (const wake of [...sleepers]) wake();
    },
  };
}

export type InterruptiblePause = ReturnType<typeof interruptiblePause>;
