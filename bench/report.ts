// Markdown rendering of the results.

/** One scenario's part of the report. */
export interface Section {
  readonly title: string
  readonly notes: readonly string[]
  readonly tables: readonly string[]
}

/** A number with `digits` decimals (fewer for big values), or a dash when not finite. */
export function fmt(x: number, digits = 2): string {
  if (!Number.isFinite(x)) return '–'
  if (Math.abs(x) >= 1000 && digits > 0) digits = 0
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const esc = (s: string) => s.replaceAll('|', '\\|').replaceAll('\n', ' ')
  const line = (cells: readonly string[]) => `| ${cells.map(esc).join(' | ')} |`
  return [line(headers), line(headers.map(() => '---')), ...rows.map(line)].join('\n')
}

export function renderSection(s: Section): string {
  const notes = s.notes.map((n) => `- ${n}`).join('\n')
  return [`## ${s.title}`, notes, ...s.tables].filter((x) => x.length > 0).join('\n\n')
}

/** A pass/fail line for one target. */
export interface Verdict {
  readonly target: string
  readonly measured: string
  readonly pass: boolean | undefined
}

export function renderVerdicts(verdicts: readonly Verdict[]): string {
  const mark = (v: Verdict) => (v.pass === undefined ? 'n/a' : v.pass ? 'met' : '**MISSED**')
  return table(
    ['target', 'measured', 'verdict'],
    verdicts.map((v) => [v.target, v.measured, mark(v)]),
  )
}
