// pg-boss 12 on Node 22 as a benchmark peer; speaks the protocol in bench/peers/common.py.
import { PgBoss } from 'pg-boss'

const [command, url, arg] = process.argv.slice(2)
const QUEUE = 'noop'
const emit = (o) => console.log(JSON.stringify(o))

const boss = new PgBoss({
  connectionString: url,
  supervise: command === 'worker',
  schedule: false,
  migrate: command === 'setup',
})
boss.on('error', (err) => console.error(err))
await boss.start()

const sendBatch = (n) => boss.insert(QUEUE, Array.from({ length: n }, () => ({ data: {} })))

if (command === 'setup') {
  await boss.createQueue(QUEUE)
} else if (command === 'enqueue') {
  const n = Number(arg)
  const started = performance.now()
  const cpu = process.cpuUsage()
  for (let done = 0; done < n; done += 1000) await sendBatch(Math.min(1000, n - done))
  const used = process.cpuUsage(cpu)
  emit({ seconds: (performance.now() - started) / 1000, cpu_seconds: (used.user + used.system) / 1e6 })
} else if (command === 'latency') {
  const n = Number(arg)
  for (let i = 0; i < 20; i++) await boss.send(QUEUE, {})
  const samples = []
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    await boss.send(QUEUE, {})
    samples.push(performance.now() - t)
  }
  samples.sort((a, b) => a - b)
  emit({ p50_ms: samples[Math.floor(n * 0.5)], p99_ms: samples[Math.floor(n * 0.99)] })
} else if (command === 'produce') {
  const deadline = performance.now() + Number(arg) * 1000
  let sent = 0
  while (performance.now() < deadline) { await sendBatch(100); sent += 100 }
  emit({ enqueued: sent })
} else if (command === 'worker') {
  const batchSize = Number(arg || 50)
  await boss.work(QUEUE, { batchSize, localConcurrency: 2, pollingIntervalSeconds: 0.5,
    burstWhenBatchFull: true }, async () => {})
  console.log('ready')
  await new Promise((resolve) => process.once('SIGTERM', resolve))
}
await boss.stop({ graceful: true, timeout: 10000 })
