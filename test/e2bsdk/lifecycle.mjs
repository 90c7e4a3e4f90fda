// The control plane through the SDK: create (default template; metadata,
// envs, timeoutMs), connect, getInfo, list with paging and a metadata
// filter, setTimeout, kill, isRunning, a create from a warm pool
// (E2BSDK_POOL: the pool's name is the template), and pause/resume of a
// persistent sandbox (E2BSDK_PERSISTENT_SANDBOX: one made with
// `kubectl agentkernel create --persist`, reached by Sandbox.connect) against
// the clear error of a disposable one.
import assert from 'node:assert/strict'
import { Sandbox, SandboxError, SandboxNotFoundError } from 'e2b'
import { create, eventually, forget, main, measure, rejects, runId, skip, step, workDir } from './lib.mjs'

const secs = (d) => d.getTime() / 1000

await main('lifecycle', async () => {
  const metadata = { suite: `lifecycle-${runId}`, role: 'first' }
  const t0 = performance.now()
  const sbx = await step('create (default template, metadata, envs, timeoutMs)', () =>
    create({ metadata, envs: { E2BSDK_GREETING: 'hello world' }, timeoutMs: 300_000 }),
  )
  measure('createColdMs', Math.round(performance.now() - t0))
  assert.match(sbx.sandboxId, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a sandbox ID is a DNS label (the sandbox name)')

  await step('isRunning', async () => assert.equal(await sbx.isRunning(), true))

  const info = await step('getInfo', async () => {
    const i = await sbx.getInfo()
    assert.equal(i.sandboxId, sbx.sandboxId)
    assert.deepEqual(i.metadata, metadata)
    assert.equal(i.state, 'running')
    assert.ok(i.templateId, 'templateId is set')
    assert.ok(i.envdVersion, 'envdVersion is set')
    assert.ok(i.cpuCount > 0, `cpuCount ${i.cpuCount}`)
    assert.ok(i.memoryMB > 0, `memoryMB ${i.memoryMB}`)
    const life = secs(i.endAt) - secs(i.startedAt)
    assert.ok(Math.abs(life - 300) <= 30, `endAt - startedAt is ${life}s, want ~300s (timeoutMs)`)
    // The static form answers the same.
    const j = await Sandbox.getInfo(sbx.sandboxId)
    assert.equal(j.sandboxId, sbx.sandboxId)
    return i
  })

  await step('Sandbox.connect', async () => {
    const again = await Sandbox.connect(sbx.sandboxId)
    assert.equal(again.sandboxId, sbx.sandboxId)
    // The second client reaches the same sandbox's envd.
    const f = `${workDir('connect')}/from-first.txt`
    await sbx.files.write(f, 'first')
    assert.equal(await again.files.read(f), 'first')
    await again.files.remove(f)
  })

  await step('setTimeout moves endAt earlier and later; connect extends', async () => {
    const away = async () => secs((await sbx.getInfo()).endAt) - Date.now() / 1000
    await sbx.setTimeout(120_000)
    let left = await away()
    assert.ok(left > 90 && left <= 150, `after setTimeout(120s) endAt is ${Math.round(left)}s away`)
    // The keep-alive pattern: a timeout extended past the first one, up to
    // serve's --ttl (its Pod's deadline, which stays).
    await sbx.setTimeout(600_000)
    left = await away()
    assert.ok(left > 570 && left <= 630, `after setTimeout(600s) endAt is ${Math.round(left)}s away`)
    // connect only extends: its default (300s) leaves 600s; 900s moves it.
    await Sandbox.connect(sbx.sandboxId)
    left = await away()
    assert.ok(left > 540, `after connect with the default timeout endAt is ${Math.round(left)}s away, want ~600s`)
    await Sandbox.connect(sbx.sandboxId, { timeoutMs: 900_000 })
    left = await away()
    assert.ok(left > 870 && left <= 930, `after connect(timeoutMs: 900s) endAt is ${Math.round(left)}s away`)
    // Longer than serve's --ttl (1h) is refused, saying so.
    await rejects(sbx.setTimeout(7_200_000), SandboxError, /--ttl/, 'setTimeout longer than --ttl')
    assert.equal(await sbx.isRunning(), true, 'the sandbox runs on after the refused setTimeout')
  })

  await step('list: paging with limit and nextToken, metadata filter', async () => {
    const more = await Promise.all([2, 3].map((n) => create({ metadata: { suite: metadata.suite, role: `n${n}` }, timeoutMs: 120_000 })))
    const want = [sbx, ...more].map((s) => s.sandboxId).sort()
    const query = { metadata: { suite: metadata.suite } }

    const pager = Sandbox.list({ query, limit: 2 })
    assert.equal(pager.hasNext, true, 'a new paginator has a first page')
    const page1 = await pager.nextItems()
    assert.equal(page1.length, 2, `first page of limit 2 has ${page1.length} items`)
    assert.equal(pager.hasNext, true, 'hasNext after a full first page of 3')
    assert.ok(pager.nextToken, 'nextToken after the first page')
    // A new paginator resumes from the token, as one in another process would.
    const resumed = Sandbox.list({ query, limit: 2, nextToken: pager.nextToken })
    const page2 = await resumed.nextItems()
    assert.equal(page2.length, 1, `second page has ${page2.length} items`)
    assert.equal(resumed.hasNext, false, 'no page after the last')
    const got = [...page1, ...page2].map((s) => s.sandboxId).sort()
    assert.deepEqual(got, want, 'the pages hold each sandbox once')
    for (const s of [...page1, ...page2]) {
      assert.equal(s.metadata.suite, metadata.suite)
      assert.equal(s.state, 'running')
    }
    // The original paginator goes on the same way.
    const rest = await pager.nextItems()
    assert.deepEqual(rest.map((s) => s.sandboxId), page2.map((s) => s.sandboxId))
    assert.equal(pager.hasNext, false)
    await rejects(pager.nextItems(), Error, /No more items/, 'nextItems past the end')

    const one = await Sandbox.list({ query: { metadata: { suite: metadata.suite, role: 'n2' } } }).nextItems()
    assert.deepEqual(one.map((s) => s.sandboxId), [more[0].sandboxId], 'two metadata keys select one sandbox')
    const none = await Sandbox.list({ query: { metadata: { suite: `nothing-${runId}` } } }).nextItems()
    assert.deepEqual(none, [], 'a filter nothing matches')
    measure('listed', got.length)

    for (const s of more) {
      assert.equal(await s.kill(), true)
      forget(s)
    }
  })

  let warm
  if (process.env.E2BSDK_POOL) {
    warm = await step('create from a warm pool (template = pool name)', async () => {
      const t1 = performance.now()
      const w = await create(process.env.E2BSDK_POOL, { metadata: { suite: metadata.suite, role: 'pool' }, envs: { E2BSDK_GREETING: 'from the pool' } })
      measure('createFromPoolMs', Math.round(performance.now() - t1))
      assert.equal(await w.isRunning(), true)
      assert.equal(await w.files.exists('/'), true, 'the claimed sandbox answers envd')
      const i = await w.getInfo()
      assert.equal(i.metadata.role, 'pool', 'metadata given to a claim')
      return w
    })
  } else {
    skip('pool (E2BSDK_POOL not set)')
  }

  await step('pause of a disposable sandbox: a clear error, still running', async () => {
    await rejects(sbx.pause(), SandboxError, /persist/i, 'pause of a disposable sandbox')
    assert.equal(await sbx.isRunning(), true, 'the sandbox runs on after the refused pause')
  })

  if (process.env.E2BSDK_PERSISTENT_SANDBOX) {
    await step('pause and resume (Sandbox.connect) a persistent sandbox', async () => {
      const id = process.env.E2BSDK_PERSISTENT_SANDBOX
      const p = await Sandbox.connect(id)
      const file = `${workDir('persist')}/kept.txt`
      await p.files.write(file, `kept ${runId}\n`)
      const t1 = performance.now()
      assert.equal(await p.pause(), true, 'pause of a running persistent sandbox')
      measure('pauseMs', Math.round(performance.now() - t1))
      assert.equal((await Sandbox.getInfo(id)).state, 'paused')
      assert.equal(await p.pause(), false, 'pause of a paused sandbox says it already was')
      assert.equal(await p.isRunning(), false, 'isRunning of a paused sandbox')
      const listed = await Sandbox.list({ query: { state: ['paused'] } }).nextItems()
      assert.ok(listed.some((s) => s.sandboxId === id && s.state === 'paused'), 'list with state paused has it')
      const t2 = performance.now()
      const back = await Sandbox.connect(id)
      measure('resumeMs', Math.round(performance.now() - t2))
      assert.equal((await back.getInfo()).state, 'running')
      assert.equal(await back.files.read(file), `kept ${runId}\n`, 'the work survived pause/resume')
      assert.equal(await back.kill(), true)
    })
  } else {
    skip('pause/resume (E2BSDK_PERSISTENT_SANDBOX not set)')
  }

  // Commands last, so that everything above runs with the control plane
  // and the file side alone.
  await step('envs given at create reach commands', async () => {
    if (warm) {
      const r = await warm.commands.run('printf %s "$E2BSDK_GREETING"')
      assert.equal(r.stdout, 'from the pool', 'a claim\'s envs')
      assert.equal(await warm.kill(), true)
      forget(warm)
    }
    // The simulated node's exec gives a command kwok's environment, not the
    // Pod's (a kubelet gives the Pod's): there the e2e test says so with
    // E2BSDK_NODE_EXEC_POD_ENV=0, and only a claim's envs (a file every
    // exec sources) can be checked.
    if (process.env.E2BSDK_NODE_EXEC_POD_ENV === '0') {
      measure('coldEnvsChecked', false)
      return
    }
    const r = await sbx.commands.run('printf %s "$E2BSDK_GREETING"')
    assert.equal(r.stdout, 'hello world', 'a cold sandbox\'s envs')
    measure('coldEnvsChecked', true)
  })

  await step('kill', async () => {
    assert.equal(await sbx.kill(), true)
    forget(sbx)
    await eventually('getInfo of a killed sandbox says not found', 60_000, async () => {
      try {
        await Sandbox.getInfo(sbx.sandboxId)
        return false
      } catch (e) {
        if (e instanceof SandboxNotFoundError) return true
        throw e
      }
    })
    assert.equal(await Sandbox.kill(sbx.sandboxId), false, 'a second kill finds nothing')
    assert.equal(await sbx.isRunning(), false, 'isRunning of a killed sandbox')
    await rejects(Sandbox.connect(sbx.sandboxId), SandboxNotFoundError, null, 'connect to a killed sandbox')
  })
})
