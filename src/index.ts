// The Node.js entry point: everything, with the in-process engines. node-llama-cpp is imported only when a local
// guard or Gen model is loaded, so an app that uses only remote guards loads no native code.
import { provideLocalEngines } from './local/provide.js';

provideLocalEngines();

export * from './api.js';
export { convertCheckpoint, type ConvertOptions, type ConvertProgress, type ConvertResult } from './convert/convert.js';
export { ConvertError } from './convert/errors.js';
export { detectVariantOfFile } from './gen/variant-file.js';
