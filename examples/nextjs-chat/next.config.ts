import type { NextConfig } from 'next';

const nextConfig: NextConfig = {
  serverExternalPackages: [
    // A native addon and per-platform binary packages, loaded at run time: bundling them fails the build
    // ("Can't resolve '@node-llama-cpp/win-x64-vulkan'", "reflink...node is not placeable in ESM chunks").
    'node-llama-cpp',
    // Loaded by Node too, one copy for the whole server: bundled (instrumentation.ts and the route each in their
    // own bundle), the build passes but every request fails with guard-load-failed. (Edge routes bundle every
    // package regardless; there `ai-sdk-qwen3guard` resolves to its Edge build, which has no native code.)
    'ai-sdk-qwen3guard',
  ],
};

export default nextConfig;
