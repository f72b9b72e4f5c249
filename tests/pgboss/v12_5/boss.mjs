// pg-boss as installed here, for ../scenario.mjs (which lives outside this folder).
import * as pgboss from 'pg-boss'
export default pgboss
