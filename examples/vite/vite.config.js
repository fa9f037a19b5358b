// The package's browser entry point uses top-level await to initialise the wasm module.
export default {
  build: { target: "es2022" },
  // Pre-bundling would move the entry point away from its .wasm in dev mode.
  optimizeDeps: { exclude: ["sfstream"] },
};
