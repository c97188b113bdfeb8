import { defineConfig, type Options } from 'tsup';
import { nodeOnly } from './test/fixtures/node-only.js';

type Plugin = NonNullable<Options['esbuildPlugins']>[number];

/** tsup leaves Node built-ins external even on the neutral platform (its plugin runs first): the Edge build fails on one instead. */
const webOnly: Plugin = {
  name: 'web-only',
  setup(build) {
    build.initialOptions.metafile = true;
    build.onEnd(({ metafile }) => ({
      errors: Object.entries(metafile?.inputs ?? {}).flatMap(([file, { imports }]) =>
        imports
          .filter(({ path }) => nodeOnly(path))
          .map(({ path }) => ({ text: `${file} imports ${path}: the Edge build (src/edge.ts) must load no Node built-in or native module` })),
      ),
    }));
  },
};

export default defineConfig([
  {
    entry: { index: 'src/index.ts', 'cli/index': 'src/cli/index.ts' },
    format: ['esm'],
    dts: true,
    sourcemap: true,
    // The two builds run in parallel into dist/: only this one cleans it, and it leaves the Edge build's file alone.
    clean: ['!edge.js', '!edge.js.map'],
    target: 'node22',
    // node-llama-cpp loads native binaries relative to its own files: never bundle it.
    external: ['node-llama-cpp'],
  },
  {
    // What `edge-light`, `worker`, `workerd` and `browser` resolve to (package.json exports): Web APIs only.
    // One file, no chunks shared with the Node build (those may import node: modules).
    entry: { edge: 'src/edge.ts' },
    format: ['esm'],
    platform: 'neutral',
    target: 'es2022',
    splitting: false,
    sourcemap: true,
    dts: false,
    clean: false,
    esbuildPlugins: [webOnly],
  },
]);
