// Preloaded into the Prisma CLI by ./index.ts. The WebAssembly schema engine (Prisma 6.19) arms a
// 10-second timer that it never clears, so every `migrate deploy` sat idle for 10 s after finishing.
// Unreferencing long timers lets the process exit when its work is done; nothing waits on them.
const setTimeoutOriginal = global.setTimeout;
global.setTimeout = function setTimeoutUnrefLong(callback, ms, ...args) {
  const timer = setTimeoutOriginal.call(this, callback, ms, ...args);
  if (typeof ms === 'number' && ms >= 10_000 && typeof timer?.unref === 'function') timer.unref();
  return timer;
};
