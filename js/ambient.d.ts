// Minimal ambient declarations for the runtime-specific entry points, so the build needs no
// @types packages. Not emitted: the published .d.ts files do not reference these modules.
declare module "node:fs" {
  export function readFileSync(path: URL): Uint8Array;
}
