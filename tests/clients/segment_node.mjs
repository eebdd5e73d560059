// Sends a plan of calls with the unmodified @segment/analytics-node library.
// Usage: node segment_node.mjs HOST WRITE_KEY < plan.json
// plan.json: [[method, {snake_case args}], ...], e.g. ["track", {"user_id": "u1", "event": "X"}].
// Exits 1 when the library reports a delivery error.
import { readFileSync } from 'node:fs'
import { Analytics } from '@segment/analytics-node'

const [host, writeKey] = process.argv.slice(2)
if (!host || !writeKey) {
  console.error('usage: node segment_node.mjs HOST WRITE_KEY < plan.json')
  process.exit(2)
}
const plan = JSON.parse(readFileSync(0, 'utf8'))
const camel = (key) => key.replace(/_([a-z])/g, (_, c) => c.toUpperCase())

const analytics = new Analytics({ writeKey, host, maxRetries: 2, flushInterval: 500 })
let errors = 0
analytics.on('error', (err) => {
  errors += 1
  console.error('analytics-node error:', err?.code, err?.reason?.message ?? err?.reason ?? err)
})
for (const [method, args] of plan) {
  analytics[method](Object.fromEntries(Object.entries(args).map(([k, v]) => [camel(k), v])))
}
await analytics.closeAndFlush({ timeout: 30000 })
process.exit(errors ? 1 : 0)
