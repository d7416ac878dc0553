// Packs the package as npm would publish it, lints the tarball (publint, attw) and
// checks that both `import` and `require()` of the installed package work.
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const root = resolve('.')
const work = mkdtempSync(join(tmpdir(), 'arl-pack-'))
const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { stdio: 'inherit', ...opts })
try {
  const out = execFileSync('npm', ['pack', '--silent', '--pack-destination', work], { encoding: 'utf8' })
  const tarball = join(work, out.trim().split('\n').pop())
  run(process.execPath, ['node_modules/publint/src/cli.js', '--strict', root])
  run(process.execPath, ['node_modules/@arethetypeswrong/cli/dist/index.js', '--pack', '.'])

  // Install the tarball by hand into a scratch project; dependencies come from ours.
  const app = join(work, 'app')
  const pkgDir = join(app, 'node_modules', 'async-redis-lock')
  mkdirSync(pkgDir, { recursive: true })
  run('tar', ['-xzf', tarball, '-C', pkgDir, '--strip-components=1'])
  const { dependencies } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  for (const dep of Object.keys(dependencies)) {
    symlinkSync(join(root, 'node_modules', dep), join(app, 'node_modules', dep))
  }
  const probe = `
    const names = ['Locker', 'LockError', 'LockLostError', 'AcquireTimeoutError', 'BackendError', 'InvalidArgumentError', 'LockerClosedError']
    for (const n of names) if (typeof m[n] !== 'function') throw new Error(n + ' missing via ' + how)
    const e = new m.LockError('ERR_LOCK_LOST', 'x')
    if (!(e instanceof Error) || e.code !== 'ERR_LOCK_LOST') throw new Error('LockError broken via ' + how)
    console.log('ok: ' + how)`
  run(process.execPath, ['-e', `const how = 'require'; const m = require('async-redis-lock'); ${probe}`], {
    cwd: app,
  })
  run(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const how = 'import'; const m = await import('async-redis-lock'); ${probe}`,
    ],
    { cwd: app },
  )
  // isLockError knows the errors of the other build too (one process loading both).
  run(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { createRequire } from 'node:module'
      const esm = await import('async-redis-lock')
      const cjs = createRequire(process.cwd() + '/x.js')('async-redis-lock')
      if (esm.LockError === cjs.LockError) throw new Error('one build loaded: the check cannot tell')
      const fromCjs = new cjs.AcquireTimeoutError(['k'], 5, 1)
      const fromEsm = new esm.LockLostError(['k'], 'expired')
      if (!esm.isLockError(fromCjs, 'ERR_LOCK_ACQUIRE_TIMEOUT') || !cjs.isLockError(fromEsm)) throw new Error('isLockError misses the other build')
      if (esm.isLockError(fromCjs, 'ERR_LOCK_LOST') || esm.isLockError(new Error('x'))) throw new Error('isLockError too wide')
      console.log('ok: isLockError across builds')`,
    ],
    { cwd: app },
  )
  // The bin must run from the packed files alone (no tsx, no src/) and keep its shebang.
  const { bin } = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'))
  const binFile = join(pkgDir, bin['async-redis-lock'])
  if (!readFileSync(binFile, 'utf8').startsWith('#!/usr/bin/env node\n'))
    throw new Error('bin lost its shebang')
  const help = execFileSync(process.execPath, [binFile, '--help'], { cwd: app, encoding: 'utf8' })
  if (!help.includes('Exit status:')) throw new Error(`bin --help printed:\n${help}`)
  console.log('ok: bin')
} finally {
  rmSync(work, { recursive: true, force: true })
}
