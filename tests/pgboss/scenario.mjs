// Drives a real pg-boss (10, 11 or 12) into a known state, then prints pg-boss's own counts as
// JSON: queue sizes from getQueueSize (10) or the cached counters of getQueue (11, 12), plus the
// numbers this script produced itself. Used by tests/sources/test_pgboss_live.py.
import { pathToFileURL } from 'node:url'

// phase: "expired" (pg-boss 9: jobs that expire, and the archive), "strict" (pg-boss 12: a key_strict_fifo queue whose failed job blocks its key, and
// persisted warnings), "state" (queues in known states), "throughput" (pg-boss >= 11: two monitor passes
// around finished jobs, so the queue row carries completed / failed deltas), "finished"
// (the application's default settings: a worker completes and fails jobs; pg-boss's own record
// of each job's state is the count to match) or "settle" (a quiescent moment, see below)
const [url, bossModule, phase = 'state', total = '12'] = process.argv.slice(2)
const mod = (await import(pathToFileURL(bossModule).href)).default // bossModule: <dir>/boss.mjs
const PgBoss = mod.PgBoss ?? mod.default

// Every phase monitors each second, so a supervise() at the end refreshes pg-boss's cached counts
// (a pass within the interval of the previous one is skipped).
const boss = new PgBoss({ connectionString: url, monitorIntervalSeconds: 1,
  ...(phase === 'finished' || phase === 'expired' ? {} : { supervise: false, schedule: false }),
  ...(phase === 'expired' ? { maintenanceIntervalSeconds: 1, archiveCompletedAfterSeconds: 1 } : {}),
  ...(phase === 'throughput' ? { persistQueueStats: true } : {}),
  ...(phase === 'strict' ? { persistWarnings: true } : {}) })
boss.on('error', (err) => console.error(err))
await boss.start()
const cached = typeof boss.getQueueSize !== 'function' // pg-boss >= 11 caches queue counters
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

if (phase === 'settle') {
  // Two monitor and maintenance passes a second apart, then nothing runs: the state expiry and
  // retries leave is settled, and pg-boss's cached queue counts describe it (pg-boss >= 11).
  for (let pass = 0; pass < 2 && cached; pass++) {
    await sleep(1100)
    await boss.supervise()
  }
  await boss.stop({ graceful: false, wait: true })
  console.log(JSON.stringify({ cached }))
  process.exit(0)
}

if (phase === 'finished') {
  // Every third job throws (no retries left: it fails); the rest complete.
  await boss.createQueue('digest')
  const ids = []
  for (let i = 0; i < Number(total); i++) {
    ids.push(await boss.send('digest', { i }, { retryLimit: 0 }))
  }
  await boss.work('digest', { pollingIntervalSeconds: 0.5 }, async ([job]) => {
    if (job.data.i % 3 === 0) throw new Error(`digest ${job.data.i} failed`)
  })
  const own = { completed: 0, failed: 0 }
  for (let tries = 0; tries < 120; tries++) {
    const states = await Promise.all(ids.map(async (id) => (await boss.getJobById('digest', id))?.state))
    own.completed = states.filter((s) => s === 'completed').length
    own.failed = states.filter((s) => s === 'failed').length
    if (own.completed + own.failed === ids.length) break
    await sleep(250)
  }
  if (cached) { // a monitor pass now: pg-boss's cached queue counts are current
    await sleep(1100)
    await boss.supervise()
  }
  await boss.stop({ graceful: true, wait: true })
  console.log(JSON.stringify({ own }))
  process.exit(0)
}

if (phase === 'expired') {
  // pg-boss 9 (its boss.mjs takes these options): two jobs complete, three are fetched and never
  // finished, so maintenance ends them as `expired` (pg-boss 9's failure on a timeout); every
  // finished job then moves to the archive table, a second after it finished.
  const done = []
  for (let i = 0; i < 2; i++) done.push(await boss.send('sync', { i }))
  for (let i = 0; i < 3; i++) await boss.send('sync', { hang: i }, { retryLimit: 0, expireInSeconds: 1 })
  for (const job of await boss.fetch('sync', { batchSize: 5 })) {
    if (done.includes(job.id)) await boss.complete('sync', job.id)
  }
  const own = { archived: 0, expired: 0, completed: 0 }
  for (let tries = 0; tries < 60 && own.archived < 5; tries++) {
    await sleep(500)
    Object.assign(own, await boss.archiveCounts('sync'))
  }
  await boss.stop({ graceful: false, wait: true })
  console.log(JSON.stringify({ own }))
  process.exit(0)
}

if (phase === 'strict') {
  // acct-1's first job fails (no retries): pg-boss blocks acct-1's later jobs until someone acts;
  // acct-2 runs on. The queue's backlog warning fires above 2 queued jobs.
  await boss.createQueue('ledger', { policy: 'key_strict_fifo', warningQueueSize: 2 })
  const first = await boss.send('ledger', { n: 1 }, { singletonKey: 'acct-1', retryLimit: 0 })
  for (let n = 2; n <= 4; n++) await boss.send('ledger', { n }, { singletonKey: 'acct-1' })
  await boss.send('ledger', { n: 5 }, { singletonKey: 'acct-2' })
  const [job] = await boss.fetch('ledger', { batchSize: 1 })
  await boss.fail('ledger', job.id, { reason: 'ledger locked' })
  await sleep(1100)
  await boss.supervise()
  const queue = await boss.getQueue('ledger')
  const failed = (await boss.getJobById('ledger', first)).state
  await sleep(500) // warnings are written in the background
  await boss.stop({ graceful: false, wait: true })
  console.log(JSON.stringify({ own: { ledger: queue, failed, firstFetched: job.id === first } }))
  process.exit(0)
}

if (phase === 'throughput') {
  await boss.createQueue('digest')
  await boss.supervise()
  for (let i = 0; i < 4; i++) await boss.send('digest', { i }, { retryLimit: 0 })
  const jobs = await boss.fetch('digest', { batchSize: 4 })
  for (const job of jobs.slice(0, 3)) await boss.complete('digest', job.id)
  await boss.fail('digest', jobs[3].id, { reason: 'bad digest' })
  await sleep(11500) // pg-boss counts a window that ends 10 s (DELTA_LAG_SECONDS) behind the pass
  await boss.supervise()
  const queue = await boss.getQueue('digest')
  await boss.stop({ graceful: false, wait: true })
  console.log(JSON.stringify({ own: { digest: queue } }))
  process.exit(0)
}

for (const name of ['emails', 'reports', 'expiring']) await boss.createQueue(name)
for (let i = 0; i < 6; i++) await boss.send('emails', { i })
for (let i = 0; i < 2; i++) await boss.send('emails', { deferred: i }, { startAfter: 3600 })
for (let i = 0; i < 3; i++) await boss.send('reports', { i }, { retryLimit: 0 })

const taken = await boss.fetch('emails', { batchSize: 3 }) // 3 active
await boss.complete('emails', taken[0].id) // 1 completed, 2 stay active
const reports = await boss.fetch('reports', { batchSize: 3 })
for (const job of reports) await boss.fail('reports', job.id, { reason: 'bad report' })
await boss.send('expiring', {}, { expireInSeconds: 1 })
await boss.fetch('expiring', { batchSize: 1 }) // active; expires in 1 s, nobody recovers it

const expected = { emails: { ready: 3, deferred: 2, active: 2, failed: 0 },
  reports: { ready: 0, deferred: 0, active: 0, failed: 3 },
  expiring: { ready: 0, deferred: 0, active: 1, failed: 0 } }
const own = {}
if (cached) {
  // One supervise pass runs pg-boss's monitor, which caches the counts on the queue table
  // (the expiring job is not yet past its expiry, so the pass leaves it active).
  await boss.supervise()
  for (const name of Object.keys(expected)) own[name] = await boss.getQueue(name)
} else {
  for (const name of Object.keys(expected)) {
    own[name] = { queuedCount: await boss.getQueueSize(name),
      beforeCompleted: await boss.getQueueSize(name, { before: 'completed' }) }
  }
}
await boss.stop({ graceful: false, wait: true })
console.log(JSON.stringify({ cached, expected, own }))
