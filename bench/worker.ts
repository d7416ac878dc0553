// Entry point of every forked worker: receives one task, runs it, reports back.
import { errorText, Mailbox, type Msg } from './child.js'
import { contendWorker } from './scenarios/contention.js'
import { handoffWorker } from './scenarios/handoff.js'
import { heldWorker } from './scenarios/held.js'
import { splitWorker } from './scenarios/permits-split.js'
import { throughputWorker } from './scenarios/throughput.js'
import { waitersWorker } from './scenarios/waiters.js'

export interface WorkerIo {
  readonly mailbox: Mailbox
  /** Resolves once the message is handed to the IPC channel (so exiting cannot drop it). */
  send(msg: Msg): Promise<void>
  /** Rejections nobody handled, e.g. from a library's background timer. */
  readonly strays: string[]
}

const mailbox = new Mailbox()
const strays: string[] = []
const send = (msg: Msg) =>
  new Promise<void>((resolve) => {
    if (process.send) process.send(msg, undefined, {}, () => resolve())
    else resolve()
  })
const io: WorkerIo = { mailbox, send, strays }

process.on('unhandledRejection', (reason) => {
  // A library's stray rejection must not take the other libraries' results with it.
  strays.push(errorText(reason))
})
process.on('uncaughtException', (err) => {
  void send({ type: 'error', message: `uncaught: ${errorText(err)}` }).finally(() => process.exit(1))
})
process.on('disconnect', () => process.exit(0))

async function run(task: Msg): Promise<void> {
  switch (task.type) {
    case 'throughput':
      return throughputWorker(task, io)
    case 'contend':
      return contendWorker(task, io)
    case 'handoff':
      return handoffWorker(task, io)
    case 'held':
      return heldWorker(task, io)
    case 'waiters':
      return waitersWorker(task, io)
    case 'split':
      return splitWorker(task, io)
    default:
      throw new Error(`unknown task ${task.type}`)
  }
}

process.on('message', (m: Msg) => {
  if (m.type !== 'task') {
    mailbox.push(m)
    return
  }
  run(m.task as Msg).then(
    () => process.exit(0),
    (err: unknown) => {
      void send({ type: 'error', message: errorText(err) }).finally(() => process.exit(1))
    },
  )
})
