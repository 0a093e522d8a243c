// Module resolution hook for testing.mjs: the SDK's imports of Cairn's host interfaces
// (`cairn:operator/state@…`, `timers`, `log`) resolve to the in-memory host.
const HOST = new URL("./memory-host.mjs", import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (specifier.startsWith("cairn:operator/")) return { url: HOST, shortCircuit: true };
  return next(specifier, context);
}
