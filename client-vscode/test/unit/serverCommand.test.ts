import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import {
    probeInterpreter,
    pythonServer,
    resolveServerCommand,
    serverWorkingDirectory,
    type InterpreterProbe,
} from '../../src/common/serverCommand';

function probe(working: string[]): InterpreterProbe {
    return (python) => Promise.resolve(working.includes(python) ? undefined : "No module named 'agentls'");
}

describe('resolveServerCommand', () => {
    test('uses agentls.python first', async () => {
        const result = await resolveServerCommand(
            { settingPython: '/venv/bin/python', extensionPython: '/usr/bin/python3', pathExecutable: '/usr/bin/agentls' },
            probe(['/venv/bin/python', '/usr/bin/python3']),
        );
        assert.ok(result.ok);
        assert.deepEqual(result.server, { command: '/venv/bin/python', args: ['-P', '-m', 'agentls', 'serve'], source: 'setting' });
    });

    test('does not replace a broken agentls.python silently, and names the fix', async () => {
        const result = await resolveServerCommand(
            { settingPython: '/venv/bin/python', pathExecutable: '/usr/bin/agentls' },
            probe([]),
        );
        assert.ok(!result.ok);
        assert.match(result.message, /agentls\.python \(\/venv\/bin\/python\) cannot import agentls \(No module named 'agentls'\)/);
        assert.match(result.message, /Fix: run `\/venv\/bin\/python -m pip install agentls`/);
    });

    test("uses the Python extension's interpreter when it has agentls", async () => {
        const result = await resolveServerCommand({ extensionPython: '/usr/bin/python3' }, probe(['/usr/bin/python3']));
        assert.ok(result.ok);
        assert.equal(result.server.source, 'pythonExtension');
    });

    test('falls back to agentls on PATH', async () => {
        const result = await resolveServerCommand(
            { extensionPython: '/usr/bin/python3', pathExecutable: '/home/me/.local/bin/agentls' },
            probe([]),
        );
        assert.ok(result.ok);
        assert.deepEqual(result.server, { command: '/home/me/.local/bin/agentls', args: ['serve'], source: 'path' });
    });

    test('fails with one message naming the selected interpreter and the fix', async () => {
        const result = await resolveServerCommand({ extensionPython: '/opt/my python/bin/python' }, probe([]));
        assert.ok(!result.ok);
        assert.match(result.message, /Fix: run `"\/opt\/my python\/bin\/python" -m pip install agentls`/);
        assert.equal(result.tried.length, 2);
    });

    test('tells a user without Python extension or PATH entry what to install', async () => {
        const result = await resolveServerCommand({}, probe([]));
        assert.ok(!result.ok);
        assert.match(result.message, /Fix: run `pip install agentls`/);
    });
});

/** A cloned repository that ships an `agentls` package which records that it ran. */
function hostileWorkspace(): { root: string; marker: string; cleanup: () => void } {
    const base = mkdtempSync(path.join(os.tmpdir(), 'agentls-hostile-'));
    const root = path.join(base, 'cloned');
    const marker = path.join(base, 'ran');
    mkdirSync(path.join(root, 'agentls'), { recursive: true });
    writeFileSync(path.join(root, 'agentls', '__init__.py'), `open(${JSON.stringify(marker)}, 'w').write('ran')\n`);
    return { root, marker, cleanup: () => rmSync(base, { recursive: true, force: true }) };
}

describe('a cloned repository cannot shadow agentls', () => {
    test('the server starts with -P, so a package in its working directory is not imported', () => {
        assert.deepEqual(pythonServer('/usr/bin/python3', 'pythonExtension').args.slice(0, 3), ['-P', '-m', 'agentls']);
    });

    test('the probe does not run an agentls package of the workspace, even started inside it', async () => {
        const hostile = hostileWorkspace();
        try {
            // python3 here has no agentls: the workspace's package is the only one it could import.
            const error = await probeInterpreter('python3', hostile.root);
            assert.match(error ?? 'ok', /No module named 'agentls'/);
            assert.equal(existsSync(hostile.marker), false);
        } finally {
            hostile.cleanup();
        }
    });

    test('the server and the probe run in the home folder, not in the workspace', () => {
        assert.equal(serverWorkingDirectory(['/work/cloned'], ['/home/me', '/']), '/home/me');
    });

    test('a workspace that is the home folder, or holds it, is not the working directory either', () => {
        assert.equal(serverWorkingDirectory(['/home/me'], ['/home/me', '/']), '/');
        assert.equal(serverWorkingDirectory(['/elsewhere', '/home'], ['/home/me', '/']), '/');
        assert.equal(serverWorkingDirectory(['/home/me/project'], ['/home/me', '/']), '/home/me');
    });
});
