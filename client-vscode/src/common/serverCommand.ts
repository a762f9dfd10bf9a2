/**
 * Chooses how to start the server from the user's environment (`agentls.importStrategy: fromEnvironment`):
 * `agentls.python`, the Python extension's interpreter, or `agentls` on PATH; and where, for every
 * strategy: never in the workspace, with `-P`, so that a cloned repository cannot shadow agentls.
 */

import { execFile } from 'node:child_process';
import * as path from 'node:path';

export interface ServerCommand {
    command: string;
    args: string[];
    /** Where the command came from, for the log; `bundled`: the extension's private environment. */
    source: 'setting' | 'pythonExtension' | 'path' | 'bundled';
}

export interface ServerSources {
    /** `agentls.python`, already variable-substituted; empty when unset. */
    settingPython?: string;
    /** The Python extension's active interpreter, when that extension is installed. */
    extensionPython?: string;
    /** Full path of an `agentls` executable found on PATH. */
    pathExecutable?: string;
}

/** Checks that an interpreter can import agentls; resolves to an error text, or undefined when it can. */
export type InterpreterProbe = (python: string) => Promise<string | undefined>;

export type Resolution = { ok: true; server: ServerCommand; tried: string[] } | { ok: false; message: string; tried: string[] };

function quote(path: string): string {
    return /[\s"'$`\\]/.test(path) ? `"${path.replace(/(["$`\\])/g, '\\$1')}"` : path;
}

/**
 * Python 3.11's safe path: nothing is put before the installed packages on `sys.path`. Without it,
 * `-m` and `-c` put the working directory first, and a repository that ships an `agentls/` package
 * would run its own code, with the API key, in place of the server (or of the probe).
 */
export const SAFE_PATH_FLAG = '-P';

/** The arguments that ask an interpreter whether it can import agentls. */
export const PROBE_ARGS = [SAFE_PATH_FLAG, '-c', 'import agentls'];

export function pythonServer(python: string, source: 'setting' | 'pythonExtension' | 'bundled'): ServerCommand {
    return { command: python, args: [SAFE_PATH_FLAG, '-m', 'agentls', 'serve'], source };
}

function isInside(candidate: string, folder: string): boolean {
    const relative = path.relative(path.resolve(folder), path.resolve(candidate));
    return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

/**
 * The working directory of the server and of the probe: the first candidate (the user's home folder,
 * then the root of the file system) that is neither a workspace folder nor inside one. The server learns its
 * folders from the client, not from its working directory; `-P` guards a Python child wherever it runs.
 */
export function serverWorkingDirectory(workspaceFolders: readonly string[], candidates: readonly string[]): string | undefined {
    const usable = candidates.filter((c) => c !== '');
    return usable.find((c) => !workspaceFolders.some((folder) => isInside(c, folder))) ?? usable[usable.length - 1];
}

/** Resolves to undefined when `python`, started in `cwd`, can import agentls, else to a short reason. */
export function probeInterpreter(python: string, cwd: string | undefined, timeoutMs = 15000): Promise<string | undefined> {
    return new Promise((resolve) => {
        execFile(python, PROBE_ARGS, { cwd, timeout: timeoutMs, windowsHide: true }, (error, _stdout, stderr) => {
            if (!error) {
                resolve(undefined);
                return;
            }
            resolve(pythonFailure(error, stderr, timeoutMs, 'it is older than Python 3.11, which agentls needs'));
        });
    });
}

/** Why running an interpreter failed, in a few words: missing, not executable, silent, too old
 * (`tooOld`: it does not know `-P`), or the last line it wrote on stderr. */
export function pythonFailure(error: Error & { killed?: boolean }, stderr: unknown, timeoutMs: number, tooOld: string): string {
    const code = (error as NodeJS.ErrnoException).code;
    const text = String(stderr).trim();
    if (code === 'ENOENT') {
        return 'no such file';
    }
    if (code === 'EACCES') {
        return 'not executable';
    }
    if (error.killed) {
        return `no answer within ${timeoutMs / 1000} s`;
    }
    if (/unknown option.*-P/i.test(text)) {
        return tooOld;
    }
    return text.split('\n').pop() || error.message;
}

/**
 * Tries the sources in order. An explicit `agentls.python` is never silently replaced: when it does not
 * work, that is the error. Otherwise the first interpreter that imports agentls wins, then PATH.
 */
export async function resolveServerCommand(sources: ServerSources, probe: InterpreterProbe): Promise<Resolution> {
    const tried: string[] = [];
    const setting = sources.settingPython?.trim();
    if (setting) {
        const error = await probe(setting);
        tried.push(`agentls.python ${setting}: ${error ?? 'ok'}`);
        if (error === undefined) {
            return { ok: true, server: pythonServer(setting, 'setting'), tried };
        }
        return {
            ok: false,
            tried,
            message:
                `agentls cannot start: the interpreter in the setting agentls.python (${setting}) cannot import agentls (${error}). ` +
                `Fix: run \`${quote(setting)} -m pip install agentls\`, or point agentls.python at a Python that has agentls.`,
        };
    }
    let extensionError: string | undefined;
    if (sources.extensionPython) {
        extensionError = await probe(sources.extensionPython);
        tried.push(`Python extension interpreter ${sources.extensionPython}: ${extensionError ?? 'ok'}`);
        if (extensionError === undefined) {
            return { ok: true, server: pythonServer(sources.extensionPython, 'pythonExtension'), tried };
        }
    }
    if (sources.pathExecutable) {
        tried.push(`agentls on PATH: ${sources.pathExecutable}`);
        return { ok: true, server: { command: sources.pathExecutable, args: ['serve'], source: 'path' }, tried };
    }
    tried.push('agentls on PATH: not found');
    const fix = sources.extensionPython
        ? `Fix: run \`${quote(sources.extensionPython)} -m pip install agentls\` (the selected interpreter), or set agentls.python to a Python that has agentls.`
        : 'Fix: run `pip install agentls` so that `agentls` is on PATH, or set agentls.python to a Python that has agentls.';
    const reason = sources.extensionPython
        ? `the selected interpreter ${sources.extensionPython} cannot import agentls (${extensionError}) and no \`agentls\` is on PATH`
        : 'agentls.python is not set, the Python extension is not installed and no `agentls` is on PATH';
    return { ok: false, tried, message: `agentls cannot start: ${reason}. ${fix}` };
}
