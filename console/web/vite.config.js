import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// The HTTP service serves ../dist at / (console/static.py); `npm run build` writes it.
export default defineConfig({
  plugins: [vue()],
  base: '/',
  build: {
    outDir: '../dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 2000,
  },
})
