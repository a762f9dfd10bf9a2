import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { eventLogLine, isEventMirror, OutputBuffer, RunTracker, UsageLedger } from '../../src/common/auditLog';
import type { AuditEvent } from '../../src/common/protocol';

function event(kind: string, extra: Partial<AuditEvent> = {}): AuditEvent {
    return {
        eventId: 'e1',
        time: '2026-11-25T10:00:00Z',
        runId: 'run-1234567890',
        parentRunId: null,
        depth: 0,
        agent: 'document',
        goal: 'Add docstrings',
        kind,
        status: null,
        usage: null,
        durationMs: null,
        artifacts: null,
        error: null,
        data: null,
        ...extra,
    };
}

const usage = { inputTokens: 100, cachedInputTokens: 0, outputTokens: 20, reasoningTokens: 0, total: 120, estimated: false };

describe('eventLogLine', () => {
    test('names run, agent, kind and goal when a run starts', () => {
        assert.deepEqual(eventLogLine(event('started')), {
            level: 'info',
            message: '[run-1234] document started: Add docstrings',
        });
    });
    test('gives duration and usage when a run ends', () => {
        const line = eventLogLine(event('finished', { durationMs: 2300, usage }));
        assert.equal(line.message, '[run-1234] document finished in 2.3 s, 120 tokens (input 100, cached 0, output 20, reasoning 0)');
    });
    test('logs failures as errors with their reason', () => {
        const line = eventLogLine(event('failed', { durationMs: 10, usage, error: 'model server unreachable' }));
        assert.equal(line.level, 'error');
        assert.match(line.message, /model server unreachable$/);
    });
    test('warns when the budget stops a run', () => {
        assert.equal(eventLogLine(event('budget_exceeded', { usage })).level, 'warn');
    });
    test('names the file and lines of an edit', () => {
        const artifacts = [{ path: 'calc.py', range: { start: { line: 0, character: 0 }, end: { line: 1, character: 16 } } }];
        assert.equal(eventLogLine(event('edit_applied', { artifacts })).message, '[run-1234] document edit_applied: calc.py lines 1-2');
    });
    test('numbers model calls by turn', () => {
        const line = eventLogLine(event('model_call', { usage, data: { turn: 1 } }));
        assert.match(line.message, /document model_call turn 1: 120 tokens .* so far$/);
    });
    test('keeps the output event, whose text was streamed already, at debug level', () => {
        assert.equal(eventLogLine(event('output')).level, 'debug');
    });
    test('shows the tool and its arguments', () => {
        const line = eventLogLine(event('tool_call', { data: { tool: 'read_file', arguments: { path: 'a.py' } } }));
        assert.equal(line.message, '[run-1234] document tool_call: read_file {"path":"a.py"}');
    });
    test('shows an MCP tool call like a built-in one, by its mcp__server__tool name', () => {
        const data = { tool: 'mcp__everything__get-sum', arguments: { a: 2, b: 3 } };
        const line = eventLogLine(event('tool_call', { data }));
        assert.equal(line.message, '[run-1234] document tool_call: mcp__everything__get-sum {"a":2,"b":3}');
    });
    test('indents child runs and names their parent', () => {
        const line = eventLogLine(event('started', { depth: 1, parentRunId: 'parent-999999', goal: null }));
        assert.equal(line.message, '  [run-1234] document started (child of parent-9)');
    });
});

describe('OutputBuffer', () => {
    test('hands back whole lines and keeps the rest', () => {
        const buffer = new OutputBuffer();
        assert.deepEqual(buffer.push({ runId: 'r1', agent: 'review', delta: 'Hel' }), []);
        assert.deepEqual(buffer.push({ runId: 'r1', agent: 'review', delta: 'lo\nwor' }), ['[r1] review │ Hello']);
        assert.deepEqual(buffer.flush('r1'), ['[r1] review │ wor']);
        assert.deepEqual(buffer.flush('r1'), []);
    });
    test('keeps parallel runs apart', () => {
        const buffer = new OutputBuffer();
        buffer.push({ runId: 'a', agent: 'x', delta: 'one' });
        buffer.push({ runId: 'b', agent: 'y', delta: 'two' });
        assert.deepEqual(buffer.flush('a'), ['[a] x │ one']);
        assert.deepEqual(buffer.flush('b'), ['[b] y │ two']);
    });
});

describe('RunTracker', () => {
    test('knows the runs between started and their closing event', () => {
        const tracker = new RunTracker();
        tracker.onEvent(event('started'), 1);
        tracker.onEvent(event('started', { runId: 'other', agent: 'review' }), 2);
        tracker.onEvent(event('model_call'), 3);
        assert.deepEqual(tracker.active().map((r) => r.runId), ['run-1234567890', 'other']);
        tracker.onEvent(event('cancelled'), 4);
        assert.deepEqual(tracker.active().map((r) => r.runId), ['other']);
    });
});

describe('UsageLedger', () => {
    test('sums each agent when its runs end', () => {
        const ledger = new UsageLedger();
        assert.equal(ledger.onEvent(event('started')), undefined);
        ledger.onEvent(event('finished', { usage }));
        const summary = ledger.onEvent(event('failed', { agent: 'review', usage: { ...usage, total: 2000 } }));
        assert.equal(summary, 'usage this session: review 1 run 2k tokens, document 1 run 120 tokens');
    });
});

describe('isEventMirror', () => {
    test("recognises the server's one-line mirror of an event", () => {
        assert.ok(isEventMirror('[agentls] review finished tokens=120 duration=1.2s run=1a2b3c4d'));
        assert.ok(isEventMirror("[agentls] document started goal='Add docstrings' path=a.py run=0f0f0f0f"));
    });
    test('lets other server messages through', () => {
        assert.ok(!isEventMirror('agentls server started'));
        assert.ok(!isEventMirror('[agentls] could not load agents/bad.yaml: line 3'));
    });
});
