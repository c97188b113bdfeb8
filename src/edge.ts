// The entry point for runtimes without Node.js built-ins or native addons (Edge, workers, browsers), picked by
// the `edge-light`, `worker` and `browser` export conditions: the same API, with remote guards only.
// `Qwen3Guard.load` and `Qwen3GuardGen.load` throw there, saying to use `remote`.
export * from './api.js';
