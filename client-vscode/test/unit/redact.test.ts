import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { redact, redactedMarker } from '../../src/common/redact';

describe('redact', () => {
    test('removes every occurrence of the key', () => {
        const text = 'Params: {"apiKey":"sk-abc123"} and again sk-abc123';
        assert.equal(redact(text, ['sk-abc123']), `Params: {"apiKey":"${redactedMarker}"} and again ${redactedMarker}`);
    });
    test('removes the key in its JSON-escaped form too', () => {
        const key = 'k"e\\y-123';
        assert.ok(!redact(JSON.stringify({ apiKey: key }), [key]).includes('e\\\\y'));
    });
    test('ignores missing and very short secrets', () => {
        assert.equal(redact('a b c', [undefined, '', 'a']), 'a b c');
    });
});
