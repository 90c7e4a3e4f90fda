// Shared by the test programs: run a program's steps, time them, and end
// with either one JSON line of what was measured on stdout (exit 0) or a
// clear message on stderr (exit 1). Sandboxes a program made are killed on
// the way out, pass or fail, so a failed run leaves nothing behind that the
// test's own cleanup has to find.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Sandbox } from 'e2b'

const made = []
const report = { program: '', steps: {}, measured: {}, skipped: [] }

// runId tells this run's sandboxes (metadata) and paths from any other
// run's: on the simulated node every sandbox shares the host's filesystem.
export const runId = process.env.E2BSDK_RUN_ID || randomBytes(4).toString('hex')

// workDir is a directory of this run's own that the sandbox may write:
// E2BSDK_DIR (the e2e test passes one per test) or under /tmp.
export function workDir(name) {
  const base = process.env.E2BSDK_DIR || '/tmp'
  return `${base.replace(/\/+$/, '')}/e2bsdk-${runId}-${name}`
}

// sandboxTimeoutMs is the timeout the programs create their sandboxes with:
// E2BSDK_SANDBOX_TIMEOUT_MS lengthens it where a program runs for minutes
// (a real node under qemu emulation), lest a sandbox end, as it should, in
// the middle.
export const sandboxTimeoutMs = Number(process.env.E2BSDK_SANDBOX_TIMEOUT_MS || 300_000)

// commandTimeoutMs is how long the programs let a command's stream (and a
// watchDir's) live:
// the SDK's default, 60 s, unless E2BSDK_COMMAND_TIMEOUT_MS says longer —
// a real node under qemu emulation takes seconds for every exec, and a
// background command outlives several steps of them.
export const commandTimeoutMs = Number(process.env.E2BSDK_COMMAND_TIMEOUT_MS || 60_000)

// cmd is a command's options with commandTimeoutMs, unless they set one.
export function cmd(opts = {}) {
  return { timeoutMs: commandTimeoutMs, ...opts }
}

// skip records a part not run: the e2e test fails on any.
export function skip(what) {
  report.skipped.push(what)
}

export function measure(key, value) {
  report.measured[key] = value
}

// step runs fn and records how long it took; a failure names the step.
export async function step(name, fn) {
  const t0 = performance.now()
  try {
    const v = await fn()
    report.steps[name] = { ms: Math.round(performance.now() - t0) }
    return v
  } catch (err) {
    err.step = name
    throw err
  }
}

// create makes a sandbox and remembers it for the cleanup.
// E2BSDK_CREATE_TIMEOUT_MS lengthens the SDK's 60 s request timeout of the
// create: a real node under qemu emulation may take longer to start a Pod.
export async function create(...args) {
  const ms = Number(process.env.E2BSDK_CREATE_TIMEOUT_MS || 0)
  if (ms > 0) {
    const at = typeof args[0] === 'string' ? 1 : 0
    args[at] = { requestTimeoutMs: ms, ...args[at] }
  }
  const sbx = await Sandbox.create(...args)
  made.push(sbx)
  return sbx
}

// connect is Sandbox.connect with create's request timeout
// (E2BSDK_CREATE_TIMEOUT_MS): the client it returns makes every request of
// its own with it, and on a real node under emulation one file write can
// outlast the SDK's 60 s.
export function connect(sandboxId, opts = {}) {
  const ms = Number(process.env.E2BSDK_CREATE_TIMEOUT_MS || 0)
  return Sandbox.connect(sandboxId, ms > 0 ? { requestTimeoutMs: ms, ...opts } : opts)
}

export function forget(sbx) {
  const i = made.indexOf(sbx)
  if (i >= 0) made.splice(i, 1)
}

// rejects asserts that promise rejects with an instance of cls whose
// message matches re (when given), and returns the error.
export async function rejects(promise, cls, re, what) {
  let err
  try {
    await promise
  } catch (e) {
    err = e
  }
  assert.ok(err, `${what}: expected ${cls.name}, but it succeeded`)
  assert.ok(err instanceof cls, `${what}: expected ${cls.name}, got ${err?.constructor?.name}: ${err?.message}`)
  if (re) assert.match(String(err.message), re, `${what}: the ${cls.name}'s message`)
  return err
}

// waitScale multiplies every eventually's timeout: E2BSDK_WAIT_SCALE where
// each of the server's execs takes seconds (a real node under qemu
// emulation), so that a poll of a few execs fits.
const waitScale = Number(process.env.E2BSDK_WAIT_SCALE || 1)

// eventually polls cond (async, truthy when done) until timeoutMs (times
// waitScale); what names it (a function: asked when it failed, for what was
// seen by then).
export async function eventually(what, timeoutMs, cond) {
  timeoutMs *= waitScale
  const end = Date.now() + timeoutMs
  let last
  for (;;) {
    try {
      const v = await cond()
      if (v) return v
    } catch (e) {
      last = e
    }
    if (Date.now() > end) {
      const label = typeof what === 'function' ? what() : what
      throw new Error(`${label}: not within ${timeoutMs} ms${last ? ` (last error: ${last.message})` : ''}`)
    }
    await new Promise((r) => setTimeout(r, 200))
  }
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms))
}

// main runs a program and ends the process with its verdict.
export async function main(program, fn) {
  report.program = program
  let failed
  try {
    await fn()
  } catch (err) {
    failed = err
  }
  for (const sbx of made.splice(0)) {
    await sbx.kill().catch((e) => {
      process.stderr.write(`cleanup: killing sandbox ${sbx.sandboxId}: ${e.message}\n`)
    })
  }
  if (failed) {
    const where = failed.step ? ` in step "${failed.step}"` : ''
    // fetch's own message is only "fetch failed": the reason is its cause.
    const cause = failed.cause ? ` (${failed.cause.code ?? ''} ${failed.cause.message ?? failed.cause})` : ''
    process.stderr.write(`${program}: FAILED${where}: ${failed.constructor?.name}: ${failed.message}${cause}\n`)
    if (process.env.E2BSDK_STACK) process.stderr.write(`${failed.stack}\n`)
    process.stdout.write(JSON.stringify({ ...report, ok: false, failedStep: failed.step ?? null }) + '\n')
    process.exit(1)
  }
  process.stdout.write(JSON.stringify({ ...report, ok: true }) + '\n')
  process.exit(0)
}
