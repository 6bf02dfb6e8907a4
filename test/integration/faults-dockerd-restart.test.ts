// Fault suite, registrator side: the Docker engine itself is restarted under a running registrator.
// dockerd stopping stops its containers (no live-restore): the registrator must notice, on its own,
// that the container it registered is gone, reconnect to the new engine, and register a container
// started afterwards; its memory and file descriptors return to their baseline.
import assert from 'node:assert/strict';
import path from 'node:path';
import os from 'node:os';
import { test } from 'node:test';
import { consulForTest, cleanConsul } from '../support/consul.js';
import { cleanupRun, requireDocker, runContainer, runId, webImage } from '../support/docker.js';
import { restartDockerd } from '../support/dockerd-restart.js';
import { footprint, until } from '../support/fault-kit.js';
import { servicesNamed, spawnRegistrator } from '../support/registrator-process.js';

const RSS_SLACK_MB = 30;
const FD_SLACK = 6;

test('dockerd restarted under the registrator: the dead container is deregistered, a new one registered, footprint back to baseline', { timeout: 240_000 }, async (t) => {
  await requireDocker();
  await webImage();
  const consul = await consulForTest();
  const hostname = `h-${runId}-dockerd`;
  const name = `web-${runId}-dockerd`;
  const registrator = spawnRegistrator(['-hostname', hostname, `consul://${consul.addr}`]);
  try {
    await registrator.waitForLog((l) => l.event === 'resync', 20_000, 'first resync');
    const ours = async () => (await servicesNamed(consul.url, name)).filter((s) => s.ID.startsWith(`${hostname}:`));
    const first = await runContainer({ publish: ['80'], env: { SERVICE_NAME: name } });
    await until('the first container registered', async () => (await ours()).some((s) => s.ID.includes(first.name)), 20_000, 100);
    const pid = registrator.child.pid!;
    const before = footprint(pid);

    const { downMs } = await restartDockerd(path.join(os.tmpdir(), 'faults-dockerd.log'));
    // the engine stopped the container with itself: Consul must lose it without any Docker event for it
    const gone = await until('the stopped container deregistered', async () => !(await ours()).some((s) => s.ID.includes(first.name)), 60_000, 100);
    const second = await runContainer({ publish: ['80'], env: { SERVICE_NAME: name } });
    const startedAt = performance.now();
    await until('a container started after the restart registered', async () => (await ours()).some((s) => s.ID.includes(second.name)), 60_000, 100);
    const registerMs = Math.round(performance.now() - startedAt);
    assert.equal(registrator.child.exitCode, null, 'the registrator rode out the restart');

    let afterFp = footprint(pid);
    const settleEnd = performance.now() + 15_000;
    while (performance.now() < settleEnd && (afterFp.fds > before.fds + FD_SLACK || afterFp.rssMb > before.rssMb + RSS_SLACK_MB)) {
      await new Promise((r) => setTimeout(r, 250));
      afterFp = footprint(pid);
    }
    const row = `| dockerd restarted under the registrator (engine down ${downMs} ms) | n/a (not in the data path) | 0 | dead container deregistered ${gone.ms} ms after the engine answered; new one registered in ${registerMs} ms | ${before.rssMb} → ${afterFp.rssMb} | ${before.fds} → ${afterFp.fds} |`;
    t.diagnostic(row);
    process.stdout.write(`${row}\n`);
    assert.ok(afterFp.fds <= before.fds + FD_SLACK, `registrator file descriptors ${before.fds} -> ${afterFp.fds}`);
    assert.ok(afterFp.rssMb <= before.rssMb + RSS_SLACK_MB, `registrator RSS ${before.rssMb} -> ${afterFp.rssMb} MB`);
  } finally {
    await registrator.stop();
    await cleanupRun();
    if (consul.real) await cleanConsul(consul, `${hostname}:`);
    await consul.close();
  }
});
