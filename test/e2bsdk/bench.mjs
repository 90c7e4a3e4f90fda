// The bench's SDK side (bench/rows_serve.go): one long-lived process, as an
// application is, so that no round pays for Node's start-up or the SDK's
// import. It reads one request per line on stdin and answers each with one
// JSON line on stdout, timed here, around the SDK call alone:
//
//   {"op":"create"}                      -> {"ms":…, "id":"…"}   Sandbox.create()
//   {"op":"create","template":"POOL"}    -> {"ms":…, "id":"…"}   Sandbox.create(POOL)
//   {"op":"run","id":"…","cmd":"true","n":20} -> {"ms":…}        n × commands.run(cmd), in turn
//   {"op":"kill","id":"…"}               -> {"ms":…}
//
// A failure answers {"error":"…"}. At the end of stdin it kills what it
// made and exits.
import { createInterface } from 'node:readline'
import { Sandbox } from 'e2b'

const sandboxes = new Map()

async function handle(req) {
  const t0 = performance.now()
  const ms = () => Math.round((performance.now() - t0) * 1000) / 1000
  switch (req.op) {
    case 'create': {
      const sbx = req.template ? await Sandbox.create(req.template) : await Sandbox.create()
      const took = ms()
      sandboxes.set(sbx.sandboxId, sbx)
      return { ms: took, id: sbx.sandboxId }
    }
    case 'run': {
      const sbx = sandboxes.get(req.id) ?? (await Sandbox.connect(req.id))
      sandboxes.set(req.id, sbx)
      const start = performance.now()
      for (let i = 0; i < (req.n ?? 1); i++) await sbx.commands.run(req.cmd ?? 'true')
      return { ms: Math.round((performance.now() - start) * 1000) / 1000 }
    }
    case 'kill': {
      const sbx = sandboxes.get(req.id)
      sandboxes.delete(req.id)
      if (!(sbx ? await sbx.kill() : await Sandbox.kill(req.id))) throw new Error(`sandbox ${req.id} was not there to kill`)
      return { ms: ms() }
    }
    default:
      throw new Error(`unknown op ${JSON.stringify(req.op)}`)
  }
}

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue
  let answer
  try {
    answer = await handle(JSON.parse(line))
  } catch (err) {
    const cause = err.cause ? ` (${err.cause.message ?? err.cause})` : ''
    answer = { error: `${err.constructor?.name}: ${err.message}${cause}` }
  }
  process.stdout.write(JSON.stringify(answer) + '\n')
}
for (const sbx of sandboxes.values()) await sbx.kill().catch(() => {})
process.exit(0)
