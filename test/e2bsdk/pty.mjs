// pty through the SDK: create with onData, sendInput, resize (seen by the
// shell in the terminal), kill.
import assert from 'node:assert/strict'
import { create, eventually, main, measure, sandboxTimeoutMs, step } from './lib.mjs'

await main('pty', async () => {
  const sbx = await step('create', () => create({ timeoutMs: sandboxTimeoutMs }))
  const dec = new TextDecoder()
  let out = ''
  const enc = (s) => new TextEncoder().encode(s)

  const t0 = performance.now()
  const term = await step('pty.create', () => sbx.pty.create({ cols: 80, rows: 24, onData: (d) => { out += dec.decode(d, { stream: true }) }, timeoutMs: 120_000 }))
  assert.ok(term.pid > 0, `pid ${term.pid}`)

  await step('sendInput runs a command in the terminal', async () => {
    // The answer is computed, so the echo of the input line cannot match it.
    await sbx.pty.sendInput(term.pid, enc('echo pty-$((6*7))\n'))
    await eventually('the terminal prints pty-42', 15_000, () => out.includes('pty-42'))
    measure('firstAnswerMs', Math.round(performance.now() - t0))
  })

  await step('it is a terminal', async () => {
    await sbx.pty.sendInput(term.pid, enc('[ -t 0 ] && echo is-a-$((1+1))-tty\n'))
    await eventually('the shell sees a terminal on stdin', 15_000, () => out.includes('is-a-2-tty'))
  })

  await step('the initial size, then resize', async () => {
    await sbx.pty.sendInput(term.pid, enc('echo size=$(stty size | tr " " x)\n'))
    await eventually('stty size is 24 rows, 80 columns', 15_000, () => out.includes('size=24x80'))
    await sbx.pty.resize(term.pid, { cols: 132, rows: 43 })
    await sbx.pty.sendInput(term.pid, enc('echo size=$(stty size | tr " " x)\n'))
    await eventually('stty size after resize is 43 rows, 132 columns', 15_000, () => out.includes('size=43x132'))
  })

  await step('kill', async () => {
    assert.equal(await sbx.pty.kill(term.pid), true)
    // The handle ends: killed, so not with exit code 0.
    const settled = await Promise.race([
      term.wait().then(() => 'exit 0', (e) => `ended: ${e.constructor.name}`),
      new Promise((r) => setTimeout(() => r('still running'), 15_000)),
    ])
    assert.match(settled, /^ended: /, `after kill the terminal's handle is ${settled}`)
    assert.equal(await sbx.pty.kill(term.pid), false, 'a second kill finds nothing')
  })
})
