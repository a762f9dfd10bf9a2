/** Chooses how to start the server: `agentls.python`, the Python extension's interpreter, or `agentls` on PATH. */

export interface ServerCommand {
    command: string;
    args: string[];
    /** Where the command came from, for the log. */
    source: 'setting' | 'pythonExtension' | 'path';
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

export function pythonServer(python: string, source: 'setting' | 'pythonExtension'): ServerCommand {
    return { command: python, args: ['-m', 'agentls', 'serve'], source };
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
