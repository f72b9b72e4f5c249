// pg-boss 9 as installed here, for ../scenario.mjs, behind the calls that script makes of
// pg-boss 10 and later: 9 has no queues to create, takes a job's id without its queue name,
// fetches by a batch size argument (null when there is nothing), and names its options apart.
// pg-boss 9 copies its methods onto each instance, so this wraps one instead of extending it.
import PgBoss9 from 'pg-boss'

class PgBoss {
  constructor ({ supervise, schedule, monitorIntervalSeconds, ...options }) {
    this.boss = new PgBoss9({
      ...options,
      noSupervisor: supervise === false,
      noScheduling: schedule === false,
      monitorStateIntervalSeconds: monitorIntervalSeconds
    })
  }

  on (event, listener) { return this.boss.on(event, listener) }
  async start () { await this.boss.start(); return this }
  async stop (options = {}) { return this.boss.stop({ ...options, destroy: true }) }
  async createQueue () {}
  async send (name, data, options) { return this.boss.send(name, data, options) }
  async fetch (name, { batchSize = 1 } = {}) { return (await this.boss.fetch(name, batchSize)) ?? [] }
  async complete (name, id, data) { return this.boss.complete(id, data) }
  async fail (name, id, data) { return this.boss.fail(id, data) }
  async getJobById (name, id) { return this.boss.getJobById(id) }
  async getQueueSize (name, options) { return this.boss.getQueueSize(name, options) }
  // pg-boss's own record of a queue's archived jobs, by state (for the "expired" phase)
  async archiveCounts (name) {
    const { rows } = await this.boss.db.executeSql(
      `SELECT count(*)::int AS archived, count(*) FILTER (WHERE state = 'expired')::int AS expired,
              count(*) FILTER (WHERE state = 'completed')::int AS completed
       FROM pgboss.archive WHERE name = $1`, [name])
    return rows[0]
  }

  async work (name, { pollingIntervalSeconds = 2 } = {}, handler) {
    // with a batch size, pg-boss 9 hands the handler an array, as pg-boss 10 always does
    return this.boss.work(name, { newJobCheckInterval: pollingIntervalSeconds * 1000, batchSize: 1 }, handler)
  }
}

export default { PgBoss }
