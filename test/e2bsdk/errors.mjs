// The errors a user meets, as the SDK names them: a wrong API key
// (AuthenticationError), an unknown sandbox (SandboxNotFoundError, a
// NotFoundError), a missing file (FileNotFoundError), a command that is not
// there (exit code 127).
import assert from 'node:assert/strict'
import {
  AuthenticationError,
  CommandExitError,
  FileNotFoundError,
  NotFoundError,
  Sandbox,
  SandboxError,
  SandboxNotFoundError,
} from 'e2b'
import { create, main, rejects, runId, step, workDir } from './lib.mjs'

// Well-formed, so the SDK sends it and the server is the one to refuse it.
const wrongKey = `e2b_${'0'.repeat(40)}`

await main('errors', async () => {
  await step('a wrong API key: AuthenticationError', async () => {
    await rejects(Sandbox.create({ apiKey: wrongKey }), AuthenticationError, /Unauthorized/, 'create with a wrong key')
    await rejects(Sandbox.list({ apiKey: wrongKey }).nextItems(), AuthenticationError, null, 'list with a wrong key')
    await rejects(Sandbox.getInfo('anything', { apiKey: wrongKey }), AuthenticationError, null, 'getInfo with a wrong key')
  })

  const unknown = `e2bsdk-nothing-${runId}`
  await step('an unknown sandbox: SandboxNotFoundError', async () => {
    const e = await rejects(Sandbox.connect(unknown), SandboxNotFoundError, null, 'connect to an unknown sandbox')
    assert.ok(e instanceof NotFoundError, 'SandboxNotFoundError is a NotFoundError')
    await rejects(Sandbox.getInfo(unknown), SandboxNotFoundError, null, 'getInfo of an unknown sandbox')
    await rejects(Sandbox.setTimeout(unknown, 60_000), SandboxNotFoundError, null, 'setTimeout of an unknown sandbox')
    assert.equal(await Sandbox.kill(unknown), false, 'kill of an unknown sandbox')
  })

  await step('what serve cannot give: a clear error, nothing made', async () => {
    await rejects(create('e2bsdk-no-such-template'), SandboxError, /not found/, 'create from an unknown template')
    await rejects(create({ timeoutMs: 48 * 3600 * 1000 }), SandboxError, /at most/, 'create with a timeout past serve\'s --ttl')
    await rejects(create({ lifecycle: { onTimeout: 'pause' } }), SandboxError, /onTimeout/, "create with onTimeout 'pause'")
    const left = await Sandbox.list().nextItems()
    assert.deepEqual(left.map((s) => s.sandboxId), [], 'no sandbox made by the refused creates')
  })

  const sbx = await step('create', () => create({ timeoutMs: 120_000 }))
  const dir = workDir('errors')

  await step('a missing file: FileNotFoundError', async () => {
    await rejects(sbx.files.read(`${dir}/missing.txt`), FileNotFoundError, null, 'read of a missing file')
    await rejects(sbx.files.read(`${dir}/missing.txt`, { format: 'bytes' }), FileNotFoundError, null, 'read bytes of a missing file')
    await rejects(sbx.files.list(`${dir}/missing-dir`), FileNotFoundError, null, 'list of a missing directory')
    await rejects(sbx.files.rename(`${dir}/missing.txt`, `${dir}/b`), FileNotFoundError, null, 'rename of a missing file')
  })

  await step('a command that is not there: exit code 127', async () => {
    const e = await rejects(sbx.commands.run('e2bsdk-no-such-command --flag'), CommandExitError, null, 'run of a missing command')
    assert.equal(e.exitCode, 127)
    assert.match(e.stderr, /not found/)
    assert.equal(e.stdout, '')
  })

  await step('a process that is not there', async () => {
    assert.equal(await sbx.commands.kill(9_999_999), false, 'kill of an unknown pid')
    await rejects(sbx.commands.sendStdin(9_999_999, 'x'), NotFoundError, null, 'sendStdin to an unknown pid')
  })

  await step('envd of a killed sandbox', async () => {
    assert.equal(await sbx.kill(), true)
    await rejects(Sandbox.connect(sbx.sandboxId), SandboxNotFoundError, null, 'connect to a killed sandbox')
  })
})
