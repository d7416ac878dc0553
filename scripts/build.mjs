// Builds dist/esm (the package's own "type": "module") and dist/cjs (marked
// "type": "commonjs" by a nested package.json) from the same sources with tsc.
import { execFileSync } from 'node:child_process'
import { rmSync, writeFileSync } from 'node:fs'

const tsc = ['node_modules/typescript/bin/tsc']
rmSync('dist', { recursive: true, force: true })
execFileSync(process.execPath, [...tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' })
execFileSync(
  process.execPath,
  [
    ...tsc,
    '-p',
    'tsconfig.build.json',
    '--module',
    'commonjs',
    '--moduleResolution',
    'node10',
    '--ignoreDeprecations',
    '6.0',
    '--outDir',
    'dist/cjs',
  ],
  { stdio: 'inherit' },
)
writeFileSync('dist/cjs/package.json', `${JSON.stringify({ type: 'commonjs' }, null, 2)}\n`)
