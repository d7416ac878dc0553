import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import type { CheckResult } from './checker.js'
import type { ControlOutcome } from './controls.js'
import type { PhaseResult } from './main-run.js'
import type { Dist } from './stats.js'

export interface SoakReport {
  seed: number
  command: string
  passed: boolean
  failures: string[]
  wallSeconds: number
  logDir: string
  phases: PhaseResult[]
  controls: ControlOutcome[]
}

const d = (x: Dist): string => (x.n === 0 ? '–' : `${x.p50} / ${x.p99} / ${x.max} (n=${x.n})`)
const kv = (r: Record<string, number>): string =>
  Object.entries(r)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ') || '–'

/** Rows of the main summary: one column per phase. */
function phaseRows(phases: readonly PhaseResult[]): [string, ...string[]][] {
  const row = (label: string, f: (c: CheckResult, p: PhaseResult) => string): [string, ...string[]] => [
    label,
    ...phases.map((p) => f(p.result.check, p)),
  ]
  return [
    row('phase', (_, p) => `${p.spec.name}: ${p.spec.title}`),
    row('grants', (c) => String(c.grants)),
    row('grants by kind', (c) => kv(c.grantsByKind)),
    row('overlapping valid grants, an exclusive one among them (must be 0)', (c) => String(c.overlaps)),
    row('permits granted beyond the limit (must be 0)', (c) =>
      c.semaphoreLimit === null ? '–' : String(c.overLimit),
    ),
    row('most valid shared holders at once', (c, p) =>
      c.maxShared === 0 ? '–' : `${c.maxShared}${p.spec.minShared ? ` (needs ${p.spec.minShared})` : ''}`,
    ),
    row('most valid permits at once / limit', (c) =>
      c.semaphoreLimit === null ? '–' : `${c.maxPermits} / ${c.semaphoreLimit}`,
    ),
    row('shared grants that saw the counter change (torn reads)', (c, p) =>
      c.maxShared === 0 ? '–' : `${c.tornReads}${p.spec.requireNoTornReads ? ' (must be 0)' : ''}`,
    ),
    row('fence pairs out of order / checked', (c, p) =>
      c.fenceOrder.checked === 0
        ? '–'
        : `${c.fenceOrder.violations} / ${c.fenceOrder.checked}${(p.spec.nodeCount ?? 1) === 1 ? ' (must be 0)' : ' (reported)'}`,
    ),
    row(
      'dead-on-arrival grants (must be 0)',
      (c) => `${c.deadOnArrival} (+${c.deadOnArrivalExcused} paused)`,
    ),
    row('overlaps across a restart (outside contract)', (c, p) =>
      // A quorum node restarted alone is inside the contract: counted as overlaps above.
      (p.spec.nodeCount ?? 1) > 1 ? '– (none excused)' : String(c.restartOverlaps),
    ),
    row(
      'counter writes / final / unconfirmed',
      (c) => `${c.counter.writes} / ${c.counter.final} / ${c.counter.unconfirmed}`,
    ),
    row(
      'lost updates',
      (c, p) =>
        `${c.counter.lostUpdates}${p.spec.requireNoLostUpdates ? ' (must be 0)' : ' (allowed)'}` +
        (c.counter.acrossRestart > 0 ? `, ${c.counter.acrossRestart} across the restart` : ''),
    ),
    row(
      'fenced writes accepted / stale rejected',
      (c) => `${c.fenced.accepted} / ${c.fenced.rejected} (store: ${c.fenced.storeRejected})`,
    ),
    row('acquire latency ms p50 / p99 / max', (c) => d(c.acquireLatencyMs)),
    row('acquire errors', (c) => kv(c.acquireErrors)),
    row('losses by reason', (c) => kv(c.losses)),
    row('loss lead before server expiry ms p50 / p99 / max', (c) => d(c.lossLeadMs)),
    row('loss lead, min (unpaused) ms', (c) => String(c.lossLeadMs.min ?? '–')),
    row('loss lead, holder paused: min ms', (c) => String(c.lossLeadPausedMs.min ?? '–')),
    row('recovery after holder kill ms p50 / p99 / max', (c) => d(c.recoveryAfterKillMs)),
    row('idle gap while waited ms, all: p50 / p99 / max', (c) => d(c.idleGapMs.all)),
    row('idle gap while waited ms, no fault near', (c) => d(c.idleGapMs.quiet)),
    row('faults injected', (c) => kv(c.faults)),
    row('wall time s', (_, p) => (p.result.wallMs / 1000).toFixed(1)),
  ]
}

function controlRows(controls: readonly ControlOutcome[]): [string, ...string[]][] {
  return [
    [
      'control',
      'broken variant: overlaps / DOA / lost updates / stale / over limit / torn reads',
      'caught',
      'ours, same faults: overlaps / DOA / over limit / torn reads',
      'ours clean',
    ],
    ...controls.map((c): [string, ...string[]] => {
      const b = c.broken.check
      const k = c.correct.check
      return [
        c.name,
        `${b.overlaps} / ${b.deadOnArrival} / ${b.counter.lostUpdates} / ${b.fenced.rejected} / ${b.overLimit} / ${b.tornReads}`,
        c.caught ? 'caught' : 'NOT CAUGHT',
        `${k.overlaps} / ${k.deadOnArrival} / ${k.overLimit} / ${k.tornReads}`,
        c.correctClean ? 'yes' : 'NO',
      ]
    }),
  ]
}

function textTable(rows: readonly string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? []
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(' | ')).join('\n')
}

function mdTable(rows: readonly string[][]): string {
  const [head, ...body] = rows
  if (!head) return ''
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...body.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n')
}

export function printReport(r: SoakReport): void {
  console.log(`\n${textTable(phaseRows(r.phases))}\n`)
  console.log(`${textTable(controlRows(r.controls))}\n`)
  for (const c of r.controls)
    console.log(`control ${c.name}: ${c.caught ? 'caught' : 'NOT CAUGHT'}: ${c.how}`)
}

function markdown(r: SoakReport): string {
  return [
    '# Soak results (issues 4, 5 and 13)',
    '',
    `Seed \`${r.seed}\`; replay with \`${r.command}\`. Result: **${r.passed ? 'PASS' : 'FAIL'}** in ${r.wallSeconds.toFixed(1)} s.`,
    ...(r.failures.length > 0 ? ['', ...r.failures.map((f) => `- ${f}`)] : []),
    '',
    '## Main run (Q: Redlock quorum of 3; S: shared and exclusive; N: semaphore)',
    '',
    mdTable(phaseRows(r.phases)),
    '',
    '## Negative controls',
    '',
    mdTable(controlRows(r.controls)),
    '',
    ...r.controls.map((c) => `- **${c.name}**: ${c.caught ? 'caught' : 'NOT CAUGHT'}: ${c.how}`),
    '',
    'Definitions are in test/soak/README.md.',
    '',
  ].join('\n')
}

/** The JSON keeps the checker's results and the fault plans, not the raw histories. */
function json(r: SoakReport): string {
  return JSON.stringify(
    {
      ...r,
      phases: r.phases.map((p) => ({
        name: p.spec.name,
        title: p.spec.title,
        wallMs: Math.round(p.result.wallMs),
        harnessErrors: p.result.harnessErrors,
        check: p.result.check,
        plan: p.plan,
      })),
      controls: r.controls.map((c) => ({
        name: c.name,
        caught: c.caught,
        correctClean: c.correctClean,
        how: c.how,
        broken: c.broken.check,
        correct: c.correct.check,
      })),
    },
    null,
    2,
  )
}

export function writeReport(r: SoakReport, dir: string): void {
  mkdirSync(dir, { recursive: true })
  writeFileSync(path.join(dir, 'latest.json'), `${json(r)}\n`)
  writeFileSync(path.join(dir, 'latest.md'), markdown(r))
}
