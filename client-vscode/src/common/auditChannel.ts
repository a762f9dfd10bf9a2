/** Writes the server's notifications to the output channel: audit events, streamed output, usage summaries. */

import type { LogOutputChannel } from 'vscode';
import { eventLogLine, OutputBuffer, RunTracker, UsageLedger } from './auditLog';
import { closingKinds, type AuditEvent, type OutputDelta } from './protocol';

export class AuditChannel {
    readonly runs = new RunTracker();
    private readonly output = new OutputBuffer();
    private readonly usage = new UsageLedger();

    constructor(private readonly channel: LogOutputChannel) {}

    onEvent(event: AuditEvent): void {
        this.runs.onEvent(event);
        if (closingKinds.has(event.kind) || event.kind === 'output') {
            for (const line of this.output.flush(event.runId)) {
                this.channel.info(line);
            }
        }
        const { level, message } = eventLogLine(event);
        this.channel[level](message);
        const summary = this.usage.onEvent(event);
        if (summary) {
            this.channel.info(summary);
        }
    }

    onOutput(delta: OutputDelta): void {
        for (const line of this.output.push(delta)) {
            this.channel.info(line);
        }
    }

    /** The server went away: its runs are over. */
    reset(): void {
        this.runs.clear();
    }
}
