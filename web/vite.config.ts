// The UI is built into the clew binary: crates/clew-api/build.rs runs `vite build --outDir`
// into a directory of its own. `npm run dev` serves the source with hot reload and
// sends API calls to a running Clew (CLEW_URL, default http://127.0.0.1:4320).
import { defineConfig } from 'vite';

const clew = process.env.CLEW_URL ?? 'http://127.0.0.1:4320';

export default defineConfig({
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    // Terser: Vite's default minifier produced a bundle whose editor hung while typing.
    minify: 'terser',
    chunkSizeWarningLimit: 1024,
    rolldownOptions: { checks: { pluginTimings: false } },
  },
  server: {
    proxy: Object.fromEntries(['/api', '/health'].map((p) => [p, clew])),
  },
});
