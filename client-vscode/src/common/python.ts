/** Finds Python interpreters: the Python extension's active one and `agentls` on PATH (the probe is in serverCommand.ts). */

import { constants as fsConstants, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { extensions, type Disposable, type Event, type Uri } from 'vscode';
import { traceError, traceInfo } from './logging';

const PYTHON_EXTENSION_ID = 'ms-python.python';

/** The part of the Python extension's API that we use (see @vscode/python-extension). */
interface PythonExtensionApi {
    environments: {
        getActiveEnvironmentPath(resource?: Uri): { id: string; path: string };
        resolveEnvironment(environment: { id: string; path: string } | string): Promise<{ executable: { uri?: Uri } } | undefined>;
        onDidChangeActiveEnvironmentPath: Event<unknown>;
    };
}

async function pythonApi(): Promise<PythonExtensionApi | undefined> {
    const extension = extensions.getExtension<PythonExtensionApi>(PYTHON_EXTENSION_ID);
    if (!extension) {
        return undefined;
    }
    try {
        const api = extension.isActive ? extension.exports : await extension.activate();
        return api?.environments ? api : undefined;
    } catch (error) {
        traceError('The Python extension did not activate', error);
        return undefined;
    }
}

/** The active interpreter of the Python extension, when it is installed and has one. */
export async function getExtensionInterpreter(resource?: Uri): Promise<string | undefined> {
    const api = await pythonApi();
    if (!api) {
        return undefined;
    }
    try {
        const active = api.environments.getActiveEnvironmentPath(resource);
        const environment = await api.environments.resolveEnvironment(active);
        return environment?.executable.uri?.fsPath ?? active.path;
    } catch (error) {
        traceError('Could not read the Python extension interpreter', error);
        return undefined;
    }
}

/** Calls `listener` when the user picks another interpreter in the Python extension. */
export async function onDidChangePythonInterpreter(listener: () => void): Promise<Disposable | undefined> {
    const api = await pythonApi();
    return api?.environments.onDidChangeActiveEnvironmentPath(() => {
        traceInfo('The Python extension interpreter changed');
        listener();
    });
}

/** The full path of an executable on PATH, or undefined. */
export async function findOnPath(name: string, envPath: string = process.env.PATH ?? ''): Promise<string | undefined> {
    const names = process.platform === 'win32' ? [`${name}.exe`, `${name}.cmd`] : [name];
    for (const dir of envPath.split(path.delimiter)) {
        if (!dir) {
            continue;
        }
        for (const candidate of names) {
            const full = path.join(dir, candidate);
            try {
                await fs.access(full, fsConstants.X_OK);
                return full;
            } catch {
                // not here; keep looking
            }
        }
    }
    return undefined;
}
