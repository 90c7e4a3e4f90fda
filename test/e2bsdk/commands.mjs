// commands through the SDK: streamed stdout/stderr, exact exit codes
// (CommandExitError), envs, cwd, background processes (connect, list, kill,
// sendStdin), timeoutMs, and a process that outlives its handle and is
// reattached from another client.
import assert from 'node:assert/strict'
import { CommandExitError, NotFoundError, TimeoutError } from 'e2b'
import { cmd, commandTimeoutMs, connect, create, eventually, main, measure, rejects, sandboxTimeoutMs, sleep, step, workDir } from './lib.mjs'

await main('commands', async () => {
  const sbx = await step('create', () => create({ timeoutMs: sandboxTimeoutMs }))
  const dir = workDir('commands')

  await step('run: stdout and stderr apart, callbacks and result agree', async () => {
    const out = []
    const errs = []
    const r = await sbx.commands.run('echo out; echo err >&2; echo out2', cmd({
      onStdout: (d) => out.push(d),
      onStderr: (d) => errs.push(d),
    }))
    assert.equal(r.exitCode, 0)
    assert.equal(r.stdout, 'out\nout2\n')
    assert.equal(r.stderr, 'err\n')
    assert.equal(out.join(''), r.stdout, 'onStdout saw the stdout')
    assert.equal(errs.join(''), r.stderr, 'onStderr saw the stderr')
  })

  await step('run: output is streamed while the command runs', async () => {
    const seen = []
    const t0 = performance.now()
    // E2BSDK_STREAM_LINES (a line a second) outlasts a slow node's exec
    // start-up, which is more than the default 3 s under qemu emulation.
    const n = Number(process.env.E2BSDK_STREAM_LINES || 3)
    const lines = Array.from({ length: n }, (_, i) => `line ${i + 1}\n`).join('')
    await sbx.commands.run(`i=1; while [ $i -le ${n} ]; do echo "line $i"; i=$((i+1)); sleep 1; done`, cmd({
      onStdout: (d) => seen.push([performance.now() - t0, d]),
      timeoutMs: commandTimeoutMs + n * 1000, // the lines' time on top
    }))
    const total = performance.now() - t0
    assert.ok(seen.length > 0, 'onStdout was called')
    assert.equal(seen.map(([, d]) => d).join(''), lines)
    const first = seen[0][0]
    assert.ok(first < total - 1500, `the first line came ${Math.round(first)} ms in, the command took ${Math.round(total)} ms: not streamed`)
    measure('firstLineMs', Math.round(first))
  })

  await step('run: exact exit codes (CommandExitError with exitCode, stdout, stderr)', async () => {
    for (const code of [1, 3, 42, 255]) {
      const e = await rejects(
        sbx.commands.run(`echo "o${code}"; echo "e${code}" >&2; exit ${code}`, cmd()),
        CommandExitError,
        null,
        `exit ${code}`,
      )
      assert.equal(e.exitCode, code)
      assert.equal(e.stdout, `o${code}\n`)
      assert.equal(e.stderr, `e${code}\n`)
    }
    const ok = await sbx.commands.run('true', cmd())
    assert.equal(ok.exitCode, 0)
    assert.equal(ok.stdout, '')
  })

  await step('run: envs (one command only)', async () => {
    const r = await sbx.commands.run('printf "%s|%s|%s" "$E2BSDK_A" "$E2BSDK_B" "$E2BSDK_Q"', cmd({
      envs: { E2BSDK_A: '1', E2BSDK_B: 'two words', E2BSDK_Q: `it's "quoted" $HOME` },
    }))
    assert.equal(r.stdout, `1|two words|it's "quoted" $HOME`)
    const after = await sbx.commands.run('printf %s "${E2BSDK_A-unset}"', cmd())
    assert.equal(after.stdout, 'unset', 'envs of one run do not leak into the next')
  })

  await step('run: cwd', async () => {
    await sbx.commands.run(`mkdir -p '${dir}/sub dir'`, cmd())
    const r = await sbx.commands.run('pwd', cmd({ cwd: `${dir}/sub dir` }))
    assert.equal(r.stdout, `${dir}/sub dir\n`)
  })

  await step('background: list, sendStdin, kill', async () => {
    const out = []
    const h = await sbx.commands.run('while read -r line; do echo "got:$line"; done', cmd({
      background: true,
      stdin: true,
      onStdout: (d) => out.push(d),
    }))
    assert.ok(Number.isInteger(h.pid) && h.pid > 0, `pid ${h.pid}`)
    const listed = await sbx.commands.list()
    const mine = listed.find((p) => p.pid === h.pid)
    assert.ok(mine, `commands.list() has pid ${h.pid}: ${JSON.stringify(listed.map((p) => p.pid))}`)
    assert.ok([mine.cmd, ...mine.args].join(' ').includes('got:$line'), `the listed process is the command: ${JSON.stringify(mine)}`)

    await sbx.commands.sendStdin(h.pid, 'first\n')
    await h.sendStdin('second\n')
    await eventually('the background command echoes its stdin', 15_000, () => out.join('').includes('got:first\ngot:second\n'))
    assert.equal(h.stdout, 'got:first\ngot:second\n')

    assert.equal(await sbx.commands.kill(h.pid), true)
    const e = await rejects(h.wait(), CommandExitError, null, 'wait for a killed command')
    assert.notEqual(e.exitCode, 0)
    await eventually('a killed process leaves the list', 15_000, async () => !(await sbx.commands.list()).some((p) => p.pid === h.pid))
    assert.equal(await sbx.commands.kill(h.pid), false, 'a second kill finds nothing')
  })

  await step('background: disconnect, then commands.connect gets the rest and the exit code', async () => {
    const h = await sbx.commands.run('echo early; sleep 2; echo late; echo late-err >&2; exit 7', cmd({ background: true }))
    await h.disconnect()
    await sleep(300)
    const out = []
    const again = await sbx.commands.connect(h.pid, cmd({ onStdout: (d) => out.push(d) }))
    assert.equal(again.pid, h.pid)
    const e = await rejects(again.wait(), CommandExitError, null, 'the reattached command')
    assert.equal(e.exitCode, 7)
    assert.match(e.stdout, /late\n$/, `stdout after reattaching: ${JSON.stringify(e.stdout)}`)
    assert.match(e.stderr, /late-err\n$/)
    assert.ok(out.join('').includes('late\n'), 'onStdout of the reattached handle')
  })

  await step('a process outlives its handle and its client, and is reattached from another', async () => {
    const marker = `${dir}/outlived`
    // It runs until the other client lets it end (a file it waits for), so
    // it is still there to be listed however slow each exec is (a fixed
    // sleep ended before the listing on the real node).
    const release = `${dir}/outlived-release`
    const h = await sbx.commands.run(`while [ ! -e '${release}' ]; do sleep 1; done; echo done > '${marker}'; echo finished`, cmd({ background: true }))
    const pid = h.pid
    await h.disconnect()
    // Another client, as another process would: Sandbox.connect by ID.
    const other = await connect(sbx.sandboxId)
    assert.ok((await other.commands.list()).some((p) => p.pid === pid), 'the process is listed from the other client')
    const again = await other.commands.connect(pid, cmd())
    await other.files.write(release, '')
    const r = await again.wait()
    assert.equal(r.exitCode, 0)
    assert.match(r.stdout, /finished\n$/)
    assert.equal((await other.files.read(marker)).trim(), 'done', 'the process ran to its end')
  })

  await step('timeoutMs ends the wait with a TimeoutError', async () => {
    const t0 = performance.now()
    await rejects(sbx.commands.run('sleep 30', { timeoutMs: 1500 }), TimeoutError, null, 'run with timeoutMs 1500')
    const took = performance.now() - t0
    assert.ok(took < 10_000, `the timeout took ${Math.round(took)} ms`)
    measure('timeoutMs', Math.round(took))
  })

  await step('connect to a pid that is not there', async () => {
    await rejects(sbx.commands.connect(999_999_9, cmd()), NotFoundError, null, 'connect to an unknown pid')
  })

  await step('run true: latency', async () => {
    const ms = []
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now()
      await sbx.commands.run('true', cmd())
      ms.push(performance.now() - t0)
    }
    ms.sort((a, b) => a - b)
    measure('runTrueMedianMs', Math.round(ms[2]))
  })

  await sbx.commands.run(`rm -rf '${dir}'`, cmd())
})
