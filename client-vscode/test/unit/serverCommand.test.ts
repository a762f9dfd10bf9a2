import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { resolveServerCommand, type InterpreterProbe } from '../../src/common/serverCommand';

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
        assert.deepEqual(result.server, { command: '/venv/bin/python', args: ['-m', 'agentls', 'serve'], source: 'setting' });
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
