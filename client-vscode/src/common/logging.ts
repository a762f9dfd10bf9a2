/** The one LogOutputChannel "agentls": output and protocol trace, with secrets redacted from every line. */

import { window, type Disposable, type LogOutputChannel } from 'vscode';
import { OUTPUT_CHANNEL_NAME } from './constants';
import { redact } from './redact';

const secrets = new Set<string>();
let channel: LogOutputChannel | undefined;

/** Secrets (the API key) that must never appear in the log. */
export function setLogSecrets(values: Iterable<string | undefined>): void {
    secrets.clear();
    for (const value of values) {
        if (value) {
            secrets.add(value);
        }
    }
}

const textMethods = new Set(['append', 'appendLine', 'replace', 'trace', 'debug', 'info', 'warn', 'error']);

function redactArg(arg: unknown): unknown {
    if (typeof arg === 'string') {
        return redact(arg, secrets);
    }
    if (arg instanceof Error) {
        const copy = new Error(redact(arg.message, secrets));
        copy.stack = arg.stack === undefined ? undefined : redact(arg.stack, secrets);
        return copy;
    }
    return arg;
}

/**
 * Creates the channel once. It is handed to the language client as both output and trace channel,
 * so protocol traces (which print initializationOptions) pass through the redaction too.
 */
export function createLogChannel(): LogOutputChannel & Disposable {
    if (channel) {
        return channel;
    }
    const target = window.createOutputChannel(OUTPUT_CHANNEL_NAME, { log: true });
    channel = new Proxy(target, {
        get(obj, prop, receiver) {
            const value = Reflect.get(obj, prop, receiver) as unknown;
            if (typeof value !== 'function') {
                return value;
            }
            if (typeof prop === 'string' && textMethods.has(prop)) {
                return (...args: unknown[]) => (value as (...a: unknown[]) => unknown).apply(obj, args.map(redactArg));
            }
            return (value as (...a: unknown[]) => unknown).bind(obj);
        },
    });
    return channel;
}

function log(): LogOutputChannel | undefined {
    return channel;
}

export function traceInfo(message: string): void {
    log()?.info(message);
}

export function traceWarn(message: string): void {
    log()?.warn(message);
}

export function traceError(message: string, error?: unknown): void {
    const detail = error === undefined ? '' : `: ${errorMessage(error)}`;
    log()?.error(`${message}${detail}`);
}

export function showLogs(): void {
    log()?.show(true);
}

/** An error toast with a "Show Logs" button; also logged. */
export async function showErrorWithLogs(message: string, ...extraActions: string[]): Promise<string | undefined> {
    traceError(message);
    const choice = await window.showErrorMessage(message, 'Show Logs', ...extraActions);
    if (choice === 'Show Logs') {
        showLogs();
    }
    return choice;
}

/** The one sentence of an LSP error (ResponseError.message), or a fallback. */
export function errorMessage(error: unknown): string {
    if (error instanceof Error && error.message) {
        return error.message;
    }
    if (typeof error === 'object' && error !== null && 'message' in error && typeof error.message === 'string') {
        return error.message;
    }
    return typeof error === 'string' ? error : (JSON.stringify(error) ?? 'unknown error');
}
