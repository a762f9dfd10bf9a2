/** Turns audit events and streamed output into output-channel lines; tracks active runs and usage. */

import { formatDuration, formatTokens, formatUsage } from './format';
import { closingKinds, type AuditEvent, type OutputDelta } from './protocol';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface LogLine {
    level: LogLevel;
    message: string;
}

/** The first 8 characters of a run id: enough to tell runs apart in the log. */
export function shortRunId(runId: string | null | undefined): string {
    return (runId ?? '?').slice(0, 8);
}

function compact(value: unknown, max = 160): string {
    let text: string;
    try {
        text = typeof value === 'string' ? value : JSON.stringify(value);
    } catch {
        text = String(value);
    }
    text = text.replace(/\s+/g, ' ');
    return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function eventDetail(event: AuditEvent): string {
    const data = event.data ?? {};
    switch (event.kind) {
        case 'started':
            return event.goal ? `: ${compact(event.goal)}` : '';
        case 'model_call': {
            const turn = data.turn === undefined ? '' : ` turn ${compact(data.turn)}`;
            return `${turn}: ${formatUsage(event.usage)} so far`;
        }
        case 'tool_call': {
            const tool = data.tool ?? data.name;
            const args = data.arguments ?? data.args;
            return tool ? `: ${compact(tool)}${args === undefined ? '' : ` ${compact(args)}`}` : detailFromData(data);
        }
        case 'edit_proposed':
        case 'edit_applied':
        case 'edit_rejected': {
            const targets = editTargets(event);
            const reason = data.reason ? ` (${compact(data.reason)})` : event.error ? ` (${event.error})` : '';
            return targets ? `: ${targets}${reason}` : reason ? `:${reason}` : detailFromData(data);
        }
        case 'output':
            return '';
        default:
            if (closingKinds.has(event.kind)) {
                const error = event.error ? `: ${event.error}` : '';
                return ` in ${formatDuration(event.durationMs)}, ${formatUsage(event.usage)}${error}`;
            }
            return detailFromData(data);
    }
}

/** `calc.py lines 1-2`, from the edit artifacts (or data) of an edit event. */
function editTargets(event: AuditEvent): string {
    const artifacts = Array.isArray(event.artifacts) ? (event.artifacts as Record<string, unknown>[]) : [];
    const first = artifacts[0] ?? event.data ?? {};
    const where = first.path ?? first.uri;
    if (typeof where !== 'string') {
        return '';
    }
    const range = first.range as { start?: { line?: number }; end?: { line?: number } } | undefined;
    const start = range?.start?.line;
    const end = range?.end?.line;
    const lines =
        typeof start === 'number' && typeof end === 'number' ? (start === end ? ` line ${start + 1}` : ` lines ${start + 1}-${end + 1}`) : '';
    const more = artifacts.length > 1 ? ` and ${artifacts.length - 1} more` : '';
    return `${where}${lines}${more}`;
}

function detailFromData(data: Record<string, unknown>): string {
    return Object.keys(data).length > 0 ? `: ${compact(data)}` : '';
}

/** `[1a2b3c4d] document started: Add docstrings`; child runs are indented by depth. */
export function eventLogLine(event: AuditEvent): LogLine {
    const indent = '  '.repeat(Math.max(0, event.depth ?? 0));
    const parent = event.parentRunId && event.kind === 'started' ? ` (child of ${shortRunId(event.parentRunId)})` : '';
    const message = `${indent}[${shortRunId(event.runId)}] ${event.agent} ${event.kind}${parent}${eventDetail(event)}`;
    let level: LogLevel = 'info';
    if (event.kind === 'output') {
        // The text itself arrived as agentls/output; the event only marks it complete.
        level = 'debug';
    } else if (event.kind === 'failed' || event.kind === 'interrupted') {
        level = 'error';
    } else if (event.kind === 'budget_exceeded' || event.kind === 'edit_rejected' || event.error) {
        level = 'warn';
    }
    return { level, message };
}

/** Collects streamed output deltas per run and hands back whole lines. */
export class OutputBuffer {
    private readonly pending = new Map<string, { agent: string; text: string }>();

    /** Adds a delta; returns the lines it completed, prefixed with run and agent. */
    push(delta: OutputDelta): string[] {
        const entry = this.pending.get(delta.runId) ?? { agent: delta.agent, text: '' };
        entry.text += delta.delta;
        const parts = entry.text.split(/\r?\n/);
        entry.text = parts.pop() ?? '';
        this.pending.set(delta.runId, entry);
        return parts.map((line) => this.format(delta.runId, entry.agent, line));
    }

    /** Returns what is left of a run's output (at most one line) and forgets the run. */
    flush(runId: string): string[] {
        const entry = this.pending.get(runId);
        this.pending.delete(runId);
        return entry && entry.text.length > 0 ? [this.format(runId, entry.agent, entry.text)] : [];
    }

    private format(runId: string, agent: string, line: string): string {
        return `[${shortRunId(runId)}] ${agent} │ ${line}`;
    }
}

export interface ActiveRun {
    runId: string;
    agent: string;
    goal: string;
    startedAt: number;
    parentRunId: string | null;
}

/** Knows which runs are in progress, from their started and closing events. */
export class RunTracker {
    private readonly runs = new Map<string, ActiveRun>();

    onEvent(event: AuditEvent, now: number = Date.now()): void {
        if (event.kind === 'started') {
            this.runs.set(event.runId, {
                runId: event.runId,
                agent: event.agent,
                goal: event.goal ?? '',
                startedAt: now,
                parentRunId: event.parentRunId ?? null,
            });
        } else if (closingKinds.has(event.kind)) {
            this.runs.delete(event.runId);
        }
    }

    active(): ActiveRun[] {
        return [...this.runs.values()].sort((a, b) => a.startedAt - b.startedAt);
    }

    clear(): void {
        this.runs.clear();
    }
}

/** Per-agent usage of the runs that ended in this session, for the summary after each run. */
export class UsageLedger {
    private readonly agents = new Map<string, { runs: number; tokens: number }>();

    /** Records a closing event; returns the summary line to log, or undefined for other kinds. */
    onEvent(event: AuditEvent): string | undefined {
        if (!closingKinds.has(event.kind)) {
            return undefined;
        }
        const entry = this.agents.get(event.agent) ?? { runs: 0, tokens: 0 };
        entry.runs += 1;
        entry.tokens += event.usage?.total ?? 0;
        this.agents.set(event.agent, entry);
        return this.summary();
    }

    /** `usage this session: document 2 runs 2.4k tokens, review 1 run 800 tokens` */
    summary(): string {
        const parts = [...this.agents.entries()]
            .sort(([a, x], [b, y]) => y.tokens - x.tokens || a.localeCompare(b))
            .map(([name, e]) => `${name} ${e.runs} ${e.runs === 1 ? 'run' : 'runs'} ${formatTokens(e.tokens)} tokens`);
        return `usage this session: ${parts.join(', ')}`;
    }
}

/**
 * True for the window/logMessage line the server sends alongside every agentls/event, for editors
 * without an agentls client (`[agentls] review finished tokens=120 duration=1.2s run=1a2b3c4d`).
 * This client logs the event itself, so the mirror goes to the debug level only.
 */
export function isEventMirror(message: string): boolean {
    return /^\[agentls\] [a-z0-9-]+ [a-z_]+\b.* run=[0-9a-zA-Z-]{1,8}$/.test(message);
}
