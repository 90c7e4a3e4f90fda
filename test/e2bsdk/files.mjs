// files through the SDK: write (string, bytes, many at once, a stream), read
// (text, bytes, stream), list, exists, makeDir, rename, remove, getInfo,
// watchDir; every byte value; a large file with a checksum, checked on both
// ends.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { FileNotFoundError, FileType, FilesystemEventType } from 'e2b'
import { cmd, commandTimeoutMs, create, eventually, main, measure, rejects, sandboxTimeoutMs, sleep, step, workDir } from './lib.mjs'

const MiB = 1 << 20
const largeMiB = Number(process.env.E2BSDK_LARGE_MIB || 64)

// chunked is a ReadableStream of data in chunks of size bytes.
function chunked(data, size) {
  let off = 0
  return new ReadableStream({
    pull(c) {
      if (off >= data.length) return c.close()
      c.enqueue(data.subarray(off, off + size))
      off += size
    },
  })
}

async function drain(stream, hash) {
  let n = 0
  for await (const chunk of stream) {
    hash?.update(chunk)
    n += chunk.length
  }
  return n
}

await main('files', async () => {
  const sbx = await step('create', () => create({ timeoutMs: sandboxTimeoutMs }))
  const dir = workDir('files')
  let largeSum
  let aWritten // [before, after] the last write of a.txt, for getInfo's modifiedTime

  await step('makeDir (new, then existing), exists', async () => {
    assert.equal(await sbx.files.makeDir(`${dir}/sub/deeper`), true, 'makeDir makes parents')
    assert.equal(await sbx.files.makeDir(`${dir}/sub`), false, 'makeDir of an existing directory')
    assert.equal(await sbx.files.exists(`${dir}/sub/deeper`), true)
    assert.equal(await sbx.files.exists(`${dir}/nothing`), false)
  })

  await step('write and read a string', async () => {
    const w = await sbx.files.write(`${dir}/a.txt`, 'hello, sandbox\nü ✓\n')
    assert.equal(w.path, `${dir}/a.txt`)
    assert.equal(w.name, 'a.txt')
    assert.equal(await sbx.files.read(`${dir}/a.txt`), 'hello, sandbox\nü ✓\n')
    // Overwrite, shorter: nothing of the old content stays.
    aWritten = [Date.now()]
    await sbx.files.write(`${dir}/a.txt`, 'short')
    aWritten.push(Date.now())
    assert.equal(await sbx.files.read(`${dir}/a.txt`, { format: 'text' }), 'short')
    await sbx.files.write(`${dir}/empty`, '')
    assert.equal(await sbx.files.read(`${dir}/empty`), '')
  })

  await step('every byte value, as bytes, a Blob and a stream', async () => {
    const all = new Uint8Array(256 * 16)
    for (let i = 0; i < all.length; i++) all[i] = i % 256
    await sbx.files.write(`${dir}/bytes.bin`, all.buffer)
    const back = await sbx.files.read(`${dir}/bytes.bin`, { format: 'bytes' })
    assert.ok(back instanceof Uint8Array)
    assert.deepEqual(Buffer.from(back), Buffer.from(all), 'bytes read back as written')
    const blob = await sbx.files.read(`${dir}/bytes.bin`, { format: 'blob' })
    assert.deepEqual(Buffer.from(await blob.arrayBuffer()), Buffer.from(all), 'as a Blob')
    await sbx.files.write(`${dir}/blob.bin`, new Blob([all]))
    assert.deepEqual(Buffer.from(await sbx.files.read(`${dir}/blob.bin`, { format: 'bytes' })), Buffer.from(all), 'a Blob written')
  })

  await step('write many at once', async () => {
    const files = Array.from({ length: 6 }, (_, i) => ({ path: `${dir}/many/f${i}.txt`, data: `file ${i}\n` }))
    const infos = await sbx.files.write(files)
    assert.equal(infos.length, files.length)
    assert.deepEqual(infos.map((w) => w.path).sort(), files.map((f) => f.path).sort())
    for (const f of files) assert.equal(await sbx.files.read(f.path), f.data)
  })

  await step('write a stream, read a stream', async () => {
    const data = randomBytes(3 * MiB + 123)
    const want = createHash('sha256').update(data).digest('hex')
    const w = await sbx.files.write(`${dir}/streamed.bin`, chunked(data, 64 * 1024))
    assert.equal(w.name, 'streamed.bin')
    const h = createHash('sha256')
    const n = await drain(await sbx.files.read(`${dir}/streamed.bin`, { format: 'stream' }), h)
    assert.equal(n, data.length)
    assert.equal(h.digest('hex'), want)
  })

  await step(`a large file (${largeMiB} MiB) with a checksum, both ends`, async () => {
    const data = randomBytes(largeMiB * MiB)
    const want = createHash('sha256').update(data).digest('hex')
    const path = `${dir}/large.bin`
    const t0 = performance.now()
    await sbx.files.write(path, chunked(data, MiB))
    const up = performance.now() - t0
    const info = await sbx.files.getInfo(path)
    assert.equal(info.size, data.length, 'getInfo size of the large file')
    const t1 = performance.now()
    const h = createHash('sha256')
    const n = await drain(await sbx.files.read(path, { format: 'stream' }), h)
    const down = performance.now() - t1
    assert.equal(n, data.length)
    assert.equal(h.digest('hex'), want, 'sha256 of what was read back')
    measure('largeMiB', largeMiB)
    measure('uploadMiBps', Math.round((largeMiB / up) * 1000 * 10) / 10)
    measure('downloadMiBps', Math.round((largeMiB / down) * 1000 * 10) / 10)
    largeSum = want
  })

  await step('list', async () => {
    const entries = await sbx.files.list(dir)
    const byName = Object.fromEntries(entries.map((e) => [e.name, e]))
    for (const n of ['a.txt', 'bytes.bin', 'many', 'sub', 'streamed.bin']) assert.ok(byName[n], `list has ${n}: ${Object.keys(byName)}`)
    assert.equal(byName['a.txt'].type, FileType.FILE)
    assert.equal(byName['a.txt'].size, 5)
    assert.equal(byName['a.txt'].path, `${dir}/a.txt`)
    assert.equal(byName.sub.type, FileType.DIR)
    assert.ok(!entries.some((e) => e.path === `${dir}/sub/deeper`), 'depth 1 does not descend')
    const deep = await sbx.files.list(dir, { depth: 2 })
    assert.ok(deep.some((e) => e.path === `${dir}/sub/deeper`), 'depth 2 descends')
  })

  await step('getInfo', async () => {
    const f = await sbx.files.getInfo(`${dir}/a.txt`)
    assert.equal(f.name, 'a.txt')
    assert.equal(f.type, FileType.FILE)
    assert.equal(f.size, 5)
    assert.match(f.permissions, /^-[rwx-]{9}$/, `permissions ${f.permissions}`)
    // Within the write's call (the file's time is the sandbox's clock, one
    // second's precision; a minute's slack for the clocks' difference).
    const [from, to] = aWritten
    assert.ok(f.modifiedTime instanceof Date && f.modifiedTime >= from - 60_000 && f.modifiedTime <= to + 60_000,
      `modifiedTime ${f.modifiedTime.toISOString()}, written between ${new Date(from).toISOString()} and ${new Date(to).toISOString()}`)
    const d = await sbx.files.getInfo(`${dir}/sub`)
    assert.equal(d.type, FileType.DIR)
    await rejects(sbx.files.getInfo(`${dir}/nothing`), FileNotFoundError, null, 'getInfo of a missing path')
  })

  await step('rename', async () => {
    const moved = await sbx.files.rename(`${dir}/a.txt`, `${dir}/sub/b.txt`)
    assert.equal(moved.path, `${dir}/sub/b.txt`)
    assert.equal(moved.name, 'b.txt')
    assert.equal(await sbx.files.exists(`${dir}/a.txt`), false)
    assert.equal(await sbx.files.read(`${dir}/sub/b.txt`), 'short')
  })

  await step('remove (a file, a directory tree)', async () => {
    await sbx.files.remove(`${dir}/sub/b.txt`)
    assert.equal(await sbx.files.exists(`${dir}/sub/b.txt`), false)
    await sbx.files.remove(`${dir}/many`)
    assert.equal(await sbx.files.exists(`${dir}/many`), false)
    await rejects(sbx.files.read(`${dir}/sub/b.txt`), FileNotFoundError, null, 'read of a removed file')
  })

  await step('watchDir sees creates, writes and removes', async () => {
    const wdir = `${dir}/watched`
    await sbx.files.makeDir(wdir)
    const events = []
    // The watch is a stream with the SDK's 60 s timeout, like a command's:
    // on a real node under emulation its writes alone outlast that.
    const handle = await sbx.files.watchDir(wdir, (e) => events.push(e), { timeoutMs: commandTimeoutMs })
    const seen = () => JSON.stringify(events.map((e) => `${e.type}:${e.name}`))
    try {
      // The server may poll: give it a beat to take its first look.
      await sleep(1500)
      await sbx.files.write(`${wdir}/w.txt`, 'one')
      await eventually(() => `a create event for w.txt (seen: ${seen()})`, 15_000, () => events.some((e) => e.name === 'w.txt' && e.type === FilesystemEventType.CREATE))
      await sleep(1100) // a write one second later than the create: mtime moves even where it has second resolution
      await sbx.files.write(`${wdir}/w.txt`, 'one and two')
      await eventually(() => `a write event for w.txt (seen: ${seen()})`, 15_000, () => events.some((e) => e.name === 'w.txt' && e.type === FilesystemEventType.WRITE))
      await sbx.files.remove(`${wdir}/w.txt`)
      await eventually(() => `a remove event for w.txt (seen: ${seen()})`, 15_000, () => events.some((e) => e.name === 'w.txt' && e.type === FilesystemEventType.REMOVE))
    } finally {
      await handle.stop()
    }
    const n = events.length
    await sbx.files.write(`${wdir}/after.txt`, 'x')
    await sleep(2000)
    assert.equal(events.length, n, 'no events after stop()')
    measure('watchEvents', events.map((e) => `${e.type}:${e.name}`))
  })

  // Last, so that everything above runs with the file side alone.
  await step('the sandbox itself sees what was written (od, sha256sum)', async () => {
    const r = await sbx.commands.run(`od -An -tx1 -v '${dir}/blob.bin' | tr -d ' \\n' | head -c 64`, cmd())
    assert.equal(r.stdout, '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'the sandbox sees the bytes')
    const sum = await sbx.commands.run(`sha256sum '${dir}/large.bin'`, cmd())
    assert.equal(sum.stdout.split(' ')[0], largeSum, 'sha256 in the sandbox')
  })

  await step('clean up', () => sbx.files.remove(dir))
})
